//! Log entries: `Entry::parse`, the checked-signature path and the key state machine.
//!
//! The input is a list of chunks separated by the byte 0xFF (which never occurs in UTF-8, so
//! never inside a valid entry). A chunk starting with `S` is an entry *body* that the target signs
//! with one of three fixed keys (the one its `signer` field names), so the fuzzer gets past the
//! signature check and exercises the rules of `KeyState`; any other chunk is raw entry bytes
//! (body, newline, hex signature), parsed as they come.
//!
//! Properties, besides never panicking:
//! - a parsed entry keeps its exact bytes, is `canonical body ‖ \n ‖ hex signature`, and parses
//!   again to an equal entry;
//! - `Entry::sign` of a parsed body reproduces the body bytes exactly (one encoding per entry);
//! - `KeyState::check_checked` agrees with `apply` and `apply_checked`; a refused entry leaves the
//!   state unchanged; an entry whose signature does not verify is never applied. At most 8
//!   entries per input.
#![no_main]

use keyggdrasil::entry::Entry;
use keyggdrasil::keys::KeyPair;
use keyggdrasil::state::KeyState;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

const DUMMY_SIGNATURE: [u8; 128] = [b'0'; 128];

// Fixed seeds so corpus files can name these keys as signers. `from_seed` only fails for a
// weak (small-order) public key, which these constant seeds do not give.
static KEYS: LazyLock<[KeyPair; 3]> = LazyLock::new(|| {
    [1u8, 2, 3].map(|b| KeyPair::from_seed(&[b; 32]).expect("fixed seed is a valid key"))
});

fn check_parsed(bytes: &[u8], entry: &Entry) {
    assert_eq!(entry.as_bytes(), bytes, "parse must keep the exact bytes");
    let body = entry.body_bytes();
    assert_eq!(
        entry.body().canonical_bytes(),
        body,
        "body must be canonical"
    );
    let mut rebuilt = body.to_vec();
    rebuilt.push(b'\n');
    rebuilt.extend_from_slice(entry.signature().to_hex().as_bytes());
    assert_eq!(
        rebuilt, bytes,
        "entry must be body, newline, lowercase hex signature"
    );
    let again = Entry::parse(entry.as_bytes()).expect("a parsed entry parses again");
    assert_eq!(&again, entry);
}

/// Replays `entry` on `state`. Signature checks are the slow part (two per entry here): `apply`
/// verifies once, `into_checked` once, and `apply_checked` / `check_checked` reuse the latter.
fn replay(state: &mut KeyState, entry: &Entry) {
    let before = state.clone();
    let checked = entry.clone().into_checked();
    let result = state.apply(entry);
    match &result {
        Ok(applied) => assert_eq!(applied.index, before.size()),
        Err(_) => assert_eq!(*state, before, "a refused entry changed the state"),
    }
    match checked {
        Ok(checked) => {
            let check = before.check_checked(&checked);
            assert_eq!(check.is_ok(), result.is_ok(), "check and apply disagree");
            let mut other = before;
            let again = other.apply_checked(&checked);
            assert_eq!(
                again.is_ok(),
                result.is_ok(),
                "apply_checked and apply disagree"
            );
            assert_eq!(&other, state);
        }
        // A bad signature is never acceptable.
        Err(_) => assert!(result.is_err(), "an entry with a bad signature was applied"),
    }
}

fuzz_target!(|data: &[u8]| {
    let keys = &*KEYS;
    let mut state = KeyState::new();
    for (n, chunk) in data.split(|b| *b == 0xFF).enumerate() {
        if n >= 8 {
            break;
        }
        let entry = if let Some(body) = chunk.strip_prefix(b"S") {
            // Parse once with a dummy signature to learn the body, then sign it for real.
            let mut bytes = body.to_vec();
            bytes.push(b'\n');
            bytes.extend_from_slice(&DUMMY_SIGNATURE);
            let Ok(parsed) = Entry::parse(&bytes) else {
                continue;
            };
            check_parsed(&bytes, &parsed);
            let Some(kp) = keys.iter().find(|k| k.public() == parsed.body().signer) else {
                replay(&mut state, &parsed);
                continue;
            };
            let signed = match Entry::sign(parsed.body().clone(), kp) {
                Ok(signed) => signed,
                // Only refusal possible: the signed entry would pass the size limit.
                Err(_) => continue,
            };
            assert_eq!(
                signed.body_bytes(),
                body,
                "sign must reproduce the canonical body"
            );
            let reparsed = Entry::parse(signed.as_bytes()).expect("a signed entry parses");
            check_parsed(signed.as_bytes(), &reparsed);
            reparsed
        } else {
            match Entry::parse(chunk) {
                Ok(entry) => {
                    check_parsed(chunk, &entry);
                    entry
                }
                Err(e) => {
                    // Error messages must stay printable (no input echoed raw).
                    let _ = e.to_string();
                    continue;
                }
            }
        };
        replay(&mut state, &entry);
    }
});
