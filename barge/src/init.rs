//! `barge init`: writes `barge.toml` and creates the private `local/` folder.

use std::path::Path;

use keyggdrasil::os::secretfile::ensure_private_dir;

use crate::config::{CONFIG_NAME, Config, local_dir};
use crate::error::{Error, io_at};
use crate::output::Output;

/// Arguments of `barge init`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base URL of the channel.
    #[arg(long)]
    pub channel: String,
    /// The channel's public key (64 hex), as its operator published it.
    #[arg(long)]
    pub channel_key: String,
    /// Your supplier name on the channel.
    #[arg(long)]
    pub supplier: String,
}

/// Runs `barge init`.
pub fn run(dir: &Path, out: &Output, args: Args) -> Result<(), Error> {
    let config = Config {
        channel: args.channel,
        channel_key: args.channel_key.to_ascii_lowercase(),
        supplier: args.supplier,
    };
    let loaded = config.check()?;
    let path = dir.join(CONFIG_NAME);
    if path.exists() {
        return Err(Error::ConfigExists { path });
    }
    std::fs::create_dir_all(dir).map_err(io_at("could not create", dir))?;
    let local = local_dir(dir);
    ensure_private_dir(&local)?;
    let text = toml::to_string(&config).map_err(Error::WriteConfig)?;
    std::fs::write(&path, text).map_err(io_at("could not write", &path))?;
    out.say(format!(
        "Wrote {} (supplier {}, channel {}, channel key {}).\nKeys will live in {} (mode 0700).",
        path.display(),
        loaded.supplier.as_str(),
        loaded.channel,
        loaded.channel_key.fingerprint(),
        local.display()
    ));
    out.json(serde_json::json!({
        "config": path,
        "local": local,
        "supplier": loaded.supplier.as_str(),
        "channel": loaded.channel,
        "channel_key": loaded.channel_key.to_hex(),
    }));
    Ok(())
}
