//! `keyggdrasil::witness` against the requests of torchwood's litewitness test
//! (`fixtures/c2sp/litewitness.json`; source, commit and licence there), with SHA-256 as the
//! tree hash (the log is a Sigsum log). Each request in order gets litewitness's status, and
//! each 200 moves the witness's latest checkpoint as litewitness's does.
//!
//! One deliberate difference: a checkpoint of an unknown origin is answered 404, as
//! `c2sp.org/tlog-witness` (and issue 16) say; litewitness at that commit answers 403.

use keyggdrasil::keys::{KeyPair, PublicKey};
use keyggdrasil::merkle::Hash;
use keyggdrasil::names::ChannelName;
use keyggdrasil::witness::{self, WitnessError};

use keyggdrasil::merkle::Sha256Interop as Sha256;

#[test]
fn litewitness_s_requests_get_its_answers() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/c2sp/litewitness.json"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let key = PublicKey::from_hex(v["log_key_hex"].as_str().unwrap()).unwrap();
    let origin = ChannelName::parse(v["log_origin"].as_str().unwrap()).unwrap();
    let trusted = |o: &ChannelName| (o == &origin).then_some(key);
    let me = KeyPair::generate();
    let mut latest: Option<(u64, Hash)> = None;
    let requests = v["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 9);
    for (i, r) in requests.iter().enumerate() {
        let body = r["body"].as_str().unwrap();
        let want = r["status"].as_u64().unwrap() as u16;
        let assertion = r["assert"].as_str().unwrap();
        let got = witness::parse(body.as_bytes()).and_then(|req| {
            let signed = witness::verify(&req, trusted)?;
            witness::decide(&Sha256, &req, &signed, latest)?;
            Ok(signed)
        });
        match got {
            Ok(signed) => {
                assert_eq!(want, 200, "request {i}");
                latest = Some((signed.size, signed.root));
                let line = witness::cosign("example.com/witness", &me, &signed, 1).unwrap();
                assert!(line.starts_with("— example.com/witness "), "request {i}");
                assert!(assertion.contains("— example.com/witness"), "request {i}");
            }
            Err(e) => {
                let status = e.status();
                if assertion.contains("unknown log") {
                    assert_eq!((want, status), (403, 404), "request {i}: {e}");
                } else {
                    assert_eq!(status, want, "request {i}: {e}");
                }
                if let WitnessError::Conflict { latest: n } = e {
                    assert_eq!(assertion, format!("body == \"{n}\\n\""), "request {i}");
                }
            }
        }
    }
    assert_eq!(latest.map(|l| l.0), Some(5));
}
