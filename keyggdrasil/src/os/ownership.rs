//! Files and folders whose content a program trusts (a site's config and state, the folders it
//! writes into): they must belong to the user running the program (or to root) and must not be
//! writable by group or others, or someone else could change what the program does or
//! installs. Also a way to open a file without following a symbolic link at its last
//! component.
//!
//! `effective_uid` is the one libc call outside [`super::lockmem`]: `geteuid` takes no
//! arguments, cannot fail and touches no memory of the caller, so it is sound.

use std::fs::{self, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why a path that a program trusts is refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The path could not be inspected.
    #[error("could not inspect {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The path belongs to another user than the one running the program (and not to root).
    #[error(
        "refusing to use {path}: it belongs to uid {owner}, not to the user running continuum (uid {euid}) or root, so that user could change it (run: chown {euid} {path}, or run as its owner)"
    )]
    ForeignOwner {
        /// The path.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// The uid of the running program.
        euid: u32,
    },
    /// Group or others may write the path.
    #[error(
        "refusing to use {path}: it has mode {mode:03o}, so group or others could change it (run: chmod go-w {path})"
    )]
    SharedWritable {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // rustix's safe wrapper, so that `lockmem` stays the crate's only `unsafe` module.
    rustix::process::geteuid().as_raw()
}

/// The owner rule, in one place for site files and secret files: `Some((owner, euid))` when
/// what `meta` describes belongs to neither the running user nor root.
pub fn foreign_owner(meta: &Metadata) -> Option<(u32, u32)> {
    let owner = meta.uid();
    let euid = effective_uid();
    (owner != euid && owner != 0).then_some((owner, euid))
}

/// Checks metadata already read for `path`: owned by the running user or root, not writable by
/// group or others (for a symbolic link's own metadata the mode is ignored: links have none).
pub fn check_metadata(path: &Path, meta: &Metadata) -> Result<(), TrustError> {
    if let Some((owner, euid)) = foreign_owner(meta) {
        return Err(TrustError::ForeignOwner {
            path: path.to_path_buf(),
            owner,
            euid,
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.file_type().is_symlink() && mode & 0o022 != 0 {
        return Err(TrustError::SharedWritable {
            path: path.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

/// [`check_metadata`] of `path` (a symbolic link is followed: what is checked is what would be
/// read), or `Ok(false)` when it does not exist; `Ok(true)` when it exists and passes.
pub fn check_trusted(path: &Path) -> Result<bool, TrustError> {
    match fs::metadata(path) {
        Ok(meta) => check_metadata(path, &meta).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(TrustError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Adds `O_NOFOLLOW` (and `O_CLOEXEC`) to `options`: opening then fails if the last component of
/// the path is a symbolic link, instead of opening (or creating, or truncating) its target.
pub fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_links() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, b"x").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(check_trusted(&f).unwrap());
        fs::set_permissions(&f, fs::Permissions::from_mode(0o664)).unwrap();
        assert!(matches!(
            check_trusted(&f),
            Err(TrustError::SharedWritable { mode: 0o664, .. })
        ));
        assert!(!check_trusted(&t.path().join("absent")).unwrap());
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        let opened = no_follow(OpenOptions::new().read(true)).open(&link);
        assert_eq!(
            opened.unwrap_err().raw_os_error(),
            Some(libc::ELOOP),
            "a link is not followed"
        );
        assert!(no_follow(OpenOptions::new().read(true)).open(&f).is_ok());
    }
}
