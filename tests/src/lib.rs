//! Whole-system test harness: real `channel-server`, `continuum` sites and notaries, each a
//! separate process on loopback, each in its own temporary folder.
//!
//! The binaries are found next to the test executable (`target/<profile>/`), where
//! `cargo test --workspace` builds them before running any test. Running this crate's tests
//! alone (`cargo test -p system-tests`) needs `cargo build --workspace --bins` first; the harness
//! says so if a binary is missing.
#![forbid(unsafe_code)]

pub mod front;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use keyggdrasil::entry::{Digest512, Entry, EntryBody, Event, GitCommit, Reason};
use keyggdrasil::keys::{KeyPair, PublicKey};
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{
    ChannelName, Envelope, Nonce, NotaryPayload, NotaryRequest, NotaryStatus, Signed,
    SubmitRequest, SubmitResponse,
};

/// Exit codes of `continuum` (see its `main.rs`).
pub mod exit {
    /// Up to date or updated.
    pub const OK: i32 = 0;
    /// `status`: something needs attention.
    pub const ATTENTION: i32 = 1;
    /// Verification failed: the channel, a mirror or the peers misbehaved.
    pub const VERIFICATION: i32 = 3;
    /// The channel, a mirror or enough peers could not be reached.
    pub const UNREACHABLE: i32 = 4;
    /// Another update is running.
    pub const BUSY: i32 = 6;
}

/// A process's stdout and stderr, as one text.
pub fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A process's exit code (-1 if it was killed by a signal).
pub fn exit_code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Asserts that `out` exited with `code` and says each of `says` (case-insensitive); returns
/// the text.
pub fn assert_says(out: &Output, code: i32, says: &[&str]) -> String {
    let t = output_text(out);
    assert_eq!(exit_code(out), code, "{t}");
    for s in says {
        assert!(
            t.to_lowercase().contains(&s.to_lowercase()),
            "output does not say {s:?}:\n{t}"
        );
    }
    t
}

/// The channel name every test channel uses.
pub const ORIGIN: &str = "test.channel";

/// Path of a workspace binary built next to the running test executable.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build --workspace --bins` first; \
         for benchmarks, `cargo build --release --workspace --bins`)",
        path.display()
    );
    path
}

/// An HTTP agent that does not turn 4xx/5xx into errors.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Spawns `cmd`, waits for its first stdout line `listening on http://ADDR`, returns the child
/// and the base URL, and keeps draining its stdout.
fn spawn_listening(mut cmd: Command) -> (Child, String) {
    let mut child = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("read first line");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    (child, base)
}

/// A running channel server.
pub struct Channel {
    _dir: tempfile::TempDir,
    /// Its config file.
    pub config: PathBuf,
    /// Its public key.
    pub key: PublicKey,
    /// Its base URL.
    pub base: String,
    child: Option<Child>,
}

impl Channel {
    /// Initialises and starts a channel with policy `open` and rate limits off.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("channel");
        let out = Command::new(bin("channel-server"))
            .args(["init", "--dir"])
            .arg(&data)
            .args([
                "--name",
                ORIGIN,
                "--policy",
                "open",
                "--listen",
                "127.0.0.1:0",
            ])
            .output()
            .expect("channel-server init");
        assert!(
            out.status.success(),
            "init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let key = stdout
            .lines()
            .find_map(|l| l.strip_prefix("Channel public key (sites pin this): "))
            .and_then(|k| PublicKey::from_hex(k.trim()).ok())
            .expect("channel key in init output");
        let config = data.join("channel.toml");
        let text = std::fs::read_to_string(&config).expect("config");
        let text = text
            .lines()
            .map(|l| match l.split('=').next().map(str::trim) {
                Some("submissions_per_minute") => "submissions_per_minute = 0".to_owned(),
                Some("reads_per_minute") => "reads_per_minute = 0".to_owned(),
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&config, text).expect("write config");
        let mut c = Channel {
            _dir: dir,
            config,
            key,
            base: String::new(),
            child: None,
        };
        c.spawn();
        c
    }

    /// Starts (or restarts) the server process.
    pub fn spawn(&mut self) {
        let mut cmd = Command::new(bin("channel-server"));
        cmd.args(["serve", "--config"]).arg(&self.config);
        let (child, base) = spawn_listening(cmd);
        self.child = Some(child);
        self.base = base;
    }

    /// Kills the server (`kill -9`), then waits (at most 10 s) until its signer child, which
    /// exits when the server's end of its standard input closes, has let go of its socket, so
    /// the data folder can be copied or served again at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            let socket = self.data_dir().join("local/signer.sock");
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while socket.exists()
                && std::os::unix::net::UnixStream::connect(&socket).is_ok()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The data folder: `channel.toml`, `channel.db` (with its WAL files), `local/`,
    /// `archives/`.
    pub fn data_dir(&self) -> PathBuf {
        self.config
            .parent()
            .expect("config file in a folder")
            .to_path_buf()
    }

    /// The channel's signing key, from `local/channel-key.json`: for tests that play a channel
    /// (or a man in the middle holding its key) signing what the real server never would.
    pub fn signing_key(&self) -> KeyPair {
        let bytes =
            std::fs::read(self.data_dir().join("local/channel-key.json")).expect("key file");
        keyggdrasil::keyfile::KeyFile::parse(&bytes)
            .expect("parse key file")
            .unlock(None)
            .expect("unlock channel key")
    }

    /// Stops the server and copies its whole data folder (database and WAL files, `local/`
    /// with its modes, `archives/`, `channel.toml`; the signer's socket is left out). The
    /// server stays stopped: call [`Channel::spawn`] to restart it (on a new port).
    pub fn save_copy(&mut self) -> DataCopy {
        self.kill();
        let dir = tempfile::tempdir().expect("tempdir");
        copy_tree(&self.data_dir(), &dir.path().join("channel"));
        DataCopy { dir }
    }

    /// Stops the server, replaces its data folder with `copy` (an earlier state of it, as an
    /// operator restoring a backup would), and restarts it (on a new port).
    pub fn restore(&mut self, copy: &DataCopy) {
        self.kill();
        let data = self.data_dir();
        std::fs::remove_dir_all(&data).expect("remove data folder");
        copy_tree(&copy.dir.path().join("channel"), &data);
        self.spawn();
    }

    /// A split view: stops this channel, copies its data folder, restarts it (on a new port)
    /// and starts a second channel over the copy. Both have the same key, the same name and,
    /// so far, the same log; whatever is submitted to each from now on diverges. The copy's
    /// config listens on 127.0.0.1:0 too, so it binds elsewhere.
    pub fn fork_copy(&mut self) -> Channel {
        let copy = self.save_copy();
        self.spawn();
        let mut other = Channel {
            config: copy.dir.path().join("channel/channel.toml"),
            _dir: copy.dir,
            key: self.key,
            base: String::new(),
            child: None,
        };
        other.spawn();
        other
    }

    /// Submits an entry; panics unless accepted.
    pub fn submit(&self, entry: &Entry) -> SubmitResponse {
        let req = SubmitRequest {
            entry: String::from_utf8(entry.as_bytes().to_vec()).expect("ascii entry"),
            invite: None,
        };
        let r = agent()
            .post(&format!("{}/v1/submit", self.base))
            .header("Content-Type", "application/json")
            .send(&serde_json::to_vec(&req).expect("json"))
            .expect("submit");
        let mut body = Vec::new();
        r.into_body()
            .into_reader()
            .read_to_end(&mut body)
            .expect("body");
        Envelope::<SubmitResponse>::open(&body, 1 << 20)
            .unwrap_or_else(|e| panic!("submission refused: {e}"))
    }

    /// Uploads an archive for a logged release; panics unless accepted.
    pub fn upload(&self, supplier: &str, package: &str, version: &str, archive: &[u8]) {
        let r = agent()
            .put(&format!(
                "{}/v1/archives/{supplier}/{package}/{version}",
                self.base
            ))
            .send(archive)
            .expect("upload");
        assert_eq!(r.status(), 200, "upload refused");
    }
}

/// A copy of a channel's data folder (see [`Channel::save_copy`]).
pub struct DataCopy {
    dir: tempfile::TempDir,
}

/// Copies the folder `from` to `to` (which must not exist): files with their permissions,
/// folders with their modes, symbolic links as links (same target); sockets and other special
/// files are skipped.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    let meta = std::fs::metadata(from).expect("meta");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("dir entry");
        let ft = e.file_type().expect("file type");
        let dest = to.join(e.file_name());
        if ft.is_dir() {
            copy_tree(&e.path(), &dest);
        } else if ft.is_file() {
            std::fs::copy(e.path(), &dest).expect("copy");
        } else if ft.is_symlink() {
            let target = std::fs::read_link(e.path()).expect("read link");
            std::os::unix::fs::symlink(target, &dest).expect("symlink");
        }
    }
    std::fs::set_permissions(to, meta.permissions()).expect("chmod");
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A continuum site folder (and optionally its running notary).
pub struct Site {
    _dir: tempfile::TempDir,
    /// The site folder.
    pub root: PathBuf,
    /// The notary's public key.
    pub notary_key: PublicKey,
    /// The notary's base URL, once started.
    pub notary_url: Option<String>,
    notary: Option<Child>,
}

impl Site {
    /// `continuum init` against `channel`.
    pub fn init(channel: &Channel) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("site");
        let out = Command::new(bin("continuum"))
            .args(["init", "--dir"])
            .arg(&root)
            .args([
                "--channel",
                &channel.base,
                "--channel-key",
                &channel.key.to_hex(),
            ])
            .output()
            .expect("continuum init");
        assert!(
            out.status.success(),
            "init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let notary_key = stdout
            .lines()
            .find_map(|l| {
                l.strip_prefix("Notary public key (give it to sites that peer with you): ")
            })
            .and_then(|k| PublicKey::from_hex(k.trim()).ok())
            .expect("notary key in init output");
        Site {
            _dir: dir,
            root,
            notary_key,
            notary_url: None,
            notary: None,
        }
    }

    /// Runs `continuum --site ROOT <args>`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(bin("continuum"))
            .arg("--site")
            .arg(&self.root)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run continuum")
    }

    /// Starts `continuum notary serve` on a free loopback port.
    pub fn start_notary(&mut self) -> String {
        let mut cmd = Command::new(bin("continuum"));
        cmd.arg("--site")
            .arg(&self.root)
            .args(["notary", "serve", "--listen", "127.0.0.1:0"]);
        let (child, base) = spawn_listening(cmd);
        self.notary = Some(child);
        self.notary_url = Some(base.clone());
        base
    }

    /// Stops the notary.
    pub fn stop_notary(&mut self) {
        if let Some(mut c) = self.notary.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Points the site's (first) channel at `url` alone: edits the mirrors in continuum.toml,
    /// as an operator moving to another mirror would. A running notary keeps the config it
    /// started with until it is restarted.
    pub fn set_mirror(&self, url: &str) {
        let path = self.root.join("continuum.toml");
        let text = std::fs::read_to_string(&path).expect("read config");
        let mut cfg: toml::Table = text.parse().expect("parse config");
        let channel = cfg
            .get_mut("channel")
            .and_then(|c| c.as_array_mut())
            .and_then(|a| a.first_mut())
            .and_then(|c| c.as_table_mut())
            .expect("a [[channel]] in the config");
        channel.insert(
            "mirrors".into(),
            toml::Value::Array(vec![toml::Value::String(url.to_owned())]),
        );
        std::fs::write(&path, toml::to_string(&cfg).expect("toml")).expect("write config");
    }

    /// Edits `continuum.toml` as a TOML table (as an operator editing the file would).
    pub fn edit_config(&self, f: impl FnOnce(&mut toml::Table)) {
        let path = self.root.join("continuum.toml");
        let text = std::fs::read_to_string(&path).expect("read config");
        let mut cfg: toml::Table = text.parse().expect("parse config");
        f(&mut cfg);
        std::fs::write(&path, toml::to_string(&cfg).expect("toml")).expect("write config");
    }

    /// Sets `[section] key = value` in `continuum.toml`.
    pub fn set_option(&self, section: &str, key: &str, value: impl Into<toml::Value>) {
        let value = value.into();
        self.edit_config(|cfg| {
            let t = cfg
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .expect("a table");
            t.insert(key.to_owned(), value);
        });
    }

    /// Sets the update policy of every tracked package (`all`, `minor`, `patch`, `=X.Y.Z`).
    pub fn set_policy(&self, policy: &str) {
        self.edit_config(|cfg| {
            for p in cfg
                .get_mut("package")
                .and_then(|p| p.as_array_mut())
                .expect("tracked packages")
            {
                p.as_table_mut()
                    .expect("a [[package]] table")
                    .insert("policy".into(), toml::Value::String(policy.into()));
            }
        });
    }

    /// The installed version of `supplier/package` per the `installed` table, if any.
    pub fn installed_version(&self, supplier: &str, package: &str) -> Option<String> {
        let db = rusqlite::Connection::open(self.root.join("site.db")).expect("db");
        db.query_row(
            "SELECT version FROM installed WHERE supplier = ?1 AND package = ?2",
            [supplier, package],
            |r| r.get(0),
        )
        .ok()
    }

    /// Entries in the site's accepted log.
    pub fn accepted_size(&self) -> i64 {
        rusqlite::Connection::open(self.root.join("site.db"))
            .expect("db")
            .query_row("SELECT COUNT(*) FROM log_entries", [], |r| r.get(0))
            .expect("count")
    }

    /// Runs `continuum update` and asserts a refusal: the exit code, that the output says
    /// each of `says` (case-insensitive) and that the site was left as it was, and that the
    /// site's files and database ([`Site::snapshot`]) are exactly as before. Returns the text.
    pub fn assert_update_refused(&self, code: i32, says: &[&str]) -> String {
        let before = self.snapshot();
        let out = self.run(&["update"]);
        let t = assert_says(&out, code, says);
        // Shown with --nocapture, to read what an operator would see.
        println!("refused as expected (exit {code}):\n{t}");
        assert!(t.contains("the site was left as it was"), "{t}");
        assert!(
            self.snapshot() == before,
            "the site changed although the update failed:\n{t}"
        );
        t
    }

    /// Removes the peer with this URL.
    pub fn remove_peer(&self, url: &str) {
        let out = self.run(&["peers", "remove", url]);
        assert!(
            out.status.success(),
            "peers remove: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Asks this site's running notary for its root of [`ORIGIN`] at `size`, as a peer
    /// would, and checks the answer's signature with the notary key.
    pub fn ask_notary(&self, size: u64) -> NotaryStatus {
        let url = self.notary_url.as_deref().expect("notary running");
        let req = NotaryRequest {
            channel: ChannelName::parse(ORIGIN).expect("name"),
            size,
            nonce: Nonce::generate(),
        };
        let r = agent()
            .post(&format!("{url}/v1/notary/root"))
            .header("Content-Type", "application/json")
            .send(&serde_json::to_vec(&req).expect("json"))
            .expect("notary request");
        let mut body = Vec::new();
        r.into_body()
            .into_reader()
            .read_to_end(&mut body)
            .expect("body");
        let signed: Signed = Envelope::open(&body, 1 << 20).expect("notary answer");
        let payload: NotaryPayload = signed
            .open(&self.notary_key, Context::NotaryAnswer, 1 << 20)
            .expect("notary signature");
        assert_eq!((payload.size, payload.nonce), (size, req.nonce));
        payload.status
    }

    /// Adds `other`'s notary as a peer.
    pub fn add_peer(&self, url: &str, key: &PublicKey) {
        let out = self.run(&["peers", "add", url, &key.to_hex()]);
        assert!(
            out.status.success(),
            "peers add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Everything that must not change when an update fails: every file under the site folder
    /// except the run log, and the contents of the tables that matter.
    pub fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        walk(&self.root.join("packages"), &self.root, &mut out);
        let db = rusqlite::Connection::open(self.root.join("site.db")).expect("db");
        for table in ["log_entries", "installed"] {
            let mut stmt = db
                .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
                .expect("query");
            let cols = stmt.column_count();
            let rows = stmt
                .query_map([], |r| {
                    let mut s = String::new();
                    for i in 0..cols {
                        let v: rusqlite::types::Value = r.get(i)?;
                        s.push_str(&format!("{v:?}|"));
                    }
                    Ok(s)
                })
                .expect("rows")
                .collect::<Result<Vec<_>, _>>()
                .expect("rows");
            out.push((table.to_owned(), rows.join("\n").into_bytes()));
        }
        out
    }
}

fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let name = p.strip_prefix(root).unwrap_or(&p).display().to_string();
        let meta = std::fs::symlink_metadata(&p).expect("meta");
        if meta.file_type().is_symlink() {
            out.push((
                name,
                std::fs::read_link(&p)
                    .expect("link")
                    .display()
                    .to_string()
                    .into_bytes(),
            ));
        } else if meta.is_dir() {
            walk(&p, root, out);
        } else {
            out.push((name, std::fs::read(&p).expect("read")));
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop_notary();
    }
}

/// A supplier with a master key and a signing key.
pub struct Supplier {
    /// The name.
    pub name: SupplierName,
    /// Master key.
    pub master: KeyPair,
    /// Signing key.
    pub signing: KeyPair,
}

impl Supplier {
    /// A supplier with fresh keys.
    pub fn new(name: &str) -> Self {
        Self {
            name: SupplierName::parse(name).expect("name"),
            master: KeyPair::generate(),
            signing: KeyPair::generate(),
        }
    }

    /// Signs an event for this supplier with `by`.
    pub fn sign(&self, by: &KeyPair, event: Event) -> Entry {
        Entry::sign(EntryBody::new(self.name.clone(), by.public(), event), by).expect("sign")
    }

    /// Registers master and signing key on `ch`.
    pub fn register(&self, ch: &Channel) {
        ch.submit(&self.sign(
            &self.master,
            Event::MasterKey {
                public_key: self.master.public(),
                derivation: None,
            },
        ));
        ch.submit(&self.sign(
            &self.master,
            Event::SigningKey {
                public_key: self.signing.public(),
                derivation: None,
            },
        ));
    }

    /// A release entry for `archive`, signed by `key`.
    pub fn release(&self, key: &KeyPair, package: &str, version: &str, archive: &[u8]) -> Entry {
        let (size, digest) = keyggdrasil::filesig::archive_digest(archive).expect("digest");
        self.sign(
            key,
            Event::Release {
                package: PackageName::parse(package).expect("package"),
                version: Version::parse(version).expect("version"),
                size,
                digest: Digest512(digest),
                commit: GitCommit::parse(&"a".repeat(40)).expect("commit"),
                signature: keyggdrasil::filesig::sign(key, archive).expect("sign"),
            },
        )
    }

    /// Publishes a release of `archive` (entry and upload).
    pub fn publish(&self, ch: &Channel, package: &str, version: &str, archive: &[u8]) {
        ch.submit(&self.release(&self.signing, package, version, archive));
        ch.upload(self.name.as_str(), package, version, archive);
    }

    /// A revocation of `key` signed by `by`.
    pub fn revoke(&self, by: &KeyPair, key: &PublicKey) -> Entry {
        self.sign(
            by,
            Event::KeyRevocation {
                public_key: *key,
                reason: Reason::parse("test").expect("reason"),
            },
        )
    }
}

/// Builds a real archive (keyggdrasil's reproducible format) of a small plugin tree;
/// `package` is `supplier/package`, as the manifest names it.
pub fn plugin_archive(package: &str, version: &str, marker: &str) -> Vec<u8> {
    let src = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        src.path().join("plugin.php"),
        format!("<?php // {package} {version} {marker}\n"),
    )
    .expect("write");
    std::fs::create_dir_all(src.path().join("lib")).expect("mkdir");
    std::fs::write(
        src.path().join("lib/util.php"),
        "<?php function util() {}\n",
    )
    .expect("write");
    let manifest =
        keyggdrasil::archive::Manifest::new(package, version, "a".repeat(40)).expect("manifest");
    let mut out = std::io::Cursor::new(Vec::new());
    keyggdrasil::archive::build_archive(
        src.path(),
        &manifest,
        &mut out,
        &keyggdrasil::archive::ArchiveLimits::default(),
    )
    .expect("build archive");
    out.into_inner()
}
