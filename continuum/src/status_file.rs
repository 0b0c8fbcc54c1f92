//! The JSON status file for a CMS admin page (`<site>/status.json`, or `[site] status_file`),
//! written after every `update` run (and `install`, which runs one).
//!
//! It is written atomically: a temporary file beside it, `fsync`, `rename` over the old one,
//! `fsync` of the folder; so a reader sees the previous run's file or this run's, never a part.
//! Its mode is 0644 (the CMS usually runs as another user than continuum; the unit's umask
//! 0077 would otherwise hide it) and it holds nothing secret: versions, digests, log sizes,
//! outcome names, the failure's message (the same text as `continuum.log`) and, for hooks,
//! only the program's path, never its arguments or output.
//!
//! It is not written for a run that found the site busy (exit 6: the run holding the lock
//! writes it when it finishes), for a folder that is not a site, or for `update --dry-run`
//! (which changes nothing). The schema is documented in docs/site-operator.md ("Status file
//! for a CMS"); `schema` changes only when a field changes meaning or goes away.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Config, SitePaths};
use crate::db;
use crate::hooks::HookReport;
use crate::site::{RunReport, rfc3339};

/// The version of the file's layout.
pub const SCHEMA: u32 = 1;

/// The file's content.
#[derive(Debug, Serialize)]
pub struct Status {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The command that ran (`update`).
    pub command: &'static str,
    /// When the run started and finished (RFC 3339, UTC).
    pub started: String,
    /// See `started`.
    pub finished: String,
    /// `ok`, `verification_failed`, `unreachable` or `local_error`.
    pub outcome: &'static str,
    /// The process's exit code.
    pub exit_code: u8,
    /// The failure in one line, if the run failed.
    pub error: Option<String>,
    /// True if any hook of this run failed, timed out or could not start.
    pub hook_failed: bool,
    /// Each hook run.
    pub hooks: Vec<HookReport>,
    /// Each channel: log sizes before and after, the root accepted this run.
    pub channels: Vec<ChannelStatus>,
    /// Each tracked package and what is installed.
    pub packages: Vec<PackageStatus>,
}

/// One channel in the status file.
#[derive(Debug, Serialize)]
pub struct ChannelStatus {
    /// The channel.
    pub channel: String,
    /// Accepted log size before the run.
    pub size_before: u64,
    /// Accepted log size after it.
    pub size_after: u64,
    /// The accepted root (hex), when this run confirmed new entries.
    pub root: Option<String>,
}

/// One tracked package in the status file.
#[derive(Debug, Serialize)]
pub struct PackageStatus {
    /// `supplier/package`.
    pub package: String,
    /// Its channel.
    pub channel: String,
    /// The installed version (`null`: not installed).
    pub version: Option<String>,
    /// The version kept for rollback.
    pub previous: Option<String>,
    /// The installed archive's BLAKE2b-512 (hex).
    pub digest: Option<String>,
    /// When it was installed (RFC 3339, UTC).
    pub installed_at: Option<String>,
    /// True if this run installed it.
    pub updated_this_run: bool,
    /// Where the CMS finds it.
    pub install_dir: PathBuf,
    /// The newest release the policy allows that waits for its staged rollout at this site,
    /// and why (`null`: none waits); see docs/site-operator.md ("Staged rollouts").
    pub rollout: Option<crate::update::RolloutWait>,
}

/// Where the status file of this site goes.
pub fn path(paths: &SitePaths, config: Option<&Config>) -> PathBuf {
    config
        .and_then(|c| c.site.status_file.clone())
        .unwrap_or_else(|| paths.root.join("status.json"))
}

/// Builds the status of a finished run from its report and the site database.
pub fn build(
    paths: &SitePaths,
    config: Option<&Config>,
    report: &RunReport,
    started: u64,
    finished: u64,
) -> Status {
    let conn = db::open(&paths.db).ok();
    let installed = conn
        .as_ref()
        .and_then(|conn| db::installed(conn).ok())
        .unwrap_or_default();
    let waits = match (conn.as_ref(), config) {
        (Some(conn), Some(config)) => crate::update::rollout_waits(paths, config, conn, finished),
        _ => Vec::new(),
    };
    let updated: Vec<&str> = report
        .channels
        .iter()
        .flat_map(|c| c.installed.iter().map(|i| i.package.as_str()))
        .collect();
    let packages = config
        .map(|c| c.packages.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let name = format!("{}/{}", p.supplier, p.name);
            let row = installed
                .iter()
                .find(|i| i.supplier == p.supplier.as_str() && i.package == p.name.as_str());
            PackageStatus {
                updated_this_run: updated.contains(&name.as_str()),
                channel: p.channel.as_str().to_owned(),
                version: row.map(|r| r.version.clone()),
                previous: row.and_then(|r| r.previous.clone()),
                digest: row.map(|r| r.digest.clone()),
                installed_at: row.map(|r| rfc3339(r.installed_at)),
                install_dir: crate::install::cms_path(paths, p),
                rollout: waits
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, w)| w.clone()),
                package: name,
            }
        })
        .collect();
    Status {
        schema: SCHEMA,
        command: "update",
        started: rfc3339(started),
        finished: rfc3339(finished),
        outcome: report.outcome(),
        exit_code: report.kind().map_or(0, |k| k.exit_code()),
        error: report.failure_text(),
        hook_failed: report.hooks.iter().any(HookReport::failed),
        hooks: report.hooks.clone(),
        channels: report
            .channels
            .iter()
            .map(|c| ChannelStatus {
                channel: c.channel.clone(),
                size_before: c.size_before,
                size_after: c.size_after,
                root: c.root.clone(),
            })
            .collect(),
        packages,
    }
}

/// Writes `status` to `path` atomically (temporary file, fsync, rename, fsync of the folder),
/// mode 0644. The error names the file.
pub fn write(path: &Path, status: &Status) -> Result<(), std::io::Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let named = |e: std::io::Error| {
        std::io::Error::new(
            e.kind(),
            format!(
                "could not write the status file {}: {e} (the user running continuum must be \
                 able to write its folder; or set [site] status_file)",
                path.display()
            ),
        )
    };
    let mut bytes = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "status.json".into());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}",
        hex::encode(keyggdrasil::os::random::bytes::<6>())
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        // The mode above is cut by the umask (0077 under the systemd unit): set it exactly.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(named)
}
