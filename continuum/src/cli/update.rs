//! `continuum update` and `continuum install`.

use continuum::config::{Config, SitePaths, UpdatePolicy};
use continuum::error::ErrorKind;
use continuum::site::{self, RunReport};
use keyggdrasil::names::ChannelName;

use super::{CliError, PackageArg};

/// Runs one update cycle (or, with `dry_run`, verifies one without changing anything) and
/// prints its report (sentences, or one JSON object).
pub fn run(paths: &SitePaths, json: bool, dry_run: bool) -> Result<(), CliError> {
    let report = if dry_run {
        site::run_dry_run(paths)
    } else {
        site::run_update(paths)
    };
    print_report(&report, json, dry_run);
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
    run(paths, json, false)
}

fn print_report(report: &RunReport, json: bool, dry_run: bool) {
    let failure = report.failure_text();
    if json {
        let mut value = serde_json::json!({
            "exit_code": report.kind().map_or(0, |k| k.exit_code()),
            "outcome": report.outcome(),
            "failure": failure,
            "channels": report.channels,
            "hooks": report.hooks,
            "hook_failed": report.hooks.iter().any(|h| h.failed()),
        });
        if dry_run {
            value["dry_run"] = true.into();
        }
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
        if failure.is_none() && dry_run {
            let would: Vec<String> = report
                .channels
                .iter()
                .flat_map(|c| c.would_install.iter())
                .map(|i| format!("{} {}", i.package, i.version))
                .collect();
            if would.is_empty() {
                println!("dry run: nothing would be installed; nothing was changed");
            } else {
                println!(
                    "dry run: would install {}; nothing was changed",
                    would.join(", ")
                );
            }
        } else if failure.is_none() {
            println!("ok: site is up to date");
        }
    }
    for h in report.hooks.iter().filter(|h| h.failed()) {
        eprintln!("continuum: {}", h.note());
    }
    if let (Some(kind), Some(f)) = (report.kind(), &failure) {
        if dry_run {
            eprintln!(
                "continuum: DRY RUN FAILED ({}): {f}\ncontinuum: nothing was changed (dry run).",
                report.outcome()
            );
            return;
        }
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
