//! The one check of archive bytes against what was logged (or signed) about them.
//!
//! Every party that holds archive bytes and a claim about them asks the same question: are these
//! exactly the bytes of that release? The site after a download, the channel on upload, barge
//! after a rebuild (`verify-build`) and before publishing a bundle, hangar before signing one.
//! The answer is decided here and nowhere else:
//!
//! 1. the byte count is the expected size: never more (reading stops one byte past the size, so
//!    a stream that does not end cannot hold us), never less;
//! 2. the unkeyed BLAKE2b-512 is the expected digest;
//! 3. the BLAKE2b-512 keyed with the signer's public key either carries the expected archive
//!    signature (Ed25519, strict), or, for a bundle that is not signed yet, equals the expected
//!    keyed digest.
//!
//! The checks run in one streamed pass ([`ArchiveVerifier`] for bytes pushed in chunks, as an
//! HTTP upload arrives; [`ExpectedArchive::check`] for a reader), so memory does not grow with
//! the archive. Success yields a [`CheckedArchive`], which only this module can make.
//!
//! What it does not do: decide whether the release may be installed (that is
//! [`crate::state::KeyState::installable`]), open files, or delete bytes that failed: the caller
//! owns the bytes and decides what to do with them.

use std::io::{self, Read};

use thiserror::Error;

use crate::encoding;
use crate::entry::Digest512;
use crate::keys::{PublicKey, Signature};

/// Bytes hashed per read step (as in [`crate::filesig`]).
const CHUNK: usize = 256 * 1024;

/// What proves the signer stands behind the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Proof {
    /// A logged release: Ed25519 over the keyed digest.
    Signature(Signature),
    /// A release request not signed yet (an air-gapped bundle): the keyed digest itself.
    KeyedDigest([u8; 64]),
}

/// What an archive must be: size, unkeyed digest, signer, and the signature (or keyed digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedArchive {
    size: u64,
    digest: Digest512,
    signer: PublicKey,
    proof: Proof,
}

impl ExpectedArchive {
    /// The archive of a logged release: `size` bytes with BLAKE2b-512 `digest`, whose keyed
    /// digest carries `signature` by `signer`.
    pub fn signed(size: u64, digest: Digest512, signer: PublicKey, signature: Signature) -> Self {
        Self {
            size,
            digest,
            signer,
            proof: Proof::Signature(signature),
        }
    }

    /// The archive of a release request that is not signed yet: its keyed digest (keyed with
    /// `signer`) must be `keyed_digest`. Used where a bundle names an archive before hangar signs.
    pub fn keyed(size: u64, digest: Digest512, signer: PublicKey, keyed_digest: [u8; 64]) -> Self {
        Self {
            size,
            digest,
            signer,
            proof: Proof::KeyedDigest(keyed_digest),
        }
    }

    /// The expected size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The expected unkeyed BLAKE2b-512.
    pub fn digest(&self) -> &Digest512 {
        &self.digest
    }

    /// The key the archive is (to be) signed by.
    pub fn signer(&self) -> &PublicKey {
        &self.signer
    }

    /// A verifier to push the bytes into, chunk by chunk.
    pub fn verifier(&self) -> ArchiveVerifier {
        ArchiveVerifier {
            expected: self.clone(),
            received: 0,
            plain: blake2b_simd::Params::new().hash_length(64).to_state(),
            keyed: blake2b_simd::Params::new()
                .hash_length(64)
                .key(self.signer.as_bytes())
                .to_state(),
        }
    }

    /// Reads `reader` to its end (but never more than one byte past the expected size) and
    /// checks everything. A read error is [`ArchiveMismatch::Io`]; the reader is not rewound.
    pub fn check(&self, mut reader: impl Read) -> Result<CheckedArchive, ArchiveMismatch> {
        let mut v = self.verifier();
        let mut buf = vec![0u8; CHUNK];
        loop {
            // One byte past the size is enough to know the stream is too long.
            let room = v.remaining().saturating_add(1).min(CHUNK as u64) as usize;
            let n = match reader.read(&mut buf[..room]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ArchiveMismatch::Io(e)),
            };
            v.update(&buf[..n])?;
        }
        v.finish()
    }
}

/// Push-based, streamed check of archive bytes against an [`ExpectedArchive`].
pub struct ArchiveVerifier {
    expected: ExpectedArchive,
    received: u64,
    plain: blake2b_simd::State,
    keyed: blake2b_simd::State,
}

impl std::fmt::Debug for ArchiveVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveVerifier")
            .field("expected", &self.expected)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl ArchiveVerifier {
    /// Bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.expected.size.saturating_sub(self.received)
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Hashes the next chunk. Fails as soon as the bytes exceed the expected size (the chunk is
    /// then not hashed), so a caller can stop reading at once.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), ArchiveMismatch> {
        let received = self.received.saturating_add(chunk.len() as u64);
        if received > self.expected.size {
            return Err(ArchiveMismatch::TooLong {
                expected: self.expected.size,
            });
        }
        self.received = received;
        self.plain.update(chunk);
        self.keyed.update(chunk);
        Ok(())
    }

    /// Ends the stream: checks the size, the digest, then the signature (or keyed digest).
    pub fn finish(self) -> Result<CheckedArchive, ArchiveMismatch> {
        let e = &self.expected;
        if self.received != e.size {
            return Err(ArchiveMismatch::Truncated {
                received: self.received,
                expected: e.size,
            });
        }
        let plain = *self.plain.finalize().as_array();
        if plain != e.digest.0 {
            return Err(ArchiveMismatch::Digest {
                expected: e.digest.to_hex(),
                found: encoding::to_hex(&plain),
            });
        }
        let keyed = *self.keyed.finalize().as_array();
        let proven = match &e.proof {
            Proof::Signature(sig) => e.signer.verify_strict(&keyed, sig).is_ok(),
            Proof::KeyedDigest(expected) => {
                bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &keyed[..]))
            }
        };
        if !proven {
            return Err(match e.proof {
                Proof::Signature(_) => ArchiveMismatch::Signature {
                    signer: e.signer.to_hex(),
                },
                Proof::KeyedDigest(_) => ArchiveMismatch::KeyedDigest,
            });
        }
        Ok(CheckedArchive {
            size: self.received,
            digest: Digest512(plain),
            keyed_digest: keyed,
        })
    }
}

/// Archive bytes that matched their [`ExpectedArchive`] in full. Only [`ArchiveVerifier::finish`]
/// makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedArchive {
    size: u64,
    digest: Digest512,
    keyed_digest: [u8; 64],
}

impl CheckedArchive {
    /// The size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// The unkeyed BLAKE2b-512 (the content address).
    pub fn digest(&self) -> &Digest512 {
        &self.digest
    }
    /// The BLAKE2b-512 keyed with the signer's public key (what the signature covers).
    pub fn keyed_digest(&self) -> &[u8; 64] {
        &self.keyed_digest
    }
}

/// Why archive bytes are not the expected ones. Every case but [`ArchiveMismatch::Io`] means the
/// bytes are wrong (a bad mirror, an attacker, a changed build); `Io` means they could not be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ArchiveMismatch {
    /// More bytes than expected (reading stopped one byte past the size).
    #[error("the archive is larger than the expected {expected} bytes")]
    TooLong {
        /// The expected size.
        expected: u64,
    },
    /// Fewer bytes than expected.
    #[error("the archive has {received} bytes, not the expected {expected}")]
    Truncated {
        /// Bytes received.
        received: u64,
        /// The expected size.
        expected: u64,
    },
    /// The right size, another BLAKE2b-512.
    #[error("the archive's BLAKE2b-512 is {found}, not the expected {expected}")]
    Digest {
        /// Expected digest (hex).
        expected: String,
        /// Digest of the bytes (hex).
        found: String,
    },
    /// The right bytes by digest, but the archive signature does not verify with the signer.
    #[error("the archive signature does not verify with the release's signing key {signer}")]
    Signature {
        /// The signing key (hex).
        signer: String,
    },
    /// The right bytes by digest, but another keyed digest than the request names.
    #[error("the archive's keyed digest is not the one the request names")]
    KeyedDigest,
    /// The bytes could not be read.
    #[error("could not read the archive")]
    Io(#[source] io::Error),
}

impl ArchiveMismatch {
    /// True when the bytes were read and are wrong (not a read error).
    pub fn is_mismatch(&self) -> bool {
        !matches!(self, ArchiveMismatch::Io(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filesig;
    use crate::keys::KeyPair;

    fn expected(kp: &KeyPair, bytes: &[u8]) -> ExpectedArchive {
        let (size, digest) = filesig::archive_digest(bytes).unwrap();
        let sig = filesig::sign(kp, bytes).unwrap();
        ExpectedArchive::signed(size, Digest512(digest), kp.public(), sig)
    }

    #[test]
    fn the_right_bytes_pass_in_any_chunking() {
        let kp = KeyPair::generate();
        let bytes: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let e = expected(&kp, &bytes);
        let checked = e.check(&bytes[..]).unwrap();
        assert_eq!(checked.size(), bytes.len() as u64);
        assert_eq!(checked.digest(), e.digest());
        let (_, _, keyed) = filesig::digest_both(&kp.public(), &bytes[..]).unwrap();
        assert_eq!(checked.keyed_digest(), &keyed);
        for step in [1usize, 7, 4096, 300_000] {
            let mut v = e.verifier();
            for c in bytes.chunks(step) {
                v.update(c).unwrap();
            }
            assert_eq!(v.finish().unwrap(), checked);
        }
        // The keyed form accepts the same bytes.
        let k = ExpectedArchive::keyed(e.size(), *e.digest(), kp.public(), keyed);
        assert_eq!(k.check(&bytes[..]).unwrap(), checked);
    }

    #[test]
    fn every_way_to_be_wrong_is_named() {
        let kp = KeyPair::generate();
        let bytes = b"archive bytes".to_vec();
        let e = expected(&kp, &bytes);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            e.check(&longer[..]),
            Err(ArchiveMismatch::TooLong { expected: 13 })
        ));
        assert!(matches!(
            e.check(&bytes[..5]),
            Err(ArchiveMismatch::Truncated {
                received: 5,
                expected: 13
            })
        ));
        let mut flipped = bytes.clone();
        flipped[0] ^= 1;
        assert!(matches!(
            e.check(&flipped[..]),
            Err(ArchiveMismatch::Digest { .. })
        ));
        // Right digest, signature by another key over the same bytes.
        let other = KeyPair::generate();
        let forged = ExpectedArchive::signed(
            e.size(),
            *e.digest(),
            kp.public(),
            filesig::sign(&other, &bytes[..]).unwrap(),
        );
        let err = forged.check(&bytes[..]).unwrap_err();
        assert!(matches!(err, ArchiveMismatch::Signature { .. }) && err.is_mismatch());
        let keyed_wrong = ExpectedArchive::keyed(e.size(), *e.digest(), kp.public(), [0u8; 64]);
        assert!(matches!(
            keyed_wrong.check(&bytes[..]),
            Err(ArchiveMismatch::KeyedDigest)
        ));
    }

    #[test]
    fn an_endless_stream_is_cut_one_byte_past_the_size() {
        struct Endless(u64);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0 += buf.len() as u64;
                buf.fill(7);
                Ok(buf.len())
            }
        }
        let kp = KeyPair::generate();
        let e = expected(&kp, &[7u8; 10]);
        let mut r = Endless(0);
        assert!(matches!(
            e.check(&mut r),
            Err(ArchiveMismatch::TooLong { .. })
        ));
        assert!(r.0 <= 11, "read {} bytes for a 10-byte archive", r.0);
    }

    #[test]
    fn a_read_error_is_not_a_mismatch() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk gone"))
            }
        }
        let kp = KeyPair::generate();
        let err = expected(&kp, b"x").check(Broken).unwrap_err();
        assert!(matches!(err, ArchiveMismatch::Io(_)) && !err.is_mismatch());
    }
}
