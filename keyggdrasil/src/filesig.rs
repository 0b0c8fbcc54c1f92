//! Archive (file) signatures, compatible with libsodium and Halite's `File::sign`.
//!
//! `digest = BLAKE2b-512(key = signer's 32-byte public key, message = file bytes)`, streamed in
//! fixed-size chunks so memory does not grow with the file; `signature = Ed25519(secret, digest)`
//! over the 64 raw digest bytes. The key must be exactly the 32-byte public key: an empty key
//! would silently equal an unkeyed hash, so the type system only lets a [`PublicKey`] in.
//!
//! The log's release entry also records an unkeyed BLAKE2b-512 [`archive_digest`] of the archive
//! (content address and download check), computed in the same pass by [`digest_both`].
//!
//! Signatures travel as 128 lowercase hex characters, nothing else (see [`crate::encoding`]).

use std::io::{self, Read};

use thiserror::Error;

use crate::keys::{KeyPair, PublicKey, Signature};

/// Bytes read per step. Large enough to keep BLAKE2b's SIMD path busy, small enough to be
/// irrelevant next to the process's other memory.
const CHUNK: usize = 256 * 1024;

/// Why a file signature check failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FileSigError {
    /// Reading the file failed.
    #[error("could not read the file to check its signature")]
    Io(#[source] io::Error),
    /// The signature does not match the file and key.
    #[error(
        "the file's signature does not verify with public key {0}: the file or signature was altered, or it was signed by another key"
    )]
    Mismatch(String),
}

/// Keyed BLAKE2b-512 of everything `reader` yields, keyed with `key` (Halite's
/// `File::checksum(file, publicKey, raw = true)`).
pub fn keyed_digest(key: &PublicKey, reader: impl Read) -> io::Result<[u8; 64]> {
    let mut state = blake2b_simd::Params::new()
        .hash_length(64)
        .key(key.as_bytes())
        .to_state();
    for_each_chunk(reader, |c| {
        state.update(c);
    })?;
    Ok(*state.finalize().as_array())
}

/// Unkeyed BLAKE2b-512 of everything `reader` yields, and the number of bytes read: the archive
/// digest and size recorded in the log.
pub fn archive_digest(reader: impl Read) -> io::Result<(u64, [u8; 64])> {
    let mut state = blake2b_simd::Params::new().hash_length(64).to_state();
    let mut size = 0u64;
    for_each_chunk(reader, |c| {
        state.update(c);
        size = size.saturating_add(c.len() as u64);
    })?;
    Ok((size, *state.finalize().as_array()))
}

/// Both digests in one pass: `(size, unkeyed archive digest, digest keyed with key)`.
pub fn digest_both(key: &PublicKey, reader: impl Read) -> io::Result<(u64, [u8; 64], [u8; 64])> {
    let mut plain = blake2b_simd::Params::new().hash_length(64).to_state();
    let mut keyed = blake2b_simd::Params::new()
        .hash_length(64)
        .key(key.as_bytes())
        .to_state();
    let mut size = 0u64;
    for_each_chunk(reader, |c| {
        plain.update(c);
        keyed.update(c);
        size = size.saturating_add(c.len() as u64);
    })?;
    Ok((
        size,
        *plain.finalize().as_array(),
        *keyed.finalize().as_array(),
    ))
}

/// Signs a file: keyed digest with the signer's own public key, then Ed25519 over the digest.
pub fn sign(keypair: &KeyPair, reader: impl Read) -> io::Result<Signature> {
    let digest = keyed_digest(&keypair.public(), reader)?;
    Ok(sign_digest(keypair, &digest))
}

/// Signs an already computed keyed digest (it must be keyed with `keypair`'s public key).
pub fn sign_digest(keypair: &KeyPair, keyed_digest: &[u8; 64]) -> Signature {
    keypair.sign_raw(keyed_digest)
}

/// Verifies a file signature (strict Ed25519 over the keyed digest).
pub fn verify(
    key: &PublicKey,
    signature: &Signature,
    reader: impl Read,
) -> Result<(), FileSigError> {
    let digest = keyed_digest(key, reader).map_err(FileSigError::Io)?;
    verify_digest(key, signature, &digest)
}

/// Verifies a signature over a keyed digest computed earlier (for example by [`digest_both`]).
pub fn verify_digest(
    key: &PublicKey,
    signature: &Signature,
    keyed_digest: &[u8; 64],
) -> Result<(), FileSigError> {
    key.verify_strict(keyed_digest, signature)
        .map_err(|_| FileSigError::Mismatch(key.to_hex()))
}

/// Parses the text of a signature file (as `barge sign` writes it): exactly 128 lowercase hex
/// characters, optionally followed by one `\n`. Anything else (base64, uppercase, a second line)
/// is refused with an error naming the expected form.
pub fn parse_signature_text(text: &str) -> Result<Signature, crate::encoding::HexError> {
    Signature::from_hex(text.strip_suffix('\n').unwrap_or(text))
}

/// The text of a signature file: the hex signature and one `\n`.
pub fn signature_text(signature: &Signature) -> String {
    format!("{}\n", signature.to_hex())
}

fn for_each_chunk(mut reader: impl Read, mut f: impl FnMut(&[u8])) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => f(buf.get(..n).unwrap_or(&[])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_tamper() {
        let kp = KeyPair::generate();
        let data = vec![42u8; 1_000_000];
        let sig = sign(&kp, &data[..]).unwrap();
        verify(&kp.public(), &sig, &data[..]).unwrap();
        let mut bad = data.clone();
        bad[999_999] ^= 1;
        assert!(matches!(
            verify(&kp.public(), &sig, &bad[..]),
            Err(FileSigError::Mismatch(_))
        ));
        assert!(verify(&KeyPair::generate().public(), &sig, &data[..]).is_err());
        // Truncated file.
        assert!(verify(&kp.public(), &sig, &data[..999_999]).is_err());
    }

    #[test]
    fn keyed_digest_is_keyed_with_public_key() {
        let kp = KeyPair::generate();
        let keyed = keyed_digest(&kp.public(), &b"abc"[..]).unwrap();
        let expect = blake2b_simd::Params::new()
            .hash_length(64)
            .key(kp.public().as_bytes())
            .hash(b"abc");
        assert_eq!(&keyed[..], expect.as_bytes());
        let (size, plain) = archive_digest(&b"abc"[..]).unwrap();
        assert_eq!(size, 3);
        assert_ne!(plain, keyed);
        // RFC 7693 appendix A: BLAKE2b-512("abc").
        assert_eq!(
            crate::encoding::to_hex(&plain),
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
        );
        let (s2, p2, k2) = digest_both(&kp.public(), &b"abc"[..]).unwrap();
        assert_eq!((s2, p2, k2), (3, plain, keyed));
    }

    #[test]
    fn signature_text_round_trip_and_refusals() {
        let sig = sign(&KeyPair::generate(), &b"x"[..]).unwrap();
        let text = signature_text(&sig);
        assert_eq!(parse_signature_text(&text).unwrap(), sig);
        assert_eq!(parse_signature_text(text.trim_end()).unwrap(), sig);
        assert!(parse_signature_text(&format!("{text}\n")).is_err());
        assert!(parse_signature_text(&text.to_uppercase()).is_err());
        // Base64url of the same bytes (Airship's other encoding) is refused, naming hex.
        let b64ish = "A".repeat(86);
        let e = parse_signature_text(&b64ish).unwrap_err().to_string();
        assert!(e.contains("lowercase hex"), "{e}");
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        // A reader that returns one byte at a time must give the same digest.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match (self.0.split_first(), buf.first_mut()) {
                    (Some((b, rest)), Some(slot)) => {
                        *slot = *b;
                        self.0 = rest;
                        Ok(1)
                    }
                    _ => Ok(0),
                }
            }
        }
        let kp = KeyPair::generate();
        let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        assert_eq!(
            keyed_digest(&kp.public(), Trickle(&data)).unwrap(),
            keyed_digest(&kp.public(), &data[..]).unwrap()
        );
    }
}
