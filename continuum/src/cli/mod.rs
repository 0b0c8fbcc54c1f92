//! The commands of the `continuum` binary, one module each, and the error they return to
//! `main`.
//!
//! A command prints what it did; on failure it returns a [`CliError`], whose
//! [`CliError::kind`] decides the exit code in `main`. Parsing an argument into its type
//! (package name, key, policy, channel name) happens in clap, through the `parse_*`
//! functions here, so a malformed argument is a usage error before anything runs.

pub mod check;
pub mod info;
pub mod init;
pub mod list;
pub mod notary;
pub mod peers;
pub mod remove;
pub mod rollback;
pub mod status;
pub mod update;
pub mod verify_proof;

use continuum::config::{ConfigError, EditError, UpdatePolicy};
use continuum::db::DbError;
use continuum::error::ErrorKind;
use continuum::install::InstallError;
use continuum::lock::LockError;
use continuum::notary::NotaryError;
use continuum::site::SiteError;
use continuum::update::UpdateError;
use keyggdrasil::keys::PublicKey;
use keyggdrasil::names::{ChannelName, PackageName, SupplierName};
use thiserror::Error;

/// The exit codes, as `--help` shows them.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  up to date, or updated
  1  (status only) something needs attention
  2  usage error
  3  verification failed: the channel or the peers misbehaved (site unchanged)
  4  the channel or enough peers could not be reached (site unchanged)
  5  local error (config, disk, database, permissions)
  6  another update is running";

/// Why a command failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CliError {
    /// The site's config is missing, unreadable, invalid, or could not be written.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config edit asked for was refused; nothing was changed.
    #[error(transparent)]
    Edit(#[from] EditError),
    /// `init`, `status` or the site secret failed.
    #[error(transparent)]
    Site(#[from] SiteError),
    /// An update run failed; `update` has printed the failure already.
    #[error(transparent)]
    Update(Box<UpdateError>),
    /// A rollback failed.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// The site database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Rollback could not take the site's lock.
    #[error("{}", lock_message(.0))]
    Lock(#[source] LockError),
    /// The notary endpoint could not start or stopped.
    #[error(transparent)]
    Notary(#[from] NotaryError),
    /// A version stored in the site database does not parse (the database was edited?).
    #[error("the site database holds the version {version:?}")]
    StoredVersion {
        /// What it holds.
        version: String,
        /// Why it is not a version.
        #[source]
        source: keyggdrasil::names::NameError,
    },
    /// `notary serve` without `--listen` and without `site.notary_listen`.
    #[error("no --listen given and no site.notary_listen in the config")]
    NoListenAddress,
    /// `peers add` could not verify the peer's key (unreachable, or it did not prove it).
    #[error(transparent)]
    PeerCheck(#[from] continuum::peers::PeerCheckError),
    /// A local I/O step of a command failed (starting the runtime, binding, writing stdout).
    #[error("could not {operation}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `rollback` to a version that the log revoked, without `--allow-revoked`; nothing was
    /// changed.
    #[error(
        "{package}: refusing to roll back to {version}: {revocation}; pass --allow-revoked to roll back to it anyway"
    )]
    RevokedTarget {
        /// `supplier/package`.
        package: String,
        /// The previous version.
        version: String,
        /// The revocation entry and its reason.
        revocation: String,
    },
    /// `verify-proof`: the offline proof does not hold (or is not a proof of a release of
    /// one of this site's channels).
    #[error("the proof does not verify: {0}")]
    Proof(String),
    /// `check` found damage it did not repair; it printed what.
    #[error("{channels} channel(s) damaged")]
    Damaged {
        /// How many channels.
        channels: usize,
    },
    /// The key-state snapshot could not be read or checked.
    #[error(transparent)]
    State(#[from] continuum::snapshot::StateError),
    /// `status` found something that needs a person's attention; it printed the warnings.
    #[error("{warnings} warnings need attention")]
    NeedsAttention {
        /// How many.
        warnings: usize,
    },
}

fn lock_message(e: &LockError) -> String {
    match e {
        LockError::Busy => {
            "an update is running; try the rollback again when it is done".to_owned()
        }
        other => other.to_string(),
    }
}

impl CliError {
    /// The kind, which decides the exit code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CliError::Config(e) => e.kind(),
            CliError::Edit(e) => e.kind(),
            CliError::Site(e) => e.kind(),
            CliError::Update(e) => e.kind(),
            CliError::Install(e) => e.kind(),
            CliError::Lock(e) => e.kind(),
            CliError::NoListenAddress | CliError::RevokedTarget { .. } => ErrorKind::Usage,
            CliError::PeerCheck(e) => e.kind(),
            CliError::NeedsAttention { .. } => ErrorKind::NeedsAttention,
            CliError::Proof(_) => ErrorKind::Verification,
            CliError::Db(_)
            | CliError::Damaged { .. }
            | CliError::State(_)
            | CliError::StoredVersion { .. }
            | CliError::Notary(_)
            | CliError::Io { .. } => ErrorKind::Local,
        }
    }

    /// True if the command has told the operator already (an update's failure, `status`'s
    /// warnings), so `main` prints nothing more.
    pub fn reported(&self) -> bool {
        matches!(
            self,
            CliError::Update(_) | CliError::NeedsAttention { .. } | CliError::Damaged { .. }
        )
    }
}

/// The one error object every command prints on stdout with `--json` when it fails (the same
/// shape as channel-server's): `{"error":{"kind","message","exit_code"}}`. `kind` is
/// [`ErrorKind::as_str`].
pub fn error_json(kind: ErrorKind, message: &str) -> serde_json::Value {
    serde_json::json!({
        "error": {
            "kind": kind.as_str(),
            "message": message,
            "exit_code": kind.exit_code(),
        }
    })
}

/// Whether log lines on stderr may carry ANSI colour: only on a terminal, and never when
/// `NO_COLOR` is set (<https://no-color.org>), so files and journald get plain text.
pub fn colour_on_stderr() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Prints a sentence for a person: on stdout, or on stderr when stdout carries `--json`'s
/// one object.
pub fn say(json: bool, text: impl AsRef<str>) {
    if json {
        eprintln!("{}", text.as_ref());
    } else {
        println!("{}", text.as_ref());
    }
}

/// Prints one JSON value on stdout, on one line.
pub fn print_json(value: &serde_json::Value) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}").map_err(|source| CliError::Io {
        operation: "write to stdout",
        source,
    })
}

/// A `supplier/package` argument.
#[derive(Debug, Clone)]
pub struct PackageArg {
    /// The supplier.
    pub supplier: SupplierName,
    /// The package.
    pub name: PackageName,
}

impl std::fmt::Display for PackageArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.supplier, self.name)
    }
}

/// Parses `supplier/package` (clap value parser).
pub fn parse_package(text: &str) -> Result<PackageArg, String> {
    let (s, p) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: expected supplier/package"))?;
    Ok(PackageArg {
        supplier: SupplierName::parse(s).map_err(|e| e.to_string())?,
        name: PackageName::parse(p).map_err(|e| e.to_string())?,
    })
}

/// Parses a public key in hex (clap value parser).
pub fn parse_key(text: &str) -> Result<PublicKey, String> {
    PublicKey::from_hex(text).map_err(|e| e.to_string())
}

/// Parses a channel name (clap value parser).
pub fn parse_channel(text: &str) -> Result<ChannelName, String> {
    ChannelName::parse(text).map_err(|e| e.to_string())
}

/// Parses an update policy as the config file spells it (clap value parser).
pub fn parse_policy(text: &str) -> Result<UpdatePolicy, String> {
    toml::Value::String(text.to_owned())
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_owned())
}
