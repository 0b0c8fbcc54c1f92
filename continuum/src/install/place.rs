//! Stages 2–5 of an install: move the verified tree into `versions/`, record it, swap
//! `current` (the commit point), and undo all of it on a failure; plus pruning old versions.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::fetch::ensure_staging;
use super::fsutil::{
    create_dir_synced, is_real_dir, list_dir, remove_file_if_exists, remove_tree_quietly, sync_dir,
};
use super::reconcile::read_current;
use super::{CURRENT_NEW, InstallError, PackageDir, VERSIONS, io_err, random_suffix};
use crate::config::SitePaths;
use crate::db::{self, StoredVersion};

/// Returns to the state before the install after a failure at or after the commit point:
/// points `current` back at `previous` (or removes it), then undoes [`place`]. If `current`
/// cannot be put back, the new version stays (it is complete and verified) and the next
/// [`reconcile`] records it.
pub(super) fn back_out(
    paths: &SitePaths,
    conn: &Connection,
    pkg: &PackageDir,
    previous: Option<&str>,
    placed: Placed,
) {
    let restored = match read_current(pkg) {
        Ok(current) if current.as_deref() == previous => Ok(()),
        _ => restore_current(pkg, previous),
    };
    match restored.and_then(|()| read_current(pkg)) {
        Ok(current) if current.as_deref() == previous => placed.undo(paths, conn, pkg),
        Ok(_) => tracing::error!(
            "{}: could not swap back to the previous version; the next run records the new one",
            pkg.name
        ),
        Err(e) => tracing::error!(
            "{}: could not swap back to the previous version ({e}); the next run repairs the record",
            pkg.name
        ),
    }
}

/// What [`place`] did, so that it can be undone before the commit point.
pub(super) struct Placed {
    /// Folders created for the package (outermost first).
    created: Vec<PathBuf>,
    /// Where a kept copy of the same version was set aside.
    pub(super) aside: Option<PathBuf>,
    /// Whether the new tree was moved to `versions/<version>`.
    moved_in: bool,
    /// Whether `stored_versions` had a row for this version before.
    had_record: bool,
    version: String,
}

impl Placed {
    /// Undoes [`place`] (best effort, before the commit point): removes the new version folder,
    /// puts the set-aside copy back, restores its record, removes created folders.
    pub(super) fn undo(self, paths: &SitePaths, conn: &Connection, pkg: &PackageDir) {
        let target = pkg.version(&self.version);
        if self.moved_in {
            let trash = paths.staging.join(format!("trash-{}", random_suffix()));
            match fs::rename(&target, &trash) {
                Ok(()) => remove_tree_quietly(&trash),
                Err(e) => tracing::error!(
                    "{}: could not remove the new {}: {e}",
                    pkg.name,
                    target.display()
                ),
            }
        }
        if let Some(aside) = &self.aside
            && let Err(e) = fs::rename(aside, &target)
        {
            tracing::error!(
                "{}: could not put {} back to {}: {e}",
                pkg.name,
                aside.display(),
                target.display()
            );
        }
        if !self.had_record
            && let Err(e) =
                db::forget_stored_version(conn, &pkg.supplier, &pkg.package, &self.version)
        {
            tracing::error!(
                "{}: could not forget version {}: {e}",
                pkg.name,
                self.version
            );
        }
        for dir in self.created.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
        let _ = sync_dir(&pkg.versions());
    }
}

/// Moves the synced tree to `versions/<version>` and records it in `stored_versions`.
pub(super) fn place(
    paths: &SitePaths,
    conn: &Connection,
    pkg: &PackageDir,
    tree: &Path,
    stored: &StoredVersion,
) -> Result<Placed, InstallError> {
    let mut placed = Placed {
        created: Vec::new(),
        aside: None,
        moved_in: false,
        had_record: false,
        version: stored.version.clone(),
    };
    let result = (|| {
        for dir in [
            paths.packages.clone(),
            pkg.supplier_dir.clone(),
            pkg.dir.clone(),
            pkg.versions(),
        ] {
            if create_dir_synced(&dir)? {
                placed.created.push(dir);
            }
        }
        let target = pkg.version(&stored.version);
        if fs::symlink_metadata(&target).is_ok() {
            // A kept copy of this version (the previous one): replace it with the fresh tree.
            let aside = paths.staging.join(format!("aside-{}", random_suffix()));
            fs::rename(&target, &aside).map_err(io_err("set aside", &target))?;
            placed.aside = Some(aside);
        }
        fs::rename(tree, &target).map_err(|source| InstallError::Io {
            operation: "move the extracted tree into place (staging/ and packages/ must be on \
                        one file system) at",
            path: target.clone(),
            source,
        })?;
        placed.moved_in = true;
        sync_dir(&pkg.versions())?;
        placed.had_record = db::stored_versions(conn, &pkg.supplier, &pkg.package)?
            .iter()
            .any(|s| s.version == stored.version);
        db::record_stored_version(conn, stored)?;
        Ok(())
    })();
    match result {
        Ok(()) => Ok(placed),
        Err(e) => {
            placed.undo(paths, conn, pkg);
            Err(e)
        }
    }
}

/// The commit point: `current` -> `versions/<version>`, by renaming a new link over it.
pub(super) fn point_current(pkg: &PackageDir, version: &str) -> Result<(), InstallError> {
    let tmp = pkg.dir.join(CURRENT_NEW);
    remove_file_if_exists(&tmp)?;
    symlink(&Path::new(VERSIONS).join(version), &tmp).map_err(io_err("create the link", &tmp))?;
    let current = pkg.current();
    fs::rename(&tmp, &current).map_err(io_err("rename the new link over", &current))?;
    sync_dir(&pkg.dir)
}

/// Points `current` back at `previous`, or removes it if there was no version before.
pub(super) fn restore_current(
    pkg: &PackageDir,
    previous: Option<&str>,
) -> Result<(), InstallError> {
    match previous {
        Some(v) => point_current(pkg, v),
        None => {
            remove_file_if_exists(&pkg.current())?;
            sync_dir(&pkg.dir)
        }
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "continuum installs packages through symbolic links, which need a Unix-like system",
    ))
}

/// Deletes every entry of `versions/` other than `keep`, forgets the stored versions not
/// kept, and deletes the kept archives (`archives/`) other than those of the versions kept. A
/// folder is first renamed into `staging/` (atomic), then deleted there.
pub(super) fn prune(
    paths: &SitePaths,
    conn: &Connection,
    pkg: &PackageDir,
    keep: &[&str],
) -> Result<(), InstallError> {
    let versions = pkg.versions();
    let mut removed = false;
    for entry in list_dir(&versions)? {
        if keep.contains(&entry.as_str()) {
            continue;
        }
        let path = versions.join(&entry);
        ensure_staging(&paths.staging)?;
        let trash = paths.staging.join(format!("trash-{}", random_suffix()));
        fs::rename(&path, &trash).map_err(io_err("move an old version out of", &path))?;
        removed = true;
        remove_tree_quietly(&trash);
    }
    if removed {
        sync_dir(&versions)?;
    }
    let mut kept_archives = Vec::new();
    for stored in db::stored_versions(conn, &pkg.supplier, &pkg.package)? {
        if keep.contains(&stored.version.as_str()) {
            kept_archives.push(format!("{}.zip", stored.digest));
        } else {
            db::forget_stored_version(conn, &pkg.supplier, &pkg.package, &stored.version)?;
        }
    }
    let archives = pkg.archives();
    if is_real_dir(&archives) {
        let mut removed = false;
        for entry in list_dir(&archives)? {
            if !kept_archives.contains(&entry) {
                let path = archives.join(&entry);
                fs::remove_file(&path).map_err(io_err("remove an old kept archive", &path))?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&archives)?;
        }
    }
    Ok(())
}
