//! `serve`'s side of the socket: a pipelining client that checks every signature it hands out.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keyggdrasil::keys::{PreparedKey, PublicKey, Signature};
use keyggdrasil::os::lockmem::LockedBox;
use keyggdrasil::protocol::{self, Context};
use thiserror::Error;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::frame::{self, EncodeError, Refusal, Response};

/// Why no signature could be had. `serve` answers 503 for every one of these and logs the
/// detail; none of them is ever answered by signing in-process.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SignerUnavailable {
    /// The supervisor has no running, ready signer (starting, or restarting after a crash).
    #[error("the signer process is not running")]
    NotRunning,
    /// Connecting to the socket failed (the signer is down or not started yet).
    #[error("could not connect to the signer at {path}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The connection broke before the answer arrived.
    #[error("the connection to the signer was lost")]
    ConnectionLost,
    /// No answer within the client's timeout.
    #[error("the signer did not answer within {0:?}")]
    Timeout(Duration),
    /// The request was not sent: the signer would refuse it, or it cannot be encoded.
    #[error("request not sent")]
    Request(#[from] EncodeError),
    /// The context is not one the signer signs; a bug in the caller.
    #[error("the signer does not sign context {0:?}")]
    ContextNotAllowed(Context),
    /// The signer refused the request (a bad MAC means `serve` and the signer disagree on the
    /// channel secret).
    #[error("the signer refused the request: {0:?}")]
    Refused(Refusal),
    /// The signer answered something it should not have.
    #[error(transparent)]
    Misbehaved(#[from] SignerMisbehaved),
}

/// A signer that answered wrongly. Never handed on as a signature.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SignerMisbehaved {
    /// The signature does not verify under the pinned channel key over the requested bytes.
    #[error("the signer returned a signature that does not verify under the channel key")]
    BadSignature,
    /// The signer holds a different key than the one `serve` pins.
    #[error("the signer holds key {found}, but the channel key is {expected}")]
    WrongPublicKey {
        /// The pinned channel key.
        expected: PublicKey,
        /// What the signer reported (hex; it may not even be a valid key).
        found: String,
    },
    /// An answer of the wrong kind for the request.
    #[error("the signer answered with the wrong kind of response")]
    UnexpectedResponse,
}

/// Tunables of [`SignerClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Deadline for one request, connecting included. Default 2 s.
    pub timeout: Duration,
    /// Connections to open (requests are spread round-robin and pipelined on each). Default 2.
    pub connections: usize,
    /// Requests in flight at once over all connections; further callers wait (within their
    /// deadline). Bounds the memory held in queued frames. Default 4096.
    pub max_in_flight: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            connections: 2,
            max_in_flight: 4096,
        }
    }
}

/// An async client of the signer process: pipelines requests over a few Unix connections,
/// reconnects when one breaks, times out, and verifies every signature against the pinned
/// channel public key before returning it. Cheap to clone (shared state).
#[derive(Clone)]
pub struct SignerClient {
    inner: Arc<Inner>,
}

struct Inner {
    socket: PathBuf,
    mac_key: LockedBox<[u8; 32]>,
    public_key: PublicKey,
    /// `public_key` decompressed once (saves that step of every check); `None` cannot happen
    /// for a validated key, and would only mean checking with `public_key` itself.
    prepared: Option<PreparedKey>,
    options: ClientOptions,
    next_id: AtomicU64,
    next_slot: AtomicUsize,
    slots: Vec<tokio::sync::Mutex<Option<Arc<Conn>>>>,
    in_flight: Semaphore,
}

type Waiter = oneshot::Sender<Response>;
/// An encoded request frame, shared between a first attempt and its retry.
type Frame = Arc<Vec<u8>>;

struct Conn {
    alive: AtomicBool,
    pending: Mutex<Option<HashMap<u64, Waiter>>>,
    outgoing: mpsc::UnboundedSender<Frame>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Conn {
    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Marks the connection dead, fails every waiting request and stops both tasks (which
    /// closes the socket).
    fn close(&self) {
        self.alive.store(false, Ordering::Release);
        let waiters = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(waiters);
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            t.abort();
        }
    }

    /// Registers `id` and queues the frame; `None` if the connection is already closed.
    fn submit(&self, id: u64, frame: Frame) -> Option<oneshot::Receiver<Response>> {
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            pending.as_mut()?.insert(id, tx);
        }
        if self.outgoing.send(frame).is_err() {
            self.forget(id);
            return None;
        }
        Some(rx)
    }

    fn forget(&self, id: u64) {
        if let Some(map) = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            map.remove(&id);
        }
    }

    fn deliver(&self, response: Response) {
        let waiter = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .and_then(|m| m.remove(&response.id()));
        match waiter {
            Some(w) => {
                let _ = w.send(response);
            }
            // The caller gave up (timeout or cancellation) before the answer came.
            None => debug!(id = response.id(), "answer for a request nobody waits for"),
        }
    }
}

/// Removes a request's waiter if its future is dropped before the answer (timeout or a caller
/// that went away), so the pending map cannot grow.
struct PendingGuard<'a> {
    conn: &'a Conn,
    id: u64,
}
impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.conn.forget(self.id);
    }
}

async fn write_loop(wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Frame>, conn: Arc<Conn>) {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let ok: io::Result<()> = async {
        while let Some(f) = rx.recv().await {
            wr.write_all(&f).await?;
            // Batch whatever else is already queued into the same flush.
            while let Ok(f) = rx.try_recv() {
                wr.write_all(&f).await?;
            }
            wr.flush().await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = ok {
        debug!(error = %e, "writing to the signer failed");
    }
    conn.close();
}

async fn read_loop(rd: OwnedReadHalf, conn: Arc<Conn>) {
    let mut rd = BufReader::with_capacity(16 * 1024, rd);
    loop {
        match frame::read_frame(&mut rd, frame::MAX_RESPONSE_BODY).await {
            Ok(Some(body)) => match frame::parse_response(&body) {
                Ok(resp) => conn.deliver(resp),
                Err(e) => {
                    error!(error = %e, "malformed answer from the signer; dropping the connection");
                    break;
                }
            },
            Ok(None) => {
                debug!("the signer closed the connection");
                break;
            }
            Err(e) => {
                debug!(error = %e, "reading from the signer failed");
                break;
            }
        }
    }
    conn.close();
}

impl SignerClient {
    /// A client for the signer on `socket`, authenticating requests with `mac_key` and accepting
    /// only signatures that verify under `public_key`. Connects lazily. Needs a tokio runtime
    /// when used.
    pub fn new(
        socket: impl Into<PathBuf>,
        mac_key: LockedBox<[u8; 32]>,
        public_key: PublicKey,
        options: ClientOptions,
    ) -> Self {
        let connections = options.connections.max(1);
        Self {
            inner: Arc::new(Inner {
                socket: socket.into(),
                mac_key,
                public_key,
                prepared: PreparedKey::new(&public_key).ok(),
                next_id: AtomicU64::new(1),
                next_slot: AtomicUsize::new(0),
                slots: (0..connections)
                    .map(|_| tokio::sync::Mutex::new(None))
                    .collect(),
                in_flight: Semaphore::new(options.max_in_flight.max(1)),
                options,
            }),
        }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.inner.socket
    }

    /// The pinned channel public key.
    pub fn public_key(&self) -> PublicKey {
        self.inner.public_key
    }

    /// Signs `payload` under `context` (channel updates and checkpoints only) through the
    /// signer, and returns the signature only after verifying it under the pinned key.
    pub async fn sign(
        &self,
        context: Context,
        payload: Vec<u8>,
    ) -> Result<Signature, SignerUnavailable> {
        if !frame::context_allowed(context) {
            return Err(SignerUnavailable::ContextNotAllowed(context));
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let request = Arc::new(frame::encode_sign_request(
            &self.inner.mac_key,
            id,
            context.as_str(),
            &payload,
        )?);
        match self.round_trip(id, request).await? {
            Response::Signature { signature, .. } => {
                let verified = match &self.inner.prepared {
                    Some(key) => protocol::verify_prepared(key, context, &payload, &signature),
                    None => protocol::verify(&self.inner.public_key, context, &payload, &signature),
                };
                if verified.is_err() {
                    error!(
                        id,
                        "the signer returned a signature that does not verify under the channel key; not using it"
                    );
                    return Err(SignerMisbehaved::BadSignature.into());
                }
                Ok(signature)
            }
            Response::Refused { reason, .. } => Err(SignerUnavailable::Refused(reason)),
            Response::PublicKey { .. } => Err(SignerMisbehaved::UnexpectedResponse.into()),
        }
    }

    /// Signs a checkpoint text as a C2SP note ([`frame::NOTE_CHECKPOINT`]: Ed25519 over the
    /// text itself) through the signer, and returns the signature only after verifying it
    /// under the pinned key. A text the signer would refuse is refused here first.
    pub async fn sign_note(&self, text: String) -> Result<Signature, SignerUnavailable> {
        if !frame::note_checkpoint_allowed(text.as_bytes()) {
            return Err(SignerUnavailable::Refused(Refusal::ContextNotAllowed));
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let request = Arc::new(frame::encode_sign_request(
            &self.inner.mac_key,
            id,
            frame::NOTE_CHECKPOINT,
            text.as_bytes(),
        )?);
        match self.round_trip(id, request).await? {
            Response::Signature { signature, .. } => {
                if self
                    .inner
                    .public_key
                    .verify_strict(text.as_bytes(), &signature)
                    .is_err()
                {
                    error!(
                        id,
                        "the signer returned a note signature that does not verify under the channel key; not using it"
                    );
                    return Err(SignerMisbehaved::BadSignature.into());
                }
                Ok(signature)
            }
            Response::Refused { reason, .. } => Err(SignerUnavailable::Refused(reason)),
            Response::PublicKey { .. } => Err(SignerMisbehaved::UnexpectedResponse.into()),
        }
    }

    /// Asks the signer for its public key and checks it is the pinned one: the readiness probe
    /// of the supervisor, and a clear error when `serve` and the signer hold different keys.
    pub async fn check(&self) -> Result<(), SignerUnavailable> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let request = Arc::new(frame::encode_public_key_request(&self.inner.mac_key, id));
        match self.round_trip(id, request).await? {
            Response::PublicKey { key, .. } if key == *self.inner.public_key.as_bytes() => Ok(()),
            Response::PublicKey { key, .. } => Err(SignerMisbehaved::WrongPublicKey {
                expected: self.inner.public_key,
                found: hex::encode(key),
            }
            .into()),
            Response::Refused { reason, .. } => Err(SignerUnavailable::Refused(reason)),
            Response::Signature { .. } => Err(SignerMisbehaved::UnexpectedResponse.into()),
        }
    }

    /// Closes every connection (the next request reconnects). The supervisor calls this when
    /// the signer process is replaced.
    pub async fn disconnect(&self) {
        for slot in &self.inner.slots {
            if let Some(c) = slot.lock().await.take() {
                c.close();
            }
        }
    }

    async fn round_trip(&self, id: u64, request: Frame) -> Result<Response, SignerUnavailable> {
        let timeout = self.inner.options.timeout;
        let deadline = Instant::now() + timeout;
        let mut used: Option<Arc<Conn>> = None;
        let result = tokio::time::timeout_at(deadline, self.attempt(id, request, &mut used)).await;
        match result {
            Ok(r) => r,
            Err(_) => {
                // An answer overdue by a whole timeout means this connection is wedged (or the
                // signer is stalled): drop it so the next request starts afresh.
                if let Some(c) = used {
                    warn!(
                        id,
                        "no answer from the signer within {timeout:?}; dropping the connection"
                    );
                    c.close();
                }
                Err(SignerUnavailable::Timeout(timeout))
            }
        }
    }

    async fn attempt(
        &self,
        id: u64,
        request: Frame,
        used: &mut Option<Arc<Conn>>,
    ) -> Result<Response, SignerUnavailable> {
        let _permit = self
            .inner
            .in_flight
            .acquire()
            .await
            .map_err(|_| SignerUnavailable::ConnectionLost)?;
        let slot = self.inner.next_slot.fetch_add(1, Ordering::Relaxed) % self.inner.slots.len();
        // A pooled connection may have died since its last use (the signer restarted); signing
        // is deterministic and idempotent, so one retry on a fresh connection is safe.
        for _ in 0..2 {
            let (conn, fresh) = self.connection(slot).await?;
            *used = Some(conn.clone());
            let Some(rx) = conn.submit(id, request.clone()) else {
                if fresh {
                    return Err(SignerUnavailable::ConnectionLost);
                }
                continue;
            };
            let _guard = PendingGuard { conn: &conn, id };
            match rx.await {
                Ok(resp) => return Ok(resp),
                Err(_) if fresh => return Err(SignerUnavailable::ConnectionLost),
                Err(_) => continue,
            }
        }
        Err(SignerUnavailable::ConnectionLost)
    }

    /// The live connection of `slot`, connecting if there is none; `true` if it is new.
    async fn connection(&self, slot: usize) -> Result<(Arc<Conn>, bool), SignerUnavailable> {
        let mut guard = self.inner.slots[slot].lock().await;
        if let Some(c) = guard.as_ref()
            && c.is_alive()
        {
            return Ok((c.clone(), false));
        }
        let stream = UnixStream::connect(&self.inner.socket)
            .await
            .map_err(|source| SignerUnavailable::Connect {
                path: self.inner.socket.clone(),
                source,
            })?;
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = Arc::new(Conn {
            alive: AtomicBool::new(true),
            pending: Mutex::new(Some(HashMap::new())),
            outgoing: tx,
            tasks: Mutex::new(Vec::with_capacity(2)),
        });
        let reader = tokio::spawn(read_loop(rd, conn.clone())).abort_handle();
        let writer = tokio::spawn(write_loop(wr, rx, conn.clone())).abort_handle();
        conn.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend([reader, writer]);
        // If the connection died before the handles were stored, close() found none to abort.
        if !conn.is_alive() {
            conn.close();
        }
        if let Some(old) = guard.replace(conn.clone()) {
            old.close();
        }
        Ok((conn, true))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The connection tasks hold the connection, not the client: stop them explicitly.
        for slot in &mut self.slots {
            if let Some(c) = slot.get_mut().take() {
                c.close();
            }
        }
    }
}

impl std::fmt::Debug for SignerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerClient")
            .field("socket", &self.inner.socket)
            .field("public_key", &self.inner.public_key)
            .finish_non_exhaustive()
    }
}
