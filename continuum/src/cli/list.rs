//! `continuum list`.

use continuum::config::{Config, SitePaths, UpdatePolicy};
use continuum::db;
use serde::Serialize;

use super::{CliError, print_json};

/// One package in `list`.
#[derive(Debug, Serialize)]
struct Listed {
    /// `supplier/package`.
    package: String,
    /// Tracked in continuum.toml (false: installed files left by `remove` without `--delete`).
    tracked: bool,
    /// Its channel.
    channel: String,
    /// Its update policy, as the config spells it (none when untracked).
    policy: Option<String>,
    /// Its effective on_revoked (none when untracked).
    on_revoked: Option<String>,
    /// The installed version.
    installed: Option<String>,
    /// The version kept for rollback.
    previous: Option<String>,
}

fn policy_text(p: &UpdatePolicy) -> String {
    match p {
        UpdatePolicy::All => "all".into(),
        UpdatePolicy::Minor => "minor".into(),
        UpdatePolicy::Patch => "patch".into(),
        UpdatePolicy::Pinned(v) => format!("={v}"),
    }
}

/// Prints the tracked packages (and installed ones no longer tracked), one per line or as
/// JSON `{"packages":[…]}`. Reads only; asks no network.
pub fn run(paths: &SitePaths, json: bool) -> Result<(), CliError> {
    let cfg = Config::load(&paths.config)?;
    let conn = db::open(&paths.db)?;
    let installed = db::installed(&conn)?;
    let mut out: Vec<Listed> = cfg
        .packages
        .iter()
        .map(|p| {
            let i = installed
                .iter()
                .find(|i| i.supplier == p.supplier.as_str() && i.package == p.name.as_str());
            Listed {
                package: format!("{}/{}", p.supplier, p.name),
                tracked: true,
                channel: p.channel.as_str().to_owned(),
                policy: Some(policy_text(&p.policy)),
                on_revoked: Some(
                    serde_json::to_value(cfg.on_revoked(p))
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                ),
                installed: i.map(|i| i.version.clone()),
                previous: i.and_then(|i| i.previous.clone()),
            }
        })
        .collect();
    for i in &installed {
        let name = format!("{}/{}", i.supplier, i.package);
        if !out.iter().any(|l| l.package == name) {
            out.push(Listed {
                package: name,
                tracked: false,
                channel: i.channel.clone(),
                policy: None,
                on_revoked: None,
                installed: Some(i.version.clone()),
                previous: i.previous.clone(),
            });
        }
    }
    if json {
        return print_json(&serde_json::json!({ "packages": out }));
    }
    if out.is_empty() {
        println!("no packages tracked (start with: continuum install SUPPLIER/PACKAGE)");
    }
    for l in &out {
        let installed = match (&l.installed, &l.previous) {
            (Some(v), Some(p)) => format!("installed {v} (previous {p} kept for rollback)"),
            (Some(v), None) => format!("installed {v}"),
            _ => "not installed".into(),
        };
        match (&l.policy, &l.on_revoked) {
            (Some(policy), Some(on)) => println!(
                "{}: {installed}; channel {}, policy {policy}, on_revoked {on}",
                l.package, l.channel
            ),
            _ => println!(
                "{}: {installed}; NOT TRACKED (no updates; `continuum remove {} --delete` removes its files)",
                l.package, l.package
            ),
        }
    }
    Ok(())
}
