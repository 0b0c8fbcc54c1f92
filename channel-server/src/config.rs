//! The channel's configuration file (TOML), with documented defaults for every limit.
//!
//! ```toml
//! [channel]
//! name = "plugins.example.org"   # the log's origin, in every signed statement
//! policy = "open"                # or "invite"
//! key = "<64 hex>"               # the channel's public key (written by `init`)
//!
//! [server]
//! listen = "127.0.0.1:8080"
//! # data_dir defaults to the folder holding this file
//!
//! [limits]                       # every field optional; defaults shown in `Limits::default`
//! max_submission_bytes = 65536
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keyggdrasil::names::ChannelName;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::writer::Policy;

/// Why the configuration could not be loaded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("could not read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file parses but says something this channel cannot run with.
    #[error("invalid config file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        message: String,
    },
    /// The file is not valid TOML for this configuration.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An operator limit is above the protocol's limit, which every site enforces: the channel
    /// would accept what no default site can read.
    #[error(
        "invalid config file {path}: limits.{name} = {value} is above the protocol's limit of {max}"
    )]
    AboveProtocol {
        /// The file.
        path: PathBuf,
        /// The limit's name.
        name: &'static str,
        /// The configured value.
        value: u64,
        /// The protocol's limit ([`keyggdrasil::limits::Limits::default`]).
        max: u64,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The channel itself.
    pub channel: ChannelSection,
    /// The HTTP server.
    pub server: ServerSection,
    /// Limits; every field has a default.
    #[serde(default)]
    pub limits: ServerLimits,
    /// Witnesses the channel pushes each checkpoint to (`[[witness]]`; none by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witness: Vec<WitnessSection>,
}

/// `[[witness]]`: a C2SP tlog-witness (a continuum notary, or any other).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessSection {
    /// Its submission prefix: the channel POSTs to `<url>/add-checkpoint`.
    pub url: String,
    /// Its `cosignature/v1` verifier key (`continuum notary key --json`,
    /// `witness_verifier_key`).
    pub verifier_key: String,
}

impl Config {
    /// The configured witnesses, their keys parsed (valid after [`Config::load`]).
    pub fn witnesses(&self) -> Vec<crate::witnessing::WitnessTarget> {
        self.witness
            .iter()
            .filter_map(|w| {
                keyggdrasil::note::VerifierKey::parse(&w.verifier_key)
                    .ok()
                    .map(|key| crate::witnessing::WitnessTarget {
                        url: w.url.clone(),
                        key,
                    })
            })
            .collect()
    }
}

/// `[channel]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSection {
    /// The log's origin name.
    pub name: ChannelName,
    /// Supplier registration policy.
    pub policy: Policy,
    /// The channel's public key. `serve` takes it from here and never reads the key file,
    /// which only the signer process opens.
    pub key: keyggdrasil::keys::PublicKey,
    /// The channel's C2SP note verifier key (`<name>+<key ID>+<base64>`), written by `init`
    /// for people and tools that check `GET /checkpoint` (Go's `note.NewVerifier`). Derived
    /// from `name` and `key`: when present it must be exactly that, or the config is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier_key: Option<String>,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Folder with `channel.db`, `archives/` and `local/`; defaults to the config file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

/// `[limits]`: every limit of the server, with its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerLimits {
    /// Largest submission request body (default and most: the protocol's
    /// `max_submission_bytes`, 64 KiB).
    pub max_submission_bytes: u64,
    /// Largest archive upload (default and most: the protocol's `max_archive_bytes`, 256 MiB,
    /// which is what sites download at most; a release may declare less, never more).
    pub max_archive_bytes: u64,
    /// Most entries per update answer or entries page (default and most: the protocol's
    /// `max_entries_per_page`, 500).
    pub max_entries_per_page: u64,
    /// Whole-request timeout in seconds for everything but archive transfers (default 30).
    pub request_timeout_secs: u64,
    /// Timeout in seconds for an archive upload or download (default 600).
    pub archive_timeout_secs: u64,
    /// Submissions per minute per client IP (default 600; 0 = unlimited).
    pub submissions_per_minute: u32,
    /// Update, checkpoint, proof and entries requests per minute per client IP (default 6000;
    /// 0 = unlimited).
    pub reads_per_minute: u32,
    /// The same reads per minute from all clients together (default 0 = no total cap; set it
    /// to what the host can serve, above the busiest hour's honest load).
    pub reads_per_minute_total: u32,
    /// Burst allowance of both rate limits (default 100).
    pub burst: u32,
    /// Most entries the writer commits in one transaction (default 2000).
    pub max_batch: usize,
    /// Submissions queued for the writer before clients wait (default 20000).
    pub writer_queue: usize,
    /// Concurrent archive uploads (default 4).
    pub max_concurrent_uploads: usize,
    /// Most nonces answered by one signature of `GET /v1/fresh` (default 256, most 65536).
    pub max_fresh_batch: usize,
    /// Seconds a client has to send a whole request head, also the longest a keep-alive
    /// connection may sit idle (default 10).
    pub header_read_timeout_secs: u64,
    /// Open connections at most (default 512: under the usual 1024 file descriptors).
    pub max_connections: usize,
    /// Open connections per client address, IPv6 per /64 (default 64; 0 = no cap).
    pub max_connections_per_ip: usize,
    /// The slowest an archive upload may arrive after `upload_grace_secs`, as an average over
    /// the whole body, in bytes per second (default 10240; 0 = no floor).
    pub upload_min_bytes_per_sec: u64,
    /// Seconds of an upload before `upload_min_bytes_per_sec` applies (default 30).
    pub upload_grace_secs: u64,
    /// Entry bytes in one `/v1/updates` page at most, besides `max_entries_per_page`
    /// (default 1 MiB; a page always holds at least one entry).
    pub max_page_bytes: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        // The protocol's limits are the defaults: one definition, in keyggdrasil.
        let protocol = keyggdrasil::limits::Limits::default();
        Self {
            max_submission_bytes: protocol.max_submission_bytes,
            max_archive_bytes: protocol.max_archive_bytes,
            max_entries_per_page: protocol.max_entries_per_page as u64,
            request_timeout_secs: 30,
            archive_timeout_secs: 600,
            submissions_per_minute: 600,
            reads_per_minute: 6000,
            reads_per_minute_total: 0,
            burst: 100,
            max_batch: 2000,
            writer_queue: 20_000,
            max_concurrent_uploads: 4,
            max_fresh_batch: 256,
            header_read_timeout_secs: 10,
            max_connections: 512,
            max_connections_per_ip: 64,
            upload_min_bytes_per_sec: 10 * 1024,
            upload_grace_secs: 30,
            max_page_bytes: 1 << 20,
        }
    }
}

impl ServerLimits {
    /// The connection limits of [`http_guard::serve`] (docs/security-review.md, F2).
    pub fn connections(&self) -> http_guard::Limits {
        http_guard::Limits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.max(1)),
            max_connections: self.max_connections.max(1),
            max_connections_per_ip: self.max_connections_per_ip,
            ..http_guard::Limits::default()
        }
    }
}

impl ServerLimits {
    /// The floor on an archive upload's rate (docs/security-review.md, F3).
    pub fn upload_min_rate(&self) -> crate::api::MinRate {
        crate::api::MinRate {
            grace: Duration::from_secs(self.upload_grace_secs),
            bytes_per_sec: self.upload_min_bytes_per_sec,
        }
    }

    /// Checks that no operator limit exceeds the protocol's; the first that does is returned as
    /// `(name, value, protocol limit)`. Lower is always allowed.
    pub fn check_protocol(&self) -> Result<(), (&'static str, u64, u64)> {
        let protocol = keyggdrasil::limits::Limits::default();
        for (name, value, max) in [
            (
                "max_submission_bytes",
                self.max_submission_bytes,
                protocol.max_submission_bytes,
            ),
            (
                "max_archive_bytes",
                self.max_archive_bytes,
                protocol.max_archive_bytes,
            ),
            (
                "max_entries_per_page",
                self.max_entries_per_page,
                protocol.max_entries_per_page as u64,
            ),
            (
                "max_fresh_batch",
                self.max_fresh_batch as u64,
                keyggdrasil::batch::MAX_BATCH,
            ),
        ] {
            if value > max {
                return Err((name, value, max));
            }
        }
        Ok(())
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        cfg.server.data_dir = Some(match cfg.server.data_dir.take() {
            Some(d) if d.is_absolute() => d,
            Some(d) => base.join(d),
            None => base,
        });
        cfg.limits
            .check_protocol()
            .map_err(|(name, value, max)| ConfigError::AboveProtocol {
                path: path.to_path_buf(),
                name,
                value,
                max,
            })?;
        // Checkpoints are C2SP notes signed under the channel's name, which must be a note
        // key name; a name from before that rule is refused here with what to do.
        let verifier =
            keyggdrasil::tlog_checkpoint::verifier_key(&cfg.channel.name, &cfg.channel.key)
                .map_err(|e| ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
        for w in &cfg.witness {
            let ok = keyggdrasil::note::VerifierKey::parse(&w.verifier_key)
                .is_ok_and(|k| k.alg() == keyggdrasil::note::ALG_COSIGNATURE_V1);
            if !ok || !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message: format!(
                        "[[witness]] {:?}: needs an http(s) url and a cosignature/v1 verifier_key (name+id+base64, type 0x04)",
                        w.url
                    ),
                });
            }
        }
        if let Some(written) = &cfg.channel.verifier_key
            && *written != verifier.to_string()
        {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "[channel] verifier_key is {written:?}, but the channel's name and key give {:?}; delete the line (it is derived) or fix name and key",
                    verifier.to_string()
                ),
            });
        }
        Ok(cfg)
    }

    /// The channel's note verifier key (valid after [`Config::load`], which checks the name).
    pub fn verifier_key(&self) -> Option<keyggdrasil::note::VerifierKey> {
        keyggdrasil::tlog_checkpoint::verifier_key(&self.channel.name, &self.channel.key).ok()
    }

    /// The data folder (after [`Config::load`], always set).
    pub fn data_dir(&self) -> PathBuf {
        self.server
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

/// Paths inside the data folder.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The SQLite database.
    pub db: PathBuf,
    /// Stored archives, by digest.
    pub archives: PathBuf,
    /// The static copy of the log (tiles, entry bundles, archives by digest, checkpoint),
    /// for any web server to serve ([`crate::publish`]).
    pub public: PathBuf,
    /// The private folder (0700).
    pub local: PathBuf,
    /// The channel key file (0600).
    pub key_file: PathBuf,
    /// The channel secret (0600), from which the signer MAC key is derived.
    pub secret_file: PathBuf,
    /// The signer's Unix socket.
    pub socket: PathBuf,
}

impl Paths {
    /// The standard layout under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        let local = data_dir.join("local");
        Self {
            db: data_dir.join("channel.db"),
            archives: data_dir.join("archives"),
            public: data_dir.join("public"),
            key_file: local.join("channel-key.json"),
            secret_file: local.join("channel-secret"),
            socket: local.join("signer.sock"),
            local,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_defaults() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("channel.toml");
        std::fs::write(
            &p,
            format!(
                "[channel]\nname = \"c.example\"\npolicy = \"invite\"\nkey = \"{}\"\n[server]\nlisten = \"127.0.0.1:0\"\n",
                keyggdrasil::keys::KeyPair::generate().public()
            ),
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.channel.policy, Policy::Invite);
        assert_eq!(c.limits, ServerLimits::default());
        assert_eq!(c.data_dir(), t.path());
    }

    #[test]
    fn operator_limits_never_exceed_the_protocol() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("channel.toml");
        let key = keyggdrasil::keys::KeyPair::generate().public();
        let write = |limits: &str| {
            std::fs::write(
                &p,
                format!(
                    "[channel]\nname = \"c\"\npolicy = \"open\"\nkey = \"{key}\"\n[server]\nlisten = \"127.0.0.1:0\"\n[limits]\n{limits}\n"
                ),
            )
            .unwrap();
        };
        let protocol = keyggdrasil::limits::Limits::default();
        // The defaults are the protocol's (the channel once took 512 MiB uploads sites refuse).
        let d = ServerLimits::default();
        assert_eq!(d.max_archive_bytes, protocol.max_archive_bytes);
        assert_eq!(d.max_submission_bytes, protocol.max_submission_bytes);
        assert_eq!(d.max_entries_per_page, protocol.max_entries_per_page as u64);
        for (name, above) in [
            ("max_archive_bytes", protocol.max_archive_bytes + 1),
            ("max_submission_bytes", protocol.max_submission_bytes + 1),
            (
                "max_entries_per_page",
                protocol.max_entries_per_page as u64 + 1,
            ),
        ] {
            write(&format!("{name} = {above}"));
            let e = Config::load(&p).unwrap_err();
            assert!(
                matches!(&e, ConfigError::AboveProtocol { name: n, .. } if *n == name),
                "{e}"
            );
        }
        write("max_archive_bytes = 1048576");
        assert_eq!(Config::load(&p).unwrap().limits.max_archive_bytes, 1 << 20);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("channel.toml");
        std::fs::write(
            &p,
            format!(
                "[channel]\nname = \"c\"\npolicy = \"open\"\nkey = \"{}\"\n[server]\nlisten = \"127.0.0.1:0\"\nlisen = 1\n",
                keyggdrasil::keys::KeyPair::generate().public()
            ),
        )
        .unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("lisen"), "{e}");
    }
}
