//! Build, extract, compare: files, modes, folders and the manifest survive unchanged.

use std::fs;

use keyggdrasil::archive::{ArchiveLimits, EntryKind};

use crate::support::{
    Target, add, archive_fixture, build, craft, fixture_dir, listing, manifest, options,
    sample_tree,
};

/// The source listing with modes normalised as the archive stores them.
fn normalised(root: &std::path::Path) -> Vec<(String, u32, Option<Vec<u8>>)> {
    listing(root)
        .into_iter()
        .map(|(path, mode, content)| {
            let mode = match &content {
                None => 0o755,
                Some(_) if mode & 0o111 != 0 => 0o755,
                Some(_) => 0o644,
            };
            (path, mode, content)
        })
        .collect()
}

#[test]
fn sample_tree_round_trips() {
    let tree = sample_tree();
    let bytes = build(tree.path());
    let target = Target::new();
    let extracted = target
        .extract(&bytes, &ArchiveLimits::default())
        .expect("extract");
    assert_eq!(extracted.manifest, manifest());
    assert_eq!(listing(&target.staging), normalised(tree.path()));
    assert!(
        !target.staging.join(".keyggdrasil").exists(),
        "the manifest is returned, not written"
    );
    assert_eq!(extracted.total_size, 17 + 17 + 17 + 19);
    let kinds: Vec<(&str, EntryKind)> = extracted
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e.kind))
        .collect();
    assert!(kinds.contains(&("empty", EntryKind::Directory)));
    assert!(kinds.contains(&(
        "bin/run",
        EntryKind::File {
            size: 19,
            executable: true
        }
    )));
}

#[test]
fn fixture_round_trips_with_modes() {
    let bytes = build(&fixture_dir());
    let target = Target::new();
    let extracted = target
        .extract(&bytes, &ArchiveLimits::default())
        .expect("extract");
    assert_eq!(extracted.manifest, manifest());
    let got = listing(&target.staging);
    assert_eq!(got, normalised(&fixture_dir()));
    let script = got
        .iter()
        .find(|(path, _, _)| path == "bin/build.sh")
        .expect("script");
    assert_eq!(script.1, 0o755);
    let css = got
        .iter()
        .find(|(path, _, _)| path == "assets/css/style.css")
        .expect("css");
    assert_eq!(css.1, 0o644);
}

#[test]
fn stored_fixture_archive_extracts() {
    // The checked-in archive, independent of today's builder.
    let bytes = fs::read(archive_fixture("hello-plugin.zip")).expect("fixture");
    let target = Target::new();
    let extracted = target
        .extract(&bytes, &ArchiveLimits::default())
        .expect("extract");
    assert_eq!(extracted.manifest.package(), "acme/hello-plugin");
    assert_eq!(listing(&target.staging), normalised(&fixture_dir()));
}

#[test]
fn extracts_into_an_existing_empty_folder() {
    let tree = sample_tree();
    let bytes = build(tree.path());
    let target = Target::new();
    fs::create_dir(&target.staging).expect("mkdir");
    target
        .extract(&bytes, &ArchiveLimits::default())
        .expect("extract");
    assert_eq!(listing(&target.staging), normalised(tree.path()));
}

#[test]
fn extracted_tree_rebuilds_to_the_same_bytes() {
    let bytes = build(&fixture_dir());
    let target = Target::new();
    target
        .extract(&bytes, &ArchiveLimits::default())
        .expect("extract");
    assert_eq!(build(&target.staging), bytes);
}

#[test]
fn folder_entries_may_come_after_their_content() {
    let bytes = craft(|zip| {
        add(zip, "a/b/c.txt", b"c");
        zip.add_directory("a/b/", options()).expect("dir");
        zip.add_directory("a/", options()).expect("dir");
        zip.add_directory("x/y/", options()).expect("dir");
    });
    let target = Target::new();
    target
        .extract(&bytes, &ArchiveLimits::default())
        .expect("extract");
    let paths: Vec<String> = listing(&target.staging)
        .into_iter()
        .map(|(path, _, _)| path)
        .collect();
    assert_eq!(paths, ["a", "a/b", "a/b/c.txt", "x", "x/y"]);
}

#[test]
fn a_large_compressible_file_within_limits_extracts() {
    // 512 KiB of zeros: below the default ratio threshold of 1 MiB.
    let bytes = craft(|zip| add(zip, "zeros.bin", &vec![0u8; 512 * 1024]));
    let target = Target::new();
    let extracted = target
        .extract(&bytes, &ArchiveLimits::default())
        .expect("extract");
    assert_eq!(extracted.total_size, 512 * 1024);
}
