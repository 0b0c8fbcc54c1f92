//! Red-team pass of the key state machine (issue 19): an outsider's attempts against the key
//! rules of `keyggdrasil::state`, each decided twice, the two ways the system decides:
//!
//! - a **full replay** (`KeyState::apply_all` from the empty log), as `channel-server check`,
//!   `continuum check` and the monitor do;
//! - **batched on a snapshot** (`PartialState::load` of the rows a batch needs from a stored
//!   state, apply, write the changes back), as the channel's writer and a site's update do.
//!   "Same batch" is one `PartialState` (one writer batch at the channel, one page a site
//!   applies together); "next batch" is a second one over the rows the first wrote.
//!
//! Every attempt asserts the exact refusal (variant and `rule()`), the log index it names, and
//! that neither path changed anything; accepted batches must leave the stored rows equal to the
//! full replay's. `docs/security-review.md` (section "The key state machine") lists each
//! attempt with the test that guards it. Findings that are still open are pinned by tests named
//! `open_k*`: they assert today's behaviour, so the fix has to change them (K1 and K2 are
//! fixed; their tests now assert the refusals).

// The deciders return the refusal with its index, as `KeyState::apply_all` does; size is no
// concern in a test.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use keyggdrasil::entry::{Claim, Digest512, Entry, EntryBody, Event, GitCommit, Reason};
use keyggdrasil::keys::{KeyPair, PublicKey, Signature};
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::rollout::{Rollout, Wave};
use keyggdrasil::snapshot::{
    KeyRow, PartialState, ReleaseId, ReleaseRow, RowSource, SnapshotError,
};
use keyggdrasil::state::{KeyState, Refusal, Role};

// ---------------------------------------------------------------------------------------------
// The two deciders, kept in step
// ---------------------------------------------------------------------------------------------

/// A stand-in for a database: rows by key, and the size.
#[derive(Default, Clone, PartialEq, Debug)]
struct Store {
    size: u64,
    keys: BTreeMap<PublicKey, KeyRow>,
    releases: BTreeMap<ReleaseId, ReleaseRow>,
}

impl RowSource for Store {
    type Error = SnapshotError;
    fn key_rows_of(&self, supplier: &SupplierName) -> Result<Vec<Vec<u8>>, SnapshotError> {
        Ok(self
            .keys
            .values()
            .filter(|r| r.supplier == *supplier)
            .map(KeyRow::encode)
            .collect())
    }
    fn key_row(&self, key: &PublicKey) -> Result<Option<Vec<u8>>, SnapshotError> {
        Ok(self.keys.get(key).map(KeyRow::encode))
    }
    fn release_row(&self, id: &ReleaseId) -> Result<Option<Vec<u8>>, SnapshotError> {
        Ok(self.releases.get(id).map(ReleaseRow::encode))
    }
    fn package_rows(
        &self,
        supplier: &SupplierName,
        package: &PackageName,
    ) -> Result<Vec<Vec<u8>>, SnapshotError> {
        Ok(self
            .releases
            .values()
            .filter(|r| r.id.supplier == *supplier && r.id.package == *package)
            .map(ReleaseRow::encode)
            .collect())
    }
}

/// A log decided both ways: every entry accepted so far, the full state, the stored rows.
struct Log {
    entries: Vec<Entry>,
    full: KeyState,
    store: Store,
}

impl Log {
    fn new() -> Self {
        Log {
            entries: Vec::new(),
            full: KeyState::new(),
            store: Store::default(),
        }
    }

    /// The batch through a snapshot: the refusal and the batch index it fell on, or the rows.
    fn batched(&self, batch: &[Entry]) -> Result<Store, (usize, SnapshotError)> {
        let mut p =
            PartialState::load(&self.store, self.store.size, batch).map_err(|e| (usize::MAX, e))?;
        for (i, e) in batch.iter().enumerate() {
            let checked = e
                .clone()
                .into_checked()
                .map_err(|_| (i, SnapshotError::Malformed("bad signature")))?;
            p.apply(&checked).map_err(|e| (i, e))?;
        }
        let c = p.changes();
        let mut store = self.store.clone();
        store.size = c.size;
        for row in c.keys {
            store
                .keys
                .insert(row.key, KeyRow::decode(&row.encode()).unwrap());
        }
        for row in c.releases {
            store
                .releases
                .insert(row.id.clone(), ReleaseRow::decode(&row.encode()).unwrap());
        }
        Ok(store)
    }

    /// The full replay of the whole log plus `batch` from the empty state.
    fn replayed(&self, batch: &[Entry]) -> Result<KeyState, (u64, Refusal)> {
        let mut s = KeyState::new();
        s.apply_all(self.entries.iter().chain(batch))?;
        Ok(s)
    }

    /// `batch` must be accepted whole, both ways, and leave the same state both ways.
    #[track_caller]
    fn accept(&mut self, batch: &[Entry]) {
        let full = self
            .replayed(batch)
            .unwrap_or_else(|(i, r)| panic!("full replay refused entry {i}: {r}"));
        let mut incremental = self.full.clone();
        incremental
            .apply_all(batch)
            .unwrap_or_else(|(i, r)| panic!("apply_all refused entry {i}: {r}"));
        assert_eq!(incremental, full, "incremental and full replay differ");
        let store = self
            .batched(batch)
            .unwrap_or_else(|(i, e)| panic!("snapshot refused batch entry {i}: {e}"));
        let (keys, releases) = full.rows();
        assert_eq!(store.size, full.size());
        let keys: BTreeMap<PublicKey, KeyRow> = keys.into_iter().map(|r| (r.key, r)).collect();
        assert_eq!(
            store.keys, keys,
            "the stored key rows are not the full replay's"
        );
        assert_eq!(
            store.releases.values().cloned().collect::<Vec<_>>(),
            releases
        );
        self.entries.extend(batch.iter().cloned());
        self.full = full;
        self.store = store;
    }

    /// `batch` must be refused at its entry `at` with `rule`, both ways, with the same refusal,
    /// and nothing may change (the entries before `at` in the batch are not applied either).
    #[track_caller]
    fn refuse(&mut self, batch: &[Entry], at: usize, rule: &str) -> Refusal {
        let (before_full, before_store) = (self.full.clone(), self.store.clone());
        let size = self.entries.len() as u64;
        let (index, refusal) = self.replayed(batch).expect_err("the full replay accepted");
        assert_eq!(index, size + at as u64, "full replay: {refusal}");
        assert_eq!(refusal.rule(), rule, "full replay: {refusal}");
        let mut incremental = self.full.clone();
        assert_eq!(
            incremental.apply_all(batch),
            Err((size + at as u64, refusal.clone()))
        );
        assert_eq!(
            incremental, before_full,
            "a refused batch changed the state"
        );
        match self.batched(batch) {
            Err((i, SnapshotError::Refused(r))) => {
                assert_eq!((i, &r), (at, &refusal), "the snapshot decided otherwise");
            }
            other => panic!("the snapshot did not refuse with a rule: {other:?}"),
        }
        assert_eq!(self.full, before_full);
        assert_eq!(self.store, before_store);
        // `check` of the refused entry on the state just before it says the same.
        let mut at_entry = self.full.clone();
        at_entry.apply_all(&batch[..at]).unwrap();
        assert_eq!(at_entry.check(&batch[at]), Err(refusal.clone()));
        refusal
    }

    /// [`Log::refuse`] for a batch of one.
    #[track_caller]
    fn refuse_one(&mut self, entry: &Entry, rule: &str) -> Refusal {
        self.refuse(std::slice::from_ref(entry), 0, rule)
    }

    fn current_masters(&self, s: &SupplierName) -> Vec<PublicKey> {
        self.full
            .supplier(s)
            .map(|s| s.current_masters().copied().collect())
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// Entries
// ---------------------------------------------------------------------------------------------

fn kp(seed: u8) -> KeyPair {
    KeyPair::from_seed(&[seed; 32]).expect("seed")
}
fn sup(s: &str) -> SupplierName {
    SupplierName::parse(s).unwrap()
}
fn hello() -> PackageName {
    PackageName::parse("hello").unwrap()
}
fn ver(v: &str) -> Version {
    Version::parse(v).unwrap()
}
fn sign(s: &SupplierName, by: &KeyPair, event: Event) -> Entry {
    Entry::sign(EntryBody::new(s.clone(), by.public(), event), by).unwrap()
}
fn master(k: &KeyPair) -> Event {
    Event::MasterKey {
        public_key: k.public(),
        derivation: None,
    }
}
fn signing(k: &KeyPair) -> Event {
    Event::SigningKey {
        public_key: k.public(),
        derivation: None,
    }
}
fn revoke(k: &PublicKey, why: &str) -> Event {
    Event::KeyRevocation {
        public_key: *k,
        reason: Reason::parse(why).unwrap(),
    }
}
fn release(v: &str, d: u8) -> Event {
    Event::Release {
        package: hello(),
        version: ver(v),
        size: 100,
        digest: Digest512([d; 64]),
        commit: GitCommit::parse(&"a".repeat(40)).unwrap(),
        signature: Signature::from_bytes([d; 64]),
        rollout: None,
    }
}
fn revoke_release(v: &str) -> Event {
    Event::ReleaseRevocation {
        package: hello(),
        version: ver(v),
        reason: Reason::parse("broken").unwrap(),
    }
}
fn attest(subject: &SupplierName, v: &str, d: u8) -> Event {
    Event::Attestation {
        subject: subject.clone(),
        package: hello(),
        version: ver(v),
        digest: Digest512([d; 64]),
        claim: Claim::Reproduced,
    }
}
/// The log index of acme's release of 1.0.0 in the [`cast`]: its first schedule.
const ACME_RELEASE: u64 = 4;

/// A rollout of acme's `hello` `v` (one wave of `percent`, now) replacing the schedule at
/// `replaces`.
fn rollout_of(v: &str, replaces: u64, percent: u8, paused: bool) -> Event {
    Event::Rollout {
        package: hello(),
        version: ver(v),
        replaces,
        waves: vec![Wave {
            percent,
            not_before: 0,
        }],
        paused,
    }
}

/// [`rollout_of`] replacing the release's own schedule.
fn rollout(v: &str, percent: u8, paused: bool) -> Event {
    rollout_of(v, ACME_RELEASE, percent, paused)
}

/// The cast: acme (masters m1, m2; signing s1, s2) and bolt (master bm, signing bs), each with
/// a release of `hello` 1.0.0 (acme's by s1, digest 1; bolt's by bs, digest 2). x1..x3 are
/// keys nobody registered.
struct Cast {
    acme: SupplierName,
    bolt: SupplierName,
    newco: SupplierName,
    m1: KeyPair,
    m2: KeyPair,
    s1: KeyPair,
    s2: KeyPair,
    bm: KeyPair,
    bs: KeyPair,
    x1: KeyPair,
    x2: KeyPair,
    x3: KeyPair,
}

fn cast() -> (Cast, Log) {
    let c = Cast {
        acme: sup("acme"),
        bolt: sup("bolt"),
        newco: sup("newco"),
        m1: kp(1),
        m2: kp(2),
        s1: kp(11),
        s2: kp(12),
        bm: kp(21),
        bs: kp(22),
        x1: kp(91),
        x2: kp(92),
        x3: kp(93),
    };
    let mut log = Log::new();
    log.accept(&[
        sign(&c.acme, &c.m1, master(&c.m1)),
        sign(&c.acme, &c.m1, master(&c.m2)),
        sign(&c.acme, &c.m1, signing(&c.s1)),
        sign(&c.acme, &c.m2, signing(&c.s2)),
        sign(&c.acme, &c.s1, release("1.0.0", 1)),
        sign(&c.bolt, &c.bm, master(&c.bm)),
        sign(&c.bolt, &c.bm, signing(&c.bs)),
        sign(&c.bolt, &c.bs, release("1.0.0", 2)),
    ]);
    (c, log)
}

impl Cast {
    fn acme(&self, by: &KeyPair, e: Event) -> Entry {
        sign(&self.acme, by, e)
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The last master key, the last signing key
// ---------------------------------------------------------------------------------------------

/// Every way to revoke a supplier's last current master key: itself, by a revoked master, by a
/// signing key, by another supplier's master (in either name), in one batch after revoking
/// the other master, in the next batch. Each is refused; one current master always remains.
#[test]
fn the_last_master_key_cannot_be_revoked_by_any_path() {
    let (c, mut log) = cast();
    // Same batch: m1 revokes m2, then revokes itself.
    let m1_revokes_m2 = c.acme(&c.m1, revoke(&c.m2.public(), "lost"));
    let m1_self = c.acme(&c.m1, revoke(&c.m1.public(), "oops"));
    let r = log.refuse(
        &[m1_revokes_m2.clone(), m1_self.clone()],
        1,
        "self_revocation",
    );
    assert_eq!(r, Refusal::SelfRevocation(c.m1.public()));
    // Next batch: the same.
    log.accept(std::slice::from_ref(&m1_revokes_m2));
    assert_eq!(log.current_masters(&c.acme), vec![c.m1.public()]);
    log.refuse_one(&m1_self, "self_revocation");
    // The revoked m2, a signing key, and bolt's master in acme's name: not a current master.
    for by in [&c.m2, &c.s1, &c.s2, &c.bm] {
        log.refuse_one(
            &c.acme(by, revoke(&c.m1.public(), "takeover")),
            "not_current_master",
        );
    }
    // bolt's master in bolt's name: m1 is no key of bolt's.
    let r = log.refuse_one(
        &sign(&c.bolt, &c.bm, revoke(&c.m1.public(), "takeover")),
        "not_supplier_key",
    );
    assert!(matches!(r, Refusal::NotSupplierKey { .. }));
    assert_eq!(log.current_masters(&c.acme), vec![c.m1.public()]);
}

/// Two masters revoking each other in one batch (what two racing submissions become in one
/// writer batch): the first wins, the second is signed by a key revoked one entry earlier.
/// In two batches, the same. Either order: exactly one master remains.
#[test]
fn two_masters_revoking_each_other_leave_exactly_one() {
    let (c, log0) = cast();
    let a = c.acme(&c.m1, revoke(&c.m2.public(), "race"));
    let b = c.acme(&c.m2, revoke(&c.m1.public(), "race"));
    for (first, second, winner) in [(&a, &b, &c.m1), (&b, &a, &c.m2)] {
        let mut log = Log::new();
        log.accept(&log0.entries);
        let r = log.refuse(&[first.clone(), second.clone()], 1, "not_current_master");
        assert_eq!(
            r,
            Refusal::NotCurrentMaster {
                supplier: c.acme.clone(),
                signer: second.body().signer,
            }
        );
        log.accept(std::slice::from_ref(first));
        log.refuse_one(second, "not_current_master");
        assert_eq!(log.current_masters(&c.acme), vec![winner.public()]);
    }
}

/// Revoking the last signing key is allowed (a supplier may stop releasing, and a master key
/// can add a new one): afterwards no release is accepted and none of the old ones is
/// installable, until a new signing key is added.
#[test]
fn revoking_the_last_signing_key_stops_releases_until_a_new_one_is_added() {
    let (c, mut log) = cast();
    log.accept(&[
        c.acme(&c.m1, revoke(&c.s1.public(), "lost")),
        c.acme(&c.m2, revoke(&c.s2.public(), "lost")),
    ]);
    let acme = log.full.supplier(&c.acme).unwrap();
    assert_eq!(acme.current_signing_keys().count(), 0);
    assert!(log.full.installable_versions(&c.acme, &hello()).is_empty());
    for by in [&c.s1, &c.s2, &c.m1] {
        log.refuse_one(&c.acme(by, release("2.0.0", 3)), "not_current_signing_key");
    }
    // A new signing key, added in the same batch as its first release.
    log.accept(&[
        c.acme(&c.m1, signing(&c.x1)),
        c.acme(&c.x1, release("2.0.0", 3)),
    ]);
    let v: Vec<_> = log.full.installable_versions(&c.acme, &hello());
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].version(), &ver("2.0.0"));
}

// ---------------------------------------------------------------------------------------------
// 2. A signing key used after its revocation
// ---------------------------------------------------------------------------------------------

/// What a revoked signing key may try: a release, a release revocation, a rollout, an
/// attestation, adding a key.
fn uses_of(c: &Cast, by: &KeyPair) -> Vec<(Entry, &'static str)> {
    vec![
        (c.acme(by, release("2.0.0", 3)), "not_current_signing_key"),
        (c.acme(by, revoke_release("1.0.0")), "not_current_key"),
        (c.acme(by, rollout("1.0.0", 100, false)), "not_current_key"),
        (c.acme(by, attest(&c.bolt, "1.0.0", 2)), "not_current_key"),
        (c.acme(by, signing(&c.x2)), "not_current_master"),
    ]
}

/// In the same batch as its revocation: refused at the entry after the revocation, and the
/// revocation is not applied either (all or nothing).
#[test]
fn a_revoked_signing_key_is_refused_in_the_same_batch() {
    let (c, mut log) = cast();
    let revocation = c.acme(&c.m1, revoke(&c.s1.public(), "stolen"));
    for (entry, rule) in uses_of(&c, &c.s1) {
        log.refuse(&[revocation.clone(), entry], 1, rule);
        let rec = &log.full.supplier(&c.acme).unwrap().keys[&c.s1.public()];
        assert_eq!(rec.revoked_at, None, "the revocation was applied");
    }
}

/// In the next batch: the revocation came from stored rows.
#[test]
fn a_revoked_signing_key_is_refused_in_the_next_batch() {
    let (c, mut log) = cast();
    log.accept(&[c.acme(&c.m1, revoke(&c.s1.public(), "stolen"))]);
    for (entry, rule) in uses_of(&c, &c.s1) {
        log.refuse_one(&entry, rule);
    }
    // And the release it made before is no longer installable.
    assert!(
        log.full
            .installable(&c.acme, &hello(), &ver("1.0.0"))
            .is_none()
    );
}

/// A release signed just before its key's revocation, in the same batch: both are logged
/// (the channel may honestly accept them in that order), and the release is never
/// installable.
#[test]
fn a_release_just_before_its_keys_revocation_is_never_installable() {
    let (c, mut log) = cast();
    log.accept(&[
        c.acme(&c.s1, release("2.0.0", 3)),
        c.acme(&c.m1, revoke(&c.s1.public(), "stolen")),
    ]);
    assert!(
        log.full
            .installable(&c.acme, &hello(), &ver("2.0.0"))
            .is_none()
    );
    assert!(log.full.installable_versions(&c.acme, &hello()).is_empty());
    // Another signing key's release is unaffected.
    log.accept(&[c.acme(&c.s2, release("2.0.1", 4))]);
    assert_eq!(log.full.installable_versions(&c.acme, &hello()).len(), 1);
}

/// Entries a master key signed before it was rotated out, submitted afterwards (a stolen
/// laptop's pre-signed bundle): refused, whatever they do.
#[test]
fn entries_presigned_by_a_rotated_master_are_refused() {
    let (c, mut log) = cast();
    let presigned = [
        (c.acme(&c.m2, signing(&c.x1)), "not_current_master"),
        (c.acme(&c.m2, master(&c.x1)), "not_current_master"),
        (
            c.acme(&c.m2, revoke(&c.s1.public(), "x")),
            "not_current_master",
        ),
        (c.acme(&c.m2, revoke_release("1.0.0")), "not_current_key"),
        (c.acme(&c.m2, rollout("1.0.0", 5, true)), "not_current_key"),
    ];
    log.accept(&[c.acme(&c.m1, revoke(&c.m2.public(), "rotated"))]);
    for (e, rule) in &presigned {
        log.refuse_one(e, rule);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Re-adding a revoked key
// ---------------------------------------------------------------------------------------------

/// A revoked signing key and a revoked master key, re-added in every way: as signing or master
/// key of the same supplier (by a current master), as a new supplier's self-signed first
/// master key, as a key of another supplier; in the batch of the revocation and in the next.
/// Always `key_already_registered`.
#[test]
fn a_revoked_key_never_comes_back() {
    let (c, mut log) = cast();
    let revocations = [
        c.acme(&c.m1, revoke(&c.s1.public(), "stolen")),
        c.acme(&c.m1, revoke(&c.m2.public(), "stolen")),
    ];
    let readds = |k: &KeyPair| {
        vec![
            c.acme(&c.m1, signing(k)),
            c.acme(&c.m1, master(k)),
            sign(&c.newco, k, master(k)),
            sign(&c.bolt, &c.bm, signing(k)),
            sign(&c.bolt, &c.bm, master(k)),
        ]
    };
    for k in [&c.s1, &c.m2] {
        for e in readds(k) {
            let mut batch = revocations.to_vec();
            batch.push(e);
            let r = log.refuse(&batch, 2, "key_already_registered");
            assert_eq!(r, Refusal::KeyAlreadyRegistered(k.public()));
        }
    }
    log.accept(&revocations);
    for k in [&c.s1, &c.m2] {
        for e in readds(k) {
            log.refuse_one(&e, "key_already_registered");
        }
    }
    assert!(log.full.supplier(&c.newco).is_none());
}

// ---------------------------------------------------------------------------------------------
// 4. Two first master keys for one supplier
// ---------------------------------------------------------------------------------------------

/// Two different self-signed first master keys for one new supplier in one batch (two racing
/// submissions the writer took together): the first is the supplier's, the second is a
/// stranger's self-signed key for an existing supplier. In two batches the same. The loser's
/// key is not burnt: it can still found another supplier.
#[test]
fn of_two_first_master_keys_the_first_wins() {
    let (c, mut log) = cast();
    let a = sign(&c.newco, &c.x1, master(&c.x1));
    let b = sign(&c.newco, &c.x2, master(&c.x2));
    let r = log.refuse(&[a.clone(), b.clone()], 1, "not_current_master");
    assert_eq!(
        r,
        Refusal::NotCurrentMaster {
            supplier: c.newco.clone(),
            signer: c.x2.public(),
        }
    );
    log.accept(std::slice::from_ref(&a));
    log.refuse_one(&b, "not_current_master");
    assert_eq!(log.current_masters(&c.newco), vec![c.x1.public()]);
    log.accept(&[sign(&sup("otherco"), &c.x2, master(&c.x2))]);
    // One key founding two suppliers, in one batch: the second is refused.
    log.refuse(
        &[
            sign(&sup("thirdco"), &c.x3, master(&c.x3)),
            sign(&sup("fourthco"), &c.x3, master(&c.x3)),
        ],
        1,
        "key_already_registered",
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Entries signed by another supplier's key
// ---------------------------------------------------------------------------------------------

/// Every event kind in acme's name, signed by bolt's master key and by bolt's signing key
/// (current keys, valid signatures): each refused with the rule of its kind. Then the same
/// events in bolt's own name aimed at acme's keys and release.
#[test]
fn every_event_kind_signed_by_another_suppliers_key_is_refused() {
    let (c, mut log) = cast();
    for by in [&c.bm, &c.bs] {
        for (event, rule) in [
            (master(&c.x1), "not_current_master"),
            (signing(&c.x1), "not_current_master"),
            (revoke(&c.s1.public(), "x"), "not_current_master"),
            (revoke(&c.m1.public(), "x"), "not_current_master"),
            (release("6.6.6", 6), "not_current_signing_key"),
            (revoke_release("1.0.0"), "not_current_key"),
            (attest(&c.bolt, "1.0.0", 2), "not_current_key"),
            (rollout("1.0.0", 100, false), "not_current_key"),
        ] {
            let r = log.refuse_one(&c.acme(by, event), rule);
            assert!(r.to_string().contains(&by.public().to_string()), "{r}");
        }
    }
    // In bolt's own name: acme's keys are not bolt's, acme's release is not bolt's (bolt's own
    // 1.0.0 is a different release: revoking it is bolt's right, checked last).
    for (event, rule) in [
        (revoke(&c.s1.public(), "x"), "not_supplier_key"),
        (revoke(&c.m1.public(), "x"), "not_supplier_key"),
        (revoke_release("1.1.0"), "unknown_release"),
        (rollout("1.1.0", 100, false), "unknown_release"),
    ] {
        log.refuse_one(&sign(&c.bolt, &c.bm, event), rule);
    }
    assert!(
        log.full
            .installable(&c.acme, &hello(), &ver("1.0.0"))
            .is_some()
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Other attempts
// ---------------------------------------------------------------------------------------------

/// One key as master and signing key, even when both registrations come in one batch, in
/// either order, and across suppliers.
#[test]
fn a_key_is_never_both_master_and_signing_key() {
    let (c, mut log) = cast();
    for (a, b) in [
        (c.acme(&c.m1, signing(&c.x1)), c.acme(&c.m1, master(&c.x1))),
        (c.acme(&c.m1, master(&c.x1)), c.acme(&c.m2, signing(&c.x1))),
        (
            c.acme(&c.m1, signing(&c.x1)),
            sign(&c.bolt, &c.bm, master(&c.x1)),
        ),
    ] {
        log.refuse(&[a, b], 1, "key_already_registered");
    }
}

/// A chain of 12 master rotations (each new master added by the last, which it then revokes),
/// applied one or two rotations a batch: exactly the newest master is current; every earlier
/// one is refused for every key event; the signing key the first master added is still
/// current (revocation of a master does not cascade, docs/decisions.md 4).
#[test]
fn a_rotation_chain_leaves_exactly_the_newest_master() {
    let (c, mut log) = cast();
    let chain: Vec<KeyPair> = (0..12).map(|i| kp(100 + i)).collect();
    log.accept(&[c.acme(&c.m1, revoke(&c.m2.public(), "retired"))]);
    let mut pending = Vec::new();
    for (i, next) in chain.iter().enumerate() {
        let prev = if i == 0 { &c.m1 } else { &chain[i - 1] };
        pending.push(c.acme(prev, master(next)));
        pending.push(c.acme(next, revoke(&prev.public(), "rotated")));
        if i % 3 != 1 {
            log.accept(&pending);
            pending.clear();
        }
    }
    log.accept(&pending);
    let newest = chain.last().unwrap();
    assert_eq!(log.current_masters(&c.acme), vec![newest.public()]);
    for old in std::iter::once(&c.m1).chain(&chain[..chain.len() - 1]) {
        for e in [
            c.acme(old, signing(&c.x1)),
            c.acme(old, master(&c.x1)),
            c.acme(old, revoke(&newest.public(), "back")),
        ] {
            log.refuse_one(&e, "not_current_master");
        }
    }
    let s1 = &log.full.supplier(&c.acme).unwrap().keys[&c.s1.public()];
    assert_eq!((s1.role, s1.revoked_at), (Role::Signing, None));
}

/// A revocation replayed: the same bytes, another reason, by the other master, and twice in
/// one batch: `key_already_revoked` each time; the key's record keeps its first revocation.
#[test]
fn a_replayed_revocation_is_refused() {
    let (c, mut log) = cast();
    let first = c.acme(&c.m1, revoke(&c.s1.public(), "stolen"));
    log.refuse(&[first.clone(), first.clone()], 1, "key_already_revoked");
    log.accept(std::slice::from_ref(&first));
    let at = log.full.supplier(&c.acme).unwrap().keys[&c.s1.public()].revoked_at;
    for e in [
        first.clone(),
        c.acme(&c.m1, revoke(&c.s1.public(), "again")),
        c.acme(&c.m2, revoke(&c.s1.public(), "stolen")),
    ] {
        log.refuse_one(&e, "key_already_revoked");
    }
    assert_eq!(
        log.full.supplier(&c.acme).unwrap().keys[&c.s1.public()].revoked_at,
        at
    );
}

/// There is no quorum for key events (DESIGN.md: "a revocation must be signed by a current
/// master key other than the one revoked"): any one current master may revoke every other
/// master and add its own keys. Accepted by design; a supplier that wants k-of-n keeps one
/// master key offline-shared (hangar's Shamir shares), not several independent ones.
#[test]
fn one_master_alone_may_revoke_every_other_master() {
    let (c, mut log) = cast();
    log.accept(&[
        c.acme(&c.m1, master(&c.x1)),
        c.acme(&c.m2, revoke(&c.m1.public(), "takeover")),
        c.acme(&c.m2, revoke(&c.x1.public(), "takeover")),
    ]);
    assert_eq!(log.current_masters(&c.acme), vec![c.m2.public()]);
}

/// **K1 (fixed).** Every rollout entry names the log index of the schedule it replaces
/// (`replaces`), and the rules accept it only while that is the release's current schedule,
/// so a rollout entry is valid exactly once, like every other event kind (docs/decisions.md
/// 8). A lying channel that re-appends the supplier's earlier `rollout` entry, byte for byte,
/// after the supplier paused the release, is refused `stale_rollout` (in the next batch, and in
/// the same batch as the original), naming the schedule the replay names and the current one;
/// nothing changes and the pause holds. A re-issued pause (pause, resume, pause) is a new entry
/// each time. (The whole-system faces are in `tests/tests/red_team_keys.rs`.)
#[test]
fn a_replayed_rollout_entry_is_refused_and_the_pause_holds() {
    let (c, mut log) = cast();
    let resume = c.acme(&c.s2, rollout("1.0.0", 100, false));
    // The resume takes index 8; the pause names it.
    let pause = c.acme(&c.s2, rollout_of("1.0.0", 8, 100, true));
    // The same batch: the resume, then its replay.
    log.refuse(&[resume.clone(), resume.clone()], 1, "stale_rollout");
    log.accept(&[resume.clone(), pause.clone()]);
    let paused = |log: &Log| {
        let r = &log.full.supplier(&c.acme).unwrap().releases[&hello()][&ver("1.0.0")];
        (r.rollout.clone().unwrap().paused, r.rollout_at)
    };
    assert_eq!(paused(&log), (true, Some(9)));
    let stale = |replaces: u64, current: u64| Refusal::StaleRollout {
        release: Box::new((c.acme.clone(), hello(), ver("1.0.0"))),
        replaces,
        current,
    };
    // The replay: the very bytes of an entry already in the log.
    let r = log.refuse_one(&resume, "stale_rollout");
    assert_eq!(r, stale(ACME_RELEASE, 9));
    assert!(r.to_string().contains("stale or replayed"), "{r}");
    assert_eq!(log.refuse_one(&pause, "stale_rollout"), stale(8, 9));
    // The same schedule signed by the other key, or by a master, naming an old schedule.
    for (by, replaces) in [(&c.s1, ACME_RELEASE), (&c.m1, 8), (&c.m2, 10)] {
        let e = c.acme(by, rollout_of("1.0.0", replaces, 100, false));
        assert_eq!(log.refuse_one(&e, "stale_rollout"), stale(replaces, 9));
    }
    assert_eq!(paused(&log), (true, Some(9)));
    // Pause, resume, pause: each a new entry, each accepted; the log ends paused.
    let resume_again = c.acme(&c.s2, rollout_of("1.0.0", 9, 100, false));
    let pause_again = c.acme(&c.s2, rollout_of("1.0.0", 10, 100, true));
    assert_ne!(pause_again, pause);
    log.accept(std::slice::from_ref(&resume_again));
    log.accept(&[pause_again]);
    assert_eq!(paused(&log), (true, Some(11)));
    log.refuse_one(&resume_again, "stale_rollout");
    let distinct: std::collections::BTreeSet<&[u8]> =
        log.entries.iter().map(Entry::as_bytes).collect();
    assert_eq!(
        distinct.len(),
        log.entries.len(),
        "an entry was logged twice"
    );
    assert_eq!(
        log.full.supplier(&c.acme).unwrap().releases[&hello()][&ver("1.0.0")].rollout,
        Some(Rollout {
            waves: vec![Wave {
                percent: 100,
                not_before: 0
            }],
            paused: true,
        })
    );
}

/// **K2 (fixed).** A supplier may not attest its own release ("reproduced" by the supplier
/// that built it proves nothing, and `continuum info` would show it like an independent one):
/// refused `self_attestation`, by either of its keys, in the same batch as the release and in
/// the next. Another supplier's attestation of it is still accepted.
#[test]
fn a_supplier_may_not_attest_its_own_release() {
    let (c, mut log) = cast();
    for by in [&c.s1, &c.m1] {
        let r = log.refuse_one(&c.acme(by, attest(&c.acme, "1.0.0", 1)), "self_attestation");
        assert_eq!(r, Refusal::SelfAttestation(c.acme.clone()));
    }
    log.refuse(
        &[
            c.acme(&c.s1, release("2.0.0", 3)),
            c.acme(&c.s2, attest(&c.acme, "2.0.0", 3)),
        ],
        1,
        "self_attestation",
    );
    log.accept(&[sign(&c.bolt, &c.bs, attest(&c.acme, "1.0.0", 1))]);
    let r = log
        .full
        .installable(&c.acme, &hello(), &ver("1.0.0"))
        .unwrap();
    assert_eq!(r.attestations().len(), 1);
    assert_eq!(r.attestations()[0].0, c.bolt);
}
