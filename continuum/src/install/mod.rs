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
//!     archives/<digest hex>.zip       the verified archive of a kept version (only current and
//!                                     previous): the base of a delta patch (docs/deltas.md)
//!     .current.new                    transient: the next `current`, renamed over it
//! <site>/staging/                     (mode 0700)
//!     <digest hex>.zip                an archive download, partial or complete, one per digest
//!     patch-<random>                  a delta patch download in progress
//!     rebuilt-<random>                an archive being rebuilt from a patch (not yet checked)
//!     tree-<random>/                  an extraction in progress
//!     aside-<random>/                 a kept version folder set aside while a fresh copy of the
//!                                     same version replaces it
//!     trash-<random>/                 a version folder on its way out
//! ```
//!
//! The web server (or CMS) loads a package through `packages/<supplier>/<package>/current`,
//! or through the package's `install_dir`, a symbolic link to that `current` link which
//! continuum makes where the CMS expects the package ([`sync_install_dir`]); `current` stays
//! the one atomic switch for both.
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
//! 1. rebuild `staging/<digest>.zip` from a delta patch to the installed version's kept archive
//!    ([`delta`]), or, if that is off or fails in any way, download it (resumable); verify it
//!    (the same check either way), extract into `staging/tree-*`, check the manifest, fsync
//!    every file and folder of the tree;
//! 2. rename the tree to `versions/<version>` (setting a kept copy of that version aside
//!    first), fsync `versions/`;
//! 3. record the version in `stored_versions`;
//! 4. **the commit point**: create `.current.new -> versions/<version>`, rename it over
//!    `current`, fsync the package folder;
//! 5. record the install in `installed` (version, digest, previous version);
//! 6. move the download to `archives/<digest>.zip` (the base of the next delta), delete
//!    version folders and kept archives other than those of the current and the previous one.
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
//! A delta patch is different: it needs no trust, so any failure with it (no kept archive or a
//! damaged one, no patch, a patch over half the archive, one that does not decode, rebuilds
//! more or fewer bytes than logged, or rebuilds bytes that fail the archive check) is logged as
//! a warning and the full archive is downloaded in the same run, as if there were no patch.
//!
//! Call [`reconcile`] at the start of every run, under the site's update lock: installs and
//! `reconcile` must not run at the same time (reconcile removes staging leftovers).

pub mod delta;
mod fetch;
mod fsutil;
mod install_dir;
mod place;
mod reconcile;
mod rollback;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use keyggdrasil::archive::ArchiveError;
use keyggdrasil::archive_check::ArchiveMismatch;
use keyggdrasil::limits::Limits;
use keyggdrasil::names::{PackageName, SupplierName};
use keyggdrasil::state::VerifiedRelease;
use rusqlite::Connection;
use thiserror::Error;

use crate::config::SitePaths;
use crate::db::{self, DbError, StoredVersion};
use crate::error::ErrorKind;
use crate::transport::Http;
use fetch::{ensure_staging, fetch, prepare_tree, verify_download};
use fsutil::{remove_tree_quietly, sync_dir, sync_tree};
use place::{back_out, place, point_current, prune};
use reconcile::reconcile_package;

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
    /// A folder continuum writes into (`staging/`, a package's folders) belongs to another
    /// user (not root) or is writable by group or others, who could then swap what was
    /// verified; nothing was written there.
    #[error(transparent)]
    Untrusted(#[from] keyggdrasil::os::ownership::TrustError),
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

    /// [`ErrorKind::Verification`] if [`Self::is_verification`], [`ErrorKind::Unreachable`] if
    /// [`Self::is_unreachable`], [`ErrorKind::Local`] otherwise (disk, database, a package
    /// folder changed by hand, nothing installed or nothing to roll back to).
    pub fn kind(&self) -> ErrorKind {
        if self.is_verification() {
            ErrorKind::Verification
        } else if self.is_unreachable() {
            ErrorKind::Unreachable
        } else {
            ErrorKind::Local
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

/// Where an install gets its bytes: the archive's URLs in order and, for an update, the URLs of
/// a delta patch from the installed archive. A plain list of URLs has no patches;
/// [`crate::channel::ArchiveSources`] has the channel's.
pub trait Sources {
    /// The archive URLs, in the order to try them.
    fn archive_urls(&self) -> &[String];
    /// The URLs of a patch from the archive with BLAKE2b-512 `base` to the one with `target`,
    /// in order; empty when there is none to try.
    fn patch_urls(&self, base: &[u8; 64], target: &[u8; 64]) -> Vec<String> {
        let _ = (base, target);
        Vec::new()
    }
}

impl Sources for [String] {
    fn archive_urls(&self) -> &[String] {
        self
    }
}

impl Sources for Vec<String> {
    fn archive_urls(&self) -> &[String] {
        self
    }
}

impl<const N: usize> Sources for [String; N] {
    fn archive_urls(&self) -> &[String] {
        self
    }
}

/// Downloads, verifies and installs `release` from the first mirror URL in `urls` that
/// delivers it, and records it in the `installed` table (see the module docs for the order of
/// the steps). Installing the version that is already installed does nothing and returns its
/// record.
///
/// When a version is installed, its kept archive is there, and `urls` names patch URLs (with
/// `[transport] deltas` on), the archive is first rebuilt from a patch ([`delta`]); any
/// failure of that falls back to the full download in the same call.
///
/// On success `current` points at the new version, the previous one is kept for [`rollback`],
/// and older ones are deleted. On failure the site is as it was, and the error says what failed.
#[allow(clippy::too_many_arguments)]
pub fn install_release(
    paths: &SitePaths,
    conn: &Connection,
    http: &Http,
    urls: &(impl Sources + ?Sized),
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
    let mut by_patch = try_patch(
        http,
        paths,
        &pkg,
        before.as_ref(),
        urls,
        release,
        &download,
        &name,
    );
    // Bytes kept from an earlier, cut-short transfer may come from another mirror than the
    // rest. If such a mixed download fails its checks, the kept part may be the culprit, so it
    // is downloaded once more from the start (verify_download deleted it) before anything is
    // reported: a fresh download that fails is a real failure, from one transfer.
    // (Also when a mirror was left midway, stalled or cut, and the next one resumed.)
    // A mirror whose complete download fails the checks (a static mirror or CDN serving
    // other bytes) is passed over for the URLs after it; the error of the last one is reported.
    let mut remaining: &[String] = urls.archive_urls();
    let mut retried_resumed = false;
    // The file that was verified, kept open: extraction reads these bytes, not whatever is
    // at the path later.
    let patched = by_patch.as_mut().and_then(|used| used.verified.take());
    let verified = match patched {
        Some(file) => file,
        None => loop {
            let (resumed, used) = fetch(http, remaining, &download, size, &name)?;
            match verify_download(&download, release, &name) {
                Ok(file) => break file,
                Err(
                    e @ (InstallError::DigestMismatch { .. } | InstallError::BadSignature { .. }),
                ) => {
                    if resumed && !retried_resumed {
                        tracing::warn!("{e}; it was resumed from kept bytes, downloading it again");
                        retried_resumed = true;
                        continue;
                    }
                    match remaining.get(used + 1..) {
                        Some(rest) if !rest.is_empty() => {
                            tracing::warn!(url = %remaining[used], "{e}; trying the next mirror");
                            remaining = rest;
                        }
                        _ => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        },
    };
    let tree = paths.staging.join(format!("tree-{}", random_suffix()));
    let prepared = prepare_tree(verified, &tree, release, &name, limits).and_then(|()| {
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
    keep_archive(&pkg, &download, &record.digest, &name);
    if let Some(used) = by_patch {
        let saved = size.saturating_sub(used.bytes);
        tracing::info!(
            "{name}: updated by a delta patch of {} bytes from {} instead of the {size}-byte archive ({saved} bytes, {}% saved)",
            used.bytes,
            used.url,
            saved.saturating_mul(100) / size.max(1)
        );
    }
    Ok(record)
}

/// The delta attempt of an install (see [`delta`]): `Some` when `download` now holds the
/// checked archive rebuilt from a patch; `None` (after a warning saying why, unless there was
/// simply nothing to try) when the full archive must be downloaded.
#[allow(clippy::too_many_arguments)]
fn try_patch(
    http: &Http,
    paths: &SitePaths,
    pkg: &PackageDir,
    before: Option<&Installed>,
    urls: &(impl Sources + ?Sized),
    release: &VerifiedRelease,
    download: &Path,
    name: &str,
) -> Option<delta::PatchUsed> {
    let installed = before?;
    if keyggdrasil::delta::max_patch_bytes(release.size()) == 0 {
        // Too small to be worth a patch: no request for one.
        return None;
    }
    let base_digest: [u8; 64] = hex::decode(&installed.digest).ok()?.try_into().ok()?;
    let patch_urls = urls.patch_urls(&base_digest, &release.digest().0);
    if patch_urls.is_empty() || fs::symlink_metadata(download).is_ok() {
        // Deltas off, or a kept partial download to resume instead.
        return None;
    }
    let base = pkg.archive(&installed.digest);
    match delta::rebuild(
        http,
        &paths.staging,
        &base,
        &installed.digest,
        &patch_urls,
        release,
        download,
        name,
    ) {
        Ok(used) => Some(used),
        Err(no) if no.quiet => {
            tracing::info!(
                "{name}: no delta update from {} ({}); downloading the full archive",
                installed.version,
                no.why
            );
            None
        }
        Err(no) => {
            tracing::warn!(
                "{name}: no delta update from {} ({}); downloading the full archive",
                installed.version,
                no.why
            );
            None
        }
    }
}

/// Moves the verified download to `archives/<digest>.zip`, the base of the next delta update
/// (best effort: without it, the next update downloads the full archive).
fn keep_archive(pkg: &PackageDir, download: &Path, digest: &str, name: &str) {
    let kept = pkg.archive(digest);
    let moved = fsutil::create_dir_mode(&pkg.archives())
        .and_then(|()| fs::rename(download, &kept))
        .and_then(|()| fs::File::open(pkg.archives())?.sync_all());
    if let Err(e) = moved {
        tracing::warn!(
            "{name}: installed, but keeping its archive as {} failed: {e}",
            kept.display()
        );
        let _ = fs::remove_file(download);
    }
}

pub use install_dir::{LinkChange, cms_path, sync_install_dir};
pub use reconcile::reconcile;

/// Makes every tracked package's `install_dir` (see [`sync_install_dir`]) match the
/// `installed` table: a link to `current` for an installed package, none for one that is not.
/// Run at the start of an update (repairing a crash between an install and its link, and
/// refusing a misplaced `install_dir` before anything is fetched) and after its installs.
/// Stops at the first path that is wrong and returns its error.
pub fn sync_install_dirs(
    paths: &SitePaths,
    conn: &Connection,
    config: &crate::config::Config,
) -> Result<Vec<(String, LinkChange)>, InstallError> {
    db::ensure_install_tables(conn)?;
    let mut changes = Vec::new();
    for p in &config.packages {
        let Some(dir) = &p.install_dir else { continue };
        let installed = db::installed_one(conn, p.supplier.as_str(), p.name.as_str())?.is_some();
        let change = sync_install_dir(paths, &p.supplier, &p.name, dir, installed, false)?;
        if change != LinkChange::Unchanged {
            changes.push((format!("{}/{}", p.supplier, p.name), change));
        }
    }
    Ok(changes)
}
pub use rollback::{rollback, uninstall};

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
    /// `archives/`: the kept archives of the current and previous version.
    fn archives(&self) -> PathBuf {
        self.dir.join(delta::ARCHIVES)
    }
    /// The kept archive with this digest (hex, as recorded).
    fn archive(&self, digest: &str) -> PathBuf {
        self.archives().join(format!("{digest}.zip"))
    }
}

pub(super) fn io_err(
    operation: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> InstallError + use<> {
    let path = path.to_path_buf();
    move |source| InstallError::Io {
        operation,
        path,
        source,
    }
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(super) fn random_suffix() -> String {
    hex::encode(keyggdrasil::os::random::bytes::<8>())
}
