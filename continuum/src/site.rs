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

use crate::channel::ChannelClient;
use crate::config::{ChannelConfig, Config, SitePaths};
use crate::db;
use crate::transport::Http;
use crate::update::{self, ChannelReport, Failure, FailureKind};

/// Exit code: up to date or updated.
pub const EXIT_OK: u8 = 0;
/// Exit code of `status` when something needs a person's attention (stale, failing, fork).
pub const EXIT_ATTENTION: u8 = 1;
/// Exit code: the channel or the peers misbehaved; nothing was changed.
pub const EXIT_VERIFICATION_FAILED: u8 = 3;
/// Exit code: the channel or enough peers could not be reached; nothing was changed.
pub const EXIT_UNREACHABLE: u8 = 4;
/// Exit code: a local error (configuration, disk, database).
pub const EXIT_LOCAL_ERROR: u8 = 5;
/// Exit code: another `update` is running.
pub const EXIT_BUSY: u8 = 6;

/// Current Unix time in seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The exit code for a failure kind.
pub fn exit_code(kind: FailureKind) -> u8 {
    match kind {
        FailureKind::Verification => EXIT_VERIFICATION_FAILED,
        FailureKind::Unreachable => EXIT_UNREACHABLE,
        FailureKind::Local => EXIT_LOCAL_ERROR,
    }
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
pub fn init(
    dir: &Path,
    channel_url: &str,
    channel_key: PublicKey,
    channel_name: Option<ChannelName>,
) -> Result<Initialised, Failure> {
    let paths = SitePaths::new(dir);
    if paths.config.exists() {
        return Err(Failure {
            kind: FailureKind::Local,
            message: format!(
                "{} already exists; refusing to overwrite a site",
                paths.config.display()
            ),
        });
    }
    let mut config = Config {
        site: Default::default(),
        channels: Vec::new(),
        peers: Vec::new(),
        packages: Vec::new(),
        transport: Default::default(),
    };
    let name = match channel_name {
        Some(n) => n,
        None => {
            let http = Http::new(&config.transport).map_err(local)?;
            let limits = Limits::default();
            let probe = ChannelConfig {
                name: ChannelName::parse("unknown").map_err(local)?,
                key: channel_key,
                mirrors: vec![channel_url.to_owned()],
            };
            let signed = ChannelClient::new(&probe, &http, &limits)
                .checkpoint()
                .map_err(|e| Failure {
                    kind: FailureKind::Unreachable,
                    message: format!(
                        "{e} (pass --channel-name to initialise without reaching the channel)"
                    ),
                })?;
            let cp =
                wire::verify_checkpoint(&signed, &channel_key, None, &limits).map_err(|e| {
                    Failure {
                        kind: FailureKind::Verification,
                        message: format!(
                            "the channel's checkpoint does not verify with the key you gave: {e}"
                        ),
                    }
                })?;
            cp.origin().clone()
        }
    };
    config.channels.push(ChannelConfig {
        name: name.clone(),
        key: channel_key,
        mirrors: vec![channel_url.to_owned()],
    });
    std::fs::create_dir_all(dir).map_err(local)?;
    secretfile::ensure_private_dir(&paths.local).map_err(local)?;
    let secret = SiteSecret::generate();
    secretfile::write_secret_file(&paths.secret, secret.expose(), false).map_err(local)?;
    db::open(&paths.db).map_err(local)?;
    config.save(&paths.config).map_err(local)?;
    let notary_key = secret.notary_keypair().map_err(local)?.public();
    Ok(Initialised {
        config: paths.config,
        channel: name,
        notary_key,
    })
}

fn local(e: impl std::fmt::Display) -> Failure {
    Failure {
        kind: FailureKind::Local,
        message: e.to_string(),
    }
}

/// Reads the site secret (for the notary key).
pub fn site_secret(paths: &SitePaths) -> Result<SiteSecret, Failure> {
    let bytes = secretfile::read_secret_file(&paths.secret, 32).map_err(local)?;
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        local(format!(
            "{} must hold exactly 32 bytes",
            paths.secret.display()
        ))
    })?;
    Ok(SiteSecret::from_bytes(zeroize::Zeroizing::new(arr)))
}

/// The result of one `update` run.
#[derive(Debug)]
pub struct RunReport {
    /// Per-channel reports.
    pub channels: Vec<ChannelReport>,
    /// The first failure, if any.
    pub failure: Option<Failure>,
    /// The exit code.
    pub exit_code: u8,
}

/// Runs one update cycle for every channel, under the site's update lock, then records the run
/// in the database and appends one line to `continuum.log`.
pub fn run_update(paths: &SitePaths) -> RunReport {
    let started = now();
    let lock = match std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&paths.lock)
    {
        Ok(f) => f,
        Err(e) => {
            return finish(
                paths,
                started,
                Vec::new(),
                Some(local(format!(
                    "cannot open lock file {}: {e}",
                    paths.lock.display()
                ))),
            );
        }
    };
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let message =
                "another continuum update is running for this site; not starting a second one"
                    .to_owned();
            append_log(paths, started, "busy", &message);
            return RunReport {
                channels: Vec::new(),
                failure: Some(Failure {
                    kind: FailureKind::Local,
                    message,
                }),
                exit_code: EXIT_BUSY,
            };
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return finish(
                paths,
                started,
                Vec::new(),
                Some(local(format!("cannot lock {}: {e}", paths.lock.display()))),
            );
        }
    }
    let (reports, failure) = cycle(paths);
    let report = finish(paths, started, reports, failure);
    drop(lock);
    report
}

fn cycle(paths: &SitePaths) -> (Vec<ChannelReport>, Option<Failure>) {
    let config = match Config::load(&paths.config) {
        Ok(c) => c,
        Err(e) => return (Vec::new(), Some(local(e))),
    };
    let mut conn = match db::open(&paths.db) {
        Ok(c) => c,
        Err(e) => return (Vec::new(), Some(local(e))),
    };
    if let Err(e) = crate::install::reconcile(paths, &conn) {
        return (Vec::new(), Some(local(e)));
    }
    let http = match Http::new(&config.transport) {
        Ok(h) => h,
        Err(e) => return (Vec::new(), Some(local(e))),
    };
    let peer_timeout = Duration::from_secs(config.site.peer_timeout_secs.unwrap_or(5));
    let peer_http = match Http::with_timeouts(&config.transport, peer_timeout, peer_timeout) {
        Ok(h) => h,
        Err(e) => return (Vec::new(), Some(local(e))),
    };
    let limits = Limits {
        max_response_age_secs: config.site.max_response_age_secs.unwrap_or(86_400),
        ..Limits::default()
    };
    let now = now();
    let mut reports = Vec::new();
    let mut failure: Option<Failure> = None;
    for channel in &config.channels {
        let mut report = ChannelReport::default();
        let result = update::update_log(
            &mut conn,
            &config,
            channel,
            &http,
            &peer_http,
            &limits,
            now,
            &mut report,
        )
        .and_then(|accepted| {
            update::install_packages(
                paths,
                &conn,
                &config,
                channel,
                &accepted,
                &http,
                &limits,
                now,
                &mut report,
            )
        });
        if let Err(f) = result {
            report.notes.push(format!("FAILED: {}", f.message));
            failure.get_or_insert(f);
        }
        reports.push(report);
    }
    (reports, failure)
}

fn finish(
    paths: &SitePaths,
    started: u64,
    channels: Vec<ChannelReport>,
    failure: Option<Failure>,
) -> RunReport {
    let (outcome, code, message) = match &failure {
        None => (
            "ok",
            EXIT_OK,
            channels
                .iter()
                .flat_map(|c| c.notes.iter().cloned())
                .collect::<Vec<_>>()
                .join(" | "),
        ),
        Some(f) => (f.kind.as_str(), exit_code(f.kind), f.message.clone()),
    };
    append_log(paths, started, outcome, &message);
    if let Ok(conn) = db::open(&paths.db) {
        let run = db::Run {
            started,
            finished: now(),
            command: "update".into(),
            outcome: outcome.into(),
            exit_code: i32::from(code),
            message: message.chars().take(2000).collect(),
        };
        if let Err(e) = db::record_run(&conn, &run) {
            tracing::error!(error = %e, "could not record the run");
        }
    }
    RunReport {
        channels,
        failure,
        exit_code: code,
    }
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
    let result = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
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
    /// Warnings for people (stale success, fork evidence).
    pub warnings: Vec<String>,
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
}

/// Warn when the last success is older than this.
pub const STALE_AFTER_SECS: u64 = 2 * 86_400;

/// Gathers the site's status.
pub fn status(paths: &SitePaths) -> Result<Status, Failure> {
    let config = Config::load(&paths.config).map_err(local)?;
    let conn = db::open(&paths.db).map_err(local)?;
    let now = now();
    let mut warnings = Vec::new();
    let mut channels = Vec::new();
    for c in &config.channels {
        let size = db::accepted_entries(&conn, c.name.as_str())
            .map_err(local)?
            .len() as u64;
        let fork = db::fork_evidence(&conn, c.name.as_str())
            .map_err(local)?
            .is_some();
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
    let installed = db::installed(&conn).map_err(local)?;
    let packages = config
        .packages
        .iter()
        .map(|p| {
            let i = installed
                .iter()
                .find(|i| i.supplier == p.supplier.as_str() && i.package == p.name.as_str());
            PackageStatus {
                name: format!("{}/{}", p.supplier, p.name),
                version: i.map(|i| i.version.clone()),
                previous: i.and_then(|i| i.previous.clone()),
            }
        })
        .collect();
    let (last, failures) = db::runs_since_success(&conn).map_err(local)?;
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
    })
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
