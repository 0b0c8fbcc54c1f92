//! CMS integration (issue 12, item 8), through the real `continuum` binary against a real
//! `channel-server` on loopback: `update --dry-run`, `install_dir`, hooks and the status file.

use std::path::Path;
use std::time::{Duration, Instant};

use system_tests::{Channel, Site, Supplier, stdout_ok};

/// A channel with acme/hello 1.0.0 and a site on it that trusts the channel alone.
fn world() -> (Channel, Supplier, Site) {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    acme.publish_plugin(&channel, "hello", "1.0.0", "first");
    let site = Site::init(&channel);
    site.set_option("site", "allow_no_peers", true);
    (channel, acme, site)
}

fn set_package(site: &Site, key: &str, value: toml::Value) {
    site.edit_config(|cfg| {
        for p in cfg["package"].as_array_mut().expect("packages") {
            p.as_table_mut()
                .expect("package")
                .insert(key.into(), value.clone());
        }
    });
}

fn argv(a: &[&str]) -> toml::Value {
    toml::Value::Array(a.iter().map(|s| toml::Value::from(*s)).collect())
}

fn status(site: &Site) -> serde_json::Value {
    let text = std::fs::read_to_string(site.root.join("status.json")).expect("status.json");
    serde_json::from_str(&text).expect("status.json is JSON")
}

/// A hook script writing its CONTINUUM_* environment (and nothing else of it) to `out`.
fn env_hook(dir: &Path, out: &Path, exit: i32) -> String {
    let script = dir.join(format!("hook-{exit}.sh"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nenv | grep -v '^PWD=\\|^SHLVL=\\|^_=' | sort >> {}\necho --- >> {}\nexit {exit}\n",
            out.display(),
            out.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script.display().to_string()
}

#[test]
fn dry_run_verifies_and_changes_nothing() {
    let (channel, acme, site) = world();
    stdout_ok(&site.run(&["install", "acme/hello"]));
    acme.publish_plugin(&channel, "hello", "1.1.0", "second");
    let before = site.snapshot();
    let config = std::fs::read(site.root.join("continuum.toml")).unwrap();
    let log = std::fs::read(site.root.join("continuum.log")).unwrap();
    let status_before = std::fs::read(site.root.join("status.json")).unwrap();
    let accepted = site.accepted_size();

    let o = site.run(&["--json", "update", "--dry-run"]);
    let v = system_tests::stdout_json(&o);
    assert_eq!(v["dry_run"], true);
    let would = &v["channels"][0]["would_install"][0];
    assert_eq!(
        (would["package"].as_str(), would["version"].as_str()),
        (Some("acme/hello"), Some("1.1.0"))
    );
    assert_eq!(would["previous"], "1.0.0");
    let o = site.run(&["update", "--dry-run"]);
    let out = stdout_ok(&o);
    assert!(
        out.contains("would install acme/hello 1.1.0; nothing was changed"),
        "{out}"
    );

    assert!(
        site.snapshot() == before,
        "packages/ or the database changed"
    );
    assert_eq!(site.accepted_size(), accepted);
    assert_eq!(
        std::fs::read(site.root.join("continuum.toml")).unwrap(),
        config
    );
    assert_eq!(std::fs::read(site.root.join("continuum.log")).unwrap(), log);
    assert_eq!(
        std::fs::read(site.root.join("status.json")).unwrap(),
        status_before
    );
    assert_eq!(
        site.installed_version("acme", "hello").as_deref(),
        Some("1.0.0")
    );
    // The real run then installs it.
    stdout_ok(&site.run(&["update"]));
    assert_eq!(
        site.installed_version("acme", "hello").as_deref(),
        Some("1.1.0")
    );
}

#[test]
fn dry_run_refuses_a_tampered_archive() {
    let (channel, acme, site) = world();
    stdout_ok(&site.run(&["install", "acme/hello"]));
    // A release whose uploaded archive is another one than the logged one.
    let real = system_tests::plugin_archive("acme/hello", "1.1.0", "real");
    let evil = system_tests::plugin_archive("acme/hello", "1.1.0", "evil");
    channel.submit(&acme.release(&acme.signing, "hello", "1.1.0", &real));
    let _ = std::panic::catch_unwind(|| channel.upload("acme", "hello", "1.1.0", &evil));
    let before = site.snapshot();
    let o = site.run(&["update", "--dry-run"]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "{}",
        system_tests::output_text(&o)
    );
    let t = system_tests::output_text(&o);
    assert!(t.contains("nothing was changed (dry run)"), "{t}");
    assert!(site.snapshot() == before);
}

#[test]
fn install_dir_is_a_link_that_switches_and_rolls_back() {
    let (channel, acme, site) = world();
    let cms = tempfile::tempdir().unwrap();
    let plugins = cms.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let target = plugins.join("hello");
    stdout_ok(&site.run(&["install", "acme/hello"]));
    set_package(
        &site,
        "install_dir",
        toml::Value::from(target.display().to_string()),
    );
    // The next run makes the link for the package already installed.
    stdout_ok(&site.run(&["update"]));
    let read = || std::fs::read_to_string(target.join("plugin.php")).unwrap();
    assert!(read().contains("1.0.0 first"), "{}", read());
    assert!(
        std::fs::symlink_metadata(&target)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    acme.publish_plugin(&channel, "hello", "1.1.0", "second");
    // A CMS reading through install_dir during the update always finds a complete version.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, file) = (stop.clone(), target.join("plugin.php"));
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let text = std::fs::read_to_string(&file).expect("install_dir always resolves");
                assert!(
                    text.contains("1.0.0 first") || text.contains("1.1.0 second"),
                    "{text}"
                );
                reads += 1;
            }
            reads
        })
    };
    stdout_ok(&site.run(&["update"]));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().expect("reader") > 0);
    assert!(read().contains("1.1.0 second"));
    stdout_ok(&site.run(&["rollback", "acme/hello"]));
    assert!(read().contains("1.0.0 first"));
    let s = status(&site);
    assert_eq!(
        s["packages"][0]["install_dir"],
        target.display().to_string()
    );
    // remove --delete takes the link away with the files.
    stdout_ok(&site.run(&["remove", "acme/hello", "--delete"]));
    assert!(
        std::fs::symlink_metadata(&target).is_err(),
        "the install_dir link stayed"
    );
}

#[test]
fn install_dir_refuses_a_real_folder_and_relative_paths() {
    let (_channel, _acme, site) = world();
    let cms = tempfile::tempdir().unwrap();
    let taken = cms.path().join("hello");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("mine.php"), "x").unwrap();
    stdout_ok(&site.run(&["install", "acme/hello"]));
    set_package(
        &site,
        "install_dir",
        toml::Value::from(taken.display().to_string()),
    );
    let o = site.run(&["update"]);
    let t = system_tests::output_text(&o);
    assert_eq!(o.status.code(), Some(5), "{t}");
    assert!(
        t.contains("move it away") && t.contains(&taken.display().to_string()),
        "{t}"
    );
    assert!(
        taken.join("mine.php").exists(),
        "the operator's folder is left alone"
    );
    set_package(&site, "install_dir", toml::Value::from("plugins/hello"));
    let o = site.run(&["update"]);
    let t = system_tests::output_text(&o);
    assert_eq!(o.status.code(), Some(5), "{t}");
    assert!(t.contains("is relative"), "{t}");
}

#[test]
fn post_install_gets_the_environment_and_a_failing_hook_keeps_the_install() {
    let (channel, acme, site) = world();
    let hooks = tempfile::tempdir().unwrap();
    let out = hooks.path().join("env.txt");
    let failing = env_hook(hooks.path(), &out, 3);
    site.set_option("hooks", "post_install", argv(&[&failing]));
    let o = site.run(&["install", "acme/hello"]);
    let t = system_tests::output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("HOOK FAILED: post_install for acme/hello"),
        "{t}"
    );
    assert_eq!(
        site.installed_version("acme", "hello").as_deref(),
        Some("1.0.0")
    );
    let env = std::fs::read_to_string(&out).unwrap();
    assert!(env.contains("CONTINUUM_EVENT=post_install"), "{env}");
    assert!(env.contains("CONTINUUM_PACKAGE=acme/hello"), "{env}");
    assert!(env.contains("CONTINUUM_VERSION=1.0.0"), "{env}");
    assert!(env.contains("CONTINUUM_PREVIOUS_VERSION=\n"), "{env}");
    assert!(
        env.contains("CONTINUUM_INSTALL_DIR=/") && env.contains("packages/acme/hello/current"),
        "{env}"
    );
    assert!(env.contains("CONTINUUM_SITE=/"), "{env}");
    assert!(
        !env.contains("RUST_LOG"),
        "the caller's environment leaked: {env}"
    );
    let s = status(&site);
    assert_eq!(s["schema"], 1);
    assert_eq!(s["hook_failed"], true);
    assert_eq!(s["hooks"][0]["outcome"], "failed");
    assert_eq!(s["hooks"][0]["exit_code"], 3);

    // A succeeding per-package hook replaces the site's, with the previous version.
    std::fs::remove_file(&out).unwrap();
    let ok = env_hook(hooks.path(), &out, 0);
    set_package(&site, "post_install", argv(&[&ok]));
    acme.publish_plugin(&channel, "hello", "1.1.0", "second");
    stdout_ok(&site.run(&["update"]));
    let env = std::fs::read_to_string(&out).unwrap();
    assert!(
        env.contains("CONTINUUM_VERSION=1.1.0") && env.contains("CONTINUUM_PREVIOUS_VERSION=1.0.0"),
        "{env}"
    );
    let s = status(&site);
    assert_eq!(s["hook_failed"], false);
    assert_eq!(s["packages"][0]["updated_this_run"], true);

    // post_rollback.
    std::fs::remove_file(&out).unwrap();
    set_package(&site, "post_rollback", argv(&[&ok]));
    stdout_ok(&site.run(&["rollback", "acme/hello"]));
    let env = std::fs::read_to_string(&out).unwrap();
    assert!(
        env.contains("CONTINUUM_EVENT=post_rollback") && env.contains("CONTINUUM_VERSION=1.0.0"),
        "{env}"
    );
}

#[test]
fn a_hung_hook_is_killed_after_its_timeout() {
    let (_channel, _acme, site) = world();
    site.set_option("hooks", "post_install", argv(&["/bin/sleep", "600"]));
    site.set_option("hooks", "hook_timeout_secs", 1);
    let started = Instant::now();
    let o = site.run(&["install", "acme/hello"]);
    let t = system_tests::output_text(&o);
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("killed"), "{t}");
    assert_eq!(
        site.installed_version("acme", "hello").as_deref(),
        Some("1.0.0")
    );
    assert_eq!(status(&site)["hooks"][0]["outcome"], "timed_out");
}

#[test]
fn on_failure_and_the_status_file_after_a_failure() {
    let (_channel, _acme, site) = world();
    let hooks = tempfile::tempdir().unwrap();
    let out = hooks.path().join("env.txt");
    let hook = env_hook(hooks.path(), &out, 0);
    site.set_option("hooks", "on_failure", argv(&[&hook]));
    site.set_mirror("http://127.0.0.1:1");
    let o = site.run(&["update"]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        system_tests::output_text(&o)
    );
    let env = std::fs::read_to_string(&out).unwrap();
    assert!(
        env.contains("CONTINUUM_EVENT=on_failure") && env.contains("CONTINUUM_EXIT_CODE=4"),
        "{env}"
    );
    assert!(
        env.contains("CONTINUUM_ERROR=") && env.contains("127.0.0.1:1"),
        "{env}"
    );
    let s = status(&site);
    assert_eq!(
        (s["outcome"].as_str(), s["exit_code"].as_u64()),
        (Some("unreachable"), Some(4))
    );
    assert!(s["error"].as_str().unwrap().contains("127.0.0.1:1"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(site.root.join("status.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
}

#[test]
fn hooks_must_be_absolute_argv() {
    let (_channel, _acme, site) = world();
    site.set_option("hooks", "post_install", argv(&["wp", "plugin", "activate"]));
    let o = site.run(&["update"]);
    let t = system_tests::output_text(&o);
    assert_eq!(o.status.code(), Some(5), "{t}");
    assert!(t.contains("not an absolute path"), "{t}");
    site.set_option("hooks", "post_install", argv(&[]));
    let t = system_tests::output_text(&site.run(&["update"]));
    assert!(t.contains("is empty"), "{t}");
}
