//! Snapshot-advanced key state equals full replay (issue 14): random event sequences over a
//! small universe of suppliers, keys, packages and versions (so that many entries are accepted
//! and every rule is reached), cut into random batches. Each batch is applied the way a store
//! does it — load [`Needs::of`] the batch from stored rows into a [`PartialState`], apply, write
//! [`PartialState::changes`] back — and at every prefix the stored rows must equal the rows of a
//! full replay, every refusal must be the same refusal, and the row encoding must round-trip.

use std::collections::BTreeMap;

use keyggdrasil::entry::{Claim, Digest512, Entry, EntryBody, Event, GitCommit, Reason};
use keyggdrasil::keys::{KeyPair, PublicKey, Signature};
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::rollout::{Rollout, Wave};
use keyggdrasil::snapshot::{
    KeyRow, PartialState, ReleaseId, ReleaseRow, RowSource, SnapshotError,
};
use keyggdrasil::state::KeyState;
use proptest::prelude::*;

const SUPPLIERS: [&str; 3] = ["acme", "bolt", "cog"];
const PACKAGES: [&str; 2] = ["hello", "world"];
const VERSIONS: [&str; 3] = ["1.0.0", "1.1.0", "2.0.0"];
const KEYS: u8 = 7;

fn kp(i: u8) -> KeyPair {
    KeyPair::from_seed(&[i + 1; 32]).expect("seed")
}

/// One random step: who signs what, as indexes into the universe.
#[derive(Debug, Clone)]
struct Op {
    kind: u8,
    supplier: usize,
    signer: u8,
    key: u8,
    subject: usize,
    package: usize,
    version: usize,
    digest: u8,
}

fn op() -> impl Strategy<Value = Op> {
    (
        0u8..7,
        0usize..SUPPLIERS.len(),
        0u8..KEYS,
        0u8..KEYS,
        0usize..SUPPLIERS.len(),
        0usize..PACKAGES.len(),
        0usize..VERSIONS.len(),
        0u8..2,
    )
        .prop_map(
            |(kind, supplier, signer, key, subject, package, version, digest)| Op {
                kind,
                supplier,
                signer,
                key,
                subject,
                package,
                version,
                digest,
            },
        )
}

/// The entries of `ops`, in order. A rollout names the current schedule of its release in the
/// state the entries before it leave (mostly; with `subject == 0`, a stale one), so that
/// rollout entries are accepted as often as the other kinds.
fn entries(ops: &[Op]) -> Vec<Entry> {
    let mut state = KeyState::new();
    ops.iter()
        .map(|op| {
            let current = state
                .supplier(&SupplierName::parse(SUPPLIERS[op.supplier]).unwrap())
                .and_then(|s| {
                    s.releases
                        .get(&PackageName::parse(PACKAGES[op.package]).unwrap())
                })
                .and_then(|v| v.get(&Version::parse(VERSIONS[op.version]).unwrap()))
                .map_or(0, |r| r.schedule_index());
            let replaces = if op.subject == 0 {
                current.saturating_sub(1)
            } else {
                current
            };
            let e = entry(op, replaces);
            let _ = state.apply(&e);
            e
        })
        .collect()
}

fn entry(op: &Op, replaces: u64) -> Entry {
    let signer = kp(op.signer);
    let key = kp(op.key).public();
    let package = PackageName::parse(PACKAGES[op.package]).unwrap();
    let version = Version::parse(VERSIONS[op.version]).unwrap();
    let event = match op.kind {
        // A first master key is self-signed: make that case common.
        0 => Event::MasterKey {
            public_key: if op.key.is_multiple_of(2) {
                signer.public()
            } else {
                key
            },
            derivation: None,
        },
        1 => Event::SigningKey {
            public_key: key,
            derivation: None,
        },
        2 => Event::KeyRevocation {
            public_key: key,
            reason: Reason::parse("rotated").unwrap(),
        },
        3 => Event::Release {
            package,
            version,
            size: 100,
            digest: Digest512([op.digest; 64]),
            commit: GitCommit::parse(&"ab".repeat(20)).unwrap(),
            signature: Signature::from_bytes([op.digest; 64]),
            rollout: op.key.is_multiple_of(3).then(Rollout::everyone_now),
        },
        4 => Event::ReleaseRevocation {
            package,
            version,
            reason: Reason::parse("broken").unwrap(),
        },
        6 => Event::Rollout {
            package,
            version,
            replaces,
            waves: vec![
                Wave {
                    percent: 1 + op.key,
                    not_before: 0,
                },
                Wave {
                    percent: 100,
                    not_before: u64::from(op.signer) * 3600,
                },
            ],
            paused: op.digest == 1,
        },
        _ => Event::Attestation {
            subject: SupplierName::parse(SUPPLIERS[op.subject]).unwrap(),
            package,
            version,
            digest: Digest512([op.digest; 64]),
            claim: Claim::Reproduced,
        },
    };
    let supplier = SupplierName::parse(SUPPLIERS[op.supplier]).unwrap();
    Entry::sign(EntryBody::new(supplier, signer.public(), event), &signer).unwrap()
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

/// A stand-in for a database: rows by key, and the size.
#[derive(Default)]
struct Store {
    size: u64,
    keys: BTreeMap<PublicKey, KeyRow>,
    releases: BTreeMap<ReleaseId, ReleaseRow>,
}

impl Store {
    /// Loads what `batch` needs through the same code `continuum` and the channel use.
    fn load(&self, batch: &[Entry]) -> PartialState {
        PartialState::load(self, self.size, batch).unwrap()
    }

    fn write(&mut self, p: &PartialState) {
        let c = p.changes();
        self.size = c.size;
        for row in c.keys {
            // Stored as bytes, as a database would: the encoding must round-trip.
            let back = KeyRow::decode(&row.encode()).unwrap();
            assert_eq!(back, row);
            self.keys.insert(row.key, back);
        }
        for row in c.releases {
            let back = ReleaseRow::decode(&row.encode()).unwrap();
            assert_eq!(back, row);
            self.releases.insert(row.id.clone(), back);
        }
    }

    fn full(&self) -> KeyState {
        KeyState::from_rows(
            self.size,
            self.keys.values().cloned(),
            self.releases.values().cloned(),
        )
        .unwrap()
    }
}

/// Applies `entries` both ways, cut into batches of the sizes in `cuts` (cycled), asserting
/// they agree at every prefix; returns the kinds of the accepted entries.
fn check_sequence(entries: &[Entry], cuts: &[usize]) -> Vec<&'static str> {
    let mut accepted = Vec::new();
    let mut replay = KeyState::new();
    let mut store = Store::default();
    let mut at = 0;
    let mut cut = cuts.iter().cycle();
    while at < entries.len() {
        let n = (*cut.next().unwrap()).clamp(1, entries.len() - at);
        let batch = &entries[at..at + n];
        at += n;
        let mut partial = store.load(batch);
        for e in batch {
            let full = replay.apply(e);
            let part = partial.apply(&e.clone().into_checked().unwrap());
            match (&full, &part) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b);
                    accepted.push(a.kind);
                }
                (Err(a), Err(SnapshotError::Refused(b))) => assert_eq!(a, b),
                _ => panic!("full {full:?} but snapshot {part:?}"),
            }
        }
        store.write(&partial);
        // At every prefix the stored rows are the replayed state.
        assert_eq!(store.full(), replay);
    }
    // The state rebuilt from rows gives the same installable releases as the replay.
    for s in SUPPLIERS {
        let s = SupplierName::parse(s).unwrap();
        for p in PACKAGES {
            let p = PackageName::parse(p).unwrap();
            let mut partial = PartialState::new(store.size);
            partial.load_package_from(&store, &s, &p).unwrap();
            assert_eq!(
                partial.installable_versions(&s, &p).unwrap(),
                replay.installable_versions(&s, &p)
            );
        }
    }
    accepted
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn snapshot_advanced_state_equals_full_replay(
        ops in proptest::collection::vec(op(), 1..60),
        cuts in proptest::collection::vec(1usize..8, 1..20),
    ) {
        check_sequence(&entries(&ops), &cuts);
    }
}

/// The generator reaches every kind of accepted entry (so the property above is not vacuous):
/// one long fixed pseudo-random sequence, with every batch size from 1 to 7.
#[test]
fn a_long_sequence_accepts_every_kind_of_entry() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let ops: Vec<Op> = (0..3000)
        .map(|_| Op {
            kind: next(6) as u8,
            supplier: next(3) as usize,
            signer: next(u64::from(KEYS)) as u8,
            key: next(u64::from(KEYS)) as u8,
            subject: next(3) as usize,
            package: next(2) as usize,
            version: next(3) as usize,
            digest: next(2) as u8,
        })
        .collect();
    let accepted = check_sequence(&entries(&ops), &[1, 2, 3, 4, 5, 6, 7]);
    for kind in [
        "master_key",
        "signing_key",
        "key_revocation",
        "release",
        "release_revocation",
        "attestation",
    ] {
        assert!(accepted.contains(&kind), "no {kind} accepted: {accepted:?}");
    }
}

/// An entry whose rows were not loaded is refused as a caller's mistake, never judged on a
/// partial view (which could call a known supplier unknown, or a taken key free).
#[test]
fn an_entry_needing_unloaded_rows_is_not_judged() {
    let acme = SupplierName::parse("acme").unwrap();
    let k = kp(0);
    let first = Entry::sign(
        EntryBody::new(
            acme.clone(),
            k.public(),
            Event::MasterKey {
                public_key: k.public(),
                derivation: None,
            },
        ),
        &k,
    )
    .unwrap()
    .into_checked()
    .unwrap();
    let mut p = PartialState::new(0);
    assert!(matches!(p.apply(&first), Err(SnapshotError::NotLoaded(_))));
    p.load_supplier(&acme, []).unwrap();
    // The key's owner is still unknown to this partial state.
    assert!(matches!(p.apply(&first), Err(SnapshotError::NotLoaded(m)) if m.contains("owner")));
    p.load_key_owner(k.public(), None).unwrap();
    p.apply(&first).unwrap();
    assert_eq!(p.size(), 1);
    // Installable versions need the package loaded.
    let hello = PackageName::parse("hello").unwrap();
    assert!(p.installable_versions(&acme, &hello).is_err());
}

/// Rows that contradict each other are refused when loaded.
#[test]
fn inconsistent_rows_are_refused() {
    let acme = SupplierName::parse("acme").unwrap();
    let bolt = SupplierName::parse("bolt").unwrap();
    let k = kp(1).public();
    let row = |supplier: &SupplierName| KeyRow {
        supplier: supplier.clone(),
        key: k,
        record: keyggdrasil::state::KeyRecord {
            role: keyggdrasil::state::Role::Master,
            added_at: 0,
            added_by: k,
            revoked_at: None,
        },
    };
    assert!(KeyState::from_rows(2, [row(&acme), row(&bolt)], []).is_err());
    let mut p = PartialState::new(2);
    assert!(p.load_supplier(&acme, [row(&bolt)]).is_err());
    let mut p = PartialState::new(2);
    p.load_supplier(&acme, [row(&acme)]).unwrap();
    assert!(p.load_key_owner(k, Some(bolt)).is_err());
}

/// Decoding refuses every malformed row: cut at each length, a changed version byte, trailing
/// bytes, and a lying attestation count; it never panics.
#[test]
fn malformed_rows_are_refused() {
    let k = kp(2).public();
    let key_row = KeyRow {
        supplier: SupplierName::parse("acme").unwrap(),
        key: k,
        record: keyggdrasil::state::KeyRecord {
            role: keyggdrasil::state::Role::Signing,
            added_at: 7,
            added_by: k,
            revoked_at: Some(9),
        },
    };
    let bytes = key_row.encode();
    assert_eq!(KeyRow::decode(&bytes).unwrap(), key_row);
    for n in 0..bytes.len() {
        assert!(KeyRow::decode(&bytes[..n]).is_err(), "cut at {n}");
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(KeyRow::decode(&extra).is_err());
    let mut other = bytes.clone();
    other[0] = 2;
    assert!(KeyRow::decode(&other).is_err());

    let release = ReleaseRow {
        id: ReleaseId {
            supplier: SupplierName::parse("acme").unwrap(),
            package: PackageName::parse("hello").unwrap(),
            version: Version::parse("1.0.0").unwrap(),
        },
        record: keyggdrasil::state::ReleaseRecord {
            index: 3,
            signer: k,
            size: 10,
            digest: Digest512([5; 64]),
            commit: GitCommit::parse(&"ab".repeat(20)).unwrap(),
            archive_signature: Signature::from_bytes([6; 64]),
            revoked_at: None,
            attestations: vec![(SupplierName::parse("bolt").unwrap(), Claim::Reproduced, 4)],
            rollout: None,
            rollout_at: None,
        },
    };
    let bytes = release.encode();
    // Without a schedule, a release row is still written as version 1 (rows stored before
    // rollouts keep their bytes and digests).
    assert_eq!(bytes[0], 1);
    let mut scheduled = release.clone();
    scheduled.record.rollout = Some(Rollout {
        waves: vec![
            Wave {
                percent: 5,
                not_before: 10,
            },
            Wave {
                percent: 100,
                not_before: 20,
            },
        ],
        paused: true,
    });
    scheduled.record.rollout_at = Some(9);
    let v2 = scheduled.encode();
    assert_eq!(v2[0], 2);
    assert_eq!(ReleaseRow::decode(&v2).unwrap(), scheduled);
    for n in bytes.len()..v2.len() {
        assert!(ReleaseRow::decode(&v2[..n]).is_err(), "cut at {n}");
    }
    // A version 2 row without a schedule is not canonical; waves must follow the rules.
    let mut empty_v2 = bytes.clone();
    empty_v2[0] = 2;
    empty_v2.extend_from_slice(&[0, 0]);
    assert!(ReleaseRow::decode(&empty_v2).is_err());
    let mut bad = v2.clone();
    let first_percent = v2.len() - 2 * 9;
    bad[first_percent] = 100; // 100 then 100: not strictly increasing
    assert!(ReleaseRow::decode(&bad).is_err());
    let mut three = bytes.clone();
    three[0] = 3;
    assert!(ReleaseRow::decode(&three).is_err());
    assert_eq!(ReleaseRow::decode(&bytes).unwrap(), release);
    for n in 0..bytes.len() {
        assert!(ReleaseRow::decode(&bytes[..n]).is_err(), "cut at {n}");
    }
    // The attestation count is the 8 bytes before the one attestation (2+4 name, 1, 8).
    let count_at = bytes.len() - (2 + 4 + 1 + 8) - 8;
    let mut lying = bytes.clone();
    lying[count_at..count_at + 8].copy_from_slice(&u64::MAX.to_be_bytes());
    assert!(ReleaseRow::decode(&lying).is_err());
    assert!(ReleaseRow::decode(&vec![1u8; (1 << 20) + 1]).is_err());
}
