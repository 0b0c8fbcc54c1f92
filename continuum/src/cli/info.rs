//! `continuum info`.

use continuum::config::{Config, SitePaths};
use continuum::db;
use continuum::revocation::{Logs, Revocation, revocation_of};
use continuum::site::SiteError;
use serde::Serialize;

use super::{CliError, PackageArg, print_json};

/// One logged version in `info`.
#[derive(Debug, Serialize)]
struct VersionInfo {
    /// The version.
    version: String,
    /// The channel whose log has it.
    channel: String,
    /// Log index of its release entry.
    entry: u64,
    /// Its signing key (hex).
    signer: String,
    /// The signing key's fingerprint.
    signer_fingerprint: String,
    /// Whether the log still allows installing it.
    installable: bool,
    /// The revocation of the release or its signing key, if any.
    revocation: Option<Revocation>,
    /// Attestations: attesting supplier, claim and log index.
    attestations: Vec<Attestation>,
    /// Installed here now.
    installed: bool,
    /// Kept here for rollback.
    kept_for_rollback: bool,
}

/// One attestation.
#[derive(Debug, Serialize)]
struct Attestation {
    supplier: String,
    claim: keyggdrasil::entry::Claim,
    entry: u64,
}

/// Prints what this site's accepted log says about `package`: every version, its release
/// entry, its signer, revocations (with entry and reason) and attestations, and which version
/// is installed or kept. Reads the site database only; asks no network (run `update` first for
/// the newest log). Looks in the package's channel if it is tracked or installed, else in every
/// configured channel.
pub fn run(paths: &SitePaths, package: &PackageArg, json: bool) -> Result<(), CliError> {
    let cfg = Config::load(&paths.config)?;
    let conn = db::open(&paths.db)?;
    db::ensure_install_tables(&conn)?;
    let (s, p) = (package.supplier.as_str(), package.name.as_str());
    let tracked = cfg
        .packages
        .iter()
        .find(|c| c.supplier == package.supplier && c.name == package.name);
    let installed = db::installed_one(&conn, s, p)?;
    let channels: Vec<String> = match (tracked, &installed) {
        (Some(t), _) => vec![t.channel.as_str().to_owned()],
        (None, Some(i)) => vec![i.channel.clone()],
        (None, None) => cfg
            .channels
            .iter()
            .map(|c| c.name.as_str().to_owned())
            .collect(),
    };
    let kept: Vec<String> = db::stored_versions(&conn, s, p)?
        .into_iter()
        .map(|v| v.version)
        .collect();
    let mut logs = Logs::default();
    let mut versions = Vec::new();
    for channel in &channels {
        let state = logs
            .package(&conn, channel, &package.supplier, &package.name)
            .map_err(|e| CliError::Site(SiteError::Log(Box::new(e))))?;
        let entry_at = |i| {
            continuum::snapshot::entry_at(&conn, channel, i)
                .ok()
                .flatten()
        };
        let Some(releases) = state
            .supplier(&package.supplier)
            .and_then(|st| st.releases.get(&package.name))
        else {
            continue;
        };
        for (v, r) in releases {
            let is_installed = installed.as_ref().is_some_and(|i| i.version == v.as_str());
            versions.push(VersionInfo {
                version: v.as_str().to_owned(),
                channel: channel.clone(),
                entry: r.index,
                signer: r.signer.to_hex(),
                signer_fingerprint: r.signer.fingerprint(),
                installable: state
                    .installable(&package.supplier, &package.name, v)
                    .is_some(),
                revocation: revocation_of(state, &entry_at, s, p, v.as_str()),
                attestations: r
                    .attestations
                    .iter()
                    .map(|(a, claim, entry)| Attestation {
                        supplier: a.as_str().to_owned(),
                        claim: *claim,
                        entry: *entry,
                    })
                    .collect(),
                installed: is_installed,
                kept_for_rollback: !is_installed && kept.iter().any(|k| k == v.as_str()),
            });
        }
    }
    if json {
        return print_json(&serde_json::json!({
            "package": package.to_string(),
            "tracked": tracked.is_some(),
            "installed": installed.as_ref().map(|i| i.version.clone()),
            "versions": versions,
        }));
    }
    println!(
        "{package}: {}; {}",
        if tracked.is_some() {
            "tracked"
        } else {
            "not tracked"
        },
        installed
            .as_ref()
            .map_or("not installed".to_owned(), |i| format!(
                "installed {}",
                i.version
            ))
    );
    if versions.is_empty() {
        println!(
            "no release of {package} in the accepted log of channel {} (run `continuum update` for the newest log)",
            channels.join(", ")
        );
    }
    for v in &versions {
        let mut line = format!(
            "  {} (log entry {}, channel {}): signed by {}",
            v.version, v.entry, v.channel, v.signer_fingerprint
        );
        if v.installed {
            line.push_str("; INSTALLED");
        }
        if v.kept_for_rollback {
            line.push_str("; kept for rollback");
        }
        match &v.revocation {
            Some(r) => line.push_str(&format!("; REVOKED: {}", r.describe())),
            None if !v.installable => line.push_str("; not installable"),
            None => {}
        }
        for a in &v.attestations {
            line.push_str(&format!(
                "; attested ({}) by {} in log entry {}",
                format!("{:?}", a.claim).to_lowercase(),
                a.supplier,
                a.entry
            ));
        }
        println!("{line}");
    }
    Ok(())
}
