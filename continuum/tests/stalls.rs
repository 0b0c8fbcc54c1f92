//! Stalls (issue 12, item 7), through the real `continuum` binary against a real
//! `channel-server` on loopback, with the shared hostile front (`system_tests::front::Front`)
//! as a mirror that trickles or stalls:
//!
//! - a mirror that sends an archive at 10 bytes/s, below the floor of
//!   `[transport] min_rate_bytes_per_sec` over `min_rate_window_secs` (2 s here), is left for
//!   the next mirror and the install succeeds, far sooner than `download_timeout_secs` (300 s
//!   here) would have allowed; so is a mirror that sends nothing at all after its headers;
//! - `[transport] run_deadline_secs` ends a run whose channel answer trickles, with exit 4, a
//!   message naming the key, and the site unchanged.
//!
//! Nothing asserts a lower bound on time; the upper bounds (60 s) are far above the 2 s windows
//! and far below the 300 s timeouts they replace.

use std::time::{Duration, Instant};

use system_tests::front::{Answer, Front};
use system_tests::{Channel, Site, Supplier, assert_says, exit};

/// Far above the 2 s windows plus process start-up, far below the 300 s timeouts.
const BOUND: Duration = Duration::from_secs(60);

fn installed_file(site: &Site) -> String {
    std::fs::read_to_string(site.root.join("packages/acme/hello/current/plugin.php"))
        .unwrap_or_default()
}

/// A channel with acme/hello 1.0.0, a site on it (no peers: `allow_no_peers`) with long
/// timeouts and a 2 s rate window, whose mirrors are `first` and then the real channel.
fn world(first: impl Fn(&str) -> Answer + Send + Sync + 'static) -> (Channel, Site, Front) {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    acme.publish_plugin(&channel, "hello", "1.0.0", "first");
    let site = Site::init(&channel);
    site.set_option("site", "allow_no_peers", true);
    site.set_option("transport", "timeout_secs", 300);
    site.set_option("transport", "download_timeout_secs", 300);
    site.set_option("transport", "min_rate_window_secs", 2);
    let front = Front::start(&channel.base, first);
    let mirrors = vec![
        toml::Value::from(front.url.clone()),
        toml::Value::from(channel.base.clone()),
    ];
    site.edit_config(move |cfg| {
        cfg["channel"].as_array_mut().expect("channels")[0]
            .as_table_mut()
            .expect("channel")
            .insert("mirrors".into(), toml::Value::Array(mirrors));
    });
    (channel, site, front)
}

fn archive_requests(front: &Front) -> usize {
    front
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.starts_with("GET /v1/archives/"))
        .count()
}

/// 10 bytes/s from the first mirror: abandoned after the 2 s window, the second mirror
/// delivers, the install succeeds. Before, the download waited for `download_timeout_secs`.
#[test]
fn a_trickling_mirror_is_left_for_the_next() {
    let (_channel, site, front) = world(|path| {
        if path.starts_with("/v1/archives/") {
            Answer::Drip {
                length: 1 << 20,
                every: Duration::from_millis(100),
            }
        } else {
            Answer::Pass
        }
    });
    let started = Instant::now();
    let t = assert_says(
        &site.run(&["install", "acme/hello"]),
        exit::OK,
        &["installed 1.0.0"],
    );
    let took = started.elapsed();
    assert!(took < BOUND, "took {took:?}:\n{t}");
    assert!(installed_file(&site).contains("1.0.0 first"), "{t}");
    assert!(
        archive_requests(&front) >= 1,
        "the trickling mirror was never asked"
    );
    assert!(
        front.sent.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the mirror did trickle"
    );
}

/// The first mirror sends its headers, then nothing: noticed at the end of the window too
/// (the read that blocks does not hold the run), and the second mirror delivers.
#[test]
fn a_silent_mirror_is_left_for_the_next() {
    let (_channel, site, front) = world(|path| {
        if path.starts_with("/v1/archives/") {
            Answer::Stall {
                length: 1 << 20,
                head: Vec::new(),
            }
        } else {
            Answer::Pass
        }
    });
    let started = Instant::now();
    let t = assert_says(
        &site.run(&["install", "acme/hello"]),
        exit::OK,
        &["installed 1.0.0"],
    );
    let took = started.elapsed();
    assert!(took < BOUND, "took {took:?}:\n{t}");
    assert!(installed_file(&site).contains("1.0.0 first"), "{t}");
    assert!(
        archive_requests(&front) >= 1,
        "the silent mirror was never asked"
    );
}

/// Only trickling mirrors: the install fails as unreachable, saying the download stalled and
/// naming the setting, well before the 300 s download timeout.
#[test]
fn only_trickling_mirrors_fail_as_unreachable_saying_stalled() {
    let (_channel, site, front) = world(|path| {
        if path.starts_with("/v1/archives/") {
            Answer::Drip {
                length: 1 << 20,
                every: Duration::from_millis(100),
            }
        } else {
            Answer::Pass
        }
    });
    let url = front.url.clone();
    site.edit_config(move |cfg| {
        cfg["channel"].as_array_mut().expect("channels")[0]
            .as_table_mut()
            .expect("channel")
            .insert("mirrors".into(), toml::Value::Array(vec![url.into()]));
    });
    let started = Instant::now();
    let t = assert_says(
        &site.run(&["install", "acme/hello"]),
        exit::UNREACHABLE,
        &["stalled", "min_rate_bytes_per_sec", &front.url],
    );
    let took = started.elapsed();
    assert!(took < BOUND, "took {took:?}:\n{t}");
    assert!(installed_file(&site).is_empty(), "{t}");
}

/// The channel's update answer trickles; `timeout_secs` is 300 s, but the run's deadline is
/// 2 s: the run ends with exit 4, says it reached its deadline and which key sets it, and the
/// site is unchanged.
#[test]
fn the_run_deadline_ends_a_trickling_run() {
    let (_channel, site, front) = world(|path| {
        if path.starts_with("/v1/updates") {
            Answer::Drip {
                length: 1 << 20,
                every: Duration::from_millis(100),
            }
        } else {
            Answer::Pass
        }
    });
    site.set_option("transport", "run_deadline_secs", 2);
    let started = Instant::now();
    let t = site.assert_update_refused(
        exit::UNREACHABLE,
        &["deadline", "run_deadline_secs", &front.url],
    );
    let took = started.elapsed();
    assert!(took < BOUND, "took {took:?}:\n{t}");
    assert_eq!(site.accepted_size(), 0);
}
