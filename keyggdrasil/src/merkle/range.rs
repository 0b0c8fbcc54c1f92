//! Subtree ranges: which stored hashes make up a range of leaves, and roots kept in memory.

use super::store::read_many;
use super::{Hash, HashStore, MAX_TREE_SIZE, MerkleError, StoredIndex, TreeHasher};

/// Appends to `out` the stored positions of the complete subtrees that tile leaves `lo..hi`, left to
/// right, each the largest aligned subtree that fits.
///
/// For the ranges RFC 6962 hashes (the whole tree `0..n`, and the two halves of any split) these
/// subtrees shrink from left to right, and folding their hashes from the right ([`fold`]) gives the
/// range's Merkle tree hash. The number of subtrees is `popcount(hi − lo)` for such ranges.
pub(super) fn decompose_into(
    lo: u64,
    hi: u64,
    out: &mut Vec<StoredIndex>,
) -> Result<(), MerkleError> {
    if hi > MAX_TREE_SIZE {
        return Err(MerkleError::TreeTooLarge { size: hi });
    }
    let mut cur = lo;
    while cur < hi {
        let remaining = hi - cur;
        // floor(log2(remaining)); remaining >= 1.
        let by_size = 63 - remaining.leading_zeros();
        let by_alignment = if cur == 0 { 63 } else { cur.trailing_zeros() };
        let level = by_size.min(by_alignment);
        out.push(StoredIndex::for_node(level, cur >> level)?);
        cur += 1u64 << level;
    }
    Ok(())
}

/// The Merkle tree hash of consecutive subtrees given left to right with shrinking sizes: hashed
/// together from the right, as RFC 6962 splits. An empty list gives the empty root.
pub(super) fn fold<H: TreeHasher + ?Sized>(hasher: &H, subtrees: &[Hash]) -> Hash {
    let mut rest = subtrees.iter().rev();
    let Some(last) = rest.next() else {
        return hasher.empty_root();
    };
    rest.fold(*last, |acc, left| hasher.hash_children(left, &acc))
}

/// The compact range `[0, size)` of a tree: the roots of its complete subtrees (one per set bit of
/// `size`, largest first), which is all that is needed to append further leaves and compute roots.
///
/// This is the in-memory way to a root: a site checking the channel's announced root loads the compact
/// range of its stored log ([`from_store`](Self::from_store), O(log n) reads), pushes the new entries'
/// leaf hashes, and compares [`root`](Self::root); nothing is written until the root has been
/// accepted. Memory and the cost of `root` are O(log n); `push` is amortised O(1) hashes. The result
/// always equals what the stored tree gives after appending the same leaves.
///
/// It does not keep leaves or inner nodes, so it cannot produce proofs; use a [`HashStore`] for those.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    /// Roots of the complete subtrees covering `0..size`, left to right (sizes decreasing).
    subtrees: Vec<Hash>,
}

impl CompactRange {
    /// The compact range of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads the compact range of the first `size` leaves of a stored tree, reading `popcount(size)`
    /// hashes. `store` must hold a tree of at least `size` leaves.
    pub fn from_store<S: HashStore + ?Sized>(size: u64, store: &S) -> Result<Self, MerkleError> {
        let mut indexes = Vec::new();
        decompose_into(0, size, &mut indexes)?;
        let subtrees = read_many(store, &indexes)?;
        Ok(Self { size, subtrees })
    }

    /// A compact range from its parts, as [`Self::subtrees`] gave them (for a caller that keeps a
    /// verified view in a file). Refuses a number of hashes other than `popcount(size)` or a size
    /// over [`MAX_TREE_SIZE`]; it cannot tell whether the hashes are the right ones, so the caller
    /// checks the root it gives against a root it trusts.
    pub fn from_subtrees(size: u64, subtrees: Vec<Hash>) -> Result<Self, MerkleError> {
        if size > MAX_TREE_SIZE {
            return Err(MerkleError::TreeTooLarge { size });
        }
        if subtrees.len() != size.count_ones() as usize {
            return Err(MerkleError::WrongProofLength {
                got: subtrees.len(),
                want: size.count_ones() as usize,
            });
        }
        Ok(Self { size, subtrees })
    }

    /// The roots of the complete subtrees covering `0..size`, left to right (largest first).
    pub fn subtrees(&self) -> &[Hash] {
        &self.subtrees
    }

    /// The number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash, merging the subtrees it completes.
    ///
    /// Fails with [`MerkleError::TreeTooLarge`] (and changes nothing) if the range already holds
    /// [`MAX_TREE_SIZE`] leaves.
    pub fn push<H: TreeHasher + ?Sized>(
        &mut self,
        hasher: &H,
        leaf_hash: Hash,
    ) -> Result<(), MerkleError> {
        if self.size >= MAX_TREE_SIZE {
            return Err(MerkleError::TreeTooLarge {
                size: self.size.saturating_add(1),
            });
        }
        let mut hash = leaf_hash;
        // Each trailing one bit of the old size is a complete left sibling of the new leaf's subtree.
        for _ in 0..self.size.trailing_ones() {
            // There is one stored subtree per set bit of size, so this always finds one.
            let Some(left) = self.subtrees.pop() else {
                break;
            };
            hash = hasher.hash_children(&left, &hash);
        }
        self.subtrees.push(hash);
        self.size += 1;
        Ok(())
    }

    /// Appends a log entry: [`push`](Self::push) of its leaf hash.
    pub fn push_entry<H: TreeHasher + ?Sized>(
        &mut self,
        hasher: &H,
        entry: &[u8],
    ) -> Result<(), MerkleError> {
        self.push(hasher, hasher.hash_leaf(entry))
    }

    /// The root of the tree of [`size`](Self::size) leaves (the empty root for size 0).
    pub fn root<H: TreeHasher + ?Sized>(&self, hasher: &H) -> Hash {
        fold(hasher, &self.subtrees)
    }
}

/// The root of the tree over `leaf_hashes`, computed in memory (no store), in O(n) hashes and
/// O(log n) memory. Equals [`root_at`](super::root_at) of a store to which the same leaves were
/// appended.
///
/// Fails only if there are more than [`MAX_TREE_SIZE`] leaves.
pub fn root_from_leaf_hashes<H: TreeHasher + ?Sized>(
    hasher: &H,
    leaf_hashes: &[Hash],
) -> Result<Hash, MerkleError> {
    let mut range = CompactRange::new();
    for leaf in leaf_hashes {
        range.push(hasher, *leaf)?;
    }
    Ok(range.root(hasher))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decomposition_tiles_the_range_with_shrinking_subtrees() {
        for hi in 0..200u64 {
            let mut out = Vec::new();
            assert!(decompose_into(0, hi, &mut out).is_ok());
            assert_eq!(out.len() as u32, hi.count_ones(), "size {hi}");
        }
        // A right half of an RFC 6962 split: 8..13 = 8..12 (level 2), 12..13 (leaf 12).
        let mut out = Vec::new();
        assert!(decompose_into(8, 13, &mut out).is_ok());
        let want: Vec<_> = [(2, 2), (0, 12)]
            .iter()
            .filter_map(|&(l, n)| StoredIndex::for_node(l, n).ok())
            .collect();
        assert_eq!(out, want);
    }

    #[test]
    fn decomposition_refuses_ranges_beyond_the_limit() {
        let mut out = Vec::new();
        assert!(decompose_into(0, MAX_TREE_SIZE + 1, &mut out).is_err());
        assert!(decompose_into(0, MAX_TREE_SIZE, &mut out).is_ok());
        assert_eq!(out.len(), 1);
    }
}
