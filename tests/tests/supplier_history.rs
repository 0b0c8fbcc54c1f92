//! A supplier's history with inclusion proofs (issue 17, part 3): `GET /v1/suppliers/{name}`
//! on a real channel. Two suppliers with interleaved entries, one of them with more than a page
//! (so `start`/`next` paging really happens); every page is checked with
//! `history::verify_supplier_history` against a checkpoint from `/v1/checkpoint`, and the pages
//! put together are exactly that supplier's entries from the whole log, at the full size and at
//! an earlier checkpoint's size. Unknown suppliers are 404, bad names, sizes and starts 400.

use keyggdrasil::entry::Entry;
use keyggdrasil::history::{
    HistoryEntry, MAX_HISTORY_PAGE, SupplierHistoryResponse, verify_supplier_history,
};
use keyggdrasil::limits::Limits;
use keyggdrasil::names::SupplierName;
use keyggdrasil::wire::{VerifiedCheckpoint, verify_checkpoint};
use system_tests::{Channel, Supplier};

fn checkpoint(ch: &Channel) -> VerifiedCheckpoint {
    let signed = ch.get_signed("/v1/checkpoint");
    verify_checkpoint(&signed, &ch.key, Some(&ch.origin()), &Limits::default())
        .expect("the channel's checkpoint verifies")
}

/// Reads the whole history of `supplier` at the checkpoint's size, page by page, checking each
/// page; returns the entries and the number of pages.
fn history(ch: &Channel, cp: &VerifiedCheckpoint, supplier: &str) -> (Vec<HistoryEntry>, usize) {
    let name = SupplierName::parse(supplier).unwrap();
    let (mut all, mut pages, mut start) = (Vec::new(), 0, 0u64);
    loop {
        let path = format!("/v1/suppliers/{supplier}?size={}&start={start}", cp.size());
        let page: SupplierHistoryResponse = ch
            .get(&path)
            .unwrap_or_else(|e| panic!("GET {path}: {e:?}"));
        assert!(page.entries.len() <= MAX_HISTORY_PAGE);
        let checked = verify_supplier_history(&page, cp, &name, start, &Limits::default())
            .unwrap_or_else(|e| panic!("page from {start} of {supplier}: {e}"));
        // Another supplier's name, or a later start, refuses the same honest page.
        let other = SupplierName::parse("nobody").unwrap();
        assert!(verify_supplier_history(&page, cp, &other, start, &Limits::default()).is_err());
        if let Some(first) = page.entries.first() {
            let later = first.index + 1;
            assert!(verify_supplier_history(&page, cp, &name, later, &Limits::default()).is_err());
        }
        pages += 1;
        all.extend(checked);
        match page.next {
            Some(next) => {
                // A page with a next is full: the channel pages by count.
                assert_eq!(page.entries.len(), MAX_HISTORY_PAGE);
                start = next;
            }
            None => return (all, pages),
        }
    }
}

/// The indices and bytes of `supplier`'s entries among the first `size`, from `/v1/entries`.
fn expected(ch: &Channel, size: u64, supplier: &str) -> Vec<(u64, Vec<u8>)> {
    ch.all_entries(size)
        .into_iter()
        .enumerate()
        .filter(|(_, bytes)| Entry::parse(bytes).unwrap().body().supplier.as_str() == supplier)
        .map(|(i, bytes)| (i as u64, bytes))
        .collect()
}

fn as_list(got: &[HistoryEntry]) -> Vec<(u64, Vec<u8>)> {
    got.iter()
        .map(|e| (e.index, e.entry.as_bytes().to_vec()))
        .collect()
}

fn refused(ch: &Channel, path: &str, status: u16, code: &str) {
    match ch.get::<serde_json::Value>(path) {
        Err((s, c)) => assert_eq!((s, c.as_str()), (status, code), "{path}"),
        Ok(v) => panic!("{path} answered {v}"),
    }
}

#[test]
fn a_suppliers_history_pages_through_every_entry_with_proofs() {
    let ch = Channel::start();
    let (acme, bolt) = (Supplier::new("acme"), Supplier::new("bolt"));
    acme.register(&ch);
    bolt.register(&ch);
    // acme: 2 keys + 130 releases (two pages and a bit); bolt: 2 keys + 6 releases, between.
    let releases = 130;
    let mut early = None;
    for i in 0..releases {
        let archive = format!("archive {i}");
        ch.submit(&acme.release(
            &acme.signing,
            "hello",
            &format!("1.0.{i}"),
            archive.as_bytes(),
        ));
        if i % 25 == 0 {
            ch.submit(&bolt.release(
                &bolt.signing,
                "tool",
                &format!("0.{i}.0"),
                archive.as_bytes(),
            ));
        }
        if i == 60 {
            early = Some(checkpoint(&ch));
        }
    }
    let cp = checkpoint(&ch);
    let size = cp.size();
    assert_eq!(size, 4 + releases + 6);

    let (got, pages) = history(&ch, &cp, "acme");
    assert_eq!(
        pages,
        2,
        "{} entries in pages of {MAX_HISTORY_PAGE}",
        got.len()
    );
    assert_eq!(got.len() as u64, 2 + releases);
    assert_eq!(as_list(&got), expected(&ch, size, "acme"));
    let (got, pages) = history(&ch, &cp, "bolt");
    assert_eq!(pages, 1);
    assert_eq!(got.len(), 8);
    assert_eq!(as_list(&got), expected(&ch, size, "bolt"));

    // At an earlier checkpoint's size: only the entries below it, with proofs for that tree.
    let early = early.unwrap();
    assert!(early.size() < size);
    for supplier in ["acme", "bolt"] {
        let (got, _) = history(&ch, &early, supplier);
        assert_eq!(as_list(&got), expected(&ch, early.size(), supplier));
    }
    // A page checked against the wrong checkpoint is refused.
    let page: SupplierHistoryResponse = ch
        .get(&format!("/v1/suppliers/bolt?size={}", early.size()))
        .unwrap();
    let bolt_name = SupplierName::parse("bolt").unwrap();
    assert!(verify_supplier_history(&page, &cp, &bolt_name, 0, &Limits::default()).is_err());

    // After bolt's last entry, a page is empty and final (bolt is known, so not 404).
    let last_bolt = expected(&ch, size, "bolt").last().unwrap().0;
    let page: SupplierHistoryResponse = ch
        .get(&format!(
            "/v1/suppliers/bolt?size={size}&start={}",
            last_bolt + 1
        ))
        .unwrap();
    assert!(page.entries.is_empty() && page.next.is_none());
    verify_supplier_history(&page, &cp, &bolt_name, last_bolt + 1, &Limits::default()).unwrap();
    // The wire form of an answer: `next` is always there, `completeness` is "asserted".
    let raw: serde_json::Value = ch.get(&format!("/v1/suppliers/bolt?size={size}")).unwrap();
    assert_eq!(raw["next"], serde_json::Value::Null);
    assert_eq!(raw["completeness"], "asserted");
    assert_eq!(raw["supplier"], "bolt");

    // Unknown: a supplier never logged, and one not logged below the asked size.
    refused(
        &ch,
        &format!("/v1/suppliers/carol?size={size}"),
        404,
        "unknown_supplier",
    );
    refused(&ch, "/v1/suppliers/bolt?size=2", 404, "unknown_supplier");
    // Bad name, size and start.
    refused(
        &ch,
        &format!("/v1/suppliers/Acme?size={size}"),
        400,
        "bad_name",
    );
    refused(
        &ch,
        &format!("/v1/suppliers/a%2Fb?size={size}"),
        400,
        "bad_name",
    );
    refused(
        &ch,
        &format!("/v1/suppliers/a%FF?size={size}"),
        400,
        "bad_name",
    );
    refused(&ch, "/v1/suppliers/acme", 400, "bad_query");
    refused(&ch, "/v1/suppliers/acme?size=ten", 400, "bad_query");
    refused(
        &ch,
        &format!("/v1/suppliers/acme?size={size}&start=-1"),
        400,
        "bad_query",
    );
    refused(
        &ch,
        &format!("/v1/suppliers/acme?size={size}&from=3"),
        400,
        "bad_query",
    );
    refused(&ch, "/v1/suppliers/acme?size=0", 400, "bad_range");
    refused(
        &ch,
        &format!("/v1/suppliers/acme?size={}", size + 1),
        400,
        "bad_range",
    );
    refused(
        &ch,
        &format!("/v1/suppliers/acme?size={size}&start={size}"),
        400,
        "bad_range",
    );
    refused(&ch, "/v1/suppliers/acme/more?size=1", 404, "not_found");
}
