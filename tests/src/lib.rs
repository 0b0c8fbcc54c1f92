//! Whole-system test harness: real `channel-server`, `continuum` sites and notaries, each a
//! separate process on loopback, each in its own temporary folder.
//!
//! The binaries are found next to the test executable (`target/<profile>/`), where
//! `cargo test --workspace` builds them before running any test. When one is missing (this
//! crate's tests, or another crate's, run alone: `cargo test -p system-tests`), [`bin`] builds
//! them there with cargo first; `<NAME>_BIN` (e.g. `CHANNEL_SERVER_BIN`) points at another
//! build.
//!
//! The same harness serves the other crates' tests (a dev-dependency of `channel-server`,
//! `continuum`, `barge` and `hangar`): [`Channel`] (start with a policy and config overrides,
//! kill, restart, copy, submit with or without invite, read envelopes), [`Supplier`],
//! [`spawn_listening`], [`run_with_stdin`], [`agent`], [`bin`] and [`copy_tree`]. It is test code:
//! it panics on anything unexpected rather than returning errors.
#![forbid(unsafe_code)]

pub mod config_doc;
pub mod front;
pub mod golang;
pub mod hostile;
pub mod nginx;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use keyggdrasil::entry::{Digest512, Entry, EntryBody, Event, GitCommit, Reason};
use keyggdrasil::keys::{KeyPair, PublicKey};
use keyggdrasil::names::ChannelName;
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{
    Envelope, Nonce, NotaryPayload, NotaryRequest, NotaryStatus, Signed, SubmitRequest,
    SubmitResponse,
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

/// Runs `cmd` with `stdin` (if any) written to its standard input, which is then closed, and
/// collects its output. A command that exits before reading its input (one refused early) makes
/// the write fail with `BrokenPipe`: that is no error here; any other write error is.
pub fn run_with_stdin(cmd: &mut Command, stdin: Option<&str>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    let mut input = child.stdin.take().expect("stdin was piped above");
    if let Some(s) = stdin
        && let Err(e) = input.write_all(s.as_bytes())
    {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    drop(input);
    child.wait_with_output().expect("command output")
}

/// Asserts that `o` exited with status 0 (showing its exit code, stdout and stderr if not);
/// returns its stdout.
pub fn stdout_ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({:?}):\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// [`stdout_ok`], parsed as one JSON value.
pub fn stdout_json(o: &Output) -> serde_json::Value {
    serde_json::from_str(stdout_ok(o).trim()).expect("json output")
}

/// Checks a CLI's `key from-passphrase` against the libsodium Argon2i vectors in
/// `fixtures/libsodium/argon2i.json`: `run(args, stdin)` runs the CLI (barge or hangar). Skips
/// the costly cases (over 64 KiB, covered by keyggdrasil's own tests) and passphrases with a line
/// break (they cannot travel as one line on stdin); asserts at least five cases were checked.
pub fn assert_from_passphrase_matches_libsodium(run: impl Fn(&[&str], &str) -> Output) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/libsodium/argon2i.json");
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json");
    let mut checked = 0;
    for c in fixture["cases"].as_array().expect("cases") {
        let pass = c["passphrase"].as_str().expect("passphrase");
        if c["mem_limit"].as_u64().expect("mem") > 65536 || pass.contains('\n') {
            continue;
        }
        let o = run(
            &[
                "key",
                "from-passphrase",
                "--salt",
                c["salt"].as_str().expect("salt"),
                "--ops-limit",
                &c["ops_limit"].to_string(),
                "--mem-limit",
                &c["mem_limit"].to_string(),
                "--passphrase-stdin",
            ],
            &format!("{pass}\n"),
        );
        assert_eq!(
            stdout_ok(&o).trim(),
            c["public_key"].as_str().expect("pk"),
            "case {}",
            c["name"]
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} cases checked");
}

/// Runs an `init` command, panics unless it succeeds, and returns the public key it prints
/// after `prefix`.
fn init_and_read_key(cmd: &mut Command, prefix: &str) -> PublicKey {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{:?} init: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|k| PublicKey::from_hex(k.trim()).ok())
        .unwrap_or_else(|| panic!("no {prefix:?} line in the init output"))
}

/// The channel name every test channel uses.
pub const ORIGIN: &str = "test.channel";

/// The workspace binaries the harness runs; [`bin`] builds them all at once when one is missing.
pub const BINARIES: &[&str] = &["channel-server", "continuum", "barge", "hangar"];

/// Path of a workspace binary: the one named by `<NAME>_BIN` (e.g. `CHANNEL_SERVER_BIN`) if
/// set, else the one next to the running test executable (`target/<profile>/`).
///
/// If that one is missing (a crate's tests run alone, `cargo test -p continuum`, build only that
/// crate's own binaries), it first builds every one of [`BINARIES`] there with the `cargo` that
/// runs the tests (once per test process; cargo releases its build lock before running tests),
/// so that each crate's tests pass alone. It does not rebuild a binary that is present: one
/// older than its sources is used as it is (`cargo test --workspace` always rebuilds them).
pub fn bin(name: &str) -> PathBuf {
    let var = format!("{}_BIN", name.to_uppercase().replace('-', "_"));
    if let Some(p) = std::env::var_os(&var) {
        return p.into();
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    if !path.exists() {
        build_binaries(dir);
    }
    assert!(
        path.exists(),
        "{} is missing and could not be built: run `cargo build --workspace --bins` \
         (for benchmarks, `cargo build --release --workspace --bins`)",
        path.display()
    );
    path
}

/// Builds [`BINARIES`] into `profile_dir` (`target/<profile>`) with cargo, once per process;
/// concurrent callers wait for the one build. Panics if cargo fails.
fn build_binaries(profile_dir: &Path) {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let target = profile_dir.parent().expect("target/<profile> has a parent");
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("profile folder name");
        // `cargo test` sets CARGO for the tests it runs; fall back to the one that built us.
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let mut cmd = Command::new(cargo);
        cmd.arg("build");
        match profile {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        for b in BINARIES {
            cmd.args(["-p", b, "--bin", b]);
        }
        cmd.arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
            .arg("--target-dir")
            .arg(target);
        // The variables cargo gives a test describe the test's package; passed on, build
        // scripts that track them would rebuild (as quickstart/src/procs.rs explains).
        for (key, _) in std::env::vars_os() {
            let Some(k) = key.to_str() else { continue };
            if k.starts_with("CARGO_PKG_")
                || matches!(
                    k,
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_BIN_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_TARGET_TMPDIR"
                        | "CARGO_RUSTC_CURRENT_DIR"
                        | "OUT_DIR"
                )
            {
                cmd.env_remove(&key);
            }
        }
        eprintln!(
            "system-tests: a workspace binary is missing from {}; building {} there",
            profile_dir.display(),
            BINARIES.join(", ")
        );
        let status = cmd
            .stdin(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("run cargo to build the binaries: {e}"));
        assert!(
            status.success(),
            "cargo build of {BINARIES:?} failed ({status})"
        );
    });
}

/// An HTTP agent that does not turn 4xx/5xx into errors.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Spawns `cmd` (with `RUST_LOG=warn`, stderr inherited), waits for its first stdout line
/// `listening on http://ADDR`, returns the child and the base URL, and keeps draining its stdout
/// on a thread so the process never blocks on a full pipe. Panics if the first line is anything
/// else. Used for `channel-server serve` and `continuum notary serve`.
pub fn spawn_listening(mut cmd: Command) -> (Child, String) {
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

/// Config lines for [`Channel::start_with`] that turn the rate limits off.
pub const RATE_LIMITS_OFF: &str = "submissions_per_minute = 0\nreads_per_minute = 0";

impl Channel {
    /// Initialises and starts a channel with policy `open` and rate limits off.
    pub fn start() -> Self {
        Self::start_with("open", RATE_LIMITS_OFF)
    }

    /// Initialises and starts a channel with the supplier registration `policy` (`open` or
    /// `invite`). Each `key = value` line of `config_lines` replaces the line setting `key` in
    /// the generated `channel.toml` (panics if there is none, so a renamed option is noticed);
    /// other options keep `channel-server init`'s defaults (rate limits on).
    pub fn start_with(policy: &str, config_lines: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("channel");
        let key = init_and_read_key(
            Command::new(bin("channel-server"))
                .args(["init", "--dir"])
                .arg(&data)
                .args([
                    "--name",
                    ORIGIN,
                    "--policy",
                    policy,
                    "--listen",
                    "127.0.0.1:0",
                ]),
            "Channel public key (sites pin this): ",
        );
        let config = data.join("channel.toml");
        let mut text = std::fs::read_to_string(&config).expect("config");
        for line in config_lines.lines().filter(|l| !l.trim().is_empty()) {
            let key = line.split('=').next().map(str::trim).unwrap_or_default();
            let old = text
                .lines()
                .find(|l| l.split('=').next().map(str::trim) == Some(key))
                .unwrap_or_else(|| panic!("no option {key} in the generated channel.toml"))
                .to_owned();
            text = text.replace(&old, line);
        }
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

    /// A channel over a copy of the data folder `from` (a [`Channel::data_dir`] of a stopped
    /// channel, e.g. a benchmark's cached log), in a new temporary folder, so `from` is never
    /// changed; its key is read from the copy's key file. Not running yet: call
    /// [`Channel::spawn`].
    pub fn from_copy(from: &Path) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("channel");
        copy_tree(from, &data);
        Channel {
            config: data.join("channel.toml"),
            key: key_in(&data).public(),
            _dir: dir,
            base: String::new(),
            child: None,
        }
    }

    /// Starts (or restarts) the server process and waits until `/healthz` answers 200.
    pub fn spawn(&mut self) {
        let mut cmd = Command::new(bin("channel-server"));
        cmd.args(["serve", "--config"]).arg(&self.config);
        let (child, base) = spawn_listening(cmd);
        self.child = Some(child);
        self.base = base;
        self.wait_healthy();
    }

    /// Waits (at most 10 s) until `/healthz` answers 200; panics otherwise. Polls every 5 ms,
    /// so the scale benchmark's start-up figure (spawn to first answered `/healthz`) is not
    /// rounded up to a coarse poll.
    pub fn wait_healthy(&self) {
        for _ in 0..2000 {
            if let Ok(r) = agent().get(&self.url("/healthz")).call()
                && r.status() == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("channel did not become healthy");
    }

    /// The channel's static copy of the log (`<data>/public`, see `channel_server::publish`).
    pub fn public_dir(&self) -> PathBuf {
        self.config
            .parent()
            .expect("the config file is in the data folder")
            .join("public")
    }

    /// The first `size` entries, read page by page from `/v1/entries` (exact bytes).
    pub fn all_entries(&self, size: u64) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        while (out.len() as u64) < size {
            let start = out.len() as u64;
            let end = size.min(start + 500);
            let r: keyggdrasil::wire::EntriesResponse = self
                .get(&format!("/v1/entries?start={start}&end={end}"))
                .unwrap_or_else(|e| panic!("entries {start}..{end}: {e:?}"));
            out.extend(r.entries.into_iter().map(String::into_bytes));
        }
        out
    }

    /// Waits (at most 20 s) until `public/checkpoint` is a checkpoint note of at least `size`
    /// entries signed by this channel; returns its size. Panics otherwise.
    pub fn wait_published(&self, size: u64) -> u64 {
        let origin = self.origin();
        for _ in 0..2000 {
            let got = std::fs::read(self.public_dir().join("checkpoint"))
                .ok()
                .and_then(|b| keyggdrasil::tlog_checkpoint::open(&b, &self.key, &origin).ok())
                .map(|c| c.size());
            if let Some(n) = got
                && n >= size
            {
                return n;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the channel did not publish size {size}");
    }

    /// The serve process's PID (0 when stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// The channel's name ([`ORIGIN`]).
    pub fn origin(&self) -> ChannelName {
        ChannelName::parse(ORIGIN).expect("ORIGIN is a valid channel name")
    }

    /// The URL of `path` (starting with `/`) on this channel.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The database file, for direct checks.
    pub fn db(&self) -> PathBuf {
        self.data_dir().join("channel.db")
    }

    /// Runs `channel-server ARGS --config CONFIG`; panics unless it succeeds; returns its stdout.
    fn admin(&self, args: &[&str]) -> String {
        let out = Command::new(bin("channel-server"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .expect("run channel-server");
        assert!(
            out.status.success(),
            "channel-server {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `channel-server check` on this channel's config; panics unless it succeeds;
    /// returns its stdout.
    pub fn check(&self) -> String {
        self.admin(&["check"])
    }

    /// A one-time invite token for `supplier`, from `channel-server invite`.
    pub fn invite(&self, supplier: &str) -> String {
        self.admin(&["invite", supplier]).trim().to_owned()
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
        key_in(&self.data_dir())
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

    /// POSTs `body` to `/v1/submit` with this content type; returns (status, body).
    pub fn submit_raw(&self, body: &str, content_type: &str) -> (u16, Vec<u8>) {
        let r = agent()
            .post(&self.url("/v1/submit"))
            .header("Content-Type", content_type)
            .send(body)
            .expect("submit");
        let status = r.status().as_u16();
        let mut buf = Vec::new();
        r.into_body()
            .into_reader()
            .read_to_end(&mut buf)
            .expect("body");
        (status, buf)
    }

    /// Submits an entry's text with an optional invite; the answer, or the refusal's (HTTP
    /// status, error code). Panics on an answer that is neither (a malformed envelope, or an
    /// accepting envelope with a status other than 200).
    pub fn try_submit_text(
        &self,
        entry: &str,
        invite: Option<&str>,
    ) -> Result<SubmitResponse, (u16, String)> {
        let req = SubmitRequest {
            entry: entry.to_owned(),
            invite: invite.map(str::to_owned),
        };
        let (status, body) = self.submit_raw(
            &serde_json::to_string(&req).expect("json"),
            "application/json",
        );
        match Envelope::<SubmitResponse>::open(&body, 1 << 20) {
            Ok(r) if status == 200 => Ok(r),
            Ok(_) => panic!("ok envelope with status {status}"),
            Err(keyggdrasil::wire::WireError::Remote { code, .. }) => {
                Err((status, code.to_string()))
            }
            Err(e) => panic!(
                "bad answer {status}: {e}: {}",
                String::from_utf8_lossy(&body)
            ),
        }
    }

    /// [`Channel::try_submit_text`] for an entry.
    pub fn try_submit_invite(
        &self,
        entry: &Entry,
        invite: Option<&str>,
    ) -> Result<SubmitResponse, (u16, String)> {
        self.try_submit_text(
            std::str::from_utf8(entry.as_bytes()).expect("entries are ascii"),
            invite,
        )
    }

    /// [`Channel::try_submit_invite`] without an invite.
    pub fn try_submit(&self, entry: &Entry) -> Result<SubmitResponse, (u16, String)> {
        self.try_submit_invite(entry, None)
    }

    /// Submits an entry; panics unless accepted.
    pub fn submit(&self, entry: &Entry) -> SubmitResponse {
        self.try_submit(entry)
            .unwrap_or_else(|(status, code)| panic!("submission refused ({status}): {code}"))
    }

    /// GETs a JSON envelope and returns its data, or the refusal's (HTTP status, error code).
    pub fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, (u16, String)> {
        let r = agent().get(&self.url(path)).call().expect("get");
        let status = r.status().as_u16();
        let mut buf = Vec::new();
        r.into_body()
            .into_reader()
            .read_to_end(&mut buf)
            .expect("body");
        match Envelope::<T>::open(&buf, 16 << 20) {
            Ok(d) => Ok(d),
            Err(keyggdrasil::wire::WireError::Remote { code, .. }) => {
                Err((status, code.to_string()))
            }
            Err(e) => panic!(
                "bad answer {status}: {e}: {}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }

    /// GETs a signed envelope; panics on a refusal.
    pub fn get_signed(&self, path: &str) -> Signed {
        self.get::<Signed>(path)
            .unwrap_or_else(|(status, code)| panic!("GET {path} refused ({status}): {code}"))
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

/// The channel key in the data folder `data` (`local/channel-key.json`, unencrypted).
pub fn key_in(data: &Path) -> KeyPair {
    let bytes = std::fs::read(data.join("local/channel-key.json")).expect("key file");
    keyggdrasil::keyfile::KeyFile::parse(&bytes)
        .expect("parse key file")
        .unlock(None)
        .expect("unlock channel key")
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
        let notary_key = init_and_read_key(
            Command::new(bin("continuum"))
                .args(["init", "--dir"])
                .arg(&root)
                .args([
                    "--channel",
                    &channel.base,
                    "--channel-key",
                    &channel.key.to_hex(),
                    // Tests run many sites at once: a free port at each start.
                    "--notary-listen",
                    "127.0.0.1:0",
                ]),
            "Notary public key (give it to sites that peer with you): ",
        );
        Site {
            _dir: dir,
            root,
            notary_key,
            notary_url: None,
            notary: None,
        }
    }

    /// `continuum init` against `channel` with `allow_no_peers = true`, then `continuum install
    /// PACKAGE` (`supplier/package`), asserting that it installed `version`.
    pub fn init_installing(channel: &Channel, package: &str, version: &str) -> Self {
        let site = Site::init(channel);
        site.set_option("site", "allow_no_peers", true);
        assert_says(
            &site.run(&["install", package]),
            exit::OK,
            &[&format!("installed {version}")],
        );
        site
    }

    /// Runs `continuum --dir ROOT <args>`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(bin("continuum"))
            .arg("--dir")
            .arg(&self.root)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run continuum")
    }

    /// Starts `continuum notary serve` on a free loopback port.
    pub fn start_notary(&mut self) -> String {
        let mut cmd = Command::new(bin("continuum"));
        cmd.arg("--dir")
            .arg(&self.root)
            .args(["notary", "serve", "--listen", "127.0.0.1:0"]);
        let (child, base) = spawn_listening(cmd);
        self.notary = Some(child);
        self.notary_url = Some(base.clone());
        base
    }

    /// Starts a stopped notary again on the address it had, as an operator bringing it back
    /// would (peers know it by that address).
    pub fn restart_notary(&mut self) {
        let url = self.notary_url.clone().expect("the notary ran before");
        let addr = url.trim_start_matches("http://").to_owned();
        let mut cmd = Command::new(bin("continuum"));
        cmd.arg("--dir")
            .arg(&self.root)
            .args(["notary", "serve", "--listen", &addr]);
        let (child, base) = spawn_listening(cmd);
        assert_eq!(base, url, "the notary came back on another address");
        self.notary = Some(child);
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

    /// Adds `other`'s notary as a peer, with `--offline`: many tests add peers that are not
    /// running yet, pin a wrong key on purpose, or sit behind a misbehaving front, which a
    /// verified `peers add` would refuse (continuum/tests/malformed.rs tests that refusal).
    pub fn add_peer(&self, url: &str, key: &PublicKey) {
        let out = self.run(&["peers", "add", "--offline", url, &key.to_hex()]);
        assert!(
            out.status.success(),
            "peers add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// [`Site::snapshot`] without the accepted log and its key state (the tables a run that
    /// accepts new entries changes): the files and the install records.
    pub fn snapshot_without_log(&self) -> Vec<(String, Vec<u8>)> {
        const LOG_TABLES: [&str; 4] = [
            "log_entries",
            "accepted_heads",
            "state_keys",
            "state_releases",
        ];
        self.snapshot()
            .into_iter()
            .filter(|(k, _)| !LOG_TABLES.contains(&k.as_str()))
            .collect()
    }

    /// Everything that must not change when an update fails: every file under the site folder
    /// except the run log, and the contents of the tables that matter.
    pub fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        walk(&self.root.join("packages"), &self.root, &mut out);
        let db = rusqlite::Connection::open(self.root.join("site.db")).expect("db");
        for table in [
            "log_entries",
            "installed",
            "accepted_heads",
            "state_keys",
            "state_releases",
        ] {
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

    /// The master key's self-signed registration.
    pub fn master_entry(&self) -> Entry {
        self.sign(
            &self.master,
            Event::MasterKey {
                public_key: self.master.public(),
                derivation: None,
            },
        )
    }

    /// The signing key's registration, signed by the master key.
    pub fn signing_entry(&self) -> Entry {
        self.sign(
            &self.master,
            Event::SigningKey {
                public_key: self.signing.public(),
                derivation: None,
            },
        )
    }

    /// Registers master and signing key on `ch`; panics unless both are accepted.
    pub fn register(&self, ch: &Channel) {
        ch.submit(&self.master_entry());
        ch.submit(&self.signing_entry());
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
                rollout: None,
            },
        )
    }

    /// Publishes a release of `archive` (entry and upload).
    pub fn publish(&self, ch: &Channel, package: &str, version: &str, archive: &[u8]) {
        ch.submit(&self.release(&self.signing, package, version, archive));
        ch.upload(self.name.as_str(), package, version, archive);
    }

    /// Publishes `package` `version` of this supplier as a [`plugin_archive`] carrying `marker`.
    pub fn publish_plugin(&self, ch: &Channel, package: &str, version: &str, marker: &str) {
        let archive = plugin_archive(
            &format!("{}/{package}", self.name.as_str()),
            version,
            marker,
        );
        self.publish(ch, package, version, &archive);
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
    keyggdrasil::os::archive::build_archive(
        src.path(),
        &manifest,
        &mut out,
        &keyggdrasil::archive::ArchiveLimits::default(),
    )
    .expect("build archive");
    out.into_inner()
}

/// Runs `systemd-analyze verify` on unit files and fails on any remark about them (syntax
/// problems are only warnings with exit 0, so every line naming one of `names` counts). Lines
/// about the host's own units are not ours to judge. `false` (after a note) when
/// systemd-analyze is not installed.
pub fn systemd_verify(paths: &[PathBuf], names: &[&str]) -> bool {
    let probe = Command::new("systemd-analyze").arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        println!("note: systemd-analyze is not installed; the unit files were not verified");
        return false;
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(paths)
        .output()
        .expect("systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{text}"
    );
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| names.iter().any(|n| l.contains(n)))
        .collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze has remarks on the unit files:\n{}",
        ours.join("\n")
    );
    true
}
