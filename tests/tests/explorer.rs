//! The log explorer (`/explorer/`, issue 17 part 2) in a real headless Chromium: over a known
//! log of two suppliers it shows their names, key fingerprints and release versions, each entry
//! marked verified, the completeness proven, the key pinned from the URL (or, without `#key=`,
//! loudly taken from the server). Behind a lying front it marks NOT VERIFIED exactly the
//! entries it was lied to about: a tampered proof hash, a tampered entry byte; and, for a
//! checkpoint signed by another key, the checkpoint and every entry. The same files served from
//! another origin check the channel with `#channel=` (CORS on the read endpoints).
//!
//! Needs `/usr/bin/chromium` (Debian's `chromium`): without it the tests are skipped with a
//! loud message, unless `CI=true`, where they fail (`.ci/run` installs it). Each page is loaded
//! with `--dump-dom` until the page has set its `data-done` marker (bounded number of tries,
//! each with a longer virtual-time budget); nothing waits for a fixed time. Screenshots go to
//! `target/explorer-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keyggdrasil::entry::{Claim, Digest512, Event, Reason};
use keyggdrasil::keys::{KeyPair, PublicKey};
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::Signed;
use system_tests::front::{Answer, Front, forward};
use system_tests::{Channel, Supplier};

const CHROMIUM: &str = "/usr/bin/chromium";

/// The browser, or `None` (skip) outside CI when it is not installed.
fn chromium() -> Option<&'static str> {
    if Path::new(CHROMIUM).exists() {
        return Some(CHROMIUM);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{CHROMIUM} is not installed (apt-get install -y chromium); CI must run the explorer tests"
    );
    eprintln!("SKIPPED: {CHROMIUM} is not installed (apt-get install -y chromium)");
    None
}

/// Runs Chromium headless with `args` and `url` in a fresh profile; kills it after two minutes.
fn run_chromium(browser: &str, args: &[String], url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });
    let started = Instant::now();
    while child.try_wait().expect("wait chromium").is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish with {url} in 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().expect("stdout reader")
}

/// The DOM of `url` after the explorer is done (its `data-done` marker), tried with growing
/// virtual-time budgets; panics if it never is.
fn dom(browser: &str, url: &str) -> String {
    let mut last = String::new();
    for budget in [20_000, 60_000, 180_000, 600_000] {
        last = run_chromium(
            browser,
            &[
                format!("--virtual-time-budget={budget}"),
                "--dump-dom".into(),
            ],
            url,
        );
        if last.contains(r#"data-done="yes""#) {
            assert!(!last.contains("Could not finish"), "{url}:\n{last}");
            return last;
        }
    }
    panic!("the explorer at {url} never finished:\n{last}");
}

/// A PNG of `url` under `target/explorer-screenshots/NAME.png`, for people to look at.
fn screenshot(browser: &str, url: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/explorer-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let path = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&path);
    run_chromium(
        browser,
        &[
            "--virtual-time-budget=60000".into(),
            "--window-size=1280,2000".into(),
            "--hide-scrollbars".into(),
            format!("--screenshot={}", path.display()),
        ],
        url,
    );
    let png = std::fs::read(&path).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{}", path.display());
    path
}

/// `(index, verified)` of every entry the page shows, in page order.
fn marks(dom: &str) -> Vec<(u64, bool)> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(at) = rest.find(r#"class="entry" data-index=""#) {
        rest = &rest[at + r#"class="entry" data-index=""#.len()..];
        let (index, tail) = rest.split_once('"').expect("index");
        let tail = tail
            .trim_start()
            .strip_prefix(r#"data-verified=""#)
            .expect("mark");
        out.push((index.parse().expect("index"), tail.starts_with("yes")));
    }
    out
}

fn checkpoint_verified(dom: &str) -> bool {
    dom.contains(r#"class="checkpoint" data-verified="yes""#)
}

/// The known log: acme with two signing keys (the first revoked), three releases (one revoked)
/// and bravo with one release and an attestation of acme's hello 1.1.0.
struct Log {
    channel: Channel,
    acme: Supplier,
    bravo: Supplier,
    second_signing: KeyPair,
    /// acme's entries' indices, in log order.
    acme_entries: Vec<u64>,
    /// Index of acme's hello 1.1.0 release.
    hello_11: u64,
    size: u64,
}

fn known_log() -> Log {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    let bravo = Supplier::new("bravo");
    let second_signing = KeyPair::generate();
    let mut acme_entries = Vec::new();
    let mut add = |e: &keyggdrasil::entry::Entry, mine: bool| {
        let r = channel.submit(e);
        if mine {
            acme_entries.push(r.index);
        }
        r.index
    };
    add(&acme.master_entry(), true);
    add(&acme.signing_entry(), true);
    add(&bravo.master_entry(), false);
    add(&bravo.signing_entry(), false);
    let hello_10 = b"hello 1.0.0 archive".to_vec();
    let hello_11 = b"hello 1.1.0 archive".to_vec();
    add(
        &acme.release(&acme.signing, "hello", "1.0.0", &hello_10),
        true,
    );
    let hello_11_index = add(
        &acme.release(&acme.signing, "hello", "1.1.0", &hello_11),
        true,
    );
    add(
        &bravo.release(&bravo.signing, "widget", "0.1.0", b"widget"),
        false,
    );
    let (_, digest) = keyggdrasil::filesig::archive_digest(hello_11.as_slice()).expect("digest");
    add(
        &bravo.sign(
            &bravo.signing,
            Event::Attestation {
                subject: SupplierName::parse("acme").unwrap(),
                package: PackageName::parse("hello").unwrap(),
                version: Version::parse("1.1.0").unwrap(),
                digest: Digest512(digest),
                claim: Claim::Reproduced,
            },
        ),
        false,
    );
    add(
        &acme.sign(
            &acme.master,
            Event::SigningKey {
                public_key: second_signing.public(),
                derivation: None,
            },
        ),
        true,
    );
    add(&acme.revoke(&acme.master, &acme.signing.public()), true);
    let tool_2_index = add(
        &acme.release(&second_signing, "tool", "2.0.0", b"tool 2.0.0"),
        true,
    );
    // A staged-rollout entry (its own signature context): shown and verified like the others.
    add(
        &acme.sign(
            &second_signing,
            Event::Rollout {
                package: PackageName::parse("tool").unwrap(),
                version: Version::parse("2.0.0").unwrap(),
                replaces: tool_2_index,
                waves: vec![keyggdrasil::rollout::Wave {
                    percent: 100,
                    not_before: 0,
                }],
                paused: true,
            },
        ),
        true,
    );
    let last = add(
        &acme.sign(
            &acme.master,
            Event::ReleaseRevocation {
                package: PackageName::parse("hello").unwrap(),
                version: Version::parse("1.0.0").unwrap(),
                reason: Reason::parse("broken").unwrap(),
            },
        ),
        true,
    );
    Log {
        channel,
        acme,
        bravo,
        second_signing,
        acme_entries,
        hello_11: hello_11_index,
        size: last + 1,
    }
}

fn page(base: &str, key: Option<&PublicKey>, view: &str) -> String {
    let mut fragment = String::new();
    if let Some(k) = key {
        fragment.push_str(&format!("key={}&", k.to_hex()));
    }
    fragment.push_str(view);
    format!("{base}/explorer/#{fragment}")
}

#[test]
fn the_explorer_shows_a_known_log_verified_and_marks_exactly_what_a_lying_front_changed() {
    let Some(browser) = chromium() else { return };
    let log = known_log();
    let ch = &log.channel;

    // The suppliers, the completeness proven from all entries, the key pinned.
    let home = dom(browser, &page(&ch.base, Some(&ch.key), ""));
    assert!(checkpoint_verified(&home), "{home}");
    assert!(home.contains("pinned from the URL"), "{home}");
    assert!(home.contains(r#"data-supplier="acme""#), "{home}");
    assert!(home.contains(r#"data-supplier="bravo""#), "{home}");
    assert!(
        home.contains(&format!(
            "complete: proven by recomputing the root from all {} entries",
            log.size
        )),
        "{home}"
    );

    screenshot(browser, &page(&ch.base, Some(&ch.key), ""), "home");
    let nobody = dom(browser, &page(&ch.base, Some(&ch.key), "supplier=nobody"));
    assert!(nobody.contains("knows no supplier nobody"), "{nobody}");

    // acme's page: every key with its fingerprint, every release, every entry verified.
    let acme_url = page(&ch.base, Some(&ch.key), "supplier=acme");
    let acme = dom(browser, &acme_url);
    assert!(checkpoint_verified(&acme), "{acme}");
    for key in [
        log.acme.master.public(),
        log.acme.signing.public(),
        log.second_signing.public(),
    ] {
        assert!(
            acme.contains(&key.to_hex()),
            "no key {}:\n{acme}",
            key.to_hex()
        );
    }
    for release in ["hello 1.0.0", "hello 1.1.0", "tool 2.0.0"] {
        assert!(
            acme.contains(&format!(r#"data-release="{release}""#)),
            "{release}:\n{acme}"
        );
    }
    assert!(acme.contains("revoked (entry"), "{acme}");
    assert!(
        acme.contains("revoked at"),
        "the release revocation:\n{acme}"
    );
    assert!(
        acme.contains("bravo (reproduced"),
        "the attestation:\n{acme}"
    );
    assert!(acme.contains("complete: proven"), "{acme}");
    let all_yes: Vec<(u64, bool)> = log.acme_entries.iter().map(|&i| (i, true)).collect();
    let mut shown = marks(&acme);
    shown.sort();
    assert_eq!(shown, all_yes, "{acme}");
    assert!(!acme.contains("NOT VERIFIED"), "{acme}");
    let png = screenshot(browser, &acme_url, "acme");
    eprintln!("screenshot: {}", png.display());

    // Without reading the whole log, the same entries verify but completeness is only asserted.
    let asserted = dom(
        browser,
        &page(&ch.base, Some(&ch.key), "full=no&supplier=acme"),
    );
    assert!(
        asserted.contains("complete: asserted by the channel"),
        "{asserted}"
    );
    assert!(!asserted.contains("complete: proven"), "{asserted}");
    let mut shown = marks(&asserted);
    shown.sort();
    assert_eq!(shown, all_yes, "{asserted}");

    // Search by package and by a digest prefix: the matching entries, verified.
    let search = dom(browser, &page(&ch.base, Some(&ch.key), "q=widget"));
    assert_eq!(marks(&search), vec![(6, true)], "{search}");
    let (_, digest) = keyggdrasil::filesig::archive_digest(&b"hello 1.1.0 archive"[..]).unwrap();
    let prefix = &Digest512(digest).to_hex()[..10];
    let search = dom(
        browser,
        &page(&ch.base, Some(&ch.key), &format!("q={prefix}")),
    );
    // The release and bravo's attestation of it carry that digest.
    assert_eq!(
        marks(&search),
        vec![(log.hello_11, true), (7, true)],
        "{search}"
    );

    // Without #key=, the page says loudly where the key came from.
    let unpinned = dom(browser, &page(&ch.base, None, "supplier=bravo"));
    assert!(
        unpinned.contains("the channel key came from the server being checked"),
        "{unpinned}"
    );
    assert!(marks(&unpinned).iter().all(|(_, ok)| *ok), "{unpinned}");
    screenshot(
        browser,
        &page(&ch.base, None, "supplier=bravo"),
        "bravo-key-from-server",
    );
    assert_eq!(marks(&unpinned).len(), 4, "{unpinned}");
    let _ = &log.bravo;

    // A front that changes one hash of the proof of acme's hello 1.1.0.
    let target = log.hello_11;
    let up = ch.base.clone();
    let front = Front::start(&ch.base, move |path| {
        tamper_history(&up, path, |e| {
            if e["index"] == target {
                let h = e["path"][0].as_str().unwrap().to_owned();
                e["path"][0] = flip_hex(&h).into();
            }
        })
    });
    let lied = dom(browser, &page(&front.url, Some(&ch.key), "supplier=acme"));
    assert!(checkpoint_verified(&lied), "{lied}");
    let want: Vec<(u64, bool)> = log.acme_entries.iter().map(|&i| (i, i != target)).collect();
    let mut shown = marks(&lied);
    shown.sort();
    assert_eq!(shown, want, "a tampered proof hash:\n{lied}");
    screenshot(
        browser,
        &page(&front.url, Some(&ch.key), "supplier=acme"),
        "acme-tampered-proof",
    );
    drop(front);

    // A front that changes one byte of that entry (its version).
    let up = ch.base.clone();
    let front = Front::start(&ch.base, move |path| {
        tamper_history(&up, path, |e| {
            if e["index"] == target {
                let t = e["entry"].as_str().unwrap().replace("1.1.0", "1.1.9");
                e["entry"] = t.into();
            }
        })
    });
    let lied = dom(browser, &page(&front.url, Some(&ch.key), "supplier=acme"));
    assert!(lied.contains(r#"data-release="hello 1.1.9""#), "{lied}");
    let mut shown = marks(&lied);
    shown.sort();
    assert_eq!(shown, want, "a tampered entry byte:\n{lied}");
    drop(front);

    // A front that leaves acme's key revocation out of its history: every entry shown still
    // verifies, but the page says the list is not complete (and so the key looks current).
    let revocation = log.acme_entries[log.acme_entries.len() - 3];
    let up = ch.base.clone();
    let front = Front::start(&ch.base, move |path| {
        if !path.starts_with("/v1/suppliers/") {
            return Answer::Pass;
        }
        let (_, _, body) = forward(&up, path, None);
        let mut env: serde_json::Value = serde_json::from_slice(&body).unwrap();
        env["data"]["entries"]
            .as_array_mut()
            .unwrap()
            .retain(|e| e["index"] != revocation);
        json_answer(&env)
    });
    let lied = dom(browser, &page(&front.url, Some(&ch.key), "supplier=acme"));
    assert!(lied.contains(r#"data-complete="no""#), "{lied}");
    assert!(lied.contains("NOT COMPLETE"), "{lied}");
    assert!(!lied.contains("complete: proven"), "{lied}");
    let rest: Vec<(u64, bool)> = log
        .acme_entries
        .iter()
        .filter(|&&i| i != revocation)
        .map(|&i| (i, true))
        .collect();
    let mut shown = marks(&lied);
    shown.sort();
    assert_eq!(shown, rest, "an omitted entry:\n{lied}");
    drop(front);

    // A front that changes one byte of one entry in /v1/entries (bravo's widget release): the
    // whole log no longer hashes to the root, so completeness is not proven anywhere.
    let up = ch.base.clone();
    let front = Front::start(&ch.base, move |path| {
        if !path.starts_with("/v1/entries") {
            return Answer::Pass;
        }
        let (_, _, body) = forward(&up, path, None);
        let text = String::from_utf8(body).unwrap().replace("widget", "widgex");
        Answer::Body {
            status: 200,
            content_type: "application/json".into(),
            body: text.into_bytes(),
        }
    });
    let lied = dom(browser, &page(&front.url, Some(&ch.key), ""));
    assert!(checkpoint_verified(&lied), "{lied}");
    assert!(lied.contains(r#"data-complete="no""#), "{lied}");
    let lied = dom(browser, &page(&front.url, Some(&ch.key), "supplier=acme"));
    assert!(lied.contains(r#"data-complete="no""#), "{lied}");
    drop(front);

    // A front that serves the real checkpoint signed by another key: nothing verifies.
    let up = ch.base.clone();
    let other = KeyPair::generate();
    let front = Front::start(&ch.base, move |path| {
        if path != "/v1/checkpoint" {
            return Answer::Pass;
        }
        let (_, _, body) = forward(&up, path, None);
        let env: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let payload = env["data"]["payload"].as_str().unwrap().to_owned();
        let forged = Signed::from_parts(
            payload.clone(),
            keyggdrasil::protocol::sign(&other, Context::Checkpoint, payload.as_bytes()),
        );
        json_answer(&serde_json::json!({"status": "ok", "data": forged}))
    });
    let lied = dom(browser, &page(&front.url, Some(&ch.key), "supplier=acme"));
    assert!(
        lied.contains(r#"class="checkpoint" data-verified="no""#),
        "{lied}"
    );
    let none: Vec<(u64, bool)> = log.acme_entries.iter().map(|&i| (i, false)).collect();
    let mut shown = marks(&lied);
    shown.sort();
    assert_eq!(shown, none, "a checkpoint by another key:\n{lied}");
    drop(front);
}

#[test]
fn the_same_files_served_elsewhere_check_the_channel_with_a_channel_fragment() {
    let Some(browser) = chromium() else { return };
    // Pages of two entries: the explorer asks for 500 and must step down on the 400.
    let ch = Channel::start_with(
        "open",
        &format!(
            "max_entries_per_page = 2\n{}",
            system_tests::RATE_LIMITS_OFF
        ),
    );
    let acme = Supplier::new("acme");
    acme.register(&ch);
    ch.submit(&acme.release(&acme.signing, "hello", "1.0.0", b"hello"));
    // The channel's own copy: its types, caching and policy; CORS only on the read endpoints.
    let agent = system_tests::agent();
    let get = |path: &str| agent.get(&ch.url(path)).call().expect("get");
    let header = |r: &ureq::http::Response<ureq::Body>, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let index = get("/explorer/");
    assert_eq!(index.status(), 200);
    assert_eq!(
        header(&index, "content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header(&index, "cache-control").as_deref(), Some("no-cache"));
    let csp = header(&index, "content-security-policy").expect("a CSP");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(header(&index, "access-control-allow-origin").is_none());
    let js = get("/explorer/vendor/noble.js");
    assert_eq!(
        header(&js, "content-type").as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(get("/explorer/nothing.js").status(), 404);
    for path in ["/v1/checkpoint", "/v1/stats", "/v1/entries?start=0&end=1"] {
        assert_eq!(
            header(&get(path), "access-control-allow-origin").as_deref(),
            Some("*"),
            "{path}"
        );
    }
    let submit = agent
        .post(&ch.url("/v1/submit"))
        .content_type("application/json")
        .send("{}")
        .expect("post");
    assert!(header(&submit, "access-control-allow-origin").is_none());

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../channel-server/explorer");
    // A plain static file server of the checked-in files: another origin than the channel.
    let elsewhere = Front::serve(move |r| {
        let name = r.path.strip_prefix("/explorer/").unwrap_or("");
        let name = if name.is_empty() { "index.html" } else { name };
        let ct = match name.rsplit('.').next() {
            Some("html") => "text/html",
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            _ => "application/octet-stream",
        };
        match std::fs::read(dir.join(name)) {
            Ok(body) if !name.contains("..") => Answer::Body {
                status: 200,
                content_type: ct.into(),
                body,
            },
            _ => Answer::Body {
                status: 404,
                content_type: "text/plain".into(),
                body: b"no".to_vec(),
            },
        }
    });
    let url = page(
        &elsewhere.url,
        Some(&ch.key),
        &format!("channel={}&supplier=acme", ch.base),
    );
    let got = dom(browser, &url);
    assert!(checkpoint_verified(&got), "{got}");
    assert_eq!(marks(&got), vec![(0, true), (1, true), (2, true)], "{got}");
    assert!(
        got.contains(&ch.base),
        "the page names the channel it read:\n{got}"
    );
    assert!(
        got.contains("complete: proven by recomputing the root from all 3 entries"),
        "{got}"
    );
}

#[test]
fn a_supplier_of_more_than_one_page_is_read_to_the_end() {
    let Some(browser) = chromium() else { return };
    let ch = Channel::start();
    let big = Supplier::new("big");
    big.register(&ch);
    // 2 key entries and 120 releases: two pages of /v1/suppliers/big (100 a page).
    for n in 0..120 {
        let version = format!("1.0.{n}");
        ch.submit(&big.release(&big.signing, "many", &version, version.as_bytes()));
    }
    let got = dom(browser, &page(&ch.base, Some(&ch.key), "supplier=big"));
    let shown = marks(&got);
    assert_eq!(shown.len(), 122, "{got}");
    assert!(shown.iter().all(|(_, ok)| *ok), "{got}");
    assert!(got.contains(r#"data-release="many 1.0.119""#), "{got}");
    assert!(got.contains("complete: proven"), "{got}");
}

/// Passes every request but `/v1/suppliers/…`, whose answer's entries go through `change`.
fn tamper_history(upstream: &str, path: &str, change: impl Fn(&mut serde_json::Value)) -> Answer {
    if !path.starts_with("/v1/suppliers/") {
        return Answer::Pass;
    }
    let (status, _, body) = forward(upstream, path, None);
    let mut env: serde_json::Value = serde_json::from_slice(&body).unwrap();
    if status == 200 {
        for e in env["data"]["entries"].as_array_mut().unwrap() {
            change(e);
        }
    }
    json_answer(&env)
}

fn json_answer(v: &serde_json::Value) -> Answer {
    Answer::Body {
        status: 200,
        content_type: "application/json".into(),
        body: serde_json::to_vec(v).unwrap(),
    }
}

/// `hex` with its first digit changed.
fn flip_hex(hex: &str) -> String {
    let first = if hex.starts_with('0') { "1" } else { "0" };
    format!("{first}{}", &hex[1..])
}

/// The edge cases of `verify.js` no page load reaches (strict Ed25519's refusals, the Merkle
/// functions against a naive prover): `channel-server/explorer/build/verify.test.mjs` under
/// Node. Skipped when `node` is missing (CI does not install it; the browser tests above cover
/// the honest and the forged paths).
#[test]
fn verify_js_edge_cases_under_node() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../channel-server/explorer/build/verify.test.mjs");
    match Command::new("node").arg(&script).output() {
        Ok(out) => assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => eprintln!("SKIPPED: node is not installed; verify.test.mjs not run"),
    }
}
