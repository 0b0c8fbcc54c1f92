//! `continuum notary key|serve`.

use std::io::Write;
use std::net::SocketAddr;

use continuum::config::{Config, SitePaths};
use continuum::site::{self, SiteError};

use super::CliError;

/// Prints the site's notary public key (derived from `local/site-secret`).
pub fn key(paths: &SitePaths, json: bool) -> Result<(), CliError> {
    let secret = site::site_secret(paths)?;
    let pair = secret.notary_keypair().map_err(SiteError::from)?;
    let witness = continuum::notary::witness::verifier_key(&pair.public());
    if json {
        super::print_json(&serde_json::json!({
            "notary_key": pair.public().to_hex(),
            "witness_verifier_key": witness,
        }))?;
    } else {
        // One line, for scripts (`$(continuum notary key)`); the witness verifier key is in
        // the JSON form.
        println!("{}", pair.public().to_hex());
    }
    Ok(())
}

/// Serves the notary endpoint on `listen` (or `site.notary_listen`) until Ctrl-C; prints
/// `listening on http://ADDR` once bound.
pub fn serve(paths: &SitePaths, listen: Option<SocketAddr>) -> Result<(), CliError> {
    let cfg = Config::load(&paths.config)?;
    let addr = listen
        .or(cfg.site.notary_listen)
        .ok_or(CliError::NoListenAddress)?;
    let io = |operation| move |source| CliError::Io { operation, source };
    let rt = tokio::runtime::Runtime::new().map_err(io("start the async runtime"))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(io("listen on the notary address"))?;
        let local = listener
            .local_addr()
            .map_err(io("read the listening address"))?;
        println!("listening on http://{local}");
        std::io::stdout().flush().map_err(io("write to stdout"))?;
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        continuum::notary::serve_notary(paths, cfg, listener, shutdown).await?;
        Ok(())
    })
}
