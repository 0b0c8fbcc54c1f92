//! The notary HTTP endpoint: `POST /v1/notary/root`.
//!
//! Request: a JSON [`NotaryRequest`] (`Content-Type: application/json`, at most
//! [`NotaryOptions::max_body_bytes`]). Answer: `{"status":"ok","data":<Signed>}` whose payload
//! is a [`NotaryPayload`] signed with the site's notary key under the `notary-answer` context,
//! or an error envelope (`unknown_channel` 404, `bad_request` 400, `unsupported_media_type`
//! 415, `too_large` 413, `rate_limited` 429, `busy`/`timeout` 503, `internal` 500).
//!
//! The status in a signed answer is, in this order:
//! 1. `fork_detected` with the stored evidence, if a fork is recorded for the channel;
//! 2. `ok` with the observed root, if the size asked is observed (size 0: the empty root);
//! 3. otherwise the notary fetches from the channel on demand, with its own nonce (at most
//!    [`NotaryOptions::max_pages_per_request`] pages, one fetch per channel at a time, and a
//!    global rate limit on fetches), observes what it got, and answers 1 or 2. More than
//!    [`NotaryOptions::leaf_hashes_beyond`] entries behind, it first fetches leaf hashes instead of entries (level-0 tiles from the channel's tile mirrors when it has some, else `GET /v1/leaves`; at most
//!    [`NotaryOptions::max_leaf_hashes_per_request`]) up to just below the size asked, then
//!    one signed update from there, and stores the hashes only if they lead to that update's
//!    signed root ([`super::observe_after_leaf_hashes`]); if they do not, it falls back to
//!    entries, which also catch a rewritten history as fork evidence;
//! 4. `behind` with the observed size, when the channel could not be reached, has fewer
//!    entries, or the fetch budget is spent.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use keyggdrasil::kdf::SiteSecret;
use keyggdrasil::keys::{KeyError, KeyPair};
use keyggdrasil::limits::Limits;
use keyggdrasil::merkle::Blake2b256;
use keyggdrasil::merkle::TreeHasher;
use keyggdrasil::names::ChannelName;
use keyggdrasil::os::secretfile::{SecretFileError, read_secret_file};
use keyggdrasil::protocol::Context;
use keyggdrasil::tiles::TILE_WIDTH;
use keyggdrasil::wire::{
    Envelope, ErrorCode, MAX_LEAF_HASHES_PER_PAGE, NotaryPayload, NotaryRequest, NotaryStatus,
    Signed, TreeHash, WIRE_VERSION, verify_checkpoint,
};
use rusqlite::Connection;
use thiserror::Error;
use tokio::net::TcpListener;
use zeroize::Zeroizing;

use super::observed::{ObserveError, fork_record, observe, observed_root_at, observed_size};
use crate::channel::ChannelClient;
use crate::config::{ChannelConfig, Config, SitePaths};
use crate::db::{self, DbError};
use crate::transport::{Http, TransportError};

/// The notary route.
pub const NOTARY_PATH: &str = "/v1/notary/root";

/// The C2SP `tlog-witness` endpoint (submission prefix: the notary's base URL).
pub const WITNESS_PATH: &str = "/add-checkpoint";

/// Knobs of the notary endpoint; [`Default`] is the recommended setting.
#[derive(Debug, Clone)]
pub struct NotaryOptions {
    /// Largest request body (default 4 KiB).
    pub max_body_bytes: usize,
    /// Requests per minute per client IP (default 120; 0 = unlimited).
    pub requests_per_minute_per_ip: u32,
    /// Burst of the per-IP limit (default 30).
    pub burst_per_ip: u32,
    /// On-demand channel fetches per second, all clients together (default 1).
    pub fetches_per_second: u32,
    /// Burst of the fetch limit (default 5).
    pub fetch_burst: u32,
    /// How long a request waits for a fetch permit before answering `behind` (default 2 s).
    pub fetch_wait: Duration,
    /// Most update pages fetched for one request (default 20).
    pub max_pages_per_request: usize,
    /// Most leaf hashes fetched for one request when the notary is more than one page behind
    /// (default 1,048,576: 256 pages of `/v1/leaves`, 32 MiB in memory at most). Further
    /// behind, the notary extends its tree this far, answers `behind`, and goes on with the
    /// next request.
    pub max_leaf_hashes_per_request: u64,
    /// How far behind (in entries) the notary must be to catch up by leaf hashes rather than
    /// entries (default 500, one page of entries).
    pub leaf_hashes_beyond: u64,
    /// Whole-request timeout of one channel request (default 10 s).
    pub fetch_timeout: Duration,
    /// Whole-request timeout of a notary request (default 25 s).
    pub request_timeout: Duration,
    /// Requests handled at once; more are answered `busy` (default 64).
    pub max_concurrent_requests: usize,
    /// Request-head deadline and connection caps ([`http_guard::Limits`]: 10 s, 512 open, 64
    /// per address).
    pub connections: http_guard::Limits,
}

impl Default for NotaryOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 4096,
            requests_per_minute_per_ip: 120,
            burst_per_ip: 30,
            fetches_per_second: 1,
            fetch_burst: 5,
            fetch_wait: Duration::from_secs(2),
            max_pages_per_request: 20,
            max_leaf_hashes_per_request: 1 << 20,
            leaf_hashes_beyond: 500,
            fetch_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(25),
            max_concurrent_requests: 64,
            connections: http_guard::Limits::default(),
        }
    }
}

/// Why the notary could not start or stopped.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NotaryError {
    /// The site secret could not be read (missing, or readable by others).
    #[error("could not read the site secret")]
    Secret(#[from] SecretFileError),
    /// The site secret has the wrong length.
    #[error("the site secret {path} has {len} bytes, expected 32")]
    SecretLength {
        /// The file.
        path: std::path::PathBuf,
        /// Its length.
        len: usize,
    },
    /// The notary key could not be derived.
    #[error("could not derive the notary key")]
    Key(#[from] KeyError),
    /// The site database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server failed.
    #[error("the notary server failed")]
    Serve(#[source] std::io::Error),
}

/// The site's notary key pair, derived (HKDF-BLAKE2b) from `local/site-secret`.
pub fn load_notary_keypair(paths: &SitePaths) -> Result<KeyPair, NotaryError> {
    let bytes = read_secret_file(&paths.secret, 32)?;
    if bytes.len() != 32 {
        return Err(NotaryError::SecretLength {
            path: paths.secret.clone(),
            len: bytes.len(),
        });
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&bytes);
    let secret = SiteSecret::from_bytes(seed);
    Ok(secret.notary_keypair()?)
}

struct Notary {
    keypair: KeyPair,
    config: Config,
    limits: Limits,
    options: NotaryOptions,
    http: Http,
    db: Mutex<Connection>,
    ip_limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    fetch_limiter: DefaultDirectRateLimiter,
    fetch_locks: HashMap<ChannelName, tokio::sync::Mutex<()>>,
    in_flight: tokio::sync::Semaphore,
}

/// Serves the notary endpoint on `listener` with [`NotaryOptions::default`] until `shutdown`
/// resolves.
pub async fn serve_notary(
    paths: &SitePaths,
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NotaryError> {
    serve_notary_with(paths, config, NotaryOptions::default(), listener, shutdown).await
}

/// Serves the notary endpoint on `listener` until `shutdown` resolves.
pub async fn serve_notary_with(
    paths: &SitePaths,
    config: Config,
    options: NotaryOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NotaryError> {
    let keypair = load_notary_keypair(paths)?;
    let conn = db::open(&paths.db)?;
    // The witness tables, once at start (not per request).
    conn.execute_batch(super::witness::SCHEMA)
        .map_err(|e| NotaryError::from(DbError::from(e)))?;
    let limits = Limits {
        max_response_age_secs: config
            .site
            .max_response_age_secs
            .unwrap_or(Limits::default().max_response_age_secs),
        ..Limits::default()
    };
    let http = Http::with_timeouts(
        &config.transport,
        options.fetch_timeout,
        options.fetch_timeout,
    )?;
    let ip_limiter = NonZeroU32::new(options.requests_per_minute_per_ip).map(|n| {
        let burst = NonZeroU32::new(options.burst_per_ip).unwrap_or(NonZeroU32::MIN);
        RateLimiter::keyed(Quota::per_minute(n).allow_burst(burst))
    });
    let fetch_limiter = RateLimiter::direct(
        Quota::per_second(NonZeroU32::new(options.fetches_per_second).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(options.fetch_burst).unwrap_or(NonZeroU32::MIN)),
    );
    let fetch_locks = config
        .channels
        .iter()
        .map(|c| (c.name.clone(), tokio::sync::Mutex::new(())))
        .collect();
    tracing::info!(
        key = %keypair.public(),
        channels = config.channels.len(),
        "notary key loaded"
    );
    let notary = Arc::new(Notary {
        keypair,
        limits,
        http,
        db: Mutex::new(conn),
        ip_limiter,
        fetch_limiter,
        fetch_locks,
        in_flight: tokio::sync::Semaphore::new(options.max_concurrent_requests.max(1)),
        config,
        options,
    });
    let pruner = {
        let n = notary.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                if let Some(l) = &n.ip_limiter {
                    l.retain_recent();
                    l.shrink_to_fit();
                }
            }
        })
    };
    // Not `axum::serve`: it has no request-head deadline and no connection cap (F2).
    let connections = notary.options.connections.clone();
    let result = http_guard::serve(listener, router(notary), connections, shutdown)
        .await
        .map_err(NotaryError::Serve);
    pruner.abort();
    result
}

fn router(notary: Arc<Notary>) -> Router {
    let witness = Router::new()
        .route(WITNESS_PATH, post(add_checkpoint))
        .layer(DefaultBodyLimit::max(keyggdrasil::witness::MAX_BODY_BYTES));
    Router::new()
        .route(NOTARY_PATH, post(root))
        .layer(DefaultBodyLimit::max(notary.options.max_body_bytes))
        .merge(witness)
        .route_layer(middleware::from_fn_with_state(notary.clone(), limit))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such endpoint",
            )
        })
        .with_state(notary)
}

/// `POST /add-checkpoint` (C2SP tlog-witness): plain-text answers with the spec's statuses; a
/// 409 carries the latest cosigned size as `text/x.tlog.size`.
async fn add_checkpoint(
    State(n): State<Arc<Notary>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(body) = body else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "the body is too large\n",
        )
            .into_response();
    };
    let notary = n.clone();
    let done = tokio::task::spawn_blocking(move || {
        let mut conn = notary
            .db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let trusted = |o: &ChannelName| {
            notary
                .config
                .channels
                .iter()
                .find(|c| &c.name == o)
                .map(|c| c.key)
        };
        super::witness::add_checkpoint(&mut conn, &notary.keypair, trusted, &body, now_secs())
    })
    .await;
    let text = |status: StatusCode, body: String| {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response()
    };
    match done {
        Ok(Ok(Ok(line))) => text(StatusCode::OK, line),
        Ok(Ok(Err(keyggdrasil::witness::WitnessError::Conflict { latest }))) => (
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, "text/x.tlog.size")],
            format!("{latest}\n"),
        )
            .into_response(),
        Ok(Ok(Err(e))) => text(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            format!("{e}\n"),
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "witness");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; the operator has the details\n".into(),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "witness task");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; the operator has the details\n".into(),
            )
        }
    }
}

/// An error answer.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    fn internal(context: &str, err: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; the operator has the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Envelope::<()>::Error {
            code: self.code,
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

/// Per-IP rate limit and the bound on requests in flight, before the body is read.
async fn limit(State(n): State<Arc<Notary>>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if let Some(l) = &n.ip_limiter
        && l.check_key(&ip).is_err()
    {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many requests; slow down",
        )
        .into_response();
    }
    let Ok(_permit) = n.in_flight.try_acquire() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Busy,
            "the notary is busy; try again shortly",
        )
        .into_response();
    };
    match tokio::time::timeout(n.options.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Timeout,
            "the notary could not answer in time",
        )
        .into_response(),
    }
}

async fn root(
    State(n): State<Arc<Notary>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if !keyggdrasil::wire::is_json_content_type(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    ) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "requests must be sent as Content-Type: application/json",
        ));
    }
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::TooLarge,
                format!("requests are at most {} bytes", n.options.max_body_bytes),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                e.body_text(),
            )
        }
    })?;
    let req: NotaryRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!("not a notary request: {e}"),
        )
    })?;
    let Some(channel) = n.config.channel(&req.channel).cloned() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownChannel,
            "this notary does not follow that channel",
        ));
    };
    let status = answer(&n, &channel, req.size).await?;
    tracing::debug!(channel = req.channel.as_str(), size = req.size, status = ?status_name(&status), "answered");
    let payload = NotaryPayload {
        v: WIRE_VERSION,
        channel: req.channel,
        size: req.size,
        nonce: req.nonce,
        time: now_secs(),
        status,
    };
    let signed = Signed::sign(&n.keypair, Context::NotaryAnswer, &payload);
    if signed.payload.len() as u64 > n.limits.max_small_response_bytes {
        // Only fork evidence carrying large update pages gets here.
        tracing::warn!(
            bytes = signed.payload.len(),
            limit = n.limits.max_small_response_bytes,
            "this answer is larger than peers accept; they will count it as no answer"
        );
    }
    Ok((StatusCode::OK, Json(Envelope::Ok { data: signed })).into_response())
}

fn status_name(s: &NotaryStatus) -> &'static str {
    match s {
        NotaryStatus::Ok { .. } => "ok",
        NotaryStatus::Behind { .. } => "behind",
        NotaryStatus::ForkDetected { .. } => "fork_detected",
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What the observed log says about a size: a final answer, or how far it got.
enum Lookup {
    Answer(NotaryStatus),
    Short(u64),
}

fn lookup(
    conn: &Connection,
    channel: &ChannelName,
    size: u64,
    max_evidence: usize,
) -> Result<Lookup, ObserveError> {
    if let Some(record) = fork_record(conn, channel)? {
        return Ok(Lookup::Answer(NotaryStatus::ForkDetected {
            evidence: record.statements.into_iter().take(max_evidence).collect(),
        }));
    }
    if size == 0 {
        return Ok(Lookup::Answer(NotaryStatus::Ok {
            root: TreeHash(Blake2b256.empty_root()),
        }));
    }
    Ok(match observed_root_at(conn, channel, size)? {
        Some(root) => Lookup::Answer(NotaryStatus::Ok {
            root: TreeHash(root),
        }),
        None => Lookup::Short(observed_size(conn, channel)?),
    })
}

/// Runs `f` with the database connection on a blocking thread.
async fn with_db<T: Send + 'static>(
    n: &Arc<Notary>,
    f: impl FnOnce(&mut Connection) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let n = n.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn =
            n.db.lock()
                .map_err(|_| ApiError::internal("database", &"connection lock poisoned"))?;
        Ok(f(&mut conn))
    })
    .await
    .map_err(|e| ApiError::internal("blocking task", &e))?
}

async fn lookup_db(n: &Arc<Notary>, channel: &ChannelName, size: u64) -> Result<Lookup, ApiError> {
    let name = channel.clone();
    let max = n.limits.max_fork_evidence;
    with_db(n, move |c| lookup(c, &name, size, max))
        .await?
        .map_err(|e| ApiError::internal("observed log", &e))
}

async fn answer(
    n: &Arc<Notary>,
    channel: &ChannelConfig,
    size: u64,
) -> Result<NotaryStatus, ApiError> {
    if let Lookup::Answer(s) = lookup_db(n, &channel.name, size).await? {
        return Ok(s);
    }
    // One on-demand fetch per channel at a time; whoever waited may find it done.
    let lock = n.fetch_locks.get(&channel.name);
    let _guard = match lock {
        Some(l) => Some(l.lock().await),
        None => None,
    };
    let observed = match lookup_db(n, &channel.name, size).await? {
        Lookup::Answer(s) => return Ok(s),
        Lookup::Short(observed) => observed,
    };
    let permitted = tokio::time::timeout(n.options.fetch_wait, n.fetch_limiter.until_ready())
        .await
        .is_ok();
    if !permitted {
        tracing::info!(
            channel = channel.name.as_str(),
            size,
            "on-demand fetch rate limit reached; answering behind"
        );
        return Ok(NotaryStatus::Behind { observed });
    }
    fetch(n, channel, size, observed).await?;
    Ok(match lookup_db(n, &channel.name, size).await? {
        Lookup::Answer(s) => s,
        Lookup::Short(observed) => NotaryStatus::Behind { observed },
    })
}

/// Extends the observed tree towards `size` with leaf hashes, then one signed update that
/// covers `size` (or, beyond the hash budget, the furthest point it allows). Returns the new
/// observed size, or `None` when the channel could not be asked or its answer was refused
/// (nothing was stored; the caller falls back to fetching entries).
async fn catch_up_by_hashes(
    n: &Arc<Notary>,
    channel: &ChannelConfig,
    size: u64,
    observed: u64,
) -> Result<Option<u64>, ApiError> {
    // The update from `target` carries at least the entry `size - 1`, so its signed root is at
    // a size >= `size`.
    let budget_end = (size - 1).min(observed.saturating_add(n.options.max_leaf_hashes_per_request));
    let (cfg, http, limits) = (channel.clone(), n.http.clone(), n.limits.clone());
    let got = tokio::task::spawn_blocking(move || {
        let client = ChannelClient::new(&cfg, &http, &limits);
        // Never page past the channel's end (F5 in docs/security-review.md): a caller may ask
        // for any size, and hashes the channel does not have would be refused, wasting every
        // page fetched before them. One signed checkpoint says where the end is; a channel
        // that lies about it only costs what it costs without this check, since every hash is
        // checked against the signed root of the update below before anything is stored.
        let channel_size = client.checkpoint().ok().and_then(|signed| {
            verify_checkpoint(&signed, &cfg.key, Some(&cfg.name), &limits)
                .ok()
                .map(|c| c.size())
        });
        let target = match channel_size {
            Some(end) => budget_end.min(end.saturating_sub(1)),
            None => budget_end,
        };
        if target <= observed {
            // Nothing to page: the channel is not (or not much) ahead. The entries fallback
            // asks for one page from `observed`.
            return Err(CatchUp::NotAhead);
        }
        // From the tile mirrors when they have tiles far enough: whole tiles, or up to their
        // checkpoint (the sizes whose partial tiles exist).
        if !cfg.tile_mirrors.is_empty()
            && let Ok(Some(cp)) = client.tile_checkpoint()
        {
            // `target + 1` is the size asked (or the budget's end): a checkpoint there gives
            // the tiles of exactly that size.
            let end = if cp.size() <= target + 1 {
                cp.size()
            } else {
                target / TILE_WIDTH * TILE_WIDTH
            };
            if end > observed
                && let Ok(Some(hashes)) = client.leaf_hashes_from_tiles(observed, end)
            {
                let update = client.updates(end, now_secs())?;
                return Ok((hashes, update));
            }
        }
        let mut hashes = Vec::with_capacity(usize::try_from(target - observed).unwrap_or(0));
        let mut start = observed;
        while start < target {
            let end = target.min(start + MAX_LEAF_HASHES_PER_PAGE);
            match client.leaf_hashes(start, end) {
                Ok(page) => hashes.extend(page),
                // Keep the pages already fetched: the update from `start` still proves them.
                Err(e) if start > observed => {
                    tracing::info!(
                        channel = cfg.name.as_str(),
                        error = %e,
                        at = start,
                        "leaf hash page refused; keeping the hashes before it"
                    );
                    break;
                }
                Err(e) => return Err(CatchUp::Channel(e)),
            }
            start = end;
        }
        let update = client.updates(start, now_secs())?;
        Ok::<_, CatchUp>((hashes, update))
    })
    .await
    .map_err(|e| ApiError::internal("blocking task", &e))?;
    let (hashes, update) = match got {
        Ok(got) => got,
        Err(CatchUp::NotAhead) => return Ok(None),
        Err(CatchUp::Channel(e)) => {
            tracing::warn!(channel = channel.name.as_str(), error = %e, "catch-up by leaf hashes failed");
            return Ok(None);
        }
    };
    let count = hashes.len();
    let cfg = channel.clone();
    let result = with_db(n, move |c| {
        super::observe_after_leaf_hashes(c, &cfg, &hashes, &update)
    })
    .await?;
    match result {
        Ok(obs) => {
            tracing::info!(
                channel = channel.name.as_str(),
                from = observed,
                to = obs.size,
                leaf_hashes = count,
                "caught up by leaf hashes"
            );
            Ok(Some(obs.size))
        }
        Err(e) => {
            if e.is_fork() {
                tracing::error!(channel = channel.name.as_str(), error = %e, "fork");
            } else {
                tracing::warn!(channel = channel.name.as_str(), error = %e, "could not observe the channel's answer");
            }
            Ok(None)
        }
    }
}

/// Why a catch-up by leaf hashes fetched nothing to store.
enum CatchUp {
    /// The channel's signed checkpoint is not beyond what the notary has observed.
    NotAhead,
    /// A request to the channel failed or was refused.
    Channel(crate::channel::ChannelError),
}

impl From<crate::channel::ChannelError> for CatchUp {
    fn from(e: crate::channel::ChannelError) -> Self {
        Self::Channel(e)
    }
}

/// Fetches pages from the channel and observes them until `size` is observed, the channel has
/// no more, something fails, or the page budget is spent.
async fn fetch(
    n: &Arc<Notary>,
    channel: &ChannelConfig,
    size: u64,
    mut observed: u64,
) -> Result<(), ApiError> {
    if size.saturating_sub(observed) > n.options.leaf_hashes_beyond.max(1) {
        match catch_up_by_hashes(n, channel, size, observed).await? {
            Some(now) if now >= size => return Ok(()),
            Some(now) => observed = now,
            // Refused hashes are no evidence; the entries below are. A channel that rewrote
            // what this notary observed is caught there, with its signed pages as evidence.
            None => {}
        }
    }
    for _ in 0..n.options.max_pages_per_request {
        let (cfg, http, limits) = (channel.clone(), n.http.clone(), n.limits.clone());
        let since = observed;
        let got = tokio::task::spawn_blocking(move || {
            ChannelClient::new(&cfg, &http, &limits).updates(since, now_secs())
        })
        .await
        .map_err(|e| ApiError::internal("blocking task", &e))?;
        let update = match got {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(channel = channel.name.as_str(), error = %e, "on-demand fetch failed");
                return Ok(());
            }
        };
        let more = update.has_more();
        let cfg = channel.clone();
        let result = with_db(n, move |c| observe(c, &cfg, &update)).await?;
        match result {
            Ok(obs) => {
                observed = obs.size;
                if observed >= size || !more || obs.appended == 0 {
                    return Ok(());
                }
            }
            Err(e) => {
                if e.is_fork() {
                    tracing::error!(channel = channel.name.as_str(), error = %e, "fork");
                } else {
                    tracing::warn!(channel = channel.name.as_str(), error = %e, "could not observe the channel's answer");
                }
                return Ok(());
            }
        }
    }
    tracing::info!(
        channel = channel.name.as_str(),
        size,
        observed,
        "page budget spent"
    );
    Ok(())
}
