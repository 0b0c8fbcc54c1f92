//! The channel's HTTP API (docs/protocol.md, "HTTP API of the channel"), with every answer read
//! under a size limit and opened as an envelope, and the checks every online command shares:
//! that a submitted entry is included under a checkpoint signed by the pinned channel key, and
//! one release found by an indexed lookup checked against such a checkpoint.

use std::cell::OnceCell;
use std::io::{Read, Write};
use std::time::Duration;

use keyggdrasil::entry::{Entry, EntryBody, Event, MAX_ENTRY_BYTES};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::keys::PublicKey;
use keyggdrasil::limits::Limits;
use keyggdrasil::lookup::{
    FoundRelease, ReleaseLookupResponse, ReleaseQuery, verify_release_lookup,
};
use keyggdrasil::merkle::Hash;
use keyggdrasil::merkle::{Blake2b256, TreeHasher, verify_inclusion};
use keyggdrasil::monitor::{JOURNAL_NAME, JournalRecord};
use keyggdrasil::names::ChannelName;
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::note;
use keyggdrasil::wire::{
    self, ConsistencyProofResponse, Envelope, ErrorCode, InclusionProofResponse, Nonce,
    NotaryPayload, NotaryRequest, Signed, SubmitRequest, SubmitResponse, UpdateRequest,
    VerifiedCheckpoint, VerifiedUpdate, WireError,
};
use serde::de::DeserializeOwned;

use crate::config::Loaded;
use crate::error::{Error, Misbehaved};

/// A client of one channel.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    channel_key: keyggdrasil::keys::PublicKey,
    limits: Limits,
    /// Set once [`Client::check_pin`] passed: the checkpoint it verified.
    pinned: OnceCell<VerifiedCheckpoint>,
    /// `local/journal.jsonl`, where every entry is recorded before it is submitted.
    journal: std::path::PathBuf,
}

/// The `data` of a `PUT /v1/archives/…` answer.
#[derive(Debug, serde::Deserialize)]
pub struct UploadResponse {
    /// Stored size.
    pub size: u64,
    /// Unkeyed BLAKE2b-512, hex.
    pub digest: String,
    /// True if the channel had the archive already.
    pub already_stored: bool,
}

/// Appends `entry`'s record to the journal at `path` (created 0600 inside the 0700 `local/`)
/// and syncs it to disk.
fn record_in_journal(path: &std::path::Path, entry: &Entry) -> Result<(), Error> {
    let record = JournalRecord::for_entry(entry, "barge", now());
    append_private(path, record.line().as_bytes())
}

/// Appends `bytes` to the file at `path` (created 0600) and syncs them to disk.
pub fn append_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(crate::error::io_at("could not open", path))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_data())
        .map_err(crate::error::io_at("could not write", path))
}

/// An error answer of the channel: its stable code and message.
struct Refused {
    code: ErrorCode,
    message: String,
    status: u16,
}

/// Whether upload progress should be drawn: only for people, on a terminal, outside `--json`,
/// and not with `NO_COLOR` ([`shipyard::output::colour_on_stderr`]).
pub fn show_progress(json: bool) -> bool {
    !json && shipyard::output::colour_on_stderr()
}

/// A reader that counts what goes through it and draws a progress line on stderr.
struct Progress<R> {
    inner: R,
    done: u64,
    total: u64,
    last_percent: Option<u64>,
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done = self.done.saturating_add(n as u64);
        let percent = (self.done.saturating_mul(100))
            .checked_div(self.total)
            .unwrap_or(100)
            .min(100);
        if self.last_percent != Some(percent) {
            self.last_percent = Some(percent);
            let mut err = std::io::stderr().lock();
            // Progress is decoration: a failed write to the terminal must not fail the upload.
            let _ = write!(
                err,
                "\r   uploading: {}/{} bytes ({percent}%)",
                self.done, self.total
            );
            if self.done >= self.total {
                let _ = writeln!(err);
            }
            let _ = err.flush();
        }
        Ok(n)
    }
}

impl Client {
    /// A client for the configured channel.
    pub fn new(cfg: &Loaded) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        Self {
            agent,
            base: cfg.channel.clone(),
            channel_key: cfg.channel_key,
            limits: Limits::default(),
            pinned: OnceCell::new(),
            journal: crate::config::local_dir(&cfg.dir).join(JOURNAL_NAME),
        }
    }

    /// A client for the configured channel that has passed [`Client::check_pin`], with a step
    /// line saying so: what every submitting command starts with, before it unlocks a key.
    pub fn pinned(cfg: &Loaded, out: &crate::output::Output) -> Result<Self, Error> {
        let client = Self::new(cfg);
        out.step(format!(
            "Checking that {} answers a fresh challenge signed with the pinned channel key {}...",
            cfg.channel,
            cfg.channel_key.fingerprint()
        ));
        client.check_pin()?;
        Ok(client)
    }

    /// Pin first: asks the channel for its signed checkpoint and then for a signed answer to a
    /// fresh random challenge (`GET /v1/updates?since=SIZE&nonce=N`, which must echo the nonce,
    /// name the checkpoint's channel and carry a current time), and checks both with the pinned
    /// channel key. Every command that submits calls this before it unlocks a key or sends
    /// anything, and [`Client::submit`] and [`Client::upload`] call it too, so a wrong pinned
    /// key (or a channel impersonated by someone without its key) gets nothing: a mismatch is
    /// [`Misbehaved::Pin`] (exit 3). Runs the network check once per client; later calls
    /// return the checkpoint verified then.
    ///
    /// It does not check that the channel's log is consistent with anything seen before (barge
    /// keeps no log state), only that the channel holds the pinned key now.
    pub fn check_pin(&self) -> Result<VerifiedCheckpoint, Error> {
        if let Some(c) = self.pinned.get() {
            return Ok(c.clone());
        }
        let url = format!("{}/v1/checkpoint", self.base);
        let r = self.agent.get(&url).call();
        let signed: Signed = self.open(&url, r)?;
        let checkpoint = wire::verify_checkpoint(&signed, &self.channel_key, None, &self.limits)
            .map_err(|source| Misbehaved::Pin {
                url: url.clone(),
                channel_key: self.channel_key,
                source,
            })?;
        let request = UpdateRequest {
            since: checkpoint.size(),
            nonce: Nonce::generate(),
        };
        let url = format!(
            "{}/v1/updates?since={}&nonce={}",
            self.base,
            request.since,
            request.nonce.to_hex()
        );
        let r = self.agent.get(&url).call();
        let signed: Signed = self
            .open_raw(&url, r, self.limits.max_update_response_bytes)?
            .map_err(|e| refused(&url, e))?;
        wire::verify_update(
            &signed,
            &self.channel_key,
            checkpoint.origin(),
            &request,
            now(),
            &self.limits,
        )
        .map_err(|source| Misbehaved::Pin {
            url,
            channel_key: self.channel_key,
            source,
        })?;
        Ok(self.pinned.get_or_init(|| checkpoint).clone())
    }

    /// Reads an answer under `limit` and opens its envelope; a refusal keeps its code.
    fn open_raw<T: DeserializeOwned>(
        &self,
        url: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        limit: u64,
    ) -> Result<Result<T, Refused>, Error> {
        let r = r.map_err(|e| Error::Unreachable {
            url: url.to_owned(),
            source: Box::new(e),
        })?;
        let status = r.status();
        let body = r
            .into_body()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| body_error(url, e))?;
        match Envelope::<T>::open(&body, limit) {
            Ok(v) => Ok(Ok(v)),
            Err(WireError::Remote { code, message }) => Ok(Err(Refused {
                code,
                message,
                status: status.as_u16(),
            })),
            Err(source) => Err(Misbehaved::Malformed {
                url: url.to_owned(),
                status: status.as_u16(),
                source,
            }
            .into()),
        }
    }

    fn open<T: DeserializeOwned>(
        &self,
        url: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, Error> {
        self.open_raw(url, r, self.limits.max_small_response_bytes)?
            .map_err(|e| refused(url, e))
    }

    fn submit_once(
        &self,
        entry: &Entry,
        invite: Option<String>,
    ) -> Result<Result<SubmitResponse, Refused>, Error> {
        let req = SubmitRequest {
            entry: String::from_utf8_lossy(entry.as_bytes()).into_owned(),
            invite,
        };
        let body = serde_json::to_vec(&req).map_err(Error::EncodeRequest)?;
        let url = format!("{}/v1/submit", self.base);
        let r = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(&body[..]);
        self.open_raw(&url, r, self.limits.max_small_response_bytes)
    }

    /// Signs `event` for `supplier` with `key`, submits it, and checks that it is included under
    /// a checkpoint signed by the pinned channel key. `key` is consumed, so the secret is zeroized
    /// before any network I/O. Every command that logs a single entry goes through here, so none
    /// of them can skip the inclusion check.
    pub fn sign_and_log(
        &self,
        supplier: &SupplierName,
        key: KeyPair,
        event: Event,
        invite: Option<String>,
    ) -> Result<(Entry, SubmitResponse, VerifiedCheckpoint), Error> {
        let entry = Entry::sign(EntryBody::new(supplier.clone(), key.public(), event), &key)
            .map_err(Error::SignEntry)?;
        drop(key);
        let resp = self.submit(&entry, invite)?;
        let checkpoint = self.confirm_inclusion(&entry, &resp)?;
        Ok((entry, resp, checkpoint))
    }

    /// `POST /v1/submit`. The submission is authenticated by the entry's own signature; the
    /// invite token, if one is given, is sent only when the channel answers that its policy
    /// needs one (`invite_required`), so it never leaves the machine needlessly and is not used
    /// up by a channel that accepts the entry without it. Checks that the answered leaf hash is
    /// the hash of `entry`.
    ///
    /// Before the entry leaves the machine it is recorded in the author's journal
    /// (`local/journal.jsonl`, [`keyggdrasil::monitor`]), durably: `barge monitor` alerts on
    /// every entry in the supplier's name that is not there. Recording first means a crash can
    /// leave a record of an entry that never reached the log (harmless), never an entry of
    /// ours without its record (a false alert).
    pub fn submit(&self, entry: &Entry, invite: Option<String>) -> Result<SubmitResponse, Error> {
        self.check_pin()?;
        record_in_journal(&self.journal, entry)?;
        let url = format!("{}/v1/submit", self.base);
        let resp = match self.submit_once(entry, None)? {
            Ok(resp) => resp,
            Err(r) if r.code == ErrorCode::InviteRequired => match invite {
                Some(token) => self
                    .submit_once(entry, Some(token))?
                    .map_err(|e| refused(&url, e))?,
                None => {
                    return Err(Error::InviteRequired { message: r.message });
                }
            },
            Err(r) => return Err(refused(&url, r)),
        };
        if resp.leaf_hash.0 != Blake2b256.hash_leaf(entry.as_bytes()) {
            return Err(Misbehaved::LeafHash.into());
        }
        Ok(resp)
    }

    /// `PUT /v1/archives/{supplier}/{package}/{version}`, streaming `archive` with an explicit
    /// `Content-Length`; with `progress`, a progress line is drawn on stderr.
    pub fn upload(
        &self,
        supplier: &str,
        package: &str,
        version: &str,
        archive: &[u8],
        progress: bool,
    ) -> Result<UploadResponse, Error> {
        self.check_pin()?;
        let url = format!("{}/v1/archives/{supplier}/{package}/{version}", self.base);
        let total = archive.len() as u64;
        let req = self
            .agent
            .put(&url)
            .header("Content-Length", total.to_string());
        let r = if progress {
            let mut reader = Progress {
                inner: archive,
                done: 0,
                total,
                last_percent: None,
            };
            req.send(ureq::SendBody::from_reader(&mut reader))
        } else {
            let mut reader = archive;
            req.send(ureq::SendBody::from_reader(&mut reader))
        };
        self.open(&url, r)
    }

    /// `GET /v1/checkpoint`, verified with the pinned channel key.
    pub fn checkpoint(&self) -> Result<VerifiedCheckpoint, Error> {
        let url = format!("{}/v1/checkpoint", self.base);
        let r = self.agent.get(&url).call();
        let signed: Signed = self.open(&url, r)?;
        wire::verify_checkpoint(&signed, &self.channel_key, None, &self.limits)
            .map_err(|e| Misbehaved::Checkpoint(e).into())
    }

    /// `GET /v1/proof/inclusion?index=I&size=N`.
    pub fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<keyggdrasil::merkle::InclusionProof, Error> {
        let url = format!("{}/v1/proof/inclusion?index={index}&size={size}", self.base);
        let r = self.agent.get(&url).call();
        let resp: InclusionProofResponse = self.open(&url, r)?;
        if resp.index != index || resp.size != size {
            return Err(Misbehaved::ProofFor {
                index: resp.index,
                size: resp.size,
                asked_index: index,
                asked_size: size,
            }
            .into());
        }
        resp.to_proof(&self.limits)
            .map_err(|e| Misbehaved::BadProof(e).into())
    }

    /// Waits (up to about 15 s) for a signed checkpoint covering `resp`, then checks that
    /// `entry` is at `resp.index` under that checkpoint's root with an inclusion proof.
    pub fn confirm_inclusion(
        &self,
        entry: &Entry,
        resp: &SubmitResponse,
    ) -> Result<VerifiedCheckpoint, Error> {
        // The checkpoint may lag for a moment after the append; wait a little for it.
        let mut checkpoint = self.checkpoint()?;
        for _ in 0..30 {
            if checkpoint.size() >= resp.size && checkpoint.size() > resp.index {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
            checkpoint = self.checkpoint()?;
        }
        if checkpoint.size() < resp.size || checkpoint.size() <= resp.index {
            return Err(Misbehaved::CheckpointBehind {
                checkpoint: checkpoint.size(),
                answered: resp.size,
            }
            .into());
        }
        let leaf = Blake2b256.hash_leaf(entry.as_bytes());
        let proof = self.inclusion_proof(resp.index, checkpoint.size())?;
        verify_inclusion(
            &Blake2b256,
            resp.index,
            checkpoint.size(),
            &leaf,
            &proof,
            &checkpoint.root().0,
        )
        .map_err(Misbehaved::Inclusion)?;
        Ok(checkpoint)
    }

    /// Finds one release without reading the log: `GET /v1/release` at the size of a fresh
    /// checkpoint signed by the pinned key, checked by
    /// [`keyggdrasil::lookup::verify_release_lookup`] (the entry and any revocation are
    /// included in that checkpoint's tree, signed by the key they name, and about this
    /// release). O(log n) in the log size. `Ok(None)` when the channel says the release is not
    /// logged (which a channel could also say falsely: the caller reports it as not found,
    /// never as proof of absence).
    pub fn find_release(
        &self,
        supplier: &SupplierName,
        package: &PackageName,
        version: &Version,
    ) -> Result<(VerifiedCheckpoint, Option<FoundRelease>), Error> {
        let checkpoint = self.checkpoint()?;
        let url = format!(
            "{}/v1/release?supplier={}&package={}&version={}&size={}",
            self.base,
            supplier.as_str(),
            package.as_str(),
            version.as_str(),
            checkpoint.size()
        );
        // Two entries (JSON escaping at most doubles each) and two proofs, plus the envelope.
        let limit = 2 * (2 * MAX_ENTRY_BYTES as u64 + 64)
            + 2 * (self.limits.max_proof_hashes as u64) * 70
            + 4096;
        let r = self.agent.get(&url).call();
        let resp: ReleaseLookupResponse = match self.open_raw(&url, r, limit)? {
            Ok(resp) => resp,
            Err(refusal) if refusal.code == ErrorCode::UnknownRelease => {
                return Ok((checkpoint, None));
            }
            Err(refusal) => return Err(refused(&url, refusal)),
        };
        let query = ReleaseQuery {
            supplier,
            package,
            version,
        };
        let found = verify_release_lookup(&resp, &checkpoint, query, &self.limits)
            .map_err(|source| Misbehaved::Lookup { url, source })?;
        Ok((checkpoint, Some(found)))
    }

    /// One page of a supplier's history, `GET /v1/suppliers/{supplier}?size=N&start=K` at the
    /// size of `checkpoint`, checked by [`keyggdrasil::history::verify_supplier_history`]
    /// (each entry included in that tree, validly signed, in the supplier's name). The entries
    /// and the `start` of the next page. The list is the channel's word for completeness.
    pub fn supplier_history(
        &self,
        supplier: &SupplierName,
        checkpoint: &VerifiedCheckpoint,
        start: u64,
    ) -> Result<(Vec<keyggdrasil::history::HistoryEntry>, Option<u64>), Error> {
        let url = format!(
            "{}/v1/suppliers/{}?size={}&start={start}",
            self.base,
            supplier.as_str(),
            checkpoint.size()
        );
        let r = self.agent.get(&url).call();
        let resp: keyggdrasil::history::SupplierHistoryResponse =
            match self.open_raw(&url, r, self.limits.max_update_response_bytes + 4096)? {
                Ok(resp) => resp,
                Err(refusal) => return Err(refused(&url, refusal)),
            };
        let entries = keyggdrasil::history::verify_supplier_history(
            &resp,
            checkpoint,
            supplier,
            start,
            &self.limits,
        )
        .map_err(|e| Misbehaved::Answer {
            url,
            detail: e.to_string(),
        })?;
        Ok((entries, resp.next))
    }
}

/// What the channel answered to `GET /v1/updates?since=S`.
pub enum UpdatePage {
    /// A verified page of entries from `since` (its signature, nonce, origin and time checked;
    /// its root is still to be checked against the caller's log).
    Page(Box<VerifiedUpdate>),
    /// The channel says its log is shorter than `since` (`since_beyond_log`).
    BeyondLog,
}

impl Client {
    /// The channel's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The pinned channel key.
    pub fn channel_key(&self) -> PublicKey {
        self.channel_key
    }

    /// `GET /v1/updates?since=S&nonce=N` with a fresh nonce, verified with the pinned key
    /// ([`wire::verify_update`]).
    pub fn updates(&self, since: u64, origin: &ChannelName) -> Result<UpdatePage, Error> {
        let request = UpdateRequest {
            since,
            nonce: Nonce::generate(),
        };
        let url = format!(
            "{}/v1/updates?since={since}&nonce={}",
            self.base,
            request.nonce.to_hex()
        );
        let r = self.agent.get(&url).call();
        let signed: Signed =
            match self.open_raw(&url, r, self.limits.max_update_response_bytes + 4096)? {
                Ok(s) => s,
                Err(r) if r.code == ErrorCode::SinceBeyondLog => return Ok(UpdatePage::BeyondLog),
                Err(r) => return Err(refused(&url, r)),
            };
        let update = wire::verify_update(
            &signed,
            &self.channel_key,
            origin,
            &request,
            now(),
            &self.limits,
        )
        .map_err(|e| Misbehaved::Answer {
            url,
            detail: e.to_string(),
        })?;
        Ok(UpdatePage::Page(Box::new(update)))
    }

    /// `GET /v1/proof/consistency?old=M&new=N`: the hashes, for the caller to verify against
    /// two roots it holds.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, Error> {
        let url = format!("{}/v1/proof/consistency?old={old}&new={new}", self.base);
        let r = self.agent.get(&url).call();
        let resp: ConsistencyProofResponse = self.open(&url, r)?;
        if resp.old != old || resp.new != new || resp.path.len() > self.limits.max_proof_hashes {
            return Err(Misbehaved::Answer {
                url,
                detail: format!(
                    "a proof for sizes {}..{} with {} hashes, asked {old}..{new}",
                    resp.old,
                    resp.new,
                    resp.path.len()
                ),
            }
            .into());
        }
        Ok(resp.path.into_iter().map(|h| h.0).collect())
    }

    /// `GET /checkpoint`: the channel's checkpoint note with its cosignatures, raw (at most
    /// [`note::MAX_NOTE_BYTES`]); `None` when the channel has none (404).
    pub fn checkpoint_note(&self) -> Result<Option<(String, Vec<u8>)>, Error> {
        let url = format!("{}/checkpoint", self.base);
        let r = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| Error::Unreachable {
                url: url.clone(),
                source: Box::new(e),
            })?;
        if r.status() == 404 {
            return Ok(None);
        }
        let status = r.status().as_u16();
        let body = r
            .into_body()
            .with_config()
            .limit(note::MAX_NOTE_BYTES as u64)
            .read_to_vec()
            .map_err(|e| body_error(&url, e))?;
        if status != 200 {
            return Err(Misbehaved::Answer {
                url,
                detail: format!("HTTP {status}"),
            }
            .into());
        }
        Ok(Some((url, body)))
    }

    /// Asks the notary at `base` (pinned `key`) for the root of `channel`'s log at `size`,
    /// with a fresh nonce; the answer is verified ([`wire::verify_notary_answer`]).
    pub fn notary_root(
        &self,
        base: &str,
        key: &PublicKey,
        channel: &ChannelName,
        size: u64,
    ) -> Result<NotaryPayload, Error> {
        let request = NotaryRequest {
            channel: channel.clone(),
            size,
            nonce: Nonce::generate(),
        };
        let body = serde_json::to_vec(&request).map_err(Error::EncodeRequest)?;
        let url = format!("{}/v1/notary/root", base.trim_end_matches('/'));
        let r = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(&body[..]);
        let signed: Signed = self.open(&url, r)?;
        wire::verify_notary_answer(&signed, key, &request, now(), &self.limits).map_err(|e| {
            Misbehaved::Answer {
                url,
                detail: e.to_string(),
            }
            .into()
        })
    }
}

/// The local Unix time in seconds/// The local Unix time in seconds (0 if the clock is before 1970, which the time check then
/// refuses).
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The channel's refusal as an error; its words are escaped when printed, as they come from
/// the network.
fn refused(url: &str, r: Refused) -> Error {
    Error::Refused {
        url: url.to_owned(),
        status: r.status,
        code: r.code,
        message: r.message,
    }
}

/// A body that could not be read: larger than the limit is the channel's fault (exit 3); a
/// connection cut off half way is the network's (exit 4).
fn body_error(url: &str, e: ureq::Error) -> Error {
    match e {
        ureq::Error::BodyExceedsLimit(_) => Misbehaved::Body {
            url: url.to_owned(),
            source: Box::new(e),
        }
        .into(),
        other => Error::Unreachable {
            url: url.to_owned(),
            source: Box::new(other),
        },
    }
}
