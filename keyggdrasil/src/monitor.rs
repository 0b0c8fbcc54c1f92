//! What a supplier's monitor decides (`barge monitor`): which log entries in the supplier's name
//! the author's own tools did not make, and which views of the log contradict each other.
//!
//! The author's tools append a [`JournalRecord`] to `local/journal.jsonl` for every entry they
//! submit, **before** they submit it (so a crash between the two can only leave a record of an
//! entry that never reached the log, never an entry without its record). The monitor reads every
//! new log entry (O(new entries) a run, from the verified [`LogView`] it keeps in
//! [`MonitorState`]) and asks [`check_entry`]: an entry in a watched supplier's name whose leaf
//! hash is not in the [`Journal`] is a [`Finding::NotMadeByYou`], whatever it is (a key added, a
//! release, a revocation of the author's key, an attestation). It then compares its view with the
//! views others hold ([`compare_view`]): the channel's cosigned checkpoint note, notaries.
//!
//! Every finding has a stable [`Finding::id`], so a finding is reported once ([`MonitorState`]
//! keeps what was reported) unless the caller asks again.
//!
//! What this module does not do: any I/O (the journal and state bytes come from the caller),
//! verify signatures of answers (the caller passes only verified updates and checkpoints), or
//! apply the key rules of [`crate::state`] (a channel that logs an entry the rules refuse is
//! caught by every site replaying the log; the monitor's question is who made the entry, and an
//! entry in the author's name that the author did not make is an alert whether or not the rules
//! accept it).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::entry::{Entry, Event};
use crate::keys::PublicKey;
use crate::log::{LogError, LogView};
use crate::merkle::{self, Blake2b256, ConsistencyProof, Hash};
use crate::names::SupplierName;
use crate::wire::TreeHash;

/// The journal's file name inside the author's `local/` folder.
pub const JOURNAL_NAME: &str = "journal.jsonl";
/// The monitor state's file name inside `local/`.
pub const STATE_NAME: &str = "monitor.state";
/// The journal is read whole; past this it is refused rather than read without bound (at about
/// 250 bytes a record, some 250,000 entries of one author).
pub const MAX_JOURNAL_BYTES: usize = 64 << 20;
/// Largest state file read.
pub const MAX_STATE_BYTES: usize = 4 << 20;
/// Findings remembered as reported; the oldest are forgotten first (and reported again if they
/// come back).
pub const MAX_REPORTED: usize = 10_000;
/// Version of the journal and state formats.
pub const FORMAT_VERSION: u32 = 1;

/// Why the journal or the state could not be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// A journal line is not a record (the file was edited or damaged).
    #[error("journal line {line}: {problem}")]
    Journal {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// The journal or the state is larger than its limit.
    #[error("{what} is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Which file.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The state file cannot be read as a state.
    #[error("monitor state: {0}")]
    State(String),
    /// The state's hashes do not give its root (the file was damaged).
    #[error("monitor state: {0}")]
    StateView(#[from] LogError),
}

/// One entry the author's tools made, as `local/journal.jsonl` keeps it (one JSON object a line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalRecord {
    /// Always [`FORMAT_VERSION`].
    pub v: u32,
    /// The entry's leaf hash (what the log hashes): the record's identity.
    pub leaf_hash: TreeHash,
    /// The supplier it is in the name of.
    pub supplier: SupplierName,
    /// Its event kind ([`Event::kind`]).
    pub kind: String,
    /// When the tool wrote the record, Unix seconds.
    pub time: u64,
    /// The tool that made it (`barge release`, `barge publish`, …), for people.
    pub tool: String,
}

impl JournalRecord {
    /// The record of `entry`, made by `tool` at `time`.
    pub fn for_entry(entry: &Entry, tool: &str, time: u64) -> Self {
        Self {
            v: FORMAT_VERSION,
            leaf_hash: TreeHash(LogView::leaf_hash(entry.as_bytes())),
            supplier: entry.body().supplier.clone(),
            kind: entry.body().event.kind().to_owned(),
            time,
            tool: tool.to_owned(),
        }
    }

    /// The record as one journal line, newline included.
    pub fn line(&self) -> String {
        // A struct of strings and numbers always serialises.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

/// The set of entries the author's tools made, by leaf hash.
#[derive(Debug, Default, Clone)]
pub struct Journal {
    made: HashSet<Hash>,
    torn_tail: bool,
}

impl Journal {
    /// Parses a whole journal. Every complete line must be a [`JournalRecord`]; a last line
    /// without its newline (a tool killed while appending) is skipped and said by
    /// [`Self::torn_tail`]: its entry, if it reached the log at all, is then reported, which
    /// errs on the side of telling the author.
    pub fn parse(bytes: &[u8]) -> Result<Self, MonitorError> {
        if bytes.len() > MAX_JOURNAL_BYTES {
            return Err(MonitorError::TooLarge {
                what: "the journal",
                size: bytes.len(),
                limit: MAX_JOURNAL_BYTES,
            });
        }
        let mut journal = Journal::default();
        let mut rest = bytes;
        let mut line_no = 0;
        while !rest.is_empty() {
            line_no += 1;
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                journal.torn_tail = true;
                break;
            };
            let line = &rest[..end];
            rest = &rest[end + 1..];
            let record: JournalRecord =
                serde_json::from_slice(line).map_err(|e| MonitorError::Journal {
                    line: line_no,
                    problem: e.to_string(),
                })?;
            if record.v != FORMAT_VERSION {
                return Err(MonitorError::Journal {
                    line: line_no,
                    problem: format!("unknown format version {}", record.v),
                });
            }
            journal.made.insert(record.leaf_hash.0);
        }
        Ok(journal)
    }

    /// Whether the author's tools made the entry with this leaf hash.
    pub fn contains(&self, leaf_hash: &Hash) -> bool {
        self.made.contains(leaf_hash)
    }

    /// The number of distinct entries recorded.
    pub fn len(&self) -> usize {
        self.made.len()
    }

    /// True when no entry is recorded.
    pub fn is_empty(&self) -> bool {
        self.made.is_empty()
    }

    /// True when the last line was cut short (and skipped).
    pub fn torn_tail(&self) -> bool {
        self.torn_tail
    }
}

/// Something the monitor tells the author. Alerts ([`Self::is_alert`]) make `barge monitor`
/// exit non-zero; notices are only said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Finding {
    /// An entry in a watched supplier's name that the author's tools did not make.
    NotMadeByYou {
        /// Log index.
        index: u64,
        /// Its leaf hash.
        leaf_hash: TreeHash,
        /// The supplier.
        supplier: SupplierName,
        /// The event kind ([`Event::kind`]).
        event: String,
        /// The key that signed it.
        signer: PublicKey,
        /// What it does, for people.
        what: String,
    },
    /// Another supplier attested a release of a watched supplier (a notice, not an alert).
    AttestedByOther {
        /// Log index.
        index: u64,
        /// The attesting supplier.
        attester: SupplierName,
        /// The watched supplier.
        subject: SupplierName,
        /// What was attested, for people.
        what: String,
    },
    /// Another view of the log has another root for a size the monitor verified, or cannot be
    /// linked to the monitor's view by a consistency proof: the log was forked (split view).
    Fork {
        /// Where the other view came from.
        source: String,
        /// The monitor's size.
        ours: u64,
        /// The monitor's root at that size.
        our_root: TreeHash,
        /// The other view's size.
        theirs: u64,
        /// The other view's root.
        their_root: TreeHash,
    },
    /// The channel's signed answer does not extend the log the monitor verified before: the
    /// history it showed earlier was rewritten.
    Rewritten {
        /// The size verified before.
        size: u64,
        /// What the channel signed now, for people.
        detail: String,
    },
    /// The channel showed a smaller log than the monitor verified before.
    Shrunk {
        /// The size verified before.
        before: u64,
        /// The size shown now.
        now: u64,
        /// Where.
        source: String,
    },
    /// Another view shows a larger log that extends the monitor's, while the channel keeps
    /// showing the monitor the smaller one: entries are withheld from the monitor (a freeze).
    Withheld {
        /// Where the larger view came from.
        source: String,
        /// The size the channel shows the monitor.
        ours: u64,
        /// The larger size.
        theirs: u64,
    },
    /// A witness the monitor was told to expect has not cosigned the channel's checkpoint note
    /// (after waiting a few seconds): the channel may be showing that witness another log.
    Unwitnessed {
        /// The witness's key name.
        witness: String,
        /// The note's size.
        size: u64,
    },
    /// The log did not grow for longer than the configured age.
    Frozen {
        /// Its size.
        size: u64,
        /// Seconds since it last grew (or since monitoring started).
        quiet_secs: u64,
        /// The configured age.
        max_quiet_secs: u64,
    },
    /// A channel answer failed verification (bad signature, wrong nonce, stale time, bad
    /// proof): the channel, or someone between it and the monitor, is lying.
    Misbehaved {
        /// Where.
        source: String,
        /// What failed.
        detail: String,
    },
}

impl Finding {
    /// A stable identity: the same finding in a later run has the same id, so it is reported
    /// once.
    pub fn id(&self) -> String {
        match self {
            Finding::NotMadeByYou { leaf_hash, .. } => {
                format!("not_made_by_you:{}", hex::encode(leaf_hash.0))
            }
            Finding::AttestedByOther { index, .. } => format!("attested_by_other:{index}"),
            Finding::Fork {
                source,
                theirs,
                their_root,
                ..
            } => format!("fork:{source}:{theirs}:{}", hex::encode(their_root.0)),
            Finding::Rewritten { size, .. } => format!("rewritten:{size}"),
            Finding::Shrunk { before, now, .. } => format!("shrunk:{before}:{now}"),
            Finding::Withheld { source, theirs, .. } => format!("withheld:{source}:{theirs}"),
            Finding::Unwitnessed { witness, size } => format!("unwitnessed:{witness}:{size}"),
            // One alert per quiet size: it comes back only after the log grew and froze again.
            Finding::Frozen { size, .. } => format!("frozen:{size}"),
            Finding::Misbehaved { source, detail } => format!("misbehaved:{source}:{detail}"),
        }
    }

    /// True for alerts, false for notices.
    pub fn is_alert(&self) -> bool {
        !matches!(self, Finding::AttestedByOther { .. })
    }

    /// The finding's kind, as in its JSON `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::NotMadeByYou { .. } => "not_made_by_you",
            Finding::AttestedByOther { .. } => "attested_by_other",
            Finding::Fork { .. } => "fork",
            Finding::Rewritten { .. } => "rewritten",
            Finding::Shrunk { .. } => "shrunk",
            Finding::Withheld { .. } => "withheld",
            Finding::Unwitnessed { .. } => "unwitnessed",
            Finding::Frozen { .. } => "frozen",
            Finding::Misbehaved { .. } => "misbehaved",
        }
    }

    /// One sentence for people: what was seen.
    pub fn sentence(&self) -> String {
        match self {
            Finding::NotMadeByYou {
                index,
                supplier,
                signer,
                what,
                ..
            } => format!(
                "entry {index} in the name of {supplier} was not made by your tools: {what}, signed by key {}",
                signer.fingerprint()
            ),
            Finding::AttestedByOther {
                index,
                attester,
                what,
                ..
            } => format!("entry {index}: {attester} attested {what}"),
            Finding::Fork {
                source,
                ours,
                our_root,
                theirs,
                their_root,
            } => format!(
                "split view: {source} shows size {theirs} with root {}, which does not agree with the log this monitor verified (size {ours}, root {})",
                hex::encode(their_root.0),
                hex::encode(our_root.0)
            ),
            Finding::Rewritten { size, detail } => format!(
                "the channel's log no longer extends the {size} entries this monitor verified before: {detail}"
            ),
            Finding::Shrunk {
                before,
                now,
                source,
            } => format!(
                "{source} shows {now} entries, fewer than the {before} this monitor verified before (rollback)"
            ),
            Finding::Withheld {
                source,
                ours,
                theirs,
            } => format!(
                "{source} shows a log of {theirs} entries that extends this one, but the channel shows this monitor only {ours}: entries are withheld (freeze)"
            ),
            Finding::Unwitnessed { witness, size } => format!(
                "witness {witness} has not cosigned the channel's checkpoint at size {size}: the channel may be showing that witness another log"
            ),
            Finding::Frozen {
                size,
                quiet_secs,
                max_quiet_secs,
            } => format!(
                "the log has not grown from {size} entries for {quiet_secs} s, longer than the {max_quiet_secs} s allowed (freeze?)"
            ),
            Finding::Misbehaved { source, detail } => {
                format!("{source} sent an answer that failed verification: {detail}")
            }
        }
    }

    /// What the author should do, for people.
    pub fn advice(&self) -> &'static str {
        match self {
            Finding::NotMadeByYou { event, .. } if event == "key_revocation" => {
                "if you did not revoke it, another of your master keys is in someone else's hands: revoke that key with a master key you still hold, and tell the channel operator"
            }
            Finding::NotMadeByYou { .. } => {
                "if nobody on your team made it, the key that signed it is stolen: revoke it (barge key revoke), revoke any release it made (barge revoke-release), and tell your users and the channel operator"
            }
            Finding::AttestedByOther { .. } => "nothing to do; check the claim if it surprises you",
            Finding::Fork { .. } | Finding::Rewritten { .. } | Finding::Shrunk { .. } => {
                "keep the state file and this output as evidence (they hold the channel's signatures) and tell the channel operator and your notaries; sites that check peers refuse such a log"
            }
            Finding::Unwitnessed { .. } => {
                "ask the witness's operator what it last cosigned for this channel; if it is another root at this size, the log is forked"
            }
            Finding::Withheld { .. } | Finding::Frozen { .. } => {
                "check whether the channel is up and publishing; if others see new entries and you do not, someone between you and the channel, or the channel, is hiding them"
            }
            Finding::Misbehaved { .. } => {
                "check the pinned channel key and the network path; an answer that fails verification is never used"
            }
        }
    }
}

/// What `entry` at `index` means for the watched suppliers, if anything: an entry in their name
/// that the journal does not hold is [`Finding::NotMadeByYou`]; another supplier's attestation
/// of their release is [`Finding::AttestedByOther`].
pub fn check_entry(
    index: u64,
    entry: &Entry,
    watched: &[SupplierName],
    journal: &Journal,
) -> Option<Finding> {
    let body = entry.body();
    if watched.contains(&body.supplier) {
        let leaf_hash = LogView::leaf_hash(entry.as_bytes());
        if journal.contains(&leaf_hash) {
            return None;
        }
        return Some(Finding::NotMadeByYou {
            index,
            leaf_hash: TreeHash(leaf_hash),
            supplier: body.supplier.clone(),
            event: body.event.kind().to_owned(),
            signer: body.signer,
            what: describe(&body.event),
        });
    }
    if let Event::Attestation {
        subject,
        package,
        version,
        ..
    } = &body.event
        && watched.contains(subject)
    {
        return Some(Finding::AttestedByOther {
            index,
            attester: body.supplier.clone(),
            subject: subject.clone(),
            what: format!("{subject}/{package} {version} as reproduced"),
        });
    }
    None
}

fn describe(event: &Event) -> String {
    match event {
        Event::MasterKey { public_key, .. } => {
            format!("a new master key {} was added", public_key.fingerprint())
        }
        Event::SigningKey { public_key, .. } => {
            format!("a new signing key {} was added", public_key.fingerprint())
        }
        Event::KeyRevocation {
            public_key, reason, ..
        } => format!(
            "key {} was revoked (reason given: {})",
            public_key.fingerprint(),
            reason.as_str()
        ),
        Event::Release {
            package, version, ..
        } => format!("release {package} {version} was logged"),
        Event::ReleaseRevocation {
            package, version, ..
        } => format!("release {package} {version} was revoked"),
        Event::Attestation {
            subject,
            package,
            version,
            ..
        } => format!("an attestation of {subject}/{package} {version} was logged"),
        Event::Rollout {
            package,
            version,
            waves,
            paused,
            ..
        } => {
            if *paused {
                format!("the rollout of {package} {version} was paused")
            } else {
                let steps: Vec<String> = waves
                    .iter()
                    .map(|w| format!("{}% from {}", w.percent, w.not_before))
                    .collect();
                format!(
                    "the rollout of {package} {version} was changed to {}",
                    steps.join(", ")
                )
            }
        }
    }
}

/// Compares another party's view of the log (`their_size`, `their_root`, from `source`) with the
/// monitor's verified `ours`. `proof` is a consistency proof between the two sizes (from the
/// smaller to the larger; the channel's `/v1/proof/consistency`), needed when the sizes differ.
///
/// - Same size: the roots must be equal, else [`Finding::Fork`].
/// - Theirs smaller: the proof must link their root to ours, else [`Finding::Fork`].
/// - Theirs larger: the proof must link ours to theirs, else [`Finding::Fork`]; if it does, the
///   other view is ahead and `Ok(Some(Finding::Withheld))` is returned for the caller to confirm
///   (a log may simply have grown since the monitor read it: the caller asks the channel again
///   and reports the finding only if the channel still shows less).
///
/// A missing proof (the channel would not give one) counts as a failed proof for a smaller
/// view ([`Finding::Fork`]: the other party was shown a log ours does not provably extend) and
/// as withholding for a larger one ([`Finding::Withheld`]: the channel cannot show us that log).
/// A proof that is given and fails is always a fork.
pub fn compare_view(
    ours: &LogView,
    source: &str,
    their_size: u64,
    their_root: &Hash,
    proof: Option<&[Hash]>,
) -> Option<Finding> {
    let fork = || Finding::Fork {
        source: source.to_owned(),
        ours: ours.size(),
        our_root: TreeHash(ours.root()),
        theirs: their_size,
        their_root: TreeHash(*their_root),
    };
    let our_root = ours.root();
    if their_size == ours.size() {
        return (their_root != &our_root).then(fork);
    }
    // Every log extends the empty one, whose root is fixed.
    if their_size == 0 {
        return (their_root != &LogView::empty().root()).then(fork);
    }
    if ours.size() == 0 {
        return Some(Finding::Withheld {
            source: source.to_owned(),
            ours: 0,
            theirs: their_size,
        });
    }
    let withheld = || Finding::Withheld {
        source: source.to_owned(),
        ours: ours.size(),
        theirs: their_size,
    };
    let Some(proof) = proof else {
        // The channel will not link the two roots. Another party's larger log that the channel
        // cannot prove it extends ours is a log withheld from us; a smaller one it cannot prove
        // ours extends was shown to someone else instead of ours.
        return Some(if their_size > ours.size() {
            withheld()
        } else {
            fork()
        });
    };
    let Ok(proof) = ConsistencyProof::new(proof.to_vec()) else {
        return Some(fork());
    };
    let linked = if their_size < ours.size() {
        merkle::verify_consistency(
            &Blake2b256,
            their_size,
            ours.size(),
            their_root,
            &our_root,
            &proof,
        )
        .is_ok()
    } else {
        merkle::verify_consistency(
            &Blake2b256,
            ours.size(),
            their_size,
            &our_root,
            their_root,
            &proof,
        )
        .is_ok()
    };
    if !linked {
        return Some(fork());
    }
    (their_size > ours.size()).then(withheld)
}

/// What the monitor keeps between runs (`local/monitor.state`, JSON): its verified view of the log
/// (O(log n) hashes), when the log last grew, and what it reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorState {
    /// Always [`FORMAT_VERSION`].
    pub v: u32,
    /// The pinned channel key the view was verified with: a state made under another key is
    /// refused rather than mixed.
    pub channel_key: PublicKey,
    /// Verified log size.
    pub size: u64,
    /// Its root.
    pub root: TreeHash,
    /// Its compact range ([`LogView::subtrees`]).
    pub subtrees: Vec<TreeHash>,
    /// When the size last changed (or monitoring started), Unix seconds.
    pub grew_at: u64,
    /// When a run last verified the channel's answer, Unix seconds.
    pub checked_at: u64,
    /// Finding ids reported, with when they were first reported.
    #[serde(default)]
    pub reported: BTreeMap<String, u64>,
    /// Findings that could not be delivered (the `--on-alert` command failed): said again by
    /// the next run, which does not find them again by itself (it reads only new entries).
    #[serde(default)]
    pub pending: Vec<Finding>,
}

impl MonitorState {
    /// A state that has verified nothing yet.
    pub fn new(channel_key: PublicKey, now: u64) -> Self {
        let view = LogView::empty();
        Self {
            v: FORMAT_VERSION,
            channel_key,
            size: 0,
            root: TreeHash(view.root()),
            subtrees: Vec::new(),
            grew_at: now,
            checked_at: 0,
            reported: BTreeMap::new(),
            pending: Vec::new(),
        }
    }

    /// Parses a state file (at most [`MAX_STATE_BYTES`]) and checks that its hashes give its
    /// root.
    pub fn parse(bytes: &[u8]) -> Result<Self, MonitorError> {
        if bytes.len() > MAX_STATE_BYTES {
            return Err(MonitorError::TooLarge {
                what: "the monitor state",
                size: bytes.len(),
                limit: MAX_STATE_BYTES,
            });
        }
        let state: MonitorState =
            serde_json::from_slice(bytes).map_err(|e| MonitorError::State(e.to_string()))?;
        if state.v != FORMAT_VERSION {
            return Err(MonitorError::State(format!(
                "unknown format version {}",
                state.v
            )));
        }
        state.view()?;
        Ok(state)
    }

    /// The state as file bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// The verified view it holds.
    pub fn view(&self) -> Result<LogView, MonitorError> {
        Ok(LogView::from_subtrees(
            self.size,
            self.subtrees.iter().map(|h| h.0).collect(),
            &self.root.0,
        )?)
    }

    /// Keeps `view` as the verified view at `now`; a larger size moves `grew_at`.
    pub fn set_view(&mut self, view: &LogView, now: u64) {
        if view.size() != self.size {
            self.grew_at = now;
        }
        self.size = view.size();
        self.root = TreeHash(view.root());
        self.subtrees = view.subtrees().iter().map(|h| TreeHash(*h)).collect();
        self.checked_at = now;
    }

    /// [`Finding::Frozen`] when the log has not grown for more than `max_quiet_secs`.
    pub fn check_quiet(&self, now: u64, max_quiet_secs: u64) -> Option<Finding> {
        let quiet_secs = now.saturating_sub(self.grew_at);
        (quiet_secs > max_quiet_secs).then_some(Finding::Frozen {
            size: self.size,
            quiet_secs,
            max_quiet_secs,
        })
    }

    /// Keeps `finding` to be said again by the next run (at most [`MAX_REPORTED`] are kept).
    pub fn keep_pending(&mut self, finding: &Finding) {
        if self.pending.len() < MAX_REPORTED && !self.pending.contains(finding) {
            self.pending.push(finding.clone());
        }
    }

    /// Whether `finding` was reported before.
    pub fn was_reported(&self, finding: &Finding) -> bool {
        self.reported.contains_key(&finding.id())
    }

    /// Remembers `finding` as reported at `now`, forgetting the oldest past [`MAX_REPORTED`].
    pub fn mark_reported(&mut self, finding: &Finding, now: u64) {
        self.reported.entry(finding.id()).or_insert(now);
        while self.reported.len() > MAX_REPORTED {
            let Some(oldest) = self
                .reported
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.reported.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{EntryBody, Reason};
    use crate::keys::KeyPair;
    use crate::merkle::{MemoryStore, prove_consistency};

    fn name(s: &str) -> SupplierName {
        SupplierName::parse(s).expect("name")
    }

    fn master(supplier: &str, key: &KeyPair) -> Entry {
        Entry::sign(
            EntryBody::new(
                name(supplier),
                key.public(),
                Event::MasterKey {
                    public_key: key.public(),
                    derivation: None,
                },
            ),
            key,
        )
        .expect("sign")
    }

    #[test]
    fn a_rollout_entry_is_described_by_what_it_does() {
        let event = |paused| Event::Rollout {
            package: crate::names::PackageName::parse("hello").expect("package"),
            version: crate::names::Version::parse("2.0.0").expect("version"),
            replaces: 3,
            waves: vec![
                crate::rollout::Wave {
                    percent: 10,
                    not_before: 5,
                },
                crate::rollout::Wave {
                    percent: 100,
                    not_before: 9,
                },
            ],
            paused,
        };
        assert_eq!(
            describe(&event(true)),
            "the rollout of hello 2.0.0 was paused"
        );
        assert_eq!(
            describe(&event(false)),
            "the rollout of hello 2.0.0 was changed to 10% from 5, 100% from 9"
        );
    }

    #[test]
    fn an_entry_in_the_journal_is_quiet_and_one_missing_is_an_alert() {
        let key = KeyPair::generate();
        let ours = master("acme", &key);
        let journal_text = JournalRecord::for_entry(&ours, "barge key new", 1).line();
        let journal = Journal::parse(journal_text.as_bytes()).expect("journal");
        assert_eq!(journal.len(), 1);
        let watched = [name("acme")];
        assert_eq!(check_entry(0, &ours, &watched, &journal), None);

        let thief = KeyPair::generate();
        let revoke = Entry::sign(
            EntryBody::new(
                name("acme"),
                thief.public(),
                Event::KeyRevocation {
                    public_key: key.public(),
                    reason: Reason::parse("stolen").expect("reason"),
                },
            ),
            &thief,
        )
        .expect("sign");
        let f = check_entry(7, &revoke, &watched, &journal).expect("an alert");
        assert!(f.is_alert());
        assert_eq!(f.kind(), "not_made_by_you");
        assert!(f.sentence().contains("entry 7"), "{}", f.sentence());
        assert!(f.sentence().contains("was revoked"), "{}", f.sentence());
        assert!(f.advice().contains("master key"));
        // Another supplier's entry is none of acme's business.
        assert_eq!(
            check_entry(8, &master("other", &thief), &watched, &journal),
            None
        );
    }

    #[test]
    fn a_damaged_journal_is_refused_and_a_torn_last_line_is_skipped() {
        let key = KeyPair::generate();
        let line = JournalRecord::for_entry(&master("acme", &key), "t", 1).line();
        let mut torn = line.clone().into_bytes();
        torn.extend_from_slice(&line.as_bytes()[..20]);
        let j = Journal::parse(&torn).expect("torn tail is fine");
        assert!(j.torn_tail());
        assert_eq!(j.len(), 1);
        let bad = format!("{line}{{\"v\":1}}\n");
        let e = Journal::parse(bad.as_bytes()).expect_err("bad line");
        assert!(e.to_string().contains("journal line 2"), "{e}");
        let other_version = line.replace("\"v\":1", "\"v\":2");
        assert!(Journal::parse(other_version.as_bytes()).is_err());
        let huge = vec![b' '; MAX_JOURNAL_BYTES + 1];
        assert!(matches!(
            Journal::parse(&huge),
            Err(MonitorError::TooLarge { .. })
        ));
    }

    fn log_of(n: u64) -> (MemoryStore, Vec<LogView>) {
        let mut store = MemoryStore::new();
        let mut views = vec![LogView::empty()];
        let mut view = LogView::empty();
        for i in 0..n {
            let e = format!("entry {i}");
            store.append(&Blake2b256, e.as_bytes()).expect("append");
            view.push_entries([e.as_bytes()]).expect("push");
            views.push(view.clone());
        }
        (store, views)
    }

    #[test]
    fn views_are_compared_by_root_and_consistency_proof() {
        let (store, views) = log_of(9);
        let ours = &views[5];
        // The empty log: extended by every log, with one root.
        assert_eq!(
            compare_view(&views[0], "n", 5, &ours.root(), None).map(|f| f.kind()),
            Some("withheld")
        );
        assert_eq!(compare_view(ours, "n", 0, &views[0].root(), None), None);
        assert_eq!(
            compare_view(ours, "n", 0, &[3; 32], None).map(|f| f.kind()),
            Some("fork")
        );
        // Same size, same root: quiet; another root: a fork.
        assert_eq!(compare_view(ours, "n", 5, &ours.root(), None), None);
        let f = compare_view(ours, "n", 5, &[7; 32], None).expect("fork");
        assert_eq!(f.kind(), "fork");
        // Smaller and consistent: quiet.
        let p = prove_consistency(&Blake2b256, 3, 5, &store).expect("proof");
        assert_eq!(
            compare_view(ours, "n", 3, &views[3].root(), Some(p.hashes())),
            None
        );
        // Smaller with a root the proof does not lead to, or with no proof: a fork.
        assert_eq!(
            compare_view(ours, "n", 3, &[1; 32], Some(p.hashes()))
                .expect("fork")
                .kind(),
            "fork"
        );
        assert_eq!(
            compare_view(ours, "n", 3, &views[3].root(), None)
                .expect("fork")
                .kind(),
            "fork"
        );
        // Larger with no proof: withheld (the channel cannot show that log).
        assert_eq!(
            compare_view(ours, "w", 9, &views[9].root(), None).map(|f| f.kind()),
            Some("withheld")
        );
        // Larger and consistent: withheld, to be confirmed; not consistent: a fork.
        let p = prove_consistency(&Blake2b256, 5, 9, &store).expect("proof");
        let f = compare_view(ours, "w", 9, &views[9].root(), Some(p.hashes())).expect("ahead");
        assert_eq!(
            f,
            Finding::Withheld {
                source: "w".into(),
                ours: 5,
                theirs: 9
            }
        );
        assert_eq!(
            compare_view(ours, "w", 9, &[2; 32], Some(p.hashes()))
                .expect("fork")
                .kind(),
            "fork"
        );
    }

    #[test]
    fn the_state_round_trips_and_a_damaged_one_is_refused() {
        let (_, views) = log_of(11);
        let key = KeyPair::generate().public();
        let mut s = MonitorState::new(key, 100);
        s.set_view(&views[11], 200);
        assert_eq!(s.grew_at, 200);
        let back = MonitorState::parse(&s.to_bytes()).expect("parse");
        assert_eq!(back, s);
        assert_eq!(back.view().expect("view"), views[11]);
        // Same size again: grew_at stays.
        s.set_view(&views[11], 300);
        assert_eq!(s.grew_at, 200);
        assert_eq!(s.check_quiet(300, 100), None);
        assert_eq!(
            s.check_quiet(301, 100).map(|f| f.kind()),
            Some("frozen"),
            "quiet for 101 s"
        );
        let mut bad = s.clone();
        bad.root = TreeHash([0; 32]);
        assert!(MonitorState::parse(&bad.to_bytes()).is_err());
        let mut bad = s.clone();
        bad.subtrees.pop();
        assert!(MonitorState::parse(&bad.to_bytes()).is_err());
        assert!(MonitorState::parse(b"{").is_err());
    }

    #[test]
    fn findings_are_reported_once_and_the_oldest_are_forgotten() {
        let key = KeyPair::generate().public();
        let mut s = MonitorState::new(key, 0);
        let f = |i: u64| Finding::Shrunk {
            before: i + 1,
            now: i,
            source: "c".into(),
        };
        assert!(!s.was_reported(&f(0)));
        s.mark_reported(&f(0), 1);
        assert!(s.was_reported(&f(0)));
        for i in 1..=MAX_REPORTED as u64 {
            s.mark_reported(&f(i), i + 1);
        }
        assert_eq!(s.reported.len(), MAX_REPORTED);
        assert!(!s.was_reported(&f(0)), "the oldest is forgotten");
        assert!(s.was_reported(&f(MAX_REPORTED as u64)));
    }
}
