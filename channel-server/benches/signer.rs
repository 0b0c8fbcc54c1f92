//! Signatures per second through the signer process's socket versus signing in-process, in
//! the same run.
//!
//! The signer runs on its own 2-thread tokio runtime and the client on another, the way the two
//! processes share this machine's cores in production (the socket is a real Unix socket in a
//! temporary `local/` folder). Payloads are a checkpoint-sized JSON text (~150 bytes).
//!
//! - `in_process/*`: what one core does without a signer: `KeyPair::sign_raw` over the
//!   domain-separated bytes, the same after re-deriving the key pair from the seed (the
//!   alternative to keeping a locked `KeyPair`), and the strict verification the client adds.
//! - `client/sequential`: one request at a time (round-trip latency).
//! - `client/pipelined_8x125`: 1000 requests from 8 tasks on one client (2 connections),
//!   each signature verified by the client.
//!
//! Run: `cargo bench -p channel-server --bench signer`.

use std::hint::black_box;
use std::time::Duration;

use channel_server::signer::{ClientOptions, Signer, SignerClient, SignerPaths};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keyggdrasil::kdf::{Purpose, SiteSecret};
use keyggdrasil::keyfile::{KeyFile, KeyRole};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::os::lockmem::LockedBox;
use keyggdrasil::os::secretfile;
use keyggdrasil::protocol::{self, Context};

fn payload(i: usize) -> Vec<u8> {
    format!(
        r#"{{"v":1,"origin":"plugins.example.org","size":{i},"root":"{i:064x}","time":1700000000}}"#
    )
    .into_bytes()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    secretfile::ensure_private_dir(&local).unwrap();
    let kp = KeyPair::generate();
    let paths = SignerPaths {
        key_file: local.join("channel-key.json"),
        secret_file: local.join("channel-secret"),
        socket: local.join("signer.sock"),
    };
    secretfile::write_secret_file(
        &paths.key_file,
        &KeyFile::plain(KeyRole::Channel, None, &kp).to_bytes(),
        false,
    )
    .unwrap();
    let secret = SiteSecret::generate();
    secretfile::write_secret_file(&paths.secret_file, secret.expose(), false).unwrap();

    let signer_rt = runtime();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let bound = signer_rt
        .block_on(Signer::load(&paths).unwrap().bind())
        .unwrap();
    let server = signer_rt.spawn(bound.run(async {
        let _ = stopped.await;
    }));

    let client_rt = runtime();
    let client = client_rt.block_on(async {
        let client = SignerClient::new(
            &paths.socket,
            LockedBox::new(*secret.derive(Purpose::InternalMac)),
            kp.public(),
            ClientOptions::default(),
        );
        client.check().await.unwrap();
        client
    });

    let p = payload(42);
    let seed = kp.seed();
    let mut g = c.benchmark_group("signer");
    g.sample_size(30).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(1));
    g.bench_function("in_process/sign_raw", |b| {
        let bytes = protocol::signed_bytes(Context::Checkpoint, &p);
        b.iter(|| kp.sign_raw(black_box(&bytes)))
    });
    g.bench_function("in_process/protocol_sign", |b| {
        b.iter(|| protocol::sign(&kp, Context::Checkpoint, black_box(&p)))
    });
    g.bench_function("in_process/rederive_then_sign", |b| {
        b.iter(|| {
            let k = KeyPair::from_seed(black_box(&seed)).unwrap();
            protocol::sign(&k, Context::Checkpoint, black_box(&p))
        })
    });
    g.bench_function("in_process/keypair_from_seed", |b| {
        b.iter(|| KeyPair::from_seed(black_box(&seed)).unwrap())
    });
    let sig = protocol::sign(&kp, Context::Checkpoint, &p);
    g.bench_function("in_process/verify_strict", |b| {
        b.iter(|| protocol::verify(&kp.public(), Context::Checkpoint, black_box(&p), &sig))
    });
    g.bench_function("client/sequential", |b| {
        b.iter(|| {
            client_rt
                .block_on(client.sign(Context::Checkpoint, p.clone()))
                .unwrap()
        })
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("client/pipelined_8x125", |b| {
        b.iter(|| {
            client_rt.block_on(async {
                let tasks: Vec<_> = (0..8usize)
                    .map(|t| {
                        let client = client.clone();
                        tokio::spawn(async move {
                            for i in 0..125usize {
                                client
                                    .sign(Context::Checkpoint, payload(t * 125 + i))
                                    .await
                                    .unwrap();
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    g.finish();

    let _ = stop.send(());
    signer_rt.block_on(server).unwrap().unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
