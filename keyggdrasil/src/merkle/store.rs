//! Where stored hashes live ([`StoredIndex`], [`HashStore`]) and how an append extends them.

use super::{Hash, MAX_TREE_SIZE, MerkleError, StoreError, TreeHasher};

/// The position of a stored hash: leaf hashes and complete-subtree hashes, numbered in the order in
/// which they become known as leaves are appended.
///
/// This is the layout of Go's `golang.org/x/mod/sumdb/tlog` (`StoredHashIndex`): appending leaf `n`
/// stores its leaf hash, then the hash of every subtree that leaf completes, bottom up. Level 0 holds
/// leaf hashes; the node `n` at level `l` covers leaves `n·2ˡ .. (n+1)·2ˡ`. A tree of `s` leaves has
/// exactly [`stored_hash_count`]`(s) = 2s − popcount(s)` stored hashes, at positions `0 ..` that count,
/// and the stored hashes of a smaller tree are a prefix of those of a larger one: a store never
/// rewrites a position, it only appends.
///
/// The raw value is below 2⁶³, so it fits an SQLite `INTEGER` primary key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoredIndex(u64);

impl StoredIndex {
    /// Wraps a raw position, as a store keeps it. Does not check that the position is in any tree.
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw position, for use as a storage key.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The position of the hash of node `n` at `level` (level 0 = leaves): tlog's
    /// `StoredHashIndex(level, n)`.
    ///
    /// Fails with [`MerkleError::TreeTooLarge`] if the node lies beyond [`MAX_TREE_SIZE`] leaves. It
    /// does not say whether a given store holds that node yet (it does once its last leaf is appended).
    pub fn for_node(level: u32, n: u64) -> Result<Self, MerkleError> {
        // The node covers leaves n·2^level .. end; it becomes stored when leaf end-1 is appended.
        let width = 1u64.checked_shl(level);
        let end = width
            .and_then(|w| n.checked_add(1).and_then(|n1| n1.checked_mul(w)))
            .filter(|&end| end <= MAX_TREE_SIZE)
            .ok_or(MerkleError::TreeTooLarge {
                size: n
                    .saturating_add(1)
                    .saturating_mul(width.unwrap_or(u64::MAX)),
            })?;
        // end >= 1 because n + 1 >= 1 and width >= 1.
        let last = end - 1;
        // Leaf m is stored after the leaves 0..m and the subtrees they completed, which number
        // m − popcount(m); the node is stored `level` positions after its last leaf. With
        // last < 2^62 none of this can overflow.
        Ok(Self(
            2 * last - u64::from(last.count_ones()) + u64::from(level),
        ))
    }
}

/// The number of hashes stored for a tree of `size` leaves: `2·size − popcount(size)`.
///
/// This is also the [`StoredIndex`] at which the hashes of the next append begin (tlog's
/// `StoredHashCount`). Fails with [`MerkleError::TreeTooLarge`] beyond [`MAX_TREE_SIZE`].
pub fn stored_hash_count(size: u64) -> Result<u64, MerkleError> {
    if size > MAX_TREE_SIZE {
        return Err(MerkleError::TreeTooLarge { size });
    }
    Ok(2 * size - u64::from(size.count_ones()))
}

/// Read access to stored hashes, by [`StoredIndex`].
///
/// The Merkle functions only ever read positions below [`stored_hash_count`] of the tree size they are
/// given, and only roots of complete subtrees, never whole ranges of leaves: O(log n) reads per call.
/// Implementations must return exactly what was stored at that position, and [`StoreError::Missing`]
/// for a position never written. The store is not trusted to be honest in the sense of the protocol
/// (it is the caller's own storage), but a store returning wrong hashes yields wrong roots and proofs.
///
/// Writing is the caller's business: apply the [`NewHashes`] an append returns, in one transaction
/// together with the new tree size.
pub trait HashStore {
    /// Reads the hash stored at `index`.
    fn get(&self, index: StoredIndex) -> Result<Hash, StoreError>;

    /// Reads several hashes at once, in the order asked, so a database can answer in one query.
    ///
    /// The default calls [`get`](Self::get) for each index. Must return exactly one hash per index.
    fn get_many(&self, indexes: &[StoredIndex]) -> Result<Vec<Hash>, StoreError> {
        indexes.iter().map(|&index| self.get(index)).collect()
    }
}

impl<S: HashStore + ?Sized> HashStore for &S {
    fn get(&self, index: StoredIndex) -> Result<Hash, StoreError> {
        (**self).get(index)
    }

    fn get_many(&self, indexes: &[StoredIndex]) -> Result<Vec<Hash>, StoreError> {
        (**self).get_many(indexes)
    }
}

/// Reads `indexes` and checks that the store answered with one hash for each.
pub(super) fn read_many<S: HashStore + ?Sized>(
    store: &S,
    indexes: &[StoredIndex],
) -> Result<Vec<Hash>, MerkleError> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = store.get_many(indexes)?;
    if hashes.len() != indexes.len() {
        return Err(StoreError::WrongCount {
            requested: indexes.len(),
            returned: hashes.len(),
        }
        .into());
    }
    Ok(hashes)
}

/// The hashes to store for one appended leaf: its leaf hash, then the hashes of the subtrees it
/// completes, bottom up, at consecutive positions from [`first_index`](Self::first_index).
///
/// Nothing is written by the function that returns this: the caller stores every hash at its position
/// (e.g. with [`iter`](Self::iter)) and records the new tree size, ideally in one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewHashes {
    leaf_index: u64,
    first: StoredIndex,
    hashes: Vec<Hash>,
}

impl NewHashes {
    /// The index of the appended leaf (the tree size before the append).
    pub fn leaf_index(&self) -> u64 {
        self.leaf_index
    }

    /// The tree size after the append.
    pub fn new_size(&self) -> u64 {
        // leaf_index < MAX_TREE_SIZE, checked when this was made.
        self.leaf_index + 1
    }

    /// The position of the first new hash (the leaf hash); the others follow it without gaps.
    pub fn first_index(&self) -> StoredIndex {
        self.first
    }

    /// The new hashes: the leaf hash first, then 0 to 62 completed-subtree hashes.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The new hashes, each with the position to store it at.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (StoredIndex, &Hash)> + '_ {
        let first = self.first.get();
        // At most 63 hashes, and first + 63 < 2^63: no overflow.
        self.hashes
            .iter()
            .enumerate()
            .map(move |(offset, hash)| (StoredIndex::new(first + offset as u64), hash))
    }
}

/// Computes the hashes to store when appending the leaf `leaf_hash` to a tree of `size` leaves.
///
/// Reads from `store` only the left siblings of the subtrees the new leaf completes (as many as `size`
/// has trailing one bits, at most log₂ of the new size) and hashes as many times: O(log n), however
/// large the tree. `store` must hold the tree of `size` leaves (it may hold a larger one, but then the
/// returned hashes are not the next ones to store). Writes nothing.
///
/// Fails with [`MerkleError::TreeTooLarge`] if the tree is full, and [`MerkleError::Store`] if the store
/// cannot provide a needed hash.
pub fn append_leaf_hash<H, S>(
    hasher: &H,
    size: u64,
    leaf_hash: Hash,
    store: &S,
) -> Result<NewHashes, MerkleError>
where
    H: TreeHasher + ?Sized,
    S: HashStore + ?Sized,
{
    if size >= MAX_TREE_SIZE {
        return Err(MerkleError::TreeTooLarge {
            size: size.saturating_add(1),
        });
    }
    // Each trailing one bit of `size` is a level where the new leaf's subtree becomes complete, as the
    // right child of a complete left sibling: node (level, (size >> level) - 1).
    let completed = size.trailing_ones();
    let mut siblings = Vec::with_capacity(completed as usize);
    // Highest level first: those were stored earliest, so the indexes come out ascending.
    for level in (0..completed).rev() {
        siblings.push(StoredIndex::for_node(level, (size >> level) - 1)?);
    }
    let left = read_many(store, &siblings)?;

    let mut hashes = Vec::with_capacity(left.len() + 1);
    let mut hash = leaf_hash;
    hashes.push(hash);
    for sibling in left.iter().rev() {
        hash = hasher.hash_children(sibling, &hash);
        hashes.push(hash);
    }
    Ok(NewHashes {
        leaf_index: size,
        first: StoredIndex::new(stored_hash_count(size)?),
        hashes,
    })
}

/// Like [`append_leaf_hash`], for a log entry: hashes it with [`TreeHasher::hash_leaf`] first.
pub fn append_entry<H, S>(
    hasher: &H,
    size: u64,
    entry: &[u8],
    store: &S,
) -> Result<NewHashes, MerkleError>
where
    H: TreeHasher + ?Sized,
    S: HashStore + ?Sized,
{
    append_leaf_hash(hasher, size, hasher.hash_leaf(entry), store)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tlog's StoredHashIndex, written the way Go writes it, as an independent check of the closed form.
    fn tlog_stored_hash_index(level: u32, mut n: u64) -> u64 {
        for _ in 0..level {
            n = 2 * n + 1;
        }
        let mut i = 0;
        while n > 0 {
            i += n;
            n >>= 1;
        }
        i + u64::from(level)
    }

    #[test]
    fn stored_index_matches_tlog() {
        for level in 0..12 {
            for n in 0..300 {
                assert_eq!(
                    StoredIndex::for_node(level, n).map(StoredIndex::get).ok(),
                    Some(tlog_stored_hash_index(level, n)),
                    "level {level} n {n}"
                );
            }
        }
    }

    #[test]
    fn stored_positions_are_dense_and_in_append_order() {
        // Walk appends: leaf i, then each completed subtree; the positions must be 0, 1, 2, ...
        let mut next = 0;
        for i in 0u64..1000 {
            assert_eq!(stored_hash_count(i).ok(), Some(next));
            assert_eq!(
                StoredIndex::for_node(0, i).map(StoredIndex::get).ok(),
                Some(next)
            );
            next += 1;
            for level in 1..=i.trailing_ones() {
                let got = StoredIndex::for_node(level, i >> level).map(StoredIndex::get);
                assert_eq!(got.ok(), Some(next));
                next += 1;
            }
        }
    }

    #[test]
    fn limits_hold_at_the_edge() {
        assert!(stored_hash_count(MAX_TREE_SIZE).is_ok_and(|c| c < 1 << 63));
        assert!(matches!(
            stored_hash_count(MAX_TREE_SIZE + 1),
            Err(MerkleError::TreeTooLarge { .. })
        ));
        assert!(StoredIndex::for_node(62, 0).is_ok());
        assert!(StoredIndex::for_node(62, 1).is_err());
        assert!(StoredIndex::for_node(63, 0).is_err());
        assert!(StoredIndex::for_node(64, 0).is_err());
        assert!(StoredIndex::for_node(u32::MAX, u64::MAX).is_err());
        assert!(StoredIndex::for_node(0, u64::MAX).is_err());
        assert!(StoredIndex::for_node(0, MAX_TREE_SIZE - 1).is_ok_and(|i| i.get() < 1 << 63));
    }
}
