//! Which installed or kept versions the accepted log revoked, and why (for `status`,
//! `rollback`, `update`'s `on_revoked`, and `info`).
//!
//! A version is revoked if the log revoked the release itself, or revoked the signing key that
//! signed it (a release signed by a revoked key is never installable again, see
//! [`keyggdrasil::state::KeyState::installable`]). The key state keeps only the index of the
//! revocation entry; the reason is read from that entry in the accepted log. [`revocation_of`]
//! is pure; [`Logs`] and [`revoked_versions`] read the site database.

use std::collections::BTreeMap;

use keyggdrasil::entry::{Entry, Event};
use keyggdrasil::names::{ChannelName, PackageName, SupplierName, Version};
use keyggdrasil::snapshot::PartialState;
use keyggdrasil::state::KeyState;
use rusqlite::Connection;
use serde::Serialize;

use crate::db;
use crate::snapshot::{SiteRows, StateError, named_state_error};
use crate::update::UpdateError;

/// What the log revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokedWhat {
    /// The release itself (a `release_revocation` entry).
    Release,
    /// The signing key that signed the release (a `key_revocation` entry).
    SigningKey,
}

/// Why one version may no longer be trusted: the revocation entry and its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revocation {
    /// The release or its signing key.
    pub revoked: RevokedWhat,
    /// Log index of the revocation entry.
    pub entry: u64,
    /// The reason the entry gives (for people; at most 256 bytes, no control characters, as
    /// keyggdrasil validated it).
    pub reason: String,
    /// The signing key of the release (hex).
    pub signer: String,
}

impl Revocation {
    /// One phrase for people: "the release was revoked by log entry 7 (reason: \"broken\")".
    pub fn describe(&self) -> String {
        let what = match self.revoked {
            RevokedWhat::Release => "the release was revoked".to_owned(),
            RevokedWhat::SigningKey => format!(
                "its signing key {}… was revoked",
                self.signer.get(..16).unwrap_or(&self.signer)
            ),
        };
        format!(
            "{what} by log entry {} (reason: {:?})",
            self.entry, self.reason
        )
    }
}

/// The revocation of `supplier/package version` in `state`, if the release or its signing key
/// was revoked; `None` if it is not revoked, and also if the log does not know that version
/// at all (then there is nothing the log says against it). `entry_at` reads the accepted entry at
/// a log index (of the log the state was derived from); the reason is read from the entry there.
pub fn revocation_of(
    state: &KeyState,
    entry_at: &dyn Fn(u64) -> Option<Vec<u8>>,
    supplier: &str,
    package: &str,
    version: &str,
) -> Option<Revocation> {
    let supplier = SupplierName::parse(supplier).ok()?;
    let package = PackageName::parse(package).ok()?;
    let version = Version::parse(version).ok()?;
    let s = state.supplier(&supplier)?;
    let r = s.releases.get(&package)?.get(&version)?;
    let (revoked, entry) = match (
        r.revoked_at,
        s.keys.get(&r.signer).and_then(|k| k.revoked_at),
    ) {
        (Some(i), _) => (RevokedWhat::Release, i),
        (None, Some(i)) => (RevokedWhat::SigningKey, i),
        (None, None) => return None,
    };
    Some(Revocation {
        revoked,
        entry,
        reason: reason_at(entry_at, entry),
        signer: r.signer.to_hex(),
    })
}

/// The reason of the revocation entry at `index`. The entries were verified when the state was
/// replayed from them, so a missing or other entry means the caller passed another log; say
/// so rather than fail, the revocation itself is certain.
fn reason_at(entry_at: &dyn Fn(u64) -> Option<Vec<u8>>, index: u64) -> String {
    let entry = entry_at(index).and_then(|b| Entry::parse(&b).ok());
    match entry.as_ref().map(|e| &e.body().event) {
        Some(Event::ReleaseRevocation { reason, .. } | Event::KeyRevocation { reason, .. }) => {
            reason.as_str().to_owned()
        }
        _ => "(the revocation entry could not be read)".to_owned(),
    }
}

/// The accepted key state of the channels and packages asked about so far, loaded from the
/// snapshot ([`crate::snapshot`]) once each: O(rows of those packages), whatever the log size.
#[derive(Default)]
pub struct Logs {
    by_channel: BTreeMap<String, PartialState>,
}

impl Logs {
    /// The key state of `channel` as this site accepted it, with `supplier/package` (and the
    /// supplier's keys) loaded; the snapshot is checked against the stored log on first use
    /// of each channel. An unknown channel is an empty log.
    pub fn package(
        &mut self,
        conn: &Connection,
        channel: &str,
        supplier: &SupplierName,
        package: &PackageName,
    ) -> Result<&KeyState, UpdateError> {
        if !self.by_channel.contains_key(channel) {
            let size = match ChannelName::parse(channel) {
                Ok(name) => crate::snapshot::open(conn, &name)?.head.size,
                Err(_) => 0,
            };
            self.by_channel
                .insert(channel.to_owned(), PartialState::new(size));
        }
        let state = self
            .by_channel
            .get_mut(channel)
            .ok_or_else(|| StateError::NotLoaded(channel.to_owned()))?;
        state
            .load_package_from(&SiteRows::new(conn, channel), supplier, package)
            .map_err(|e| named_state_error(channel, e))?;
        Ok(state.loaded_state())
    }

    /// [`revocation_of`] in the accepted log of `channel`.
    pub fn revocation(
        &mut self,
        conn: &Connection,
        channel: &str,
        supplier: &str,
        package: &str,
        version: &str,
    ) -> Result<Option<Revocation>, UpdateError> {
        let (Ok(s), Ok(p)) = (SupplierName::parse(supplier), PackageName::parse(package)) else {
            return Ok(None);
        };
        let state = self.package(conn, channel, &s, &p)?;
        Ok(revocation_of(
            state,
            &|i| crate::snapshot::entry_at(conn, channel, i).ok().flatten(),
            supplier,
            package,
            version,
        ))
    }
}

/// One installed or kept version that the log revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevokedVersion {
    /// `supplier/package`.
    pub package: String,
    /// The version.
    pub version: String,
    /// True for the installed (served) version, false for a version kept for rollback.
    pub installed: bool,
    /// The revocation.
    #[serde(flatten)]
    pub revocation: Revocation,
}

impl RevokedVersion {
    /// One line for people, naming the package, the version, the entry and the reason.
    pub fn describe(&self) -> String {
        format!(
            "{} {} ({}) is REVOKED: {}",
            self.package,
            self.version,
            if self.installed {
                "installed"
            } else {
                "kept for rollback"
            },
            self.revocation.describe()
        )
    }
}

/// Every installed version, and every version kept for rollback, of every installed package
/// that the log of its channel revoked (directly or through its signing key). Reads the
/// database only; changes nothing.
pub fn revoked_versions(
    conn: &Connection,
    logs: &mut Logs,
) -> Result<Vec<RevokedVersion>, UpdateError> {
    db::ensure_install_tables(conn)?;
    let mut out = Vec::new();
    for i in db::installed(conn)? {
        let name = format!("{}/{}", i.supplier, i.package);
        if let Some(r) = logs.revocation(conn, &i.channel, &i.supplier, &i.package, &i.version)? {
            out.push(RevokedVersion {
                package: name.clone(),
                version: i.version.clone(),
                installed: true,
                revocation: r,
            });
        }
        for s in db::stored_versions(conn, &i.supplier, &i.package)? {
            if s.version == i.version {
                continue;
            }
            if let Some(r) =
                logs.revocation(conn, &s.channel, &s.supplier, &s.package, &s.version)?
            {
                out.push(RevokedVersion {
                    package: name.clone(),
                    version: s.version,
                    installed: false,
                    revocation: r,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use keyggdrasil::entry::{Digest512, EntryBody, GitCommit, Reason};
    use keyggdrasil::keys::KeyPair;

    use super::*;

    struct Log {
        state: KeyState,
        entries: Vec<Vec<u8>>,
    }

    impl Log {
        fn add(&mut self, by: &KeyPair, event: Event) -> u64 {
            let body = EntryBody::new(SupplierName::parse("acme").unwrap(), by.public(), event);
            let e = Entry::sign(body, by).unwrap();
            self.state.apply(&e).unwrap();
            self.entries.push(e.as_bytes().to_vec());
            self.entries.len() as u64 - 1
        }
    }

    fn release(key: &KeyPair, version: &str) -> Event {
        let archive = version.as_bytes();
        let (size, digest) = keyggdrasil::filesig::archive_digest(archive).unwrap();
        Event::Release {
            package: PackageName::parse("hello").unwrap(),
            version: Version::parse(version).unwrap(),
            size,
            digest: Digest512(digest),
            commit: GitCommit::parse(&"a".repeat(40)).unwrap(),
            signature: keyggdrasil::filesig::sign(key, archive).unwrap(),
            rollout: None,
        }
    }

    /// acme with a master and a signing key, and hello 1.0.0 and 1.1.0 signed by it.
    fn log() -> (Log, KeyPair, KeyPair) {
        let (master, signing) = (KeyPair::generate(), KeyPair::generate());
        let mut log = Log {
            state: KeyState::new(),
            entries: Vec::new(),
        };
        log.add(
            &master,
            Event::MasterKey {
                public_key: master.public(),
                derivation: None,
            },
        );
        log.add(
            &master,
            Event::SigningKey {
                public_key: signing.public(),
                derivation: None,
            },
        );
        log.add(&signing, release(&signing, "1.0.0"));
        log.add(&signing, release(&signing, "1.1.0"));
        (log, master, signing)
    }

    fn of(log: &Log, version: &str) -> Option<Revocation> {
        revocation_of(
            &log.state,
            &|i| log.entries.get(i as usize).cloned(),
            "acme",
            "hello",
            version,
        )
    }

    #[test]
    fn a_revoked_release_names_its_entry_and_reason() {
        let (mut log, master, signing) = log();
        assert_eq!(of(&log, "1.1.0"), None);
        let at = log.add(
            &master,
            Event::ReleaseRevocation {
                package: PackageName::parse("hello").unwrap(),
                version: Version::parse("1.1.0").unwrap(),
                reason: Reason::parse("broken build").unwrap(),
            },
        );
        let r = of(&log, "1.1.0").expect("revoked");
        assert_eq!(
            r,
            Revocation {
                revoked: RevokedWhat::Release,
                entry: at,
                reason: "broken build".into(),
                signer: signing.public().to_hex(),
            }
        );
        assert_eq!(
            r.describe(),
            format!("the release was revoked by log entry {at} (reason: \"broken build\")")
        );
        assert_eq!(of(&log, "1.0.0"), None);
    }

    #[test]
    fn a_revoked_signing_key_revokes_every_release_it_signed() {
        let (mut log, master, signing) = log();
        let at = log.add(
            &master,
            Event::KeyRevocation {
                public_key: signing.public(),
                reason: Reason::parse("key leaked").unwrap(),
            },
        );
        for v in ["1.0.0", "1.1.0"] {
            let r = of(&log, v).expect("revoked");
            assert_eq!((r.revoked, r.entry), (RevokedWhat::SigningKey, at));
            assert_eq!(r.reason, "key leaked");
            assert!(
                r.describe().starts_with("its signing key "),
                "{}",
                r.describe()
            );
        }
    }

    #[test]
    fn unknown_versions_and_names_are_not_revoked() {
        let (log, _, _) = log();
        assert_eq!(of(&log, "9.9.9"), None);
        assert_eq!(of(&log, "not a version"), None);
        assert_eq!(
            revocation_of(
                &log.state,
                &|i| log.entries.get(i as usize).cloned(),
                "nobody",
                "hello",
                "1.0.0"
            ),
            None
        );
        assert_eq!(
            revocation_of(
                &log.state,
                &|i| log.entries.get(i as usize).cloned(),
                "acme",
                "Bad Name",
                "1.0.0"
            ),
            None
        );
    }

    #[test]
    fn a_missing_revocation_entry_is_said_not_fatal() {
        let (mut log, master, _) = log();
        log.add(
            &master,
            Event::ReleaseRevocation {
                package: PackageName::parse("hello").unwrap(),
                version: Version::parse("1.0.0").unwrap(),
                reason: Reason::parse("x").unwrap(),
            },
        );
        let r = revocation_of(&log.state, &|_| None, "acme", "hello", "1.0.0").expect("revoked");
        assert_eq!(r.reason, "(the revocation entry could not be read)");
    }
}
