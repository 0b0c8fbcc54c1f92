//! The I/O fence, enforced: outside `src/os/`, keyggdrasil's product code (everything before a
//! file's `#[cfg(test)]` module) names no file system, clock, network, process, environment,
//! randomness or libc API. A new `std::fs::File::open` in `state.rs` fails this test, which
//! points at `src/os/` (see its module docs for the rule).

use std::path::{Path, PathBuf};

/// Tokens that mean "talks to the operating system".
const FORBIDDEN: &[&str] = &[
    "std::fs",
    "fs::",
    "File::",
    "OpenOptions",
    "std::net",
    "TcpStream",
    "SystemTime",
    "Instant::now",
    "std::process",
    "std::env",
    "libc::",
    "getrandom",
    "OsRng",
    "rand::",
    "unsafe ",
    "rusqlite",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The product part of a source file: before its test module, without comment lines.
fn product_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        .filter(|(_, l)| {
            let t = l.trim_start();
            !t.starts_with("//")
        })
}

#[test]
fn only_the_os_module_touches_the_operating_system() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let fence = src.join("os");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&fence)) {
        let text = std::fs::read_to_string(file).expect("read");
        for (n, line) in product_lines(&text) {
            for token in FORBIDDEN {
                if line.contains(token) {
                    found.push(format!(
                        "{}:{}: {token}: {}",
                        file.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "OS calls outside keyggdrasil/src/os/ (move them behind the fence):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_would_see_a_violation() {
    // The scanner itself must find what it looks for (a test that cannot fail proves nothing).
    let sample = "use std::fs::File;\nfn f() { let _ = File::open(\"x\"); }\n#[cfg(test)]\nmod t { use std::fs; }\n";
    let hits: Vec<_> = product_lines(sample)
        .filter(|(_, l)| FORBIDDEN.iter().any(|t| l.contains(t)))
        .collect();
    assert_eq!(hits.len(), 2);
}
