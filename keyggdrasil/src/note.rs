//! C2SP signed notes (`c2sp.org/signed-note`): the text form the transparency ecosystem's
//! checkpoints, cosignatures and witnesses use, so tools outside this workspace (Go's
//! `golang.org/x/mod/sumdb/note`, Sigsum, Tessera, the public witnesses) can check our
//! signatures.
//!
//! A note is UTF-8 text ending in a newline, a blank line, then one line per signature:
//! `— <key name> <base64(key ID ‖ signature)>`. The key ID is the first four bytes of
//! SHA-256(key name ‖ `\n` ‖ signature type ‖ public key). A verifier key is written
//! `<name>+<hex key ID>+<base64(type ‖ public key)>`.
//!
//! What this module does: parse a note with the same rules and verdicts as Go's `note.Open`
//! (the golang/mod test cases are in `tests/note_vectors.rs`); verify Ed25519 note signatures
//! (type `0x01`) and `cosignature/v1` cosignatures (type `0x04`, timestamped,
//! `c2sp.org/tlog-cosignature`); sign a note with an Ed25519 key. What it does not do: decide
//! what a note says (a checkpoint's fields are parsed by its reader), trust any key it was not
//! given, or read files or the network.
//!
//! Where we are stricter than Go, on purpose: base64 must be canonical (Go's decoder accepts
//! non-zero trailing bits), and an Ed25519 key must be a canonical point not of small order
//! (as every key of ours is). Signatures are verified strictly
//! ([`crate::keys::PublicKey::verify_strict`]).
//!
//! Domain separation from our own signatures: every protocol signature of ours is over
//! `context ‖ 0x00 ‖ message` ([`crate::protocol::signed_bytes`]), which holds a NUL byte, and a
//! note's text can hold no control character but the newline; a cosignature's signed message
//! (`cosignature/v1\ntime …\n` and the text) holds none either. So no note signature is ever a
//! valid signature of one of our protocol messages, or the other way round, under one key.

use base64ct::{Base64, Encoding};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::keys::{KeyPair, PublicKey, Signature};

/// Signature type of an Ed25519 note signature over the note's text.
pub const ALG_ED25519: u8 = 0x01;
/// Signature type of a `cosignature/v1` (timestamped Ed25519, `c2sp.org/tlog-cosignature`).
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// The latest cosignature timestamp the spec allows (2^63 − 1).
pub const MAX_COSIGNATURE_TIME: u64 = i64::MAX as u64;
/// Most signature lines a note may have (Go's limit: parsing stays cheap).
pub const MAX_SIGNATURES: usize = 100;
/// Most bytes of a note we parse (a checkpoint with 100 cosignatures is under 20 KiB).
pub const MAX_NOTE_BYTES: usize = 64 * 1024;

/// Why a note, key or signature was refused. The messages are Go's where Go has one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NoteError {
    /// Not a well-formed note: bad UTF-8, a control character, no signature block, a bad
    /// signature line, or more than [`MAX_SIGNATURES`] signatures.
    #[error("malformed note")]
    Malformed,
    /// Larger than [`MAX_NOTE_BYTES`].
    #[error("note of {0} bytes is larger than the limit of {MAX_NOTE_BYTES}")]
    TooLarge(usize),
    /// A verifier key that is not `name+hex8+base64`, has a bad name, or a bad key.
    #[error("malformed verifier id")]
    VerifierId,
    /// A verifier key whose key ID does not match its name and key.
    #[error("invalid verifier hash")]
    VerifierHash,
    /// A verifier key of a signature type this module does not know.
    #[error("unknown verifier algorithm")]
    VerifierAlg,
    /// A key name with a space, a `+`, or nothing in it.
    #[error("invalid key name {0:?}: a note key name is non-empty, without spaces or '+'")]
    Name(String),
    /// Two known keys have this name and key ID.
    #[error("ambiguous key {name}+{id:08x}")]
    Ambiguous {
        /// The key name.
        name: String,
        /// The key ID.
        id: u32,
    },
    /// A signature by a known key that does not verify.
    #[error("invalid signature for key {name}+{id:08x}")]
    InvalidSignature {
        /// The key name.
        name: String,
        /// The key ID.
        id: u32,
    },
    /// No signature is by a known key.
    #[error("note has no verifiable signatures")]
    Unverified,
    /// The text to sign does not end in a newline or holds a control character.
    #[error("malformed note")]
    Text,
}

/// Whether `name` may be a note key name: non-empty, no Unicode space, no `+`.
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(char::is_whitespace) && !name.contains('+')
}

/// The key ID: the first four bytes, big-endian, of SHA-256(name ‖ `\n` ‖ type ‖ key).
pub fn key_id(name: &str, alg: u8, key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([alg]);
    h.update(key);
    let sum = h.finalize();
    u32::from_be_bytes([sum[0], sum[1], sum[2], sum[3]])
}

/// A key that verifies note signatures: its name, ID, signature type and Ed25519 key.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    alg: u8,
    key: PublicKey,
}

impl std::fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

impl std::fmt::Display for VerifierKey {
    /// The verifier-key text form, `name+hex(key ID)+base64(type ‖ key)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = Vec::with_capacity(33);
        raw.push(self.alg);
        raw.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.id,
            Base64::encode_string(&raw)
        )
    }
}

impl VerifierKey {
    /// The verifier of Ed25519 note signatures (type `0x01`) by `key` under `name`.
    pub fn ed25519(name: &str, key: &PublicKey) -> Result<Self, NoteError> {
        Self::new(name, ALG_ED25519, key)
    }

    /// The verifier of `cosignature/v1` cosignatures (type `0x04`) by `key` under `name`.
    pub fn cosignature_v1(name: &str, key: &PublicKey) -> Result<Self, NoteError> {
        Self::new(name, ALG_COSIGNATURE_V1, key)
    }

    fn new(name: &str, alg: u8, key: &PublicKey) -> Result<Self, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::Name(name.to_owned()));
        }
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, alg, key.as_bytes()),
            alg,
            key: *key,
        })
    }

    /// Parses the text form `name+hex8+base64(type ‖ key)`, with Go's `NewVerifier` checks:
    /// eight hex digits, a valid name, the key ID matching, a known type with a 32-byte key.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let (name, rest) = text.split_once('+').unwrap_or((text, ""));
        let (id_hex, key_b64) = rest.split_once('+').unwrap_or((rest, ""));
        let id = (id_hex.len() == 8 && id_hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(id_hex, 16).ok())
            .flatten();
        let raw = Base64::decode_vec(key_b64).ok();
        let (Some(id), Some(raw)) = (id, raw) else {
            return Err(NoteError::VerifierId);
        };
        if !valid_key_name(name) || raw.is_empty() {
            return Err(NoteError::VerifierId);
        }
        if id != key_id(name, raw[0], &raw[1..]) {
            return Err(NoteError::VerifierHash);
        }
        let alg = raw[0];
        if alg != ALG_ED25519 && alg != ALG_COSIGNATURE_V1 {
            return Err(NoteError::VerifierAlg);
        }
        let bytes: [u8; 32] = raw[1..].try_into().map_err(|_| NoteError::VerifierId)?;
        let key = PublicKey::from_bytes(&bytes).map_err(|_| NoteError::VerifierId)?;
        Ok(Self {
            name: name.to_owned(),
            id,
            alg,
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The signature type ([`ALG_ED25519`] or [`ALG_COSIGNATURE_V1`]).
    pub fn alg(&self) -> u8 {
        self.alg
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// Whether `sig` (the bytes after the key ID) is this key's signature of `text`. A
    /// cosignature's bytes are its timestamp (8 bytes, big-endian) and the signature.
    fn verifies(&self, text: &str, sig: &[u8]) -> Option<Option<u64>> {
        match self.alg {
            ALG_ED25519 => {
                let sig: [u8; 64] = sig.try_into().ok()?;
                self.key
                    .verify_strict(text.as_bytes(), &Signature::from_bytes(sig))
                    .ok()
                    .map(|()| None)
            }
            ALG_COSIGNATURE_V1 => {
                let (time, sig) = sig.split_first_chunk::<8>()?;
                let sig: [u8; 64] = sig.try_into().ok()?;
                let time = u64::from_be_bytes(*time);
                if time > MAX_COSIGNATURE_TIME {
                    return None;
                }
                self.key
                    .verify_strict(&cosigned_message(time, text), &Signature::from_bytes(sig))
                    .ok()
                    .map(|()| Some(time))
            }
            _ => None,
        }
    }
}

/// The message a `cosignature/v1` signs: `cosignature/v1\ntime <T>\n` and the note's text.
pub fn cosigned_message(time: u64, text: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {time}\n{text}").into_bytes()
}

/// One signature line of a note, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key ID (the first four bytes of the decoded signature).
    pub id: u32,
    /// The base64 text of key ID and signature, as it appeared.
    pub base64: String,
    /// For a verified cosignature, its timestamp (seconds since the Unix epoch).
    pub time: Option<u64>,
}

/// A note whose signatures were checked against the keys given to [`open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The signed text, ending in its newline (without the blank line).
    pub text: String,
    /// Signatures by known keys that verified, each key once, in order.
    pub verified: Vec<NoteSignature>,
    /// Signatures by unknown keys (identical lines once), in order. Not checked.
    pub unverified: Vec<NoteSignature>,
}

/// Parses `msg` as a note and verifies each signature by a key in `known`, as Go's
/// `note.Open` does: a known key's bad signature is an error; an unknown key's is kept in
/// [`Opened::unverified`]; a note with no verified signature is [`NoteError::Unverified`].
pub fn open(msg: &[u8], known: &[VerifierKey]) -> Result<Opened, NoteError> {
    if msg.len() > MAX_NOTE_BYTES {
        return Err(NoteError::TooLarge(msg.len()));
    }
    let msg = std::str::from_utf8(msg).map_err(|_| NoteError::Malformed)?;
    if msg.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed);
    }
    let split = msg.rfind("\n\n").ok_or(NoteError::Malformed)?;
    let (text, sigs) = (&msg[..split + 1], &msg[split + 2..]);
    if !sigs.ends_with('\n') {
        return Err(NoteError::Malformed);
    }
    let mut opened = Opened {
        text: text.to_owned(),
        verified: Vec::new(),
        unverified: Vec::new(),
    };
    let mut seen_lines: Vec<&str> = Vec::new();
    for (n, line) in sigs.split_terminator('\n').enumerate() {
        let body = line.strip_prefix("— ").ok_or(NoteError::Malformed)?;
        let (name, b64) = body.split_once(' ').unwrap_or((body, ""));
        let raw = Base64::decode_vec(b64).map_err(|_| NoteError::Malformed)?;
        if !valid_key_name(name) || b64.is_empty() || raw.len() < 5 {
            return Err(NoteError::Malformed);
        }
        if n >= MAX_SIGNATURES {
            return Err(NoteError::Malformed);
        }
        let id = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let matching: Vec<&VerifierKey> = known
            .iter()
            .filter(|k| k.name == name && k.id == id)
            .collect();
        let key = match matching.as_slice() {
            [key] => *key,
            [] => {
                if !seen_lines.contains(&body) {
                    seen_lines.push(body);
                    opened.unverified.push(NoteSignature {
                        name: name.to_owned(),
                        id,
                        base64: b64.to_owned(),
                        time: None,
                    });
                }
                continue;
            }
            _ => {
                return Err(NoteError::Ambiguous {
                    name: name.to_owned(),
                    id,
                });
            }
        };
        if opened.verified.iter().any(|s| s.name == name && s.id == id) {
            continue;
        }
        let time = key
            .verifies(text, &raw[4..])
            .ok_or_else(|| NoteError::InvalidSignature {
                name: name.to_owned(),
                id,
            })?;
        opened.verified.push(NoteSignature {
            name: name.to_owned(),
            id,
            base64: b64.to_owned(),
            time,
        });
    }
    if opened.verified.is_empty() {
        return Err(NoteError::Unverified);
    }
    Ok(opened)
}

/// Whether `text` may be signed as a note's text: ends in a newline, no other control
/// character. (A blank line inside is allowed, as in Go; a reader finds the last one.)
fn valid_text(text: &str) -> bool {
    text.ends_with('\n') && !text.chars().any(|c| c < ' ' && c != '\n')
}

/// The signature line `— <name> <base64(id ‖ sig)>` and its newline.
pub fn signature_line(name: &str, id: u32, sig: &[u8]) -> String {
    let mut raw = Vec::with_capacity(4 + sig.len());
    raw.extend_from_slice(&id.to_be_bytes());
    raw.extend_from_slice(sig);
    format!("— {name} {}\n", Base64::encode_string(&raw))
}

/// Signs `text` as a note with an Ed25519 note signature (type `0x01`) by `key` under
/// `name`: the whole note, text, blank line and one signature line.
pub fn sign(text: &str, name: &str, key: &KeyPair) -> Result<String, NoteError> {
    if !valid_text(text) {
        return Err(NoteError::Text);
    }
    let verifier = VerifierKey::ed25519(name, &key.public())?;
    let sig = key.sign_raw(text.as_bytes());
    Ok(format!(
        "{text}\n{}",
        signature_line(name, verifier.id, sig.as_bytes())
    ))
}

/// Whether a cosignature's `time` lies in `[now - max_age, now + skew]`: the one window rule
/// for cosignature times, used by sites (`policy::Policy::check`), the channel before it
/// publishes a cosignature, and `barge monitor`. Saturating: the extremes of `u64` never wrap
/// into the window.
pub fn cosignature_time_ok(time: u64, now: u64, max_age: u64, skew: u64) -> bool {
    time.saturating_add(max_age) >= now && time <= now.saturating_add(skew)
}

/// A `cosignature/v1` of `text` by `key` under `name` at `time`: the signature line alone,
/// to be appended to the note's signatures.
pub fn cosign(text: &str, name: &str, key: &KeyPair, time: u64) -> Result<String, NoteError> {
    if !valid_text(text) || time > MAX_COSIGNATURE_TIME {
        return Err(NoteError::Text);
    }
    let verifier = VerifierKey::cosignature_v1(name, &key.public())?;
    let sig = key.sign_raw(&cosigned_message(time, text));
    let mut body = Vec::with_capacity(72);
    body.extend_from_slice(&time.to_be_bytes());
    body.extend_from_slice(sig.as_bytes());
    Ok(signature_line(name, verifier.id, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_note_opens_with_its_key_and_not_with_another() {
        let key = KeyPair::generate();
        let note = sign("example.org/log\n1\nAAAA\n", "example.org/log", &key).unwrap();
        let v = VerifierKey::ed25519("example.org/log", &key.public()).unwrap();
        let opened = open(note.as_bytes(), std::slice::from_ref(&v)).unwrap();
        assert_eq!(opened.text, "example.org/log\n1\nAAAA\n");
        assert_eq!(opened.verified.len(), 1);
        assert_eq!(VerifierKey::parse(&v.to_string()).unwrap(), v);
        let other = VerifierKey::ed25519("example.org/log", &KeyPair::generate().public()).unwrap();
        assert_eq!(open(note.as_bytes(), &[other]), Err(NoteError::Unverified));
        // The same key under another name has another ID: unknown, so unverified.
        let renamed = VerifierKey::ed25519("example.org/other", &key.public()).unwrap();
        assert_eq!(
            open(note.as_bytes(), &[renamed]),
            Err(NoteError::Unverified)
        );
    }

    #[test]
    fn a_cosignature_carries_its_time_and_binds_it() {
        let (log, witness) = (KeyPair::generate(), KeyPair::generate());
        let text = "example.org/log\n7\nAAAA\n";
        let note = sign(text, "example.org/log", &log).unwrap();
        let cosig = cosign(text, "witness.example", &witness, 1_700_000_000).unwrap();
        let both = format!("{note}{cosig}");
        let wv = VerifierKey::cosignature_v1("witness.example", &witness.public()).unwrap();
        let opened = open(both.as_bytes(), std::slice::from_ref(&wv)).unwrap();
        assert_eq!(opened.verified[0].time, Some(1_700_000_000));
        assert_eq!(opened.unverified.len(), 1);
        // Another time in the line: the signature no longer holds.
        let forged = cosign(text, "witness.example", &witness, 1_700_000_001).unwrap();
        let mut raw = Base64::decode_vec(forged.split(' ').nth(2).unwrap().trim()).unwrap();
        let real = Base64::decode_vec(cosig.split(' ').nth(2).unwrap().trim()).unwrap();
        raw[12..].copy_from_slice(&real[12..]);
        let line = signature_line("witness.example", wv.id(), &raw[4..]);
        assert!(matches!(
            open(
                format!("{note}{line}").as_bytes(),
                std::slice::from_ref(&wv)
            ),
            Err(NoteError::InvalidSignature { .. })
        ));
        // An Ed25519 verifier of the witness key does not accept its cosignature (another ID).
        let plain = VerifierKey::ed25519("witness.example", &witness.public()).unwrap();
        assert_ne!(plain.id(), wv.id());
        assert_eq!(open(both.as_bytes(), &[plain]), Err(NoteError::Unverified));
    }

    #[test]
    fn each_way_a_note_can_be_wrong_is_refused() {
        let key = KeyPair::generate();
        let name = "example.org/log";
        let text = "example.org/log\n5\nAAAA\n";
        let v = VerifierKey::ed25519(name, &key.public()).unwrap();
        let known = std::slice::from_ref(&v);
        let note = sign(text, name, &key).unwrap();
        let sig_b64 = note.rsplit(' ').next().unwrap().trim_end().to_owned();
        let raw = Base64::decode_vec(&sig_b64).unwrap();
        // Another key name on the line: not this key, so nothing verifies.
        let renamed = note.replace("— example.org/log", "— example.org/log2");
        assert_eq!(open(renamed.as_bytes(), known), Err(NoteError::Unverified));
        // Another key ID: likewise.
        let mut other_id = raw.clone();
        other_id[0] ^= 1;
        let line = signature_line(
            name,
            u32::from_be_bytes(other_id[..4].try_into().unwrap()),
            &raw[4..],
        );
        assert_eq!(
            open(format!("{text}\n{line}").as_bytes(), known),
            Err(NoteError::Unverified)
        );
        // The signature over another text.
        let other = sign("example.org/log\n6\nAAAA\n", name, &key).unwrap();
        let moved = format!("{text}\n{}", other.split("\n\n").nth(1).unwrap());
        assert!(matches!(
            open(moved.as_bytes(), known),
            Err(NoteError::InvalidSignature { .. })
        ));
        // An extra newline in the text: another text, so the signature fails.
        let extra = note.replacen("\n5\n", "\n5\n\n", 1);
        assert!(open(extra.as_bytes(), known).is_err());
        // The final newline missing, or an extra one after the signatures.
        assert_eq!(
            open(note.trim_end().as_bytes(), known),
            Err(NoteError::Malformed)
        );
        assert_eq!(
            open(format!("{note}\n").as_bytes(), known),
            Err(NoteError::Malformed)
        );
        // A control character (a carriage return) anywhere.
        assert_eq!(
            open(note.replace("\n5\n", "\n5\r\n").as_bytes(), known),
            Err(NoteError::Malformed)
        );
        // More than MAX_SIGNATURES lines.
        let line = note.split("\n\n").nth(1).unwrap();
        let many = format!("{text}\n{}", line.repeat(MAX_SIGNATURES + 1));
        assert_eq!(open(many.as_bytes(), known), Err(NoteError::Malformed));
        let most = format!("{text}\n{}", line.repeat(MAX_SIGNATURES));
        assert_eq!(open(most.as_bytes(), known).unwrap().verified.len(), 1);
        // A cosignature time past 2^63 - 1 is neither made nor accepted.
        assert_eq!(
            cosign(text, name, &key, MAX_COSIGNATURE_TIME + 1),
            Err(NoteError::Text)
        );
    }

    #[test]
    fn texts_that_are_not_notes_are_not_signed() {
        let key = KeyPair::generate();
        assert_eq!(sign("no newline", "n", &key), Err(NoteError::Text));
        assert_eq!(sign("nul\0\n", "n", &key), Err(NoteError::Text));
        assert!(matches!(sign("ok\n", "a b", &key), Err(NoteError::Name(_))));
        assert!(matches!(sign("ok\n", "a+b", &key), Err(NoteError::Name(_))));
        assert_eq!(
            open(&vec![b'a'; MAX_NOTE_BYTES + 1], &[]),
            Err(NoteError::TooLarge(MAX_NOTE_BYTES + 1))
        );
    }

    #[test]
    fn no_protocol_message_of_ours_is_a_note_text() {
        // Every context-separated message holds the NUL after its context.
        let bytes = crate::protocol::signed_bytes(crate::protocol::Context::ChannelBatch, b"x\n");
        assert!(bytes.contains(&0));
        assert!(!valid_text(&String::from_utf8_lossy(&bytes)));
    }
}
