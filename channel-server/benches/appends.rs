//! Verified, durable appends per second against the real `channel-server` binary over loopback,
//! and, in the same run, the writer alone (in-process, no HTTP) and signature verification alone,
//! so the figures say where the time goes.
//!
//! ```text
//! cargo bench -p channel-server --bench appends -- [--entries N] [--clients 8,32,64]
//!     [--writer-tasks 64,1024] [--max-batch 2000] [--rounds 1]
//! ```
//!
//! Every entry is a new supplier's self-signed master key, so each one is accepted and appended.
//! The entries are generated and serialised before any timing. For each client count C a fresh
//! channel is started (`submissions_per_minute = 0`: no rate limit), C threads with one
//! keep-alive `ureq::Agent` each POST `{"entry": …}` to `/v1/submit`, and only 200 answers are
//! counted. Then the server is stopped and `channel-server check` recomputes the tree.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Instant;

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
    max_batch: usize,
    rounds: usize,
}

fn parse_list(v: &str) -> Vec<usize> {
    v.split(',')
        .map(|x| x.trim().parse().expect("a number"))
        .collect()
}

fn options() -> Options {
    let mut o = Options {
        entries: 30_000,
        clients: vec![8, 32, 64],
        writer_tasks: vec![64, 1024],
        max_batch: 2000,
        rounds: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().expect("a value after the flag");
        match a.as_str() {
            "--entries" => o.entries = value().parse().expect("a number"),
            "--clients" => o.clients = parse_list(&value()),
            "--writer-tasks" => o.writer_tasks = parse_list(&value()),
            "--max-batch" => o.max_batch = value().parse().expect("a number"),
            "--rounds" => o.rounds = value().parse().expect("a number"),
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
    clients: usize,
    ok: usize,
    other: usize,
    secs: f64,
    commits: usize,
    server_cpu: f64,
    signer_cpu: f64,
    load_before: String,
    load_after: String,
    check: String,
}

fn http_round(bodies: &Arc<Vec<String>>, clients: usize, max_batch: usize) -> HttpResult {
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
    let signer = common::children(pid);
    let url = format!("{}/v1/submit", server.base);
    let next = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(clients + 1));
    let sizes = Arc::new(Mutex::new(BTreeSet::new()));
    let mut handles = Vec::new();
    for _ in 0..clients {
        let (bodies, next, barrier, url, sizes) = (
            bodies.clone(),
            next.clone(),
            barrier.clone(),
            url.clone(),
            sizes.clone(),
        );
        handles.push(std::thread::spawn(move || {
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
                    .post(&url)
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
        }));
    }
    let load_before = common::load();
    let cpu0 = common::cpu_secs(pid);
    let sig0: f64 = signer.iter().map(|p| common::cpu_secs(*p)).sum();
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
    let signer_cpu = signer.iter().map(|p| common::cpu_secs(*p)).sum::<f64>() - sig0;
    let load_after = common::load();
    server.stop();
    let check = common::check(&config);
    let commits = sizes.lock().unwrap().len();
    HttpResult {
        clients,
        ok,
        other,
        secs,
        commits,
        server_cpu,
        signer_cpu,
        load_before,
        load_after,
        check,
    }
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
        for &c in &o.clients {
            let r = http_round(&bodies, c, o.max_batch);
            println!(
                "http submit  clients={:<4} {:>8.0} appends/s  ({} x 200, {} other, {:.2} s, {} commits, {:.0} entries/commit, server CPU {:.2} s = {:.0}% of 2 cores, signer CPU {:.2} s)  load {} -> {}  check: {}",
                r.clients,
                r.ok as f64 / r.secs,
                r.ok,
                r.other,
                r.secs,
                r.commits,
                r.ok as f64 / r.commits.max(1) as f64,
                r.server_cpu,
                100.0 * r.server_cpu / (2.0 * r.secs),
                r.signer_cpu,
                r.load_before,
                r.load_after,
                r.check
            );
        }
    }
}
