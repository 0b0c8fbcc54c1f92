//! `barge release`: build, sign, submit the release entry, upload the archive, then check that
//! the entry is in the log under a checkpoint signed by the pinned channel key.

use std::path::{Path, PathBuf};

use keyggdrasil::entry::{Digest512, Entry, EntryBody, Event, GitCommit};
use keyggdrasil::filesig;
use keyggdrasil::keyfile::KeyRole;

use crate::build::{build, default_out, write_file};
use crate::config;
use crate::error::{Error, Misbehaved};
use crate::http::{Client, show_progress};
use crate::key::{find_key, unlock};
use crate::output::Output;

/// Arguments of `barge release`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The package's source folder (a clean git checkout).
    pub source: PathBuf,
    /// Package name.
    #[arg(long)]
    pub package: String,
    /// Version.
    #[arg(long)]
    pub version: String,
    /// The signing key file (default: the only signing key in `local/`).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Read the signing key's passphrase from standard input.
    #[arg(long)]
    pub passphrase_stdin: bool,
    /// Release even from a dirty or non-git tree. UNSAFE: nobody can reproduce the archive.
    #[arg(long)]
    pub allow_dirty: bool,
    /// A staged rollout, signed into the release entry: `1%,10%@+6h,100%@+24h` (times relative
    /// to now: s, m, h, d; or `@UNIX_SECONDS`; a wave without `@` starts now), or `now` (everyone
    /// at once, said explicitly). Default: no schedule, everyone at once. Each site installs
    /// when its own bucket is inside the current wave; change it later with `barge rollout`.
    #[arg(long)]
    pub rollout: Option<String>,
}

/// Runs `barge release`.
pub fn run(dir: &Path, out: &Output, a: Args) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Parsed before anything is built or unlocked, so a typo costs nothing.
    let rollout = a
        .rollout
        .as_deref()
        .map(|t| crate::rollout::parse_spec(t, now))
        .transpose()?
        .map(|waves| keyggdrasil::rollout::Rollout {
            waves,
            paused: false,
        });
    let (kpath, kfile) = find_key(dir, KeyRole::Signing, a.key.as_deref())?;
    // Pin first: nothing is built, unlocked or sent for a channel that does not hold the key.
    let client = Client::pinned(&cfg, out)?;

    out.step(format!(
        "1. Building {}/{} {} from {}...",
        cfg.supplier.as_str(),
        a.package,
        a.version,
        a.source.display()
    ));
    let built = build(
        &cfg.supplier,
        &a.source,
        &a.package,
        &a.version,
        a.allow_dirty,
    )?;
    let path = default_out(dir, &built);
    out.step(format!(
        "   Built {} bytes from commit {}.",
        built.bytes.len(),
        built.manifest.git_commit()
    ));

    out.step(format!(
        "2. Signing with key {} ({})...",
        kfile.public_key.fingerprint(),
        kpath.display()
    ));
    let kp = unlock(&kfile, a.passphrase_stdin)?;
    let (size, digest, keyed) =
        filesig::digest_both(&kp.public(), &built.bytes[..]).map_err(Error::Hash)?;
    let signature = filesig::sign_digest(&kp, &keyed);
    // Written only once the key unlocked, so a wrong passphrase leaves nothing behind.
    write_file(&path, &built.bytes)?;
    let sig_path = PathBuf::from(format!("{}.sig", path.display()));
    write_file(&sig_path, filesig::signature_text(&signature).as_bytes())?;
    out.step(format!(
        "   Wrote {} and {}.",
        path.display(),
        sig_path.display()
    ));
    let commit = GitCommit::parse(built.manifest.git_commit()).map_err(Error::BadCommit)?;
    let event = Event::Release {
        package: built.package.clone(),
        version: built.version.clone(),
        size,
        digest: Digest512(digest),
        commit,
        signature,
        rollout: rollout.clone(),
    };
    let entry = Entry::sign(
        EntryBody::new(cfg.supplier.clone(), kp.public(), event),
        &kp,
    )
    .map_err(Error::SignEntry)?;
    drop(kp);

    out.step(format!(
        "3. Submitting the release entry to {}...",
        cfg.channel
    ));
    let resp = client.submit(&entry, None)?;
    out.step(format!(
        "   Logged at index {} (log size {}){}.",
        resp.index,
        resp.size,
        if resp.duplicate {
            "; it was already there"
        } else {
            ""
        }
    ));

    out.step(format!("4. Uploading the archive ({size} bytes)..."));
    let up = client.upload(
        cfg.supplier.as_str(),
        built.package.as_str(),
        built.version.as_str(),
        &built.bytes,
        show_progress(out.json),
    )?;
    if up.size != size || up.digest != hex::encode(digest) {
        return Err(Misbehaved::StoredOther.into());
    }
    out.step(format!(
        "   Uploaded{}.",
        if up.already_stored {
            " (the channel had it already)"
        } else {
            ""
        }
    ));

    out.step("5. Checking that the release is in the log...");
    let checkpoint = client.confirm_inclusion(&entry, &resp)?;
    out.step(format!(
        "   Included: entry {} is in the log of size {} under root {} signed by the channel key {}.",
        resp.index,
        checkpoint.size(),
        hex::encode(checkpoint.root().0),
        cfg.channel_key.fingerprint()
    ));
    let staged = match &rollout {
        None => String::new(),
        Some(r) => {
            let steps: Vec<String> = r
                .waves
                .iter()
                .map(|w| format!("{}% from {}", w.percent, w.not_before))
                .collect();
            format!(
                " Staged rollout (each site decides by its own bucket and clock): {}.",
                steps.join(", ")
            )
        }
    };
    out.say(format!(
        "Released {}/{} {}.{staged}",
        cfg.supplier.as_str(),
        built.package.as_str(),
        built.version.as_str()
    ));
    out.json(serde_json::json!({
        "supplier": cfg.supplier.as_str(),
        "package": built.package.as_str(),
        "version": built.version.as_str(),
        "commit": built.manifest.git_commit(),
        "archive": path,
        "size": size,
        "digest": hex::encode(digest),
        "index": resp.index,
        "rollout": rollout,
        "checkpoint_size": checkpoint.size(),
        "root": hex::encode(checkpoint.root().0),
        "included": true,
    }));
    Ok(())
}
