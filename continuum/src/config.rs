//! The site's configuration file (`continuum.toml`).
//!
//! ```toml
//! [site]
//! notary_listen = "127.0.0.1:9000"      # optional: where `continuum notary serve` listens
//!
//! [[channel]]
//! name = "plugins.example.org"          # the log's origin (checked in every signed answer)
//! key = "<64 hex>"                      # the pinned channel key
//! mirrors = ["https://plugins.example.org", "http://example.onion"]   # tried in order
//!
//! [[peer]]
//! url = "http://peer.example.net:9000"
//! key = "<64 hex>"                      # the peer's notary key
//!
//! [[package]]
//! supplier = "acme"
//! name = "hello"
//! channel = "plugins.example.org"
//! policy = "all"                        # "all", "minor", "patch", or "=1.2.3"
//!
//! [transport]
//! proxy = "socks5h://127.0.0.1:9050"    # optional, remote DNS (Tor)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use keyggdrasil::keys::PublicKey;
use keyggdrasil::names::ChannelName;
use keyggdrasil::names::{PackageName, SupplierName, Version};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::error::ErrorKind;

/// Why the configuration could not be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Reading failed.
    #[error("could not read config file {path}{}", crate::error::io_hint(.source))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing failed.
    #[error("could not write config file {path}{}", crate::error::io_hint(.source))]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file, the site folder or a file or folder of the site's state belongs to
    /// another user (not root) or is writable by group or others: whoever can change it can make
    /// continuum run programs (hooks) and install what they choose. Nothing was read or changed.
    #[error(transparent)]
    Untrusted(#[from] keyggdrasil::os::ownership::TrustError),
    /// The file is not a valid configuration.
    #[error("invalid config file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// Always [`ErrorKind::Local`]: the file on this machine is missing, unreadable or wrong.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Local
    }
}

/// Why an edit of the configuration asked for on the command line was refused. Nothing was
/// changed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EditError {
    /// `peers add` with a notary key another peer already has: each peer counts once.
    #[error("that notary key is already configured for peer {url}; each peer counts once")]
    DuplicatePeerKey {
        /// The peer that has the key.
        url: String,
    },
    /// `peers remove` of a URL that is not a peer.
    #[error("no peer {url}")]
    NoSuchPeer {
        /// The URL given.
        url: String,
    },
    /// The channel named is not configured.
    #[error("channel {channel} is not configured")]
    UnknownChannel {
        /// The channel given.
        channel: String,
    },
    /// No channel was named and several are configured.
    #[error("several channels are configured: pass --channel")]
    ChannelNeeded,
    /// No channel is configured at all.
    #[error("no channel is configured")]
    NoChannel,
    /// `remove` of a package that is neither tracked nor installed.
    #[error("{package} is not tracked by this site (`continuum list` shows the tracked packages)")]
    NotTracked {
        /// `supplier/package` as given.
        package: String,
    },
    /// `peers add` of something that is not an `http://` or `https://` URL.
    #[error("{message}: give the peer's notary base URL, such as http://peer.example.net:9000")]
    BadUrl {
        /// What is wrong with it.
        message: String,
    },
}

impl EditError {
    /// Always [`ErrorKind::Usage`]: the command asked for something the config cannot take.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Usage
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Site-wide settings.
    #[serde(default)]
    pub site: SiteSection,
    /// Channels, each with its pinned key and mirrors.
    #[serde(default, rename = "channel")]
    pub channels: Vec<ChannelConfig>,
    /// Trusted peer notaries.
    #[serde(default, rename = "peer")]
    pub peers: Vec<PeerConfig>,
    /// Tracked packages.
    #[serde(default, rename = "package")]
    pub packages: Vec<PackageConfig>,
    /// HTTP transport.
    #[serde(default)]
    pub transport: TransportConfig,
    /// Site-wide hooks (`[hooks]`): programs run after an install, a rollback or a failed run.
    #[serde(default, skip_serializing_if = "HooksConfig::is_empty")]
    pub hooks: HooksConfig,
}

/// `[hooks]`: programs continuum runs after an event, each an argv array (no shell). A
/// package's own hook (in its `[[package]]`) replaces the site-wide one for that package. See
/// [`crate::hooks`] for the environment they get and how a failure is reported.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HooksConfig {
    /// Run after each package an `update` installed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_install: Option<Vec<String>>,
    /// Run after `continuum rollback`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_rollback: Option<Vec<String>>,
    /// Run after an `update` that failed (exit 3, 4 or 5; not 6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Vec<String>>,
    /// Longest a hook may run, in seconds (default 60); then it is killed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_timeout_secs: Option<u64>,
}

impl HooksConfig {
    /// True when nothing is set (the section is then not written).
    pub fn is_empty(&self) -> bool {
        self == &HooksConfig::default()
    }
}

/// Default of `[hooks] hook_timeout_secs`.
pub const DEFAULT_HOOK_TIMEOUT_SECS: u64 = 60;
/// Largest `hook_timeout_secs` accepted: a run is hourly.
pub const MAX_HOOK_TIMEOUT_SECS: u64 = 3600;

/// `[site]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteSection {
    /// Where the notary endpoint listens, if this site runs one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notary_listen: Option<SocketAddr>,
    /// Oldest channel answer accepted, seconds (default 86 400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_response_age_secs: Option<u64>,
    /// Trust the channel alone when no peers are configured (loud; default false).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_no_peers: bool,
    /// Peers asked at once (default 16).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_concurrency: Option<usize>,
    /// Per-peer timeout in seconds (default 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_timeout_secs: Option<u64>,
    /// What `update` does when the log revoked an installed version (default `report`); a
    /// package's own `on_revoked` overrides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_revoked: Option<OnRevoked>,
    /// Where `update` writes its JSON status file after every run (default
    /// `<site>/status.json`); an absolute path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_file: Option<PathBuf>,
}

/// `[[channel]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// The log's origin name.
    pub name: ChannelName,
    /// The pinned channel key.
    pub key: PublicKey,
    /// Base URLs, tried in order.
    pub mirrors: Vec<String>,
    /// Base URLs of static copies of the log (the channel's `public/` folder on any web server
    /// or CDN), tried in order before the channel for entries and archives; the channel still
    /// gives the signed, nonce-bound answer. Empty: everything from the channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tile_mirrors: Vec<String>,
    /// A C2SP tlog-policy (the file's text, inline): when set, a run accepts new entries only
    /// up to a checkpoint note of the channel that carries witness cosignatures meeting its
    /// quorum, each no older than `max_cosignature_age_secs` (`keyggdrasil::policy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_policy: Option<String>,
    /// The freeze bound of `witness_policy`: the oldest cosignature that counts (default 7200 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cosignature_age_secs: Option<u64>,
}

/// Default freeze bound of a witness policy: two hours.
pub const DEFAULT_MAX_COSIGNATURE_AGE_SECS: u64 = 7200;

/// `[[peer]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's notary base URL.
    pub url: String,
    /// The peer's notary key.
    pub key: PublicKey,
}

/// Which newer releases a tracked package may move to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdatePolicy {
    /// Any newer version.
    All,
    /// Same major version.
    Minor,
    /// Same major and minor version.
    Patch,
    /// Exactly this version.
    Pinned(Version),
}

impl UpdatePolicy {
    /// Whether a site on `current` (if any) may install `candidate`.
    pub fn allows(&self, current: Option<&Version>, candidate: &Version) -> bool {
        let c = candidate.semver();
        if let UpdatePolicy::Pinned(v) = self {
            return v == candidate;
        }
        // Pre-releases are installed only when pinned.
        if !c.pre.is_empty() {
            return false;
        }
        let Some(cur) = current else {
            return true;
        };
        let cur = cur.semver();
        if c <= cur {
            return false;
        }
        match self {
            UpdatePolicy::All => true,
            UpdatePolicy::Minor => c.major == cur.major,
            UpdatePolicy::Patch => c.major == cur.major && c.minor == cur.minor,
            UpdatePolicy::Pinned(_) => false,
        }
    }
}

impl Serialize for UpdatePolicy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            UpdatePolicy::All => s.serialize_str("all"),
            UpdatePolicy::Minor => s.serialize_str("minor"),
            UpdatePolicy::Patch => s.serialize_str("patch"),
            UpdatePolicy::Pinned(v) => s.serialize_str(&format!("={v}")),
        }
    }
}

impl<'de> Deserialize<'de> for UpdatePolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = String::deserialize(d)?;
        match t.as_str() {
            "all" => Ok(UpdatePolicy::All),
            "minor" => Ok(UpdatePolicy::Minor),
            "patch" => Ok(UpdatePolicy::Patch),
            other => match other.strip_prefix('=') {
                Some(v) => Version::parse(v)
                    .map(UpdatePolicy::Pinned)
                    .map_err(serde::de::Error::custom),
                None => Err(serde::de::Error::custom(
                    "policy must be \"all\", \"minor\", \"patch\" or \"=VERSION\"",
                )),
            },
        }
    }
}

fn default_policy() -> UpdatePolicy {
    UpdatePolicy::All
}

/// `[[package]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageConfig {
    /// The supplier.
    pub supplier: SupplierName,
    /// The package.
    pub name: PackageName,
    /// The channel it comes from.
    pub channel: ChannelName,
    /// Update policy (default `all`).
    #[serde(default = "default_policy")]
    pub policy: UpdatePolicy,
    /// What `update` does when the log revoked this package's installed version (default:
    /// `[site] on_revoked`, else `report`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_revoked: Option<OnRevoked>,
    /// Where the CMS finds the package: an absolute path that continuum makes a symbolic link
    /// to the package's `current` link (so it switches atomically with it). Its parent folder
    /// must exist; the path itself must be absent or such a link. See [`crate::install`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_dir: Option<PathBuf>,
    /// This package's `post_install` hook, instead of `[hooks] post_install`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_install: Option<Vec<String>>,
    /// This package's `post_rollback` hook, instead of `[hooks] post_rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_rollback: Option<Vec<String>>,
    /// This package's `on_failure` hook (a failed install of this package), instead of
    /// `[hooks] on_failure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Vec<String>>,
}

/// What `update` does about an installed version that the log revoked (the release, or the
/// signing key that signed it), when no newer allowed release replaces it in the same run.
/// Every value also reports it, loudly, on every run while it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRevoked {
    /// Keep serving it and warn (the default): a person decides.
    #[default]
    Report,
    /// Go back to a version that is not revoked: the kept previous version if it is not
    /// revoked, else the newest older release the log still allows. Without one, it only
    /// reports (it never installs something revoked).
    Rollback,
    /// Stop serving it: remove the install (its `current` link and version folders); the
    /// package stays tracked, so the next good release is installed again.
    Remove,
}

/// `[transport]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransportConfig {
    /// `socks5h://host:port` (remote DNS, for Tor) or `socks5://…`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Connect timeout in seconds (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_secs: Option<u64>,
    /// Whole-request timeout in seconds for API calls (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Timeout in seconds for an archive download (default 600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_timeout_secs: Option<u64>,
    /// Slowest archive download kept, in bytes per second over a window (default 1024; 0
    /// turns the floor off): a slower mirror is left for the next one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_rate_bytes_per_sec: Option<u64>,
    /// The window of `min_rate_bytes_per_sec`, in seconds (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_rate_window_secs: Option<u64>,
    /// Longest network time of one `update` run, in seconds (default 1800; 0: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_deadline_secs: Option<u64>,
    /// Whether an update from an installed version first tries a delta patch (default true;
    /// docs/deltas.md). Any failure of a patch falls back to the full archive in the same run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deltas: Option<bool>,
}

impl TransportConfig {
    /// `deltas`, with its default (true).
    pub fn deltas(&self) -> bool {
        self.deltas.unwrap_or(true)
    }
}

impl Config {
    /// Reads and validates the config file, after [`check_site_files`] of its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        check_site_files(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.validate()
            .and_then(|()| cfg.validate_cms(path.parent().unwrap_or(Path::new("."))))
            .map_err(|message| ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            })?;
        Ok(cfg)
    }

    /// Writes the config file (atomically: temporary file and rename). The temporary file is
    /// created new with mode 0644 whatever the umask allows beyond it (never wider), and a
    /// file or symbolic link already at its name is removed first, never written through.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let tmp = path.with_extension("toml.tmp");
        let write = || -> std::io::Result<()> {
            match std::fs::remove_file(&tmp) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, path)
        };
        write().map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            ConfigError::Write {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    fn validate(&self) -> Result<(), String> {
        for c in &self.channels {
            if c.mirrors.is_empty() {
                return Err(format!("channel {} has no mirrors", c.name.as_str()));
            }
            for m in c.mirrors.iter().chain(&c.tile_mirrors) {
                check_url(m)?;
            }
            if let Some(p) = &c.witness_policy {
                keyggdrasil::policy::Policy::parse(p)
                    .map_err(|e| format!("channel {}: witness_policy: {e}", c.name.as_str()))?;
            }
        }
        let mut keys = std::collections::BTreeSet::new();
        let mut urls = std::collections::BTreeSet::new();
        for p in &self.peers {
            check_url(&p.url)?;
            // Each peer counts once toward the quorum: a key or URL listed twice would let one
            // notary vote twice.
            if !keys.insert(p.key) {
                return Err(format!("peer key {} is listed more than once", p.key));
            }
            if !urls.insert(p.url.trim_end_matches('/').to_owned()) {
                return Err(format!("peer {} is listed more than once", p.url));
            }
        }
        for p in &self.packages {
            if self.channel(&p.channel).is_none() {
                return Err(format!(
                    "package {}/{} names channel {}, which is not configured",
                    p.supplier,
                    p.name,
                    p.channel.as_str()
                ));
            }
        }
        if let Some(proxy) = &self.transport.proxy
            && !(proxy.starts_with("socks5h://") || proxy.starts_with("socks5://"))
        {
            return Err(
                "transport.proxy must be a socks5h:// (remote DNS) or socks5:// URL".into(),
            );
        }
        Ok(())
    }

    /// Checks the CMS keys: hooks are argv arrays starting with an absolute program path and
    /// a bounded timeout; `install_dir` and `status_file` are absolute, plain (no `.` or `..`),
    /// and `install_dir` is outside the site folder `root` and different for each package.
    fn validate_cms(&self, root: &Path) -> Result<(), String> {
        let h = &self.hooks;
        for (key, argv) in [
            ("[hooks] post_install", &h.post_install),
            ("[hooks] post_rollback", &h.post_rollback),
            ("[hooks] on_failure", &h.on_failure),
        ] {
            check_argv(key, argv.as_deref())?;
        }
        if let Some(t) = h.hook_timeout_secs
            && !(1..=MAX_HOOK_TIMEOUT_SECS).contains(&t)
        {
            return Err(format!(
                "[hooks] hook_timeout_secs = {t}: give 1 to {MAX_HOOK_TIMEOUT_SECS} seconds"
            ));
        }
        if let Some(f) = &self.site.status_file {
            check_plain_absolute("[site] status_file", f)?;
        }
        // The site folder as the OS names it, so that a symlinked path to it is still caught.
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let mut dirs = std::collections::BTreeSet::new();
        for p in &self.packages {
            let who = format!("package {}/{}", p.supplier, p.name);
            for (key, argv) in [
                ("post_install", &p.post_install),
                ("post_rollback", &p.post_rollback),
                ("on_failure", &p.on_failure),
            ] {
                check_argv(&format!("{who}: {key}"), argv.as_deref())?;
            }
            let Some(dir) = &p.install_dir else { continue };
            check_plain_absolute(&format!("{who}: install_dir"), dir)?;
            let parent = dir
                .parent()
                .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf()));
            if dir.starts_with(&root) || parent.as_ref().is_some_and(|d| d.starts_with(&root)) {
                return Err(format!(
                    "{who}: install_dir {} is inside the site folder {}: continuum manages that \
                     folder; name the place the CMS loads plugins from, outside it",
                    dir.display(),
                    root.display()
                ));
            }
            if !dirs.insert(dir.clone()) {
                return Err(format!(
                    "{who}: install_dir {} is also another package's install_dir",
                    dir.display()
                ));
            }
        }
        Ok(())
    }

    /// The channel with this name.
    pub fn channel(&self, name: &ChannelName) -> Option<&ChannelConfig> {
        self.channels.iter().find(|c| &c.name == name)
    }

    /// Adds the peer at `url` with notary key `key`, replacing a peer with the same URL. Refuses
    /// a key another peer already has (one notary must not vote twice). Changes only `self`;
    /// the caller saves.
    pub fn add_peer(&mut self, url: &str, key: PublicKey) -> Result<(), EditError> {
        // Saved unchecked, a bad URL would make the next load of the file fail.
        check_url(url).map_err(|message| EditError::BadUrl { message })?;
        if let Some(p) = self.peers.iter().find(|p| p.key == key && p.url != url) {
            return Err(EditError::DuplicatePeerKey { url: p.url.clone() });
        }
        self.peers.retain(|p| p.url != url);
        self.peers.push(PeerConfig {
            url: url.to_owned(),
            key,
        });
        Ok(())
    }

    /// Removes the peer at `url` (compared exactly); [`EditError::NoSuchPeer`] if there is none.
    pub fn remove_peer(&mut self, url: &str) -> Result<(), EditError> {
        let before = self.peers.len();
        self.peers.retain(|p| p.url != url);
        if self.peers.len() == before {
            return Err(EditError::NoSuchPeer {
                url: url.to_owned(),
            });
        }
        Ok(())
    }

    /// Starts (or keeps) tracking `supplier/name` from `channel` with `policy`, replacing an
    /// earlier entry for the same package. Without `channel`, the only configured channel is
    /// used. Returns the channel chosen. Installs nothing; the caller saves and updates.
    pub fn track(
        &mut self,
        supplier: SupplierName,
        name: PackageName,
        channel: Option<ChannelName>,
        policy: UpdatePolicy,
    ) -> Result<ChannelName, EditError> {
        let channel = match channel {
            Some(c) => c,
            None => match self.channels.as_slice() {
                [one] => one.name.clone(),
                [] => return Err(EditError::NoChannel),
                _ => return Err(EditError::ChannelNeeded),
            },
        };
        if self.channel(&channel).is_none() {
            return Err(EditError::UnknownChannel {
                channel: channel.as_str().to_owned(),
            });
        }
        // An operator's on_revoked, install_dir and hooks for the package survive `install`
        // again.
        let old = self
            .packages
            .iter()
            .find(|p| p.supplier == supplier && p.name == name)
            .cloned();
        let on_revoked = old.as_ref().and_then(|p| p.on_revoked);
        self.packages
            .retain(|p| !(p.supplier == supplier && p.name == name));
        self.packages.push(PackageConfig {
            supplier,
            name,
            channel: channel.clone(),
            policy,
            on_revoked,
            install_dir: old.as_ref().and_then(|p| p.install_dir.clone()),
            post_install: old.as_ref().and_then(|p| p.post_install.clone()),
            post_rollback: old.as_ref().and_then(|p| p.post_rollback.clone()),
            on_failure: old.and_then(|p| p.on_failure),
        });
        Ok(channel)
    }

    /// What `update` does when `package`'s installed version is revoked: its own
    /// `on_revoked`, else the site's, else [`OnRevoked::Report`].
    pub fn on_revoked(&self, package: &PackageConfig) -> OnRevoked {
        package
            .on_revoked
            .or(self.site.on_revoked)
            .unwrap_or_default()
    }

    /// Stops tracking `supplier/name`; returns whether it was tracked. Removes nothing on
    /// disk; the caller saves.
    pub fn untrack(&mut self, supplier: &SupplierName, name: &PackageName) -> bool {
        let before = self.packages.len();
        self.packages
            .retain(|p| !(&p.supplier == supplier && &p.name == name));
        self.packages.len() != before
    }

    /// Pins every tracked entry of `supplier/name` to exactly `version` (after a rollback, so
    /// the next update does not install the newer version again). Untracked: nothing changes.
    pub fn pin(&mut self, supplier: &SupplierName, name: &PackageName, version: Version) {
        for p in self
            .packages
            .iter_mut()
            .filter(|p| &p.supplier == supplier && &p.name == name)
        {
            p.policy = UpdatePolicy::Pinned(version.clone());
        }
    }
}

/// A hook is an argv array: a program given by its absolute path (no `PATH` search, no shell),
/// then its arguments; no NUL bytes (they cannot be passed to a program).
/// Refuses a site whose files someone other than the running user (or root) could change: the
/// site folder (the config file's folder), `continuum.toml` (a symbolic link is followed: its
/// target is checked), `site.db` and its `-wal`/`-shm` files, `local/`, `staging/`,
/// `packages/` and the supplier, package and `versions/` folders under it (those that exist).
/// Each must belong to the running user or root and must not be writable by group or others;
/// the error names the first that is not, and the fix. Read access for a group (the CMS's,
/// which must traverse to `packages/`) is fine.
pub fn check_site_files(config: &Path) -> Result<(), ConfigError> {
    use keyggdrasil::os::ownership::check_trusted;
    let root = match config.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let paths = SitePaths::for_config(config);
    let mut db_side = paths.db.clone().into_os_string();
    db_side.push("-wal");
    let wal = PathBuf::from(db_side);
    let shm = wal.with_extension("db-shm");
    for path in [
        root,
        config,
        &paths.db,
        &wal,
        &shm,
        &paths.local,
        &paths.staging,
        &paths.packages,
    ] {
        check_trusted(path)?;
    }
    for supplier in sub_folders(&paths.packages) {
        check_trusted(&supplier)?;
        for package in sub_folders(&supplier) {
            check_trusted(&package)?;
            check_trusted(&package.join("versions"))?;
        }
    }
    Ok(())
}

/// The real folders (not links) in `dir`; none if it cannot be read.
fn sub_folders(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn check_argv(key: &str, argv: Option<&[String]>) -> Result<(), String> {
    let Some(argv) = argv else { return Ok(()) };
    let Some(program) = argv.first() else {
        return Err(format!(
            "{key} is empty: give the program and its arguments, e.g. [\"/usr/local/bin/wp\", \"plugin\", \"activate\"]"
        ));
    };
    if !Path::new(program).is_absolute() {
        return Err(format!(
            "{key}: {program:?} is not an absolute path: hooks are run without a shell or PATH \
             search; give the program's full path (e.g. /usr/bin/{program})"
        ));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(format!("{key}: an argument contains a NUL byte"));
    }
    Ok(())
}

/// An absolute path without `.` or `..` components (so it names exactly one place, and a
/// `..` cannot lead out of where it seems to point).
fn check_plain_absolute(key: &str, path: &Path) -> Result<(), String> {
    use std::path::Component;
    if !path.is_absolute() {
        return Err(format!(
            "{key} {} is relative: give an absolute path",
            path.display()
        ));
    }
    if path
        .components()
        .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
        || path.parent().is_none()
    {
        return Err(format!(
            "{key} {}: give a plain absolute path, without `.` or `..`, and not /",
            path.display()
        ));
    }
    Ok(())
}

fn check_url(u: &str) -> Result<(), String> {
    if (u.starts_with("http://") || u.starts_with("https://")) && !u.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(format!("{u:?} is not an http:// or https:// URL"))
    }
}

/// Paths inside a site folder.
#[derive(Debug, Clone)]
pub struct SitePaths {
    /// The site folder.
    pub root: PathBuf,
    /// `continuum.toml`.
    pub config: PathBuf,
    /// `site.db`.
    pub db: PathBuf,
    /// `local/` (0700).
    pub local: PathBuf,
    /// `local/site-secret` (0600).
    pub secret: PathBuf,
    /// `continuum.log`: one line per run.
    pub log: PathBuf,
    /// `update.lock`.
    pub lock: PathBuf,
    /// `packages/`: installed packages.
    pub packages: PathBuf,
    /// `staging/`: downloads and extractions in progress.
    pub staging: PathBuf,
}

impl SitePaths {
    /// The layout of a site folder.
    pub fn new(root: &Path) -> Self {
        let local = root.join("local");
        Self {
            root: root.to_path_buf(),
            config: root.join("continuum.toml"),
            db: root.join("site.db"),
            secret: local.join("site-secret"),
            local,
            log: root.join("continuum.log"),
            lock: root.join("update.lock"),
            packages: root.join("packages"),
            staging: root.join("staging"),
        }
    }

    /// The layout for a config file path (its folder is the site folder).
    pub fn for_config(config: &Path) -> Self {
        let root = config
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut p = Self::new(&root);
        p.config = config.to_path_buf();
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn policies() {
        let cur = v("1.2.3");
        assert!(UpdatePolicy::All.allows(Some(&cur), &v("2.0.0")));
        assert!(!UpdatePolicy::All.allows(Some(&cur), &v("1.2.3")));
        assert!(!UpdatePolicy::All.allows(Some(&cur), &v("1.2.2")));
        assert!(UpdatePolicy::Minor.allows(Some(&cur), &v("1.9.0")));
        assert!(!UpdatePolicy::Minor.allows(Some(&cur), &v("2.0.0")));
        assert!(UpdatePolicy::Patch.allows(Some(&cur), &v("1.2.9")));
        assert!(!UpdatePolicy::Patch.allows(Some(&cur), &v("1.3.0")));
        assert!(!UpdatePolicy::All.allows(Some(&cur), &v("1.3.0-rc.1")));
        assert!(UpdatePolicy::Pinned(v("1.0.0")).allows(Some(&cur), &v("1.0.0")));
        assert!(!UpdatePolicy::Pinned(v("1.0.0")).allows(Some(&cur), &v("1.2.4")));
        assert!(UpdatePolicy::All.allows(None, &v("0.1.0")));
    }

    fn one_channel() -> Config {
        let key = keyggdrasil::keys::KeyPair::generate().public();
        Config {
            site: SiteSection::default(),
            channels: vec![ChannelConfig {
                name: ChannelName::parse("c").unwrap(),
                key,
                mirrors: vec!["http://127.0.0.1:1".into()],
                tile_mirrors: Vec::new(),
                witness_policy: None,
                max_cosignature_age_secs: None,
            }],
            peers: Vec::new(),
            packages: Vec::new(),
            transport: TransportConfig::default(),
            hooks: HooksConfig::default(),
        }
    }

    #[test]
    fn peer_edits() {
        let mut c = one_channel();
        let k1 = keyggdrasil::keys::KeyPair::generate().public();
        let k2 = keyggdrasil::keys::KeyPair::generate().public();
        c.add_peer("http://a:1", k1).unwrap();
        // The same URL again replaces it (a new key for that peer).
        c.add_peer("http://a:1", k2).unwrap();
        assert_eq!(c.peers.len(), 1);
        assert_eq!(c.peers[0].key, k2);
        let e = c.add_peer("http://b:1", k2).unwrap_err();
        assert!(matches!(e, EditError::DuplicatePeerKey { ref url } if url == "http://a:1"));
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert!(matches!(
            c.remove_peer("http://b:1"),
            Err(EditError::NoSuchPeer { .. })
        ));
        c.remove_peer("http://a:1").unwrap();
        assert!(c.peers.is_empty());
    }

    #[test]
    fn track_and_pin() {
        let mut c = one_channel();
        let s = SupplierName::parse("acme").unwrap();
        let n = PackageName::parse("hello").unwrap();
        let chosen = c
            .track(s.clone(), n.clone(), None, UpdatePolicy::Minor)
            .unwrap();
        assert_eq!(chosen.as_str(), "c");
        c.track(s.clone(), n.clone(), None, UpdatePolicy::All)
            .unwrap();
        assert_eq!(c.packages.len(), 1, "tracking again replaces the entry");
        assert_eq!(c.packages[0].policy, UpdatePolicy::All);
        c.pin(&s, &n, v("1.0.0"));
        assert_eq!(c.packages[0].policy, UpdatePolicy::Pinned(v("1.0.0")));
        let other = ChannelName::parse("other").unwrap();
        assert!(matches!(
            c.track(s.clone(), n.clone(), Some(other), UpdatePolicy::All),
            Err(EditError::UnknownChannel { .. })
        ));
        let mut two = c.clone();
        let mut second = two.channels[0].clone();
        second.name = ChannelName::parse("d").unwrap();
        two.channels.push(second);
        assert!(matches!(
            two.track(s, n, None, UpdatePolicy::All),
            Err(EditError::ChannelNeeded)
        ));
    }

    #[test]
    fn round_trip_and_validation() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("continuum.toml");
        let key = keyggdrasil::keys::KeyPair::generate().public();
        std::fs::write(
            &p,
            format!(
                "[[channel]]\nname = \"c\"\nkey = \"{key}\"\nmirrors = [\"http://127.0.0.1:1\"]\n\
                 [[package]]\nsupplier = \"acme\"\nname = \"hello\"\nchannel = \"c\"\npolicy = \"=1.0.0\"\n"
            ),
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.packages[0].policy, UpdatePolicy::Pinned(v("1.0.0")));
        c.save(&p).unwrap();
        assert_eq!(Config::load(&p).unwrap(), c);
        std::fs::write(
            &p,
            "[[package]]\nsupplier = \"acme\"\nname = \"hello\"\nchannel = \"nope\"\n",
        )
        .unwrap();
        assert!(
            Config::load(&p)
                .unwrap_err()
                .to_string()
                .contains("not configured")
        );
        std::fs::write(&p, "[transport]\nproxy = \"http://x\"\n").unwrap();
        assert!(Config::load(&p).is_err());
        let peer = |url: &str, key: &keyggdrasil::keys::PublicKey| {
            format!("[[peer]]\nurl = \"{url}\"\nkey = \"{key}\"\n")
        };
        let k2 = keyggdrasil::keys::KeyPair::generate().public();
        std::fs::write(&p, peer("http://a:1", &key) + &peer("http://b:1", &key)).unwrap();
        assert!(
            Config::load(&p)
                .unwrap_err()
                .to_string()
                .contains("more than once")
        );
        std::fs::write(&p, peer("http://a:1", &key) + &peer("http://a:1/", &k2)).unwrap();
        assert!(
            Config::load(&p)
                .unwrap_err()
                .to_string()
                .contains("more than once")
        );
        std::fs::write(&p, peer("http://a:1", &key) + &peer("http://b:1", &k2)).unwrap();
        assert_eq!(Config::load(&p).unwrap().peers.len(), 2);
    }
}
