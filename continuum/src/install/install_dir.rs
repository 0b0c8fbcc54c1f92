//! A package's `install_dir`: the place a CMS expects it (e.g.
//! `/var/www/wp-content/plugins/hello`), as a symbolic link to the package's `current` link.
//!
//! The versions stay under the site folder, and `current` stays the one atomic switch: the
//! `install_dir` link names `current` by its absolute path, so every lookup through it goes
//! `install_dir -> <site>/packages/<supplier>/<package>/current -> versions/<version>` and
//! lands on a complete, verified version, before, during and after an update or a rollback.
//! The link itself never changes once made; it is created by renaming a new link over the
//! path (atomic), so a crash leaves either no link or the whole one. Decision 54 in
//! docs/decisions.md says why this and not a copy or a folder beside `install_dir`.
//!
//! Refused, naming the path and the fix, and changing nothing: a path that exists and is not
//! that link (a real folder, a file, a link elsewhere), a missing parent folder. The config
//! check already refused relative paths, `..`, the site folder and shared paths.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use keyggdrasil::names::{PackageName, SupplierName};

use super::fsutil::sync_dir;
use super::{CURRENT, InstallError, io_err, random_suffix};
use crate::config::{PackageConfig, SitePaths};

/// Where the CMS finds `package`: its `install_dir`, else `<site>/packages/<s>/<p>/current`.
pub fn cms_path(paths: &SitePaths, package: &PackageConfig) -> PathBuf {
    package.install_dir.clone().unwrap_or_else(|| {
        absolute(&paths.root)
            .join("packages")
            .join(package.supplier.as_str())
            .join(package.name.as_str())
            .join(CURRENT)
    })
}

/// The site folder as an absolute path (the link must resolve from anywhere).
fn absolute(root: &Path) -> PathBuf {
    fs::canonicalize(root).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(root))
            .unwrap_or_else(|_| root.to_path_buf())
    })
}

/// The absolute path of the `current` link of `supplier/package`: what `install_dir` points at.
fn link_target(paths: &SitePaths, supplier: &SupplierName, package: &PackageName) -> PathBuf {
    absolute(&paths.root)
        .join("packages")
        .join(supplier.as_str())
        .join(package.as_str())
        .join(CURRENT)
}

/// What [`sync_install_dir`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChange {
    /// Nothing: the link was already right (or absent for a package not installed).
    Unchanged,
    /// The link was created.
    Created,
    /// The link of a package no longer installed was removed.
    Removed,
}

/// Makes `install_dir` match the install: for an installed package (`installed`) a symbolic
/// link to its `current` link (created if absent), for one not installed no link (only a link
/// continuum made is removed). Anything else at the path is an [`InstallError::Corrupt`] naming
/// the path and the fix, and is left alone. With `check_only`, changes nothing and only
/// reports what is wrong (a missing link is not wrong then).
pub fn sync_install_dir(
    paths: &SitePaths,
    supplier: &SupplierName,
    package: &PackageName,
    install_dir: &Path,
    installed: bool,
    check_only: bool,
) -> Result<LinkChange, InstallError> {
    let target = link_target(paths, supplier, package);
    let corrupt = |problem: String| InstallError::Corrupt {
        path: install_dir.to_path_buf(),
        problem,
    };
    match fs::symlink_metadata(install_dir) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let points =
                fs::read_link(install_dir).map_err(io_err("read the link", install_dir))?;
            if points != target {
                return Err(corrupt(format!(
                    "is a symbolic link to {}, not to {} (the install_dir of \
                     {supplier}/{package}); remove it if continuum should manage this path, \
                     or change install_dir",
                    points.display(),
                    target.display()
                )));
            }
            if installed || check_only {
                return Ok(LinkChange::Unchanged);
            }
            fs::remove_file(install_dir).map_err(io_err("remove the link", install_dir))?;
            sync_parent(install_dir)?;
            Ok(LinkChange::Removed)
        }
        Ok(meta) => Err(corrupt(format!(
            "is a {} that continuum did not make; move it away (continuum puts a symbolic link \
             to the verified {supplier}/{package} there), or change install_dir",
            if meta.is_dir() { "folder" } else { "file" }
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = install_dir.parent().unwrap_or(Path::new("/"));
            if !parent.is_dir() {
                return Err(corrupt(format!(
                    "cannot be made: its folder {} does not exist; create it, or change install_dir",
                    parent.display()
                )));
            }
            if !installed || check_only {
                return Ok(LinkChange::Unchanged);
            }
            let name = install_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = parent.join(format!(".{name}.continuum-{}", random_suffix()));
            std::os::unix::fs::symlink(&target, &tmp)
                .map_err(io_err("create the install_dir link", &tmp))?;
            if let Err(e) = fs::rename(&tmp, install_dir) {
                let _ = fs::remove_file(&tmp);
                return Err(io_err("rename the new link over", install_dir)(e));
            }
            sync_parent(install_dir)?;
            Ok(LinkChange::Created)
        }
        Err(e) => Err(io_err("inspect", install_dir)(e)),
    }
}

fn sync_parent(path: &Path) -> Result<(), InstallError> {
    sync_dir(path.parent().unwrap_or(Path::new("/")))
}
