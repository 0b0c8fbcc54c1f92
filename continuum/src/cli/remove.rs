//! `continuum remove`.

use continuum::config::{Config, EditError, SitePaths};
use continuum::db;
use continuum::lock::SiteLock;

use super::{CliError, PackageArg, print_json};

/// Stops tracking `package` (saves continuum.toml without it), under the site's lock; with
/// `delete`, then also removes its installed files, kept versions and records
/// ([`continuum::install::uninstall`]). Without `delete` the files stay where they are, no
/// longer updated.
///
/// The config is saved first, then the files go: a crash in between leaves an untracked
/// package whose files are still there, which `remove --delete` again finishes (it accepts an
/// untracked package that is still installed). A package neither tracked nor installed is
/// a usage error naming it.
pub fn run(
    paths: &SitePaths,
    package: &PackageArg,
    delete: bool,
    json: bool,
) -> Result<(), CliError> {
    let _lock = SiteLock::try_acquire(paths).map_err(CliError::Lock)?;
    let mut cfg = Config::load(&paths.config)?;
    let conn = db::open(&paths.db)?;
    let installed = db::installed_one(&conn, package.supplier.as_str(), package.name.as_str())?;
    // Kept before untracking: with --delete the install_dir link must go with the files.
    let install_dir = cfg
        .packages
        .iter()
        .find(|p| p.supplier == package.supplier && p.name == package.name)
        .and_then(|p| p.install_dir.clone());
    let tracked = cfg.untrack(&package.supplier, &package.name);
    // Untracked is fine only for `--delete` of files still installed (a crash's leftover).
    let finishing = delete && installed.is_some();
    if !(tracked || finishing) {
        return Err(EditError::NotTracked {
            package: package.to_string(),
        }
        .into());
    }
    if tracked {
        cfg.save(&paths.config)?;
    }
    let deleted = if delete {
        let was = continuum::install::uninstall(paths, &conn, &package.supplier, &package.name)?;
        if let Some(dir) = &install_dir {
            // Only the link continuum made is removed; anything else there is reported.
            continuum::install::sync_install_dir(
                paths,
                &package.supplier,
                &package.name,
                dir,
                false,
                false,
            )?;
        }
        was
    } else {
        None
    };
    if json {
        return print_json(&serde_json::json!({
            "removed": package.to_string(),
            "was_tracked": tracked,
            "deleted_version": deleted,
            "files_kept": !delete && installed.is_some(),
        }));
    }
    if tracked {
        println!(
            "{package}: no longer tracked (removed from {})",
            paths.config.display()
        );
    }
    match (&deleted, &installed) {
        (Some(v), _) => println!(
            "{package}: deleted the installed version {v} and the versions kept for rollback"
        ),
        (None, Some(i)) if !delete => println!(
            "{package}: its files ({} under {}) were kept and are no longer updated; `continuum remove {package} --delete` removes them",
            i.version,
            paths.packages.display()
        ),
        _ => {}
    }
    Ok(())
}
