//! The I/O fence: the only part of keyggdrasil that touches the operating system.
//!
//! The rule: code outside `os` takes bytes, readers, writers and the time as arguments, and
//! never opens a file or folder, reads the clock, asks the OS for randomness, or calls libc.
//! Everything that must (secret files with their permission checks, locked key memory, the
//! CSPRNG, building an archive from a folder and extracting one into a staging folder) lives
//! here, small and named, so a review of "what does the core do to the machine?" starts and
//! ends in this folder. `tests/purity.rs` enforces the rule by reading the sources.
//!
//! Nothing here opens sockets or databases: those stay in the binaries.

pub mod archive;
// `unsafe` is denied everywhere except in `lockmem`, which needs libc calls to lock key memory.
#[allow(unsafe_code)]
pub mod lockmem;
pub mod ownership;
pub mod random;
pub mod secretfile;
