//! Red-team pass of the HTTP surfaces (issue 19): each attempt an outsider can make against a
//! running channel (`channel-server serve`) and a running notary (`continuum notary serve`),
//! asserting the defended behaviour: the status and error code, that the log is unchanged
//! (size and root before and after), and that the server still answers `/healthz` after.
//! `docs/security-review.md` lists every attempt, what happened, and the test here that
//! guards it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use keyggdrasil::entry::{Entry, EntryBody, Event};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::limits::Limits;
use keyggdrasil::wire::{TreeHash, verify_checkpoint};
use system_tests::front::{Answer, Front};
use system_tests::{Channel, RATE_LIMITS_OFF, Site, Supplier, agent, plugin_archive};

/// The generous deadline after which a test fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(30);

/// The log's (size, root) from the database, as the server committed it.
fn head(ch: &Channel) -> (u64, TreeHash) {
    let signed = ch.get_signed("/v1/checkpoint");
    let c = verify_checkpoint(&signed, &ch.key, Some(&ch.origin()), &Limits::default())
        .expect("the channel's checkpoint verifies");
    (c.size(), *c.root())
}

/// GET `path`: (status, body text).
fn get(ch: &Channel, path: &str) -> (u16, String) {
    let r = match agent().get(&ch.url(path)).call() {
        Ok(r) => r,
        // A connection the server closed without an answer.
        Err(e) => return (0, e.to_string()),
    };
    let status = r.status().as_u16();
    (status, r.into_body().read_to_string().unwrap_or_default())
}

/// Asserts the channel is alive: `/healthz` answers 200.
fn assert_alive(ch: &Channel) {
    let (status, body) = get(ch, "/healthz");
    assert_eq!(status, 200, "{body}");
}

/// Asserts `GET path` is refused with `status` and error `code`.
fn refused(ch: &Channel, path: &str, status: u16, code: &str) {
    let (s, body) = get(ch, path);
    assert_eq!(s, status, "{path}: {body}");
    assert!(
        body.contains(&format!("\"code\":\"{code}\"")),
        "{path}: expected {code}: {body}"
    );
}

/// A channel with `acme` registered and `acme/hello` 1.0.0 logged (3 entries).
fn channel_with_release() -> (Channel, Supplier, Vec<u8>) {
    let ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    let archive = plugin_archive("acme/hello", "1.0.0", "genuine");
    acme.publish(&ch, "hello", "1.0.0", &archive);
    ch.wait_published(3);
    (ch, acme, archive)
}

// ---------------------------------------------------------------------------------------------
// 1. The channel HTTP API
// ---------------------------------------------------------------------------------------------

/// Attempts 1.1–1.4: an outsider without acme's keys tries to release as acme (a key of its
/// own, a second master key, a signing key signed by its own master), to sign as acme's key
/// without the secret (a forged signature), and to release under acme's name signed by
/// another registered supplier's key. Every one is refused 403 with its code, the log is
/// unchanged.
#[test]
fn submissions_without_the_suppliers_keys_are_refused() {
    let (ch, acme, _) = channel_with_release();
    let bob = Supplier::new("bob");
    bob.register(&ch);
    let before = head(&ch);
    // Mallory calls herself acme, with keys of her own.
    let mallory = Supplier::new("acme");
    let archive = plugin_archive("acme/hello", "6.6.6", "evil");
    for (what, entry, code) in [
        (
            "release signed by an unknown key",
            mallory.release(&mallory.signing, "hello", "6.6.6", &archive),
            "not_current_signing_key",
        ),
        (
            "a second master key for acme",
            mallory.master_entry(),
            "not_current_master",
        ),
        (
            "a signing key signed by an unknown master",
            mallory.signing_entry(),
            "not_current_master",
        ),
        (
            "bob's registered key releasing as acme",
            {
                let event = bob
                    .release(&bob.signing, "hello", "6.6.6", &archive)
                    .body()
                    .event
                    .clone();
                Entry::sign(
                    EntryBody::new(acme.name.clone(), bob.signing.public(), event),
                    &bob.signing,
                )
                .unwrap()
            },
            "not_current_signing_key",
        ),
    ] {
        let got = ch.try_submit(&entry).unwrap_err();
        assert_eq!(got.0, 403, "{what}: {got:?}");
        assert_eq!(got.1, code, "{what}");
    }
    // Acme's key named as signer, signed by Mallory's key (she lacks acme's secret): the
    // signature does not verify under the named signer.
    let body = EntryBody::new(
        acme.name.clone(),
        mallory.signing.public(),
        Event::KeyRevocation {
            public_key: acme.master.public(),
            reason: keyggdrasil::entry::Reason::parse("mallory").unwrap(),
        },
    );
    let signed = Entry::sign(body, &mallory.signing).unwrap();
    let text = std::str::from_utf8(signed.as_bytes()).unwrap();
    let (hers, acmes) = (
        mallory.signing.public().to_hex(),
        acme.signing.public().to_hex(),
    );
    assert!(text.contains(&hers), "{text}");
    let forged = text.replace(&hers, &acmes);
    let got = ch.try_submit_text(&forged, None).unwrap_err();
    assert_eq!(got, (403, "bad_signature".to_owned()));
    assert_eq!(head(&ch), before);
    assert_alive(&ch);
}

/// Attempt 1.5: replays of signed submissions. An accepted entry sent again is answered as a
/// duplicate at its first index and not appended; the registration of a signing key that acme
/// has since revoked, replayed, does not bring the key back: a release signed by it is still
/// refused.
#[test]
fn replayed_submissions_append_nothing_and_revive_no_key() {
    let (ch, acme, _) = channel_with_release();
    let old_release = acme.release(
        &acme.signing,
        "hello",
        "1.0.0",
        &plugin_archive("acme/hello", "1.0.0", "genuine"),
    );
    let before = head(&ch);
    let again = ch.submit(&old_release);
    assert!(again.duplicate, "a replay must be a duplicate");
    assert_eq!((again.index, again.size), (2, 3));
    assert_eq!(head(&ch), before);

    // Acme revokes its signing key; the old registration is replayed.
    ch.submit(&acme.revoke(&acme.master, &acme.signing.public()));
    let after_revocation = head(&ch);
    // A duplicate of the logged registration (index 1), not a new entry re-adding the key.
    let replay = ch.submit(&acme.signing_entry());
    assert!(replay.duplicate, "{replay:?}");
    assert_eq!(replay.index, 1);
    assert_eq!(head(&ch), after_revocation);
    let late = acme.release(&acme.signing, "hello", "2.0.0", b"late");
    let got = ch.try_submit(&late).unwrap_err();
    assert_eq!(got.0, 403, "{got:?}");
    assert_eq!(head(&ch), after_revocation);
    assert_alive(&ch);
}

/// Attempts 1.6–1.7: bodies made to be expensive to parse. JSON nested 20 000 deep (inside
/// the 64 KiB limit) is refused 400 `malformed_json` by serde_json's recursion limit, not a
/// stack overflow; a body over the limit, sent without a Content-Length (chunked), is cut off
/// 413; a query string of 60 KB is refused 400 `bad_query` and one of 1 MB is refused by
/// hyper's header limit (431 or a closed connection), and the server answers after each.
#[test]
fn deep_and_huge_bodies_and_queries_are_refused_without_harm() {
    let (ch, _acme, _) = channel_with_release();
    let before = head(&ch);
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let (status, body) = ch.submit_raw(&deep, "application/json");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("malformed_json"));
    let deep_obj = format!(
        "{{\"entry\":{}{}}}",
        "{\"a\":".repeat(10_000),
        "}".repeat(10_000)
    );
    let (status, body) = ch.submit_raw(&deep_obj, "application/json");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));

    // Chunked, over the limit: no Content-Length to refuse up front.
    let mut s = TcpStream::connect(ch.base.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let head_text = "POST /v1/submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    s.write_all(head_text.as_bytes()).unwrap();
    let chunk = vec![b' '; 16 * 1024];
    let mut answered = String::new();
    let mut cut_off = false;
    for _ in 0..64 {
        let frame = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk.clone(),
            b"\r\n".to_vec(),
        ]
        .concat();
        if s.write_all(&frame).is_err() {
            cut_off = true;
            break;
        }
    }
    let _ = s.read_to_string(&mut answered);
    // A 413, or (if the reset reached us before the answer) a connection closed mid-body;
    // never the whole body read.
    assert!(
        answered.starts_with("HTTP/1.1 413") || (answered.is_empty() && cut_off),
        "{answered}"
    );

    let (status, body) = get(
        &ch,
        &format!("/v1/entries?start=0&end=1&{}=1", "x".repeat(60_000)),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad_query"), "{body}");
    let mut s = TcpStream::connect(ch.base.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let huge = format!(
        "GET /v1/entries?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "x".repeat(1 << 20)
    );
    let _ = s.write_all(huge.as_bytes());
    let mut answered = String::new();
    let _ = s.read_to_string(&mut answered);
    assert!(
        answered.is_empty() || answered.starts_with("HTTP/1.1 4"),
        "{}",
        &answered[..answered.len().min(200)]
    );
    assert_eq!(head(&ch), before);
    assert_alive(&ch);
}

/// Attempt 1.8: integer edges in every size, index and range: u64::MAX, u64::MAX + 1,
/// negative, start > end, empty and huge ranges, on proofs, entries, leaves, updates, release
/// lookups, supplier histories and patches. Each is a 4xx with its code (never a 500 or a
/// panic), and the server answers after all of them.
#[test]
fn integer_edges_in_sizes_indices_and_ranges_are_refused() {
    let (ch, _acme, _) = channel_with_release();
    let before = head(&ch);
    let max = u64::MAX;
    let over = "18446744073709551616";
    let nonce = "0".repeat(64);
    for (path, status, code) in [
        (
            format!("/v1/proof/inclusion?index={max}&size={max}"),
            400,
            "bad_range",
        ),
        (
            format!("/v1/proof/inclusion?index=0&size={max}"),
            400,
            "bad_range",
        ),
        (
            "/v1/proof/inclusion?index=3&size=3".to_owned(),
            400,
            "bad_range",
        ),
        (
            "/v1/proof/inclusion?index=-1&size=3".to_owned(),
            400,
            "bad_query",
        ),
        (
            format!("/v1/proof/inclusion?index=0&size={over}"),
            400,
            "bad_query",
        ),
        (
            format!("/v1/proof/consistency?old=1&new={max}"),
            400,
            "bad_range",
        ),
        (
            format!("/v1/proof/consistency?old={max}&new=1"),
            400,
            "bad_range",
        ),
        (
            "/v1/proof/consistency?old=3&new=2".to_owned(),
            400,
            "bad_range",
        ),
        (
            format!("/v1/entries?start={}&end={max}", max - 1),
            400,
            "bad_range",
        ),
        (format!("/v1/entries?start=0&end={max}"), 400, "bad_range"),
        ("/v1/entries?start=2&end=1".to_owned(), 400, "bad_range"),
        ("/v1/entries?start=-5&end=1".to_owned(), 400, "bad_query"),
        (format!("/v1/leaves?start=0&end={max}"), 400, "bad_range"),
        (format!("/v1/leaves?start={max}&end=0"), 400, "bad_range"),
        (
            format!("/v1/updates?since={max}&nonce={nonce}"),
            409,
            "since_beyond_log",
        ),
        (
            format!("/v1/updates?since={over}&nonce={nonce}"),
            400,
            "bad_query",
        ),
        (
            format!("/v1/release?supplier=acme&package=hello&version=1.0.0&size={max}"),
            400,
            "bad_range",
        ),
        (
            "/v1/release?supplier=acme&package=hello&version=1.0.0&size=0".to_owned(),
            400,
            "bad_range",
        ),
        (format!("/v1/suppliers/acme?size={max}"), 400, "bad_range"),
        (
            format!("/v1/suppliers/acme?size=3&start={max}"),
            400,
            "bad_range",
        ),
        (
            "/v1/suppliers/acme?size=3&start=3".to_owned(),
            400,
            "bad_range",
        ),
        ("/v1/suppliers/acme?size=0".to_owned(), 400, "bad_range"),
        ("/v1/suppliers/acme?size=-1".to_owned(), 400, "bad_query"),
        (
            format!("/v1/suppliers/acme?size=3&start={over}"),
            400,
            "bad_query",
        ),
        (
            format!("/v1/suppliers/{}?size=3", "a".repeat(5000)),
            400,
            "bad_name",
        ),
        (
            "/v1/suppliers/nobody?size=3".to_owned(),
            404,
            "unknown_supplier",
        ),
        (
            format!("/v1/patches/{}/{}", "0".repeat(128), "f".repeat(128)),
            404,
            "not_found",
        ),
        (
            format!("/v1/patches/{}/{}", "0".repeat(127), "f".repeat(128)),
            400,
            "bad_request",
        ),
        (
            format!("/v1/patches/{}/{}", "g".repeat(128), "f".repeat(128)),
            400,
            "bad_request",
        ),
        (
            format!("/v1/patches/{}/{}", "0".repeat(60_000), "f".repeat(128)),
            400,
            "bad_request",
        ),
    ] {
        refused(&ch, &path, status, code);
    }
    // The largest legal pages answer, and are bounded by the page limits.
    let (status, body) = get(&ch, "/v1/entries?start=0&end=3");
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&ch, "/v1/suppliers/acme?size=3&start=0");
    assert_eq!(status, 200, "{body}");
    assert_eq!(head(&ch), before);
    assert_alive(&ch);
}

/// Attempt 1.10: 500 connections that send half a request head and then nothing (slowloris),
/// held open: another client's request is still answered (before a generous deadline), and
/// so is a submission; then the server itself closes every one of them once the request-head
/// deadline (2 s here) has passed (F2: before `http-guard`, nothing ever closed them). The
/// per-address cap is off here, since every connection comes from 127.0.0.1; it has its own
/// test below.
#[test]
fn many_idle_connections_do_not_starve_other_clients_and_are_closed() {
    let ch = Channel::start_with(
        "open",
        &format!("{RATE_LIMITS_OFF}\nheader_read_timeout_secs = 2\nmax_connections_per_ip = 0"),
    );
    let acme = Supplier::new("acme");
    acme.register(&ch);
    let addr = ch.base.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for i in 0..500 {
        let mut s = TcpStream::connect(&addr).expect("connect");
        let partial = if i % 2 == 0 {
            "GET /v1/checkpoint HTTP/1.1\r\nHost: x\r\nX-Slow: "
        } else {
            ""
        };
        s.write_all(partial.as_bytes()).unwrap();
        idle.push(s);
    }
    let started = Instant::now();
    assert_alive(&ch);
    let before = head(&ch);
    ch.submit(&acme.release(&acme.signing, "hello", "1.1.0", b"while idle"));
    assert_eq!(head(&ch).0, before.0 + 1);
    assert!(started.elapsed() < DEADLINE, "{:?}", started.elapsed());
    for (i, mut s) in idle.into_iter().enumerate() {
        assert!(
            closed_by_server(&mut s),
            "idle connection {i} is still open after {DEADLINE:?}"
        );
    }
    assert_alive(&ch);
}

/// Reads until the server closes the connection (or `DEADLINE`); true if it did. Whatever the
/// server sent before closing (hyper sends nothing on a head timeout) is ignored.
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Attempt 1.10b (F2): one address holds at most `max_connections_per_ip` connections. With
/// 16 silent connections open, the 17th is answered `503` with `Connection: close` and
/// closed (before `http-guard`: accepted and held like the others); once the 16 are gone,
/// the address is served again.
#[test]
fn one_address_cannot_hold_more_connections_than_its_cap() {
    let ch = Channel::start_with(
        "open",
        &format!("{RATE_LIMITS_OFF}\nheader_read_timeout_secs = 300\nmax_connections_per_ip = 16"),
    );
    let addr = ch.base.trim_start_matches("http://").to_owned();
    let held: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(&addr).expect("connect"))
        .collect();
    // The 16 are accepted before the 17th (the kernel queues connections in order); a
    // request on the last one proves the server has taken all of them.
    let mut last = TcpStream::connect(&addr).expect("connect");
    last.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    last.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut answer = String::new();
    let _ = last.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "the 17th connection from one address was answered: {answer:?}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    // Still refused while the 16 are held (the refusal was not a one-off).
    assert_eq!(get(&ch, "/healthz").0, 503);
    drop(held);
    // The server notices the closes; the address gets its slots back.
    let started = Instant::now();
    while get(&ch, "/healthz").0 != 200 {
        assert!(
            started.elapsed() < DEADLINE,
            "slots not returned after the clients left"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Attempt 1.10c (F2): a request head sent one byte every 100 ms (each byte resets no timer)
/// is cut off by the head deadline (1 s here) long before it is complete; before `http-guard`
/// it was read to the end however long it took.
#[test]
fn a_request_head_dripped_a_byte_at_a_time_is_cut_off() {
    let ch = Channel::start_with(
        "open",
        &format!("{RATE_LIMITS_OFF}\nheader_read_timeout_secs = 1"),
    );
    let addr = ch.base.trim_start_matches("http://").to_owned();
    let mut s = TcpStream::connect(&addr).expect("connect");
    // 2 000 bytes at 100 ms each would take 200 s: the head never completes in the deadline.
    let head: Vec<u8> = [
        &b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "[..],
        &[b'a'; 2000][..],
        b"\r\n\r\n",
    ]
    .concat();
    let mut sent = 0;
    let cut_off = loop {
        if sent == head.len() {
            break false;
        }
        if s.write_all(&head[sent..sent + 1]).is_err() {
            break true;
        }
        sent += 1;
        // A peek with a short timeout notices the server's close without waiting for a
        // write to fail (which takes a second write after the close).
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut b = [0u8; 64];
        match s.peek(&mut b) {
            Ok(0) => break true,
            Ok(_) => break true, // the server answered something and will close: not served
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => {}
        }
    };
    assert!(cut_off, "the whole dripped head was read ({sent} bytes)");
    assert!(
        sent < 600,
        "cut off only after {sent} bytes (~{} s)",
        sent / 10
    );
    assert_alive(&ch);
}

/// Attempt 1.11: upload races on one release. Eight concurrent PUTs of the right bytes all
/// succeed and store one file; eight concurrent PUTs of wrong bytes of the right size, raced
/// against one right PUT, are all refused, and the stored archive is the right one.
#[test]
fn concurrent_uploads_of_one_release_store_only_the_logged_bytes() {
    let ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    let archive = plugin_archive("acme/hello", "1.0.0", "genuine");
    ch.submit(&acme.release(&acme.signing, "hello", "1.0.0", &archive));
    let url = ch.url("/v1/archives/acme/hello/1.0.0");
    let put = |body: Vec<u8>| {
        let url = url.clone();
        std::thread::spawn(move || {
            let r = agent().put(&url).send(&body[..]).expect("put");
            let status = r.status().as_u16();
            (status, r.into_body().read_to_string().unwrap_or_default())
        })
    };
    let mut wrong = archive.clone();
    let last = wrong.len() - 1;
    wrong[last] ^= 0xff;
    let mut threads: Vec<_> = (0..8).map(|_| (false, put(wrong.clone()))).collect();
    threads.push((true, put(archive.clone())));
    threads.extend((0..7).map(|_| (true, put(archive.clone()))));
    for (right, t) in threads {
        let (status, body) = t.join().unwrap();
        if right {
            assert_eq!(status, 200, "{body}");
        } else {
            assert_eq!(status, 400, "{body}");
            assert!(body.contains("archive_digest_mismatch"), "{body}");
        }
    }
    let r = agent().get(&url).call().unwrap();
    assert_eq!(r.status(), 200);
    let mut stored = Vec::new();
    r.into_body()
        .into_reader()
        .read_to_end(&mut stored)
        .unwrap();
    assert!(
        stored == archive,
        "the stored archive is not the logged one"
    );
    // Once stored, a PUT of other bytes is refused as a first upload of them would be (it
    // was answered 200 `already_stored` before the fix), and the stored copy is untouched.
    for bytes in [
        wrong.clone(),
        archive[..archive.len() - 1].to_vec(),
        [&archive[..], b"x"].concat(),
    ] {
        let (status, body) = put(bytes).join().unwrap();
        assert!(status == 400 || status == 413, "{status} {body}");
        assert!(body.contains("archive_"), "{body}");
        assert!(!body.contains("already_stored"), "{body}");
    }
    let (status, body) = put(archive.clone()).join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"already_stored\":true"), "{body}");
    let r = agent().get(&url).call().unwrap();
    let mut again = Vec::new();
    r.into_body().into_reader().read_to_end(&mut again).unwrap();
    assert!(again == archive, "the stored archive changed");
    let dir = ch.config.parent().unwrap().join("archives");
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "temporary files left: {names:?}");
    assert_alive(&ch);
}

/// Finding F4: the read limit was per address only, so many addresses multiplied it without
/// bound. With the per-address limit off and a total of 1 a minute after a burst of 3, the
/// fourth and later reads from anyone are answered 429 `rate_limited`; `/healthz` is not
/// counted and still answers.
#[test]
fn reads_from_all_addresses_share_a_total_budget() {
    let ch = Channel::start_with(
        "open",
        "submissions_per_minute = 0\nreads_per_minute = 0\nreads_per_minute_total = 1\nburst = 3",
    );
    let answers: Vec<(u16, String)> = (0..6).map(|_| get(&ch, "/v1/checkpoint")).collect();
    let limited = answers
        .iter()
        .filter(|(s, b)| *s == 429 && b.contains("\"code\":\"rate_limited\""))
        .count();
    assert!(limited >= 2, "{answers:?}");
    assert!(
        answers.iter().all(|(s, _)| *s == 200 || *s == 429),
        "{answers:?}"
    );
    assert_alive(&ch);
}

/// Finding F3: a client drip-feeding an archive body held an upload permit until
/// `archive_timeout_secs` (600 s), so four of them stalled the supplier's own upload. With one
/// permit, a drip-fed upload of a logged release is now answered 408 `timeout` once it falls
/// below the floor (1 000 bytes/s after 1 s here), and the supplier's upload then succeeds.
#[test]
fn a_drip_fed_upload_is_cut_off_and_frees_its_slot() {
    let ch = Channel::start_with(
        "open",
        &format!(
            "{RATE_LIMITS_OFF}\nmax_concurrent_uploads = 1\nupload_grace_secs = 1\n\
             upload_min_bytes_per_sec = 1000"
        ),
    );
    let acme = Supplier::new("acme");
    acme.register(&ch);
    let archive = plugin_archive("acme/hello", "1.0.0", "genuine");
    ch.submit(&acme.release(&acme.signing, "hello", "1.0.0", &archive));
    let addr = ch.base.trim_start_matches("http://").to_owned();
    let mut s = TcpStream::connect(&addr).expect("connect");
    write!(
        s,
        "PUT /v1/archives/acme/hello/1.0.0 HTTP/1.1\r\nHost: x\r\n\
         Content-Length: {}\r\n\r\n",
        archive.len()
    )
    .unwrap();
    s.write_all(&archive[..10]).unwrap();
    // A byte every 200 ms (5 bytes/s) from another thread, until the server stops reading.
    let mut writer = s.try_clone().unwrap();
    let body = archive.clone();
    let dripper = std::thread::spawn(move || {
        for b in &body[10..] {
            std::thread::sleep(Duration::from_millis(200));
            if writer.write_all(std::slice::from_ref(b)).is_err() {
                break;
            }
        }
    });
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let _ = s
        .read(&mut buf)
        .map(|n| answer.extend_from_slice(&buf[..n]));
    let text = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        text.starts_with("HTTP/1.1 408"),
        "the drip-fed upload was not cut off in {DEADLINE:?}: {text:?}"
    );
    drop(s);
    let _ = dripper.join();
    // The only slot is free again: the supplier's upload is stored.
    let r = agent()
        .put(&ch.url("/v1/archives/acme/hello/1.0.0"))
        .send(&archive[..])
        .expect("put");
    let status = r.status().as_u16();
    let body = r.into_body().read_to_string().unwrap_or_default();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"already_stored\":false"), "{body}");
    assert_alive(&ch);
}

// ---------------------------------------------------------------------------------------------
// 2. The notary / witness endpoint
// ---------------------------------------------------------------------------------------------

/// POSTs `body` to `url` with a content type: (status, body), or (0, the error) when the
/// server closed the connection before answering (it may, mid-way through a body over its
/// limit).
fn post(url: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let r = match agent()
        .post(url)
        .header("Content-Type", content_type)
        .send(body)
    {
        Ok(r) => r,
        Err(e) => return (0, e.to_string()),
    };
    let status = r.status().as_u16();
    (status, r.into_body().read_to_string().unwrap_or_default())
}

/// Rows of `table` in the site's database (0 before the notary created it).
fn rows(site: &Site, table: &str) -> i64 {
    rusqlite::Connection::open(site.root.join("site.db"))
        .unwrap()
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap_or(0)
}

/// Attempts 2.1–2.3: unauthenticated writes to the witness. Checkpoints for an origin the
/// notary does not follow, for its origin signed by another key, garbage and oversized
/// bodies: each is refused with the spec's status and no row is stored (`witness_latest`,
/// `witness_refused`); a notary request for an unknown channel is 404 `unknown_channel`.
#[test]
fn the_witness_stores_nothing_for_unauthenticated_checkpoints() {
    let (ch, _acme, _) = channel_with_release();
    let mut site = Site::init(&ch);
    let url = site.start_notary();
    let mallory = KeyPair::generate();
    let note_for = |origin: &str, key: &KeyPair, size: u64| {
        let origin = keyggdrasil::names::ChannelName::parse(origin).unwrap();
        let text = keyggdrasil::tlog_checkpoint::text(&origin, size, &[7u8; 32]);
        let sig = key.sign_raw(text.as_bytes());
        keyggdrasil::tlog_checkpoint::assemble(&origin, &key.public(), &text, sig.as_bytes())
            .unwrap()
    };
    let (latest, refused_rows) = (
        rows(&site, "witness_latest"),
        rows(&site, "witness_refused"),
    );
    for size in [1u64, 1000, u64::MAX >> 1] {
        for origin in ["other.channel", ch.origin().as_str()] {
            let body = format!("old 0\n\n{}", note_for(origin, &mallory, size));
            let (status, text) = post(
                &format!("{url}/add-checkpoint"),
                "text/plain",
                body.as_bytes(),
            );
            assert!(
                status == 403 || status == 404,
                "{origin} {size}: {status} {text}"
            );
        }
    }
    for body in [
        b"garbage".to_vec(),
        b"old 18446744073709551616\n\n".to_vec(),
        vec![b'a'; 1 << 20],
    ] {
        let (status, text) = post(&format!("{url}/add-checkpoint"), "text/plain", &body);
        // Over the limit, the notary may answer 413 or close the connection mid-body.
        let big = body.len() > 1 << 16;
        assert!(
            status == 400 || status == 413 || (big && status == 0),
            "{status} {text}"
        );
    }
    assert_eq!(rows(&site, "witness_latest"), latest);
    assert_eq!(rows(&site, "witness_refused"), refused_rows);
    let req = serde_json::json!({"channel": "other.channel", "size": 1, "nonce": "0".repeat(64)});
    let (status, text) = post(
        &format!("{url}/v1/notary/root"),
        "application/json",
        req.to_string().as_bytes(),
    );
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("unknown_channel"), "{text}");
}

/// Attempts 2.4–2.5: amplification and poisoning through the notary. Twenty requests for
/// sizes the channel does not have (up to u64::MAX) make a bounded number of channel
/// fetches (the global fetch limit, `max_pages_per_request` pages each), are answered
/// `behind` at the size the channel really has, and afterwards the site's own
/// `continuum update` still installs the genuine release.
#[test]
fn notary_requests_amplify_boundedly_and_cannot_poison_the_site() {
    let (ch, _acme, _) = channel_with_release();
    let front = Front::start(&ch.base, |_| Answer::Pass);
    let mut site = Site::init(&ch);
    site.set_mirror(&front.url);
    site.start_notary();
    let victim = Site::init(&ch);
    victim.add_peer(site.notary_url.as_deref().unwrap(), &site.notary_key);
    let counted = front.requests.lock().unwrap().len();
    let asks = 20u64;
    let started = Instant::now();
    for i in 0..asks {
        let size = if i % 2 == 0 { u64::MAX - i } else { 4 + i };
        let status = site.ask_notary(size);
        assert!(
            matches!(status, keyggdrasil::wire::NotaryStatus::Behind { .. }),
            "{size}: {status:?}"
        );
    }
    let fetched = front.requests.lock().unwrap().len() - counted;
    // At most the fetch burst (5) plus one fetch per second of the run, each at most 20
    // pages of entries, a leaf-hash page and a checkpoint (30 were measured for 20 asks).
    let fetches = 5 + started.elapsed().as_secs() + 1;
    assert!(
        fetched as u64 <= fetches * 22,
        "{fetched} channel requests for {asks} asks"
    );
    eprintln!("{asks} notary requests made {fetched} channel requests");
    // F5: asked for sizes beyond the channel's, the notary no longer pages leaf hashes past the
    // channel's end (each such page was a request the channel refused 400 `bad_range`, and on
    // a long log the refusal threw away every page fetched before it). Its signed checkpoint
    // says where the end is.
    let seen = front.seen.lock().unwrap().clone();
    let beyond: Vec<_> = seen
        .iter()
        .filter(|r| r.contains("/v1/leaves"))
        .filter(|r| {
            let end = r.rsplit("end=").next().unwrap_or("");
            end.parse::<u64>().map_or(true, |end| end > 3)
        })
        .collect();
    assert!(
        beyond.is_empty(),
        "leaf hashes asked beyond the 3-entry log: {beyond:?}"
    );
    let out = victim.run(&["install", "acme/hello"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        system_tests::output_text(&out)
    );
    // Installed through the attacked notary's confirmation: its view is still the channel's.
    assert_eq!(
        victim.installed_version("acme", "hello").as_deref(),
        Some("1.0.0")
    );
}

/// Attempt 2.x (F2, notary side): the notary serves through the same guarded loop, so a
/// connection that never sends a request head is closed by the notary (after its default 10 s
/// head deadline) instead of being held forever, and the notary still answers.
#[test]
fn an_idle_connection_to_the_notary_is_closed_by_it() {
    let (ch, _acme, _) = channel_with_release();
    let mut site = Site::init(&ch);
    site.start_notary();
    let url = site.notary_url.clone().expect("notary url");
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut silent = TcpStream::connect(&addr).expect("connect");
    assert!(
        closed_by_server(&mut silent),
        "the notary kept a silent connection open for {DEADLINE:?}"
    );
    assert!(matches!(
        site.ask_notary(1),
        keyggdrasil::wire::NotaryStatus::Ok { .. } | keyggdrasil::wire::NotaryStatus::Behind { .. }
    ));
}
