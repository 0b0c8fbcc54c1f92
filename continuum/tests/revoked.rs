//! Revoked installs (issue 12, item 1), through the real binaries over loopback: a real
//! channel-server, a real `continuum` site. `status` (text and `--json`) lists every installed
//! or kept-for-rollback version the log revoked, directly or through its signing key, naming the
//! entry and its reason, and exits 1; `rollback` refuses a revoked target unless
//! `--allow-revoked`; `on_revoked = "report" | "rollback" | "remove"` decides what `update` does.

use std::path::Path;
use std::process::Output;

use keyggdrasil::entry::{Event, Reason};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::names::{PackageName, Version};
use system_tests::{Channel, Site, Supplier, assert_says, exit, exit_code, plugin_archive};

/// Exit code of a usage error (continuum's `main.rs`).
const USAGE: i32 = 2;
/// Exit code of a local error (config, disk, database).
const LOCAL: i32 = 5;

fn archive(version: &str, marker: &str) -> Vec<u8> {
    plugin_archive("acme/hello", version, marker)
}

/// What `current` serves ("" when nothing is installed).
fn served(site: &Site) -> String {
    std::fs::read_to_string(site.root.join("packages/acme/hello/current/plugin.php"))
        .unwrap_or_default()
}

struct Fx {
    channel: Channel,
    acme: Supplier,
    site: Site,
}

/// `acme` registered (entries 0, 1); `acme/hello` 1.0.0 (entry 2) installed, then 1.1.0
/// (entry 3) installed by an update, 1.0.0 kept for rollback. The next entry is 4.
fn installed_with_previous() -> Fx {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    acme.publish(&channel, "hello", "1.0.0", &archive("1.0.0", "one"));
    let site = Site::init(&channel);
    site.set_option("site", "allow_no_peers", true);
    assert_says(
        &site.run(&["install", "acme/hello"]),
        exit::OK,
        &["installed 1.0.0"],
    );
    acme.publish(&channel, "hello", "1.1.0", &archive("1.1.0", "two"));
    assert_says(&site.run(&["update"]), exit::OK, &["installed 1.1.0"]);
    assert_eq!(
        site.installed_version("acme", "hello").as_deref(),
        Some("1.1.0")
    );
    Fx {
        channel,
        acme,
        site,
    }
}

impl Fx {
    /// Logs a revocation of `acme/hello version` by the master key, with `reason`.
    fn revoke_release(&self, version: &str, reason: &str) {
        self.channel.submit(&self.acme.sign(
            &self.acme.master,
            Event::ReleaseRevocation {
                package: PackageName::parse("hello").expect("package"),
                version: Version::parse(version).expect("version"),
                reason: Reason::parse(reason).expect("reason"),
            },
        ));
    }

    /// Registers a new signing key, then revokes the one that signed every release so far
    /// (reason "test", the harness's). Returns the log index of the revocation.
    fn revoke_signing_key(&self) -> u64 {
        let new = KeyPair::generate();
        self.channel.submit(&self.acme.sign(
            &self.acme.master,
            Event::SigningKey {
                public_key: new.public(),
                derivation: None,
            },
        ));
        let r = self.channel.submit(
            &self
                .acme
                .revoke(&self.acme.master, &self.acme.signing.public()),
        );
        r.index
    }

    /// Sets `on_revoked` on the tracked package.
    fn package_on_revoked(&self, value: &str) {
        self.site.edit_config(|cfg| {
            for p in cfg
                .get_mut("package")
                .and_then(|p| p.as_array_mut())
                .expect("tracked packages")
            {
                p.as_table_mut()
                    .expect("a [[package]] table")
                    .insert("on_revoked".into(), toml::Value::String(value.into()));
            }
        });
    }
}

fn text(o: &Output) -> String {
    system_tests::output_text(o)
}

/// `status --json`, whatever its exit code.
fn status_json(site: &Site) -> (i32, serde_json::Value) {
    let o = site.run(&["status", "--json"]);
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}: {}", text(&o)));
    (exit_code(&o), v)
}

fn config_text(root: &Path) -> String {
    std::fs::read_to_string(root.join("continuum.toml")).expect("config")
}

#[test]
fn status_lists_a_revoked_installed_release_with_entry_and_reason() {
    let fx = installed_with_previous();
    // Before: nothing revoked, nothing to attend to.
    let (code, v) = status_json(&fx.site);
    assert_eq!(code, exit::OK, "{v}");
    assert_eq!(v["revoked"], serde_json::json!([]), "{v}");

    fx.revoke_release("1.1.0", "broken build");
    assert_says(&fx.site.run(&["update"]), exit::OK, &["no longer trusted"]);
    let t = assert_says(
        &fx.site.run(&["status"]),
        exit::ATTENTION,
        &[
            "package acme/hello: 1.1.0 — REVOKED",
            "acme/hello 1.1.0 (installed) is REVOKED",
            "the release was revoked by log entry 4",
            "\"broken build\"",
            "continuum rollback acme/hello",
        ],
    );
    // Shown with --nocapture, to read what an operator sees.
    println!("{t}");
    assert!(!t.contains("1.0.0 (kept for rollback) is REVOKED"), "{t}");
    let (code, v) = status_json(&fx.site);
    assert_eq!(code, exit::ATTENTION, "{v}");
    assert_eq!(
        v["revoked"],
        serde_json::json!([{
            "package": "acme/hello",
            "version": "1.1.0",
            "installed": true,
            "revoked": "release",
            "entry": 4,
            "reason": "broken build",
            "signer": fx.acme.signing.public().to_hex(),
        }]),
        "{v}"
    );
    assert!(
        v["warnings"].as_array().expect("warnings").iter().any(|w| w
            .as_str()
            .is_some_and(|w| w.contains("1.1.0 (installed) is REVOKED"))),
        "{v}"
    );
}

#[test]
fn status_lists_versions_signed_by_a_revoked_key() {
    let fx = installed_with_previous();
    let index = fx.revoke_signing_key();
    assert_says(&fx.site.run(&["update"]), exit::OK, &["no longer trusted"]);
    assert_says(
        &fx.site.run(&["status"]),
        exit::ATTENTION,
        &[
            "acme/hello 1.1.0 (installed) is REVOKED: its signing key",
            "acme/hello 1.0.0 (kept for rollback) is REVOKED: its signing key",
            &format!("was revoked by log entry {index} (reason: \"test\")"),
        ],
    );
    let (code, v) = status_json(&fx.site);
    assert_eq!(code, exit::ATTENTION);
    let revoked = v["revoked"].as_array().expect("revoked");
    assert_eq!(revoked.len(), 2, "{v}");
    for (r, (version, installed)) in revoked.iter().zip([("1.1.0", true), ("1.0.0", false)]) {
        assert_eq!(r["version"], version, "{v}");
        assert_eq!(r["installed"], installed, "{v}");
        assert_eq!(r["revoked"], "signing_key", "{v}");
        assert_eq!(r["entry"], index, "{v}");
        assert_eq!(r["reason"], "test", "{v}");
    }
}

#[test]
fn status_lists_a_revoked_version_kept_for_rollback() {
    let fx = installed_with_previous();
    fx.revoke_release("1.0.0", "old and unsafe");
    // The installed 1.1.0 is fine; the update says the kept one is revoked.
    assert_says(
        &fx.site.run(&["update"]),
        exit::OK,
        &["1.0.0, kept for rollback, is REVOKED", "old and unsafe"],
    );
    let t = assert_says(
        &fx.site.run(&["status"]),
        exit::ATTENTION,
        &[
            "acme/hello 1.0.0 (kept for rollback) is REVOKED",
            "log entry 4",
            "do not roll back to it",
        ],
    );
    assert!(!t.contains("1.1.0 (installed) is REVOKED"), "{t}");
    let (_, v) = status_json(&fx.site);
    assert_eq!(v["revoked"][0]["installed"], false, "{v}");
    assert_eq!(v["revoked"][0]["version"], "1.0.0", "{v}");
}

#[test]
fn rollback_refuses_a_revoked_target_unless_allowed() {
    let fx = installed_with_previous();
    fx.revoke_release("1.0.0", "old and unsafe");
    assert_says(&fx.site.run(&["update"]), exit::OK, &[]);
    let before = (fx.site.snapshot(), config_text(&fx.site.root));
    assert_says(
        &fx.site.run(&["rollback", "acme/hello"]),
        USAGE,
        &[
            "refusing to roll back to 1.0.0",
            "the release was revoked by log entry 4",
            "old and unsafe",
            "--allow-revoked",
        ],
    );
    assert!(
        (fx.site.snapshot(), config_text(&fx.site.root)) == before,
        "a refused rollback changed the site"
    );
    assert!(served(&fx.site).contains("1.1.0 two"));

    // --json: the one error object.
    let o = fx.site.run(&["rollback", "acme/hello", "--json"]);
    assert_eq!(exit_code(&o), USAGE);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["error"]["kind"], "usage", "{v}");

    assert_says(
        &fx.site.run(&["rollback", "acme/hello", "--allow-revoked"]),
        exit::OK,
        &["rolled back to 1.0.0", "WARNING", "REVOKED"],
    );
    assert_eq!(
        fx.site.installed_version("acme", "hello").as_deref(),
        Some("1.0.0")
    );
    assert!(served(&fx.site).contains("1.0.0 one"));
}

#[test]
fn rollback_from_a_revoked_version_to_a_good_one_needs_no_flag() {
    let fx = installed_with_previous();
    fx.revoke_release("1.1.0", "broken build");
    assert_says(&fx.site.run(&["update"]), exit::OK, &[]);
    assert_says(
        &fx.site.run(&["rollback", "acme/hello"]),
        exit::OK,
        &["rolled back to 1.0.0"],
    );
    assert!(served(&fx.site).contains("1.0.0 one"));
}

#[test]
fn rollback_refuses_a_target_signed_by_a_revoked_key() {
    let fx = installed_with_previous();
    let index = fx.revoke_signing_key();
    assert_says(&fx.site.run(&["update"]), exit::OK, &[]);
    assert_says(
        &fx.site.run(&["rollback", "acme/hello"]),
        USAGE,
        &[
            "refusing to roll back to 1.0.0",
            "its signing key",
            &format!("log entry {index}"),
        ],
    );
    assert_eq!(
        fx.site.installed_version("acme", "hello").as_deref(),
        Some("1.1.0")
    );
}

#[test]
fn on_revoked_report_keeps_the_version_and_says_so_on_every_run() {
    let fx = installed_with_previous();
    fx.revoke_release("1.1.0", "broken build");
    for _ in 0..2 {
        assert_says(
            &fx.site.run(&["update"]),
            exit::OK,
            &[
                "the installed version 1.1.0 is no longer trusted",
                "log entry 4",
                "broken build",
                "on_revoked = report",
                "still serving the REVOKED version 1.1.0",
            ],
        );
        assert_eq!(
            fx.site.installed_version("acme", "hello").as_deref(),
            Some("1.1.0")
        );
        assert!(served(&fx.site).contains("1.1.0 two"));
    }
    // `update --json` carries the same notes.
    let o = fx.site.run(&["update", "--json"]);
    assert_eq!(exit_code(&o), exit::OK, "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("on_revoked = report"));
}

#[test]
fn on_revoked_rollback_goes_back_to_the_kept_version() {
    let fx = installed_with_previous();
    fx.site.set_option("site", "on_revoked", "rollback");
    fx.revoke_release("1.1.0", "broken build");
    assert_says(
        &fx.site.run(&["update"]),
        exit::OK,
        &[
            "no longer trusted",
            "ROLLED BACK from the revoked version 1.1.0 to 1.0.0 (on_revoked = rollback)",
        ],
    );
    assert_eq!(
        fx.site.installed_version("acme", "hello").as_deref(),
        Some("1.0.0")
    );
    assert!(served(&fx.site).contains("1.0.0 one"));
    // Next run: the installed version is good; the revoked one is only kept, and said so.
    let t = assert_says(
        &fx.site.run(&["update"]),
        exit::OK,
        &["1.1.0, kept for rollback, is REVOKED"],
    );
    assert!(!t.contains("ROLLED BACK"), "{t}");
    assert_eq!(
        fx.site.installed_version("acme", "hello").as_deref(),
        Some("1.0.0")
    );
    // A good new release is installed as usual.
    fx.acme
        .publish(&fx.channel, "hello", "1.2.0", &archive("1.2.0", "fixed"));
    assert_says(&fx.site.run(&["update"]), exit::OK, &["installed 1.2.0"]);
}

#[test]
fn on_revoked_rollback_installs_an_older_good_release_when_none_is_kept() {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    acme.publish(&channel, "hello", "1.0.0", &archive("1.0.0", "one"));
    acme.publish(&channel, "hello", "1.1.0", &archive("1.1.0", "two"));
    acme.publish(&channel, "hello", "1.2.0", &archive("1.2.0", "three"));
    let site = Site::init(&channel);
    site.set_option("site", "allow_no_peers", true);
    site.set_option("site", "on_revoked", "rollback");
    assert_says(
        &site.run(&["install", "acme/hello"]),
        exit::OK,
        &["installed 1.2.0"],
    );
    let fx = Fx {
        channel,
        acme,
        site,
    };
    fx.revoke_release("1.2.0", "broken build");
    assert_says(
        &fx.site.run(&["update"]),
        exit::OK,
        &[
            "ROLLED BACK from the revoked version 1.2.0 to 1.1.0",
            "verified",
        ],
    );
    assert!(served(&fx.site).contains("1.1.0 two"));
}

#[test]
fn on_revoked_rollback_without_a_good_version_only_reports() {
    let fx = installed_with_previous();
    fx.package_on_revoked("rollback");
    // Both logged versions are signed by the revoked key: nothing to go back to.
    fx.revoke_signing_key();
    let before = fx.site.snapshot_without_log();
    assert_says(
        &fx.site.run(&["update"]),
        exit::OK,
        &[
            "no longer trusted",
            "on_revoked = rollback, but no version that the log still allows",
            "still serving it (reporting only)",
        ],
    );
    assert_eq!(
        fx.site.installed_version("acme", "hello").as_deref(),
        Some("1.1.0")
    );
    let after = fx.site.snapshot_without_log();
    assert!(after == before, "the files changed");
}

#[test]
fn on_revoked_remove_stops_serving_and_keeps_tracking() {
    let fx = installed_with_previous();
    fx.package_on_revoked("remove");
    fx.revoke_release("1.1.0", "broken build");
    assert_says(
        &fx.site.run(&["update"]),
        exit::OK,
        &["no longer trusted", "REMOVED the revoked version 1.1.0"],
    );
    assert_eq!(fx.site.installed_version("acme", "hello"), None);
    assert!(
        !fx.site.root.join("packages/acme/hello").exists(),
        "the package folder is still there"
    );
    // Still tracked; status no longer warns about a revoked install.
    assert!(config_text(&fx.site.root).contains("on_revoked = \"remove\""));
    let (_, v) = status_json(&fx.site);
    assert_eq!(v["revoked"], serde_json::json!([]), "{v}");
    assert_eq!(v["packages"][0]["version"], serde_json::Value::Null, "{v}");
    // The package comes back with its next good release.
    fx.acme
        .publish(&fx.channel, "hello", "1.2.0", &archive("1.2.0", "fixed"));
    assert_says(&fx.site.run(&["update"]), exit::OK, &["installed 1.2.0"]);
    assert!(served(&fx.site).contains("1.2.0 fixed"));
}

#[test]
fn a_newer_good_release_replaces_a_revoked_one_in_every_mode() {
    let fx = installed_with_previous();
    fx.package_on_revoked("remove");
    fx.revoke_release("1.1.0", "broken build");
    fx.acme
        .publish(&fx.channel, "hello", "1.2.0", &archive("1.2.0", "fixed"));
    let t = assert_says(
        &fx.site.run(&["update"]),
        exit::OK,
        &["no longer trusted", "installed 1.2.0"],
    );
    assert!(!t.contains("REMOVED"), "{t}");
    assert!(served(&fx.site).contains("1.2.0 fixed"));
}

#[test]
fn the_package_setting_overrides_the_site_setting() {
    let fx = installed_with_previous();
    fx.site.set_option("site", "on_revoked", "remove");
    fx.package_on_revoked("report");
    fx.revoke_release("1.1.0", "broken build");
    assert_says(
        &fx.site.run(&["update"]),
        exit::OK,
        &[
            "on_revoked = report",
            "still serving the REVOKED version 1.1.0",
        ],
    );
    assert_eq!(
        fx.site.installed_version("acme", "hello").as_deref(),
        Some("1.1.0")
    );
}

#[test]
fn an_unknown_on_revoked_value_is_refused() {
    let fx = installed_with_previous();
    fx.site.set_option("site", "on_revoked", "delete");
    assert_says(
        &fx.site.run(&["update"]),
        LOCAL,
        &["continuum.toml", "on_revoked", "report"],
    );
    assert_eq!(
        fx.site.installed_version("acme", "hello").as_deref(),
        Some("1.1.0")
    );
}

#[test]
fn status_warns_when_the_stored_log_no_longer_replays() {
    let fx = installed_with_previous();
    fx.revoke_release("1.1.0", "broken build");
    assert_says(&fx.site.run(&["update"]), exit::OK, &[]);
    let db = rusqlite::Connection::open(fx.site.root.join("site.db")).expect("db");
    db.execute("UPDATE log_entries SET bytes = x'00' WHERE idx = 4", [])
        .expect("corrupt");
    // The rest of the status is still shown; the check that could not be made is a warning.
    assert_says(
        &fx.site.run(&["status"]),
        exit::ATTENTION,
        &[
            "package acme/hello: 1.1.0",
            "could not check the installed versions for revocations",
            "stored entry 4 does not hash to its leaf",
            "continuum check",
        ],
    );
}
