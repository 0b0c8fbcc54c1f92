//! `channel-server`: the channel of the secure auto-update system.
//!
//! `main` only parses the command line, runs the command and maps errors to exit codes in one
//! place ([`exit_code`]: 0 success, 1 a check found a mismatch, 2 usage, 5 local failure);
//! everything else lives in the library.
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
#[command(name = "channel-server", version, about, long_about = None, after_help = EXIT_CODES)]
struct Cli {
    /// Print one JSON object on stdout (the result, or `{"error":{"kind","message","exit_code"}}`).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str = "Exit codes: 0 ok; 1 `check` found something that does not match (an entry, \
the tree, an archive); 2 usage (bad arguments, a folder that already holds a channel); 5 local \
failure (a file, the database, the config).";

/// Where the channel's config is: `--dir` (the data folder, holding `channel.toml`) or
/// `--config` (the file itself).
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct Location {
    /// The channel's folder (as given to `init --dir`); its `channel.toml` is read.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The config file written by `init` (`<dir>/channel.toml`).
    #[arg(long)]
    config: Option<PathBuf>,
}

impl Location {
    fn config_file(&self) -> PathBuf {
        match (&self.config, &self.dir) {
            (Some(c), _) => c.clone(),
            (None, Some(d)) => d.join("channel.toml"),
            // clap's group requires one of the two.
            (None, None) => PathBuf::from("channel.toml"),
        }
    }
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
    /// Example: channel-server serve --dir /var/lib/channel
    Serve {
        #[command(flatten)]
        at: Location,
        /// Listen here instead of the configured address (e.g. 127.0.0.1:0 in tests).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Run the signer process (started by `serve`; not meant to be run by hand).
    #[command(hide = true)]
    Signer(channel_server::signer::SignerArgs),
    /// Issue a one-time invite token for a new supplier (policy `invite`).
    ///
    /// Example: channel-server invite acme --dir /var/lib/channel
    Invite {
        /// The supplier the token is for.
        supplier: String,
        #[command(flatten)]
        at: Location,
    },
    /// Recompute the whole tree from the stored entries and replay every key rule; with
    /// `--archives`, also hash every stored archive against its release entry. Exits 1 when
    /// anything does not match, naming it.
    ///
    /// Example: channel-server check --archives --dir /var/lib/channel
    Check {
        #[command(flatten)]
        at: Location,
        /// Also check every stored archive (reads all of them).
        #[arg(long)]
        archives: bool,
        /// Replace a key-state snapshot that differs from the full replay by the replay (the
        /// repair `check` names); blocks submissions while it replays.
        #[arg(long)]
        rebuild_state: bool,
    },
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    match s {
        "open" => Ok(Policy::Open),
        "invite" => Ok(Policy::Invite),
        _ => Err("expected `open` or `invite`".into()),
    }
}

/// Why a command failed, shaped by the exit code it maps to.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// Bad arguments or a refused local precondition (exit 2).
    #[error("{0}")]
    Usage(String),
    /// `check` found something that does not match (exit 1), with the findings for `--json`.
    #[error("{0}")]
    Mismatch(String, Option<serde_json::Value>),
    /// A file, the database or the config failed (exit 5).
    #[error(transparent)]
    Local(Box<dyn std::error::Error + Send + Sync>),
}

impl CliError {
    fn kind(&self) -> &'static str {
        match self {
            CliError::Usage(_) => "usage",
            CliError::Mismatch(..) => "rejected",
            CliError::Local(_) => "local",
        }
    }
}

/// The one place that decides the exit code.
fn exit_code(e: &CliError) -> u8 {
    match e {
        CliError::Mismatch(..) => 1,
        CliError::Usage(_) => 2,
        CliError::Local(_) => 5,
    }
}

impl From<server::ServerError> for CliError {
    fn from(e: server::ServerError) -> Self {
        match e {
            server::ServerError::Exists(_) => CliError::Usage(e.to_string()),
            server::ServerError::Db(channel_server::store::DbError::Inconsistent(_)) => {
                CliError::Mismatch(e.to_string(), None)
            }
            other => CliError::Local(Box::new(other)),
        }
    }
}

impl From<channel_server::config::ConfigError> for CliError {
    fn from(e: channel_server::config::ConfigError) -> Self {
        CliError::Local(Box::new(e))
    }
}

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

fn main() -> ExitCode {
    // Before anything reads a secret (`serve` holds the channel secret's MAC key, `init`
    // writes the keys; the signer hardens itself again): no core dumps, no ptrace or
    // /proc/PID/mem by same-user processes (docs/security-review.md, X3).
    let hardened = keyggdrasil::os::lockmem::harden_process();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(channel_server::colour_on_stderr())
        .init();
    if let Err(e) = hardened {
        tracing::warn!(
            "could not disable core dumps for this process ({e}); secrets could end up in a core file"
        );
    }
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
        command => Cli {
            json: cli.json,
            command,
        },
    };
    let json = cli.json;
    match run(cli) {
        Ok(value) => {
            if json {
                println!("{value}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let code = exit_code(&e);
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let part = s.to_string();
                if !message.ends_with(&part) {
                    message.push_str(": ");
                    message.push_str(&part);
                }
                source = s.source();
            }
            eprintln!("channel-server: error: {message}");
            if json {
                let mut out = serde_json::json!({
                    "error": {"kind": e.kind(), "message": message, "exit_code": code}
                });
                if let CliError::Mismatch(_, Some(details)) = &e {
                    out["details"] = details.clone();
                }
                println!("{out}");
            }
            ExitCode::from(code)
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs a command; returns what `--json` prints (text output is printed here when not `--json`).
fn run(cli: Cli) -> Result<serde_json::Value, CliError> {
    let json = cli.json;
    let say = |line: String| {
        if !json {
            println!("{line}");
        }
    };
    match cli.command {
        Command::Init {
            dir,
            name,
            policy,
            listen,
        } => {
            let name = ChannelName::parse(&name).map_err(usage)?;
            let done = server::init(&dir, name.clone(), policy, listen)?;
            say(format!(
                "Created channel {} in {}",
                name.as_str(),
                dir.display()
            ));
            say(format!(
                "Channel public key (sites pin this): {}",
                done.channel_key.to_hex()
            ));
            say(format!("Fingerprint: {}", done.channel_key.fingerprint()));
            say(format!(
                "C2SP note verifier key (GET /checkpoint; Go's note.NewVerifier): {}",
                done.verifier_key
            ));
            say(format!(
                "Secrets are in {}/local (mode 0700); back it up offline.",
                dir.display()
            ));
            say(format!(
                "Next: channel-server serve --dir {}",
                dir.display()
            ));
            Ok(serde_json::json!({
                "origin": name.as_str(),
                "channel_key": done.channel_key.to_hex(),
                "fingerprint": done.channel_key.fingerprint(),
                "verifier_key": done.verifier_key,
                "config": done.config,
            }))
        }
        Command::Serve { at, listen } => {
            let cfg = Config::load(&at.config_file())?;
            let rt = tokio::runtime::Runtime::new().map_err(|e| CliError::Local(Box::new(e)))?;
            rt.block_on(server::run(cfg, listen))?;
            Ok(serde_json::json!({"stopped": true}))
        }
        Command::Signer(_) => Err(usage("the signer runs from main")),
        Command::Invite { supplier, at } => {
            let cfg = Config::load(&at.config_file())?;
            let supplier = SupplierName::parse(&supplier).map_err(usage)?;
            let token = server::invite(&cfg, &supplier, now())?;
            say(token.clone());
            eprintln!(
                "One-time invite for supplier {supplier}: give this token to them over a trusted channel."
            );
            Ok(serde_json::json!({"supplier": supplier.as_str(), "token": token}))
        }
        Command::Check {
            at,
            archives,
            rebuild_state,
        } => {
            let cfg = Config::load(&at.config_file())?;
            let (size, root, rebuilt) = server::check(&cfg, rebuild_state)?;
            if rebuilt {
                say(format!(
                    "rebuilt the key-state snapshot from a replay of all {size} entries"
                ));
            }
            say(format!("ok: {size} entries, root {}", hex::encode(root)));
            let mut report = serde_json::json!({
                "size": size, "root": hex::encode(root), "rebuilt_state": rebuilt
            });
            let (published, bad) = server::check_published(&cfg, size)?;
            for b in &bad {
                say(format!(
                    "BAD STATIC FILE: {b}; delete public/checkpoint and restart `serve` to rewrite every static file"
                ));
            }
            if !bad.is_empty() {
                return Err(CliError::Mismatch(
                    format!(
                        "{} static files of the published size {published} do not match the log",
                        bad.len()
                    ),
                    Some(serde_json::json!({"bad_static_files": bad})),
                ));
            }
            if published > 0 {
                say(format!(
                    "ok: the static copy (public/) matches the log at size {published}"
                ));
            }
            report["published_size"] = published.into();

            if archives {
                let (checked, bad) = server::check_archives(&cfg)?;
                for b in &bad {
                    say(format!(
                        "BAD ARCHIVE: {} at {}: {}; upload the right archive again to repair it",
                        b.release,
                        b.path.display(),
                        b.problem
                    ));
                }
                if !bad.is_empty() {
                    let list: Vec<_> = bad
                        .iter()
                        .map(|b| {
                            serde_json::json!({
                                "release": b.release, "path": b.path, "problem": b.problem
                            })
                        })
                        .collect();
                    return Err(CliError::Mismatch(
                        format!(
                            "{} of {checked} stored archives do not match their release entries",
                            bad.len()
                        ),
                        Some(serde_json::json!({"bad_archives": list})),
                    ));
                }
                say(format!(
                    "ok: {checked} stored archives match their release entries"
                ));
                report["archives_checked"] = checked.into();
            }
            Ok(report)
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
