//! Shared helpers of the channel benchmarks: start the real `channel-server` binary, read the
//! load average, and sample a process's memory and CPU time from `/proc`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The release-built server binary (cargo builds it for benches with the bench profile).
pub const BIN: &str = env!("CARGO_BIN_EXE_channel-server");

/// The 1-, 5- and 15-minute load averages, as `/proc/loadavg` prints them.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// A folder for the benchmark's data: under `$BENCH_DIR` if set, else the system temp folder.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    match std::env::var_os("BENCH_DIR") {
        Some(d) => b.tempdir_in(d),
        None => b.tempdir(),
    }
    .expect("create a temporary folder")
}

/// `channel-server init` in `dir/channel`, then replaces `[limits]` values (`key = value` lines
/// of the generated config). Returns the config path.
pub fn init_channel(dir: &Path, limits: &[(&str, &str)]) -> PathBuf {
    let data = dir.join("channel");
    let out = Command::new(BIN)
        .args(["init", "--dir"])
        .arg(&data)
        .args(["--name", "bench.channel", "--policy", "open"])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("run channel-server init");
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = data.join("channel.toml");
    let mut text = std::fs::read_to_string(&config).expect("read config");
    for (key, value) in limits {
        let old = text
            .lines()
            .find(|l| l.split('=').next().map(str::trim) == Some(*key))
            .unwrap_or_else(|| panic!("no limit {key} in the generated config"))
            .to_owned();
        text = text.replace(&old, &format!("{key} = {value}"));
    }
    std::fs::write(&config, text).expect("write config");
    config
}

/// A running `channel-server serve`.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its config file.
    pub config: PathBuf,
}

impl Server {
    /// Starts `serve --config` and waits for `listening on http://ADDR` and a healthy signer.
    pub fn start(config: &Path) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn channel-server serve");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .expect("read serve's first line");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from serve: {line:?}"))
            .to_owned();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let s = Server {
            child: Some(child),
            base,
            config: config.to_path_buf(),
        };
        s.wait_healthy();
        s
    }

    fn wait_healthy(&self) {
        let agent = agent(1);
        for _ in 0..300 {
            if let Ok(r) = agent.get(&format!("{}/healthz", self.base)).call()
                && r.status() == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("channel did not become healthy");
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// SIGTERM, then waits up to 10 s (SIGKILL after that).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `channel-server check --config`: recomputes the tree and replays the rules. Returns its
/// output line (`ok: N entries, root …`); panics if the check fails.
pub fn check(config: &Path) -> String {
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run channel-server check");
    assert!(
        out.status.success(),
        "check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A keep-alive HTTP agent that reports 4xx/5xx as answers, not errors.
pub fn agent(max_idle: usize) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(max_idle.max(1))
        .max_idle_connections_per_host(max_idle.max(1))
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// `(VmRSS, VmHWM)` of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// User plus system CPU time of a process so far, in seconds.
pub fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(14) + ticks(15)) as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// Child processes of `pid` (e.g. the signer that `serve` started).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat"))
            && let Some((_, rest)) = stat.rsplit_once(')')
            && rest.split_whitespace().nth(1) == Some(&pid.to_string())
        {
            out.push(child);
        }
    }
    out
}

/// The machine, for the report header.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "?".into());
    format!("{cpus} CPUs, {model}")
}
