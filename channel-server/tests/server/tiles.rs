//! The static copy of the log (`public/`): after the log grows, every tile and entry bundle of
//! every published size is on disk, byte for byte what an independent recomputation from the
//! entries (over HTTP, subtree roots from leaf hashes, not the stored-hash layout) gives, and
//! the checkpoint file is signed by the channel key for a size whose tiles all exist. An
//! uploaded archive is published by digest. `channel-server check` checks the tiles and names
//! a damaged one.

use keyggdrasil::merkle::{Blake2b256, Hash, TreeHasher, root_from_leaf_hashes};
use keyggdrasil::tiles::{archive_path, entry_bundle, tiles_of};

use super::harness::{Channel, Supplier};

/// Checks every file of size `size` under `public/` against the entries.
fn check_files(ch: &Channel, entries: &[Vec<u8>], size: u64) {
    let public = ch.public_dir();
    let leaves: Vec<Hash> = entries[..size as usize]
        .iter()
        .map(|e| Blake2b256.hash_leaf(e))
        .collect();
    for t in tiles_of(size) {
        let got = std::fs::read(public.join(t.path()))
            .unwrap_or_else(|e| panic!("size {size}: {} missing: {e}", t.path()));
        let span = 1usize << (8 * u32::from(t.level));
        let want: Vec<u8> = t
            .nodes()
            .flat_map(|n| {
                let lo = n as usize * span;
                root_from_leaf_hashes(&Blake2b256, &leaves[lo..lo + span]).unwrap()
            })
            .collect();
        assert_eq!(got, want, "size {size}: {}", t.path());
        if t.level == 0 {
            let got = std::fs::read(public.join(t.entries_path())).unwrap();
            let r = t.nodes();
            let want = entry_bundle(
                entries[r.start as usize..r.end as usize]
                    .iter()
                    .map(Vec::as_slice),
            )
            .unwrap();
            assert_eq!(got, want, "size {size}: {}", t.entries_path());
        }
    }
}

#[test]
fn every_published_size_has_all_its_tiles_recomputed_independently() {
    let ch = Channel::start_with("open", system_tests::RATE_LIMITS_OFF);
    let acme = Supplier::new("acme");
    acme.register(&ch);
    let mut sizes = vec![ch.wait_published(2)];
    // Grow past one full level-0 tile, publishing along the way.
    for round in 0..3u32 {
        for i in 0..100u32 {
            let v = format!("{round}.{i}.0");
            ch.submit(&acme.release(&acme.signing, "hello", &v, v.as_bytes()));
        }
        let size = 2 + 100 * u64::from(round + 1);
        sizes.push(ch.wait_published(size));
    }
    let last = *sizes.last().unwrap();
    assert_eq!(last, 302);
    let entries = ch.all_entries(last);
    for &s in &sizes {
        check_files(&ch, &entries, s);
    }
    // The checkpoint file is the channel's checkpoint note, at the last size.
    let note = std::fs::read(ch.public_dir().join("checkpoint")).unwrap();
    let cp = keyggdrasil::tlog_checkpoint::open(&note, &ch.key, &ch.origin()).unwrap();
    assert_eq!(cp.size(), last);
    let leaves: Vec<Hash> = entries.iter().map(|e| Blake2b256.hash_leaf(e)).collect();
    assert_eq!(
        *cp.root(),
        root_from_leaf_hashes(&Blake2b256, &leaves).unwrap()
    );
    // The full tile is there once, no partial tile of it is kept beyond what was published.
    assert!(ch.public_dir().join("tile/0/000").is_file());
    assert!(ch.public_dir().join("tile/entries/000").is_file());
    assert!(ch.public_dir().join("tile/1/000.p/1").is_file());
}

#[test]
fn an_uploaded_archive_is_published_by_digest() {
    let ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    let archive = system_tests::plugin_archive("acme/hello", "1.0.0", "tiles");
    acme.publish(&ch, "hello", "1.0.0", &archive);
    let digest: [u8; 64] = keyggdrasil::filesig::archive_digest(&archive[..])
        .unwrap()
        .1;
    let path = ch.public_dir().join(archive_path(&digest));
    assert_eq!(std::fs::read(&path).unwrap(), archive);
}

#[test]
fn check_recomputes_the_tiles_and_names_a_damaged_one() {
    let mut ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    ch.submit(&acme.release(&acme.signing, "hello", "1.0.0", b"x"));
    ch.wait_published(3);
    ch.kill();
    assert!(ch.check().contains("matches the log at size 3"));
    let tile = ch.public_dir().join("tile/0/000.p/3");
    let mut bytes = std::fs::read(&tile).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&tile, &bytes).unwrap();
    let check_fails = |says: &str| {
        let out = std::process::Command::new(super::harness::BIN)
            .args(["check", "--config"])
            .arg(&ch.config)
            .output()
            .unwrap();
        let text = system_tests::output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains(says), "{text}");
    };
    check_fails("tile/0/000.p/3 differs");
    // A missing bundle is named too.
    bytes[0] ^= 1;
    std::fs::write(&tile, &bytes).unwrap();
    std::fs::remove_file(ch.public_dir().join("tile/entries/000.p/3")).unwrap();
    check_fails("tile/entries/000.p/3 is missing");
}

#[test]
fn a_static_copy_of_a_longer_log_is_rewritten_at_start() {
    let mut ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    ch.submit(&acme.release(&acme.signing, "hello", "1.0.0", b"x"));
    ch.wait_published(3);
    ch.kill();
    // A checkpoint of 10 entries, signed by the channel key: what public/ looks like after the
    // database was restored from an older backup.
    let note =
        keyggdrasil::tlog_checkpoint::sign(&ch.origin(), 10, &[9; 32], &ch.signing_key()).unwrap();
    let path = ch.public_dir().join("checkpoint");
    std::fs::write(&path, note).unwrap();
    std::fs::remove_file(ch.public_dir().join("tile/0/000.p/3")).unwrap();
    ch.spawn();
    let mut size = 0;
    for _ in 0..500 {
        size = keyggdrasil::tlog_checkpoint::open(
            &std::fs::read(&path).unwrap(),
            &ch.key,
            &ch.origin(),
        )
        .unwrap()
        .size();
        if size == 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(size, 3);
    assert!(ch.public_dir().join("tile/0/000.p/3").is_file());
}
