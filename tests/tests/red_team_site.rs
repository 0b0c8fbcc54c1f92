//! Red-team pass of the site's file handling (issue 19): an outsider's attempts against a site
//! folder and its installs, with the real `continuum` binary against a real channel on
//! loopback. The attempts, what happened and the findings are in the security review's "The
//! site's files" section; archive attacks already tried elsewhere are cited there, not
//! repeated (`tests/archive_attacks.rs`, `keyggdrasil/tests/archive/extract.rs`,
//! `keyggdrasil/tests/red_team_site_files.rs`).
//!
//! Every refused attempt asserts the exit code, the message (naming the path and the fix), and
//! that the site (installed files, links and install records: [`Site::snapshot`]) is byte for
//! byte as before, and that nothing was written outside the site. The tests run as root: "another
//! user" is uid 65534 (nobody), by chown in the test's temporary folder.

use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use keyggdrasil::archive::{MANIFEST_NAME, Manifest};
use system_tests::{Channel, Site, Supplier, assert_says, bin, exit, plugin_archive};

/// Exit code of a local error (config, disk, permissions).
const LOCAL: i32 = 5;
const NOBODY: u32 = 65534;

/// A channel with acme/hello 1.0.0 and a site (no peers needed) that installed it.
struct World {
    channel: Channel,
    acme: Supplier,
    site: Site,
    /// Outside the site: where an attacker points links, and where hooks leave markers.
    outside: tempfile::TempDir,
}

fn world() -> World {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    acme.publish_plugin(&channel, "hello", "1.0.0", "genuine");
    let site = Site::init_installing(&channel, "acme/hello", "1.0.0");
    World {
        channel,
        acme,
        site,
        outside: tempfile::tempdir().unwrap(),
    }
}

impl World {
    fn pkg(&self) -> PathBuf {
        self.site.root.join("packages/acme/hello")
    }

    fn installed_file(&self) -> String {
        fs::read_to_string(self.pkg().join("current/plugin.php")).unwrap_or_default()
    }

    /// Publishes a genuine acme/hello `version` and returns its archive.
    fn publish(&self, version: &str) -> Vec<u8> {
        let archive = plugin_archive("acme/hello", version, "genuine");
        self.acme.publish(&self.channel, "hello", version, &archive);
        archive
    }

    /// The name continuum downloads `archive` to: `staging/<BLAKE2b-512 hex>.zip`.
    fn download_path(&self, archive: &[u8]) -> PathBuf {
        let (_, digest) = keyggdrasil::filesig::archive_digest(archive).unwrap();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.site.root.join("staging").join(format!("{hex}.zip"))
    }

    /// The site accepts the new log entries without installing (policy `patch` does not allow
    /// 2.x from 1.0.0), then may install again (`all`): a refused install then changes nothing
    /// at all, log tables included.
    fn accept_log_only(&self) {
        self.site.set_policy("patch");
        assert_says(
            &self.site.run(&["update"]),
            exit::OK,
            &["applied 1 new entries"],
        );
        self.site.set_policy("all");
    }

    /// Every file and link under the outside folder, with its bytes.
    fn outside_listing(&self) -> Vec<(String, Vec<u8>)> {
        listing(self.outside.path())
    }

    /// A `post_install` and an `on_failure` hook that each leave a marker outside: what a
    /// hostile config would use to run a program as the site's user.
    fn add_marker_hooks(&self) -> PathBuf {
        let marker = self.outside.path().join("hook-ran");
        let argv = toml::Value::Array(vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("echo ran >> {}", marker.display()).into(),
        ]);
        self.site.set_option("hooks", "post_install", argv.clone());
        self.site.set_option("hooks", "on_failure", argv);
        marker
    }
}

fn listing(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let meta = fs::symlink_metadata(&p).unwrap();
            let name = p.strip_prefix(root).unwrap().display().to_string();
            if meta.file_type().is_symlink() {
                out.push((name, fs::read_link(&p).unwrap().into_os_string().into_vec()));
            } else if meta.is_dir() {
                out.push((name + "/", Vec::new()));
                pending.push(p);
            } else {
                out.push((name, fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), None).expect("chown (the tests run as root)");
}

/// A site file or folder that someone else could change is refused before anything is read
/// from it: `update` exits 5 naming the path and the fix, installs nothing, runs no hook
/// (a hostile config's hooks would run programs as the site's user), writes no log line, and
/// the site is byte for byte as before. Once the owner or mode is fixed the same update
/// installs. Before this pass, all of these were used as they were (findings S1, S2).
#[test]
fn site_files_that_others_could_change_are_refused() {
    let w = world();
    let marker = w.add_marker_hooks();
    w.publish("2.0.0");
    let root = w.site.root.clone();
    let versions = w.pkg().join("versions");
    // (what, path, chmod to, chown to, mode to restore)
    type Case = (&'static str, PathBuf, Option<u32>, Option<u32>, u32);
    let cases: Vec<Case> = vec![
        // (what, path, chmod to, chown to, mode to restore)
        (
            "config 0666",
            root.join("continuum.toml"),
            Some(0o666),
            None,
            0o644,
        ),
        (
            "config 0664",
            root.join("continuum.toml"),
            Some(0o664),
            None,
            0o644,
        ),
        (
            "config of nobody",
            root.join("continuum.toml"),
            None,
            Some(NOBODY),
            0o644,
        ),
        ("site folder 0777", root.clone(), Some(0o777), None, 0o750),
        (
            "site folder of nobody",
            root.clone(),
            None,
            Some(NOBODY),
            0o750,
        ),
        (
            "site.db 0666",
            root.join("site.db"),
            Some(0o666),
            None,
            0o644,
        ),
        (
            "site.db of nobody",
            root.join("site.db"),
            None,
            Some(NOBODY),
            0o644,
        ),
        (
            "local/ of nobody",
            root.join("local"),
            None,
            Some(NOBODY),
            0o700,
        ),
        ("local/ 0777", root.join("local"), Some(0o777), None, 0o700),
        (
            "staging/ 0777",
            root.join("staging"),
            Some(0o777),
            None,
            0o700,
        ),
        (
            "staging/ of nobody",
            root.join("staging"),
            None,
            Some(NOBODY),
            0o700,
        ),
        (
            "packages/ 0777",
            root.join("packages"),
            Some(0o777),
            None,
            0o755,
        ),
        (
            "packages/acme/ 0775",
            root.join("packages/acme"),
            Some(0o775),
            None,
            0o755,
        ),
        (
            "versions/ of nobody",
            versions.clone(),
            None,
            Some(NOBODY),
            0o755,
        ),
    ];
    let log = fs::read(root.join("continuum.log")).unwrap_or_default();
    for (what, path, to_mode, to_owner, restore) in cases {
        assert_eq!(mode(&path), restore, "{what}: the mode continuum made");
        let before = w.site.snapshot();
        if let Some(m) = to_mode {
            chmod(&path, m);
        }
        if let Some(uid) = to_owner {
            chown(&path, uid);
        }
        let out = w.site.run(&["update"]);
        let fix = if to_owner.is_some() {
            format!("belongs to uid {NOBODY}, not to the user running continuum (uid 0)")
        } else {
            format!(
                "has mode {:03o}, so group or others could change it",
                to_mode.unwrap()
            )
        };
        let t = assert_says(
            &out,
            LOCAL,
            &[&format!("refusing to use {}", path.display()), &fix],
        );
        assert!(
            t.contains(if to_owner.is_some() {
                "chown"
            } else {
                "chmod go-w"
            }),
            "{what}: {t}"
        );
        assert!(w.site.snapshot() == before, "{what}: the site changed\n{t}");
        assert!(w.installed_file().contains("1.0.0 genuine"), "{what}");
        assert!(!marker.exists(), "{what}: a hook ran");
        assert_eq!(
            fs::read(root.join("continuum.log")).unwrap_or_default(),
            log,
            "{what}: a log line was written"
        );
        chown(&path, 0);
        chmod(&path, restore);
    }
    // The control: the same update with everything restored installs (and runs the hook).
    assert_says(&w.site.run(&["update"]), exit::OK, &["installed 2.0.0"]);
    assert!(w.installed_file().contains("2.0.0 genuine"));
    assert!(marker.exists());
}

/// Runs `continuum ARGS` under `umask`.
fn under_umask(umask: &str, args: &[&std::ffi::OsStr]) -> Output {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(bin("continuum"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// `init`, `install` and an `update` run under umask 000 (nothing held back) and 077 (the
/// systemd unit's): every file and folder continuum creates gets its own mode, never one that
/// lets group or others write, and the installed tree stays readable for the CMS whatever the
/// umask. Files are created with their mode (open with mode, `DirBuilder` with mode), not
/// chmod'ed wider later, so there is no moment with a wider mode. Before this pass, under umask
/// 000 `continuum.toml`, `continuum.log`, `update.lock`, the site folder and `packages/...`
/// came out world-writable (finding S3).
#[test]
fn modes_do_not_depend_on_the_umask() {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    acme.publish_plugin(&channel, "hello", "1.0.0", "genuine");
    for umask in ["000", "077"] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("site");
        let key = channel.key.to_hex();
        let dir = ["--dir".as_ref(), root.as_os_str()];
        let init: Vec<&std::ffi::OsStr> = dir
            .iter()
            .copied()
            .chain(
                [
                    "init",
                    "--channel",
                    &channel.base,
                    "--channel-key",
                    &key,
                    "--notary-listen",
                    "127.0.0.1:0",
                ]
                .map(std::ffi::OsStr::new),
            )
            .collect();
        assert_says(&under_umask(umask, &init), exit::OK, &[]);
        let config = root.join("continuum.toml");
        let mut cfg: toml::Table = fs::read_to_string(&config).unwrap().parse().unwrap();
        cfg.entry("site")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .unwrap()
            .insert("allow_no_peers".into(), true.into());
        // `fs::write` keeps the mode of the file continuum made.
        fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();
        let install: Vec<&std::ffi::OsStr> = dir
            .iter()
            .copied()
            .chain(["install", "acme/hello"].map(std::ffi::OsStr::new))
            .collect();
        assert_says(
            &under_umask(umask, &install),
            exit::OK,
            &["installed 1.0.0"],
        );
        let update: Vec<&std::ffi::OsStr> = dir
            .iter()
            .copied()
            .chain(["update"].map(std::ffi::OsStr::new))
            .collect();
        assert_says(&under_umask(umask, &update), exit::OK, &[]);

        let pkg = root.join("packages/acme/hello");
        let expected = [
            (root.clone(), 0o750),
            (root.join("continuum.toml"), 0o644),
            (root.join("local"), 0o700),
            (root.join("local/site-secret"), 0o600),
            (root.join("update.lock"), 0o600),
            (root.join("staging"), 0o700),
            (root.join("packages"), 0o755),
            (root.join("packages/acme"), 0o755),
            (pkg.clone(), 0o755),
            (pkg.join("versions"), 0o755),
            (pkg.join("versions/1.0.0"), 0o755),
            (pkg.join("versions/1.0.0/lib"), 0o755),
            (pkg.join("versions/1.0.0/plugin.php"), 0o644),
            (pkg.join("versions/1.0.0/lib/util.php"), 0o644),
            (pkg.join("archives"), 0o755),
        ];
        for (path, want) in &expected {
            let got = mode(path);
            if umask == "000" {
                assert_eq!(got, *want, "umask {umask}: {}", path.display());
            } else if path.starts_with(pkg.join("versions/1.0.0")) {
                // The installed tree's modes are set exactly: the CMS reads it.
                assert_eq!(got, *want, "umask {umask}: {}", path.display());
            } else {
                assert_eq!(got, want & 0o700, "umask {umask}: {}", path.display());
            }
        }
        if umask == "000" {
            assert_eq!(mode(&root.join("continuum.log")), 0o644);
        }
        // Nothing in the site is writable by group or others, whatever it is.
        for (name, _) in listing(&root) {
            let path = root.join(name.trim_end_matches('/'));
            let meta = fs::symlink_metadata(&path).unwrap();
            if !meta.file_type().is_symlink() {
                assert_eq!(
                    meta.mode() & 0o022,
                    0,
                    "umask {umask}: {} is {:o}",
                    path.display(),
                    meta.mode() & 0o7777
                );
            }
        }
    }
}

/// A symbolic link planted at the name continuum downloads the next archive to
/// (`staging/<digest>.zip`, predictable from the log), pointing at a file outside the site
/// (present, or not yet there): the download does not write through it (the link is removed and
/// the download made in its place) and the release installs. Before this pass the download was
/// opened following the link: the target was truncated and overwritten with the archive, or
/// created (finding S4).
#[test]
fn a_link_planted_at_the_download_is_not_written_through() {
    let w = world();
    let victim = w.outside.path().join("index.php");
    fs::write(&victim, b"<?php // the CMS's own file\n").unwrap();
    let archive = w.publish("2.0.0");
    symlink(&victim, w.download_path(&archive)).unwrap();
    assert_says(&w.site.run(&["update"]), exit::OK, &["installed 2.0.0"]);
    assert!(w.installed_file().contains("2.0.0 genuine"));
    assert_eq!(fs::read(&victim).unwrap(), b"<?php // the CMS's own file\n");

    // A dangling link: its target must not be created.
    let absent = w.outside.path().join("created.php");
    let archive = w.publish("3.0.0");
    symlink(&absent, w.download_path(&archive)).unwrap();
    assert_says(&w.site.run(&["update"]), exit::OK, &["installed 3.0.0"]);
    assert!(!absent.exists(), "the link's target was created");
    assert_eq!(w.outside_listing().len(), 1, "{:?}", w.outside_listing());
}

/// Links planted in a package's folder, where continuum writes next:
/// - `versions/2.0.0` (the folder the next version is moved to) -> a folder outside: the link
///   is set aside and removed (not its target), the verified tree takes its place;
/// - `archives/` (where the verified archive is kept for deltas) -> a folder outside: nothing
///   is written there, the install still succeeds (the archive is not kept; the next update
///   downloads in full). Before this pass the archive was moved into the outside folder
///   (finding S5);
/// - `versions/` -> a folder outside: refused (exit 5, "not a folder"), site unchanged.
///
/// (`current` swapped for a link elsewhere: `continuum/tests/install.rs`
/// `reconcile_refuses_a_current_it_did_not_make`.)
#[test]
fn links_planted_in_the_package_folder_are_not_followed() {
    let w = world();
    let elsewhere = w.outside.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("keep.txt"), b"keep").unwrap();
    let before_outside = w.outside_listing();

    w.publish("2.0.0");
    symlink(&elsewhere, w.pkg().join("versions/2.0.0")).unwrap();
    fs::remove_dir_all(w.pkg().join("archives")).unwrap();
    symlink(&elsewhere, w.pkg().join("archives")).unwrap();
    assert_says(&w.site.run(&["update"]), exit::OK, &["installed 2.0.0"]);
    assert!(w.installed_file().contains("2.0.0 genuine"));
    let placed = fs::symlink_metadata(w.pkg().join("versions/2.0.0")).unwrap();
    assert!(
        placed.is_dir(),
        "versions/2.0.0 is the verified tree, not the link"
    );
    assert_eq!(
        w.outside_listing(),
        before_outside,
        "written outside the site"
    );

    // versions/ itself a link elsewhere.
    fs::remove_file(w.pkg().join("archives")).unwrap();
    w.publish("3.0.0");
    let real = w.site.root.join("versions-real");
    fs::rename(w.pkg().join("versions"), &real).unwrap();
    symlink(&elsewhere, w.pkg().join("versions")).unwrap();
    let before = w.site.snapshot_without_log();
    let out = w.site.run(&["update"]);
    assert_eq!(
        out.status.code(),
        Some(LOCAL),
        "{}",
        system_tests::output_text(&out)
    );
    assert!(w.site.snapshot_without_log() == before);
    assert_eq!(
        w.outside_listing(),
        before_outside,
        "written outside the site"
    );
}

/// Links planted at the site's own files, each pointing at a file outside:
/// - `continuum.toml.tmp` (the temporary name of every config save): `peers add` saves the
///   config without writing through it;
/// - `continuum.log`: the run's line is not appended to the target (the run itself succeeds,
///   the log error is reported on stderr);
/// - `update.lock`, dangling: the target is not created; the run is refused (exit 5) naming
///   the file.
///
/// Before this pass each was followed: the target overwritten with the config, appended to,
/// or created (finding S3).
#[test]
fn links_planted_at_the_sites_own_files_are_not_written_through() {
    let w = world();
    let victim = w.outside.path().join("victim");
    fs::write(&victim, b"precious\n").unwrap();
    let root = &w.site.root;

    symlink(&victim, root.join("continuum.toml.tmp")).unwrap();
    let key = keyggdrasil::keys::KeyPair::generate().public().to_hex();
    assert_says(
        &w.site
            .run(&["peers", "add", "--offline", "http://127.0.0.1:9", &key]),
        exit::OK,
        &[],
    );
    assert!(
        fs::read_to_string(root.join("continuum.toml"))
            .unwrap()
            .contains(&key)
    );
    assert_eq!(fs::read(&victim).unwrap(), b"precious\n");
    assert!(fs::symlink_metadata(root.join("continuum.toml.tmp")).is_err());
    assert_says(
        &w.site.run(&["peers", "remove", "http://127.0.0.1:9"]),
        exit::OK,
        &[],
    );

    let log = root.join("continuum.log");
    let _ = fs::remove_file(&log);
    symlink(&victim, &log).unwrap();
    let t = assert_says(&w.site.run(&["update"]), exit::OK, &[]);
    assert!(t.contains("could not append to the site log"), "{t}");
    assert_eq!(fs::read(&victim).unwrap(), b"precious\n");
    fs::remove_file(&log).unwrap();

    let absent = w.outside.path().join("lock-target");
    let lock = root.join("update.lock");
    let _ = fs::remove_file(&lock);
    symlink(&absent, &lock).unwrap();
    let before = w.site.snapshot();
    assert_says(&w.site.run(&["update"]), LOCAL, &["update.lock"]);
    assert!(!absent.exists(), "the lock's link target was created");
    assert!(w.site.snapshot() == before);
}

/// The archive attacks not yet tried against the real binary, each as a correctly signed and
/// logged release (so that only the archive checks stand between it and the site): a fifo and
/// a character device (Unix mode bits in the external attributes), `A.php` beside `a.php`, two
/// names for one local header (the zip form of a hard link and of overlapping entries), a
/// backslash path, and 10 001 entries. Each is refused with exit 3 and its reason, the site
/// unchanged; a genuine release after them installs. (Zip slip, symlinks, zip bombs, tampered
/// and endless archives: `tests/archive_attacks.rs`; every other name and header rule at the
/// extractor: `keyggdrasil/tests/archive/extract.rs` and `red_team_site_files.rs`.)
#[test]
fn hostile_archive_entries_are_refused_by_the_binary() {
    let w = world();
    fn opts() -> zip::write::SimpleFileOptions {
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .system(zip::System::Unix)
            .unix_permissions(0o644)
    }
    type Zip = zip::ZipWriter<Cursor<Vec<u8>>>;
    let craft = |version: &str, f: &dyn Fn(&mut Zip)| {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let manifest = Manifest::new("acme/hello", version, "a".repeat(40)).unwrap();
        zip.start_file(MANIFEST_NAME, opts()).unwrap();
        zip.write_all(&manifest.to_canonical_json()).unwrap();
        zip.start_file("plugin.php", opts()).unwrap();
        zip.write_all(format!("<?php // {version} hostile\n").as_bytes())
            .unwrap();
        f(&mut zip);
        zip.finish().unwrap().into_inner()
    };
    type Adder = Box<dyn Fn(&mut Zip)>;
    let special = |name: &'static str, mode: u32| -> Adder {
        Box::new(move |zip| {
            zip.start_file(name, opts().external_attributes(mode << 16))
                .unwrap();
        })
    };
    let cases: Vec<(&str, Adder, &str)> = vec![
        (
            "2.0.1",
            special("fifo.php", 0o010_644),
            "entry \"fifo.php\" is not a regular file or folder (unix mode 10644)",
        ),
        (
            "2.0.2",
            special("tty.php", 0o020_644),
            "entry \"tty.php\" is not a regular file or folder (unix mode 20644)",
        ),
        (
            "2.0.3",
            Box::new(|zip| {
                zip.start_file("A.php", opts()).unwrap();
                zip.start_file("a.php", opts()).unwrap();
            }),
            "entry \"a.php\" differs only in letter case from \"A.php\"",
        ),
        (
            "2.0.4",
            Box::new(|zip| zip.shallow_copy_file("plugin.php", "other.php").unwrap()),
            "the archive could not be extracted",
        ),
        (
            "2.0.5",
            Box::new(|zip| {
                zip.start_file("lib\\evil.php", opts()).unwrap();
            }),
            "name contains a backslash",
        ),
        (
            "2.0.6",
            Box::new(|zip| {
                for i in 0..10_000 {
                    zip.start_file(format!("f{i}"), opts()).unwrap();
                }
            }),
            "limit max_entries = 10000 exceeded",
        ),
    ];
    for (version, add, says) in cases {
        let bytes = craft(version, &*add);
        w.acme.publish(&w.channel, "hello", version, &bytes);
        w.accept_log_only();
        let t = w.site.assert_update_refused(
            exit::VERIFICATION,
            &[
                &format!("acme/hello {version}: the archive could not be extracted"),
                says,
            ],
        );
        assert!(
            w.installed_file().contains("1.0.0 genuine"),
            "{version}: {t}"
        );
        let staging = listing(&w.site.root.join("staging"));
        assert!(
            staging.iter().all(|(n, _)| !n.starts_with("tree-")),
            "{version}: extraction leftovers {staging:?}"
        );
    }
    w.publish("3.0.0");
    assert_says(&w.site.run(&["update"]), exit::OK, &["installed 3.0.0"]);
}
