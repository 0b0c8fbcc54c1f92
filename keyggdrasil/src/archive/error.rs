//! [`ArchiveError`] and its parts: what went wrong, shaped by what the caller can do.

use std::io;
use std::path::PathBuf;

use super::limits::Limit;
use super::manifest::ManifestError;
use super::path::PathError;

/// Everything that can go wrong while building or extracting an archive.
///
/// - [`ArchiveError::Rejected`]: the archive itself is unacceptable (malformed, hostile, over a
///   limit). Retrying will not help; for a downloaded release this is loud evidence against
///   whoever produced it.
/// - [`ArchiveError::Source`]: a source tree cannot be packed (the author must fix the tree).
/// - [`ArchiveError::Staging`]: the staging folder handed to the extractor is not usable.
/// - [`ArchiveError::Io`] and [`ArchiveError::Write`]: a local file-system or output failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The archive breaks a rule of the format or a limit.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// A source tree cannot be packed into an archive.
    #[error("cannot pack {path}")]
    Source {
        /// The file or folder in the source tree.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        problem: SourceProblem,
    },
    /// The staging folder is not usable: it exists and is not an empty folder.
    #[error("staging folder {path} {problem}")]
    Staging {
        /// The staging folder.
        path: PathBuf,
        /// What is wrong with it.
        problem: StagingProblem,
    },
    /// The output for a new archive is not empty.
    #[error("the output for a new archive must be empty, it holds {size} bytes")]
    OutputNotEmpty {
        /// The bytes already in the output.
        size: u64,
    },
    /// A file-system operation failed.
    #[error("cannot {operation} {path}")]
    Io {
        /// What was being done (`read`, `create`, `write`, ...).
        operation: &'static str,
        /// Where.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing or reading back the new archive failed.
    #[error("cannot write the archive")]
    Write(#[source] zip::result::ZipError),
}

/// What is wrong with a staging folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StagingProblem {
    /// It exists and is not empty.
    #[error("is not empty")]
    NotEmpty,
    /// It exists and is not a folder (a file, a symbolic link, ...).
    #[error("is not a folder")]
    NotAFolder,
}

/// Why a source tree cannot be packed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceProblem {
    /// The source given is not a folder.
    #[error("it is not a folder")]
    NotAFolder,
    /// A symbolic link: archives hold regular files and folders only.
    #[error("symbolic links are not allowed in a source tree")]
    Symlink,
    /// A device, FIFO, socket or other special file.
    #[error("only regular files and folders are allowed in a source tree")]
    SpecialFile,
    /// A name that is not valid UTF-8.
    #[error("file name is not valid UTF-8")]
    NameNotUtf8,
    /// The path is not a valid [`ArchivePath`](super::ArchivePath).
    #[error("invalid archive path")]
    InvalidPath(#[source] PathError),
    /// The path lies under the reserved `.keyggdrasil/` folder (any letter case).
    #[error("the name .keyggdrasil is reserved for the archive manifest")]
    Reserved,
    /// Two paths that differ only in letter case, which extraction would refuse.
    #[error("its name differs only in letter case from {other}")]
    CaseCollision {
        /// The other path (archive path form).
        other: String,
    },
    /// A limit of [`ArchiveLimits`](super::ArchiveLimits) is exceeded.
    #[error("limit {limit} = {max} exceeded (found {found})")]
    LimitExceeded {
        /// Which limit.
        limit: Limit,
        /// Its configured value.
        max: u64,
        /// The value found (at the moment it went over).
        found: u64,
    },
}

/// Why an archive is refused. Entry names are shown escaped (`escape_debug`), and shortened when
/// very long, so that a hostile name cannot garble a log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Not a readable zip archive.
    #[error("not a valid zip archive")]
    Malformed(#[source] zip::result::ZipError),
    /// Local headers disagree with the central directory, entries overlap, or local headers
    /// hide outside the central directory: different zip readers would see different files.
    #[error("archive structure is inconsistent")]
    Inconsistent(#[source] zip::result::ZipError),
    /// Bytes before the first entry (e.g. a zip appended to another file).
    #[error("archive starts with {offset} bytes that are not part of it")]
    LeadingData {
        /// How many bytes precede the archive.
        offset: u64,
    },
    /// The central directory lists one name twice. (The zip reader merges the two, so which
    /// name it was is not known.)
    #[error("archive lists the same entry name more than once")]
    DuplicateNames,
    /// The first entry is not the manifest.
    #[error("the first entry is not {}", super::MANIFEST_NAME)]
    MissingManifest,
    /// The manifest entry is not acceptable.
    #[error("invalid manifest {}", super::MANIFEST_NAME)]
    InvalidManifest(#[source] ManifestError),
    /// An entry name is not a valid [`ArchivePath`](super::ArchivePath).
    #[error("entry \"{name}\" has an invalid path")]
    InvalidName {
        /// The entry name as stored.
        name: String,
        /// Which rule it breaks.
        #[source]
        source: PathError,
    },
    /// A non-ASCII entry name without the UTF-8 flag: other readers would decode it as CP437
    /// and see a different name.
    #[error("entry \"{name}\" has a non-ASCII name without the UTF-8 flag")]
    NameNotMarkedUtf8 {
        /// The entry name as stored.
        name: String,
    },
    /// An entry with an Info-ZIP Unicode Path extra field, which replaces its name for some
    /// readers and not for others.
    #[error("entry \"{name}\" has a Unicode path extra field that renames it")]
    NameOverride {
        /// The entry name, as given by the extra field.
        name: String,
    },
    /// An entry under the reserved `.keyggdrasil/` folder other than the manifest.
    #[error("entry \"{name}\" uses the reserved .keyggdrasil folder")]
    Reserved {
        /// The entry name as stored.
        name: String,
    },
    /// A symbolic link (by the unix mode in the external attributes).
    #[error("entry \"{name}\" is a symbolic link")]
    Symlink {
        /// The entry name as stored.
        name: String,
    },
    /// A device, FIFO, socket or other entry that is not a regular file or folder.
    #[error("entry \"{name}\" is not a regular file or folder (unix mode {mode:o})")]
    SpecialFile {
        /// The entry name as stored.
        name: String,
        /// The unix mode found.
        mode: u32,
    },
    /// The unix mode says folder and the name has no trailing `/`, or the reverse.
    #[error("entry \"{name}\": unix mode {mode:o} does not match the name")]
    KindMismatch {
        /// The entry name as stored.
        name: String,
        /// The unix mode found.
        mode: u32,
    },
    /// A folder entry with content.
    #[error("folder entry \"{name}\" has content")]
    FolderWithContent {
        /// The entry name as stored.
        name: String,
    },
    /// An encrypted entry.
    #[error("entry \"{name}\" is encrypted")]
    Encrypted {
        /// The entry name as stored.
        name: String,
    },
    /// A compression method other than stored or deflate.
    #[error("entry \"{name}\" uses the unsupported compression method {method}")]
    UnsupportedCompression {
        /// The entry name as stored.
        name: String,
        /// The method found.
        method: String,
    },
    /// Two names equal after Unicode lowercasing but spelled differently.
    #[error("entry \"{name}\" differs only in letter case from \"{other}\"")]
    CaseCollision {
        /// The entry name as stored.
        name: String,
        /// The name it collides with.
        other: String,
    },
    /// A file whose path is also a folder on the path of another entry (`a` and `a/b`), or a
    /// file and a folder entry with the same name.
    #[error("entry \"{name}\" needs \"{other}\" as a folder and as a file")]
    PathConflict {
        /// The entry name as stored.
        name: String,
        /// The path used both ways.
        other: String,
    },
    /// A limit of [`ArchiveLimits`](super::ArchiveLimits) is exceeded. `entry` is `None` for
    /// limits on the whole archive.
    #[error("{}limit {limit} = {max} exceeded (found {found})", entry_prefix(.entry.as_deref()))]
    LimitExceeded {
        /// The entry being processed, if the limit concerns one entry.
        entry: Option<String>,
        /// Which limit.
        limit: Limit,
        /// Its configured value.
        max: u64,
        /// The value found, at the moment it went over (so for sizes counted while
        /// decompressing, the count so far).
        found: u64,
    },
    /// The data of an entry decompressed to a different size than declared.
    #[error("entry \"{name}\" declares {declared} bytes but holds {}", actual_size(*.actual))]
    SizeMismatch {
        /// The entry name as stored.
        name: String,
        /// The declared uncompressed size.
        declared: u64,
        /// The bytes actually produced; `None` when more than declared (decompression stopped
        /// there).
        actual: Option<u64>,
    },
    /// The data of an entry cannot be read: bad compressed stream or CRC mismatch.
    #[error("entry \"{name}\" is corrupt")]
    Corrupt {
        /// The entry name as stored.
        name: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn entry_prefix(entry: Option<&str>) -> String {
    entry
        .map(|e| format!("entry \"{e}\": "))
        .unwrap_or_default()
}

fn actual_size(actual: Option<u64>) -> String {
    actual.map_or_else(|| "more".to_owned(), |n| n.to_string())
}

/// An entry name made safe for messages: lossy UTF-8, escaped, at most about 200 characters.
pub(crate) fn display_name(raw: &[u8]) -> String {
    const MAX_CHARS: usize = 200;
    let escaped: String = String::from_utf8_lossy(raw).escape_debug().collect();
    if escaped.chars().count() <= MAX_CHARS {
        escaped
    } else {
        let mut short: String = escaped.chars().take(MAX_CHARS).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_entry_and_the_limit() {
        let err = Rejection::LimitExceeded {
            entry: Some("big.bin".into()),
            limit: Limit::FileSize,
            max: 10,
            found: 11,
        };
        assert_eq!(
            err.to_string(),
            "entry \"big.bin\": limit max_file_size = 10 exceeded (found 11)"
        );
        let err = Rejection::LimitExceeded {
            entry: None,
            limit: Limit::Entries,
            max: 3,
            found: 4,
        };
        assert_eq!(err.to_string(), "limit max_entries = 3 exceeded (found 4)");
        let err = ArchiveError::from(Rejection::Symlink { name: "x".into() });
        assert_eq!(err.to_string(), "entry \"x\" is a symbolic link");
    }

    #[test]
    fn names_are_escaped_and_shortened() {
        assert_eq!(display_name(b"a\nb\0"), "a\\nb\\0");
        assert_eq!(display_name(b"\xff"), "\u{fffd}");
        let long = display_name(&[b'x'; 1000]);
        assert_eq!(long.chars().count(), 201);
    }
}
