//! Processes: finding (or building) the binaries, running one-shot commands, starting servers,
//! and stopping everything and removing the demo folder on every path out.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The binaries the demo drives.
pub const BINARIES: [&str; 3] = ["channel-server", "continuum", "barge"];

/// The error of a step cut short by Ctrl-C (`main` exits 130 on it).
pub const INTERRUPTED: &str = "interrupted (Ctrl-C)";

/// SIGINT's number on every Unix.
const SIGINT: i32 = 2;

/// How long a server may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Finds the three binaries: in `--bin-dir` if given (nothing is built), otherwise next to this
/// program after asking cargo to build them there (a no-op when they are up to date, so a
/// binary older than its sources is never used). Prints what it does.
pub fn find_binaries(bin_dir: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(dir) = bin_dir {
        check_present(dir)?;
        return Ok(dir.to_path_buf());
    }
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the path of this program: {e}"))?;
    // target/<profile>/quickstart: the others are built into the same folder.
    let dir = exe
        .parent()
        .ok_or("this program's path has no folder")?
        .to_path_buf();
    let target = dir
        .parent()
        .ok_or("this program is not in a target folder")?;
    let profile = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("this program's folder name is not UTF-8")?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = env!("CARGO");
    if !manifest.exists() || !Path::new(cargo).exists() {
        // Moved away from its workspace: use what is next to it, or say how to get it.
        check_present(&dir).map_err(|e| {
            format!(
                "{e}; the workspace this program was built from is gone, so it cannot build them"
            )
        })?;
        return Ok(dir);
    }
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
        cmd.args(["-p", b]);
    }
    cmd.arg("--manifest-path").arg(&manifest);
    cmd.arg("--target-dir").arg(target);
    // `cargo run` gives this program the variables it gives crates (CARGO_MANIFEST_DIR,
    // CARGO_PKG_NAME, ...). Passed on, they would differ from a plain `cargo build`, and build
    // scripts that track them (ring's tracks CARGO_MANIFEST_DIR) would rebuild half the
    // dependency tree on every run, and again on the next plain build.
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
    println!(
        "Building channel-server, continuum and barge ({profile} profile) next to this program:\n  \
         cargo build{} -p channel-server -p continuum -p barge\n  \
         (a few seconds when they are up to date; several minutes on a fresh clone)",
        match profile {
            "debug" => String::new(),
            "release" => " --release".to_owned(),
            other => format!(" --profile {other}"),
        }
    );
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("could not run cargo ({cargo}): {e}"))?;
    if !status.success() {
        return Err(format!(
            "cargo build failed ({status}); fix the build, or pass --bin-dir with the three binaries"
        ));
    }
    check_present(&dir)?;
    Ok(dir)
}

fn check_present(dir: &Path) -> Result<(), String> {
    for b in BINARIES {
        if !dir.join(b).is_file() {
            return Err(format!(
                "{} is missing: build it with `cargo build -p channel-server -p continuum -p barge`, \
                 or pass --bin-dir FOLDER holding all three",
                dir.join(b).display()
            ));
        }
    }
    Ok(())
}

/// What must be undone when the demo ends: the servers it started and the demo folder.
struct Cleanup {
    children: Vec<(String, Child)>,
    /// The folder; `None` once removed (or handed over with `--keep`).
    dir: Option<tempfile::TempDir>,
    keep: bool,
}

impl Cleanup {
    /// Stops every server (kill, then wait so none is left a zombie), then removes the folder
    /// unless `--keep`. Returns what happened to the folder, for the closing line.
    fn run(&mut self) -> Option<String> {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let stopped = self.children.len();
        self.children.clear();
        let dir = self.dir.take()?;
        let path = dir.path().to_path_buf();
        Some(if self.keep {
            let _ = dir.keep();
            format!(
                "Stopped {stopped} server processes; left the demo folder {} (--keep)",
                path.display()
            )
        } else {
            match dir.close() {
                Ok(()) => format!(
                    "Stopped {stopped} server processes and removed {}",
                    path.display()
                ),
                Err(e) => format!(
                    "Stopped {stopped} server processes; could not remove {}: {e}",
                    path.display()
                ),
            }
        })
    }
}

/// The running demo's processes and folder. Dropping it (normal end, error, panic) or Ctrl-C
/// stops every server it started and removes the folder.
pub struct World {
    /// The demo folder.
    pub root: PathBuf,
    /// Where the binaries are.
    pub bin: PathBuf,
    cleanup: Arc<Mutex<Cleanup>>,
    stopping: Arc<AtomicBool>,
}

impl World {
    /// Creates the demo folder and installs the Ctrl-C handler.
    pub fn new(bin: PathBuf, keep: bool) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("keyggdrasil-quickstart-")
            .tempdir()
            .map_err(|e| format!("could not create a temporary folder: {e}"))?;
        let root = dir.path().to_path_buf();
        std::fs::create_dir(root.join("logs"))
            .map_err(|e| format!("could not create {}/logs: {e}", root.display()))?;
        let cleanup = Arc::new(Mutex::new(Cleanup {
            children: Vec::new(),
            dir: Some(dir),
            keep,
        }));
        let stopping = Arc::new(AtomicBool::new(false));
        install_ctrl_c(Arc::clone(&cleanup), Arc::clone(&stopping));
        Ok(Self {
            root,
            bin,
            cleanup,
            stopping,
        })
    }

    /// A command for one of the binaries, with quiet logs.
    pub fn cmd(&self, bin: &str) -> Command {
        let mut c = Command::new(self.bin.join(bin));
        c.env("RUST_LOG", "warn");
        c
    }

    /// Runs `cmd` to its end with `stdin` as its standard input; returns its output whatever
    /// its exit code.
    pub fn output(&self, cmd: &mut Command, stdin: Option<&str>) -> Result<Output, String> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(INTERRUPTED.into());
        }
        let what = describe(cmd);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not start {what}: {e}"))?;
        if let Some(mut input) = child.stdin.take() {
            if let Some(s) = stdin {
                // A child that exits without reading its input is judged by its exit code.
                let _ = input.write_all(s.as_bytes());
            }
            drop(input);
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{what}: {e}"))?;
        // A terminal's Ctrl-C reaches the whole process group: the child stopped because the
        // user asked, not because a step misbehaved.
        if out.status.signal() == Some(SIGINT) || self.stopping.load(Ordering::SeqCst) {
            return Err(INTERRUPTED.into());
        }
        Ok(out)
    }

    /// Runs `cmd`; an error (with its standard error) unless it exits 0. Returns stdout.
    pub fn ok(&self, cmd: &mut Command, stdin: Option<&str>) -> Result<String, String> {
        let what = describe(cmd);
        let out = self.output(cmd, stdin)?;
        if !out.status.success() {
            return Err(format!(
                "{what} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Like [`World::ok`], and parses stdout as one JSON value.
    pub fn json(
        &self,
        cmd: &mut Command,
        stdin: Option<&str>,
    ) -> Result<serde_json::Value, String> {
        let what = describe(cmd);
        let text = self.ok(cmd, stdin)?;
        serde_json::from_str(text.trim())
            .map_err(|e| format!("{what} printed something that is not JSON ({e}): {text}"))
    }

    /// Starts a server whose first stdout line is `listening on http://ADDR`, with its
    /// standard error in `logs/NAME.log`; returns its base URL. It is stopped at the end.
    pub fn start_server(&self, name: &str, mut cmd: Command) -> Result<String, String> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(INTERRUPTED.into());
        }
        let what = describe(&cmd);
        let log_path = self.root.join("logs").join(format!("{name}.log"));
        let log = File::create(&log_path)
            .map_err(|e| format!("could not create {}: {e}", log_path.display()))?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("could not start {what}: {e}"))?;
        let stdout = child.stdout.take();
        self.cleanup
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .children
            .push((name.to_owned(), child));
        let stdout = stdout.ok_or("no stdout pipe")?;
        // Read the first line on a thread so a server that hangs cannot hang the demo; then
        // keep draining its stdout so it never blocks on a full pipe.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let got = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(got);
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(format!("{what}: could not read its output: {e}")),
            Err(_) => {
                return Err(format!(
                    "{what} did not say where it listens within {} s; see {}",
                    START_TIMEOUT.as_secs(),
                    log_path.display()
                ));
            }
        };
        if line.is_empty() && self.interrupted(name) {
            return Err(INTERRUPTED.into());
        }
        line.trim()
            .strip_prefix("listening on ")
            .map(str::to_owned)
            .ok_or_else(|| {
                format!(
                    "{what} did not start (first line {:?}); its log: {}",
                    line.trim(),
                    tail(&log_path)
                )
            })
    }

    /// True if the server `name` closed its output because Ctrl-C stopped it (it is given a
    /// second to exit after closing its output).
    fn interrupted(&self, name: &str) -> bool {
        for _ in 0..20 {
            if self.stopping.load(Ordering::SeqCst) {
                return true;
            }
            let mut cleanup = self.cleanup.lock().unwrap_or_else(PoisonError::into_inner);
            let Some((_, child)) = cleanup.children.iter_mut().find(|(n, _)| n == name) else {
                return false;
            };
            match child.try_wait() {
                Ok(Some(status)) => return status.signal() == Some(SIGINT),
                Ok(None) => {}
                Err(_) => return false,
            }
            drop(cleanup);
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Stops everything and removes the folder now (instead of at drop); returns the closing
    /// line.
    pub fn finish(&self) -> Option<String> {
        self.cleanup
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .run()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(line) = self.finish() {
            eprintln!("{line}");
        }
    }
}

/// On Ctrl-C: stop the children, remove the folder (unless `--keep`), exit 130. The servers
/// are in our process group, so a terminal's Ctrl-C reaches them too; this makes sure of it.
fn install_ctrl_c(cleanup: Arc<Mutex<Cleanup>>, stopping: Arc<AtomicBool>) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        // Without the handler, Drop still cleans up on every other path.
        return;
    };
    // Registered before the thread starts, so a Ctrl-C right after this returns is caught.
    let signal = rt.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    });
    let Ok(mut signal) = signal else {
        return;
    };
    std::thread::spawn(move || {
        rt.block_on(async {
            signal.recv().await;
        });
        stopping.store(true, Ordering::SeqCst);
        let line = cleanup.lock().unwrap_or_else(PoisonError::into_inner).run();
        eprintln!("\nquickstart: {INTERRUPTED}");
        if let Some(line) = line {
            eprintln!("{line}");
        }
        std::process::exit(130);
    });
}

/// The last lines of a log file, for error messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// `program arg arg` for messages (the arguments here hold no secrets: passphrases go on
/// standard input).
fn describe(cmd: &Command) -> String {
    let prog = Path::new(cmd.get_program())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!("`{prog} {}`", args.join(" "))
}
