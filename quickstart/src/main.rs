//! `quickstart`: the README's first command. In a temporary folder, on loopback, with the real
//! binaries as separate processes: a channel server, three sites with notary endpoints, an
//! author with a master and a signing key, two published releases of the sample extension in
//! `fixtures/extensions/hello-plugin` that a site verifies with its peers and installs, and a
//! third release whose archive is tampered with on the channel's disk, which the site refuses.
//!
//! It prints each step in plain words, exits 0 only if every step behaved as expected, and
//! removes the folder and stops every process it started on every path (`--keep` leaves the
//! folder). It is a demonstration, not a deployment: the keys use the fast Argon2i
//! "interactive" cost and a passphrase printed on screen. See `docs/quickstart.md`.
#![forbid(unsafe_code)]

mod demo;
mod procs;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Runs the whole system once on loopback and shows what each part verified.
#[derive(Debug, Parser)]
#[command(name = "quickstart", version, about)]
pub struct Cli {
    /// Use `channel-server`, `continuum` and `barge` from this folder and build nothing.
    /// By default they are built with cargo (a no-op when up to date) next to this program.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Leave the demo folder (keys, site folders, channel data, logs) for inspection.
    #[arg(long)]
    pub keep: bool,
    /// The sample extension to publish (a folder; it is copied and committed to a new git
    /// repository in the demo folder).
    #[arg(long)]
    pub fixture: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match demo::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e == procs::INTERRUPTED => {
            eprintln!("\nquickstart: {e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("\nquickstart: error: {e}");
            ExitCode::FAILURE
        }
    }
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
