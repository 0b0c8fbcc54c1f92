//! `barge rollout pause|resume|widen PACKAGE VERSION`: logs a `rollout` entry that replaces the
//! staged-rollout schedule of one of the supplier's releases (see `keyggdrasil::rollout`),
//! signed by a current signing or master key, then checks that the channel logged it. Every
//! site and monitor sees the same schedule; the channel cannot change it.
//!
//! A rollout entry names the log index of the schedule it replaces (`replaces`: the latest
//! rollout entry of the release, or the release entry itself), so it is valid exactly once.
//! [`current_schedule`] learns that index from the channel: the release by its indexed lookup,
//! then the supplier's history after it, each entry proven included under one signed
//! checkpoint. The channel only asserts that the history is complete; one that hides a later
//! rollout entry gets an entry naming an old schedule, which the key rules refuse everywhere
//! (`stale_rollout`), so it can withhold the change (as it always could), never misapply it.
//! A "duplicate" answer is an error ([`Error::RolloutDuplicate`]): nothing new was logged.
//!
//! Also the parser of `--rollout` specs, shared with `barge release`:
//! `1%,10%@+6h,100%@+24h` (times relative to now at signing: `s`, `m`, `h`, `d`), `50%@1800000000`
//! (absolute Unix seconds), a wave without `@` starts now, and `now` for everyone at once.

use std::path::{Path, PathBuf};

use keyggdrasil::entry::Event;
use keyggdrasil::keyfile::{KeyFile, KeyRole};
use keyggdrasil::names::{PackageName, Version};
use keyggdrasil::rollout::{MAX_WAVES, Rollout, Wave, validate_waves};

use crate::build::{parse_package, parse_version};
use crate::config;
use crate::error::Error;
use crate::http::Client;
use crate::key::{find_key, resolve, unlock};
use crate::output::Output;

/// Longest `--rollout` text accepted (eight waves fit in far less).
const MAX_SPEC_LEN: usize = 256;

/// Parses a `--rollout` spec (module docs) into waves, with relative times counted from `now`
/// (Unix seconds). Checks the wave rules, so what is parsed can be signed.
pub fn parse_spec(text: &str, now: u64) -> Result<Vec<Wave>, Error> {
    let bad = |problem: String| Error::BadRollout {
        value: text.chars().take(MAX_SPEC_LEN).collect(),
        problem,
    };
    if text.len() > MAX_SPEC_LEN {
        return Err(bad(format!("longer than {MAX_SPEC_LEN} characters")));
    }
    if text.trim() == "now" {
        return Ok(Rollout::everyone_now().waves);
    }
    let mut waves = Vec::new();
    for part in text.split(',') {
        if waves.len() == MAX_WAVES {
            return Err(bad(format!("at most {MAX_WAVES} waves")));
        }
        let part = part.trim();
        let (pct, at) = match part.split_once('@') {
            Some((p, a)) => (p, Some(a)),
            None => (part, None),
        };
        let percent = pct
            .strip_suffix('%')
            .and_then(|p| p.parse::<u8>().ok())
            .filter(|p| (1..=100).contains(p))
            .ok_or_else(|| {
                bad(format!(
                    "{part:?}: a wave is PERCENT% (1 to 100), optionally @+6h or @UNIX_SECONDS"
                ))
            })?;
        let not_before = match at {
            None => now,
            Some(a) => parse_time(a, now).ok_or_else(|| {
                bad(format!(
                    "{part:?}: the time after @ is +N followed by s, m, h or d (relative to now), or absolute Unix seconds"
                ))
            })?,
        };
        waves.push(Wave {
            percent,
            not_before,
        });
    }
    validate_waves(&waves).map_err(|e| bad(e.to_string()))?;
    Ok(waves)
}

fn parse_time(text: &str, now: u64) -> Option<u64> {
    let Some(rel) = text.strip_prefix('+') else {
        return text.parse::<u64>().ok();
    };
    let unit = match rel.chars().last()? {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let n: u64 = rel.get(..rel.len() - 1)?.parse().ok()?;
    now.checked_add(n.checked_mul(unit)?)
}

/// A release's current schedule as the channel shows it under one signed checkpoint.
pub struct CurrentSchedule {
    /// The log index of the entry that set the current schedule (what a new rollout entry
    /// names as `replaces`): the latest rollout entry of the release, else the release entry.
    pub index: u64,
    /// That schedule (`None`: the release has none, everyone at once).
    pub schedule: Option<Rollout>,
}

/// Finds the release `package` `version` of the supplier in `cfg` and its current schedule (see
/// the module docs): `GET /v1/release`, then the supplier's history after the release, pages of
/// `GET /v1/suppliers/{name}`, all at the size of one checkpoint signed by the pinned key.
pub fn current_schedule(
    client: &Client,
    cfg: &config::Loaded,
    package: &PackageName,
    version: &Version,
) -> Result<CurrentSchedule, Error> {
    let name = format!(
        "{}/{} {}",
        cfg.supplier.as_str(),
        package.as_str(),
        version.as_str()
    );
    let (checkpoint, found) = client.find_release(&cfg.supplier, package, version)?;
    let release = found.ok_or_else(|| Error::NotLogged {
        name,
        size: checkpoint.size(),
        channel_key: cfg.channel_key,
    })?;
    let mut index = release.index;
    let mut schedule = release.entry.body().event.rollout();
    let mut start = release.index + 1;
    while start < checkpoint.size() {
        let (page, next) = client.supplier_history(&cfg.supplier, &checkpoint, start)?;
        for h in page {
            if let Event::Rollout {
                package: p,
                version: v,
                ..
            } = &h.entry.body().event
                && p == package
                && v == version
                && h.index > index
            {
                index = h.index;
                schedule = h.entry.body().event.rollout();
            }
        }
        // `next` is checked to move forward and to stay below the size.
        match next {
            Some(n) => start = n,
            None => break,
        }
    }
    Ok(CurrentSchedule { index, schedule })
}

/// What to do to the schedule.
#[derive(Debug, clap::Subcommand)]
pub enum RolloutCommand {
    /// Stop the rollout: no site that has not installed the release installs it.
    Pause(Args),
    /// Resume a paused rollout (with its schedule, or with --rollout).
    Resume(Args),
    /// Replace the waves (for example `--rollout now`: everyone at once, e.g. a security fix).
    Widen(Args),
}

/// Arguments of `barge rollout pause|resume|widen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Package name.
    pub package: String,
    /// The version whose rollout changes.
    pub version: String,
    /// The waves (required for widen): `1%,10%@+6h,100%@+24h`, `100%@1800000000`, or `now`.
    /// For pause and resume, default: the release's current waves (of its latest rollout
    /// entry, else of the release entry; everyone now if it has none).
    #[arg(long)]
    pub rollout: Option<String>,
    /// The signing or master key that signs, named as for `key revoke` (default: the only
    /// signing key in `local/`, or the only master key if there is no signing key).
    #[arg(long)]
    pub key: Option<String>,
    /// Read the key's passphrase from standard input.
    #[arg(long)]
    pub passphrase_stdin: bool,
}

fn signer(dir: &Path, key: Option<&str>) -> Result<(PathBuf, KeyFile), Error> {
    if let Some(text) = key {
        let named = resolve(dir, text)?;
        let Some((path, file)) = named.file else {
            return Err(Error::NoKeyFile {
                option: "--key",
                text: text.to_owned(),
                why: "a rollout entry must be signed by one of your keys",
            });
        };
        if !matches!(file.role, KeyRole::Master | KeyRole::Signing) {
            return Err(Error::KeyMayNotSign {
                path,
                role: file.role,
                needed: "use a signing or master key",
            });
        }
        return Ok((path, file));
    }
    match find_key(dir, KeyRole::Signing, None) {
        Ok(found) => Ok(found),
        Err(signing_err) => find_key(dir, KeyRole::Master, None).map_err(|_| signing_err),
    }
}

/// Runs `barge rollout ...`.
pub fn run(dir: &Path, out: &Output, command: RolloutCommand) -> Result<(), Error> {
    let (action, a) = match command {
        RolloutCommand::Pause(a) => ("pause", a),
        RolloutCommand::Resume(a) => ("resume", a),
        RolloutCommand::Widen(a) => ("widen", a),
    };
    let cfg = config::load(dir)?;
    let package = parse_package(&a.package)?;
    let version = parse_version(&a.version)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let given = a
        .rollout
        .as_deref()
        .map(|t| parse_spec(t, now))
        .transpose()?;
    if action == "widen" && given.is_none() {
        return Err(Error::BadRollout {
            value: String::new(),
            problem: "widen needs the new waves: --rollout 100%@+1d, or --rollout now".into(),
        });
    }
    let (path, file) = signer(dir, a.key.as_deref())?;
    // Pin first: no passphrase is asked for, and nothing sent, for a channel without the key.
    let client = Client::pinned(&cfg, out)?;
    let name = format!(
        "{}/{} {}",
        cfg.supplier.as_str(),
        package.as_str(),
        version.as_str()
    );
    // The release must be logged (the channel refuses a rollout of anything else anyway); the
    // new entry names its current schedule, whose waves are the default for pause and resume.
    out.step(format!(
        "Reading the current schedule of {name} from {}...",
        cfg.channel
    ));
    let current = current_schedule(&client, &cfg, &package, &version)?;
    let waves = match given {
        Some(w) => w,
        None => current
            .schedule
            .clone()
            .map_or_else(|| Rollout::everyone_now().waves, |r| r.waves),
    };
    let paused = action == "pause";
    out.step(format!(
        "Unlocking key {} ({}) to {action} the rollout of {name}...",
        file.public_key.fingerprint(),
        path.display(),
    ));
    let kp = unlock(&file, a.passphrase_stdin)?;
    let event = Event::Rollout {
        package: package.clone(),
        version: version.clone(),
        replaces: current.index,
        waves: waves.clone(),
        paused,
    };
    out.step(format!(
        "Submitting the rollout entry (it replaces the schedule at index {}) to {}...",
        current.index, cfg.channel
    ));
    let (_, resp, checkpoint) = client.sign_and_log(&cfg.supplier, kp, event, None)?;
    if resp.duplicate {
        return Err(Error::RolloutDuplicate {
            what: name,
            index: resp.index,
        });
    }
    let steps: Vec<String> = waves
        .iter()
        .map(|w| format!("{}% from {}", w.percent, w.not_before))
        .collect();
    out.say(format!(
        "Rollout of {name} {}: logged at index {} (replacing the schedule at index {}), \
         included under the checkpoint of size {} signed by the channel key {}. Schedule: {}{}.",
        if paused { "paused" } else { "set" },
        resp.index,
        current.index,
        checkpoint.size(),
        cfg.channel_key.fingerprint(),
        steps.join(", "),
        if paused {
            " (paused: no site installs it until you resume)"
        } else {
            ""
        }
    ));
    out.json(serde_json::json!({
        "supplier": cfg.supplier.as_str(),
        "package": package.as_str(),
        "version": version.as_str(),
        "action": action,
        "waves": waves,
        "paused": paused,
        "replaces": current.index,
        "signer": file.public_key.to_hex(),
        "index": resp.index,
        "size": resp.size,
        "duplicate": false,
        "checkpoint_size": checkpoint.size(),
        "root": hex::encode(checkpoint.root().0),
        "included": true,
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(percent: u8, not_before: u64) -> Wave {
        Wave {
            percent,
            not_before,
        }
    }

    #[test]
    fn specs() {
        let now = 1_000_000;
        assert_eq!(
            parse_spec("1%,10%@+6h,100%@+24h", now).unwrap(),
            vec![w(1, now), w(10, now + 6 * 3600), w(100, now + 86_400)]
        );
        assert_eq!(parse_spec("now", now).unwrap(), vec![w(100, 0)]);
        assert_eq!(
            parse_spec("5%@+30m, 50%@+2d", now).unwrap(),
            vec![w(5, now + 1800), w(50, now + 2 * 86_400)]
        );
        assert_eq!(
            parse_spec("100%@1800000000", now).unwrap(),
            vec![w(100, 1_800_000_000)]
        );
        for bad in [
            "",
            "0%",
            "101%",
            "10",
            "10%@",
            "10%@+5y",
            "10%@-5",
            "50%,10%",
            "10%@+1d,20%@+1h",
            "1%,2%,3%,4%,5%,6%,7%,8%,9%",
            "10%@+99999999999999999999d",
        ] {
            assert!(parse_spec(bad, now).is_err(), "{bad}");
        }
    }
}
