//! Stage 1 of [`super::update_log`]: fetch the new entries and check that they extend the
//! accepted log to the channel's signed root (DESIGN.md steps 1–2).
//!
//! Changes only the observed log (what the channel showed, kept for fork detection and the
//! notary) and the staging table ([`crate::snapshot::stage`]); the accepted log and key state
//! are untouched. Pages are verified and staged one at a time, so a long catch-up (a site
//! joining a log of a million entries) never holds more than one page in memory.

use keyggdrasil::log::LogView;
use rusqlite::Connection;

use super::{MAX_PAGES_PER_RUN, UpdateError};
use crate::channel::ChannelClient;
use crate::config::ChannelConfig;
use crate::snapshot;

/// Fetches pages after the accepted log (at most [`MAX_PAGES_PER_RUN`]), each with a fresh
/// nonce and verified by the channel client, records each in the observed log, extends a copy
/// of `accepted` with it and stages its entries. Returns the extended view (its size is the
/// accepted size when the site is up to date).
pub(super) fn fetch(
    conn: &mut Connection,
    channel: &ChannelConfig,
    client: &ChannelClient<'_>,
    accepted: &LogView,
    now: u64,
) -> Result<LogView, UpdateError> {
    let name = channel.name.as_str();
    let mut candidate = accepted.clone();
    snapshot::clear_staged(conn, name)?;
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
        snapshot::stage(conn, name, since, up.entries())?;
        if !up.has_more() || up.entries().is_empty() {
            break;
        }
    }
    Ok(candidate)
}
