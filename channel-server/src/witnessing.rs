//! The channel pushes its checkpoint notes to its witnesses (`[[witness]]` in `channel.toml`)
//! with C2SP `tlog-witness` `add-checkpoint`, and appends the cosignatures they return to
//! `public/checkpoint`, so `GET /checkpoint`, every static mirror and every site read the
//! cosigned note.
//!
//! A task of its own, once a second: when the published size has changed since the last
//! round, each witness is sent `old <its last cosigned size>`, the consistency proof from there
//! (from the stored tree), and the note; a 409 names the size the witness has, and the request
//! is made once more from there. A cosignature line is kept only if it verifies with the
//! witness's configured key over this note. The file is rewritten (atomically, under the
//! publisher's lock) only while it still holds the note that was sent; a newer publish wins and
//! is pushed in the next round. A witness that fails is logged and retried next round; the
//! checkpoint is published with whatever cosignatures came back.

use std::sync::Arc;
use std::time::Duration;

use base64ct::{Base64, Encoding};
use keyggdrasil::merkle::{self, Blake2b256};
use keyggdrasil::note::{self, VerifierKey};

use crate::api::AppState;
use crate::store::SqliteHashes;

/// How often the task looks for a newly published checkpoint.
const ROUND: Duration = Duration::from_secs(1);
/// The whole time one witness request may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One configured witness.
#[derive(Debug, Clone)]
pub struct WitnessTarget {
    /// Its submission prefix (`POST <url>/add-checkpoint`).
    pub url: String,
    /// Its `cosignature/v1` verifier key.
    pub key: VerifierKey,
}

/// Runs until the process ends (returns at once when no witness is configured).
pub async fn witness_loop(s: Arc<AppState>) {
    if s.witnesses.is_empty() {
        return;
    }
    let mut last: Vec<u64> = vec![0; s.witnesses.len()];
    let mut pushed = None;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
    loop {
        tokio::time::sleep(ROUND).await;
        let path = s.paths.public.join("checkpoint");
        let Ok(bytes) = tokio::fs::read(&path).await else {
            continue;
        };
        let Ok(cp) = keyggdrasil::tlog_checkpoint::open(&bytes, &s.channel_key, &s.origin) else {
            continue;
        };
        if pushed == Some(cp.size()) {
            continue;
        }
        // The channel's own note, without lines an earlier round appended.
        let Some((text, own)) = split_own(cp.note()) else {
            continue;
        };
        let note_sent = format!("{text}\n{own}");
        let mut lines = String::new();
        let mut tasks = Vec::new();
        for (i, w) in s.witnesses.iter().enumerate() {
            let (state, agent, w, note, old) = (
                s.clone(),
                agent.clone(),
                w.clone(),
                note_sent.clone(),
                last[i],
            );
            let size = cp.size();
            tasks.push(tokio::task::spawn_blocking(move || {
                push(&state, &agent, &w, &note, size, old)
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            match t.await {
                Ok(Ok((line, size))) => {
                    last[i] = size;
                    lines.push_str(&line);
                }
                Ok(Err(e)) => {
                    tracing::warn!(witness = s.witnesses[i].url.as_str(), error = %e, "a witness did not cosign")
                }
                Err(e) => tracing::warn!(error = %e, "witness task"),
            }
        }
        let _guard = s.publish_lock.lock().await;
        let current = tokio::fs::read(&path).await.unwrap_or_default();
        if current != bytes {
            continue;
        }
        if !lines.is_empty() {
            let cosigned = format!("{note_sent}{lines}");
            let public = s.paths.public.clone();
            let written = tokio::task::spawn_blocking(move || {
                crate::publish::write_checkpoint(&public, cosigned.as_bytes())
            })
            .await;
            if !matches!(written, Ok(Ok(()))) {
                tracing::warn!("could not write the cosigned checkpoint");
                continue;
            }
        }
        pushed = Some(cp.size());
    }
}

/// The note's text and its first signature line (the channel's own, as the publisher writes
/// it).
fn split_own(note: &str) -> Option<(&str, &str)> {
    let i = note.find("\n\n")?;
    let text = &note[..i + 1];
    let own = note[i + 2..].split_inclusive('\n').next()?;
    own.ends_with('\n').then_some((text, own))
}

/// How far a witness's cosignature time may be from the channel's clock, either way.
pub const MAX_COSIGNATURE_SKEW_SECS: u64 = 300;

/// Refuses a cosignature whose time is more than [`MAX_COSIGNATURE_SKEW_SECS`] from `now`
/// (security review X5): sites count a cosignature only within their own window (at most
/// 7 200 s old, 300 s ahead), so a witness with a wrong clock, or one answering with an old
/// cosignature, would have the channel publish cosignatures sites then ignore, and nobody
/// would be told why. Refused here, it is a `WARN` naming the witness, and not published.
fn check_cosignature_time(time: u64, now: u64) -> Result<(), String> {
    let skew = MAX_COSIGNATURE_SKEW_SECS;
    if note::cosignature_time_ok(time, now, skew, skew) {
        return Ok(());
    }
    if time < now {
        return Err(format!(
            "its cosignature is dated {} s in the past (its clock, or a replayed cosignature); \
             not published",
            now - time
        ));
    }
    Err(format!(
        "its cosignature is dated {} s in the future (its clock); not published",
        time - now
    ))
}

/// One witness: the cosignature line and the size it now has, or why not.
fn push(
    s: &AppState,
    agent: &ureq::Agent,
    w: &WitnessTarget,
    note_text: &str,
    size: u64,
    mut old: u64,
) -> Result<(String, u64), String> {
    for _ in 0..2 {
        if old > size {
            return Err(format!("the witness has size {old}, beyond ours ({size})"));
        }
        let mut body = format!("old {old}\n");
        if old > 0 && old < size {
            let proof = s
                .reads
                .with(|c| {
                    merkle::prove_consistency(&Blake2b256, old, size, &SqliteHashes(c))
                        .map_err(|e| crate::store::DbError::Inconsistent(e.to_string()))
                })
                .map_err(|e| e.to_string())?;
            for h in proof.hashes() {
                body.push_str(&Base64::encode_string(h));
                body.push('\n');
            }
        }
        body.push('\n');
        body.push_str(note_text);
        let url = format!("{}/add-checkpoint", w.url.trim_end_matches('/'));
        let resp = agent
            .post(&url)
            .header("content-type", "text/plain; charset=utf-8")
            .send(body.as_bytes())
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let answer = resp
            .into_body()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .map_err(|e| format!("{url}: {e}"))?;
        match status {
            200 => {
                let (line, time) = answer
                    .split_inclusive('\n')
                    .find_map(|l| {
                        let both = format!("{note_text}{l}");
                        let opened =
                            note::open(both.as_bytes(), std::slice::from_ref(&w.key)).ok()?;
                        let time = opened.verified.iter().find_map(|v| v.time)?;
                        Some((l, time))
                    })
                    .ok_or_else(|| format!("{url}: no cosignature by the configured key"))?;
                check_cosignature_time(time, crate::api::now_secs())
                    .map_err(|e| format!("{url}: {e}"))?;
                return Ok((line.to_owned(), size));
            }
            409 => {
                old = answer
                    .trim_end_matches('\n')
                    .parse()
                    .map_err(|_| format!("{url}: a 409 without a size"))?;
            }
            other => return Err(format!("{url}: {other} {}", answer.trim_end())),
        }
    }
    Err("the witness's size changed twice".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosignature_times_are_checked_at_both_edges() {
        let now = 1_700_000_000;
        assert!(check_cosignature_time(now, now).is_ok());
        assert!(check_cosignature_time(now - 300, now).is_ok());
        assert!(check_cosignature_time(now + 300, now).is_ok());
        let old = check_cosignature_time(now - 301, now).unwrap_err();
        assert!(old.contains("301 s in the past"), "{old}");
        let ahead = check_cosignature_time(now + 301, now).unwrap_err();
        assert!(ahead.contains("301 s in the future"), "{ahead}");
        // The spec's extremes saturate instead of wrapping into the window.
        assert!(check_cosignature_time(0, now).is_err());
        assert!(check_cosignature_time(u64::MAX, now).is_err());
        assert!(check_cosignature_time(u64::MAX, u64::MAX).is_ok());
    }
}
