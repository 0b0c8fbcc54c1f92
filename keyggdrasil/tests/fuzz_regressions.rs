//! Replays inputs that fuzzing found (`fixtures/fuzz-regressions/`, see its README and
//! `docs/fuzzing.md`), so each bug stays fixed.

use std::path::PathBuf;

use keyggdrasil::entry::{Entry, EntryBody, EntryError};
use keyggdrasil::keys::KeyPair;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/fuzz-regressions")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fuzz targets' fixed keys (seeds 1, 2 and 3).
fn fixed_key(body: &EntryBody) -> KeyPair {
    [1u8, 2, 3]
        .into_iter()
        .map(|b| KeyPair::from_seed(&[b; 32]).unwrap())
        .find(|k| k.public() == body.signer)
        .expect("the fixture is signed by one of the fuzz targets' fixed keys")
}

/// Found by the `bundle` target: `Entry::sign` signed a body of format version 0, which
/// `Entry::parse` refuses, so a signed bundle could carry an entry no one can read.
#[test]
fn entry_sign_refuses_a_body_that_parse_refuses() {
    let text = fixture("entry-sign-version-0.json");
    // serde alone does not check the version: this is how a bundle request's body is read.
    let body: EntryBody = serde_json::from_slice(&text).unwrap();
    assert_eq!(body.v, 0);
    let key = fixed_key(&body);
    assert!(matches!(
        Entry::sign(body.clone(), &key),
        Err(EntryError::Version(0))
    ));

    // The same body at version 1 signs, and what is signed parses back.
    let mut good = body;
    good.v = 1;
    let entry = Entry::sign(good, &key).unwrap();
    assert_eq!(Entry::parse(entry.as_bytes()).unwrap(), entry);

    // And `parse` refuses the version-0 body whatever the signature.
    let mut bytes = text.clone();
    bytes.push(b'\n');
    bytes.extend_from_slice(&[b'0'; 128]);
    assert!(matches!(Entry::parse(&bytes), Err(EntryError::Version(0))));
}

/// Found by the `bundle` target: a request bundle whose body has `"v":0` parsed, and signing it
/// wrote a signed bundle that `Bundle::parse` refused. `Bundle::parse` now refuses such a request
/// when it is read (`EntryBody::validate`), before anyone is shown it or asked to sign it; signing
/// it is refused too (`entry_sign_refuses_a_body_that_parse_refuses`).
#[test]
fn a_bundle_request_with_an_unparseable_body_is_refused() {
    use keyggdrasil::bundle::{Bundle, BundleError, append_checksum};
    let input = fixture("bundle-sign-version-0.bin");
    // Selector byte 1: the fuzz target appends the checksum line itself.
    assert_eq!(input[0], 1);
    let file = append_checksum(input[1..].to_vec());
    match Bundle::parse(&file) {
        Err(BundleError::Inconsistent(message)) => {
            assert!(message.contains("version 0"), "{message}")
        }
        other => panic!("expected the request to be refused, got {other:?}"),
    }
    // The same request with a version-1 body is accepted: only the version was wrong.
    let fixed = String::from_utf8(input[1..].to_vec())
        .unwrap()
        .replace(r#"{\"v\":0,"#, r#"{\"v\":1,"#);
    Bundle::parse(&append_checksum(fixed.into_bytes())).unwrap();
}

/// Found by the `notes` target (first byte 1: `VerifierKey::parse`): a verifier key whose key
/// ID has an uppercase hex digit (`530d903A`) parses, as Go's `note.NewVerifier` accepts it
/// (`strconv.ParseUint(.., 16, 32)` reads either case), and writes back with the ID in
/// lowercase. Not a bug in the parser; the target's "writes back to the same text" was too
/// strict and now expects the lowercase ID. This pins the behaviour: same key, lowercase text.
#[test]
fn a_verifier_key_id_in_uppercase_parses_and_writes_back_in_lowercase() {
    use keyggdrasil::note::VerifierKey;
    let input = fixture("notes-verifier-key-uppercase-id.bin");
    // The target's selector byte (1 = verifier key), then the key text.
    assert_eq!(input[0] % 5, 1);
    let text = std::str::from_utf8(&input[1..]).unwrap();
    let key = VerifierKey::parse(text).expect("Go's rules read a hex ID in either case");
    let lower = text.replace("+530d903A+", "+530d903a+");
    assert_ne!(lower, text);
    assert_eq!(key.to_string(), lower);
    let again = VerifierKey::parse(&lower).unwrap();
    assert_eq!(
        (again.name(), again.id(), again.alg(), again.public_key()),
        (key.name(), key.id(), key.alg(), key.public_key())
    );
}
