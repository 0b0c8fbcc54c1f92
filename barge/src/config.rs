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
        // Checked after the trailing `/`s are cut, which is the URL barge then uses: `https://`
        // alone would pass a check before the cut and become `https:` (found by the `config`
        // fuzz target; fixtures/fuzz-regressions/config-barge-channel-url-only-slashes.bin).
        let channel = self.channel.trim_end_matches('/');
        let host = channel
            .strip_prefix("http://")
            .or_else(|| channel.strip_prefix("https://"));
        if host.is_none_or(str::is_empty) {
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
            channel: channel.to_owned(),
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

    /// The fuzz finding: a channel URL that is only a scheme (with any number of `/`) loaded
    /// and was cut to `https:`. Now refused, as is a scheme without a host; real URLs keep
    /// loading, without their trailing `/`.
    #[test]
    fn a_channel_url_without_a_host_is_refused() {
        let config = |channel: &str| Config {
            channel: channel.to_owned(),
            channel_key: "00".repeat(32),
            supplier: "acme".to_owned(),
        };
        let regression = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/fuzz-regressions/config-barge-channel-url-only-slashes.bin"
        ));
        let dir = Path::new("/nonexistent");
        for bad in ["https://", "http://", "https:////", "https:", "ftp://x", ""] {
            assert!(
                matches!(config(bad).check(dir), Err(Error::ChannelUrl(_))),
                "{bad:?} was accepted"
            );
        }
        for (good, used) in [
            ("https://channel.example/", "https://channel.example"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ] {
            match config(good).check(dir) {
                Ok(loaded) => assert_eq!(loaded.channel, used),
                // The all-zero test key may be refused as weak: then only the URL is checked
                // here, through the error not being about it.
                Err(e) => assert!(!matches!(e, Error::ChannelUrl(_)), "{good:?}: {e}"),
            }
        }
        // The fuzz input itself (a selector byte, then a whole barge.toml) no longer loads.
        let bytes = regression.expect("the regression input is in fixtures/");
        let text = std::str::from_utf8(&bytes[1..]).expect("utf-8");
        let parsed: Config = toml::from_str(text).expect("the fuzz input parses as barge.toml");
        assert!(
            matches!(parsed.check(dir), Err(Error::ChannelUrl(_))),
            "the fuzz input loads"
        );
    }
}
