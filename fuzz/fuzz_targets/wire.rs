//! Every wire type of the channel and notary APIs that is parsed from outside input, selected by
//! the first byte (see `MODES` below; the modulo keeps every byte value meaningful).
//!
//! Signed answers (update, notary, checkpoint) are signed by the target itself with fixed keys, so
//! the fuzzer reaches the payload parsers and the verifiers' rules behind the signature check; the
//! request they answer uses the fixed nonce of 32 zero bytes and the origin `plugins.example.org`.
//!
//! Properties, besides never panicking:
//! - whatever parses, serialises and parses back to an equal value;
//! - remote error codes and messages are cut to 64 and 512 characters;
//! - a verified update has `size == since + entries`, `size <= tree_size`, the request's nonce and
//!   origin, and entries whose bytes are exactly the payload's strings;
//! - a verified notary answer is about the size asked, with the request's nonce, and at most
//!   `max_fork_evidence` evidence statements;
//! - proofs that pass `to_proof` have at most `max_proof_hashes` hashes;
//! - a Content-Type accepted as JSON is `application/json` (any case) before any parameters.
#![no_main]

use std::sync::LazyLock;

use keyggdrasil::batch::{BatchedAnswer, verify_batched, verify_batched_update};
use keyggdrasil::entry::Entry;
use keyggdrasil::evidence::parse_statement;
use keyggdrasil::keys::KeyPair;
use keyggdrasil::limits::Limits;
use keyggdrasil::merkle::{self, Blake2b256};
use keyggdrasil::names::ChannelName;
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{
    Checkpoint, ConsistencyProofResponse, EntriesResponse, Envelope, InclusionProofResponse, Nonce,
    NotaryPayload, NotaryRequest, NotaryStatus, Signed, SubmitRequest, SubmitResponse,
    UpdatePayload, UpdateRequest, WireError, check_time, is_json_content_type,
    verify_notary_answer, verify_update,
};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

const NOW: u64 = 1_700_000_000;
const ORIGIN: &str = "plugins.example.org";

// Fixed seeds; `from_seed` only fails for a weak public key, which these constants do not give.
static CHANNEL: LazyLock<KeyPair> =
    LazyLock::new(|| KeyPair::from_seed(&[9; 32]).expect("fixed seed is a valid key"));
static NOTARY: LazyLock<KeyPair> =
    LazyLock::new(|| KeyPair::from_seed(&[10; 32]).expect("fixed seed is a valid key"));

/// Mode numbers, as documented in docs/fuzzing.md.
const MODES: u8 = 13;

fn origin() -> ChannelName {
    ChannelName::parse(ORIGIN).expect("constant channel name is valid")
}

/// Opens an envelope and, for an `ok` answer, checks that it survives a serialise/parse round trip.
fn open_envelope<T>(bytes: &[u8], limit: u64) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    match Envelope::<T>::open(bytes, limit) {
        Ok(data) => {
            let text = serde_json::to_vec(&Envelope::Ok { data: &data }).expect("serialise");
            let again = Envelope::<T>::open(&text, u64::MAX).expect("a serialised envelope opens");
            assert_eq!(again, data, "envelope round trip changed the value");
            Some(data)
        }
        Err(WireError::Remote { code, message }) => {
            assert!(code.as_str().chars().count() <= 64);
            assert!(message.chars().count() <= 512);
            None
        }
        Err(e) => {
            let _ = e.to_string();
            None
        }
    }
}

fn round_trip<T>(value: &T)
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_vec(value).expect("wire types serialise");
    let back: T = serde_json::from_slice(&text).expect("a serialised value parses");
    assert_eq!(&back, value, "round trip changed the value");
}

fn parse_entries(texts: &[String], limits: &Limits) {
    for text in texts.iter().take(64) {
        if text.len() <= limits.max_entry_bytes
            && let Ok(e) = Entry::parse(text.as_bytes())
        {
            assert_eq!(e.as_bytes(), text.as_bytes());
        }
    }
}

fn sign_text(rest: &[u8], key: &KeyPair, context: Context) -> Option<Signed> {
    let payload = std::str::from_utf8(rest).ok()?.to_owned();
    let signature = keyggdrasil::protocol::sign(key, context, payload.as_bytes());
    Some(Signed::from_parts(payload, signature))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let limits = Limits::default();
    let small = limits.max_small_response_bytes;
    match selector % MODES {
        // Envelope of a signed answer (what every signed endpoint returns), then its payload as an
        // update under the channel key (fails at the signature for all but real answers).
        0 => {
            if let Some(signed) = open_envelope::<Signed>(rest, limits.max_update_response_bytes) {
                let _ = signed.open::<UpdatePayload>(
                    &CHANNEL.public(),
                    Context::ChannelUpdate,
                    limits.max_update_response_bytes,
                );
            }
        }
        1 => {
            let _ = open_envelope::<SubmitResponse>(rest, small);
        }
        2 => {
            if let Some(r) = open_envelope::<InclusionProofResponse>(rest, small)
                && let Ok(proof) = r.to_proof(&limits)
            {
                assert!(proof.hashes().len() <= limits.max_proof_hashes);
                let h = Blake2b256;
                let _ = merkle::verify_inclusion(&h, r.index, r.size, &[0; 32], &proof, &[0; 32]);
            }
        }
        3 => {
            if let Some(r) = open_envelope::<ConsistencyProofResponse>(rest, small)
                && let Ok(proof) = r.to_proof(&limits)
            {
                assert!(proof.hashes().len() <= limits.max_proof_hashes);
                let h = Blake2b256;
                let _ = merkle::verify_consistency(&h, r.old, r.new, &[0; 32], &[1; 32], &proof);
            }
        }
        4 => {
            if let Some(r) =
                open_envelope::<EntriesResponse>(rest, limits.max_update_response_bytes)
            {
                parse_entries(&r.entries, &limits);
            }
        }
        // What the channel server parses from a submission body.
        5 => {
            if rest.len() as u64 <= limits.max_submission_bytes
                && let Ok(req) = serde_json::from_slice::<SubmitRequest>(rest)
            {
                round_trip(&req);
                parse_entries(std::slice::from_ref(&req.entry), &limits);
            }
        }
        // What a notary parses from a request body.
        6 => {
            if let Ok(req) = serde_json::from_slice::<NotaryRequest>(rest) {
                round_trip(&req);
            }
        }
        // An update answer signed by the channel, verified against a request for `since`.
        7 => {
            let Some((&since, rest)) = rest.split_first() else {
                return;
            };
            let Some(signed) = sign_text(rest, &CHANNEL, Context::ChannelUpdate) else {
                return;
            };
            let request = UpdateRequest {
                since: u64::from(since),
                nonce: Nonce([0; 32]),
            };
            match verify_update(
                &signed,
                &CHANNEL.public(),
                &origin(),
                &request,
                NOW,
                &limits,
            ) {
                Ok(v) => {
                    let p = v.payload();
                    assert_eq!(p.since, request.since);
                    assert_eq!(p.size, p.since + p.entries.len() as u64);
                    assert!(p.size <= p.tree_size);
                    assert_eq!(p.nonce, request.nonce);
                    assert_eq!(p.origin, origin());
                    assert!(p.entries.len() <= limits.max_entries_per_page);
                    assert_eq!(v.entries().len(), p.entries.len());
                    for (e, t) in v.entries().iter().zip(&p.entries) {
                        assert_eq!(e.as_bytes(), t.as_bytes());
                    }
                    assert!(check_time(p.time, NOW, &limits).is_ok());
                    round_trip(p);
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
            // The same answer signed under another context or key must never verify.
            let other = sign_text(signed.payload.as_bytes(), &CHANNEL, Context::Checkpoint)
                .expect("payload is UTF-8");
            assert!(
                verify_update(&other, &CHANNEL.public(), &origin(), &request, NOW, &limits)
                    .is_err()
            );
            assert!(
                verify_update(&signed, &NOTARY.public(), &origin(), &request, NOW, &limits)
                    .is_err()
            );
        }
        // A notary answer signed by the notary, verified against a request about `size`.
        8 => {
            let Some((&size, rest)) = rest.split_first() else {
                return;
            };
            let Some(signed) = sign_text(rest, &NOTARY, Context::NotaryAnswer) else {
                return;
            };
            let request = NotaryRequest {
                channel: origin(),
                size: u64::from(size),
                nonce: Nonce([0; 32]),
            };
            match verify_notary_answer(&signed, &NOTARY.public(), &request, NOW, &limits) {
                Ok(p) => {
                    assert_eq!(p.size, request.size);
                    assert_eq!(p.nonce, request.nonce);
                    assert_eq!(p.channel, request.channel);
                    if let NotaryStatus::ForkDetected { evidence } = &p.status {
                        assert!(evidence.len() <= limits.max_fork_evidence);
                    }
                    round_trip::<NotaryPayload>(&p);
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
            assert!(
                verify_notary_answer(&signed, &CHANNEL.public(), &request, NOW, &limits).is_err()
            );
        }
        // A checkpoint signed by the channel.
        9 => {
            let Some(signed) = sign_text(rest, &CHANNEL, Context::Checkpoint) else {
                return;
            };
            if let Ok(c) = signed.open::<Checkpoint>(&CHANNEL.public(), Context::Checkpoint, small)
            {
                round_trip(&c);
                let _ = check_time(c.time, NOW, &limits);
            }
            assert!(
                signed
                    .open::<Checkpoint>(&CHANNEL.public(), Context::ChannelUpdate, small)
                    .is_err()
            );
        }
        // A bare signed statement, as stored evidence is read back.
        10 => {
            if let Ok(signed) = serde_json::from_slice::<Signed>(rest) {
                round_trip(&signed);
                let _ = signed.open::<Checkpoint>(&CHANNEL.public(), Context::Checkpoint, small);
            }
        }
        // A batched freshness answer (`GET /v1/fresh`): as received, then with its head payload
        // re-signed by the channel key under the batch context so that the fuzzer reaches the
        // index and path checks. One that verifies for the zero nonce never verifies for another.
        11 => {
            let Some(mut answer) = open_envelope::<BatchedAnswer>(rest, small) else {
                return;
            };
            let nonce = Nonce([0; 32]);
            let _ = verify_batched(&answer, &CHANNEL.public(), &origin(), &nonce, NOW, &limits);
            let Some(head) = sign_text(
                answer.head.payload.as_bytes(),
                &CHANNEL,
                Context::ChannelBatch,
            ) else {
                return;
            };
            answer.head = head;
            let _ = parse_statement(&answer.head, &origin(), &CHANNEL.public(), small);
            if let Ok(v) =
                verify_batched_update(&answer, &CHANNEL.public(), &origin(), &nonce, NOW, &limits)
            {
                assert!(v.is_batched() && v.entries().is_empty());
                assert_eq!((v.since(), v.tree_size()), (v.size(), v.size()));
                assert!(
                    verify_batched(
                        &answer,
                        &CHANNEL.public(),
                        &origin(),
                        &Nonce([1; 32]),
                        NOW,
                        &limits
                    )
                    .is_err()
                );
                assert!(
                    verify_batched(&answer, &NOTARY.public(), &origin(), &nonce, NOW, &limits)
                        .is_err()
                );
            }
        }
        // Nonces and channel names from query strings and configuration, and the Content-Type
        // header of request bodies.
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if is_json_content_type(Some(text)) {
                    let media = text.split(';').next().unwrap_or_default();
                    assert!(media.trim().eq_ignore_ascii_case("application/json"));
                }
                if let Ok(n) = Nonce::from_hex(text) {
                    assert_eq!(n.to_hex(), text);
                }
                if let Ok(c) = ChannelName::parse(text) {
                    assert_eq!(c.as_str(), text);
                    round_trip(&c);
                }
            }
        }
    }
});
