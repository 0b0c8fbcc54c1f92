//! The log as static tiles (C2SP tlog-tiles, `keyggdrasil::tiles`), as a site reads them from a
//! tile mirror: hash tiles (`parse_tile`), entry bundles (`parse_entry_bundle`, then
//! `Entry::parse` of each entry, as `continuum` does), the tile layout (`tiles_between`,
//! `tiles_of`, paths), and the reader's check of tiles against a signed root (the leaf hashes of
//! level-0 tiles pushed onto a `LogView` and `check_root`, as `continuum`'s catch-up from tile
//! mirrors does). Selected by the first byte modulo 4:
//!
//! 0. a hash tile: the next two bytes are the width asked (big-endian), the rest the tile;
//! 1. an entry bundle: the same, the rest the bundle;
//! 2. the layout: two big-endian `u64` sizes `old`, `size` (raw, up to `u64::MAX`);
//! 3. the check: a fixed real log of 600 leaves; two bytes give the size `s` (1..=600) and two
//!    the size `start < s` the reader has; the level-0 tiles it reads for `start..s` are the
//!    honest tile bytes with the fuzzer's edits (pairs of a two-byte position and a byte to XOR),
//!    or, if the next byte is odd, the rest of the input taken as the tiles' bytes.
//!
//! Properties, besides never panicking:
//! - a hash tile parses exactly when it has `32·width` bytes, into those bytes in order;
//! - a bundle that parses has exactly `width` entries and is their one encoding
//!   (`entry_bundle` gives the input back);
//! - layout: every tile has a width in 1..=256, lies inside the tree of `size` leaves, changed
//!   since `old` (its last node is past the old tree's nodes at its level), is full unless it is
//!   the last at its level; tiles are in (level, index) order, each once; its path is
//!   `tile/<level>/<index encoding>` and the index encoding reads back to the index;
//! - the check: the honest tiles are the real leaf hashes and pass against the real root; tiles
//!   that pass give exactly the honest leaf hashes past `start` (any change is caught by the
//!   root; the hashes before `start` in the first tile are the reader's own and not read).
#![no_main]

use keyggdrasil::entry::Entry;
use keyggdrasil::log::LogView;
use keyggdrasil::merkle::{self, Blake2b256, Hash, MemoryStore, TreeHasher};
use keyggdrasil::tiles::{self, TILE_WIDTH, TileId};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

const LEAVES: u64 = 600;

struct World {
    store: MemoryStore,
    leaf_hashes: Vec<Hash>,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let mut store = MemoryStore::new();
    let mut leaf_hashes = Vec::new();
    for i in 0..LEAVES {
        let data = format!("leaf {i}");
        leaf_hashes.push(LogView::leaf_hash(data.as_bytes()));
        store
            .append(&Blake2b256, data.as_bytes())
            .expect("600 leaves fit");
    }
    assert_eq!(leaf_hashes[0], Blake2b256.hash_leaf(b"leaf 0"));
    World { store, leaf_hashes }
});

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    let hi = bytes.get(at).copied().unwrap_or(0);
    let lo = bytes.get(at + 1).copied().unwrap_or(0);
    u16::from_be_bytes([hi, lo])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, x) in b.iter_mut().enumerate() {
        *x = bytes.get(at + i).copied().unwrap_or(0);
    }
    u64::from_be_bytes(b)
}

fn hash_tile(rest: &[u8]) {
    let width = u16_at(rest, 0);
    let bytes = rest.get(2..).unwrap_or(&[]);
    match tiles::parse_tile(bytes, width) {
        Ok(hashes) => {
            assert_eq!(bytes.len(), usize::from(width) * 32);
            assert_eq!(hashes.len(), usize::from(width));
            assert_eq!(hashes.concat(), bytes);
        }
        Err(e) => {
            assert_ne!(bytes.len(), usize::from(width) * 32);
            let _ = e.to_string();
        }
    }
}

fn entry_bundle(rest: &[u8]) {
    let width = u16_at(rest, 0);
    let bytes = rest.get(2..).unwrap_or(&[]);
    match tiles::parse_entry_bundle(bytes, width) {
        Ok(entries) => {
            assert_eq!(entries.len(), usize::from(width));
            let again = tiles::entry_bundle(entries.iter().copied()).expect("they fitted before");
            assert_eq!(again, bytes, "a bundle has one encoding");
            for e in &entries {
                if let Err(e) = Entry::parse(e) {
                    let _ = e.to_string();
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Reads the `x001/x234/067` encoding back, checking its shape.
fn decode_index(text: &str) -> u64 {
    let groups: Vec<&str> = text.split('/').collect();
    let mut n: u64 = 0;
    for (i, g) in groups.iter().enumerate() {
        let digits = if i + 1 < groups.len() {
            g.strip_prefix('x')
                .expect("every group but the last has an x")
        } else {
            g
        };
        assert_eq!(digits.len(), 3, "groups of three digits: {text}");
        assert!(digits.bytes().all(|b| b.is_ascii_digit()));
        let v: u64 = digits.parse().expect("three digits");
        n = n
            .checked_mul(1000)
            .and_then(|n| n.checked_add(v))
            .expect("fits");
    }
    n
}

fn layout(rest: &[u8]) {
    let old = u64_at(rest, 0);
    let size = u64_at(rest, 8);
    // The tiles of a step of more than a few million leaves do not fit in memory; the channel
    // publishes after every commit, so its steps are small.
    if size.saturating_sub(old) > 1 << 20 {
        return;
    }
    let list = tiles::tiles_between(old, size);
    if size <= old {
        assert!(list.is_empty());
    }
    let nodes_at = |level: u8, s: u64| s.checked_shr(8 * u32::from(level)).unwrap_or(0);
    for (i, t) in list.iter().enumerate() {
        assert!(t.width >= 1 && u64::from(t.width) <= TILE_WIDTH);
        let nodes = t.nodes();
        assert!(
            nodes.end <= nodes_at(t.level, size),
            "tile outside the tree"
        );
        assert!(nodes.end > nodes_at(t.level, old), "tile did not change");
        if !t.is_full() {
            assert_eq!(nodes.end, nodes_at(t.level, size), "partial tile not last");
        }
        if let Some(prev) = i.checked_sub(1).map(|j| list[j]) {
            assert!((prev.level, prev.index) < (t.level, t.index), "order");
        }
        let path = t.path();
        let prefix = format!("tile/{}/", t.level);
        let suffix = path.strip_prefix(&prefix).expect("tile/<level>/");
        let index_text = match suffix.split_once(".p/") {
            Some((index, w)) => {
                assert!(!t.is_full());
                assert_eq!(w, t.width.to_string());
                index
            }
            None => {
                assert!(t.is_full());
                suffix
            }
        };
        assert_eq!(decode_index(index_text), t.index);
        if t.level == 0 {
            assert_eq!(
                t.entries_path(),
                format!("tile/entries/{}", &path["tile/0/".len()..])
            );
        }
    }
    if old == 0 {
        assert_eq!(tiles::tiles_of(size), list);
    }
}

fn check(rest: &[u8]) {
    let world = &*WORLD;
    let size = u64::from(u16_at(rest, 0)) % LEAVES + 1;
    let start = u64::from(u16_at(rest, 2)) % size;
    let raw = rest.get(4).is_some_and(|b| b % 2 == 1);
    let tail = rest.get(5..).unwrap_or(&[]);
    let h = Blake2b256;
    let root = merkle::root_at(&h, size, &world.store).expect("size within the store");

    // The level-0 tiles a reader at `start` fetches for the tree of `size` leaves (as
    // `leaf_hashes_from_tiles` does), honest bytes first.
    let mut ids = Vec::new();
    let mut index = start / TILE_WIDTH;
    while index * TILE_WIDTH < size {
        let first = index * TILE_WIDTH;
        ids.push(TileId {
            level: 0,
            index,
            width: (size - first).min(TILE_WIDTH) as u16,
        });
        index += 1;
    }
    let mut honest = Vec::new();
    for t in &ids {
        let bytes = tiles::tile_bytes(t, size, &world.store).expect("a tile of the tree");
        let hashes = tiles::parse_tile(&bytes, t.width).expect("honest tile parses");
        assert_eq!(
            hashes,
            world.leaf_hashes[t.nodes().start as usize..t.nodes().end as usize],
            "a level-0 tile is the leaf hashes"
        );
        honest.push(bytes);
    }
    let mut got = honest.clone();
    if raw {
        let mut at = 0;
        for g in &mut got {
            let n = g.len().min(tail.len().saturating_sub(at));
            g.truncate(0);
            g.extend_from_slice(&tail[at..at + n]);
            at += n;
        }
    } else {
        for edit in tail.chunks_exact(3) {
            let pos = usize::from(u16::from_be_bytes([edit[0], edit[1]]));
            let total: usize = got.iter().map(Vec::len).sum();
            let mut pos = pos % total;
            for g in &mut got {
                if pos < g.len() {
                    g[pos] ^= edit[2];
                    break;
                }
                pos -= g.len();
            }
        }
    }

    // What the reader takes from the tiles: the leaf hashes past `start` (the earlier hashes of
    // the first tile are the reader's own already and are skipped, as in `continuum`).
    let used = |tiles_bytes: &[Vec<u8>]| -> Option<Vec<Hash>> {
        let mut out = Vec::new();
        for (t, bytes) in ids.iter().zip(tiles_bytes) {
            let hashes = tiles::parse_tile(bytes, t.width).ok()?;
            let skip = usize::try_from(start.saturating_sub(t.nodes().start)).unwrap_or(usize::MAX);
            out.extend_from_slice(hashes.get(skip..).unwrap_or(&[]));
        }
        Some(out)
    };
    let passes = |hashes: &[Hash]| -> bool {
        let mut view = LogView::from_store(start, &world.store).expect("start within the store");
        view.push_leaf_hashes(hashes).expect("a small tree");
        view.check_root(size, &root).is_ok()
    };
    let honest_used = used(&honest).expect("honest tiles parse");
    assert_eq!(
        honest_used,
        world.leaf_hashes[start as usize..size as usize]
    );
    assert!(passes(&honest_used), "honest tiles fail the check");
    if let Some(got_used) = used(&got)
        && passes(&got_used)
    {
        assert_eq!(got_used, honest_used, "changed tiles passed the root check");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => hash_tile(rest),
        1 => entry_bundle(rest),
        2 => layout(rest),
        _ => check(rest),
    }
});
