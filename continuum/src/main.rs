//! `continuum`: the site updater and peer notary.
//!
//! `main` parses the command line, runs one command (each in its module under `cli/`) and
//! turns the outcome into the exit code in one place, [`exit_code`]: 0 up to date or updated,
//! 1 `status` needs attention, 2 usage, 3 verification failed (site unchanged), 4 channel or
//! peers unreachable (site unchanged), 5 local error, 6 another update is running.
#![forbid(unsafe_code)]

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{FromArgMatches, Parser, Subcommand};
use continuum::config::{SitePaths, UpdatePolicy};
use continuum::error::ErrorKind;
use keyggdrasil::keys::PublicKey;
use keyggdrasil::names::ChannelName;

use cli::{CliError, PackageArg};

/// Keeps a site's extensions up to date from a channel it does not have to trust.
///
/// Example: continuum --dir /var/lib/mysite update
#[derive(Debug, Parser)]
#[command(name = "continuum", version, about)]
struct Cli {
    /// The site folder (holds continuum.toml); `init` creates it. (Also accepted under its
    /// old name, which help no longer shows.)
    #[arg(long = "dir", alias = "site", global = true, default_value = ".")]
    dir: PathBuf,
    /// Print one JSON object on stdout: the command's result, or
    /// `{"error":{"kind","message","exit_code"}}`; sentences still go to stderr.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a site folder: config, database, and a random site secret under local/.
    ///
    /// Example: continuum --dir /var/lib/mysite init --channel https://plugins.example.org --channel-key 3b6a…
    Init {
        /// The channel's base URL.
        #[arg(long)]
        channel: String,
        /// The channel's public key (64 hex characters), obtained from its operator.
        #[arg(long, value_parser = cli::parse_key)]
        channel_key: PublicKey,
        /// The channel's name; by default read from its signed checkpoint.
        #[arg(long, value_parser = cli::parse_channel)]
        channel_name: Option<ChannelName>,
        /// Where `notary serve` will listen (written as `[site] notary_listen`; port 0 picks a
        /// free port at each start). Give each site on a host its own port.
        #[arg(long, default_value = "127.0.0.1:9000")]
        notary_listen: std::net::SocketAddr,
    },
    /// Fetch, verify with peers, and install updates (run hourly from cron or a systemd timer).
    ///
    /// Example: continuum --dir /var/lib/mysite update --dry-run
    Update {
        /// Verify everything (channel answers, peers, key rules, each archive, downloaded into
        /// a temporary folder) and print what would be installed, but change nothing: no
        /// install, no hook, no log or database change, no status file.
        #[arg(long)]
        dry_run: bool,
    },
    /// Start tracking a package and install its newest allowed release.
    ///
    /// Example: continuum --dir /var/lib/mysite install acme/hello --policy minor
    Install {
        /// `supplier/package`.
        #[arg(value_parser = cli::parse_package)]
        package: PackageArg,
        /// `all`, `minor`, `patch` or `=VERSION`.
        #[arg(long, default_value = "all", value_parser = cli::parse_policy)]
        policy: UpdatePolicy,
        /// The channel (needed only when several are configured).
        #[arg(long, value_parser = cli::parse_channel)]
        channel: Option<ChannelName>,
    },
    /// Restore the previous version of a package.
    ///
    /// Example: continuum --dir /var/lib/mysite rollback acme/hello
    Rollback {
        /// `supplier/package`.
        #[arg(value_parser = cli::parse_package)]
        package: PackageArg,
        /// Roll back even if the log revoked the previous version (the release or its
        /// signing key); without it such a rollback is refused (exit 2).
        #[arg(long)]
        allow_revoked: bool,
    },
    /// Stop tracking a package; with --delete also remove its installed files and kept versions.
    ///
    /// Example: continuum --dir /var/lib/mysite remove acme/hello --delete
    Remove {
        /// `supplier/package`.
        #[arg(value_parser = cli::parse_package)]
        package: PackageArg,
        /// Also remove its installed files, the versions kept for rollback and their records
        /// (without it the files stay, no longer updated).
        #[arg(long)]
        delete: bool,
    },
    /// List the tracked packages: installed and kept versions, channel, policy, on_revoked.
    ///
    /// Example: continuum --dir /var/lib/mysite list --json
    List {},
    /// Show what the accepted log says about a package: versions, signers, revocations,
    /// attestations (no network; run update first for the newest log).
    ///
    /// Example: continuum --dir /var/lib/mysite info acme/hello
    Info {
        /// `supplier/package`.
        #[arg(value_parser = cli::parse_package)]
        package: PackageArg,
    },
    /// Replay every stored log entry, verifying each again, and compare with the stored key
    /// state (runs apply only new entries; this is the full check). Exit 5 if damaged.
    ///
    /// Example: continuum --dir /var/lib/mysite check --repair
    Check {
        /// Rebuild the key state of a damaged channel from the longest run of entries that
        /// verify, dropping the stored entries after it (the next update fetches and verifies
        /// them again, peers included).
        #[arg(long)]
        repair: bool,
    },
    /// Check a release's offline proof (a c2sp.org/tlog-proof@v1 file, from the channel's
    /// GET /v1/proof/release) with no network: the checkpoint signed by this site's pinned
    /// channel key, the release entry included at its index; with --archive, the file's logged
    /// size and BLAKE2b-512. Exit 3 if it does not hold.
    ///
    /// Example: continuum --dir /var/lib/mysite verify-proof hello-1.0.0.tlog-proof --archive hello.zip
    VerifyProof {
        /// The proof file.
        file: PathBuf,
        /// The archive to check against the proven release.
        #[arg(long)]
        archive: Option<PathBuf>,
    },
    /// Show log sizes, installed packages, the last success and failures since.
    ///
    /// Example: continuum --dir /var/lib/mysite status --json
    Status {},
    /// Manage trusted peer notaries.
    ///
    /// Example: continuum --dir /var/lib/mysite peers list
    #[command(subcommand)]
    Peers(PeersCommand),
    /// The peer notary endpoint.
    ///
    /// Example: continuum --dir /var/lib/mysite notary key
    #[command(subcommand)]
    Notary(NotaryCommand),
}

#[derive(Debug, Subcommand)]
enum PeersCommand {
    /// Add a peer: its notary URL and notary public key.
    ///
    /// Example: continuum --dir . peers add http://peer.example.net:9000 5f1c…
    Add {
        /// The peer's notary base URL.
        url: String,
        /// The peer's notary public key (64 hex).
        #[arg(value_parser = cli::parse_key)]
        key: PublicKey,
        /// Add it without asking the peer to prove the key (a signed answer to a fresh
        /// challenge); for a peer that is not running yet.
        #[arg(long)]
        offline: bool,
    },
    /// List peers.
    ///
    /// Example: continuum --dir /var/lib/mysite peers list --json
    List,
    /// Remove a peer by URL.
    ///
    /// Example: continuum --dir /var/lib/mysite peers remove http://peer.example.net:9000
    Remove {
        /// The peer's URL.
        url: String,
    },
}

#[derive(Debug, Subcommand)]
enum NotaryCommand {
    /// Serve the notary endpoint.
    ///
    /// Example: continuum --dir /var/lib/mysite notary serve --listen 0.0.0.0:9000
    Serve {
        /// Address to listen on (default: site.notary_listen from the config).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Print this site's notary public key.
    ///
    /// Example: continuum --dir /var/lib/mysite notary key
    Key,
}

fn main() -> ExitCode {
    // Before anything reads `local/site-secret` (init, update, install and notary do): no core
    // dumps, no ptrace or /proc/PID/mem by same-user processes (docs/security-review.md, X2).
    // Hooks inherit the zero core-size limit.
    let hardened = keyggdrasil::os::lockmem::harden_process();
    let cli = match command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are printed on stdout and succeed; anything else clap
            // refused is a usage error.
            let _ = e.print();
            return if e.use_stderr() {
                exit_code(Err(ErrorKind::Usage))
            } else {
                exit_code(Ok(()))
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(cli::colour_on_stderr())
        .init();
    if let Err(e) = hardened {
        tracing::warn!(
            "could not disable core dumps for this process ({e}); the site secret could end up in a core file"
        );
    }
    let json = cli.json;
    let result = run(cli);
    if let Err(e) = &result
        && !e.reported()
    {
        let message = continuum::error::chain(e);
        eprintln!("continuum: error: {message}");
        if json {
            println!("{}", cli::error_json(e.kind(), &message));
        }
    }
    exit_code(result.map_err(|e| e.kind()))
}

/// The command line as clap sees it: [`Cli`], with the exit codes after every subcommand's help
/// too (clap puts `after_help` on the top level only).
fn command() -> clap::Command {
    fn with_exit_codes(cmd: clap::Command) -> clap::Command {
        cmd.after_help(cli::EXIT_CODES_HELP)
            .mut_subcommands(with_exit_codes)
    }
    with_exit_codes(<Cli as clap::CommandFactory>::command())
}

/// The one place an outcome becomes the process's exit code (docs/site-operator.md, "Exit
/// codes"): 0 on success, otherwise the code of the failure's kind.
fn exit_code(outcome: Result<(), ErrorKind>) -> ExitCode {
    ExitCode::from(match outcome {
        Ok(()) => 0,
        Err(kind) => kind.exit_code(),
    })
}

/// Runs one command against the site folder given with `--site`.
fn run(cli: Cli) -> Result<(), CliError> {
    let paths = SitePaths::new(&cli.dir);
    let json = cli.json;
    match cli.command {
        Command::Init {
            channel,
            channel_key,
            channel_name,
            notary_listen,
        } => cli::init::run(
            &cli.dir,
            &channel,
            channel_key,
            channel_name,
            notary_listen,
            json,
        ),
        Command::Update { dry_run } => cli::update::run(&paths, json, dry_run),
        Command::Install {
            package,
            policy,
            channel,
        } => cli::update::install(&paths, &package, policy, channel, json),
        Command::Rollback {
            package,
            allow_revoked,
        } => cli::rollback::run(&paths, &package, allow_revoked),
        Command::Status {} => cli::status::run(&paths, json),
        Command::VerifyProof { file, archive } => {
            cli::verify_proof::run(&paths, &file, archive.as_deref(), json)
        }
        Command::Check { repair } => cli::check::run(&paths, repair, json),
        Command::Remove { package, delete } => cli::remove::run(&paths, &package, delete, json),
        Command::List {} => cli::list::run(&paths, json),
        Command::Info { package } => cli::info::run(&paths, &package, json),
        Command::Peers(PeersCommand::Add { url, key, offline }) => {
            cli::peers::add(&paths, &url, key, offline, json)
        }
        Command::Peers(PeersCommand::List) => cli::peers::list(&paths, json),
        Command::Peers(PeersCommand::Remove { url }) => cli::peers::remove(&paths, &url, json),
        Command::Notary(NotaryCommand::Key) => cli::notary::key(&paths, json),
        Command::Notary(NotaryCommand::Serve { listen }) => cli::notary::serve(&paths, listen),
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

    /// Every command's `--help`, down to the last subcommand, shows an example and the exit
    /// codes (issue 12, "one CLI language").
    #[test]
    fn every_help_has_an_example_and_the_exit_codes() {
        fn walk(cmd: &mut clap::Command, path: String, missing: &mut Vec<String>) {
            let help = cmd.render_long_help().to_string();
            if !help.contains("Example: continuum") {
                missing.push(format!("{path}: no example"));
            }
            if !help.contains("Exit codes:") {
                missing.push(format!("{path}: no exit codes"));
            }
            for sub in cmd.get_subcommands_mut() {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_name() != "help" {
                    walk(sub, name, missing);
                }
            }
        }
        let mut missing = Vec::new();
        let mut cmd = command();
        cmd.build();
        walk(&mut cmd, "continuum".into(), &mut missing);
        assert!(missing.is_empty(), "{missing:#?}");
    }

    #[test]
    fn malformed_arguments_are_refused_by_the_parser() {
        // Refused while parsing, so `main` reports them as usage errors (exit 2).
        for args in [
            &["continuum", "install", "acme"][..],
            &["continuum", "install", "acme/Hello World"],
            &[
                "continuum",
                "install",
                "acme/hello",
                "--policy",
                "sometimes",
            ],
            &["continuum", "peers", "add", "http://p:1", "zz"],
            &[
                "continuum",
                "init",
                "--dir",
                "d",
                "--channel",
                "http://c",
                "--channel-key",
                "00",
            ],
        ] {
            let e = Cli::try_parse_from(args).unwrap_err();
            assert!(e.use_stderr(), "{args:?}");
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{args:?}: {e}"
            );
        }
        let ok = Cli::try_parse_from(["continuum", "install", "acme/hello", "--policy", "=1.2.3"]);
        assert!(ok.is_ok(), "{ok:?}");
    }
}
