//! The archive format's file-system part: a reproducible zip builder that reads a source
//! folder, and a safe extractor that writes a staging folder.
//!
//! An archive is a zip file whose first entry is a [`Manifest`](crate::archive::Manifest) (package, version, git commit)
//! stored as canonical JSON under the reserved name [`MANIFEST_NAME`](crate::archive::MANIFEST_NAME), followed by the folders
//! and regular files of the package, each under a validated [`ArchivePath`](crate::archive::ArchivePath).
//!
//! What it does:
//!
//! - [`build_archive`] packs a source tree reproducibly: the same tree gives the same bytes,
//!   whatever the file times, permissions beyond the execute bit, umask, listing order or the
//!   time of the build (entries sorted by name, fixed timestamp, files 0644 or 0755, every
//!   folder stored as an entry with 0755 so that empty folders survive, deflate at a fixed
//!   level, no extra fields, no comments). Symbolic links and special files are refused, never
//!   skipped; only `.git` is skipped. The result is checked with the extractor's rules, so
//!   whatever is built can be extracted.
//! - [`extract_archive`] unpacks an untrusted archive into a fresh staging folder, after
//!   checking its structure, every name, type and declared size, and the manifest, and while
//!   counting the bytes actually decompressed against [`ArchiveLimits`](crate::archive::ArchiveLimits). Any error removes what
//!   was written. It never panics on any input.
//!
//! Errors: [`ArchiveError::Rejected`](crate::archive::ArchiveError::Rejected) carries a [`Rejection`](crate::archive::Rejection) when the archive itself is
//! unacceptable (malformed or hostile: retrying will not help); the other variants are about
//! the source tree, the staging folder or local I/O.
//!
//! What it does not do: verify signatures or digests (the caller checks the archive's bytes
//! against the signed release in the log *before* extracting), compare the manifest with the
//! release (the caller does, with [`ExtractedArchive::manifest`]), swap the staging folder into
//! place, or sync data to disk. Names are compared for collisions by Unicode lowercase without
//! normalisation, so names that differ only in NFC/NFD form count as different (a file system
//! that normalises, like Apple's, may still merge them). Names that only Windows refuses
//! (`CON`, trailing dots or spaces) are accepted: sites run on Unix-like systems.
//!
//! # Example
//!
//! ```
//! use std::io::Cursor;
//! use keyggdrasil::archive::{ArchiveLimits, Manifest};
//! use keyggdrasil::os::archive::{build_archive, extract_archive};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let source = tempfile::tempdir()?;
//! std::fs::create_dir(source.path().join("src"))?;
//! std::fs::write(source.path().join("src/plugin.php"), "<?php echo 'hello';\n")?;
//!
//! let manifest = Manifest::new(
//!     "acme/hello-plugin",
//!     "1.0.0",
//!     "0123456789abcdef0123456789abcdef01234567",
//! )?;
//! let limits = ArchiveLimits::default();
//! let mut archive = Cursor::new(Vec::new());
//! build_archive(source.path(), &manifest, &mut archive, &limits)?;
//!
//! let target = tempfile::tempdir()?;
//! let staging = target.path().join("staging");
//! let extracted = extract_archive(Cursor::new(archive.into_inner()), &staging, &limits)?;
//! assert_eq!(extracted.manifest, manifest);
//! assert_eq!(
//!     std::fs::read_to_string(staging.join("src/plugin.php"))?,
//!     "<?php echo 'hello';\n"
//! );
//! # Ok(())
//! # }
//! ```

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
mod build;
mod extract;

pub use build::{ArchiveSummary, DEFLATE_LEVEL, IGNORED_NAME, build_archive};
pub use extract::{EXEC_MODE, ExtractedArchive, FILE_MODE, extract_archive};
