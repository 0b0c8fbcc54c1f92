//! `continuum status`.

use continuum::config::SitePaths;
use continuum::site;

use super::CliError;

/// Prints the site's status (sentences, or JSON); fails with [`CliError::NeedsAttention`]
/// (exit 1) when there are warnings, so monitoring can alert on the exit code alone.
pub fn run(paths: &SitePaths, json: bool) -> Result<(), CliError> {
    let st = site::status(paths)?;
    if json {
        let text = serde_json::to_string_pretty(&st).map_err(|e| CliError::Io {
            operation: "write the status as JSON",
            source: e.into(),
        })?;
        println!("{text}");
    } else {
        for c in &st.channels {
            println!(
                "channel {}: {} entries{}",
                c.name,
                c.log_size,
                if c.fork_detected {
                    " — FORK DETECTED"
                } else {
                    ""
                }
            );
        }
        for p in &st.packages {
            let revoked = st
                .revoked
                .iter()
                .any(|r| r.installed && r.package == p.name);
            println!(
                "package {}: {}{}{}",
                p.name,
                p.version.as_deref().unwrap_or("not installed"),
                if revoked { " — REVOKED" } else { "" },
                p.previous
                    .as_deref()
                    .map(|v| format!(" (previous {v})"))
                    .unwrap_or_default()
            );
        }
        for p in &st.packages {
            if let Some(w) = &p.rollout {
                println!("package {}: {}", p.name, w.sentence());
            }
        }
        for r in &st.revoked {
            println!("REVOKED: {}", r.describe());
        }
        match (&st.last_success, st.last_success_age_secs) {
            (Some(t), Some(a)) => {
                println!("last successful update: {t} ({} min ago)", a / 60)
            }
            _ => println!("last successful update: never"),
        }
        for f in &st.failures_since_success {
            println!("failure since: {f}");
        }
        for w in &st.warnings {
            eprintln!("WARNING: {w}");
        }
    }
    if st.warnings.is_empty() {
        Ok(())
    } else {
        Err(CliError::NeedsAttention {
            warnings: st.warnings.len(),
        })
    }
}
