//! The signer process and its client (being built).
