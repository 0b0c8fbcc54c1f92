//! Archive attacks against a real `continuum update`: the archive is tampered with, truncated,
//! endless, or (correctly logged and signed by the supplier's key, so that only the archive
//! checks stand between it and the site) a zip with a path escaping the package folder, a
//! symlink, or a zip bomb.
//!
//! Each test first lets the site accept the release entry with a policy that does not allow
//! the new version, then allows it: the refused run changes nothing at all — installed files,
//! accepted log and installed table ([`Site::snapshot`]) — and its message says what happened.

use std::io::{Cursor, Write};
use std::sync::atomic::Ordering;

use keyggdrasil::archive::{MANIFEST_NAME, Manifest};
use system_tests::front::{Answer, Front};
use system_tests::{Channel, Site, Supplier, assert_says, exit, plugin_archive};

const NEW: &str = "2.0.0";

fn installed_file(site: &Site) -> String {
    std::fs::read_to_string(site.root.join("packages/acme/hello/current/plugin.php"))
        .unwrap_or_default()
}

/// A channel with `acme/hello` 1.0.0, one notary, and a site (peering with it) on 1.0.0.
struct World {
    channel: Channel,
    acme: Supplier,
    _notary: Site,
    site: Site,
}

fn world() -> World {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    acme.publish_plugin(&channel, "hello", "1.0.0", "genuine");
    let mut notary = Site::init(&channel);
    notary.start_notary();
    let site = Site::init(&channel);
    site.add_peer(notary.notary_url.as_deref().unwrap(), &notary.notary_key);
    assert_says(
        &site.run(&["install", "acme/hello"]),
        exit::OK,
        &["installed 1.0.0"],
    );
    World {
        channel,
        acme,
        _notary: notary,
        site,
    }
}

impl World {
    /// Logs `bytes` as acme/hello 2.0.0 (a correct entry signed by acme's signing key, digest
    /// and signature over exactly these bytes) and uploads them to the channel.
    fn publish_hostile(&self, bytes: &[u8]) {
        self.acme.publish(&self.channel, "hello", NEW, bytes);
    }

    /// The site accepts the new log entries without installing (policy `patch` does not
    /// allow 2.0.0), then may install 2.0.0 again (`all`).
    fn accept_log_only(&self) {
        self.site.set_policy("patch");
        let out = self.site.run(&["update"]);
        assert_says(&out, exit::OK, &["applied 1 new entries"]);
        assert!(installed_file(&self.site).contains("1.0.0 genuine"));
        self.site.set_policy("all");
    }

    /// The channel's stored file of `archive` (named by its BLAKE2b-512 digest).
    fn stored_archive(&self, archive: &[u8]) -> std::path::PathBuf {
        let (_, digest) = keyggdrasil::filesig::archive_digest(archive).unwrap();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let path = self.channel.data_dir().join("archives").join(hex);
        assert!(path.exists(), "{} is not on the channel", path.display());
        path
    }

    fn refused(&self, code: i32, says: &[&str]) -> String {
        let t = self.site.assert_update_refused(code, says);
        assert!(installed_file(&self.site).contains("1.0.0 genuine"), "{t}");
        assert_eq!(
            self.site.installed_version("acme", "hello").as_deref(),
            Some("1.0.0")
        );
        t
    }
}

/// A zip with a valid manifest for acme/hello 2.0.0 (the commit the harness logs), then
/// whatever `f` adds.
fn craft(f: impl FnOnce(&mut zip::ZipWriter<Cursor<Vec<u8>>>)) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let manifest = Manifest::new("acme/hello", NEW, "a".repeat(40)).unwrap();
    zip.start_file(MANIFEST_NAME, options()).unwrap();
    zip.write_all(&manifest.to_canonical_json()).unwrap();
    zip.start_file("plugin.php", options()).unwrap();
    zip.write_all(b"<?php // acme/hello 2.0.0 hostile\n")
        .unwrap();
    f(&mut zip);
    zip.finish().unwrap().into_inner()
}

fn options() -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .system(zip::System::Unix)
        .unix_permissions(0o644)
}

/// The control: the crafted zip without anything hostile installs, so the refusals below are
/// the hostile parts' alone.
#[test]
fn crafted_archive_without_anything_hostile_installs() {
    let w = world();
    w.publish_hostile(&craft(|_| {}));
    w.accept_log_only();
    assert_says(&w.site.run(&["update"]), exit::OK, &["installed 2.0.0"]);
    assert!(installed_file(&w.site).contains("2.0.0 hostile"));
}

/// The channel's disk (or a mirror) serves the archive with one byte changed, same length.
#[test]
fn tampered_archive_is_refused() {
    let w = world();
    let full = plugin_archive("acme/hello", NEW, "genuine");
    w.publish_hostile(&full);
    w.accept_log_only();
    let file = w.stored_archive(&full);
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&file, bytes).unwrap();
    w.refused(
        exit::VERIFICATION,
        &[
            "acme/hello 2.0.0",
            "archive digest mismatch",
            "the download was deleted",
            "the installed version is unchanged",
        ],
    );
}

/// The channel serves the first half of the archive and closes the connection: the download
/// is incomplete (exit 4: try again later) and kept; when the whole file is served again, the
/// next run resumes it and installs.
#[test]
fn truncated_archive_is_refused_then_resumed() {
    let w = world();
    let full = plugin_archive("acme/hello", NEW, "genuine");
    w.publish_hostile(&full);
    w.accept_log_only();
    let file = w.stored_archive(&full);
    let half = full.len() / 2;
    std::fs::write(&file, &full[..half]).unwrap();
    w.refused(
        exit::UNREACHABLE,
        &[
            &format!(
                "download incomplete, {half} of {} bytes (kept to resume)",
                full.len()
            ),
            &format!("connection closed after {half} of {} bytes", full.len()),
        ],
    );
    std::fs::write(&file, &full).unwrap();
    assert_says(&w.site.run(&["update"]), exit::OK, &["installed 2.0.0"]);
    assert!(installed_file(&w.site).contains("2.0.0 genuine"));
}

/// A mirror answers the archive request with a body that never ends. The site writes at most
/// the logged size (+1 byte to notice), deletes the download, and refuses (exit 3: a mirror
/// sending more than the log allows misbehaves).
#[test]
fn endless_archive_is_cut_at_the_logged_size() {
    let w = world();
    let full = plugin_archive("acme/hello", NEW, "genuine");
    w.publish_hostile(&full);
    w.accept_log_only();
    let front = Front::start(&w.channel.base, |path| {
        if path.starts_with("/v1/archives/") {
            Answer::Endless
        } else {
            Answer::Pass
        }
    });
    w.site.set_mirror(&front.url);
    w.refused(
        exit::VERIFICATION,
        &[&format!(
            "sent more than the {} bytes the log allows; the download was deleted",
            full.len()
        )],
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    let sent = front.sent.load(Ordering::SeqCst);
    assert!(
        sent < 64 << 20,
        "the front wrote {sent} bytes: the site kept reading far past the logged size"
    );
    let staging: Vec<_> = std::fs::read_dir(w.site.root.join("staging"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        staging
            .iter()
            .all(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) <= full.len() as u64),
        "a download larger than the logged size was kept: {staging:?}"
    );
}

/// A file named `../../evil.php`: extraction would write outside the package folder.
#[test]
fn zip_slip_is_refused() {
    let w = world();
    w.publish_hostile(&craft(|zip| {
        zip.start_file("../../evil.php", options()).unwrap();
        zip.write_all(b"<?php system($_GET['c']);").unwrap();
    }));
    w.accept_log_only();
    let t = w.refused(
        exit::VERIFICATION,
        &[
            "acme/hello 2.0.0: the archive could not be extracted",
            "entry \"../../evil.php\" has an invalid path: name has a '..' component",
        ],
    );
    let mut up = w.site.root.clone();
    for _ in 0..3 {
        assert!(!up.join("evil.php").exists(), "{t}");
        up.pop();
    }
}

/// A symlink to `/etc/passwd` in the archive.
#[test]
fn symlink_in_archive_is_refused() {
    let w = world();
    w.publish_hostile(&craft(|zip| {
        zip.add_symlink("config.php", "/etc/passwd", options())
            .unwrap();
    }));
    w.accept_log_only();
    w.refused(
        exit::VERIFICATION,
        &["the archive could not be extracted: entry \"config.php\" is a symbolic link"],
    );
}

/// 8 MiB of zeros deflated to a few KiB: over the compression ratio limit.
#[test]
fn zip_bomb_is_refused() {
    let w = world();
    let bytes = craft(|zip| {
        zip.start_file("bomb.bin", options()).unwrap();
        zip.write_all(&vec![0u8; 8 << 20]).unwrap();
    });
    assert!(bytes.len() < 64 << 10, "{} bytes", bytes.len());
    w.publish_hostile(&bytes);
    w.accept_log_only();
    w.refused(
        exit::VERIFICATION,
        &[
            "the archive could not be extracted: entry \"bomb.bin\"",
            "limit max_entry_ratio = 100 exceeded",
        ],
    );
}
