//! The blocking HTTP client: rustls, timeouts, response-size limits, optional SOCKS5 proxy.
//!
//! `ureq` 3 rather than `reqwest`: it is a small blocking client (no async runtime to embed in a
//! cron job), uses rustls, supports `socks5h://` proxies with DNS resolved by the proxy (so a
//! `.onion` mirror works through Tor), and its body reader enforces a byte limit while reading.
//! Every read from the network goes through [`Http::get`], [`Http::post_json`] or
//! [`Http::download`], each with a hard size limit.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use thiserror::Error;

use crate::config::TransportConfig;

/// A transport failure: the other side could not be reached or answered nonsense sizes.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Connecting, sending or receiving failed (including timeouts).
    #[error("request to {url} failed: {message}")]
    Request {
        /// The URL.
        url: String,
        /// What failed.
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
}

impl Http {
    /// A client with the configured timeouts and proxy.
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
        let build = |global: Duration| -> ureq::Agent {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .proxy(proxy.clone())
                .timeout_connect(Some(connect))
                .timeout_global(Some(global))
                .max_redirects(0)
                .user_agent(concat!("continuum/", env!("CARGO_PKG_VERSION")))
                .build()
                .into()
        };
        Ok(Self {
            api: build(api),
            download: build(download),
            via: cfg.proxy.as_deref().map(without_credentials),
        })
    }

    /// GET with a body limit.
    pub fn get(&self, url: &str, limit: u64) -> Result<Response, TransportError> {
        self.get_direct(url, limit).map_err(|e| self.name_proxy(e))
    }

    fn get_direct(&self, url: &str, limit: u64) -> Result<Response, TransportError> {
        let resp = self.api.get(url).call().map_err(|e| req_err(url, e))?;
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
            .map_err(|e| self.name_proxy(e))
    }

    fn post_json_direct(
        &self,
        url: &str,
        body: &[u8],
        limit: u64,
    ) -> Result<Response, TransportError> {
        let resp = self
            .api
            .post(url)
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|e| req_err(url, e))?;
        read_limited(url, resp, limit)
    }

    /// Downloads `url` into `dest`, resuming from the bytes already in `dest` (HTTP range), and
    /// never writing more than `expected` bytes in total. Returns the HTTP status of the last
    /// request and the final size. The caller verifies the content.
    pub fn download(
        &self,
        url: &str,
        dest: &Path,
        expected: u64,
    ) -> Result<(u16, u64), TransportError> {
        self.download_direct(url, dest, expected)
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
        let have = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
        if have > expected {
            std::fs::remove_file(dest).map_err(file_err)?;
            return self.download_direct(url, dest, expected);
        }
        if have == expected {
            return Ok((200, have));
        }
        let mut req = self.download.get(url);
        if have > 0 {
            req = req.header("Range", &format!("bytes={have}-"));
        }
        let resp = req.call().map_err(|e| req_err(url, e))?;
        let status = resp.status().as_u16();
        let (mut file, start) = match status {
            206 if have > 0 => (
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(dest)
                    .map_err(file_err)?,
                have,
            ),
            200 => (std::fs::File::create(dest).map_err(file_err)?, 0),
            _ => return Ok((status, have)),
        };
        let remaining = expected - start;
        let mut reader = resp.into_body().into_reader().take(remaining + 1);
        let mut buf = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = file.sync_all();
                    return Err(TransportError::Request {
                        url: url.to_owned(),
                        message: format!(
                            "download interrupted after {} bytes: {}",
                            start + written,
                            describe_io(&e)
                        ),
                    });
                }
            };
            written += n as u64;
            if written > remaining {
                drop(file);
                let _ = std::fs::remove_file(dest);
                return Err(TransportError::TooLarge {
                    url: url.to_owned(),
                    limit: expected,
                });
            }
            file.write_all(buf.get(..n).unwrap_or(&[]))
                .map_err(file_err)?;
        }
        file.sync_all().map_err(file_err)?;
        Ok((status, start + written))
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

fn req_err(url: &str, e: ureq::Error) -> TransportError {
    let message = match &e {
        ureq::Error::Timeout(which) => timed_out(which),
        ureq::Error::Io(io) => describe_io(io),
        other => other.to_string(),
    };
    TransportError::Request {
        url: url.to_owned(),
        message,
    }
}

/// Says "timed out" in plain words: ureq's own "timeout: global" does not tell an operator
/// that the server was too slow (slow retrieval) rather than refusing.
fn timed_out(which: &dyn std::fmt::Display) -> String {
    format!(
        "timed out ({which} timeout): the server did not answer in time (too slow or not answering); see the timeouts in continuum.toml ([transport], and [site] peer_timeout_secs for peers)"
    )
}

/// An I/O error from reading a response body; ureq wraps its own timeouts in one.
fn describe_io(e: &std::io::Error) -> String {
    if let Some(ureq::Error::Timeout(which)) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
    {
        return timed_out(which);
    }
    if matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    ) {
        return timed_out(&"read");
    }
    e.to_string()
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
            other => req_err(url, other),
        })?;
    Ok(Response {
        status,
        body: bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::without_credentials;

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
