//! `barge revoke-release PACKAGE VERSION`: logs a release revocation of one of the supplier's
//! releases, signed by a current signing or master key of the supplier (the key rules accept
//! either), then checks that the channel logged it. Sites stop installing a revoked release.
//! A version stays used forever: it cannot be released again after a revocation.

use std::path::{Path, PathBuf};

use crate::build::{parse_package, parse_version};
use crate::config;
use crate::error::Error;
use crate::http::Client;
use crate::key::{find_key, resolve, unlock};
use crate::output::Output;
use keyggdrasil::entry::{Event, Reason};
use keyggdrasil::keyfile::{KeyFile, KeyRole};

/// Arguments of `barge revoke-release`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Package name.
    pub package: String,
    /// The version to revoke.
    pub version: String,
    /// Why, for people reading the log (at most 256 bytes, no control characters).
    #[arg(long)]
    pub reason: String,
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
                why: "the revocation must be signed by one of your keys",
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
        // No signing key at all: a master key may sign release revocations too.
        Err(signing_err) => find_key(dir, KeyRole::Master, None).map_err(|_| signing_err),
    }
}

/// Runs `barge revoke-release`.
pub fn run(dir: &Path, out: &Output, a: Args) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let package = parse_package(&a.package)?;
    let version = parse_version(&a.version)?;
    let reason = Reason::parse(&a.reason).map_err(Error::BadReason)?;
    let (path, file) = signer(dir, a.key.as_deref())?;
    // Pin first: no passphrase is asked for, and nothing sent, for a channel without the key.
    let client = Client::pinned(&cfg, out)?;
    out.step(format!(
        "Unlocking key {} ({}) to revoke {}/{} {}...",
        file.public_key.fingerprint(),
        path.display(),
        cfg.supplier.as_str(),
        package.as_str(),
        version.as_str()
    ));
    let kp = unlock(&file, a.passphrase_stdin)?;
    let event = Event::ReleaseRevocation {
        package: package.clone(),
        version: version.clone(),
        reason: reason.clone(),
    };
    out.step(format!("Submitting the revocation to {}...", cfg.channel));
    let (_, resp, checkpoint) = client.sign_and_log(&cfg.supplier, kp, event, None)?;
    out.say(format!(
        "Revoked {}/{} {}: logged at index {}{}, included under the checkpoint of size {} signed \
         by the channel key {}. Sites will not install it.",
        cfg.supplier.as_str(),
        package.as_str(),
        version.as_str(),
        resp.index,
        if resp.duplicate {
            " (it was already there)"
        } else {
            ""
        },
        checkpoint.size(),
        cfg.channel_key.fingerprint()
    ));
    out.json(serde_json::json!({
        "supplier": cfg.supplier.as_str(),
        "package": package.as_str(),
        "version": version.as_str(),
        "reason": reason.as_str(),
        "signer": file.public_key.to_hex(),
        "index": resp.index,
        "size": resp.size,
        "duplicate": resp.duplicate,
        "checkpoint_size": checkpoint.size(),
        "root": hex::encode(checkpoint.root().0),
        "included": true,
    }));
    Ok(())
}
