//! The signer's wire format: length-prefixed binary frames over a Unix stream socket.
//!
//! One parser per direction ([`parse_request`], [`parse_response`]) over a whole frame body, and
//! one async driver ([`read_frame`]) that only collects the bytes. Byte-exact specification in
//! `docs/signer-protocol.md`; in short (all integers big-endian):
//!
//! ```text
//! frame    = length:u32 body                      ; 1 <= length <= the direction's maximum
//! request  = 0x01 id:u64 ctx_len:u8 ctx payload mac:32   ; SIGN, 1 <= ctx_len <= 64
//!          | 0x02 id:u64 mac:32                          ; PUBLIC_KEY
//! mac      = keyed-BLAKE2b-256 MAC (keyggdrasil::protocol::mac) under Context::SignerRequest
//!            over every body byte before the mac
//! response = 0x81 id:u64 signature:64                    ; SIGNATURE
//!          | 0x82 id:u64 public_key:32                   ; PUBLIC_KEY
//!          | 0x83 id:u64 reason:u8                       ; REFUSED (1 bad mac, 2 context not allowed)
//! ```

use std::io;

use keyggdrasil::keys::Signature;
use keyggdrasil::protocol::{self, Context};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest payload the signer signs: 8 MiB (a full page of update entries is far smaller).
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;
/// Longest context string in a request.
pub const MAX_CONTEXT_LEN: usize = 64;
/// Length of the request MAC.
pub const MAC_LEN: usize = 32;
/// Largest request body (everything after the length prefix).
pub const MAX_REQUEST_BODY: usize = 1 + 8 + 1 + MAX_CONTEXT_LEN + MAX_PAYLOAD + MAC_LEN;
/// Largest response body.
pub const MAX_RESPONSE_BODY: usize = 1 + 8 + 64;

/// Request kind: sign a payload under a context.
pub const REQ_SIGN: u8 = 0x01;
/// Request kind: tell me your public key (readiness and configuration check).
pub const REQ_PUBLIC_KEY: u8 = 0x02;
/// Response kind: a signature.
pub const RESP_SIGNATURE: u8 = 0x81;
/// Response kind: the signer's public key.
pub const RESP_PUBLIC_KEY: u8 = 0x82;
/// Response kind: the request was refused.
pub const RESP_REFUSED: u8 = 0x83;

/// Why a frame could not be read or parsed. The signer closes the connection on any of these.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Reading from the socket failed.
    #[error("could not read a frame")]
    Io(#[from] io::Error),
    /// The connection ended in the middle of a frame.
    #[error("the connection ended in the middle of a frame")]
    Truncated,
    /// The length prefix is zero or above the limit.
    #[error("frame length {length} is outside 1..={max}")]
    BadLength {
        /// The announced length.
        length: u32,
        /// The limit for this direction.
        max: usize,
    },
    /// The body does not follow the format.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

/// Why the signer refused an authenticated-looking request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The MAC did not verify (the client holds a different channel secret, or is not `serve`).
    /// The signer closes the connection after this answer.
    BadMac,
    /// The context is not one the signer signs (only channel updates and checkpoints).
    ContextNotAllowed,
}

impl Refusal {
    fn code(self) -> u8 {
        match self {
            Refusal::BadMac => 1,
            Refusal::ContextNotAllowed => 2,
        }
    }
    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Refusal::BadMac),
            2 => Some(Refusal::ContextNotAllowed),
            _ => None,
        }
    }
}

/// The context field that asks for a C2SP checkpoint note signature: Ed25519 over the payload
/// itself (no context prefix), which must be a checkpoint text
/// ([`keyggdrasil::tlog_checkpoint::parse_text`]: three lines, origin, size, root, no control
/// character but the newline, so never one of our `context ‖ 0x00 ‖ message` messages). Not a
/// protocol [`Context`]: it names the signing mode, not a domain prefix.
pub const NOTE_CHECKPOINT: &str = "c2sp.org/tlog-checkpoint";

/// Whether the signer signs `payload` as a checkpoint note (see [`NOTE_CHECKPOINT`]).
pub fn note_checkpoint_allowed(payload: &[u8]) -> bool {
    std::str::from_utf8(payload)
        .ok()
        .is_some_and(|t| keyggdrasil::tlog_checkpoint::parse_text(t).is_ok())
}

/// The contexts the signer signs. Everything else (log entries, notary answers, bundles, and
/// the signer-request MAC context itself) is refused: the channel key only ever vouches for
/// the channel's own answers, batch heads and checkpoints.
pub fn context_allowed(context: Context) -> bool {
    matches!(
        context,
        Context::ChannelUpdate | Context::ChannelBatch | Context::Checkpoint
    )
}

/// A parsed request body. Borrowed from the frame; nothing is checked beyond the format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// Sign `payload` under the context named by `context` (raw bytes, not yet looked up).
    Sign {
        /// Request id, echoed in the response.
        id: u64,
        /// The context string as sent.
        context: &'a [u8],
        /// The bytes to sign.
        payload: &'a [u8],
    },
    /// Report the public key.
    PublicKey {
        /// Request id, echoed in the response.
        id: u64,
    },
}

impl Request<'_> {
    /// The request id.
    pub fn id(&self) -> u64 {
        match self {
            Request::Sign { id, .. } | Request::PublicKey { id } => *id,
        }
    }
}

/// A request body split into what it asks, the bytes its MAC covers, and the MAC.
#[derive(Debug)]
pub struct ParsedRequest<'a> {
    /// What is asked.
    pub request: Request<'a>,
    authenticated: &'a [u8],
    mac: [u8; MAC_LEN],
}

impl ParsedRequest<'_> {
    /// Checks the MAC in constant time.
    pub fn mac_valid(&self, mac_key: &[u8; 32]) -> bool {
        protocol::mac_verify(
            mac_key,
            Context::SignerRequest,
            self.authenticated,
            &self.mac,
        )
    }
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// Parses a request body (the bytes after the length prefix). Never panics.
pub fn parse_request(body: &[u8]) -> Result<ParsedRequest<'_>, FrameError> {
    if body.len() > MAX_REQUEST_BODY {
        return Err(FrameError::Malformed("request too long"));
    }
    let split = body
        .len()
        .checked_sub(MAC_LEN)
        .ok_or(FrameError::Malformed("request shorter than its MAC"))?;
    let (authenticated, mac) = body.split_at(split);
    let mac: [u8; MAC_LEN] = mac
        .try_into()
        .map_err(|_| FrameError::Malformed("request shorter than its MAC"))?;
    let (&kind, rest) = authenticated
        .split_first()
        .ok_or(FrameError::Malformed("empty request"))?;
    let id = be_u64(rest).ok_or(FrameError::Malformed("request without an id"))?;
    let rest = &rest[8..];
    let request = match kind {
        REQ_SIGN => {
            let (&ctx_len, rest) = rest
                .split_first()
                .ok_or(FrameError::Malformed("sign request without a context"))?;
            let ctx_len = usize::from(ctx_len);
            if ctx_len == 0 || ctx_len > MAX_CONTEXT_LEN {
                return Err(FrameError::Malformed("context length outside 1..=64"));
            }
            if rest.len() < ctx_len {
                return Err(FrameError::Malformed("context longer than the request"));
            }
            let (context, payload) = rest.split_at(ctx_len);
            if payload.len() > MAX_PAYLOAD {
                return Err(FrameError::Malformed("payload too long"));
            }
            Request::Sign {
                id,
                context,
                payload,
            }
        }
        REQ_PUBLIC_KEY => {
            if !rest.is_empty() {
                return Err(FrameError::Malformed(
                    "trailing bytes in a public key request",
                ));
            }
            Request::PublicKey { id }
        }
        _ => return Err(FrameError::Malformed("unknown request kind")),
    };
    Ok(ParsedRequest {
        request,
        authenticated,
        mac,
    })
}

/// Why a request could not be encoded (a caller error, caught before anything is sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The context string is empty or longer than [`MAX_CONTEXT_LEN`].
    #[error("context string must be 1 to {MAX_CONTEXT_LEN} bytes")]
    Context,
    /// The payload is longer than [`MAX_PAYLOAD`].
    #[error("payload of {0} bytes is more than the signer's limit of {MAX_PAYLOAD}")]
    PayloadTooLarge(usize),
}

fn finish_request(mac_key: &[u8; 32], mut out: Vec<u8>) -> Vec<u8> {
    let tag = protocol::mac(mac_key, Context::SignerRequest, &out[4..]);
    out.extend_from_slice(&tag);
    let len = u32::try_from(out.len() - 4).unwrap_or(u32::MAX);
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}

/// Encodes a whole SIGN request frame (length prefix included). `context` is sent as given, so
/// tests can send contexts the signer must refuse; [`SignerClient`](super::SignerClient) sends
/// only allowed ones.
pub fn encode_sign_request(
    mac_key: &[u8; 32],
    id: u64,
    context: &str,
    payload: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let ctx = context.as_bytes();
    if ctx.is_empty() || ctx.len() > MAX_CONTEXT_LEN {
        return Err(EncodeError::Context);
    }
    if payload.len() > MAX_PAYLOAD {
        return Err(EncodeError::PayloadTooLarge(payload.len()));
    }
    let mut out = Vec::with_capacity(4 + 1 + 8 + 1 + ctx.len() + payload.len() + MAC_LEN);
    out.extend_from_slice(&[0; 4]);
    out.push(REQ_SIGN);
    out.extend_from_slice(&id.to_be_bytes());
    out.push(ctx.len() as u8);
    out.extend_from_slice(ctx);
    out.extend_from_slice(payload);
    Ok(finish_request(mac_key, out))
}

/// Encodes a whole PUBLIC_KEY request frame (length prefix included).
pub fn encode_public_key_request(mac_key: &[u8; 32], id: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 1 + 8 + MAC_LEN);
    out.extend_from_slice(&[0; 4]);
    out.push(REQ_PUBLIC_KEY);
    out.extend_from_slice(&id.to_be_bytes());
    finish_request(mac_key, out)
}

/// A response from the signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The signature over `context ‖ 0x00 ‖ payload`.
    Signature {
        /// Id of the request answered.
        id: u64,
        /// The signature (unverified until the client checks it).
        signature: Signature,
    },
    /// The signer's public key (raw bytes; the client compares them with the pinned key).
    PublicKey {
        /// Id of the request answered.
        id: u64,
        /// The key bytes.
        key: [u8; 32],
    },
    /// The request was refused.
    Refused {
        /// Id of the request answered.
        id: u64,
        /// Why.
        reason: Refusal,
    },
}

impl Response {
    /// Id of the request this answers.
    pub fn id(&self) -> u64 {
        match self {
            Response::Signature { id, .. }
            | Response::PublicKey { id, .. }
            | Response::Refused { id, .. } => *id,
        }
    }

    /// The whole frame, length prefix included.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, id, rest): (u8, u64, &[u8]) = match self {
            Response::Signature { id, signature } => (RESP_SIGNATURE, *id, signature.as_bytes()),
            Response::PublicKey { id, key } => (RESP_PUBLIC_KEY, *id, key),
            Response::Refused { id, reason } => (RESP_REFUSED, *id, &[reason.code()]),
        };
        let len = 1 + 8 + rest.len();
        let mut out = Vec::with_capacity(4 + len);
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.push(kind);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(rest);
        out
    }
}

/// Parses a response body. Never panics; exact lengths only.
pub fn parse_response(body: &[u8]) -> Result<Response, FrameError> {
    let (&kind, rest) = body
        .split_first()
        .ok_or(FrameError::Malformed("empty response"))?;
    let id = be_u64(rest).ok_or(FrameError::Malformed("response without an id"))?;
    let rest = &rest[8..];
    match kind {
        RESP_SIGNATURE => {
            let sig: [u8; 64] = rest
                .try_into()
                .map_err(|_| FrameError::Malformed("signature response of the wrong length"))?;
            Ok(Response::Signature {
                id,
                signature: Signature::from_bytes(sig),
            })
        }
        RESP_PUBLIC_KEY => {
            let key: [u8; 32] = rest
                .try_into()
                .map_err(|_| FrameError::Malformed("public key response of the wrong length"))?;
            Ok(Response::PublicKey { id, key })
        }
        RESP_REFUSED => match rest {
            [code] => Refusal::from_code(*code)
                .map(|reason| Response::Refused { id, reason })
                .ok_or(FrameError::Malformed("unknown refusal reason")),
            _ => Err(FrameError::Malformed("refusal of the wrong length")),
        },
        _ => Err(FrameError::Malformed("unknown response kind")),
    }
}

/// Reads one frame body of at most `max` bytes. `Ok(None)` is a clean end of stream between
/// frames; an end inside a frame is [`FrameError::Truncated`]. The length is checked before
/// anything is allocated.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match reader.read(&mut len[got..]).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(FrameError::Truncated),
            n => got += n,
        }
    }
    let length = u32::from_be_bytes(len);
    let n = usize::try_from(length).unwrap_or(usize::MAX);
    if n == 0 || n > max {
        return Err(FrameError::BadLength { length, max });
    }
    let mut body = vec![0u8; n];
    reader.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(e)
        }
    })?;
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [9; 32];

    fn body(frame: &[u8]) -> &[u8] {
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        &frame[4..]
    }

    #[test]
    fn sign_request_round_trip_and_mac() {
        let f = encode_sign_request(&KEY, 42, Context::Checkpoint.as_str(), b"payload").unwrap();
        let p = parse_request(body(&f)).unwrap();
        assert_eq!(
            p.request,
            Request::Sign {
                id: 42,
                context: Context::Checkpoint.as_str().as_bytes(),
                payload: b"payload"
            }
        );
        assert!(p.mac_valid(&KEY));
        assert!(!p.mac_valid(&[8; 32]));
        // Every single-bit flip of the body is caught by the MAC (or the parser).
        let b = body(&f).to_vec();
        for i in 0..b.len() {
            let mut m = b.clone();
            m[i] ^= 1;
            if let Ok(p) = parse_request(&m) {
                assert!(!p.mac_valid(&KEY), "flip at {i} not caught");
            }
        }
    }

    #[test]
    fn empty_payload_and_public_key_request() {
        let f = encode_sign_request(&KEY, 1, "x", b"").unwrap();
        let p = parse_request(body(&f)).unwrap();
        assert!(matches!(p.request, Request::Sign { payload: [], .. }));
        let f = encode_public_key_request(&KEY, u64::MAX);
        let p = parse_request(body(&f)).unwrap();
        assert_eq!(p.request, Request::PublicKey { id: u64::MAX });
        assert!(p.mac_valid(&KEY));
    }

    #[test]
    fn encoder_refuses_bad_input() {
        assert_eq!(
            encode_sign_request(&KEY, 1, "", b""),
            Err(EncodeError::Context)
        );
        assert_eq!(
            encode_sign_request(&KEY, 1, &"c".repeat(65), b""),
            Err(EncodeError::Context)
        );
        assert!(encode_sign_request(&KEY, 1, &"c".repeat(64), b"").is_ok());
        assert_eq!(
            encode_sign_request(&KEY, 1, "c", &vec![0; MAX_PAYLOAD + 1]),
            Err(EncodeError::PayloadTooLarge(MAX_PAYLOAD + 1))
        );
    }

    #[test]
    fn parser_refuses_malformed_requests() {
        let cases: &[&[u8]] = &[
            b"",
            &[REQ_SIGN; 10],
            &[0u8; 41],            // unknown kind 0 with room for id and mac
            &[REQ_PUBLIC_KEY; 42], // public key request with a trailing byte
        ];
        for c in cases {
            assert!(parse_request(c).is_err(), "{c:?}");
        }
        // Context length 0 and 65.
        for ctx_len in [0u8, 65] {
            let mut b = vec![REQ_SIGN];
            b.extend_from_slice(&1u64.to_be_bytes());
            b.push(ctx_len);
            b.extend_from_slice(&[b'a'; 100]);
            b.extend_from_slice(&[0; 32]);
            assert!(parse_request(&b).is_err());
        }
        // Context longer than what remains.
        let mut b = vec![REQ_SIGN];
        b.extend_from_slice(&1u64.to_be_bytes());
        b.push(10);
        b.extend_from_slice(&[b'a'; 5]);
        b.extend_from_slice(&[0; 32]);
        assert!(parse_request(&b).is_err());
    }

    #[test]
    fn parsers_never_panic_on_prefixes_of_valid_frames() {
        let f = encode_sign_request(&KEY, 7, "keyggdrasil/v1/checkpoint", b"abc").unwrap();
        for n in 0..f.len() {
            let _ = parse_request(&f[4..4 + n.min(f.len() - 4)]);
            let _ = parse_response(&f[..n]);
        }
        let r = Response::Refused {
            id: 1,
            reason: Refusal::BadMac,
        }
        .encode();
        for n in 0..r.len() {
            let _ = parse_response(&r[4..4 + n.min(r.len() - 4)]);
        }
    }

    #[test]
    fn responses_round_trip() {
        let rs = [
            Response::Signature {
                id: 3,
                signature: Signature::from_bytes([5; 64]),
            },
            Response::PublicKey {
                id: 4,
                key: [6; 32],
            },
            Response::Refused {
                id: 5,
                reason: Refusal::ContextNotAllowed,
            },
            Response::Refused {
                id: 6,
                reason: Refusal::BadMac,
            },
        ];
        for r in rs {
            let f = r.encode();
            assert!(f.len() - 4 <= MAX_RESPONSE_BODY);
            assert_eq!(parse_response(body(&f)).unwrap(), r);
        }
        assert!(parse_response(&[RESP_REFUSED, 0, 0, 0, 0, 0, 0, 0, 1, 9]).is_err());
        assert!(parse_response(&[0x99; 20]).is_err());
    }

    #[tokio::test]
    async fn read_frame_bounds_and_truncation() {
        let f = encode_public_key_request(&KEY, 1);
        let mut r = &f[..];
        assert_eq!(read_frame(&mut r, 100).await.unwrap().unwrap(), f[4..]);
        assert!(read_frame(&mut r, 100).await.unwrap().is_none());
        let mut r = &f[..];
        assert!(matches!(
            read_frame(&mut r, 10).await,
            Err(FrameError::BadLength { length: 41, .. })
        ));
        let mut r = &f[..f.len() - 1];
        assert!(matches!(
            read_frame(&mut r, 100).await,
            Err(FrameError::Truncated)
        ));
        let mut r = &f[..2];
        assert!(matches!(
            read_frame(&mut r, 100).await,
            Err(FrameError::Truncated)
        ));
        let mut r: &[u8] = &[0, 0, 0, 0];
        assert!(matches!(
            read_frame(&mut r, 100).await,
            Err(FrameError::BadLength { length: 0, .. })
        ));
    }
}
