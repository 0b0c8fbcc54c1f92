//! `barge init`: checks the channel key against the channel (pin first), then writes
//! `barge.toml` and creates the private `local/` folder.

use std::path::Path;

use keyggdrasil::os::secretfile::ensure_private_dir;

use crate::config::{CONFIG_NAME, Config, local_dir};
use crate::error::{Error, io_at};
use crate::http::Client;
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
    /// Write the config without asking the channel to prove it holds the key (e.g. on a
    /// machine without network yet). The first command that submits checks it instead.
    #[arg(long)]
    pub offline: bool,
}

/// Runs `barge init`.
pub fn run(dir: &Path, out: &Output, args: Args) -> Result<(), Error> {
    let config = Config {
        channel: args.channel,
        channel_key: args.channel_key.to_ascii_lowercase(),
        supplier: args.supplier,
    };
    let loaded = config.check(dir)?;
    let path = dir.join(CONFIG_NAME);
    if path.exists() {
        return Err(Error::ConfigExists { path });
    }
    // Pin first: a key the channel cannot sign with is refused before anything is written, so
    // a typo in --channel-key is found now, not after a release went public.
    let verified = if args.offline {
        None
    } else {
        out.step(format!(
            "Asking {} to sign a fresh challenge with channel key {}...",
            loaded.channel,
            loaded.channel_key.fingerprint()
        ));
        Some(Client::new(&loaded).check_pin()?)
    };
    std::fs::create_dir_all(dir).map_err(io_at("could not create", dir))?;
    let local = local_dir(dir);
    ensure_private_dir(&local)?;
    let text = toml::to_string(&config).map_err(Error::WriteConfig)?;
    std::fs::write(&path, text).map_err(io_at("could not write", &path))?;
    let checked = match &verified {
        Some(c) => format!(
            "The channel {} (log size {}) answered a fresh challenge signed with that key.",
            c.origin().as_str(),
            c.size()
        ),
        None => "--offline: the key was NOT checked against the channel; the first command \
                 that submits checks it."
            .to_owned(),
    };
    out.say(format!(
        "Wrote {} (supplier {}, channel {}, channel key {}).\n{checked}\nKeys will live in {} \
         (mode 0700).",
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
        "checked": verified.is_some(),
        "origin": verified.as_ref().map(|c| c.origin().as_str().to_owned()),
    }));
    Ok(())
}
