//! Every refusal rule over HTTP: a clear code, and the log unchanged.

use keyggdrasil::entry::Event;
use keyggdrasil::keys::KeyPair;

use super::harness::{Channel, Supplier, agent};

fn size(ch: &Channel) -> u64 {
    #[derive(serde::Deserialize)]
    struct S {
        size: u64,
    }
    ch.get::<S>("/v1/stats").unwrap().size
}

/// Submits and expects a refusal with `code`; asserts the log did not change.
fn refused(ch: &Channel, entry: &keyggdrasil::entry::Entry, code: &str) {
    let before = size(ch);
    let err = ch.try_submit(entry).unwrap_err();
    assert_eq!(err, (403, code.to_owned()));
    assert_eq!(size(ch), before, "log changed after a refused submission");
}

#[test]
fn key_rules() {
    let ch = Channel::start_with("open", "");
    let acme = Supplier::new("acme");

    // An unknown supplier's first entry must be a master key.
    refused(&ch, &acme.signing_entry(), "unknown_supplier");
    // ... signed by itself.
    let stranger = KeyPair::generate();
    refused(
        &ch,
        &acme.sign(
            &stranger,
            Event::MasterKey {
                public_key: acme.master.public(),
                derivation: None,
            },
        ),
        "first_key_not_self_signed",
    );
    acme.register(&ch);

    // A key not signed by a current master (signed by the signing key, or by a stranger).
    let newkey = KeyPair::generate();
    refused(
        &ch,
        &acme.sign(
            &acme.signing,
            Event::SigningKey {
                public_key: newkey.public(),
                derivation: None,
            },
        ),
        "not_current_master",
    );
    refused(
        &ch,
        &acme.sign(
            &stranger,
            Event::MasterKey {
                public_key: stranger.public(),
                derivation: None,
            },
        ),
        "not_current_master",
    );
    // A master key revoking itself, i.e. the last master key.
    refused(
        &ch,
        &acme.revoke(&acme.master, &acme.master.public()),
        "self_revocation",
    );

    // Release by a foreign key (another supplier's signing key).
    let other = Supplier::new("other");
    other.register(&ch);
    refused(
        &ch,
        &acme.release(&other.signing, "hello", "1.0.0", b"zip"),
        "not_current_signing_key",
    );
    // Release by a master key.
    refused(
        &ch,
        &acme.release(&acme.master, "hello", "1.0.0", b"zip"),
        "not_current_signing_key",
    );
    // Release by a revoked key.
    ch.try_submit(&acme.revoke(&acme.master, &acme.signing.public()))
        .unwrap();
    refused(
        &ch,
        &acme.release(&acme.signing, "hello", "1.0.0", b"zip"),
        "not_current_signing_key",
    );
    // A revoked key cannot come back (in another role: the identical entry would just be a
    // duplicate of the one already logged, answered idempotently).
    refused(
        &ch,
        &acme.sign(
            &acme.master,
            Event::MasterKey {
                public_key: acme.signing.public(),
                derivation: None,
            },
        ),
        "key_already_registered",
    );
    let dup = ch.try_submit(&acme.signing_entry()).unwrap();
    assert!(dup.duplicate);
}

#[test]
fn bad_requests() {
    let ch = Channel::start_with("open", "");
    let acme = Supplier::new("acme");
    let entry = acme.master_entry();
    let body =
        serde_json::json!({ "entry": String::from_utf8(entry.as_bytes().to_vec()).unwrap() })
            .to_string();

    // Wrong content type.
    let (status, b) = ch.submit_raw(&body, "text/plain");
    assert_eq!(status, 415, "{}", String::from_utf8_lossy(&b));
    // Malformed JSON.
    let (status, b) = ch.submit_raw("{\"entry\":", "application/json");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&b).contains("malformed_json"));
    // Unknown field.
    let (status, _) = ch.submit_raw("{\"entry\":\"x\",\"extra\":1}", "application/json");
    assert_eq!(status, 400);
    // Malformed entry.
    let (status, b) = ch.submit_raw("{\"entry\":\"not an entry\"}", "application/json");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&b).contains("malformed_entry"));
    // Forged signature.
    let text = String::from_utf8(entry.as_bytes().to_vec()).unwrap();
    let forged = format!(
        "{}{}",
        &text[..text.len() - 1],
        if text.ends_with('0') { "1" } else { "0" }
    );
    let (status, b) = ch.submit_raw(
        &serde_json::json!({ "entry": forged }).to_string(),
        "application/json",
    );
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&b).contains("bad_signature"));
    // Oversize body.
    let huge = format!("{{\"entry\":\"{}\"}}", "a".repeat(70_000));
    let (status, b) = ch.submit_raw(&huge, "application/json");
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&b));
    // Bad queries.
    assert_eq!(
        ch.get::<serde_json::Value>("/v1/updates?since=0&nonce=XYZ")
            .unwrap_err()
            .1,
        "bad_nonce"
    );
    assert_eq!(
        ch.get::<serde_json::Value>("/v1/updates?since=x")
            .unwrap_err()
            .1,
        "bad_query"
    );
    assert_eq!(
        ch.get::<serde_json::Value>(&format!("/v1/updates?since=5&nonce={}", "0".repeat(64)))
            .unwrap_err(),
        (409, "since_beyond_log".into())
    );
    assert_eq!(
        ch.get::<serde_json::Value>("/v1/proof/inclusion?index=0&size=1")
            .unwrap_err()
            .1,
        "bad_range"
    );
    assert_eq!(
        ch.get::<serde_json::Value>("/v1/proof/consistency?old=0&new=0")
            .unwrap_err()
            .1,
        "bad_range"
    );
    assert_eq!(
        ch.get::<serde_json::Value>("/v1/entries?start=0&end=1")
            .unwrap_err()
            .1,
        "bad_range"
    );
    assert_eq!(
        ch.get::<serde_json::Value>("/nope").unwrap_err(),
        (404, "not_found".into())
    );
    // Nothing was appended by any of this.
    assert_eq!(size(&ch), 0);
}

#[test]
fn archive_must_match_the_log() {
    let ch = Channel::start_with("open", "");
    let acme = Supplier::new("acme");
    acme.register(&ch);
    let archive = vec![1u8; 5000];
    ch.try_submit(&acme.release(&acme.signing, "hello", "1.0.0", &archive))
        .unwrap();
    let url = ch.url("/v1/archives/acme/hello/1.0.0");
    let put = |body: &[u8]| {
        let r = agent().put(&url).send(body).unwrap();
        let status = r.status().as_u16();
        (status, r.into_body().read_to_string().unwrap())
    };
    // Wrong size (shorter and longer), wrong digest with the right size.
    let (s, b) = put(&archive[..4999]);
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("archive_size_mismatch"));
    let mut longer = archive.clone();
    longer.push(0);
    let (s, b) = put(&longer);
    assert!(s == 400 || s == 413, "{s} {b}");
    assert!(b.contains("archive_size_mismatch"));
    let mut tampered = archive.clone();
    tampered[10] ^= 1;
    let (s, b) = put(&tampered);
    assert_eq!(s, 400);
    assert!(b.contains("archive_digest_mismatch"));
    // Nothing stored: download says not uploaded.
    assert_eq!(
        ch.get::<serde_json::Value>("/v1/archives/acme/hello/1.0.0")
            .unwrap_err(),
        (404, "archive_not_uploaded".into())
    );
    // Unknown release and bad names.
    let r = agent()
        .put(&ch.url("/v1/archives/acme/hello/2.0.0"))
        .send(&archive[..])
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = agent()
        .put(&ch.url("/v1/archives/acme/hello/..%2f.."))
        .send(&archive[..])
        .unwrap();
    assert_eq!(r.status(), 400);
    // The right one is accepted; no temporary files are left behind.
    let (s, b) = put(&archive);
    assert_eq!(s, 200, "{b}");
    let dir = ch.config.parent().unwrap().join("archives");
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}
