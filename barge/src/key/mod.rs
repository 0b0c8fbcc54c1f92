//! `barge key …`: create, list, recover, register, add and revoke supplier keys, and naming
//! keys on the command line ([`resolve`]).
//!
//! The submodules use `shipyard` and their siblings, never this file's items, so imports run
//! one way only (this file → `revoke`, `resolve`; `revoke` → `resolve`).
//!
//! Passphrase-derived keys are stored as key files holding only the public key and the
//! derivation record (salt and Argon2i costs), in `local/<role>-<fingerprint>.json` (0600 in a
//! 0700 folder). The secret key is rebuilt from the passphrase each time it is used.

use std::path::{Path, PathBuf};

use keyggdrasil::entry::Event;
use keyggdrasil::keyfile::{KeyFile, KeyRole};
use keyggdrasil::keys::KeyPair;

use crate::config;
use crate::error::Error;
use crate::http::Client;
use crate::output::Output;
use crate::passphrase;

mod resolve;
pub mod revoke;

pub use resolve::resolve;

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
    /// Submit a signing key (or, with `--new-master`, another master key), signed by a current
    /// master key, to the channel.
    Add(AddArgs),
    /// Revoke a master or signing key with an entry signed by another current master key.
    Revoke(revoke::Args),
}

// `LevelArg` stays importable from here for other subcommands.
#[allow(unused_imports)]
pub use shipyard::keys::{FromPassphraseArgs, LevelArg, NewArgs};

/// Arguments of `barge key register`.
#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    /// The master key file (default: the only master key in `local/`).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Read the master key's passphrase from standard input.
    #[arg(long)]
    pub passphrase_stdin: bool,
    /// Invite token, where the channel's policy needs one for a new supplier. Visible to
    /// other local users in the process list and kept in shell history: prefer
    /// `--invite-file`.
    #[arg(long, conflicts_with = "invite_file")]
    pub invite: Option<String>,
    /// Read the invite token from this file (its first line), so that it stays out of the
    /// command line.
    #[arg(long, value_name = "FILE")]
    pub invite_file: Option<PathBuf>,
}

/// Largest invite file read (a token is a few dozen characters).
const MAX_INVITE_FILE_BYTES: u64 = 4096;

/// The invite token of `--invite` or the first line of `--invite-file`, if either is given.
fn invite_token(a: &RegisterArgs) -> Result<Option<String>, Error> {
    let Some(path) = &a.invite_file else {
        return Ok(a.invite.clone());
    };
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_INVITE_FILE_BYTES).read_to_string(&mut text))
        .map_err(crate::error::io_at("could not read the invite file", path))?;
    Ok(Some(
        text.lines().next().unwrap_or_default().trim().to_owned(),
    ))
}

/// Arguments of `barge key add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The signing key file to add (default: the only signing key in `local/`).
    #[arg(long, conflicts_with = "new_master")]
    pub signing_key: Option<PathBuf>,
    /// Add this master key file instead (a second master key, so that one master key can
    /// later revoke the other), signed by the current master key given with `--master-key`.
    #[arg(long, requires = "master_key")]
    pub new_master: Option<PathBuf>,
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
        KeyCommand::Revoke(a) => revoke::run(dir, out, a),
    }
}

fn new(dir: &Path, out: &Output, a: NewArgs) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    Ok(shipyard::keys::new_key(
        &passphrase::TOOL,
        dir,
        out,
        Some(cfg.supplier),
        a,
    )?)
}

/// Reads and parses a key file, refusing one that group or others can read.
pub fn read_key_file(path: &Path) -> Result<KeyFile, Error> {
    Ok(shipyard::keys::read_key_file(path)?)
}

/// The key file given, or the only key of `role` in `local/`.
pub fn find_key(
    dir: &Path,
    role: KeyRole,
    explicit: Option<&Path>,
) -> Result<(PathBuf, KeyFile), Error> {
    Ok(shipyard::keys::find_key(
        &passphrase::TOOL,
        dir,
        role,
        explicit,
    )?)
}

/// Unlocks a key file, reading the passphrase if it needs one. A wrong passphrase is
/// [`shipyard::Error::Unlock`] (kind `Rejected`).
pub fn unlock(file: &KeyFile, passphrase_stdin: bool) -> Result<KeyPair, Error> {
    Ok(shipyard::keys::unlock(file, passphrase_stdin)?)
}

fn list(dir: &Path, out: &Output) -> Result<(), Error> {
    Ok(shipyard::keys::list(dir, out)?)
}

fn from_passphrase(out: &Output, a: FromPassphraseArgs) -> Result<(), Error> {
    Ok(shipyard::keys::from_passphrase(out, a)?)
}

fn register(dir: &Path, out: &Output, a: RegisterArgs) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let invite = invite_token(&a)?;
    let (path, file) = find_key(dir, KeyRole::Master, a.key.as_deref())?;
    // Pin first: no passphrase is asked for, and nothing sent, for a channel without the key.
    let client = Client::pinned(&cfg, out)?;
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
    out.step(format!("Submitting the master key to {}...", cfg.channel));
    let (_, resp, checkpoint) = client.sign_and_log(&cfg.supplier, master, event, invite)?;
    report_submit(out, "master key", &file, &resp, &checkpoint);
    Ok(())
}

fn add(dir: &Path, out: &Output, a: AddArgs) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let (what, added) = match &a.new_master {
        Some(p) => ("master key", find_key(dir, KeyRole::Master, Some(p))?.1),
        None => (
            "signing key",
            find_key(dir, KeyRole::Signing, a.signing_key.as_deref())?.1,
        ),
    };
    let (mpath, mfile) = find_key(dir, KeyRole::Master, a.master_key.as_deref())?;
    if mfile.public_key == added.public_key {
        // The channel would refuse it too (already registered), but a key cannot vouch for
        // itself: say so before asking for a passphrase.
        return Err(Error::SelfSigning {
            key: added.public_key,
        });
    }
    // Pin first: no passphrase is asked for, and nothing sent, for a channel without the key.
    let client = Client::pinned(&cfg, out)?;
    out.step(format!(
        "Unlocking master key {} ({})...",
        mfile.public_key.fingerprint(),
        mpath.display()
    ));
    let master = unlock(&mfile, a.passphrase_stdin)?;
    let event = if a.new_master.is_some() {
        Event::MasterKey {
            public_key: added.public_key,
            derivation: added.derivation.clone(),
        }
    } else {
        Event::SigningKey {
            public_key: added.public_key,
            derivation: added.derivation.clone(),
        }
    };
    out.step(format!(
        "Submitting {what} {} to {}...",
        added.public_key.fingerprint(),
        cfg.channel
    ));
    let (_, resp, checkpoint) = client.sign_and_log(&cfg.supplier, master, event, None)?;
    report_submit(out, what, &added, &resp, &checkpoint);
    Ok(())
}

fn report_submit(
    out: &Output,
    what: &str,
    file: &KeyFile,
    resp: &keyggdrasil::wire::SubmitResponse,
    checkpoint: &keyggdrasil::wire::VerifiedCheckpoint,
) {
    out.say(format!(
        "The channel logged the {what} {} at index {} (log size {}){}; it is included under the \
         checkpoint of size {} signed by the pinned channel key.",
        file.public_key.fingerprint(),
        resp.index,
        resp.size,
        if resp.duplicate {
            "; it was already there"
        } else {
            ""
        },
        checkpoint.size()
    ));
    out.json(serde_json::json!({
        "public_key": file.public_key.to_hex(),
        "fingerprint": file.public_key.fingerprint(),
        "index": resp.index,
        "size": resp.size,
        "duplicate": resp.duplicate,
        "checkpoint_size": checkpoint.size(),
        "included": true,
    }));
}
