//! Step 6 of a cycle: install newer allowed releases of the tracked packages.

use keyggdrasil::limits::Limits;
use rusqlite::Connection;

use super::{Accepted, ChannelReport, InstalledReport, UpdateError};
use crate::channel::ChannelClient;
use crate::config::{ChannelConfig, Config, SitePaths};
use crate::db;
use crate::error::chain;
use crate::transport::Http;

/// Installs the newest allowed, installable release of every tracked package of `channel` that
/// is newer than what is installed (or not installed yet). Every package is tried even if one
/// fails; the first failure is returned (each one is also a note in `report`).
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
        if let Some(v) = &current
            && accepted
                .state
                .installable(&pkg.supplier, &pkg.name, v)
                .is_none()
        {
            // Revoked (or its signing key was) after it was installed: say so loudly; the
            // newest allowed release below replaces it if there is one.
            report.notes.push(format!(
                "{}/{}: WARNING: the installed version {v} is no longer trusted (the release or its signing key was revoked); update or roll back",
                pkg.supplier, pkg.name
            ));
            tracing::warn!(package = %pkg.name, version = %v, "installed release was revoked");
        }
        let best = accepted
            .state
            .installable_versions(&pkg.supplier, &pkg.name)
            .into_iter()
            .filter(|r| pkg.policy.allows(current.as_ref(), r.version()))
            .max_by(|a, b| a.version().cmp(b.version()));
        let Some(release) = best else {
            if current.is_none() {
                report.notes.push(format!(
                    "{}/{}: no installable release allowed by policy yet",
                    pkg.supplier, pkg.name
                ));
            }
            continue;
        };
        let urls = client.archive_urls(
            pkg.supplier.as_str(),
            pkg.name.as_str(),
            release.version().as_str(),
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
