//! Key attacks: entries that break the key rules, and key rotation done right.
//!
//! The entries come from the hostile key-rule inputs (`fixtures/hostile/*.txt`, one test per
//! file), which the honest channel refuses at submission (over HTTP:
//! `channel-server/tests/hostile.rs`). Here the channel is malicious: a
//! front ([`system_tests::front::evil_log`]) holds the channel's signing key and serves the real
//! log plus a case's entries, correctly signed, with the right nonce, a fresh time and a correct
//! root, to the site and to the site's notary alike, so the peers confirm it too. Only the
//! site's own replay of the key rules stands between that entry and the site: each test asserts
//! the site refuses (exit 3), names the broken rule, and changes nothing (files and database).

use std::sync::{Arc, Mutex};

use keyggdrasil::entry::{Entry, Event};
use keyggdrasil::keys::KeyPair;
use system_tests::front::{Answer, Front, evil_log};
use system_tests::hostile;
use system_tests::{Channel, Site, Supplier, assert_says, exit, plugin_archive};

fn archive(version: &str, marker: &str) -> Vec<u8> {
    plugin_archive("acme/hello", version, marker)
}

fn installed_file(site: &Site) -> String {
    std::fs::read_to_string(site.root.join("packages/acme/hello/current/plugin.php"))
        .unwrap_or_default()
}

/// A real channel with `acme` (and `bob`) registered and `acme/hello` 1.0.0 published; a
/// malicious front before it holding its key, serving the real log plus `extra`; one notary
/// and one site, both following the front; the site peers with the notary and has installed
/// 1.0.0 while `extra` was empty.
struct Evil {
    channel: Channel,
    acme: Supplier,
    bob: Supplier,
    extra: Arc<Mutex<Vec<Entry>>>,
    _front: Front,
    _notary: Site,
    site: Site,
}

fn evil() -> Evil {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    let bob = Supplier::new("bob");
    bob.register(&channel);
    acme.publish(&channel, "hello", "1.0.0", &archive("1.0.0", "genuine"));

    let extra: Arc<Mutex<Vec<Entry>>> = Arc::new(Mutex::new(Vec::new()));
    let key = Arc::new(channel.signing_key());
    let (up, ex) = (channel.base.clone(), extra.clone());
    let front = Front::start(&channel.base, move |path| {
        if path.starts_with("/v1/updates") || path.starts_with("/v1/fresh") {
            evil_log(&up, &key, &ex.lock().unwrap(), path)
        } else {
            Answer::Pass
        }
    });
    let mut notary = Site::init(&channel);
    notary.set_mirror(&front.url);
    notary.start_notary();
    let site = Site::init(&channel);
    site.set_mirror(&front.url);
    site.add_peer(notary.notary_url.as_deref().unwrap(), &notary.notary_key);
    let out = site.run(&["install", "acme/hello"]);
    assert_says(
        &out,
        exit::OK,
        &["installed 1.0.0", "confirmed by 1 of 1 peers"],
    );
    assert!(installed_file(&site).contains("1.0.0 genuine"));
    Evil {
        channel,
        acme,
        bob,
        extra,
        _front: front,
        _notary: notary,
        site,
    }
}

impl Evil {
    /// The front now serves the real log plus `entries`.
    fn serve_extra(&self, entries: Vec<Entry>) {
        *self.extra.lock().unwrap() = entries;
    }

    /// The site refuses the forged log: exit 3, the key rule named, nothing changed. The
    /// peers confirmed the forged root (they saw the same log): the refusal is the key rules'.
    fn refuses(&self, rule: &str) -> String {
        let size = self.site.accepted_size();
        let t = self.site.assert_update_refused(
            exit::VERIFICATION,
            &[
                "confirmed by 1 of 1 peers",
                "which breaks the key rules",
                rule,
                "nothing was applied",
            ],
        );
        assert_eq!(self.site.accepted_size(), size);
        assert!(installed_file(&self.site).contains("1.0.0 genuine"));
        t
    }
}

// ---------------------------------------------------------------------------------------------
// The hostile key-rule inputs (fixtures/hostile/*.txt), one fresh world per case.
// ---------------------------------------------------------------------------------------------

/// The front serves the real log plus the case's entries. A refused case: the site refuses with
/// exit 3, naming the refused entry's log index and the rule's message, with the peers having
/// confirmed the forged root, and nothing changed (files and database). An accepted case is
/// applied whole and the installed package stays. (Each forged log is shown to a fresh site:
/// showing one site two different forged entries at one index is a fork, which it would report
/// as such.) The same files drive the state machine (`keyggdrasil/tests/hostile.rs`) and the
/// honest channel (`channel-server/tests/hostile.rs`), which refuses each at submission.
fn drive(name: &str) {
    let case = hostile::load(name).unwrap_or_else(|e| panic!("{e}"));
    let entries: Vec<Entry> = case
        .entries
        .iter()
        .map(|(_, b)| Entry::parse(b).unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect();
    let w = evil();
    let real = w.site.accepted_size();
    w.serve_extra(entries.clone());
    match hostile::refused(&case) {
        Some((index, _, message)) => {
            w.refuses(&format!(
                "channel test.channel logged entry {}, which breaks the key rules: {message}",
                real + index as i64
            ));
        }
        None => {
            let before = w.site.snapshot();
            assert_says(
                &w.site.run(&["update"]),
                exit::OK,
                &[
                    "confirmed by 1 of 1 peers",
                    &format!("applied {} new entries", entries.len()),
                ],
            );
            assert_eq!(w.site.accepted_size(), real + entries.len() as i64);
            assert!(installed_file(&w.site).contains("1.0.0 genuine"));
            assert!(w.site.snapshot() != before, "{name}: nothing was stored");
        }
    }
}

macro_rules! drive_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                drive(stringify!($name));
            }
        )*
    };
}

mod hostile_inputs {
    use super::drive;
    system_tests::for_each_hostile_case!(drive_tests);
}

/// Every committed file is driven by a test above (a file no driver ran would be a gap).
#[test]
fn every_committed_hostile_case_is_driven() {
    let mut listed = hostile::case_names();
    listed.sort_unstable();
    assert_eq!(hostile::committed_names().expect("list"), listed);
}

/// The forged entry is signed by the channel: once the channel shows an honest log again and
/// logs another entry at that index, the site holds two channel-signed roots for one size and
/// stops trusting the channel (fork evidence), rather than forgetting what it was shown.
#[test]
fn forged_log_shown_once_is_kept_as_fork_evidence() {
    let w = evil();
    w.serve_extra(vec![w.acme.release(
        &w.bob.signing,
        "hello",
        "6.6.6",
        &archive("6.6.6", "by bob"),
    )]);
    w.refuses("which breaks the key rules");
    w.serve_extra(Vec::new());
    w.acme
        .publish(&w.channel, "hello", "1.1.0", &archive("1.1.0", "honest"));
    w.site.assert_update_refused(
        exit::VERIFICATION,
        &[
            "FORK: channel test.channel showed this site two inconsistent views",
            "differs from the entry the channel showed before at that index",
        ],
    );
    let st = w.site.run(&["status"]);
    assert_says(&st, exit::ATTENTION, &["FORK DETECTED"]);
}

// ---------------------------------------------------------------------------------------------
// Happy paths: key rotation and revocation, on an honest channel.
// ---------------------------------------------------------------------------------------------

/// acme rotates its signing key: a new one signed by the master key, the old one revoked.
/// The site on 1.1.0 (signed by the old key) is told loudly that its installed version is no
/// longer trusted and moves to 2.0.0 (signed by the new key). 1.0.0 and 1.1.0, signed by the
/// revoked key, are no longer installable: a second site pinned to 1.1.0 installs nothing,
/// and a third that would take any version installs 2.0.0.
#[test]
fn key_rotation_installs_new_releases_and_retires_the_old_key() {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    acme.publish(&channel, "hello", "1.0.0", &archive("1.0.0", "old key"));
    acme.publish(&channel, "hello", "1.1.0", &archive("1.1.0", "old key"));
    let site = Site::init(&channel);
    site.set_option("site", "allow_no_peers", true);
    assert_says(
        &site.run(&["install", "acme/hello"]),
        exit::OK,
        &["installed 1.1.0"],
    );

    let new_signing = KeyPair::generate();
    channel.submit(&acme.sign(
        &acme.master,
        Event::SigningKey {
            public_key: new_signing.public(),
            derivation: None,
        },
    ));
    channel.submit(&acme.revoke(&acme.master, &acme.signing.public()));
    let v2 = archive("2.0.0", "new key");
    channel.submit(&acme.release(&new_signing, "hello", "2.0.0", &v2));
    channel.upload("acme", "hello", "2.0.0", &v2);

    let t = assert_says(
        &site.run(&["update"]),
        exit::OK,
        &[
            "applied 3 new entries",
            "the installed version 1.1.0 is no longer trusted",
            "installed 2.0.0",
            &format!(
                "signature by {} verified",
                new_signing.public().fingerprint()
            ),
        ],
    );
    assert!(installed_file(&site).contains("2.0.0 new key"), "{t}");
    assert_eq!(
        site.installed_version("acme", "hello").as_deref(),
        Some("2.0.0")
    );

    let pinned = Site::init(&channel);
    pinned.set_option("site", "allow_no_peers", true);
    assert_says(
        &pinned.run(&["install", "acme/hello", "--policy", "=1.1.0"]),
        exit::OK,
        &["no installable release allowed by policy yet"],
    );
    assert_eq!(pinned.installed_version("acme", "hello"), None);
    assert_eq!(installed_file(&pinned), "");

    let fresh = Site::init(&channel);
    fresh.set_option("site", "allow_no_peers", true);
    assert_says(
        &fresh.run(&["install", "acme/hello"]),
        exit::OK,
        &["installed 2.0.0"],
    );
}

/// A release revoked after a site installed it: the site says so at every run until it moves
/// on, and moves to the next good release as soon as there is one; a site that never had it
/// does not install it.
#[test]
fn release_revoked_after_install_is_reported_and_replaced() {
    use keyggdrasil::entry::Reason;
    use keyggdrasil::names::{PackageName, Version};
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    acme.publish(&channel, "hello", "1.0.0", &archive("1.0.0", "good"));
    acme.publish(&channel, "hello", "1.1.0", &archive("1.1.0", "broken"));
    let site = Site::init(&channel);
    site.set_option("site", "allow_no_peers", true);
    assert_says(
        &site.run(&["install", "acme/hello"]),
        exit::OK,
        &["installed 1.1.0"],
    );
    channel.submit(&acme.sign(
        &acme.master,
        Event::ReleaseRevocation {
            package: PackageName::parse("hello").unwrap(),
            version: Version::parse("1.1.0").unwrap(),
            reason: Reason::parse("broken").unwrap(),
        },
    ));
    let before = site.snapshot_without_log();
    assert_says(
        &site.run(&["update"]),
        exit::OK,
        &["the installed version 1.1.0 is no longer trusted"],
    );
    // Nothing newer and good: the files stay (a revocation does not uninstall by itself).
    let after = site.snapshot_without_log();
    assert!(after == before, "the files changed");

    let other = Site::init(&channel);
    other.set_option("site", "allow_no_peers", true);
    assert_says(
        &other.run(&["install", "acme/hello"]),
        exit::OK,
        &["installed 1.0.0"],
    );
    acme.publish(&channel, "hello", "1.2.0", &archive("1.2.0", "fixed"));
    assert_says(&site.run(&["update"]), exit::OK, &["installed 1.2.0"]);
    assert!(installed_file(&site).contains("1.2.0 fixed"));
}
