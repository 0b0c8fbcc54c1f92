//! Roots and proof generation from a [`HashStore`].

use super::range::{decompose_into, fold};
use super::store::read_many;
use super::{
    Hash, HashStore, MAX_PROOF_HASHES, MAX_TREE_SIZE, MerkleError, StoreError, TreeHasher,
    split_point,
};

/// An inclusion proof (RFC 9162 `inclusion_path`, RFC 6962 `PATH`): the sibling hashes from the
/// leaf up to the root.
///
/// It holds only the hashes; the leaf index and tree size it is for travel beside it and are passed to
/// [`verify_inclusion`](super::verify_inclusion). Holding one proves nothing until it is verified.
/// At most [`MAX_PROOF_HASHES`] hashes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InclusionProof {
    hashes: Vec<Hash>,
}

impl InclusionProof {
    /// Wraps proof hashes received from elsewhere (leaf end first).
    ///
    /// Refuses more than [`MAX_PROOF_HASHES`] with [`MerkleError::ProofTooLong`]; the length is
    /// otherwise checked against the tree only by the verifier.
    pub fn new(hashes: Vec<Hash>) -> Result<Self, MerkleError> {
        check_len(hashes.len())?;
        Ok(Self { hashes })
    }

    /// The proof hashes, leaf end first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The proof hashes, leaf end first, by value (to serialise them).
    pub fn into_hashes(self) -> Vec<Hash> {
        self.hashes
    }
}

/// A consistency proof (RFC 9162 `consistency_path`, RFC 6962 `PROOF`): the hashes that show a tree
/// of the old size is a prefix of the tree of the new size.
///
/// It holds only the hashes; both sizes and roots are passed to
/// [`verify_consistency`](super::verify_consistency). At most [`MAX_PROOF_HASHES`] hashes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsistencyProof {
    hashes: Vec<Hash>,
}

impl ConsistencyProof {
    /// Wraps proof hashes received from elsewhere, in RFC 6962 order.
    ///
    /// Refuses more than [`MAX_PROOF_HASHES`] with [`MerkleError::ProofTooLong`]; the length is
    /// otherwise checked against the sizes only by the verifier.
    pub fn new(hashes: Vec<Hash>) -> Result<Self, MerkleError> {
        check_len(hashes.len())?;
        Ok(Self { hashes })
    }

    /// The proof hashes, in RFC 6962 order.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The proof hashes by value (to serialise them).
    pub fn into_hashes(self) -> Vec<Hash> {
        self.hashes
    }
}

pub(super) fn check_len(len: usize) -> Result<(), MerkleError> {
    if len > MAX_PROOF_HASHES {
        return Err(MerkleError::ProofTooLong { len });
    }
    Ok(())
}

fn check_size(size: u64) -> Result<(), MerkleError> {
    if size > MAX_TREE_SIZE {
        return Err(MerkleError::TreeTooLarge { size });
    }
    Ok(())
}

/// The Merkle tree hashes of the leaf ranges `lo..hi`, in order, with a single batch read.
///
/// Every range is one RFC 6962 takes the hash of (a side of a split), so each is a handful of complete
/// subtrees: `popcount(hi − lo)` stored hashes, one for a complete subtree.
fn range_hashes<H, S>(
    hasher: &H,
    ranges: &[(u64, u64)],
    store: &S,
) -> Result<Vec<Hash>, MerkleError>
where
    H: TreeHasher + ?Sized,
    S: HashStore + ?Sized,
{
    let mut indexes = Vec::new();
    let mut counts = Vec::with_capacity(ranges.len());
    for &(lo, hi) in ranges {
        let before = indexes.len();
        decompose_into(lo, hi, &mut indexes)?;
        counts.push(indexes.len() - before);
    }
    let stored = read_many(store, &indexes)?;
    let mut rest = stored.as_slice();
    let mut out = Vec::with_capacity(ranges.len());
    for count in counts {
        let (subtrees, tail) = rest.split_at_checked(count).ok_or(StoreError::WrongCount {
            requested: indexes.len(),
            returned: stored.len(),
        })?;
        out.push(fold(hasher, subtrees));
        rest = tail;
    }
    Ok(out)
}

/// The root of the first `size` leaves of the stored tree (RFC 6962 `MTH(D[0:size])`).
///
/// Any size up to the store's current size works, so old roots can be recomputed at will. Reads
/// `popcount(size)` stored hashes (the complete subtrees) and hashes as many times less one; the empty
/// tree's root needs no read. Fails with [`MerkleError::TreeTooLarge`] beyond [`MAX_TREE_SIZE`], and
/// [`MerkleError::Store`] if the store holds fewer than `size` leaves.
pub fn root_at<H, S>(hasher: &H, size: u64, store: &S) -> Result<Hash, MerkleError>
where
    H: TreeHasher + ?Sized,
    S: HashStore + ?Sized,
{
    check_size(size)?;
    let mut indexes = Vec::new();
    decompose_into(0, size, &mut indexes)?;
    Ok(fold(hasher, &read_many(store, &indexes)?))
}

/// Proves that leaf `index` is in the tree of the first `size` leaves: RFC 6962 `PATH(index, D[0:size])`.
///
/// Reads O(log n) stored hashes: one per proof hash for complete sibling subtrees, plus at most
/// `popcount(size)` for the one sibling on the tree's right edge that may be incomplete. Fails with
/// [`MerkleError::IndexOutOfRange`] unless `index < size`, [`MerkleError::TreeTooLarge`] beyond
/// [`MAX_TREE_SIZE`], and [`MerkleError::Store`] if the store holds fewer than `size` leaves.
pub fn prove_inclusion<H, S>(
    hasher: &H,
    index: u64,
    size: u64,
    store: &S,
) -> Result<InclusionProof, MerkleError>
where
    H: TreeHasher + ?Sized,
    S: HashStore + ?Sized,
{
    check_size(size)?;
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    // Walk down from the root, noting the sibling range at each split, then list them leaf first.
    let (mut lo, mut hi) = (0, size);
    let mut siblings = Vec::new();
    while hi - lo > 1 {
        let mid = lo + split_point(hi - lo);
        if index < mid {
            siblings.push((mid, hi));
            hi = mid;
        } else {
            siblings.push((lo, mid));
            lo = mid;
        }
    }
    siblings.reverse();
    InclusionProof::new(range_hashes(hasher, &siblings, store)?)
}

/// Proves that the tree of the first `old_size` leaves is a prefix of the tree of the first `new_size`
/// leaves: RFC 6962 `PROOF(old_size, D[0:new_size])`.
///
/// Equal sizes give the empty proof. Reads O(log n) stored hashes, as [`prove_inclusion`] does. Fails
/// with [`MerkleError::EmptyOldTree`] for `old_size == 0` (there is nothing to prove),
/// [`MerkleError::OldSizeExceedsNew`] for `old_size > new_size`, [`MerkleError::TreeTooLarge`] beyond
/// [`MAX_TREE_SIZE`], and [`MerkleError::Store`] if the store holds fewer than `new_size` leaves.
pub fn prove_consistency<H, S>(
    hasher: &H,
    old_size: u64,
    new_size: u64,
    store: &S,
) -> Result<ConsistencyProof, MerkleError>
where
    H: TreeHasher + ?Sized,
    S: HashStore + ?Sized,
{
    check_size(new_size)?;
    if old_size > new_size {
        return Err(MerkleError::OldSizeExceedsNew { old_size, new_size });
    }
    if old_size == 0 {
        return Err(MerkleError::EmptyOldTree);
    }
    // RFC 6962 SUBPROOF(m, D[lo:hi], b), unrolled. Invariant: lo < old_size <= hi. `whole_old_known`
    // is b: true while the old tree is a left part of the range, whose root the verifier already has.
    let (mut lo, mut hi) = (0, new_size);
    let mut whole_old_known = true;
    let mut ranges = Vec::new();
    while old_size != hi {
        let mid = lo + split_point(hi - lo);
        if old_size <= mid {
            ranges.push((mid, hi));
            hi = mid;
        } else {
            ranges.push((lo, mid));
            lo = mid;
            whole_old_known = false;
        }
    }
    if !whole_old_known {
        ranges.push((lo, hi));
    }
    ranges.reverse();
    ConsistencyProof::new(range_hashes(hasher, &ranges, store)?)
}
