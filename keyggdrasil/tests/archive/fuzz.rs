//! Property tests: random bytes and random mutations of a valid archive never panic the
//! extractor, never write outside the staging folder, and leave nothing behind on error.

use std::fs;
use std::path::Path;

use keyggdrasil::archive::ArchiveLimits;
use proptest::prelude::*;

use crate::support::{Target, build, listing, sample_tree};

fn valid_archive() -> &'static [u8] {
    static ARCHIVE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ARCHIVE.get_or_init(|| build(sample_tree().path()))
}

fn small_limits() -> ArchiveLimits {
    let mut limits = ArchiveLimits::default();
    limits.max_total_size = 1 << 20;
    limits.max_file_size = 1 << 20;
    limits
}

/// Extracts `bytes` and checks the outcome: nothing but the staging folder in the root, no
/// symbolic link anywhere, and no staging folder at all after an error.
fn check(bytes: &[u8]) {
    let target = Target::new();
    let result = target.extract(bytes, &small_limits());
    let names: Vec<_> = fs::read_dir(target.root.path())
        .expect("read root")
        .map(|e| e.expect("entry").file_name())
        .collect();
    match result {
        Ok(_) => {
            assert_eq!(names, ["staging"]);
            // `listing` panics on symbolic links and on names outside the staging folder.
            let _ = listing(&target.staging);
            assert!(no_links(&target.staging));
        }
        Err(_) => {
            assert!(names.is_empty(), "left behind: {names:?}");
        }
    }
}

fn no_links(dir: &Path) -> bool {
    fs::read_dir(dir).expect("read").all(|e| {
        let meta = fs::symlink_metadata(e.expect("entry").path()).expect("metadata");
        !meta.file_type().is_symlink()
    })
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Set(at, b)),
        4 => (any::<usize>(), 1u8..=255).prop_map(|(at, b)| Mutation::Flip(at, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, b)| Mutation::Insert(at, b)),
        1 => (any::<usize>(), 1usize..16).prop_map(|(at, n)| Mutation::Remove(at, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len().max(1);
    match mutation {
        Mutation::Set(at, b) => {
            if let Some(x) = bytes.get_mut(at % len) {
                *x = *b;
            }
        }
        Mutation::Flip(at, b) => {
            if let Some(x) = bytes.get_mut(at % len) {
                *x ^= *b;
            }
        }
        Mutation::Truncate(at) => bytes.truncate(at % len),
        Mutation::Insert(at, b) => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        Mutation::Remove(at, n) => {
            let at = at % len;
            let end = (at + n).min(bytes.len());
            if at < end {
                bytes.drain(at..end);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes);
    }

    #[test]
    fn random_bytes_after_a_zip_signature_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..1024)
    ) {
        let mut bytes = b"PK\x03\x04".to_vec();
        bytes.extend(tail);
        bytes.extend(b"PK\x05\x06");
        bytes.extend([0u8; 18]);
        check(&bytes);
    }

    #[test]
    fn mutated_archives_never_panic_nor_escape(
        mutations in proptest::collection::vec(mutation(), 1..6)
    ) {
        let mut bytes = valid_archive().to_vec();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check(&bytes);
    }
}

#[test]
fn every_single_byte_flip_is_handled() {
    // Exhaustive over positions for one flip pattern: cheap and catches header edge cases.
    let original = valid_archive();
    for at in 0..original.len() {
        let mut bytes = original.to_vec();
        bytes[at] ^= 0x80;
        check(&bytes);
    }
}
