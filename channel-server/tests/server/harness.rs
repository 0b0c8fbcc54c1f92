//! Starting, stopping and talking to a real channel server: the whole-system tests' harness
//! (`system-tests`), shared with the other crates' tests.

pub use system_tests::{Channel, Supplier, agent};

/// The `channel-server` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_channel-server");
