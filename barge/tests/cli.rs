//! `barge` end to end: the real binary, real git checkouts, and a real `channel-server`.
//!
//! Keys use `BARGE_TEST_KDF=cheap` (smallest Argon2i costs) so the tests stay fast. The channel
//! test needs `channel-server` next to the `barge` binary: `cargo test --workspace` builds it
//! (or `cargo build -p channel-server` first).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_json::Value;

mod init {
    use super::*;

    #[test]
    fn writes_config_and_private_local_folder() {
        let a = offline_author("http://127.0.0.1:9", SOME_KEY);
        assert!(a.path().join("barge.toml").is_file());
        let mode = std::fs::metadata(a.path().join("local"))
            .expect("local")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        // A second init refuses to overwrite.
        let o = barge(
            a.path(),
            &[
                "init",
                "--channel",
                "http://x",
                "--channel-key",
                SOME_KEY,
                "--supplier",
                "acme",
            ],
            None,
        );
        assert_eq!(o.status.code(), Some(2));
    }

    #[test]
    fn bad_channel_key_is_a_usage_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = barge(
            dir.path(),
            &[
                "init",
                "--channel",
                "http://x",
                "--channel-key",
                "zz",
                "--supplier",
                "acme",
            ],
            None,
        );
        assert_eq!(o.status.code(), Some(2));
        assert!(!dir.path().join("barge.toml").exists());
    }
}

mod keys {
    use super::*;

    #[test]
    fn new_key_file_holds_no_secret_and_from_passphrase_reproduces_it() {
        let a = offline_author("http://127.0.0.1:9", SOME_KEY);
        let k = new_key(a.path(), "--master");
        let file = PathBuf::from(k["file"].as_str().expect("file"));
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(!text.contains("seed") && !text.contains("secret"), "{text}");
        let kf: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(kf["role"], "master");
        let d = &kf["derivation"];
        let o = barge(
            a.path(),
            &[
                "key",
                "from-passphrase",
                "--salt",
                d["salt"].as_str().expect("salt"),
                "--ops-limit",
                &d["ops_limit"].to_string(),
                "--mem-limit",
                &d["mem_limit"].to_string(),
                "--passphrase-stdin",
            ],
            Some(&format!("{PASS}\n")),
        );
        assert_eq!(
            ok(&o),
            format!("{}\n", k["public_key"].as_str().expect("pk"))
        );
        // Another passphrase gives another key.
        let o = barge(
            a.path(),
            &[
                "key",
                "from-passphrase",
                "--salt",
                d["salt"].as_str().expect("salt"),
                "--ops-limit",
                &d["ops_limit"].to_string(),
                "--mem-limit",
                &d["mem_limit"].to_string(),
                "--passphrase-stdin",
            ],
            Some("not it\n"),
        );
        assert_ne!(
            ok(&o),
            format!("{}\n", k["public_key"].as_str().expect("pk"))
        );
        // The cheap test costs are announced.
        let list = json(&barge(a.path(), &["--json", "key", "list"], None));
        assert_eq!(list.as_array().expect("array").len(), 1);
        assert_eq!(list[0]["public_key"], k["public_key"]);
    }

    #[test]
    fn generated_words_are_shown_once_on_stderr_only() {
        let a = offline_author("http://127.0.0.1:9", SOME_KEY);
        let o = barge(
            a.path(),
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
        let out = ok(&o);
        let err = stderr(&o);
        assert!(err.contains("shown ONCE"), "{err}");
        assert!(err.contains("FOR TESTS ONLY"), "{err}");
        let v: Value = serde_json::from_str(out.trim()).expect("json");
        assert_eq!(v["role"], "signing");
        let words = err
            .lines()
            .map(str::trim)
            .find(|l| l.split(' ').count() == 12)
            .expect("12 words on stderr");
        assert!(!out.contains(words));
    }

    #[test]
    fn wrong_passphrase_is_refused_and_nothing_is_written() {
        let a = offline_author("http://127.0.0.1:9", SOME_KEY);
        let k = new_key(a.path(), "--signing");
        let target = a.path().join("file.bin");
        std::fs::write(&target, b"payload").expect("write");
        let o = barge(
            a.path(),
            &[
                "sign",
                target.to_str().expect("utf8"),
                "--key",
                k["file"].as_str().expect("f"),
                "--passphrase-stdin",
            ],
            Some("wrong passphrase\n"),
        );
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("wrong passphrase"), "{}", stderr(&o));
        assert!(!a.path().join("file.bin.sig").exists());
    }

    #[test]
    fn key_file_readable_by_others_is_refused() {
        let a = offline_author("http://127.0.0.1:9", SOME_KEY);
        let k = new_key(a.path(), "--signing");
        let file = PathBuf::from(k["file"].as_str().expect("file"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let o = barge(a.path(), &["key", "list"], None);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
        let target = a.path().join("file.bin");
        std::fs::write(&target, b"payload").expect("write");
        let o = barge(
            a.path(),
            &[
                "sign",
                target.to_str().expect("utf8"),
                "--key",
                file.to_str().expect("utf8"),
                "--passphrase-stdin",
            ],
            Some(&format!("{PASS}\n")),
        );
        assert!(!o.status.success());
        assert!(!a.path().join("file.bin.sig").exists());
    }
}

mod build_and_verify {
    use super::*;

    fn build(a: &Path, src: &Path, out: &Path, extra: &[&str]) -> Output {
        let mut args = vec![
            "build",
            src.to_str().expect("utf8"),
            "--package",
            "hello",
            "--version",
            "1.0.0",
            "--out",
            out.to_str().expect("utf8"),
        ];
        args.extend_from_slice(extra);
        barge(a, &args, None)
    }

    #[test]
    fn building_twice_gives_identical_bytes() {
        let a = offline_author("http://127.0.0.1:9", SOME_KEY);
        let src = source_repo();
        ok(&build(a.path(), src.path(), &a.path().join("one.zip"), &[]));
        // Other mtimes do not matter.
        std::fs::write(src.path().join("README"), "hello\n").expect("touch");
        ok(&build(a.path(), src.path(), &a.path().join("two.zip"), &[]));
        let one = std::fs::read(a.path().join("one.zip")).expect("one");
        let two = std::fs::read(a.path().join("two.zip")).expect("two");
        assert!(!one.is_empty());
        assert_eq!(one, two);
    }

    #[test]
    fn dirty_or_non_git_tree_is_refused_unless_allowed_loudly() {
        let a = offline_author("http://127.0.0.1:9", SOME_KEY);
        let src = source_repo();
        std::fs::write(src.path().join("new.txt"), "x").expect("write");
        let out = a.path().join("a.zip");
        let o = build(a.path(), src.path(), &out, &[]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("uncommitted"), "{}", stderr(&o));
        assert!(!out.exists());
        let o = build(a.path(), src.path(), &out, &["--allow-dirty"]);
        ok(&o);
        assert!(stderr(&o).contains("WARNING"));

        let plain = tempfile::tempdir().expect("tempdir");
        std::fs::write(plain.path().join("f"), "x").expect("write");
        let out2 = a.path().join("b.zip");
        let o = build(a.path(), plain.path(), &out2, &[]);
        assert_eq!(o.status.code(), Some(2));
        assert!(!out2.exists());
        let o = build(a.path(), plain.path(), &out2, &["--allow-dirty"]);
        assert!(ok(&o).contains(&"0".repeat(40)));
        assert!(stderr(&o).contains("WARNING"));
    }

    #[test]
    fn verify_exit_codes() {
        let a = offline_author("http://127.0.0.1:9", SOME_KEY);
        let k = new_key(a.path(), "--signing");
        let pk = k["public_key"].as_str().expect("pk").to_owned();
        let file = a.path().join("file.bin");
        std::fs::write(&file, b"payload bytes").expect("write");
        let f = file.to_str().expect("utf8");
        ok(&barge(
            a.path(),
            &[
                "sign",
                f,
                "--key",
                k["file"].as_str().expect("f"),
                "--passphrase-stdin",
            ],
            Some(&format!("{PASS}\n")),
        ));
        let sig_file = a.path().join("file.bin.sig");
        let sig_text = std::fs::read_to_string(&sig_file).expect("sig");
        assert_eq!(sig_text.len(), 129);
        let sf = sig_file.to_str().expect("utf8");
        let sig = sig_text.trim();

        let code = |args: &[&str]| barge(a.path(), args, None).status.code();
        assert_eq!(
            code(&["verify", "--public-key", &pk, "--signature-file", sf, f]),
            Some(0)
        );
        assert_eq!(
            code(&["verify", "--public-key", &pk, "--signature", sig, f]),
            Some(0)
        );
        // A flipped signature bit.
        let mut flipped = hex::decode(sig).expect("hex");
        flipped[10] ^= 1;
        let flipped = hex::encode(flipped);
        assert_eq!(
            code(&["verify", "--public-key", &pk, "--signature", &flipped, f]),
            Some(1)
        );
        // Another key.
        assert_eq!(
            code(&["verify", "--public-key", SOME_KEY, "--signature", sig, f]),
            Some(1)
        );
        // Usage errors: no signature, malformed hex.
        assert_eq!(code(&["verify", "--public-key", &pk, f]), Some(2));
        assert_eq!(
            code(&["verify", "--public-key", &pk, "--signature", "abc", f]),
            Some(2)
        );
        assert_eq!(
            code(&["verify", "--public-key", "xyz", "--signature", sig, f]),
            Some(2)
        );
        assert_eq!(
            code(&[
                "verify",
                "--public-key",
                &pk,
                "--signature",
                sig,
                "/nonexistent/file"
            ]),
            // A file that cannot be opened is a local failure, not a usage error.
            Some(5)
        );
        // A tampered file.
        std::fs::write(&file, b"payload bytez").expect("write");
        assert_eq!(
            code(&["verify", "--public-key", &pk, "--signature-file", sf, f]),
            Some(1)
        );
    }
}

mod channel {
    use super::*;

    #[test]
    fn register_add_release_and_the_release_is_logged() {
        let ch = start();
        let a = author(&ch.base, &ch.key.to_hex());
        let master = new_key(a.path(), "--master");
        let signing = new_key(a.path(), "--signing");
        let pass = format!("{PASS}\n");

        // A wrong passphrase submits nothing.
        let o = barge(
            a.path(),
            &["key", "register", "--passphrase-stdin"],
            Some("nope\n"),
        );
        assert_eq!(o.status.code(), Some(1));
        assert!(logged_entries(&ch.base).is_empty());

        let r = json(&barge(
            a.path(),
            &["--json", "key", "register", "--passphrase-stdin"],
            Some(&pass),
        ));
        assert_eq!(r["public_key"], master["public_key"]);
        let r = json(&barge(
            a.path(),
            &["--json", "key", "add", "--passphrase-stdin"],
            Some(&pass),
        ));
        assert_eq!(r["public_key"], signing["public_key"]);

        let src = source_repo();
        let o = barge(
            a.path(),
            &[
                "release",
                src.path().to_str().expect("utf8"),
                "--package",
                "hello",
                "--version",
                "1.0.0",
                "--passphrase-stdin",
            ],
            Some(&pass),
        );
        let text = ok(&o);
        assert!(text.contains("Included"), "{text}");
        assert!(text.contains("Released acme/hello 1.0.0"), "{text}");

        let events = logged_entries(&ch.base);
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(events[0]["type"], "master_key");
        assert_eq!(events[1]["type"], "signing_key");
        assert_eq!(events[2]["type"], "release");
        assert_eq!(events[2]["package"], "hello");
        assert_eq!(events[2]["version"], "1.0.0");

        // The archive the channel serves verifies with the signing key and the signature file.
        let zip = a.path().join("dist/hello-1.0.0.zip");
        let o = barge(
            a.path(),
            &[
                "verify",
                "--public-key",
                signing["public_key"].as_str().expect("pk"),
                "--signature-file",
                a.path()
                    .join("dist/hello-1.0.0.zip.sig")
                    .to_str()
                    .expect("utf8"),
                zip.to_str().expect("utf8"),
            ],
            None,
        );
        ok(&o);
    }
}

/// `barge verify` and `barge key from-passphrase` against the libsodium vectors in `fixtures/`.
mod libsodium_vectors {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/libsodium")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json")
    }

    #[test]
    fn from_passphrase_matches_libsodium_for_the_cheap_cases() {
        let dir = tempfile::tempdir().expect("tempdir");
        system_tests::assert_from_passphrase_matches_libsodium(|args, stdin| {
            barge(dir.path(), args, Some(stdin))
        });
    }

    #[test]
    fn verify_matches_libsodium() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("data");
        for c in fixture("filesig.json")["cases"].as_array().expect("cases") {
            let len = c["file"]["len"].as_u64().expect("len");
            let mut data: Vec<u8> = (0..len).map(|i| ((i * 31 + 7) % 251) as u8).collect();
            if let Some(m) = c["file"].get("mutation") {
                match m["kind"].as_str().expect("kind") {
                    "flip_bit" => {
                        let b = m["byte"].as_u64().expect("byte") as usize;
                        data[b] ^= 1 << m["bit"].as_u64().expect("bit");
                    }
                    "truncate" => data.truncate(m["new_len"].as_u64().expect("n") as usize),
                    "append" => {
                        data.extend(hex::decode(m["bytes"].as_str().expect("b")).expect("hex"))
                    }
                    other => panic!("unknown mutation {other}"),
                }
            }
            std::fs::write(&file, &data).expect("write");
            let o = barge(
                dir.path(),
                &[
                    "verify",
                    "--public-key",
                    c["public_key"].as_str().expect("pk"),
                    "--signature",
                    c["signature"].as_str().expect("sig"),
                    file.to_str().expect("utf8"),
                ],
                None,
            );
            let want = if c["expect"] == "valid" { 0 } else { 1 };
            assert_eq!(
                o.status.code(),
                Some(want),
                "case {}: {}",
                c["name"],
                stderr(&o)
            );
        }
    }
}
