//! Stage 3 of [`super::update_log`]: apply the peer-confirmed entries to the key state, all or
//! nothing, and store them in one transaction (DESIGN.md step 5).
//!
//! Only the rows the new entries touch are loaded from the snapshot ([`crate::snapshot`]); the
//! entries, the rows they changed and the new head are written in one transaction.

use keyggdrasil::entry::{CheckedEntry, Entry};
use keyggdrasil::snapshot::SnapshotError;
use keyggdrasil::state::Refusal;
use rusqlite::Connection;

use super::{Accepted, ChannelReport, UpdateError};
use crate::db;
use crate::snapshot::{self, StateError};

/// Applies the first `target - accepted size` of `new_entries` (the ones the peers confirmed)
/// on the stored snapshot; only if every one passes the key rules are they stored with the
/// rows they changed and the new head (one transaction). On any failure the database is as
/// before.
pub(super) fn apply(
    conn: &mut Connection,
    name: &str,
    accepted: &Accepted,
    new_entries: &[Entry],
    target: u64,
    report: &mut ChannelReport,
) -> Result<(), UpdateError> {
    let start = accepted.size();
    let take = (target - start) as usize;
    report.dropped = new_entries.len() as u64 - take as u64;
    if report.dropped > 0 {
        report.notes.push(format!(
            "channel {name}: WARNING: the {} newest entries could not be confirmed by peers and were not applied; they will be checked again next run",
            report.dropped
        ));
    }
    let confirmed = &new_entries[..take];
    let key_rules = |index: u64, source: Refusal| UpdateError::KeyRules {
        channel: name.to_owned(),
        index,
        source: Box::new(source),
    };
    let checked = check_signatures(confirmed).map_err(|i| {
        let e = &confirmed[i];
        key_rules(start + i as u64, Refusal::BadSignature(e.body().signer))
    })?;
    let mut view = accepted.log.view.clone();
    view.push_entries(confirmed.iter().map(|e| e.as_bytes()))?;
    let tx = conn.transaction().map_err(db::DbError)?;
    let mut state = snapshot::load_for(&tx, name, start, confirmed)?;
    for (i, entry) in checked.iter().enumerate() {
        state.apply(entry).map_err(|e| match e {
            SnapshotError::Refused(r) => key_rules(start + i as u64, r),
            other => UpdateError::State(StateError::from(other)),
        })?;
    }
    let bytes: Vec<&[u8]> = confirmed.iter().map(|e| e.as_bytes()).collect();
    snapshot::advance(&tx, name, start, &bytes, &state.changes(), &view.root())?;
    tx.commit().map_err(db::DbError)?;
    report.size_after = target;
    report.notes.push(format!(
        "channel {name}: applied {take} new entries (log size {target})"
    ));
    Ok(())
}

/// Verifies the entries' signatures (see [`keyggdrasil::entry::check_all`]), split across the
/// machine's cores; `Err(i)` names the first entry whose signature does not verify.
fn check_signatures(entries: &[Entry]) -> Result<Vec<CheckedEntry>, usize> {
    keyggdrasil::entry::check_all_parallel(entries)
}
