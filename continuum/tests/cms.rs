//! Managing a site's packages (issue 12, item 8, in part), through the real binaries over
//! loopback: `continuum list`, `continuum info PKG` (versions in the log, signer, revocations,
//! attestations) and `continuum remove PKG [--delete]`.

use continuum::config::SitePaths;
use continuum::lock::SiteLock;
use keyggdrasil::entry::{Claim, Digest512, Event, Reason};
use keyggdrasil::names::{PackageName, SupplierName, Version};
use system_tests::{
    Channel, Site, Supplier, assert_says, exit, exit_code, output_text, plugin_archive,
};

/// Exit code of a usage error (continuum's `main.rs`).
const USAGE: i32 = 2;

fn archive(version: &str, marker: &str) -> Vec<u8> {
    plugin_archive("acme/hello", version, marker)
}

struct Fx {
    channel: Channel,
    acme: Supplier,
    bob: Supplier,
    site: Site,
}

/// acme (entries 0, 1), hello 1.0.0 (2), bob (3, 4), hello 1.1.0 (5), bob's attestation of
/// 1.0.0 (6), acme's revocation of 1.1.0 (7, reason "broken build"). The site installed 1.0.0,
/// then 1.1.0, then saw the attestation and the revocation.
fn fixture() -> Fx {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    let one = archive("1.0.0", "one");
    acme.publish(&channel, "hello", "1.0.0", &one);
    let bob = Supplier::new("bob");
    bob.register(&channel);
    let site = Site::init(&channel);
    site.set_option("site", "allow_no_peers", true);
    assert_says(
        &site.run(&["install", "acme/hello"]),
        exit::OK,
        &["installed 1.0.0"],
    );
    acme.publish(&channel, "hello", "1.1.0", &archive("1.1.0", "two"));
    assert_says(&site.run(&["update"]), exit::OK, &["installed 1.1.0"]);
    let (_, digest) = keyggdrasil::filesig::archive_digest(one.as_slice()).expect("digest");
    channel.submit(&bob.sign(
        &bob.signing,
        Event::Attestation {
            subject: SupplierName::parse("acme").expect("name"),
            package: PackageName::parse("hello").expect("name"),
            version: Version::parse("1.0.0").expect("version"),
            digest: Digest512(digest),
            claim: Claim::Reproduced,
        },
    ));
    channel.submit(&acme.sign(
        &acme.master,
        Event::ReleaseRevocation {
            package: PackageName::parse("hello").expect("name"),
            version: Version::parse("1.1.0").expect("version"),
            reason: Reason::parse("broken build").expect("reason"),
        },
    ));
    assert_says(&site.run(&["update"]), exit::OK, &["no longer trusted"]);
    Fx {
        channel,
        acme,
        bob,
        site,
    }
}

fn json(o: &std::process::Output) -> serde_json::Value {
    assert_eq!(exit_code(o), exit::OK, "{}", output_text(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", output_text(o)))
}

fn config_text(site: &Site) -> String {
    std::fs::read_to_string(site.root.join("continuum.toml")).expect("config")
}

#[test]
fn list_shows_tracked_packages_with_versions_policy_and_on_revoked() {
    let fx = fixture();
    assert_says(
        &fx.site.run(&["list"]),
        exit::OK,
        &[
            "acme/hello: installed 1.1.0 (previous 1.0.0 kept for rollback)",
            "policy all",
            "on_revoked report",
        ],
    );
    fx.site.set_option("site", "on_revoked", "rollback");
    let v = json(&fx.site.run(&["list", "--json"]));
    assert_eq!(
        v,
        serde_json::json!({"packages": [{
            "package": "acme/hello",
            "tracked": true,
            "channel": fx.channel.origin().as_str(),
            "policy": "all",
            "on_revoked": "rollback",
            "installed": "1.1.0",
            "previous": "1.0.0",
        }]})
    );
}

#[test]
fn info_shows_versions_signer_revocations_and_attestations() {
    let fx = fixture();
    let fp = fx.acme.signing.public().fingerprint();
    assert_says(
        &fx.site.run(&["info", "acme/hello"]),
        exit::OK,
        &[
            "acme/hello: tracked; installed 1.1.0",
            &format!(
                "1.0.0 (log entry 2, channel test.channel): signed by {fp}; kept for rollback; attested (reproduced) by bob in log entry 6"
            ),
            &format!(
                "1.1.0 (log entry 5, channel test.channel): signed by {fp}; INSTALLED; REVOKED: the release was revoked by log entry 7 (reason: \"broken build\")"
            ),
        ],
    );
    let v = json(&fx.site.run(&["info", "acme/hello", "--json"]));
    assert_eq!(v["package"], "acme/hello");
    assert_eq!(v["installed"], "1.1.0");
    let versions = v["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2, "{v}");
    assert_eq!(versions[0]["version"], "1.0.0");
    assert_eq!(versions[0]["installable"], true);
    assert_eq!(versions[0]["revocation"], serde_json::Value::Null);
    assert_eq!(versions[0]["signer"], fx.acme.signing.public().to_hex());
    assert_eq!(
        versions[0]["attestations"],
        serde_json::json!([{"supplier": "bob", "claim": "reproduced", "entry": 6}])
    );
    assert_eq!(versions[1]["installable"], false);
    assert_eq!(versions[1]["revocation"]["entry"], 7);
    assert_eq!(versions[1]["revocation"]["reason"], "broken build");
    assert_eq!(versions[1]["revocation"]["revoked"], "release");
    assert_eq!(versions[1]["installed"], true);
    // A package the log does not have: said so, not an error.
    assert_says(
        &fx.site.run(&["info", "bob/nothing"]),
        exit::OK,
        &[
            "bob/nothing: not tracked; not installed",
            "no release of bob/nothing",
        ],
    );
    let _ = &fx.bob;
}

#[test]
fn remove_stops_tracking_and_keeps_the_files() {
    let fx = fixture();
    let o = fx.site.run(&["remove", "acme/hello"]);
    assert_says(
        &o,
        exit::OK,
        &[
            "acme/hello: no longer tracked",
            "were kept and are no longer updated",
            "--delete",
        ],
    );
    assert!(
        !config_text(&fx.site).contains("hello"),
        "{}",
        config_text(&fx.site)
    );
    assert_eq!(
        fx.site.installed_version("acme", "hello").as_deref(),
        Some("1.1.0")
    );
    assert!(
        fx.site
            .root
            .join("packages/acme/hello/current/plugin.php")
            .exists()
    );
    // No longer updated.
    fx.acme
        .publish(&fx.channel, "hello", "1.2.0", &archive("1.2.0", "three"));
    assert_says(&fx.site.run(&["update"]), exit::OK, &[]);
    assert_eq!(
        fx.site.installed_version("acme", "hello").as_deref(),
        Some("1.1.0")
    );
    assert_says(
        &fx.site.run(&["list"]),
        exit::OK,
        &["acme/hello: installed 1.1.0", "NOT TRACKED"],
    );
    // Untracked: a second `remove` is a usage error naming it; `--delete` still removes the files.
    assert_says(
        &fx.site.run(&["remove", "acme/hello"]),
        USAGE,
        &["acme/hello is not tracked by this site"],
    );
    assert_says(
        &fx.site.run(&["remove", "acme/hello", "--delete"]),
        exit::OK,
        &["deleted the installed version 1.1.0"],
    );
    assert!(!fx.site.root.join("packages/acme/hello").exists());
    assert_eq!(fx.site.installed_version("acme", "hello"), None);
}

#[test]
fn remove_delete_removes_the_files_and_the_records() {
    let fx = fixture();
    let v = json(&fx.site.run(&["remove", "acme/hello", "--delete", "--json"]));
    assert_eq!(
        v,
        serde_json::json!({
            "removed": "acme/hello",
            "was_tracked": true,
            "deleted_version": "1.1.0",
            "files_kept": false,
        })
    );
    assert!(!fx.site.root.join("packages/acme").exists());
    assert_eq!(fx.site.installed_version("acme", "hello"), None);
    let db = rusqlite::Connection::open(fx.site.root.join("site.db")).expect("db");
    let kept: i64 = db
        .query_row("SELECT COUNT(*) FROM stored_versions", [], |r| r.get(0))
        .expect("count");
    assert_eq!(kept, 0);
    assert!(!config_text(&fx.site).contains("hello"));
    // Nothing revoked is left to report; an update installs nothing.
    let o = fx.site.run(&["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(st["revoked"], serde_json::json!([]), "{st}");
    assert_says(&fx.site.run(&["update"]), exit::OK, &[]);
    assert!(!fx.site.root.join("packages/acme").exists());
}

#[test]
fn remove_of_an_untracked_package_is_a_usage_error_naming_it() {
    let fx = fixture();
    let before = (fx.site.snapshot(), config_text(&fx.site));
    for args in [
        &["remove", "acme/nothing"][..],
        &["remove", "acme/nothing", "--delete"],
    ] {
        assert_says(
            &fx.site.run(args),
            USAGE,
            &["acme/nothing is not tracked by this site", "continuum list"],
        );
    }
    let o = fx.site.run(&["remove", "acme/nothing", "--json"]);
    assert_eq!(exit_code(&o), USAGE);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["error"]["kind"], "usage", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("acme/nothing")),
        "{v}"
    );
    assert!((fx.site.snapshot(), config_text(&fx.site)) == before);
}

#[test]
fn remove_is_refused_while_an_update_holds_the_lock() {
    let fx = fixture();
    let before = (fx.site.snapshot(), config_text(&fx.site));
    let lock = SiteLock::try_acquire(&SitePaths::new(&fx.site.root)).expect("lock");
    assert_says(
        &fx.site.run(&["remove", "acme/hello", "--delete"]),
        exit::BUSY,
        &["an update is running"],
    );
    drop(lock);
    assert!((fx.site.snapshot(), config_text(&fx.site)) == before);
}

#[test]
fn a_remove_interrupted_after_the_link_went_is_finished_by_the_next_run() {
    let fx = fixture();
    // What `remove --delete` leaves when killed right after its commit point: the config saved
    // without the package, the `current` link gone, the version folders and records still there.
    assert_says(&fx.site.run(&["remove", "acme/hello"]), exit::OK, &[]);
    std::fs::remove_file(fx.site.root.join("packages/acme/hello/current")).expect("unlink");
    assert!(
        fx.site
            .root
            .join("packages/acme/hello/versions/1.1.0")
            .is_dir()
    );
    // The next run's repair finishes the removal; nothing is served or reported.
    assert_says(&fx.site.run(&["update"]), exit::OK, &[]);
    assert_eq!(fx.site.installed_version("acme", "hello"), None);
    assert!(!fx.site.root.join("packages/acme").exists());
    let o = fx.site.run(&["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(st["revoked"], serde_json::json!([]), "{st}");
}

#[test]
fn install_again_keeps_the_packages_on_revoked() {
    let fx = fixture();
    fx.site.edit_config(|cfg| {
        let p = cfg
            .get_mut("package")
            .and_then(|p| p.as_array_mut())
            .and_then(|a| a.first_mut())
            .and_then(|p| p.as_table_mut())
            .expect("a [[package]]");
        p.insert("on_revoked".into(), toml::Value::String("remove".into()));
    });
    assert_says(
        &fx.site.run(&["install", "acme/hello", "--policy", "minor"]),
        exit::OK,
        &[],
    );
    let cfg = config_text(&fx.site);
    assert!(cfg.contains("on_revoked = \"remove\""), "{cfg}");
    assert!(cfg.contains("policy = \"minor\""), "{cfg}");
}
