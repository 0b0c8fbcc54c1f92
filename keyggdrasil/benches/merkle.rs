//! Merkle log costs at 1k, 100k and 1M leaves: append, inclusion and consistency proof generation,
//! and verification. Each operation is O(log n), so the time per operation should stay nearly flat
//! while the tree grows a thousandfold.
//!
//! Run: `cargo bench -p keyggdrasil --bench merkle`. One 1M-leaf `MemoryStore` is built once; the
//! smaller trees are its prefixes (roots and proofs work at any size up to the current one).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use keyggdrasil::merkle::{
    Blake2b256, ConsistencyProof, Hash, InclusionProof, MemoryStore, TreeHasher, append_leaf_hash,
    prove_consistency, prove_inclusion, root_at, verify_consistency, verify_inclusion,
};

const H: Blake2b256 = Blake2b256;
const SIZES: [u64; 3] = [1_000, 100_000, 1_000_000];

fn leaf(i: u64) -> Hash {
    H.hash_leaf(&i.to_le_bytes())
}

/// A small deterministic generator, so that every run measures the same mix of indices.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn merkle(c: &mut Criterion) {
    let mut store = MemoryStore::new();
    for i in 0..SIZES[2] {
        store.append_leaf_hash(&H, leaf(i)).expect("append");
    }

    let mut group = c.benchmark_group("merkle/append_leaf_hash");
    for n in SIZES {
        // The cost depends on the trailing one bits of the size, so cycle over the 512 sizes below
        // n: the average over them is what a log growing past n pays per entry.
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let mut k = 0;
            b.iter(|| {
                k = (k + 1) % 512;
                let size = n - 1 - k;
                black_box(append_leaf_hash(&H, size, leaf(size), &store).expect("append"))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("merkle/prove_inclusion");
    for n in SIZES {
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let mut rng = Lcg(n);
            b.iter(|| black_box(prove_inclusion(&H, rng.below(n), n, &store).expect("prove")))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("merkle/prove_consistency");
    for n in SIZES {
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let mut rng = Lcg(n);
            b.iter(|| {
                let old = 1 + rng.below(n - 1);
                black_box(prove_consistency(&H, old, n, &store).expect("prove"))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("merkle/verify_inclusion");
    for n in SIZES {
        let root = root_at(&H, n, &store).expect("root");
        let mut rng = Lcg(n);
        let cases: Vec<(u64, InclusionProof)> = (0..256)
            .map(|_| {
                let index = rng.below(n);
                (index, prove_inclusion(&H, index, n, &store).expect("prove"))
            })
            .collect();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let mut k = 0;
            b.iter(|| {
                k = (k + 1) % cases.len();
                let (index, proof) = &cases[k];
                verify_inclusion(&H, *index, n, &leaf(*index), proof, &root).expect("verify");
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("merkle/verify_consistency");
    for n in SIZES {
        let root = root_at(&H, n, &store).expect("root");
        let mut rng = Lcg(n);
        let cases: Vec<(u64, Hash, ConsistencyProof)> = (0..256)
            .map(|_| {
                let old = 1 + rng.below(n - 1);
                let old_root = root_at(&H, old, &store).expect("root");
                (
                    old,
                    old_root,
                    prove_consistency(&H, old, n, &store).expect("prove"),
                )
            })
            .collect();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let mut k = 0;
            b.iter(|| {
                k = (k + 1) % cases.len();
                let (old, old_root, proof) = &cases[k];
                verify_consistency(&H, *old, n, old_root, &root, proof).expect("verify");
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = merkle
}
criterion_main!(benches);
