//! Signed "no updates" answers per second from the real `channel-server` binary, against a
//! hello-world axum route (`examples/hello.rs`) in the same run, alternating, both driven by
//! `wrk -t2 -c64 -d10s` over loopback. Then, to see where the time goes: the signer alone
//! (this process as the client of a real `channel-server signer` child, pipelined over its Unix
//! socket, no HTTP) and the Ed25519 operations alone.
//!
//! ```text
//! cargo build --release -p channel-server --example hello
//! cargo bench -p channel-server --bench updates -- [--rounds 3] [--duration 10] [--connections 64]
//! ```
//! Needs `wrk` on the PATH. The hello binary is looked up next to this benchmark
//! (`target/release/examples/hello`) unless `HELLO_BIN` names it.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use channel_server::config::Paths;
use channel_server::signer::{ClientOptions, SignerClient, load_mac_key};
use keyggdrasil::batch::{BatchedAnswer, verify_batched};
use keyggdrasil::keys::{KeyPair, PublicKey};
use keyggdrasil::limits::Limits;
use keyggdrasil::names::ChannelName;
use keyggdrasil::protocol::{self, Context};
use keyggdrasil::wire::{Envelope, Nonce, Signed, UpdatePayload};

struct Options {
    rounds: usize,
    duration: u64,
    connections: usize,
    threads: usize,
}

fn options() -> Options {
    let mut o = Options {
        rounds: 3,
        duration: 10,
        connections: 64,
        threads: 2,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .expect("a value after the flag")
                .parse::<u64>()
                .expect("a number")
        };
        match a.as_str() {
            "--rounds" => o.rounds = value() as usize,
            "--duration" => o.duration = value(),
            "--connections" => o.connections = value() as usize,
            "--threads" => o.threads = value() as usize,
            _ => {}
        }
    }
    o
}

fn hello_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("HELLO_BIN") {
        return p.into();
    }
    // target/release/deps/updates-HASH -> target/release/examples/hello
    let exe = std::env::current_exe().expect("current exe");
    let p = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("examples").join("hello"))
        .expect("target folder");
    assert!(
        p.exists(),
        "{} not found: run `cargo build --release -p channel-server --example hello` first or set HELLO_BIN",
        p.display()
    );
    p
}

struct Hello {
    child: Child,
    base: String,
}

impl Hello {
    fn start() -> Self {
        let mut child = Command::new(hello_bin())
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn hello");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .expect("hello prints its address")
            .to_owned();
        Hello { child, base }
    }
}

impl Drop for Hello {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Wrk {
    rps: f64,
    requests: u64,
    non2xx: u64,
    errors: String,
    latency: String,
}

fn wrk(url: &str, o: &Options) -> Wrk {
    let out = Command::new("wrk")
        .arg(format!("-t{}", o.threads))
        .arg(format!("-c{}", o.connections))
        .arg(format!("-d{}s", o.duration))
        .arg("--latency")
        .arg(url)
        .output()
        .expect("run wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let find = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_owned())
    };
    let rps = find("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"));
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let non2xx = find("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let errors = find("Socket errors:").unwrap_or_default();
    let pct = |p: &str| find(p).unwrap_or_default();
    let latency = format!("p50 {} p90 {} p99 {}", pct("50%"), pct("90%"), pct("99%"));
    Wrk {
        rps,
        requests,
        non2xx,
        errors,
        latency,
    }
}

/// Checks one answer with keyggdrasil only: signed by the channel key under its context, over
/// our nonce, with no entries.
fn verify_one(base: &str, key: &PublicKey, nonce: &str) {
    let agent = common::agent(1);
    let mut buf = Vec::new();
    agent
        .get(&format!("{base}/v1/updates?since=0&nonce={nonce}"))
        .call()
        .expect("GET /v1/updates")
        .into_body()
        .into_reader()
        .read_to_end(&mut buf)
        .unwrap();
    let signed: Signed = Envelope::open(&buf, 1 << 20).expect("ok envelope");
    let p: UpdatePayload = signed
        .open(key, Context::ChannelUpdate, 1 << 20)
        .expect("signature verifies under the channel key");
    assert_eq!(p.nonce.to_hex(), nonce);
    assert!(p.entries.is_empty() && p.size == 0);
}

/// Checks one batched answer with keyggdrasil only: the nonce is in the signed batch, and the
/// head states the empty log.
fn verify_fresh(base: &str, key: &PublicKey, nonce: &str) {
    let mut buf = Vec::new();
    common::agent(1)
        .get(&format!("{base}/v1/fresh?nonce={nonce}"))
        .call()
        .expect("GET /v1/fresh")
        .into_body()
        .into_reader()
        .read_to_end(&mut buf)
        .unwrap();
    let answer: BatchedAnswer = Envelope::open(&buf, 1 << 20).expect("ok envelope");
    let origin = ChannelName::parse("bench.channel").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let v = verify_batched(
        &answer,
        key,
        &origin,
        &Nonce::from_hex(nonce).unwrap(),
        now,
        &Limits::default(),
    )
    .expect("the batched answer verifies for this nonce");
    assert_eq!(v.size(), 0);
}

/// `GET /v1/stats`, its `data`.
fn stats(base: &str) -> serde_json::Value {
    let mut buf = Vec::new();
    common::agent(1)
        .get(&format!("{base}/v1/stats"))
        .call()
        .unwrap()
        .into_body()
        .into_reader()
        .read_to_end(&mut buf)
        .unwrap();
    let mut s: serde_json::Value = serde_json::from_slice(&buf).unwrap();
    s["data"].take()
}

/// `fresh_answers` and `fresh_batches` of `/v1/stats`.
fn fresh_counts(base: &str) -> (u64, u64) {
    let s = stats(base);
    (
        s["fresh_answers"].as_u64().unwrap_or(0),
        s["fresh_batches"].as_u64().unwrap_or(0),
    )
}

fn channel_key(base: &str) -> PublicKey {
    serde_json::from_value(stats(base)["channel_key"].take()).unwrap()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The signer alone: this process is the pipelining client (as `serve` is) of a real
/// `channel-server signer` child; `tasks` concurrent callers sign for `secs` seconds.
fn signer_only(tasks: usize, secs: f64) {
    let dir = common::temp_dir("updates-signer-");
    let config = common::init_channel(dir.path(), &[]);
    let paths = Paths::new(config.parent().unwrap());
    let mut child = Command::new(common::BIN)
        .arg("signer")
        .arg("--key-file")
        .arg(&paths.key_file)
        .arg("--secret-file")
        .arg(&paths.secret_file)
        .arg("--socket")
        .arg(&paths.socket)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn channel-server signer");
    let config_path = paths.db.parent().unwrap().join("channel.toml");
    let key = channel_server::config::Config::load(&config_path)
        .unwrap()
        .channel
        .key;
    let mac = load_mac_key(&paths.secret_file).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = SignerClient::new(&paths.socket, mac, key, ClientOptions::default());
    // A typical "no updates" payload (same shape and size as what serve signs).
    let payload = format!(
        r#"{{"v":1,"origin":"bench.channel","nonce":"{}","time":1700000000,"since":0,"size":0,"root":"{}","tree_size":0,"entries":[]}}"#,
        "ab".repeat(32),
        "cd".repeat(32)
    )
    .into_bytes();
    let (count, elapsed, client_cpu, signer_cpu, load) = rt.block_on(async {
        for _ in 0..100 {
            if client.check().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client.check().await.expect("signer answers");
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let load = common::load();
        let me = std::process::id();
        let c0 = common::cpu_secs(me);
        let s0 = common::cpu_secs(child.id());
        let t0 = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..tasks {
            let (client, stop, count, payload) =
                (client.clone(), stop.clone(), count.clone(), payload.clone());
            set.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    client
                        .sign(Context::ChannelUpdate, payload.clone())
                        .await
                        .expect("signature");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        stop.store(true, Ordering::Relaxed);
        while set.join_next().await.is_some() {}
        let elapsed = t0.elapsed().as_secs_f64();
        (
            count.load(Ordering::Relaxed),
            elapsed,
            common::cpu_secs(me) - c0,
            common::cpu_secs(child.id()) - s0,
            load,
        )
    });
    drop(client);
    drop(rt);
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "signer only  tasks={tasks:<5} {:>8.0} signatures/s  ({count} in {elapsed:.2} s; per signature: client {:.1} us CPU, signer {:.1} us CPU)  load {load}",
        count as f64 / elapsed,
        client_cpu * 1e6 / count as f64,
        signer_cpu * 1e6 / count as f64,
    );
}

fn crypto_only() {
    let kp = KeyPair::generate();
    let msg = vec![7u8; 230];
    let n = 20_000;
    let load = common::load();
    let t = Instant::now();
    let mut sig = protocol::sign(&kp, Context::ChannelUpdate, &msg);
    for _ in 1..n {
        sig = std::hint::black_box(protocol::sign(&kp, Context::ChannelUpdate, &msg));
    }
    let sign_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        protocol::verify(&kp.public(), Context::ChannelUpdate, &msg, &sig).unwrap();
    }
    let verify_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let prepared = keyggdrasil::keys::PreparedKey::new(&kp.public()).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        protocol::verify_prepared(&prepared, Context::ChannelUpdate, &msg, &sig).unwrap();
    }
    let prepared_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    // What a batch check of pipelined signer answers would cost (64 at a time).
    let signed = protocol::signed_bytes(Context::ChannelUpdate, &msg);
    let msgs: Vec<&[u8]> = vec![&signed; 64];
    let sigs = vec![sig; 64];
    let keys = vec![kp.public(); 64];
    let batches = n / 64;
    let t = Instant::now();
    for _ in 0..batches {
        keyggdrasil::keys::verify_batch(&msgs, &sigs, &keys).unwrap();
    }
    let batch_us = t.elapsed().as_secs_f64() * 1e6 / (batches * 64) as f64;
    println!(
        "crypto only  one thread: sign {sign_us:.1} us, strict verify {verify_us:.1} us ({prepared_us:.1} us with the key kept decompressed), verify_batch of 64 {batch_us:.1} us per signature (230-byte payload, {n} each)  load {load}"
    );
}

fn main() {
    let o = options();
    println!("# signed updates benchmark");
    println!("machine: {}", common::machine());
    println!(
        "wrk -t{} -c{} -d{}s, {} rounds alternating, load at start {}",
        o.threads,
        o.connections,
        o.duration,
        o.rounds,
        common::load()
    );
    let dir = common::temp_dir("updates-http-");
    let config = common::init_channel(
        dir.path(),
        &[("submissions_per_minute", "0"), ("reads_per_minute", "0")],
    );
    let mut server = common::Server::start(&config);
    let hello = Hello::start();
    let pid = server.pid();
    let signers = common::children(pid);
    let key = channel_key(&server.base);
    let nonce = hex::encode(keyggdrasil::os::random::bytes::<32>());
    verify_one(&server.base, &key, &nonce);
    let updates_url = format!("{}/v1/updates?since=0&nonce={nonce}", server.base);
    verify_fresh(&server.base, &key, &nonce);
    // One nonce for every request, as for /v1/updates: the server's work per request is the
    // same for any nonce, and wrk then needs no script.
    let fresh_url = format!("{}/v1/fresh?nonce={nonce}", server.base);
    let hello_url = format!("{}/", hello.base);
    println!("hello:   GET {hello_url}");
    println!(
        "channel: GET {updates_url} (empty channel, rate limits off; one answer checked with keyggdrasil)"
    );
    println!("channel: GET {fresh_url} (batched; one answer checked with keyggdrasil)");
    let (mut hello_rates, mut channel_rates, mut fresh_rates) =
        (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=o.rounds {
        let load = common::load();
        let h0 = common::cpu_secs(hello.child.id());
        let w = wrk(&hello_url, &o);
        let hcpu = common::cpu_secs(hello.child.id()) - h0;
        println!(
            "round {round} hello    {:>9.0} req/s  ({} requests, non-2xx {}, {} ; server CPU {:.1} us/req{})  load {load}",
            w.rps,
            w.requests,
            w.non2xx,
            w.latency,
            hcpu * 1e6 / w.requests.max(1) as f64,
            if w.errors.is_empty() {
                String::new()
            } else {
                format!(", socket errors: {}", w.errors)
            },
        );
        hello_rates.push(w.rps);
        let load = common::load();
        let s0 = common::cpu_secs(pid);
        let g0: f64 = signers.iter().map(|p| common::cpu_secs(*p)).sum();
        let w = wrk(&updates_url, &o);
        let scpu = common::cpu_secs(pid) - s0;
        let gcpu = signers.iter().map(|p| common::cpu_secs(*p)).sum::<f64>() - g0;
        println!(
            "round {round} updates  {:>9.0} req/s  ({} requests, non-2xx {}, {} ; serve CPU {:.1} us/req, signer CPU {:.1} us/req{})  load {load}",
            w.rps,
            w.requests,
            w.non2xx,
            w.latency,
            scpu * 1e6 / w.requests.max(1) as f64,
            gcpu * 1e6 / w.requests.max(1) as f64,
            if w.errors.is_empty() {
                String::new()
            } else {
                format!(", socket errors: {}", w.errors)
            },
        );
        assert_eq!(w.non2xx, 0, "the channel answered errors; rate limits off?");
        channel_rates.push(w.rps);

        let load = common::load();
        let (a0, b0) = fresh_counts(&server.base);
        let s0 = common::cpu_secs(pid);
        let g0: f64 = signers.iter().map(|p| common::cpu_secs(*p)).sum();
        let w = wrk(&fresh_url, &o);
        let scpu = common::cpu_secs(pid) - s0;
        let gcpu = signers.iter().map(|p| common::cpu_secs(*p)).sum::<f64>() - g0;
        let (a1, b1) = fresh_counts(&server.base);
        println!(
            "round {round} fresh    {:>9.0} req/s  ({} requests, non-2xx {}, {} ; serve CPU {:.1} us/req, signer CPU {:.1} us/req, {:.1} answers per signature{})  load {load}",
            w.rps,
            w.requests,
            w.non2xx,
            w.latency,
            scpu * 1e6 / w.requests.max(1) as f64,
            gcpu * 1e6 / w.requests.max(1) as f64,
            (a1 - a0) as f64 / (b1 - b0).max(1) as f64,
            if w.errors.is_empty() {
                String::new()
            } else {
                format!(", socket errors: {}", w.errors)
            },
        );
        assert_eq!(w.non2xx, 0, "the channel answered errors; rate limits off?");
        fresh_rates.push(w.rps);
    }
    let (h, c, f) = (
        median(&mut hello_rates),
        median(&mut channel_rates),
        median(&mut fresh_rates),
    );
    println!(
        "median: hello {h:.0} req/s, signed no-updates {c:.0} req/s (ratio {:.2}), batched fresh {f:.0} req/s (ratio {:.2}; goal >= 0.60)  load {}",
        c / h,
        f / h,
        common::load()
    );
    server.stop();
    drop(hello);
    println!("\n## where the time goes");
    crypto_only();
    signer_only(1, 3.0);
    signer_only(64, 5.0);
}
