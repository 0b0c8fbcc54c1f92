//! The archive format, its pure part: validated entry paths, the manifest, the limits, and the
//! inspection of an untrusted zip (structure, names, types, declared sizes) into a plan.
//!
//! An archive is a zip file whose first entry is a [`Manifest`] (package, version, git commit)
//! stored as canonical JSON under the reserved name [`MANIFEST_NAME`], followed by the folders
//! and regular files of the package, each under a validated [`ArchivePath`].
//!
//! Building an archive from a folder and extracting one into a staging folder touch the file
//! system, so they live behind the crate's I/O fence, in [`crate::os::archive`]
//! ([`build_archive`](crate::os::archive::build_archive),
//! [`extract_archive`](crate::os::archive::extract_archive)); they use the rules here.
//!
//! Errors: [`ArchiveError::Rejected`] carries a [`Rejection`] when the archive itself is
//! unacceptable (malformed or hostile: retrying will not help); the other variants are about
//! the source tree, the staging folder or local I/O.

// Archives are untrusted input: no code path here may panic on them. These lints keep it so
// (tests may unwrap).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::cast_possible_truncation
    )
)]

pub(crate) mod error;
pub(crate) mod inspect;
pub(crate) mod limits;
pub(crate) mod manifest;
pub(crate) mod path;

pub use error::{ArchiveError, Rejection, SourceProblem, StagingProblem};
pub use limits::{ArchiveLimits, Limit};
pub use manifest::{MANIFEST_FORMAT, Manifest, ManifestError};
pub use path::{ArchivePath, MAX_COMPONENT_LEN, PathError};

/// The name of the manifest entry, always the first entry of an archive.
pub const MANIFEST_NAME: &str = ".keyggdrasil/manifest.json";

/// The folder reserved for the manifest: no other entry may lie under it (any letter case).
pub const RESERVED_FOLDER: &str = ".keyggdrasil";

/// One file or folder of an archive, as built or extracted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryInfo {
    /// Where it is, relative to the package root.
    pub path: ArchivePath,
    /// What it is.
    pub kind: EntryKind,
}

/// Whether an entry is a file or a folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    /// A regular file.
    File {
        /// Its size in bytes.
        size: u64,
        /// Whether it has mode 0755 (otherwise 0644).
        executable: bool,
    },
    /// A folder (mode 0755).
    Directory,
}
