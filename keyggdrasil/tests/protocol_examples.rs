//! The worked examples of `docs/protocol.md`, made independently with libsodium and Python's
//! hashlib (`fixtures/protocol/generate.py`), checked byte for byte against keyggdrasil.
//!
//! If the spec text, the independent implementation and this code disagree anywhere (field
//! order, escaping, context strings, the NUL separator, leaf/node prefixes, the Halite digest
//! key), one of these assertions fails.

use keyggdrasil::entry::{Entry, Event};
use keyggdrasil::filesig;
use keyggdrasil::kdf::Derivation;
use keyggdrasil::keys::{PublicKey, Signature};
use keyggdrasil::limits::Limits;
use keyggdrasil::merkle::{Blake2b256, TreeHasher, root_from_leaf_hashes};
use keyggdrasil::protocol::{self, Context};
use keyggdrasil::state::KeyState;
use keyggdrasil::wire::{Checkpoint, Signed};
use serde_json::Value;

fn examples() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/protocol/examples.json"
    );
    serde_json::from_slice(&std::fs::read(path).expect("fixtures/protocol/examples.json"))
        .expect("examples are JSON")
}

fn s(v: &Value) -> &str {
    v.as_str().expect("a string")
}

fn key(v: &Value) -> PublicKey {
    PublicKey::from_hex(s(v)).expect("a valid public key")
}

#[test]
fn entries_parse_verify_and_are_canonical() {
    let ex = examples();
    let mut parsed = Vec::new();
    for e in ex["entries"].as_array().expect("entries") {
        let text = s(&e["entry"]);
        let entry = Entry::parse(text.as_bytes()).expect("the independent entry parses");
        assert_eq!(entry.as_bytes(), text.as_bytes());
        assert_eq!(entry.body_bytes(), s(&e["body"]).as_bytes());
        assert_eq!(
            entry.body().canonical_bytes(),
            s(&e["body"]).as_bytes(),
            "canonical form equals Python's compact JSON"
        );
        let context = entry.body().event.context();
        assert_eq!(context.as_str(), s(&e["context"]));
        assert_eq!(
            protocol::signed_bytes(context, entry.body_bytes()),
            hex::decode(s(&e["signed_bytes_hex"])).expect("hex")
        );
        assert!(entry.signature_is_valid());
        assert_eq!(
            hex::encode(Blake2b256.hash_leaf(entry.as_bytes())),
            s(&e["leaf_hash"])
        );
        parsed.push(entry);
    }
    // The three entries are a valid history: master (self-signed), signing key, release.
    let mut state = KeyState::new();
    state
        .apply_all(parsed.iter())
        .expect("the example log is valid");
    assert!(matches!(parsed[2].body().event, Event::Release { .. }));
}

#[test]
fn roots_and_checkpoint_match() {
    let ex = examples();
    let leaves: Vec<[u8; 32]> = ex["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            hex::decode(s(&e["leaf_hash"]))
                .expect("hex")
                .try_into()
                .expect("32 bytes")
        })
        .collect();
    for (n, root) in ex["roots"].as_array().expect("roots").iter().enumerate() {
        let got = root_from_leaf_hashes(&Blake2b256, &leaves[..=n]).expect("root");
        assert_eq!(hex::encode(got), s(root), "root at size {}", n + 1);
    }
    assert_eq!(hex::encode(Blake2b256.empty_root()), s(&ex["empty_root"]));

    let cp = &ex["checkpoint"];
    let signed = Signed {
        payload: s(&cp["payload"]).to_owned(),
        signature: Signature::from_hex(s(&cp["signature"])).expect("signature hex"),
    };
    let channel = key(&ex["channel_public_key"]);
    let checkpoint: Checkpoint = signed
        .open(
            &channel,
            Context::Checkpoint,
            Limits::default().max_small_response_bytes,
        )
        .expect("the independently signed checkpoint verifies");
    assert_eq!(checkpoint.size, 3);
    assert_eq!(hex::encode(checkpoint.root.0), s(&ex["roots"][2]));
    assert_eq!(
        protocol::signed_bytes(
            Context::Checkpoint,
            cp["payload"].as_str().expect("payload").as_bytes()
        ),
        hex::decode(s(&cp["signed_bytes_hex"])).expect("hex")
    );
    // Under any other context the same signature is refused: contexts separate domains.
    assert!(
        signed
            .open::<Checkpoint>(&channel, Context::ChannelUpdate, 1 << 20)
            .is_err()
    );
}

#[test]
fn archive_signature_and_key_derivation_match_libsodium() {
    let ex = examples();
    let archive_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/archive/hello-plugin.zip"
    );
    let archive = std::fs::read(archive_path).expect("sample archive");
    let signing = key(&ex["signing_public_key"]);
    let sig = Signature::from_hex(s(&ex["archive"]["signature"])).expect("hex");
    filesig::verify(&signing, &sig, archive.as_slice()).expect("Halite-style signature verifies");
    let mut tampered = archive.clone();
    tampered[10] ^= 1;
    assert!(filesig::verify(&signing, &sig, tampered.as_slice()).is_err());

    let d: Derivation =
        serde_json::from_value(ex["master"]["derivation"].clone()).expect("derivation record");
    let pair = d
        .derive_keypair(s(&ex["master"]["passphrase"]).as_bytes())
        .expect("derivation");
    assert_eq!(pair.public(), key(&ex["master"]["public_key"]));
}
