//! Wire types of the channel API and the notary API (version 1), and their verifiers.
//!
//! # Shapes
//! Every HTTP answer is an [`Envelope`]: `{"status":"ok","data":…}` or
//! `{"status":"error","code":"…","message":"…"}`. Signed answers carry a [`Signed`] value:
//! `{"payload":"<exact JSON text>","signature":"<hex>"}`. The signature covers
//! `context ‖ 0x00 ‖ payload bytes` (see [`crate::protocol`]); the payload is parsed only after
//! the signature verified, and never re-serialised. The signer's key is not in the message: the
//! verifier brings the key it pinned (the channel key from the site's config, a peer's notary
//! key from its peer list).
//!
//! # What the verifiers check, and what they leave to the caller
//! [`verify_update`] checks the channel signature, origin, nonce, timestamp window, that the
//! answer starts at the size asked for, that sizes add up, the page limit, and parses every
//! entry strictly. It does not check the root: the caller recomputes the root over its own log
//! plus the new entries (with [`crate::merkle`]) and compares it with [`UpdatePayload::root`].
//! [`verify_notary_answer`] checks the notary signature, channel, size and nonce; comparing the
//! root with the site's own is [`crate::peers`]' job. Misbehaviour of the other side is kept in
//! its own enum, [`Misbehavior`], so callers can tell "the channel lied" from "the bytes were
//! malformed".

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::encoding::{self, serde_hex};
use crate::entry::{Entry, EntryError};
use crate::keys::{KeyPair, PublicKey, Signature};
use crate::limits::Limits;
use crate::merkle;
use crate::protocol::{self, Context};

/// The protocol version in every payload's `v` field.
pub const WIRE_VERSION: u32 = 1;
use crate::names::ChannelName;

/// A 32-byte challenge nonce, fresh from the CSPRNG for every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nonce(#[serde(with = "serde_hex")] pub [u8; 32]);

impl Nonce {
    /// A fresh nonce from the OS CSPRNG.
    pub fn generate() -> Self {
        Self(crate::os::random::bytes::<32>())
    }
    /// Parses 64 lowercase hex characters.
    pub fn from_hex(text: &str) -> Result<Self, WireError> {
        encoding::from_hex_array::<32>(text, "a nonce")
            .map(Self)
            .map_err(|e| WireError::Malformed(e.to_string()))
    }
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        encoding::to_hex(&self.0)
    }
}

/// A 32-byte tree hash (root or node) as lowercase hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TreeHash(#[serde(with = "serde_hex")] pub [u8; 32]);

/// Why wire data was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WireError {
    /// The bytes are not a well-formed message of the expected type.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message is larger than the limit.
    #[error("message of {size} bytes is larger than the limit of {limit}")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The other side answered with an error envelope.
    #[error("the server answered with error {code}: {message}")]
    Remote {
        /// Machine-readable code.
        code: ErrorCode,
        /// Human-readable message (from the server; printed escaped).
        message: String,
    },
    /// The other side sent something well-formed but wrong: see [`Misbehavior`].
    #[error(transparent)]
    Misbehaved(#[from] Misbehavior),
}

/// A well-formed message that proves the other side wrong (or an attacker in between).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Misbehavior {
    /// The signature does not verify with the pinned key.
    #[error("the signature does not verify with the pinned key {0}")]
    BadSignature(PublicKey),
    /// The answer names another channel.
    #[error("the answer is for channel {got:?}, expected {expected:?}")]
    WrongChannel {
        /// Expected name.
        expected: String,
        /// Name in the answer.
        got: String,
    },
    /// The answer carries another nonce than the one sent (replay).
    #[error("the answer does not carry the nonce of this request (a replayed answer?)")]
    WrongNonce,
    /// The signed timestamp is too old.
    #[error(
        "the answer is stale: signed at {time}, now {now}, older than the limit of {max_age} s"
    )]
    Stale {
        /// Signed time.
        time: u64,
        /// Local time.
        now: u64,
        /// Allowed age.
        max_age: u64,
    },
    /// The signed timestamp is too far in the future.
    #[error("the answer is signed at {time}, more than {skew} s after local time {now}")]
    FromTheFuture {
        /// Signed time.
        time: u64,
        /// Local time.
        now: u64,
        /// Allowed skew.
        skew: u64,
    },
    /// The log got shorter than what the site already has.
    #[error("the channel's log shrank from {have} to {got} entries (rollback)")]
    Rollback {
        /// Size the site has.
        have: u64,
        /// Size the channel claims.
        got: u64,
    },
    /// Sizes in the answer do not add up.
    #[error("inconsistent sizes: {0}")]
    Sizes(String),
    /// More entries than allowed in one answer.
    #[error("{got} entries in one answer, more than the limit of {limit}")]
    TooManyEntries {
        /// Entries received.
        got: usize,
        /// The limit.
        limit: usize,
    },
    /// An entry in the answer is malformed.
    #[error("entry {index} in the answer is malformed: {source}")]
    BadEntry {
        /// Its log index.
        index: u64,
        /// Why.
        source: EntryError,
    },
    /// A proof has more hashes than allowed.
    #[error("proof has {got} hashes, more than the limit of {limit}")]
    ProofTooLong {
        /// Hashes received.
        got: usize,
        /// The limit.
        limit: usize,
    },
}

/// The JSON envelope of every HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum Envelope<T> {
    /// Success.
    Ok {
        /// The answer.
        data: T,
    },
    /// Failure.
    Error {
        /// Stable machine-readable code.
        code: ErrorCode,
        /// Human-readable message.
        message: String,
    },
}

impl<T: DeserializeOwned> Envelope<T> {
    /// Parses an envelope from at most `limit` bytes and returns the data of an `ok` answer, or
    /// the remote error.
    pub fn open(bytes: &[u8], limit: u64) -> Result<T, WireError> {
        if bytes.len() as u64 > limit {
            return Err(WireError::TooLarge {
                size: bytes.len() as u64,
                limit,
            });
        }
        let env: Envelope<T> =
            serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
        match env {
            Envelope::Ok { data } => Ok(data),
            Envelope::Error { code, message } => Err(WireError::Remote {
                code,
                message: message.chars().take(512).collect(),
            }),
        }
    }
}

/// Every error code on the wire, in one place: the channel and the notary emit these, and every
/// client matches on them (never on string literals). The text form is `snake_case`; a code
/// this version does not know (a newer server) parses as [`ErrorCode::Unknown`], cut to 64
/// characters, so a client can still print it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// No such endpoint or object. (`not_found`)
    NotFound,
    /// The query string does not parse. (`bad_query`)
    BadQuery,
    /// The request body could not be read. (`bad_body`)
    BadBody,
    /// The request is malformed (notary). (`bad_request`)
    BadRequest,
    /// The body is not the expected JSON. (`malformed_json`)
    MalformedJson,
    /// The submitted entry does not parse. (`malformed_entry`)
    MalformedEntry,
    /// The body is not `application/json`. (`unsupported_media_type`)
    UnsupportedMediaType,
    /// The body or archive is larger than allowed. (`too_large`)
    TooLarge,
    /// Too many requests; try later. (`rate_limited`)
    RateLimited,
    /// The server is at its concurrency limit; try later. (`busy`)
    Busy,
    /// The server gave up on the request in time. (`timeout`)
    Timeout,
    /// A new supplier needs an invite token under this channel's policy. (`invite_required`)
    InviteRequired,
    /// The invite token is unknown or used. (`invite_invalid`)
    InviteInvalid,
    /// The channel could not store the entry. (`storage`)
    Storage,
    /// The channel is stopping. (`shutting_down`)
    ShuttingDown,
    /// The site asked from a size beyond the channel's log (the site's log is longer: a rollback or another log). (`since_beyond_log`)
    SinceBeyondLog,
    /// The nonce does not parse. (`bad_nonce`)
    BadNonce,
    /// The asked range or sizes are out of bounds. (`bad_range`)
    BadRange,
    /// A supplier, package or version name does not parse. (`bad_name`)
    BadName,
    /// No such release in the log (also the key rule for revoking an unknown release). (`unknown_release`)
    UnknownRelease,
    /// No entry of that supplier in the log below the asked size (`GET /v1/suppliers/{name}`;
    /// also the key rule for an entry of a supplier without a master key). (`unknown_supplier`)
    UnknownSupplier,
    /// The notary does not follow that channel. (`unknown_channel`)
    UnknownChannel,
    /// The uploaded archive is not of the logged size. (`archive_size_mismatch`)
    ArchiveSizeMismatch,
    /// The uploaded archive does not have the logged digest. (`archive_digest_mismatch`)
    ArchiveDigestMismatch,
    /// The logged archive signature does not verify over the upload. (`archive_signature_invalid`)
    ArchiveSignatureInvalid,
    /// The release is logged, its archive not yet uploaded. (`archive_not_uploaded`)
    ArchiveNotUploaded,
    /// The upload broke off. (`upload_interrupted`)
    UploadInterrupted,
    /// The channel's signer process is restarting. (`signer_unavailable`)
    SignerUnavailable,
    /// Something failed inside the server; its operator has the details. (`internal`)
    Internal,
    /// The key rules refused the entry: one of [`crate::state::Refusal::RULES`].
    KeyRule(&'static str),
    /// A code this version does not know.
    Unknown(String),
}

const ERROR_CODES: &[(ErrorCode, &str)] = &[
    (ErrorCode::NotFound, "not_found"),
    (ErrorCode::BadQuery, "bad_query"),
    (ErrorCode::BadBody, "bad_body"),
    (ErrorCode::BadRequest, "bad_request"),
    (ErrorCode::MalformedJson, "malformed_json"),
    (ErrorCode::MalformedEntry, "malformed_entry"),
    (ErrorCode::UnsupportedMediaType, "unsupported_media_type"),
    (ErrorCode::TooLarge, "too_large"),
    (ErrorCode::RateLimited, "rate_limited"),
    (ErrorCode::Busy, "busy"),
    (ErrorCode::Timeout, "timeout"),
    (ErrorCode::InviteRequired, "invite_required"),
    (ErrorCode::InviteInvalid, "invite_invalid"),
    (ErrorCode::Storage, "storage"),
    (ErrorCode::ShuttingDown, "shutting_down"),
    (ErrorCode::SinceBeyondLog, "since_beyond_log"),
    (ErrorCode::BadNonce, "bad_nonce"),
    (ErrorCode::BadRange, "bad_range"),
    (ErrorCode::BadName, "bad_name"),
    (ErrorCode::UnknownRelease, "unknown_release"),
    (ErrorCode::UnknownSupplier, "unknown_supplier"),
    (ErrorCode::UnknownChannel, "unknown_channel"),
    (ErrorCode::ArchiveSizeMismatch, "archive_size_mismatch"),
    (ErrorCode::ArchiveDigestMismatch, "archive_digest_mismatch"),
    (
        ErrorCode::ArchiveSignatureInvalid,
        "archive_signature_invalid",
    ),
    (ErrorCode::ArchiveNotUploaded, "archive_not_uploaded"),
    (ErrorCode::UploadInterrupted, "upload_interrupted"),
    (ErrorCode::SignerUnavailable, "signer_unavailable"),
    (ErrorCode::Internal, "internal"),
];

impl ErrorCode {
    /// The code of a key-rule refusal.
    pub fn refused(refusal: &crate::state::Refusal) -> Self {
        Self::parse(refusal.rule())
    }

    /// Parses a code: a known one, a key rule, or [`ErrorCode::Unknown`].
    pub fn parse(text: &str) -> Self {
        if let Some((code, _)) = ERROR_CODES.iter().find(|(_, t)| *t == text) {
            return code.clone();
        }
        if let Some(rule) = crate::state::Refusal::RULES.iter().find(|r| **r == text) {
            return ErrorCode::KeyRule(rule);
        }
        ErrorCode::Unknown(text.chars().take(64).collect())
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::KeyRule(rule) => rule,
            ErrorCode::Unknown(text) => text,
            known => ERROR_CODES
                .iter()
                .find(|(c, _)| c == known)
                .map(|(_, t)| *t)
                .unwrap_or("unknown"),
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Self::parse(&t))
    }
}

/// A payload with a detached signature. The payload is JSON text carried as a string, so the
/// exact signed bytes survive any JSON re-encoding of the envelope around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    /// The exact signed JSON text.
    pub payload: String,
    /// Signature over `context ‖ 0x00 ‖ payload`.
    pub signature: Signature,
}

impl Signed {
    /// Serialises `value` and signs the bytes under `context`.
    pub fn sign<T: Serialize>(keypair: &KeyPair, context: Context, value: &T) -> Self {
        // Serialising the wire types cannot fail.
        let payload = serde_json::to_string(value).unwrap_or_default();
        let signature = protocol::sign(keypair, context, payload.as_bytes());
        Self { payload, signature }
    }

    /// Signs an already serialised payload (the channel's signer process signs bytes it is
    /// handed, after checking the context).
    pub fn from_parts(payload: String, signature: Signature) -> Self {
        Self { payload, signature }
    }

    /// Verifies the signature with `key` under `context`, then parses the payload (strictly:
    /// payload types deny unknown fields) with at most `limit` bytes.
    pub fn open<T: DeserializeOwned>(
        &self,
        key: &PublicKey,
        context: Context,
        limit: u64,
    ) -> Result<T, WireError> {
        if self.payload.len() as u64 > limit {
            return Err(WireError::TooLarge {
                size: self.payload.len() as u64,
                limit,
            });
        }
        protocol::verify(key, context, self.payload.as_bytes(), &self.signature)
            .map_err(|_| Misbehavior::BadSignature(*key))?;
        serde_json::from_str(&self.payload).map_err(|e| WireError::Malformed(e.to_string()))
    }
}

// ---------------------------------------------------------------------------------------------
// Channel API
// ---------------------------------------------------------------------------------------------

/// `POST /v1/submit`: a signed entry (and an invite token where the channel's policy asks for one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// The entry bytes as text (entries are ASCII JSON plus a hex signature).
    pub entry: String,
    /// One-time invite token for a new supplier under the `invite` policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
}

/// Answer to a submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitResponse {
    /// The entry's log index.
    pub index: u64,
    /// Its leaf hash.
    pub leaf_hash: TreeHash,
    /// Log size after the append.
    pub size: u64,
    /// True if the same entry was already in the log (idempotent resubmission).
    pub duplicate: bool,
}

/// Query of `GET /v1/updates`: entries after `since`, bound to `nonce`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// The site's current log size.
    pub since: u64,
    /// Fresh random challenge.
    pub nonce: Nonce,
}

/// The signed payload of an update answer (context [`Context::ChannelUpdate`]). With nothing
/// new, `entries` is empty and `size == since` ("no updates").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePayload {
    /// Always [`WIRE_VERSION`].
    pub v: u32,
    /// The channel's name.
    pub origin: ChannelName,
    /// The request's nonce.
    pub nonce: Nonce,
    /// Channel time, Unix seconds.
    pub time: u64,
    /// The size the site asked from.
    pub since: u64,
    /// Log size after these entries (`since + entries.len()`).
    pub size: u64,
    /// Root hash of the log at `size`.
    pub root: TreeHash,
    /// The channel's whole log size (more pages follow while `size < tree_size`).
    pub tree_size: u64,
    /// The entries `since .. size`, exact bytes as text.
    pub entries: Vec<String>,
}

/// An update answer that passed [`verify_update`]: signature, origin, nonce, time, sizes and
/// entry syntax are good. The root is not yet checked against the site's log: that is
/// [`crate::log::LogView::extend`]'s job. Only [`verify_update`] makes one, so holding one means
/// these checks ran; nothing downstream needs to verify it again.
#[derive(Debug, Clone)]
pub struct VerifiedUpdate {
    payload: UpdatePayload,
    entries: Vec<Entry>,
    signed: Signed,
    channel_key: PublicKey,
    batched: bool,
}

impl VerifiedUpdate {
    /// The "no updates" answer a verified batch head makes for the site's nonce: no entries,
    /// `since == size == tree_size ==` the signed size. `signed` is the batch head (context
    /// `channel-batch`), kept as evidence like any statement. Only
    /// [`crate::batch::verify_batched_update`] calls this, after every check.
    pub(crate) fn from_batch(
        head: &crate::batch::BatchHead,
        nonce: Nonce,
        signed: Signed,
        channel_key: PublicKey,
    ) -> Self {
        VerifiedUpdate {
            payload: UpdatePayload {
                v: head.v,
                origin: head.origin.clone(),
                nonce,
                time: head.time,
                since: head.size,
                size: head.size,
                root: head.root,
                tree_size: head.size,
                entries: Vec::new(),
            },
            entries: Vec::new(),
            signed,
            channel_key,
            batched: true,
        }
    }
    /// True when this answer came from a batched freshness answer ([`crate::batch`]): then
    /// [`Self::signed`] is the batch head, and [`Self::payload`] is made from it (the nonce is
    /// the site's own, bound by the batch path rather than signed directly).
    pub fn is_batched(&self) -> bool {
        self.batched
    }
    /// The pinned channel key the signature was verified with: a consumer that follows several
    /// channels compares it (and [`Self::origin`]) with the channel it files the update under.
    pub fn channel_key(&self) -> &PublicKey {
        &self.channel_key
    }
    /// The channel's name.
    pub fn origin(&self) -> &ChannelName {
        &self.payload.origin
    }
    /// The size the answer starts at (the size asked for).
    pub fn since(&self) -> u64 {
        self.payload.since
    }
    /// The log size after these entries.
    pub fn size(&self) -> u64 {
        self.payload.size
    }
    /// The signed root at [`Self::size`].
    pub fn root(&self) -> &TreeHash {
        &self.payload.root
    }
    /// The channel's whole log size (more pages follow while `size < tree_size`).
    pub fn tree_size(&self) -> u64 {
        self.payload.tree_size
    }
    /// True when more pages follow.
    pub fn has_more(&self) -> bool {
        self.payload.size < self.payload.tree_size
    }
    /// The channel's signed time, Unix seconds.
    pub fn time(&self) -> u64 {
        self.payload.time
    }
    /// The parsed entries, in log order (index `since + i`).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
    /// The entries, giving up the rest.
    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }
    /// The signed answer as received, kept as evidence.
    pub fn signed(&self) -> &Signed {
        &self.signed
    }
    /// The whole verified payload (read-only).
    pub fn payload(&self) -> &UpdatePayload {
        &self.payload
    }
}

/// Checks a channel's update answer to `request` (see the module docs for what is and is not
/// checked). `now` is the local Unix time in seconds.
pub fn verify_update(
    signed: &Signed,
    channel_key: &PublicKey,
    origin: &ChannelName,
    request: &UpdateRequest,
    now: u64,
    limits: &Limits,
) -> Result<VerifiedUpdate, WireError> {
    let p: UpdatePayload = signed.open(
        channel_key,
        Context::ChannelUpdate,
        limits.max_update_response_bytes,
    )?;
    check_header(
        p.v,
        &p.origin,
        origin,
        &p.nonce,
        &request.nonce,
        p.time,
        now,
        limits,
    )?;
    if p.since != request.since {
        if p.size < request.since {
            return Err(Misbehavior::Rollback {
                have: request.since,
                got: p.size,
            }
            .into());
        }
        return Err(Misbehavior::Sizes(format!(
            "answer starts at {} but {} was asked",
            p.since, request.since
        ))
        .into());
    }
    if p.tree_size < request.since {
        return Err(Misbehavior::Rollback {
            have: request.since,
            got: p.tree_size,
        }
        .into());
    }
    if p.entries.len() > limits.max_entries_per_page {
        return Err(Misbehavior::TooManyEntries {
            got: p.entries.len(),
            limit: limits.max_entries_per_page,
        }
        .into());
    }
    check_update_sizes(&p)?;
    let mut entries = Vec::with_capacity(p.entries.len());
    for (i, text) in p.entries.iter().enumerate() {
        let index = p.since + i as u64;
        if text.len() > limits.max_entry_bytes {
            return Err(Misbehavior::BadEntry {
                index,
                source: EntryError::Oversize(text.len()),
            }
            .into());
        }
        entries.push(
            Entry::parse(text.as_bytes())
                .map_err(|source| Misbehavior::BadEntry { index, source })?,
        );
    }
    Ok(VerifiedUpdate {
        payload: p,
        entries,
        signed: signed.clone(),
        channel_key: *channel_key,
        batched: false,
    })
}

/// The shape rule of every update statement, wherever it comes from (a fresh answer or stored
/// fork evidence): `since + entries == size <= tree_size <= MAX_TREE_SIZE`.
pub(crate) fn check_update_sizes(p: &UpdatePayload) -> Result<(), Misbehavior> {
    let expected = p.since.checked_add(p.entries.len() as u64);
    if expected != Some(p.size) || p.size > p.tree_size || p.tree_size > merkle::MAX_TREE_SIZE {
        return Err(Misbehavior::Sizes(format!(
            "since {} + {} entries != size {} (tree size {})",
            p.since,
            p.entries.len(),
            p.size,
            p.tree_size
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn check_header(
    v: u32,
    got_origin: &ChannelName,
    origin: &ChannelName,
    got_nonce: &Nonce,
    nonce: &Nonce,
    time: u64,
    now: u64,
    limits: &Limits,
) -> Result<(), WireError> {
    if v != WIRE_VERSION {
        return Err(WireError::Malformed(format!(
            "protocol version {v} is not supported"
        )));
    }
    if got_origin != origin {
        return Err(Misbehavior::WrongChannel {
            expected: origin.as_str().to_owned(),
            got: got_origin.as_str().to_owned(),
        }
        .into());
    }
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        &got_nonce.0[..],
        &nonce.0[..],
    )) {
        return Err(Misbehavior::WrongNonce.into());
    }
    check_time(time, now, limits)
}

/// Checks a signed timestamp against the local clock and the limits' window.
pub fn check_time(time: u64, now: u64, limits: &Limits) -> Result<(), WireError> {
    if time > now.saturating_add(limits.max_clock_skew_secs) {
        return Err(Misbehavior::FromTheFuture {
            time,
            now,
            skew: limits.max_clock_skew_secs,
        }
        .into());
    }
    if now.saturating_sub(time) > limits.max_response_age_secs {
        return Err(Misbehavior::Stale {
            time,
            now,
            max_age: limits.max_response_age_secs,
        }
        .into());
    }
    Ok(())
}

/// A signed checkpoint payload (context [`Context::Checkpoint`]): the channel's statement of its
/// log at a size. Also the unit of fork evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Always [`WIRE_VERSION`].
    pub v: u32,
    /// The channel's name.
    pub origin: ChannelName,
    /// Tree size.
    pub size: u64,
    /// Root hash at that size.
    pub root: TreeHash,
    /// Channel time, Unix seconds.
    pub time: u64,
}

/// A checkpoint that passed [`verify_checkpoint`]: signed by the pinned channel key under the
/// checkpoint context, of this protocol version, for the expected origin, with a size a log can
/// have. Freshness is not part of it (a checkpoint stays a statement about the log however old
/// it is); call [`VerifiedCheckpoint::check_fresh`] where age matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    checkpoint: Checkpoint,
    signed: Signed,
}

impl VerifiedCheckpoint {
    /// The origin.
    pub fn origin(&self) -> &ChannelName {
        &self.checkpoint.origin
    }
    /// The tree size.
    pub fn size(&self) -> u64 {
        self.checkpoint.size
    }
    /// The root at that size.
    pub fn root(&self) -> &TreeHash {
        &self.checkpoint.root
    }
    /// The channel's signed time, Unix seconds.
    pub fn time(&self) -> u64 {
        self.checkpoint.time
    }
    /// The signed checkpoint as received (evidence).
    pub fn signed(&self) -> &Signed {
        &self.signed
    }
    /// The payload.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
    /// Checks the signed time against the local clock `now` and the limits' window.
    pub fn check_fresh(&self, now: u64, limits: &Limits) -> Result<(), WireError> {
        check_time(self.checkpoint.time, now, limits)
    }
}

/// Opens a signed checkpoint: signature with the pinned `channel_key` under
/// [`Context::Checkpoint`], version, `origin` (when the caller knows it; `None` takes the origin
/// the checkpoint names, as `continuum init` does before it has one) and the size bound. The one
/// way to a [`VerifiedCheckpoint`].
pub fn verify_checkpoint(
    signed: &Signed,
    channel_key: &PublicKey,
    origin: Option<&ChannelName>,
    limits: &Limits,
) -> Result<VerifiedCheckpoint, WireError> {
    let checkpoint: Checkpoint = signed.open(
        channel_key,
        Context::Checkpoint,
        limits.max_small_response_bytes,
    )?;
    if checkpoint.v != WIRE_VERSION {
        return Err(WireError::Malformed(format!(
            "protocol version {} is not supported",
            checkpoint.v
        )));
    }
    if let Some(origin) = origin
        && &checkpoint.origin != origin
    {
        return Err(Misbehavior::WrongChannel {
            expected: origin.as_str().to_owned(),
            got: checkpoint.origin.as_str().to_owned(),
        }
        .into());
    }
    if checkpoint.size > merkle::MAX_TREE_SIZE {
        return Err(Misbehavior::Sizes(format!(
            "checkpoint size {} is beyond any log",
            checkpoint.size
        ))
        .into());
    }
    Ok(VerifiedCheckpoint {
        checkpoint,
        signed: signed.clone(),
    })
}

/// `GET /v1/proof/inclusion?index=I&size=N` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProofResponse {
    /// Leaf index.
    pub index: u64,
    /// Tree size the proof is for.
    pub size: u64,
    /// The audit path, leaf to root.
    pub path: Vec<TreeHash>,
}

/// `GET /v1/proof/consistency?old=M&new=N` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProofResponse {
    /// Older size.
    pub old: u64,
    /// Newer size.
    pub new: u64,
    /// The consistency path.
    pub path: Vec<TreeHash>,
}

/// `GET /v1/entries?start=S&end=E` answer: raw entries for auditors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntriesResponse {
    /// Index of the first entry.
    pub start: u64,
    /// The entries, exact bytes as text.
    pub entries: Vec<String>,
}

/// Most leaf hashes in one `GET /v1/leaves` answer.
pub const MAX_LEAF_HASHES_PER_PAGE: u64 = 4096;

/// `GET /v1/leaves?start=S&end=E` answer: the leaf hashes of entries `S..E` (at most
/// [`MAX_LEAF_HASHES_PER_PAGE`]), for a notary that needs the tree but not the entries. Not
/// signed: a reader trusts them only once, with the leaves of a signed update, they hash to
/// its signed root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeafHashesResponse {
    /// Index of the first leaf.
    pub start: u64,
    /// The leaf hashes, in order.
    pub hashes: Vec<TreeHash>,
}

impl InclusionProofResponse {
    /// The wire form of a proof made by [`crate::merkle::prove_inclusion`].
    pub fn from_proof(index: u64, size: u64, proof: &merkle::InclusionProof) -> Self {
        Self {
            index,
            size,
            path: proof.hashes().iter().copied().map(TreeHash).collect(),
        }
    }
    /// The proof, after checking its length against the limits; verify it with
    /// [`crate::merkle::verify_inclusion`].
    pub fn to_proof(&self, limits: &Limits) -> Result<merkle::InclusionProof, WireError> {
        check_proof_len(&self.path, limits)?;
        merkle::InclusionProof::new(self.path.iter().map(|h| h.0).collect())
            .map_err(|e| WireError::Malformed(e.to_string()))
    }
}

impl ConsistencyProofResponse {
    /// The wire form of a proof made by [`crate::merkle::prove_consistency`].
    pub fn from_proof(old: u64, new: u64, proof: &merkle::ConsistencyProof) -> Self {
        Self {
            old,
            new,
            path: proof.hashes().iter().copied().map(TreeHash).collect(),
        }
    }
    /// The proof, after checking its length against the limits; verify it with
    /// [`crate::merkle::verify_consistency`].
    pub fn to_proof(&self, limits: &Limits) -> Result<merkle::ConsistencyProof, WireError> {
        check_proof_len(&self.path, limits)?;
        merkle::ConsistencyProof::new(self.path.iter().map(|h| h.0).collect())
            .map_err(|e| WireError::Malformed(e.to_string()))
    }
}

/// Checks a proof's length against the limit before it is used.
pub fn check_proof_len(path: &[TreeHash], limits: &Limits) -> Result<(), WireError> {
    if path.len() > limits.max_proof_hashes {
        return Err(Misbehavior::ProofTooLong {
            got: path.len(),
            limit: limits.max_proof_hashes,
        }
        .into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Notary API
// ---------------------------------------------------------------------------------------------

/// `POST /v1/notary/root`: "what is your root of channel C at size S?"
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotaryRequest {
    /// The channel.
    pub channel: ChannelName,
    /// The size asked about.
    pub size: u64,
    /// Fresh random challenge.
    pub nonce: Nonce,
}

/// What a notary says about the size asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum NotaryStatus {
    /// The root the channel showed this notary at that size.
    Ok {
        /// Root hash.
        root: TreeHash,
    },
    /// The notary has not observed that size and could not reach the channel.
    Behind {
        /// The largest size it has observed.
        observed: u64,
    },
    /// The channel showed this notary two inconsistent views; here are both signed statements.
    ForkDetected {
        /// Channel-signed statements (checkpoints or update answers) that contradict each other.
        evidence: Vec<Signed>,
    },
}

/// The signed payload of a notary answer (context [`Context::NotaryAnswer`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotaryPayload {
    /// Always [`WIRE_VERSION`].
    pub v: u32,
    /// The channel.
    pub channel: ChannelName,
    /// The size asked.
    pub size: u64,
    /// The request's nonce.
    pub nonce: Nonce,
    /// Notary time, Unix seconds.
    pub time: u64,
    /// The answer.
    pub status: NotaryStatus,
}

/// Checks a notary's answer to `request` with the peer's pinned `notary_key`: signature,
/// channel, size, nonce, time window and evidence count. The caller compares the root.
pub fn verify_notary_answer(
    signed: &Signed,
    notary_key: &PublicKey,
    request: &NotaryRequest,
    now: u64,
    limits: &Limits,
) -> Result<NotaryPayload, WireError> {
    let p: NotaryPayload = signed.open(
        notary_key,
        Context::NotaryAnswer,
        limits.max_small_response_bytes,
    )?;
    check_header(
        p.v,
        &p.channel,
        &request.channel,
        &p.nonce,
        &request.nonce,
        p.time,
        now,
        limits,
    )?;
    if p.size != request.size {
        return Err(Misbehavior::Sizes(format!(
            "notary answered about size {} but {} was asked",
            p.size, request.size
        ))
        .into());
    }
    if let NotaryStatus::ForkDetected { evidence } = &p.status
        && evidence.len() > limits.max_fork_evidence
    {
        return Err(WireError::Malformed(format!(
            "{} evidence statements, more than {}",
            evidence.len(),
            limits.max_fork_evidence
        )));
    }
    Ok(p)
}

/// True if a `Content-Type` header value names JSON: `application/json`, in any case, with or
/// without parameters (`; charset=utf-8`). `None` (no header, or one that is not text) is not
/// JSON. Both servers (channel submissions, notary requests) accept request bodies only when
/// this holds; it does not look at the body.
pub fn is_json_content_type(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_content_types_are_json() {
        for yes in [
            "application/json",
            "Application/JSON",
            " application/json ; charset=utf-8",
        ] {
            assert!(is_json_content_type(Some(yes)), "{yes}");
        }
        for no in [
            "text/plain",
            "application/jsonx",
            "application/json-seq",
            "",
            "multipart/form-data; boundary=application/json",
        ] {
            assert!(!is_json_content_type(Some(no)), "{no}");
        }
        assert!(!is_json_content_type(None));
    }

    fn origin() -> ChannelName {
        ChannelName::parse("plugins.example.org").unwrap()
    }

    fn update(kp: &KeyPair, req: &UpdateRequest, time: u64, n: usize) -> Signed {
        Signed::sign(
            kp,
            Context::ChannelUpdate,
            &UpdatePayload {
                v: 1,
                origin: origin(),
                nonce: req.nonce,
                time,
                since: req.since,
                size: req.since + n as u64,
                root: TreeHash([0; 32]),
                tree_size: req.since + n as u64,
                entries: Vec::new(),
            },
        )
    }

    #[test]
    fn update_happy_and_failures() {
        let ch = KeyPair::generate();
        let req = UpdateRequest {
            since: 5,
            nonce: Nonce::generate(),
        };
        let l = Limits::default();
        let now = 1_000_000;
        let ok = update(&ch, &req, now, 0);
        verify_update(&ok, &ch.public(), &origin(), &req, now, &l).unwrap();

        // Forged: signed by another key.
        let forged = update(&KeyPair::generate(), &req, now, 0);
        assert!(matches!(
            verify_update(&forged, &ch.public(), &origin(), &req, now, &l),
            Err(WireError::Misbehaved(Misbehavior::BadSignature(_)))
        ));
        // Replayed: old nonce.
        let other = UpdateRequest {
            since: 5,
            nonce: Nonce::generate(),
        };
        assert!(matches!(
            verify_update(&ok, &ch.public(), &origin(), &other, now, &l),
            Err(WireError::Misbehaved(Misbehavior::WrongNonce))
        ));
        // Stale and future.
        assert!(matches!(
            verify_update(
                &update(&ch, &req, now - 86_401, 0),
                &ch.public(),
                &origin(),
                &req,
                now,
                &l
            ),
            Err(WireError::Misbehaved(Misbehavior::Stale { .. }))
        ));
        assert!(matches!(
            verify_update(
                &update(&ch, &req, now + 301, 0),
                &ch.public(),
                &origin(),
                &req,
                now,
                &l
            ),
            Err(WireError::Misbehaved(Misbehavior::FromTheFuture { .. }))
        ));
        // Tampered payload after signing.
        let mut t = ok.clone();
        t.payload = t.payload.replace("\"since\":5", "\"since\":6");
        assert!(matches!(
            verify_update(&t, &ch.public(), &origin(), &req, now, &l),
            Err(WireError::Misbehaved(Misbehavior::BadSignature(_)))
        ));
        // Wrong context: a checkpoint signature over the same bytes.
        let wrong_ctx = Signed {
            payload: ok.payload.clone(),
            signature: protocol::sign(&ch, Context::Checkpoint, ok.payload.as_bytes()),
        };
        assert!(verify_update(&wrong_ctx, &ch.public(), &origin(), &req, now, &l).is_err());
    }

    #[test]
    fn rollback_and_size_mismatch() {
        let ch = KeyPair::generate();
        let req = UpdateRequest {
            since: 5,
            nonce: Nonce::generate(),
        };
        let l = Limits::default();
        let mk = |since: u64, size: u64, tree: u64, entries: Vec<String>| {
            Signed::sign(
                &ch,
                Context::ChannelUpdate,
                &UpdatePayload {
                    v: 1,
                    origin: origin(),
                    nonce: req.nonce,
                    time: 10,
                    since,
                    size,
                    root: TreeHash([0; 32]),
                    tree_size: tree,
                    entries,
                },
            )
        };
        assert!(matches!(
            verify_update(&mk(3, 3, 3, vec![]), &ch.public(), &origin(), &req, 10, &l),
            Err(WireError::Misbehaved(Misbehavior::Rollback {
                have: 5,
                got: 3
            }))
        ));
        assert!(matches!(
            verify_update(&mk(5, 6, 6, vec![]), &ch.public(), &origin(), &req, 10, &l),
            Err(WireError::Misbehaved(Misbehavior::Sizes(_)))
        ));
        assert!(matches!(
            verify_update(
                &mk(5, 6, 6, vec!["garbage".into()]),
                &ch.public(),
                &origin(),
                &req,
                10,
                &l
            ),
            Err(WireError::Misbehaved(Misbehavior::BadEntry {
                index: 5,
                ..
            }))
        ));
        let tight = Limits {
            max_entries_per_page: 1,
            ..Limits::default()
        };
        assert!(matches!(
            verify_update(
                &mk(5, 7, 7, vec!["a".into(), "b".into()]),
                &ch.public(),
                &origin(),
                &req,
                10,
                &tight
            ),
            Err(WireError::Misbehaved(Misbehavior::TooManyEntries { .. }))
        ));
        // Oversized payload is refused before any parsing.
        let small = Limits {
            max_update_response_bytes: 10,
            ..Limits::default()
        };
        assert!(matches!(
            verify_update(
                &mk(5, 5, 5, vec![]),
                &ch.public(),
                &origin(),
                &req,
                10,
                &small
            ),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn notary_answer() {
        let n = KeyPair::generate();
        let req = NotaryRequest {
            channel: origin(),
            size: 9,
            nonce: Nonce::generate(),
        };
        let l = Limits::default();
        let sign = |size: u64, nonce: Nonce, status: NotaryStatus| {
            Signed::sign(
                &n,
                Context::NotaryAnswer,
                &NotaryPayload {
                    v: 1,
                    channel: origin(),
                    size,
                    nonce,
                    time: 50,
                    status,
                },
            )
        };
        let ok = sign(
            9,
            req.nonce,
            NotaryStatus::Ok {
                root: TreeHash([1; 32]),
            },
        );
        let p = verify_notary_answer(&ok, &n.public(), &req, 50, &l).unwrap();
        assert_eq!(
            p.status,
            NotaryStatus::Ok {
                root: TreeHash([1; 32])
            }
        );
        assert!(verify_notary_answer(&ok, &KeyPair::generate().public(), &req, 50, &l).is_err());
        let wrong_size = sign(8, req.nonce, NotaryStatus::Behind { observed: 3 });
        assert!(matches!(
            verify_notary_answer(&wrong_size, &n.public(), &req, 50, &l),
            Err(WireError::Misbehaved(Misbehavior::Sizes(_)))
        ));
        let replay = sign(9, Nonce::generate(), NotaryStatus::Behind { observed: 3 });
        assert!(matches!(
            verify_notary_answer(&replay, &n.public(), &req, 50, &l),
            Err(WireError::Misbehaved(Misbehavior::WrongNonce))
        ));
        let ev = sign(
            9,
            req.nonce,
            NotaryStatus::ForkDetected {
                evidence: vec![ok.clone(), ok.clone(), ok],
            },
        );
        assert!(verify_notary_answer(&ev, &n.public(), &req, 50, &l).is_err());
    }

    #[test]
    fn envelopes() {
        let ok: Result<SubmitResponse, _> = Envelope::open(
            br#"{"status":"ok","data":{"index":3,"leaf_hash":"0000000000000000000000000000000000000000000000000000000000000000","size":4,"duplicate":false}}"#,
            1000,
        );
        assert_eq!(ok.unwrap().index, 3);
        let err: Result<SubmitResponse, _> = Envelope::open(
            br#"{"status":"error","code":"last_master_key","message":"no"}"#,
            1000,
        );
        assert!(matches!(err, Err(WireError::Remote { code, .. }) if code == "last_master_key"));
        let unknown: Result<SubmitResponse, _> =
            Envelope::open(br#"{"status":"ok","data":{"index":3},"x":1}"#, 1000);
        assert!(unknown.is_err());
        let big: Result<SubmitResponse, _> = Envelope::open(&[b' '; 100], 10);
        assert!(matches!(big, Err(WireError::TooLarge { .. })));
        let json = serde_json::to_string(&Envelope::<u8>::Error {
            code: ErrorCode::InviteRequired,
            message: "m".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"status":"error","code":"invite_required","message":"m"}"#
        );
    }

    #[test]
    fn checkpoints_open_only_with_the_pin_origin_version_and_size() {
        let ch = KeyPair::generate();
        let l = Limits::default();
        let cp = |v: u32, name: &str, size: u64, time: u64| Checkpoint {
            v,
            origin: ChannelName::parse(name).unwrap(),
            size,
            root: TreeHash([7; 32]),
            time,
        };
        let good = Signed::sign(&ch, Context::Checkpoint, &cp(1, "c", 5, 1000));
        let o = ChannelName::parse("c").unwrap();
        let v = verify_checkpoint(&good, &ch.public(), Some(&o), &l).unwrap();
        assert_eq!((v.size(), v.root().0, v.origin()), (5, [7; 32], &o));
        assert_eq!(v.signed(), &good);
        // Without a known origin, the checkpoint's own is taken (continuum init).
        assert!(verify_checkpoint(&good, &ch.public(), None, &l).is_ok());
        // Freshness is a separate, explicit check.
        assert!(v.check_fresh(1000, &l).is_ok());
        assert!(matches!(
            v.check_fresh(1000 + l.max_response_age_secs + 1, &l),
            Err(WireError::Misbehaved(Misbehavior::Stale { .. }))
        ));
        // Another key, another context, another origin, version or an impossible size.
        let other = KeyPair::generate();
        assert!(matches!(
            verify_checkpoint(&good, &other.public(), Some(&o), &l),
            Err(WireError::Misbehaved(Misbehavior::BadSignature(_)))
        ));
        let as_update = Signed::from_parts(
            good.payload.clone(),
            protocol::sign(&ch, Context::ChannelUpdate, good.payload.as_bytes()),
        );
        assert!(matches!(
            verify_checkpoint(&as_update, &ch.public(), Some(&o), &l),
            Err(WireError::Misbehaved(Misbehavior::BadSignature(_)))
        ));
        let elsewhere = Signed::sign(&ch, Context::Checkpoint, &cp(1, "d", 5, 1000));
        assert!(matches!(
            verify_checkpoint(&elsewhere, &ch.public(), Some(&o), &l),
            Err(WireError::Misbehaved(Misbehavior::WrongChannel { .. }))
        ));
        let v2 = Signed::sign(&ch, Context::Checkpoint, &cp(2, "c", 5, 1000));
        assert!(matches!(
            verify_checkpoint(&v2, &ch.public(), Some(&o), &l),
            Err(WireError::Malformed(_))
        ));
        let huge = Signed::sign(&ch, Context::Checkpoint, &cp(1, "c", u64::MAX, 1000));
        assert!(matches!(
            verify_checkpoint(&huge, &ch.public(), Some(&o), &l),
            Err(WireError::Misbehaved(Misbehavior::Sizes(_)))
        ));
        // Oversized and truncated payloads.
        let tight = Limits {
            max_small_response_bytes: 10,
            ..Limits::default()
        };
        assert!(matches!(
            verify_checkpoint(&good, &ch.public(), Some(&o), &tight),
            Err(WireError::TooLarge { .. })
        ));
        let cut = Signed::from_parts(
            good.payload[..good.payload.len() - 1].to_owned(),
            protocol::sign(
                &ch,
                Context::Checkpoint,
                &good.payload.as_bytes()[..good.payload.len() - 1],
            ),
        );
        assert!(matches!(
            verify_checkpoint(&cut, &ch.public(), Some(&o), &l),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn every_error_code_has_one_text_and_parses_back() {
        let mut seen = std::collections::BTreeSet::new();
        for (code, text) in ERROR_CODES {
            assert_eq!(code.as_str(), *text);
            assert_eq!(&ErrorCode::parse(text), code);
            assert!(seen.insert(*text), "{text} twice");
        }
        // Every key rule is a code; one that is also an endpoint code parses as that.
        for rule in crate::state::Refusal::RULES {
            let code = ErrorCode::parse(rule);
            assert_eq!(code.as_str(), *rule);
            assert!(!matches!(code, ErrorCode::Unknown(_)), "{rule}");
        }
        let long = "x".repeat(100);
        assert_eq!(ErrorCode::parse(&long), ErrorCode::Unknown("x".repeat(64)));
        let back: ErrorCode = serde_json::from_str("\"since_beyond_log\"").unwrap();
        assert_eq!(back, ErrorCode::SinceBeyondLog);
        assert!(back == "since_beyond_log");
    }

    #[test]
    fn proofs_round_trip_through_the_wire() {
        use crate::merkle::{Blake2b256, MemoryStore, TreeHasher};
        let h = Blake2b256;
        let mut log = MemoryStore::new();
        for i in 0..20u8 {
            log.append(&h, &[i]).unwrap();
        }
        let root = merkle::root_at(&h, 20, &log).unwrap();
        let p = merkle::prove_inclusion(&h, 7, 20, &log).unwrap();
        let wire = InclusionProofResponse::from_proof(7, 20, &p);
        let json = serde_json::to_string(&wire).unwrap();
        let back: InclusionProofResponse = serde_json::from_str(&json).unwrap();
        let proof = back.to_proof(&Limits::default()).unwrap();
        merkle::verify_inclusion(&h, 7, 20, &h.hash_leaf(&[7]), &proof, &root).unwrap();
        let c = merkle::prove_consistency(&h, 5, 20, &log).unwrap();
        let cw = ConsistencyProofResponse::from_proof(5, 20, &c);
        let old = merkle::root_at(&h, 5, &log).unwrap();
        merkle::verify_consistency(
            &h,
            5,
            20,
            &old,
            &root,
            &cw.to_proof(&Limits::default()).unwrap(),
        )
        .unwrap();
        let long = InclusionProofResponse {
            index: 0,
            size: 1,
            path: vec![TreeHash([0; 32]); 65],
        };
        assert!(matches!(
            long.to_proof(&Limits::default()),
            Err(WireError::Misbehaved(Misbehavior::ProofTooLong {
                got: 65,
                limit: 64
            }))
        ));
    }

    #[test]
    fn channel_names() {
        assert!(ChannelName::parse("a.b/c").is_ok());
        assert!(ChannelName::parse("").is_err());
        assert!(ChannelName::parse("a b").is_err());
        assert!(ChannelName::parse(&"a".repeat(129)).is_err());
    }
}
