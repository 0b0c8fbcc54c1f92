//! `barge`: the extension authors' CLI: supplier keys, reproducible builds, signed releases and
//! publishing to a channel.
//!
//! One module per subcommand (`barge release` → `release.rs`); the core (`keyggdrasil`) does the
//! cryptography and formats, this binary does the I/O around it. Secrets are never printed: key
//! files of passphrase-derived keys hold only the public key and the derivation record, and
//! passphrases are read into zeroizing memory.
//!
//! Passphrases are prompted without echo on a terminal, or read with `--passphrase-stdin`; the
//! process makes itself non-dumpable with a zero core-size limit first thing, as hangar does
//! (`keyggdrasil::os::lockmem::harden_process`). The
//! air-gapped flow (`prepare` here, `hangar sign` offline, `publish` here) uses bundles.
#![forbid(unsafe_code)]

mod build;
mod config;
mod error;
mod http;
mod init;
mod key;
mod monitor;
mod output;
mod passphrase;
mod prepare;
mod publish;
mod release;
mod revoke_release;
mod rollout;
mod sign;
mod verify;
mod verify_build;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::Error;

/// Extension authors' CLI: supplier keys, reproducible builds, signed releases, publishing.
#[derive(Debug, Parser)]
#[command(name = "barge", version, about)]
pub struct Cli {
    /// The author folder holding `barge.toml` and `local/` (keys).
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
    /// Write `barge.toml` (channel URL, pinned channel key, supplier) and create `local/`.
    Init(init::Args),
    /// Manage supplier keys.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Build a reproducible archive of a git checkout.
    Build(build::Args),
    /// Sign a file with a key; writes `FILE.sig`.
    Sign(sign::Args),
    /// Check a file signature: exit 0 if valid, 1 if not, 2 on usage errors, 5 if a file
    /// cannot be read.
    Verify(verify::Args),
    /// Build, sign, submit and upload a release, then check that it is in the log.
    Release(release::Args),
    /// Revoke a release of yours: sites stop installing it.
    RevokeRelease(revoke_release::Args),
    /// Pause, resume or widen the staged rollout of a release of yours (logs a rollout entry).
    #[command(subcommand)]
    Rollout(rollout::RolloutCommand),
    /// Rebuild a logged release from its git commit and compare digests; optionally attest.
    VerifyBuild(verify_build::Args),
    /// Write an unsigned request bundle for `hangar sign` on an air-gapped machine.
    #[command(subcommand)]
    Prepare(prepare::PrepareCommand),
    /// Submit a bundle signed by `hangar sign` (and upload its archive), then check inclusion.
    Publish(publish::Args),
    /// Follow the channel's log and alert on anything in your supplier's name that your tools
    /// did not make, and on views of the log that disagree (run it from cron or a systemd
    /// timer). Exit 0: nothing new; 10: at least one new alert.
    Monitor(monitor::Args),
}

/// Runs the command; `Ok(true)` when `barge monitor` reported a new alert.
fn run(cli: Cli) -> Result<bool, Error> {
    let out = output::Output { json: cli.json };
    if let Command::Monitor(a) = cli.command {
        return monitor::run(&cli.dir, &out, a);
    }
    match cli.command {
        Command::Init(a) => init::run(&cli.dir, &out, a),
        Command::Key(k) => key::run(&cli.dir, &out, k),
        Command::Build(a) => build::run(&cli.dir, &out, a),
        Command::Sign(a) => sign::run(&cli.dir, &out, a),
        Command::Verify(a) => verify::run(&out, a),
        Command::Release(a) => release::run(&cli.dir, &out, a),
        Command::RevokeRelease(a) => revoke_release::run(&cli.dir, &out, a),
        Command::Rollout(c) => rollout::run(&cli.dir, &out, c),
        Command::VerifyBuild(a) => verify_build::run(&cli.dir, &out, a),
        Command::Prepare(c) => prepare::run(&cli.dir, &out, c),
        Command::Publish(a) => publish::run(&cli.dir, &out, a),
        Command::Monitor(_) => Ok(()),
    }
    .map(|()| false)
}

/// One example per subcommand, shown at the end of its `--help` with the exit codes.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "",
        "barge --dir ~/acme release ./hello --package hello --version 1.2.0",
    ),
    (
        "init",
        "barge init --channel https://channel.example --channel-key <64 hex from the operator> --supplier acme",
    ),
    ("key", "barge key new --master --generate-words 24"),
    ("key new", "barge key new --signing --generate-words 12"),
    ("key list", "barge --json key list"),
    (
        "key from-passphrase",
        "barge key from-passphrase --salt <32 hex> --ops-limit 8 --mem-limit 536870912",
    ),
    (
        "key register",
        "barge key register --invite-file invite.txt",
    ),
    (
        "key add",
        "barge key add --signing-key local/signing-<fingerprint>.json",
    ),
    (
        "key revoke",
        "barge key revoke <fingerprint prefix> --reason \"laptop stolen\"",
    ),
    (
        "build",
        "barge build ./hello --package hello --version 1.2.0",
    ),
    ("sign", "barge sign dist/hello-1.2.0.zip --key signing-"),
    (
        "verify",
        "barge verify --public-key <64 hex> --signature-file hello-1.2.0.zip.sig hello-1.2.0.zip",
    ),
    (
        "release",
        "barge release ./hello --package hello --version 1.2.0",
    ),
    (
        "revoke-release",
        "barge revoke-release hello 1.2.0 --reason \"breaks upgrades\"",
    ),
    (
        "rollout",
        "barge rollout widen hello 2.0.0 --rollout 10%,100%@+1d",
    ),
    ("rollout pause", "barge rollout pause hello 2.0.0"),
    ("rollout resume", "barge rollout resume hello 2.0.0"),
    (
        "rollout widen",
        "barge rollout widen hello 2.0.0 --rollout now",
    ),
    (
        "verify-build",
        "barge verify-build acme/hello 1.2.0 --source ./hello --attest",
    ),
    (
        "prepare",
        "barge prepare release ./hello --package hello --version 1.2.0",
    ),
    (
        "prepare release",
        "barge prepare release ./hello --package hello --version 1.2.0",
    ),
    (
        "prepare key-add",
        "barge prepare key-add --key local/signing-<fingerprint>.json",
    ),
    (
        "prepare revoke",
        "barge prepare revoke <64 hex> --reason \"key lost\"",
    ),
    (
        "prepare revoke-release",
        "barge prepare revoke-release --package hello --version 1.2.0 --reason \"breaks upgrades\"",
    ),
    (
        "prepare rollout",
        "barge prepare rollout --package hello --version 1.2.0 --rollout 10%,100%@+1d",
    ),
    ("publish", "barge publish dist/hello-1.2.0.bundle.signed"),
    (
        "monitor",
        "barge monitor --notary https://peer.example=<64 hex> --on-alert 'mail -s barge-alert me@example.org'",
    ),
];

/// barge's command line with the examples and exit codes in every `--help`.
pub fn command() -> clap::Command {
    shipyard::output::document(
        <Cli as clap::CommandFactory>::command(),
        EXAMPLES,
        shipyard::error::EXIT_CODES_HELP_ONLINE,
    )
}

fn main() -> ExitCode {
    // Before anything reads a passphrase or unlocks a key (most commands do): no core dumps,
    // no ptrace or /proc/PID/mem by same-user processes (docs/security-review.md, X1).
    if let Err(e) = keyggdrasil::os::lockmem::harden_process() {
        shipyard::output::warn_loudly(&format!(
            "could not disable core dumps for this process ({e}); secrets could end up in a core file"
        ));
    }
    let cli: Cli = match shipyard::output::parse_args(command()) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let json = cli.json;
    match run(cli) {
        Ok(false) => shipyard::output::finish(),
        Ok(true) => {
            shipyard::output::finish();
            ExitCode::from(monitor::EXIT_ALERT)
        }
        // The one place barge turns an error into its exit code: the error's kind, through
        // the scheme shared with hangar ([`shipyard::ErrorKind::exit_code`]).
        Err(e) => shipyard::output::fail("barge", json, e.kind(), &e),
    }
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

    /// Every example names a subcommand that exists (a renamed one would leave its example
    /// behind silently).
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
