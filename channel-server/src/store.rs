//! The channel's SQLite database: entries, stored tree hashes, releases, invites, archives.
//!
//! One writer ([`crate::writer`]) appends; any number of readers answer requests from their own
//! connections. WAL mode lets readers run while the writer commits, and `synchronous = FULL`
//! makes a commit durable before the writer acknowledges it. Every table the writer fills is
//! written in the same transaction as the entries, so after a crash the log, its tree hashes and
//! the release index are always consistent with each other.

use std::path::Path;
use std::sync::Mutex;

use keyggdrasil::entry::Entry;
use keyggdrasil::keys::PublicKey;
use keyggdrasil::log::LogView;
use keyggdrasil::merkle::{self, Blake2b256, Hash, HashStore, StoreError, StoredIndex, TreeHasher};
use keyggdrasil::names::{PackageName, SupplierName};
use keyggdrasil::snapshot::{Changes, KeyRow, ReleaseId, ReleaseRow, RowSource, SnapshotError};
use keyggdrasil::state::{KeyState, ReleaseRecord};
use rusqlite::{Connection, OptionalExtension, params};
use thiserror::Error;

/// A storage failure. Details are for the operator's log; clients get a generic message.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DbError {
    /// SQLite failed.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// The stored tree does not match the stored entries.
    #[error("database is inconsistent: {0}")]
    Inconsistent(String),
    /// A Merkle computation over stored hashes failed.
    #[error("tree error")]
    Merkle(#[from] merkle::MerkleError),
}

impl From<SnapshotError> for DbError {
    fn from(e: SnapshotError) -> Self {
        DbError::Inconsistent(format!("stored key state: {e}"))
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS entries (
    idx       INTEGER PRIMARY KEY,
    leaf_hash BLOB NOT NULL UNIQUE,
    supplier  TEXT NOT NULL,
    kind      TEXT NOT NULL,
    bytes     BLOB NOT NULL
) STRICT;
-- A supplier's history page (GET /v1/suppliers/{name}) in O(page + log n), not a scan of the
-- log; IF NOT EXISTS so databases from before it get it at their next start.
CREATE INDEX IF NOT EXISTS entries_by_supplier ON entries (supplier, idx);
CREATE TABLE IF NOT EXISTS tree_hashes (
    pos  INTEGER PRIMARY KEY,
    hash BLOB NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS releases (
    supplier TEXT NOT NULL,
    package  TEXT NOT NULL,
    version  TEXT NOT NULL,
    idx      INTEGER NOT NULL,
    size     INTEGER NOT NULL,
    digest   BLOB NOT NULL,
    PRIMARY KEY (supplier, package, version)
) STRICT;
CREATE TABLE IF NOT EXISTS invites (
    token_hash BLOB PRIMARY KEY,
    supplier   TEXT NOT NULL,
    created    INTEGER NOT NULL,
    used_idx   INTEGER
) STRICT;
CREATE TABLE IF NOT EXISTS archives (
    digest BLOB PRIMARY KEY,
    size   INTEGER NOT NULL
) STRICT;
-- Delta patches between stored archives (crate::patches; docs/deltas.md), by the digests of
-- their base and target archives. Derived data: a patch needs no trust, sites check what it
-- rebuilds.
CREATE TABLE IF NOT EXISTS patches (
    base   BLOB NOT NULL,
    target BLOB NOT NULL,
    size   INTEGER NOT NULL,
    PRIMARY KEY (base, target)
) STRICT;
-- The key state derived from the entries (keyggdrasil::snapshot rows), advanced in the same
-- transaction as the entries; meta 'state_size' says how many entries it covers.
CREATE TABLE IF NOT EXISTS state_keys (
    key      BLOB PRIMARY KEY,
    supplier TEXT NOT NULL,
    row      BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS state_keys_by_supplier ON state_keys (supplier);
CREATE TABLE IF NOT EXISTS state_releases (
    supplier TEXT NOT NULL,
    package  TEXT NOT NULL,
    version  TEXT NOT NULL,
    row      BLOB NOT NULL,
    PRIMARY KEY (supplier, package, version)
) STRICT;
";

/// Opens (and creates if needed) the database at `path` with the channel's pragmas and schema.
pub fn open(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// The number of entries in the log: one past the highest index, an O(log n) lookup (entries
/// are only ever appended at the next index, in one transaction with their tree hashes).
pub fn size(conn: &Connection) -> Result<u64, DbError> {
    let n: i64 = conn.query_row("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries", [], |r| {
        r.get(0)
    })?;
    Ok(n as u64)
}

/// The number of stored tree hashes: one past the highest position (O(log n)).
pub fn tree_hash_count(conn: &Connection) -> Result<u64, DbError> {
    let n: i64 = conn.query_row(
        "SELECT COALESCE(MAX(pos) + 1, 0) FROM tree_hashes",
        [],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

/// How many entries the stored key state covers (`None`: no snapshot was ever written, a
/// database from before snapshots).
pub fn state_size(conn: &Connection) -> Result<Option<u64>, DbError> {
    let v: Option<String> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'state_size'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    v.map(|t| {
        t.parse::<u64>()
            .map_err(|_| DbError::Inconsistent(format!("meta state_size is {t:?}")))
    })
    .transpose()
}

/// The stored key-state rows, read through a connection (inside or outside a transaction), for
/// [`PartialState::load`].
pub struct SqliteRows<'c>(pub &'c Connection);

impl RowSource for SqliteRows<'_> {
    type Error = DbError;

    fn key_rows_of(&self, supplier: &SupplierName) -> Result<Vec<Vec<u8>>, DbError> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT row FROM state_keys WHERE supplier = ?1")?;
        let rows = stmt.query_map([supplier.as_str()], |r| r.get::<_, Vec<u8>>(0))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn key_row(&self, key: &PublicKey) -> Result<Option<Vec<u8>>, DbError> {
        Ok(self
            .0
            .prepare_cached("SELECT row FROM state_keys WHERE key = ?1")?
            .query_row([&key.as_bytes()[..]], |r| r.get(0))
            .optional()?)
    }

    fn release_row(&self, id: &ReleaseId) -> Result<Option<Vec<u8>>, DbError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT row FROM state_releases WHERE supplier = ?1 AND package = ?2 AND version = ?3",
            )?
            .query_row(
                params![id.supplier.as_str(), id.package.as_str(), id.version.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn package_rows(
        &self,
        supplier: &SupplierName,
        package: &PackageName,
    ) -> Result<Vec<Vec<u8>>, DbError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT row FROM state_releases WHERE supplier = ?1 AND package = ?2",
        )?;
        let rows = stmt.query_map(params![supplier.as_str(), package.as_str()], |r| {
            r.get::<_, Vec<u8>>(0)
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

/// Writes the rows a batch changed and the new state size (inside the batch's transaction).
pub fn write_state_changes(conn: &Connection, changes: &Changes) -> Result<(), DbError> {
    for row in &changes.keys {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO state_keys (key, supplier, row) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![
            &row.key.as_bytes()[..],
            row.supplier.as_str(),
            row.encode()
        ])?;
    }
    for row in &changes.releases {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO state_releases (supplier, package, version, row) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            row.id.supplier.as_str(),
            row.id.package.as_str(),
            row.id.version.as_str(),
            row.encode()
        ])?;
    }
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('state_size', ?1)")?
        .execute([changes.size.to_string()])?;
    Ok(())
}

/// Replaces the whole stored key state with `state`'s rows (the one-time migration of a
/// database from before snapshots, inside a transaction).
pub fn write_whole_state(conn: &Connection, state: &KeyState) -> Result<(), DbError> {
    conn.execute("DELETE FROM state_keys", [])?;
    conn.execute("DELETE FROM state_releases", [])?;
    let (keys, releases) = state.rows();
    write_state_changes(
        conn,
        &Changes {
            size: state.size(),
            keys,
            releases,
        },
    )
}

/// The whole stored key state (O(state); for `channel-server check`, which compares it with a
/// full replay).
pub fn stored_state(conn: &Connection) -> Result<KeyState, DbError> {
    let size = state_size(conn)?.unwrap_or(0);
    let mut keys = Vec::new();
    let mut stmt = conn.prepare("SELECT key, supplier, row FROM state_keys")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (key, supplier, bytes): (Vec<u8>, String, Vec<u8>) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let row = KeyRow::decode(&bytes)?;
        if row.key.as_bytes()[..] != key[..] || row.supplier.as_str() != supplier {
            return Err(DbError::Inconsistent(format!(
                "stored key row for {} does not match its columns",
                row.key
            )));
        }
        keys.push(row);
    }
    let mut releases = Vec::new();
    let mut stmt = conn.prepare("SELECT row FROM state_releases")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        releases.push(ReleaseRow::decode(&r.get::<_, Vec<u8>>(0)?)?);
    }
    KeyState::from_rows(size, keys, releases).map_err(DbError::from)
}

/// Entries `start .. end` (exact bytes), in order.
pub fn entries(conn: &Connection, start: u64, end: u64) -> Result<Vec<Vec<u8>>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT idx, bytes FROM entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
    )?;
    let rows = stmt.query_map(params![start as i64, end as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::new();
    for (i, row) in rows.enumerate() {
        let (idx, bytes) = row?;
        if idx as u64 != start + i as u64 {
            return Err(DbError::Inconsistent(format!(
                "entry {} missing",
                start + i as u64
            )));
        }
        out.push(bytes);
    }
    Ok(out)
}

// `INDEXED BY` makes a missing index an error instead of a silent scan of the whole log.
const SUPPLIER_PAGE_SQL: &str = "SELECT idx, bytes FROM entries INDEXED BY entries_by_supplier \
     WHERE supplier = ?1 AND idx >= ?2 AND idx < ?3 ORDER BY idx LIMIT ?4";
const SUPPLIER_ANY_SQL: &str = "SELECT 1 FROM entries INDEXED BY entries_by_supplier \
     WHERE supplier = ?1 AND idx < ?2 LIMIT 1";

/// Up to `limit` entries of `supplier` with `start <= index < end`, ascending by index, as
/// `(index, exact bytes)`: one range scan of the `entries_by_supplier` index, so the cost is
/// the rows returned plus one O(log n) seek, whatever the log's size. The `supplier` column is
/// the entry body's supplier, written by the writer in the same transaction as the entry.
pub fn supplier_entries(
    conn: &Connection,
    supplier: &str,
    start: u64,
    end: u64,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>, DbError> {
    let (Ok(start), Ok(end), Ok(limit)) = (
        i64::try_from(start),
        i64::try_from(end),
        i64::try_from(limit),
    ) else {
        // Beyond any stored index: nothing there.
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare_cached(SUPPLIER_PAGE_SQL)?;
    let rows = stmt.query_map(params![supplier, start, end, limit], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (idx, bytes) = row?;
        let idx = u64::try_from(idx)
            .map_err(|_| DbError::Inconsistent(format!("stored entry index {idx}")))?;
        out.push((idx, bytes));
    }
    Ok(out)
}

/// Whether `supplier` has any entry below index `end` (one O(log n) seek of the
/// `entries_by_supplier` index).
pub fn supplier_has_entries_below(
    conn: &Connection,
    supplier: &str,
    end: u64,
) -> Result<bool, DbError> {
    let end = i64::try_from(end).unwrap_or(i64::MAX);
    Ok(conn
        .prepare_cached(SUPPLIER_ANY_SQL)?
        .query_row(params![supplier, end], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The index of the entry with this leaf hash, if it is in the log.
pub fn index_of_leaf(conn: &Connection, leaf_hash: &Hash) -> Result<Option<u64>, DbError> {
    Ok(conn
        .prepare_cached("SELECT idx FROM entries WHERE leaf_hash = ?1")?
        .query_row([&leaf_hash[..]], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|i| i as u64))
}

/// The stored tree hashes, read through a connection (inside or outside a transaction).
pub struct SqliteHashes<'c>(pub &'c Connection);

impl HashStore for SqliteHashes<'_> {
    fn get(&self, index: StoredIndex) -> Result<Hash, StoreError> {
        let pos =
            i64::try_from(index.get()).map_err(|_| StoreError::Missing { index: index.get() })?;
        let blob: Option<Vec<u8>> = self
            .0
            .prepare_cached("SELECT hash FROM tree_hashes WHERE pos = ?1")
            .and_then(|mut s| s.query_row([pos], |r| r.get(0)).optional())
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let blob = blob.ok_or(StoreError::Missing { index: index.get() })?;
        blob.as_slice()
            .try_into()
            .map_err(|_| StoreError::Backend("stored hash is not 32 bytes".into()))
    }
}

/// The root of the stored tree at `size`.
pub fn root_at(conn: &Connection, size: u64) -> Result<Hash, DbError> {
    Ok(merkle::root_at(&Blake2b256, size, &SqliteHashes(conn))?)
}

/// Release lookup for archive upload and download: `(log index, size, digest)`.
pub fn release(
    conn: &Connection,
    supplier: &str,
    package: &str,
    version: &str,
) -> Result<Option<(u64, u64, [u8; 64])>, DbError> {
    let row = conn
        .prepare_cached("SELECT idx, size, digest FROM releases WHERE supplier = ?1 AND package = ?2 AND version = ?3")?
        .query_row(params![supplier, package, version], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?))
        })
        .optional()?;
    match row {
        None => Ok(None),
        Some((idx, size, digest)) => {
            let digest: [u8; 64] = digest
                .as_slice()
                .try_into()
                .map_err(|_| DbError::Inconsistent("stored digest is not 64 bytes".into()))?;
            Ok(Some((idx as u64, size as u64, digest)))
        }
    }
}

/// The stored leaf hashes of entries `start..end`, in order.
pub fn leaf_hashes(conn: &Connection, start: u64, end: u64) -> Result<Vec<Hash>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT idx, leaf_hash FROM entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
    )?;
    let rows = stmt.query_map(params![start as i64, end as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::with_capacity(usize::try_from(end.saturating_sub(start)).unwrap_or(0));
    for (expected, row) in (start..end).zip(rows) {
        let (idx, blob) = row?;
        let hash: Hash = blob
            .as_slice()
            .try_into()
            .ok()
            .filter(|_| u64::try_from(idx).ok() == Some(expected))
            .ok_or_else(|| DbError::Inconsistent(format!("stored leaf hash {expected}")))?;
        out.push(hash);
    }
    if out.len() as u64 != end.saturating_sub(start) {
        return Err(DbError::Inconsistent(format!(
            "entries {start}..{end} are not all stored"
        )));
    }
    Ok(out)
}

/// The key state's record of one release (index, revocation, attestations), from its state
/// row: one indexed read. `None` if the release was never logged.
pub fn release_record(conn: &Connection, id: &ReleaseId) -> Result<Option<ReleaseRecord>, DbError> {
    let Some(bytes) = SqliteRows(conn).release_row(id)? else {
        return Ok(None);
    };
    let row = ReleaseRow::decode(&bytes)?;
    if row.id != *id {
        return Err(DbError::Inconsistent(format!(
            "the state row for {}/{} {} names another release",
            id.supplier, id.package, id.version
        )));
    }
    Ok(Some(row.record))
}

/// Whether the archive with this digest is stored.
pub fn has_archive(conn: &Connection, digest: &[u8; 64]) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM archives WHERE digest = ?1")?
        .query_row([&digest[..]], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Every release whose archive is recorded as stored: `(supplier, package, version, entry index)`,
/// in log order.
pub fn stored_releases(conn: &Connection) -> Result<Vec<(String, String, String, u64)>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT r.supplier, r.package, r.version, r.idx FROM releases r \
         JOIN archives a ON a.digest = r.digest ORDER BY r.idx",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)? as u64,
        ))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The digests of every stored archive, in no order. O(archives): for the publisher's one pass
/// at start, never per request.
pub fn archive_digests(conn: &Connection) -> Result<Vec<[u8; 64]>, DbError> {
    let mut stmt = conn.prepare("SELECT digest FROM archives")?;
    let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
    let mut out = Vec::new();
    for row in rows {
        let bytes = row?;
        let digest = <[u8; 64]>::try_from(bytes.as_slice()).map_err(|_| {
            DbError::Inconsistent(format!(
                "an archive digest of {} bytes is stored",
                bytes.len()
            ))
        })?;
        out.push(digest);
    }
    Ok(out)
}

/// Records a stored archive (after the file was renamed into place).
pub fn add_archive(conn: &Connection, digest: &[u8; 64], size: u64) -> Result<(), DbError> {
    conn.execute(
        "INSERT OR IGNORE INTO archives (digest, size) VALUES (?1, ?2)",
        params![&digest[..], size as i64],
    )?;
    Ok(())
}

/// The stored releases of `supplier/package` whose archive is stored: `(version, size,
/// digest)`, in no particular order (the caller sorts by version).
pub fn stored_package_archives(
    conn: &Connection,
    supplier: &str,
    package: &str,
) -> Result<Vec<(String, u64, [u8; 64])>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.version, r.size, r.digest FROM releases r \
         JOIN archives a ON a.digest = r.digest WHERE r.supplier = ?1 AND r.package = ?2",
    )?;
    let rows = stmt.query_map(params![supplier, package], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (version, size, digest) = row?;
        let digest = <[u8; 64]>::try_from(digest.as_slice())
            .map_err(|_| DbError::Inconsistent("stored digest is not 64 bytes".into()))?;
        out.push((version, u64::try_from(size).unwrap_or(0), digest));
    }
    Ok(out)
}

/// The size of the stored patch from archive `base` to archive `target`, if there is one.
pub fn patch_size(
    conn: &Connection,
    base: &[u8; 64],
    target: &[u8; 64],
) -> Result<Option<u64>, DbError> {
    Ok(conn
        .prepare_cached("SELECT size FROM patches WHERE base = ?1 AND target = ?2")?
        .query_row(params![&base[..], &target[..]], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|n| u64::try_from(n).unwrap_or(0)))
}

/// Records a stored patch (after its file was renamed into place).
pub fn add_patch(
    conn: &Connection,
    base: &[u8; 64],
    target: &[u8; 64],
    size: u64,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT OR REPLACE INTO patches (base, target, size) VALUES (?1, ?2, ?3)",
        params![&base[..], &target[..], size as i64],
    )?;
    Ok(())
}

/// Counts for `/v1/stats`: `(entries, suppliers, releases, archives)`.
pub fn stats(conn: &Connection) -> Result<(u64, u64, u64, u64), DbError> {
    let q = |sql: &str| -> Result<u64, DbError> {
        Ok(conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64)
    };
    Ok((
        q("SELECT COUNT(*) FROM entries")?,
        q("SELECT COUNT(DISTINCT supplier) FROM entries")?,
        q("SELECT COUNT(*) FROM releases")?,
        q("SELECT COUNT(*) FROM archives")?,
    ))
}

/// Stores the hash of a one-time invite token for `supplier`.
pub fn add_invite(
    conn: &Connection,
    token_hash: &[u8; 32],
    supplier: &str,
    now: u64,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO invites (token_hash, supplier, created) VALUES (?1, ?2, ?3)",
        params![&token_hash[..], supplier, now as i64],
    )?;
    Ok(())
}

/// Reads every entry and recomputes the whole tree from scratch, comparing it with the stored
/// hashes: the check behind "the stored tree matches a recomputation". O(n); for tests and
/// `channel-server check`.
pub fn verify_stored_tree(conn: &Connection) -> Result<(u64, Hash), DbError> {
    let n = size(conn)?;
    let mut mem = merkle::MemoryStore::new();
    let mut view = LogView::empty();
    let mut stmt = conn.prepare("SELECT idx, leaf_hash, bytes FROM entries ORDER BY idx")?;
    let mut rows = stmt.query([])?;
    let mut expect = 0u64;
    while let Some(row) = rows.next()? {
        let idx: i64 = row.get(0)?;
        let leaf: Vec<u8> = row.get(1)?;
        let bytes: Vec<u8> = row.get(2)?;
        if idx as u64 != expect {
            return Err(DbError::Inconsistent(format!("entry {expect} missing")));
        }
        Entry::parse(&bytes).map_err(|e| DbError::Inconsistent(format!("entry {idx}: {e}")))?;
        let computed = Blake2b256.hash_leaf(&bytes);
        mem.append_leaf_hash(&Blake2b256, computed)?;
        view.push_entries([bytes.as_slice()])?;
        if computed[..] != leaf[..] {
            return Err(DbError::Inconsistent(format!(
                "leaf hash of entry {idx} differs"
            )));
        }
        expect += 1;
    }
    let stored: i64 = conn.query_row("SELECT COUNT(*) FROM tree_hashes", [], |r| r.get(0))?;
    if stored as u64 != merkle::stored_hash_count(n)? {
        return Err(DbError::Inconsistent(format!(
            "{stored} stored tree hashes for {n} entries"
        )));
    }
    let mut stmt = conn.prepare("SELECT pos, hash FROM tree_hashes ORDER BY pos")?;
    let mut rows = stmt.query([])?;
    let all = mem.stored_hashes();
    let mut i = 0usize;
    while let Some(row) = rows.next()? {
        let pos: i64 = row.get(0)?;
        let hash: Vec<u8> = row.get(1)?;
        if pos as usize != i || all.get(i).map(|h| &h[..]) != Some(&hash[..]) {
            return Err(DbError::Inconsistent(format!(
                "stored tree hash {pos} differs from a recomputation"
            )));
        }
        i += 1;
    }
    // The entries must hash to the root the channel signs from (its stored tree): the same
    // check every site and notary makes of the channel's statements.
    let signed_from = root_at(conn, n)?;
    view.check_root(n, &signed_from).map_err(|e| {
        DbError::Inconsistent(format!(
            "the stored entries do not match the stored tree: {e}"
        ))
    })?;
    Ok((n, signed_from))
}

/// A small pool of read connections, so request handlers never wait on each other for SQLite.
pub struct ReadPool {
    path: std::path::PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    /// A pool over the database at `path`.
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` with a read connection (opened on demand, returned to the pool afterwards).
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T, DbError>) -> Result<T, DbError> {
        let conn = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(10))?;
                c
            }
        };
        let out = f(&conn);
        if let Ok(mut v) = self.idle.lock()
            && v.len() < 16
        {
            v.push(conn);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database whose `entries` rows name these suppliers in order (the bytes are the index:
    /// only the supplier queries read them here).
    fn db_of(suppliers: &[&str]) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("channel.db")).unwrap();
        for (i, s) in suppliers.iter().enumerate() {
            conn.execute(
                "INSERT INTO entries (idx, leaf_hash, supplier, kind, bytes) VALUES (?1, ?2, ?3, 'release', ?4)",
                params![i as i64, &[i as u8; 32][..], s, i.to_string().into_bytes()],
            )
            .unwrap();
        }
        (dir, conn)
    }

    #[test]
    fn supplier_entries_are_one_suppliers_in_range_by_index_and_limited() {
        let (_dir, c) = db_of(&["acme", "bolt", "acme", "acme", "bolt", "acme"]);
        let idx = |rows: Vec<(u64, Vec<u8>)>| {
            rows.into_iter()
                .map(|(i, b)| {
                    assert_eq!(b, i.to_string().into_bytes());
                    i
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            idx(supplier_entries(&c, "acme", 0, 6, 100).unwrap()),
            [0, 2, 3, 5]
        );
        assert_eq!(
            idx(supplier_entries(&c, "acme", 1, 5, 100).unwrap()),
            [2, 3]
        );
        assert_eq!(idx(supplier_entries(&c, "acme", 0, 6, 2).unwrap()), [0, 2]);
        assert_eq!(idx(supplier_entries(&c, "bolt", 2, 6, 100).unwrap()), [4]);
        assert!(supplier_entries(&c, "carol", 0, 6, 100).unwrap().is_empty());
        assert!(
            supplier_entries(&c, "acme", u64::MAX, u64::MAX, 100)
                .unwrap()
                .is_empty()
        );
        assert!(supplier_has_entries_below(&c, "bolt", 2).unwrap());
        assert!(!supplier_has_entries_below(&c, "bolt", 1).unwrap());
        assert!(!supplier_has_entries_below(&c, "carol", u64::MAX).unwrap());
    }

    #[test]
    fn supplier_queries_search_the_index_and_never_sort_or_scan() {
        let (_dir, c) = db_of(&["acme"]);
        for sql in [SUPPLIER_PAGE_SQL, SUPPLIER_ANY_SQL] {
            let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let n = stmt.parameter_count();
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(vec![0i64; n]), |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = plan.join("; ");
            assert!(plan.starts_with("SEARCH entries USING "), "{plan}");
            assert!(
                plan.contains("INDEX entries_by_supplier (supplier=?"),
                "{plan}"
            );
            assert!(
                !plan.contains("TEMP B-TREE") && !plan.contains("SCAN"),
                "{plan}"
            );
        }
    }
}
