//! A supplier's history without reading the whole log: the answer of the channel's
//! `GET /v1/suppliers/{name}?size=N&start=K` endpoint, one page at a time, checked against a
//! signed checkpoint with an inclusion proof for every listed entry.
//!
//! [`verify_supplier_history`] is the whole check of one page (parse, verify, decide; no I/O).
//! What a checked page proves, given a checkpoint signed by the pinned channel key:
//! - every listed entry is the leaf at its stated index of the tree the checkpoint signs;
//! - its own signature verifies (strictly) under the key the entry names as its signer;
//! - it is in the name of the supplier asked for, and its index is in `start..size`;
//! - the indices increase, so following `next` from page to page never repeats or loops.
//!
//! What it does **not** prove:
//! - that the list is **complete**: inclusion proofs prove presence, never absence, so a channel
//!   can leave entries out (the answer says so: its `completeness` is always `"asserted"`, the
//!   channel's word and nothing more). A missing entry is not hidden from everyone, though: it
//!   is in the log, which every site replays;
//! - that the signer was a current key of the supplier under the key rules when the entry was
//!   logged: only [`crate::state::KeyState`] decides that, on a replay of the whole log (the
//!   channel refuses such entries at submission, and every replay would refuse a log that had
//!   one).
//!
//! What would prove completeness: replaying the whole log from a checkpoint, as `barge monitor`
//! does (work in proportion to the whole log, but proof of everything); or a verifiable index
//! committed to in the checkpoint, such as a sparse Merkle map keyed by supplier whose values
//! are the supplier's entry list (or its hash), with a non-membership proof for an unknown
//! name. That index is not built; this endpoint is a convenience for people and explorers, not
//! a trust decision.

use crate::entry::{Entry, EntryError};
use crate::limits::Limits;
use crate::lookup::{LoggedEntry, ProofFailure, check_logged_inclusion};
use crate::merkle::MerkleError;
use crate::names::SupplierName;
use crate::wire::{VerifiedCheckpoint, WireError};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Most entries in one page of a supplier's history. With entries of at most
/// [`crate::entry::MAX_ENTRY_BYTES`] (at most doubled by JSON escaping) and proofs of at most 64
/// hashes, a page stays near 2 MiB of JSON at worst, within
/// [`Limits::max_update_response_bytes`], the limit a client should read it with.
pub const MAX_HISTORY_PAGE: usize = 100;

/// The only `completeness` a history answer has today: the channel asserts that it listed every
/// entry of the supplier below the size, and nothing in the answer proves it.
pub const COMPLETENESS_ASSERTED: &str = "asserted";

/// `GET /v1/suppliers/{name}?size=N&start=K` answer: the supplier's entries with `K <= index < N`,
/// ascending, at most [`MAX_HISTORY_PAGE`], each with its inclusion proof at size `N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplierHistoryResponse {
    /// The supplier asked for.
    pub supplier: SupplierName,
    /// The tree size every proof is for (the `size` asked).
    pub size: u64,
    /// The entries of this page, by ascending index.
    pub entries: Vec<LoggedEntry>,
    /// The `start` of the next page, or `None` when the supplier has no more entries below
    /// `size`. Always serialised (as `null` when there is none).
    pub next: Option<u64>,
    /// [`COMPLETENESS_ASSERTED`]: the channel's claim that no entry was left out, unproven.
    pub completeness: String,
}

/// One entry of a checked page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Its log index.
    pub index: u64,
    /// The entry: parsed, in the supplier's name, its signature valid, in the signed tree. Not
    /// checked against the key rules (see the module docs).
    pub entry: Entry,
}

/// Why a page of `/v1/suppliers/{name}` was refused. Every variant is the channel's fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The proofs are for another tree size than the checkpoint's.
    #[error("the answer is for tree size {got}, but size {asked} was asked")]
    WrongSize {
        /// The size in the answer.
        got: u64,
        /// The checkpoint's size.
        asked: u64,
    },
    /// The answer is about another supplier.
    #[error("the answer is the history of {got}, not of the supplier asked for")]
    WrongSupplier {
        /// The supplier the answer names.
        got: SupplierName,
    },
    /// The answer claims a completeness this version does not know.
    #[error("the answer claims completeness {got:?}; only \"asserted\" is known")]
    Completeness {
        /// The claim, cut to 64 characters.
        got: String,
    },
    /// More entries than a page may have.
    #[error("the answer lists {got} entries, more than a page of {MAX_HISTORY_PAGE}")]
    TooManyEntries {
        /// How many.
        got: usize,
    },
    /// The indices are not strictly increasing (out of order or repeated).
    #[error("entry index {index} does not come after index {previous}")]
    OutOfOrder {
        /// The index that should have been larger.
        index: u64,
        /// The index before it.
        previous: u64,
    },
    /// An index is outside `start..size`.
    #[error("entry index {index} is outside the range {start}..{size} asked for")]
    OutOfRange {
        /// The index.
        index: u64,
        /// The `start` asked.
        start: u64,
        /// The tree size.
        size: u64,
    },
    /// A served entry does not parse.
    #[error("the served entry at index {index} does not parse: {source}")]
    Malformed {
        /// Its stated index.
        index: u64,
        /// Why.
        source: EntryError,
    },
    /// A served entry is in the name of another supplier.
    #[error("the served entry at index {index} is an entry of {supplier}")]
    OtherSupplier {
        /// Its stated index.
        index: u64,
        /// The supplier it names.
        supplier: SupplierName,
    },
    /// A served entry's signature does not verify under the key it names.
    #[error("the served entry at index {index} has a signature that does not verify")]
    BadSignature {
        /// Its stated index.
        index: u64,
    },
    /// A proof is longer than the limits allow.
    #[error("a proof in the answer: {0}")]
    Proof(#[from] WireError),
    /// A served entry is not in the signed tree at its stated index.
    #[error("the served entry is not at index {index} of the signed tree: {source}")]
    NotIncluded {
        /// The stated index.
        index: u64,
        /// Why the proof failed.
        source: MerkleError,
    },
    /// `next` does not move forward past this page, or points beyond the tree.
    #[error("the answer's next page starts at {next}, which is not after {after} and below {size}")]
    BadNext {
        /// The `next` given.
        next: u64,
        /// The last listed index (or `start` on an empty page), which `next` must exceed.
        after: u64,
        /// The tree size, which `next` must stay below.
        size: u64,
    },
}

/// Checks one page of `/v1/suppliers/{supplier}?size=N&start={start}` against `checkpoint`
/// (whose size is `N`) and returns its entries. See the module docs for what that proves: each
/// entry is in the signed tree, validly signed by the key it names, in the supplier's name; not
/// that the list is complete, nor that the signer was a current key.
///
/// To read a whole history, call it with `start = 0`, then with `start = next` while `next` is
/// given, all against the same checkpoint.
pub fn verify_supplier_history(
    resp: &SupplierHistoryResponse,
    checkpoint: &VerifiedCheckpoint,
    supplier: &SupplierName,
    start: u64,
    limits: &Limits,
) -> Result<Vec<HistoryEntry>, HistoryError> {
    let size = checkpoint.size();
    if resp.size != size {
        return Err(HistoryError::WrongSize {
            got: resp.size,
            asked: size,
        });
    }
    if resp.supplier != *supplier {
        return Err(HistoryError::WrongSupplier {
            got: resp.supplier.clone(),
        });
    }
    if resp.completeness != COMPLETENESS_ASSERTED {
        return Err(HistoryError::Completeness {
            got: resp.completeness.chars().take(64).collect(),
        });
    }
    // Before any hashing or signature check, so a huge page costs nothing but its parse.
    if resp.entries.len() > MAX_HISTORY_PAGE {
        return Err(HistoryError::TooManyEntries {
            got: resp.entries.len(),
        });
    }
    let mut out = Vec::with_capacity(resp.entries.len());
    let mut previous: Option<u64> = None;
    for logged in &resp.entries {
        let index = logged.index;
        if let Some(previous) = previous
            && index <= previous
        {
            return Err(HistoryError::OutOfOrder { index, previous });
        }
        if index < start || index >= size {
            return Err(HistoryError::OutOfRange { index, start, size });
        }
        previous = Some(index);
        let entry = Entry::parse(logged.entry.as_bytes())
            .map_err(|source| HistoryError::Malformed { index, source })?;
        if entry.body().supplier != *supplier {
            return Err(HistoryError::OtherSupplier {
                index,
                supplier: entry.body().supplier.clone(),
            });
        }
        if !entry.signature_is_valid() {
            return Err(HistoryError::BadSignature { index });
        }
        check_included(logged, &entry, checkpoint, limits)?;
        out.push(HistoryEntry { index, entry });
    }
    if let Some(next) = resp.next {
        // After the last index; after `start` on an empty page, which must still move forward
        // or a client following `next` would ask for the same page forever.
        let after = previous.unwrap_or(start);
        if next <= after || next >= size {
            return Err(HistoryError::BadNext { next, after, size });
        }
    }
    Ok(out)
}

fn check_included(
    logged: &LoggedEntry,
    entry: &Entry,
    checkpoint: &VerifiedCheckpoint,
    limits: &Limits,
) -> Result<(), HistoryError> {
    check_logged_inclusion(logged, entry, checkpoint, limits).map_err(|e| match e {
        ProofFailure::Shape(w) => HistoryError::Proof(w),
        ProofFailure::NotIncluded(source) => HistoryError::NotIncluded {
            index: logged.index,
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Digest512, EntryBody, Event, GitCommit};
    use crate::keys::{KeyPair, Signature};
    use crate::merkle::{Blake2b256, MemoryStore, prove_inclusion, root_at};
    use crate::names::{ChannelName, PackageName, Version};
    use crate::protocol::Context;
    use crate::wire::{Checkpoint, Signed, TreeHash, WIRE_VERSION, verify_checkpoint};

    fn kp(seed: u8) -> KeyPair {
        KeyPair::from_seed(&[seed; 32]).unwrap()
    }
    fn sup(s: &str) -> SupplierName {
        SupplierName::parse(s).unwrap()
    }
    fn signed(supplier: &str, by: &KeyPair, event: Event) -> Entry {
        Entry::sign(EntryBody::new(sup(supplier), by.public(), event), by).unwrap()
    }
    fn master(key: &KeyPair) -> Event {
        Event::MasterKey {
            public_key: key.public(),
            derivation: None,
        }
    }
    fn release(version: &str, d: u8) -> Event {
        Event::Release {
            package: PackageName::parse("hello").unwrap(),
            version: Version::parse(version).unwrap(),
            size: 100 + u64::from(d),
            digest: Digest512([d; 64]),
            commit: GitCommit::parse(&"ab".repeat(20)).unwrap(),
            signature: Signature::from_bytes([d; 64]),
            rollout: None,
        }
    }
    /// `body ‖ \n ‖ signature` of two different entries: parses, and its signature is wrong.
    fn with_signature_of(body_of: &Entry, signature_of: &Entry) -> String {
        let body = std::str::from_utf8(body_of.body_bytes()).unwrap();
        format!("{body}\n{}", signature_of.signature().to_hex())
    }

    /// A log of two suppliers, interleaved: `acme` at 0, 2, 4, 5, 7 and `bolt` at 1, 3, 6; plus,
    /// when `forged` is given, that text appended as the last leaf (a leaf the tree really has,
    /// so only its signature can be what is wrong with it).
    struct World {
        leaves: Vec<String>,
        tree: MemoryStore,
    }

    const ACME: [u64; 5] = [0, 2, 4, 5, 7];

    /// Makes the text of an extra leaf from the honest entries.
    type Forge = fn(&[Entry]) -> String;

    impl World {
        fn new(forged: Option<Forge>) -> Self {
            let (a, b) = (kp(1), kp(2));
            let entries = vec![
                signed("acme", &a, master(&a)),
                signed("bolt", &b, master(&b)),
                signed("acme", &a, release("1.0.0", 1)),
                signed("bolt", &b, release("1.0.0", 2)),
                signed("acme", &a, release("1.1.0", 3)),
                signed("acme", &a, release("1.2.0", 4)),
                signed("bolt", &b, release("2.0.0", 5)),
                signed("acme", &a, release("2.0.0", 6)),
            ];
            let mut leaves: Vec<String> = entries
                .iter()
                .map(|e| String::from_utf8(e.as_bytes().to_vec()).unwrap())
                .collect();
            if let Some(forge) = forged {
                leaves.push(forge(&entries));
            }
            let mut tree = MemoryStore::new();
            for l in &leaves {
                tree.append(&Blake2b256, l.as_bytes()).unwrap();
            }
            Self { leaves, tree }
        }

        fn size(&self) -> u64 {
            self.leaves.len() as u64
        }

        fn checkpoint(&self) -> VerifiedCheckpoint {
            let channel = kp(9);
            let cp = Checkpoint {
                v: WIRE_VERSION,
                origin: ChannelName::parse("demo").unwrap(),
                size: self.size(),
                root: TreeHash(root_at(&Blake2b256, self.size(), &self.tree).unwrap()),
                time: 1_700_000_000,
            };
            let signed = Signed::sign(&channel, Context::Checkpoint, &cp);
            verify_checkpoint(&signed, &channel.public(), None, &Limits::default()).unwrap()
        }

        fn logged(&self, index: u64) -> LoggedEntry {
            let proof = prove_inclusion(&Blake2b256, index, self.size(), &self.tree).unwrap();
            LoggedEntry {
                index,
                entry: self.leaves[index as usize].clone(),
                path: proof.hashes().iter().copied().map(TreeHash).collect(),
            }
        }

        /// The honest answer for `supplier` with these indices and `next`.
        fn answer(&self, supplier: &str, indices: &[u64], next: Option<u64>) -> Resp {
            SupplierHistoryResponse {
                supplier: sup(supplier),
                size: self.size(),
                entries: indices.iter().map(|i| self.logged(*i)).collect(),
                next,
                completeness: COMPLETENESS_ASSERTED.into(),
            }
        }

        fn check(&self, resp: &Resp, start: u64) -> Result<Vec<HistoryEntry>, HistoryError> {
            verify_supplier_history(
                resp,
                &self.checkpoint(),
                &sup("acme"),
                start,
                &Limits::default(),
            )
        }

        fn honest(&self) -> Resp {
            self.answer("acme", &ACME, None)
        }
    }

    type Resp = SupplierHistoryResponse;

    #[test]
    fn an_honest_history_is_accepted_whole_and_in_pages() {
        let w = World::new(None);
        let got = w.check(&w.honest(), 0).unwrap();
        assert_eq!(got.iter().map(|e| e.index).collect::<Vec<_>>(), ACME);
        for e in &got {
            assert_eq!(e.entry.as_bytes(), w.leaves[e.index as usize].as_bytes());
        }
        // Two pages: 0, 2 then from 4 on.
        let first = w.answer("acme", &[0, 2], Some(4));
        assert_eq!(w.check(&first, 0).unwrap().len(), 2);
        let second = w.answer("acme", &[4, 5, 7], None);
        assert_eq!(w.check(&second, 4).unwrap().len(), 3);
        // A page that starts after the supplier's last entry is empty and final.
        assert!(w.check(&w.answer("acme", &[], None), 8).unwrap().is_empty());
        // The wire form: `next` is always there, `null` at the end.
        let json = serde_json::to_value(w.honest()).unwrap();
        assert_eq!(json["next"], serde_json::Value::Null);
        assert_eq!(json["completeness"], "asserted");
        let back: Resp = serde_json::from_value(json).unwrap();
        assert_eq!(back, w.honest());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let w = World::new(None);
        let mut json = serde_json::to_value(w.honest()).unwrap();
        json["complete"] = true.into();
        assert!(serde_json::from_value::<Resp>(json).is_err());
    }

    #[test]
    fn an_answer_for_another_size_is_refused() {
        let w = World::new(None);
        let mut resp = w.honest();
        resp.size -= 1;
        assert!(matches!(
            w.check(&resp, 0),
            Err(HistoryError::WrongSize { got: 7, asked: 8 })
        ));
    }

    #[test]
    fn an_answer_about_another_supplier_is_refused() {
        let w = World::new(None);
        let resp = w.answer("bolt", &[1, 3, 6], None);
        assert!(matches!(
            w.check(&resp, 0),
            Err(HistoryError::WrongSupplier { got }) if got.as_str() == "bolt"
        ));
    }

    #[test]
    fn an_entry_of_another_supplier_is_refused() {
        let w = World::new(None);
        let resp = w.answer("acme", &[0, 1, 2], None);
        assert!(matches!(
            w.check(&resp, 0),
            Err(HistoryError::OtherSupplier { index: 1, supplier }) if supplier.as_str() == "bolt"
        ));
    }

    #[test]
    fn a_tampered_entry_is_refused() {
        let w = World::new(None);
        // A byte that breaks the parse.
        let mut resp = w.honest();
        resp.entries[1].entry.replace_range(0..1, "[");
        assert!(matches!(
            w.check(&resp, 0),
            Err(HistoryError::Malformed { index: 2, .. })
        ));
        // A byte of the body that keeps it parsing: the signature no longer verifies.
        let mut resp = w.honest();
        resp.entries[1].entry = resp.entries[1].entry.replacen("1.0.0", "1.0.9", 1);
        assert!(matches!(
            w.check(&resp, 0),
            Err(HistoryError::BadSignature { index: 2 })
        ));
        // Another real, validly signed entry of the supplier under this index's proof.
        let mut resp = w.honest();
        resp.entries[1].entry = w.leaves[4].clone();
        assert!(matches!(
            w.check(&resp, 0),
            Err(HistoryError::NotIncluded { index: 2, .. })
        ));
    }

    #[test]
    fn a_logged_entry_with_a_bad_signature_is_refused() {
        // The leaf really is in the tree (its proof verifies); only its signature is wrong.
        let w = World::new(Some(|e| with_signature_of(&e[7], &e[5])));
        let resp = w.answer("acme", &[0, 2, 4, 5, 7, 8], None);
        assert!(matches!(
            w.check(&resp, 0),
            Err(HistoryError::BadSignature { index: 8 })
        ));
        // Without it, the same log's history is accepted.
        assert!(w.check(&w.honest(), 0).is_ok());
    }

    #[test]
    fn a_tampered_path_hash_is_refused() {
        let w = World::new(None);
        let mut resp = w.honest();
        resp.entries[2].path[0].0[5] ^= 1;
        assert!(matches!(
            w.check(&resp, 0),
            Err(HistoryError::NotIncluded { index: 4, .. })
        ));
        // The right path under another index.
        let mut resp = w.honest();
        resp.entries[2].index = 3;
        resp.entries[3].index = 6;
        assert!(matches!(
            w.check(&resp, 0),
            Err(HistoryError::NotIncluded { index: 3, .. })
        ));
    }

    #[test]
    fn a_truncated_or_overlong_path_is_refused() {
        let w = World::new(None);
        let mut resp = w.honest();
        resp.entries[0].path.pop();
        assert!(matches!(
            w.check(&resp, 0),
            Err(HistoryError::NotIncluded { index: 0, .. })
        ));
        let mut resp = w.honest();
        resp.entries[0].path = vec![TreeHash([0; 32]); Limits::default().max_proof_hashes + 1];
        assert!(matches!(w.check(&resp, 0), Err(HistoryError::Proof(_))));
    }

    #[test]
    fn indices_out_of_order_or_repeated_are_refused() {
        let w = World::new(None);
        let resp = w.answer("acme", &[0, 4, 2], None);
        assert!(matches!(
            w.check(&resp, 0),
            Err(HistoryError::OutOfOrder {
                index: 2,
                previous: 4
            })
        ));
        let resp = w.answer("acme", &[0, 2, 2, 4], None);
        assert!(matches!(
            w.check(&resp, 0),
            Err(HistoryError::OutOfOrder {
                index: 2,
                previous: 2
            })
        ));
    }

    #[test]
    fn indices_outside_start_and_size_are_refused() {
        let w = World::new(None);
        // Below the start asked.
        let resp = w.answer("acme", &[2, 4, 5, 7], None);
        assert!(matches!(
            w.check(&resp, 3),
            Err(HistoryError::OutOfRange {
                index: 2,
                start: 3,
                size: 8
            })
        ));
        // At the size (with a proof for the last leaf, the best a liar has).
        let mut resp = w.honest();
        resp.entries.last_mut().unwrap().index = 8;
        assert!(matches!(
            w.check(&resp, 0),
            Err(HistoryError::OutOfRange { index: 8, .. })
        ));
        let mut resp = w.honest();
        resp.entries.last_mut().unwrap().index = u64::MAX;
        assert!(matches!(
            w.check(&resp, 0),
            Err(HistoryError::OutOfRange { .. })
        ));
    }

    #[test]
    fn too_many_entries_are_refused() {
        let w = World::new(None);
        let mut resp = w.honest();
        let one = resp.entries[0].clone();
        resp.entries = vec![one; MAX_HISTORY_PAGE + 1];
        assert!(matches!(
            w.check(&resp, 0),
            Err(HistoryError::TooManyEntries { got: 101 })
        ));
    }

    #[test]
    fn a_next_that_does_not_move_forward_or_leaves_the_tree_is_refused() {
        let w = World::new(None);
        let bad = |next: u64, indices: &[u64], start: u64| {
            let resp = w.answer("acme", indices, Some(next));
            assert!(
                matches!(w.check(&resp, start), Err(HistoryError::BadNext { .. })),
                "next {next} after {indices:?} from {start}"
            );
        };
        bad(2, &[0, 2], 0); // not after the last index
        bad(1, &[0, 2], 0); // before it
        bad(8, &[0, 2], 0); // at the size
        bad(u64::MAX, &[0, 2], 0);
        bad(3, &[], 3); // an empty page that would loop
        bad(2, &[], 3);
        // Forward and inside the tree is accepted, even from an empty page.
        assert!(w.check(&w.answer("acme", &[0, 2], Some(3)), 0).is_ok());
        assert!(w.check(&w.answer("acme", &[], Some(4)), 3).is_ok());
    }

    #[test]
    fn a_completeness_other_than_asserted_is_refused() {
        let w = World::new(None);
        for claim in ["proven", "", "Asserted", &"x".repeat(1000)] {
            let mut resp = w.honest();
            resp.completeness = claim.into();
            match w.check(&resp, 0) {
                Err(HistoryError::Completeness { got }) => assert!(got.len() <= 64),
                other => panic!("{claim:?}: {other:?}"),
            }
        }
    }
}
