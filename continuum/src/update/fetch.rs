//! Stage 1 of [`super::update_log`]: fetch the new entries and check that they extend the
//! accepted log to the channel's signed root (DESIGN.md steps 1–2).
//!
//! Changes only the observed log (what the channel showed, kept for fork detection and the
//! notary); the accepted log and key state are untouched.

use keyggdrasil::entry::Entry;
use keyggdrasil::log::LogView;
use rusqlite::Connection;

use super::{MAX_PAGES_PER_RUN, UpdateError};
use crate::channel::ChannelClient;
use crate::config::ChannelConfig;

/// Fetches pages after the accepted log (at most [`MAX_PAGES_PER_RUN`]), each with a fresh
/// nonce and verified by the channel client, records each in the observed log, and extends a
/// copy of `accepted` with it. Returns the new entries, in log order (empty: up to date).
pub(super) fn fetch(
    conn: &mut Connection,
    channel: &ChannelConfig,
    client: &ChannelClient<'_>,
    accepted: &LogView,
    now: u64,
) -> Result<Vec<Entry>, UpdateError> {
    let name = channel.name.as_str();
    let mut candidate = accepted.clone();
    let mut new_entries: Vec<Entry> = Vec::new();
    for _ in 0..MAX_PAGES_PER_RUN {
        let since = candidate.size();
        let up = client.updates(since, now)?;
        // What the channel showed us is also what our notary vouches for. Observed first, so
        // an answer that contradicts what the channel showed before (a rewritten history) is
        // kept as fork evidence, rather than only refused by the root check below.
        crate::notary::observe(conn, channel, &up)?;
        candidate
            .extend(&up)
            .map_err(|source| UpdateError::NotAnExtension {
                channel: name.to_owned(),
                source,
            })?;
        let more = up.has_more();
        new_entries.extend(up.into_entries());
        if !more {
            break;
        }
    }
    Ok(new_entries)
}
