//! The builder: reproducible bytes, the known answer, and refused source trees.

use std::fs;
use std::io::Cursor;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use keyggdrasil::archive::{
    ArchiveError, ArchiveLimits, EntryKind, Limit, MANIFEST_NAME, PathError, Rejection,
    SourceProblem,
};
use keyggdrasil::os::archive::build_archive;
use zip::ZipArchive;

use crate::support::{
    archive_fixture, build, fixture_dir, manifest, sample_tree, try_build, write_file,
};

/// BLAKE2b-512 of the archive of `fixtures/extensions/hello-plugin` with `support::manifest()`.
///
/// This digest pins the archive format: entry order, timestamps, modes, deflate level and the
/// deflate implementation. If this test fails, the bytes of every archive changed and nobody
/// can reproduce an old release with the new code: make sure that is intended, then update the
/// digest and `fixtures/archive/hello-plugin.zip` together.
const HELLO_PLUGIN_DIGEST: &str = "ce2e27485ea03c57e3797374df101309f96e384be3c9e8864a5d6ce8cb4dbb4fad1755ed6cdad3677561db20a77aebb4dc602d2789e742bf353573c44547dc63";

fn blake2b_512_hex(bytes: &[u8]) -> String {
    blake2b_simd::Params::new()
        .hash_length(64)
        .hash(bytes)
        .to_hex()
        .to_string()
}

#[test]
fn building_twice_gives_identical_bytes() {
    let tree = sample_tree();
    assert_eq!(build(tree.path()), build(tree.path()));
}

#[test]
fn times_permissions_and_creation_order_do_not_matter() {
    let files: [(&str, &[u8], u32); 5] = [
        ("plugin.php", b"<?php echo 'hi';\n", 0o644),
        ("src/A.php", b"<?php class A {}\n", 0o644),
        ("src/sub/B.php", b"<?php class B {}\n", 0o644),
        ("bin/run", b"#!/bin/sh\necho run\n", 0o755),
        ("zz/last.txt", b"last\n", 0o644),
    ];
    let first = tempfile::tempdir().expect("tempdir");
    for (rel, content, mode) in files {
        write_file(first.path(), rel, content, mode);
    }
    fs::create_dir(first.path().join("empty")).expect("mkdir");

    // The same content, created in the reverse order, with other modes (as a different umask
    // or a careless chmod would give) and other times.
    let second = tempfile::tempdir().expect("tempdir");
    fs::create_dir(second.path().join("empty")).expect("mkdir");
    for (i, (rel, content, mode)) in files.iter().rev().enumerate() {
        let other_mode = if mode & 0o111 != 0 {
            0o700
        } else {
            0o600 | ((i as u32 % 2) * 0o060)
        };
        write_file(second.path(), rel, content, other_mode);
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000 + i as u64 * 86_400);
        fs::File::options()
            .write(true)
            .open(second.path().join(rel))
            .expect("open")
            .set_modified(time)
            .expect("set mtime");
    }
    for dir in ["src", "src/sub", "bin", "zz", "empty"] {
        fs::File::open(second.path().join(dir))
            .expect("open folder")
            .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(42))
            .expect("set folder mtime");
    }
    fs::set_permissions(second.path().join("src"), fs::Permissions::from_mode(0o700))
        .expect("chmod");

    assert_eq!(build(first.path()), build(second.path()));
}

/// Set this variable to rewrite `fixtures/archive/hello-plugin.zip` from today's builder (then
/// update [`HELLO_PLUGIN_DIGEST`] with the digest the test prints).
const UPDATE_VAR: &str = "KEYGGDRASIL_UPDATE_ARCHIVE_FIXTURES";

#[test]
fn known_answer_for_the_hello_plugin_fixture() {
    let bytes = build(&fixture_dir());
    if std::env::var_os(UPDATE_VAR).is_some() {
        fs::write(archive_fixture("hello-plugin.zip"), &bytes).expect("write fixture");
        println!("hello-plugin.zip BLAKE2b-512: {}", blake2b_512_hex(&bytes));
    }
    assert_eq!(blake2b_512_hex(&bytes), HELLO_PLUGIN_DIGEST);
    let stored = fs::read(archive_fixture("hello-plugin.zip")).expect("stored fixture archive");
    assert!(
        bytes == stored,
        "the archive differs from fixtures/archive/hello-plugin.zip"
    );
}

#[test]
fn layout_manifest_first_sorted_fixed_metadata() {
    let bytes = build(sample_tree().path());
    let mut archive = ZipArchive::new(Cursor::new(bytes)).expect("zip");
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.expect("name").into_owned())
        .collect();
    assert_eq!(
        names,
        [
            MANIFEST_NAME,
            "bin/",
            "bin/run",
            "empty/",
            "plugin.php",
            "src/",
            "src/A.php",
            "src/sub/",
            "src/sub/B.php",
        ]
    );
    assert!(archive.comment().is_empty());
    for i in 0..archive.len() {
        let entry = archive.by_index(i).expect("entry");
        let time = entry.last_modified().expect("time");
        assert_eq!(
            (
                time.year(),
                time.month(),
                time.day(),
                time.hour(),
                time.minute(),
                time.second()
            ),
            (1980, 1, 1, 0, 0, 0)
        );
        assert_eq!(entry.system(), zip::System::Unix);
        assert!(
            entry.extra_data().is_none(),
            "{}",
            entry.name_raw().escape_ascii()
        );
        assert!(entry.comment().is_empty());
        let mode = entry.unix_mode().expect("mode");
        let expected = match entry.name_raw() {
            n if n.ends_with(b"/") => 0o040_755,
            b"bin/run" => 0o100_755,
            _ => 0o100_644,
        };
        assert_eq!(mode, expected, "{}", entry.name_raw().escape_ascii());
        if !entry.is_dir() {
            assert_eq!(entry.compression(), zip::CompressionMethod::Deflated);
        }
    }
}

#[test]
fn summary_lists_what_was_stored() {
    let tree = sample_tree();
    let mut out = Cursor::new(Vec::new());
    let summary = build_archive(
        tree.path(),
        &manifest(),
        &mut out,
        &ArchiveLimits::default(),
    )
    .expect("build");
    assert_eq!(summary.manifest, manifest());
    assert_eq!(summary.archive_size, out.get_ref().len() as u64);
    let listed: Vec<(&str, EntryKind)> = summary
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e.kind))
        .collect();
    assert_eq!(listed.len(), 8);
    assert!(listed.contains(&(
        "bin/run",
        EntryKind::File {
            size: 19,
            executable: true
        }
    )));
    assert!(listed.contains(&("empty", EntryKind::Directory)));
    assert_eq!(summary.total_size, 17 + 17 + 17 + 19);
}

#[test]
fn git_folders_and_files_are_skipped_everywhere() {
    let plain = sample_tree();
    let with_git = sample_tree();
    write_file(
        with_git.path(),
        ".git/HEAD",
        b"ref: refs/heads/main\n",
        0o644,
    );
    write_file(with_git.path(), ".git/objects/ab/cdef", b"blob", 0o444);
    write_file(
        with_git.path(),
        "src/.git",
        b"gitdir: ../.git/modules/src\n",
        0o644,
    );
    assert_eq!(build(plain.path()), build(with_git.path()));
}

fn source_problem(dir: &Path) -> (std::path::PathBuf, SourceProblem) {
    match try_build(dir, &ArchiveLimits::default()) {
        Err(ArchiveError::Source { path, problem }) => (path, problem),
        other => panic!("expected a source error, got {other:?}"),
    }
}

#[test]
fn refuses_symlinks_naming_the_path() {
    let tree = sample_tree();
    std::os::unix::fs::symlink("../plugin.php", tree.path().join("src/link.php")).expect("ln");
    let (path, problem) = source_problem(tree.path());
    assert!(matches!(problem, SourceProblem::Symlink));
    assert_eq!(path, tree.path().join("src/link.php"));
    let message = ArchiveError::Source { path, problem }.to_string();
    assert!(message.contains("src/link.php"), "{message}");
}

#[test]
fn refuses_a_dangling_symlink_and_a_symlinked_folder() {
    let tree = sample_tree();
    std::os::unix::fs::symlink("/nonexistent", tree.path().join("dangling")).expect("ln");
    assert!(matches!(
        source_problem(tree.path()).1,
        SourceProblem::Symlink
    ));

    let tree = sample_tree();
    std::os::unix::fs::symlink("/etc", tree.path().join("etc")).expect("ln");
    assert!(matches!(
        source_problem(tree.path()).1,
        SourceProblem::Symlink
    ));
}

#[test]
fn refuses_special_files() {
    let tree = sample_tree();
    let socket = tree.path().join("src/control.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind socket");
    let (path, problem) = source_problem(tree.path());
    assert!(matches!(problem, SourceProblem::SpecialFile));
    assert_eq!(path, socket);
}

#[test]
fn refuses_names_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let tree = sample_tree();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.php");
    fs::write(tree.path().join(name), b"x").expect("write");
    assert!(matches!(
        source_problem(tree.path()).1,
        SourceProblem::NameNotUtf8
    ));
}

#[test]
fn refuses_names_that_extraction_would_refuse() {
    for (name, expected) in [
        ("a:b.txt", PathError::Colon),
        ("a\\b.txt", PathError::Backslash),
        ("line\nbreak", PathError::ControlCharacter(0x0a)),
    ] {
        let tree = sample_tree();
        write_file(tree.path(), name, b"x", 0o644);
        match source_problem(tree.path()).1 {
            SourceProblem::InvalidPath(found) => assert_eq!(found, expected, "{name:?}"),
            other => panic!("{name:?}: {other:?}"),
        }
    }
}

#[test]
fn refuses_the_reserved_manifest_name() {
    for name in [
        MANIFEST_NAME,
        ".keyggdrasil/other",
        ".KeyGGdrasil/manifest.json",
    ] {
        let tree = sample_tree();
        write_file(tree.path(), name, b"{}", 0o644);
        assert!(
            matches!(source_problem(tree.path()).1, SourceProblem::Reserved),
            "{name}"
        );
    }
}

#[test]
fn refuses_names_differing_only_in_case() {
    let tree = sample_tree();
    write_file(tree.path(), "src/a.php", b"x", 0o644);
    match source_problem(tree.path()).1 {
        SourceProblem::CaseCollision { other } => {
            assert!(other == "src/A.php" || other == "src/a.php", "{other}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn refuses_a_source_that_is_not_a_folder() {
    let tree = sample_tree();
    let file = tree.path().join("plugin.php");
    assert!(matches!(
        try_build(&file, &ArchiveLimits::default()),
        Err(ArchiveError::Source {
            problem: SourceProblem::NotAFolder,
            ..
        })
    ));
}

#[test]
fn refuses_an_output_that_is_not_empty() {
    let tree = sample_tree();
    let mut out = Cursor::new(b"junk".to_vec());
    assert!(matches!(
        build_archive(
            tree.path(),
            &manifest(),
            &mut out,
            &ArchiveLimits::default()
        ),
        Err(ArchiveError::OutputNotEmpty { size: 4 })
    ));
}

fn limited(f: impl FnOnce(&mut ArchiveLimits)) -> ArchiveLimits {
    let mut limits = ArchiveLimits::default();
    f(&mut limits);
    limits
}

fn source_limit(dir: &Path, limits: &ArchiveLimits) -> Limit {
    match try_build(dir, limits) {
        Err(ArchiveError::Source {
            problem: SourceProblem::LimitExceeded { limit, max, found },
            ..
        }) => {
            assert!(found > max);
            limit
        }
        other => panic!("expected a limit error, got {other:?}"),
    }
}

#[test]
fn enforces_limits_on_the_source_tree() {
    let tree = sample_tree();
    let dir = tree.path();
    assert_eq!(
        source_limit(dir, &limited(|l| l.max_entries = 5)),
        Limit::Entries
    );
    assert_eq!(
        source_limit(dir, &limited(|l| l.max_file_size = 18)),
        Limit::FileSize
    );
    assert_eq!(
        source_limit(dir, &limited(|l| l.max_total_size = 150)),
        Limit::TotalSize
    );
    assert_eq!(
        source_limit(dir, &limited(|l| l.max_path_len = 8)),
        Limit::PathLength
    );
    assert_eq!(
        source_limit(dir, &limited(|l| l.max_path_depth = 2)),
        Limit::PathDepth
    );
}

#[test]
fn refuses_to_build_what_extraction_would_refuse_as_a_bomb() {
    // 4 MiB of zeros compress about 1000:1, over the default 100:1.
    let tree = sample_tree();
    write_file(tree.path(), "zeros.bin", &vec![0; 4 << 20], 0o644);
    match try_build(tree.path(), &ArchiveLimits::default()) {
        Err(ArchiveError::Rejected(Rejection::LimitExceeded {
            entry: Some(entry),
            limit: Limit::EntryRatio,
            ..
        })) => assert_eq!(entry, "zeros.bin"),
        other => panic!("expected a ratio rejection, got {other:?}"),
    }
}
