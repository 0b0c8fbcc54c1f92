//! `history::SupplierHistoryResponse` (the answer of `GET /v1/suppliers/{name}`) and
//! `history::verify_supplier_history`, against one fixed checkpoint.
//!
//! The target builds a real log once: two suppliers (`acme`, `bolt`) with interleaved, validly
//! signed entries (fixed keys), its tree, and a checkpoint over it signed by a fixed channel key.
//! Input: byte 0 picks the `start` asked (modulo size + 2, so `start` at and past the size is
//! tried too), byte 1 the supplier asked (even `acme`, odd `bolt`) and the mode (bit 1): raw
//! JSON (the rest of the input), or the honest answer for that supplier and start with the rest
//! applied as byte edits (`position high, position low, new byte` triples, position modulo the
//! text length), so that the fuzzer reaches the signature and proof checks with near-honest
//! answers it could not forge from nothing.
//!
//! Properties, besides never panicking:
//! - whatever parses serialises and parses back to an equal value;
//! - the honest answer (no edits) verifies;
//! - soundness: an accepted page has at most `MAX_HISTORY_PAGE` entries, at strictly increasing
//!   indices in `start..size`, each exactly the real leaf at its index (so in the asked
//!   supplier's name and validly signed), and a `next` after the last index and below the size.
#![no_main]

use std::sync::LazyLock;

use keyggdrasil::entry::{Digest512, Entry, EntryBody, Event, GitCommit};
use keyggdrasil::history::{
    COMPLETENESS_ASSERTED, MAX_HISTORY_PAGE, SupplierHistoryResponse, verify_supplier_history,
};
use keyggdrasil::keys::{KeyPair, Signature};
use keyggdrasil::limits::Limits;
use keyggdrasil::lookup::LoggedEntry;
use keyggdrasil::merkle::{self, Blake2b256, MemoryStore};
use keyggdrasil::names::{ChannelName, PackageName, SupplierName, Version};
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{Checkpoint, Signed, TreeHash, VerifiedCheckpoint, verify_checkpoint};
use libfuzzer_sys::fuzz_target;

struct World {
    leaves: Vec<Vec<u8>>,
    checkpoint: VerifiedCheckpoint,
    /// The honest answers as JSON, by supplier (`acme`, `bolt`) and start (`0..=size`).
    honest: [Vec<Vec<u8>>; 2],
}

fn key(seed: u8) -> KeyPair {
    // `from_seed` only fails for a weak public key, which these constants do not give.
    KeyPair::from_seed(&[seed; 32]).expect("fixed seed is a valid key")
}

fn name(s: &str) -> SupplierName {
    SupplierName::parse(s).expect("constant supplier name is valid")
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let keys = [(name("acme"), key(1)), (name("bolt"), key(2))];
    let mut leaves = Vec::new();
    // acme at 0, 2, 3, 5, 6; bolt at 1, 4, 7.
    for (i, who) in [0usize, 1, 0, 0, 1, 0, 0, 1].into_iter().enumerate() {
        let (supplier, k) = &keys[who];
        let event = if i < 2 {
            Event::MasterKey {
                public_key: k.public(),
                derivation: None,
            }
        } else {
            Event::Release {
                package: PackageName::parse("hello").expect("constant"),
                version: Version::parse(&format!("1.0.{i}")).expect("constant"),
                size: 100,
                digest: Digest512([i as u8; 64]),
                commit: GitCommit::parse(&"ab".repeat(20)).expect("constant"),
                signature: Signature::from_bytes([i as u8; 64]),
                rollout: None,
            }
        };
        let entry = Entry::sign(EntryBody::new(supplier.clone(), k.public(), event), k)
            .expect("fixed entries sign");
        leaves.push(entry.as_bytes().to_vec());
    }
    let mut tree = MemoryStore::new();
    for l in &leaves {
        tree.append(&Blake2b256, l).expect("small tree");
    }
    let size = leaves.len() as u64;
    let channel = key(9);
    let cp = Checkpoint {
        v: keyggdrasil::wire::WIRE_VERSION,
        origin: ChannelName::parse("plugins.example.org").expect("constant"),
        size,
        root: TreeHash(merkle::root_at(&Blake2b256, size, &tree).expect("size of the tree")),
        time: 1_700_000_000,
    };
    let signed = Signed::sign(&channel, Context::Checkpoint, &cp);
    let checkpoint = verify_checkpoint(&signed, &channel.public(), None, &Limits::default())
        .expect("the fixed checkpoint verifies");
    let answers = |who: &SupplierName| {
        (0..=size)
            .map(|start| {
                serde_json::to_vec(&honest(&leaves, &tree, size, who, start)).expect("serialises")
            })
            .collect()
    };
    World {
        honest: [answers(&keys[0].0), answers(&keys[1].0)],
        leaves,
        checkpoint,
    }
});

/// The honest answer for `supplier` from `start` (at most `size`) in the tree of `leaves`.
fn honest(
    leaves: &[Vec<u8>],
    tree: &MemoryStore,
    size: u64,
    supplier: &SupplierName,
    start: u64,
) -> SupplierHistoryResponse {
    let entries = (start..size)
        .filter(|i| {
            Entry::parse(&leaves[*i as usize])
                .map(|e| e.body().supplier == *supplier)
                .unwrap_or(false)
        })
        .map(|index| LoggedEntry {
            index,
            entry: String::from_utf8(leaves[index as usize].clone()).expect("ascii"),
            path: merkle::prove_inclusion(&Blake2b256, index, size, tree)
                .expect("honest proof")
                .hashes()
                .iter()
                .copied()
                .map(TreeHash)
                .collect(),
        })
        .collect();
    SupplierHistoryResponse {
        supplier: supplier.clone(),
        size,
        entries,
        next: None,
        completeness: COMPLETENESS_ASSERTED.to_owned(),
    }
}

fuzz_target!(|data: &[u8]| {
    let w = &*WORLD;
    let size = w.checkpoint.size();
    let (Some(&b0), Some(&b1)) = (data.first(), data.get(1)) else {
        return;
    };
    let rest = &data[2..];
    let start = u64::from(b0) % (size + 2);
    let supplier = if b1 % 2 == 0 {
        name("acme")
    } else {
        name("bolt")
    };
    let text: Vec<u8> = if b1 & 2 == 0 {
        rest.to_vec()
    } else {
        let mut text = w.honest[usize::from(b1 % 2)][start.min(size) as usize].clone();
        if rest.len() < 3 && start < size {
            let base: SupplierHistoryResponse = serde_json::from_slice(&text).expect("parses");
            let got =
                verify_supplier_history(&base, &w.checkpoint, &supplier, start, &Limits::default())
                    .expect("the honest answer verifies");
            assert_eq!(got.len(), base.entries.len());
        }
        for edit in rest.chunks_exact(3) {
            let pos = usize::from(u16::from_be_bytes([edit[0], edit[1]])) % text.len();
            text[pos] = edit[2];
        }
        text
    };
    let Ok(resp) = serde_json::from_slice::<SupplierHistoryResponse>(&text) else {
        return;
    };
    let again: SupplierHistoryResponse =
        serde_json::from_slice(&serde_json::to_vec(&resp).expect("serialises")).expect("parses");
    assert_eq!(again, resp);
    let Ok(got) =
        verify_supplier_history(&resp, &w.checkpoint, &supplier, start, &Limits::default())
    else {
        return;
    };
    assert!(got.len() <= MAX_HISTORY_PAGE);
    assert_eq!(got.len(), resp.entries.len());
    let mut last = None;
    for e in &got {
        assert!(
            e.index >= start && e.index < size,
            "index outside start..size"
        );
        assert!(last.is_none_or(|l| e.index > l), "indices not increasing");
        last = Some(e.index);
        assert_eq!(
            e.entry.as_bytes(),
            &w.leaves[e.index as usize][..],
            "accepted an entry that is not the leaf at its index"
        );
        assert_eq!(e.entry.body().supplier, supplier);
        assert!(e.entry.signature_is_valid());
    }
    if let Some(next) = resp.next {
        assert!(next < size);
        assert!(next > last.unwrap_or(start));
    }
});
