//! The site's key-state snapshot: what the accepted log of each channel says (suppliers, keys
//! and their status, releases, revocations, attestations), stored in `site.db` so that a run
//! applies only the entries that are new, instead of replaying and re-verifying the whole log.
//!
//! # What is stored, per channel
//!
//! - `accepted_heads`: the size of the accepted log and the root the site accepted at that size
//!   (channel-signed and confirmed by peers when it was accepted);
//! - `state_keys`, `state_releases`: the key state after that many entries, as the canonical rows
//!   of [`keyggdrasil::snapshot`], each with a check digest ([`row_digest`]) bound to the channel;
//! - `log_entries` (the entries themselves, see [`crate::db`]).
//!
//! All three change in one transaction ([`advance`]): the new entries, the rows they changed
//! and the new head. A crash leaves the old head, rows and entries, or the new ones.
//!
//! # The start check, O(log n)
//!
//! Before a run uses the snapshot, [`open`] checks that it belongs to the stored log: the
//! stored entries number exactly the head's size; the root recomputed from the stored tree
//! hashes at that size (the observed tree, of which the accepted log is a prefix:
//! [`crate::notary::observed_view`]) is the head's root; the newest stored entry hashes to
//! its leaf there. Every row read later is checked against its digest and decoded by the
//! refusing decoder. A mismatch is [`StateError::Mismatch`]: a local error (exit 5) that names
//! `continuum check`, and the run changes nothing.
//!
//! What the start check does not see, and [`check`] (a full replay) does: an older entry edited
//! in place (only the newest is rehashed at start), and a whole valid row put back from an older
//! state with its digest. Whoever can write `site.db` can also write the installed files, so
//! the digest is a guard against corruption and mistakes, not against that user.

use keyggdrasil::entry::Entry;
use keyggdrasil::log::LogView;
use keyggdrasil::merkle::{Blake2b256, CompactRange, Hash, TreeHasher};
use keyggdrasil::names::{ChannelName, PackageName, SupplierName};
use keyggdrasil::snapshot::{
    Changes, KeyRow, PartialState, ReleaseId, ReleaseRow, RowSource, SnapshotError, row_digest,
};
use keyggdrasil::state::KeyState;
use rusqlite::{Connection, OptionalExtension, params};
use thiserror::Error;

use crate::db::DbError;
use crate::notary::ObserveError;

/// The snapshot tables (created by [`crate::db::open`]).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accepted_heads (
    channel TEXT PRIMARY KEY,
    size    INTEGER NOT NULL,
    root    BLOB NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS state_keys (
    channel  TEXT NOT NULL,
    key      BLOB NOT NULL,
    supplier TEXT NOT NULL,
    row      BLOB NOT NULL,
    digest   BLOB NOT NULL,
    PRIMARY KEY (channel, key)
) STRICT;
CREATE INDEX IF NOT EXISTS state_keys_by_supplier ON state_keys (channel, supplier);
CREATE TABLE IF NOT EXISTS staged_entries (
    channel TEXT NOT NULL,
    idx     INTEGER NOT NULL,
    bytes   BLOB NOT NULL,
    PRIMARY KEY (channel, idx)
) STRICT;
CREATE TABLE IF NOT EXISTS state_releases (
    channel  TEXT NOT NULL,
    supplier TEXT NOT NULL,
    package  TEXT NOT NULL,
    version  TEXT NOT NULL,
    row      BLOB NOT NULL,
    digest   BLOB NOT NULL,
    PRIMARY KEY (channel, supplier, package, version)
) STRICT;
";

/// Why the stored snapshot of a channel could not be used or advanced.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StateError {
    /// The site database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The stored tree hashes could not be read.
    #[error(transparent)]
    Tree(#[from] ObserveError),
    /// A question about state that was not loaded: a bug in continuum, not a judgement of the
    /// log; nothing was changed.
    #[error("internal error: {0}")]
    NotLoaded(String),
    /// The stored key state does not belong to the stored log, or a row is damaged.
    #[error(
        "channel {channel}: the stored key state does not match the stored log: {detail}; nothing was changed (run `continuum check` to replay the whole log and find the damage, then `continuum check --repair` to rebuild the state from the entries that verify)"
    )]
    Mismatch {
        /// The channel.
        channel: String,
        /// What did not match.
        detail: String,
    },
}

impl From<rusqlite::Error> for StateError {
    fn from(e: rusqlite::Error) -> Self {
        StateError::Db(DbError(e))
    }
}

fn mismatch(channel: &str, detail: impl Into<String>) -> StateError {
    StateError::Mismatch {
        channel: channel.to_owned(),
        detail: detail.into(),
    }
}

/// The accepted log of a channel as the snapshot records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Entries accepted.
    pub size: u64,
    /// The root accepted at that size.
    pub root: Hash,
}

/// The stored head of `channel`, if a snapshot was ever written for it.
pub fn head(conn: &Connection, channel: &str) -> Result<Option<Head>, StateError> {
    let row: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT size, root FROM accepted_heads WHERE channel = ?1")?
        .query_row([channel], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((size, root)) = row else {
        return Ok(None);
    };
    let size = u64::try_from(size).map_err(|_| mismatch(channel, "the head's size is negative"))?;
    let root = <[u8; 32]>::try_from(root.as_slice())
        .map_err(|_| mismatch(channel, "the head's root is not 32 bytes"))?;
    Ok(Some(Head { size, root }))
}

/// How many entries of `channel` are stored: one more than the highest index (O(log n) on the
/// primary key; a gap below it is found by [`check`]).
pub fn entry_count(conn: &Connection, channel: &str) -> Result<u64, StateError> {
    let n: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entries WHERE channel = ?1")?
        .query_row([channel], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The stored entry at `index` of `channel`, if any.
pub fn entry_at(conn: &Connection, channel: &str, index: u64) -> Result<Option<Vec<u8>>, DbError> {
    let Ok(idx) = i64::try_from(index) else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached("SELECT bytes FROM log_entries WHERE channel = ?1 AND idx = ?2")?
        .query_row(params![channel, idx], |r| r.get(0))
        .optional()?)
}

/// The accepted log of a channel, checked at start: its head and its compact range (to extend
/// it with new entries and recompute roots).
#[derive(Debug, Clone)]
pub struct Opened {
    /// The head.
    pub head: Head,
    /// The accepted log's compact range at `head.size`.
    pub view: LogView,
}

/// Opens the snapshot of `channel` for a run: the start check of the module docs (O(log n)),
/// or, for a site database from before snapshots, a one-time full replay that writes it.
pub fn open(conn: &Connection, channel: &ChannelName) -> Result<Opened, StateError> {
    let name = channel.as_str();
    let count = entry_count(conn, name)?;
    let head = match head(conn, name)? {
        Some(h) => h,
        None if count == 0 => Head {
            size: 0,
            root: Blake2b256.empty_root(),
        },
        None => {
            tracing::warn!(
                channel = name,
                entries = count,
                "building the key-state snapshot from the whole accepted log, once"
            );
            rebuild(conn, channel)?.head
        }
    };
    if count != head.size {
        return Err(mismatch(
            name,
            format!(
                "the key state covers {} entries but {count} entries are stored",
                head.size
            ),
        ));
    }
    let view = crate::notary::observed_view(conn, channel, head.size)?.ok_or_else(|| {
        mismatch(
            name,
            format!(
                "the stored tree hashes do not cover the {} accepted entries",
                head.size
            ),
        )
    })?;
    if view.root() != head.root {
        return Err(mismatch(
            name,
            format!(
                "the root recomputed from the stored tree hashes at size {} is not the root the site accepted",
                head.size
            ),
        ));
    }
    if let Some(last) = head.size.checked_sub(1) {
        let bytes = entry_at(conn, name, last)?
            .ok_or_else(|| mismatch(name, format!("stored entry {last} is missing")))?;
        let leaf = crate::notary::observed_leaf(conn, channel, last)?;
        if leaf != Some(Blake2b256.hash_leaf(&bytes)) {
            return Err(mismatch(
                name,
                format!("stored entry {last} does not hash to its leaf in the stored tree"),
            ));
        }
    }
    Ok(Opened { head, view })
}

/// The stored rows of one channel, read through the digest check (see [`RowSource`]).
pub struct SiteRows<'c> {
    conn: &'c Connection,
    channel: &'c str,
}

impl<'c> SiteRows<'c> {
    /// The rows of `channel` in `conn`.
    pub fn new(conn: &'c Connection, channel: &'c str) -> Self {
        SiteRows { conn, channel }
    }

    fn checked(
        &self,
        row: Vec<u8>,
        digest: Vec<u8>,
        what: &dyn Fn() -> String,
    ) -> Result<Vec<u8>, StateError> {
        if digest.as_slice() != row_digest(self.channel, &row) {
            return Err(mismatch(
                self.channel,
                format!(
                    "the stored row of {} does not match its check digest",
                    what()
                ),
            ));
        }
        Ok(row)
    }

    fn rows(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
        what: &dyn Fn() -> String,
    ) -> Result<Vec<Vec<u8>>, StateError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(args, |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (row, digest) = row?;
            out.push(self.checked(row, digest, what)?);
        }
        Ok(out)
    }
}

impl From<SnapshotError> for StateError {
    fn from(e: SnapshotError) -> Self {
        match e {
            SnapshotError::NotLoaded(what) => StateError::NotLoaded(format!(
                "the key state of {what} was asked about but not loaded"
            )),
            // The channel is not known here; SiteRows callers name it (see `named`).
            other => StateError::Mismatch {
                channel: String::new(),
                detail: other.to_string(),
            },
        }
    }
}

/// Puts the channel's name into a mismatch raised by keyggdrasil's row checks.
fn named(channel: &str) -> impl Fn(StateError) -> StateError + '_ {
    move |e| named_state_error(channel, e)
}

/// [`named`], for one error.
pub fn named_state_error(channel: &str, e: StateError) -> StateError {
    match e {
        StateError::Mismatch { channel: c, detail } if c.is_empty() => mismatch(channel, detail),
        other => other,
    }
}

impl RowSource for SiteRows<'_> {
    type Error = StateError;

    fn key_rows_of(&self, supplier: &SupplierName) -> Result<Vec<Vec<u8>>, StateError> {
        self.rows(
            "SELECT row, digest FROM state_keys WHERE channel = ?1 AND supplier = ?2",
            params![self.channel, supplier.as_str()],
            &|| format!("a key of {supplier}"),
        )
    }

    fn key_row(&self, key: &keyggdrasil::keys::PublicKey) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self
            .rows(
                "SELECT row, digest FROM state_keys WHERE channel = ?1 AND key = ?2",
                params![self.channel, &key.as_bytes()[..]],
                &|| format!("key {key}"),
            )?
            .pop())
    }

    fn release_row(&self, id: &ReleaseId) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self
            .rows(
                "SELECT row, digest FROM state_releases WHERE channel = ?1 AND supplier = ?2 AND package = ?3 AND version = ?4",
                params![self.channel, id.supplier.as_str(), id.package.as_str(), id.version.as_str()],
                &|| format!("{}/{} {}", id.supplier, id.package, id.version),
            )?
            .pop())
    }

    fn package_rows(
        &self,
        supplier: &SupplierName,
        package: &PackageName,
    ) -> Result<Vec<Vec<u8>>, StateError> {
        self.rows(
            "SELECT row, digest FROM state_releases WHERE channel = ?1 AND supplier = ?2 AND package = ?3",
            params![self.channel, supplier.as_str(), package.as_str()],
            &|| format!("a release of {supplier}/{package}"),
        )
    }
}

/// The key state of `channel` after `size` accepted entries with the given packages (and their
/// suppliers' keys) loaded: what installs, `status`, `info` and `rollback` ask about. O(rows of
/// those packages), whatever the log size.
pub fn load_packages<'a>(
    conn: &Connection,
    channel: &str,
    size: u64,
    packages: impl IntoIterator<Item = (&'a SupplierName, &'a PackageName)>,
) -> Result<PartialState, StateError> {
    let rows = SiteRows::new(conn, channel);
    let mut state = PartialState::new(size);
    for (supplier, package) in packages {
        state
            .load_package_from(&rows, supplier, package)
            .map_err(named(channel))?;
    }
    Ok(state)
}

/// Loads what applying `entries` after the stored state of `size` entries reads.
pub fn load_for<'a>(
    conn: &Connection,
    channel: &str,
    size: u64,
    entries: impl IntoIterator<Item = &'a Entry>,
) -> Result<PartialState, StateError> {
    PartialState::load(&SiteRows::new(conn, channel), size, entries).map_err(named(channel))
}

/// Inside the caller's transaction: appends `entries` at `start`, writes the rows `changes`
/// holds and the new head (`changes.size`, `root`). The one way the snapshot advances.
pub fn advance(
    tx: &Connection,
    channel: &str,
    start: u64,
    entries: &[&[u8]],
    changes: &Changes,
    root: &Hash,
) -> Result<(), StateError> {
    crate::db::append_accepted(tx, channel, start, entries)?;
    write_rows(tx, channel, &changes.keys, &changes.releases)?;
    set_head(
        tx,
        channel,
        &Head {
            size: changes.size,
            root: *root,
        },
    )
}

fn write_rows(
    tx: &Connection,
    channel: &str,
    keys: &[KeyRow],
    releases: &[ReleaseRow],
) -> Result<(), StateError> {
    for row in keys {
        let bytes = row.encode();
        tx.prepare_cached(
            "INSERT OR REPLACE INTO state_keys (channel, key, supplier, row, digest) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            channel,
            &row.key.as_bytes()[..],
            row.supplier.as_str(),
            &bytes,
            &row_digest(channel, &bytes)[..]
        ])?;
    }
    for row in releases {
        let bytes = row.encode();
        tx.prepare_cached(
            "INSERT OR REPLACE INTO state_releases (channel, supplier, package, version, row, digest) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            channel,
            row.id.supplier.as_str(),
            row.id.package.as_str(),
            row.id.version.as_str(),
            &bytes,
            &row_digest(channel, &bytes)[..]
        ])?;
    }
    Ok(())
}

fn set_head(tx: &Connection, channel: &str, head: &Head) -> Result<(), StateError> {
    let size = i64::try_from(head.size).map_err(|_| mismatch(channel, "log size out of range"))?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO accepted_heads (channel, size, root) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![channel, size, &head.root[..]])?;
    Ok(())
}

/// Forgets the entries a run fetched but did not apply (a run that fails before applying
/// leaves them; the next run fetches from the accepted size again).
pub fn clear_staged(conn: &Connection, channel: &str) -> Result<(), StateError> {
    conn.prepare_cached("DELETE FROM staged_entries WHERE channel = ?1")?
        .execute([channel])?;
    Ok(())
}

/// Keeps a verified page of new entries, starting at log index `start`, until the peers have
/// confirmed them: so that a run never holds the whole of a long catch-up in memory.
pub fn stage(
    conn: &Connection,
    channel: &str,
    start: u64,
    entries: &[keyggdrasil::entry::Entry],
) -> Result<(), StateError> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR REPLACE INTO staged_entries (channel, idx, bytes) VALUES (?1, ?2, ?3)",
        )?;
        for (i, e) in entries.iter().enumerate() {
            let idx = i64::try_from(start + i as u64)
                .map_err(|_| mismatch(channel, "log index out of range"))?;
            stmt.execute(params![channel, idx, e.as_bytes()])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The staged entries `start..end` of `channel`, in order; a missing one is a local error.
pub fn staged(
    conn: &Connection,
    channel: &str,
    start: u64,
    end: u64,
) -> Result<Vec<Vec<u8>>, StateError> {
    let (Ok(from), Ok(to)) = (i64::try_from(start), i64::try_from(end)) else {
        return Err(mismatch(channel, "log index out of range"));
    };
    let mut stmt = conn.prepare_cached(
        "SELECT idx, bytes FROM staged_entries WHERE channel = ?1 AND idx >= ?2 AND idx < ?3 ORDER BY idx",
    )?;
    let rows = stmt.query_map(params![channel, from, to], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::new();
    for (expected, row) in (from..to).zip(rows) {
        let (idx, bytes) = row?;
        if idx != expected {
            return Err(mismatch(
                channel,
                format!("staged entry {expected} is missing"),
            ));
        }
        out.push(bytes);
    }
    if out.len() as u64 != end - start {
        return Err(mismatch(
            channel,
            format!("staged entry {} is missing", start + out.len() as u64),
        ));
    }
    Ok(out)
}

/// What a full replay of a channel's stored entries found ([`check`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    /// The channel.
    pub channel: String,
    /// Entries stored.
    pub stored_entries: u64,
    /// Entries that parse, hash to their stored leaf and pass the key rules, from index 0.
    pub verified_entries: u64,
    /// The head's size, if a snapshot is stored.
    pub head_size: Option<u64>,
    /// True if the stored snapshot equals the replay of every stored entry.
    pub snapshot_matches: bool,
    /// What is wrong, for people (empty when all is well).
    pub problems: Vec<String>,
    /// True if `--repair` rebuilt the snapshot.
    pub repaired: bool,
}

impl CheckReport {
    /// True if nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The replay of the longest good prefix of the stored entries.
struct Replay {
    state: KeyState,
    range: CompactRange,
    stored: u64,
    problem: Option<String>,
}

/// Replays the stored entries of `channel` from index 0, verifying each again (parse,
/// signature and key rules, and its leaf hash against the observed tree when it holds one),
/// and stops at the first that fails. O(size) work: for `check`, never for a run.
fn replay(conn: &Connection, channel: &ChannelName) -> Result<Replay, StateError> {
    let name = channel.as_str();
    let mut state = KeyState::new();
    let mut range = CompactRange::new();
    let mut stmt =
        conn.prepare("SELECT idx, bytes FROM log_entries WHERE channel = ?1 ORDER BY idx")?;
    let mut rows = stmt.query([name])?;
    let mut stored = 0u64;
    let mut problem = None;
    let observed = crate::notary::observed_size(conn, channel)?;
    while let Some(row) = rows.next()? {
        stored += 1;
        if problem.is_some() {
            continue;
        }
        let idx: i64 = row.get(0)?;
        let bytes: Vec<u8> = row.get(1)?;
        let expected = state.size();
        if u64::try_from(idx).ok() != Some(expected) {
            problem = Some(format!("stored entry {expected} is missing"));
            continue;
        }
        let leaf = Blake2b256.hash_leaf(&bytes);
        if expected < observed
            && crate::notary::observed_leaf(conn, channel, expected)? != Some(leaf)
        {
            problem = Some(format!(
                "stored entry {expected} does not hash to its leaf in the stored tree (edited or corrupt)"
            ));
            continue;
        }
        let applied = Entry::parse(&bytes)
            .map_err(|e| format!("stored entry {expected} does not parse: {e}"))
            .and_then(|e| {
                state
                    .apply(&e)
                    .map_err(|e| format!("stored entry {expected} breaks the key rules: {e}"))
            });
        if let Err(p) = applied {
            problem = Some(p);
            continue;
        }
        if let Err(e) = range.push(&Blake2b256, leaf) {
            problem = Some(format!("stored entry {expected}: {e}"));
        }
    }
    Ok(Replay {
        state,
        range,
        stored,
        problem,
    })
}

/// Every stored row of `channel`, decoded through the digest check, sorted as
/// [`KeyState::rows`] sorts them.
fn stored_rows(
    conn: &Connection,
    channel: &str,
) -> Result<(Vec<KeyRow>, Vec<ReleaseRow>), StateError> {
    let rows = SiteRows::new(conn, channel);
    let keys = rows
        .rows(
            "SELECT row, digest FROM state_keys WHERE channel = ?1",
            [channel],
            &|| "a key".to_owned(),
        )?
        .iter()
        .map(|b| KeyRow::decode(b))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| mismatch(channel, e.to_string()))?;
    let releases = rows
        .rows(
            "SELECT row, digest FROM state_releases WHERE channel = ?1",
            [channel],
            &|| "a release".to_owned(),
        )?
        .iter()
        .map(|b| ReleaseRow::decode(b))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| mismatch(channel, e.to_string()))?;
    let state =
        KeyState::from_rows(0, keys, releases).map_err(|e| mismatch(channel, e.to_string()))?;
    Ok(state.rows())
}

/// `continuum check` for one channel: replays every stored entry (O(size)) and compares
/// the result with the stored snapshot. With `repair`, rebuilds the snapshot (rows and head)
/// from the longest prefix of entries that verifies, and drops stored entries after it (they
/// are fetched and verified again, peers included, by the next `update`); in one transaction.
pub fn check(
    conn: &Connection,
    channel: &ChannelName,
    repair: bool,
) -> Result<CheckReport, StateError> {
    let name = channel.as_str();
    let replay = replay(conn, channel)?;
    let head = head(conn, name)?;
    let mut problems = Vec::new();
    if let Some(p) = &replay.problem {
        problems.push(p.clone());
    }
    let verified = replay.state.size();
    let root = replay.range.root(&Blake2b256);
    match head {
        None if replay.stored > 0 => problems
            .push("no key-state snapshot is stored (the next update builds it once)".to_owned()),
        None => {}
        Some(h) => {
            if h.size != replay.stored {
                problems.push(format!(
                    "the key state covers {} entries but {} entries are stored",
                    h.size, replay.stored
                ));
            }
            if h.size == verified && h.root != root {
                problems.push(format!(
                    "the accepted root at size {} is not the root of the stored entries",
                    h.size
                ));
            }
        }
    }
    let snapshot_matches = match stored_rows(conn, name) {
        Ok(rows) => {
            let same = replay.problem.is_none() && rows == replay.state.rows();
            if !same && replay.problem.is_none() {
                problems.push(
                    "the stored key state differs from a replay of the stored entries".to_owned(),
                );
            }
            same
        }
        Err(e) => {
            problems.push(match e {
                StateError::Mismatch { detail, .. } => detail,
                other => return Err(other),
            });
            false
        }
    };
    let mut repaired = false;
    if repair && !problems.is_empty() {
        let tx = conn.unchecked_transaction()?;
        write_whole(&tx, name, &replay.state, &root)?;
        let cut = i64::try_from(verified).map_err(|_| mismatch(name, "log size out of range"))?;
        tx.execute(
            "DELETE FROM log_entries WHERE channel = ?1 AND idx >= ?2",
            params![name, cut],
        )?;
        tx.commit()?;
        repaired = true;
    }
    Ok(CheckReport {
        channel: name.to_owned(),
        stored_entries: replay.stored,
        verified_entries: verified,
        head_size: head.map(|h| h.size),
        snapshot_matches,
        problems,
        repaired,
    })
}

/// Replaces the whole snapshot of `channel` with `state` and the head (`state.size()`, `root`).
fn write_whole(
    tx: &Connection,
    channel: &str,
    state: &KeyState,
    root: &Hash,
) -> Result<(), StateError> {
    tx.execute("DELETE FROM state_keys WHERE channel = ?1", [channel])?;
    tx.execute("DELETE FROM state_releases WHERE channel = ?1", [channel])?;
    let (keys, releases) = state.rows();
    write_rows(tx, channel, &keys, &releases)?;
    set_head(
        tx,
        channel,
        &Head {
            size: state.size(),
            root: *root,
        },
    )
}

/// The one-time snapshot of a site database from before snapshots: replays the whole stored
/// log (every entry verified again, as runs used to) and writes the rows and head.
fn rebuild(conn: &Connection, channel: &ChannelName) -> Result<Opened, StateError> {
    let name = channel.as_str();
    let replay = replay(conn, channel)?;
    if let Some(p) = replay.problem {
        return Err(mismatch(name, p));
    }
    let root = replay.range.root(&Blake2b256);
    // The caller holds no transaction: open and runs read before they write.
    let tx = conn.unchecked_transaction()?;
    write_whole(&tx, name, &replay.state, &root)?;
    tx.commit()?;
    let head = Head {
        size: replay.state.size(),
        root,
    };
    let view = crate::notary::observed_view(conn, channel, head.size)?
        .ok_or_else(|| mismatch(name, "the stored tree hashes do not cover the accepted log"))?;
    Ok(Opened { head, view })
}
