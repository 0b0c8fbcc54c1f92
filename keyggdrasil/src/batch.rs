//! Batched nonce signatures (Roughtime-style): one channel signature answers many sites' fresh
//! nonces. The format is specified byte for byte in docs/protocol.md ("Batched freshness
//! answers"); this module is that specification's only implementation, pure (parse, verify,
//! decide; no I/O).
//!
//! The channel collects the nonces that arrive within a short window and builds a Merkle tree
//! of the RFC 6962 shape over them, in arrival order, with its own domain separation:
//! `leaf = BLAKE2b-256(0x10 ‖ nonce)` (32 nonce bytes), `node = BLAKE2b-256(0x11 ‖ left ‖
//! right)`. The prefixes differ from the log's (`0x00`, `0x01`), so no batch hash can pass for a
//! log hash. It signs one [`BatchHead`] (`{v, origin, time, size, root, batch_size,
//! batch_root}`) under [`Context::ChannelBatch`], and answers each site with that signature plus
//! the index of its nonce and the audit path ([`BatchedAnswer`]). A batch of one has an empty
//! path and `batch_root = leaf`. An empty batch does not exist.
//!
//! [`verify_batched`] checks, in order: the signature under the pinned key and the batch
//! context, the version and origin, `size ≤ MAX_TREE_SIZE` (these four are [`open_head`]),
//! the time window, `index <
//! batch_size`, the path length, and that the site's own nonce is at `index` under
//! `batch_root`. A path for another nonce, another index, a head whose batch root was not
//! signed, or an answer made for an earlier request (a reused batch) all fail the last check.
//!
//! What it does not do: the answer carries no entries; the site checks entries (from tiles or
//! pages) against the signed `root` as before. [`verify_batched_update`] turns a verified
//! answer into the [`VerifiedUpdate`] a "no updates" answer of `GET /v1/updates` would be, so
//! the site's log, notary and fork evidence treat both alike (the batch head is a statement of
//! its own kind, [`crate::evidence::StatementKind::Batch`]). The channel serves batched answers
//! at `GET /v1/fresh?nonce=`.

use crate::limits::Limits;
use crate::merkle::{Hash, InclusionProof, MerkleError, TreeHasher};
use crate::names::ChannelName;
use crate::protocol::Context;
use crate::wire::{
    Nonce, Signed, TreeHash, VerifiedUpdate, WIRE_VERSION, WireError, check_proof_len, check_time,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Domain-separation prefix of a batch leaf (a nonce).
pub const BATCH_LEAF_PREFIX: u8 = 0x10;
/// Domain-separation prefix of a batch inner node.
pub const BATCH_NODE_PREFIX: u8 = 0x11;
/// Most nonces in one batch.
pub const MAX_BATCH: u64 = 1 << 16;

/// The batch tree's hash: BLAKE2b-256 with the batch prefixes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchHasher;

fn blake(parts: &[&[u8]]) -> Hash {
    let mut state = blake2b_simd::Params::new().hash_length(32).to_state();
    for p in parts {
        state.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(state.finalize().as_bytes());
    out
}

impl TreeHasher for BatchHasher {
    fn hash_leaf(&self, nonce: &[u8]) -> Hash {
        blake(&[&[BATCH_LEAF_PREFIX], nonce])
    }
    fn hash_children(&self, left: &Hash, right: &Hash) -> Hash {
        blake(&[&[BATCH_NODE_PREFIX], left, right])
    }
    fn empty_root(&self) -> Hash {
        blake(&[])
    }
}

/// The signed payload of a batch (context [`Context::ChannelBatch`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchHead {
    /// Always [`WIRE_VERSION`].
    pub v: u32,
    /// The channel's name.
    pub origin: ChannelName,
    /// Channel time, Unix seconds.
    pub time: u64,
    /// The log's size.
    pub size: u64,
    /// The log's root at `size`.
    pub root: TreeHash,
    /// Nonces in the batch (`1 ..= MAX_BATCH`).
    pub batch_size: u64,
    /// Root of the batch tree.
    pub batch_root: TreeHash,
}

/// What one site gets: the batch's one signature and its nonce's place in the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchedAnswer {
    /// The signed [`BatchHead`].
    pub head: Signed,
    /// The index of the site's nonce in the batch.
    pub index: u64,
    /// The audit path from its leaf to `batch_root`.
    pub path: Vec<TreeHash>,
}

/// The channel's side: the tree over one batch of nonces, every node kept, so a path is
/// O(log n) lookups and no hashing (the channel builds one tree per batch and one path per
/// request).
///
/// Levels are built bottom up; a level of odd length carries its last node up unchanged. That
/// is the RFC 6962 tree (its left subtrees are perfect, so the lone node at the right edge of
/// a level is exactly the root of the right subtree that is not yet paired), and its paths are
/// RFC 6962 audit paths: the sibling at each level where one exists. The tests check both
/// against [`crate::merkle::prove_inclusion`] for every size up to 300.
#[derive(Debug, Clone)]
pub struct BatchTree {
    levels: Vec<Vec<Hash>>,
}

/// Why a batch could not be built or an answer was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BatchError {
    /// An empty batch, or more than [`MAX_BATCH`] nonces.
    #[error("a batch holds 1 to {MAX_BATCH} nonces, not {0}")]
    BatchSize(u64),
    /// The signature, version, origin, time or a length is wrong.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The index is not in the batch.
    #[error("index {index} is not in a batch of {batch_size}")]
    Index {
        /// The index.
        index: u64,
        /// The batch size.
        batch_size: u64,
    },
    /// The site's nonce is not at that index under the signed batch root.
    #[error("this site's nonce is not in the signed batch: {0}")]
    NotInBatch(MerkleError),
}

impl BatchTree {
    /// The tree over `nonces`, in that order.
    pub fn new(nonces: &[Nonce]) -> Result<Self, BatchError> {
        let n = nonces.len() as u64;
        if n == 0 || n > MAX_BATCH {
            return Err(BatchError::BatchSize(n));
        }
        let mut levels = vec![
            nonces
                .iter()
                .map(|nonce| BatchHasher.hash_leaf(&nonce.0))
                .collect::<Vec<Hash>>(),
        ];
        while let Some(below) = levels.last().filter(|l| l.len() > 1) {
            let up = below
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => BatchHasher.hash_children(left, right),
                    // `chunks(2)` gives one or two; the last of an odd level goes up as it is.
                    _ => pair.first().copied().unwrap_or_default(),
                })
                .collect();
            levels.push(up);
        }
        Ok(Self { levels })
    }

    /// How many nonces.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Never true: a batch has at least one nonce.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch root.
    pub fn root(&self) -> Hash {
        // A built tree has at least one level, and its top level one node.
        self.levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or_default()
    }

    /// The audit path of nonce `index`.
    pub fn path(&self, index: u64) -> Result<Vec<TreeHash>, BatchError> {
        if index >= self.len() {
            return Err(BatchError::Index {
                index,
                batch_size: self.len(),
            });
        }
        let mut i = usize::try_from(index).unwrap_or(usize::MAX);
        let mut path = Vec::with_capacity(self.levels.len());
        let below_root = self.levels.split_last().map_or(&[][..], |(_, rest)| rest);
        for level in below_root {
            if let Some(sibling) = level.get(i ^ 1) {
                path.push(TreeHash(*sibling));
            }
            i /= 2;
        }
        Ok(path)
    }
}

/// A batched answer that passed [`verify_batched`] for one nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBatch {
    head: BatchHead,
}

impl VerifiedBatch {
    /// The log size the channel signed.
    pub fn size(&self) -> u64 {
        self.head.size
    }
    /// The log root at that size.
    pub fn root(&self) -> &TreeHash {
        &self.head.root
    }
    /// The channel's time.
    pub fn time(&self) -> u64 {
        self.head.time
    }
    /// The whole signed head.
    pub fn head(&self) -> &BatchHead {
        &self.head
    }
}

/// Opens a signed batch head as a statement about the log: the signature under the pinned key
/// and the batch context, the version, the origin, and `size ≤ MAX_TREE_SIZE`. Not the time:
/// fork evidence stays evidence however old ([`crate::evidence::parse_statement`] uses this),
/// and [`verify_batched`] adds the time window for a fresh answer.
pub fn open_head(
    signed: &Signed,
    channel_key: &crate::keys::PublicKey,
    origin: &ChannelName,
    limit: u64,
) -> Result<BatchHead, WireError> {
    let head: BatchHead = signed.open(channel_key, Context::ChannelBatch, limit)?;
    if head.v != WIRE_VERSION {
        return Err(WireError::Malformed(format!(
            "protocol version {} is not supported",
            head.v
        )));
    }
    if &head.origin != origin {
        return Err(crate::wire::Misbehavior::WrongChannel {
            expected: origin.as_str().to_owned(),
            got: head.origin.as_str().to_owned(),
        }
        .into());
    }
    if head.size > crate::merkle::MAX_TREE_SIZE {
        return Err(crate::wire::Misbehavior::Sizes(format!(
            "size {} is beyond any log",
            head.size
        ))
        .into());
    }
    Ok(head)
}

/// Checks a batched answer to `nonce` (see the module docs for the order of the checks).
pub fn verify_batched(
    answer: &BatchedAnswer,
    channel_key: &crate::keys::PublicKey,
    origin: &ChannelName,
    nonce: &Nonce,
    now: u64,
    limits: &Limits,
) -> Result<VerifiedBatch, BatchError> {
    let head = open_head(
        &answer.head,
        channel_key,
        origin,
        limits.max_small_response_bytes,
    )?;
    check_time(head.time, now, limits)?;
    if head.batch_size == 0 || head.batch_size > MAX_BATCH {
        return Err(BatchError::BatchSize(head.batch_size));
    }
    if answer.index >= head.batch_size {
        return Err(BatchError::Index {
            index: answer.index,
            batch_size: head.batch_size,
        });
    }
    check_proof_len(&answer.path, limits)?;
    let proof = InclusionProof::new(answer.path.iter().map(|h| h.0).collect())
        .map_err(BatchError::NotInBatch)?;
    crate::merkle::verify_inclusion(
        &BatchHasher,
        answer.index,
        head.batch_size,
        &BatchHasher.hash_leaf(&nonce.0),
        &proof,
        &head.batch_root.0,
    )
    .map_err(BatchError::NotInBatch)?;
    Ok(VerifiedBatch { head })
}

/// [`verify_batched`], then the answer as a [`VerifiedUpdate`] with no entries at the signed
/// size (`since == size == tree_size`): what the site's log and notary take. Whether that size is
/// the site's own (nothing new), larger (fetch the entries), or smaller (a rollback) is the
/// caller's to decide.
pub fn verify_batched_update(
    answer: &BatchedAnswer,
    channel_key: &crate::keys::PublicKey,
    origin: &ChannelName,
    nonce: &Nonce,
    now: u64,
    limits: &Limits,
) -> Result<VerifiedUpdate, BatchError> {
    let verified = verify_batched(answer, channel_key, origin, nonce, now, limits)?;
    Ok(VerifiedUpdate::from_batch(
        &verified.head,
        *nonce,
        answer.head.clone(),
        *channel_key,
    ))
}
