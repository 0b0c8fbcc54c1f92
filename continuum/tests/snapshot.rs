//! The site's key-state snapshot (issue 14, item 1), through the real binaries over loopback: a
//! run applies only new entries on the stored state; a snapshot that does not match the stored
//! log (edited row, edited entry, truncated log) is refused at start with exit 5 naming
//! `continuum check`, and the site is left as it was; `continuum check` replays everything and
//! `check --repair` rebuilds the state from the entries that verify.

use keyggdrasil::snapshot::{ReleaseRow, row_digest};
use system_tests::{Channel, Site, Supplier, assert_says, exit, plugin_archive, stdout_json};

/// Exit code of a local error (continuum's `main.rs`).
const LOCAL: i32 = 5;

struct Fx {
    _channel: Channel,
    site: Site,
}

/// `acme` registered (entries 0, 1); `acme/hello` 1.0.0 (entry 2) installed, then 1.1.0 (entry
/// 3) installed by an update: four accepted entries.
fn site_with_four_entries() -> Fx {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    acme.publish(
        &channel,
        "hello",
        "1.0.0",
        &plugin_archive("acme/hello", "1.0.0", "one"),
    );
    let site = Site::init_installing(&channel, "acme/hello", "1.0.0");
    acme.publish(
        &channel,
        "hello",
        "1.1.0",
        &plugin_archive("acme/hello", "1.1.0", "two"),
    );
    assert_says(&site.run(&["update"]), exit::OK, &["installed 1.1.0"]);
    assert_eq!(site.accepted_size(), 4);
    Fx {
        _channel: channel,
        site,
    }
}

fn db(site: &Site) -> rusqlite::Connection {
    rusqlite::Connection::open(site.root.join("site.db")).expect("db")
}

fn sql(site: &Site, statement: &str) {
    db(site).execute_batch(statement).expect(statement);
}

/// `check` passes and reports the whole log replayed.
fn assert_check_passes(site: &Site, entries: u64) {
    let out = site.run(&["--json", "check"]);
    assert_says(&out, exit::OK, &["snapshot matches"]);
    let v = stdout_json(&out);
    assert_eq!(v["channels"][0]["verified_entries"], entries, "{v}");
    assert_eq!(v["channels"][0]["snapshot_matches"], true, "{v}");
}

/// `check --repair` rebuilds the snapshot (its output says each of `repaired`), the next
/// `update` says `then` (it fetches again what the repair dropped), and `check` passes at 4.
fn repair_then_update(site: &Site, repaired: &[&str], then: &str) {
    let mut says = vec!["REPAIRED"];
    says.extend_from_slice(repaired);
    assert_says(&site.run(&["check", "--repair"]), exit::OK, &says);
    assert_says(&site.run(&["update"]), exit::OK, &[then]);
    assert_check_passes(site, 4);
}

#[test]
fn the_snapshot_advances_with_each_run_and_equals_a_full_replay() {
    let fx = site_with_four_entries();
    let heads: (i64, i64) = db(&fx.site)
        .query_row("SELECT size, length(root) FROM accepted_heads", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("head");
    assert_eq!(heads, (4, 32));
    let rows: i64 = db(&fx.site)
        .query_row(
            "SELECT (SELECT COUNT(*) FROM state_keys) * 10 + (SELECT COUNT(*) FROM state_releases)",
            [],
            |r| r.get(0),
        )
        .expect("rows");
    assert_eq!(rows, 22, "two keys and two releases");
    assert_check_passes(&fx.site, 4);
}

#[test]
fn a_run_with_nothing_new_does_not_replay_the_log_but_check_does() {
    let fx = site_with_four_entries();
    // An old entry damaged in place: a run reads only the newest entry, so it does not notice
    // (which is what makes it O(log n)); the full replay does.
    sql(
        &fx.site,
        "UPDATE log_entries SET bytes = x'00' WHERE idx = 1",
    );
    assert_says(&fx.site.run(&["update"]), exit::OK, &["up to date"]);
    assert_says(
        &fx.site.run(&["check"]),
        LOCAL,
        &[
            "stored entry 1 does not hash to its leaf",
            "continuum check --repair",
        ],
    );
    assert_says(
        &fx.site.run(&["check", "--repair"]),
        exit::OK,
        &["REPAIRED", "first 1 entries"],
    );
    assert_eq!(fx.site.accepted_size(), 1);
    // The next run fetches and verifies the dropped entries again.
    assert_says(
        &fx.site.run(&["update"]),
        exit::OK,
        &["applied 3 new entries"],
    );
    assert_eq!(fx.site.accepted_size(), 4);
    assert_eq!(
        fx.site.installed_version("acme", "hello").as_deref(),
        Some("1.1.0")
    );
    assert_check_passes(&fx.site, 4);
}

#[test]
fn an_edited_state_row_is_refused_at_start_naming_check() {
    let fx = site_with_four_entries();
    sql(
        &fx.site,
        "UPDATE state_releases SET row = CAST(row || x'00' AS BLOB) WHERE version = '1.1.0'",
    );
    fx.site.assert_update_refused(
        LOCAL,
        &[
            "does not match its check digest",
            "continuum check",
            "nothing was changed",
        ],
    );
    assert_says(&fx.site.run(&["check"]), LOCAL, &["check digest"]);
    repair_then_update(&fx.site, &[], "up to date");
}

#[test]
fn a_row_rewritten_with_its_digest_is_found_by_check() {
    let fx = site_with_four_entries();
    // A valid row with a valid digest that says something the log does not: the start check
    // cannot see it (the module docs say so); the full replay does.
    let conn = db(&fx.site);
    let (channel, bytes): (String, Vec<u8>) = conn
        .query_row(
            "SELECT channel, row FROM state_releases WHERE version = '1.1.0'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("row");
    let mut row = ReleaseRow::decode(&bytes).expect("decode");
    row.record.size += 1;
    let forged = row.encode();
    conn.execute(
        "UPDATE state_releases SET row = ?1, digest = ?2 WHERE version = '1.1.0'",
        rusqlite::params![&forged, &row_digest(&channel, &forged)[..]],
    )
    .expect("forge");
    assert_says(
        &fx.site.run(&["check"]),
        LOCAL,
        &["differs from a replay of the stored entries"],
    );
    assert_says(
        &fx.site.run(&["check", "--repair"]),
        exit::OK,
        &["REPAIRED"],
    );
    assert_check_passes(&fx.site, 4);
}

#[test]
fn an_edited_newest_entry_is_refused_at_start() {
    let fx = site_with_four_entries();
    sql(
        &fx.site,
        "UPDATE log_entries SET bytes = CAST(bytes || x'20' AS BLOB) WHERE idx = 3",
    );
    fx.site.assert_update_refused(
        LOCAL,
        &[
            "stored entry 3 does not hash to its leaf",
            "continuum check",
        ],
    );
    repair_then_update(&fx.site, &["first 3 entries"], "applied 1 new entries");
}

#[test]
fn a_truncated_log_is_refused_at_start() {
    let fx = site_with_four_entries();
    sql(&fx.site, "DELETE FROM log_entries WHERE idx = 3");
    fx.site.assert_update_refused(
        LOCAL,
        &[
            "the key state covers 4 entries but 3 entries are stored",
            "continuum check",
        ],
    );
    assert_says(
        &fx.site.run(&["check"]),
        LOCAL,
        &["covers 4 entries but 3 entries are stored"],
    );
    repair_then_update(&fx.site, &[], "applied 1 new entries");
}

#[test]
fn a_site_database_from_before_snapshots_gets_one_on_its_next_run() {
    let fx = site_with_four_entries();
    sql(
        &fx.site,
        "DELETE FROM accepted_heads; DELETE FROM state_keys; DELETE FROM state_releases;",
    );
    assert_says(
        &fx.site.run(&["update"]),
        exit::OK,
        &["up to date at 4 entries"],
    );
    assert_check_passes(&fx.site, 4);
}
