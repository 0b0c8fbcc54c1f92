//! `continuum update` and `continuum install`.

use continuum::config::{Config, SitePaths, UpdatePolicy};
use continuum::site::{self, RunReport};
use keyggdrasil::names::ChannelName;

use super::{CliError, PackageArg};

/// Runs one update cycle and prints its report (sentences, or one JSON object).
pub fn run(paths: &SitePaths, json: bool) -> Result<(), CliError> {
    let report = site::run_update(paths);
    print_report(&report, json);
    match report.failure {
        None => Ok(()),
        Some(f) => Err(CliError::Update(Box::new(f))),
    }
}

/// Starts tracking `package` with `policy` (saved in the config), then runs an update.
pub fn install(
    paths: &SitePaths,
    package: &PackageArg,
    policy: UpdatePolicy,
    channel: Option<ChannelName>,
    json: bool,
) -> Result<(), CliError> {
    let mut cfg = Config::load(&paths.config)?;
    cfg.track(
        package.supplier.clone(),
        package.name.clone(),
        channel,
        policy,
    )?;
    cfg.save(&paths.config)?;
    if json {
        eprintln!("Tracking {package}; running an update to install it.");
    } else {
        println!("Tracking {package}; running an update to install it.");
    }
    run(paths, json)
}

fn print_report(report: &RunReport, json: bool) {
    let failure = report.failure_text();
    if json {
        let value = serde_json::json!({
            "exit_code": report.kind().map_or(0, |k| k.exit_code()),
            "outcome": report.outcome(),
            "failure": failure,
            "channels": report.channels,
        });
        println!("{value}");
        if let Some(f) = &failure {
            eprintln!("continuum: UPDATE FAILED ({}): {f}", report.outcome());
        }
        return;
    }
    for c in &report.channels {
        for n in &c.notes {
            println!("{n}");
        }
    }
    match &failure {
        None => println!("ok: site is up to date"),
        Some(f) => {
            eprintln!("continuum: UPDATE FAILED ({}): {f}", report.outcome());
            eprintln!("continuum: the site was left as it was.");
        }
    }
}
