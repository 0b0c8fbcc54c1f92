//! Lies about the batched freshness answer (`GET /v1/fresh`, docs/protocol.md "Batched
//! freshness answers"), told by a man in the middle before the real channel: another site's
//! path in the same batch, an answer from an earlier batch, a changed index or path, a head
//! that was edited, re-signed under another context, backdated, or signed by another key.
//!
//! Each lie is told after a newer release was published, so it is a freeze attempt: the lie
//! would keep the site on 1.0.0. Each must be refused with exit 3, say why, leave the site
//! exactly as it was ([`Site::assert_update_refused`]), and the next honest run installs 1.1.0.

use std::sync::{Arc, Mutex};

use keyggdrasil::batch::{BatchHead, BatchedAnswer};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{Envelope, Nonce, Signed, TreeHash};
use system_tests::front::{Answer, Front, forward};
use system_tests::{Channel, Site, Supplier, assert_says, exit, plugin_archive};

fn installed_file(site: &Site) -> String {
    std::fs::read_to_string(site.root.join("packages/acme/hello/current/plugin.php"))
        .unwrap_or_default()
}

/// What the front does to a `/v1/fresh` request (given the channel's URL and the path).
type Lie = Box<dyn Fn(&str, &str) -> Answer + Send + Sync>;

struct World {
    channel: Channel,
    acme: Supplier,
    site: Site,
    lie: Arc<Mutex<Option<Lie>>>,
    _notary: Site,
    _front: Front,
}

/// A channel with `acme/hello` 1.0.0, a notary, and a site that installed it through a front
/// that tells the truth until [`World::lie`] is called.
fn world() -> World {
    let channel = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&channel);
    acme.publish(
        &channel,
        "hello",
        "1.0.0",
        &plugin_archive("acme/hello", "1.0.0", "first"),
    );
    let lie: Arc<Mutex<Option<Lie>>> = Arc::new(Mutex::new(None));
    let (l, up) = (lie.clone(), channel.base.clone());
    let front = Front::start(&channel.base, move |path| {
        match (path.starts_with("/v1/fresh"), l.lock().unwrap().as_ref()) {
            (true, Some(lie)) => lie(&up, path),
            _ => Answer::Pass,
        }
    });
    let mut notary = Site::init(&channel);
    notary.start_notary();
    let site = Site::init(&channel);
    site.add_peer(notary.notary_url.as_deref().unwrap(), &notary.notary_key);
    site.set_mirror(&front.url);
    assert_says(
        &site.run(&["install", "acme/hello"]),
        exit::OK,
        &["installed 1.0.0"],
    );
    World {
        channel,
        acme,
        site,
        lie,
        _notary: notary,
        _front: front,
    }
}

impl World {
    fn lie(&self, lie: impl Fn(&str, &str) -> Answer + Send + Sync + 'static) {
        *self.lie.lock().unwrap() = Some(Box::new(lie));
    }

    fn publish_newer(&self) {
        self.acme.publish(
            &self.channel,
            "hello",
            "1.1.0",
            &plugin_archive("acme/hello", "1.1.0", "newer"),
        );
    }

    /// Refused with exit 3, saying each of `says`, the site unchanged and still on 1.0.0.
    fn refuses(&self, case: &str, says: &[&str]) {
        println!("case: {case}");
        let mut all = vec!["fails verification"];
        all.extend_from_slice(says);
        self.site.assert_update_refused(exit::VERIFICATION, &all);
        assert!(installed_file(&self.site).contains("1.0.0 first"), "{case}");
    }

    fn recovers(&self) {
        *self.lie.lock().unwrap() = None;
        assert_says(&self.site.run(&["update"]), exit::OK, &["installed 1.1.0"]);
        assert!(installed_file(&self.site).contains("1.1.0 newer"));
    }
}

fn json<T: serde::Serialize>(data: T) -> Answer {
    Answer::Body {
        status: 200,
        content_type: "application/json".into(),
        body: serde_json::to_vec(&Envelope::Ok { data }).unwrap(),
    }
}

/// The channel's genuine answer to `path`.
fn genuine(upstream: &str, path: &str) -> BatchedAnswer {
    let (status, _, body) = forward(upstream, path, None);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    Envelope::open(&body, 1 << 20).unwrap()
}

fn head_of(answer: &BatchedAnswer) -> BatchHead {
    serde_json::from_str(&answer.head.payload).unwrap()
}

fn fresh_path(nonce: &Nonce) -> String {
    format!("/v1/fresh?nonce={}", nonce.to_hex())
}

/// Asks the channel for the site's nonce together with `others` nonces at once, until an
/// answer shares its batch with the site's: returns that other site's answer (same signed
/// head, its own index and path). The channel batches whatever waits while it signs, so a
/// few rounds of concurrent requests always make a batch of more than one.
fn another_sites_answer(upstream: &str, site_path: &str) -> BatchedAnswer {
    for _ in 0..200 {
        let nonces: Vec<Nonce> = (0..16).map(|_| Nonce::generate()).collect();
        let answers: Vec<BatchedAnswer> = std::thread::scope(|s| {
            let mine = s.spawn(|| genuine(upstream, site_path));
            let theirs: Vec<_> = nonces
                .iter()
                .map(|n| s.spawn(move || genuine(upstream, &fresh_path(n))))
                .collect();
            let mut all = vec![mine.join().unwrap()];
            all.extend(theirs.into_iter().map(|t| t.join().unwrap()));
            all
        });
        let mine = &answers[0];
        if let Some(other) = answers[1..]
            .iter()
            .find(|a| a.head == mine.head && a.index != mine.index)
        {
            assert!(head_of(other).batch_size >= 2);
            return other.clone();
        }
    }
    panic!("no two of 17 concurrent requests were ever answered by one batch");
}

/// The site's nonce is in a real batch of the channel, and the front hands it the answer of
/// another site in that same batch: the same genuine, fresh, channel-signed head, with the
/// other site's index and path.
#[test]
fn a_site_given_another_sites_batch_path_refuses_it() {
    let w = world();
    w.publish_newer();
    w.lie(|up, path| json(another_sites_answer(up, path)));
    w.refuses(
        "another site's path in the same batch",
        &["does not carry the nonce of this request"],
    );
    w.recovers();
}

/// A genuine answer captured for another nonce before the newer release (an earlier batch)
/// is served again.
#[test]
fn an_answer_from_an_earlier_batch_is_refused() {
    let w = world();
    let captured = genuine(&w.channel.base, &fresh_path(&Nonce::generate()));
    assert_eq!(head_of(&captured).size, 3);
    w.publish_newer();
    w.lie(move |_, _| json(captured.clone()));
    w.refuses(
        "an answer from an earlier batch",
        &["does not carry the nonce of this request"],
    );
    w.recovers();
}

/// The site's own genuine answer, changed on the way: every change is caught.
#[test]
fn a_changed_batched_answer_is_refused() {
    let w = world();
    w.publish_newer();
    let key = Arc::new(w.channel.signing_key());
    let edit = |f: fn(&mut BatchedAnswer, &KeyPair)| {
        let key = key.clone();
        move |up: &str, path: &str| {
            let mut a = genuine(up, path);
            f(&mut a, &key);
            json(a)
        }
    };

    w.lie(edit(|a, _| a.index += 1));
    w.refuses("index moved", &["is not in a batch of"]);

    w.lie(edit(|a, _| a.path.push(TreeHash([7; 32]))));
    w.refuses(
        "a path to a root the channel did not sign",
        &["does not carry the nonce of this request"],
    );

    w.lie(edit(|a, _| {
        let mut head = head_of(a);
        head.batch_root = TreeHash([9; 32]);
        a.head.payload = serde_json::to_string(&head).unwrap();
    }));
    w.refuses(
        "the head's batch root edited without a signature",
        &["the signature does not verify with the pinned key"],
    );

    w.lie(edit(|a, key| {
        a.head = Signed::sign(key, Context::ChannelUpdate, &head_of(a));
    }));
    w.refuses(
        "the head re-signed under the update context",
        &["the signature does not verify with the pinned key"],
    );

    w.lie(edit(|a, _| {
        a.head = Signed::sign(&KeyPair::generate(), Context::ChannelBatch, &head_of(a));
    }));
    w.refuses(
        "the head signed by another key",
        &["the signature does not verify with the pinned key"],
    );

    w.lie(edit(|a, key| {
        let mut head = head_of(a);
        head.time -= 2 * 86_400;
        a.head = Signed::sign(key, Context::ChannelBatch, &head);
    }));
    w.refuses(
        "the head backdated two days by a holder of the channel key",
        &["the answer is stale"],
    );

    w.recovers();
}
