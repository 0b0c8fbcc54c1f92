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
//!
//! # Example: a supplier registers keys and publishes a release; a site checks it
//!
//! ```
//! use keyggdrasil::entry::{Digest512, Entry, EntryBody, Event, GitCommit};
//! use keyggdrasil::kdf::Derivation;
//! use keyggdrasil::keys::KeyPair;
//! use keyggdrasil::names::{PackageName, SupplierName, Version};
//! use keyggdrasil::state::KeyState;
//! use keyggdrasil::filesig;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let acme = SupplierName::parse("acme")?;
//! // Real keys use Level::Sensitive / Level::Moderate; tiny costs keep the example fast.
//! let master = Derivation::with_salt([1; 16], 3, 8192).derive_keypair(b"master passphrase")?;
//! let signing = KeyPair::generate();
//!
//! let archive = b"...zip bytes...";
//! let (size, digest) = filesig::archive_digest(&archive[..])?;
//! let entries = [
//!     // The first master key signs itself (proof of possession).
//!     Entry::sign(EntryBody::new(acme.clone(), master.public(),
//!         Event::MasterKey { public_key: master.public(), derivation: None }), &master)?,
//!     Entry::sign(EntryBody::new(acme.clone(), master.public(),
//!         Event::SigningKey { public_key: signing.public(), derivation: None }), &master)?,
//!     Entry::sign(EntryBody::new(acme.clone(), signing.public(), Event::Release {
//!         package: PackageName::parse("hello")?,
//!         version: Version::parse("1.0.0")?,
//!         size,
//!         digest: Digest512(digest),
//!         commit: GitCommit::parse(&"0".repeat(40))?,
//!         signature: filesig::sign(&signing, &archive[..])?,
//!         rollout: None,
//!     }), &signing)?,
//! ];
//!
//! // A site replays the log (the channel runs the very same checks before appending).
//! let mut state = KeyState::new();
//! for e in &entries {
//!     let bytes = e.as_bytes();             // what travels and what the Merkle log hashes
//!     state.apply(&Entry::parse(bytes)?)?;  // parse strictly, then verify every rule
//! }
//! let release = state
//!     .installable(&acme, &PackageName::parse("hello")?, &Version::parse("1.0.0")?)
//!     .expect("installable");
//! filesig::verify(release.signer(), release.archive_signature(), &archive[..])?;
//! # Ok(())
//! # }
//! ```
// `unsafe` is denied everywhere except in `os::lockmem`, which needs libc calls to lock key memory.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod archive;
pub mod archive_check;
pub mod batch;
pub mod bundle;
pub mod delta;
pub mod encoding;
pub mod entry;
pub mod evidence;
pub mod filesig;
pub mod history;
pub mod kdf;
pub mod keyfile;
pub mod keys;
pub mod limits;
pub mod log;
pub mod lookup;
pub mod merkle;
pub mod monitor;
pub mod names;
pub mod note;
pub mod os;
pub mod peers;
pub mod policy;
pub mod protocol;
pub mod rollout;
pub mod snapshot;
pub mod state;
pub mod tiles;
pub mod tlog_checkpoint;
pub mod tlog_proof;
pub mod wire;
pub mod witness;
