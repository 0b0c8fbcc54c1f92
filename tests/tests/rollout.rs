//! Staged rollouts (issue 18) with the real binaries: `barge release --rollout`, `barge rollout
//! pause|resume|widen`, two sites whose buckets fall on either side of a wave, `continuum status
//! --json` saying why a site waits, and the malicious front, which can withhold a rollout entry
//! (the site then just keeps waiting) but not forge one (the site's key-rule replay refuses it).

#[path = "../../barge/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use common::*;
use keyggdrasil::entry::{Digest512, Entry, Event, GitCommit};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::merkle::{Blake2b256, TreeHasher};
use keyggdrasil::names::{PackageName, Version};
use keyggdrasil::rollout::{Rollout, Wave, bucket};
use serde_json::Value;
use system_tests::front::{Answer, Front, evil_log_keeping};
use system_tests::{Site, Supplier, assert_says, exit, plugin_archive};

fn pass() -> String {
    format!("{PASS}\n")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// An author folder `acme` with master and signing key registered on `ch`.
fn registered_author(ch: &Channel) -> tempfile::TempDir {
    let dir = author(&ch.base, &ch.key.to_hex());
    new_key(dir.path(), "--master");
    new_key(dir.path(), "--signing");
    ok(&barge(
        dir.path(),
        &["key", "register", "--passphrase-stdin"],
        Some(&pass()),
    ));
    ok(&barge(
        dir.path(),
        &["key", "add", "--passphrase-stdin"],
        Some(&pass()),
    ));
    dir
}

fn release(dir: &Path, src: &Path, version: &str, rollout: Option<&str>) -> Value {
    let mut args = vec![
        "--json",
        "release",
        src.to_str().expect("utf8"),
        "--package",
        "hello",
        "--version",
        version,
        "--passphrase-stdin",
    ];
    if let Some(r) = rollout {
        args.extend(["--rollout", r]);
    }
    json(&barge(dir, &args, Some(&pass())))
}

fn rollout(dir: &Path, action: &str, version: &str, spec: Option<&str>) -> Value {
    let mut args = vec![
        "--json",
        "rollout",
        action,
        "hello",
        version,
        "--passphrase-stdin",
    ];
    if let Some(s) = spec {
        args.extend(["--rollout", s]);
    }
    json(&barge(dir, &args, Some(&pass())))
}

/// The leaf hash of the release entry of `hello` `version` in the channel's log.
fn release_leaf(ch: &Channel, version: &str) -> [u8; 32] {
    let size = log_size(&ch.base);
    ch.all_entries(size)
        .into_iter()
        .find(|bytes| {
            let e = Entry::parse(bytes).expect("entry");
            matches!(&e.body().event, Event::Release { version: v, .. } if v.as_str() == version)
        })
        .map(|bytes| Blake2b256.hash_leaf(&bytes))
        .expect("the release is logged")
}

fn update(site: &Site) -> String {
    let out = site.run(&["update"]);
    assert_says(&out, exit::OK, &[])
}

/// `continuum status --json`'s rollout object of the one tracked package (`null` if none).
fn rollout_status(site: &Site) -> Value {
    let out = site.run(&["--json", "status"]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status json: {e}: {}", system_tests::output_text(&out)));
    v["packages"][0]["rollout"].clone()
}

/// A site just inside a wave installs; a site just outside waits and says why; widening the
/// rollout lets it in on its next run. A release whose first wave has not started is not
/// installed by anyone: sites install the newest release whose rollout includes them (1.0.0).
/// A paused rollout is installed by nobody until it is resumed.
#[test]
fn sites_follow_the_signed_schedule_by_their_own_buckets() {
    let ch = Channel::start();
    let dir = registered_author(&ch);
    let src = source_repo();
    release(dir.path(), src.path(), "1.0.0", None);
    // 2.0.0 starts in a day: nobody yet.
    let start = now() + 86_400;
    let r = release(
        dir.path(),
        src.path(),
        "2.0.0",
        Some(&format!("100%@{start}")),
    );
    assert_eq!(r["rollout"]["waves"][0]["not_before"], start);

    // Each site installs 1.0.0, the newest release its rollout includes.
    let a = Site::init_installing(&ch, "acme/hello", "1.0.0");
    let leaf = release_leaf(&ch, "2.0.0");
    let ba = bucket(&a.notary_key, &leaf);
    let w = rollout_status(&a);
    assert_eq!(w["release"], "2.0.0", "{w}");
    assert_eq!(w["reason"], "not_started", "{w}");
    assert_eq!(w["bucket"], ba, "{w}");
    assert_eq!(w["waiting_until"], start, "{w}");
    assert_eq!(w["wave_percent"], 100, "{w}");
    let human = system_tests::output_text(&a.run(&["status"]));
    assert!(
        human.contains("2.0.0 is waiting for its staged rollout"),
        "{human}"
    );
    // A second site with another bucket (1 chance in 100 of the same one: try again).
    let (b, bb) = (0..20)
        .map(|_| {
            let s = Site::init_installing(&ch, "acme/hello", "1.0.0");
            let bk = bucket(&s.notary_key, &leaf);
            (s, bk)
        })
        .find(|(_, bk)| *bk != ba)
        .expect("a site with another bucket");
    let ((lo_site, lo), (hi_site, hi)) = if ba < bb {
        ((&a, ba), (&b, bb))
    } else {
        ((&b, bb), (&a, ba))
    };

    // A wave of lo + 1 %, now: the low site is just in (bucket = percent - 1), the high one
    // out (bucket >= percent; exactly on it when hi = lo + 1).
    let p = lo + 1;
    rollout(dir.path(), "widen", "2.0.0", Some(&format!("{p}%")));
    update(lo_site);
    assert_eq!(
        lo_site.installed_version("acme", "hello").as_deref(),
        Some("2.0.0")
    );
    assert_eq!(rollout_status(lo_site), Value::Null);
    let t = update(hi_site);
    assert!(t.contains("waiting for its staged rollout"), "{t}");
    assert_eq!(
        hi_site.installed_version("acme", "hello").as_deref(),
        Some("1.0.0")
    );
    let w = rollout_status(hi_site);
    assert_eq!(w["reason"], "outside_wave", "{w}");
    assert_eq!(w["bucket"], hi, "{w}");
    assert_eq!(w["current_percent"], p, "{w}");
    assert_eq!(w["waiting_until"], Value::Null, "{w}");
    // The status file written by the update says the same.
    let file: Value = serde_json::from_slice(
        &std::fs::read(hi_site.root.join("status.json")).expect("status.json"),
    )
    .expect("json");
    assert_eq!(file["packages"][0]["rollout"], w);

    // Everyone now: the high site installs on its next run.
    rollout(dir.path(), "widen", "2.0.0", Some("now"));
    update(hi_site);
    assert_eq!(
        hi_site.installed_version("acme", "hello").as_deref(),
        Some("2.0.0")
    );
    assert_eq!(rollout_status(hi_site), Value::Null);

    // 3.0.0 without a schedule, paused before any site ran: nobody installs it.
    release(dir.path(), src.path(), "3.0.0", None);
    let paused = rollout(dir.path(), "pause", "3.0.0", None);
    assert_eq!(paused["paused"], true);
    for s in [&a, &b] {
        update(s);
        assert_eq!(
            s.installed_version("acme", "hello").as_deref(),
            Some("2.0.0")
        );
        let w = rollout_status(s);
        assert_eq!(w["release"], "3.0.0", "{w}");
        assert_eq!(w["reason"], "paused", "{w}");
        assert_eq!(w["waiting_until"], Value::Null, "{w}");
    }
    // A fix released while 3.0.0 is paused (a 2.1.0 for everyone at once) is installed: a
    // paused release never holds back an older one that is out for everyone.
    release(dir.path(), src.path(), "2.1.0", Some("now"));
    for s in [&a, &b] {
        update(s);
        assert_eq!(
            s.installed_version("acme", "hello").as_deref(),
            Some("2.1.0")
        );
        assert_eq!(rollout_status(s)["release"], "3.0.0");
    }
    rollout(dir.path(), "resume", "3.0.0", None);
    for s in [&a, &b] {
        update(s);
        assert_eq!(
            s.installed_version("acme", "hello").as_deref(),
            Some("3.0.0")
        );
    }

    // The author's monitor knows every rollout entry as its own (all went through the journal).
    let m = barge(dir.path(), &["monitor"], None);
    assert_eq!(
        system_tests::exit_code(&m),
        0,
        "{}",
        system_tests::output_text(&m)
    );
}

/// A non-monotonic schedule never reaches the log: barge refuses to sign it, and the honest
/// channel refuses a hand-made entry carrying one at submission.
#[test]
fn a_non_monotonic_schedule_is_refused() {
    let ch = Channel::start();
    let dir = registered_author(&ch);
    let src = source_repo();
    let out = barge(
        dir.path(),
        &[
            "release",
            src.path().to_str().unwrap(),
            "--package",
            "hello",
            "--version",
            "1.0.0",
            "--rollout",
            "50%,10%@+1h",
            "--passphrase-stdin",
        ],
        Some(&pass()),
    );
    assert_eq!(
        system_tests::exit_code(&out),
        2,
        "{}",
        system_tests::output_text(&out)
    );
    assert!(system_tests::output_text(&out).contains("monotonic"));

    let acme = Supplier::new("acme2");
    acme.register(&ch);
    acme.publish_plugin(&ch, "hello", "1.0.0", "x");
    let release_at = log_size(&ch.base) - 1;
    let body = format!(
        r#"{{"v":1,"supplier":"acme2","signer":"{}","event":{{"type":"rollout","package":"hello","version":"1.0.0","replaces":{release_at},"waves":[{{"percent":50,"not_before":0}},{{"percent":10,"not_before":5}}],"paused":false}}}}"#,
        acme.signing.public().to_hex()
    );
    let sig = keyggdrasil::protocol::sign(
        &acme.signing,
        keyggdrasil::protocol::Context::Rollout,
        body.as_bytes(),
    );
    let refused = ch.try_submit_text(&format!("{body}\n{}", sig.to_hex()), None);
    let (status, code) = refused.expect_err("a non-monotonic schedule must be refused");
    println!("refused: {status} {code}");
    assert_eq!((status, code.as_str()), (400, "malformed_entry"));
    // The same entry with the waves in order is accepted: the order was the only fault.
    let fixed = body.replace(
        r#"[{"percent":50,"not_before":0},{"percent":10,"not_before":5}]"#,
        r#"[{"percent":10,"not_before":0},{"percent":50,"not_before":5}]"#,
    );
    assert_ne!(fixed, body);
    let sig = keyggdrasil::protocol::sign(
        &acme.signing,
        keyggdrasil::protocol::Context::Rollout,
        fixed.as_bytes(),
    );
    ch.try_submit_text(&format!("{fixed}\n{}", sig.to_hex()), None)
        .expect("a monotonic schedule is accepted");
}

fn release_with(s: &Supplier, version: &str, archive: &[u8], rollout: Rollout) -> Entry {
    let (size, digest) = keyggdrasil::filesig::archive_digest(archive).expect("digest");
    s.sign(
        &s.signing,
        Event::Release {
            package: PackageName::parse("hello").expect("package"),
            version: Version::parse(version).expect("version"),
            size,
            digest: Digest512(digest),
            commit: GitCommit::parse(&"a".repeat(40)).expect("commit"),
            signature: keyggdrasil::filesig::sign(&s.signing, archive).expect("sign"),
            rollout: Some(rollout),
        },
    )
}

fn rollout_entry(
    s: &Supplier,
    by: &KeyPair,
    version: &str,
    replaces: u64,
    waves: Vec<Wave>,
) -> Entry {
    s.sign(
        by,
        Event::Rollout {
            package: PackageName::parse("hello").expect("package"),
            version: Version::parse(version).expect("version"),
            replaces,
            waves,
            paused: false,
        },
    )
}

/// The malicious front holds the channel key and re-signs logs of its choosing. It cannot move
/// a site into a wave: withholding the author's widen entry only keeps the site waiting, and a
/// rollout entry it forges (signed by a key that is not the supplier's) is refused by the
/// site's own replay of the key rules, with nothing changed.
#[test]
fn the_channel_can_withhold_a_rollout_but_not_forge_one() {
    let ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    let bob = Supplier::new("bob");
    bob.register(&ch);
    acme.publish_plugin(&ch, "hello", "1.0.0", "one");
    let archive = plugin_archive("acme/hello", "2.0.0", "two");
    // Not before ten days from now: nobody.
    let later = now() + 10 * 86_400;
    ch.submit(&release_with(
        &acme,
        "2.0.0",
        &archive,
        Rollout {
            waves: vec![Wave {
                percent: 100,
                not_before: later,
            }],
            paused: false,
        },
    ));
    ch.upload("acme", "hello", "2.0.0", &archive);
    let before_widen = log_size(&ch.base) as usize;

    let keep = Arc::new(Mutex::new(usize::MAX));
    let extra: Arc<Mutex<Vec<Entry>>> = Arc::new(Mutex::new(Vec::new()));
    let key = Arc::new(ch.signing_key());
    let (up, k, ex) = (ch.base.clone(), keep.clone(), extra.clone());
    let front = Front::start(&ch.base, move |path| {
        if path.starts_with("/v1/updates") || path.starts_with("/v1/fresh") {
            evil_log_keeping(&up, &key, *k.lock().unwrap(), &ex.lock().unwrap(), path)
        } else {
            Answer::Pass
        }
    });
    let mut notary = Site::init(&ch);
    notary.set_mirror(&front.url);
    notary.start_notary();
    let site = Site::init(&ch);
    site.set_mirror(&front.url);
    site.add_peer(notary.notary_url.as_deref().unwrap(), &notary.notary_key);
    assert_says(
        &site.run(&["install", "acme/hello"]),
        exit::OK,
        &["installed 1.0.0", "waiting for its staged rollout"],
    );

    // The author widens to everyone now; the front withholds that entry.
    *keep.lock().unwrap() = before_widen;
    ch.submit(&rollout_entry(
        &acme,
        &acme.signing,
        "2.0.0",
        before_widen as u64 - 1,
        Rollout::everyone_now().waves,
    ));
    update(&site);
    assert_eq!(
        site.installed_version("acme", "hello").as_deref(),
        Some("1.0.0")
    );
    let w = rollout_status(&site);
    assert_eq!(w["reason"], "not_started", "{w}");
    assert_eq!(w["waiting_until"], later, "{w}");

    // The front forges "everyone now" in acme's name, signed by bob's key, by its own channel
    // key, and by a fresh key: each is refused by the key rules and nothing changes.
    let copy = |k: &KeyPair| KeyPair::from_seed(&k.seed()).expect("seed");
    for forger in [copy(&bob.master), ch.signing_key(), KeyPair::generate()] {
        // A fresh notary and site per forged log: one shown two forged entries at one index
        // would (rightly) report a fork instead.
        *extra.lock().unwrap() = Vec::new();
        let mut witness = Site::init(&ch);
        witness.set_mirror(&front.url);
        witness.start_notary();
        let fresh = Site::init(&ch);
        fresh.set_mirror(&front.url);
        fresh.add_peer(witness.notary_url.as_deref().unwrap(), &witness.notary_key);
        assert_says(
            &fresh.run(&["install", "acme/hello"]),
            exit::OK,
            &["installed 1.0.0"],
        );
        *extra.lock().unwrap() = vec![rollout_entry(
            &acme,
            &forger,
            "2.0.0",
            before_widen as u64 - 1,
            Rollout::everyone_now().waves,
        )];
        fresh.assert_update_refused(
            exit::VERIFICATION,
            &[
                "confirmed by 1 of 1 peers",
                "which breaks the key rules",
                "is not a current key of supplier acme",
            ],
        );
        assert_eq!(
            fresh.installed_version("acme", "hello").as_deref(),
            Some("1.0.0")
        );
    }
    drop(front);
}

/// The air-gapped flow: `barge prepare rollout` writes the request, `hangar sign` shows the
/// waves and signs them offline, `barge publish` logs the entry, and a site follows it.
#[test]
fn a_rollout_signed_on_the_airgap_reaches_the_log_and_the_sites() {
    use std::os::unix::fs::PermissionsExt;
    let ch = Channel::start();
    let dir = author(&ch.base, &ch.key.to_hex());
    new_key(dir.path(), "--master");
    let signing = new_key(dir.path(), "--signing");
    ok(&barge(
        dir.path(),
        &["key", "register", "--passphrase-stdin"],
        Some(&pass()),
    ));
    ok(&barge(
        dir.path(),
        &["key", "add", "--passphrase-stdin"],
        Some(&pass()),
    ));
    let src = source_repo();
    release(dir.path(), src.path(), "1.0.0", None);
    let far = now() + 30 * 86_400;
    release(
        dir.path(),
        src.path(),
        "2.0.0",
        Some(&format!("100%@{far}")),
    );
    let site = Site::init_installing(&ch, "acme/hello", "1.0.0");

    // The air-gapped machine holds the (public-only, derived) signing key file.
    let airgap = tempfile::tempdir().expect("tempdir");
    let local = airgap.path().join("local");
    std::fs::create_dir(&local).expect("mkdir");
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let from = std::path::PathBuf::from(signing["file"].as_str().expect("file"));
    let to = local.join(from.file_name().expect("name"));
    std::fs::copy(&from, &to).expect("copy key");
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let p = json(&barge(
        dir.path(),
        &[
            "--json",
            "prepare",
            "rollout",
            "--package",
            "hello",
            "--version",
            "2.0.0",
            "--rollout",
            "now",
        ],
        None,
    ));
    assert_eq!(p["kind"], "rollout", "{p}");
    let bundle = std::path::PathBuf::from(p["bundle"].as_str().expect("bundle"));
    let carried = airgap.path().join(bundle.file_name().expect("name"));
    std::fs::copy(&bundle, &carried).expect("carry");
    let signed = json(&system_tests::run_with_stdin(
        std::process::Command::new(system_tests::bin("hangar"))
            .arg("--dir")
            .arg(airgap.path())
            .args(["--json", "sign", carried.to_str().expect("utf8")])
            .args(["--yes", "--passphrase-stdin"])
            .env("HANGAR_TEST_KDF", "cheap"),
        Some(&pass()),
    ));
    // hangar shows what it signs: the waves.
    assert_eq!(signed["waves"][0]["percent"], 100, "{signed}");
    assert_eq!(signed["paused"], false, "{signed}");
    let signed_path = std::path::PathBuf::from(signed["signed_bundle"].as_str().expect("signed"));
    ok(&barge(
        dir.path(),
        &["--json", "publish", signed_path.to_str().expect("utf8")],
        None,
    ));
    let events = logged_entries(&ch.base);
    let last = events.last().expect("entries");
    assert_eq!(last["type"], "rollout");
    // It names the release entry (the schedule it replaces), read when it was prepared.
    assert_eq!(last["replaces"], p["replaces"], "{p}");
    assert_eq!(last["replaces"], (events.len() - 2) as u64, "{last}");
    update(&site);
    assert_eq!(
        site.installed_version("acme", "hello").as_deref(),
        Some("2.0.0")
    );
    // The same signed bundle again: the channel has it already (a duplicate), which is no
    // change of the schedule now, so barge says so and fails.
    let size = log_size(&ch.base);
    let again = barge(
        dir.path(),
        &["publish", signed_path.to_str().expect("utf8")],
        None,
    );
    assert_eq!(
        system_tests::exit_code(&again),
        1,
        "{}",
        system_tests::output_text(&again)
    );
    assert!(
        system_tests::output_text(&again).contains("already had this rollout entry"),
        "{}",
        system_tests::output_text(&again)
    );
    assert_eq!(log_size(&ch.base), size);
}

/// K1: `barge rollout pause`, `resume`, `pause` log three different entries, each naming the
/// schedule before it (`replaces`), none a duplicate; the log ends paused and the site does
/// not install. Pause and resume keep the current waves (here the widened ones).
#[test]
fn pause_resume_pause_logs_three_entries_and_ends_paused() {
    let ch = Channel::start();
    let dir = registered_author(&ch);
    let src = source_repo();
    release(dir.path(), src.path(), "1.0.0", None);
    // Nobody before the pause: the waves start in the future.
    release(dir.path(), src.path(), "2.0.0", Some("100%@+40d"));
    let release_at = log_size(&ch.base) - 1;
    let site = Site::init_installing(&ch, "acme/hello", "1.0.0");
    let widen = rollout(dir.path(), "widen", "2.0.0", Some("5%@+20d,100%@+30d"));
    assert_eq!(widen["replaces"], release_at, "{widen}");
    let mut previous = widen["index"].as_u64().expect("index");
    for action in ["pause", "resume", "pause"] {
        let r = rollout(dir.path(), action, "2.0.0", None);
        assert_eq!(r["replaces"], previous, "{r}");
        assert_eq!(r["duplicate"], false, "{r}");
        assert_eq!(r["paused"], action == "pause", "{r}");
        assert_eq!(r["waves"], widen["waves"], "{r}");
        let index = r["index"].as_u64().expect("index");
        assert_eq!(index, previous + 1, "{r}");
        previous = index;
    }
    let events = logged_entries(&ch.base);
    assert_eq!(events.len() as u64, previous + 1);
    let last = events.last().expect("entries");
    assert_eq!(
        (last["type"].as_str(), last["paused"].as_bool()),
        (Some("rollout"), Some(true))
    );
    update(&site);
    assert_eq!(
        site.installed_version("acme", "hello").as_deref(),
        Some("1.0.0")
    );
    assert_eq!(rollout_status(&site)["reason"], "paused");
}
