//! The safe extractor: untrusted archive in, checked files in a fresh staging folder out.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::path::Path;

use crate::archive::error::{ArchiveError, Rejection, StagingProblem};
use crate::archive::inspect::{Plan, PlannedKind, open_archive, plan};
use crate::archive::limits::{ArchiveLimits, Limit, ratio_exceeded, ratio_of};
use crate::archive::manifest::Manifest;
use crate::archive::path::ArchivePath;
use crate::archive::{EntryInfo, EntryKind, MANIFEST_NAME};

/// Mode of files without any execute bit (in the archive, or in the source tree when building).
pub const FILE_MODE: u32 = 0o644;
/// Mode of files with any execute bit (in the archive, or in the source tree when building), and
/// of every folder.
pub const EXEC_MODE: u32 = 0o755;

const CHUNK: usize = 64 * 1024;

/// What [`extract_archive`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExtractedArchive {
    /// The parsed manifest (it is not written into the staging folder).
    pub manifest: Manifest,
    /// Every entry written, in archive order: the manifest is not included, nor are folders
    /// that only the path of a file implies (they are created all the same, mode 0755).
    pub entries: Vec<EntryInfo>,
    /// The sum of the sizes of the files written.
    pub total_size: u64,
}

/// Extracts the archive read from `reader` into `staging_dir`, which must not exist yet (it is
/// then created, its parent must exist) or be an empty folder.
///
/// Everything is checked before anything is written: the archive's size, its structure (no
/// leading data, headers consistent, no overlapping or hidden entries, no duplicate names), each
/// entry (see [`ArchivePath`] for the name rules; regular files and folders only; stored or
/// deflate, not encrypted; no case-insensitive collisions, no path used as both file and folder;
/// declared sizes and ratios within `limits`) and the manifest, which must be the first entry
/// and valid. Then entries are decompressed one by one, counting the bytes actually produced
/// against the declared size and every limit, and stopping at the first excess.
///
/// Files are created with create-new semantics (an existing path, even a dangling symbolic
/// link, is never followed or overwritten) and get mode 0644, or 0755 if the archive gave them
/// any execute bit; folders get 0755. Nothing else from the archive is kept: no timestamps, no
/// owners, no setuid/setgid/sticky bits. The manifest is returned, not written.
///
/// On any error, whatever was extracted is removed: a staging folder created by this call is
/// removed, an existing empty one is emptied again (best effort; the original error is
/// returned). Data is not synced to disk: the caller that swaps the folder into place decides
/// on durability.
///
/// The staging folder's parent must not be writable by anyone untrusted: extraction does not
/// defend against another process racing it inside the staging folder.
pub fn extract_archive<R: Read + Seek>(
    reader: R,
    staging_dir: &Path,
    limits: &ArchiveLimits,
) -> Result<ExtractedArchive, ArchiveError> {
    let state = staging_state(staging_dir)?;
    let (mut archive, archive_len) = open_archive(reader, limits)?;
    let plan = plan(&mut archive, archive_len, limits)?;
    let mut budget = Budget::new(limits, archive_len);
    let manifest = read_manifest(&mut archive, &plan, &mut budget)?;

    create_staging(staging_dir, state)?;
    match write_entries(&mut archive, &plan, staging_dir, &mut budget) {
        Ok((entries, total_size)) => Ok(ExtractedArchive {
            manifest,
            entries,
            total_size,
        }),
        Err(error) => {
            clean_up(staging_dir, state);
            Err(error)
        }
    }
}

/// How the staging folder was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StagingState {
    Absent,
    Empty,
}

fn staging_state(staging_dir: &Path) -> Result<StagingState, ArchiveError> {
    let problem = |problem| ArchiveError::Staging {
        path: staging_dir.to_path_buf(),
        problem,
    };
    match fs::symlink_metadata(staging_dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(StagingState::Absent),
        Err(source) => Err(ArchiveError::Io {
            operation: "inspect",
            path: staging_dir.to_path_buf(),
            source,
        }),
        Ok(meta) if !meta.is_dir() => Err(problem(StagingProblem::NotAFolder)),
        Ok(_) => {
            let mut children = fs::read_dir(staging_dir).map_err(|source| ArchiveError::Io {
                operation: "read folder",
                path: staging_dir.to_path_buf(),
                source,
            })?;
            if children.next().is_some() {
                Err(problem(StagingProblem::NotEmpty))
            } else {
                Ok(StagingState::Empty)
            }
        }
    }
}

fn create_staging(staging_dir: &Path, state: StagingState) -> Result<(), ArchiveError> {
    if state == StagingState::Absent {
        create_folder(staging_dir)?;
    }
    Ok(())
}

/// Removes what extraction wrote, leaving the staging folder as it was found.
fn clean_up(staging_dir: &Path, state: StagingState) {
    match state {
        StagingState::Absent => {
            let _ = fs::remove_dir_all(staging_dir);
        }
        StagingState::Empty => {
            if let Ok(children) = fs::read_dir(staging_dir) {
                for child in children.flatten() {
                    let path = child.path();
                    // `file_type` does not follow symbolic links; `remove_dir_all` neither.
                    let _ = match child.file_type() {
                        Ok(kind) if kind.is_dir() => fs::remove_dir_all(&path),
                        _ => fs::remove_file(&path),
                    };
                }
            }
        }
    }
}

fn read_manifest<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    plan: &Plan,
    budget: &mut Budget<'_>,
) -> Result<Manifest, ArchiveError> {
    let mut entry = archive.by_index(0).map_err(|e| Rejection::Corrupt {
        name: MANIFEST_NAME.to_owned(),
        source: e.into(),
    })?;
    let mut bytes = Vec::new();
    let meter = Meter {
        name: MANIFEST_NAME,
        declared_size: plan.manifest_size,
        compressed_size: plan.manifest_compressed_size,
        size_limit: Limit::ManifestSize,
        max_size: budget.limits.max_manifest_size,
    };
    copy_counted(
        &mut entry,
        &mut bytes,
        &meter,
        budget,
        Path::new(MANIFEST_NAME),
    )?;
    Manifest::from_canonical_json(&bytes)
        .map_err(|e| ArchiveError::Rejected(Rejection::InvalidManifest(e)))
}

fn write_entries<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    plan: &Plan,
    staging_dir: &Path,
    budget: &mut Budget<'_>,
) -> Result<(Vec<EntryInfo>, u64), ArchiveError> {
    let mut folders: HashSet<ArchivePath> = HashSet::new();
    let mut written = Vec::with_capacity(plan.entries.len());
    let mut total_size: u64 = 0;
    for planned in &plan.entries {
        for ancestor in planned.path.ancestors() {
            ensure_folder(staging_dir, ancestor, &mut folders)?;
        }
        let kind = match planned.kind {
            PlannedKind::Directory => {
                ensure_folder(staging_dir, planned.path.clone(), &mut folders)?;
                EntryKind::Directory
            }
            PlannedKind::File { executable } => {
                let target = planned.path.to_path_under(staging_dir);
                let mode = if executable { EXEC_MODE } else { FILE_MODE };
                let mut file = create_new_file(&target, mode)?;
                let mut entry =
                    archive
                        .by_index(planned.index)
                        .map_err(|e| Rejection::Corrupt {
                            name: planned.name.clone(),
                            source: e.into(),
                        })?;
                let meter = Meter {
                    name: &planned.name,
                    declared_size: planned.declared_size,
                    compressed_size: planned.compressed_size,
                    size_limit: Limit::FileSize,
                    max_size: budget.limits.max_file_size,
                };
                let size = copy_counted(&mut entry, &mut file, &meter, budget, &target)?;
                set_mode(&file, mode, &target)?;
                total_size = total_size.saturating_add(size);
                EntryKind::File { size, executable }
            }
        };
        written.push(EntryInfo {
            path: planned.path.clone(),
            kind,
        });
    }
    Ok((written, total_size))
}

/// Creates `path` as a folder unless this extraction already did.
fn ensure_folder(
    staging_dir: &Path,
    path: ArchivePath,
    folders: &mut HashSet<ArchivePath>,
) -> Result<(), ArchiveError> {
    if folders.contains(&path) {
        return Ok(());
    }
    create_folder(&path.to_path_under(staging_dir))?;
    folders.insert(path);
    Ok(())
}

/// Creates one folder (never an existing one) with mode 0755, whatever the umask.
fn create_folder(path: &Path) -> Result<(), ArchiveError> {
    let io_error = |operation, source| ArchiveError::Io {
        operation,
        path: path.to_path_buf(),
        source,
    };
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(EXEC_MODE);
    }
    builder
        .create(path)
        .map_err(|e| io_error("create folder", e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(EXEC_MODE))
            .map_err(|e| io_error("set the mode of", e))?;
    }
    Ok(())
}

/// Creates a new file: fails if anything (a file, a folder, a symbolic link) is at `path`.
fn create_new_file(path: &Path, mode: u32) -> Result<fs::File, ArchiveError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path).map_err(|source| ArchiveError::Io {
        operation: "create",
        path: path.to_path_buf(),
        source,
    })
}

/// Sets the mode on the open file (not by path), so the umask does not decide it.
fn set_mode(file: &fs::File, mode: u32, path: &Path) -> Result<(), ArchiveError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|source| ArchiveError::Io {
                operation: "set the mode of",
                path: path.to_path_buf(),
                source,
            })?;
    }
    #[cfg(not(unix))]
    let _ = (file, mode, path);
    Ok(())
}

/// The running totals of one extraction.
pub(crate) struct Budget<'l> {
    limits: &'l ArchiveLimits,
    archive_len: u64,
    total: u64,
    buffer: Vec<u8>,
}

impl<'l> Budget<'l> {
    pub(crate) fn new(limits: &'l ArchiveLimits, archive_len: u64) -> Self {
        Self {
            limits,
            archive_len,
            total: 0,
            buffer: vec![0; CHUNK],
        }
    }
}

/// What one entry may produce.
pub(crate) struct Meter<'n> {
    pub name: &'n str,
    pub declared_size: u64,
    pub compressed_size: u64,
    pub size_limit: Limit,
    pub max_size: u64,
}

/// Copies decompressed bytes from `reader` to `out`, counting them as they come, and fails as
/// soon as the entry produces more than it declared or any limit is passed, before the chunk
/// that went over is written. Returns the number of bytes copied, which equals the declared
/// size.
pub(crate) fn copy_counted(
    reader: &mut dyn Read,
    out: &mut dyn Write,
    meter: &Meter<'_>,
    budget: &mut Budget<'_>,
    out_path: &Path,
) -> Result<u64, ArchiveError> {
    let limits = budget.limits;
    let over = |limit, max, found| {
        ArchiveError::Rejected(Rejection::LimitExceeded {
            entry: Some(meter.name.to_owned()),
            limit,
            max,
            found,
        })
    };
    let mut produced: u64 = 0;
    loop {
        let n = match reader.read(&mut budget.buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(ArchiveError::Rejected(Rejection::Corrupt {
                    name: meter.name.to_owned(),
                    source,
                }));
            }
        };
        // A reader claiming more than the buffer holds is broken; treat it as corrupt data.
        let chunk = budget.buffer.get(..n).ok_or_else(|| {
            ArchiveError::Rejected(Rejection::Corrupt {
                name: meter.name.to_owned(),
                source: io::Error::other("reader returned more bytes than asked"),
            })
        })?;
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        produced = produced.saturating_add(n);
        budget.total = budget.total.saturating_add(n);
        if produced > meter.max_size {
            return Err(over(meter.size_limit, meter.max_size, produced));
        }
        if budget.total > limits.max_total_size {
            return Err(over(Limit::TotalSize, limits.max_total_size, budget.total));
        }
        if ratio_exceeded(
            produced,
            meter.compressed_size,
            limits.max_entry_ratio,
            limits.ratio_threshold,
        ) {
            return Err(over(
                Limit::EntryRatio,
                limits.max_entry_ratio,
                ratio_of(produced, meter.compressed_size),
            ));
        }
        if ratio_exceeded(
            budget.total,
            budget.archive_len,
            limits.max_total_ratio,
            limits.ratio_threshold,
        ) {
            return Err(over(
                Limit::TotalRatio,
                limits.max_total_ratio,
                ratio_of(budget.total, budget.archive_len),
            ));
        }
        if produced > meter.declared_size {
            return Err(ArchiveError::Rejected(Rejection::SizeMismatch {
                name: meter.name.to_owned(),
                declared: meter.declared_size,
                actual: None,
            }));
        }
        out.write_all(chunk).map_err(|source| ArchiveError::Io {
            operation: "write",
            path: out_path.to_path_buf(),
            source,
        })?;
    }
    if produced != meter.declared_size {
        return Err(ArchiveError::Rejected(Rejection::SizeMismatch {
            name: meter.name.to_owned(),
            declared: meter.declared_size,
            actual: Some(produced),
        }));
    }
    Ok(produced)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that produces `len` zero bytes, whatever was declared.
    struct Zeros(u64);

    impl Read for Zeros {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = usize::try_from(self.0).unwrap_or(usize::MAX).min(buf.len());
            buf.iter_mut().take(n).for_each(|b| *b = 0);
            self.0 -= n as u64;
            Ok(n)
        }
    }

    fn meter(declared: u64, compressed: u64, max: u64) -> Meter<'static> {
        Meter {
            name: "x",
            declared_size: declared,
            compressed_size: compressed,
            size_limit: Limit::FileSize,
            max_size: max,
        }
    }

    fn run(
        produced: u64,
        meter: &Meter<'_>,
        limits: &ArchiveLimits,
        archive_len: u64,
    ) -> (Result<u64, ArchiveError>, usize) {
        let mut budget = Budget::new(limits, archive_len);
        let mut out = Vec::new();
        let result = copy_counted(
            &mut Zeros(produced),
            &mut out,
            meter,
            &mut budget,
            Path::new("x"),
        );
        (result, out.len())
    }

    #[test]
    fn counts_real_bytes_not_declared_ones() {
        let limits = ArchiveLimits::default();
        // Declares 10 bytes, produces 1 MiB: stopped after the first chunk, nothing written.
        let (result, written) = run(1 << 20, &meter(10, 1 << 20, u64::MAX), &limits, 1 << 20);
        assert!(matches!(
            result,
            Err(ArchiveError::Rejected(Rejection::SizeMismatch {
                actual: None,
                ..
            }))
        ));
        assert_eq!(written, 0);
        // Declares more than it produces.
        let (result, _) = run(5, &meter(10, 5, u64::MAX), &limits, 100);
        assert!(matches!(
            result,
            Err(ArchiveError::Rejected(Rejection::SizeMismatch {
                actual: Some(5),
                ..
            }))
        ));
        // Exact.
        let (result, written) = run(10, &meter(10, 10, u64::MAX), &limits, 100);
        assert_eq!(result.ok(), Some(10));
        assert_eq!(written, 10);
    }

    #[test]
    fn stops_at_each_limit_while_decompressing() {
        let limits = ArchiveLimits {
            max_total_size: 200_000,
            ..ArchiveLimits::default()
        };
        let big = 1 << 20;
        // Single file limit.
        let (result, written) = run(big, &meter(big, big, 100_000), &limits, big);
        assert!(matches!(
            result,
            Err(ArchiveError::Rejected(Rejection::LimitExceeded {
                limit: Limit::FileSize,
                ..
            }))
        ));
        assert!(written <= 100_000);
        // Total limit.
        let (result, _) = run(big, &meter(big, big, u64::MAX), &limits, big);
        assert!(matches!(
            result,
            Err(ArchiveError::Rejected(Rejection::LimitExceeded {
                limit: Limit::TotalSize,
                ..
            }))
        ));
        // Entry ratio: 1 MiB from 1 KiB is 1024:1.
        let limits = ArchiveLimits {
            ratio_threshold: 0,
            ..ArchiveLimits::default()
        };
        let (result, _) = run(big, &meter(big, 1024, u64::MAX), &limits, big);
        assert!(matches!(
            result,
            Err(ArchiveError::Rejected(Rejection::LimitExceeded {
                limit: Limit::EntryRatio,
                ..
            }))
        ));
        // Total ratio: entry ratio fine, but the whole archive is tiny.
        let (result, _) = run(big, &meter(big, big, u64::MAX), &limits, 1024);
        assert!(matches!(
            result,
            Err(ArchiveError::Rejected(Rejection::LimitExceeded {
                limit: Limit::TotalRatio,
                ..
            }))
        ));
    }
}
