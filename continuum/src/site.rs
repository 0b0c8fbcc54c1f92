//! Site-level commands: `init`, `update` (with its lock, log line and run record), `status`.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keyggdrasil::kdf::SiteSecret;
use keyggdrasil::keys::PublicKey;
use keyggdrasil::limits::Limits;
use keyggdrasil::names::ChannelName;
use keyggdrasil::os::secretfile;
use keyggdrasil::wire;
use serde::Serialize;

use thiserror::Error;

use crate::channel::{ChannelClient, ChannelError};
use crate::config::{ChannelConfig, Config, ConfigError, SitePaths};
use crate::db::{self, DbError};
use crate::error::{ErrorKind, chain};
use crate::lock::{LockError, SiteLock};
use crate::transport::{Http, TransportError};
use crate::update::{self, ChannelReport, UpdateError};

/// Why `init`, `status` or reading the site secret failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SiteError {
    /// `init` into a folder that already holds a site.
    #[error("{path} already exists; refusing to overwrite a site")]
    AlreadyExists {
        /// The config file found.
        path: std::path::PathBuf,
    },
    /// `init` could not reach the channel to learn its name.
    #[error("{source} (pass --channel-name to initialise without reaching the channel)")]
    ChannelUnreachable {
        /// What failed.
        #[source]
        source: ChannelError,
    },
    /// The channel's checkpoint does not verify with the key given to `init`.
    #[error("the channel's checkpoint does not verify with the key you gave: {source}")]
    CheckpointRefused {
        /// What failed.
        #[source]
        source: wire::WireError,
    },
    /// A local file or folder could not be created, read or written.
    #[error("could not {operation} {path}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// Where.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The site secret could not be written or read (missing, or readable by others; the
    /// error names the file).
    #[error(transparent)]
    Secret(#[from] secretfile::SecretFileError),
    /// The site secret has another length than 32 bytes.
    #[error("{path} must hold exactly 32 bytes")]
    SecretLength {
        /// The file.
        path: std::path::PathBuf,
    },
    /// The notary key could not be derived from the site secret.
    #[error("could not derive the notary key")]
    Key(#[from] keyggdrasil::keys::KeyError),
    /// The config is missing, unreadable or invalid, or could not be written.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The site database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The accepted log stored in the site database could not be replayed (to find revoked
    /// versions).
    #[error("could not read the accepted key state in the site database")]
    Log(#[source] Box<UpdateError>),
}

impl SiteError {
    /// [`ErrorKind::Unreachable`] when `init` could not reach the channel,
    /// [`ErrorKind::Verification`] when its checkpoint does not verify, [`ErrorKind::Local`]
    /// otherwise.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SiteError::ChannelUnreachable { source } if source.is_verification() => {
                ErrorKind::Verification
            }
            SiteError::ChannelUnreachable { .. } => ErrorKind::Unreachable,
            SiteError::CheckpointRefused { .. } => ErrorKind::Verification,
            _ => ErrorKind::Local,
        }
    }
}

/// Current Unix time in seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What `init` made.
#[derive(Debug)]
pub struct Initialised {
    /// The config file.
    pub config: std::path::PathBuf,
    /// The channel's name as its signed checkpoint states it.
    pub channel: ChannelName,
    /// The site's notary public key (other sites add it as a peer).
    pub notary_key: PublicKey,
}

/// Creates a site folder: config with one channel, database, and a random site secret in
/// `local/` (0700/0600). The channel's name is taken from its checkpoint, after checking the
/// checkpoint's signature with the pinned key; without a reachable channel, pass the name.
/// `notary_listen` is written as `[site] notary_listen`, so `continuum notary serve` (and the
/// systemd unit in fixtures/, which passes no address) starts as written.
pub fn init(
    dir: &Path,
    channel_url: &str,
    channel_key: PublicKey,
    channel_name: Option<ChannelName>,
    notary_listen: std::net::SocketAddr,
) -> Result<Initialised, SiteError> {
    let paths = SitePaths::new(dir);
    if paths.config.exists() {
        return Err(SiteError::AlreadyExists { path: paths.config });
    }
    let mut config = Config {
        site: crate::config::SiteSection {
            notary_listen: Some(notary_listen),
            ..Default::default()
        },
        channels: Vec::new(),
        peers: Vec::new(),
        packages: Vec::new(),
        transport: Default::default(),
        hooks: Default::default(),
    };
    let name = match channel_name {
        Some(n) => n,
        None => {
            let http = Http::new(&config.transport)?;
            let limits = Limits::default();
            let probe = ChannelConfig {
                // A name is needed for messages only; the checkpoint says the real one.
                name: ChannelName::parse("unknown").expect("\"unknown\" is a valid channel name"),
                key: channel_key,
                mirrors: vec![channel_url.to_owned()],
                tile_mirrors: Vec::new(),
                witness_policy: None,
                max_cosignature_age_secs: None,
            };
            let signed = ChannelClient::new(&probe, &http, &limits)
                .checkpoint()
                .map_err(|source| SiteError::ChannelUnreachable { source })?;
            let cp = wire::verify_checkpoint(&signed, &channel_key, None, &limits)
                .map_err(|source| SiteError::CheckpointRefused { source })?;
            cp.origin().clone()
        }
    };
    config.channels.push(ChannelConfig {
        name: name.clone(),
        key: channel_key,
        mirrors: vec![channel_url.to_owned()],
        tile_mirrors: Vec::new(),
        witness_policy: None,
        max_cosignature_age_secs: None,
    });
    // 0750 (never wider, whatever the umask): the CMS's group may traverse it, nobody else
    // may write it (`Config::load` refuses a site folder others can write).
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o750)
        .create(dir)
        .map_err(|source| SiteError::Io {
            operation: "create the site folder",
            path: dir.to_path_buf(),
            source,
        })?;
    secretfile::ensure_private_dir(&paths.local)?;
    let secret = SiteSecret::generate();
    secretfile::write_secret_file(&paths.secret, secret.expose(), false)?;
    db::open(&paths.db)?;
    config.save(&paths.config)?;
    let notary_key = secret.notary_keypair()?.public();
    Ok(Initialised {
        config: paths.config,
        channel: name,
        notary_key,
    })
}

/// Reads the site secret (for the notary key).
pub fn site_secret(paths: &SitePaths) -> Result<SiteSecret, SiteError> {
    let bytes = secretfile::read_secret_file(&paths.secret, 32)?;
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| SiteError::SecretLength {
            path: paths.secret.clone(),
        })?;
    Ok(SiteSecret::from_bytes(zeroize::Zeroizing::new(arr)))
}

/// The result of one `update` run.
#[derive(Debug)]
pub struct RunReport {
    /// Per-channel reports.
    pub channels: Vec<ChannelReport>,
    /// The first failure, if any.
    pub failure: Option<UpdateError>,
    /// The hooks this run ran (none for a dry run), in order.
    pub hooks: Vec<crate::hooks::HookReport>,
}

impl RunReport {
    /// The kind of the failure, `None` when the run succeeded.
    pub fn kind(&self) -> Option<ErrorKind> {
        self.failure.as_ref().map(UpdateError::kind)
    }

    /// The run's outcome name (`ok`, or [`ErrorKind::as_str`]).
    pub fn outcome(&self) -> &'static str {
        self.kind().map_or("ok", ErrorKind::as_str)
    }

    /// The failure in one line, with its causes (see [`chain`]).
    pub fn failure_text(&self) -> Option<String> {
        self.failure.as_ref().map(|f| chain(f))
    }
}

/// Runs one update cycle for every channel, under the site's update lock, then records the run
/// in the database and appends one line to `continuum.log`.
///
/// A folder without a readable `continuum.toml` is not a site: the run fails with
/// [`UpdateError::Config`] (naming the file) and writes nothing there, not even the lock file.
///
/// Then it runs the `post_install` hook of each package it installed, or the `on_failure`
/// hook if it failed (not when busy), and writes the status file ([`crate::status_file`]),
/// except when busy. A failing hook is reported (notes, log line, status file), never undoes
/// an install, and does not change the outcome.
pub fn run_update(paths: &SitePaths) -> RunReport {
    let config = match Config::load(&paths.config) {
        Ok(c) => c,
        Err(e) => {
            return RunReport {
                channels: Vec::new(),
                failure: Some(e.into()),
                hooks: Vec::new(),
            };
        }
    };
    let started = now();
    let lock = match SiteLock::try_acquire(paths) {
        Ok(lock) => lock,
        Err(LockError::Busy) => {
            let failure = UpdateError::Busy;
            append_log(
                paths,
                started,
                ErrorKind::AnotherRunInProgress.as_str(),
                &chain(&failure),
            );
            return RunReport {
                channels: Vec::new(),
                failure: Some(failure),
                hooks: Vec::new(),
            };
        }
        Err(e) => {
            let failure = UpdateError::Lock(e);
            let hooks = run_hooks(paths, &config, &[], Some(&failure));
            return finish(paths, &config, started, Vec::new(), Some(failure), hooks);
        }
    };
    let (mut reports, failure) = cycle(paths);
    // Hooks run under the lock, after the run's changes and before its record, so the log
    // line and the status file say how they went.
    let hooks = run_hooks(paths, &config, &reports, failure.as_ref());
    if let Some(last) = reports.last_mut() {
        last.notes
            .extend(hooks.iter().filter(|h| h.failed()).map(|h| h.note()));
    }
    let report = finish(paths, &config, started, reports, failure, hooks);
    drop(lock);
    report
}

/// `post_install` for each installed package (its own hook, else the site's), or
/// `on_failure` for a failed run (the failing package's own hook if the failure is its
/// install, else the site's).
fn run_hooks(
    paths: &SitePaths,
    config: &Config,
    reports: &[ChannelReport],
    failure: Option<&UpdateError>,
) -> Vec<crate::hooks::HookReport> {
    use crate::hooks::{self, HookContext, HookEvent};
    let timeout = hooks::timeout(config);
    let site = std::fs::canonicalize(&paths.root).unwrap_or_else(|_| paths.root.clone());
    let package = |name: &str| {
        config
            .packages
            .iter()
            .find(|p| format!("{}/{}", p.supplier, p.name) == name)
    };
    let mut done = Vec::new();
    for installed in reports.iter().flat_map(|c| c.installed.iter()) {
        let pkg = package(&installed.package);
        let Some(argv) = HookEvent::PostInstall.argv(config, pkg) else {
            continue;
        };
        let ctx = HookContext {
            site: site.clone(),
            package: Some(installed.package.clone()),
            version: Some(installed.version.clone()),
            previous: installed.previous.clone(),
            install_dir: pkg.map(|p| crate::install::cms_path(paths, p)),
            ..Default::default()
        };
        done.push(hooks::run(argv, HookEvent::PostInstall, &ctx, timeout));
    }
    if let Some(f) = failure {
        let kind = f.kind();
        if kind == ErrorKind::AnotherRunInProgress {
            return done;
        }
        // `supplier/package version` of a failed install, to tell the hook which package.
        let (name, version) = match f {
            UpdateError::Install { release, .. } => match release.split_once(' ') {
                Some((n, v)) => (Some(n.to_owned()), Some(v.to_owned())),
                None => (Some(release.clone()), None),
            },
            _ => (None, None),
        };
        let pkg = name.as_deref().and_then(package);
        if let Some(argv) = HookEvent::OnFailure.argv(config, pkg) {
            let ctx = HookContext {
                site,
                previous: pkg.and_then(|p| {
                    db::open(&paths.db)
                        .ok()
                        .and_then(|c| {
                            db::installed_one(&c, p.supplier.as_str(), p.name.as_str()).ok()
                        })
                        .flatten()
                        .map(|i| i.version)
                }),
                install_dir: pkg.map(|p| crate::install::cms_path(paths, p)),
                package: name,
                version,
                error: Some(chain(f)),
                exit_code: Some(kind.exit_code()),
            };
            done.push(hooks::run(argv, HookEvent::OnFailure, &ctx, timeout));
        }
    }
    done
}

fn cycle(paths: &SitePaths) -> (Vec<ChannelReport>, Option<UpdateError>) {
    match prepare(paths) {
        Ok((config, conn, http, peer_http)) => channels(paths, &config, conn, &http, &peer_http),
        Err(e) => (Vec::new(), Some(e)),
    }
}

/// What a cycle needs before the first channel: the config, the database (with the installed
/// packages repaired after any crash) and the two HTTP clients.
fn prepare(paths: &SitePaths) -> Result<(Config, rusqlite::Connection, Http, Http), UpdateError> {
    let config = Config::load(&paths.config)?;
    let conn = db::open(&paths.db)?;
    crate::install::reconcile(paths, &conn).map_err(|e| UpdateError::Reconcile(Box::new(e)))?;
    // Before anything is fetched: a misplaced install_dir stops the run with nothing changed,
    // and a link a crash left unmade is made now.
    crate::install::sync_install_dirs(paths, &conn, &config)
        .map_err(|e| UpdateError::InstallDir(Box::new(e)))?;
    // One deadline for the whole run's network time, channel, mirrors and peers alike.
    let (http, peer_http) = clients(&config)?;
    Ok((config, conn, http, peer_http))
}

/// The two HTTP clients of a run (channel and mirrors; peers), under one run deadline.
fn clients(config: &Config) -> Result<(Http, Http), UpdateError> {
    let deadline = config
        .transport
        .run_deadline_secs
        .unwrap_or(crate::transport::DEFAULT_RUN_DEADLINE_SECS);
    let http = Http::new(&config.transport)?.with_run_deadline(deadline);
    let peer_timeout = Duration::from_secs(config.site.peer_timeout_secs.unwrap_or(5));
    let peer_http = Http::with_timeouts(&config.transport, peer_timeout, peer_timeout)?
        .with_run_deadline(deadline);
    Ok((http, peer_http))
}

/// `update --dry-run`: everything a run does up to and including the verification of the
/// channel's answers, the peers' confirmation, the key rules and each archive that would be
/// installed, against a copy of the site database and into a temporary folder, then throws
/// both away. The report's `would_install` says what a real run would install now.
///
/// Changes nothing of the site: not `site.db` (the accepted and observed logs, the peer
/// checks, the run record), not `continuum.log`, `continuum.toml`, `packages/`, any
/// `install_dir` or the status file; runs no hook. It takes no lock (it writes nothing and
/// reads the database through one consistent snapshot), so it also runs beside an update.
/// What it cannot show: what `on_revoked` would do, and peers or mirrors changing their
/// minds before the real run.
pub fn run_dry_run(paths: &SitePaths) -> RunReport {
    let scratch_root = std::env::temp_dir().join(format!(
        "continuum-dry-run-{}",
        hex::encode(keyggdrasil::os::random::bytes::<8>())
    ));
    let (channels, failure) = match dry_cycle(paths, &scratch_root) {
        Ok(r) => r,
        Err(e) => (Vec::new(), Some(e)),
    };
    if let Err(e) = std::fs::remove_dir_all(&scratch_root)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("could not remove {}: {e}", scratch_root.display());
    }
    RunReport {
        channels,
        failure,
        hooks: Vec::new(),
    }
}

fn dry_cycle(
    paths: &SitePaths,
    scratch_root: &Path,
) -> Result<(Vec<ChannelReport>, Option<UpdateError>), UpdateError> {
    let config = Config::load(&paths.config)?;
    let scratch = SitePaths::new(scratch_root);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(scratch_root)
            .map_err(|source| UpdateError::Scratch {
                path: scratch_root.to_path_buf(),
                source,
            })?;
    }
    {
        // Read-only, so that not even a WAL checkpoint touches the real file.
        let real = rusqlite::Connection::open_with_flags(
            &paths.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .map_err(db::DbError)?;
        real.execute("VACUUM INTO ?1", [scratch.db.to_string_lossy()])
            .map_err(db::DbError)?;
    }
    let mut copy = db::open(&scratch.db)?;
    db::ensure_install_tables(&copy)?;
    let real_installed = db::installed(&copy)?;
    // A misplaced install_dir would stop the real run: say so now.
    for p in &config.packages {
        if let Some(dir) = &p.install_dir {
            crate::install::sync_install_dir(paths, &p.supplier, &p.name, dir, true, true)
                .map_err(|e| UpdateError::InstallDir(Box::new(e)))?;
        }
    }
    let (http, peer_http) = clients(&config)?;
    let limits = Limits {
        max_response_age_secs: config.site.max_response_age_secs.unwrap_or(86_400),
        ..Limits::default()
    };
    let now = now();
    // The real site's notary key: the scratch folder holds no secret.
    let rollout_site = update::RolloutSite::load(paths, now);
    let mut reports = Vec::new();
    let mut failure: Option<UpdateError> = None;
    for channel in &config.channels {
        let mut report = ChannelReport::default();
        let result = update::update_log(
            &mut copy,
            &config,
            channel,
            &http,
            &peer_http,
            &limits,
            now,
            &mut report,
        )
        .and_then(|accepted| {
            update::verify_installs(
                &scratch,
                &copy,
                &real_installed,
                &config,
                channel,
                &accepted,
                &http,
                &limits,
                now,
                &rollout_site,
                &mut report,
            )
        });
        if let Err(f) = result {
            report.notes.push(format!("FAILED: {}", chain(&f)));
            failure.get_or_insert(f);
        }
        reports.push(report);
    }
    Ok((reports, failure))
}

fn channels(
    paths: &SitePaths,
    config: &Config,
    mut conn: rusqlite::Connection,
    http: &Http,
    peer_http: &Http,
) -> (Vec<ChannelReport>, Option<UpdateError>) {
    let limits = Limits {
        max_response_age_secs: config.site.max_response_age_secs.unwrap_or(86_400),
        ..Limits::default()
    };
    let now = now();
    let mut reports = Vec::new();
    let mut failure: Option<UpdateError> = None;
    for channel in &config.channels {
        let mut report = ChannelReport::default();
        let result = update::update_log(
            &mut conn,
            config,
            channel,
            http,
            peer_http,
            &limits,
            now,
            &mut report,
        )
        .and_then(|accepted| {
            update::install_packages(
                paths,
                &conn,
                config,
                channel,
                &accepted,
                http,
                &limits,
                now,
                &mut report,
            )
        });
        // The install_dir links of what was just installed (the first install of a package
        // with an install_dir; updates go through `current` and need no change).
        let result = result.and_then(|()| {
            if report.installed.is_empty() {
                return Ok(());
            }
            crate::install::sync_install_dirs(paths, &conn, config)
                .map(|_| ())
                .map_err(|e| UpdateError::InstallDir(Box::new(e)))
        });
        if let Err(f) = result {
            report.notes.push(format!("FAILED: {}", chain(&f)));
            failure.get_or_insert(f);
        }
        record_peer_checks(&conn, &report, now);
        reports.push(report);
    }
    (reports, failure)
}

/// Keeps which peers failed, and how, for `status`, when this run asked the channel's peers
/// (a root was confirmed, or some peer failed). A database failure here is logged, not fatal:
/// the run's own outcome is what matters.
fn record_peer_checks(conn: &rusqlite::Connection, report: &ChannelReport, now: u64) {
    if report.root.is_none() && report.peers_bogus.is_empty() && report.peers_unreachable.is_empty()
    {
        return;
    }
    let check = |outcome: &str, p: &crate::peers::PeerProblem| db::PeerCheck {
        channel: report.channel.clone(),
        url: p.url.clone(),
        outcome: outcome.to_owned(),
        detail: p.detail.chars().take(500).collect(),
        checked_at: now,
    };
    let checks: Vec<db::PeerCheck> = report
        .peers_bogus
        .iter()
        .map(|p| check(PEER_BOGUS, p))
        .chain(
            report
                .peers_unreachable
                .iter()
                .map(|p| check(PEER_UNREACHABLE, p)),
        )
        .collect();
    if let Err(e) = db::replace_peer_checks(conn, &report.channel, &checks) {
        tracing::error!(error = %e, "could not record the peer checks");
    }
}

/// The outcome names of failing peers in `peer_checks`.
const PEER_BOGUS: &str = "BOGUS";
const PEER_UNREACHABLE: &str = "unreachable";

/// Records the run: one line in `continuum.log` (with any failed hook), a row in `site.db`,
/// and the status file (a failure to write it is logged: the run's outcome stands).
fn finish(
    paths: &SitePaths,
    config: &Config,
    started: u64,
    channels: Vec<ChannelReport>,
    failure: Option<UpdateError>,
    hooks: Vec<crate::hooks::HookReport>,
) -> RunReport {
    let report = RunReport {
        channels,
        failure,
        hooks,
    };
    let code = report.kind().map_or(0, ErrorKind::exit_code);
    let mut message = report.failure_text().unwrap_or_else(|| {
        report
            .channels
            .iter()
            .flat_map(|c| c.notes.iter().cloned())
            .collect::<Vec<_>>()
            .join(" | ")
    });
    if report.failure.is_some() {
        for h in report.hooks.iter().filter(|h| h.failed()) {
            message.push_str(" | ");
            message.push_str(&h.note());
        }
    }
    append_log(paths, started, report.outcome(), &message);
    let finished = now();
    let status = crate::status_file::build(paths, Some(config), &report, started, finished);
    if let Err(e) =
        crate::status_file::write(&crate::status_file::path(paths, Some(config)), &status)
    {
        tracing::error!("{e}");
    }
    if let Ok(conn) = db::open(&paths.db) {
        let run = db::Run {
            started,
            finished,
            command: "update".into(),
            outcome: report.outcome().into(),
            exit_code: i32::from(code),
            message: message.chars().take(2000).collect(),
        };
        if let Err(e) = db::record_run(&conn, &run) {
            tracing::error!(error = %e, "could not record the run");
        }
    }
    report
}

/// Formats Unix seconds as an RFC 3339 UTC timestamp.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), valid for all dates after 1970.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn append_log(paths: &SitePaths, started: u64, outcome: &str, message: &str) {
    let line = format!(
        "{} update {outcome}: {}\n",
        rfc3339(started),
        message.replace(['\n', '\r'], " ")
    );
    // Created 0644 (never wider, whatever the umask), and never written through a link.
    let result = keyggdrasil::os::ownership::no_follow(std::os::unix::fs::OpenOptionsExt::mode(
        std::fs::OpenOptions::new().create(true).append(true),
        0o644,
    ))
    .open(&paths.log)
    .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = result {
        tracing::error!(error = %e, path = %paths.log.display(), "could not append to the site log");
    }
}

/// `continuum status`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// Accepted log size per channel.
    pub channels: Vec<ChannelStatus>,
    /// Installed packages.
    pub packages: Vec<PackageStatus>,
    /// Last successful run (RFC 3339), if any.
    pub last_success: Option<String>,
    /// Seconds since the last success.
    pub last_success_age_secs: Option<u64>,
    /// Failed runs since the last success.
    pub failures_since_success: Vec<String>,
    /// Warnings for people (stale success, fork evidence, bogus peers).
    pub warnings: Vec<String>,
    /// Peers whose answer was unusable in the last run that asked them (a wrong key pinned, a
    /// peer not following the channel, tampering): counted apart from unreachable ones.
    pub peers_bogus: Vec<PeerStatus>,
    /// Peers that could not be reached in the last run that asked them.
    pub peers_unreachable: Vec<PeerStatus>,
    /// Installed and kept-for-rollback versions that the log revoked (the release or its
    /// signing key), each with the revocation entry and its reason; each is also a warning.
    pub revoked: Vec<crate::revocation::RevokedVersion>,
}

/// A failing peer in `status`.
#[derive(Debug, Serialize)]
pub struct PeerStatus {
    /// The channel it was asked about.
    pub channel: String,
    /// Its URL, without credentials.
    pub url: String,
    /// Why it failed.
    pub detail: String,
    /// When (RFC 3339).
    pub checked_at: String,
}

/// One channel in `status`.
#[derive(Debug, Serialize)]
pub struct ChannelStatus {
    /// The channel.
    pub name: String,
    /// Accepted log size.
    pub log_size: u64,
    /// True if fork evidence is recorded.
    pub fork_detected: bool,
}

/// One package in `status`.
#[derive(Debug, Serialize)]
pub struct PackageStatus {
    /// `supplier/package`.
    pub name: String,
    /// Installed version, if any.
    pub version: Option<String>,
    /// Previous version kept for rollback.
    pub previous: Option<String>,
    /// The newest release the policy allows that waits for its staged rollout at this site
    /// now, and why (`null`: none waits).
    pub rollout: Option<crate::update::RolloutWait>,
}

/// Warn when the last success is older than this.
pub const STALE_AFTER_SECS: u64 = 2 * 86_400;

/// Gathers the site's status.
pub fn status(paths: &SitePaths) -> Result<Status, SiteError> {
    let config = Config::load(&paths.config)?;
    let conn = db::open(&paths.db)?;
    let now = now();
    let mut warnings = Vec::new();
    let mut channels = Vec::new();
    for c in &config.channels {
        // The head, not a count of the entries: `status` answers even when the snapshot is
        // damaged (the next update refuses, naming `continuum check`).
        let size = match crate::snapshot::head(&conn, c.name.as_str()) {
            Ok(Some(h)) => h.size,
            _ => crate::snapshot::entry_count(&conn, c.name.as_str()).unwrap_or(0),
        };
        let fork = db::fork_evidence(&conn, c.name.as_str())?.is_some();
        if fork {
            warnings.push(format!(
                "FORK DETECTED on channel {}: updates from it are stopped",
                c.name.as_str()
            ));
        }
        channels.push(ChannelStatus {
            name: c.name.as_str().to_owned(),
            log_size: size,
            fork_detected: fork,
        });
    }
    let installed = db::installed(&conn)?;
    let mut waits = update::rollout_waits(paths, &config, &conn, now);
    let packages = config
        .packages
        .iter()
        .map(|p| {
            let i = installed
                .iter()
                .find(|i| i.supplier == p.supplier.as_str() && i.package == p.name.as_str());
            let name = format!("{}/{}", p.supplier, p.name);
            let rollout = waits
                .iter()
                .position(|(n, _)| *n == name)
                .map(|at| waits.swap_remove(at).1);
            PackageStatus {
                name,
                version: i.map(|i| i.version.clone()),
                previous: i.and_then(|i| i.previous.clone()),
                rollout,
            }
        })
        .collect();
    // A log that no longer replays is told as a warning, not a failure: the rest of the
    // status is still worth showing, and the exit code (1) still alerts.
    let revoked =
        match crate::revocation::revoked_versions(&conn, &mut crate::revocation::Logs::default()) {
            Ok(r) => r,
            Err(e) => {
                warnings.push(format!(
                    "could not check the installed versions for revocations: {}",
                    chain(&SiteError::Log(Box::new(e)))
                ));
                Vec::new()
            }
        };
    for r in &revoked {
        warnings.push(format!(
            "{}; {}",
            r.describe(),
            if r.installed {
                format!("update to a good release, or roll back with `continuum rollback {}` (on_revoked in continuum.toml decides what update does)", r.package)
            } else {
                "do not roll back to it".to_owned()
            }
        ));
    }
    let (peers_bogus, peers_unreachable) = peer_status(&conn, &config, &mut warnings)?;
    let (last, failures) = db::runs_since_success(&conn)?;
    let age = last.as_ref().map(|r| now.saturating_sub(r.finished));
    match age {
        None => warnings.push("no successful update has been recorded yet".into()),
        Some(a) if a > STALE_AFTER_SECS => warnings.push(format!(
            "the last successful update was {} hours ago (more than 2 days): check the timer and the failures below",
            a / 3600
        )),
        _ => {}
    }
    Ok(Status {
        channels,
        packages,
        last_success: last.as_ref().map(|r| rfc3339(r.finished)),
        last_success_age_secs: age,
        failures_since_success: failures
            .iter()
            .map(|r| {
                format!(
                    "{} {} (exit {}): {}",
                    rfc3339(r.started),
                    r.outcome,
                    r.exit_code,
                    r.message
                )
            })
            .collect(),
        warnings,
        peers_bogus,
        peers_unreachable,
        revoked,
    })
}

/// The failing peers recorded by the last runs, for peers still configured; a warning for
/// each bogus one (an unreachable peer may be back next hour; a bogus one needs a person).
fn peer_status(
    conn: &rusqlite::Connection,
    config: &Config,
    warnings: &mut Vec<String>,
) -> Result<(Vec<PeerStatus>, Vec<PeerStatus>), SiteError> {
    let configured: Vec<String> = config
        .peers
        .iter()
        .map(|p| crate::peers::redact_url(&p.url))
        .collect();
    let (mut bogus, mut unreachable) = (Vec::new(), Vec::new());
    for c in db::peer_checks(conn)? {
        if !configured.contains(&c.url) {
            continue;
        }
        let p = PeerStatus {
            channel: c.channel,
            url: c.url,
            detail: c.detail,
            checked_at: rfc3339(c.checked_at),
        };
        if c.outcome == PEER_BOGUS {
            warnings.push(format!(
                "peer {} sent a bogus answer about channel {} ({}): check its notary key with its operator and set it with `continuum peers add URL KEY`, or remove it with `continuum peers remove URL`",
                p.url, p.channel, p.detail
            ));
            bogus.push(p);
        } else {
            unreachable.push(p);
        }
    }
    Ok((bogus, unreachable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
