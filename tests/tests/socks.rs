//! Tor-style transport: `[transport] proxy = "socks5h://…"`, against a real SOCKS5 server
//! (`microsocks`, Debian package `microsocks`; `.ci/run` installs it).
//!
//! The site names its channel mirror and its peer by a host name (`localhost`), so a proxy
//! that resolves names itself (socks5h, as Tor must for `.onion`) is told the name, and
//! microsocks logs `connected to localhost:PORT`: the traffic went through the proxy and the
//! proxy did the DNS. With `socks5://` instead, the site resolves the name itself and the
//! proxy sees an address. With the proxy stopped, the update fails as unreachable (exit 4) and
//! changes nothing: the site never falls back to a direct connection.
//!
//! Without microsocks the test is skipped with a loud message, unless `CI=true`, where it
//! fails.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use system_tests::{Channel, Site, Supplier, assert_says, exit};

/// A running microsocks, its log in a file.
struct Socks {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Socks {
    /// Starts microsocks on a free loopback port; `None` if it is not installed.
    fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("microsocks.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("microsocks")
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "microsocks did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self {
            child,
            port,
            log,
            _dir: dir,
        })
    }

    fn log(&self) -> String {
        let mut s = String::new();
        std::fs::File::open(&self.log)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Socks {
    fn drop(&mut self) {
        self.stop();
    }
}

fn microsocks_or_skip() -> Option<Socks> {
    match Socks::start() {
        Some(s) => Some(s),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "microsocks is not installed (apt-get install -y microsocks); CI must run this test"
            )
        }
        None => {
            eprintln!(
                "\n!!!!! SKIPPED socks5h test: microsocks is not installed. Install it with `apt-get install -y microsocks` (.ci/run does). !!!!!\n"
            );
            None
        }
    }
}

/// `http://127.0.0.1:PORT` → (`http://localhost:PORT`, `localhost:PORT`).
fn by_name(url: &str) -> (String, String) {
    let host_port = url
        .strip_prefix("http://127.0.0.1:")
        .expect("a loopback URL");
    (
        format!("http://localhost:{host_port}"),
        format!("localhost:{host_port}"),
    )
}

#[test]
fn update_through_socks5h_proxy() {
    let Some(mut socks) = microsocks_or_skip() else {
        return;
    };
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    acme.publish_plugin(&channel, "hello", "1.0.0", "via socks");
    let mut notary = Site::init(&channel);
    let notary_url = notary.start_notary();
    let site = Site::init(&channel);
    let (channel_url, channel_target) = by_name(&channel.base);
    let (peer_url, peer_target) = by_name(&notary_url);
    site.set_mirror(&channel_url);
    site.add_peer(&peer_url, &notary.notary_key);
    site.set_option(
        "transport",
        "proxy",
        format!("socks5h://127.0.0.1:{}", socks.port),
    );

    let t = assert_says(
        &site.run(&["install", "acme/hello"]),
        exit::OK,
        &["confirmed by 1 of 1 peers", "installed 1.0.0"],
    );
    assert!(
        std::fs::read_to_string(site.root.join("packages/acme/hello/current/plugin.php"))
            .unwrap()
            .contains("1.0.0 via socks"),
        "{t}"
    );
    let log = socks.log();
    println!("microsocks log:\n{log}");
    for target in [&channel_target, &peer_target] {
        assert!(
            log.contains(&format!("connected to {target}")),
            "the proxy did not resolve and connect to {target} (socks5h):\n{log}"
        );
    }

    // socks5:// (local DNS): the same run shows the proxy an address, not the name.
    site.set_option(
        "transport",
        "proxy",
        format!("socks5://127.0.0.1:{}", socks.port),
    );
    let before = socks.log().len();
    assert_says(&site.run(&["update"]), exit::OK, &[]);
    let log = socks.log();
    let new_lines = &log[before..];
    assert!(
        new_lines.contains("connected to 127.0.0.1:")
            && !new_lines.contains("connected to localhost"),
        "with socks5:// the site should resolve names itself:\n{new_lines}"
    );

    // The proxy is gone: no direct connection instead; unreachable, nothing changed.
    site.set_option(
        "transport",
        "proxy",
        format!("socks5h://127.0.0.1:{}", socks.port),
    );
    socks.stop();
    acme.publish_plugin(&channel, "hello", "1.1.0", "not without the proxy");
    site.assert_update_refused(
        exit::UNREACHABLE,
        &[
            "could not reach channel test.channel",
            &channel_url,
            &format!("(through proxy socks5h://127.0.0.1:{})", socks.port),
        ],
    );
    notary.stop_notary();
}
