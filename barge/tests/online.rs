//! The online barge commands end to end against a real `channel-server` on loopback: `key
//! revoke`, `revoke-release`, `verify-build` (with `--attest`), `release` progress and `--json`,
//! the refusals that must write and submit nothing, and build reproducibility at the CLI.
//!
//! Needs `channel-server` next to the `barge` binary (`cargo build -p channel-server`).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

/// A running channel with supplier `acme` registered: a master and a signing key.
struct Registered {
    ch: Server,
    author: tempfile::TempDir,
    master: Value,
    signing: Value,
}

fn pass() -> String {
    format!("{PASS}\n")
}

fn registered() -> Registered {
    let ch = start();
    let author = author(&ch.base, &ch.key.to_hex());
    let master = new_key(author.path(), "--master");
    let signing = new_key(author.path(), "--signing");
    ok(&barge(
        author.path(),
        &["key", "register", "--passphrase-stdin"],
        Some(&pass()),
    ));
    ok(&barge(
        author.path(),
        &["key", "add", "--passphrase-stdin"],
        Some(&pass()),
    ));
    assert_eq!(log_size(&ch.base), 2);
    Registered {
        ch,
        author,
        master,
        signing,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// An author folder for another supplier, `bolt`, with its master and signing key registered
/// on `ch` (two entries): a supplier never attests its own release (`self_attestation`).
/// Returns the folder and bolt's signing key (`barge key new --json`).
fn attester(ch: &Server) -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(&barge(
        dir.path(),
        &[
            "init",
            "--channel",
            &ch.base,
            "--channel-key",
            &ch.key.to_hex(),
            "--supplier",
            "bolt",
        ],
        None,
    ));
    new_key(dir.path(), "--master");
    let signing = new_key(dir.path(), "--signing");
    for cmd in ["register", "add"] {
        ok(&barge(
            dir.path(),
            &["key", cmd, "--passphrase-stdin"],
            Some(&pass()),
        ));
    }
    (dir, signing)
}

/// `barge --json verify-build acme/hello VERSION --source SRC EXTRA...`; with
/// `--passphrase-stdin` among `extra`, the passphrase goes on stdin.
fn verify_build(a: &Path, src: &Path, version: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "--json",
        "verify-build",
        "acme/hello",
        version,
        "--source",
        s(src),
    ];
    args.extend_from_slice(extra);
    let stdin = extra.contains(&"--passphrase-stdin").then(pass);
    barge(a, &args, stdin.as_deref())
}

fn release(a: &Path, src: &Path, version: &str, extra: &[&str], stdin: &str) -> Output {
    let mut args = vec![
        "release",
        s(src),
        "--package",
        "hello",
        "--version",
        version,
        "--passphrase-stdin",
    ];
    args.extend_from_slice(extra);
    barge(a, &args, Some(stdin))
}

fn pk(v: &Value, field: &str) -> String {
    v[field].as_str().expect("string field").to_owned()
}

fn last_event(base: &str) -> Value {
    logged_bodies(base).pop().expect("a logged entry")
}

/// Asserts the command failed with `code`, its stderr names `needle`, and stdout is empty.
fn refused(o: &Output, code: i32, needle: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        stderr(o)
    );
    assert!(
        stderr(o).contains(needle),
        "wanted {needle:?} in: {}",
        stderr(o)
    );
    assert!(stderr(o).contains("barge: error: "), "{}", stderr(o));
}

fn unlock_key(path: &str) -> keyggdrasil::keys::KeyPair {
    let bytes = std::fs::read(path).expect("key file");
    keyggdrasil::keyfile::KeyFile::parse(&bytes)
        .expect("parse key file")
        .unlock(Some(PASS.as_bytes()))
        .expect("unlock")
}

mod key_revoke {
    use super::*;

    #[test]
    fn revoking_a_signing_key_is_logged_and_the_key_can_no_longer_release() {
        let r = registered();
        let a = r.author.path();
        let fingerprint = pk(&r.signing, "fingerprint");
        // Named by a fingerprint prefix.
        let v = json(&barge(
            a,
            &[
                "--json",
                "key",
                "revoke",
                &fingerprint[..12],
                "--reason",
                "laptop stolen",
                "--passphrase-stdin",
            ],
            Some(&pass()),
        ));
        assert_eq!(v["revoked"], r.signing["public_key"]);
        assert_eq!(v["by"], r.master["public_key"]);
        assert_eq!(v["included"], true);
        assert_eq!(v["index"], 2);
        let body = last_event(&r.ch.base);
        assert_eq!(body["signer"], r.master["public_key"]);
        assert_eq!(body["event"]["type"], "key_revocation");
        assert_eq!(body["event"]["public_key"], r.signing["public_key"]);
        assert_eq!(body["event"]["reason"], "laptop stolen");

        // The channel now refuses releases by that key; nothing is appended.
        let src = source_repo();
        let o = release(a, src.path(), "1.0.0", &[], &pass());
        refused(&o, 1, "not_current_signing_key");
        assert_eq!(log_size(&r.ch.base), 3);
        // Revoking it again is refused by the channel.
        let o = barge(
            a,
            &[
                "key",
                "revoke",
                &pk(&r.signing, "public_key"),
                "--reason",
                "again",
                "--passphrase-stdin",
            ],
            Some(&pass()),
        );
        refused(&o, 1, "key_already_revoked");
        assert_eq!(log_size(&r.ch.base), 3);
    }

    #[test]
    fn a_second_master_key_can_revoke_the_first() {
        let r = registered();
        let a = r.author.path();
        let first = r.master["file"].as_str().expect("key file path").to_owned();
        let second = new_key(a, "--master");
        let second_path = pk(&second, "file");
        // Without naming the signer, two master keys are ambiguous; adding a key with itself is
        // refused before any passphrase is read. Nothing reaches the log.
        let o = barge(
            a,
            &[
                "key",
                "add",
                "--new-master",
                &second_path,
                "--master-key",
                &second_path,
            ],
            Some(&pass()),
        );
        refused(&o, 2, "would sign itself");
        assert_eq!(log_size(&r.ch.base), 2);

        let v = json(&barge(
            a,
            &[
                "--json",
                "key",
                "add",
                "--new-master",
                &second_path,
                "--master-key",
                &first,
                "--passphrase-stdin",
            ],
            Some(&pass()),
        ));
        assert_eq!(v["index"], 2);
        let body = last_event(&r.ch.base);
        assert_eq!(body["event"]["type"], "master_key");
        assert_eq!(body["event"]["public_key"], second["public_key"]);
        assert_eq!(body["signer"], r.master["public_key"]);

        // The second master key revokes the first; the first can then sign nothing.
        ok(&barge(
            a,
            &[
                "key",
                "revoke",
                &pk(&r.master, "public_key"),
                "--by",
                &second_path,
                "--reason",
                "rotated",
                "--passphrase-stdin",
            ],
            Some(&pass()),
        ));
        let body = last_event(&r.ch.base);
        assert_eq!(body["event"]["type"], "key_revocation");
        assert_eq!(body["signer"], second["public_key"]);
        assert_eq!(log_size(&r.ch.base), 4);
        let third = new_key(a, "--signing");
        let o = barge(
            a,
            &[
                "key",
                "add",
                "--signing-key",
                &pk(&third, "file"),
                "--master-key",
                &first,
                "--passphrase-stdin",
            ],
            Some(&pass()),
        );
        refused(&o, 1, "not_current_master");
        assert_eq!(log_size(&r.ch.base), 4);
    }

    #[test]
    fn refusals_submit_nothing() {
        let r = registered();
        let a = r.author.path();
        let master = pk(&r.master, "public_key");
        let signing = pk(&r.signing, "public_key");
        let revoke = |args: &[&str], stdin: &str| {
            let mut all = vec!["key", "revoke"];
            all.extend_from_slice(args);
            barge(a, &all, Some(stdin))
        };

        // The master key with itself: refused before the passphrase is even read.
        let o = revoke(
            &[
                &master,
                "--reason",
                "x",
                "--by",
                &master,
                "--passphrase-stdin",
            ],
            "",
        );
        refused(&o, 2, "with itself");
        // Without --by there is no other master key to sign.
        let o = revoke(&[&master, "--reason", "x", "--passphrase-stdin"], "");
        refused(&o, 2, "cannot revoke itself");
        // A signing key cannot sign a revocation.
        let o = revoke(
            &[
                &master,
                "--reason",
                "x",
                "--by",
                &signing,
                "--passphrase-stdin",
            ],
            &pass(),
        );
        refused(&o, 2, "only a master key");
        // A key the supplier does not have: the channel refuses it.
        let o = revoke(&[SOME_KEY, "--reason", "x", "--passphrase-stdin"], &pass());
        refused(&o, 1, "not_supplier_key");
        // A name that matches no local key file.
        let o = revoke(
            &["nosuchkey", "--reason", "x", "--passphrase-stdin"],
            &pass(),
        );
        refused(&o, 2, "no key in");
        // A wrong passphrase.
        let o = revoke(&[&signing, "--reason", "x", "--passphrase-stdin"], "nope\n");
        refused(&o, 1, "wrong passphrase");
        // A reason with a control character.
        let o = revoke(
            &[&signing, "--reason", "a\u{7}b", "--passphrase-stdin"],
            &pass(),
        );
        refused(&o, 2, "--reason");
        assert_eq!(log_size(&r.ch.base), 2);
    }

    #[test]
    fn the_channel_refuses_a_self_revocation_too() {
        let r = registered();
        let kp = unlock_key(r.master["file"].as_str().expect("file"));
        let body = keyggdrasil::entry::EntryBody::new(
            keyggdrasil::names::SupplierName::parse("acme").expect("name"),
            kp.public(),
            keyggdrasil::entry::Event::KeyRevocation {
                public_key: kp.public(),
                reason: keyggdrasil::entry::Reason::parse("self").expect("reason"),
            },
        );
        let entry = keyggdrasil::entry::Entry::sign(body, &kp).expect("sign");
        let answer = submit_raw(&r.ch.base, entry.as_bytes());
        assert_eq!(answer["status"], "error", "{answer}");
        assert_eq!(answer["code"], "self_revocation", "{answer}");
        assert_eq!(log_size(&r.ch.base), 2);
    }
}

mod revoke_release {
    use super::*;

    #[test]
    fn a_revoked_release_is_marked_in_the_log() {
        let r = registered();
        let a = r.author.path();
        let src = source_repo();
        ok(&release(a, src.path(), "1.0.0", &[], &pass()));
        assert_eq!(log_size(&r.ch.base), 3);

        // Refusals first: nothing is appended.
        let o = barge(
            a,
            &[
                "revoke-release",
                "hello",
                "1.0.0",
                "--reason",
                "x",
                "--passphrase-stdin",
            ],
            Some("nope\n"),
        );
        refused(&o, 1, "wrong passphrase");
        let o = barge(
            a,
            &[
                "revoke-release",
                "hello",
                "9.9.9",
                "--reason",
                "x",
                "--passphrase-stdin",
            ],
            Some(&pass()),
        );
        refused(&o, 1, "unknown_release");
        let o = barge(
            a,
            &[
                "revoke-release",
                "hello",
                "v1",
                "--reason",
                "x",
                "--passphrase-stdin",
            ],
            Some(&pass()),
        );
        refused(&o, 2, "version");
        assert_eq!(log_size(&r.ch.base), 3);

        let v = json(&barge(
            a,
            &[
                "--json",
                "revoke-release",
                "hello",
                "1.0.0",
                "--reason",
                "CVE-2026-0001",
                "--passphrase-stdin",
            ],
            Some(&pass()),
        ));
        assert_eq!(v["included"], true);
        assert_eq!(v["signer"], r.signing["public_key"]);
        let body = last_event(&r.ch.base);
        assert_eq!(body["event"]["type"], "release_revocation");
        assert_eq!(body["event"]["package"], "hello");
        assert_eq!(body["event"]["version"], "1.0.0");
        assert_eq!(body["event"]["reason"], "CVE-2026-0001");

        // The master key may revoke releases too, but not a revoked one again.
        let o = barge(
            a,
            &[
                "revoke-release",
                "hello",
                "1.0.0",
                "--reason",
                "again",
                "--key",
                r.master["file"].as_str().expect("file"),
                "--passphrase-stdin",
            ],
            Some(&pass()),
        );
        refused(&o, 1, "release_already_revoked");
        assert_eq!(log_size(&r.ch.base), 4);

        // verify-build reports the revocation.
        let v = json(&verify_build(a, src.path(), "1.0.0", &[]));
        assert_eq!(v["revoked"], true);
        assert_eq!(v["reproduced"], true);
    }
}

mod verify_build {
    use super::*;

    fn worktrees(src: &Path) -> usize {
        let o = Command::new("git")
            .arg("-C")
            .arg(src)
            .args(["worktree", "list", "--porcelain"])
            .output()
            .expect("git");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("worktree "))
            .count()
    }

    #[test]
    fn an_untouched_tree_reproduces_and_attest_logs_an_attestation() {
        let r = registered();
        let a = r.author.path();
        let src = source_repo();
        let rel = json(&release(a, src.path(), "1.0.0", &["--json"], &pass()));
        // Progress is drawn only on a terminal.
        let o = release(a, src.path(), "1.0.1", &[], &pass());
        ok(&o);
        assert!(!stderr(&o).contains("uploading:"), "{}", stderr(&o));
        assert_eq!(log_size(&r.ch.base), 4);
        let (bolt, bolt_signing) = attester(&r.ch);
        let b = bolt.path();
        assert_eq!(log_size(&r.ch.base), 6);

        let args = [
            "--json",
            "verify-build",
            "acme/hello",
            "1.0.0",
            "--source",
            s(src.path()),
        ];
        let v = json(&barge(a, &args, None));
        assert_eq!(v["reproduced"], true);
        assert_eq!(v["revoked"], false);
        assert_eq!(v["logged_digest"], rel["digest"]);
        assert_eq!(v["rebuilt_digest"], rel["digest"]);
        assert_eq!(v["commit"], rel["commit"]);
        assert_eq!(v["attestation"], Value::Null);
        assert_eq!(v["signature_valid"], true);
        // No attestation without --attest; the user's checkout is left as it was.
        assert_eq!(log_size(&r.ch.base), 6);
        assert_eq!(worktrees(src.path()), 1);

        // acme may not attest its own release: the channel refuses, nothing is logged.
        let mut attest = args.to_vec();
        attest.extend_from_slice(&["--attest", "--passphrase-stdin"]);
        let o = barge(a, &attest, Some(&pass()));
        refused(&o, 1, "self_attestation");
        assert_eq!(log_size(&r.ch.base), 6);

        // Another supplier, bolt, attests it. A wrong passphrase attests nothing.
        let o = barge(b, &attest, Some("nope\n"));
        refused(&o, 1, "wrong passphrase");
        assert_eq!(log_size(&r.ch.base), 6);

        let v = json(&barge(b, &attest, Some(&pass())));
        assert_eq!(v["reproduced"], true);
        assert_eq!(v["attestation"]["included"], true);
        assert_eq!(v["attestation"]["duplicate"], false);
        let body = last_event(&r.ch.base);
        assert_eq!(body["supplier"], "bolt");
        assert_eq!(body["signer"], bolt_signing["public_key"]);
        assert_eq!(body["event"]["type"], "attestation");
        assert_eq!(body["event"]["subject"], "acme");
        assert_eq!(body["event"]["package"], "hello");
        assert_eq!(body["event"]["version"], "1.0.0");
        assert_eq!(body["event"]["digest"], rel["digest"]);
        assert_eq!(body["event"]["claim"], "reproduced");
        assert_eq!(log_size(&r.ch.base), 7);
        // Attesting again is idempotent: the same entry, not a second one.
        let v = json(&barge(b, &attest, Some(&pass())));
        assert_eq!(v["attestation"]["duplicate"], true);
        assert_eq!(log_size(&r.ch.base), 7);
        assert_eq!(worktrees(src.path()), 1);

        // The plain-text report.
        let text = ok(&barge(
            a,
            &[
                "verify-build",
                "acme/hello",
                "1.0.1",
                "--source",
                s(src.path()),
            ],
            None,
        ));
        assert!(text.contains("Reproduced acme/hello 1.0.1"), "{text}");
    }

    #[test]
    fn a_release_that_does_not_match_its_commit_is_reported_and_not_attested() {
        let r = registered();
        let a = r.author.path();
        let src = source_repo();
        // Released from a dirty tree: the logged commit does not hold these bytes.
        std::fs::write(src.path().join("README"), "changed after the commit\n").expect("write");
        ok(&release(
            a,
            src.path(),
            "1.0.0",
            &["--allow-dirty"],
            &pass(),
        ));
        assert_eq!(log_size(&r.ch.base), 3);
        let o = verify_build(a, src.path(), "1.0.0", &["--attest", "--passphrase-stdin"]);
        refused(&o, 1, "NOT REPRODUCED");
        let v: Value =
            serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).expect("json");
        assert_eq!(v["reproduced"], false);
        assert_ne!(v["logged_digest"], v["rebuilt_digest"]);
        assert_eq!(log_size(&r.ch.base), 3);
        // The dirty file in the user's checkout is untouched.
        assert_eq!(
            std::fs::read_to_string(src.path().join("README")).expect("read"),
            "changed after the commit\n"
        );
        assert_eq!(worktrees(src.path()), 1);
    }

    #[test]
    fn a_logged_archive_signature_that_does_not_match_is_reported() {
        let r = registered();
        let a = r.author.path();
        let src = source_repo();
        let built = json(&barge(
            a,
            &[
                "--json",
                "build",
                s(src.path()),
                "--package",
                "hello",
                "--version",
                "1.0.0",
            ],
            None,
        ));
        // A release entry with the right digest but an archive signature over other bytes: the
        // key rules accept it (they never see the archive), verify-build must not.
        let kp = unlock_key(r.signing["file"].as_str().expect("file"));
        let wrong = keyggdrasil::filesig::sign(&kp, &b"other bytes"[..]).expect("sign");
        let event = keyggdrasil::entry::Event::Release {
            package: keyggdrasil::names::PackageName::parse("hello").expect("name"),
            version: keyggdrasil::names::Version::parse("1.0.0").expect("version"),
            size: built["size"].as_u64().expect("size"),
            digest: keyggdrasil::entry::Digest512::from_hex(built["digest"].as_str().expect("d"))
                .expect("digest"),
            commit: keyggdrasil::entry::GitCommit::parse(built["commit"].as_str().expect("c"))
                .expect("commit"),
            signature: wrong,
            rollout: None,
        };
        let body = keyggdrasil::entry::EntryBody::new(
            keyggdrasil::names::SupplierName::parse("acme").expect("name"),
            kp.public(),
            event,
        );
        let entry = keyggdrasil::entry::Entry::sign(body, &kp).expect("sign");
        let answer = submit_raw(&r.ch.base, entry.as_bytes());
        assert_eq!(answer["status"], "ok", "{answer}");
        let o = verify_build(a, src.path(), "1.0.0", &["--attest", "--passphrase-stdin"]);
        refused(&o, 1, "archive signature");
        let v: Value =
            serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).expect("json");
        assert_eq!(v["reproduced"], true);
        assert_eq!(v["signature_valid"], false);
        assert_eq!(log_size(&r.ch.base), 3);
    }

    #[test]
    fn a_revoked_attesting_key_is_refused_by_the_channel_and_reported_as_not_current() {
        let r = registered();
        let a = r.author.path();
        let src = source_repo();
        ok(&release(a, src.path(), "1.0.0", &[], &pass()));
        // The master key revokes the signing key (the only signing key in local/).
        let master = unlock_key(r.master["file"].as_str().expect("file"));
        let signing =
            keyggdrasil::keys::PublicKey::from_hex(r.signing["public_key"].as_str().expect("key"))
                .expect("key");
        let body = keyggdrasil::entry::EntryBody::new(
            keyggdrasil::names::SupplierName::parse("acme").expect("name"),
            master.public(),
            keyggdrasil::entry::Event::KeyRevocation {
                public_key: signing,
                reason: keyggdrasil::entry::Reason::parse("test").expect("reason"),
            },
        );
        let entry = keyggdrasil::entry::Entry::sign(body, &master).expect("sign");
        assert_eq!(submit_raw(&r.ch.base, entry.as_bytes())["status"], "ok");
        assert_eq!(log_size(&r.ch.base), 4);
        // The rebuild still reproduces; the attestation is refused, and nothing is logged.
        let o = verify_build(a, src.path(), "1.0.0", &["--attest", "--passphrase-stdin"]);
        refused(&o, 1, "is not a current key of supplier acme");
        assert_eq!(log_size(&r.ch.base), 4);
    }

    #[test]
    fn bad_targets_are_clear_errors() {
        let r = registered();
        let a = r.author.path();
        let src = source_repo();
        ok(&release(a, src.path(), "1.0.0", &[], &pass()));
        let run = |target: &str, version: &str, source: &Path| {
            barge(
                a,
                &["verify-build", target, version, "--source", s(source)],
                None,
            )
        };
        refused(
            &run("acme/hello", "2.0.0", src.path()),
            1,
            "not in the channel's log",
        );
        refused(&run("acme", "1.0.0", src.path()), 2, "SUPPLIER/PACKAGE");
        refused(&run("acme/Hello!", "1.0.0", src.path()), 2, "package name");
        // A repository without the logged commit.
        let other = tempfile::tempdir().expect("tempdir");
        std::fs::write(other.path().join("README"), "another project\n").expect("write");
        git(other.path(), &["init", "-q"]);
        git(other.path(), &["add", "."]);
        git(other.path(), &["commit", "-q", "-m", "other"]);
        let o = run("acme/hello", "1.0.0", other.path());
        refused(&o, 2, "is not in the repository");
        // Not a repository at all.
        let plain = tempfile::tempdir().expect("tempdir");
        refused(
            &run("acme/hello", "1.0.0", plain.path()),
            2,
            "not a git repository",
        );
        // An author folder that pinned another channel key trusts nothing this channel says.
        let stranger = offline_author(&r.ch.base, SOME_KEY);
        let o = barge(
            stranger.path(),
            &[
                "verify-build",
                "acme/hello",
                "1.0.0",
                "--source",
                s(src.path()),
            ],
            None,
        );
        refused(&o, 3, "does not verify with the pinned channel key");
        assert_eq!(log_size(&r.ch.base), 3);
    }
}

/// Bad local key material: a clear error, nothing written, nothing submitted.
mod bad_keys {
    use super::*;

    fn released_nothing(r: &Registered, o: &Output, code: i32, needle: &str) {
        refused(o, code, needle);
        assert!(
            !r.author.path().join("dist").exists(),
            "the archive was written"
        );
        assert_eq!(log_size(&r.ch.base), 2);
    }

    #[test]
    fn wrong_salt_in_the_key_file() {
        let r = registered();
        let file = PathBuf::from(pk(&r.signing, "file"));
        let mut kf: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
        kf["derivation"]["salt"] = Value::String("00".repeat(16));
        // Rewritten in place: the mode stays 0600.
        std::fs::write(&file, kf.to_string()).expect("write");
        let src = source_repo();
        let o = release(r.author.path(), src.path(), "1.0.0", &[], &pass());
        released_nothing(&r, &o, 1, "wrong passphrase");
        // A salt that is not 16 bytes is a usage error.
        let o = barge(
            r.author.path(),
            &[
                "key",
                "from-passphrase",
                "--salt",
                "abcd",
                "--ops-limit",
                "3",
                "--mem-limit",
                "8192",
                "--passphrase-stdin",
            ],
            Some(&pass()),
        );
        refused(&o, 2, "salt");
    }

    #[test]
    fn corrupt_key_file() {
        let r = registered();
        let file = PathBuf::from(pk(&r.signing, "file"));
        std::fs::write(&file, "{\"format\":\"keyggdrasil-key\",").expect("write");
        let src = source_repo();
        let o = release(r.author.path(), src.path(), "1.0.0", &[], &pass());
        released_nothing(&r, &o, 5, "key file");
        let o = barge(
            r.author.path(),
            &[
                "key",
                "revoke",
                &pk(&r.signing, "public_key"),
                "--reason",
                "x",
                "--passphrase-stdin",
            ],
            Some(&pass()),
        );
        refused(&o, 5, "key file");
        assert_eq!(log_size(&r.ch.base), 2);
    }

    #[test]
    fn key_file_readable_by_others() {
        let r = registered();
        let file = PathBuf::from(pk(&r.signing, "file"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let src = source_repo();
        let o = release(r.author.path(), src.path(), "1.0.0", &[], &pass());
        released_nothing(&r, &o, 5, "chmod 600");
        let o = barge(
            r.author.path(),
            &[
                "revoke-release",
                "hello",
                "1.0.0",
                "--reason",
                "x",
                "--passphrase-stdin",
            ],
            Some(&pass()),
        );
        refused(&o, 5, "chmod 600");
        assert_eq!(log_size(&r.ch.base), 2);
    }

    #[test]
    fn wrong_passphrase_on_release_writes_nothing() {
        let r = registered();
        let src = source_repo();
        let o = release(r.author.path(), src.path(), "1.0.0", &[], "nope\n");
        released_nothing(&r, &o, 1, "wrong passphrase");
    }
}

mod archives {
    use super::*;

    #[test]
    fn a_tampered_released_archive_fails_verify() {
        let r = registered();
        let a = r.author.path();
        let src = source_repo();
        ok(&release(a, src.path(), "1.0.0", &[], &pass()));
        let zip = a.join("dist/hello-1.0.0.zip");
        let sig = a.join("dist/hello-1.0.0.zip.sig");
        let key = pk(&r.signing, "public_key");
        let verify = || {
            barge(
                a,
                &[
                    "--json",
                    "verify",
                    "--public-key",
                    &key,
                    "--signature-file",
                    s(&sig),
                    s(&zip),
                ],
                None,
            )
        };
        assert_eq!(json(&verify())["valid"], true);
        let mut bytes = std::fs::read(&zip).expect("read");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&zip, &bytes).expect("write");
        let o = verify();
        refused(&o, 1, "INVALID");
        let v: Value =
            serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).expect("json");
        assert_eq!(v["valid"], false);
    }

    #[test]
    fn upload_progress_is_drawn_on_a_terminal() {
        let r = registered();
        let a = r.author.path();
        let src = source_repo();
        // `script` gives barge a pseudo-terminal as stderr; stdin stays a pipe.
        let cmd = format!(
            "printf '%s\\n' '{PASS}' | BARGE_TEST_KDF=cheap '{}' --dir '{}' release '{}' \
             --package hello --version 1.0.0 --passphrase-stdin",
            env!("CARGO_BIN_EXE_barge"),
            s(a),
            s(src.path())
        );
        let o = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .output()
            .expect("`script` (util-linux) is needed for this test");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{text}\n{}", stderr(&o));
        assert!(text.contains("uploading: "), "{text}");
        assert!(text.contains("(100%)"), "{text}");
        assert_eq!(log_size(&r.ch.base), 3);
    }
}

/// `barge build` at the CLI: same bytes for the same commit whatever the mtimes and umask.
mod reproducible {
    use super::*;

    fn build(a: &Path, src: &Path, out: &Path) -> Vec<u8> {
        ok(&barge(
            a,
            &[
                "build",
                s(src),
                "--package",
                "hello",
                "--version",
                "1.0.0",
                "--out",
                s(out),
            ],
            None,
        ));
        std::fs::read(out).expect("archive")
    }

    /// Copies `src` to `dst` under `umask`, then sets every file's mtime to `stamp`.
    fn copy(src: &Path, dst: &Path, umask: &str, stamp: &str) {
        let script = format!(
            "umask {umask} && cp -r '{}' '{}' && find '{}' -exec touch -h -d '{stamp}' {{}} +",
            s(src),
            s(dst),
            s(dst)
        );
        let o = Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("sh");
        assert!(o.status.success(), "{}", stderr(&o));
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn same_bytes_twice_and_across_copies_with_other_mtimes_and_modes() {
        let a = offline_author("http://127.0.0.1:9", SOME_KEY);
        let src = source_repo();
        // An executable script keeps its execute bit in the archive whatever the umask.
        std::fs::write(src.path().join("run.sh"), "#!/bin/sh\necho hi\n").expect("write");
        std::fs::set_permissions(
            src.path().join("run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
        git(src.path(), &["add", "."]);
        git(src.path(), &["commit", "-q", "-m", "script"]);

        let one = build(a.path(), src.path(), &a.path().join("one.zip"));
        let two = build(a.path(), src.path(), &a.path().join("two.zip"));
        assert!(!one.is_empty());
        assert_eq!(one, two, "two builds of the same tree differ");

        let copies = tempfile::tempdir().expect("tempdir");
        let strict = copies.path().join("strict");
        let loose = copies.path().join("loose");
        copy(src.path(), &strict, "077", "2001-02-03 04:05:06");
        copy(src.path(), &loose, "022", "2030-12-31 23:59:59");
        assert_eq!(mode(&strict.join("README")), 0o600);
        assert_eq!(mode(&loose.join("README")), 0o644);
        assert_eq!(mode(&strict.join("run.sh")), 0o700);
        assert_ne!(
            std::fs::metadata(strict.join("README"))
                .expect("meta")
                .modified()
                .expect("mtime"),
            std::fs::metadata(loose.join("README"))
                .expect("meta")
                .modified()
                .expect("mtime"),
        );
        let three = build(a.path(), &strict, &a.path().join("three.zip"));
        let four = build(a.path(), &loose, &a.path().join("four.zip"));
        assert_eq!(one, three, "the umask 077 copy builds differently");
        assert_eq!(one, four, "the umask 022 copy builds differently");

        // A changed byte changes the archive (the comparison above can fail).
        std::fs::write(loose.join("README"), "hellO\n").expect("write");
        git(&loose, &["commit", "-q", "-am", "change"]);
        let five = build(a.path(), &loose, &a.path().join("five.zip"));
        assert_ne!(one, five);
    }
}

/// Every command prints exactly one JSON value on stdout with `--json`.
mod json_output {
    use super::*;

    fn one_object(o: &Output) -> Value {
        let out = ok(o);
        let mut stream = serde_json::Deserializer::from_str(&out).into_iter::<Value>();
        let v = stream
            .next()
            .expect("one JSON value")
            .expect("valid JSON on stdout");
        assert!(stream.next().is_none(), "more than one JSON value: {out}");
        assert!(v.is_object(), "not an object: {out}");
        v
    }

    #[test]
    fn every_command_prints_one_json_object() {
        let ch = start();
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path();
        let src = source_repo();
        one_object(&barge(
            a,
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
        let master = one_object(&barge(
            a,
            &["--json", "key", "new", "--master", "--passphrase-stdin"],
            Some(&pass()),
        ));
        let signing = one_object(&barge(
            a,
            &["--json", "key", "new", "--signing", "--passphrase-stdin"],
            Some(&pass()),
        ));
        let d = &signing["file"];
        let kf: Value = serde_json::from_str(
            &std::fs::read_to_string(d.as_str().expect("file")).expect("read"),
        )
        .expect("json");
        one_object(&barge(
            a,
            &[
                "--json",
                "key",
                "from-passphrase",
                "--salt",
                kf["derivation"]["salt"].as_str().expect("salt"),
                "--ops-limit",
                &kf["derivation"]["ops_limit"].to_string(),
                "--mem-limit",
                &kf["derivation"]["mem_limit"].to_string(),
                "--passphrase-stdin",
            ],
            Some(&pass()),
        ));
        for cmd in ["register", "add"] {
            one_object(&barge(
                a,
                &["--json", "key", cmd, "--passphrase-stdin"],
                Some(&pass()),
            ));
        }
        one_object(&barge(
            a,
            &[
                "--json",
                "build",
                s(src.path()),
                "--package",
                "hello",
                "--version",
                "1.0.0",
                "--out",
                s(&a.join("b.zip")),
            ],
            None,
        ));
        one_object(&barge(
            a,
            &[
                "--json",
                "sign",
                s(&a.join("b.zip")),
                "--key",
                signing["file"].as_str().expect("file"),
                "--passphrase-stdin",
            ],
            Some(&pass()),
        ));
        one_object(&barge(
            a,
            &[
                "--json",
                "verify",
                "--public-key",
                signing["public_key"].as_str().expect("pk"),
                "--signature-file",
                s(&a.join("b.zip.sig")),
                s(&a.join("b.zip")),
            ],
            None,
        ));
        one_object(&release(a, src.path(), "1.0.0", &["--json"], &pass()));
        // Attested by another supplier (never by acme itself).
        let (bolt, _) = attester(&ch);
        one_object(&verify_build(
            bolt.path(),
            src.path(),
            "1.0.0",
            &["--attest", "--passphrase-stdin"],
        ));
        one_object(&barge(
            a,
            &[
                "--json",
                "revoke-release",
                "hello",
                "1.0.0",
                "--reason",
                "x",
                "--passphrase-stdin",
            ],
            Some(&pass()),
        ));
        one_object(&barge(
            a,
            &[
                "--json",
                "key",
                "revoke",
                signing["public_key"].as_str().expect("pk"),
                "--reason",
                "x",
                "--by",
                master["public_key"].as_str().expect("pk"),
                "--passphrase-stdin",
            ],
            Some(&pass()),
        ));
        // `key list` prints an array of keys (one JSON value, not an object).
        let o = barge(a, &["--json", "key", "list"], None);
        let list: Value = serde_json::from_str(ok(&o).trim()).expect("json");
        assert_eq!(list.as_array().expect("array").len(), 2);
        // Six of acme's entries and bolt's two keys.
        assert_eq!(log_size(&ch.base), 8);
    }
}

/// Invite tokens go to the channel only when its policy asks for one.
mod invites {
    use super::*;

    #[test]
    fn an_invite_channel_needs_a_valid_token_for_the_first_master_key_only() {
        let ch = start_with_policy("invite");
        let dir = author(&ch.base, &ch.key.to_hex());
        let a = dir.path();
        new_key(a, "--master");
        new_key(a, "--signing");
        let register = |extra: &[&str]| {
            let mut args = vec!["--json", "key", "register", "--passphrase-stdin"];
            args.extend_from_slice(extra);
            barge(a, &args, Some(&pass()))
        };
        refused(&register(&[]), 1, "pass --invite TOKEN");
        let other = invite(&ch, "someone-else");
        refused(&register(&["--invite", &other]), 1, "invite_invalid");
        refused(&register(&["--invite", "not-a-token"]), 1, "invite_invalid");
        assert_eq!(log_size(&ch.base), 0);
        let token = invite(&ch, "acme");
        let v = json(&register(&["--invite", &token]));
        assert_eq!(v["index"], 0);
        // A resubmission is answered as a duplicate (barge first tries without the token), and
        // later entries of a known supplier need no token.
        let v = json(&register(&["--invite", &token]));
        assert_eq!(v["duplicate"], true);
        ok(&barge(
            a,
            &["key", "add", "--passphrase-stdin"],
            Some(&pass()),
        ));
        let src = source_repo();
        ok(&release(a, src.path(), "1.0.0", &[], &pass()));
        assert_eq!(log_size(&ch.base), 3);
    }
}
