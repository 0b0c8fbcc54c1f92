//! Happy paths of every endpoint, verified with keyggdrasil only.

use std::io::Read;

use keyggdrasil::limits::Limits;
use keyggdrasil::merkle::{self, Blake2b256, MemoryStore, TreeHasher};
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{
    Checkpoint, ConsistencyProofResponse, EntriesResponse, InclusionProofResponse, Nonce,
    UpdateRequest, verify_update,
};

use super::harness::{Channel, Supplier, agent};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn publish_and_audit_a_release() {
    let ch = Channel::start_with("open", "");
    let acme = Supplier::new("acme");
    let archive = vec![7u8; 300_000];

    // Register keys and publish a release.
    let r0 = ch.try_submit(&acme.master_entry()).unwrap();
    assert_eq!((r0.index, r0.size, r0.duplicate), (0, 1, false));
    let r1 = ch.try_submit(&acme.signing_entry()).unwrap();
    assert_eq!(r1.index, 1);
    let release = acme.release(&acme.signing, "hello", "1.0.0", &archive);
    let r2 = ch.try_submit(&release).unwrap();
    assert_eq!(r2.index, 2);
    assert_eq!(r2.leaf_hash.0, Blake2b256.hash_leaf(release.as_bytes()));

    // Idempotent resubmission.
    let again = ch.try_submit(&release).unwrap();
    assert_eq!((again.index, again.duplicate), (2, true));

    // Updates from 0: all three entries, root recomputed locally.
    let req = UpdateRequest {
        since: 0,
        nonce: Nonce::generate(),
    };
    let signed = ch.get_signed(&format!("/v1/updates?since=0&nonce={}", req.nonce.to_hex()));
    let up = verify_update(
        &signed,
        &ch.key,
        &ch.origin(),
        &req,
        now(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(up.entries().len(), 3);
    assert_eq!(up.entries()[2].as_bytes(), release.as_bytes());
    let mut log = MemoryStore::new();
    for e in up.entries() {
        log.append(&Blake2b256, e.as_bytes()).unwrap();
    }
    assert_eq!(log.root(&Blake2b256).unwrap(), up.root().0);

    // No updates: signed, nonce-bound, same root.
    let req2 = UpdateRequest {
        since: 3,
        nonce: Nonce::generate(),
    };
    let signed = ch.get_signed(&format!(
        "/v1/updates?since=3&nonce={}",
        req2.nonce.to_hex()
    ));
    let none = verify_update(
        &signed,
        &ch.key,
        &ch.origin(),
        &req2,
        now(),
        &Limits::default(),
    )
    .unwrap();
    assert!(none.entries().is_empty());
    assert_eq!((none.size(), (*none.root())), (3, (*up.root())));
    // The same answer does not verify for another nonce (replay).
    assert!(
        verify_update(
            &signed,
            &ch.key,
            &ch.origin(),
            &req,
            now(),
            &Limits::default()
        )
        .is_err()
    );

    // Checkpoint.
    let cp: Checkpoint = ch
        .get_signed("/v1/checkpoint")
        .open(&ch.key, Context::Checkpoint, 1 << 16)
        .unwrap();
    assert_eq!((cp.size, cp.root), (3, (*up.root())));

    // Inclusion proof of the release, and consistency 1 -> 3.
    let p: InclusionProofResponse = ch.get("/v1/proof/inclusion?index=2&size=3").unwrap();
    merkle::verify_inclusion(
        &Blake2b256,
        2,
        3,
        &Blake2b256.hash_leaf(release.as_bytes()),
        &p.to_proof(&Limits::default()).unwrap(),
        &cp.root.0,
    )
    .unwrap();
    let c: ConsistencyProofResponse = ch.get("/v1/proof/consistency?old=1&new=3").unwrap();
    let old_root = merkle::root_at(&Blake2b256, 1, &log).unwrap();
    merkle::verify_consistency(
        &Blake2b256,
        1,
        3,
        &old_root,
        &cp.root.0,
        &c.to_proof(&Limits::default()).unwrap(),
    )
    .unwrap();

    // Raw entries.
    let e: EntriesResponse = ch.get("/v1/entries?start=1&end=3").unwrap();
    assert_eq!(e.start, 1);
    assert_eq!(e.entries[1].as_bytes(), release.as_bytes());

    // Archive: upload, idempotent re-upload, download whole and by range.
    let url = ch.url("/v1/archives/acme/hello/1.0.0");
    let r = agent().put(&url).send(&archive[..]).unwrap();
    assert_eq!(r.status(), 200);
    let r = agent().put(&url).send(&archive[..]).unwrap();
    assert_eq!(r.status(), 200);
    let r = agent().get(&url).call().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("content-length").unwrap().to_str().unwrap(),
        archive.len().to_string()
    );
    let mut got = Vec::new();
    r.into_body().into_reader().read_to_end(&mut got).unwrap();
    assert_eq!(got, archive);
    let r = agent()
        .get(&url)
        .header("Range", "bytes=100000-")
        .call()
        .unwrap();
    assert_eq!(r.status(), 206);
    let mut tail = Vec::new();
    r.into_body().into_reader().read_to_end(&mut tail).unwrap();
    assert_eq!(tail, archive[100_000..]);

    // Stats and health.
    #[derive(serde::Deserialize)]
    struct Stats {
        size: u64,
        suppliers: u64,
        releases: u64,
        archives: u64,
    }
    let s: Stats = ch.get("/v1/stats").unwrap();
    assert_eq!((s.size, s.suppliers, s.releases, s.archives), (3, 1, 1, 1));
    assert!(ch.check().starts_with("ok: 3 entries"));
}

/// Reads `/v1/updates` page by page from 0 to `total`, verifying each page: the (entries,
/// size, tree size) of every page.
fn update_pages(ch: &Channel, total: u64) -> Vec<(usize, u64, u64)> {
    let mut since = 0;
    let mut pages = Vec::new();
    while since < total {
        let req = UpdateRequest {
            since,
            nonce: Nonce::generate(),
        };
        let signed = ch.get_signed(&format!(
            "/v1/updates?since={since}&nonce={}",
            req.nonce.to_hex()
        ));
        let up = verify_update(
            &signed,
            &ch.key,
            &ch.origin(),
            &req,
            now(),
            &Limits::default(),
        )
        .unwrap();
        assert!(up.size() > since, "a page with no progress");
        pages.push((up.entries().len(), up.size(), up.tree_size()));
        since = up.size();
    }
    pages
}

#[test]
fn updates_are_paged() {
    let ch = Channel::start_with("open", "max_entries_per_page = 2");
    for i in 0..5 {
        ch.try_submit(&Supplier::new(&format!("s{i}")).master_entry())
            .unwrap();
    }
    assert_eq!(update_pages(&ch, 5), [(2, 2, 5), (2, 4, 5), (1, 5, 5)]);
}

/// F4: a page is also cut by bytes (`max_page_bytes`); with a cap below one entry every page
/// holds exactly one, each verifies, and paging from `size` reaches the whole log.
#[test]
fn updates_pages_are_cut_at_the_byte_cap() {
    let ch = Channel::start_with("open", "max_page_bytes = 1");
    for i in 0..4 {
        ch.try_submit(&Supplier::new(&format!("s{i}")).master_entry())
            .unwrap();
    }
    assert_eq!(
        update_pages(&ch, 4),
        [(1, 1, 4), (1, 2, 4), (1, 3, 4), (1, 4, 4)]
    );
}

#[test]
fn invite_policy() {
    let ch = Channel::start_with("invite", "");
    let acme = Supplier::new("acme");
    assert_eq!(
        ch.try_submit(&acme.master_entry()).unwrap_err(),
        (403, "invite_required".into())
    );
    let out = std::process::Command::new(super::harness::BIN)
        .args(["invite", "acme", "--config"])
        .arg(&ch.config)
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    // A token for acme does not register someone else.
    let other = Supplier::new("other");
    assert_eq!(
        ch.try_submit_invite(&other.master_entry(), Some(&token))
            .unwrap_err(),
        (403, "invite_invalid".into())
    );
    assert_eq!(
        ch.try_submit_invite(&acme.master_entry(), Some("00"))
            .unwrap_err(),
        (403, "invite_invalid".into())
    );
    ch.try_submit_invite(&acme.master_entry(), Some(&token))
        .unwrap();
    // Later entries of a registered supplier need no token.
    ch.try_submit(&acme.signing_entry()).unwrap();
    // The token works once, for its supplier only.
    let acme2 = Supplier::new("acme2");
    assert_eq!(
        ch.try_submit_invite(&acme2.master_entry(), Some(&token))
            .unwrap_err(),
        (403, "invite_invalid".into())
    );
}
