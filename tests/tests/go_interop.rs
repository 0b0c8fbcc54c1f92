//! Our formats checked by Go's own code (issue 16, item 5): the channel's checkpoint note,
//! from `GET /checkpoint` and from the static `public/checkpoint`, opened by
//! `golang.org/x/mod/sumdb/note` (`tests/go/notecheck`) with the verifier key `channel-server
//! init` printed; and refused by it when forged.
//!
//! Without Go the tests are skipped with a loud message, unless `CI=true`, where they fail.

use system_tests::{Channel, Supplier};

fn verifier_key(ch: &Channel) -> String {
    let stats: serde_json::Value = ch.get("/v1/stats").unwrap();
    stats["verifier_key"].as_str().unwrap().to_owned()
}

#[test]
fn go_s_note_package_opens_the_channel_s_checkpoint() {
    let Some(go) = system_tests::golang::tool("notecheck") else {
        return;
    };
    let ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    acme.publish_plugin(&ch, "hello", "1.0.0", "first");
    ch.wait_published(3);
    let vkey = verifier_key(&ch);
    // The key the channel's config carries, as `init` wrote it.
    let config = std::fs::read_to_string(ch.data_dir().join("channel.toml")).unwrap();
    assert!(
        config.contains(&format!("verifier_key = \"{vkey}\"")),
        "{config}"
    );

    let out = go.run(&["-vkey", &vkey, "-url", &ch.url("/checkpoint")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let mut lines = text.lines();
    let name_and_id: Vec<&str> = vkey.splitn(3, '+').take(2).collect();
    assert_eq!(
        lines.next(),
        Some(format!("ok {}", name_and_id.join("+")).as_str())
    );
    assert_eq!(lines.next(), Some(ch.origin().as_str()));
    assert_eq!(lines.next(), Some("3"));

    let file = ch.public_dir().join("checkpoint");
    let out = go.run(&["-vkey", &vkey, "-file", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn go_s_note_package_refuses_a_forged_checkpoint() {
    let Some(go) = system_tests::golang::tool("notecheck") else {
        return;
    };
    let ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    ch.wait_published(2);
    let vkey = verifier_key(&ch);
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read_to_string(ch.public_dir().join("checkpoint")).unwrap();
    let cases = [
        // Another size under the channel's signature line.
        ("other size", real.replacen("\n2\n", "\n3\n", 1)),
        // Signed by another key under the channel's name.
        (
            "other key",
            keyggdrasil::tlog_checkpoint::sign(
                &ch.origin(),
                2,
                &[1; 32],
                &keyggdrasil::keys::KeyPair::generate(),
            )
            .unwrap(),
        ),
        // The final newline cut.
        ("truncated", real.trim_end().to_owned()),
    ];
    for (what, note) in cases {
        let path = dir.path().join("cp");
        std::fs::write(&path, note).unwrap();
        let out = go.run(&["-vkey", &vkey, "-file", path.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{what}: {text}");
        assert!(text.starts_with("refused:"), "{what}: {text}");
    }
}

/// A notary's `cosignature/v1` (from `POST /add-checkpoint`) is checked by Go too: x/mod's
/// `note.Open` with the channel's key and a cosignature/v1 `Verifier` written in Go from the
/// spec (`tests/go/notecheck`), so both signatures are verified by code that is not ours.
#[test]
fn go_verifies_a_notary_s_cosignature() {
    let Some(go) = system_tests::golang::tool("notecheck") else {
        return;
    };
    let ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    ch.wait_published(2);
    let mut site = system_tests::Site::init(&ch);
    let url = site.start_notary();
    let note = system_tests::agent()
        .get(&ch.url("/checkpoint"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let mut r = system_tests::agent()
        .post(&format!("{url}/add-checkpoint"))
        .send(format!("old 0\n\n{note}").as_bytes())
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let line = r.body_mut().read_to_string().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cosigned");
    std::fs::write(&path, format!("{note}{line}")).unwrap();
    let cosigner = continuum::notary::witness::verifier_key(&site.notary_key);
    let vkey = verifier_key(&ch);
    let out = go.run(&[
        "-vkey",
        &vkey,
        "-cosigner",
        &cosigner,
        "-file",
        path.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let first = text.lines().next().unwrap();
    let name = |k: &str| k.splitn(3, '+').take(2).collect::<Vec<_>>().join("+");
    assert_eq!(first, format!("ok {} {}", name(&vkey), name(&cosigner)));
    // The cosignature moved to another checkpoint text: Go refuses it.
    let other = note.replacen("\n2\n", "\n3\n", 1);
    let (text_only, _) = other.split_once("\n\n").unwrap();
    let moved = format!("{text_only}\n\n{line}");
    std::fs::write(&path, moved).unwrap();
    let out = go.run(&[
        "-vkey",
        &vkey,
        "-cosigner",
        &cosigner,
        "-file",
        path.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    site.stop_notary();
}
