//! One command-line language, through the real `hangar` binary: an example and the exit codes
//! in every `--help`, the `--json` error object, no escape codes on pipes or with `NO_COLOR`,
//! and the passphrase strength floor for new keys (shared with barge through shipyard).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const PASS: &str = "correct horse battery staple";

fn hangar(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    system_tests::run_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_hangar"))
            .arg("--dir")
            .arg(dir)
            .args(args)
            .env("HANGAR_TEST_KDF", "cheap"),
        stdin,
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    system_tests::stdout_json(o)
}

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
    let o = Command::new(env!("CARGO_BIN_EXE_hangar"))
        .args(path)
        .arg("--help")
        .env("NO_COLOR", "1")
        .output()
        .expect("run hangar");
    assert_eq!(o.status.code(), Some(0), "hangar {path:?} --help");
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
            "hangar {path:?} --help:\n{help}"
        );
        for code in ["  0  ", "  1  ", "  2  ", "  5  "] {
            assert!(
                help.contains(code),
                "exit code {code:?} in hangar {path:?}:\n{help}"
            );
        }
        let example = help
            .lines()
            .skip_while(|l| *l != "Example:")
            .nth(1)
            .unwrap_or_else(|| panic!("no example in hangar {path:?} --help:\n{help}"));
        assert!(
            example.trim_start().starts_with("hangar "),
            "hangar {path:?}: {example}"
        );
        if !path.is_empty() {
            assert!(
                example.contains(&path.join(" ")),
                "hangar {path:?}: {example}"
            );
        }
        for sub in subcommands(&help) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
        seen += 1;
    }
    // key (3), sign, backup (2), and the program itself.
    assert!(seen >= 9, "walked only {seen} help texts");
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
        stderr(o).contains(&format!("hangar: error: {message}")),
        "the same words on stderr: {}",
        stderr(o)
    );
    message
}

#[test]
fn json_errors_are_one_object() {
    let d = tempfile::tempdir().expect("tempdir");
    let missing = d.path().join("missing.bundle");
    let m = error_object(
        &hangar(
            d.path(),
            &["--json", "sign", missing.to_str().expect("utf8"), "--yes"],
            None,
        ),
        "local",
        5,
    );
    assert!(m.contains(missing.to_str().expect("utf8")), "{m}");
    let m = error_object(
        &hangar(d.path(), &["--json", "sign", "--bogus"], None),
        "usage",
        2,
    );
    assert!(m.contains("--bogus"), "{m}");
    let m = error_object(
        &hangar(
            d.path(),
            &["--json", "key", "new", "--master", "--passphrase-stdin"],
            Some("x\n"),
        ),
        "usage",
        2,
    );
    assert!(m.contains("--generate-words"), "{m}");
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
    let d = tempfile::tempdir().expect("tempdir");
    for weak in ["x", "acme2024", "qwertyuiop"] {
        let o = hangar(
            d.path(),
            &[
                "key",
                "new",
                "--master",
                "--supplier",
                "acme",
                "--passphrase-stdin",
            ],
            Some(&format!("{weak}\n")),
        );
        assert_eq!(o.status.code(), Some(2), "{weak}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("too weak") && e.contains("--generate-words"),
            "{e}"
        );
        assert_eq!(key_files(d.path()), 0, "nothing written for {weak}");
    }
    let o = hangar(
        d.path(),
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
    assert_eq!(json(&o)["role"], "master");
    let e = stderr(&o);
    assert!(e.contains("WARNING") && e.contains("WEAK"), "{e}");
    let o = hangar(
        d.path(),
        &["--json", "key", "new", "--signing", "--passphrase-stdin"],
        Some(&format!("{PASS}\n")),
    );
    json(&o);
    assert!(!stderr(&o).contains("WEAK"), "{}", stderr(&o));
    for words in ["12", "24"] {
        json(&hangar(
            d.path(),
            &[
                "--json",
                "key",
                "new",
                "--signing",
                "--generate-words",
                words,
            ],
            None,
        ));
    }
    assert_eq!(key_files(d.path()), 4);
}

#[test]
fn no_escape_codes_on_pipes_or_with_no_color() {
    let d = tempfile::tempdir().expect("tempdir");
    let runs = [
        hangar(d.path(), &["--help"], None),
        hangar(d.path(), &["key", "new", "--bogus"], None),
        hangar(d.path(), &["sign", "/no/such.bundle", "--yes"], None),
        hangar(
            d.path(),
            &[
                "key",
                "new",
                "--master",
                "--passphrase-stdin",
                "--allow-weak-passphrase",
            ],
            Some("x\n"),
        ),
        hangar(
            d.path(),
            &["key", "new", "--signing", "--generate-words", "12"],
            None,
        ),
    ];
    for o in &runs {
        assert!(!o.stdout.contains(&0x1b), "ESC on stdout: {o:?}");
        assert!(!o.stderr.contains(&0x1b), "ESC on stderr: {o:?}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_hangar"))
        .arg("--dir")
        .arg(d.path())
        .args(["key", "list", "--bogus"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(!o.stderr.contains(&0x1b), "{o:?}");
}

/// `backup combine` seals the recovered key under a new passphrase: the same floor as a new
/// key's, before anything is written; the override is loud.
#[test]
fn backup_combine_refuses_a_weak_sealing_passphrase() {
    let d = tempfile::tempdir().expect("tempdir");
    let m = json(&hangar(
        d.path(),
        &["--json", "key", "new", "--master", "--passphrase-stdin"],
        Some(&format!("{PASS}\n")),
    ));
    let key = m["file"].as_str().expect("file");
    let expect = m["public_key"].as_str().expect("pk");
    let split = json(&hangar(
        d.path(),
        &[
            "--json",
            "backup",
            "split",
            "--key",
            key,
            "--threshold",
            "2",
            "--shares",
            "3",
            "--passphrase-stdin",
        ],
        Some(&format!("{PASS}\n")),
    ));
    let words: Vec<&str> = split["shares"]
        .as_array()
        .expect("shares")
        .iter()
        .map(|s| s["words"].as_str().expect("words"))
        .collect();
    let t = tempfile::tempdir().expect("tempdir");
    let combine = |pass: &str, extra: &[&str]| {
        let mut args = vec![
            "--json",
            "backup",
            "combine",
            "--expect",
            expect,
            "--passphrase-stdin",
        ];
        args.extend_from_slice(extra);
        hangar(
            t.path(),
            &args,
            Some(&format!("{pass}\n{}\n{}\n", words[0], words[1])),
        )
    };
    let o = combine("x", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("too weak"), "{}", stderr(&o));
    assert_eq!(key_files(t.path()), 0, "nothing written");
    let o = combine("x", &["--allow-weak-passphrase"]);
    json(&o);
    assert!(stderr(&o).contains("WEAK"), "{}", stderr(&o));
    assert_eq!(key_files(t.path()), 1);
}
