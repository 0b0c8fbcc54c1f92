//! The observed log: what the channel has shown this site, checked append-only.

use keyggdrasil::merkle::{
    Blake2b256, Hash, HashStore, MerkleError, StoreError, StoredIndex, TreeHasher,
    append_leaf_hash, root_at, root_from_leaf_hashes, stored_hash_count,
};
use keyggdrasil::names::ChannelName;
use keyggdrasil::wire::{Signed, VerifiedUpdate};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::ChannelConfig;
use crate::db::DbError;
use keyggdrasil::evidence::{Contradiction, Statement, StatementKind, contradiction_among};
use keyggdrasil::log::LogView;

/// Stored statements scanned at most when looking for the clearest fork evidence.
const MAX_EVIDENCE_SCAN: usize = 10_000;

/// The derived hash table of the observed tree (see the module docs of [`super`]).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS observed_tree (
    channel TEXT NOT NULL,
    pos     INTEGER NOT NULL,
    hash    BLOB NOT NULL,
    PRIMARY KEY (channel, pos)
) STRICT;
";

/// What [`observe`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Observed size before.
    pub previous_size: u64,
    /// Observed size after (never smaller than before).
    pub size: u64,
    /// Entries appended to the observed log.
    pub appended: u64,
    /// The size the statement is about.
    pub statement_size: u64,
    /// Its root, now recomputed and matching.
    pub root: Hash,
}

/// A recorded fork: the contradicting channel-signed statements, kept forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkRecord {
    /// When it was detected (Unix seconds, local clock).
    pub detected_at: u64,
    /// What was inconsistent, in one line.
    pub reason: String,
    /// The channel-signed statements, earlier one first (or one self-contradicting statement).
    pub statements: Vec<Signed>,
}

/// Why [`observe`] refused an update, or the observed log could not be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ObserveError {
    /// The channel just showed a view inconsistent with what it showed before. The evidence
    /// is now stored; the channel must not be trusted any more.
    #[error("FORK: channel {channel} showed this site two inconsistent views: {}", .record.reason)]
    Fork {
        /// The channel.
        channel: String,
        /// The stored evidence.
        record: Box<ForkRecord>,
    },
    /// A fork was recorded earlier for this channel: nothing from it is observed any more.
    #[error("FORK: channel {channel} was caught showing inconsistent views earlier ({}); nothing from it is accepted", .record.reason)]
    ForkRecorded {
        /// The channel.
        channel: String,
        /// The stored evidence.
        record: Box<ForkRecord>,
    },
    /// The update does not verify as a statement of this channel (not signed by its pinned
    /// key, another channel, sizes that do not add up, or not the same payload as the
    /// signed one).
    #[error("the update is not a valid statement of channel {channel}: {message}")]
    Invalid {
        /// The channel.
        channel: String,
        /// What is wrong.
        message: String,
    },
    /// The update starts after the end of the observed log: it cannot be checked.
    #[error("the update starts at {since} but only {observed} entries are observed")]
    Gap {
        /// Observed size.
        observed: u64,
        /// Where the update starts.
        since: u64,
    },
    /// The site database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The stored tree could not be read (a local storage problem).
    #[error("the observed tree is damaged: {0}")]
    Tree(#[from] MerkleError),
}

impl ObserveError {
    /// True for [`ObserveError::Fork`] and [`ObserveError::ForkRecorded`].
    pub fn is_fork(&self) -> bool {
        matches!(
            self,
            ObserveError::Fork { .. } | ObserveError::ForkRecorded { .. }
        )
    }

    /// The fork record, for both fork variants.
    pub fn fork(&self) -> Option<&ForkRecord> {
        match self {
            ObserveError::Fork { record, .. } | ObserveError::ForkRecorded { record, .. } => {
                Some(record)
            }
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for ObserveError {
    fn from(e: rusqlite::Error) -> Self {
        ObserveError::Db(DbError(e))
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The stored hashes of one channel's observed tree.
struct TreeStore<'c> {
    conn: &'c Connection,
    channel: &'c str,
}

impl HashStore for TreeStore<'_> {
    fn get(&self, index: StoredIndex) -> Result<Hash, StoreError> {
        let backend = |e: rusqlite::Error| StoreError::Backend(Box::new(e));
        let pos =
            i64::try_from(index.get()).map_err(|_| StoreError::Missing { index: index.get() })?;
        let blob: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT hash FROM observed_tree WHERE channel = ?1 AND pos = ?2")
            .map_err(backend)?
            .query_row(params![self.channel, pos], |r| r.get(0))
            .optional()
            .map_err(backend)?;
        let blob = blob.ok_or(StoreError::Missing { index: index.get() })?;
        blob_hash(&blob).ok_or_else(|| {
            StoreError::Backend(format!("stored hash at {} is not 32 bytes", index.get()).into())
        })
    }
}

fn blob_hash(blob: &[u8]) -> Option<Hash> {
    <[u8; 32]>::try_from(blob).ok()
}

fn tree_table_exists(conn: &Connection) -> Result<bool, rusqlite::Error> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'observed_tree')",
        [],
        |r| r.get(0),
    )
}

/// The number of observed entries of `channel`.
pub fn observed_size(conn: &Connection, channel: &ChannelName) -> Result<u64, DbError> {
    let size: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(MAX(idx) + 1, 0) FROM observed_entries WHERE channel = ?1",
        )?
        .query_row([channel.as_str()], |r| r.get(0))?;
    Ok(u64::try_from(size).unwrap_or(0))
}

/// True if the stored tree holds exactly the hashes of `size` leaves.
fn tree_complete(conn: &Connection, channel: &str, size: u64) -> Result<bool, ObserveError> {
    if !tree_table_exists(conn)? {
        return Ok(false);
    }
    let top: Option<i64> = conn
        .prepare_cached("SELECT MAX(pos) FROM observed_tree WHERE channel = ?1")?
        .query_row([channel], |r| r.get(0))?;
    let stored = top.map(|t| t.saturating_add(1)).unwrap_or(0);
    Ok(u64::try_from(stored).ok() == Some(stored_hash_count(size)?))
}

/// Leaf hashes `start..end` of the observed log.
fn leaves(
    conn: &Connection,
    channel: &str,
    start: u64,
    end: u64,
) -> Result<Vec<Hash>, ObserveError> {
    let mut stmt = conn.prepare_cached(
        "SELECT idx, leaf_hash FROM observed_entries WHERE channel = ?1 AND idx >= ?2 AND idx < ?3 ORDER BY idx",
    )?;
    let rows = stmt.query_map(params![channel, start as i64, end as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::with_capacity(usize::try_from(end.saturating_sub(start)).unwrap_or(0));
    for (expected, row) in (start..end).zip(rows) {
        let (idx, blob) = row?;
        let hash = blob_hash(&blob).filter(|_| u64::try_from(idx).ok() == Some(expected));
        out.push(hash.ok_or(MerkleError::Store(StoreError::Missing { index: expected }))?);
    }
    if out.len() as u64 != end.saturating_sub(start) {
        return Err(MerkleError::Store(StoreError::Missing {
            index: start + out.len() as u64,
        })
        .into());
    }
    Ok(out)
}

/// The root of the observed log of `channel` at `size`, or `None` if fewer entries are
/// observed. Size 0 gives the empty root. O(log n) reads from the stored tree (falls back to
/// O(n) over the leaf hashes if the stored tree is missing, e.g. before the first
/// [`observe`] of this version).
pub fn observed_root_at(
    conn: &Connection,
    channel: &ChannelName,
    size: u64,
) -> Result<Option<Hash>, ObserveError> {
    let n = observed_size(conn, channel)?;
    if size > n {
        return Ok(None);
    }
    if size == 0 {
        return Ok(Some(Blake2b256.empty_root()));
    }
    let name = channel.as_str();
    if tree_complete(conn, name, n)? {
        let store = TreeStore {
            conn,
            channel: name,
        };
        return Ok(Some(root_at(&Blake2b256, size, &store)?));
    }
    Ok(Some(root_from_leaf_hashes(
        &Blake2b256,
        &leaves(conn, name, 0, size)?,
    )?))
}

/// The compact range of the observed log of `channel` at `size`, for extending that prefix
/// (the accepted log is a prefix of the observed one: see [`crate::snapshot`]); `None` if fewer
/// entries are observed. O(log n) reads from the stored tree (O(n) over the leaf hashes if the
/// stored tree is missing, as in [`observed_root_at`]).
pub fn observed_view(
    conn: &Connection,
    channel: &ChannelName,
    size: u64,
) -> Result<Option<LogView>, ObserveError> {
    let n = observed_size(conn, channel)?;
    if size > n {
        return Ok(None);
    }
    let name = channel.as_str();
    if tree_complete(conn, name, n)? {
        let store = TreeStore {
            conn,
            channel: name,
        };
        return Ok(Some(LogView::from_store(size, &store)?));
    }
    let mut store = keyggdrasil::merkle::MemoryStore::new();
    for leaf in leaves(conn, name, 0, size)? {
        store.append_leaf_hash(&Blake2b256, leaf)?;
    }
    Ok(Some(LogView::from_store(size, &store)?))
}

/// The observed leaf hash at `index` of `channel`, if that entry was observed.
pub fn observed_leaf(
    conn: &Connection,
    channel: &ChannelName,
    index: u64,
) -> Result<Option<Hash>, ObserveError> {
    let Some(end) = index.checked_add(1) else {
        return Ok(None);
    };
    if end > observed_size(conn, channel)? {
        return Ok(None);
    }
    Ok(leaves(conn, channel.as_str(), index, end)?.first().copied())
}

/// The fork recorded for `channel`, if any.
pub fn fork_record(
    conn: &Connection,
    channel: &ChannelName,
) -> Result<Option<ForkRecord>, ObserveError> {
    let row: Option<(i64, String)> = conn
        .query_row(
            "SELECT detected_at, evidence FROM fork_evidence WHERE channel = ?1",
            [channel.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((detected_at, text)) = row else {
        return Ok(None);
    };
    // The row exists, so a fork was recorded: even unreadable evidence must keep the channel
    // blocked, so parse failures become a record with the raw text explained.
    Ok(Some(serde_json::from_str(&text).unwrap_or_else(|e| {
        ForkRecord {
            detected_at: u64::try_from(detected_at).unwrap_or(0),
            reason: format!("recorded fork evidence could not be read back: {e}"),
            statements: Vec::new(),
        }
    })))
}

/// Rebuilds the stored tree of `channel` from its observed leaf hashes if it is not exactly
/// the tree of `size` leaves.
fn ensure_tree(conn: &Connection, channel: &str, size: u64) -> Result<(), ObserveError> {
    conn.execute_batch(SCHEMA)?;
    if tree_complete(conn, channel, size)? {
        return Ok(());
    }
    tracing::warn!(
        channel,
        size,
        "rebuilding the observed tree hashes from the observed leaves"
    );
    conn.execute("DELETE FROM observed_tree WHERE channel = ?1", [channel])?;
    let all = leaves(conn, channel, 0, size)?;
    for (i, leaf) in all.into_iter().enumerate() {
        write_tree_leaf(conn, channel, i as u64, leaf)?;
    }
    Ok(())
}

fn write_tree_leaf(
    conn: &Connection,
    channel: &str,
    size: u64,
    leaf: Hash,
) -> Result<(), ObserveError> {
    let new = append_leaf_hash(&Blake2b256, size, leaf, &TreeStore { conn, channel })?;
    let mut stmt =
        conn.prepare_cached("INSERT INTO observed_tree (channel, pos, hash) VALUES (?1, ?2, ?3)")?;
    for (pos, hash) in new.iter() {
        stmt.execute(params![channel, pos.get() as i64, &hash[..]])?;
    }
    Ok(())
}

/// Records what the channel showed this site in `update`, after checking it against
/// everything observed before (see the module docs of [`super`]), all in one SQLite
/// transaction.
///
/// The update's signed statement is re-verified with the pinned key of `channel`, and the
/// leaves are hashed from the exact entry bytes inside it, so nothing but channel-signed bytes
/// is recorded. Checks, in order: no fork recorded for the channel; the update starts within
/// the observed log; entries it repeats have the leaf hashes observed before; the root of the
/// observed leaves plus its new ones at its size is its signed root. The last two failing is a
/// fork: the contradicting statements are stored in `fork_evidence` (committed) and
/// [`ObserveError::Fork`] is returned; from then on every call for that channel returns
/// [`ObserveError::ForkRecorded`].
pub fn observe(
    conn: &mut Connection,
    channel: &ChannelConfig,
    update: &VerifiedUpdate,
) -> Result<Observation, ObserveError> {
    observe_after_leaf_hashes(conn, channel, &[], update)
}

/// [`observe`] for a notary far behind: `leaf_hashes` are the (unsigned) leaf hashes of the
/// entries between the observed size and `update.since()`, from `GET /v1/leaves`. Before
/// anything is written, the observed tree extended by them and by the update's own leaves must
/// hash to the update's signed root; if it does not, the answer is refused as
/// [`ObserveError::Invalid`] and nothing is stored (unsigned hashes are no evidence of a fork).
/// Then the hashes are stored as observed leaves and the update is observed as usual, in the
/// same transaction.
///
/// What the notary can still prove afterwards is in docs/site-operator.md ("A notary far
/// behind"): the leaves in the hashed range are committed to by the signed root, but no
/// statement carries them, so a later contradiction inside that range is evidence checkable
/// against this site's observed log, not from the statements alone.
pub fn observe_after_leaf_hashes(
    conn: &mut Connection,
    channel: &ChannelConfig,
    leaf_hashes: &[Hash],
    update: &VerifiedUpdate,
) -> Result<Observation, ObserveError> {
    let name = channel.name.as_str();
    let invalid = |message: String| ObserveError::Invalid {
        channel: name.to_owned(),
        message,
    };
    // A verified update already passed every statement check: no need to verify it again, only
    // to see that it was verified for this channel.
    if update.channel_key() != &channel.key || update.origin() != &channel.name {
        return Err(invalid(
            "the update was verified for another channel or key".to_owned(),
        ));
    }
    let stmt = Statement::from_update(update);

    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(record) = fork_record(&tx, &channel.name)? {
        return Err(ObserveError::ForkRecorded {
            channel: name.to_owned(),
            record: Box::new(record),
        });
    }
    let previous = observed_size(&tx, &channel.name)?;
    let hashed_end = previous.saturating_add(leaf_hashes.len() as u64);
    if stmt.since > hashed_end || (!leaf_hashes.is_empty() && stmt.since != hashed_end) {
        return Err(ObserveError::Gap {
            observed: hashed_end,
            since: stmt.since,
        });
    }
    ensure_tree(&tx, name, previous)?;
    let mut n = previous;
    if !leaf_hashes.is_empty() {
        let store = TreeStore {
            conn: &tx,
            channel: name,
        };
        let mut all = Vec::with_capacity(leaf_hashes.len() + stmt.leaves.len());
        all.extend_from_slice(leaf_hashes);
        all.extend_from_slice(&stmt.leaves);
        let root = LogView::from_store(n, &store)?.root_with_leaf_hashes(&all)?;
        if root != stmt.root {
            return Err(invalid(format!(
                "the leaf hashes {n}..{hashed_end} it served do not lead to its signed root at \
                 size {} (nothing stored; unsigned hashes are not fork evidence)",
                stmt.size
            )));
        }
        let mut insert = tx.prepare_cached(
            "INSERT INTO observed_entries (channel, idx, leaf_hash) VALUES (?1, ?2, ?3)",
        )?;
        for leaf in leaf_hashes {
            insert.execute(params![name, n as i64, &leaf[..]])?;
            write_tree_leaf(&tx, name, n, *leaf)?;
            n += 1;
        }
    }

    // (a) Entries already observed must be the same.
    let overlap_end = stmt.size.min(n);
    if stmt.since < overlap_end {
        let old = leaves(&tx, name, stmt.since, overlap_end)?;
        if let Some(offset) = old.iter().zip(&stmt.leaves).position(|(a, b)| a != b) {
            let index = stmt.since + offset as u64;
            let reason = format!(
                "entry {index} differs from the entry the channel showed before at that index"
            );
            let record = record_fork(&tx, name, &stmt, Conflict::Leaf(index), reason)?;
            tx.commit()?;
            return Err(ObserveError::Fork {
                channel: name.to_owned(),
                record: Box::new(record),
            });
        }
    }

    // (b) The root over observed leaves plus the new ones must be the signed root.
    let store = TreeStore {
        conn: &tx,
        channel: name,
    };
    let new_leaves = stmt
        .leaves
        .get(usize::try_from(n.saturating_sub(stmt.since)).unwrap_or(usize::MAX)..)
        .unwrap_or(&[]);
    let recomputed = if stmt.size <= n {
        root_at(&Blake2b256, stmt.size, &store)?
    } else {
        LogView::from_store(n, &store)?.root_with_leaf_hashes(new_leaves)?
    };
    let same_size_root: Option<Vec<u8>> = tx
        .query_row(
            "SELECT root FROM observed_statements WHERE channel = ?1 AND size = ?2",
            params![name, stmt.size as i64],
            |r| r.get(0),
        )
        .optional()?;
    let same_size_differs = same_size_root.is_some_and(|r| r.as_slice() != stmt.root.as_slice());
    if recomputed != stmt.root || same_size_differs {
        // (c) A root that does not extend the observed leaves, or two roots for one size.
        let reason = if same_size_differs {
            format!(
                "the channel signed two different roots for size {}",
                stmt.size
            )
        } else if stmt.since == 0 || stmt.size <= n {
            format!(
                "the signed root at size {} is not the root of the entries the channel showed",
                stmt.size
            )
        } else {
            format!(
                "the signed root at size {} does not extend the {n} entries the channel showed before",
                stmt.size
            )
        };
        let record = record_fork(&tx, name, &stmt, Conflict::Root, reason)?;
        tx.commit()?;
        return Err(ObserveError::Fork {
            channel: name.to_owned(),
            record: Box::new(record),
        });
    }

    // Consistent: append the new leaves and keep the statement.
    let mut size = n;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO observed_entries (channel, idx, leaf_hash) VALUES (?1, ?2, ?3)",
        )?;
        for leaf in new_leaves {
            insert.execute(params![name, size as i64, &leaf[..]])?;
            write_tree_leaf(&tx, name, size, *leaf)?;
            size += 1;
        }
    }
    let text = serde_json::to_string(update.signed())
        .map_err(|e| invalid(format!("could not serialise the statement: {e}")))?;
    tx.execute(
        "INSERT OR IGNORE INTO observed_statements (channel, size, root, statement) VALUES (?1, ?2, ?3, ?4)",
        params![name, stmt.size as i64, &stmt.root[..], text],
    )?;
    tx.commit()?;
    Ok(Observation {
        previous_size: previous,
        size,
        appended: size - previous,
        statement_size: stmt.size,
        root: stmt.root,
    })
}

/// Where the new statement disagreed with the observed log.
enum Conflict {
    /// Another leaf at this index.
    Leaf(u64),
    /// Another root at the statement's size.
    Root,
}

/// Chooses the evidence for a fork and stores it (inside the caller's transaction).
///
/// Preference: the new statement alone if it contradicts itself; else a stored statement that
/// contradicts it in a way anybody can check from the two alone (same size, or entries, or a
/// root covered by the entries they carry from 0); else the stored statement that committed
/// to what the new one contradicts (checkable only against this site's observed leaves).
fn record_fork(
    conn: &Connection,
    channel: &str,
    new: &Statement,
    conflict: Conflict,
    reason: String,
) -> Result<ForkRecord, ObserveError> {
    let mut statements = vec![new.signed.clone()];
    let mut proof: Option<Contradiction> = contradiction_among(&[new]);
    if proof.is_none() {
        let stored = stored_statements(conn, channel, new)?;
        for old in &stored {
            if let Some(c) = contradiction_among(&[old, new]) {
                proof = Some(c);
                statements = vec![old.signed.clone(), new.signed.clone()];
                break;
            }
        }
        if proof.is_none() {
            let committed = match conflict {
                // The first statement that committed to the leaf at `index`.
                Conflict::Leaf(index) => stored
                    .iter()
                    .filter(|s| s.size > index)
                    .min_by_key(|s| s.size),
                // The newest statement the new one should extend, or the smallest beyond it.
                Conflict::Root => stored
                    .iter()
                    .filter(|s| s.size <= new.size)
                    .max_by_key(|s| s.size)
                    .or_else(|| stored.iter().min_by_key(|s| s.size)),
            };
            if let Some(old) = committed {
                statements = vec![old.signed.clone(), new.signed.clone()];
            }
        }
    }
    let reason = match proof {
        Some(c) => format!("{reason} (checkable from the evidence alone: {c})"),
        None => format!(
            "{reason} (checkable only against this site's observed log: the evidence alone does not prove it)"
        ),
    };
    let record = ForkRecord {
        detected_at: now_secs(),
        reason,
        statements,
    };
    let text = serde_json::to_string(&record).map_err(|e| ObserveError::Invalid {
        channel: channel.to_owned(),
        message: format!("could not serialise the evidence: {e}"),
    })?;
    conn.execute(
        "INSERT INTO fork_evidence (channel, detected_at, evidence) VALUES (?1, ?2, ?3)",
        params![channel, record.detected_at as i64, text],
    )?;
    tracing::error!(channel, reason = %record.reason, "FORK DETECTED: the channel showed inconsistent views; evidence stored");
    Ok(record)
}

/// Stored statements of `channel` (at most [`MAX_EVIDENCE_SCAN`]), the one at the size of
/// `new` first, then by size. Statements that no longer parse are skipped.
fn stored_statements(
    conn: &Connection,
    channel: &str,
    new: &Statement,
) -> Result<Vec<Statement>, ObserveError> {
    let mut stmt = conn.prepare(
        "SELECT statement FROM observed_statements WHERE channel = ?1 ORDER BY size = ?2 DESC, size LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![channel, new.size as i64, MAX_EVIDENCE_SCAN as i64],
        |r| r.get::<_, String>(0),
    )?;
    let mut out = Vec::new();
    for text in rows {
        let text = text?;
        let Ok(signed) = serde_json::from_str::<Signed>(&text) else {
            continue;
        };
        // Stored statements were verified when observed; parse them without a key check by
        // reading the payload, which this site itself wrote.
        if let Some(s) = parse_stored(&signed) {
            out.push(s);
        }
    }
    Ok(out)
}

/// Parses a statement this site stored itself (its signature was verified when stored).
fn parse_stored(signed: &Signed) -> Option<Statement> {
    let p: keyggdrasil::wire::UpdatePayload = serde_json::from_str(&signed.payload).ok()?;
    Some(Statement {
        kind: StatementKind::Update,
        since: p.since,
        size: p.size,
        root: p.root.0,
        leaves: p
            .entries
            .iter()
            .map(|e| Blake2b256.hash_leaf(e.as_bytes()))
            .collect(),
        signed: signed.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyggdrasil::entry::{Entry, EntryBody, Event};
    use keyggdrasil::keys::KeyPair;
    use keyggdrasil::limits::Limits;
    use keyggdrasil::names::SupplierName;
    use keyggdrasil::protocol::Context;
    use keyggdrasil::wire::{Nonce, TreeHash, UpdatePayload, UpdateRequest, verify_update};

    use crate::notary::{Contradiction, check_evidence};

    fn entry(name: &str) -> String {
        let kp = KeyPair::generate();
        let e = Entry::sign(
            EntryBody::new(
                SupplierName::parse(name).unwrap(),
                kp.public(),
                Event::MasterKey {
                    public_key: kp.public(),
                    derivation: None,
                },
            ),
            &kp,
        )
        .unwrap();
        String::from_utf8(e.as_bytes().to_vec()).unwrap()
    }

    fn root_of(entries: &[String]) -> Hash {
        let leaves: Vec<Hash> = entries
            .iter()
            .map(|e| Blake2b256.hash_leaf(e.as_bytes()))
            .collect();
        root_from_leaf_hashes(&Blake2b256, &leaves).unwrap()
    }

    struct Fixture {
        key: KeyPair,
        channel: ChannelConfig,
        conn: Connection,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let key = KeyPair::generate();
            let dir = tempfile::tempdir().unwrap();
            Self {
                channel: ChannelConfig {
                    name: ChannelName::parse("c.example").unwrap(),
                    key: key.public(),
                    mirrors: vec!["http://127.0.0.1:1".into()],
                    tile_mirrors: Vec::new(),
                    witness_policy: None,
                    max_cosignature_age_secs: None,
                },
                conn: crate::db::open(&dir.path().join("site.db")).unwrap(),
                _dir: dir,
                key,
            }
        }

        /// A channel-signed update of `log[since..size]` with the root `root` (default: honest).
        fn update(
            &self,
            log: &[String],
            since: usize,
            size: usize,
            root: Option<Hash>,
        ) -> VerifiedUpdate {
            let now = 1_000_000;
            let req = UpdateRequest {
                since: since as u64,
                nonce: Nonce::generate(),
            };
            let signed = Signed::sign(
                &self.key,
                Context::ChannelUpdate,
                &UpdatePayload {
                    v: 1,
                    origin: self.channel.name.clone(),
                    nonce: req.nonce,
                    time: now,
                    since: since as u64,
                    size: size as u64,
                    root: TreeHash(root.unwrap_or_else(|| root_of(&log[..size]))),
                    tree_size: log.len() as u64,
                    entries: log[since..size].to_vec(),
                },
            );
            verify_update(
                &signed,
                &self.key.public(),
                &self.channel.name,
                &req,
                now,
                &Limits::default(),
            )
            .unwrap()
        }

        fn observe(&mut self, u: &VerifiedUpdate) -> Result<Observation, ObserveError> {
            observe(&mut self.conn, &self.channel, u)
        }

        fn size(&self) -> u64 {
            observed_size(&self.conn, &self.channel.name).unwrap()
        }

        fn statements(&self) -> i64 {
            self.conn
                .query_row("SELECT COUNT(*) FROM observed_statements", [], |r| r.get(0))
                .unwrap()
        }
    }

    #[test]
    fn appends_pages_and_answers_roots_at_every_size() {
        let mut f = Fixture::new();
        let log: Vec<String> = (0..13).map(|i| entry(&format!("s{i}"))).collect();
        assert_eq!(
            observed_root_at(&f.conn, &f.channel.name, 0).unwrap(),
            Some(Blake2b256.empty_root())
        );
        let o = f.observe(&f.update(&log, 0, 5, None)).unwrap();
        assert_eq!((o.previous_size, o.size, o.appended), (0, 5, 5));
        // Overlapping page, repeated page, a page inside the observed log, an empty page.
        assert_eq!(f.observe(&f.update(&log, 3, 9, None)).unwrap().appended, 4);
        assert_eq!(f.observe(&f.update(&log, 3, 9, None)).unwrap().appended, 0);
        assert_eq!(f.observe(&f.update(&log, 1, 4, None)).unwrap().size, 9);
        assert_eq!(f.observe(&f.update(&log, 9, 9, None)).unwrap().size, 9);
        f.observe(&f.update(&log, 9, 13, None)).unwrap();
        assert_eq!(f.size(), 13);
        for size in 0..=13 {
            assert_eq!(
                observed_root_at(&f.conn, &f.channel.name, size).unwrap(),
                Some(root_of(&log[..size as usize])),
                "size {size}"
            );
        }
        assert_eq!(
            observed_root_at(&f.conn, &f.channel.name, 14).unwrap(),
            None
        );
        // The derived hash table is rebuilt if it goes missing.
        f.conn.execute("DELETE FROM observed_tree", []).unwrap();
        assert_eq!(
            observed_root_at(&f.conn, &f.channel.name, 7).unwrap(),
            Some(root_of(&log[..7]))
        );
        let mut longer = log.clone();
        longer.push(entry("s13"));
        f.observe(&f.update(&longer, 13, 14, None)).unwrap();
        assert_eq!(
            observed_root_at(&f.conn, &f.channel.name, 14).unwrap(),
            Some(root_of(&longer))
        );
        assert!(fork_record(&f.conn, &f.channel.name).unwrap().is_none());
    }

    #[test]
    fn a_gap_or_a_foreign_signature_is_refused_without_a_trace() {
        let mut f = Fixture::new();
        let log: Vec<String> = (0..4).map(|i| entry(&format!("s{i}"))).collect();
        f.observe(&f.update(&log, 0, 2, None)).unwrap();
        assert!(matches!(
            f.observe(&f.update(&log, 3, 4, None)),
            Err(ObserveError::Gap {
                observed: 2,
                since: 3
            })
        ));
        let mut other = Fixture::new();
        let u = other.update(&log, 0, 4, None);
        other.channel.key = KeyPair::generate().public();
        assert!(matches!(
            other.observe(&u),
            Err(ObserveError::Invalid { .. })
        ));
        assert_eq!((f.size(), f.statements()), (2, 1));
        assert_eq!(other.size(), 0);
    }

    #[test]
    fn same_size_other_root_is_a_fork_and_blocks_the_channel() {
        let mut f = Fixture::new();
        let a: Vec<String> = (0..3).map(|i| entry(&format!("a{i}"))).collect();
        let mut b = a.clone();
        b[1] = entry("b1");
        b[2] = entry("b2");
        f.observe(&f.update(&a, 0, 3, None)).unwrap();
        let err = f.observe(&f.update(&b, 0, 3, None)).unwrap_err();
        let ObserveError::Fork { record, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(record.statements.len(), 2);
        assert_eq!(
            check_evidence(
                &record.statements,
                &f.channel.name,
                &f.channel.key,
                &Limits::default()
            ),
            Ok(Contradiction::SameSizeDifferentRoots { size: 3 })
        );
        // Nothing of the second view was observed; everything later is refused.
        assert_eq!(f.size(), 3);
        assert_eq!(f.statements(), 1);
        let again = f.observe(&f.update(&a, 0, 3, None)).unwrap_err();
        assert!(matches!(again, ObserveError::ForkRecorded { .. }));
        assert!(
            crate::db::fork_evidence(&f.conn, "c.example")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn rewritten_entries_and_roots_that_do_not_extend_are_forks() {
        // Another entry at an observed index, in a later page.
        let mut f = Fixture::new();
        let a: Vec<String> = (0..4).map(|i| entry(&format!("a{i}"))).collect();
        let mut b = a.clone();
        b[2] = entry("b2");
        f.observe(&f.update(&a, 0, 3, None)).unwrap();
        let err = f.observe(&f.update(&b, 2, 4, None)).unwrap_err();
        let record = err.fork().unwrap();
        assert_eq!(
            check_evidence(
                &record.statements,
                &f.channel.name,
                &f.channel.key,
                &Limits::default()
            ),
            Ok(Contradiction::ConflictingEntries { index: 2 })
        );

        // A root that does not extend the observed leaves, checkable from the pair.
        let mut g = Fixture::new();
        g.observe(&g.update(&a, 0, 3, None)).unwrap();
        let lie = g.update(&a, 3, 4, Some([9; 32]));
        let record = g.observe(&lie).unwrap_err().fork().unwrap().clone();
        assert_eq!(
            check_evidence(
                &record.statements,
                &g.channel.name,
                &g.channel.key,
                &Limits::default()
            ),
            Ok(Contradiction::RootMismatch { size: 4 })
        );

        // The same lie after two pages: no pair of statements carries every entry from 0, so
        // the evidence is kept but only this site can check it.
        let mut h = Fixture::new();
        h.observe(&h.update(&a, 0, 2, None)).unwrap();
        h.observe(&h.update(&a, 2, 3, None)).unwrap();
        let lie = h.update(&a, 3, 4, Some([9; 32]));
        let record = h.observe(&lie).unwrap_err().fork().unwrap().clone();
        assert_eq!(record.statements.len(), 2);
        assert!(record.reason.contains("only against this site"));
        assert!(
            check_evidence(
                &record.statements,
                &h.channel.name,
                &h.channel.key,
                &Limits::default()
            )
            .is_err()
        );

        // A statement whose root does not match the entries it carries from 0 is its own proof.
        let mut k = Fixture::new();
        let lie = k.update(&a, 0, 2, Some([1; 32]));
        let record = k.observe(&lie).unwrap_err().fork().unwrap().clone();
        assert_eq!(record.statements.len(), 1);
        assert_eq!(
            check_evidence(
                &record.statements,
                &k.channel.name,
                &k.channel.key,
                &Limits::default()
            ),
            Ok(Contradiction::RootMismatch { size: 2 })
        );
        assert_eq!(k.size(), 0);
    }
}
