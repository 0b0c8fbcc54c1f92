//! Signing bundles (`bundle::Bundle::parse`, `sign`, `verify_signed`), as hangar reads a request
//! bundle on the air-gapped machine and barge reads the signed bundle back.
//!
//! An even first byte passes the rest as a whole bundle file; an odd one passes it without its
//! checksum line, which the target appends (`append_checksum`), so the fuzzer gets past the
//! checksum to the JSON lines. A request naming one of the fixed keys (seeds 1, 2, 3) as signer is
//! signed by the target.
//!
//! Properties, besides never panicking:
//! - a parsed request bundle is the one encoding of its request (`request_file` gives the input
//!   back);
//! - a request bundle that parses can be signed by its named key (unless the result would be
//!   too large): the parser accepts nothing that cannot become an entry;
//! - a bundle signed by its named key parses, keeps the request line and fingerprint, and
//!   verifies; the entry it carries is the requested body (or release fields), signed by the
//!   requested key; signing twice or with another key is refused;
//! - a signed bundle that verifies carries an entry whose signature verifies, by the requested
//!   signer, for the requested supplier and, for a body request, with exactly the requested bytes.
#![no_main]

use std::sync::LazyLock;

use keyggdrasil::bundle::{Bundle, BundleError, append_checksum};
use keyggdrasil::entry::{EntryError, Event};
use keyggdrasil::keys::KeyPair;
use libfuzzer_sys::fuzz_target;

// Fixed seeds; `from_seed` only fails for a weak public key, which these constants do not give.
static KEYS: LazyLock<[KeyPair; 3]> = LazyLock::new(|| {
    [1u8, 2, 3].map(|b| KeyPair::from_seed(&[b; 32]).expect("fixed seed is a valid key"))
});

fn check_verified(bundle: &Bundle) -> bool {
    let Ok(entry) = bundle.verify_signed() else {
        return false;
    };
    let req = bundle.request();
    assert!(
        entry.signature_is_valid(),
        "verified bundle with a bad entry signature"
    );
    assert_eq!(entry.body().signer, req.signer);
    assert_eq!(entry.body().supplier, req.supplier);
    match (&req.body, &req.release, &entry.body().event) {
        (Some(text), None, _) => assert_eq!(entry.body_bytes(), text.as_bytes()),
        (
            None,
            Some(r),
            Event::Release {
                package,
                version,
                size,
                digest,
                commit,
                signature,
                rollout: None,
            },
        ) => {
            assert_eq!(
                (package, version, size, digest, commit),
                (&r.package, &r.version, &r.size, &r.digest, &r.commit)
            );
            keyggdrasil::filesig::verify_digest(&req.signer, signature, &r.keyed_digest.0)
                .expect("verified release bundle with a bad archive signature");
        }
        _ => panic!("verified bundle whose entry is not of the requested kind"),
    }
    true
}

fn check(bytes: &[u8]) {
    let bundle = match Bundle::parse(bytes) {
        Ok(b) => b,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = bundle.fingerprint();
    if bundle.is_signed() {
        let _ = check_verified(&bundle);
        let key = &KEYS[0];
        assert!(matches!(bundle.sign(key), Err(BundleError::WrongState(_))));
        return;
    }
    assert!(bundle.verify_signed().is_err());
    let file = Bundle::request_file(bundle.request()).expect("a parsed request is valid");
    assert_eq!(file, bytes, "a request bundle has one encoding");
    let Some(key) = KEYS.iter().find(|k| k.public() == bundle.request().signer) else {
        return;
    };
    for other in KEYS.iter().filter(|k| k.public() != key.public()) {
        assert!(matches!(bundle.sign(other), Err(BundleError::WrongKey(_))));
    }
    let signed = match bundle.sign(key) {
        Ok(s) => s,
        // The entry or the signed bundle would pass a size limit.
        Err(BundleError::Oversize(_) | BundleError::Entry(EntryError::Oversize(_))) => return,
        Err(e) => panic!("a valid request could not be signed by its key: {e}"),
    };
    let back = Bundle::parse(&signed).expect("a signed bundle parses");
    assert!(back.is_signed());
    assert_eq!(back.request_bytes(), bundle.request_bytes());
    assert_eq!(back.fingerprint(), bundle.fingerprint());
    assert!(
        check_verified(&back),
        "a bundle signed by its key does not verify"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        check(rest);
    } else {
        check(&append_checksum(rest.to_vec()));
    }
});
