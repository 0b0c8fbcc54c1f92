//! The archive extractor (`archive::extract_archive`) on arbitrary bytes, with small limits, into
//! a staging folder under /dev/shm (or the temporary folder) that is removed after each input.
//! The same bytes also go to the manifest parser and the archive path parser.
//!
//! Properties, besides never panicking:
//! - on error nothing is left: the staging folder (absent before) is absent again;
//! - on success the staging folder holds exactly the entries reported, nothing else (the manifest
//!   is not written), only regular files and folders (no symbolic link), files with the reported
//!   size and mode 0644 or 0755, folders with mode 0755; sizes and counts are within the limits;
//! - nothing is ever written beside the staging folder;
//! - a parsed manifest is canonical (`to_canonical_json` gives the input back); a parsed
//!   archive path is the input, has no `.`/`..`/empty component and stays under any base.
#![no_main]

use std::collections::BTreeSet;
use std::fs;
use std::io::Cursor;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use keyggdrasil::archive::{ArchiveLimits, ArchivePath, EntryKind, Manifest};
use keyggdrasil::os::archive::extract_archive;
use libfuzzer_sys::fuzz_target;

/// A private folder for this process, created once (tmpfs when there is one: fast, no disk).
static BASE: LazyLock<PathBuf> = LazyLock::new(|| {
    let root = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    // libFuzzer exits without running destructors, so the (empty) folders of earlier runs stay
    // behind: remove those whose process is gone.
    let prefix = "keyggdrasil-fuzz-archive-";
    if let Ok(children) = fs::read_dir(&root) {
        for child in children.flatten() {
            let name = child.file_name();
            let pid = name.to_str().and_then(|n| n.strip_prefix(prefix));
            if let Some(pid) = pid
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = fs::remove_dir_all(child.path());
            }
        }
    }
    let base = root.join(format!("{prefix}{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(&base).expect("cannot create the fuzzing folder");
    base
});

fn limits() -> ArchiveLimits {
    let mut l = ArchiveLimits::default();
    l.max_archive_size = 1 << 20;
    l.max_entries = 64;
    l.max_total_size = 1 << 20;
    l.max_file_size = 256 << 10;
    l.ratio_threshold = 16 << 10;
    l.max_path_len = 256;
    l.max_path_depth = 8;
    l.max_manifest_size = 4 << 10;
    l
}

/// Every path under `dir`, relative, with `/` separators; panics on anything but files and
/// folders.
fn walk(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
    for child in fs::read_dir(dir).expect("read staging folder") {
        let child = child.expect("read staging entry");
        let name = child.file_name().into_string().expect("names are UTF-8");
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let meta = fs::symlink_metadata(child.path()).expect("stat");
        assert!(
            meta.is_file() || meta.is_dir(),
            "{rel}: neither file nor folder"
        );
        if meta.is_dir() {
            walk(&child.path(), &rel, out);
        }
        out.insert(rel);
    }
}

fn extract(data: &[u8]) {
    let base = &*BASE;
    let staging = base.join("staging");
    let limits = limits();
    match extract_archive(Cursor::new(data), &staging, &limits) {
        Ok(done) => {
            let manifest = &done.manifest;
            assert_eq!(
                Manifest::from_canonical_json(&manifest.to_canonical_json())
                    .ok()
                    .as_ref(),
                Some(manifest)
            );
            assert!(done.entries.len() as u64 <= limits.max_entries);
            assert!(done.total_size <= limits.max_total_size);
            let mut listed = BTreeSet::new();
            let mut sum = 0u64;
            for e in &done.entries {
                let path = e.path.to_path_under(&staging);
                let meta = fs::symlink_metadata(&path).expect("reported entry exists");
                let mode = meta.permissions().mode() & 0o7777;
                match e.kind {
                    EntryKind::File { size, executable } => {
                        assert!(meta.is_file());
                        assert_eq!(meta.len(), size);
                        assert!(size <= limits.max_file_size);
                        assert_eq!(mode, if executable { 0o755 } else { 0o644 });
                        sum += size;
                    }
                    EntryKind::Directory => {
                        assert!(meta.is_dir());
                        assert_eq!(mode, 0o755);
                    }
                    _ => {}
                }
                listed.insert(e.path.as_str().to_owned());
                // Folders only implied by a file's path are created too.
                let mut parent = e.path.parent();
                while let Some(p) = parent {
                    listed.insert(p.as_str().to_owned());
                    parent = p.parent();
                }
            }
            assert_eq!(sum, done.total_size);
            let mut found = BTreeSet::new();
            walk(&staging, "", &mut found);
            assert_eq!(
                found, listed,
                "the staging folder does not hold exactly the entries"
            );
            fs::remove_dir_all(&staging).expect("remove staging folder");
        }
        Err(e) => {
            let _ = e.to_string();
            assert!(
                fs::symlink_metadata(&staging).is_err(),
                "a failed extraction left its staging folder: {e}"
            );
        }
    }
    let left: Vec<_> = fs::read_dir(base).expect("read base").collect();
    assert!(
        left.is_empty(),
        "something was written beside the staging folder"
    );
}

fuzz_target!(|data: &[u8]| {
    extract(data);

    if let Ok(m) = Manifest::from_canonical_json(data) {
        assert_eq!(m.to_canonical_json(), data);
    }
    if let Ok(p) = ArchivePath::from_bytes(data) {
        assert_eq!(p.as_str().as_bytes(), data);
        assert!(
            p.components()
                .all(|c| !c.is_empty() && c != "." && c != "..")
        );
        let base = Path::new("/base");
        let under = p.to_path_under(base);
        assert!(under.starts_with(base));
        assert_eq!(under.components().count(), 2 + p.depth());
    }
});
