//! Red-team pass of secrets handling (issue 19): where passphrases come from, what error text
//! and logs show, whether the processes holding secrets can be dumped or read by same-user
//! processes, and the modes of the files that hold secrets. Each test asserts the exact
//! outcome; the write-up is the "Secrets" section of docs/security-review.md.
//!
//! Dumpability is observed from outside, as root (the tests run as root, which may read any
//! process): each process is started with its *group* id set to 65534 (it stays uid 0, so it
//! can read every file of the test). Linux gives the files inside `/proc/PID/` the process's
//! effective uid and gid while it is dumpable and root's (uid 0, gid 0) once it has called
//! `prctl(PR_SET_DUMPABLE, 0)` (`task_dump_owner` in fs/proc/base.c), so `/proc/PID/status`
//! owned by group 0 means "not dumpable" and group 65534 means "dumpable". The core limit is
//! read from `/proc/PID/limits` (soft and hard both 0 after `setrlimit(RLIMIT_CORE, 0)`; the
//! test machine's default hard limit is not 0). Each process is looked at while it is provably
//! past the start of `main`: blocked reading its standard input (the passphrase), listening, or
//! connected to the test, so no test depends on timing.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use keyggdrasil::kdf::{Purpose, SiteSecret};
use system_tests::{Channel, Site, Supplier, bin, exit_code, plugin_archive};

/// The group the observed processes run as.
const OBSERVER_GID: u32 = 65534;
const PASS: &str = "tarnish velvet orbit canyon mistral 7 quill";
const SOME_KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const DEADLINE: Duration = Duration::from_secs(60);

/// What `/proc/PID` says about a process: (soft, hard) core limit, and whether it is dumpable.
#[derive(Debug, PartialEq, Eq)]
struct Hardening {
    core_limit: (String, String),
    dumpable: bool,
}

fn hardening(pid: u32) -> Hardening {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("core line");
    let mut fields = line["Max core file size".len()..].split_whitespace();
    let soft = fields.next().expect("soft").to_owned();
    let hard = fields.next().expect("hard").to_owned();
    let gid = std::fs::metadata(format!("/proc/{pid}/status"))
        .expect("status")
        .gid();
    let dumpable = match gid {
        0 => false,
        OBSERVER_GID => true,
        other => panic!("/proc/{pid}/status has group {other}"),
    };
    Hardening {
        core_limit: (soft, hard),
        dumpable,
    }
}

fn assert_hardened(what: &str, pid: u32) {
    assert_eq!(
        hardening(pid),
        Hardening {
            core_limit: ("0".into(), "0".into()),
            dumpable: false
        },
        "{what} (pid {pid}) can be dumped or traced"
    );
}

/// Spawns `cmd` as group [`OBSERVER_GID`] with its standard input a pipe held open.
fn spawn_observed(cmd: &mut Command) -> Child {
    cmd.gid(OBSERVER_GID)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Waits until the main thread of `pid` is blocked in `read(0, …)` (x86-64: syscall 0, first
/// argument 0), i.e. waiting for its passphrase on standard input.
fn wait_reading_stdin(pid: u32) {
    let start = Instant::now();
    loop {
        let s = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        if s.starts_with("0 0x0 ") {
            return;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next());
        assert_ne!(
            state,
            Some("Z"),
            "pid {pid} exited before reading its stdin"
        );
        assert!(
            start.elapsed() < DEADLINE,
            "pid {pid} never read its stdin: {s}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Writes `line` to the child's stdin, closes it, and waits for it.
fn answer(mut child: Child, line: &str) -> Output {
    let mut stdin = child.stdin.take().expect("stdin");
    // A process that refuses before reading its input has closed the pipe: not an error here,
    // its exit code and output say what happened.
    if let Err(e) = stdin.write_all(line.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write: {e}");
    }
    drop(stdin);
    child.wait_with_output().expect("wait")
}

fn barge(dir: &Path) -> Command {
    let mut c = Command::new(bin("barge"));
    c.arg("--dir").arg(dir).env("BARGE_TEST_KDF", "cheap");
    c
}

fn hangar(dir: &Path) -> Command {
    let mut c = Command::new(bin("hangar"));
    c.arg("--dir").arg(dir).env("HANGAR_TEST_KDF", "cheap");
    c
}

fn ok(o: &Output) -> String {
    assert_eq!(exit_code(o), 0, "{}", system_tests::output_text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// An author folder (`barge init --offline`), no key yet.
fn author() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    ok(&barge(d.path())
        .args(["init", "--offline", "--channel", "http://127.0.0.1:9"])
        .args(["--channel-key", SOME_KEY, "--supplier", "acme"])
        .output()
        .expect("barge init"));
    std::fs::write(d.path().join("file"), b"some file").expect("write");
    d
}

/// [`author`] with one signing key under [`PASS`].
fn author_with_key() -> tempfile::TempDir {
    let d = author();
    let child =
        spawn_observed(barge(d.path()).args(["key", "new", "--signing", "--passphrase-stdin"]));
    ok(&answer(child, &format!("{PASS}\n")));
    d
}

/// Attempts S9–S11: barge (a new key and unlocking one to sign) and hangar, each waiting for
/// its passphrase, are not dumpable and have a core limit of 0. Before the fix barge was
/// dumpable with the default core limit (finding X1).
#[test]
fn author_tools_waiting_for_a_passphrase_are_not_dumpable() {
    let d = author();
    let child =
        spawn_observed(barge(d.path()).args(["key", "new", "--signing", "--passphrase-stdin"]));
    wait_reading_stdin(child.id());
    assert_hardened("barge key new", child.id());
    ok(&answer(child, &format!("{PASS}\n")));

    let mut cmd = barge(d.path());
    cmd.current_dir(d.path())
        .args(["sign", "file", "--key", "signing-", "--passphrase-stdin"]);
    let child = spawn_observed(&mut cmd);
    wait_reading_stdin(child.id());
    assert_hardened("barge sign (unlocking a key)", child.id());
    ok(&answer(child, &format!("{PASS}\n")));
    assert!(d.path().join("file.sig").exists());

    let h = tempfile::tempdir().expect("tempdir");
    let child =
        spawn_observed(hangar(h.path()).args(["key", "new", "--signing", "--passphrase-stdin"]));
    wait_reading_stdin(child.id());
    assert_hardened("hangar key new", child.id());
    ok(&answer(child, &format!("{PASS}\n")));
}

/// The PID of the (first) child of `parent` whose command line contains `word`.
fn child_of(parent: u32, word: &str) -> u32 {
    let start = Instant::now();
    loop {
        for e in std::fs::read_dir("/proc").expect("proc").flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid …: comm may hold spaces, so split after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if ppid == Some(parent) && String::from_utf8_lossy(&cmdline).contains(word) {
                return pid;
            }
        }
        assert!(start.elapsed() < DEADLINE, "no child {word} of {parent}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Spawns `cmd` observed, waits for its `listening on http://…` line, returns child and URL;
/// stderr goes to `log`.
fn spawn_listening_observed(cmd: &mut Command, log: &Path) -> (Child, String) {
    let mut child = cmd
        .gid(OBSERVER_GID)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("spawn");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("first line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    (child, url)
}

/// A [`SiteSecret`] of the 32 stored bytes (its zeroizing buffer taken from `derive`, so this
/// crate needs no `zeroize` dependency of its own).
fn site_secret(bytes: &[u8]) -> SiteSecret {
    let mut buf = SiteSecret::generate().derive(Purpose::InternalMac);
    buf.copy_from_slice(bytes);
    SiteSecret::from_bytes(buf)
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Every spelling of `secret` that could appear in a log: lowercase and uppercase hex, and the
/// raw bytes' Debug form (`[1, 2, …]`).
fn spellings(secret: &[u8]) -> Vec<String> {
    let hex = hex::encode(secret);
    vec![
        hex.clone(),
        hex.to_uppercase(),
        format!("{:?}", secret),
        hex[..16].to_owned(),
    ]
}

fn assert_absent(what: &str, text: &str, secrets: &[(&str, Vec<u8>)]) {
    for (name, bytes) in secrets {
        for s in spellings(bytes) {
            assert!(!text.contains(&s), "{what} shows {name} ({s}):\n{text}");
        }
    }
}

/// Attempts S12–S13 and S7: `channel-server serve` (it holds the MAC key derived from the
/// channel secret) and its signer child (the channel key) are not dumpable, and at
/// `RUST_LOG=trace` neither logs the channel secret, the MAC key or the channel key's seed
/// while it serves a submission and an upload. Before the fix `serve` was dumpable (X3).
#[test]
fn the_channel_and_its_signer_are_not_dumpable_and_log_no_secret() {
    let mut ch = Channel::start();
    ch.kill();
    let data = ch.data_dir();
    let log = data.join("trace.log");
    let (child, url) = spawn_listening_observed(
        Command::new(bin("channel-server"))
            .args(["serve", "--config"])
            .arg(&ch.config)
            .env("RUST_LOG", "trace"),
        &log,
    );
    assert_hardened("channel-server serve", child.id());
    let signer = child_of(child.id(), "signer");
    assert_hardened("channel-server signer", signer);

    // Some traffic that makes the signer sign: a registration and a release with its upload.
    ch.base = url;
    let acme = Supplier::new("acme");
    acme.register(&ch);
    acme.publish(
        &ch,
        "hello",
        "1.0.0",
        &plugin_archive("acme/hello", "1.0.0", "x"),
    );
    ch.wait_published(3);
    stop(child);

    let secret = std::fs::read(data.join("local/channel-secret")).expect("secret");
    let mac = site_secret(&secret).derive(Purpose::InternalMac);
    let seed = ch.signing_key().seed();
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("signer ready"), "{text}");
    assert_absent(
        "the channel's trace log",
        &text,
        &[
            ("the channel secret", secret),
            ("the MAC key", mac.to_vec()),
            ("the channel key's seed", seed.to_vec()),
        ],
    );
}

/// Attempts S14–S15 and S8: `continuum notary serve` (the notary key) and `continuum update`
/// (it reads the site secret for its rollout bucket) are not dumpable, and at
/// `RUST_LOG=trace` the notary logs neither the site secret nor the notary key's seed. The
/// update is observed while it waits for a channel that accepted its connection and never
/// answers. Before the fix both were dumpable (X2).
#[test]
fn continuum_and_its_notary_are_not_dumpable_and_log_no_secret() {
    let ch = Channel::start();
    let mut site = Site::init(&ch);
    let log = site.root.join("notary-trace.log");
    let (notary, url) = spawn_listening_observed(
        Command::new(bin("continuum"))
            .arg("--dir")
            .arg(&site.root)
            .args(["notary", "serve", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "trace"),
        &log,
    );
    assert_hardened("continuum notary serve", notary.id());
    // A question it answers with a signature.
    let r = system_tests::agent()
        .get(&format!("{url}/healthz"))
        .call()
        .map(|r| r.status().as_u16());
    assert!(r.is_ok(), "{r:?}");
    site.notary_url = Some(url.clone());
    let _ = site.ask_notary(0);
    site.notary_url = None;
    stop(notary);

    let secret = std::fs::read(site.root.join("local/site-secret")).expect("site secret");
    let notary_seed = site_secret(&secret).derive(Purpose::NotarySigningSeed);
    let text = std::fs::read_to_string(&log).expect("log");
    assert_absent(
        "the notary's trace log",
        &text,
        &[
            ("the site secret", secret.clone()),
            ("the notary seed", notary_seed.to_vec()),
        ],
    );

    // `continuum update` against a channel that accepts and never answers.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = stalled.local_addr().expect("addr");
    site.set_mirror(&format!("http://{addr}"));
    let update = spawn_observed(
        Command::new(bin("continuum"))
            .arg("--dir")
            .arg(&site.root)
            .arg("update")
            .env("RUST_LOG", "trace"),
    );
    let (conn, _) = stalled.accept().expect("continuum connects");
    assert_hardened("continuum update", update.id());
    drop(conn);
    stop(update);
}

/// Options of `bin` and all its subcommands, from their `--help` (recursively).
fn all_options(bin_name: &str) -> Vec<(String, String)> {
    fn walk(bin_name: &str, path: &mut Vec<String>, out: &mut Vec<(String, String)>) {
        let o = Command::new(bin(bin_name))
            .args(path.iter())
            .arg("--help")
            .output()
            .expect("help");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{bin_name} {path:?} --help: {text}");
        let mut section = "";
        let mut subs = Vec::new();
        for line in text.lines() {
            if !line.starts_with(' ') && line.ends_with(':') {
                section = line;
                continue;
            }
            if line.trim().is_empty() && section == "Commands:" {
                section = "";
            }
            let t = line.trim_start();
            if section == "Commands:" && line.starts_with("  ") && !line.starts_with("      ") {
                if let Some(name) = t.split_whitespace().next()
                    && name != "help"
                {
                    subs.push(name.to_owned());
                }
            } else if t.starts_with('-') {
                for word in t.split([' ', ',', '=', '<', '[']) {
                    if let Some(name) = word.strip_prefix("--")
                        && !name.is_empty()
                    {
                        out.push((format!("{bin_name} {}", path.join(" ")), name.to_owned()));
                    }
                }
            }
        }
        for s in subs {
            path.push(s);
            walk(bin_name, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(bin_name, &mut Vec::new(), &mut out);
    out
}

/// Attempts S1 and X4: no binary takes a passphrase, seed, share or secret key on its command
/// line. Every option whose name speaks of one is one of these: `--passphrase-stdin` (read it
/// from standard input), `--allow-weak-passphrase`, `--generate-words` (a count),
/// `--plain` (hangar backup combine: write the seed unsealed, a file), `--shares` (a count),
/// `--invite` (barge key register: the one-time invite token, finding X4) beside
/// `--invite-file` (the fix: it keeps the token off the command line), and channel-server's
/// hidden signer's `--secret-file` (a path; hidden commands have no help and are not walked).
#[test]
fn no_secret_is_taken_on_the_command_line() {
    let suspicious = [
        "pass", "seed", "secret", "mnemonic", "word", "share", "token", "invite", "private",
        "plain",
    ];
    let mut found: Vec<String> = Vec::new();
    let mut total = 0;
    for b in ["barge", "hangar", "continuum", "channel-server"] {
        for (cmd, name) in all_options(b) {
            total += 1;
            if suspicious.iter().any(|s| name.contains(s)) {
                found.push(format!("{} --{name}", cmd.trim_end()));
            }
        }
    }
    assert!(total > 100, "only {total} options seen");
    found.sort();
    found.dedup();
    let allowed_names = [
        "passphrase-stdin",
        "allow-weak-passphrase",
        "generate-words",
        "plain",
        "invite",
        "invite-file",
        "shares",
    ];
    for f in &found {
        let name = f.rsplit("--").next().unwrap_or_default();
        assert!(allowed_names.contains(&name), "unexpected option {f}");
    }
    assert!(
        found.contains(&"barge key register --invite".to_owned()),
        "{found:#?}"
    );
    assert!(
        found.contains(&"barge key register --invite-file".to_owned()),
        "{found:#?}"
    );
}

/// Finding X4 (fixed): the invite token need not be on the command line. `barge key register
/// --invite-file FILE` registers with the token read from the file; while barge waits for the
/// passphrase (the token already read), its command line, readable by every local user in
/// `/proc/PID/cmdline`, does not hold the token. Fails before the fix (no such option: exit 2).
#[test]
fn the_invite_token_can_stay_off_the_command_line() {
    let ch = Channel::start_with("invite", system_tests::RATE_LIMITS_OFF);
    let d = tempfile::tempdir().expect("tempdir");
    ok(&barge(d.path())
        .args([
            "init",
            "--channel",
            &ch.base,
            "--channel-key",
            &ch.key.to_hex(),
        ])
        .args(["--supplier", "acme"])
        .output()
        .expect("barge init"));
    let child =
        spawn_observed(barge(d.path()).args(["key", "new", "--master", "--passphrase-stdin"]));
    ok(&answer(child, &format!("{PASS}\n")));
    let token = ch.invite("acme");
    let file = d.path().join("invite.txt");
    std::fs::write(&file, format!("{token}\n")).expect("write");
    let mut cmd = barge(d.path());
    cmd.args([
        "--json",
        "key",
        "register",
        "--passphrase-stdin",
        "--invite-file",
    ])
    .arg(&file);
    let child = spawn_observed(&mut cmd);
    wait_reading_stdin(child.id());
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).expect("cmdline");
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(&token),
        "the token is on the command line"
    );
    let out = answer(child, &format!("{PASS}\n"));
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    assert_eq!(v["index"], 0, "{v}");
    assert!(!system_tests::output_text(&out).contains(&token));
}

/// Attempts S2–S4: a wrong passphrase is refused with exit 1 and a message naming the key's
/// recorded public key, never the passphrase typed nor the key it derives; without
/// `--passphrase-stdin` and without a terminal, barge refuses (exit 2) rather than reading the
/// pipe or an environment variable; `BARGE_PASSPHRASE`-style variables are ignored.
#[test]
fn a_wrong_passphrase_is_refused_without_echo() {
    let d = author_with_key();
    let wrong = "wrong horse battery staple again";
    let mut cmd = barge(d.path());
    cmd.current_dir(d.path())
        .args(["sign", "file", "--key", "signing-", "--passphrase-stdin"]);
    let out = answer(spawn_observed(&mut cmd), &format!("{wrong}\n"));
    let text = system_tests::output_text(&out);
    assert_eq!(exit_code(&out), 1, "{text}");
    assert!(
        text.contains("wrong passphrase (or corrupted key file): the derived key does not match the recorded public key"),
        "{text}"
    );
    assert!(!text.contains(wrong) && !text.contains(PASS), "{text}");
    // The key the wrong passphrase derives would be an offline oracle for the typo: absent.
    let key_file = std::fs::read_dir(d.path().join("local"))
        .expect("local")
        .flatten()
        .next()
        .expect("a key file")
        .path();
    let kf = keyggdrasil::keyfile::KeyFile::parse(&std::fs::read(&key_file).expect("read"))
        .expect("key file");
    let derivation = kf.derivation.clone().expect("derived key");
    let typo_key = derivation
        .derive_keypair(wrong.as_bytes())
        .expect("derive")
        .public();
    assert!(!text.contains(&typo_key.to_hex()), "{text}");
    assert!(!text.contains(&typo_key.fingerprint()), "{text}");

    // No terminal, no flag: refused before reading, whatever the environment says.
    let mut cmd = barge(d.path());
    cmd.current_dir(d.path())
        .args(["sign", "file", "--key", "signing-"])
        .env("BARGE_PASSPHRASE", PASS)
        .env("PASSPHRASE", PASS);
    let out = answer(spawn_observed(&mut cmd), &format!("{PASS}\n"));
    let text = system_tests::output_text(&out);
    assert_eq!(exit_code(&out), 2, "{text}");
    assert!(
        text.contains("this key needs its passphrase and there is no terminal to ask on"),
        "{text}"
    );
    assert!(!d.path().join("file.sig").exists());
}

/// Modes of everything under `dir`: (relative path, mode & 0o777, is_dir).
fn modes(dir: &Path) -> Vec<(String, u32, bool)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).expect("meta");
            let rel = p.strip_prefix(dir).expect("prefix").display().to_string();
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.push((rel, m.permissions().mode() & 0o777, m.is_dir()));
        }
    }
    out.sort();
    out
}

/// `sh -c 'umask 000; exec BIN ARGS'`.
fn with_umask_0(bin_path: &Path) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", "umask 000; exec \"$0\" \"$@\""])
        .arg(bin_path);
    c
}

fn assert_private(what: &str, local: &Path) {
    let meta = std::fs::metadata(local).expect("local");
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o700,
        "{what}: {}",
        local.display()
    );
    let all = modes(local);
    assert!(!all.is_empty(), "{what}: nothing in {}", local.display());
    for (rel, mode, is_dir) in all {
        // The signer's socket is 0600 too; folders 0700.
        let want = if is_dir { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{what}: {rel} has mode {mode:o}");
    }
}

/// Attempts S17–S18: under `umask 000`, every secret file is still created 0600 in a 0700
/// `local/` (they are opened `O_CREAT|O_EXCL` with mode 0600 by `secretfile::write_secret_file`,
/// never created and chmod-ed after): barge's key, hangar's key and backup shares, the
/// channel's key and secret, the site secret.
#[test]
fn secret_files_are_private_under_a_permissive_umask() {
    let d = tempfile::tempdir().expect("tempdir");
    let author = d.path().join("author");
    let mut c = with_umask_0(&bin("barge"));
    c.arg("--dir").arg(&author).args([
        "init",
        "--offline",
        "--channel",
        "http://127.0.0.1:9",
        "--channel-key",
        SOME_KEY,
        "--supplier",
        "acme",
    ]);
    ok(&c.output().expect("barge init"));
    let mut c = with_umask_0(&bin("barge"));
    c.arg("--dir")
        .arg(&author)
        .env("BARGE_TEST_KDF", "cheap")
        .args(["key", "new", "--signing", "--passphrase-stdin"]);
    ok(&answer(spawn_observed(&mut c), &format!("{PASS}\n")));
    assert_private("barge key new", &author.join("local"));

    let air = d.path().join("air");
    let mut c = with_umask_0(&bin("hangar"));
    c.arg("--dir")
        .arg(&air)
        .env("HANGAR_TEST_KDF", "cheap")
        .args(["--json", "key", "new", "--master", "--passphrase-stdin"]);
    let made: serde_json::Value =
        serde_json::from_str(&ok(&answer(spawn_observed(&mut c), &format!("{PASS}\n"))))
            .expect("json");
    assert_private("hangar key new", &air.join("local"));
    let shares = air.join("shares");
    let mut c = with_umask_0(&bin("hangar"));
    c.arg("--dir").arg(&air).args([
        "backup",
        "split",
        "--key",
        made["file"].as_str().expect("file"),
        "--threshold",
        "2",
        "--shares",
        "3",
        "--passphrase-stdin",
        "--out-dir",
    ]);
    c.arg(&shares);
    ok(&answer(spawn_observed(&mut c), &format!("{PASS}\n")));
    assert_private("hangar backup split --out-dir", &shares);
    assert_eq!(modes(&shares).len(), 3);

    let channel = d.path().join("channel");
    let mut c = with_umask_0(&bin("channel-server"));
    c.args(["init", "--dir"]).arg(&channel).args([
        "--name",
        "umask.example",
        "--listen",
        "127.0.0.1:0",
    ]);
    ok(&c.output().expect("channel init"));
    assert_private("channel-server init", &channel.join("local"));
    let names: Vec<String> = modes(&channel.join("local"))
        .into_iter()
        .map(|m| m.0)
        .collect();
    assert!(names.contains(&"channel-secret".to_owned()), "{names:?}");

    let ch = Channel::start();
    let site = d.path().join("site");
    let mut c = with_umask_0(&bin("continuum"));
    c.args(["init", "--dir"]).arg(&site).args([
        "--channel",
        &ch.base,
        "--channel-key",
        &ch.key.to_hex(),
        "--notary-listen",
        "127.0.0.1:0",
    ]);
    ok(&c.output().expect("continuum init"));
    assert_private("continuum init", &site.join("local"));
}
