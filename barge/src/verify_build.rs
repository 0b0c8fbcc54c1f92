//! `barge verify-build SUPPLIER/PACKAGE VERSION --source DIR [--attest]`: rebuilds a logged
//! release from the git commit its entry names and compares the archive with the logged size
//! and digest; with `--attest`, logs a "reproduced" attestation when they match.
//!
//! The release is looked up in the whole log, replayed through the key rules and checked against
//! a checkpoint signed by the pinned channel key ([`crate::http::Client::verified_log`]), so a
//! channel cannot show a release entry it did not log. The commit is checked out into a
//! temporary git worktree (hooks off) that is removed afterwards; the user's checkout is never
//! touched. The rebuild is exactly `barge build`'s; the release entry's archive signature is then
//! checked over the rebuilt bytes (the key rules never see archives, so nothing else checked it
//! before the upload). The checkout uses the local git's settings
//! (e.g. `core.autocrlf`), as the author's own checkout did.
//!
//! The key rules let any current key (master or signing) of the attesting supplier attest any
//! supplier's release, once per attester and release, and only with the logged digest. The
//! attesting supplier is the one in `barge.toml`.

use std::path::{Path, PathBuf};

use keyggdrasil::archive_check::ArchiveMismatch;
use keyggdrasil::entry::{Claim, Digest512, Event};
use keyggdrasil::keyfile::{KeyFile, KeyRole};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::names::{PackageName, SupplierName, Version};

use crate::build::{build_tree, git, write_file};
use crate::config;
use crate::error::{Error, failed};
use crate::http::Client;
use crate::key::{find_key, unlock};
use crate::key_revoke::resolve;
use crate::output::Output;

/// Arguments of `barge verify-build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The release's supplier and package, as `SUPPLIER/PACKAGE`.
    pub target: String,
    /// The version.
    pub version: String,
    /// A git repository holding the logged commit (only read; the commit is checked out
    /// into a temporary worktree).
    #[arg(long)]
    pub source: PathBuf,
    /// Also write the rebuilt archive here (for inspection).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// When the rebuild matches, log a "reproduced" attestation signed by one of your keys.
    #[arg(long)]
    pub attest: bool,
    /// The key that signs the attestation, named as for `key revoke` (default: the only
    /// signing key in `local/`).
    #[arg(long, requires = "attest")]
    pub key: Option<String>,
    /// Read the attesting key's passphrase from standard input.
    #[arg(long)]
    pub passphrase_stdin: bool,
}

/// A temporary detached worktree of a commit, removed (with its folder) when dropped.
struct TempWorktree {
    repo: PathBuf,
    root: PathBuf,
    path: PathBuf,
}

impl TempWorktree {
    fn add(repo: &Path, commit: &str) -> Result<Self, Error> {
        let name = format!(
            "barge-verify-build-{}-{}",
            std::process::id(),
            hex::encode(keyggdrasil::random::bytes::<8>())
        );
        let root = std::env::temp_dir().join(name);
        // `create_dir` fails if the name exists, so nobody can have prepared it for us.
        std::fs::create_dir(&root)
            .map_err(failed(format!("could not create {}", root.display())))?;
        let wt = Self {
            repo: repo.to_path_buf(),
            path: root.join("src"),
            root,
        };
        let path = wt.path.to_string_lossy().into_owned();
        // Hooks off: a post-checkout hook must not change the tree being verified.
        let o = git(
            repo,
            &[
                "-c",
                "core.hooksPath=/dev/null",
                "worktree",
                "add",
                "--detach",
                "--quiet",
                &path,
                commit,
            ],
        )?;
        if !o.status.success() {
            return Err(Error::Failed(format!(
                "could not check out commit {commit} into a temporary worktree: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )));
        }
        Ok(wt)
    }
}

impl Drop for TempWorktree {
    fn drop(&mut self) {
        let path = self.path.to_string_lossy().into_owned();
        // Best effort: the folder is removed below anyway, and `prune` forgets a missing one.
        let _ = git(&self.repo, &["worktree", "remove", "--force", &path]);
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = git(&self.repo, &["worktree", "prune"]);
    }
}

fn attesting_key(dir: &Path, key: Option<&str>) -> Result<(PathBuf, KeyFile), Error> {
    let Some(text) = key else {
        return find_key(dir, KeyRole::Signing, None);
    };
    let named = resolve(dir, text)?;
    let Some((path, file)) = named.file else {
        return Err(Error::Usage(format!(
            "no key file for --key {text:?}: the attestation must be signed by one of your keys"
        )));
    };
    if !matches!(file.role, KeyRole::Master | KeyRole::Signing) {
        return Err(Error::Usage(format!(
            "{} is not a supplier key; use a signing or master key",
            path.display()
        )));
    }
    Ok((path, file))
}

/// Runs `barge verify-build`.
pub fn run(dir: &Path, out: &Output, a: Args) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let (subject, package) = a.target.split_once('/').ok_or_else(|| {
        Error::Usage(format!(
            "{:?} is not SUPPLIER/PACKAGE (e.g. acme/hello)",
            a.target
        ))
    })?;
    let subject = SupplierName::parse(subject)
        .map_err(|e| Error::Usage(format!("supplier name {subject:?}: {e}")))?;
    let package = PackageName::parse(package)
        .map_err(|e| Error::Usage(format!("package name {package:?}: {e}")))?;
    let version = Version::parse(&a.version)
        .map_err(|e| Error::Usage(format!("version {:?}: {e}", a.version)))?;
    let probe = git(&a.source, &["rev-parse", "--git-dir"])?;
    if !probe.status.success() {
        return Err(Error::Usage(format!(
            "{} is not a git repository: give --source a clone of the package's sources",
            a.source.display()
        )));
    }
    // Unlock first, so a wrong passphrase stops everything before any work or network.
    let signer: Option<(PathBuf, KeyFile, KeyPair)> = if a.attest {
        let (path, file) = attesting_key(dir, a.key.as_deref())?;
        let kp = unlock(&file, a.passphrase_stdin)?;
        Some((path, file, kp))
    } else {
        None
    };
    let name = format!(
        "{}/{} {}",
        subject.as_str(),
        package.as_str(),
        version.as_str()
    );

    let client = Client::new(&cfg);
    out.step(format!(
        "1. Reading and checking the log of {} against its signed checkpoint...",
        cfg.channel
    ));
    let log = client.verified_log()?;
    let record = log
        .state
        .supplier(&subject)
        .and_then(|s| s.releases.get(&package))
        .and_then(|v| v.get(&version))
        .cloned()
        .ok_or_else(|| {
            Error::Failed(format!(
                "{name} is not in the channel's log (checked {} entries under the checkpoint \
                 signed by the channel key {}); check the name and version",
                log.checkpoint.size(),
                cfg.channel_key.fingerprint()
            ))
        })?;
    let commit = record.commit.as_str().to_owned();
    out.step(format!(
        "   Found {name} at index {}: commit {commit}, {} bytes, digest {}{}.",
        record.index,
        record.size,
        record.digest.to_hex(),
        if record.revoked_at.is_some() {
            " (REVOKED)"
        } else {
            ""
        }
    ));
    if commit.bytes().all(|b| b == b'0') {
        return Err(Error::Invalid(format!(
            "{name} was released from a tree that was not a git checkout (the all-zero commit): \
             nobody can rebuild it"
        )));
    }
    let spec = format!("{commit}^{{commit}}");
    let has = git(&a.source, &["cat-file", "-e", &spec])?;
    if !has.status.success() {
        return Err(Error::Usage(format!(
            "commit {commit} is not in the repository at {}: fetch it (git fetch) and try again",
            a.source.display()
        )));
    }

    out.step(format!(
        "2. Rebuilding from commit {commit} in a temporary worktree..."
    ));
    let built = {
        let wt = TempWorktree::add(&a.source, &commit)?;
        build_tree(
            &subject,
            &wt.path,
            package.clone(),
            version.clone(),
            commit.clone(),
        )?
    };
    let (size, digest) = keyggdrasil::filesig::archive_digest(&built.bytes[..])
        .map_err(failed("could not hash the rebuilt archive"))?;
    if let Some(path) = &a.out {
        write_file(path, &built.bytes)?;
    }
    // The one archive check (size, digest, archive signature); the digests above are for the
    // report only.
    let verdict = record.expected_archive().check(&built.bytes[..]);
    let reproduced = !matches!(
        verdict,
        Err(ArchiveMismatch::TooLong { .. }
            | ArchiveMismatch::Truncated { .. }
            | ArchiveMismatch::Digest { .. })
    );
    let mut report = serde_json::json!({
        "supplier": subject.as_str(),
        "package": package.as_str(),
        "version": version.as_str(),
        "commit": commit,
        "index": record.index,
        "revoked": record.revoked_at.is_some(),
        "logged_size": record.size,
        "logged_digest": record.digest.to_hex(),
        "rebuilt_size": size,
        "rebuilt_digest": hex::encode(digest),
        "reproduced": reproduced,
        "checkpoint_size": log.checkpoint.size(),
        "attestation": null,
    });
    if !reproduced {
        out.json(report);
        return Err(Error::Invalid(format!(
            "NOT REPRODUCED: rebuilding {name} from commit {commit} gives {size} bytes with \
             digest {}, but the log says {} bytes with digest {}. The released archive was not \
             built from that commit as barge builds it (or your checkout differs, e.g. by \
             core.autocrlf); do not attest it",
            hex::encode(digest),
            record.size,
            record.digest.to_hex()
        )));
    }
    // The key rules cannot check the archive signature in the entry (they never see the
    // archive); with the rebuilt bytes in hand, we can.
    let signed = verdict.is_ok();
    report["signature_valid"] = serde_json::Value::Bool(signed);
    if !signed {
        out.json(report);
        return Err(Error::Invalid(format!(
            "the rebuilt archive of {name} has the logged digest, but the archive signature in \
             the release entry does not verify over it with the release's signing key {}; do \
             not attest it",
            record.signer.fingerprint()
        )));
    }
    out.step(format!(
        "   Reproduced: {size} bytes, digest {} as logged, signed by {}.",
        hex::encode(digest),
        record.signer.fingerprint()
    ));

    if let Some((path, file, kp)) = signer {
        out.step(format!(
            "3. Attesting as supplier {} with key {} ({})...",
            cfg.supplier.as_str(),
            file.public_key.fingerprint(),
            path.display()
        ));
        let current = log
            .state
            .supplier(&cfg.supplier)
            .and_then(|s| s.keys.get(&kp.public()))
            .is_some_and(|k| k.revoked_at.is_none());
        if !current {
            return Err(Error::Failed(format!(
                "key {} is not a current key of supplier {} in the log: register it first \
                 (`barge key register` / `barge key add`)",
                kp.public().fingerprint(),
                cfg.supplier.as_str()
            )));
        }
        let event = Event::Attestation {
            subject: subject.clone(),
            package: package.clone(),
            version: version.clone(),
            digest: Digest512(digest),
            claim: Claim::Reproduced,
        };
        let (_, resp, checkpoint) = client.sign_and_log(&cfg.supplier, kp, event, None)?;
        out.step(format!(
            "   Attested: logged at index {}{}, included under the checkpoint of size {}.",
            resp.index,
            if resp.duplicate {
                " (it was already there)"
            } else {
                ""
            },
            checkpoint.size()
        ));
        report["attestation"] = serde_json::json!({
            "attester": cfg.supplier.as_str(),
            "signer": file.public_key.to_hex(),
            "claim": "reproduced",
            "index": resp.index,
            "duplicate": resp.duplicate,
            "checkpoint_size": checkpoint.size(),
            "included": true,
        });
    }
    out.say(format!("Reproduced {name} from commit {commit}."));
    out.json(report);
    Ok(())
}
