//! Delta patches between stored archives (docs/deltas.md): when the archive of a release is
//! stored, the channel makes a patch to it from the archives of the [`BASES_PER_RELEASE`]
//! newest earlier versions of the same package whose archives it has, stores each under
//! `<data>/patches/<base hex>/<target hex>`, records it in the `patches` table, and publishes
//! it as `public/patch/<base hex>/<target hex>`. `GET /v1/patches/{base}/{target}` serves it.
//!
//! Off the request path and bounded: one thread makes the patches, one release at a time, from
//! a queue of at most [`QUEUE`] releases; a release that finds the queue full gets no patches
//! (it is only an optimisation: sites then download the full archive) and a warning says so.
//! The thread holds at most one base and one target archive (together at most the 128 MiB of
//! [`keyggdrasil::delta::MAX_WINDOW_LOG`]; larger pairs get no patch) and the zstd encoder.
//! Appends never wait for it: it has its own database connection and only reads the
//! `releases`/`archives` tables and writes `patches`.
//!
//! Patches need no trust (a site checks the rebuilt archive against the log), so the channel
//! does not sign them; it only checks that the stored copies of base and target still have
//! their logged size and digest before making one, so that a copy damaged on disk does not
//! become a patch that every site downloads for nothing.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use keyggdrasil::delta;
use keyggdrasil::names::Version;
use rusqlite::Connection;

use crate::config::Paths;
use crate::store;

/// How many earlier versions each new release gets a patch from: a site that skipped one
/// release still updates by patch.
pub const BASES_PER_RELEASE: usize = 2;

/// Releases waiting for their patches, at most.
pub const QUEUE: usize = 64;

/// A stored release archive to make patches to.
#[derive(Debug, Clone)]
pub struct Job {
    /// The release's supplier.
    pub supplier: String,
    /// The release's package.
    pub package: String,
    /// The release's version.
    pub version: Version,
    /// The logged size of its archive.
    pub size: u64,
    /// The logged BLAKE2b-512 of its archive.
    pub digest: [u8; 64],
}

/// The handle to the patch thread. Dropping it ends the thread after its current job.
#[derive(Debug)]
pub struct PatchMaker {
    tx: Option<SyncSender<Job>>,
}

impl PatchMaker {
    /// Starts the patch thread for the channel whose files are at `paths`. If the thread
    /// cannot be started, patches are off (logged) and everything else works as before.
    pub fn start(paths: &Paths) -> Self {
        let (tx, rx) = sync_channel(QUEUE);
        let paths = paths.clone();
        let started = std::thread::Builder::new()
            .name("patch-maker".into())
            .spawn(move || run(&paths, &rx));
        match started {
            Ok(_) => Self { tx: Some(tx) },
            Err(e) => {
                tracing::warn!(error = %e, "could not start the patch thread; no delta patches");
                Self { tx: None }
            }
        }
    }

    /// Queues `job` without waiting; a full queue drops it (logged).
    pub fn request(&self, job: Job) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => tracing::warn!(
                release = %format!("{}/{} {}", job.supplier, job.package, job.version),
                "the patch queue is full; this release gets no delta patches"
            ),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Where the patch from `base` to `target` is stored: `<data>/patches/<base>/<target>` (hex;
/// two levels, as one name of 257 characters is over most file systems' limit).
pub fn patch_path(paths: &Paths, base: &[u8; 64], target: &[u8; 64]) -> PathBuf {
    patches_dir(paths)
        .join(hex::encode(base))
        .join(hex::encode(target))
}

/// `<data>/patches/`, beside `<data>/archives/`.
fn patches_dir(paths: &Paths) -> PathBuf {
    paths
        .archives
        .parent()
        .unwrap_or(Path::new("."))
        .join("patches")
}

fn run(paths: &Paths, rx: &Receiver<Job>) {
    let mut conn: Option<Connection> = None;
    while let Ok(job) = rx.recv() {
        if conn.is_none() {
            match store::open(&paths.db) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "patch thread: could not open the database");
                    continue;
                }
            }
        }
        let Some(c) = &conn else { continue };
        let name = format!("{}/{} {}", job.supplier, job.package, job.version);
        match make_for(paths, c, &job) {
            Ok(0) => {}
            Ok(n) => tracing::info!(release = %name, patches = n, "made delta patches"),
            Err(e) => tracing::warn!(release = %name, error = %e, "could not make delta patches"),
        }
    }
}

/// Makes the missing patches to `job`'s archive from the [`BASES_PER_RELEASE`] newest earlier
/// versions with stored archives; returns how many were made. Also what a test or a repair
/// tool can call directly (it is idempotent).
pub fn make_for(paths: &Paths, conn: &Connection, job: &Job) -> Result<usize, String> {
    if delta::max_patch_bytes(job.size) == 0 {
        // Too small to be worth a patch (delta::MIN_TARGET_BYTES).
        return Ok(0);
    }
    let mut bases: Vec<(Version, u64, [u8; 64])> =
        store::stored_package_archives(conn, &job.supplier, &job.package)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter_map(|(v, size, digest)| Version::parse(&v).ok().map(|v| (v, size, digest)))
            .filter(|(v, _, digest)| *v < job.version && *digest != job.digest)
            .collect();
    bases.sort_by(|a, b| b.0.cmp(&a.0));
    bases.truncate(BASES_PER_RELEASE);
    let mut target: Option<Vec<u8>> = None;
    let mut made = 0;
    for (version, size, base_digest) in bases {
        if store::patch_size(conn, &base_digest, &job.digest)
            .map_err(|e| e.to_string())?
            .is_some()
        {
            continue;
        }
        if delta::window_log(size, job.size).is_none() {
            tracing::debug!(base = %version, "base and target too large for a patch");
            continue;
        }
        if target.is_none() {
            target = Some(read_stored(paths, &job.digest, job.size)?);
        }
        let Some(target) = &target else { continue };
        // A base that cannot be used (damaged on disk) costs only its own patch.
        let base = match read_stored(paths, &base_digest, size) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(base = %version, error = %e, "no patch from this base");
                continue;
            }
        };
        let patch = delta::make_patch(&base, target).map_err(|e| e.to_string())?;
        drop(base);
        let len = patch.len() as u64;
        if len > delta::max_patch_bytes(job.size) {
            tracing::info!(base = %version, patch = len, target = job.size, "patch not worth keeping");
            continue;
        }
        let path = patch_path(paths, &base_digest, &job.digest);
        store_file(&path, &patch)?;
        store::add_patch(conn, &base_digest, &job.digest, len).map_err(|e| e.to_string())?;
        if let Err(e) =
            crate::publish::publish_patch(&paths.public, &path, &base_digest, &job.digest)
        {
            tracing::warn!(error = %e, "could not publish the patch as a static file");
        }
        made += 1;
    }
    Ok(made)
}

/// Reads a stored archive, checking its size and unkeyed digest against the log's.
fn read_stored(paths: &Paths, digest: &[u8; 64], size: u64) -> Result<Vec<u8>, String> {
    let path = crate::api::archive_path(paths, digest);
    let len = fs::metadata(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if len != size {
        return Err(format!(
            "{} is {len} bytes, the log says {size}",
            path.display()
        ));
    }
    let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (n, found) = keyggdrasil::filesig::archive_digest(&bytes[..])
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if n != size || found != *digest {
        return Err(format!(
            "{} does not match its logged digest",
            path.display()
        ));
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` by a synced temporary file renamed into place, then syncs the
/// folder.
fn store_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(format!(
        ".patch-{}",
        hex::encode(keyggdrasil::os::random::bytes::<12>())
    ));
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(err(e));
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(err)
}
