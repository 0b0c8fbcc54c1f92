//! `hangar`: the air-gapped half of the authors' tools. It holds master and signing keys on a
//! machine that never touches a network, signs request bundles that `barge prepare` wrote on
//! the online machine, and splits or recombines key backups.
//!
//! What it does: `key new|list|from-passphrase` (the same as barge's, via `shipyard`), `sign
//! BUNDLE`, `backup split` and `backup combine`. What it does not do: talk to any network. No
//! HTTP, TLS, DNS or socket crate is linked in (a test runs `cargo tree -p hangar` and fails if
//! one appears); bundles travel on removable media.
//!
//! The process makes itself non-dumpable with a zero core-size limit before it reads any secret
//! (`keyggdrasil::os::lockmem::harden_process`), and keeps unlocked key pairs and seeds in
//! `LockedBox` (mlocked, excluded from core dumps, wiped on drop) where the OS allows it.
#![forbid(unsafe_code)]

mod backup;
mod error;
mod shares;
mod sign;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
pub use error::Error;
use shipyard::output::{Output, warn_loudly};

/// Environment variable that, set to `cheap`, makes new keys use the smallest Argon2i costs.
/// FOR TESTS ONLY: such keys are easy to brute-force. A warning is printed each time.
pub const TEST_KDF_ENV: &str = "HANGAR_TEST_KDF";

/// hangar, for shipyard's messages and its test-KDF switch.
pub const TOOL: shipyard::Tool = shipyard::Tool {
    name: "hangar",
    test_kdf_env: TEST_KDF_ENV,
};

/// Air-gapped signing: key management, bundle signing and key backups, with no network code.
#[derive(Debug, Parser)]
#[command(name = "hangar", version, about)]
pub struct Cli {
    /// The folder holding `local/` (keys).
    #[arg(long, global = true, default_value = ".")]
    pub dir: PathBuf,
    /// Print machine-readable JSON on stdout instead of sentences.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage keys (the same commands as `barge key`, minus the ones that need the channel).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Show a request bundle, ask for confirmation and the passphrase, and write the signed bundle.
    Sign(sign::Args),
    /// Split a key's seed into shares, or recover it from them.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
}

/// The `hangar key` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Derive a new master or signing key from a passphrase (Argon2i, fresh salt).
    New(KeyNewArgs),
    /// List the key files in `local/`.
    List,
    /// Re-derive a key from its passphrase and recorded salt and costs; prints the public key.
    FromPassphrase(shipyard::keys::FromPassphraseArgs),
}

/// Arguments of `hangar key new`.
#[derive(Debug, clap::Args)]
pub struct KeyNewArgs {
    /// The supplier the key belongs to (recorded in the key file; checked when signing).
    #[arg(long)]
    pub supplier: Option<String>,
    #[command(flatten)]
    pub key: shipyard::keys::NewArgs,
}

fn run(cli: Cli) -> Result<(), Error> {
    let out = Output { json: cli.json };
    match cli.command {
        Command::Key(KeyCommand::New(a)) => {
            let supplier = a
                .supplier
                .as_deref()
                .map(keyggdrasil::names::SupplierName::parse)
                .transpose()
                .map_err(|source| Error::BadSupplier {
                    value: a.supplier.clone().unwrap_or_default(),
                    source,
                })?;
            Ok(shipyard::keys::new_key(
                &TOOL, &cli.dir, &out, supplier, a.key,
            )?)
        }
        Command::Key(KeyCommand::List) => Ok(shipyard::keys::list(&cli.dir, &out)?),
        Command::Key(KeyCommand::FromPassphrase(a)) => {
            Ok(shipyard::keys::from_passphrase(&out, a)?)
        }
        Command::Sign(a) => sign::run(&cli.dir, &out, a),
        Command::Backup(b) => backup::run(&cli.dir, &out, b),
    }
}

/// One example per subcommand, shown at the end of its `--help` with the exit codes.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "",
        "hangar --dir /media/usb/acme sign dist/hello-1.2.0.bundle",
    ),
    (
        "key",
        "hangar key new --master --supplier acme --generate-words 24",
    ),
    (
        "key new",
        "hangar key new --signing --supplier acme --generate-words 12",
    ),
    ("key list", "hangar --json key list"),
    (
        "key from-passphrase",
        "hangar key from-passphrase --salt <32 hex> --ops-limit 8 --mem-limit 536870912",
    ),
    ("sign", "hangar sign dist/hello-1.2.0.bundle"),
    (
        "backup",
        "hangar backup split --key local/master-<fingerprint>.json --threshold 3 --shares 5 --out-dir shares",
    ),
    (
        "backup split",
        "hangar backup split --key local/master-<fingerprint>.json --threshold 3 --shares 5 --out-dir shares",
    ),
    (
        "backup combine",
        "hangar backup combine --expect <64 hex> shares/share-1.txt shares/share-2.txt shares/share-3.txt",
    ),
];

/// hangar's command line with the examples and exit codes in every `--help`.
pub fn command() -> clap::Command {
    shipyard::output::document(
        <Cli as clap::CommandFactory>::command(),
        EXAMPLES,
        shipyard::error::EXIT_CODES_HELP_OFFLINE,
    )
}

fn main() -> ExitCode {
    // Before anything reads a secret: no core dumps, no ptrace by same-user processes.
    if let Err(e) = keyggdrasil::os::lockmem::harden_process() {
        warn_loudly(&format!(
            "could not disable core dumps for this process ({e}); secrets could end up in a core file"
        ));
    }
    let cli: Cli = match shipyard::output::parse_args(command()) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let json = cli.json;
    match run(cli) {
        Ok(()) => shipyard::output::finish(),
        // The one place hangar turns an error into its exit code: the error's kind, through
        // the scheme shared with barge ([`shipyard::ErrorKind::exit_code`]).
        Err(e) => shipyard::output::fail("hangar", json, e.kind(), &e),
    }
}

/// Moves an unlocked key pair into locked memory, warning loudly if the OS refused to lock it.
pub fn lock_keypair(
    kp: keyggdrasil::keys::KeyPair,
) -> keyggdrasil::os::lockmem::LockedBox<keyggdrasil::keys::KeyPair> {
    let boxed = keyggdrasil::os::lockmem::LockedBox::new(kp);
    if !boxed.is_locked() {
        warn_loudly(
            "could not lock the key in memory (RLIMIT_MEMLOCK?); it may be swapped to disk",
        );
    }
    boxed
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
        command().debug_assert();
    }

    /// Every example names a subcommand that exists.
    #[test]
    fn every_example_names_a_subcommand() {
        let root = command();
        for (path, _) in EXAMPLES {
            let mut c = &root;
            for part in path.split_whitespace() {
                c = c
                    .find_subcommand(part)
                    .unwrap_or_else(|| panic!("no subcommand {path:?}"));
            }
        }
    }
}
