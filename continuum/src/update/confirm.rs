//! Stage 2 of [`super::update_log`]: the peers confirm the new root; on failure the newest
//! entry is dropped and the peers are asked again, down to the accepted size (DESIGN.md steps
//! 3–4).
//!
//! Changes nothing: it only decides how many of the new entries may be applied.

use keyggdrasil::limits::Limits;
use keyggdrasil::merkle::Hash;
use keyggdrasil::peers::{NoPeers, RejectReason};

use super::{ChannelReport, UpdateError};
use crate::config::{ChannelConfig, Config};
use crate::peers::{PeerLineOutcome, PeerOutcome, PeerProblem};
use crate::transport::Http;

/// Returns the largest log size in `start + 1 ..= end` whose root (`root_at`) the peers confirmed, and
/// fills the peer fields and notes of `report`. Fails when no new size is confirmed: with
/// [`UpdateError::PeersRefused`] saying why for the smallest size tried.
///
/// A peer failing in several rounds is told once: one note per failing peer per run (the
/// first reason; bogus before unreachable), and one note for all the sizes refused.
#[allow(clippy::too_many_arguments)]
pub(super) fn confirm(
    config: &Config,
    channel: &ChannelConfig,
    peer_http: &Http,
    limits: &Limits,
    now: u64,
    start: u64,
    end: u64,
    report: &mut ChannelReport,
    root_at: &dyn Fn(u64) -> Result<Hash, UpdateError>,
) -> Result<u64, UpdateError> {
    let mut failing: Vec<(PeerLineOutcome, PeerProblem)> = Vec::new();
    let mut refused: Vec<(u64, RejectReason)> = Vec::new();
    let result = rounds(
        config,
        channel,
        peer_http,
        limits,
        now,
        start,
        end,
        report,
        root_at,
        &mut failing,
        &mut refused,
    );
    let name = channel.name.as_str();
    // One note per run of sizes refused for the same kind of reason (pop-off asks about each
    // size), with the first one's words.
    let mut i = 0;
    while let Some((first, reason)) = refused.get(i) {
        let same: Vec<String> = refused[i + 1..]
            .iter()
            // The same kind of refusal (its counts may differ from round to round).
            .take_while(|(_, r)| std::mem::discriminant(r) == std::mem::discriminant(reason))
            .map(|(s, _)| s.to_string())
            .collect();
        let also = match same.len() {
            0 => String::new(),
            1 => format!("; the same for size {}", same.join("")),
            _ => format!("; the same for sizes {}", same.join(", ")),
        };
        tracing::warn!(channel = name, size = first, %reason, "peers did not confirm the root{also}");
        report.notes.push(format!(
            "channel {name}: peers did not confirm size {first}: {reason}{also}"
        ));
        i += 1 + same.len();
    }
    for (outcome, p) in &failing {
        report.notes.push(format!(
            "channel {name}: peer {}: {} ({})",
            p.url,
            outcome.name(),
            p.detail
        ));
    }
    for (outcome, p) in failing {
        match outcome {
            PeerLineOutcome::Bogus => report.peers_bogus.push(p),
            _ => report.peers_unreachable.push(p),
        }
    }
    result
}

/// Remembers each failing peer once: the first reason, a bogus answer before an unreachable
/// one.
fn remember(failing: &mut Vec<(PeerLineOutcome, PeerProblem)>, lines: &[crate::peers::PeerLine]) {
    for l in lines {
        if !matches!(
            l.outcome,
            PeerLineOutcome::Bogus | PeerLineOutcome::Unreachable
        ) {
            continue;
        }
        let problem = PeerProblem {
            url: l.url.clone(),
            detail: l.detail.clone(),
        };
        match failing.iter_mut().find(|(_, p)| p.url == l.url) {
            Some(slot)
                if slot.0 == PeerLineOutcome::Unreachable
                    && l.outcome == PeerLineOutcome::Bogus =>
            {
                *slot = (l.outcome, problem);
            }
            Some(_) => {}
            None => failing.push((l.outcome, problem)),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn rounds(
    config: &Config,
    channel: &ChannelConfig,
    peer_http: &Http,
    limits: &Limits,
    now: u64,
    start: u64,
    end: u64,
    report: &mut ChannelReport,
    root_at: &dyn Fn(u64) -> Result<Hash, UpdateError>,
    failing: &mut Vec<(PeerLineOutcome, PeerProblem)>,
    refused: &mut Vec<(u64, RejectReason)>,
) -> Result<u64, UpdateError> {
    let name = channel.name.as_str();
    let concurrency = config.site.peer_concurrency.unwrap_or(16);
    let no_peers = if config.site.allow_no_peers {
        NoPeers::Allow
    } else {
        NoPeers::Refuse
    };
    let mut target = end;
    let mut last_refusal: Option<(RejectReason, bool, String)> = None;
    while target > start {
        let root = root_at(target)?;
        let outcome = crate::peers::verify_with_peers(
            peer_http,
            &config.peers,
            channel,
            target,
            &root,
            now,
            limits,
            concurrency,
            no_peers,
        );
        remember(failing, &outcome.lines);
        match &outcome.outcome {
            PeerOutcome::Accepted | PeerOutcome::AcceptedWithoutPeers => {
                report.peers_agreed = outcome.agreed;
                report.peers_needed = outcome.rule.map(|r| r.required).unwrap_or(0);
                report.peers_total = config.peers.len();
                report.root = Some(hex::encode(root));
                report.notes.push(if outcome.outcome == PeerOutcome::AcceptedWithoutPeers {
                    format!(
                        "channel {name}: WARNING: no peers configured and allow_no_peers is set: root {} at size {target} is trusted on the channel's word alone",
                        hex::encode(&root[..8])
                    )
                } else {
                    format!(
                        "channel {name}: root {} at size {target} confirmed by {} of {} peers",
                        hex::encode(&root[..8]),
                        outcome.agreed,
                        config.peers.len()
                    )
                });
                return Ok(target);
            }
            PeerOutcome::NoPeers(e) => {
                return Err(UpdateError::NoPeers {
                    channel: name.to_owned(),
                    source: e.clone(),
                });
            }
            PeerOutcome::Rejected(reason) => {
                refused.push((target, *reason));
                let peers = format!(
                    "{}; {}",
                    outcome.summary(),
                    // Each peer's answer: "behind", "no answer", "DISAGREE" say what
                    // happened where the counts alone do not.
                    outcome
                        .lines
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                );
                last_refusal = Some((*reason, outcome.contradicted(), peers));
                target -= 1;
            }
        }
    }
    Err(match last_refusal {
        Some((reason, contradicted, peers)) => UpdateError::PeersRefused {
            channel: name.to_owned(),
            reason,
            contradicted,
            peers,
        },
        // Not reached while there are new entries; said plainly should it ever be.
        None => UpdateError::NothingConfirmed {
            channel: name.to_owned(),
        },
    })
}
