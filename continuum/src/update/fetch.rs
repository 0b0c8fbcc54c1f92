//! Stage 1 of [`super::update_log`]: fetch the new entries and check that they extend the
//! accepted log to the channel's signed root (DESIGN.md steps 1–2).
//!
//! Changes only the observed log (what the channel showed, kept for fork detection and the
//! notary) and the staging table ([`crate::snapshot::stage`]); the accepted log and key state
//! are untouched. Pages are verified and staged one at a time, so a long catch-up (a site
//! joining a log of a million entries) never holds more than one page in memory.

use keyggdrasil::log::LogView;
use keyggdrasil::tiles::{TILE_WIDTH, TileId};
use keyggdrasil::wire::{Misbehavior, VerifiedUpdate};
use rusqlite::Connection;

use super::{MAX_PAGES_PER_RUN, UpdateError};
use crate::channel::{ChannelClient, ChannelError};
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
    // The small signed answer first: most runs find nothing new, and one batched signature of
    // the channel answers many sites at once.
    let fresh = client.fresh(now)?;
    if let Some((up, url)) = &fresh
        && up.size() <= candidate.size()
    {
        // Observed first, like every statement: a root that contradicts what the channel
        // showed before is kept as fork evidence.
        crate::notary::observe(conn, channel, up)?;
        if up.size() < candidate.size() {
            return Err(ChannelError::Verification {
                channel: name.to_owned(),
                url: url.clone(),
                source: Misbehavior::Rollback {
                    have: candidate.size(),
                    got: up.size(),
                }
                .into(),
            }
            .into());
        }
        candidate
            .extend(up)
            .map_err(|source| UpdateError::NotAnExtension {
                channel: name.to_owned(),
                source,
            })?;
        return Ok(candidate);
    }
    if !channel.tile_mirrors.is_empty()
        && from_tiles(
            conn,
            channel,
            client,
            &mut candidate,
            now,
            fresh.map(|(up, _)| up),
        )?
    {
        return Ok(candidate);
    }
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

/// The pauses before each re-read of a tile mirror whose checkpoint is older than the
/// channel's batched answer, before the run reads the rest from the channel. The channel
/// publishes 3 ms (median) to 15 ms (most) after a commit on an SSD (the fleet bench,
/// docs/benchmarks-channel.md); the second pause is for slower disks. A CDN that caches
/// `checkpoint` for longer makes the wait useless but not harmful.
const MIRROR_CATCH_UP: [std::time::Duration; 2] = [
    std::time::Duration::from_millis(50),
    std::time::Duration::from_millis(200),
];

/// Most entries read from tile mirrors in one run (as many as the channel's pages would give).
const MAX_TILE_ENTRIES_PER_RUN: u64 = MAX_PAGES_PER_RUN as u64 * 500;

/// Reads the new entries from the tile mirrors (`[[channel]] tile_mirrors`) up to the size of
/// their checkpoint, one entry bundle at a time, and asks the channel only for the nonce-bound
/// answer from there. The entries must extend `candidate` to the root the channel signed in
/// that checkpoint; their leaf hashes and the channel's answer are then observed together
/// ([`crate::notary::observe_after_leaf_hashes`]), and the entries staged.
///
/// When the channel's batched answer is newer than the mirror's checkpoint, the checkpoint is
/// read again after each pause of [`MIRROR_CATCH_UP`] until it is not.
///
/// Returns true when the channel's answer says there is nothing after what was read.
/// Leaves `candidate` unchanged (the channel's pages then do the work) when no tile mirror
/// answers, their checkpoint is not newer than `candidate`, a bundle of its size is missing
/// (a mirror that lags), or more than [`MAX_TILE_ENTRIES_PER_RUN`] entries are new. A mirror
/// that serves a checkpoint not signed by the pinned key, a malformed bundle, or entries that
/// do not hash to the signed root is an error: the run stops and the site changes nothing.
fn from_tiles(
    conn: &mut Connection,
    channel: &ChannelConfig,
    client: &ChannelClient<'_>,
    candidate: &mut LogView,
    now: u64,
    fresh: Option<VerifiedUpdate>,
) -> Result<bool, UpdateError> {
    let name = channel.name.as_str();
    let Some(mut checkpoint) = client.tile_checkpoint()? else {
        return Ok(false);
    };
    // The channel publishes each commit within milliseconds, so a run that lands in between
    // (most likely just after a release, when every site polls) waits for the mirror rather
    // than asking the channel for entries signed for it alone.
    for pause in MIRROR_CATCH_UP {
        match &fresh {
            Some(up) if up.size() > checkpoint.size() => {}
            _ => break,
        }
        std::thread::sleep(pause);
        if let Some(again) = client.tile_checkpoint()?
            && again.size() > checkpoint.size()
        {
            checkpoint = again;
        }
    }
    let (start, end) = (candidate.size(), checkpoint.size());
    if end <= start || end - start > MAX_TILE_ENTRIES_PER_RUN {
        return Ok(false);
    }
    let observed = crate::notary::observed_size(conn, &channel.name)?;
    let mut view = candidate.clone();
    let mut hashes = Vec::new();
    let mut index = start / TILE_WIDTH;
    while index * TILE_WIDTH < end {
        let first = index * TILE_WIDTH;
        let width = (end - first).min(TILE_WIDTH) as u16;
        let tile = TileId {
            level: 0,
            index,
            width,
        };
        let Some((entries, _url)) = client.tile_entries(&tile)? else {
            tracing::info!(
                channel = name,
                tile = tile.entries_path(),
                "a tile mirror lacks an entry bundle of its own checkpoint; reading from the channel"
            );
            snapshot::clear_staged(conn, name)?;
            return Ok(false);
        };
        let skip = usize::try_from(start.saturating_sub(first)).unwrap_or(usize::MAX);
        let new = entries.get(skip..).unwrap_or(&[]);
        let from = first + skip as u64;
        // Each entry is hashed once: into the candidate view, and (past the observed size)
        // into the hashes the notary's tree is extended by.
        let leaves: Vec<_> = new
            .iter()
            .map(|e| LogView::leaf_hash(e.as_bytes()))
            .collect();
        view.push_leaf_hashes(&leaves)?;
        let observed_from = usize::try_from(observed.saturating_sub(from)).unwrap_or(usize::MAX);
        hashes.extend_from_slice(leaves.get(observed_from..).unwrap_or(&[]));
        snapshot::stage(conn, name, from, new)?;
        index += 1;
    }
    // The mirror's entries are the channel's only if they hash to the root it signed.
    view.check_root(checkpoint.size(), checkpoint.root())
        .map_err(|source| UpdateError::NotAnExtension {
            channel: name.to_owned(),
            source,
        })?;
    // The batched answer of this run is the nonce-bound statement when it is of the mirror's
    // size (the mirror is current). When the mirror got ahead of it (a commit was published
    // while this run waited or read), one more batched answer most likely is of that size;
    // else the channel's own answer from there.
    let up = match fresh {
        Some(up) if up.size() == end => up,
        Some(up) if up.size() < end => match client.fresh(now)? {
            Some((again, _)) if again.size() == end => again,
            _ => client.updates(end, now)?,
        },
        _ => client.updates(end, now)?,
    };
    crate::notary::observe_after_leaf_hashes(conn, channel, &hashes, &up)?;
    view.extend(&up)
        .map_err(|source| UpdateError::NotAnExtension {
            channel: name.to_owned(),
            source,
        })?;
    snapshot::stage(conn, name, end, up.entries())?;
    tracing::info!(
        channel = name,
        from = start,
        to = end,
        "read new entries from the tile mirrors"
    );
    *candidate = view;
    // The channel's own pages go on from here if it has more than the mirror's checkpoint.
    Ok(!up.has_more() && up.size() == up.tree_size())
}
