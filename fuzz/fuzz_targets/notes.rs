//! The C2SP text formats read from outside (issue 16): signed notes (`note::open`), verifier
//! keys (`note::VerifierKey::parse`), checkpoint notes (`tlog_checkpoint::open`), witness
//! `add-checkpoint` bodies (`witness::parse`, `verify`, `decide`) and offline proofs
//! (`tlog_proof::parse`, `verify_release`), selected by the first byte modulo 5; the rest is the
//! input. The known keys are fixed (seed bytes 1 and 2), origin `plugins.example.org`.
//!
//! Properties, besides never panicking:
//! - an opened note's text is a prefix of the input ending in a newline, and it has at least
//!   one verified signature, each by a known key, each key once;
//! - a parsed verifier key writes back to the same text, but for its key ID in lowercase (read
//!   in either case, as Go does), and that text parses to the same key;
//! - a checkpoint that opens has a size within `MAX_TREE_SIZE` and is signed by the channel key;
//! - a witness request that `decide`s against no previous checkpoint has `old == 0`;
//! - a parsed proof formats back to the same text (canonical base64 and decimals only).
#![no_main]

use keyggdrasil::keys::KeyPair;
use keyggdrasil::merkle::{Blake2b256, MAX_TREE_SIZE};
use keyggdrasil::names::ChannelName;
use keyggdrasil::note::{self, VerifierKey};
use keyggdrasil::{tlog_checkpoint, tlog_proof, witness};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

/// The origin, the channel key and the known verifier keys, made once (key derivation per input
/// was a large part of the time per input).
struct Fixed {
    origin: ChannelName,
    channel: KeyPair,
    known: [VerifierKey; 2],
}

static FIXED: LazyLock<Fixed> = LazyLock::new(|| {
    let origin = ChannelName::parse("plugins.example.org").unwrap();
    let channel = KeyPair::from_seed(&[1; 32]).unwrap();
    let witness_key = KeyPair::from_seed(&[2; 32]).unwrap();
    let known = [
        VerifierKey::ed25519(origin.as_str(), &channel.public()).unwrap(),
        VerifierKey::cosignature_v1("witness.example", &witness_key.public()).unwrap(),
    ];
    Fixed {
        origin,
        channel,
        known,
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Fixed {
        origin,
        channel,
        known,
    } = &*FIXED;
    match which % 5 {
        0 => {
            if let Ok(opened) = note::open(rest, known) {
                assert!(rest.starts_with(opened.text.as_bytes()));
                assert!(opened.text.ends_with('\n'));
                assert!(!opened.verified.is_empty());
                for (i, s) in opened.verified.iter().enumerate() {
                    assert!(known.iter().any(|k| k.name() == s.name && k.id() == s.id));
                    assert!(
                        !opened.verified[..i]
                            .iter()
                            .any(|t| t.name == s.name && t.id == s.id)
                    );
                }
            }
        }
        1 => {
            if let Ok(text) = std::str::from_utf8(rest)
                && let Ok(k) = VerifierKey::parse(text)
            {
                // Go's `NewVerifier` rules read the key ID in either case (the fuzzer found
                // `530d903A`); the written form is the one with the ID in lowercase.
                let (name, rest) = text.split_once('+').expect("a parsed key has a name");
                let (id, key) = rest.split_once('+').expect("and an ID");
                let canonical = k.to_string();
                assert_eq!(
                    canonical,
                    format!("{name}+{}+{key}", id.to_ascii_lowercase())
                );
                let again = VerifierKey::parse(&canonical).expect("the written form parses");
                assert_eq!(
                    (again.name(), again.id(), again.alg(), again.public_key()),
                    (k.name(), k.id(), k.alg(), k.public_key())
                );
            }
        }
        2 => {
            if let Ok(cp) = tlog_checkpoint::open(rest, &channel.public(), origin) {
                assert!(cp.size() <= MAX_TREE_SIZE);
                let text = tlog_checkpoint::text(origin, cp.size(), cp.root());
                assert!(
                    channel
                        .public()
                        .verify_strict(text.as_bytes(), &channel.sign_raw(text.as_bytes()))
                        .is_ok()
                );
            }
        }
        3 => {
            if let Ok(req) = witness::parse(rest)
                && let Ok(signed) =
                    witness::verify(&req, |o| (o == origin).then(|| channel.public()))
                && witness::decide(&Blake2b256, &req, &signed, None).is_ok()
            {
                assert_eq!(req.old, 0);
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest)
                && let Ok(p) = tlog_proof::parse(text)
            {
                assert_eq!(
                    tlog_proof::format(p.extra.as_deref(), p.index, &p.proof, &p.checkpoint),
                    text
                );
                let _ = tlog_proof::verify_release(&p, &channel.public(), origin);
            }
        }
    }
});
