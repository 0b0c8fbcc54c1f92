//! Every parser of outside input returns an error, never panics, on arbitrary bytes and on
//! mutations of valid inputs. (The fuzz targets in `fuzz/` go further; these run in every CI.)

use keyggdrasil::entry::{Entry, EntryBody, Event};
use keyggdrasil::keyfile::{KeyFile, KeyRole};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::limits::Limits;
use keyggdrasil::names::ChannelName;
use keyggdrasil::names::SupplierName;
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{
    Envelope, Nonce, NotaryRequest, Signed, SubmitResponse, UpdatePayload, UpdateRequest,
    verify_notary_answer, verify_update,
};
use proptest::prelude::*;

fn valid_entry() -> Vec<u8> {
    let kp = KeyPair::from_seed(&[9; 32]).unwrap();
    Entry::sign(
        EntryBody::new(
            SupplierName::parse("acme").unwrap(),
            kp.public(),
            Event::MasterKey {
                public_key: kp.public(),
                derivation: None,
            },
        ),
        &kp,
    )
    .unwrap()
    .as_bytes()
    .to_vec()
}

fn mutate(mut base: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(pos, byte, op) in edits {
        if base.is_empty() {
            base.push(byte);
            continue;
        }
        let i = pos % base.len();
        match op % 3 {
            0 => base[i] = byte,
            1 => {
                base.remove(i);
            }
            _ => base.insert(i, byte),
        }
    }
    base
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn entry_parser(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Entry::parse(&bytes);
    }

    #[test]
    fn entry_parser_mutations(edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6)) {
        let valid = valid_entry();
        let mutated = mutate(valid.clone(), &edits);
        if let Ok(e) = Entry::parse(&mutated) {
            // Anything that still parses is in canonical form: re-encoding gives the same bytes.
            prop_assert_eq!(e.as_bytes(), &mutated[..]);
            if mutated != valid {
                // A changed entry may parse, but its signature must not verify.
                prop_assert!(!e.signature_is_valid());
            }
        }
    }

    #[test]
    fn key_file_parser(edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6)) {
        let kp = KeyPair::from_seed(&[3; 32]).unwrap();
        let bytes = KeyFile::plain(KeyRole::Channel, None, &kp).to_bytes().to_vec();
        let mutated = mutate(bytes, &edits);
        if let Ok(f) = KeyFile::parse(&mutated) {
            let _ = f.unlock(Some(b"x"));
        }
    }

    #[test]
    fn wire_parsers(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Envelope::<SubmitResponse>::open(&bytes, 1 << 20);
        let _ = Envelope::<Signed>::open(&bytes, 1 << 20);
        let _ = serde_json::from_slice::<UpdatePayload>(&bytes);
    }

    #[test]
    fn signed_answers_with_garbage_payload(payload in ".{0,300}") {
        let ch = KeyPair::from_seed(&[5; 32]).unwrap();
        let signed = Signed::sign(&ch, Context::ChannelUpdate, &payload);
        // A validly signed but meaningless payload is refused as malformed, not a panic.
        let req = UpdateRequest { since: 0, nonce: Nonce([0; 32]) };
        let origin = ChannelName::parse("c").unwrap();
        prop_assert!(verify_update(&signed, &ch.public(), &origin, &req, 0, &Limits::default()).is_err());
        let nreq = NotaryRequest { channel: origin, size: 0, nonce: Nonce([0; 32]) };
        prop_assert!(verify_notary_answer(&signed, &ch.public(), &nreq, 0, &Limits::default()).is_err());
    }
}
