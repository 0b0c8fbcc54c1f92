//! The HTTP API (version 1).
//!
//! Every answer is a [`keyggdrasil::wire::Envelope`]: `{"status":"ok","data":…}` or
//! `{"status":"error","code":…,"message":…}`. Signed answers carry a
//! [`keyggdrasil::wire::Signed`] value whose payload bytes are exactly what the channel's signer
//! signed. Internal failures are logged with their details and answered with a generic message.
//!
//! | method and path | answer |
//! |---|---|
//! | `POST /v1/submit` (JSON [`SubmitRequest`]) | [`SubmitResponse`] |
//! | `GET /v1/updates?since=N&nonce=HEX` | `Signed` [`UpdatePayload`] (context `channel-update`) |
//! | `GET /v1/fresh?nonce=HEX` | [`keyggdrasil::batch::BatchedAnswer`]: the log's size and root, signed once per batch of nonces ([`crate::fresh`]) |
//! | `GET /v1/checkpoint` | `Signed` [`Checkpoint`] (context `checkpoint`) |
//! | `GET /v1/proof/inclusion?index=I&size=N` | [`InclusionProofResponse`] |
//! | `GET /v1/proof/consistency?old=M&new=N` | [`ConsistencyProofResponse`] |
//! | `GET /v1/entries?start=S&end=E` | [`EntriesResponse`] |
//! | `GET /v1/leaves?start=S&end=E` | [`LeafHashesResponse`] (at most [`MAX_LEAF_HASHES_PER_PAGE`]) |
//! | `GET /v1/release?supplier=S&package=P&version=V&size=N` | [`ReleaseLookupResponse`] (the release entry and its revocation, with inclusion proofs at size N) |
//! | `GET /v1/suppliers/{name}?size=N&start=K` | [`SupplierHistoryResponse`] (the supplier's entries from index K, at most [`MAX_HISTORY_PAGE`], with inclusion proofs at size N, and the next page's start) |
//! | `PUT /v1/archives/{supplier}/{package}/{version}` | the stored archive's size and digest |
//! | `GET /v1/archives/{supplier}/{package}/{version}` | the archive bytes (`Content-Length`, ranges) |
//! | `GET /v1/patches/{base digest hex}/{target digest hex}` | the delta patch bytes ([`crate::patches`]); 404 when there is none |
//! | `GET /v1/stats` | counts and uptime |
//! | `GET /healthz` | liveness and the signer's state |

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use keyggdrasil::archive_check::{ArchiveMismatch, ExpectedArchive};
use keyggdrasil::entry::Entry;
use keyggdrasil::history::{COMPLETENESS_ASSERTED, MAX_HISTORY_PAGE, SupplierHistoryResponse};
use keyggdrasil::keys::{PublicKey, Signature};
use keyggdrasil::lookup::{LoggedEntry, ReleaseLookupResponse};
use keyggdrasil::merkle::{self, Blake2b256};
use keyggdrasil::names::ChannelName;
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{
    Checkpoint, ConsistencyProofResponse, EntriesResponse, Envelope, ErrorCode,
    InclusionProofResponse, LeafHashesResponse, MAX_LEAF_HASHES_PER_PAGE, Nonce, Signed,
    SubmitRequest, SubmitResponse, TreeHash, UpdatePayload, WIRE_VERSION,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tower_http::timeout::TimeoutLayer;

use crate::config::{Paths, ServerLimits};
use crate::store::{self, DbError, ReadPool, SqliteHashes};
use crate::writer::{SubmitError, WriterHandle};

/// The signer is unavailable (down, restarting, or timed out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the channel's signer is unavailable")]
pub struct SignerDown;

/// Something that signs payloads with the channel key. In production this is the client of the
/// separate signer process ([`crate::signer`]); the server never holds the key itself.
pub trait PayloadSigner: Send + Sync + 'static {
    /// Signs `payload` under `context`.
    fn sign(
        &self,
        context: Context,
        payload: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<Signature, SignerDown>> + Send + '_>>;
    /// Signs a checkpoint text ([`keyggdrasil::tlog_checkpoint::text`]) as a C2SP note:
    /// Ed25519 over the text itself, no context prefix.
    fn sign_note(
        &self,
        text: String,
    ) -> Pin<Box<dyn Future<Output = Result<Signature, SignerDown>> + Send + '_>>;
    /// True while the signer is believed to be up (for `/healthz`).
    fn is_up(&self) -> bool;
}

/// Everything a request handler needs.
pub struct AppState {
    /// The single writer.
    pub writer: WriterHandle,
    /// Read connections.
    pub reads: ReadPool,
    /// The channel key's signer.
    pub signer: Arc<dyn PayloadSigner>,
    /// The channel's public key (to check what the signer returns, and for `/v1/stats`).
    pub channel_key: PublicKey,
    /// The log's origin.
    pub origin: ChannelName,
    /// Limits.
    pub limits: ServerLimits,
    /// File layout.
    pub paths: Paths,
    /// Start time, for uptime.
    pub started: Instant,
    /// The witnesses the channel pushes its checkpoints to ([`crate::witnessing`]).
    pub witnesses: Vec<crate::witnessing::WitnessTarget>,
    /// Held while `public/checkpoint` is written, by the publisher and the witness task.
    pub publish_lock: tokio::sync::Mutex<()>,
    checkpoint: Mutex<Option<(u64, u64, Signed)>>,
    fresh: crate::fresh::Batcher,
    submit_limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    read_limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// All clients' reads together (F4): many addresses cannot multiply the per-address limit
    /// without bound. Off by default.
    total_read_limiter: Option<DefaultDirectRateLimiter>,
    uploads: tokio::sync::Semaphore,
    patches: crate::patches::PatchMaker,
}

impl AppState {
    /// Builds the state.
    pub fn new(
        writer: WriterHandle,
        signer: Arc<dyn PayloadSigner>,
        channel_key: PublicKey,
        origin: ChannelName,
        limits: ServerLimits,
        paths: Paths,
    ) -> Self {
        let quota = |per_minute: u32| {
            NonZeroU32::new(per_minute).map(|n| {
                let burst = NonZeroU32::new(limits.burst).unwrap_or(NonZeroU32::MIN);
                Quota::per_minute(n).allow_burst(burst)
            })
        };
        let limiter = |per_minute: u32| quota(per_minute).map(RateLimiter::keyed);
        Self {
            reads: ReadPool::new(&paths.db),
            submit_limiter: limiter(limits.submissions_per_minute),
            read_limiter: limiter(limits.reads_per_minute),
            total_read_limiter: quota(limits.reads_per_minute_total).map(RateLimiter::direct),
            uploads: tokio::sync::Semaphore::new(limits.max_concurrent_uploads.max(1)),
            patches: crate::patches::PatchMaker::start(&paths),
            checkpoint: Mutex::new(None),
            fresh: crate::fresh::Batcher::new(
                {
                    let writer = writer.clone();
                    Arc::new(move || writer.head())
                },
                signer.clone(),
                origin.clone(),
                limits.max_fresh_batch,
            ),
            started: Instant::now(),
            witnesses: Vec::new(),
            publish_lock: tokio::sync::Mutex::new(()),
            writer,
            signer,
            channel_key,
            origin,
            limits,
            paths,
        }
    }

    /// The same state, pushing checkpoints to `witnesses`.
    pub fn with_witnesses(mut self, witnesses: Vec<crate::witnessing::WitnessTarget>) -> Self {
        self.witnesses = witnesses;
        self
    }

    /// Forgets rate-limit keys not seen recently (call periodically to bound memory).
    pub fn prune_rate_limits(&self) {
        for l in [&self.submit_limiter, &self.read_limiter]
            .into_iter()
            .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// An error answer: HTTP status, stable code, message for people.
#[derive(Debug)]
pub struct ApiError {
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
    fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    fn internal(context: &str, err: &dyn std::error::Error) -> Self {
        // Details go to the operator's log, never to the client.
        tracing::error!(error = %err, source = ?err.source(), "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; the operator has the details",
        )
    }
    fn signer_down() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::SignerUnavailable,
            "the channel's signer is restarting; try again shortly",
        )
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        ApiError::internal("database", &e)
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

fn ok<T: Serialize>(data: T) -> Response {
    (StatusCode::OK, Json(Envelope::Ok { data })).into_response()
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The router with every route, limit and layer.
pub fn router(state: Arc<AppState>) -> Router {
    let limits = state.limits.clone();
    let reads = Router::new()
        .route("/v1/updates", get(updates))
        .route("/v1/fresh", get(fresh))
        .route("/v1/checkpoint", get(checkpoint))
        .route("/v1/proof/inclusion", get(inclusion))
        .route("/v1/proof/consistency", get(consistency))
        .route("/v1/entries", get(entries))
        .route("/v1/release", get(release_lookup))
        .route("/v1/suppliers/{name}", get(supplier_history))
        .route("/v1/proof/release", get(release_proof))
        .route("/v1/leaves", get(leaves))
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_reads));
    let submit = Router::new()
        .route("/v1/submit", post(submit))
        .layer(DefaultBodyLimit::max(limits.max_submission_bytes as usize))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            limit_submissions,
        ));
    let quick = Router::new()
        .merge(reads)
        .merge(submit)
        .route("/v1/stats", get(stats))
        .route("/checkpoint", get(checkpoint_note))
        .route("/healthz", get(healthz))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(limits.request_timeout_secs),
        ));
    let archives = Router::new()
        .route(
            "/v1/archives/{supplier}/{package}/{version}",
            get(download_archive).put(upload_archive),
        )
        .route("/v1/patches/{base}/{target}", get(download_patch))
        .layer(DefaultBodyLimit::disable())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            limit_submissions,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(limits.archive_timeout_secs),
        ));
    Router::new()
        .merge(quick)
        .merge(archives)
        .layer(middleware::from_fn(crate::explorer::allow_public_reads))
        .merge(crate::explorer::routes())
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such endpoint",
            )
        })
        .with_state(state)
}

fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

async fn limit_reads(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let over_address = s
        .read_limiter
        .as_ref()
        .is_some_and(|l| l.check_key(&client_ip(&req)).is_err());
    // The total is only charged for reads the address's own limit let through.
    let over_total = !over_address
        && s.total_read_limiter
            .as_ref()
            .is_some_and(|l| l.check().is_err());
    if over_address || over_total {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many requests; slow down",
        )
        .into_response();
    }
    next.run(req).await
}

async fn limit_submissions(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(l) = &s.submit_limiter
        && l.check_key(&client_ip(&req)).is_err()
    {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many submissions; slow down",
        )
        .into_response();
    }
    next.run(req).await
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t).map_err(|e| {
        ApiError::bad_request(
            ErrorCode::BadQuery,
            format!("bad query string: {}", e.body_text()),
        )
    })
}

async fn submit(
    State(s): State<Arc<AppState>>,
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
            "submissions must be sent as Content-Type: application/json",
        ));
    }
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::TooLarge,
                format!(
                    "submission is larger than {} bytes",
                    s.limits.max_submission_bytes
                ),
            )
        } else {
            ApiError::bad_request(ErrorCode::BadBody, e.body_text())
        }
    })?;
    let req: SubmitRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(ErrorCode::MalformedJson, format!("not a submission: {e}"))
    })?;
    let entry = Entry::parse(req.entry.as_bytes())
        .map_err(|e| ApiError::bad_request(ErrorCode::MalformedEntry, e.to_string()))?;
    let signer = entry.body().signer;
    let checked = entry.into_checked().map_err(|_| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::refused(&keyggdrasil::state::Refusal::BadSignature(signer)),
            format!("the entry's signature does not verify under its signer key {signer}"),
        )
    })?;
    match s.writer.submit(checked, req.invite).await {
        Ok(a) => Ok(ok(SubmitResponse {
            index: a.index,
            leaf_hash: TreeHash(a.leaf_hash),
            size: a.size,
            duplicate: a.duplicate,
        })),
        Err(SubmitError::Refused(r)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::refused(&r),
            r.to_string(),
        )),
        Err(e @ SubmitError::InviteRequired) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::InviteRequired,
            e.to_string(),
        )),
        Err(e @ SubmitError::InviteInvalid) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::InviteInvalid,
            e.to_string(),
        )),
        Err(e @ SubmitError::Storage) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Storage,
            e.to_string(),
        )),
        Err(e @ SubmitError::Closed) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ShuttingDown,
            e.to_string(),
        )),
    }
}

async fn sign_payload<T: Serialize>(
    s: &AppState,
    context: Context,
    value: &T,
) -> Result<Signed, ApiError> {
    let payload =
        serde_json::to_string(value).map_err(|e| ApiError::internal("serialise payload", &e))?;
    let signature = s
        .signer
        .sign(context, payload.clone().into_bytes())
        .await
        .map_err(|_| ApiError::signer_down())?;
    Ok(Signed::from_parts(payload, signature))
}

/// Runs blocking database work off the async threads.
async fn blocking<T: Send + 'static>(
    s: &Arc<AppState>,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T, DbError> + Send + 'static,
) -> Result<T, ApiError> {
    let s = s.clone();
    tokio::task::spawn_blocking(move || s.reads.with(f))
        .await
        .map_err(|e| ApiError::internal("blocking task", &e))?
        .map_err(ApiError::from)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdatesQuery {
    since: u64,
    nonce: String,
}

async fn updates(
    State(s): State<Arc<AppState>>,
    q: Result<Query<UpdatesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let nonce = Nonce::from_hex(&q.nonce)
        .map_err(|e| ApiError::bad_request(ErrorCode::BadNonce, e.to_string()))?;
    let head = s.writer.head();
    if q.since > head.size {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::SinceBeyondLog,
            format!(
                "the log has {} entries; you asked for entries after {}",
                head.size, q.since
            ),
        ));
    }
    let (size, root, entries) = if q.since == head.size {
        (head.size, head.root, Vec::new())
    } else {
        let since = q.since;
        let end = head
            .size
            .min(since.saturating_add(s.limits.max_entries_per_page.max(1)));
        let max_bytes = s.limits.max_page_bytes;
        let (end, root, rows) = blocking(&s, move |c| {
            let mut rows = store::entries(c, since, end)?;
            // A byte cap besides the count cap (F4): the page stops before the entry that
            // would take it past `max_page_bytes`, keeping at least one; the client goes on
            // from `size` as for any page short of `tree_size`.
            rows.truncate(page_len_within(&rows, max_bytes));
            let end = since + rows.len() as u64;
            Ok((end, store::root_at(c, end)?, rows))
        })
        .await?;
        let mut texts = Vec::with_capacity(rows.len());
        for r in rows {
            texts.push(
                String::from_utf8(r)
                    .map_err(|e| ApiError::internal("stored entry is not UTF-8", &e))?,
            );
        }
        (end, root, texts)
    };
    let payload = UpdatePayload {
        v: WIRE_VERSION,
        origin: s.origin.clone(),
        nonce,
        time: now_secs(),
        since: q.since,
        size,
        root: TreeHash(root),
        tree_size: head.size,
        entries,
    };
    Ok(ok(sign_payload(&s, Context::ChannelUpdate, &payload).await?))
}

/// How many of `rows` (at least one, if any) fit in `max_bytes` of entry bytes.
fn page_len_within(rows: &[Vec<u8>], max_bytes: u64) -> usize {
    let mut total = 0u64;
    let n = rows
        .iter()
        .take_while(|r| {
            total = total.saturating_add(r.len() as u64);
            total <= max_bytes
        })
        .count();
    n.max(rows.len().min(1))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FreshQuery {
    nonce: String,
}

/// The batched freshness answer: the log's size and root now, bound to the nonce by its path in
/// the batch the channel signed once ([`crate::fresh`]).
async fn fresh(
    State(s): State<Arc<AppState>>,
    q: Result<Query<FreshQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let nonce = Nonce::from_hex(&q.nonce)
        .map_err(|e| ApiError::bad_request(ErrorCode::BadNonce, e.to_string()))?;
    let (batch, index) = s
        .fresh
        .answer(nonce)
        .await
        .map_err(|_| ApiError::signer_down())?;
    let body = batch.envelope(index).ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error",
        )
    })?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// How long a signed checkpoint is reused while the log does not grow.
const CHECKPOINT_REUSE_SECS: u64 = 10;

async fn checkpoint(State(s): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let head = s.writer.head();
    let now = now_secs();
    if let Ok(c) = s.checkpoint.lock()
        && let Some((size, time, signed)) = c.as_ref()
        && *size == head.size
        && now.saturating_sub(*time) < CHECKPOINT_REUSE_SECS
    {
        return Ok(ok(signed.clone()));
    }
    let cp = Checkpoint {
        v: WIRE_VERSION,
        origin: s.origin.clone(),
        size: head.size,
        root: TreeHash(head.root),
        time: now,
    };
    let signed = sign_payload(&s, Context::Checkpoint, &cp).await?;
    if let Ok(mut c) = s.checkpoint.lock() {
        *c = Some((head.size, now, signed.clone()));
    }
    Ok(ok(signed))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionQuery {
    index: u64,
    size: u64,
}

async fn inclusion(
    State(s): State<Arc<AppState>>,
    q: Result<Query<InclusionQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let head = s.writer.head();
    if q.size > head.size || q.index >= q.size {
        return Err(ApiError::bad_request(
            ErrorCode::BadRange,
            format!("need index < size <= {} (the log's size)", head.size),
        ));
    }
    let proof = blocking(&s, move |c| {
        Ok(merkle::prove_inclusion(
            &Blake2b256,
            q.index,
            q.size,
            &SqliteHashes(c),
        )?)
    })
    .await?;
    Ok(ok(InclusionProofResponse::from_proof(
        q.index, q.size, &proof,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    old: u64,
    new: u64,
}

async fn consistency(
    State(s): State<Arc<AppState>>,
    q: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let head = s.writer.head();
    if q.old == 0 || q.old > q.new || q.new > head.size {
        return Err(ApiError::bad_request(
            ErrorCode::BadRange,
            format!("need 0 < old <= new <= {} (the log's size)", head.size),
        ));
    }
    let proof = blocking(&s, move |c| {
        Ok(merkle::prove_consistency(
            &Blake2b256,
            q.old,
            q.new,
            &SqliteHashes(c),
        )?)
    })
    .await?;
    Ok(ok(ConsistencyProofResponse::from_proof(
        q.old, q.new, &proof,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntriesQuery {
    start: u64,
    end: u64,
}

/// `start < end <= size` and at most `page` items, or `bad_range`.
fn check_range(q: &EntriesQuery, size: u64, page: u64, what: &str) -> Result<(), ApiError> {
    if q.start >= q.end || q.end > size || q.end - q.start > page {
        return Err(ApiError::bad_request(
            ErrorCode::BadRange,
            format!("need start < end <= {size} and at most {page} {what}"),
        ));
    }
    Ok(())
}

async fn entries(
    State(s): State<Arc<AppState>>,
    q: Result<Query<EntriesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    check_range(
        &q,
        s.writer.head().size,
        s.limits.max_entries_per_page.max(1),
        "entries",
    )?;
    let rows = blocking(&s, move |c| store::entries(c, q.start, q.end)).await?;
    let mut texts = Vec::with_capacity(rows.len());
    for r in rows {
        texts.push(
            String::from_utf8(r)
                .map_err(|e| ApiError::internal("stored entry is not UTF-8", &e))?,
        );
    }
    Ok(ok(EntriesResponse {
        start: q.start,
        entries: texts,
    }))
}

/// Leaf hashes of `start..end`: what a notary far behind needs to extend its tree to a signed
/// root without downloading entries (32 bytes a leaf instead of the entry).
async fn leaves(
    State(s): State<Arc<AppState>>,
    q: Result<Query<EntriesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    check_range(&q, s.writer.head().size, MAX_LEAF_HASHES_PER_PAGE, "leaves")?;
    let hashes = blocking(&s, move |c| store::leaf_hashes(c, q.start, q.end)).await?;
    Ok(ok(LeafHashesResponse {
        start: q.start,
        hashes: hashes.into_iter().map(TreeHash).collect(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseQuery {
    supplier: String,
    package: String,
    version: String,
    size: u64,
}

#[derive(Deserialize)]
struct ReleaseProofQuery {
    supplier: String,
    package: String,
    version: String,
}

/// `GET /v1/proof/release?supplier=&package=&version=`: the release as an offline proof
/// (`keyggdrasil::tlog_proof`, C2SP `tlog-proof@v1`, `text/plain`) against the published
/// checkpoint note: its entry in the `extra` line, its index, its inclusion proof at the note's
/// size, and the note verbatim. 404 when the release is not logged below the published size.
async fn release_proof(
    State(s): State<Arc<AppState>>,
    q: Result<Query<ReleaseProofQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let (supplier, package, version) = parse_names(&q.supplier, &q.package, &q.version)?;
    let note = tokio::fs::read(s.paths.public.join("checkpoint"))
        .await
        .ok()
        .and_then(|b| keyggdrasil::tlog_checkpoint::open(&b, &s.channel_key, &s.origin).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no checkpoint is published yet".to_owned(),
            )
        })?;
    let size = note.size();
    let id = keyggdrasil::snapshot::ReleaseId {
        supplier: supplier.clone(),
        package: package.clone(),
        version: version.clone(),
    };
    let found = blocking(&s, move |c| {
        let Some(record) = store::release_record(c, &id)? else {
            return Ok(None);
        };
        if record.index >= size {
            return Ok(None);
        }
        let bytes = store::entries(c, record.index, record.index + 1)?
            .pop()
            .ok_or_else(|| DbError::Inconsistent(format!("no stored entry {}", record.index)))?;
        let proof = merkle::prove_inclusion(&Blake2b256, record.index, size, &SqliteHashes(c))?;
        Ok(Some((record.index, bytes, proof.hashes().to_vec())))
    })
    .await?;
    let Some((index, bytes, path)) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownRelease,
            format!(
                "{supplier}/{package} {version} is not in the log at the published size {size}"
            ),
        ));
    };
    let text = keyggdrasil::tlog_proof::format(Some(&bytes), index, &path, note.note());
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// One release by name: an indexed lookup of its state row, the release entry and (if logged
/// below `size`) its revocation, each with an inclusion proof at `size`. O(log n) in the log
/// size; the client checks it with [`keyggdrasil::lookup::verify_release_lookup`].
async fn release_lookup(
    State(s): State<Arc<AppState>>,
    q: Result<Query<ReleaseQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let (supplier, package, version) = parse_names(&q.supplier, &q.package, &q.version)?;
    let head = s.writer.head();
    if q.size == 0 || q.size > head.size {
        return Err(ApiError::bad_request(
            ErrorCode::BadRange,
            format!("need 0 < size <= {} (the log's size)", head.size),
        ));
    }
    let size = q.size;
    let id = keyggdrasil::snapshot::ReleaseId {
        supplier: supplier.clone(),
        package: package.clone(),
        version: version.clone(),
    };
    let found = blocking(&s, move |c| {
        let Some(record) = store::release_record(c, &id)? else {
            return Ok(None);
        };
        if record.index >= size {
            return Ok(None);
        }
        let logged = |index: u64| -> Result<LoggedEntry, DbError> {
            let bytes = store::entries(c, index, index + 1)?
                .pop()
                .ok_or_else(|| DbError::Inconsistent(format!("no stored entry {index}")))?;
            let entry = String::from_utf8(bytes)
                .map_err(|_| DbError::Inconsistent(format!("stored entry {index} is not UTF-8")))?;
            let proof = merkle::prove_inclusion(&Blake2b256, index, size, &SqliteHashes(c))?;
            Ok(LoggedEntry {
                index,
                entry,
                path: proof.hashes().iter().copied().map(TreeHash).collect(),
            })
        };
        let release = logged(record.index)?;
        let revocation = match record.revoked_at {
            Some(at) if at < size => Some(logged(at)?),
            _ => None,
        };
        Ok(Some(ReleaseLookupResponse {
            size,
            release,
            revocation,
        }))
    })
    .await?;
    match found {
        Some(answer) => Ok(ok(answer)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownRelease,
            format!("{supplier}/{package} {version} is not in the log at size {size}"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SupplierHistoryQuery {
    size: u64,
    #[serde(default)]
    start: u64,
}

/// `GET /v1/suppliers/{name}?size=N&start=K`: one page of a supplier's history, its entries with
/// `K <= index < N` by ascending index, at most [`MAX_HISTORY_PAGE`], each with an inclusion
/// proof at `N`, and the `start` of the next page. One range scan of the `entries_by_supplier`
/// index and one proof per entry: O(page · log n), whatever the log's size. The answer asserts,
/// and cannot prove, that no entry was left out (`completeness: "asserted"`); the client checks
/// it with [`keyggdrasil::history::verify_supplier_history`]. 404 `unknown_supplier` when the
/// supplier has no entry below `N`.
async fn supplier_history(
    State(s): State<Arc<AppState>>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<SupplierHistoryQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = name.map_err(|e| ApiError::bad_request(ErrorCode::BadName, e.body_text()))?;
    let supplier = SupplierName::parse(&name)
        .map_err(|e| ApiError::bad_request(ErrorCode::BadName, e.to_string()))?;
    let q = query(q)?;
    let head = s.writer.head();
    if q.size == 0 || q.size > head.size || q.start >= q.size {
        return Err(ApiError::bad_request(
            ErrorCode::BadRange,
            format!(
                "need start < size and 0 < size <= {} (the log's size)",
                head.size
            ),
        ));
    }
    let (size, start) = (q.size, q.start);
    let who = supplier.clone();
    let found = blocking(&s, move |c| {
        // One row more than a page says whether there is a next page, and where it starts.
        let mut rows = store::supplier_entries(c, who.as_str(), start, size, MAX_HISTORY_PAGE + 1)?;
        let next = if rows.len() > MAX_HISTORY_PAGE {
            rows.split_off(MAX_HISTORY_PAGE)
                .first()
                .map(|(index, _)| *index)
        } else {
            None
        };
        if rows.is_empty() && !store::supplier_has_entries_below(c, who.as_str(), size)? {
            return Ok(None);
        }
        let mut entries = Vec::with_capacity(rows.len());
        for (index, bytes) in rows {
            let entry = String::from_utf8(bytes)
                .map_err(|_| DbError::Inconsistent(format!("stored entry {index} is not UTF-8")))?;
            let proof = merkle::prove_inclusion(&Blake2b256, index, size, &SqliteHashes(c))?;
            entries.push(LoggedEntry {
                index,
                entry,
                path: proof.hashes().iter().copied().map(TreeHash).collect(),
            });
        }
        Ok(Some(SupplierHistoryResponse {
            supplier: who,
            size,
            entries,
            next,
            completeness: COMPLETENESS_ASSERTED.to_owned(),
        }))
    })
    .await?;
    match found {
        Some(answer) => Ok(ok(answer)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownSupplier,
            format!("{supplier} has no entry in the log below size {size}"),
        )),
    }
}

/// `GET /checkpoint`: the published C2SP checkpoint note (`public/checkpoint`), as
/// `text/plain; charset=utf-8`, for signed-note tools. 404 until the first publish. Served
/// from the file, so it is exactly what a static mirror serves.
async fn checkpoint_note(State(s): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let path = s.paths.public.join("checkpoint");
    match tokio::fs::read(&path).await {
        Ok(bytes) if bytes.len() <= keyggdrasil::note::MAX_NOTE_BYTES => Ok((
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response()),
        Ok(_) => Err(ApiError::internal(
            "checkpoint",
            &DbError::Inconsistent("public/checkpoint is larger than a note".into()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no checkpoint is published yet".to_owned(),
        )),
        Err(e) => Err(ApiError::internal("checkpoint", &e)),
    }
}

#[derive(Serialize)]
struct Stats {
    origin: ChannelName,
    channel_key: PublicKey,
    /// The C2SP note verifier key of `GET /checkpoint`.
    verifier_key: String,
    size: u64,
    suppliers: u64,
    releases: u64,
    archives: u64,
    uptime_secs: u64,
    /// Batched freshness answers given since start, and the signatures they took.
    fresh_answers: u64,
    fresh_batches: u64,
}

async fn stats(State(s): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let (size, suppliers, releases, archives) = blocking(&s, store::stats).await?;
    Ok(ok(Stats {
        origin: s.origin.clone(),
        channel_key: s.channel_key,
        verifier_key: keyggdrasil::tlog_checkpoint::verifier_key(&s.origin, &s.channel_key)
            .map(|v| v.to_string())
            .unwrap_or_default(),
        size,
        suppliers,
        releases,
        archives,
        uptime_secs: s.started.elapsed().as_secs(),
        fresh_answers: s.fresh.answers(),
        fresh_batches: s.fresh.batches(),
    }))
}

#[derive(Serialize)]
struct Health {
    size: u64,
    signer: &'static str,
}

async fn healthz(State(s): State<Arc<AppState>>) -> Response {
    let up = s.signer.is_up();
    let body = Health {
        size: s.writer.head().size,
        signer: if up { "up" } else { "down" },
    };
    if up {
        ok(body)
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Envelope::Ok { data: body }),
        )
            .into_response()
    }
}

fn parse_names(
    supplier: &str,
    package: &str,
    version: &str,
) -> Result<(SupplierName, PackageName, Version), ApiError> {
    Ok((
        SupplierName::parse(supplier)
            .map_err(|e| ApiError::bad_request(ErrorCode::BadName, e.to_string()))?,
        PackageName::parse(package)
            .map_err(|e| ApiError::bad_request(ErrorCode::BadName, e.to_string()))?,
        Version::parse(version)
            .map_err(|e| ApiError::bad_request(ErrorCode::BadName, e.to_string()))?,
    ))
}

async fn logged_release(
    s: &Arc<AppState>,
    supplier: SupplierName,
    package: PackageName,
    version: Version,
) -> Result<ExpectedArchive, ApiError> {
    let (sup, pkg, ver) = (supplier.clone(), package.clone(), version.clone());
    let found = blocking(s, move |c| {
        let Some((idx, size, digest)) =
            store::release(c, sup.as_str(), pkg.as_str(), ver.as_str())?
        else {
            return Ok(None);
        };
        let bytes = store::entries(c, idx, idx + 1)?;
        Ok(Some((size, digest, bytes)))
    })
    .await?;
    let Some((size, digest, bytes)) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownRelease,
            format!("{supplier}/{package} {version} is not in the log"),
        ));
    };
    // The stored entry is the one source of what an upload must match: the index's size and
    // digest are only how it was found.
    let expected = bytes
        .first()
        .and_then(|b| Entry::parse(b).ok())
        .and_then(|e| e.expected_archive())
        .filter(|e| e.size() == size && e.digest().0 == digest)
        .ok_or_else(|| {
            ApiError::internal(
                "stored release entry",
                &DbError::Inconsistent("not a release entry matching its index row".into()),
            )
        })?;
    Ok(expected)
}

/// Where the archive with this BLAKE2b-512 is stored.
pub fn archive_path(paths: &Paths, digest: &[u8; 64]) -> PathBuf {
    paths.archives.join(hex::encode(digest))
}

#[derive(Serialize)]
struct Uploaded {
    size: u64,
    digest: String,
    already_stored: bool,
    /// True when a stored copy did not match the log and this upload replaced it.
    repaired: bool,
}

/// Checks the stored copy of an archive against its logged release (one streamed pass). `false`
/// for a missing, unreadable or different file.
pub fn stored_copy_is_good(path: &std::path::Path, expected: &ExpectedArchive) -> bool {
    std::fs::File::open(path)
        .map(|f| expected.check(std::io::BufReader::new(f)).is_ok())
        .unwrap_or(false)
}

async fn upload_archive(
    State(s): State<Arc<AppState>>,
    Path((supplier, package, version)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (supplier, package, version) = parse_names(&supplier, &package, &version)?;
    let release_names = (
        supplier.as_str().to_owned(),
        package.as_str().to_owned(),
        version.clone(),
    );
    let release = logged_release(&s, supplier, package, version).await?;
    let limit = release.size().min(s.limits.max_archive_bytes);
    if release.size() > s.limits.max_archive_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!(
                "the logged archive size {} is above this channel's limit {}",
                release.size(),
                s.limits.max_archive_bytes
            ),
        ));
    }
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len != release.size()
    {
        return Err(ApiError::bad_request(
            ErrorCode::ArchiveSizeMismatch,
            format!(
                "the archive is {len} bytes but the logged release says {}",
                release.size()
            ),
        ));
    }
    let final_path = archive_path(&s.paths, &release.digest().0);
    let digest = release.digest().0;
    let mut repaired = false;
    if blocking(&s, move |c| store::has_archive(c, &digest)).await? {
        // A stored copy is only "already stored" if it still matches the log: a copy damaged on
        // disk is replaced by an upload that matches (the only way to repair it).
        let (path, expected) = (final_path.clone(), release.clone());
        let good = tokio::task::spawn_blocking(move || stored_copy_is_good(&path, &expected))
            .await
            .map_err(|e| ApiError::internal("blocking task", &e))?;
        if good {
            // Read (and discard) the body first: answering before the client finished sending
            // makes many clients report a broken pipe instead of this success. It goes through
            // the same check as a first upload, so bytes that are not the logged archive are
            // refused, not answered "already stored" (docs/security-review.md, 1.11).
            verify_discarded(body, &release, limit, s.limits.upload_min_rate()).await?;
            return Ok(ok(Uploaded {
                size: release.size(),
                digest: release.digest().to_hex(),
                already_stored: true,
                repaired: false,
            }));
        }
        tracing::error!(
            path = %final_path.display(),
            "the stored archive does not match its logged release; replacing it with this upload if it matches"
        );
        repaired = true;
    }
    let _permit = s
        .uploads
        .acquire()
        .await
        .map_err(|_| ApiError::signer_down())?;
    let tmp = s.paths.archives.join(format!(
        ".upload-{}",
        hex::encode(keyggdrasil::os::random::bytes::<12>())
    ));
    let result = receive(body, &tmp, &release, repaired, s.limits.upload_min_rate()).await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
        return result;
    }
    tokio::fs::rename(&tmp, &final_path)
        .await
        .map_err(|e| ApiError::internal("store archive", &e))?;
    let dir = s.paths.archives.clone();
    let digest = release.digest().0;
    let size = release.size();
    blocking(&s, move |_c| {
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| DbError::Inconsistent(e.to_string()))?;
        Ok(())
    })
    .await?;
    let db = s.paths.db.clone();
    tokio::task::spawn_blocking(move || -> Result<(), DbError> {
        let c = store::open(&db)?;
        store::add_archive(&c, &digest, size)
    })
    .await
    .map_err(|e| ApiError::internal("blocking task", &e))??;
    // The static copy; a failure here leaves the upload stored and is logged, not refused.
    let (public, stored) = (s.paths.public.clone(), final_path.clone());
    let published = tokio::task::spawn_blocking(move || {
        crate::publish::publish_archive(&public, &stored, &digest, repaired)
    })
    .await;
    match published {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not publish the archive as a static file"),
        Err(e) => tracing::warn!(error = %e, "could not publish the archive as a static file"),
    }
    if result.is_ok() {
        // Delta patches to this archive from earlier versions, off the request path.
        s.patches.request(crate::patches::Job {
            supplier: release_names.0,
            package: release_names.1,
            version: release_names.2,
            size,
            digest,
        });
    }
    result
}

/// The longest the publisher sleeps without a commit waking it, and its pause after a failure.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// Keeps `public/` ([`crate::publish`]) at the log's head: whenever the log has grown, writes
/// the new tiles, then a checkpoint of that size signed by the channel key. Runs until the
/// process ends; a failure is logged and retried after [`PUBLISH_INTERVAL`] from the last
/// published size.
pub async fn publish_loop(s: Arc<AppState>) {
    let public = s.paths.public.clone();
    let (key, origin) = (s.channel_key, s.origin.clone());
    let mut published = {
        let public = public.clone();
        tokio::task::spawn_blocking(move || crate::publish::published_size(&public, &key, &origin))
            .await
            .unwrap_or(0)
    };
    // Archives stored before the channel had a static copy (or whose link was lost) are
    // linked once at start; each upload links its own afterwards.
    let state = s.clone();
    match tokio::task::spawn_blocking(move || publish_stored_archives(&state)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!(archives = n, "published stored archives as static files"),
        Ok(Err(e)) => tracing::warn!(error = %e, "could not publish the stored archives"),
        Err(e) => tracing::warn!(error = %e, "could not publish the stored archives"),
    }
    if published > s.writer.head().size {
        // A static copy of a longer log (a data folder restored from an older backup): its
        // tiles are not this log's, so every file is written again.
        tracing::warn!(
            published,
            size = s.writer.head().size,
            "public/ is of a longer log than the stored one; rewriting it"
        );
        published = 0;
    }
    loop {
        // Woken by each commit, so a new entry is on the static copy within one publish (a
        // site that polls just after a release reads it from the mirror, not from the
        // channel's signed pages); the interval only paces retries after a failure. Commits
        // that land while one publish runs are published together by the next.
        let _ = tokio::time::timeout(PUBLISH_INTERVAL, s.writer.changed()).await;
        let head = s.writer.head();
        if head.size == 0 || head.size <= published {
            continue;
        }
        match publish_once(&s, published, head).await {
            Ok(files) => {
                tracing::debug!(from = published, to = head.size, files, "published");
                published = head.size;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not publish the static copy of the log");
                // A lasting failure (a full disk) is retried at this pace, not at every commit.
                tokio::time::sleep(PUBLISH_INTERVAL).await;
            }
        }
    }
}

/// Links each stored archive that `public/archive/` lacks; the count linked.
fn publish_stored_archives(s: &AppState) -> Result<usize, String> {
    let digests = s
        .reads
        .with(store::archive_digests)
        .map_err(|e| e.to_string())?;
    let mut linked = 0;
    for digest in digests {
        let there = s
            .paths
            .public
            .join(keyggdrasil::tiles::archive_path(&digest));
        if there.exists() {
            continue;
        }
        let stored = archive_path(&s.paths, &digest);
        if !stored.exists() {
            // Recorded but missing (a damaged data folder): `channel-server check` says so.
            continue;
        }
        crate::publish::publish_archive(&s.paths.public, &stored, &digest, false)
            .map_err(|e| e.to_string())?;
        linked += 1;
    }
    Ok(linked)
}

async fn publish_once(
    s: &Arc<AppState>,
    from: u64,
    head: crate::writer::Head,
) -> Result<usize, String> {
    let public = s.paths.public.clone();
    let state = s.clone();
    let files = tokio::task::spawn_blocking(move || {
        state
            .reads
            .with(|c| Ok(crate::publish::publish_tiles(c, &public, from, head.size)))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let now = now_secs();
    let cp = Checkpoint {
        v: WIRE_VERSION,
        origin: s.origin.clone(),
        size: head.size,
        root: TreeHash(head.root),
        time: now,
    };
    let signed = sign_payload(s, Context::Checkpoint, &cp)
        .await
        .map_err(|_| "the signer is unavailable".to_owned())?;
    // The static `checkpoint` is a C2SP checkpoint note (tlog-tiles readers expect one); the
    // JSON form above stays for `/v1/checkpoint`.
    let text = keyggdrasil::tlog_checkpoint::text(&s.origin, head.size, &head.root);
    let signature = s
        .signer
        .sign_note(text.clone())
        .await
        .map_err(|_| "the signer is unavailable".to_owned())?;
    let note = keyggdrasil::tlog_checkpoint::assemble(
        &s.origin,
        &s.channel_key,
        &text,
        signature.as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let public = s.paths.public.clone();
    let _guard = s.publish_lock.lock().await;
    tokio::task::spawn_blocking(move || crate::publish::write_checkpoint(&public, note.as_bytes()))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if let Ok(mut c) = s.checkpoint.lock() {
        *c = Some((head.size, now, signed));
    }
    Ok(files)
}

/// Reads and discards an upload of an archive already stored, through the archive check
/// ([`receive`] without the file): the refusal a first upload of these bytes would get, if any.
/// After a refusal the rest of the body (up to `limit + 1` bytes) is still read, so the client
/// gets the answer rather than a broken pipe.
async fn verify_discarded(
    body: Body,
    release: &ExpectedArchive,
    limit: u64,
    rate: MinRate,
) -> Result<(), ApiError> {
    let mut stream = body.into_data_stream();
    let mut verifier = release.verifier();
    let mut seen = 0u64;
    let mut refusal = None;
    let start = tokio::time::Instant::now();
    while let Some(chunk) = next_chunk(&mut stream, rate, start, seen).await? {
        seen = seen.saturating_add(chunk.len() as u64);
        if refusal.is_none()
            && let Err(e) = verifier.update(&chunk)
        {
            refusal = Some(refused_upload(e));
        }
        if seen > limit {
            break;
        }
    }
    if let Some(e) = refusal {
        return Err(e);
    }
    verifier.finish().map(|_| ()).map_err(refused_upload)
}

/// Streams the upload into `tmp` and through the one archive check (size capped at the logged
/// size, digest, archive signature) in the same pass; the file is kept only if all of it holds.
async fn receive(
    body: Body,
    tmp: &std::path::Path,
    release: &ExpectedArchive,
    repaired: bool,
    rate: MinRate,
) -> Result<Response, ApiError> {
    let mut file = tokio::fs::File::create(tmp)
        .await
        .map_err(|e| ApiError::internal("create upload file", &e))?;
    let mut stream = body.into_data_stream();
    let mut verifier = release.verifier();
    let start = tokio::time::Instant::now();
    let mut seen = 0u64;
    while let Some(chunk) = next_chunk(&mut stream, rate, start, seen).await? {
        seen = seen.saturating_add(chunk.len() as u64);
        verifier.update(&chunk).map_err(refused_upload)?;
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal("write upload", &e))?;
    }
    file.sync_all()
        .await
        .map_err(|e| ApiError::internal("sync upload", &e))?;
    drop(file);
    let checked = verifier.finish().map_err(refused_upload)?;
    Ok(ok(Uploaded {
        size: checked.size(),
        digest: checked.digest().to_hex(),
        already_stored: false,
        repaired,
    }))
}

/// The slowest an archive upload may arrive (docs/security-review.md, F3): after a grace
/// period, the average rate since the start of the body must stay at or above a floor, so a
/// client drip-feeding a body cannot hold an upload permit until `archive_timeout_secs`.
/// A floor of 0 turns the check off (the whole-transfer timeout still applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    /// Time before the floor applies: connection set-up and a slow start.
    pub grace: Duration,
    /// The floor, in bytes per second; 0 = no floor.
    pub bytes_per_sec: u64,
}

impl MinRate {
    /// When the next byte must have arrived, `received` bytes into a body started at `start`:
    /// `start + grace + received / bytes_per_sec`; `None` without a floor.
    pub fn deadline(
        &self,
        start: tokio::time::Instant,
        received: u64,
    ) -> Option<tokio::time::Instant> {
        if self.bytes_per_sec == 0 {
            return None;
        }
        let earned = Duration::from_millis(received.saturating_mul(1000) / self.bytes_per_sec);
        // No overflow in practice (a body is capped at the archive limit); a sum past the
        // clock's range means "no deadline from the rate", and the transfer timeout remains.
        start.checked_add(self.grace.saturating_add(earned))
    }
}

/// The next chunk of an upload body, or `None` at its end; 408 `timeout` when it arrives later
/// than `rate` allows, 400 `upload_interrupted` when the body breaks off.
async fn next_chunk(
    stream: &mut axum::body::BodyDataStream,
    rate: MinRate,
    start: tokio::time::Instant,
    received: u64,
) -> Result<Option<Bytes>, ApiError> {
    use futures_util::StreamExt;
    let next = match rate.deadline(start, received) {
        Some(deadline) => tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    ErrorCode::Timeout,
                    format!(
                        "the upload is slower than this channel's floor of {} bytes/s \
                         (after {} s); {received} bytes arrived",
                        rate.bytes_per_sec,
                        rate.grace.as_secs()
                    ),
                )
            })?,
        None => stream.next().await,
    };
    next.transpose().map_err(|e| {
        ApiError::bad_request(ErrorCode::UploadInterrupted, format!("upload failed: {e}"))
    })
}

/// The answer to an upload that is not the logged archive.
fn refused_upload(e: ArchiveMismatch) -> ApiError {
    match e {
        ArchiveMismatch::TooLong { expected } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::ArchiveSizeMismatch,
            format!("the archive is larger than the logged size of {expected} bytes"),
        ),
        ArchiveMismatch::Truncated { received, expected } => ApiError::bad_request(
            ErrorCode::ArchiveSizeMismatch,
            format!("the archive is {received} bytes but the logged release says {expected}"),
        ),
        ArchiveMismatch::Digest { .. } => ApiError::bad_request(
            ErrorCode::ArchiveDigestMismatch,
            "the archive's BLAKE2b-512 digest does not match the logged release",
        ),
        ArchiveMismatch::Io(e) => ApiError::internal("hash upload", &e),
        _ => ApiError::bad_request(
            ErrorCode::ArchiveSignatureInvalid,
            "the logged archive signature does not verify over this archive",
        ),
    }
}

/// `GET /v1/patches/{base}/{target}`: the stored delta patch from the archive with BLAKE2b-512
/// `base` to the one with `target` (hex), if the channel made one; 404 otherwise. The bytes
/// are not trusted by anyone: a site checks what they rebuild against the log.
async fn download_patch(
    State(s): State<Arc<AppState>>,
    Path((base, target)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let parse = |text: &str| -> Option<[u8; 64]> {
        if text.len() != 128 {
            return None;
        }
        hex::decode(text).ok()?.try_into().ok()
    };
    let (Some(base), Some(target)) = (parse(&base), parse(&target)) else {
        return Err(ApiError::bad_request(
            ErrorCode::BadRequest,
            "a patch is named by two BLAKE2b-512 digests, 128 hex digits each",
        ));
    };
    if blocking(&s, move |c| store::patch_size(c, &base, &target))
        .await?
        .is_none()
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no patch between these archives",
        ));
    }
    let path = crate::patches::patch_path(&s.paths, &base, &target);
    use tower::ServiceExt;
    let svc = tower_http::services::ServeFile::new(path);
    match svc.oneshot(req).await {
        Ok(resp) => Ok(resp.map(Body::new)),
        Err(e) => Err(ApiError::internal("serve patch", &e)),
    }
}

async fn download_archive(
    State(s): State<Arc<AppState>>,
    Path((supplier, package, version)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let (supplier, package, version) = parse_names(&supplier, &package, &version)?;
    let release = logged_release(&s, supplier.clone(), package.clone(), version.clone()).await?;
    let digest = release.digest().0;
    if !blocking(&s, move |c| store::has_archive(c, &digest)).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::ArchiveNotUploaded,
            format!("the archive of {supplier}/{package} {version} has not been uploaded yet"),
        ));
    }
    let path = archive_path(&s.paths, &release.digest().0);
    use tower::ServiceExt;
    let svc = tower_http::services::ServeFile::new(path);
    match svc.oneshot(req).await {
        Ok(resp) => Ok(resp.map(Body::new)),
        Err(e) => Err(ApiError::internal("serve archive", &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::MinRate;
    use std::time::Duration;

    #[test]
    fn a_page_is_cut_before_the_entry_past_the_byte_cap_keeping_one() {
        use super::page_len_within;
        let rows = vec![vec![0u8; 400], vec![0u8; 400], vec![0u8; 400]];
        assert_eq!(page_len_within(&rows, 1 << 20), 3);
        assert_eq!(page_len_within(&rows, 800), 2);
        assert_eq!(page_len_within(&rows, 799), 1);
        assert_eq!(page_len_within(&rows, 1), 1);
        assert_eq!(page_len_within(&rows, 0), 1);
        assert_eq!(page_len_within(&[], 0), 0);
    }

    #[test]
    fn the_upload_floor_earns_time_per_byte_after_the_grace() {
        let start = tokio::time::Instant::now();
        let rate = MinRate {
            grace: Duration::from_secs(30),
            bytes_per_sec: 10_240,
        };
        assert_eq!(
            rate.deadline(start, 0),
            Some(start + Duration::from_secs(30))
        );
        // 1 MiB at 10 KiB/s earns 102.4 s beyond the grace.
        assert_eq!(
            rate.deadline(start, 1 << 20),
            Some(start + Duration::from_millis(30_000 + 102_400))
        );
        // Sizes from outside cannot overflow it.
        let _ = rate.deadline(start, u64::MAX);
        let off = MinRate {
            bytes_per_sec: 0,
            ..rate
        };
        assert_eq!(off.deadline(start, 5), None);
    }
}
