//! The static copy of the log (`<data>/public/`), in the C2SP tlog-tiles layout
//! ([`keyggdrasil::tiles`]): hash tiles, entry bundles, archives by digest and the signed
//! checkpoint, for any static web server or CDN to serve (docs/channel-operator.md, "Serving the
//! log as static files").
//!
//! After the log grows, [`publish_tiles`] writes the tiles that the new size has and the old one
//! did not (every full tile once, and a partial tile for each published size); then the caller
//! writes the checkpoint of that size with [`write_checkpoint`], so a reader who sees a
//! checkpoint finds every tile of its size. Every file is written to a temporary name, synced,
//! and renamed into place, and the folders are synced before the checkpoint is written; the
//! published size is the checkpoint file's own ([`published_size`]), so after a crash the next
//! run rewrites whatever may be missing (the same bytes: tiles are a function of the log).
//!
//! The files are derived data: nothing here is trusted by anyone. A reader checks every tile
//! against a signed root; `channel-server check` recomputes them all from the stored log.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use keyggdrasil::keys::PublicKey;
use keyggdrasil::names::ChannelName;
use keyggdrasil::tiles::{self, TileId, tiles_between};
use rusqlite::Connection;

use crate::store::{self, DbError, SqliteHashes};

/// Why publishing failed. The log is unaffected; the next attempt starts again from the last
/// recorded published size.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// A file could not be written.
    #[error("could not write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database could not be read.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A tile could not be made from the stored hashes.
    #[error(transparent)]
    Tile(#[from] tiles::TileError),
}

/// Writes `bytes` to `path` atomically (temporary file in the same folder, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    let io = |source| PublishError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), PublishError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| PublishError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// The size of the checkpoint note in `public/checkpoint`, if it is one signed by `key` for
/// `origin` (what the last run published; 0 when there is none, or one from before checkpoints
/// were notes, so everything is written again).
pub fn published_size(public: &Path, key: &PublicKey, origin: &ChannelName) -> u64 {
    std::fs::read(public.join("checkpoint"))
        .ok()
        .and_then(|b| keyggdrasil::tlog_checkpoint::open(&b, key, origin).ok())
        .map(|c| c.size())
        .unwrap_or(0)
}

/// The bytes of one tile (hashes) from the stored log of `size` entries.
pub fn tile_file(conn: &Connection, tile: &TileId, size: u64) -> Result<Vec<u8>, PublishError> {
    Ok(tiles::tile_bytes(tile, size, &SqliteHashes(conn))?)
}

/// The bytes of one entry bundle (a level-0 tile's entries) from the stored log.
pub fn bundle_file(conn: &Connection, tile: &TileId) -> Result<Vec<u8>, PublishError> {
    let range = tile.nodes();
    let entries = store::entries(conn, range.start, range.end)?;
    if entries.len() as u64 != range.end - range.start {
        return Err(DbError::Inconsistent(format!(
            "entries {}..{} are not all stored",
            range.start, range.end
        ))
        .into());
    }
    Ok(tiles::entry_bundle(entries.iter().map(Vec::as_slice))?)
}

/// Writes the tiles and entry bundles that a log of `to` entries has and one of `from` did
/// not, under `public`. Returns how many files were written.
pub fn publish_tiles(
    conn: &Connection,
    public: &Path,
    from: u64,
    to: u64,
) -> Result<usize, PublishError> {
    let mut written = 0;
    let mut dirs = std::collections::BTreeSet::new();
    for tile in tiles_between(from, to) {
        let path = public.join(tile.path());
        write_atomic(&path, &tile_file(conn, &tile, to)?)?;
        dirs.extend(path.parent().map(Path::to_path_buf));
        written += 1;
        if tile.level == 0 {
            let path = public.join(tile.entries_path());
            write_atomic(&path, &bundle_file(conn, &tile)?)?;
            dirs.extend(path.parent().map(Path::to_path_buf));
            written += 1;
        }
    }
    for d in dirs {
        sync_dir(&d)?;
    }
    Ok(written)
}

/// Writes the checkpoint note ([`keyggdrasil::tlog_checkpoint`]) to `public/checkpoint`,
/// after the tiles of its size.
pub fn write_checkpoint(public: &Path, note: &[u8]) -> Result<(), PublishError> {
    write_atomic(&public.join("checkpoint"), note)?;
    sync_dir(public)
}

/// Publishes an archive by digest (`public/archive/<hex>`): a hard link to the stored file, or
/// a copy where links are not possible. Idempotent.
///
/// With `replace`, an existing file is removed first (the stored archive was just replaced
/// after a repair, and the old link would still show the damaged bytes).
pub fn publish_archive(
    public: &Path,
    stored: &Path,
    digest: &[u8; 64],
    replace: bool,
) -> Result<(), PublishError> {
    publish_stored(public, &tiles::archive_path(digest), stored, replace)
}

/// Publishes a delta patch (`public/patch/<base hex>/<target hex>`,
/// [`keyggdrasil::delta::static_path`]) like an archive: a hard link to the stored file, or a
/// copy. Immutable and idempotent: a patch's name is a function of its content's meaning (the
/// bytes it rebuilds are fixed by the target digest), so an existing file is kept.
pub fn publish_patch(
    public: &Path,
    stored: &Path,
    base: &[u8; 64],
    target: &[u8; 64],
) -> Result<(), PublishError> {
    publish_stored(
        public,
        &keyggdrasil::delta::static_path(base, target),
        stored,
        false,
    )
}

/// Links (or copies) the stored file `stored` to `public/<relative>`.
fn publish_stored(
    public: &Path,
    relative: &str,
    stored: &Path,
    replace: bool,
) -> Result<(), PublishError> {
    let path = public.join(relative);
    if replace {
        let _ = std::fs::remove_file(&path);
    } else if path.exists() {
        return Ok(());
    }
    let io = |source| PublishError::Io {
        path: path.clone(),
        source,
    };
    let dir = path.parent().unwrap_or(public);
    std::fs::create_dir_all(dir).map_err(io)?;
    match std::fs::hard_link(stored, &path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(_) => {
            let bytes = std::fs::read(stored).map_err(io)?;
            write_atomic(&path, &bytes)?;
        }
    }
    sync_dir(dir)
}

/// Checks every tile and bundle of a published log of `size` entries against the stored log
/// (for `channel-server check`): the paths that are missing or differ.
pub fn check_published(
    conn: &Connection,
    public: &Path,
    size: u64,
) -> Result<Vec<String>, PublishError> {
    let mut bad = Vec::new();
    for tile in tiles::tiles_of(size) {
        let mut files = vec![(tile.path(), tile_file(conn, &tile, size)?)];
        if tile.level == 0 {
            files.push((tile.entries_path(), bundle_file(conn, &tile)?));
        }
        for (path, want) in files {
            match std::fs::read(public.join(&path)) {
                Ok(got) if got == want => {}
                Ok(_) => bad.push(format!("{path} differs from the stored log")),
                Err(_) => bad.push(format!("{path} is missing")),
            }
        }
    }
    Ok(bad)
}
