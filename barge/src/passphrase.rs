//! Passphrases: read from standard input for scripts, or generated as BIP-39 words; and the
//! key-derivation costs, with a test-only cheap override.

use std::io::{BufRead, Read};

use keyggdrasil::kdf::{Derivation, Level, MAX_PASSPHRASE_LEN, SALT_LEN};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::output::warn_loudly;

/// Environment variable that, set to `cheap`, makes new keys use the smallest Argon2i costs.
/// FOR TESTS ONLY: such keys are easy to brute-force. A warning is printed each time.
pub const TEST_KDF_ENV: &str = "BARGE_TEST_KDF";

/// Reads one line from standard input (the trailing `\n` or `\r\n` removed) into zeroizing
/// memory. The buffer is allocated up front so it never moves (no stray copies).
pub fn read_stdin_line() -> Result<Zeroizing<Vec<u8>>, Error> {
    let cap = MAX_PASSPHRASE_LEN + 2;
    let mut buf = Zeroizing::new(Vec::with_capacity(cap));
    std::io::stdin()
        .lock()
        .take(cap as u64)
        .read_until(b'\n', &mut buf)
        .map_err(|e| Error::Failed(format!("could not read the passphrase from stdin: {e}")))?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    if buf.is_empty() {
        return Err(Error::Usage(
            "the passphrase read from stdin is empty".to_owned(),
        ));
    }
    if buf.len() > MAX_PASSPHRASE_LEN {
        return Err(Error::Usage(format!(
            "the passphrase is longer than {MAX_PASSPHRASE_LEN} bytes"
        )));
    }
    Ok(buf)
}

/// The passphrase to unlock an existing key: only `--passphrase-stdin` for now.
pub fn for_unlock(stdin: bool) -> Result<Zeroizing<Vec<u8>>, Error> {
    if stdin {
        read_stdin_line()
    } else {
        Err(Error::Usage(
            "this key needs its passphrase: pass --passphrase-stdin and write it on standard input \
             (interactive prompting is not built yet)"
                .to_owned(),
        ))
    }
}

/// A fresh derivation record at `level`, or at the smallest costs when [`TEST_KDF_ENV`] is
/// `cheap` (with a warning).
pub fn new_derivation(level: Level) -> Derivation {
    if std::env::var(TEST_KDF_ENV).as_deref() == Ok("cheap") {
        warn_loudly(&format!(
            "{TEST_KDF_ENV}=cheap: deriving with the smallest Argon2i costs (ops 3, 8 KiB). \
             FOR TESTS ONLY: such a key is easy to brute-force."
        ));
        let fresh = Derivation::new(level);
        return Derivation::with_salt(fresh.salt, 3, 8192);
    }
    Derivation::new(level)
}

/// Parses a salt given in hex.
pub fn parse_salt(text: &str) -> Result<[u8; SALT_LEN], Error> {
    let bytes =
        hex::decode(text).map_err(|e| Error::Usage(format!("salt is not valid hex: {e}")))?;
    bytes.try_into().map_err(|_| {
        Error::Usage(format!(
            "salt must be {SALT_LEN} bytes ({} hex digits)",
            SALT_LEN * 2
        ))
    })
}
