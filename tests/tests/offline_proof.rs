//! Offline proofs of a release (issue 16, item 4): the channel exports a release as a C2SP
//! `tlog-proof@v1` file (`GET /v1/proof/release`), and `continuum verify-proof` checks it and
//! the archive with the channel stopped; a proof for another release, a changed index, a
//! checkpoint by another key, a truncated file and a site of another channel are each refused
//! with exit 3.

use system_tests::{Channel, Site, Supplier, agent, output_text, plugin_archive};

fn proof_of(ch: &Channel, version: &str) -> String {
    agent()
        .get(&ch.url(&format!(
            "/v1/proof/release?supplier=acme&package=hello&version={version}"
        )))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap()
}

#[test]
fn a_release_proof_verifies_offline_and_every_forgery_is_refused() {
    let mut ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    let first = plugin_archive("acme/hello", "1.0.0", "first");
    acme.publish(&ch, "hello", "1.0.0", &first);
    let second = plugin_archive("acme/hello", "1.1.0", "second");
    acme.publish(&ch, "hello", "1.1.0", &second);
    ch.wait_published(4);
    let site = Site::init(&ch);
    let other_site = Site::init(&Channel::start());
    let (p1, p2) = (proof_of(&ch, "1.0.0"), proof_of(&ch, "1.1.0"));
    assert!(p1.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{p1}");
    assert!(p1.contains("\nindex 2\n"), "{p1}");
    // Not published yet / unknown: 404.
    let missing = agent()
        .get(&ch.url("/v1/proof/release?supplier=acme&package=hello&version=9.9.9"))
        .call()
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    // Offline from here on.
    ch.kill();
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let archive = dir.path().join("hello-1.0.0.zip");
    std::fs::write(&archive, &first).unwrap();
    let archive = archive.to_str().unwrap().to_owned();

    let good = file("good", &p1);
    let out = site.run(&["verify-proof", &good, "--archive", &archive]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("acme/hello 1.0.0 is entry 2"), "{text}");

    let refused = |args: &[&str], says: &str, who: &Site| {
        let out = who.run(args);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {text}");
        assert!(text.contains(says), "{args:?}: {text}");
    };
    // The proof of 1.1.0 with the archive of 1.0.0.
    let other = file("other", &p2);
    refused(
        &["verify-proof", &other, "--archive", &archive],
        "the archive is not",
        &site,
    );
    // Another index for the same entry.
    let moved = file("moved", &p1.replacen("\nindex 2\n", "\nindex 1\n", 1));
    refused(&["verify-proof", &moved], "inclusion proof", &site);
    // The checkpoint replaced by one of another key under the channel's name.
    let (head, _) = p1.split_once("\n\n").unwrap();
    let forged_cp = keyggdrasil::tlog_checkpoint::sign(
        &ch.origin(),
        4,
        &[1; 32],
        &keyggdrasil::keys::KeyPair::generate(),
    )
    .unwrap();
    let forged = file("forged", &format!("{head}\n\n{forged_cp}"));
    refused(&["verify-proof", &forged], "checkpoint", &site);
    // Truncated.
    let cut = file("cut", &p1[..p1.len() / 2]);
    refused(&["verify-proof", &cut], "does not verify", &site);
    // A site of another channel (same origin name, another key) refuses the real proof.
    refused(&["verify-proof", &good], "does not verify", &other_site);

    // barge checks the same proof with the channel's key, and the archive's signature too.
    let barge = |args: &[&str]| {
        std::process::Command::new(system_tests::bin("barge"))
            .args(args)
            .output()
            .unwrap()
    };
    let key = ch.key.to_hex();
    let out = barge(&["verify", "--public-key", &key, "--proof", &good, &archive]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("is acme/hello 1.0.0, entry 2"), "{text}");
    let other_key = keyggdrasil::keys::KeyPair::generate().public().to_hex();
    for args in [
        vec![
            "verify",
            "--public-key",
            &other_key,
            "--proof",
            &good,
            &archive,
        ],
        vec!["verify", "--public-key", &key, "--proof", &other, &archive],
        vec!["verify", "--public-key", &key, "--proof", &moved, &archive],
    ] {
        let out = barge(&args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            output_text(&out)
        );
        assert!(output_text(&out).contains("INVALID"), "{args:?}");
    }
}
