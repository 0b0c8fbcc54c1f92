//! The peer decision rule: when has a site heard enough independent notaries agree with the
//! root the channel showed it?
//!
//! With `N` trusted peers, asked one by one in a CSPRNG-shuffled order:
//! - success needs `S = max(1, ⌈ln N⌉)` peers that answered with the same root;
//! - any disagreement (another root, or "fork detected") fails at once;
//! - it fails when `max(1, ⌈e·ln N⌉)` peers gave no usable answer (timeout, error, "behind",
//!   bad signature, wrong nonce), or when the peers not yet asked can no longer bring the
//!   agreements up to `S`.
//!
//! `N = 0` is refused unless the caller passes [`NoPeers::Allow`], which makes the rule accept
//! without any peer: a site that runs that way trusts the channel alone and should say so loudly.
//!
//! This module is a pure function of `N` and the answers so far; asking peers (concurrently,
//! with timeouts) is the caller's job. Each peer must be counted once: the caller passes each
//! peer's answer exactly once, and [`PeerTally::record`] refuses more answers than peers.

use thiserror::Error;

/// Whether a site with no peers may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPeers {
    /// Zero peers is an error (the default).
    Refuse,
    /// Zero peers means the channel alone is trusted (explicit operator override).
    Allow,
}

/// Why the rule could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PeerRuleError {
    /// No peers are configured and no override was given.
    #[error(
        "no peers are configured: add peers, or pass the explicit no-peers override to trust the channel alone"
    )]
    NoPeers,
}

/// One peer's answer, as classified by the caller after checking the notary's signature, nonce
/// and channel name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAnswer {
    /// Signed answer with the same root at the same size.
    Agree,
    /// Signed answer with a different root at the same size.
    Disagree,
    /// Signed answer saying the peer has evidence that the channel forked.
    ForkDetected,
    /// Signed answer saying the peer cannot reach that size (counts as no answer).
    Behind,
    /// Timeout, connection error, malformed or badly signed answer (counts as no answer).
    NoAnswer,
}

/// The state of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Enough peers agreed.
    Accept,
    /// Keep asking.
    Pending,
    /// Give up on this root: see the reason.
    Reject(RejectReason),
}

/// Why peer verification failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RejectReason {
    /// A peer saw a different root: the channel may be showing a split view.
    #[error("a peer saw a different root at this size (possible split view)")]
    Disagreement,
    /// A peer holds evidence that the channel forked.
    #[error("a peer reports that the channel forked")]
    ForkDetected,
    /// Too many peers did not answer (or were behind).
    #[error("too many peers did not answer or were behind ({failed} of at most {cap} allowed)")]
    TooManyFailures {
        /// Failures seen.
        failed: usize,
        /// The cap.
        cap: usize,
    },
    /// Not enough peers remain to reach the required agreements.
    #[error(
        "too few peers remain to reach {required} agreements ({agreed} so far, {remaining} left to ask)"
    )]
    TooFewRemaining {
        /// Agreements needed.
        required: usize,
        /// Agreements so far.
        agreed: usize,
        /// Peers not yet asked.
        remaining: usize,
    },
    /// More answers were recorded than there are peers (a caller bug; fails closed).
    #[error("more answers than peers were recorded")]
    TooManyAnswers,
}

/// The thresholds for `N` peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRule {
    /// Number of trusted peers.
    pub peers: usize,
    /// Agreements required, `max(1, ⌈ln N⌉)` (0 when no peers are allowed).
    pub required: usize,
    /// Failures that end the attempt, `max(1, ⌈e·ln N⌉)`.
    pub max_failures: usize,
}

impl PeerRule {
    /// The rule for `peers` trusted peers.
    pub fn new(peers: usize, no_peers: NoPeers) -> Result<Self, PeerRuleError> {
        if peers == 0 {
            return match no_peers {
                NoPeers::Refuse => Err(PeerRuleError::NoPeers),
                NoPeers::Allow => Ok(Self {
                    peers: 0,
                    required: 0,
                    max_failures: 1,
                }),
            };
        }
        let ln = (peers as f64).ln();
        // ln N and e·ln N are never integers for integer N > 1, so ceil has no rounding edge.
        let required = (ln.ceil() as usize).max(1);
        let max_failures = ((std::f64::consts::E * ln).ceil() as usize).max(1);
        Ok(Self {
            peers,
            required: required.min(peers),
            max_failures,
        })
    }

    /// A fresh tally for one root.
    pub fn tally(&self) -> PeerTally {
        PeerTally {
            rule: *self,
            agreed: 0,
            failed: 0,
            answered: 0,
            decision: if self.required == 0 {
                Decision::Accept
            } else {
                Decision::Pending
            },
        }
    }
}

/// Counts answers for one root and decides as soon as the outcome is certain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerTally {
    rule: PeerRule,
    agreed: usize,
    failed: usize,
    answered: usize,
    decision: Decision,
}

impl PeerTally {
    /// Records one peer's answer and returns the decision so far. Once the decision is not
    /// `Pending`, it never changes; later answers are ignored.
    pub fn record(&mut self, answer: PeerAnswer) -> Decision {
        if self.decision != Decision::Pending {
            return self.decision;
        }
        if self.answered >= self.rule.peers {
            self.decision = Decision::Reject(RejectReason::TooManyAnswers);
            return self.decision;
        }
        self.answered += 1;
        match answer {
            PeerAnswer::Agree => self.agreed += 1,
            PeerAnswer::Disagree => {
                self.decision = Decision::Reject(RejectReason::Disagreement);
                return self.decision;
            }
            PeerAnswer::ForkDetected => {
                self.decision = Decision::Reject(RejectReason::ForkDetected);
                return self.decision;
            }
            PeerAnswer::Behind | PeerAnswer::NoAnswer => self.failed += 1,
        }
        let remaining = self.rule.peers - self.answered;
        self.decision = if self.agreed >= self.rule.required {
            Decision::Accept
        } else if self.failed >= self.rule.max_failures {
            Decision::Reject(RejectReason::TooManyFailures {
                failed: self.failed,
                cap: self.rule.max_failures,
            })
        } else if self.agreed + remaining < self.rule.required {
            Decision::Reject(RejectReason::TooFewRemaining {
                required: self.rule.required,
                agreed: self.agreed,
                remaining,
            })
        } else {
            Decision::Pending
        };
        self.decision
    }

    /// The decision so far.
    pub fn decision(&self) -> Decision {
        self.decision
    }
    /// Agreements so far.
    pub fn agreed(&self) -> usize {
        self.agreed
    }
    /// Failures (no answer or behind) so far.
    pub fn failed(&self) -> usize {
        self.failed
    }
    /// The rule in force.
    pub fn rule(&self) -> PeerRule {
        self.rule
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_table() {
        // N -> (S = max(1, ceil(ln N)), cap = max(1, ceil(e ln N)))
        let table = [
            (1, 1, 1),
            (2, 1, 2),
            (3, 2, 3),
            (10, 3, 7),
            (100, 5, 13),
            (1000, 7, 19),
        ];
        for (n, s, cap) in table {
            let r = PeerRule::new(n, NoPeers::Refuse).unwrap();
            assert_eq!((r.required, r.max_failures), (s, cap), "N = {n}");
        }
    }

    #[test]
    fn zero_peers_needs_override() {
        assert_eq!(
            PeerRule::new(0, NoPeers::Refuse),
            Err(PeerRuleError::NoPeers)
        );
        let r = PeerRule::new(0, NoPeers::Allow).unwrap();
        assert_eq!(r.tally().decision(), Decision::Accept);
    }

    #[test]
    fn accepts_after_required_agreements() {
        let mut t = PeerRule::new(10, NoPeers::Refuse).unwrap().tally();
        assert_eq!(t.record(PeerAnswer::Agree), Decision::Pending);
        assert_eq!(t.record(PeerAnswer::NoAnswer), Decision::Pending);
        assert_eq!(t.record(PeerAnswer::Agree), Decision::Pending);
        assert_eq!(t.record(PeerAnswer::Agree), Decision::Accept);
        // Final: a later disagreement does not flip it (the caller stops asking anyway).
        assert_eq!(t.record(PeerAnswer::Disagree), Decision::Accept);
    }

    #[test]
    fn disagreement_and_fork_fail_at_once() {
        for bad in [PeerAnswer::Disagree, PeerAnswer::ForkDetected] {
            let mut t = PeerRule::new(100, NoPeers::Refuse).unwrap().tally();
            for _ in 0..4 {
                assert_eq!(t.record(PeerAnswer::Agree), Decision::Pending);
            }
            assert!(matches!(t.record(bad), Decision::Reject(_)));
            assert_eq!(t.record(PeerAnswer::Agree), t.decision());
            assert!(matches!(t.decision(), Decision::Reject(_)));
        }
    }

    #[test]
    fn failure_cap() {
        let mut t = PeerRule::new(10, NoPeers::Refuse).unwrap().tally();
        for _ in 0..6 {
            assert_eq!(t.record(PeerAnswer::Behind), Decision::Pending);
        }
        assert_eq!(
            t.record(PeerAnswer::NoAnswer),
            Decision::Reject(RejectReason::TooManyFailures { failed: 7, cap: 7 })
        );
    }

    #[test]
    fn too_few_remaining() {
        // N = 3 needs 2; cap is 3. Two failures leave one peer: cannot reach 2.
        let mut t = PeerRule::new(3, NoPeers::Refuse).unwrap().tally();
        assert_eq!(t.record(PeerAnswer::NoAnswer), Decision::Pending);
        assert_eq!(
            t.record(PeerAnswer::NoAnswer),
            Decision::Reject(RejectReason::TooFewRemaining {
                required: 2,
                agreed: 0,
                remaining: 1
            })
        );
    }

    #[test]
    fn single_peer() {
        let r = PeerRule::new(1, NoPeers::Refuse).unwrap();
        let mut t = r.tally();
        assert_eq!(t.record(PeerAnswer::Agree), Decision::Accept);
        let mut t = r.tally();
        assert!(matches!(t.record(PeerAnswer::Behind), Decision::Reject(_)));
    }

    #[test]
    fn never_more_answers_than_peers() {
        let mut t = PeerRule::new(0, NoPeers::Allow).unwrap().tally();
        assert_eq!(t.record(PeerAnswer::Agree), Decision::Accept);
        // Exhaustive over all answer sequences for small N: the decision is reached by the
        // time every peer answered, and Accept implies at least S agreements.
        for n in 1..=6usize {
            let r = PeerRule::new(n, NoPeers::Refuse).unwrap();
            let answers = [
                PeerAnswer::Agree,
                PeerAnswer::Disagree,
                PeerAnswer::ForkDetected,
                PeerAnswer::Behind,
                PeerAnswer::NoAnswer,
            ];
            let total = answers.len().pow(n as u32);
            for code in 0..total {
                let mut t = r.tally();
                let mut c = code;
                let mut agreed = 0;
                let mut any_bad = false;
                for _ in 0..n {
                    let a = answers[c % answers.len()];
                    c /= answers.len();
                    if t.decision() == Decision::Pending {
                        agreed += usize::from(a == PeerAnswer::Agree);
                        any_bad |= matches!(a, PeerAnswer::Disagree | PeerAnswer::ForkDetected);
                    }
                    t.record(a);
                }
                assert_ne!(t.decision(), Decision::Pending, "n={n} code={code}");
                if t.decision() == Decision::Accept {
                    assert!(agreed >= r.required && !any_bad, "n={n} code={code}");
                }
            }
        }
    }
}
