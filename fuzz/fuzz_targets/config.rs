//! The config and key-holder files the binaries read, selected by the first byte modulo 5; the
//! rest is the file's bytes:
//!
//! 0. `continuum.toml`, through `continuum::config::Config::load` (continuum's library);
//! 1. the channel server's `channel.toml`, through `channel_server::config::Config::load`;
//! 2. `barge.toml`, through `barge/src/config.rs` itself (barge is a binary crate with no
//!    library: the file is compiled into this target with `#[path]`, with a stand-in for the
//!    five `crate::error::Error` variants it builds);
//! 3. a C2SP witness policy (`keyggdrasil::policy::Policy::parse`, the `witness_policy` of a
//!    channel in continuum.toml), then `check` of a fixed unsigned checkpoint note;
//! 4. a hangar backup share (32 BIP-39 words, `hangar/src/shares.rs` compiled in with `#[path]`,
//!    hangar has no library either).
//!
//! Files are written to a folder under `/dev/shm` (or the temporary folder) and loaded from
//! there, as the binaries load them; the folder is reused.
//!
//! Properties, besides never panicking:
//! - a continuum.toml that loads is saved by `Config::save` (what `continuum peer add` and
//!   `track` do) and loads again to an equal config;
//! - a channel.toml that loads has a note verifier key, and its TOML serialisation loads again
//!   to an equal config;
//! - a barge.toml that loads has an http(s) channel URL without a trailing `/`;
//! - a share that parses writes back (`to_words`) to words that parse to the same share, and
//!   the words given, lowercased and single-spaced, are those words.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::LazyLock;

/// What `barge/src/config.rs` needs of barge's `crate::error`: the variants it builds.
mod error {
    use std::path::PathBuf;

    #[derive(Debug)]
    #[allow(dead_code)] // the fields are read by Debug only
    pub enum Error {
        NoConfig {
            path: PathBuf,
            source: std::io::Error,
        },
        BadConfig {
            path: PathBuf,
            source: toml::de::Error,
        },
        ChannelUrl(String),
        BadPublicKey {
            what: String,
            source: keyggdrasil::keys::KeyError,
        },
        BadName {
            what: &'static str,
            value: String,
            source: keyggdrasil::names::NameError,
        },
    }
}

#[path = "../../barge/src/config.rs"]
#[allow(dead_code)] // barge's helpers beside `load`
mod barge_config;

#[path = "../../hangar/src/shares.rs"]
#[allow(dead_code)]
mod hangar_shares;

static BASE: LazyLock<PathBuf> = LazyLock::new(|| {
    let shm = PathBuf::from("/dev/shm");
    let root = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    let dir = root.join(format!("kg-fuzz-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
});

fn continuum_toml(bytes: &[u8]) {
    let path = BASE.join("continuum.toml");
    std::fs::write(&path, bytes).expect("scratch file");
    let Ok(cfg) = continuum::config::Config::load(&path) else {
        return;
    };
    let again_path = BASE.join("again.toml");
    cfg.save(&again_path)
        .expect("a config that loads can be saved");
    let again = continuum::config::Config::load(&again_path).expect("a saved config loads");
    assert_eq!(again, cfg, "save and load changed the config");
}

fn channel_toml(bytes: &[u8]) {
    let path = BASE.join("channel.toml");
    std::fs::write(&path, bytes).expect("scratch file");
    let Ok(cfg) = channel_server::config::Config::load(&path) else {
        return;
    };
    assert!(
        cfg.verifier_key().is_some(),
        "a loaded config has a verifier key"
    );
    let text = toml::to_string(&cfg).expect("a loaded config serialises");
    let again_path = BASE.join("channel-again.toml");
    std::fs::write(&again_path, text).expect("scratch file");
    let again =
        channel_server::config::Config::load(&again_path).expect("a serialised config loads");
    assert_eq!(again, cfg, "serialise and load changed the config");
}

fn barge_toml(bytes: &[u8]) {
    let path = BASE.join(barge_config::CONFIG_NAME);
    std::fs::write(&path, bytes).expect("scratch file");
    if let Ok(loaded) = barge_config::load(&BASE) {
        assert!(loaded.channel.starts_with("http://") || loaded.channel.starts_with("https://"));
        assert!(!loaded.channel.ends_with('/'));
        assert_eq!(loaded.dir, *BASE);
    }
}

fn witness_policy(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(policy) = keyggdrasil::policy::Policy::parse(text) else {
        return;
    };
    let keys = policy.witness_keys();
    let urls = policy.witness_urls();
    assert_eq!(keys.len(), urls.len(), "one URL entry per witness");
    let note = "plugins.example.org\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n";
    let _ = policy.check(note.as_bytes(), 1_700_000_000, 3600, 60);
}

fn share_words(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(share) = hangar_shares::Share::from_words(text) else {
        return;
    };
    let words = share.to_words();
    let again = hangar_shares::Share::from_words(&words).expect("written words parse");
    assert_eq!(again.split_id, share.split_id);
    assert_eq!(again.threshold, share.threshold);
    assert_eq!(again.id, share.id);
    assert_eq!(*again.value, *share.value);
    let normal = text
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        normal, *words,
        "one spelling per share, up to case and spaces"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => continuum_toml(rest),
        1 => channel_toml(rest),
        2 => barge_toml(rest),
        3 => witness_policy(rest),
        _ => share_words(rest),
    }
});
