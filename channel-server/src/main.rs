//! `channel-server`: The channel: an HTTP server that logs verified key and release events in an append-only Merkle log.
//!
//! Not built yet. This binary is a placeholder so the workspace has its final shape; it parses
//! `--help`/`--version` and otherwise says plainly that it does nothing yet, exiting with code 2.
#![forbid(unsafe_code)]

use clap::Parser;

/// The channel: an HTTP server that logs verified key and release events in an append-only Merkle log.
///
/// Not built yet: every invocation other than --help/--version exits with code 2.
#[derive(Debug, Parser)]
#[command(name = "channel-server", version, about)]
struct Cli {
    /// Arguments for the commands that will exist; none are accepted yet.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn main() -> std::process::ExitCode {
    let _cli = Cli::parse();
    eprintln!("channel-server: not built yet; see the open issues and README.md");
    std::process::ExitCode::from(2)
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
