//! Supply-chain checks on `Cargo.lock` (docs/crypto.md, "Pinned crypto crates"): every crate
//! that computes or checks cryptography is in the lock file exactly once, at the exact version
//! the workspace pins with `=`, and comes from crates.io.

use std::collections::BTreeMap;
use std::path::Path;

/// The crypto crates and where their versions are pinned (`[workspace.dependencies]`).
const CRYPTO: &[&str] = &[
    "ed25519-dalek",
    "curve25519-dalek",
    "blake2b_simd",
    "blake2",
    "sha2",
    "argon2",
    "base64ct",
    "hmac",
    "digest",
    "subtle",
    "zeroize",
];

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `name -> [(version, source)]` from `Cargo.lock`.
fn locked() -> BTreeMap<String, Vec<(String, String)>> {
    let text = std::fs::read_to_string(root().join("Cargo.lock")).expect("Cargo.lock");
    let lock: toml::Value = toml::from_str(&text).expect("Cargo.lock is TOML");
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for p in lock["package"].as_array().expect("packages") {
        let name = p["name"].as_str().expect("name").to_owned();
        let version = p["version"].as_str().expect("version").to_owned();
        let source = p
            .get("source")
            .and_then(|s| s.as_str())
            .unwrap_or("path")
            .to_owned();
        out.entry(name).or_default().push((version, source));
    }
    out
}

#[test]
fn each_crypto_crate_is_locked_once_from_crates_io() {
    let locked = locked();
    for name in CRYPTO {
        let versions = locked
            .get(*name)
            .unwrap_or_else(|| panic!("{name} is not in Cargo.lock"));
        assert_eq!(
            versions.len(),
            1,
            "{name} is in Cargo.lock {} times: {versions:?}",
            versions.len()
        );
        assert_eq!(
            versions[0].1, "registry+https://github.com/rust-lang/crates.io-index",
            "{name} comes from {}",
            versions[0].1
        );
    }
}

#[test]
fn the_primitives_are_pinned_exactly_and_locked_at_the_pin() {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let manifest: toml::Value = toml::from_str(&text).expect("Cargo.toml is TOML");
    let deps = &manifest["workspace"]["dependencies"];
    let locked = locked();
    // The crates that implement the primitives are pinned with `=` (docs/crypto.md says why
    // each was chosen); the traits and helpers (digest, hmac, subtle, zeroize) follow them.
    for name in [
        "ed25519-dalek",
        "curve25519-dalek",
        "blake2b_simd",
        "blake2",
        "sha2",
        "argon2",
        "base64ct",
    ] {
        let spec = &deps[name];
        let version = spec
            .as_str()
            .or_else(|| spec.get("version").and_then(|v| v.as_str()))
            .unwrap_or_else(|| panic!("{name} has no version in [workspace.dependencies]"));
        let pinned = version
            .strip_prefix('=')
            .unwrap_or_else(|| panic!("{name} = {version:?} is not pinned with ="));
        assert_eq!(
            locked[name][0].0, pinned,
            "{name} locked at another version"
        );
    }
}
