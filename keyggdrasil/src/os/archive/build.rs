//! The reproducible builder: a source tree and a manifest in, the same archive bytes out every
//! time.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipWriter};

use super::extract::{EXEC_MODE, FILE_MODE};
use crate::archive::error::{ArchiveError, SourceProblem};
use crate::archive::inspect::{
    Clash, PathTable, check_path_limits, is_reserved, open_archive, plan,
};
use crate::archive::limits::{ArchiveLimits, Limit};
use crate::archive::manifest::Manifest;
use crate::archive::path::ArchivePath;
use crate::archive::{EntryInfo, EntryKind, MANIFEST_NAME};

/// The deflate level of every entry. Part of the format: changing it changes the bytes.
pub const DEFLATE_LEVEL: i64 = 6;

/// The name skipped wherever it appears in a source tree (git's repository folder, or the file
/// that links a worktree or submodule to it).
pub const IGNORED_NAME: &str = ".git";

const CHUNK: usize = 64 * 1024;

/// What [`build_archive`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveSummary {
    /// The manifest stored as the first entry.
    pub manifest: Manifest,
    /// Every file and folder stored after the manifest, in archive order.
    pub entries: Vec<EntryInfo>,
    /// The sum of the sizes of the files stored (the manifest not included).
    pub total_size: u64,
    /// The size of the archive in bytes.
    pub archive_size: u64,
}

/// Builds the archive of `source_dir` with `manifest` into `out`, which must be empty.
///
/// The same tree gives the same bytes, whatever the file times, owners, umask, the order in
/// which the file system lists names, or the time of the build:
///
/// - the manifest ([`Manifest::to_canonical_json`]) is the first entry, [`MANIFEST_NAME`];
/// - then one entry per folder (name ending in `/`, mode 0755, stored) and per regular file
///   (mode 0644, or 0755 if the file has any execute bit; deflate at level
///   [`DEFLATE_LEVEL`]), sorted bytewise by entry name, so a folder comes just before its
///   content; empty folders are kept;
/// - every entry has the time 1980-01-01 00:00:00, "made by" unix, no extra fields and no
///   comment; the archive has no comment.
///
/// Refused, with an error naming the path: symbolic links, special files, names that are not
/// UTF-8 or not valid [`ArchivePath`]s, anything under `.keyggdrasil` (any letter case, it holds
/// the manifest), two names that differ only in letter case, and trees over `limits`. Nothing is
/// skipped except entries named [`IGNORED_NAME`] (`.git`), at any depth.
///
/// Before returning, the finished archive is read back and checked with the extractor's own
/// rules and `limits` (names, types, sizes, ratios), so an archive built with some limits can be
/// extracted with the same limits; if that check fails, the error is the extractor's
/// ([`ArchiveError::Rejected`]). On any error the content of `out` is unspecified: discard it.
///
/// `out` needs `Read` for that check: pass a file opened for reading and writing, or a
/// `Cursor<Vec<u8>>`. `source_dir` itself may be a symbolic link to a folder (the caller chose
/// it); nothing inside it may be.
pub fn build_archive<W: Read + Write + Seek>(
    source_dir: &Path,
    manifest: &Manifest,
    mut out: W,
    limits: &ArchiveLimits,
) -> Result<ArchiveSummary, ArchiveError> {
    let existing = out
        .seek(SeekFrom::End(0))
        .map_err(|e| ArchiveError::Write(e.into()))?;
    if existing != 0 {
        return Err(ArchiveError::OutputNotEmpty { size: existing });
    }
    let manifest_bytes = manifest.to_canonical_json();
    let mut tree = walk(source_dir, limits, len_u64(manifest_bytes.len()))?;
    // Sort by entry name: the path, plus the trailing '/' of a folder.
    tree.sort_by_cached_key(SourceItem::entry_name);

    let mut zip = ZipWriter::new(out);
    zip.start_file(MANIFEST_NAME, file_options(false))
        .map_err(ArchiveError::Write)?;
    zip.write_all(&manifest_bytes)
        .map_err(|e| ArchiveError::Write(e.into()))?;
    let mut entries = Vec::with_capacity(tree.len());
    let mut total_size: u64 = 0;
    // What the limits count: the manifest too.
    let mut counted = len_u64(manifest_bytes.len());
    for item in &tree {
        let kind = match item.kind {
            SourceKind::Folder => {
                zip.add_directory(item.entry_name(), folder_options())
                    .map_err(ArchiveError::Write)?;
                EntryKind::Directory
            }
            SourceKind::File { executable } => {
                zip.start_file(item.path.as_str(), file_options(executable))
                    .map_err(ArchiveError::Write)?;
                let size = copy_file(&item.fs_path, &mut zip, limits, &mut counted)?;
                total_size = total_size.saturating_add(size);
                EntryKind::File { size, executable }
            }
        };
        entries.push(EntryInfo {
            path: item.path.clone(),
            kind,
        });
    }
    let mut out = zip.finish().map_err(ArchiveError::Write)?;

    // Read the result back with the extractor's checks.
    let (mut archive, archive_size) = open_archive(&mut out, limits)?;
    plan(&mut archive, archive_size, limits)?;
    Ok(ArchiveSummary {
        manifest: manifest.clone(),
        entries,
        total_size,
        archive_size,
    })
}

fn file_options(executable: bool) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(DEFLATE_LEVEL))
        .last_modified_time(DateTime::default())
        .system(System::Unix)
        .unix_permissions(if executable { EXEC_MODE } else { FILE_MODE })
        .large_file(false)
}

fn folder_options() -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .last_modified_time(DateTime::default())
        .system(System::Unix)
        .unix_permissions(EXEC_MODE)
        .large_file(false)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SourceKind {
    Folder,
    File { executable: bool },
}

/// One file or folder found in the source tree.
#[derive(Debug)]
struct SourceItem {
    path: ArchivePath,
    fs_path: PathBuf,
    kind: SourceKind,
}

impl SourceItem {
    fn entry_name(&self) -> String {
        match self.kind {
            SourceKind::Folder => format!("{}/", self.path.as_str()),
            SourceKind::File { .. } => self.path.as_str().to_owned(),
        }
    }
}

fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

fn source_error(path: &Path, problem: SourceProblem) -> ArchiveError {
    ArchiveError::Source {
        path: path.to_path_buf(),
        problem,
    }
}

fn over(path: &Path, limit: Limit, max: u64, found: u64) -> ArchiveError {
    source_error(path, SourceProblem::LimitExceeded { limit, max, found })
}

/// Lists the tree under `root` (without following symbolic links), checking every name and the
/// count and size limits as it goes. Uses its own stack, not recursion.
fn walk(
    root: &Path,
    limits: &ArchiveLimits,
    manifest_len: u64,
) -> Result<Vec<SourceItem>, ArchiveError> {
    let root_meta = fs::metadata(root).map_err(|source| ArchiveError::Io {
        operation: "inspect",
        path: root.to_path_buf(),
        source,
    })?;
    if !root_meta.is_dir() {
        return Err(source_error(root, SourceProblem::NotAFolder));
    }
    let mut table = PathTable::default();
    let mut items = Vec::new();
    let mut count: u64 = 1; // the manifest
    let mut total: u64 = manifest_len;
    let mut pending: Vec<(Option<ArchivePath>, PathBuf)> = vec![(None, root.to_path_buf())];
    while let Some((prefix, folder)) = pending.pop() {
        let listing = fs::read_dir(&folder).map_err(|source| ArchiveError::Io {
            operation: "read folder",
            path: folder.clone(),
            source,
        })?;
        for child in listing {
            let child = child.map_err(|source| ArchiveError::Io {
                operation: "read folder",
                path: folder.clone(),
                source,
            })?;
            let fs_path = child.path();
            let file_name = child.file_name();
            let Some(name) = file_name.to_str() else {
                return Err(source_error(&fs_path, SourceProblem::NameNotUtf8));
            };
            if name == IGNORED_NAME {
                continue;
            }
            let path = match &prefix {
                None => ArchivePath::new(name),
                Some(prefix) => prefix.join(name),
            }
            .map_err(|e| source_error(&fs_path, SourceProblem::InvalidPath(e)))?;
            check_path_limits(&path, limits)
                .map_err(|(limit, max, found)| over(&fs_path, limit, max, found))?;
            if is_reserved(&path) {
                return Err(source_error(&fs_path, SourceProblem::Reserved));
            }
            count = count.saturating_add(1);
            if count > limits.max_entries {
                return Err(over(&fs_path, Limit::Entries, limits.max_entries, count));
            }
            // `symlink_metadata`: a symbolic link is reported as such, never followed.
            let meta = fs::symlink_metadata(&fs_path).map_err(|source| ArchiveError::Io {
                operation: "inspect",
                path: fs_path.clone(),
                source,
            })?;
            let file_type = meta.file_type();
            let kind = if file_type.is_symlink() {
                return Err(source_error(&fs_path, SourceProblem::Symlink));
            } else if file_type.is_dir() {
                SourceKind::Folder
            } else if file_type.is_file() {
                let size = meta.len();
                if size > limits.max_file_size {
                    return Err(over(&fs_path, Limit::FileSize, limits.max_file_size, size));
                }
                total = total.saturating_add(size);
                if total > limits.max_total_size {
                    return Err(over(
                        &fs_path,
                        Limit::TotalSize,
                        limits.max_total_size,
                        total,
                    ));
                }
                SourceKind::File {
                    executable: is_executable(&meta),
                }
            } else {
                return Err(source_error(&fs_path, SourceProblem::SpecialFile));
            };
            table
                .insert(&path, kind == SourceKind::Folder)
                .map_err(|clash: Clash| {
                    source_error(
                        &fs_path,
                        SourceProblem::CaseCollision {
                            other: clash.other().as_str().to_owned(),
                        },
                    )
                })?;
            if kind == SourceKind::Folder {
                pending.push((Some(path.clone()), fs_path.clone()));
            }
            items.push(SourceItem {
                path,
                fs_path,
                kind,
            });
        }
    }
    Ok(items)
}

#[cfg(unix)]
fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &fs::Metadata) -> bool {
    false
}

/// Copies one source file into the current zip entry, counting the bytes (the file may have
/// changed since it was listed).
fn copy_file<W: Write + Seek>(
    fs_path: &Path,
    zip: &mut ZipWriter<W>,
    limits: &ArchiveLimits,
    total: &mut u64,
) -> Result<u64, ArchiveError> {
    let io_error = |operation, source| ArchiveError::Io {
        operation,
        path: fs_path.to_path_buf(),
        source,
    };
    let mut file = fs::File::open(fs_path).map_err(|e| io_error("open", e))?;
    // The path was a regular file when listed; refuse whatever replaced it since.
    let meta = file.metadata().map_err(|e| io_error("inspect", e))?;
    if !meta.is_file() {
        return Err(source_error(fs_path, SourceProblem::SpecialFile));
    }
    let mut buffer = vec![0; CHUNK];
    let mut size: u64 = 0;
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error("read", e)),
        };
        size = size.saturating_add(len_u64(n));
        *total = total.saturating_add(len_u64(n));
        if size > limits.max_file_size {
            return Err(over(fs_path, Limit::FileSize, limits.max_file_size, size));
        }
        if *total > limits.max_total_size {
            return Err(over(
                fs_path,
                Limit::TotalSize,
                limits.max_total_size,
                *total,
            ));
        }
        let chunk = buffer.get(..n).unwrap_or_default();
        zip.write_all(chunk)
            .map_err(|e| ArchiveError::Write(e.into()))?;
    }
    Ok(size)
}
