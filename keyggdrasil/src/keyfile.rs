//! The versioned key-file format.
//!
//! A key file is one JSON object (format version 1):
//!
//! ```json
//! {"format":"keyggdrasil-key","version":1,"role":"signing","supplier":"acme",
//!  "public_key":"<64 hex>","derivation":{"alg":"argon2i13","salt":"<32 hex>","ops_limit":6,"mem_limit":134217728}}
//! ```
//!
//! The public key is always present, so a tool can list keys without any secret. The secret is
//! one of:
//! - **derived** (`derivation` present, no `secret`): the key is rebuilt from the passphrase with
//!   the recorded Argon2i parameters each time it is used; nothing secret is stored;
//! - **plain** (`secret: {"kind":"plain","seed":…}`): a random key stored as-is, for machines
//!   (the channel key, a site secret); only safe in a 0600 file in a 0700 folder;
//! - **encrypted** (`secret: {"kind":"encrypted",…}`): a random seed sealed with
//!   XChaCha20-Poly1305 under an Argon2i key from a passphrase, with the file's header (role,
//!   supplier, public key) as associated data, so a header swapped from another file is refused.
//!
//! Every way of unlocking checks that the resulting key pair has the recorded public key, so a
//! wrong passphrase, a wrong salt or a corrupted file gives a clear error instead of a
//! different key. `Debug` output never contains secret bytes.

use std::fmt;

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::encoding;
use crate::kdf::{Derivation, KdfError, Level};
use crate::keys::{KeyPair, PublicKey};
use crate::names::SupplierName;

/// The `format` field of every key file.
pub const KEY_FILE_FORMAT: &str = "keyggdrasil-key";
/// The only key-file version this code reads and writes.
pub const KEY_FILE_VERSION: u32 = 1;
/// Largest key file accepted, in bytes.
pub const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;

/// Why a key file could not be read or unlocked.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Not a key file of a version we know, or malformed JSON.
    #[error("not a valid keyggdrasil key file: {0}")]
    Malformed(String),
    /// The file has no secret and no derivation record.
    #[error("the key file holds neither a secret nor a derivation record")]
    NoSecret,
    /// Unlocking needs a passphrase that was not given.
    #[error("this key is protected by a passphrase; none was given")]
    PassphraseNeeded,
    /// The passphrase (or salt, or file) gives a different key than recorded.
    #[error(
        "wrong passphrase (or corrupted key file): the derived key does not match the recorded public key {0}"
    )]
    WrongPassphrase(PublicKey),
    /// A stored plain seed does not match the recorded public key.
    #[error("corrupted key file: the stored secret does not match the recorded public key {0}")]
    Corrupt(PublicKey),
    /// Key derivation failed.
    #[error(transparent)]
    Kdf(#[from] KdfError),
}

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    /// A supplier master key.
    Master,
    /// A supplier signing key.
    Signing,
    /// A channel's signing key.
    Channel,
    /// A site's notary key.
    Notary,
}

/// Secret material of a key file. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StoredSecret {
    /// The 32-byte seed in the clear.
    Plain {
        /// Seed, lowercase hex.
        #[serde(with = "crate::encoding::serde_hex")]
        seed: [u8; 32],
    },
    /// The seed sealed with XChaCha20-Poly1305 under an Argon2i key.
    Encrypted {
        /// How the sealing key is derived from the passphrase.
        kdf: Derivation,
        /// 24-byte nonce, lowercase hex.
        #[serde(with = "crate::encoding::serde_hex")]
        nonce: [u8; 24],
        /// 32-byte ciphertext plus 16-byte tag, lowercase hex.
        #[serde(with = "crate::encoding::serde_hex")]
        ciphertext: [u8; 48],
    },
}

impl fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoredSecret::Plain { .. } => f.write_str("Plain(<redacted>)"),
            StoredSecret::Encrypted { kdf, .. } => f
                .debug_struct("Encrypted")
                .field("kdf", kdf)
                .finish_non_exhaustive(),
        }
    }
}

impl Drop for StoredSecret {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        if let StoredSecret::Plain { seed } = self {
            seed.zeroize();
        }
    }
}

/// A parsed key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// Always [`KEY_FILE_FORMAT`].
    pub format: String,
    /// Always [`KEY_FILE_VERSION`].
    pub version: u32,
    /// What the key is for.
    pub role: KeyRole,
    /// The supplier, for supplier keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplier: Option<SupplierName>,
    /// The public key.
    pub public_key: PublicKey,
    /// Passphrase derivation record, for derived keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derivation: Option<Derivation>,
    /// Stored secret, for random keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<StoredSecret>,
}

impl KeyFile {
    /// A file for a passphrase-derived key: stores only the public key and the derivation record.
    pub fn derived(
        role: KeyRole,
        supplier: Option<SupplierName>,
        public_key: PublicKey,
        derivation: Derivation,
    ) -> Self {
        Self::new(role, supplier, public_key, Some(derivation), None)
    }

    /// A file holding a random key's seed in the clear (keep it in a private folder).
    pub fn plain(role: KeyRole, supplier: Option<SupplierName>, keypair: &KeyPair) -> Self {
        let seed = keypair.seed();
        Self::new(
            role,
            supplier,
            keypair.public(),
            None,
            Some(StoredSecret::Plain { seed: *seed }),
        )
    }

    /// A file holding a random key's seed encrypted under `passphrase` at `level`.
    pub fn encrypted(
        role: KeyRole,
        supplier: Option<SupplierName>,
        keypair: &KeyPair,
        passphrase: &[u8],
        kdf: Derivation,
    ) -> Result<Self, KeyFileError> {
        let mut file = Self::new(role, supplier, keypair.public(), None, None);
        let key = kdf.derive_seed(passphrase)?;
        let nonce = crate::os::random::bytes::<24>();
        let aad = file.associated_data();
        let seed = keypair.seed();
        let ct = XChaCha20Poly1305::new(&(*key).into())
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: &seed[..],
                    aad: &aad,
                },
            )
            .map_err(|_| KeyFileError::Malformed("encryption failed".into()))?;
        let ciphertext: [u8; 48] = ct
            .as_slice()
            .try_into()
            .map_err(|_| KeyFileError::Malformed("unexpected ciphertext length".into()))?;
        file.secret = Some(StoredSecret::Encrypted {
            kdf,
            nonce,
            ciphertext,
        });
        Ok(file)
    }

    /// The default level for a role: sensitive for master keys, moderate otherwise.
    pub fn default_level(role: KeyRole) -> Level {
        match role {
            KeyRole::Master => Level::Sensitive,
            _ => Level::Moderate,
        }
    }

    fn new(
        role: KeyRole,
        supplier: Option<SupplierName>,
        public_key: PublicKey,
        derivation: Option<Derivation>,
        secret: Option<StoredSecret>,
    ) -> Self {
        Self {
            format: KEY_FILE_FORMAT.to_owned(),
            version: KEY_FILE_VERSION,
            role,
            supplier,
            public_key,
            derivation,
            secret,
        }
    }

    fn associated_data(&self) -> Vec<u8> {
        let role = match self.role {
            KeyRole::Master => "master",
            KeyRole::Signing => "signing",
            KeyRole::Channel => "channel",
            KeyRole::Notary => "notary",
        };
        let supplier = self.supplier.as_ref().map(|s| s.as_str()).unwrap_or("");
        format!(
            "{KEY_FILE_FORMAT}/v{KEY_FILE_VERSION}\0{role}\0{supplier}\0{}",
            self.public_key.to_hex()
        )
        .into_bytes()
    }

    /// Parses a key file strictly (size limit, known format and version, no unknown fields).
    pub fn parse(bytes: &[u8]) -> Result<Self, KeyFileError> {
        if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(KeyFileError::Malformed(format!(
                "{} bytes is more than the limit of {MAX_KEY_FILE_BYTES}",
                bytes.len()
            )));
        }
        let file: KeyFile = serde_json::from_slice(bytes).map_err(|e| {
            // serde_json errors name the position and the expected type, never the value.
            KeyFileError::Malformed(e.to_string())
        })?;
        if file.format != KEY_FILE_FORMAT || file.version != KEY_FILE_VERSION {
            return Err(KeyFileError::Malformed(format!(
                "format {:?} version {} is not supported (expected {KEY_FILE_FORMAT:?} version {KEY_FILE_VERSION})",
                file.format.chars().take(40).collect::<String>(),
                file.version
            )));
        }
        if let Some(d) = &file.derivation {
            d.validate()?;
        }
        if let Some(StoredSecret::Encrypted { kdf, .. }) = &file.secret {
            kdf.validate()?;
        }
        if file.derivation.is_some() && file.secret.is_some() {
            return Err(KeyFileError::Malformed(
                "a key file holds either a derivation record or a secret, not both".into(),
            ));
        }
        Ok(file)
    }

    /// Serialises the file (pretty JSON with a final newline) into zeroizing memory.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(512));
        // Writing JSON into a Vec cannot fail for these types.
        let _ = serde_json::to_writer_pretty(&mut *out, self);
        out.push(b'\n');
        out
    }

    /// True if unlocking needs a passphrase.
    pub fn needs_passphrase(&self) -> bool {
        !matches!(self.secret, Some(StoredSecret::Plain { .. }))
    }

    /// Recovers the key pair and checks it against the recorded public key.
    pub fn unlock(&self, passphrase: Option<&[u8]>) -> Result<KeyPair, KeyFileError> {
        let kp = match (&self.derivation, &self.secret) {
            (Some(d), None) => {
                let pass = passphrase.ok_or(KeyFileError::PassphraseNeeded)?;
                let kp = d.derive_keypair(pass)?;
                if kp.public() != self.public_key {
                    return Err(KeyFileError::WrongPassphrase(self.public_key));
                }
                kp
            }
            (None, Some(StoredSecret::Plain { seed })) => {
                let kp =
                    KeyPair::from_seed(seed).map_err(|_| KeyFileError::Corrupt(self.public_key))?;
                if kp.public() != self.public_key {
                    return Err(KeyFileError::Corrupt(self.public_key));
                }
                kp
            }
            (
                None,
                Some(StoredSecret::Encrypted {
                    kdf,
                    nonce,
                    ciphertext,
                }),
            ) => {
                let pass = passphrase.ok_or(KeyFileError::PassphraseNeeded)?;
                let key = kdf.derive_seed(pass)?;
                let aad = self.associated_data();
                let plain = Zeroizing::new(
                    XChaCha20Poly1305::new(&(*key).into())
                        .decrypt(
                            &(*nonce).into(),
                            Payload {
                                msg: &ciphertext[..],
                                aad: &aad,
                            },
                        )
                        .map_err(|_| KeyFileError::WrongPassphrase(self.public_key))?,
                );
                let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
                    plain
                        .as_slice()
                        .try_into()
                        .map_err(|_| KeyFileError::Corrupt(self.public_key))?,
                );
                let kp = KeyPair::from_seed(&seed)
                    .map_err(|_| KeyFileError::Corrupt(self.public_key))?;
                if kp.public() != self.public_key {
                    return Err(KeyFileError::Corrupt(self.public_key));
                }
                kp
            }
            _ => return Err(KeyFileError::NoSecret),
        };
        Ok(kp)
    }
}

/// Hex of a public key, for messages. Kept here so key-file errors and tools print keys alike.
pub fn display_key(key: &PublicKey) -> String {
    format!(
        "{} ({})",
        encoding::to_hex(key.as_bytes()),
        key.fingerprint()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Derivation {
        Derivation::with_salt(crate::os::random::bytes::<16>(), 3, 8192)
    }

    #[test]
    fn derived_key_file() {
        let d = cheap();
        let kp = d.derive_keypair(b"pass phrase").unwrap();
        let f = KeyFile::derived(
            KeyRole::Signing,
            Some(SupplierName::parse("acme").unwrap()),
            kp.public(),
            d,
        );
        let bytes = f.to_bytes();
        let back = KeyFile::parse(&bytes).unwrap();
        assert_eq!(back, f);
        assert!(back.needs_passphrase());
        assert_eq!(
            back.unlock(Some(b"pass phrase")).unwrap().public(),
            kp.public()
        );
        assert!(matches!(
            back.unlock(Some(b"pass phrasE")),
            Err(KeyFileError::WrongPassphrase(_))
        ));
        assert!(matches!(
            back.unlock(None),
            Err(KeyFileError::PassphraseNeeded)
        ));
        // Wrong salt: same passphrase, different key.
        let mut wrong_salt = back.clone();
        if let Some(d) = &mut wrong_salt.derivation {
            d.salt[0] ^= 1;
        }
        assert!(matches!(
            wrong_salt.unlock(Some(b"pass phrase")),
            Err(KeyFileError::WrongPassphrase(_))
        ));
    }

    #[test]
    fn plain_key_file_and_redaction() {
        let kp = KeyPair::generate();
        let f = KeyFile::plain(KeyRole::Channel, None, &kp);
        let seed_hex = encoding::to_hex(&*kp.seed());
        assert!(!format!("{f:?}").contains(&seed_hex));
        let back = KeyFile::parse(&f.to_bytes()).unwrap();
        assert_eq!(back.unlock(None).unwrap().public(), kp.public());
        // Corrupt the seed (replace the whole seed hex, so nothing else in the file can match).
        let text = String::from_utf8(f.to_bytes().to_vec()).unwrap();
        let flipped_first = if seed_hex.starts_with('0') { "1" } else { "0" };
        let corrupted = format!("{flipped_first}{}", &seed_hex[1..]);
        let flipped = text.replacen(&seed_hex, &corrupted, 1);
        assert_ne!(flipped, text);
        let bad = KeyFile::parse(flipped.as_bytes()).unwrap();
        assert!(matches!(bad.unlock(None), Err(KeyFileError::Corrupt(_))));
    }

    #[test]
    fn encrypted_key_file() {
        let kp = KeyPair::generate();
        let f = KeyFile::encrypted(KeyRole::Notary, None, &kp, b"hunter2!", cheap()).unwrap();
        let back = KeyFile::parse(&f.to_bytes()).unwrap();
        assert_eq!(
            back.unlock(Some(b"hunter2!")).unwrap().public(),
            kp.public()
        );
        assert!(matches!(
            back.unlock(Some(b"hunter3!")),
            Err(KeyFileError::WrongPassphrase(_))
        ));
        // Header swap: same ciphertext under another role is refused by the AEAD.
        let mut swapped = back.clone();
        swapped.role = KeyRole::Channel;
        assert!(swapped.unlock(Some(b"hunter2!")).is_err());
        assert!(!format!("{back:?}").contains("ciphertext: ["));
    }

    #[test]
    fn strict_parsing() {
        let kp = KeyPair::generate();
        let f = KeyFile::plain(KeyRole::Channel, None, &kp);
        let text = String::from_utf8(f.to_bytes().to_vec()).unwrap();
        assert!(
            KeyFile::parse(text.replace("\"version\": 1", "\"version\": 2").as_bytes()).is_err()
        );
        assert!(
            KeyFile::parse(
                text.replace("\"role\"", "\"extra\": 1,\n  \"role\"")
                    .as_bytes()
            )
            .is_err()
        );
        assert!(KeyFile::parse(b"{}").is_err());
        assert!(KeyFile::parse(&vec![b' '; 20_000]).is_err());
        let no_secret = KeyFile::new(KeyRole::Channel, None, kp.public(), None, None);
        assert!(matches!(
            no_secret.unlock(None),
            Err(KeyFileError::NoSecret)
        ));
        // A hostile derivation record demanding 1 TiB of memory is refused at parse time.
        let d = cheap();
        let f = KeyFile::derived(KeyRole::Master, None, kp.public(), d);
        let t = String::from_utf8(f.to_bytes().to_vec()).unwrap();
        let hostile = t.replace("\"mem_limit\": 8192", "\"mem_limit\": 1099511627776");
        assert!(matches!(
            KeyFile::parse(hostile.as_bytes()),
            Err(KeyFileError::Kdf(_))
        ));
    }
}
