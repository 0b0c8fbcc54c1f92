//! Key files (`KeyFile::parse`, unlocking) and signature files (`filesig::parse_signature_text`).
//!
//! An even first byte selects a key file, an odd one a signature file; the rest is the file.
//!
//! Properties, besides never panicking:
//! - a parsed key file serialises (`to_bytes`) and parses back to an equal value;
//! - its `Debug` output never contains a stored plain seed;
//! - a plain key unlocks exactly when its seed gives the recorded public key, and the key pair it
//!   gives has that public key; a passphrase key (derived or encrypted) that unlocks with the
//!   fixed passphrase `correct horse` gives the recorded public key (only tried at the cheapest
//!   Argon2 costs, so that iterations stay fast);
//! - a parsed signature text is 128 lowercase hex characters and an optional `\n`, and
//!   `signature_text` gives it back (with the newline).
#![no_main]

use keyggdrasil::filesig;
use keyggdrasil::kdf::{Derivation, MIN_MEM_LIMIT, MIN_OPS_LIMIT};
use keyggdrasil::keyfile::{KeyFile, KeyFileError, StoredSecret};
use keyggdrasil::keys::KeyPair;
use libfuzzer_sys::fuzz_target;

const PASSPHRASE: &[u8] = b"correct horse";

fn cheap(d: &Derivation) -> bool {
    d.ops_limit == MIN_OPS_LIMIT && d.mem_limit <= 8 * MIN_MEM_LIMIT
}

fn key_file(bytes: &[u8]) {
    let file = match KeyFile::parse(bytes) {
        Ok(file) => file,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let text = file.to_bytes();
    let again = KeyFile::parse(&text).expect("a serialised key file parses");
    assert_eq!(again, file, "key file round trip changed the value");

    let debug = format!("{file:?}");
    match &file.secret {
        Some(StoredSecret::Plain { seed }) => {
            let hex = keyggdrasil::encoding::to_hex(seed);
            assert!(!debug.contains(&hex), "Debug output shows the seed");
            assert!(!file.needs_passphrase());
            let matches = KeyPair::from_seed(seed)
                .map(|kp| kp.public() == file.public_key)
                .unwrap_or(false);
            match file.unlock(None) {
                Ok(kp) => {
                    assert!(matches);
                    assert_eq!(kp.public(), file.public_key);
                }
                Err(KeyFileError::Corrupt(_)) => assert!(!matches),
                Err(e) => panic!("unexpected error for a plain key: {e}"),
            }
        }
        Some(StoredSecret::Encrypted { kdf, .. }) => {
            assert!(file.needs_passphrase());
            assert!(matches!(
                file.unlock(None),
                Err(KeyFileError::PassphraseNeeded)
            ));
            if cheap(kdf)
                && let Ok(kp) = file.unlock(Some(PASSPHRASE))
            {
                assert_eq!(kp.public(), file.public_key);
            }
        }
        None => match &file.derivation {
            Some(d) => {
                assert!(matches!(
                    file.unlock(None),
                    Err(KeyFileError::PassphraseNeeded)
                ));
                if cheap(d)
                    && let Ok(kp) = file.unlock(Some(PASSPHRASE))
                {
                    assert_eq!(kp.public(), file.public_key);
                }
            }
            None => assert!(matches!(
                file.unlock(Some(PASSPHRASE)),
                Err(KeyFileError::NoSecret)
            )),
        },
    }
}

fn signature_file(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(sig) = filesig::parse_signature_text(text) {
        let out = filesig::signature_text(&sig);
        assert!(out == text || out.strip_suffix('\n') == Some(text));
        assert_eq!(out.len(), 129);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        key_file(rest);
    } else {
        signature_file(rest);
    }
});
