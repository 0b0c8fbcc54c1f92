//! `continuum rollback`.

use continuum::config::{Config, SitePaths};
use continuum::lock::SiteLock;
use keyggdrasil::names::Version;

use super::{CliError, PackageArg};

/// Points `package` back at its previous version under the site's lock, then pins it there in
/// the config so the next update does not install the newer version again.
pub fn run(paths: &SitePaths, package: &PackageArg) -> Result<(), CliError> {
    let mut cfg = Config::load(&paths.config)?;
    let conn = continuum::db::open(&paths.db)?;
    let _lock = SiteLock::try_acquire(paths).map_err(CliError::Lock)?;
    let done = continuum::install::rollback(paths, &conn, &package.supplier, &package.name)?;
    let pinned = Version::parse(&done.version).map_err(|source| CliError::StoredVersion {
        version: done.version.clone(),
        source,
    })?;
    cfg.pin(&package.supplier, &package.name, pinned);
    cfg.save(&paths.config)?;
    println!("{package}: rolled back to {}", done.version);
    println!(
        "{package}: pinned to ={} so updates do not reinstall the newer version; \
         unpin with: continuum --dir {} install {package} --policy all",
        done.version,
        paths.root.display()
    );
    Ok(())
}
