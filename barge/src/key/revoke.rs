//! `barge key revoke KEY`: revokes a master or signing key of the supplier with an entry signed
//! by another current master key, then checks that the channel logged it.
//!
//! The key rules (`keyggdrasil::state`) refuse a revocation signed by the revoked key itself and
//! one that would leave the supplier without a master key; the self-revocation is refused here
//! too, before the passphrase is read or anything is sent. Revoking a master key does not revoke
//! the keys it added. The local key file of the revoked key is left in place (it holds no
//! secret); delete it yourself if you want.

use std::path::{Path, PathBuf};

use keyggdrasil::entry::{Event, Reason};
use keyggdrasil::keyfile::{KeyFile, KeyRole};
use keyggdrasil::keys::PublicKey;

use crate::config::{self, local_dir};
use crate::error::Error;
use crate::http::Client;
use crate::key::{all_keys, read_key_file, unlock};
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

fn role_name(role: KeyRole) -> &'static str {
    match role {
        KeyRole::Master => "master",
        KeyRole::Signing => "signing",
        KeyRole::Channel => "channel",
        KeyRole::Notary => "notary",
    }
}

/// A key named on the command line: its public key and, if there is one, its local key file.
pub struct Named {
    /// The public key.
    pub public_key: PublicKey,
    /// The key file in `local/` (or the path given) holding it, if any.
    pub file: Option<(PathBuf, KeyFile)>,
}

/// Resolves `text` to a key: an existing key file path, a 64-hex public key (with its local
/// file if one exists), or a unique prefix of a key file name, fingerprint or public key hex in
/// `local/`. Does not contact the channel.
pub fn resolve(dir: &Path, text: &str) -> Result<Named, Error> {
    let as_path = Path::new(text);
    if text.contains('/') || as_path.is_file() {
        let file = read_key_file(as_path)?;
        return Ok(Named {
            public_key: file.public_key,
            file: Some((as_path.to_path_buf(), file)),
        });
    }
    let keys = all_keys(dir)?;
    if text.len() == 64 {
        let public_key = PublicKey::from_hex(text)
            .map_err(|e| Error::Usage(format!("{text:?} is not a valid public key: {e}")))?;
        let file = keys.into_iter().find(|(_, k)| k.public_key == public_key);
        return Ok(Named { public_key, file });
    }
    if text.is_empty() {
        return Err(Error::Usage("an empty key name matches nothing".to_owned()));
    }
    let needle = text.to_ascii_lowercase();
    let mut found: Vec<(PathBuf, KeyFile)> = keys
        .into_iter()
        .filter(|(p, k)| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(text))
                || k.public_key.fingerprint().starts_with(&needle)
                || k.public_key.to_hex().starts_with(&needle)
        })
        .collect();
    match found.len() {
        1 => {
            let (p, k) = found.remove(0);
            Ok(Named {
                public_key: k.public_key,
                file: Some((p, k)),
            })
        }
        0 => Err(Error::Usage(format!(
            "no key in {} matches {text:?}; give a public key (64 hex), a key file path, or a \
             prefix of a key file name or fingerprint (see `barge key list`)",
            local_dir(dir).display()
        ))),
        n => Err(Error::Usage(format!(
            "{n} keys in {} match {text:?}; give more characters",
            local_dir(dir).display()
        ))),
    }
}

/// Runs `barge key revoke`.
pub fn run(dir: &Path, out: &Output, a: Args) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let reason = Reason::parse(&a.reason).map_err(|e| Error::Usage(format!("--reason: {e}")))?;
    let revoked = resolve(dir, &a.key)?;
    let (by_path, by_file) = match &a.by {
        Some(text) => {
            let named = resolve(dir, text)?;
            let Some(file) = named.file else {
                return Err(Error::Usage(format!(
                    "no key file for --by {text:?} in {}: the signing master key must be one of \
                     yours",
                    local_dir(dir).display()
                )));
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
                    return Err(Error::Usage(format!(
                        "no other master key in {} to sign the revocation: a key cannot revoke \
                         itself, and the channel never lets a supplier revoke its last master key",
                        local_dir(dir).display()
                    )));
                }
                n => {
                    return Err(Error::Usage(format!(
                        "{n} other master keys in {}; say which one signs with --by",
                        local_dir(dir).display()
                    )));
                }
            }
        }
    };
    if by_file.role != KeyRole::Master {
        return Err(Error::Usage(format!(
            "{} is a {} key; only a master key can revoke keys",
            by_path.display(),
            role_name(by_file.role)
        )));
    }
    if by_file.public_key == revoked.public_key {
        return Err(Error::Usage(format!(
            "refusing to revoke key {} with itself: a revocation must be signed by another \
             current master key (pass --by)",
            revoked.public_key.fingerprint()
        )));
    }
    let what = revoked
        .file
        .as_ref()
        .map(|(_, k)| role_name(k.role))
        .unwrap_or("supplier");
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
    let client = Client::new(&cfg);
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
