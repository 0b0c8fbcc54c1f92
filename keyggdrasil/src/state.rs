//! The supplier key state machine: one deterministic set of rules, applied in log order, used by
//! the channel (to refuse a bad submission before it is appended) and by every site (to verify
//! what the channel sent). Written once so the two ends cannot drift apart.
//!
//! # Rules
//! - The first entry of an unknown supplier must be a master key signed by that key itself
//!   (proof of possession). Whether first use is enough or an invite is needed is the channel's
//!   policy and is checked by the channel, not here.
//! - A later master or signing key must be signed by a current master key of the supplier.
//! - A key can belong to one supplier only, and is never registered twice, even after revocation.
//! - A key revocation must be signed by a current master key other than the revoked one, and may
//!   not revoke the supplier's last current master key. Revoking a master key does not revoke the
//!   keys it added (revoke those explicitly if they are suspect).
//! - A release must be signed by a current signing key of its supplier (master keys do not sign
//!   releases); a package version is released at most once, ever.
//! - A release revocation must be signed by a current master or signing key of the supplier and
//!   name an existing, unrevoked release.
//! - A rollout event must be signed by a current master or signing key of the supplier, name an
//!   existing, unrevoked release of that supplier, carry valid waves ([`crate::rollout`]), and
//!   name in `replaces` the log index of the release's current schedule: its latest accepted
//!   rollout event, or the release entry itself when there is none. It then replaces that
//!   schedule. A release's own `rollout` field is its first schedule. So each rollout event is
//!   valid exactly once, like every other event kind (docs/decisions.md 8): a replayed or stale
//!   one names a schedule that is no longer current (`stale_rollout`).
//! - An attestation must be signed by a current key of the attesting supplier, name an existing
//!   release of another supplier (never the attester's own) and carry that release's digest;
//!   one per attester and release.
//!
//! A release is installable only while it is not revoked and the signing key that signed it has
//! not been revoked since ([`KeyState::installable`]). Every entry's signature is verified
//! strictly here, under the context of its event kind; nothing else in the system decides
//! whether an entry is acceptable.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use crate::archive_check::{ArchiveMismatch, CheckedArchive, ExpectedArchive};
use crate::entry::{CheckedEntry, Claim, Digest512, Entry, Event, GitCommit};
use crate::keys::{PublicKey, Signature};
use crate::names::{PackageName, SupplierName, Version};
use crate::rollout::Rollout;

/// The role of a supplier key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// May add and revoke keys.
    Master,
    /// May sign releases.
    Signing,
}

/// Why an entry was refused. Each variant is one rule; [`Refusal::rule`] gives a stable
/// machine-readable name for API errors.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The entry's signature does not verify under its named signer.
    #[error("the entry's signature does not verify under its signer key {0}")]
    BadSignature(PublicKey),
    /// An unknown supplier's first entry is not a master key.
    #[error("supplier {0} is unknown: its first entry must register a master key")]
    UnknownSupplier(SupplierName),
    /// A supplier's first master key is not signed by itself.
    #[error(
        "the first master key of supplier {0} must be signed by that key itself (proof of possession)"
    )]
    FirstKeyNotSelfSigned(SupplierName),
    /// A key event is not signed by a current master key.
    #[error("key {signer} is not a current master key of supplier {supplier}")]
    NotCurrentMaster {
        /// The supplier.
        supplier: SupplierName,
        /// The signer that was refused.
        signer: PublicKey,
    },
    /// The key is already registered (to this or another supplier, possibly revoked).
    #[error("key {0} is already registered and can never be registered again")]
    KeyAlreadyRegistered(PublicKey),
    /// The revoked key is not a key of this supplier.
    #[error("key {key} is not a key of supplier {supplier}")]
    NotSupplierKey {
        /// The supplier.
        supplier: SupplierName,
        /// The key.
        key: PublicKey,
    },
    /// The key is already revoked.
    #[error("key {0} is already revoked")]
    KeyAlreadyRevoked(PublicKey),
    /// A master key tried to revoke itself.
    #[error("a key revocation must be signed by a master key other than the revoked key {0}")]
    SelfRevocation(PublicKey),
    /// The revocation would leave the supplier without a current master key.
    #[error(
        "refusing to revoke {0}: it is the supplier's last current master key (add another master key first)"
    )]
    LastMasterKey(PublicKey),
    /// A release is not signed by a current signing key.
    #[error("key {signer} is not a current signing key of supplier {supplier}")]
    NotCurrentSigningKey {
        /// The supplier.
        supplier: SupplierName,
        /// The signer that was refused.
        signer: PublicKey,
    },
    /// The package version was already released.
    #[error("{supplier}/{package} {version} was already released; versions are immutable")]
    ReleaseExists {
        /// The supplier.
        supplier: SupplierName,
        /// The package.
        package: PackageName,
        /// The version.
        version: Version,
    },
    /// The named release does not exist.
    #[error("{supplier}/{package} {version} was never released")]
    UnknownRelease {
        /// The supplier.
        supplier: SupplierName,
        /// The package.
        package: PackageName,
        /// The version.
        version: Version,
    },
    /// The release is already revoked.
    #[error("{supplier}/{package} {version} is already revoked")]
    ReleaseAlreadyRevoked {
        /// The supplier.
        supplier: SupplierName,
        /// The package.
        package: PackageName,
        /// The version.
        version: Version,
    },
    /// A release revocation or attestation is not signed by a current key of the supplier.
    #[error("key {signer} is not a current key of supplier {supplier}")]
    NotCurrentKey {
        /// The supplier.
        supplier: SupplierName,
        /// The signer that was refused.
        signer: PublicKey,
    },
    /// The attested digest differs from the logged one.
    #[error("the attested digest does not match the logged digest of the release")]
    AttestationDigestMismatch,
    /// The same supplier already attested this release.
    #[error("supplier {0} already attested this release")]
    DuplicateAttestation(SupplierName),
    /// A supplier attested one of its own releases: an attestation is another supplier's word.
    #[error(
        "supplier {0} may not attest its own release: an attestation is made by another supplier"
    )]
    SelfAttestation(SupplierName),
    /// A rollout event names a schedule that is not the release's current one: it is stale (a
    /// later schedule replaced the one it names) or replayed.
    #[error(
        "the rollout entry for {}/{} {} replaces the schedule at log index \
         {replaces}, but the current schedule is the one at index {current}: the entry is stale \
         or replayed (a rollout entry is valid once, against the schedule it names)",
        release.0,
        release.1,
        release.2
    )]
    StaleRollout {
        /// The release (supplier, package, version); boxed to keep [`Refusal`] small.
        release: Box<(SupplierName, PackageName, Version)>,
        /// The index the entry names.
        replaces: u64,
        /// The index of the current schedule (latest rollout entry, else the release entry).
        current: u64,
    },
    /// The log is longer than this implementation can index.
    #[error("the log is full")]
    LogFull,
    /// A rollout schedule breaks the wave rules of [`crate::rollout`]. Entry parsing and
    /// signing refuse such schedules already; the state machine checks again so that the rule
    /// holds whatever way an entry reached it.
    #[error("invalid rollout schedule: {0}")]
    InvalidRollout(crate::rollout::RolloutError),
}

impl Refusal {
    /// Every rule name [`Refusal::rule`] can give (the channel's error codes for refusals).
    pub const RULES: &'static [&'static str] = &[
        "bad_signature",
        "unknown_supplier",
        "first_key_not_self_signed",
        "not_current_master",
        "key_already_registered",
        "not_supplier_key",
        "key_already_revoked",
        "self_revocation",
        "last_master_key",
        "not_current_signing_key",
        "release_exists",
        "unknown_release",
        "release_already_revoked",
        "not_current_key",
        "attestation_digest_mismatch",
        "duplicate_attestation",
        "log_full",
        "invalid_rollout",
        "self_attestation",
        "stale_rollout",
    ];

    /// The stable machine-readable name of the rule that refused (one of [`Refusal::RULES`]).
    pub fn rule(&self) -> &'static str {
        match self {
            Refusal::BadSignature(_) => "bad_signature",
            Refusal::UnknownSupplier(_) => "unknown_supplier",
            Refusal::FirstKeyNotSelfSigned(_) => "first_key_not_self_signed",
            Refusal::NotCurrentMaster { .. } => "not_current_master",
            Refusal::KeyAlreadyRegistered(_) => "key_already_registered",
            Refusal::NotSupplierKey { .. } => "not_supplier_key",
            Refusal::KeyAlreadyRevoked(_) => "key_already_revoked",
            Refusal::SelfRevocation(_) => "self_revocation",
            Refusal::LastMasterKey(_) => "last_master_key",
            Refusal::NotCurrentSigningKey { .. } => "not_current_signing_key",
            Refusal::ReleaseExists { .. } => "release_exists",
            Refusal::UnknownRelease { .. } => "unknown_release",
            Refusal::ReleaseAlreadyRevoked { .. } => "release_already_revoked",
            Refusal::NotCurrentKey { .. } => "not_current_key",
            Refusal::AttestationDigestMismatch => "attestation_digest_mismatch",
            Refusal::DuplicateAttestation(_) => "duplicate_attestation",
            Refusal::LogFull => "log_full",
            Refusal::InvalidRollout(_) => "invalid_rollout",
            Refusal::SelfAttestation(_) => "self_attestation",
            Refusal::StaleRollout { .. } => "stale_rollout",
        }
    }
}

/// What the state knows about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Master or signing.
    pub role: Role,
    /// Log index of the entry that added it.
    pub added_at: u64,
    /// The key that signed its addition (itself for a first master key).
    pub added_by: PublicKey,
    /// Log index of its revocation, if revoked.
    pub revoked_at: Option<u64>,
}

/// What the state knows about one release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRecord {
    /// Log index of the release entry.
    pub index: u64,
    /// The signing key that signed it (entry and archive).
    pub signer: PublicKey,
    /// Archive size in bytes.
    pub size: u64,
    /// Unkeyed BLAKE2b-512 of the archive.
    pub digest: Digest512,
    /// Git commit.
    pub commit: GitCommit,
    /// Halite-compatible archive signature by `signer`.
    pub archive_signature: Signature,
    /// Log index of its revocation, if revoked.
    pub revoked_at: Option<u64>,
    /// Suppliers that attested it, with their claim and log index.
    pub attestations: Vec<(SupplierName, Claim, u64)>,
    /// The current rollout schedule (the release's own, or the latest rollout event's);
    /// `None`: everyone at once.
    pub rollout: Option<Rollout>,
    /// Log index of the latest rollout event for it, if any.
    pub rollout_at: Option<u64>,
}

impl ReleaseRecord {
    /// The log index of the entry that set the current schedule: the latest rollout event, or
    /// the release entry itself. A new rollout event must name it as `replaces`.
    pub fn schedule_index(&self) -> u64 {
        self.rollout_at.unwrap_or(self.index)
    }

    /// What the archive of this release must be. Whether the release may still be installed is
    /// another question ([`KeyState::installable`]); this one only ties bytes to the entry.
    pub fn expected_archive(&self) -> ExpectedArchive {
        ExpectedArchive::signed(self.size, self.digest, self.signer, self.archive_signature)
    }
}

/// One supplier's keys and releases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SupplierState {
    /// Every key ever registered, by public key.
    pub keys: BTreeMap<PublicKey, KeyRecord>,
    /// Every release ever logged, by package then version.
    pub releases: BTreeMap<PackageName, BTreeMap<Version, ReleaseRecord>>,
}

impl SupplierState {
    fn is_current(&self, key: &PublicKey, role: Role) -> bool {
        self.keys
            .get(key)
            .is_some_and(|r| r.role == role && r.revoked_at.is_none())
    }
    fn is_current_any(&self, key: &PublicKey) -> bool {
        self.keys.get(key).is_some_and(|r| r.revoked_at.is_none())
    }
    /// The current (unrevoked) master keys.
    pub fn current_masters(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys
            .iter()
            .filter(|(_, r)| r.role == Role::Master && r.revoked_at.is_none())
            .map(|(k, _)| k)
    }
}

/// A release that the log allows a site to install: logged, signed by a signing key of its
/// supplier that was current at the time, not revoked, and its signer not revoked since.
///
/// Only [`KeyState`] can make one; `continuum` installs nothing else. It still has to check the
/// downloaded archive against [`VerifiedRelease::digest`], [`VerifiedRelease::size`] and the
/// archive signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRelease {
    supplier: SupplierName,
    package: PackageName,
    version: Version,
    record: ReleaseRecord,
}

impl VerifiedRelease {
    /// The supplier.
    pub fn supplier(&self) -> &SupplierName {
        &self.supplier
    }
    /// The package.
    pub fn package(&self) -> &PackageName {
        &self.package
    }
    /// The version.
    pub fn version(&self) -> &Version {
        &self.version
    }
    /// Archive size in bytes.
    pub fn size(&self) -> u64 {
        self.record.size
    }
    /// Unkeyed BLAKE2b-512 of the archive.
    pub fn digest(&self) -> &Digest512 {
        &self.record.digest
    }
    /// The key that must have made [`Self::archive_signature`].
    pub fn signer(&self) -> &PublicKey {
        &self.record.signer
    }
    /// The archive signature to check with [`crate::filesig::verify`].
    pub fn archive_signature(&self) -> &Signature {
        &self.record.archive_signature
    }
    /// Git commit the archive was built from.
    pub fn commit(&self) -> &GitCommit {
        &self.record.commit
    }
    /// What the archive of this release must be (size, digest, signer, signature).
    pub fn expected_archive(&self) -> ExpectedArchive {
        self.record.expected_archive()
    }
    /// Checks archive bytes against this release in one streamed pass (see
    /// [`crate::archive_check`]); reads at most one byte past the logged size.
    pub fn check_archive(
        &self,
        reader: impl std::io::Read,
    ) -> Result<CheckedArchive, ArchiveMismatch> {
        self.expected_archive().check(reader)
    }
    /// Log index of the release entry.
    pub fn index(&self) -> u64 {
        self.record.index
    }
    /// Attestations logged for this release.
    pub fn attestations(&self) -> &[(SupplierName, Claim, u64)] {
        &self.record.attestations
    }
    /// The current rollout schedule, if any (decide with [`crate::rollout::decide`]).
    pub fn rollout(&self) -> Option<&Rollout> {
        self.record.rollout.as_ref()
    }
}

/// What an accepted entry changed, for logs and user output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The log index the entry took.
    pub index: u64,
    /// The supplier.
    pub supplier: SupplierName,
    /// The event kind (`release`, `key_revocation`, ...).
    pub kind: &'static str,
}

/// The key state derived from a log prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyState {
    // Crate-visible for `snapshot`, which builds a partial state from stored rows.
    pub(crate) size: u64,
    pub(crate) suppliers: BTreeMap<SupplierName, SupplierState>,
    pub(crate) key_owner: BTreeMap<PublicKey, SupplierName>,
}

impl KeyState {
    /// The state of the empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries applied so far (= the next entry's index).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// A supplier's state, if known.
    pub fn supplier(&self, name: &SupplierName) -> Option<&SupplierState> {
        self.suppliers.get(name)
    }

    /// All known suppliers.
    pub fn suppliers(&self) -> impl Iterator<Item = (&SupplierName, &SupplierState)> {
        self.suppliers.iter()
    }

    /// Which supplier owns `key`, if any.
    pub fn key_owner(&self, key: &PublicKey) -> Option<&SupplierName> {
        self.key_owner.get(key)
    }

    /// Checks `entry` against the rules as the next log entry, without changing anything.
    pub fn check(&self, entry: &Entry) -> Result<(), Refusal> {
        self.plan(entry, false).map(|_| ())
    }

    /// Like [`KeyState::check`] for an entry whose signature was already verified.
    pub fn check_checked(&self, entry: &CheckedEntry) -> Result<(), Refusal> {
        self.plan(entry.entry(), true).map(|_| ())
    }

    /// Like [`KeyState::apply`] for an entry whose signature was already verified (the rules are
    /// all checked; only the signature is not verified a second time).
    pub fn apply_checked(&mut self, entry: &CheckedEntry) -> Result<Applied, Refusal> {
        self.apply_inner(entry.entry(), true)
    }

    /// Checks `entry` and, if it is acceptable, applies it as the next log entry. On refusal
    /// nothing changes.
    pub fn apply(&mut self, entry: &Entry) -> Result<Applied, Refusal> {
        self.apply_inner(entry, false)
    }

    fn apply_inner(&mut self, entry: &Entry, signature_checked: bool) -> Result<Applied, Refusal> {
        let change = self.plan(entry, signature_checked)?;
        let index = self.size;
        self.commit(entry, change);
        self.size = index + 1;
        Ok(Applied {
            index,
            supplier: entry.body().supplier.clone(),
            kind: entry.body().event.kind(),
        })
    }

    /// Applies entries in order, all or nothing: on the first refusal the state is unchanged
    /// and the error says which entry (by log index) was refused.
    // The refusal carries names for a precise message; batches are rare, so size is no concern.
    #[allow(clippy::result_large_err)]
    pub fn apply_all<'a>(
        &mut self,
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> Result<Vec<Applied>, (u64, Refusal)> {
        let mut next = self.clone();
        let mut out = Vec::new();
        for e in entries {
            let index = next.size;
            out.push(next.apply(e).map_err(|r| (index, r))?);
        }
        *self = next;
        Ok(out)
    }

    /// The release, if it is installable now (see [`VerifiedRelease`]).
    pub fn installable(
        &self,
        supplier: &SupplierName,
        package: &PackageName,
        version: &Version,
    ) -> Option<VerifiedRelease> {
        let s = self.suppliers.get(supplier)?;
        let r = s.releases.get(package)?.get(version)?;
        self.verified(supplier, package, version, s, r)
    }

    /// Every installable release of a package, oldest version first.
    pub fn installable_versions(
        &self,
        supplier: &SupplierName,
        package: &PackageName,
    ) -> Vec<VerifiedRelease> {
        let Some(s) = self.suppliers.get(supplier) else {
            return Vec::new();
        };
        let Some(versions) = s.releases.get(package) else {
            return Vec::new();
        };
        versions
            .iter()
            .filter_map(|(v, r)| self.verified(supplier, package, v, s, r))
            .collect()
    }

    fn verified(
        &self,
        supplier: &SupplierName,
        package: &PackageName,
        version: &Version,
        s: &SupplierState,
        r: &ReleaseRecord,
    ) -> Option<VerifiedRelease> {
        if r.revoked_at.is_some() {
            return None;
        }
        let key = s.keys.get(&r.signer)?;
        if key.role != Role::Signing || key.revoked_at.is_some() {
            return None;
        }
        Some(VerifiedRelease {
            supplier: supplier.clone(),
            package: package.clone(),
            version: version.clone(),
            record: r.clone(),
        })
    }

    /// Decides whether `entry` is acceptable; returns what to change. Pure.
    fn plan(&self, entry: &Entry, signature_checked: bool) -> Result<Change, Refusal> {
        if self.size == u64::MAX {
            return Err(Refusal::LogFull);
        }
        let body = entry.body();
        let signer = body.signer;
        let supplier = &body.supplier;
        // Signature first: nothing about an unsigned claim is worth reporting.
        if !signature_checked && !entry.signature_is_valid() {
            return Err(Refusal::BadSignature(signer));
        }
        let Some(state) = self.suppliers.get(supplier) else {
            return match &body.event {
                Event::MasterKey { public_key, .. } => {
                    if *public_key != signer {
                        return Err(Refusal::FirstKeyNotSelfSigned(supplier.clone()));
                    }
                    if self.key_owner.contains_key(public_key) {
                        return Err(Refusal::KeyAlreadyRegistered(*public_key));
                    }
                    Ok(Change::AddKey(*public_key, Role::Master))
                }
                _ => Err(Refusal::UnknownSupplier(supplier.clone())),
            };
        };
        let not_master = || Refusal::NotCurrentMaster {
            supplier: supplier.clone(),
            signer,
        };
        match &body.event {
            Event::MasterKey { public_key, .. } | Event::SigningKey { public_key, .. } => {
                if !state.is_current(&signer, Role::Master) {
                    return Err(not_master());
                }
                if self.key_owner.contains_key(public_key) {
                    return Err(Refusal::KeyAlreadyRegistered(*public_key));
                }
                let role = if matches!(body.event, Event::MasterKey { .. }) {
                    Role::Master
                } else {
                    Role::Signing
                };
                Ok(Change::AddKey(*public_key, role))
            }
            Event::KeyRevocation { public_key, .. } => {
                if !state.is_current(&signer, Role::Master) {
                    return Err(not_master());
                }
                let Some(rec) = state.keys.get(public_key) else {
                    return Err(Refusal::NotSupplierKey {
                        supplier: supplier.clone(),
                        key: *public_key,
                    });
                };
                if rec.revoked_at.is_some() {
                    return Err(Refusal::KeyAlreadyRevoked(*public_key));
                }
                if *public_key == signer {
                    return Err(Refusal::SelfRevocation(*public_key));
                }
                // The signer is a current master other than the revoked key, so at least one
                // master always remains; this check states the invariant explicitly anyway.
                if rec.role == Role::Master
                    && state.current_masters().filter(|k| *k != public_key).count() == 0
                {
                    return Err(Refusal::LastMasterKey(*public_key));
                }
                Ok(Change::RevokeKey(*public_key))
            }
            Event::Release {
                package,
                version,
                rollout,
                ..
            } => {
                if let Some(r) = rollout {
                    r.validate().map_err(Refusal::InvalidRollout)?;
                }
                if !state.is_current(&signer, Role::Signing) {
                    return Err(Refusal::NotCurrentSigningKey {
                        supplier: supplier.clone(),
                        signer,
                    });
                }
                if state
                    .releases
                    .get(package)
                    .is_some_and(|v| v.contains_key(version))
                {
                    return Err(Refusal::ReleaseExists {
                        supplier: supplier.clone(),
                        package: package.clone(),
                        version: version.clone(),
                    });
                }
                Ok(Change::AddRelease)
            }
            Event::ReleaseRevocation {
                package, version, ..
            } => {
                if !state.is_current_any(&signer) {
                    return Err(Refusal::NotCurrentKey {
                        supplier: supplier.clone(),
                        signer,
                    });
                }
                let Some(rec) = state.releases.get(package).and_then(|v| v.get(version)) else {
                    return Err(Refusal::UnknownRelease {
                        supplier: supplier.clone(),
                        package: package.clone(),
                        version: version.clone(),
                    });
                };
                if rec.revoked_at.is_some() {
                    return Err(Refusal::ReleaseAlreadyRevoked {
                        supplier: supplier.clone(),
                        package: package.clone(),
                        version: version.clone(),
                    });
                }
                Ok(Change::RevokeRelease)
            }
            Event::Attestation {
                subject,
                package,
                version,
                digest,
                ..
            } => {
                if !state.is_current_any(&signer) {
                    return Err(Refusal::NotCurrentKey {
                        supplier: supplier.clone(),
                        signer,
                    });
                }
                if subject == supplier {
                    return Err(Refusal::SelfAttestation(supplier.clone()));
                }
                let unknown = || Refusal::UnknownRelease {
                    supplier: subject.clone(),
                    package: package.clone(),
                    version: version.clone(),
                };
                let rec = self
                    .suppliers
                    .get(subject)
                    .and_then(|s| s.releases.get(package))
                    .and_then(|v| v.get(version))
                    .ok_or_else(unknown)?;
                if rec.digest != *digest {
                    return Err(Refusal::AttestationDigestMismatch);
                }
                if rec.attestations.iter().any(|(s, _, _)| s == supplier) {
                    return Err(Refusal::DuplicateAttestation(supplier.clone()));
                }
                Ok(Change::Attest)
            }
            Event::Rollout {
                package,
                version,
                replaces,
                waves,
                ..
            } => {
                if !state.is_current_any(&signer) {
                    return Err(Refusal::NotCurrentKey {
                        supplier: supplier.clone(),
                        signer,
                    });
                }
                crate::rollout::validate_waves(waves).map_err(Refusal::InvalidRollout)?;
                let Some(rec) = state.releases.get(package).and_then(|v| v.get(version)) else {
                    return Err(Refusal::UnknownRelease {
                        supplier: supplier.clone(),
                        package: package.clone(),
                        version: version.clone(),
                    });
                };
                if rec.revoked_at.is_some() {
                    return Err(Refusal::ReleaseAlreadyRevoked {
                        supplier: supplier.clone(),
                        package: package.clone(),
                        version: version.clone(),
                    });
                }
                if *replaces != rec.schedule_index() {
                    return Err(Refusal::StaleRollout {
                        release: Box::new((supplier.clone(), package.clone(), version.clone())),
                        replaces: *replaces,
                        current: rec.schedule_index(),
                    });
                }
                Ok(Change::SetRollout)
            }
        }
    }

    fn commit(&mut self, entry: &Entry, change: Change) {
        let index = self.size;
        let body = entry.body();
        let supplier = body.supplier.clone();
        match change {
            Change::AddKey(key, role) => {
                self.key_owner.insert(key, supplier.clone());
                self.suppliers.entry(supplier).or_default().keys.insert(
                    key,
                    KeyRecord {
                        role,
                        added_at: index,
                        added_by: body.signer,
                        revoked_at: None,
                    },
                );
            }
            Change::RevokeKey(key) => {
                if let Some(rec) = self
                    .suppliers
                    .get_mut(&supplier)
                    .and_then(|s| s.keys.get_mut(&key))
                {
                    rec.revoked_at = Some(index);
                }
            }
            Change::AddRelease => {
                if let Event::Release {
                    package,
                    version,
                    size,
                    digest,
                    commit,
                    signature,
                    rollout,
                } = &body.event
                {
                    self.suppliers
                        .entry(supplier)
                        .or_default()
                        .releases
                        .entry(package.clone())
                        .or_default()
                        .insert(
                            version.clone(),
                            ReleaseRecord {
                                index,
                                signer: body.signer,
                                size: *size,
                                digest: *digest,
                                commit: commit.clone(),
                                archive_signature: *signature,
                                revoked_at: None,
                                attestations: Vec::new(),
                                rollout: rollout.clone(),
                                rollout_at: None,
                            },
                        );
                }
            }
            Change::RevokeRelease => {
                if let Event::ReleaseRevocation {
                    package, version, ..
                } = &body.event
                    && let Some(rec) = self
                        .suppliers
                        .get_mut(&supplier)
                        .and_then(|s| s.releases.get_mut(package))
                        .and_then(|v| v.get_mut(version))
                {
                    rec.revoked_at = Some(index);
                }
            }
            Change::Attest => {
                if let Event::Attestation {
                    subject,
                    package,
                    version,
                    claim,
                    ..
                } = &body.event
                    && let Some(rec) = self
                        .suppliers
                        .get_mut(subject)
                        .and_then(|s| s.releases.get_mut(package))
                        .and_then(|v| v.get_mut(version))
                {
                    rec.attestations.push((supplier, *claim, index));
                }
            }
            Change::SetRollout => {
                if let Event::Rollout {
                    package, version, ..
                } = &body.event
                    && let Some(rec) = self
                        .suppliers
                        .get_mut(&supplier)
                        .and_then(|s| s.releases.get_mut(package))
                        .and_then(|v| v.get_mut(version))
                {
                    rec.rollout = body.event.rollout();
                    rec.rollout_at = Some(index);
                }
            }
        }
    }
}

/// The effect of an accepted entry, decided by `plan` and carried out by `commit`, so that
/// checking and applying can never disagree.
enum Change {
    AddKey(PublicKey, Role),
    RevokeKey(PublicKey),
    AddRelease,
    RevokeRelease,
    Attest,
    SetRollout,
}

/// Supplier-level queries used by tools (e.g. barge listing keys).
impl SupplierState {
    /// Current signing keys.
    pub fn current_signing_keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys
            .iter()
            .filter(|(_, r)| r.role == Role::Signing && r.revoked_at.is_none())
            .map(|(k, _)| k)
    }
    /// Every key ever revoked.
    pub fn revoked_keys(&self) -> BTreeSet<PublicKey> {
        self.keys
            .iter()
            .filter(|(_, r)| r.revoked_at.is_some())
            .map(|(k, _)| *k)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::EntryBody;
    use crate::keys::KeyPair;

    #[test]
    fn rules_lists_every_rule_once() {
        let k = KeyPair::generate().public();
        let s = SupplierName::parse("acme").unwrap();
        let p = PackageName::parse("hello").unwrap();
        let v = Version::parse("1.0.0").unwrap();
        let all = [
            Refusal::BadSignature(k),
            Refusal::UnknownSupplier(s.clone()),
            Refusal::FirstKeyNotSelfSigned(s.clone()),
            Refusal::NotCurrentMaster {
                supplier: s.clone(),
                signer: k,
            },
            Refusal::KeyAlreadyRegistered(k),
            Refusal::NotSupplierKey {
                supplier: s.clone(),
                key: k,
            },
            Refusal::KeyAlreadyRevoked(k),
            Refusal::SelfRevocation(k),
            Refusal::LastMasterKey(k),
            Refusal::NotCurrentSigningKey {
                supplier: s.clone(),
                signer: k,
            },
            Refusal::ReleaseExists {
                supplier: s.clone(),
                package: p.clone(),
                version: v.clone(),
            },
            Refusal::UnknownRelease {
                supplier: s.clone(),
                package: p.clone(),
                version: v.clone(),
            },
            Refusal::ReleaseAlreadyRevoked {
                supplier: s.clone(),
                package: p.clone(),
                version: v.clone(),
            },
            Refusal::NotCurrentKey {
                supplier: s.clone(),
                signer: k,
            },
            Refusal::AttestationDigestMismatch,
            Refusal::DuplicateAttestation(s.clone()),
            Refusal::LogFull,
            Refusal::InvalidRollout(crate::rollout::RolloutError::WaveCount(0)),
            Refusal::SelfAttestation(s.clone()),
            Refusal::StaleRollout {
                release: Box::new((s, p, v)),
                replaces: 1,
                current: 2,
            },
        ];
        let rules: Vec<&str> = all.iter().map(Refusal::rule).collect();
        assert_eq!(rules, Refusal::RULES);
    }

    #[test]
    fn checked_entries_follow_the_same_rules() {
        let kp = KeyPair::generate();
        let acme = SupplierName::parse("acme").unwrap();
        let first = Entry::sign(
            EntryBody::new(
                acme.clone(),
                kp.public(),
                Event::MasterKey {
                    public_key: kp.public(),
                    derivation: None,
                },
            ),
            &kp,
        )
        .unwrap();
        let mut a = KeyState::new();
        let mut b = KeyState::new();
        a.apply(&first).unwrap();
        let checked = first.clone().into_checked().unwrap();
        b.check_checked(&checked).unwrap();
        b.apply_checked(&checked).unwrap();
        assert_eq!(a, b);
        // The rules still apply: a replay is refused.
        assert!(matches!(
            b.apply_checked(&checked),
            Err(Refusal::KeyAlreadyRegistered(_))
        ));
        // A forged entry cannot become a CheckedEntry.
        let other = KeyPair::generate();
        let body = first.body().canonical_bytes();
        let mut forged = body.clone();
        forged.push(b'\n');
        forged.extend_from_slice(other.sign_raw(&body).to_hex().as_bytes());
        assert!(Entry::parse(&forged).unwrap().into_checked().is_err());
    }

    mod rollout_rules {
        use super::*;
        use crate::entry::{Digest512, Reason};
        use crate::rollout::{Rollout, RolloutError, Wave};

        struct Fixture {
            state: KeyState,
            acme: SupplierName,
            master: KeyPair,
            signing: KeyPair,
            other: KeyPair,
        }

        fn sign(supplier: &SupplierName, by: &KeyPair, event: Event) -> Entry {
            Entry::sign(EntryBody::new(supplier.clone(), by.public(), event), by).unwrap()
        }

        fn release(version: &str, rollout: Option<Rollout>) -> Event {
            Event::Release {
                package: PackageName::parse("hello").unwrap(),
                version: Version::parse(version).unwrap(),
                size: 10,
                digest: Digest512([1; 64]),
                commit: GitCommit::parse(&"a".repeat(40)).unwrap(),
                signature: Signature::from_bytes([2; 64]),
                rollout,
            }
        }

        /// The log index of the fixture's release of 1.0.0 (its first schedule).
        const RELEASE_AT: u64 = 3;

        /// A rollout event replacing the release's own schedule.
        fn rollout(version: &str, waves: &[(u8, u64)], paused: bool) -> Event {
            replacing(RELEASE_AT, version, waves, paused)
        }

        fn replacing(replaces: u64, version: &str, waves: &[(u8, u64)], paused: bool) -> Event {
            Event::Rollout {
                package: PackageName::parse("hello").unwrap(),
                version: Version::parse(version).unwrap(),
                replaces,
                waves: waves
                    .iter()
                    .map(|&(percent, not_before)| Wave {
                        percent,
                        not_before,
                    })
                    .collect(),
                paused,
            }
        }

        fn fixture() -> Fixture {
            let acme = SupplierName::parse("acme").unwrap();
            let bolt = SupplierName::parse("bolt").unwrap();
            let master = KeyPair::generate();
            let signing = KeyPair::generate();
            let other = KeyPair::generate();
            let mut state = KeyState::new();
            for e in [
                sign(
                    &acme,
                    &master,
                    Event::MasterKey {
                        public_key: master.public(),
                        derivation: None,
                    },
                ),
                sign(
                    &acme,
                    &master,
                    Event::SigningKey {
                        public_key: signing.public(),
                        derivation: None,
                    },
                ),
                sign(
                    &bolt,
                    &other,
                    Event::MasterKey {
                        public_key: other.public(),
                        derivation: None,
                    },
                ),
                sign(
                    &acme,
                    &signing,
                    release(
                        "1.0.0",
                        Some(Rollout {
                            waves: vec![Wave {
                                percent: 10,
                                not_before: 0,
                            }],
                            paused: false,
                        }),
                    ),
                ),
            ] {
                state.apply(&e).unwrap();
            }
            Fixture {
                state,
                acme,
                master,
                signing,
                other,
            }
        }

        fn schedule(f: &Fixture) -> Option<Rollout> {
            f.state
                .installable(
                    &f.acme,
                    &PackageName::parse("hello").unwrap(),
                    &Version::parse("1.0.0").unwrap(),
                )
                .unwrap()
                .rollout()
                .cloned()
        }

        #[test]
        fn the_release_schedule_is_kept_and_the_latest_rollout_replaces_it() {
            let mut f = fixture();
            assert_eq!(schedule(&f).unwrap().waves[0].percent, 10);
            // Signed by the signing key, then by the master key: both may.
            let pause = sign(&f.acme, &f.signing, rollout("1.0.0", &[(10, 0)], true));
            let paused_at = f.state.apply(&pause).unwrap().index;
            assert!(schedule(&f).unwrap().paused);
            let widen = sign(
                &f.acme,
                &f.master,
                replacing(paused_at, "1.0.0", &[(10, 0), (100, 50)], false),
            );
            let applied = f.state.apply(&widen).unwrap();
            assert_eq!(applied.kind, "rollout");
            let s = schedule(&f).unwrap();
            assert!(!s.paused);
            assert_eq!(s.waves.len(), 2);
            let rec = &f.state.supplier(&f.acme).unwrap().releases
                [&PackageName::parse("hello").unwrap()][&Version::parse("1.0.0").unwrap()];
            assert_eq!(rec.rollout_at, Some(applied.index));
        }

        /// K1: every rollout entry names the schedule it replaces, so it is valid exactly
        /// once. A replay (the same bytes again), an entry naming an older schedule, one naming
        /// a future index, and a first rollout that does not name the release entry are all
        /// `stale_rollout`, and change nothing; a re-issued pause is a new entry.
        #[test]
        fn a_rollout_entry_is_valid_once_against_the_schedule_it_names() {
            let mut f = fixture();
            let stale = |s: &KeyState, e: &Entry, replaces: u64, current: u64| {
                let before = s.clone();
                assert_eq!(
                    s.check(e),
                    Err(Refusal::StaleRollout {
                        release: Box::new((
                            SupplierName::parse("acme").unwrap(),
                            PackageName::parse("hello").unwrap(),
                            Version::parse("1.0.0").unwrap(),
                        )),
                        replaces,
                        current,
                    })
                );
                let mut t = s.clone();
                assert_eq!(t.apply(e).unwrap_err().rule(), "stale_rollout");
                assert_eq!(t, before);
            };
            // The first rollout entry must name the release entry.
            for wrong in [0, RELEASE_AT - 1, RELEASE_AT + 1, u64::MAX] {
                let e = sign(
                    &f.acme,
                    &f.signing,
                    replacing(wrong, "1.0.0", &[(10, 0)], true),
                );
                stale(&f.state, &e, wrong, RELEASE_AT);
            }
            let pause = sign(&f.acme, &f.signing, rollout("1.0.0", &[(10, 0)], true));
            let p1 = f.state.apply(&pause).unwrap().index;
            // Replayed byte for byte: it names the release's schedule, which the pause replaced.
            stale(&f.state, &pause, RELEASE_AT, p1);
            let resume = sign(
                &f.acme,
                &f.signing,
                replacing(p1, "1.0.0", &[(10, 0)], false),
            );
            let r = f.state.apply(&resume).unwrap().index;
            stale(&f.state, &resume, p1, r);
            stale(&f.state, &pause, RELEASE_AT, r);
            // The same pause again is a new entry: it names the resume.
            let again = sign(&f.acme, &f.signing, replacing(r, "1.0.0", &[(10, 0)], true));
            assert_ne!(again, pause);
            let p2 = f.state.apply(&again).unwrap().index;
            assert!(schedule(&f).unwrap().paused);
            // Neither the resume nor anything else earlier comes back, by any key.
            for e in [&pause, &resume, &again] {
                let Event::Rollout { replaces, .. } = e.body().event else {
                    unreachable!()
                };
                stale(&f.state, e, replaces, p2);
            }
            let by_master = sign(&f.acme, &f.master, replacing(r, "1.0.0", &[(10, 0)], false));
            stale(&f.state, &by_master, r, p2);
            // A future index is refused too.
            let ahead = sign(
                &f.acme,
                &f.master,
                replacing(p2 + 1, "1.0.0", &[(10, 0)], false),
            );
            stale(&f.state, &ahead, p2 + 1, p2);
            let rec = &f.state.supplier(&f.acme).unwrap().releases
                [&PackageName::parse("hello").unwrap()][&Version::parse("1.0.0").unwrap()];
            assert_eq!((rec.rollout_at, rec.schedule_index()), (Some(p2), p2));
        }

        #[test]
        fn a_supplier_may_not_attest_its_own_release() {
            let mut f = fixture();
            let attest = |subject: &str| Event::Attestation {
                subject: SupplierName::parse(subject).unwrap(),
                package: PackageName::parse("hello").unwrap(),
                version: Version::parse("1.0.0").unwrap(),
                digest: Digest512([1; 64]),
                claim: Claim::Reproduced,
            };
            for by in [&f.signing, &f.master] {
                let e = sign(&f.acme, by, attest("acme"));
                assert_eq!(
                    f.state.check(&e),
                    Err(Refusal::SelfAttestation(f.acme.clone()))
                );
            }
            // bolt attesting acme's release is an attestation.
            let bolt = SupplierName::parse("bolt").unwrap();
            f.state
                .apply(&sign(&bolt, &f.other, attest("acme")))
                .unwrap();
            let rec = &f.state.supplier(&f.acme).unwrap().releases
                [&PackageName::parse("hello").unwrap()][&Version::parse("1.0.0").unwrap()];
            assert_eq!(rec.attestations.len(), 1);
            assert_eq!(rec.attestations[0].0, bolt);
        }

        #[test]
        fn rollout_for_an_unknown_or_revoked_release_is_refused() {
            let mut f = fixture();
            let unknown = sign(&f.acme, &f.signing, rollout("2.0.0", &[(100, 0)], false));
            assert_eq!(
                f.state.check(&unknown).unwrap_err().rule(),
                "unknown_release"
            );
            let revoke = sign(
                &f.acme,
                &f.master,
                Event::ReleaseRevocation {
                    package: PackageName::parse("hello").unwrap(),
                    version: Version::parse("1.0.0").unwrap(),
                    reason: Reason::parse("broken").unwrap(),
                },
            );
            f.state.apply(&revoke).unwrap();
            let late = sign(&f.acme, &f.signing, rollout("1.0.0", &[(100, 0)], false));
            assert_eq!(
                f.state.check(&late).unwrap_err().rule(),
                "release_already_revoked"
            );
        }

        #[test]
        fn rollout_by_another_suppliers_key_is_refused() {
            let f = fixture();
            // bolt's master key signing a rollout of acme's release, in acme's name.
            let forged = sign(&f.acme, &f.other, rollout("1.0.0", &[(100, 0)], false));
            assert_eq!(
                f.state.check(&forged).unwrap_err().rule(),
                "not_current_key"
            );
            // And in bolt's own name: bolt has no such release.
            let bolt = SupplierName::parse("bolt").unwrap();
            let own = sign(&bolt, &f.other, rollout("1.0.0", &[(100, 0)], false));
            assert_eq!(f.state.check(&own).unwrap_err().rule(), "unknown_release");
            // A revoked signing key may no longer change a schedule.
            let mut g = fixture();
            let e = sign(
                &g.acme,
                &g.master,
                Event::KeyRevocation {
                    public_key: g.signing.public(),
                    reason: Reason::parse("lost").unwrap(),
                },
            );
            g.state.apply(&e).unwrap();
            let by_revoked = sign(&g.acme, &g.signing, rollout("1.0.0", &[(100, 0)], false));
            assert_eq!(
                g.state.check(&by_revoked).unwrap_err().rule(),
                "not_current_key"
            );
        }

        #[test]
        fn invalid_waves_never_become_entries_and_the_state_checks_again() {
            let f = fixture();
            for (waves, want) in [
                (vec![(10, 0), (5, 10)], RolloutError::NotMonotonic(1)),
                (vec![(10, 10), (20, 5)], RolloutError::NotMonotonic(1)),
                (
                    vec![(0, 0)],
                    RolloutError::Percent {
                        wave: 0,
                        percent: 0,
                    },
                ),
                (
                    vec![(101, 0)],
                    RolloutError::Percent {
                        wave: 0,
                        percent: 101,
                    },
                ),
                (vec![], RolloutError::WaveCount(0)),
                (
                    (1..=9).map(|i| (i * 10, 0)).collect(),
                    RolloutError::WaveCount(9),
                ),
            ] {
                let event = rollout("1.0.0", &waves, false);
                let body = EntryBody::new(f.acme.clone(), f.signing.public(), event);
                // Neither signed nor parsed...
                assert!(matches!(
                    Entry::sign(body.clone(), &f.signing),
                    Err(crate::entry::EntryError::Field {
                        field: "rollout",
                        ..
                    })
                ));
                let bytes = body.canonical_bytes();
                let sig =
                    crate::protocol::sign(&f.signing, crate::protocol::Context::Rollout, &bytes);
                let mut raw = bytes.clone();
                raw.push(b'\n');
                raw.extend_from_slice(sig.to_hex().as_bytes());
                assert!(Entry::parse(&raw).is_err());
                // ...and the state machine's own rule says the same.
                let Event::Rollout { waves, .. } = &body.event else {
                    unreachable!()
                };
                assert_eq!(crate::rollout::validate_waves(waves), Err(want.clone()));
                assert_eq!(Refusal::InvalidRollout(want).rule(), "invalid_rollout");
            }
            // Eight waves are fine.
            let eight: Vec<(u8, u64)> = (1..=8).map(|i| (i * 10, 0)).collect();
            let ok = sign(&f.acme, &f.signing, rollout("1.0.0", &eight, false));
            f.state.check(&ok).unwrap();
        }

        #[test]
        fn a_rollout_signature_is_bound_to_its_own_context() {
            let f = fixture();
            let e = sign(&f.acme, &f.signing, rollout("1.0.0", &[(100, 0)], false));
            let body = e.body_bytes().to_vec();
            let wrong = crate::protocol::sign(&f.signing, crate::protocol::Context::Release, &body);
            let mut raw = body;
            raw.push(b'\n');
            raw.extend_from_slice(wrong.to_hex().as_bytes());
            let parsed = Entry::parse(&raw).unwrap();
            assert_eq!(f.state.check(&parsed).unwrap_err().rule(), "bad_signature");
        }

        #[test]
        fn an_old_release_keeps_its_exact_bytes() {
            let f = fixture();
            let e = sign(&f.acme, &f.signing, release("3.0.0", None));
            let text = std::str::from_utf8(e.body_bytes()).unwrap();
            assert!(!text.contains("rollout"), "{text}");
            let with = sign(
                &f.acme,
                &f.signing,
                release("3.0.1", Some(Rollout::everyone_now())),
            );
            let text = std::str::from_utf8(with.body_bytes()).unwrap();
            assert!(
                text.ends_with(
                    r#","rollout":{"waves":[{"percent":100,"not_before":0}],"paused":false}}}"#
                ),
                "{text}"
            );
            assert_eq!(Entry::parse(with.as_bytes()).unwrap(), with);
        }
    }
}
