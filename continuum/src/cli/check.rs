//! `continuum check [--repair]`: the full replay that runs no longer do (see
//! [`continuum::snapshot`]).

use continuum::config::{Config, SitePaths};
use continuum::db;
use continuum::lock::SiteLock;
use continuum::snapshot;

use super::{CliError, print_json, say};

/// Replays every stored entry of every channel, verifying each again, and compares the result
/// with the stored key-state snapshot; with `repair`, rebuilds the snapshot of each damaged
/// channel from the longest prefix of entries that verifies (the next `update` fetches and
/// verifies the rest again, peers included). Under the site's lock, so no update runs meanwhile.
pub fn run(paths: &SitePaths, repair: bool, json: bool) -> Result<(), CliError> {
    let cfg = Config::load(&paths.config)?;
    let _lock = SiteLock::try_acquire(paths).map_err(CliError::Lock)?;
    let conn = db::open(&paths.db)?;
    let mut reports = Vec::new();
    for c in &cfg.channels {
        let r = snapshot::check(&conn, &c.name, repair)?;
        if r.ok() {
            say(
                json,
                format!(
                    "channel {}: {} entries replayed and verified; the key-state snapshot matches",
                    r.channel, r.verified_entries
                ),
            );
        } else {
            for p in &r.problems {
                eprintln!("continuum: channel {}: {p}", r.channel);
            }
            if r.repaired {
                say(
                    json,
                    format!(
                        "channel {}: REPAIRED: the snapshot was rebuilt from the first {} entries, which verify; {} entries after them were dropped and will be fetched and verified again by the next `continuum update`",
                        r.channel,
                        r.verified_entries,
                        r.stored_entries - r.verified_entries
                    ),
                );
            }
        }
        reports.push(r);
    }
    let damaged = reports.iter().filter(|r| !r.ok() && !r.repaired).count();
    if json {
        print_json(&serde_json::json!({ "channels": reports }))?;
    }
    if damaged > 0 {
        eprintln!(
            "continuum: error: {damaged} channel(s) damaged; nothing was changed (run `continuum check --repair` to rebuild the key state from the entries that verify)"
        );
        return Err(CliError::Damaged { channels: damaged });
    }
    Ok(())
}
