//! One test per exit code `hangar --help` documents (0, 1, 2, 5; hangar has no network, so
//! never 3 or 4), through the real binary, with the smallest Argon2i costs.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const PASS: &str = "correct horse battery staple";

fn hangar(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hangar"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        // Smallest Argon2i costs: these tests are about exit codes, not key strength.
        .env("HANGAR_TEST_KDF", "cheap")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hangar");
    let mut input = child.stdin.take().expect("stdin");
    // hangar may exit before it reads stdin (a usage error comes first): a broken pipe then
    // is the point, not a failure.
    if let Some(text) = stdin
        && let Err(e) = input.write_all(text.as_bytes())
    {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    drop(input);
    child.wait_with_output().expect("wait for hangar")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts exit `code` and a `hangar: error:` line containing `needle`.
fn fails_with(o: &Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "stderr: {}", stderr(o));
    let e = stderr(o);
    assert!(e.contains("hangar: error: "), "{e}");
    assert!(e.contains(needle), "expected {needle:?} in {e}");
}

/// A new master key in `dir`; returns its key file.
fn new_master(dir: &Path) -> String {
    let o = hangar(
        dir,
        &["--json", "key", "new", "--master", "--passphrase-stdin"],
        Some(&format!("{PASS}\n")),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON with --json");
    v["file"].as_str().expect("file").to_owned()
}

#[test]
fn help_documents_the_exit_codes_hangar_can_give() {
    let o = hangar(Path::new("."), &["--help"], None);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("Exit codes:"), "{help}");
    for code in ["0", "1", "2", "5"] {
        assert!(
            help.contains(&format!("\n  {code}  ")),
            "code {code} in {help}"
        );
    }
    // No network: the channel codes are not listed as outcomes.
    assert!(
        !help.contains("\n  3  ") && !help.contains("\n  4  "),
        "{help}"
    );
}

#[test]
fn exit_0_on_success() {
    let d = tempfile::tempdir().expect("tempdir");
    let file = new_master(d.path());
    assert!(Path::new(&file).is_file());
    let o = hangar(d.path(), &["key", "list"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn exit_1_when_a_check_says_no() {
    let d = tempfile::tempdir().expect("tempdir");
    let key = new_master(d.path());
    let o = hangar(
        d.path(),
        &[
            "backup",
            "split",
            "--key",
            &key,
            "--threshold",
            "2",
            "--shares",
            "3",
            "--passphrase-stdin",
        ],
        Some("not the passphrase\n"),
    );
    fails_with(&o, 1, "wrong passphrase");
    assert!(o.stdout.is_empty(), "no share was printed");
}

#[test]
fn exit_2_on_usage_errors() {
    let d = tempfile::tempdir().expect("tempdir");
    let o = hangar(
        d.path(),
        &[
            "key",
            "from-passphrase",
            "--salt",
            "abc",
            "--ops-limit",
            "3",
            "--mem-limit",
            "8192",
            "--passphrase-stdin",
        ],
        Some(&format!("{PASS}\n")),
    );
    fails_with(&o, 2, "salt");
    // A refused precondition: K larger than N.
    let key = new_master(d.path());
    let o = hangar(
        d.path(),
        &[
            "backup",
            "split",
            "--key",
            &key,
            "--threshold",
            "4",
            "--shares",
            "3",
            "--passphrase-stdin",
        ],
        Some(&format!("{PASS}\n")),
    );
    fails_with(&o, 2, "threshold");
}

#[test]
fn exit_5_when_a_file_cannot_be_opened_and_the_path_is_named() {
    let d = tempfile::tempdir().expect("tempdir");
    let missing = d.path().join("no-such.bundle");
    let missing = missing.to_str().expect("utf8");
    // Used to be a usage error (2); a file that cannot be opened is a local failure.
    let o = hangar(d.path(), &["sign", missing, "--yes"], None);
    fails_with(&o, 5, &format!("could not open {missing}"));
    let expect = keyggdrasil::keys::KeyPair::generate().public().to_hex();
    let o = hangar(
        d.path(),
        &["backup", "combine", "--expect", &expect, "--plain", missing],
        None,
    );
    fails_with(&o, 5, &format!("could not read {missing}"));
}
