//! A hostile HTTP front: a loopback HTTP/1.1 server placed before a real channel (as a mirror,
//! a man in the middle, or a channel operator would be) that answers each request as a rule
//! says: pass it through, answer with given bytes, never stop sending, or drip bytes slowly.
//!
//! With [`evil_log`], the front plays a channel that holds the channel's signing key and serves
//! a log of its own making: the real log plus entries the real server would refuse, correctly
//! signed, with a correct root, consistent for every `since` (sites and notaries asking it see
//! one and the same log). Only the site's own checks stand between such a log and the site.
//!
//! With [`Front::serve`] there is no channel behind it: it is then the archive host or mirror
//! of a test's making (continuum's install tests use it so, without any binary).
//!
//! One thread per connection, one request per connection (`Connection: close`). It does not
//! parse request bodies: sites and notaries only `GET` from a channel; a rule may answer a
//! `POST` itself (it is then not forwarded).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keyggdrasil::batch::{BatchHead, BatchTree, BatchedAnswer};
use keyggdrasil::entry::Entry;
use keyggdrasil::keys::KeyPair;
use keyggdrasil::merkle::{Blake2b256, MemoryStore};
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{Envelope, Nonce, Signed, TreeHash, UpdatePayload};

use crate::agent;

/// What the front does with one request.
pub enum Answer {
    /// Forward to the real channel (with the request's `Range` header) and relay its answer.
    Pass,
    /// Answer with these bytes.
    Body {
        /// HTTP status.
        status: u16,
        /// Content type.
        content_type: String,
        /// The body.
        body: Vec<u8>,
    },
    /// `200 OK` with a body that never ends (the front gives up after 256 MiB or 60 s).
    Endless,
    /// Answer with this status, these headers (`Content-Length` and `Connection: close` are
    /// added) and body.
    Full {
        /// HTTP status.
        status: u16,
        /// Header names and values.
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
    },
    /// `200 OK` announcing `length` bytes, sending `head`, then cutting the connection (after
    /// a pause that lets the head reach the client): a download broken off midway.
    Cut {
        /// Announced body length.
        length: u64,
        /// What is sent before the cut.
        head: Vec<u8>,
    },
    /// `200 OK` announcing `length` bytes, sending `head`, then nothing, until the client
    /// hangs up (or 120 s pass): a server that stalls midway.
    Stall {
        /// Announced body length.
        length: u64,
        /// What is sent before the stall.
        head: Vec<u8>,
    },
    /// Like [`Answer::Endless`], with this content type and these first bytes: an answer
    /// that starts like a real one (say, a JSON envelope) and never ends.
    EndlessAfter {
        /// Content type.
        content_type: String,
        /// The first bytes of the body.
        prefix: Vec<u8>,
    },
    /// `200 OK` announcing `length` bytes, then one byte every `every`, until the client hangs
    /// up (or 120 s pass): a server that is there, but too slow to be of use.
    Drip {
        /// Announced body length.
        length: u64,
        /// Pause between bytes.
        every: Duration,
    },
}

/// One request as the front saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
}

/// The rule: request to answer.
pub type Rule = dyn Fn(&Request) -> Answer + Send + Sync;

/// A running front. Stops accepting when dropped.
pub struct Front {
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    addr: SocketAddr,
    /// Bytes written of the last endless or dripped body before the client hung up.
    pub sent: Arc<AtomicU64>,
    /// Requests seen, as `METHOD PATH`.
    pub seen: Arc<std::sync::Mutex<Vec<String>>>,
    /// Requests seen, with their `Range` header.
    pub requests: Arc<std::sync::Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Front {
    /// Starts a front before the channel at `upstream`, answering as `rule` says (given the
    /// request's path with its query).
    pub fn start(upstream: &str, rule: impl Fn(&str) -> Answer + Send + Sync + 'static) -> Self {
        Self::start_with(upstream, move |r: &Request| rule(&r.path))
    }

    /// Starts a server with nothing behind it, answering as `rule` says (given the whole
    /// request): a mirror or archive host of the test's making. [`Answer::Pass`] has nowhere
    /// to go and is answered `502`. Needs no binary, so any crate's tests can use it.
    pub fn serve(rule: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Self {
        Self::start_with("", rule)
    }

    /// [`Front::start`] with a rule that sees the whole request.
    pub fn start_with(
        upstream: &str,
        rule: impl Fn(&Request) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let rule: Arc<Rule> = Arc::new(rule);
        let sent = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, up, se, sn, rq) = (
            stop.clone(),
            upstream.to_owned(),
            sent.clone(),
            seen.clone(),
            requests.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (rule, up, se, sn, rq) =
                    (rule.clone(), up.clone(), se.clone(), sn.clone(), rq.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &up, &*rule, &se, &sn, &rq);
                });
            }
        });
        Self {
            url: format!("http://{addr}"),
            addr,
            sent,
            seen,
            requests,
            stop,
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn respond(conn: &mut TcpStream, status: u16, ct: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(body)?;
    conn.flush()
}

/// Fetches `path` from the real channel: status, content type, body.
pub fn forward(upstream: &str, path: &str, range: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut req = agent().get(&format!("{upstream}{path}"));
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    let r = req.call().expect("forward to the channel");
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let mut body = Vec::new();
    r.into_body()
        .into_reader()
        .read_to_end(&mut body)
        .expect("body");
    (status, ct, body)
}

fn handle(
    conn: TcpStream,
    upstream: &str,
    rule: &Rule,
    sent: &AtomicU64,
    seen: &std::sync::Mutex<Vec<String>>,
    requests: &std::sync::Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
        if let Some((k, v)) = header.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = Some(v.trim().to_owned());
        }
    }
    let mut conn = conn;
    let mut words = request_line.split_whitespace();
    let method = words.next().unwrap_or("").to_owned();
    let path = words.next().unwrap_or("/").to_owned();
    if let Ok(mut s) = seen.lock() {
        s.push(format!("{method} {path}"));
    }
    let request = Request {
        method: method.clone(),
        path: path.clone(),
        range: range.clone(),
    };
    if let Ok(mut r) = requests.lock() {
        r.push(request.clone());
    }
    let answer = rule(&request);
    // Only GETs are forwarded (sites and notaries only GET from a channel); a rule may still
    // answer a POST itself (a slow notary, say) without reading its body.
    if method != "GET" && matches!(answer, Answer::Pass) {
        return respond(&mut conn, 405, "text/plain", b"GET only");
    }
    match answer {
        Answer::Pass if upstream.is_empty() => {
            respond(&mut conn, 502, "text/plain", b"nothing behind this server")
        }
        Answer::Pass => {
            let (status, ct, body) = forward(upstream, &path, range.as_deref());
            respond(&mut conn, status, &ct, &body)
        }
        Answer::Full {
            status,
            headers,
            body,
        } => {
            write!(conn, "HTTP/1.1 {status} X\r\n")?;
            for (k, v) in &headers {
                write!(conn, "{k}: {v}\r\n")?;
            }
            write!(
                conn,
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            conn.write_all(&body)?;
            conn.flush()
        }
        Answer::Cut { length, head } => {
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
            )?;
            conn.write_all(&head)?;
            conn.flush()?;
            // The pause lets the head reach the client before the connection is cut.
            std::thread::sleep(Duration::from_millis(100));
            conn.shutdown(std::net::Shutdown::Both)
        }
        Answer::Stall { length, head } => {
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
            )?;
            conn.write_all(&head)?;
            conn.flush()?;
            // Wait for the client to hang up (a read of 0 bytes), without sending more.
            conn.set_read_timeout(Some(Duration::from_millis(200)))?;
            let started = Instant::now();
            let mut buf = [0u8; 512];
            while started.elapsed() < Duration::from_secs(120) {
                match conn.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            Ok(())
        }
        Answer::Body {
            status,
            content_type,
            body,
        } => respond(&mut conn, status, &content_type, &body),
        Answer::Endless => endless(&mut conn, "application/octet-stream", b"", sent),
        Answer::EndlessAfter {
            content_type,
            prefix,
        } => endless(&mut conn, &content_type, &prefix, sent),
        Answer::Drip { length, every } => {
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
            )?;
            conn.flush()?;
            let started = Instant::now();
            let mut n = 0u64;
            while n < length && started.elapsed() < Duration::from_secs(120) {
                std::thread::sleep(every);
                if conn.write_all(b" ").and_then(|()| conn.flush()).is_err() {
                    break;
                }
                n += 1;
                sent.store(n, Ordering::SeqCst);
            }
            Ok(())
        }
    }
}

/// Most bytes an endless body gets before the front gives up on its own.
pub const ENDLESS_CAP: u64 = 256 << 20;

/// Writes a `200 OK` body of `prefix` then `A`s until the client hangs up, [`ENDLESS_CAP`]
/// bytes were written or 60 s passed; counts the bytes in `sent`.
fn endless(conn: &mut TcpStream, ct: &str, prefix: &[u8], sent: &AtomicU64) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nConnection: close\r\n\r\n"
    )?;
    conn.write_all(prefix)?;
    let chunk = vec![b'A'; 64 << 10];
    let mut n = 0u64;
    let started = Instant::now();
    while n < ENDLESS_CAP && started.elapsed() < Duration::from_secs(60) {
        if conn.write_all(&chunk).is_err() {
            break;
        }
        n += chunk.len() as u64;
        sent.store(n, Ordering::SeqCst);
    }
    Ok(())
}

/// `bytes` served as a file server honouring `Range: bytes=N-` would: `200` with all of them
/// without a range, `206` with the rest and a `Content-Range` from `N` on, `416` past the end.
/// Other range forms are ignored (served whole), as the clients here never send them.
pub fn serve_range(bytes: &[u8], range: Option<&str>) -> Answer {
    let accept = ("Accept-Ranges".to_owned(), "bytes".to_owned());
    let start = range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    match start {
        None => Answer::Full {
            status: 200,
            headers: vec![accept],
            body: bytes.to_vec(),
        },
        Some(n) if n < bytes.len() => Answer::Full {
            status: 206,
            headers: vec![
                accept,
                (
                    "Content-Range".to_owned(),
                    format!("bytes {n}-{}/{}", bytes.len() - 1, bytes.len()),
                ),
            ],
            body: bytes[n..].to_vec(),
        },
        Some(_) => Answer::Full {
            status: 416,
            headers: vec![accept],
            body: Vec::new(),
        },
    }
}

/// The value of `name` in the query of `path`.
pub fn query<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    path.split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// Answers a `/v1/updates?since=S&nonce=N` request as a channel holding `key` that logged the
/// real channel's entries followed by `extra`: the entries from `S` on, the root over the
/// whole forged log, the request's nonce, the current time, signed with `key`. Everything a
/// site checks on the answer itself passes; only what it checks on the entries can refuse.
/// A `/v1/fresh?nonce=N` request gets the forged log's size and root as a batch of one, signed
/// with `key` under the batch context.
pub fn evil_log(upstream: &str, key: &KeyPair, extra: &[Entry], path: &str) -> Answer {
    evil_log_keeping(upstream, key, usize::MAX, extra, path)
}

/// [`evil_log`] over only the first `keep` entries of the real log, then `extra`: with no
/// `extra`, a channel that hides its newest entries from whoever asks it (a freeze); with
/// `extra`, a split view whose forged branch leaves the real one at `keep`.
pub fn evil_log_keeping(
    upstream: &str,
    key: &KeyPair,
    keep: usize,
    extra: &[Entry],
    path: &str,
) -> Answer {
    let since: u64 = query(path, "since")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let nonce = query(path, "nonce")
        .and_then(|n| Nonce::from_hex(n).ok())
        .unwrap_or_else(Nonce::generate);
    let (status, _, body) = forward(
        upstream,
        &format!("/v1/updates?since=0&nonce={}", Nonce::generate().to_hex()),
        None,
    );
    assert_eq!(status, 200, "the real channel refused: {body:?}");
    let signed: Signed = Envelope::open(&body, 64 << 20).expect("real answer");
    let real: UpdatePayload = serde_json::from_str(&signed.payload).expect("payload");
    assert_eq!(real.size, real.tree_size, "the test log fits one page");
    let mut log = real.entries.clone();
    log.truncate(keep);
    log.extend(
        extra
            .iter()
            .map(|e| String::from_utf8(e.as_bytes().to_vec()).expect("ascii entry")),
    );
    let mut tree = MemoryStore::new();
    for e in &log {
        tree.append(&Blake2b256, e.as_bytes()).expect("append");
    }
    let size = log.len() as u64;
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let root = TreeHash(tree.root(&Blake2b256).expect("root"));
    if path.starts_with("/v1/fresh") {
        // The forged log's head as a batch of one: what a channel holding `key` would sign.
        let batch = BatchTree::new(std::slice::from_ref(&nonce)).expect("batch");
        let head = BatchHead {
            v: real.v,
            origin: real.origin.clone(),
            time,
            size,
            root,
            batch_size: 1,
            batch_root: TreeHash(batch.root()),
        };
        let data = BatchedAnswer {
            head: Signed::sign(key, Context::ChannelBatch, &head),
            index: 0,
            path: Vec::new(),
        };
        return Answer::Body {
            status: 200,
            content_type: "application/json".into(),
            body: serde_json::to_vec(&Envelope::Ok { data }).expect("json"),
        };
    }
    let payload = UpdatePayload {
        nonce,
        since,
        size,
        root,
        tree_size: size,
        entries: log
            .get(usize::try_from(since).unwrap_or(usize::MAX)..)
            .unwrap_or(&[])
            .to_vec(),
        time,
        ..real
    };
    let data = Signed::sign(key, Context::ChannelUpdate, &payload);
    Answer::Body {
        status: 200,
        content_type: "application/json".into(),
        body: serde_json::to_vec(&Envelope::Ok { data }).expect("json"),
    }
}
