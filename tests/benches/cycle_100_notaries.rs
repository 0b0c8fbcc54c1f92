//! Benchmark: one `continuum update` cycle of a site with 100 notary peers, everything a
//! separate process on loopback (goal: under 1 s wall clock).
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo bench -p system-tests --bench cycle_100_notaries
//! ```
//!
//! The harness finds the binaries next to this executable's folder (`target/release/`), so
//! the release build of the binaries comes first. Knobs (environment): `CYCLE_NOTARIES`
//! (default 100), `CYCLE_WORLDS` (default 3: fresh channel, notaries and site), `CYCLE_ROUNDS`
//! (default 5 warm rounds per world).
//!
//! Per world, after the notaries are started (not timed):
//! - (a) cold: a fresh site's first cycle (`continuum install acme/hello`): it fetches the
//!   log, the notaries it asks have observed nothing and fetch from the channel on demand, and
//!   the package is downloaded, verified and installed;
//! - (b) new entry: a new release is published, then `continuum update`: one new entry, the
//!   notaries asked fetch it on demand (those never asked before fetch the whole log), and the
//!   new version is installed;
//! - (c) nothing new: `continuum update` again; the channel's signed "no updates" is checked
//!   and no peer is asked.
//!
//! Each figure is the wall clock of the whole `continuum` process, as cron would see it.

use std::time::{Duration, Instant};

use system_tests::{Channel, Site, Supplier, plugin_archive};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|l| l.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// One timed run: wall clock, the 1-minute load average just before it, and the line saying
/// how many peers confirmed the root (if any were asked).
struct Sample {
    time: Duration,
    load: f64,
    confirmed: Option<String>,
}

fn timed(site: &Site, args: &[&str], expect: &str) -> Sample {
    let load = load_average();
    let started = Instant::now();
    let out = site.run(args);
    let time = started.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{args:?} failed:\n{text}");
    assert!(
        text.contains(expect),
        "{args:?}: expected {expect:?} in:\n{text}"
    );
    let confirmed = text
        .lines()
        .find(|l| l.contains("confirmed by"))
        .map(str::to_owned);
    Sample {
        time,
        load,
        confirmed,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn report(label: &str, samples: &[Sample]) {
    let mut times: Vec<Duration> = samples.iter().map(|s| s.time).collect();
    times.sort();
    let median = times[times.len() / 2];
    let max = times[times.len() - 1];
    let min = times[0];
    let loads: Vec<f64> = samples.iter().map(|s| s.load).collect();
    let lmin = loads.iter().copied().fold(f64::INFINITY, f64::min);
    let lmax = loads.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    println!(
        "{label}: n={} median {} min {} max {} (load average {lmin:.2}–{lmax:.2})",
        times.len(),
        ms(median),
        ms(min),
        ms(max)
    );
}

fn main() {
    let n = env_usize("CYCLE_NOTARIES", 100);
    let worlds = env_usize("CYCLE_WORLDS", 3);
    let rounds = env_usize("CYCLE_ROUNDS", 5);
    println!(
        "continuum update cycle: {n} notaries on loopback, {worlds} worlds × {rounds} rounds; {} CPUs",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    let (mut cold, mut warm, mut idle) = (Vec::new(), Vec::new(), Vec::new());
    for world in 0..worlds {
        let setup = Instant::now();
        let channel = Channel::start();
        let acme = Supplier::new("acme");
        acme.register(&channel);
        let mut version = 0;
        let publish = |version: &mut u32| {
            *version += 1;
            let v = format!("1.{version}.0");
            acme.publish(
                &channel,
                "hello",
                &v,
                &plugin_archive("acme/hello", &v, "bench"),
            );
            v
        };
        publish(&mut version);
        let notaries: Vec<Site> = (0..n)
            .map(|_| {
                let mut s = Site::init(&channel);
                s.start_notary();
                s
            })
            .collect();
        let site = Site::init(&channel);
        for p in &notaries {
            site.add_peer(p.notary_url.as_deref().unwrap(), &p.notary_key);
        }
        println!(
            "world {world}: channel, {n} notaries and the site ready in {}",
            ms(setup.elapsed())
        );

        let s = timed(&site, &["install", "acme/hello"], "installed 1.1.0");
        println!(
            "world {world}: (a) cold first cycle {} [{}]",
            ms(s.time),
            s.confirmed.as_deref().unwrap_or("")
        );
        cold.push(s);
        for round in 0..rounds {
            let v = publish(&mut version);
            let b = timed(&site, &["update"], &format!("installed {v}"));
            let c = timed(&site, &["update"], "up to date at");
            println!(
                "world {world} round {round}: (b) new entry {}, (c) nothing new {}",
                ms(b.time),
                ms(c.time)
            );
            warm.push(b);
            idle.push(c);
        }
    }
    println!();
    report("(a) cold first cycle (install)", &cold);
    report("(b) cycle after a new entry", &warm);
    report("(c) cycle with nothing new", &idle);
    let worst = cold
        .iter()
        .chain(&warm)
        .chain(&idle)
        .map(|s| s.time)
        .max()
        .unwrap_or_default();
    println!(
        "goal < 1 s: {} (slowest cycle {})",
        if worst < Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        },
        ms(worst)
    );
}
