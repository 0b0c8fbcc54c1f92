//! Log entries: the signed events the channel appends and every site replays.
//!
//! # Encoding
//! An entry is `body ‖ 0x0A ‖ signature`, where `body` is the compact canonical JSON of an
//! [`EntryBody`] and `signature` is 128 lowercase hex characters: the Ed25519 signature of
//! `body.signer` over `context ‖ 0x00 ‖ body` (see [`crate::protocol`]), with the context chosen
//! by the event kind ([`Event::context`]). The entry bytes are what the Merkle log hashes as a
//! leaf, and what travels between channel and sites, verbatim.
//!
//! # Strictness
//! [`Entry::parse`] is the one parser over `&[u8]`. It refuses: more than [`MAX_ENTRY_BYTES`],
//! anything but exactly one newline, unknown or duplicate fields, trailing bytes, unsupported
//! format versions, invalid names, and any body that is not byte-for-byte the canonical
//! serialisation of what it parsed to (different field order, whitespace, escapes, `null`
//! for an absent optional field). So each logical entry has exactly one encoding, which makes
//! resubmissions idempotent and leaves no room for two signed forms of one event.
//!
//! Parsing does not verify the signature or any authorisation rule: that is the job of
//! [`crate::state::KeyState`], which is the only way to learn that an entry is acceptable.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::encoding;
use crate::kdf::Derivation;
use crate::keys::{KeyPair, PublicKey, Signature};
use crate::names::{PackageName, SupplierName, Version};
use crate::protocol::{self, Context};
use crate::rollout::{Rollout, Wave};

/// Largest accepted entry, in bytes.
pub const MAX_ENTRY_BYTES: usize = 8 * 1024;
/// The only entry format version this code reads and writes.
pub const ENTRY_FORMAT_VERSION: u32 = 1;
/// Largest archive size a release may declare (4 GiB); sites use their own, smaller limits.
pub const MAX_RELEASE_SIZE: u64 = 4 << 30;
/// Longest free-text reason.
pub const MAX_REASON_LEN: usize = 256;

/// Why bytes are not a well-formed entry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The entry is larger than [`MAX_ENTRY_BYTES`].
    #[error("entry is {0} bytes, more than the limit of {MAX_ENTRY_BYTES}")]
    Oversize(usize),
    /// The entry is not `body\nsignature`.
    #[error("entry must be a JSON body, one newline and a hex signature, with no other newlines")]
    Framing,
    /// The signature part is not 128 lowercase hex characters.
    #[error("entry signature: {0}")]
    Signature(encoding::HexError),
    /// The body is not valid JSON of an entry (unknown or duplicate field, bad value, ...).
    #[error("entry body is not a valid entry: {0}")]
    Body(String),
    /// The body parsed, but is not in canonical form.
    #[error(
        "entry body is not in canonical form (compact JSON, fields in schema order, absent optional fields omitted)"
    )]
    NonCanonical,
    /// The body names a format version this code does not know.
    #[error("entry format version {0} is not supported (only {ENTRY_FORMAT_VERSION})")]
    Version(u32),
    /// A field value is out of its allowed range.
    #[error("entry field {field}: {problem}")]
    Field {
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// A BLAKE2b-512 digest (64 bytes), as lowercase hex in JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest512(pub [u8; 64]);

impl Digest512 {
    /// Parses 128 lowercase hex characters.
    pub fn from_hex(text: &str) -> Result<Self, encoding::HexError> {
        Ok(Self(encoding::from_hex_array::<64>(
            text,
            "a BLAKE2b-512 digest",
        )?))
    }
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        encoding::to_hex(&self.0)
    }
}
impl fmt::Debug for Digest512 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest512({})", self.to_hex())
    }
}
impl fmt::Display for Digest512 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl Serialize for Digest512 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}
impl<'de> Deserialize<'de> for Digest512 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_hex(&t).map_err(serde::de::Error::custom)
    }
}

/// A git commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct GitCommit(String);

impl GitCommit {
    /// Validates a commit id.
    pub fn parse(text: &str) -> Result<Self, EntryError> {
        let ok = (text.len() == 40 || text.len() == 64)
            && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(EntryError::Field {
                field: "commit",
                problem: "must be 40 or 64 lowercase hex characters (a full git commit id)".into(),
            })
        }
    }
    /// The commit id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for GitCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GitCommit({})", self.0)
    }
}
impl Serialize for GitCommit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de> Deserialize<'de> for GitCommit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&t).map_err(serde::de::Error::custom)
    }
}

/// A short free-text reason (revocations): at most [`MAX_REASON_LEN`] bytes, no control
/// characters, so it can be printed to a terminal or log safely.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reason(String);

impl Reason {
    /// Validates a reason.
    pub fn parse(text: &str) -> Result<Self, EntryError> {
        if text.len() > MAX_REASON_LEN || text.chars().any(char::is_control) {
            return Err(EntryError::Field {
                field: "reason",
                problem: format!(
                    "must be at most {MAX_REASON_LEN} bytes without control characters"
                ),
            });
        }
        Ok(Self(text.to_owned()))
    }
    /// The reason text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reason({:?})", self.0)
    }
}
impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&t).map_err(serde::de::Error::custom)
    }
}

/// What an attestation claims about a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Claim {
    /// The attester rebuilt the release from its logged commit and got the same digest.
    Reproduced,
}

/// The event an entry records. Serialized with a `"type"` tag in snake case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// A new master key. The supplier's first entry must be one, signed by the key itself.
    MasterKey {
        /// The new key.
        public_key: PublicKey,
        /// How the key was derived from a passphrase, if it was (for recovery).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        derivation: Option<Derivation>,
    },
    /// A new signing key, signed by a current master key.
    SigningKey {
        /// The new key.
        public_key: PublicKey,
        /// How the key was derived from a passphrase, if it was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        derivation: Option<Derivation>,
    },
    /// Revokes a master or signing key, signed by another current master key.
    KeyRevocation {
        /// The revoked key.
        public_key: PublicKey,
        /// Why, for people.
        reason: Reason,
    },
    /// A release, signed by a current signing key (the entry's signer, which must also be the
    /// key that made `signature`).
    Release {
        /// The package.
        package: PackageName,
        /// Its version.
        version: Version,
        /// Archive size in bytes (1 ..= [`MAX_RELEASE_SIZE`]).
        size: u64,
        /// Unkeyed BLAKE2b-512 of the archive.
        digest: Digest512,
        /// Git commit the archive was built from.
        commit: GitCommit,
        /// The archive signature (Halite-compatible, see [`crate::filesig`]) by the signer.
        signature: Signature,
        /// The author's staged-rollout schedule ([`crate::rollout`]); absent: everyone at
        /// once. Omitted from the JSON when absent, so entries from before rollouts keep
        /// their exact bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rollout: Option<Rollout>,
    },
    /// Revokes a release, signed by a current master or signing key of the supplier.
    ReleaseRevocation {
        /// The package.
        package: PackageName,
        /// The revoked version.
        version: Version,
        /// Why, for people.
        reason: Reason,
    },
    /// A statement by the entry's supplier about another (or its own) release.
    Attestation {
        /// The supplier whose release is attested.
        subject: SupplierName,
        /// The package.
        package: PackageName,
        /// The version.
        version: Version,
        /// The archive digest the attester got; must equal the logged one.
        digest: Digest512,
        /// What is claimed.
        claim: Claim,
    },
    /// Replaces the rollout schedule of an existing, unrevoked release of the entry's
    /// supplier (pause, resume, widen), signed by a current master or signing key of it.
    Rollout {
        /// The package.
        package: PackageName,
        /// The version whose schedule this replaces.
        version: Version,
        /// The log index of the schedule this entry replaces: the latest accepted `rollout`
        /// entry of the release, or the release entry itself when there is none yet. Required:
        /// it makes every rollout entry valid exactly once (the state refuses any other value
        /// as `stale_rollout`), so an old one cannot be replayed and a re-issued schedule is a
        /// new entry, never a duplicate of an earlier one.
        replaces: u64,
        /// The new waves (rules in [`crate::rollout`]).
        waves: Vec<Wave>,
        /// Whether the rollout is paused.
        paused: bool,
    },
}

impl Event {
    /// The signature context of this kind of event.
    pub fn context(&self) -> Context {
        match self {
            Event::MasterKey { .. } | Event::SigningKey { .. } | Event::KeyRevocation { .. } => {
                Context::KeyEvent
            }
            Event::Release { .. } => Context::Release,
            Event::ReleaseRevocation { .. } => Context::ReleaseRevocation,
            Event::Attestation { .. } => Context::Attestation,
            Event::Rollout { .. } => Context::Rollout,
        }
    }

    /// The rollout schedule this event sets for its release: a release's own `rollout` field
    /// or a rollout event's waves; `None` for other events and releases without one.
    pub fn rollout(&self) -> Option<Rollout> {
        match self {
            Event::Release { rollout, .. } => rollout.clone(),
            Event::Rollout { waves, paused, .. } => Some(Rollout {
                waves: waves.clone(),
                paused: *paused,
            }),
            _ => None,
        }
    }

    /// A short name of the event kind, as in the JSON `type` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::MasterKey { .. } => "master_key",
            Event::SigningKey { .. } => "signing_key",
            Event::KeyRevocation { .. } => "key_revocation",
            Event::Release { .. } => "release",
            Event::ReleaseRevocation { .. } => "release_revocation",
            Event::Attestation { .. } => "attestation",
            Event::Rollout { .. } => "rollout",
        }
    }

    fn check_ranges(&self) -> Result<(), EntryError> {
        if let Event::Release { size, .. } = self
            && (*size == 0 || *size > MAX_RELEASE_SIZE)
        {
            return Err(EntryError::Field {
                field: "size",
                problem: format!("must be 1 to {MAX_RELEASE_SIZE} bytes, got {size}"),
            });
        }
        if let Event::MasterKey {
            derivation: Some(d),
            ..
        }
        | Event::SigningKey {
            derivation: Some(d),
            ..
        } = self
        {
            d.validate().map_err(|e| EntryError::Field {
                field: "derivation",
                problem: e.to_string(),
            })?;
        }
        let waves = match self {
            Event::Release {
                rollout: Some(r), ..
            } => Some(&r.waves),
            Event::Rollout { waves, .. } => Some(waves),
            _ => None,
        };
        if let Some(waves) = waves {
            crate::rollout::validate_waves(waves).map_err(|e| EntryError::Field {
                field: "rollout",
                problem: e.to_string(),
            })?;
        }
        Ok(())
    }
}

/// The signed part of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryBody {
    /// Format version, always [`ENTRY_FORMAT_VERSION`].
    pub v: u32,
    /// The supplier this entry is about (and, for attestations, the attester).
    pub supplier: SupplierName,
    /// The key that signs this entry (its key id is its hex public key).
    pub signer: PublicKey,
    /// The event.
    pub event: Event,
}

impl EntryBody {
    /// A body with the current format version.
    pub fn new(supplier: SupplierName, signer: PublicKey, event: Event) -> Self {
        Self {
            v: ENTRY_FORMAT_VERSION,
            supplier,
            signer,
            event,
        }
    }

    /// The canonical bytes of this body (what gets signed).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Serialising these types cannot fail: no maps with non-string keys, no custom errors.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Checks what [`Entry::parse`] checks of a body beyond its JSON shape: the format version
    /// and the range of each field value. For bodies read some other way (a signing bundle
    /// carries one as text), so that nothing is shown or signed that no one could parse back.
    /// Does not check canonical form, signatures or authorisation.
    pub fn validate(&self) -> Result<(), EntryError> {
        if self.v != ENTRY_FORMAT_VERSION {
            return Err(EntryError::Version(self.v));
        }
        self.event.check_ranges()
    }
}

/// A parsed, well-formed entry. Its signature and authorisation are NOT yet checked: only
/// [`crate::state::KeyState`] decides whether an entry is acceptable.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    bytes: Vec<u8>,
    body_len: usize,
    body: EntryBody,
    signature: Signature,
}

impl Entry {
    /// Parses entry bytes strictly (see the module docs). Does not verify anything cryptographic.
    pub fn parse(bytes: &[u8]) -> Result<Self, EntryError> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::Oversize(bytes.len()));
        }
        let mut newlines = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n');
        let split = match (newlines.next(), newlines.next()) {
            (Some((i, _)), None) => i,
            _ => return Err(EntryError::Framing),
        };
        let (body_bytes, rest) = bytes.split_at(split);
        let sig_text = rest.get(1..).ok_or(EntryError::Framing)?;
        let sig_text = std::str::from_utf8(sig_text).map_err(|_| EntryError::Framing)?;
        let signature = Signature::from_hex(sig_text).map_err(EntryError::Signature)?;
        let body: EntryBody =
            serde_json::from_slice(body_bytes).map_err(|e| EntryError::Body(e.to_string()))?;
        body.validate()?;
        if body.canonical_bytes() != body_bytes {
            return Err(EntryError::NonCanonical);
        }
        Ok(Self {
            bytes: bytes.to_vec(),
            body_len: split,
            body,
            signature,
        })
    }

    /// Builds and signs an entry with `keypair`, which must be `body.signer`. Refuses, like
    /// [`Entry::parse`], a body of another format version or with a field out of range.
    pub fn sign(body: EntryBody, keypair: &KeyPair) -> Result<Self, EntryError> {
        if keypair.public() != body.signer {
            return Err(EntryError::Field {
                field: "signer",
                problem: "the signing key pair is not the key named as signer".into(),
            });
        }
        // Refuse what `parse` would refuse, so a signature is never made over an entry that no
        // one can read back (found by fuzzing the bundle signer: a request body with `"v":0`).
        body.validate()?;
        let body_bytes = body.canonical_bytes();
        let signature = protocol::sign(keypair, body.event.context(), &body_bytes);
        let mut bytes = body_bytes;
        let body_len = bytes.len();
        bytes.push(b'\n');
        bytes.extend_from_slice(signature.to_hex().as_bytes());
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::Oversize(bytes.len()));
        }
        Ok(Self {
            bytes,
            body_len,
            body,
            signature,
        })
    }

    /// The exact entry bytes (the Merkle leaf data).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The exact signed body bytes.
    pub fn body_bytes(&self) -> &[u8] {
        self.bytes.get(..self.body_len).unwrap_or(&[])
    }
    /// The parsed body.
    pub fn body(&self) -> &EntryBody {
        &self.body
    }
    /// The entry signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
    /// Checks only that the signature verifies under `body.signer` with the event's context.
    /// Says nothing about whether that key may sign this event; see [`crate::state`].
    pub fn signature_is_valid(&self) -> bool {
        protocol::verify(
            &self.body.signer,
            self.body.event.context(),
            self.body_bytes(),
            &self.signature,
        )
        .is_ok()
    }
}

/// An entry whose signature verified strictly under its named signer, with its event's
/// context. Says nothing about whether that key may sign this event: only
/// [`crate::state::KeyState`] decides that. Exists so a server can verify signatures in parallel
/// before its single writer applies the rules, without verifying twice; it can only be made by
/// [`Entry::into_checked`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedEntry(Entry);

impl CheckedEntry {
    /// The entry.
    pub fn entry(&self) -> &Entry {
        &self.0
    }
    /// Gives the entry back.
    pub fn into_entry(self) -> Entry {
        self.0
    }
}

/// Entries verified per Ed25519 batch by [`check_all`].
pub const CHECK_BATCH: usize = 64;

/// Verifies the signatures of `entries` and wraps them as checked, or names (by position) the
/// first whose signature does not verify strictly.
///
/// Signatures are verified [`CHECK_BATCH`] at a time with [`crate::keys::verify_batch`]; a
/// batch that fails is verified again one by one with the strict rule of
/// [`Entry::into_checked`], which decides. So an entry the strict rule accepts is never refused
/// here. The other way round, see `docs/decisions.md` ("batch verification"): for an adversarial
/// signature whose `R` has a torsion component, which only the holder of the signing key can
/// make and which the channel refuses when it is submitted, a batch can pass where the strict
/// rule alone would refuse; `continuum check` replays with the strict rule and says so.
pub fn check_all(entries: &[Entry]) -> Result<Vec<CheckedEntry>, usize> {
    let mut out = Vec::with_capacity(entries.len());
    for (n, chunk) in entries.chunks(CHECK_BATCH).enumerate() {
        let messages: Vec<Vec<u8>> = chunk
            .iter()
            .map(|e| protocol::signed_bytes(e.body.event.context(), e.body_bytes()))
            .collect();
        let refs: Vec<&[u8]> = messages.iter().map(|m| m.as_slice()).collect();
        let signatures: Vec<crate::keys::Signature> = chunk.iter().map(|e| e.signature).collect();
        let keys: Vec<PublicKey> = chunk.iter().map(|e| e.body.signer).collect();
        if crate::keys::verify_batch(&refs, &signatures, &keys).is_err() {
            for (i, e) in chunk.iter().enumerate() {
                if !e.signature_is_valid() {
                    return Err(n * CHECK_BATCH + i);
                }
            }
        }
        out.extend(chunk.iter().cloned().map(CheckedEntry));
    }
    Ok(out)
}

/// [`check_all`] split across the machine's cores (`std::thread::available_parallelism`), in
/// contiguous parts; the same decision, the first bad entry by position.
pub fn check_all_parallel(entries: &[Entry]) -> Result<Vec<CheckedEntry>, usize> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(entries.len().div_ceil(CHECK_BATCH).max(1));
    if threads <= 1 {
        return check_all(entries);
    }
    // Whole batches per part, so the batching (and so the decision) is the same as check_all's.
    let per = entries.len().div_ceil(threads).div_ceil(CHECK_BATCH) * CHECK_BATCH;
    let parts: Vec<Result<Vec<CheckedEntry>, usize>> = std::thread::scope(|s| {
        let handles: Vec<_> = entries
            .chunks(per)
            .map(|part| s.spawn(move || check_all(part)))
            .collect();
        handles
            .into_iter()
            // A verifier thread cannot panic on any input (check_all does not); if one ever
            // did, refusing its whole part is the safe answer.
            .map(|h| h.join().unwrap_or(Err(0)))
            .collect()
    });
    let mut out = Vec::with_capacity(entries.len());
    for (n, part) in parts.into_iter().enumerate() {
        match part {
            Ok(v) => out.extend(v),
            Err(i) => return Err(n * per + i),
        }
    }
    Ok(out)
}

impl Entry {
    /// Verifies the signature strictly and wraps the entry as checked.
    pub fn into_checked(self) -> Result<CheckedEntry, crate::keys::BadSignature> {
        if self.signature_is_valid() {
            Ok(CheckedEntry(self))
        } else {
            Err(crate::keys::BadSignature)
        }
    }

    /// For a release entry, what its archive must be (size, digest, signer, archive signature);
    /// `None` for other events. Says nothing about whether the release is allowed: that is the
    /// key state's decision.
    pub fn expected_archive(&self) -> Option<crate::archive_check::ExpectedArchive> {
        match &self.body.event {
            Event::Release {
                size,
                digest,
                signature,
                ..
            } => Some(crate::archive_check::ExpectedArchive::signed(
                *size,
                *digest,
                self.body.signer,
                *signature,
            )),
            _ => None,
        }
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("body", &self.body)
            .field("signature", &self.signature)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kp: &KeyPair) -> Entry {
        Entry::sign(
            EntryBody::new(
                SupplierName::parse("acme").unwrap(),
                kp.public(),
                Event::MasterKey {
                    public_key: kp.public(),
                    derivation: None,
                },
            ),
            kp,
        )
        .unwrap()
    }

    fn release_body(kp: &KeyPair) -> EntryBody {
        EntryBody::new(
            SupplierName::parse("acme").unwrap(),
            kp.public(),
            Event::Release {
                package: PackageName::parse("hello").unwrap(),
                version: Version::parse("1.0.0").unwrap(),
                size: 10,
                digest: Digest512([1; 64]),
                commit: GitCommit::parse(&"a".repeat(40)).unwrap(),
                signature: Signature::from_bytes([2; 64]),
                rollout: None,
            },
        )
    }

    #[test]
    fn round_trip_and_signature() {
        let kp = KeyPair::generate();
        let e = sample(&kp);
        let back = Entry::parse(e.as_bytes()).unwrap();
        assert_eq!(back, e);
        assert!(back.signature_is_valid());
        let text = std::str::from_utf8(e.as_bytes()).unwrap();
        assert!(
            text.starts_with(r#"{"v":1,"supplier":"acme","signer":""#),
            "{text}"
        );
        assert!(
            text.contains(r#""event":{"type":"master_key","public_key":""#),
            "{text}"
        );
        let r = Entry::sign(release_body(&kp), &kp).unwrap();
        assert_eq!(Entry::parse(r.as_bytes()).unwrap(), r);
    }

    #[test]
    fn signature_depends_on_context() {
        // A release body signed under the key-event context must not verify.
        let kp = KeyPair::generate();
        let body = release_body(&kp);
        let bytes = body.canonical_bytes();
        let wrong = protocol::sign(&kp, Context::KeyEvent, &bytes);
        let mut entry = bytes.clone();
        entry.push(b'\n');
        entry.extend_from_slice(wrong.to_hex().as_bytes());
        let parsed = Entry::parse(&entry).unwrap();
        assert!(!parsed.signature_is_valid());
    }

    fn reframe(body: &str, sig: &str) -> Vec<u8> {
        format!("{body}\n{sig}").into_bytes()
    }

    #[test]
    fn strict_parser_refusals() {
        let kp = KeyPair::generate();
        let e = sample(&kp);
        let text = std::str::from_utf8(e.as_bytes()).unwrap().to_owned();
        let (body, sig) = text.split_once('\n').unwrap();

        // Trailing bytes, extra newline, missing newline.
        assert_eq!(
            Entry::parse(format!("{text}\n").as_bytes()),
            Err(EntryError::Framing)
        );
        assert_eq!(Entry::parse(body.as_bytes()), Err(EntryError::Framing));
        assert!(matches!(
            Entry::parse(format!("{text}0").as_bytes()),
            Err(EntryError::Signature(_))
        ));
        // Uppercase signature.
        assert!(matches!(
            Entry::parse(&reframe(body, &sig.to_uppercase())),
            Err(EntryError::Signature(_))
        ));
        // Unknown field at top level and inside the event.
        let unknown = body.replacen("{\"v\":1,", "{\"v\":1,\"x\":1,", 1);
        assert!(matches!(
            Entry::parse(&reframe(&unknown, sig)),
            Err(EntryError::Body(_))
        ));
        let unknown2 = body.replacen(
            "\"type\":\"master_key\",",
            "\"type\":\"master_key\",\"x\":1,",
            1,
        );
        assert!(matches!(
            Entry::parse(&reframe(&unknown2, sig)),
            Err(EntryError::Body(_))
        ));
        // Duplicate field.
        let dup = body.replacen("{\"v\":1,", "{\"v\":1,\"v\":1,", 1);
        assert!(matches!(
            Entry::parse(&reframe(&dup, sig)),
            Err(EntryError::Body(_))
        ));
        // Whitespace: valid JSON, not canonical.
        let spaced = body.replacen("{\"v\":1,", "{\"v\": 1,", 1);
        assert_eq!(
            Entry::parse(&reframe(&spaced, sig)),
            Err(EntryError::NonCanonical)
        );
        // Field order changed.
        let reordered = body.replacen(
            "{\"v\":1,\"supplier\":\"acme\",",
            "{\"supplier\":\"acme\",\"v\":1,",
            1,
        );
        assert_eq!(
            Entry::parse(&reframe(&reordered, sig)),
            Err(EntryError::NonCanonical)
        );
        // Explicit null for an absent optional field.
        let null = body.replacen("\"}}", "\",\"derivation\":null}}", 1);
        assert_ne!(null, body);
        assert_eq!(
            Entry::parse(&reframe(&null, sig)),
            Err(EntryError::NonCanonical)
        );
        // Unsupported version.
        let v2 = body.replacen("{\"v\":1,", "{\"v\":2,", 1);
        assert_eq!(
            Entry::parse(&reframe(&v2, sig)),
            Err(EntryError::Version(2))
        );
        // Invalid supplier name.
        let bad_name = body.replacen("\"acme\"", "\"../x\"", 1);
        assert!(matches!(
            Entry::parse(&reframe(&bad_name, sig)),
            Err(EntryError::Body(_))
        ));
        // Oversize.
        let big = vec![b'a'; MAX_ENTRY_BYTES + 1];
        assert_eq!(
            Entry::parse(&big),
            Err(EntryError::Oversize(MAX_ENTRY_BYTES + 1))
        );
        // Not JSON.
        assert!(matches!(
            Entry::parse(&reframe("nope", sig)),
            Err(EntryError::Body(_))
        ));
        // Unknown event type.
        let unk = body.replacen("master_key", "super_key", 1);
        assert!(matches!(
            Entry::parse(&reframe(&unk, sig)),
            Err(EntryError::Body(_))
        ));
    }

    #[test]
    fn release_size_bounds() {
        let kp = KeyPair::generate();
        let mut b = release_body(&kp);
        if let Event::Release { size, .. } = &mut b.event {
            *size = 0;
        }
        assert!(matches!(
            Entry::sign(b.clone(), &kp),
            Err(EntryError::Field { field: "size", .. })
        ));
        if let Event::Release { size, .. } = &mut b.event {
            *size = MAX_RELEASE_SIZE + 1;
        }
        assert!(Entry::sign(b, &kp).is_err());
    }

    #[test]
    fn signer_must_match_keypair() {
        let kp = KeyPair::generate();
        let other = KeyPair::generate();
        assert!(Entry::sign(release_body(&kp), &other).is_err());
    }

    #[test]
    fn commit_and_reason_validation() {
        assert!(GitCommit::parse(&"a".repeat(40)).is_ok());
        assert!(GitCommit::parse(&"a".repeat(64)).is_ok());
        assert!(GitCommit::parse(&"a".repeat(41)).is_err());
        assert!(GitCommit::parse(&"A".repeat(40)).is_err());
        assert!(Reason::parse("key lost").is_ok());
        assert!(Reason::parse("bad\nline").is_err());
        assert!(Reason::parse(&"x".repeat(257)).is_err());
    }
}
