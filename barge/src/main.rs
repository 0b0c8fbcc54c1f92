//! `barge`: Extension authors' CLI: supplier keys, reproducible builds, signed releases, publishing.
//!
//! Not built yet. This binary is a placeholder so the workspace has its final shape; it parses
//! `--help`/`--version` and otherwise says plainly that it does nothing yet, exiting with code 2.
#![forbid(unsafe_code)]

use clap::Parser;

/// Extension authors' CLI: supplier keys, reproducible builds, signed releases, publishing.
///
/// Not built yet: every invocation other than --help/--version exits with code 2.
#[derive(Debug, Parser)]
#[command(name = "barge", version, about)]
struct Cli {
    /// Arguments for the commands that will exist; none are accepted yet.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn main() -> std::process::ExitCode {
    let _cli = Cli::parse();
    eprintln!("barge: not built yet; see the open issues and README.md");
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
