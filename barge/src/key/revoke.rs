//! `barge key revoke KEY`: revokes a master or signing key of the supplier with an entry signed
//! by another current master key, then checks that the channel logged it.
//!
//! The key rules (`keyggdrasil::state`) refuse a revocation signed by the revoked key itself and
//! one that would leave the supplier without a master key; the self-revocation is refused here
//! too, before the passphrase is read or anything is sent. Revoking a master key does not revoke
//! the keys it added. The local key file of the revoked key is left in place (it holds no
//! secret); delete it yourself if you want.

use std::path::Path;

use keyggdrasil::entry::{Event, Reason};
use keyggdrasil::keyfile::KeyRole;

use shipyard::keys::{all_keys, unlock};

use super::resolve::resolve;
use crate::config::{self, local_dir};
use crate::error::Error;
use crate::http::Client;
use crate::output::Output;

/// Arguments of `barge key revoke`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key to revoke: its public key (64 hex), a key file path, or a prefix of a key file
    /// name, fingerprint or public key in `local/`.
    pub key: String,
    /// Why, for people reading the log (at most 256 bytes, no control characters).
    #[arg(long)]
    pub reason: String,
    /// The master key that signs the revocation, named like KEY (default: the only other master
    /// key in `local/`). It may not be the revoked key.
    #[arg(long)]
    pub by: Option<String>,
    /// Read the signing master key's passphrase from standard input.
    #[arg(long)]
    pub passphrase_stdin: bool,
}

/// Runs `barge key revoke`.
pub fn run(dir: &Path, out: &Output, a: Args) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let reason = Reason::parse(&a.reason).map_err(Error::BadReason)?;
    let revoked = resolve(dir, &a.key)?;
    let (by_path, by_file) = match &a.by {
        Some(text) => {
            let named = resolve(dir, text)?;
            let Some(file) = named.file else {
                return Err(Error::NoKeyFile {
                    option: "--by",
                    text: text.clone(),
                    why: "the signing master key must be one of yours",
                });
            };
            file
        }
        None => {
            let mut masters: Vec<_> = all_keys(dir)?
                .into_iter()
                .filter(|(_, k)| k.role == KeyRole::Master && k.public_key != revoked.public_key)
                .collect();
            match masters.len() {
                1 => masters.remove(0),
                0 => {
                    return Err(Error::NoOtherMaster {
                        local: local_dir(dir),
                    });
                }
                count => {
                    return Err(Error::ManyOtherMasters {
                        count,
                        local: local_dir(dir),
                    });
                }
            }
        }
    };
    if by_file.role != KeyRole::Master {
        return Err(Error::KeyMayNotSign {
            path: by_path,
            role: by_file.role,
            needed: "only a master key can revoke keys",
        });
    }
    if by_file.public_key == revoked.public_key {
        return Err(Error::SelfRevocation {
            key: revoked.public_key,
        });
    }
    let what = revoked
        .file
        .as_ref()
        .map(|(_, k)| shipyard::keys::role_name(k.role))
        .unwrap_or("supplier");
    // Pin first: no passphrase is asked for, and nothing sent, for a channel without the key.
    let client = Client::pinned(&cfg, out)?;
    out.step(format!(
        "Unlocking master key {} ({}) to revoke {what} key {}...",
        by_file.public_key.fingerprint(),
        by_path.display(),
        revoked.public_key.fingerprint()
    ));
    let master = unlock(&by_file, a.passphrase_stdin)?;
    let event = Event::KeyRevocation {
        public_key: revoked.public_key,
        reason: reason.clone(),
    };
    out.step(format!("Submitting the revocation to {}...", cfg.channel));
    let (_, resp, checkpoint) = client.sign_and_log(&cfg.supplier, master, event, None)?;
    out.say(format!(
        "Revoked key {} of supplier {}: logged at index {}{}, included under the checkpoint of \
         size {} signed by the channel key {}.",
        revoked.public_key.fingerprint(),
        cfg.supplier.as_str(),
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
        "revoked": revoked.public_key.to_hex(),
        "fingerprint": revoked.public_key.fingerprint(),
        "by": by_file.public_key.to_hex(),
        "reason": reason.as_str(),
        "index": resp.index,
        "size": resp.size,
        "duplicate": resp.duplicate,
        "checkpoint_size": checkpoint.size(),
        "root": hex::encode(checkpoint.root().0),
        "included": true,
    }));
    Ok(())
}
