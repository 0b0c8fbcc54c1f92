//! Adversarial whole-system scenarios: a channel that shows different logs to different sites,
//! rewrites or shrinks its history, or a man in the middle (holding the channel's key or not)
//! that replays, backdates, forges or floods answers; peers that cannot be verified or saw
//! another log. Everything runs as real processes on loopback (see `system_tests`).
//!
//! Every failure case asserts the exit code (3: verification failed, 4: unreachable), that the
//! message says what happened, and that the site's installed files, accepted log and installed
//! table are exactly as before ([`Site::snapshot`]).

use std::process::Output;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keyggdrasil::entry::Entry;
use keyggdrasil::keys::KeyPair;
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{Envelope, Nonce, NotaryStatus, Signed, UpdatePayload};
use system_tests::front::{Answer, Front, forward};
use system_tests::{Channel, Site, Supplier, plugin_archive};

const EXIT_OK: i32 = 0;
const EXIT_ATTENTION: i32 = 1;
const EXIT_VERIFICATION: i32 = 3;
const EXIT_UNREACHABLE: i32 = 4;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// The installed `acme/hello` plugin file, or "" if none.
fn installed_file(site: &Site) -> String {
    std::fs::read_to_string(site.root.join("packages/acme/hello/current/plugin.php"))
        .unwrap_or_default()
}

/// Entries in the site's accepted log.
fn accepted_size(site: &Site) -> i64 {
    rusqlite::Connection::open(site.root.join("site.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM log_entries", [], |r| r.get(0))
        .unwrap()
}

/// `n` notary sites following `channel`, each serving on loopback.
fn notaries(channel: &Channel, n: usize) -> Vec<Site> {
    (0..n)
        .map(|_| {
            let mut s = Site::init(channel);
            s.start_notary();
            s
        })
        .collect()
}

/// A site following `channel` that peers with every notary in `peers`.
fn site_with_peers(channel: &Channel, peers: &[&Site]) -> Site {
    let site = Site::init(channel);
    for p in peers {
        site.add_peer(p.notary_url.as_deref().unwrap(), &p.notary_key);
    }
    site
}

fn archive(version: &str, marker: &str) -> Vec<u8> {
    plugin_archive("acme/hello", version, marker)
}

/// Runs `args`, expects success.
fn ok(site: &Site, args: &[&str]) -> Output {
    let out = site.run(args);
    assert_eq!(code(&out), EXIT_OK, "{}", text(&out));
    out
}

/// Runs `continuum update` and asserts a refusal: the exit code, that the output says each of
/// `says` (case-insensitive), and that the site is exactly as it was.
fn assert_refused(site: &Site, exit: i32, says: &[&str]) -> String {
    let before = site.snapshot();
    let out = site.run(&["update"]);
    let t = text(&out);
    assert_eq!(code(&out), exit, "{t}");
    for s in says {
        assert!(
            t.to_lowercase().contains(&s.to_lowercase()),
            "output does not say {s:?}:\n{t}"
        );
    }
    assert!(t.contains("the site was left as it was"), "{t}");
    assert!(
        site.snapshot() == before,
        "the site changed although the update failed:\n{t}"
    );
    t
}

/// A channel with supplier `acme` registered and `acme/hello` 1.0.0 published: 3 entries.
fn channel_with_release() -> (Channel, Supplier) {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    acme.publish(&channel, "hello", "1.0.0", &archive("1.0.0", "common"));
    (channel, acme)
}

// ---------------------------------------------------------------------------------------------
// Split views, pop-off, forks, rollback
// ---------------------------------------------------------------------------------------------

/// Channel B has A's key, name and first 3 entries, then its own. A site that both have
/// served the common prefix is pointed at B, while its notaries follow A: at B's size 5 they
/// are behind, at size 4 they disagree; pop-off stops at the site's size and nothing is
/// applied. A second site that already accepted A's 4th entry is pointed at B: B's root at 5
/// is not an extension of what A showed it (history rewritten), so it keeps both signed
/// statements as fork evidence and stops updating from the channel.
#[test]
fn split_view_is_refused_and_rewritten_history_detected() {
    let (mut a, acme) = channel_with_release();
    let b = a.fork_copy();
    let ns = notaries(&a, 3);
    let peers: Vec<&Site> = ns.iter().collect();
    let site = site_with_peers(&a, &peers);
    let other = site_with_peers(&a, &peers);
    for s in [&site, &other] {
        ok(s, &["install", "acme/hello"]);
        assert!(installed_file(s).contains("1.0.0 common"));
    }

    // The views diverge after entry 2.
    acme.publish(&a, "hello", "1.1.0", &archive("1.1.0", "shown by A"));
    acme.publish(&b, "hello", "1.1.0", &archive("1.1.0", "shown by B"));
    acme.publish(&b, "hello", "1.2.0", &archive("1.2.0", "shown by B"));
    ok(&other, &["update"]);
    assert!(installed_file(&other).contains("1.1.0 shown by A"));

    // The site is shown B's log; its peers saw A's.
    site.set_mirror(&b.base);
    let t = assert_refused(
        &site,
        EXIT_VERIFICATION,
        &[
            "peers did not confirm size 5: too few peers remain to reach 2 agreements",
            "peers did not confirm size 4: a peer saw a different root",
            "possible split view",
            "nothing was applied",
        ],
    );
    assert!(
        !t.contains("size 3"),
        "pop-off went below the site's size:\n{t}"
    );
    assert_eq!(accepted_size(&site), 3);
    assert!(installed_file(&site).contains("1.0.0 common"));

    // The other site accepted A's entry 3; B's entry 3 differs. Both statements are signed
    // with the channel's key: the site keeps them as fork evidence and stops updating.
    other.set_mirror(&b.base);
    assert_refused(
        &other,
        EXIT_VERIFICATION,
        &[
            "FORK: channel test.channel showed this site two inconsistent views",
            "the signed root at size 5 does not extend the 4 entries the channel showed before",
        ],
    );
    assert_eq!(accepted_size(&other), 4);
    assert!(installed_file(&other).contains("1.1.0 shown by A"));
    let st = other.run(&["status"]);
    assert_eq!(code(&st), EXIT_ATTENTION, "{}", text(&st));
    assert!(text(&st).contains("FORK DETECTED"), "{}", text(&st));
    assert_refused(&other, EXIT_VERIFICATION, &["FORK DETECTED"]);
}

/// B is A plus one entry that A does not have (yet). The notaries follow A, so asked about
/// B's size they are behind; the site drops the newest entry, the notaries confirm the rest,
/// and the confirmed entries are applied and installed. When A logs the same entry, the next
/// run applies it.
#[test]
fn newest_entry_without_confirmation_is_popped_off() {
    let (mut a, acme) = channel_with_release();
    let b = a.fork_copy();
    let newer = archive("1.1.0", "newer");
    let extra: Entry = acme.release(&acme.signing, "hello", "1.1.0", &newer);
    b.submit(&extra);
    b.upload("acme", "hello", "1.1.0", &newer);

    let ns = notaries(&a, 3);
    let site = site_with_peers(&b, &ns.iter().collect::<Vec<_>>());
    let out = ok(&site, &["install", "acme/hello"]);
    let t = text(&out);
    for says in [
        "peers did not confirm size 4: too few peers remain to reach 2 agreements",
        "at size 3 confirmed by 2 of 3 peers",
        "WARNING: the 1 newest entries could not be confirmed by peers and were not applied",
        "applied 3 new entries (log size 3)",
        "installed 1.0.0",
    ] {
        assert!(t.contains(says), "output does not say {says:?}:\n{t}");
    }
    assert_eq!(accepted_size(&site), 3);
    assert!(installed_file(&site).contains("1.0.0 common"));
    for n in &ns {
        assert!(
            matches!(n.ask_notary(4), NotaryStatus::Behind { observed: 3 }),
            "a notary following A should be behind at size 4"
        );
    }

    // A logs the very same entry: now the peers confirm size 4.
    a.submit(&extra);
    a.upload("acme", "hello", "1.1.0", &newer);
    let t = text(&ok(&site, &["update"]));
    assert!(t.contains("applied 1 new entries (log size 4)"), "{t}");
    assert_eq!(accepted_size(&site), 4);
    assert!(installed_file(&site).contains("1.1.0 newer"));
}

/// A notary first shown A's log (4 entries, one signed page) is reconfigured to B's mirror. A
/// site following B asks it about B's size 5; it fetches B's entry 4, which does not extend
/// what A showed it: it stores both signed statements, answers "fork detected" with
/// evidence the site checks on its own, and the site refuses. The notary's own site reports
/// the fork in `status` and refuses to update.
#[test]
fn notary_shown_a_fork_keeps_evidence_and_sites_refuse() {
    let (mut a, acme) = channel_with_release();
    let b = a.fork_copy();
    let honest = notaries(&a, 2);
    let site = site_with_peers(&b, &honest.iter().collect::<Vec<_>>());
    ok(&site, &["install", "acme/hello"]);
    assert_eq!(accepted_size(&site), 3);

    acme.publish(&a, "hello", "1.1.0", &archive("1.1.0", "shown by A"));
    acme.publish(&b, "hello", "1.1.0", &archive("1.1.0", "shown by B"));
    acme.publish(&b, "hello", "1.2.0", &archive("1.2.0", "shown by B"));

    // The witness sees A's log at size 4 (fetched on demand, from 0, in one signed page).
    let mut witness = Site::init(&a);
    witness.start_notary();
    assert!(
        matches!(witness.ask_notary(4), NotaryStatus::Ok { .. }),
        "the witness should confirm A's size 4"
    );
    // Then the channel (or its DNS) sends it to B.
    witness.stop_notary();
    witness.set_mirror(&b.base);
    let url = witness.start_notary();
    // The witness is now the site's only peer: with the honest notaries as well, their
    // "behind" (size 5) or other root (size 4) could decide before the witness answers.
    for n in &honest {
        site.remove_peer(n.notary_url.as_deref().unwrap());
    }
    site.add_peer(&url, &witness.notary_key);

    // Asked about size 5, the witness fetches B's entry 4 and finds the fork; asked about
    // size 4 (pop-off), it answers "fork detected" again.
    assert_refused(
        &site,
        EXIT_VERIFICATION,
        &[
            "peers did not confirm size 5: a peer reports that the channel forked",
            // Each size refused for the same reason is told in the one line.
            "a peer reports that the channel forked; the same for size 4",
            "nothing was applied",
        ],
    );
    assert_eq!(accepted_size(&site), 3);

    // The witness now answers "fork detected" at every size, with checkable evidence.
    for size in [2, 4, 5] {
        match witness.ask_notary(size) {
            NotaryStatus::ForkDetected { evidence } => assert_eq!(evidence.len(), 2),
            other => panic!("size {size}: expected fork_detected, got {other:?}"),
        }
    }
    let db = rusqlite::Connection::open(witness.root.join("site.db")).unwrap();
    let evidence: String = db
        .query_row("SELECT evidence FROM fork_evidence", [], |r| r.get(0))
        .unwrap();
    assert!(
        evidence.contains("checkable from the evidence alone"),
        "{evidence}"
    );

    // Its own site says so and stops updating from the channel.
    let st = witness.run(&["status"]);
    assert_eq!(code(&st), EXIT_ATTENTION, "{}", text(&st));
    assert!(text(&st).contains("FORK DETECTED"), "{}", text(&st));
    let before = witness.snapshot();
    let up = witness.run(&["update"]);
    assert_eq!(code(&up), EXIT_VERIFICATION, "{}", text(&up));
    assert!(text(&up).contains("FORK DETECTED"), "{}", text(&up));
    assert!(witness.snapshot() == before);
}

/// The operator restores a backup of the channel taken when the log had 2 entries; a site
/// that accepted 3 refuses the shorter log (rollback). When the restored channel then logs
/// another third entry, the same size now has another root: history rewritten, a fork.
#[test]
fn shrinking_log_is_refused_as_a_rollback() {
    let mut a = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&a);
    let backup = a.save_copy();
    a.spawn();
    acme.publish(&a, "hello", "1.0.0", &archive("1.0.0", "original"));
    let ns = notaries(&a, 2);
    let site = site_with_peers(&a, &ns.iter().collect::<Vec<_>>());
    ok(&site, &["install", "acme/hello"]);
    assert_eq!(accepted_size(&site), 3);

    a.restore(&backup);
    site.set_mirror(&a.base);
    assert_refused(
        &site,
        EXIT_VERIFICATION,
        &["rollback", "shrank from 3 to 2 entries"],
    );

    acme.publish(&a, "hello", "1.0.0", &archive("1.0.0", "substitute"));
    assert_refused(
        &site,
        EXIT_VERIFICATION,
        &["FORK", "the channel signed two different roots for size 3"],
    );
    assert!(installed_file(&site).contains("1.0.0 original"));
}

// ---------------------------------------------------------------------------------------------
// A lying proxy in front of the real channel
// ---------------------------------------------------------------------------------------------

/// What the proxy does to `GET /v1/updates` answers (everything else is passed through).
enum Lie {
    /// Pass through.
    None,
    /// Answer every update request with this body (captured earlier).
    Replay(Vec<u8>),
    /// Re-sign the real answer with the channel's key, its time moved back by `age` seconds.
    Backdate { key: Arc<KeyPair>, age: u64 },
    /// Flip one bit of the real answer's signature.
    FlipSignature,
    /// An endless `200 OK` body that starts like a JSON envelope.
    Endless,
}

/// A [`Front`] before the channel that lies about `/v1/updates` as told: the shared
/// misbehaving server, with the lie switchable between runs.
struct LyingProxy {
    front: Front,
    lie: Arc<Mutex<Lie>>,
}

impl LyingProxy {
    fn start(upstream: &str) -> Self {
        let lie = Arc::new(Mutex::new(Lie::None));
        let (l, up) = (lie.clone(), upstream.to_owned());
        let front = Front::start(upstream, move |path| {
            if !path.starts_with("/v1/updates") {
                return Answer::Pass;
            }
            answer(&up, &l.lock().unwrap(), path)
        });
        Self { front, lie }
    }

    fn url(&self) -> &str {
        &self.front.url
    }

    fn lie(&self, lie: Lie) {
        *self.lie.lock().unwrap() = lie;
    }

    /// Bytes of the last endless body written before the client hung up.
    fn endless_sent(&self) -> u64 {
        self.front.sent.load(Ordering::SeqCst)
    }
}

fn json(body: Vec<u8>) -> Answer {
    Answer::Body {
        status: 200,
        content_type: "application/json".into(),
        body,
    }
}

/// The proxy's answer to one `/v1/updates` request under `lie`.
fn answer(upstream: &str, lie: &Lie, path: &str) -> Answer {
    match lie {
        Lie::None => Answer::Pass,
        Lie::Replay(body) => json(body.clone()),
        Lie::Backdate { key, age } => {
            let (_, _, body) = forward(upstream, path, None);
            let signed: Signed = Envelope::open(&body, 64 << 20).unwrap();
            let mut payload: UpdatePayload = serde_json::from_str(&signed.payload).unwrap();
            payload.time -= age;
            let resigned = Signed::sign(key, Context::ChannelUpdate, &payload);
            json(serde_json::to_vec(&Envelope::Ok { data: resigned }).unwrap())
        }
        Lie::FlipSignature => {
            let (_, _, body) = forward(upstream, path, None);
            let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let sig = v["data"]["signature"].as_str().unwrap();
            let mut bytes = keyggdrasil::keys::Signature::from_hex(sig)
                .unwrap()
                .as_bytes()
                .to_owned();
            bytes[5] ^= 0x01;
            let forged = keyggdrasil::keys::Signature::from_bytes(bytes).to_hex();
            v["data"]["signature"] = serde_json::Value::String(forged);
            json(serde_json::to_vec(&v).unwrap())
        }
        Lie::Endless => Answer::EndlessAfter {
            content_type: "application/json".into(),
            prefix: br#"{"status":"ok","data":{"payload":""#.to_vec(),
        },
    }
}

/// A channel with `acme/hello` 1.0.0, one notary, and a site whose only mirror is a lying
/// proxy in front of the channel. The site installs 1.0.0 through the proxy while it tells
/// the truth; then 1.1.0 is published, so every refused update below had something to apply.
struct Proxied {
    channel: Channel,
    acme: Supplier,
    _notary: Vec<Site>,
    site: Site,
    proxy: LyingProxy,
}

fn proxied() -> Proxied {
    let (channel, acme) = channel_with_release();
    let notary = notaries(&channel, 1);
    let site = site_with_peers(&channel, &[&notary[0]]);
    let proxy = LyingProxy::start(&channel.base);
    site.set_mirror(proxy.url());
    ok(&site, &["install", "acme/hello"]);
    assert!(installed_file(&site).contains("1.0.0 common"));
    Proxied {
        channel,
        acme,
        _notary: notary,
        site,
        proxy,
    }
}

impl Proxied {
    fn publish_newer(&self) {
        self.acme
            .publish(&self.channel, "hello", "1.1.0", &archive("1.1.0", "newer"));
    }

    /// Once the proxy tells the truth again, the site catches up: the refusal left nothing
    /// behind that stands in the way.
    fn recovers(&self) {
        self.proxy.lie(Lie::None);
        ok(&self.site, &["update"]);
        assert!(installed_file(&self.site).contains("1.1.0 newer"));
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A genuine, fresh, channel-signed answer for the site's size with the new entry, captured
/// earlier (for another nonce), is replayed to the site.
#[test]
fn replayed_answer_with_wrong_nonce_is_refused() {
    let w = proxied();
    w.publish_newer();
    let (status, _, captured) = forward(
        &w.channel.base,
        &format!("/v1/updates?since=3&nonce={}", Nonce::generate().to_hex()),
        None,
    );
    assert_eq!(status, 200);
    let signed: Signed = Envelope::open(&captured, 1 << 20).unwrap();
    let p: UpdatePayload = serde_json::from_str(&signed.payload).unwrap();
    assert_eq!((p.since, p.size, p.entries.len()), (3, 4, 1));
    w.proxy.lie(Lie::Replay(captured));
    assert_refused(
        &w.site,
        EXIT_VERIFICATION,
        &["does not carry the nonce of this request (a replayed answer?)"],
    );
    w.recovers();
}

/// A man in the middle holding the channel's key re-signs the real answer (right nonce, new
/// entry) with a timestamp two days old. A control run first shows that an answer re-signed
/// the same way but only an hour old is accepted, so the refusal is the timestamp's alone.
#[test]
fn stale_timestamp_is_refused() {
    let w = proxied();
    let key = Arc::new(w.channel.signing_key());
    assert_eq!(key.public(), w.channel.key);
    w.proxy.lie(Lie::Backdate {
        key: key.clone(),
        age: 3600,
    });
    ok(&w.site, &["update"]);

    w.publish_newer();
    w.proxy.lie(Lie::Backdate {
        key,
        age: 2 * 86_400,
    });
    let t = assert_refused(
        &w.site,
        EXIT_VERIFICATION,
        &["the answer is stale", "older than the limit of 86400 s"],
    );
    let signed_at: u64 = t
        .split("signed at ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no signing time in:\n{t}"));
    let two_days_ago = unix_now() - 2 * 86_400;
    assert!(
        (two_days_ago - 60..=two_days_ago).contains(&signed_at),
        "signed at {signed_at}, expected about {two_days_ago}:\n{t}"
    );
    w.recovers();
}

/// One bit of the channel's signature is flipped on the way.
#[test]
fn forged_channel_signature_is_refused() {
    let w = proxied();
    w.publish_newer();
    w.proxy.lie(Lie::FlipSignature);
    assert_refused(
        &w.site,
        EXIT_VERIFICATION,
        &[
            "sent an answer that fails verification",
            &format!(
                "the signature does not verify with the pinned key {}",
                w.channel.key
            ),
        ],
    );
    w.recovers();
}

/// The proxy answers `/v1/updates` with a body that never ends. The site reads at most its
/// limit for update answers (8 MiB + 4 KiB), hangs up, and exits 3: the mirror did answer,
/// and an answer larger than any honest one can be (500 entries of 8 KiB fit below the limit)
/// is misbehaviour, not an outage — so it is a verification failure (exit 3), not
/// "unreachable" (exit 4), and the next mirror is not asked to paper over it.
#[test]
fn oversized_answer_is_cut_off_at_the_limit() {
    let w = proxied();
    w.publish_newer();
    w.proxy.lie(Lie::Endless);
    let started = Instant::now();
    assert_refused(
        &w.site,
        EXIT_VERIFICATION,
        &["is larger than the limit of 8392704 bytes"],
    );
    let elapsed = started.elapsed();
    // The proxy stops writing when the site hangs up; give its thread a moment to notice.
    std::thread::sleep(Duration::from_millis(200));
    let sent = w.proxy.endless_sent();
    assert!(
        sent < 64 << 20,
        "the proxy wrote {sent} bytes: the site kept reading far past its limit"
    );
    println!(
        "endless answer: the site hung up after {sent} bytes were written by the proxy ({elapsed:?})"
    );
    w.recovers();
}

// ---------------------------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------------------------

/// The site pins a wrong key for one of its three peers: that peer's answers fail
/// verification and count as no answer, and the two others are enough (2 needed). With wrong
/// keys for two peers, two agreements can no longer be reached: the site is unchanged and
/// exits 4 (not enough peers), not 3 — a peer it cannot verify never counts as a disagreement.
#[test]
fn peer_with_a_bad_signature_counts_as_no_answer() {
    let (channel, acme) = channel_with_release();
    let ns = notaries(&channel, 3);
    let site = site_with_peers(&channel, &ns.iter().collect::<Vec<_>>());
    let wrong = || KeyPair::generate().public();
    site.add_peer(ns[0].notary_url.as_deref().unwrap(), &wrong());
    let t = text(&ok(&site, &["install", "acme/hello"]));
    assert!(t.contains("confirmed by 2 of 3 peers"), "{t}");
    assert!(installed_file(&site).contains("1.0.0 common"));

    site.add_peer(ns[1].notary_url.as_deref().unwrap(), &wrong());
    acme.publish(&channel, "hello", "1.1.0", &archive("1.1.0", "newer"));
    assert_refused(
        &site,
        EXIT_UNREACHABLE,
        &[
            "too few peers remain to reach 2 agreements",
            "nothing was applied",
        ],
    );
}

/// One of the site's peers follows channel B (same key and name, another 4th entry). Two
/// agreements are needed of three peers; one of the two honest peers is down, so the
/// decision waits for the B-notary's answer (otherwise the two honest ones could decide
/// first, which the peer rule allows) — and its other root fails the update.
#[test]
fn peer_that_saw_another_log_disagrees() {
    let (mut a, acme) = channel_with_release();
    let b = a.fork_copy();
    let mut honest = notaries(&a, 2);
    let liar = notaries(&b, 1);
    let site = site_with_peers(&a, &[&honest[0], &honest[1], &liar[0]]);
    ok(&site, &["install", "acme/hello"]);
    assert_eq!(accepted_size(&site), 3);

    acme.publish(&a, "hello", "1.1.0", &archive("1.1.0", "shown by A"));
    acme.publish(&b, "hello", "1.1.0", &archive("1.1.0", "shown by B"));
    honest[1].stop_notary();
    assert_refused(
        &site,
        EXIT_VERIFICATION,
        &[
            "peers did not confirm size 4: a peer saw a different root",
            "nothing was applied",
        ],
    );
    assert!(installed_file(&site).contains("1.0.0 common"));
}

/// Every peer follows a stale mirror (a copy of the channel that has not received the newest
/// release yet): asked about the site's new size, each answers a signed "behind". A "behind"
/// counts as no answer, never as a confirmation: pop-off reaches the site's own size, nothing
/// is applied, and the site exits 4 (try again later), not 3 (no one contradicted the
/// channel). Once the stale mirror has the entry too, the same update goes through.
#[test]
fn peers_behind_confirm_nothing() {
    let (mut a, acme) = channel_with_release();
    let stale = a.fork_copy();
    let ns = notaries(&stale, 3);
    let site = site_with_peers(&a, &ns.iter().collect::<Vec<_>>());
    ok(&site, &["install", "acme/hello"]);
    assert_eq!(accepted_size(&site), 3);

    let newer = archive("1.1.0", "newer");
    let entry = acme.release(&acme.signing, "hello", "1.1.0", &newer);
    a.submit(&entry);
    a.upload("acme", "hello", "1.1.0", &newer);
    for n in &ns {
        assert!(
            matches!(n.ask_notary(4), NotaryStatus::Behind { observed: 3 }),
            "a notary on the stale mirror should be behind at size 4"
        );
    }
    let t = assert_refused(
        &site,
        EXIT_UNREACHABLE,
        &[
            "peers did not confirm size 4",
            "behind",
            "nothing was applied",
        ],
    );
    assert!(
        !t.contains("size 3"),
        "pop-off went below the site's size:\n{t}"
    );
    assert_eq!(accepted_size(&site), 3);
    assert!(installed_file(&site).contains("1.0.0 common"));

    // The stale mirror syncs the entry: the peers now confirm size 4.
    stale.submit(&entry);
    stale.upload("acme", "hello", "1.1.0", &newer);
    let t = text(&ok(&site, &["update"]));
    assert!(t.contains("confirmed by"), "{t}");
    assert!(installed_file(&site).contains("1.1.0 newer"));
}
