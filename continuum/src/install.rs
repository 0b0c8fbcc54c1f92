//! Installing verified releases: download, verify, extract, swap into place atomically, keep the
//! previous version, roll back, and repair after a crash.
//!
//! Only a [`VerifiedRelease`] (a release the key state allows) can be installed, and only after
//! its archive's size, unkeyed BLAKE2b-512 digest and Halite-compatible signature match the log,
//! and after [`extract_archive`] accepted it and its manifest names the same package, version
//! and commit. Nothing a site serves changes until the one atomic step, the rename of a new
//! `current` symbolic link over the old one.
//!
//! # On-disk layout
//!
//! ```text
//! <site>/packages/<supplier>/<package>/
//!     current -> versions/<version>   relative symbolic link: the installed version
//!     versions/<version>/             an extracted, verified tree (only current and previous)
//!     .current.new                    transient: the next `current`, renamed over it
//! <site>/staging/                     (mode 0700)
//!     <digest hex>.zip                an archive download, partial or complete, one per digest
//!     tree-<random>/                  an extraction in progress
//!     aside-<random>/                 a kept version folder set aside while a fresh copy of the
//!                                     same version replaces it
//!     trash-<random>/                 a version folder on its way out
//! ```
//!
//! The web server (or CMS) loads a package through `packages/<supplier>/<package>/current`.
//! `staging/` and `packages/` must be on the same file system (folders move by `rename`).
//!
//! In the archive, the manifest's `package` is `<supplier>/<package>` (for example
//! `acme/hello`), its `version` the release's version and its `git_commit` the logged commit.
//!
//! # Invariants
//!
//! - A folder `versions/<version>` only ever appears by an atomic `rename` of a staging tree
//!   that was completely extracted, checked and synced to disk; so `current`, which only ever
//!   points at such a folder, always names a complete, verified version, never a mix.
//! - The symbolic link is the truth; the `installed` table follows it. The table
//!   `stored_versions` knows the digest and channel of every kept version folder; its row is
//!   written *before* the folder can become current.
//!
//! # Order of the steps, and what a crash at each point leaves
//!
//! 1. download into `staging/<digest>.zip` (resumable), verify, extract into `staging/tree-*`,
//!    check the manifest, fsync every file and folder of the tree;
//! 2. rename the tree to `versions/<version>` (setting a kept copy of that version aside
//!    first), fsync `versions/`;
//! 3. record the version in `stored_versions`;
//! 4. **the commit point**: create `.current.new -> versions/<version>`, rename it over
//!    `current`, fsync the package folder;
//! 5. record the install in `installed` (version, digest, previous version);
//! 6. delete version folders other than the current and the previous one, and the download.
//!
//! A crash before step 4 leaves `current` on the old version: [`reconcile`] deletes the unused
//! new folder and its record. A crash after step 4 leaves `current` on the new version and the
//! `installed` row on the old one: [`reconcile`] records the new version with the old one as
//! its previous version, exactly what step 5 would have written. A crash in step 6 leaves
//! leftovers that [`reconcile`] removes. [`rollback`] follows the same order (swap, then
//! record), so the same repair applies.
//!
//! # Failures
//!
//! Any failure before the commit point undoes what was done (the site's files and database are
//! as before); a failure to record the install after the commit point swaps `current` back.
//! A download that does not match the log (digest, signature, more bytes than logged), or that
//! matches it but is unsafe or names another release in its manifest, is deleted and reported,
//! and the next mirror is *not* tried: a forgery from one mirror is evidence, not
//! something to paper over. A download cut short is kept, and the next attempt resumes it with
//! an HTTP `Range` request; if that resumed (mixed) download fails its digest or signature
//! check, it is deleted and downloaded once more from the start in the same run, and only a
//! fresh download that fails is reported.
//!
//! Call [`reconcile`] at the start of every run, under the site's update lock: installs and
//! `reconcile` must not run at the same time (reconcile removes staging leftovers).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use keyggdrasil::archive::{ArchiveError, Manifest};
use keyggdrasil::archive_check::ArchiveMismatch;
use keyggdrasil::limits::Limits;
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::os::archive::extract_archive;
use keyggdrasil::state::VerifiedRelease;
use rusqlite::Connection;
use thiserror::Error;

use crate::config::SitePaths;
use crate::db::{self, DbError, StoredVersion};
use crate::transport::{Http, TransportError};

pub use crate::db::Installed;

/// The name of the symbolic link to the installed version, in a package folder.
pub const CURRENT: &str = "current";
/// The folder of kept versions, in a package folder.
pub const VERSIONS: &str = "versions";
/// The transient name of the next `current` link.
const CURRENT_NEW: &str = ".current.new";

/// Why an install, rollback or repair failed. Whatever failed, the site is as it was before the
/// call (except that a cut-short download is kept for resuming).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The release's logged archive size is over this site's limit; nothing was downloaded.
    #[error("{release}: the archive is {size} bytes, over this site's limit of {limit} bytes")]
    ReleaseTooLarge {
        /// `supplier/package version`.
        release: String,
        /// The logged size.
        size: u64,
        /// `Limits::max_archive_bytes`.
        limit: u64,
    },
    /// A mirror sent more bytes than the log allows: the download was cut there and deleted.
    #[error(
        "{release}: {url} sent more than the {limit} bytes the log allows; the download was deleted"
    )]
    TooLarge {
        /// `supplier/package version`.
        release: String,
        /// The mirror URL.
        url: String,
        /// The logged size.
        limit: u64,
    },
    /// No mirror delivered the whole archive; the bytes received are kept and the next attempt
    /// resumes them.
    #[error(
        "{release}: download incomplete, {received} of {expected} bytes (kept to resume): {}",
        .errors.join("; ")
    )]
    Truncated {
        /// `supplier/package version`.
        release: String,
        /// Bytes received so far.
        received: u64,
        /// The logged size.
        expected: u64,
        /// One message per mirror tried.
        errors: Vec<String>,
    },
    /// No mirror could be reached, or none had the archive.
    #[error("{release}: no mirror delivered the archive: {}", .errors.join("; "))]
    Unreachable {
        /// `supplier/package version`.
        release: String,
        /// One message per mirror tried.
        errors: Vec<String>,
    },
    /// The downloaded archive's digest differs from the logged one; the download was deleted.
    #[error(
        "{release}: archive digest mismatch, the log says {expected} but the download has {found}; the download was deleted"
    )]
    DigestMismatch {
        /// `supplier/package version`.
        release: String,
        /// The logged digest (hex).
        expected: String,
        /// The digest of the download (hex).
        found: String,
    },
    /// The archive signature in the log does not verify over the download with the release's
    /// signing key; the download was deleted.
    #[error(
        "{release}: the archive signature does not verify with signing key {signer}; the download was deleted"
    )]
    BadSignature {
        /// `supplier/package version`.
        release: String,
        /// The release's signing key (hex).
        signer: String,
        /// The check that failed.
        #[source]
        source: ArchiveMismatch,
    },
    /// The extractor refused the archive (unsafe or malformed: [`ArchiveError::Rejected`]) or
    /// could not write it.
    #[error("{release}: the archive could not be extracted")]
    Archive {
        /// `supplier/package version`.
        release: String,
        /// The extractor's error, as it gave it.
        #[source]
        source: ArchiveError,
    },
    /// The archive's manifest names another package, version or commit than the release.
    #[error("{release}: the archive's manifest names {field} {found:?}, the log says {expected:?}")]
    ManifestMismatch {
        /// `supplier/package version`.
        release: String,
        /// `package`, `version` or `git_commit`.
        field: &'static str,
        /// What the log says.
        expected: String,
        /// What the manifest says.
        found: String,
    },
    /// The package is not installed.
    #[error("{package} is not installed")]
    NotInstalled {
        /// `supplier/package`.
        package: String,
    },
    /// There is no previous version to roll back to.
    #[error("{package} {version} has no previous version to roll back to")]
    NoPrevious {
        /// `supplier/package`.
        package: String,
        /// The installed version.
        version: String,
    },
    /// The package folder is not in a state continuum leaves it in (changed by hand?). Nothing
    /// was changed; an operator has to look.
    #[error("{path}: {problem}")]
    Corrupt {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A local file-system operation failed.
    #[error("could not {operation} {path}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The site database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl InstallError {
    /// True if the archive or a mirror failed verification (wrong digest or signature, more
    /// bytes than logged, an unsafe or malformed archive, a manifest that does not match): the
    /// supplier, a mirror or the network misbehaved. Retrying will not help.
    pub fn is_verification(&self) -> bool {
        match self {
            InstallError::TooLarge { .. }
            | InstallError::DigestMismatch { .. }
            | InstallError::BadSignature { .. }
            | InstallError::ManifestMismatch { .. } => true,
            InstallError::Archive { source, .. } => matches!(source, ArchiveError::Rejected(_)),
            _ => false,
        }
    }

    /// True if the archive could not be fetched (no mirror reachable, or cut short): retry later.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            InstallError::Truncated { .. } | InstallError::Unreachable { .. }
        )
    }
}

/// Downloads, verifies and installs `release` from the first mirror URL in `urls` that
/// delivers it, and records it in the `installed` table (see the module docs for the order of
/// the steps). Installing the version that is already installed does nothing and returns its
/// record.
///
/// On success `current` points at the new version, the previous one is kept for [`rollback`],
/// and older ones are deleted. On failure the site is as it was, and the error says what failed.
#[allow(clippy::too_many_arguments)]
pub fn install_release(
    paths: &SitePaths,
    conn: &Connection,
    http: &Http,
    urls: &[String],
    release: &VerifiedRelease,
    channel: &str,
    limits: &Limits,
    now: u64,
) -> Result<Installed, InstallError> {
    db::ensure_install_tables(conn)?;
    let pkg = PackageDir::new(paths, release.supplier(), release.package());
    let name = format!("{} {}", pkg.name, release.version());
    let version = release.version().as_str();
    let digest = release.digest().to_hex();

    reconcile_package(paths, conn, &pkg, now)?;
    let before = db::installed_one(conn, &pkg.supplier, &pkg.package)?;
    if let Some(i) = &before
        && i.version == version
    {
        if i.digest == digest {
            return Ok(i.clone());
        }
        return Err(InstallError::Corrupt {
            path: pkg.current(),
            problem: format!(
                "{name} is installed with digest {}, but the log says {digest}",
                i.digest
            ),
        });
    }

    // 1. Download, verify, extract, check, sync: nothing visible changes.
    let size = release.size();
    if size > limits.max_archive_bytes {
        return Err(InstallError::ReleaseTooLarge {
            release: name,
            size,
            limit: limits.max_archive_bytes,
        });
    }
    ensure_staging(&paths.staging)?;
    let download = paths.staging.join(format!("{digest}.zip"));
    // Bytes kept from an earlier, cut-short transfer may come from another mirror than the
    // rest. If such a mixed download fails its checks, the kept part may be the culprit, so it
    // is downloaded once more from the start (verify_download deleted it) before anything is
    // reported: a fresh download that fails is a real failure, from one transfer.
    let resumed = fs::symlink_metadata(&download).is_ok_and(|m| m.len() > 0);
    fetch(http, urls, &download, size, &name)?;
    match verify_download(&download, release, &name) {
        Err(first)
            if resumed
                && matches!(
                    first,
                    InstallError::DigestMismatch { .. } | InstallError::BadSignature { .. }
                ) =>
        {
            tracing::warn!("{first}; it was resumed from kept bytes, downloading it again");
            fetch(http, urls, &download, size, &name)?;
            verify_download(&download, release, &name)?;
        }
        r => r?,
    }
    let tree = paths.staging.join(format!("tree-{}", random_suffix()));
    let prepared = prepare_tree(&download, &tree, release, &name, limits).and_then(|()| {
        sync_tree(&tree)?;
        sync_dir(&paths.staging)
    });
    if let Err(e) = prepared {
        remove_tree_quietly(&tree);
        if e.is_verification() {
            // Signed and logged, yet unsafe or not what the log says: useless, and evidence
            // against its supplier, not something to retry.
            let _ = fs::remove_file(&download);
        }
        return Err(e);
    }

    // 2.–5. Place, record, swap, record.
    let previous = before.as_ref().map(|i| i.version.clone());
    let stored = StoredVersion {
        supplier: pkg.supplier.clone(),
        package: pkg.package.clone(),
        version: version.to_owned(),
        channel: channel.to_owned(),
        digest: digest.clone(),
        stored_at: now,
    };
    let record = Installed {
        supplier: pkg.supplier.clone(),
        package: pkg.package.clone(),
        channel: channel.to_owned(),
        version: version.to_owned(),
        digest,
        previous: previous.clone(),
        installed_at: now,
    };
    let placed = match place(paths, conn, &pkg, &tree, &stored) {
        Ok(placed) => placed,
        Err(e) => {
            remove_tree_quietly(&tree);
            return Err(e);
        }
    };
    if let Err(e) = point_current(&pkg, version) {
        back_out(paths, conn, &pkg, previous.as_deref(), placed);
        return Err(e);
    }
    if let Err(e) = db::set_installed(conn, &record) {
        // Not recorded: go back to the old version, so that files and database agree again.
        back_out(paths, conn, &pkg, previous.as_deref(), placed);
        return Err(e.into());
    }

    // 6. Clean up (best effort: leftovers are removed by the next `reconcile`).
    if let Some(aside) = placed.aside {
        remove_tree_quietly(&aside);
    }
    let keep: Vec<&str> = [Some(version), previous.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if let Err(e) = prune(paths, conn, &pkg, &keep) {
        tracing::warn!("{name}: installed, but removing old versions failed: {e}");
    }
    if let Err(e) = fs::remove_file(&download) {
        tracing::warn!(
            "{name}: installed, but removing the download {} failed: {e}",
            download.display()
        );
    }
    Ok(record)
}

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

/// Makes the database match the disk after a crash or an interrupted run: for every package
/// folder and every `installed` row, the `current` link is the truth (it only ever points at a
/// complete, verified version). Records the version it points at (with the recorded version as
/// the previous one, as the interrupted install or rollback would have), forgets packages
/// without a `current` link, deletes version folders other than the current and the previous
/// one, and removes extraction leftovers from `staging/` (partial downloads are kept for
/// resuming; downloads of versions already stored are deleted).
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

/// The folder of one package and the names used in messages and the database.
struct PackageDir {
    supplier: String,
    package: String,
    /// `supplier/package`.
    name: String,
    /// `packages/<supplier>`.
    supplier_dir: PathBuf,
    /// `packages/<supplier>/<package>`.
    dir: PathBuf,
}

impl PackageDir {
    fn new(paths: &SitePaths, supplier: &SupplierName, package: &PackageName) -> Self {
        // Supplier and package names are validated: one safe path component each.
        let supplier_dir = paths.packages.join(supplier.as_str());
        Self {
            supplier: supplier.as_str().to_owned(),
            package: package.as_str().to_owned(),
            name: format!("{supplier}/{package}"),
            dir: supplier_dir.join(package.as_str()),
            supplier_dir,
        }
    }
    fn current(&self) -> PathBuf {
        self.dir.join(CURRENT)
    }
    fn versions(&self) -> PathBuf {
        self.dir.join(VERSIONS)
    }
    fn version(&self, version: &str) -> PathBuf {
        self.versions().join(version)
    }
}

fn io_err(operation: &'static str, path: &Path) -> impl FnOnce(io::Error) -> InstallError + use<> {
    let path = path.to_path_buf();
    move |source| InstallError::Io {
        operation,
        path,
        source,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_suffix() -> String {
    hex::encode(keyggdrasil::os::random::bytes::<8>())
}

// ----- download and verification -----

/// Creates `staging/` (mode 0700: the extractor must not race anyone inside it).
fn ensure_staging(staging: &Path) -> Result<(), InstallError> {
    if is_real_dir(staging) {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(staging) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && is_real_dir(staging) => Ok(()),
        Err(e) => Err(io_err("create folder", staging)(e)),
    }
}

/// Downloads into `dest` (resuming what is there) from the first URL that delivers all `size`
/// bytes. Unreachable mirrors and cut-short downloads move on to the next URL; more bytes than
/// `size` stops at once (the transport deleted them).
fn fetch(
    http: &Http,
    urls: &[String],
    dest: &Path,
    size: u64,
    name: &str,
) -> Result<(), InstallError> {
    let mut errors = Vec::new();
    for url in urls {
        match http.download(url, dest, size) {
            Ok((_, got)) if got == size => return Ok(()),
            Ok((200 | 206, got)) => errors.push(format!(
                "{url}: connection closed after {got} of {size} bytes"
            )),
            Ok((status, _)) => errors.push(format!("{url}: HTTP status {status}")),
            Err(TransportError::TooLarge { url, limit }) => {
                // The transport removed the file; make sure, whatever happened.
                let _ = fs::remove_file(dest);
                return Err(InstallError::TooLarge {
                    release: name.to_owned(),
                    url,
                    limit,
                });
            }
            Err(TransportError::File { path, source }) => {
                return Err(InstallError::Io {
                    operation: "write the download",
                    path,
                    source,
                });
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        errors.push("no mirror URL".to_owned());
    }
    let received = fs::symlink_metadata(dest).map(|m| m.len()).unwrap_or(0);
    if received > 0 {
        Err(InstallError::Truncated {
            release: name.to_owned(),
            received,
            expected: size,
            errors,
        })
    } else {
        Err(InstallError::Unreachable {
            release: name.to_owned(),
            errors,
        })
    }
}

/// Checks size, digest and signature in one pass over the file; deletes it on any mismatch.
fn verify_download(
    download: &Path,
    release: &VerifiedRelease,
    name: &str,
) -> Result<(), InstallError> {
    let file = fs::File::open(download).map_err(io_err("open the download", download))?;
    let failure = match release.check_archive(file) {
        Ok(_) => None,
        Err(ArchiveMismatch::Io(e)) => return Err(io_err("read the download", download)(e)),
        Err(ArchiveMismatch::TooLong { .. } | ArchiveMismatch::Truncated { .. }) => {
            // `fetch` only returns with exactly `size` bytes; the file changed under us.
            Some(InstallError::Truncated {
                release: name.to_owned(),
                received: fs::symlink_metadata(download).map(|m| m.len()).unwrap_or(0),
                expected: release.size(),
                errors: vec![format!("{} changed size", download.display())],
            })
        }
        Err(ArchiveMismatch::Digest { expected, found }) => Some(InstallError::DigestMismatch {
            release: name.to_owned(),
            expected,
            found,
        }),
        Err(source) => Some(InstallError::BadSignature {
            release: name.to_owned(),
            signer: release.signer().to_hex(),
            source,
        }),
    };
    match failure {
        None => Ok(()),
        Some(e) => {
            if let Err(rm) = fs::remove_file(download) {
                tracing::error!(
                    "{name}: could not delete the refused download {}: {rm}",
                    download.display()
                );
            }
            Err(e)
        }
    }
}

/// Extracts into the fresh folder `tree` and compares the manifest with the release.
fn prepare_tree(
    download: &Path,
    tree: &Path,
    release: &VerifiedRelease,
    name: &str,
    limits: &Limits,
) -> Result<(), InstallError> {
    let file = fs::File::open(download).map_err(io_err("open the download", download))?;
    let extracted =
        extract_archive(io::BufReader::new(file), tree, &limits.archive).map_err(|source| {
            InstallError::Archive {
                release: name.to_owned(),
                source,
            }
        })?;
    check_manifest(&extracted.manifest, release, name)
}

fn check_manifest(
    manifest: &Manifest,
    release: &VerifiedRelease,
    name: &str,
) -> Result<(), InstallError> {
    let package = format!("{}/{}", release.supplier(), release.package());
    for (field, expected, found) in [
        ("package", package.as_str(), manifest.package()),
        ("version", release.version().as_str(), manifest.version()),
        (
            "git_commit",
            release.commit().as_str(),
            manifest.git_commit(),
        ),
    ] {
        if expected != found {
            return Err(InstallError::ManifestMismatch {
                release: name.to_owned(),
                field,
                expected: expected.to_owned(),
                found: found.to_owned(),
            });
        }
    }
    Ok(())
}

// ----- placing, swapping, pruning -----

/// Returns to the state before the install after a failure at or after the commit point:
/// points `current` back at `previous` (or removes it), then undoes [`place`]. If `current`
/// cannot be put back, the new version stays (it is complete and verified) and the next
/// [`reconcile`] records it.
fn back_out(
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
struct Placed {
    /// Folders created for the package (outermost first).
    created: Vec<PathBuf>,
    /// Where a kept copy of the same version was set aside.
    aside: Option<PathBuf>,
    /// Whether the new tree was moved to `versions/<version>`.
    moved_in: bool,
    /// Whether `stored_versions` had a row for this version before.
    had_record: bool,
    version: String,
}

impl Placed {
    /// Undoes [`place`] (best effort, before the commit point): removes the new version folder,
    /// puts the set-aside copy back, restores its record, removes created folders.
    fn undo(self, paths: &SitePaths, conn: &Connection, pkg: &PackageDir) {
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
fn place(
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
fn point_current(pkg: &PackageDir, version: &str) -> Result<(), InstallError> {
    let tmp = pkg.dir.join(CURRENT_NEW);
    remove_file_if_exists(&tmp)?;
    symlink(&Path::new(VERSIONS).join(version), &tmp).map_err(io_err("create the link", &tmp))?;
    let current = pkg.current();
    fs::rename(&tmp, &current).map_err(io_err("rename the new link over", &current))?;
    sync_dir(&pkg.dir)
}

/// Points `current` back at `previous`, or removes it if there was no version before.
fn restore_current(pkg: &PackageDir, previous: Option<&str>) -> Result<(), InstallError> {
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

/// Deletes every entry of `versions/` other than `keep`, and forgets the stored versions not
/// kept. A folder is first renamed into `staging/` (atomic), then deleted there.
fn prune(
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
    for stored in db::stored_versions(conn, &pkg.supplier, &pkg.package)? {
        if !keep.contains(&stored.version.as_str()) {
            db::forget_stored_version(conn, &pkg.supplier, &pkg.package, &stored.version)?;
        }
    }
    Ok(())
}

// ----- repair -----

/// Reads `current`: `None` if absent, the version it points at if it is a link to
/// `versions/<valid version>` that is a folder, [`InstallError::Corrupt`] otherwise.
fn read_current(pkg: &PackageDir) -> Result<Option<String>, InstallError> {
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
fn reconcile_package(
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
            for dir in [pkg.versions(), pkg.dir.clone(), pkg.supplier_dir.clone()] {
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
fn clean_staging(paths: &SitePaths, conn: &Connection) -> Result<(), InstallError> {
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
        let leftover = ["tree-", "aside-", "trash-"]
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

// ----- file-system helpers -----

fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// The names in a folder (none if it does not exist). Names that are not UTF-8 are skipped:
/// continuum never creates them.
fn list_dir(dir: &Path) -> Result<Vec<String>, InstallError> {
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
fn create_dir_synced(dir: &Path) -> Result<bool, InstallError> {
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
    fs::create_dir(dir).map_err(io_err("create folder", dir))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(true)
}

fn remove_file_if_exists(path: &Path) -> Result<(), InstallError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

fn remove_tree_quietly(path: &Path) {
    if let Err(e) = fs::remove_dir_all(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!("could not remove {}: {e}", path.display());
    }
}

fn sync_dir(dir: &Path) -> Result<(), InstallError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err("sync folder", dir))
}

/// Syncs every file and folder of an extracted tree (no symbolic links: the extractor makes
/// none, and none is followed here), deepest first, so that the rename that publishes it
/// cannot reach the disk before its content.
fn sync_tree(root: &Path) -> Result<(), InstallError> {
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
