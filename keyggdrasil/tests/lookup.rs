//! `lookup::verify_release_lookup`: an honest answer is accepted, and each way a channel could
//! lie about one release (another entry, a forged or re-signed entry, a proof for another
//! index or size, a revocation of something else or before the release, an oversized proof,
//! a checkpoint of another key) is refused.
#![forbid(unsafe_code)]

use keyggdrasil::entry::{Digest512, Entry, EntryBody, Event, GitCommit, Reason};
use keyggdrasil::keys::{KeyPair, Signature};
use keyggdrasil::limits::Limits;
use keyggdrasil::lookup::{
    LoggedEntry, LookupError, ReleaseLookupResponse, ReleaseQuery, verify_release_lookup,
};
use keyggdrasil::merkle::{Blake2b256, MemoryStore, prove_inclusion};
use keyggdrasil::names::{ChannelName, PackageName, SupplierName, Version};
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{
    Checkpoint, Signed, TreeHash, VerifiedCheckpoint, WIRE_VERSION, verify_checkpoint,
};

fn kp(seed: u8) -> KeyPair {
    KeyPair::from_seed(&[seed; 32]).unwrap()
}
fn sup(s: &str) -> SupplierName {
    SupplierName::parse(s).unwrap()
}
fn pkg(s: &str) -> PackageName {
    PackageName::parse(s).unwrap()
}
fn ver(s: &str) -> Version {
    Version::parse(s).unwrap()
}
fn signed(supplier: &str, by: &KeyPair, event: Event) -> Entry {
    Entry::sign(EntryBody::new(sup(supplier), by.public(), event), by).unwrap()
}
fn release(p: &str, v: &str, d: u8) -> Event {
    Event::Release {
        package: pkg(p),
        version: ver(v),
        size: 100 + u64::from(d),
        digest: Digest512([d; 64]),
        commit: GitCommit::parse(&"ab".repeat(20)).unwrap(),
        signature: Signature::from_bytes([d; 64]),
        rollout: None,
    }
}
fn revoke(p: &str, v: &str) -> Event {
    Event::ReleaseRevocation {
        package: pkg(p),
        version: ver(v),
        reason: Reason::parse("broken").unwrap(),
    }
}

/// A small log: keys, three releases, a revocation of `hello 1.0.0`, a release of another
/// supplier; its tree, and a checkpoint over it signed by `channel`.
struct World {
    entries: Vec<Entry>,
    tree: MemoryStore,
    channel: KeyPair,
}

const HELLO_1: u64 = 2;
const HELLO_2: u64 = 3;
const REVOCATION: u64 = 5;

impl World {
    fn new() -> Self {
        let (master, signing, other) = (kp(1), kp(2), kp(3));
        let entries = vec![
            signed(
                "acme",
                &master,
                Event::MasterKey {
                    public_key: master.public(),
                    derivation: None,
                },
            ),
            signed(
                "acme",
                &master,
                Event::SigningKey {
                    public_key: signing.public(),
                    derivation: None,
                },
            ),
            signed("acme", &signing, release("hello", "1.0.0", 1)),
            signed("acme", &signing, release("hello", "2.0.0", 2)),
            signed("acme", &signing, release("other", "1.0.0", 3)),
            signed("acme", &signing, revoke("hello", "1.0.0")),
            signed(
                "bolt",
                &other,
                Event::MasterKey {
                    public_key: other.public(),
                    derivation: None,
                },
            ),
            signed("bolt", &other, release("hello", "1.0.0", 4)),
        ];
        let mut tree = MemoryStore::new();
        for e in &entries {
            tree.append(&Blake2b256, e.as_bytes()).unwrap();
        }
        Self {
            entries,
            tree,
            channel: kp(9),
        }
    }

    fn checkpoint_at(&self, size: u64, key: &KeyPair) -> VerifiedCheckpoint {
        let root = keyggdrasil::merkle::root_at(&Blake2b256, size, &self.tree).unwrap();
        let cp = Checkpoint {
            v: WIRE_VERSION,
            origin: ChannelName::parse("demo").unwrap(),
            size,
            root: TreeHash(root),
            time: 1_700_000_000,
        };
        let signed = Signed::sign(key, Context::Checkpoint, &cp);
        verify_checkpoint(&signed, &key.public(), None, &Limits::default()).unwrap()
    }

    fn checkpoint(&self) -> VerifiedCheckpoint {
        self.checkpoint_at(self.entries.len() as u64, &self.channel)
    }

    fn logged(&self, index: u64, size: u64) -> LoggedEntry {
        let proof = prove_inclusion(&Blake2b256, index, size, &self.tree).unwrap();
        LoggedEntry {
            index,
            entry: String::from_utf8(self.entries[index as usize].as_bytes().to_vec()).unwrap(),
            path: proof.hashes().iter().copied().map(TreeHash).collect(),
        }
    }

    /// The honest answer for `acme/hello 1.0.0` at the full size.
    fn honest(&self) -> ReleaseLookupResponse {
        let size = self.entries.len() as u64;
        ReleaseLookupResponse {
            size,
            release: self.logged(HELLO_1, size),
            revocation: Some(self.logged(REVOCATION, size)),
        }
    }
}

struct Q {
    s: SupplierName,
    p: PackageName,
    v: Version,
}
impl Q {
    fn new(s: &str, p: &str, v: &str) -> Self {
        Self {
            s: sup(s),
            p: pkg(p),
            v: ver(v),
        }
    }
    fn q(&self) -> ReleaseQuery<'_> {
        ReleaseQuery {
            supplier: &self.s,
            package: &self.p,
            version: &self.v,
        }
    }
}

fn check(
    w: &World,
    resp: &ReleaseLookupResponse,
    cp: &VerifiedCheckpoint,
    q: &Q,
) -> Result<keyggdrasil::lookup::FoundRelease, LookupError> {
    verify_release_lookup(resp, cp, q.q(), &Limits::default()).inspect(|f| {
        assert_eq!(f.entry, w.entries[f.index as usize]);
    })
}

#[test]
fn an_honest_answer_with_a_revocation_is_accepted() {
    let w = World::new();
    let q = Q::new("acme", "hello", "1.0.0");
    let found = check(&w, &w.honest(), &w.checkpoint(), &q).unwrap();
    assert_eq!(found.index, HELLO_1);
    assert_eq!(found.revoked_at, Some(REVOCATION));
    assert_eq!(found.size, 8);
    assert!(found.entry.expected_archive().is_some());
}

#[test]
fn an_honest_answer_without_a_revocation_is_accepted() {
    let w = World::new();
    let q = Q::new("acme", "hello", "2.0.0");
    let resp = ReleaseLookupResponse {
        size: 8,
        release: w.logged(HELLO_2, 8),
        revocation: None,
    };
    let found = check(&w, &resp, &w.checkpoint(), &q).unwrap();
    assert_eq!((found.index, found.revoked_at), (HELLO_2, None));
}

#[test]
fn an_answer_at_an_older_checkpoint_is_accepted_and_a_size_mismatch_is_refused() {
    let w = World::new();
    let q = Q::new("acme", "hello", "1.0.0");
    let old = w.checkpoint_at(4, &w.channel);
    let resp = ReleaseLookupResponse {
        size: 4,
        release: w.logged(HELLO_1, 4),
        revocation: None,
    };
    assert!(check(&w, &resp, &old, &q).is_ok());
    // The same answer against the newer checkpoint: its size is not the one asked.
    assert!(matches!(
        check(&w, &resp, &w.checkpoint(), &q),
        Err(LookupError::WrongSize { got: 4, asked: 8 })
    ));
    // Proofs for size 4 relabelled as size 8 do not verify.
    let relabelled = ReleaseLookupResponse { size: 8, ..resp };
    assert!(matches!(
        check(&w, &relabelled, &w.checkpoint(), &q),
        Err(LookupError::NotIncluded { .. })
    ));
}

#[test]
fn another_release_is_refused() {
    let w = World::new();
    for (s, p, v) in [
        ("acme", "hello", "2.0.0"),
        ("acme", "other", "1.0.0"),
        ("bolt", "hello", "1.0.0"),
    ] {
        let q = Q::new(s, p, v);
        assert!(
            matches!(
                check(&w, &w.honest(), &w.checkpoint(), &q),
                Err(LookupError::WrongEntry {
                    what: "release",
                    ..
                })
            ),
            "{s}/{p} {v}"
        );
    }
    // A key entry served as the release.
    let q = Q::new("acme", "hello", "1.0.0");
    let resp = ReleaseLookupResponse {
        release: w.logged(1, 8),
        ..w.honest()
    };
    assert!(matches!(
        check(&w, &resp, &w.checkpoint(), &q),
        Err(LookupError::WrongEntry { .. })
    ));
}

#[test]
fn a_proof_for_another_index_or_a_bad_path_is_refused() {
    let w = World::new();
    let q = Q::new("acme", "hello", "1.0.0");
    let cp = w.checkpoint();
    // The right entry with the proof of its neighbour.
    let mut resp = w.honest();
    resp.release.path = w.logged(HELLO_2, 8).path;
    assert!(matches!(
        check(&w, &resp, &cp, &q),
        Err(LookupError::NotIncluded {
            what: "release",
            ..
        })
    ));
    // The right entry and proof, a wrong index.
    let mut resp = w.honest();
    resp.release.index = HELLO_2;
    assert!(check(&w, &resp, &cp, &q).is_err());
    // One hash of the path flipped, one removed, one added.
    let mut resp = w.honest();
    resp.release.path[0].0[0] ^= 1;
    assert!(check(&w, &resp, &cp, &q).is_err());
    let mut resp = w.honest();
    resp.release.path.pop();
    assert!(check(&w, &resp, &cp, &q).is_err());
    let mut resp = w.honest();
    resp.release.path.push(TreeHash([0; 32]));
    assert!(check(&w, &resp, &cp, &q).is_err());
}

#[test]
fn an_entry_that_is_not_in_the_log_is_refused_even_if_well_signed() {
    let w = World::new();
    let q = Q::new("acme", "hello", "1.0.0");
    // The supplier's real signing key signed another digest for the same version, but the
    // channel never logged it: the proof of the logged one does not cover it.
    let forged = signed("acme", &kp(2), release("hello", "1.0.0", 77));
    let mut resp = w.honest();
    resp.release.entry = String::from_utf8(forged.as_bytes().to_vec()).unwrap();
    assert!(matches!(
        check(&w, &resp, &w.checkpoint(), &q),
        Err(LookupError::NotIncluded { .. })
    ));
}

#[test]
fn a_bad_signature_or_malformed_entry_is_refused() {
    let w = World::new();
    let q = Q::new("acme", "hello", "1.0.0");
    let mut resp = w.honest();
    // Same body, another signature (the last hex digit changed).
    let mut text = resp.release.entry.clone();
    let last = text.pop().unwrap();
    text.push(if last == '0' { '1' } else { '0' });
    resp.release.entry = text;
    assert!(matches!(
        check(&w, &resp, &w.checkpoint(), &q),
        Err(LookupError::BadSignature { what: "release" }) | Err(LookupError::Malformed { .. })
    ));
    let mut resp = w.honest();
    resp.release.entry = "{\"v\":1}".to_owned();
    assert!(matches!(
        check(&w, &resp, &w.checkpoint(), &q),
        Err(LookupError::Malformed { .. })
    ));
    let mut resp = w.honest();
    resp.release.entry = "x".repeat(9000);
    assert!(matches!(
        check(&w, &resp, &w.checkpoint(), &q),
        Err(LookupError::Malformed { .. })
    ));
}

#[test]
fn a_revocation_of_something_else_or_before_the_release_is_refused() {
    let w = World::new();
    let q = Q::new("acme", "hello", "2.0.0");
    // hello 1.0.0's revocation shown for hello 2.0.0.
    let resp = ReleaseLookupResponse {
        size: 8,
        release: w.logged(HELLO_2, 8),
        revocation: Some(w.logged(REVOCATION, 8)),
    };
    assert!(matches!(
        check(&w, &resp, &w.checkpoint(), &q),
        Err(LookupError::WrongEntry {
            what: "revocation",
            ..
        })
    ));
    // A release served as its own revocation.
    let q = Q::new("acme", "hello", "1.0.0");
    let resp = ReleaseLookupResponse {
        revocation: Some(w.logged(HELLO_1, 8)),
        ..w.honest()
    };
    assert!(matches!(
        check(&w, &resp, &w.checkpoint(), &q),
        Err(LookupError::WrongEntry { .. })
    ));
}

#[test]
fn a_revocation_logged_before_the_release_is_refused() {
    // A log where (by a broken channel) the revocation precedes the release.
    let signing = kp(2);
    let mut w = World::new();
    w.entries = vec![
        signed("acme", &signing, revoke("hello", "1.0.0")),
        signed("acme", &signing, release("hello", "1.0.0", 1)),
    ];
    w.tree = MemoryStore::new();
    for e in &w.entries {
        w.tree.append(&Blake2b256, e.as_bytes()).unwrap();
    }
    let q = Q::new("acme", "hello", "1.0.0");
    let resp = ReleaseLookupResponse {
        size: 2,
        release: w.logged(1, 2),
        revocation: Some(w.logged(0, 2)),
    };
    assert!(matches!(
        check(&w, &resp, &w.checkpoint(), &q),
        Err(LookupError::RevocationFirst {
            release: 1,
            revocation: 0
        })
    ));
}

#[test]
fn a_checkpoint_of_another_channel_key_does_not_cover_the_answer() {
    let w = World::new();
    let q = Q::new("acme", "hello", "1.0.0");
    // Another key signing the same tree is a valid checkpoint of *that* key; a caller that
    // verified it against its pin would not have it. Over another tree, the proofs fail.
    let mut other = World::new();
    other.entries.truncate(7);
    other.tree = MemoryStore::new();
    for e in &other.entries {
        other.tree.append(&Blake2b256, e.as_bytes()).unwrap();
    }
    other
        .tree
        .append(&Blake2b256, b"another last entry")
        .unwrap();
    let cp = other.checkpoint_at(8, &kp(10));
    assert!(matches!(
        check(&w, &w.honest(), &cp, &q),
        Err(LookupError::NotIncluded { .. })
    ));
}

#[test]
fn an_oversized_proof_is_refused_before_it_is_used() {
    let w = World::new();
    let q = Q::new("acme", "hello", "1.0.0");
    let mut resp = w.honest();
    resp.release.path = vec![TreeHash([7; 32]); Limits::default().max_proof_hashes + 1];
    assert!(matches!(
        check(&w, &resp, &w.checkpoint(), &q),
        Err(LookupError::Proof(_))
    ));
}

#[test]
fn the_answer_refuses_unknown_fields() {
    let w = World::new();
    let mut v = serde_json::to_value(w.honest()).unwrap();
    v["extra"] = serde_json::json!(1);
    assert!(serde_json::from_value::<ReleaseLookupResponse>(v).is_err());
}
