//! Helpers shared by the barge CLI tests: the real binary, real git checkouts, and a real
//! `channel-server` on loopback. Also included by path from `tests/tests/air_gap.rs` (the
//! bundle flow with hangar, a whole-system test), so the binary is found with
//! [`system_tests::bin`] (the `barge` next to the test executable, or `BARGE_BIN`) rather than
//! `CARGO_BIN_EXE_barge`, which only barge's own tests have.
#![allow(dead_code, unused_imports)] // Each test file uses a different subset.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
pub use system_tests::{
    Channel, RATE_LIMITS_OFF, agent, bin, run_with_stdin, stdout_json, stdout_ok,
};

pub const PASS: &str = "correct horse battery staple";

pub fn barge(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    run_with_stdin(
        Command::new(bin("barge"))
            .arg("--dir")
            .arg(dir)
            .args(args)
            .env("BARGE_TEST_KDF", "cheap"),
        stdin,
    )
}

pub fn ok(o: &Output) -> String {
    stdout_ok(o)
}

pub fn json(o: &Output) -> Value {
    stdout_json(o)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An author folder initialised for `channel` (a placeholder URL unless a channel runs).
pub fn author(channel: &str, key: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(&barge(
        dir.path(),
        &[
            "init",
            "--channel",
            channel,
            "--channel-key",
            key,
            "--supplier",
            "acme",
        ],
        None,
    ));
    dir
}

/// Like [`author`], with `init --offline`: the key is not checked against a channel (for
/// tests without one, or that pin a wrong key on purpose).
pub fn offline_author(channel: &str, key: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(&barge(
        dir.path(),
        &[
            "init",
            "--offline",
            "--channel",
            channel,
            "--channel-key",
            key,
            "--supplier",
            "acme",
        ],
        None,
    ));
    dir
}

pub const SOME_KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

pub fn git(dir: &Path, args: &[&str]) {
    let s = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=T", "-c", "user.email=t@example.invalid"])
        .args(args)
        .output()
        .expect("git");
    assert!(s.status.success(), "git {args:?}: {}", stderr(&s));
}

pub fn source_repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(d.path().join("src")).expect("mkdir");
    std::fs::write(d.path().join("src/plugin.php"), "<?php echo 'hi';\n").expect("write");
    std::fs::write(d.path().join("README"), "hello\n").expect("write");
    git(d.path(), &["init", "-q"]);
    git(d.path(), &["add", "."]);
    git(d.path(), &["commit", "-q", "-m", "initial"]);
    d
}

pub fn new_key(dir: &Path, role: &str) -> Value {
    json(&barge(
        dir,
        &["--json", "key", "new", role, "--passphrase-stdin"],
        Some(&format!("{PASS}\n")),
    ))
}

/// A running channel server (the system tests' harness).
pub type Server = Channel;

/// Initialises and starts a channel with policy `open` and rate limits off.
pub fn start() -> Server {
    Channel::start()
}

/// Like [`start`] with the supplier registration policy `policy` (`open` or `invite`).
pub fn start_with_policy(policy: &str) -> Server {
    Channel::start_with(policy, RATE_LIMITS_OFF)
}

/// Every logged event, as JSON.
pub fn logged_entries(base: &str) -> Vec<Value> {
    logged_bodies(base)
        .into_iter()
        .map(|mut b| b["event"].take())
        .collect()
}

/// The channel's log size, from `/v1/stats`.
pub fn log_size(base: &str) -> u64 {
    let stats = agent()
        .get(&format!("{base}/v1/stats"))
        .call()
        .expect("stats")
        .into_body()
        .read_to_string()
        .expect("body");
    let stats: Value = serde_json::from_str(&stats).expect("json");
    stats["data"]["size"].as_u64().expect("size")
}

/// Every logged entry body (`v`, `supplier`, `signer`, `event`) as JSON.
pub fn logged_bodies(base: &str) -> Vec<Value> {
    let size = log_size(base);
    if size == 0 {
        return Vec::new();
    }
    let page = agent()
        .get(&format!("{base}/v1/entries?start=0&end={size}"))
        .call()
        .expect("entries")
        .into_body()
        .read_to_string()
        .expect("body");
    let page: Value = serde_json::from_str(&page).expect("json");
    page["data"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let entry = keyggdrasil::entry::Entry::parse(e.as_str().expect("text").as_bytes())
                .expect("entry");
            serde_json::to_value(entry.body()).expect("body json")
        })
        .collect()
}

/// Posts raw entry bytes to `/v1/submit`; returns the answer envelope.
pub fn submit_raw(base: &str, entry: &[u8]) -> Value {
    let body = serde_json::json!({"entry": String::from_utf8_lossy(entry)}).to_string();
    let text = agent()
        .post(&format!("{base}/v1/submit"))
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .expect("submit")
        .into_body()
        .read_to_string()
        .expect("body");
    serde_json::from_str(&text).expect("json")
}

/// A one-time invite token for `supplier` from `channel-server invite`.
pub fn invite(server: &Server, supplier: &str) -> String {
    server.invite(supplier)
}
