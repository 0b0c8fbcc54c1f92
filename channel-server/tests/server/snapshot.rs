//! The channel's key state is a snapshot in its database (issue 14): `serve` starts from it
//! without replaying the log, refuses a snapshot that does not cover the log, builds one once
//! for a database from before snapshots, and `check` compares it with a full replay.

use std::process::Command;

use keyggdrasil::snapshot::KeyRow;
use rusqlite::Connection;

use super::harness::{Channel, Supplier};

fn admin(ch: &Channel, args: &[&str]) -> std::process::Output {
    Command::new(system_tests::bin("channel-server"))
        .args(args)
        .arg("--config")
        .arg(&ch.config)
        .output()
        .expect("run channel-server")
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// acme with a master and a signing key, one release, and a revoked second signing key.
fn channel_with_history() -> (Channel, Supplier) {
    let ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    acme.publish_plugin(&ch, "hello", "1.0.0", "one");
    let spare = keyggdrasil::keys::KeyPair::generate();
    ch.submit(&acme.sign(
        &acme.master,
        keyggdrasil::entry::Event::SigningKey {
            public_key: spare.public(),
            derivation: None,
        },
    ));
    ch.submit(&acme.revoke(&acme.master, &spare.public()));
    (ch, acme)
}

fn state_size(ch: &Channel) -> Option<String> {
    Connection::open(ch.db())
        .unwrap()
        .query_row("SELECT value FROM meta WHERE key = 'state_size'", [], |r| {
            r.get(0)
        })
        .ok()
}

#[test]
fn the_snapshot_advances_with_the_log_and_check_agrees() {
    let (ch, _acme) = channel_with_history();
    assert_eq!(state_size(&ch).as_deref(), Some("5"));
    let db = Connection::open(ch.db()).unwrap();
    let keys: i64 = db
        .query_row("SELECT COUNT(*) FROM state_keys", [], |r| r.get(0))
        .unwrap();
    let releases: i64 = db
        .query_row("SELECT COUNT(*) FROM state_releases", [], |r| r.get(0))
        .unwrap();
    assert_eq!((keys, releases), (3, 1));
    assert!(ch.check().starts_with("ok: "));
}

#[test]
fn check_finds_an_edited_state_row() {
    let (mut ch, acme) = channel_with_history();
    ch.kill();
    // Un-revoke nothing visible to the log: mark acme's signing key revoked in the snapshot.
    let db = Connection::open(ch.db()).unwrap();
    let bytes: Vec<u8> = db
        .query_row(
            "SELECT row FROM state_keys WHERE key = ?1",
            [&acme.signing.public().as_bytes()[..]],
            |r| r.get(0),
        )
        .unwrap();
    let mut row = KeyRow::decode(&bytes).unwrap();
    row.record.revoked_at = Some(4);
    db.execute(
        "UPDATE state_keys SET row = ?1 WHERE key = ?2",
        rusqlite::params![row.encode(), &acme.signing.public().as_bytes()[..]],
    )
    .unwrap();
    drop(db);
    let o = admin(&ch, &["check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("the stored key state (at 5 entries) differs from a replay"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("channel-server check --rebuild-state"),
        "{}",
        text(&o)
    );
    // The repair it names works, and the server then enforces the log's rules again.
    let o = admin(&ch, &["check", "--rebuild-state"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("rebuilt the key-state snapshot"),
        "{}",
        text(&o)
    );
    assert!(ch.check().starts_with("ok: "));
    ch.spawn();
    acme.publish_plugin(&ch, "hello", "1.1.0", "two");
}

#[test]
fn serve_refuses_a_snapshot_that_does_not_cover_the_log() {
    let (mut ch, _acme) = channel_with_history();
    ch.kill();
    let db = Connection::open(ch.db()).unwrap();
    db.execute("UPDATE meta SET value = '4' WHERE key = 'state_size'", [])
        .unwrap();
    drop(db);
    let o = Command::new(system_tests::bin("channel-server"))
        .args(["serve", "--config"])
        .arg(&ch.config)
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("the stored key state covers 4 entries but the log has 5"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("channel-server check"), "{}", text(&o));
}

#[test]
fn a_database_without_a_snapshot_gets_one_at_start() {
    let (mut ch, acme) = channel_with_history();
    ch.kill();
    let db = Connection::open(ch.db()).unwrap();
    db.execute_batch(
        "DELETE FROM state_keys; DELETE FROM state_releases; DELETE FROM meta WHERE key = 'state_size';",
    )
    .unwrap();
    drop(db);
    ch.spawn();
    assert_eq!(state_size(&ch).as_deref(), Some("5"));
    // The rebuilt state enforces the rules: the same version again is refused, a new one
    // signed by the (current) signing key is accepted, one by the revoked key is not.
    let archive = system_tests::plugin_archive("acme/hello", "1.0.0", "again");
    let again = acme.release(&acme.signing, "hello", "1.0.0", &archive);
    assert!(ch.try_submit(&again).is_err());
    acme.publish_plugin(&ch, "hello", "1.1.0", "two");
    assert_eq!(state_size(&ch).as_deref(), Some("6"));
    assert!(ch.check().starts_with("ok: "));
}
