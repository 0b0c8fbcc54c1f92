//! Installing releases: real archives, real signed releases from a real key state, served by a
//! real HTTP server on loopback that can misbehave (truncate, stall, send too much or other
//! bytes). Every failure case asserts that the installed files and the `installed` table are
//! exactly as before. The crash test kills a child process that installs, 100 times.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use continuum::config::{SitePaths, TransportConfig};
use continuum::db;
use continuum::install::{InstallError, install_release, reconcile, rollback};
use continuum::transport::Http;
use keyggdrasil::archive::{ArchiveError, ArchiveLimits, MANIFEST_NAME, Manifest, Rejection};
use keyggdrasil::entry::{Digest512, Entry, EntryBody, Event, GitCommit};
use keyggdrasil::filesig;
use keyggdrasil::keys::{KeyPair, Signature};
use keyggdrasil::limits::Limits;
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::os::archive::build_archive;
use keyggdrasil::state::{KeyState, VerifiedRelease};
use rusqlite::Connection;
use tempfile::TempDir;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const CHANNEL: &str = "plugins.example.org";

// ------------------------------------------------------------------------------------------
// A test HTTP server serving archives with chosen behaviour: the shared misbehaving server of
// the whole-system tests (`system_tests::front::Front`, which needs no binary), with a route
// per archive name.

mod server {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use system_tests::front::{Answer, Front, serve_range};

    /// What the server does for one archive name.
    #[derive(Clone, Debug)]
    pub enum Behavior {
        /// Serves the bytes, honouring `Range: bytes=N-`.
        Serve(Vec<u8>),
        /// First request: announces the full length, sends `after` bytes and drops the
        /// connection. Then behaves like `Serve`.
        TruncateOnce { bytes: Vec<u8>, after: usize },
        /// Announces the full length, sends `after` bytes, then sends nothing, forever.
        Stall { bytes: Vec<u8>, after: usize },
        /// Sends bytes forever (no length).
        Endless,
        /// Sends the bytes followed by `extra` more.
        Extra { bytes: Vec<u8>, extra: usize },
        /// Answers with this status and no body.
        Status(u16),
    }

    type Routes = Arc<Mutex<HashMap<String, Behavior>>>;

    pub struct Server {
        front: Front,
        routes: Routes,
    }

    impl Server {
        pub fn start() -> Self {
            let routes: Routes = Arc::default();
            let r = routes.clone();
            let front = Front::serve(move |req| {
                let Some(name) = req.path.strip_prefix("/a/") else {
                    return status(404);
                };
                let behavior = {
                    let mut routes = r.lock().expect("lock");
                    let found = routes.get(name).cloned();
                    if let Some(Behavior::TruncateOnce { bytes, .. }) = &found {
                        routes.insert(name.to_owned(), Behavior::Serve(bytes.clone()));
                    }
                    found
                };
                answer(behavior, req.range.as_deref())
            });
            Self { front, routes }
        }

        pub fn set(&self, name: &str, behavior: Behavior) {
            self.routes
                .lock()
                .expect("lock")
                .insert(name.to_owned(), behavior);
        }

        pub fn url(&self, name: &str) -> String {
            format!("{}/a/{name}", self.front.url)
        }

        /// The `Range` header of each request for `name`, in order.
        pub fn requests(&self, name: &str) -> Vec<Option<String>> {
            let path = format!("/a/{name}");
            self.front
                .requests
                .lock()
                .expect("lock")
                .iter()
                .filter(|r| r.path == path)
                .map(|r| r.range.clone())
                .collect()
        }
    }

    fn status(code: u16) -> Answer {
        Answer::Full {
            status: code,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn answer(behavior: Option<Behavior>, range: Option<&str>) -> Answer {
        match behavior {
            None => status(404),
            Some(Behavior::Serve(bytes)) => serve_range(&bytes, range),
            Some(Behavior::TruncateOnce { bytes, after }) => Answer::Cut {
                length: bytes.len() as u64,
                head: bytes[..after].to_vec(),
            },
            Some(Behavior::Stall { bytes, after }) => Answer::Stall {
                length: bytes.len() as u64,
                head: bytes[..after].to_vec(),
            },
            Some(Behavior::Endless) => Answer::Endless,
            Some(Behavior::Extra { bytes, extra }) => {
                let mut all = bytes;
                all.extend(std::iter::repeat_n(0x5a, extra));
                Answer::Full {
                    status: 200,
                    headers: Vec::new(),
                    body: all,
                }
            }
            Some(Behavior::Status(code)) => status(code),
        }
    }
}

use server::{Behavior, Server};

// ------------------------------------------------------------------------------------------
// Suppliers, releases and archives.

/// A supplier with a master and a signing key, its log entries and the key state they give.
struct Author {
    supplier: SupplierName,
    signing: KeyPair,
    entries: Vec<Entry>,
    state: KeyState,
}

impl Author {
    fn new(name: &str) -> Self {
        let supplier = SupplierName::parse(name).unwrap();
        let master = KeyPair::generate();
        let signing = KeyPair::generate();
        let mut author = Self {
            supplier: supplier.clone(),
            signing,
            entries: Vec::new(),
            state: KeyState::new(),
        };
        author.push(
            &master,
            Event::MasterKey {
                public_key: master.public(),
                derivation: None,
            },
        );
        let public_key = author.signing.public();
        author.push(
            &master,
            Event::SigningKey {
                public_key,
                derivation: None,
            },
        );
        author
    }

    fn push(&mut self, key: &KeyPair, event: Event) {
        let entry = Entry::sign(
            EntryBody::new(self.supplier.clone(), key.public(), event),
            key,
        )
        .unwrap();
        self.state.apply(&entry).expect("entry accepted");
        self.entries.push(entry);
    }

    /// Logs a release of `archive` with the given archive signature and commit.
    fn release_with(
        &mut self,
        package: &str,
        version: &str,
        archive: &[u8],
        signature: Signature,
        commit: &str,
    ) -> VerifiedRelease {
        let (size, digest) = filesig::archive_digest(archive).unwrap();
        let signing = KeyPair::from_seed(&self.signing.seed()).unwrap();
        self.push(
            &signing,
            Event::Release {
                package: PackageName::parse(package).unwrap(),
                version: Version::parse(version).unwrap(),
                size,
                digest: Digest512(digest),
                commit: GitCommit::parse(commit).unwrap(),
                signature,
                rollout: None,
            },
        );
        self.installable(package, version)
    }

    /// Logs a correctly signed release of `archive`.
    fn release(&mut self, package: &str, version: &str, archive: &[u8]) -> VerifiedRelease {
        let signature = filesig::sign(&self.signing, archive).unwrap();
        self.release_with(package, version, archive, signature, COMMIT)
    }

    fn installable(&self, package: &str, version: &str) -> VerifiedRelease {
        installable_from(&self.state, &self.supplier, package, version)
    }
}

fn installable_from(
    state: &KeyState,
    supplier: &SupplierName,
    package: &str,
    version: &str,
) -> VerifiedRelease {
    state
        .installable(
            supplier,
            &PackageName::parse(package).unwrap(),
            &Version::parse(version).unwrap(),
        )
        .expect("installable")
}

/// The source tree of a version: a few files at several depths, an executable, an empty
/// folder, and `files` extra files (to make extraction take a while).
fn source_tree(version: &str, files: usize) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, content: String, mode: u32| {
        let path = dir.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    };
    write(
        "plugin.php",
        format!("<?php echo 'hello {version}';\n"),
        0o644,
    );
    write(
        "src/A.php",
        format!("<?php class A {{}} // {version}\n"),
        0o644,
    );
    write("bin/run", format!("#!/bin/sh\necho {version}\n"), 0o755);
    if version.starts_with('1') {
        write("only-in-1.txt", "old\n".into(), 0o644);
    } else {
        write(
            "src/new/B.php",
            format!("<?php class B {{}} // {version}\n"),
            0o644,
        );
    }
    for i in 0..files {
        write(
            &format!("data/f{i:03}.txt"),
            format!("{version} {i}\n").repeat(50),
            0o644,
        );
    }
    fs::create_dir(dir.path().join("empty")).unwrap();
    dir
}

fn build(source: &Path, package: &str, version: &str, commit: &str) -> Vec<u8> {
    let manifest = Manifest::new(package, version, commit).unwrap();
    let mut out = Cursor::new(Vec::new());
    build_archive(source, &manifest, &mut out, &ArchiveLimits::default()).unwrap();
    out.into_inner()
}

/// A zip with a valid manifest for `acme/hello 1.0.0`, then whatever `f` adds.
fn craft(f: impl FnOnce(&mut zip::ZipWriter<Cursor<Vec<u8>>>)) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let manifest = Manifest::new("acme/hello", "1.0.0", COMMIT).unwrap();
    zip.start_file(MANIFEST_NAME, zip_options()).unwrap();
    zip.write_all(&manifest.to_canonical_json()).unwrap();
    f(&mut zip);
    zip.finish().unwrap().into_inner()
}

fn zip_options() -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .system(zip::System::Unix)
        .unix_permissions(0o644)
}

// ------------------------------------------------------------------------------------------
// Sites and what is on them.

struct Site {
    _dir: TempDir,
    paths: SitePaths,
    conn: Connection,
}

impl Site {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::at(dir)
    }

    fn at(dir: TempDir) -> Self {
        let paths = SitePaths::new(dir.path());
        let conn = db::open(&paths.db).unwrap();
        Self {
            _dir: dir,
            paths,
            conn,
        }
    }

    fn install(
        &self,
        server: &Server,
        name: &str,
        release: &VerifiedRelease,
    ) -> Result<db::Installed, InstallError> {
        self.install_from(&[server.url(name)], release)
    }

    fn install_from(
        &self,
        urls: &[String],
        release: &VerifiedRelease,
    ) -> Result<db::Installed, InstallError> {
        install_release(
            &self.paths,
            &self.conn,
            &http(),
            urls,
            release,
            CHANNEL,
            &Limits::default(),
            1_700_000_000,
        )
    }

    fn snapshot(&self) -> Snapshot {
        db::ensure_install_tables(&self.conn).unwrap();
        Snapshot {
            files: tree(&self.paths.packages),
            installed: db::installed(&self.conn).unwrap(),
            stored: db::stored_versions(&self.conn, "acme", "hello").unwrap(),
        }
    }

    fn pkg(&self) -> PathBuf {
        self.paths.packages.join("acme/hello")
    }

    fn current_target(&self) -> Option<PathBuf> {
        fs::read_link(self.pkg().join("current")).ok()
    }

    fn staging_names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.paths.staging)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// `current` points at `versions/<version>`, whose files equal `source`'s, and the table
    /// says so.
    fn assert_on(&self, version: &str, source: &Path, previous: Option<&str>) {
        assert_eq!(
            self.current_target(),
            Some(Path::new("versions").join(version)),
            "current link"
        );
        assert_eq!(
            tree(&self.pkg().join("versions").join(version)),
            tree(source),
            "files of {version}"
        );
        let row = db::installed_one(&self.conn, "acme", "hello")
            .unwrap()
            .expect("installed row");
        assert_eq!(row.version, version);
        assert_eq!(row.previous.as_deref(), previous);
        assert_eq!(row.channel, CHANNEL);
    }

    fn versions(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.pkg().join("versions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }
}

fn http() -> Http {
    Http::with_timeouts(
        &TransportConfig::default(),
        Duration::from_secs(5),
        Duration::from_secs(2),
    )
    .unwrap()
}

/// Everything a site has installed: files (with modes, link targets) and the table.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    files: BTreeMap<String, Node>,
    installed: Vec<db::Installed>,
    stored: Vec<db::StoredVersion>,
}

#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File { content: Vec<u8>, executable: bool },
    Link(PathBuf),
}

/// Every file, folder and link under `root`, by relative path (links not followed).
fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            let node = if meta.file_type().is_symlink() {
                Node::Link(fs::read_link(&path).unwrap())
            } else if meta.is_dir() {
                pending.push(path.clone());
                Node::Dir
            } else {
                Node::File {
                    content: fs::read(&path).unwrap(),
                    executable: meta.permissions().mode() & 0o111 != 0,
                }
            };
            out.insert(rel, node);
        }
    }
    out
}

/// A site with `acme/hello 1.0.0` installed, the server serving it as `v1`.
struct Fixture {
    server: Server,
    author: Author,
    site: Site,
    v1_source: TempDir,
}

impl Fixture {
    fn new() -> Self {
        let server = Server::start();
        let mut author = Author::new("acme");
        let v1_source = source_tree("1.0.0", 3);
        let v1 = build(v1_source.path(), "acme/hello", "1.0.0", COMMIT);
        let r1 = author.release("hello", "1.0.0", &v1);
        server.set("v1", Behavior::Serve(v1));
        let site = Site::new();
        site.install(&server, "v1", &r1).expect("install 1.0.0");
        Self {
            server,
            author,
            site,
            v1_source,
        }
    }

    /// Installing `release` from `name` fails; the site is exactly as before. Returns the error.
    fn fails(&self, name: &str, release: &VerifiedRelease) -> InstallError {
        let before = self.site.snapshot();
        let err = self
            .site
            .install(&self.server, name, release)
            .expect_err("install must fail");
        assert_eq!(
            self.site.snapshot(),
            before,
            "site changed by a failed install"
        );
        self.site.assert_on("1.0.0", self.v1_source.path(), None);
        assert!(
            !self
                .site
                .staging_names()
                .iter()
                .any(|n| n.starts_with("tree-")),
            "extraction leftovers in staging: {:?}",
            self.site.staging_names()
        );
        err
    }
}

fn download_path(site: &Site, release: &VerifiedRelease) -> PathBuf {
    site.paths
        .staging
        .join(format!("{}.zip", release.digest().to_hex()))
}

// ------------------------------------------------------------------------------------------
// Happy paths.

#[test]
fn install_upgrade_rollback_and_prune() {
    let server = Server::start();
    let mut author = Author::new("acme");
    let sources: Vec<(String, TempDir)> = ["1.0.0", "2.0.0", "3.0.0"]
        .iter()
        .map(|v| (v.to_string(), source_tree(v, 2)))
        .collect();
    let mut releases = Vec::new();
    for (v, src) in &sources {
        let bytes = build(src.path(), "acme/hello", v, COMMIT);
        releases.push(author.release("hello", v, &bytes));
        server.set(v, Behavior::Serve(bytes));
    }
    let site = Site::new();

    // First install, from the second mirror: the first one is down.
    let urls = ["http://127.0.0.1:9/a/x".to_owned(), server.url("1.0.0")];
    let rec = site.install_from(&urls, &releases[0]).unwrap();
    assert_eq!(rec.version, "1.0.0");
    assert_eq!(rec.digest, releases[0].digest().to_hex());
    site.assert_on("1.0.0", sources[0].1.path(), None);
    assert_eq!(
        site.staging_names(),
        Vec::<String>::new(),
        "download removed"
    );

    // Installing it again does nothing, not even a request.
    let before = site.snapshot();
    assert_eq!(site.install(&server, "1.0.0", &releases[0]).unwrap(), rec);
    assert_eq!(site.snapshot(), before);
    assert_eq!(server.requests("1.0.0").len(), 1);

    // Upgrade: the previous version is kept.
    site.install(&server, "2.0.0", &releases[1]).unwrap();
    site.assert_on("2.0.0", sources[1].1.path(), Some("1.0.0"));
    assert_eq!(site.versions(), ["1.0.0", "2.0.0"]);

    // Another: the one before the previous is deleted.
    site.install(&server, "3.0.0", &releases[2]).unwrap();
    site.assert_on("3.0.0", sources[2].1.path(), Some("2.0.0"));
    assert_eq!(site.versions(), ["2.0.0", "3.0.0"]);

    // Rollback, and roll the rollback back.
    let acme = SupplierName::parse("acme").unwrap();
    let hello = PackageName::parse("hello").unwrap();
    let back = rollback(&site.paths, &site.conn, &acme, &hello).unwrap();
    assert_eq!(back.version, "2.0.0");
    assert_eq!(back.digest, releases[1].digest().to_hex());
    site.assert_on("2.0.0", sources[1].1.path(), Some("3.0.0"));
    assert_eq!(site.versions(), ["2.0.0", "3.0.0"]);
    rollback(&site.paths, &site.conn, &acme, &hello).unwrap();
    site.assert_on("3.0.0", sources[2].1.path(), Some("2.0.0"));

    // After a rollback, installing the newer version again replaces the kept copy with a
    // freshly verified one.
    rollback(&site.paths, &site.conn, &acme, &hello).unwrap();
    fs::write(
        site.pkg().join("versions/3.0.0/plugin.php"),
        "changed by hand",
    )
    .unwrap();
    site.install(&server, "3.0.0", &releases[2]).unwrap();
    site.assert_on("3.0.0", sources[2].1.path(), Some("2.0.0"));
    assert_eq!(site.versions(), ["2.0.0", "3.0.0"]);

    // Nothing to repair.
    let before = site.snapshot();
    reconcile(&site.paths, &site.conn).unwrap();
    assert_eq!(site.snapshot(), before);
}

#[test]
fn rollback_needs_an_installed_package_with_a_previous_version() {
    let f = Fixture::new();
    let acme = SupplierName::parse("acme").unwrap();
    let before = f.site.snapshot();
    let err = rollback(
        &f.site.paths,
        &f.site.conn,
        &acme,
        &PackageName::parse("hello").unwrap(),
    )
    .unwrap_err();
    assert!(matches!(err, InstallError::NoPrevious { .. }), "{err:?}");
    let err = rollback(
        &f.site.paths,
        &f.site.conn,
        &acme,
        &PackageName::parse("other").unwrap(),
    )
    .unwrap_err();
    assert!(matches!(err, InstallError::NotInstalled { .. }), "{err:?}");
    assert_eq!(f.site.snapshot(), before);
}

// ------------------------------------------------------------------------------------------
// The download does not match the log.

#[test]
fn tampered_archive_is_refused_deleted_and_not_resumed() {
    let mut f = Fixture::new();
    let src = source_tree("2.0.0", 3);
    let good = build(src.path(), "acme/hello", "2.0.0", COMMIT);
    let r2 = f.author.release("hello", "2.0.0", &good);
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 1;
    f.server.set("v2", Behavior::Serve(bad));

    let err = f.fails("v2", &r2);
    assert!(
        matches!(err, InstallError::DigestMismatch { .. }),
        "{err:?}"
    );
    assert!(err.is_verification());
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert!(
        !download_path(&f.site, &r2).exists(),
        "refused download kept"
    );

    // Another server with other bytes of the same size: refused the same way.
    let mut other = good.clone();
    other[10] ^= 0xff;
    f.server.set("v2", Behavior::Serve(other));
    assert!(matches!(
        f.fails("v2", &r2),
        InstallError::DigestMismatch { .. }
    ));

    // Once the mirror serves the real archive, a fresh download (not a resume) succeeds.
    f.server.set("v2", Behavior::Serve(good));
    f.site.install(&f.server, "v2", &r2).unwrap();
    f.site.assert_on("2.0.0", src.path(), Some("1.0.0"));
    assert_eq!(f.server.requests("v2").last().unwrap(), &None, "no Range");
}

#[test]
fn archive_signed_by_another_key_is_refused() {
    let mut f = Fixture::new();
    let src = source_tree("2.0.0", 3);
    let bytes = build(src.path(), "acme/hello", "2.0.0", COMMIT);
    // The entry is signed by the supplier's signing key, but the archive signature in it was
    // made by another key: the archive's digest matches, its signature does not.
    let stranger = KeyPair::generate();
    let signature = filesig::sign(&stranger, &bytes[..]).unwrap();
    let r2 = f
        .author
        .release_with("hello", "2.0.0", &bytes, signature, COMMIT);
    f.server.set("v2", Behavior::Serve(bytes));

    let err = f.fails("v2", &r2);
    assert!(matches!(err, InstallError::BadSignature { .. }), "{err:?}");
    assert!(err.is_verification());
    assert!(
        err.to_string().contains("signature does not verify"),
        "{err}"
    );
    assert!(!download_path(&f.site, &r2).exists());
}

#[test]
fn truncated_download_is_kept_and_resumed() {
    let mut f = Fixture::new();
    let src = source_tree("2.0.0", 3);
    let bytes = build(src.path(), "acme/hello", "2.0.0", COMMIT);
    let r2 = f.author.release("hello", "2.0.0", &bytes);
    let half = bytes.len() / 2;
    f.server.set(
        "v2",
        Behavior::TruncateOnce {
            bytes: bytes.clone(),
            after: half,
        },
    );

    let err = f.fails("v2", &r2);
    match &err {
        InstallError::Truncated {
            received, expected, ..
        } => {
            assert_eq!((*received, *expected), (half as u64, bytes.len() as u64));
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert!(err.is_unreachable() && !err.is_verification());
    assert_eq!(
        fs::read(download_path(&f.site, &r2)).unwrap(),
        bytes[..half],
        "partial download kept"
    );

    // The next attempt asks for the rest only, and completes.
    f.site.install(&f.server, "v2", &r2).unwrap();
    f.site.assert_on("2.0.0", src.path(), Some("1.0.0"));
    assert_eq!(
        f.server.requests("v2"),
        [None, Some(format!("bytes={half}-"))]
    );
    assert!(!download_path(&f.site, &r2).exists());
}

#[test]
fn stalled_download_times_out_and_is_kept() {
    let mut f = Fixture::new();
    let src = source_tree("2.0.0", 3);
    let bytes = build(src.path(), "acme/hello", "2.0.0", COMMIT);
    let r2 = f.author.release("hello", "2.0.0", &bytes);
    f.server.set(
        "v2",
        Behavior::Stall {
            bytes: bytes.clone(),
            after: 100,
        },
    );
    let started = Instant::now();
    let err = f.fails("v2", &r2);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(err, InstallError::Truncated { received: 100, .. }),
        "{err:?}"
    );
    assert!(err.is_unreachable());
}

#[test]
fn endless_or_longer_download_is_cut_at_the_logged_size() {
    let mut f = Fixture::new();
    let src = source_tree("2.0.0", 3);
    let bytes = build(src.path(), "acme/hello", "2.0.0", COMMIT);
    let r2 = f.author.release("hello", "2.0.0", &bytes);

    f.server.set("v2", Behavior::Endless);
    let err = f.fails("v2", &r2);
    assert!(
        matches!(&err, InstallError::TooLarge { limit, .. } if *limit == bytes.len() as u64),
        "{err:?}"
    );
    assert!(err.is_verification());
    assert!(
        !download_path(&f.site, &r2).exists(),
        "oversized download kept"
    );

    f.server.set(
        "v2",
        Behavior::Extra {
            bytes: bytes.clone(),
            extra: 1,
        },
    );
    let err = f.fails("v2", &r2);
    assert!(matches!(err, InstallError::TooLarge { .. }), "{err:?}");
    assert!(!download_path(&f.site, &r2).exists());

    // A mirror that is too large is not papered over by the next mirror.
    f.server.set("v2", Behavior::Endless);
    f.server.set("v2b", Behavior::Serve(bytes));
    let before = f.site.snapshot();
    let err = f
        .site
        .install_from(&[f.server.url("v2"), f.server.url("v2b")], &r2)
        .unwrap_err();
    assert!(matches!(err, InstallError::TooLarge { .. }), "{err:?}");
    assert!(f.server.requests("v2b").is_empty());
    assert_eq!(f.site.snapshot(), before);
}

#[test]
fn release_over_the_site_limit_is_not_downloaded() {
    let mut f = Fixture::new();
    let src = source_tree("2.0.0", 3);
    let bytes = build(src.path(), "acme/hello", "2.0.0", COMMIT);
    let r2 = f.author.release("hello", "2.0.0", &bytes);
    f.server.set("v2", Behavior::Serve(bytes.clone()));
    let limits = Limits {
        max_archive_bytes: bytes.len() as u64 - 1,
        ..Limits::default()
    };
    let before = f.site.snapshot();
    let err = install_release(
        &f.site.paths,
        &f.site.conn,
        &http(),
        &[f.server.url("v2")],
        &r2,
        CHANNEL,
        &limits,
        1,
    )
    .unwrap_err();
    assert!(
        matches!(err, InstallError::ReleaseTooLarge { .. }),
        "{err:?}"
    );
    assert!(f.server.requests("v2").is_empty());
    assert_eq!(f.site.snapshot(), before);
}

#[test]
fn unreachable_mirrors_are_reported() {
    let mut f = Fixture::new();
    let src = source_tree("2.0.0", 3);
    let bytes = build(src.path(), "acme/hello", "2.0.0", COMMIT);
    let r2 = f.author.release("hello", "2.0.0", &bytes);
    f.server.set("gone", Behavior::Status(404));
    f.server.set("broken", Behavior::Status(500));
    let before = f.site.snapshot();
    let urls = [
        "http://127.0.0.1:9/a/v2".to_owned(),
        f.server.url("gone"),
        f.server.url("broken"),
    ];
    let err = f.site.install_from(&urls, &r2).unwrap_err();
    match &err {
        InstallError::Unreachable { errors, .. } => {
            assert_eq!(errors.len(), 3, "{errors:?}");
            assert!(
                errors[1].contains("404") && errors[2].contains("500"),
                "{errors:?}"
            );
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(err.is_unreachable());
    assert_eq!(f.site.snapshot(), before);
    let err = f.site.install_from(&[], &r2).unwrap_err();
    assert!(matches!(err, InstallError::Unreachable { .. }), "{err:?}");
}

// ------------------------------------------------------------------------------------------
// The archive is signed and logged, but unsafe or not what the log says.

fn rejection_of(err: &InstallError) -> &Rejection {
    match err {
        InstallError::Archive {
            source: ArchiveError::Rejected(r),
            ..
        } => r,
        other => panic!("expected an archive rejection, got {other:?}"),
    }
}

/// Logs `bytes` as acme/hello `version`, serves it as `name`, and installs it: must fail.
fn hostile(f: &mut Fixture, name: &str, version: &str, bytes: Vec<u8>) -> InstallError {
    let release = f.author.release("hello", version, &bytes);
    f.server.set(name, Behavior::Serve(bytes));
    let err = f.fails(name, &release);
    assert!(err.is_verification(), "{err:?}");
    // A verified download that fails later is deleted too (it is complete and useless).
    assert!(!download_path(&f.site, &release).exists());
    err
}

#[test]
fn zip_slip_is_refused() {
    let mut f = Fixture::new();
    let bytes = craft(|zip| {
        zip.start_file("../../evil.php", zip_options()).unwrap();
        zip.write_all(b"<?php system($_GET['c']);").unwrap();
    });
    let err = hostile(&mut f, "slip", "2.0.0", bytes);
    assert!(
        matches!(rejection_of(&err), Rejection::InvalidName { .. }),
        "{err:?}"
    );
    assert!(!f.site.paths.root.join("evil.php").exists());
}

#[test]
fn symlink_in_archive_is_refused() {
    let mut f = Fixture::new();
    let bytes = craft(|zip| {
        zip.add_symlink("config.php", "/etc/passwd", zip_options())
            .unwrap();
    });
    let err = hostile(&mut f, "link", "2.0.0", bytes);
    assert!(
        matches!(rejection_of(&err), Rejection::Symlink { .. }),
        "{err:?}"
    );
}

#[test]
fn zip_bomb_is_refused() {
    let mut f = Fixture::new();
    let bytes = craft(|zip| {
        zip.start_file("bomb.bin", zip_options()).unwrap();
        zip.write_all(&vec![0u8; 8 << 20]).unwrap();
    });
    let err = hostile(&mut f, "bomb", "2.0.0", bytes);
    assert!(
        matches!(rejection_of(&err), Rejection::LimitExceeded { .. }),
        "{err:?}"
    );
    assert!(err.source().is_some());
}

#[test]
fn manifest_must_name_the_release() {
    let mut f = Fixture::new();
    let src = source_tree("2.0.0", 1);
    let other_commit = "fedcba9876543210fedcba9876543210fedcba98";
    for (name, version, manifest_package, manifest_version, commit, field) in [
        ("ver", "2.0.0", "acme/hello", "9.9.9", COMMIT, "version"),
        ("pkg", "2.0.1", "acme/other", "2.0.1", COMMIT, "package"),
        ("bare", "2.0.2", "hello", "2.0.2", COMMIT, "package"),
        (
            "commit",
            "2.0.3",
            "acme/hello",
            "2.0.3",
            other_commit,
            "git_commit",
        ),
    ] {
        let bytes = build(src.path(), manifest_package, manifest_version, commit);
        let err = hostile(&mut f, name, version, bytes);
        match &err {
            InstallError::ManifestMismatch { field: got, .. } => assert_eq!(*got, field),
            other => panic!("expected ManifestMismatch, got {other:?}"),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Local failures around the swap are undone.

/// Makes every write of `table` fail, as a full disk would.
fn break_table(conn: &Connection, table: &str) {
    conn.execute_batch(&format!(
        "CREATE TRIGGER fail_insert_{table} BEFORE INSERT ON {table}
           BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END;
         CREATE TRIGGER fail_update_{table} BEFORE UPDATE ON {table}
           BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END;"
    ))
    .unwrap();
}

fn repair_table(conn: &Connection, table: &str) {
    conn.execute_batch(&format!(
        "DROP TRIGGER fail_insert_{table}; DROP TRIGGER fail_update_{table};"
    ))
    .unwrap();
}

#[test]
fn failure_to_record_after_the_swap_swaps_back() {
    let mut f = Fixture::new();
    let src = source_tree("2.0.0", 1);
    let bytes = build(src.path(), "acme/hello", "2.0.0", COMMIT);
    let r2 = f.author.release("hello", "2.0.0", &bytes);
    f.server.set("v2", Behavior::Serve(bytes));

    // The `installed` row cannot be written: the swap to 2.0.0 is undone.
    break_table(&f.site.conn, "installed");
    let err = f.fails("v2", &r2);
    assert!(matches!(err, InstallError::Db(_)), "{err:?}");
    repair_table(&f.site.conn, "installed");

    // The version record cannot be written (before the swap): undone too.
    db::ensure_install_tables(&f.site.conn).unwrap();
    break_table(&f.site.conn, "stored_versions");
    let err = f.fails("v2", &r2);
    assert!(matches!(err, InstallError::Db(_)), "{err:?}");
    repair_table(&f.site.conn, "stored_versions");

    f.site.install(&f.server, "v2", &r2).unwrap();
    f.site.assert_on("2.0.0", src.path(), Some("1.0.0"));

    // A rollback that cannot be recorded swaps back to where it started.
    let before = f.site.snapshot();
    break_table(&f.site.conn, "installed");
    let err = rollback(
        &f.site.paths,
        &f.site.conn,
        &SupplierName::parse("acme").unwrap(),
        &PackageName::parse("hello").unwrap(),
    )
    .unwrap_err();
    assert!(matches!(err, InstallError::Db(_)), "{err:?}");
    assert_eq!(f.site.snapshot(), before);
}

// ------------------------------------------------------------------------------------------
// Repair.

#[test]
fn reconcile_follows_the_current_link() {
    let mut f = Fixture::new();
    let src = source_tree("2.0.0", 1);
    let bytes = build(src.path(), "acme/hello", "2.0.0", COMMIT);
    let r2 = f.author.release("hello", "2.0.0", &bytes);
    f.server.set("v2", Behavior::Serve(bytes));
    f.site.install(&f.server, "v2", &r2).unwrap();
    let site = &f.site;
    let pkg = site.pkg();

    // A rollback that stopped after its swap: the link says 1.0.0, the table 2.0.0.
    fs::remove_file(pkg.join("current")).unwrap();
    std::os::unix::fs::symlink("versions/1.0.0", pkg.join("current")).unwrap();
    // Leftovers of interrupted runs.
    std::os::unix::fs::symlink("versions/2.0.0", pkg.join(".current.new")).unwrap();
    fs::create_dir_all(site.paths.staging.join("tree-0123/src")).unwrap();
    fs::write(site.paths.staging.join("tree-0123/src/x"), "half").unwrap();
    fs::create_dir_all(site.paths.staging.join("trash-77")).unwrap();
    fs::write(site.paths.staging.join("0badc0de.zip"), "partial").unwrap();

    reconcile(&site.paths, &site.conn).unwrap();
    site.assert_on("1.0.0", f.v1_source.path(), Some("2.0.0"));
    let row = db::installed_one(&site.conn, "acme", "hello")
        .unwrap()
        .unwrap();
    assert_eq!(
        row.digest,
        f.author.installable("hello", "1.0.0").digest().to_hex()
    );
    assert!(!pkg.join(".current.new").exists());
    assert_eq!(
        site.staging_names(),
        ["0badc0de.zip"],
        "partial download kept"
    );

    // The record of a package whose files are gone is removed.
    fs::remove_dir_all(site.paths.packages.join("acme")).unwrap();
    reconcile(&site.paths, &site.conn).unwrap();
    assert_eq!(db::installed(&site.conn).unwrap(), vec![]);
}

#[test]
fn reconcile_removes_an_install_that_stopped_before_its_swap() {
    let server = Server::start();
    let mut author = Author::new("acme");
    let src = source_tree("1.0.0", 1);
    let bytes = build(src.path(), "acme/hello", "1.0.0", COMMIT);
    let r1 = author.release("hello", "1.0.0", &bytes);
    server.set("v1", Behavior::Serve(bytes));
    let site = Site::new();
    site.install(&server, "v1", &r1).unwrap();
    // Take the link away: as if the first install had stopped just before its swap.
    fs::remove_file(site.pkg().join("current")).unwrap();
    reconcile(&site.paths, &site.conn).unwrap();
    assert_eq!(tree(&site.paths.packages), BTreeMap::new());
    assert_eq!(db::installed(&site.conn).unwrap(), vec![]);
    // And installing again works.
    site.install(&server, "v1", &r1).unwrap();
    site.assert_on("1.0.0", src.path(), None);
}

#[test]
fn reconcile_refuses_a_current_it_did_not_make() {
    let f = Fixture::new();
    let pkg = f.site.pkg();
    fs::remove_file(pkg.join("current")).unwrap();
    std::os::unix::fs::symlink("/etc", pkg.join("current")).unwrap();
    let before = f.site.snapshot();
    let err = reconcile(&f.site.paths, &f.site.conn).unwrap_err();
    assert!(matches!(err, InstallError::Corrupt { .. }), "{err:?}");
    assert_eq!(f.site.snapshot(), before);
}

// ------------------------------------------------------------------------------------------
// Crash test: kill -9 at random points of an install, 100 times.

const CHILD_SITE: &str = "CONTINUUM_TEST_CRASH_SITE";
const CHILD_URL: &str = "CONTINUUM_TEST_CRASH_URL";
const CHILD_LOG: &str = "CONTINUUM_TEST_CRASH_LOG";

/// Run by the crash test in a child process (does nothing otherwise): replays the log, then
/// installs acme/hello 2.0.0 into the given site.
#[test]
fn crash_child() {
    let (Ok(site), Ok(url), Ok(log)) = (
        std::env::var(CHILD_SITE),
        std::env::var(CHILD_URL),
        std::env::var(CHILD_LOG),
    ) else {
        return;
    };
    let mut state = KeyState::new();
    for line in fs::read_to_string(log).unwrap().lines() {
        state
            .apply(&Entry::parse(&hex::decode(line).unwrap()).unwrap())
            .unwrap();
    }
    let release = installable_from(
        &state,
        &SupplierName::parse("acme").unwrap(),
        "hello",
        "2.0.0",
    );
    let paths = SitePaths::new(Path::new(&site));
    let conn = db::open(&paths.db).unwrap();
    install_release(
        &paths,
        &conn,
        &http(),
        &[url],
        &release,
        CHANNEL,
        &Limits::default(),
        1_800_000_000,
    )
    .unwrap();
}

/// SplitMix64: a seeded sequence, so a failing trial can be replayed.
struct Seq(u64);
impl Seq {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Starts the child that installs 2.0.0 into `site`.
fn spawn_child(site: &Path, url: &str, log: &Path) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_SITE, site)
        .env(CHILD_URL, url)
        .env(CHILD_LOG, log)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn kill_during_install_leaves_old_or_new_version() {
    const TRIALS: usize = 100;
    let started = Instant::now();
    let server = Server::start();
    let mut author = Author::new("acme");
    let v1_src = source_tree("1.0.0", 4);
    let v2_src = source_tree("2.0.0", 4);
    let v1 = build(v1_src.path(), "acme/hello", "1.0.0", COMMIT);
    let v2 = build(v2_src.path(), "acme/hello", "2.0.0", COMMIT);
    let r1 = author.release("hello", "1.0.0", &v1);
    let r2 = author.release("hello", "2.0.0", &v2);
    server.set("v1", Behavior::Serve(v1));
    server.set("v2", Behavior::Serve(v2));
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("log.hex");
    let lines: Vec<String> = author
        .entries
        .iter()
        .map(|e| hex::encode(e.as_bytes()))
        .collect();
    fs::write(&log, lines.join("\n")).unwrap();

    // A site on 1.0.0, copied for every trial.
    let template = work.path().join("template");
    {
        let site = Site::at(tempfile::tempdir().unwrap());
        site.install(&server, "v1", &r1).unwrap();
        system_tests::copy_tree(&site.paths.root, &template);
    }

    // How long an uninterrupted child takes: the kills are spread over that window. Measured
    // again every 10 trials (the median of the last three runs), since the machine's load
    // changes.
    let mut runs: Vec<Duration> = Vec::new();
    let mut measure = |i: usize| {
        let calibration = work.path().join(format!("calibration-{i}"));
        system_tests::copy_tree(&template, &calibration);
        let t0 = Instant::now();
        let status = spawn_child(&calibration, &server.url("v2"), &log)
            .wait()
            .unwrap();
        assert!(status.success(), "the child cannot install 2.0.0");
        runs.push(t0.elapsed());
        fs::remove_dir_all(&calibration).unwrap();
        let mut last: Vec<Duration> = runs.iter().rev().take(3).copied().collect();
        last.sort();
        last[last.len() / 2]
    };
    measure(0);
    measure(1);
    let mut window = measure(2);

    let mut seq = Seq(0x5eed_0001);
    let (mut old, mut new, mut finished, mut repaired, mut unused_new) = (0, 0, 0, 0, 0);
    for trial in 0..TRIALS {
        if trial % 10 == 9 {
            window = measure(trial + 3);
        }
        let root = work.path().join(format!("site-{trial}"));
        system_tests::copy_tree(&template, &root);
        let paths = SitePaths::new(&root);
        let delay = Duration::from_micros(seq.next() % (window.as_micros() as u64 * 12 / 10 + 1));
        let mut child = spawn_child(&root, &server.url("v2"), &log);
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        if child.wait().unwrap().success() {
            finished += 1;
        }

        // Old or new, never a mix: `current` names a complete version.
        let link = fs::read_link(paths.packages.join("acme/hello/current"))
            .unwrap_or_else(|e| panic!("trial {trial}: no current link: {e}"));
        let on_new = match link.to_str().unwrap() {
            "versions/1.0.0" => false,
            "versions/2.0.0" => true,
            other => panic!("trial {trial}: current -> {other}"),
        };
        let (version, src, digest) = if on_new {
            new += 1;
            ("2.0.0", &v2_src, r2.digest())
        } else {
            old += 1;
            if paths.packages.join("acme/hello/versions/2.0.0").exists() {
                unused_new += 1;
            }
            ("1.0.0", &v1_src, r1.digest())
        };
        assert_eq!(
            tree(&paths.packages.join("acme/hello/versions").join(version)),
            tree(src.path()),
            "trial {trial} (delay {delay:?}): files of {version}"
        );

        // The next run repairs the record, then completes the install.
        let site = Site {
            _dir: tempfile::tempdir().unwrap(),
            paths,
            conn: db::open(&root.join("site.db")).unwrap(),
        };
        let recorded = db::installed_one(&site.conn, "acme", "hello")
            .unwrap()
            .unwrap();
        if recorded.version != version {
            repaired += 1;
        }
        reconcile(&site.paths, &site.conn).unwrap();
        let row = db::installed_one(&site.conn, "acme", "hello")
            .unwrap()
            .unwrap();
        assert_eq!(
            row.version, version,
            "trial {trial}: record after reconcile"
        );
        assert_eq!(row.digest, digest.to_hex());
        assert!(
            !site
                .staging_names()
                .iter()
                .any(|n| n.starts_with("tree-") || n.starts_with("trash-")),
            "trial {trial}: staging leftovers {:?}",
            site.staging_names()
        );
        site.install(&server, "v2", &r2)
            .unwrap_or_else(|e| panic!("trial {trial}: install after the crash: {e}"));
        site.assert_on("2.0.0", v2_src.path(), Some("1.0.0"));
        assert_eq!(site.versions(), ["1.0.0", "2.0.0"]);
        fs::remove_dir_all(&root).unwrap();
    }
    eprintln!(
        "crash test: {TRIALS} kills in {:?} (uninterrupted child runs: {runs:?}): {old} left on \
         1.0.0 ({unused_new} of them with 2.0.0 extracted but not swapped in), {new} on 2.0.0 \
         ({repaired} killed between swap and record, {finished} finished)",
        started.elapsed()
    );
    assert!(old > 0 && new > 0, "the kills did not cover the install");
    assert!(started.elapsed() < Duration::from_secs(60));
}
