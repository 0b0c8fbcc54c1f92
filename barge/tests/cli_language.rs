//! One command-line language, through the real `barge` binary: an example and the exit codes in
//! every `--help`, the `--json` error object, no escape codes on pipes or with `NO_COLOR`, and
//! the passphrase strength floor for new keys.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

/// The subcommand names listed under `Commands:` in a `--help` text (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|n| n != "help")
        .collect()
}

fn help_of(path: &[String]) -> String {
    let o = Command::new(bin("barge"))
        .args(path)
        .arg("--help")
        .env("NO_COLOR", "1")
        .output()
        .expect("run barge");
    assert_eq!(o.status.code(), Some(0), "barge {path:?} --help");
    assert!(!o.stdout.contains(&0x1b), "no escape codes in help");
    String::from_utf8(o.stdout).expect("utf8 help")
}

#[test]
fn every_help_lists_the_exit_codes_and_shows_an_example() {
    let mut todo = vec![Vec::<String>::new()];
    let mut seen = 0;
    while let Some(path) = todo.pop() {
        let help = help_of(&path);
        assert!(
            help.contains("Exit codes:"),
            "barge {path:?} --help:\n{help}"
        );
        for code in ["  0  ", "  1  ", "  2  ", "  3  ", "  4  ", "  5  "] {
            assert!(
                help.contains(code),
                "exit code {code:?} in barge {path:?}:\n{help}"
            );
        }
        let example = help
            .lines()
            .skip_while(|l| *l != "Example:")
            .nth(1)
            .unwrap_or_else(|| panic!("no example in barge {path:?} --help:\n{help}"));
        assert!(
            example.trim_start().starts_with("barge "),
            "barge {path:?}: {example}"
        );
        // The example names this very subcommand (e.g. `barge key new …` for `key new`).
        if !path.is_empty() {
            assert!(
                example.contains(&path.join(" ")),
                "barge {path:?}: {example}"
            );
        }
        for sub in subcommands(&help) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
        seen += 1;
    }
    // init, key (6), build, sign, verify, release, revoke-release, verify-build, prepare (4),
    // publish, and the program itself.
    assert!(seen >= 20, "walked only {seen} help texts");
}

/// Asserts the `--json` error object on stdout (and nothing else there), the sentence on
/// stderr; returns the message.
fn error_object(o: &Output, kind: &str, code: i32) -> String {
    assert_eq!(o.status.code(), Some(code), "stderr: {}", stderr(o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.lines().count(), 1, "one line on stdout: {text}");
    let v: Value = serde_json::from_str(&text).expect("a JSON object on stdout");
    assert_eq!(v["error"]["kind"], kind, "{v}");
    assert_eq!(v["error"]["exit_code"], code, "{v}");
    let message = v["error"]["message"].as_str().expect("message").to_owned();
    assert!(
        stderr(o).contains(&format!("barge: error: {message}")),
        "the same words on stderr: {}",
        stderr(o)
    );
    message
}

#[test]
fn json_errors_are_one_object_for_every_kind() {
    let d = tempfile::tempdir().expect("tempdir");
    // No barge.toml here: usage, naming the file and the fix.
    let m2 = error_object(
        &barge(d.path(), &["--json", "key", "new", "--signing"], None),
        "usage",
        2,
    );
    assert!(
        m2.contains("barge.toml") && m2.contains("barge init"),
        "{m2}"
    );
    // A malformed command line, too.
    let m = error_object(
        &barge(d.path(), &["--json", "release", "--bogus"], None),
        "usage",
        2,
    );
    assert!(m.contains("--bogus"), "{m}");
    // A file that cannot be opened: local, named.
    let missing = d.path().join("missing.zip");
    let m = error_object(
        &barge(
            d.path(),
            &[
                "--json",
                "verify",
                "--public-key",
                SOME_KEY,
                "--signature",
                &"00".repeat(64),
                missing.to_str().expect("utf8"),
            ],
            None,
        ),
        "local",
        5,
    );
    assert!(m.contains(missing.to_str().expect("utf8")), "{m}");
    // An unreachable channel: the URL and what to check.
    let a = offline_author("http://127.0.0.1:1", SOME_KEY);
    new_key(a.path(), "--master");
    let m = error_object(
        &barge(
            a.path(),
            &["--json", "key", "register", "--passphrase-stdin"],
            Some(&format!("{PASS}\n")),
        ),
        "unreachable",
        4,
    );
    assert!(
        m.contains("http://127.0.0.1:1") && m.contains("check the channel URL"),
        "{m}"
    );
}

#[test]
fn a_reported_result_that_fails_carries_the_error_in_the_same_object() {
    let d = tempfile::tempdir().expect("tempdir");
    let file = d.path().join("f.txt");
    std::fs::write(&file, "hello").expect("write");
    let o = barge(
        d.path(),
        &[
            "--json",
            "verify",
            "--public-key",
            SOME_KEY,
            "--signature",
            &"00".repeat(64),
            file.to_str().expect("utf8"),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).expect("one object");
    assert_eq!(v["valid"], false);
    assert_eq!(v["error"]["kind"], "rejected");
    assert_eq!(v["error"]["exit_code"], 1);
}

#[test]
fn no_escape_codes_on_pipes_or_with_no_color() {
    let a = offline_author("http://127.0.0.1:9", SOME_KEY);
    let runs: Vec<Output> = vec![
        barge(a.path(), &["--help"], None),
        barge(a.path(), &["key", "new", "--bogus"], None),
        barge(
            a.path(),
            &["release", "/no/such", "--package", "x", "--version", "1"],
            None,
        ),
        barge(
            a.path(),
            &[
                "key",
                "new",
                "--master",
                "--passphrase-stdin",
                "--allow-weak-passphrase",
            ],
            Some("x\n"),
        ),
        barge(
            a.path(),
            &["key", "new", "--signing", "--generate-words", "12"],
            None,
        ),
    ];
    for o in &runs {
        assert!(!o.stdout.contains(&0x1b), "ESC on stdout: {o:?}");
        assert!(!o.stderr.contains(&0x1b), "ESC on stderr: {o:?}");
    }
    // And with NO_COLOR set.
    let o = Command::new(bin("barge"))
        .arg("--dir")
        .arg(a.path())
        .args(["key", "list", "--bogus"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(!o.stderr.contains(&0x1b), "{o:?}");
}

fn key_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("local"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn weak_passphrases_are_refused_unless_overridden_loudly_and_generated_words_pass() {
    let a = offline_author("http://127.0.0.1:9", SOME_KEY);
    for (role, weak) in [
        ("--master", "x"),
        ("--signing", "acme2024"),
        ("--master", "letmein"),
    ] {
        let o = barge(
            a.path(),
            &["key", "new", role, "--passphrase-stdin"],
            Some(&format!("{weak}\n")),
        );
        assert_eq!(o.status.code(), Some(2), "{weak}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains("too weak"), "{e}");
        assert!(e.contains("--generate-words"), "{e}");
        assert!(e.contains("--allow-weak-passphrase"), "{e}");
        assert_eq!(key_files(a.path()), 0, "nothing written for {weak}");
    }
    // The override works, and says so loudly.
    let o = barge(
        a.path(),
        &[
            "--json",
            "key",
            "new",
            "--master",
            "--passphrase-stdin",
            "--allow-weak-passphrase",
        ],
        Some("x\n"),
    );
    let v = json(&o);
    assert_eq!(v["role"], "master");
    let e = stderr(&o);
    assert!(e.contains("WARNING") && e.contains("WEAK"), "{e}");
    assert_eq!(key_files(a.path()), 1);
    // A strong passphrase passes without a warning.
    let o = barge(
        a.path(),
        &["--json", "key", "new", "--signing", "--passphrase-stdin"],
        Some(&format!("{PASS}\n")),
    );
    json(&o);
    assert!(!stderr(&o).contains("WEAK"), "{}", stderr(&o));
    // Generated words pass the floor.
    for words in ["12", "24"] {
        let o = barge(
            a.path(),
            &[
                "--json",
                "key",
                "new",
                "--signing",
                "--generate-words",
                words,
            ],
            None,
        );
        json(&o);
        assert!(!stderr(&o).contains("too weak"), "{}", stderr(&o));
    }
    assert_eq!(key_files(a.path()), 4);
}

#[test]
fn a_bad_url_and_a_tls_failure_name_the_url_and_the_fix() {
    let d = tempfile::tempdir().expect("tempdir");
    let o = barge(
        d.path(),
        &[
            "--json",
            "init",
            "--channel",
            "ftp://channel.example",
            "--channel-key",
            SOME_KEY,
            "--supplier",
            "acme",
        ],
        None,
    );
    let m = error_object(&o, "usage", 2);
    assert!(
        m.contains("ftp://channel.example") && m.contains("http:// or https://"),
        "{m}"
    );
    // https:// to a channel that speaks plain HTTP: the TLS handshake fails.
    let ch = start();
    let https = ch.base.replace("http://", "https://");
    let o = barge(
        d.path(),
        &[
            "--json",
            "init",
            "--channel",
            &https,
            "--channel-key",
            &ch.key.to_hex(),
            "--supplier",
            "acme",
        ],
        None,
    );
    let m = error_object(&o, "unreachable", 4);
    assert!(m.contains(&https) && m.contains("certificate"), "{m}");
    assert!(!d.path().join("barge.toml").exists());
}
