//! `hangar backup split|combine`: Shamir secret sharing of a key's 32-byte seed.
//!
//! `split` unlocks a key (asking its passphrase), takes its Ed25519 seed and deals N shares of
//! which any K recover it (`blahaj`, a maintained fork of `sharks`, over GF(256)). Each share is
//! printed as 32 words (see [`crate::shares`]) carrying a share id, the threshold, a random split
//! id and a checksum; with `--out-dir` the shares go to `share-<id>-of-<n>.txt` files, 0600 in a
//! 0700 folder, instead of stdout.
//!
//! `combine` reads shares (from files or stdin, one per line; lines starting with `#` are
//! ignored), refuses corrupt shares, shares of different splits, duplicates and too few shares,
//! recovers the seed, checks that it gives the expected public key, and only then writes a key
//! file (0600 in a 0700 folder). That file is sealed under a new passphrase by default
//! (XChaCha20-Poly1305 under an Argon2i key, [`KeyFile::encrypted`]), asked twice on the terminal
//! or read as the first line of standard input with `--passphrase-stdin`; `--plain` writes the
//! seed in the clear instead, with a loud warning. The seed sits in a `LockedBox`; blahaj's own
//! share buffers are heap vectors it zeroizes on drop but that are not mlocked.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use blahaj::{Share as SharkShare, Sharks};
use keyggdrasil::kdf::Level;
use keyggdrasil::keyfile::{KeyFile, KeyRole};
use keyggdrasil::keys::{KeyPair, PublicKey};
use keyggdrasil::names::SupplierName;
use keyggdrasil::os::lockmem::LockedBox;
use keyggdrasil::os::secretfile::{ensure_private_dir, write_secret_file};
use shipyard::keys::{LevelArg, local_dir, read_key_file, role_name, unlock};
use shipyard::output::{Output, warn_loudly};
use shipyard::passphrase;
use zeroize::Zeroizing;

use crate::Error;
use crate::shares::Share;

/// Largest share input read from stdin or a file.
const MAX_SHARE_INPUT: u64 = 256 * 1024;

/// The `hangar backup` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BackupCommand {
    /// Split a key's seed into N shares, any K of which recover it.
    Split(SplitArgs),
    /// Recover a key from K shares, check it against the expected public key, write a key file.
    Combine(CombineArgs),
}

/// Arguments of `hangar backup split`.
#[derive(Debug, clap::Args)]
pub struct SplitArgs {
    /// The key file whose seed to split.
    #[arg(long)]
    pub key: PathBuf,
    /// How many shares recover the key (2..=N).
    #[arg(long)]
    pub threshold: u8,
    /// How many shares to make (K..=255).
    #[arg(long)]
    pub shares: u8,
    /// Write each share to its own 0600 file in this (new or private) folder instead of stdout.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Read the key's passphrase from standard input.
    #[arg(long)]
    pub passphrase_stdin: bool,
}

/// Role of the recovered key.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    /// A master key.
    Master,
    /// A signing key.
    Signing,
}

/// Arguments of `hangar backup combine`.
#[derive(Debug, clap::Args)]
pub struct CombineArgs {
    /// The public key (64 hex) the recovered seed must give; nothing is written otherwise.
    #[arg(long)]
    pub expect: String,
    /// Where to write the recovered key file, 0600 (default: local/<role>-<fingerprint>.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Read the new passphrase that seals the key file from the first line of standard input
    /// (the shares, if not given as files, follow on the next lines).
    #[arg(long, conflicts_with = "plain")]
    pub passphrase_stdin: bool,
    /// Argon2i cost of the passphrase that seals the key file (default: sensitive for master,
    /// moderate for signing keys).
    #[arg(long, value_enum, conflicts_with = "plain")]
    pub level: Option<LevelArg>,
    /// UNSAFE: write the recovered seed in the clear (0600), sealed by no passphrase. Anyone who
    /// can read the file holds the key.
    #[arg(long)]
    pub plain: bool,
    /// Accept a sealing passphrase below the strength floor (zxcvbn score 3 of 4), with a loud
    /// warning. Not recommended: whoever copies the file can guess it offline.
    #[arg(long, conflicts_with = "plain")]
    pub allow_weak_passphrase: bool,
    /// The role recorded in the key file.
    #[arg(long, value_enum, default_value = "master")]
    pub role: RoleArg,
    /// The supplier recorded in the key file.
    #[arg(long)]
    pub supplier: Option<String>,
    /// Files holding shares, one per line (default: read the shares from standard input).
    pub files: Vec<PathBuf>,
}

/// Runs a `hangar backup` subcommand.
pub fn run(dir: &Path, out: &Output, cmd: BackupCommand) -> Result<(), Error> {
    match cmd {
        BackupCommand::Split(a) => split(out, a),
        BackupCommand::Combine(a) => combine(dir, out, a),
    }
}

fn split(out: &Output, a: SplitArgs) -> Result<(), Error> {
    if a.threshold < 2 || a.threshold > a.shares {
        return Err(Error::BadThreshold {
            threshold: a.threshold,
            shares: a.shares,
        });
    }
    let file = read_key_file(&a.key)?;
    if let Some(d) = &a.out_dir {
        ensure_private_dir(d)?;
        for id in 1..=a.shares {
            let p = share_path(d, id, a.shares);
            if p.exists() {
                return Err(Error::ShareExists { path: p });
            }
        }
    }
    let kp = crate::lock_keypair(unlock(&file, a.passphrase_stdin)?);
    let seed = LockedBox::new(*kp.seed());
    drop(kp);
    let split_id: [u8; 4] = keyggdrasil::os::random::bytes();
    let mut shares = Vec::with_capacity(usize::from(a.shares));
    for s in Sharks(a.threshold)
        .dealer(&seed[..])
        .take(usize::from(a.shares))
    {
        let mut value = Zeroizing::new([0u8; 32]);
        if s.y.len() != 32 {
            return Err(Error::ShareSize);
        }
        for (v, y) in value.iter_mut().zip(s.y.iter()) {
            *v = y.0;
        }
        shares.push(Share {
            split_id,
            threshold: a.threshold,
            id: s.x.0,
            value,
        });
    }
    drop(seed);
    let split_hex = hex::encode(split_id);
    let mut rows = Vec::new();
    match &a.out_dir {
        Some(d) => {
            for s in &shares {
                let p = share_path(d, s.id, a.shares);
                let text = Zeroizing::new(format!(
                    "# hangar backup share {} of {} (any {} recover key {}; split {split_hex})\n{}\n",
                    s.id,
                    a.shares,
                    a.threshold,
                    file.public_key.fingerprint(),
                    s.to_words().as_str()
                ));
                write_secret_file(&p, text.as_bytes(), false)?;
                rows.push(serde_json::json!({"id": s.id, "file": p}));
            }
            out.say(format!(
                "Wrote {} shares to {} (any {} recover key {}).",
                a.shares,
                d.display(),
                a.threshold,
                file.public_key.fingerprint()
            ));
        }
        None => {
            if !out.json {
                warn_loudly(
                    "the shares below are secret. Write each on paper for a different keeper; \
                     do not store them together.",
                );
            }
            for s in &shares {
                out.say(format!(
                    "# share {} of {} (any {} recover key {}; split {split_hex})\n{}",
                    s.id,
                    a.shares,
                    a.threshold,
                    file.public_key.fingerprint(),
                    s.to_words().as_str()
                ));
                rows.push(serde_json::json!({"id": s.id, "words": s.to_words().as_str()}));
            }
        }
    }
    out.json(serde_json::json!({
        "public_key": file.public_key.to_hex(),
        "split_id": split_hex,
        "threshold": a.threshold,
        "shares": rows,
    }));
    Ok(())
}

fn share_path(dir: &Path, id: u8, n: u8) -> PathBuf {
    dir.join(format!("share-{id}-of-{n}.txt"))
}

fn read_input(files: &[PathBuf]) -> Result<Zeroizing<String>, Error> {
    let mut text = Zeroizing::new(String::new());
    if files.is_empty() {
        std::io::stdin()
            .lock()
            .take(MAX_SHARE_INPUT)
            .read_to_string(&mut text)
            .map_err(Error::ReadStdin)?;
    }
    for f in files {
        let read_err = |source| Error::ReadShares {
            path: f.clone(),
            source,
        };
        let file = std::fs::File::open(f).map_err(read_err)?;
        let mut part = Zeroizing::new(String::new());
        file.take(MAX_SHARE_INPUT)
            .read_to_string(&mut part)
            .map_err(read_err)?;
        text.push_str(&part);
        text.push('\n');
    }
    Ok(text)
}

fn combine(dir: &Path, out: &Output, a: CombineArgs) -> Result<(), Error> {
    let expect = PublicKey::from_hex(&a.expect).map_err(Error::BadExpect)?;
    let supplier = a
        .supplier
        .as_deref()
        .map(SupplierName::parse)
        .transpose()
        .map_err(|source| Error::BadSupplier {
            value: a.supplier.clone().unwrap_or_default(),
            source,
        })?;
    let role = match a.role {
        RoleArg::Master => KeyRole::Master,
        RoleArg::Signing => KeyRole::Signing,
    };
    if !a.plain && !a.passphrase_stdin && !passphrase::can_prompt() {
        return Err(Error::NoTerminalToSeal);
    }
    // With --passphrase-stdin the passphrase is the first line of stdin, before any shares.
    let stdin_pass = if a.passphrase_stdin {
        Some(passphrase::read_stdin_line()?)
    } else {
        None
    };
    let text = read_input(&a.files)?;
    let mut shares: Vec<Share> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let s = Share::from_words(line).map_err(|reason| Error::CorruptShare {
            line: n + 1,
            reason,
        })?;
        shares.push(s);
    }
    let first = shares.first().ok_or(Error::NoShares)?;
    let (split_id, threshold) = (first.split_id, first.threshold);
    if shares
        .iter()
        .any(|s| s.split_id != split_id || s.threshold != threshold)
    {
        return Err(Error::MixedSplits);
    }
    let ids: BTreeSet<u8> = shares.iter().map(|s| s.id).collect();
    if ids.len() != shares.len() {
        return Err(Error::DuplicateShare);
    }
    if threshold < 2 || shares.len() < usize::from(threshold) {
        return Err(Error::TooFewShares {
            needed: threshold,
            given: shares.len(),
        });
    }
    let sharks: Vec<SharkShare> = shares
        .iter()
        .map(|s| {
            let mut bytes = Zeroizing::new(Vec::with_capacity(33));
            bytes.push(s.id);
            bytes.extend_from_slice(&s.value[..]);
            SharkShare::try_from(&bytes[..])
        })
        .collect::<Result<_, _>>()
        .map_err(Error::BadShare)?;
    let recovered = Zeroizing::new(
        Sharks(threshold)
            .recover(&sharks)
            .map_err(|e| Error::Recover(e.to_owned()))?,
    );
    drop(sharks);
    let mut seed = LockedBox::new([0u8; 32]);
    if recovered.len() != 32 {
        return Err(Error::SeedLength);
    }
    seed.copy_from_slice(&recovered);
    drop(recovered);
    let kp = crate::lock_keypair(KeyPair::from_seed(&seed).map_err(Error::BadSeed)?);
    drop(seed);
    if kp.public() != expect {
        return Err(Error::WrongRecoveredKey {
            got: kp.public(),
            expected: expect,
        });
    }
    let path = match a.out {
        Some(p) => p,
        None => {
            let local = local_dir(dir);
            ensure_private_dir(&local)?;
            local.join(format!("{}-{}.json", role_name(role), expect.fingerprint()))
        }
    };
    let file = if a.plain {
        warn_loudly(
            "--plain: the recovered seed is written IN THE CLEAR. Anyone who can read this file \
             holds the key; keep it on the air-gapped machine and seal it under a passphrase soon.",
        );
        KeyFile::plain(role, supplier, &kp)
    } else {
        let pass = match stdin_pass {
            Some(p) => p,
            None => passphrase::for_new(false, None)?.0,
        };
        // The same floor as a new key's: the sealed file is the key, and a stolen copy can be
        // guessed offline at leisure. Checked before anything is derived or written.
        let mut context = vec![crate::TOOL.name];
        if let Some(s) = &supplier {
            context.push(s.as_str());
        }
        passphrase::check_strength(&pass, a.allow_weak_passphrase, &context)?;
        let level = a
            .level
            .map(Level::from)
            .unwrap_or_else(|| KeyFile::default_level(role));
        let derivation = passphrase::new_derivation(&crate::TOOL, level);
        eprintln!(
            "Sealing the recovered key under the new passphrase (Argon2i, {} passes over {} MiB)...",
            derivation.ops_limit,
            derivation.mem_limit / (1024 * 1024)
        );
        KeyFile::encrypted(role, supplier, &kp, &pass, derivation).map_err(Error::Seal)?
    };
    drop(kp);
    write_secret_file(&path, &file.to_bytes(), false)?;
    out.say(format!(
        "Recovered {} key {} from {} shares.\nkey file: {} ({}: keep it on this machine)",
        role_name(role),
        expect.fingerprint(),
        shares.len(),
        path.display(),
        if a.plain {
            "holds the secret seed IN THE CLEAR"
        } else {
            "sealed under the new passphrase"
        }
    ));
    out.json(serde_json::json!({
        "role": role_name(role),
        "public_key": expect.to_hex(),
        "fingerprint": expect.fingerprint(),
        "file": path,
        "shares_used": shares.len(),
        "sealed": !a.plain,
    }));
    Ok(())
}
