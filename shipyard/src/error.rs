//! Errors of the author-side code barge and hangar share, and the one exit-code scheme both
//! binaries use.
//!
//! Every error says what happened (not which exit code it wants); [`Error::kind`] sorts it into
//! an [`ErrorKind`], and [`ErrorKind::exit_code`] is the only place that turns a kind into a
//! number. Messages are lowercase, never contain secrets, and do not repeat their cause: the
//! cause is the `#[source]`, and [`report`] prints the whole chain.

use std::io;
use std::path::PathBuf;

use keyggdrasil::bundle::BundleError;
use keyggdrasil::kdf::KdfError;
use keyggdrasil::keyfile::{KeyFileError, KeyRole};
use keyggdrasil::keys::PublicKey;
use keyggdrasil::os::secretfile::SecretFileError;

/// What kind of failure an error is, for the exit code. The same scheme for barge and hangar,
/// aligned with continuum's (docs/author-guide.md, "Exit codes").
///
/// Deliberately not `#[non_exhaustive]`: a new kind must make every binary decide its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A check said no: a signature is invalid, a build is not reproduced, a bundle was edited,
    /// a passphrase is wrong, or the channel refused a submission under its rules (exit 1).
    Rejected,
    /// Bad arguments, or a local precondition refused: a dirty tree, a key signing or revoking
    /// itself, an output that exists already (exit 2).
    Usage,
    /// The channel misbehaved: its answer's signature does not verify with the pinned key, a
    /// proof fails, an answer is malformed (exit 3). Never produced by hangar.
    ChannelMisbehaved,
    /// The channel could not be reached, or could not serve the request now (exit 4). Never
    /// produced by hangar.
    Unreachable,
    /// A local failure: a file that cannot be opened, read or written, a key file that is
    /// corrupt or readable by others, a tool (git) that cannot run (exit 5).
    Local,
}

impl ErrorKind {
    /// The process exit code of this kind: 1 rejected, 2 usage, 3 channel misbehaved,
    /// 4 unreachable, 5 local. (0 is success, which is not an error.)
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Rejected => 1,
            ErrorKind::Usage => 2,
            ErrorKind::ChannelMisbehaved => 3,
            ErrorKind::Unreachable => 4,
            ErrorKind::Local => 5,
        }
    }
}

impl ErrorKind {
    /// The kind's name in the `--json` error object (`{"error":{"kind":…}}`): `rejected`,
    /// `usage`, `channel_misbehaved`, `unreachable` or `local`. Stable: scripts match it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Rejected => "rejected",
            ErrorKind::Usage => "usage",
            ErrorKind::ChannelMisbehaved => "channel_misbehaved",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Local => "local",
        }
    }
}

/// The exit codes as `--help` shows them (after_help), for binaries that talk to a channel.
pub const EXIT_CODES_HELP_ONLINE: &str = "\
Exit codes:
  0  success
  1  a check said no: invalid signature, not reproduced, edited or tampered bundle,
     wrong passphrase, or the channel refused the submission under its rules
  2  usage: bad arguments, or a refused local precondition (dirty tree, a key
     revoking or signing itself, an output that exists already)
  3  the channel misbehaved: its answer does not verify with the pinned key, a
     proof fails, or an answer is malformed
  4  the channel cannot be reached (or cannot serve the request now)
  5  local failure: a file that cannot be opened, read or written, a corrupt or
     exposed key file, git that cannot run";

/// The exit codes as `--help` shows them (after_help), for the offline binary (hangar): the
/// same scheme without the channel's codes 3 and 4.
pub const EXIT_CODES_HELP_OFFLINE: &str = "\
Exit codes:
  0  success
  1  a check said no: edited or tampered bundle or archive, wrong passphrase,
     corrupt or mismatched backup shares
  2  usage: bad arguments, or a refused precondition (an output that exists
     already, no terminal to confirm on, a key of another role or supplier)
  5  local failure: a file that cannot be opened, read or written, a corrupt or
     exposed key file
(3 and 4 are the online tools' channel errors; hangar has no network.)";

/// Why a shared author-side operation failed: key files, passphrases, bundle files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A secret file or the private folder could not be used: I/O, permissions open to group or
    /// others, not a regular file, too large, or (when writing) already there. Carries the path.
    #[error(transparent)]
    SecretFile(#[from] SecretFileError),
    /// The private key folder could not be listed.
    #[error("could not list {path}")]
    ListKeys {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A key file is not a valid key file.
    #[error("key file {path} is not usable")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: KeyFileError,
    },
    /// The key file given holds a key of another role.
    #[error("{path} is a {found} key, not a {wanted} key", found = role_name(*found), wanted = role_name(*wanted))]
    WrongRole {
        /// The file.
        path: PathBuf,
        /// Its role.
        found: KeyRole,
        /// The role asked for.
        wanted: KeyRole,
    },
    /// No key file of the role in the private folder.
    #[error("no {role} key in {local} (create one with `{tool} key new --{role}`)", role = role_name(*role), local = local.display())]
    NoKey {
        /// The role asked for.
        role: KeyRole,
        /// The private folder.
        local: PathBuf,
        /// The program's name, for the hint.
        tool: &'static str,
    },
    /// Several key files of the role, and none was named.
    #[error("{count} {role} keys in {local}; say which one with a key file option", role = role_name(*role), local = local.display())]
    AmbiguousKey {
        /// How many.
        count: usize,
        /// The role.
        role: KeyRole,
        /// The private folder.
        local: PathBuf,
    },
    /// The passphrase is wrong, or the stored secret does not match the key file's public key.
    #[error("could not unlock key {}", public_key.fingerprint())]
    Unlock {
        /// The key file's public key.
        public_key: PublicKey,
        /// Why (wrong passphrase, corrupt file, bad derivation record).
        #[source]
        source: KeyFileError,
    },
    /// Deriving a key from a passphrase failed.
    #[error("key derivation failed")]
    Derive(#[source] KdfError),
    /// The thread running a key derivation failed.
    #[error("the key derivation thread failed")]
    DeriveThread,
    /// The Argon2i costs given on the command line are not acceptable.
    #[error("the derivation costs given are refused")]
    BadCosts(#[source] KdfError),
    /// A salt given on the command line is not hex.
    #[error("salt is not valid hex")]
    SaltNotHex(#[source] hex::FromHexError),
    /// A salt given on the command line has the wrong length.
    #[error("salt must be {len} bytes ({} hex digits)", len * 2)]
    SaltLength {
        /// The length required.
        len: usize,
    },
    /// The passphrase could not be read.
    #[error("could not read the passphrase from {from}")]
    ReadPassphrase {
        /// `stdin` or `the terminal`.
        from: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The passphrase read is empty.
    #[error("the passphrase {from} is empty")]
    EmptyPassphrase {
        /// Where it came from, e.g. `read from stdin`.
        from: &'static str,
    },
    /// The passphrase is longer than the limit.
    #[error("the passphrase is longer than {limit} bytes")]
    PassphraseTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// A passphrase is needed, no terminal is there to ask on, and `--passphrase-stdin` was not
    /// given.
    #[error(
        "this key needs its passphrase and there is no terminal to ask on: pass \
         --passphrase-stdin and write it on standard input"
    )]
    NoTerminalToUnlock,
    /// A new passphrase is needed and there is no terminal to ask on.
    #[error(
        "no terminal to ask for the new passphrase on: pass --passphrase-stdin (and write it \
         on standard input) or --generate-words 12|24"
    )]
    NoTerminalForNew,
    /// `--generate-words` got another count than 12 or 24.
    #[error("--generate-words must be 12 or 24, not {0:?}")]
    WordCount(String),
    /// Generating a passphrase failed.
    #[error("could not generate a passphrase")]
    GeneratePassphrase(#[source] KdfError),
    /// The two new passphrases typed differ.
    #[error("the two passphrases differ; nothing was written")]
    PassphrasesDiffer,
    /// A new key's passphrase is below the strength floor ([`crate::passphrase::MIN_SCORE`]).
    /// Carries zxcvbn's score and its advice, never the passphrase.
    #[error(
        "the passphrase is too weak for a new key (strength {score} of 4, at least {min} needed){advice}; \
         the key's salt and Argon2i costs are public in the channel's log, so anyone can try to \
         guess it offline. Use `--generate-words 12` (or 24) of `key new` for a generated \
         passphrase, or a longer one of several unrelated words; nothing was written \
         (`--allow-weak-passphrase` overrides this, not recommended)",
        min = crate::passphrase::MIN_SCORE,
        advice = if advice.is_empty() { String::new() } else { format!(": {advice}") }
    )]
    WeakPassphrase {
        /// zxcvbn's score, 0 to 4.
        score: u8,
        /// zxcvbn's warning and suggestions (about the passphrase's shape, not its text).
        advice: String,
    },
    /// A bundle file could not be opened.
    #[error("could not open {}{}", path.display(), permission_hint(source))]
    OpenBundle {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file could not be read.
    #[error("could not read {}{}", path.display(), permission_hint(source))]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A bundle file does not parse: damaged or edited (checksum, canonical form, size).
    #[error("{path} was refused (nothing was signed or written)")]
    BundleRefused {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: BundleError,
    },
    /// A file that is never overwritten exists already.
    #[error("{path} exists already; move it away or choose another output")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A new file could not be created.
    #[error("could not create {}{}", path.display(), permission_hint(source))]
    Create {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file could not be written (or synced).
    #[error("could not write {}{}", path.display(), permission_hint(source))]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// What kind of failure this is (decides the exit code).
    pub fn kind(&self) -> ErrorKind {
        match self {
            // Refusing to overwrite is a precondition the user fixes; everything else about a
            // secret file (I/O, permissions, not a regular file) is local.
            Error::SecretFile(SecretFileError::Exists(_)) => ErrorKind::Usage,
            Error::SecretFile(_) | Error::ListKeys { .. } | Error::KeyFile { .. } => {
                ErrorKind::Local
            }
            Error::Unlock { source, .. } => match source {
                KeyFileError::WrongPassphrase(_) | KeyFileError::Corrupt(_) => ErrorKind::Rejected,
                _ => ErrorKind::Local,
            },
            Error::WrongRole { .. }
            | Error::NoKey { .. }
            | Error::AmbiguousKey { .. }
            | Error::BadCosts(_)
            | Error::SaltNotHex(_)
            | Error::SaltLength { .. }
            | Error::EmptyPassphrase { .. }
            | Error::PassphraseTooLong { .. }
            | Error::NoTerminalToUnlock
            | Error::NoTerminalForNew
            | Error::WordCount(_)
            | Error::PassphrasesDiffer
            | Error::WeakPassphrase { .. }
            | Error::Exists { .. } => ErrorKind::Usage,
            Error::Derive(_)
            | Error::DeriveThread
            | Error::ReadPassphrase { .. }
            | Error::GeneratePassphrase(_)
            | Error::OpenBundle { .. }
            | Error::Read { .. }
            | Error::Create { .. }
            | Error::Write { .. } => ErrorKind::Local,
            Error::BundleRefused { .. } => ErrorKind::Rejected,
        }
    }
}

/// The fix for a refused file operation, for messages that name the file: empty for other
/// causes (the cause itself is printed after the message by [`report`]).
pub fn permission_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::PermissionDenied {
        " (permission denied: run as the user who owns the folder, fix its permissions, or pass \
         another --dir)"
    } else {
        ""
    }
}

/// An error and all its causes on one line, `outer: cause: cause`, as `main` prints it.
pub fn report(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn role_name(role: KeyRole) -> &'static str {
    crate::keys::role_name(role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_documented_code() {
        let codes: Vec<u8> = [
            ErrorKind::Rejected,
            ErrorKind::Usage,
            ErrorKind::ChannelMisbehaved,
            ErrorKind::Unreachable,
            ErrorKind::Local,
        ]
        .into_iter()
        .map(ErrorKind::exit_code)
        .collect();
        assert_eq!(codes, [1, 2, 3, 4, 5]);
        for code in 1..=5 {
            assert!(EXIT_CODES_HELP_ONLINE.contains(&format!("  {code}  ")));
        }
        assert!(!EXIT_CODES_HELP_OFFLINE.contains("  3  "));
    }

    #[test]
    fn the_report_names_every_cause_once() {
        let e = Error::Read {
            path: PathBuf::from("/x/y"),
            source: io::Error::other("disk on fire"),
        };
        assert_eq!(report(&e), "could not read /x/y: disk on fire");
        assert_eq!(e.kind(), ErrorKind::Local);
        let e = Error::from(SecretFileError::Exists(PathBuf::from("/k")));
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert_eq!(report(&e).matches("/k").count(), 1, "{}", report(&e));
    }
}
