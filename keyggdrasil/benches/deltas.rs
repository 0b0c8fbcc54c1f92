//! Delta updates, full archive versus patch, for a one-file change (issue 18; docs/deltas.md):
//! zstd "patch-from" ([`keyggdrasil::delta`], what sites use) against bsdiff 4 (`qbsdiff`), on
//! the sample extension (fixtures/extensions/hello-plugin) and on a generated extension whose
//! archive is about 5 MiB (450 PHP-like text files and 13 binary files).
//!
//! ```text
//! cargo bench -p keyggdrasil --bench deltas
//! ```
//!
//! For each extension both versions are built with the reproducible builder (what `barge build`
//! does; the manifest names another version too), and for each format it reports the patch's
//! bytes against the full archive's, the time to make it, and the apply wall time and peak
//! memory. The apply runs in a child process (this same binary, `__apply`), which reads the
//! base archive and the patch, then applies, writing the rebuilt archive to a file as a site
//! does, and reports its own `VmHWM` (peak resident set, /proc/self/status) before and after
//! the apply: the difference is what the patch application itself needed beyond holding its
//! inputs. The rebuilt bytes are compared with the real target archive. Making the patch is
//! measured the same way (a child holding both archives, `__make`), for the channel's memory.

#![forbid(unsafe_code)]

use std::fs;
use std::io::{BufWriter, Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use keyggdrasil::archive::{ArchiveLimits, Manifest};
use keyggdrasil::delta;
use keyggdrasil::os::archive::build_archive;

/// Text files in the generated extension, and their size.
const TEXT_FILES: usize = 450;
const TEXT_BYTES: usize = 20 * 1024;
/// Binary (incompressible) files, and their size.
const BIN_FILES: usize = 13;
const BIN_BYTES: usize = 230 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__apply") {
        child_apply(&args[2..]);
        return;
    }
    if args.get(1).map(String::as_str) == Some("__make") {
        child_make(&args[2..]);
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/extensions/hello-plugin");
    let mut rows = Vec::new();
    // The sample extension: copy it, change one file.
    let a = dir.path().join("sample-a");
    copy_tree(&sample, &a);
    let b = dir.path().join("sample-b");
    copy_tree(&sample, &b);
    append(&b.join("src/Greeter.php"), b"\n// 1.0.1: a one-line fix\n");
    rows.extend(measure("sample extension", &a, &b, dir.path()));
    // The generated ~5 MiB extension: change one text file in the middle.
    let a = dir.path().join("big-a");
    generate(&a);
    let b = dir.path().join("big-b");
    copy_tree(&a, &b);
    let changed = b.join("src/module-200.php");
    let mut text = fs::read(&changed).expect("read");
    text.splice(
        5000..5000,
        b"    // 1.0.1: fixed an off-by-one in the loop below\n".to_vec(),
    );
    fs::write(&changed, text).expect("write");
    rows.extend(measure("5 MiB extension", &a, &b, dir.path()));

    println!();
    println!(
        "| extension | format | full bytes | patch bytes | patch / full | make | make peak RSS | apply | apply peak RSS | of it above inputs |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.2} % | {:.0} ms | {:.1} MiB | {:.1} ms | {:.1} MiB | {:.1} MiB |",
            r.extension,
            r.format,
            r.full,
            r.patch,
            100.0 * r.patch as f64 / r.full as f64,
            r.make.as_secs_f64() * 1e3,
            r.make_peak_kib as f64 / 1024.0,
            r.apply.as_secs_f64() * 1e3,
            r.peak_kib as f64 / 1024.0,
            r.peak_kib.saturating_sub(r.base_kib) as f64 / 1024.0,
        );
    }
}

struct Row {
    extension: &'static str,
    format: &'static str,
    full: u64,
    patch: u64,
    make: Duration,
    make_peak_kib: u64,
    apply: Duration,
    peak_kib: u64,
    base_kib: u64,
}

fn measure(extension: &'static str, a: &Path, b: &Path, tmp: &Path) -> Vec<Row> {
    let base = build(a, "1.0.0");
    let target = build(b, "1.0.1");
    eprintln!(
        "{extension}: base {} bytes, target {} bytes",
        base.len(),
        target.len()
    );
    let base_file = tmp.join("base.zip");
    fs::write(&base_file, &base).expect("write base");
    let mut rows = Vec::new();
    for format in ["zstd-19", "zstd-3", "bsdiff"] {
        let started = Instant::now();
        let patch = match format {
            "zstd-19" => delta::make_patch_at(&base, &target, 19).expect("zstd patch"),
            "zstd-3" => delta::make_patch_at(&base, &target, 3).expect("zstd patch"),
            _ => {
                let mut out = Vec::new();
                qbsdiff::Bsdiff::new(&base, &target)
                    .compare(Cursor::new(&mut out))
                    .expect("bsdiff");
                out
            }
        };
        let make = started.elapsed();
        let target_file = tmp.join("target.zip");
        fs::write(&target_file, &target).expect("write target");
        let make_peak_kib = run_make_child(format, &base_file, &target_file);
        let patch_file = tmp.join("patch");
        let out_file = tmp.join("rebuilt.zip");
        fs::write(&patch_file, &patch).expect("write patch");
        // Best of three applies, each in a fresh child (peak memory is per process).
        let mut best: Option<(Duration, u64, u64)> = None;
        for _ in 0..3 {
            let got = run_child(format, &base_file, &patch_file, &out_file, target.len());
            assert_eq!(
                fs::read(&out_file).expect("read rebuilt"),
                target,
                "{format} rebuilt other bytes"
            );
            best = Some(match best {
                Some(b) if b.0 <= got.0 => b,
                _ => got,
            });
        }
        let (apply, peak_kib, base_kib) = best.expect("three runs");
        rows.push(Row {
            extension,
            format,
            full: target.len() as u64,
            patch: patch.len() as u64,
            make,
            make_peak_kib,
            apply,
            peak_kib,
            base_kib,
        });
    }
    rows
}

fn run_child(
    format: &str,
    base: &Path,
    patch: &Path,
    out: &Path,
    size: usize,
) -> (Duration, u64, u64) {
    let exe = std::env::current_exe().expect("current exe");
    let output = Command::new(exe)
        .arg("__apply")
        .arg(format)
        .arg(base)
        .arg(patch)
        .arg(out)
        .arg(size.to_string())
        .output()
        .expect("run the apply child");
    assert!(
        output.status.success(),
        "apply child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let nums: Vec<u64> = text
        .split_whitespace()
        .map(|w| w.parse().expect("number"))
        .collect();
    (Duration::from_nanos(nums[0]), nums[2], nums[1])
}

/// The peak RSS (KiB) of a child that reads base and target and makes the patch in memory.
fn run_make_child(format: &str, base: &Path, target: &Path) -> u64 {
    let exe = std::env::current_exe().expect("current exe");
    let output = Command::new(exe)
        .arg("__make")
        .arg(format)
        .arg(base)
        .arg(target)
        .output()
        .expect("run the make child");
    assert!(output.status.success(), "make child failed");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("number")
}

/// In the child: make the patch (as the channel does, both archives in memory), print VmHWM.
fn child_make(args: &[String]) {
    let base = fs::read(&args[1]).expect("read base");
    let target = fs::read(&args[2]).expect("read target");
    let patch = match args[0].as_str() {
        "zstd-19" => delta::make_patch_at(&base, &target, 19).expect("zstd patch"),
        "zstd-3" => delta::make_patch_at(&base, &target, 3).expect("zstd patch"),
        _ => {
            let mut out = Vec::new();
            qbsdiff::Bsdiff::new(&base, &target)
                .compare(Cursor::new(&mut out))
                .expect("bsdiff");
            out
        }
    };
    assert!(!patch.is_empty());
    println!("{}", vm_hwm_kib());
}

/// In the child: read base and patch, apply into a file, print `nanos hwm_before hwm_after`.
fn child_apply(args: &[String]) {
    let (format, base, patch, out, size) = (
        &args[0],
        &args[1],
        &args[2],
        &args[3],
        args[4].parse::<u64>().expect("size"),
    );
    let base = fs::read(base).expect("read base");
    let patch_path = PathBuf::from(patch);
    let before = vm_hwm_kib();
    let started = Instant::now();
    let file = BufWriter::new(fs::File::create(out).expect("create out"));
    if format.starts_with("zstd") {
        // As the site does: the patch streamed from its file, the base in memory.
        let patch = fs::File::open(&patch_path).expect("open patch");
        delta::apply_patch(&base, patch, file, size).expect("zstd apply");
    } else {
        // bspatch needs the whole patch in memory.
        let patch = fs::read(&patch_path).expect("read patch");
        let mut file = file;
        qbsdiff::Bspatch::new(&patch)
            .expect("bsdiff patch")
            .apply(&base, &mut file)
            .expect("bsdiff apply");
        file.flush().expect("flush");
    }
    let nanos = started.elapsed().as_nanos();
    println!("{nanos} {before} {}", vm_hwm_kib());
}

fn vm_hwm_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn build(tree: &Path, version: &str) -> Vec<u8> {
    let manifest = Manifest::new("acme/big", version, "0".repeat(40)).expect("manifest");
    let mut out = Cursor::new(Vec::new());
    build_archive(tree, &manifest, &mut out, &ArchiveLimits::default()).expect("build");
    out.into_inner()
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            fs::copy(e.path(), dest).expect("copy");
        }
    }
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(bytes).expect("append");
}

/// A plugin-like tree: `src/module-N.php` text files (identifiers and numbers from a fixed
/// pseudo-random sequence, so deflate gets about 3:1 as on real code) and `assets/blob-N.bin`
/// incompressible files (images, fonts).
fn generate(root: &Path) {
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
    fs::create_dir_all(root.join("src")).expect("mkdir");
    fs::create_dir_all(root.join("assets")).expect("mkdir");
    for i in 0..TEXT_FILES {
        let mut text = String::with_capacity(TEXT_BYTES + 100);
        text.push_str("<?php\n");
        while text.len() < TEXT_BYTES {
            let indent = (next() % 4) as usize;
            text.push_str(&"    ".repeat(indent));
            for _ in 0..(3 + next() % 8) {
                text.push_str(words[(next() % words.len() as u64) as usize]);
                if next() % 5 == 0 {
                    text.push_str(&format!("_{}", next() % 10_000));
                }
                text.push(' ');
            }
            text.push_str(";\n");
        }
        fs::write(root.join(format!("src/module-{i}.php")), text).expect("write text");
    }
    for i in 0..BIN_FILES {
        let mut bin = Vec::with_capacity(BIN_BYTES);
        while bin.len() < BIN_BYTES {
            bin.extend_from_slice(&next().to_le_bytes());
        }
        fs::write(root.join(format!("assets/blob-{i}.bin")), bin).expect("write bin");
    }
}
