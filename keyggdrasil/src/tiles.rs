//! The log as static files, in the layout of C2SP tlog-tiles: which files a tree of a given size
//! has, their paths, and their bytes. Pure: the channel writes the files, a mirror serves them,
//! a reader checks them against a signed root.
//!
//! - **Hash tiles** `tile/<L>/<N>[.p/<W>]`: tile `N` at level `L` holds the hashes of the tree
//!   nodes of height `8·L` numbered `256·N ..` (level 0: the leaf hashes), 32 bytes each, in
//!   order. A full tile has 256 hashes and never changes; a partial tile (`.p/<W>`, `1 ≤ W <
//!   256`) has the first `W`, and exists for the sizes that end inside it.
//! - **Entry bundles** `tile/entries/<N>[.p/<W>]`: the entries `256·N ..`, each as a big-endian
//!   `u16` length and the entry's bytes.
//! - **Index encoding**: `N` in groups of three decimal digits, every group but the last with
//!   an `x` prefix: `1234067` is `x001/x234/067`, `5` is `005`.
//!
//! The hash is the log's [`TreeHasher`]; the tiles are read from the stored hashes
//! ([`StoredIndex::for_node`]), so they are the same for any hasher a store was built with.
//! What this module does not do: sign anything, write files, or decide when a size is
//! published (the channel does, and writes its signed checkpoint after the tiles of that size).

use crate::merkle::{Hash, HashStore, MerkleError, StoredIndex};
use thiserror::Error;

/// Tree levels one tile spans.
pub const TILE_HEIGHT: u32 = 8;
/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// One tile: its level, index and width (`1..=256`; 256 is a full tile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TileId {
    /// The tile level (hashes of tree height `8·level`).
    pub level: u8,
    /// The tile index at that level.
    pub index: u64,
    /// How many hashes (or entries) it holds.
    pub width: u16,
}

/// A tile's or bundle's bytes that do not have the shape the layout requires.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TileError {
    /// A hash tile of the wrong length.
    #[error("a tile of width {width} has {got} bytes, not {}", *width as usize * 32)]
    TileLength {
        /// The width expected.
        width: u16,
        /// Bytes got.
        got: usize,
    },
    /// An entry bundle that ends inside an entry, has another number of entries, or trailing
    /// bytes.
    #[error("the entry bundle is malformed: {0}")]
    Bundle(String),
    /// An entry too long for the `u16` length prefix.
    #[error("an entry of {0} bytes does not fit an entry bundle")]
    EntryTooLong(usize),
    /// A tile outside the tree of the given size.
    #[error("tile {path} is not in a tree of {size} leaves")]
    NotInTree {
        /// The tile's path.
        path: String,
        /// The tree size.
        size: u64,
    },
    /// A stored hash could not be read.
    #[error(transparent)]
    Merkle(#[from] MerkleError),
}

/// `N` in the tlog-tiles path encoding (`x001/x234/067`).
pub fn encode_index(n: u64) -> String {
    let digits = n.to_string();
    let pad = (3 - digits.len() % 3) % 3;
    let padded = format!("{}{digits}", "0".repeat(pad));
    let groups: Vec<&str> = padded
        .as_bytes()
        .chunks(3)
        .map(|c| std::str::from_utf8(c).unwrap_or("000"))
        .collect();
    let last = groups.len() - 1;
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            if i < last {
                format!("x{g}")
            } else {
                (*g).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

impl TileId {
    /// Whether it is a full (immutable) tile.
    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    fn suffix(&self) -> String {
        if self.is_full() {
            encode_index(self.index)
        } else {
            format!("{}.p/{}", encode_index(self.index), self.width)
        }
    }

    /// Its path, `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, self.suffix())
    }

    /// The path of the entry bundle beside a level-0 tile, `tile/entries/<N>[.p/<W>]`.
    pub fn entries_path(&self) -> String {
        format!("tile/entries/{}", self.suffix())
    }

    /// The node numbers (at tree height `8·level`) its hashes are of.
    pub fn nodes(&self) -> std::ops::Range<u64> {
        let first = self.index * TILE_WIDTH;
        first..first + u64::from(self.width)
    }

    /// The leaves its last hash covers up to (the smallest tree size it is in).
    pub fn leaves_end(&self) -> u64 {
        self.nodes().end << (TILE_HEIGHT * u32::from(self.level))
    }
}

/// Nodes of height `8·level` in a tree of `size` leaves.
fn nodes_at(level: u8, size: u64) -> u64 {
    size.checked_shr(TILE_HEIGHT * u32::from(level))
        .unwrap_or(0)
}

/// The tiles a tree of `size` leaves has whose contents a tree of `old` leaves did not have:
/// every tile that became full, and the partial tile at each level that changed. Publishing
/// these for each published size keeps "every tile of every published size exists". Ordered
/// by level, then index.
pub fn tiles_between(old: u64, size: u64) -> Vec<TileId> {
    let mut out = Vec::new();
    if size <= old {
        return out;
    }
    for level in 0u8..=63 {
        let new_nodes = nodes_at(level, size);
        if new_nodes == 0 {
            break;
        }
        let old_nodes = nodes_at(level, old);
        if new_nodes == old_nodes {
            continue;
        }
        for index in old_nodes / TILE_WIDTH..=(new_nodes - 1) / TILE_WIDTH {
            let width = (new_nodes - index * TILE_WIDTH).min(TILE_WIDTH);
            out.push(TileId {
                level,
                index,
                width: width as u16,
            });
        }
    }
    out
}

/// Every tile of a tree of `size` leaves (its full tiles, and the partial one at each level).
pub fn tiles_of(size: u64) -> Vec<TileId> {
    tiles_between(0, size)
}

/// The bytes of `tile` from a store holding at least `size` leaves: its hashes, concatenated.
pub fn tile_bytes<S: HashStore + ?Sized>(
    tile: &TileId,
    size: u64,
    store: &S,
) -> Result<Vec<u8>, TileError> {
    if tile.width == 0 || u64::from(tile.width) > TILE_WIDTH || tile.leaves_end() > size {
        return Err(TileError::NotInTree {
            path: tile.path(),
            size,
        });
    }
    let height = TILE_HEIGHT * u32::from(tile.level);
    let indexes = tile
        .nodes()
        .map(|n| StoredIndex::for_node(height, n))
        .collect::<Result<Vec<_>, _>>()?;
    let hashes = store.get_many(&indexes).map_err(MerkleError::from)?;
    if hashes.len() != indexes.len() {
        return Err(MerkleError::Store(crate::merkle::StoreError::WrongCount {
            requested: indexes.len(),
            returned: hashes.len(),
        })
        .into());
    }
    Ok(hashes.concat())
}

/// The hashes of a tile's bytes, refusing any length but `32·width`.
pub fn parse_tile(bytes: &[u8], width: u16) -> Result<Vec<Hash>, TileError> {
    if bytes.len() != usize::from(width) * 32 {
        return Err(TileError::TileLength {
            width,
            got: bytes.len(),
        });
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect())
}

/// An entry bundle: each entry as a big-endian `u16` length and its bytes.
pub fn entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).map_err(|_| TileError::EntryTooLong(e.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// The entries of a bundle that must hold exactly `width` of them, refusing a bundle cut
/// inside an entry, with fewer or more entries, or with trailing bytes.
pub fn parse_entry_bundle(bytes: &[u8], width: u16) -> Result<Vec<&[u8]>, TileError> {
    let mut out = Vec::with_capacity(usize::from(width));
    let mut rest = bytes;
    while !rest.is_empty() {
        if out.len() == usize::from(width) {
            return Err(TileError::Bundle(format!(
                "more than {width} entries (or trailing bytes)"
            )));
        }
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            return Err(TileError::Bundle("cut inside a length prefix".into()));
        };
        let len = usize::from(u16::from_be_bytes(*len));
        if tail.len() < len {
            return Err(TileError::Bundle(format!(
                "entry {} is cut short ({} of {len} bytes)",
                out.len(),
                tail.len()
            )));
        }
        let (entry, tail) = tail.split_at(len);
        out.push(entry);
        rest = tail;
    }
    if out.len() != usize::from(width) {
        return Err(TileError::Bundle(format!(
            "{} entries, not {width}",
            out.len()
        )));
    }
    Ok(out)
}

/// The path of an archive published by its unkeyed BLAKE2b-512 digest.
pub fn archive_path(digest: &[u8; 64]) -> String {
    format!("archive/{}", crate::encoding::to_hex(digest))
}
