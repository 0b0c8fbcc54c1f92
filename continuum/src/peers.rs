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
//! - anything else (unreachable, timeout, HTTP or envelope error, bad signature, wrong nonce,
//!   stale or future time, another channel or size): [`PeerAnswer::NoAnswer`].
//!
//! The report has one line per peer for the run log: its URL (with any `user:password@`
//! removed), what it answered, and why. Nothing secret is in it.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use keyggdrasil::limits::Limits;
use keyggdrasil::peers::{Decision, NoPeers, PeerAnswer, PeerRule, PeerRuleError, RejectReason};
use keyggdrasil::wire::{
    Envelope, Nonce, NotaryRequest, NotaryStatus, Signed, verify_notary_answer,
};

use crate::config::{ChannelConfig, PeerConfig};
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
    /// No usable answer.
    NoAnswer,
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
            PeerLineOutcome::NoAnswer => "no answer",
            PeerLineOutcome::Abandoned => "abandoned",
            PeerLineOutcome::NotAsked => "not asked",
        }
    }
}

impl From<PeerAnswer> for PeerLineOutcome {
    fn from(a: PeerAnswer) -> Self {
        match a {
            PeerAnswer::Agree => PeerLineOutcome::Agree,
            PeerAnswer::Disagree => PeerLineOutcome::Disagree,
            PeerAnswer::ForkDetected => PeerLineOutcome::ForkDetected,
            PeerAnswer::Behind => PeerLineOutcome::Behind,
            PeerAnswer::NoAnswer => PeerLineOutcome::NoAnswer,
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

/// The result of asking the peers about one root.
#[derive(Debug, Clone)]
pub struct PeerReport {
    /// How it ended.
    pub outcome: PeerOutcome,
    /// The thresholds used (none when no peers were refused).
    pub rule: Option<PeerRule>,
    /// Agreements counted.
    pub agreed: usize,
    /// Failures counted (no answer or behind).
    pub failed: usize,
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
            "{} agreed, {} failed, {} answers",
            self.agreed, self.failed, self.answered
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

/// Removes `user:password@` from a URL for logs.
fn redact_url(url: &str) -> String {
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

/// Asks one peer and classifies its answer.
fn ask(
    http: &Http,
    peer: &PeerConfig,
    channel: &ChannelConfig,
    size: u64,
    root: &[u8; 32],
    now: u64,
    limits: &Limits,
) -> (PeerAnswer, String) {
    let request = NotaryRequest {
        channel: channel.name.clone(),
        size,
        nonce: Nonce::generate(),
    };
    let Ok(body) = serde_json::to_vec(&request) else {
        return (PeerAnswer::NoAnswer, "could not encode the request".into());
    };
    let url = format!("{}{NOTARY_PATH}", peer.url.trim_end_matches('/'));
    let limit = limits.max_small_response_bytes + 4096;
    let resp = match http.post_json(&url, &body, limit) {
        Ok(r) => r,
        Err(e) => return (PeerAnswer::NoAnswer, redact_url(&e.to_string())),
    };
    let signed: Signed = match Envelope::open(&resp.body, limit) {
        Ok(s) => s,
        Err(e) => return (PeerAnswer::NoAnswer, format!("HTTP {}: {e}", resp.status)),
    };
    let payload = match verify_notary_answer(&signed, &peer.key, &request, now, limits) {
        Ok(p) => p,
        Err(e) => return (PeerAnswer::NoAnswer, e.to_string()),
    };
    match payload.status {
        NotaryStatus::Ok { root: theirs } if &theirs.0 == root => {
            (PeerAnswer::Agree, String::new())
        }
        NotaryStatus::Ok { root: theirs } => (
            PeerAnswer::Disagree,
            format!("its root at size {size} is {}", hex::encode(theirs.0)),
        ),
        NotaryStatus::Behind { observed } => (
            PeerAnswer::Behind,
            format!("it has observed {observed} entries"),
        ),
        NotaryStatus::ForkDetected { evidence } => {
            match check_evidence(&evidence, &channel.name, &channel.key, limits) {
                Ok(c) => (PeerAnswer::ForkDetected, format!("verified evidence: {c}")),
                Err(e) => (
                    PeerAnswer::NoAnswer,
                    format!("claims a fork, but its evidence does not prove one: {e}"),
                ),
            }
        }
    }
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
    let (answer_tx, answer_rx) = mpsc::channel::<(usize, PeerAnswer, String)>();
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
        let Ok((i, answer, detail)) = answer_rx.recv() else {
            break;
        };
        in_flight -= 1;
        if let Some(a) = answered.get_mut(i) {
            *a = true;
        }
        let url = peers.get(i).map(|p| redact_url(&p.url)).unwrap_or_default();
        tracing::debug!(peer = %url, ?answer, %detail, "peer answered");
        lines.push(PeerLine {
            url,
            outcome: answer.into(),
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
    PeerReport {
        outcome,
        rule: Some(rule),
        agreed: tally.agreed(),
        failed: tally.failed(),
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
