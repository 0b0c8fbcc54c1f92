//! Merkle proof verifiers with arbitrary proofs, sizes and indexes.
//!
//! The target builds a real tree of 1 to 16 leaves from the input, then asks the verifiers to
//! check fuzzer-made proofs. Proof hashes, leaf hashes and old roots are either raw bytes or
//! picked from the hashes of the real tree (its leaves, complete subtrees, roots at every size and
//! the honest proof hashes), so that forgeries built from real pieces are tried too.
//!
//! Properties, besides never panicking on any index or size (up to `u64::MAX`):
//! - completeness: honest proofs verify, with the length `inclusion_proof_len` /
//!   `consistency_proof_len` announce;
//! - soundness: an inclusion proof accepted against the real root of a size is exactly the honest
//!   proof, for the real leaf hash at that index; a consistency proof accepted against the real
//!   new root is exactly the honest proof, and the old root it accepted is the real old root.
#![no_main]

use arbitrary::Arbitrary;
use keyggdrasil::merkle::{
    self, Blake2b256, ConsistencyProof, Hash, InclusionProof, MemoryStore, TreeHasher,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Pick {
    /// Raw bytes.
    Raw([u8; 32]),
    /// A hash of the real tree (index modulo the pool size).
    Real(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Leaf data; the tree has 1 to 16 leaves, leaf `i` is `leaves[i]` (or `[i]` if missing).
    leaf_count: u8,
    leaves: Vec<Vec<u8>>,
    /// Raw index and sizes, used unreduced for the no-panic checks and reduced to the tree.
    index: u64,
    size: u64,
    old_size: u64,
    leaf: Pick,
    old_root: Pick,
    new_root: Pick,
    path: Vec<Pick>,
    /// Use the honest proof with one element replaced (`tamper` = (position, replacement)).
    tamper: Option<(u8, Pick)>,
}

fn pick(p: &Pick, pool: &[Hash]) -> Hash {
    match p {
        Pick::Raw(h) => *h,
        Pick::Real(i) => pool[usize::from(*i) % pool.len()],
    }
}

fuzz_target!(|input: Input| {
    let h = Blake2b256;
    let n = u64::from(input.leaf_count % 16) + 1;
    let mut store = MemoryStore::new();
    let mut leaf_hashes = Vec::new();
    for i in 0..n {
        let data = input
            .leaves
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| vec![i as u8]);
        leaf_hashes.push(h.hash_leaf(&data));
        store.append(&h, &data).expect("16 leaves fit");
    }
    // roots[s] is the real root at size s (roots[0] is the empty tree's).
    let roots: Vec<Hash> = (0..=n)
        .map(|s| merkle::root_at(&h, s, &store).expect("size within the store"))
        .collect();
    for s in 1..=n {
        let mem = merkle::root_from_leaf_hashes(&h, &leaf_hashes[..s as usize]).expect("small");
        assert_eq!(
            mem, roots[s as usize],
            "in-memory root differs from the stored one"
        );
    }
    assert_eq!(roots[0], h.empty_root());

    let size = input.size % n + 1;
    let index = input.index % size;
    let old = input.old_size % size + 1;
    let honest_incl = merkle::prove_inclusion(&h, index, size, &store).expect("honest proof");
    let honest_cons = merkle::prove_consistency(&h, old, size, &store).expect("honest proof");

    let mut pool: Vec<Hash> = store.stored_hashes().to_vec();
    pool.extend_from_slice(&roots);
    pool.extend_from_slice(honest_incl.hashes());
    pool.extend_from_slice(honest_cons.hashes());

    // Completeness.
    assert_eq!(
        merkle::inclusion_proof_len(index, size).ok(),
        Some(honest_incl.hashes().len())
    );
    assert_eq!(
        merkle::consistency_proof_len(old, size).ok(),
        Some(honest_cons.hashes().len())
    );
    merkle::verify_inclusion(
        &h,
        index,
        size,
        &leaf_hashes[index as usize],
        &honest_incl,
        &roots[size as usize],
    )
    .expect("an honest inclusion proof verifies");
    merkle::verify_consistency(
        &h,
        old,
        size,
        &roots[old as usize],
        &roots[size as usize],
        &honest_cons,
    )
    .expect("an honest consistency proof verifies");

    // The fuzzer's proof: free-form, or the honest one with one element replaced.
    let (incl_hashes, cons_hashes) = match &input.tamper {
        Some((pos, with)) => {
            let mut a = honest_incl.hashes().to_vec();
            let mut b = honest_cons.hashes().to_vec();
            let x = pick(with, &pool);
            if !a.is_empty() {
                let len = a.len();
                a[usize::from(*pos) % len] = x;
            }
            if !b.is_empty() {
                let len = b.len();
                b[usize::from(*pos) % len] = x;
            }
            (a, b)
        }
        None => {
            let v: Vec<Hash> = input.path.iter().map(|p| pick(p, &pool)).collect();
            (v.clone(), v)
        }
    };
    let leaf = pick(&input.leaf, &pool);
    let old_root = pick(&input.old_root, &pool);
    let new_root = pick(&input.new_root, &pool);

    let (Ok(incl), Ok(cons)) = (
        InclusionProof::new(incl_hashes.clone()),
        ConsistencyProof::new(cons_hashes.clone()),
    ) else {
        assert!(incl_hashes.len() > merkle::MAX_PROOF_HASHES);
        return;
    };

    // No panic for any raw index and sizes, whatever the verdict.
    let _ = merkle::verify_inclusion(&h, input.index, input.size, &leaf, &incl, &new_root);
    let _ = merkle::verify_consistency(&h, input.old_size, input.size, &old_root, &new_root, &cons);
    let _ = merkle::inclusion_proof_len(input.index, input.size);
    let _ = merkle::consistency_proof_len(input.old_size, input.size);

    // Soundness against the real root at `size`. The index is the raw one: an out-of-range
    // index must never be accepted either.
    let real = roots[size as usize];
    let raw_index = if input.index.is_multiple_of(3) {
        input.index
    } else {
        index
    };
    if merkle::verify_inclusion(&h, raw_index, size, &leaf, &incl, &real).is_ok() {
        assert!(raw_index < size, "accepted an index outside the tree");
        assert_eq!(
            leaf, leaf_hashes[raw_index as usize],
            "accepted a leaf not in the tree"
        );
        let honest = merkle::prove_inclusion(&h, raw_index, size, &store).expect("honest proof");
        assert_eq!(
            incl.hashes(),
            honest.hashes(),
            "accepted a proof that is not the honest one"
        );
    }
    let raw_old = if input.old_size.is_multiple_of(3) {
        input.old_size
    } else {
        old
    };
    if merkle::verify_consistency(&h, raw_old, size, &old_root, &real, &cons).is_ok() {
        assert!(raw_old >= 1 && raw_old <= size);
        assert_eq!(
            old_root, roots[raw_old as usize],
            "accepted a wrong old root"
        );
        let honest = merkle::prove_consistency(&h, raw_old, size, &store).expect("honest proof");
        assert_eq!(
            cons.hashes(),
            honest.hashes(),
            "accepted a proof that is not the honest one"
        );
    }
});
