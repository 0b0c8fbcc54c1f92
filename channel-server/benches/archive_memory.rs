//! Memory of the real `channel-server` while it receives a 1 GiB archive and then serves it to 50
//! clients at once: the archive must be streamed, never buffered, so the server's resident set
//! stays flat. Samples `VmRSS`/`VmHWM` of `serve` (and of its signer child) every 100 ms.
//!
//! ```text
//! cargo bench -p channel-server --bench archive_memory -- [--mib 1024] [--clients 50]
//! ```
//! Needs `curl` on the PATH (upload with `curl -T FILE`, which streams from the file; downloads
//! as `curl -s -o /dev/null`). Writes the archive (and the server's stored copy) under
//! `$BENCH_DIR` or the temp folder and removes both at the end.

mod common;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyggdrasil::entry::{Digest512, Entry, EntryBody, Event, GitCommit};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::wire::SubmitRequest;

const PHASES: [&str; 5] = [
    "idle, before upload",
    "upload (1 client)",
    "idle, after upload",
    "downloads (all clients)",
    "idle, after downloads",
];

struct Sample {
    phase: usize,
    rss: u64,
    signer_rss: u64,
}

fn options() -> (u64, usize) {
    let (mut mib, mut clients) = (1024u64, 50usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mib" => mib = args.next().unwrap().parse().unwrap(),
            "--clients" => clients = args.next().unwrap().parse().unwrap(),
            _ => {}
        }
    }
    (mib, clients)
}

/// Writes `bytes` of pseudo-random (incompressible) data.
fn write_archive(path: &Path, bytes: u64) {
    let mut f = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for chunk in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
    f.get_ref().sync_all().unwrap();
}

fn submit(agent: &ureq::Agent, base: &str, entry: &Entry) {
    let body = serde_json::to_string(&SubmitRequest {
        entry: String::from_utf8(entry.as_bytes().to_vec()).unwrap(),
        invite: None,
    })
    .unwrap();
    let mut r = agent
        .post(&format!("{base}/v1/submit"))
        .header("Content-Type", "application/json")
        .send(body.as_str())
        .unwrap();
    let status = r.status();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(status, 200, "submission refused: {text}");
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let (size_mib, clients) = options();
    let size = size_mib << 20;
    println!("# archive memory benchmark");
    println!("machine: {}", common::machine());
    println!(
        "archive {size_mib} MiB, {clients} concurrent downloads, RSS sampled every 100 ms, load at start {}",
        common::load()
    );
    let dir = common::temp_dir("archive-memory-");
    let config = common::init_channel(
        dir.path(),
        &[
            ("submissions_per_minute", "0"),
            ("reads_per_minute", "0"),
            ("max_archive_bytes", &(size + (1 << 20)).to_string()),
            ("archive_timeout_secs", "3600"),
        ],
    );
    let archive = dir.path().join("archive.bin");
    let t = Instant::now();
    write_archive(&archive, size);
    let (digest_size, digest) =
        keyggdrasil::filesig::archive_digest(File::open(&archive).unwrap()).unwrap();
    assert_eq!(digest_size, size);
    let supplier = SupplierName::parse("bench-archive").unwrap();
    let master = KeyPair::generate();
    let signing = KeyPair::generate();
    let signature = keyggdrasil::filesig::sign(&signing, File::open(&archive).unwrap()).unwrap();
    println!(
        "wrote and hashed the archive in {:.1} s (not measured)",
        t.elapsed().as_secs_f64()
    );
    let sign = |by: &KeyPair, event: Event| {
        Entry::sign(EntryBody::new(supplier.clone(), by.public(), event), by).unwrap()
    };
    let entries = [
        sign(
            &master,
            Event::MasterKey {
                public_key: master.public(),
                derivation: None,
            },
        ),
        sign(
            &master,
            Event::SigningKey {
                public_key: signing.public(),
                derivation: None,
            },
        ),
        sign(
            &signing,
            Event::Release {
                package: PackageName::parse("big").unwrap(),
                version: Version::parse("1.0.0").unwrap(),
                size,
                digest: Digest512(digest),
                commit: GitCommit::parse(&"c".repeat(40)).unwrap(),
                signature,
                rollout: None,
            },
        ),
    ];

    let mut server = common::Server::start(&config);
    let pid = server.pid();
    let signer = common::children(pid).first().copied();
    let agent = common::agent(1);
    for e in &entries {
        submit(&agent, &server.base, e);
    }
    let url = format!("{}/v1/archives/bench-archive/big/1.0.0", server.base);

    let phase = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampler = {
        let (phase, stop, samples) = (phase.clone(), stop.clone(), samples.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some((rss, _)) = common::rss_kib(pid) {
                    let signer_rss = signer
                        .and_then(common::rss_kib)
                        .map(|(r, _)| r)
                        .unwrap_or(0);
                    samples.lock().unwrap().push(Sample {
                        phase: phase.load(Ordering::Relaxed),
                        rss,
                        signer_rss,
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));

    // Upload, streamed by curl from the file.
    phase.store(1, Ordering::Relaxed);
    let load_upload = common::load();
    let t = Instant::now();
    let out = Command::new("curl")
        .args(["-sS", "-T"])
        .arg(&archive)
        .args([
            "-H",
            "Content-Type: application/octet-stream",
            "-w",
            "\n%{http_code}",
        ])
        .arg(&url)
        .output()
        .expect("run curl (apt-get install curl)");
    let upload_secs = t.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.trim_end().ends_with("200"), "upload failed: {text}");
    println!(
        "upload: {size_mib} MiB in {upload_secs:.1} s = {:.0} MiB/s (received, fsynced, hashed with BLAKE2b-512 twice and signature-checked by the server)  load {load_upload}",
        size_mib as f64 / upload_secs
    );

    phase.store(2, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(2));

    // Downloads, all at once.
    phase.store(3, Ordering::Relaxed);
    let load_download = common::load();
    let t = Instant::now();
    let children: Vec<_> = (0..clients)
        .map(|_| {
            Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code} %{size_download}",
                ])
                .arg(&url)
                .stdout(Stdio::piped())
                .spawn()
                .expect("run curl")
        })
        .collect();
    let mut total: u64 = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut parts = text.split_whitespace();
        assert_eq!(parts.next(), Some("200"), "download failed: {text}");
        let got: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        assert_eq!(got, size, "short download");
        total += got;
    }
    let download_secs = t.elapsed().as_secs_f64();
    println!(
        "downloads: {clients} x {size_mib} MiB = {:.1} GiB in {download_secs:.1} s = {:.0} MiB/s aggregate ({:.1} MiB/s per client)  load {load_download} -> {}",
        total as f64 / (1u64 << 30) as f64,
        total as f64 / (1u64 << 20) as f64 / download_secs,
        size_mib as f64 / download_secs,
        common::load()
    );

    phase.store(4, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let hwm = common::rss_kib(pid).map(|(_, h)| h).unwrap_or(0);

    // Not measured: one more download, hashed, to show what was served is the archive.
    let mut r = agent.get(&url).call().unwrap();
    let (got, served) =
        keyggdrasil::filesig::archive_digest(r.body_mut().with_config().limit(u64::MAX).reader())
            .unwrap();
    assert!(got == size && served == digest, "served bytes differ");
    println!("one more download hashed: size and BLAKE2b-512 match the logged release");
    server.stop();

    let samples = samples.lock().unwrap();
    println!(
        "\n{:<26} {:>8} {:>14} {:>14} {:>16}",
        "phase", "samples", "serve RSS min", "serve RSS max", "signer RSS max"
    );
    for (i, name) in PHASES.iter().enumerate() {
        let s: Vec<&Sample> = samples.iter().filter(|s| s.phase == i).collect();
        if s.is_empty() {
            continue;
        }
        let min = s.iter().map(|s| s.rss).min().unwrap_or(0);
        let max = s.iter().map(|s| s.rss).max().unwrap_or(0);
        let sig = s.iter().map(|s| s.signer_rss).max().unwrap_or(0);
        println!(
            "{name:<26} {:>8} {:>10.1} MiB {:>10.1} MiB {:>12.1} MiB",
            s.len(),
            mib(min),
            mib(max),
            mib(sig)
        );
    }
    println!(
        "serve VmHWM (peak RSS over its whole life): {:.1} MiB; archive size {size_mib} MiB",
        mib(hwm)
    );
    drop(samples);
    let _ = std::io::stdout().flush();
    // `dir` (the archive, the stored copy, the database) is removed here.
    drop(dir);
}
