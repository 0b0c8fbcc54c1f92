//! Benchmark: one `continuum update` of a 5 MiB extension after a one-file change, by delta
//! patch versus full archive, with the real binaries on loopback (issue 18; docs/deltas.md).
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo bench -p system-tests --bench deltas
//! ```
//!
//! A channel gets acme/big 1.0.0 (about 5 MiB: 450 text files, 13 binary files); `DELTA_SITES`
//! (default 3) sites with `deltas = true` and as many with `deltas = false` install it; then
//! 1.0.1 (one text file changed) is published and the channel's patch awaited. Each site's
//! `continuum update` is timed (wall clock of the whole process, as cron sees it), through a
//! pass-through front that records what it fetched, so the bytes downloaded are the patch's or
//! the archive's (plus the few KiB of the signed update answer, the same for both). Loopback
//! has no bandwidth limit: the times show the CPU cost of each path (download, rebuild,
//! check, extract, swap); on a real link add the transfer time of the bytes. The peak memory
//! of each `continuum update` process is its `VmHWM` (/proc/PID/status), read every
//! millisecond while it runs.

use std::process::Command;
use std::time::{Duration, Instant};

use system_tests::front::{Answer, Front};
use system_tests::{Channel, Site, Supplier, bin};

fn generate(root: &std::path::Path, changed: bool) {
    let mut x: u64 = 0x5eed_0001;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words = [
        "function",
        "return",
        "$this",
        "array",
        "if",
        "else",
        "foreach",
        "as",
        "=>",
        "null",
        "public",
        "private",
        "static",
        "$value",
        "$key",
        "$options",
        "echo",
        "isset",
        "count",
        "apply_filters",
        "add_action",
        "esc_html",
        "__(",
        "'hello'",
        "self::",
        "new",
        "class",
    ];
    std::fs::create_dir_all(root.join("src")).expect("mkdir");
    std::fs::create_dir_all(root.join("assets")).expect("mkdir");
    for i in 0..450 {
        let mut text = String::from("<?php\n");
        while text.len() < 20 * 1024 {
            text.push_str(&"    ".repeat((next() % 4) as usize));
            for _ in 0..(3 + next() % 8) {
                text.push_str(words[(next() % words.len() as u64) as usize]);
                if next() % 5 == 0 {
                    text.push_str(&format!("_{}", next() % 10_000));
                }
                text.push(' ');
            }
            text.push_str(";\n");
        }
        if changed && i == 200 {
            text.insert_str(
                5000,
                "    // 1.0.1: fixed an off-by-one in the loop below\n",
            );
        }
        std::fs::write(root.join(format!("src/module-{i}.php")), text).expect("write");
    }
    for i in 0..13 {
        let bin: Vec<u8> = (0..230 * 128).flat_map(|_| next().to_le_bytes()).collect();
        std::fs::write(root.join(format!("assets/blob-{i}.bin")), bin).expect("write");
    }
}

fn archive(version: &str, changed: bool) -> Vec<u8> {
    let src = tempfile::tempdir().expect("tempdir");
    generate(src.path(), changed);
    let manifest =
        keyggdrasil::archive::Manifest::new("acme/big", version, "a".repeat(40)).expect("manifest");
    let mut out = std::io::Cursor::new(Vec::new());
    keyggdrasil::os::archive::build_archive(
        src.path(),
        &manifest,
        &mut out,
        &keyggdrasil::archive::ArchiveLimits::default(),
    )
    .expect("build");
    out.into_inner()
}

fn main() {
    let sites: usize = std::env::var("DELTA_SITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    let old = archive("1.0.0", false);
    let new = archive("1.0.1", true);
    acme.publish(&channel, "big", "1.0.0", &old);
    let mut delta_sites = Vec::new();
    let mut full_sites = Vec::new();
    for i in 0..2 * sites {
        let site = Site::init_installing(&channel, "acme/big", "1.0.0");
        if i % 2 == 0 {
            delta_sites.push(site);
        } else {
            site.set_option("transport", "deltas", false);
            full_sites.push(site);
        }
    }
    acme.publish(&channel, "big", "1.0.1", &new);
    let digest = |b: &[u8]| hex::encode(keyggdrasil::filesig::archive_digest(b).unwrap().1);
    let patch_path = format!("/v1/patches/{}/{}", digest(&old), digest(&new));
    let started = Instant::now();
    let patch_len = loop {
        if let Ok(r) = system_tests::agent().get(&channel.url(&patch_path)).call()
            && r.status().as_u16() == 200
        {
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut r.into_body().into_reader(), &mut body).unwrap();
            break body.len();
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no patch");
        std::thread::sleep(Duration::from_millis(20));
    };
    println!(
        "channel made the patch {:.0} ms after the upload returned",
        started.elapsed().as_secs_f64() * 1e3
    );
    let front = Front::start(&channel.base, |_| Answer::Pass);
    let mut rows = Vec::new();
    for (label, group) in [("delta", &delta_sites), ("full", &full_sites)] {
        let mut times = Vec::new();
        let mut peaks = Vec::new();
        for site in group {
            site.set_mirror(&front.url);
            front.seen.lock().unwrap().clear();
            let t = Instant::now();
            let mut child = Command::new(bin("continuum"))
                .arg("--dir")
                .arg(&site.root)
                .arg("update")
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run continuum");
            // VmHWM is the process's own high-water mark: the last value read before it
            // exits is its peak, short of what it allocates in its last millisecond.
            let status_file = format!("/proc/{}/status", child.id());
            let mut hwm_kib = 0u64;
            let status = loop {
                if let Some(kib) = vm_hwm_kib(&status_file) {
                    hwm_kib = hwm_kib.max(kib);
                }
                if let Some(status) = child.try_wait().expect("wait") {
                    break status;
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            times.push(t.elapsed());
            peaks.push(hwm_kib);
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            assert!(status.success(), "{err}");
            let seen = front.seen.lock().unwrap().clone();
            let by_patch = seen.iter().any(|r| r.contains("/v1/patches/"));
            let by_archive = seen.iter().any(|r| r.contains("/v1/archives/"));
            assert_eq!(
                (by_patch, by_archive),
                (label == "delta", label == "full"),
                "{seen:?}"
            );
        }
        times.sort();
        peaks.sort();
        let bytes = if label == "delta" {
            patch_len
        } else {
            new.len()
        };
        rows.push((
            label,
            bytes,
            times[times.len() / 2],
            times[0],
            peaks[peaks.len() / 2],
        ));
    }
    println!();
    println!(
        "| update | archive or patch bytes downloaded | of the full archive | wall time (median) | fastest | continuum peak RSS (median) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, bytes, median, fastest, peak) in rows {
        println!(
            "| {label} | {bytes} | {:.2} % | {:.0} ms | {:.0} ms | {:.1} MiB |",
            100.0 * bytes as f64 / new.len() as f64,
            median.as_secs_f64() * 1e3,
            fastest.as_secs_f64() * 1e3,
            peak as f64 / 1024.0
        );
    }
}

/// `VmHWM` (KiB) from a `/proc/<pid>/status` file, while the process exists.
fn vm_hwm_kib(status_file: &str) -> Option<u64> {
    std::fs::read_to_string(status_file).ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
    })
}
