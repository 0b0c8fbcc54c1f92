//! Starting, stopping and talking to a real channel server.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keyggdrasil::entry::{Digest512, Entry, EntryBody, Event, GitCommit, Reason};
use keyggdrasil::keys::{KeyPair, PublicKey};
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::wire::{ChannelName, Envelope, Signed, SubmitRequest, SubmitResponse};
use serde::de::DeserializeOwned;

pub const BIN: &str = env!("CARGO_BIN_EXE_channel-server");
pub const ORIGIN: &str = "test.channel";

/// A running channel server in a temporary folder.
pub struct Channel {
    pub _dir: tempfile::TempDir,
    pub config: PathBuf,
    pub key: PublicKey,
    pub base: String,
    child: Option<Child>,
}

impl Channel {
    pub fn start(policy: &str) -> Self {
        Self::start_with(policy, "")
    }

    /// Starts a channel whose `[limits]` section gets `extra_limits` appended.
    pub fn start_with(policy: &str, extra_limits: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("channel");
        let out = Command::new(BIN)
            .args(["init", "--dir"])
            .arg(&data)
            .args([
                "--name",
                ORIGIN,
                "--policy",
                policy,
                "--listen",
                "127.0.0.1:0",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let key_line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("Channel public key (sites pin this): "))
            .expect("init prints the channel key");
        let key = PublicKey::from_hex(key_line.trim()).unwrap();
        let config = data.join("channel.toml");
        if !extra_limits.is_empty() {
            let mut text = std::fs::read_to_string(&config).unwrap();
            for line in extra_limits.lines() {
                let key = line.split('=').next().unwrap().trim();
                let old = text
                    .lines()
                    .find(|l| l.split('=').next().unwrap().trim() == key)
                    .unwrap_or_else(|| panic!("no limit {key} in the config"))
                    .to_owned();
                text = text.replace(&old, line);
            }
            std::fs::write(&config, text).unwrap();
        }
        let mut c = Channel {
            _dir: dir,
            config,
            key,
            base: String::new(),
            child: None,
        };
        c.spawn();
        c
    }

    pub fn spawn(&mut self) {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from serve: {line:?}"));
        self.base = addr.to_owned();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        self.child = Some(child);
        self.wait_healthy();
    }

    pub fn wait_healthy(&self) {
        for _ in 0..200 {
            if let Ok(r) = agent().get(&format!("{}/healthz", self.base)).call()
                && r.status() == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("channel did not become healthy");
    }

    /// The serve process's PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn origin(&self) -> ChannelName {
        ChannelName::parse(ORIGIN).unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a submission; returns (status, body).
    pub fn submit_raw(&self, body: &str, content_type: &str) -> (u16, Vec<u8>) {
        let r = agent()
            .post(&self.url("/v1/submit"))
            .header("Content-Type", content_type)
            .send(body)
            .unwrap();
        let status = r.status().as_u16();
        let mut buf = Vec::new();
        r.into_body().into_reader().read_to_end(&mut buf).unwrap();
        (status, buf)
    }

    pub fn submit(&self, entry: &Entry) -> Result<SubmitResponse, (u16, String)> {
        self.submit_invite(entry, None)
    }

    pub fn submit_invite(
        &self,
        entry: &Entry,
        invite: Option<&str>,
    ) -> Result<SubmitResponse, (u16, String)> {
        let req = SubmitRequest {
            entry: String::from_utf8(entry.as_bytes().to_vec()).unwrap(),
            invite: invite.map(str::to_owned),
        };
        let (status, body) =
            self.submit_raw(&serde_json::to_string(&req).unwrap(), "application/json");
        match Envelope::<SubmitResponse>::open(&body, 1 << 20) {
            Ok(r) if status == 200 => Ok(r),
            Ok(_) => panic!("ok envelope with status {status}"),
            Err(keyggdrasil::wire::WireError::Remote { code, .. }) => Err((status, code)),
            Err(e) => panic!(
                "bad answer {status}: {e}: {}",
                String::from_utf8_lossy(&body)
            ),
        }
    }

    /// GETs a JSON envelope and returns its data, or (status, code).
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, (u16, String)> {
        let r = agent().get(&self.url(path)).call().unwrap();
        let status = r.status().as_u16();
        let mut buf = Vec::new();
        r.into_body().into_reader().read_to_end(&mut buf).unwrap();
        match Envelope::<T>::open(&buf, 16 << 20) {
            Ok(d) => Ok(d),
            Err(keyggdrasil::wire::WireError::Remote { code, .. }) => Err((status, code)),
            Err(e) => panic!(
                "bad answer {status}: {e}: {}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }

    pub fn get_signed(&self, path: &str) -> Signed {
        self.get::<Signed>(path).unwrap()
    }

    /// The database file, for direct checks.
    pub fn db(&self) -> PathBuf {
        self.config.parent().unwrap().join("channel.db")
    }

    pub fn check(&self) -> String {
        let out = Command::new(BIN)
            .args(["check", "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "check failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An HTTP agent that does not turn 4xx/5xx into errors.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// A supplier with a master key and a signing key.
pub struct Supplier {
    pub name: SupplierName,
    pub master: KeyPair,
    pub signing: KeyPair,
}

impl Supplier {
    pub fn new(name: &str) -> Self {
        Self {
            name: SupplierName::parse(name).unwrap(),
            master: KeyPair::generate(),
            signing: KeyPair::generate(),
        }
    }

    pub fn sign(&self, by: &KeyPair, event: Event) -> Entry {
        Entry::sign(EntryBody::new(self.name.clone(), by.public(), event), by).unwrap()
    }

    pub fn master_entry(&self) -> Entry {
        self.sign(
            &self.master,
            Event::MasterKey {
                public_key: self.master.public(),
                derivation: None,
            },
        )
    }

    pub fn signing_entry(&self) -> Entry {
        self.sign(
            &self.master,
            Event::SigningKey {
                public_key: self.signing.public(),
                derivation: None,
            },
        )
    }

    /// Registers master and signing key.
    pub fn register(&self, ch: &Channel) {
        ch.submit(&self.master_entry()).unwrap();
        ch.submit(&self.signing_entry()).unwrap();
    }

    /// A release entry for `archive`, signed by `key`.
    pub fn release(&self, key: &KeyPair, package: &str, version: &str, archive: &[u8]) -> Entry {
        let (size, digest) = keyggdrasil::filesig::archive_digest(archive).unwrap();
        self.sign(
            key,
            Event::Release {
                package: PackageName::parse(package).unwrap(),
                version: Version::parse(version).unwrap(),
                size,
                digest: Digest512(digest),
                commit: GitCommit::parse(&"c".repeat(40)).unwrap(),
                signature: keyggdrasil::filesig::sign(key, archive).unwrap(),
            },
        )
    }

    pub fn revoke(&self, by: &KeyPair, key: &PublicKey) -> Entry {
        self.sign(
            by,
            Event::KeyRevocation {
                public_key: *key,
                reason: Reason::parse("test").unwrap(),
            },
        )
    }
}
