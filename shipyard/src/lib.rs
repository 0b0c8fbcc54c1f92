//! # shipyard
//!
//! The author-side code that `barge` (online) and `hangar` (air-gapped) share: the private key
//! folder (`local/`), passphrase input (terminal prompts without echo, `--passphrase-stdin`,
//! generated word lists), key derivation with a progress indicator, the `key new|list|
//! from-passphrase` commands, and reading and writing bundle files.
//!
//! What it does not do: talk to a network. This crate must never depend on an HTTP, TLS, DNS or
//! socket crate, because `hangar` links it and hangar's promise is that no network code is
//! linked in at all (a test in `hangar/tests/` runs `cargo tree -p hangar` to keep it so).
//! Cryptography and formats live in `keyggdrasil`; this crate only does the file and terminal
//! I/O around them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bundlefile;
pub mod error;
pub mod keys;
pub mod output;
pub mod passphrase;

pub use error::{Error, ErrorKind, report};

/// Which program is running: used in messages ("create one with `barge key new`") and to pick
/// the environment variable that enables cheap test derivations.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The program name, e.g. `barge`.
    pub name: &'static str,
    /// Environment variable that, set to `cheap`, makes new keys use the smallest Argon2i
    /// costs. FOR TESTS ONLY.
    pub test_kdf_env: &'static str,
}
