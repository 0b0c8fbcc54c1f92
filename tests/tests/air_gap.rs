//! The air-gapped bundle flow end to end: `barge prepare` → `hangar sign` → `barge publish`,
//! with the real binaries and a real `channel-server` on loopback. It needs three crates'
//! binaries, so it lives here with the whole-system tests (moved from `barge/tests/bundle.rs`,
//! so that `cargo test -p barge` needs no other crate's binary for it).

// barge's own test helpers, shared rather than copied: they find the binary with
// `system_tests::bin`, which works from either crate.
#[path = "../../barge/tests/common/mod.rs"]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn run(bin: &Path, env: (&str, &str), dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    run_with_stdin(
        Command::new(bin)
            .arg("--dir")
            .arg(dir)
            .args(args)
            .env(env.0, env.1),
        stdin,
    )
}

fn hangar(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    run(
        &bin("hangar"),
        ("HANGAR_TEST_KDF", "cheap"),
        dir,
        args,
        stdin,
    )
}

fn refused(o: &Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "stderr: {}", stderr(o));
    assert!(
        stderr(o).contains(needle),
        "expected {needle:?} in {}",
        stderr(o)
    );
}

/// The online author folder and the air-gapped one, with the same (public-only) key files.
struct Author {
    online: tempfile::TempDir,
    airgap: tempfile::TempDir,
    master: Value,
    signing: Value,
}

fn author(ch: &Server) -> Author {
    let online = tempfile::tempdir().expect("tempdir");
    ok(&barge(
        online.path(),
        &[
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
    let pass = format!("{PASS}\n");
    let master = json(&barge(
        online.path(),
        &["--json", "key", "new", "--master", "--passphrase-stdin"],
        Some(&pass),
    ));
    let signing = json(&barge(
        online.path(),
        &["--json", "key", "new", "--signing", "--passphrase-stdin"],
        Some(&pass),
    ));
    // Derived key files hold no secret: the same files serve on both machines.
    let airgap = tempfile::tempdir().expect("tempdir");
    let local = airgap.path().join("local");
    std::fs::create_dir(&local).expect("mkdir");
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    for k in [&master, &signing] {
        let from = PathBuf::from(k["file"].as_str().expect("file"));
        let to = local.join(from.file_name().expect("name"));
        std::fs::copy(&from, &to).expect("copy key");
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    Author {
        online,
        airgap,
        master,
        signing,
    }
}

/// Carries `files` from one machine's folder to the other's (the removable medium).
fn carry(files: &[&Path], to: &Path) -> Vec<PathBuf> {
    files
        .iter()
        .map(|f| {
            let dest = to.join(f.file_name().expect("name"));
            std::fs::copy(f, &dest).expect("carry");
            dest
        })
        .collect()
}

/// prepare (already done: `bundle`) → carry → hangar sign → carry back; returns the signed path.
fn sign_on_airgap(a: &Author, bundle: &Path, archive: Option<&Path>) -> PathBuf {
    let mut files = vec![bundle];
    files.extend(archive);
    let carried = carry(&files, a.airgap.path());
    let v = json(&hangar(
        a.airgap.path(),
        &[
            "--json",
            "sign",
            carried[0].to_str().expect("utf8"),
            "--yes",
            "--passphrase-stdin",
        ],
        Some(&format!("{PASS}\n")),
    ));
    if archive.is_some() {
        assert_eq!(v["archive_checked"], true);
    }
    let signed = PathBuf::from(v["signed_bundle"].as_str().expect("signed"));
    carry(&[&signed], bundle.parent().expect("dist"))
        .pop()
        .expect("one")
}

fn publish(a: &Author, signed: &Path) -> Output {
    barge(
        a.online.path(),
        &["--json", "publish", signed.to_str().expect("utf8")],
        None,
    )
}

/// `barge prepare release SRC --package hello --version VERSION`: the answer, the bundle and
/// the archive.
fn prepare_release(a: &Author, src: &Path, version: &str) -> (Value, PathBuf, PathBuf) {
    let p = prepare(
        a,
        &[
            "release",
            src.to_str().expect("utf8"),
            "--package",
            "hello",
            "--version",
            version,
        ],
    );
    let bundle = PathBuf::from(p["bundle"].as_str().expect("bundle"));
    let archive = PathBuf::from(p["archive"].as_str().expect("archive"));
    (p, bundle, archive)
}

/// `barge prepare revoke KEY --reason REASON` for the author's signing key.
fn prepare_revoke_signing(a: &Author, reason: &str) -> Value {
    let p = prepare(
        a,
        &[
            "revoke",
            a.signing["public_key"].as_str().expect("pk"),
            "--reason",
            reason,
        ],
    );
    assert_eq!(p["kind"], "key-revoke");
    p
}

/// `barge prepare key-add` of the master key, signed by itself (its registration).
fn prepare_master_key_add(a: &Author) -> Value {
    let master_file = a.master["file"].as_str().expect("file");
    prepare(
        a,
        &["key-add", "--key", master_file, "--master-key", master_file],
    )
}

fn prepare(a: &Author, args: &[&str]) -> Value {
    let mut all = vec!["--json", "prepare"];
    all.extend_from_slice(args);
    json(&barge(a.online.path(), &all, None))
}

#[test]
fn prepare_sign_publish_round_trip_and_every_tampering_is_refused() {
    let ch = start();
    let a = author(&ch);

    // 1. The master key registers itself (self-signed key-add).
    let p = prepare_master_key_add(&a);
    assert_eq!(p["kind"], "key-add");
    let bundle = PathBuf::from(p["bundle"].as_str().expect("bundle"));
    // An unsigned bundle cannot be published.
    refused(&publish(&a, &bundle), 2, "not signed yet");
    let signed = sign_on_airgap(&a, &bundle, None);
    let r = json(&publish(&a, &signed));
    assert_eq!(r["fingerprint"], p["fingerprint"]);
    assert_eq!(r["included"], true);

    // 2. The signing key, signed by the master key.
    let p = prepare(&a, &["key-add"]);
    let signed = sign_on_airgap(&a, Path::new(p["bundle"].as_str().expect("b")), None);
    ok(&publish(&a, &signed));

    // 3. A release.
    let src = source_repo();
    let (p, bundle, archive) = prepare_release(&a, src.path(), "1.0.0");
    assert_eq!(p["signer"], a.signing["public_key"]);
    let signed = sign_on_airgap(&a, &bundle, Some(&archive));
    let r = json(&publish(&a, &signed));
    assert_eq!(r["package"], "hello");
    assert_eq!(r["version"], "1.0.0");
    let events = logged_entries(&ch.base);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds, ["master_key", "signing_key", "release"]);
    assert_eq!(events[0]["public_key"], a.master["public_key"]);
    assert_eq!(events[1]["public_key"], a.signing["public_key"]);
    assert_eq!(events[2]["commit"], p["commit"]);
    // The archive signature in the log verifies against the archive.
    let o = barge(
        a.online.path(),
        &[
            "verify",
            "--public-key",
            a.signing["public_key"].as_str().expect("pk"),
            "--signature",
            events[2]["signature"].as_str().expect("sig"),
            archive.to_str().expect("utf8"),
        ],
        None,
    );
    ok(&o);

    // 4. Tampering, on a second release.
    git(src.path(), &["commit", "-q", "--allow-empty", "-m", "two"]);
    let (_, bundle, archive) = prepare_release(&a, src.path(), "1.0.1");

    // Tampered before signing: hangar refuses and writes nothing.
    let carried = carry(&[&bundle, &archive], a.airgap.path());
    let good_request = std::fs::read_to_string(&carried[0]).expect("read");
    std::fs::write(&carried[0], good_request.replace("1.0.1", "1.0.2")).expect("tamper");
    let o = hangar(
        a.airgap.path(),
        &[
            "sign",
            carried[0].to_str().expect("utf8"),
            "--yes",
            "--passphrase-stdin",
        ],
        Some(&format!("{PASS}\n")),
    );
    refused(&o, 1, "checksum");
    assert!(!a.airgap.path().join("hello-1.0.1.bundle.signed").exists());
    std::fs::remove_file(&carried[0]).expect("rm");
    std::fs::remove_file(&carried[1]).expect("rm");

    let signed = sign_on_airgap(&a, &bundle, Some(&archive));
    let good = std::fs::read_to_string(&signed).expect("read");
    let before = logged_entries(&ch.base).len();

    // Tampered after signing, naively: the checksum catches it.
    let naive = a.online.path().join("dist/naive.signed");
    std::fs::write(&naive, good.replacen("\"size\":", "\"size\": ", 1)).expect("write");
    refused(&publish(&a, &naive), 1, "checksum");

    // Tampered after signing with a recomputed checksum: a changed entry signature.
    let lines: Vec<&str> = good.lines().collect();
    let sig_line: Value = serde_json::from_str(lines[1]).expect("json");
    let entry = sig_line["entry"].as_str().expect("entry");
    // The entry ends with its 128-hex signature, which needs no JSON escaping.
    let sig = &entry[entry.len() - 128..];
    let last = sig.chars().last().expect("char");
    let flipped = format!("{}{}", &sig[..127], if last == '0' { '1' } else { '0' });
    assert!(lines[1].contains(sig));
    let forged_line = lines[1].replace(sig, &flipped);
    let forged = keyggdrasil::bundle::append_checksum(
        format!("{}\n{}\n", lines[0], forged_line).into_bytes(),
    );
    let forged_path = a.online.path().join("dist/forged.signed");
    std::fs::write(&forged_path, forged).expect("write");
    refused(&publish(&a, &forged_path), 1, "signature does not verify");

    // A request this machine did not prepare (a different version), correctly checksummed and
    // signed by nobody: refused for having no record.
    let other_req = lines[0].replace("1.0.1", "9.9.9");
    let other =
        keyggdrasil::bundle::append_checksum(format!("{other_req}\n{}\n", lines[1]).into_bytes());
    let other_path = a.online.path().join("dist/other.signed");
    std::fs::write(&other_path, other).expect("write");
    refused(&publish(&a, &other_path), 1, "not prepared here");

    // The archive changed after signing.
    let original = std::fs::read(&archive).expect("read");
    std::fs::write(&archive, b"something else").expect("write");
    refused(&publish(&a, &signed), 1, "does not match");
    std::fs::write(&archive, &original).expect("restore");

    assert_eq!(
        logged_entries(&ch.base).len(),
        before,
        "a refused bundle reached the log"
    );

    // The untouched signed bundle still publishes.
    ok(&publish(&a, &signed));

    // 5. Revoking the first release, signed by the signing key.
    let p = prepare(
        &a,
        &[
            "revoke-release",
            "--package",
            "hello",
            "--version",
            "1.0.0",
            "--reason",
            "broken build",
        ],
    );
    let signed = sign_on_airgap(&a, Path::new(p["bundle"].as_str().expect("b")), None);
    ok(&publish(&a, &signed));
    let events = logged_entries(&ch.base);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        kinds,
        [
            "master_key",
            "signing_key",
            "release",
            "release",
            "release_revocation"
        ]
    );
    assert_eq!(events[4]["reason"], "broken build");
}

#[test]
fn prepare_refuses_bad_input_and_writes_nothing() {
    let ch = start();
    let a = author(&ch);
    let dist = a.online.path().join("dist");
    // A key cannot revoke itself.
    let o = barge(
        a.online.path(),
        &[
            "prepare",
            "revoke",
            a.master["public_key"].as_str().expect("pk"),
            "--reason",
            "x",
        ],
        None,
    );
    refused(&o, 2, "cannot revoke itself");
    // A key argument that is neither a key nor a readable key file: a local failure (5), as any
    // file barge cannot open.
    let o = barge(
        a.online.path(),
        &["prepare", "revoke", "not-a-key", "--reason", "x"],
        None,
    );
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    // A bad version.
    let src = source_repo();
    let o = barge(
        a.online.path(),
        &[
            "prepare",
            "release",
            src.path().to_str().expect("utf8"),
            "--package",
            "hello",
            "--version",
            "not a version",
        ],
        None,
    );
    refused(&o, 2, "version");
    assert!(!dist.exists() || std::fs::read_dir(&dist).expect("dist").next().is_none());
    // A revocation of another (signing) key prepares fine and hangar shows it.
    let p = prepare_revoke_signing(&a, "retired");
    let carried = carry(
        &[Path::new(p["bundle"].as_str().expect("b"))],
        a.airgap.path(),
    );
    let v = json(&hangar(
        a.airgap.path(),
        &[
            "--json",
            "sign",
            carried[0].to_str().expect("utf8"),
            "--yes",
            "--passphrase-stdin",
        ],
        Some(&format!("{PASS}\n")),
    ));
    assert_eq!(v["key"], a.signing["public_key"]);
    assert_eq!(v["reason"], "retired");
    assert_eq!(v["fingerprint"], p["fingerprint"]);
}

#[test]
fn a_key_revocation_signed_on_the_airgap_reaches_the_log() {
    let ch = start();
    let a = author(&ch);
    // Register the master key, then the signing key, through the bundle flow.
    let p = prepare_master_key_add(&a);
    let signed = sign_on_airgap(&a, Path::new(p["bundle"].as_str().expect("b")), None);
    ok(&publish(&a, &signed));
    let p = prepare(&a, &["key-add"]);
    let signed = sign_on_airgap(&a, Path::new(p["bundle"].as_str().expect("b")), None);
    ok(&publish(&a, &signed));

    // The master key revokes the signing key: prepared online, signed in hangar, published.
    let p = prepare_revoke_signing(&a, "laptop stolen");
    let signed = sign_on_airgap(&a, Path::new(p["bundle"].as_str().expect("b")), None);
    let r = json(&publish(&a, &signed));
    assert_eq!(r["fingerprint"], p["fingerprint"]);
    assert_eq!(r["included"], true);

    let bodies = logged_bodies(&ch.base);
    let kinds: Vec<&str> = bodies
        .iter()
        .map(|b| b["event"]["type"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds, ["master_key", "signing_key", "key_revocation"]);
    let revocation = &bodies[2];
    assert_eq!(revocation["signer"], a.master["public_key"]);
    assert_eq!(revocation["supplier"], "acme");
    assert_eq!(revocation["event"]["public_key"], a.signing["public_key"]);
    assert_eq!(revocation["event"]["reason"], "laptop stolen");

    // A release signed in hangar by the revoked key is refused by the channel: nothing logged.
    let src = source_repo();
    let (_, bundle, archive) = prepare_release(&a, src.path(), "1.0.0");
    let signed = sign_on_airgap(&a, &bundle, Some(&archive));
    let o = publish(&a, &signed);
    refused(&o, 1, "not_current_signing_key");
    assert_eq!(log_size(&ch.base), 3);
}

#[test]
fn barge_signs_with_a_key_file_recovered_and_sealed_by_hangar() {
    // A key made by barge (the channel is never contacted here).
    let d = common::offline_author("http://127.0.0.1:9", SOME_KEY);
    let k = new_key(d.path(), "--signing");
    let split = json(&hangar(
        d.path(),
        &[
            "--json",
            "backup",
            "split",
            "--key",
            k["file"].as_str().expect("file"),
            "--threshold",
            "2",
            "--shares",
            "2",
            "--passphrase-stdin",
        ],
        Some(&format!("{PASS}\n")),
    ));
    let shares: Vec<&str> = split["shares"]
        .as_array()
        .expect("shares")
        .iter()
        .map(|s| s["words"].as_str().expect("words"))
        .collect();
    let new_pass = "sealed after recovery";
    let recovered = tempfile::tempdir().expect("tempdir");
    let r = json(&hangar(
        recovered.path(),
        &[
            "--json",
            "backup",
            "combine",
            "--expect",
            k["public_key"].as_str().expect("pk"),
            "--role",
            "signing",
            "--supplier",
            "acme",
            "--passphrase-stdin",
        ],
        Some(&format!("{new_pass}\n{}\n", shares.join("\n"))),
    ));
    let key_file = r["file"].as_str().expect("file");
    let file = recovered.path().join("data.txt");
    std::fs::write(&file, b"signed with a recovered key\n").expect("write");
    let sign = |pass: &str| {
        barge(
            recovered.path(),
            &[
                "--json",
                "sign",
                file.to_str().expect("utf8"),
                "--key",
                key_file,
                "--passphrase-stdin",
            ],
            Some(&format!("{pass}\n")),
        )
    };
    // The old passphrase no longer opens it; the new one does, as the same key.
    refused(&sign(PASS), 1, "wrong passphrase");
    let v = json(&sign(new_pass));
    assert_eq!(v["public_key"], k["public_key"]);
    let sig = v["signature"].as_str().expect("sig");
    ok(&barge(
        recovered.path(),
        &[
            "verify",
            "--public-key",
            k["public_key"].as_str().expect("pk"),
            "--signature",
            sig,
            file.to_str().expect("utf8"),
        ],
        None,
    ));
}

/// Pin first for `publish`: a signed bundle published from a folder whose pinned channel key
/// the channel does not hold submits nothing (exit 3, log and archives unchanged); with the
/// right key again the same bundle goes through.
#[test]
fn publish_with_a_wrong_pinned_key_submits_nothing() {
    let ch = start();
    let a = author(&ch);
    let p = prepare_master_key_add(&a);
    let bundle = PathBuf::from(p["bundle"].as_str().expect("bundle"));
    let signed = sign_on_airgap(&a, &bundle, None);
    let cfg_path = a.online.path().join("barge.toml");
    let good = std::fs::read_to_string(&cfg_path).expect("barge.toml");
    let wrong = good.replace(&ch.key.to_hex(), SOME_KEY);
    assert_ne!(wrong, good);
    std::fs::write(&cfg_path, &wrong).expect("write barge.toml");
    let o = publish(&a, &signed);
    refused(&o, 3, "does not verify with the pinned channel key");
    let v: Value = serde_json::from_slice(&o.stdout).expect("the --json error object");
    assert_eq!(v["error"]["kind"], "channel_misbehaved");
    assert_eq!(log_size(&ch.base), 0, "nothing submitted");
    std::fs::write(&cfg_path, &good).expect("write barge.toml");
    json(&publish(&a, &signed));
    assert_eq!(log_size(&ch.base), 1);
}
