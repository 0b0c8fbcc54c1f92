//! Benchmark (issue 14): how the channel, a site and a notary behave as the log grows to 10k,
//! 100k and 1M valid entries. Every figure is a whole real process from `target/release/`.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo bench -p system-tests --bench scale
//! SCALE_SIZES=10000 SCALE_RUNS=3 cargo bench -p system-tests --bench scale   # quick
//! ```
//!
//! Knobs (environment): `SCALE_SIZES` (default `10000,100000,1000000`; log sizes, smallest
//! first is the base of the growth ratios), `SCALE_RUNS` (default 3: worlds per size, one
//! sample of every figure each).
//!
//! **The log.** Sixteen suppliers (one is `acme`, whose package `hello` the site installs)
//! register a master and a signing key; then releases of 40 packages per supplier, in chunks of
//! 10,000 entries. Each chunk after the first also rotates one supplier's signing key (new key
//! before the chunk's releases, the old one revoked after them), revokes 20 releases of the
//! previous chunk and attests 50 (`reproduced`, by another supplier). Every entry is signed
//! for real (keys from fixed seeds, so the cache needs no secrets), and each release carries
//! the size, BLAKE2b-512 digest and archive signature of a small synthetic file; only
//! `acme/hello`'s archives are real and uploaded. The last entry, `acme/hello 1.0.0`, goes
//! through `POST /v1/submit` with its archive upload.
//!
//! **Filling the channel.** Through the channel's own writer, in process
//! (`channel_server::writer::start` over the channel's `channel.db`, fed entries whose
//! signatures `keyggdrasil::entry::check_all` verified, as the HTTP handlers do): the same key
//! rules, transactions and durable commits as `/v1/submit`, without the HTTP and the client
//! process, which would only make the one-time fill slower. `channel-server check` (a full
//! replay) then proves the log valid before it is cached.
//!
//! **The cache.** `target/scale-cache/v<FORMAT>-<N>/channel` (a stopped channel's data
//! folder); each world serves a fresh copy of it ([`Channel::from_copy`]), so no run changes
//! it. Bump [`FORMAT`] when the generated log changes.
//!
//! **One world**, each step timed as a whole process:
//! 1. start-up: `channel-server serve` spawned until the first `/healthz` answers 200;
//! 2. first sync: a fresh site (`allow_no_peers = true`, no peers) runs `continuum update`
//!    with no package tracked: it fetches and verifies the whole log (then, untimed,
//!    `continuum install acme/hello` installs 1.0.0);
//! 3. nothing new: `continuum update` again;
//! 4. one new release: `acme/hello 1.1.0` is published (untimed), then `continuum update`
//!    fetches one entry and installs it;
//! 5. notary: the site's `continuum notary serve` has observed size N+1; one more entry is
//!    submitted, and the bench asks the notary for size N+2 (a size it has not observed): one
//!    HTTP request, from sending to the verified signed answer;
//! 6. notary far behind: a second fresh site, which has observed nothing, serves its notary
//!    and is asked for size N+2: it catches up by leaf hashes (`GET /v1/leaves`) and one signed
//!    update, then answers.
//!
//! Wall clock by this process; CPU (user+sys) and max RSS of the `continuum` child from GNU
//! time (`/usr/bin/time -f "%U %S %M"`, from the kernel's `wait4` accounting at 10 ms
//! resolution); without it, only wall clock. Nothing here asserts a time: the goals are printed.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use channel_server::writer::{self, Policy};
use keyggdrasil::entry::{CheckedEntry, Claim, Digest512, Entry, Event, Reason};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::merkle::{Blake2b256, TreeHasher};
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::wire::NotaryStatus;
use system_tests::{Channel, Site, Supplier, bin, copy_tree, output_text, plugin_archive};

/// Version of the generated log: part of the cache folder's name.
const FORMAT: u32 = 1;
/// Suppliers besides `acme`.
const SUPPLIERS: usize = 15;
/// Packages per supplier.
const PACKAGES: usize = 40;
/// Entries per chunk (one key rotation, releases, revocations and attestations).
const CHUNK: usize = 10_000;
/// Releases of the previous chunk revoked per chunk.
const REVOKED: usize = 20;
/// Releases of the previous chunk attested per chunk.
const ATTESTED: usize = 50;
/// The registrations: a master and a signing key for each supplier and `acme`.
const KEY_ENTRIES: usize = 2 * (SUPPLIERS + 1);

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().expect("a number"))
        .collect()
}

/// A key from a fixed seed: the same log every time, and nothing secret to cache.
fn fixed_key(label: &str, supplier: usize, generation: usize) -> KeyPair {
    let seed = Blake2b256
        .hash_leaf(format!("scale-bench/v{FORMAT}/{label}/{supplier}/{generation}").as_bytes());
    KeyPair::from_seed(&seed).expect("a seed")
}

/// What one entry of the generated log is; entries are made from it on the signing threads.
#[derive(Clone, Copy)]
enum Spec {
    Master(usize),
    Signing(usize, usize),
    RevokeSigning(usize, usize),
    /// Release number `r`, signed by that generation of its supplier's signing key.
    Release(usize, usize),
    RevokeRelease(usize),
    Attest(usize),
}

/// Supplier, package index and version number of release `r`: a bijection, so no version is
/// released twice.
fn release_coords(r: usize) -> (usize, usize, usize) {
    (
        1 + r % SUPPLIERS,
        (r / SUPPLIERS) % PACKAGES,
        r / (SUPPLIERS * PACKAGES),
    )
}

/// The synthetic file whose size, digest and signature release `r` records.
fn release_bytes(r: usize) -> Vec<u8> {
    format!("scale bench v{FORMAT}: stand-in archive of release {r}\n").into_bytes()
}

fn package_and_version(r: usize) -> (PackageName, Version) {
    let (_, p, k) = release_coords(r);
    (
        PackageName::parse(&format!("pkg-{p:02}")).expect("package"),
        Version::parse(&format!("1.{k}.0")).expect("version"),
    )
}

/// The log as stages: the entries of one stage do not depend on each other (they may be
/// appended in any order, so they are submitted concurrently), only on earlier stages.
/// Returns the stages and each supplier's last signing-key generation. The stages hold
/// `n - 1` entries: the last one is published over HTTP.
fn plan(n: usize) -> (Vec<Vec<Spec>>, Vec<usize>) {
    assert!(
        n > KEY_ENTRIES + 1,
        "a log needs more than {} entries",
        KEY_ENTRIES + 1
    );
    let mut stages = vec![
        (0..=SUPPLIERS).map(Spec::Master).collect::<Vec<_>>(),
        (0..=SUPPLIERS).map(|s| Spec::Signing(s, 0)).collect(),
    ];
    let mut budget = n - KEY_ENTRIES - 1;
    let mut generation = vec![0; SUPPLIERS + 1];
    let mut next = 0;
    let mut previous = 0..0;
    for chunk in 0.. {
        if budget == 0 {
            break;
        }
        // Chunk 0 has no previous chunk to revoke or attest from, so it rotates nothing.
        let rotated = (chunk > 0).then(|| 1 + (chunk - 1) % SUPPLIERS);
        if let Some(s) = rotated {
            generation[s] += 1;
            stages.push(vec![Spec::Signing(s, generation[s])]);
            budget -= 1;
        }
        let overhead = if chunk > 0 { 2 + REVOKED + ATTESTED } else { 0 };
        let count = budget.min(CHUNK - overhead);
        stages.push(
            (next..next + count)
                .map(|r| Spec::Release(r, generation[release_coords(r).0]))
                .collect(),
        );
        budget -= count;
        let released = next..next + count;
        next += count;
        if let Some(s) = rotated {
            // Not the rotated supplier's releases: its old key is revoked in this same stage.
            let targets = |offset: usize, take: usize| {
                previous
                    .clone()
                    .skip(offset)
                    .step_by(7)
                    .filter(|&r| release_coords(r).0 != s)
                    .take(take)
            };
            let closing: Vec<Spec> = std::iter::once(Spec::RevokeSigning(s, generation[s] - 1))
                .chain(targets(0, REVOKED).map(Spec::RevokeRelease))
                .chain(targets(3, ATTESTED).map(Spec::Attest))
                .take(budget)
                .collect();
            budget -= closing.len();
            stages.push(closing);
        }
        previous = released;
    }
    (stages, generation)
}

/// Every key of the generated log.
struct Keys {
    /// Index 0 is `acme`; its signing key is generation 0.
    suppliers: Vec<Supplier>,
    /// Per supplier, its signing keys by generation.
    signing: Vec<Vec<KeyPair>>,
}

/// Supplier `s` (0 is `acme`) with its master key and first signing key.
fn supplier(s: usize) -> Supplier {
    let name = if s == 0 {
        "acme".to_owned()
    } else {
        format!("scale-{s:02}")
    };
    Supplier {
        name: SupplierName::parse(&name).expect("name"),
        master: fixed_key("master", s, 0),
        signing: fixed_key("signing", s, 0),
    }
}

impl Keys {
    fn new(last_generation: &[usize]) -> Self {
        Keys {
            suppliers: (0..=SUPPLIERS).map(supplier).collect(),
            signing: last_generation
                .iter()
                .enumerate()
                .map(|(s, &last)| (0..=last).map(|g| fixed_key("signing", s, g)).collect())
                .collect(),
        }
    }

    fn entry(&self, spec: Spec) -> Entry {
        match spec {
            Spec::Master(s) => self.suppliers[s].master_entry(),
            Spec::Signing(s, g) => {
                let sup = &self.suppliers[s];
                sup.sign(
                    &sup.master,
                    Event::SigningKey {
                        public_key: self.signing[s][g].public(),
                        derivation: None,
                    },
                )
            }
            Spec::RevokeSigning(s, g) => {
                let sup = &self.suppliers[s];
                sup.revoke(&sup.master, &self.signing[s][g].public())
            }
            Spec::Release(r, g) => {
                let (s, _, _) = release_coords(r);
                let (package, version) = package_and_version(r);
                self.suppliers[s].release(
                    &self.signing[s][g],
                    package.as_str(),
                    version.as_str(),
                    &release_bytes(r),
                )
            }
            Spec::RevokeRelease(r) => {
                let sup = &self.suppliers[release_coords(r).0];
                let (package, version) = package_and_version(r);
                sup.sign(
                    &sup.master,
                    Event::ReleaseRevocation {
                        package,
                        version,
                        reason: Reason::parse("superseded (scale bench)").expect("reason"),
                    },
                )
            }
            Spec::Attest(r) => {
                let s = release_coords(r).0;
                let attester = &self.suppliers[1 + s % SUPPLIERS];
                let (package, version) = package_and_version(r);
                let (_, digest) =
                    keyggdrasil::filesig::archive_digest(&release_bytes(r)[..]).expect("digest");
                attester.sign(
                    &attester.master,
                    Event::Attestation {
                        subject: self.suppliers[s].name.clone(),
                        package,
                        version,
                        digest: Digest512(digest),
                        claim: Claim::Reproduced,
                    },
                )
            }
        }
    }

    /// Signs a stage on every core and verifies the signatures as the channel's handlers do,
    /// keeping the stage's order.
    fn sign_stage(&self, stage: &[Spec]) -> Vec<CheckedEntry> {
        let threads = std::thread::available_parallelism().map_or(2, |p| p.get());
        let per = stage.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let parts: Vec<_> = stage
                .chunks(per)
                .map(|part| {
                    scope.spawn(move || {
                        let entries: Vec<Entry> = part.iter().map(|&s| self.entry(s)).collect();
                        keyggdrasil::entry::check_all(&entries)
                            .unwrap_or_else(|i| panic!("generated entry {i} has a bad signature"))
                    })
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|p| p.join().expect("signing thread"))
                .collect()
        })
    }
}

/// Appends the planned stages to the stopped channel's database through its writer; returns
/// the time spent signing and the time spent appending.
fn fill(db: &Path, stages: &[Vec<Spec>], keys: &Keys) -> (Duration, Duration) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (handle, thread) =
        writer::start(db.to_path_buf(), Policy::Open, 2000, 20_000).expect("writer");
    let (mut signing, mut appending) = (Duration::ZERO, Duration::ZERO);
    let total: usize = stages.iter().map(Vec::len).sum();
    let mut done = 0;
    let mut reported = Instant::now();
    for stage in stages {
        let t = Instant::now();
        let checked = keys.sign_stage(stage);
        signing += t.elapsed();
        let t = Instant::now();
        rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for entry in checked {
                let handle = handle.clone();
                set.spawn(async move { handle.submit(entry, None).await });
            }
            while let Some(r) = set.join_next().await {
                let appended = r
                    .expect("submit task")
                    .unwrap_or_else(|e| panic!("the writer refused a generated entry: {e}"));
                assert!(!appended.duplicate, "a generated entry was a duplicate");
            }
        });
        appending += t.elapsed();
        done += stage.len();
        if reported.elapsed() > Duration::from_secs(15) {
            println!("  {done}/{total} entries appended");
            reported = Instant::now();
        }
    }
    drop(handle);
    // The last handle is gone, so the writer thread ends and closes the database.
    thread.join().expect("writer thread");
    (signing, appending)
}

/// The data folder of a stopped channel holding `n` valid entries, built once and cached.
fn cached_channel(n: usize) -> PathBuf {
    let target = bin("channel-server")
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/channel-server")
        .to_path_buf();
    let dir = target.join(format!("scale-cache/v{FORMAT}-{n}"));
    let data = dir.join("channel");
    if dir.join("complete").exists() {
        println!("size {n}: cached channel {}", data.display());
        ensure_published(&data, n);
        return data;
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "size {n}: building the channel (cached in {})",
        dir.display()
    );
    let (stages, generations) = plan(n);
    let keys = Keys::new(&generations);
    let mut channel = Channel::start();
    channel.kill();
    let (signing, appending) = fill(&channel.db(), &stages, &keys);
    channel.spawn();
    let acme = &keys.suppliers[0];
    acme.publish(
        &channel,
        "hello",
        "1.0.0",
        &plugin_archive("acme/hello", "1.0.0", "scale"),
    );
    channel.kill();
    let size: i64 = rusqlite::Connection::open(channel.db())
        .expect("db")
        .query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0))
        .expect("count");
    assert_eq!(size as usize, n, "the built log has the wrong size");
    let t = Instant::now();
    let check = channel.check();
    let checked = t.elapsed();
    copy_tree(&channel.data_dir(), &data);
    let summary = format!(
        "{n} entries: signing and verifying {:.1} s, writer {:.1} s ({:.0} entries/s), \
         channel-server check (full replay) {:.1} s: {}",
        signing.as_secs_f64(),
        appending.as_secs_f64(),
        n as f64 / appending.as_secs_f64(),
        checked.as_secs_f64(),
        check.lines().last().unwrap_or_default().trim()
    );
    std::fs::write(dir.join("complete"), &summary).expect("write marker");
    println!("size {n}: {summary}");
    ensure_published(&data, n);
    data
}

/// Writes the cached channel's static copy (`public/`: tiles, bundles, signed checkpoint) once,
/// as `serve` would at its first start, so a world's `serve` starts with nothing to publish and
/// no background work competes with the measured site runs. Caches built before the channel
/// published tiles get it on their next use.
fn ensure_published(data: &Path, n: usize) {
    let public = data.join("public");
    if public.join("checkpoint").exists() {
        return;
    }
    let t = Instant::now();
    let conn = channel_server::store::open(&data.join("channel.db")).expect("open channel.db");
    let files =
        channel_server::publish::publish_tiles(&conn, &public, 0, n as u64).expect("publish tiles");
    let root = channel_server::store::root_at(&conn, n as u64).expect("root");
    let cp = keyggdrasil::wire::Checkpoint {
        v: keyggdrasil::wire::WIRE_VERSION,
        origin: keyggdrasil::names::ChannelName::parse(system_tests::ORIGIN).expect("origin"),
        size: n as u64,
        root: keyggdrasil::wire::TreeHash(root),
        time: 0,
    };
    let signed = keyggdrasil::wire::Signed::sign(
        &system_tests::key_in(data),
        keyggdrasil::protocol::Context::Checkpoint,
        &cp,
    );
    channel_server::publish::write_checkpoint(&public, &serde_json::to_vec(&signed).expect("json"))
        .expect("write checkpoint");
    println!(
        "size {n}: published the static copy ({files} files) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

/// A measured child: wall clock, and where GNU time is present, user+sys CPU and max RSS.
struct Sample {
    wall: Duration,
    cpu: Option<Duration>,
    rss_kib: Option<u64>,
}

const GNU_TIME: &str = "/usr/bin/time";

/// Runs `continuum --dir SITE ARGS` (under GNU time when present), panics unless it succeeds
/// and says `expect`.
fn measured(site: &Site, args: &[&str], expect: &str) -> Sample {
    let report = tempfile::NamedTempFile::new().expect("temp file");
    let timed = Path::new(GNU_TIME).exists();
    let mut cmd = if timed {
        let mut c = Command::new(GNU_TIME);
        c.args(["-f", "%U %S %M", "-o"])
            .arg(report.path())
            .arg(bin("continuum"));
        c
    } else {
        Command::new(bin("continuum"))
    };
    cmd.arg("--dir")
        .arg(&site.root)
        .args(args)
        .env("RUST_LOG", "warn");
    let t = Instant::now();
    let out: Output = cmd.output().expect("run continuum");
    let wall = t.elapsed();
    let text = output_text(&out);
    assert!(out.status.success(), "continuum {args:?} failed:\n{text}");
    assert!(
        text.contains(expect),
        "continuum {args:?}: expected {expect:?} in:\n{text}"
    );
    let (mut cpu, mut rss_kib) = (None, None);
    if timed {
        // GNU time puts a "Command exited with non-zero status" line first when there is one.
        let line = std::fs::read_to_string(report.path()).expect("time report");
        let f: Vec<f64> = line
            .lines()
            .last()
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [user, sys, rss] = f[..] {
            cpu = Some(Duration::from_secs_f64(user + sys));
            rss_kib = Some(rss as u64);
        }
    }
    Sample { wall, cpu, rss_kib }
}

/// One world's figures.
struct World {
    startup: Duration,
    first_sync: Sample,
    nothing_new: Sample,
    one_new: Sample,
    notary: Duration,
    far_behind: Duration,
}

fn world(n: usize, cache: &Path, acme: &Supplier) -> World {
    let mut channel = Channel::from_copy(cache);
    let t = Instant::now();
    channel.spawn();
    let startup = t.elapsed();
    // The copy's static files are complete (ensure_published): nothing runs in the background.
    channel.wait_published(n as u64);
    let mut site = Site::init(&channel);
    site.set_option("site", "allow_no_peers", true);
    let first_sync = measured(&site, &["update"], "");
    assert_eq!(site.accepted_size() as usize, n, "first sync: wrong size");
    let out = site.run(&["install", "acme/hello"]);
    assert!(
        output_text(&out).contains("1.0.0") && out.status.success(),
        "install: {}",
        output_text(&out)
    );
    let nothing_new = measured(&site, &["update"], "up to date at");
    acme.publish_plugin(&channel, "hello", "1.1.0", "scale");
    let one_new = measured(&site, &["update"], "installed 1.1.0");
    site.start_notary();
    channel.submit(&acme.release(&acme.signing, "hello", "1.2.0", b"not uploaded"));
    let t = Instant::now();
    let status = site.ask_notary(n as u64 + 2);
    let notary = t.elapsed();
    assert!(
        matches!(status, NotaryStatus::Ok { .. }),
        "the notary did not answer with a root"
    );
    // A notary that has observed nothing, asked about the head: leaf hashes and one update.
    let mut fresh = Site::init(&channel);
    fresh.start_notary();
    let t = Instant::now();
    let status = fresh.ask_notary(n as u64 + 2);
    let far_behind = t.elapsed();
    assert!(
        matches!(status, NotaryStatus::Ok { .. }),
        "the far-behind notary did not answer with a root: {status:?}"
    );
    World {
        startup,
        first_sync,
        nothing_new,
        one_new,
        notary,
        far_behind,
    }
}

/// The figures of one size, in table order: (name, unit, samples).
type Figures = Vec<(&'static str, &'static str, Vec<f64>)>;

fn figures(worlds: &[World]) -> Figures {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let wall = |f: fn(&World) -> &Sample| worlds.iter().map(|w| ms(f(w).wall)).collect();
    let cpu = |f: fn(&World) -> &Sample| {
        worlds
            .iter()
            .filter_map(|w| f(w).cpu.map(ms))
            .collect::<Vec<_>>()
    };
    let rss = |f: fn(&World) -> &Sample| {
        worlds
            .iter()
            .filter_map(|w| f(w).rss_kib.map(|k| k as f64 / 1024.0))
            .collect::<Vec<_>>()
    };
    vec![
        (
            "channel start-up to first /healthz",
            "ms",
            worlds.iter().map(|w| ms(w.startup)).collect(),
        ),
        ("first sync, wall", "ms", wall(|w| &w.first_sync)),
        ("first sync, CPU", "ms", cpu(|w| &w.first_sync)),
        ("first sync, max RSS", "MiB", rss(|w| &w.first_sync)),
        ("nothing new, wall", "ms", wall(|w| &w.nothing_new)),
        ("nothing new, CPU", "ms", cpu(|w| &w.nothing_new)),
        ("nothing new, max RSS", "MiB", rss(|w| &w.nothing_new)),
        ("one new release, wall", "ms", wall(|w| &w.one_new)),
        ("one new release, CPU", "ms", cpu(|w| &w.one_new)),
        ("one new release, max RSS", "MiB", rss(|w| &w.one_new)),
        (
            "notary answer, unobserved size",
            "ms",
            worlds.iter().map(|w| ms(w.notary)).collect(),
        ),
        (
            "notary answer, nothing observed (catch-up by leaf hashes)",
            "ms",
            worlds.iter().map(|w| ms(w.far_behind)).collect(),
        ),
    ]
}

/// Median, min and max (NaN for no samples).
fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => (f64::NAN, f64::NAN, f64::NAN),
        l => (s[l / 2], s[0], s[l - 1]),
    }
}

fn median(figures: &Figures, name: &str) -> f64 {
    figures
        .iter()
        .find(|f| f.0 == name)
        .map_or(f64::NAN, |f| stats(&f.2).0)
}

/// The table of one size as markdown (readable as it is in a terminal), with the growth of
/// each median against the smallest size's.
fn table(n: usize, runs: usize, figs: &Figures, base: Option<(usize, &Figures)>) -> String {
    let against = base.map_or(n, |b| b.0);
    let mut t = format!(
        "| {n} entries ({runs} runs) | median | min | max | × {against} |\n|---|---:|---:|---:|---:|\n"
    );
    for (name, unit, v) in figs {
        let (med, min, max) = stats(v);
        let growth = base.map_or(1.0, |(_, b)| med / median(b, name));
        let growth = if growth.is_finite() {
            format!("{growth:.2}")
        } else {
            "–".to_owned()
        };
        let dec = if *unit == "MiB" { 1 } else { 0 };
        // GNU time counts CPU in hundredths of a second: 0 means under 10 ms.
        let show = |x: f64| {
            if *unit == "ms" && name.ends_with("CPU") && x == 0.0 {
                "<10".to_owned()
            } else {
                format!("{x:.dec$}")
            }
        };
        t.push_str(&format!(
            "| {name} | {} {unit} | {} | {} | {growth} |\n",
            show(med),
            show(min),
            show(max)
        ));
    }
    t
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn git(args: &[&str]) -> String {
    Command::new("git")
        .arg("-C")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn main() {
    let sizes = env_list("SCALE_SIZES", "10000,100000,1000000");
    let runs = env_list("SCALE_RUNS", "3")
        .first()
        .copied()
        .unwrap_or(3)
        .max(1);
    let dirty = if git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        ""
    } else {
        " (with uncommitted changes)"
    };
    println!(
        "scale bench: sizes {sizes:?}, {runs} runs each; {} CPUs; commit {}{dirty}; GNU time: {}",
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        git(&["rev-parse", "--short", "HEAD"]),
        if Path::new(GNU_TIME).exists() {
            "yes (CPU and max RSS measured)"
        } else {
            "absent (wall clock only)"
        }
    );
    if Path::new(GNU_TIME).exists() {
        let mut walls: Vec<f64> = (0..5)
            .map(|_| {
                let t = Instant::now();
                let ok = Command::new(GNU_TIME)
                    .args(["-f", "%U %S %M", "-o", "/dev/null", "/bin/true"])
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "{GNU_TIME} /bin/true failed");
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        walls.sort_by(f64::total_cmp);
        println!(
            "measurement overhead: `{GNU_TIME} /bin/true` takes {:.1} ms (median of 5), \
             included in every site run's wall clock",
            walls[2]
        );
    }
    let mut results: Vec<(usize, Figures)> = Vec::new();
    for &n in &sizes {
        let cache = cached_channel(n);
        // acme's keys come from fixed seeds, so the worlds can publish as acme.
        let acme = supplier(0);
        let worlds: Vec<World> = (0..runs)
            .map(|run| {
                let w = world(n, &cache, &acme);
                println!(
                    "size {n} run {run}: start-up {:.0} ms, first sync {:.0} ms, nothing new {:.0} ms, \
                     one new {:.0} ms, notary {:.0} ms",
                    w.startup.as_secs_f64() * 1000.0,
                    w.first_sync.wall.as_secs_f64() * 1000.0,
                    w.nothing_new.wall.as_secs_f64() * 1000.0,
                    w.one_new.wall.as_secs_f64() * 1000.0,
                    w.notary.as_secs_f64() * 1000.0
                );
                w
            })
            .collect();
        let figs = figures(&worlds);
        let base = results.first().map(|(s, f)| (*s, f));
        println!("\n{}", table(n, runs, &figs, base));
        results.push((n, figs));
    }
    println!("## All sizes (markdown)\n");
    let base = results.first().map(|(s, f)| (*s, f.clone()));
    for (n, figs) in &results {
        println!(
            "{}",
            table(*n, runs, figs, base.as_ref().map(|(s, f)| (*s, f)))
        );
    }
    let (Some((small, small_f)), Some((large, large_f))) = (results.first(), results.last()) else {
        return;
    };
    let idle_small = median(small_f, "nothing new, wall");
    let idle_large = median(large_f, "nothing new, wall");
    println!("Goals, at the largest size measured ({large} entries; the issue states them at 1M):");
    println!(
        "- nothing new < 50 ms at every size: {}",
        verdict(
            results
                .iter()
                .all(|(_, f)| median(f, "nothing new, wall") < 50.0)
        )
    );
    println!(
        "- nothing new flat: {large} within 1.5x of {small}: {:.2}x, {}",
        idle_large / idle_small,
        verdict(idle_large <= 1.5 * idle_small)
    );
    let one = median(large_f, "one new release, wall");
    println!(
        "- one new release < 150 ms: {one:.0} ms, {}",
        verdict(one < 150.0)
    );
    let sync = median(large_f, "first sync, wall");
    println!(
        "- first sync <= 15 s: {:.1} s, {}",
        sync / 1000.0,
        verdict(sync <= 15_000.0)
    );
    let start = median(large_f, "channel start-up to first /healthz");
    println!(
        "- channel start-up < 1 s: {start:.0} ms, {}",
        verdict(start < 1000.0)
    );
}
