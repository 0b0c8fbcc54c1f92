//! The witness side of C2SP `tlog-witness` `add-checkpoint`: parse a request body, verify the
//! checkpoint against the log keys the witness trusts, decide against the latest checkpoint it
//! cosigned, and make the cosignature. Parse → verify → decide, no I/O: the caller (a
//! continuum notary) reads and writes the latest checkpoint atomically around [`decide`].
//!
//! Every refusal carries the HTTP status the spec gives it ([`WitnessError::status`]): 400 a
//! malformed body or an old size above the checkpoint's, 404 an unknown origin, 403 no valid
//! signature by a trusted key (or a trusted key's signature that fails), 409 an old size that is
//! not the latest cosigned one (the answer carries it), 422 a proof that does not verify, a
//! non-empty proof from size 0, a different root at the same size, or a size-0 checkpoint whose
//! root is not the empty tree's.
//!
//! What it does not do: hold state, log refusals, or witness logs whose checkpoints are not
//! this crate's three-line checkpoints (extension lines are refused, as
//! [`crate::tlog_checkpoint::open`] does).

use base64ct::{Base64, Encoding};
use thiserror::Error;

use crate::keys::{KeyPair, PublicKey};
use crate::merkle::{ConsistencyProof, Hash, TreeHasher, verify_consistency};
use crate::names::ChannelName;
use crate::note;
use crate::tlog_checkpoint::{self, CheckpointError, decimal};

/// Most consistency proof lines a request may have (the spec's limit).
pub const MAX_PROOF_LINES: usize = 63;
/// Most bytes of a request body: 63 proof lines, the old size line, and a note.
pub const MAX_BODY_BYTES: usize = 64 * 46 + note::MAX_NOTE_BYTES;

/// A parsed `add-checkpoint` body: nothing is verified yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the client believes the witness cosigned last.
    pub old: u64,
    /// The consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The checkpoint note, with its signatures.
    pub checkpoint: Vec<u8>,
}

/// Why a request was refused, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// 400: the body is not `old N`, proof lines, a blank line and a note; or old > size.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 404: the witness does not know this origin.
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    /// 403: no valid signature by a key trusted for the origin.
    #[error("no valid signature by a trusted key: {0}")]
    Forbidden(String),
    /// 409: the old size is not the latest cosigned size, which is given.
    #[error("the latest checkpoint cosigned for this log has size {latest}")]
    Conflict {
        /// The latest cosigned size (the body of the 409 answer).
        latest: u64,
    },
    /// 422: the checkpoint is not consistent with the latest cosigned one.
    #[error("not consistent with the latest cosigned checkpoint: {0}")]
    Unprocessable(String),
}

impl WitnessError {
    /// The HTTP status the spec gives this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::UnknownOrigin(_) => 404,
            Self::Forbidden(_) => 403,
            Self::Conflict { .. } => 409,
            Self::Unprocessable(_) => 422,
        }
    }
}

/// Parses an `add-checkpoint` body.
pub fn parse(body: &[u8]) -> Result<AddCheckpoint, WitnessError> {
    let bad = |m: &str| WitnessError::BadRequest(m.to_owned());
    if body.len() > MAX_BODY_BYTES {
        return Err(bad("the body is too large"));
    }
    let (head, checkpoint) = split_once(body, b"\n\n").ok_or_else(|| bad("no blank line"))?;
    let head = std::str::from_utf8(head).map_err(|_| bad("not UTF-8"))?;
    let mut lines = head.split('\n');
    let old = lines
        .next()
        .and_then(|l| l.strip_prefix("old "))
        .and_then(decimal)
        .ok_or_else(|| bad("the first line is not `old <size>`"))?;
    let mut proof = Vec::new();
    for line in lines {
        if proof.len() == MAX_PROOF_LINES {
            return Err(bad("more than 63 consistency proof lines"));
        }
        let hash: Hash = Base64::decode_vec(line)
            .ok()
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| bad("a proof line is not 32 bytes of base64"))?;
        proof.push(hash);
    }
    Ok(AddCheckpoint {
        old,
        proof,
        checkpoint: checkpoint.to_vec(),
    })
}

fn split_once<'a>(b: &'a [u8], sep: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let i = b.windows(sep.len()).position(|w| w == sep)?;
    Some((&b[..i], &b[i + sep.len()..]))
}

/// A checkpoint whose signature [`verify`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The log's origin.
    pub origin: ChannelName,
    /// Its size.
    pub size: u64,
    /// Its root.
    pub root: Hash,
    /// The signed text (what a cosignature signs).
    pub text: String,
    /// The whole note as received.
    pub note: String,
}

/// Checks the checkpoint's signature with the key `trusted` gives for its origin (404 when it
/// gives none, 403 when no valid signature by it is present), and its three lines (400).
pub fn verify(
    req: &AddCheckpoint,
    trusted: impl Fn(&ChannelName) -> Option<PublicKey>,
) -> Result<Signed, WitnessError> {
    let first = req
        .checkpoint
        .split(|&b| b == b'\n')
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .unwrap_or("");
    let origin = ChannelName::parse(first)
        .map_err(|_| WitnessError::UnknownOrigin(first.chars().take(128).collect()))?;
    let key =
        trusted(&origin).ok_or_else(|| WitnessError::UnknownOrigin(origin.as_str().into()))?;
    // Any note-level failure means no valid signature by the trusted key is present: 403, as
    // the spec says of a trusted key's bad signature ("such a note is malformed"). This
    // includes a signature line in non-canonical base64, which Go's decoder would read and
    // then fail to verify (litewitness answers 403 there too). A text that is not three
    // checkpoint lines is a bad request.
    let cp = tlog_checkpoint::open(&req.checkpoint, &key, &origin).map_err(|e| match e {
        CheckpointError::Note(_) => WitnessError::Forbidden(e.to_string()),
        other => WitnessError::BadRequest(other.to_string()),
    })?;
    let note = String::from_utf8_lossy(&req.checkpoint).into_owned();
    let text = tlog_checkpoint::text(&origin, cp.size(), cp.root());
    Ok(Signed {
        origin,
        size: cp.size(),
        root: *cp.root(),
        text,
        note,
    })
}

/// Decides a verified checkpoint against the latest one cosigned for its origin (`None`:
/// never): the spec's 400, 409 and 422 checks, in its order. `Ok` means: record `signed` as
/// the latest (atomically with reading `latest`) and cosign it.
pub fn decide<H: TreeHasher + ?Sized>(
    hasher: &H,
    req: &AddCheckpoint,
    signed: &Signed,
    latest: Option<(u64, Hash)>,
) -> Result<(), WitnessError> {
    if req.old > signed.size {
        return Err(WitnessError::BadRequest(format!(
            "old size {} is above the checkpoint's size {}",
            req.old, signed.size
        )));
    }
    let (latest_size, latest_root) = latest.unwrap_or((0, hasher.empty_root()));
    if req.old != latest_size {
        return Err(WitnessError::Conflict {
            latest: latest_size,
        });
    }
    if signed.size == 0 && signed.root != hasher.empty_root() {
        return Err(WitnessError::Unprocessable(
            "a checkpoint of size 0 must have the empty tree's root".into(),
        ));
    }
    if req.old == 0 {
        if !req.proof.is_empty() {
            return Err(WitnessError::Unprocessable(
                "a proof from size 0 must be empty".into(),
            ));
        }
        return Ok(());
    }
    if req.old == signed.size {
        if signed.root != latest_root || !req.proof.is_empty() {
            return Err(WitnessError::Unprocessable(
                "another root (or a proof) for the size already cosigned".into(),
            ));
        }
        return Ok(());
    }
    let proof = ConsistencyProof::new(req.proof.clone())
        .map_err(|e| WitnessError::Unprocessable(e.to_string()))?;
    verify_consistency(
        hasher,
        req.old,
        signed.size,
        &latest_root,
        &signed.root,
        &proof,
    )
    .map_err(|e| WitnessError::Unprocessable(format!("the consistency proof fails: {e}")))
}

/// The answer of a 200: the witness's `cosignature/v1` line over the checkpoint's text.
pub fn cosign(
    name: &str,
    key: &KeyPair,
    signed: &Signed,
    time: u64,
) -> Result<String, note::NoteError> {
    note::cosign(&signed.text, name, key, time.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{Blake2b256, MemoryStore, prove_consistency, root_from_leaf_hashes};

    struct Log {
        key: KeyPair,
        origin: ChannelName,
        store: MemoryStore,
        leaves: Vec<Hash>,
    }

    impl Log {
        fn new() -> Self {
            Self {
                key: KeyPair::generate(),
                origin: ChannelName::parse("plugins.example.org").unwrap(),
                store: MemoryStore::new(),
                leaves: Vec::new(),
            }
        }
        fn grow(&mut self, n: usize) {
            for _ in 0..n {
                let e = format!("entry {}", self.leaves.len());
                self.store.append(&Blake2b256, e.as_bytes()).unwrap();
                self.leaves.push(Blake2b256.hash_leaf(e.as_bytes()));
            }
        }
        fn root(&self, size: u64) -> Hash {
            root_from_leaf_hashes(&Blake2b256, &self.leaves[..size as usize]).unwrap()
        }
        fn body(&self, old: u64, size: u64) -> Vec<u8> {
            let mut b = format!("old {old}\n");
            if old > 0 && old < size {
                for h in prove_consistency(&Blake2b256, old, size, &self.store)
                    .unwrap()
                    .hashes()
                {
                    b.push_str(&Base64::encode_string(h));
                    b.push('\n');
                }
            }
            b.push('\n');
            b.push_str(
                &tlog_checkpoint::sign(&self.origin, size, &self.root(size), &self.key).unwrap(),
            );
            b.into_bytes()
        }
        fn run(&self, body: &[u8], latest: Option<(u64, Hash)>) -> Result<Signed, WitnessError> {
            let req = parse(body)?;
            let signed = verify(&req, |o| (o == &self.origin).then(|| self.key.public()))?;
            decide(&Blake2b256, &req, &signed, latest)?;
            Ok(signed)
        }
    }

    #[test]
    fn a_consistent_checkpoint_is_accepted_and_cosigned() {
        let mut log = Log::new();
        log.grow(10);
        let first = log.run(&log.body(0, 4), None).unwrap();
        assert_eq!(first.size, 4);
        let next = log.run(&log.body(4, 10), Some((4, log.root(4)))).unwrap();
        let witness = KeyPair::generate();
        let line = cosign("witness.example", &witness, &next, 1_700_000_000).unwrap();
        let v = note::VerifierKey::cosignature_v1("witness.example", &witness.public()).unwrap();
        let both = format!("{}{line}", next.note);
        let opened = note::open(both.as_bytes(), &[v]).unwrap();
        assert_eq!(opened.verified[0].time, Some(1_700_000_000));
        // The same checkpoint again, from its own size: accepted (no proof needed).
        log.run(&log.body(10, 10), Some((10, log.root(10))))
            .unwrap();
    }

    #[test]
    fn each_refusal_has_the_spec_s_status() {
        let mut log = Log::new();
        log.grow(10);
        let latest = Some((4, log.root(4)));
        let status = |r: Result<Signed, WitnessError>| r.unwrap_err().status();
        // 400: malformed bodies, old above the size.
        for body in [
            &b"old 4\n"[..],
            b"old 04\n\nx",
            b"new 4\n\nx",
            b"old 4\nnot base64\n\nx",
        ] {
            assert_eq!(status(log.run(body, latest)), 400, "{body:?}");
        }
        let mut many = String::from("old 4\n");
        for _ in 0..64 {
            many.push_str(&Base64::encode_string(&[0u8; 32]));
            many.push('\n');
        }
        many.push('\n');
        assert_eq!(status(log.run(many.as_bytes(), latest)), 400);
        assert_eq!(
            status(log.run(&log.body(10, 4), Some((10, log.root(10))))),
            400
        );
        // 404: another origin.
        let mut other = Log::new();
        other.origin = ChannelName::parse("other.example.org").unwrap();
        other.grow(4);
        assert_eq!(status(log.run(&other.body(0, 4), None)), 404);
        // 403: signed by another key under the right name.
        let mut forger = Log::new();
        forger.grow(4);
        assert_eq!(status(log.run(&forger.body(0, 4), None)), 403);
        // 409: an old size that is not the latest, with the latest in the answer.
        assert_eq!(
            log.run(&log.body(2, 10), latest).unwrap_err(),
            WitnessError::Conflict { latest: 4 }
        );
        assert_eq!(
            log.run(&log.body(4, 10), None).unwrap_err(),
            WitnessError::Conflict { latest: 0 }
        );
        // 422: a proof that fails (a fork: same size 4, other root), a proof from 0.
        let mut fork = Log::new();
        fork.key = KeyPair::from_seed(&log.key.seed()).unwrap();
        fork.grow(10);
        fork.leaves[1] = [7; 32];
        assert_eq!(status(log.run(&fork.body(4, 10), latest)), 422);
        let mut with_proof = log.body(0, 10);
        with_proof.splice(
            6..6,
            format!("{}\n", Base64::encode_string(&[1u8; 32])).into_bytes(),
        );
        assert_eq!(status(log.run(&with_proof, None)), 422);
        // 422: another root at the size already cosigned.
        assert_eq!(status(log.run(&log.body(4, 4), Some((4, [9; 32])))), 422);
    }

    #[test]
    fn a_size_zero_checkpoint_must_have_the_empty_root() {
        let log = Log::new();
        let good = log.run(&log.body(0, 0), None).unwrap();
        assert_eq!(good.root, Blake2b256.empty_root());
        let bad = tlog_checkpoint::sign(&log.origin, 0, &[1; 32], &log.key).unwrap();
        let body = format!("old 0\n\n{bad}");
        assert_eq!(log.run(body.as_bytes(), None).unwrap_err().status(), 422);
    }
}
