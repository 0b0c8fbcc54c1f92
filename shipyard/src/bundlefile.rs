//! Reading and writing bundle files (see `keyggdrasil::bundle` for the format).
//!
//! Bundles hold no secrets (public keys, digests, signatures), so they are written 0644; they are
//! never overwritten, so a signed bundle cannot silently replace the request it came from.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use keyggdrasil::bundle::{Bundle, MAX_BUNDLE_BYTES};

use crate::error::{Error, failed};

/// Reads and parses a bundle file (size limit, checksum, canonical form). A bundle that fails
/// to parse is [`Error::Invalid`]: damaged or tampered with.
pub fn read_bundle(path: &Path) -> Result<Bundle, Error> {
    let f = std::fs::File::open(path)
        .map_err(|e| Error::Usage(format!("could not open {}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    f.take(MAX_BUNDLE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(failed(format!("could not read {}", path.display())))?;
    Bundle::parse(&bytes).map_err(|e| {
        Error::Invalid(format!(
            "{} was refused: {e}; nothing was signed or written",
            path.display()
        ))
    })
}

/// Writes `bytes` to a new file at `path` (refusing to replace an existing one), then syncs it.
pub fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Usage(format!(
                    "{} exists already; move it away or choose another output",
                    path.display()
                ))
            } else {
                Error::Failed(format!("could not create {}: {e}", path.display()))
            }
        })?;
    let r = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = r {
        let _ = std::fs::remove_file(path);
        return Err(failed(format!("could not write {}", path.display()))(e));
    }
    Ok(())
}

/// The default path of the signed bundle for `input`: `input` with `.signed` appended.
pub fn signed_path(input: &Path) -> PathBuf {
    let mut s = input.as_os_str().to_owned();
    s.push(".signed");
    PathBuf::from(s)
}
