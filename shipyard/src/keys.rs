//! The private key folder (`local/`) and the key commands both CLIs share: `key new`,
//! `key list`, `key from-passphrase`, plus finding, reading and unlocking key files.
//!
//! Passphrase-derived keys are stored as key files holding only the public key and the
//! derivation record (salt and Argon2i costs), in `local/<role>-<fingerprint>.json` (0600 in a
//! 0700 folder). The secret key is rebuilt from the passphrase each time it is used. A key file
//! that group or others can read, or in a folder they can enter, is refused.

use std::path::{Path, PathBuf};

use keyggdrasil::kdf::{Derivation, Level};
use keyggdrasil::keyfile::{KeyFile, KeyFileError, KeyRole, MAX_KEY_FILE_BYTES};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::names::SupplierName;
use keyggdrasil::os::secretfile::{ensure_private_dir, read_secret_file, write_secret_file};

use crate::Tool;
use crate::error::Error;
use crate::output::Output;
use crate::passphrase;

/// Name of the private folder for key files inside the author folder.
pub const LOCAL_NAME: &str = "local";

/// The path of `local/` inside `dir`.
pub fn local_dir(dir: &Path) -> PathBuf {
    dir.join(LOCAL_NAME)
}

/// Argon2i cost levels.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LevelArg {
    /// ops 4, 32 MiB.
    Interactive,
    /// ops 6, 128 MiB (default for signing keys).
    Moderate,
    /// ops 8, 512 MiB (default for master keys).
    Sensitive,
}

impl From<LevelArg> for Level {
    fn from(l: LevelArg) -> Self {
        match l {
            LevelArg::Interactive => Level::Interactive,
            LevelArg::Moderate => Level::Moderate,
            LevelArg::Sensitive => Level::Sensitive,
        }
    }
}

/// Arguments of `key new`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("role").required(true).args(["master", "signing"])))]
#[command(group(clap::ArgGroup::new("source").required(false).multiple(false).args(["passphrase_stdin", "generate_words"])))]
pub struct NewArgs {
    /// A master key (registers and revokes keys).
    #[arg(long)]
    pub master: bool,
    /// A signing key (signs releases).
    #[arg(long)]
    pub signing: bool,
    /// Argon2i cost level (default: sensitive for master, moderate for signing keys).
    #[arg(long, value_enum)]
    pub level: Option<LevelArg>,
    /// Read the passphrase as one line from standard input (default: ask twice on the terminal).
    #[arg(long)]
    pub passphrase_stdin: bool,
    /// Generate a passphrase of 12 or 24 words, shown once on stderr.
    #[arg(long, value_parser = ["12", "24"])]
    pub generate_words: Option<String>,
    /// Accept a passphrase below the strength floor (zxcvbn score 3 of 4), with a loud
    /// warning. Not recommended: the key's salt and costs are public, so it can be guessed
    /// offline.
    #[arg(long, conflicts_with = "generate_words")]
    pub allow_weak_passphrase: bool,
}

/// Arguments of `key from-passphrase`.
#[derive(Debug, clap::Args)]
pub struct FromPassphraseArgs {
    /// The recorded salt (32 hex digits).
    #[arg(long)]
    pub salt: String,
    /// The recorded Argon2i ops limit.
    #[arg(long)]
    pub ops_limit: u32,
    /// The recorded Argon2i memory limit in bytes.
    #[arg(long)]
    pub mem_limit: u64,
    /// Read the passphrase as one line from standard input (default: ask on the terminal).
    #[arg(long)]
    pub passphrase_stdin: bool,
}

/// The lowercase name of a key role.
pub fn role_name(role: KeyRole) -> &'static str {
    match role {
        KeyRole::Master => "master",
        KeyRole::Signing => "signing",
        KeyRole::Channel => "channel",
        KeyRole::Notary => "notary",
    }
}

/// Reads and parses a key file, refusing one that group or others can read.
pub fn read_key_file(path: &Path) -> Result<KeyFile, Error> {
    let bytes = read_secret_file(path, MAX_KEY_FILE_BYTES)?;
    KeyFile::parse(&bytes).map_err(|source| Error::KeyFile {
        path: path.to_path_buf(),
        source,
    })
}

/// All key files (`*.json`) in `local/`, sorted by name. Any unreadable or corrupt one is an
/// error naming it, so a damaged key is noticed rather than silently skipped.
pub fn all_keys(dir: &Path) -> Result<Vec<(PathBuf, KeyFile)>, Error> {
    let local = local_dir(dir);
    let rd = match std::fs::read_dir(&local) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::ListKeys {
                path: local,
                source,
            });
        }
    };
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| read_key_file(&p).map(|k| (p, k)))
        .collect()
}

/// The key file given, or the only key of `role` in `local/`.
pub fn find_key(
    tool: &Tool,
    dir: &Path,
    role: KeyRole,
    explicit: Option<&Path>,
) -> Result<(PathBuf, KeyFile), Error> {
    if let Some(p) = explicit {
        let k = read_key_file(p)?;
        if k.role != role {
            return Err(Error::WrongRole {
                path: p.to_path_buf(),
                found: k.role,
                wanted: role,
            });
        }
        return Ok((p.to_path_buf(), k));
    }
    let mut found: Vec<_> = all_keys(dir)?
        .into_iter()
        .filter(|(_, k)| k.role == role)
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::NoKey {
            role,
            local: local_dir(dir),
            tool: tool.name,
        }),
        count => Err(Error::AmbiguousKey {
            count,
            role,
            local: local_dir(dir),
        }),
    }
}

/// Unlocks a key file, reading the passphrase if it needs one (standard input or the
/// terminal), with a progress indicator for slow derivations. A wrong passphrase is
/// [`Error::Unlock`] of kind [`crate::ErrorKind::Rejected`].
pub fn unlock(file: &KeyFile, passphrase_stdin: bool) -> Result<KeyPair, Error> {
    if !file.needs_passphrase() {
        return file.unlock(None).map_err(|source| Error::Unlock {
            public_key: file.public_key,
            source,
        });
    }
    let pass = passphrase::for_unlock(passphrase_stdin)?;
    if let (Some(d), None) = (&file.derivation, &file.secret) {
        let kp = passphrase::derive_with_progress(d, &pass)?;
        if kp.public() != file.public_key {
            return Err(Error::Unlock {
                public_key: file.public_key,
                source: KeyFileError::WrongPassphrase(file.public_key),
            });
        }
        return Ok(kp);
    }
    file.unlock(Some(&pass)).map_err(|source| Error::Unlock {
        public_key: file.public_key,
        source,
    })
}

/// Runs `key new`: derives a new key from a passphrase with a fresh salt and writes its key
/// file (public key and derivation record only) to `local/`.
pub fn new_key(
    tool: &Tool,
    dir: &Path,
    out: &Output,
    supplier: Option<SupplierName>,
    a: NewArgs,
) -> Result<(), Error> {
    let role = if a.master {
        KeyRole::Master
    } else {
        KeyRole::Signing
    };
    let level = a
        .level
        .map(Level::from)
        .unwrap_or_else(|| KeyFile::default_level(role));
    let local = local_dir(dir);

    let (pass, generated) = passphrase::for_new(a.passphrase_stdin, a.generate_words.as_deref())?;
    if !generated {
        // Before any derivation or file: a refused passphrase leaves nothing behind.
        let mut context = vec![tool.name];
        if let Some(s) = &supplier {
            context.push(s.as_str());
        }
        passphrase::check_strength(&pass, a.allow_weak_passphrase, &context)?;
    }
    ensure_private_dir(&local)?;
    let derivation = passphrase::new_derivation(tool, level);
    eprintln!(
        "Deriving the {} key (Argon2i, {} passes over {} MiB); this can take a while...",
        role_name(role),
        derivation.ops_limit,
        derivation.mem_limit / (1024 * 1024)
    );
    let keypair = passphrase::derive_with_progress(&derivation, &pass)?;
    let public = keypair.public();
    drop(keypair);
    let file = KeyFile::derived(role, supplier.clone(), public, derivation);
    let path = local.join(format!("{}-{}.json", role_name(role), public.fingerprint()));
    write_secret_file(&path, &file.to_bytes(), false)?;

    if generated {
        passphrase::show_generated_once(&pass);
    }
    out.say(format!(
        "New {} key{}\npublic key:  {}\nfingerprint: {}\nkey file:    {}",
        role_name(role),
        supplier
            .as_ref()
            .map(|s| format!(" for supplier {}", s.as_str()))
            .unwrap_or_default(),
        public.to_hex(),
        public.fingerprint(),
        path.display()
    ));
    out.json(serde_json::json!({
        "role": role_name(role),
        "public_key": public.to_hex(),
        "fingerprint": public.fingerprint(),
        "file": path,
    }));
    Ok(())
}

/// Runs `key list`.
pub fn list(dir: &Path, out: &Output) -> Result<(), Error> {
    let keys = all_keys(dir)?;
    if keys.is_empty() {
        out.say(format!("No keys in {}.", local_dir(dir).display()));
    }
    let mut rows = Vec::new();
    for (path, k) in &keys {
        out.say(format!(
            "{:<8} {}  {}  {}",
            role_name(k.role),
            k.public_key.to_hex(),
            k.public_key.fingerprint(),
            path.display()
        ));
        rows.push(serde_json::json!({
            "role": role_name(k.role),
            "public_key": k.public_key.to_hex(),
            "fingerprint": k.public_key.fingerprint(),
            "file": path,
            "derivation": k.derivation,
            "stores_secret": k.secret.is_some(),
        }));
    }
    out.json(serde_json::Value::Array(rows));
    Ok(())
}

/// Runs `key from-passphrase`: prints the public key (lowercase hex on its own line, or JSON).
pub fn from_passphrase(out: &Output, a: FromPassphraseArgs) -> Result<(), Error> {
    let salt = passphrase::parse_salt(&a.salt)?;
    let d = Derivation::with_salt(salt, a.ops_limit, a.mem_limit);
    d.validate().map_err(Error::BadCosts)?;
    let pass = passphrase::for_unlock(a.passphrase_stdin)?;
    let kp = passphrase::derive_with_progress(&d, &pass)?;
    let public = kp.public();
    if out.json {
        out.json(serde_json::json!({
            "public_key": public.to_hex(),
            "fingerprint": public.fingerprint(),
        }));
    } else {
        println!("{}", public.to_hex());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyggdrasil::keyfile::KeyFile;
    use std::os::unix::fs::PermissionsExt;

    const TOOL: Tool = Tool {
        name: "tool",
        test_kdf_env: "SHIPYARD_TEST_KDF_UNUSED",
    };

    fn write_key(dir: &Path, role: KeyRole) -> (PathBuf, KeyPair) {
        let local = local_dir(dir);
        ensure_private_dir(&local).unwrap();
        let kp = KeyPair::generate();
        let file = KeyFile::plain(role, None, &kp);
        let path = local.join(format!(
            "{}-{}.json",
            role_name(role),
            kp.public().fingerprint()
        ));
        write_secret_file(&path, &file.to_bytes(), false).unwrap();
        (path, kp)
    }

    #[test]
    fn find_key_picks_the_only_key_of_a_role_and_names_the_tool_when_none() {
        let d = tempfile::tempdir().unwrap();
        let e = find_key(&TOOL, d.path(), KeyRole::Master, None).unwrap_err();
        assert!(e.to_string().contains("`tool key new --master`"), "{e}");
        let (p, kp) = write_key(d.path(), KeyRole::Master);
        let (found, file) = find_key(&TOOL, d.path(), KeyRole::Master, None).unwrap();
        assert_eq!(found, p);
        assert_eq!(file.public_key, kp.public());
        // A signing key asked for, a master key given explicitly: usage error.
        let e = find_key(&TOOL, d.path(), KeyRole::Signing, Some(&p)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Usage);
        write_key(d.path(), KeyRole::Master);
        let e = find_key(&TOOL, d.path(), KeyRole::Master, None).unwrap_err();
        assert!(e.to_string().contains("2 master keys"), "{e}");
    }

    #[test]
    fn unlock_of_a_plain_key_needs_no_passphrase_and_exposed_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let (p, kp) = write_key(d.path(), KeyRole::Signing);
        let file = read_key_file(&p).unwrap();
        assert_eq!(unlock(&file, false).unwrap().public(), kp.public());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let Err(e) = read_key_file(&p) else {
            panic!("an exposed key file is refused");
        };
        assert_eq!(e.kind(), crate::ErrorKind::Local);
        assert!(
            crate::report(&e).contains("chmod 600"),
            "{}",
            crate::report(&e)
        );
        assert!(all_keys(d.path()).is_err());
    }
}
