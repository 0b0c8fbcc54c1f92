//! The signer process, its wire protocol, its client and its supervisor.
//!
//! Protocol tests run the signer in-process ([`Signer::load`] + [`Signer::bind`] +
//! [`BoundSigner::run`]) against a temporary `local/` folder. The supervisor tests start a real
//! child process: this test binary re-executed with only [`signer_child_process`] selected,
//! which then calls [`run_signer`] (the same function `channel-server signer` calls).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use channel_server::signer::frame::{self, Refusal, Response};
use channel_server::signer::{
    BoundSigner, ClientOptions, Signer, SignerArgs, SignerClient, SignerCommand, SignerError,
    SignerMisbehaved, SignerPaths, SignerState, SignerSupervisor, SignerUnavailable,
    SupervisorOptions, run_signer,
};
use keyggdrasil::kdf::{Derivation, Purpose, SiteSecret};
use keyggdrasil::keyfile::{KeyFile, KeyRole};
use keyggdrasil::keys::{KeyPair, PublicKey};
use keyggdrasil::os::lockmem::LockedBox;
use keyggdrasil::os::secretfile::{self, SecretFileError};
use keyggdrasil::protocol::{self, Context};
use keyggdrasil::wire::Signed;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A channel data folder with `local/channel-key.json`, `local/channel-secret`, and the socket
/// path `local/signer.sock`.
struct Fixture {
    _dir: tempfile::TempDir,
    local: PathBuf,
    paths: SignerPaths,
    public: PublicKey,
    seed_hex: String,
    mac_key: [u8; 32],
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    secretfile::ensure_private_dir(&local).unwrap();
    let kp = KeyPair::generate();
    let key_file = local.join("channel-key.json");
    secretfile::write_secret_file(
        &key_file,
        &KeyFile::plain(KeyRole::Channel, None, &kp).to_bytes(),
        false,
    )
    .unwrap();
    let secret = SiteSecret::generate();
    let secret_file = local.join("channel-secret");
    secretfile::write_secret_file(&secret_file, secret.expose(), false).unwrap();
    Fixture {
        paths: SignerPaths {
            key_file,
            secret_file,
            socket: local.join("signer.sock"),
        },
        local,
        public: kp.public(),
        seed_hex: hex::encode(*kp.seed()),
        mac_key: *secret.derive(Purpose::InternalMac),
        _dir: dir,
    }
}

impl Fixture {
    fn client(&self) -> SignerClient {
        self.client_with(ClientOptions::default())
    }
    fn client_with(&self, options: ClientOptions) -> SignerClient {
        SignerClient::new(
            &self.paths.socket,
            LockedBox::new(self.mac_key),
            self.public,
            options,
        )
    }
}

/// A signer running in-process on a tokio task.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), SignerError>>,
}

async fn start(paths: &SignerPaths) -> Running {
    let signer = Signer::load(paths).unwrap();
    let bound: BoundSigner = signer.bind().await.unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(bound.run(async {
        let _ = rx.await;
    }));
    Running { stop, task }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn raw(socket: &Path) -> UnixStream {
    UnixStream::connect(socket).await.unwrap()
}

/// Reads one response frame; `None` if the signer closed the connection.
async fn read_response(s: &mut UnixStream) -> Option<Response> {
    let body = tokio::time::timeout(
        Duration::from_secs(10),
        frame::read_frame(s, frame::MAX_RESPONSE_BODY),
    )
    .await
    .expect("the signer neither answered nor closed the connection")
    .ok()??;
    Some(frame::parse_response(&body).unwrap())
}

/// Asserts that the signer closes the connection without answering.
async fn assert_closed(s: &mut UnixStream, what: &str) {
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("{what}: connection still open"));
    match r {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("{what}: unexpected answer of {n} bytes"),
    }
}

fn payload(i: usize) -> Vec<u8> {
    format!(r#"{{"v":1,"origin":"plugins.example.org","size":{i},"root":"{i:064x}"}}"#).into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Happy path
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signs_updates_and_checkpoints_verifiable_with_keyggdrasil() {
    let f = fixture();
    let signer = start(&f.paths).await;
    let client = f.client();
    client.check().await.unwrap();

    for ctx in [Context::Checkpoint, Context::ChannelUpdate] {
        let p = payload(7);
        let sig = client.sign(ctx, p.clone()).await.unwrap();
        protocol::verify(&f.public, ctx, &p, &sig).unwrap();
        // As a wire `Signed` value, exactly as a site opens it.
        let signed = Signed::from_parts(String::from_utf8(p).unwrap(), sig);
        let v: serde_json::Value = signed.open(&f.public, ctx, 1 << 20).unwrap();
        assert_eq!(v["size"], 7);
        // Bound to its context.
        let other = if ctx == Context::Checkpoint {
            Context::ChannelUpdate
        } else {
            Context::Checkpoint
        };
        assert!(
            signed
                .open::<serde_json::Value>(&f.public, other, 1 << 20)
                .is_err()
        );
    }
    // Empty, large (signed off the async workers) and maximum-size payloads.
    for len in [0, 100 * 1024, frame::MAX_PAYLOAD] {
        let p = vec![0x5a; len];
        let sig = client.sign(Context::Checkpoint, p.clone()).await.unwrap();
        protocol::verify(&f.public, Context::Checkpoint, &p, &sig).unwrap();
    }
    signer.stop().await;
    assert!(
        !f.paths.socket.exists(),
        "the socket is removed on shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_is_private_and_replaced_only_when_stale() {
    let f = fixture();
    let signer = start(&f.paths).await;
    let mode = std::fs::metadata(&f.paths.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // A second signer on a live socket refuses instead of stealing it.
    let second = Signer::load(&f.paths).unwrap();
    assert!(matches!(
        second.bind().await,
        Err(SignerError::SocketInUse(_))
    ));
    signer.stop().await;

    // A stale socket (its signer is gone) is replaced.
    let stale = std::os::unix::net::UnixListener::bind(&f.paths.socket).unwrap();
    drop(stale);
    assert!(f.paths.socket.exists());
    let signer = start(&f.paths).await;
    f.client().check().await.unwrap();
    signer.stop().await;

    // Anything that is not a socket is left alone.
    std::fs::write(&f.paths.socket, b"not a socket").unwrap();
    let s = Signer::load(&f.paths).unwrap();
    assert!(matches!(s.bind().await, Err(SignerError::NotASocket(_))));
    assert_eq!(std::fs::read(&f.paths.socket).unwrap(), b"not a socket");
}

// ---------------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_every_other_context_and_keeps_the_connection() {
    let f = fixture();
    let signer = start(&f.paths).await;
    let mut s = raw(&f.paths.socket).await;
    let refused_contexts = [
        Context::KeyEvent.as_str(),
        Context::Release.as_str(),
        Context::ReleaseRevocation.as_str(),
        Context::Attestation.as_str(),
        Context::NotaryAnswer.as_str(),
        Context::Bundle.as_str(),
        Context::SignerRequest.as_str(),
        "keyggdrasil/v1/checkpoint\0",
        "keyggdrasil/v1/checkpoin",
        "KEYGGDRASIL/V1/CHECKPOINT",
        "nonsense",
    ];
    for (i, ctx) in refused_contexts.iter().enumerate() {
        let id = 100 + i as u64;
        let req = frame::encode_sign_request(&f.mac_key, id, ctx, b"m").unwrap();
        s.write_all(&req).await.unwrap();
        assert_eq!(
            read_response(&mut s).await,
            Some(Response::Refused {
                id,
                reason: Refusal::ContextNotAllowed
            }),
            "{ctx:?}"
        );
    }
    // Same connection, allowed context: signed.
    let req =
        frame::encode_sign_request(&f.mac_key, 1, Context::Checkpoint.as_str(), b"m").unwrap();
    s.write_all(&req).await.unwrap();
    let Some(Response::Signature { id: 1, signature }) = read_response(&mut s).await else {
        panic!("no signature");
    };
    protocol::verify(&f.public, Context::Checkpoint, b"m", &signature).unwrap();
    let req =
        frame::encode_sign_request(&f.mac_key, 2, Context::ChannelBatch.as_str(), b"b").unwrap();
    s.write_all(&req).await.unwrap();
    let Some(Response::Signature { id: 2, signature }) = read_response(&mut s).await else {
        panic!("no batch signature");
    };
    protocol::verify(&f.public, Context::ChannelBatch, b"b", &signature).unwrap();

    // The client refuses such contexts before sending anything.
    for ctx in Context::ALL {
        if !matches!(
            ctx,
            Context::Checkpoint | Context::ChannelUpdate | Context::ChannelBatch
        ) {
            assert!(matches!(
                f.client().sign(ctx, b"m".to_vec()).await,
                Err(SignerUnavailable::ContextNotAllowed(c)) if c == ctx
            ));
        }
    }
    signer.stop().await;
}

/// The note mode signs a checkpoint text and nothing else: the signature is Ed25519 over the
/// text itself and, assembled into a note, opens with the channel's verifier key; a text that
/// is not a checkpoint (a protocol message with its NUL, an extension line, a bare string) is
/// refused on the wire and by the client before sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signs_checkpoint_notes_and_refuses_other_texts() {
    let f = fixture();
    let signer = start(&f.paths).await;
    let origin = keyggdrasil::names::ChannelName::parse("plugins.example.org").unwrap();
    let text = keyggdrasil::tlog_checkpoint::text(&origin, 5, &[3; 32]);
    let signature = f.client().sign_note(text.clone()).await.unwrap();
    let note =
        keyggdrasil::tlog_checkpoint::assemble(&origin, &f.public, &text, signature.as_bytes())
            .unwrap();
    let cp = keyggdrasil::tlog_checkpoint::open(note.as_bytes(), &f.public, &origin).unwrap();
    assert_eq!(cp.size(), 5);

    let mut s = raw(&f.paths.socket).await;
    let protocol_message = protocol::signed_bytes(Context::Checkpoint, text.as_bytes());
    let not_checkpoints: [&[u8]; 4] = [
        &protocol_message,
        b"hello\n",
        b"plugins.example.org\n5\nAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\nextra\n",
        b"",
    ];
    for (id, payload) in not_checkpoints.iter().enumerate() {
        let req =
            frame::encode_sign_request(&f.mac_key, id as u64, frame::NOTE_CHECKPOINT, payload)
                .unwrap();
        s.write_all(&req).await.unwrap();
        assert_eq!(
            read_response(&mut s).await,
            Some(Response::Refused {
                id: id as u64,
                reason: Refusal::ContextNotAllowed
            }),
            "{:?}",
            String::from_utf8_lossy(payload)
        );
        let as_text = String::from_utf8_lossy(payload).into_owned();
        assert!(matches!(
            f.client().sign_note(as_text).await,
            Err(SignerUnavailable::Refused(Refusal::ContextNotAllowed))
        ));
    }
    // The same connection still signs a checkpoint text.
    let req =
        frame::encode_sign_request(&f.mac_key, 9, frame::NOTE_CHECKPOINT, text.as_bytes()).unwrap();
    s.write_all(&req).await.unwrap();
    let Some(Response::Signature { id: 9, signature }) = read_response(&mut s).await else {
        panic!("no note signature");
    };
    f.public.verify_strict(text.as_bytes(), &signature).unwrap();
    signer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_bad_mac_and_closes_the_connection() {
    let f = fixture();
    let signer = start(&f.paths).await;
    let ctx = Context::Checkpoint.as_str();

    // Wrong key.
    let mut s = raw(&f.paths.socket).await;
    let req = frame::encode_sign_request(&[0u8; 32], 5, ctx, b"m").unwrap();
    s.write_all(&req).await.unwrap();
    assert_eq!(
        read_response(&mut s).await,
        Some(Response::Refused {
            id: 5,
            reason: Refusal::BadMac
        })
    );
    assert_closed(&mut s, "after a bad MAC").await;

    // Right key, payload changed after the MAC was computed.
    let mut s = raw(&f.paths.socket).await;
    let mut req = frame::encode_sign_request(&f.mac_key, 6, ctx, b"size 3").unwrap();
    let at = req.len() - 33;
    req[at] ^= 0x01;
    s.write_all(&req).await.unwrap();
    assert_eq!(
        read_response(&mut s).await,
        Some(Response::Refused {
            id: 6,
            reason: Refusal::BadMac
        })
    );
    assert_closed(&mut s, "after a tampered payload").await;

    // A client holding another channel secret gets a refusal, not a signature.
    let wrong = SignerClient::new(
        &f.paths.socket,
        LockedBox::new([1u8; 32]),
        f.public,
        ClientOptions::default(),
    );
    assert!(matches!(
        wrong.sign(Context::Checkpoint, b"m".to_vec()).await,
        Err(SignerUnavailable::Refused(Refusal::BadMac))
    ));
    assert!(matches!(
        wrong.check().await,
        Err(SignerUnavailable::Refused(Refusal::BadMac))
    ));
    // The signer still serves the right client.
    f.client()
        .sign(Context::Checkpoint, b"m".to_vec())
        .await
        .unwrap();
    signer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_only_their_connection() {
    let f = fixture();
    let signer = start(&f.paths).await;
    // A healthy connection that stays open throughout.
    let client = f.client_with(ClientOptions {
        connections: 1,
        ..ClientOptions::default()
    });
    client.sign(Context::Checkpoint, payload(1)).await.unwrap();

    let valid =
        frame::encode_sign_request(&f.mac_key, 9, Context::Checkpoint.as_str(), b"abc").unwrap();
    let mut unknown_kind = valid.clone();
    unknown_kind[4] = 0x7f;
    let mut bad_ctx_len = valid.clone();
    bad_ctx_len[4 + 9] = 0;
    let mut ctx_too_long = valid.clone();
    ctx_too_long[4 + 9] = 200;
    let over = (frame::MAX_REQUEST_BODY as u32 + 1).to_be_bytes().to_vec();
    let mut pk_trailing = frame::encode_public_key_request(&f.mac_key, 1);
    pk_trailing.insert(4 + 9, 0);
    let l = (pk_trailing.len() - 4) as u32;
    pk_trailing[..4].copy_from_slice(&l.to_be_bytes());

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("length u32::MAX", u32::MAX.to_be_bytes().to_vec()),
        ("length above the limit", over),
        ("zero length", vec![0, 0, 0, 0]),
        (
            "garbage body",
            [&5u32.to_be_bytes()[..], b"\xff\x00junk"].concat(),
        ),
        (
            "shorter than a MAC",
            [&20u32.to_be_bytes()[..], &[1u8; 20]].concat(),
        ),
        ("unknown kind", unknown_kind),
        ("context length 0", bad_ctx_len),
        ("context length beyond the frame", ctx_too_long),
        ("public key request with trailing bytes", pk_trailing),
        (
            "random bytes",
            (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
    ];
    for (what, bytes) in &cases {
        let mut s = raw(&f.paths.socket).await;
        // The signer may close while we are still writing; that is fine.
        let _ = s.write_all(bytes).await;
        assert_closed(&mut s, what).await;
    }

    // Truncated: the connection ends inside a frame.
    let mut s = raw(&f.paths.socket).await;
    s.write_all(&valid[..valid.len() - 5]).await.unwrap();
    s.shutdown().await.unwrap();
    assert_closed(&mut s, "truncated frame").await;
    // Truncated inside the length prefix.
    let mut s = raw(&f.paths.socket).await;
    s.write_all(&valid[..2]).await.unwrap();
    s.shutdown().await.unwrap();
    assert_closed(&mut s, "truncated length").await;

    // A valid frame followed by garbage: the first is answered, then the connection closes.
    let mut s = raw(&f.paths.socket).await;
    s.write_all(&[&valid[..], &[0, 0, 0, 3, 1, 2, 3]].concat())
        .await
        .unwrap();
    assert!(matches!(
        read_response(&mut s).await,
        Some(Response::Signature { id: 9, .. })
    ));
    assert_closed(&mut s, "garbage after a valid frame").await;

    // The signer still serves: the old connection and new clients alike.
    client.sign(Context::Checkpoint, payload(2)).await.unwrap();
    f.client()
        .sign(Context::ChannelUpdate, payload(3))
        .await
        .unwrap();
    signer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_partial_frame_is_dropped_but_an_idle_connection_is_not() {
    let f = fixture();
    let signer = start(&f.paths).await;
    let valid =
        frame::encode_sign_request(&f.mac_key, 9, Context::Checkpoint.as_str(), b"abc").unwrap();
    // An idle connection: one answered request, then silence for longer than the timeout.
    let mut idle = raw(&f.paths.socket).await;
    idle.write_all(&valid).await.unwrap();
    assert!(matches!(
        read_response(&mut idle).await,
        Some(Response::Signature { id: 9, .. })
    ));

    let mut stalled = raw(&f.paths.socket).await;
    stalled.write_all(&valid[..10]).await.unwrap();
    let t = Instant::now();
    assert_closed(&mut stalled, "stalled frame").await;
    let waited = t.elapsed();
    assert!(
        waited >= channel_server::signer::FRAME_READ_TIMEOUT - Duration::from_millis(100),
        "{waited:?}"
    );

    idle.write_all(&valid).await.unwrap();
    assert!(matches!(
        read_response(&mut idle).await,
        Some(Response::Signature { id: 9, .. })
    ));
    signer.stop().await;
}

#[tokio::test]
async fn refuses_unsafe_or_wrong_key_material() {
    let f = fixture();
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));

    // Key file readable by others.
    mode(&f.paths.key_file, 0o644).unwrap();
    let e = Signer::load(&f.paths).err().unwrap();
    assert!(
        matches!(
            e,
            SignerError::SecretFile(SecretFileError::FilePermissions { mode: 0o644, .. })
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("chmod 600"));
    assert_eq!(e.exit_code(), 78);
    mode(&f.paths.key_file, 0o640).unwrap();
    assert!(Signer::load(&f.paths).is_err());
    mode(&f.paths.key_file, 0o600).unwrap();

    // Secret file readable by the group.
    mode(&f.paths.secret_file, 0o640).unwrap();
    assert!(matches!(
        Signer::load(&f.paths).err().unwrap(),
        SignerError::SecretFile(SecretFileError::FilePermissions { .. })
    ));
    mode(&f.paths.secret_file, 0o600).unwrap();

    // Folder open to others.
    mode(&f.local, 0o755).unwrap();
    assert!(matches!(
        Signer::load(&f.paths).err().unwrap(),
        SignerError::SecretFile(SecretFileError::FolderPermissions { .. })
    ));
    mode(&f.local, 0o700).unwrap();
    let signer = Signer::load(&f.paths).unwrap();
    assert_eq!(signer.public_key(), f.public);
    drop(signer);

    // A notary key is not a channel key.
    let other = KeyPair::generate();
    let notary = f.local.join("notary.json");
    secretfile::write_secret_file(
        &notary,
        &KeyFile::plain(KeyRole::Notary, None, &other).to_bytes(),
        false,
    )
    .unwrap();
    let paths = SignerPaths {
        key_file: notary,
        ..f.paths.clone()
    };
    assert!(matches!(
        Signer::load(&paths).err().unwrap(),
        SignerError::WrongRole {
            role: KeyRole::Notary,
            ..
        }
    ));

    // A passphrase-protected channel key cannot be used unattended.
    let enc = f.local.join("encrypted.json");
    let file = KeyFile::encrypted(
        KeyRole::Channel,
        None,
        &other,
        b"pass phrase",
        Derivation::with_salt([3; 16], 3, 8192),
    )
    .unwrap();
    secretfile::write_secret_file(&enc, &file.to_bytes(), false).unwrap();
    let paths = SignerPaths {
        key_file: enc,
        ..f.paths.clone()
    };
    assert!(matches!(
        Signer::load(&paths).err().unwrap(),
        SignerError::NotPlain(_)
    ));

    // A corrupted key file: the seed does not match the recorded public key.
    let text = std::fs::read_to_string(&f.paths.key_file).unwrap();
    let flipped_first = if f.seed_hex.starts_with('0') {
        "1"
    } else {
        "0"
    };
    let corrupt = f.local.join("corrupt.json");
    secretfile::write_secret_file(
        &corrupt,
        text.replacen(
            &f.seed_hex,
            &format!("{flipped_first}{}", &f.seed_hex[1..]),
            1,
        )
        .as_bytes(),
        false,
    )
    .unwrap();
    let paths = SignerPaths {
        key_file: corrupt,
        ..f.paths.clone()
    };
    let e = Signer::load(&paths).err().unwrap();
    assert!(matches!(e, SignerError::KeyFile { .. }), "{e:?}");
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(&f.seed_hex[1..]), "an error shows the seed");

    // A channel secret of the wrong length.
    for len in [0usize, 31, 33] {
        let short = f.local.join(format!("secret-{len}"));
        secretfile::write_secret_file(&short, &vec![7u8; len], false).unwrap();
        let paths = SignerPaths {
            secret_file: short,
            ..f.paths.clone()
        };
        let e = Signer::load(&paths).err().unwrap();
        assert!(
            matches!(
                e,
                SignerError::SecretLength { .. } | SignerError::SecretFile(_)
            ),
            "{e:?}"
        );
    }

    // Missing files.
    let paths = SignerPaths {
        key_file: f.local.join("missing.json"),
        ..f.paths.clone()
    };
    assert!(Signer::load(&paths).is_err());
}

const FOREIGN_ENV: &str = "CHANNEL_SERVER_TEST_FOREIGN_CLIENT";

/// Not a test on its own: re-executed as another user by
/// [`connections_from_another_user_are_closed`], it sends a valid request and exits with 0 if
/// the signer closed the connection without answering, 3 if it answered, 4 if it could not
/// connect.
#[test]
fn foreign_client_process() {
    use std::io::{Read, Write};
    let Ok(spec) = std::env::var(FOREIGN_ENV) else {
        return;
    };
    let (socket, key) = spec.split_once('\n').unwrap();
    let key: [u8; 32] = hex::decode(key).unwrap().try_into().unwrap();
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        std::process::exit(4);
    };
    let _ = s.write_all(&frame::encode_public_key_request(&key, 1));
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) | Err(_) => std::process::exit(0),
        Ok(_) => std::process::exit(3),
    }
}

/// Runs [`foreign_client_process`] as `uid` (or as ourselves); its exit code.
fn run_client(spec: String, uid: Option<u32>) -> Option<i32> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["foreign_client_process", "--exact", "--test-threads=1"])
        .env(FOREIGN_ENV, spec)
        .stdout(std::process::Stdio::null());
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    cmd.status().unwrap().code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_from_another_user_are_closed() {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        eprintln!("skipped: running a client as another user needs root");
        return;
    }
    let f = fixture();
    let signer = start(&f.paths).await;
    // Open the way for user 65534 (the signer checks its folder only at startup).
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    mode(f.local.parent().unwrap(), 0o711).unwrap();
    mode(&f.local, 0o711).unwrap();
    mode(&f.paths.socket, 0o666).unwrap();
    let spec = format!("{}\n{}", f.paths.socket.display(), hex::encode(f.mac_key));
    let s1 = spec.clone();
    let foreign = tokio::task::spawn_blocking(move || run_client(s1, Some(65534)))
        .await
        .unwrap();
    if foreign == Some(126) || foreign == Some(4) {
        eprintln!("skipped: user 65534 cannot run this test binary or reach the socket");
    } else {
        assert_eq!(foreign, Some(0), "a foreign user got an answer");
    }
    // The same client as our own user is answered.
    let own = tokio::task::spawn_blocking(move || run_client(spec, None))
        .await
        .unwrap();
    assert_eq!(own, Some(3));
    signer.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The client: pipelining, timeouts, reconnection, and a signer that lies
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_pipelined_requests_from_eight_tasks() {
    let f = fixture();
    let signer = start(&f.paths).await;
    let client = f.client();
    let mut tasks = Vec::new();
    for t in 0..8usize {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..125usize {
                let n = t * 1000 + i;
                let ctx = if n % 2 == 0 {
                    Context::Checkpoint
                } else {
                    Context::ChannelUpdate
                };
                let sig = client.sign(ctx, payload(n)).await.unwrap();
                out.push((n, ctx, sig));
            }
            out
        }));
    }
    // And the same again as truly concurrent requests (all in flight at once).
    let burst: Vec<_> = (0..200usize)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let n = 100_000 + i;
                (
                    n,
                    Context::Checkpoint,
                    client.sign(Context::Checkpoint, payload(n)).await.unwrap(),
                )
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    for b in burst {
        all.push(b.await.unwrap());
    }
    assert_eq!(all.len(), 1200);
    let mut seen = std::collections::HashSet::new();
    for (n, ctx, sig) in &all {
        // Checked again here, independently of the client's own check.
        protocol::verify(&f.public, *ctx, &payload(*n), sig).unwrap();
        assert!(seen.insert(*sig.as_bytes()), "duplicate signature");
    }
    signer.stop().await;
}

/// A fake signer that answers every request with `answer(request body)`, or never answers.
async fn fake_signer(
    socket: &Path,
    answer: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync + 'static,
) -> JoinHandle<()> {
    let listener = UnixListener::bind(socket).unwrap();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                while let Ok(Some(body)) = frame::read_frame(&mut s, frame::MAX_REQUEST_BODY).await
                {
                    if let Some(out) = answer(&body)
                        && s.write_all(&out).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_times_out_on_a_stalled_signer() {
    let f = fixture();
    let fake = fake_signer(&f.paths.socket, |_| None).await;
    let client = f.client_with(ClientOptions {
        timeout: Duration::from_millis(300),
        ..ClientOptions::default()
    });
    for _ in 0..3 {
        let t = Instant::now();
        let r = client.sign(Context::Checkpoint, payload(1)).await;
        assert!(
            matches!(r, Err(SignerUnavailable::Timeout(d)) if d == Duration::from_millis(300)),
            "{r:?}"
        );
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
    assert!(matches!(
        client.check().await,
        Err(SignerUnavailable::Timeout(_))
    ));
    fake.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_never_hands_out_a_bad_signature() {
    let f = fixture();
    let imposter = Arc::new(KeyPair::generate());
    let imp = imposter.clone();
    let real_public = f.public;
    // Answers with the impostor's key: the wrong key, and the right request id.
    let fake = fake_signer(&f.paths.socket, move |body| {
        let p = frame::parse_request(body).ok()?;
        Some(
            match p.request {
                frame::Request::Sign {
                    id,
                    context,
                    payload,
                } => Response::Signature {
                    id,
                    signature: protocol::sign(
                        &imp,
                        Context::from_str_exact(std::str::from_utf8(context).ok()?)?,
                        payload,
                    ),
                },
                frame::Request::PublicKey { id } => Response::PublicKey {
                    id,
                    key: *imp.public().as_bytes(),
                },
            }
            .encode(),
        )
    })
    .await;
    let client = f.client();
    assert_eq!(
        client
            .sign(Context::Checkpoint, payload(1))
            .await
            .err()
            .map(|e| e.to_string()),
        Some(SignerMisbehaved::BadSignature.to_string())
    );
    match client.check().await {
        Err(SignerUnavailable::Misbehaved(SignerMisbehaved::WrongPublicKey {
            expected,
            found,
        })) => {
            assert_eq!(expected, real_public);
            assert_eq!(found, imposter.public().to_hex());
        }
        other => panic!("{other:?}"),
    }
    fake.abort();
    let _ = std::fs::remove_file(&f.paths.socket);

    // The right key, but signing something else than asked (another context, other bytes).
    let kp = Arc::new(
        KeyFile::parse(&std::fs::read(&f.paths.key_file).unwrap())
            .unwrap()
            .unlock(None)
            .unwrap(),
    );
    let k = kp.clone();
    let fake = fake_signer(&f.paths.socket, move |body| {
        let p = frame::parse_request(body).ok()?;
        let id = p.request.id();
        let signature = if id % 2 == 0 {
            protocol::sign(&k, Context::ChannelUpdate, b"checkpoint bytes")
        } else {
            protocol::sign(&k, Context::Checkpoint, b"other bytes")
        };
        Some(Response::Signature { id, signature }.encode())
    })
    .await;
    let client = f.client();
    for _ in 0..4 {
        assert!(matches!(
            client
                .sign(Context::Checkpoint, b"checkpoint bytes".to_vec())
                .await,
            Err(SignerUnavailable::Misbehaved(
                SignerMisbehaved::BadSignature
            ))
        ));
    }
    // An answer of the wrong kind.
    assert!(matches!(
        client.check().await,
        Err(SignerUnavailable::Misbehaved(
            SignerMisbehaved::UnexpectedResponse
        ))
    ));
    fake.abort();
    let _ = std::fs::remove_file(&f.paths.socket);

    // Garbage answers break the connection, and nothing else.
    let fake = fake_signer(&f.paths.socket, |_| Some(vec![0, 0, 0, 2, 0x99, 0x99])).await;
    let client = f.client();
    assert!(matches!(
        client.sign(Context::Checkpoint, payload(1)).await,
        Err(SignerUnavailable::ConnectionLost)
    ));
    fake.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reconnects_after_the_signer_restarts() {
    let f = fixture();
    let client = f.client();
    // Not started yet: a fast, clear error.
    let t = Instant::now();
    assert!(matches!(
        client.sign(Context::Checkpoint, payload(0)).await,
        Err(SignerUnavailable::Connect { .. })
    ));
    assert!(t.elapsed() < Duration::from_secs(1));

    let signer = start(&f.paths).await;
    for i in 0..10 {
        client.sign(Context::Checkpoint, payload(i)).await.unwrap();
    }
    signer.stop().await;
    // Down: an error, not a hang.
    let r = client.sign(Context::Checkpoint, payload(1)).await;
    assert!(
        matches!(
            r,
            Err(SignerUnavailable::Connect { .. } | SignerUnavailable::ConnectionLost)
        ),
        "{r:?}"
    );
    // Back: the same client reconnects by itself.
    let signer = start(&f.paths).await;
    for i in 0..10 {
        let sig = client
            .sign(Context::ChannelUpdate, payload(i))
            .await
            .unwrap();
        protocol::verify(&f.public, Context::ChannelUpdate, &payload(i), &sig).unwrap();
    }
    client.check().await.unwrap();
    signer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_payloads_are_refused_before_sending() {
    let f = fixture();
    let signer = start(&f.paths).await;
    let r = f
        .client()
        .sign(Context::Checkpoint, vec![0; frame::MAX_PAYLOAD + 1])
        .await;
    assert!(matches!(r, Err(SignerUnavailable::Request(_))), "{r:?}");
    signer.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The supervisor, with a real child process
// ---------------------------------------------------------------------------------------------

const CHILD_ENV: &str = "CHANNEL_SERVER_TEST_SIGNER_CHILD";

/// Not a test on its own: when the supervisor tests re-execute this binary with `CHILD_ENV`
/// set, this runs the signer exactly as `channel-server signer --exit-with-parent` would.
#[test]
fn signer_child_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('\n').collect();
    let args = SignerArgs {
        paths: SignerPaths {
            key_file: parts[0].into(),
            secret_file: parts[1].into(),
            socket: parts[2].into(),
        },
        exit_with_parent: true,
    };
    if let Err(e) = run_signer(args) {
        eprintln!("signer child: {e}");
        std::process::exit(e.exit_code().into());
    }
}

fn child_command(paths: &SignerPaths) -> SignerCommand {
    let spec = format!(
        "{}\n{}\n{}",
        paths.key_file.display(),
        paths.secret_file.display(),
        paths.socket.display()
    );
    SignerCommand {
        program: std::env::current_exe().unwrap(),
        args: vec![
            "signer_child_process".into(),
            "--exact".into(),
            "--nocapture".into(),
            "--test-threads=1".into(),
        ],
        env: vec![(CHILD_ENV.into(), spec.into())],
    }
}

fn process_exists(pid: u32) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("kill -0 {pid} 2>/dev/null")])
        .status()
        .unwrap()
        .success()
}

/// The real signer process has core files disabled and, where the memory-lock limit allows
/// it, its two key pages locked (Linux `/proc`).
fn assert_hardened(pid: u32) {
    let Ok(limits) = std::fs::read_to_string(format!("/proc/{pid}/limits")) else {
        return;
    };
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");
    assert_eq!(core.split_whitespace().nth(5), Some("0"), "{core}");
    let memlock = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))
        .unwrap();
    let soft = memlock.split_whitespace().nth(3).unwrap();
    if soft == "unlimited" || soft.parse::<u64>().unwrap() >= 64 * 1024 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let locked_kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmLck:"))
            .unwrap()
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap();
        assert!(locked_kb >= 8, "VmLck {locked_kb} kB");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_restarts_a_killed_signer_and_reports_503_meanwhile() {
    let f = fixture();
    let options = SupervisorOptions {
        min_backoff: Duration::from_secs(1),
        ..SupervisorOptions::default()
    };
    let sup = SignerSupervisor::start_with(child_command(&f.paths), f.client(), options);
    assert!(
        sup.wait_ready(Duration::from_secs(20)).await,
        "{:?}",
        sup.state()
    );
    let SignerState::Ready { pid, restarts: 0 } = sup.state() else {
        panic!("{:?}", sup.state());
    };
    let p = payload(1);
    let sig = sup.sign(Context::Checkpoint, p.clone()).await.unwrap();
    protocol::verify(&f.public, Context::Checkpoint, &p, &sig).unwrap();
    assert_hardened(pid);

    // kill -9 the signer.
    let mut states = sup.subscribe();
    assert!(
        std::process::Command::new("sh")
            .args(["-c", &format!("kill -9 {pid}")])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::timeout(Duration::from_secs(5), states.wait_for(|s| !s.is_ready()))
        .await
        .unwrap()
        .unwrap();
    // Down, and within the 1 s backoff: serve would answer 503 now, and never sign itself.
    assert!(matches!(
        sup.sign(Context::Checkpoint, p.clone()).await,
        Err(SignerUnavailable::NotRunning)
    ));
    match sup.state() {
        SignerState::Down { reason, .. } => assert!(reason.contains("signal 9"), "{reason}"),
        other => panic!("{other:?}"),
    }

    // Back by itself, as a new process.
    assert!(
        sup.wait_ready(Duration::from_secs(20)).await,
        "{:?}",
        sup.state()
    );
    let SignerState::Ready {
        pid: pid2,
        restarts: 1,
    } = sup.state()
    else {
        panic!("{:?}", sup.state());
    };
    assert_ne!(pid, pid2);
    let sig = sup.sign(Context::ChannelUpdate, p.clone()).await.unwrap();
    protocol::verify(&f.public, Context::ChannelUpdate, &p, &sig).unwrap();

    // Graceful shutdown: the child exits and removes its socket.
    sup.shutdown().await;
    assert!(!process_exists(pid2));
    assert!(!f.paths.socket.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_never_reports_ready_for_a_signer_with_another_key() {
    let f = fixture();
    let pinned = KeyPair::generate().public();
    let client = SignerClient::new(
        &f.paths.socket,
        LockedBox::new(f.mac_key),
        pinned,
        ClientOptions::default(),
    );
    let options = SupervisorOptions {
        min_backoff: Duration::from_secs(5),
        ..SupervisorOptions::default()
    };
    let sup = SignerSupervisor::start_with(child_command(&f.paths), client, options);
    let mut states = sup.subscribe();
    let down = tokio::time::timeout(
        Duration::from_secs(20),
        states.wait_for(|s| matches!(s, SignerState::Down { .. })),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    let SignerState::Down { reason, .. } = down else {
        unreachable!()
    };
    assert!(reason.contains(&f.public.to_hex()), "{reason}");
    assert!(reason.contains(&pinned.to_hex()), "{reason}");
    assert!(!sup.is_ready());
    assert!(matches!(
        sup.sign(Context::Checkpoint, payload(1)).await,
        Err(SignerUnavailable::NotRunning)
    ));
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_keeps_retrying_a_signer_that_cannot_start() {
    let f = fixture();
    std::fs::set_permissions(&f.paths.key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let options = SupervisorOptions {
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        ..SupervisorOptions::default()
    };
    let sup = SignerSupervisor::start_with(child_command(&f.paths), f.client(), options);
    let mut states = sup.subscribe();
    let s = tokio::time::timeout(
        Duration::from_secs(30),
        states.wait_for(|s| matches!(s, SignerState::Down { restarts, .. } if *restarts >= 1)),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    let SignerState::Down { reason, .. } = s else {
        unreachable!()
    };
    assert!(reason.contains("exit code 78"), "{reason}");
    // Fixing the file lets the next attempt succeed.
    std::fs::set_permissions(&f.paths.key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(
        sup.wait_ready(Duration::from_secs(20)).await,
        "{:?}",
        sup.state()
    );
    sup.sign(Context::Checkpoint, payload(1)).await.unwrap();
    sup.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

#[derive(clap::Parser, Debug)]
#[command(name = "channel-server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    Signer(SignerArgs),
}

#[test]
fn signer_command_line() {
    use clap::{CommandFactory, Parser};
    Cli::command().debug_assert();
    let Command::Signer(a) = Cli::try_parse_from([
        "channel-server",
        "signer",
        "--key-file",
        "k.json",
        "--secret-file",
        "s",
        "--socket",
        "x.sock",
    ])
    .unwrap()
    .command;
    assert_eq!(a.paths.key_file, PathBuf::from("k.json"));
    assert_eq!(a.paths.socket, PathBuf::from("x.sock"));
    assert!(!a.exit_with_parent);
    let Command::Signer(d) = Cli::try_parse_from(["channel-server", "signer"])
        .unwrap()
        .command;
    assert_eq!(d.paths.key_file, PathBuf::from("local/channel-key.json"));
    assert_eq!(d.paths.secret_file, PathBuf::from("local/channel-secret"));
    assert_eq!(d.paths.socket, PathBuf::from("local/signer.sock"));
    let mut cmd = Cli::command();
    let help = cmd
        .find_subcommand_mut("signer")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(help.contains("Example:"), "{help}");
    assert!(!help.contains("exit-with-parent"), "{help}");
}
