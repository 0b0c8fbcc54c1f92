//! Repair after a crash or an interrupted run: the `current` link is the truth, the database
//! follows it, and leftovers are removed (see the module docs of [`super`]).

use std::fs;
use std::io;

use keyggdrasil::names::{PackageName, SupplierName, Version};
use rusqlite::Connection;

use super::fsutil::{is_real_dir, list_dir, remove_file_if_exists};
use super::place::prune;
use super::{CURRENT_NEW, InstallError, Installed, PackageDir, VERSIONS, io_err, unix_now};
use crate::config::SitePaths;
use crate::db;

/// Makes the database match the disk after a crash or an interrupted run: for every package
/// folder and every `installed` row, the `current` link is the truth (it only ever points at a
/// complete, verified version). Records the version it points at (with the recorded version as
/// the previous one, as the interrupted install or rollback would have), forgets packages
/// without a `current` link, deletes version folders other than the current and the previous
/// one (and their kept archives), and removes extraction and delta leftovers from `staging/`
/// (partial downloads are kept for resuming; downloads of versions already stored are deleted).
///
/// Every package is visited even if one fails; the first error is returned (and every one is
/// logged). A package folder in a state continuum never leaves it in (`current` not a link, or
/// pointing elsewhere than a kept version) is an [`InstallError::Corrupt`] and is left alone.
pub fn reconcile(paths: &SitePaths, conn: &Connection) -> Result<(), InstallError> {
    db::ensure_install_tables(conn)?;
    let now = unix_now();
    let mut packages: Vec<(String, String)> = db::installed(conn)?
        .into_iter()
        .map(|i| (i.supplier, i.package))
        .collect();
    for supplier in list_dir(&paths.packages)? {
        let supplier_dir = paths.packages.join(&supplier);
        if !is_real_dir(&supplier_dir) {
            continue;
        }
        for package in list_dir(&supplier_dir)? {
            if is_real_dir(&supplier_dir.join(&package)) {
                packages.push((supplier.clone(), package));
            }
        }
    }
    packages.sort();
    packages.dedup();

    let mut first_error = None;
    for (supplier, package) in packages {
        let (Ok(s), Ok(p)) = (SupplierName::parse(&supplier), PackageName::parse(&package)) else {
            tracing::warn!(
                "reconcile: ignoring {}/{}: not a supplier/package name",
                supplier.escape_debug(),
                package.escape_debug()
            );
            continue;
        };
        let pkg = PackageDir::new(paths, &s, &p);
        if let Err(e) = reconcile_package(paths, conn, &pkg, now) {
            tracing::error!("reconcile: {}: {e}", pkg.name);
            first_error.get_or_insert(e);
        }
    }
    if let Err(e) = clean_staging(paths, conn) {
        tracing::error!("reconcile: cleaning {}: {e}", paths.staging.display());
        first_error.get_or_insert(e);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Reads `current`: `None` if absent, the version it points at if it is a link to
/// `versions/<valid version>` that is a folder, [`InstallError::Corrupt`] otherwise.
pub(super) fn read_current(pkg: &PackageDir) -> Result<Option<String>, InstallError> {
    let current = pkg.current();
    let corrupt = |problem: String| InstallError::Corrupt {
        path: current.clone(),
        problem,
    };
    match fs::symlink_metadata(&current) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("inspect", &current)(e)),
        Ok(meta) if !meta.file_type().is_symlink() => {
            return Err(corrupt(
                "is not a symbolic link (continuum only ever makes it one)".into(),
            ));
        }
        Ok(_) => {}
    }
    let target = fs::read_link(&current).map_err(io_err("read the link", &current))?;
    let mut parts = target.components();
    let version = match (parts.next(), parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(dir)), Some(std::path::Component::Normal(v)), None)
            if dir == VERSIONS =>
        {
            v.to_str().and_then(|v| Version::parse(v).ok())
        }
        _ => None,
    };
    let Some(version) = version else {
        return Err(corrupt(format!(
            "points at {}, not at {VERSIONS}/<version>",
            target.display()
        )));
    };
    if !is_real_dir(&pkg.version(version.as_str())) {
        return Err(corrupt(format!(
            "points at {}, which is not a folder",
            target.display()
        )));
    }
    Ok(Some(version.as_str().to_owned()))
}

/// Makes one package's records match its `current` link, and removes what is not kept.
pub(super) fn reconcile_package(
    paths: &SitePaths,
    conn: &Connection,
    pkg: &PackageDir,
    now: u64,
) -> Result<(), InstallError> {
    if fs::symlink_metadata(&pkg.dir).is_ok() && !is_real_dir(&pkg.dir) {
        return Err(InstallError::Corrupt {
            path: pkg.dir.clone(),
            problem: "is not a folder".into(),
        });
    }
    let tmp = pkg.dir.join(CURRENT_NEW);
    if fs::symlink_metadata(&tmp).is_ok() {
        remove_file_if_exists(&tmp)?;
    }
    let row = db::installed_one(conn, &pkg.supplier, &pkg.package)?;
    let stored = db::stored_versions(conn, &pkg.supplier, &pkg.package)?;
    let is_kept = |v: &str| stored.iter().any(|s| s.version == v) && is_real_dir(&pkg.version(v));

    let Some(current) = read_current(pkg)? else {
        // Not installed: a first install stopped before its commit point, or the files were
        // removed. Forget it, and remove what an interrupted install left.
        if let Some(row) = &row {
            tracing::warn!(
                "{}: recorded as installed ({}) but {} does not exist; forgetting the record",
                pkg.name,
                row.version,
                pkg.current().display()
            );
            db::remove_installed(conn, &pkg.supplier, &pkg.package)?;
        }
        if is_real_dir(&pkg.dir) {
            prune(paths, conn, pkg, &[])?;
            for dir in [
                pkg.versions(),
                pkg.archives(),
                pkg.dir.clone(),
                pkg.supplier_dir.clone(),
            ] {
                // Only empty folders go; anything else stays for an operator to look at.
                let _ = fs::remove_dir(&dir);
            }
        } else {
            for s in &stored {
                db::forget_stored_version(conn, &pkg.supplier, &pkg.package, &s.version)?;
            }
        }
        return Ok(());
    };

    let Some(info) = stored.iter().find(|s| s.version == current) else {
        return Err(InstallError::Corrupt {
            path: pkg.current(),
            problem: format!(
                "points at version {current}, which the site database does not know; \
                 reinstall the package"
            ),
        });
    };
    let record = match &row {
        Some(r) if r.version == current => {
            let mut r = r.clone();
            r.digest.clone_from(&info.digest);
            r.channel.clone_from(&info.channel);
            if r.previous
                .as_deref()
                .is_some_and(|p| !is_kept(p) || p == current)
            {
                r.previous = None;
            }
            r
        }
        // An install or rollback stopped between its swap and its record: record what it
        // would have, with the recorded version as the previous one.
        other => Installed {
            supplier: pkg.supplier.clone(),
            package: pkg.package.clone(),
            channel: info.channel.clone(),
            version: current.clone(),
            digest: info.digest.clone(),
            previous: other
                .as_ref()
                .map(|r| r.version.clone())
                .filter(|p| is_kept(p)),
            installed_at: now,
        },
    };
    if row.as_ref() != Some(&record) {
        tracing::warn!(
            "{}: repairing the install record: {} is current (recorded: {})",
            pkg.name,
            record.version,
            row.as_ref().map_or("nothing", |r| r.version.as_str())
        );
        db::set_installed(conn, &record)?;
    }
    let keep: Vec<&str> = [Some(current.as_str()), record.previous.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    prune(paths, conn, pkg, &keep)
}

/// Removes extraction leftovers from `staging/`, and downloads of versions already stored.
pub(super) fn clean_staging(paths: &SitePaths, conn: &Connection) -> Result<(), InstallError> {
    if !is_real_dir(&paths.staging) {
        return Ok(());
    }
    let mut stored_digests = std::collections::HashSet::new();
    for i in db::installed(conn)? {
        for s in db::stored_versions(conn, &i.supplier, &i.package)? {
            stored_digests.insert(s.digest);
        }
    }
    for name in list_dir(&paths.staging)? {
        let path = paths.staging.join(&name);
        let leftover = ["tree-", "aside-", "trash-", "patch-", "rebuilt-"]
            .iter()
            .any(|p| name.starts_with(p));
        let done_download = name
            .strip_suffix(".zip")
            .is_some_and(|d| stored_digests.contains(d));
        if leftover {
            if is_real_dir(&path) {
                fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
            } else {
                fs::remove_file(&path).map_err(io_err("remove", &path))?;
            }
        } else if done_download {
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
        }
    }
    Ok(())
}
