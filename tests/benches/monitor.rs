//! Benchmark (issue 17): what one `barge monitor` run costs as the log grows: the first run
//! (reads and checks the whole log), a run with nothing new, and a run after 100 new entries.
//! Every figure is a whole `barge` process from `target/release/`, against a real channel.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo bench -p system-tests --bench monitor
//! MONITOR_SIZES=1000,10000 MONITOR_RUNS=5 cargo bench -p system-tests --bench monitor
//! ```
//!
//! The log: `acme` registers and logs `N` releases; the author's folder watches a supplier
//! `watcher` with no entries, so the monitor reads and checks every entry (page signatures,
//! the root, each entry against the journal) and alerts on none, as for an author whose
//! entries are a small part of a large log.

use std::process::Command;
use std::time::Instant;

use system_tests::{Channel, Supplier, bin};

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().parse().expect("a number"))
        .collect()
}

fn monitor(dir: &std::path::Path) -> f64 {
    let start = Instant::now();
    let o = Command::new(bin("barge"))
        .arg("--dir")
        .arg(dir)
        .args(["--json", "monitor"])
        .output()
        .expect("barge monitor");
    let secs = start.elapsed().as_secs_f64();
    assert!(
        o.status.success(),
        "barge monitor: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    secs * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let sizes = env_list("MONITOR_SIZES", "1000,10000,50000");
    let runs = env_list("MONITOR_RUNS", "5")[0] as usize;
    println!("# barge monitor benchmark");
    println!(
        "machine: {} CPUs; {runs} runs of each quick figure (median)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| log size | first run | nothing new | 100 new entries |");
    println!("|---|---|---|---|");
    for n in sizes {
        let ch = Channel::start();
        let acme = Supplier::new("acme");
        acme.register(&ch);
        for i in 0..n {
            let v = format!("0.{i}.0");
            ch.submit(&acme.release(&acme.signing, "bench", &v, v.as_bytes()));
        }
        let size = ch.wait_published(n + 2);
        let dir = tempfile::tempdir().expect("tempdir");
        let init = Command::new(bin("barge"))
            .arg("--dir")
            .arg(dir.path())
            .args(["init", "--channel", &ch.base, "--channel-key"])
            .arg(ch.key.to_hex())
            .args(["--supplier", "watcher"])
            .output()
            .expect("barge init");
        assert!(init.status.success(), "barge init failed");
        let first = monitor(dir.path());
        let quiet = median((0..runs).map(|_| monitor(dir.path())).collect());
        let mut grown = Vec::new();
        for r in 0..runs {
            for i in 0..100 {
                let v = format!("1.{r}.{i}");
                ch.submit(&acme.release(&acme.signing, "bench", &v, v.as_bytes()));
            }
            grown.push(monitor(dir.path()));
        }
        println!(
            "| {size} | {first:.0} ms ({:.0} entries/s) | {quiet:.1} ms | {:.1} ms |",
            size as f64 / (first / 1000.0),
            median(grown)
        );
    }
}
