//! Helpers shared by the barge CLI tests: the real binary, real git checkouts, and a real
//! `channel-server` on loopback.
#![allow(dead_code)] // Each test file uses a different subset.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

pub const PASS: &str = "correct horse battery staple";

pub fn barge(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_barge"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env("BARGE_TEST_KDF", "cheap")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn barge");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(s) = stdin {
        // barge may exit before reading stdin (a command refused early): that is no error here.
        if let Err(e) = input.write_all(s.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
    }
    drop(input);
    child.wait_with_output().expect("barge output")
}

pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "barge failed ({:?}):\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn json(o: &Output) -> Value {
    serde_json::from_str(ok(o).trim()).expect("json output")
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

pub struct Server {
    pub _dir: tempfile::TempDir,
    pub child: Child,
    pub base: String,
    pub key: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn channel_server() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_barge"))
        .parent()
        .expect("target dir")
        .join("channel-server");
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p channel-server` first)",
        path.display()
    );
    path
}

/// Initialises and starts a channel with policy `open` and rate limits off (as the system
/// tests' `Channel::start` does).
pub fn start() -> Server {
    start_with_policy("open")
}

/// Like [`start`] with the supplier registration policy `policy` (`open` or `invite`).
pub fn start_with_policy(policy: &str) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("channel");
    let out = Command::new(channel_server())
        .args(["init", "--dir"])
        .arg(&data)
        .args([
            "--name",
            "test.channel",
            "--policy",
            policy,
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("channel-server init");
    assert!(out.status.success(), "init: {}", stderr(&out));
    let key = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Channel public key (sites pin this): "))
        .expect("channel key in init output")
        .trim()
        .to_owned();
    let config = data.join("channel.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text
        .lines()
        .map(|l| match l.split('=').next().map(str::trim) {
            Some("submissions_per_minute") => "submissions_per_minute = 0".to_owned(),
            Some("reads_per_minute") => "reads_per_minute = 0".to_owned(),
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config, text).expect("write config");
    let mut child = Command::new(channel_server())
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn channel-server");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("first line");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    Server {
        _dir: dir,
        child,
        base,
        key,
    }
}

pub fn logged_entries(base: &str) -> Vec<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let stats = agent
        .get(&format!("{base}/v1/stats"))
        .call()
        .expect("stats")
        .into_body()
        .read_to_string()
        .expect("body");
    let stats: Value = serde_json::from_str(&stats).expect("json");
    let size = stats["data"]["size"].as_u64().expect("size");
    if size == 0 {
        return Vec::new();
    }
    let page = agent
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
            serde_json::to_value(&entry.body().event).expect("event json")
        })
        .collect()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
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
    let out = Command::new(channel_server())
        .args(["invite", supplier, "--config"])
        .arg(server._dir.path().join("channel/channel.toml"))
        .output()
        .expect("channel-server invite");
    assert!(out.status.success(), "invite: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
