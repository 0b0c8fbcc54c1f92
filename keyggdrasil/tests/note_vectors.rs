//! `keyggdrasil::note` against other people's data: every case of golang/mod's
//! `sumdb/note/note_test.go` that concerns parsing and verifying (TestNewVerifier, TestSign,
//! TestVerifierList, TestOpen) and the example of C2SP `signed-note.md`, transcribed in
//! `fixtures/c2sp/golang-mod-note.json`; sigsum-go's checkpoint and cosignature vectors and a
//! real checkpoint of Go's checksum database in `fixtures/c2sp/sigsum-checkpoint.json` (source,
//! commit and licence recorded in each). Each must
//! give Go's verdict, and where Go has an error text, the same text.
//!
//! Not carried over, because they test Go's API rather than the format: TestNewSigner (Go's
//! private-key text, which we never accept), TestGenerateKey and TestFromEd25519 (key
//! generation), and the `fixedVerifier` cases (a Go `Verifiers` that answers with the wrong
//! key; our lookup is by name and key ID, so it cannot).

use base64ct::{Base64, Encoding};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::note::{self, NoteError, VerifierKey};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/c2sp/golang-mod-note.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn keys(v: &Value) -> Vec<VerifierKey> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| VerifierKey::parse(k.as_str().unwrap()).unwrap())
        .collect()
}

fn sigs(v: &Value) -> Vec<(String, u32, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                u32::from_str_radix(s["id"].as_str().unwrap(), 16).unwrap(),
                s["base64"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn verifier_keys_parse_as_go_parses_them() {
    let v = vectors();
    let keys = &v["verifier_keys"];
    for k in keys["valid"].as_array().unwrap() {
        let text = k.as_str().unwrap();
        let key = VerifierKey::parse(text).unwrap();
        // Written back, the same text.
        assert_eq!(key.to_string(), text);
        assert_eq!(key.alg(), note::ALG_ED25519);
        // The key ID is the one computed from name and key.
        assert_eq!(
            key.id(),
            note::key_id(key.name(), key.alg(), key.public_key().as_bytes())
        );
    }
    for bad in keys["invalid"].as_array().unwrap() {
        assert!(
            VerifierKey::parse(bad["key"].as_str().unwrap()).is_err(),
            "{}",
            bad["why"]
        );
    }
    let mangle = keys["mangle"].as_str().unwrap().as_bytes().to_vec();
    let mut refused = 0;
    for i in 0..=mangle.len() {
        for j in i + 1..=mangle.len() {
            if i == 0 && j == mangle.len() {
                continue;
            }
            let sub = String::from_utf8_lossy(&mangle[i..j]);
            assert!(VerifierKey::parse(&sub).is_err(), "{sub:?} was accepted");
            refused += 1;
        }
    }
    for i in 0..mangle.len() {
        let mut b = mangle.clone();
        b[i] = b[i].wrapping_add(1);
        let text = String::from_utf8_lossy(&b);
        assert!(VerifierKey::parse(&text).is_err(), "{text:?} was accepted");
        refused += 1;
    }
    assert!(refused > 2000, "{refused}");
}

#[test]
fn signing_gives_go_s_bytes() {
    let v = vectors();
    let s = &v["sign"];
    // Go's private-key text, only to get the seed: PRIVATE+KEY+name+id+base64(0x01 || seed).
    let form = s["signer_key"].as_str().unwrap();
    let parts: Vec<&str> = form.splitn(5, '+').collect();
    let raw = Base64::decode_vec(parts[4]).unwrap();
    assert_eq!(raw[0], note::ALG_ED25519);
    let key = KeyPair::from_seed(&raw[1..].try_into().unwrap()).unwrap();
    let name = parts[2];
    let text = s["text"].as_str().unwrap();
    let signed = note::sign(text, name, &key).unwrap();
    assert_eq!(signed, s["want"].as_str().unwrap());
    assert_eq!(
        format!(
            "{:08x}",
            VerifierKey::ed25519(name, &key.public()).unwrap().id()
        ),
        parts[3]
    );
    // What Go refuses to sign, refused.
    assert_eq!(note::sign("abc", name, &key), Err(NoteError::Text));
    assert!(matches!(
        note::sign(text, "bad name", &key),
        Err(NoteError::Name(_))
    ));
    assert!(matches!(
        note::sign(text, "a+b", &key),
        Err(NoteError::Name(_))
    ));
}

#[test]
fn opening_notes_gives_go_s_verdicts() {
    let v = vectors();
    let cases = v["open"].as_array().unwrap();
    assert_eq!(cases.len(), 16);
    for case in cases {
        let what = case["what"].as_str().unwrap();
        let msg: Vec<u8> = match case.get("msg_hex") {
            Some(h) => hex::decode(h.as_str().unwrap()).unwrap(),
            None => case["msg"].as_str().unwrap().as_bytes().to_vec(),
        };
        let known = keys(&case["known"]);
        let got = note::open(&msg, &known);
        match case.get("error") {
            Some(want) => {
                let err = got.expect_err(what);
                assert_eq!(err.to_string(), want.as_str().unwrap(), "{what}");
            }
            None => {
                let opened = got.unwrap_or_else(|e| panic!("{what}: {e}"));
                let as_tuples = |s: &[note::NoteSignature]| -> Vec<(String, u32, String)> {
                    s.iter()
                        .map(|s| (s.name.clone(), s.id, s.base64.clone()))
                        .collect()
                };
                assert_eq!(
                    as_tuples(&opened.verified),
                    sigs(&case["verified"]),
                    "{what}"
                );
                assert_eq!(
                    as_tuples(&opened.unverified),
                    sigs(&case["unverified"]),
                    "{what}"
                );
                assert!(msg.starts_with(opened.text.as_bytes()), "{what}");
                assert!(opened.text.ends_with(".\n"), "{what}");
            }
        }
    }
}

#[test]
fn key_lookup_gives_go_s_verdicts() {
    // Go's VerifierList.Verifier: found, unknown (by ID, by name), ambiguous. Here the lookup is
    // inside `open`, so each case is a note signed by the looked-up name and ID.
    let v = vectors();
    let text = v["sign"]["text"].as_str().unwrap();
    let peter_sig = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";
    for case in v["verifier_list"].as_array().unwrap() {
        let known = keys(&case["known"]);
        let name = case["name"].as_str().unwrap();
        let id = u32::from_str_radix(case["id"].as_str().unwrap(), 16).unwrap();
        let mut raw = Base64::decode_vec(peter_sig).unwrap();
        raw[..4].copy_from_slice(&id.to_be_bytes());
        let msg = format!("{text}\n— {name} {}\n", Base64::encode_string(&raw));
        let got = note::open(msg.as_bytes(), &known);
        match case.get("error") {
            Some(want) if want.as_str().unwrap().starts_with("unknown key") => {
                // Go's list says "unknown key"; `open` keeps such a line unverified, and with
                // no other signature the note has none verifiable.
                assert_eq!(got, Err(NoteError::Unverified), "{want}");
            }
            Some(want) => assert_eq!(got.unwrap_err().to_string(), want.as_str().unwrap()),
            None => {
                let opened = got.unwrap();
                assert_eq!(
                    format!("{}+{:08x}", opened.verified[0].name, opened.verified[0].id),
                    case["want"].as_str().unwrap()
                );
            }
        }
    }
}

#[test]
fn the_c2sp_example_note_verifies() {
    let v = vectors();
    let ex = &v["c2sp_example"];
    let key = VerifierKey::parse(ex["verifier_key"].as_str().unwrap()).unwrap();
    let opened = note::open(
        ex["note"].as_str().unwrap().as_bytes(),
        std::slice::from_ref(&key),
    )
    .unwrap();
    assert_eq!(opened.text, ex["text"].as_str().unwrap());
    assert_eq!(opened.verified.len(), 1);
    // One byte of the text changed: refused by the known key.
    let forged = ex["note"]
        .as_str()
        .unwrap()
        .replace("example message", "example massage");
    assert_eq!(
        note::open(forged.as_bytes(), &[key]),
        Err(NoteError::InvalidSignature {
            name: "example.com/foo".into(),
            id: 0x530d903a
        })
    );
}

fn sigsum() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/c2sp/sigsum-checkpoint.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn sigsum_key() -> KeyPair {
    let seed: [u8; 32] = hex::decode(sigsum()["seed_hex"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    KeyPair::from_seed(&seed).unwrap()
}

#[test]
fn sigsum_s_signed_checkpoint_is_reproduced_byte_for_byte() {
    let v = sigsum();
    let want = v["signed_checkpoint"]["note"].as_str().unwrap();
    let (text, _) = want.split_once("\n\n").unwrap();
    let origin = text.lines().next().unwrap();
    let key = sigsum_key();
    assert_eq!(
        note::sign(&format!("{text}\n"), origin, &key).unwrap(),
        want
    );
    let verifier = VerifierKey::ed25519(origin, &key.public()).unwrap();
    assert!(note::open(want.as_bytes(), &[verifier]).is_ok());
}

#[test]
fn sigsum_s_cosignature_lines_get_sigsum_s_verdicts() {
    let v = sigsum();
    let c = &v["cosignature"];
    let text = c["checkpoint_text"].as_str().unwrap();
    let name = c["key_name"].as_str().unwrap();
    let time = c["time"].as_u64().unwrap();
    let key = sigsum_key();
    let witness = VerifierKey::cosignature_v1(name, &key.public()).unwrap();
    // A note signature by some log key, so the note has its log line; only the cosignature
    // lines are under test.
    let log = KeyPair::from_seed(&[7; 32]).unwrap();
    let signed = note::sign(text, "example.org/log", &log).unwrap();
    for line in c["lines"].as_array().unwrap() {
        let l = line["line"].as_str().unwrap();
        let msg = format!("{signed}{l}\n");
        let got = note::open(msg.as_bytes(), std::slice::from_ref(&witness));
        if line["valid"].as_bool().unwrap() {
            let opened = got.unwrap();
            assert_eq!(opened.verified.len(), 1);
            assert_eq!(opened.verified[0].time, Some(time));
            // Ours, made from the same key, text and time, is the same line.
            assert_eq!(
                note::cosign(text, name, &key, time).unwrap(),
                format!("{l}\n")
            );
        } else {
            assert!(got.is_err(), "{}", line["why"]);
        }
    }
}

#[test]
fn a_real_go_checksum_database_checkpoint_verifies() {
    let v = sigsum();
    let g = &v["go_sumdb"];
    let key = VerifierKey::parse(g["verifier_key"].as_str().unwrap()).unwrap();
    assert_eq!(key.name(), "sum.golang.org");
    let opened = note::open(g["note"].as_str().unwrap().as_bytes(), &[key]).unwrap();
    assert_eq!(opened.text.lines().nth(1), Some("30055305"));
}
