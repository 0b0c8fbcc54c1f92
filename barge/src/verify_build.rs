//! `barge verify-build SUPPLIER/PACKAGE VERSION --source DIR [--attest]`: rebuilds a logged
//! release from the git commit its entry names and compares the archive with the logged size
//! and digest; with `--attest`, logs a "reproduced" attestation when they match.
//!
//! The release is found by an indexed lookup (`GET /v1/release`) whose answer is checked
//! against a checkpoint signed by the pinned channel key with inclusion proofs
//! ([`crate::http::Client::find_release`]), so a channel cannot show a release entry it did
//! not log; the cost is O(log n) in the log size. The revocation it reports is the one the
//! channel proved; a channel that hides a revocation hides it from this report only (sites
//! decide from their own replay of the log). The commit is checked out into a
//! temporary git worktree (hooks off) that is removed afterwards; the user's checkout is never
//! touched. The rebuild is exactly `barge build`'s; the release entry's archive signature is then
//! checked over the rebuilt bytes (the key rules never see archives, so nothing else checked it
//! before the upload). The checkout uses the local git's settings
//! (e.g. `core.autocrlf`), as the author's own checkout did.
//!
//! The key rules let any current key (master or signing) of the attesting supplier attest any
//! supplier's release, once per attester and release, and only with the logged digest; the
//! channel applies them when the attestation is submitted (barge reads no key state). The
//! attesting supplier is the one in `barge.toml`.

use std::path::{Path, PathBuf};

use crate::build::{build_tree, git, parse_package, parse_supplier, parse_version, write_file};
use crate::config;
use crate::error::{Error, io_at};
use crate::http::Client;
use crate::key::{find_key, resolve, unlock};
use crate::output::Output;
use keyggdrasil::archive_check::ArchiveMismatch;
use keyggdrasil::archive_check::ExpectedArchive;
use keyggdrasil::entry::{Claim, Digest512, Event, GitCommit};
use keyggdrasil::keyfile::{KeyFile, KeyRole};
use keyggdrasil::keys::{KeyPair, PublicKey, Signature};
use keyggdrasil::lookup::FoundRelease;
use keyggdrasil::wire::ErrorCode;

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

/// What the release entry found by lookup says.
struct Logged {
    index: u64,
    signer: PublicKey,
    size: u64,
    digest: Digest512,
    commit: GitCommit,
    signature: Signature,
    revoked_at: Option<u64>,
}

impl Logged {
    fn of(found: &FoundRelease) -> Option<Self> {
        match &found.entry.body().event {
            Event::Release {
                size,
                digest,
                commit,
                signature,
                ..
            } => Some(Self {
                index: found.index,
                signer: found.entry.body().signer,
                size: *size,
                digest: *digest,
                commit: commit.clone(),
                signature: *signature,
                revoked_at: found.revoked_at,
            }),
            _ => None,
        }
    }

    fn expected_archive(&self) -> ExpectedArchive {
        ExpectedArchive::signed(self.size, self.digest, self.signer, self.signature)
    }
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
            hex::encode(keyggdrasil::os::random::bytes::<8>())
        );
        let root = std::env::temp_dir().join(name);
        // `create_dir` fails if the name exists, so nobody can have prepared it for us.
        std::fs::create_dir(&root).map_err(io_at("could not create", &root))?;
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
            return Err(Error::GitFailed {
                what: "git worktree add (a temporary checkout of the logged commit)",
                path: repo.to_path_buf(),
                stderr: String::from_utf8_lossy(&o.stderr).trim().to_owned(),
            });
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
        return Err(Error::NoKeyFile {
            option: "--key",
            text: text.to_owned(),
            why: "the attestation must be signed by one of your keys",
        });
    };
    if !matches!(file.role, KeyRole::Master | KeyRole::Signing) {
        return Err(Error::KeyMayNotSign {
            path,
            role: file.role,
            needed: "use a signing or master key",
        });
    }
    Ok((path, file))
}

/// Runs `barge verify-build`.
pub fn run(dir: &Path, out: &Output, a: Args) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let (subject, package) = a
        .target
        .split_once('/')
        .ok_or_else(|| Error::BadTarget(a.target.clone()))?;
    let subject = parse_supplier(subject)?;
    let package = parse_package(package)?;
    let version = parse_version(&a.version)?;
    let probe = git(&a.source, &["rev-parse", "--git-dir"])?;
    if !probe.status.success() {
        return Err(Error::NotARepository { path: a.source });
    }
    // With --attest, pin first (a channel without the pinned key gets nothing, and no
    // passphrase is asked for), then unlock, so a wrong passphrase stops everything before any
    // rebuild.
    let client = if a.attest {
        Client::pinned(&cfg, out)?
    } else {
        Client::new(&cfg)
    };
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

    out.step(format!(
        "1. Looking up {name} in the log of {} (checked against its signed checkpoint)...",
        cfg.channel
    ));
    let (checkpoint, found) = client.find_release(&subject, &package, &version)?;
    let found = found.ok_or_else(|| Error::NotLogged {
        name: name.clone(),
        size: checkpoint.size(),
        channel_key: cfg.channel_key,
    })?;
    let record = Logged::of(&found).ok_or_else(|| Error::NotLogged {
        name: name.clone(),
        size: checkpoint.size(),
        channel_key: cfg.channel_key,
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
        return Err(Error::NotRebuildable { name });
    }
    let spec = format!("{commit}^{{commit}}");
    let has = git(&a.source, &["cat-file", "-e", &spec])?;
    if !has.status.success() {
        return Err(Error::CommitMissing {
            commit,
            path: a.source,
        });
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
    let (size, digest) =
        keyggdrasil::filesig::archive_digest(&built.bytes[..]).map_err(Error::Hash)?;
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
        "checkpoint_size": checkpoint.size(),
        "attestation": null,
    });
    if !reproduced {
        out.json(report);
        return Err(Error::NotReproduced {
            name,
            commit,
            size,
            digest: hex::encode(digest),
            logged_size: record.size,
            logged_digest: record.digest.to_hex(),
        });
    }
    // The key rules cannot check the archive signature in the entry (they never see the
    // archive); with the rebuilt bytes in hand, we can.
    let signed = verdict.is_ok();
    report["signature_valid"] = serde_json::Value::Bool(signed);
    if !signed {
        out.json(report);
        return Err(Error::RebuiltSignatureInvalid {
            name,
            signer: record.signer,
        });
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
        let event = Event::Attestation {
            subject: subject.clone(),
            package: package.clone(),
            version: version.clone(),
            digest: Digest512(digest),
            claim: Claim::Reproduced,
        };
        // The channel's key rules decide whether the key may attest (a current key of the
        // attesting supplier); barge reads no key state, so a refusal is reported as theirs.
        let public = kp.public();
        let (_, resp, checkpoint) = client
            .sign_and_log(&cfg.supplier, kp, event, None)
            .map_err(|e| match e {
                Error::Refused {
                    code: ErrorCode::KeyRule("not_current_key"),
                    ..
                } => Error::NotCurrentKey {
                    key: public,
                    supplier: cfg.supplier.as_str().to_owned(),
                },
                other => other,
            })?;
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
