//! The error type shared by barge and hangar, shaped by the exit code it maps to.

use std::fmt::Display;

/// Why a command failed. Messages are lowercase and never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or input the user must fix (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A check said no: bad signature, wrong passphrase, tampered bundle (exit 1).
    #[error("{0}")]
    Invalid(String),
    /// Anything else: I/O, the channel refused or misbehaved (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Invalid(_) | Error::Failed(_) => 1,
        }
    }
}

/// `Error::Failed` with some context: `failed("could not read x")(e)`.
pub fn failed<E: Display>(context: impl Display) -> impl FnOnce(E) -> Error {
    move |e| Error::Failed(format!("{context}: {e}"))
}
