//! channel-server's command line: one exit code per outcome (0 ok, 1 a check found a mismatch,
//! 2 usage, 5 local), `--json` on every command including errors, and `--dir` as the name of
//! the channel's folder (with `--config FILE` kept).

use std::process::{Command, Output};

use system_tests::Channel;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_channel-server"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run channel-server")
}

fn json(o: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {text}"))
}

fn assert_error(o: &Output, code: i32, kind: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(o);
    assert_eq!(v["error"]["exit_code"], code, "{v}");
    assert_eq!(v["error"]["kind"], kind, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

#[test]
fn exit_codes_and_json_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ch");
    let d = dir.to_str().unwrap();

    // 0, with the result as JSON.
    let o = run(&["--json", "init", "--dir", d, "--name", "c.example"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    assert_eq!(v["origin"], "c.example");
    assert_eq!(v["channel_key"].as_str().map(str::len), Some(64));

    // 2: a folder that already holds a channel; a bad name; a bad argument (clap).
    assert_error(&run(&["--json", "init", "--dir", d]), 2, "usage");
    let other = tmp.path().join("other");
    assert_error(
        &run(&[
            "--json",
            "init",
            "--dir",
            other.to_str().unwrap(),
            "--name",
            "a b",
        ]),
        2,
        "usage",
    );
    assert_error(
        &run(&["--json", "invite", "Not A Name", "--dir", d]),
        2,
        "usage",
    );
    assert_eq!(
        run(&["check"]).status.code(),
        Some(2),
        "--dir or --config is required"
    );

    // 0 through --dir and through --config alike.
    let o = run(&["--json", "check", "--archives", "--dir", d]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(json(&o)["size"], 0);
    let cfg = dir.join("channel.toml");
    assert_eq!(
        run(&["check", "--config", cfg.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );

    // 5: no such folder; an unreadable database.
    let missing = tmp.path().join("nowhere");
    assert_error(
        &run(&["--json", "check", "--dir", missing.to_str().unwrap()]),
        5,
        "local",
    );
    std::fs::write(dir.join("channel.db"), b"not a database").unwrap();
    for f in ["channel.db-wal", "channel.db-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    assert_error(&run(&["--json", "check", "--dir", d]), 5, "local");
}

#[test]
fn a_mismatch_exits_1_with_the_findings() {
    let mut ch = Channel::start();
    let acme = system_tests::Supplier::new("acme");
    acme.register(&ch);
    acme.publish(&ch, "hello", "1.0.0", b"archive bytes of hello");
    ch.kill();
    let archives = ch.data_dir().join("archives");
    for e in std::fs::read_dir(&archives).unwrap() {
        let p = e.unwrap().path();
        std::fs::write(&p, b"archive bytes of hellO").unwrap();
    }
    let o = run(&[
        "--json",
        "check",
        "--archives",
        "--config",
        ch.config.to_str().unwrap(),
    ]);
    assert_error(&o, 1, "rejected");
    let v = json(&o);
    assert_eq!(
        v["details"]["bad_archives"][0]["release"], "acme/hello 1.0.0",
        "{v}"
    );
}

#[test]
fn help_lists_the_exit_codes() {
    let o = run(&["--help"]);
    let text = String::from_utf8_lossy(&o.stdout);
    for code in ["0 ok", "1 `check`", "2 usage", "5 local"] {
        assert!(text.contains(code), "{code} missing in:\n{text}");
    }
}
