//! The single writer: appends verified entries to the log in groups.
//!
//! Request handlers parse entries and verify their signatures in parallel, then queue them here.
//! One thread owns the write connection: it takes everything queued (up to a batch limit), loads
//! the rows of the stored key state those entries touch ([`keyggdrasil::snapshot`]), checks each
//! entry against the key rules in order, appends the accepted ones to the entries table and the
//! Merkle tree and writes the changed key-state rows in **one transaction**, commits (durably:
//! `synchronous = FULL`), and only then answers every submitter and publishes the new head. A
//! submitter is therefore never told "appended" for an entry a crash could lose, and a refused
//! entry never touches the log.
//!
//! Nothing of the key state lives in memory between batches, so start-up costs O(log n)
//! ([`load_head`]) and a failed commit leaves nothing to rebuild: the rolled-back transaction
//! took the batch's rows with it. The full replay ([`load_state`]) is `channel-server check`'s.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use keyggdrasil::entry::{CheckedEntry, Event};
use keyggdrasil::merkle::{self, Blake2b256, Hash, TreeHasher};
use keyggdrasil::snapshot::{PartialState, SnapshotError};
use keyggdrasil::state::{KeyState, Refusal};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use crate::store::{self, DbError, SqliteHashes, SqliteRows};

/// The supplier registration policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// A new supplier's first (self-signed) master key is accepted on first use.
    Open,
    /// A new supplier needs a one-time invite token issued by the operator.
    Invite,
}

/// The log's current size and root, published after every commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Number of entries.
    pub size: u64,
    /// Root hash at that size.
    pub root: Hash,
}

/// What happened to an accepted submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The entry's index.
    pub index: u64,
    /// Its leaf hash.
    pub leaf_hash: Hash,
    /// Log size after the batch that contained it.
    pub size: u64,
    /// True if it was already in the log.
    pub duplicate: bool,
}

/// Why a submission was not appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The key rules refused it.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The policy is `invite` and no token was given for a new supplier.
    #[error(
        "this channel registers new suppliers by invitation only: submit the first master key with the invite token the operator gave you"
    )]
    InviteRequired,
    /// The token is unknown, used, or for another supplier.
    #[error("the invite token is unknown, already used, or issued for another supplier")]
    InviteInvalid,
    /// The database failed; nothing was appended.
    #[error("the channel could not store the entry; nothing was appended, try again later")]
    Storage,
    /// The writer is not running.
    #[error("the channel is shutting down")]
    Closed,
}

struct Submission {
    entry: CheckedEntry,
    invite: Option<String>,
    reply: oneshot::Sender<Result<Appended, SubmitError>>,
}

/// A handle to queue submissions for the writer.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Submission>,
    head: Arc<RwLock<Head>>,
    grown: Arc<tokio::sync::Notify>,
}

impl WriterHandle {
    /// Queues a signature-checked entry and waits until it is durably appended or refused.
    pub async fn submit(
        &self,
        entry: CheckedEntry,
        invite: Option<String>,
    ) -> Result<Appended, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Submission {
                entry,
                invite,
                reply,
            })
            .await
            .map_err(|_| SubmitError::Closed)?;
        rx.await.map_err(|_| SubmitError::Closed)?
    }

    /// Waits until the head changes after the last call returned (or, the first time, after
    /// the writer started). Meant for one waiter, the publisher: a change while nobody waits is
    /// kept as one wake-up, so none is lost, and several changes may wake it once.
    pub async fn changed(&self) {
        self.grown.notified().await;
    }

    /// The latest committed head.
    pub fn head(&self) -> Head {
        match self.head.read() {
            Ok(h) => *h,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}

/// Hash of an invite token as stored (tokens themselves are never stored).
pub fn invite_token_hash(token: &str) -> [u8; 32] {
    // A prefix no entry can start with keeps these hashes apart from leaf hashes.
    Blake2b256.hash_leaf(format!("keyggdrasil/v1/invite\0{token}").as_bytes())
}

/// The head of the stored log, checked cheaply (O(log n) reads): the tree holds exactly the
/// hashes of `size` entries, and the stored key state covers exactly `size` entries. A database
/// from before key-state snapshots gets its snapshot once, by a full replay, here.
pub fn load_head(conn: &mut Connection) -> Result<Head, DbError> {
    let size = store::size(conn)?;
    let hashes = store::tree_hash_count(conn)?;
    if hashes != merkle::stored_hash_count(size)? {
        return Err(DbError::Inconsistent(format!(
            "{hashes} tree hashes for {size} entries; run `channel-server check`"
        )));
    }
    match store::state_size(conn)? {
        Some(n) if n == size => {}
        Some(n) => {
            return Err(DbError::Inconsistent(format!(
                "the stored key state covers {n} entries but the log has {size}; run \
                 `channel-server check`, which replays the whole log"
            )));
        }
        None if size == 0 => {
            // A new channel: its snapshot is empty and covers the empty log.
            store::write_state_changes(conn, &keyggdrasil::snapshot::Changes::default())?;
        }
        None => {
            tracing::warn!(
                size,
                "no key-state snapshot in this database: building it once by replaying the log"
            );
            let (state, _) = load_state(conn)?;
            let tx = conn.transaction()?;
            store::write_whole_state(&tx, &state)?;
            tx.commit()?;
        }
    }
    let root = store::root_at(conn, size)?;
    Ok(Head { size, root })
}

/// Replays the stored log into a fresh key state, verifying every signature and rule again, and
/// checks the stored tree size: O(size) work, for `channel-server check` and the one-time
/// snapshot migration, never for serving.
pub fn load_state(conn: &Connection) -> Result<(KeyState, Head), DbError> {
    let size = store::size(conn)?;
    let mut state = KeyState::new();
    let mut stmt = conn.prepare("SELECT idx, bytes FROM entries ORDER BY idx")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let idx: i64 = row.get(0)?;
        let bytes: Vec<u8> = row.get(1)?;
        let entry = keyggdrasil::entry::Entry::parse(&bytes)
            .map_err(|e| DbError::Inconsistent(format!("stored entry {idx}: {e}")))?;
        state.apply(&entry).map_err(|e| {
            DbError::Inconsistent(format!("stored entry {idx} is refused on replay: {e}"))
        })?;
    }
    let stored = store::tree_hash_count(conn)?;
    if stored != merkle::stored_hash_count(size)? {
        return Err(DbError::Inconsistent(format!(
            "{stored} tree hashes for {size} entries"
        )));
    }
    let root = store::root_at(conn, size)?;
    Ok((state, Head { size, root }))
}

/// Starts the writer thread over the database at `path`. Returns the handle and the thread.
pub fn start(
    path: PathBuf,
    policy: Policy,
    max_batch: usize,
    queue: usize,
) -> Result<(WriterHandle, std::thread::JoinHandle<()>), DbError> {
    let mut conn = store::open(&path)?;
    let head = load_head(&mut conn)?;
    let shared = Arc::new(RwLock::new(head));
    let (tx, rx) = mpsc::channel(queue.max(1));
    let grown = Arc::new(tokio::sync::Notify::new());
    let handle = WriterHandle {
        tx,
        head: shared.clone(),
        grown: grown.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || run(conn, rx, shared, &grown, policy, max_batch.max(1)))
        .map_err(|e| DbError::Inconsistent(format!("could not start the writer thread: {e}")))?;
    Ok((handle, thread))
}

fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Submission>,
    head: Arc<RwLock<Head>>,
    grown: &tokio::sync::Notify,
    policy: Policy,
    max_batch: usize,
) {
    let mut current = match head.read() {
        Ok(h) => *h,
        Err(p) => *p.into_inner(),
    };
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) => break,
            }
        }
        match append_batch(&mut conn, current, &batch, policy) {
            Ok((results, new_head)) => {
                current = new_head;
                if let Ok(mut h) = head.write() {
                    *h = new_head;
                }
                grown.notify_one();
                for (s, r) in batch.into_iter().zip(results) {
                    let _ = s.reply.send(r);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, source = ?std::error::Error::source(&e), "append batch failed; nothing from it was acknowledged, reloading the head from the database");
                for s in batch {
                    let _ = s.reply.send(Err(SubmitError::Storage));
                }
                match load_head(&mut conn) {
                    Ok(h) => {
                        current = h;
                        if let Ok(mut w) = head.write() {
                            *w = h;
                        }
                        grown.notify_one();
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot reload the log state; the writer stops");
                        return;
                    }
                }
            }
        }
    }
}

type BatchResult = (Vec<Result<Appended, SubmitError>>, Head);

fn append_batch(
    conn: &mut Connection,
    head: Head,
    batch: &[Submission],
    policy: Policy,
) -> Result<BatchResult, DbError> {
    let tx = conn.transaction()?;
    let entries = batch.iter().map(|s| s.entry.entry());
    let mut state = PartialState::load(&SqliteRows(&tx), head.size, entries)?;
    let mut size = head.size;
    let mut results: Vec<Result<Appended, SubmitError>> = Vec::with_capacity(batch.len());
    for s in batch {
        let entry = s.entry.entry();
        let leaf = Blake2b256.hash_leaf(entry.as_bytes());
        if let Some(index) = store::index_of_leaf(&tx, &leaf)? {
            results.push(Ok(Appended {
                index,
                leaf_hash: leaf,
                size: 0,
                duplicate: true,
            }));
            continue;
        }
        let body = entry.body();
        // The entry's supplier is loaded (snapshot::Needs), so this answer is the full state's.
        let new_supplier = state.loaded_state().supplier(&body.supplier).is_none();
        if policy == Policy::Invite && new_supplier {
            match &s.invite {
                None => {
                    results.push(Err(SubmitError::InviteRequired));
                    continue;
                }
                Some(token) => {
                    if !invite_usable(&tx, token, body.supplier.as_str())? {
                        results.push(Err(SubmitError::InviteInvalid));
                        continue;
                    }
                }
            }
        }
        match state.apply(&s.entry) {
            Ok(_) => {}
            Err(SnapshotError::Refused(r)) => {
                results.push(Err(SubmitError::Refused(r)));
                continue;
            }
            Err(e) => return Err(DbError::Inconsistent(e.to_string())),
        }
        // From here on the state has changed: any error must abort the whole batch (the caller
        // then reloads the state), never skip just this entry.
        if policy == Policy::Invite
            && new_supplier
            && let Some(token) = &s.invite
        {
            tx.execute(
                "UPDATE invites SET used_idx = ?1 WHERE token_hash = ?2 AND used_idx IS NULL",
                params![size as i64, &invite_token_hash(token)[..]],
            )?;
        }
        let new = merkle::append_leaf_hash(&Blake2b256, size, leaf, &SqliteHashes(&tx))?;
        tx.prepare_cached("INSERT INTO entries (idx, leaf_hash, supplier, kind, bytes) VALUES (?1, ?2, ?3, ?4, ?5)")?
            .execute(params![
                size as i64,
                &leaf[..],
                body.supplier.as_str(),
                body.event.kind(),
                entry.as_bytes()
            ])?;
        {
            let mut ins =
                tx.prepare_cached("INSERT INTO tree_hashes (pos, hash) VALUES (?1, ?2)")?;
            for (pos, hash) in new.iter() {
                ins.execute(params![pos.get() as i64, &hash[..]])?;
            }
        }
        if let Event::Release {
            package,
            version,
            size: archive_size,
            digest,
            ..
        } = &body.event
        {
            tx.prepare_cached(
                "INSERT INTO releases (supplier, package, version, idx, size, digest) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                body.supplier.as_str(),
                package.as_str(),
                version.as_str(),
                size as i64,
                *archive_size as i64,
                &digest.0[..]
            ])?;
        }
        results.push(Ok(Appended {
            index: size,
            leaf_hash: leaf,
            size: 0,
            duplicate: false,
        }));
        size += 1;
    }
    let root = if size == head.size {
        head.root
    } else {
        store::write_state_changes(&tx, &state.changes())?;
        store::root_at(&tx, size)?
    };
    tx.commit()?;
    for r in results.iter_mut().flatten() {
        r.size = size;
    }
    Ok((results, Head { size, root }))
}

fn invite_usable(conn: &Connection, token: &str, supplier: &str) -> Result<bool, DbError> {
    let row: Option<(String, Option<i64>)> = conn
        .prepare_cached("SELECT supplier, used_idx FROM invites WHERE token_hash = ?1")?
        .query_row([&invite_token_hash(token)[..]], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(matches!(row, Some((s, None)) if s == supplier))
}
