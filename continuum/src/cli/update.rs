//! `continuum update` and `continuum install`.

use continuum::config::{Config, SitePaths, UpdatePolicy};
use continuum::error::ErrorKind;
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
        let mut value = serde_json::json!({
            "exit_code": report.kind().map_or(0, |k| k.exit_code()),
            "outcome": report.outcome(),
            "failure": failure,
            "channels": report.channels,
        });
        if let (Some(kind), Some(f)) = (report.kind(), &failure) {
            value["error"] = super::error_json(kind, f)["error"].clone();
        }
        println!("{value}");
    } else {
        for c in &report.channels {
            for n in &c.notes {
                println!("{n}");
            }
        }
        if failure.is_none() {
            println!("ok: site is up to date");
        }
    }
    if let (Some(kind), Some(f)) = (report.kind(), &failure) {
        for line in failure_lines(report, kind, f) {
            eprintln!("continuum: {line}");
        }
    }
}

/// What stderr says about a failed run: the failure, then what it left behind. A busy site is
/// not a failure of this run (the other run goes on), so it is told calmly; a run whose log
/// advanced before an install failed says so instead of "site unchanged".
fn failure_lines(report: &RunReport, kind: ErrorKind, failure: &str) -> Vec<String> {
    if kind == ErrorKind::AnotherRunInProgress {
        return vec![format!(
            "another update or rollback is running on this site; this run did nothing \
             (exit 6, normal when runs overlap): {failure}"
        )];
    }
    let mut lines = vec![format!("UPDATE FAILED ({}): {failure}", report.outcome())];
    let advanced: Vec<String> = report
        .channels
        .iter()
        .filter(|c| c.size_after > c.size_before)
        .map(|c| {
            format!(
                "{} ({} -> {} entries)",
                c.channel, c.size_before, c.size_after
            )
        })
        .collect();
    if advanced.is_empty() {
        lines.push("the site was left as it was.".to_owned());
    } else {
        lines.push(format!(
            "the verified log advanced for {}; the release that failed was not installed \
             (the lines above say what was), and the next run retries it.",
            advanced.join(", ")
        ));
    }
    lines
}
