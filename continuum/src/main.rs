//! `continuum`: the site updater and peer notary.
//!
//! `main` parses the command line, runs the command, prints what happened in plain words and
//! maps the outcome to an exit code: 0 up to date or updated, 2 usage, 3 verification failed
//! (site unchanged), 4 channel or peers unreachable (site unchanged), 5 local error, 6 another
//! update is running; `status` exits 1 when something needs attention.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use continuum::config::{Config, PackageConfig, PeerConfig, SitePaths, UpdatePolicy};
use continuum::site;
use keyggdrasil::keys::PublicKey;
use keyggdrasil::names::ChannelName;
use keyggdrasil::names::{PackageName, SupplierName};

/// Keeps a site's extensions up to date from a channel it does not have to trust.
#[derive(Debug, Parser)]
#[command(name = "continuum", version, about, long_about = None)]
struct Cli {
    /// The site folder (holds continuum.toml).
    #[arg(long, global = true, default_value = ".")]
    site: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a site folder: config, database, and a random site secret under local/.
    ///
    /// Example: continuum init --dir /var/lib/mysite --channel https://plugins.example.org --channel-key 3b6a…
    Init {
        /// The folder to create.
        #[arg(long)]
        dir: PathBuf,
        /// The channel's base URL.
        #[arg(long)]
        channel: String,
        /// The channel's public key (64 hex characters), obtained from its operator.
        #[arg(long)]
        channel_key: String,
        /// The channel's name; by default read from its signed checkpoint.
        #[arg(long)]
        channel_name: Option<String>,
    },
    /// Fetch, verify with peers, and install updates (run hourly from cron or a systemd timer).
    ///
    /// Example: continuum --site /var/lib/mysite update
    Update {
        /// Print one JSON object on stdout (what was verified and installed, per channel)
        /// instead of sentences; a failure is still also told on stderr.
        #[arg(long)]
        json: bool,
    },
    /// Start tracking a package and install its newest allowed release.
    ///
    /// Example: continuum --site /var/lib/mysite install acme/hello --policy minor
    Install {
        /// `supplier/package`.
        package: String,
        /// `all`, `minor`, `patch` or `=VERSION`.
        #[arg(long, default_value = "all")]
        policy: String,
        /// The channel (needed only when several are configured).
        #[arg(long)]
        channel: Option<String>,
        /// Print the update's outcome as one JSON object (as `update --json`).
        #[arg(long)]
        json: bool,
    },
    /// Restore the previous version of a package.
    ///
    /// Example: continuum --site /var/lib/mysite rollback acme/hello
    Rollback {
        /// `supplier/package`.
        package: String,
    },
    /// Show log sizes, installed packages, the last success and failures since.
    ///
    /// Example: continuum --site /var/lib/mysite status --json
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Manage trusted peer notaries.
    #[command(subcommand)]
    Peers(PeersCommand),
    /// The peer notary endpoint.
    #[command(subcommand)]
    Notary(NotaryCommand),
}

#[derive(Debug, Subcommand)]
enum PeersCommand {
    /// Add a peer: its notary URL and notary public key.
    ///
    /// Example: continuum --site . peers add http://peer.example.net:9000 5f1c…
    Add {
        /// The peer's notary base URL.
        url: String,
        /// The peer's notary public key (64 hex).
        key: String,
    },
    /// List peers.
    List,
    /// Remove a peer by URL.
    Remove {
        /// The peer's URL.
        url: String,
    },
}

#[derive(Debug, Subcommand)]
enum NotaryCommand {
    /// Serve the notary endpoint.
    ///
    /// Example: continuum --site /var/lib/mysite notary serve --listen 0.0.0.0:9000
    Serve {
        /// Address to listen on (default: site.notary_listen from the config).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Print this site's notary public key.
    Key,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("continuum: error: {e}");
            ExitCode::from(site::EXIT_LOCAL_ERROR)
        }
    }
}

fn split_package(text: &str) -> Result<(SupplierName, PackageName), String> {
    let (s, p) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: expected supplier/package"))?;
    Ok((
        SupplierName::parse(s).map_err(|e| e.to_string())?,
        PackageName::parse(p).map_err(|e| e.to_string())?,
    ))
}

fn print_report(report: &site::RunReport, json: bool) {
    if json {
        let value = serde_json::json!({
            "exit_code": report.exit_code,
            "outcome": report.failure.as_ref().map_or("ok", |f| f.kind.as_str()),
            "failure": report.failure.as_ref().map(|f| f.message.as_str()),
            "channels": report.channels,
        });
        println!("{value}");
        if let Some(f) = &report.failure {
            eprintln!(
                "continuum: UPDATE FAILED ({}): {}",
                f.kind.as_str(),
                f.message
            );
        }
        return;
    }
    for c in &report.channels {
        for n in &c.notes {
            println!("{n}");
        }
    }
    match &report.failure {
        None => println!("ok: site is up to date"),
        Some(f) => {
            eprintln!(
                "continuum: UPDATE FAILED ({}): {}",
                f.kind.as_str(),
                f.message
            );
            eprintln!("continuum: the site was left as it was.");
        }
    }
}

fn run(cli: Cli) -> Result<u8, Box<dyn std::error::Error>> {
    let paths = SitePaths::new(&cli.site);
    match cli.command {
        Command::Init {
            dir,
            channel,
            channel_key,
            channel_name,
        } => {
            let key = PublicKey::from_hex(&channel_key)?;
            let name = channel_name
                .as_deref()
                .map(ChannelName::parse)
                .transpose()?;
            match site::init(&dir, &channel, key, name) {
                Ok(done) => {
                    println!(
                        "Created site in {} for channel {}",
                        dir.display(),
                        done.channel.as_str()
                    );
                    println!(
                        "Notary public key (give it to sites that peer with you): {}",
                        done.notary_key.to_hex()
                    );
                    println!(
                        "Next: add peers (continuum --site {} peers add URL KEY), then install packages.",
                        dir.display()
                    );
                    Ok(site::EXIT_OK)
                }
                Err(f) => {
                    eprintln!("continuum: init failed: {}", f.message);
                    Ok(site::exit_code(f.kind))
                }
            }
        }
        Command::Update { json } => {
            let report = site::run_update(&paths);
            print_report(&report, json);
            Ok(report.exit_code)
        }
        Command::Install {
            package,
            policy,
            channel,
            json,
        } => {
            let (supplier, name) = split_package(&package)?;
            let policy: UpdatePolicy = toml::Value::String(policy).try_into()?;
            let mut cfg = Config::load(&paths.config)?;
            let channel = match channel {
                Some(c) => ChannelName::parse(&c)?,
                None => match cfg.channels.as_slice() {
                    [one] => one.name.clone(),
                    _ => return Err("several channels are configured: pass --channel".into()),
                },
            };
            if cfg.channel(&channel).is_none() {
                return Err(format!("channel {} is not configured", channel.as_str()).into());
            }
            cfg.packages
                .retain(|p| !(p.supplier == supplier && p.name == name));
            cfg.packages.push(PackageConfig {
                supplier,
                name,
                channel,
                policy,
            });
            cfg.save(&paths.config)?;
            if json {
                eprintln!("Tracking {package}; running an update to install it.");
            } else {
                println!("Tracking {package}; running an update to install it.");
            }
            let report = site::run_update(&paths);
            print_report(&report, json);
            Ok(report.exit_code)
        }
        Command::Rollback { package } => {
            let (supplier, name) = split_package(&package)?;
            let mut cfg = Config::load(&paths.config)?;
            let conn = continuum::db::open(&paths.db)?;
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&paths.lock)?;
            if lock.try_lock().is_err() {
                eprintln!(
                    "continuum: an update is running; try the rollback again when it is done"
                );
                return Ok(site::EXIT_BUSY);
            }
            let done = continuum::install::rollback(&paths, &conn, &supplier, &name)?;
            // Pin the package, or the next hourly update would install the newer version again.
            let pinned = keyggdrasil::names::Version::parse(&done.version)?;
            for p in cfg
                .packages
                .iter_mut()
                .filter(|p| p.supplier == supplier && p.name == name)
            {
                p.policy = UpdatePolicy::Pinned(pinned.clone());
            }
            cfg.save(&paths.config)?;
            println!("{package}: rolled back to {}", done.version);
            println!(
                "{package}: pinned to ={} so updates do not reinstall the newer version; \
                 unpin with: continuum --site {} install {package} --policy all",
                done.version,
                paths.root.display()
            );
            Ok(site::EXIT_OK)
        }
        Command::Status { json } => {
            let st = site::status(&paths).map_err(|f| f.message)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                for c in &st.channels {
                    println!(
                        "channel {}: {} entries{}",
                        c.name,
                        c.log_size,
                        if c.fork_detected {
                            " — FORK DETECTED"
                        } else {
                            ""
                        }
                    );
                }
                for p in &st.packages {
                    println!(
                        "package {}: {}{}",
                        p.name,
                        p.version.as_deref().unwrap_or("not installed"),
                        p.previous
                            .as_deref()
                            .map(|v| format!(" (previous {v})"))
                            .unwrap_or_default()
                    );
                }
                match (&st.last_success, st.last_success_age_secs) {
                    (Some(t), Some(a)) => {
                        println!("last successful update: {t} ({} min ago)", a / 60)
                    }
                    _ => println!("last successful update: never"),
                }
                for f in &st.failures_since_success {
                    println!("failure since: {f}");
                }
                for w in &st.warnings {
                    eprintln!("WARNING: {w}");
                }
            }
            // Non-zero when something needs a person's attention, so monitoring can alert on it.
            Ok(if st.warnings.is_empty() {
                site::EXIT_OK
            } else {
                site::EXIT_ATTENTION
            })
        }
        Command::Peers(cmd) => {
            let mut cfg = Config::load(&paths.config)?;
            match cmd {
                PeersCommand::Add { url, key } => {
                    let key = PublicKey::from_hex(&key)?;
                    if let Some(p) = cfg.peers.iter().find(|p| p.key == key && p.url != url) {
                        return Err(format!(
                            "that notary key is already configured for peer {}; each peer counts once",
                            p.url
                        )
                        .into());
                    }
                    cfg.peers.retain(|p| p.url != url);
                    cfg.peers.push(PeerConfig {
                        url: url.clone(),
                        key,
                    });
                    cfg.save(&paths.config)?;
                    println!("added peer {url} ({})", key.fingerprint());
                }
                PeersCommand::List => {
                    for p in &cfg.peers {
                        println!("{} {}", p.url, p.key);
                    }
                }
                PeersCommand::Remove { url } => {
                    let before = cfg.peers.len();
                    cfg.peers.retain(|p| p.url != url);
                    if cfg.peers.len() == before {
                        return Err(format!("no peer {url}").into());
                    }
                    cfg.save(&paths.config)?;
                    println!("removed peer {url}");
                }
            }
            Ok(site::EXIT_OK)
        }
        Command::Notary(NotaryCommand::Key) => {
            let secret = site::site_secret(&paths).map_err(|f| f.message)?;
            println!("{}", secret.notary_keypair()?.public().to_hex());
            Ok(site::EXIT_OK)
        }
        Command::Notary(NotaryCommand::Serve { listen }) => {
            let cfg = Config::load(&paths.config)?;
            let addr = listen
                .or(cfg.site.notary_listen)
                .ok_or("no --listen given and no site.notary_listen in the config")?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                let local = listener.local_addr()?;
                println!("listening on http://{local}");
                use std::io::Write;
                std::io::stdout().flush()?;
                let shutdown = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                continuum::notary::serve_notary(&paths, cfg, listener, shutdown).await?;
                Ok::<_, Box<dyn std::error::Error>>(())
            })?;
            Ok(site::EXIT_OK)
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
