//! Delta updates with the real binaries (issue 18; docs/deltas.md): the channel makes a patch
//! from 1.0.0's archive to 1.0.1's when 1.0.1's archive is uploaded; a site on 1.0.0 updates by
//! downloading the patch, not the archive. Then a lying front serves hostile patches (wrong
//! output, oversized output, a patch for another base, garbage, an oversized patch, none) and
//! each time the site falls back to the full archive in the same run, installs the real 1.0.1
//! (exit 0), and never extracts what the patch rebuilt unless it passed the archive check.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use keyggdrasil::delta;
use system_tests::front::{Answer, Front};
use system_tests::{Channel, Site, Supplier, assert_says, bin, exit};

/// A plugin tree whose archive is about 150 KiB (20 source files, one 94 KiB binary asset;
/// over `delta::MIN_TARGET_BYTES`) whose `plugin.php`
/// names the version and `marker`: two versions differ in that one file (and the manifest).
fn archive(version: &str, marker: &str) -> Vec<u8> {
    let src = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        src.path().join("plugin.php"),
        format!("<?php // acme/hello {version} {marker}\n"),
    )
    .expect("write");
    std::fs::create_dir_all(src.path().join("lib")).expect("mkdir");
    let mut x: u64 = 0x1234_5678;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..20 {
        let mut text = String::from("<?php\n");
        while text.len() < 5000 {
            text.push_str(&format!(
                "function f{}() {{ return {}; }}\n",
                next() % 997,
                next() % 1_000_003
            ));
        }
        std::fs::write(src.path().join(format!("lib/m{i}.php")), text).expect("write");
    }
    let blob: Vec<u8> = (0..12_000).flat_map(|_| next().to_le_bytes()).collect();
    std::fs::write(src.path().join("lib/logo.bin"), blob).expect("write");
    let manifest = keyggdrasil::archive::Manifest::new("acme/hello", version, "a".repeat(40))
        .expect("manifest");
    let mut out = std::io::Cursor::new(Vec::new());
    keyggdrasil::os::archive::build_archive(
        src.path(),
        &manifest,
        &mut out,
        &keyggdrasil::archive::ArchiveLimits::default(),
    )
    .expect("build archive");
    out.into_inner()
}

fn digest(bytes: &[u8]) -> [u8; 64] {
    keyggdrasil::filesig::archive_digest(bytes)
        .expect("digest")
        .1
}

/// A channel with acme/hello 1.0.0 and 1.0.1 (a one-file change), the patch between them made,
/// and a site on 1.0.0 (no peers) whose mirror is a front before the channel.
struct World {
    channel: Channel,
    acme: Supplier,
    site: Site,
    old: Vec<u8>,
    new: Vec<u8>,
    /// `/v1/patches/<old>/<new>`.
    patch_path: String,
}

fn world() -> World {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    let old = archive("1.0.0", "genuine");
    acme.publish(&channel, "hello", "1.0.0", &old);
    let site = Site::init_installing(&channel, "acme/hello", "1.0.0");
    let new = archive("1.0.1", "genuine");
    assert!(
        new.len() as u64 >= delta::MIN_TARGET_BYTES,
        "{} bytes",
        new.len()
    );
    acme.publish(&channel, "hello", "1.0.1", &new);
    let patch_path = format!(
        "/v1/patches/{}/{}",
        hex::encode(digest(&old)),
        hex::encode(digest(&new))
    );
    wait_for_patch(&channel, &patch_path);
    World {
        channel,
        acme,
        site,
        old,
        new,
        patch_path,
    }
}

/// The channel makes patches off the upload's path: waits (at most 60 s) for `path`.
fn wait_for_patch(channel: &Channel, path: &str) {
    let started = Instant::now();
    loop {
        let got = system_tests::agent()
            .get(&channel.url(path))
            .call()
            .map(|r| r.status().as_u16());
        if matches!(got, Ok(200)) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the channel made no patch {path}: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl World {
    /// `continuum update` with info-level logs (the line that reports a delta is info).
    fn update(&self) -> Output {
        Command::new(bin("continuum"))
            .arg("--dir")
            .arg(&self.site.root)
            .arg("update")
            .env("RUST_LOG", "info")
            .output()
            .expect("run continuum")
    }

    fn installed_file(&self) -> String {
        std::fs::read_to_string(
            self.site
                .root
                .join("packages/acme/hello/current/plugin.php"),
        )
        .unwrap_or_default()
    }

    fn kept_archive(&self, archive: &[u8]) -> PathBuf {
        self.site.root.join(format!(
            "packages/acme/hello/archives/{}.zip",
            hex::encode(digest(archive))
        ))
    }

    fn patch_bytes(&self) -> Vec<u8> {
        let mut body = Vec::new();
        std::io::Read::read_to_end(
            &mut system_tests::agent()
                .get(&self.channel.url(&self.patch_path))
                .call()
                .expect("get patch")
                .into_body()
                .into_reader(),
            &mut body,
        )
        .expect("read patch");
        body
    }

    /// Serves `patch` (with `status`) for every patch request, passes everything else to the
    /// channel, and runs an update: it must fall back to the full archive and install the
    /// real 1.0.1. Returns the update's output.
    fn falls_back(&self, status: u16, patch: Vec<u8>, says: &[&str]) -> String {
        self.falls_back_asking(true, status, patch, says)
    }

    /// [`Self::falls_back`]; with `asks` false, the site must not even ask for the patch.
    fn falls_back_asking(&self, asks: bool, status: u16, patch: Vec<u8>, says: &[&str]) -> String {
        let front = Front::start(&self.channel.base, move |path| {
            if path.starts_with("/v1/patches/") {
                Answer::Body {
                    status,
                    content_type: "application/octet-stream".into(),
                    body: patch.clone(),
                }
            } else {
                Answer::Pass
            }
        });
        self.site.set_mirror(&front.url);
        let mut expected = vec![
            "no delta update from 1.0.0",
            "downloading the full archive",
            "installed 1.0.1",
        ];
        expected.extend_from_slice(says);
        let text = assert_says(&self.update(), exit::OK, &expected);
        assert!(!text.contains("updated by a delta patch"), "{text}");
        let seen = front.seen.lock().unwrap().clone();
        let patch_at = seen.iter().position(|r| r.contains(&self.patch_path));
        let archive_at = seen
            .iter()
            .position(|r| r.contains("/v1/archives/acme/hello/1.0.1"));
        if asks {
            assert!(
                matches!((patch_at, archive_at), (Some(p), Some(a)) if p < a),
                "the patch first, then the full archive: {seen:?}"
            );
        } else {
            assert!(
                patch_at.is_none() && archive_at.is_some(),
                "only the full archive: {seen:?}"
            );
        }
        // What is installed is the logged 1.0.1, nothing the patch made.
        assert!(self.installed_file().contains("1.0.1 genuine"), "{text}");
        assert!(!self.installed_file().contains("hostile"), "{text}");
        assert_eq!(
            self.site.installed_version("acme", "hello").as_deref(),
            Some("1.0.1")
        );
        assert!(self.kept_archive(&self.new).exists());
        assert_eq!(
            std::fs::read(self.kept_archive(&self.new)).unwrap(),
            self.new
        );
        let staging: Vec<_> = std::fs::read_dir(self.site.root.join("staging"))
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(staging.is_empty(), "staging leftovers: {staging:?}");
        text
    }
}

#[test]
fn a_one_file_change_updates_by_patch() {
    let w = world();
    let patch = w.patch_bytes();
    assert!(
        patch.len() * 10 <= w.new.len(),
        "patch of {} bytes for an archive of {}",
        patch.len(),
        w.new.len()
    );
    // Published in the static copy too, immutable, by both digests.
    let published = w
        .channel
        .public_dir()
        .join(delta::static_path(&digest(&w.old), &digest(&w.new)));
    assert_eq!(std::fs::read(&published).expect("static patch"), patch);
    // The API: malformed names are refused, an unknown pair is not found.
    let status = |path: &str| match system_tests::agent().get(&w.channel.url(path)).call() {
        Ok(r) => r.status().as_u16(),
        Err(e) => panic!("{path}: {e}"),
    };
    assert_eq!(status("/v1/patches/00/11"), 400);
    let unknown = format!(
        "/v1/patches/{}/{}",
        "ab".repeat(64),
        hex::encode(digest(&w.new))
    );
    assert_eq!(status(&unknown), 404);

    let front = Front::start(&w.channel.base, |_| Answer::Pass);
    w.site.set_mirror(&front.url);
    let text = assert_says(
        &w.update(),
        exit::OK,
        &[
            "installed 1.0.1",
            &format!(
                "updated by a delta patch of {} bytes from {}{} instead of the {}-byte archive",
                patch.len(),
                front.url,
                w.patch_path,
                w.new.len()
            ),
        ],
    );
    let seen = front.seen.lock().unwrap().clone();
    assert!(seen.iter().any(|r| r.contains(&w.patch_path)), "{seen:?}");
    assert!(
        !seen.iter().any(|r| r.contains("/v1/archives/")),
        "the full archive was downloaded too: {seen:?}\n{text}"
    );
    assert!(w.installed_file().contains("1.0.1 genuine"));
    // Both kept archives (current and previous) are there, byte for byte.
    assert_eq!(std::fs::read(w.kept_archive(&w.new)).unwrap(), w.new);
    assert_eq!(std::fs::read(w.kept_archive(&w.old)).unwrap(), w.old);
    // Rolling back and forth keeps them; nothing is downloaded for a rollback.
    assert_says(&w.site.run(&["rollback", "acme/hello"]), exit::OK, &[]);
    assert!(w.kept_archive(&w.new).exists() && w.kept_archive(&w.old).exists());
}

#[test]
fn with_deltas_off_the_full_archive_is_downloaded() {
    let w = world();
    w.site.set_option("transport", "deltas", false);
    let front = Front::start(&w.channel.base, |_| Answer::Pass);
    w.site.set_mirror(&front.url);
    assert_says(&w.update(), exit::OK, &["installed 1.0.1"]);
    let seen = front.seen.lock().unwrap().clone();
    assert!(!seen.iter().any(|r| r.contains("/v1/patches/")), "{seen:?}");
    assert!(
        seen.iter()
            .any(|r| r.contains("/v1/archives/acme/hello/1.0.1"))
    );
}

#[test]
fn a_patch_rebuilding_other_bytes_falls_back() {
    let w = world();
    // Decodes cleanly against the right base, to the logged size: only the archive check
    // (digest) tells; the rebuilt (a valid zip, "hostile") must never be extracted.
    let mut other = archive("1.0.1", "hostile");
    other.resize(w.new.len(), 0);
    let patch = delta::make_patch(&w.old, &other).unwrap();
    w.falls_back(200, patch, &["was refused", "archive digest mismatch"]);
}

#[test]
fn a_patch_rebuilding_more_than_the_logged_size_falls_back() {
    let w = world();
    let mut longer = w.new.clone();
    longer.extend_from_slice(&[7u8; 5000]);
    let patch = delta::make_patch(&w.old, &longer).unwrap();
    w.falls_back(
        200,
        patch,
        &[&format!(
            "rebuilds more than the logged {} bytes",
            w.new.len()
        )],
    );
}

#[test]
fn a_patch_for_another_base_falls_back() {
    let w = world();
    let other_base = archive("0.9.0", "other");
    let patch = delta::make_patch(&other_base, &w.new).unwrap();
    w.falls_back(200, patch, &["was refused"]);
}

#[test]
fn a_garbage_patch_falls_back() {
    let w = world();
    w.falls_back(200, vec![0x28; 3000], &["the patch does not decode"]);
}

#[test]
fn an_oversized_patch_is_not_read_and_falls_back() {
    let w = world();
    let limit = delta::max_patch_bytes(w.new.len() as u64) as usize;
    w.falls_back(
        200,
        vec![0u8; limit + 1],
        &[&format!(
            "a patch over {limit} bytes (half the archive); not used"
        )],
    );
}

#[test]
fn no_patch_falls_back() {
    let w = world();
    w.falls_back(404, b"{}".to_vec(), &["no patch", "HTTP status 404"]);
}

#[test]
fn a_damaged_kept_base_is_deleted_and_falls_back() {
    let w = world();
    let kept = w.kept_archive(&w.old);
    let mut bytes = std::fs::read(&kept).expect("kept archive of 1.0.0");
    bytes[100] ^= 1;
    std::fs::write(&kept, bytes).unwrap();
    // The base is checked before any patch is fetched.
    let patch = w.patch_bytes();
    w.falls_back_asking(
        false,
        200,
        patch,
        &["does not match the installed version's digest; it was deleted"],
    );
    assert!(!kept.exists());
}

#[test]
fn the_channel_makes_patches_from_the_two_previous_versions() {
    let w = world();
    let v102 = archive("1.0.2", "genuine");
    w.acme.publish(&w.channel, "hello", "1.0.2", &v102);
    let path = |from: &[u8], to: &[u8]| {
        format!(
            "/v1/patches/{}/{}",
            hex::encode(digest(from)),
            hex::encode(digest(to))
        )
    };
    wait_for_patch(&w.channel, &path(&w.new, &v102));
    wait_for_patch(&w.channel, &path(&w.old, &v102));
    let v103 = archive("1.0.3", "genuine");
    w.acme.publish(&w.channel, "hello", "1.0.3", &v103);
    wait_for_patch(&w.channel, &path(&v102, &v103));
    wait_for_patch(&w.channel, &path(&w.new, &v103));
    // Only the two newest earlier versions: none from 1.0.0 to 1.0.3.
    let status = system_tests::agent()
        .get(&w.channel.url(&path(&w.old, &v103)))
        .call()
        .map(|r| r.status().as_u16());
    assert!(matches!(status, Ok(404)), "{status:?}");
    // A site two versions behind (on 1.0.1, skipping 1.0.2) updates by patch too.
    let front = Front::start(&w.channel.base, |_| Answer::Pass);
    w.site.set_mirror(&front.url);
    w.site.set_policy("=1.0.1");
    assert_says(
        &w.update(),
        exit::OK,
        &["installed 1.0.1", "updated by a delta patch"],
    );
    w.site.set_policy("all");
    assert_says(
        &w.update(),
        exit::OK,
        &["installed 1.0.3", "updated by a delta patch"],
    );
    let seen = front.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|r| r.contains(&path(&w.new, &v103))),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|r| r.contains("/v1/archives/")),
        "{seen:?}"
    );
}

#[test]
fn a_stored_base_damaged_on_the_channel_gets_no_patch() {
    let w = world();
    // The channel's stored copy of 1.0.0 changes on disk; 1.0.2 then gets a patch from 1.0.1
    // only (the patch thread checks each stored base against its logged digest).
    let stored = w
        .channel
        .data_dir()
        .join("archives")
        .join(hex::encode(digest(&w.old)));
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[200] ^= 1;
    std::fs::write(&stored, bytes).unwrap();
    let v102 = archive("1.0.2", "genuine");
    w.acme.publish(&w.channel, "hello", "1.0.2", &v102);
    let path = |from: &[u8]| {
        format!(
            "/v1/patches/{}/{}",
            hex::encode(digest(from)),
            hex::encode(digest(&v102))
        )
    };
    wait_for_patch(&w.channel, &path(&w.new));
    // The job is done once the patch from 1.0.1 exists (1.0.1 is the newer base, tried first);
    // give the thread a moment for the older base anyway before asserting it got none.
    std::thread::sleep(Duration::from_millis(500));
    let status = system_tests::agent()
        .get(&w.channel.url(&path(&w.old)))
        .call()
        .map(|r| r.status().as_u16());
    assert!(matches!(status, Ok(404)), "{status:?}");
}

#[test]
fn a_site_with_tile_mirrors_takes_the_patch_from_the_static_copy() {
    let w = world();
    // A static mirror of the channel's public/ folder (what nginx or a CDN would serve).
    let public = w.channel.public_dir();
    let tiles = Front::serve(move |r| {
        let path = r.path.trim_start_matches('/');
        match std::fs::read(public.join(path)) {
            Ok(body) if !path.contains("..") => {
                system_tests::front::serve_range(&body, r.range.as_deref())
            }
            _ => Answer::Body {
                status: 404,
                content_type: "text/plain".into(),
                body: b"not found".to_vec(),
            },
        }
    });
    let api = Front::start(&w.channel.base, |_| Answer::Pass);
    w.site.set_mirror(&api.url);
    let url = tiles.url.clone();
    w.site.edit_config(|cfg| {
        let channel = cfg["channel"].as_array_mut().unwrap()[0]
            .as_table_mut()
            .unwrap();
        channel.insert(
            "tile_mirrors".into(),
            toml::Value::Array(vec![toml::Value::String(url)]),
        );
    });
    let static_patch = format!("/{}", delta::static_path(&digest(&w.old), &digest(&w.new)));
    assert_says(
        &w.update(),
        exit::OK,
        &[
            "installed 1.0.1",
            &format!(
                "updated by a delta patch of {} bytes from {}{static_patch}",
                w.patch_bytes().len(),
                tiles.url
            ),
        ],
    );
    let from_tiles = tiles.seen.lock().unwrap().clone();
    assert!(
        from_tiles.iter().any(|r| r.ends_with(&static_patch)),
        "{from_tiles:?}"
    );
    assert!(
        !from_tiles.iter().any(|r| r.contains("/archive/")),
        "{from_tiles:?}"
    );
    let from_api = api.seen.lock().unwrap().clone();
    assert!(
        !from_api
            .iter()
            .any(|r| r.contains("/v1/patches/") || r.contains("/v1/archives/")),
        "{from_api:?}"
    );
}
