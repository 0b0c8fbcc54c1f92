//! `serve`'s supervisor of the signer child process: starts it, waits until it answers with the
//! pinned key, restarts it with backoff when it exits, and says whether it is ready so `serve`
//! can answer 503 meanwhile. It never signs in-process.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use keyggdrasil::keys::{PublicKey, Signature};
use keyggdrasil::protocol::Context;
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::client::{ClientOptions, SignerClient, SignerMisbehaved, SignerUnavailable};
use super::server::{SignerError, SignerPaths, load_mac_key};

/// The command that starts a signer child. Normally [`SignerCommand::current_exe`]; tests use
/// another program.
#[derive(Debug, Clone)]
pub struct SignerCommand {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment variables (the child inherits the rest).
    pub env: Vec<(OsString, OsString)>,
}

impl SignerCommand {
    /// `<this executable> signer --key-file … --secret-file … --socket … --exit-with-parent`.
    pub fn current_exe(paths: &SignerPaths) -> io::Result<Self> {
        Ok(Self {
            program: std::env::current_exe()?,
            args: vec![
                "signer".into(),
                "--key-file".into(),
                paths.key_file.clone().into(),
                "--secret-file".into(),
                paths.secret_file.clone().into(),
                "--socket".into(),
                paths.socket.clone().into(),
                "--exit-with-parent".into(),
            ],
            env: Vec::new(),
        })
    }
}

/// Tunables of [`SignerSupervisor`].
#[derive(Debug, Clone)]
pub struct SupervisorOptions {
    /// How long a new child may take to answer the readiness probe. Default 10 s.
    pub startup_timeout: Duration,
    /// First delay before a restart. Default 100 ms.
    pub min_backoff: Duration,
    /// Longest delay between restarts (the delay doubles per failure). Default 10 s.
    pub max_backoff: Duration,
    /// A child that stayed up this long resets the delay to `min_backoff`. Default 60 s.
    pub stable_after: Duration,
    /// Options of the client used to talk to the child.
    pub client: ClientOptions,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        Self {
            startup_timeout: Duration::from_secs(10),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            stable_after: Duration::from_secs(60),
            client: ClientOptions::default(),
        }
    }
}

/// What the supervised signer is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerState {
    /// A child was started and has not answered the readiness probe yet.
    Starting {
        /// How many times the child has been restarted.
        restarts: u32,
    },
    /// The child answers with the pinned key.
    Ready {
        /// Its process id.
        pid: u32,
        /// How many times the child has been restarted.
        restarts: u32,
    },
    /// No usable child; the next start comes after a backoff delay.
    Down {
        /// How many times the child has been restarted.
        restarts: u32,
        /// What happened (for `/healthz` and logs; contains no secrets).
        reason: String,
    },
    /// [`SignerSupervisor::shutdown`] was called.
    Stopped,
}

impl SignerState {
    /// True if signing requests can be sent.
    pub fn is_ready(&self) -> bool {
        matches!(self, SignerState::Ready { .. })
    }
}

/// Runs the signer as a child process and hands out signatures through it.
///
/// Dropping the supervisor kills the child; [`shutdown`](Self::shutdown) stops it gracefully.
pub struct SignerSupervisor {
    client: SignerClient,
    state: watch::Receiver<SignerState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SignerSupervisor {
    /// Starts `<this executable> signer` on `paths`, pinning `public_key` (the channel key from
    /// `serve`'s configuration). Reads the channel secret here to derive the request MAC key;
    /// never reads the channel key file. Must be called inside a tokio runtime.
    pub fn start(
        paths: &SignerPaths,
        public_key: PublicKey,
        options: SupervisorOptions,
    ) -> Result<Self, SignerError> {
        let command = SignerCommand::current_exe(paths).map_err(|source| SignerError::Io {
            action: "find the path of",
            path: PathBuf::from("the running executable"),
            source,
        })?;
        let mac_key = load_mac_key(&paths.secret_file)?;
        let client = SignerClient::new(&paths.socket, mac_key, public_key, options.client.clone());
        Ok(Self::start_with(command, client, options))
    }

    /// Starts the supervisor with an explicit command and client (tests, or a signer binary
    /// installed elsewhere). Must be called inside a tokio runtime.
    pub fn start_with(
        command: SignerCommand,
        client: SignerClient,
        options: SupervisorOptions,
    ) -> Self {
        let (state_tx, state) = watch::channel(SignerState::Starting { restarts: 0 });
        let (stop, stop_rx) = oneshot::channel();
        let task = tokio::spawn(supervise(
            command,
            client.clone(),
            options,
            state_tx,
            stop_rx,
        ));
        Self {
            client,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The current state.
    pub fn state(&self) -> SignerState {
        self.state.borrow().clone()
    }

    /// True if the signer is ready; `serve` answers 503 on signed endpoints otherwise.
    pub fn is_ready(&self) -> bool {
        self.state.borrow().is_ready()
    }

    /// A receiver that sees every state change.
    pub fn subscribe(&self) -> watch::Receiver<SignerState> {
        self.state.clone()
    }

    /// Waits until the signer is ready, at most `timeout`; true if it is.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut rx = self.state.clone();
        tokio::time::timeout(timeout, rx.wait_for(SignerState::is_ready))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Signs through the child; [`SignerUnavailable::NotRunning`] at once while it is not ready.
    pub async fn sign(
        &self,
        context: Context,
        payload: Vec<u8>,
    ) -> Result<Signature, SignerUnavailable> {
        if !self.is_ready() {
            return Err(SignerUnavailable::NotRunning);
        }
        self.client.sign(context, payload).await
    }

    /// Signs a checkpoint text as a C2SP note through the child ([`SignerClient::sign_note`]);
    /// [`SignerUnavailable::NotRunning`] at once while it is not ready.
    pub async fn sign_note(&self, text: String) -> Result<Signature, SignerUnavailable> {
        if !self.is_ready() {
            return Err(SignerUnavailable::NotRunning);
        }
        self.client.sign_note(text).await
    }

    /// The client (for callers that want to skip the readiness check).
    pub fn client(&self) -> &SignerClient {
        &self.client
    }

    /// Stops the child gracefully (closes its standard input, then kills it after 2 s) and
    /// waits for it.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SignerSupervisor {
    fn drop(&mut self) {
        // Aborting the task drops the Child, whose kill_on_drop kills the process.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn spawn_child(command: &SignerCommand) -> io::Result<Child> {
    Command::new(&command.program)
        .args(&command.args)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
}

/// Probes until the child answers with the pinned key. A wrong key is final for this child.
async fn probe_ready(client: &SignerClient, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        match client.check().await {
            Ok(()) => return Ok(()),
            Err(SignerUnavailable::Misbehaved(e @ SignerMisbehaved::WrongPublicKey { .. })) => {
                return Err(e.to_string());
            }
            Err(SignerUnavailable::Refused(r)) => {
                return Err(format!(
                    "the signer refused the readiness probe ({r:?}): serve and the signer use different channel secrets"
                ));
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(format!("not ready within {timeout:?} ({last})"))
}

async fn stop_child(child: &mut Child, stdin: Option<tokio::process::ChildStdin>) {
    // Closing standard input asks a signer started with --exit-with-parent to stop cleanly
    // (it removes its socket); kill it if it does not.
    drop(stdin);
    if tokio::time::timeout(Duration::from_secs(2), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

async fn supervise(
    command: SignerCommand,
    client: SignerClient,
    options: SupervisorOptions,
    state: watch::Sender<SignerState>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut backoff = options.min_backoff;
    let mut restarts: u32 = 0;
    loop {
        state.send_replace(SignerState::Starting { restarts });
        let reason = match spawn_child(&command) {
            Err(e) => format!("could not start {}: {e}", command.program.display()),
            Ok(mut child) => {
                let pid = child.id().unwrap_or(0);
                let stdin = child.stdin.take();
                let started = Instant::now();
                let ready = tokio::select! {
                    r = probe_ready(&client, options.startup_timeout) => r,
                    status = child.wait() => Err(format!("exited during startup: {}", describe(status))),
                    _ = &mut stop => {
                        stop_child(&mut child, stdin).await;
                        break;
                    }
                };
                match ready {
                    Err(reason) => {
                        stop_child(&mut child, stdin).await;
                        reason
                    }
                    Ok(()) => {
                        info!(pid, restarts, "signer ready");
                        state.send_replace(SignerState::Ready { pid, restarts });
                        let status = tokio::select! {
                            status = child.wait() => status,
                            _ = &mut stop => {
                                state.send_replace(SignerState::Stopped);
                                client.disconnect().await;
                                stop_child(&mut child, stdin).await;
                                break;
                            }
                        };
                        if started.elapsed() >= options.stable_after {
                            backoff = options.min_backoff;
                        }
                        format!("exited: {}", describe(status))
                    }
                }
            }
        };
        client.disconnect().await;
        error!(
            restarts,
            reason,
            "THE SIGNER IS DOWN; signed answers fail with 503 until it is back; restarting in {backoff:?}"
        );
        state.send_replace(SignerState::Down { restarts, reason });
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = &mut stop => break,
        }
        backoff = (backoff * 2).min(options.max_backoff);
        restarts = restarts.saturating_add(1);
    }
    state.send_replace(SignerState::Stopped);
    warn!("signer supervisor stopped");
}

fn describe(status: io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => s.to_string(),
        },
        Err(e) => format!("could not wait for it: {e}"),
    }
}
