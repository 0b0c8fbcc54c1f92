//! `barge release`: build, sign, submit the release entry, upload the archive, then check that
//! the entry is in the log under a checkpoint signed by the pinned channel key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use keyggdrasil::entry::{Digest512, Entry, EntryBody, Event, GitCommit};
use keyggdrasil::filesig;
use keyggdrasil::keyfile::KeyRole;
use keyggdrasil::merkle::{Blake2b256, TreeHasher, verify_inclusion};
use keyggdrasil::wire::{Checkpoint, SubmitResponse};

use crate::build::{build, default_out, write_file};
use crate::config;
use crate::error::{Error, failed};
use crate::http::Client;
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
}

/// Runs `barge release`.
pub fn run(dir: &Path, out: &Output, a: Args) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let (kpath, kfile) = find_key(dir, KeyRole::Signing, a.key.as_deref())?;

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
    write_file(&path, &built.bytes)?;
    out.step(format!(
        "   Built {} ({} bytes) from commit {}.",
        path.display(),
        built.bytes.len(),
        built.manifest.git_commit()
    ));

    out.step(format!(
        "2. Signing with key {} ({})...",
        kfile.public_key.fingerprint(),
        kpath.display()
    ));
    let kp = unlock(&kfile, a.passphrase_stdin)?;
    let (size, digest, keyed) = filesig::digest_both(&kp.public(), &built.bytes[..])
        .map_err(failed("could not hash the archive"))?;
    let signature = filesig::sign_digest(&kp, &keyed);
    let sig_path = PathBuf::from(format!("{}.sig", path.display()));
    write_file(&sig_path, filesig::signature_text(&signature).as_bytes())?;
    let commit = GitCommit::parse(built.manifest.git_commit())
        .map_err(failed("the commit is not a valid git commit"))?;
    let event = Event::Release {
        package: built.package.clone(),
        version: built.version.clone(),
        size,
        digest: Digest512(digest),
        commit,
        signature,
    };
    let entry = Entry::sign(
        EntryBody::new(cfg.supplier.clone(), kp.public(), event),
        &kp,
    )
    .map_err(failed("could not sign the release entry"))?;
    drop(kp);

    let client = Client::new(&cfg);
    out.step(format!(
        "3. Submitting the release entry to {}...",
        cfg.channel
    ));
    let (resp, leaf) = submit_checked(&client, out, &entry, None)?;

    out.step(format!("4. Uploading the archive ({size} bytes)..."));
    let up = client.upload(
        cfg.supplier.as_str(),
        built.package.as_str(),
        built.version.as_str(),
        &built.bytes,
    )?;
    if up.size != size || up.digest != hex::encode(digest) {
        return Err(Error::Failed(
            "the channel stored an archive of another size or digest".to_owned(),
        ));
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
    let checkpoint = check_inclusion(&client, out, &cfg, &resp, &leaf)?;
    out.say(format!(
        "Released {}/{} {}.",
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
        "checkpoint_size": checkpoint.size,
        "root": hex::encode(checkpoint.root.0),
        "included": true,
    }));
    Ok(())
}

/// Submits an entry, checks that the channel's leaf hash is the hash of our entry, and reports
/// where it was logged. Shared by `barge release` and `barge publish`.
pub fn submit_checked(
    client: &Client,
    out: &Output,
    entry: &Entry,
    invite: Option<String>,
) -> Result<(SubmitResponse, [u8; 32]), Error> {
    let resp = client.submit(entry, invite)?;
    let leaf = Blake2b256.hash_leaf(entry.as_bytes());
    if resp.leaf_hash.0 != leaf {
        return Err(Error::Failed(
            "the channel answered a leaf hash that is not the hash of our entry".to_owned(),
        ));
    }
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

    Ok((resp, leaf))
}

/// Waits for a signed checkpoint covering the submission and verifies the inclusion proof of
/// `leaf` against it. Shared by `barge release` and `barge publish`.
pub fn check_inclusion(
    client: &Client,
    out: &Output,
    cfg: &config::Loaded,
    resp: &SubmitResponse,
    leaf: &[u8; 32],
) -> Result<Checkpoint, Error> {
    // The checkpoint may lag for a moment after the append; wait a little for it.
    let mut checkpoint = client.checkpoint()?;
    for _ in 0..30 {
        if checkpoint.size >= resp.size {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        checkpoint = client.checkpoint()?;
    }
    if checkpoint.size < resp.size {
        return Err(Error::Failed(format!(
            "the channel's signed checkpoint is at size {}, below the size {} it answered for our submission",
            checkpoint.size, resp.size
        )));
    }
    let proof = client.inclusion_proof(resp.index, checkpoint.size)?;
    verify_inclusion(
        &Blake2b256,
        resp.index,
        checkpoint.size,
        leaf,
        &proof,
        &checkpoint.root.0,
    )
    .map_err(|e| {
        Error::Failed(format!(
            "the inclusion proof does not lead to the signed checkpoint root: {e}"
        ))
    })?;
    out.step(format!(
        "   Included: entry {} is in the log of size {} under root {} signed by the channel key {}.",
        resp.index,
        checkpoint.size,
        hex::encode(checkpoint.root.0),
        cfg.channel_key.fingerprint()
    ));
    Ok(checkpoint)
}
