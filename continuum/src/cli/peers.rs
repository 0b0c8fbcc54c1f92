//! `continuum peers add|list|remove`.

use continuum::config::{Config, SitePaths};
use keyggdrasil::keys::PublicKey;

use super::CliError;

/// Adds (or replaces) the peer at `url` with notary key `key`, and saves the config.
pub fn add(paths: &SitePaths, url: &str, key: PublicKey) -> Result<(), CliError> {
    let mut cfg = Config::load(&paths.config)?;
    cfg.add_peer(url, key)?;
    cfg.save(&paths.config)?;
    println!("added peer {url} ({})", key.fingerprint());
    Ok(())
}

/// Prints each peer's URL and key, one per line.
pub fn list(paths: &SitePaths) -> Result<(), CliError> {
    let cfg = Config::load(&paths.config)?;
    for p in &cfg.peers {
        println!("{} {}", p.url, p.key);
    }
    Ok(())
}

/// Removes the peer at `url`, and saves the config.
pub fn remove(paths: &SitePaths, url: &str) -> Result<(), CliError> {
    let mut cfg = Config::load(&paths.config)?;
    cfg.remove_peer(url)?;
    cfg.save(&paths.config)?;
    println!("removed peer {url}");
    Ok(())
}
