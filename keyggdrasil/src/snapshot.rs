//! Key-state snapshots: apply new log entries on top of a stored key state by loading only the
//! rows they touch, so that a run costs O(new entries), not O(log size).
//!
//! A stored key state is two kinds of rows: one per registered key ([`KeyRow`]: its supplier and
//! [`KeyRecord`]) and one per release ([`ReleaseRow`]: supplier, package, version and
//! [`ReleaseRecord`]). Whoever stores them (the site's `site.db`, the channel's database) does:
//!
//! 1. [`Needs::of`] the new entries: which suppliers' keys, which keys' owners and which
//!    releases the rules will read;
//! 2. loads exactly those rows into a [`PartialState`] (an absent row is loaded as absent);
//! 3. [`PartialState::apply`] each entry: the rules of [`KeyState`] run unchanged, on the loaded
//!    part of the state; an entry that needs a row that was not loaded is refused with
//!    [`SnapshotError::NotLoaded`] rather than judged on a partial view;
//! 4. writes [`PartialState::changes`] in the same transaction as the entries.
//!
//! Why this is the same decision as a full replay: every rule of [`KeyState`] reads only the
//! entry's supplier's keys, the owner of a key being registered, and the release an entry names.
//! Those are exactly [`Needs::of`], loaded whole (all keys of a supplier, the one release row),
//! so the rules see what a full replay would see. `tests/snapshot.rs` checks it on random
//! event sequences, at every prefix and for every way to cut them into batches.
//!
//! Rows are encoded canonically ([`KeyRow::encode`], [`ReleaseRow::encode`]) so the store can
//! keep them as bytes and authenticate them; decoding refuses anything malformed or oversized.
//!
//! What it does not do: storage, I/O, signatures of entries (pass [`CheckedEntry`]s), or the
//! integrity of the stored rows (the store binds them to its log, e.g. with a keyed digest).

use std::collections::BTreeSet;

use thiserror::Error;

use crate::entry::{CheckedEntry, Claim, Digest512, Entry, Event, GitCommit};
use crate::keys::{PublicKey, Signature};
use crate::names::{PackageName, SupplierName, Version};
use crate::rollout::{Rollout, Wave};
use crate::state::{Applied, KeyRecord, KeyState, Refusal, ReleaseRecord, Role, VerifiedRelease};

/// A release named by supplier, package and version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReleaseId {
    /// The supplier.
    pub supplier: SupplierName,
    /// The package.
    pub package: PackageName,
    /// The version.
    pub version: Version,
}

/// The rows the rules read to apply some entries after a stored state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Suppliers whose every key must be loaded (an entry's supplier).
    pub suppliers: BTreeSet<SupplierName>,
    /// Keys whose owner must be loaded (a key being registered).
    pub key_owners: BTreeSet<PublicKey>,
    /// Releases that must be loaded (named by a release, revocation or attestation).
    pub releases: BTreeSet<ReleaseId>,
}

impl Needs {
    /// What applying `entries`, in order, after a stored state reads from it.
    pub fn of<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Needs {
        let mut needs = Needs::default();
        for e in entries {
            needs.add(e);
        }
        needs
    }

    fn add(&mut self, entry: &Entry) {
        let body = entry.body();
        self.suppliers.insert(body.supplier.clone());
        match &body.event {
            Event::MasterKey { public_key, .. } | Event::SigningKey { public_key, .. } => {
                self.key_owners.insert(*public_key);
            }
            Event::KeyRevocation { .. } => {}
            Event::Release {
                package, version, ..
            }
            | Event::ReleaseRevocation {
                package, version, ..
            }
            | Event::Rollout {
                package, version, ..
            } => {
                self.releases.insert(ReleaseId {
                    supplier: body.supplier.clone(),
                    package: package.clone(),
                    version: version.clone(),
                });
            }
            Event::Attestation {
                subject,
                package,
                version,
                ..
            } => {
                self.releases.insert(ReleaseId {
                    supplier: subject.clone(),
                    package: package.clone(),
                    version: version.clone(),
                });
            }
        }
    }

    /// Whether everything `other` needs is in `self`.
    fn covers(&self, other: &Needs) -> bool {
        other.suppliers.is_subset(&self.suppliers)
            && other.key_owners.is_subset(&self.key_owners)
            && other.releases.is_subset(&self.releases)
    }
}

/// Why a snapshot operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The entry needs a row that was not loaded: a bug in the caller, never a judgement of the
    /// entry. Nothing was changed.
    #[error("the entry needs state that was not loaded ({0}); nothing was applied")]
    NotLoaded(String),
    /// The entry breaks a rule of the log.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A loaded row contradicts another (a key owned by two suppliers, a release whose
    /// supplier has no keys): the store is corrupt.
    #[error("the stored key state is inconsistent: {0}")]
    Inconsistent(String),
    /// A stored row does not decode.
    #[error("a stored key-state row is malformed: {0}")]
    Malformed(&'static str),
}

/// One registered key, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// The supplier it belongs to.
    pub supplier: SupplierName,
    /// The key.
    pub key: PublicKey,
    /// What the state knows of it.
    pub record: KeyRecord,
}

/// One release, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRow {
    /// Which release.
    pub id: ReleaseId,
    /// What the state knows of it.
    pub record: ReleaseRecord,
}

/// The rows that applying entries changed or added: write them (insert or replace) with the
/// entries, in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The state's size after the entries.
    pub size: u64,
    /// Keys added or revoked.
    pub keys: Vec<KeyRow>,
    /// Releases added, revoked or attested.
    pub releases: Vec<ReleaseRow>,
}

/// The part of a key state that some entries need, loaded from stored rows, and the record of
/// what applying entries to it changed.
#[derive(Debug, Clone)]
pub struct PartialState {
    state: KeyState,
    loaded: Needs,
    /// Packages whose every release was loaded (for [`PartialState::installable_versions`]).
    packages: BTreeSet<(SupplierName, PackageName)>,
    touched_keys: BTreeSet<PublicKey>,
    touched_releases: BTreeSet<ReleaseId>,
}

impl PartialState {
    /// An empty partial state of a log with `size` entries: nothing loaded yet.
    pub fn new(size: u64) -> Self {
        PartialState {
            state: KeyState {
                size,
                ..KeyState::default()
            },
            loaded: Needs::default(),
            packages: BTreeSet::new(),
            touched_keys: BTreeSet::new(),
            touched_releases: BTreeSet::new(),
        }
    }

    /// The number of entries the state covers.
    pub fn size(&self) -> u64 {
        self.state.size
    }

    /// Loads every key of `supplier` (none: the supplier is unknown). Call once per supplier,
    /// before loading its releases.
    pub fn load_supplier(
        &mut self,
        supplier: &SupplierName,
        keys: impl IntoIterator<Item = KeyRow>,
    ) -> Result<(), SnapshotError> {
        if !self.loaded.suppliers.insert(supplier.clone()) {
            return Err(SnapshotError::Inconsistent(format!(
                "supplier {supplier} loaded twice"
            )));
        }
        for row in keys {
            if row.supplier != *supplier {
                return Err(SnapshotError::Inconsistent(format!(
                    "key {} of supplier {} loaded as a key of {supplier}",
                    row.key, row.supplier
                )));
            }
            self.put_owner(row.key, Some(supplier.clone()))?;
            self.state
                .suppliers
                .entry(supplier.clone())
                .or_default()
                .keys
                .insert(row.key, row.record);
        }
        Ok(())
    }

    /// Loads who owns `key` (none: it was never registered).
    pub fn load_key_owner(
        &mut self,
        key: PublicKey,
        owner: Option<SupplierName>,
    ) -> Result<(), SnapshotError> {
        self.put_owner(key, owner)
    }

    fn put_owner(
        &mut self,
        key: PublicKey,
        owner: Option<SupplierName>,
    ) -> Result<(), SnapshotError> {
        let known = self.state.key_owner.get(&key);
        if self.loaded.key_owners.contains(&key) && known != owner.as_ref() {
            return Err(SnapshotError::Inconsistent(format!(
                "key {key} is loaded with two owners"
            )));
        }
        self.loaded.key_owners.insert(key);
        if let Some(owner) = owner {
            self.state.key_owner.insert(key, owner);
        }
        Ok(())
    }

    /// Loads one release (none: it was never logged). Its supplier's keys must be loaded
    /// first when the supplier is the entry's own; an attested release of another supplier may
    /// be loaded alone.
    pub fn load_release(&mut self, id: ReleaseId, record: Option<ReleaseRecord>) {
        if let Some(record) = record {
            self.insert_release(&id, record);
        }
        self.loaded.releases.insert(id);
    }

    /// Loads every release of a package, so that [`PartialState::installable_versions`] can
    /// answer for it. The supplier's keys must be loaded too (a release is installable only
    /// while its signing key is current).
    pub fn load_package(
        &mut self,
        supplier: &SupplierName,
        package: &PackageName,
        releases: impl IntoIterator<Item = ReleaseRow>,
    ) -> Result<(), SnapshotError> {
        for row in releases {
            if row.id.supplier != *supplier || row.id.package != *package {
                return Err(SnapshotError::Inconsistent(format!(
                    "release {}/{} {} loaded as one of {supplier}/{package}",
                    row.id.supplier, row.id.package, row.id.version
                )));
            }
            // A release already loaded may have been changed by an applied entry since: the
            // stored row is older, so it must not overwrite the one in memory.
            if !self.loaded.releases.contains(&row.id) {
                self.insert_release(&row.id, row.record);
                self.loaded.releases.insert(row.id);
            }
        }
        self.packages.insert((supplier.clone(), package.clone()));
        Ok(())
    }

    fn insert_release(&mut self, id: &ReleaseId, record: ReleaseRecord) {
        self.state
            .suppliers
            .entry(id.supplier.clone())
            .or_default()
            .releases
            .entry(id.package.clone())
            .or_default()
            .insert(id.version.clone(), record);
    }

    /// Applies one entry (its signature already verified) as the next log entry, if the rules
    /// accept it. The rules are [`KeyState`]'s own; an entry that needs a row that was not
    /// loaded is refused with [`SnapshotError::NotLoaded`]. On any error nothing changes.
    pub fn apply(&mut self, entry: &CheckedEntry) -> Result<Applied, SnapshotError> {
        let needs = Needs::of([entry.entry()]);
        if !self.loaded.covers(&needs) {
            return Err(SnapshotError::NotLoaded(describe_missing(
                &self.loaded,
                &needs,
            )));
        }
        // A supplier that is loaded but has only release rows (loaded for an attestation by
        // another supplier) would look known with no keys: refuse that shape outright.
        let supplier = &entry.entry().body().supplier;
        if let Some(s) = self.state.suppliers.get(supplier)
            && s.keys.is_empty()
        {
            return Err(SnapshotError::Inconsistent(format!(
                "supplier {supplier} has releases but no keys"
            )));
        }
        let applied = self.state.apply_checked(entry)?;
        self.touch(entry.entry());
        // What this entry created is in memory now; later entries of the batch may read it.
        self.loaded.key_owners.extend(needs.key_owners);
        self.loaded.releases.extend(needs.releases);
        Ok(applied)
    }

    fn touch(&mut self, entry: &Entry) {
        let body = entry.body();
        match &body.event {
            Event::MasterKey { public_key, .. }
            | Event::SigningKey { public_key, .. }
            | Event::KeyRevocation { public_key, .. } => {
                self.touched_keys.insert(*public_key);
            }
            Event::Release {
                package, version, ..
            }
            | Event::ReleaseRevocation {
                package, version, ..
            }
            | Event::Rollout {
                package, version, ..
            } => {
                self.touched_releases.insert(ReleaseId {
                    supplier: body.supplier.clone(),
                    package: package.clone(),
                    version: version.clone(),
                });
            }
            Event::Attestation {
                subject,
                package,
                version,
                ..
            } => {
                self.touched_releases.insert(ReleaseId {
                    supplier: subject.clone(),
                    package: package.clone(),
                    version: version.clone(),
                });
            }
        }
    }

    /// The rows the applied entries added or changed, with the new size.
    pub fn changes(&self) -> Changes {
        let keys = self
            .touched_keys
            .iter()
            .filter_map(|key| {
                let supplier = self.state.key_owner.get(key)?;
                let record = self.state.suppliers.get(supplier)?.keys.get(key)?;
                Some(KeyRow {
                    supplier: supplier.clone(),
                    key: *key,
                    record: record.clone(),
                })
            })
            .collect();
        let releases = self
            .touched_releases
            .iter()
            .filter_map(|id| {
                let record = self
                    .state
                    .suppliers
                    .get(&id.supplier)?
                    .releases
                    .get(&id.package)?
                    .get(&id.version)?;
                Some(ReleaseRow {
                    id: id.clone(),
                    record: record.clone(),
                })
            })
            .collect();
        Changes {
            size: self.state.size,
            keys,
            releases,
        }
    }

    /// Every installable release of a package whose releases and supplier keys were loaded
    /// ([`PartialState::load_package`], [`PartialState::load_supplier`]), oldest first;
    /// [`SnapshotError::NotLoaded`] otherwise, never a partial answer.
    pub fn installable_versions(
        &self,
        supplier: &SupplierName,
        package: &PackageName,
    ) -> Result<Vec<VerifiedRelease>, SnapshotError> {
        self.package_loaded(supplier, package)?;
        Ok(self.state.installable_versions(supplier, package))
    }

    /// The release, if it is installable now; needs the package and the supplier loaded.
    pub fn installable(
        &self,
        supplier: &SupplierName,
        package: &PackageName,
        version: &Version,
    ) -> Result<Option<VerifiedRelease>, SnapshotError> {
        self.package_loaded(supplier, package)?;
        Ok(self.state.installable(supplier, package, version))
    }

    fn package_loaded(
        &self,
        supplier: &SupplierName,
        package: &PackageName,
    ) -> Result<(), SnapshotError> {
        if !self.loaded.suppliers.contains(supplier)
            || !self.packages.contains(&(supplier.clone(), package.clone()))
        {
            return Err(SnapshotError::NotLoaded(format!(
                "the keys of {supplier} and every release of {supplier}/{package}"
            )));
        }
        Ok(())
    }

    /// The loaded part of the state, for queries about what was loaded. Queries about rows
    /// that were not loaded answer as if they did not exist: use the checked methods above for
    /// decisions.
    pub fn loaded_state(&self) -> &KeyState {
        &self.state
    }
}

/// Where [`PartialState::load`] reads stored rows from: the encoded rows ([`KeyRow::encode`],
/// [`ReleaseRow::encode`]) a store keeps, by the lookups the rules need. A store implements
/// these lookups (a few indexed queries); decoding and every consistency check stay here.
pub trait RowSource {
    /// The store's error; it must carry a [`SnapshotError`] for rows that do not decode or
    /// contradict each other.
    type Error: From<SnapshotError>;
    /// Every key row of `supplier`.
    fn key_rows_of(&self, supplier: &SupplierName) -> Result<Vec<Vec<u8>>, Self::Error>;
    /// The row of `key`, if it was ever registered.
    fn key_row(&self, key: &PublicKey) -> Result<Option<Vec<u8>>, Self::Error>;
    /// The row of one release, if it was ever logged.
    fn release_row(&self, id: &ReleaseId) -> Result<Option<Vec<u8>>, Self::Error>;
    /// Every release row of one package.
    fn package_rows(
        &self,
        supplier: &SupplierName,
        package: &PackageName,
    ) -> Result<Vec<Vec<u8>>, Self::Error>;
}

impl PartialState {
    /// Loads from `source` what applying `entries` after a stored state of `size` entries
    /// reads ([`Needs::of`]): O(rows touched), whatever the log size.
    pub fn load<'a, S: RowSource>(
        source: &S,
        size: u64,
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> Result<PartialState, S::Error> {
        let needs = Needs::of(entries);
        let mut partial = PartialState::new(size);
        for supplier in &needs.suppliers {
            partial.load_supplier_from(source, supplier)?;
        }
        for key in &needs.key_owners {
            let owner = match source.key_row(key)? {
                None => None,
                Some(bytes) => {
                    let row = KeyRow::decode(&bytes)?;
                    if row.key != *key {
                        return Err(SnapshotError::Inconsistent(format!(
                            "the stored row for key {key} names key {}",
                            row.key
                        ))
                        .into());
                    }
                    Some(row.supplier)
                }
            };
            partial.load_key_owner(*key, owner)?;
        }
        for id in &needs.releases {
            let record = match source.release_row(id)? {
                None => None,
                Some(bytes) => {
                    let row = ReleaseRow::decode(&bytes)?;
                    if row.id != *id {
                        return Err(SnapshotError::Inconsistent(format!(
                            "the stored row for {}/{} {} names another release",
                            id.supplier, id.package, id.version
                        ))
                        .into());
                    }
                    Some(row.record)
                }
            };
            partial.load_release(id.clone(), record);
        }
        Ok(partial)
    }

    /// Loads a supplier's keys from `source` if they are not loaded yet.
    pub fn load_supplier_from<S: RowSource>(
        &mut self,
        source: &S,
        supplier: &SupplierName,
    ) -> Result<(), S::Error> {
        if self.loaded.suppliers.contains(supplier) {
            return Ok(());
        }
        let rows = source
            .key_rows_of(supplier)?
            .iter()
            .map(|b| KeyRow::decode(b))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.load_supplier(supplier, rows)?)
    }

    /// Loads a package's every release (and its supplier's keys) from `source`, so that
    /// [`PartialState::installable_versions`] can answer for it.
    pub fn load_package_from<S: RowSource>(
        &mut self,
        source: &S,
        supplier: &SupplierName,
        package: &PackageName,
    ) -> Result<(), S::Error> {
        self.load_supplier_from(source, supplier)?;
        if self.packages.contains(&(supplier.clone(), package.clone())) {
            return Ok(());
        }
        let rows = source
            .package_rows(supplier, package)?
            .iter()
            .map(|b| ReleaseRow::decode(b))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.load_package(supplier, package, rows)?)
    }
}

fn describe_missing(loaded: &Needs, needs: &Needs) -> String {
    if let Some(s) = needs.suppliers.difference(&loaded.suppliers).next() {
        return format!("the keys of supplier {s}");
    }
    if let Some(k) = needs.key_owners.difference(&loaded.key_owners).next() {
        return format!("the owner of key {k}");
    }
    if let Some(r) = needs.releases.difference(&loaded.releases).next() {
        return format!("release {}/{} {}", r.supplier, r.package, r.version);
    }
    "nothing".to_owned()
}

impl KeyState {
    /// The whole key state as rows: what a store holds after applying the log from the start.
    /// `continuum check` compares a full replay's rows with the stored ones this way.
    pub fn rows(&self) -> (Vec<KeyRow>, Vec<ReleaseRow>) {
        let mut keys = Vec::new();
        let mut releases = Vec::new();
        for (supplier, s) in &self.suppliers {
            for (key, record) in &s.keys {
                keys.push(KeyRow {
                    supplier: supplier.clone(),
                    key: *key,
                    record: record.clone(),
                });
            }
            for (package, versions) in &s.releases {
                for (version, record) in versions {
                    releases.push(ReleaseRow {
                        id: ReleaseId {
                            supplier: supplier.clone(),
                            package: package.clone(),
                            version: version.clone(),
                        },
                        record: record.clone(),
                    });
                }
            }
        }
        (keys, releases)
    }

    /// The whole key state of a log of `size` entries from all its stored rows (the inverse of
    /// [`KeyState::rows`]). Refuses rows that contradict each other.
    pub fn from_rows(
        size: u64,
        keys: impl IntoIterator<Item = KeyRow>,
        releases: impl IntoIterator<Item = ReleaseRow>,
    ) -> Result<KeyState, SnapshotError> {
        let mut state = KeyState {
            size,
            ..KeyState::default()
        };
        for row in keys {
            if let Some(owner) = state.key_owner.insert(row.key, row.supplier.clone()) {
                return Err(SnapshotError::Inconsistent(format!(
                    "key {} belongs to {owner} and {}",
                    row.key, row.supplier
                )));
            }
            state
                .suppliers
                .entry(row.supplier)
                .or_default()
                .keys
                .insert(row.key, row.record);
        }
        for row in releases {
            let Some(s) = state.suppliers.get_mut(&row.id.supplier) else {
                return Err(SnapshotError::Inconsistent(format!(
                    "release of {} whose supplier has no keys",
                    row.id.supplier
                )));
            };
            s.releases
                .entry(row.id.package)
                .or_default()
                .insert(row.id.version, row.record);
        }
        Ok(state)
    }
}

// --- Canonical row encoding -------------------------------------------------------------------
//
// A version byte, then fixed-size fields and length-prefixed (u16, big-endian) names, in a
// fixed order. One encoding per row, so a keyed digest over it authenticates the row.

const ROW_VERSION: u8 = 1;
/// Release rows with a rollout schedule (or a rollout event) are version 2: the version 1
/// fields, then `rollout_at` and the schedule. A release without either is still written as
/// version 1, so every row stored before rollouts existed keeps its bytes and digest, and
/// still decodes (no log before rollouts could hold a schedule).
const RELEASE_ROW_V2: u8 = 2;
/// Longest encoded row accepted when decoding (a release with many attestations).
pub const MAX_ROW_BYTES: usize = 1 << 20;

/// The check digest a store keeps beside an encoded row: BLAKE2b-256 over a fixed context
/// string, the length-prefixed `scope` (the store's name for the log the row belongs to, for
/// example a site's channel name) and the row.
///
/// It catches a row that was corrupted or edited by hand, or copied from another log's state,
/// when the row is read. It is not a MAC (there is no key): whoever can write the store can
/// recompute it. It does not catch a whole valid row put back from an older state; a full
/// replay (`continuum check`, `channel-server check`) does.
pub fn row_digest(scope: &str, row: &[u8]) -> [u8; 32] {
    let mut state = blake2b_simd::Params::new().hash_length(32).to_state();
    state.update(b"keyggdrasil snapshot row v1\0");
    state.update(&(scope.len() as u64).to_be_bytes());
    state.update(scope.as_bytes());
    state.update(row);
    let mut out = [0u8; 32];
    // hash_length(32): all 32 bytes are copied; zip cannot panic.
    for (o, b) in out.iter_mut().zip(state.finalize().as_bytes()) {
        *o = *b;
    }
    out
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn text(&mut self, t: &str) {
        // Names are bounded far below 64 KiB by their parsers.
        let len = u16::try_from(t.len()).unwrap_or(u16::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(&t.as_bytes()[..usize::from(len)]);
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if self.0.len() < n {
            return Err(SnapshotError::Malformed("cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }
    fn opt_u64(&mut self) -> Result<Option<u64>, SnapshotError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            _ => Err(SnapshotError::Malformed("bad option tag")),
        }
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        Ok(b)
    }
    fn text(&mut self) -> Result<&'a str, SnapshotError> {
        let len = u16::from_be_bytes(self.array()?);
        std::str::from_utf8(self.take(usize::from(len))?)
            .map_err(|_| SnapshotError::Malformed("name is not UTF-8"))
    }
    fn key(&mut self) -> Result<PublicKey, SnapshotError> {
        PublicKey::from_bytes(&self.array()?).map_err(|_| SnapshotError::Malformed("bad key"))
    }
    fn supplier(&mut self) -> Result<SupplierName, SnapshotError> {
        SupplierName::parse(self.text()?).map_err(|_| SnapshotError::Malformed("bad supplier"))
    }
    fn end(&self) -> Result<(), SnapshotError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(SnapshotError::Malformed("trailing bytes"))
        }
    }
}

fn start(bytes: &[u8]) -> Result<Reader<'_>, SnapshotError> {
    let (r, version) = start_any(bytes)?;
    if version != ROW_VERSION {
        return Err(SnapshotError::Malformed("unknown row version"));
    }
    Ok(r)
}

fn start_any(bytes: &[u8]) -> Result<(Reader<'_>, u8), SnapshotError> {
    if bytes.len() > MAX_ROW_BYTES {
        return Err(SnapshotError::Malformed("row too large"));
    }
    let mut r = Reader(bytes);
    let version = r.u8()?;
    Ok((r, version))
}

impl KeyRow {
    /// The row's canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(128));
        w.u8(ROW_VERSION);
        w.text(self.supplier.as_str());
        w.bytes(self.key.as_bytes());
        w.u8(match self.record.role {
            Role::Master => 0,
            Role::Signing => 1,
        });
        w.u64(self.record.added_at);
        w.bytes(self.record.added_by.as_bytes());
        w.opt_u64(self.record.revoked_at);
        w.0
    }

    /// Decodes [`KeyRow::encode`]'s bytes; refuses anything else.
    pub fn decode(bytes: &[u8]) -> Result<KeyRow, SnapshotError> {
        let mut r = start(bytes)?;
        let supplier = r.supplier()?;
        let key = r.key()?;
        let role = match r.u8()? {
            0 => Role::Master,
            1 => Role::Signing,
            _ => return Err(SnapshotError::Malformed("bad role")),
        };
        let record = KeyRecord {
            role,
            added_at: r.u64()?,
            added_by: r.key()?,
            revoked_at: r.opt_u64()?,
        };
        r.end()?;
        Ok(KeyRow {
            supplier,
            key,
            record,
        })
    }
}

impl ReleaseRow {
    /// The row's canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let r = &self.record;
        let v2 = r.rollout.is_some() || r.rollout_at.is_some();
        let mut w = Writer(Vec::with_capacity(256));
        w.u8(if v2 { RELEASE_ROW_V2 } else { ROW_VERSION });
        w.text(self.id.supplier.as_str());
        w.text(self.id.package.as_str());
        w.text(self.id.version.as_str());
        w.u64(r.index);
        w.bytes(r.signer.as_bytes());
        w.u64(r.size);
        w.bytes(&r.digest.0);
        w.text(r.commit.as_str());
        w.bytes(r.archive_signature.as_bytes());
        w.opt_u64(r.revoked_at);
        w.u64(r.attestations.len() as u64);
        for (by, claim, index) in &r.attestations {
            w.text(by.as_str());
            w.u8(match claim {
                Claim::Reproduced => 0,
            });
            w.u64(*index);
        }
        if v2 {
            w.opt_u64(r.rollout_at);
            match &r.rollout {
                None => w.u8(0),
                Some(s) => {
                    w.u8(1);
                    w.u8(u8::from(s.paused));
                    // At most MAX_WAVES (8) waves in any schedule the state admits.
                    w.u8(u8::try_from(s.waves.len()).unwrap_or(u8::MAX));
                    for wave in &s.waves {
                        w.u8(wave.percent);
                        w.u64(wave.not_before);
                    }
                }
            }
        }
        w.0
    }

    /// Decodes [`ReleaseRow::encode`]'s bytes; refuses anything else.
    pub fn decode(bytes: &[u8]) -> Result<ReleaseRow, SnapshotError> {
        let (mut r, row_version) = start_any(bytes)?;
        if row_version != ROW_VERSION && row_version != RELEASE_ROW_V2 {
            return Err(SnapshotError::Malformed("unknown row version"));
        }
        let supplier = r.supplier()?;
        let package =
            PackageName::parse(r.text()?).map_err(|_| SnapshotError::Malformed("bad package"))?;
        let version =
            Version::parse(r.text()?).map_err(|_| SnapshotError::Malformed("bad version"))?;
        let index = r.u64()?;
        let signer = r.key()?;
        let size = r.u64()?;
        let digest = Digest512(r.array()?);
        let commit =
            GitCommit::parse(r.text()?).map_err(|_| SnapshotError::Malformed("bad commit"))?;
        let archive_signature = Signature::from_bytes(r.array()?);
        let revoked_at = r.opt_u64()?;
        let count = r.u64()?;
        // Each attestation takes at least 11 bytes: a count beyond what is left is a lie.
        if count > (r.0.len() / 11) as u64 {
            return Err(SnapshotError::Malformed("attestation count"));
        }
        let mut attestations = Vec::new();
        for _ in 0..count {
            let by = r.supplier()?;
            let claim = match r.u8()? {
                0 => Claim::Reproduced,
                _ => return Err(SnapshotError::Malformed("bad claim")),
            };
            attestations.push((by, claim, r.u64()?));
        }
        let (rollout_at, rollout) = if row_version == RELEASE_ROW_V2 {
            let at = r.opt_u64()?;
            let rollout = match r.u8()? {
                0 => None,
                1 => Some(decode_rollout(&mut r)?),
                _ => return Err(SnapshotError::Malformed("bad option tag")),
            };
            if at.is_none() && rollout.is_none() {
                // Canonical: such a row is written as version 1.
                return Err(SnapshotError::Malformed("version 2 row without a rollout"));
            }
            (at, rollout)
        } else {
            (None, None)
        };
        r.end()?;
        Ok(ReleaseRow {
            id: ReleaseId {
                supplier,
                package,
                version,
            },
            record: ReleaseRecord {
                index,
                signer,
                size,
                digest,
                commit,
                archive_signature,
                revoked_at,
                attestations,
                rollout,
                rollout_at,
            },
        })
    }
}

fn decode_rollout(r: &mut Reader<'_>) -> Result<Rollout, SnapshotError> {
    let paused = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(SnapshotError::Malformed("bad paused flag")),
    };
    let count = usize::from(r.u8()?);
    if count > crate::rollout::MAX_WAVES {
        return Err(SnapshotError::Malformed("too many rollout waves"));
    }
    let mut waves = Vec::with_capacity(count);
    for _ in 0..count {
        waves.push(Wave {
            percent: r.u8()?,
            not_before: r.u64()?,
        });
    }
    crate::rollout::validate_waves(&waves)
        .map_err(|_| SnapshotError::Malformed("invalid rollout waves"))?;
    Ok(Rollout { waves, paused })
}
