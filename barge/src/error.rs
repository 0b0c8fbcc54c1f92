//! barge's errors: what went wrong, with the path or URL where I/O failed, and the cause as the
//! `#[source]` (never repeated in the message). Each has a [`kind`](Error::kind); `main` turns
//! the kind into the exit code with [`shipyard::ErrorKind::exit_code`], the one scheme hangar
//! uses too. The channel's misbehaviour has its own enum, [`Misbehaved`], so that "the channel
//! lied" can never be mistaken for "the channel said no" or "the network is down".

use std::io;
use std::path::PathBuf;

use keyggdrasil::archive::{ArchiveError, ManifestError};
use keyggdrasil::archive_check::ArchiveMismatch;
use keyggdrasil::bundle::BundleError;
use keyggdrasil::encoding::HexError;
use keyggdrasil::entry::EntryError;
use keyggdrasil::keyfile::KeyRole;
use keyggdrasil::keys::{KeyError, PublicKey};
use keyggdrasil::lookup::LookupError;
use keyggdrasil::merkle::MerkleError;
use keyggdrasil::names::NameError;
use keyggdrasil::os::secretfile::SecretFileError;
use keyggdrasil::wire::{ErrorCode, WireError};
use shipyard::ErrorKind;
use shipyard::error::permission_hint;
use shipyard::keys::role_name;

/// Why a barge command failed. Messages are lowercase and never contain secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key, passphrase or bundle-file failure shared with hangar.
    #[error(transparent)]
    Shared(#[from] shipyard::Error),
    /// `barge.toml` could not be read.
    #[error("could not read {path} (run `barge init` first, or pass --dir)")]
    NoConfig {
        /// The config file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `barge.toml` is not a valid config.
    #[error("{path} is not a valid barge config")]
    BadConfig {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: toml::de::Error,
    },
    /// The config could not be serialised.
    #[error("could not write the config")]
    WriteConfig(#[source] toml::ser::Error),
    /// `barge init` found a config already.
    #[error("{path} already exists; refusing to overwrite it")]
    ConfigExists {
        /// The config file.
        path: PathBuf,
    },
    /// The channel URL is not http(s).
    #[error(
        "channel URL {0:?} must start with http:// or https:// (fix `channel` in barge.toml, or \
         --channel of barge init)"
    )]
    ChannelUrl(String),
    /// A public key given (channel key, `--public-key`, `--signer`, a key to revoke) is invalid.
    #[error("{what} is not a valid public key")]
    BadPublicKey {
        /// Which argument, e.g. `channel key`, `--public-key`.
        what: String,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// A supplier, package or version name is invalid.
    #[error("{what} {value:?}")]
    BadName {
        /// `supplier name`, `package name` or `version`.
        what: &'static str,
        /// The text given.
        value: String,
        /// Why it is refused.
        #[source]
        source: NameError,
    },
    /// A `--rollout` spec is refused (see `barge rollout --help`).
    #[error("--rollout {value:?}: {problem}")]
    BadRollout {
        /// The text given (cut to 256 characters).
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// `--reason` is refused (too long, control characters).
    #[error("--reason")]
    BadReason(#[source] EntryError),
    /// `verify-build`'s target is not `SUPPLIER/PACKAGE`.
    #[error("{0:?} is not SUPPLIER/PACKAGE (e.g. acme/hello)")]
    BadTarget(String),
    /// No signature was given to `verify`.
    #[error("no signature given")]
    NoSignature,
    /// The signature check could not be carried out (other than by I/O or a mismatch).
    #[error("could not check the signature of {}", path.display())]
    SignatureCheck {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: keyggdrasil::filesig::FileSigError,
    },
    /// A signature given is not 64 bytes of hex.
    #[error("the signature is malformed")]
    BadSignatureText(#[source] HexError),
    /// A file could not be opened, read, created or written.
    #[error("{action} {}{}", path.display(), permission_hint(source))]
    Io {
        /// What was being done, e.g. `could not open`.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An output file exists already and is never overwritten.
    #[error("{path} exists already; move it away or pass --out")]
    OutputExists {
        /// The file.
        path: PathBuf,
    },
    /// git could not be run.
    #[error("could not run git")]
    RunGit(#[source] io::Error),
    /// git failed on a command that should work.
    #[error("{what} failed in {path}: {stderr}")]
    GitFailed {
        /// What was asked of git.
        what: &'static str,
        /// The repository.
        path: PathBuf,
        /// git's own words (its stderr, trimmed).
        stderr: String,
    },
    /// The source folder is not a git checkout (and `--allow-dirty` was not given).
    #[error(
        "{} is not a git checkout (git: {stderr}); commit your sources first, or pass --allow-dirty",
        path.display()
    )]
    NotACheckout {
        /// The folder.
        path: PathBuf,
        /// git's words.
        stderr: String,
    },
    /// The checkout has uncommitted changes (and `--allow-dirty` was not given).
    #[error(
        "{} has uncommitted changes (git status --porcelain is not empty); commit them, or pass \
         --allow-dirty",
        path.display()
    )]
    DirtyTree {
        /// The checkout.
        path: PathBuf,
    },
    /// `--source` is not a git repository.
    #[error(
        "{} is not a git repository: give --source a clone of the package's sources",
        path.display()
    )]
    NotARepository {
        /// The folder.
        path: PathBuf,
    },
    /// The logged commit is not in the repository given.
    #[error(
        "commit {commit} is not in the repository at {}: fetch it (git fetch) and try again",
        path.display()
    )]
    CommitMissing {
        /// The commit.
        commit: String,
        /// The repository.
        path: PathBuf,
    },
    /// Hashing an archive failed (reading it failed).
    #[error("could not hash the archive")]
    Hash(#[source] io::Error),
    /// The manifest of an archive could not be made (a name or commit the format refuses).
    #[error("invalid manifest")]
    Manifest(#[source] ManifestError),
    /// The archive of a tree could not be built.
    #[error("could not build an archive of {}", path.display())]
    BuildArchive {
        /// The tree.
        path: PathBuf,
        /// Why.
        #[source]
        source: ArchiveError,
    },
    /// The built commit is not a valid git commit id.
    #[error("the commit is not a valid git commit")]
    BadCommit(#[source] EntryError),
    /// An entry could not be signed (its body breaks the entry format).
    #[error("could not sign the entry")]
    SignEntry(#[source] EntryError),
    /// A bundle could not be built (the request breaks the bundle format).
    #[error("could not build the bundle")]
    BuildBundle(#[source] BundleError),
    /// A key named on the command line matches no key file.
    #[error(
        "no key in {} matches {text:?}; give a public key (64 hex), a key file path, or a \
         prefix of a key file name or fingerprint (see `barge key list`)",
        local.display()
    )]
    NoSuchKey {
        /// The text given.
        text: String,
        /// The private folder.
        local: PathBuf,
    },
    /// A key named on the command line matches several key files.
    #[error("{count} keys in {} match {text:?}; give more characters", local.display())]
    AmbiguousKeyName {
        /// How many match.
        count: usize,
        /// The text given.
        text: String,
        /// The private folder.
        local: PathBuf,
    },
    /// An empty key name.
    #[error("an empty key name matches nothing")]
    EmptyKeyName,
    /// A key given for signing has no key file here.
    #[error("no key file for {option} {text:?}: {why}")]
    NoKeyFile {
        /// The option, e.g. `--by`.
        option: &'static str,
        /// The text given.
        text: String,
        /// Why one is needed.
        why: &'static str,
    },
    /// No other master key to sign a revocation.
    #[error(
        "no other master key in {} to sign the revocation: a key cannot revoke itself, and the \
         channel never lets a supplier revoke its last master key",
        local.display()
    )]
    NoOtherMaster {
        /// The private folder.
        local: PathBuf,
    },
    /// Several other master keys, and `--by` was not given.
    #[error("{count} other master keys in {}; say which one signs with --by", local.display())]
    ManyOtherMasters {
        /// How many.
        count: usize,
        /// The private folder.
        local: PathBuf,
    },
    /// The key given may not sign this (e.g. a signing key revoking keys).
    #[error("{} is a {} key; {needed}", path.display(), role_name(*role))]
    KeyMayNotSign {
        /// The key file.
        path: PathBuf,
        /// Its role.
        role: KeyRole,
        /// What is needed, e.g. `only a master key can revoke keys`.
        needed: &'static str,
    },
    /// A key would revoke itself.
    #[error(
        "refusing to revoke key {} with itself: a revocation must be signed by another current \
         master key (pass --by)",
        key.fingerprint()
    )]
    SelfRevocation {
        /// The key.
        key: PublicKey,
    },
    /// A prepared revocation names its own signer.
    #[error(
        "a key cannot revoke itself: sign the revocation with another master key (--master-key)"
    )]
    SelfRevocationBundle,
    /// A key would add (sign) itself.
    #[error(
        "{} would sign itself: give the current master key with --master-key and the new one \
         with --new-master",
        key.fingerprint()
    )]
    SelfSigning {
        /// The key.
        key: PublicKey,
    },
    /// A key of a role that cannot be added to a supplier (channel, notary).
    #[error("only master and signing keys can be added to a supplier")]
    NotAddable,
    /// A release revocation named a key that is neither master nor signing.
    #[error("a release revocation is signed by a master or signing key")]
    NotASupplierKey,
    /// `barge verify --proof`: the offline proof, or the archive against it, does not hold.
    #[error("INVALID: {0}")]
    ProofInvalid(String),
    /// `barge verify` found a signature that does not verify.
    #[error(
        "INVALID: the signature of {} does not verify with key {}",
        path.display(),
        key.fingerprint()
    )]
    SignatureInvalid {
        /// The file.
        path: PathBuf,
        /// The key.
        key: PublicKey,
    },
    /// The release is not in the channel's verified log.
    #[error(
        "{name} is not in the channel's log (checked {size} entries under the checkpoint signed \
         by the channel key {}); check the name and version",
        channel_key.fingerprint()
    )]
    NotLogged {
        /// `supplier/package version`.
        name: String,
        /// The checked log size.
        size: u64,
        /// The pinned channel key.
        channel_key: PublicKey,
    },
    /// The release was made from a tree that was no git checkout.
    #[error(
        "{name} was released from a tree that was not a git checkout (the all-zero commit): \
         nobody can rebuild it"
    )]
    NotRebuildable {
        /// `supplier/package version`.
        name: String,
    },
    /// The rebuilt archive differs from the logged one.
    #[error(
        "NOT REPRODUCED: rebuilding {name} from commit {commit} gives {size} bytes with digest \
         {digest}, but the log says {logged_size} bytes with digest {logged_digest}. The released \
         archive was not built from that commit as barge builds it (or your checkout differs, \
         e.g. by core.autocrlf); do not attest it"
    )]
    NotReproduced {
        /// `supplier/package version`.
        name: String,
        /// The commit.
        commit: String,
        /// Rebuilt size.
        size: u64,
        /// Rebuilt digest, hex.
        digest: String,
        /// Logged size.
        logged_size: u64,
        /// Logged digest, hex.
        logged_digest: String,
    },
    /// The rebuilt archive has the logged digest but the logged archive signature does not
    /// verify over it.
    #[error(
        "the rebuilt archive of {name} has the logged digest, but the archive signature in the \
         release entry does not verify over it with the release's signing key {}; do not \
         attest it",
        signer.fingerprint()
    )]
    RebuiltSignatureInvalid {
        /// `supplier/package version`.
        name: String,
        /// The release's signing key.
        signer: PublicKey,
    },
    /// The attesting key is not a current key of the supplier in the log.
    #[error(
        "key {} is not a current key of supplier {supplier} in the log: register it first \
         (`barge key register` / `barge key add`)",
        key.fingerprint()
    )]
    NotCurrentKey {
        /// The key.
        key: PublicKey,
        /// The supplier.
        supplier: String,
    },
    /// `publish` got a bundle that is not signed yet.
    #[error(
        "{} is not signed yet: carry it to the air-gapped machine and run `hangar sign`",
        path.display()
    )]
    NotSigned {
        /// The bundle.
        path: PathBuf,
    },
    /// The bundle's request was not prepared on this machine.
    #[error(
        "the request in {} (fingerprint {fingerprint}) was not prepared here: refusing to \
         publish what this machine did not ask for",
        path.display()
    )]
    NotPrepared {
        /// The bundle.
        path: PathBuf,
        /// Its fingerprint.
        fingerprint: String,
        /// Why the record could not be read.
        #[source]
        source: SecretFileError,
    },
    /// The bundle's request differs from the one prepared here.
    #[error(
        "the request in {} differs from the one prepared here: refusing to publish",
        path.display()
    )]
    RequestDiffers {
        /// The bundle.
        path: PathBuf,
    },
    /// The signed bundle's signatures do not verify.
    #[error("{} was refused; nothing was submitted", path.display())]
    BundleSignature {
        /// The bundle.
        path: PathBuf,
        /// Why.
        #[source]
        source: BundleError,
    },
    /// The bundle is for another supplier than this folder.
    #[error("the bundle is for supplier {bundle}, this folder is for {folder}")]
    OtherSupplier {
        /// The bundle's supplier.
        bundle: String,
        /// This folder's.
        folder: String,
    },
    /// The bundle is for another channel.
    #[error(
        "the bundle is for channel {bundle}, but {url} is channel {channel}; nothing was submitted"
    )]
    OtherChannel {
        /// The bundle's origin.
        bundle: String,
        /// The configured URL.
        url: String,
        /// The origin that channel signs.
        channel: String,
    },
    /// The archive differs from the one the signed bundle names.
    #[error(
        "the archive {} does not match the signed bundle; nothing was submitted",
        path.display()
    )]
    ArchiveMismatch {
        /// The archive.
        path: PathBuf,
        /// How it differs.
        #[source]
        source: ArchiveMismatch,
    },
    /// A request body could not be encoded.
    #[error("could not encode the request")]
    EncodeRequest(#[source] serde_json::Error),
    /// The channel could not be reached, or could not serve the request now.
    #[error(
        "could not reach {url} (check the channel URL, `channel` in barge.toml or --channel of \
         barge init, and that the channel is up; for a TLS or certificate error, that the URL's \
         host name is the one in the channel's certificate and that the system trusts its \
         issuer)"
    )]
    Unreachable {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The channel answered with an error: it refused under its rules, or could not serve now.
    #[error(
        "the channel refused ({url}, HTTP {status}, {}): {}",
        code.as_str().escape_debug(),
        message.escape_debug()
    )]
    Refused {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The stable error code.
        code: ErrorCode,
        /// The channel's words (printed escaped: they come from the network).
        message: String,
    },
    /// The channel's policy needs an invite token and none was given.
    #[error(
        "the channel refused the entry (invite_required): {}; pass --invite TOKEN or --invite-file FILE",
        message.escape_debug()
    )]
    InviteRequired {
        /// The channel's words.
        message: String,
    },
    /// The channel answered a rollout submission as a duplicate: the entry was logged before,
    /// so nothing new was logged now and the schedule need not be the one it sets.
    #[error(
        "the channel already had this rollout entry for {what} at index {index} and logged \
         nothing new: the release's schedule is not necessarily the one asked for (a rollout \
         entry is valid once; a later one may have replaced it). Run `barge rollout` again: it \
         reads the current schedule first"
    )]
    RolloutDuplicate {
        /// The release (`supplier/package version`) or the bundle.
        what: String,
        /// The index of the earlier copy.
        index: u64,
    },
    /// The channel misbehaved: see [`Misbehaved`]. Boxed: it is large and rare, and every
    /// `Result` of barge carries this enum.
    #[error(transparent)]
    Misbehaved(Box<Misbehaved>),
    /// `barge monitor` was asked something it cannot do.
    #[error("{0}")]
    MonitorUsage(String),
    /// The monitor's journal or state file cannot be used.
    #[error("{}: {problem}; move it away to start over (the next run then re-reads the whole log)", path.display())]
    MonitorState {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        problem: String,
    },
}

/// A channel answer that is wrong, not merely negative: it fails a signature or proof check
/// against the pinned key, or is malformed. Exit 3.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Misbehaved {
    /// An answer that does not parse as the envelope it must be, or is too large.
    #[error("the channel's answer to {url} (HTTP {status}) is malformed")]
    Malformed {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Why.
        #[source]
        source: WireError,
    },
    /// An answer body larger than the limit for its kind.
    #[error("could not read the answer of {url}")]
    Body {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The checkpoint's signature (or version, size bound) does not verify with the pinned key.
    #[error("the channel's checkpoint does not verify with the pinned channel key")]
    Checkpoint(#[source] WireError),
    /// Pin first: the channel's signed answer (its checkpoint, or its answer to a fresh
    /// challenge) does not verify with the pinned channel key, or does not echo the challenge.
    #[error(
        "the channel's signed answer to {url} does not verify with the pinned channel key {} \
         (channel_key in barge.toml, or --channel-key of barge init); nothing was sent or \
         written. Either the key is wrong (compare it with the key the channel's operator \
         published) or this is not that channel (check the URL)",
        channel_key.fingerprint()
    )]
    Pin {
        /// The URL whose answer failed.
        url: String,
        /// The pinned key.
        channel_key: PublicKey,
        /// Why.
        #[source]
        source: WireError,
    },
    /// The answered leaf hash is not the hash of the submitted entry.
    #[error("the channel answered a leaf hash that is not the hash of our entry")]
    LeafHash,
    /// The uploaded archive was stored with another size or digest.
    #[error("the channel stored an archive of another size or digest")]
    StoredOther,
    /// The signed checkpoint stays below the size the channel answered for a submission.
    #[error(
        "the channel's signed checkpoint is at size {checkpoint}, below the size {answered} it \
         answered for our submission"
    )]
    CheckpointBehind {
        /// The checkpoint's size.
        checkpoint: u64,
        /// The size answered at submission.
        answered: u64,
    },
    /// An inclusion proof for another index or size than asked for.
    #[error(
        "the channel answered a proof for index {index} size {size} when asked for index \
         {asked_index} size {asked_size}"
    )]
    ProofFor {
        /// Index answered.
        index: u64,
        /// Size answered.
        size: u64,
        /// Index asked.
        asked_index: u64,
        /// Size asked.
        asked_size: u64,
    },
    /// An inclusion proof that is malformed.
    #[error("bad inclusion proof from the channel")]
    BadProof(#[source] WireError),
    /// An inclusion proof that does not lead to the signed root.
    #[error("the inclusion proof does not lead to the signed checkpoint root")]
    Inclusion(#[source] MerkleError),
    /// A signed answer (an update page, a consistency proof, a checkpoint note, a notary's
    /// answer) that fails verification: what `barge monitor` reads.
    #[error("the answer of {url} failed verification: {detail}")]
    Answer {
        /// The URL.
        url: String,
        /// What failed.
        detail: String,
    },
    /// A `/v1/release` answer that does not check out against the signed checkpoint.
    #[error("the channel's answer to {url} does not check out against its signed checkpoint")]
    Lookup {
        /// The URL.
        url: String,
        /// What is wrong.
        #[source]
        source: LookupError,
    },
}

impl Error {
    /// What kind of failure this is (decides the exit code).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Shared(e) => e.kind(),
            Error::NoConfig { .. }
            | Error::ConfigExists { .. }
            | Error::ChannelUrl(_)
            | Error::BadPublicKey { .. }
            | Error::BadName { .. }
            | Error::BadReason(_)
            | Error::BadRollout { .. }
            | Error::BadTarget(_)
            | Error::BadSignatureText(_)
            | Error::NoSignature
            | Error::OutputExists { .. }
            | Error::NotACheckout { .. }
            | Error::DirtyTree { .. }
            | Error::NotARepository { .. }
            | Error::CommitMissing { .. }
            | Error::NoSuchKey { .. }
            | Error::AmbiguousKeyName { .. }
            | Error::EmptyKeyName
            | Error::NoKeyFile { .. }
            | Error::NoOtherMaster { .. }
            | Error::ManyOtherMasters { .. }
            | Error::KeyMayNotSign { .. }
            | Error::SelfRevocation { .. }
            | Error::SelfRevocationBundle
            | Error::SelfSigning { .. }
            | Error::NotAddable
            | Error::NotASupplierKey
            | Error::NotSigned { .. }
            | Error::OtherSupplier { .. }
            | Error::OtherChannel { .. } => ErrorKind::Usage,
            Error::SignatureInvalid { .. }
            | Error::ProofInvalid(_)
            | Error::NotLogged { .. }
            | Error::NotRebuildable { .. }
            | Error::NotReproduced { .. }
            | Error::RebuiltSignatureInvalid { .. }
            | Error::NotCurrentKey { .. }
            | Error::NotPrepared { .. }
            | Error::RequestDiffers { .. }
            | Error::BundleSignature { .. }
            | Error::ArchiveMismatch { .. }
            | Error::RolloutDuplicate { .. }
            | Error::InviteRequired { .. } => ErrorKind::Rejected,
            Error::Refused { code, .. } => refusal_kind(code),
            Error::Unreachable { .. } => ErrorKind::Unreachable,
            Error::Misbehaved(_) => ErrorKind::ChannelMisbehaved,
            Error::MonitorUsage(_) => ErrorKind::Usage,
            Error::MonitorState { .. } => ErrorKind::Local,
            Error::SignatureCheck { .. }
            | Error::BadConfig { .. }
            | Error::WriteConfig(_)
            | Error::Io { .. }
            | Error::RunGit(_)
            | Error::Hash(_)
            | Error::GitFailed { .. }
            | Error::Manifest(_)
            | Error::BuildArchive { .. }
            | Error::BadCommit(_)
            | Error::SignEntry(_)
            | Error::EncodeRequest(_)
            | Error::BuildBundle(_) => ErrorKind::Local,
        }
    }
}

impl From<Misbehaved> for Error {
    fn from(e: Misbehaved) -> Self {
        Error::Misbehaved(Box::new(e))
    }
}

/// Secret-file failures (I/O, permissions) are the shared ones, so they have one kind whichever
/// crate met them.
impl From<SecretFileError> for Error {
    fn from(e: SecretFileError) -> Self {
        Error::Shared(shipyard::Error::SecretFile(e))
    }
}

/// A channel's error answer: a refusal under its rules (exit 1), or a sign that it cannot serve
/// now and a later try may work (exit 4, like an unreachable channel).
fn refusal_kind(code: &ErrorCode) -> ErrorKind {
    match code {
        ErrorCode::RateLimited
        | ErrorCode::Busy
        | ErrorCode::Timeout
        | ErrorCode::ShuttingDown
        | ErrorCode::Storage
        | ErrorCode::SignerUnavailable
        | ErrorCode::UploadInterrupted
        | ErrorCode::Internal => ErrorKind::Unreachable,
        _ => ErrorKind::Rejected,
    }
}

/// `Error::Io` for `action` on `path`: `.map_err(io_at("could not read", &path))`.
pub fn io_at<'p>(
    action: &'static str,
    path: &'p std::path::Path,
) -> impl FnOnce(io::Error) -> Error + 'p {
    move |source| Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_channel_answers_are_unreachable_and_rule_refusals_rejected() {
        assert_eq!(refusal_kind(&ErrorCode::Busy), ErrorKind::Unreachable);
        assert_eq!(
            refusal_kind(&ErrorCode::RateLimited),
            ErrorKind::Unreachable
        );
        assert_eq!(refusal_kind(&ErrorCode::InviteInvalid), ErrorKind::Rejected);
        assert_eq!(
            refusal_kind(&ErrorCode::KeyRule("not_current_signing_key")),
            ErrorKind::Rejected
        );
    }

    /// Tests run as root, where the file system refuses nothing, so the refusal is made here.
    #[test]
    fn a_permission_error_names_the_path_and_the_fix() {
        let e = io_at(
            "could not write",
            std::path::Path::new("/srv/acme/dist/x.zip"),
        )(io::Error::from(io::ErrorKind::PermissionDenied));
        let text = shipyard::report(&e);
        assert!(text.starts_with("could not write /srv/acme/dist/x.zip (permission denied: "));
        assert!(text.contains("--dir"), "{text}");
        assert_eq!(e.kind(), ErrorKind::Local);
    }

    #[test]
    fn io_errors_name_the_path_once_and_are_local() {
        let e = io_at("could not open", std::path::Path::new("/no/such"))(io::Error::from(
            io::ErrorKind::NotFound,
        ));
        assert_eq!(e.kind(), ErrorKind::Local);
        let text = shipyard::report(&e);
        assert!(text.starts_with("could not open /no/such: "), "{text}");
        assert_eq!(text.matches("/no/such").count(), 1, "{text}");
    }
}
