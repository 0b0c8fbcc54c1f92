//! The notary endpoint and peer verification against a real `channel-server` and real notaries
//! over loopback HTTP.
//!
//! These tests run the real `channel-server` binary through the shared harness (`system-tests`),
//! which builds it when it is missing, so `cargo test -p continuum` passes alone.

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use continuum::channel::ChannelClient;
use continuum::config::{ChannelConfig, Config, PeerConfig, SitePaths, TransportConfig};
use continuum::notary::{
    self, Contradiction, NotaryOptions, ObserveError, check_evidence, fork_record, observe,
    observed_root_at, observed_size, serve_notary, serve_notary_with,
};
use continuum::peers::{PeerLineOutcome, PeerOutcome, PeerReport, verify_with_peers};
use continuum::transport::Http;
use keyggdrasil::kdf::SiteSecret;
use keyggdrasil::keys::{KeyPair, PublicKey};
use keyggdrasil::limits::Limits;
use keyggdrasil::merkle::{Blake2b256, Hash, TreeHasher, root_from_leaf_hashes};
use keyggdrasil::names::ChannelName;
use keyggdrasil::peers::{NoPeers, RejectReason};
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{
    Checkpoint, Envelope, Nonce, NotaryRequest, NotaryStatus, Signed, SubmitResponse, TreeHash,
    UpdatePayload, UpdateRequest, VerifiedUpdate, WireError, verify_notary_answer, verify_update,
};

const ORIGIN: &str = "test.channel";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ------------------------------------------------------------------------------------------
// A real channel
// ------------------------------------------------------------------------------------------

/// A real channel from the shared harness (`system-tests`), with what these tests add.
struct Channel(system_tests::Channel);

impl std::ops::Deref for Channel {
    type Target = system_tests::Channel;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Channel {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Channel {
    /// `channel-server init` + `serve`, with `page` entries per update page.
    fn start(page: u64) -> Self {
        Channel(system_tests::Channel::start_with(
            "open",
            &format!("max_entries_per_page = {page}"),
        ))
    }

    fn config(&self) -> ChannelConfig {
        ChannelConfig {
            name: ChannelName::parse(ORIGIN).unwrap(),
            key: self.key,
            mirrors: vec![self.base.clone()],
            tile_mirrors: Vec::new(),
            witness_policy: None,
            max_cosignature_age_secs: None,
        }
    }

    /// The channel's own signing key, read from its key file (to make it "lie" in tests).
    fn signing_key(&self) -> KeyPair {
        let kp = self.0.signing_key();
        assert_eq!(kp.public(), self.key);
        kp
    }

    fn submit(&self, entry: &str) -> SubmitResponse {
        self.0
            .try_submit_text(entry, None)
            .unwrap_or_else(|(status, code)| panic!("submit failed ({status}): {code}"))
    }

    /// Submits `n` new suppliers' master keys; returns the entries.
    fn grow(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let e = master_entry();
                self.submit(&e);
                e
            })
            .collect()
    }

    /// The channel's signed root at its current size, read from its checkpoint.
    fn head(&self) -> (u64, Hash) {
        let http = http();
        let limits = Limits::default();
        let cfg = self.config();
        let signed = ChannelClient::new(&cfg, &http, &limits)
            .checkpoint()
            .unwrap();
        let cp: Checkpoint = signed
            .open(&self.key, Context::Checkpoint, 1 << 16)
            .unwrap();
        (cp.size, cp.root.0)
    }
}

/// A fresh supplier's self-signed master key entry, as text.
fn master_entry() -> String {
    let name = format!("s{}", hex::encode(keyggdrasil::os::random::bytes::<6>()));
    let e = system_tests::Supplier::new(&name).master_entry();
    String::from_utf8(e.as_bytes().to_vec()).unwrap()
}

fn root_of(entries: &[String]) -> Hash {
    let leaves: Vec<Hash> = entries
        .iter()
        .map(|e| Blake2b256.hash_leaf(e.as_bytes()))
        .collect();
    root_from_leaf_hashes(&Blake2b256, &leaves).unwrap()
}

fn http() -> Http {
    Http::with_timeouts(
        &TransportConfig::default(),
        Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .unwrap()
}

/// A channel-signed update of `log[since..]` made with the channel's real key: what a lying
/// channel would send.
fn forged_update(ch: &Channel, key: &KeyPair, log: &[String], since: usize) -> VerifiedUpdate {
    let req = UpdateRequest {
        since: since as u64,
        nonce: Nonce::generate(),
    };
    let t = now();
    let signed = Signed::sign(
        key,
        Context::ChannelUpdate,
        &UpdatePayload {
            v: 1,
            origin: ChannelName::parse(ORIGIN).unwrap(),
            nonce: req.nonce,
            time: t,
            since: since as u64,
            size: log.len() as u64,
            root: TreeHash(root_of(log)),
            tree_size: log.len() as u64,
            entries: log[since..].to_vec(),
        },
    );
    // It passes every check a site makes on a channel answer.
    verify_update(
        &signed,
        &ch.key,
        &ch.config().name,
        &req,
        t,
        &Limits::default(),
    )
    .unwrap()
}

// ------------------------------------------------------------------------------------------
// Sites and their notaries
// ------------------------------------------------------------------------------------------

struct Site {
    _dir: tempfile::TempDir,
    paths: SitePaths,
    config: Config,
    notary_key: PublicKey,
}

impl Site {
    fn new(channel: ChannelConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let paths = SitePaths::new(dir.path());
        keyggdrasil::os::secretfile::ensure_private_dir(&paths.local).unwrap();
        let secret = SiteSecret::generate();
        keyggdrasil::os::secretfile::write_secret_file(&paths.secret, secret.expose(), false)
            .unwrap();
        let notary_key = secret.notary_keypair().unwrap().public();
        let config = Config {
            site: Default::default(),
            channels: vec![channel],
            peers: Vec::new(),
            packages: Vec::new(),
            transport: TransportConfig::default(),
            hooks: Default::default(),
        };
        config.save(&paths.config).unwrap();
        continuum::db::open(&paths.db).unwrap();
        Self {
            _dir: dir,
            paths,
            config,
            notary_key,
        }
    }

    fn db(&self) -> rusqlite::Connection {
        continuum::db::open(&self.paths.db).unwrap()
    }

    fn channel(&self) -> &ChannelConfig {
        &self.config.channels[0]
    }

    /// Fetches every page from the channel and observes it, as `continuum update` does.
    fn observe_all(&self) -> u64 {
        let http = http();
        let limits = Limits::default();
        let mut conn = self.db();
        let client = ChannelClient::new(self.channel(), &http, &limits);
        loop {
            let have = observed_size(&conn, &self.channel().name).unwrap();
            let u = client.updates(have, now()).unwrap();
            let more = u.has_more();
            observe(&mut conn, self.channel(), &u).unwrap();
            if !more {
                return observed_size(&conn, &self.channel().name).unwrap();
            }
        }
    }

    fn observe(&self, u: &VerifiedUpdate) -> Result<notary::Observation, ObserveError> {
        observe(&mut self.db(), self.channel(), u)
    }
}

/// Notaries served on one shared runtime; dropped at the end of the test.
struct Notaries {
    rt: tokio::runtime::Runtime,
}

impl Notaries {
    fn new() -> Self {
        Self {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    fn start(&self, site: &Site) -> PeerConfig {
        self.start_with(site, None)
    }

    /// Serves `site`'s notary; returns it as a peer entry (URL and its real key).
    fn start_with(&self, site: &Site, options: Option<NotaryOptions>) -> PeerConfig {
        let listener = self
            .rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (paths, config) = (site.paths.clone(), site.config.clone());
        self.rt.spawn(async move {
            let never = std::future::pending::<()>();
            let r = match options {
                Some(o) => serve_notary_with(&paths, config, o, listener, never).await,
                None => serve_notary(&paths, config, listener, never).await,
            };
            r.unwrap();
        });
        PeerConfig {
            url: format!("http://{addr}"),
            key: site.notary_key,
        }
    }
}

/// Asks a notary directly; returns its verified status.
fn ask(peer: &PeerConfig, size: u64) -> NotaryStatus {
    ask_channel(peer, ORIGIN, size).unwrap()
}

fn ask_channel(peer: &PeerConfig, channel: &str, size: u64) -> Result<NotaryStatus, WireError> {
    let req = NotaryRequest {
        channel: ChannelName::parse(channel).unwrap(),
        size,
        nonce: Nonce::generate(),
    };
    let r = http()
        .post_json(
            &format!("{}/v1/notary/root", peer.url),
            &serde_json::to_vec(&req).unwrap(),
            1 << 20,
        )
        .unwrap();
    let signed: Signed = Envelope::open(&r.body, 1 << 20)?;
    Ok(verify_notary_answer(&signed, &peer.key, &req, now(), &Limits::default())?.status)
}

fn raw_post(url: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    match agent
        .post(&format!("{url}/v1/notary/root"))
        .header("Content-Type", content_type)
        .send(body)
    {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.into_body().read_to_string().unwrap_or_default();
            (status, text)
        }
        // The server may answer 413 and close before the whole body is sent.
        Err(e) => (0, e.to_string()),
    }
}

fn peers_verify(
    peers: &[PeerConfig],
    channel: &ChannelConfig,
    size: u64,
    root: &Hash,
    concurrency: usize,
) -> PeerReport {
    let report = verify_with_peers(
        &http(),
        peers,
        channel,
        size,
        root,
        now(),
        &Limits::default(),
        concurrency,
        NoPeers::Refuse,
    );
    for l in &report.lines {
        eprintln!("  {l}");
    }
    eprintln!("{}", report.summary());
    report
}

fn closed_port() -> String {
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

// ------------------------------------------------------------------------------------------
// The notary endpoint
// ------------------------------------------------------------------------------------------

#[test]
fn notary_answers_observed_roots_and_fetches_on_demand() {
    let ch = Channel::start(2);
    let mut log = ch.grow(3);
    let site = Site::new(ch.config());
    assert_eq!(site.observe_all(), 3);
    let conn = site.db();
    let name = &site.channel().name;
    assert_eq!(
        observed_root_at(&conn, name, 3).unwrap(),
        Some(ch.head().1),
        "the observed root is the channel's"
    );
    assert_eq!(ch.head().1, root_of(&log));

    let notaries = Notaries::new();
    let peer = notaries.start(&site);
    // Observed sizes, and the empty tree.
    assert_eq!(
        ask(&peer, 3),
        NotaryStatus::Ok {
            root: TreeHash(root_of(&log))
        }
    );
    assert_eq!(
        ask(&peer, 2),
        NotaryStatus::Ok {
            root: TreeHash(root_of(&log[..2]))
        }
    );
    assert_eq!(
        ask(&peer, 0),
        NotaryStatus::Ok {
            root: TreeHash(Blake2b256.empty_root())
        }
    );

    // A size not observed yet: fetched from the channel on demand, page by page (2 per page).
    log.extend(ch.grow(4));
    assert_eq!(
        ask(&peer, 7),
        NotaryStatus::Ok {
            root: TreeHash(root_of(&log))
        }
    );
    assert_eq!(observed_size(&conn, name).unwrap(), 7);
    assert_eq!(ch.head(), (7, root_of(&log)));

    // Beyond the channel's log: behind, at what the channel has.
    assert_eq!(ask(&peer, 9), NotaryStatus::Behind { observed: 7 });

    // Not a channel this notary follows: an error envelope, not a signed answer.
    assert!(matches!(
        ask_channel(&peer, "other.channel", 1),
        Err(WireError::Remote { code, .. }) if code == "unknown_channel"
    ));
}

#[test]
fn notary_is_behind_when_the_channel_is_down() {
    let mut ch = Channel::start(500);
    let log = ch.grow(3);
    let site = Site::new(ch.config());
    assert_eq!(site.observe_all(), 3);
    let notaries = Notaries::new();
    let peer = notaries.start(&site);
    ch.grow(2);
    ch.kill();
    assert_eq!(ask(&peer, 5), NotaryStatus::Behind { observed: 3 });
    assert_eq!(
        ask(&peer, 3),
        NotaryStatus::Ok {
            root: TreeHash(root_of(&log))
        }
    );

    // A notary that never reached its channel is behind at 0.
    let lost = Site::new(ChannelConfig {
        mirrors: vec![closed_port()],
        tile_mirrors: Vec::new(),
        witness_policy: None,
        max_cosignature_age_secs: None,
        ..ch.config()
    });
    let lost_peer = notaries.start(&lost);
    assert_eq!(ask(&lost_peer, 1), NotaryStatus::Behind { observed: 0 });
}

#[test]
fn on_demand_fetches_are_rate_limited() {
    let ch = Channel::start(500);
    let mut log = ch.grow(1);
    let site = Site::new(ch.config());
    let notaries = Notaries::new();
    let peer = notaries.start_with(
        &site,
        Some(NotaryOptions {
            fetches_per_second: 1,
            fetch_burst: 1,
            fetch_wait: Duration::ZERO,
            ..NotaryOptions::default()
        }),
    );
    assert_eq!(
        ask(&peer, 1),
        NotaryStatus::Ok {
            root: TreeHash(root_of(&log))
        }
    );
    log.extend(ch.grow(1));
    // The one permit is spent: no second fetch right away, so the notary is behind ...
    assert_eq!(ask(&peer, 2), NotaryStatus::Behind { observed: 1 });
    // ... but what it observed is still answered, and a second later it fetches again.
    assert_eq!(
        ask(&peer, 1),
        NotaryStatus::Ok {
            root: TreeHash(root_of(&log[..1]))
        }
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        ask(&peer, 2),
        NotaryStatus::Ok {
            root: TreeHash(root_of(&log))
        }
    );
}

#[test]
fn notary_refuses_bad_requests_and_rate_limits() {
    let ch = Channel::start(500);
    ch.grow(1);
    let site = Site::new(ch.config());
    let notaries = Notaries::new();
    let peer = notaries.start_with(
        &site,
        Some(NotaryOptions {
            requests_per_minute_per_ip: 1,
            burst_per_ip: 5,
            ..NotaryOptions::default()
        }),
    );
    let good = serde_json::to_vec(&NotaryRequest {
        channel: ChannelName::parse(ORIGIN).unwrap(),
        size: 1,
        nonce: Nonce::generate(),
    })
    .unwrap();
    let (status, body) = raw_post(&peer.url, "text/plain", &good);
    assert_eq!(status, 415, "{body}");
    let (status, body) = raw_post(&peer.url, "application/json", b"{\"size\":1}");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad_request"), "{body}");
    let mut big = good.clone();
    big.extend(std::iter::repeat_n(b' ', 5000));
    let (status, body) = raw_post(&peer.url, "application/json", &big);
    assert!(status == 413 || status == 0, "{status} {body}");
    let (status, body) = raw_post(&peer.url, "application/json; charset=utf-8", &good);
    assert_eq!(status, 200, "{body}");
    // The burst of 5 is spent (the oversized request may or may not have been counted).
    let mut limited = false;
    for _ in 0..3 {
        let (status, body) = raw_post(&peer.url, "application/json", &good);
        if status == 429 {
            assert!(body.contains("rate_limited"), "{body}");
            limited = true;
        }
    }
    assert!(limited, "the per-IP limit never answered 429");
}

// ------------------------------------------------------------------------------------------
// Forks
// ------------------------------------------------------------------------------------------

#[test]
fn a_fork_is_kept_served_and_checked_by_peers() {
    let ch = Channel::start(500);
    let real = ch.grow(3);
    let key = ch.signing_key();

    // The channel shows this site two views of size 3, both signed with its real key.
    let site = Site::new(ch.config());
    let mut other = real.clone();
    other[1] = master_entry();
    other[2] = master_entry();
    site.observe(&forged_update(&ch, &key, &real, 0)).unwrap();
    let err = site
        .observe(&forged_update(&ch, &key, &other, 0))
        .unwrap_err();
    assert!(matches!(err, ObserveError::Fork { .. }), "{err}");
    let conn = site.db();
    let record = fork_record(&conn, &site.channel().name).unwrap().unwrap();
    assert_eq!(record.statements.len(), 2);
    assert_eq!(
        check_evidence(
            &record.statements,
            &site.channel().name,
            &site.channel().key,
            &Limits::default(),
        ),
        Ok(Contradiction::SameSizeDifferentRoots { size: 3 })
    );
    assert!(
        continuum::db::fork_evidence(&conn, ORIGIN)
            .unwrap()
            .is_some()
    );
    // From now on nothing from that channel is observed, not even its genuine answers.
    let http = http();
    let limits = Limits::default();
    let genuine = ChannelClient::new(site.channel(), &http, &limits)
        .updates(0, now())
        .unwrap();
    assert!(matches!(
        site.observe(&genuine),
        Err(ObserveError::ForkRecorded { .. })
    ));
    assert_eq!(observed_size(&conn, &site.channel().name).unwrap(), 3);

    // Its notary answers "fork detected" with the evidence, at every size.
    let notaries = Notaries::new();
    let witness = notaries.start(&site);
    for size in [0, 1, 3, 10] {
        match ask(&witness, size) {
            NotaryStatus::ForkDetected { evidence } => assert_eq!(evidence, record.statements),
            s => panic!("size {size}: {s:?}"),
        }
    }

    // A site asking that notary fails with "fork detected" ...
    let root = root_of(&real);
    let report = peers_verify(std::slice::from_ref(&witness), &ch.config(), 3, &root, 4);
    assert_eq!(
        report.outcome,
        PeerOutcome::Rejected(RejectReason::ForkDetected)
    );
    assert!(report.contradicted());
    assert_eq!(report.lines[0].outcome, PeerLineOutcome::ForkDetected);
    // ... but only if the evidence verifies with the channel key that site pinned.
    let wrong_pin = ChannelConfig {
        key: KeyPair::generate().public(),
        ..ch.config()
    };
    let report = peers_verify(std::slice::from_ref(&witness), &wrong_pin, 3, &root, 4);
    assert_eq!(
        report.outcome,
        PeerOutcome::Rejected(RejectReason::TooManyFailures { failed: 1, cap: 1 })
    );
    assert_eq!(report.lines[0].outcome, PeerLineOutcome::Bogus);
    assert_eq!((report.bogus, report.unreachable), (1, 0));
    assert!(
        report.lines[0].detail.contains("does not prove"),
        "{}",
        report.lines[0]
    );
}

#[test]
fn fork_evidence_that_proves_nothing_counts_as_no_answer() {
    let ch = Channel::start(500);
    let real = ch.grow(4);
    let key = ch.signing_key();
    // Observed in two pages (0..2, 2..3); then a root at 4 that does not extend them. The
    // notary knows it is a fork, but no two statements carry every entry from 0, so a peer
    // cannot check the evidence on its own.
    let site = Site::new(ch.config());
    site.observe(&forged_update(&ch, &key, &real[..2], 0))
        .unwrap();
    site.observe(&forged_update(&ch, &key, &real[..3], 2))
        .unwrap();
    let mut lie = real.clone();
    lie[1] = master_entry();
    let bad = forged_update(&ch, &key, &lie, 3);
    assert!(bad.entries()[0].as_bytes() == real[3].as_bytes());
    let err = site.observe(&bad).unwrap_err();
    assert!(err.is_fork(), "{err}");
    // The same statement again is refused as an already recorded fork.
    assert!(matches!(
        site.observe(&bad),
        Err(ObserveError::ForkRecorded { .. })
    ));

    let notaries = Notaries::new();
    let witness = notaries.start(&site);
    assert!(matches!(
        ask(&witness, 4),
        NotaryStatus::ForkDetected { .. }
    ));
    let report = peers_verify(
        std::slice::from_ref(&witness),
        &ch.config(),
        4,
        &root_of(&real),
        1,
    );
    assert_eq!(report.lines[0].outcome, PeerLineOutcome::Bogus);
    assert_eq!((report.bogus, report.unreachable), (1, 0));
    assert!(!report.contradicted());
    assert!(!report.accepted());
}

// ------------------------------------------------------------------------------------------
// Asking peers
// ------------------------------------------------------------------------------------------

#[test]
fn peers_agree_disagree_and_fail() {
    let ch = Channel::start(500);
    let log = ch.grow(3);
    let root = root_of(&log);
    let notaries = Notaries::new();
    // Six honest notaries of the same channel; none has observed anything yet, so each fetches
    // on demand when asked.
    let sites: Vec<Site> = (0..6).map(|_| Site::new(ch.config())).collect();
    let honest: Vec<PeerConfig> = sites.iter().map(|s| notaries.start(s)).collect();

    // Agree: N = 3 needs 2 agreements.
    let report = peers_verify(&honest[..3], &ch.config(), 3, &root, 3);
    assert_eq!(report.outcome, PeerOutcome::Accepted);
    assert!(report.agreed >= 2);

    // Stops asking once decided: N = 6 needs 2; one at a time, exactly 2 are asked.
    let report = peers_verify(&honest, &ch.config(), 3, &root, 1);
    assert_eq!(report.outcome, PeerOutcome::Accepted);
    assert_eq!((report.agreed, report.answered), (2, 2));
    assert_eq!(
        report
            .lines
            .iter()
            .filter(|l| l.outcome == PeerLineOutcome::NotAsked)
            .count(),
        4
    );

    // Disagree: the site was shown another root than everyone else.
    let report = peers_verify(&honest[..3], &ch.config(), 3, &[7; 32], 3);
    assert_eq!(
        report.outcome,
        PeerOutcome::Rejected(RejectReason::Disagreement)
    );
    assert!(report.contradicted());

    // Disagree: a notary the channel showed another (consistent, channel-signed) view.
    let key = ch.signing_key();
    let split = Site::new(ch.config());
    let mut other = log.clone();
    other[2] = master_entry();
    split.observe(&forged_update(&ch, &key, &other, 0)).unwrap();
    let split_peer = notaries.start(&split);
    let report = peers_verify(std::slice::from_ref(&split_peer), &ch.config(), 3, &root, 1);
    assert_eq!(
        report.outcome,
        PeerOutcome::Rejected(RejectReason::Disagreement)
    );
    assert!(
        report.lines[0]
            .detail
            .contains(&hex::encode(root_of(&other)))
    );

    // Too many down: N = 2 tolerates 1 failure, not 2.
    let down = vec![
        PeerConfig {
            url: closed_port(),
            key: honest[0].key,
        },
        PeerConfig {
            url: closed_port(),
            key: honest[1].key,
        },
    ];
    let report = peers_verify(&down, &ch.config(), 3, &root, 2);
    assert_eq!(
        report.outcome,
        PeerOutcome::Rejected(RejectReason::TooManyFailures { failed: 2, cap: 2 })
    );
    assert!(!report.contradicted());
    // Closed ports are unreachable peers, not bogus ones.
    assert_eq!((report.unreachable, report.bogus), (2, 0));
    assert!(
        report
            .lines
            .iter()
            .all(|l| l.outcome == PeerLineOutcome::Unreachable),
        "{:?}",
        report.lines
    );

    // One down out of three still leaves enough.
    let mixed = vec![down[0].clone(), honest[0].clone(), honest[1].clone()];
    let report = peers_verify(&mixed, &ch.config(), 3, &root, 3);
    assert_eq!(report.outcome, PeerOutcome::Accepted);

    // Behind counts as no answer: a notary that cannot reach the channel.
    let lost = Site::new(ChannelConfig {
        mirrors: vec![closed_port()],
        tile_mirrors: Vec::new(),
        witness_policy: None,
        max_cosignature_age_secs: None,
        ..ch.config()
    });
    let behind = notaries.start(&lost);
    let report = peers_verify(std::slice::from_ref(&behind), &ch.config(), 3, &root, 1);
    assert_eq!(
        report.outcome,
        PeerOutcome::Rejected(RejectReason::TooManyFailures { failed: 1, cap: 1 })
    );
    assert_eq!(report.lines[0].outcome, PeerLineOutcome::Behind);

    // A bad signature (the key in our config is not the peer's) counts as no answer, sorted
    // apart as a bogus peer.
    let impostor = PeerConfig {
        url: honest[2].url.clone(),
        key: KeyPair::generate().public(),
    };
    let report = peers_verify(std::slice::from_ref(&impostor), &ch.config(), 3, &root, 1);
    assert_eq!(
        report.outcome,
        PeerOutcome::Rejected(RejectReason::TooManyFailures { failed: 1, cap: 1 })
    );
    assert_eq!(report.lines[0].outcome, PeerLineOutcome::Bogus);
    assert_eq!((report.bogus, report.unreachable), (1, 0));
    assert!(
        report.lines[0].detail.contains("signature"),
        "{}",
        report.lines[0]
    );

    // No peers: refused unless the operator allowed it.
    let none = verify_with_peers(
        &http(),
        &[],
        &ch.config(),
        3,
        &root,
        now(),
        &Limits::default(),
        4,
        NoPeers::Refuse,
    );
    assert!(matches!(none.outcome, PeerOutcome::NoPeers(_)));
    assert!(!none.accepted());
}

/// A TCP listener that accepts connections, holds each for `hold`, and closes it without an
/// answer, counting how many it holds at once.
fn slow_sink(hold: Duration) -> (String, Arc<AtomicUsize>) {
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let now_open = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let max_out = max.clone();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(stream) = stream else { return };
            let (now_open, max) = (now_open.clone(), max.clone());
            std::thread::spawn(move || {
                let n = now_open.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(hold);
                now_open.fetch_sub(1, Ordering::SeqCst);
                drop(stream);
            });
        }
    });
    (url, max_out)
}

#[test]
fn peers_are_asked_with_bounded_concurrency() {
    let ch = ChannelConfig {
        name: ChannelName::parse(ORIGIN).unwrap(),
        key: KeyPair::generate().public(),
        mirrors: vec![closed_port()],
        tile_mirrors: Vec::new(),
        witness_policy: None,
        max_cosignature_age_secs: None,
    };
    // Eight peers behind one slow listener: N = 8 tolerates 5 failures, so 6 are asked.
    let (url, max) = slow_sink(Duration::from_millis(300));
    let peers: Vec<PeerConfig> = (0..8)
        .map(|_| PeerConfig {
            url: url.clone(),
            key: KeyPair::generate().public(),
        })
        .collect();
    let started = std::time::Instant::now();
    let report = peers_verify(&peers, &ch, 1, &[0; 32], 3);
    let took = started.elapsed();
    assert_eq!(
        report.outcome,
        PeerOutcome::Rejected(RejectReason::TooManyFailures { failed: 6, cap: 6 })
    );
    let max = max.load(Ordering::SeqCst);
    assert!(max <= 3, "{max} requests in flight with a bound of 3");
    assert!(
        max >= 2,
        "requests were not concurrent (max {max} in flight)"
    );
    // 6 answers at 3 at a time take two rounds of 300 ms; one at a time would take six.
    assert!(took < Duration::from_millis(6 * 300), "took {took:?}");
}

/// Timing of one peer verification against 100 notaries on loopback (run with `--ignored
/// --nocapture`). Each notary has observed nothing and fetches on demand when asked, as a
/// fresh release's first asker finds them.
#[test]
#[ignore = "timing, not a check; run by hand"]
fn hundred_notaries_timing() {
    let ch = Channel::start(500);
    let log = ch.grow(5);
    let root = root_of(&log);
    let notaries = Notaries::new();
    let sites: Vec<Site> = (0..100).map(|_| Site::new(ch.config())).collect();
    let peers: Vec<PeerConfig> = sites.iter().map(|s| notaries.start(s)).collect();
    for round in ["cold (notaries fetch on demand)", "warm (already observed)"] {
        if round.starts_with("warm") {
            for p in &peers {
                assert!(matches!(ask(p, 5), NotaryStatus::Ok { .. }));
            }
        }
        let started = std::time::Instant::now();
        let report = verify_with_peers(
            &http(),
            &peers,
            &ch.config(),
            5,
            &root,
            now(),
            &Limits::default(),
            16,
            NoPeers::Refuse,
        );
        let took = started.elapsed();
        assert_eq!(report.outcome, PeerOutcome::Accepted);
        eprintln!(
            "100 notaries, {round}: {took:?} ({} answers, {} agreed)",
            report.answered, report.agreed
        );
    }
}

// ------------------------------------------------------------------------------------------
// A notary far behind catches up by leaf hashes (issue 14, item 4)
// ------------------------------------------------------------------------------------------

/// Options that take the leaf-hash path more than 5 entries behind.
fn hash_options() -> NotaryOptions {
    NotaryOptions {
        leaf_hashes_beyond: 5,
        ..NotaryOptions::default()
    }
}

/// A site on `ch` whose only mirror is `mirror`, having observed `ch`'s first entries.
fn site_behind(ch: &Channel, mirror: &str) -> Site {
    let mut cfg = ch.config();
    cfg.mirrors = vec![mirror.to_owned()];
    let site = Site::new(cfg);
    site.observe_all();
    site
}

fn statements(site: &Site) -> i64 {
    site.db()
        .query_row("SELECT COUNT(*) FROM observed_statements", [], |r| r.get(0))
        .unwrap()
}

fn requests(front: &system_tests::front::Front, prefix: &str) -> usize {
    front
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.starts_with(&format!("GET {prefix}")))
        .count()
}

#[test]
fn a_notary_far_behind_catches_up_by_leaf_hashes_and_one_signed_update() {
    let ch = Channel::start(4);
    let mut log = ch.grow(3);
    let front = system_tests::front::Front::start(&ch.base, |_| system_tests::front::Answer::Pass);
    let site = site_behind(&ch, &front.url);
    assert_eq!(observed_size(&site.db(), &site.channel().name).unwrap(), 3);
    let before = statements(&site);
    let updates_before = requests(&front, "/v1/updates");
    log.extend(ch.grow(40));

    let notaries = Notaries::new();
    let peer = notaries.start_with(&site, Some(hash_options()));
    assert_eq!(
        ask(&peer, 43),
        NotaryStatus::Ok {
            root: TreeHash(root_of(&log))
        }
    );
    // One page of leaf hashes (39 < 4096) and one signed update (from 42), not ten pages of
    // entries; one statement kept.
    assert_eq!(requests(&front, "/v1/leaves?start=3&end=42"), 1);
    assert_eq!(requests(&front, "/v1/updates"), updates_before + 1);
    assert_eq!(requests(&front, "/v1/updates?since=42"), 1);
    assert_eq!(statements(&site), before + 1);
    // The stored tree is the channel's at every size, so later answers and updates build on it.
    let conn = site.db();
    let name = &site.channel().name;
    assert_eq!(observed_size(&conn, name).unwrap(), 43);
    for k in [4usize, 17, 42, 43] {
        assert_eq!(
            observed_root_at(&conn, name, k as u64).unwrap(),
            Some(root_of(&log[..k])),
            "root at {k}"
        );
    }
    assert_eq!(
        ask(&peer, 20),
        NotaryStatus::Ok {
            root: TreeHash(root_of(&log[..20]))
        }
    );
    // A site fetching entries over the hashed range finds them consistent (no fork).
    assert_eq!(site.observe_all(), 43);
    assert!(fork_record(&conn, name).unwrap().is_none());
}

#[test]
fn leaf_hash_catch_up_is_bounded_per_request_and_resumes() {
    let ch = Channel::start(4);
    let mut log = ch.grow(3);
    let site = site_behind(&ch, &ch.base);
    log.extend(ch.grow(40));
    let notaries = Notaries::new();
    let peer = notaries.start_with(
        &site,
        Some(NotaryOptions {
            max_leaf_hashes_per_request: 10,
            max_pages_per_request: 1,
            ..hash_options()
        }),
    );
    // 3 -> 13 by hashes, the update from 13 brings 4 entries (17), one more page (21).
    assert_eq!(ask(&peer, 43), NotaryStatus::Behind { observed: 21 });
    // 21 -> 31 by hashes, +4 (35), +4 (39).
    assert_eq!(ask(&peer, 43), NotaryStatus::Behind { observed: 39 });
    // 4 behind: entries.
    assert_eq!(
        ask(&peer, 43),
        NotaryStatus::Ok {
            root: TreeHash(root_of(&log))
        }
    );
}

#[test]
fn leaf_hashes_that_do_not_lead_to_the_signed_root_are_dropped_and_entries_used() {
    let ch = Channel::start(4);
    let mut log = ch.grow(3);
    let upstream = ch.base.clone();
    let front = system_tests::front::Front::start(&ch.base, move |path| {
        if !path.starts_with("/v1/leaves") {
            return system_tests::front::Answer::Pass;
        }
        // The real answer with one hash changed.
        let (status, content_type, body) = system_tests::front::forward(&upstream, path, None);
        let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["data"]["hashes"][0] = serde_json::Value::String("ab".repeat(32));
        system_tests::front::Answer::Body {
            status,
            content_type,
            body: v.to_string().into_bytes(),
        }
    });
    let site = site_behind(&ch, &front.url);
    log.extend(ch.grow(20));
    let notaries = Notaries::new();
    let peer = notaries.start_with(&site, Some(hash_options()));
    // The hashes are refused (nothing stored, no fork: they are not signed), and the entries
    // from the observed size give the right answer.
    assert_eq!(
        ask(&peer, 23),
        NotaryStatus::Ok {
            root: TreeHash(root_of(&log))
        }
    );
    assert_eq!(requests(&front, "/v1/leaves"), 1);
    // Entries from the observed size, page by page (4 each).
    assert_eq!(requests(&front, "/v1/updates?since=3&"), 1);
    assert_eq!(requests(&front, "/v1/updates?since=7&"), 1);
    // The one update of the refused hash path (from 22, just below the size asked).
    assert_eq!(requests(&front, "/v1/updates?since=22&"), 1);
    let conn = site.db();
    assert!(fork_record(&conn, &site.channel().name).unwrap().is_none());
    assert_eq!(
        observed_root_at(&conn, &site.channel().name, 10).unwrap(),
        Some(root_of(&log[..10]))
    );
}

#[test]
fn observe_after_leaf_hashes_stores_nothing_unless_they_lead_to_the_signed_root() {
    let ch = Channel::start(500);
    let mut log = ch.grow(3);
    let site = Site::new(ch.config());
    site.observe_all();
    let honest = Site::new(ch.config());
    honest.observe_all();
    log.extend(ch.grow(10));
    let http = http();
    let limits = Limits::default();
    let client = ChannelClient::new(site.channel(), &http, &limits);
    let hashes = client.leaf_hashes(3, 12).unwrap();
    assert_eq!(hashes.len(), 9);
    let update = client.updates(12, now()).unwrap();
    let name = site.channel().name.clone();
    let unchanged = |site: &Site| {
        let conn = site.db();
        assert_eq!(observed_size(&conn, &name).unwrap(), 3);
        assert!(fork_record(&conn, &name).unwrap().is_none());
    };

    // One hash changed: refused as invalid (not a fork), nothing stored.
    let mut bad = hashes.clone();
    bad[4][0] ^= 1;
    let e = notary::observe_after_leaf_hashes(&mut site.db(), site.channel(), &bad, &update)
        .unwrap_err();
    assert!(matches!(e, ObserveError::Invalid { .. }), "{e}");
    assert!(
        e.to_string().contains("do not lead to its signed root"),
        "{e}"
    );
    unchanged(&site);
    // Too few or too many: they do not reach the update's start.
    for wrong in [&hashes[..8], &[hashes.clone(), vec![[0; 32]]].concat()[..]] {
        let e = notary::observe_after_leaf_hashes(&mut site.db(), site.channel(), wrong, &update)
            .unwrap_err();
        assert!(matches!(e, ObserveError::Gap { .. }), "{e}");
        unchanged(&site);
    }

    // A channel that rewrote entry 1 (observed) and serves hashes of its rewritten log: the
    // hashes are refused, and the entries the notary then fetches are fork evidence.
    let mut forged = log.clone();
    forged[1] = master_entry();
    let key = ch.signing_key();
    let forged_hashes: Vec<Hash> = forged[3..12]
        .iter()
        .map(|e| Blake2b256.hash_leaf(e.as_bytes()))
        .collect();
    let forged_12 = forged_update(&ch, &key, &forged, 12);
    let e = notary::observe_after_leaf_hashes(
        &mut site.db(),
        site.channel(),
        &forged_hashes,
        &forged_12,
    )
    .unwrap_err();
    assert!(matches!(e, ObserveError::Invalid { .. }), "{e}");
    unchanged(&site);
    let e = site
        .observe(&forged_update(&ch, &key, &forged, 3))
        .unwrap_err();
    assert!(e.is_fork(), "{e}");

    // The honest hashes: stored, with the statement; the tree is the channel's.
    let obs =
        notary::observe_after_leaf_hashes(&mut honest.db(), honest.channel(), &hashes, &update)
            .unwrap();
    assert_eq!((obs.previous_size, obs.size, obs.appended), (3, 13, 10));
    assert_eq!(
        observed_root_at(&honest.db(), &honest.channel().name, 13).unwrap(),
        Some(root_of(&log))
    );
}

#[test]
fn a_notary_far_behind_reads_leaf_hashes_from_nginx_served_tiles() {
    let ch = Channel(system_tests::Channel::start_with(
        "open",
        &format!(
            "max_entries_per_page = 4\n{}",
            system_tests::RATE_LIMITS_OFF
        ),
    ));
    let mut log = ch.grow(3);
    let front = system_tests::front::Front::start(&ch.base, |path| {
        if path.starts_with("/v1/leaves") {
            system_tests::front::Answer::Body {
                status: 403,
                content_type: "application/json".into(),
                body: br#"{"status":"error","code":"forbidden","message":"use the tiles"}"#
                    .to_vec(),
            }
        } else {
            system_tests::front::Answer::Pass
        }
    });
    let mut cfg = ch.config();
    cfg.mirrors = vec![front.url.clone()];
    log.extend(ch.grow(300));
    ch.wait_published(303);
    let Some(nginx) = system_tests::nginx::Nginx::serve(&ch.public_dir()) else {
        return;
    };
    cfg.tile_mirrors = vec![nginx.url.clone()];
    let site = Site::new(cfg);
    let notaries = Notaries::new();
    let peer = notaries.start_with(&site, Some(hash_options()));
    assert_eq!(
        ask(&peer, 303),
        NotaryStatus::Ok {
            root: TreeHash(root_of(&log))
        }
    );
    // Hash tiles from nginx (a full one and the partial one of the checkpoint's size), one
    // signed update from the channel at the checkpoint's size, and no /v1/leaves.
    assert_eq!(requests(&front, "/v1/leaves"), 0);
    assert_eq!(requests(&front, "/v1/updates?since=303&"), 1);
    let conn = site.db();
    for k in [1usize, 256, 257, 303] {
        assert_eq!(
            observed_root_at(&conn, &site.channel().name, k as u64).unwrap(),
            Some(root_of(&log[..k])),
            "root at {k}"
        );
    }
}
