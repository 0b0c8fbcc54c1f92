//! `channel-server`: the channel of the secure auto-update system.
//!
//! `main` only parses the command line, runs the command and maps errors to exit codes
//! (0 success, 1 failure, 2 usage); everything else lives in the library.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use channel_server::config::Config;
use channel_server::server;
use channel_server::writer::Policy;
use clap::{Parser, Subcommand};
use keyggdrasil::names::ChannelName;
use keyggdrasil::names::SupplierName;

/// The channel: logs verified key and release events in an append-only Merkle log and answers
/// sites with signed, nonce-bound responses.
#[derive(Debug, Parser)]
#[command(name = "channel-server", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a channel's data folder: config, database, channel key and secret under local/.
    ///
    /// Example: channel-server init --dir /var/lib/channel --name plugins.example.org
    Init {
        /// The folder to create (must not hold a channel yet).
        #[arg(long)]
        dir: PathBuf,
        /// The channel's name (the log's origin), e.g. plugins.example.org.
        #[arg(long, default_value = "channel.localhost")]
        name: String,
        /// Supplier registration: `open` (first use) or `invite` (one-time tokens).
        #[arg(long, default_value = "open", value_parser = parse_policy)]
        policy: Policy,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Run the channel (starts the signer process as a child).
    ///
    /// Example: channel-server serve --config /var/lib/channel/channel.toml
    Serve {
        /// The config file written by `init`.
        #[arg(long)]
        config: PathBuf,
        /// Listen here instead of the configured address (e.g. 127.0.0.1:0 in tests).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Run the signer process (started by `serve`; not meant to be run by hand).
    #[command(hide = true)]
    Signer(channel_server::signer::SignerArgs),
    /// Issue a one-time invite token for a new supplier (policy `invite`).
    ///
    /// Example: channel-server invite acme --config /var/lib/channel/channel.toml
    Invite {
        /// The supplier the token is for.
        supplier: String,
        /// The config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Recompute the whole tree from the stored entries and replay every key rule; with
    /// `--archives`, also hash every stored archive against its release entry. Exits 1 when
    /// anything does not match, naming it.
    ///
    /// Example: channel-server check --archives --config /var/lib/channel/channel.toml
    Check {
        /// The config file.
        #[arg(long)]
        config: PathBuf,
        /// Also check every stored archive (reads all of them).
        #[arg(long)]
        archives: bool,
    },
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    match s {
        "open" => Ok(Policy::Open),
        "invite" => Ok(Policy::Invite),
        _ => Err("expected `open` or `invite`".into()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(channel_server::colour_on_stderr())
        .init();
    // The signer's exit code tells its supervisor whether a restart can help (78: fix the files).
    let cli = match cli.command {
        Command::Signer(args) => {
            return match channel_server::signer::run_signer(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("channel-server signer: error: {e}");
                    ExitCode::from(e.exit_code())
                }
            };
        }
        command => Cli { command },
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("channel-server: error: {e}");
            let mut source = std::error::Error::source(&*e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Init {
            dir,
            name,
            policy,
            listen,
        } => {
            let name = ChannelName::parse(&name)?;
            let done = server::init(&dir, name.clone(), policy, listen)?;
            println!("Created channel {} in {}", name.as_str(), dir.display());
            println!(
                "Channel public key (sites pin this): {}",
                done.channel_key.to_hex()
            );
            println!("Fingerprint: {}", done.channel_key.fingerprint());
            println!(
                "Secrets are in {}/local (mode 0700); back it up offline.",
                dir.display()
            );
            println!(
                "Next: channel-server serve --config {}",
                done.config.display()
            );
            Ok(())
        }
        Command::Serve { config, listen } => {
            let cfg = Config::load(&config)?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(server::run(cfg, listen))?;
            Ok(())
        }
        Command::Signer(_) => Err("the signer runs from main".into()),
        Command::Invite { supplier, config } => {
            let cfg = Config::load(&config)?;
            let supplier = SupplierName::parse(&supplier)?;
            let token = server::invite(&cfg, &supplier, now())?;
            println!("{token}");
            eprintln!(
                "One-time invite for supplier {supplier}: give this token to them over a trusted channel."
            );
            Ok(())
        }
        Command::Check { config, archives } => {
            let cfg = Config::load(&config)?;
            let (size, root) = server::check(&cfg)?;
            println!("ok: {size} entries, root {}", hex::encode(root));
            if archives {
                let (checked, bad) = server::check_archives(&cfg)?;
                for b in &bad {
                    println!(
                        "BAD ARCHIVE: {} at {}: {}; upload the right archive again to repair it",
                        b.release,
                        b.path.display(),
                        b.problem
                    );
                }
                if !bad.is_empty() {
                    return Err(format!(
                        "{} of {checked} stored archives do not match their release entries",
                        bad.len()
                    )
                    .into());
                }
                println!("ok: {checked} stored archives match their release entries");
            }
            Ok(())
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
