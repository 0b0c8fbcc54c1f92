//! Ed25519 keys and signatures with strict verification.
//!
//! [`PublicKey`] can only hold a canonical, full-order-safe encoding: weak (small-order) keys and
//! non-canonical point encodings are refused when a key is parsed, so they can never be
//! registered in the log. Every verification uses `verify_strict`, which also refuses
//! non-canonical signature scalars and small-order `R` values. There is no non-strict path.
//!
//! [`KeyPair`] holds the secret; it has no `Debug`, `Display` or serde implementation, and the
//! underlying `ed25519_dalek::SigningKey` zeroizes itself on drop. The raw seed is only available
//! through [`KeyPair::seed`] as a zeroizing copy, for key files and backup shares.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::encoding::{self, HexError};

/// Why a key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text was not canonical hex of the right length.
    #[error(transparent)]
    Hex(#[from] HexError),
    /// The 32 bytes do not decode to a point on the curve.
    #[error("not a valid Ed25519 public key: the bytes do not encode a curve point")]
    NotAPoint,
    /// The point is encoded in a non-canonical way.
    #[error("not a valid Ed25519 public key: non-canonical point encoding")]
    NonCanonical,
    /// The key is of small order, so signatures under it prove nothing.
    #[error("refused weak Ed25519 public key (small-order point)")]
    Weak,
}

/// Why a signature did not verify. Deliberately carries no detail an attacker could use as an
/// oracle; the caller knows what was being verified and says so in its own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("signature verification failed")]
pub struct BadSignature;

/// A validated Ed25519 public key (32 bytes, canonical, not of small order).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Parses and validates 32 bytes as a public key.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let vk = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::NotAPoint)?;
        if vk.is_weak() {
            return Err(KeyError::Weak);
        }
        // For a point that decompressed and is not of small order, the encoding is canonical
        // exactly when y is reduced (see `y_is_non_canonical`): the same answer as comparing
        // `compress(decompress(bytes))` with the bytes, without the field inversion that
        // compressing costs (keys are parsed with every log entry).
        if y_is_non_canonical(bytes) {
            return Err(KeyError::NonCanonical);
        }
        Ok(Self(*bytes))
    }

    /// Parses a public key from 64 lowercase hex characters.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        Self::from_bytes(&encoding::from_hex_array::<32>(
            text,
            "an Ed25519 public key",
        )?)
    }

    /// The 32 key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex of the key bytes; this is also the key's identifier in the log.
    pub fn to_hex(&self) -> String {
        encoding::to_hex(&self.0)
    }

    /// A short fingerprint for people to compare by eye: the first 8 bytes of BLAKE2b-256 over the
    /// key, as four groups of four hex digits. Not a substitute for comparing the whole key where
    /// a program can.
    pub fn fingerprint(&self) -> String {
        let h = blake2b_simd::Params::new()
            .hash_length(32)
            .personal(b"kg-fingerprint")
            .hash(&self.0);
        let hex = encoding::to_hex(&h.as_bytes()[..8]);
        format!(
            "{}-{}-{}-{}",
            &hex[0..4],
            &hex[4..8],
            &hex[8..12],
            &hex[12..16]
        )
    }

    /// Verifies `signature` over `message` with strict Ed25519 rules.
    ///
    /// This is raw Ed25519: protocol messages must go through [`crate::protocol::verify`], which
    /// adds the domain-separation context.
    pub fn verify_strict(&self, message: &[u8], signature: &Signature) -> Result<(), BadSignature> {
        let vk = VerifyingKey::from_bytes(&self.0).map_err(|_| BadSignature)?;
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        vk.verify_strict(message, &sig).map_err(|_| BadSignature)
    }

    pub(crate) fn verifying_key(&self) -> Result<VerifyingKey, BadSignature> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| BadSignature)
    }
}

/// A [`PublicKey`] kept decompressed, for a verifier that checks many signatures under one
/// key (the channel's `serve` checking its signer). The same strict rules as
/// [`PublicKey::verify_strict`]; it saves only the point decompression that each call of that
/// would repeat. It holds no secret.
#[derive(Clone)]
pub struct PreparedKey {
    key: PublicKey,
    vk: VerifyingKey,
}

impl PreparedKey {
    /// Decompresses `key` once. Cannot fail for a validated key; an error would mean the
    /// validation in [`PublicKey::from_bytes`] and here disagree.
    pub fn new(key: &PublicKey) -> Result<Self, BadSignature> {
        Ok(Self {
            key: *key,
            vk: key.verifying_key()?,
        })
    }

    /// The key this was prepared from.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// Verifies `signature` over `message` with strict Ed25519 rules (raw Ed25519, as
    /// [`PublicKey::verify_strict`]: protocol messages go through
    /// [`crate::protocol::verify_prepared`]).
    pub fn verify_strict(&self, message: &[u8], signature: &Signature) -> Result<(), BadSignature> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.vk
            .verify_strict(message, &sig)
            .map_err(|_| BadSignature)
    }
}

impl fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PreparedKey({})", self.key.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}
impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// A 64-byte Ed25519 signature. Parsing checks only the encoding; validity is decided by
/// verification.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 64]);

impl Signature {
    /// Wraps 64 signature bytes.
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }
    /// Parses a signature from 128 lowercase hex characters.
    pub fn from_hex(text: &str) -> Result<Self, HexError> {
        Ok(Self(encoding::from_hex_array::<64>(
            text,
            "an Ed25519 signature",
        )?))
    }
    /// The 64 signature bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
    /// Lowercase hex of the signature.
    pub fn to_hex(&self) -> String {
        encoding::to_hex(&self.0)
    }
}
impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_hex())
    }
}
impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}
impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// An Ed25519 key pair. Holds secret material: no `Debug`, no serde, zeroized on drop.
pub struct KeyPair {
    secret: SigningKey,
    public: PublicKey,
}

impl KeyPair {
    /// Generates a fresh key pair from the operating system's CSPRNG.
    ///
    /// Retries in the (astronomically unlikely) case that the public key is refused as weak.
    pub fn generate() -> Self {
        loop {
            let seed = crate::os::random::secret_bytes::<32>();
            if let Ok(kp) = Self::from_seed(&seed) {
                return kp;
            }
        }
    }

    /// Builds the key pair whose RFC 8032 seed (the 32-byte "secret key") is `seed`.
    ///
    /// Fails only if the resulting public key would be refused by [`PublicKey::from_bytes`],
    /// which for a hash-derived key does not happen in practice.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, KeyError> {
        let secret = SigningKey::from_bytes(seed);
        let public = PublicKey::from_bytes(secret.verifying_key().as_bytes())?;
        Ok(Self { secret, public })
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// A zeroizing copy of the 32-byte seed, for writing key files and backup shares only.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// Raw Ed25519 signature over `message`.
    ///
    /// Protocol messages must use [`crate::protocol::sign`] (domain-separated); archive
    /// signatures use [`crate::filesig`]. This is the primitive both are built on.
    pub fn sign_raw(&self, message: &[u8]) -> Signature {
        Signature(self.secret.sign(message).to_bytes())
    }
}

/// Verifies many (message, signature, key) triples at once with Ed25519 batch verification.
///
/// Returns `Ok(())` only if every signature is valid. Batch verification checks a random linear
/// combination of the verification equations, so it is not bit-for-bit the same decision as
/// [`PublicKey::verify_strict`] for adversarially crafted signatures with small-order components
/// in `R`; to stay on the strict side, a signature whose `R` is of small order or non-canonical
/// is refused up front (keys are already full-order-safe by construction of [`PublicKey`]). The
/// log's key state machine always uses strict single verification; use this for bulk checks
/// (auditing a whole log), where a failure is then re-checked one by one to find the culprit.
pub fn verify_batch(
    messages: &[&[u8]],
    signatures: &[Signature],
    keys: &[PublicKey],
) -> Result<(), BadSignature> {
    if messages.len() != signatures.len() || messages.len() != keys.len() {
        return Err(BadSignature);
    }
    let mut sigs = Vec::with_capacity(signatures.len());
    let mut vks = Vec::with_capacity(keys.len());
    // A log's entries come from few keys: decompress each distinct key once per batch.
    let mut known: Vec<(&PublicKey, VerifyingKey)> = Vec::new();
    for (sig, key) in signatures.iter().zip(keys) {
        let mut r = [0u8; 32];
        r.copy_from_slice(&sig.0[..32]);
        // Without decompressing R (the batch does, once): a point of small order has one of
        // the 8 torsion points' y coordinates, or a non-canonical y; an R that does not
        // decompress at all makes the batch fail.
        if has_small_order_y(&r) || y_is_non_canonical(&r) {
            return Err(BadSignature);
        }
        sigs.push(ed25519_dalek::Signature::from_bytes(&sig.0));
        let vk = match known.iter().find(|(k, _)| *k == key) {
            Some((_, vk)) => *vk,
            None => {
                let vk = key.verifying_key()?;
                known.push((key, vk));
                vk
            }
        };
        vks.push(vk);
    }
    ed25519_dalek::verify_batch(messages, &sigs, &vks).map_err(|_| BadSignature)
}

/// Whether `r`, its sign bit ignored, is the y coordinate of a point of small order: one of
/// the encodings of the eight torsion points (computed from curve25519-dalek's own table, not
/// typed in). With [`y_is_non_canonical`] this refuses exactly the `R` values that decompress
/// to a small-order point, without the cost of decompressing (see the test).
fn has_small_order_y(r: &[u8; 32]) -> bool {
    static YS: std::sync::OnceLock<Vec<[u8; 32]>> = std::sync::OnceLock::new();
    let ys = YS.get_or_init(|| {
        let mut ys: Vec<[u8; 32]> = curve25519_dalek::constants::EIGHT_TORSION
            .iter()
            .map(|p| {
                let mut y = p.compress().to_bytes();
                y[31] &= 0x7f;
                y
            })
            .collect();
        ys.sort_unstable();
        ys.dedup();
        ys
    });
    let mut y = *r;
    y[31] &= 0x7f;
    ys.contains(&y)
}

#[cfg(test)]
fn curve25519_r_point(r: &[u8; 32]) -> Option<curve25519_dalek::EdwardsPoint> {
    curve25519_dalek::edwards::CompressedEdwardsY(*r).decompress()
}

/// Whether the y coordinate of a compressed Edwards point (the low 255 bits, sign bit masked) is
/// not reduced, i.e. `y >= p = 2^255 - 19` (little-endian `ed ff .. ff 7f`).
///
/// For a point that decompresses and is not of small order this is exactly "`compress(decompress(r))
/// != r`": decompression reduces y mod p and keeps the sign bit, and the sign bit can only be lost
/// when x = 0, i.e. y = ±1, which are small-order points. It avoids the field inversion of
/// `compress()` (about 4 µs per signature, a third of the batch cost per signature).
fn y_is_non_canonical(r: &[u8; 32]) -> bool {
    r[31] & 0x7f == 0x7f && r[1..31].iter().all(|&b| b == 0xff) && r[0] >= 0xed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let kp = KeyPair::generate();
        let sig = kp.sign_raw(b"hello");
        kp.public().verify_strict(b"hello", &sig).unwrap();
        assert_eq!(kp.public().verify_strict(b"hellO", &sig), Err(BadSignature));
        let other = KeyPair::generate();
        assert_eq!(
            other.public().verify_strict(b"hello", &sig),
            Err(BadSignature)
        );
    }

    #[test]
    fn seed_round_trip_and_rfc8032_vector() {
        // RFC 8032 §7.1 test 1.
        let seed = encoding::from_hex_array::<32>(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "seed",
        )
        .unwrap();
        let kp = KeyPair::from_seed(&seed).unwrap();
        assert_eq!(
            kp.public().to_hex(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            kp.sign_raw(b"").to_hex(),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert_eq!(*kp.seed(), seed);
    }

    #[test]
    fn refuses_weak_and_invalid_keys() {
        // The identity point (small order).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(PublicKey::from_bytes(&identity), Err(KeyError::Weak));
        // All zeros is a point of order 4 (small order).
        assert_eq!(PublicKey::from_bytes(&[0u8; 32]), Err(KeyError::Weak));
        // Non-canonical encoding of the identity: y = p + 1.
        let mut noncanon = [0xffu8; 32];
        noncanon[0] = 0xee;
        noncanon[31] = 0x7f;
        assert!(PublicKey::from_bytes(&noncanon).is_err());
        // A y with no matching x: find one by search to keep the test self-contained.
        let not_point = (2u8..=255)
            .map(|b| {
                let mut k = [0u8; 32];
                k[0] = b;
                k
            })
            .find(|k| VerifyingKey::from_bytes(k).is_err())
            .unwrap();
        assert_eq!(PublicKey::from_bytes(&not_point), Err(KeyError::NotAPoint));
    }

    #[test]
    fn refuses_non_canonical_signature_scalar() {
        let kp = KeyPair::generate();
        let sig = kp.sign_raw(b"m");
        // Add the group order L to s: same signature mathematically, non-canonical encoding.
        let l: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut bytes = *sig.as_bytes();
        let mut carry = 0u16;
        for i in 0..32 {
            let v = bytes[32 + i] as u16 + l[i] as u16 + carry;
            bytes[32 + i] = v as u8;
            carry = v >> 8;
        }
        let malleated = Signature::from_bytes(bytes);
        assert_eq!(
            kp.public().verify_strict(b"m", &malleated),
            Err(BadSignature)
        );
        let prepared = PreparedKey::new(&kp.public()).unwrap();
        assert_eq!(prepared.verify_strict(b"m", &malleated), Err(BadSignature));
    }

    #[test]
    fn prepared_key_agrees_with_the_public_key() {
        let kp = KeyPair::generate();
        let other = KeyPair::generate();
        let prepared = PreparedKey::new(&kp.public()).unwrap();
        assert_eq!(prepared.public_key(), &kp.public());
        let sig = kp.sign_raw(b"m");
        let mut flipped = *sig.as_bytes();
        flipped[5] ^= 1;
        let cases = [
            (b"m".as_slice(), sig),
            (b"n".as_slice(), sig),
            (b"m".as_slice(), other.sign_raw(b"m")),
            (b"m".as_slice(), Signature::from_bytes(flipped)),
            (b"m".as_slice(), Signature::from_bytes([0; 64])),
        ];
        for (i, (msg, sig)) in cases.iter().enumerate() {
            assert_eq!(
                prepared.verify_strict(msg, sig),
                kp.public().verify_strict(msg, sig),
                "case {i}"
            );
        }
        assert!(prepared.verify_strict(b"m", &sig).is_ok());
        assert!(format!("{prepared:?}").contains(&kp.public().to_hex()));
    }

    #[test]
    fn batch_verification() {
        let kps: Vec<KeyPair> = (0..8).map(|_| KeyPair::generate()).collect();
        let msgs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 10]).collect();
        let sigs: Vec<Signature> = kps.iter().zip(&msgs).map(|(k, m)| k.sign_raw(m)).collect();
        let keys: Vec<PublicKey> = kps.iter().map(|k| k.public()).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        verify_batch(&refs, &sigs, &keys).unwrap();
        let mut bad = sigs.clone();
        bad[3] = sigs[4];
        assert_eq!(verify_batch(&refs, &bad, &keys), Err(BadSignature));
        assert_eq!(verify_batch(&refs[..7], &sigs, &keys), Err(BadSignature));
    }

    #[test]
    fn canonical_y_check_equals_compress_round_trip() {
        use curve25519_dalek::edwards::CompressedEdwardsY;
        // The check verify_batch used before: refuse small order, or non-canonical encoding.
        let old = |r: &[u8; 32]| {
            CompressedEdwardsY(*r)
                .decompress()
                .map(|p| p.is_small_order() || p.compress().to_bytes() != *r)
        };
        let new = |r: &[u8; 32]| {
            curve25519_r_point(r).map(|p| p.is_small_order() || y_is_non_canonical(r))
        };
        let mut cases: Vec<[u8; 32]> = Vec::new();
        // y = 0..64 and y = p-64 .. 2^255-1 (covers every non-canonical y), both sign bits.
        let p_minus = |k: u8| {
            let mut y = [0xffu8; 32];
            y[31] = 0x7f;
            y[0] = 0xed - k;
            y
        };
        for k in 0..64u8 {
            let mut y = [0u8; 32];
            y[0] = k;
            cases.push(y);
            cases.push(p_minus(k));
        }
        for k in 0..19u8 {
            let mut y = [0xffu8; 32];
            y[31] = 0x7f;
            y[0] = 0xed + k;
            cases.push(y);
        }
        // Real signature R values, and random 32-byte strings.
        let kp = KeyPair::generate();
        for i in 0..200u32 {
            let mut r = [0u8; 32];
            r.copy_from_slice(&kp.sign_raw(&i.to_le_bytes()).as_bytes()[..32]);
            cases.push(r);
            cases.push(crate::os::random::bytes::<32>());
        }
        let with_sign: Vec<[u8; 32]> = cases
            .iter()
            .map(|c| {
                let mut s = *c;
                s[31] ^= 0x80;
                s
            })
            .collect();
        cases.extend(with_sign);
        let mut seen_non_canonical = 0;
        // The undecompressed check verify_batch makes now agrees wherever R decompresses
        // (where it does not, the batch itself fails).
        let cheap = |r: &[u8; 32]| has_small_order_y(r) || y_is_non_canonical(r);
        let mut small_seen = 0;
        for p in curve25519_dalek::constants::EIGHT_TORSION.iter() {
            for sign in [0u8, 0x80] {
                let mut r = p.compress().to_bytes();
                r[31] = (r[31] & 0x7f) | sign;
                cases.push(r);
            }
        }
        for r in &cases {
            if let Some(refused) = old(r) {
                assert_eq!(refused, cheap(r), "r = {}", encoding::to_hex(r));
                if curve25519_r_point(r).is_some_and(|p| p.is_small_order()) {
                    small_seen += 1;
                }
            }
        }
        assert!(small_seen >= 8, "{small_seen}");
        for r in &cases {
            assert_eq!(old(r), new(r), "r = {}", encoding::to_hex(r));
            let full_order = curve25519_r_point(r).is_some_and(|p| !p.is_small_order());
            if full_order && y_is_non_canonical(r) {
                seen_non_canonical += 1;
            }
        }
        // The interesting case: a decodable, full-order point with a non-canonical encoding.
        assert!(seen_non_canonical > 0);
    }

    #[test]
    fn key_validation_without_compress_equals_the_round_trip() {
        // The check from_bytes made before: decompress, compare the re-compressed bytes, refuse
        // weak points.
        let old = |b: &[u8; 32]| {
            VerifyingKey::from_bytes(b)
                .ok()
                .filter(|vk| vk.to_edwards().compress().to_bytes() == *b && !vk.is_weak())
                .is_some()
        };
        let mut cases: Vec<[u8; 32]> = Vec::new();
        for k in 0..64u8 {
            let mut y = [0u8; 32];
            y[0] = k;
            cases.push(y);
            let mut y = [0xffu8; 32];
            y[31] = 0x7f;
            y[0] = 0xed_u8.wrapping_sub(k);
            cases.push(y);
        }
        for k in 0..19u8 {
            let mut y = [0xffu8; 32];
            y[31] = 0x7f;
            y[0] = 0xed + k;
            cases.push(y);
        }
        for p in curve25519_dalek::constants::EIGHT_TORSION.iter() {
            cases.push(p.compress().to_bytes());
        }
        for _ in 0..300 {
            cases.push(KeyPair::generate().public().0);
            cases.push(crate::os::random::bytes::<32>());
        }
        let flipped: Vec<[u8; 32]> = cases
            .iter()
            .map(|c| {
                let mut s = *c;
                s[31] ^= 0x80;
                s
            })
            .collect();
        cases.extend(flipped);
        let mut accepted = 0;
        for b in &cases {
            let new = PublicKey::from_bytes(b).is_ok();
            assert_eq!(old(b), new, "key {}", encoding::to_hex(b));
            accepted += usize::from(new);
        }
        assert!(accepted >= 300);
    }

    #[test]
    fn fingerprint_shape() {
        let fp = KeyPair::generate().public().fingerprint();
        assert_eq!(fp.len(), 19);
        assert_eq!(fp.matches('-').count(), 3);
    }
}
