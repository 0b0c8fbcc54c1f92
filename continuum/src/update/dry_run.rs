//! Step 6 of `update --dry-run`: what [`super::install_packages`] would install, with each
//! archive downloaded and verified, but into a throw-away site folder.
//!
//! The caller gives a scratch [`SitePaths`] (a temporary folder) and a connection to a copy of
//! the site database; [`crate::install::install_release`] then runs exactly as in a real
//! update (size limit, digest, signature, safe extraction, manifest) against them, so a
//! release that would fail to install fails here too, and nothing of the real site changes.

use keyggdrasil::limits::Limits;
use rusqlite::Connection;

use super::packages::{RolloutSite, select};
use super::{Accepted, ChannelReport, InstalledReport, UpdateError};
use crate::channel::ChannelClient;
use crate::config::{ChannelConfig, Config, SitePaths};
use crate::db::Installed;
use crate::error::chain;
use crate::transport::Http;

/// For every tracked package of `channel`, picks the release a real run would install (the
/// newest installable one the policy allows over what `real` says is installed), downloads and
/// verifies it into `scratch` (recorded in `copy`, a copy of the database), and reports it in
/// `report.would_install`. Revoked installs are only noted (what `on_revoked` would do is not
/// simulated). Every package is tried; the first failure is returned.
#[allow(clippy::too_many_arguments)]
pub fn verify_installs(
    scratch: &SitePaths,
    copy: &Connection,
    real: &[Installed],
    config: &Config,
    channel: &ChannelConfig,
    accepted: &Accepted,
    http: &Http,
    limits: &Limits,
    now: u64,
    rollout_site: &RolloutSite,
    report: &mut ChannelReport,
) -> Result<(), UpdateError> {
    let client = ChannelClient::new(channel, http, limits);
    let mut first_failure = None;
    for pkg in config.packages.iter().filter(|p| p.channel == channel.name) {
        let name = format!("{}/{}", pkg.supplier, pkg.name);
        let installed = real
            .iter()
            .find(|i| i.supplier == pkg.supplier.as_str() && i.package == pkg.name.as_str());
        let current = installed.and_then(|i| keyggdrasil::names::Version::parse(&i.version).ok());
        if let Some(v) = &current
            && accepted.installable(&pkg.supplier, &pkg.name, v)?.is_none()
        {
            report.notes.push(format!(
                "{name}: WARNING: the installed version {v} is no longer trusted (revoked); a real run applies on_revoked"
            ));
        }
        let choice = select(accepted, copy, channel, pkg, current.as_ref(), rollout_site)?;
        if let Some(w) = &choice.waiting {
            report
                .notes
                .push(format!("{name}: would wait: {}", w.sentence()));
        }
        let Some(release) = choice.install else {
            report.notes.push(match &current {
                Some(v) => format!("{name}: would stay at {v} (nothing newer allowed)"),
                None => format!("{name}: no installable release allowed by policy yet"),
            });
            continue;
        };
        let urls = client.archive_urls_with_digest(
            pkg.supplier.as_str(),
            pkg.name.as_str(),
            release.version().as_str(),
            &release.digest().0,
        );
        match crate::install::install_release(
            scratch,
            copy,
            http,
            &urls,
            &release,
            channel.name.as_str(),
            limits,
            now,
        ) {
            Ok(_) => {
                let previous = installed.map(|i| i.version.clone());
                report.notes.push(format!(
                    "{name}: WOULD INSTALL {} (dry run: archive {} bytes, BLAKE2b-512 {}…, signature by {} verified; nothing installed){}",
                    release.version(),
                    release.size(),
                    &release.digest().to_hex()[..16],
                    release.signer().fingerprint(),
                    match &previous {
                        Some(p) => format!(", replacing {p}"),
                        None => String::new(),
                    }
                ));
                report.would_install.push(InstalledReport {
                    package: name,
                    version: release.version().as_str().to_owned(),
                    previous,
                    size: release.size(),
                    digest: release.digest().to_hex(),
                    signer: release.signer().to_hex(),
                });
            }
            Err(source) => {
                let f = UpdateError::Install {
                    release: format!("{name} {}", release.version()),
                    source: Box::new(source),
                };
                report.notes.push(format!("dry run: {}", chain(&f)));
                first_failure.get_or_insert(f);
            }
        }
    }
    match first_failure {
        Some(f) => Err(f),
        None => Ok(()),
    }
}
