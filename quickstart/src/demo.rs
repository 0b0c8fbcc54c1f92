//! The demo's steps, in order. Every fact printed comes from the binaries' own output (their
//! `--json` answers) or from the files they wrote; every step checks that what happened is
//! what should have, and a step that does not behave ends the demo with an error.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::Cli;
use crate::procs::{self, World};

/// Prints one paragraph, word-wrapped to [`WIDTH`] columns (explicit newlines kept).
macro_rules! para {
    ($($t:tt)*) => {
        print_wrapped(&format!($($t)*))
    };
}

/// Output width.
const WIDTH: usize = 100;

fn print_wrapped(text: &str) {
    for line in text.lines() {
        let mut col = 0;
        for word in line.split(' ') {
            let len = word.chars().count();
            if col > 0 && col + 1 + len > WIDTH {
                println!();
                col = 0;
            } else if col > 0 {
                print!(" ");
                col += 1;
            }
            print!("{word}");
            col += len;
        }
        println!();
    }
}

/// The channel's name.
const CHANNEL: &str = "demo.channel";
/// The supplier and package.
const SUPPLIER: &str = "acme";
const PACKAGE: &str = "hello";
/// Demo passphrases: printed here on purpose; real ones are never shown or typed on a
/// command line.
const MASTER_PASS: &str = "demo master passphrase, not a secret";
const SIGNING_PASS: &str = "demo signing passphrase, not a secret";
/// The file of the sample extension that each new version changes.
const MAIN_FILE: &str = "hello-plugin.php";
/// continuum's exit code for "verification failed, site unchanged".
const EXIT_VERIFICATION: i32 = 3;

/// Runs the demo.
pub fn run(cli: &Cli) -> Result<(), String> {
    let fixture = cli.fixture.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/extensions/hello-plugin")
    });
    if !fixture.join(MAIN_FILE).is_file() {
        return Err(format!(
            "the sample extension is not at {} (no {MAIN_FILE}); pass --fixture FOLDER",
            fixture.display()
        ));
    }
    let bin = procs::find_binaries(cli.bin_dir.as_deref())?;
    let w = World::new(bin, cli.keep)?;
    say(&format!(
        "keyggdrasil quickstart: everything runs on 127.0.0.1 in {} (binaries from {}).",
        w.root.display(),
        w.bin.display()
    ));
    let result = steps(&w, &fixture);
    if let Some(line) = w.finish() {
        say(&line);
    }
    result?;
    say("Done: every step behaved as it should.");
    Ok(())
}

fn say(text: &str) {
    println!();
    para!("{text}");
}

fn step(n: u32, title: &str) {
    println!("\n== {n}. {title}");
}

fn str_of<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    v[key]
        .as_str()
        .ok_or_else(|| format!("expected a string {key:?} in {v}"))
}

fn u64_of(v: &Value, key: &str) -> Result<u64, String> {
    v[key]
        .as_u64()
        .ok_or_else(|| format!("expected a number {key:?} in {v}"))
}

fn short(hex: &str) -> &str {
    hex.get(..16).unwrap_or(hex)
}

/// One site: its folder, notary key and notary URL.
struct SiteInfo {
    name: &'static str,
    dir: PathBuf,
    notary_key: String,
    notary_url: String,
}

fn steps(w: &World, fixture: &Path) -> Result<(), String> {
    // 1. The channel.
    step(1, "A channel server");
    let channel_dir = w.root.join("channel");
    let out = w.ok(
        w.cmd("channel-server")
            .args(["init", "--dir"])
            .arg(&channel_dir)
            .args([
                "--name",
                CHANNEL,
                "--policy",
                "open",
                "--listen",
                "127.0.0.1:0",
            ]),
        None,
    )?;
    let channel_key = out
        .lines()
        .find_map(|l| l.strip_prefix("Channel public key (sites pin this): "))
        .map(|k| k.trim().to_owned())
        .ok_or_else(|| format!("channel-server init did not print its public key:\n{out}"))?;
    let verifier_key = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("C2SP note verifier key (GET /checkpoint; Go's note.NewVerifier): ")
        })
        .map(|k| k.trim().to_owned())
        .ok_or_else(|| format!("channel-server init did not print its verifier key:\n{out}"))?;
    let mut serve = w.cmd("channel-server");
    serve
        .args(["serve", "--config"])
        .arg(channel_dir.join("channel.toml"));
    let channel_url = w.start_server("channel", serve)?;
    para!(
        "Channel '{CHANNEL}' started at {channel_url} (SQLite log in {}, open registration). \
         Its public key is {channel_key}: every site and the author pin it, and accept only \
         answers signed with it.",
        channel_dir.join("channel.db").display()
    );

    // 2. Three sites, each also a notary for the other two.
    step(2, "Three sites with notary endpoints");
    let mut sites = Vec::new();
    for name in ["site-a", "site-b", "site-c"] {
        let dir = w.root.join(name);
        let out = w.ok(
            w.cmd("continuum").args(["init", "--dir"]).arg(&dir).args([
                "--channel",
                &channel_url,
                "--channel-key",
                &channel_key,
            ]),
            None,
        )?;
        let notary_key = out
            .lines()
            .find_map(|l| {
                l.strip_prefix("Notary public key (give it to sites that peer with you): ")
            })
            .map(|k| k.trim().to_owned())
            .ok_or_else(|| format!("continuum init did not print a notary key:\n{out}"))?;
        let mut cmd = w.cmd("continuum");
        cmd.arg("--dir")
            .arg(&dir)
            .args(["notary", "serve", "--listen", "127.0.0.1:0"]);
        let notary_url = w.start_server(&format!("notary-{name}"), cmd)?;
        para!(
            "{name}: initialised against the pinned channel key (it read and checked the \
             channel's signed checkpoint); notary at {notary_url}, notary key {}…",
            short(&notary_key)
        );
        sites.push(SiteInfo {
            name,
            dir,
            notary_key,
            notary_url,
        });
    }
    for s in &sites {
        for p in sites.iter().filter(|p| p.name != s.name) {
            w.ok(
                w.cmd("continuum").arg("--dir").arg(&s.dir).args([
                    "peers",
                    "add",
                    &p.notary_url,
                    &p.notary_key,
                ]),
                None,
            )?;
        }
    }
    para!(
        "Each site trusts the other two as peers (URL and notary key). A notary vouches only for \
         what the channel has shown it, and signs its answer with its own key."
    );
    let a = &sites[0];

    // 3. The author.
    step(3, "An author with a master key and a signing key");
    let author = w.root.join("author");
    w.ok(
        w.cmd("barge")
            .arg("--dir")
            .arg(&author)
            .args(["init", "--channel", &channel_url, "--channel-key"])
            .args([&channel_key, "--supplier", SUPPLIER]),
        None,
    )?;
    let mut keys = Vec::new();
    for (role, pass) in [("--master", MASTER_PASS), ("--signing", SIGNING_PASS)] {
        let mut cmd = w.cmd("barge");
        cmd.arg("--dir").arg(&author).args([
            "--json",
            "key",
            "new",
            role,
            "--level",
            "interactive",
            "--passphrase-stdin",
        ]);
        let out = w.output(&mut cmd, Some(&format!("{pass}\n")))?;
        if !out.status.success() {
            return Err(format!(
                "barge key new {role} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let v: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("barge key new printed no JSON: {e}"))?;
        let kdf = String::from_utf8_lossy(&out.stderr)
            .lines()
            .find_map(|l| {
                l.split_once("(Argon2i, ")
                    .and_then(|(_, r)| r.split_once(')'))
                    .map(|(costs, _)| costs.to_owned())
            })
            .unwrap_or_else(|| "interactive costs".to_owned());
        keys.push((v, kdf));
    }
    let master = str_of(&keys[0].0, "public_key")?.to_owned();
    let signing = str_of(&keys[1].0, "public_key")?.to_owned();
    para!(
        "Supplier '{SUPPLIER}': master key {}…, signing key {}…, each derived from a passphrase \
         with Argon2i ({}). DEMO ONLY: the keys use the fast 'interactive' cost (barge key new \
         --level interactive) and passphrases printed here; real master keys default to \
         'sensitive' (8 passes over 512 MiB) and real passphrases are never shown. \
         The key files in author/local/ hold the public key and the derivation record, no secret.",
        short(&master),
        short(&signing),
        keys[0].1
    );
    let reg = w.json(
        w.cmd("barge").arg("--dir").arg(&author).args([
            "--json",
            "key",
            "register",
            "--passphrase-stdin",
        ]),
        Some(&format!("{MASTER_PASS}\n")),
    )?;
    let add = w.json(
        w.cmd("barge").arg("--dir").arg(&author).args([
            "--json",
            "key",
            "add",
            "--passphrase-stdin",
        ]),
        Some(&format!("{MASTER_PASS}\n")),
    )?;
    if str_of(&reg, "public_key")? != master || str_of(&add, "public_key")? != signing {
        return Err("the channel logged other keys than the author's".into());
    }
    para!(
        "The channel logged the master key (self-signed) at index {} and the signing key \
         (signed by the master key) at index {}.",
        u64_of(&reg, "index")?,
        u64_of(&add, "index")?
    );

    // 4. Version 1.0.0.
    step(
        4,
        "Publish acme/hello 1.0.0 from a git checkout of the sample extension",
    );
    let src = w.root.join("hello");
    copy_tree(fixture, &src)?;
    git(w, &src, &["init", "-q", "-b", "main"], 0)?;
    git(w, &src, &["add", "-A"], 0)?;
    git(w, &src, &["commit", "-q", "-m", "hello 1.0.0"], 0)?;
    let r1 = release(w, &author, &src, "1.0.0")?;
    check_on_disk(&channel_dir, &r1)?;

    // 5. Site A installs it.
    step(5, "site-a installs acme/hello");
    let v1 = update(w, a, &["install", &format!("{SUPPLIER}/{PACKAGE}")])?;
    explain_update(a, &v1, &r1, &signing)?;
    check_installed_file(a, "1.0.0")?;

    // 6. Version 1.1.0 and an update.
    step(6, "Publish 1.1.0 and run `continuum update` on site-a");
    bump(w, &src, "1.1.0", 1)?;
    let r2 = release(w, &author, &src, "1.1.0")?;
    let v2 = update(w, a, &["update"])?;
    explain_update(a, &v2, &r2, &signing)?;
    check_installed_file(a, "1.1.0")?;

    // 7. A tampered archive.
    step(
        7,
        "Publish 1.2.0, then tamper with its archive on the channel's disk",
    );
    bump(w, &src, "1.2.0", 2)?;
    let r3 = release(w, &author, &src, "1.2.0")?;
    let digest3 = str_of(&r3, "digest")?;
    let stored = channel_dir.join("archives").join(digest3);
    let mut bytes =
        std::fs::read(&stored).map_err(|e| format!("could not read {}: {e}", stored.display()))?;
    let mid = bytes.len() / 2;
    let Some(byte) = bytes.get_mut(mid) else {
        return Err(format!("the stored archive {} is empty", stored.display()));
    };
    *byte ^= 0x55;
    std::fs::write(&stored, &bytes)
        .map_err(|e| format!("could not write {}: {e}", stored.display()))?;
    para!(
        "Flipped one byte (offset {mid} of {}) of the stored archive archives/{}…, as an attacker \
         with the channel's disk (or a mirror) could. The logged entry is untouched.",
        bytes.len(),
        short(digest3)
    );
    let mut cmd = w.cmd("continuum");
    cmd.arg("--dir").arg(&a.dir).args(["update", "--json"]);
    let out = w.output(&mut cmd, None)?;
    let code = out.status.code().unwrap_or(-1);
    let report: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "continuum update printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if code != EXIT_VERIFICATION || report["outcome"] != "verification_failed" {
        return Err(format!(
            "the tampered archive was not refused as a verification failure (exit {code}): {report}"
        ));
    }
    let reason = str_of(&report, "failure")?;
    para!(
        "`continuum update` on site-a exited with code {code} (verification failed, site unchanged).\n\
         Its reason: {reason}"
    );
    // `status` exits 1 when something needs attention (no success for 2 days, a fork); its
    // JSON is what we read either way.
    let out = w.output(
        w.cmd("continuum")
            .arg("--dir")
            .arg(&a.dir)
            .args(["status", "--json"]),
        None,
    )?;
    let status: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "continuum status printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let pkg = status["packages"]
        .as_array()
        .and_then(|p| {
            p.iter()
                .find(|p| p["name"] == format!("{SUPPLIER}/{PACKAGE}"))
        })
        .ok_or_else(|| format!("status does not list {SUPPLIER}/{PACKAGE}: {status}"))?;
    if pkg["version"] != "1.1.0" {
        return Err(format!(
            "after the refused update the site should still run 1.1.0: {status}"
        ));
    }
    check_installed_file(a, "1.1.0")?;
    let failures = status["failures_since_success"]
        .as_array()
        .map_or(0, Vec::len);
    if failures != 1 {
        return Err(format!(
            "status should list the refused update as the one failure since the last success: {status}"
        ));
    }
    para!(
        "`continuum status` on site-a: {SUPPLIER}/{PACKAGE} is still 1.1.0 (previous {}), its \
         files on disk still say 1.1.0, and it lists {failures} failed update since the last \
         successful one (also in site-a/continuum.log).",
        pkg["previous"].as_str().unwrap_or("none")
    );

    // 8. The channel notices and repairs; the site then installs the real 1.2.0.
    step(
        8,
        "The channel operator finds the damaged archive; the author uploads it again",
    );
    let check_archives = |w: &World| {
        w.output(
            w.cmd("channel-server")
                .args(["check", "--archives", "--config"])
                .arg(channel_dir.join("channel.toml")),
            None,
        )
    };
    let out = check_archives(w)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let bad = text
        .lines()
        .find(|l| l.starts_with("BAD ARCHIVE:"))
        .unwrap_or_default();
    if out.status.code() != Some(1) || !bad.contains(&format!("{SUPPLIER}/{PACKAGE} 1.2.0")) {
        return Err(format!(
            "channel-server check --archives did not name the damaged archive (exit {:?}): {text}",
            out.status.code()
        ));
    }
    // The line names the file and both digests in full; the release is what a person needs.
    let named = bad.split(" at ").next().unwrap_or(bad);
    para!(
        "`channel-server check --archives` hashed every stored archive against its release entry \
         and exited 1: \"{named}: …the archive's BLAKE2b-512 is … not the expected …\" (in full \
         in its output, with the file's path)."
    );
    let again = release(w, &author, &src, "1.2.0")?;
    if again["index"] != r3["index"] {
        return Err(format!(
            "releasing 1.2.0 again should find the same entry in the log: {again}"
        ));
    }
    para!(
        "The same release entry was already in the log (index {}); the channel replaced its \
         damaged copy with the upload, because the upload matches the logged size, digest and \
         signature (an upload that did not would be refused and change nothing).",
        u64_of(&again, "index")?
    );
    let out = check_archives(w)?;
    if !out.status.success() {
        return Err(format!(
            "check --archives still fails after the repair: {}",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    let v4 = update(w, a, &["update"])?;
    let installed = v4["channels"]
        .as_array()
        .and_then(|c| c.first())
        .and_then(|c| c["installed"].as_array())
        .and_then(|i| i.first())
        .ok_or_else(|| format!("site-a installed nothing after the repair: {v4}"))?;
    if installed["version"] != "1.2.0" || installed["digest"] != again["digest"] {
        return Err(format!(
            "site-a should have installed the repaired 1.2.0: {v4}"
        ));
    }
    check_installed_file(a, "1.2.0")?;
    para!(
        "`channel-server check --archives` passes again, and `continuum update` on site-a \
         installed 1.2.0 ({} bytes, BLAKE2b-512 {}…, signature verified), keeping 1.1.0 for \
         rollback.",
        u64_of(installed, "size")?,
        short(str_of(installed, "digest")?)
    );

    // 9. Runs no longer replay the log; the full replay is a command.
    step(
        9,
        "The site's key-state snapshot: runs apply only new entries; `continuum check` replays all",
    );
    let checked = w.json(
        w.cmd("continuum")
            .arg("--dir")
            .arg(&a.dir)
            .args(["--json", "check"]),
        None,
    )?;
    let ch = checked["channels"]
        .as_array()
        .and_then(|c| c.first())
        .ok_or_else(|| format!("continuum check listed no channel: {checked}"))?;
    if ch["snapshot_matches"] != true || !ch["problems"].as_array().is_some_and(Vec::is_empty) {
        return Err(format!("continuum check found damage on site-a: {checked}"));
    }
    para!(
        "site-a keeps the key state its accepted log derives (keys and their status, releases, \
         revocations) in site.db, beside the log. Each update above checked it against the \
         stored log in O(log n) (entry count, the root from the stored tree hashes, the newest \
         entry's leaf hash) and applied only the new entries. `continuum check` replayed all {} \
         stored entries with the strict rules and found the stored state equal to the replay. \
         A mismatch would stop updates with exit 5 and name `continuum check --repair`.",
        u64_of(ch, "verified_entries")?
    );

    // 10. The log as static files.
    step(
        10,
        "The channel's static copy of the log, for any web server or CDN",
    );
    let public = channel_dir.join("public");
    let log_size = u64_of(ch, "verified_entries")?;
    // The channel publishes right after each commit; allow it a few seconds.
    let verifier = keyggdrasil::note::VerifierKey::parse(&verifier_key)
        .map_err(|e| format!("the verifier key {verifier_key:?} does not parse: {e}"))?;
    let (mut size, mut note) = (0, String::new());
    for _ in 0..50 {
        let opened = std::fs::read(public.join("checkpoint"))
            .ok()
            .and_then(|b| keyggdrasil::note::open(&b, std::slice::from_ref(&verifier)).ok());
        if let Some(o) = opened {
            size = o
                .text
                .lines()
                .nth(1)
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            note = std::fs::read_to_string(public.join("checkpoint")).unwrap_or_default();
        }
        if size >= log_size {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if size < log_size {
        return Err(format!(
            "public/checkpoint is at size {size}, the log at {log_size}: the channel did not publish"
        ));
    }
    // The demo's log is far smaller than one tile of 256 entries: one partial tile of each.
    let tile = format!("tile/0/000.p/{size}");
    let bundle = format!("tile/entries/000.p/{size}");
    for path in [&tile, &bundle] {
        if size == 0 || size >= 256 || !public.join(path).is_file() {
            return Err(format!("public/{path} is missing"));
        }
    }
    let out = w.output(
        w.cmd("channel-server")
            .args(["check", "--config"])
            .arg(channel_dir.join("channel.toml")),
        None,
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.contains("static copy (public/) matches") {
        return Err(format!(
            "channel-server check did not vouch for public/: {text}"
        ));
    }
    para!(
        "The checkpoint is a C2SP signed note, the format of Go's checksum database, Sigsum and \
         the public witnesses; any signed-note tool checks it with the verifier key `init` \
         printed, {verifier_key}. The channel also answers it at GET /checkpoint. This one \
         (size {size}) opened with that key:"
    );
    // Verbatim: a note's lines must not be re-wrapped.
    for line in note.lines() {
        println!("    {line}");
    }
    para!(
        "While serving, the channel keeps its log as static files in {}: the signed checkpoint \
         (size {size}), the hash tile `{tile}` and the entry bundle `{bundle}` (the C2SP \
         tlog-tiles layout, with BLAKE2b-256), and each archive under `archive/<digest>`. Any \
         web server can serve them (docs/channel-operator.md has the nginx block and the cache \
         headers). A site lists such a mirror as `tile_mirrors` and then gets entries and \
         archives from it, and only the small nonce-bound signed answer from the channel. \
         `channel-server check` recomputed every file from the stored log and found them equal.",
        public.display(),
    );

    // 11. Batched freshness answers.
    step(
        11,
        "Every site asks \"anything new?\"; one channel signature answers many",
    );
    for site in &sites {
        update(w, site, &["update"])?;
    }
    let stats = http_get_json(&channel_url, "/v1/stats")?;
    let data = &stats["data"];
    let (answers, batches) = (
        u64_of(data, "fresh_answers")?,
        u64_of(data, "fresh_batches")?,
    );
    if answers == 0 || batches == 0 || batches > answers {
        return Err(format!(
            "the channel's batched answers do not add up: {answers} answers, {batches} signatures"
        ));
    }
    para!(
        "Each `continuum update` above (and in every step before) began with `GET /v1/fresh`: \
         the site sends a fresh random nonce, and the channel answers with the log's size and \
         root in a head it signs once for every nonce that arrived while it was signing the \
         previous batch, plus this nonce's index and Merkle path in that batch. The site checks \
         the signature, the time and that its own nonce is in the signed batch; with nothing new \
         the run is done. The channel has given {answers} such answers with {batches} \
         signatures so far. With the demo's one request at a time, a batch holds one nonce; at \
         64 concurrent sites a signature answers about 21 of them (docs/benchmarks-channel.md).",
    );

    // 12. Witnesses and offline proofs.
    step(
        12,
        "site-b's notary as a C2SP witness; an offline proof of a release",
    );
    let note = String::from_utf8(http(&channel_url, "GET", "/checkpoint", None)?)
        .map_err(|_| "GET /checkpoint is not UTF-8".to_owned())?;
    let site_b = &sites[1];
    let cosig = http(
        &site_b.notary_url,
        "POST",
        "/add-checkpoint",
        Some(format!("old 0\n\n{note}").as_bytes()),
    )?;
    let cosig = String::from_utf8_lossy(&cosig).into_owned();
    let keys = w.json(
        w.cmd("continuum")
            .arg("--dir")
            .arg(&site_b.dir)
            .args(["notary", "key", "--json"]),
        None,
    )?;
    let witness_key = keyggdrasil::note::VerifierKey::parse(str_of(&keys, "witness_verifier_key")?)
        .map_err(|e| format!("site-b's witness key: {e}"))?;
    let time = keyggdrasil::note::open(
        format!("{note}{cosig}").as_bytes(),
        std::slice::from_ref(&witness_key),
    )
    .ok()
    .and_then(|o| o.verified.first().and_then(|s| s.time))
    .ok_or("site-b's cosignature does not verify with its witness key")?;
    para!(
        "Every notary is also a C2SP tlog-witness. The demo sent site-b's notary the channel's \
         checkpoint note (`POST /add-checkpoint`, `old 0`); it checked the channel's signature \
         with the key pinned in its continuum.toml, recorded the size, and returned a \
         timestamped cosignature/v1 line (time {time}) that verifies with its witness key \
         {witness_key}. A channel lists such witnesses as [[witness]] and then publishes the \
         cosigned note; a site can require a quorum of them with `witness_policy`."
    );
    let proof = http(
        &channel_url,
        "GET",
        &format!("/v1/proof/release?supplier={SUPPLIER}&package=hello&version=1.2.0"),
        None,
    )?;
    let proof_file = w.root.join("hello-1.2.0.tlog-proof");
    let archive_file = w.root.join("hello-1.2.0.zip");
    let archive = http(
        &channel_url,
        "GET",
        &format!("/v1/archives/{SUPPLIER}/hello/1.2.0"),
        None,
    )?;
    std::fs::write(&proof_file, &proof).map_err(|e| e.to_string())?;
    std::fs::write(&archive_file, &archive).map_err(|e| e.to_string())?;
    let site_c = &sites[2];
    let checked = w.json(
        w.cmd("continuum")
            .arg("--dir")
            .arg(&site_c.dir)
            .arg("verify-proof")
            .arg(&proof_file)
            .arg("--archive")
            .arg(&archive_file)
            .arg("--json"),
        None,
    )?;
    para!(
        "The channel exported acme/hello 1.2.0 as a c2sp.org/tlog-proof@v1 file \
         (GET /v1/proof/release: the release entry, its index {}, its inclusion proof, the \
         signed checkpoint of size {}). `continuum verify-proof` on site-c checked it with no \
         network at all: the checkpoint signed by the pinned channel key, the entry included at \
         that index, and the downloaded archive's size and BLAKE2b-512 equal to the logged ones, its \
         signature valid with the release's signing key.",
        u64_of(&checked, "index")?,
        u64_of(&checked, "checkpoint_size")?
    );
    rollout_step(w, &author, &src, &channel_dir, &channel_url, &sites)?;
    monitor_step(w, &author, &src, &channel_url, &channel_key, &sites[0])
}

/// Step 13: a release rolled out in waves that each site places itself in, and the sites'
/// downloads as delta patches checked like full archives.
fn rollout_step(
    w: &World,
    author: &Path,
    src: &Path,
    channel_dir: &Path,
    channel_url: &str,
    sites: &[SiteInfo],
) -> Result<(), String> {
    step(
        13,
        "A staged rollout that each site places itself in, downloaded as verified deltas",
    );
    // A release big enough for deltas (the channel makes none under 64 KiB): 1.3.0 adds a
    // data file of 400 KiB of hex text, deterministic so the archive is too.
    let data = src.join("data.txt");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut text = String::with_capacity(410_000);
    while text.len() < 400_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push_str(&format!("{x:016x}{:016x}\n", x.rotate_left(29)));
    }
    std::fs::write(&data, text).map_err(|e| format!("could not write {}: {e}", data.display()))?;
    git(w, src, &["add", "data.txt"], 3)?;
    bump(w, src, "1.3.0", 3)?;
    let r130 = release(w, author, src, "1.3.0")?;
    for site in sites {
        let args: &[&str] = if site.name == sites[0].name {
            &["update"]
        } else {
            &["install", "acme/hello"]
        };
        update(w, site, args)?;
        check_installed_file(site, "1.3.0")?;
    }
    para!(
        "All three sites now run 1.3.0 ({} bytes, full downloads).",
        u64_of(&r130, "size")?
    );
    // 1.3.1: a one-line change, in waves. The first wave (1 %) starts now, everyone else in a day.
    bump(w, src, "1.3.1", 4)?;
    let r131 = release_with(w, author, src, "1.3.1", &["--rollout", "1%,100%@+1d"])?;
    let index = u64_of(&r131, "index")?;
    let page = http_get_json(
        channel_url,
        &format!("/v1/entries?start={index}&end={}", index + 1),
    )?;
    let entry = page["data"]["entries"][0]
        .as_str()
        .ok_or("the channel has no entry at the release's index")?;
    let leaf = keyggdrasil::log::LogView::leaf_hash(entry.as_bytes());
    let mut buckets = Vec::new();
    for site in sites {
        let key = keyggdrasil::keys::PublicKey::from_hex(&site.notary_key)
            .map_err(|e| format!("{}'s notary key: {e}", site.name))?;
        buckets.push(keyggdrasil::rollout::bucket(&key, &leaf));
    }
    let lowest = *buckets.iter().min().ok_or("no sites")?;
    para!(
        "The author released 1.3.1 with --rollout 1%,100%@+1d: the schedule is in the signed \
         release entry. Each site computes its own bucket, BLAKE2b-256 of its notary key and \
         the release's leaf hash, mod 100, values the channel cannot choose: {}.",
        sites
            .iter()
            .zip(&buckets)
            .map(|(s, b)| format!("{} {b}", s.name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let had_131: std::cell::RefCell<Vec<&str>> = std::cell::RefCell::new(Vec::new());
    let run_all = |expect_in: &dyn Fn(u8) -> bool| -> Result<Vec<String>, String> {
        let mut lines = Vec::new();
        for (site, b) in sites.iter().zip(&buckets) {
            let mut cmd = w.cmd("continuum");
            cmd.arg("--dir")
                .arg(&site.dir)
                .args(["update", "--json"])
                .env("RUST_LOG", "info");
            let out = w.output(&mut cmd, None)?;
            if !out.status.success() {
                return Err(format!(
                    "continuum update on {} failed: {}",
                    site.name,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let want = if expect_in(*b) { "1.3.1" } else { "1.3.0" };
            check_installed_file(site, want)?;
            let log = String::from_utf8_lossy(&out.stderr).into_owned();
            if let Some(l) = log.lines().find(|l| l.contains("updated by a delta patch")) {
                // "…: updated by a delta patch of N bytes from URL instead of …": without the URL.
                let l = l.split_once("updated by").map_or(l, |(_, r)| r);
                let l = match (l.split_once(" from "), l.split_once(" instead of ")) {
                    (Some((head, _)), Some((_, tail))) => format!("{head} instead of {tail}"),
                    _ => l.to_owned(),
                };
                lines.push(format!("{}: 1.3.1 installed, updated by{l}", site.name));
            } else if had_131.borrow().contains(&site.name) {
                lines.push(format!("{}: already on 1.3.1", site.name));
            } else if want == "1.3.0" {
                let status = w.output(
                    w.cmd("continuum").arg("--dir").arg(&site.dir).arg("status"),
                    None,
                )?;
                let text = String::from_utf8_lossy(&status.stdout).into_owned();
                let wait = text
                    .lines()
                    .find(|l| l.starts_with("package acme/hello: ") && l.contains("1.3.1"))
                    .unwrap_or("(no rollout line in status)")
                    .to_owned();
                lines.push(format!("{} waits: {wait}", site.name));
            } else {
                lines.push(format!("{}: installed 1.3.1 (full archive)", site.name));
            }
            if want == "1.3.1" {
                had_131.borrow_mut().push(site.name);
            }
        }
        Ok(lines)
    };
    for l in run_all(&|b| b < 1)? {
        println!("   {l}");
    }
    let first = format!("{}%,100%@+1d", lowest + 1);
    w.ok(
        w.cmd("barge").arg("--dir").arg(author).args([
            "rollout",
            "widen",
            PACKAGE,
            "1.3.1",
            "--rollout",
            &first,
            "--passphrase-stdin",
        ]),
        Some(&format!("{SIGNING_PASS}\n")),
    )?;
    para!(
        "The author widened the first wave to {first} with `barge rollout widen` (a new signed \
         rollout entry, logged like any other, so every site and monitor sees the same \
         schedule). On their next run:"
    );
    for l in run_all(&|b| b <= lowest)? {
        println!("   {l}");
    }
    w.ok(
        w.cmd("barge").arg("--dir").arg(author).args([
            "rollout",
            "widen",
            PACKAGE,
            "1.3.1",
            "--rollout",
            "now",
            "--passphrase-stdin",
        ]),
        Some(&format!("{SIGNING_PASS}\n")),
    )?;
    para!("Then `barge rollout widen hello 1.3.1 --rollout now` (everyone now):");
    for l in run_all(&|_| true)? {
        println!("   {l}");
    }
    let patches = channel_dir.join("public").join("patch");
    let made = std::fs::read_dir(&patches).map(|d| d.count()).unwrap_or(0);
    if made == 0 {
        return Err(format!(
            "the channel published no patch in {}",
            patches.display()
        ));
    }
    para!(
        "The channel made the patches itself when 1.3.1's archive was uploaded (zstd \
         --patch-from from the two earlier versions, in public/patch/). A site rebuilds 1.3.1 \
         from its kept copy of 1.3.0's archive and checks the result exactly as a full \
         download (size, BLAKE2b-512, the signature from the log) before extracting it, so the \
         patch needs no trust; on any failure it downloads the full archive in the same run. \
         The channel cannot move a site between waves: the schedule is signed by the author, \
         the bucket is the site's own, and the clock is the site's."
    );
    Ok(())
}

/// Step 13: the author's monitor is quiet about the author's own entries and alerts on a release
/// by a stolen key; the log explorer is served.
fn monitor_step(
    w: &World,
    author: &Path,
    src: &Path,
    channel_url: &str,
    channel_key: &str,
    notary: &SiteInfo,
) -> Result<(), String> {
    step(
        14,
        "The author's monitor, and a release by a stolen signing key",
    );
    let peer = format!("{}={}", notary.notary_url, notary.notary_key);
    let monitor = |json: bool| {
        let mut cmd = w.cmd("barge");
        cmd.arg("--dir").arg(author);
        if json {
            cmd.arg("--json");
        }
        cmd.args(["monitor", "--notary", &peer]);
        cmd
    };
    let out = w.output(&mut monitor(true), None)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v.get("summary").cloned())
        .ok_or_else(|| format!("barge monitor printed no summary: {text}"))?;
    if out.status.code() != Some(0) {
        return Err(format!(
            "barge monitor alerted on the author's own entries:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    para!(
        "`barge monitor` read all {} entries of the log (pages signed by the pinned channel key \
         for fresh nonces), compared the log with the channel's checkpoint note and with site-a's \
         notary, and found nothing: every entry in acme's name is in author/local/journal.jsonl, \
         where barge records each entry before it submits it.",
        u64_of(&summary, "entries_read")?
    );
    // A thief with copies of the key files and the signing passphrase.
    let thief = w.root.join("thief");
    std::fs::create_dir_all(thief.join("local")).map_err(|e| e.to_string())?;
    std::fs::copy(author.join("barge.toml"), thief.join("barge.toml"))
        .map_err(|e| e.to_string())?;
    let local = std::fs::read_dir(author.join("local")).map_err(|e| e.to_string())?;
    for f in local {
        let f = f.map_err(|e| e.to_string())?.path();
        if f.extension().is_some_and(|e| e == "json") {
            let name = f.file_name().ok_or("a key file without a name")?;
            std::fs::copy(&f, thief.join("local").join(name)).map_err(|e| e.to_string())?;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(thief.join("local"), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| e.to_string())?;
    }
    let stolen = release(w, &thief, src, "6.6.6")?;
    let out = w.output(&mut monitor(false), None)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let alert = text
        .lines()
        .find(|l| l.starts_with("ALERT: "))
        .ok_or_else(|| format!("barge monitor did not alert on the stolen-key release:\n{text}"))?;
    if out.status.code() != Some(10) {
        return Err(format!(
            "barge monitor exited {:?}, not 10, on a new alert",
            out.status.code()
        ));
    }
    para!(
        "Someone with copies of acme's key files and the signing passphrase released 6.6.6 from \
         another folder (logged at index {}). Every site accepts it: the key rules cannot tell a \
         thief from the author. The author's next `barge monitor` (every ten minutes with \
         fixtures/systemd/barge-monitor@.timer) exited 10 and said:",
        u64_of(&stolen, "index")?
    );
    println!("   {alert}");
    para!(
        "With --on-alert CMD the same finding goes, as JSON on stdin, to mail, a chat webhook or \
         a pager; it is said once, not at every run. The author now revokes the signing key and \
         the release (docs/author-guide.md, \"Watching your supplier\")."
    );
    let page = http(channel_url, "GET", "/explorer/", None)?;
    if !String::from_utf8_lossy(&page).contains("<html") {
        return Err("the channel does not serve the log explorer at /explorer/".into());
    }
    para!(
        "Anyone can browse and check the log in a browser: {channel_url}/explorer/#key={channel_key} \
         (the page verifies each entry's signature and inclusion proof against the signed \
         checkpoint with the key pinned in the URL)."
    );
    Ok(())
}

/// `GET base+path` over plain HTTP/1.1 on loopback (the demo needs no HTTP client crate),
/// parsed as JSON.
fn http_get_json(base: &str, path: &str) -> Result<Value, String> {
    let body = http(base, "GET", path, None)?;
    let text = String::from_utf8_lossy(&body);
    serde_json::from_str(&text).map_err(|e| format!("{base}{path}: not JSON: {e}"))
}

/// One HTTP/1.1 request with `Connection: close`; the body of a 200 answer (at most 1 MiB).
fn http(base: &str, method: &str, path: &str, body: Option<&[u8]>) -> Result<Vec<u8>, String> {
    use std::io::{Read, Write};
    let addr = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base} is not an http:// URL"))?
        .trim_end_matches('/');
    let mut conn = std::net::TcpStream::connect(addr)
        .map_err(|e| format!("could not connect to {addr}: {e}"))?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let body = body.unwrap_or_default();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .and_then(|()| conn.write_all(body))
    .map_err(|e| format!("could not send to {addr}: {e}"))?;
    let mut answer = Vec::new();
    conn.take(1 << 20)
        .read_to_end(&mut answer)
        .map_err(|e| format!("could not read from {addr}: {e}"))?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{base}{path}: not an HTTP answer"))?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "{base}{path}: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err(format!(
            "{base}{path}: a chunked answer, which this demo does not read"
        ));
    }
    Ok(answer[split + 4..].to_vec())
}

/// Runs git in `dir` with a fixed author, committer and date, and no user or system
/// configuration, so the commit (and so the archive) is the same on every machine.
fn git(w: &World, dir: &Path, args: &[&str], day: u32) -> Result<String, String> {
    let date = format!("2026-01-{:02}T12:00:00Z", day + 1);
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Acme Demo")
        .env("GIT_AUTHOR_EMAIL", "demo@acme.invalid")
        .env("GIT_COMMITTER_NAME", "Acme Demo")
        .env("GIT_COMMITTER_EMAIL", "demo@acme.invalid")
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date);
    w.ok(&mut cmd, None)
        .map_err(|e| format!("{e}\n(the demo needs git on the PATH)"))
}

/// Changes the sample extension's version line and greeting, and commits.
fn bump(w: &World, src: &Path, version: &str, day: u32) -> Result<(), String> {
    let path = src.join(MAIN_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("could not read {}: {e}", path.display()))?;
    let mut changed = false;
    let text: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("* Version:") {
                changed = true;
                format!(" * Version: {version}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    if !changed {
        return Err(format!("{} has no ` * Version:` line", path.display()));
    }
    std::fs::write(&path, text).map_err(|e| format!("could not write {}: {e}", path.display()))?;
    git(
        w,
        src,
        &["commit", "-q", "-a", "-m", &format!("hello {version}")],
        day,
    )?;
    para!("Changed the version line of {MAIN_FILE} to {version} and committed.");
    Ok(())
}

/// `barge release`; prints what the author's side checked.
fn release(w: &World, author: &Path, src: &Path, version: &str) -> Result<Value, String> {
    release_with(w, author, src, version, &[])
}

/// `barge release` with `extra` arguments (a rollout schedule).
fn release_with(
    w: &World,
    author: &Path,
    src: &Path,
    version: &str,
    extra: &[&str],
) -> Result<Value, String> {
    let r = w.json(
        w.cmd("barge")
            .arg("--dir")
            .arg(author)
            .args(["--json", "release"])
            .arg(src)
            .args([
                "--package",
                PACKAGE,
                "--version",
                version,
                "--passphrase-stdin",
            ])
            .args(extra),
        Some(&format!("{SIGNING_PASS}\n")),
    )?;
    if r["included"] != true || r["version"] != version {
        return Err(format!("barge release did not confirm the release: {r}"));
    }
    para!(
        "barge built a reproducible archive of commit {} ({} bytes, BLAKE2b-512 {}…), \
         signed it with the signing key, submitted the release entry (logged at index {}), \
         uploaded the archive, and checked the inclusion proof of its entry against the \
         channel-signed checkpoint (log size {}, root {}…).",
        short(str_of(&r, "commit")?),
        u64_of(&r, "size")?,
        short(str_of(&r, "digest")?),
        u64_of(&r, "index")?,
        u64_of(&r, "checkpoint_size")?,
        short(str_of(&r, "root")?),
    );
    Ok(r)
}

/// The channel stores archives by digest: check the one just released is there.
fn check_on_disk(channel_dir: &Path, r: &Value) -> Result<(), String> {
    let p = channel_dir.join("archives").join(str_of(r, "digest")?);
    if !p.is_file() {
        return Err(format!(
            "the channel did not store the archive at {}",
            p.display()
        ));
    }
    Ok(())
}

/// `continuum --dir A <args> --json`, which must succeed.
fn update(w: &World, site: &SiteInfo, args: &[&str]) -> Result<Value, String> {
    let v = w.json(
        w.cmd("continuum")
            .arg("--dir")
            .arg(&site.dir)
            .args(args)
            .arg("--json"),
        None,
    )?;
    if v["outcome"] != "ok" {
        return Err(format!("continuum {args:?} did not succeed: {v}"));
    }
    Ok(v)
}

/// Prints what the site verified in one update, and checks it installed `release`.
fn explain_update(
    site: &SiteInfo,
    v: &Value,
    release: &Value,
    signing: &str,
) -> Result<(), String> {
    let c = v["channels"]
        .as_array()
        .and_then(|c| c.first())
        .ok_or_else(|| format!("no channel in the report: {v}"))?;
    let before = u64_of(c, "size_before")?;
    let after = u64_of(c, "size_after")?;
    let root = str_of(c, "root")?;
    let (agreed, needed, total) = (
        u64_of(c, "peers_agreed")?,
        u64_of(c, "peers_needed")?,
        u64_of(c, "peers_total")?,
    );
    if after != u64_of(release, "checkpoint_size")?
        || root != str_of(release, "root")?
        || agreed < needed
        || needed == 0
    {
        return Err(format!(
            "the site did not accept the log up to the release: {v}"
        ));
    }
    para!(
        "{} verified the channel's signed answer (signature by the pinned key, bound to the fresh \
         random nonce it sent), recomputed the Merkle root over its {before} accepted + {} new \
         entries = {after} (root {}…, the root of the author's checkpoint), and {agreed} of its {total} peers, asked in random order, confirmed \
         the same root (needed: max(1, ⌈ln {total}⌉) = {needed}; it stops asking once enough agree). It \
         then replayed the key rules over the new entries and stored them, all or nothing.",
        site.name,
        after - before,
        short(root),
    );
    let inst = c["installed"]
        .as_array()
        .and_then(|i| i.first())
        .ok_or_else(|| format!("nothing was installed: {v}"))?;
    let digest = str_of(inst, "digest")?;
    if digest != str_of(release, "digest")?
        || inst["version"] != release["version"]
        || str_of(inst, "signer")? != signing
    {
        return Err(format!(
            "installed something other than the release just published: {inst}"
        ));
    }
    para!(
        "Installed {} {}: the downloaded archive has the logged size ({} bytes) and \
         BLAKE2b-512 {}…, and its signature verifies with signing key {}…, which the log \
         shows the master key added and nobody revoked{}.",
        str_of(inst, "package")?,
        str_of(inst, "version")?,
        u64_of(inst, "size")?,
        short(digest),
        short(signing),
        match inst["previous"].as_str() {
            Some(p) => format!("; {p} is kept for rollback"),
            None => String::new(),
        }
    );
    Ok(())
}

/// The installed copy of the main file must carry `version`.
fn check_installed_file(site: &SiteInfo, version: &str) -> Result<(), String> {
    let p = site
        .dir
        .join("packages")
        .join(SUPPLIER)
        .join(PACKAGE)
        .join("current")
        .join(MAIN_FILE);
    let text = std::fs::read_to_string(&p)
        .map_err(|e| format!("could not read the installed {}: {e}", p.display()))?;
    if !text.contains(&format!("Version: {version}")) {
        return Err(format!(
            "{} does not say Version: {version}:\n{text}",
            p.display()
        ));
    }
    Ok(())
}

/// Copies a folder (files with their permissions; symlinks and special files are refused,
/// the sample has none).
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("could not create {}: {e}", to.display()))?;
    let rd =
        std::fs::read_dir(from).map_err(|e| format!("could not list {}: {e}", from.display()))?;
    for entry in rd {
        let entry = entry.map_err(|e| format!("could not list {}: {e}", from.display()))?;
        let path = entry.path();
        let ft = entry
            .file_type()
            .map_err(|e| format!("could not stat {}: {e}", path.display()))?;
        let dest = to.join(entry.file_name());
        if ft.is_dir() {
            copy_tree(&path, &dest)?;
        } else if ft.is_file() {
            std::fs::copy(&path, &dest)
                .map_err(|e| format!("could not copy {}: {e}", path.display()))?;
        } else {
            return Err(format!(
                "{} is neither a file nor a folder; the sample extension should hold only those",
                path.display()
            ));
        }
    }
    Ok(())
}
