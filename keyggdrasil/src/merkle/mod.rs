//! The append-only Merkle log: tree hashing, stored hashes, roots, and inclusion and consistency proofs.
//!
//! The tree has the shape of RFC 6962 / RFC 9162 §2.1: a leaf hash is `H(0x00 ‖ entry)`, an inner node is
//! `H(0x01 ‖ left ‖ right)`, a tree of `n > 1` leaves splits at the largest power of two smaller than `n`
//! (the last leaf is never duplicated), and the empty tree's root is `H("")`. The production hash `H` is
//! BLAKE2b-256 ([`Blake2b256`]); any other hash can be plugged in through [`TreeHasher`] (the tests use
//! SHA-256 to check against the public RFC 6962 test vectors).
//!
//! # What it does
//!
//! - **Storage layout.** Every leaf hash and the hash of every *complete* subtree is kept once, in the
//!   order they become known, at a [`StoredIndex`] (the layout of Go's `golang.org/x/mod/sumdb/tlog`).
//!   Reads go through the [`HashStore`] trait, so the binaries can keep these hashes in SQLite;
//!   [`MemoryStore`] keeps them in a `Vec` for tests and small sites.
//! - **Append** ([`append_entry`], [`append_leaf_hash`]) returns the few new hashes to write
//!   ([`NewHashes`]) after reading at most log₂ n stored hashes: it never rehashes the leaves.
//! - **Roots and proofs at any size up to the current one**: [`root_at`], [`prove_inclusion`] and
//!   [`prove_consistency`] read O(log n) stored hashes (only roots of complete subtrees) and produce
//!   exactly the RFC 6962 `PATH` and `PROOF` hash lists.
//! - **Pure verifiers** [`verify_inclusion`] and [`verify_consistency`] follow RFC 9162 §2.1.3.2 and
//!   §2.1.4.2 step by step and need no store.
//! - **In-memory roots**: [`CompactRange`] and [`root_from_leaf_hashes`] compute a root over leaf hashes
//!   held in memory, optionally continuing a stored tree, e.g. for a site recomputing the root from its
//!   log plus the entries the channel just sent.
//!
//! # What it does not do
//!
//! It does no I/O: it never opens a database, writes the [`NewHashes`] anywhere, or keeps track of the
//! current tree size (the caller passes sizes in and stores them). It does not parse entries, check
//! signatures or decide whom to trust: a verified proof only says that a leaf hash or an older root is
//! committed to by a root, and the caller must still know that root is one it should believe (signed by
//! the channel, confirmed by peers). Trees are limited to [`MAX_TREE_SIZE`] leaves, proofs to
//! [`MAX_PROOF_HASHES`] hashes.
//!
//! # Example
//!
//! ```
//! use keyggdrasil::merkle::{
//!     Blake2b256, MemoryStore, TreeHasher, prove_consistency, prove_inclusion, root_at,
//!     verify_consistency, verify_inclusion,
//! };
//!
//! # fn main() -> Result<(), keyggdrasil::merkle::MerkleError> {
//! let hasher = Blake2b256;
//! let mut log = MemoryStore::new();
//! for entry in [&b"first"[..], b"second", b"third"] {
//!     log.append(&hasher, entry)?;
//! }
//! let old_root = root_at(&hasher, 2, &log)?;
//! let new_root = root_at(&hasher, 3, &log)?;
//!
//! // The channel proves that "second" (leaf 1) is in the tree of size 3 ...
//! let proof = prove_inclusion(&hasher, 1, 3, &log)?;
//! verify_inclusion(&hasher, 1, 3, &hasher.hash_leaf(b"second"), &proof, &new_root)?;
//!
//! // ... and that the tree of size 3 extends the tree of size 2.
//! let proof = prove_consistency(&hasher, 2, 3, &log)?;
//! verify_consistency(&hasher, 2, 3, &old_root, &new_root, &proof)?;
//! # Ok(())
//! # }
//! ```

mod error;
mod hasher;
mod memory;
mod proof;
mod range;
mod store;
mod verify;

pub use error::{MerkleError, StoreError};
pub use hasher::{Blake2b256, Sha256Interop, TreeHasher};
pub use memory::MemoryStore;
pub use proof::{ConsistencyProof, InclusionProof, prove_consistency, prove_inclusion, root_at};
pub use range::{CompactRange, root_from_leaf_hashes};
pub use store::{
    HashStore, NewHashes, StoredIndex, append_entry, append_leaf_hash, stored_hash_count,
};
pub use verify::{
    consistency_proof_len, inclusion_proof_len, verify_consistency, verify_inclusion,
};

/// A tree hash: a leaf hash, an inner node hash or a root. Always 32 bytes (BLAKE2b-256 in production).
pub type Hash = [u8; 32];

/// The largest number of leaves a tree may have: 2⁶².
///
/// Far beyond any real log, it keeps every [`StoredIndex`] below 2⁶³, so stored positions fit in an
/// SQLite `INTEGER` (an `i64`), and keeps all size and index arithmetic free of overflow.
pub const MAX_TREE_SIZE: u64 = 1 << 62;

/// The most hashes a proof may have; longer proofs are refused before any hashing.
///
/// Honest proofs for trees of up to [`MAX_TREE_SIZE`] leaves have at most 63 hashes.
pub const MAX_PROOF_HASHES: usize = 64;

/// The largest power of two strictly smaller than `n`, for `n >= 2` (the RFC 6962 split point `k`).
///
/// Returns 0 for `n < 2`, where no split exists; callers only split ranges of two or more leaves.
fn split_point(n: u64) -> u64 {
    if n < 2 {
        return 0;
    }
    // (n - 1) has its highest bit at the position of the largest power of two below n.
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Bit length of `x` (Go's `bits.Len64`): 0 for 0, else one more than the index of the highest set bit.
fn bit_len(x: u64) -> u32 {
    64 - x.leading_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_is_largest_power_of_two_below() {
        assert_eq!(split_point(0), 0);
        assert_eq!(split_point(1), 0);
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(8), 4);
        assert_eq!(split_point(9), 8);
        assert_eq!(split_point(u64::MAX), 1 << 63);
        assert_eq!(split_point(MAX_TREE_SIZE), 1 << 61);
    }

    #[test]
    fn bit_len_matches_go() {
        assert_eq!(bit_len(0), 0);
        assert_eq!(bit_len(1), 1);
        assert_eq!(bit_len(7), 3);
        assert_eq!(bit_len(8), 4);
        assert_eq!(bit_len(u64::MAX), 64);
    }
}
