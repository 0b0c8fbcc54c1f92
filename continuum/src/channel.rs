//! Talking to a channel: signed updates, checkpoints and archives, over its mirrors in order.
//!
//! Nothing here decides what to trust: answers come back as [`VerifiedUpdate`]s only after
//! [`keyggdrasil::wire::verify_update`] checked the pinned key, origin, nonce, time and sizes; the
//! root is still to be recomputed by the caller. Nothing the site sends to a channel names its
//! peers.
//!
//! A mirror that cannot be reached, or says it is overloaded (HTTP 429, 502, 503, 504, or the
//! error codes `rate_limited`, `busy`, `timeout`, `shutting_down`, `signer_unavailable`), is
//! skipped for the next one: [`ChannelError::Unreachable`] when none answered. A mirror that
//! answers with anything else that is not a well-formed `ok` envelope (garbage, a body cut
//! short, JSON of another shape, another HTTP status such as 404 or 500, an error code that
//! makes no sense for a well-formed request) stops the attempt with
//! [`ChannelError::Malformed`]: it is the channel's (or a man in the middle's) doing, and must
//! not be papered over by asking the next mirror.

use keyggdrasil::batch::{self, BatchedAnswer};
use keyggdrasil::entry::{Entry, MAX_ENTRY_BYTES};
use keyggdrasil::limits::Limits;
use keyggdrasil::merkle::Hash;
use keyggdrasil::tiles::{self, TileId};
use keyggdrasil::tlog_checkpoint::{self, NoteCheckpoint};
use keyggdrasil::wire::{
    self, Envelope, ErrorCode, LeafHashesResponse, Misbehavior, Nonce, Signed, UpdateRequest,
    VerifiedUpdate, WireError,
};
use thiserror::Error;

use crate::config::ChannelConfig;
use crate::transport::{Http, TransportError};

/// Why talking to the channel failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// No mirror could be reached (each mirror's error is listed).
    #[error("could not reach channel {channel}: {}", .errors.join("; "))]
    Unreachable {
        /// The channel name.
        channel: String,
        /// One message per mirror.
        errors: Vec<String>,
    },
    /// A mirror answered, but the answer is wrong: the channel (or someone in between)
    /// misbehaved. Nothing from it is used.
    #[error("channel {channel} sent an answer that fails verification (from {url}): {source}")]
    Verification {
        /// The channel name.
        channel: String,
        /// The URL that answered.
        url: String,
        /// What failed.
        #[source]
        source: WireError,
    },
    /// A mirror answered, but not with a well-formed answer (see the module docs): the
    /// channel (or someone in between) misbehaved. Nothing from it is used.
    #[error("channel {channel} sent a malformed answer from {url}: {message}")]
    Malformed {
        /// The channel name.
        channel: String,
        /// The URL that answered.
        url: String,
        /// What was wrong (server-provided text is escaped and cut short).
        message: String,
    },
}

impl ChannelError {
    /// True if the channel misbehaved (as opposed to being unreachable).
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            ChannelError::Verification { .. } | ChannelError::Malformed { .. }
        )
    }
}

/// An overloaded or restarting server: an outage, to be retried (and the next mirror asked).
fn is_outage_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Error codes that mean "not now" rather than "no".
fn is_outage_code(code: &ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::RateLimited
            | ErrorCode::Busy
            | ErrorCode::Timeout
            | ErrorCode::ShuttingDown
            | ErrorCode::SignerUnavailable
    )
}

/// Server-provided text for a message: control characters escaped, at most 200 characters.
fn shown(text: &str) -> String {
    text.chars()
        .take(200)
        .flat_map(char::escape_default)
        .collect()
}

/// A client for one configured channel.
pub struct ChannelClient<'a> {
    cfg: &'a ChannelConfig,
    http: &'a Http,
    limits: &'a Limits,
}

impl<'a> ChannelClient<'a> {
    /// A client over the channel's mirrors.
    pub fn new(cfg: &'a ChannelConfig, http: &'a Http, limits: &'a Limits) -> Self {
        Self { cfg, http, limits }
    }

    /// The channel's configuration.
    pub fn config(&self) -> &ChannelConfig {
        self.cfg
    }

    /// Fetches and verifies the entries after `since`, with a fresh nonce, trying mirrors in
    /// order. A mirror that cannot be reached, or answers with an HTTP error, is skipped; a
    /// mirror whose answer fails verification stops the attempt (a bad signature from one
    /// mirror must not be papered over by asking the next).
    pub fn updates(&self, since: u64, now: u64) -> Result<VerifiedUpdate, ChannelError> {
        let request = UpdateRequest {
            since,
            nonce: Nonce::generate(),
        };
        let path = format!("/v1/updates?since={since}&nonce={}", request.nonce.to_hex());
        let (signed, url) = self
            .get_envelope::<Signed>(&path, self.limits.max_update_response_bytes + 4096)
            .map_err(|e| match e {
                // Say what it means: the server's own words name only its error code.
                ChannelError::Verification {
                    channel,
                    url,
                    source: WireError::Remote { code, message },
                } if code == ErrorCode::SinceBeyondLog => ChannelError::Verification {
                    channel,
                    url,
                    source: WireError::Remote {
                        code,
                        message: format!(
                            "{message} (the log is shorter than the {since} entries this site already has from this channel: a rollback)"
                        ),
                    },
                },
                other => other,
            })?;
        wire::verify_update(
            &signed,
            &self.cfg.key,
            &self.cfg.name,
            &request,
            now,
            self.limits,
        )
        .map_err(|source| ChannelError::Verification {
            channel: self.cfg.name.as_str().to_owned(),
            url,
            source,
        })
    }

    /// The batched freshness answer (`GET /v1/fresh`) to a fresh nonce, checked by
    /// [`keyggdrasil::batch::verify_batched_update`]: a [`VerifiedUpdate`] with no entries at
    /// the channel's signed size. `Ok(None)` when the channel has no such endpoint (one older
    /// than batched answers): the caller then asks `/v1/updates`, whose answers are signed per
    /// request and just as binding, so a man in the middle who hides the endpoint gains nothing.
    /// Also returns the URL that answered.
    pub fn fresh(&self, now: u64) -> Result<Option<(VerifiedUpdate, String)>, ChannelError> {
        let nonce = Nonce::generate();
        let path = format!("/v1/fresh?nonce={}", nonce.to_hex());
        let Some((answer, url)) = self.get_envelope_or_missing::<BatchedAnswer>(
            &path,
            self.limits.max_small_response_bytes,
            true,
        )?
        else {
            return Ok(None);
        };
        batch::verify_batched_update(
            &answer,
            &self.cfg.key,
            &self.cfg.name,
            &nonce,
            now,
            self.limits,
        )
        .map_err(|e| ChannelError::Verification {
            channel: self.cfg.name.as_str().to_owned(),
            source: match e {
                batch::BatchError::Wire(source) => source,
                // Another site's path, another index, an earlier batch: not an answer to the
                // nonce this site sent.
                batch::BatchError::NotInBatch(_) => wire::Misbehavior::WrongNonce.into(),
                other => wire::Misbehavior::Sizes(other.to_string()).into(),
            },
            url: url.clone(),
        })
        .map(|up| Some((up, url)))
    }

    /// Fetches the channel's signed checkpoint (not nonce-bound; used by `init` to learn and
    /// check the channel name).
    pub fn checkpoint(&self) -> Result<Signed, ChannelError> {
        self.get_envelope::<Signed>("/v1/checkpoint", self.limits.max_small_response_bytes)
            .map(|(signed, _)| signed)
    }

    /// Fetches the leaf hashes of entries `start..end` (at most
    /// [`wire::MAX_LEAF_HASHES_PER_PAGE`]) from `GET /v1/leaves`. They are not signed: the
    /// caller trusts them only after they hash, with a signed update's leaves, to its root
    /// ([`crate::notary::observe_after_leaf_hashes`]). An answer for another range or of
    /// another length is [`ChannelError::Malformed`].
    pub fn leaf_hashes(&self, start: u64, end: u64) -> Result<Vec<Hash>, ChannelError> {
        let count = end.saturating_sub(start);
        // 64 hex digits, quotes and a comma per hash, plus the envelope.
        let limit = count.saturating_mul(67).saturating_add(4096);
        let path = format!("/v1/leaves?start={start}&end={end}");
        let (resp, url) = self.get_envelope::<LeafHashesResponse>(&path, limit)?;
        if resp.start != start || resp.hashes.len() as u64 != count {
            return Err(ChannelError::Malformed {
                channel: self.cfg.name.as_str().to_owned(),
                url,
                message: format!(
                    "asked for the leaf hashes {start}..{end}, got {} from {}",
                    resp.hashes.len(),
                    resp.start
                ),
            });
        }
        Ok(resp.hashes.into_iter().map(|h| h.0).collect())
    }

    /// One file of the tile mirrors (`[[channel]] tile_mirrors`), from the first that has it:
    /// its bytes and URL. A mirror that cannot be reached, is overloaded or answers 404 (a
    /// mirror that lags) is skipped; `Ok(None)` when none had it. A mirror that answers, but
    /// with a body cut short or too large, is [`ChannelError::Malformed`].
    fn tile_get(&self, path: &str, limit: u64) -> Result<Option<(Vec<u8>, String)>, ChannelError> {
        for mirror in &self.cfg.tile_mirrors {
            let url = format!("{}/{path}", mirror.trim_end_matches('/'));
            match self.http.get(&url, limit) {
                Ok(r) if r.status == 200 => return Ok(Some((r.body, url))),
                Ok(_) => continue,
                Err(TransportError::Malformed { message, .. }) => {
                    return Err(ChannelError::Malformed {
                        channel: self.cfg.name.as_str().to_owned(),
                        url,
                        message,
                    });
                }
                Err(TransportError::TooLarge { limit, .. }) => {
                    return Err(ChannelError::Malformed {
                        channel: self.cfg.name.as_str().to_owned(),
                        url,
                        message: format!("larger than the limit of {limit} bytes"),
                    });
                }
                Err(_) => continue,
            }
        }
        Ok(None)
    }

    /// The tile mirrors' `checkpoint`: a C2SP checkpoint note, which must be signed by the
    /// pinned key under this channel's name and be of this channel (any age: it names the size
    /// whose tiles to read; freshness comes from the channel's nonce-bound answer). `Ok(None)`
    /// when no tile mirror has one.
    pub fn tile_checkpoint(&self) -> Result<Option<NoteCheckpoint>, ChannelError> {
        let Some((body, url)) =
            self.tile_get("checkpoint", self.limits.max_small_response_bytes)?
        else {
            return Ok(None);
        };
        self.open_checkpoint_note(&body, url).map(Some)
    }

    /// The one check of a checkpoint note from any mirror: signed by the pinned key under this
    /// channel's name, three lines of this channel. A bad or missing signature is a
    /// verification failure; anything else is malformed.
    fn open_checkpoint_note(
        &self,
        body: &[u8],
        url: String,
    ) -> Result<NoteCheckpoint, ChannelError> {
        tlog_checkpoint::open(body, &self.cfg.key, &self.cfg.name).map_err(|e| match e {
            tlog_checkpoint::CheckpointError::Note(
                keyggdrasil::note::NoteError::Unverified
                | keyggdrasil::note::NoteError::InvalidSignature { .. },
            ) => ChannelError::Verification {
                channel: self.cfg.name.as_str().to_owned(),
                url,
                source: Misbehavior::BadSignature(self.cfg.key).into(),
            },
            other => ChannelError::Malformed {
                channel: self.cfg.name.as_str().to_owned(),
                url,
                message: format!("not a checkpoint of this channel: {other}"),
            },
        })
    }

    /// The channel's checkpoint note with its cosignatures: from the tile mirrors' `checkpoint`
    /// if they have one, else `GET /checkpoint` of the channel's mirrors. Checked like
    /// [`Self::tile_checkpoint`]. `Ok(None)` when none answers.
    pub fn checkpoint_note(&self) -> Result<Option<NoteCheckpoint>, ChannelError> {
        if let Some(cp) = self.tile_checkpoint()? {
            return Ok(Some(cp));
        }
        for mirror in &self.cfg.mirrors {
            let url = format!("{}/checkpoint", mirror.trim_end_matches('/'));
            let Ok(r) = self.http.get(&url, self.limits.max_small_response_bytes) else {
                continue;
            };
            if r.status != 200 {
                continue;
            }
            return self.open_checkpoint_note(&r.body, url).map(Some);
        }
        Ok(None)
    }

    /// The entries of one level-0 tile from the tile mirrors' entry bundle: exactly
    /// `tile.width` well-formed entries, or [`ChannelError::Malformed`]. `Ok(None)` when no tile
    /// mirror has the bundle. The entries are not yet checked against any root: the caller
    /// does that against a signed one.
    pub fn tile_entries(
        &self,
        tile: &TileId,
    ) -> Result<Option<(Vec<Entry>, String)>, ChannelError> {
        // Each entry is at most MAX_ENTRY_BYTES, plus its two-byte length.
        let limit = u64::from(tile.width) * (MAX_ENTRY_BYTES as u64 + 2);
        let Some((body, url)) = self.tile_get(&tile.entries_path(), limit)? else {
            return Ok(None);
        };
        let malformed = |message: String| ChannelError::Malformed {
            channel: self.cfg.name.as_str().to_owned(),
            url: url.clone(),
            message,
        };
        let raw =
            tiles::parse_entry_bundle(&body, tile.width).map_err(|e| malformed(e.to_string()))?;
        let first = tile.nodes().start;
        let entries = raw
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                Entry::parse(bytes).map_err(|e| {
                    malformed(format!("entry {} does not parse: {e}", first + i as u64))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((entries, url)))
    }

    /// The leaf hashes of entries `start..end` from the tile mirrors' level-0 hash tiles,
    /// where `end` is a multiple of 256 or the size of the mirrors' checkpoint (the sizes whose
    /// tiles exist). `Ok(None)` when a tile is missing or no tile mirror answers; a tile of the
    /// wrong length is [`ChannelError::Malformed`]. Not checked against any root here.
    pub fn leaf_hashes_from_tiles(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Option<Vec<Hash>>, ChannelError> {
        let mut out = Vec::with_capacity(usize::try_from(end.saturating_sub(start)).unwrap_or(0));
        let mut index = start / tiles::TILE_WIDTH;
        while index * tiles::TILE_WIDTH < end {
            let first = index * tiles::TILE_WIDTH;
            let tile = TileId {
                level: 0,
                index,
                width: (end - first).min(tiles::TILE_WIDTH) as u16,
            };
            let Some((body, url)) = self.tile_get(&tile.path(), u64::from(tile.width) * 32)? else {
                return Ok(None);
            };
            let hashes =
                tiles::parse_tile(&body, tile.width).map_err(|e| ChannelError::Malformed {
                    channel: self.cfg.name.as_str().to_owned(),
                    url,
                    message: e.to_string(),
                })?;
            let skip = usize::try_from(start.saturating_sub(first)).unwrap_or(usize::MAX);
            out.extend(hashes.into_iter().skip(skip));
            index += 1;
        }
        Ok(Some(out))
    }

    /// The URLs to download a release's archive from, in order: each tile mirror's
    /// `archive/<digest>`, then each channel mirror's archive endpoint; and, for an update from
    /// an installed archive, each tile mirror's `patch/<base>/<target>` then each channel
    /// mirror's `/v1/patches/<base>/<target>` ([`ArchiveSources::patch_urls`]). Whichever
    /// answers, the bytes (downloaded, or rebuilt from a patch) are checked against the logged
    /// size, digest and signature.
    pub fn archive_urls_with_digest(
        &self,
        supplier: &str,
        package: &str,
        version: &str,
        digest: &[u8; 64],
    ) -> ArchiveSources {
        let mut urls: Vec<String> = self
            .cfg
            .tile_mirrors
            .iter()
            .map(|m| {
                format!(
                    "{}/{}",
                    m.trim_end_matches('/'),
                    tiles::archive_path(digest)
                )
            })
            .collect();
        urls.extend(self.archive_urls(supplier, package, version));
        ArchiveSources {
            archives: urls,
            tile_mirrors: self.cfg.tile_mirrors.clone(),
            mirrors: self.cfg.mirrors.clone(),
            deltas: self.http.deltas(),
        }
    }

    /// The archive URLs of a release, one per mirror, in order.
    pub fn archive_urls(&self, supplier: &str, package: &str, version: &str) -> Vec<String> {
        self.cfg
            .mirrors
            .iter()
            .map(|m| {
                format!(
                    "{}/v1/archives/{supplier}/{package}/{version}",
                    m.trim_end_matches('/')
                )
            })
            .collect()
    }

    /// The first mirror's well-formed `ok` answer, and the URL that gave it (see the module
    /// docs for which failures move on to the next mirror).
    fn get_envelope<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        limit: u64,
    ) -> Result<(T, String), ChannelError> {
        self.get_envelope_or_missing(path, limit, false)?
            .ok_or_else(|| ChannelError::Unreachable {
                channel: self.cfg.name.as_str().to_owned(),
                errors: Vec::new(),
            })
    }

    /// [`Self::get_envelope`]; with `missing_ok`, a channel that answers HTTP 404 `not_found`
    /// (an endpoint it does not have) gives `Ok(None)` instead of an error.
    fn get_envelope_or_missing<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        limit: u64,
        missing_ok: bool,
    ) -> Result<Option<(T, String)>, ChannelError> {
        let channel = self.cfg.name.as_str();
        let malformed = |url: &str, message: String| ChannelError::Malformed {
            channel: channel.to_owned(),
            url: url.to_owned(),
            message,
        };
        let mut errors = Vec::new();
        for mirror in &self.cfg.mirrors {
            let url = format!("{}{path}", mirror.trim_end_matches('/'));
            let resp = match self.http.get(&url, limit) {
                Ok(resp) => resp,
                Err(TransportError::Malformed { message, .. }) => {
                    return Err(malformed(&url, message));
                }
                Err(TransportError::TooLarge { limit, .. }) => {
                    return Err(malformed(
                        &url,
                        format!("the answer is larger than the limit of {limit} bytes"),
                    ));
                }
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            };
            let status = resp.status;
            if is_outage_status(status) {
                errors.push(format!(
                    "{url}: HTTP {status}: the server is overloaded or restarting"
                ));
                continue;
            }
            match Envelope::<T>::open(&resp.body, limit) {
                Ok(v) if (200..300).contains(&status) => return Ok(Some((v, url))),
                Ok(_) => {
                    return Err(malformed(
                        &url,
                        format!("HTTP {status} with an \"ok\" answer"),
                    ));
                }
                Err(WireError::Remote { code, message }) if code == ErrorCode::SinceBeyondLog => {
                    // The channel says it has fewer entries than we already accepted from
                    // it: a rollback (or a different log). Never just "unreachable".
                    return Err(ChannelError::Verification {
                        channel: channel.to_owned(),
                        url,
                        source: WireError::Remote { code, message },
                    });
                }
                Err(WireError::Remote { code, .. })
                    if missing_ok && status == 404 && code == ErrorCode::NotFound =>
                {
                    return Ok(None);
                }
                Err(WireError::Remote { code, message }) if is_outage_code(&code) => {
                    errors.push(format!("{url}: HTTP {status} {code}: {}", shown(&message)));
                }
                Err(WireError::Remote { code, message }) => {
                    let hint = if status == 404 {
                        format!(
                            " (is {mirror} the channel's base URL? see [[channel]] mirrors in continuum.toml)"
                        )
                    } else {
                        String::new()
                    };
                    return Err(malformed(
                        &url,
                        format!("HTTP {status} error {code}: {}{hint}", shown(&message)),
                    ));
                }
                Err(e) => {
                    let start = String::from_utf8_lossy(resp.body.get(..60).unwrap_or(&resp.body))
                        .into_owned();
                    return Err(malformed(
                        &url,
                        format!(
                            "HTTP {status}, {} bytes that are not a channel answer ({e}); they begin with \"{}\"",
                            resp.body.len(),
                            shown(&start)
                        ),
                    ));
                }
            }
        }
        Err(ChannelError::Unreachable {
            channel: channel.to_owned(),
            errors,
        })
    }
}

/// Where a release's bytes can come from: its archive URLs in order, and the mirrors that may
/// have a delta patch to it (only asked when `[transport] deltas` is on). Made by
/// [`ChannelClient::archive_urls_with_digest`].
#[derive(Debug, Clone)]
pub struct ArchiveSources {
    archives: Vec<String>,
    tile_mirrors: Vec<String>,
    mirrors: Vec<String>,
    deltas: bool,
}

impl crate::install::Sources for ArchiveSources {
    fn archive_urls(&self) -> &[String] {
        &self.archives
    }

    /// Each tile mirror's `patch/<base>/<target>`, then each channel mirror's
    /// `/v1/patches/<base>/<target>`; none when deltas are off.
    fn patch_urls(&self, base: &[u8; 64], target: &[u8; 64]) -> Vec<String> {
        if !self.deltas {
            return Vec::new();
        }
        let path = keyggdrasil::delta::static_path(base, target);
        let api = format!("v1/patches/{}/{}", hex::encode(base), hex::encode(target));
        self.tile_mirrors
            .iter()
            .map(|m| format!("{}/{path}", m.trim_end_matches('/')))
            .chain(
                self.mirrors
                    .iter()
                    .map(|m| format!("{}/{api}", m.trim_end_matches('/'))),
            )
            .collect()
    }
}
