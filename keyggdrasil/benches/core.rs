//! Benchmarks of the expensive core operations: file digests and signatures on a large file,
//! Argon2i at libsodium's "moderate" level, and Ed25519 single versus batch verification.
//!
//! Run with `cargo bench -p keyggdrasil --bench core`; `benches/compare.sh` runs this together
//! with the reference tools (b2sum, libsodium through PyNaCl) and prints the ratios.
//!
//! The file benchmarks use a 256 MiB file of pseudo-random bytes written once into a temporary
//! directory. If `KG_BENCH_FILE` names an existing file, that file is used instead (compare.sh
//! passes the file it also feeds to b2sum, so both read the very same bytes).

use std::fs::File;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use keyggdrasil::filesig;
use keyggdrasil::kdf::Derivation;
use keyggdrasil::keys::{self, KeyPair, PublicKey, Signature};

/// Size of the generated benchmark file.
const FILE_SIZE: u64 = 256 * 1024 * 1024;

/// Number of signatures in the single-versus-batch comparison.
const N_SIGS: usize = 256;

/// Writes `size` pseudo-random bytes (SplitMix64, fixed seed) to `path`.
fn write_random_file(path: &Path, size: u64) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut state: u64 = 0x6b65_7967_6472_6173; // "keygdras"
    let mut block = [0u8; 8192];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            word.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        let n = usize::try_from(left.min(block.len() as u64)).expect("block fits in usize");
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// The file to hash: `KG_BENCH_FILE` if set, else a fresh 256 MiB file in a temporary directory
/// (kept alive by the returned guard).
fn bench_file() -> (Option<tempfile::TempDir>, PathBuf) {
    if let Some(path) = std::env::var_os("KG_BENCH_FILE") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "KG_BENCH_FILE={path:?} is not a file");
        return (None, path);
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("archive.bin");
    write_random_file(&path, FILE_SIZE).expect("write benchmark file");
    (Some(dir), path)
}

fn file_signatures(c: &mut Criterion) {
    // blake2b_simd picks its AVX2 kernel at run time when this is true.
    #[cfg(target_arch = "x86_64")]
    println!(
        "cpu: avx2 detected = {}",
        std::arch::is_x86_feature_detected!("avx2")
    );
    let (_guard, path) = bench_file();
    let size = std::fs::metadata(&path).expect("stat benchmark file").len();
    let open = || File::open(&path).expect("open benchmark file");
    let kp = KeyPair::generate();
    let public = kp.public();
    let sig = filesig::sign(&kp, open()).expect("sign");
    filesig::verify(&public, &sig, open()).expect("signature verifies");
    // Warm the page cache once before any timing.
    filesig::digest_both(&public, open()).expect("read file");

    let mut g = c.benchmark_group(format!("filesig_{}MiB", size >> 20));
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes(size));
    g.bench_function("sign", |b| {
        b.iter(|| filesig::sign(&kp, open()).expect("sign"));
    });
    g.bench_function("verify", |b| {
        b.iter(|| filesig::verify(&public, &sig, open()).expect("verify"));
    });
    g.bench_function("digest_both", |b| {
        b.iter(|| filesig::digest_both(&public, open()).expect("digest"));
    });
    g.finish();
}

fn argon2i_moderate(c: &mut Criterion) {
    // libsodium's crypto_pwhash_argon2i OPSLIMIT_MODERATE / MEMLIMIT_MODERATE.
    let d = Derivation::with_salt([7u8; 16], 6, 128 * 1024 * 1024);
    let mut g = c.benchmark_group("argon2i");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(12));
    g.bench_function("moderate", |b| {
        b.iter(|| {
            d.derive_keypair(black_box(b"correct horse battery staple"))
                .expect("derive")
        });
    });
    g.finish();
}

fn ed25519_batch(c: &mut Criterion) {
    let kps: Vec<KeyPair> = (0..N_SIGS).map(|_| KeyPair::generate()).collect();
    // 128-byte messages, each distinct (the size of a small signed log entry).
    let msgs: Vec<Vec<u8>> = (0..N_SIGS)
        .map(|i| {
            let mut m = vec![0u8; 128];
            m[..8].copy_from_slice(&(i as u64).to_le_bytes());
            m
        })
        .collect();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    let sigs: Vec<Signature> = kps.iter().zip(&msgs).map(|(k, m)| k.sign_raw(m)).collect();
    let pubs: Vec<PublicKey> = kps.iter().map(KeyPair::public).collect();
    keys::verify_batch(&refs, &sigs, &pubs).expect("batch verifies");

    let mut g = c.benchmark_group(format!("ed25519_{N_SIGS}"));
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
        .throughput(Throughput::Elements(N_SIGS as u64));
    g.bench_function("verify_strict_each", |b| {
        b.iter(|| {
            for ((k, m), s) in pubs.iter().zip(&refs).zip(&sigs) {
                k.verify_strict(black_box(m), s).expect("verify");
            }
        });
    });
    g.bench_function("verify_batch", |b| {
        b.iter(|| keys::verify_batch(black_box(&refs), &sigs, &pubs).expect("verify"));
    });
    g.finish();
}

criterion_group!(benches, file_signatures, argon2i_moderate, ed25519_batch);
criterion_main!(benches);
