//! Stage 3 of [`super::update_log`]: apply the peer-confirmed entries to the key state, all or
//! nothing, and store them in one transaction (DESIGN.md step 5).
//!
//! The confirmed entries are read back from the staging table in chunks of [`APPLY_CHUNK`]:
//! each chunk's signatures are verified in batches across the cores, only the rows the chunk
//! touches are loaded from the snapshot ([`crate::snapshot`]), and the entries, the rows they
//! changed and the new head are written inside the one transaction, which commits only after
//! the last chunk. So memory is bounded by a chunk however long the catch-up, and a refusal or
//! a crash anywhere leaves the accepted log and key state as they were.

use keyggdrasil::entry::Entry;
use keyggdrasil::snapshot::SnapshotError;
use keyggdrasil::state::Refusal;
use rusqlite::Connection;

use super::{Accepted, ChannelReport, UpdateError};
use crate::db;
use crate::snapshot::{self, StateError};

/// Entries applied per chunk.
pub const APPLY_CHUNK: u64 = 4096;

/// Applies the staged entries `accepted size .. target` (the ones the peers confirmed; the
/// candidate had `candidate` entries) on the stored snapshot; only if every one passes the key
/// rules are they stored with the rows they changed and the new head, in one transaction. On
/// any failure the database is as before.
pub(super) fn apply(
    conn: &mut Connection,
    name: &str,
    accepted: &Accepted,
    candidate: u64,
    target: u64,
    report: &mut ChannelReport,
) -> Result<(), UpdateError> {
    let start = accepted.size();
    report.dropped = candidate - target;
    if report.dropped > 0 {
        report.notes.push(format!(
            "channel {name}: WARNING: the {} newest entries could not be confirmed by peers and were not applied; they will be checked again next run",
            report.dropped
        ));
    }
    let key_rules = |index: u64, source: Refusal| UpdateError::KeyRules {
        channel: name.to_owned(),
        index,
        source: Box::new(source),
    };
    let mut view = accepted.log.view.clone();
    let tx = conn.transaction().map_err(db::DbError)?;
    let mut at = start;
    while at < target {
        let end = target.min(at + APPLY_CHUNK);
        let bytes = snapshot::staged(&tx, name, at, end)?;
        let entries = bytes
            .iter()
            .enumerate()
            .map(|(i, b)| {
                // Parsed when fetched; failing now means the staging table was damaged.
                Entry::parse(b).map_err(|e| StateError::Mismatch {
                    channel: name.to_owned(),
                    detail: format!("staged entry {} does not parse: {e}", at + i as u64),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let checked = keyggdrasil::entry::check_all_parallel(&entries).map_err(|i| {
            key_rules(
                at + i as u64,
                Refusal::BadSignature(entries[i].body().signer),
            )
        })?;
        let mut state = snapshot::load_for(&tx, name, at, &entries)?;
        for (i, entry) in checked.iter().enumerate() {
            state.apply(entry).map_err(|e| match e {
                SnapshotError::Refused(r) => key_rules(at + i as u64, r),
                other => UpdateError::State(StateError::from(other)),
            })?;
        }
        view.push_entries(bytes.iter().map(|b| b.as_slice()))?;
        let refs: Vec<&[u8]> = bytes.iter().map(|b| b.as_slice()).collect();
        snapshot::advance(&tx, name, at, &refs, &state.changes(), &view.root())?;
        at = end;
    }
    // The peers confirmed the observed root at `target`; the staged bytes must hash to it.
    if let Some(confirmed) = &report.root
        && hex::encode(view.root()) != *confirmed
    {
        return Err(StateError::Mismatch {
            channel: name.to_owned(),
            detail: format!(
                "the staged entries do not hash to the root confirmed at size {target}"
            ),
        }
        .into());
    }
    snapshot::clear_staged(&tx, name)?;
    tx.commit().map_err(db::DbError)?;
    report.size_after = target;
    report.notes.push(format!(
        "channel {name}: applied {} new entries (log size {target})",
        target - start
    ));
    Ok(())
}
