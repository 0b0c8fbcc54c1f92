//! `barge.toml`: the author's channel, its pinned key, and the supplier name.

use std::path::{Path, PathBuf};

use keyggdrasil::keys::PublicKey;
use keyggdrasil::names::SupplierName;
use serde::{Deserialize, Serialize};

use crate::error::{Error, failed};

/// Name of the config file inside `--dir`.
pub const CONFIG_NAME: &str = "barge.toml";
/// Private folder for key files inside `--dir`.
pub const LOCAL_NAME: &str = "local";

/// The contents of `barge.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL of the channel, e.g. `https://channel.example`.
    pub channel: String,
    /// The channel's public key (64 hex), pinned at init.
    pub channel_key: String,
    /// The supplier name.
    pub supplier: String,
}

/// A loaded and checked config.
pub struct Loaded {
    /// Base URL without a trailing `/`.
    pub channel: String,
    /// The pinned channel key.
    pub channel_key: PublicKey,
    /// The supplier.
    pub supplier: SupplierName,
}

/// The path of `local/` inside `dir`.
pub fn local_dir(dir: &Path) -> PathBuf {
    dir.join(LOCAL_NAME)
}

impl Config {
    /// Checks every field.
    pub fn check(&self) -> Result<Loaded, Error> {
        if !(self.channel.starts_with("http://") || self.channel.starts_with("https://")) {
            return Err(Error::Usage(format!(
                "channel URL {:?} must start with http:// or https://",
                self.channel
            )));
        }
        let channel_key = PublicKey::from_hex(&self.channel_key)
            .map_err(|e| Error::Usage(format!("channel key is not a valid public key: {e}")))?;
        let supplier = SupplierName::parse(&self.supplier)
            .map_err(|e| Error::Usage(format!("supplier name {:?}: {e}", self.supplier)))?;
        Ok(Loaded {
            channel: self.channel.trim_end_matches('/').to_owned(),
            channel_key,
            supplier,
        })
    }
}

/// Reads and checks `dir/barge.toml`.
pub fn load(dir: &Path) -> Result<Loaded, Error> {
    let path = dir.join(CONFIG_NAME);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::Usage(format!(
            "could not read {}: {e} (run `barge init` first, or pass --dir)",
            path.display()
        ))
    })?;
    let config: Config = toml::from_str(&text).map_err(failed(format!(
        "{} is not a valid barge config",
        path.display()
    )))?;
    config.check()
}
