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
//! - An attestation must be signed by a current key of the attesting supplier, name an existing
//!   release of the subject supplier and carry that release's digest; one per attester and release.
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
    /// The log is longer than this implementation can index.
    #[error("the log is full")]
    LogFull,
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
}

impl ReleaseRecord {
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
                package, version, ..
            } => {
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
                package: p,
                version: v,
            },
            Refusal::NotCurrentKey {
                supplier: s.clone(),
                signer: k,
            },
            Refusal::AttestationDigestMismatch,
            Refusal::DuplicateAttestation(s),
            Refusal::LogFull,
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
}
