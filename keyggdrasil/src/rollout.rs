//! Staged rollouts: a release's schedule of waves, each site's bucket, and the decision whether
//! a site installs a release now. Pure: the caller passes the site's clock.
//!
//! # The schedule
//! A [`Rollout`] is 1 ..= [`MAX_WAVES`] [`Wave`]s, `{percent, not_before}`, with `percent`
//! strictly increasing (each 1 ..= 100) and `not_before` (Unix seconds) non-decreasing, and a
//! `paused` flag. It is signed by the author: in the release entry itself (its optional
//! `rollout` field) or in a later `rollout` entry, which replaces the release's schedule (see
//! [`crate::state`]). "Everyone now" is the single wave `{percent: 100, not_before: 0}`
//! ([`Rollout::everyone_now`]); a release without a schedule is installed by everyone at once.
//!
//! # The bucket
//! Each site computes its own bucket in `0 ..= 99` from values the channel cannot choose:
//!
//! ```text
//! d      = BLAKE2b-256("keyggdrasil/v1/rollout-bucket" ‖ 0x00 ‖ notary public key (32 bytes)
//!                      ‖ leaf hash of the release entry (32 bytes))
//! bucket = (first 8 bytes of d, as a big-endian u64) mod 100
//! ```
//!
//! BLAKE2b-256 is unkeyed, output length 32 (the output length is part of its parameter block:
//! it is not BLAKE2b-512 cut short). The leaf hash is `BLAKE2b-256(0x00 ‖ entry bytes)`, the
//! Merkle leaf of the release entry, fixed once the author signed it, so the channel cannot
//! re-roll buckets; the notary key is the site's own. The modulo bias (2^64 mod 100 = 16) is
//! below 10^-17 and does not matter. `fixtures/rollout/buckets.json` holds vectors computed
//! independently in Python.
//!
//! # The decision
//! [`decide`]: the current wave is the last wave whose `not_before <= now`; a site installs iff
//! the rollout is not paused, a current wave exists, and `bucket < percent` of that wave.
//! `now` is the site's own clock, never the channel's signed time: the channel chooses its
//! timestamps (within the freshness window), so letting it set `now` would let it move a site
//! into a wave early or hold it back late.
//!
//! What this does not do: decide whether a release is allowed at all (that is
//! [`crate::state::KeyState`]), nor which version a site picks (that is the site's policy).

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::keys::PublicKey;
use crate::merkle::Hash;

/// Most waves a schedule may have.
pub const MAX_WAVES: usize = 8;
/// The domain-separation string of [`bucket`].
pub const BUCKET_CONTEXT: &str = "keyggdrasil/v1/rollout-bucket";

/// One step of a rollout: from `not_before` on, sites whose bucket is below `percent` install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wave {
    /// Share of sites included, 1 ..= 100.
    pub percent: u8,
    /// Unix seconds from which this wave applies (by the site's clock).
    pub not_before: u64,
}

/// A release's rollout schedule, as signed by its author.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// The waves, in order (see the module docs for the rules).
    pub waves: Vec<Wave>,
    /// A paused rollout installs nowhere that has not installed it already.
    pub paused: bool,
}

/// Why a schedule is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RolloutError {
    /// No waves, or more than [`MAX_WAVES`].
    #[error("a rollout has 1 to {MAX_WAVES} waves, got {0}")]
    WaveCount(usize),
    /// A percent outside 1 ..= 100.
    #[error("wave {wave}: percent must be 1 to 100, got {percent}")]
    Percent {
        /// Position of the wave (0-based).
        wave: usize,
        /// The bad percent.
        percent: u8,
    },
    /// Percent not strictly increasing, or `not_before` decreasing.
    #[error(
        "wave {0}: waves must be monotonic (percent strictly increasing, not_before never earlier than the wave before)"
    )]
    NotMonotonic(usize),
}

/// Checks the wave rules of the module docs.
pub fn validate_waves(waves: &[Wave]) -> Result<(), RolloutError> {
    if waves.is_empty() || waves.len() > MAX_WAVES {
        return Err(RolloutError::WaveCount(waves.len()));
    }
    for (i, w) in waves.iter().enumerate() {
        if w.percent == 0 || w.percent > 100 {
            return Err(RolloutError::Percent {
                wave: i,
                percent: w.percent,
            });
        }
    }
    for (i, pair) in waves.windows(2).enumerate() {
        if let [a, b] = pair
            && (b.percent <= a.percent || b.not_before < a.not_before)
        {
            return Err(RolloutError::NotMonotonic(i + 1));
        }
    }
    Ok(())
}

impl Rollout {
    /// "Everyone now": one wave of 100 % from time 0, not paused.
    pub fn everyone_now() -> Self {
        Rollout {
            waves: vec![Wave {
                percent: 100,
                not_before: 0,
            }],
            paused: false,
        }
    }

    /// Checks the wave rules of the module docs.
    pub fn validate(&self) -> Result<(), RolloutError> {
        validate_waves(&self.waves)
    }
}

/// The site's bucket for a release, in `0 ..= 99` (exact definition in the module docs).
pub fn bucket(notary_public_key: &PublicKey, release_leaf_hash: &Hash) -> u8 {
    let mut state = blake2b_simd::Params::new().hash_length(32).to_state();
    state.update(BUCKET_CONTEXT.as_bytes());
    state.update(&[0]);
    state.update(notary_public_key.as_bytes());
    state.update(release_leaf_hash);
    let digest = state.finalize();
    let mut first = [0u8; 8];
    // hash_length(32): at least 8 bytes; zip cannot panic.
    for (o, b) in first.iter_mut().zip(digest.as_bytes()) {
        *o = *b;
    }
    // < 100, so the cast is lossless.
    (u64::from_be_bytes(first) % 100) as u8
}

/// Why a site waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitReason {
    /// The author paused the rollout.
    Paused,
    /// No wave has started yet (the first `not_before` is in the future).
    NotStarted,
    /// A wave is current, but this site's bucket is not inside it.
    OutsideWave,
}

impl WaitReason {
    /// A stable machine-readable name (`paused`, `not_started`, `outside_wave`).
    pub fn name(self) -> &'static str {
        match self {
            WaitReason::Paused => "paused",
            WaitReason::NotStarted => "not_started",
            WaitReason::OutsideWave => "outside_wave",
        }
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitReason::Paused => "the author paused the rollout",
            WaitReason::NotStarted => "the rollout's first wave has not started",
            WaitReason::OutsideWave => "this site's bucket is not inside the current wave",
        })
    }
}

/// Whether a site installs a release now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RolloutDecision {
    /// Install (no schedule, or this site is inside the current wave).
    Install,
    /// Not yet.
    Wait {
        /// Percent of the current wave (0 if none has started).
        current_percent: u8,
        /// Percent of the first wave that includes this site, if any does (for a paused
        /// rollout, the first one that would once resumed).
        wave_percent: Option<u8>,
        /// This site's bucket.
        bucket: u8,
        /// When that wave starts, if a later wave includes this site and the rollout is not
        /// paused; `None`: only a new rollout entry can change the answer.
        next_at: Option<u64>,
        /// Why.
        reason: WaitReason,
    },
}

/// The decision of the module docs for a site in `bucket` at `now` (the site's clock, Unix
/// seconds). No schedule: [`RolloutDecision::Install`]. Assumes a valid schedule (the state
/// machine admits no other); an invalid one is decided by the same rule and never panics.
pub fn decide(schedule: Option<&Rollout>, bucket: u8, now: u64) -> RolloutDecision {
    let Some(s) = schedule else {
        return RolloutDecision::Install;
    };
    let current = s.waves.iter().rev().find(|w| w.not_before <= now);
    let current_percent = current.map_or(0, |w| w.percent);
    if s.paused {
        return RolloutDecision::Wait {
            current_percent,
            wave_percent: s
                .waves
                .iter()
                .find(|w| bucket < w.percent)
                .map(|w| w.percent),
            bucket,
            next_at: None,
            reason: WaitReason::Paused,
        };
    }
    if current.is_some_and(|w| bucket < w.percent) {
        return RolloutDecision::Install;
    }
    let next = s
        .waves
        .iter()
        .find(|w| w.not_before > now && bucket < w.percent);
    RolloutDecision::Wait {
        current_percent,
        wave_percent: next.map(|w| w.percent),
        bucket,
        next_at: next.map(|w| w.not_before),
        reason: if current.is_none() {
            WaitReason::NotStarted
        } else {
            WaitReason::OutsideWave
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(percent: u8, not_before: u64) -> Wave {
        Wave {
            percent,
            not_before,
        }
    }

    fn sched(waves: &[Wave]) -> Rollout {
        Rollout {
            waves: waves.to_vec(),
            paused: false,
        }
    }

    #[test]
    fn validation() {
        assert!(validate_waves(&[w(1, 0), w(10, 100), w(100, 100)]).is_ok());
        assert!(Rollout::everyone_now().validate().is_ok());
        assert_eq!(validate_waves(&[]), Err(RolloutError::WaveCount(0)));
        let nine: Vec<Wave> = (1..=9).map(|i| w(i * 10, 0)).collect();
        assert_eq!(validate_waves(&nine), Err(RolloutError::WaveCount(9)));
        assert!(validate_waves(&nine[..8]).is_ok());
        assert!(matches!(
            validate_waves(&[w(0, 0)]),
            Err(RolloutError::Percent { percent: 0, .. })
        ));
        assert!(matches!(
            validate_waves(&[w(1, 0), w(101, 0)]),
            Err(RolloutError::Percent { wave: 1, .. })
        ));
        // Percent must strictly increase; equal is refused.
        assert_eq!(
            validate_waves(&[w(10, 0), w(10, 5)]),
            Err(RolloutError::NotMonotonic(1))
        );
        assert_eq!(
            validate_waves(&[w(10, 0), w(5, 5)]),
            Err(RolloutError::NotMonotonic(1))
        );
        // Time may stay equal but never go back.
        assert_eq!(
            validate_waves(&[w(1, 0), w(10, 50), w(20, 49)]),
            Err(RolloutError::NotMonotonic(2))
        );
    }

    #[test]
    fn no_schedule_installs() {
        assert_eq!(decide(None, 99, 0), RolloutDecision::Install);
    }

    #[test]
    fn wave_boundaries() {
        let s = sched(&[w(10, 1000), w(50, 2000)]);
        // Before the first wave: nobody, not even bucket 0.
        assert_eq!(
            decide(Some(&s), 0, 999),
            RolloutDecision::Wait {
                current_percent: 0,
                wave_percent: Some(10),
                bucket: 0,
                next_at: Some(1000),
                reason: WaitReason::NotStarted
            }
        );
        // At not_before: bucket percent - 1 is in, bucket percent is out.
        assert_eq!(decide(Some(&s), 9, 1000), RolloutDecision::Install);
        assert_eq!(
            decide(Some(&s), 10, 1000),
            RolloutDecision::Wait {
                current_percent: 10,
                wave_percent: Some(50),
                bucket: 10,
                next_at: Some(2000),
                reason: WaitReason::OutsideWave
            }
        );
        assert_eq!(
            decide(Some(&s), 49, 1999),
            decide(Some(&s), 10, 1000).with_bucket(49)
        );
        assert_eq!(decide(Some(&s), 49, 2000), RolloutDecision::Install);
        // Outside every wave: no later wave includes it.
        assert_eq!(
            decide(Some(&s), 50, 5000),
            RolloutDecision::Wait {
                current_percent: 50,
                wave_percent: None,
                bucket: 50,
                next_at: None,
                reason: WaitReason::OutsideWave
            }
        );
    }

    impl RolloutDecision {
        fn with_bucket(self, b: u8) -> Self {
            match self {
                RolloutDecision::Wait {
                    current_percent,
                    wave_percent,
                    next_at,
                    reason,
                    ..
                } => RolloutDecision::Wait {
                    current_percent,
                    wave_percent,
                    bucket: b,
                    next_at,
                    reason,
                },
                d => d,
            }
        }
    }

    #[test]
    fn paused_installs_nowhere() {
        let mut s = Rollout::everyone_now();
        s.paused = true;
        for b in [0, 50, 99] {
            assert_eq!(
                decide(Some(&s), b, u64::MAX),
                RolloutDecision::Wait {
                    current_percent: 100,
                    wave_percent: Some(100),
                    bucket: b,
                    next_at: None,
                    reason: WaitReason::Paused
                }
            );
        }
        s.paused = false;
        assert_eq!(decide(Some(&s), 99, 0), RolloutDecision::Install);
    }

    #[test]
    fn bucket_is_in_range_and_depends_on_both_inputs() {
        let k1 = crate::keys::KeyPair::generate().public();
        let k2 = crate::keys::KeyPair::generate().public();
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..=255u8 {
            let b = bucket(&k1, &[i; 32]);
            assert!(b < 100);
            seen.insert(b);
        }
        assert!(seen.len() > 50, "buckets spread: {}", seen.len());
        let differs = (0..=255u8).any(|i| bucket(&k1, &[i; 32]) != bucket(&k2, &[i; 32]));
        assert!(differs);
    }

    #[test]
    fn json_shape() {
        let s = sched(&[w(1, 0), w(100, 86400)]);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"waves":[{"percent":1,"not_before":0},{"percent":100,"not_before":86400}],"paused":false}"#
        );
        assert!(serde_json::from_str::<Rollout>(r#"{"waves":[],"paused":false,"x":1}"#).is_err());
        assert!(serde_json::from_str::<Wave>(r#"{"percent":300,"not_before":0}"#).is_err());
    }
}
