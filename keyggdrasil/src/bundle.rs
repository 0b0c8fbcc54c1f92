//! Signing bundles: how a log entry travels to an air-gapped machine to be signed and back.
//!
//! `barge prepare …` (online) writes a **request bundle**; the author carries it to the
//! air-gapped machine, where `hangar sign` shows what it holds, signs it and writes a **signed
//! bundle**; the author carries that back and `barge publish` submits the entry. The format is
//! specified in `docs/protocol.md` ("Signing bundles"). In short, a bundle file is lines of text:
//!
//! ```text
//! <request: one line of canonical JSON>
//! <signatures: one line of canonical JSON>          (signed bundles only)
//! checksum <64 hex: BLAKE2b-256 of all bytes above, newlines included>
//! ```
//!
//! - The request names the channel origin, the supplier, the kind (`release`, `key-add`,
//!   `key-revoke`, `release-revoke`, `rollout`), the key that must sign and what it signs: the exact entry
//!   body bytes (`body`), or for a release the fields of the release entry (`release`), because
//!   a release body carries the archive signature, which only the signer can make.
//! - The signatures line holds the complete signed entry (`body\nsignature`, as submitted to the
//!   channel) and a bundle signature by the same key under [`Context::Bundle`] over the exact
//!   request line, which binds the entry to the request that asked for it.
//! - The checksum catches accidental damage and naive edits; it is NOT a security check (anyone
//!   can recompute it). What protects the author is that hangar shows the request and its
//!   [`fingerprint`](Bundle::fingerprint) before signing, and that barge publishes only a signed
//!   bundle whose request equals, byte for byte, one it prepared and whose signatures verify.
//!
//! What this module does not do: read files, find the archive, or decide whether the signer is
//! allowed to sign the entry (the channel's key state does that when it is submitted).
//! [`Bundle::parse`] never panics and accepts only canonical bundles of at most
//! [`MAX_BUNDLE_BYTES`].

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::archive_check::ExpectedArchive;
use crate::encoding;
use crate::entry::{Digest512, Entry, EntryBody, EntryError, Event, GitCommit};
use crate::filesig;
use crate::keys::{KeyPair, PublicKey, Signature};
use crate::names::ChannelName;
use crate::names::{PackageName, SupplierName, Version};
use crate::protocol::{self, Context};

/// The `format` field of every bundle request.
pub const BUNDLE_FORMAT: &str = "keyggdrasil-bundle";
/// The only bundle format version this code reads and writes.
pub const BUNDLE_VERSION: u32 = 1;
/// Largest bundle file accepted, in bytes (an entry is at most 8 KiB; a bundle holds one
/// request and one entry).
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024;
/// Longest archive file name a release request may carry.
pub const MAX_ARCHIVE_NAME_LEN: usize = 200;

/// Why a bundle was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Larger than [`MAX_BUNDLE_BYTES`].
    #[error("the bundle is {0} bytes, more than the limit of {MAX_BUNDLE_BYTES}")]
    Oversize(usize),
    /// Not the line structure of a bundle.
    #[error("not a bundle file: {0}")]
    Framing(&'static str),
    /// The checksum line does not match the bytes above it.
    #[error(
        "the bundle's checksum does not match its contents: it was damaged or edited after it was written"
    )]
    Checksum,
    /// A line is not valid JSON of the expected shape.
    #[error("the bundle's {line} line is malformed: {problem}")]
    Malformed {
        /// Which line.
        line: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// A line parsed but is not in canonical form.
    #[error("the bundle's {0} line is not in canonical form")]
    NonCanonical(&'static str),
    /// Unknown format or version.
    #[error(
        "unsupported bundle format {format:?} version {version} (expected {BUNDLE_FORMAT:?} version {BUNDLE_VERSION})"
    )]
    Version {
        /// The format string found (truncated).
        format: String,
        /// The version found.
        version: u32,
    },
    /// The request's parts contradict each other.
    #[error("the bundle request is inconsistent: {0}")]
    Inconsistent(String),
    /// The entry inside a signed bundle is malformed.
    #[error("the signed entry in the bundle is malformed: {0}")]
    Entry(#[from] EntryError),
    /// The signed entry is not what the request asked to sign.
    #[error("the signed entry does not match the request: {0}")]
    EntryMismatch(String),
    /// A signature does not verify.
    #[error("the bundle's {0} signature does not verify")]
    BadSignature(&'static str),
    /// The bundle is already signed / not yet signed.
    #[error("{0}")]
    WrongState(&'static str),
    /// The key pair given to sign is not the key the request names.
    #[error("the request must be signed by key {0}, not by the key given")]
    WrongKey(String),
}

/// What a bundle asks to be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A release entry (and its archive signature).
    Release,
    /// A new master or signing key entry.
    KeyAdd,
    /// A key revocation entry.
    KeyRevoke,
    /// A release revocation entry.
    ReleaseRevoke,
    /// A rollout entry (a release's staged-rollout schedule replaced).
    Rollout,
}

impl Kind {
    /// The name used in files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Release => "release",
            Kind::KeyAdd => "key-add",
            Kind::KeyRevoke => "key-revoke",
            Kind::ReleaseRevoke => "release-revoke",
            Kind::Rollout => "rollout",
        }
    }

    fn admits(self, event: &Event) -> bool {
        matches!(
            (self, event),
            (
                Kind::KeyAdd,
                Event::MasterKey { .. } | Event::SigningKey { .. }
            ) | (Kind::KeyRevoke, Event::KeyRevocation { .. })
                | (Kind::ReleaseRevoke, Event::ReleaseRevocation { .. })
                | (Kind::Rollout, Event::Rollout { .. })
        )
    }
}

/// What a release entry needs that only the online machine knows: the archive's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// The package.
    pub package: PackageName,
    /// Its version.
    pub version: Version,
    /// The archive's file name (no folder), so hangar can find it beside the bundle.
    pub archive: String,
    /// Archive size in bytes.
    pub size: u64,
    /// Unkeyed BLAKE2b-512 of the archive (the entry's `digest`).
    pub digest: Digest512,
    /// Keyed BLAKE2b-512 of the archive under the signer's public key: what the Halite-compatible
    /// archive signature signs (see [`crate::filesig`]).
    pub keyed_digest: Digest512,
    /// The git commit the archive was built from.
    pub commit: GitCommit,
}

/// The request line of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Always [`BUNDLE_FORMAT`].
    pub format: String,
    /// Always [`BUNDLE_VERSION`].
    pub v: u32,
    /// The channel the entry is meant for (its checkpoint origin).
    pub origin: ChannelName,
    /// The supplier.
    pub supplier: SupplierName,
    /// What is to be signed.
    pub kind: Kind,
    /// The key that must sign.
    pub signer: PublicKey,
    /// The exact canonical entry body to sign (all kinds but `release`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The release fields (kind `release` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseRequest>,
}

impl Request {
    /// What the archive named by a release request must be: its size, digest and keyed digest
    /// under [`Request::signer`]. `None` for requests that are not releases.
    pub fn expected_archive(&self) -> Option<ExpectedArchive> {
        self.release
            .as_ref()
            .map(|r| ExpectedArchive::keyed(r.size, r.digest, self.signer, r.keyed_digest.0))
    }
}

/// The signatures line of a signed bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Signatures {
    /// The complete signed entry, `body\nsignature`.
    entry: String,
    /// Signature over the exact request line under [`Context::Bundle`].
    bundle_signature: Signature,
}

/// A parsed, canonical bundle whose checksum matched and whose request is consistent. Signatures
/// are NOT verified by parsing: call [`Bundle::verify_signed`].
#[derive(Debug, Clone)]
pub struct Bundle {
    request_line: Vec<u8>,
    request: Request,
    signed: Option<(Entry, Signature)>,
}

fn checksum(bytes: &[u8]) -> String {
    let h = blake2b_simd::Params::new()
        .hash_length(32)
        .personal(b"kg-bundle-sum")
        .hash(bytes);
    encoding::to_hex(h.as_bytes())
}

fn with_checksum(mut body: Vec<u8>) -> Vec<u8> {
    let sum = checksum(&body);
    body.extend_from_slice(b"checksum ");
    body.extend_from_slice(sum.as_bytes());
    body.push(b'\n');
    body
}

impl Request {
    /// A request with the current format and version.
    pub fn new(
        origin: ChannelName,
        supplier: SupplierName,
        kind: Kind,
        signer: PublicKey,
        body: Option<String>,
        release: Option<ReleaseRequest>,
    ) -> Self {
        Self {
            format: BUNDLE_FORMAT.to_owned(),
            v: BUNDLE_VERSION,
            origin,
            supplier,
            kind,
            signer,
            body,
            release,
        }
    }

    /// The canonical request line (without its newline).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // These types serialise without error: plain structs, string keys only.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The entry body this request asks to sign, parsed (kinds other than `release`).
    pub fn parsed_body(&self) -> Result<Option<EntryBody>, BundleError> {
        let Some(text) = &self.body else {
            return Ok(None);
        };
        let body: EntryBody = serde_json::from_str(text).map_err(|e| {
            BundleError::Inconsistent(format!("the body is not an entry body: {e}"))
        })?;
        if body.canonical_bytes() != text.as_bytes() {
            return Err(BundleError::Inconsistent(
                "the body is not in canonical entry form".into(),
            ));
        }
        // What `Entry::parse` checks beyond the JSON shape (found by fuzzing: a body with
        // `"v":0` was shown and signed, and the signed bundle could not be read back).
        body.validate().map_err(|e| {
            BundleError::Inconsistent(format!("the body is not a valid entry body: {e}"))
        })?;
        Ok(Some(body))
    }

    /// Checks that the parts agree: format, kind against body or release fields, supplier and
    /// signer named in the body, archive name and size.
    pub fn check(&self) -> Result<(), BundleError> {
        if self.format != BUNDLE_FORMAT || self.v != BUNDLE_VERSION {
            return Err(BundleError::Version {
                format: self.format.chars().take(40).collect(),
                version: self.v,
            });
        }
        match (self.kind, &self.body, &self.release) {
            (Kind::Release, None, Some(r)) => {
                if r.archive.is_empty()
                    || r.archive.len() > MAX_ARCHIVE_NAME_LEN
                    || r.archive.starts_with('.')
                    || !r
                        .archive
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
                {
                    return Err(BundleError::Inconsistent(
                        "the archive name must be a plain file name (letters, digits, . _ - +)"
                            .into(),
                    ));
                }
                if r.size == 0 || r.size > crate::entry::MAX_RELEASE_SIZE {
                    return Err(BundleError::Inconsistent(format!(
                        "archive size {} is out of range",
                        r.size
                    )));
                }
                Ok(())
            }
            (Kind::Release, _, _) => Err(BundleError::Inconsistent(
                "a release request carries release fields and no body".into(),
            )),
            (kind, Some(_), None) => {
                let body = self.parsed_body()?.ok_or(BundleError::Inconsistent(
                    "a request other than a release carries an entry body".into(),
                ))?;
                if body.supplier != self.supplier {
                    return Err(BundleError::Inconsistent(
                        "the body names another supplier than the request".into(),
                    ));
                }
                if body.signer != self.signer {
                    return Err(BundleError::Inconsistent(
                        "the body names another signer than the request".into(),
                    ));
                }
                if !kind.admits(&body.event) {
                    return Err(BundleError::Inconsistent(format!(
                        "a {} request cannot carry a {} event",
                        kind.as_str(),
                        body.event.kind()
                    )));
                }
                Ok(())
            }
            (kind, _, _) => Err(BundleError::Inconsistent(format!(
                "a {} request carries an entry body and no release fields",
                kind.as_str()
            ))),
        }
    }

    /// The release entry body for an archive signature (kind `release` only).
    fn release_body(&self, archive_signature: Signature) -> Option<EntryBody> {
        let r = self.release.as_ref()?;
        Some(EntryBody::new(
            self.supplier.clone(),
            self.signer,
            Event::Release {
                package: r.package.clone(),
                version: r.version.clone(),
                size: r.size,
                digest: r.digest,
                commit: r.commit.clone(),
                signature: archive_signature,
                // Air-gapped releases carry no rollout schedule yet (everyone at once).
                rollout: None,
            },
        ))
    }
}

impl Bundle {
    /// Builds an unsigned request bundle file (after checking the request).
    pub fn request_file(request: &Request) -> Result<Vec<u8>, BundleError> {
        request.check()?;
        let mut out = request.canonical_bytes();
        out.push(b'\n');
        let out = with_checksum(out);
        if out.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::Oversize(out.len()));
        }
        Ok(out)
    }

    /// Parses a bundle file strictly: size limit, line structure, checksum, canonical JSON,
    /// known format, a consistent request and (if signed) a well-formed entry. Verifies no
    /// signature.
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::Oversize(bytes.len()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| BundleError::Framing("not UTF-8"))?;
        let body = text
            .strip_suffix('\n')
            .ok_or(BundleError::Framing("it must end with a newline"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        let (content_lines, sum_line) = match lines.split_last() {
            Some((last, rest)) if (1..=2).contains(&rest.len()) => (rest, *last),
            _ => return Err(BundleError::Framing("expected 2 or 3 lines")),
        };
        let sum = sum_line
            .strip_prefix("checksum ")
            .ok_or(BundleError::Framing(
                "the last line must be `checksum <hex>`",
            ))?;
        let covered_len = bytes.len() - sum_line.len() - 1;
        let covered = bytes
            .get(..covered_len)
            .ok_or(BundleError::Framing("truncated"))?;
        // Not constant-time on purpose: the checksum is public and guards against accidents only.
        if checksum(covered) != sum {
            return Err(BundleError::Checksum);
        }
        let request_text = content_lines
            .first()
            .ok_or(BundleError::Framing("no request line"))?;
        let request: Request =
            serde_json::from_str(request_text).map_err(|e| BundleError::Malformed {
                line: "request",
                problem: e.to_string(),
            })?;
        if request.format != BUNDLE_FORMAT || request.v != BUNDLE_VERSION {
            return Err(BundleError::Version {
                format: request.format.chars().take(40).collect(),
                version: request.v,
            });
        }
        if request.canonical_bytes() != request_text.as_bytes() {
            return Err(BundleError::NonCanonical("request"));
        }
        request.check()?;
        let signed = match content_lines.get(1) {
            None => None,
            Some(sig_text) => {
                let sigs: Signatures =
                    serde_json::from_str(sig_text).map_err(|e| BundleError::Malformed {
                        line: "signatures",
                        problem: e.to_string(),
                    })?;
                if serde_json::to_vec(&sigs).unwrap_or_default() != sig_text.as_bytes() {
                    return Err(BundleError::NonCanonical("signatures"));
                }
                let entry = Entry::parse(sigs.entry.as_bytes())?;
                Some((entry, sigs.bundle_signature))
            }
        };
        Ok(Self {
            request_line: request_text.as_bytes().to_vec(),
            request,
            signed,
        })
    }

    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The exact request line (what the bundle signature covers, and what barge keeps as its
    /// record of a prepared bundle).
    pub fn request_bytes(&self) -> &[u8] {
        &self.request_line
    }

    /// True if the bundle carries signatures (not yet verified).
    pub fn is_signed(&self) -> bool {
        self.signed.is_some()
    }

    /// The signed entry, if any (not verified: see [`Bundle::verify_signed`]).
    pub fn entry(&self) -> Option<&Entry> {
        self.signed.as_ref().map(|(e, _)| e)
    }

    /// A short fingerprint of the request for people to compare by eye on both machines: the
    /// first 8 bytes of BLAKE2b-256 over the request line, as four groups of four hex digits.
    /// The same before and after signing.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.request_line)
    }

    /// Signs the request with `keypair` (which must be the request's signer) and returns the
    /// signed bundle file. For a release, the caller must have checked the keyed digest against
    /// the archive where it can: this signs the digest as given.
    pub fn sign(&self, keypair: &KeyPair) -> Result<Vec<u8>, BundleError> {
        if self.signed.is_some() {
            return Err(BundleError::WrongState("the bundle is already signed"));
        }
        if keypair.public() != self.request.signer {
            return Err(BundleError::WrongKey(self.request.signer.to_hex()));
        }
        let body = match (&self.request.release, self.request.parsed_body()?) {
            (Some(r), _) => {
                let archive_signature = filesig::sign_digest(keypair, &r.keyed_digest.0);
                self.request
                    .release_body(archive_signature)
                    .ok_or(BundleError::Inconsistent("no release fields".into()))?
            }
            (None, Some(body)) => body,
            (None, None) => return Err(BundleError::Inconsistent("nothing to sign".into())),
        };
        let entry = Entry::sign(body, keypair)?;
        if let Some(text) = &self.request.body
            && entry.body_bytes() != text.as_bytes()
        {
            return Err(BundleError::EntryMismatch(
                "the signed body differs from the requested bytes".into(),
            ));
        }
        let sigs = Signatures {
            entry: String::from_utf8_lossy(entry.as_bytes()).into_owned(),
            bundle_signature: protocol::sign(keypair, Context::Bundle, &self.request_line),
        };
        let mut out = self.request_line.clone();
        out.push(b'\n');
        out.extend_from_slice(&serde_json::to_vec(&sigs).unwrap_or_default());
        out.push(b'\n');
        let out = with_checksum(out);
        if out.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::Oversize(out.len()));
        }
        Ok(out)
    }

    /// Verifies a signed bundle: the entry's signature (strict, with its event's context), the
    /// bundle signature over the request, the archive signature over the requested keyed digest
    /// (releases), and that the entry is exactly what the request asked for. Returns the entry.
    /// Says nothing about whether the channel will accept the signer for this entry.
    pub fn verify_signed(&self) -> Result<&Entry, BundleError> {
        let (entry, bundle_sig) = self
            .signed
            .as_ref()
            .ok_or(BundleError::WrongState("the bundle is not signed yet"))?;
        let req = &self.request;
        let body = entry.body();
        if body.signer != req.signer {
            return Err(BundleError::EntryMismatch(
                "the entry is signed by another key than the request names".into(),
            ));
        }
        if body.supplier != req.supplier {
            return Err(BundleError::EntryMismatch(
                "the entry names another supplier".into(),
            ));
        }
        match (&req.body, &req.release, &body.event) {
            (Some(text), None, _) => {
                if entry.body_bytes() != text.as_bytes() {
                    return Err(BundleError::EntryMismatch(
                        "the entry body differs from the requested bytes".into(),
                    ));
                }
            }
            (None, Some(r), Event::Release { signature, .. }) => {
                let expected = req
                    .release_body(*signature)
                    .ok_or(BundleError::Inconsistent("no release fields".into()))?;
                if &expected != body {
                    return Err(BundleError::EntryMismatch(
                        "the release entry's fields differ from the request".into(),
                    ));
                }
                filesig::verify_digest(&req.signer, signature, &r.keyed_digest.0)
                    .map_err(|_| BundleError::BadSignature("archive"))?;
            }
            _ => {
                return Err(BundleError::EntryMismatch(
                    "the entry is not of the requested kind".into(),
                ));
            }
        }
        if !entry.signature_is_valid() {
            return Err(BundleError::BadSignature("entry"));
        }
        protocol::verify(&req.signer, Context::Bundle, &self.request_line, bundle_sig)
            .map_err(|_| BundleError::BadSignature("bundle"))?;
        Ok(entry)
    }
}

/// The fingerprint of a request line (see [`Bundle::fingerprint`]).
pub fn fingerprint_of(request_line: &[u8]) -> String {
    let h = blake2b_simd::Params::new()
        .hash_length(32)
        .personal(b"kg-bundle-fp")
        .hash(request_line);
    let hex = encoding::to_hex(&h.as_bytes()[..8]);
    format!(
        "{}-{}-{}-{}",
        hex.get(0..4).unwrap_or(""),
        hex.get(4..8).unwrap_or(""),
        hex.get(8..12).unwrap_or(""),
        hex.get(12..16).unwrap_or("")
    )
}

/// Recomputes the checksum line of `bundle_without_checksum` (for tests and tools that build
/// bundles by hand; it proves nothing about who wrote the bytes).
pub fn append_checksum(bundle_without_checksum: Vec<u8>) -> Vec<u8> {
    with_checksum(bundle_without_checksum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Reason;

    fn origin() -> ChannelName {
        ChannelName::parse("test.channel").unwrap()
    }
    fn acme() -> SupplierName {
        SupplierName::parse("acme").unwrap()
    }

    fn release_request(kp: &KeyPair, archive: &[u8]) -> Request {
        let (size, digest, keyed) = filesig::digest_both(&kp.public(), archive).unwrap();
        Request::new(
            origin(),
            acme(),
            Kind::Release,
            kp.public(),
            None,
            Some(ReleaseRequest {
                package: PackageName::parse("hello").unwrap(),
                version: Version::parse("1.0.0").unwrap(),
                archive: "hello-1.0.0.zip".into(),
                size,
                digest: Digest512(digest),
                keyed_digest: Digest512(keyed),
                commit: GitCommit::parse(&"a".repeat(40)).unwrap(),
            }),
        )
    }

    fn revoke_request(master: &KeyPair, other: &KeyPair) -> Request {
        let body = EntryBody::new(
            acme(),
            master.public(),
            Event::KeyRevocation {
                public_key: other.public(),
                reason: Reason::parse("lost").unwrap(),
            },
        );
        Request::new(
            origin(),
            acme(),
            Kind::KeyRevoke,
            master.public(),
            Some(String::from_utf8(body.canonical_bytes()).unwrap()),
            None,
        )
    }

    #[test]
    fn release_round_trip_and_signatures_verify() {
        let kp = KeyPair::generate();
        let archive = b"zip bytes".to_vec();
        let req = release_request(&kp, &archive);
        let file = Bundle::request_file(&req).unwrap();
        let b = Bundle::parse(&file).unwrap();
        assert!(!b.is_signed());
        assert!(b.verify_signed().is_err());
        let signed = Bundle::sign(&b, &kp).unwrap();
        let s = Bundle::parse(&signed).unwrap();
        assert_eq!(s.fingerprint(), b.fingerprint());
        assert_eq!(s.request_bytes(), b.request_bytes());
        let entry = s.verify_signed().unwrap();
        if let Event::Release { signature, .. } = &entry.body().event {
            filesig::verify(&kp.public(), signature, &archive[..]).unwrap();
        } else {
            panic!("not a release");
        }
        // Signing twice is refused; signing with another key too.
        assert!(s.sign(&kp).is_err());
        assert!(matches!(
            b.sign(&KeyPair::generate()),
            Err(BundleError::WrongKey(_))
        ));
    }

    #[test]
    fn revoke_round_trip_signs_the_exact_body() {
        let m = KeyPair::generate();
        let other = KeyPair::generate();
        let req = revoke_request(&m, &other);
        let b = Bundle::parse(&Bundle::request_file(&req).unwrap()).unwrap();
        let s = Bundle::parse(&b.sign(&m).unwrap()).unwrap();
        let e = s.verify_signed().unwrap();
        assert_eq!(e.body_bytes(), req.body.as_ref().unwrap().as_bytes());
    }

    #[test]
    fn naive_edits_fail_the_checksum() {
        let kp = KeyPair::generate();
        let file = Bundle::request_file(&release_request(&kp, b"x")).unwrap();
        let text = String::from_utf8(file).unwrap();
        let edited = text.replace("1.0.0", "1.0.1");
        assert!(matches!(
            Bundle::parse(edited.as_bytes()),
            Err(BundleError::Checksum)
        ));
    }

    #[test]
    fn edits_with_a_recomputed_checksum_fail_the_signatures() {
        let kp = KeyPair::generate();
        let b = Bundle::parse(&Bundle::request_file(&release_request(&kp, b"x")).unwrap()).unwrap();
        let signed = String::from_utf8(b.sign(&kp).unwrap()).unwrap();
        let mut lines: Vec<String> = signed.lines().map(str::to_owned).collect();
        // Change the request (another version) and recompute the checksum: the bundle signature
        // and the entry no longer match.
        lines[0] = lines[0].replace("1.0.0", "1.0.1");
        let forged = append_checksum(format!("{}\n{}\n", lines[0], lines[1]).into_bytes());
        let f = Bundle::parse(&forged).unwrap();
        assert!(matches!(
            f.verify_signed(),
            Err(BundleError::EntryMismatch(_))
        ));
        // Swap in a signature line from another signing of another request.
        let other =
            Bundle::parse(&Bundle::request_file(&release_request(&kp, b"y")).unwrap()).unwrap();
        let other_signed = String::from_utf8(other.sign(&kp).unwrap()).unwrap();
        let other_sigs = other_signed.lines().nth(1).unwrap();
        let orig_req = signed.lines().next().unwrap();
        let forged = append_checksum(format!("{orig_req}\n{other_sigs}\n").into_bytes());
        assert!(Bundle::parse(&forged).unwrap().verify_signed().is_err());
    }

    #[test]
    fn inconsistent_requests_are_refused() {
        let m = KeyPair::generate();
        let other = KeyPair::generate();
        let mut req = revoke_request(&m, &other);
        req.kind = Kind::KeyAdd;
        assert!(matches!(
            Bundle::request_file(&req),
            Err(BundleError::Inconsistent(_))
        ));
        let mut req = revoke_request(&m, &other);
        req.signer = other.public();
        assert!(Bundle::request_file(&req).is_err());
        let mut req = release_request(&m, b"x");
        if let Some(r) = req.release.as_mut() {
            r.archive = "../etc/passwd".into();
        }
        assert!(Bundle::request_file(&req).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        for bytes in [
            &b""[..],
            b"\n",
            b"{}\nchecksum 00\n",
            b"\xff\xfe\n",
            b"a\nb\nc\nd\n",
            b"checksum \n",
        ] {
            assert!(Bundle::parse(bytes).is_err());
        }
        assert!(matches!(
            Bundle::parse(&vec![b'a'; MAX_BUNDLE_BYTES + 1]),
            Err(BundleError::Oversize(_))
        ));
        // Every prefix and every single-byte change of a real bundle is refused or parses
        // without panicking.
        let kp = KeyPair::generate();
        let file = Bundle::request_file(&release_request(&kp, b"x")).unwrap();
        for i in 0..file.len() {
            let _ = Bundle::parse(&file[..i]);
            let mut f = file.clone();
            f[i] ^= 0x01;
            assert!(Bundle::parse(&f).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn non_canonical_request_is_refused_even_with_a_good_checksum() {
        let kp = KeyPair::generate();
        let file = Bundle::request_file(&release_request(&kp, b"x")).unwrap();
        let text = String::from_utf8(file).unwrap();
        let first = text.lines().next().unwrap();
        let spaced = first.replacen("{\"format\"", "{ \"format\"", 1);
        let forged = append_checksum(format!("{spaced}\n").into_bytes());
        assert!(matches!(
            Bundle::parse(&forged),
            Err(BundleError::NonCanonical("request"))
        ));
    }
}
