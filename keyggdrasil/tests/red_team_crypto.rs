//! Red-team pass of the crypto use (issue 19): signatures made to pass a lax Ed25519 verifier,
//! signed timestamps at and past the edges of the window, BLAKE2b-256/512 and keyed/unkeyed
//! digests in each other's place, and secrets in `Debug` output. Each test asserts the exact
//! outcome; the write-up is the "Crypto use" section of docs/security-review.md. Domain
//! separation between the signed kinds is `domain_separation.rs`, not repeated here.

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use keyggdrasil::entry::{Digest512, Entry, EntryBody, Event};
use keyggdrasil::filesig;
use keyggdrasil::keys::{KeyPair, PublicKey, Signature, verify_batch};
use keyggdrasil::limits::Limits;
use keyggdrasil::merkle::{Blake2b256, InclusionProof, TreeHasher, verify_inclusion};
use keyggdrasil::protocol::{self, Context};
use keyggdrasil::wire::{self, Misbehavior, WireError};
use sha2::{Digest, Sha512};

/// The group order L, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The secret scalar of `seed` (RFC 8032 §5.1.5: SHA-512, clamped lower half).
fn secret_scalar(seed: &[u8; 32]) -> Scalar {
    let h = Sha512::digest(seed);
    let mut a = [0u8; 32];
    a.copy_from_slice(&h[..32]);
    a[0] &= 248;
    a[31] &= 127;
    a[31] |= 64;
    Scalar::from_bytes_mod_order(a)
}

/// `k = SHA-512(R ‖ A ‖ M) mod L`.
fn challenge(r: &[u8; 32], a: &[u8; 32], m: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(m);
    let out: [u8; 64] = h.finalize().into();
    Scalar::from_bytes_mod_order_wide(&out)
}

/// A signature by the holder of `seed` over `m` whose `R` carries the torsion point `t`:
/// `R = [r]B + T`, `S = r + k·a`. It satisfies the cofactored equation `[8]([S]B − [k]A − R) = 0`
/// (what libsodium before 1.0.16, noble's `verify` and ZIP-215 verifiers accept), not the
/// cofactorless one `verify_strict` checks.
fn torsion_signature(seed: &[u8; 32], nonce: u64, t: usize, m: &[u8]) -> Signature {
    let a = secret_scalar(seed);
    let public = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
    let r = Scalar::from(nonce + 1) * Scalar::from(0x9e37_79b9_7f4a_7c15u64);
    let big_r = (ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[t])
        .compress()
        .to_bytes();
    let k = challenge(&big_r, &public, m);
    let s = r + k * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&big_r);
    sig[32..].copy_from_slice(s.as_bytes());
    Signature::from_bytes(sig)
}

/// `s + L` as 32 little-endian bytes (no overflow for the s of a real signature, s < L).
fn plus_l(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(s[i]) + u16::from(L[i]) + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    out
}

const SEED: [u8; 32] = [9; 32];

/// Attempt C1: a torsion-`R` signature (valid under the cofactored equation) is refused by
/// every strict path: raw `verify_strict`, protocol messages, archive signatures, entries.
#[test]
fn torsion_r_signatures_are_refused_by_every_strict_check() {
    let key = KeyPair::from_seed(&SEED).unwrap();
    let public = key.public();
    let message = b"any message";
    for t in 1..8 {
        let sig = torsion_signature(&SEED, 0, t, message);
        assert!(public.verify_strict(message, &sig).is_err(), "torsion {t}");
        // Its cofactored check does hold: it is a real "lax verifier" signature.
        let r = CompressedEdwardsY(sig.as_bytes()[..32].try_into().unwrap())
            .decompress()
            .unwrap();
        let s = Scalar::from_canonical_bytes(sig.as_bytes()[32..].try_into().unwrap()).unwrap();
        let a = CompressedEdwardsY(*public.as_bytes()).decompress().unwrap();
        let k = challenge(&r.compress().to_bytes(), public.as_bytes(), message);
        assert!(
            (ED25519_BASEPOINT_POINT * s - a * k - r)
                .mul_by_cofactor()
                .is_identity()
        );
        // As a protocol message and as an archive signature.
        let signed = protocol::signed_bytes(Context::ChannelUpdate, message);
        let psig = torsion_signature(&SEED, 0, t, &signed);
        assert!(protocol::verify(&public, Context::ChannelUpdate, message, &psig).is_err());
        let digest = filesig::keyed_digest(&public, &message[..]).unwrap();
        let fsig = torsion_signature(&SEED, 0, t, &digest);
        assert!(filesig::verify(&public, &fsig, &message[..]).is_err());
    }
}

/// An entry signed by `key` with the torsion signature of nonce `nonce` instead of its own.
fn torsion_entry(key: &KeyPair, nonce: u64) -> Entry {
    let body = EntryBody::new(
        keyggdrasil::names::SupplierName::parse("acme").unwrap(),
        key.public(),
        Event::MasterKey {
            public_key: key.public(),
            derivation: None,
        },
    );
    let honest = Entry::sign(body, key).unwrap();
    let signed = protocol::signed_bytes(honest.body().event.context(), honest.body_bytes());
    let sig = torsion_signature(&SEED, nonce, 1, &signed);
    let mut bytes = honest.body_bytes().to_vec();
    bytes.push(b'\n');
    bytes.extend_from_slice(sig.to_hex().as_bytes());
    Entry::parse(&bytes).unwrap()
}

/// Attempt C2 (docs/decisions.md 60, pinned): batch verification is not the strict rule for a
/// torsion-`R` signature. Its random coefficients are derived from the batch's contents, so the
/// signer can grind nonces until a batch of one accepts (about one in eight). Such a signature
/// passes `entry::check_all` (the sites' batched path) while `Entry::into_checked` (the
/// channel's and `continuum check`'s strict path) refuses it. Only the key's holder can make
/// one, and the channel refuses it at submission; this test notices if that trade changes.
#[test]
fn batch_verification_accepts_a_ground_torsion_signature_the_strict_rule_refuses() {
    let key = KeyPair::from_seed(&SEED).unwrap();
    let mut accepted = None;
    for nonce in 0..200 {
        let e = torsion_entry(&key, nonce);
        assert!(!e.signature_is_valid(), "nonce {nonce}: strict must refuse");
        if keyggdrasil::entry::check_all(std::slice::from_ref(&e)).is_ok() {
            accepted = Some((nonce, e));
            break;
        }
    }
    let (nonce, e) = accepted.expect("some nonce below 200 passes a batch of one");
    // Deterministic: the same entry is accepted again (no fresh randomness in the batch).
    assert!(keyggdrasil::entry::check_all(std::slice::from_ref(&e)).is_ok());
    assert!(e.clone().into_checked().is_err(), "nonce {nonce}");
    let signed = protocol::signed_bytes(e.body().event.context(), e.body_bytes());
    assert!(
        e.body()
            .signer
            .verify_strict(&signed, e.signature())
            .is_err()
    );
    assert!(verify_batch(&[&signed], &[*e.signature()], &[e.body().signer]).is_ok());
}

/// Attempt C3: non-canonical `S` (`S + L`, and `S` with the top bits set) and small-order `R`
/// (each of the eight torsion points, with any `S`) are refused by the strict and the batch
/// checks alike.
#[test]
fn non_canonical_s_and_small_order_r_are_refused_strictly_and_in_batches() {
    let key = KeyPair::from_seed(&SEED).unwrap();
    let public = key.public();
    let m = b"m";
    let good = key.sign_raw(m);
    assert!(public.verify_strict(m, &good).is_ok());
    assert!(verify_batch(&[m], &[good], &[public]).is_ok());
    let mut high = *good.as_bytes();
    high[63] |= 0xe0;
    let mut bad_s = *good.as_bytes();
    bad_s[32..].copy_from_slice(&plus_l(&good.as_bytes()[32..]));
    for (what, sig) in [("S + L", bad_s), ("S with high bits", high)] {
        let sig = Signature::from_bytes(sig);
        assert!(public.verify_strict(m, &sig).is_err(), "{what}");
        assert!(verify_batch(&[m], &[sig], &[public]).is_err(), "{what}");
    }
    for t in EIGHT_TORSION.iter() {
        let r = t.compress().to_bytes();
        for s in [[0u8; 32], *Scalar::from(7u64).as_bytes()] {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&r);
            sig[32..].copy_from_slice(&s);
            let sig = Signature::from_bytes(sig);
            assert!(public.verify_strict(m, &sig).is_err());
            assert!(verify_batch(&[m], &[sig], &[public]).is_err());
        }
    }
    // Non-canonical encodings of R (y + p, for the few y < 19 that have one), whatever point
    // they decode to: strict compares the bytes of R, so none verifies.
    for y in 0u8..19 {
        let mut r = [0xffu8; 32];
        r[0] = 0xed + y;
        r[31] = 0x7f;
        let mut sig = *good.as_bytes();
        sig[..32].copy_from_slice(&r);
        let sig = Signature::from_bytes(sig);
        assert!(public.verify_strict(m, &sig).is_err(), "y = {y} + p");
        assert!(
            verify_batch(&[m], &[sig], &[public]).is_err(),
            "y = {y} + p"
        );
    }
}

/// Attempt C4: keys. Small-order and non-canonical keys are refused at parsing (unit test
/// `keys::refuses_weak_and_invalid_keys`); a *mixed-order* key (a full-order key plus a torsion
/// point) is a valid key by the strict rules (ed25519-dalek's `verify_strict` refuses only
/// small-order keys) and is accepted. Its holder's signatures verify only for about one message
/// in eight, and a non-holder cannot sign under it: it is the holder's own problem, recorded.
#[test]
fn mixed_order_keys_are_accepted_and_do_not_verify_the_honest_keys_signatures() {
    let key = KeyPair::from_seed(&SEED).unwrap();
    let a = CompressedEdwardsY(*key.public().as_bytes())
        .decompress()
        .unwrap();
    let mixed = (a + EIGHT_TORSION[1]).compress().to_bytes();
    let mixed = PublicKey::from_bytes(&mixed).expect("a mixed-order key parses");
    let sig = key.sign_raw(b"m");
    assert!(mixed.verify_strict(b"m", &sig).is_err());
    for t in EIGHT_TORSION.iter() {
        assert!(PublicKey::from_bytes(&t.compress().to_bytes()).is_err());
    }
}

/// Attempt C5: every Ed25519 call goes through `keyggdrasil::keys` (strict single verification
/// and the filtered batch), nowhere else: no crate of the workspace names ed25519-dalek's
/// `Verifier` trait or its non-strict `verify`, or uses ed25519-dalek at all outside `keys.rs`.
#[test]
fn no_call_site_outside_keys_rs_uses_ed25519_dalek() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in [
        "keyggdrasil",
        "barge",
        "hangar",
        "shipyard",
        "channel-server",
        "continuum",
        "quickstart",
        "tests",
    ] {
        rust_files(&root.join(krate), &mut files);
    }
    assert!(files.len() > 100, "{}", files.len());
    let mut found = Vec::new();
    for f in &files {
        if f.ends_with("keyggdrasil/tests/red_team_crypto.rs") {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let allowed = f.ends_with("keyggdrasil/src/keys.rs");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let bad = (!allowed && code.contains("ed25519_dalek"))
                || code.contains("Verifier as")
                || code.contains("use ed25519_dalek::Verifier")
                || code.contains("verify_prehashed")
                || code.contains("legacy_compatibility");
            if bad {
                found.push(format!("{}:{}: {line}", f.display(), n + 1));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
    // keys.rs itself calls only verify_strict and verify_batch.
    let keys = std::fs::read_to_string(root.join("keyggdrasil/src/keys.rs")).unwrap();
    let calls: Vec<&str> = keys
        .lines()
        .filter(|l| l.contains(".verify(") || l.contains("::verify("))
        .collect();
    assert!(calls.is_empty(), "{calls:?}");
    // No lax-verification feature of ed25519-dalek is switched on.
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let dalek = manifest
        .lines()
        .find(|l| l.starts_with("ed25519-dalek"))
        .unwrap();
    assert!(!dalek.contains("legacy_compatibility"), "{dalek}");
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd {
        let path = entry.unwrap().path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "target" && name != "node_modules" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// Attempt C6: the signed-time window every nonce-bound answer goes through (`wire::check_time`:
/// channel update answers, notary answers, batched freshness answers; `check_fresh` of
/// checkpoints). Exactly `max_response_age_secs` (86 400) old is accepted, one second more is
/// `Stale`; exactly `max_clock_skew_secs` (300) ahead is accepted, one more is `FromTheFuture`;
/// the extremes of u64 saturate instead of wrapping.
#[test]
fn the_signed_time_window_is_exact_at_both_edges_and_saturates() {
    let l = Limits::default();
    assert_eq!(
        (l.max_response_age_secs, l.max_clock_skew_secs),
        (86_400, 300)
    );
    let now = 1_800_000_000u64;
    let stale = |e: WireError| matches!(e, WireError::Misbehaved(Misbehavior::Stale { .. }));
    let future =
        |e: WireError| matches!(e, WireError::Misbehaved(Misbehavior::FromTheFuture { .. }));
    assert!(wire::check_time(now, now, &l).is_ok());
    assert!(wire::check_time(now - 86_400, now, &l).is_ok());
    assert!(stale(wire::check_time(now - 86_401, now, &l).unwrap_err()));
    assert!(wire::check_time(now + 300, now, &l).is_ok());
    assert!(future(wire::check_time(now + 301, now, &l).unwrap_err()));
    // A far-future time does not wrap into the window; a clock at 0 or at the end does not
    // make everything fresh.
    assert!(future(wire::check_time(u64::MAX, now, &l).unwrap_err()));
    assert!(future(wire::check_time(u64::MAX, 0, &l).unwrap_err()));
    assert!(stale(wire::check_time(0, u64::MAX, &l).unwrap_err()));
    assert!(wire::check_time(u64::MAX, u64::MAX, &l).is_ok());
    assert!(wire::check_time(0, 0, &l).is_ok());
    assert!(future(wire::check_time(301, 0, &l).unwrap_err()));
}

/// Attempts C11–C14: BLAKE2b-512 and -256, keyed and unkeyed, in each other's place. Beyond
/// `domain_separation.rs::blake2b_256_and_512_are_not_confused`: an archive signature over the
/// *unkeyed* archive digest (the one in release entries), or keyed with another key, does not
/// verify as the archive signature; hex of a digest one character short or long, or in
/// uppercase, is refused; a node's two children presented as one 64-byte leaf do not prove
/// inclusion (the 0x00/0x01 prefixes); the fingerprint hash is not the tree's leaf hash.
#[test]
fn digests_of_one_kind_and_length_are_refused_as_another() {
    let key = KeyPair::from_seed(&SEED).unwrap();
    let other = KeyPair::from_seed(&[10; 32]).unwrap();
    let file = b"archive bytes";
    let (_, unkeyed) = filesig::archive_digest(&file[..]).unwrap();
    let keyed = filesig::keyed_digest(&key.public(), &file[..]).unwrap();
    let keyed_other = filesig::keyed_digest(&other.public(), &file[..]).unwrap();
    assert_ne!(unkeyed, keyed);
    assert_ne!(keyed, keyed_other);
    let good = filesig::sign(&key, &file[..]).unwrap();
    assert!(filesig::verify(&key.public(), &good, &file[..]).is_ok());
    for (what, digest) in [("unkeyed", unkeyed), ("keyed by another key", keyed_other)] {
        let sig = key.sign_raw(&digest);
        assert!(
            filesig::verify(&key.public(), &sig, &file[..]).is_err(),
            "{what}"
        );
    }
    // A signature over the 32-byte BLAKE2b-256 of the file is no archive signature either.
    let short = blake2b_simd::Params::new()
        .hash_length(32)
        .key(key.public().as_bytes())
        .hash(file);
    let sig = key.sign_raw(short.as_bytes());
    assert!(filesig::verify(&key.public(), &sig, &file[..]).is_err());

    // Hex lengths and case.
    let hex512 = hex::encode(unkeyed);
    assert!(Digest512::from_hex(&hex512).is_ok());
    for bad in [
        hex512[..127].to_owned(),
        format!("{hex512}0"),
        hex512[..126].to_owned(),
        format!("{hex512}00"),
        hex512.to_uppercase(),
        hex::encode(&unkeyed[..32]),
    ] {
        assert!(Digest512::from_hex(&bad).is_err(), "{} chars", bad.len());
    }
    let leaf = Blake2b256.hash_leaf(file);
    let hex256 = hex::encode(leaf);
    let tree = |s: &str| serde_json::from_str::<wire::TreeHash>(&format!("\"{s}\""));
    assert!(tree(&hex256).is_ok());
    for bad in [
        hex256[..63].to_owned(),
        format!("{hex256}0"),
        format!("{hex256}00"),
        hex256.to_uppercase(),
        hex512.clone(),
    ] {
        assert!(tree(&bad).is_err(), "{} chars", bad.len());
    }
    let sig_hex = good.to_hex();
    assert!(Signature::from_hex(&sig_hex[..126]).is_err());
    assert!(Signature::from_hex(&format!("{sig_hex}00")).is_err());
    assert!(PublicKey::from_hex(&key.public().to_hex()[..62]).is_err());
    assert!(PublicKey::from_hex(&hex512).is_err());

    // Second preimage through the prefixes: the root of the 2-leaf tree [a, b] is
    // H(0x01 ‖ leaf(a) ‖ leaf(b)); the 64 bytes leaf(a) ‖ leaf(b) as one entry hash differently.
    let (la, lb) = (Blake2b256.hash_leaf(b"a"), Blake2b256.hash_leaf(b"b"));
    let root = Blake2b256.hash_children(&la, &lb);
    let mut joined = la.to_vec();
    joined.extend_from_slice(&lb);
    let fake = Blake2b256.hash_leaf(&joined);
    assert_ne!(fake, root);
    let empty = InclusionProof::new(Vec::new()).unwrap();
    assert!(verify_inclusion(&Blake2b256, 0, 1, &fake, &empty, &root).is_err());
    let proof = InclusionProof::new(vec![lb]).unwrap();
    assert!(verify_inclusion(&Blake2b256, 0, 2, &la, &proof, &root).is_ok());

    // The fingerprint is a personalised BLAKE2b-256 of the key, not its leaf hash.
    let fp = key.public().fingerprint().replace('-', "");
    assert!(!hex::encode(Blake2b256.hash_leaf(key.public().as_bytes())).starts_with(&fp));
}

/// Attempt S5 (secrets in `Debug`): a key pair has no `Debug` at all (checked at compile
/// time below), the site secret, a plain stored seed and a locked box print `<redacted>`, and a
/// wrong-passphrase error names the recorded public key only.
#[test]
fn secrets_never_reach_debug_output() {
    // Compiles only while KeyPair does not implement Debug: with an impl, the two blanket impls
    // below both apply and `_` is ambiguous.
    trait AmbiguousIfDebug<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfDebug<()> for T {}
    #[allow(dead_code)]
    struct IsDebug;
    impl<T: ?Sized + std::fmt::Debug> AmbiguousIfDebug<IsDebug> for T {}
    <KeyPair as AmbiguousIfDebug<_>>::check();

    let seed = [0x5au8; 32];
    let seed_hex = hex::encode(seed);
    let secret = keyggdrasil::kdf::SiteSecret::from_bytes(zeroize::Zeroizing::new(seed));
    let text = format!("{secret:?}");
    assert_eq!(text, "SiteSecret(<redacted>)");
    let boxed = keyggdrasil::os::lockmem::LockedBox::new(seed);
    let text = format!("{boxed:?}");
    assert!(
        text.contains("<redacted>") && !text.contains("90"),
        "{text}"
    );

    let key = KeyPair::from_seed(&seed).unwrap();
    let file =
        keyggdrasil::keyfile::KeyFile::plain(keyggdrasil::keyfile::KeyRole::Signing, None, &key);
    let text = format!("{file:?}");
    assert!(!text.contains(&seed_hex), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
    let other = KeyPair::from_seed(&[1; 32]).unwrap();
    let e = keyggdrasil::keyfile::KeyFileError::WrongPassphrase(other.public());
    assert!(e.to_string().contains(&other.public().to_hex()));
}
