//! `barge build`: a reproducible archive of a clean git checkout.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use keyggdrasil::archive::{ArchiveLimits, Manifest};
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::os::archive::build_archive;

use crate::config;
use crate::error::{Error, io_at};
use crate::output::{Output, warn_loudly};

/// Arguments of `barge build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The package's source folder (a git checkout).
    pub source: PathBuf,
    /// Package name.
    #[arg(long)]
    pub package: String,
    /// Version.
    #[arg(long)]
    pub version: String,
    /// Where to write the archive (default: `<dir>/dist/<package>-<version>.zip`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Build even if the checkout has uncommitted changes, or is not a git checkout at all
    /// (then the manifest names the all-zero commit). UNSAFE: the release cannot be rebuilt.
    #[arg(long)]
    pub allow_dirty: bool,
}

/// A built archive in memory.
pub struct Built {
    /// The archive bytes.
    pub bytes: Vec<u8>,
    /// Its manifest.
    pub manifest: Manifest,
    /// The package.
    pub package: PackageName,
    /// The version.
    pub version: Version,
}

pub(crate) fn git(source: &Path, args: &[&str]) -> Result<std::process::Output, Error> {
    Command::new("git")
        .arg("-C")
        .arg(source)
        .args(args)
        .output()
        .map_err(Error::RunGit)
}

/// The commit of `source`'s checkout, refusing a dirty or non-git tree unless `allow_dirty`.
pub fn git_commit(source: &Path, allow_dirty: bool) -> Result<String, Error> {
    let head = git(source, &["rev-parse", "HEAD"])?;
    if !head.status.success() {
        if allow_dirty {
            warn_loudly(&format!(
                "--allow-dirty: {} is not a git checkout; the manifest will name the all-zero \
                 commit and nobody can rebuild this archive from source.",
                source.display()
            ));
            return Ok("0".repeat(40));
        }
        return Err(Error::NotACheckout {
            path: source.to_path_buf(),
            stderr: String::from_utf8_lossy(&head.stderr).trim().to_owned(),
        });
    }
    let commit = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let status = git(source, &["status", "--porcelain"])?;
    if !status.status.success() {
        return Err(Error::GitFailed {
            what: "git status",
            path: source.to_path_buf(),
            stderr: String::from_utf8_lossy(&status.stderr).trim().to_owned(),
        });
    }
    if !status.stdout.is_empty() {
        if allow_dirty {
            warn_loudly(&format!(
                "--allow-dirty: {} has uncommitted changes; the archive does NOT match commit \
                 {commit} and cannot be reproduced from it.",
                source.display()
            ));
        } else {
            return Err(Error::DirtyTree {
                path: source.to_path_buf(),
            });
        }
    }
    Ok(commit)
}

/// Builds the archive of `source` for `supplier/package` at `version` in memory.
pub fn build(
    supplier: &SupplierName,
    source: &Path,
    package: &str,
    version: &str,
    allow_dirty: bool,
) -> Result<Built, Error> {
    let package = parse_package(package)?;
    let version = parse_version(version)?;
    let commit = git_commit(source, allow_dirty)?;
    build_tree(supplier, source, package, version, commit)
}

/// Builds the archive of the tree at `source` with a manifest naming `commit`, without asking
/// git anything: what `barge build` does once it knows the commit, and what `verify-build` does
/// on a fresh checkout of a logged commit.
pub fn build_tree(
    supplier: &SupplierName,
    source: &Path,
    package: PackageName,
    version: Version,
    commit: String,
) -> Result<Built, Error> {
    let manifest = Manifest::new(
        format!("{}/{}", supplier.as_str(), package.as_str()),
        version.as_str(),
        commit,
    )
    .map_err(Error::Manifest)?;
    let mut out = Cursor::new(Vec::new());
    build_archive(source, &manifest, &mut out, &ArchiveLimits::default()).map_err(|e| {
        Error::BuildArchive {
            path: source.to_path_buf(),
            source: e,
        }
    })?;
    Ok(Built {
        bytes: out.into_inner(),
        manifest,
        package,
        version,
    })
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_at("could not create", parent))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(io_at("could not write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_at("could not write", path))
}

/// Parses a package name given on the command line.
pub fn parse_package(text: &str) -> Result<PackageName, Error> {
    PackageName::parse(text).map_err(|source| Error::BadName {
        what: "package name",
        value: text.to_owned(),
        source,
    })
}

/// Parses a version given on the command line.
pub fn parse_version(text: &str) -> Result<Version, Error> {
    Version::parse(text).map_err(|source| Error::BadName {
        what: "version",
        value: text.to_owned(),
        source,
    })
}

/// Parses a supplier name given on the command line.
pub fn parse_supplier(text: &str) -> Result<SupplierName, Error> {
    SupplierName::parse(text).map_err(|source| Error::BadName {
        what: "supplier name",
        value: text.to_owned(),
        source,
    })
}

/// The default archive path.
pub fn default_out(dir: &Path, built: &Built) -> PathBuf {
    dir.join("dist").join(format!(
        "{}-{}.zip",
        built.package.as_str(),
        built.version.as_str()
    ))
}

/// Runs `barge build`.
pub fn run(dir: &Path, out: &Output, a: Args) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let built = build(
        &cfg.supplier,
        &a.source,
        &a.package,
        &a.version,
        a.allow_dirty,
    )?;
    let path = a.out.clone().unwrap_or_else(|| default_out(dir, &built));
    write_file(&path, &built.bytes)?;
    let (size, digest) =
        keyggdrasil::filesig::archive_digest(&built.bytes[..]).map_err(Error::Hash)?;
    out.say(format!(
        "Built {} {} from commit {}\narchive: {} ({size} bytes)\ndigest:  {}",
        built.manifest.package(),
        built.manifest.version(),
        built.manifest.git_commit(),
        path.display(),
        hex::encode(digest)
    ));
    out.json(serde_json::json!({
        "package": built.manifest.package(),
        "version": built.manifest.version(),
        "commit": built.manifest.git_commit(),
        "archive": path,
        "size": size,
        "digest": hex::encode(digest),
    }));
    Ok(())
}
