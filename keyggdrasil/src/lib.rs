//! # keyggdrasil
//!
//! The pure core that every part of the secure auto-update toolchain shares: the channel server,
//! every site running `continuum`, and the authors' tools `barge` and `hangar` must agree byte for
//! byte on what is signed, hashed and accepted, so all of that lives here and nowhere else.
//!
//! What it does: keys and passphrase key derivation, archive (file) signatures compatible with
//! libsodium/Halite, domain-separated protocol signatures, log entries and their strict parser,
//! the RFC 6962-shaped BLAKE2b Merkle log with inclusion and consistency proofs, the supplier key
//! state machine, the peer decision rule, the reproducible archive format with a safe extractor,
//! and the wire types of the channel and notary APIs.
//!
//! What it does not do: open sockets, open databases or read the clock. Time is an argument,
//! stored tree hashes come through a reader trait, and the binaries do all I/O around it. The only
//! files it touches are ones handed to it by path or reader (key files, archives, staging folders).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod merkle;
