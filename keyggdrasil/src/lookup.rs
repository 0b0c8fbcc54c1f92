//! Finding one release in a log without reading the log: the answer of the channel's
//! `GET /v1/release` endpoint, checked against a signed checkpoint with inclusion proofs.
//!
//! [`verify_release_lookup`] is the whole check (parse, verify, decide; no I/O). What a checked
//! answer proves, given a checkpoint signed by the pinned channel key:
//! - the release entry is the leaf at the stated index of the tree the checkpoint signs, its
//!   own signature verifies under the key the entry names, and it is the release asked for;
//! - if a revocation is given, the same of the revocation entry, which revokes that release
//!   and comes after it.
//!
//! What it does **not** prove, and who does:
//! - that the signing key was a current key of the supplier when the entry was logged (the key
//!   rules): the channel refuses such entries at submission, and every site that replays the
//!   log (and `channel-server check`, and any monitor) would refuse the log if one were in it.
//!   A channel that logs a bad entry to fool one lookup leaves it in the log for all of them;
//! - that the release is **not** revoked when no revocation is given: absence cannot be proven
//!   by inclusion proofs. A site's own key-state snapshot (built from every entry) is the
//!   authority on whether it installs a release;
//! - the attestations of the release (they are not part of the answer).

use crate::entry::{Entry, EntryError, Event, MAX_ENTRY_BYTES};
use crate::limits::Limits;
use crate::merkle::{Blake2b256, MerkleError, TreeHasher, verify_inclusion};
use crate::names::{PackageName, SupplierName, Version};
use crate::wire::{TreeHash, VerifiedCheckpoint, WireError, check_proof_len};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One logged entry with its inclusion proof, as served by `/v1/release`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggedEntry {
    /// Its log index.
    pub index: u64,
    /// The exact entry bytes, as text.
    pub entry: String,
    /// The audit path from its leaf to the root at the answer's size.
    pub path: Vec<TreeHash>,
}

/// `GET /v1/release?supplier=S&package=P&version=V&size=N` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseLookupResponse {
    /// The tree size every proof is for (the `size` asked).
    pub size: u64,
    /// The release entry.
    pub release: LoggedEntry,
    /// Its revocation, if one is logged below `size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<LoggedEntry>,
}

/// What was asked for.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseQuery<'a> {
    /// The supplier.
    pub supplier: &'a SupplierName,
    /// The package.
    pub package: &'a PackageName,
    /// The version.
    pub version: &'a Version,
}

/// A release found by [`verify_release_lookup`].
#[derive(Debug, Clone)]
pub struct FoundRelease {
    /// Log index of the release entry.
    pub index: u64,
    /// The release entry (its event is a [`Event::Release`]).
    pub entry: Entry,
    /// Log index of its revocation, when the answer showed one.
    pub revoked_at: Option<u64>,
    /// The tree size it was proven under.
    pub size: u64,
}

/// Why an answer of `/v1/release` was refused. Every variant is the channel's fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LookupError {
    /// The proofs are for another tree size than the checkpoint's.
    #[error("the answer is for tree size {got}, but size {asked} was asked")]
    WrongSize {
        /// The size in the answer.
        got: u64,
        /// The checkpoint's size.
        asked: u64,
    },
    /// A served entry does not parse.
    #[error("the served {what} entry does not parse: {source}")]
    Malformed {
        /// `release` or `revocation`.
        what: &'static str,
        /// Why.
        source: EntryError,
    },
    /// A served entry's signature does not verify under the key it names.
    #[error("the served {what} entry's signature does not verify")]
    BadSignature {
        /// `release` or `revocation`.
        what: &'static str,
    },
    /// The served entry is not about the release asked for.
    #[error("the served {what} entry is not {wanted}")]
    WrongEntry {
        /// `release` or `revocation`.
        what: &'static str,
        /// What it should have been.
        wanted: String,
    },
    /// The revocation is logged before the release.
    #[error("the revocation at index {revocation} is not after the release at index {release}")]
    RevocationFirst {
        /// Release index.
        release: u64,
        /// Revocation index.
        revocation: u64,
    },
    /// A proof is longer than the limits allow.
    #[error("a proof in the answer: {0}")]
    Proof(#[from] WireError),
    /// A served entry is not in the signed tree at the stated index.
    #[error("the served {what} entry is not at index {index} of the signed tree: {source}")]
    NotIncluded {
        /// `release` or `revocation`.
        what: &'static str,
        /// The stated index.
        index: u64,
        /// Why the proof failed.
        source: MerkleError,
    },
}

/// Checks an answer of `/v1/release` for `query` against `checkpoint` (see the module docs for
/// what that proves and what it does not).
pub fn verify_release_lookup(
    resp: &ReleaseLookupResponse,
    checkpoint: &VerifiedCheckpoint,
    query: ReleaseQuery<'_>,
    limits: &Limits,
) -> Result<FoundRelease, LookupError> {
    if resp.size != checkpoint.size() {
        return Err(LookupError::WrongSize {
            got: resp.size,
            asked: checkpoint.size(),
        });
    }
    let name = format!(
        "{}/{} {}",
        query.supplier.as_str(),
        query.package.as_str(),
        query.version.as_str()
    );
    let release = included("release", &resp.release, checkpoint, limits)?;
    let is_it = release.body().supplier == *query.supplier
        && matches!(&release.body().event,
            Event::Release { package, version, .. }
                if package == query.package && version == query.version);
    if !is_it {
        return Err(LookupError::WrongEntry {
            what: "release",
            wanted: format!("the release of {name}"),
        });
    }
    let mut revoked_at = None;
    if let Some(rev) = &resp.revocation {
        let entry = included("revocation", rev, checkpoint, limits)?;
        let is_it = entry.body().supplier == *query.supplier
            && matches!(&entry.body().event,
                Event::ReleaseRevocation { package, version, .. }
                    if package == query.package && version == query.version);
        if !is_it {
            return Err(LookupError::WrongEntry {
                what: "revocation",
                wanted: format!("a revocation of {name}"),
            });
        }
        if rev.index <= resp.release.index {
            return Err(LookupError::RevocationFirst {
                release: resp.release.index,
                revocation: rev.index,
            });
        }
        revoked_at = Some(rev.index);
    }
    Ok(FoundRelease {
        index: resp.release.index,
        entry: release,
        revoked_at,
        size: resp.size,
    })
}

/// Parses `logged`, checks its own signature and its inclusion under the checkpoint's root.
/// Why [`check_logged_inclusion`] refused.
pub(crate) enum ProofFailure {
    /// The path has more hashes than the limits allow.
    Shape(WireError),
    /// The path does not lead from the entry's leaf to the checkpoint's root.
    NotIncluded(MerkleError),
}

/// Checks that `entry` (parsed from `logged.entry`) is the leaf at `logged.index` of the tree
/// `checkpoint` signs, by `logged.path`: the one inclusion check of every answer that carries
/// [`LoggedEntry`]s (release lookups here, supplier histories in [`crate::history`]).
pub(crate) fn check_logged_inclusion(
    logged: &LoggedEntry,
    entry: &Entry,
    checkpoint: &VerifiedCheckpoint,
    limits: &Limits,
) -> Result<(), ProofFailure> {
    check_proof_len(&logged.path, limits).map_err(ProofFailure::Shape)?;
    let proof = crate::merkle::InclusionProof::new(logged.path.iter().map(|h| h.0).collect())
        .map_err(ProofFailure::NotIncluded)?;
    verify_inclusion(
        &Blake2b256,
        logged.index,
        checkpoint.size(),
        &Blake2b256.hash_leaf(entry.as_bytes()),
        &proof,
        &checkpoint.root().0,
    )
    .map_err(ProofFailure::NotIncluded)
}

fn included(
    what: &'static str,
    logged: &LoggedEntry,
    checkpoint: &VerifiedCheckpoint,
    limits: &Limits,
) -> Result<Entry, LookupError> {
    // Parse refuses more than MAX_ENTRY_BYTES; the limit also bounds the hashing below.
    let bytes = logged.entry.as_bytes();
    let entry = Entry::parse(bytes).map_err(|source| LookupError::Malformed { what, source })?;
    debug_assert!(bytes.len() <= MAX_ENTRY_BYTES);
    if !entry.signature_is_valid() {
        return Err(LookupError::BadSignature { what });
    }
    check_logged_inclusion(logged, &entry, checkpoint, limits).map_err(|e| match e {
        ProofFailure::Shape(w) => LookupError::Proof(w),
        ProofFailure::NotIncluded(source) => LookupError::NotIncluded {
            what,
            index: logged.index,
            source,
        },
    })?;
    Ok(entry)
}
