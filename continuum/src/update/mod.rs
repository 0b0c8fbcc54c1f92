//! One update cycle (`continuum update`), DESIGN.md steps 1–6.
//!
//! For each configured channel, [`update_log`] runs three stages, each in its own module:
//!
//! 1. [`fetch`]: fetch new entries with a fresh nonce and verify the channel's answer
//!    (signature, origin, nonce, time, sizes); record what the channel showed in the observed
//!    log (fork detection); recompute the root over the accepted log plus the new entries;
//! 2. [`confirm`]: ask the peers to confirm the root, dropping the newest entry and asking again
//!    on failure down to the current size;
//! 3. [`apply`]: apply the confirmed entries to the key state, all or nothing, in one SQLite
//!    transaction.
//!
//! Then [`install_packages`] installs newer allowed releases of tracked packages.
//!
//! Nothing is changed unless everything before it verified. An [`UpdateError`] says what
//! failed, and its [`UpdateError::kind`] tells a misbehaving channel from an unreachable one and
//! from a local failure. The verification itself is keyggdrasil's; these stages do the I/O.

mod apply;
mod confirm;
mod dry_run;
mod fetch;
mod packages;

use keyggdrasil::limits::Limits;
use keyggdrasil::log::LogError;
use keyggdrasil::merkle::MerkleError;
use keyggdrasil::names::{ChannelName, PackageName, SupplierName, Version};
use keyggdrasil::peers::{PeerRuleError, RejectReason};
use keyggdrasil::snapshot::PartialState;
use keyggdrasil::state::{Refusal, VerifiedRelease};
use rusqlite::Connection;
use thiserror::Error;

use crate::channel::{ChannelClient, ChannelError};
use crate::config::{ChannelConfig, Config, ConfigError};
use crate::db::{self, DbError};
use crate::error::{ErrorKind, chain};
use crate::install::InstallError;
use crate::lock::LockError;
use crate::notary::ObserveError;
use crate::snapshot::{self, StateError};
use crate::transport::{Http, TransportError};

pub use dry_run::verify_installs;
pub use packages::{RolloutSite, RolloutWait, install_packages, rollout_waits};

/// Most update pages fetched from one channel in one run: 4,000 pages of at most 500 entries
/// (a site joining a log of two million entries catches up in one run; pages are staged in
/// the database, not held in memory). `run_deadline_secs` still bounds the run's time.
pub const MAX_PAGES_PER_RUN: usize = 4_000;

/// Why an update run, or one channel's part of it, failed. Whatever failed, nothing after the
/// failing step was done, and what the step had begun was undone (see [`crate::install`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// Another update holds the site's lock; this run did nothing.
    #[error("another continuum update is running for this site; not starting a second one")]
    Busy,
    /// The site's lock could not be taken for a local reason.
    #[error(transparent)]
    Lock(LockError),
    /// The site's config is missing, unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The site database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The HTTP client could not be built (for example, a bad proxy).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Repairing the installed packages at the start of the run failed.
    #[error(transparent)]
    Reconcile(Box<InstallError>),
    /// The stored key-state snapshot does not match the stored log, or could not be read or
    /// advanced (see [`crate::snapshot`]).
    #[error(transparent)]
    State(#[from] StateError),
    /// The in-memory tree of the accepted log could not be built or extended.
    #[error(transparent)]
    Tree(#[from] MerkleError),
    /// A fork was recorded for this channel earlier: the site no longer updates from it.
    #[error(
        "FORK DETECTED: channel {channel} showed inconsistent views of its log; this site no longer updates from it. Evidence: {evidence}"
    )]
    ForkRecorded {
        /// The channel.
        channel: String,
        /// The start of the stored evidence (300 characters at most).
        evidence: String,
    },
    /// The channel could not be reached, or its answer failed verification.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// Recording what the channel showed in the observed log refused it (a fork, or not a
    /// statement of this channel) or failed locally (database, stored tree).
    #[error(transparent)]
    Observe(#[from] ObserveError),
    /// The channel's new entries do not extend the accepted log to its signed root.
    #[error("channel {channel}: {source}: history was rewritten or entries were altered")]
    NotAnExtension {
        /// The channel.
        channel: String,
        /// The check that failed.
        #[source]
        source: LogError,
    },
    /// No peers are configured and `allow_no_peers` is not set.
    #[error(
        "channel {channel}: {source} (add peers with `continuum peers add URL KEY`, their notary URL and key; or set allow_no_peers = true under [site] in continuum.toml to trust the channel alone, for tests and first set-up only)"
    )]
    NoPeers {
        /// The channel.
        channel: String,
        /// The peer rule's refusal.
        #[source]
        source: PeerRuleError,
    },
    /// The peers did not confirm any new size; nothing was applied.
    #[error(
        "channel {channel}: peers did not confirm the channel's log: {reason} ({peers}); nothing was applied{}",
        refused_hint(*.contradicted)
    )]
    PeersRefused {
        /// The channel.
        channel: String,
        /// Why the peer rule refused the last size tried (the smallest new one).
        reason: RejectReason,
        /// True if a peer contradicted the root (disagreed or reported a fork), as opposed to
        /// too few answering.
        contradicted: bool,
        /// The counts and each peer's answer, for people.
        peers: String,
    },
    /// The site's witness policy is not met for the size the channel offers: nothing new is
    /// accepted.
    #[error(
        "channel {channel}: the new log size {size} is not witnessed as this site's witness_policy requires: {reason}; nothing new was accepted"
    )]
    WitnessQuorum {
        /// The channel.
        channel: String,
        /// The size offered.
        size: u64,
        /// What is missing.
        reason: String,
    },
    /// The channel offered entries, yet none could be confirmed.
    #[error("channel {channel}: no new entry could be confirmed")]
    NothingConfirmed {
        /// The channel.
        channel: String,
    },
    /// The peer-confirmed entries break the key rules; nothing was applied.
    #[error(
        "channel {channel} logged entry {index}, which breaks the key rules: {source}; nothing was applied"
    )]
    KeyRules {
        /// The channel.
        channel: String,
        /// The log index of the first entry refused.
        index: u64,
        /// The rule it breaks.
        #[source]
        source: Box<Refusal>,
    },
    /// A package's `install_dir` cannot be made or kept (something else is at that path, or
    /// its folder is missing); nothing was fetched or installed for the run when found first.
    #[error("install_dir {}", chain(.0))]
    InstallDir(Box<InstallError>),
    /// `update --dry-run` could not make its temporary folder (set `TMPDIR` to a writable
    /// folder with room for the archives).
    #[error(
        "could not create the dry run's temporary folder {path} (set TMPDIR to a writable folder with room for the archives)"
    )]
    Scratch {
        /// The folder.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A release could not be installed; the installed version is unchanged.
    #[error("{release}: {}; the installed version is unchanged", install_reason(.release, .source))]
    Install {
        /// `supplier/package version`.
        release: String,
        /// What failed.
        #[source]
        source: Box<InstallError>,
    },
}

/// What to do when too few peers confirmed (nothing to add when a peer contradicted the
/// channel: that is not fixed by adding peers).
fn refused_hint(contradicted: bool) -> &'static str {
    if contradicted {
        ""
    } else {
        "; too few peers confirmed: check that they are up (`continuum status` lists unreachable and bogus peers), or add more with `continuum peers add URL KEY` (allow_no_peers under [site] applies only to a site with no peers at all)"
    }
}

/// The install error's whole chain, without the release name it starts with (the message
/// names it already). The whole chain: "could not be extracted" alone would not say why (a
/// path escaping the folder, a symlink, a limit).
fn install_reason(release: &str, e: &InstallError) -> String {
    let why = chain(e);
    match why.strip_prefix(&format!("{release}: ")) {
        Some(rest) => rest.to_owned(),
        None => why,
    }
}

impl UpdateError {
    /// What kind of failure this is (and so the exit code): the channel, peers or an archive
    /// misbehaving is [`ErrorKind::Verification`]; the channel, peers or mirrors out of reach
    /// is [`ErrorKind::Unreachable`]; anything failing on this machine (including the site
    /// database inside the observed log) is [`ErrorKind::Local`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            UpdateError::Busy => ErrorKind::AnotherRunInProgress,
            UpdateError::Lock(e) => e.kind(),
            UpdateError::Config(_)
            | UpdateError::Db(_)
            | UpdateError::Transport(_)
            | UpdateError::Reconcile(_)
            | UpdateError::InstallDir(_)
            | UpdateError::Scratch { .. }
            | UpdateError::State(_)
            | UpdateError::Tree(_)
            | UpdateError::NoPeers { .. } => ErrorKind::Local,
            UpdateError::ForkRecorded { .. }
            | UpdateError::NotAnExtension { .. }
            | UpdateError::KeyRules { .. } => ErrorKind::Verification,
            UpdateError::Channel(e) => {
                if e.is_verification() {
                    ErrorKind::Verification
                } else {
                    ErrorKind::Unreachable
                }
            }
            UpdateError::Observe(e) => observe_kind(e),
            UpdateError::PeersRefused { contradicted, .. } => {
                if *contradicted {
                    ErrorKind::Verification
                } else {
                    ErrorKind::Unreachable
                }
            }
            UpdateError::NothingConfirmed { .. } | UpdateError::WitnessQuorum { .. } => {
                ErrorKind::Unreachable
            }
            UpdateError::Install { source, .. } => source.kind(),
        }
    }
}

/// Only what the channel did is a verification failure: a fork, or an answer that is not a
/// statement of this channel. A gap between the observed and the accepted log, the database
/// and the stored tree are this site's own state.
fn observe_kind(e: &ObserveError) -> ErrorKind {
    match e {
        ObserveError::Fork { .. }
        | ObserveError::ForkRecorded { .. }
        | ObserveError::Invalid { .. } => ErrorKind::Verification,
        _ => ErrorKind::Local,
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
    /// Peers that could not be reached (or said they were overloaded) this run.
    pub peers_unreachable: Vec<crate::peers::PeerProblem>,
    /// Peers whose answer was unusable this run: a bad signature (wrong key pinned?), not
    /// following the channel, not HTTP, cut short, stale. Counted as failures, never as
    /// disagreements; `status` warns about them.
    pub peers_bogus: Vec<crate::peers::PeerProblem>,
    /// The accepted root (hex) when new entries were confirmed and applied this run.
    pub root: Option<String>,
    /// Releases installed this run.
    pub installed: Vec<InstalledReport>,
    /// `update --dry-run`: releases that would be installed (archive downloaded and verified
    /// into a temporary folder, nothing installed). Absent from the JSON of a real run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_install: Vec<InstalledReport>,
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

/// The key state and log of one channel as this site has accepted them, from the snapshot
/// (see [`crate::snapshot`]): the head and compact range of the accepted log, and the key state
/// with the channel's tracked packages loaded. Loading it is O(log n + rows of those packages).
pub struct Accepted {
    /// The accepted log, checked at start against the stored entries and tree hashes.
    pub log: snapshot::Opened,
    /// The key state of the tracked packages of this channel (and their suppliers' keys);
    /// asking about anything else is an error ([`StateError::NotLoaded`]), never a wrong answer.
    pub state: PartialState,
}

impl Accepted {
    /// Entries accepted.
    pub fn size(&self) -> u64 {
        self.log.head.size
    }

    /// Every installable release of a loaded package, oldest first.
    pub fn installable_versions(
        &self,
        supplier: &SupplierName,
        package: &PackageName,
    ) -> Result<Vec<VerifiedRelease>, UpdateError> {
        Ok(self
            .state
            .installable_versions(supplier, package)
            .map_err(StateError::from)?)
    }

    /// The release of a loaded package, if it is installable now.
    pub fn installable(
        &self,
        supplier: &SupplierName,
        package: &PackageName,
        version: &Version,
    ) -> Result<Option<VerifiedRelease>, UpdateError> {
        Ok(self
            .state
            .installable(supplier, package, version)
            .map_err(StateError::from)?)
    }
}

/// Opens the accepted log of `channel` (the start check of [`crate::snapshot::open`]) and loads
/// the key state of the packages `config` tracks on it.
pub fn load_accepted(
    conn: &Connection,
    config: &Config,
    channel: &ChannelName,
) -> Result<Accepted, UpdateError> {
    let log = snapshot::open(conn, channel)?;
    let state = snapshot::load_packages(
        conn,
        channel.as_str(),
        log.head.size,
        config
            .packages
            .iter()
            .filter(|p| p.channel == *channel)
            .map(|p| (&p.supplier, &p.name)),
    )?;
    Ok(Accepted { log, state })
}

/// The root of the observed log at `size` (fetched pages are observed before they are staged,
/// so every size up to the candidate's has its stored tree hashes): O(log n) reads.
fn root_at(
    conn: &Connection,
    channel: &ChannelName,
    size: u64,
) -> Result<keyggdrasil::merkle::Hash, UpdateError> {
    crate::notary::observed_root_at(conn, channel, size)?.ok_or_else(|| {
        UpdateError::State(StateError::Mismatch {
            channel: channel.as_str().to_owned(),
            detail: format!("the observed log does not reach size {size}"),
        })
    })
}

/// Runs steps 1–5 for one channel (fetch, confirm, apply): returns the accepted state
/// afterwards. Changes nothing but the observed log unless the peers confirmed a root and every
/// confirmed entry passes the key rules.
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
) -> Result<Accepted, UpdateError> {
    let name = channel.name.as_str();
    report.channel = name.to_owned();
    if let Some(evidence) = db::fork_evidence(conn, name)? {
        return Err(UpdateError::ForkRecorded {
            channel: name.to_owned(),
            evidence: evidence.chars().take(300).collect(),
        });
    }
    let accepted = load_accepted(conn, config, &channel.name)?;
    let start = accepted.size();
    report.size_before = start;
    report.size_after = start;

    let client = ChannelClient::new(channel, http, limits);
    let accepted_view = accepted.log.view.clone();
    let fetch_started = std::time::Instant::now();
    let candidate = fetch::fetch(conn, channel, &client, &accepted_view, now)?;
    tracing::info!(
        channel = name,
        entries = candidate.size() - start,
        secs = fetch_started.elapsed().as_secs_f64(),
        "fetched, verified and staged the new entries"
    );
    if candidate.size() == start {
        report.notes.push(format!(
            "channel {name}: up to date at {start} entries (signed answer verified)"
        ));
        return Ok(accepted);
    }
    if let Some(policy) = &channel.witness_policy {
        witnessed(channel, &client, policy, &candidate, now)?;
        report.notes.push(format!(
            "channel {name}: size {} is witnessed as the site's witness policy requires",
            candidate.size()
        ));
    }
    let target = confirm::confirm(
        config,
        channel,
        peer_http,
        limits,
        now,
        start,
        candidate.size(),
        report,
        &|size| root_at(conn, &channel.name, size),
    )?;
    let apply_started = std::time::Instant::now();
    apply::apply(conn, name, &accepted, candidate.size(), target, report)?;
    tracing::info!(
        channel = name,
        entries = target - start,
        secs = apply_started.elapsed().as_secs_f64(),
        "applied the confirmed entries"
    );
    // The tracked packages again, as the new entries left them.
    load_accepted(conn, config, &channel.name)
}

/// The pauses before each re-read of the channel's checkpoint note while its cosignatures
/// have not caught up with the size offered (the channel pushes to its witnesses once a
/// second).
const WITNESS_CATCH_UP: [std::time::Duration; 3] = [
    std::time::Duration::from_millis(500),
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(2),
];

/// The site's witness policy: the channel's checkpoint note (from a tile mirror or
/// `GET /checkpoint`) must be of exactly the candidate's size and root, signed by the pinned key,
/// and carry cosignatures meeting the quorum within the freeze bound.
fn witnessed(
    channel: &ChannelConfig,
    client: &ChannelClient<'_>,
    policy: &str,
    candidate: &keyggdrasil::log::LogView,
    now: u64,
) -> Result<(), UpdateError> {
    let name = channel.name.as_str();
    let fail = |reason: String| UpdateError::WitnessQuorum {
        channel: name.to_owned(),
        size: candidate.size(),
        reason,
    };
    let policy = keyggdrasil::policy::Policy::parse(policy).map_err(|e| fail(e.to_string()))?;
    let max_age = channel
        .max_cosignature_age_secs
        .unwrap_or(crate::config::DEFAULT_MAX_COSIGNATURE_AGE_SECS);
    let mut last = String::from("no checkpoint note could be read");
    for pause in std::iter::once(None).chain(WITNESS_CATCH_UP.map(Some)) {
        if let Some(p) = pause {
            std::thread::sleep(p);
        }
        let Some(cp) = client.checkpoint_note()? else {
            continue;
        };
        if cp.size() != candidate.size() {
            last = format!(
                "the cosigned checkpoint is of size {}, not {}",
                cp.size(),
                candidate.size()
            );
            continue;
        }
        candidate
            .check_root(cp.size(), cp.root())
            .map_err(|source| UpdateError::NotAnExtension {
                channel: name.to_owned(),
                source,
            })?;
        match policy.check(cp.note().as_bytes(), now, max_age, 300) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(fail(last))
}
