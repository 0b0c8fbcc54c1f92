//! `continuum rollback`.

use continuum::config::{Config, SitePaths};
use continuum::db;
use continuum::lock::SiteLock;
use continuum::revocation::Logs;
use keyggdrasil::names::Version;

use super::{CliError, PackageArg};

/// Points `package` back at its previous version under the site's lock, then pins it there in
/// the config so the next update does not install the newer version again. Refuses a previous
/// version that the log revoked (the release or its signing key) unless `allow_revoked`, and
/// then says loudly what it rolled back to.
pub fn run(paths: &SitePaths, package: &PackageArg, allow_revoked: bool) -> Result<(), CliError> {
    let mut cfg = Config::load(&paths.config)?;
    let conn = continuum::db::open(&paths.db)?;
    let _lock = SiteLock::try_acquire(paths).map_err(CliError::Lock)?;
    // Checked under the lock, against the version `install::rollback` will point at: the
    // recorded previous one (an update cannot change it meanwhile).
    let revoked = match db::installed_one(&conn, package.supplier.as_str(), package.name.as_str())?
        .and_then(|i| i.previous.map(|p| (i.channel, p)))
    {
        Some((channel, previous)) => {
            db::ensure_install_tables(&conn)?;
            let channel =
                db::stored_versions(&conn, package.supplier.as_str(), package.name.as_str())?
                    .into_iter()
                    .find(|s| s.version == previous)
                    .map_or(channel, |s| s.channel);
            Logs::default()
                .revocation(
                    &conn,
                    &channel,
                    package.supplier.as_str(),
                    package.name.as_str(),
                    &previous,
                )
                .map_err(|e| CliError::Site(continuum::site::SiteError::Log(Box::new(e))))?
                .map(|r| (previous, r))
        }
        None => None,
    };
    if let Some((version, r)) = &revoked {
        if !allow_revoked {
            return Err(CliError::RevokedTarget {
                package: package.to_string(),
                version: version.clone(),
                revocation: r.describe(),
            });
        }
        eprintln!(
            "WARNING: {package}: rolling back to {version} although {} (--allow-revoked)",
            r.describe()
        );
    }
    let done = continuum::install::rollback(paths, &conn, &package.supplier, &package.name)?;
    let pinned = Version::parse(&done.version).map_err(|source| CliError::StoredVersion {
        version: done.version.clone(),
        source,
    })?;
    cfg.pin(&package.supplier, &package.name, pinned);
    cfg.save(&paths.config)?;
    println!("{package}: rolled back to {}", done.version);
    post_rollback(paths, &cfg, package, &done);
    if let Some((_, r)) = &revoked {
        println!(
            "{package}: WARNING: {} is REVOKED: {}",
            done.version,
            r.describe()
        );
    }
    println!(
        "{package}: pinned to ={} so updates do not reinstall the newer version; \
         unpin with: continuum --dir {} install {package} --policy all",
        done.version,
        paths.root.display()
    );
    Ok(())
}

/// Runs the `post_rollback` hook (the package's own, else `[hooks]`), still under the lock. A
/// failure is told on stderr; the rollback stays and the exit code is unchanged.
fn post_rollback(
    paths: &SitePaths,
    cfg: &Config,
    package: &PackageArg,
    done: &continuum::install::Installed,
) {
    use continuum::hooks::{self, HookContext, HookEvent};
    let pkg = cfg
        .packages
        .iter()
        .find(|p| p.supplier == package.supplier && p.name == package.name);
    let Some(argv) = HookEvent::PostRollback.argv(cfg, pkg) else {
        return;
    };
    let ctx = HookContext {
        site: std::fs::canonicalize(&paths.root).unwrap_or_else(|_| paths.root.clone()),
        package: Some(package.to_string()),
        version: Some(done.version.clone()),
        previous: done.previous.clone(),
        install_dir: pkg.map(|p| continuum::install::cms_path(paths, p)),
        ..Default::default()
    };
    let report = hooks::run(argv, HookEvent::PostRollback, &ctx, hooks::timeout(cfg));
    if report.failed() {
        eprintln!("continuum: {}", report.note());
    }
}
