//! `barge monitor` against a real channel, a real notary (which is also a witness) and the
//! malicious channel front ([`system_tests::front`], which signs logs of its own making with the
//! real channel key). The attacker holds a stolen key file and its passphrase: a second barge
//! folder with copies of the author's key files, whose journal the author never sees.
//!
//! Each attack must alert (exit 10, a JSON line naming the finding, a sentence), once; the
//! control (the author's own entries) must never alert.

#[path = "../../barge/tests/common/mod.rs"]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use common::*;
use keyggdrasil::entry::{Entry, EntryBody, Event};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::names::SupplierName;
use serde_json::Value;
use system_tests::front::{Answer, Front, evil_log_keeping};
use system_tests::{Site, exit_code, output_text};

/// An author folder with a registered supplier `acme` (master and signing key) and release
/// `hello 1.0.0`: three entries, all made by barge, so all in the journal.
struct Author {
    ch: Channel,
    dir: tempfile::TempDir,
    src: tempfile::TempDir,
    signing: Value,
}

fn pass() -> String {
    format!("{PASS}\n")
}

fn released_author() -> Author {
    let ch = start();
    let dir = author(&ch.base, &ch.key.to_hex());
    new_key(dir.path(), "--master");
    let signing = new_key(dir.path(), "--signing");
    ok(&barge(
        dir.path(),
        &["key", "register", "--passphrase-stdin"],
        Some(&pass()),
    ));
    ok(&barge(
        dir.path(),
        &["key", "add", "--passphrase-stdin"],
        Some(&pass()),
    ));
    let src = source_repo();
    release(dir.path(), src.path(), "1.0.0");
    Author {
        ch,
        dir,
        src,
        signing,
    }
}

fn release(dir: &Path, src: &Path, version: &str) {
    ok(&barge(
        dir,
        &[
            "release",
            src.to_str().expect("utf8"),
            "--package",
            "hello",
            "--version",
            version,
            "--passphrase-stdin",
        ],
        Some(&pass()),
    ));
}

/// The thief's folder: the author's barge.toml and key files (stolen with their passphrase),
/// but not the author's journal or monitor state.
fn thief(a: &Author) -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::copy(a.dir.path().join("barge.toml"), t.path().join("barge.toml")).expect("copy");
    let local = t.path().join("local");
    std::fs::create_dir(&local).expect("mkdir");
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    for f in std::fs::read_dir(a.dir.path().join("local")).expect("local") {
        let f = f.expect("entry").path();
        let name = f.file_name().expect("name").to_string_lossy().into_owned();
        if name.ends_with(".json") {
            std::fs::copy(&f, local.join(&name)).expect("copy key");
        }
    }
    t
}

fn monitor(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--json", "monitor"];
    all.extend_from_slice(args);
    barge(dir, &all, None)
}

/// The findings (JSON lines with a `severity`) and the summary line of a `--json` run.
fn findings(o: &Output) -> (Vec<Value>, Value) {
    let text = String::from_utf8_lossy(&o.stdout);
    let mut found = Vec::new();
    let mut summary = Value::Null;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n{}", output_text(o)));
        if v.get("severity").is_some() {
            found.push(v);
        } else if let Some(s) = v.get("summary") {
            summary = s.clone();
        }
    }
    assert!(!summary.is_null(), "no summary line:\n{}", output_text(o));
    (found, summary)
}

/// Asserts a run exited `code` and returns its findings' kinds with the findings.
fn run_expecting(dir: &Path, args: &[&str], code: i32) -> (Vec<Value>, Value) {
    let o = monitor(dir, args);
    assert_eq!(exit_code(&o), code, "{}", output_text(&o));
    findings(&o)
}

fn kinds(found: &[Value]) -> Vec<String> {
    found
        .iter()
        .map(|f| f["finding"]["kind"].as_str().expect("kind").to_owned())
        .collect()
}

fn point_at(dir: &Path, url: &str, from: &str) {
    let path = dir.join("barge.toml");
    let text = std::fs::read_to_string(&path).expect("barge.toml");
    assert!(text.contains(from));
    std::fs::write(&path, text.replace(from, url)).expect("write barge.toml");
}

#[test]
fn the_authors_own_entries_never_alert_and_each_run_reads_only_new_entries() {
    let a = released_author();
    let (found, summary) = run_expecting(a.dir.path(), &[], 0);
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(summary["entries_read"], 3);
    assert_eq!(summary["size"], 3);
    assert_eq!(summary["completeness"], "proven");
    // The journal holds the three entries, private to the author.
    let journal = a.dir.path().join("local/journal.jsonl");
    let text = std::fs::read_to_string(&journal).expect("journal");
    assert_eq!(text.lines().count(), 3, "{text}");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&journal), 0o600);
    assert_eq!(mode(&a.dir.path().join("local/monitor.state")), 0o600);
    // Another release and a revocation by the author: read alone, still quiet.
    release(a.dir.path(), a.src.path(), "1.0.1");
    ok(&barge(
        a.dir.path(),
        &[
            "revoke-release",
            "hello",
            "1.0.0",
            "--reason",
            "superseded",
            "--passphrase-stdin",
        ],
        Some(&pass()),
    ));
    let (found, summary) = run_expecting(a.dir.path(), &[], 0);
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(summary["entries_read"], 2, "only the new entries are read");
    assert_eq!(summary["size"], 5);
    // Nothing new: nothing read.
    let (_, summary) = run_expecting(a.dir.path(), &[], 0);
    assert_eq!(summary["entries_read"], 0);
    // Another supplier's entries are none of the monitor's business.
    let bob = system_tests::Supplier::new("bob");
    bob.register(&a.ch);
    let (found, summary) = run_expecting(a.dir.path(), &[], 0);
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(summary["entries_read"], 2, "bob's master and signing keys");
    // The sentences for people, without --json.
    let o = barge(a.dir.path(), &["monitor"], None);
    assert_eq!(exit_code(&o), 0, "{}", output_text(&o));
    assert!(
        output_text(&o).contains("0 new alert(s)"),
        "{}",
        output_text(&o)
    );
}

#[test]
fn a_release_by_a_stolen_signing_key_alerts_once_and_again_only_when_asked() {
    let a = released_author();
    run_expecting(a.dir.path(), &[], 0);
    let t = thief(&a);
    release(t.path(), a.src.path(), "6.6.6");
    let (found, _) = run_expecting(a.dir.path(), &[], 10);
    assert_eq!(kinds(&found), ["not_made_by_you"]);
    let f = &found[0];
    assert_eq!(f["severity"], "alert");
    assert_eq!(f["finding"]["event"], "release");
    assert_eq!(f["finding"]["index"], 3);
    assert_eq!(
        f["finding"]["signer"], a.signing["public_key"],
        "it names the stolen key"
    );
    assert!(f["sentence"].as_str().expect("s").contains("hello 6.6.6"));
    assert!(f["advice"].as_str().expect("a").contains("revoke"));
    // Not repeated...
    let (found, summary) = run_expecting(a.dir.path(), &[], 0);
    assert!(found.is_empty());
    assert_eq!(
        summary["reported_earlier"], 0,
        "nothing re-read, nothing re-found"
    );
    // ... unless the whole history is re-checked with --repeat.
    let (found, summary) = run_expecting(a.dir.path(), &["--since-start", "--repeat"], 10);
    assert_eq!(kinds(&found), ["not_made_by_you"]);
    assert_eq!(summary["entries_read"], 4);
    // --since-start alone finds it again but says it was reported.
    let (found, summary) = run_expecting(a.dir.path(), &["--since-start"], 0);
    assert!(found.is_empty());
    assert_eq!(summary["reported_earlier"], 1);
}

#[test]
fn a_key_added_and_a_key_revoked_by_someone_else_alert() {
    let a = released_author();
    run_expecting(a.dir.path(), &[], 0);
    let t = thief(&a);
    let extra = new_key(t.path(), "--signing");
    ok(&barge(
        t.path(),
        &[
            "key",
            "add",
            "--signing-key",
            extra["file"].as_str().expect("file"),
            "--passphrase-stdin",
        ],
        Some(&pass()),
    ));
    let author_signing = a.signing["public_key"].as_str().expect("pk");
    ok(&barge(
        t.path(),
        &[
            "key",
            "revoke",
            &author_signing[..16],
            "--reason",
            "rotated",
            "--passphrase-stdin",
        ],
        Some(&pass()),
    ));
    let (found, _) = run_expecting(a.dir.path(), &[], 10);
    assert_eq!(kinds(&found), ["not_made_by_you", "not_made_by_you"]);
    assert_eq!(found[0]["finding"]["event"], "signing_key");
    assert!(
        found[0]["sentence"]
            .as_str()
            .expect("s")
            .contains("a new signing key")
    );
    assert_eq!(found[1]["finding"]["event"], "key_revocation");
    assert!(
        found[1]["advice"]
            .as_str()
            .expect("a")
            .contains("master key")
    );
}

/// A supplier of the attacker's making, for forged branches of the log.
fn mallory_entry() -> Entry {
    let k = KeyPair::generate();
    Entry::sign(
        EntryBody::new(
            SupplierName::parse("mallory").expect("name"),
            k.public(),
            Event::MasterKey {
                public_key: k.public(),
                derivation: None,
            },
        ),
        &k,
    )
    .expect("sign")
}

/// A front before `ch` that serves `/v1/updates` from a log of its own (the first `keep` real
/// entries, then `extra`), signed with the real channel key, and hides what would give it
/// away: no checkpoint note, no consistency proofs.
fn lying_front(ch: &Channel, keep: usize, extra: Vec<Entry>) -> Front {
    let key = Arc::new(ch.signing_key());
    let up = ch.base.clone();
    Front::start(&ch.base, move |path| {
        if path.starts_with("/v1/updates") {
            evil_log_keeping(&up, &key, keep, &extra, path)
        } else if path.starts_with("/checkpoint") || path.starts_with("/v1/proof/consistency") {
            Answer::Body {
                status: 404,
                content_type: "application/json".into(),
                body: br#"{"status":"error","error":{"code":"not_found","message":"no"}}"#.to_vec(),
            }
        } else {
            Answer::Pass
        }
    })
}

#[test]
fn a_release_hidden_from_the_author_but_shown_to_a_notary_alerts_as_withheld() {
    let a = released_author();
    let mut site = Site::init(&a.ch);
    let notary = format!("{}={}", site.start_notary(), site.notary_key.to_hex());
    run_expecting(a.dir.path(), &["--notary", &notary], 0);
    // The thief releases; sites (and the notary) see it, the author is shown the old log.
    let t = thief(&a);
    release(t.path(), a.src.path(), "6.6.6");
    let front = lying_front(&a.ch, 3, Vec::new());
    point_at(a.dir.path(), &front.url, &a.ch.base);
    // Without a notary the lie holds: that is what notaries are for.
    let (found, _) = run_expecting(a.dir.path(), &[], 0);
    assert!(found.is_empty(), "{found:?}");
    let (found, _) = run_expecting(a.dir.path(), &["--notary", &notary], 10);
    assert_eq!(kinds(&found), ["withheld"], "{found:?}");
    assert_eq!(found[0]["finding"]["ours"], 3);
    assert_eq!(found[0]["finding"]["theirs"], 4);
    // Back on the real channel, the hidden release is found.
    point_at(a.dir.path(), &a.ch.base, &front.url);
    let (found, _) = run_expecting(a.dir.path(), &["--notary", &notary], 10);
    assert_eq!(kinds(&found), ["not_made_by_you"]);
}

#[test]
fn a_split_view_alerts_as_a_fork_through_the_notary_and_through_the_cosigned_note() {
    let a = released_author();
    let mut site = Site::init(&a.ch);
    let notary = format!("{}={}", site.start_notary(), site.notary_key.to_hex());
    run_expecting(a.dir.path(), &[], 0);
    // The real log grows by a stolen-key release; the author is shown another fourth entry.
    let t = thief(&a);
    release(t.path(), a.src.path(), "6.6.6");
    let front = lying_front(&a.ch, 3, vec![mallory_entry()]);
    point_at(a.dir.path(), &front.url, &a.ch.base);
    let (found, _) = run_expecting(a.dir.path(), &["--notary", &notary], 10);
    assert_eq!(kinds(&found), ["fork"], "{found:?}");
    let f = &found[0]["finding"];
    assert_eq!(
        (f["ours"].as_u64(), f["theirs"].as_u64()),
        (Some(4), Some(4))
    );
    assert_ne!(f["our_root"], f["their_root"]);
    assert!(f["source"].as_str().expect("source").contains("notary"));

    // The same lie with the channel's real (cosigned) note passed through: the note's root at
    // the same size contradicts the forged page, no notary needed.
    let b = released_author();
    run_expecting(b.dir.path(), &[], 0);
    release(thief(&b).path(), b.src.path(), "6.6.6");
    b.ch.wait_published(4);
    let key = Arc::new(b.ch.signing_key());
    let up = b.ch.base.clone();
    let extra = vec![mallory_entry()];
    let front = Front::start(&b.ch.base, move |path| {
        if path.starts_with("/v1/updates") {
            evil_log_keeping(&up, &key, 3, &extra, path)
        } else {
            Answer::Pass
        }
    });
    point_at(b.dir.path(), &front.url, &b.ch.base);
    let (found, _) = run_expecting(b.dir.path(), &[], 10);
    assert_eq!(kinds(&found), ["fork"], "{found:?}");
    assert!(
        found[0]["finding"]["source"]
            .as_str()
            .expect("source")
            .contains("checkpoint note")
    );
}

#[test]
fn a_rollback_and_a_rewritten_history_alert() {
    let a = released_author();
    // The author is first shown a fourth entry that the real log never gets.
    let front = lying_front(&a.ch, 3, vec![mallory_entry()]);
    point_at(a.dir.path(), &front.url, &a.ch.base);
    run_expecting(a.dir.path(), &[], 0);
    // The real channel has three entries: a rollback from the four verified.
    point_at(a.dir.path(), &a.ch.base, &front.url);
    let (found, _) = run_expecting(a.dir.path(), &[], 10);
    assert_eq!(kinds(&found), ["shrunk"], "{found:?}");
    assert_eq!(found[0]["finding"]["before"], 4);
    assert_eq!(found[0]["finding"]["now"], 3);
    // Then it grows to four entries with another fourth: the history was rewritten.
    release(a.dir.path(), a.src.path(), "1.0.1");
    let (found, summary) = run_expecting(a.dir.path(), &[], 10);
    assert_eq!(kinds(&found), ["rewritten"], "{found:?}");
    assert_eq!(
        summary["size"], 4,
        "the verified view is kept, not replaced"
    );
}

#[test]
fn a_log_that_stops_growing_alerts_after_the_configured_age() {
    let a = released_author();
    run_expecting(a.dir.path(), &["--max-quiet-secs", "3600"], 0);
    // Pretend the log last grew two hours ago (rather than wait).
    let state = a.dir.path().join("local/monitor.state");
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
    v["grew_at"] = Value::from(v["grew_at"].as_u64().expect("grew_at") - 7200);
    std::fs::write(&state, serde_json::to_vec(&v).expect("json")).expect("write");
    let (found, _) = run_expecting(a.dir.path(), &["--max-quiet-secs", "3600"], 10);
    assert_eq!(kinds(&found), ["frozen"]);
    assert!(found[0]["finding"]["quiet_secs"].as_u64().expect("secs") >= 7200);
    // Once said; and a log that grows is no longer frozen.
    run_expecting(a.dir.path(), &["--max-quiet-secs", "3600"], 0);
    release(a.dir.path(), a.src.path(), "1.0.1");
    let (found, _) = run_expecting(a.dir.path(), &["--max-quiet-secs", "3600"], 0);
    assert!(found.is_empty());
}

#[test]
fn a_witness_that_did_not_cosign_alerts_and_one_that_did_is_quiet() {
    let mut a = released_author();
    let mut site = Site::init(&a.ch);
    let url = site.start_notary();
    let vkey = continuum::notary::witness::verifier_key(&site.notary_key);
    let config = a.ch.data_dir().join("channel.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "\n[[witness]]\nurl = \"{url}\"\nverifier_key = \"{vkey}\"\n"
    ));
    std::fs::write(&config, text).expect("write");
    a.ch.kill();
    a.ch.spawn();
    let old_base = a.dir.path().join("barge.toml");
    let toml = std::fs::read_to_string(&old_base).expect("toml");
    let before = toml
        .lines()
        .find_map(|l| l.strip_prefix("channel = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("channel line")
        .to_owned();
    point_at(a.dir.path(), &a.ch.base, &before);
    release(a.dir.path(), a.src.path(), "1.0.1");
    let (found, _) = run_expecting(a.dir.path(), &["--witness", &vkey], 0);
    assert!(found.is_empty(), "{found:?}");
    // A witness this channel never asked (a key of nobody's): it cannot have cosigned.
    let stranger = continuum::notary::witness::verifier_key(&KeyPair::generate().public());
    let (found, _) = run_expecting(
        a.dir.path(),
        &["--witness", &vkey, "--witness", &stranger],
        10,
    );
    assert_eq!(kinds(&found), ["unwitnessed"], "{found:?}");
    // A malformed verifier key is a usage error.
    let o = monitor(a.dir.path(), &["--witness", "not a key"]);
    assert_eq!(exit_code(&o), 2, "{}", output_text(&o));
}

#[test]
fn on_alert_gets_the_finding_on_stdin_and_a_failing_hook_is_retried() {
    let a = released_author();
    run_expecting(a.dir.path(), &[], 0);
    release(thief(&a).path(), a.src.path(), "6.6.6");
    let seen = a.dir.path().join("hook-input");
    // A hook that fails: the finding is said, but stays unreported.
    let (found, _) = run_expecting(a.dir.path(), &["--on-alert", "cat > /dev/null; exit 1"], 10);
    assert_eq!(found.len(), 1);
    let hook = format!("cat > '{}'", seen.display());
    let (found, _) = run_expecting(a.dir.path(), &["--on-alert", &hook], 10);
    assert_eq!(found.len(), 1, "tried again after the failed hook");
    let got: Value =
        serde_json::from_slice(&std::fs::read(&seen).expect("hook input")).expect("json");
    assert_eq!(got["finding"]["kind"], "not_made_by_you");
    assert_eq!(got["severity"], "alert");
    run_expecting(a.dir.path(), &["--on-alert", &hook], 0);
}

#[test]
fn trust_existing_adopts_the_entries_logged_before_the_journal_once() {
    let a = released_author();
    // An author upgrading from a barge without a journal.
    std::fs::remove_file(a.dir.path().join("local/journal.jsonl")).expect("rm journal");
    let (found, _) = run_expecting(a.dir.path(), &["--trust-existing"], 0);
    assert!(found.is_empty(), "{found:?}");
    let o = monitor(a.dir.path(), &["--trust-existing"]);
    assert_eq!(exit_code(&o), 2, "{}", output_text(&o));
    assert!(output_text(&o).contains("first run only"));
    let (found, _) = run_expecting(a.dir.path(), &["--since-start"], 0);
    assert!(
        found.is_empty(),
        "adopted entries stay the author's: {found:?}"
    );
}

#[test]
fn a_damaged_state_or_journal_is_a_clear_local_error_and_changes_nothing() {
    let a = released_author();
    run_expecting(a.dir.path(), &[], 0);
    let state = a.dir.path().join("local/monitor.state");
    let good = std::fs::read(&state).expect("state");
    std::fs::write(&state, b"{\"v\":1}").expect("write");
    let o = monitor(a.dir.path(), &[]);
    assert_eq!(exit_code(&o), 5, "{}", output_text(&o));
    assert!(
        output_text(&o).contains("move it away"),
        "{}",
        output_text(&o)
    );
    assert_eq!(std::fs::read(&state).expect("state"), b"{\"v\":1}");
    std::fs::write(&state, &good).expect("restore");
    let journal = a.dir.path().join("local/journal.jsonl");
    let mut text = std::fs::read_to_string(&journal).expect("journal");
    text.push_str("not json\n");
    std::fs::write(&journal, text).expect("write");
    let o = monitor(a.dir.path(), &[]);
    assert_eq!(exit_code(&o), 5, "{}", output_text(&o));
    assert!(
        output_text(&o).contains("journal line 4"),
        "{}",
        output_text(&o)
    );
    assert_eq!(std::fs::read(&state).expect("state"), good);
}

/// `fixtures/systemd/barge-monitor@.service` as written (its `ExecStart=` with only the install
/// paths pointed at this test's binary and folder) does its job, and its timer polls often
/// enough that an author hears within one poll.
#[test]
fn the_monitor_unit_runs_as_written() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/systemd");
    let unit = std::fs::read_to_string(fixtures.join("barge-monitor@.service")).expect("unit");
    let exec: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .collect();
    assert_eq!(exec.len(), 1, "{exec:?}");
    let a = released_author();
    release(thief(&a).path(), a.src.path(), "6.6.6");
    let line = exec[0]
        .replace("/usr/local/bin/barge", &bin("barge").display().to_string())
        .replace("/var/lib/barge/%i", &a.dir.path().display().to_string());
    let mut words = line.split_whitespace();
    let o = std::process::Command::new(words.next().expect("program"))
        .args(words)
        .output()
        .expect("run ExecStart");
    assert_eq!(exit_code(&o), 10, "{}", output_text(&o));
    assert!(
        output_text(&o).contains("ALERT: entry 3"),
        "{}",
        output_text(&o)
    );
    let timer = std::fs::read_to_string(fixtures.join("barge-monitor@.timer")).expect("timer");
    assert!(timer.contains("OnCalendar=*:0/10"), "{timer}");
}

/// `systemd-analyze verify` accepts the monitor's unit and timer (with `ExecStart` pointing at
/// this build's barge, so the command exists); skipped, with a note, without systemd-analyze.
#[test]
fn the_monitor_units_parse() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/systemd");
    let dir = tempfile::tempdir().expect("tempdir");
    let barge = bin("barge").display().to_string();
    let mut paths = Vec::new();
    let names = ["barge-monitor@test.service", "barge-monitor@test.timer"];
    for (template, instance) in ["barge-monitor@.service", "barge-monitor@.timer"]
        .iter()
        .zip(names)
    {
        let text = std::fs::read_to_string(fixtures.join(template)).expect("unit");
        let path = dir.path().join(instance);
        std::fs::write(&path, text.replace("/usr/local/bin/barge", &barge)).expect("write");
        paths.push(path);
    }
    system_tests::systemd_verify(&paths, &names);
}
