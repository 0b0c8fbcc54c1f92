//! One CLI language (issue 12, item 9), through the real `continuum` binary: `--json` on every
//! command with one error object, `--dir` as the folder's name (`--site` still accepted), no
//! ANSI codes when stderr is not a terminal, a calm word when another run holds the site, and
//! a failure after the log advanced that does not claim "site unchanged".

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use continuum::config::SitePaths;
use continuum::lock::SiteLock;
use keyggdrasil::keys::KeyPair;
use system_tests::{Channel, ORIGIN, Site, Supplier, plugin_archive};

/// Refuses connections: an unreachable channel.
const NOWHERE: &str = "http://127.0.0.1:1";

fn continuum(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_continuum"));
    cmd.args(args)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR");
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    continuum(&["--dir", dir.to_str().expect("utf-8 path")])
        .args(args)
        .output()
        .expect("run continuum")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("continuum was killed by a signal")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The one JSON object a command printed on stdout.
fn one_object(o: &Output) -> serde_json::Value {
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one JSON line expected on stdout: {out:?}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// Asserts the documented error object: kind, a message naming `names`, and the process's own
/// exit code.
fn assert_error_object(o: &Output, kind: &str, want: i32, names: &str) {
    assert_eq!(code(o), want, "stderr: {}", text(&o.stderr));
    let v = one_object(o);
    let e = &v["error"];
    assert_eq!(e["kind"], kind, "{v}");
    assert_eq!(e["exit_code"], want, "{v}");
    let message = e["message"].as_str().expect("message is a string");
    assert!(message.contains(names), "{message:?} lacks {names:?}");
    // The sentence is still on stderr for a person.
    assert!(text(&o.stderr).contains(names), "{}", text(&o.stderr));
}

fn site_for(parent: &Path, url: &str) -> PathBuf {
    let root = parent.join("site");
    let key = KeyPair::generate().public().to_hex();
    let o = run(
        &root,
        &[
            "init",
            "--channel",
            url,
            "--channel-key",
            &key,
            "--channel-name",
            ORIGIN,
            "--json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v = one_object(&o);
    assert_eq!(v["channel"], ORIGIN, "{v}");
    assert_eq!(v["notary_key"].as_str().map(str::len), Some(64), "{v}");
    root
}

#[test]
fn json_errors_are_one_documented_object() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-site");
    let missing_name = missing.to_str().unwrap();

    // A local failure (exit 5) from commands that print sentences otherwise.
    for args in [
        &["status", "--json"][..],
        &["notary", "key", "--json"],
        &["peers", "list", "--json"],
        &["rollback", "acme/hello", "--json"],
    ] {
        let o = run(&missing, args);
        assert_error_object(&o, "local_error", 5, missing_name);
    }

    // `update --json` prints its report object, which carries the same error object.
    let o = run(&missing, &["update", "--json"]);
    assert_eq!(code(&o), 5);
    let v = one_object(&o);
    assert_eq!(v["error"]["kind"], "local_error", "{v}");
    assert_eq!(v["error"]["exit_code"], 5, "{v}");
    assert_eq!(v["exit_code"], 5, "{v}");

    // A usage error from a refused edit (exit 2), and an unreachable channel (exit 4).
    let site = site_for(dir.path(), NOWHERE);
    let o = run(&site, &["peers", "remove", "http://127.0.0.1:7", "--json"]);
    assert_error_object(&o, "usage", 2, "http://127.0.0.1:7");
    let o = run(&site, &["update", "--json"]);
    assert_eq!(code(&o), 4, "{}", text(&o.stderr));
    let v = one_object(&o);
    assert_eq!(v["error"]["kind"], "unreachable", "{v}");
    assert_eq!(v["error"]["exit_code"], 4, "{v}");

    // Success with --json is one object too, sentences on stderr.
    let key = KeyPair::generate().public().to_hex();
    let url = "http://127.0.0.1:7";
    let o = run(&site, &["peers", "add", url, &key, "--offline", "--json"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v = one_object(&o);
    assert_eq!(v["added"]["key"], key.as_str(), "{v}");
    assert!(text(&o.stderr).contains("--offline"), "{}", text(&o.stderr));
    let o = run(&site, &["peers", "list", "--json"]);
    assert_eq!(one_object(&o)["peers"][0]["url"], url);
    let o = run(&site, &["peers", "remove", url, "--json"]);
    assert_eq!(code(&o), 0);
    assert_eq!(one_object(&o)["removed"], url);
    let o = run(&site, &["notary", "key", "--json"]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        one_object(&o)["notary_key"].as_str().map(str::len),
        Some(64)
    );
}

#[test]
fn dir_is_the_folder_and_site_is_an_old_name() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_for(dir.path(), NOWHERE);
    let by_dir = run(&site, &["notary", "key"]);
    let by_site = continuum(&["--site", site.to_str().unwrap(), "notary", "key"])
        .output()
        .unwrap();
    assert_eq!(code(&by_dir), 0, "{}", text(&by_dir.stderr));
    assert_eq!(code(&by_site), 0, "{}", text(&by_site.stderr));
    assert_eq!(by_dir.stdout, by_site.stdout);
    // The old name is accepted but no longer taught.
    let help = continuum(&["--help"]).output().unwrap();
    let help = text(&help.stdout);
    assert!(help.contains("--dir"), "{help}");
    assert!(!help.contains("--site"), "{help}");
}

#[test]
fn no_ansi_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_for(dir.path(), NOWHERE);
    for no_color in [None, Some("1")] {
        let mut cmd = continuum(&["--dir", site.to_str().unwrap(), "update"]);
        cmd.env("RUST_LOG", "debug");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let o = cmd.output().unwrap();
        assert_eq!(code(&o), 4);
        let err = text(&o.stderr);
        // The log lines are there (so the check below looks at real output)…
        assert!(err.contains("DEBUG") || err.contains("WARN"), "{err}");
        // …and carry no escape sequence.
        assert!(!o.stderr.contains(&0x1b), "ANSI in stderr: {err:?}");
    }
}

#[test]
fn a_busy_site_is_told_calmly() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_for(dir.path(), NOWHERE);
    let lock = SiteLock::try_acquire(&SitePaths::new(&site)).unwrap();
    let o = run(&site, &["update"]);
    assert_eq!(code(&o), 6);
    let err = text(&o.stderr);
    assert!(!err.contains("FAILED"), "{err}");
    assert!(
        err.contains("another update or rollback is running on this site; this run did nothing"),
        "{err}"
    );
    drop(lock);
}

/// The release entry is logged and verified, but its archive was never uploaded: the run
/// fails after the accepted log advanced, and says so rather than "site unchanged".
#[test]
fn a_failure_after_the_log_advanced_says_so() {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    let archive = plugin_archive("acme/hello", "1.0.0", "genuine");
    channel.submit(&acme.release(&acme.signing, "hello", "1.0.0", &archive));
    let site = Site::init(&channel);
    site.set_option("site", "allow_no_peers", true);
    let o = site.run(&["install", "acme/hello"]);
    let err = text(&o.stderr);
    assert_ne!(code(&o), 0, "{err}");
    assert!(err.contains("UPDATE FAILED"), "{err}");
    assert!(!err.contains("the site was left as it was"), "{err}");
    assert!(
        err.contains("the verified log advanced for") && err.contains("(0 -> 3 entries)"),
        "{err}"
    );
    assert_eq!(site.accepted_size(), 3);
    assert_eq!(site.installed_version("acme", "hello"), None);
}

/// A folder that is not a site names the file and says how to make one; a database that cannot
/// be opened names the file and what to check.
#[test]
fn local_failures_name_the_path_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    for args in [&["status"][..], &["update"], &["peers", "list"]] {
        let o = run(&missing, args);
        assert_eq!(code(&o), 5);
        let err = text(&o.stderr);
        assert!(
            err.contains(&*missing.join("continuum.toml").to_string_lossy()),
            "{err}"
        );
        assert!(
            err.contains("no site here: pass --dir with the folder `continuum init` created"),
            "{err}"
        );
        assert!(
            !missing.exists(),
            "nothing is created in a folder that is not a site"
        );
    }
    // site.db is a folder: SQLite cannot open it.
    let site = site_for(dir.path(), NOWHERE);
    std::fs::remove_file(site.join("site.db")).unwrap();
    std::fs::create_dir(site.join("site.db")).unwrap();
    let o = run(&site, &["status"]);
    assert_eq!(code(&o), 5);
    let err = text(&o.stderr);
    assert!(
        err.contains(&*site.join("site.db").to_string_lossy()),
        "{err}"
    );
    assert!(
        err.contains("must be able to read and write this file"),
        "{err}"
    );
}
