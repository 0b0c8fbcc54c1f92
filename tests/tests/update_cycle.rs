//! A site updating from a real channel, confirmed by real notary peers, all on loopback.
//! Every failure case asserts that the site's files and database are exactly as before and that
//! the exit code and message say what happened.

use std::process::Output;

use keyggdrasil::entry::{Event, Reason};
use keyggdrasil::names::{PackageName, Version};
use system_tests::{Channel, Site, Supplier, plugin_archive};

const EXIT_OK: i32 = 0;
const EXIT_VERIFICATION: i32 = 3;
const EXIT_UNREACHABLE: i32 = 4;
const EXIT_BUSY: i32 = 6;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A channel, `peers` notary sites, and one site that peers with all of them.
struct World {
    channel: Channel,
    notaries: Vec<Site>,
    site: Site,
    acme: Supplier,
}

fn world(peers: usize) -> World {
    let channel = Channel::start();
    let mut notaries = Vec::new();
    for _ in 0..peers {
        let mut n = Site::init(&channel);
        n.start_notary();
        notaries.push(n);
    }
    let site = Site::init(&channel);
    for n in &notaries {
        site.add_peer(n.notary_url.as_deref().unwrap(), &n.notary_key);
    }
    let acme = Supplier::new("acme");
    acme.register(&channel);
    World {
        channel,
        notaries,
        site,
        acme,
    }
}

fn installed_file(site: &Site) -> String {
    std::fs::read_to_string(site.root.join("packages/acme/hello/current/plugin.php"))
        .unwrap_or_default()
}

#[test]
fn install_then_update_with_peers() {
    let w = world(3);
    w.acme.publish_plugin(&w.channel, "hello", "1.0.0", "first");
    let out = w.site.run(&["install", "acme/hello"]);
    assert_eq!(code(&out), EXIT_OK, "{}", text(&out));
    assert!(installed_file(&w.site).contains("1.0.0 first"));
    assert!(text(&out).contains("confirmed by"), "{}", text(&out));

    // Nothing new: still OK, nothing changes.
    let before = w.site.snapshot();
    let out = w.site.run(&["update"]);
    assert_eq!(code(&out), EXIT_OK, "{}", text(&out));
    assert_eq!(w.site.snapshot(), before);

    // A new release: installed, previous kept; rollback by hand works.
    w.acme
        .publish_plugin(&w.channel, "hello", "1.1.0", "second");
    let out = w.site.run(&["update"]);
    assert_eq!(code(&out), EXIT_OK, "{}", text(&out));
    assert!(installed_file(&w.site).contains("1.1.0 second"));
    let out = w.site.run(&["rollback", "acme/hello"]);
    assert_eq!(code(&out), EXIT_OK, "{}", text(&out));
    assert!(installed_file(&w.site).contains("1.0.0 first"));

    let out = w.site.run(&["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(st["last_success"].is_string(), "{st}");
}

/// All three peers are down: no root can be confirmed; the install fails as unreachable
/// (exit 4), names the peers that did not answer, and changes nothing.
#[test]
fn too_many_peers_down_changes_nothing() {
    let mut w = world(3);
    w.acme.publish_plugin(&w.channel, "hello", "1.0.0", "x");
    let urls: Vec<String> = w
        .notaries
        .iter()
        .map(|n| n.notary_url.clone().unwrap())
        .collect();
    for n in &mut w.notaries {
        n.stop_notary();
    }
    let before = w.site.snapshot();
    let out = w.site.run(&["install", "acme/hello"]);
    let t = system_tests::assert_says(
        &out,
        EXIT_UNREACHABLE,
        &[
            "peers did not confirm the channel's log: too few peers remain to reach 2 agreements",
            "nothing was applied",
            "the site was left as it was",
        ],
    );
    // Two peers without an answer decide it (2 of 3 needed); the third may not be waited for.
    let silent = urls
        .iter()
        .filter(|u| {
            t.contains(&format!(
                "{u}: unreachable (request to {u}/v1/notary/root failed"
            ))
        })
        .count();
    assert!(silent >= 2, "{t}");
    assert_eq!(w.site.snapshot(), before);
    assert!(installed_file(&w.site).is_empty());
    let st = w.site.run(&["status"]);
    assert_ne!(code(&st), EXIT_OK);

    // The peers come back: the next run confirms the log and installs, with nothing to repair.
    for n in &mut w.notaries {
        n.restart_notary();
    }
    let out = w.site.run(&["install", "acme/hello"]);
    assert_eq!(code(&out), EXIT_OK, "{}", text(&out));
    assert!(
        installed_file(&w.site).contains("hello 1.0.0 x"),
        "{}",
        text(&out)
    );
}

#[test]
fn wrong_channel_key_is_a_verification_failure() {
    let w = world(1);
    let before = w.site.snapshot();
    // Re-pin another key: every signed answer now fails verification.
    let cfg = w.site.root.join("continuum.toml");
    let text0 = std::fs::read_to_string(&cfg).unwrap();
    let other = keyggdrasil::keys::KeyPair::generate().public().to_hex();
    std::fs::write(&cfg, text0.replace(&w.channel.key.to_hex(), &other)).unwrap();
    let out = w.site.run(&["update"]);
    assert_eq!(code(&out), EXIT_VERIFICATION, "{}", text(&out));
    assert!(text(&out).contains("signature"), "{}", text(&out));
    assert_eq!(w.site.snapshot(), before);
}

#[test]
fn revoked_release_is_never_installed() {
    let w = world(1);
    w.acme.publish_plugin(&w.channel, "hello", "1.0.0", "ok");
    w.acme.publish_plugin(&w.channel, "hello", "2.0.0", "bad");
    w.channel.submit(&w.acme.sign(
        &w.acme.master,
        Event::ReleaseRevocation {
            package: PackageName::parse("hello").unwrap(),
            version: Version::parse("2.0.0").unwrap(),
            reason: Reason::parse("broken").unwrap(),
        },
    ));
    let out = w.site.run(&["install", "acme/hello"]);
    assert_eq!(code(&out), EXIT_OK, "{}", text(&out));
    assert!(installed_file(&w.site).contains("1.0.0 ok"));
}

#[test]
fn tampered_archive_on_the_channel_is_refused() {
    let w = world(1);
    let archive = plugin_archive("acme/hello", "1.0.0", "genuine");
    w.acme.publish(&w.channel, "hello", "1.0.0", &archive);
    // The channel's disk is compromised: same length, one byte flipped.
    let dir = w.channel.config.parent().unwrap().join("archives");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&file, bytes).unwrap();
    let before = w.site.snapshot();
    let out = w.site.run(&["install", "acme/hello"]);
    assert_eq!(code(&out), EXIT_VERIFICATION, "{}", text(&out));
    assert!(installed_file(&w.site).is_empty());
    // Only the accepted log may have grown (the entries were fine); nothing installed.
    let after = w.site.snapshot();
    assert_eq!(
        after.iter().find(|(k, _)| k == "installed"),
        before.iter().find(|(k, _)| k == "installed")
    );
}

#[test]
fn second_update_while_one_runs_exits_busy() {
    let w = world(1);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(w.site.root.join("update.lock"))
        .unwrap();
    lock.lock().unwrap();
    let out = w.site.run(&["update"]);
    assert_eq!(code(&out), EXIT_BUSY, "{}", text(&out));
    drop(lock);
    let out = w.site.run(&["update"]);
    assert_eq!(code(&out), EXIT_OK, "{}", text(&out));
}
