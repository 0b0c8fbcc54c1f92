//! A stored archive that went bad on the channel's disk: `check --archives` names it (exit 1),
//! an upload of the wrong bytes is still refused, and an upload of the logged bytes replaces it.

use std::io::Read;
use std::process::Command;

use super::harness::{BIN, Channel, Supplier, agent};

fn check_archives(ch: &Channel) -> std::process::Output {
    Command::new(BIN)
        .args(["check", "--archives", "--config"])
        .arg(&ch.config)
        .output()
        .expect("run check")
}

fn put(ch: &Channel, bytes: &[u8]) -> (u16, serde_json::Value) {
    let r = agent()
        .put(&ch.url("/v1/archives/acme/hello/1.0.0"))
        .send(bytes)
        .expect("upload");
    let status = r.status().as_u16();
    let mut body = String::new();
    r.into_body()
        .into_reader()
        .read_to_string(&mut body)
        .unwrap();
    (status, serde_json::from_str(&body).unwrap())
}

#[test]
fn a_damaged_stored_archive_is_found_and_repaired_by_a_matching_upload() {
    let ch = Channel::start_with("open", "");
    let acme = Supplier::new("acme");
    acme.register(&ch);
    let archive: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    ch.submit(&acme.release(&acme.signing, "hello", "1.0.0", &archive));
    ch.upload("acme", "hello", "1.0.0", &archive);

    let ok = check_archives(&ch);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("1 stored archives match"));

    // One byte flips on the channel's disk.
    let stored = std::fs::read_dir(ch.data_dir().join("archives"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .expect("stored archive");
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[1234] ^= 0x40;
    std::fs::write(&stored, &bytes).unwrap();

    let bad = check_archives(&ch);
    assert_eq!(bad.status.code(), Some(1));
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(
        out.contains("BAD ARCHIVE: acme/hello 1.0.0") && out.contains("BLAKE2b-512"),
        "{out}"
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("1 of 1 stored archives"));

    // Wrong bytes do not replace it (and are not "already stored" either).
    let (status, body) = put(&ch, &bytes);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "archive_digest_mismatch");
    assert_eq!(check_archives(&ch).status.code(), Some(1));

    // The logged bytes repair it.
    let (status, body) = put(&ch, &archive);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["repaired"], true);
    assert_eq!(body["data"]["already_stored"], false);
    assert_eq!(std::fs::read(&stored).unwrap(), archive);
    assert!(check_archives(&ch).status.success());

    // Now it is simply there.
    let (_, body) = put(&ch, &archive);
    assert_eq!(body["data"]["already_stored"], true);
    assert_eq!(body["data"]["repaired"], false);
    let mut got = Vec::new();
    agent()
        .get(&ch.url("/v1/archives/acme/hello/1.0.0"))
        .call()
        .unwrap()
        .into_body()
        .into_reader()
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got, archive);
}
