//! The channel's HTTP API (docs/protocol.md, "HTTP API of the channel"), with every answer read
//! under a size limit and opened as an envelope.

use std::time::Duration;

use keyggdrasil::entry::Entry;
use keyggdrasil::limits::Limits;
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{
    Checkpoint, Envelope, InclusionProofResponse, Signed, SubmitRequest, SubmitResponse,
};
use serde::de::DeserializeOwned;

use crate::config::Loaded;
use crate::error::Error;

/// A client of one channel.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    channel_key: keyggdrasil::keys::PublicKey,
    limits: Limits,
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
        }
    }

    fn open<T: DeserializeOwned>(
        &self,
        url: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, Error> {
        let limit = self.limits.max_small_response_bytes;
        let r = r.map_err(|e| Error::Failed(format!("could not reach {url}: {e}")))?;
        let status = r.status();
        let body = r
            .into_body()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| Error::Failed(format!("could not read the answer of {url}: {e}")))?;
        Envelope::<T>::open(&body, limit).map_err(|e| {
            Error::Failed(format!(
                "the channel refused or failed ({url}, HTTP {status}): {e}"
            ))
        })
    }

    /// `POST /v1/submit`.
    pub fn submit(&self, entry: &Entry, invite: Option<String>) -> Result<SubmitResponse, Error> {
        let req = SubmitRequest {
            entry: String::from_utf8_lossy(entry.as_bytes()).into_owned(),
            invite,
        };
        let body = serde_json::to_vec(&req).map_err(|e| Error::Failed(e.to_string()))?;
        let url = format!("{}/v1/submit", self.base);
        let r = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(&body[..]);
        self.open(&url, r)
    }

    /// `PUT /v1/archives/{supplier}/{package}/{version}`.
    pub fn upload(
        &self,
        supplier: &str,
        package: &str,
        version: &str,
        archive: &[u8],
    ) -> Result<UploadResponse, Error> {
        let url = format!("{}/v1/archives/{supplier}/{package}/{version}", self.base);
        let r = self.agent.put(&url).send(archive);
        self.open(&url, r)
    }

    /// `GET /v1/checkpoint`, verified with the pinned channel key.
    pub fn checkpoint(&self) -> Result<Checkpoint, Error> {
        let url = format!("{}/v1/checkpoint", self.base);
        let r = self.agent.get(&url).call();
        let signed: Signed = self.open(&url, r)?;
        signed
            .open(
                &self.channel_key,
                Context::Checkpoint,
                self.limits.max_small_response_bytes,
            )
            .map_err(|e| {
                Error::Failed(format!(
                    "the channel's checkpoint does not verify with the pinned channel key: {e}"
                ))
            })
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
            return Err(Error::Failed(format!(
                "the channel answered a proof for index {} size {} when asked for index {index} size {size}",
                resp.index, resp.size
            )));
        }
        resp.to_proof(&self.limits)
            .map_err(|e| Error::Failed(format!("bad inclusion proof from the channel: {e}")))
    }
}
