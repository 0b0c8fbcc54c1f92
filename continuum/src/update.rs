//! One update cycle (`continuum update`), DESIGN.md steps 1–6.
//!
//! For each configured channel: fetch new entries with a fresh nonce and verify the channel's
//! answer (signature, origin, nonce, time, sizes); recompute the root over the accepted log plus
//! the new entries; record what the channel showed in the observed log (fork detection); ask the
//! peers to confirm the root, dropping the newest entry and asking again on failure down to the
//! current size; apply the confirmed entries to the key state, all or nothing, in one SQLite
//! transaction; then install newer allowed releases of tracked packages.
//!
//! Nothing is changed unless everything before it verified. The outcome says which kind of
//! failure happened, so the exit code can tell a misbehaving channel from an unreachable one.

use keyggdrasil::entry::Entry;
use keyggdrasil::limits::Limits;
use keyggdrasil::log::LogView;
use keyggdrasil::merkle::{Blake2b256, MemoryStore};
use keyggdrasil::peers::NoPeers;

use crate::peers::PeerOutcome;
use keyggdrasil::state::KeyState;
use rusqlite::Connection;

use crate::channel::{ChannelClient, ChannelError};
use crate::config::{ChannelConfig, Config, SitePaths};
use crate::db;
use crate::transport::Http;

/// Most update pages fetched from one channel in one run.
pub const MAX_PAGES_PER_RUN: usize = 100;

/// What kind of failure, for exit codes and the run record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The channel or the peers misbehaved; the site is unchanged.
    Verification,
    /// The channel or enough peers could not be reached; the site is unchanged.
    Unreachable,
    /// Something local failed (disk, database, configuration).
    Local,
}

impl FailureKind {
    /// The name recorded in the `runs` table.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Verification => "verification_failed",
            FailureKind::Unreachable => "unreachable",
            FailureKind::Local => "local_error",
        }
    }
}

/// A failed step, with what to tell the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The kind.
    pub kind: FailureKind,
    /// What happened, in plain words.
    pub message: String,
}

impl Failure {
    fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    fn local(e: impl std::fmt::Display) -> Self {
        Self::new(FailureKind::Local, e.to_string())
    }
}

/// What a cycle did for one channel (also printed by `continuum update --json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChannelReport {
    /// The channel.
    pub channel: String,
    /// Accepted log size before.
    pub size_before: u64,
    /// Accepted log size after.
    pub size_after: u64,
    /// Entries the channel offered but peers did not confirm (dropped this run).
    pub dropped: u64,
    /// How many peers agreed on the accepted root (0 when nothing new).
    pub peers_agreed: usize,
    /// Agreements the peer rule required, `max(1, ⌈ln N⌉)` (0 when nothing new or no peers).
    pub peers_needed: usize,
    /// Trusted peers configured.
    pub peers_total: usize,
    /// The accepted root (hex) when new entries were confirmed and applied this run.
    pub root: Option<String>,
    /// Releases installed this run.
    pub installed: Vec<InstalledReport>,
    /// Lines for people: what was verified, installed, refused.
    pub notes: Vec<String>,
}

/// One release installed by a cycle.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct InstalledReport {
    /// `supplier/package`.
    pub package: String,
    /// The version installed.
    pub version: String,
    /// The previously installed version, kept for rollback.
    pub previous: Option<String>,
    /// The archive's size in bytes, as logged.
    pub size: u64,
    /// The archive's BLAKE2b-512 digest (hex), as logged and as verified.
    pub digest: String,
    /// The signing key (hex) whose signature over the archive was verified.
    pub signer: String,
}

/// The key state and log of one channel as this site has accepted them.
pub struct Accepted {
    /// The replayed key state.
    pub state: KeyState,
    /// Leaf hashes of the accepted log.
    pub tree: MemoryStore,
}

/// Replays the accepted log of `channel` from the database, verifying every entry again.
pub fn load_accepted(conn: &Connection, channel: &str) -> Result<Accepted, Failure> {
    let mut state = KeyState::new();
    let mut tree = MemoryStore::new();
    for (i, bytes) in db::accepted_entries(conn, channel)
        .map_err(Failure::local)?
        .iter()
        .enumerate()
    {
        let entry = Entry::parse(bytes)
            .map_err(|e| Failure::local(format!("stored entry {i} is corrupt: {e}")))?;
        state
            .apply(&entry)
            .map_err(|e| Failure::local(format!("stored entry {i} no longer verifies: {e}")))?;
        tree.append(&Blake2b256, bytes).map_err(Failure::local)?;
    }
    Ok(Accepted { state, tree })
}

/// Runs steps 1–5 for one channel: returns the accepted state afterwards.
#[allow(clippy::too_many_arguments)]
pub fn update_log(
    conn: &mut Connection,
    config: &Config,
    channel: &ChannelConfig,
    http: &Http,
    peer_http: &Http,
    limits: &Limits,
    now: u64,
    report: &mut ChannelReport,
) -> Result<Accepted, Failure> {
    let name = channel.name.as_str();
    report.channel = name.to_owned();
    if let Some(evidence) = db::fork_evidence(conn, name).map_err(Failure::local)? {
        return Err(Failure::new(
            FailureKind::Verification,
            format!(
                "FORK DETECTED: channel {name} showed inconsistent views of its log; this site no longer updates from it. Evidence: {}",
                evidence.chars().take(300).collect::<String>()
            ),
        ));
    }
    let mut accepted = load_accepted(conn, name)?;
    let start = accepted.state.size();
    report.size_before = start;
    report.size_after = start;

    // Step 1–2: fetch pages, verify each answer, recompute the root over our log + new entries.
    let client = ChannelClient::new(channel, http, limits);
    let accepted_view = LogView::from_store(start, &accepted.tree).map_err(Failure::local)?;
    let mut candidate = accepted_view.clone();
    let mut new_entries: Vec<Entry> = Vec::new();
    for _ in 0..MAX_PAGES_PER_RUN {
        let since = candidate.size();
        let up = client.updates(since, now).map_err(|e| match e {
            ChannelError::Verification { .. } => {
                Failure::new(FailureKind::Verification, e.to_string())
            }
            ChannelError::Unreachable { .. } => {
                Failure::new(FailureKind::Unreachable, e.to_string())
            }
        })?;
        // What the channel showed us is also what our notary vouches for. Observed first, so
        // an answer that contradicts what the channel showed before (a rewritten history) is
        // kept as fork evidence, rather than only refused by the root check below.
        crate::notary::observe(conn, channel, &up)
            .map_err(|e| Failure::new(FailureKind::Verification, e.to_string()))?;
        candidate.extend(&up).map_err(|e| {
            Failure::new(
                FailureKind::Verification,
                format!("channel {name}: {e}: history was rewritten or entries were altered"),
            )
        })?;
        let more = up.has_more();
        new_entries.extend(up.into_entries());
        if !more {
            break;
        }
    }
    if new_entries.is_empty() {
        report.notes.push(format!(
            "channel {name}: up to date at {start} entries (signed answer verified)"
        ));
        return Ok(accepted);
    }

    // Step 3–4: peers confirm the root; on failure drop the newest entry and ask again.
    let concurrency = config.site.peer_concurrency.unwrap_or(16);
    let no_peers = if config.site.allow_no_peers {
        NoPeers::Allow
    } else {
        NoPeers::Refuse
    };
    let roots = accepted_view
        .prefix_roots(new_entries.iter().map(|e| e.as_bytes()))
        .map_err(Failure::local)?;
    let mut target = start + new_entries.len() as u64;
    let mut last_reason: Option<(FailureKind, String)> = None;
    while target > start {
        let root = roots[(target - start - 1) as usize];
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
                last_reason = None;
                break;
            }
            PeerOutcome::NoPeers(e) => {
                return Err(Failure::new(
                    FailureKind::Local,
                    format!("channel {name}: {e}"),
                ));
            }
            PeerOutcome::Rejected(reason) => {
                let kind = if outcome.contradicted() {
                    FailureKind::Verification
                } else {
                    FailureKind::Unreachable
                };
                tracing::warn!(channel = name, size = target, %reason, "peers did not confirm the root; dropping the newest entry");
                report.notes.push(format!(
                    "channel {name}: peers did not confirm size {target}: {reason}"
                ));
                last_reason = Some((
                    kind,
                    format!(
                        "peers did not confirm the channel's log: {reason} ({}; {})",
                        outcome.summary(),
                        // Each peer's answer: "behind", "no answer", "DISAGREE" say what
                        // happened where the counts alone do not.
                        outcome
                            .lines
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                ));
                target -= 1;
            }
        }
    }
    if let Some((kind, message)) = last_reason {
        return Err(Failure::new(
            kind,
            format!("channel {name}: {message}; nothing was applied"),
        ));
    }
    if target == start {
        return Err(Failure::new(
            FailureKind::Unreachable,
            format!("channel {name}: no new entry could be confirmed"),
        ));
    }
    let take = (target - start) as usize;
    report.dropped = new_entries.len() as u64 - take as u64;
    if report.dropped > 0 {
        report.notes.push(format!(
            "channel {name}: WARNING: the {} newest entries could not be confirmed by peers and were not applied; they will be checked again next run",
            report.dropped
        ));
    }

    // Step 5: apply to the key state, all or nothing, and store in one transaction.
    let confirmed = &new_entries[..take];
    let mut next = accepted.state.clone();
    next.apply_all(confirmed.iter()).map_err(|(index, refusal)| {
        Failure::new(
            FailureKind::Verification,
            format!("channel {name} logged entry {index}, which breaks the key rules: {refusal}; nothing was applied"),
        )
    })?;
    let tx = conn.transaction().map_err(Failure::local)?;
    let bytes: Vec<&[u8]> = confirmed.iter().map(|e| e.as_bytes()).collect();
    db::append_accepted(&tx, name, start, &bytes).map_err(Failure::local)?;
    tx.commit().map_err(Failure::local)?;
    accepted.state = next;
    for e in confirmed {
        accepted
            .tree
            .append(&Blake2b256, e.as_bytes())
            .map_err(Failure::local)?;
    }
    report.size_after = target;
    report.notes.push(format!(
        "channel {name}: applied {take} new entries (log size {target})"
    ));
    Ok(accepted)
}

/// Step 6 for one channel: install the newest allowed, installable release of every tracked
/// package of this channel that is newer than what is installed (or not installed yet).
#[allow(clippy::too_many_arguments)]
pub fn install_packages(
    paths: &SitePaths,
    conn: &Connection,
    config: &Config,
    channel: &ChannelConfig,
    accepted: &Accepted,
    http: &Http,
    limits: &Limits,
    now: u64,
    report: &mut ChannelReport,
) -> Result<(), Failure> {
    let client = ChannelClient::new(channel, http, limits);
    let mut first_failure: Option<Failure> = None;
    for pkg in config.packages.iter().filter(|p| p.channel == channel.name) {
        let installed = db::installed_one(conn, pkg.supplier.as_str(), pkg.name.as_str())
            .map_err(Failure::local)?;
        let current = installed
            .as_ref()
            .and_then(|i| keyggdrasil::names::Version::parse(&i.version).ok());
        if let Some(v) = &current
            && accepted
                .state
                .installable(&pkg.supplier, &pkg.name, v)
                .is_none()
        {
            // Revoked (or its signing key was) after it was installed: say so loudly; the
            // newest allowed release below replaces it if there is one.
            report.notes.push(format!(
                "{}/{}: WARNING: the installed version {v} is no longer trusted (the release or its signing key was revoked); update or roll back",
                pkg.supplier, pkg.name
            ));
            tracing::warn!(package = %pkg.name, version = %v, "installed release was revoked");
        }
        let best = accepted
            .state
            .installable_versions(&pkg.supplier, &pkg.name)
            .into_iter()
            .filter(|r| pkg.policy.allows(current.as_ref(), r.version()))
            .max_by(|a, b| a.version().cmp(b.version()));
        let Some(release) = best else {
            if current.is_none() {
                report.notes.push(format!(
                    "{}/{}: no installable release allowed by policy yet",
                    pkg.supplier, pkg.name
                ));
            }
            continue;
        };
        let urls = client.archive_urls(
            pkg.supplier.as_str(),
            pkg.name.as_str(),
            release.version().as_str(),
        );
        match crate::install::install_release(
            paths,
            conn,
            http,
            &urls,
            &release,
            channel.name.as_str(),
            limits,
            now,
        ) {
            Ok(done) => {
                report.installed.push(InstalledReport {
                    package: format!("{}/{}", pkg.supplier, pkg.name),
                    version: done.version.clone(),
                    previous: done.previous.clone(),
                    size: release.size(),
                    digest: release.digest().to_hex(),
                    signer: release.signer().to_hex(),
                });
                report.notes.push(format!(
                "{}/{}: installed {} (archive {} bytes, BLAKE2b-512 {}…, signature by {} verified){}",
                pkg.supplier,
                pkg.name,
                done.version,
                release.size(),
                &release.digest().to_hex()[..16],
                release.signer().fingerprint(),
                match &done.previous {
                    Some(p) => format!(", previous {p} kept for rollback"),
                    None => String::new(),
                }
            ));
            }
            Err(e) => {
                let kind = if e.is_verification() {
                    FailureKind::Verification
                } else if e.is_unreachable() {
                    FailureKind::Unreachable
                } else {
                    FailureKind::Local
                };
                // The whole chain: "could not be extracted" alone would not say why (a path
                // escaping the folder, a symlink, a limit).
                let release_name = format!("{}/{} {}", pkg.supplier, pkg.name, release.version());
                let why = error_chain(&e);
                let why = why
                    .strip_prefix(&format!("{release_name}: "))
                    .unwrap_or(&why);
                let f = Failure::new(
                    kind,
                    format!("{release_name}: {why}; the installed version is unchanged"),
                );
                report.notes.push(f.message.clone());
                first_failure.get_or_insert(f);
            }
        }
    }
    match first_failure {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// An error and its sources, joined with ": ".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        // `#[error(transparent)]` wrappers repeat their inner error's text.
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
