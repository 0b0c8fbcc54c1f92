//! Every notary is a C2SP tlog-witness (issue 16, item 2): `POST /add-checkpoint` on a real
//! `continuum notary serve`, fed the channel's real checkpoint notes and consistency proofs,
//! answers each status the spec defines, returns a `cosignature/v1` by the notary key that
//! verifies, and of concurrent requests from the same old size exactly one wins.

use base64ct::{Base64, Encoding};
use keyggdrasil::note::{self, VerifierKey};
use system_tests::{Channel, Site, Supplier, agent};

/// POSTs `body` to the notary's add-checkpoint: status, content type, body.
fn add(url: &str, body: &[u8]) -> (u16, String, String) {
    let r = agent()
        .post(&format!("{url}/add-checkpoint"))
        .send(body)
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, ct, r.into_body().read_to_string().unwrap())
}

fn checkpoint(ch: &Channel) -> String {
    agent()
        .get(&ch.url("/checkpoint"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap()
}

/// The consistency proof lines from `old` to `new`, from the channel.
fn proof_lines(ch: &Channel, old: u64, new: u64) -> String {
    let p: serde_json::Value = ch
        .get(&format!("/v1/proof/consistency?old={old}&new={new}"))
        .unwrap();
    p["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Base64::encode_string(&hex::decode(h.as_str().unwrap()).unwrap()) + "\n")
        .collect()
}

#[test]
fn a_notary_witnesses_the_channel_as_the_spec_says() {
    let ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    acme.publish_plugin(&ch, "hello", "1.0.0", "first");
    ch.wait_published(3);
    let mut site = Site::init(&ch);
    let url = site.start_notary();
    let witness =
        VerifierKey::parse(&continuum::notary::witness::verifier_key(&site.notary_key)).unwrap();

    // First contact: old 0, no proof. 200 and a cosignature that verifies, timestamped.
    let cp3 = checkpoint(&ch);
    let (status, ct, body) = add(&url, format!("old 0\n\n{cp3}").as_bytes());
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("text/plain"), "{ct}");
    let cosigned = format!("{cp3}{body}");
    let opened = note::open(cosigned.as_bytes(), std::slice::from_ref(&witness)).unwrap();
    assert!(opened.verified[0].time.unwrap() > 1_700_000_000);

    // The same old size again: 409 with the latest size as text/x.tlog.size.
    let (status, ct, body) = add(&url, format!("old 0\n\n{cp3}").as_bytes());
    assert_eq!(
        (status, ct.as_str(), body.as_str()),
        (409, "text/x.tlog.size", "3\n")
    );

    // The log grows: old 3 with the channel's consistency proof to 4.
    acme.publish_plugin(&ch, "hello", "1.1.0", "second");
    ch.wait_published(4);
    let cp4 = checkpoint(&ch);
    let good = format!("old 3\n{}\n{cp4}", proof_lines(&ch, 3, 4));
    // A proof that fails first (one hash changed): 422, and nothing recorded.
    let mut bad_proof = proof_lines(&ch, 3, 4);
    bad_proof.replace_range(
        0..4,
        if &bad_proof[0..4] == "AAAA" {
            "BBBB"
        } else {
            "AAAA"
        },
    );
    let (status, _, body) = add(&url, format!("old 3\n{bad_proof}\n{cp4}").as_bytes());
    assert_eq!(status, 422, "{body}");
    let (status, _, body) = add(&url, good.as_bytes());
    assert_eq!(status, 200, "{body}");
    assert!(
        note::open(
            format!("{cp4}{body}").as_bytes(),
            std::slice::from_ref(&witness)
        )
        .is_ok()
    );

    // 400: old above the checkpoint's size, and a malformed body.
    let (status, _, _) = add(&url, format!("old 9\n\n{cp4}").as_bytes());
    assert_eq!(status, 400);
    let (status, _, _) = add(&url, b"hello");
    assert_eq!(status, 400);
    // 404: a checkpoint of a log the notary does not know.
    let stranger = keyggdrasil::tlog_checkpoint::sign(
        &keyggdrasil::names::ChannelName::parse("elsewhere.example").unwrap(),
        1,
        &[1; 32],
        &keyggdrasil::keys::KeyPair::generate(),
    )
    .unwrap();
    let (status, _, _) = add(&url, format!("old 0\n\n{stranger}").as_bytes());
    assert_eq!(status, 404);
    // 403: the channel's name, another key.
    let forged = keyggdrasil::tlog_checkpoint::sign(
        &ch.origin(),
        5,
        &[1; 32],
        &keyggdrasil::keys::KeyPair::generate(),
    )
    .unwrap();
    let (status, _, _) = add(&url, format!("old 4\n\n{forged}").as_bytes());
    assert_eq!(status, 403);
    // 422: a fork signed by the channel key (another root at the cosigned size 4).
    let fork =
        keyggdrasil::tlog_checkpoint::sign(&ch.origin(), 4, &[7; 32], &ch.signing_key()).unwrap();
    let (status, _, _) = add(&url, format!("old 4\n\n{fork}").as_bytes());
    assert_eq!(status, 422);
    // Still at 4 after all that.
    let (status, _, body) = add(&url, format!("old 0\n\n{cp3}").as_bytes());
    assert_eq!((status, body.as_str()), (409, "4\n"));
    site.stop_notary();
}

#[test]
fn of_concurrent_requests_from_one_old_size_exactly_one_wins() {
    let ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    ch.wait_published(2);
    let mut site = Site::init(&ch);
    let url = site.start_notary();
    let cp2 = checkpoint(&ch);
    assert_eq!(add(&url, format!("old 0\n\n{cp2}").as_bytes()).0, 200);
    acme.publish_plugin(&ch, "hello", "1.0.0", "first");
    ch.wait_published(3);
    let body = format!("old 2\n{}\n{}", proof_lines(&ch, 2, 3), checkpoint(&ch));
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| add(&url, body.as_bytes()).0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        7,
        "{statuses:?}"
    );
    site.stop_notary();
}

/// A channel (2 entries) whose `channel.toml` lists the notary of a site of its own as its
/// `[[witness]]`, restarted to read it.
struct Witnessed {
    ch: Channel,
    acme: Supplier,
    site: Site,
    url: String,
    vkey: String,
}

fn witnessed_channel() -> Witnessed {
    let mut ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    ch.wait_published(2);
    let mut site = Site::init(&ch);
    let url = site.start_notary();
    let vkey = continuum::notary::witness::verifier_key(&site.notary_key);
    let config = ch.data_dir().join("channel.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[[witness]]\nurl = \"{url}\"\nverifier_key = \"{vkey}\"\n"
    ));
    std::fs::write(&config, text).unwrap();
    ch.kill();
    ch.spawn();
    Witnessed {
        ch,
        acme,
        site,
        url,
        vkey,
    }
}

/// The channel pushes each new checkpoint to its `[[witness]]` (here a real notary) and
/// publishes the cosigned note: `public/checkpoint` and `GET /checkpoint` carry the notary's
/// cosignature, which a site's witness policy (`keyggdrasil::policy`) accepts; the channel's
/// own signature still opens with its key.
#[test]
fn the_channel_publishes_its_checkpoint_cosigned_by_its_witness() {
    let Witnessed {
        ch,
        acme,
        mut site,
        url,
        vkey,
    } = witnessed_channel();
    acme.publish_plugin(&ch, "hello", "1.0.0", "first");
    ch.wait_published(3);
    let witness = VerifierKey::parse(&vkey).unwrap();
    let policy =
        keyggdrasil::policy::Policy::parse(&format!("witness N {vkey}\nquorum N\n")).unwrap();
    let mut cosigned = None;
    for _ in 0..200 {
        let note = checkpoint(&ch);
        if note::open(note.as_bytes(), std::slice::from_ref(&witness)).is_ok() {
            cosigned = Some(note);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let note = cosigned.expect("the checkpoint was never cosigned by the witness");
    let cp = keyggdrasil::tlog_checkpoint::open(note.as_bytes(), &ch.key, &ch.origin()).unwrap();
    assert_eq!(cp.size(), 3);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(policy.check(note.as_bytes(), now, 7200, 60).unwrap(), ["N"]);
    // The static file is the same cosigned note.
    assert_eq!(
        std::fs::read_to_string(ch.public_dir().join("checkpoint")).unwrap(),
        note
    );
    // The witness recorded size 3: a request from 0 now conflicts.
    let (status, _, body) = add(&url, format!("old 0\n\n{note}").as_bytes());
    assert_eq!((status, body.as_str()), (409, "3\n"));
    site.stop_notary();
}

/// A site with a witness policy (issue 16, item 3): it installs a release only once the
/// channel's checkpoint of that size carries the quorum's cosignatures; a policy naming a
/// witness that never cosigns fails loudly (exit 4) and leaves the site unchanged.
#[test]
fn a_site_with_a_witness_policy_accepts_only_witnessed_sizes() {
    let Witnessed {
        ch,
        acme,
        site: mut witness_site,
        vkey,
        ..
    } = witnessed_channel();
    acme.publish_plugin(&ch, "hello", "1.0.0", "first");
    ch.wait_published(3);

    let with_policy = |policy: String| {
        let site = Site::init(&ch);
        site.set_option("site", "allow_no_peers", true);
        site.edit_config(|cfg| {
            cfg["channel"].as_array_mut().unwrap()[0]
                .as_table_mut()
                .unwrap()
                .insert("witness_policy".into(), toml::Value::String(policy));
        });
        site
    };
    let good = with_policy(format!("# our notary\nwitness N {vkey}\nquorum N\n"));
    let out = good.run(&["install", "acme/hello"]);
    let text = system_tests::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        good.installed_version("acme", "hello").as_deref(),
        Some("1.0.0")
    );

    let absent =
        continuum::notary::witness::verifier_key(&keyggdrasil::keys::KeyPair::generate().public());
    let strict = with_policy(format!(
        "witness N {vkey}\nwitness M {absent}\ngroup both all N M\nquorum both\n"
    ));
    let out = strict.run(&["install", "acme/hello"]);
    let text = system_tests::output_text(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(
        text.contains("witness_policy") && text.contains("missing or too old: [M]"),
        "{text}"
    );
    assert_eq!(strict.installed_version("acme", "hello"), None);
    assert_eq!(strict.accepted_size(), 0);
    witness_site.stop_notary();
}

/// What a notary cosigns is held against what it observed from the channel's nonce API: a
/// checkpoint signed by the channel key whose root contradicts the observed root at that size
/// is refused (422) even on first contact, where the witness alone would cosign it, and is
/// kept in `witness_refused`.
#[test]
fn a_witness_refuses_a_checkpoint_that_contradicts_what_its_notary_observed() {
    let ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    acme.publish_plugin(&ch, "hello", "1.0.0", "first");
    ch.wait_published(3);
    let mut site = Site::init(&ch);
    site.set_option("site", "allow_no_peers", true);
    let out = site.run(&["install", "acme/hello"]);
    assert!(out.status.success(), "{}", system_tests::output_text(&out));
    let url = site.start_notary();
    let fork =
        keyggdrasil::tlog_checkpoint::sign(&ch.origin(), 3, &[7; 32], &ch.signing_key()).unwrap();
    let (status, _, body) = add(&url, format!("old 0\n\n{fork}").as_bytes());
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("a fork"), "{body}");
    // The real checkpoint of that size is cosigned.
    let (status, _, body) = add(&url, format!("old 0\n\n{}", checkpoint(&ch)).as_bytes());
    assert_eq!(status, 200, "{body}");
    site.stop_notary();
    let db = rusqlite::Connection::open(site.root.join("site.db")).unwrap();
    let kept: i64 = db
        .query_row("SELECT COUNT(*) FROM witness_refused", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 1);
}
