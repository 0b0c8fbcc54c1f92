//! `barge key …`: create, list, recover and register supplier keys.
//!
//! Passphrase-derived keys are stored as key files holding only the public key and the
//! derivation record (salt and Argon2i costs), in `local/<role>-<fingerprint>.json` (0600 in a
//! 0700 folder). The secret key is rebuilt from the passphrase each time it is used.

use std::path::{Path, PathBuf};

use keyggdrasil::entry::{Entry, EntryBody, Event};
use keyggdrasil::kdf::{Derivation, Level, WordCount, generate_passphrase};
use keyggdrasil::keyfile::{KeyFile, KeyFileError, KeyRole, MAX_KEY_FILE_BYTES};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::secretfile::{ensure_private_dir, read_secret_file, write_secret_file};
use zeroize::Zeroizing;

use crate::config::{self, local_dir};
use crate::error::{Error, failed};
use crate::http::Client;
use crate::output::{Output, warn_loudly};
use crate::passphrase;

/// The `barge key` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// Derive a new master or signing key from a passphrase (Argon2i, fresh salt).
    New(NewArgs),
    /// List the key files in `local/`.
    List,
    /// Re-derive a key from its passphrase and recorded salt and costs; prints the public key.
    FromPassphrase(FromPassphraseArgs),
    /// Submit the master key's self-signed registration to the channel.
    Register(RegisterArgs),
    /// Submit a signing key, signed by the master key, to the channel.
    Add(AddArgs),
    /// Revoke a master or signing key with an entry signed by another current master key.
    Revoke(crate::key_revoke::Args),
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

/// Arguments of `barge key new`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("role").required(true).args(["master", "signing"])))]
#[command(group(clap::ArgGroup::new("source").required(true).args(["passphrase_stdin", "generate_words"])))]
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
    /// Read the passphrase as one line from standard input.
    #[arg(long)]
    pub passphrase_stdin: bool,
    /// Generate a passphrase of 12 or 24 words, shown once on stderr.
    #[arg(long, value_parser = ["12", "24"])]
    pub generate_words: Option<String>,
}

/// Arguments of `barge key from-passphrase`.
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
    /// Read the passphrase as one line from standard input (the only way for now).
    #[arg(long)]
    pub passphrase_stdin: bool,
}

/// Arguments of `barge key register`.
#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    /// The master key file (default: the only master key in `local/`).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Read the master key's passphrase from standard input.
    #[arg(long)]
    pub passphrase_stdin: bool,
    /// Invite token, where the channel's policy needs one for a new supplier.
    #[arg(long)]
    pub invite: Option<String>,
}

/// Arguments of `barge key add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The signing key file to add (default: the only signing key in `local/`).
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
    /// The master key file that signs (default: the only master key in `local/`).
    #[arg(long)]
    pub master_key: Option<PathBuf>,
    /// Read the master key's passphrase from standard input.
    #[arg(long)]
    pub passphrase_stdin: bool,
}

/// Runs a `barge key` subcommand.
pub fn run(dir: &Path, out: &Output, cmd: KeyCommand) -> Result<(), Error> {
    match cmd {
        KeyCommand::New(a) => new(dir, out, a),
        KeyCommand::List => list(dir, out),
        KeyCommand::FromPassphrase(a) => from_passphrase(out, a),
        KeyCommand::Register(a) => register(dir, out, a),
        KeyCommand::Add(a) => add(dir, out, a),
        KeyCommand::Revoke(a) => crate::key_revoke::run(dir, out, a),
    }
}

fn role_name(role: KeyRole) -> &'static str {
    match role {
        KeyRole::Master => "master",
        KeyRole::Signing => "signing",
        KeyRole::Channel => "channel",
        KeyRole::Notary => "notary",
    }
}

fn new(dir: &Path, out: &Output, a: NewArgs) -> Result<(), Error> {
    let cfg = config::load(dir)?;
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
    ensure_private_dir(&local).map_err(|e| Error::Failed(e.to_string()))?;

    let (pass, generated): (Zeroizing<Vec<u8>>, bool) = match a.generate_words.as_deref() {
        Some(n) => {
            let words = if n == "24" {
                WordCount::TwentyFour
            } else {
                WordCount::Twelve
            };
            let phrase = generate_passphrase(words).map_err(|e| Error::Failed(e.to_string()))?;
            (Zeroizing::new(phrase.as_bytes().to_vec()), true)
        }
        None => (passphrase::read_stdin_line()?, false),
    };
    let derivation = passphrase::new_derivation(level);
    eprintln!(
        "Deriving the {} key (Argon2i, {} passes over {} MiB); this can take a while...",
        role_name(role),
        derivation.ops_limit,
        derivation.mem_limit / (1024 * 1024)
    );
    let keypair = derivation
        .derive_keypair(&pass)
        .map_err(|e| Error::Failed(format!("key derivation failed: {e}")))?;
    let public = keypair.public();
    let file = KeyFile::derived(role, Some(cfg.supplier.clone()), public, derivation);
    let path = local.join(format!("{}-{}.json", role_name(role), public.fingerprint()));
    write_secret_file(&path, &file.to_bytes(), false).map_err(|e| Error::Failed(e.to_string()))?;

    if generated {
        // Shown once, on stderr only, so `--json` output and logs of stdout never carry it.
        eprintln!();
        warn_loudly(
            "this is your new passphrase. It is shown ONCE and stored NOWHERE. \
             Write it down on paper now; without it this key is lost.",
        );
        eprintln!("\n    {}\n", String::from_utf8_lossy(&pass));
    }
    out.say(format!(
        "New {} key for supplier {}\npublic key:  {}\nfingerprint: {}\nkey file:    {}",
        role_name(role),
        cfg.supplier.as_str(),
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

/// Reads and parses a key file, refusing one that group or others can read.
pub fn read_key_file(path: &Path) -> Result<KeyFile, Error> {
    let bytes =
        read_secret_file(path, MAX_KEY_FILE_BYTES).map_err(|e| Error::Failed(e.to_string()))?;
    KeyFile::parse(&bytes).map_err(failed(format!("key file {}", path.display())))
}

/// All key files in `local/`, sorted by name.
pub fn all_keys(dir: &Path) -> Result<Vec<(PathBuf, KeyFile)>, Error> {
    let local = local_dir(dir);
    let rd = match std::fs::read_dir(&local) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(failed(format!("could not list {}", local.display()))(e)),
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
    dir: &Path,
    role: KeyRole,
    explicit: Option<&Path>,
) -> Result<(PathBuf, KeyFile), Error> {
    if let Some(p) = explicit {
        let k = read_key_file(p)?;
        if k.role != role {
            return Err(Error::Usage(format!(
                "{} is a {} key, not a {} key",
                p.display(),
                role_name(k.role),
                role_name(role)
            )));
        }
        return Ok((p.to_path_buf(), k));
    }
    let mut found: Vec<_> = all_keys(dir)?
        .into_iter()
        .filter(|(_, k)| k.role == role)
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::Usage(format!(
            "no {} key in {} (create one with `barge key new --{}`)",
            role_name(role),
            local_dir(dir).display(),
            role_name(role)
        ))),
        n => Err(Error::Usage(format!(
            "{n} {} keys in {}; say which one with a key file option",
            role_name(role),
            local_dir(dir).display()
        ))),
    }
}

/// Unlocks a key file, reading the passphrase if it needs one. A wrong passphrase is
/// [`Error::Invalid`].
pub fn unlock(file: &KeyFile, passphrase_stdin: bool) -> Result<KeyPair, Error> {
    let pass = if file.needs_passphrase() {
        Some(passphrase::for_unlock(passphrase_stdin)?)
    } else {
        None
    };
    file.unlock(pass.as_ref().map(|p| p.as_slice()))
        .map_err(|e| match e {
            KeyFileError::WrongPassphrase(_) => Error::Invalid(e.to_string()),
            other => Error::Failed(other.to_string()),
        })
}

fn list(dir: &Path, out: &Output) -> Result<(), Error> {
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
        }));
    }
    out.json(serde_json::Value::Array(rows));
    Ok(())
}

fn from_passphrase(out: &Output, a: FromPassphraseArgs) -> Result<(), Error> {
    let salt = passphrase::parse_salt(&a.salt)?;
    let d = Derivation::with_salt(salt, a.ops_limit, a.mem_limit);
    d.validate().map_err(|e| Error::Usage(e.to_string()))?;
    let pass = passphrase::for_unlock(a.passphrase_stdin)?;
    let kp = d
        .derive_keypair(&pass)
        .map_err(|e| Error::Failed(format!("key derivation failed: {e}")))?;
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

fn register(dir: &Path, out: &Output, a: RegisterArgs) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let (path, file) = find_key(dir, KeyRole::Master, a.key.as_deref())?;
    out.step(format!(
        "Unlocking master key {} ({})...",
        file.public_key.fingerprint(),
        path.display()
    ));
    let master = unlock(&file, a.passphrase_stdin)?;
    let event = Event::MasterKey {
        public_key: master.public(),
        derivation: file.derivation.clone(),
    };
    let entry = Entry::sign(
        EntryBody::new(cfg.supplier.clone(), master.public(), event),
        &master,
    )
    .map_err(failed("could not sign the entry"))?;
    let client = Client::new(&cfg);
    out.step(format!("Submitting the master key to {}...", cfg.channel));
    let resp = client.submit(&entry, a.invite)?;
    report_submit(out, "master key", &file, &resp);
    Ok(())
}

fn add(dir: &Path, out: &Output, a: AddArgs) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let (_, signing) = find_key(dir, KeyRole::Signing, a.signing_key.as_deref())?;
    let (mpath, mfile) = find_key(dir, KeyRole::Master, a.master_key.as_deref())?;
    out.step(format!(
        "Unlocking master key {} ({})...",
        mfile.public_key.fingerprint(),
        mpath.display()
    ));
    let master = unlock(&mfile, a.passphrase_stdin)?;
    let event = Event::SigningKey {
        public_key: signing.public_key,
        derivation: signing.derivation.clone(),
    };
    let entry = Entry::sign(
        EntryBody::new(cfg.supplier.clone(), master.public(), event),
        &master,
    )
    .map_err(failed("could not sign the entry"))?;
    let client = Client::new(&cfg);
    out.step(format!(
        "Submitting signing key {} to {}...",
        signing.public_key.fingerprint(),
        cfg.channel
    ));
    let resp = client.submit(&entry, None)?;
    report_submit(out, "signing key", &signing, &resp);
    Ok(())
}

fn report_submit(
    out: &Output,
    what: &str,
    file: &KeyFile,
    resp: &keyggdrasil::wire::SubmitResponse,
) {
    out.say(format!(
        "The channel logged the {what} {} at index {} (log size {}){}.",
        file.public_key.fingerprint(),
        resp.index,
        resp.size,
        if resp.duplicate {
            "; it was already there"
        } else {
            ""
        }
    ));
    out.json(serde_json::json!({
        "public_key": file.public_key.to_hex(),
        "fingerprint": file.public_key.fingerprint(),
        "index": resp.index,
        "size": resp.size,
        "duplicate": resp.duplicate,
    }));
}
