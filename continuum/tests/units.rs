//! The shipped systemd units parse: `systemd-analyze verify` on instances of the templates in
//! `fixtures/systemd/`, with `ExecStart` pointing at the continuum binary this build made (so
//! the check that the command exists and is executable passes). Skipped, with a note, where
//! `systemd-analyze` is not installed.

use std::path::Path;
use std::process::Command;

#[test]
fn systemd_units_parse() {
    let probe = Command::new("systemd-analyze").arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        println!("note: systemd-analyze is not installed; the unit files were not verified");
        return;
    }
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/systemd");
    let binary = env!("CARGO_BIN_EXE_continuum");
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    let mut templates: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                // barge's units are verified with the barge binary (tests/tests/monitor.rs).
                .is_some_and(|n| n.contains("@.") && n.starts_with("continuum-"))
        })
        .collect();
    templates.sort();
    for template in &templates {
        let name = template.file_name().unwrap().to_str().unwrap();
        let instance = name.replacen("@.", "@test.", 1);
        let text = std::fs::read_to_string(template).unwrap();
        if name.ends_with(".service") {
            assert!(
                text.contains("ExecStart=/usr/local/bin/continuum "),
                "{name}: expected ExecStart=/usr/local/bin/continuum …"
            );
        }
        let path = dir.path().join(&instance);
        std::fs::write(&path, text.replace("/usr/local/bin/continuum", binary)).unwrap();
        units.push((instance, path));
    }
    let names: Vec<&str> = units.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "continuum-update@test.service",
        "continuum-update@test.timer",
        "continuum-notary@test.service",
    ] {
        assert!(names.contains(&expected), "missing {expected} in {names:?}");
    }

    let paths: Vec<_> = units.iter().map(|(_, p)| p.clone()).collect();
    system_tests::systemd_verify(&paths, &names);
}
