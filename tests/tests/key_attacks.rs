//! Key attacks: entries that break the key rules, and key rotation done right.
//!
//! The honest channel refuses every such entry at submission (over HTTP:
//! `channel-server/tests/server/refusals.rs::key_rules`). Here the channel is malicious: a
//! front ([`system_tests::front::evil_log`]) holds the channel's signing key and serves the real
//! log plus one bad entry, correctly signed, with the right nonce, a fresh time and a correct
//! root, to the site and to the site's notary alike, so the peers confirm it too. Only the
//! site's own replay of the key rules stands between that entry and the site: each test asserts
//! the site refuses (exit 3), names the broken rule, and changes nothing (files and database).

use std::sync::{Arc, Mutex};

use keyggdrasil::entry::{Entry, Event};
use keyggdrasil::keys::KeyPair;
use system_tests::front::{Answer, Front, evil_log};
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
        if path.starts_with("/v1/updates") {
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

/// A signing key added with the supplier's signing key, and (in a second world) a master key
/// added by a stranger, signed by itself: neither signed by a current master key of the
/// supplier. (Each forged log is shown to a fresh site: showing one site two different forged
/// entries at one index is a fork, which it would report as such.)
#[test]
fn key_added_without_a_master_signature_is_refused() {
    let w = evil();
    let attacker = KeyPair::generate();
    w.serve_extra(vec![w.acme.sign(
        &w.acme.signing,
        Event::SigningKey {
            public_key: attacker.public(),
            derivation: None,
        },
    )]);
    w.refuses(&format!(
        "key {} is not a current master key of supplier acme",
        w.acme.signing.public()
    ));

    let w = evil();
    w.serve_extra(vec![w.acme.sign(
        &attacker,
        Event::MasterKey {
            public_key: attacker.public(),
            derivation: None,
        },
    )]);
    w.refuses(&format!(
        "key {} is not a current master key of supplier acme",
        attacker.public()
    ));
}

/// The supplier's only master key revoked (by itself: no other master key exists that could
/// sign it), which would leave the supplier without a master key and no way to recover.
/// Then, in a second world with two master keys, one honestly revoked by the other: the
/// revoked one revoking the last current one.
#[test]
fn revocation_of_the_last_master_key_is_refused() {
    let w = evil();
    w.serve_extra(vec![w.acme.revoke(&w.acme.master, &w.acme.master.public())]);
    w.refuses(&format!(
        "a key revocation must be signed by a master key other than the revoked key {}",
        w.acme.master.public()
    ));

    let w = evil();
    let second = KeyPair::generate();
    w.channel.submit(&w.acme.sign(
        &w.acme.master,
        Event::MasterKey {
            public_key: second.public(),
            derivation: None,
        },
    ));
    w.channel
        .submit(&w.acme.revoke(&w.acme.master, &second.public()));
    let out = w.site.run(&["update"]);
    assert_says(&out, exit::OK, &["applied 2 new entries"]);
    w.serve_extra(vec![w.acme.revoke(&second, &w.acme.master.public())]);
    w.refuses(&format!(
        "key {} is not a current master key of supplier acme",
        second.public()
    ));
}

/// The signing key is honestly revoked and replaced; the forged log adds a release signed by
/// the revoked key.
#[test]
fn release_signed_by_a_revoked_key_is_refused() {
    let w = evil();
    let new_signing = KeyPair::generate();
    w.channel.submit(&w.acme.sign(
        &w.acme.master,
        Event::SigningKey {
            public_key: new_signing.public(),
            derivation: None,
        },
    ));
    w.channel
        .submit(&w.acme.revoke(&w.acme.master, &w.acme.signing.public()));
    w.serve_extra(vec![w.acme.release(
        &w.acme.signing,
        "hello",
        "6.6.6",
        &archive("6.6.6", "from a stolen, revoked key"),
    )]);
    w.refuses(&format!(
        "key {} is not a current signing key of supplier acme",
        w.acme.signing.public()
    ));
}

/// A release of `acme/hello` signed by `bob`'s (valid, current) signing key, and (in a second
/// world) one signed by acme's master key (which may sign keys, not releases).
#[test]
fn release_signed_by_another_suppliers_key_is_refused() {
    let bytes = archive("6.6.6", "by bob");
    let w = evil();
    w.serve_extra(vec![w.acme.release(
        &w.bob.signing,
        "hello",
        "6.6.6",
        &bytes,
    )]);
    w.refuses(&format!(
        "key {} is not a current signing key of supplier acme",
        w.bob.signing.public()
    ));
    let w = evil();
    w.serve_extra(vec![w.acme.release(
        &w.acme.master,
        "hello",
        "6.6.6",
        &bytes,
    )]);
    w.refuses(&format!(
        "key {} is not a current signing key of supplier acme",
        w.acme.master.public()
    ));
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
    let before = site.snapshot();
    assert_says(
        &site.run(&["update"]),
        exit::OK,
        &["the installed version 1.1.0 is no longer trusted"],
    );
    // Nothing newer and good: the files stay (a revocation does not uninstall by itself).
    let after = site.snapshot();
    assert!(
        after
            .iter()
            .filter(|(k, _)| k != "log_entries")
            .eq(before.iter().filter(|(k, _)| k != "log_entries"))
    );

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
