//! `kill -9` while clients submit: every acknowledged entry survives, and the stored tree equals a
//! recomputation.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::harness::{Channel, Supplier};

/// (log index, entry bytes) of every acknowledged submission.
type Acked = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

#[test]
fn acknowledged_entries_survive_kill_9() {
    let mut ch = Channel::start_with("open", "submissions_per_minute = 0");
    let acked: Acked = Arc::default();
    for round in 0..3 {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut threads = Vec::new();
        for t in 0..4 {
            let acked = acked.clone();
            let stop = stop.clone();
            let base = ch.base.clone();
            threads.push(std::thread::spawn(move || {
                let agent = super::harness::agent();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let s = Supplier::new(&format!("r{round}t{t}n{i}"));
                    let e = s.master_entry();
                    let body = serde_json::json!({ "entry": String::from_utf8(e.as_bytes().to_vec()).unwrap() }).to_string();
                    match agent
                        .post(&format!("{base}/v1/submit"))
                        .header("Content-Type", "application/json")
                        .send(&body)
                    {
                        Ok(r) if r.status() == 200 => {
                            let v: serde_json::Value = serde_json::from_reader(r.into_body().into_reader()).unwrap();
                            let idx = v["data"]["index"].as_u64().unwrap();
                            acked.lock().unwrap().push((idx, e.as_bytes().to_vec()));
                        }
                        _ => {} // killed mid-request: not acknowledged, may or may not be there
                    }
                    i += 1;
                }
            }));
        }
        // Let them run, then kill the server without warning.
        std::thread::sleep(std::time::Duration::from_millis(700 + 300 * round));
        ch.kill();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        // Every acknowledged entry is in the database at its index.
        let db = Connection::open(ch.db()).unwrap();
        for (idx, bytes) in acked.lock().unwrap().iter() {
            let stored: Vec<u8> = db
                .query_row(
                    "SELECT bytes FROM entries WHERE idx = ?1",
                    [*idx as i64],
                    |r| r.get(0),
                )
                .unwrap_or_else(|e| panic!("acknowledged entry {idx} lost: {e}"));
            assert_eq!(&stored, bytes, "entry {idx} differs");
        }
        drop(db);
        // The tree recomputes equal, and the server comes back.
        assert!(ch.check().starts_with("ok: "));
        ch.spawn();
    }
    assert!(
        acked.lock().unwrap().len() > 10,
        "too few submissions got through to test anything"
    );
}
