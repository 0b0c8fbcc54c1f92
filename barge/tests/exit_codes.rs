//! One test per exit code `barge --help` documents, through the real binary. The channel cases
//! use a tiny HTTP server on loopback written here (a thread on `127.0.0.1:0` that answers every
//! request with one fixed answer), or `127.0.0.1:1`, where nothing listens; so
//! `cargo test -p barge` runs them without a channel server.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use keyggdrasil::keys::KeyPair;
use keyggdrasil::names::ChannelName;
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{Checkpoint, Envelope, Signed, TreeHash, WIRE_VERSION};

const PASS: &str = "correct horse battery staple";

fn barge(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_barge"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        // Smallest Argon2i costs: these tests are about exit codes, not key strength.
        .env("BARGE_TEST_KDF", "cheap")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run barge");
    let mut input = child.stdin.take().expect("stdin");
    // barge may exit before it reads stdin (a usage error comes first): a broken pipe then
    // is the point, not a failure.
    if let Some(text) = stdin
        && let Err(e) = input.write_all(text.as_bytes())
    {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    drop(input);
    child.wait_with_output().expect("wait for barge")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts exit `code` and a `barge: error:` line containing `needle`.
fn fails_with(o: &Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "stderr: {}", stderr(o));
    let e = stderr(o);
    assert!(e.contains("barge: error: "), "{e}");
    assert!(e.contains(needle), "expected {needle:?} in {e}");
}

/// A channel that answers every request with `body` (HTTP 200, JSON), until the test ends.
fn fake_channel(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            // Read the request head (GETs have no body), then answer and close.
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
                match s.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(answer.as_bytes());
        }
    });
    format!("http://{addr}")
}

/// An author folder for `channel`, pinning `channel_key`, with one signing key; returns the
/// folder and the key file.
fn author(channel: &str, channel_key: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = barge(
        dir.path(),
        &[
            "init",
            "--offline",
            "--channel",
            channel,
            "--channel-key",
            channel_key,
            "--supplier",
            "acme",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = barge(
        dir.path(),
        &["--json", "key", "new", "--signing", "--passphrase-stdin"],
        Some(&format!("{PASS}\n")),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("key new prints JSON with --json");
    let file = v["file"].as_str().expect("key file").to_owned();
    (dir, file)
}

/// `barge prepare revoke-release`: the first thing it asks the channel is its signed
/// checkpoint, so the channel's answer decides the outcome.
fn prepare(dir: &Path, key: &str) -> Output {
    barge(
        dir,
        &[
            "prepare",
            "revoke-release",
            "--package",
            "hello",
            "--version",
            "1.0.0",
            "--reason",
            "test",
            "--key",
            key,
        ],
        None,
    )
}

/// A file and a signature of it by a fresh key: (folder, file, public key hex, signature hex).
fn signed_file() -> (tempfile::TempDir, String, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("file.bin");
    std::fs::write(&path, b"payload bytes").expect("write");
    let kp = KeyPair::generate();
    let sig = keyggdrasil::filesig::sign(&kp, &b"payload bytes"[..]).expect("sign");
    let file = path.to_str().expect("utf8").to_owned();
    (dir, file, kp.public().to_hex(), sig.to_hex())
}

fn checkpoint_signed_by(kp: &KeyPair) -> String {
    let checkpoint = Checkpoint {
        v: WIRE_VERSION,
        origin: ChannelName::parse("test.channel").expect("origin"),
        size: 0,
        root: TreeHash([0; 32]),
        time: 1,
    };
    let signed = Signed::sign(kp, Context::Checkpoint, &checkpoint);
    serde_json::to_string(&Envelope::Ok { data: signed }).expect("envelope")
}

#[test]
fn help_documents_every_exit_code() {
    let o = barge(Path::new("."), &["--help"], None);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("Exit codes:"), "{help}");
    for code in ["0", "1", "2", "3", "4", "5"] {
        assert!(
            help.contains(&format!("\n  {code}  ")),
            "code {code} in {help}"
        );
    }
}

#[test]
fn exit_0_when_the_signature_is_valid() {
    let (dir, file, pk, sig) = signed_file();
    let o = barge(
        dir.path(),
        &["verify", "--public-key", &pk, "--signature", &sig, &file],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Valid"));
}

#[test]
fn exit_1_when_a_check_says_no() {
    let (dir, file, pk, sig) = signed_file();
    let mut flipped = hex::decode(&sig).expect("hex");
    flipped[0] ^= 1;
    let o = barge(
        dir.path(),
        &[
            "verify",
            "--public-key",
            &pk,
            "--signature",
            &hex::encode(flipped),
            &file,
        ],
        None,
    );
    fails_with(&o, 1, "INVALID");
    // A wrong passphrase is a check saying no too.
    let (author, key) = author("http://127.0.0.1:1", &KeyPair::generate().public().to_hex());
    let o = barge(
        author.path(),
        &["sign", &file, "--key", &key, "--passphrase-stdin"],
        Some("not the passphrase\n"),
    );
    fails_with(&o, 1, "wrong passphrase");
}

#[test]
fn exit_1_when_the_channel_refuses_under_its_rules() {
    let body = r#"{"status":"error","code":"not_found","message":"no such thing"}"#;
    let url = fake_channel(body.to_owned());
    let (dir, key) = author(&url, &KeyPair::generate().public().to_hex());
    fails_with(&prepare(dir.path(), &key), 1, "not_found");
}

#[test]
fn exit_2_on_usage_errors() {
    let (dir, file, _, sig) = signed_file();
    let o = barge(
        dir.path(),
        &["verify", "--public-key", "xyz", "--signature", &sig, &file],
        None,
    );
    fails_with(&o, 2, "--public-key");
    // A refused local precondition: a config that exists is never overwritten.
    let (author, _) = author("http://127.0.0.1:1", &KeyPair::generate().public().to_hex());
    let o = barge(
        author.path(),
        &[
            "init",
            "--channel",
            "http://127.0.0.1:1",
            "--channel-key",
            &KeyPair::generate().public().to_hex(),
            "--supplier",
            "acme",
        ],
        None,
    );
    fails_with(&o, 2, "already exists");
}

#[test]
fn exit_3_when_the_checkpoint_is_signed_by_another_key() {
    let url = fake_channel(checkpoint_signed_by(&KeyPair::generate()));
    let pinned = KeyPair::generate().public().to_hex();
    let (dir, key) = author(&url, &pinned);
    fails_with(
        &prepare(dir.path(), &key),
        3,
        "does not verify with the pinned channel key",
    );
    assert!(!dir.path().join("dist").exists(), "nothing is written");
}

#[test]
fn exit_3_when_the_answer_is_garbage() {
    let url = fake_channel("<html>hello</html>".to_owned());
    let (dir, key) = author(&url, &KeyPair::generate().public().to_hex());
    fails_with(&prepare(dir.path(), &key), 3, "malformed");
}

#[test]
fn a_correctly_signed_checkpoint_passes_the_same_path() {
    // The control for the two cases above: the same fake channel with the pinned key's
    // signature gets past the checkpoint, so exit 3 there was the signature, not the fake.
    let channel = KeyPair::generate();
    let url = fake_channel(checkpoint_signed_by(&channel));
    let (dir, key) = author(&url, &channel.public().to_hex());
    let o = prepare(dir.path(), &key);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(dir.path().join("dist/revoke-hello-1.0.0.bundle").is_file());
}

#[test]
fn exit_4_when_the_channel_is_unreachable_or_busy() {
    // Nothing listens on port 1.
    let (dir, key) = author("http://127.0.0.1:1", &KeyPair::generate().public().to_hex());
    fails_with(
        &prepare(dir.path(), &key),
        4,
        "could not reach http://127.0.0.1:1",
    );
    // A channel that says it is busy may serve a later try: the same code.
    let url = fake_channel(r#"{"status":"error","code":"busy","message":"later"}"#.to_owned());
    let (dir, key) = author(&url, &KeyPair::generate().public().to_hex());
    fails_with(&prepare(dir.path(), &key), 4, "busy");
}

#[test]
fn exit_5_when_a_file_cannot_be_opened_and_the_path_is_named() {
    let (dir, _, pk, sig) = signed_file();
    let missing = dir.path().join("no-such-file");
    let missing = missing.to_str().expect("utf8");
    let o = barge(
        dir.path(),
        &["verify", "--public-key", &pk, "--signature", &sig, missing],
        None,
    );
    fails_with(&o, 5, &format!("could not open {missing}"));
    let o = barge(
        dir.path(),
        &[
            "verify",
            "--public-key",
            &pk,
            "--signature-file",
            missing,
            missing,
        ],
        None,
    );
    fails_with(&o, 5, &format!("could not read {missing}"));
}

/// Pin first is a fresh answer, not a replayed one: a "channel" that serves a checkpoint
/// really signed by the pinned key (say, copied from the real channel) but cannot sign an
/// answer to init's fresh challenge is refused with exit 3, and nothing is written.
#[test]
fn exit_3_when_a_replayed_checkpoint_cannot_answer_the_challenge() {
    let channel = KeyPair::generate();
    let url = fake_channel(checkpoint_signed_by(&channel));
    let dir = tempfile::tempdir().expect("tempdir");
    let o = barge(
        dir.path(),
        &[
            "init",
            "--channel",
            &url,
            "--channel-key",
            &channel.public().to_hex(),
            "--supplier",
            "acme",
        ],
        None,
    );
    fails_with(&o, 3, "does not verify with the pinned channel key");
    assert!(
        stderr(&o).contains("/v1/updates?since=0&nonce="),
        "{}",
        stderr(&o)
    );
    assert!(
        !dir.path().join("barge.toml").exists(),
        "nothing is written"
    );
}
