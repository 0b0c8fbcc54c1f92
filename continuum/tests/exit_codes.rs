//! One test per documented exit code of `continuum` (docs/site-operator.md, "Exit codes"),
//! through the real binary: 0 ok, 1 `status` needs attention, 2 usage, 3 verification failed,
//! 4 unreachable, 5 local error, 6 another update is running.
//!
//! The channel is a real `channel-server` where its behaviour matters (a database failure
//! inside the observed log), the shared misbehaving server `system_tests::front::Front` where a
//! channel must misbehave, and 127.0.0.1:1 (refuses connections) where it must be unreachable.
//! Nothing waits on a clock: the busy case holds the site's lock in this process.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use continuum::config::SitePaths;
use continuum::lock::SiteLock;
use keyggdrasil::keys::KeyPair;
use system_tests::front::{Answer, Front};
use system_tests::{Channel, ORIGIN};

/// Refuses connections: an unreachable channel.
const NOWHERE: &str = "http://127.0.0.1:1";

fn continuum(site: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_continuum"))
        .arg("--dir")
        .arg(site)
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run continuum")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("continuum was killed by a signal")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts the exit code and that stderr says each of `says`; returns stderr.
fn expect(o: &Output, want: i32, says: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(code(o), want, "stdout: {}\nstderr: {err}", stdout(o));
    for s in says {
        assert!(err.contains(s), "stderr lacks {s:?}: {err}");
    }
    err
}

/// A site for a channel at `url` pinned to `key`, made without reaching the channel.
fn site_for(dir: &Path, url: &str, key: &str) -> PathBuf {
    let root = dir.join("site");
    let o = Command::new(env!("CARGO_BIN_EXE_continuum"))
        .args(["init", "--dir"])
        .arg(&root)
        .args([
            "--channel",
            url,
            "--channel-key",
            key,
            "--channel-name",
            ORIGIN,
        ])
        .output()
        .expect("run continuum init");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    root
}

fn any_key() -> String {
    KeyPair::generate().public().to_hex()
}

#[test]
fn exit_0_on_success() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_for(dir.path(), NOWHERE, &any_key());
    assert!(site.join("continuum.toml").is_file());
    let key = any_key();
    // --offline: no notary runs at that address (`peers add` would ask it for a signed answer).
    let o = continuum(
        &site,
        &["peers", "add", "--offline", "http://127.0.0.1:9", &key],
    );
    expect(&o, 0, &[]);
    let o = continuum(&site, &["peers", "list"]);
    expect(&o, 0, &[]);
    assert!(stdout(&o).contains(&key), "{}", stdout(&o));
    expect(&continuum(&site, &["--help"]), 0, &[]);
}

#[test]
fn exit_1_when_status_needs_attention() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_for(dir.path(), NOWHERE, &any_key());
    let o = continuum(&site, &["status"]);
    expect(
        &o,
        1,
        &["WARNING: no successful update has been recorded yet"],
    );
    // With --json the warnings are in the JSON, for monitoring to read; the code is the same.
    let o = continuum(&site, &["status", "--json"]);
    expect(&o, 1, &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status JSON");
    assert_eq!(
        v["warnings"],
        serde_json::json!(["no successful update has been recorded yet"]),
        "{v}"
    );
}

#[test]
fn exit_2_on_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_for(dir.path(), NOWHERE, &any_key());
    let config = std::fs::read(site.join("continuum.toml")).unwrap();
    // Malformed arguments (these exited 5 before), refused before anything runs.
    for (args, says) in [
        (&["install", "acme"][..], "expected supplier/package"),
        (
            &["install", "acme/hello", "--policy", "sometimes"],
            "policy must be",
        ),
        (
            &["peers", "add", "http://127.0.0.1:9", "not-hex"],
            "not-hex",
        ),
        (&["rollback", "acme"], "expected supplier/package"),
        (&["frobnicate"], "frobnicate"),
        (&[], "Usage"),
    ] {
        expect(&continuum(&site, args), 2, &[says]);
    }
    // Edits the config cannot take.
    expect(
        &continuum(&site, &["peers", "remove", "http://127.0.0.1:9"]),
        2,
        &["no peer http://127.0.0.1:9"],
    );
    expect(
        &continuum(
            &site,
            &["install", "acme/hello", "--channel", "other.channel"],
        ),
        2,
        &["channel other.channel is not configured"],
    );
    let key = any_key();
    expect(
        &continuum(
            &site,
            &["peers", "add", "--offline", "http://127.0.0.1:9", &key],
        ),
        0,
        &[],
    );
    let config_with_peer = std::fs::read(site.join("continuum.toml")).unwrap();
    expect(
        &continuum(&site, &["peers", "add", "http://127.0.0.1:10", &key]),
        2,
        &["already configured for peer http://127.0.0.1:9"],
    );
    // Nothing refused changed the config.
    assert_ne!(config, config_with_peer);
    assert_eq!(
        std::fs::read(site.join("continuum.toml")).unwrap(),
        config_with_peer
    );
}

#[test]
fn exit_3_when_the_channel_misbehaves() {
    // The channel's update answer never ends: more than any answer may be, so it is refused
    // as a misbehaving channel, not skipped as an unreachable one.
    let front = Front::serve(|_| Answer::Endless);
    let dir = tempfile::tempdir().unwrap();
    let site = site_for(dir.path(), &front.url, &any_key());
    let o = continuum(&site, &["update", "--json"]);
    expect(
        &o,
        3,
        &[
            "UPDATE FAILED (verification_failed)",
            "malformed answer",
            "larger than the limit",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("update JSON");
    assert_eq!(v["outcome"], "verification_failed", "{v}");
    assert_eq!(v["exit_code"], 3, "{v}");
}

#[test]
fn exit_4_when_the_channel_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_for(dir.path(), NOWHERE, &any_key());
    let o = continuum(&site, &["update"]);
    expect(
        &o,
        4,
        &[
            "UPDATE FAILED (unreachable)",
            "could not reach channel",
            "the site was left as it was",
        ],
    );
}

#[test]
fn exit_5_when_the_site_folder_or_its_files_are_missing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-site");
    let config = missing.join("continuum.toml");
    let config = config.display().to_string();
    for args in [
        &["status"][..],
        &["update"],
        &["peers", "list"],
        &["peers", "add", "http://127.0.0.1:9", &any_key()],
        &["install", "acme/hello"],
        &["rollback", "acme/hello"],
        &["notary", "serve", "--listen", "127.0.0.1:0"],
    ] {
        expect(&continuum(&missing, args), 5, &[&config]);
    }
    // Nothing was created where there is no site.
    assert!(!missing.exists());

    let site = site_for(dir.path(), NOWHERE, &any_key());
    let secret = SitePaths::new(&site).secret;
    std::fs::remove_file(&secret).unwrap();
    expect(
        &continuum(&site, &["notary", "key"]),
        5,
        &[&secret.display().to_string()],
    );
    std::fs::write(site.join("continuum.toml"), "[site]\nno_such_option = 1\n").unwrap();
    expect(
        &continuum(&site, &["update"]),
        5,
        &["invalid config file", "no_such_option"],
    );
}

#[test]
fn exit_5_when_the_observed_log_database_fails() {
    // A real channel: its answer verifies, so the run reaches the observed log, whose table
    // this test breaks. A database failure there is this site's own (exit 5), never a
    // verification failure of the channel (it exited 3 before).
    let channel = Channel::start();
    let dir = tempfile::tempdir().unwrap();
    let site = site_for(dir.path(), &channel.base, &channel.key.to_hex());
    {
        let db = rusqlite::Connection::open(site.join("site.db")).unwrap();
        db.execute_batch(
            "DROP TABLE observed_statements; CREATE TABLE observed_statements (channel TEXT);",
        )
        .unwrap();
    }
    let o = continuum(&site, &["update", "--json"]);
    expect(
        &o,
        5,
        &["UPDATE FAILED (local_error)", "site database error"],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("update JSON");
    assert_eq!(v["outcome"], "local_error", "{v}");
    // And it is recorded as such.
    let db = rusqlite::Connection::open(site.join("site.db")).unwrap();
    let (outcome, exit): (String, i64) = db
        .query_row(
            "SELECT outcome, exit_code FROM runs ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((outcome.as_str(), exit), ("local_error", 5));
}

#[test]
fn exit_6_when_another_update_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_for(dir.path(), NOWHERE, &any_key());
    let lock = SiteLock::try_acquire(&SitePaths::new(&site)).unwrap();
    expect(
        &continuum(&site, &["update"]),
        6,
        &["another continuum update is running"],
    );
    expect(
        &continuum(&site, &["rollback", "acme/hello"]),
        6,
        &["an update is running; try the rollback again when it is done"],
    );
    drop(lock);
    // Free again: the same update now gets as far as the (unreachable) channel.
    expect(
        &continuum(&site, &["update"]),
        4,
        &["could not reach channel"],
    );
}
