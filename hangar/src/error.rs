//! hangar's errors: what went wrong in `sign` and `backup`, plus the shared key, passphrase and
//! bundle errors of `shipyard`. Each has a [`kind`](Error::kind); `main` turns the kind into the
//! exit code with [`shipyard::ErrorKind::exit_code`], the one scheme barge uses too.
//!
//! `Display` and `Error` are written out by hand rather than derived with `thiserror`, because
//! hangar's manifest does not depend on it (adding it is a one-line change outside this
//! module's owner; the impls below are what the derive would generate).

use std::fmt;
use std::io;
use std::path::PathBuf;

use keyggdrasil::archive_check::ArchiveMismatch;
use keyggdrasil::bundle::BundleError;
use keyggdrasil::keyfile::{KeyFileError, KeyRole};
use keyggdrasil::keys::{KeyError, PublicKey};
use keyggdrasil::names::{NameError, SupplierName};
use shipyard::ErrorKind;
use shipyard::keys::role_name;

/// Why a hangar command failed. Messages are lowercase and never contain secrets; the cause is
/// the `#[source]` and is not repeated in the message.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A key, passphrase or bundle-file failure shared with barge.
    Shared(shipyard::Error),
    /// `--supplier` is not a valid supplier name.
    BadSupplier {
        /// The text given.
        value: String,
        /// Why it is refused.
        source: NameError,
    },
    /// `--expect` is not a public key.
    BadExpect(KeyError),
    /// `hangar sign` was given a bundle that is signed already.
    AlreadySigned {
        /// The bundle.
        path: PathBuf,
    },
    /// The output file exists already.
    OutputExists {
        /// The output file.
        path: PathBuf,
    },
    /// No key file in `local/` holds the signer the bundle names.
    NoSignerKey {
        /// The private folder searched.
        local: PathBuf,
        /// The signer the bundle names.
        signer: PublicKey,
    },
    /// The key file given holds another key than the bundle's signer.
    NotTheSigner {
        /// The key file.
        path: PathBuf,
        /// Its key.
        found: PublicKey,
        /// The bundle's signer.
        signer: PublicKey,
    },
    /// The signer's key file has a role that may not sign this kind of bundle.
    WrongRole {
        /// The bundle kind.
        kind: &'static str,
        /// What may sign it.
        wanted: &'static str,
        /// The key file's role.
        found: KeyRole,
    },
    /// The key file belongs to another supplier than the bundle.
    WrongSupplier {
        /// The key file's supplier.
        key: SupplierName,
        /// The bundle's supplier.
        bundle: SupplierName,
    },
    /// The entry body inside the bundle does not parse.
    BadBody(BundleError),
    /// The archive named could not be opened.
    OpenArchive {
        /// The archive.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The archive could not be read.
    ReadArchive {
        /// The archive.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The archive beside the bundle differs from the one the request names.
    ArchiveMismatch {
        /// The archive.
        path: PathBuf,
        /// How it differs.
        source: ArchiveMismatch,
    },
    /// The confirmation answer could not be read.
    ReadAnswer(io::Error),
    /// Confirmation is needed and there is no terminal to ask on.
    NoTerminalToConfirm,
    /// The user declined to sign.
    Declined,
    /// Signing the bundle failed.
    Sign(BundleError),
    /// `backup split` got a threshold outside 2..=N.
    BadThreshold {
        /// K.
        threshold: u8,
        /// N.
        shares: u8,
    },
    /// A share file exists already.
    ShareExists {
        /// The file.
        path: PathBuf,
    },
    /// The secret sharing library gave a share of an unexpected size.
    ShareSize,
    /// Shares could not be read from stdin.
    ReadStdin(io::Error),
    /// A share file could not be opened or read.
    ReadShares {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A share does not decode (word list, padding, version, checksum).
    CorruptShare {
        /// 1-based line number in the input.
        line: usize,
        /// What is wrong (never the words themselves).
        reason: String,
    },
    /// No share was given.
    NoShares,
    /// The shares come from different splits.
    MixedSplits,
    /// A share was given twice.
    DuplicateShare,
    /// Fewer shares than the threshold.
    TooFewShares {
        /// The threshold.
        needed: u8,
        /// How many were given.
        given: usize,
    },
    /// A share is refused by the secret sharing library.
    BadShare(&'static str),
    /// The shares could not be combined into a seed.
    Recover(String),
    /// The recovered seed has the wrong length.
    SeedLength,
    /// The recovered seed is not a valid key.
    BadSeed(KeyError),
    /// The shares recover another key than `--expect`.
    WrongRecoveredKey {
        /// The key recovered.
        got: PublicKey,
        /// The key expected.
        expected: PublicKey,
    },
    /// No terminal to ask for the passphrase that seals a recovered key.
    NoTerminalToSeal,
    /// Sealing the recovered key under the new passphrase failed.
    Seal(KeyFileError),
}

impl Error {
    /// What kind of failure this is (decides the exit code). Never `ChannelMisbehaved` or
    /// `Unreachable`: hangar has no network.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Shared(e) => e.kind(),
            Error::BadSupplier { .. }
            | Error::BadExpect(_)
            | Error::AlreadySigned { .. }
            | Error::OutputExists { .. }
            | Error::NoSignerKey { .. }
            | Error::NotTheSigner { .. }
            | Error::WrongRole { .. }
            | Error::WrongSupplier { .. }
            | Error::NoTerminalToConfirm
            | Error::Declined
            | Error::BadThreshold { .. }
            | Error::ShareExists { .. }
            | Error::NoShares
            | Error::DuplicateShare
            | Error::NoTerminalToSeal => ErrorKind::Usage,
            Error::BadBody(_)
            | Error::ArchiveMismatch { .. }
            | Error::CorruptShare { .. }
            | Error::MixedSplits
            | Error::TooFewShares { .. }
            | Error::BadShare(_)
            | Error::Recover(_)
            | Error::SeedLength
            | Error::BadSeed(_)
            | Error::WrongRecoveredKey { .. } => ErrorKind::Rejected,
            Error::OpenArchive { .. }
            | Error::ReadArchive { .. }
            | Error::ReadAnswer(_)
            | Error::Sign(_)
            | Error::ShareSize
            | Error::ReadStdin(_)
            | Error::ReadShares { .. }
            | Error::Seal(_) => ErrorKind::Local,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Transparent: the shared error says it all, and its own source follows it.
            Error::Shared(e) => fmt::Display::fmt(e, f),
            Error::BadSupplier { value, .. } => write!(f, "--supplier {value:?}"),
            Error::BadExpect(_) => f.write_str("--expect is not a public key"),
            Error::AlreadySigned { path } => write!(
                f,
                "{} is already signed; carry it to the online machine and run `barge publish`",
                path.display()
            ),
            Error::OutputExists { path } => write!(
                f,
                "{} exists already; move it away or pass --out",
                path.display()
            ),
            Error::NoSignerKey { local, signer } => write!(
                f,
                "no key file in {} for the signer {} ({}) the bundle names; pass --key FILE",
                local.display(),
                signer.to_hex(),
                signer.fingerprint()
            ),
            Error::NotTheSigner {
                path,
                found,
                signer,
            } => write!(
                f,
                "{} holds key {}, but the bundle must be signed by {}",
                path.display(),
                found.fingerprint(),
                signer.fingerprint()
            ),
            Error::WrongRole {
                kind,
                wanted,
                found,
            } => write!(
                f,
                "a {kind} bundle must be signed by {wanted}, not by a {} key",
                role_name(*found)
            ),
            Error::WrongSupplier { key, bundle } => write!(
                f,
                "the key belongs to supplier {}, the bundle is for supplier {}",
                key.as_str(),
                bundle.as_str()
            ),
            Error::BadBody(_) => f.write_str("the bundle's entry body is refused"),
            Error::OpenArchive { path, .. } => write!(f, "could not open {}", path.display()),
            Error::ReadArchive { path, .. } | Error::ReadShares { path, .. } => {
                write!(f, "could not read {}", path.display())
            }
            Error::ArchiveMismatch { path, .. } => write!(
                f,
                "the archive {} does not match the bundle: the bundle or the archive was \
                 changed; nothing was signed",
                path.display()
            ),
            Error::ReadAnswer(_) => f.write_str("could not read the answer"),
            Error::NoTerminalToConfirm => f.write_str(
                "no terminal to confirm on: check the details above and pass --yes to sign",
            ),
            Error::Declined => f.write_str("not signed: declined; nothing was written"),
            Error::Sign(_) => f.write_str("could not sign the bundle"),
            Error::BadThreshold { threshold, shares } => write!(
                f,
                "the threshold must be at least 2 and at most the number of shares (got \
                 {threshold} of {shares})"
            ),
            Error::ShareExists { path } => {
                write!(f, "{} exists already; use an empty folder", path.display())
            }
            Error::ShareSize => f.write_str("the secret sharing gave a share of the wrong size"),
            Error::ReadStdin(_) => f.write_str("could not read shares from stdin"),
            Error::CorruptShare { line, reason } => write!(
                f,
                "share on line {line} is corrupt: {reason}; nothing was written"
            ),
            Error::NoShares => f.write_str(
                "no shares given: write them on stdin, one per line, or name share files",
            ),
            Error::MixedSplits => f.write_str(
                "these shares come from different splits (their split ids or thresholds \
                 differ); use shares of one split only; nothing was written",
            ),
            Error::DuplicateShare => f.write_str(
                "the same share was given twice; give distinct shares; nothing was written",
            ),
            Error::TooFewShares { needed, given } => write!(
                f,
                "too few shares: {needed} needed, {given} given; nothing was written"
            ),
            // The library's reasons are short static words with no cause of their own.
            Error::BadShare(reason) => write!(f, "bad share: {reason}"),
            Error::Recover(reason) => write!(f, "could not recover the seed: {reason}"),
            Error::SeedLength => f.write_str("the recovered seed has the wrong length"),
            Error::BadSeed(_) => f.write_str("the recovered seed is not a valid key"),
            Error::WrongRecoveredKey { got, expected } => write!(
                f,
                "the shares recover key {}, not the expected {}: wrong shares or wrong \
                 --expect; nothing was written",
                got.fingerprint(),
                expected.fingerprint()
            ),
            Error::NoTerminalToSeal => f.write_str(
                "no terminal to ask for the passphrase that seals the recovered key: pass \
                 --passphrase-stdin and write it as the first line of standard input (or \
                 --plain to write the seed in the clear); nothing was written",
            ),
            Error::Seal(_) => f.write_str("could not seal the key file"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Transparent, like `#[error(transparent)]`: the shared error's own cause.
            Error::Shared(e) => e.source(),
            Error::BadSupplier { source, .. } => Some(source),
            Error::BadExpect(e) | Error::BadSeed(e) => Some(e),
            Error::BadBody(e) | Error::Sign(e) => Some(e),
            Error::OpenArchive { source, .. }
            | Error::ReadArchive { source, .. }
            | Error::ReadShares { source, .. } => Some(source),
            Error::ReadAnswer(e) | Error::ReadStdin(e) => Some(e),
            Error::ArchiveMismatch { source, .. } => Some(source),
            Error::Seal(e) => Some(e),
            Error::AlreadySigned { .. }
            | Error::OutputExists { .. }
            | Error::NoSignerKey { .. }
            | Error::NotTheSigner { .. }
            | Error::WrongRole { .. }
            | Error::WrongSupplier { .. }
            | Error::NoTerminalToConfirm
            | Error::Declined
            | Error::BadThreshold { .. }
            | Error::ShareExists { .. }
            | Error::ShareSize
            | Error::CorruptShare { .. }
            | Error::NoShares
            | Error::MixedSplits
            | Error::DuplicateShare
            | Error::TooFewShares { .. }
            | Error::BadShare(_)
            | Error::Recover(_)
            | Error::SeedLength
            | Error::WrongRecoveredKey { .. }
            | Error::NoTerminalToSeal => None,
        }
    }
}

impl From<shipyard::Error> for Error {
    fn from(e: shipyard::Error) -> Self {
        Error::Shared(e)
    }
}

/// Secret-file failures (I/O, permissions) are the shared ones, so they have one kind whichever
/// crate met them.
impl From<keyggdrasil::os::secretfile::SecretFileError> for Error {
    fn from(e: keyggdrasil::os::secretfile::SecretFileError) -> Self {
        Error::Shared(shipyard::Error::SecretFile(e))
    }
}
