//! Log lines reach journald and log files as plain text: no ANSI colour codes when stderr is
//! not a terminal (here, a pipe), with or without `NO_COLOR`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use system_tests::Channel;

#[test]
fn no_colour_codes_when_stderr_is_a_pipe() {
    let mut ch = Channel::start();
    ch.kill();
    for no_color in [None, Some("1")] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_channel-server"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&ch.config)
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let mut child = cmd.spawn().expect("spawn");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with("listening on "), "{first:?}");
        let _ = child.kill();
        let _ = child.wait();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(err.contains("INFO"), "some log lines were written: {err:?}");
        assert!(!err.contains('\u{1b}'), "ANSI codes in piped logs: {err:?}");
    }
}
