//! Pin first, through the real `barge` binary and a real `channel-server` on loopback: `init`
//! refuses a channel key the channel does not sign with (unless `--offline`), and every command
//! that submits checks a fresh signed answer against the pinned key first and submits nothing
//! on a mismatch (the channel's log size is unchanged, no archive is uploaded).

mod common;

use std::path::Path;
use std::process::Output;

use common::*;
use serde_json::Value;

fn pass() -> String {
    format!("{PASS}\n")
}

fn init(dir: &Path, channel: &str, key: &str, extra: &[&str]) -> Output {
    let mut args = vec!["init"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "--channel",
        channel,
        "--channel-key",
        key,
        "--supplier",
        "acme",
    ]);
    barge(dir, &args, None)
}

/// Asserts exit `code`, a barge error on stderr naming `needle`.
fn refused(o: &Output, code: i32, needle: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        stderr(o)
    );
    assert!(stderr(o).contains("barge: error: "), "{}", stderr(o));
    assert!(
        stderr(o).contains(needle),
        "wanted {needle:?} in {}",
        stderr(o)
    );
}

/// Replaces the pinned channel key in `dir/barge.toml` with `key`.
fn repin(dir: &Path, key: &str) {
    let path = dir.join("barge.toml");
    let text = std::fs::read_to_string(&path).expect("barge.toml");
    let mut cfg: toml::Table = toml::from_str(&text).expect("toml");
    cfg.insert("channel_key".into(), toml::Value::String(key.to_owned()));
    std::fs::write(&path, toml::to_string(&cfg).expect("toml")).expect("write barge.toml");
}

#[test]
fn init_with_a_wrong_channel_key_writes_nothing_and_offline_writes_it() {
    let ch = start();
    let dir = tempfile::tempdir().expect("tempdir");
    let o = init(dir.path(), &ch.base, SOME_KEY, &[]);
    refused(&o, 3, "does not verify with the pinned channel key");
    assert!(
        stderr(&o).contains(&ch.base),
        "names the URL: {}",
        stderr(&o)
    );
    assert!(!dir.path().join("barge.toml").exists(), "nothing written");
    assert!(!dir.path().join("local").exists(), "nothing written");

    // The same with --json: one error object on stdout, the sentence still on stderr.
    let o = barge(
        dir.path(),
        &[
            "--json",
            "init",
            "--channel",
            &ch.base,
            "--channel-key",
            SOME_KEY,
            "--supplier",
            "acme",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&o.stdout).expect("one JSON object on stdout");
    assert_eq!(v["error"]["kind"], "channel_misbehaved");
    assert_eq!(v["error"]["exit_code"], 3);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains("does not verify with the pinned channel key"),
        "{v}"
    );
    assert!(stderr(&o).contains("barge: error: "), "{}", stderr(&o));
    assert!(!dir.path().join("barge.toml").exists());

    // --offline writes it unchecked, and says so.
    let o = init(dir.path(), &ch.base, SOME_KEY, &["--offline"]);
    let text = ok(&o);
    assert!(text.contains("NOT checked"), "{text}");
    assert!(dir.path().join("barge.toml").is_file());
    assert_eq!(log_size(&ch.base), 0);
}

#[test]
fn init_with_the_right_key_is_checked_and_an_unreachable_channel_writes_nothing() {
    let ch = start();
    let dir = tempfile::tempdir().expect("tempdir");
    let v = json(&barge(
        dir.path(),
        &[
            "--json",
            "init",
            "--channel",
            &ch.base,
            "--channel-key",
            &ch.key.to_hex(),
            "--supplier",
            "acme",
        ],
        None,
    ));
    assert_eq!(v["checked"], true);
    assert!(v["origin"].is_string(), "{v}");
    let other = tempfile::tempdir().expect("tempdir");
    // Nothing listens on port 1.
    let o = init(other.path(), "http://127.0.0.1:1", &ch.key.to_hex(), &[]);
    refused(&o, 4, "could not reach http://127.0.0.1:1");
    assert!(!other.path().join("barge.toml").exists());
}

#[test]
fn every_submitting_command_with_a_wrong_pinned_key_submits_nothing() {
    let ch = start();
    let author = author(&ch.base, &ch.key.to_hex());
    let a = author.path();
    let master = new_key(a, "--master");
    let signing = new_key(a, "--signing");
    ok(&barge(
        a,
        &["key", "register", "--passphrase-stdin"],
        Some(&pass()),
    ));
    ok(&barge(
        a,
        &["key", "add", "--passphrase-stdin"],
        Some(&pass()),
    ));
    let src = source_repo();
    let src_path = src.path().to_str().expect("utf8");
    ok(&barge(
        a,
        &[
            "release",
            src_path,
            "--package",
            "hello",
            "--version",
            "1.0.0",
            "--passphrase-stdin",
        ],
        Some(&pass()),
    ));
    assert_eq!(log_size(&ch.base), 3);
    let master_file = master["file"].as_str().expect("file").to_owned();
    let second = new_key(a, "--master");
    let second_file = second["file"].as_str().expect("file").to_owned();
    let signing_fp = signing["fingerprint"].as_str().expect("fp").to_owned();

    // Pin a key the channel does not hold.
    repin(a, SOME_KEY);
    let commands: Vec<(&str, Vec<&str>)> = vec![
        (
            "release",
            vec![
                "release",
                src_path,
                "--package",
                "hello",
                "--version",
                "2.0.0",
                "--passphrase-stdin",
            ],
        ),
        (
            "key register",
            vec![
                "key",
                "register",
                "--key",
                &second_file,
                "--passphrase-stdin",
            ],
        ),
        (
            "key add",
            vec![
                "key",
                "add",
                "--new-master",
                &second_file,
                "--master-key",
                &master_file,
                "--passphrase-stdin",
            ],
        ),
        (
            "key revoke",
            vec![
                "key",
                "revoke",
                &signing_fp,
                "--reason",
                "test",
                "--by",
                &master_file,
                "--passphrase-stdin",
            ],
        ),
        (
            "revoke-release",
            vec![
                "revoke-release",
                "hello",
                "1.0.0",
                "--reason",
                "test",
                "--passphrase-stdin",
            ],
        ),
        (
            "verify-build --attest",
            vec![
                "verify-build",
                "acme/hello",
                "1.0.0",
                "--source",
                src_path,
                "--attest",
                "--key",
                &signing_fp,
                "--passphrase-stdin",
            ],
        ),
    ];
    for (name, args) in commands {
        let o = barge(a, &args, Some(&pass()));
        assert_eq!(
            o.status.code(),
            Some(3),
            "{name}: stdout {} stderr {}",
            String::from_utf8_lossy(&o.stdout),
            stderr(&o)
        );
        assert!(
            stderr(&o).contains("does not verify with the pinned channel key"),
            "{name}: {}",
            stderr(&o)
        );
        assert!(
            !stderr(&o).contains("Unlocking"),
            "{name}: no key is unlocked before the pin is checked: {}",
            stderr(&o)
        );
        assert_eq!(log_size(&ch.base), 3, "{name} submitted something");
    }
    // release built nothing either: the pin is checked before the build.
    let dist = a.join("dist");
    let built: Vec<_> = std::fs::read_dir(&dist)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !built.iter().any(|n| n.to_string_lossy().contains("2.0.0")),
        "{built:?}"
    );

    // The control: the right key again, and the same release goes through.
    repin(a, &ch.key.to_hex());
    ok(&barge(
        a,
        &[
            "release",
            src_path,
            "--package",
            "hello",
            "--version",
            "2.0.0",
            "--passphrase-stdin",
        ],
        Some(&pass()),
    ));
    assert_eq!(log_size(&ch.base), 4);
}
