//! An in-memory hash store.

use super::{
    Hash, HashStore, MerkleError, NewHashes, StoreError, StoredIndex, TreeHasher, append_leaf_hash,
    root_at, stored_hash_count,
};

/// A [`HashStore`] that keeps every stored hash in a `Vec`, and the tree size with it.
///
/// For tests, benchmarks, and sites small enough to rebuild their tree from their log at start-up
/// (64 bytes per leaf on average). Appending goes through the same [`append_leaf_hash`] as any other
/// store, so it costs O(log n) and yields the same hashes a database-backed store would hold.
///
/// It is not persistent and not shared: the binaries keep their hashes in SQLite behind their own
/// [`HashStore`] implementation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryStore {
    size: u64,
    hashes: Vec<Hash>,
}

impl MemoryStore {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// All stored hashes, in [`StoredIndex`] order (for copying into another store, or inspection).
    pub fn stored_hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends a log entry (hashing it with [`TreeHasher::hash_leaf`]) and returns its leaf index.
    pub fn append<H: TreeHasher + ?Sized>(
        &mut self,
        hasher: &H,
        entry: &[u8],
    ) -> Result<u64, MerkleError> {
        self.append_leaf_hash(hasher, hasher.hash_leaf(entry))
    }

    /// Appends a leaf hash and returns its leaf index.
    ///
    /// Fails with [`MerkleError::TreeTooLarge`] when the tree is full; the store is unchanged on error.
    pub fn append_leaf_hash<H: TreeHasher + ?Sized>(
        &mut self,
        hasher: &H,
        leaf_hash: Hash,
    ) -> Result<u64, MerkleError> {
        let new = append_leaf_hash(hasher, self.size, leaf_hash, self)?;
        self.apply(&new)?;
        Ok(new.leaf_index())
    }

    /// Writes hashes computed by [`append_leaf_hash`](super::append_leaf_hash) for this store's size.
    ///
    /// Refuses (with [`StoreError::OutOfOrder`], and no change) hashes that were computed for another
    /// tree size, so the store never gets holes or overwrites.
    pub fn apply(&mut self, new: &NewHashes) -> Result<(), MerkleError> {
        let expected = stored_hash_count(self.size)?;
        let got = new.first_index().get();
        if new.leaf_index() != self.size || got != expected {
            return Err(StoreError::OutOfOrder { expected, got }.into());
        }
        self.hashes.extend_from_slice(new.hashes());
        self.size = new.new_size();
        Ok(())
    }

    /// The root of the current tree (the empty root when there are no leaves).
    pub fn root<H: TreeHasher + ?Sized>(&self, hasher: &H) -> Result<Hash, MerkleError> {
        root_at(hasher, self.size, self)
    }
}

impl HashStore for MemoryStore {
    fn get(&self, index: StoredIndex) -> Result<Hash, StoreError> {
        usize::try_from(index.get())
            .ok()
            .and_then(|i| self.hashes.get(i))
            .copied()
            .ok_or(StoreError::Missing { index: index.get() })
    }
}
