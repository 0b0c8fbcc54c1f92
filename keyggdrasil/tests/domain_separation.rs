//! Domain separation between every kind of signature one Ed25519 key can make here
//! (docs/crypto.md, "Domain separation"): each protocol context, C2SP note signatures,
//! `cosignature/v1` cosignatures and Halite-style archive signatures. A signature made as one
//! kind never verifies as any other kind, for the same key and the same message bytes, and the
//! byte strings the kinds sign are disjoint by construction (checked on the samples here).

use keyggdrasil::filesig;
use keyggdrasil::keys::{KeyPair, PublicKey, Signature};
use keyggdrasil::note;
use keyggdrasil::protocol::{self, Context};

/// Every kind of signature, with the bytes the key actually signs for a given message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Protocol(Context),
    /// A C2SP note signature: raw over the note text.
    Note,
    /// A `cosignature/v1` at a fixed time: raw over `cosignature/v1\ntime T\n` ‖ text.
    Cosignature,
    /// An archive signature: raw over the BLAKE2b-512 digest of the file keyed with the
    /// signer's public key.
    Archive,
}

const TIME: u64 = 1_700_000_000;

fn kinds() -> Vec<Kind> {
    let mut k: Vec<Kind> = Context::ALL.into_iter().map(Kind::Protocol).collect();
    k.extend([Kind::Note, Kind::Cosignature, Kind::Archive]);
    k
}

/// The bytes the key signs when it signs `message` as `kind`.
fn signed_bytes(kind: Kind, key: &PublicKey, message: &[u8]) -> Vec<u8> {
    match kind {
        Kind::Protocol(c) => protocol::signed_bytes(c, message),
        Kind::Note => message.to_vec(),
        Kind::Cosignature => {
            note::cosigned_message(TIME, std::str::from_utf8(message).expect("text"))
        }
        Kind::Archive => filesig::keyed_digest(key, message)
            .expect("digest")
            .to_vec(),
    }
}

fn sign(kind: Kind, key: &KeyPair, message: &[u8]) -> Signature {
    match kind {
        Kind::Protocol(c) => protocol::sign(key, c, message),
        Kind::Archive => filesig::sign(key, message).expect("sign"),
        Kind::Note | Kind::Cosignature => key.sign_raw(&signed_bytes(kind, &key.public(), message)),
    }
}

fn verifies(kind: Kind, key: &PublicKey, message: &[u8], sig: &Signature) -> bool {
    match kind {
        Kind::Protocol(c) => protocol::verify(key, c, message, sig).is_ok(),
        Kind::Archive => filesig::verify(key, sig, message).is_ok(),
        Kind::Note | Kind::Cosignature => key
            .verify_strict(&signed_bytes(kind, key, message), sig)
            .is_ok(),
    }
}

/// A checkpoint text: what notes and cosignatures sign here (no NUL, ends in a newline).
const TEXT: &[u8] = b"plugins.example.org\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n";

#[test]
fn a_signature_of_each_kind_fails_as_every_other_kind() {
    let key = KeyPair::from_seed(&[5; 32]).expect("key");
    let public = key.public();
    let all = kinds();
    assert_eq!(all.len(), Context::ALL.len() + 3);
    for &made in &all {
        let sig = sign(made, &key, TEXT);
        assert!(verifies(made, &public, TEXT, &sig), "{made:?} own check");
        for &other in &all {
            if other != made {
                assert!(
                    !verifies(other, &public, TEXT, &sig),
                    "a {made:?} signature verified as {other:?}"
                );
            }
        }
        // Nor as a raw signature over the message.
        if made != Kind::Note {
            assert!(public.verify_strict(TEXT, &sig).is_err(), "{made:?} is raw");
        }
    }
}

#[test]
fn the_signed_byte_strings_of_the_kinds_are_disjoint() {
    let key = KeyPair::from_seed(&[6; 32]).expect("key").public();
    for &a in &kinds() {
        let bytes = signed_bytes(a, &key, TEXT);
        match a {
            // `context ‖ 0x00 ‖ message` with NUL-free, prefix-free contexts: the first NUL
            // names the context, so two contexts never share a byte string, and none is a
            // note text or cosigned message (those hold no NUL).
            Kind::Protocol(c) => {
                let nul = bytes.iter().position(|&b| b == 0).expect("a NUL");
                assert_eq!(&bytes[..nul], c.as_str().as_bytes());
            }
            Kind::Note | Kind::Cosignature => assert!(!bytes.contains(&0)),
            // 64 bytes of keyed hash output: not a context string followed by NUL (checked
            // here for the sample; in general a 2^-192 event), not text.
            Kind::Archive => {
                assert_eq!(bytes.len(), 64);
                assert!(
                    Context::ALL
                        .iter()
                        .all(|c| !bytes.starts_with(c.as_str().as_bytes()))
                );
            }
        }
        for &b in &kinds() {
            if a != b {
                assert_ne!(
                    bytes,
                    signed_bytes(b, &key, TEXT),
                    "{a:?} and {b:?} sign alike"
                );
            }
        }
    }
    // A cosigned message never reads as a checkpoint text (the only texts the channel's signer
    // signs raw): even under a channel named "cosignature/v1", its second line is `time T`,
    // not a decimal size.
    let cosigned = signed_bytes(Kind::Cosignature, &key, TEXT);
    assert!(cosigned.starts_with(b"cosignature/v1\ntime "));
    let cosigned = std::str::from_utf8(&cosigned).expect("text");
    assert!(keyggdrasil::tlog_checkpoint::parse_text(cosigned).is_err());
}

/// BLAKE2b-256 (tree hashes) and BLAKE2b-512 (archive digests) are different functions, not
/// one cut short, and their hex forms are refused in each other's place.
#[test]
fn blake2b_256_and_512_are_not_confused() {
    use keyggdrasil::entry::Digest512;
    use keyggdrasil::merkle::{Blake2b256, TreeHasher};
    let (_, d512) = filesig::archive_digest(&b"abc"[..]).expect("digest");
    let leaf = Blake2b256.hash_leaf(b"abc");
    assert_ne!(&d512[..32], &leaf[..]);
    // BLAKE2b-256("") is not the first half of BLAKE2b-512("").
    let (_, empty512) = filesig::archive_digest(&b""[..]).expect("digest");
    let empty256 = keyggdrasil::log::LogView::empty().root();
    assert_ne!(&empty512[..32], &empty256[..]);
    assert!(
        Digest512::from_hex(&hex::encode(leaf)).is_err(),
        "32 bytes as a 512-bit digest"
    );
    let as_tree: Result<keyggdrasil::wire::TreeHash, _> =
        serde_json::from_str(&format!("\"{}\"", hex::encode(d512)));
    assert!(as_tree.is_err(), "64 bytes as a tree hash");
}
