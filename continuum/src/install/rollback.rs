//! `continuum rollback`: point `current` back at the kept previous version, then record it
//! (the same order as an install, so the same repair applies after a crash).

use keyggdrasil::names::{PackageName, SupplierName};
use rusqlite::Connection;

use super::fsutil::{remove_file_if_exists, sync_dir};
use super::place::point_current;
use super::reconcile::reconcile_package;
use super::{InstallError, Installed, PackageDir, unix_now};
use crate::config::SitePaths;
use crate::db;

/// Swaps `current` back to the previous version of `supplier/package` (atomically, like an
/// install) and records it; the version rolled back from becomes the previous one, so a
/// rollback can itself be rolled back.
///
/// Note that an update with a policy that allows the newer version installs it again; the
/// caller must hold it back if it should stay rolled back.
pub fn rollback(
    paths: &SitePaths,
    conn: &Connection,
    supplier: &SupplierName,
    package: &PackageName,
) -> Result<Installed, InstallError> {
    db::ensure_install_tables(conn)?;
    let now = unix_now();
    let pkg = PackageDir::new(paths, supplier, package);
    reconcile_package(paths, conn, &pkg, now)?;
    let Some(current) = db::installed_one(conn, &pkg.supplier, &pkg.package)? else {
        return Err(InstallError::NotInstalled { package: pkg.name });
    };
    let no_previous = || InstallError::NoPrevious {
        package: pkg.name.clone(),
        version: current.version.clone(),
    };
    let previous = current.previous.clone().ok_or_else(no_previous)?;
    // `reconcile_package` keeps `previous` only if its folder and its record exist.
    let stored = db::stored_versions(conn, &pkg.supplier, &pkg.package)?
        .into_iter()
        .find(|s| s.version == previous)
        .ok_or_else(no_previous)?;
    point_current(&pkg, &previous)?;
    let record = Installed {
        supplier: pkg.supplier.clone(),
        package: pkg.package.clone(),
        channel: stored.channel,
        version: previous,
        digest: stored.digest,
        previous: Some(current.version.clone()),
        installed_at: now,
    };
    if let Err(e) = db::set_installed(conn, &record) {
        if let Err(swap) = point_current(&pkg, &current.version) {
            tracing::error!(
                "{}: recording the rollback failed and swapping back failed too ({swap}); \
                 the next run repairs the record",
                pkg.name
            );
        }
        return Err(e.into());
    }
    Ok(record)
}

/// Stops serving `supplier/package`: removes its `current` link, then (as the repair after a
/// crash would) its install record, its kept version folders and their records, and its empty
/// folders. Returns the version that was installed, if any. The config is not touched: the
/// caller decides whether the package stays tracked.
///
/// Removing the link is the commit point: a crash before it leaves the install as it was, a
/// crash after it leaves a package that the next run's repair finishes removing
/// ([`super::reconcile`] forgets a package without a `current` link). Call it under the site's
/// lock.
pub fn uninstall(
    paths: &SitePaths,
    conn: &Connection,
    supplier: &SupplierName,
    package: &PackageName,
) -> Result<Option<String>, InstallError> {
    db::ensure_install_tables(conn)?;
    let now = unix_now();
    let pkg = PackageDir::new(paths, supplier, package);
    reconcile_package(paths, conn, &pkg, now)?;
    let was = db::installed_one(conn, &pkg.supplier, &pkg.package)?.map(|i| i.version);
    remove_file_if_exists(&pkg.current())?;
    if pkg.dir.is_dir() {
        sync_dir(&pkg.dir)?;
    }
    reconcile_package(paths, conn, &pkg, now)?;
    Ok(was)
}
