//! Red-team pass of the key state machine over the whole system (issue 19): attempts against
//! the key rules made from outside, at a real `channel-server` over HTTP (racing submissions
//! included) and through a lying channel (a front holding the channel key, `front::evil_log`),
//! with real `continuum` sites judging what they are shown.
//!
//! Each test asserts the exact outcome: the HTTP status and error code of a refusal, that the
//! channel's signed checkpoint (size and root) did not change and equals the root over the
//! entries it serves, and, for sites, the exit code, the rule named in the message and that
//! nothing changed (`Site::assert_update_refused`), or that sites that accepted agree row for
//! row. Races are decided by outcome, never by timing: every order the writer may take is
//! listed, and each must leave the rules' result. The state-level attempts are in
//! `keyggdrasil/tests/red_team_state.rs`; the review is `docs/security-review.md`, section
//! "The key state machine". Tests named `open_k*` pin findings that are still open: they
//! assert today's (wrong) behaviour, so the fix must change them.

use std::sync::{Arc, Barrier, Mutex};

use keyggdrasil::entry::{Entry, Event, Reason};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::limits::Limits;
use keyggdrasil::merkle::{Blake2b256, MemoryStore};
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::rollout::Wave;
use keyggdrasil::snapshot::KeyRow;
use keyggdrasil::state::Role;
use keyggdrasil::wire::{SubmitResponse, TreeHash, verify_checkpoint};
use system_tests::front::{Answer, Front, evil_log};
use system_tests::{Channel, Site, Supplier, agent, assert_says, exit, plugin_archive};

type Submitted = Result<SubmitResponse, (u16, String)>;

/// The channel's signed checkpoint, verified with its key: (size, root).
fn head(ch: &Channel) -> (u64, TreeHash) {
    let signed = ch.get_signed("/v1/checkpoint");
    let c = verify_checkpoint(&signed, &ch.key, Some(&ch.origin()), &Limits::default())
        .expect("the channel's checkpoint verifies");
    (c.size(), *c.root())
}

/// The log is intact: the signed root is the root over the entries the channel serves.
fn assert_log_intact(ch: &Channel) -> Vec<Vec<u8>> {
    let (size, root) = head(ch);
    let entries = ch.all_entries(size);
    let mut tree = MemoryStore::new();
    for e in &entries {
        tree.append(&Blake2b256, e).expect("append");
    }
    assert_eq!(TreeHash(tree.root(&Blake2b256).expect("root")), root);
    entries
}

/// Submits every entry at once (the threads are released together by a barrier); the answers
/// in the order of `entries`.
fn race(ch: &Channel, entries: &[Entry]) -> Vec<Submitted> {
    let barrier = Barrier::new(entries.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = entries
            .iter()
            .map(|e| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    ch.try_submit(e)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// [`race`] with an invite token per entry.
fn race_invited(ch: &Channel, entries: &[(Entry, Option<String>)]) -> Vec<Submitted> {
    let barrier = Barrier::new(entries.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = entries
            .iter()
            .map(|(e, token)| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    ch.try_submit_invite(e, token.as_deref())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// A site that follows `ch` without peers and tracks nothing: it only judges the log.
fn judge(ch: &Channel) -> Site {
    let site = Site::init(ch);
    site.set_option("site", "allow_no_peers", true);
    site
}

/// What a site accepted: its head and its key rows (as SQL text, for comparison).
fn accepted(site: &Site) -> (String, Vec<String>) {
    let db = rusqlite::Connection::open(site.root.join("site.db")).expect("db");
    let head: String = db
        .query_row(
            "SELECT size || ' ' || hex(root) FROM accepted_heads",
            [],
            |r| r.get(0),
        )
        .expect("head");
    let mut stmt = db
        .prepare(
            "SELECT hex(key) || ' ' || supplier || ' ' || hex(row) FROM state_keys ORDER BY key",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (head, rows)
}

/// The key rows a site holds for `supplier`, decoded.
fn site_keys(site: &Site, supplier: &str) -> Vec<KeyRow> {
    let db = rusqlite::Connection::open(site.root.join("site.db")).expect("db");
    let mut stmt = db
        .prepare("SELECT row FROM state_keys WHERE supplier = ?1 ORDER BY key")
        .unwrap();
    stmt.query_map([supplier], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|b| KeyRow::decode(&b.unwrap()).expect("row"))
        .collect()
}

/// Two sites update from `ch`: both succeed, reach the channel's size and hold the same state.
fn sites_agree(ch: &Channel) -> Site {
    let (size, root) = head(ch);
    let (a, b) = (judge(ch), judge(ch));
    for s in [&a, &b] {
        assert_says(&s.run(&["update"]), exit::OK, &["applied"]);
        assert_eq!(s.accepted_size(), size as i64);
    }
    let (ha, ka) = accepted(&a);
    assert_eq!((ha.clone(), ka), accepted(&b), "the two sites disagree");
    assert_eq!(ha, format!("{size} {}", hex::encode_upper(root.0)));
    a
}

fn master_of(s: &Supplier, k: &KeyPair) -> Entry {
    s.sign(
        &s.master,
        Event::MasterKey {
            public_key: k.public(),
            derivation: None,
        },
    )
}

fn signing_of(s: &Supplier, by: &KeyPair, k: &KeyPair) -> Entry {
    s.sign(
        by,
        Event::SigningKey {
            public_key: k.public(),
            derivation: None,
        },
    )
}

fn archive(version: &str, marker: &str) -> Vec<u8> {
    plugin_archive("acme/hello", version, marker)
}

fn installed_file(site: &Site) -> String {
    std::fs::read_to_string(site.root.join("packages/acme/hello/current/plugin.php"))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// 1. Races at a real channel
// ---------------------------------------------------------------------------------------------

/// Attempt 4: different self-signed first master keys for one new supplier, submitted at
/// once: six suppliers with two racers each and one with eight. Exactly one per supplier is
/// logged; every other is 403 `not_current_master` (whether the writer took them in one batch
/// or not), the log is intact and holds exactly the winners, and two sites that replay it
/// agree row for row that the winner's key is the supplier's only master.
#[test]
fn racing_first_master_keys_exactly_one_wins_and_sites_agree() {
    let ch = Channel::start();
    let mut racers: Vec<(String, Supplier)> = Vec::new();
    for i in 0..6 {
        for _ in 0..2 {
            let name = format!("newco{i}");
            racers.push((name.clone(), Supplier::new(&name)));
        }
    }
    for _ in 0..8 {
        racers.push(("crowd".into(), Supplier::new("crowd")));
    }
    let entries: Vec<Entry> = racers.iter().map(|(_, s)| s.master_entry()).collect();
    let answers = race(&ch, &entries);
    let mut winners: std::collections::BTreeMap<String, (u64, &Supplier)> = Default::default();
    for ((name, s), got) in racers.iter().zip(&answers) {
        match got {
            Ok(r) => {
                assert!(!r.duplicate, "{r:?}");
                assert!(
                    winners.insert(name.clone(), (r.index, s)).is_none(),
                    "two first master keys of {name} were logged"
                );
            }
            Err(e) => assert_eq!(e, &(403, "not_current_master".to_owned()), "{name}"),
        }
    }
    assert_eq!(
        winners.len(),
        7,
        "a supplier got no master key: {answers:?}"
    );
    let entries = assert_log_intact(&ch);
    assert_eq!(entries.len(), 7);
    for (index, s) in winners.values() {
        assert_eq!(entries[*index as usize], s.master_entry().as_bytes());
    }
    let site = sites_agree(&ch);
    for (name, (index, s)) in &winners {
        let keys = site_keys(&site, name);
        assert_eq!(keys.len(), 1, "{name}: {keys:?}");
        assert_eq!(keys[0].key, s.master.public());
        assert_eq!(
            (keys[0].record.role, keys[0].record.added_at),
            (Role::Master, *index)
        );
    }
}

/// Attempt 4 under `policy = "invite"`: three different first master keys for `guild` at
/// once, two with valid invites for `guild` and one without; and a fourth, later, with an
/// invite issued for another supplier. Exactly one invited key wins; the other invited one is
/// 403 `not_current_master` (the supplier exists by then, so its invite is not even looked
/// at, and stays unused); the uninvited one is 403 `invite_required` or, after the winner,
/// `not_current_master`; the late one `not_current_master`. One entry logged.
#[test]
fn racing_first_master_keys_under_invitation_exactly_one_invited_wins() {
    let ch = Channel::start_with("invite", system_tests::RATE_LIMITS_OFF);
    let racers: Vec<Supplier> = (0..3).map(|_| Supplier::new("guild")).collect();
    let tokens = [Some(ch.invite("guild")), Some(ch.invite("guild")), None];
    let entries: Vec<(Entry, Option<String>)> = racers
        .iter()
        .zip(tokens)
        .map(|(s, t)| (s.master_entry(), t))
        .collect();
    let answers = race_invited(&ch, &entries);
    let won: Vec<usize> = (0..3).filter(|i| answers[*i].is_ok()).collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    assert!(won[0] < 2, "the uninvited key won: {answers:?}");
    assert_eq!(
        answers[1 - won[0]],
        Err((403, "not_current_master".to_owned()))
    );
    let uninvited = answers[2].clone().unwrap_err();
    assert!(
        uninvited == (403, "invite_required".to_owned())
            || uninvited == (403, "not_current_master".to_owned()),
        "{uninvited:?}"
    );
    let late = Supplier::new("guild");
    let elsewhere = ch.invite("other");
    assert_eq!(
        ch.try_submit_invite(&late.master_entry(), Some(&elsewhere)),
        Err((403, "not_current_master".to_owned()))
    );
    let entries = assert_log_intact(&ch);
    assert_eq!(
        entries,
        vec![racers[won[0]].master_entry().as_bytes().to_vec()]
    );
}

/// Attempt 1.3 raced: two masters of one supplier revoke each other at once (five suppliers
/// at a time). Whichever the writer takes first is logged; the other is then signed by a
/// revoked key: 403 `not_current_master`. Each supplier keeps exactly one current master, and
/// sites agree.
#[test]
fn racing_mutual_revocations_leave_exactly_one_master() {
    let ch = Channel::start();
    let suppliers: Vec<(Supplier, KeyPair)> = (0..5)
        .map(|i| {
            let s = Supplier::new(&format!("duo{i}"));
            let second = KeyPair::generate();
            ch.submit(&s.master_entry());
            ch.submit(&master_of(&s, &second));
            (s, second)
        })
        .collect();
    let mut entries = Vec::new();
    for (s, second) in &suppliers {
        entries.push(s.revoke(&s.master, &second.public()));
        entries.push(s.revoke(second, &s.master.public()));
    }
    let answers = race(&ch, &entries);
    let mut survivors = Vec::new();
    for (i, (s, second)) in suppliers.iter().enumerate() {
        match (&answers[2 * i], &answers[2 * i + 1]) {
            (Ok(_), Err(e)) => {
                assert_eq!(e, &(403, "not_current_master".to_owned()));
                survivors.push((s.name.as_str(), s.master.public()));
            }
            (Err(e), Ok(_)) => {
                assert_eq!(e, &(403, "not_current_master".to_owned()));
                survivors.push((s.name.as_str(), second.public()));
            }
            other => panic!("{}: {other:?}", s.name),
        }
    }
    assert_eq!(assert_log_intact(&ch).len(), 15);
    let site = sites_agree(&ch);
    for (name, key) in survivors {
        let current: Vec<_> = site_keys(&site, name)
            .into_iter()
            .filter(|k| k.record.revoked_at.is_none())
            .map(|k| k.key)
            .collect();
        assert_eq!(current, vec![key], "{name}");
    }
}

/// One fresh key registered at once as acme's signing key and as bob's: one is logged, the
/// other is 403 `key_already_registered`; the key belongs to exactly one supplier at sites.
#[test]
fn racing_one_key_for_two_suppliers_gives_it_to_one() {
    let ch = Channel::start();
    let (acme, bob) = (Supplier::new("acme"), Supplier::new("bob"));
    acme.register(&ch);
    bob.register(&ch);
    let key = KeyPair::generate();
    let answers = race(
        &ch,
        &[
            signing_of(&acme, &acme.master, &key),
            signing_of(&bob, &bob.master, &key),
        ],
    );
    let owner = match (&answers[0], &answers[1]) {
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => {
            assert_eq!(e, &(403, "key_already_registered".to_owned()));
            if answers[0].is_ok() { "acme" } else { "bob" }
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(assert_log_intact(&ch).len(), 5);
    let site = sites_agree(&ch);
    for name in ["acme", "bob"] {
        let has = site_keys(&site, name).iter().any(|k| k.key == key.public());
        assert_eq!(has, name == owner, "{name}");
    }
}

/// A release by a signing key raced against that key's revocation. Two orders are possible
/// and both are right: the release first (logged, then withdrawn by the revocation), or the
/// revocation first (the release 403 `not_current_signing_key`). Either way the site, on
/// 1.0.0 signed by acme's other signing key, installs nothing new and reports nothing wrong.
#[test]
fn racing_a_release_against_its_keys_revocation_installs_nothing_new() {
    let ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    let other = KeyPair::generate();
    ch.submit(&signing_of(&acme, &acme.master, &other));
    let v1 = archive("1.0.0", "by the other key");
    ch.submit(&acme.release(&other, "hello", "1.0.0", &v1));
    ch.upload("acme", "hello", "1.0.0", &v1);
    let site = Site::init_installing(&ch, "acme/hello", "1.0.0");
    let v2 = archive("2.0.0", "by the revoked key");
    let release = acme.release(&acme.signing, "hello", "2.0.0", &v2);
    let revocation = acme.revoke(&acme.master, &acme.signing.public());
    let answers = race(&ch, &[release, revocation]);
    let revoked_at = answers[1]
        .as_ref()
        .expect("the revocation is always accepted")
        .index;
    match &answers[0] {
        Ok(r) => {
            assert!(r.index < revoked_at);
            // The bytes may even be uploaded: the release is still not installable.
            let _ = agent()
                .put(&ch.url("/v1/archives/acme/hello/2.0.0"))
                .send(&v2[..]);
        }
        Err(e) => assert_eq!(e, &(403, "not_current_signing_key".to_owned())),
    }
    assert_log_intact(&ch);
    let t = assert_says(&site.run(&["update"]), exit::OK, &["applied"]);
    assert!(
        !t.contains("installed 2.0.0") && !t.contains("no longer trusted"),
        "{t}"
    );
    assert_eq!(
        site.installed_version("acme", "hello").as_deref(),
        Some("1.0.0")
    );
    assert!(installed_file(&site).contains("1.0.0 by the other key"));
}

// ---------------------------------------------------------------------------------------------
// 2. At the honest channel, one at a time
// ---------------------------------------------------------------------------------------------

/// Attempt 3: revoked keys re-added at the channel. acme revokes its signing key and its
/// second master; each is then submitted again, by a current master, as acme's signing key
/// and as acme's master key,
/// as a new supplier's self-signed first master key, and as bob's signing and master key:
/// every one 403 `key_already_registered`, the log unchanged; their first registrations
/// replayed byte for byte are duplicates at their old index. The revocation replayed (same
/// bytes) is a duplicate at its index; with another reason, or by the other master, 403
/// `key_already_revoked`.
#[test]
fn revoked_keys_cannot_be_added_again_at_the_channel() {
    let ch = Channel::start();
    let (acme, bob) = (Supplier::new("acme"), Supplier::new("bob"));
    acme.register(&ch);
    bob.register(&ch);
    let (m2, m3) = (KeyPair::generate(), KeyPair::generate());
    ch.submit(&master_of(&acme, &m2));
    ch.submit(&master_of(&acme, &m3));
    let revocation = acme.revoke(&acme.master, &acme.signing.public());
    let revoked_at = ch.submit(&revocation).index;
    ch.submit(&acme.revoke(&acme.master, &m2.public()));
    let before = head(&ch);
    let newco = Supplier::new("newco");
    for k in [&acme.signing, &m2] {
        // By the current masters, in both roles (the byte-identical first registration would
        // be an idempotent duplicate instead, asserted below).
        let attempts = [
            signing_of(&acme, &m3, k),
            acme.sign(
                &m3,
                Event::MasterKey {
                    public_key: k.public(),
                    derivation: None,
                },
            ),
            if k.public() == m2.public() {
                signing_of(&acme, &acme.master, k)
            } else {
                master_of(&acme, k)
            },
            newco.sign(
                k,
                Event::MasterKey {
                    public_key: k.public(),
                    derivation: None,
                },
            ),
            signing_of(&bob, &bob.master, k),
            master_of(&bob, k),
        ];
        for e in attempts {
            assert_eq!(
                ch.try_submit(&e).unwrap_err(),
                (403, "key_already_registered".to_owned())
            );
        }
    }
    for first in [acme.signing_entry(), master_of(&acme, &m2)] {
        let replay = ch.submit(&first);
        assert!(replay.duplicate && replay.index < revoked_at, "{replay:?}");
    }
    let again = ch.submit(&revocation);
    assert!(again.duplicate);
    assert_eq!(again.index, revoked_at);
    let reworded = acme.sign(
        &acme.master,
        Event::KeyRevocation {
            public_key: acme.signing.public(),
            reason: Reason::parse("again").unwrap(),
        },
    );
    assert_eq!(
        ch.try_submit(&reworded).unwrap_err(),
        (403, "key_already_revoked".to_owned())
    );
    assert_eq!(head(&ch), before);
    assert_log_intact(&ch);
}

/// Attempt 5: every event kind in acme's name, signed by bob's current master key and by his
/// current signing key (valid signatures): 403 with the rule of the kind; then bob, in his own
/// name, revoking acme's keys: 403 `not_supplier_key`. The log is unchanged.
#[test]
fn every_event_kind_signed_by_another_suppliers_key_is_refused_at_the_channel() {
    let ch = Channel::start();
    let (acme, bob) = (Supplier::new("acme"), Supplier::new("bob"));
    acme.register(&ch);
    bob.register(&ch);
    let v1 = archive("1.0.0", "genuine");
    acme.publish(&ch, "hello", "1.0.0", &v1);
    let bob_v1 = plugin_archive("bob/hello", "1.0.0", "bob");
    bob.publish(&ch, "hello", "1.0.0", &bob_v1);
    // The logged digest of bob's release: the attestation's only defect is its signer.
    let bob_digest = keyggdrasil::filesig::archive_digest(&bob_v1[..]).unwrap().1;
    let before = head(&ch);
    let (hello, v) = (
        PackageName::parse("hello").unwrap(),
        Version::parse("1.0.0").unwrap(),
    );
    let fresh = KeyPair::generate();
    for by in [&bob.master, &bob.signing] {
        let release = acme.release(by, "hello", "6.6.6", &archive("6.6.6", "evil"));
        for (event, code) in [
            (
                Event::MasterKey {
                    public_key: fresh.public(),
                    derivation: None,
                },
                "not_current_master",
            ),
            (
                Event::SigningKey {
                    public_key: fresh.public(),
                    derivation: None,
                },
                "not_current_master",
            ),
            (
                Event::KeyRevocation {
                    public_key: acme.master.public(),
                    reason: Reason::parse("takeover").unwrap(),
                },
                "not_current_master",
            ),
            (release.body().event.clone(), "not_current_signing_key"),
            (
                Event::ReleaseRevocation {
                    package: hello.clone(),
                    version: v.clone(),
                    reason: Reason::parse("sabotage").unwrap(),
                },
                "not_current_key",
            ),
            (
                Event::Attestation {
                    subject: bob.name.clone(),
                    package: hello.clone(),
                    version: v.clone(),
                    digest: keyggdrasil::entry::Digest512(bob_digest),
                    claim: keyggdrasil::entry::Claim::Reproduced,
                },
                "not_current_key",
            ),
            (
                Event::Rollout {
                    package: hello.clone(),
                    version: v.clone(),
                    replaces: 2,
                    waves: vec![Wave {
                        percent: 1,
                        not_before: 0,
                    }],
                    paused: true,
                },
                "not_current_key",
            ),
        ] {
            let kind = event.kind();
            let e = acme.sign(by, event);
            assert_eq!(
                ch.try_submit(&e).unwrap_err(),
                (403, code.to_owned()),
                "{kind}"
            );
        }
    }
    for key in [acme.master.public(), acme.signing.public()] {
        let e = bob.revoke(&bob.master, &key);
        assert_eq!(
            ch.try_submit(&e).unwrap_err(),
            (403, "not_supplier_key".to_owned())
        );
    }
    assert_eq!(head(&ch), before);
    assert_log_intact(&ch);
}

// ---------------------------------------------------------------------------------------------
// 3. A lying channel: accepted (signed, peer-confirmed), and still refused by the site
// ---------------------------------------------------------------------------------------------

/// A real channel with acme registered (plus a second signing key `spare`) and 1.0.0
/// installed at a site that peers with one notary, both behind a front holding the channel
/// key that serves the real log plus `extra` (see `key_attacks.rs`).
struct Evil {
    channel: Channel,
    acme: Supplier,
    spare: KeyPair,
    extra: Arc<Mutex<Vec<Entry>>>,
    _front: Front,
    _notary: Site,
    site: Site,
}

fn evil() -> Evil {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    let spare = KeyPair::generate();
    channel.submit(&signing_of(&acme, &acme.master, &spare));
    acme.publish(&channel, "hello", "1.0.0", &archive("1.0.0", "genuine"));
    let extra: Arc<Mutex<Vec<Entry>>> = Arc::new(Mutex::new(Vec::new()));
    let key = Arc::new(channel.signing_key());
    let (up, ex) = (channel.base.clone(), extra.clone());
    let front = Front::start(&channel.base, move |path| {
        if path.starts_with("/v1/updates") || path.starts_with("/v1/fresh") {
            evil_log(&up, &key, &ex.lock().unwrap(), path)
        } else {
            Answer::Pass
        }
    });
    let mut notary = Site::init(&channel);
    notary.set_mirror(&front.url);
    notary.start_notary();
    let site = Site::init(&channel);
    site.set_mirror(&front.url);
    site.add_peer(notary.notary_url.as_deref().unwrap(), &notary.notary_key);
    assert_says(
        &site.run(&["install", "acme/hello"]),
        exit::OK,
        &["installed 1.0.0", "confirmed by 1 of 1 peers"],
    );
    Evil {
        channel,
        acme,
        spare,
        extra,
        _front: front,
        _notary: notary,
        site,
    }
}

impl Evil {
    /// The honest channel revokes `spare`; the site applies it in a run of its own.
    fn revoke_spare(&self) {
        self.channel
            .submit(&self.acme.revoke(&self.acme.master, &self.spare.public()));
        assert_says(
            &self.site.run(&["update"]),
            exit::OK,
            &["applied 1 new entries"],
        );
    }

    /// The front serves `entries` after the real log; the site refuses them: exit 3, after
    /// the peer confirmed the forged root, naming the log index and the rule; nothing changed.
    fn refused(&self, entries: Vec<Entry>, index: i64, says: &str) {
        *self.extra.lock().unwrap() = entries;
        let size = self.site.accepted_size();
        self.site.assert_update_refused(
            exit::VERIFICATION,
            &[
                "confirmed by 1 of 1 peers",
                &format!("channel test.channel logged entry {index}, which breaks the key rules"),
                says,
                "nothing was applied",
            ],
        );
        assert_eq!(self.site.accepted_size(), size);
        assert!(installed_file(&self.site).contains("1.0.0 genuine"));
    }
}

/// Attempt 2 (next batch), from a lying channel: the site applied the revocation of `spare`
/// in an earlier run; the channel then logs a release signed by `spare` (signature valid,
/// root signed, peer-confirmed). The site refuses it from its stored state. (The same batch:
/// `key_attacks.rs` `hostile_inputs::release_by_a_revoked_signing_key`.)
#[test]
fn a_lying_channel_cannot_use_a_key_revoked_in_an_earlier_run() {
    let w = evil();
    w.revoke_spare();
    let size = w.site.accepted_size();
    let forged = w
        .acme
        .release(&w.spare, "hello", "6.6.6", &archive("6.6.6", "revoked key"));
    w.refused(
        vec![forged],
        size,
        &format!(
            "key {} is not a current signing key of supplier acme",
            w.spare.public()
        ),
    );
}

/// Attempt 3 from a lying channel: the revoked `spare` registered again as a key of another
/// supplier (a self-signed first master key of `mallory`), followed by a release signed by it
/// under that name. The site refuses at the registration, so the release is never reached.
#[test]
fn a_lying_channel_cannot_register_a_revoked_key_again() {
    let w = evil();
    w.revoke_spare();
    let size = w.site.accepted_size();
    let mallory = Supplier {
        name: SupplierName::parse("mallory").unwrap(),
        master: KeyPair::from_seed(&w.spare.seed()).unwrap(),
        signing: KeyPair::generate(),
    };
    let forged = vec![
        mallory.master_entry(),
        mallory.release(&mallory.master, "hello", "6.6.6", b"x"),
    ];
    w.refused(
        forged,
        size,
        &format!(
            "key {} is already registered and can never be registered again",
            w.spare.public()
        ),
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Findings: K1 (fixed) and K3 (open)
// ---------------------------------------------------------------------------------------------

/// A rollout entry of acme's `hello` `version` (one wave of 100 %, now) replacing the schedule
/// logged at `replaces`.
fn rollout_of(by: &Supplier, version: &str, replaces: u64, paused: bool) -> Entry {
    by.sign(
        &by.signing,
        Event::Rollout {
            package: PackageName::parse("hello").unwrap(),
            version: Version::parse(version).unwrap(),
            replaces,
            waves: vec![Wave {
                percent: 100,
                not_before: 0,
            }],
            paused,
        },
    )
}

/// **K1 (fixed), the honest channel's face.** acme pauses the rollout of 2.0.0, resumes it, and
/// pauses it again, as `barge rollout pause|resume|pause` does: each entry names the schedule
/// it replaces, so the second pause is a new entry (not the first one's bytes), logged at a new
/// index; the log ends paused and the site stays on 1.0.0. At the channel, the first pause
/// resubmitted byte for byte is the idempotent `duplicate` at its own index (nothing appended,
/// nothing changed), and a new entry naming an old schedule is 403 `stale_rollout`.
#[test]
fn a_repeated_pause_is_a_new_entry_and_the_rollout_stays_paused() {
    let ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    acme.publish(&ch, "hello", "1.0.0", &archive("1.0.0", "old"));
    let site = Site::init_installing(&ch, "acme/hello", "1.0.0");
    acme.publish(&ch, "hello", "2.0.0", &archive("2.0.0", "paused"));
    let release_at = head(&ch).0 - 1;
    let first_pause = ch.submit(&rollout_of(&acme, "2.0.0", release_at, true));
    assert!(!first_pause.duplicate);
    assert_says(&site.run(&["update"]), exit::OK, &["applied"]);
    assert_eq!(
        site.installed_version("acme", "hello").as_deref(),
        Some("1.0.0")
    );
    let resume = ch.submit(&rollout_of(&acme, "2.0.0", first_pause.index, false));
    assert!(!resume.duplicate);
    let second_pause = ch.submit(&rollout_of(&acme, "2.0.0", resume.index, true));
    assert!(!second_pause.duplicate, "{second_pause:?}");
    assert_eq!(second_pause.index, resume.index + 1);
    let before = head(&ch);
    assert_eq!(
        before.0,
        second_pause.index + 1,
        "the log ends with the pause"
    );
    // The first pause again, byte for byte: idempotent, nothing appended.
    let again = ch.submit(&rollout_of(&acme, "2.0.0", release_at, true));
    assert!(again.duplicate);
    assert_eq!(again.index, first_pause.index);
    // A resume against an old schedule, signed by the master key (new bytes): refused.
    for replaces in [release_at, first_pause.index, resume.index] {
        let mut e = rollout_of(&acme, "2.0.0", replaces, false).body().clone();
        e.signer = acme.master.public();
        let e = Entry::sign(e, &acme.master).unwrap();
        assert_eq!(
            ch.try_submit(&e).unwrap_err(),
            (403, "stale_rollout".to_owned())
        );
    }
    assert_eq!(head(&ch), before);
    let entries = assert_log_intact(&ch);
    let distinct: std::collections::BTreeSet<&Vec<u8>> = entries.iter().collect();
    assert_eq!(distinct.len(), entries.len(), "an entry is logged twice");
    assert_says(&site.run(&["update"]), exit::OK, &["applied"]);
    assert_eq!(
        site.installed_version("acme", "hello").as_deref(),
        Some("1.0.0")
    );
    assert!(installed_file(&site).contains("1.0.0 old"));
}

/// **K1 (fixed), the lying channel's face.** acme published 2.0.0, set its rollout (100 %,
/// now) and then paused it; the site applied both and stays on 1.0.0. The channel then
/// appends acme's earlier rollout entry again, byte for byte: the peer confirms the root (it
/// is shown the same log), but the entry names the release's own schedule, which the pause
/// replaced, so the site refuses it (`stale_rollout`): exit 3, the message names the log
/// index and both schedules, nothing is applied and 2.0.0 is not installed.
#[test]
fn a_lying_channel_replaying_an_old_rollout_entry_is_refused_by_the_site() {
    let w = evil();
    let v2 = archive("2.0.0", "paused by acme");
    w.acme.publish(&w.channel, "hello", "2.0.0", &v2);
    let release_at = head(&w.channel).0 - 1;
    let resume = rollout_of(&w.acme, "2.0.0", release_at, false);
    let resumed = w.channel.submit(&resume);
    let paused = w
        .channel
        .submit(&rollout_of(&w.acme, "2.0.0", resumed.index, true));
    assert_says(
        &w.site.run(&["update"]),
        exit::OK,
        &["applied 3 new entries"],
    );
    assert_eq!(
        w.site.installed_version("acme", "hello").as_deref(),
        Some("1.0.0")
    );
    let size = w.site.accepted_size();
    w.refused(
        vec![resume],
        size,
        &format!(
            "the rollout entry for acme/hello 2.0.0 replaces the schedule at log index \
             {release_at}, but the current schedule is the one at index {}: the entry is stale \
             or replayed",
            paused.index
        ),
    );
    assert_eq!(
        w.site.installed_version("acme", "hello").as_deref(),
        Some("1.0.0")
    );
}

/// **K3 (open, by design: docs/decisions.md 8).** Entries are not bound to a channel, and a
/// revocation holds only where it is logged. A thief of acme's signing key, revoked on channel
/// A, replays acme's own master-key and signing-key registrations (valid, self-authenticating
/// entries) on channel B where acme never registered, leaves the revocation out, and releases
/// with the stolen key there: every entry is accepted, and a site following B installs it.
#[test]
fn open_k3_a_key_revoked_on_one_channel_revives_on_another() {
    let a = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&a);
    a.submit(&acme.revoke(&acme.master, &acme.signing.public()));
    let b = Channel::start();
    b.submit(&acme.master_entry());
    b.submit(&acme.signing_entry());
    let evil = archive("6.6.6", "stolen key");
    assert!(
        !b.submit(&acme.release(&acme.signing, "hello", "6.6.6", &evil))
            .duplicate
    );
    b.upload("acme", "hello", "6.6.6", &evil);
    let site = Site::init_installing(&b, "acme/hello", "6.6.6");
    assert!(installed_file(&site).contains("6.6.6 stolen key"));
    // Anyone can cure it the same way: the revocation, replayed on B, is accepted too.
    b.submit(&acme.revoke(&acme.master, &acme.signing.public()));
    assert_says(&site.run(&["update"]), exit::OK, &["no longer trusted"]);
}
