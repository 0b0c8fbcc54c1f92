//! `continuum init`.

use std::path::Path;

use continuum::site;
use keyggdrasil::keys::PublicKey;
use keyggdrasil::names::ChannelName;

use super::CliError;

/// Creates the site folder `dir` for the channel at `channel` with key `key`, and says what to
/// do next.
pub fn run(
    dir: &Path,
    channel: &str,
    key: PublicKey,
    name: Option<ChannelName>,
    notary_listen: std::net::SocketAddr,
    json: bool,
) -> Result<(), CliError> {
    let done = site::init(dir, channel, key, name, notary_listen)?;
    if json {
        super::print_json(&serde_json::json!({
            "dir": dir,
            "channel": done.channel.as_str(),
            "notary_key": done.notary_key.to_hex(),
            "notary_listen": notary_listen.to_string(),
        }))?;
        return Ok(());
    }
    println!(
        "Created site in {} for channel {}",
        dir.display(),
        done.channel.as_str()
    );
    println!(
        "Notary public key (give it to sites that peer with you): {}",
        done.notary_key.to_hex()
    );
    println!(
        "Next: add peers (continuum --dir {} peers add URL KEY), then install packages.",
        dir.display()
    );
    Ok(())
}
