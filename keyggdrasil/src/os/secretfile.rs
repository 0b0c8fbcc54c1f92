//! Files that hold secrets: created 0600 inside a 0700 folder (conventionally `local/`), written
//! atomically, and refused when group or others can read them or when they (or their folder)
//! belong to another user than the one running the program (root excepted).
//!
//! The paths are handed in by the binaries. The mode checks catch the common mistakes (a key
//! copied with `cp` under a permissive umask, a folder made world-readable); the owner check
//! (with [`super::ownership::effective_uid`]) catches a secret another user put there, which
//! that user could also replace.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;
use zeroize::Zeroizing;

/// Why a secret file could not be read or written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SecretFileError {
    /// An I/O operation on `path` failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done ("could not read").
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The folder is accessible to group or others.
    #[error(
        "refusing to use secrets in {path}: the folder has mode {mode:03o}, but must not be accessible to group or others (run: chmod 700 {path})"
    )]
    FolderPermissions {
        /// The folder.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is accessible to group or others.
    #[error(
        "refusing to use secret file {path}: it has mode {mode:03o}, but must not be readable by group or others (run: chmod 600 {path})"
    )]
    FilePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file or its folder belongs to another user than the running one (and not to root).
    #[error(
        "refusing to use secrets in {path}: it belongs to uid {owner}, not to the user running this program (uid {euid}) or root (run: chown {euid} {path}, or run as its owner)"
    )]
    ForeignOwner {
        /// The file or folder.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// The uid of the running program.
        euid: u32,
    },
    /// The path is a symlink or not a regular file.
    #[error(
        "refusing to use secret file {0}: it is not a regular file (symlinks are not followed)"
    )]
    NotRegular(PathBuf),
    /// The file is larger than the caller's limit.
    #[error("secret file {path} is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The file exists and overwriting was not asked for.
    #[error("{0} already exists; refusing to overwrite a secret file")]
    Exists(PathBuf),
}

fn io_err<'p>(
    action: &'static str,
    path: &'p Path,
) -> impl FnOnce(io::Error) -> SecretFileError + 'p {
    move |source| SecretFileError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` (and parents) with mode 0700 if missing; refuses an existing folder that group
/// or others can access.
pub fn ensure_private_dir(dir: &Path) -> Result<(), SecretFileError> {
    match fs::symlink_metadata(dir) {
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(SecretFileError::NotRegular(dir.to_path_buf()));
            }
            check_private_dir(dir, &meta)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err("could not create folder", dir)),
        Err(e) => Err(io_err("could not inspect folder", dir)(e)),
    }
}

fn check_owner(path: &Path, meta: &fs::Metadata) -> Result<(), SecretFileError> {
    if let Some((owner, euid)) = super::ownership::foreign_owner(meta) {
        return Err(SecretFileError::ForeignOwner {
            path: path.to_path_buf(),
            owner,
            euid,
        });
    }
    Ok(())
}

fn check_private_dir(dir: &Path, meta: &fs::Metadata) -> Result<(), SecretFileError> {
    check_owner(dir, meta)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::FolderPermissions {
            path: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` with mode 0600, atomically (temporary file, fsync, rename, fsync of
/// the folder). The folder must already be private (see [`ensure_private_dir`]). Refuses to
/// replace an existing file unless `overwrite` is true.
pub fn write_secret_file(
    path: &Path,
    bytes: &[u8],
    overwrite: bool,
) -> Result<(), SecretFileError> {
    let dir = parent_of(path);
    let meta = fs::symlink_metadata(dir).map_err(io_err("could not inspect folder", dir))?;
    check_private_dir(dir, &meta)?;
    if !overwrite && fs::symlink_metadata(path).is_ok() {
        return Err(SecretFileError::Exists(path.to_path_buf()));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "secret".into());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}",
        crate::encoding::to_hex(&crate::os::random::bytes::<8>())
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("could not create", &tmp))?;
        f.write_all(bytes)
            .map_err(io_err("could not write", &tmp))?;
        f.sync_all().map_err(io_err("could not sync", &tmp))?;
        drop(f);
        if !overwrite && fs::symlink_metadata(path).is_ok() {
            return Err(SecretFileError::Exists(path.to_path_buf()));
        }
        fs::rename(&tmp, path).map_err(io_err("could not move into place", path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("could not sync folder", dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a secret file of at most `limit` bytes into zeroizing memory, refusing symlinks,
/// non-regular files, files readable by group or others, files in a folder that group or
/// others can access, and files or folders that belong to another user (root excepted).
pub fn read_secret_file(path: &Path, limit: u64) -> Result<Zeroizing<Vec<u8>>, SecretFileError> {
    let dir = parent_of(path);
    let dmeta = fs::symlink_metadata(dir).map_err(io_err("could not inspect folder", dir))?;
    check_private_dir(dir, &dmeta)?;
    let lmeta = fs::symlink_metadata(path).map_err(io_err("could not read", path))?;
    if !lmeta.file_type().is_file() {
        return Err(SecretFileError::NotRegular(path.to_path_buf()));
    }
    let mut f = File::open(path).map_err(io_err("could not open", path))?;
    let meta = f.metadata().map_err(io_err("could not inspect", path))?;
    // The file we opened must be the one we inspected (no swap between the two calls).
    if meta.ino() != lmeta.ino() || meta.dev() != lmeta.dev() || !meta.is_file() {
        return Err(SecretFileError::NotRegular(path.to_path_buf()));
    }
    check_owner(path, &meta)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::FilePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    if meta.len() > limit {
        return Err(SecretFileError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            limit,
        });
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0)));
    (&mut f)
        .take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(io_err("could not read", path))?;
    if buf.len() as u64 > limit {
        return Err(SecretFileError::TooLarge {
            path: path.to_path_buf(),
            size: buf.len() as u64,
            limit,
        });
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_modes() {
        let t = tempfile::tempdir().unwrap();
        let local = t.path().join("local");
        ensure_private_dir(&local).unwrap();
        assert_eq!(
            fs::metadata(&local).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let f = local.join("key.json");
        write_secret_file(&f, b"secret", false).unwrap();
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(&**read_secret_file(&f, 100).unwrap(), b"secret");
        assert!(matches!(
            write_secret_file(&f, b"other", false),
            Err(SecretFileError::Exists(_))
        ));
        write_secret_file(&f, b"other", true).unwrap();
        assert_eq!(&**read_secret_file(&f, 100).unwrap(), b"other");
        assert!(matches!(
            read_secret_file(&f, 3),
            Err(SecretFileError::TooLarge { .. })
        ));
        // No temporary files left behind.
        assert_eq!(fs::read_dir(&local).unwrap().count(), 1);
    }

    #[test]
    fn refuses_readable_file_and_open_folder() {
        let t = tempfile::tempdir().unwrap();
        let local = t.path().join("local");
        ensure_private_dir(&local).unwrap();
        let f = local.join("key.json");
        write_secret_file(&f, b"secret", false).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_secret_file(&f, 100).unwrap_err();
        assert!(matches!(
            e,
            SecretFileError::FilePermissions { mode: 0o644, .. }
        ));
        assert!(e.to_string().contains("chmod 600"));
        assert!(!e.to_string().contains("secret\""));
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&local, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            read_secret_file(&f, 100),
            Err(SecretFileError::FolderPermissions { mode: 0o755, .. })
        ));
        assert!(matches!(
            ensure_private_dir(&local),
            Err(SecretFileError::FolderPermissions { .. })
        ));
        assert!(matches!(
            write_secret_file(&local.join("k2"), b"x", false),
            Err(SecretFileError::FolderPermissions { .. })
        ));
    }

    #[test]
    fn refuses_symlink() {
        let t = tempfile::tempdir().unwrap();
        let local = t.path().join("local");
        ensure_private_dir(&local).unwrap();
        let real = local.join("real");
        write_secret_file(&real, b"secret", false).unwrap();
        let link = local.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(
            read_secret_file(&link, 100),
            Err(SecretFileError::NotRegular(_))
        ));
    }
}
