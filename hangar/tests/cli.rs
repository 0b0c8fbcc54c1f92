//! `hangar` end to end: the real binary on real files. Keys use `HANGAR_TEST_KDF=cheap`
//! (smallest Argon2i costs) so the tests stay fast. Every refusal asserts a clear error and that
//! nothing was written.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use keyggdrasil::bundle::{Bundle, Kind, ReleaseRequest, Request, append_checksum};
use keyggdrasil::entry::{Digest512, EntryBody, Event, GitCommit, Reason};
use keyggdrasil::filesig;
use keyggdrasil::keys::{KeyPair, PublicKey};
use keyggdrasil::names::ChannelName;
use keyggdrasil::names::{PackageName, SupplierName, Version};
use serde_json::Value;
use system_tests::{run_with_stdin, stdout_json, stdout_ok};

const PASS: &str = "correct horse battery staple";

fn hangar(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    run_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_hangar"))
            .arg("--dir")
            .arg(dir)
            .args(args)
            .env("HANGAR_TEST_KDF", "cheap"),
        stdin,
    )
}

fn ok(o: &Output) -> String {
    stdout_ok(o)
}

fn json(o: &Output) -> Value {
    stdout_json(o)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a refusal: the exit code, a lowercase `hangar: error:` line containing `needle`.
fn refused(o: &Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "stderr: {}", stderr(o));
    let e = stderr(o);
    assert!(e.contains("hangar: error: "), "{e}");
    assert!(e.contains(needle), "expected {needle:?} in {e}");
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn new_key(dir: &Path, role: &str) -> Value {
    json(&hangar(
        dir,
        &[
            "--json",
            "key",
            "new",
            role,
            "--supplier",
            "acme",
            "--passphrase-stdin",
        ],
        Some(&format!("{PASS}\n")),
    ))
}

fn pk(v: &Value) -> PublicKey {
    PublicKey::from_hex(v["public_key"].as_str().expect("pk")).expect("public key")
}

mod keys {
    use super::*;

    #[test]
    fn new_list_and_from_passphrase_agree() {
        let d = tempfile::tempdir().expect("tempdir");
        let k = new_key(d.path(), "--master");
        let file = PathBuf::from(k["file"].as_str().expect("file"));
        assert_eq!(
            std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(d.path().join("local"))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(!text.contains("seed"), "{text}");
        let list = json(&hangar(d.path(), &["--json", "key", "list"], None));
        assert_eq!(list[0]["public_key"], k["public_key"]);
        let kf: Value = serde_json::from_str(&text).expect("json");
        let dv = &kf["derivation"];
        let args = |salt: &str| {
            vec![
                "key".to_owned(),
                "from-passphrase".to_owned(),
                "--salt".to_owned(),
                salt.to_owned(),
                "--ops-limit".to_owned(),
                dv["ops_limit"].to_string(),
                "--mem-limit".to_owned(),
                dv["mem_limit"].to_string(),
                "--passphrase-stdin".to_owned(),
            ]
        };
        let salt = dv["salt"].as_str().expect("salt").to_owned();
        let a = args(&salt);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = hangar(d.path(), &a, Some(&format!("{PASS}\n")));
        assert_eq!(
            ok(&o),
            format!("{}\n", k["public_key"].as_str().expect("pk"))
        );
        // Wrong passphrase or wrong salt: another key.
        let o = hangar(d.path(), &a, Some("wrong\n"));
        assert_ne!(ok(&o).trim(), k["public_key"].as_str().expect("pk"));
        let other_salt = format!(
            "{}{}",
            if salt.starts_with('0') { "1" } else { "0" },
            &salt[1..]
        );
        let b = args(&other_salt);
        let b: Vec<&str> = b.iter().map(String::as_str).collect();
        let o = hangar(d.path(), &b, Some(&format!("{PASS}\n")));
        assert_ne!(ok(&o).trim(), k["public_key"].as_str().expect("pk"));
        // A malformed salt is a usage error.
        let c = args("abc");
        let c: Vec<&str> = c.iter().map(String::as_str).collect();
        refused(&hangar(d.path(), &c, Some(&format!("{PASS}\n"))), 2, "salt");
    }

    #[test]
    fn new_key_without_a_terminal_or_stdin_flag_writes_nothing() {
        let d = tempfile::tempdir().expect("tempdir");
        let o = hangar(d.path(), &["key", "new", "--master"], Some("x\n"));
        refused(&o, 2, "--passphrase-stdin");
        assert!(files_in(&d.path().join("local")).is_empty());
    }

    #[test]
    fn generated_words_go_to_stderr_once() {
        let d = tempfile::tempdir().expect("tempdir");
        let o = hangar(
            d.path(),
            &[
                "--json",
                "key",
                "new",
                "--signing",
                "--generate-words",
                "12",
            ],
            None,
        );
        let v = json(&o);
        assert_eq!(v["role"], "signing");
        let e = stderr(&o);
        assert!(e.contains("shown ONCE"), "{e}");
        assert!(e.contains("HANGAR_TEST_KDF=cheap"), "{e}");
    }

    #[test]
    fn corrupt_or_exposed_key_files_are_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        let k = new_key(d.path(), "--master");
        let file = PathBuf::from(k["file"].as_str().expect("file"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        refused(&hangar(d.path(), &["key", "list"], None), 5, "chmod 600");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(&file, b"{\"format\":\"nope\"").expect("write");
        refused(&hangar(d.path(), &["key", "list"], None), 5, "key file");
    }
}

/// A request bundle for `signer`, written into `dir`, with an archive beside it for releases.
fn write_request(dir: &Path, signer: &PublicKey, kind: Kind) -> PathBuf {
    let origin = ChannelName::parse("test.channel").expect("origin");
    let acme = SupplierName::parse("acme").expect("supplier");
    let req = match kind {
        Kind::Release => {
            let archive = b"PK fake zip bytes".to_vec();
            std::fs::write(dir.join("hello-1.0.0.zip"), &archive).expect("archive");
            let (size, digest, keyed) = filesig::digest_both(signer, &archive[..]).expect("digest");
            Request::new(
                origin,
                acme,
                Kind::Release,
                *signer,
                None,
                Some(ReleaseRequest {
                    package: PackageName::parse("hello").expect("p"),
                    version: Version::parse("1.0.0").expect("v"),
                    archive: "hello-1.0.0.zip".into(),
                    size,
                    digest: Digest512(digest),
                    keyed_digest: Digest512(keyed),
                    commit: GitCommit::parse(&"c".repeat(40)).expect("commit"),
                }),
            )
        }
        _ => {
            let body = EntryBody::new(
                acme.clone(),
                *signer,
                Event::KeyRevocation {
                    public_key: KeyPair::generate().public(),
                    reason: Reason::parse("lost laptop").expect("reason"),
                },
            );
            Request::new(
                origin,
                acme,
                Kind::KeyRevoke,
                *signer,
                Some(String::from_utf8(body.canonical_bytes()).expect("utf8")),
                None,
            )
        }
    };
    let path = dir.join(format!("{}.bundle", kind.as_str()));
    std::fs::write(&path, Bundle::request_file(&req).expect("bundle")).expect("write");
    path
}

mod sign {
    use super::*;

    fn sign(d: &Path, bundle: &Path, pass: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "--json",
            "sign",
            bundle.to_str().expect("utf8"),
            "--passphrase-stdin",
        ];
        args.extend_from_slice(extra);
        hangar(d, &args, Some(&format!("{pass}\n")))
    }

    #[test]
    fn signs_a_release_and_the_signed_bundle_verifies() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = new_key(d.path(), "--signing");
        let b = write_request(d.path(), &pk(&s), Kind::Release);
        let v = json(&sign(d.path(), &b, PASS, &["--yes"]));
        assert_eq!(v["package"], "hello");
        assert_eq!(v["version"], "1.0.0");
        assert_eq!(v["commit"], "c".repeat(40));
        assert_eq!(v["archive_checked"], true);
        let request = Bundle::parse(&std::fs::read(&b).expect("read")).expect("parse");
        assert_eq!(v["fingerprint"], request.fingerprint());
        let signed = std::fs::read(d.path().join("release.bundle.signed")).expect("signed");
        let signed = Bundle::parse(&signed).expect("parse signed");
        let entry = signed.verify_signed().expect("verifies");
        assert_eq!(entry.body().signer, pk(&s));
        // Signing the signed bundle again is refused.
        let again = d.path().join("release.bundle.signed");
        refused(
            &sign(d.path(), &again, PASS, &["--yes"]),
            2,
            "already signed",
        );
    }

    #[test]
    fn signs_a_key_revocation_with_the_master_key() {
        let d = tempfile::tempdir().expect("tempdir");
        let m = new_key(d.path(), "--master");
        let b = write_request(d.path(), &pk(&m), Kind::KeyRevoke);
        let out = d.path().join("out.signed");
        let v = json(&sign(
            d.path(),
            &b,
            PASS,
            &["--yes", "--out", out.to_str().expect("utf8")],
        ));
        assert_eq!(v["kind"], "key-revoke");
        assert_eq!(v["reason"], "lost laptop");
        Bundle::parse(&std::fs::read(&out).expect("read"))
            .expect("parse")
            .verify_signed()
            .expect("verifies");
    }

    #[test]
    fn a_bundle_tampered_before_signing_is_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = new_key(d.path(), "--signing");
        let b = write_request(d.path(), &pk(&s), Kind::Release);
        let text = std::fs::read_to_string(&b).expect("read");
        // A naive edit: the checksum no longer matches.
        std::fs::write(&b, text.replace("1.0.0", "1.0.9")).expect("write");
        refused(&sign(d.path(), &b, PASS, &["--yes"]), 1, "checksum");
        assert!(!d.path().join("release.bundle.signed").exists());
        // A careful edit with a recomputed checksum: another digest. The archive beside the
        // bundle exposes it.
        let first = text.lines().next().expect("line");
        let v: Value = serde_json::from_str(first).expect("json");
        let digest = v["release"]["digest"].as_str().expect("digest");
        let forged_digest = format!(
            "{}{}",
            if digest.starts_with('0') { "1" } else { "0" },
            &digest[1..]
        );
        let forged = first.replace(digest, &forged_digest);
        std::fs::write(&b, append_checksum(format!("{forged}\n").into_bytes())).expect("write");
        refused(
            &sign(d.path(), &b, PASS, &["--yes"]),
            1,
            "does not match the bundle",
        );
        assert!(!d.path().join("release.bundle.signed").exists());
    }

    #[test]
    fn a_key_of_another_supplier_is_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        let k = json(&hangar(
            d.path(),
            &[
                "--json",
                "key",
                "new",
                "--signing",
                "--supplier",
                "globex",
                "--passphrase-stdin",
            ],
            Some(&format!("{PASS}\n")),
        ));
        let b = write_request(d.path(), &pk(&k), Kind::Release);
        refused(&sign(d.path(), &b, PASS, &["--yes"]), 2, "supplier globex");
        assert!(!d.path().join("release.bundle.signed").exists());
    }

    #[test]
    fn missing_archive_is_signed_with_a_loud_warning() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = new_key(d.path(), "--signing");
        let b = write_request(d.path(), &pk(&s), Kind::Release);
        std::fs::remove_file(d.path().join("hello-1.0.0.zip")).expect("rm");
        let o = sign(d.path(), &b, PASS, &["--yes"]);
        assert_eq!(json(&o)["archive_checked"], false);
        assert!(stderr(&o).contains("taken on trust"), "{}", stderr(&o));
    }

    #[test]
    fn wrong_passphrase_wrong_role_no_key_and_no_confirmation_write_nothing() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = new_key(d.path(), "--signing");
        let m = new_key(d.path(), "--master");
        let signed = d.path().join("release.bundle.signed");
        let b = write_request(d.path(), &pk(&s), Kind::Release);
        refused(
            &sign(d.path(), &b, "nope", &["--yes"]),
            1,
            "wrong passphrase",
        );
        assert!(!signed.exists());
        // Without --yes and without a terminal, hangar asks for --yes.
        refused(&sign(d.path(), &b, PASS, &[]), 2, "--yes");
        assert!(!signed.exists());
        // A release named for the master key: refused (releases are signed by signing keys).
        let b2 = write_request(d.path(), &pk(&m), Kind::Release);
        refused(&sign(d.path(), &b2, PASS, &["--yes"]), 2, "signing");
        assert!(!signed.exists());
        // A bundle for a key that is not here.
        let stranger = KeyPair::generate().public();
        let b3 = write_request(d.path(), &stranger, Kind::KeyRevoke);
        refused(&sign(d.path(), &b3, PASS, &["--yes"]), 2, "no key file");
        assert!(!d.path().join("key-revoke.bundle.signed").exists());
        // The signing key file readable by others: refused.
        let file = PathBuf::from(s["file"].as_str().expect("file"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        refused(&sign(d.path(), &b, PASS, &["--yes"]), 5, "chmod 600");
        assert!(!signed.exists());
        // A corrupt key file given explicitly: refused.
        let bad = d.path().join("local/bad.json");
        std::fs::write(&bad, b"not json").expect("write");
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let bad = bad.to_str().expect("utf8").to_owned();
        refused(
            &sign(d.path(), &b, PASS, &["--yes", "--key", &bad]),
            5,
            "key file",
        );
        assert!(!signed.exists());
    }
}

mod backup {
    use super::*;

    fn split(d: &Path, key: &str, k: &str, n: &str, pass: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "--json",
            "backup",
            "split",
            "--key",
            key,
            "--threshold",
            k,
            "--shares",
            n,
            "--passphrase-stdin",
        ];
        args.extend_from_slice(extra);
        hangar(d, &args, Some(&format!("{pass}\n")))
    }

    fn shares_of(v: &Value) -> Vec<String> {
        v["shares"]
            .as_array()
            .expect("shares")
            .iter()
            .map(|s| s["words"].as_str().expect("words").to_owned())
            .collect()
    }

    /// The passphrase that seals recovered key files in these tests.
    const NEW_PASS: &str = "a brand new passphrase for the recovered key";

    /// `backup combine` with the shares on stdin after `NEW_PASS` (`--passphrase-stdin`).
    fn combine(d: &Path, expect: &str, shares: &[&str]) -> Output {
        combine_with(d, expect, shares, &["--passphrase-stdin"], Some(NEW_PASS))
    }

    fn combine_with(
        d: &Path,
        expect: &str,
        shares: &[&str],
        extra: &[&str],
        pass: Option<&str>,
    ) -> Output {
        let mut args = vec![
            "--json",
            "backup",
            "combine",
            "--expect",
            expect,
            "--supplier",
            "acme",
        ];
        args.extend_from_slice(extra);
        let mut input = pass.map(|p| format!("{p}\n")).unwrap_or_default();
        input.push_str(&(shares.join("\n") + "\n"));
        hangar(d, &args, Some(&input))
    }

    #[test]
    fn any_k_of_n_shares_recover_the_key_and_nothing_less() {
        let d = tempfile::tempdir().expect("tempdir");
        let m = new_key(d.path(), "--master");
        let key = m["file"].as_str().expect("file");
        let expect = m["public_key"].as_str().expect("pk");
        let v = json(&split(d.path(), key, "3", "5", PASS, &[]));
        assert_eq!(v["threshold"], 3);
        let shares = shares_of(&v);
        assert_eq!(shares.len(), 5);
        assert!(shares.iter().all(|s| s.split(' ').count() == 32));

        // Too few shares: refused, nothing written.
        let target = tempfile::tempdir().expect("tempdir");
        let o = combine(target.path(), expect, &[&shares[0], &shares[3]]);
        refused(&o, 1, "too few shares: 3 needed, 2 given");
        assert!(!target.path().join("local").exists());

        // Any three: the key comes back, as a 0600 key file sealed under the new passphrase.
        for pick in [[0usize, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let t = tempfile::tempdir().expect("tempdir");
            let picked: Vec<&str> = pick.iter().map(|i| shares[*i].as_str()).collect();
            let r = json(&combine(t.path(), expect, &picked));
            assert_eq!(r["public_key"], expect);
            let f = PathBuf::from(r["file"].as_str().expect("file"));
            assert_eq!(
                std::fs::metadata(&f).expect("meta").permissions().mode() & 0o777,
                0o600
            );
            // The same key, its seed encrypted: the file does not hold it in the clear.
            let text = std::fs::read_to_string(&f).expect("read");
            let kf: Value = serde_json::from_str(&text).expect("json");
            assert_eq!(kf["public_key"], expect);
            assert_eq!(kf["secret"]["kind"], "encrypted");
            assert!(!text.contains("\"seed\""), "{text}");
            assert_eq!(r["sealed"], true);
        }
    }

    #[test]
    fn a_recovered_key_is_sealed_and_signs_only_with_its_new_passphrase() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = new_key(d.path(), "--signing");
        let key = s["file"].as_str().expect("file");
        let expect = s["public_key"].as_str().expect("pk");
        let shares = shares_of(&json(&split(d.path(), key, "2", "3", PASS, &[])));

        // Recovered on another machine, as a signing key sealed under NEW_PASS.
        let t = tempfile::tempdir().expect("tempdir");
        let r = json(&combine_with(
            t.path(),
            expect,
            &[&shares[0], &shares[2]],
            &["--passphrase-stdin", "--role", "signing"],
            Some(NEW_PASS),
        ));
        assert_eq!(r["role"], "signing");
        let b = write_request(t.path(), &pk(&s), Kind::Release);
        let signed = t.path().join("release.bundle.signed");
        let sign = |pass: &str| {
            hangar(
                t.path(),
                &[
                    "--json",
                    "sign",
                    b.to_str().expect("utf8"),
                    "--passphrase-stdin",
                    "--yes",
                ],
                Some(&format!("{pass}\n")),
            )
        };
        // The old passphrase (the derived key's) and a wrong one do not open it.
        refused(&sign(PASS), 1, "wrong passphrase");
        refused(&sign("nope"), 1, "wrong passphrase");
        assert!(!signed.exists());
        // The new one does, and the signed bundle verifies under the original public key.
        json(&sign(NEW_PASS));
        let signed = Bundle::parse(&std::fs::read(&signed).expect("signed")).expect("parse");
        let entry = signed.verify_signed().expect("verifies");
        assert_eq!(entry.body().signer, pk(&s));
    }

    #[test]
    fn level_sets_the_argon2i_cost_of_the_sealing_passphrase() {
        let d = tempfile::tempdir().expect("tempdir");
        let m = new_key(d.path(), "--master");
        let key = m["file"].as_str().expect("file");
        let expect = m["public_key"].as_str().expect("pk");
        let shares = shares_of(&json(&split(d.path(), key, "2", "2", PASS, &[])));
        // Without the cheap test switch, so that the level is what is written.
        let t = tempfile::tempdir().expect("tempdir");
        let o = run_with_stdin(
            Command::new(env!("CARGO_BIN_EXE_hangar"))
                .arg("--dir")
                .arg(t.path())
                .args([
                    "--json",
                    "backup",
                    "combine",
                    "--expect",
                    expect,
                    "--level",
                    "interactive",
                    "--passphrase-stdin",
                ])
                .env_remove("HANGAR_TEST_KDF"),
            Some(&format!("{NEW_PASS}\n{}\n{}\n", shares[0], shares[1])),
        );
        let r = json(&o);
        let kf: Value = serde_json::from_str(
            &std::fs::read_to_string(r["file"].as_str().expect("file")).expect("read"),
        )
        .expect("json");
        let kdf = &kf["secret"]["kdf"];
        assert_eq!(
            (kdf["ops_limit"].as_u64(), kdf["mem_limit"].as_u64()),
            (Some(4), Some(33_554_432)),
            "{kf}"
        );
        // --level makes no sense with --plain.
        let o = combine_with(
            t.path(),
            expect,
            &[&shares[0], &shares[1]],
            &["--plain", "--level", "moderate"],
            None,
        );
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    }

    #[test]
    fn plain_is_an_explicit_loud_opt_out_and_no_terminal_means_no_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let m = new_key(d.path(), "--master");
        let key = m["file"].as_str().expect("file");
        let expect = m["public_key"].as_str().expect("pk");
        let shares = shares_of(&json(&split(d.path(), key, "2", "2", PASS, &[])));
        let picked = [shares[0].as_str(), shares[1].as_str()];

        // Neither --passphrase-stdin nor --plain, and no terminal: refused, nothing written.
        let t = tempfile::tempdir().expect("tempdir");
        refused(
            &combine_with(t.path(), expect, &picked, &[], None),
            2,
            "--passphrase-stdin",
        );
        assert!(files_in(&t.path().join("local")).is_empty());
        // Both at once: a usage error.
        let o = combine_with(
            t.path(),
            expect,
            &picked,
            &["--plain", "--passphrase-stdin"],
            Some(NEW_PASS),
        );
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(files_in(&t.path().join("local")).is_empty());
        // An empty new passphrase: refused.
        refused(
            &combine_with(t.path(), expect, &picked, &["--passphrase-stdin"], Some("")),
            2,
            "empty",
        );
        assert!(files_in(&t.path().join("local")).is_empty());

        // --plain: the seed in the clear, with a warning, and it signs with no passphrase.
        let o = combine_with(t.path(), expect, &picked, &["--plain"], None);
        let r = json(&o);
        assert_eq!(r["sealed"], false);
        assert!(stderr(&o).contains("IN THE CLEAR"), "{}", stderr(&o));
        let f = PathBuf::from(r["file"].as_str().expect("file"));
        assert_eq!(
            std::fs::metadata(&f).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        let kf: Value =
            serde_json::from_str(&std::fs::read_to_string(&f).expect("read")).expect("json");
        assert_eq!(kf["secret"]["kind"], "plain");
        let b = write_request(t.path(), &pk(&m), Kind::KeyRevoke);
        json(&hangar(
            t.path(),
            &["--json", "sign", b.to_str().expect("utf8"), "--yes"],
            None,
        ));
        assert!(t.path().join("key-revoke.bundle.signed").exists());
    }

    #[test]
    fn corrupt_mixed_duplicate_and_wrong_key_shares_write_nothing() {
        let d = tempfile::tempdir().expect("tempdir");
        let m = new_key(d.path(), "--master");
        let key = m["file"].as_str().expect("file");
        let expect = m["public_key"].as_str().expect("pk");
        let a = shares_of(&json(&split(d.path(), key, "2", "3", PASS, &[])));
        let b = shares_of(&json(&split(d.path(), key, "2", "3", PASS, &[])));
        let t = tempfile::tempdir().expect("tempdir");

        // Shares from two different splits of the same key.
        refused(
            &combine(t.path(), expect, &[&a[0], &b[1]]),
            1,
            "different splits",
        );
        // One word changed.
        let mut words: Vec<&str> = a[1].split(' ').collect();
        words[10] = if words[10] == "zoo" { "zone" } else { "zoo" };
        let bad = words.join(" ");
        refused(&combine(t.path(), expect, &[&a[0], &bad]), 1, "corrupt");
        // A word that is not in the list.
        let garbage = a[1].replacen(' ', " notaword ", 1);
        refused(&combine(t.path(), expect, &[&a[0], &garbage]), 1, "corrupt");
        // The same share twice.
        refused(&combine(t.path(), expect, &[&a[0], &a[0]]), 2, "twice");
        // Good shares, wrong expected key.
        let other = KeyPair::generate().public().to_hex();
        refused(
            &combine(t.path(), &other, &[&a[0], &a[2]]),
            1,
            "not the expected",
        );
        assert!(files_in(&t.path().join("local")).is_empty());
        // No shares at all.
        refused(&combine(t.path(), expect, &[]), 2, "no shares");
    }

    #[test]
    fn split_refuses_bad_counts_and_wrong_passphrase_and_can_write_private_files() {
        let d = tempfile::tempdir().expect("tempdir");
        let m = new_key(d.path(), "--master");
        let key = m["file"].as_str().expect("file");
        refused(&split(d.path(), key, "4", "3", PASS, &[]), 2, "threshold");
        refused(&split(d.path(), key, "1", "3", PASS, &[]), 2, "threshold");
        let o = split(d.path(), key, "2", "3", "wrong", &[]);
        refused(&o, 1, "wrong passphrase");
        // No share on stdout: only the --json error object.
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
        assert_eq!(v.as_object().map(|m| m.len()), Some(1), "{v}");
        assert_eq!(v["error"]["kind"], "rejected");
        assert_eq!(v["error"]["exit_code"], 1);

        let out = d.path().join("shares");
        let o = split(
            d.path(),
            key,
            "2",
            "3",
            PASS,
            &["--out-dir", out.to_str().expect("utf8")],
        );
        ok(&o);
        let files = files_in(&out);
        assert_eq!(files.len(), 3);
        assert_eq!(
            std::fs::metadata(&out).expect("meta").permissions().mode() & 0o777,
            0o700
        );
        for f in &files {
            assert_eq!(
                std::fs::metadata(f).expect("meta").permissions().mode() & 0o777,
                0o600
            );
        }
        // Combine reads the share files directly.
        let t = tempfile::tempdir().expect("tempdir");
        let r = json(&hangar(
            t.path(),
            &[
                "--json",
                "backup",
                "combine",
                "--expect",
                m["public_key"].as_str().expect("pk"),
                "--passphrase-stdin",
                files[0].to_str().expect("utf8"),
                files[2].to_str().expect("utf8"),
            ],
            Some("a new passphrase\n"),
        ));
        assert_eq!(r["public_key"], m["public_key"]);
    }
}

/// hangar must link no network code: no HTTP, TLS, DNS or async-socket crate in its tree.
#[test]
fn no_network_crate_in_the_dependency_tree() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let o = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "hangar",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .expect("cargo tree");
    assert!(o.status.success(), "cargo tree failed: {}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains(&"hangar") && names.contains(&"keyggdrasil"),
        "{text}"
    );
    let forbidden = [
        "ureq",
        "hyper",
        "reqwest",
        "rustls",
        "tokio",
        "mio",
        "axum",
        "h2",
        "socket2",
        "trust-dns-resolver",
        "trust-dns-proto",
        "hickory-resolver",
        "hickory-proto",
        "native-tls",
        "openssl",
        "openssl-sys",
        "curl",
        "curl-sys",
        "http",
        "httparse",
        "tower",
        "async-std",
        "smol",
        "ring",
    ];
    for name in names {
        assert!(
            !forbidden.contains(&name),
            "hangar's dependency tree contains the network crate {name}:\n{text}"
        );
    }
}

/// `hangar key from-passphrase` against the libsodium Argon2i vectors in `fixtures/`.
#[test]
fn from_passphrase_matches_libsodium_for_the_cheap_cases() {
    let dir = tempfile::tempdir().expect("tempdir");
    system_tests::assert_from_passphrase_matches_libsodium(|args, stdin| {
        hangar(dir.path(), args, Some(stdin))
    });
}
