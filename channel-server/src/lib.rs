//! The channel server: appends verified key and release events to an append-only BLAKE2b Merkle
//! log in SQLite and answers sites with signed, nonce-bound responses.
//!
//! Every decision about what may enter the log is made by [`keyggdrasil::state::KeyState`], the
//! same code every site runs; this crate does the I/O around it: HTTP (axum), storage (SQLite in
//! WAL mode), the separate signer process that holds the channel key, rate limits.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod explorer;
pub mod fresh;
pub mod patches;
pub mod publish;
pub mod server;
pub mod signer;
pub mod store;
pub mod witnessing;
pub mod writer;

/// Whether log lines on stderr may carry ANSI colour codes: only on a terminal, and never when
/// `NO_COLOR` is set to anything non-empty (<https://no-color.org>). journald, log files and
/// pipes get plain text.
pub fn colour_on_stderr() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
