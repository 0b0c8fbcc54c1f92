//! `GET /v1/fresh` (batched freshness answers) against the real binary and its signer: every
//! answer verifies with `keyggdrasil::batch::verify_batched` for the nonce sent and states the
//! log's signed size and root; concurrent requests share signatures; a bad nonce is refused.

use keyggdrasil::batch::{BatchHead, BatchedAnswer, verify_batched};
use keyggdrasil::limits::Limits;
use keyggdrasil::names::ChannelName;
use keyggdrasil::wire::{Nonce, Signed, verify_checkpoint};

use super::harness::{Channel, Supplier};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn ask(ch: &Channel, nonce: &Nonce) -> BatchedAnswer {
    ch.get(&format!("/v1/fresh?nonce={}", nonce.to_hex()))
        .unwrap()
}

#[test]
fn fresh_answers_verify_for_their_nonce_and_state_the_signed_head() {
    let ch = Channel::start_with("open", "");
    Supplier::new("acme").register(&ch);
    let origin = ChannelName::parse("test.channel").unwrap();
    let signed: Signed = ch.get_signed("/v1/checkpoint");
    let cp = verify_checkpoint(&signed, &ch.key, None, &Limits::default()).unwrap();

    let nonce = Nonce::generate();
    let answer = ask(&ch, &nonce);
    let v = verify_batched(&answer, &ch.key, &origin, &nonce, now(), &Limits::default()).unwrap();
    assert_eq!((v.size(), v.root()), (cp.size(), cp.root()));
    // Another nonce does not pass with this answer.
    assert!(
        verify_batched(
            &answer,
            &ch.key,
            &origin,
            &Nonce::generate(),
            now(),
            &Limits::default()
        )
        .is_err()
    );

    // 64 concurrent requests: each answer verifies for its own nonce (how many share a
    // signature depends on timing; the unit tests of `channel_server::fresh` pin it down).
    let nonces: Vec<Nonce> = (0..64).map(|_| Nonce::generate()).collect();
    let answers: Vec<BatchedAnswer> = std::thread::scope(|s| {
        let handles: Vec<_> = nonces.iter().map(|n| s.spawn(|| ask(&ch, n))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut heads = std::collections::BTreeSet::new();
    for (n, a) in nonces.iter().zip(&answers) {
        verify_batched(a, &ch.key, &origin, n, now(), &Limits::default()).unwrap();
        let head: BatchHead = serde_json::from_str(&a.head.payload).unwrap();
        assert!(a.index < head.batch_size);
        heads.insert(a.head.signature.to_hex());
    }
    println!("64 concurrent answers from {} signatures", heads.len());
    assert!(!heads.is_empty() && heads.len() <= 64);
}

#[test]
fn a_bad_nonce_is_refused() {
    let ch = Channel::start_with("open", "");
    for bad in ["", "00", &"g".repeat(64), &"0".repeat(66)] {
        let err = ch
            .get::<BatchedAnswer>(&format!("/v1/fresh?nonce={bad}"))
            .unwrap_err();
        assert_eq!(err.0, 400, "{bad:?}: {}", err.1);
        assert!(err.1.contains("bad_nonce"), "{bad:?}: {}", err.1);
    }
    let err = ch.get::<BatchedAnswer>("/v1/fresh").unwrap_err();
    assert_eq!(err.0, 400, "{}", err.1);
}
