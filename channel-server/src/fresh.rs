//! Batched freshness answers (`GET /v1/fresh?nonce=`): one channel signature answers every
//! nonce that arrived while the previous batch was being signed.
//!
//! The format is [`keyggdrasil::batch`]'s (docs/protocol.md, "Batched freshness answers"). This
//! module only collects nonces and hands out answers:
//! - one task, started on the first request, takes the first waiting nonce and then every nonce
//!   already queued, up to `max_fresh_batch` (default 256);
//! - it reads the log head once, builds the batch tree, and asks the signer for one signature
//!   over the [`BatchHead`] under [`Context::ChannelBatch`] (the signer client checks that one
//!   signature against the pinned key: one verification per batch, not per request);
//! - each waiting request gets the signed head, its index and its path.
//!
//! The window is adaptive rather than a fixed timer: while one batch is at the signer, the next
//! one fills. At low load a nonce is signed at once (a batch of one; no added wait); under load
//! the batches grow with the signer's round trip. A nonce is in exactly one batch, in arrival
//! order, so no site can choose its index. What it does not do: keep answers, dedupe nonces
//! (two sites sending the same nonce share a leaf value, which tells each nothing new), or
//! answer with entries (`/v1/updates`, tiles and `/v1/entries` do that).

use std::sync::{Arc, OnceLock};

use keyggdrasil::batch::{BatchHead, BatchTree, BatchedAnswer};
use keyggdrasil::names::ChannelName;
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{Nonce, Signed, TreeHash, WIRE_VERSION};
use tokio::sync::{mpsc, oneshot};

use crate::api::{PayloadSigner, SignerDown};
use crate::writer::WriterHandle;

/// Requests waiting for the batcher before new ones wait to be queued.
const QUEUE: usize = 8192;

type Reply = oneshot::Sender<Result<BatchedAnswer, SignerDown>>;

/// The batcher's handle: cheap to share; its task starts on first use inside the runtime.
pub struct Batcher {
    inner: OnceLock<mpsc::Sender<(Nonce, Reply)>>,
    writer: WriterHandle,
    signer: Arc<dyn PayloadSigner>,
    origin: ChannelName,
    max_batch: usize,
}

impl Batcher {
    /// A batcher over the writer's head, signing with `signer`, at most `max_batch` nonces a
    /// batch (clamped to `1..=MAX_BATCH`).
    pub fn new(
        writer: WriterHandle,
        signer: Arc<dyn PayloadSigner>,
        origin: ChannelName,
        max_batch: usize,
    ) -> Self {
        let most = usize::try_from(keyggdrasil::batch::MAX_BATCH).unwrap_or(usize::MAX);
        Self {
            inner: OnceLock::new(),
            writer,
            signer,
            origin,
            max_batch: max_batch.clamp(1, most),
        }
    }

    /// The answer for `nonce`, signed in the next batch. Fails only if the signer is down (or
    /// the batcher stopped, which happens only at shutdown).
    pub async fn answer(&self, nonce: Nonce) -> Result<BatchedAnswer, SignerDown> {
        let tx = self.inner.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(run(
                rx,
                self.writer.clone(),
                self.signer.clone(),
                self.origin.clone(),
                self.max_batch,
            ));
            tx
        });
        let (reply, answer) = oneshot::channel();
        tx.send((nonce, reply)).await.map_err(|_| SignerDown)?;
        answer.await.map_err(|_| SignerDown)?
    }
}

async fn run(
    mut rx: mpsc::Receiver<(Nonce, Reply)>,
    writer: WriterHandle,
    signer: Arc<dyn PayloadSigner>,
    origin: ChannelName,
    max_batch: usize,
) {
    let mut waiting = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut waiting, max_batch).await > 0 {
        let (nonces, replies): (Vec<Nonce>, Vec<Reply>) = waiting.drain(..).unzip();
        match sign_batch(&nonces, &writer, signer.as_ref(), &origin).await {
            Ok((head, tree)) => {
                for (index, reply) in replies.into_iter().enumerate() {
                    let index = index as u64;
                    let answer = tree.path(index).map(|path| BatchedAnswer {
                        head: head.clone(),
                        index,
                        path,
                    });
                    // A path exists for every index of a built tree; a requester that gave up
                    // (timed out) just drops its answer.
                    if let Ok(answer) = answer {
                        let _ = reply.send(Ok(answer));
                    }
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e));
                }
            }
        }
    }
}

async fn sign_batch(
    nonces: &[Nonce],
    writer: &WriterHandle,
    signer: &dyn PayloadSigner,
    origin: &ChannelName,
) -> Result<(Signed, BatchTree), SignerDown> {
    // `recv_many` gives 1..=max_batch nonces, so the tree always builds.
    let tree = BatchTree::new(nonces).map_err(|e| {
        tracing::error!(error = %e, "could not build a batch");
        SignerDown
    })?;
    let log = writer.head();
    let head = BatchHead {
        v: WIRE_VERSION,
        origin: origin.clone(),
        time: crate::api::now_secs(),
        size: log.size,
        root: TreeHash(log.root),
        batch_size: tree.len(),
        batch_root: TreeHash(tree.root()),
    };
    let payload = serde_json::to_string(&head).map_err(|e| {
        tracing::error!(error = %e, "could not serialise a batch head");
        SignerDown
    })?;
    let signature = signer
        .sign(Context::ChannelBatch, payload.clone().into_bytes())
        .await?;
    Ok((Signed::from_parts(payload, signature), tree))
}
