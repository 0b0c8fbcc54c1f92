//! Passphrases for barge: thin wrappers over `shipyard::passphrase` (shared with hangar), kept
//! under their old names so the rest of barge calls them unchanged.
// Some wrappers are kept for callers on other branches (key revoke, revoke-release) even when
// nothing on this one calls them.
#![allow(dead_code)]

use keyggdrasil::kdf::{Derivation, Level, SALT_LEN};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::key::from_shipyard;

/// Environment variable that, set to `cheap`, makes new keys use the smallest Argon2i costs.
/// FOR TESTS ONLY: such keys are easy to brute-force. A warning is printed each time.
pub const TEST_KDF_ENV: &str = "BARGE_TEST_KDF";

/// barge, for shipyard's messages and its test-KDF switch.
pub const TOOL: shipyard::Tool = shipyard::Tool {
    name: "barge",
    test_kdf_env: TEST_KDF_ENV,
};

/// Reads one line from standard input into zeroizing memory.
pub fn read_stdin_line() -> Result<Zeroizing<Vec<u8>>, Error> {
    shipyard::passphrase::read_stdin_line().map_err(from_shipyard)
}

/// The passphrase to unlock an existing key: standard input with `--passphrase-stdin`, else a
/// prompt without echo on the terminal, else a usage error.
pub fn for_unlock(stdin: bool) -> Result<Zeroizing<Vec<u8>>, Error> {
    shipyard::passphrase::for_unlock(stdin).map_err(from_shipyard)
}

/// A fresh derivation record at `level`, or at the smallest costs when [`TEST_KDF_ENV`] is
/// `cheap` (with a warning).
pub fn new_derivation(level: Level) -> Derivation {
    shipyard::passphrase::new_derivation(&TOOL, level)
}

/// Parses a salt given in hex.
pub fn parse_salt(text: &str) -> Result<[u8; SALT_LEN], Error> {
    shipyard::passphrase::parse_salt(text).map_err(from_shipyard)
}
