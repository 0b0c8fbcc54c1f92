//! The checks on an archive's directory that come before any byte is decompressed, shared by
//! the extractor (on untrusted input) and the builder (on its own output, so that whatever it
//! builds can be extracted).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::{Read, Seek, SeekFrom};

use zip::result::ZipError;
use zip::{CompressionMethod, System, ZipArchive};

use super::error::{Rejection, display_name};
use super::limits::{ArchiveLimits, Limit, ratio_exceeded, ratio_of};
use super::path::ArchivePath;
use super::{MANIFEST_NAME, RESERVED_FOLDER};

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
/// The general-purpose flag bit that marks names as UTF-8 (APPNOTE 4.4.4, bit 11).
const FLAG_UTF8: u16 = 1 << 11;

/// What an entry will become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PlannedKind {
    File { executable: bool },
    Directory,
}

/// One entry after every check on its metadata.
#[derive(Debug)]
pub(crate) struct PlannedEntry {
    pub index: usize,
    pub name: String,
    pub path: ArchivePath,
    pub kind: PlannedKind,
    pub declared_size: u64,
    pub compressed_size: u64,
}

/// All entries of an archive, checked; the manifest is entry 0 and not in `entries`.
#[derive(Debug)]
pub(crate) struct Plan {
    pub manifest_size: u64,
    pub manifest_compressed_size: u64,
    pub entries: Vec<PlannedEntry>,
}

/// Measures the archive, checks its size, and opens it with the zip reader.
pub(crate) fn open_archive<R: Read + Seek>(
    mut reader: R,
    limits: &ArchiveLimits,
) -> Result<(ZipArchive<R>, u64), Rejection> {
    let archive_len = reader
        .seek(SeekFrom::End(0))
        .map_err(|e| Rejection::Malformed(ZipError::Io(e)))?;
    if archive_len > limits.max_archive_size {
        return Err(Rejection::LimitExceeded {
            entry: None,
            limit: Limit::ArchiveSize,
            max: limits.max_archive_size,
            found: archive_len,
        });
    }
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|e| Rejection::Malformed(ZipError::Io(e)))?;
    let archive = ZipArchive::new(reader).map_err(Rejection::Malformed)?;
    if archive.offset() != 0 {
        return Err(Rejection::LeadingData {
            offset: archive.offset(),
        });
    }
    Ok((archive, archive_len))
}

/// Checks the whole directory of `archive` against the format's rules and `limits`, using the
/// declared sizes (the extractor checks the real sizes again while decompressing).
pub(crate) fn plan<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    archive_len: u64,
    limits: &ArchiveLimits,
) -> Result<Plan, Rejection> {
    let count = u64::try_from(archive.len()).unwrap_or(u64::MAX);
    if count > limits.max_entries {
        return Err(Rejection::LimitExceeded {
            entry: None,
            limit: Limit::Entries,
            max: limits.max_entries,
            found: count,
        });
    }
    if archive.has_duplicate_names() {
        return Err(Rejection::DuplicateNames);
    }
    archive
        .validate_header_consistency()
        .map_err(Rejection::Inconsistent)?;
    if archive.is_empty() {
        return Err(Rejection::MissingManifest);
    }

    let mut table = PathTable::default();
    let mut total: u64 = 0;
    let mut manifest = (0, 0);
    let mut entries = Vec::with_capacity(archive.len().saturating_sub(1));
    for index in 0..archive.len() {
        // `by_index_raw` decompresses nothing; it gives the extra fields too.
        let entry = archive.by_index_raw(index).map_err(Rejection::Malformed)?;
        let raw = entry.name_raw();
        let name = display_name(raw);
        let is_manifest = index == 0;
        if is_manifest && raw != MANIFEST_NAME.as_bytes() {
            return Err(Rejection::MissingManifest);
        }
        if entry
            .extra_data_fields()
            .any(|field| matches!(field, zip::ExtraField::UnicodePath(_)))
        {
            // The zip reader has already replaced the name by this field's; readers that
            // ignore the field would see another name.
            return Err(Rejection::NameOverride { name });
        }

        // The name.
        let text = std::str::from_utf8(raw).map_err(|_| Rejection::InvalidName {
            name: name.clone(),
            source: super::PathError::NotUtf8,
        })?;
        if !text.is_ascii() && entry.flags().as_u16() & FLAG_UTF8 == 0 {
            return Err(Rejection::NameNotMarkedUtf8 { name });
        }
        let (text, named_as_dir) = match text.strip_suffix('/') {
            Some(stripped) => (stripped, true),
            None => (text, false),
        };
        let path = ArchivePath::new(text).map_err(|source| Rejection::InvalidName {
            name: name.clone(),
            source,
        })?;
        if !is_manifest {
            // The manifest's fixed name is exempt from the path limits.
            check_path_limits(&path, limits).map_err(|(limit, max, found)| {
                Rejection::LimitExceeded {
                    entry: Some(name.clone()),
                    limit,
                    max,
                    found,
                }
            })?;
            if is_reserved(&path) {
                return Err(Rejection::Reserved { name });
            }
        }

        // How it is stored.
        if entry.encrypted() {
            return Err(Rejection::Encrypted { name });
        }
        let compression = entry.compression();
        if !matches!(
            compression,
            CompressionMethod::Stored | CompressionMethod::Deflated
        ) {
            return Err(Rejection::UnsupportedCompression {
                name,
                method: format!("{compression:?}"),
            });
        }
        let kind = classify(entry.system(), entry.external_attributes(), named_as_dir)
            .map_err(|problem| problem.into_rejection(name.clone()))?;

        // Its declared sizes.
        let declared_size = entry.size();
        let compressed_size = entry.compressed_size();
        let (size_limit, max_size) = if is_manifest {
            (Limit::ManifestSize, limits.max_manifest_size)
        } else {
            (Limit::FileSize, limits.max_file_size)
        };
        match kind {
            PlannedKind::Directory if declared_size != 0 => {
                return Err(Rejection::FolderWithContent { name });
            }
            PlannedKind::Directory => {}
            PlannedKind::File { .. } => {
                let over = |limit, max, found| Rejection::LimitExceeded {
                    entry: Some(name.clone()),
                    limit,
                    max,
                    found,
                };
                if declared_size > max_size {
                    return Err(over(size_limit, max_size, declared_size));
                }
                total = total.saturating_add(declared_size);
                if total > limits.max_total_size {
                    return Err(over(Limit::TotalSize, limits.max_total_size, total));
                }
                if ratio_exceeded(
                    declared_size,
                    compressed_size,
                    limits.max_entry_ratio,
                    limits.ratio_threshold,
                ) {
                    return Err(over(
                        Limit::EntryRatio,
                        limits.max_entry_ratio,
                        ratio_of(declared_size, compressed_size),
                    ));
                }
            }
        }

        if is_manifest {
            if kind == PlannedKind::Directory {
                return Err(Rejection::MissingManifest);
            }
            manifest = (declared_size, compressed_size);
        } else {
            // Its place among the others (the manifest needs none: nothing else may lie in
            // its folder). Folders implied by the path count as entries too, so a few deep
            // names cannot make the extractor create many folders.
            table
                .insert(&path, kind == PlannedKind::Directory)
                .map_err(|clash| clash.into_rejection(name.clone()))?;
            let paths = u64::try_from(table.len())
                .unwrap_or(u64::MAX)
                .saturating_add(1);
            if paths > limits.max_entries {
                return Err(Rejection::LimitExceeded {
                    entry: Some(name),
                    limit: Limit::Entries,
                    max: limits.max_entries,
                    found: paths,
                });
            }
            entries.push(PlannedEntry {
                index,
                name,
                path,
                kind,
                declared_size,
                compressed_size,
            });
        }
    }
    if ratio_exceeded(
        total,
        archive_len,
        limits.max_total_ratio,
        limits.ratio_threshold,
    ) {
        return Err(Rejection::LimitExceeded {
            entry: None,
            limit: Limit::TotalRatio,
            max: limits.max_total_ratio,
            found: ratio_of(total, archive_len),
        });
    }
    Ok(Plan {
        manifest_size: manifest.0,
        manifest_compressed_size: manifest.1,
        entries,
    })
}

/// Checks the path length and depth limits; on failure gives (limit, its value, found).
pub(crate) fn check_path_limits(
    path: &ArchivePath,
    limits: &ArchiveLimits,
) -> Result<(), (Limit, u64, u64)> {
    let len = u64::try_from(path.len()).unwrap_or(u64::MAX);
    if len > limits.max_path_len {
        return Err((Limit::PathLength, limits.max_path_len, len));
    }
    let depth = u64::try_from(path.depth()).unwrap_or(u64::MAX);
    if depth > limits.max_path_depth {
        return Err((Limit::PathDepth, limits.max_path_depth, depth));
    }
    Ok(())
}

/// Whether `path` lies in the reserved manifest folder (compared case-insensitively).
pub(crate) fn is_reserved(path: &ArchivePath) -> bool {
    path.components()
        .next()
        .is_some_and(|first| first.to_lowercase() == RESERVED_FOLDER)
}

/// Why an entry's type is refused.
enum KindProblem {
    Symlink,
    Special(u32),
    Mismatch(u32),
}

impl KindProblem {
    fn into_rejection(self, name: String) -> Rejection {
        match self {
            KindProblem::Symlink => Rejection::Symlink { name },
            KindProblem::Special(mode) => Rejection::SpecialFile { name, mode },
            KindProblem::Mismatch(mode) => Rejection::KindMismatch { name, mode },
        }
    }
}

/// The entry's type from the unix mode in its external attributes (when made on unix) and the
/// trailing `/` of its name. Only the execute bits of the mode are kept: everything else
/// (setuid, setgid, sticky, write bits) is ignored, files become 0644 or 0755.
fn classify(
    system: System,
    external_attributes: u32,
    named_as_dir: bool,
) -> Result<PlannedKind, KindProblem> {
    let mode = if system == System::Unix {
        external_attributes >> 16
    } else {
        0
    };
    let executable = mode & 0o111 != 0;
    match mode & S_IFMT {
        0 if named_as_dir => Ok(PlannedKind::Directory),
        0 => Ok(PlannedKind::File { executable }),
        S_IFREG if !named_as_dir => Ok(PlannedKind::File { executable }),
        S_IFDIR if named_as_dir => Ok(PlannedKind::Directory),
        S_IFREG | S_IFDIR => Err(KindProblem::Mismatch(mode)),
        S_IFLNK => Err(KindProblem::Symlink),
        _ => Err(KindProblem::Special(mode)),
    }
}

/// How a new path clashes with one seen before.
#[derive(Debug)]
pub(crate) enum Clash {
    /// Same letters in another case.
    Case { other: ArchivePath },
    /// Used both as a file and as a folder.
    Conflict { other: ArchivePath },
    /// The same path twice.
    Duplicate { other: ArchivePath },
}

impl Clash {
    fn into_rejection(self, name: String) -> Rejection {
        match self {
            Clash::Case { other } => Rejection::CaseCollision {
                name,
                other: other.as_str().to_owned(),
            },
            Clash::Conflict { other } => Rejection::PathConflict {
                name,
                other: other.as_str().to_owned(),
            },
            Clash::Duplicate { .. } => Rejection::DuplicateNames,
        }
    }

    /// The path clashed with.
    pub(crate) fn other(&self) -> &ArchivePath {
        match self {
            Clash::Case { other } | Clash::Conflict { other } | Clash::Duplicate { other } => other,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    File,
    Folder { explicit: bool },
}

/// Every path of an archive (entries and the folders they imply), keyed by Unicode lowercase,
/// to refuse names that would land on the same file on a case-insensitive file system, and
/// paths used both as a file and as a folder.
#[derive(Default)]
pub(crate) struct PathTable {
    seen: HashMap<String, (ArchivePath, Slot)>,
}

impl PathTable {
    /// How many distinct paths (files and folders, explicit or implied) were added.
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }

    /// Adds `path` (a folder if `is_dir`) and the folders above it.
    pub(crate) fn insert(&mut self, path: &ArchivePath, is_dir: bool) -> Result<(), Clash> {
        for ancestor in path.ancestors() {
            self.put(ancestor, Slot::Folder { explicit: false })?;
        }
        let slot = if is_dir {
            Slot::Folder { explicit: true }
        } else {
            Slot::File
        };
        self.put(path.clone(), slot)
    }

    fn put(&mut self, path: ArchivePath, slot: Slot) -> Result<(), Clash> {
        match self.seen.entry(path.folded()) {
            Entry::Vacant(vacant) => {
                vacant.insert((path, slot));
                Ok(())
            }
            Entry::Occupied(mut occupied) => {
                let (spelling, existing) = occupied.get_mut();
                if *spelling != path {
                    return Err(Clash::Case {
                        other: spelling.clone(),
                    });
                }
                match (*existing, slot) {
                    (Slot::File, Slot::File)
                    | (Slot::Folder { explicit: true }, Slot::Folder { explicit: true }) => {
                        Err(Clash::Duplicate { other: path })
                    }
                    (Slot::Folder { .. }, Slot::Folder { explicit }) => {
                        if explicit {
                            *existing = Slot::Folder { explicit: true };
                        }
                        Ok(())
                    }
                    (Slot::File, Slot::Folder { .. }) | (Slot::Folder { .. }, Slot::File) => {
                        Err(Clash::Conflict { other: path })
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ArchivePath {
        ArchivePath::new(s).expect(s)
    }

    #[test]
    fn table_accepts_a_normal_tree() {
        let mut table = PathTable::default();
        table.insert(&p("a"), true).expect("a/");
        table.insert(&p("a/b.txt"), false).expect("a/b.txt");
        table.insert(&p("a/c/d.txt"), false).expect("a/c/d.txt");
        table
            .insert(&p("a/c"), true)
            .expect("a/c/ after its content");
        table.insert(&p("b.txt"), false).expect("b.txt");
    }

    #[test]
    fn table_refuses_clashes() {
        let mut table = PathTable::default();
        table.insert(&p("Readme.md"), false).expect("first");
        assert!(matches!(
            table.insert(&p("README.md"), false),
            Err(Clash::Case { .. })
        ));
        assert!(matches!(
            table.insert(&p("readme.MD/x"), false),
            Err(Clash::Case { .. })
        ));
        assert!(matches!(
            table.insert(&p("Readme.md/x"), false),
            Err(Clash::Conflict { .. })
        ));
        assert!(matches!(
            table.insert(&p("Readme.md"), true),
            Err(Clash::Conflict { .. })
        ));
        assert!(matches!(
            table.insert(&p("Readme.md"), false),
            Err(Clash::Duplicate { .. })
        ));

        let mut table = PathTable::default();
        table.insert(&p("a/b"), false).expect("a/b");
        assert!(matches!(
            table.insert(&p("a"), false),
            Err(Clash::Conflict { .. })
        ));
        assert!(matches!(
            table.insert(&p("A/c"), false),
            Err(Clash::Case { .. })
        ));
        // Unicode lowercase, not only ASCII.
        table.insert(&p("Ärger"), false).expect("Ärger");
        assert!(matches!(
            table.insert(&p("ärger"), false),
            Err(Clash::Case { .. })
        ));
        // KELVIN SIGN lowercases to k.
        table.insert(&p("k"), false).expect("k");
        assert!(matches!(
            table.insert(&p("\u{212A}"), false),
            Err(Clash::Case { .. })
        ));
    }

    #[test]
    fn modes() {
        let unix = |mode: u32| mode << 16;
        assert_eq!(
            classify(System::Unix, unix(0o100_644), false).ok(),
            Some(PlannedKind::File { executable: false })
        );
        assert_eq!(
            classify(System::Unix, unix(0o104_755), false).ok(),
            Some(PlannedKind::File { executable: true })
        );
        assert_eq!(
            classify(System::Unix, unix(0o040_755), true).ok(),
            Some(PlannedKind::Directory)
        );
        assert_eq!(
            classify(System::Dos, 0x10, true).ok(),
            Some(PlannedKind::Directory)
        );
        assert_eq!(
            classify(System::Dos, 0, false).ok(),
            Some(PlannedKind::File { executable: false })
        );
        assert!(matches!(
            classify(System::Unix, unix(0o120_777), false),
            Err(KindProblem::Symlink)
        ));
        assert!(matches!(
            classify(System::Unix, unix(0o010_644), false),
            Err(KindProblem::Special(_))
        ));
        assert!(matches!(
            classify(System::Unix, unix(0o020_644), false),
            Err(KindProblem::Special(_))
        ));
        assert!(matches!(
            classify(System::Unix, unix(0o060_644), false),
            Err(KindProblem::Special(_))
        ));
        assert!(matches!(
            classify(System::Unix, unix(0o140_644), false),
            Err(KindProblem::Special(_))
        ));
        assert!(matches!(
            classify(System::Unix, unix(0o040_755), false),
            Err(KindProblem::Mismatch(_))
        ));
        assert!(matches!(
            classify(System::Unix, unix(0o100_644), true),
            Err(KindProblem::Mismatch(_))
        ));
    }
}
