//! Merkle log against published and independently computed vectors.
//!
//! - `transparency_dev`: every RFC 6962 SHA-256 inclusion and consistency vector of
//!   transparency-dev/merkle (`fixtures/merkle/transparency-dev/`) must reach its expected outcome.
//! - `own_negatives`: our own mutations (wrong size, truncated, extended, swapped nodes, proof for
//!   another leaf, wrong root, old > new, index >= size) of those vectors' honest proofs and of
//!   BLAKE2b-256 trees must all be refused.
//! - `blake2b_known_answers`: roots and proofs of the production hash against
//!   `fixtures/merkle/blake2b256.json`, made by an independent Python implementation.

use std::path::{Path, PathBuf};

use keyggdrasil::merkle::{
    Blake2b256, ConsistencyProof, Hash, InclusionProof, MemoryStore, MerkleError, TreeHasher,
    prove_consistency, prove_inclusion, root_at, root_from_leaf_hashes, verify_consistency,
    verify_inclusion,
};

/// RFC 6962's SHA-256 tree hash, only to run the public SHA-256 vectors.
use keyggdrasil::merkle::Sha256Interop as Sha256;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/merkle")
}

/// All `.json` files below `dir`, sorted, so failures name the same file every run.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("read fixture folder") {
            let path = entry.expect("read fixture folder entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .unwrap_or_else(|| panic!("bad base64 in {text:?}")) as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex_hash(text: &str) -> Hash {
    hex(text).try_into().expect("32-byte hash")
}

/// Values of a vector, converted to our fixed-size [`Hash`].
///
/// Some vectors hold values that are not 32 bytes long. Most are deliberately malformed hashes (an
/// empty leaf, "WrongLeaf", an empty proof element): such a value cannot be a `Hash`, so our API
/// refuses it while decoding, before any verifier runs (as a wire parser must), and the vector's
/// outcome is "refused". The others are "don't care" placeholders (`don't care 1`) that stand for
/// values a verifier is never meant to need; each is replaced by a 32-byte stand-in (the placeholder
/// zero-padded, so different placeholders stay different) and the verifier runs as usual.
#[derive(Default)]
struct Converted {
    malformed: bool,
}

impl Converted {
    fn hash(&mut self, text: &str) -> Hash {
        let raw = base64(text);
        if let Ok(hash) = Hash::try_from(raw.as_slice()) {
            return hash;
        }
        let mut stand_in = [0u8; 32];
        if raw.starts_with(b"don't care") && raw.len() < 32 {
            stand_in[..raw.len()].copy_from_slice(&raw);
        } else {
            self.malformed = true;
        }
        stand_in
    }

    fn hashes(&mut self, texts: &Option<Vec<String>>) -> Vec<Hash> {
        texts.iter().flatten().map(|t| self.hash(t)).collect()
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InclusionVector {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyVector {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    #[serde(rename = "wantErr")]
    want_err: bool,
}

/// An inclusion case, ready for [`verify_inclusion`].
#[derive(Clone, Debug)]
struct Inclusion {
    index: u64,
    size: u64,
    leaf: Hash,
    proof: Vec<Hash>,
    root: Hash,
}

impl Inclusion {
    fn verify<H: TreeHasher>(&self, hasher: &H) -> Result<(), MerkleError> {
        verify_inclusion(
            hasher,
            self.index,
            self.size,
            &self.leaf,
            &InclusionProof::new(self.proof.clone())?,
            &self.root,
        )
    }
}

/// A consistency case, ready for [`verify_consistency`].
#[derive(Clone, Debug)]
struct Consistency {
    old_size: u64,
    new_size: u64,
    old_root: Hash,
    new_root: Hash,
    proof: Vec<Hash>,
}

impl Consistency {
    fn verify<H: TreeHasher>(&self, hasher: &H) -> Result<(), MerkleError> {
        verify_consistency(
            hasher,
            self.old_size,
            self.new_size,
            &self.old_root,
            &self.new_root,
            &ConsistencyProof::new(self.proof.clone())?,
        )
    }
}

fn load_inclusion() -> Vec<(PathBuf, InclusionVector)> {
    json_files(&fixtures().join("transparency-dev/inclusion"))
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read vector");
            let v =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, v)
        })
        .collect()
}

fn load_consistency() -> Vec<(PathBuf, ConsistencyVector)> {
    json_files(&fixtures().join("transparency-dev/consistency"))
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read vector");
            let v =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, v)
        })
        .collect()
}

fn convert_inclusion(v: &InclusionVector) -> (Inclusion, bool) {
    let mut c = Converted::default();
    let case = Inclusion {
        index: v.leaf_idx,
        size: v.tree_size,
        leaf: c.hash(&v.leaf_hash),
        proof: c.hashes(&v.proof),
        root: c.hash(&v.root),
    };
    (case, c.malformed)
}

fn convert_consistency(v: &ConsistencyVector) -> (Consistency, bool) {
    let mut c = Converted::default();
    let case = Consistency {
        old_size: v.size1,
        new_size: v.size2,
        old_root: c.hash(&v.root1),
        new_root: c.hash(&v.root2),
        proof: c.hashes(&v.proof),
    };
    (case, c.malformed)
}

/// Runs every vector of a suite and checks its outcome; returns how many were refused while
/// decoding, by the verifier, and accepted.
fn run_suite<C>(
    vectors: Vec<(PathBuf, (C, bool), bool, String)>,
    verify: impl Fn(&C) -> Result<(), MerkleError>,
) -> [usize; 3] {
    let mut counts = [0; 3];
    for (path, (case, malformed), want_err, desc) in vectors {
        let got = if malformed {
            counts[0] += 1;
            Err("refused while decoding: a value is not a 32-byte hash".to_string())
        } else {
            verify(&case).map_err(|e| e.to_string())
        };
        if got.is_ok() {
            counts[2] += 1;
        } else if !malformed {
            counts[1] += 1;
        }
        assert_eq!(
            got.is_err(),
            want_err,
            "{} ({desc}): got {got:?}",
            path.display()
        );
    }
    counts
}

mod transparency_dev {
    use super::*;

    #[test]
    fn every_inclusion_vector_has_its_expected_outcome() {
        let vectors: Vec<_> = load_inclusion()
            .into_iter()
            .map(|(path, v)| (path, convert_inclusion(&v), v.want_err, v.desc))
            .collect();
        let counts = run_suite(vectors, |c: &Inclusion| c.verify(&Sha256));
        // 98 vectors: 26 with malformed hashes, 66 refused by the verifier, 6 honest.
        assert_eq!(counts, [26, 66, 6]);
    }

    #[test]
    fn every_consistency_vector_has_its_expected_outcome() {
        let vectors: Vec<_> = load_consistency()
            .into_iter()
            .map(|(path, v)| (path, convert_consistency(&v), v.want_err, v.desc))
            .collect();
        let counts = run_suite(vectors, |c: &Consistency| c.verify(&Sha256));
        // 98 vectors: 16 with malformed hashes, 76 refused by the verifier, 6 honest (5 happy
        // paths and equal sizes with equal placeholder roots).
        assert_eq!(counts, [16, 76, 6]);
    }

    /// The honest proofs of the suite are exactly what our store produces for the RFC 6962 test tree
    /// (the 8 leaves of RFC 6962's reference tests, as used by transparency-dev/merkle).
    #[test]
    fn our_proofs_reproduce_the_happy_paths() {
        let leaves: [&[u8]; 8] = [
            b"",
            &[0x00],
            &[0x10],
            &[0x20, 0x21],
            &[0x30, 0x31],
            &[0x40, 0x41, 0x42, 0x43],
            &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            &[
                0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
                0x6e, 0x6f,
            ],
        ];
        let mut store = MemoryStore::new();
        for leaf in leaves {
            store.append(&Sha256, leaf).expect("append");
        }
        let mut checked = 0;
        for (path, v) in load_inclusion() {
            if v.desc != "happy path" {
                continue;
            }
            let (case, _) = convert_inclusion(&v);
            let proof = prove_inclusion(&Sha256, case.index, case.size, &store).expect("prove");
            assert_eq!(proof.hashes(), case.proof, "{}", path.display());
            assert_eq!(root_at(&Sha256, case.size, &store).ok(), Some(case.root));
            checked += 1;
        }
        for (path, v) in load_consistency() {
            if v.desc != "happy path" {
                continue;
            }
            let (case, _) = convert_consistency(&v);
            let proof =
                prove_consistency(&Sha256, case.old_size, case.new_size, &store).expect("prove");
            assert_eq!(proof.hashes(), case.proof, "{}", path.display());
            assert_eq!(
                root_at(&Sha256, case.old_size, &store).ok(),
                Some(case.old_root)
            );
            assert_eq!(
                root_at(&Sha256, case.new_size, &store).ok(),
                Some(case.new_root)
            );
            checked += 1;
        }
        assert_eq!(checked, 10);
    }
}

mod own_negatives {
    use super::*;

    fn flip(h: &Hash, bit: usize) -> Hash {
        let mut out = *h;
        out[bit / 8 % 32] ^= 1 << (bit % 8);
        out
    }

    /// Mutations of an honest inclusion case that must always be refused, whatever the tree.
    fn inclusion_mutations(ok: &Inclusion) -> Vec<(String, Inclusion)> {
        let mut out = Vec::new();
        let mut push = |name: String, f: &dyn Fn(&mut Inclusion)| {
            let mut m = ok.clone();
            f(&mut m);
            out.push((name, m));
        };
        push("wrong root".into(), &|m| m.root = flip(&m.root, 0));
        push("wrong leaf".into(), &|m| m.leaf = flip(&m.leaf, 255));
        push("index = size".into(), &|m| m.index = m.size);
        push("index > size".into(), &|m| m.index = m.size + 7);
        push("index = u64::MAX".into(), &|m| m.index = u64::MAX);
        push("size 0".into(), &|m| m.size = 0);
        push("size doubled".into(), &|m| m.size *= 2);
        push("size huge".into(), &|m| m.size = u64::MAX);
        push("extended proof".into(), &|m| m.proof.push(m.root));
        push("proof with preceding hash".into(), &|m| {
            m.proof.insert(0, m.leaf)
        });
        push("proof padded to 65 hashes".into(), &|m| {
            m.proof.resize(65, [7; 32])
        });
        for i in 0..ok.proof.len() {
            push(format!("bit flipped in proof[{i}]"), &|m| {
                m.proof[i] = flip(&m.proof[i], 77)
            });
            push(format!("proof[{i}] removed"), &|m| {
                m.proof.remove(i);
            });
            if i + 1 < ok.proof.len() && ok.proof[i] != ok.proof[i + 1] {
                push(format!("proof[{i}] and proof[{}] swapped", i + 1), &|m| {
                    m.proof.swap(i, i + 1)
                });
            }
        }
        if ok.proof.is_empty() {
            push("empty proof extended".into(), &|m| m.proof.push([0; 32]));
        } else {
            push("root used as leaf".into(), &|m| m.leaf = m.root);
        }
        out
    }

    /// Mutations of an honest consistency case (with different sizes) that must always be refused.
    fn consistency_mutations(ok: &Consistency) -> Vec<(String, Consistency)> {
        let mut out = Vec::new();
        let mut push = |name: String, f: &dyn Fn(&mut Consistency)| {
            let mut m = ok.clone();
            f(&mut m);
            out.push((name, m));
        };
        push("wrong old root".into(), &|m| {
            m.old_root = flip(&m.old_root, 3)
        });
        push("wrong new root".into(), &|m| {
            m.new_root = flip(&m.new_root, 200)
        });
        push("swapped roots".into(), &|m| {
            std::mem::swap(&mut m.old_root, &mut m.new_root)
        });
        push("swapped sizes (old > new)".into(), &|m| {
            std::mem::swap(&mut m.old_size, &mut m.new_size)
        });
        push("old size 0".into(), &|m| m.old_size = 0);
        push("new size huge".into(), &|m| m.new_size = u64::MAX);
        push("sizes equal".into(), &|m| m.old_size = m.new_size);
        push("extended proof".into(), &|m| m.proof.push(m.new_root));
        push("proof with preceding hash".into(), &|m| {
            m.proof.insert(0, m.old_root)
        });
        push("proof truncated to nothing".into(), &|m| m.proof.clear());
        push("proof padded to 65 hashes".into(), &|m| {
            m.proof.resize(65, [7; 32])
        });
        for i in 0..ok.proof.len() {
            push(format!("bit flipped in proof[{i}]"), &|m| {
                m.proof[i] = flip(&m.proof[i], 9)
            });
            push(format!("proof[{i}] removed"), &|m| {
                m.proof.remove(i);
            });
            if i + 1 < ok.proof.len() && ok.proof[i] != ok.proof[i + 1] {
                push(format!("proof[{i}] and proof[{}] swapped", i + 1), &|m| {
                    m.proof.swap(i, i + 1)
                });
            }
        }
        out
    }

    fn assert_all_refused<H: TreeHasher>(hasher: &H, ok: &Inclusion, what: &str) {
        assert_eq!(
            ok.verify(hasher).ok(),
            Some(()),
            "{what}: honest case verifies"
        );
        for (name, m) in inclusion_mutations(ok) {
            assert!(m.verify(hasher).is_err(), "{what}: {name} was accepted");
        }
    }

    fn assert_all_refused_consistency<H: TreeHasher>(hasher: &H, ok: &Consistency, what: &str) {
        assert_eq!(
            ok.verify(hasher).ok(),
            Some(()),
            "{what}: honest case verifies"
        );
        for (name, m) in consistency_mutations(ok) {
            assert!(m.verify(hasher).is_err(), "{what}: {name} was accepted");
        }
    }

    #[test]
    fn mutated_transparency_dev_inclusion_proofs_are_refused() {
        let mut n = 0;
        for (path, v) in load_inclusion() {
            if !v.want_err {
                let (ok, _) = convert_inclusion(&v);
                assert_all_refused(&Sha256, &ok, &path.display().to_string());
                n += 1;
            }
        }
        assert_eq!(n, 6);
    }

    #[test]
    fn mutated_transparency_dev_consistency_proofs_are_refused() {
        let mut n = 0;
        for (path, v) in load_consistency() {
            if !v.want_err && v.size1 < v.size2 {
                let (ok, _) = convert_consistency(&v);
                assert_all_refused_consistency(&Sha256, &ok, &path.display().to_string());
                n += 1;
            }
        }
        assert_eq!(n, 4);
    }

    fn blake2b_tree(size: u64) -> (MemoryStore, Vec<Hash>) {
        let mut store = MemoryStore::new();
        let mut leaves = Vec::new();
        for i in 0..size {
            let entry = format!("entry {i}");
            leaves.push(Blake2b256.hash_leaf(entry.as_bytes()));
            store.append(&Blake2b256, entry.as_bytes()).expect("append");
        }
        (store, leaves)
    }

    /// Every honest BLAKE2b-256 inclusion proof in trees of up to 40 leaves, mutated every way, and
    /// checked against other sizes (with their true roots) and other leaves.
    #[test]
    fn mutated_blake2b_inclusion_proofs_are_refused() {
        const N: u64 = 40;
        let (store, leaves) = blake2b_tree(N);
        let roots: Vec<Hash> = (0..=N)
            .map(|s| root_at(&Blake2b256, s, &store).expect("root"))
            .collect();
        for size in 1..=N {
            let root = roots[size as usize];
            let proofs: Vec<Vec<Hash>> = (0..size)
                .map(|i| {
                    prove_inclusion(&Blake2b256, i, size, &store)
                        .expect("prove")
                        .into_hashes()
                })
                .collect();
            for index in 0..size {
                let ok = Inclusion {
                    index,
                    size,
                    leaf: leaves[index as usize],
                    proof: proofs[index as usize].clone(),
                    root,
                };
                assert_all_refused(&Blake2b256, &ok, &format!("leaf {index} of {size}"));
                // Wrong size: the proof for (index, size) against any other size and its root.
                for other in (index + 1)..=N {
                    if other != size {
                        let m = Inclusion {
                            size: other,
                            root: roots[other as usize],
                            ..ok.clone()
                        };
                        assert!(
                            m.verify(&Blake2b256).is_err(),
                            "{index}/{size} as size {other}"
                        );
                    }
                }
                // Proof for another leaf: leaf `index` with the proof of leaf `other`, at either index.
                for other in (0..size).filter(|&o| o != index) {
                    let proof = proofs[other as usize].clone();
                    let m = Inclusion {
                        proof: proof.clone(),
                        ..ok.clone()
                    };
                    assert!(
                        m.verify(&Blake2b256).is_err(),
                        "{index}/{size} with proof of {other}"
                    );
                    let m = Inclusion {
                        index: other,
                        proof,
                        ..ok.clone()
                    };
                    assert!(
                        m.verify(&Blake2b256).is_err(),
                        "leaf {index} claimed at {other}"
                    );
                }
            }
        }
    }

    #[test]
    fn mutated_blake2b_consistency_proofs_are_refused() {
        const N: u64 = 40;
        let (store, _) = blake2b_tree(N);
        let roots: Vec<Hash> = (0..=N)
            .map(|s| root_at(&Blake2b256, s, &store).expect("root"))
            .collect();
        for new_size in 2..=N {
            for old_size in 1..new_size {
                let proof = prove_consistency(&Blake2b256, old_size, new_size, &store)
                    .expect("prove")
                    .into_hashes();
                let ok = Consistency {
                    old_size,
                    new_size,
                    old_root: roots[old_size as usize],
                    new_root: roots[new_size as usize],
                    proof,
                };
                let what = format!("{old_size} -> {new_size}");
                assert_all_refused_consistency(&Blake2b256, &ok, &what);
                // Wrong sizes, each with its true root.
                for other in 1..=N {
                    if other != old_size && other <= new_size {
                        let m = Consistency {
                            old_size: other,
                            old_root: roots[other as usize],
                            ..ok.clone()
                        };
                        assert!(m.verify(&Blake2b256).is_err(), "{what} as old size {other}");
                    }
                    if other != new_size && other >= old_size {
                        let m = Consistency {
                            new_size: other,
                            new_root: roots[other as usize],
                            ..ok.clone()
                        };
                        assert!(m.verify(&Blake2b256).is_err(), "{what} as new size {other}");
                    }
                }
            }
        }
    }

    /// The refusals name what failed.
    #[test]
    fn refusals_say_why() {
        let (store, leaves) = blake2b_tree(13);
        let root = root_at(&Blake2b256, 13, &store).expect("root");
        let proof = prove_inclusion(&Blake2b256, 5, 13, &store).expect("prove");
        let check = |index, size, leaf: &Hash, hashes: &[Hash], root: &Hash| {
            let proof = InclusionProof::new(hashes.to_vec()).expect("short proof");
            verify_inclusion(&Blake2b256, index, size, leaf, &proof, root)
        };
        let leaf = &leaves[5];
        let h = proof.hashes();
        assert!(matches!(
            check(13, 13, leaf, h, &root),
            Err(MerkleError::IndexOutOfRange {
                index: 13,
                size: 13
            })
        ));
        assert!(matches!(
            check(5, 13, leaf, &h[1..], &root),
            Err(MerkleError::WrongProofLength { got: 3, want: 4 })
        ));
        let mut longer = h.to_vec();
        longer.push(root);
        assert!(matches!(
            check(5, 13, leaf, &longer, &root),
            Err(MerkleError::WrongProofLength { got: 5, want: 4 })
        ));
        assert!(matches!(
            check(5, 13, leaf, h, &leaves[0]),
            Err(MerkleError::RootMismatch)
        ));
        assert!(matches!(
            InclusionProof::new(vec![[0; 32]; 65]),
            Err(MerkleError::ProofTooLong { len: 65 })
        ));
        assert!(matches!(
            check(5, u64::MAX, leaf, h, &root),
            Err(MerkleError::TreeTooLarge { size: u64::MAX })
        ));

        let old = root_at(&Blake2b256, 6, &store).expect("root");
        let proof = prove_consistency(&Blake2b256, 6, 13, &store).expect("prove");
        let check = |o, n, old: &Hash, new: &Hash, hashes: &[Hash]| {
            let proof = ConsistencyProof::new(hashes.to_vec()).expect("short proof");
            verify_consistency(&Blake2b256, o, n, old, new, &proof)
        };
        let h = proof.hashes();
        assert_eq!(check(6, 13, &old, &root, h).ok(), Some(()));
        assert!(matches!(
            check(13, 6, &old, &root, h),
            Err(MerkleError::OldSizeExceedsNew {
                old_size: 13,
                new_size: 6
            })
        ));
        assert!(matches!(
            check(0, 13, &old, &root, h),
            Err(MerkleError::EmptyOldTree)
        ));
        assert!(matches!(
            check(6, 13, &old, &root, &h[..h.len() - 1]),
            Err(MerkleError::WrongProofLength { .. })
        ));
        assert!(matches!(
            check(6, 13, &root, &root, h),
            Err(MerkleError::OldRootMismatch)
        ));
        assert!(matches!(
            check(6, 13, &old, &old, h),
            Err(MerkleError::NewRootMismatch)
        ));
        assert!(matches!(
            check(13, 13, &old, &root, &[]),
            Err(MerkleError::EqualSizesDifferentRoots)
        ));
        assert!(matches!(
            check(13, 13, &root, &root, h),
            Err(MerkleError::WrongProofLength { want: 0, .. })
        ));
        assert_eq!(check(13, 13, &root, &root, &[]).ok(), Some(()));

        // Messages are lowercase and say what failed.
        for e in [
            check(13, 6, &old, &root, h),
            check(6, 13, &root, &root, h),
            check(0, 1, &root, &root, h),
        ] {
            let text = e.expect_err("refused").to_string();
            assert!(text.starts_with(|c: char| c.is_lowercase()), "{text}");
        }
    }
}

mod blake2b_known_answers {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Kat {
        empty_root: String,
        entries: Vec<String>,
        leaf_hashes: Vec<String>,
        roots: Vec<KatRoot>,
        inclusion: Vec<KatInclusion>,
        consistency: Vec<KatConsistency>,
    }

    #[derive(serde::Deserialize)]
    struct KatRoot {
        size: u64,
        root: String,
    }

    #[derive(serde::Deserialize)]
    struct KatInclusion {
        index: u64,
        size: u64,
        proof: Vec<String>,
    }

    #[derive(serde::Deserialize)]
    struct KatConsistency {
        old_size: u64,
        new_size: u64,
        proof: Vec<String>,
    }

    fn kat() -> Kat {
        let text = std::fs::read_to_string(fixtures().join("blake2b256.json")).expect("read KAT");
        serde_json::from_str(&text).expect("parse KAT")
    }

    #[test]
    fn empty_and_one_leaf_roots() {
        let kat = kat();
        assert_eq!(Blake2b256.empty_root(), hex_hash(&kat.empty_root));
        assert_eq!(
            root_at(&Blake2b256, 0, &MemoryStore::new()).ok(),
            Some(hex_hash(&kat.empty_root))
        );
        assert_eq!(
            root_from_leaf_hashes(&Blake2b256, &[]).ok(),
            Some(hex_hash(&kat.empty_root))
        );
        // The 1-leaf tree of the empty entry: its root is its leaf hash, BLAKE2b-256(0x00).
        let mut one = MemoryStore::new();
        one.append(&Blake2b256, &hex(&kat.entries[0]))
            .expect("append");
        assert_eq!(kat.roots[1].size, 1);
        assert_eq!(
            one.root(&Blake2b256).ok(),
            Some(hex_hash(&kat.roots[1].root))
        );
        assert_eq!(
            hex_hash(&kat.roots[1].root),
            hex_hash("03170a2e7597b7b7e3d84c05391d139a62b157e78786d8c082f29dcf4c111314")
        );
    }

    #[test]
    fn leaf_hashes_roots_and_proofs_match() {
        let kat = kat();
        let mut store = MemoryStore::new();
        let mut leaves = Vec::new();
        for (entry, leaf) in kat.entries.iter().zip(&kat.leaf_hashes) {
            let entry = hex(entry);
            assert_eq!(Blake2b256.hash_leaf(&entry), hex_hash(leaf));
            leaves.push(hex_hash(leaf));
            store.append(&Blake2b256, &entry).expect("append");
        }
        assert_eq!(kat.roots.len(), kat.entries.len() + 1);
        for r in &kat.roots {
            let want = hex_hash(&r.root);
            assert_eq!(
                root_at(&Blake2b256, r.size, &store).ok(),
                Some(want),
                "size {}",
                r.size
            );
            let prefix = &leaves[..r.size as usize];
            assert_eq!(root_from_leaf_hashes(&Blake2b256, prefix).ok(), Some(want));
        }
        let root = |size: u64| hex_hash(&kat.roots[size as usize].root);
        for p in &kat.inclusion {
            let want: Vec<Hash> = p.proof.iter().map(|h| hex_hash(h)).collect();
            let got = prove_inclusion(&Blake2b256, p.index, p.size, &store).expect("prove");
            assert_eq!(got.hashes(), want, "inclusion {} of {}", p.index, p.size);
            let leaf = &leaves[p.index as usize];
            assert_eq!(
                verify_inclusion(&Blake2b256, p.index, p.size, leaf, &got, &root(p.size)).ok(),
                Some(())
            );
        }
        for p in &kat.consistency {
            let want: Vec<Hash> = p.proof.iter().map(|h| hex_hash(h)).collect();
            let got =
                prove_consistency(&Blake2b256, p.old_size, p.new_size, &store).expect("prove");
            assert_eq!(
                got.hashes(),
                want,
                "consistency {} -> {}",
                p.old_size,
                p.new_size
            );
            let (old, new) = (root(p.old_size), root(p.new_size));
            assert_eq!(
                verify_consistency(&Blake2b256, p.old_size, p.new_size, &old, &new, &got).ok(),
                Some(())
            );
        }
        assert_eq!(kat.inclusion.len(), 91);
        assert_eq!(kat.consistency.len(), 91);
    }
}
