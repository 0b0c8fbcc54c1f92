//! Naming a key on the command line: a key file path, a public key in hex, or a unique prefix
//! of a key file name, fingerprint or public key in `local/`. Used by `key revoke`,
//! `revoke-release` and `verify-build`. Never contacts the channel.

use std::path::{Path, PathBuf};

use keyggdrasil::keyfile::KeyFile;
use keyggdrasil::keys::PublicKey;

use shipyard::keys::{all_keys, read_key_file};

use crate::config::local_dir;
use crate::error::Error;

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
        let public_key = PublicKey::from_hex(text).map_err(|source| Error::BadPublicKey {
            what: format!("{text:?}"),
            source,
        })?;
        let file = keys.into_iter().find(|(_, k)| k.public_key == public_key);
        return Ok(Named { public_key, file });
    }
    if text.is_empty() {
        return Err(Error::EmptyKeyName);
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
        0 => Err(Error::NoSuchKey {
            text: text.to_owned(),
            local: local_dir(dir),
        }),
        count => Err(Error::AmbiguousKeyName {
            count,
            text: text.to_owned(),
            local: local_dir(dir),
        }),
    }
}
