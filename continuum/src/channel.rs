//! Talking to a channel: signed updates, checkpoints and archives, over its mirrors in order.
//!
//! Nothing here decides what to trust: answers come back as [`VerifiedUpdate`]s only after
//! [`keyggdrasil::wire::verify_update`] checked the pinned key, origin, nonce, time and sizes; the
//! root is still to be recomputed by the caller. Nothing the site sends to a channel names its
//! peers.

use keyggdrasil::limits::Limits;
use keyggdrasil::wire::{
    self, Envelope, ErrorCode, Nonce, Signed, UpdateRequest, VerifiedUpdate, WireError,
};
use thiserror::Error;

use crate::config::ChannelConfig;
use crate::transport::{Http, TransportError};

/// Why talking to the channel failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// No mirror could be reached (each mirror's error is listed).
    #[error("could not reach channel {channel}: {}", .errors.join("; "))]
    Unreachable {
        /// The channel name.
        channel: String,
        /// One message per mirror.
        errors: Vec<String>,
    },
    /// A mirror answered, but the answer is wrong: the channel (or someone in between)
    /// misbehaved. Nothing from it is used.
    #[error("channel {channel} sent an answer that fails verification: {source}")]
    Verification {
        /// The channel name.
        channel: String,
        /// What failed.
        #[source]
        source: WireError,
    },
}

impl ChannelError {
    /// True if the channel misbehaved (as opposed to being unreachable).
    pub fn is_verification(&self) -> bool {
        matches!(self, ChannelError::Verification { .. })
    }
}

/// A client for one configured channel.
pub struct ChannelClient<'a> {
    cfg: &'a ChannelConfig,
    http: &'a Http,
    limits: &'a Limits,
}

impl<'a> ChannelClient<'a> {
    /// A client over the channel's mirrors.
    pub fn new(cfg: &'a ChannelConfig, http: &'a Http, limits: &'a Limits) -> Self {
        Self { cfg, http, limits }
    }

    /// The channel's configuration.
    pub fn config(&self) -> &ChannelConfig {
        self.cfg
    }

    /// Fetches and verifies the entries after `since`, with a fresh nonce, trying mirrors in
    /// order. A mirror that cannot be reached, or answers with an HTTP error, is skipped; a
    /// mirror whose answer fails verification stops the attempt (a bad signature from one
    /// mirror must not be papered over by asking the next).
    pub fn updates(&self, since: u64, now: u64) -> Result<VerifiedUpdate, ChannelError> {
        let request = UpdateRequest {
            since,
            nonce: Nonce::generate(),
        };
        let path = format!("/v1/updates?since={since}&nonce={}", request.nonce.to_hex());
        let signed = self
            .get_envelope::<Signed>(&path, self.limits.max_update_response_bytes + 4096)
            .map_err(|e| match e {
                // Say what it means: the server's own words name only its error code.
                ChannelError::Verification {
                    channel,
                    source: WireError::Remote { code, message },
                } if code == ErrorCode::SinceBeyondLog => ChannelError::Verification {
                    channel,
                    source: WireError::Remote {
                        code,
                        message: format!(
                            "{message} (the log is shorter than the {since} entries this site already has from this channel: a rollback)"
                        ),
                    },
                },
                other => other,
            })?;
        wire::verify_update(
            &signed,
            &self.cfg.key,
            &self.cfg.name,
            &request,
            now,
            self.limits,
        )
        .map_err(|source| ChannelError::Verification {
            channel: self.cfg.name.as_str().to_owned(),
            source,
        })
    }

    /// Fetches the channel's signed checkpoint (not nonce-bound; used by `init` to learn and
    /// check the channel name).
    pub fn checkpoint(&self) -> Result<Signed, ChannelError> {
        self.get_envelope::<Signed>("/v1/checkpoint", self.limits.max_small_response_bytes)
    }

    /// The archive URLs of a release, one per mirror, in order.
    pub fn archive_urls(&self, supplier: &str, package: &str, version: &str) -> Vec<String> {
        self.cfg
            .mirrors
            .iter()
            .map(|m| {
                format!(
                    "{}/v1/archives/{supplier}/{package}/{version}",
                    m.trim_end_matches('/')
                )
            })
            .collect()
    }

    fn get_envelope<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        limit: u64,
    ) -> Result<T, ChannelError> {
        let mut errors = Vec::new();
        for mirror in &self.cfg.mirrors {
            let url = format!("{}{path}", mirror.trim_end_matches('/'));
            match self.http.get(&url, limit) {
                Ok(resp) => match Envelope::<T>::open(&resp.body, limit) {
                    Ok(v) => return Ok(v),
                    Err(WireError::Remote { code, message })
                        if code == ErrorCode::SinceBeyondLog =>
                    {
                        // The channel says it has fewer entries than we already accepted from
                        // it: a rollback (or a different log). Never just "unreachable".
                        return Err(ChannelError::Verification {
                            channel: self.cfg.name.as_str().to_owned(),
                            source: WireError::Remote { code, message },
                        });
                    }
                    Err(WireError::Remote { code, message }) => {
                        errors.push(format!("{mirror}: HTTP {} {code}: {message}", resp.status));
                    }
                    Err(e) => errors.push(format!("{mirror}: HTTP {}: {e}", resp.status)),
                },
                Err(e @ TransportError::TooLarge { .. }) => {
                    return Err(ChannelError::Verification {
                        channel: self.cfg.name.as_str().to_owned(),
                        source: WireError::Malformed(e.to_string()),
                    });
                }
                Err(e) => errors.push(format!("{mirror}: {e}")),
            }
        }
        Err(ChannelError::Unreachable {
            channel: self.cfg.name.as_str().to_owned(),
            errors,
        })
    }
}
