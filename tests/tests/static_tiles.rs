//! The channel's static copy of the log served by a real nginx on loopback (issue 15, item 1):
//! every tile, entry bundle, archive and the checkpoint come back over HTTP byte for byte as
//! the channel wrote them, the tiles equal an independent recomputation from the entries, the
//! checkpoint verifies with the channel key, and the cache headers are the ones
//! docs/channel-operator.md gives (immutable for tiles and archives, `no-cache` for the
//! checkpoint).
//!
//! Without nginx the test is skipped with a loud message, unless `CI=true`, where it fails.

use std::io::Read;

use keyggdrasil::merkle::{Blake2b256, Hash, TreeHasher, root_from_leaf_hashes};
use keyggdrasil::tiles::{archive_path, parse_entry_bundle, parse_tile, tiles_of};
use system_tests::nginx::Nginx;
use system_tests::{Channel, Supplier, agent, plugin_archive};

/// GET `url`: status, `Cache-Control`, body.
fn get(url: &str) -> (u16, Option<String>, Vec<u8>) {
    let r = agent().get(url).call().expect("GET");
    let status = r.status().as_u16();
    let cache = r
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    r.into_body()
        .into_reader()
        .read_to_end(&mut body)
        .expect("body");
    (status, cache, body)
}

#[test]
fn nginx_serves_the_published_log_as_the_channel_wrote_it() {
    let ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    let archive = plugin_archive("acme/hello", "1.0.0", "static");
    acme.publish(&ch, "hello", "1.0.0", &archive);
    // Past one full tile, so a full and a partial level-0 tile and a level-1 tile exist.
    for i in 0..300u32 {
        let v = format!("0.{i}.1");
        ch.submit(&acme.release(&acme.signing, "other", &v, v.as_bytes()));
    }
    let size = ch.wait_published(303);
    assert_eq!(size, 303);
    let Some(nginx) = Nginx::serve(&ch.public_dir()) else {
        return;
    };

    // The entries, from the channel's API, to recompute everything independently.
    let entries = ch.all_entries(size);
    let leaves: Vec<Hash> = entries.iter().map(|e| Blake2b256.hash_leaf(e)).collect();

    let tiles = tiles_of(size);
    assert!(tiles.iter().any(|t| t.level == 0 && t.is_full()));
    assert!(tiles.iter().any(|t| t.level == 1));
    for t in &tiles {
        let (status, cache, body) = get(&format!("{}/{}", nginx.url, t.path()));
        assert_eq!(status, 200, "{}: {}", t.path(), nginx.error_log());
        assert_eq!(
            cache.as_deref(),
            Some("public, max-age=31536000, immutable"),
            "{}",
            t.path()
        );
        let hashes = parse_tile(&body, t.width).unwrap();
        let span = 1usize << (8 * u32::from(t.level));
        for (node, got) in t.nodes().zip(&hashes) {
            let lo = node as usize * span;
            assert_eq!(
                *got,
                root_from_leaf_hashes(&Blake2b256, &leaves[lo..lo + span]).unwrap(),
                "{} node {node}",
                t.path()
            );
        }
        if t.level == 0 {
            let (status, _, body) = get(&format!("{}/{}", nginx.url, t.entries_path()));
            assert_eq!(status, 200, "{}", t.entries_path());
            let got = parse_entry_bundle(&body, t.width).unwrap();
            let r = t.nodes();
            for (i, e) in (r.start..r.end).zip(got) {
                assert_eq!(e, &entries[i as usize][..], "entry {i}");
            }
        }
    }

    // The checkpoint: the channel's, for the size of the tiles; never cached.
    let (status, cache, body) = get(&format!("{}/checkpoint", nginx.url));
    assert_eq!((status, cache.as_deref()), (200, Some("no-cache")));
    let cp = keyggdrasil::tlog_checkpoint::open(&body, &ch.key, &ch.origin()).unwrap();
    assert_eq!(cp.size(), size);
    // The channel answers the same note at `GET /checkpoint`, as plain text.
    let r = agent().get(&ch.url("/checkpoint")).call().unwrap();
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(r.into_body().read_to_vec().unwrap(), body);
    assert_eq!(
        *cp.root(),
        root_from_leaf_hashes(&Blake2b256, &leaves).unwrap()
    );

    // The archive, by digest, immutable.
    let digest = keyggdrasil::filesig::archive_digest(&archive[..])
        .unwrap()
        .1;
    let (status, cache, body) = get(&format!("{}/{}", nginx.url, archive_path(&digest)));
    assert_eq!(status, 200);
    assert_eq!(
        cache.as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(body, archive);

    // Nothing else is there: a tile of a size never published is not found.
    let (status, _, _) = get(&format!("{}/tile/0/001.p/48", nginx.url));
    assert_eq!(status, 404);
}

/// A channel whose entry and archive endpoints are off (a front answers 403 to `/v1/entries`,
/// `/v1/leaves`, `/v1/archives/…`, and to any `/v1/updates` answer that carries entries), its
/// static copy served by nginx, and a site with that nginx as its tile mirror.
struct TileWorld {
    ch: Channel,
    acme: Supplier,
    nginx: Nginx,
    front: system_tests::front::Front,
    site: system_tests::Site,
}

fn forbidden() -> system_tests::front::Answer {
    system_tests::front::Answer::Body {
        status: 403,
        content_type: "application/json".into(),
        body: br#"{"status":"error","code":"forbidden","message":"entries come from the tiles"}"#
            .to_vec(),
    }
}

fn tile_world() -> Option<TileWorld> {
    tile_world_with(true)
}

/// [`tile_world`]; with `archives_off` false the channel's archive endpoint stays on.
fn tile_world_with(archives_off: bool) -> Option<TileWorld> {
    let ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    acme.publish_plugin(&ch, "hello", "1.0.0", "first");
    ch.wait_published(3);
    let nginx = Nginx::serve(&ch.public_dir())?;
    let upstream = ch.base.clone();
    let front = system_tests::front::Front::start(&ch.base, move |path| {
        if path.starts_with("/v1/entries")
            || path.starts_with("/v1/leaves")
            || (archives_off && path.starts_with("/v1/archives"))
        {
            return forbidden();
        }
        if path.starts_with("/v1/updates") {
            let (status, content_type, body) = system_tests::front::forward(&upstream, path, None);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let payload: serde_json::Value = v["data"]["payload"]
                .as_str()
                .and_then(|p| serde_json::from_str(p).ok())
                .unwrap_or_default();
            if payload["entries"].as_array().is_some_and(|e| !e.is_empty()) {
                return forbidden();
            }
            return system_tests::front::Answer::Body {
                status,
                content_type,
                body,
            };
        }
        system_tests::front::Answer::Pass
    });
    let site = system_tests::Site::init(&ch);
    site.set_mirror(&front.url);
    site.set_option("site", "allow_no_peers", true);
    let tiles = nginx.url.clone();
    site.edit_config(|cfg| {
        let channel = cfg["channel"].as_array_mut().unwrap()[0]
            .as_table_mut()
            .unwrap();
        channel.insert(
            "tile_mirrors".into(),
            toml::Value::Array(vec![toml::Value::String(tiles)]),
        );
    });
    Some(TileWorld {
        ch,
        acme,
        nginx,
        front,
        site,
    })
}

#[test]
fn a_site_updates_from_nginx_served_tiles_with_the_channel_entry_endpoints_off() {
    let Some(w) = tile_world() else {
        return;
    };
    let out = w.site.run(&["install", "acme/hello"]);
    let text = system_tests::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        w.site.installed_version("acme", "hello").as_deref(),
        Some("1.0.0")
    );
    // A new release: entries and archive from nginx, only the batched signed answer from the
    // channel.
    w.acme.publish_plugin(&w.ch, "hello", "1.1.0", "second");
    w.ch.wait_published(4);
    let out = w.site.run(&["update"]);
    let text = system_tests::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        w.site.installed_version("acme", "hello").as_deref(),
        Some("1.1.0")
    );
    assert_eq!(w.site.accepted_size(), 4);
    let seen = w.front.seen.lock().unwrap().clone();
    assert!(
        !seen
            .iter()
            .any(|r| r.contains("/v1/entries") || r.contains("/v1/archives")),
        "{seen:?}"
    );
    // The channel answered only the two runs' batched freshness answers: each was the
    // nonce-bound statement of a tile read whose mirror was current.
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter().all(|r| r.starts_with("GET /v1/fresh?nonce=")),
        "{seen:?}"
    );
    w.ch.check();
}

/// A site that polls between a commit and its publish (its batched answer is newer than the
/// mirror's checkpoint) reads the checkpoint again and gets the new entry from the mirror,
/// not from the channel's per-site signed pages. The mirror here is nginx behind a front that
/// answers the first checkpoint read of the run with the older file, which is what a site sees
/// in that window; the channel's entry endpoints stay off.
#[test]
fn a_site_that_polls_before_the_publish_waits_for_the_mirror() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let Some(w) = tile_world() else {
        return;
    };
    let out = w.site.run(&["install", "acme/hello"]);
    assert!(out.status.success(), "{}", system_tests::output_text(&out));
    let older = std::fs::read(w.ch.public_dir().join("checkpoint")).unwrap();
    let stale_reads = Arc::new(AtomicUsize::new(0));
    let left = stale_reads.clone();
    let lagging = system_tests::front::Front::start(&w.nginx.url, move |path| {
        if path == "/checkpoint"
            && left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return system_tests::front::Answer::Body {
                status: 200,
                content_type: "application/json".into(),
                body: older.clone(),
            };
        }
        system_tests::front::Answer::Pass
    });
    let url = lagging.url.clone();
    w.site.edit_config(|cfg| {
        cfg["channel"].as_array_mut().unwrap()[0]
            .as_table_mut()
            .unwrap()
            .insert(
                "tile_mirrors".into(),
                toml::Value::Array(vec![toml::Value::String(url)]),
            );
    });
    w.acme.publish_plugin(&w.ch, "hello", "1.1.0", "second");
    w.ch.wait_published(4);
    let before = w.front.seen.lock().unwrap().len();
    stale_reads.store(1, Ordering::SeqCst);
    let out = w.site.run(&["update"]);
    let text = system_tests::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        w.site.installed_version("acme", "hello").as_deref(),
        Some("1.1.0")
    );
    assert_eq!(
        stale_reads.load(Ordering::SeqCst),
        0,
        "the older checkpoint was never read"
    );
    let mirror = lagging.seen.lock().unwrap().clone();
    assert_eq!(
        mirror.iter().filter(|r| *r == "GET /checkpoint").count(),
        2,
        "{mirror:?}"
    );
    // From the channel: only this run's batched answer.
    let seen = w.front.seen.lock().unwrap()[before..].to_vec();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("GET /v1/fresh?nonce="), "{seen:?}");
}

/// The other order: the mirror's checkpoint is newer than the run's batched answer (a commit
/// was published between the two reads). The site reads the tiles to the mirror's size and asks
/// `/v1/fresh` once more for an answer of that size, not `/v1/updates`. A front holds the
/// channel's first answer (of size 4) until the test has published size 5.
#[test]
fn a_site_whose_mirror_is_ahead_of_its_answer_asks_for_one_more() {
    use std::sync::{Arc, Mutex, mpsc};
    let Some(w) = tile_world() else {
        return;
    };
    let out = w.site.run(&["install", "acme/hello"]);
    assert!(out.status.success(), "{}", system_tests::output_text(&out));
    w.acme.publish_plugin(&w.ch, "hello", "1.1.0", "second");
    w.ch.wait_published(4);
    let (held_tx, held_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let hold = Arc::new(Mutex::new(Some((held_tx, go_rx))));
    let upstream = w.front.url.clone();
    let holding = system_tests::front::Front::start(&w.front.url, move |path| {
        if !path.starts_with("/v1/fresh") {
            return system_tests::front::Answer::Pass;
        }
        let (status, content_type, body) = system_tests::front::forward(&upstream, path, None);
        if let Some((held, go)) = hold.lock().unwrap().take() {
            held.send(()).unwrap();
            go.recv().unwrap();
        }
        system_tests::front::Answer::Body {
            status,
            content_type,
            body,
        }
    });
    w.site.set_mirror(&holding.url);
    let before = w.front.seen.lock().unwrap().len();
    let out = std::thread::scope(|scope| {
        let run = scope.spawn(|| w.site.run(&["update"]));
        held_rx.recv().unwrap();
        w.acme.publish_plugin(&w.ch, "hello", "1.2.0", "third");
        w.ch.wait_published(5);
        go_tx.send(()).unwrap();
        run.join().unwrap()
    });
    let text = system_tests::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(w.site.accepted_size(), 5, "{text}");
    assert_eq!(
        w.site.installed_version("acme", "hello").as_deref(),
        Some("1.2.0")
    );
    let seen = w.front.seen.lock().unwrap()[before..].to_vec();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter().all(|r| r.starts_with("GET /v1/fresh?nonce=")),
        "{seen:?}"
    );
}

/// Replaces a file of the static copy for the length of `f`, then puts it back.
fn with_file(w: &TileWorld, path: &str, bytes: Vec<u8>, f: impl FnOnce()) {
    let file = w.ch.public_dir().join(path);
    let saved = std::fs::read(&file).unwrap_or_else(|e| panic!("{path}: {e}"));
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, bytes).unwrap();
    f();
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, saved).unwrap();
}

#[test]
fn bad_static_files_are_refused_and_the_site_is_unchanged() {
    let Some(w) = tile_world() else {
        return;
    };
    let out = w.site.run(&["install", "acme/hello"]);
    assert!(out.status.success(), "{}", system_tests::output_text(&out));
    let stale = std::fs::read(w.ch.public_dir().join("checkpoint")).unwrap();
    let old_bundle = std::fs::read(w.ch.public_dir().join("tile/entries/000.p/3")).unwrap();
    let archive = system_tests::plugin_archive("acme/hello", "1.1.0", "second");
    w.acme.publish(&w.ch, "hello", "1.1.0", &archive);
    w.ch.wait_published(4);
    let bundle_path = "tile/entries/000.p/4";
    let bundle = std::fs::read(w.ch.public_dir().join(bundle_path)).unwrap();
    let digest = keyggdrasil::filesig::archive_digest(&archive[..])
        .unwrap()
        .1;

    // An entry changed (same length): its signature or the signed root no longer holds.
    let mut tampered = bundle.clone();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'a' { b'b' } else { b'a' };
    with_file(&w, bundle_path, tampered, || {
        w.site.assert_update_refused(3, &["channel"]);
    });
    // Cut short.
    with_file(&w, bundle_path, bundle[..bundle.len() - 7].to_vec(), || {
        w.site
            .assert_update_refused(3, &["entry bundle is malformed"]);
    });
    // The bundle of another size (3 entries where the path says 4).
    with_file(&w, bundle_path, old_bundle, || {
        w.site
            .assert_update_refused(3, &["entry bundle is malformed"]);
    });
    // A checkpoint not signed by the channel key: another key's signature under the
    // channel's name, and the channel's own signature line over another size.
    let other = keyggdrasil::keys::KeyPair::generate();
    let forged = keyggdrasil::tlog_checkpoint::sign(&w.ch.origin(), 4, &[9; 32], &other).unwrap();
    with_file(&w, "checkpoint", forged.into_bytes(), || {
        w.site.assert_update_refused(3, &["signature"]);
    });
    let stale_text = String::from_utf8(stale.clone()).unwrap();
    let moved = stale_text.replacen("\n3\n", "\n4\n", 1);
    with_file(&w, "checkpoint", moved.into_bytes(), || {
        w.site.assert_update_refused(3, &["signature"]);
    });
    // Not a note at all (the JSON checkpoint of before).
    with_file(&w, "checkpoint", b"{\"payload\":\"x\"}".to_vec(), || {
        w.site.assert_update_refused(3, &["checkpoint"]);
    });
    // A stale checkpoint (size 3, the site has 3): the tiles have nothing new, so the entry
    // must come from the channel, whose entries are off here: refused, nothing changed.
    with_file(&w, "checkpoint", stale, || {
        w.site.assert_update_refused(3, &["forbidden"]);
    });
    // Another archive under the new release's digest.
    with_file(&w, &archive_path(&digest), vec![0u8; archive.len()], || {
        let before = w.site.snapshot();
        let out = w.site.run(&["update"]);
        assert!(!out.status.success(), "{}", system_tests::output_text(&out));
        assert_eq!(
            w.site.installed_version("acme", "hello").as_deref(),
            Some("1.0.0")
        );
        let _ = before;
    });
    // Everything put back: the update goes through.
    let out = w.site.run(&["update"]);
    assert!(out.status.success(), "{}", system_tests::output_text(&out));
    assert_eq!(
        w.site.installed_version("acme", "hello").as_deref(),
        Some("1.1.0")
    );
    drop(w.nginx);
}

#[test]
fn an_archive_that_fails_its_check_on_the_static_mirror_is_fetched_from_the_channel() {
    let Some(w) = tile_world_with(false) else {
        return;
    };
    let out = w.site.run(&["install", "acme/hello"]);
    assert!(out.status.success(), "{}", system_tests::output_text(&out));
    let archive = system_tests::plugin_archive("acme/hello", "1.1.0", "second");
    w.acme.publish(&w.ch, "hello", "1.1.0", &archive);
    w.ch.wait_published(4);
    let digest = keyggdrasil::filesig::archive_digest(&archive[..])
        .unwrap()
        .1;
    with_file(&w, &archive_path(&digest), vec![7u8; archive.len()], || {
        let out = w.site.run(&["update"]);
        let text = system_tests::output_text(&out);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("trying the next mirror"), "{text}");
    });
    assert_eq!(
        w.site.installed_version("acme", "hello").as_deref(),
        Some("1.1.0")
    );
    let seen = w.front.seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|r| r.starts_with("GET /v1/archives/acme/hello/1.1.0")),
        "{seen:?}"
    );
}

/// An archive stored before the channel had a static copy (here: its link removed while the
/// channel was down) is published at the next start, the same bytes under its digest.
#[test]
fn stored_archives_missing_from_the_static_copy_are_published_at_start() {
    let mut ch = Channel::start();
    let acme = Supplier::new("acme");
    acme.register(&ch);
    let archive = plugin_archive("acme/hello", "1.0.0", "first");
    acme.publish(&ch, "hello", "1.0.0", &archive);
    ch.wait_published(3);
    let digest = keyggdrasil::filesig::archive_digest(&archive[..])
        .unwrap()
        .1;
    let file = ch.public_dir().join(archive_path(&digest));
    assert_eq!(std::fs::read(&file).unwrap(), archive);
    ch.kill();
    std::fs::remove_file(&file).unwrap();
    ch.spawn();
    for _ in 0..2000 {
        if file.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(std::fs::read(&file).unwrap(), archive);
    assert!(ch.check().contains("ok"), "{}", ch.check());
}
