//! Stage 1 of an install: download the archive (resuming a cut-short download), check it
//! against the log, extract it into a fresh staging folder and compare its manifest with the
//! release. Nothing a site serves changes here.

use std::fs;
use std::io;
use std::path::Path;

use keyggdrasil::archive::Manifest;
use keyggdrasil::archive_check::ArchiveMismatch;
use keyggdrasil::limits::Limits;
use keyggdrasil::os::archive::extract_archive;
use keyggdrasil::state::VerifiedRelease;

use super::fsutil::is_real_dir;
use super::{InstallError, io_err};
use crate::transport::{Http, TransportError};

/// Creates `staging/` (mode 0700: the extractor must not race anyone inside it). An existing
/// one must be a real folder (not a link) that belongs to the running user (or root) and that
/// group and others cannot write: otherwise [`InstallError::Untrusted`], and nothing is written
/// there (someone else could swap a verified download or tree under continuum).
pub(super) fn ensure_staging(staging: &Path) -> Result<(), InstallError> {
    if let Ok(meta) = fs::symlink_metadata(staging)
        && meta.is_dir()
    {
        keyggdrasil::os::ownership::check_metadata(staging, &meta)?;
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(staging) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && is_real_dir(staging) => Ok(()),
        Err(e) => Err(io_err("create folder", staging)(e)),
    }
}

/// Downloads into `dest` (resuming what is there) from the first URL that delivers all `size`
/// bytes. Unreachable, stalled (below the transport's rate floor) and cut-short downloads move
/// on to the next URL, which resumes from the bytes kept; more bytes than `size` stops at once
/// (the transport deleted them). Returns true when the file holds bytes of more than one
/// transfer (kept from before, or from a mirror left midway): if it then fails its checks, the
/// kept part may be the culprit, and the caller downloads it once more from the start. Also
/// returns the index of the URL that delivered, so a caller whose check of those bytes fails
/// can go on with the URLs after it.
pub(super) fn fetch(
    http: &Http,
    urls: &[String],
    dest: &Path,
    size: u64,
    name: &str,
) -> Result<(bool, usize), InstallError> {
    let mut errors = Vec::new();
    let kept = || fs::symlink_metadata(dest).map(|m| m.len()).unwrap_or(0);
    let mut mixed = false;
    for (index, url) in urls.iter().enumerate() {
        let before = kept();
        mixed |= before > 0;
        match http.download(url, dest, size) {
            Err(e @ TransportError::Stalled { .. }) => {
                // A mirror below the rate floor is one that did not deliver: what it sent is
                // not mixed into the next mirror's transfer (the digest would fail and cost a
                // second download); the bytes kept from before stay.
                let dropped = fs::OpenOptions::new()
                    .write(true)
                    .open(dest)
                    .and_then(|f| f.set_len(before));
                if let Err(source) = dropped {
                    return Err(InstallError::Io {
                        operation: "cut back the stalled download",
                        path: dest.to_path_buf(),
                        source,
                    });
                }
                errors.push(e.to_string());
            }
            Ok((_, got)) if got == size => return Ok((mixed, index)),
            Ok((200 | 206, got)) => errors.push(format!(
                "{url}: connection closed after {got} of {size} bytes"
            )),
            Ok((status, _)) => errors.push(format!("{url}: HTTP status {status}")),
            Err(TransportError::TooLarge { url, limit }) => {
                // The transport removed the file; make sure, whatever happened.
                let _ = fs::remove_file(dest);
                return Err(InstallError::TooLarge {
                    release: name.to_owned(),
                    url,
                    limit,
                });
            }
            Err(TransportError::File { path, source }) => {
                return Err(InstallError::Io {
                    operation: "write the download",
                    path,
                    source,
                });
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        errors.push("no mirror URL".to_owned());
    }
    let received = fs::symlink_metadata(dest).map(|m| m.len()).unwrap_or(0);
    if received > 0 {
        Err(InstallError::Truncated {
            release: name.to_owned(),
            received,
            expected: size,
            errors,
        })
    } else {
        Err(InstallError::Unreachable {
            release: name.to_owned(),
            errors,
        })
    }
}

/// Checks size, digest and signature in one pass over the file; deletes it on any mismatch.
/// The file is opened without following a symbolic link, and returned open, rewound, for
/// [`prepare_tree`]: what is extracted is the file that was checked, whatever is put at its
/// path afterwards.
pub(super) fn verify_download(
    download: &Path,
    release: &VerifiedRelease,
    name: &str,
) -> Result<fs::File, InstallError> {
    use std::io::Seek as _;
    let mut file = keyggdrasil::os::ownership::no_follow(fs::OpenOptions::new().read(true))
        .open(download)
        .map_err(io_err("open the download", download))?;
    let failure = match release.check_archive(&mut file) {
        Ok(_) => None,
        Err(ArchiveMismatch::Io(e)) => return Err(io_err("read the download", download)(e)),
        Err(ArchiveMismatch::TooLong { .. } | ArchiveMismatch::Truncated { .. }) => {
            // `fetch` only returns with exactly `size` bytes; the file changed under us.
            Some(InstallError::Truncated {
                release: name.to_owned(),
                received: fs::symlink_metadata(download).map(|m| m.len()).unwrap_or(0),
                expected: release.size(),
                errors: vec![format!("{} changed size", download.display())],
            })
        }
        Err(ArchiveMismatch::Digest { expected, found }) => Some(InstallError::DigestMismatch {
            release: name.to_owned(),
            expected,
            found,
        }),
        Err(source) => Some(InstallError::BadSignature {
            release: name.to_owned(),
            signer: release.signer().to_hex(),
            source,
        }),
    };
    match failure {
        None => {
            file.rewind()
                .map_err(io_err("read the download", download))?;
            Ok(file)
        }
        Some(e) => {
            if let Err(rm) = fs::remove_file(download) {
                tracing::error!(
                    "{name}: could not delete the refused download {}: {rm}",
                    download.display()
                );
            }
            Err(e)
        }
    }
}

/// Extracts the verified, open `file` (from [`verify_download`]) into the fresh folder `tree`
/// and compares the manifest with the release.
pub(super) fn prepare_tree(
    file: fs::File,
    tree: &Path,
    release: &VerifiedRelease,
    name: &str,
    limits: &Limits,
) -> Result<(), InstallError> {
    let extracted =
        extract_archive(io::BufReader::new(file), tree, &limits.archive).map_err(|source| {
            InstallError::Archive {
                release: name.to_owned(),
                source,
            }
        })?;
    check_manifest(&extracted.manifest, release, name)
}

pub(super) fn check_manifest(
    manifest: &Manifest,
    release: &VerifiedRelease,
    name: &str,
) -> Result<(), InstallError> {
    let package = format!("{}/{}", release.supplier(), release.package());
    for (field, expected, found) in [
        ("package", package.as_str(), manifest.package()),
        ("version", release.version().as_str(), manifest.version()),
        (
            "git_commit",
            release.commit().as_str(),
            manifest.git_commit(),
        ),
    ] {
        if expected != found {
            return Err(InstallError::ManifestMismatch {
                release: name.to_owned(),
                field,
                expected: expected.to_owned(),
                found: found.to_owned(),
            });
        }
    }
    Ok(())
}
