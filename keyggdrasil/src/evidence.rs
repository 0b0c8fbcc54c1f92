//! Channel-signed statements and the contradictions between them that prove a fork.
//!
//! Pure rules shared by every notary (which keeps evidence) and every site (which checks the
//! evidence a peer sends); storage of statements is the caller's.
//!
//! A *statement* is anything the channel signs about its log: an update answer (context
//! `channel-update`: since, size, root and the entries `since..size`) or a checkpoint (context
//! `checkpoint`: size and root) or a batch head (context `channel-batch`: size and root, signed
//! once for a batch of nonces, [`crate::batch`]). Nonce and time are not looked at here: a statement stays a
//! statement about the log however old it is, and a fork is forever.
//!
//! [`find_contradiction`] looks only at the statements it is given, so anybody holding the
//! channel's pinned key can re-check what it finds:
//! - two statements at the same size with different roots;
//! - two update statements carrying different entries at the same index;
//! - a statement whose size is covered, from index 0, by the entries the statements carry, and
//!   whose root is not the root of those entries.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::batch::open_head;
use crate::keys::PublicKey;
use crate::limits::Limits;
use crate::merkle::{Blake2b256, Hash, TreeHasher, root_from_leaf_hashes};
use crate::names::ChannelName;
use crate::protocol::Context;
use crate::wire::{
    Signed, UpdatePayload, VerifiedUpdate, WIRE_VERSION, WireError, check_update_sizes,
    verify_checkpoint,
};

/// What kind of signed statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// An update answer (`channel-update` context), with entries.
    Update,
    /// A checkpoint (`checkpoint` context), size and root only.
    Checkpoint,
    /// A batch head (`channel-batch` context), size and root only.
    Batch,
}

/// A channel-signed statement whose signature verified with the pinned channel key.
#[derive(Debug, Clone)]
pub struct Statement {
    /// Update answer or checkpoint.
    pub kind: StatementKind,
    /// First index of the entries carried (equals `size` for a checkpoint).
    pub since: u64,
    /// The tree size the root is for.
    pub size: u64,
    /// The signed root at `size`.
    pub root: Hash,
    /// Leaf hashes of the entries `since..size` (empty for a checkpoint).
    pub leaves: Vec<Hash>,
    /// The signed statement as received.
    pub signed: Signed,
}

/// Why statements could not serve as fork evidence.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// A statement is not signed by the pinned channel key (under either statement context).
    #[error("a statement does not verify with the pinned channel key: {0}")]
    NotChannelSigned(WireError),
    /// A statement is signed, but is for another channel, version or has sizes that do not add up.
    #[error("a statement is malformed: {0}")]
    Malformed(String),
    /// No statements, or more than the limit.
    #[error("{got} evidence statements; between 1 and {max} are accepted")]
    Count {
        /// Statements given.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// The statements verify, but do not contradict each other.
    #[error("the statements do not contradict each other")]
    NoContradiction,
}

/// A contradiction between channel-signed statements: proof that the channel forked its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contradiction {
    /// Two statements give different roots for the same size.
    SameSizeDifferentRoots {
        /// The size.
        size: u64,
    },
    /// Two statements carry different entries at the same index.
    ConflictingEntries {
        /// The index.
        index: u64,
    },
    /// The entries the statements carry from index 0 do not hash to a statement's root.
    RootMismatch {
        /// The size whose root is wrong.
        size: u64,
    },
}

impl std::fmt::Display for Contradiction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Contradiction::SameSizeDifferentRoots { size } => {
                write!(f, "two signed roots for size {size}")
            }
            Contradiction::ConflictingEntries { index } => {
                write!(f, "two different signed entries at index {index}")
            }
            Contradiction::RootMismatch { size } => write!(
                f,
                "the signed root at size {size} is not the root of the signed entries"
            ),
        }
    }
}

/// Verifies `signed` as a statement of the channel `origin` with its pinned `key` (signature
/// under the `channel-update` or `checkpoint` context, origin, version, sizes) and hashes its
/// entries. `limit` bounds the payload size. Nonce and time are not looked at.
pub fn parse_statement(
    signed: &Signed,
    origin: &ChannelName,
    key: &PublicKey,
    limit: u64,
) -> Result<Statement, EvidenceError> {
    match signed.open::<UpdatePayload>(key, Context::ChannelUpdate, limit) {
        Ok(p) => {
            if p.v != WIRE_VERSION || &p.origin != origin {
                return Err(EvidenceError::Malformed(format!(
                    "update statement for channel {:?}, version {}",
                    p.origin.as_str(),
                    p.v
                )));
            }
            check_update_sizes(&p).map_err(|e| EvidenceError::Malformed(e.to_string()))?;
            let leaves = p
                .entries
                .iter()
                .map(|e| Blake2b256.hash_leaf(e.as_bytes()))
                .collect();
            Ok(Statement {
                kind: StatementKind::Update,
                since: p.since,
                size: p.size,
                root: p.root.0,
                leaves,
                signed: signed.clone(),
            })
        }
        // Not an update statement: a checkpoint is the only other statement kind.
        Err(WireError::Misbehaved(_)) => {
            let limits = Limits {
                max_small_response_bytes: limit,
                ..Limits::default()
            };
            let cp = match verify_checkpoint(signed, key, Some(origin), &limits) {
                Ok(cp) => cp,
                Err(WireError::Misbehaved(crate::wire::Misbehavior::BadSignature(_))) => {
                    return parse_batch_head(signed, origin, key, limit);
                }
                Err(other) => return Err(EvidenceError::Malformed(other.to_string())),
            };
            Ok(Statement {
                kind: StatementKind::Checkpoint,
                since: cp.size(),
                size: cp.size(),
                root: cp.root().0,
                leaves: Vec::new(),
                signed: signed.clone(),
            })
        }
        Err(e) => Err(EvidenceError::Malformed(e.to_string())),
    }
}

/// The last statement kind [`parse_statement`] tries: a batch head.
fn parse_batch_head(
    signed: &Signed,
    origin: &ChannelName,
    key: &PublicKey,
    limit: u64,
) -> Result<Statement, EvidenceError> {
    let head = open_head(signed, key, origin, limit).map_err(|e| match e {
        WireError::Misbehaved(crate::wire::Misbehavior::BadSignature(_)) => {
            EvidenceError::NotChannelSigned(e)
        }
        other => EvidenceError::Malformed(other.to_string()),
    })?;
    Ok(Statement {
        kind: StatementKind::Batch,
        since: head.size,
        size: head.size,
        root: head.root.0,
        leaves: Vec::new(),
        signed: signed.clone(),
    })
}

impl Statement {
    /// The statement an update answer makes, without verifying it again: a
    /// [`VerifiedUpdate`] already passed every check [`parse_statement`] makes.
    pub fn from_update(update: &VerifiedUpdate) -> Self {
        Statement {
            kind: if update.is_batched() {
                StatementKind::Batch
            } else {
                StatementKind::Update
            },
            since: update.since(),
            size: update.size(),
            root: update.root().0,
            leaves: update
                .entries()
                .iter()
                .map(|e| Blake2b256.hash_leaf(e.as_bytes()))
                .collect(),
            signed: update.signed().clone(),
        }
    }
}

/// Looks for a contradiction among verified statements (see the module docs for the three
/// kinds). Costs one hash per carried entry plus one root computation per statement covered
/// from index 0.
pub fn find_contradiction(statements: &[Statement]) -> Option<Contradiction> {
    contradiction_among(&statements.iter().collect::<Vec<_>>())
}

/// [`find_contradiction`] over borrowed statements.
pub fn contradiction_among(statements: &[&Statement]) -> Option<Contradiction> {
    for (i, a) in statements.iter().enumerate() {
        for b in statements.iter().skip(i + 1) {
            if a.size == b.size && a.root != b.root {
                return Some(Contradiction::SameSizeDifferentRoots { size: a.size });
            }
        }
    }
    let mut known: BTreeMap<u64, Hash> = BTreeMap::new();
    for s in statements.iter() {
        for (offset, leaf) in s.leaves.iter().enumerate() {
            let index = s.since + offset as u64;
            match known.get(&index) {
                Some(other) if other != leaf => {
                    return Some(Contradiction::ConflictingEntries { index });
                }
                Some(_) => {}
                None => {
                    known.insert(index, *leaf);
                }
            }
        }
    }
    // The prefix 0..covered of leaves known without a gap.
    let prefix: Vec<Hash> = known
        .iter()
        .enumerate()
        .take_while(|(position, (index, _))| *position as u64 == **index)
        .map(|(_, (_, leaf))| *leaf)
        .collect();
    for s in statements {
        let Ok(size) = usize::try_from(s.size) else {
            continue;
        };
        let Some(leaves) = prefix.get(..size) else {
            continue;
        };
        match root_from_leaf_hashes(&Blake2b256, leaves) {
            Ok(root) if root != s.root => {
                return Some(Contradiction::RootMismatch { size: s.size });
            }
            _ => {}
        }
    }
    None
}

/// Checks fork evidence received from a peer (or read back from storage): 1 to
/// `limits.max_fork_evidence` statements, each signed by the pinned `key` of channel `origin`,
/// that contradict each other. Returns the contradiction found.
pub fn check_evidence(
    evidence: &[Signed],
    origin: &ChannelName,
    key: &PublicKey,
    limits: &Limits,
) -> Result<Contradiction, EvidenceError> {
    if evidence.is_empty() || evidence.len() > limits.max_fork_evidence {
        return Err(EvidenceError::Count {
            got: evidence.len(),
            max: limits.max_fork_evidence,
        });
    }
    let statements = evidence
        .iter()
        .map(|s| parse_statement(s, origin, key, limits.max_update_response_bytes))
        .collect::<Result<Vec<_>, _>>()?;
    find_contradiction(&statements).ok_or(EvidenceError::NoContradiction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;
    use crate::merkle::CompactRange;
    use crate::wire::{Checkpoint, Nonce, TreeHash};

    struct Ch {
        name: ChannelName,
        key: PublicKey,
    }

    fn channel(kp: &KeyPair) -> Ch {
        Ch {
            name: ChannelName::parse("c.example").unwrap(),
            key: kp.public(),
        }
    }

    fn check_evidence(e: &[Signed], ch: &Ch, l: &Limits) -> Result<Contradiction, EvidenceError> {
        super::check_evidence(e, &ch.name, &ch.key, l)
    }

    fn root_of(entries: &[&str]) -> Hash {
        let mut r = CompactRange::new();
        for e in entries {
            r.push_entry(&Blake2b256, e.as_bytes()).unwrap();
        }
        r.root(&Blake2b256)
    }

    fn update(kp: &KeyPair, since: u64, entries: &[&str], root: Hash) -> Signed {
        let size = since + entries.len() as u64;
        Signed::sign(
            kp,
            Context::ChannelUpdate,
            &UpdatePayload {
                v: 1,
                origin: ChannelName::parse("c.example").unwrap(),
                nonce: Nonce::generate(),
                time: 1,
                since,
                size,
                root: TreeHash(root),
                tree_size: size,
                entries: entries.iter().map(|s| (*s).to_owned()).collect(),
            },
        )
    }

    fn checkpoint(kp: &KeyPair, size: u64, root: Hash) -> Signed {
        Signed::sign(
            kp,
            Context::Checkpoint,
            &Checkpoint {
                v: 1,
                origin: ChannelName::parse("c.example").unwrap(),
                size,
                root: TreeHash(root),
                time: 1,
            },
        )
    }

    #[test]
    fn contradictions_are_found_and_honest_statements_pass() {
        let kp = KeyPair::generate();
        let ch = channel(&kp);
        let l = Limits::default();
        let a = update(&kp, 0, &["a", "b", "c"], root_of(&["a", "b", "c"]));
        let a_more = update(&kp, 2, &["c", "d"], root_of(&["a", "b", "c", "d"]));
        let cp2 = checkpoint(&kp, 2, root_of(&["a", "b"]));
        // Honest: consistent statements are no evidence.
        for pair in [[a.clone(), a_more.clone()], [a.clone(), cp2.clone()]] {
            assert_eq!(
                check_evidence(&pair, &ch, &l),
                Err(EvidenceError::NoContradiction)
            );
        }
        // Same size, other root.
        let b = update(&kp, 0, &["a", "x", "c"], root_of(&["a", "x", "c"]));
        assert_eq!(
            check_evidence(&[a.clone(), b.clone()], &ch, &l),
            Ok(Contradiction::SameSizeDifferentRoots { size: 3 })
        );
        // Another entry at an index already signed (sizes differ).
        let c = update(&kp, 2, &["z", "d"], root_of(&["a", "b", "z", "d"]));
        assert_eq!(
            check_evidence(&[a.clone(), c], &ch, &l),
            Ok(Contradiction::ConflictingEntries { index: 2 })
        );
        // A root that is not the root of the entries the statement carries from 0.
        let lie = update(&kp, 0, &["a", "b"], root_of(&["a", "q"]));
        assert_eq!(
            check_evidence(std::slice::from_ref(&lie), &ch, &l),
            Ok(Contradiction::RootMismatch { size: 2 })
        );
        // A checkpoint contradicted by entries signed from 0.
        let bad_cp = checkpoint(&kp, 2, root_of(&["a", "y"]));
        assert_eq!(
            check_evidence(&[a.clone(), bad_cp], &ch, &l),
            Ok(Contradiction::RootMismatch { size: 2 })
        );
        // Not checkable without the rest of the log: a later page with a root that does not
        // extend what was seen, but no statement carries the entries from 0.
        let p1 = update(&kp, 1, &["b"], root_of(&["a", "b"]));
        let p2 = update(&kp, 2, &["c"], root_of(&["a", "B", "c"]));
        assert_eq!(
            check_evidence(&[p1, p2], &ch, &l),
            Err(EvidenceError::NoContradiction)
        );
    }

    #[test]
    fn evidence_must_be_channel_signed_and_bounded() {
        let kp = KeyPair::generate();
        let ch = channel(&kp);
        let l = Limits::default();
        let other = KeyPair::generate();
        let a = update(&kp, 0, &["a"], root_of(&["a"]));
        let forged = update(&other, 0, &["b"], root_of(&["b"]));
        assert!(matches!(
            check_evidence(&[a.clone(), forged], &ch, &l),
            Err(EvidenceError::NotChannelSigned(_))
        ));
        assert!(matches!(
            check_evidence(&[], &ch, &l),
            Err(EvidenceError::Count { got: 0, .. })
        ));
        assert!(matches!(
            check_evidence(&[a.clone(), a.clone(), a.clone()], &ch, &l),
            Err(EvidenceError::Count { got: 3, .. })
        ));
        // A notary answer signed by the channel key is not a channel statement.
        let wrong_ctx = Signed {
            payload: a.payload.clone(),
            signature: crate::protocol::sign(&kp, Context::NotaryAnswer, a.payload.as_bytes()),
        };
        assert!(matches!(
            check_evidence(&[a, wrong_ctx], &ch, &l),
            Err(EvidenceError::NotChannelSigned(_))
        ));
        // Another channel's statements, even with the same key, are not evidence about this one.
        let other_name = Ch {
            name: ChannelName::parse("other").unwrap(),
            key: ch.key,
        };
        let x = update(&kp, 0, &["a"], root_of(&["a"]));
        assert!(matches!(
            check_evidence(&[x], &other_name, &l),
            Err(EvidenceError::Malformed(_))
        ));
    }
}
