//! Staged-rollout vectors from `fixtures/rollout/` (generated independently in Python by
//! `gen_buckets.py`): every bucket, and every decision at the wave boundaries.

use keyggdrasil::keys::PublicKey;
use keyggdrasil::rollout::{Rollout, RolloutDecision, Wave, bucket, decide};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/rollout/");
    let text = std::fs::read_to_string(format!("{path}{name}")).expect("read vectors");
    serde_json::from_str(&text).expect("json")
}

fn hex32(v: &Value) -> [u8; 32] {
    let s = v.as_str().expect("hex string");
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

#[test]
fn every_bucket_vector_matches() {
    let v = load("buckets.json");
    assert_eq!(v["context"], keyggdrasil::rollout::BUCKET_CONTEXT);
    let cases = v["cases"].as_array().expect("cases");
    assert!(cases.len() >= 20);
    for c in cases {
        let key = PublicKey::from_bytes(&hex32(&c["notary_public_key"])).expect("key");
        let leaf = hex32(&c["leaf_hash"]);
        let want = c["bucket"].as_u64().expect("bucket");
        assert_eq!(u64::from(bucket(&key, &leaf)), want, "{c}");
    }
}

#[test]
fn every_decision_vector_matches() {
    let v = load("decide.json");
    let cases = v["cases"].as_array().expect("cases");
    assert!(cases.len() >= 40);
    let mut installs = 0;
    for c in cases {
        let waves: Vec<Wave> = serde_json::from_value(c["waves"].clone()).expect("waves");
        let schedule = Rollout {
            waves,
            paused: c["paused"].as_bool().expect("paused"),
        };
        let b = u8::try_from(c["bucket"].as_u64().expect("bucket")).expect("small");
        let now = c["now"].as_u64().expect("now");
        let got = decide(Some(&schedule), b, now);
        let expect = &c["expect"];
        if expect["install"].as_bool() == Some(true) {
            installs += 1;
            assert_eq!(got, RolloutDecision::Install, "{c}");
        } else {
            let RolloutDecision::Wait {
                reason,
                next_at,
                bucket: got_bucket,
                ..
            } = got
            else {
                panic!("expected a wait: {c}");
            };
            assert_eq!(reason.name(), expect["reason"], "{c}");
            assert_eq!(next_at, expect["next_at"].as_u64(), "{c}");
            assert_eq!(got_bucket, b);
        }
    }
    // The vectors exercise both outcomes.
    assert!(installs > 5 && installs < cases.len());
}
