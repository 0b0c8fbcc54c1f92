//! The signer dying and coming back, and rate limits.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use keyggdrasil::protocol::Context;
use keyggdrasil::wire::Checkpoint;

use super::harness::Channel;

/// PIDs of the direct children of `pid`.
fn children(pid: u32) -> Vec<u32> {
    // Each thread (task) lists the children it forked; the signer is spawned from a worker.
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path().join("children");
        out.extend(
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    out
}

#[test]
fn signer_death_gives_503_then_recovers() {
    let ch = Channel::start_with("open", "");
    let serve = ch.pid();
    let signer = *children(serve).first().expect("serve has a signer child");
    // Keep the signer from starting again: its key file becomes readable by others, which the
    // signer refuses. Then kill it without warning.
    let key_file = ch.config.parent().unwrap().join("local/channel-key.json");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::process::Command::new("kill")
        .args(["-9", &signer.to_string()])
        .status()
        .unwrap();

    // Every signed endpoint now answers 503, and health says so; serve never signs itself.
    let mut saw_503 = false;
    for _ in 0..100 {
        match ch.get::<serde_json::Value>(&format!("/v1/updates?since=0&nonce={}", "ab".repeat(32)))
        {
            Err((503, code)) => {
                assert_eq!(code, "signer_unavailable");
                saw_503 = true;
                break;
            }
            other => {
                let _ = other;
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    assert!(saw_503, "no 503 while the signer was down");
    let r = super::harness::agent()
        .get(&ch.url("/healthz"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 503);

    // Fix the file: the supervisor restarts the signer and signed answers come back.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut ok = false;
    for _ in 0..300 {
        if let Ok(s) = ch.get::<keyggdrasil::wire::Signed>("/v1/checkpoint") {
            let cp: Checkpoint = s.open(&ch.key, Context::Checkpoint, 1 << 16).unwrap();
            assert_eq!(cp.size, 0);
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "signer did not come back");
    let new_signer = *children(serve).first().unwrap();
    assert_ne!(new_signer, signer);
}

#[test]
fn reads_are_rate_limited_per_client() {
    let ch = Channel::start_with("open", "reads_per_minute = 60\nburst = 5");
    let codes: Vec<u16> = (0..12)
        .map(|_| match ch.get::<serde_json::Value>("/v1/checkpoint") {
            Ok(_) => 200,
            Err((s, code)) => {
                if s == 429 {
                    assert_eq!(code, "rate_limited");
                }
                s
            }
        })
        .collect();
    assert!(codes.iter().take(5).all(|c| *c == 200), "{codes:?}");
    assert!(codes.contains(&429), "{codes:?}");
    // Health is not rate limited.
    let r = super::harness::agent()
        .get(&ch.url("/healthz"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
}
