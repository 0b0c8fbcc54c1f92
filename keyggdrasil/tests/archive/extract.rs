//! The extractor's rejections: one test per rule, each on an archive crafted here, each
//! checking the exact rejection and that the staging folder is left as it was.

use std::fs;

use keyggdrasil::archive::{
    ArchiveError, ArchiveLimits, Limit, MANIFEST_NAME, ManifestError, PathError, Rejection,
    StagingProblem,
};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, System};

use crate::support::{
    Field, Target, add, add_manifest, add_raw_name, add_with, build, craft, craft_raw, data_offset,
    manifest, options, patch, read_field, rejection, rejection_default, rename, sample_tree,
};

fn invalid_name(name: &[u8]) -> PathError {
    let bytes = craft(|zip| {
        add(zip, "ok.txt", b"fine");
        add_raw_name(zip, name, b"evil");
    });
    match rejection_default(&bytes) {
        Rejection::InvalidName { source, .. } => source,
        other => panic!(
            "{:?}: expected an invalid name, got {other:?}",
            name.escape_ascii()
        ),
    }
}

#[test]
fn rejects_absolute_paths() {
    assert_eq!(invalid_name(b"/etc/cron.d/evil"), PathError::Absolute);
    assert_eq!(invalid_name(b"//server/share/evil"), PathError::Absolute);
}

#[test]
fn rejects_parent_components() {
    assert_eq!(invalid_name(b"../evil.php"), PathError::ParentDir);
    assert_eq!(invalid_name(b"a/../../evil.php"), PathError::ParentDir);
    assert_eq!(invalid_name(b"a/.."), PathError::ParentDir);
}

#[test]
fn rejects_dot_and_empty_components() {
    assert_eq!(invalid_name(b"./a.php"), PathError::CurrentDir);
    assert_eq!(invalid_name(b"a/./b.php"), PathError::CurrentDir);
    assert_eq!(invalid_name(b"a//b.php"), PathError::EmptyComponent);
    assert_eq!(invalid_name(b"a//"), PathError::EmptyComponent);
    assert_eq!(invalid_name(b""), PathError::Empty);
}

#[test]
fn rejects_backslashes() {
    assert_eq!(invalid_name(b"..\\evil.php"), PathError::Backslash);
    assert_eq!(invalid_name(b"a\\b.php"), PathError::Backslash);
}

#[test]
fn rejects_nul_and_control_characters() {
    assert_eq!(invalid_name(b"a\0.php"), PathError::Nul);
    assert_eq!(invalid_name(b"a\n.php"), PathError::ControlCharacter(0x0a));
    assert_eq!(
        invalid_name(b"a\x1b[31m.php"),
        PathError::ControlCharacter(0x1b)
    );
    assert_eq!(
        invalid_name("a\u{9b}.php".as_bytes()),
        PathError::ControlCharacter(0x9b)
    );
}

#[test]
fn rejects_windows_drive_prefixes() {
    assert_eq!(invalid_name(b"C:/Windows/evil.dll"), PathError::Colon);
    assert_eq!(invalid_name(b"C:evil.dll"), PathError::Colon);
    assert_eq!(invalid_name(b"C:\\evil.dll"), PathError::Backslash);
    assert_eq!(invalid_name(b"file.txt:stream"), PathError::Colon);
}

#[test]
fn rejects_names_that_are_not_utf8() {
    assert_eq!(invalid_name(b"caf\xe9.php"), PathError::NotUtf8);
    assert_eq!(invalid_name(b"\xff\xfe"), PathError::NotUtf8);
}

#[test]
fn rejects_non_ascii_names_without_the_utf8_flag() {
    let name = "café.php";
    let mut bytes = craft(|zip| add(zip, name, b"x"));
    let flags = read_field(&bytes, name.as_bytes(), Field::Flags);
    assert_ne!(flags & 0x0800, 0, "the writer sets the UTF-8 flag");
    patch(&mut bytes, name.as_bytes(), Field::Flags, flags & !0x0800);
    assert!(matches!(
        rejection_default(&bytes),
        Rejection::NameNotMarkedUtf8 { .. }
    ));
}

/// CRC-32 (IEEE), bitwise: only for crafting an extra field here.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn with_unicode_path(header_name: &str, unicode_name: &str) -> Vec<u8> {
    let mut field = vec![1u8];
    field.extend(crc32(header_name.as_bytes()).to_le_bytes());
    field.extend(unicode_name.as_bytes());
    let mut options = zip::write::FullFileOptions::default()
        .system(System::Unix)
        .unix_permissions(0o644);
    options
        .add_extra_field(0x7075, field, false)
        .expect("extra field");
    craft(|zip| {
        zip.start_file(header_name, options).expect("start");
        std::io::Write::write_all(zip, b"x").expect("write");
    })
}

#[test]
fn rejects_names_replaced_by_a_unicode_path_field() {
    // Readers that honour the field see "good.php", the others "GOOD.PHP": the `zip` reader
    // lets this one through (a case change), the extractor does not.
    match rejection_default(&with_unicode_path("GOOD.PHP", "good.php")) {
        Rejection::NameOverride { name } => assert_eq!(name, "good.php"),
        other => panic!("{other:?}"),
    }
    // A rename to another name altogether is caught by the header consistency check.
    assert!(matches!(
        rejection_default(&with_unicode_path("good.php", "evil.php")),
        Rejection::Inconsistent(_)
    ));
}

#[test]
fn rejects_overlong_components() {
    assert_eq!(
        invalid_name("x".repeat(256).as_bytes()),
        PathError::ComponentTooLong
    );
}

#[test]
fn rejects_symlinks() {
    let bytes = craft(|zip| {
        zip.add_symlink("link.php", "/etc/passwd", options())
            .expect("symlink");
    });
    match rejection_default(&bytes) {
        Rejection::Symlink { name } => assert_eq!(name, "link.php"),
        other => panic!("{other:?}"),
    }
    // A symlink pointing inside the tree is refused just the same.
    let bytes = craft(|zip| {
        add(zip, "a.php", b"x");
        zip.add_symlink("b.php", "a.php", options())
            .expect("symlink");
    });
    assert!(matches!(
        rejection_default(&bytes),
        Rejection::Symlink { .. }
    ));
}

#[test]
fn rejects_special_files() {
    for (kind, mode) in [
        ("fifo", 0o010_644),
        ("character device", 0o020_644),
        ("block device", 0o060_644),
        ("socket", 0o140_644),
    ] {
        let bytes = craft(|zip| {
            add_with(
                zip,
                "special",
                b"",
                options().external_attributes(mode << 16),
            );
        });
        match rejection_default(&bytes) {
            Rejection::SpecialFile { name, mode: found } => {
                assert_eq!(name, "special", "{kind}");
                assert_eq!(found, mode, "{kind}");
            }
            other => panic!("{kind}: {other:?}"),
        }
    }
}

#[test]
fn rejects_a_mode_that_contradicts_the_name() {
    let bytes = craft(|zip| {
        add_with(
            zip,
            "file",
            b"",
            options().external_attributes(0o040_755 << 16),
        );
    });
    assert!(matches!(
        rejection_default(&bytes),
        Rejection::KindMismatch { .. }
    ));
}

#[test]
fn rejects_folder_entries_with_content() {
    let bytes = craft(|zip| {
        add_with(
            zip,
            "dir/",
            b"hidden",
            options().external_attributes(0o040_755 << 16),
        );
    });
    assert!(matches!(
        rejection_default(&bytes),
        Rejection::FolderWithContent { .. }
    ));
}

#[test]
fn rejects_duplicate_names() {
    // The writer refuses duplicates, so write two names and rename one to the other.
    let mut bytes = craft(|zip| {
        add(zip, "a.php", b"first");
        add(zip, "b.php", b"second");
    });
    rename(&mut bytes, b"b.php", b"a.php", true);
    assert!(matches!(
        rejection_default(&bytes),
        Rejection::DuplicateNames
    ));
}

#[test]
fn rejects_names_that_collide_case_insensitively() {
    for (first, second) in [
        ("Readme.txt", "README.txt"),
        ("src/A.php", "SRC/b.php"),
        ("Ärger.txt", "ärger.txt"),
        ("k.txt", "\u{212A}.txt"), // KELVIN SIGN lowercases to 'k'
    ] {
        let bytes = craft(|zip| {
            add(zip, first, b"1");
            add(zip, second, b"2");
        });
        match rejection_default(&bytes) {
            Rejection::CaseCollision { name, other } => {
                assert_eq!(name, second.escape_debug().to_string());
                assert!(first.starts_with(&other), "{other} for {first}");
            }
            other => panic!("{first} / {second}: {other:?}"),
        }
    }
}

#[test]
fn rejects_a_file_that_is_also_a_folder() {
    let bytes = craft(|zip| {
        add(zip, "lib", b"i am a file");
        add(zip, "lib/x.php", b"x");
    });
    match rejection_default(&bytes) {
        Rejection::PathConflict { name, other } => {
            assert_eq!(name, "lib/x.php");
            assert_eq!(other, "lib");
        }
        other => panic!("{other:?}"),
    }
    // The other way round, and with an explicit folder entry.
    let bytes = craft(|zip| {
        add(zip, "lib/x.php", b"x");
        add(zip, "lib", b"i am a file");
    });
    assert!(matches!(
        rejection_default(&bytes),
        Rejection::PathConflict { .. }
    ));
    let bytes = craft(|zip| {
        zip.add_directory("lib/", options()).expect("dir");
        add(zip, "lib", b"i am a file");
    });
    assert!(matches!(
        rejection_default(&bytes),
        Rejection::PathConflict { .. }
    ));
}

#[test]
fn rejects_encrypted_entries() {
    let mut bytes = craft(|zip| add(zip, "secret.php", b"x"));
    let flags = read_field(&bytes, b"secret.php", Field::Flags);
    patch(&mut bytes, b"secret.php", Field::Flags, flags | 1);
    match rejection_default(&bytes) {
        Rejection::Encrypted { name } => assert_eq!(name, "secret.php"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rejects_compression_methods_other_than_stored_and_deflate() {
    for method in [1u32, 6, 9, 12, 14, 93, 95, 98, 99] {
        let mut bytes = craft(|zip| add(zip, "a.php", b"x"));
        patch(&mut bytes, b"a.php", Field::Method, method);
        assert!(
            matches!(
                rejection_default(&bytes),
                Rejection::UnsupportedCompression { .. }
            ),
            "method {method}"
        );
    }
    // Both accepted methods do extract.
    for method in [CompressionMethod::Stored, CompressionMethod::Deflated] {
        let bytes = craft(|zip| {
            add_with(
                zip,
                "a.php",
                b"content",
                options().compression_method(method),
            );
        });
        Target::new()
            .extract(&bytes, &ArchiveLimits::default())
            .expect("extract");
    }
}

#[test]
fn rejects_a_missing_manifest() {
    let no_manifest = craft_raw(|zip| add(zip, "a.php", b"x"));
    assert!(matches!(
        rejection_default(&no_manifest),
        Rejection::MissingManifest
    ));
    let not_first = craft_raw(|zip| {
        add(zip, "a.php", b"x");
        add_manifest(zip);
    });
    assert!(matches!(
        rejection_default(&not_first),
        Rejection::MissingManifest
    ));
    let empty = craft_raw(|_| {});
    assert!(matches!(
        rejection_default(&empty),
        Rejection::MissingManifest
    ));
}

#[test]
fn rejects_a_malformed_manifest() {
    let canonical = String::from_utf8(manifest().to_canonical_json()).expect("utf-8");
    for (content, what) in [
        ("not json".to_owned(), "not json"),
        (canonical.replace(',', ", "), "not canonical"),
        (canonical.replace("/v1", "/v0"), "other format"),
        (canonical.replace("1.0.0", "1 0"), "bad version"),
        (String::new(), "empty"),
    ] {
        let bytes = craft_raw(|zip| add(zip, MANIFEST_NAME, content.as_bytes()));
        match rejection_default(&bytes) {
            Rejection::InvalidManifest(error) => {
                let expected = match what {
                    "not canonical" => matches!(error, ManifestError::NotCanonical),
                    "other format" => matches!(error, ManifestError::UnsupportedFormat),
                    "bad version" => matches!(
                        error,
                        ManifestError::InvalidField {
                            field: "version",
                            ..
                        }
                    ),
                    _ => matches!(error, ManifestError::Json(_)),
                };
                assert!(expected, "{what}: {error:?}");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn rejects_other_entries_in_the_reserved_folder() {
    for name in [
        ".keyggdrasil/evil.php",
        ".KEYGGDRASIL/manifest.json",
        ".keyggdrasil/",
    ] {
        let bytes = craft(|zip| {
            if let Some(folder) = name.strip_suffix('/') {
                zip.add_directory(folder, options()).expect("dir");
            } else {
                add(zip, name, b"x");
            }
        });
        assert!(
            matches!(rejection_default(&bytes), Rejection::Reserved { .. }),
            "{name}"
        );
    }
}

fn limit_of(rejection: Rejection) -> (Option<String>, Limit) {
    match rejection {
        Rejection::LimitExceeded {
            entry,
            limit,
            max,
            found,
        } => {
            assert!(found > max, "{limit}: found {found} <= max {max}");
            (entry, limit)
        }
        other => panic!("expected a limit, got {other:?}"),
    }
}

fn limits(f: impl FnOnce(&mut ArchiveLimits)) -> ArchiveLimits {
    let mut limits = ArchiveLimits::default();
    f(&mut limits);
    limits
}

#[test]
fn enforces_the_entry_count() {
    let bytes = build(sample_tree().path()); // 9 entries with the manifest
    let (entry, limit) = limit_of(rejection(&bytes, &limits(|l| l.max_entries = 8)));
    assert_eq!((entry, limit), (None, Limit::Entries));
    Target::new()
        .extract(&bytes, &limits(|l| l.max_entries = 9))
        .expect("9 entries fit");
}

#[test]
fn implied_folders_count_as_entries() {
    // Three entries, but the deep one implies 30 folders.
    let deep: String = (0..30).map(|i| format!("d{i}/")).collect::<String>() + "f.txt";
    let bytes = craft(|zip| {
        add(zip, "a.txt", b"a");
        add(zip, &deep, b"f");
    });
    let (entry, limit) = limit_of(rejection(&bytes, &limits(|l| l.max_entries = 20)));
    assert_eq!((entry, limit), (Some(deep), Limit::Entries));
    Target::new()
        .extract(&bytes, &limits(|l| l.max_entries = 33))
        .expect("manifest, a.txt, 30 folders and f.txt");
}

#[test]
fn enforces_the_archive_size() {
    let bytes = build(sample_tree().path());
    let small = limits(|l| l.max_archive_size = bytes.len() as u64 - 1);
    assert_eq!(
        limit_of(rejection(&bytes, &small)),
        (None, Limit::ArchiveSize)
    );
}

#[test]
fn enforces_the_file_size() {
    let bytes = craft(|zip| add(zip, "big.bin", &[7u8; 10_000]));
    let (entry, limit) = limit_of(rejection(&bytes, &limits(|l| l.max_file_size = 9_999)));
    assert_eq!(
        (entry.as_deref(), limit),
        (Some("big.bin"), Limit::FileSize)
    );
}

#[test]
fn enforces_the_total_size() {
    let bytes = craft(|zip| {
        add(zip, "a.bin", &[1u8; 6_000]);
        add(zip, "b.bin", &[2u8; 6_000]);
    });
    let (entry, limit) = limit_of(rejection(&bytes, &limits(|l| l.max_total_size = 10_000)));
    assert_eq!((entry.as_deref(), limit), (Some("b.bin"), Limit::TotalSize));
}

#[test]
fn enforces_the_manifest_size() {
    let bytes = craft(|_| {});
    let (entry, limit) = limit_of(rejection(&bytes, &limits(|l| l.max_manifest_size = 50)));
    assert_eq!(
        (entry.as_deref(), limit),
        (Some(MANIFEST_NAME), Limit::ManifestSize)
    );
}

#[test]
fn enforces_path_length_and_depth() {
    let bytes = craft(|zip| add(zip, "a/b/c/d/e/f.txt", b"x"));
    let (_, limit) = limit_of(rejection(&bytes, &limits(|l| l.max_path_depth = 5)));
    assert_eq!(limit, Limit::PathDepth);
    let (_, limit) = limit_of(rejection(&bytes, &limits(|l| l.max_path_len = 14)));
    assert_eq!(limit, Limit::PathLength);
    Target::new()
        .extract(
            &bytes,
            &limits(|l| {
                l.max_path_depth = 6;
                l.max_path_len = 15;
            }),
        )
        .expect("fits exactly");
}

/// A deflated entry of `len` zeros: about 1000:1.
fn zeros(name: &str, len: usize) -> Vec<u8> {
    craft(|zip| add(zip, name, &vec![0u8; len]))
}

#[test]
fn enforces_the_entry_ratio_on_a_zip_bomb() {
    let bytes = zeros("bomb.bin", 4 << 20);
    let (entry, limit) = limit_of(rejection_default(&bytes));
    assert_eq!(
        (entry.as_deref(), limit),
        (Some("bomb.bin"), Limit::EntryRatio)
    );
}

#[test]
fn enforces_the_total_ratio() {
    // Each entry stays under the ratio threshold, together they do not.
    let bytes = craft(|zip| {
        for i in 0..8 {
            add(zip, &format!("z{i}.bin"), &vec![0u8; 200_000]);
        }
    });
    let strict = limits(|l| l.ratio_threshold = 1_000_000);
    let (entry, limit) = limit_of(rejection(&bytes, &strict));
    assert_eq!((entry, limit), (None, Limit::TotalRatio));
}

#[test]
fn does_not_trust_a_small_declared_size() {
    // A bomb that declares 1000 bytes: decompression stops right after them. (The `zip`
    // reader itself refuses to go past the declared size, reported as corrupt data; the
    // extractor's own count would report a size mismatch: either stops the bomb.)
    let mut bytes = zeros("liar.bin", 4 << 20);
    patch(&mut bytes, b"liar.bin", Field::UncompressedSize, 1000);
    let lenient = limits(|l| l.max_entry_ratio = u64::MAX);
    match rejection(&bytes, &lenient) {
        Rejection::Corrupt { name, .. } | Rejection::SizeMismatch { name, .. } => {
            assert_eq!(name, "liar.bin");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn does_not_trust_a_large_declared_size() {
    let mut bytes = craft(|zip| {
        add(zip, "first.txt", b"written before the liar");
        add(zip, "liar.bin", &[5u8; 1000]);
    });
    patch(&mut bytes, b"liar.bin", Field::UncompressedSize, 5000);
    match rejection_default(&bytes) {
        Rejection::SizeMismatch {
            name,
            declared,
            actual,
        } => {
            assert_eq!(
                (name.as_str(), declared, actual),
                ("liar.bin", 5000, Some(1000))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn small_limits_stop_a_bomb_whatever_it_declares() {
    // The declared size is within limits, the real one is not: stopped while counting.
    let mut bytes = zeros("bomb.bin", 4 << 20);
    patch(&mut bytes, b"bomb.bin", Field::UncompressedSize, 100_000);
    let small = limits(|l| {
        l.max_file_size = 200_000;
        l.max_entry_ratio = u64::MAX;
        l.max_total_ratio = u64::MAX;
    });
    assert!(matches!(
        rejection(&bytes, &small),
        Rejection::Corrupt { .. } | Rejection::SizeMismatch { .. }
    ));
}

#[test]
fn removes_files_written_before_a_corrupt_entry() {
    // Stored data with a wrong CRC: only found once the entry has been read to its end, after
    // the earlier entries were written.
    let mut bytes = craft(|zip| {
        add(zip, "a/first.txt", b"first");
        zip.add_directory("empty/", options()).expect("dir");
        add_with(
            zip,
            "z/last.txt",
            b"last entry content",
            options().compression_method(CompressionMethod::Stored),
        );
    });
    let at = data_offset(&bytes, b"z/last.txt");
    bytes[at] ^= 0xff;
    match rejection_default(&bytes) {
        Rejection::Corrupt { name, .. } => assert_eq!(name, "z/last.txt"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rejects_inconsistent_headers() {
    // The local header names another file than the central directory.
    let mut bytes = craft(|zip| add(zip, "good.php", b"x"));
    rename(&mut bytes, b"good.php", b"evil.php", false);
    assert!(matches!(
        rejection_default(&bytes),
        Rejection::Inconsistent(_)
    ));
}

#[test]
fn rejects_leading_data() {
    let mut bytes = b"#!/bin/sh\nexit 0\n".to_vec();
    bytes.extend(build(sample_tree().path()));
    assert!(matches!(
        rejection_default(&bytes),
        Rejection::LeadingData { offset: 17 }
    ));
}

#[test]
fn rejects_what_is_not_a_zip() {
    for bytes in [&b""[..], b"PK", b"hello world", &[0u8; 100]] {
        assert!(matches!(rejection_default(bytes), Rejection::Malformed(_)));
    }
    let mut truncated = build(sample_tree().path());
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(
        rejection_default(&truncated),
        Rejection::Malformed(_)
    ));
}

#[test]
fn refuses_a_staging_folder_that_is_not_empty() {
    let bytes = build(sample_tree().path());
    let target = Target::new();
    fs::create_dir(&target.staging).expect("mkdir");
    fs::write(target.staging.join("keep.txt"), b"mine").expect("write");
    assert!(matches!(
        target.extract(&bytes, &ArchiveLimits::default()),
        Err(ArchiveError::Staging {
            problem: StagingProblem::NotEmpty,
            ..
        })
    ));
    assert_eq!(
        fs::read(target.staging.join("keep.txt")).expect("kept"),
        b"mine"
    );
    assert_eq!(fs::read_dir(&target.staging).expect("read").count(), 1);
}

#[test]
fn refuses_a_staging_path_that_is_not_a_folder() {
    let bytes = build(sample_tree().path());
    let target = Target::new();
    fs::write(&target.staging, b"a file").expect("write");
    assert!(matches!(
        target.extract(&bytes, &ArchiveLimits::default()),
        Err(ArchiveError::Staging {
            problem: StagingProblem::NotAFolder,
            ..
        })
    ));
    assert_eq!(fs::read(&target.staging).expect("kept"), b"a file");

    // A symbolic link to an empty folder is not followed.
    let target = Target::new();
    let elsewhere = target.root.path().join("elsewhere");
    fs::create_dir(&elsewhere).expect("mkdir");
    std::os::unix::fs::symlink(&elsewhere, &target.staging).expect("ln");
    assert!(matches!(
        target.extract(&bytes, &ArchiveLimits::default()),
        Err(ArchiveError::Staging {
            problem: StagingProblem::NotAFolder,
            ..
        })
    ));
    assert_eq!(fs::read_dir(&elsewhere).expect("read").count(), 0);
}

#[test]
fn ignores_special_mode_bits() {
    // setuid, setgid and sticky bits, and odd permissions, become plain 0644 / 0755.
    let bytes = craft(|zip| {
        add_with(
            zip,
            "suid",
            b"x",
            options().external_attributes(0o104_777 << 16),
        );
        add_with(
            zip,
            "sgid",
            b"x",
            options().external_attributes(0o102_640 << 16),
        );
        add_with(
            zip,
            "none",
            b"x",
            options().external_attributes(0o100_000 << 16),
        );
        add_with(
            zip,
            "dos",
            b"x",
            SimpleFileOptions::default().system(System::Dos),
        );
    });
    let target = Target::new();
    target
        .extract(&bytes, &ArchiveLimits::default())
        .expect("extract");
    use std::os::unix::fs::PermissionsExt;
    let mode = |name: &str| {
        fs::metadata(target.staging.join(name))
            .expect("metadata")
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("suid"), 0o755);
    assert_eq!(mode("sgid"), 0o644);
    assert_eq!(mode("none"), 0o644);
    assert_eq!(mode("dos"), 0o644);
}
