//! File-system helpers of the install stages: folders that are really folders, synced
//! creation and removal.

use std::fs;
use std::io;
use std::path::Path;

use super::{InstallError, io_err};

pub(super) fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// The names in a folder (none if it does not exist). Names that are not UTF-8 are skipped:
/// continuum never creates them.
pub(super) fn list_dir(dir: &Path) -> Result<Vec<String>, InstallError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read folder", dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("read folder", dir))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Creates one folder if it is missing (and syncs its parent); true if it was created.
pub(super) fn create_dir_synced(dir: &Path) -> Result<bool, InstallError> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(false),
        Ok(_) => {
            return Err(InstallError::Corrupt {
                path: dir.to_path_buf(),
                problem: "is not a folder".into(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspect", dir)(e)),
    }
    new_dir(dir).map_err(io_err("create folder", dir))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(true)
}

/// Creates one folder with mode 0755 (never wider, whatever the umask): the folders the web
/// server reads through.
fn new_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new().mode(0o755).create(dir)
}

/// Makes sure `dir` is a real folder, creating it (mode 0755, see [`new_dir`]) if missing: a
/// symbolic link or a file there is an error, never followed.
pub(super) fn create_dir_mode(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is not a folder (a link is not followed)", dir.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => new_dir(dir),
        Err(e) => Err(e),
    }
}

pub(super) fn remove_file_if_exists(path: &Path) -> Result<(), InstallError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

pub(super) fn remove_tree_quietly(path: &Path) {
    if let Err(e) = fs::remove_dir_all(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!("could not remove {}: {e}", path.display());
    }
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), InstallError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err("sync folder", dir))
}

/// Syncs every file and folder of an extracted tree (no symbolic links: the extractor makes
/// none, and none is followed here), deepest first, so that the rename that publishes it
/// cannot reach the disk before its content.
pub(super) fn sync_tree(root: &Path) -> Result<(), InstallError> {
    let mut folders = vec![root.to_path_buf()];
    let mut i = 0;
    while let Some(dir) = folders.get(i).cloned() {
        i += 1;
        for entry in fs::read_dir(&dir).map_err(io_err("read folder", &dir))? {
            let entry = entry.map_err(io_err("read folder", &dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io_err("inspect", &path))?;
            if kind.is_dir() {
                folders.push(path);
            } else if kind.is_file() {
                fs::File::open(&path)
                    .and_then(|f| f.sync_all())
                    .map_err(io_err("sync", &path))?;
            }
        }
    }
    for dir in folders.iter().rev() {
        sync_dir(dir)?;
    }
    Ok(())
}
