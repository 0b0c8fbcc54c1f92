//! `GET /v1/release` (one release by name with inclusion proofs, checked with
//! `keyggdrasil::lookup::verify_release_lookup` against the channel's signed checkpoint, at the
//! head and at an older size; refusals for unknown releases, sizes and names) and `GET
//! /v1/leaves` (leaf hashes by index, bounded pages).

use keyggdrasil::entry::{Event, Reason};
use keyggdrasil::limits::Limits;
use keyggdrasil::lookup::{ReleaseLookupResponse, ReleaseQuery, verify_release_lookup};
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::wire::{Signed, VerifiedCheckpoint, verify_checkpoint};

use super::harness::{Channel, Supplier};

fn checkpoint(ch: &Channel) -> VerifiedCheckpoint {
    let signed: Signed = ch.get_signed("/v1/checkpoint");
    verify_checkpoint(&signed, &ch.key, None, &Limits::default()).unwrap()
}

fn lookup(
    ch: &Channel,
    s: &str,
    p: &str,
    v: &str,
    size: u64,
) -> Result<ReleaseLookupResponse, (u16, String)> {
    ch.get(&format!(
        "/v1/release?supplier={s}&package={p}&version={v}&size={size}"
    ))
}

fn names(s: &str, p: &str, v: &str) -> (SupplierName, PackageName, Version) {
    (
        SupplierName::parse(s).unwrap(),
        PackageName::parse(p).unwrap(),
        Version::parse(v).unwrap(),
    )
}

#[test]
fn a_release_and_its_revocation_are_found_and_proven_at_any_size() {
    let ch = Channel::start_with("open", "");
    let acme = Supplier::new("acme");
    acme.register(&ch);
    let first = acme.release(&acme.signing, "hello", "1.0.0", b"one");
    ch.submit(&first); // index 2
    ch.submit(&acme.release(&acme.signing, "hello", "2.0.0", b"two")); // 3
    let before_revocation = checkpoint(&ch);
    assert_eq!(before_revocation.size(), 4);
    ch.submit(&acme.sign(
        &acme.signing,
        Event::ReleaseRevocation {
            package: PackageName::parse("hello").unwrap(),
            version: Version::parse("1.0.0").unwrap(),
            reason: Reason::parse("broken").unwrap(),
        },
    )); // 4
    let head = checkpoint(&ch);
    assert_eq!(head.size(), 5);
    let (s, p, v) = names("acme", "hello", "1.0.0");
    let q = ReleaseQuery {
        supplier: &s,
        package: &p,
        version: &v,
    };

    // At the head: the release and its revocation, both proven.
    let resp = lookup(&ch, "acme", "hello", "1.0.0", 5).unwrap();
    let found = verify_release_lookup(&resp, &head, q, &Limits::default()).unwrap();
    assert_eq!((found.index, found.revoked_at), (2, Some(4)));
    assert_eq!(found.entry, first);

    // At the older size the revocation is not in the tree: it is not shown.
    let resp = lookup(&ch, "acme", "hello", "1.0.0", 4).unwrap();
    assert!(resp.revocation.is_none());
    let found = verify_release_lookup(&resp, &before_revocation, q, &Limits::default()).unwrap();
    assert_eq!((found.index, found.revoked_at), (2, None));
    // An answer for one size does not pass for another.
    assert!(verify_release_lookup(&resp, &head, q, &Limits::default()).is_err());

    // Not yet logged at size 3 (the release is at index 3 of 2.0.0; 1.0.0 is at 2 < 3).
    let (s2, p2, v2) = names("acme", "hello", "2.0.0");
    let q2 = ReleaseQuery {
        supplier: &s2,
        package: &p2,
        version: &v2,
    };
    assert_eq!(
        lookup(&ch, "acme", "hello", "2.0.0", 3).unwrap_err(),
        (404, "unknown_release".to_owned())
    );
    let resp = lookup(&ch, "acme", "hello", "2.0.0", 5).unwrap();
    let found = verify_release_lookup(&resp, &head, q2, &Limits::default()).unwrap();
    assert_eq!((found.index, found.revoked_at), (3, None));
}

#[test]
fn unknown_releases_bad_sizes_and_bad_names_are_refused() {
    let ch = Channel::start_with("open", "");
    let acme = Supplier::new("acme");
    acme.register(&ch);
    ch.submit(&acme.release(&acme.signing, "hello", "1.0.0", b"one"));
    for (s, p, v) in [
        ("acme", "hello", "9.9.9"),
        ("acme", "other", "1.0.0"),
        ("bolt", "hello", "1.0.0"),
    ] {
        assert_eq!(
            lookup(&ch, s, p, v, 3).unwrap_err(),
            (404, "unknown_release".to_owned()),
            "{s}/{p} {v}"
        );
    }
    for size in [0, 4, u64::MAX] {
        assert_eq!(
            lookup(&ch, "acme", "hello", "1.0.0", size).unwrap_err(),
            (400, "bad_range".to_owned()),
            "size {size}"
        );
    }
    assert_eq!(
        lookup(&ch, "acme", "Hello!", "1.0.0", 3).unwrap_err(),
        (400, "bad_name".to_owned())
    );
    assert_eq!(
        ch.get::<serde_json::Value>("/v1/release?supplier=acme&package=hello&version=1.0.0")
            .unwrap_err()
            .1,
        "bad_query"
    );
}

#[test]
fn leaf_hashes_are_the_stored_leaves_and_ranges_are_bounded() {
    use keyggdrasil::merkle::{Blake2b256, TreeHasher};
    use keyggdrasil::wire::{LeafHashesResponse, MAX_LEAF_HASHES_PER_PAGE};
    let ch = Channel::start_with("open", "");
    let acme = Supplier::new("acme");
    acme.register(&ch);
    let release = acme.release(&acme.signing, "hello", "1.0.0", b"one");
    ch.submit(&release);
    let r: LeafHashesResponse = ch.get("/v1/leaves?start=1&end=3").unwrap();
    assert_eq!(r.start, 1);
    assert_eq!(r.hashes.len(), 2);
    assert_eq!(r.hashes[1].0, Blake2b256.hash_leaf(release.as_bytes()));
    assert_eq!(
        r.hashes[0].0,
        Blake2b256.hash_leaf(acme.signing_entry().as_bytes())
    );
    for (start, end) in [(0, 0), (2, 1), (0, 4), (0, MAX_LEAF_HASHES_PER_PAGE + 1)] {
        assert_eq!(
            ch.get::<LeafHashesResponse>(&format!("/v1/leaves?start={start}&end={end}"))
                .unwrap_err(),
            (400, "bad_range".to_owned()),
            "{start}..{end}"
        );
    }
}
