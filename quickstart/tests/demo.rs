//! Runs the real demo (debug binaries) and checks what it says, its exit code, and that it
//! leaves nothing behind. The binaries come from `system_tests::bin`, which builds them when
//! this crate's tests run alone (`cargo test -p quickstart`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The folder holding `channel-server`, `continuum` and `barge` (built if missing).
fn bin_dir() -> PathBuf {
    let dir = system_tests::bin("channel-server")
        .parent()
        .expect("binary folder")
        .to_path_buf();
    for b in ["continuum", "barge"] {
        system_tests::bin(b);
    }
    dir
}

/// Runs the demo with its temporary folder under `tmp`.
fn demo(tmp: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .arg("--bin-dir")
        .arg(bin_dir())
        .args(extra)
        .env("TMPDIR", tmp)
        .output()
        .expect("run quickstart")
}

/// The output with line breaks folded into spaces, so wrapped sentences match.
fn flat(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
    .split_whitespace()
    .collect::<Vec<_>>()
    .join(" ")
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("read tmp")
        .map(|e| e.expect("entry").path())
        .collect()
}

#[test]
fn demo_runs_every_step_and_cleans_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = demo(tmp.path(), &[]);
    let text = flat(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for expected in [
        "Channel 'demo.channel' started at http://127.0.0.1:",
        "Its public key is ",
        "notary at http://127.0.0.1:",
        "DEMO ONLY: the keys use the fast 'interactive' cost",
        "The channel logged the master key (self-signed) at index 0 and the signing key (signed by the master key) at index 1.",
        // Steps 4-5: 1.0.0 published, then verified and installed.
        "checked the inclusion proof of its entry against the channel-signed checkpoint (log size 3,",
        "site-a verified the channel's signed answer",
        "its 0 accepted + 3 new entries = 3",
        "peers, asked in random order, confirmed the same root (needed: max(1, ⌈ln 2⌉) = 1;",
        "Installed acme/hello 1.0.0: the downloaded archive has the logged size",
        // Step 6: 1.1.0.
        "its 3 accepted + 1 new entries = 4",
        "Installed acme/hello 1.1.0:",
        "1.0.0 is kept for rollback",
        // Step 7: the tampered 1.2.0 is refused and 1.1.0 stays.
        "exited with code 3 (verification failed, site unchanged)",
        "archive digest mismatch",
        "acme/hello is still 1.1.0 (previous 1.0.0)",
        "lists 1 failed update since the last successful one",
        // Step 8: the channel finds and repairs it; the site installs the real 1.2.0.
        "exited 1: \"BAD ARCHIVE: acme/hello 1.2.0:",
        "the channel replaced its damaged copy with the upload",
        "`channel-server check --archives` passes again, and `continuum update` on site-a installed 1.2.0",
        // Step 11: batched freshness answers.
        "began with `GET /v1/fresh`",
        "such answers with",
        "Stopped 4 server processes and removed",
        "Done: every step behaved as it should.",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("Installed acme/hello 1.2.0"), "{text}");
    // The demo commits with a fixed author, committer and date and no user configuration, so
    // the commit of 1.0.0 is the same on every machine (until the sample extension changes).
    assert!(
        text.contains("archive of commit 01c3de9327826b07"),
        "{text}"
    );
    assert!(
        entries(tmp.path()).is_empty(),
        "the demo left {:?} behind",
        entries(tmp.path())
    );
}

#[test]
fn keep_leaves_the_folder_with_the_refusal_logged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = demo(tmp.path(), &["--keep"]);
    let text = flat(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("left the demo folder"), "{text}");
    let kept = entries(tmp.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    let log = std::fs::read_to_string(kept[0].join("site-a/continuum.log")).expect("site log");
    let lines: Vec<&str> = log.lines().collect();
    // Install 1.0.0, update to 1.1.0, the refused 1.2.0, then 1.2.0 after the repair, then
    // step 11's run that finds nothing new; step 13: 1.3.0, then three runs during 1.3.1's
    // rollout (waiting until its wave includes site-a, installed by the last run at the latest).
    assert_eq!(lines.len(), 9, "{log}");
    assert!(lines[0].contains(" update ok: "), "{log}");
    assert!(lines[1].contains(" update ok: "), "{log}");
    assert!(lines[2].contains(" update verification_failed: "), "{log}");
    assert!(lines[3].contains(" update ok: "), "{log}");
    assert!(
        lines[4].contains(" update ok: ") && lines[4].contains("up to date"),
        "{log}"
    );
    assert!(lines[5].contains("installed 1.3.0"), "{log}");
    assert!(
        lines[5..].iter().all(|l| l.contains(" update ok: ")),
        "{log}"
    );
    assert!(
        lines[6..].iter().any(|l| l.contains("installed 1.3.1")),
        "{log}"
    );
    let installed = std::fs::read_to_string(
        kept[0].join("site-a/packages/acme/hello/current/hello-plugin.php"),
    )
    .expect("installed file");
    assert!(installed.contains("Version: 1.3.1"), "{installed}");
}

#[test]
fn missing_binaries_are_an_error_that_says_what_to_do() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .arg("--bin-dir")
        .arg(tmp.path())
        .env("TMPDIR", tmp.path())
        .output()
        .expect("run quickstart");
    let text = flat(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("channel-server is missing"), "{text}");
    assert!(text.contains("--bin-dir"), "{text}");
    assert!(entries(tmp.path()).is_empty(), "{text}");
}

/// A `continuum` that lies: it reports success where the real one refused an update. The demo
/// must notice, fail, and still clean up.
#[test]
fn a_step_that_does_not_behave_fails_the_demo_and_cleans_up() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let bins = tempfile::tempdir().expect("tempdir");
    let real = bin_dir();
    for b in ["channel-server", "barge"] {
        std::os::unix::fs::symlink(real.join(b), bins.path().join(b)).expect("symlink");
    }
    let fake = bins.path().join("continuum");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n\
             case \" $* \" in *\" update \"*) ;; *) exec '{real}' \"$@\" ;; esac\n\
             out=$('{real}' \"$@\"); code=$?\n\
             if [ $code -eq 3 ]; then\n\
               echo '{{\"exit_code\":0,\"outcome\":\"ok\",\"failure\":null,\"channels\":[]}}'; exit 0\n\
             fi\n\
             printf '%s\\n' \"$out\"; exit $code\n",
            real = real.join("continuum").display()
        ),
    )
    .expect("write fake");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .arg("--bin-dir")
        .arg(bins.path())
        .env("TMPDIR", tmp.path())
        .output()
        .expect("run quickstart");
    let text = flat(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    // Steps 1-6 behaved; step 7 did not.
    assert!(text.contains("Installed acme/hello 1.1.0:"), "{text}");
    assert!(
        text.contains("error: the tampered archive was not refused"),
        "{text}"
    );
    assert!(!text.contains("Done: every step behaved"), "{text}");
    assert!(
        text.contains("Stopped 4 server processes and removed"),
        "{text}"
    );
    assert!(
        entries(tmp.path()).is_empty(),
        "the demo left {:?} behind",
        entries(tmp.path())
    );
}
