//! The channel's checkpoint as a C2SP checkpoint (`c2sp.org/tlog-checkpoint`) in signed-note
//! form: the text `<origin>\n<size>\n<base64 root>\n`, signed with an Ed25519 note signature
//! (type `0x01`) by the channel key under the key name `<origin>`.
//!
//! This is what the channel writes as `public/checkpoint` and answers at `GET /checkpoint`, so
//! any signed-note verifier (Go's `note.Open` with the channel's verifier key) can check it.
//! It carries no time: freshness comes from the nonce-bound answers (`/v1/fresh`,
//! `/v1/updates`) and from witnesses' cosignature timestamps. It is not our JSON
//! [`crate::wire::Checkpoint`] (`/v1/checkpoint`), which stays for older clients.
//!
//! Parse → verify → decide: [`open`] checks the note signature with the pinned key, then the
//! three lines (origin equal to the expected one, size in decimal without leading zeros and
//! within [`crate::merkle::MAX_TREE_SIZE`], root 32 bytes of canonical base64). Extension lines
//! after the root are allowed by the spec; ours has none and [`open`] refuses them, so a
//! checkpoint of ours has exactly one reading.

use base64ct::{Base64, Encoding};
use thiserror::Error;

use crate::keys::{KeyPair, PublicKey};
use crate::merkle::{self, Hash};
use crate::names::ChannelName;
use crate::note::{self, NoteError, VerifierKey};

/// Why a checkpoint note was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The note itself: malformed, too large, or not signed by the channel key.
    #[error("checkpoint note: {0}")]
    Note(#[from] NoteError),
    /// The signed text is not `origin\nsize\nroot\n` of this channel.
    #[error("checkpoint note: {0}")]
    Text(String),
    /// The channel's name cannot be a note key name.
    #[error(
        "the channel name {0:?} cannot be a C2SP note key name (it must have no spaces and no '+'): checkpoints are signed under the channel's name, so this channel needs a new name (channel-server init with a name such as plugins.example.org)"
    )]
    Origin(String),
}

/// A checkpoint note that [`open`] verified: signed by the pinned channel key, of this
/// channel, with a size a log can have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteCheckpoint {
    size: u64,
    root: Hash,
    note: String,
}

impl NoteCheckpoint {
    /// The tree size.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// The root at that size.
    pub fn root(&self) -> &Hash {
        &self.root
    }
    /// The whole note as received, with every signature line (evidence, and what a witness
    /// is sent).
    pub fn note(&self) -> &str {
        &self.note
    }
}

/// The channel's note verifier key (`<origin>+<key ID>+<base64(0x01 ‖ key)>`): what a Go
/// `note.NewVerifier` or any signed-note tool is given to check our checkpoints.
pub fn verifier_key(origin: &ChannelName, key: &PublicKey) -> Result<VerifierKey, CheckpointError> {
    VerifierKey::ed25519(origin.as_str(), key)
        .map_err(|_| CheckpointError::Origin(origin.as_str().to_owned()))
}

/// The signed text of a checkpoint: `<origin>\n<size>\n<base64 root>\n`.
pub fn text(origin: &ChannelName, size: u64, root: &Hash) -> String {
    format!(
        "{}\n{size}\n{}\n",
        origin.as_str(),
        Base64::encode_string(root)
    )
}

/// A decimal number as the C2SP text formats write one: ASCII digits, no sign, no leading
/// zeros (`0` itself allowed), within `u64`.
pub fn decimal(s: &str) -> Option<u64> {
    let canonical = s == "0" || (!s.is_empty() && !s.starts_with('0'));
    (canonical && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Parses a checkpoint text (exactly three lines, as [`text`] writes them): origin, size,
/// root. Used by [`open`] after the signature check, and by the channel's signer, which signs
/// nothing but a text this accepts.
pub fn parse_text(text: &str) -> Result<(&str, u64, Hash), CheckpointError> {
    let bad = |m: &str| CheckpointError::Text(m.to_owned());
    let body = text
        .strip_suffix('\n')
        .ok_or_else(|| bad("the text does not end in a newline"))?;
    let mut lines = body.split('\n');
    let (Some(origin), Some(size), Some(root), None) =
        (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        return Err(bad(
            "not three lines (origin, size, root); extension lines are not used by this log",
        ));
    };
    if !note::valid_key_name(origin) || origin.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(bad("the origin line is not a channel name"));
    }
    let size = decimal(size)
        .ok_or_else(|| bad("the size line is not a decimal number without leading zeros"))?;
    if size > merkle::MAX_TREE_SIZE {
        return Err(bad("the size is beyond any log"));
    }
    let root: Hash = Base64::decode_vec(root)
        .ok()
        .and_then(|r| r.try_into().ok())
        .ok_or_else(|| bad("the root line is not 32 bytes of base64"))?;
    Ok((origin, size, root))
}

/// Signs a checkpoint note with the channel key (for tests and tools that hold the key; the
/// channel itself signs in its signer process, which checks the text with [`parse_text`]).
pub fn sign(
    origin: &ChannelName,
    size: u64,
    root: &Hash,
    key: &KeyPair,
) -> Result<String, CheckpointError> {
    let name = verifier_key(origin, &key.public())?;
    Ok(note::sign(&text(origin, size, root), name.name(), key)?)
}

/// The note from its text and the channel key's signature of it (what the signer returns).
pub fn assemble(
    origin: &ChannelName,
    key: &PublicKey,
    text: &str,
    signature: &[u8; 64],
) -> Result<String, CheckpointError> {
    let v = verifier_key(origin, key)?;
    Ok(format!(
        "{text}\n{}",
        note::signature_line(v.name(), v.id(), signature)
    ))
}

/// Verifies a checkpoint note: an Ed25519 note signature by `key` under the name `origin`
/// (other signature lines, such as witnesses' cosignatures, are kept but not checked here),
/// then the text's three lines, whose origin must be `origin`.
pub fn open(
    msg: &[u8],
    key: &PublicKey,
    origin: &ChannelName,
) -> Result<NoteCheckpoint, CheckpointError> {
    let verifier = verifier_key(origin, key)?;
    let opened = note::open(msg, std::slice::from_ref(&verifier))?;
    let (name, size, root) = parse_text(&opened.text)?;
    if name != origin.as_str() {
        return Err(CheckpointError::Text(format!(
            "the checkpoint is of {name:?}, expected {:?}",
            origin.as_str()
        )));
    }
    Ok(NoteCheckpoint {
        size,
        root,
        // `open` checked the whole message is UTF-8.
        note: String::from_utf8_lossy(msg).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> ChannelName {
        ChannelName::parse("plugins.example.org").unwrap()
    }

    #[test]
    fn a_signed_checkpoint_opens_and_says_what_was_signed() {
        let key = KeyPair::generate();
        let note = sign(&origin(), 42, &[7; 32], &key).unwrap();
        assert!(note.starts_with("plugins.example.org\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n— plugins.example.org "));
        let cp = open(note.as_bytes(), &key.public(), &origin()).unwrap();
        assert_eq!((cp.size(), *cp.root()), (42, [7; 32]));
        assert_eq!(cp.note(), note);
    }

    #[test]
    fn each_way_a_checkpoint_can_be_wrong_is_refused() {
        let key = KeyPair::generate();
        let o = origin();
        // Another key.
        let other = sign(&o, 1, &[0; 32], &KeyPair::generate()).unwrap();
        assert!(matches!(
            open(other.as_bytes(), &key.public(), &o),
            Err(CheckpointError::Note(NoteError::Unverified))
        ));
        // Another channel's checkpoint by the same key: the key name differs, so unverified.
        let elsewhere = ChannelName::parse("other.example.org").unwrap();
        let theirs = sign(&elsewhere, 1, &[0; 32], &key).unwrap();
        assert!(open(theirs.as_bytes(), &key.public(), &o).is_err());
        // Texts signed correctly but not a checkpoint of ours.
        for bad in [
            "plugins.example.org\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            "plugins.example.org\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            "plugins.example.org\n1\nAAAA\n",
            "plugins.example.org\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nextension\n",
            "plugins.example.org\n1\n",
            "other.example.org\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            "plugins.example.org\n18446744073709551616\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        ] {
            let n = note::sign(bad, o.as_str(), &key).unwrap();
            assert!(
                matches!(
                    open(n.as_bytes(), &key.public(), &o),
                    Err(CheckpointError::Text(_))
                ),
                "{bad:?}"
            );
        }
        // The size 0 is written "0".
        let zero = note::sign(
            "plugins.example.org\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            o.as_str(),
            &key,
        )
        .unwrap();
        assert_eq!(open(zero.as_bytes(), &key.public(), &o).unwrap().size(), 0);
    }

    #[test]
    fn a_name_with_a_plus_cannot_sign_checkpoints() {
        let plus = ChannelName::parse("a+b.example.org").unwrap();
        assert!(matches!(
            verifier_key(&plus, &KeyPair::generate().public()),
            Err(CheckpointError::Origin(_))
        ));
    }

    #[test]
    fn assembling_the_signer_s_signature_gives_the_signed_note() {
        let key = KeyPair::generate();
        let t = text(&origin(), 9, &[1; 32]);
        let sig = key.sign_raw(t.as_bytes());
        assert_eq!(
            assemble(&origin(), &key.public(), &t, sig.as_bytes()).unwrap(),
            sign(&origin(), 9, &[1; 32], &key).unwrap()
        );
    }
}
