//! Our tile, entry-bundle and checkpoint writers against Tessera's test log
//! (`fixtures/tessera/`, source, commit and licence in its README): with SHA-256 and the key of
//! Tessera's `build_log.sh`, every file of every size 0–15 is reproduced byte for byte.

use base64ct::{Base64, Encoding};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::merkle::{MemoryStore, TreeHasher, root_from_leaf_hashes};
use keyggdrasil::names::ChannelName;
use keyggdrasil::note::VerifierKey;
use keyggdrasil::tiles::{entry_bundle, tile_bytes, tiles_of};
use keyggdrasil::tlog_checkpoint;

use keyggdrasil::merkle::Sha256Interop as Sha256;

const ENTRIES: [&str; 15] = [
    "one", "two", "three", "four", "five", "six", "seven", "eit", "nain", "ten", "ileven", "twelf",
    "threeten", "fourten", "fivten",
];
const PRIVATE_KEY: &str =
    "PRIVATE+KEY+example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg";
const PUBLIC_KEY: &str =
    "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";

fn fixture(path: &str) -> Vec<u8> {
    let p = format!(
        "{}/../fixtures/tessera/log/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn log_key() -> KeyPair {
    // Go's private-key text: PRIVATE+KEY+<name>+<key ID>+base64(0x01 || seed).
    let raw = Base64::decode_vec(PRIVATE_KEY.splitn(5, '+').nth(4).unwrap()).unwrap();
    assert_eq!(raw[0], keyggdrasil::note::ALG_ED25519);
    KeyPair::from_seed(&raw[1..].try_into().unwrap()).unwrap()
}

#[test]
fn every_tile_bundle_and_checkpoint_of_tessera_s_log_is_reproduced() {
    let key = log_key();
    let verifier = VerifierKey::parse(PUBLIC_KEY).unwrap();
    assert_eq!(verifier.public_key(), &key.public());
    let origin = ChannelName::parse("example.com/log/testdata").unwrap();
    assert_eq!(
        tlog_checkpoint::verifier_key(&origin, &key.public())
            .unwrap()
            .to_string(),
        PUBLIC_KEY
    );
    let mut store = MemoryStore::new();
    let mut leaves = Vec::new();
    let mut files = 0;
    for size in 0..=ENTRIES.len() as u64 {
        if size > 0 {
            let e = ENTRIES[size as usize - 1].as_bytes();
            store.append(&Sha256, e).unwrap();
            leaves.push(Sha256.hash_leaf(e));
        }
        let root = root_from_leaf_hashes(&Sha256, &leaves).unwrap();
        // The checkpoint note: same text, same signature (Ed25519 is deterministic).
        let want = fixture(&format!("checkpoint.{size}"));
        let ours = tlog_checkpoint::sign(&origin, size, &root, &key).unwrap();
        assert_eq!(ours.as_bytes(), &want[..], "checkpoint.{size}");
        let cp = tlog_checkpoint::open(&want, &key.public(), &origin).unwrap();
        assert_eq!((cp.size(), *cp.root()), (size, root));
        files += 1;
        // Every tile of this size, and its entry bundle.
        for tile in tiles_of(size) {
            let bytes = tile_bytes(&tile, size, &store).unwrap();
            assert_eq!(bytes, fixture(&tile.path()), "{}", tile.path());
            let first = tile.index as usize * 256;
            let bundle = entry_bundle(
                ENTRIES[first..first + usize::from(tile.width)]
                    .iter()
                    .map(|e| e.as_bytes()),
            )
            .unwrap();
            assert_eq!(
                bundle,
                fixture(&tile.entries_path()),
                "{}",
                tile.entries_path()
            );
            files += 2;
        }
    }
    assert_eq!(files, 16 + 2 * 15);
}

#[test]
fn a_changed_tessera_checkpoint_is_refused() {
    let key = log_key();
    let origin = ChannelName::parse("example.com/log/testdata").unwrap();
    let want = String::from_utf8(fixture("checkpoint.3")).unwrap();
    let changed = want.replacen("\n3\n", "\n4\n", 1);
    assert!(tlog_checkpoint::open(changed.as_bytes(), &key.public(), &origin).is_err());
    // Another origin: the same key under another name is another key ID.
    let other = ChannelName::parse("example.com/log/other").unwrap();
    assert!(tlog_checkpoint::open(want.as_bytes(), &key.public(), &other).is_err());
}
