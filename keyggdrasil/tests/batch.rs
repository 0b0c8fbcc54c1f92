//! `batch`: the worked example of docs/protocol.md ("Batched freshness answers") byte for byte,
//! every index of batches of 1 to 9 nonces (odd sizes, a batch of one), and a negative test
//! for each way an answer can be wrong: a path for another nonce, a wrong index, a batch root
//! the signature does not cover, a reused batch, another key or context, a stale time, sizes
//! out of range, an oversized path.
#![forbid(unsafe_code)]

use keyggdrasil::batch::{
    BatchError, BatchHasher, BatchHead, BatchTree, BatchedAnswer, MAX_BATCH, verify_batched,
};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::limits::Limits;
use keyggdrasil::merkle::{Blake2b256, TreeHasher};
use keyggdrasil::names::ChannelName;
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{Nonce, Signed, TreeHash, WIRE_VERSION};

const NOW: u64 = 1_800_000_000;

fn key() -> KeyPair {
    KeyPair::from_seed(&[42; 32]).unwrap()
}
fn origin() -> ChannelName {
    ChannelName::parse("plugins.example.org").unwrap()
}
fn nonce(i: u8) -> Nonce {
    Nonce([i; 32])
}

fn head(tree: &BatchTree) -> BatchHead {
    BatchHead {
        v: WIRE_VERSION,
        origin: origin(),
        time: NOW,
        size: 7,
        root: TreeHash([0xee; 32]),
        batch_size: tree.len(),
        batch_root: TreeHash(tree.root()),
    }
}

fn answers(n: u8) -> (Vec<Nonce>, Vec<BatchedAnswer>) {
    let nonces: Vec<Nonce> = (0..n).map(nonce).collect();
    let tree = BatchTree::new(&nonces).unwrap();
    let signed = Signed::sign(&key(), Context::ChannelBatch, &head(&tree));
    let answers = (0..u64::from(n))
        .map(|i| BatchedAnswer {
            head: signed.clone(),
            index: i,
            path: tree.path(i).unwrap(),
        })
        .collect();
    (nonces, answers)
}

fn verify(a: &BatchedAnswer, n: &Nonce) -> Result<keyggdrasil::batch::VerifiedBatch, BatchError> {
    verify_batched(a, &key().public(), &origin(), n, NOW, &Limits::default())
}

fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_worked_example_of_the_protocol_document() {
    let nonces = [nonce(0), nonce(1), nonce(2)];
    let tree = BatchTree::new(&nonces).unwrap();
    let l: Vec<_> = nonces.iter().map(|n| BatchHasher.hash_leaf(&n.0)).collect();
    // leaf = BLAKE2b-256(0x10 ‖ nonce); node = BLAKE2b-256(0x11 ‖ left ‖ right); the RFC 6962
    // shape: root = node(node(l0, l1), l2).
    let n01 = BatchHasher.hash_children(&l[0], &l[1]);
    assert_eq!(tree.root(), BatchHasher.hash_children(&n01, &l[2]));
    let expected = include_str!("../../fixtures/batch/worked-example.txt");
    let got = format!(
        "leaf0 {}\nleaf1 {}\nleaf2 {}\nnode01 {}\nbatch_root {}\npath0 {} {}\npath2 {}\n",
        hex(&l[0]),
        hex(&l[1]),
        hex(&l[2]),
        hex(&n01),
        hex(&tree.root()),
        hex(&tree.path(0).unwrap()[0].0),
        hex(&tree.path(0).unwrap()[1].0),
        hex(&tree.path(2).unwrap()[0].0),
    );
    assert_eq!(got, expected);
    // The prefixes keep batch hashes apart from log hashes.
    assert_ne!(
        BatchHasher.hash_leaf(&nonces[0].0),
        Blake2b256.hash_leaf(&nonces[0].0)
    );
}

#[test]
fn every_nonce_of_batches_of_one_to_nine_verifies_at_its_index_only() {
    for n in 1..=9u8 {
        let (nonces, answers) = answers(n);
        for (i, a) in answers.iter().enumerate() {
            let v = verify(a, &nonces[i]).unwrap();
            assert_eq!((v.size(), v.root().0, v.time()), (7, [0xee; 32], NOW));
            // Another site's nonce with this path, this nonce at another index.
            for (j, other) in nonces.iter().enumerate() {
                if j != i {
                    assert!(
                        matches!(verify(a, other), Err(BatchError::NotInBatch(_))),
                        "batch {n}: path {i} passed for nonce {j}"
                    );
                    let moved = BatchedAnswer {
                        index: j as u64,
                        ..a.clone()
                    };
                    assert!(verify(&moved, &nonces[i]).is_err(), "batch {n}: {i} at {j}");
                }
            }
        }
    }
    // A batch of one: no path, the root is the leaf.
    let (nonces, answers) = answers(1);
    assert!(answers[0].path.is_empty());
    assert!(verify(&answers[0], &nonces[0]).is_ok());
}

#[test]
fn a_batch_root_the_signature_does_not_cover_is_refused() {
    let (nonces, answers) = answers(4);
    let a = &answers[1];
    // A head with another batch root (for a tree holding an attacker's nonce), under the old
    // signature.
    let mut head: BatchHead = serde_json::from_str(&a.head.payload).unwrap();
    let evil = BatchTree::new(&[nonce(1), nonce(99)]).unwrap();
    head.batch_root = TreeHash(evil.root());
    head.batch_size = 2;
    let forged = BatchedAnswer {
        head: Signed::from_parts(serde_json::to_string(&head).unwrap(), a.head.signature),
        index: 0,
        path: evil.path(0).unwrap(),
    };
    assert!(matches!(
        verify(&forged, &nonces[1]),
        Err(BatchError::Wire(_))
    ));
    // Signed by another key, or by the right key under another context.
    let tree = BatchTree::new(&nonces).unwrap();
    let other_key = BatchedAnswer {
        head: Signed::sign(
            &KeyPair::from_seed(&[7; 32]).unwrap(),
            Context::ChannelBatch,
            &head_of(&tree),
        ),
        ..a.clone()
    };
    assert!(matches!(
        verify(&other_key, &nonces[1]),
        Err(BatchError::Wire(_))
    ));
    let other_context = BatchedAnswer {
        head: Signed::sign(&key(), Context::Checkpoint, &head_of(&tree)),
        ..a.clone()
    };
    assert!(matches!(
        verify(&other_context, &nonces[1]),
        Err(BatchError::Wire(_))
    ));
}

fn head_of(tree: &BatchTree) -> BatchHead {
    head(tree)
}

#[test]
fn a_reused_batch_does_not_answer_a_new_nonce() {
    let (_, answers) = answers(8);
    // The same answer, replayed to a site that sent a fresh nonce.
    for a in &answers {
        assert!(matches!(
            verify(a, &Nonce::generate()),
            Err(BatchError::NotInBatch(_))
        ));
    }
}

#[test]
fn stale_times_other_origins_and_bad_sizes_are_refused() {
    let nonces = [nonce(3), nonce(4), nonce(5)];
    let tree = BatchTree::new(&nonces).unwrap();
    let answer_with = |h: &BatchHead, index: u64| BatchedAnswer {
        head: Signed::sign(&key(), Context::ChannelBatch, h),
        index,
        path: tree.path(index.min(2)).unwrap(),
    };
    let good = head(&tree);
    assert!(verify(&answer_with(&good, 1), &nonces[1]).is_ok());
    let stale = BatchHead {
        time: NOW - 2 * 86_400,
        ..good.clone()
    };
    assert!(matches!(
        verify(&answer_with(&stale, 1), &nonces[1]),
        Err(BatchError::Wire(_))
    ));
    let elsewhere = BatchHead {
        origin: ChannelName::parse("other.example.org").unwrap(),
        ..good.clone()
    };
    assert!(matches!(
        verify(&answer_with(&elsewhere, 1), &nonces[1]),
        Err(BatchError::Wire(_))
    ));
    let version = BatchHead {
        v: 9,
        ..good.clone()
    };
    assert!(matches!(
        verify(&answer_with(&version, 1), &nonces[1]),
        Err(BatchError::Wire(_))
    ));
    for batch_size in [0, MAX_BATCH + 1] {
        let h = BatchHead {
            batch_size,
            ..good.clone()
        };
        assert!(matches!(
            verify(&answer_with(&h, 1), &nonces[1]),
            Err(BatchError::BatchSize(_))
        ));
    }
    assert!(matches!(
        verify(&answer_with(&good, 3), &nonces[1]),
        Err(BatchError::Index {
            index: 3,
            batch_size: 3
        })
    ));
    let mut long = answer_with(&good, 1);
    long.path = vec![TreeHash([1; 32]); Limits::default().max_proof_hashes + 1];
    assert!(matches!(
        verify(&long, &nonces[1]),
        Err(BatchError::Wire(_))
    ));
    // A path of the wrong length for the batch size.
    let mut short = answer_with(&good, 1);
    short.path.pop();
    assert!(matches!(
        verify(&short, &nonces[1]),
        Err(BatchError::NotInBatch(_))
    ));
}

#[test]
fn a_batch_is_one_to_max_batch_nonces() {
    assert!(matches!(BatchTree::new(&[]), Err(BatchError::BatchSize(0))));
    let tree = BatchTree::new(&[nonce(1)]).unwrap();
    assert!(matches!(tree.path(1), Err(BatchError::Index { .. })));
    assert!(!tree.is_empty());
}

#[test]
fn the_answer_refuses_unknown_fields() {
    let (_, answers) = answers(2);
    let mut v = serde_json::to_value(&answers[0]).unwrap();
    v["extra"] = serde_json::json!(true);
    assert!(serde_json::from_value::<BatchedAnswer>(v).is_err());
}

/// The level-by-level tree is the RFC 6962 tree: same root and same audit paths as the log's
/// own Merkle code (`MemoryStore` + `prove_inclusion`, checked against other people's vectors)
/// run with the batch hasher, for every batch size up to 300 and every index.
#[test]
fn the_batch_tree_is_the_rfc6962_tree_for_every_size_up_to_300() {
    use keyggdrasil::batch::BatchHasher;
    use keyggdrasil::merkle::{MemoryStore, prove_inclusion};
    let nonces: Vec<Nonce> = (0..300u32)
        .map(|i| {
            let mut n = [0u8; 32];
            n[..4].copy_from_slice(&i.to_be_bytes());
            Nonce(n)
        })
        .collect();
    let mut store = MemoryStore::new();
    for k in 1..=nonces.len() {
        store.append(&BatchHasher, &nonces[k - 1].0).unwrap();
        let tree = BatchTree::new(&nonces[..k]).unwrap();
        assert_eq!(tree.root(), store.root(&BatchHasher).unwrap(), "size {k}");
        for i in 0..k as u64 {
            let expected = prove_inclusion(&BatchHasher, i, k as u64, &store).unwrap();
            let got: Vec<_> = tree.path(i).unwrap().into_iter().map(|h| h.0).collect();
            assert_eq!(got, expected.hashes(), "size {k}, index {i}");
        }
        assert!(tree.path(k as u64).is_err());
    }
}

/// A batch head is fork evidence like any signed statement: parsed without its time (an old
/// head stays evidence), refused under another key or for another channel, and two heads of
/// one size with different roots are a contradiction anybody can check.
#[test]
fn a_batch_head_is_a_statement_of_its_own_kind_in_fork_evidence() {
    use keyggdrasil::evidence::{
        Contradiction, EvidenceError, StatementKind, find_contradiction, parse_statement,
    };
    let tree = BatchTree::new(&[nonce(1)]).unwrap();
    let mut old = head(&tree);
    old.time = 1; // decades old: still a statement about size 7
    let signed = Signed::sign(&key(), Context::ChannelBatch, &old);
    let s = parse_statement(&signed, &origin(), &key().public(), 1 << 16).unwrap();
    assert_eq!(s.kind, StatementKind::Batch);
    assert_eq!((s.since, s.size, s.root), (7, 7, [0xee; 32]));
    assert!(s.leaves.is_empty());

    let other_key = KeyPair::from_seed(&[43; 32]).unwrap();
    assert!(matches!(
        parse_statement(&signed, &origin(), &other_key.public(), 1 << 16),
        Err(EvidenceError::NotChannelSigned(_))
    ));
    let elsewhere = ChannelName::parse("other.example.org").unwrap();
    assert!(matches!(
        parse_statement(&signed, &elsewhere, &key().public(), 1 << 16),
        Err(EvidenceError::Malformed(_))
    ));

    let mut forked = head(&tree);
    forked.root = TreeHash([0xdd; 32]);
    let t = parse_statement(
        &Signed::sign(&key(), Context::ChannelBatch, &forked),
        &origin(),
        &key().public(),
        1 << 16,
    )
    .unwrap();
    assert!(matches!(
        find_contradiction(&[s, t]),
        Some(Contradiction::SameSizeDifferentRoots { size: 7 })
    ));
}
