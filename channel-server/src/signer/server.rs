//! The signer process: loads the channel key into locked memory and answers signing requests on
//! a Unix socket.

use std::fs;
use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keyggdrasil::kdf::{Purpose, SiteSecret};
use keyggdrasil::keyfile::{KeyFile, KeyFileError, KeyRole, MAX_KEY_FILE_BYTES};
use keyggdrasil::keys::{KeyPair, PublicKey};
use keyggdrasil::os::lockmem::{self, LockedBox};
use keyggdrasil::os::secretfile::{self, SecretFileError};
use keyggdrasil::protocol::{self, Context};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};
use zeroize::Zeroizing;

use super::frame::{self, Refusal, Request, Response};

/// How long the rest of a frame may take to arrive once its first byte has (a connection may
/// sit idle between frames for as long as it likes).
pub const FRAME_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections served at once; further connections are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Payloads above this size are MAC-checked and signed on a blocking thread, so one 8 MiB
/// request does not hold up the async workers.
const INLINE_SIGN_LIMIT: usize = 64 * 1024;

/// Paths the signer works with. All three default to the `local/` folder of the channel's data
/// folder, relative to the working directory.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct SignerPaths {
    /// The channel key file: a keyggdrasil key file with role "channel" and a plain secret,
    /// mode 0600 inside a 0700 folder.
    #[arg(long, value_name = "FILE", default_value = "local/channel-key.json")]
    pub key_file: PathBuf,
    /// The channel secret: exactly 32 random bytes, mode 0600 inside a 0700 folder. The MAC key
    /// for requests is derived from it with HKDF (purpose "internal-mac").
    #[arg(long, value_name = "FILE", default_value = "local/channel-secret")]
    pub secret_file: PathBuf,
    /// The Unix socket to listen on; created with mode 0600, its folder must be private (0700).
    #[arg(long, value_name = "PATH", default_value = "local/signer.sock")]
    pub socket: PathBuf,
}

/// `channel-server signer`: hold the channel key in a separate, hardened process and sign
/// channel answers and checkpoints for `serve` over a Unix socket.
///
/// `serve` starts this itself; run it by hand only to debug. It refuses key files that group or
/// others can read, locks the key in memory, makes itself non-dumpable, and signs only the
/// channel-update and checkpoint contexts, for requests carrying a valid MAC.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(
    after_help = "Example:\n  channel-server signer --key-file local/channel-key.json \
                        --secret-file local/channel-secret --socket local/signer.sock"
)]
pub struct SignerArgs {
    /// Where the key, the secret and the socket are.
    #[command(flatten)]
    pub paths: SignerPaths,
    /// Exit when standard input reaches end of file. `serve` passes this and holds the other
    /// end of the pipe, so the signer never outlives it.
    #[arg(long, hide = true)]
    pub exit_with_parent: bool,
}

/// Why the signer could not start or stopped.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SignerError {
    /// Making the process non-dumpable or disabling core files failed.
    #[error("could not harden the signer process (prctl/setrlimit)")]
    Harden(#[source] io::Error),
    /// A secret file is missing, unreadable, or others can read it.
    #[error(transparent)]
    SecretFile(#[from] SecretFileError),
    /// The key file is malformed or its secret does not match its public key.
    #[error("could not load the channel key from {path}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: KeyFileError,
    },
    /// The key file holds a key for another role.
    #[error("{path} holds a {role:?} key, not a channel key; refusing to sign with it")]
    WrongRole {
        /// The key file.
        path: PathBuf,
        /// The role it records.
        role: KeyRole,
    },
    /// The key is protected by a passphrase, which an unattended signer cannot ask for.
    #[error(
        "{0}: the channel key must be stored as a plain secret in a private folder (the signer runs unattended and cannot ask for a passphrase)"
    )]
    NotPlain(PathBuf),
    /// The channel secret file does not hold exactly 32 bytes.
    #[error("channel secret file {path} must hold exactly 32 bytes, it holds {len}")]
    SecretLength {
        /// The secret file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// The socket path has no parent folder we could make private.
    #[error("the socket path {0} has no parent folder")]
    SocketPath(PathBuf),
    /// Another signer answers on the socket already.
    #[error("another signer is already listening on {0}")]
    SocketInUse(PathBuf),
    /// Something other than a socket is at the socket path.
    #[error("{0} exists and is not a socket; refusing to remove it")]
    NotASocket(PathBuf),
    /// An I/O operation on `path` failed.
    #[error("could not {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The async runtime could not be built.
    #[error("could not start the async runtime")]
    Runtime(#[source] io::Error),
}

impl SignerError {
    /// Exit code for `main`: 78 (`EX_CONFIG`) for errors a restart cannot fix (files,
    /// permissions, wrong key), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            SignerError::SecretFile(_)
            | SignerError::KeyFile { .. }
            | SignerError::WrongRole { .. }
            | SignerError::NotPlain(_)
            | SignerError::SecretLength { .. }
            | SignerError::SocketPath(_)
            | SignerError::NotASocket(_) => 78,
            _ => 1,
        }
    }
}

fn io_err<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> SignerError + 'p {
    move |source| SignerError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Overwrites the stack area that key parsing and derivation used below the caller's frame.
/// Best effort: it cannot reach copies the compiler kept in registers or in frames that are
/// still live, but it removes the common leftovers of `serde_json` and HKDF.
#[inline(never)]
fn scrub_stack() {
    let mut area = [0u8; 32 * 1024];
    std::hint::black_box(&mut area);
}

/// Reads the 32-byte channel secret (refusing files others can read) and derives the request
/// MAC key from it with HKDF-BLAKE2b, purpose [`Purpose::InternalMac`]. `serve` and the signer
/// both call this, so they cannot disagree on the derivation.
pub fn load_mac_key(secret_file: &Path) -> Result<LockedBox<[u8; 32]>, SignerError> {
    let bytes = secretfile::read_secret_file(secret_file, 32)?;
    let secret: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| SignerError::SecretLength {
            path: secret_file.to_path_buf(),
            len: bytes.len(),
        })?;
    let secret = SiteSecret::from_bytes(Zeroizing::new(secret));
    drop(bytes);
    let key = LockedBox::new(*secret.derive(Purpose::InternalMac));
    drop(secret);
    scrub_stack();
    Ok(key)
}

/// Reads the channel key file (plain secret, role "channel", private file) into locked memory.
pub fn load_channel_key(key_file: &Path) -> Result<LockedBox<KeyPair>, SignerError> {
    let bytes = secretfile::read_secret_file(key_file, MAX_KEY_FILE_BYTES)?;
    let file = KeyFile::parse(&bytes).map_err(|source| SignerError::KeyFile {
        path: key_file.to_path_buf(),
        source,
    })?;
    drop(bytes);
    if file.role != KeyRole::Channel {
        return Err(SignerError::WrongRole {
            path: key_file.to_path_buf(),
            role: file.role,
        });
    }
    if file.needs_passphrase() {
        return Err(SignerError::NotPlain(key_file.to_path_buf()));
    }
    let keypair = file.unlock(None).map_err(|source| SignerError::KeyFile {
        path: key_file.to_path_buf(),
        source,
    })?;
    let key = LockedBox::new(keypair);
    drop(file);
    scrub_stack();
    Ok(key)
}

/// A loaded signer: the channel key and the MAC key in locked memory, not yet listening.
pub struct Signer {
    shared: Arc<Shared>,
    socket: PathBuf,
}

struct Shared {
    key: LockedBox<KeyPair>,
    mac_key: LockedBox<[u8; 32]>,
}

impl Signer {
    /// Loads the key and the MAC key. Does not harden the process (see [`run_signer`]).
    pub fn load(paths: &SignerPaths) -> Result<Self, SignerError> {
        let key = load_channel_key(&paths.key_file)?;
        let mac_key = load_mac_key(&paths.secret_file)?;
        Ok(Self {
            shared: Arc::new(Shared { key, mac_key }),
            socket: paths.socket.clone(),
        })
    }

    /// The channel public key this signer signs with.
    pub fn public_key(&self) -> PublicKey {
        self.shared.key.public()
    }

    /// True if both keys are locked in RAM.
    pub fn memory_locked(&self) -> bool {
        self.shared.key.is_locked() && self.shared.mac_key.is_locked()
    }

    /// Creates the socket (mode 0600 in a private folder), replacing a stale socket file left by
    /// a signer that died, but never a live one or anything that is not a socket.
    pub async fn bind(self) -> Result<BoundSigner, SignerError> {
        let socket = self.socket.clone();
        let dir = match socket.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            Some(_) => Path::new("."),
            None => return Err(SignerError::SocketPath(socket.clone())),
        };
        secretfile::ensure_private_dir(dir)?;
        match fs::symlink_metadata(&socket) {
            Ok(meta) if meta.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                    return Err(SignerError::SocketInUse(socket));
                }
                fs::remove_file(&socket).map_err(io_err("remove the stale socket", &socket))?;
                info!(socket = %socket.display(), "removed a stale signer socket");
            }
            Ok(_) => return Err(SignerError::NotASocket(socket)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("inspect", &socket)(e)),
        }
        let listener = UnixListener::bind(&socket).map_err(io_err("listen on", &socket))?;
        // The folder is 0700, so nobody else could reach the socket before this chmod.
        fs::set_permissions(&socket, fs::Permissions::from_mode(0o600))
            .map_err(io_err("set permissions on", &socket))?;
        let meta = fs::symlink_metadata(&socket).map_err(io_err("inspect", &socket))?;
        Ok(BoundSigner {
            shared: self.shared,
            listener,
            socket,
            identity: (meta.dev(), meta.ino()),
            owner: meta.uid(),
        })
    }
}

/// A signer listening on its socket.
pub struct BoundSigner {
    shared: Arc<Shared>,
    listener: UnixListener,
    socket: PathBuf,
    identity: (u64, u64),
    owner: u32,
}

impl BoundSigner {
    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Serves connections until `shutdown` completes, then closes every connection and removes
    /// the socket file (if it is still the one this signer created).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), SignerError> {
        let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut conns = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = self.listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _)) => stream,
                        Err(e) => {
                            // EMFILE and friends: back off briefly instead of spinning.
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    match stream.peer_cred() {
                        Ok(cred) if cred.uid() == self.owner => {}
                        Ok(cred) => {
                            warn!(uid = cred.uid(), "refused a connection from another user");
                            continue;
                        }
                        Err(e) => {
                            warn!(error = %e, "could not read the peer's credentials; connection refused");
                            continue;
                        }
                    }
                    let Ok(permit) = limit.clone().try_acquire_owned() else {
                        warn!("too many signer connections; connection refused");
                        continue;
                    };
                    let shared = self.shared.clone();
                    conns.spawn(async move {
                        serve_connection(stream, shared).await;
                        drop(permit);
                    });
                }
            }
        }
        conns.shutdown().await;
        if let Ok(meta) = fs::symlink_metadata(&self.socket)
            && (meta.dev(), meta.ino()) == self.identity
        {
            let _ = fs::remove_file(&self.socket);
        }
        info!(socket = %self.socket.display(), "signer stopped");
        Ok(())
    }
}

/// What to do after one request.
struct Outcome {
    response: Option<Vec<u8>>,
    close: bool,
}

async fn serve_connection(stream: UnixStream, shared: Arc<Shared>) {
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    loop {
        // Idle between frames for as long as the client likes.
        match rd.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(_) => {}
        }
        let body = match tokio::time::timeout(
            FRAME_READ_TIMEOUT,
            frame::read_frame(&mut rd, frame::MAX_REQUEST_BODY),
        )
        .await
        {
            Ok(Ok(Some(body))) => body,
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                debug!(error = %e, "malformed request frame; closing the connection");
                break;
            }
            Err(_) => {
                debug!(
                    "request frame incomplete after {FRAME_READ_TIMEOUT:?}; closing the connection"
                );
                break;
            }
        };
        let outcome = if body.len() > INLINE_SIGN_LIMIT {
            let shared = shared.clone();
            match tokio::task::spawn_blocking(move || handle_request(&shared, &body)).await {
                Ok(o) => o,
                Err(_) => break,
            }
        } else {
            handle_request(&shared, &body)
        };
        if let Some(resp) = outcome.response
            && wr.write_all(&resp).await.is_err()
        {
            break;
        }
        // Answer in batches: flush once no further request is already buffered.
        if (outcome.close || rd.buffer().is_empty()) && wr.flush().await.is_err() {
            break;
        }
        if outcome.close {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

fn handle_request(shared: &Shared, body: &[u8]) -> Outcome {
    let parsed = match frame::parse_request(body) {
        Ok(p) => p,
        Err(e) => {
            debug!(error = %e, "malformed request; closing the connection");
            return Outcome {
                response: None,
                close: true,
            };
        }
    };
    let id = parsed.request.id();
    if !parsed.mac_valid(&shared.mac_key) {
        warn!(
            id,
            "refused a request with a bad MAC (is serve using a different channel secret?); closing the connection"
        );
        return Outcome {
            response: Some(
                Response::Refused {
                    id,
                    reason: Refusal::BadMac,
                }
                .encode(),
            ),
            close: true,
        };
    }
    let response = match parsed.request {
        Request::PublicKey { id } => Response::PublicKey {
            id,
            key: *shared.key.public().as_bytes(),
        },
        Request::Sign {
            id,
            context,
            payload,
        } if context == frame::NOTE_CHECKPOINT.as_bytes() => {
            if frame::note_checkpoint_allowed(payload) {
                Response::Signature {
                    id,
                    signature: shared.key.sign_raw(payload),
                }
            } else {
                error!(
                    id,
                    "refused to sign a note: the payload is not a checkpoint text (origin, size, root)"
                );
                Response::Refused {
                    id,
                    reason: Refusal::ContextNotAllowed,
                }
            }
        }
        Request::Sign {
            id,
            context,
            payload,
        } => match std::str::from_utf8(context)
            .ok()
            .and_then(Context::from_str_exact)
            .filter(|c| frame::context_allowed(*c))
        {
            Some(ctx) => Response::Signature {
                id,
                signature: protocol::sign(&shared.key, ctx, payload),
            },
            None => {
                error!(
                    id,
                    context = ?String::from_utf8_lossy(context),
                    "refused to sign: the signer signs only channel updates and checkpoints"
                );
                Response::Refused {
                    id,
                    reason: Refusal::ContextNotAllowed,
                }
            }
        },
    };
    Outcome {
        response: Some(response.encode()),
        close: false,
    }
}

async fn shutdown_signal(exit_with_parent: bool) {
    use tokio::signal::unix::{SignalKind, signal};
    let parent_gone = async {
        if !exit_with_parent {
            return std::future::pending::<()>().await;
        }
        // A plain thread: a blocking read of stdin must not hold up the runtime's shutdown.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut sink = [0u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = tx.send(());
        });
        let _ = rx.await;
        info!("standard input closed (serve exited); stopping");
    };
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("could not install signal handlers; stopping only when serve exits");
        return parent_gone.await;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM; stopping"),
        _ = int.recv() => info!("SIGINT; stopping"),
        () = parent_gone => {}
    }
}

/// Runs `channel-server signer`: hardens the process, loads the keys into locked memory, listens
/// on the socket and serves until SIGTERM/SIGINT (or, with `--exit-with-parent`, until standard
/// input closes). Warns loudly, but keeps working, if the keys could not be locked in memory.
pub fn run_signer(args: SignerArgs) -> Result<(), SignerError> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(crate::colour_on_stderr())
        .try_init();
    lockmem::harden_process().map_err(SignerError::Harden)?;
    let signer = Signer::load(&args.paths)?;
    if !signer.memory_locked() {
        let reason = signer
            .shared
            .key
            .lock_error()
            .or(signer.shared.mac_key.lock_error())
            .map(|e| e.to_string())
            .unwrap_or_default();
        warn!(
            reason,
            "WARNING: THE CHANNEL KEY IS NOT LOCKED IN MEMORY and may be written to swap; \
             raise RLIMIT_MEMLOCK (ulimit -l) or grant CAP_IPC_LOCK to the signer"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("signer")
        .enable_all()
        .build()
        .map_err(SignerError::Runtime)?;
    let public = signer.public_key();
    runtime.block_on(async move {
        let bound = signer.bind().await?;
        info!(
            socket = %bound.socket().display(),
            public_key = %public,
            fingerprint = %public.fingerprint(),
            "signer ready"
        );
        bound.run(shutdown_signal(args.exit_with_parent)).await
    })
}
