//! The stored tree against the RFC 6962 definitions, written out naively over leaves in memory.
//!
//! - `exhaustive`: every size up to 130, every leaf index and every old size: roots, proofs and
//!   proof lengths equal the naive definitions, and the proofs verify.
//! - `random`: the same for random sizes up to a few thousand (proptest), and no panics on any input.
//! - `costs`: counted store reads show append, roots and proofs cost O(log n).
//! - `api`: stored-hash layout, store errors and limits as seen by a binary using the crate.

use std::cell::Cell;

use keyggdrasil::merkle::{
    Blake2b256, CompactRange, ConsistencyProof, Hash, HashStore, InclusionProof, MAX_PROOF_HASHES,
    MAX_TREE_SIZE, MemoryStore, MerkleError, StoreError, StoredIndex, TreeHasher, append_entry,
    append_leaf_hash, consistency_proof_len, inclusion_proof_len, prove_consistency,
    prove_inclusion, root_at, root_from_leaf_hashes, stored_hash_count, verify_consistency,
    verify_inclusion,
};

const H: Blake2b256 = Blake2b256;

/// RFC 6962 §2.1 `MTH`, recursively, straight from the definition.
fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => H.empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            H.hash_children(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

/// The largest power of two strictly smaller than `n` (n >= 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 6962 §2.1.1 `PATH(m, D[n])`.
fn naive_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split(n);
    let mut out;
    if m < k {
        out = naive_path(m, &leaves[..k]);
        out.push(naive_root(&leaves[k..]));
    } else {
        out = naive_path(m - k, &leaves[k..]);
        out.push(naive_root(&leaves[..k]));
    }
    out
}

/// RFC 6962 §2.1.2 `SUBPROOF(m, D[n], b)`.
fn naive_subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if b {
            Vec::new()
        } else {
            vec![naive_root(leaves)]
        };
    }
    let k = split(n);
    let mut out;
    if m <= k {
        out = naive_subproof(m, &leaves[..k], b);
        out.push(naive_root(&leaves[k..]));
    } else {
        out = naive_subproof(m - k, &leaves[k..], false);
        out.push(naive_root(&leaves[..k]));
    }
    out
}

fn leaf(i: u64) -> Hash {
    H.hash_leaf(format!("leaf {i}").as_bytes())
}

fn build(size: u64) -> (MemoryStore, Vec<Hash>) {
    let mut store = MemoryStore::new();
    let mut leaves = Vec::new();
    for i in 0..size {
        leaves.push(leaf(i));
        store.append_leaf_hash(&H, leaf(i)).expect("append");
    }
    (store, leaves)
}

/// Checks everything about one (index or old size, size) pair against the naive definitions.
fn check_inclusion(store: &MemoryStore, leaves: &[Hash], index: u64, size: u64) {
    let n = size as usize;
    let root = naive_root(&leaves[..n]);
    let proof = prove_inclusion(&H, index, size, store).expect("prove inclusion");
    assert_eq!(
        proof.hashes(),
        naive_path(index as usize, &leaves[..n]),
        "{index}/{size}"
    );
    assert_eq!(
        inclusion_proof_len(index, size).ok(),
        Some(proof.hashes().len())
    );
    assert_eq!(
        verify_inclusion(&H, index, size, &leaves[index as usize], &proof, &root).ok(),
        Some(()),
        "{index}/{size}"
    );
}

fn check_consistency(store: &MemoryStore, leaves: &[Hash], old: u64, new: u64) {
    let (m, n) = (old as usize, new as usize);
    let (old_root, new_root) = (naive_root(&leaves[..m]), naive_root(&leaves[..n]));
    let proof = prove_consistency(&H, old, new, store).expect("prove consistency");
    assert_eq!(
        proof.hashes(),
        naive_subproof(m, &leaves[..n], true),
        "{old} -> {new}"
    );
    assert_eq!(
        consistency_proof_len(old, new).ok(),
        Some(proof.hashes().len())
    );
    assert_eq!(
        verify_consistency(&H, old, new, &old_root, &new_root, &proof).ok(),
        Some(()),
        "{old} -> {new}"
    );
}

mod exhaustive {
    use super::*;

    const N: u64 = 130;

    #[test]
    fn roots_at_every_size_equal_the_definition() {
        let (store, leaves) = build(N);
        for size in 0..=N {
            let want = naive_root(&leaves[..size as usize]);
            assert_eq!(root_at(&H, size, &store).ok(), Some(want), "size {size}");
            assert_eq!(
                root_from_leaf_hashes(&H, &leaves[..size as usize]).ok(),
                Some(want)
            );
        }
        assert_eq!(store.root(&H).ok(), Some(naive_root(&leaves)));
    }

    #[test]
    fn inclusion_proofs_for_every_leaf_of_every_size() {
        let (store, leaves) = build(N);
        for size in 1..=N {
            for index in 0..size {
                check_inclusion(&store, &leaves, index, size);
            }
        }
    }

    #[test]
    fn consistency_proofs_for_every_pair_of_sizes() {
        let (store, leaves) = build(N);
        for new in 1..=N {
            for old in 1..=new {
                check_consistency(&store, &leaves, old, new);
            }
        }
    }

    /// Appending one leaf at a time gives, at every size, exactly the stored hashes of a tree built
    /// from scratch to that size, and the layout's count.
    #[test]
    fn append_after_append_equals_from_scratch() {
        let (big, leaves) = build(N);
        let mut grown = MemoryStore::new();
        for size in 0..=N {
            let fresh = build(size).0;
            let count = stored_hash_count(size).expect("count") as usize;
            assert_eq!(fresh.stored_hashes().len(), count);
            assert_eq!(grown.stored_hashes(), fresh.stored_hashes(), "size {size}");
            assert_eq!(&big.stored_hashes()[..count], fresh.stored_hashes());
            assert_eq!(
                grown.root(&H).ok(),
                Some(naive_root(&leaves[..size as usize]))
            );
            if size < N {
                grown
                    .append_leaf_hash(&H, leaves[size as usize])
                    .expect("append");
            }
        }
    }

    /// A site's check: its stored log of `old` leaves plus the new entries, in memory, gives the same
    /// root as the stored tree of `new` leaves.
    #[test]
    fn compact_range_continues_a_stored_tree() {
        let (store, leaves) = build(N);
        for old in 0..=N {
            let mut range = CompactRange::from_store(old, &store).expect("load range");
            assert_eq!(range.size(), old);
            assert_eq!(range.root(&H), naive_root(&leaves[..old as usize]));
            for new in old..N {
                range.push(&H, leaves[new as usize]).expect("push");
            }
            assert_eq!(range.root(&H), naive_root(&leaves));
        }
    }

    #[test]
    fn entries_and_leaf_hashes_append_alike() {
        let mut a = MemoryStore::new();
        let mut b = MemoryStore::new();
        let mut range = CompactRange::new();
        for i in 0..40u64 {
            let entry = format!("entry {i}");
            assert_eq!(a.append(&H, entry.as_bytes()).ok(), Some(i));
            b.append_leaf_hash(&H, H.hash_leaf(entry.as_bytes()))
                .expect("append");
            range.push_entry(&H, entry.as_bytes()).expect("push");
            let c = append_entry(&H, i + 1, b"next", &a).expect("compute");
            let d = append_leaf_hash(&H, i + 1, H.hash_leaf(b"next"), &b).expect("compute");
            assert_eq!(c, d);
        }
        assert_eq!(a, b);
        assert_eq!(a.root(&H).ok(), Some(range.root(&H)));
    }
}

mod random {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn proofs_in_trees_of_random_size(size in 1u64..4000, a in any::<u64>(), b in any::<u64>()) {
            let (store, leaves) = build(size);
            let index = a % size;
            let old = 1 + b % size;
            check_inclusion(&store, &leaves, index, size);
            check_consistency(&store, &leaves, old, size);
            prop_assert_eq!(root_at(&H, size, &store).ok(), root_from_leaf_hashes(&H, &leaves).ok());
            prop_assert_eq!(root_at(&H, old, &store).ok(), Some(naive_root(&leaves[..old as usize])));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Untrusted sizes, indices and proofs never panic and never verify by accident.
        #[test]
        fn verifiers_refuse_garbage_without_panicking(
            index in prop_oneof![any::<u64>(), 0u64..70],
            size in prop_oneof![any::<u64>(), 0u64..70, Just(u64::MAX), Just(MAX_TREE_SIZE)],
            old in prop_oneof![any::<u64>(), 0u64..70],
            proof in proptest::collection::vec(any::<[u8; 32]>(), 0..=MAX_PROOF_HASHES),
            leaf in any::<[u8; 32]>(),
            root in any::<[u8; 32]>(),
        ) {
            let inclusion = InclusionProof::new(proof.clone()).expect("within the limit");
            prop_assert!(verify_inclusion(&H, index, size, &leaf, &inclusion, &root).is_err());
            let consistency = ConsistencyProof::new(proof).expect("within the limit");
            let result = verify_consistency(&H, old, size, &leaf, &root, &consistency);
            prop_assert!(result.is_err());
            let _ = inclusion_proof_len(index, size);
            let _ = consistency_proof_len(old, size);
        }

        /// Store-backed calls with absurd arguments fail cleanly.
        #[test]
        fn store_calls_refuse_absurd_arguments(index in any::<u64>(), size in any::<u64>(), old in any::<u64>()) {
            let (store, _) = build(5);
            let small = size % 6;
            prop_assert!(root_at(&H, small, &store).is_ok());
            if size > 5 {
                prop_assert!(root_at(&H, size, &store).is_err());
                prop_assert!(prove_inclusion(&H, index % size, size, &store).is_err());
                prop_assert!(prove_consistency(&H, old % size, size, &store).is_err());
                prop_assert!(CompactRange::from_store(size, &store).is_err());
            }
            prop_assert_eq!(prove_inclusion(&H, index, small, &store).is_ok(), index < small);
            let consistent = prove_consistency(&H, old, small, &store).is_ok();
            prop_assert_eq!(consistent, old >= 1 && old <= small);
            let _ = append_leaf_hash(&H, size, [0; 32], &store);
            let _ = stored_hash_count(size);
        }
    }
}

mod costs {
    use super::*;

    /// Counts the hashes read through it.
    struct Counting<'a> {
        inner: &'a MemoryStore,
        reads: Cell<u64>,
        batches: Cell<u64>,
    }

    impl<'a> Counting<'a> {
        fn new(inner: &'a MemoryStore) -> Self {
            Self {
                inner,
                reads: Cell::new(0),
                batches: Cell::new(0),
            }
        }

        fn take(&self) -> (u64, u64) {
            (self.reads.replace(0), self.batches.replace(0))
        }
    }

    impl HashStore for Counting<'_> {
        fn get(&self, index: StoredIndex) -> Result<Hash, StoreError> {
            self.reads.set(self.reads.get() + 1);
            self.inner.get(index)
        }

        fn get_many(&self, indexes: &[StoredIndex]) -> Result<Vec<Hash>, StoreError> {
            self.batches.set(self.batches.get() + 1);
            indexes.iter().map(|&i| self.get(i)).collect()
        }
    }

    /// At n = 100 000 (log₂ n ≈ 16.6), appends, roots and proofs read at most 2·17 + 2 hashes, in one
    /// batch: nothing close to the number of leaves.
    #[test]
    fn append_roots_and_proofs_read_log_n_hashes() {
        const N: u64 = 100_000;
        const LOG: u64 = 17; // ceil(log2(N))
        const BOUND: u64 = 2 * LOG + 2;
        let (store, _) = build(N);
        let counting = Counting::new(&store);
        let mut worst = [0u64; 4];
        // Sizes and indices chosen to hit long right edges and many set bits, plus a spread of others.
        let mut samples: Vec<u64> = vec![
            1, 2, 3, 4095, 4096, 65_535, 65_536, 65_537, 98_303, 99_999, N,
        ];
        samples.extend((1..N).step_by(997));
        for &s in &samples {
            let _ = append_leaf_hash(&H, s, [1; 32], &counting).expect("append");
            let (reads, batches) = counting.take();
            assert!(reads <= u64::from(s.trailing_ones()) && batches <= 1);
            worst[0] = worst[0].max(reads);

            let _ = root_at(&H, s, &counting).expect("root");
            let (reads, batches) = counting.take();
            assert_eq!(reads, u64::from(s.count_ones()));
            assert!(batches <= 1);
            worst[1] = worst[1].max(reads);

            let index = s - 1;
            for size in [N, s] {
                let _ = prove_inclusion(&H, index, size, &counting).expect("prove");
                let (reads, batches) = counting.take();
                assert!(
                    reads <= BOUND && batches <= 1,
                    "inclusion {index}/{size}: {reads}"
                );
                worst[2] = worst[2].max(reads);
            }

            let _ = prove_consistency(&H, s, N, &counting).expect("prove");
            let (reads, batches) = counting.take();
            assert!(
                reads <= BOUND && batches <= 1,
                "consistency {s} -> {N}: {reads}"
            );
            worst[3] = worst[3].max(reads);
        }
        // The worst case of the stored layout: the tree with all bits set.
        let (full, _) = build(131_071);
        let counting = Counting::new(&full);
        let _ = append_leaf_hash(&H, 131_071, [1; 32], &counting).expect("append");
        assert_eq!(counting.take().0, 17);
        let _ = prove_inclusion(&H, 0, 131_071, &counting).expect("prove");
        assert!(counting.take().0 <= BOUND);
        let _ = prove_consistency(&H, 1, 131_071, &counting).expect("prove");
        assert!(counting.take().0 <= BOUND);
        println!(
            "worst reads at n <= {N}: append {}, root {}, inclusion {}, consistency {}",
            worst[0], worst[1], worst[2], worst[3]
        );
        assert!(worst.iter().all(|&w| w <= BOUND));
    }
}

mod api {
    use super::*;

    #[test]
    fn new_hashes_say_where_to_write() {
        let (store, _) = build(7);
        let new = append_leaf_hash(&H, 7, leaf(7), &store).expect("append");
        assert_eq!(new.leaf_index(), 7);
        assert_eq!(new.new_size(), 8);
        // Leaf 7 completes subtrees at levels 1, 2 and 3.
        assert_eq!(new.hashes().len(), 4);
        assert_eq!(new.hashes()[0], leaf(7));
        assert_eq!(
            new.first_index().get(),
            stored_hash_count(7).expect("count")
        );
        let positions: Vec<u64> = new.iter().map(|(i, _)| i.get()).collect();
        assert_eq!(positions, vec![11, 12, 13, 14]);
        assert_eq!(
            StoredIndex::for_node(3, 0).map(StoredIndex::get).ok(),
            Some(14)
        );
        assert_eq!(stored_hash_count(8).ok(), Some(15));
        // The last new hash is the root of the 8-leaf tree.
        let (eight, leaves) = build(8);
        assert_eq!(new.hashes()[3], naive_root(&leaves));
        assert_eq!(eight.stored_hashes()[11..], new.hashes()[..]);
    }

    #[test]
    fn memory_store_refuses_hashes_for_another_size() {
        let (mut store, _) = build(5);
        let stale = append_leaf_hash(&H, 4, leaf(9), &store).expect("compute");
        let before = store.clone();
        assert!(matches!(
            store.apply(&stale),
            Err(MerkleError::Store(StoreError::OutOfOrder {
                expected: 8,
                got: 7
            }))
        ));
        assert_eq!(store, before);
        let fresh = append_leaf_hash(&H, 5, leaf(5), &store).expect("compute");
        assert!(store.apply(&fresh).is_ok());
        assert_eq!(store.size(), 6);
    }

    #[test]
    fn a_short_store_reports_the_missing_hash() {
        let (store, _) = build(5);
        assert!(matches!(
            root_at(&H, 6, &store),
            Err(MerkleError::Store(StoreError::Missing { .. }))
        ));
        assert!(matches!(
            prove_inclusion(&H, 0, 9, &store),
            Err(MerkleError::Store(StoreError::Missing { .. }))
        ));
        assert!(matches!(
            prove_consistency(&H, 2, 9, &store),
            Err(MerkleError::Store(StoreError::Missing { .. }))
        ));
        let e = root_at(&H, 6, &store).expect_err("short");
        assert_eq!(e.to_string(), "hash store failed");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("no stored hash at index 9"));
    }

    /// A store whose batch read answers with the wrong number of hashes is caught, not trusted.
    #[test]
    fn a_store_returning_too_few_hashes_is_caught() {
        struct Short;
        impl HashStore for Short {
            fn get(&self, _: StoredIndex) -> Result<Hash, StoreError> {
                Ok([0; 32])
            }
            fn get_many(&self, _: &[StoredIndex]) -> Result<Vec<Hash>, StoreError> {
                Ok(vec![[0; 32]])
            }
        }
        assert!(matches!(
            root_at(&H, 3, &Short),
            Err(MerkleError::Store(StoreError::WrongCount {
                requested: 2,
                returned: 1
            }))
        ));
        assert!(prove_inclusion(&H, 0, 7, &Short).is_err());
    }

    #[test]
    fn trait_objects_work() {
        let (store, leaves) = build(9);
        let hasher: &dyn TreeHasher = &H;
        let hashes: &dyn HashStore = &store;
        let root = root_at(hasher, 9, hashes).expect("root");
        let proof = prove_inclusion(hasher, 4, 9, hashes).expect("prove");
        assert!(verify_inclusion(hasher, 4, 9, &leaves[4], &proof, &root).is_ok());
    }

    #[test]
    fn limits() {
        assert!(matches!(
            stored_hash_count(MAX_TREE_SIZE + 1),
            Err(MerkleError::TreeTooLarge { .. })
        ));
        let store = MemoryStore::new();
        assert!(matches!(
            append_leaf_hash(&H, MAX_TREE_SIZE, [0; 32], &store),
            Err(MerkleError::TreeTooLarge { .. })
        ));
        assert!(matches!(
            root_at(&H, u64::MAX, &store),
            Err(MerkleError::TreeTooLarge { .. })
        ));
        assert!(InclusionProof::new(vec![[0; 32]; MAX_PROOF_HASHES]).is_ok());
        assert!(ConsistencyProof::new(vec![[0; 32]; MAX_PROOF_HASHES + 1]).is_err());
        // The longest honest proofs at the largest tree fit the limit.
        let longest = inclusion_proof_len(0, MAX_TREE_SIZE).expect("len");
        assert_eq!(longest, 62);
        let longest = consistency_proof_len(MAX_TREE_SIZE - 1, MAX_TREE_SIZE).expect("len");
        assert!(longest <= MAX_PROOF_HASHES);
        assert_eq!(
            inclusion_proof_len(MAX_TREE_SIZE - 1, MAX_TREE_SIZE).ok(),
            Some(62)
        );
        // Sizes and errors on the empty tree.
        assert_eq!(root_at(&H, 0, &store).ok(), Some(H.empty_root()));
        assert!(matches!(
            prove_inclusion(&H, 0, 0, &store),
            Err(MerkleError::IndexOutOfRange { index: 0, size: 0 })
        ));
        assert!(matches!(
            prove_consistency(&H, 0, 0, &store),
            Err(MerkleError::EmptyOldTree)
        ));
        assert!(matches!(
            prove_consistency(&H, 3, 2, &store),
            Err(MerkleError::OldSizeExceedsNew {
                old_size: 3,
                new_size: 2
            })
        ));
    }
}
