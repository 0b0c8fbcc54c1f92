//! Binary frames that cross a trust boundary inside one machine, selected by the first byte
//! modulo 5; the rest is the body:
//!
//! 0. a request to the channel server's signer process
//!    (`channel_server::signer::frame::parse_request`, then `mac_valid` with a fixed MAC key):
//!    the signer holds the channel key and must survive whatever the server process sends;
//! 1. the same, the rest being a request body without its MAC, which the target appends
//!    (`protocol::mac` under `Context::SignerRequest`, as `encode_*` do), so that the fuzzer gets
//!    past the MAC check;
//! 2. a response from the signer (`parse_response`), read by the server;
//! 3. a site's stored key row (`keyggdrasil::snapshot::KeyRow::decode`), 4. a stored release row
//!    (`ReleaseRow::decode`): the refusing decoders continuum reads `site.db`'s snapshot with.
//!
//! Properties, besides never panicking:
//! - a request that parses and whose MAC is valid under the fixed key is the one encoding of
//!   what it asks (`encode_sign_request` / `encode_public_key_request` of the parsed request
//!   give the body back);
//! - a response that parses is the one encoding of its value (`Response::encode` gives the body
//!   back, after the length prefix);
//! - a row that decodes encodes back to the same bytes.
#![no_main]

use channel_server::signer::frame::{self, Request};
use keyggdrasil::protocol::{self, Context};
use keyggdrasil::snapshot::{KeyRow, ReleaseRow};
use libfuzzer_sys::fuzz_target;

const MAC_KEY: [u8; 32] = [7; 32];

fn request(body: &[u8]) {
    let Ok(parsed) = frame::parse_request(body) else {
        return;
    };
    if !parsed.mac_valid(&MAC_KEY) {
        return;
    }
    let frame = match parsed.request {
        Request::Sign {
            id,
            context,
            payload,
        } => {
            let Ok(context) = std::str::from_utf8(context) else {
                return;
            };
            frame::encode_sign_request(&MAC_KEY, id, context, payload)
                .expect("a parsed request encodes")
        }
        Request::PublicKey { id } => frame::encode_public_key_request(&MAC_KEY, id),
    };
    assert_eq!(&frame[4..], body, "one encoding per request");
}

fn response(body: &[u8]) {
    if let Ok(r) = frame::parse_response(body) {
        assert_eq!(&r.encode()[4..], body, "one encoding per response");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => request(rest),
        1 => {
            let mut body = rest.to_vec();
            body.extend_from_slice(&protocol::mac(&MAC_KEY, Context::SignerRequest, rest));
            request(&body);
        }
        2 => response(rest),
        3 => {
            if let Ok(row) = KeyRow::decode(rest) {
                assert_eq!(row.encode(), rest, "one encoding per key row");
            }
        }
        _ => {
            if let Ok(row) = ReleaseRow::decode(rest) {
                assert_eq!(row.encode(), rest, "one encoding per release row");
            }
        }
    }
});
