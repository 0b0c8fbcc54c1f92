//! Errors of the Merkle log.

/// Why a Merkle operation failed or a proof was refused.
///
/// Three kinds of failure share this enum, and the caller's reaction differs:
///
/// - **Arguments out of range** ([`IndexOutOfRange`](Self::IndexOutOfRange),
///   [`OldSizeExceedsNew`](Self::OldSizeExceedsNew), [`EmptyOldTree`](Self::EmptyOldTree),
///   [`TreeTooLarge`](Self::TreeTooLarge)): the sizes or index make no sense. From a peer or channel
///   this is misbehaviour; from the caller's own code it is a bug.
/// - **Proof refused** ([`ProofTooLong`](Self::ProofTooLong),
///   [`WrongProofLength`](Self::WrongProofLength), [`RootMismatch`](Self::RootMismatch),
///   [`OldRootMismatch`](Self::OldRootMismatch), [`NewRootMismatch`](Self::NewRootMismatch),
///   [`EqualSizesDifferentRoots`](Self::EqualSizesDifferentRoots)): whoever made the proof or the roots
///   misbehaved (or the tree was forked); the claim must not be believed.
/// - **Store failure** ([`Store`](Self::Store)): the caller's own hash store could not answer; retry
///   or repair it, nothing is wrong with anyone else.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// A leaf index is not below the tree size (this includes any index into an empty tree).
    #[error("leaf index {index} is not below the tree size {size}")]
    IndexOutOfRange {
        /// The leaf index given.
        index: u64,
        /// The tree size given.
        size: u64,
    },
    /// A consistency check or proof was asked from a larger tree to a smaller one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeExceedsNew {
        /// The old (supposedly earlier) tree size.
        old_size: u64,
        /// The new tree size.
        new_size: u64,
    },
    /// A consistency proof from the empty tree was asked for or offered.
    ///
    /// The empty tree is a prefix of every tree, so there is nothing to prove; a caller that has seen
    /// no tree yet has no old root to hold the log to, and must not treat such a check as evidence.
    #[error("consistency with an empty old tree proves nothing")]
    EmptyOldTree,
    /// A tree size is beyond [`MAX_TREE_SIZE`](super::MAX_TREE_SIZE) (or appending would pass it).
    #[error("tree size {size} exceeds the supported maximum of 2^62 leaves")]
    TreeTooLarge {
        /// The tree size given (or the size an append would reach).
        size: u64,
    },
    /// A proof has more than [`MAX_PROOF_HASHES`](super::MAX_PROOF_HASHES) hashes.
    #[error("proof has {len} hashes, more than the limit of 64")]
    ProofTooLong {
        /// The number of hashes in the proof.
        len: usize,
    },
    /// A proof does not have the number of hashes the tree sizes call for.
    #[error("proof has {got} hashes but these tree sizes need {want}")]
    WrongProofLength {
        /// The number of hashes in the proof.
        got: usize,
        /// The number of hashes an honest proof for these sizes has.
        want: usize,
    },
    /// An inclusion proof does not lead from the leaf hash to the expected root.
    #[error("inclusion proof does not lead to the expected root")]
    RootMismatch,
    /// A consistency proof does not lead to the old root.
    #[error("consistency proof does not lead to the old root")]
    OldRootMismatch,
    /// A consistency proof does not lead from the old root to the new root.
    #[error("consistency proof does not lead to the new root")]
    NewRootMismatch,
    /// Two roots claimed for the same tree size differ: a fork, if both were signed by the same log.
    #[error("trees of equal size have different roots")]
    EqualSizesDifferentRoots,
    /// The hash store could not provide a hash.
    #[error("hash store failed")]
    Store(#[from] StoreError),
}

/// Why a [`HashStore`](super::HashStore) could not provide hashes.
///
/// Implementations of the trait return it; the Merkle functions wrap it in [`MerkleError::Store`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store holds no hash at this position (the tree it holds is smaller than asked for).
    #[error("no stored hash at index {index}")]
    Missing {
        /// The raw [`StoredIndex`](super::StoredIndex) asked for.
        index: u64,
    },
    /// A batch read returned a different number of hashes than were asked for.
    #[error("hash store returned {returned} hashes for {requested} requested")]
    WrongCount {
        /// How many hashes were asked for.
        requested: usize,
        /// How many came back.
        returned: usize,
    },
    /// Hashes to write do not start where the store ends (they were computed for another tree size);
    /// writing them would leave a hole or overwrite stored hashes.
    #[error("new hashes start at stored index {got}, but the store ends at {expected}")]
    OutOfOrder {
        /// The position the store would write next.
        expected: u64,
        /// The position the new hashes start at.
        got: u64,
    },
    /// The storage behind the store failed (a database error, for example).
    #[error("hash store backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}
