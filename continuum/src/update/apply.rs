//! Stage 3 of [`super::update_log`]: apply the peer-confirmed entries to the key state, all or
//! nothing, and store them in one transaction (DESIGN.md step 5).

use keyggdrasil::entry::Entry;
use keyggdrasil::merkle::Blake2b256;
use rusqlite::Connection;

use super::{Accepted, ChannelReport, UpdateError};
use crate::db;

/// Applies the first `target - accepted size` of `new_entries` (the ones the peers confirmed)
/// to a copy of the key state; only if every one passes the key rules are they stored (one
/// transaction) and `accepted` replaced. On any failure `accepted` and the database are as
/// before.
pub(super) fn apply(
    conn: &mut Connection,
    name: &str,
    accepted: &mut Accepted,
    new_entries: &[Entry],
    target: u64,
    report: &mut ChannelReport,
) -> Result<(), UpdateError> {
    let start = accepted.state.size();
    let take = (target - start) as usize;
    report.dropped = new_entries.len() as u64 - take as u64;
    if report.dropped > 0 {
        report.notes.push(format!(
            "channel {name}: WARNING: the {} newest entries could not be confirmed by peers and were not applied; they will be checked again next run",
            report.dropped
        ));
    }
    let confirmed = &new_entries[..take];
    let mut next = accepted.state.clone();
    next.apply_all(confirmed.iter())
        .map_err(|(index, source)| UpdateError::KeyRules {
            channel: name.to_owned(),
            index,
            source: Box::new(source),
        })?;
    let tx = conn.transaction().map_err(db::DbError)?;
    let bytes: Vec<&[u8]> = confirmed.iter().map(|e| e.as_bytes()).collect();
    db::append_accepted(&tx, name, start, &bytes)?;
    tx.commit().map_err(db::DbError)?;
    accepted.state = next;
    for e in confirmed {
        accepted.tree.append(&Blake2b256, e.as_bytes())?;
    }
    report.size_after = target;
    report.notes.push(format!(
        "channel {name}: applied {take} new entries (log size {target})"
    ));
    Ok(())
}
