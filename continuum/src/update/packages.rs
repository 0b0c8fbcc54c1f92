//! Step 6 of a cycle: install newer allowed releases of the tracked packages.

use keyggdrasil::limits::Limits;
use rusqlite::Connection;

use super::{Accepted, ChannelReport, InstalledReport, UpdateError};
use crate::channel::ChannelClient;
use crate::config::{ChannelConfig, Config, OnRevoked, PackageConfig, SitePaths};
use crate::db;
use crate::error::chain;
use crate::transport::Http;

/// Installs the newest allowed, installable release of every tracked package of `channel` that
/// is newer than what is installed (or not installed yet). Every package is tried even if one
/// fails; the first failure is returned (each one is also a note in `report`).
///
/// An installed version that the log revoked (the release or its signing key) is reported on
/// every run, naming the revocation entry and its reason. If no newer allowed release replaces
/// it, the package's `on_revoked` decides: `report` keeps it, `rollback` goes back to a version
/// the log still allows (never to a revoked one; without one it only reports), `remove` stops
/// serving it (see [`on_revoked`]). A revoked version kept for rollback is reported too.
#[allow(clippy::too_many_arguments)]
pub fn install_packages(
    paths: &SitePaths,
    conn: &Connection,
    config: &Config,
    channel: &ChannelConfig,
    accepted: &Accepted,
    http: &Http,
    limits: &Limits,
    now: u64,
    report: &mut ChannelReport,
) -> Result<(), UpdateError> {
    let client = ChannelClient::new(channel, http, limits);
    let mut first_failure: Option<UpdateError> = None;
    for pkg in config.packages.iter().filter(|p| p.channel == channel.name) {
        let installed = db::installed_one(conn, pkg.supplier.as_str(), pkg.name.as_str())?;
        let current = installed
            .as_ref()
            .and_then(|i| keyggdrasil::names::Version::parse(&i.version).ok());
        let mode = config.on_revoked(pkg);
        let mut revoked = false;
        if let Some(v) = &current
            && accepted.installable(&pkg.supplier, &pkg.name, v)?.is_none()
        {
            // Revoked (or its signing key was) after it was installed: say so loudly; the
            // newest allowed release below replaces it if there is one, else `on_revoked`.
            let why = revocation(conn, channel, accepted, pkg, v.as_str())?
                .map(|r| format!(": {}", r.describe()))
                .unwrap_or_default();
            report.notes.push(format!(
                "{}/{}: WARNING: the installed version {v} is no longer trusted (the release or its signing key was revoked){why}; on_revoked = {}",
                pkg.supplier,
                pkg.name,
                mode_name(mode)
            ));
            tracing::warn!(package = %pkg.name, version = %v, "installed release was revoked");
            revoked = true;
        }
        if let Some(prev) = installed.as_ref().and_then(|i| i.previous.as_deref())
            && let Some(r) = revocation(conn, channel, accepted, pkg, prev)?
        {
            report.notes.push(format!(
                "{}/{}: WARNING: {prev}, kept for rollback, is REVOKED: {}; do not roll back to it",
                pkg.supplier,
                pkg.name,
                r.describe()
            ));
        }
        let best = newest_allowed(accepted, pkg, current.as_ref())?;
        let Some(release) = best else {
            if revoked
                && let Some(v) = &current
                && let Err(f) = on_revoked(
                    paths, conn, channel, accepted, &client, http, limits, now, pkg, mode, v,
                    report,
                )
            {
                report.notes.push(chain(&f));
                first_failure.get_or_insert(f);
            }
            if current.is_none() {
                report.notes.push(format!(
                    "{}/{}: no installable release allowed by policy yet",
                    pkg.supplier, pkg.name
                ));
            }
            continue;
        };
        let urls = client.archive_urls_with_digest(
            pkg.supplier.as_str(),
            pkg.name.as_str(),
            release.version().as_str(),
            &release.digest().0,
        );
        match crate::install::install_release(
            paths,
            conn,
            http,
            &urls,
            &release,
            channel.name.as_str(),
            limits,
            now,
        ) {
            Ok(done) => {
                report.installed.push(InstalledReport {
                    package: format!("{}/{}", pkg.supplier, pkg.name),
                    version: done.version.clone(),
                    previous: done.previous.clone(),
                    size: release.size(),
                    digest: release.digest().to_hex(),
                    signer: release.signer().to_hex(),
                });
                report.notes.push(format!(
                "{}/{}: installed {} (archive {} bytes, BLAKE2b-512 {}…, signature by {} verified){}",
                pkg.supplier,
                pkg.name,
                done.version,
                release.size(),
                &release.digest().to_hex()[..16],
                release.signer().fingerprint(),
                match &done.previous {
                    Some(p) => format!(", previous {p} kept for rollback"),
                    None => String::new(),
                }
            ));
            }
            Err(source) => {
                let f = UpdateError::Install {
                    release: format!("{}/{} {}", pkg.supplier, pkg.name, release.version()),
                    source: Box::new(source),
                };
                report.notes.push(chain(&f));
                first_failure.get_or_insert(f);
            }
        }
    }
    match first_failure {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// How `on_revoked` is spelled in the config.
fn mode_name(mode: OnRevoked) -> &'static str {
    match mode {
        OnRevoked::Report => "report",
        OnRevoked::Rollback => "rollback",
        OnRevoked::Remove => "remove",
    }
}

/// The revocation of `version` of `pkg` in the accepted log, with its entry and reason.
fn revocation(
    conn: &Connection,
    channel: &ChannelConfig,
    accepted: &Accepted,
    pkg: &PackageConfig,
    version: &str,
) -> Result<Option<crate::revocation::Revocation>, UpdateError> {
    // The entries are read only when something is revoked: the reason is in the entry.
    let revoked = match keyggdrasil::names::Version::parse(version) {
        Ok(v) => accepted
            .installable(&pkg.supplier, &pkg.name, &v)?
            .is_none(),
        Err(_) => false,
    };
    if !revoked {
        return Ok(None);
    }
    Ok(crate::revocation::revocation_of(
        accepted.state.loaded_state(),
        &|i| {
            crate::snapshot::entry_at(conn, channel.name.as_str(), i)
                .ok()
                .flatten()
        },
        pkg.supplier.as_str(),
        pkg.name.as_str(),
        version,
    ))
}

/// What `on_revoked` does when the installed `current` is revoked and no newer allowed
/// release replaced it: `report` keeps it; `rollback` points `current` back at the kept
/// previous version if the log still allows it, else installs the newest older release the
/// log allows (the update policy does not hold a way off a revoked version back), else only
/// reports; `remove` uninstalls it (the package stays tracked, so the next good release is
/// installed). Each outcome is a note in `report`.
#[allow(clippy::too_many_arguments)]
fn on_revoked(
    paths: &SitePaths,
    conn: &Connection,
    channel: &ChannelConfig,
    accepted: &Accepted,
    client: &ChannelClient<'_>,
    http: &Http,
    limits: &Limits,
    now: u64,
    pkg: &PackageConfig,
    mode: OnRevoked,
    current: &keyggdrasil::names::Version,
    report: &mut ChannelReport,
) -> Result<(), UpdateError> {
    let name = format!("{}/{}", pkg.supplier, pkg.name);
    let failed = |what: &str, source| UpdateError::Install {
        release: format!("{name} {what}"),
        source: Box::new(source),
    };
    match mode {
        OnRevoked::Report => {
            report.notes.push(format!(
                "{name}: still serving the REVOKED version {current} (on_revoked = report): no newer allowed release replaces it; roll back with `continuum rollback {name}`, or set on_revoked = \"rollback\" or \"remove\""
            ));
            Ok(())
        }
        OnRevoked::Remove => {
            crate::install::uninstall(paths, conn, &pkg.supplier, &pkg.name)
                .map_err(|e| failed(current.as_str(), e))?;
            report.notes.push(format!(
                "{name}: REMOVED the revoked version {current} (on_revoked = remove); the package stays tracked and its next good release will be installed"
            ));
            tracing::warn!(package = %name, version = %current, "removed a revoked install");
            Ok(())
        }
        OnRevoked::Rollback => {
            let installed = db::installed_one(conn, pkg.supplier.as_str(), pkg.name.as_str())?;
            let previous = installed
                .and_then(|i| i.previous)
                .and_then(|p| keyggdrasil::names::Version::parse(&p).ok())
                .map(|p| {
                    accepted
                        .installable(&pkg.supplier, &pkg.name, &p)
                        .map(|r| r.map(|_| p))
                })
                .transpose()?
                .flatten();
            if let Some(p) = previous {
                let done = crate::install::rollback(paths, conn, &pkg.supplier, &pkg.name)
                    .map_err(|e| failed(p.as_str(), e))?;
                report.notes.push(format!(
                    "{name}: ROLLED BACK from the revoked version {current} to {} (on_revoked = rollback)",
                    done.version
                ));
                tracing::warn!(package = %name, from = %current, to = %done.version, "rolled back a revoked install");
                return Ok(());
            }
            let older = accepted
                .installable_versions(&pkg.supplier, &pkg.name)?
                .into_iter()
                .filter(|r| r.version() < current && r.version().semver().pre.is_empty())
                .max_by(|a, b| a.version().cmp(b.version()));
            let Some(release) = older else {
                report.notes.push(format!(
                    "{name}: WARNING: on_revoked = rollback, but no version that the log still allows is older than the REVOKED {current}; still serving it (reporting only)"
                ));
                return Ok(());
            };
            let urls = client.archive_urls_with_digest(
                pkg.supplier.as_str(),
                pkg.name.as_str(),
                release.version().as_str(),
                &release.digest().0,
            );
            let done = crate::install::install_release(
                paths,
                conn,
                http,
                &urls,
                &release,
                channel.name.as_str(),
                limits,
                now,
            )
            .map_err(|e| failed(release.version().as_str(), e))?;
            report.notes.push(format!(
                "{name}: ROLLED BACK from the revoked version {current} to {} (on_revoked = rollback; archive and signature verified)",
                done.version
            ));
            Ok(())
        }
    }
}

/// The release an update installs for `pkg`: the newest installable one (not revoked, signer
/// current) that its policy allows from `current`. The one place this choice is made, for real
/// runs and dry runs alike.
pub(crate) fn newest_allowed(
    accepted: &Accepted,
    pkg: &crate::config::PackageConfig,
    current: Option<&keyggdrasil::names::Version>,
) -> Result<Option<keyggdrasil::state::VerifiedRelease>, UpdateError> {
    Ok(accepted
        .installable_versions(&pkg.supplier, &pkg.name)?
        .into_iter()
        .filter(|r| pkg.policy.allows(current, r.version()))
        .max_by(|a, b| a.version().cmp(b.version())))
}
