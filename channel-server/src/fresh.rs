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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use keyggdrasil::batch::{BatchHead, BatchTree, BatchedAnswer};
use keyggdrasil::names::ChannelName;
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{Nonce, Signed, TreeHash, WIRE_VERSION};
use tokio::sync::{mpsc, oneshot};

use crate::api::{PayloadSigner, SignerDown};
use crate::writer::Head;

/// Reads the log's current head (the writer's, in the server).
pub type HeadSource = Arc<dyn Fn() -> Head + Send + Sync>;

/// Requests waiting for the batcher before new ones wait to be queued.
const QUEUE: usize = 8192;

type Reply = oneshot::Sender<Result<(Arc<SignedBatch>, u64), SignerDown>>;

/// One signed batch, shared by the requests it answers: each builds its own path and body, so
/// the per-answer work runs on the request's own thread, not in the batcher's one task.
pub struct SignedBatch {
    /// The signed head as it appears in every answer (`Signed` JSON, serialised once).
    head_json: String,
    head: Signed,
    tree: BatchTree,
}

impl SignedBatch {
    /// The answer for the nonce at `index`.
    pub fn answer(&self, index: u64) -> Option<BatchedAnswer> {
        Some(BatchedAnswer {
            head: self.head.clone(),
            index,
            path: self.tree.path(index).ok()?,
        })
    }

    /// The whole HTTP body (`{"status":"ok","data":<answer>}`) for the nonce at `index`, the
    /// same bytes as serialising [`Self::answer`] in its envelope, with the head serialised
    /// once per batch instead of once per answer.
    pub fn envelope(&self, index: u64) -> Option<Vec<u8>> {
        let path = self.tree.path(index).ok()?;
        let path = serde_json::to_string(&path).ok()?;
        Some(
            format!(
                r#"{{"status":"ok","data":{{"head":{},"index":{index},"path":{path}}}}}"#,
                self.head_json
            )
            .into_bytes(),
        )
    }
}

/// The batcher's handle: cheap to share; its task starts on first use inside the runtime.
pub struct Batcher {
    inner: OnceLock<mpsc::Sender<(Nonce, Reply)>>,
    head: HeadSource,
    signer: Arc<dyn PayloadSigner>,
    origin: ChannelName,
    max_batch: usize,
    counts: Arc<Counts>,
}

/// Answers given and signatures made (for `/v1/stats`).
#[derive(Default)]
struct Counts {
    answers: AtomicU64,
    batches: AtomicU64,
}

impl Batcher {
    /// A batcher over the log head `head` reads, signing with `signer`, at most `max_batch`
    /// nonces a batch (clamped to `1..=MAX_BATCH`).
    pub fn new(
        head: HeadSource,
        signer: Arc<dyn PayloadSigner>,
        origin: ChannelName,
        max_batch: usize,
    ) -> Self {
        let most = usize::try_from(keyggdrasil::batch::MAX_BATCH).unwrap_or(usize::MAX);
        Self {
            inner: OnceLock::new(),
            head,
            signer,
            origin,
            max_batch: max_batch.clamp(1, most),
            counts: Arc::default(),
        }
    }

    /// Answers given since start.
    pub fn answers(&self) -> u64 {
        self.counts.answers.load(Ordering::Relaxed)
    }

    /// Batches signed since start.
    pub fn batches(&self) -> u64 {
        self.counts.batches.load(Ordering::Relaxed)
    }

    /// The batch that signed `nonce` and its index there: the next batch. Fails only if the
    /// signer is down (or the batcher stopped, which happens only at shutdown).
    pub async fn answer(&self, nonce: Nonce) -> Result<(Arc<SignedBatch>, u64), SignerDown> {
        let tx = self.inner.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(run(
                rx,
                self.head.clone(),
                self.signer.clone(),
                self.origin.clone(),
                self.max_batch,
                self.counts.clone(),
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
    head: HeadSource,
    signer: Arc<dyn PayloadSigner>,
    origin: ChannelName,
    max_batch: usize,
    counts: Arc<Counts>,
) {
    // One batch at the signer at a time: a second in flight halved the batches and lost
    // throughput (benchmarks-channel.md). The batch is signed and answered in a task of its own
    // rather than in this loop: measured, that cut serve's CPU per answer at `-c64` from about
    // 20 us to 13 us, with the same batch sizes (the answers' wake-ups no longer queue behind
    // this long-lived task).
    let in_flight = Arc::new(tokio::sync::Semaphore::new(1));
    let mut waiting = Vec::with_capacity(max_batch);
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        if rx.recv_many(&mut waiting, max_batch).await == 0 {
            return;
        }
        let (nonces, replies): (Vec<Nonce>, Vec<Reply>) = waiting.drain(..).unzip();
        let (head, signer, origin, counts) =
            (head.clone(), signer.clone(), origin.clone(), counts.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match sign_batch(&nonces, &head, signer.as_ref(), &origin).await {
                Ok(batch) => {
                    counts.batches.fetch_add(1, Ordering::Relaxed);
                    counts
                        .answers
                        .fetch_add(replies.len() as u64, Ordering::Relaxed);
                    let batch = Arc::new(batch);
                    for (index, reply) in replies.into_iter().enumerate() {
                        // A requester that gave up (timed out) just drops its answer.
                        let _ = reply.send(Ok((batch.clone(), index as u64)));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e));
                    }
                }
            }
        });
    }
}

async fn sign_batch(
    nonces: &[Nonce],
    head: &HeadSource,
    signer: &dyn PayloadSigner,
    origin: &ChannelName,
) -> Result<SignedBatch, SignerDown> {
    // `recv_many` gives 1..=max_batch nonces, so the tree always builds.
    let tree = BatchTree::new(nonces).map_err(|e| {
        tracing::error!(error = %e, "could not build a batch");
        SignerDown
    })?;
    let log = head();
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
    let head = Signed::from_parts(payload, signature);
    let head_json = serde_json::to_string(&head).map_err(|e| {
        tracing::error!(error = %e, "could not serialise a signed batch head");
        SignerDown
    })?;
    Ok(SignedBatch {
        head_json,
        head,
        tree,
    })
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use keyggdrasil::batch::verify_batched;
    use keyggdrasil::keys::{KeyPair, Signature};
    use keyggdrasil::limits::Limits;
    use tokio::sync::Semaphore;

    use super::*;

    /// Signs with a test key, but each signature waits for a permit of `gate`: the test holds
    /// the signer busy while it queues requests.
    struct GatedSigner {
        key: KeyPair,
        gate: Semaphore,
        calls: AtomicUsize,
    }

    impl PayloadSigner for GatedSigner {
        fn sign(
            &self,
            context: Context,
            payload: Vec<u8>,
        ) -> Pin<Box<dyn Future<Output = Result<Signature, SignerDown>> + Send + '_>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                let permit = self.gate.acquire().await.map_err(|_| SignerDown)?;
                permit.forget();
                Ok(keyggdrasil::protocol::sign(&self.key, context, &payload))
            })
        }
        fn sign_note(
            &self,
            text: String,
        ) -> Pin<Box<dyn Future<Output = Result<Signature, SignerDown>> + Send + '_>> {
            Box::pin(async move { Ok(self.key.sign_raw(text.as_bytes())) })
        }
        fn is_up(&self) -> bool {
            true
        }
    }

    fn origin() -> ChannelName {
        ChannelName::parse("test.channel").unwrap()
    }

    async fn wait_until(what: impl Fn() -> bool) {
        while !what() {
            tokio::task::yield_now().await;
        }
    }

    /// The nonces that arrive while one batch is at the signer become the next batch, in
    /// arrival order, at most `max_batch` of them; each answer verifies for its own nonce only.
    #[tokio::test(flavor = "current_thread")]
    async fn the_nonces_queued_while_signing_share_the_next_signature() {
        let signer = Arc::new(GatedSigner {
            key: KeyPair::generate(),
            gate: Semaphore::new(0),
            calls: AtomicUsize::new(0),
        });
        let head: HeadSource = Arc::new(|| Head {
            size: 42,
            root: [5; 32],
        });
        let batcher = Arc::new(Batcher::new(head, signer.clone(), origin(), 8));
        let nonces: Vec<Nonce> = (0..11).map(|_| Nonce::generate()).collect();

        let first = {
            let (b, n) = (batcher.clone(), nonces[0]);
            tokio::spawn(async move { b.answer(n).await })
        };
        wait_until(|| signer.calls.load(Ordering::SeqCst) == 1).await;
        // The first batch is at the signer; ten more arrive, in this order.
        let mut rest = Vec::new();
        for (i, n) in nonces[1..].iter().enumerate() {
            let (b, n) = (batcher.clone(), *n);
            rest.push(tokio::spawn(async move { b.answer(n).await }));
            let tx = batcher.inner.get().unwrap();
            wait_until(|| tx.max_capacity() - tx.capacity() == i + 1).await;
        }
        signer.gate.add_permits(3);
        let limits = Limits::default();
        let now = crate::api::now_secs();
        let mut answers = Vec::new();
        for r in std::iter::once(first).chain(rest) {
            let (batch, index) = r.await.unwrap().unwrap();
            let answer = batch.answer(index).unwrap();
            // The hand-made body is exactly the serialised envelope.
            let envelope = keyggdrasil::wire::Envelope::Ok {
                data: answer.clone(),
            };
            assert_eq!(
                batch.envelope(index).unwrap(),
                serde_json::to_vec(&envelope).unwrap()
            );
            answers.push(answer);
        }
        assert_eq!(signer.calls.load(Ordering::SeqCst), 3);
        let heads: Vec<BatchHead> = answers
            .iter()
            .map(|a| serde_json::from_str(&a.head.payload).unwrap())
            .collect();
        // Batches of 1, then 8 (the most), then the 2 left.
        let shape: Vec<(u64, u64)> = heads
            .iter()
            .zip(&answers)
            .map(|(h, a)| (h.batch_size, a.index))
            .collect();
        assert_eq!(
            shape,
            vec![
                (1, 0),
                (8, 0),
                (8, 1),
                (8, 2),
                (8, 3),
                (8, 4),
                (8, 5),
                (8, 6),
                (8, 7),
                (2, 0),
                (2, 1)
            ]
        );
        assert!(answers[1..9].iter().all(|a| a.head == answers[1].head));
        for (a, n) in answers.iter().zip(&nonces) {
            let v = verify_batched(a, &signer.key.public(), &origin(), n, now, &limits).unwrap();
            assert_eq!((v.size(), v.root().0), (42, [5; 32]));
        }
        // Another site's answer in the same batch is not an answer to this nonce.
        assert!(
            verify_batched(
                &answers[2],
                &signer.key.public(),
                &origin(),
                &nonces[1],
                now,
                &limits
            )
            .is_err()
        );
    }

    /// A signer that is down fails every request of its batch; the next batch is tried anew.
    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_signature_fails_its_batch_only() {
        let signer = Arc::new(GatedSigner {
            key: KeyPair::generate(),
            gate: Semaphore::new(0),
            calls: AtomicUsize::new(0),
        });
        signer.gate.close();
        let head: HeadSource = Arc::new(|| Head {
            size: 0,
            root: [0; 32],
        });
        let batcher = Batcher::new(head, signer.clone(), origin(), 256);
        assert!(matches!(
            batcher.answer(Nonce::generate()).await,
            Err(SignerDown)
        ));
        assert!(matches!(
            batcher.answer(Nonce::generate()).await,
            Err(SignerDown)
        ));
        assert_eq!(signer.calls.load(Ordering::SeqCst), 2);
    }
}
