//! `barge.toml`: the author's channel, its pinned key, and the supplier name.

use std::path::{Path, PathBuf};

use keyggdrasil::keys::PublicKey;
use keyggdrasil::names::SupplierName;
use serde::{Deserialize, Serialize};

use crate::error::Error;

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
    /// The author folder (`--dir`): where `local/` and its journal are.
    pub dir: PathBuf,
}

/// The path of `local/` inside `dir`.
pub fn local_dir(dir: &Path) -> PathBuf {
    dir.join(LOCAL_NAME)
}

impl Config {
    /// Checks every field; `dir` is the author folder the config belongs to.
    pub fn check(&self, dir: &Path) -> Result<Loaded, Error> {
        if !(self.channel.starts_with("http://") || self.channel.starts_with("https://")) {
            return Err(Error::ChannelUrl(self.channel.clone()));
        }
        let channel_key =
            PublicKey::from_hex(&self.channel_key).map_err(|source| Error::BadPublicKey {
                what: "channel key".to_owned(),
                source,
            })?;
        let supplier = SupplierName::parse(&self.supplier).map_err(|source| Error::BadName {
            what: "supplier name",
            value: self.supplier.clone(),
            source,
        })?;
        Ok(Loaded {
            channel: self.channel.trim_end_matches('/').to_owned(),
            channel_key,
            supplier,
            dir: dir.to_path_buf(),
        })
    }
}

/// Reads and checks `dir/barge.toml`.
pub fn load(dir: &Path) -> Result<Loaded, Error> {
    let path = dir.join(CONFIG_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        // No config at all: the author has not run `barge init` here (or gave another --dir).
        Err(source) => return Err(Error::NoConfig { path, source }),
    };
    let config: Config =
        toml::from_str(&text).map_err(|source| Error::BadConfig { path, source })?;
    config.check(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/config.md lists every key of barge.toml: this fails as soon as [`Config`] gains a
    /// field the reference lacks (the field names come from serde's unknown-field error).
    #[test]
    fn every_barge_toml_key_is_in_the_reference() {
        system_tests::config_doc::assert_documented::<Config>("barge.toml", "(top level)");
    }
}
