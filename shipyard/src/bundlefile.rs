//! Reading and writing bundle files (see `keyggdrasil::bundle` for the format).
//!
//! Bundles hold no secrets (public keys, digests, signatures), so they are written 0644; they are
//! never overwritten, so a signed bundle cannot silently replace the request it came from.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use keyggdrasil::bundle::{Bundle, MAX_BUNDLE_BYTES};

use crate::error::Error;

/// Reads and parses a bundle file (size limit, checksum, canonical form). A bundle that fails
/// to parse is [`Error::BundleRefused`] (kind `Rejected`): damaged or tampered with. One that
/// cannot be opened is [`Error::OpenBundle`] (kind `Local`), naming the path.
pub fn read_bundle(path: &Path) -> Result<Bundle, Error> {
    let f = std::fs::File::open(path).map_err(|source| Error::OpenBundle {
        path: path.to_path_buf(),
        source,
    })?;
    let mut bytes = Vec::new();
    f.take(MAX_BUNDLE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
    Bundle::parse(&bytes).map_err(|source| Error::BundleRefused {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to a new file at `path` (refusing to replace an existing one), then syncs it.
pub fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                Error::Create {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    let r = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(source) = r {
        // A half-written file must not be taken for a bundle later.
        let _ = std::fs::remove_file(path);
        return Err(Error::Write {
            path: path.to_path_buf(),
            source,
        });
    }
    Ok(())
}

/// The default path of the signed bundle for `input`: `input` with `.signed` appended.
pub fn signed_path(input: &Path) -> PathBuf {
    let mut s = input.as_os_str().to_owned();
    s.push(".signed");
    PathBuf::from(s)
}
