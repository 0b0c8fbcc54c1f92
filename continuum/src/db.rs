//! The site's SQLite database.
//!
//! Two logs per channel are kept apart on purpose:
//! - the **accepted** log (`log_entries`): entries that passed the channel checks, the peer
//!   check and the key rules, and were applied. Installs are decided from it alone.
//! - the **observed** log (`observed_entries`, `observed_statements`, `fork_evidence`): what the
//!   channel has shown this site with a valid channel signature, a recomputed root and
//!   append-only consistency; the notary endpoint vouches for it. A fork seen there stops
//!   updates from that channel.
//!
//! Plus installed packages and a record of every run.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

/// A database failure (details for the operator).
#[derive(Debug, thiserror::Error)]
#[error("site database error: {0}")]
pub struct DbError(#[from] pub rusqlite::Error);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS log_entries (
    channel TEXT NOT NULL,
    idx     INTEGER NOT NULL,
    bytes   BLOB NOT NULL,
    PRIMARY KEY (channel, idx)
) STRICT;
CREATE TABLE IF NOT EXISTS observed_entries (
    channel TEXT NOT NULL,
    idx     INTEGER NOT NULL,
    leaf_hash BLOB NOT NULL,
    PRIMARY KEY (channel, idx)
) STRICT;
CREATE TABLE IF NOT EXISTS observed_statements (
    channel   TEXT NOT NULL,
    size      INTEGER NOT NULL,
    root      BLOB NOT NULL,
    statement TEXT NOT NULL,
    PRIMARY KEY (channel, size)
) STRICT;
CREATE TABLE IF NOT EXISTS fork_evidence (
    channel     TEXT PRIMARY KEY,
    detected_at INTEGER NOT NULL,
    evidence    TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS installed (
    supplier     TEXT NOT NULL,
    package      TEXT NOT NULL,
    channel      TEXT NOT NULL,
    version      TEXT NOT NULL,
    digest       TEXT NOT NULL,
    previous     TEXT,
    installed_at INTEGER NOT NULL,
    PRIMARY KEY (supplier, package)
) STRICT;
CREATE TABLE IF NOT EXISTS runs (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    started  INTEGER NOT NULL,
    finished INTEGER NOT NULL,
    command  TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    exit_code INTEGER NOT NULL,
    message  TEXT NOT NULL
) STRICT;
";

/// Opens (creating if needed) the site database: WAL, durable commits.
pub fn open(path: &Path) -> Result<Connection, DbError> {
    let named = |e| DbError(name_file(path, e));
    let conn = Connection::open(path).map_err(named)?;
    // Switching to WAL is the first write: a read-only file or folder fails here.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(named)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(SCHEMA).map_err(named)?;
    conn.execute_batch(crate::snapshot::SCHEMA)?;
    Ok(conn)
}

/// SQLite's open errors ("unable to open database file", "attempt to write a readonly
/// database") name neither the file nor the fix; this adds both.
fn name_file(path: &Path, e: rusqlite::Error) -> rusqlite::Error {
    use rusqlite::ffi::ErrorCode;
    match e {
        rusqlite::Error::SqliteFailure(code, message)
            if matches!(
                code.code,
                ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied
            ) =>
        {
            let what = message.unwrap_or_else(|| code.to_string());
            rusqlite::Error::SqliteFailure(
                code,
                Some(format!(
                    "{what}: {}: the user running continuum must be able to read and write this \
                     file and its folder (check the owner with `ls -ld`, or run as the site's \
                     user), and --dir must name the site folder",
                    path.display()
                )),
            )
        }
        other => other,
    }
}

/// Appends accepted entries starting at `start` (inside the caller's transaction).
pub fn append_accepted(
    conn: &Connection,
    channel: &str,
    start: u64,
    entries: &[&[u8]],
) -> Result<(), DbError> {
    let mut stmt =
        conn.prepare_cached("INSERT INTO log_entries (channel, idx, bytes) VALUES (?1, ?2, ?3)")?;
    for (i, e) in entries.iter().enumerate() {
        stmt.execute(params![channel, (start + i as u64) as i64, e])?;
    }
    Ok(())
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Supplier.
    pub supplier: String,
    /// Package.
    pub package: String,
    /// Channel it came from.
    pub channel: String,
    /// Installed version.
    pub version: String,
    /// Archive digest (hex).
    pub digest: String,
    /// The version before it, kept for rollback.
    pub previous: Option<String>,
    /// When (Unix seconds).
    pub installed_at: u64,
}

/// Every installed package.
pub fn installed(conn: &Connection) -> Result<Vec<Installed>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT supplier, package, channel, version, digest, previous, installed_at FROM installed ORDER BY supplier, package",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Installed {
            supplier: r.get(0)?,
            package: r.get(1)?,
            channel: r.get(2)?,
            version: r.get(3)?,
            digest: r.get(4)?,
            previous: r.get(5)?,
            installed_at: r.get::<_, i64>(6)? as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The installed version of one package.
pub fn installed_one(
    conn: &Connection,
    supplier: &str,
    package: &str,
) -> Result<Option<Installed>, DbError> {
    Ok(installed(conn)?
        .into_iter()
        .find(|i| i.supplier == supplier && i.package == package))
}

/// Records an install (replacing the previous record).
pub fn set_installed(conn: &Connection, i: &Installed) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO installed (supplier, package, channel, version, digest, previous, installed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (supplier, package) DO UPDATE SET channel = ?3, version = ?4, digest = ?5, previous = ?6, installed_at = ?7",
        params![i.supplier, i.package, i.channel, i.version, i.digest, i.previous, i.installed_at as i64],
    )?;
    Ok(())
}

/// A recorded run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Start (Unix seconds).
    pub started: u64,
    /// End (Unix seconds).
    pub finished: u64,
    /// The command (`update`, `install`, ...).
    pub command: String,
    /// `ok`, `verification_failed`, `unreachable`, `local_error`, `busy`.
    pub outcome: String,
    /// The exit code.
    pub exit_code: i32,
    /// What happened, in one line.
    pub message: String,
}

/// Records a run.
pub fn record_run(conn: &Connection, r: &Run) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO runs (started, finished, command, outcome, exit_code, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![r.started as i64, r.finished as i64, r.command, r.outcome, r.exit_code, r.message],
    )?;
    Ok(())
}

/// The last successful run and the failed runs after it.
pub fn runs_since_success(conn: &Connection) -> Result<(Option<Run>, Vec<Run>), DbError> {
    let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Run> {
        Ok(Run {
            started: r.get::<_, i64>(0)? as u64,
            finished: r.get::<_, i64>(1)? as u64,
            command: r.get(2)?,
            outcome: r.get(3)?,
            exit_code: r.get(4)?,
            message: r.get(5)?,
        })
    };
    let last_ok: Option<(i64, Run)> = conn
        .query_row(
            "SELECT id, started, finished, command, outcome, exit_code, message FROM runs WHERE outcome = 'ok' ORDER BY id DESC LIMIT 1",
            [],
            |r| {
                let id: i64 = r.get(0)?;
                Ok((
                    id,
                    Run {
                        started: r.get::<_, i64>(1)? as u64,
                        finished: r.get::<_, i64>(2)? as u64,
                        command: r.get(3)?,
                        outcome: r.get(4)?,
                        exit_code: r.get(5)?,
                        message: r.get(6)?,
                    },
                ))
            },
        )
        .optional()?;
    let after = last_ok.as_ref().map(|(id, _)| *id).unwrap_or(0);
    let mut stmt = conn.prepare(
        "SELECT started, finished, command, outcome, exit_code, message FROM runs WHERE id > ?1 AND outcome != 'ok' ORDER BY id",
    )?;
    let failures = stmt.query_map([after], map)?.collect::<Result<_, _>>()?;
    Ok((last_ok.map(|(_, r)| r), failures))
}

/// The fork evidence recorded for a channel, if any.
pub fn fork_evidence(conn: &Connection, channel: &str) -> Result<Option<String>, DbError> {
    Ok(conn
        .query_row(
            "SELECT evidence FROM fork_evidence WHERE channel = ?1",
            [channel],
            |r| r.get(0),
        )
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_installs() {
        let t = tempfile::tempdir().unwrap();
        let c = open(&t.path().join("site.db")).unwrap();
        let run = |outcome: &str| Run {
            started: 1,
            finished: 2,
            command: "update".into(),
            outcome: outcome.into(),
            exit_code: i32::from(outcome != "ok"),
            message: String::new(),
        };
        record_run(&c, &run("unreachable")).unwrap();
        record_run(&c, &run("ok")).unwrap();
        record_run(&c, &run("verification_failed")).unwrap();
        record_run(&c, &run("unreachable")).unwrap();
        let (ok, fails) = runs_since_success(&c).unwrap();
        assert!(ok.is_some());
        assert_eq!(fails.len(), 2);
        let i = Installed {
            supplier: "acme".into(),
            package: "hello".into(),
            channel: "c".into(),
            version: "1.0.0".into(),
            digest: "00".into(),
            previous: None,
            installed_at: 5,
        };
        set_installed(&c, &i).unwrap();
        let mut j = i.clone();
        j.version = "1.1.0".into();
        j.previous = Some("1.0.0".into());
        set_installed(&c, &j).unwrap();
        assert_eq!(installed(&c).unwrap(), vec![j]);
    }
}

// ---------------------------------------------------------------------------------------------
// Stored versions: what `crate::install` keeps on disk under `packages/<supplier>/<package>/
// versions/<version>/`, so that a rollback, or a repair after a crash, knows the digest and
// channel of a version folder. The table is created on first use by `ensure_install_tables`.

const INSTALL_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS stored_versions (
    supplier  TEXT NOT NULL,
    package   TEXT NOT NULL,
    version   TEXT NOT NULL,
    channel   TEXT NOT NULL,
    digest    TEXT NOT NULL,
    stored_at INTEGER NOT NULL,
    PRIMARY KEY (supplier, package, version)
) STRICT;
";

/// Creates the tables of [`crate::install`] if they do not exist yet (idempotent).
pub fn ensure_install_tables(conn: &Connection) -> Result<(), DbError> {
    conn.execute_batch(INSTALL_SCHEMA)?;
    Ok(())
}

/// One extracted, verified version folder kept on disk (the current one or the previous one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    /// Supplier.
    pub supplier: String,
    /// Package.
    pub package: String,
    /// Version (the folder name under `versions/`).
    pub version: String,
    /// Channel it came from.
    pub channel: String,
    /// Archive digest (hex).
    pub digest: String,
    /// When it was stored (Unix seconds).
    pub stored_at: u64,
}

/// Records a stored version (replacing an earlier record of the same version).
pub fn record_stored_version(conn: &Connection, v: &StoredVersion) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO stored_versions (supplier, package, version, channel, digest, stored_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (supplier, package, version) DO UPDATE SET channel = ?4, digest = ?5, stored_at = ?6",
        params![v.supplier, v.package, v.version, v.channel, v.digest, v.stored_at as i64],
    )?;
    Ok(())
}

/// The stored versions of one package, by version text.
pub fn stored_versions(
    conn: &Connection,
    supplier: &str,
    package: &str,
) -> Result<Vec<StoredVersion>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT supplier, package, version, channel, digest, stored_at FROM stored_versions
         WHERE supplier = ?1 AND package = ?2 ORDER BY version",
    )?;
    let rows = stmt.query_map([supplier, package], |r| {
        Ok(StoredVersion {
            supplier: r.get(0)?,
            package: r.get(1)?,
            version: r.get(2)?,
            channel: r.get(3)?,
            digest: r.get(4)?,
            stored_at: r.get::<_, i64>(5)? as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Forgets a stored version (its folder was removed).
pub fn forget_stored_version(
    conn: &Connection,
    supplier: &str,
    package: &str,
    version: &str,
) -> Result<(), DbError> {
    conn.execute(
        "DELETE FROM stored_versions WHERE supplier = ?1 AND package = ?2 AND version = ?3",
        [supplier, package, version],
    )?;
    Ok(())
}

/// Removes the install record of a package (it is no longer on disk).
pub fn remove_installed(conn: &Connection, supplier: &str, package: &str) -> Result<(), DbError> {
    conn.execute(
        "DELETE FROM installed WHERE supplier = ?1 AND package = ?2",
        [supplier, package],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Peer checks: which peers failed in the last `update` run that asked them, and how (bogus or
// unreachable), for `status`. Replaced per channel whenever a run asks that channel's peers.
// The table is created on first use by `ensure_peer_tables`.

const PEER_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS peer_checks (
    channel    TEXT NOT NULL,
    url        TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    checked_at INTEGER NOT NULL,
    PRIMARY KEY (channel, url)
) STRICT;
";

/// Creates the peer-check table if it does not exist yet (idempotent).
pub fn ensure_peer_tables(conn: &Connection) -> Result<(), DbError> {
    conn.execute_batch(PEER_SCHEMA)?;
    Ok(())
}

/// One peer that failed in the last run that asked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCheck {
    /// The channel asked about.
    pub channel: String,
    /// The peer's URL, without credentials.
    pub url: String,
    /// `BOGUS` or `unreachable` (the names of `crate::peers::PeerLineOutcome`).
    pub outcome: String,
    /// Why (the first reason in that run).
    pub detail: String,
    /// When (Unix seconds).
    pub checked_at: u64,
}

/// Replaces the recorded failing peers of `channel` with `checks` (empty: none failed).
pub fn replace_peer_checks(
    conn: &Connection,
    channel: &str,
    checks: &[PeerCheck],
) -> Result<(), DbError> {
    ensure_peer_tables(conn)?;
    let tx = conn.unchecked_transaction()?;
    tx.execute("DELETE FROM peer_checks WHERE channel = ?1", [channel])?;
    for c in checks {
        tx.execute(
            "INSERT OR REPLACE INTO peer_checks (channel, url, outcome, detail, checked_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![c.channel, c.url, c.outcome, c.detail, c.checked_at as i64],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// The failing peers recorded, by channel and URL.
pub fn peer_checks(conn: &Connection) -> Result<Vec<PeerCheck>, DbError> {
    ensure_peer_tables(conn)?;
    let mut stmt = conn.prepare(
        "SELECT channel, url, outcome, detail, checked_at FROM peer_checks ORDER BY channel, url",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(PeerCheck {
            channel: r.get(0)?,
            url: r.get(1)?,
            outcome: r.get(2)?,
            detail: r.get(3)?,
            checked_at: r.get::<_, i64>(4)? as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
