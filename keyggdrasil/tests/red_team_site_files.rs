//! Red-team pass of the site's file handling (issue 19), the library half: hostile archives
//! against the extractor that `tests/archive/extract.rs` does not already try, and the owner
//! checks of secret files and trusted paths (`keyggdrasil::os::secretfile`,
//! `keyggdrasil::os::ownership`). Each test asserts the exact outcome; the attempts and their
//! numbers are in the security review's "The site's files" section. Tests run as root in CI,
//! so "another user" is uid 65534 (nobody) via chown.
#![cfg(unix)]

#[path = "archive/support.rs"]
#[allow(dead_code)]
mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use keyggdrasil::archive::{ArchiveError, ArchiveLimits, Limit, Rejection, StagingProblem};
use keyggdrasil::os::ownership::{self, TrustError};
use keyggdrasil::os::secretfile::{self, SecretFileError};
use support::{Target, add, craft, options, rejection_default};

const NOBODY: u32 = 65534;

fn chown(path: &std::path::Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), None).expect("chown (the tests run as root)");
}

/// A "hardlink": zip has no hardlink entry type, but the old PKWARE Unix extra field (0x000d)
/// carries a link target after its fixed part, and Info-ZIP-style readers may make a hard link
/// from it. The extractor ignores extra fields (only the Unicode-path one is refused): the
/// entry becomes a regular file with its own bytes and one link, and the file the field names
/// is untouched.
#[test]
fn a_hardlink_extra_field_gives_a_plain_file() {
    let victim = tempfile::tempdir().unwrap();
    let target = victim.path().join("wp-config.php");
    fs::write(&target, b"<?php // secrets\n").unwrap();
    let mut field = vec![0u8; 12]; // atime, mtime, uid, gid
    field.extend_from_slice(target.to_str().unwrap().as_bytes());
    let mut opts = zip::write::FullFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .system(zip::System::Unix)
        .unix_permissions(0o644);
    // The zip writer refuses to write the reserved id 0x000d: write 0x4b4b, then patch the id
    // in the local header and the central directory.
    let len = u16::try_from(field.len()).unwrap().to_le_bytes();
    opts.add_extra_field(0x4b4b, field, false).unwrap();
    let mut bytes = craft(|zip| {
        zip.start_file("link.php", opts).unwrap();
        zip.write_all(b"own bytes").unwrap();
    });
    let marker = [0x4b, 0x4b, len[0], len[1]];
    let mut patched = 0;
    for at in 0..bytes.len() - 4 {
        if bytes[at..at + 4] == marker {
            bytes[at] = 0x0d;
            bytes[at + 1] = 0x00;
            patched += 1;
        }
    }
    assert_eq!(patched, 2, "local and central extra field");
    let t = Target::new();
    t.extract(&bytes, &ArchiveLimits::default()).unwrap();
    let out = t.staging.join("link.php");
    let meta = fs::symlink_metadata(&out).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.nlink(), 1, "not a hard link to anything");
    assert_eq!(fs::read(&out).unwrap(), b"own bytes");
    assert_eq!(fs::read(&target).unwrap(), b"<?php // secrets\n");
}

/// Two central-directory records for one local header (`shallow_copy_file`: the same bytes
/// under a second name, the zip form of a hard link, and of an overlapping entry).
#[test]
fn two_names_for_one_local_header_are_refused() {
    let bytes = support::craft_raw(|zip| {
        support::add_manifest(zip);
        add(zip, "plugin.php", b"<?php // one\n");
        zip.shallow_copy_file("plugin.php", "other.php").unwrap();
    });
    let rejection = rejection_default(&bytes);
    assert!(
        matches!(rejection, Rejection::Inconsistent(_)),
        "{rejection:?}"
    );
}

/// The same name in NFC and NFD (`café.php`, with U+00E9 and with `e` + U+0301). Collisions are
/// compared by Unicode lowercase without normalisation (documented in `os::archive`): on a
/// file system that does not normalise (ext4, xfs: what sites run on) they are two files, each
/// with its own bytes; on one that does (APFS, ZFS `normalization=formD`) the second
/// create-new fails and the extraction is refused, so neither can overwrite the other.
#[test]
fn nfc_and_nfd_spellings_are_two_files_never_one_overwritten() {
    let nfc = "caf\u{e9}.php";
    let nfd = "cafe\u{301}.php";
    let bytes = craft(|zip| {
        add(zip, nfc, b"nfc");
        add(zip, nfd, b"nfd");
    });
    let t = Target::new();
    match t.extract(&bytes, &ArchiveLimits::default()) {
        Ok(extracted) => {
            assert_eq!(extracted.entries.len(), 2);
            assert_eq!(fs::read(t.staging.join(nfc)).unwrap(), b"nfc");
            assert_eq!(fs::read(t.staging.join(nfd)).unwrap(), b"nfd");
        }
        Err(ArchiveError::Io {
            operation: "create",
            ..
        }) => t.assert_untouched(),
        Err(other) => panic!("{other:?}"),
    }
}

/// 10 001 entries (the manifest and 10 000 empty files) at the default limits: refused on the
/// count before anything is written.
#[test]
fn very_many_entries_are_refused_at_the_default_limit() {
    let bytes = craft(|zip| {
        for i in 0..10_000 {
            zip.start_file(format!("f{i}"), options()).unwrap();
        }
    });
    match rejection_default(&bytes) {
        Rejection::LimitExceeded {
            entry: None,
            limit: Limit::Entries,
            max: 10_000,
            found: 10_001,
        } => {}
        other => panic!("{other:?}"),
    }
}

/// The staging folder given is a symbolic link to an empty folder elsewhere: refused as not a
/// folder, nothing written through it.
#[test]
fn a_staging_folder_that_is_a_link_is_refused() {
    let elsewhere = tempfile::tempdir().unwrap();
    let t = Target::new();
    std::os::unix::fs::symlink(elsewhere.path(), &t.staging).unwrap();
    let bytes = craft(|zip| add(zip, "plugin.php", b"x"));
    let err = t.extract(&bytes, &ArchiveLimits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::Staging {
                problem: StagingProblem::NotAFolder,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

/// A secret file, or its folder, that belongs to another user (who could replace it: a notary
/// key of their choosing) is refused by name, even with modes 0600/0700. Before this pass the
/// secret-file checks looked at modes only (finding S6).
#[test]
fn secrets_belonging_to_another_user_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("local");
    secretfile::ensure_private_dir(&local).unwrap();
    let secret = local.join("site-secret");
    secretfile::write_secret_file(&secret, &[7; 32], false).unwrap();
    assert_eq!(
        &**secretfile::read_secret_file(&secret, 32).unwrap(),
        &[7; 32]
    );

    chown(&secret, NOBODY);
    let e = secretfile::read_secret_file(&secret, 32).unwrap_err();
    assert!(
        matches!(&e, SecretFileError::ForeignOwner { owner: NOBODY, path, .. } if *path == secret),
        "{e:?}"
    );
    assert!(e.to_string().contains("uid 65534"), "{e}");
    chown(&secret, 0);

    chown(&local, NOBODY);
    for e in [
        secretfile::read_secret_file(&secret, 32).unwrap_err(),
        secretfile::ensure_private_dir(&local).unwrap_err(),
        secretfile::write_secret_file(&local.join("k2"), b"x", false).unwrap_err(),
    ] {
        assert!(
            matches!(&e, SecretFileError::ForeignOwner { owner: NOBODY, path, .. } if *path == local),
            "{e:?}"
        );
    }
    assert!(!local.join("k2").exists());
}

/// The trusted-path check behind `Config::load` and `staging/`: another owner (not root) or a
/// group/other write bit is refused, naming the path and the fix; read bits for a group are
/// fine; root's files are fine.
#[test]
fn trusted_paths_must_be_ours_and_not_writable_by_others() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("continuum.toml");
    fs::write(&f, b"").unwrap();
    for mode in [0o600, 0o640, 0o644, 0o750, 0o755] {
        fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
        assert!(ownership::check_trusted(&f).unwrap(), "{mode:o}");
    }
    for mode in [0o664, 0o646, 0o666, 0o777, 0o1777] {
        fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
        let e = ownership::check_trusted(&f).unwrap_err();
        assert!(
            matches!(&e, TrustError::SharedWritable { mode: m, .. } if *m == mode & 0o777),
            "{mode:o}: {e:?}"
        );
        assert!(e.to_string().contains("chmod go-w"), "{e}");
    }
    fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
    chown(&f, NOBODY);
    let e = ownership::check_trusted(&f).unwrap_err();
    assert!(
        matches!(e, TrustError::ForeignOwner { owner: NOBODY, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("chown"), "{e}");
    assert_eq!(ownership::effective_uid(), 0, "these tests run as root");
}
