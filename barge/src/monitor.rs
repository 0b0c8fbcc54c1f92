//! `barge monitor`: follows the channel's log and tells the author, within one run, about
//! anything in the supplier's name that the author's tools did not make, and about views of the
//! log that contradict each other. The decisions are [`keyggdrasil::monitor`]'s; this module
//! reads the files and the network and says what it found.
//!
//! One run:
//! 1. reads `local/journal.jsonl` (every entry barge submitted, recorded before submission) and
//!    `local/monitor.state` (the verified view from the last run: size, root, O(log n) hashes);
//! 2. reads the entries after that size from `GET /v1/updates` pages, each signed by the pinned
//!    channel key for a fresh nonce, and checks that they extend the stored view to the signed
//!    root (so the log only grew); every entry in a watched supplier's name is checked against
//!    the journal. O(new entries) a run;
//! 3. compares the verified view with the channel's checkpoint note (and the witnesses'
//!    cosignatures on it, `--witness`) and with each notary (`--notary`), by root at equal
//!    sizes and by consistency proofs otherwise; a notary or witness ahead of what the channel
//!    shows is asked about once more before it counts as withholding;
//! 4. says each new finding (a sentence, a JSON line with `--json`, `--on-alert CMD`), keeps
//!    what it reported, and saves the new view atomically.
//!
//! Exit codes: 0 nothing new to report (earlier alerts that still stand are counted, not
//! repeated); 10 at least one new alert; 2, 4, 5 as every barge command (usage, channel
//! unreachable, local failure). A channel answer that fails verification is an alert (10), not
//! an error: it is what the monitor is for.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use keyggdrasil::keys::PublicKey;
use keyggdrasil::log::LogView;
use keyggdrasil::monitor::{
    self, Finding, JOURNAL_NAME, Journal, JournalRecord, MonitorState, STATE_NAME,
};
use keyggdrasil::names::{ChannelName, SupplierName};
use keyggdrasil::note::{self, VerifierKey};
use keyggdrasil::tlog_checkpoint;
use keyggdrasil::wire::NotaryStatus;
use serde_json::json;

use crate::config::{self, Loaded, local_dir};
use crate::error::{Error, io_at};
use crate::http::{Client, UpdatePage};
use crate::output::Output;

/// Most update pages read in one run; a longer catch-up goes on at the next run.
const MAX_PAGES_PER_RUN: usize = 100_000;
/// How long a witness cosignature may take to appear after the channel's note (the channel
/// pushes to its witnesses about once a second).
const WITNESS_WAITS_MS: [u64; 3] = [500, 1000, 2000];

/// The exit code of a run that found at least one new alert.
pub const EXIT_ALERT: u8 = 10;

/// `barge monitor`'s options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A notary to compare views with, as URL=NOTARY_KEY (its `continuum notary key` public
    /// key, 64 hex). Repeatable.
    #[arg(long = "notary", value_name = "URL=KEY")]
    pub notaries: Vec<String>,
    /// A witness whose cosignature must be on the channel's checkpoint note, as its C2SP
    /// verifier key (`name+id+key`, from `continuum notary key --json`). Repeatable.
    #[arg(long = "witness", value_name = "VKEY")]
    pub witnesses: Vec<String>,
    /// A witness's cosignature counts only if dated at most this many seconds ago (and at most
    /// 300 s ahead): an old one shows the witness once saw this tree head, not that it is
    /// watching now. Default 7200, the sites' own `max_cosignature_age_secs`.
    #[arg(long, value_name = "SECS", default_value_t = 7200)]
    pub max_cosignature_age: u64,
    /// Alert when the log has not grown for more than this many seconds (for a channel that
    /// always grows, e.g. with a heartbeat release). Off by default.
    #[arg(long, value_name = "SECS")]
    pub max_quiet_secs: Option<u64>,
    /// Run CMD with `sh -c` for each new finding, the finding as one JSON object on its stdin
    /// (mail, a chat webhook, a pager). A failing CMD leaves the finding unreported, so the
    /// next run tries again.
    #[arg(long, value_name = "CMD")]
    pub on_alert: Option<String>,
    /// Report findings again even if an earlier run reported them.
    #[arg(long)]
    pub repeat: bool,
    /// Re-read and re-check the whole log from entry 0 (once, e.g. after restoring a backup),
    /// and check that it still has the root this monitor verified before.
    #[arg(long)]
    pub since_start: bool,
    /// First run only: count the entries already logged in the supplier's name as the
    /// author's (for an author who logged entries before barge kept a journal). Refused once
    /// a state exists.
    #[arg(long)]
    pub trust_existing: bool,
    /// Watch this supplier too (the one in barge.toml is always watched). Repeatable.
    #[arg(long = "supplier", value_name = "NAME")]
    pub suppliers: Vec<String>,
}

/// Runs one monitor pass; `Ok(true)` when it reported a new alert (exit [`EXIT_ALERT`]).
pub fn run(dir: &Path, out: &Output, args: Args) -> Result<bool, Error> {
    let cfg = config::load(dir)?;
    let local = local_dir(dir);
    let _lock = lock(&local)?;
    let watched = watched(&cfg, &args.suppliers)?;
    let notaries = parse_notaries(&args.notaries)?;
    let witnesses = parse_witnesses(&args.witnesses)?;
    let journal_path = local.join(JOURNAL_NAME);
    let state_path = local.join(STATE_NAME);
    let now = now();
    let existing = read_state(&state_path)?;
    if args.trust_existing && existing.is_some() {
        return Err(Error::MonitorUsage(
            "--trust-existing is for the first run only; this monitor has a state already"
                .to_owned(),
        ));
    }
    let mut state = existing.unwrap_or_else(|| MonitorState::new(cfg.channel_key, now));
    if state.channel_key != cfg.channel_key {
        return Err(Error::MonitorUsage(format!(
            "{} was made under channel key {}, but barge.toml pins {}; move it away to start over",
            state_path.display(),
            state.channel_key.fingerprint(),
            cfg.channel_key.fingerprint()
        )));
    }
    let mut journal = read_journal(&journal_path)?;
    if journal.torn_tail() {
        shipyard::output::warn_loudly(&format!(
            "the last line of {} is cut short (a tool was stopped while writing it); its entry, if it was logged, is reported below",
            journal_path.display()
        ));
    }
    let client = Client::new(&cfg);
    let mut run = Run {
        client: &client,
        watched: &watched,
        findings: std::mem::take(&mut state.pending),
        entries_read: 0,
    };
    let stored = state.view().map_err(|e| Error::MonitorState {
        path: state_path.clone(),
        problem: e.to_string(),
    })?;
    out.step(format!(
        "Monitoring {} on {} from entry {}...",
        watched
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        cfg.channel,
        if args.since_start { 0 } else { stored.size() }
    ));
    let origin = match client.checkpoint() {
        Ok(c) => Some(c.origin().clone()),
        Err(e) => run.channel_error(e)?,
    };
    let mut view = if args.since_start {
        LogView::empty()
    } else {
        stored.clone()
    };
    if let Some(origin) = &origin {
        if args.trust_existing {
            adopt_existing(&mut run, &mut view, origin, &journal_path)?;
            journal = read_journal(&journal_path)?;
        }
        run.read_log(
            &mut view,
            origin,
            &journal,
            args.since_start.then_some(&stored),
        )?;
        // A log that shrank or was rewritten is alert enough; other views cannot be compared
        // with a view the channel no longer extends.
        if !run
            .findings
            .iter()
            .any(|f| matches!(f, Finding::Shrunk { .. } | Finding::Rewritten { .. }))
        {
            run.compare_note(
                &mut view,
                origin,
                &journal,
                &witnesses,
                args.max_cosignature_age,
            )?;
            for (url, key) in &notaries {
                run.compare_notary(&mut view, origin, &journal, url, key)?;
            }
        }
    }
    if view.size() >= state.size || args.since_start {
        state.set_view(&view, now);
    }
    if let Some(max) = args.max_quiet_secs
        && let Some(f) = state.check_quiet(now, max)
    {
        run.findings.push(f);
    }
    let (new_alerts, still) = report(out, &mut state, &run.findings, &args, now);
    write_state(&state_path, &state)?;
    let summary = format!(
        "Checked {} new entries: the log has {} entries, root {}, every one read (complete: proven, not asserted by the channel); {} new alert(s){}.",
        run.entries_read,
        state.size,
        hex::encode(state.root.0),
        new_alerts,
        if still > 0 {
            format!(", {still} reported earlier (not repeated; --repeat shows them)")
        } else {
            String::new()
        }
    );
    if out.json {
        println!(
            "{}",
            json!({"summary": {"entries_read": run.entries_read, "size": state.size,
                "root": hex::encode(state.root.0), "new_alerts": new_alerts,
                "reported_earlier": still, "completeness": "proven"}})
        );
    } else {
        println!("{summary}");
    }
    Ok(new_alerts > 0)
}

struct Run<'a> {
    client: &'a Client,
    watched: &'a [SupplierName],
    findings: Vec<Finding>,
    entries_read: u64,
}

impl Run<'_> {
    /// A channel error: a verification failure becomes a finding (`Ok(None)`); anything else
    /// (unreachable, a local failure) ends the run.
    fn channel_error<T>(&mut self, e: Error) -> Result<Option<T>, Error> {
        if e.kind() == shipyard::ErrorKind::ChannelMisbehaved {
            self.findings.push(Finding::Misbehaved {
                source: format!("the channel {}", self.client.base()),
                detail: shipyard::error::report(&e),
            });
            Ok(None)
        } else {
            Err(e)
        }
    }

    /// Reads every page after `view` and extends it; with `recheck`, also checks that the log
    /// passes through the root verified before at its size.
    fn read_log(
        &mut self,
        view: &mut LogView,
        origin: &ChannelName,
        journal: &Journal,
        recheck: Option<&LogView>,
    ) -> Result<(), Error> {
        for _ in 0..MAX_PAGES_PER_RUN {
            let before = view.size();
            let page = match self.client.updates(before, origin) {
                Ok(UpdatePage::Page(p)) => p,
                Ok(UpdatePage::BeyondLog) => {
                    let now = self.client.checkpoint().map(|c| c.size()).unwrap_or(0);
                    self.findings.push(Finding::Shrunk {
                        before,
                        now,
                        source: format!("the channel {}", self.client.base()),
                    });
                    return Ok(());
                }
                Err(e) => return self.channel_error(e).map(|_: Option<()>| ()),
            };
            if let Some(old) = recheck
                && before < old.size()
                && page.size() >= old.size()
            {
                let take = usize::try_from(old.size() - before).unwrap_or(usize::MAX);
                let root = view
                    .root_with(page.entries().iter().take(take).map(|e| e.as_bytes()))
                    .map_err(|e| Error::MonitorUsage(e.to_string()))?;
                if root != old.root() {
                    self.findings.push(Finding::Rewritten {
                        size: old.size(),
                        detail: format!(
                            "re-read from entry 0, the first {} entries have root {}, not the {} verified before",
                            old.size(),
                            hex::encode(root),
                            hex::encode(old.root())
                        ),
                    });
                }
            }
            if let Err(e) = view.extend(&page) {
                self.findings.push(Finding::Rewritten {
                    size: before,
                    detail: format!(
                        "its signed answer for entries {before}..{} does not extend the verified log ({e})",
                        page.size()
                    ),
                });
                return Ok(());
            }
            for (i, entry) in page.entries().iter().enumerate() {
                if let Some(f) =
                    monitor::check_entry(before + i as u64, entry, self.watched, journal)
                {
                    self.findings.push(f);
                }
            }
            self.entries_read += page.entries().len() as u64;
            if page.size() >= page.tree_size() || page.entries().is_empty() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Compares another view (`size`, `root` from `source`) with `view`, fetching the
    /// consistency proof it needs; one ahead is confirmed by reading the channel once more.
    fn compare(
        &mut self,
        view: &mut LogView,
        origin: &ChannelName,
        journal: &Journal,
        source: &str,
        size: u64,
        root: &keyggdrasil::merkle::Hash,
    ) -> Result<(), Error> {
        match self.check_view(view, source, size, root)? {
            Some(Finding::Withheld { .. }) => {
                // The log may just have grown since it was read: read it again once, and
                // compare again; only a channel that still shows less is withholding.
                self.read_log(view, origin, journal, None)?;
                if let Some(f) = self.check_view(view, source, size, root)? {
                    self.findings.push(f);
                }
            }
            Some(f) => self.findings.push(f),
            None => {}
        }
        Ok(())
    }

    /// [`monitor::compare_view`] with the consistency proof it needs from the channel.
    fn check_view(
        &mut self,
        view: &LogView,
        source: &str,
        size: u64,
        root: &keyggdrasil::merkle::Hash,
    ) -> Result<Option<Finding>, Error> {
        let proof = if size == view.size() || size == 0 || view.size() == 0 {
            None
        } else {
            match self
                .client
                .consistency_proof(size.min(view.size()), size.max(view.size()))
            {
                Ok(p) => Some(p),
                Err(e) if e.kind() == shipyard::ErrorKind::Unreachable => return Err(e),
                // A channel that will not link two of its signed roots: the comparison fails.
                Err(_) => None,
            }
        };
        Ok(monitor::compare_view(
            view,
            source,
            size,
            root,
            proof.as_deref(),
        ))
    }

    /// The channel's checkpoint note: signed by the channel key, compared with the view, and
    /// cosigned by every witness asked for (waiting a little for cosignatures to appear).
    fn compare_note(
        &mut self,
        view: &mut LogView,
        origin: &ChannelName,
        journal: &Journal,
        witnesses: &[VerifierKey],
        max_age: u64,
    ) -> Result<(), Error> {
        let mut waits = WITNESS_WAITS_MS.iter();
        loop {
            let Some((url, body)) = (match self.client.checkpoint_note() {
                Ok(n) => n,
                Err(e) => return self.channel_error(e).map(|_: Option<()>| ()),
            }) else {
                if !witnesses.is_empty() {
                    self.findings.push(Finding::Misbehaved {
                        source: format!("the channel {}", self.client.base()),
                        detail:
                            "it serves no checkpoint note, so no witness cosignature can be checked"
                                .to_owned(),
                    });
                }
                return Ok(());
            };
            let cp = match tlog_checkpoint::open(&body, &self.client_key(), origin) {
                Ok(cp) => cp,
                Err(e) => {
                    self.findings.push(Finding::Misbehaved {
                        source: url,
                        detail: format!("the checkpoint note does not verify: {e}"),
                    });
                    return Ok(());
                }
            };
            let source = format!("the channel's checkpoint note {url}");
            self.compare(view, origin, journal, &source, cp.size(), cp.root())?;
            if witnesses.is_empty() {
                return Ok(());
            }
            let missing: Vec<&VerifierKey> = witnesses
                .iter()
                .filter(|w| !cosigned(&body, w, now(), max_age))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            match waits.next() {
                Some(ms) => std::thread::sleep(Duration::from_millis(*ms)),
                None => {
                    for w in missing {
                        self.findings.push(Finding::Unwitnessed {
                            witness: w.name().to_owned(),
                            size: cp.size(),
                        });
                    }
                    return Ok(());
                }
            }
        }
    }

    fn client_key(&self) -> PublicKey {
        self.client.channel_key()
    }

    /// One notary: its root at the verified size must be the monitor's; then it is asked about
    /// the next size, which it knows only if the log is larger than the channel showed.
    fn compare_notary(
        &mut self,
        view: &mut LogView,
        origin: &ChannelName,
        journal: &Journal,
        url: &str,
        key: &PublicKey,
    ) -> Result<(), Error> {
        let source = format!("notary {url}");
        for size in [view.size(), view.size() + 1] {
            if size == 0 {
                continue;
            }
            let answer = match self.client.notary_root(url, key, origin, size) {
                Ok(a) => a,
                Err(e) if e.kind() == shipyard::ErrorKind::ChannelMisbehaved => {
                    self.findings.push(Finding::Misbehaved {
                        source: source.clone(),
                        detail: shipyard::error::report(&e),
                    });
                    return Ok(());
                }
                Err(e) => {
                    shipyard::output::warn_loudly(&format!(
                        "{source} could not be asked: {}",
                        shipyard::error::report(&e)
                    ));
                    return Ok(());
                }
            };
            match answer.status {
                NotaryStatus::Ok { root } => {
                    self.compare(view, origin, journal, &source, size, &root.0)?
                }
                NotaryStatus::Behind { .. } => return Ok(()),
                NotaryStatus::ForkDetected { evidence } => {
                    self.findings.push(Finding::Misbehaved {
                        source: source.clone(),
                        detail: format!(
                            "the notary holds {} channel-signed statements that contradict each other (fork evidence)",
                            evidence.len()
                        ),
                    });
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Whether `witness` cosigned the note in `body` with a time in `[now - max_age, now + 300]`
/// (security review X5: a cosignature of any age used to count). A plain Ed25519 note
/// signature by that key (no time) does not count: witnesses cosign.
fn cosigned(body: &[u8], witness: &VerifierKey, now: u64, max_age: u64) -> bool {
    note::open(body, std::slice::from_ref(witness)).is_ok_and(|o| {
        o.verified.iter().any(|v| {
            v.time
                .is_some_and(|t| note::cosignature_time_ok(t, now, max_age, 300))
        })
    })
}

/// `--trust-existing`: records the entries already logged in the watched suppliers' names in
/// the journal, as the author's (read through the same verified pages).
fn adopt_existing(
    run: &mut Run<'_>,
    view: &mut LogView,
    origin: &ChannelName,
    journal_path: &Path,
) -> Result<(), Error> {
    let mut probe = view.clone();
    let empty = Journal::default();
    let mut adopt = Run {
        client: run.client,
        watched: run.watched,
        findings: Vec::new(),
        entries_read: 0,
    };
    adopt.read_log(&mut probe, origin, &empty, None)?;
    let mut lines = String::new();
    for f in &adopt.findings {
        if let Finding::NotMadeByYou {
            leaf_hash,
            supplier,
            event,
            ..
        } = f
        {
            lines.push_str(
                &JournalRecord {
                    v: monitor::FORMAT_VERSION,
                    leaf_hash: *leaf_hash,
                    supplier: supplier.clone(),
                    kind: event.clone(),
                    time: now(),
                    tool: "barge monitor --trust-existing".to_owned(),
                }
                .line(),
            );
        } else if f.is_alert() {
            run.findings.push(f.clone());
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    crate::http::append_private(journal_path, lines.as_bytes())
}

/// Says each finding not reported before (all of them with `--repeat`), runs the hook, and
/// marks them reported. Returns (new alerts, alerts reported earlier and not repeated).
fn report(
    out: &Output,
    state: &mut MonitorState,
    findings: &[Finding],
    args: &Args,
    now: u64,
) -> (usize, usize) {
    let (mut new_alerts, mut still) = (0, 0);
    let mut said = std::collections::HashSet::new();
    for f in findings {
        // A finding kept from a failed hook may be found again in the same run.
        if !said.insert(f.id()) {
            continue;
        }
        if !args.repeat && state.was_reported(f) {
            if f.is_alert() {
                still += 1;
            }
            continue;
        }
        let severity = if f.is_alert() { "alert" } else { "notice" };
        let value = json!({
            "severity": severity,
            "id": f.id(),
            "finding": f,
            "sentence": f.sentence(),
            "advice": f.advice(),
        });
        if out.json {
            println!("{value}");
        } else if f.is_alert() {
            println!("ALERT: {}\n  what to do: {}", f.sentence(), f.advice());
        } else {
            println!("notice: {}", f.sentence());
        }
        let delivered = match &args.on_alert {
            Some(cmd) => run_hook(cmd, &value),
            None => true,
        };
        if f.is_alert() {
            new_alerts += 1;
        }
        if delivered {
            state.mark_reported(f, now);
        } else {
            state.keep_pending(f);
        }
    }
    (new_alerts, still)
}

/// Runs `cmd` with `sh -c`, the finding on stdin; false (and a loud warning) if it fails.
fn run_hook(cmd: &str, value: &serde_json::Value) -> bool {
    let child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            shipyard::output::warn_loudly(&format!("--on-alert could not start: {e}"));
            return false;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its input still runs; its exit status decides.
        let _ = stdin.write_all(format!("{value}\n").as_bytes());
    }
    match child.wait() {
        Ok(s) if s.success() => true,
        Ok(s) => {
            shipyard::output::warn_loudly(&format!(
                "--on-alert failed ({s}); the finding stays unreported and is tried again next run"
            ));
            false
        }
        Err(e) => {
            shipyard::output::warn_loudly(&format!("--on-alert failed: {e}"));
            false
        }
    }
}

fn watched(cfg: &Loaded, extra: &[String]) -> Result<Vec<SupplierName>, Error> {
    let mut names = vec![cfg.supplier.clone()];
    for s in extra {
        let name = SupplierName::parse(s).map_err(|source| Error::BadName {
            what: "supplier name",
            value: s.clone(),
            source,
        })?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

fn parse_notaries(args: &[String]) -> Result<Vec<(String, PublicKey)>, Error> {
    args.iter()
        .map(|a| {
            let (url, key) = a
                .rsplit_once('=')
                .ok_or_else(|| Error::MonitorUsage(format!("--notary {a:?} is not URL=KEY")))?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Error::MonitorUsage(format!(
                    "--notary {a:?}: the URL must start with http:// or https://"
                )));
            }
            let key = PublicKey::from_hex(key).map_err(|source| Error::BadPublicKey {
                what: "notary key".to_owned(),
                source,
            })?;
            Ok((url.to_owned(), key))
        })
        .collect()
}

fn parse_witnesses(args: &[String]) -> Result<Vec<VerifierKey>, Error> {
    args.iter()
        .map(|a| {
            VerifierKey::parse(a).map_err(|e| {
                Error::MonitorUsage(format!("--witness {a:?} is not a verifier key: {e}"))
            })
        })
        .collect()
}

/// One monitor at a time per author folder: an advisory lock the OS releases if the process
/// dies.
fn lock(local: &Path) -> Result<std::fs::File, Error> {
    let path = local.join("monitor.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_at("could not open", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::MonitorUsage(
            "another barge monitor is running for this folder".to_owned(),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(io_at("could not lock", &path)(e)),
    }
}

fn read_journal(path: &Path) -> Result<Journal, Error> {
    match read_limited(path, monitor::MAX_JOURNAL_BYTES)? {
        None => Ok(Journal::default()),
        Some(bytes) => Journal::parse(&bytes).map_err(|e| Error::MonitorState {
            path: path.to_path_buf(),
            problem: e.to_string(),
        }),
    }
}

fn read_state(path: &Path) -> Result<Option<MonitorState>, Error> {
    match read_limited(path, monitor::MAX_STATE_BYTES)? {
        None => Ok(None),
        Some(bytes) => MonitorState::parse(&bytes)
            .map(Some)
            .map_err(|e| Error::MonitorState {
                path: path.to_path_buf(),
                problem: e.to_string(),
            }),
    }
}

/// The file's bytes, `None` if it does not exist; a file past `limit` is refused unread.
fn read_limited(path: &Path, limit: usize) -> Result<Option<Vec<u8>>, Error> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at("could not open", path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_at("could not read", path))?;
    if bytes.len() > limit {
        return Err(Error::MonitorState {
            path: path.to_path_buf(),
            problem: format!("larger than the limit of {limit} bytes"),
        });
    }
    Ok(Some(bytes))
}

/// Writes the state atomically: a private temporary file, synced, renamed over the old one.
fn write_state(path: &Path, state: &MonitorState) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp: PathBuf = path.with_extension("state.tmp");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_at("could not write", &tmp))?;
    file.write_all(&state.to_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_at("could not write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_at("could not replace", path))?;
    if let Some(parent) = path.parent()
        && let Ok(d) = std::fs::File::open(parent)
    {
        // The rename is durable once the folder is synced; a failure here loses at most this
        // run's progress, which the next run redoes.
        let _ = d.sync_all();
    }
    Ok(())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod cosignature_age_tests {
    use super::*;
    use keyggdrasil::keys::KeyPair;

    /// X5: a cosignature counts only within `[now - max_age, now + 300]`; before, any time did.
    #[test]
    fn old_and_future_cosignatures_do_not_count() {
        let channel = KeyPair::from_seed(&[7; 32]).unwrap();
        let witness = KeyPair::from_seed(&[8; 32]).unwrap();
        let text = "plugins.example.org\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let signed = note::sign(text, "plugins.example.org", &channel).unwrap();
        let vkey = VerifierKey::cosignature_v1("w.example", &witness.public()).unwrap();
        let now = 1_700_000_000;
        let with = |time: u64| {
            let line = note::cosign(text, "w.example", &witness, time).unwrap();
            format!("{signed}{line}").into_bytes()
        };
        assert!(cosigned(&with(now), &vkey, now, 7200));
        assert!(cosigned(&with(now - 7200), &vkey, now, 7200));
        assert!(cosigned(&with(now + 300), &vkey, now, 7200));
        assert!(!cosigned(&with(now - 7201), &vkey, now, 7200), "too old");
        assert!(
            !cosigned(&with(now + 301), &vkey, now, 7200),
            "from the future"
        );
        assert!(!cosigned(&with(0), &vkey, now, 7200));
        assert!(
            !cosigned(signed.as_bytes(), &vkey, now, 7200),
            "no cosignature at all"
        );
    }
}
