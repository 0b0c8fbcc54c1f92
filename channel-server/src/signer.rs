//! The channel key lives in a separate signer process; `serve` asks it for signatures over a
//! Unix socket and never signs in-process.
//!
//! # Parts
//! - [`run_signer`] (`channel-server signer`, [`SignerArgs`]): makes the process non-dumpable
//!   with core files disabled, loads the channel key file (plain secret, role "channel", mode
//!   0600 in a 0700 folder) into `mlock`ed memory ([`keyggdrasil::os::lockmem`]), derives the request
//!   MAC key from the 32-byte channel secret with HKDF ([`load_mac_key`]), and serves the socket
//!   (mode 0600 in a 0700 folder; a stale socket is replaced, a live one is not). It signs only
//!   [`Context::ChannelUpdate`](keyggdrasil::protocol::Context::ChannelUpdate),
//!   [`Context::ChannelBatch`](keyggdrasil::protocol::Context::ChannelBatch) and
//!   [`Context::Checkpoint`](keyggdrasil::protocol::Context::Checkpoint), only for requests with
//!   a valid MAC, and only for connections from its own user. Malformed input closes that
//!   connection; nothing a client sends can make it panic or stop serving others.
//! - [`SignerClient`]: `serve`'s async client. Pipelines requests (with ids) over a few
//!   connections, times out (2 s by default), reconnects after a broken connection, and checks
//!   every signature against the pinned channel public key before returning it.
//! - [`SignerSupervisor`]: starts `<this executable> signer` as a child, waits until it answers
//!   with the pinned key, restarts it with exponential backoff when it exits, and reports a
//!   [`SignerState`] so `serve` answers 503 while the signer is down.
//!
//! # Wire protocol
//! Length-prefixed binary frames, specified byte for byte in `docs/signer-protocol.md` and in
//! [`frame`]:
//!
//! ```text
//! frame    = length:u32be body
//! request  = 0x01 id:u64be ctx_len:u8 ctx payload mac:32   ; sign
//!          | 0x02 id:u64be mac:32                          ; public key
//! mac      = protocol::mac(K, Context::SignerRequest, body without the mac)
//! response = 0x81 id sig:64 | 0x82 id key:32 | 0x83 id reason:u8
//! ```
//!
//! # Why a MAC on a private socket
//! The socket is already reachable only by the channel's own user. The MAC (keyed BLAKE2b
//! under a key derived from a separate secret) keeps the signer from signing for a process that
//! can reach the socket but was not given the channel secret, for example a helper running
//! under the same account with a narrower file view, or a socket passed on by mistake. Replays
//! gain nothing: Ed25519 signatures are deterministic, so replaying a request returns the
//! signature its sender already received.
//!
//! # Example
//! ```no_run
//! # async fn demo(public_key: keyggdrasil::keys::PublicKey) -> Result<(), Box<dyn std::error::Error>> {
//! use channel_server::signer::{SignerPaths, SignerSupervisor, SupervisorOptions};
//! use keyggdrasil::protocol::Context;
//!
//! let paths = SignerPaths {
//!     key_file: "local/channel-key.json".into(),
//!     secret_file: "local/channel-secret".into(),
//!     socket: "local/signer.sock".into(),
//! };
//! let signer = SignerSupervisor::start(&paths, public_key, SupervisorOptions::default())?;
//! signer.wait_ready(std::time::Duration::from_secs(10)).await;
//! let signature = signer.sign(Context::Checkpoint, b"payload".to_vec()).await?; // or 503
//! # let _ = signature; Ok(()) }
//! ```

mod client;
pub mod frame;
mod server;
mod supervisor;

pub use client::{ClientOptions, SignerClient, SignerMisbehaved, SignerUnavailable};
pub use frame::Refusal;
pub use server::{
    BoundSigner, FRAME_READ_TIMEOUT, MAX_CONNECTIONS, Signer, SignerArgs, SignerError, SignerPaths,
    load_channel_key, load_mac_key, run_signer,
};
pub use supervisor::{SignerCommand, SignerState, SignerSupervisor, SupervisorOptions};
