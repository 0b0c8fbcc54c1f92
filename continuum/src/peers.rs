//! Asking peer notaries whether they saw the same root (update cycle, step 3).
//!
//! [`verify_with_peers`] shuffles the trusted peers with the OS CSPRNG and asks them from a
//! pool of at most `concurrency` threads, each request with a fresh nonce and the short
//! timeouts of the [`Http`] client it is given. It classifies every answer and feeds
//! keyggdrasil's [`PeerTally`](keyggdrasil::peers::PeerTally) in the order answers arrive. The
//! deciding loop hands out the next peer only after it recorded an answer that left the
//! decision pending, so at most `concurrency` requests are in flight and none starts once the
//! tally has decided. Requests still in flight then are abandoned: their threads finish on their
//! own (bounded by the client's timeouts, and they may overlap the next call for a few
//! seconds) and their answers are ignored.
//!
//! Classification of one peer's answer:
//! - a signed `ok` (signature with the peer's pinned key, channel, size, nonce and time
//!   checked by [`verify_notary_answer`]) with the same root: [`PeerAnswer::Agree`]; with
//!   another root: [`PeerAnswer::Disagree`];
//! - a signed `fork_detected`: [`PeerAnswer::ForkDetected`] only if its evidence holds channel
//!   statements that verify with *our* pinned channel key and contradict each other
//!   ([`check_evidence`]); otherwise [`PeerAnswer::NoAnswer`] (a peer cannot block a site by
//!   merely claiming a fork);
//! - a signed `behind`: [`PeerAnswer::Behind`] (counts as no answer);
//! - anything else: [`PeerAnswer::NoAnswer`], sorted for the operator into
//!   - [`PeerLineOutcome::Unreachable`]: no HTTP status line arrived (refused, reset, DNS, TLS,
//!     timeout), or the peer said it is overloaded (HTTP 429, 502, 503, 504, or the codes
//!     `rate_limited`, `busy`, `timeout`);
//!   - [`PeerLineOutcome::Bogus`]: the peer answered, and the answer is unusable: not HTTP,
//!     cut short, not an envelope, another HTTP status or error code (`unknown_channel`: it
//!     does not follow the channel), a bad signature (the pinned key is not the peer's),
//!     wrong nonce, stale or future time, another channel or size, unprovable fork evidence.
//!
//!   Both count the same in the tally (decision 9: a peer that cannot be verified never
//!   counts as a disagreement), but a bogus peer needs a person (a wrong key, a peer that
//!   does not follow the channel, or someone tampering), where an unreachable one may be
//!   back next hour; `status` warns about bogus peers.
//!
//! The report has one line per peer for the run log: its URL (with any `user:password@`
//! removed), what it answered, and why. Nothing secret is in it.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use keyggdrasil::limits::Limits;
use keyggdrasil::peers::{Decision, NoPeers, PeerAnswer, PeerRule, PeerRuleError, RejectReason};
use keyggdrasil::wire::{
    Envelope, ErrorCode, Nonce, NotaryRequest, NotaryStatus, Signed, WireError,
    verify_notary_answer,
};

use crate::config::{ChannelConfig, PeerConfig};
use crate::error::ErrorKind;
use crate::notary::{NOTARY_PATH, check_evidence};
use crate::transport::Http;

/// How peer verification ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerOutcome {
    /// Enough peers agreed.
    Accepted,
    /// No peers are configured and the operator allowed that: the channel alone is trusted.
    AcceptedWithoutPeers,
    /// The peer rule rejected the root.
    Rejected(RejectReason),
    /// No peers are configured and no override was given.
    NoPeers(PeerRuleError),
}

/// What one peer did, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerLineOutcome {
    /// Same root.
    Agree,
    /// Another root.
    Disagree,
    /// Verified fork evidence.
    ForkDetected,
    /// Has not observed that size and could not reach the channel.
    Behind,
    /// Could not be reached (or said it is overloaded).
    Unreachable,
    /// Answered, but with something unusable (see the module docs).
    Bogus,
    /// Asked, but the decision came before its answer.
    Abandoned,
    /// Not asked: the decision came first.
    NotAsked,
}

impl PeerLineOutcome {
    fn as_str(self) -> &'static str {
        match self {
            PeerLineOutcome::Agree => "agree",
            PeerLineOutcome::Disagree => "DISAGREE",
            PeerLineOutcome::ForkDetected => "FORK DETECTED",
            PeerLineOutcome::Behind => "behind",
            PeerLineOutcome::Unreachable => "unreachable",
            PeerLineOutcome::Bogus => "BOGUS",
            PeerLineOutcome::Abandoned => "abandoned",
            PeerLineOutcome::NotAsked => "not asked",
        }
    }
}

impl PeerLineOutcome {
    /// The name used in the run log, `update --json` and the site database.
    pub fn name(self) -> &'static str {
        self.as_str()
    }

    /// What the peer rule counts: both kinds of failure are "no answer".
    fn answer(self) -> PeerAnswer {
        match self {
            PeerLineOutcome::Agree => PeerAnswer::Agree,
            PeerLineOutcome::Disagree => PeerAnswer::Disagree,
            PeerLineOutcome::ForkDetected => PeerAnswer::ForkDetected,
            PeerLineOutcome::Behind => PeerAnswer::Behind,
            PeerLineOutcome::Unreachable
            | PeerLineOutcome::Bogus
            | PeerLineOutcome::Abandoned
            | PeerLineOutcome::NotAsked => PeerAnswer::NoAnswer,
        }
    }
}

/// One peer's line in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLine {
    /// The peer's URL, without credentials.
    pub url: String,
    /// What it did.
    pub outcome: PeerLineOutcome,
    /// Why, in a few words (server-provided text is escaped and truncated).
    pub detail: String,
}

impl std::fmt::Display for PeerLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.url, self.outcome.as_str())?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// A peer that failed in a run, for the update report and `status` (one per peer per run).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerProblem {
    /// The peer's URL, without credentials.
    pub url: String,
    /// Why, the first time it failed in the run.
    pub detail: String,
}

/// The result of asking the peers about one root.
#[derive(Debug, Clone)]
pub struct PeerReport {
    /// How it ended.
    pub outcome: PeerOutcome,
    /// The thresholds used (none when no peers were refused).
    pub rule: Option<PeerRule>,
    /// Agreements counted.
    pub agreed: usize,
    /// Failures counted (unreachable, bogus or behind).
    pub failed: usize,
    /// Of the failures, peers that could not be reached.
    pub unreachable: usize,
    /// Of the failures, peers whose answer was unusable.
    pub bogus: usize,
    /// Answers counted, in arrival order.
    pub answered: usize,
    /// One line per peer: answers in arrival order, then those abandoned or not asked.
    pub lines: Vec<PeerLine>,
}

impl PeerReport {
    /// True if the root may be accepted.
    pub fn accepted(&self) -> bool {
        matches!(
            self.outcome,
            PeerOutcome::Accepted | PeerOutcome::AcceptedWithoutPeers
        )
    }

    /// True if a peer contradicted the channel (another root, or verified fork evidence): a
    /// verification failure, as opposed to not reaching enough peers.
    pub fn contradicted(&self) -> bool {
        matches!(
            self.outcome,
            PeerOutcome::Rejected(RejectReason::Disagreement | RejectReason::ForkDetected)
        )
    }

    /// One line summing up the decision.
    pub fn summary(&self) -> String {
        let counts = format!(
            "{} agreed, {} failed ({} unreachable, {} bogus), {} answers",
            self.agreed, self.failed, self.unreachable, self.bogus, self.answered
        );
        match &self.outcome {
            PeerOutcome::Accepted => format!(
                "peers confirmed the root ({counts}; {} needed)",
                self.rule.map(|r| r.required).unwrap_or(0)
            ),
            PeerOutcome::AcceptedWithoutPeers => {
                "NO PEERS: the root is trusted on the channel's word alone (override)".to_owned()
            }
            PeerOutcome::Rejected(r) => format!("peers did not confirm the root: {r} ({counts})"),
            PeerOutcome::NoPeers(e) => e.to_string(),
        }
    }
}

/// Removes `user:password@` from a URL for logs and messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://{}{path}", &authority[at + 1..]),
        None => url.to_owned(),
    }
}

/// An overloaded or restarting peer: an outage, not a lie.
fn is_outage_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Asks one peer and classifies its answer (see the module docs).
fn ask(
    http: &Http,
    peer: &PeerConfig,
    channel: &ChannelConfig,
    size: u64,
    root: &[u8; 32],
    now: u64,
    limits: &Limits,
) -> (PeerLineOutcome, String) {
    use PeerLineOutcome::Bogus;
    let request = NotaryRequest {
        channel: channel.name.clone(),
        size,
        nonce: Nonce::generate(),
    };
    let signed = match fetch_signed(http, &peer.url, &request, limits) {
        Ok(s) => s,
        Err(f) => return (f.outcome, f.detail),
    };
    let payload = match verify_notary_answer(&signed, &peer.key, &request, now, limits) {
        Ok(p) => p,
        Err(e) => return (Bogus, e.to_string()),
    };
    match payload.status {
        NotaryStatus::Ok { root: theirs } if &theirs.0 == root => {
            (PeerLineOutcome::Agree, String::new())
        }
        NotaryStatus::Ok { root: theirs } => (
            PeerLineOutcome::Disagree,
            format!("its root at size {size} is {}", hex::encode(theirs.0)),
        ),
        NotaryStatus::Behind { observed } => (
            PeerLineOutcome::Behind,
            format!("it has observed {observed} entries"),
        ),
        NotaryStatus::ForkDetected { evidence } => {
            match check_evidence(&evidence, &channel.name, &channel.key, limits) {
                Ok(c) => (
                    PeerLineOutcome::ForkDetected,
                    format!("verified evidence: {c}"),
                ),
                Err(e) => (
                    Bogus,
                    format!("claims a fork, but its evidence does not prove one: {e}"),
                ),
            }
        }
    }
}

/// Why [`fetch_signed`] got no envelope to check.
struct AskFailure {
    /// Unreachable or bogus.
    outcome: PeerLineOutcome,
    /// Why, for people.
    detail: String,
    /// The peer said it does not follow the channel.
    unknown_channel: bool,
}

impl From<(PeerLineOutcome, String)> for AskFailure {
    fn from((outcome, detail): (PeerLineOutcome, String)) -> Self {
        Self {
            outcome,
            detail,
            unknown_channel: false,
        }
    }
}

/// Posts `request` to the peer's notary endpoint and opens the envelope of its answer; the
/// signature is still to be checked. On failure: unreachable or bogus, and why.
fn fetch_signed(
    http: &Http,
    peer_url: &str,
    request: &NotaryRequest,
    limits: &Limits,
) -> Result<Signed, AskFailure> {
    fetch_signed_inner(http, peer_url, request, limits).map_err(|(f, unknown)| AskFailure {
        unknown_channel: unknown,
        ..f.into()
    })
}

fn fetch_signed_inner(
    http: &Http,
    peer_url: &str,
    request: &NotaryRequest,
    limits: &Limits,
) -> Result<Signed, ((PeerLineOutcome, String), bool)> {
    use PeerLineOutcome::{Bogus, Unreachable};
    let body = serde_json::to_vec(request).map_err(|_| {
        (
            (Unreachable, "could not encode the request".to_owned()),
            false,
        )
    })?;
    let url = format!("{}{NOTARY_PATH}", peer_url.trim_end_matches('/'));
    let limit = limits.max_small_response_bytes + 4096;
    let resp = match http.post_json(&url, &body, limit) {
        Ok(r) => r,
        Err(e) if e.is_malformed() => return Err(((Bogus, redact_url(&e.to_string())), false)),
        Err(e) => return Err(((Unreachable, redact_url(&e.to_string())), false)),
    };
    let status = resp.status;
    if is_outage_status(status) {
        return Err((
            (
                Unreachable,
                format!("HTTP {status}: the peer is overloaded or restarting"),
            ),
            false,
        ));
    }
    match Envelope::<Signed>::open(&resp.body, limit) {
        Ok(s) if (200..300).contains(&status) => Ok(s),
        Ok(_) => Err((
            (Bogus, format!("HTTP {status} with an \"ok\" answer")),
            false,
        )),
        Err(WireError::Remote { code, message })
            if matches!(
                code,
                ErrorCode::RateLimited | ErrorCode::Busy | ErrorCode::Timeout
            ) =>
        {
            Err((
                (
                    Unreachable,
                    format!("HTTP {status} {code}: {}", shown(&message)),
                ),
                false,
            ))
        }
        Err(WireError::Remote { code, .. }) if code == ErrorCode::UnknownChannel => Err((
            (
                Bogus,
                format!(
                    "HTTP {status} {code}: it does not follow channel {}; ask its operator to add the channel, or remove the peer (continuum peers remove URL)",
                    request.channel.as_str()
                ),
            ),
            true,
        )),
        Err(WireError::Remote { code, message }) => Err((
            (Bogus, format!("HTTP {status} {code}: {}", shown(&message))),
            false,
        )),
        Err(e) => Err((
            (
                Bogus,
                format!(
                    "HTTP {status}, {} bytes that are not a notary answer: {e}",
                    resp.body.len()
                ),
            ),
            false,
        )),
    }
}

/// Server-provided text for a message: control characters escaped, at most 200 characters.
fn shown(text: &str) -> String {
    text.chars()
        .take(200)
        .flat_map(char::escape_default)
        .collect()
}

/// Asks `peers` (see the module docs) whether they saw `root` at `size` of `channel`, and
/// decides with keyggdrasil's peer rule. `http` should have short per-request timeouts;
/// `now` is the local Unix time used to check the answers' timestamps; `concurrency` is the
/// most requests in flight at once (0 is taken as 1).
#[allow(clippy::too_many_arguments)]
pub fn verify_with_peers(
    http: &Http,
    peers: &[PeerConfig],
    channel: &ChannelConfig,
    size: u64,
    root: &[u8; 32],
    now: u64,
    limits: &Limits,
    concurrency: usize,
    no_peers: NoPeers,
) -> PeerReport {
    let rule = match PeerRule::new(peers.len(), no_peers) {
        Ok(r) => r,
        Err(e) => {
            return PeerReport {
                outcome: PeerOutcome::NoPeers(e),
                rule: None,
                agreed: 0,
                failed: 0,
                unreachable: 0,
                bogus: 0,
                answered: 0,
                lines: Vec::new(),
            };
        }
    };
    let mut tally = rule.tally();
    if peers.is_empty() {
        return PeerReport {
            outcome: PeerOutcome::AcceptedWithoutPeers,
            rule: Some(rule),
            agreed: 0,
            failed: 0,
            unreachable: 0,
            bogus: 0,
            answered: 0,
            lines: Vec::new(),
        };
    }

    let mut order: Vec<usize> = (0..peers.len()).collect();
    keyggdrasil::os::random::shuffle(&mut order);
    // The decision loop hands out one peer per free worker, and a new one only after it has
    // recorded an answer that left the decision pending: at most `workers` requests are in
    // flight, and none is started once the tally has decided.
    let shared = Arc::new((peers.to_vec(), channel.clone(), limits.clone(), *root));
    let (job_tx, job_rx) = mpsc::channel::<usize>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (answer_tx, answer_rx) = mpsc::channel::<(usize, PeerLineOutcome, String)>();
    let workers = concurrency.max(1).min(peers.len());
    let mut spawned = 0;
    for _ in 0..workers {
        let (job_rx, answer_tx, shared, http) = (
            job_rx.clone(),
            answer_tx.clone(),
            shared.clone(),
            http.clone(),
        );
        let started = std::thread::Builder::new()
            .name("peer-ask".into())
            .spawn(move || {
                loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(i) = job else { return };
                    let (peers, channel, limits, root) = &*shared;
                    let Some(peer) = peers.get(i) else { return };
                    let (answer, detail) = ask(&http, peer, channel, size, root, now, limits);
                    if answer_tx.send((i, answer, detail)).is_err() {
                        return;
                    }
                }
            });
        match started {
            Ok(_) => spawned += 1,
            Err(e) => tracing::warn!(error = %e, "could not start a peer request thread"),
        }
    }
    drop(answer_tx);

    let mut next = order.iter().copied();
    let mut dispatched = vec![false; peers.len()];
    let mut dispatch = |dispatched: &mut Vec<bool>| -> bool {
        let Some(i) = next.next() else { return false };
        if let Some(d) = dispatched.get_mut(i) {
            *d = true;
        }
        job_tx.send(i).is_ok()
    };
    let mut in_flight = 0usize;
    for _ in 0..spawned {
        if dispatch(&mut dispatched) {
            in_flight += 1;
        }
    }
    let mut lines = Vec::with_capacity(peers.len());
    let mut answered = vec![false; peers.len()];
    while tally.decision() == Decision::Pending && in_flight > 0 {
        let Ok((i, outcome, detail)) = answer_rx.recv() else {
            break;
        };
        let answer = outcome.answer();
        in_flight -= 1;
        if let Some(a) = answered.get_mut(i) {
            *a = true;
        }
        let url = peers.get(i).map(|p| redact_url(&p.url)).unwrap_or_default();
        tracing::debug!(peer = %url, ?outcome, %detail, "peer answered");
        lines.push(PeerLine {
            url,
            outcome,
            detail,
        });
        if tally.record(answer) == Decision::Pending && dispatch(&mut dispatched) {
            in_flight += 1;
        }
    }
    // Idle workers see the closed job queue and end; busy ones end after their request.
    drop(job_tx);

    for &i in &order {
        if answered.get(i).copied().unwrap_or(true) {
            continue;
        }
        lines.push(PeerLine {
            url: peers.get(i).map(|p| redact_url(&p.url)).unwrap_or_default(),
            outcome: if dispatched.get(i).copied().unwrap_or(false) {
                PeerLineOutcome::Abandoned
            } else {
                PeerLineOutcome::NotAsked
            },
            detail: String::new(),
        });
    }
    let outcome = match tally.decision() {
        Decision::Accept => PeerOutcome::Accepted,
        Decision::Reject(r) => PeerOutcome::Rejected(r),
        // Only if request threads could not be started: fail closed.
        Decision::Pending => PeerOutcome::Rejected(RejectReason::TooFewRemaining {
            required: rule.required,
            agreed: tally.agreed(),
            remaining: 0,
        }),
    };
    let count = |o: PeerLineOutcome| lines.iter().filter(|l| l.outcome == o).count();
    PeerReport {
        outcome,
        rule: Some(rule),
        agreed: tally.agreed(),
        failed: tally.failed(),
        unreachable: count(PeerLineOutcome::Unreachable),
        bogus: count(PeerLineOutcome::Bogus),
        answered: lines
            .iter()
            .filter(|l| {
                !matches!(
                    l.outcome,
                    PeerLineOutcome::Abandoned | PeerLineOutcome::NotAsked
                )
            })
            .count(),
        lines,
    }
}

/// Why `continuum peers add` refused to add a peer. Nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerCheckError {
    /// The peer's notary could not be reached (or said it is overloaded).
    #[error(
        "peer {url} could not be reached: {detail}; nothing was added (start its notary first and check the URL, or pass --offline to add it without asking)"
    )]
    Unreachable {
        /// The peer's URL, without credentials.
        url: String,
        /// Why.
        detail: String,
    },
    /// The peer answered, but not with an answer signed by the key given (or not at all
    /// usable).
    #[error(
        "peer {url} did not prove that it holds notary key {fingerprint}: {detail}; nothing was added (ask the peer's operator for the key `continuum notary key` prints on their site)"
    )]
    Refused {
        /// The peer's URL, without credentials.
        url: String,
        /// The key given, shortened.
        fingerprint: String,
        /// Why.
        detail: String,
    },
    /// No channel is configured, so there is nothing to ask the peer about.
    #[error("no channel is configured: there is nothing to ask peer {url} about; pass --offline")]
    NoChannel {
        /// The peer's URL, without credentials.
        url: String,
    },
}

impl PeerCheckError {
    /// [`ErrorKind::Unreachable`], [`ErrorKind::Verification`] for a peer that answered
    /// without proving the key, [`ErrorKind::Usage`] without a channel.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PeerCheckError::Unreachable { .. } => ErrorKind::Unreachable,
            PeerCheckError::Refused { .. } => ErrorKind::Verification,
            PeerCheckError::NoChannel { .. } => ErrorKind::Usage,
        }
    }
}

/// What [`check_peer`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerChecked {
    /// The channels the peer answered about, with its signature verified.
    pub verified: Vec<String>,
    /// Lines for people: channels it does not follow, a fork it reports.
    pub notes: Vec<String>,
}

/// Asks the peer at `url`, for each of `channels`, for its root at size 0 with a fresh random
/// nonce, and checks that the answer is signed with `key` (and bound to that nonce, the
/// channel, the size and the time window: [`verify_notary_answer`]). Size 0 needs no fetch
/// from the channel, so a healthy notary answers at once. Succeeds when at least one channel's
/// answer verifies and none fails to; a channel the peer does not follow is a note. Does not
/// check that the peer is honest about any root: that is what every update asks it.
pub fn check_peer(
    http: &Http,
    url: &str,
    key: &keyggdrasil::keys::PublicKey,
    channels: &[ChannelConfig],
    now: u64,
    limits: &Limits,
) -> Result<PeerChecked, PeerCheckError> {
    let shown_url = redact_url(url);
    if channels.is_empty() {
        return Err(PeerCheckError::NoChannel { url: shown_url });
    }
    let refused = |detail: String| PeerCheckError::Refused {
        url: shown_url.clone(),
        fingerprint: key.fingerprint(),
        detail,
    };
    let mut checked = PeerChecked {
        verified: Vec::new(),
        notes: Vec::new(),
    };
    for channel in channels {
        let request = NotaryRequest {
            channel: channel.name.clone(),
            size: 0,
            nonce: Nonce::generate(),
        };
        let signed = match fetch_signed(http, url, &request, limits) {
            Ok(s) => s,
            Err(AskFailure {
                outcome: PeerLineOutcome::Unreachable,
                detail,
                ..
            }) => {
                return Err(PeerCheckError::Unreachable {
                    url: shown_url,
                    detail,
                });
            }
            Err(AskFailure {
                unknown_channel: true,
                ..
            }) => {
                checked.notes.push(format!(
                    "peer {shown_url} does not follow channel {}: it cannot confirm updates from it",
                    channel.name.as_str()
                ));
                continue;
            }
            Err(AskFailure { detail, .. }) => return Err(refused(detail)),
        };
        let payload = verify_notary_answer(&signed, key, &request, now, limits)
            .map_err(|e| refused(e.to_string()))?;
        if let NotaryStatus::ForkDetected { .. } = payload.status {
            checked.notes.push(format!(
                "WARNING: peer {shown_url} reports a fork of channel {}",
                channel.name.as_str()
            ));
        }
        checked.verified.push(channel.name.as_str().to_owned());
    }
    if checked.verified.is_empty() {
        return Err(refused(
            "it follows none of this site's channels (it answered unknown_channel)".into(),
        ));
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redact_url("https://user:pw@peer.example:9000/x@y"),
            "https://peer.example:9000/x@y"
        );
        assert_eq!(redact_url("http://peer.example"), "http://peer.example");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
