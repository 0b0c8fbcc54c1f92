//! continuum: the site updater and peer notary.
//!
//! A site runs `continuum update` hourly. It fetches new log entries from its channel with a
//! fresh challenge nonce, checks the channel's signature with the pinned key, recomputes the
//! root over its own log plus the new entries, asks ⌈ln N⌉ randomly chosen peer notaries to
//! confirm that root, applies the entries to the key state (all or nothing), and installs newer
//! allowed releases after verifying their archives, atomically, keeping the previous version.
//! Every decision about what is valid is made by [`keyggdrasil`]; this crate does the I/O.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod channel;
pub mod config;
pub mod db;
pub mod error;
pub mod hooks;
pub mod install;
pub mod lock;
pub mod notary;
pub mod peers;
pub mod revocation;
pub mod site;
pub mod snapshot;
pub mod status_file;
pub mod transport;
pub mod update;
