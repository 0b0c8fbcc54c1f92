//! Key derivation: passphrase → Ed25519 seed with Argon2i, generated passphrases, and
//! HKDF-BLAKE2b to split one random site secret into purpose keys.
//!
//! # Passphrase keys
//! `seed = Argon2i v1.3(passphrase, salt, t = ops_limit, m = mem_limit / 1024 KiB, p = 1, 32 bytes)`,
//! exactly what libsodium's `crypto_pwhash(..., crypto_pwhash_ALG_ARGON2I13)` computes, and the
//! seed becomes an Ed25519 key pair (libsodium `crypto_sign_seed_keypair`). The parameters travel
//! with the salt in a [`Derivation`] record, so a key never changes meaning when a default
//! changes. Parameters are bounded ([`MAX_MEM_LIMIT`], [`MAX_OPS_LIMIT`]) because a record may come
//! from a file or the log, and an unbounded one would let it demand any amount of memory.
//!
//! # Site secrets
//! [`SiteSecret::derive`] is HKDF (RFC 5869) with HMAC-BLAKE2b-512, no salt, and a distinct `info`
//! string per [`Purpose`]. It is not Halite's keyed-hash shortcut.
//!
//! Argon2's own working memory (up to 512 MiB here) is not zeroized by the `argon2` crate; the
//! passphrase-derived seed and every output buffer of this module are.

use std::fmt;

use argon2::{Algorithm, Argon2, Params};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::keys::{KeyError, KeyPair};

/// The one key-derivation algorithm: Argon2i version 1.3 (libsodium `ALG_ARGON2I13`).
pub const ALG_ARGON2I13: &str = "argon2i13";
/// Length of every salt, in bytes (libsodium `crypto_pwhash_SALTBYTES`).
pub const SALT_LEN: usize = 16;
/// Smallest accepted `ops_limit` (libsodium's minimum for Argon2i).
pub const MIN_OPS_LIMIT: u32 = 3;
/// Largest accepted `ops_limit`.
pub const MAX_OPS_LIMIT: u32 = 64;
/// Smallest accepted `mem_limit` in bytes (libsodium `crypto_pwhash_MEMLIMIT_MIN`).
pub const MIN_MEM_LIMIT: u64 = 8192;
/// Largest accepted `mem_limit` in bytes (1 GiB, twice the sensitive level).
pub const MAX_MEM_LIMIT: u64 = 1 << 30;
/// Longest accepted passphrase in bytes.
pub const MAX_PASSPHRASE_LEN: usize = 4096;

/// Why a derivation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KdfError {
    /// The record names an algorithm other than `argon2i13`.
    #[error(
        "unsupported key derivation algorithm {0:?}; only \"argon2i13\" (Argon2i v1.3) is supported"
    )]
    Algorithm(String),
    /// `ops_limit` is out of bounds.
    #[error("ops_limit {0} is out of range {MIN_OPS_LIMIT}..={MAX_OPS_LIMIT}")]
    OpsLimit(u32),
    /// `mem_limit` is out of bounds.
    #[error(
        "mem_limit {0} bytes is out of range {MIN_MEM_LIMIT}..={MAX_MEM_LIMIT} (must be a multiple of 1024)"
    )]
    MemLimit(u64),
    /// The passphrase is empty or too long.
    #[error("passphrase must be 1 to {MAX_PASSPHRASE_LEN} bytes")]
    Passphrase,
    /// Argon2 itself failed (should not happen with validated parameters).
    #[error("argon2 failed: {0}")]
    Argon2(String),
    /// The derived seed gave a public key that is refused (practically impossible).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A BIP-39 passphrase could not be generated.
    #[error("could not generate a word passphrase: {0}")]
    Words(String),
    /// HKDF was asked for an output length it cannot produce.
    #[error("hkdf output length {0} is not supported")]
    HkdfLength(usize),
}

/// Named Argon2i cost levels, equal to libsodium's `crypto_pwhash_argon2i_*` constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// ops 4, mem 32 MiB (`OPSLIMIT_INTERACTIVE`, `MEMLIMIT_INTERACTIVE`).
    Interactive,
    /// ops 6, mem 128 MiB (`OPSLIMIT_MODERATE`, `MEMLIMIT_MODERATE`); the default for signing keys.
    Moderate,
    /// ops 8, mem 512 MiB (`OPSLIMIT_SENSITIVE`, `MEMLIMIT_SENSITIVE`); the default for master keys.
    Sensitive,
}

impl Level {
    /// `(ops_limit, mem_limit in bytes)` of this level.
    pub const fn limits(self) -> (u32, u64) {
        match self {
            Level::Interactive => (4, 33_554_432),
            Level::Moderate => (6, 134_217_728),
            Level::Sensitive => (8, 536_870_912),
        }
    }
    /// Parses `interactive`, `moderate` or `sensitive`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "interactive" => Some(Level::Interactive),
            "moderate" => Some(Level::Moderate),
            "sensitive" => Some(Level::Sensitive),
            _ => None,
        }
    }
}

/// The record kept beside every salt: algorithm, salt and costs. Enough, with the passphrase,
/// to rebuild the key; says nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Derivation {
    /// Always [`ALG_ARGON2I13`].
    pub alg: String,
    /// 16 random bytes.
    #[serde(with = "crate::encoding::serde_hex")]
    pub salt: [u8; SALT_LEN],
    /// Argon2 `t` (passes), libsodium `opslimit`.
    pub ops_limit: u32,
    /// Memory in bytes, libsodium `memlimit`; Argon2 `m` is this divided by 1024.
    pub mem_limit: u64,
}

impl Derivation {
    /// A fresh record at a named level with a new random salt.
    pub fn new(level: Level) -> Self {
        let (ops_limit, mem_limit) = level.limits();
        Self::with_salt(crate::os::random::bytes::<SALT_LEN>(), ops_limit, mem_limit)
    }

    /// A record with the given salt and costs (for recovery, and for small costs in tests).
    pub fn with_salt(salt: [u8; SALT_LEN], ops_limit: u32, mem_limit: u64) -> Self {
        Self {
            alg: ALG_ARGON2I13.to_owned(),
            salt,
            ops_limit,
            mem_limit,
        }
    }

    /// Checks the algorithm and bounds without deriving anything.
    pub fn validate(&self) -> Result<(), KdfError> {
        if self.alg != ALG_ARGON2I13 {
            return Err(KdfError::Algorithm(self.alg.chars().take(32).collect()));
        }
        if !(MIN_OPS_LIMIT..=MAX_OPS_LIMIT).contains(&self.ops_limit) {
            return Err(KdfError::OpsLimit(self.ops_limit));
        }
        if !(MIN_MEM_LIMIT..=MAX_MEM_LIMIT).contains(&self.mem_limit)
            || !self.mem_limit.is_multiple_of(1024)
        {
            return Err(KdfError::MemLimit(self.mem_limit));
        }
        Ok(())
    }

    /// Derives the 32-byte seed from `passphrase`.
    pub fn derive_seed(&self, passphrase: &[u8]) -> Result<Zeroizing<[u8; 32]>, KdfError> {
        self.validate()?;
        if passphrase.is_empty() || passphrase.len() > MAX_PASSPHRASE_LEN {
            return Err(KdfError::Passphrase);
        }
        let m_kib =
            u32::try_from(self.mem_limit / 1024).map_err(|_| KdfError::MemLimit(self.mem_limit))?;
        let params = Params::new(m_kib, self.ops_limit, 1, Some(32))
            .map_err(|e| KdfError::Argon2(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2i, argon2::Version::V0x13, params);
        let mut seed = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase, &self.salt, &mut *seed)
            .map_err(|e| KdfError::Argon2(e.to_string()))?;
        Ok(seed)
    }

    /// Derives the Ed25519 key pair from `passphrase` (libsodium `crypto_sign_seed_keypair` of the
    /// derived seed).
    pub fn derive_keypair(&self, passphrase: &[u8]) -> Result<KeyPair, KdfError> {
        let seed = self.derive_seed(passphrase)?;
        Ok(KeyPair::from_seed(&seed)?)
    }
}

/// Number of words of a generated passphrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordCount {
    /// 12 words, 128 bits of entropy.
    Twelve,
    /// 24 words, 256 bits of entropy.
    TwentyFour,
}

/// Generates a passphrase of BIP-39 English words from the OS CSPRNG (the BIP-39 checksum word
/// included, so a typo in a copied phrase can be detected with [`check_words`]).
pub fn generate_passphrase(words: WordCount) -> Result<Zeroizing<String>, KdfError> {
    let entropy = crate::os::random::secret_bytes::<32>();
    let len = match words {
        WordCount::Twelve => 16,
        WordCount::TwentyFour => 32,
    };
    let m = bip39::Mnemonic::from_entropy(&entropy[..len])
        .map_err(|e| KdfError::Words(e.to_string()))?;
    let mut out = Zeroizing::new(String::new());
    for (i, w) in m.words().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
    Ok(out)
}

/// True if `phrase` is a valid BIP-39 English phrase (words and checksum), e.g. to warn a person
/// who mistyped a generated passphrase. Any passphrase is usable for derivation; this only checks.
pub fn check_words(phrase: &str) -> bool {
    bip39::Mnemonic::parse_in_normalized(bip39::Language::English, phrase).is_ok()
}

/// What a key derived from the site secret is for. Each purpose has its own HKDF `info` string,
/// so a key for one purpose says nothing about another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Purpose {
    /// The Ed25519 seed of the site's notary signing key.
    NotarySigningSeed,
    /// The MAC key for requests between a site's (or the channel's) own processes.
    InternalMac,
}

impl Purpose {
    /// The HKDF `info` string of this purpose.
    pub const fn info(self) -> &'static [u8] {
        match self {
            Purpose::NotarySigningSeed => b"keyggdrasil/v1/hkdf/notary-signing-seed",
            Purpose::InternalMac => b"keyggdrasil/v1/hkdf/internal-mac",
        }
    }
}

/// HKDF-BLAKE2b-512 (RFC 5869 with HMAC-BLAKE2b-512): `out.len()` bytes from `ikm`, an optional
/// `salt` and `info`. At most 255·64 bytes of output.
pub fn hkdf_blake2b512(
    ikm: &[u8],
    salt: Option<&[u8]>,
    info: &[u8],
    out: &mut [u8],
) -> Result<(), KdfError> {
    let hk = hkdf::SimpleHkdf::<blake2::Blake2b512>::new(salt, ikm);
    hk.expand(info, out)
        .map_err(|_| KdfError::HkdfLength(out.len()))
}

/// One random 32-byte secret per site (or channel) from which purpose keys are derived.
/// Secret: no `Debug` output of the bytes, zeroized on drop.
pub struct SiteSecret(Zeroizing<[u8; 32]>);

impl SiteSecret {
    /// A fresh secret from the OS CSPRNG.
    pub fn generate() -> Self {
        Self(crate::os::random::secret_bytes::<32>())
    }
    /// Wraps stored secret bytes.
    pub fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(bytes)
    }
    /// The secret bytes, for writing the secret file only.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
    /// The 32-byte key for `purpose`.
    pub fn derive(&self, purpose: Purpose) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is always a valid HKDF-BLAKE2b-512 output length.
        if hkdf_blake2b512(&*self.0, None, purpose.info(), &mut *out).is_err() {
            unreachable!("32 bytes is within HKDF-BLAKE2b-512's output limit");
        }
        out
    }
    /// The site's notary key pair.
    pub fn notary_keypair(&self) -> Result<KeyPair, KeyError> {
        KeyPair::from_seed(&self.derive(Purpose::NotarySigningSeed))
    }
}

impl fmt::Debug for SiteSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SiteSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap(salt: [u8; 16]) -> Derivation {
        Derivation::with_salt(salt, 3, 8192)
    }

    #[test]
    fn levels_match_libsodium_constants() {
        assert_eq!(Level::Interactive.limits(), (4, 32 << 20));
        assert_eq!(Level::Moderate.limits(), (6, 128 << 20));
        assert_eq!(Level::Sensitive.limits(), (8, 512 << 20));
    }

    #[test]
    fn deterministic_and_salt_and_passphrase_sensitive() {
        let d = cheap([7; 16]);
        let a = d.derive_keypair(b"correct horse").unwrap().public();
        assert_eq!(a, d.derive_keypair(b"correct horse").unwrap().public());
        assert_ne!(a, d.derive_keypair(b"correct horsE").unwrap().public());
        assert_ne!(
            a,
            cheap([8; 16])
                .derive_keypair(b"correct horse")
                .unwrap()
                .public()
        );
        assert_ne!(
            a,
            Derivation::with_salt([7; 16], 4, 8192)
                .derive_keypair(b"correct horse")
                .unwrap()
                .public()
        );
    }

    #[test]
    fn refuses_bad_records() {
        let mut d = cheap([0; 16]);
        d.alg = "argon2id13".into();
        assert!(matches!(d.derive_seed(b"x"), Err(KdfError::Algorithm(_))));
        assert!(matches!(
            Derivation::with_salt([0; 16], 2, 8192).derive_seed(b"x"),
            Err(KdfError::OpsLimit(2))
        ));
        assert!(matches!(
            Derivation::with_salt([0; 16], 3, 4096).derive_seed(b"x"),
            Err(KdfError::MemLimit(4096))
        ));
        assert!(matches!(
            Derivation::with_salt([0; 16], 3, 1u64 << 40).derive_seed(b"x"),
            Err(KdfError::MemLimit(_))
        ));
        assert!(matches!(
            Derivation::with_salt([0; 16], 3, 8193).derive_seed(b"x"),
            Err(KdfError::MemLimit(8193))
        ));
        assert!(matches!(
            cheap([0; 16]).derive_seed(b""),
            Err(KdfError::Passphrase)
        ));
    }

    #[test]
    fn derivation_record_json_shape() {
        let d = cheap([0xab; 16]);
        let j = serde_json::to_string(&d).unwrap();
        assert_eq!(
            j,
            r#"{"alg":"argon2i13","salt":"abababababababababababababababab","ops_limit":3,"mem_limit":8192}"#
        );
        let back: Derivation = serde_json::from_str(&j).unwrap();
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Derivation>(&j.replace("}", r#","x":1}"#)).is_err());
    }

    #[test]
    fn generated_passphrases() {
        let p12 = generate_passphrase(WordCount::Twelve).unwrap();
        let p24 = generate_passphrase(WordCount::TwentyFour).unwrap();
        assert_eq!(p12.split(' ').count(), 12);
        assert_eq!(p24.split(' ').count(), 24);
        assert!(check_words(&p12) && check_words(&p24));
        assert_ne!(*p12, *generate_passphrase(WordCount::Twelve).unwrap());
        assert!(!check_words("abandon abandon"));
    }

    #[test]
    fn purposes_are_independent() {
        let s = SiteSecret::from_bytes(Zeroizing::new([1; 32]));
        assert_ne!(
            *s.derive(Purpose::NotarySigningSeed),
            *s.derive(Purpose::InternalMac)
        );
        assert_eq!(format!("{s:?}"), "SiteSecret(<redacted>)");
        let s2 = SiteSecret::from_bytes(Zeroizing::new([2; 32]));
        assert_ne!(
            *s.derive(Purpose::InternalMac),
            *s2.derive(Purpose::InternalMac)
        );
    }

    #[test]
    fn hkdf_output_limit() {
        let mut big = vec![0u8; 255 * 64 + 1];
        assert!(hkdf_blake2b512(b"k", None, b"i", &mut big).is_err());
        let mut ok = vec![0u8; 255 * 64];
        hkdf_blake2b512(b"k", None, b"i", &mut ok).unwrap();
    }
}
