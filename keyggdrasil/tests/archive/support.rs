//! Helpers shared by the archive tests: sample trees, crafted zips, header patching.

use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use keyggdrasil::archive::{ArchiveError, ArchiveLimits, MANIFEST_NAME, Manifest, Rejection};
use keyggdrasil::os::archive::{ExtractedArchive, build_archive, extract_archive};
use tempfile::TempDir;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, System, ZipWriter};

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

pub fn manifest() -> Manifest {
    Manifest::new("acme/hello-plugin", "1.0.0", COMMIT).expect("valid manifest")
}

/// `fixtures/extensions/hello-plugin` at the workspace root.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/extensions/hello-plugin")
}

/// `fixtures/archive/<name>` at the workspace root.
pub fn archive_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/archive")
        .join(name)
}

pub fn try_build(dir: &Path, limits: &ArchiveLimits) -> Result<Vec<u8>, ArchiveError> {
    let mut out = Cursor::new(Vec::new());
    build_archive(dir, &manifest(), &mut out, limits)?;
    Ok(out.into_inner())
}

pub fn build(dir: &Path) -> Vec<u8> {
    try_build(dir, &ArchiveLimits::default()).expect("build")
}

/// Writes `content` at `root/rel` (creating folders) with `mode`.
pub fn write_file(root: &Path, rel: &str, content: &[u8], mode: u32) {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create folders");
    }
    fs::write(&path, content).expect("write file");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A small tree: files at two depths, an executable, an empty folder.
pub fn sample_tree() -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write_file(dir.path(), "plugin.php", b"<?php echo 'hi';\n", 0o644);
    write_file(dir.path(), "src/A.php", b"<?php class A {}\n", 0o644);
    write_file(dir.path(), "src/sub/B.php", b"<?php class B {}\n", 0o644);
    write_file(dir.path(), "bin/run", b"#!/bin/sh\necho run\n", 0o755);
    fs::create_dir(dir.path().join("empty")).expect("mkdir");
    dir
}

/// A place to extract into: `staging` under a private temporary folder, not created yet.
pub struct Target {
    pub root: TempDir,
    pub staging: PathBuf,
}

impl Target {
    pub fn new() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let staging = root.path().join("staging");
        Self { root, staging }
    }

    pub fn extract(
        &self,
        bytes: &[u8],
        limits: &ArchiveLimits,
    ) -> Result<ExtractedArchive, ArchiveError> {
        extract_archive(Cursor::new(bytes), &self.staging, limits)
    }

    /// The staging folder is gone and nothing else appeared.
    pub fn assert_untouched(&self) {
        assert!(
            fs::symlink_metadata(&self.staging).is_err(),
            "staging folder left behind"
        );
        assert_eq!(
            fs::read_dir(self.root.path()).expect("read root").count(),
            0,
            "something was written next to the staging folder"
        );
    }

    /// The staging folder exists and is empty, and nothing else appeared.
    pub fn assert_empty(&self) {
        assert_eq!(
            fs::read_dir(&self.staging)
                .expect("staging still there")
                .count(),
            0,
            "staging folder not emptied"
        );
        assert_eq!(
            fs::read_dir(self.root.path()).expect("read root").count(),
            1
        );
    }
}

/// Extracts `bytes` twice, into an absent and into an existing empty staging folder; both must
/// fail with a rejection and leave the staging folder as it was. Returns the rejection.
pub fn rejection(bytes: &[u8], limits: &ArchiveLimits) -> Rejection {
    let absent = Target::new();
    let first = absent
        .extract(bytes, limits)
        .expect_err("extraction must fail");
    absent.assert_untouched();

    let existing = Target::new();
    fs::create_dir(&existing.staging).expect("mkdir staging");
    let second = existing
        .extract(bytes, limits)
        .expect_err("extraction must fail");
    existing.assert_empty();
    assert_eq!(format!("{first:?}"), format!("{second:?}"));

    match first {
        ArchiveError::Rejected(rejection) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

pub fn rejection_default(bytes: &[u8]) -> Rejection {
    rejection(bytes, &ArchiveLimits::default())
}

pub fn options() -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .system(System::Unix)
        .unix_permissions(0o644)
}

pub type Writer = ZipWriter<Cursor<Vec<u8>>>;

/// A zip made with the `zip` crate's writer: no manifest unless `f` adds one.
pub fn craft_raw(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    f(&mut zip);
    zip.finish().expect("finish").into_inner()
}

/// A zip whose first entry is a valid manifest, then whatever `f` adds.
pub fn craft(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
    craft_raw(|zip| {
        add_manifest(zip);
        f(zip);
    })
}

pub fn add_manifest(zip: &mut Writer) {
    add(zip, MANIFEST_NAME, &manifest().to_canonical_json());
}

pub fn add(zip: &mut Writer, name: &str, data: &[u8]) {
    add_with(zip, name, data, options());
}

pub fn add_with(zip: &mut Writer, name: &str, data: &[u8], options: SimpleFileOptions) {
    zip.start_file(name, options).expect("start file");
    zip.write_all(data).expect("write");
}

pub fn add_raw_name(zip: &mut Writer, name: &[u8], data: &[u8]) {
    zip.start_file_with_options(options().name(name))
        .expect("start file");
    zip.write_all(data).expect("write");
}

/// A header field, patched in both the local header and the central directory.
#[derive(Clone, Copy, Debug)]
pub enum Field {
    Flags,
    Method,
    UncompressedSize,
}

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;

fn u16_at(bytes: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn put(bytes: &mut [u8], at: usize, width: usize, value: u32) {
    bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
}

/// Offsets of every local header, walking the entries from the start (no data descriptors:
/// the `zip` writer over a seekable output writes sizes into the headers).
fn local_headers(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 0;
    while at + 30 <= bytes.len() && u32_at(bytes, at) == LOCAL_SIG {
        offsets.push(at);
        at +=
            30 + u16_at(bytes, at + 26) + u16_at(bytes, at + 28) + u32_at(bytes, at + 18) as usize;
    }
    offsets
}

/// Offsets of every central directory header.
fn central_headers(bytes: &[u8]) -> Vec<usize> {
    let eocd = (0..=bytes.len() - 22)
        .rev()
        .find(|&at| u32_at(bytes, at) == EOCD_SIG)
        .expect("end of central directory");
    let count = u16_at(bytes, eocd + 10);
    let mut at = u32_at(bytes, eocd + 16) as usize;
    let mut offsets = Vec::new();
    for _ in 0..count {
        assert_eq!(u32_at(bytes, at), CENTRAL_SIG);
        offsets.push(at);
        at += 46 + u16_at(bytes, at + 28) + u16_at(bytes, at + 30) + u16_at(bytes, at + 32);
    }
    offsets
}

fn local_name(bytes: &[u8], at: usize) -> &[u8] {
    &bytes[at + 30..at + 30 + u16_at(bytes, at + 26)]
}

fn central_name(bytes: &[u8], at: usize) -> &[u8] {
    &bytes[at + 46..at + 46 + u16_at(bytes, at + 28)]
}

/// Sets `field` of the entry `name` to `value`, in both headers.
pub fn patch(bytes: &mut [u8], name: &[u8], field: Field, value: u32) {
    let (local, central, width) = match field {
        Field::Flags => (6, 8, 2),
        Field::Method => (8, 10, 2),
        Field::UncompressedSize => (22, 24, 4),
    };
    let mut hits = 0;
    for at in local_headers(bytes) {
        if local_name(bytes, at) == name {
            put(bytes, at + local, width, value);
            hits += 1;
        }
    }
    for at in central_headers(bytes) {
        if central_name(bytes, at) == name {
            put(bytes, at + central, width, value);
            hits += 1;
        }
    }
    assert!(
        hits > 0,
        "no entry named {:?}",
        String::from_utf8_lossy(name)
    );
}

/// Reads `field` of the entry `name` from its central header.
pub fn read_field(bytes: &[u8], name: &[u8], field: Field) -> u32 {
    let (offset, width) = match field {
        Field::Flags => (8, 2),
        Field::Method => (10, 2),
        Field::UncompressedSize => (24, 4),
    };
    let at = central_headers(bytes)
        .into_iter()
        .find(|&at| central_name(bytes, at) == name)
        .expect("entry");
    let mut value = [0u8; 4];
    value[..width].copy_from_slice(&bytes[at + offset..at + offset + width]);
    u32::from_le_bytes(value)
}

/// Renames entry `from` to `to` (same length) in the local header and, if `central`, in the
/// central directory too.
pub fn rename(bytes: &mut [u8], from: &[u8], to: &[u8], central: bool) {
    assert_eq!(from.len(), to.len());
    let mut hits = 0;
    for at in local_headers(bytes) {
        if local_name(bytes, at) == from {
            bytes[at + 30..at + 30 + to.len()].copy_from_slice(to);
            hits += 1;
        }
    }
    if central {
        for at in central_headers(bytes) {
            if central_name(bytes, at) == from {
                bytes[at + 46..at + 46 + to.len()].copy_from_slice(to);
                hits += 1;
            }
        }
    }
    assert!(
        hits > 0,
        "no entry named {:?}",
        String::from_utf8_lossy(from)
    );
}

/// The offset of the data of the entry `name` (from its local header).
pub fn data_offset(bytes: &[u8], name: &[u8]) -> usize {
    let at = local_headers(bytes)
        .into_iter()
        .find(|&at| local_name(bytes, at) == name)
        .expect("entry");
    at + 30 + u16_at(bytes, at + 26) + u16_at(bytes, at + 28)
}

/// Everything under `root`: (relative path, mode, content or None for folders), sorted.
pub fn listing(root: &Path) -> Vec<(String, u32, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for child in fs::read_dir(&dir).expect("read dir") {
            let path = child.expect("entry").path();
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_str()
                .expect("utf-8")
                .to_owned();
            let meta = fs::symlink_metadata(&path).expect("metadata");
            assert!(!meta.file_type().is_symlink(), "symlink at {rel}");
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                out.push((rel, mode, None));
                pending.push(path);
            } else {
                out.push((rel, mode, Some(fs::read(&path).expect("read"))));
            }
        }
    }
    out.sort();
    out
}
