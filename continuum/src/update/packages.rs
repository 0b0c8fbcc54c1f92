//! Step 6 of a cycle: install newer allowed releases of the tracked packages.
//!
//! # Staged rollouts
//! A release whose rollout schedule ([`keyggdrasil::rollout`]) does not include this site now
//! is not installed this run; the site installs instead the newest release the policy allows
//! whose decision is "install" (so a paused or staged 2.0.0 does not hold back a 1.9.1
//! security fix), and reports the newest waiting one ([`RolloutWait`]: `continuum status`, the
//! status file, the run's notes). The bucket comes from the site's notary public key and the
//! release entry's leaf hash, read from the site's own accepted log; `now` is the site's clock.

use keyggdrasil::keys::PublicKey;
use keyggdrasil::limits::Limits;
use keyggdrasil::merkle::TreeHasher;
use keyggdrasil::rollout::{self, RolloutDecision};
use keyggdrasil::state::VerifiedRelease;
use rusqlite::Connection;
use serde::Serialize;

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
    let site = RolloutSite::load(paths, now);
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
        let choice = select(accepted, conn, channel, pkg, current.as_ref(), &site)?;
        if let Some(w) = &choice.waiting {
            report
                .notes
                .push(format!("{}/{}: {}", pkg.supplier, pkg.name, w.sentence()));
        }
        let Some(release) = choice.install else {
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
            if current.is_none() && choice.waiting.is_none() {
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

/// What this site's rollout decisions need: its bucket key (the notary public key, derived
/// from the site secret) and its own clock.
pub struct RolloutSite {
    key: Result<PublicKey, String>,
    now: u64,
}

impl RolloutSite {
    /// Reads the site's notary public key from `paths` (the site secret). If it cannot be
    /// read, releases with a schedule wait (reason `no_bucket`) and the rest is unaffected: a
    /// site that cannot place itself in a wave must not install early.
    pub fn load(paths: &SitePaths, now: u64) -> Self {
        RolloutSite {
            key: crate::notary::load_notary_keypair(paths)
                .map(|k| k.public())
                .map_err(|e| chain(&e)),
            now,
        }
    }

    /// The decision for `release` at this site now. No schedule: install, without reading
    /// anything.
    fn decide(
        &self,
        conn: &Connection,
        channel: &ChannelConfig,
        release: &VerifiedRelease,
    ) -> Result<Option<RolloutWait>, UpdateError> {
        let Some(schedule) = release.rollout() else {
            return Ok(None);
        };
        let waiting =
            |current_percent, wave_percent, bucket, until, reason: &'static str, detail| {
                RolloutWait {
                    release: release.version().as_str().to_owned(),
                    current_percent,
                    wave_percent,
                    bucket,
                    waiting_until: until,
                    reason,
                    detail,
                }
            };
        let key = match &self.key {
            Ok(k) => k,
            Err(e) => {
                return Ok(Some(waiting(
                    0,
                    None,
                    None,
                    None,
                    "no_bucket",
                    format!(
                        "the site's notary key could not be read ({e}), so its rollout bucket is unknown"
                    ),
                )));
            }
        };
        let leaf = release_leaf_hash(conn, channel, release)?;
        let bucket = rollout::bucket(key, &leaf);
        Ok(match rollout::decide(Some(schedule), bucket, self.now) {
            RolloutDecision::Install => None,
            RolloutDecision::Wait {
                current_percent,
                wave_percent,
                bucket,
                next_at,
                reason,
            } => Some(waiting(
                current_percent,
                wave_percent,
                Some(bucket),
                next_at,
                reason.name(),
                reason.to_string(),
            )),
        })
    }
}

/// The Merkle leaf hash of the release's entry, from the site's accepted log; the entry must
/// be that release (else the stored log is damaged: [`crate::snapshot::StateError::Mismatch`]).
fn release_leaf_hash(
    conn: &Connection,
    channel: &ChannelConfig,
    release: &VerifiedRelease,
) -> Result<keyggdrasil::merkle::Hash, UpdateError> {
    let name = channel.name.as_str();
    let mismatch = |detail: String| {
        UpdateError::State(crate::snapshot::StateError::Mismatch {
            channel: name.to_owned(),
            detail,
        })
    };
    let bytes = crate::snapshot::entry_at(conn, name, release.index())
        .map_err(UpdateError::Db)?
        .ok_or_else(|| mismatch(format!("no stored entry at index {}", release.index())))?;
    let is_it = keyggdrasil::entry::Entry::parse(&bytes).is_ok_and(|e| {
        matches!(&e.body().event, keyggdrasil::entry::Event::Release { package, version, .. }
            if package == release.package() && version == release.version())
            && e.body().supplier == *release.supplier()
    });
    if !is_it {
        return Err(mismatch(format!(
            "the stored entry at index {} is not the release {}/{} {}",
            release.index(),
            release.supplier(),
            release.package(),
            release.version()
        )));
    }
    Ok(keyggdrasil::merkle::Blake2b256.hash_leaf(&bytes))
}

/// Why the newest release the policy allows is not installed at this site yet (its rollout
/// schedule does not include the site now). Shown by `continuum status` (JSON `rollout`), the
/// status file and the run's notes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloutWait {
    /// The waiting version.
    pub release: String,
    /// Percent of the current wave (0: none has started).
    pub current_percent: u8,
    /// Percent of the first wave that includes this site (`null`: none does).
    pub wave_percent: Option<u8>,
    /// This site's bucket for the release, 0 ..= 99 (`null`: unknown, see `reason`).
    pub bucket: Option<u8>,
    /// When that wave starts, Unix seconds by this site's clock (`null`: only a new rollout
    /// entry by the author can change the answer: paused, or no wave includes this site).
    pub waiting_until: Option<u64>,
    /// `paused`, `not_started`, `outside_wave` or `no_bucket`.
    pub reason: &'static str,
    /// The reason for people.
    pub detail: String,
}

impl RolloutWait {
    /// One sentence for people.
    pub fn sentence(&self) -> String {
        let bucket = self
            .bucket
            .map(|b| format!(" (bucket {b}, current wave {}%)", self.current_percent))
            .unwrap_or_default();
        let when = match (self.wave_percent, self.waiting_until) {
            (Some(p), Some(t)) => format!(
                "; its wave ({p}%) starts at {} (this site's clock)",
                crate::site::rfc3339(t)
            ),
            _ if self.reason == "paused" => {
                "; it installs once the author resumes the rollout".to_owned()
            }
            _ => "; no scheduled wave includes this site: it installs when the author widens the rollout".to_owned(),
        };
        format!(
            "{} is waiting for its staged rollout: {}{bucket}{when}",
            self.release, self.detail
        )
    }
}

/// What an update does for one package: the release to install, if any, and the newest
/// release the policy allows that waits for its rollout, if any.
pub(crate) struct Choice {
    pub(crate) install: Option<VerifiedRelease>,
    pub(crate) waiting: Option<RolloutWait>,
}

/// The release an update installs for `pkg`: the newest installable one (not revoked, signer
/// current) that its policy allows from `current` and whose rollout includes this site now;
/// with the newest allowed one that waits for its rollout. The one place this choice is made,
/// for real runs, dry runs and `status` alike.
pub(crate) fn select(
    accepted: &Accepted,
    conn: &Connection,
    channel: &ChannelConfig,
    pkg: &crate::config::PackageConfig,
    current: Option<&keyggdrasil::names::Version>,
    site: &RolloutSite,
) -> Result<Choice, UpdateError> {
    let mut allowed: Vec<VerifiedRelease> = accepted
        .installable_versions(&pkg.supplier, &pkg.name)?
        .into_iter()
        .filter(|r| pkg.policy.allows(current, r.version()))
        .collect();
    allowed.sort_by(|a, b| b.version().cmp(a.version()));
    let mut waiting = None;
    for release in allowed {
        match site.decide(conn, channel, &release)? {
            None => {
                return Ok(Choice {
                    install: Some(release),
                    waiting,
                });
            }
            Some(w) => {
                waiting.get_or_insert(w);
            }
        }
    }
    Ok(Choice {
        install: None,
        waiting,
    })
}

/// For `continuum status` and the status file: per tracked package (`supplier/package`), the
/// newest allowed release that waits for its rollout at this site now. Read-only; a channel
/// whose stored state cannot be opened is skipped (the next update reports it).
pub fn rollout_waits(
    paths: &SitePaths,
    config: &Config,
    conn: &Connection,
    now: u64,
) -> Vec<(String, RolloutWait)> {
    let site = RolloutSite::load(paths, now);
    let mut out = Vec::new();
    for channel in &config.channels {
        let Ok(accepted) = super::load_accepted(conn, config, &channel.name) else {
            continue;
        };
        for pkg in config.packages.iter().filter(|p| p.channel == channel.name) {
            let current = db::installed_one(conn, pkg.supplier.as_str(), pkg.name.as_str())
                .ok()
                .flatten()
                .and_then(|i| keyggdrasil::names::Version::parse(&i.version).ok());
            if let Ok(Choice {
                waiting: Some(w), ..
            }) = select(&accepted, conn, channel, pkg, current.as_ref(), &site)
            {
                out.push((format!("{}/{}", pkg.supplier, pkg.name), w));
            }
        }
    }
    out
}
