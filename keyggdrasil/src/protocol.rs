//! Domain-separated protocol signatures and the one list of signature contexts.
//!
//! Every signed protocol message (log entries, channel answers, checkpoints, notary answers,
//! bundles, signer-process requests) is signed as `context ‖ 0x00 ‖ message`, with a distinct
//! [`Context`] per message kind, so a signature made for one kind can never be replayed as
//! another. The message bytes are the exact bytes that travel: nothing is re-serialized before
//! verification, and callers must parse only after [`verify`] succeeded.
//!
//! Archive signatures are not protocol signatures: they follow Halite's `File::sign` for
//! compatibility (see [`crate::filesig`]).

use crate::keys::{BadSignature, KeyPair, PreparedKey, PublicKey, Signature};

/// Every signature context of the protocol. Adding a message kind means adding a variant here,
/// never reusing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Context {
    /// Log entries that add or revoke supplier keys (master key, signing key, key revocation).
    KeyEvent,
    /// Release log entries.
    Release,
    /// Release revocation log entries.
    ReleaseRevocation,
    /// Attestation log entries ("reproduced this build").
    Attestation,
    /// The channel's answer to a site's update request (entries since a size, nonce, time).
    ChannelUpdate,
    /// The channel's signed checkpoint (origin, size, root, time).
    Checkpoint,
    /// A notary's answer about its observed root of a channel (nonce-bound).
    NotaryAnswer,
    /// A request bundle signed on an air-gapped machine by hangar.
    Bundle,
    /// A request from `channel-server serve` to its signer process.
    SignerRequest,
    /// The head of a batch of nonces: one signature for many sites' fresh answers
    /// ([`crate::batch`]).
    ChannelBatch,
    /// Rollout log entries (a release's staged-rollout schedule replaced: pause, resume,
    /// widen).
    Rollout,
}

impl Context {
    /// All contexts, for tests and documentation.
    pub const ALL: [Context; 11] = [
        Context::KeyEvent,
        Context::Release,
        Context::ReleaseRevocation,
        Context::Attestation,
        Context::ChannelUpdate,
        Context::Checkpoint,
        Context::NotaryAnswer,
        Context::Bundle,
        Context::SignerRequest,
        Context::ChannelBatch,
        Context::Rollout,
    ];

    /// The context string. ASCII, no NUL, none a prefix of another.
    pub const fn as_str(self) -> &'static str {
        match self {
            Context::KeyEvent => "keyggdrasil/v1/key-event",
            Context::Release => "keyggdrasil/v1/release-event",
            Context::ReleaseRevocation => "keyggdrasil/v1/release-revocation",
            Context::Attestation => "keyggdrasil/v1/attestation",
            Context::ChannelUpdate => "keyggdrasil/v1/channel-update",
            Context::Checkpoint => "keyggdrasil/v1/checkpoint",
            Context::NotaryAnswer => "keyggdrasil/v1/notary-answer",
            Context::Bundle => "keyggdrasil/v1/bundle",
            Context::SignerRequest => "keyggdrasil/v1/signer-request",
            Context::ChannelBatch => "keyggdrasil/v1/channel-batch",
            Context::Rollout => "keyggdrasil/v1/rollout",
        }
    }

    /// Looks a context up by its string (used by the channel's signer process to check what it
    /// is asked to sign).
    pub fn from_str_exact(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// The exact bytes that get signed: `context ‖ 0x00 ‖ message`.
pub fn signed_bytes(context: Context, message: &[u8]) -> Vec<u8> {
    let ctx = context.as_str().as_bytes();
    let mut out = Vec::with_capacity(ctx.len() + 1 + message.len());
    out.extend_from_slice(ctx);
    out.push(0);
    out.extend_from_slice(message);
    out
}

/// Signs `message` under `context`.
pub fn sign(keypair: &KeyPair, context: Context, message: &[u8]) -> Signature {
    keypair.sign_raw(&signed_bytes(context, message))
}

/// Verifies a signature over `message` under `context`, strictly.
pub fn verify(
    key: &PublicKey,
    context: Context,
    message: &[u8],
    signature: &Signature,
) -> Result<(), BadSignature> {
    key.verify_strict(&signed_bytes(context, message), signature)
}

/// [`verify`] with a key decompressed once ([`PreparedKey`]): the same bytes and rules.
pub fn verify_prepared(
    key: &PreparedKey,
    context: Context,
    message: &[u8],
    signature: &Signature,
) -> Result<(), BadSignature> {
    key.verify_strict(&signed_bytes(context, message), signature)
}

/// A message authentication code between a party's own processes (for example the channel's
/// `serve` and `signer` processes): keyed BLAKE2b-256 with a 32-byte key from
/// [`crate::kdf::Purpose::InternalMac`], over `context ‖ 0x00 ‖ message`.
///
/// BLAKE2b's keyed mode is a PRF designed to be used directly as a MAC (RFC 7693 §2.9); no HMAC
/// wrapper is needed. Not for anything a third party verifies: use signatures for that.
pub fn mac(key: &[u8; 32], context: Context, message: &[u8]) -> [u8; 32] {
    let mut state = blake2b_simd::Params::new()
        .hash_length(32)
        .key(key)
        .personal(b"keyggdrasil-mac")
        .to_state();
    state.update(context.as_str().as_bytes());
    state.update(&[0]);
    state.update(message);
    let mut out = [0u8; 32];
    out.copy_from_slice(state.finalize().as_bytes());
    out
}

/// Checks a [`mac`] in constant time.
pub fn mac_verify(key: &[u8; 32], context: Context, message: &[u8], tag: &[u8; 32]) -> bool {
    use subtle::ConstantTimeEq;
    mac(key, context, message).ct_eq(tag).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_are_distinct_nul_free_and_prefix_free() {
        for a in Context::ALL {
            assert!(!a.as_str().contains('\0'));
            assert!(a.as_str().is_ascii());
            assert_eq!(Context::from_str_exact(a.as_str()), Some(a));
            for b in Context::ALL {
                if a != b {
                    assert!(!b.as_str().starts_with(a.as_str()), "{a:?} prefixes {b:?}");
                }
            }
        }
    }

    #[test]
    fn mac_is_keyed_and_bound_to_context() {
        let k = [7u8; 32];
        let t = mac(&k, Context::SignerRequest, b"m");
        assert!(mac_verify(&k, Context::SignerRequest, b"m", &t));
        assert!(!mac_verify(&[8; 32], Context::SignerRequest, b"m", &t));
        assert!(!mac_verify(&k, Context::Bundle, b"m", &t));
        assert!(!mac_verify(&k, Context::SignerRequest, b"n", &t));
    }

    #[test]
    fn signature_is_bound_to_context_and_bytes() {
        let kp = KeyPair::generate();
        let sig = sign(&kp, Context::Checkpoint, b"size 3");
        verify(&kp.public(), Context::Checkpoint, b"size 3", &sig).unwrap();
        assert!(verify(&kp.public(), Context::NotaryAnswer, b"size 3", &sig).is_err());
        assert!(verify(&kp.public(), Context::Checkpoint, b"size 4", &sig).is_err());
        // Not a raw signature over the message either.
        assert!(kp.public().verify_strict(b"size 3", &sig).is_err());
        let prepared = PreparedKey::new(&kp.public()).unwrap();
        verify_prepared(&prepared, Context::Checkpoint, b"size 3", &sig).unwrap();
        assert!(verify_prepared(&prepared, Context::NotaryAnswer, b"size 3", &sig).is_err());
        assert!(verify_prepared(&prepared, Context::Checkpoint, b"size 4", &sig).is_err());
        assert_eq!(
            signed_bytes(Context::Bundle, b"m"),
            b"keyggdrasil/v1/bundle\0m".to_vec()
        );
    }
}
