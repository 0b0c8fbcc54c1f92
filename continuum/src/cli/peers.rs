//! `continuum peers add|list|remove`.

use std::time::Duration;

use continuum::config::{Config, SitePaths};
use continuum::peers::{check_peer, redact_url};
use continuum::site;
use continuum::transport::Http;
use keyggdrasil::keys::PublicKey;
use keyggdrasil::limits::Limits;

use super::{CliError, print_json, say};

/// Adds (or replaces) the peer at `url` with notary key `key`, and saves the config. Unless
/// `offline`, first asks the peer for a signed answer to a fresh challenge about each channel
/// and refuses a key that does not verify ([`check_peer`]); nothing is saved then.
pub fn add(
    paths: &SitePaths,
    url: &str,
    key: PublicKey,
    offline: bool,
    json: bool,
) -> Result<(), CliError> {
    // Credentials in the URL (`user:password@`) are never printed.
    let shown = redact_url(url);
    let mut cfg = Config::load(&paths.config)?;
    // The edit first (a duplicate key or a bad URL is refused before any network).
    cfg.add_peer(url, key)?;
    let mut verified: Vec<String> = Vec::new();
    if offline {
        say(
            json,
            "not asking the peer (--offline): its key is unverified until the first update asks it",
        );
    } else {
        let peer_timeout = Duration::from_secs(cfg.site.peer_timeout_secs.unwrap_or(5));
        let http = Http::with_timeouts(&cfg.transport, peer_timeout, peer_timeout)
            .map_err(|e| CliError::Site(e.into()))?;
        let limits = Limits {
            max_response_age_secs: cfg
                .site
                .max_response_age_secs
                .unwrap_or(Limits::default().max_response_age_secs),
            ..Limits::default()
        };
        let checked = check_peer(&http, url, &key, &cfg.channels, site::now(), &limits)?;
        for n in &checked.notes {
            say(json, n);
        }
        say(
            json,
            format!(
                "verified: peer {shown} signed a fresh answer to a random challenge with this key (channel {})",
                checked.verified.join(", ")
            ),
        );
        verified = checked.verified;
    }
    cfg.save(&paths.config)?;
    say(json, format!("added peer {shown} ({})", key.fingerprint()));
    if json {
        print_json(&serde_json::json!({
            "added": {"url": shown, "key": key.to_hex()},
            "verified_for_channels": verified,
            "offline": offline,
        }))?;
    }
    Ok(())
}

/// Prints each peer's URL and key, one per line.
pub fn list(paths: &SitePaths, json: bool) -> Result<(), CliError> {
    let cfg = Config::load(&paths.config)?;
    if json {
        let peers: Vec<_> = cfg
            .peers
            .iter()
            .map(|p| serde_json::json!({"url": redact_url(&p.url), "key": p.key.to_hex()}))
            .collect();
        return print_json(&serde_json::json!({ "peers": peers }));
    }
    for p in &cfg.peers {
        println!("{} {}", p.url, p.key);
    }
    Ok(())
}

/// Removes the peer at `url`, and saves the config.
pub fn remove(paths: &SitePaths, url: &str, json: bool) -> Result<(), CliError> {
    let mut cfg = Config::load(&paths.config)?;
    cfg.remove_peer(url)?;
    cfg.save(&paths.config)?;
    if json {
        print_json(&serde_json::json!({ "removed": redact_url(url) }))?;
    } else {
        println!("removed peer {}", redact_url(url));
    }
    Ok(())
}
