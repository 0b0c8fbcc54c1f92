//! The error type barge shares with hangar (`shipyard`): three kinds, each with its exit code.

pub use shipyard::error::{Error, failed};
