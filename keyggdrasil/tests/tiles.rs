//! `tiles`: the tlog-tiles paths (the spec's own index example), which tiles each size has (every
//! tile of every published size exists after publishing `tiles_between` step by step), tile
//! bytes recomputed independently from the leaves (not through the stored-hash layout), with
//! BLAKE2b-256 and SHA-256, and the entry bundle's refusals.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use keyggdrasil::merkle::{Blake2b256, MemoryStore, TreeHasher, root_from_leaf_hashes};
use keyggdrasil::tiles::{
    TILE_WIDTH, TileError, TileId, archive_path, encode_index, entry_bundle, parse_entry_bundle,
    parse_tile, tile_bytes, tiles_between, tiles_of,
};
use proptest::prelude::*;

use keyggdrasil::merkle::Sha256Interop as Sha256;

fn tile(level: u8, index: u64, width: u16) -> TileId {
    TileId {
        level,
        index,
        width,
    }
}

#[test]
fn paths_follow_the_tlog_tiles_encoding() {
    // The spec's example: index 1234067 is x001/x234/067.
    assert_eq!(encode_index(1_234_067), "x001/x234/067");
    for (n, want) in [
        (0, "000"),
        (5, "005"),
        (999, "999"),
        (1000, "x001/000"),
        (256, "256"),
        (1_000_000, "x001/x000/000"),
    ] {
        assert_eq!(encode_index(n), want, "{n}");
    }
    assert_eq!(tile(0, 1_234_067, 256).path(), "tile/0/x001/x234/067");
    assert_eq!(tile(2, 3, 8).path(), "tile/2/003.p/8");
    assert_eq!(tile(0, 3, 8).entries_path(), "tile/entries/003.p/8");
    assert_eq!(tile(0, 1000, 256).entries_path(), "tile/entries/x001/000");
    assert_eq!(
        archive_path(&[0xab; 64]),
        format!("archive/{}", "ab".repeat(64))
    );
}

#[test]
fn the_tiles_of_some_sizes() {
    assert!(tiles_of(0).is_empty());
    assert_eq!(tiles_of(1), vec![tile(0, 0, 1)]);
    assert_eq!(tiles_of(256), vec![tile(0, 0, 256), tile(1, 0, 1)]);
    // 257: one more leaf changes level 0 only.
    assert_eq!(tiles_between(256, 257), vec![tile(0, 1, 1)]);
    // 70000 = 273·256 + 112; 273 level-1 nodes = 256 + 17; one level-2 node.
    let t = tiles_of(70_000);
    assert_eq!(t.iter().filter(|t| t.level == 0).count(), 274);
    assert_eq!(
        t.iter().filter(|t| t.level == 0 && t.is_full()).count(),
        273
    );
    assert!(t.contains(&tile(0, 273, 112)));
    assert!(t.contains(&tile(1, 0, 256)));
    assert!(t.contains(&tile(1, 1, 17)));
    assert!(t.contains(&tile(2, 0, 1)));
    assert_eq!(t.len(), 274 + 2 + 1);
    // Nothing new, nothing to write.
    assert!(tiles_between(70_000, 70_000).is_empty());
    assert!(tiles_between(70_000, 5).is_empty());
}

proptest! {
    /// Publishing `tiles_between(previous, next)` at each published size leaves every tile of
    /// every published size in place, and never rewrites a full tile.
    #[test]
    fn publishing_step_by_step_keeps_every_tile_of_every_published_size(
        steps in proptest::collection::vec(1u64..700, 1..12),
    ) {
        let mut written: BTreeMap<String, usize> = BTreeMap::new();
        let mut size = 0;
        let mut published = vec![];
        for step in steps {
            let next = size + step;
            for t in tiles_between(size, next) {
                let times = written.entry(t.path()).or_default();
                *times += 1;
                prop_assert!(!(t.is_full() && *times > 1), "full tile {} written twice", t.path());
            }
            size = next;
            published.push(size);
        }
        for s in published {
            for t in tiles_of(s) {
                prop_assert!(written.contains_key(&t.path()), "size {s}: {} missing", t.path());
            }
        }
    }
}

/// Every tile of a tree of `n` leaves, recomputed from the leaf hashes by subtree roots.
fn check_tiles_against_leaves<H: TreeHasher>(hasher: &H, n: u64) {
    let mut store = MemoryStore::new();
    let mut leaves = Vec::new();
    for i in 0..n {
        let entry = format!("entry {i}");
        leaves.push(hasher.hash_leaf(entry.as_bytes()));
        store.append(hasher, entry.as_bytes()).unwrap();
    }
    for t in tiles_of(n) {
        let bytes = tile_bytes(&t, n, &store).unwrap();
        let hashes = parse_tile(&bytes, t.width).unwrap();
        let span = 1usize << (8 * u32::from(t.level));
        for (node, got) in t.nodes().zip(&hashes) {
            let lo = node as usize * span;
            let want = root_from_leaf_hashes(hasher, &leaves[lo..lo + span]).unwrap();
            assert_eq!(*got, want, "{} node {node}", t.path());
        }
    }
}

#[test]
fn tile_bytes_are_the_subtree_roots_blake2b() {
    check_tiles_against_leaves(&Blake2b256, 66_000);
}

#[test]
fn tile_bytes_are_the_subtree_roots_sha256() {
    check_tiles_against_leaves(&Sha256, 1_000);
}

#[test]
fn a_tile_outside_the_tree_is_refused() {
    let mut store = MemoryStore::new();
    for i in 0..300u32 {
        store.append(&Blake2b256, &i.to_be_bytes()).unwrap();
    }
    assert!(tile_bytes(&tile(0, 1, 44), 300, &store).is_ok());
    for t in [tile(0, 1, 45), tile(0, 2, 1), tile(1, 0, 2), tile(0, 0, 0)] {
        assert!(
            matches!(
                tile_bytes(&t, 300, &store),
                Err(TileError::NotInTree { .. })
            ),
            "{t:?}"
        );
    }
    assert_eq!(TILE_WIDTH, 256);
}

#[test]
fn a_tile_of_the_wrong_length_is_refused() {
    assert_eq!(parse_tile(&[0; 64], 2).unwrap().len(), 2);
    for len in [0, 63, 65, 96] {
        assert!(matches!(
            parse_tile(&vec![0; len], 2),
            Err(TileError::TileLength { width: 2, .. })
        ));
    }
}

#[test]
fn entry_bundles_round_trip_and_refuse_every_malformation() {
    let entries: Vec<&[u8]> = vec![b"one", b"", b"three three"];
    let b = entry_bundle(entries.iter().copied()).unwrap();
    assert_eq!(&b[..5], &[0, 3, b'o', b'n', b'e']);
    assert_eq!(parse_entry_bundle(&b, 3).unwrap(), entries);
    // Cut inside an entry, inside a length prefix; a trailing byte; the wrong count.
    assert!(parse_entry_bundle(&b[..b.len() - 1], 3).is_err());
    assert!(parse_entry_bundle(&b[..6], 3).is_err());
    let mut long = b.clone();
    long.push(0);
    assert!(parse_entry_bundle(&long, 3).is_err());
    assert!(parse_entry_bundle(&b, 2).is_err());
    assert!(parse_entry_bundle(&b, 4).is_err());
    assert_eq!(parse_entry_bundle(&[], 0).unwrap().len(), 0);
    // An entry longer than the u16 prefix allows.
    assert!(matches!(
        entry_bundle([&vec![0u8; 65_536][..]]),
        Err(TileError::EntryTooLong(65_536))
    ));
    assert!(entry_bundle([&vec![0u8; 65_535][..]]).is_ok());
}
