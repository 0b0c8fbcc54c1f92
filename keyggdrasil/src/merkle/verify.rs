//! Proof verification (RFC 9162 §2.1.3.2 and §2.1.4.2), with no store.

use super::proof::check_len;
use super::{
    ConsistencyProof, Hash, InclusionProof, MAX_TREE_SIZE, MerkleError, TreeHasher, bit_len,
};

/// The number of hashes in the inclusion proof of leaf `index` in a tree of `size` leaves.
///
/// Useful to bound what a parser accepts before verification. Fails with
/// [`MerkleError::IndexOutOfRange`] unless `index < size`, and [`MerkleError::TreeTooLarge`] beyond
/// [`MAX_TREE_SIZE`].
pub fn inclusion_proof_len(index: u64, size: u64) -> Result<usize, MerkleError> {
    if size > MAX_TREE_SIZE {
        return Err(MerkleError::TreeTooLarge { size });
    }
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    // Below the level where the paths to `index` and to the last leaf part, there is one sibling per
    // level; above it, one left sibling per set bit (transparency-dev/merkle's decompInclProof).
    let inner = bit_len(index ^ (size - 1));
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    Ok((inner + border) as usize)
}

/// The number of hashes in the consistency proof from a tree of `old_size` leaves to one of
/// `new_size` leaves (0 when the sizes are equal).
///
/// Fails with [`MerkleError::EmptyOldTree`] for `old_size == 0`, [`MerkleError::OldSizeExceedsNew`]
/// for `old_size > new_size`, and [`MerkleError::TreeTooLarge`] beyond [`MAX_TREE_SIZE`].
pub fn consistency_proof_len(old_size: u64, new_size: u64) -> Result<usize, MerkleError> {
    check_consistency_sizes(old_size, new_size)?;
    if old_size == new_size {
        return Ok(0);
    }
    // The proof is the inclusion proof of the old tree's last leaf in the new tree, starting at the
    // level of the old tree's rightmost complete subtree, plus that subtree's root unless it is the
    // whole old tree (a power of two), whose root the verifier already has.
    let last = old_size - 1;
    let inner = bit_len(last ^ (new_size - 1));
    let border = last.checked_shr(inner).unwrap_or(0).count_ones();
    let shift = old_size.trailing_zeros();
    let seed = u32::from(!old_size.is_power_of_two());
    Ok((seed + inner.saturating_sub(shift) + border) as usize)
}

fn check_consistency_sizes(old_size: u64, new_size: u64) -> Result<(), MerkleError> {
    if new_size > MAX_TREE_SIZE {
        return Err(MerkleError::TreeTooLarge { size: new_size });
    }
    if old_size > new_size {
        return Err(MerkleError::OldSizeExceedsNew { old_size, new_size });
    }
    if old_size == 0 {
        return Err(MerkleError::EmptyOldTree);
    }
    Ok(())
}

/// Verifies that `leaf_hash` is leaf `index` of the tree of `size` leaves whose root is `root`, by the
/// algorithm of RFC 9162 §2.1.3.2, step by step.
///
/// Refuses, before any hashing, proofs of more than [`MAX_PROOF_HASHES`](super::MAX_PROOF_HASHES)
/// hashes ([`MerkleError::ProofTooLong`]), `index >= size` ([`MerkleError::IndexOutOfRange`]), and
/// sizes beyond [`MAX_TREE_SIZE`]. A proof of the wrong length fails with
/// [`MerkleError::WrongProofLength`] (where the RFC algorithm stops), one that leads elsewhere with
/// [`MerkleError::RootMismatch`].
///
/// It does not check that `root` is one to believe (signed, agreed by peers), nor that `leaf_hash`
/// was made from the entry the caller cares about: hash the entry with
/// [`TreeHasher::hash_leaf`] yourself.
pub fn verify_inclusion<H: TreeHasher + ?Sized>(
    hasher: &H,
    index: u64,
    size: u64,
    leaf_hash: &Hash,
    proof: &InclusionProof,
    root: &Hash,
) -> Result<(), MerkleError> {
    let path = proof.hashes();
    check_len(path.len())?;
    // Step 1 (and the size limit): also computes the honest length, for the error message only.
    let want = inclusion_proof_len(index, size)?;
    let wrong_length = MerkleError::WrongProofLength {
        got: path.len(),
        want,
    };
    // Steps 2 and 3. size >= 1 here, since index < size.
    let mut fnode = index;
    let mut snode = size - 1;
    let mut r = *leaf_hash;
    // Step 4.
    for p in path {
        // 4a: the path is longer than the tree is high.
        if snode == 0 {
            return Err(wrong_length);
        }
        // 4b.
        if fnode & 1 == 1 || fnode == snode {
            r = hasher.hash_children(p, &r);
            // Skip the levels where this node is the last one and has no right sibling.
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = hasher.hash_children(&r, p);
        }
        // 4c.
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    if snode != 0 {
        return Err(wrong_length);
    }
    if r != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `old_size` leaves with root `old_root` is a prefix of the tree of
/// `new_size` leaves with root `new_root`, by the algorithm of RFC 9162 §2.1.4.2, step by step.
///
/// RFC 9162 defines the check for `0 < old_size < new_size`. Outside that range this function does
/// what transparency-dev/merkle does: equal sizes need an empty proof and equal roots (else
/// [`MerkleError::EqualSizesDifferentRoots`]: evidence of a fork if both roots were signed by one
/// log); `old_size == 0` is refused with [`MerkleError::EmptyOldTree`], since there is nothing to
/// check; `old_size > new_size` with [`MerkleError::OldSizeExceedsNew`]. Proofs of more than
/// [`MAX_PROOF_HASHES`](super::MAX_PROOF_HASHES) hashes are refused before any hashing. A proof of the
/// wrong length fails with [`MerkleError::WrongProofLength`], one that does not reproduce the roots
/// with [`MerkleError::OldRootMismatch`] or [`MerkleError::NewRootMismatch`].
///
/// It does not check that either root is one to believe; it only ties the two together.
pub fn verify_consistency<H: TreeHasher + ?Sized>(
    hasher: &H,
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &ConsistencyProof,
) -> Result<(), MerkleError> {
    let path = proof.hashes();
    check_len(path.len())?;
    let want = consistency_proof_len(old_size, new_size)?;
    let wrong_length = MerkleError::WrongProofLength {
        got: path.len(),
        want,
    };
    if old_size == new_size {
        if !path.is_empty() {
            return Err(wrong_length);
        }
        if old_root != new_root {
            return Err(MerkleError::EqualSizesDifferentRoots);
        }
        return Ok(());
    }
    // From here 0 < old_size < new_size, as RFC 9162 §2.1.4.2 requires.
    // Step 1.
    let Some((head, tail)) = path.split_first() else {
        return Err(wrong_length);
    };
    // Steps 2 and 5: if old_size is a power of two, the path is old_root followed by the proof;
    // fr and sr start at the first element of that path.
    let (first, rest) = if old_size.is_power_of_two() {
        (old_root, path)
    } else {
        (head, tail)
    };
    // Step 3.
    let mut fnode = old_size - 1;
    let mut snode = new_size - 1;
    // Step 4.
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    let mut fr = *first;
    let mut sr = *first;
    // Step 6.
    for c in rest {
        // 6a: the path is longer than the tree is high.
        if snode == 0 {
            return Err(wrong_length);
        }
        // 6b.
        if fnode & 1 == 1 || fnode == snode {
            fr = hasher.hash_children(c, &fr);
            sr = hasher.hash_children(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = hasher.hash_children(&sr, c);
        }
        // 6c.
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode != 0 {
        return Err(wrong_length);
    }
    if fr != *old_root {
        return Err(MerkleError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(MerkleError::NewRootMismatch);
    }
    Ok(())
}
