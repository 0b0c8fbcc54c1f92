//! Verified, durable appends per second against the real `channel-server` binary over loopback,
//! and, in the same run, the writer alone (in-process, no HTTP) and signature verification alone,
//! so the figures say where the time goes.
//!
//! ```text
//! cargo bench -p channel-server --bench appends -- [--entries N] [--clients 8,32,64]
//!     [--writer-tasks 64,1024] [--raw-clients 64] [--max-batch 2000] [--rounds 1]
//! ```
//!
//! Every entry is a new supplier's self-signed master key, so each one is accepted and appended.
//! The entries are generated and serialised before any timing. For each client count C a fresh
//! channel is started (`submissions_per_minute = 0`: no rate limit), C threads with one
//! keep-alive `ureq::Agent` each POST `{"entry": …}` to `/v1/submit`, and only 200 answers are
//! counted. Then the server is stopped and `channel-server check` recomputes the tree.
//!
//! The ureq clients cost CPU on the same two cores, so the benchmark also reports the CPU time of
//! the server and of this process, and repeats the HTTP round with a minimal client: C keep-alive
//! connections driven by one thread (hand-written HTTP/1.1 over tokio), to show what the server
//! does when the load generator is cheap.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use channel_server::config::Paths;
use channel_server::writer::{self, Policy};
use keyggdrasil::entry::{CheckedEntry, Entry, EntryBody, Event};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::names::SupplierName;
use keyggdrasil::wire::{Envelope, SubmitRequest, SubmitResponse};

struct Options {
    entries: usize,
    clients: Vec<usize>,
    writer_tasks: Vec<usize>,
    raw_clients: Vec<usize>,
    max_batch: usize,
    rounds: usize,
    /// Hammer mode: offered appends per second (0 = off), for `hammer_secs`, over
    /// `hammer_clients` connections.
    hammer_rate: f64,
    hammer_secs: f64,
    hammer_clients: usize,
}

fn parse_list(v: &str) -> Vec<usize> {
    v.split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| x.trim().parse().expect("a number"))
        .collect()
}

fn options() -> Options {
    let mut o = Options {
        entries: 30_000,
        clients: vec![8, 32, 64],
        writer_tasks: vec![64, 1024],
        raw_clients: vec![64],
        max_batch: 2000,
        rounds: 1,
        hammer_rate: 0.0,
        hammer_secs: 30.0,
        hammer_clients: 256,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().expect("a value after the flag");
        match a.as_str() {
            "--entries" => o.entries = value().parse().expect("a number"),
            "--clients" => o.clients = parse_list(&value()),
            "--writer-tasks" => o.writer_tasks = parse_list(&value()),
            "--raw-clients" => o.raw_clients = parse_list(&value()),
            "--max-batch" => o.max_batch = value().parse().expect("a number"),
            "--rounds" => o.rounds = value().parse().expect("a number"),
            "--hammer-rate" => o.hammer_rate = value().parse().expect("a number"),
            "--hammer-secs" => o.hammer_secs = value().parse().expect("a number"),
            "--hammer-clients" => o.hammer_clients = value().parse().expect("a number"),
            // `cargo bench` passes `--bench`; ignore it and anything else cargo adds.
            _ => {}
        }
    }
    o
}

/// N distinct valid entries (each a new supplier's self-signed master key), on every core.
fn generate(n: usize) -> Vec<Entry> {
    let threads = std::thread::available_parallelism()
        .map(|t| t.get())
        .unwrap_or(2);
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let kp = KeyPair::generate();
                    let name = SupplierName::parse(&format!("bench-supplier-{i:07}")).unwrap();
                    let body = EntryBody::new(
                        name,
                        kp.public(),
                        Event::MasterKey {
                            public_key: kp.public(),
                            derivation: None,
                        },
                    );
                    mine.push((i, Entry::sign(body, &kp).unwrap()));
                }
                out.lock().unwrap().extend(mine);
            });
        }
    });
    let mut v = out.into_inner().unwrap();
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, e)| e).collect()
}

struct HttpResult {
    /// Seconds from each append's scheduled send time to its durable answer, sorted (paced
    /// rounds only).
    latencies: Vec<f64>,
    clients: usize,
    ok: usize,
    other: usize,
    secs: f64,
    commits: usize,
    server_cpu: f64,
    client_cpu: f64,
    load_before: String,
    load_after: String,
    check: String,
}

/// How the submitters talk HTTP.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    /// One thread per submitter, each with its own keep-alive `ureq::Agent`.
    Ureq,
    /// All submitters as tasks on one thread, minimal HTTP/1.1 over keep-alive connections.
    Raw,
}

fn http_round(
    bodies: &Arc<Vec<String>>,
    clients: usize,
    max_batch: usize,
    kind: Client,
    pace: Option<f64>,
) -> HttpResult {
    let dir = common::temp_dir("appends-http-");
    let config = common::init_channel(
        dir.path(),
        &[
            ("submissions_per_minute", "0"),
            ("reads_per_minute", "0"),
            ("max_batch", &max_batch.to_string()),
        ],
    );
    let mut server = common::Server::start(&config);
    let pid = server.pid();
    let url = format!("{}/v1/submit", server.base);
    let next = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(
        if kind == Client::Ureq { clients } else { 1 } + 1,
    ));
    let sizes = Arc::new(Mutex::new(BTreeSet::new()));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    if kind == Client::Ureq {
        for _ in 0..clients {
            let (bodies, next, barrier, url, sizes) = (
                bodies.clone(),
                next.clone(),
                barrier.clone(),
                url.clone(),
                sizes.clone(),
            );
            handles.push(std::thread::spawn(move || {
                ureq_submitter(&bodies, &next, &barrier, &url, &sizes)
            }));
        }
    } else {
        let (bodies, next, barrier, addr, sizes) = (
            bodies.clone(),
            next.clone(),
            barrier.clone(),
            server.addr().to_owned(),
            sizes.clone(),
        );
        let latencies = latencies.clone();
        handles.push(std::thread::spawn(move || {
            raw_submitters(bodies, next, barrier, addr, clients, sizes, pace, latencies)
        }));
    }
    let load_before = common::load();
    let me = std::process::id();
    let cpu0 = common::cpu_secs(pid);
    let me0 = common::cpu_secs(me);
    barrier.wait();
    let t0 = Instant::now();
    let (mut ok, mut other) = (0, 0);
    for h in handles {
        let (o, x) = h.join().unwrap();
        ok += o;
        other += x;
    }
    let secs = t0.elapsed().as_secs_f64();
    let server_cpu = common::cpu_secs(pid) - cpu0;
    let client_cpu = common::cpu_secs(me) - me0;
    let load_after = common::load();
    server.stop();
    let check = common::check(&config);
    let commits = sizes.lock().unwrap().len();
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort_by(f64::total_cmp);
    HttpResult {
        latencies,
        clients,
        ok,
        other,
        secs,
        commits,
        server_cpu,
        client_cpu,
        load_before,
        load_after,
        check,
    }
}

fn ureq_submitter(
    bodies: &[String],
    next: &AtomicUsize,
    barrier: &Barrier,
    url: &str,
    sizes: &Mutex<BTreeSet<u64>>,
) -> (usize, usize) {
    let agent = common::agent(1);
    let mut ok = 0usize;
    let mut other = 0usize;
    let mut seen = Vec::new();
    let mut buf = Vec::with_capacity(1024);
    barrier.wait();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(body) = bodies.get(i) else { break };
        match agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body.as_str())
        {
            Ok(r) => {
                let status = r.status().as_u16();
                buf.clear();
                let _ = r.into_body().into_reader().read_to_end(&mut buf);
                if status == 200 {
                    ok += 1;
                    if let Ok(a) = Envelope::<SubmitResponse>::open(&buf, 1 << 20) {
                        seen.push(a.size);
                    }
                } else {
                    other += 1;
                }
            }
            Err(_) => other += 1,
        }
    }
    sizes.lock().unwrap().extend(seen);
    (ok, other)
}

/// `clients` keep-alive connections on one thread, each sending the next body as soon as its
/// previous answer is in: the cheapest load generator we can have on the same cores.
///
/// With `pace = Some(rate)`, append `i` is not sent before `start + i / rate` (an open-loop
/// offered rate, as Tessera's hammer caps it), and its latency counts from that scheduled time,
/// so time spent waiting for a free connection is counted too (no coordinated omission).
#[allow(clippy::too_many_arguments)]
fn raw_submitters(
    bodies: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    barrier: Arc<Barrier>,
    addr: String,
    clients: usize,
    sizes: Arc<Mutex<BTreeSet<u64>>>,
    pace: Option<f64>,
    latencies: Arc<Mutex<Vec<f64>>>,
) -> (usize, usize) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut conns = Vec::new();
        for _ in 0..clients {
            let s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            conns.push(BufReader::new(s));
        }
        barrier.wait();
        let start = tokio::time::Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for mut conn in conns {
            let (bodies, next, addr, latencies) =
                (bodies.clone(), next.clone(), addr.clone(), latencies.clone());
            set.spawn(async move {
                let (mut ok, mut other, mut seen) = (0usize, 0usize, Vec::new());
                let mut mine = Vec::new();
                let mut req = Vec::with_capacity(1024);
                let mut line = String::new();
                let mut body = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(b) = bodies.get(i) else { break };
                    let scheduled = pace.map(|rate| start + Duration::from_secs_f64(i as f64 / rate));
                    if let Some(at) = scheduled {
                        tokio::time::sleep_until(at).await;
                    }
                    req.clear();
                    req.extend_from_slice(
                        format!(
                            "POST /v1/submit HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                            b.len()
                        )
                        .as_bytes(),
                    );
                    req.extend_from_slice(b.as_bytes());
                    conn.get_mut().write_all(&req).await.unwrap();
                    line.clear();
                    conn.read_line(&mut line).await.unwrap();
                    let status = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let mut len = 0usize;
                    loop {
                        line.clear();
                        conn.read_line(&mut line).await.unwrap();
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = l.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    body.resize(len, 0);
                    conn.read_exact(&mut body).await.unwrap();
                    if status == "200" {
                        ok += 1;
                        if let Some(at) = scheduled {
                            mine.push(at.elapsed().as_secs_f64());
                        }
                        if let Ok(a) = Envelope::<SubmitResponse>::open(&body, 1 << 20) {
                            seen.push(a.size);
                        }
                    } else {
                        other += 1;
                    }
                }
                latencies.lock().unwrap().extend(mine);
                (ok, other, seen)
            });
        }
        let (mut ok, mut other) = (0, 0);
        while let Some(r) = set.join_next().await {
            let (o, x, seen) = r.unwrap();
            ok += o;
            other += x;
            sizes.lock().unwrap().extend(seen);
        }
        (ok, other)
    })
}

struct WriterResult {
    tasks: usize,
    ok: usize,
    secs: f64,
    commits: usize,
    load: String,
    check: String,
}

fn writer_round(checked: &Arc<Vec<CheckedEntry>>, tasks: usize, max_batch: usize) -> WriterResult {
    let dir = common::temp_dir("appends-writer-");
    let config = common::init_channel(dir.path(), &[]);
    let paths = Paths::new(config.parent().unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (handle, thread) =
        writer::start(paths.db.clone(), Policy::Open, max_batch, 20_000).unwrap();
    let (ok, secs, commits, load) = rt.block_on(async move {
        let next = Arc::new(AtomicUsize::new(0));
        let load = common::load();
        let t0 = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..tasks {
            let (handle, next, checked) = (handle.clone(), next.clone(), checked.clone());
            set.spawn(async move {
                let mut ok = 0usize;
                let mut sizes = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(e) = checked.get(i) else { break };
                    if let Ok(a) = handle.submit(e.clone(), None).await
                        && !a.duplicate
                    {
                        ok += 1;
                        sizes.push(a.size);
                    }
                }
                (ok, sizes)
            });
        }
        let mut ok = 0;
        let mut sizes = BTreeSet::new();
        while let Some(r) = set.join_next().await {
            let (o, s) = r.unwrap();
            ok += o;
            sizes.extend(s);
        }
        (ok, t0.elapsed().as_secs_f64(), sizes.len(), load)
    });
    drop(rt);
    // Every handle is gone, so the writer thread ends and closes the database.
    thread.join().unwrap();
    let check = common::check(&config);
    WriterResult {
        tasks,
        ok,
        secs,
        commits,
        load,
        check,
    }
}

/// Parse + strict signature verification of every entry, on `threads` threads.
fn verify_round(texts: &Arc<Vec<Vec<u8>>>, threads: usize) -> (f64, String) {
    let load = common::load();
    let next = AtomicUsize::new(0);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(t) = texts.get(i) else { break };
                    let e = Entry::parse(t).unwrap();
                    std::hint::black_box(e.into_checked().unwrap());
                }
            });
        }
    });
    (t0.elapsed().as_secs_f64(), load)
}

/// On one thread: `Entry::parse` alone (JSON, hex, two public-key checks), then strict
/// signature verification alone. Returns microseconds per entry for each.
fn parse_then_verify(texts: &[Vec<u8>]) -> (f64, f64, String) {
    let load = common::load();
    let t0 = Instant::now();
    let parsed: Vec<Entry> = texts.iter().map(|t| Entry::parse(t).unwrap()).collect();
    let parse = t0.elapsed().as_secs_f64() * 1e6 / texts.len() as f64;
    let t0 = Instant::now();
    for e in parsed {
        std::hint::black_box(e.into_checked().unwrap());
    }
    let verify = t0.elapsed().as_secs_f64() * 1e6 / texts.len() as f64;
    (parse, verify, load)
}

fn main() {
    let o = options();
    println!("# appends benchmark");
    println!("machine: {}", common::machine());
    println!("server binary: {}", common::BIN);
    println!(
        "entries per round: {}, max_batch: {}, load before generating: {}",
        o.entries,
        o.max_batch,
        common::load()
    );
    let t = Instant::now();
    let entries = generate(o.entries);
    println!(
        "generated {} entries in {:.1} s (not timed below)",
        entries.len(),
        t.elapsed().as_secs_f64()
    );
    let texts: Arc<Vec<Vec<u8>>> =
        Arc::new(entries.iter().map(|e| e.as_bytes().to_vec()).collect());
    let bodies: Arc<Vec<String>> = Arc::new(
        entries
            .iter()
            .map(|e| {
                serde_json::to_string(&SubmitRequest {
                    entry: String::from_utf8(e.as_bytes().to_vec()).unwrap(),
                    invite: None,
                })
                .unwrap()
            })
            .collect(),
    );
    let checked: Arc<Vec<CheckedEntry>> = Arc::new(
        entries
            .into_iter()
            .map(|e| e.into_checked().unwrap())
            .collect(),
    );
    if o.hammer_rate > 0.0 {
        hammer(&o, &bodies);
        return;
    }
    for round in 1..=o.rounds {
        println!("\n## round {round}");
        for threads in [1usize, 2] {
            let (secs, load) = verify_round(&texts, threads);
            println!(
                "verify only  threads={threads:<4} {:>8.0} entries/s  ({} entries, {:.2} s, {:.1} us/entry/thread)  load {load}",
                texts.len() as f64 / secs,
                texts.len(),
                secs,
                secs * 1e6 * threads as f64 / texts.len() as f64,
            );
        }
        let (parse, verify, load) = parse_then_verify(&texts);
        println!(
            "verify only  split, 1 thread: Entry::parse {parse:.1} us/entry, into_checked (strict verify) {verify:.1} us/entry  load {load}"
        );
        for &tasks in &o.writer_tasks {
            let r = writer_round(&checked, tasks, o.max_batch);
            println!(
                "writer only  tasks={:<6} {:>8.0} appends/s  ({} appended, {:.2} s, {} commits, {:.0} entries/commit)  load {}  check: {}",
                r.tasks,
                r.ok as f64 / r.secs,
                r.ok,
                r.secs,
                r.commits,
                r.ok as f64 / r.commits.max(1) as f64,
                r.load,
                r.check
            );
        }
        let runs = o
            .clients
            .iter()
            .map(|c| (*c, Client::Ureq))
            .chain(o.raw_clients.iter().map(|c| (*c, Client::Raw)));
        for (c, kind) in runs {
            let r = http_round(&bodies, c, o.max_batch, kind, None);
            let name = match kind {
                Client::Ureq => "ureq threads",
                Client::Raw => "raw 1 thread",
            };
            println!(
                "http submit  {name} clients={:<4} {:>8.0} appends/s  ({} x 200, {} other, {:.2} s, {} commits, {:.0} entries/commit; CPU per append: server {:.0} us, client {:.0} us; server busy {:.0}% of 2 cores)  load {} -> {}  check: {}",
                r.clients,
                r.ok as f64 / r.secs,
                r.ok,
                r.other,
                r.secs,
                r.commits,
                r.ok as f64 / r.commits.max(1) as f64,
                r.server_cpu * 1e6 / r.ok.max(1) as f64,
                r.client_cpu * 1e6 / r.ok.max(1) as f64,
                100.0 * r.server_cpu / (2.0 * r.secs),
                r.load_before,
                r.load_after,
                r.check
            );
        }
    }
}

/// Tessera-hammer-style: `hammer_rate` appends per second offered for `hammer_secs` over
/// `hammer_clients` raw connections; accepted appends per second and time to integrate (from
/// the scheduled send to the durable answer, which the channel gives only after the commit).
fn hammer(o: &Options, bodies: &Arc<Vec<String>>) {
    let offered = (o.hammer_rate * o.hammer_secs) as usize;
    assert!(
        bodies.len() >= offered,
        "--entries {} is fewer than rate x secs = {offered}",
        bodies.len()
    );
    let bodies = Arc::new(bodies[..offered].to_vec());
    let r = http_round(
        &bodies,
        o.hammer_clients,
        o.max_batch,
        Client::Raw,
        Some(o.hammer_rate),
    );
    let pct = |p: f64| {
        r.latencies
            .get(((r.latencies.len() as f64 * p) as usize).min(r.latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |s| s * 1e3)
    };
    println!(
        "hammer  offered {:.0}/s for {:.0} s over {} connections: accepted {:.0}/s ({} x 200, {} other, {:.2} s), {} commits, {:.0} entries/commit; time to integrate p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; CPU per append: server {:.0} us, client {:.0} us  load {} -> {}  check: {}",
        o.hammer_rate,
        o.hammer_secs,
        r.clients,
        r.ok as f64 / r.secs,
        r.ok,
        r.other,
        r.secs,
        r.commits,
        r.ok as f64 / r.commits.max(1) as f64,
        pct(0.50),
        pct(0.99),
        r.latencies.last().map_or(f64::NAN, |s| s * 1e3),
        r.server_cpu * 1e6 / r.ok.max(1) as f64,
        r.client_cpu * 1e6 / r.ok.max(1) as f64,
        r.load_before,
        r.load_after,
        r.check
    );
}
