//! `barge`: the extension authors' CLI: supplier keys, reproducible builds, signed releases and
//! publishing to a channel.
//!
//! One module per subcommand (`barge release` → `release.rs`); the core (`keyggdrasil`) does the
//! cryptography and formats, this binary does the I/O around it. Secrets are never printed: key
//! files of passphrase-derived keys hold only the public key and the derivation record, and
//! passphrases are read into zeroizing memory.
//!
//! Passphrases are prompted without echo on a terminal, or read with `--passphrase-stdin`; the
//! air-gapped flow (`prepare` here, `hangar sign` offline, `publish` here) uses bundles.
#![forbid(unsafe_code)]

mod build;
mod config;
mod error;
mod http;
mod init;
mod key;
mod output;
mod passphrase;
mod prepare;
mod publish;
mod release;
mod revoke_release;
mod sign;
mod verify;
mod verify_build;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::Error;

/// Extension authors' CLI: supplier keys, reproducible builds, signed releases, publishing.
#[derive(Debug, Parser)]
#[command(name = "barge", version, about, after_help = shipyard::error::EXIT_CODES_HELP_ONLINE)]
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
    /// Rebuild a logged release from its git commit and compare digests; optionally attest.
    VerifyBuild(verify_build::Args),
    /// Write an unsigned request bundle for `hangar sign` on an air-gapped machine.
    #[command(subcommand)]
    Prepare(prepare::PrepareCommand),
    /// Submit a bundle signed by `hangar sign` (and upload its archive), then check inclusion.
    Publish(publish::Args),
}

fn run(cli: Cli) -> Result<(), Error> {
    let out = output::Output { json: cli.json };
    match cli.command {
        Command::Init(a) => init::run(&cli.dir, &out, a),
        Command::Key(k) => key::run(&cli.dir, &out, k),
        Command::Build(a) => build::run(&cli.dir, &out, a),
        Command::Sign(a) => sign::run(&out, a),
        Command::Verify(a) => verify::run(&out, a),
        Command::Release(a) => release::run(&cli.dir, &out, a),
        Command::RevokeRelease(a) => revoke_release::run(&cli.dir, &out, a),
        Command::VerifyBuild(a) => verify_build::run(&cli.dir, &out, a),
        Command::Prepare(c) => prepare::run(&cli.dir, &out, c),
        Command::Publish(a) => publish::run(&cli.dir, &out, a),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("barge: error: {}", shipyard::report(&e));
            exit_code(&e)
        }
    }
}

/// The one place barge turns an error into its exit code: the error's kind, through the scheme
/// shared with hangar ([`shipyard::ErrorKind::exit_code`]).
fn exit_code(e: &Error) -> ExitCode {
    ExitCode::from(e.kind().exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
