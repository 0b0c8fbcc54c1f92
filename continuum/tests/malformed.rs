//! Malformed is not missing (issue 12, item 6), through the real `continuum` binary against a
//! real `channel-server` and real notaries on loopback, with the shared hostile front
//! (`system_tests::front::Front`) in between where a source must misbehave:
//!
//! - a channel mirror that answers, and whose answer is garbage, cut short, JSON of another
//!   shape, an HTTP error status or signed with another key, fails verification (exit 3) and
//!   the message names the URL; an overloaded mirror (503) and a closed port are unreachable
//!   (exit 4);
//! - a bogus peer and an unreachable peer are counted apart in `update --json` and in
//!   `status --json` (which warns about the bogus one), and told once per run;
//! - `peers add` asks the peer for a signed answer and refuses a key it does not prove.

use std::process::Output;

use keyggdrasil::keys::KeyPair;
use system_tests::front::{Answer, Front, evil_log};
use system_tests::{Channel, Site, Supplier, assert_says, exit, output_text};

/// Refuses connections.
const CLOSED: &str = "http://127.0.0.1:1";

/// A channel with acme/hello 1.0.0 (3 entries) and a fresh site on it that trusts the
/// channel alone (`allow_no_peers`), so that only the mirror decides the outcome.
fn world() -> (Channel, Site) {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    acme.publish_plugin(&channel, "hello", "1.0.0", "first");
    let site = Site::init(&channel);
    site.set_option("site", "allow_no_peers", true);
    (channel, site)
}

fn json_body(status: u16, body: &str) -> Answer {
    Answer::Body {
        status,
        content_type: "application/json".into(),
        body: body.as_bytes().to_vec(),
    }
}

/// Each way a mirror can answer something unusable: exit 3, the URL named, nothing changed.
/// Before, every one of these exited 4 ("could not reach channel"), so tampering looked like
/// an outage.
#[test]
fn a_channel_answer_that_arrives_malformed_fails_verification() {
    let (channel, site) = world();
    type Case = (&'static str, fn() -> Answer, &'static [&'static str]);
    let cases: &[Case] = &[
        (
            "garbage",
            || Answer::Body {
                status: 200,
                content_type: "text/html".into(),
                body: b"<html>captive portal</html>".to_vec(),
            },
            &["malformed answer", "not a channel answer", "captive portal"],
        ),
        (
            "cut short",
            || Answer::Cut {
                length: 4096,
                head: br#"{"status":"ok","data":{"payload":"#.to_vec(),
            },
            &["malformed answer", "cut short"],
        ),
        (
            "wrong JSON",
            || json_body(200, r#"{"status":"ok","data":{"hello":"world"}}"#),
            &["malformed answer", "not a channel answer"],
        ),
        (
            "404",
            || {
                json_body(
                    404,
                    r#"{"status":"error","code":"not_found","message":"no such"}"#,
                )
            },
            &["malformed answer", "HTTP 404", "base URL"],
        ),
        (
            "500",
            || Answer::Body {
                status: 500,
                content_type: "text/plain".into(),
                body: b"Internal Server Error".to_vec(),
            },
            &["malformed answer", "HTTP 500"],
        ),
        (
            "not HTTP",
            || Answer::Full {
                status: 200,
                headers: vec![("Bad Header Name".into(), "x".into())],
                body: b"{}".to_vec(),
            },
            &["malformed answer"],
        ),
    ];
    for (name, answer, says) in cases {
        let answer = *answer;
        let front = Front::start(&channel.base, move |path| {
            if path.starts_with("/v1/updates") {
                answer()
            } else {
                Answer::Pass
            }
        });
        site.set_mirror(&front.url);
        let mut all = vec!["verification_failed", front.url.as_str()];
        all.extend_from_slice(says);
        println!("case: {name}");
        site.assert_update_refused(exit::VERIFICATION, &all);
        assert_eq!(site.accepted_size(), 0, "{name}");
    }

    // Signed with another key: well-formed, and still a verification failure naming the URL.
    let upstream = channel.base.clone();
    let forger = KeyPair::generate();
    let front = Front::start(&channel.base, move |path| {
        if path.starts_with("/v1/updates") {
            evil_log(&upstream, &forger, &[], path)
        } else {
            Answer::Pass
        }
    });
    site.set_mirror(&front.url);
    site.assert_update_refused(
        exit::VERIFICATION,
        &["fails verification", &front.url, "signature"],
    );

    // The real channel: the same site updates.
    site.set_mirror(&channel.base);
    assert_says(&site.run(&["update"]), exit::OK, &[]);
    assert_eq!(site.accepted_size(), 3);
}

/// An overloaded mirror and a closed port are outages (exit 4), not verification failures;
/// an overloaded first mirror is skipped for the next.
#[test]
fn an_overloaded_or_closed_mirror_is_unreachable() {
    let (channel, site) = world();
    let busy = Front::start(&channel.base, |path| {
        if path.starts_with("/v1/updates") {
            json_body(503, r#"{"status":"error","code":"busy","message":"later"}"#)
        } else {
            Answer::Pass
        }
    });
    site.set_mirror(&busy.url);
    site.assert_update_refused(
        exit::UNREACHABLE,
        &["could not reach channel", &busy.url, "HTTP 503"],
    );
    site.set_mirror(CLOSED);
    site.assert_update_refused(exit::UNREACHABLE, &["could not reach channel", CLOSED]);
    // Busy first, the real channel second: the second is asked and the update goes through.
    let busy_url = busy.url.clone();
    let real = channel.base.clone();
    site.edit_config(move |cfg| {
        let c = cfg["channel"].as_array_mut().unwrap()[0]
            .as_table_mut()
            .unwrap();
        c.insert(
            "mirrors".into(),
            toml::Value::Array(vec![busy_url.into(), real.into()]),
        );
    });
    assert_says(&site.run(&["update"]), exit::OK, &[]);
    assert_eq!(site.accepted_size(), 3);
}

/// A peer that answers garbage (bogus) and a peer on a closed port (unreachable), beside one
/// honest notary: 2 agreements are needed of 3, so the update fails as unreachable (exit 4:
/// an unverifiable peer never counts as a disagreement), and the two are named and counted
/// apart in `update --json` and `status --json`; each is told once, although the peers are
/// asked about three sizes (pop-off).
#[test]
fn bogus_and_unreachable_peers_are_counted_apart() {
    let (channel, site) = world();
    site.set_option("site", "allow_no_peers", false);
    let mut honest = Site::init(&channel);
    let honest_url = honest.start_notary();
    let bogus = Front::serve(|_| json_body(200, "this is not a notary answer"));
    site.add_peer(&honest_url, &honest.notary_key);
    site.add_peer(&bogus.url, &KeyPair::generate().public());
    site.add_peer(CLOSED, &KeyPair::generate().public());

    let before = site.snapshot();
    let out = site.run(&["--json", "update"]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(exit::UNREACHABLE), "{text}");
    assert_eq!(site.snapshot(), before);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("update --json");
    let ch = &v["channels"][0];
    let urls = |key: &str| -> Vec<String> {
        ch[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} in {v}"))
            .iter()
            .map(|p| p["url"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(urls("peers_bogus"), vec![bogus.url.clone()], "{v}");
    assert_eq!(urls("peers_unreachable"), vec![CLOSED.to_owned()], "{v}");
    let notes: Vec<&str> = ch["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    // One line per failing peer and one for the sizes refused, however many rounds ran.
    let count = |s: &str| notes.iter().filter(|n| n.starts_with(s)).count();
    assert_eq!(
        count(&format!("channel test.channel: peer {}: BOGUS", bogus.url)),
        1,
        "{notes:#?}"
    );
    assert_eq!(
        count(&format!("channel test.channel: peer {CLOSED}: unreachable")),
        1,
        "{notes:#?}"
    );
    let refused: Vec<&&str> = notes
        .iter()
        .filter(|n| n.starts_with("channel test.channel: peers did not confirm size"))
        .collect();
    assert_eq!(refused.len(), 1, "{notes:#?}");
    assert!(
        refused[0].starts_with("channel test.channel: peers did not confirm size 3: too few peers")
            && refused[0].ends_with("; the same for sizes 2, 1"),
        "{notes:#?}"
    );
    assert!(text.contains("continuum peers add"), "{text}");

    let st = site.run(&["--json", "status"]);
    assert_eq!(
        st.status.code(),
        Some(exit::ATTENTION),
        "{}",
        output_text(&st)
    );
    let s: serde_json::Value = serde_json::from_slice(&st.stdout).expect("status --json");
    let listed = |key: &str| -> Vec<String> {
        s[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} in {s}"))
            .iter()
            .map(|p| p["url"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(listed("peers_bogus"), vec![bogus.url.clone()], "{s}");
    assert_eq!(listed("peers_unreachable"), vec![CLOSED.to_owned()], "{s}");
    assert!(
        s["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .contains(&format!("peer {} sent a bogus answer", bogus.url))),
        "{s}"
    );
    honest.stop_notary();
}

/// No peers at all, and `allow_no_peers` not set: the message names both ways out.
#[test]
fn no_peers_names_peers_add_and_allow_no_peers() {
    let (_channel, site) = world();
    site.set_option("site", "allow_no_peers", false);
    let before = site.snapshot();
    let out = site.run(&["update"]);
    assert_says(
        &out,
        5,
        &[
            "no peers are configured",
            "continuum peers add URL KEY",
            "allow_no_peers = true",
        ],
    );
    assert_eq!(site.snapshot(), before);
}

fn config_of(site: &Site) -> Vec<u8> {
    std::fs::read(site.root.join("continuum.toml")).expect("config")
}

fn add(site: &Site, args: &[&str]) -> Output {
    let mut all = vec!["peers", "add"];
    all.extend_from_slice(args);
    site.run(&all)
}

/// `peers add` asks the peer for a fresh signed answer and adds it only if the key verifies;
/// otherwise nothing changes. `--offline` adds without asking.
#[test]
fn peers_add_verifies_the_key_unless_offline() {
    let (channel, site) = world();
    let mut peer = Site::init(&channel);
    let url = peer.start_notary();
    let key = peer.notary_key.to_hex();
    let empty = config_of(&site);

    // A key the peer does not hold: refused as a verification failure, nothing saved.
    let wrong = KeyPair::generate().public().to_hex();
    assert_says(
        &add(&site, &[&url, &wrong]),
        exit::VERIFICATION,
        &[
            "did not prove that it holds notary key",
            "signature",
            "nothing was added",
        ],
    );
    assert_eq!(config_of(&site), empty);

    // A server that is not a notary.
    let bogus = Front::serve(|_| json_body(200, "{}"));
    assert_says(
        &add(&site, &[&bogus.url, &key]),
        exit::VERIFICATION,
        &[&bogus.url, "not a notary answer", "nothing was added"],
    );
    // Not running: unreachable, and the message names --offline.
    assert_says(
        &add(&site, &[CLOSED, &key]),
        exit::UNREACHABLE,
        &[CLOSED, "could not be reached", "--offline"],
    );
    // Not a URL: a usage error naming the fix.
    assert_says(
        &add(&site, &["peer.example.net:9000", &key]),
        2,
        &["peer.example.net:9000", "http://peer.example.net:9000"],
    );
    assert_eq!(config_of(&site), empty);

    // The right key: verified and added.
    assert_says(
        &add(&site, &[&url, &key]),
        exit::OK,
        &["verified", "fresh answer", &format!("added peer {url}")],
    );
    assert_ne!(config_of(&site), empty);

    // --offline: added without asking (the closed port is never contacted).
    let other = KeyPair::generate().public().to_hex();
    assert_says(
        &add(&site, &["--offline", CLOSED, &other]),
        exit::OK,
        &["--offline", &format!("added peer {CLOSED}")],
    );
    let listed = site.run(&["peers", "list"]);
    let t = output_text(&listed);
    assert!(t.contains(&url) && t.contains(CLOSED), "{t}");
    peer.stop_notary();
}
