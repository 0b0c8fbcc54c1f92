//! Benchmark (issue 15): a simulated fleet of sites polling one channel whose log is served as
//! static tiles by a real nginx. Each site asks the channel only for the batched freshness
//! answer (`GET /v1/fresh`) and reads anything new from nginx (`checkpoint` and entry
//! bundles), as `continuum update` does with `tile_mirrors` set; the figures are the channel's
//! CPU per poll, poll latency, and the bytes served by the channel and by nginx.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo bench -p system-tests --bench fleet
//! FLEET_SITES=1000 FLEET_SECS=20 FLEET_INITIAL=1000 FLEET_APPENDS=5 cargo bench -p system-tests --bench fleet
//! ```
//!
//! **The sites.** `FLEET_SITES` threads (default 1,000), each one site with its own verified
//! copy of the log's compact range ([`LogView`]), polling in a closed loop for `FLEET_SECS`
//! seconds (default 20) with no pause by default: every site is always either polling or
//! checking an answer, the worst case of a fleet's top of the hour. `FLEET_PAUSE_MS` makes each
//! site sleep that long after each poll, an offered rate of about sites ÷ pause that leaves the
//! machine's CPUs partly idle, so the latencies are the servers' and not the queue's. Each poll is continuum's own client
//! code ([`ChannelClient`]: a fresh nonce, the batched answer checked with the pinned key, the
//! nginx checkpoint checked with it too, every entry hashed into the site's view and the root
//! compared), over a new HTTP client, so new TCP connections, as each hourly `continuum
//! update` run opens its own (`FLEET_KEEPALIVE=1` keeps one client per site instead). What a
//! site does not do here: SQLite, peers, key state, installs: they do not touch the channel.
//!
//! **The log.** `FLEET_INITIAL` releases (default 1,000) before the run; during it, one
//! release every `1 / FLEET_APPENDS` seconds (default 5 a second) through `POST /v1/submit`,
//! so sites keep finding new entries and reading them from nginx.
//!
//! **The figures.** CPU (user + system) of the channel's `serve` and `signer` processes and of
//! nginx, from `/proc/<pid>/stat`, per poll; bytes they passed to `write`-family system calls
//! (`/proc/<pid>/io` `wchar`, which counts socket sends; nginx here has `sendfile` off and
//! logs nothing, so its figure is what it served; the channel's also holds its database writes
//! for the appends and its requests to the signer, both small against the answers); poll
//! latency p50/p90/p99 from the site's side, for polls that found nothing new and polls that
//! read tiles. This process's own CPU (the sites, their signature checks) is printed too: on
//! one machine the sites and servers share the CPUs, so rates here are a floor.
//!
//! Needs nginx (`apt-get install -y nginx-light`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use continuum::channel::ChannelClient;
use continuum::config::{ChannelConfig, TransportConfig};
use continuum::transport::Http;
use keyggdrasil::limits::Limits;
use keyggdrasil::log::LogView;
use keyggdrasil::merkle::{Blake2b256, Hash, TreeHasher};
use keyggdrasil::tiles::{TILE_WIDTH, TileId};
use system_tests::nginx::Nginx;
use system_tests::{Channel, Supplier};

fn env(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

/// Clock ticks a second of `/proc/<pid>/stat` (USER_HZ: 100 on every Linux this runs on).
const TICKS: f64 = 100.0;

/// CPU seconds (user + system) of process `pid` and all its threads.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    (tick(11) + tick(12)) / TICKS
}

/// Bytes process `pid` passed to write-family system calls (`wchar`).
fn wchar(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The children of `pid` (the channel's signer is `serve`'s child).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for d in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = d.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(d.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What one poll did.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Poll {
    /// The batched answer alone: nothing new.
    Fresh,
    /// New entries from nginx, bound by the batched answer of their size.
    Tiles,
    /// New entries from nginx, then the channel's per-request answer from the checkpoint's size
    /// (the channel was ahead of its published checkpoint, or behind it).
    TilesThenUpdates,
}

/// Requests made, by where they went.
#[derive(Default)]
struct Requests {
    fresh: AtomicU64,
    updates: AtomicU64,
    checkpoints: AtomicU64,
    bundles: AtomicU64,
    /// Polls whose fresh answer was newer than nginx's checkpoint (each waited for it).
    waits: AtomicU64,
}

/// One poll of one site: continuum's `fetch` with tile mirrors, without the database.
fn poll(
    client: &ChannelClient<'_>,
    view: &mut LogView,
    requests: &Requests,
) -> Result<Poll, String> {
    let now = now_secs();
    requests.fresh.fetch_add(1, Ordering::Relaxed);
    let (fresh, _) = client
        .fresh(now)
        .map_err(|e| e.to_string())?
        .ok_or("the channel has no /v1/fresh")?;
    if fresh.size() == view.size() {
        view.extend(&fresh).map_err(|e| e.to_string())?;
        return Ok(Poll::Fresh);
    }
    if fresh.size() < view.size() {
        return Err(format!(
            "the log shrank from {} to {}",
            view.size(),
            fresh.size()
        ));
    }
    requests.checkpoints.fetch_add(1, Ordering::Relaxed);
    let mut checkpoint = client
        .tile_checkpoint()
        .map_err(|e| e.to_string())?
        .ok_or("nginx has no checkpoint")?;
    if fresh.size() > checkpoint.size() {
        requests.waits.fetch_add(1, Ordering::Relaxed);
    }
    // As continuum does: the publish follows the commit, so wait for it (50 ms, then 200 ms).
    for pause in [50, 200] {
        if fresh.size() <= checkpoint.size() {
            break;
        }
        std::thread::sleep(Duration::from_millis(pause));
        requests.checkpoints.fetch_add(1, Ordering::Relaxed);
        if let Some(again) = client.tile_checkpoint().map_err(|e| e.to_string())?
            && again.size() > checkpoint.size()
        {
            checkpoint = again;
        }
    }
    let (start, end) = (view.size(), checkpoint.size());
    let mut next = view.clone();
    let mut index = start / TILE_WIDTH;
    while end > start && index * TILE_WIDTH < end {
        let first = index * TILE_WIDTH;
        let tile = TileId {
            level: 0,
            index,
            width: (end - first).min(TILE_WIDTH) as u16,
        };
        requests.bundles.fetch_add(1, Ordering::Relaxed);
        let (entries, _) = client
            .tile_entries(&tile)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("nginx has no {}", tile.entries_path()))?;
        let skip = start.saturating_sub(first) as usize;
        let leaves: Vec<Hash> = entries
            .get(skip..)
            .unwrap_or(&[])
            .iter()
            .map(|e| LogView::leaf_hash(e.as_bytes()))
            .collect();
        next.push_leaf_hashes(&leaves).map_err(|e| e.to_string())?;
        index += 1;
    }
    if end > start {
        next.check_root(checkpoint.size(), checkpoint.root())
            .map_err(|e| e.to_string())?;
    }
    let fresh = if fresh.size() < next.size() {
        // As continuum does: nginx got ahead of the first answer, so ask for one more.
        requests.fresh.fetch_add(1, Ordering::Relaxed);
        client
            .fresh(now)
            .map_err(|e| e.to_string())?
            .ok_or("the channel has no /v1/fresh")?
            .0
    } else {
        fresh
    };
    let (statement, kind) = if fresh.size() == next.size() {
        (fresh, Poll::Tiles)
    } else {
        requests.updates.fetch_add(1, Ordering::Relaxed);
        let up = client
            .updates(next.size(), now)
            .map_err(|e| e.to_string())?;
        (up, Poll::TilesThenUpdates)
    };
    next.extend(&statement).map_err(|e| e.to_string())?;
    *view = next;
    Ok(kind)
}

/// Latencies in microseconds: p50, p90, p99, max.
fn percentiles(mut v: Vec<u32>) -> String {
    if v.is_empty() {
        return "none".to_owned();
    }
    v.sort_unstable();
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} polls)",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
        v.len()
    )
}

fn main() {
    let sites = env("FLEET_SITES", 1000.0) as usize;
    let secs = env("FLEET_SECS", 20.0);
    let initial = env("FLEET_INITIAL", 1000.0) as u64;
    let appends = env("FLEET_APPENDS", 5.0);
    let keepalive = env("FLEET_KEEPALIVE", 0.0) != 0.0;
    let pause = Duration::from_secs_f64(env("FLEET_PAUSE_MS", 0.0) / 1000.0);

    let ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    for i in 0..initial {
        let v = format!("0.{i}.0");
        ch.submit(&acme.release(&acme.signing, "fleet", &v, v.as_bytes()));
    }
    let size = ch.wait_published(initial + 2);
    let Some(nginx) = Nginx::serve(&ch.public_dir()) else {
        return;
    };
    let leaves: Vec<Hash> = ch
        .all_entries(size)
        .iter()
        .map(|e| Blake2b256.hash_leaf(e))
        .collect();
    let mut start = LogView::empty();
    start.push_leaf_hashes(&leaves).expect("the log's leaves");
    let cfg = ChannelConfig {
        name: ch.origin(),
        key: ch.key,
        mirrors: vec![ch.base.clone()],
        tile_mirrors: vec![nginx.url.clone()],
        witness_policy: None,
        max_cosignature_age_secs: None,
    };

    let serve = ch.pid();
    let signer = children(serve);
    let nginx_pid = nginx.pid();
    println!("# fleet benchmark");
    println!(
        "machine: {} CPUs; {sites} sites for {secs} s, {}, {} ms between a site's polls; log of {size} entries, {appends} appends/s during the run",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if keepalive {
            "connections kept alive"
        } else {
            "a new TCP connection for every poll"
        },
        pause.as_millis()
    );

    let requests = Arc::new(Requests::default());
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(sites + 1));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut handles = Vec::with_capacity(sites);
    for _ in 0..sites {
        let (cfg, start, requests, stop, barrier, errors) = (
            cfg.clone(),
            start.clone(),
            requests.clone(),
            stop.clone(),
            barrier.clone(),
            errors.clone(),
        );
        handles.push(
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let limits = Limits::default();
                    let transport = TransportConfig::default();
                    let mut kept = keepalive.then(|| Http::new(&transport).expect("http"));
                    let mut view = start;
                    let (mut fresh, mut tiles) = (Vec::new(), Vec::new());
                    let mut failed = 0u64;
                    barrier.wait();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let made;
                        let http = match &mut kept {
                            Some(h) => &*h,
                            None => {
                                made = Http::new(&transport).expect("http");
                                &made
                            }
                        };
                        let client = ChannelClient::new(&cfg, http, &limits);
                        match poll(&client, &mut view, &requests) {
                            Ok(kind) => {
                                let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                                if kind == Poll::Fresh {
                                    fresh.push(us);
                                } else {
                                    tiles.push(us);
                                }
                            }
                            Err(e) => {
                                failed += 1;
                                let mut errors = errors.lock().expect("errors");
                                if errors.len() < 5 {
                                    errors.push(e);
                                }
                            }
                        }
                        if !pause.is_zero() {
                            std::thread::sleep(pause);
                        }
                    }
                    (fresh, tiles, failed, view.size())
                })
                .expect("spawn a site"),
        );
    }

    let sample = || {
        (
            cpu_secs(serve),
            signer.iter().map(|&p| cpu_secs(p)).sum::<f64>(),
            cpu_secs(nginx_pid),
            cpu_secs(std::process::id()),
            wchar(serve),
            wchar(nginx_pid),
        )
    };
    let before = sample();
    barrier.wait();
    let began = Instant::now();
    let mut appended = 0u64;
    while began.elapsed().as_secs_f64() < secs {
        if appends > 0.0 && (appended as f64) < began.elapsed().as_secs_f64() * appends {
            let v = format!("1.{appended}.0");
            ch.submit(&acme.release(&acme.signing, "fleet", &v, v.as_bytes()));
            appended += 1;
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = began.elapsed().as_secs_f64();
    let after = sample();
    let (mut fresh, mut tiles, mut failed, mut sizes) = (Vec::new(), Vec::new(), 0, Vec::new());
    for h in handles {
        let (f, t, e, s) = h.join().expect("a site thread");
        fresh.extend(f);
        tiles.extend(t);
        failed += e;
        sizes.push(s);
    }
    let polls = (fresh.len() + tiles.len()) as f64;
    let per_poll = |secs: f64| secs * 1e6 / polls.max(1.0);
    let final_size = size + appended;
    let current = sizes.iter().filter(|&&s| s + 2 >= final_size).count();
    let r = |a: &AtomicU64| a.load(Ordering::Relaxed);

    println!(
        "polls: {:.0} in {elapsed:.1} s = {:.0} polls/s; {} found nothing new, {} read tiles; {failed} failed",
        polls,
        polls / elapsed,
        fresh.len(),
        tiles.len()
    );
    println!(
        "requests: channel /v1/fresh {}, /v1/updates {}; nginx checkpoint {}, entry bundles {}; {} polls waited for nginx's checkpoint",
        r(&requests.fresh),
        r(&requests.updates),
        r(&requests.checkpoints),
        r(&requests.bundles),
        r(&requests.waits)
    );
    println!(
        "channel CPU per poll: serve {:.1} us + signer {:.2} us; nginx CPU per poll {:.2} us; sites (this process) {:.1} us",
        per_poll(after.0 - before.0),
        per_poll(after.1 - before.1),
        per_poll(after.2 - before.2),
        per_poll(after.3 - before.3)
    );
    let (channel_bytes, nginx_bytes) = (after.4 - before.4, after.5 - before.5);
    println!(
        "bytes written: channel {:.1} MB ({:.0} B per poll), nginx {:.1} MB ({:.0} B per poll); nginx's share {:.1} %",
        channel_bytes as f64 / 1e6,
        channel_bytes as f64 / polls.max(1.0),
        nginx_bytes as f64 / 1e6,
        nginx_bytes as f64 / polls.max(1.0),
        100.0 * nginx_bytes as f64 / (channel_bytes + nginx_bytes).max(1) as f64
    );
    println!("latency, nothing new: {}", percentiles(fresh));
    println!("latency, read tiles:  {}", percentiles(tiles));
    println!(
        "log: {size} entries at start, {appended} appended; {current} of {sites} sites ended within 2 entries of {final_size}"
    );
    let errors = errors.lock().expect("errors");
    for e in errors.iter() {
        println!("error: {e}");
    }
    assert!(
        failed == 0,
        "{failed} polls failed (first ones above): a correct channel and nginx answer every poll"
    );
}
