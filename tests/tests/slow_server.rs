//! Slow retrieval: a mirror that accepts the connection and answers, but drips its answer a
//! byte at a time, so that a site without a whole-request timeout would wait forever (and an
//! attacker could keep it from ever seeing an update). The site's timeouts
//! (`[transport] timeout_secs` for API calls, `download_timeout_secs` for archives) end the
//! request; the run fails as "unreachable" (exit 4), says it timed out, and changes nothing.
//!
//! The timeouts are set to 2 s here. Nothing asserts how long the run took beyond a generous
//! upper bound that only a hang would exceed.

use std::time::{Duration, Instant};

use system_tests::front::{Answer, Front};
use system_tests::{Channel, Site, Supplier, assert_says, exit};

/// Far above the 2 s timeouts plus process start-up, far below "hangs".
const HANG: Duration = Duration::from_secs(60);

fn installed_file(site: &Site) -> String {
    std::fs::read_to_string(site.root.join("packages/acme/hello/current/plugin.php"))
        .unwrap_or_default()
}

fn drip() -> Answer {
    Answer::Drip {
        length: 1 << 20,
        every: Duration::from_millis(200),
    }
}

/// A channel with acme/hello 1.0.0 and a site on it (no peers: `allow_no_peers`, so that the
/// only thing that can be slow is the channel's mirror); 1.1.0 then published.
fn world() -> (Channel, Supplier, Site) {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    acme.publish_plugin(&channel, "hello", "1.0.0", "first");
    let site = Site::init(&channel);
    site.set_option("site", "allow_no_peers", true);
    site.set_option("transport", "timeout_secs", 2);
    site.set_option("transport", "download_timeout_secs", 2);
    assert_says(
        &site.run(&["install", "acme/hello"]),
        exit::OK,
        &["installed 1.0.0"],
    );
    acme.publish_plugin(&channel, "hello", "1.1.0", "second");
    (channel, acme, site)
}

/// The mirror drips its `/v1/updates` answer.
#[test]
fn slow_update_answer_times_out() {
    let (channel, _acme, site) = world();
    let front = Front::start(&channel.base, |path| {
        if path.starts_with("/v1/updates") {
            drip()
        } else {
            Answer::Pass
        }
    });
    site.set_mirror(&front.url);
    let started = Instant::now();
    let t = site.assert_update_refused(
        exit::UNREACHABLE,
        &["could not reach channel test.channel", "timed out"],
    );
    assert!(started.elapsed() < HANG, "{t}");
    assert!(installed_file(&site).contains("1.0.0 first"));
    // The front did start answering: this is a slow server, not a dead one.
    assert!(front.sent.load(std::sync::atomic::Ordering::SeqCst) > 0);

    // Back to the real mirror: the update goes through.
    site.set_mirror(&channel.base);
    assert_says(&site.run(&["update"]), exit::OK, &["installed 1.1.0"]);
}

/// The mirror answers the API honestly but drips the archive: the log entries are accepted
/// (that part of the run worked), the download times out, nothing is installed, and the
/// bytes received are kept to resume. Bytes from a misbehaving mirror cannot be checked until
/// the download is complete: the resumed download then fails its digest check, and continuum
/// downloads it once more from the start in the same run instead of reporting a failure.
#[test]
fn slow_archive_download_times_out() {
    let (channel, _acme, site) = world();
    let front = Front::start(&channel.base, |path| {
        if path.starts_with("/v1/archives/") {
            drip()
        } else {
            Answer::Pass
        }
    });
    site.set_mirror(&front.url);
    // Accept the log first: `patch` does not allow 1.1.0.
    site.set_policy("patch");
    assert_says(&site.run(&["update"]), exit::OK, &["applied 1 new entries"]);
    site.set_policy("all");
    let started = Instant::now();
    let t = site.assert_update_refused(
        exit::UNREACHABLE,
        &["acme/hello 1.1.0: download incomplete", "timed out"],
    );
    assert!(started.elapsed() < HANG, "{t}");
    assert!(installed_file(&site).contains("1.0.0 first"));

    // The kept bytes came from the slow mirror (filler, here): the resumed download from the
    // real mirror fails its digest check, is deleted and downloaded again from the start, in
    // the same run, which installs and says why it downloaded twice.
    site.set_mirror(&channel.base);
    assert_says(
        &site.run(&["update"]),
        exit::OK,
        &[
            "installed 1.1.0",
            "archive digest mismatch",
            "resumed from kept bytes, downloading it again",
        ],
    );
    assert!(installed_file(&site).contains("1.1.0 second"));
}

/// The site's only peer accepts the connection and drips its answer: with
/// `[site] peer_timeout_secs = 1` the request times out, counts as no answer, and with no
/// other peer the update fails as unreachable, saying the peer timed out.
#[test]
fn slow_peer_times_out_and_counts_as_no_answer() {
    let (channel, _acme, site) = world();
    let slow_peer = Front::start(&channel.base, |path| {
        if path.starts_with("/v1/notary/") {
            drip()
        } else {
            Answer::Pass
        }
    });
    site.set_option("site", "allow_no_peers", false);
    site.set_option("site", "peer_timeout_secs", 1);
    site.add_peer(
        &slow_peer.url,
        &keyggdrasil::keys::KeyPair::generate().public(),
    );
    let started = Instant::now();
    let t = site.assert_update_refused(
        exit::UNREACHABLE,
        &[
            "peers did not confirm the channel's log",
            &format!("{}: unreachable", slow_peer.url),
            "timed out",
            "nothing was applied",
        ],
    );
    assert!(started.elapsed() < HANG, "{t}");
    assert!(
        slow_peer
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.starts_with("POST /v1/notary/")),
        "the site never asked the slow peer"
    );
}
