//! Setting up and running a channel: `init`, `serve`, `invite`, `check`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keyggdrasil::kdf::SiteSecret;
use keyggdrasil::keyfile::{KeyFile, KeyRole};
use keyggdrasil::keys::{KeyPair, PublicKey};
use keyggdrasil::names::ChannelName;
use keyggdrasil::os::secretfile;

use crate::api::{self, AppState, PayloadSigner};
use crate::config::{ChannelSection, Config, Paths, ServerLimits, ServerSection};
use crate::store;
use crate::writer::{self, Policy};

/// A failure of a channel command, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Configuration problem.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Database problem.
    #[error(transparent)]
    Db(#[from] store::DbError),
    /// Secret file problem.
    #[error(transparent)]
    Secret(#[from] secretfile::SecretFileError),
    /// Key file problem.
    #[error(transparent)]
    KeyFile(#[from] keyggdrasil::keyfile::KeyFileError),
    /// I/O with a path.
    #[error("{action} {path}")]
    Io {
        /// What failed.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `init` was pointed at a folder that already holds a channel.
    #[error("{0} already exists; refusing to overwrite a channel")]
    Exists(PathBuf),
    /// Anything else, said plainly.
    #[error("{0}")]
    Other(String),
}

fn io<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> ServerError + 'p {
    move |source| ServerError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What `init` created.
#[derive(Debug)]
pub struct Initialised {
    /// The config file.
    pub config: PathBuf,
    /// The channel's public key (sites pin it).
    pub channel_key: PublicKey,
    /// Its C2SP note verifier key (for `GET /checkpoint` and signed-note tools).
    pub verifier_key: String,
}

/// Creates a channel's data folder: config file, database, archives folder, and under `local/`
/// (0700) the channel key and the channel secret (0600). Refuses an existing config.
pub fn init(
    dir: &Path,
    name: ChannelName,
    policy: Policy,
    listen: SocketAddr,
) -> Result<Initialised, ServerError> {
    let config_path = dir.join("channel.toml");
    if config_path.exists() {
        return Err(ServerError::Exists(config_path));
    }
    // Before anything is created: checkpoints are C2SP notes signed under the channel's name,
    // so it must be a note key name (no '+').
    if !keyggdrasil::note::valid_key_name(name.as_str()) {
        return Err(ServerError::Other(
            keyggdrasil::tlog_checkpoint::CheckpointError::Origin(name.as_str().to_owned())
                .to_string(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(io("could not create", dir))?;
    let paths = Paths::new(dir);
    secretfile::ensure_private_dir(&paths.local)?;
    std::fs::create_dir_all(&paths.archives).map_err(io("could not create", &paths.archives))?;
    let key = KeyPair::generate();
    let verifier = keyggdrasil::tlog_checkpoint::verifier_key(&name, &key.public())
        .map_err(|e| ServerError::Other(e.to_string()))?;
    secretfile::write_secret_file(
        &paths.key_file,
        &KeyFile::plain(KeyRole::Channel, None, &key).to_bytes(),
        false,
    )?;
    // 32 raw random bytes: the signer derives the request MAC key from them (HKDF).
    let secret = SiteSecret::generate();
    secretfile::write_secret_file(&paths.secret_file, secret.expose(), false)?;
    store::open(&paths.db)?;
    let cfg = Config {
        channel: ChannelSection {
            name,
            policy,
            key: key.public(),
            verifier_key: Some(verifier.to_string()),
        },
        server: ServerSection {
            listen,
            data_dir: None,
        },
        limits: ServerLimits::default(),
        witness: Vec::new(),
    };
    let text = toml::to_string_pretty(&cfg).map_err(|e| ServerError::Other(e.to_string()))?;
    std::fs::write(&config_path, text).map_err(io("could not write", &config_path))?;
    Ok(Initialised {
        config: config_path,
        channel_key: key.public(),
        verifier_key: verifier.to_string(),
    })
}

/// Issues a one-time invite token for `supplier` and returns it (only its hash is stored).
pub fn invite(
    config: &Config,
    supplier: &keyggdrasil::names::SupplierName,
    now: u64,
) -> Result<String, ServerError> {
    let paths = Paths::new(&config.data_dir());
    let conn = store::open(&paths.db)?;
    let token = hex::encode(keyggdrasil::os::random::bytes::<24>());
    store::add_invite(
        &conn,
        &writer::invite_token_hash(&token),
        supplier.as_str(),
        now,
    )?;
    Ok(token)
}

/// Recomputes the whole tree from the stored entries, replays the key rules, and compares the
/// key-state snapshot the writer advances with that replay: the check that the database is
/// intact. Returns `(size, root, rebuilt)`.
///
/// With `rebuild_state`, a snapshot that differs from the replay (or is missing) is replaced by
/// the replay's rows, in one write transaction taken before the replay, so a running server
/// cannot append in between; `rebuilt` says whether it was.
pub fn check(config: &Config, rebuild_state: bool) -> Result<(u64, [u8; 32], bool), ServerError> {
    let paths = Paths::new(&config.data_dir());
    let mut conn = store::open(&paths.db)?;
    let behaviour = if rebuild_state {
        rusqlite::TransactionBehavior::Immediate
    } else {
        rusqlite::TransactionBehavior::Deferred
    };
    let tx = conn
        .transaction_with_behavior(behaviour)
        .map_err(store::DbError::from)?;
    // The entries against the stored tree (through the core's LogView), then the key rules.
    let (size, root) = store::verify_stored_tree(&tx)?;
    let (replayed, _) = writer::load_state(&tx)?;
    let matches = match store::state_size(&tx)? {
        // A database from before snapshots: `serve` builds it at its next start.
        None => !rebuild_state,
        Some(_) => store::stored_state(&tx).is_ok_and(|stored| stored == replayed),
    };
    if matches {
        return Ok((size, root, false));
    }
    if rebuild_state {
        store::write_whole_state(&tx, &replayed)?;
        tx.commit().map_err(store::DbError::from)?;
        return Ok((size, root, true));
    }
    let at = store::state_size(&tx)?.unwrap_or(0);
    Err(store::DbError::Inconsistent(format!(
        "the stored key state (at {at} entries) differs from a replay of the log (at {size}); \
         repair it with `channel-server check --rebuild-state`"
    ))
    .into())
}

/// A stored archive that does not match its logged release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadArchive {
    /// `supplier/package version`.
    pub release: String,
    /// The stored file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

/// Hashes every stored archive against the release entry it was uploaded for (size, digest,
/// archive signature: `keyggdrasil::archive_check`, the check sites make) and returns the ones
/// Checks the static copy of the log (`public/`, [`crate::publish`]) against the stored log:
/// the published checkpoint must be signed by the channel key and not beyond the log, and
/// every tile and entry bundle of its size must be byte for byte what the stored log gives.
/// Returns the published size (0 when nothing is published) and the problems found.
pub fn check_published(config: &Config, size: u64) -> Result<(u64, Vec<String>), ServerError> {
    let paths = Paths::new(&config.data_dir());
    if !paths.public.join("checkpoint").exists() {
        return Ok((0, Vec::new()));
    }
    let published =
        crate::publish::published_size(&paths.public, &config.channel.key, &config.channel.name);
    if published == 0 {
        return Ok((
            0,
            vec!["public/checkpoint is not a checkpoint note signed by the channel key".to_owned()],
        ));
    }
    if published > size {
        return Ok((
            published,
            vec![format!(
                "public/checkpoint is for {published} entries, the log has {size}"
            )],
        ));
    }
    let conn = store::open(&paths.db)?;
    let bad = crate::publish::check_published(&conn, &paths.public, published)
        .map_err(|e| ServerError::Other(e.to_string()))?;
    Ok((published, bad))
}

/// that fail. O(total archive bytes); for `channel-server check --archives`. A bad copy is
/// repaired by uploading the right archive again (`barge release` does; the channel replaces a
/// stored copy that does not match).
pub fn check_archives(config: &Config) -> Result<(usize, Vec<BadArchive>), ServerError> {
    let paths = Paths::new(&config.data_dir());
    let conn = store::open(&paths.db)?;
    let releases = store::stored_releases(&conn)?;
    let mut bad = Vec::new();
    for (supplier, package, version, idx) in &releases {
        let release = format!("{supplier}/{package} {version}");
        let entry = store::entries(&conn, *idx, idx + 1)?
            .first()
            .and_then(|b| keyggdrasil::entry::Entry::parse(b).ok());
        let Some(expected) = entry.and_then(|e| e.expected_archive()) else {
            bad.push(BadArchive {
                release,
                path: paths.archives.clone(),
                problem: format!("log entry {idx} is not a readable release entry"),
            });
            continue;
        };
        let path = api::archive_path(&paths, &expected.digest().0);
        let problem = match std::fs::File::open(&path) {
            Err(e) => Some(format!("cannot be opened: {e}")),
            Ok(f) => expected
                .check(std::io::BufReader::new(f))
                .err()
                .map(|e| e.to_string()),
        };
        if let Some(problem) = problem {
            bad.push(BadArchive {
                release,
                path,
                problem,
            });
        }
    }
    Ok((releases.len(), bad))
}

impl PayloadSigner for crate::signer::SignerSupervisor {
    fn sign(
        &self,
        context: keyggdrasil::protocol::Context,
        payload: Vec<u8>,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<keyggdrasil::keys::Signature, api::SignerDown>>
                + Send
                + '_,
        >,
    > {
        Box::pin(async move {
            crate::signer::SignerSupervisor::sign(self, context, payload)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "signer unavailable");
                    api::SignerDown
                })
        })
    }
    fn sign_note(
        &self,
        text: String,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<keyggdrasil::keys::Signature, api::SignerDown>>
                + Send
                + '_,
        >,
    > {
        Box::pin(async move {
            crate::signer::SignerSupervisor::sign_note(self, text)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "signer unavailable for a checkpoint note");
                    api::SignerDown
                })
        })
    }
    fn is_up(&self) -> bool {
        self.is_ready()
    }
}

/// The signer's file layout for a channel's data folder.
pub fn signer_paths(paths: &Paths) -> crate::signer::SignerPaths {
    crate::signer::SignerPaths {
        key_file: paths.key_file.clone(),
        secret_file: paths.secret_file.clone(),
        socket: paths.socket.clone(),
    }
}

/// Runs a channel: starts the signer child, binds, prints `listening on http://ADDR` on standard
/// output, and serves until SIGINT or SIGTERM.
pub async fn run(config: Config, listen: Option<SocketAddr>) -> Result<(), ServerError> {
    let paths = Paths::new(&config.data_dir());
    let channel_key = config.channel.key;
    let supervisor = crate::signer::SignerSupervisor::start(
        &signer_paths(&paths),
        channel_key,
        crate::signer::SupervisorOptions::default(),
    )
    .map_err(|e| ServerError::Other(format!("could not start the signer process: {e}")))?;
    if !supervisor.wait_ready(Duration::from_secs(15)).await {
        tracing::error!("the signer process is not ready after 15 s; answering 503 until it is");
    }
    let addr = listen.unwrap_or(config.server.listen);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Io {
            action: "could not listen on",
            path: PathBuf::from(addr.to_string()),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| ServerError::Other(e.to_string()))?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{local}");
        let _ = out.flush();
    }
    tracing::info!(%local, origin = config.channel.name.as_str(), "channel serving");
    let supervisor = Arc::new(supervisor);
    let result = serve(config, supervisor.clone(), listener, shutdown_signal()).await;
    if let Ok(s) = Arc::try_unwrap(supervisor) {
        s.shutdown().await;
    }
    result
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

/// Runs the HTTP server until `shutdown` resolves. The signer must already be running.
pub async fn serve(
    config: Config,
    signer: Arc<dyn PayloadSigner>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let paths = Paths::new(&config.data_dir());
    std::fs::create_dir_all(&paths.archives).map_err(io("could not create", &paths.archives))?;
    let channel_key = config.channel.key;
    let (writer, _thread) = writer::start(
        paths.db.clone(),
        config.channel.policy,
        config.limits.max_batch,
        config.limits.writer_queue,
    )?;
    let state = Arc::new(
        AppState::new(
            writer,
            signer,
            channel_key,
            config.channel.name.clone(),
            config.limits.clone(),
            paths,
        )
        .with_witnesses(config.witnesses()),
    );
    tokio::spawn(api::publish_loop(state.clone()));
    tokio::spawn(crate::witnessing::witness_loop(state.clone()));
    let pruner = state.clone();
    tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(60));
        loop {
            t.tick().await;
            pruner.prune_rate_limits();
        }
    });
    // Not `axum::serve`: it has no request-head deadline and no connection cap (F2).
    let connections = config.limits.connections();
    http_guard::serve(listener, api::router(state), connections, shutdown)
        .await
        .map_err(|e| ServerError::Other(format!("server failed: {e}")))
}
