//! Every operator fixture runs as written: each systemd unit's `ExecStart=` line and the crontab
//! line are read from `fixtures/systemd/` (not copied here), with only the install paths
//! (`/usr/local/bin/continuum`, `/var/lib/continuum/%i`) pointed at this test's binary and site,
//! and must do their job against a real channel. Where `systemd-analyze` exists, each unit must
//! also score at most 3.0 on `systemd-analyze security` and pass `systemd-analyze verify`.

use std::path::{Path, PathBuf};
use std::process::Command;

use system_tests::{Channel, Site, Supplier, bin, exit_code, output_text, spawn_listening};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/systemd")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The values of `key=` lines in a unit's text.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
        .collect()
}

/// A unit's or crontab's command line with the install paths replaced by this test's.
fn localise(line: &str, site: &Path) -> String {
    let continuum = bin("continuum");
    line.replace("/usr/local/bin/continuum", &continuum.display().to_string())
        .replace("/var/lib/continuum/%i", &site.display().to_string())
        .replace("/var/lib/continuum/mysite", &site.display().to_string())
}

/// The argv of a unit's single `ExecStart=` line, localised.
fn exec_start(unit: &str, site: &Path) -> Command {
    let lines = unit_values(unit, "ExecStart");
    assert_eq!(lines.len(), 1, "one ExecStart line: {lines:?}");
    let line = localise(&lines[0], site);
    assert!(
        !line.contains('%') && !line.contains('$'),
        "ExecStart needs expansion this test does not do: {line}"
    );
    let mut words = line.split_whitespace();
    let mut cmd = Command::new(words.next().expect("a program"));
    cmd.args(words);
    cmd
}

/// A channel with one published release, and a site tracking it that needs no peers.
fn world() -> (Channel, Site) {
    let ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    acme.publish_plugin(&ch, "hello", "1.0.0", "fixtures");
    let site = Site::init(&ch);
    site.set_option("site", "allow_no_peers", true);
    let o = site.run(&["install", "acme/hello"]);
    assert_eq!(exit_code(&o), 0, "{}", output_text(&o));
    (ch, site)
}

#[test]
fn the_update_unit_runs_as_written() {
    let unit = fixture("continuum-update@.service");
    let (_ch, site) = world();
    let o = exec_start(&unit, &site.root)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ExecStart");
    assert_eq!(exit_code(&o), 0, "{}", output_text(&o));
    // Overlapping runs are normal under a timer: exit 6 must not mark the unit failed.
    assert!(
        unit_values(&unit, "SuccessExitStatus")
            .iter()
            .any(|v| v.split_whitespace().any(|c| c == "6")),
        "the update unit must treat exit 6 (another run in progress) as success"
    );
    assert_eq!(unit_values(&unit, "Type"), ["oneshot"]);
}

#[test]
fn the_notary_unit_runs_as_written_and_answers() {
    let unit = fixture("continuum-notary@.service");
    let (_ch, mut site) = world();
    // The unit takes the address from the site's config, as `continuum init` wrote it.
    let (mut child, base) = spawn_listening(exec_start(&unit, &site.root));
    site.notary_url = Some(base);
    // A signed answer about what the channel showed this site (3 entries: keys and release).
    let status = site.ask_notary(3);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        matches!(status, keyggdrasil::wire::NotaryStatus::Ok { .. }),
        "{status:?}"
    );
}

#[test]
fn the_crontab_line_runs_as_written() {
    let cron = fixture("crontab.txt");
    let line = cron
        .lines()
        .find(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .expect("a crontab line");
    // Five time fields, then the command, which cron hands to /bin/sh.
    let command: Vec<&str> = line.split_whitespace().skip(5).collect();
    let (_ch, site) = world();
    let o = Command::new("/bin/sh")
        .arg("-c")
        .arg(localise(&command.join(" "), &site.root))
        .output()
        .expect("sh");
    assert_eq!(exit_code(&o), 0, "{}", output_text(&o));
    let log = std::fs::read_to_string(site.root.join("cron.out")).expect("cron.out written");
    assert!(
        !log.contains('\u{1b}'),
        "no terminal colour codes in a log file: {log:?}"
    );
}

fn systemd_analyze() -> Option<PathBuf> {
    ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

#[test]
fn units_are_hardened() {
    let Some(analyze) = systemd_analyze() else {
        eprintln!("systemd-analyze is not installed: exposure scores not checked");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in [
        ("continuum-update@.service", "/var/lib/continuum/%i"),
        ("continuum-notary@.service", "/var/lib/continuum/%i"),
        ("barge-monitor@.service", "/var/lib/barge/%i"),
    ] {
        let unit = fixture(name);
        let read_write = format!("ReadWritePaths={data}");
        for key in [
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "ProtectHome=yes",
            "SystemCallFilter=@system-service",
            "CapabilityBoundingSet=",
            &read_write,
        ] {
            assert!(unit.lines().any(|l| l.trim() == key), "{name} lacks {key}");
        }
        assert!(unit.contains("RestrictAddressFamilies="), "{name}");
        // An instance of the template, as systemd would load it.
        let instance = dir.path().join(name.replace('@', "@demo"));
        std::fs::write(&instance, &unit).unwrap();
        let out = Command::new(&analyze)
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&instance)
            .output()
            .expect("systemd-analyze");
        let text = String::from_utf8_lossy(&out.stdout);
        let score: f64 = text
            .lines()
            .find_map(|l| l.split("exposure level for ").nth(1))
            .and_then(|rest| rest.split(": ").nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no score in:\n{text}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        eprintln!("{name}: systemd-analyze security {score}");
        assert!(score <= 3.0, "{name} scores {score} > 3.0:\n{text}");
    }
    for name in ["continuum.sysusers.conf", "continuum.tmpfiles.conf"] {
        let text = fixture(name);
        assert!(text.contains("continuum"), "{name}");
    }
}
