//! The blocking HTTP client: rustls, timeouts, response-size limits, optional SOCKS5 proxy,
//! a minimum transfer rate for downloads and an optional deadline for a whole run.
//!
//! `ureq` 3 rather than `reqwest`: it is a small blocking client (no async runtime to embed in a
//! cron job), uses rustls, supports `socks5h://` proxies with DNS resolved by the proxy (so a
//! `.onion` mirror works through Tor), and its body reader enforces a byte limit while reading.
//! Every read from the network goes through [`Http::get`], [`Http::post_json`] or
//! [`Http::download`], each with a hard size limit.
//!
//! # Unreachable or malformed
//!
//! A failure is sorted by how far the exchange got (docs/site-operator.md, "Unreachable or
//! malformed"; decision 46 in docs/decisions.md):
//!
//! - [`TransportError::Request`] (unreachable): no HTTP status line arrived: connection
//!   refused or reset, DNS failure, TLS failure, proxy failure, or a timeout before the
//!   response head; and any timeout, stall or run deadline while the body arrives (a slow
//!   server is an outage, not a lie);
//! - [`TransportError::Malformed`]: the other side answered, but not with usable HTTP: a
//!   status line or headers that do not parse, or a body cut short by the server closing or
//!   resetting the connection before the announced length;
//! - [`TransportError::TooLarge`]: more bytes than allowed (also the other side's doing).
//!
//! What the status and the body mean is for the caller ([`crate::channel`], [`crate::peers`]).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::config::TransportConfig;

/// Default `[transport] min_rate_bytes_per_sec`: a download slower than this over a whole
/// window is abandoned for the next mirror.
pub const DEFAULT_MIN_RATE_BYTES_PER_SEC: u64 = 1024;
/// Default `[transport] min_rate_window_secs`.
pub const DEFAULT_MIN_RATE_WINDOW_SECS: u64 = 30;
/// Default `[transport] run_deadline_secs` (an hourly run must end well before the next).
pub const DEFAULT_RUN_DEADLINE_SECS: u64 = 1800;

/// A transport failure. [`TransportError::is_malformed`] tells "the other side answered with
/// something unusable" (a verification failure of that source) from "could not be reached".
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The other side could not be reached: no status line arrived (refused, reset, DNS, TLS,
    /// proxy, timeout), or the body timed out. Never a statement about what the server sent.
    #[error("request to {url} failed: {message}")]
    Request {
        /// The URL.
        url: String,
        /// What failed, and where it can be fixed.
        message: String,
    },
    /// The other side answered, but the answer is not usable HTTP: unparseable status line or
    /// headers, or a body cut short before its announced length.
    #[error("malformed answer from {url}: {message}")]
    Malformed {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The answer was larger than allowed.
    #[error("answer from {url} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// A download went slower than the configured floor for a whole window.
    #[error(
        "download from {url} stalled: {received} bytes in the last {window_secs} s, below the floor of {min_bytes_per_sec} bytes/s ([transport] min_rate_bytes_per_sec, min_rate_window_secs); trying the next mirror"
    )]
    Stalled {
        /// The URL.
        url: String,
        /// Bytes received in the last window.
        received: u64,
        /// The window, in seconds.
        window_secs: u64,
        /// The floor.
        min_bytes_per_sec: u64,
    },
    /// The run's deadline passed before or during this request.
    #[error(
        "request to {url} stopped: this run reached its deadline of {secs} s ([transport] run_deadline_secs); nothing more is fetched in this run, the next run starts afresh"
    )]
    Deadline {
        /// The URL.
        url: String,
        /// The deadline, in seconds after the run started.
        secs: u64,
    },
    /// Local file I/O failed during a download.
    #[error("could not write the download to {path}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The proxy setting is unusable.
    #[error("invalid proxy {0:?}")]
    Proxy(String),
}

impl TransportError {
    /// True if the other side answered and what it sent is unusable ([`Self::Malformed`],
    /// [`Self::TooLarge`]): a verification failure of that source, not an outage.
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            TransportError::Malformed { .. } | TransportError::TooLarge { .. }
        )
    }
}

/// The minimum transfer rate of downloads: fewer than `bytes_per_sec * window` bytes in any
/// `window` ends the download ([`TransportError::Stalled`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateFloor {
    /// Bytes per second.
    pub bytes_per_sec: u64,
    /// The window over which the rate is measured.
    pub window: Duration,
}

#[derive(Debug, Clone, Copy)]
struct RunDeadline {
    at: Instant,
    secs: u64,
}

/// A response: status and body (bounded).
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// The site's HTTP client.
#[derive(Clone)]
pub struct Http {
    api: ureq::Agent,
    download: ureq::Agent,
    /// The proxy, without credentials, for error messages.
    via: Option<String>,
    /// The download rate floor, if any.
    floor: Option<RateFloor>,
    /// The end of the run, if this client serves one (`update`); never for the notary.
    deadline: Option<RunDeadline>,
    /// Whole-request timeouts of the two agents, to cap at the deadline.
    api_timeout: Duration,
    download_timeout: Duration,
    /// `[transport] deltas`: try delta patches before full archives.
    deltas: bool,
}

impl Http {
    /// A client with the configured timeouts, proxy and download rate floor (no run
    /// deadline: see [`Http::with_run_deadline`]).
    pub fn new(cfg: &TransportConfig) -> Result<Self, TransportError> {
        Self::with_timeouts(
            cfg,
            Duration::from_secs(cfg.timeout_secs.unwrap_or(30)),
            Duration::from_secs(cfg.download_timeout_secs.unwrap_or(600)),
        )
    }

    /// A client with explicit whole-request timeouts (peers use short ones).
    pub fn with_timeouts(
        cfg: &TransportConfig,
        api: Duration,
        download: Duration,
    ) -> Result<Self, TransportError> {
        let proxy = match &cfg.proxy {
            Some(p) => Some(ureq::Proxy::new(p).map_err(|_| TransportError::Proxy(p.clone()))?),
            None => None,
        };
        let connect = Duration::from_secs(cfg.connect_timeout_secs.unwrap_or(10));
        let build = |global: Duration, head: Duration| -> ureq::Agent {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .proxy(proxy.clone())
                .timeout_connect(Some(connect))
                .timeout_global(Some(global))
                .timeout_recv_response(Some(head.min(global)))
                .max_redirects(0)
                .user_agent(concat!("continuum/", env!("CARGO_PKG_VERSION")))
                .build()
                .into()
        };
        let min_rate = cfg
            .min_rate_bytes_per_sec
            .unwrap_or(DEFAULT_MIN_RATE_BYTES_PER_SEC);
        let window = cfg
            .min_rate_window_secs
            .unwrap_or(DEFAULT_MIN_RATE_WINDOW_SECS);
        Ok(Self {
            api: build(api, api),
            // The head of an archive answer is as small as an API answer: waiting the whole
            // download timeout for it would let a silent mirror hold the run.
            download: build(download, api),
            via: cfg.proxy.as_deref().map(without_credentials),
            floor: (min_rate > 0 && window > 0).then(|| RateFloor {
                bytes_per_sec: min_rate,
                window: Duration::from_secs(window),
            }),
            deadline: None,
            api_timeout: api,
            download_timeout: download,
            deltas: cfg.deltas(),
        })
    }

    /// The same client, refusing to start a request after `secs` seconds from now and cutting
    /// any request short at that point ([`TransportError::Deadline`]). For one `update` run;
    /// 0 means no deadline.
    pub fn with_run_deadline(mut self, secs: u64) -> Self {
        self.deadline = (secs > 0).then(|| RunDeadline {
            at: Instant::now() + Duration::from_secs(secs),
            secs,
        });
        self
    }

    /// Whether installs try a delta patch first (`[transport] deltas`, default true).
    pub fn deltas(&self) -> bool {
        self.deltas
    }

    /// The download rate floor in effect, if any.
    pub fn rate_floor(&self) -> Option<RateFloor> {
        self.floor
    }

    /// GET with a body limit.
    pub fn get(&self, url: &str, limit: u64) -> Result<Response, TransportError> {
        self.get_direct(url, limit)
            .map_err(|e| self.after_deadline(url, e))
            .map_err(|e| self.name_proxy(e))
    }

    fn get_direct(&self, url: &str, limit: u64) -> Result<Response, TransportError> {
        let req = self.cap(url, self.api.get(url), self.api_timeout)?;
        let resp = req.call().map_err(|e| req_err(url, e))?;
        read_limited(url, resp, limit)
    }

    /// POST a JSON body, read the answer with a limit.
    pub fn post_json(
        &self,
        url: &str,
        body: &[u8],
        limit: u64,
    ) -> Result<Response, TransportError> {
        self.post_json_direct(url, body, limit)
            .map_err(|e| self.after_deadline(url, e))
            .map_err(|e| self.name_proxy(e))
    }

    fn post_json_direct(
        &self,
        url: &str,
        body: &[u8],
        limit: u64,
    ) -> Result<Response, TransportError> {
        let req = self.cap(url, self.api.post(url), self.api_timeout)?;
        let resp = req
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|e| req_err(url, e))?;
        read_limited(url, resp, limit)
    }

    /// Downloads `url` into `dest`, resuming from the bytes already in `dest` (HTTP range), and
    /// never writing more than `expected` bytes in total. Returns the HTTP status of the last
    /// request and the final size. The caller verifies the content.
    ///
    /// A download slower than the [`RateFloor`] over a whole window ends with
    /// [`TransportError::Stalled`], keeping the bytes received (the next mirror resumes
    /// from them; the caller's digest check decides whether they were good). The body is read
    /// on a helper thread so that a server sending nothing at all is noticed too; a helper
    /// stuck in a read after a stall ends on its own at the download timeout (or the run
    /// deadline), and what it reads then is thrown away.
    pub fn download(
        &self,
        url: &str,
        dest: &Path,
        expected: u64,
    ) -> Result<(u16, u64), TransportError> {
        self.download_direct(url, dest, expected)
            .map_err(|e| self.after_deadline(url, e))
            .map_err(|e| self.name_proxy(e))
    }

    fn download_direct(
        &self,
        url: &str,
        dest: &Path,
        expected: u64,
    ) -> Result<(u16, u64), TransportError> {
        let file_err = |source| TransportError::File {
            path: dest.to_path_buf(),
            source,
        };
        // The bytes kept from an earlier transfer, if `dest` is a regular file. Anything else
        // there (a symbolic link planted at the download's name, say) is removed, never
        // followed: the download is opened with O_NOFOLLOW below too.
        let mut have = match std::fs::symlink_metadata(dest) {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => {
                std::fs::remove_file(dest).map_err(file_err)?;
                0
            }
            Err(_) => 0,
        };
        if have > expected {
            std::fs::remove_file(dest).map_err(file_err)?;
            have = 0;
        }
        if have == expected {
            return Ok((200, have));
        }
        let mut req = self.cap(url, self.download.get(url), self.download_timeout)?;
        if have > 0 {
            req = req.header("Range", &format!("bytes={have}-"));
        }
        let (tx, rx) = mpsc::sync_channel::<Chunk>(4);
        let worker_url = url.to_owned();
        std::thread::Builder::new()
            .name("download".into())
            .spawn(move || read_body(req, &worker_url, have, expected, &tx))
            .map_err(|e| TransportError::Request {
                url: url.to_owned(),
                message: format!("could not start the download thread: {e}"),
            })?;
        // The head: bounded by the client's connect and response timeouts.
        let status = match rx.recv() {
            Ok(Chunk::Head(status)) => status,
            Ok(Chunk::Failed(e)) => return Err(e),
            Ok(_) | Err(_) => {
                return Err(TransportError::Request {
                    url: url.to_owned(),
                    message: "the download thread ended without an answer".into(),
                });
            }
        };
        let (mut file, start) = match status {
            206 if have > 0 => (
                keyggdrasil::os::ownership::no_follow(std::fs::OpenOptions::new().append(true))
                    .open(dest)
                    .map_err(file_err)?,
                have,
            ),
            200 => (
                keyggdrasil::os::ownership::no_follow(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600),
                )
                .open(dest)
                .map_err(file_err)?,
                0,
            ),
            _ => return Ok((status, have)),
        };
        let remaining = expected - start;
        let mut written = 0u64;
        let mut window_start = Instant::now();
        let mut window_bytes = 0u64;
        loop {
            let now = Instant::now();
            let mut wake = self.deadline.map(|d| d.at);
            if let Some(f) = self.floor {
                let end = window_start + f.window;
                wake = Some(wake.map_or(end, |w| w.min(end)));
            }
            let next = match wake {
                Some(at) => rx.recv_timeout(at.saturating_duration_since(now)),
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            };
            match next {
                Ok(Chunk::Data(bytes)) => {
                    written += bytes.len() as u64;
                    window_bytes += bytes.len() as u64;
                    if written > remaining {
                        drop(file);
                        let _ = std::fs::remove_file(dest);
                        return Err(TransportError::TooLarge {
                            url: url.to_owned(),
                            limit: expected,
                        });
                    }
                    file.write_all(&bytes).map_err(file_err)?;
                }
                Ok(Chunk::End) => break,
                Ok(Chunk::Failed(e)) => {
                    let _ = file.sync_all();
                    return Err(match e {
                        TransportError::Request { url, message } => TransportError::Request {
                            url,
                            message: format!(
                                "download interrupted after {} bytes: {message}",
                                start + written
                            ),
                        },
                        other => other,
                    });
                }
                Ok(Chunk::Head(_)) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = file.sync_all();
                    return Err(TransportError::Request {
                        url: url.to_owned(),
                        message: format!(
                            "download interrupted after {} bytes: the download thread ended",
                            start + written
                        ),
                    });
                }
            }
            let now = Instant::now();
            if let Some(d) = self.deadline
                && now >= d.at
            {
                let _ = file.sync_all();
                return Err(TransportError::Deadline {
                    url: url.to_owned(),
                    secs: d.secs,
                });
            }
            if let Some(f) = self.floor
                && now >= window_start + f.window
            {
                let needed = f.bytes_per_sec.saturating_mul(f.window.as_secs());
                if window_bytes < needed {
                    let _ = file.sync_all();
                    return Err(TransportError::Stalled {
                        url: url.to_owned(),
                        received: window_bytes,
                        window_secs: f.window.as_secs(),
                        min_bytes_per_sec: f.bytes_per_sec,
                    });
                }
                window_start = now;
                window_bytes = 0;
            }
        }
        file.sync_all().map_err(file_err)?;
        Ok((status, start + written))
    }

    /// Refuses to start after the run's deadline, and caps the request's whole time at what is
    /// left of the run.
    fn cap<B>(
        &self,
        url: &str,
        req: ureq::RequestBuilder<B>,
        base: Duration,
    ) -> Result<ureq::RequestBuilder<B>, TransportError> {
        let Some(d) = self.deadline else {
            return Ok(req);
        };
        let left = d.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TransportError::Deadline {
                url: url.to_owned(),
                secs: d.secs,
            });
        }
        Ok(req.config().timeout_global(Some(base.min(left))).build())
    }

    /// A timeout that the run's deadline caused is told as the deadline.
    fn after_deadline(&self, url: &str, e: TransportError) -> TransportError {
        match (&e, self.deadline) {
            (TransportError::Request { .. }, Some(d)) if Instant::now() >= d.at => {
                TransportError::Deadline {
                    url: url.to_owned(),
                    secs: d.secs,
                }
            }
            _ => e,
        }
    }
}

/// What the download thread hands over.
enum Chunk {
    /// The status line arrived.
    Head(u16),
    /// Body bytes.
    Data(Vec<u8>),
    /// The body ended.
    End,
    /// The request or the body failed.
    Failed(TransportError),
}

/// The download thread: sends the status, then the body in chunks of at most 64 KiB (at most
/// one byte past what may still come, so an overlong body is noticed), then `End`. Returns
/// as soon as the receiver has gone.
fn read_body(
    req: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    url: &str,
    have: u64,
    expected: u64,
    tx: &mpsc::SyncSender<Chunk>,
) {
    let resp = match req.call() {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Chunk::Failed(req_err(url, e)));
            return;
        }
    };
    let status = resp.status().as_u16();
    if tx.send(Chunk::Head(status)).is_err() {
        return;
    }
    let remaining = match status {
        206 if have > 0 => expected - have,
        200 => expected,
        _ => return,
    };
    let mut reader = resp.into_body().into_reader().take(remaining + 1);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let msg = match reader.read(&mut buf) {
            Ok(0) => Chunk::End,
            Ok(n) => Chunk::Data(buf.get(..n).unwrap_or(&[]).to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => Chunk::Failed(body_err(url, &e)),
        };
        let last = !matches!(msg, Chunk::Data(_));
        if tx.send(msg).is_err() || last {
            return;
        }
    }
}

impl Http {
    /// A connection failure through a proxy names the proxy: "connection refused" alone would
    /// send the operator to look at the channel when the proxy (Tor) is what is down.
    fn name_proxy(&self, e: TransportError) -> TransportError {
        match (e, &self.via) {
            (TransportError::Request { url, message }, Some(via)) => TransportError::Request {
                url,
                message: format!("{message} (through proxy {via})"),
            },
            (other, _) => other,
        }
    }
}

/// `scheme://user:password@host:port` → `scheme://host:port`.
fn without_credentials(proxy: &str) -> String {
    match (proxy.split_once("://"), proxy.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
        _ => proxy.to_owned(),
    }
}

/// An error of a request before its response head arrived: unreachable, unless what arrived
/// instead of a head does not parse as HTTP (then malformed).
fn req_err(url: &str, e: ureq::Error) -> TransportError {
    let unreachable = |message: String| TransportError::Request {
        url: url.to_owned(),
        message,
    };
    match &e {
        ureq::Error::Timeout(which) => unreachable(timed_out(which)),
        ureq::Error::Io(io) => match io_timeout(io) {
            Some(t) => unreachable(t),
            // Before any HTTP byte of an https:// exchange, corrupt data is the TLS layer's
            // (rustls reports through an I/O error): say so, and what to check.
            None if io.kind() == std::io::ErrorKind::InvalidData && url.starts_with("https://") => {
                unreachable(tls_failed(io))
            }
            None => unreachable(io.to_string()),
        },
        ureq::Error::Protocol(p) => TransportError::Malformed {
            url: url.to_owned(),
            message: format!("the server did not answer with HTTP: {p}"),
        },
        ureq::Error::LargeResponseHeader(..) => TransportError::Malformed {
            url: url.to_owned(),
            message: e.to_string(),
        },
        ureq::Error::HostNotFound => unreachable(
            "host not found (DNS): check the host name in the URL, and the proxy if one is set"
                .into(),
        ),
        ureq::Error::BadUri(why) => unreachable(format!(
            "not a usable URL ({why}): fix it in continuum.toml (http://host:port or https://host)"
        )),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => {
            unreachable(tls_failed(&e))
        }
        other => unreachable(other.to_string()),
    }
}

fn tls_failed(e: &dyn std::fmt::Display) -> String {
    format!(
        "TLS failed ({e}): check that the URL's scheme is right (https:// for a TLS server, http:// otherwise) and that the server's certificate is valid for that host name"
    )
}

/// An error while reading a body whose status line and headers arrived: a timeout is still an
/// outage (slow, not lying); the server closing or resetting the connection before the
/// announced end, or a body framing error, is a malformed answer.
fn body_err(url: &str, e: &std::io::Error) -> TransportError {
    if let Some(t) = io_timeout(e) {
        return TransportError::Request {
            url: url.to_owned(),
            message: t,
        };
    }
    let why = match e.kind() {
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::BrokenPipe => "the answer was cut short",
        _ => "the answer's body could not be read",
    };
    TransportError::Malformed {
        url: url.to_owned(),
        message: format!("{why} ({e})"),
    }
}

/// Says "timed out" in plain words: ureq's own "timeout: global" does not tell an operator
/// that the server was too slow (slow retrieval) rather than refusing.
fn timed_out(which: &dyn std::fmt::Display) -> String {
    format!(
        "timed out ({which} timeout): the server did not answer in time (too slow or not answering); see the timeouts in continuum.toml ([transport], and [site] peer_timeout_secs for peers)"
    )
}

/// The words for an I/O error that is a timeout (ureq wraps its own timeouts in one), or
/// `None`.
fn io_timeout(e: &std::io::Error) -> Option<String> {
    if let Some(ureq::Error::Timeout(which)) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
    {
        return Some(timed_out(which));
    }
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
    .then(|| timed_out(&"read"))
}

fn read_limited(
    url: &str,
    resp: ureq::http::Response<ureq::Body>,
    limit: u64,
) -> Result<Response, TransportError> {
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let bytes = body
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => TransportError::TooLarge {
                url: url.to_owned(),
                limit,
            },
            ureq::Error::Timeout(which) => TransportError::Request {
                url: url.to_owned(),
                message: timed_out(&which),
            },
            ureq::Error::Io(io) => body_err(url, &io),
            other => TransportError::Malformed {
                url: url.to_owned(),
                message: format!("the answer's body could not be read ({other})"),
            },
        })?;
    Ok(Response {
        status,
        body: bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::{Http, TransportError, without_credentials};
    use crate::config::TransportConfig;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A one-connection server on loopback that reads the request and then does `answer`.
    fn once(answer: fn(&mut std::net::TcpStream)) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x", l.local_addr().unwrap());
        std::thread::spawn(move || {
            if let Ok((mut c, _)) = l.accept() {
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                answer(&mut c);
            }
        });
        url
    }

    fn get(url: &str) -> Result<super::Response, TransportError> {
        Http::new(&TransportConfig::default())
            .unwrap()
            .get(url, 1 << 20)
    }

    /// The table of docs/site-operator.md, "Unreachable or malformed", at the transport.
    #[test]
    fn unreachable_or_malformed() {
        // Closed before any byte of an answer: unreachable.
        let url = once(|_| {});
        assert!(matches!(get(&url), Err(TransportError::Request { .. })));
        // Refused: unreachable.
        assert!(matches!(
            get("http://127.0.0.1:1/x"),
            Err(TransportError::Request { .. })
        ));
        // Bytes that are not HTTP: malformed.
        let url = once(|c| {
            let _ = c.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
        });
        let e = get(&url).unwrap_err();
        assert!(e.is_malformed(), "{e}");
        // A status line, then the body cut short: malformed.
        let url = once(|c| {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"status\"");
        });
        let e = get(&url).unwrap_err();
        assert!(e.is_malformed(), "{e}");
        assert!(e.to_string().contains("cut short"), "{e}");
        // A bad status is the caller's to judge: the transport hands it over.
        let url = once(|c| {
            let _ = c.write_all(b"HTTP/1.1 500 X\r\nContent-Length: 2\r\n\r\nno");
        });
        assert_eq!(get(&url).unwrap().status, 500);
        // https:// to a server that speaks plain HTTP: unreachable, naming TLS and the fix.
        let url = once(|c| {
            let _ = c.write_all(b"HTTP/1.1 400 X\r\nContent-Length: 0\r\n\r\n");
        })
        .replace("http://", "https://");
        match get(&url) {
            Err(TransportError::Request { url: u, message }) => {
                assert_eq!(u, url);
                assert!(message.contains("TLS"), "{message}");
                assert!(message.contains("scheme"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn proxy_credentials_are_not_shown() {
        assert_eq!(
            without_credentials("socks5h://user:secret@127.0.0.1:9050"),
            "socks5h://127.0.0.1:9050"
        );
        assert_eq!(
            without_credentials("socks5h://127.0.0.1:9050"),
            "socks5h://127.0.0.1:9050"
        );
    }
}
