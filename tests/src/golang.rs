//! Go's own code as a checker of ours: builds the small Go programs under `tests/go/` offline,
//! in GOPATH mode, against Debian's `golang-go` and `golang-golang-x-mod-dev`
//! (`/usr/share/gocode`), once per test process.
//!
//! Without Go the caller's test is skipped with a loud message, unless `CI=true`, where it
//! fails: `.ci/run` installs both packages.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Where Debian's `golang-golang-x-mod-dev` puts `golang.org/x/mod`.
const GOPATH: &str = "/usr/share/gocode";

/// A built Go checker.
pub struct GoTool {
    bin: PathBuf,
}

impl GoTool {
    /// Runs the tool with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .output()
            .expect("run the Go checker")
    }
}

/// Builds `tests/go/<name>/<name>.go` (once per process) and returns it; `None` when Go or
/// `golang.org/x/mod` is missing outside CI. A build failure is a test failure.
pub fn tool(name: &'static str) -> Option<&'static GoTool> {
    static BUILT: OnceLock<std::sync::Mutex<Vec<(&'static str, &'static GoTool)>>> =
        OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().expect("go tools");
    if let Some((_, t)) = built.iter().find(|(n, _)| *n == name) {
        return Some(t);
    }
    let have_go = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    let have_mod = std::path::Path::new(GOPATH)
        .join("src/golang.org/x/mod/sumdb/note")
        .is_dir();
    if !have_go || !have_mod {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Go or golang.org/x/mod is not installed (apt-get install -y golang-go golang-golang-x-mod-dev); CI must run this test"
        );
        eprintln!(
            "SKIPPED: Go or golang.org/x/mod is not installed (apt-get install -y golang-go golang-golang-x-mod-dev)"
        );
        return None;
    }
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("go")
        .join(name)
        .join(format!("{name}.go"));
    // Kept for the process's life: the binary and Go's build cache live here.
    let dir = Box::leak(Box::new(tempfile::tempdir().expect("tempdir")));
    let bin = dir.path().join(name);
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", dir.path().join("cache"))
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .output()
        .expect("run go build");
    assert!(
        out.status.success(),
        "go build {}: {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let tool: &'static GoTool = Box::leak(Box::new(GoTool { bin }));
    built.push((name, tool));
    Some(tool)
}
