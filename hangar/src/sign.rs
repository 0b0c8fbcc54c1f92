//! `hangar sign BUNDLE`: show what a request bundle asks to sign, check what can be checked
//! offline, ask for confirmation and the passphrase, and write the signed bundle.
//!
//! What hangar checks: the bundle's checksum and canonical form, that its parts agree, that the
//! signer is a key in `local/` (of the right role and supplier), and, for a release whose
//! archive lies beside the bundle (or is given with `--archive`), that the archive's size,
//! digest and keyed digest are the ones in the request. What it cannot check: that the archive
//! was built from the commit named, that the origin is the channel the author means, or (when
//! the archive is absent) anything about the archive at all: then the digest is taken on trust
//! from the online machine, and hangar says so loudly. The author compares the fingerprint
//! shown here with the one `barge prepare` printed.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use keyggdrasil::archive_check::ArchiveMismatch;
use keyggdrasil::bundle::{Bundle, Kind};
use keyggdrasil::entry::Event;
use keyggdrasil::keyfile::{KeyFile, KeyRole};
use shipyard::bundlefile::{read_bundle, signed_path, write_new_file};
use shipyard::keys::{all_keys, read_key_file, unlock};
use shipyard::output::{Output, warn_loudly};

use crate::Error;

/// Arguments of `hangar sign`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request bundle written by `barge prepare`.
    pub bundle: PathBuf,
    /// The key file to sign with (default: the key in `local/` whose public key the bundle names).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Where to write the signed bundle (default: BUNDLE.signed).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The release archive (default: the file named in the bundle, beside the bundle).
    #[arg(long)]
    pub archive: Option<PathBuf>,
    /// Sign without asking for confirmation (for scripts).
    #[arg(long)]
    pub yes: bool,
    /// Read the key's passphrase from standard input.
    #[arg(long)]
    pub passphrase_stdin: bool,
}

fn find_signer(
    dir: &Path,
    b: &Bundle,
    explicit: Option<&Path>,
) -> Result<(PathBuf, KeyFile), Error> {
    let signer = b.request().signer;
    let (path, file) = match explicit {
        Some(p) => (p.to_path_buf(), read_key_file(p)?),
        None => all_keys(dir)?
            .into_iter()
            .find(|(_, k)| k.public_key == signer)
            .ok_or_else(|| Error::NoSignerKey {
                local: shipyard::keys::local_dir(dir),
                signer,
            })?,
    };
    if file.public_key != signer {
        return Err(Error::NotTheSigner {
            path,
            found: file.public_key,
            signer,
        });
    }
    let (role_ok, wanted) = match b.request().kind {
        Kind::Release => (file.role == KeyRole::Signing, "a signing key"),
        Kind::KeyAdd | Kind::KeyRevoke => (file.role == KeyRole::Master, "a master key"),
        Kind::ReleaseRevoke | Kind::Rollout => (
            matches!(file.role, KeyRole::Master | KeyRole::Signing),
            "a master or signing key",
        ),
    };
    if !role_ok {
        return Err(Error::WrongRole {
            kind: b.request().kind.as_str(),
            wanted,
            found: file.role,
        });
    }
    if let Some(s) = &file.supplier
        && s != &b.request().supplier
    {
        return Err(Error::WrongSupplier {
            key: s.clone(),
            bundle: b.request().supplier.clone(),
        });
    }
    Ok((path, file))
}

/// Lines describing the request, for people.
fn describe(b: &Bundle) -> Result<(Vec<String>, serde_json::Value), Error> {
    let r = b.request();
    let mut lines = vec![
        format!("kind:        {}", r.kind.as_str()),
        format!("channel:     {}", r.origin.as_str()),
        format!("supplier:    {}", r.supplier.as_str()),
    ];
    let mut json = serde_json::json!({
        "kind": r.kind.as_str(),
        "origin": r.origin.as_str(),
        "supplier": r.supplier.as_str(),
        "signer": r.signer.to_hex(),
    });
    if let Some(rel) = &r.release {
        lines.push(format!("package:     {}", rel.package.as_str()));
        lines.push(format!("version:     {}", rel.version.as_str()));
        lines.push(format!("archive:     {} ({} bytes)", rel.archive, rel.size));
        lines.push(format!("digest:      {}", rel.digest.to_hex()));
        lines.push(format!("commit:      {}", rel.commit.as_str()));
        json["package"] = rel.package.as_str().into();
        json["version"] = rel.version.as_str().into();
        json["size"] = rel.size.into();
        json["digest"] = rel.digest.to_hex().into();
        json["commit"] = rel.commit.as_str().into();
    }
    let body = r.parsed_body().map_err(Error::BadBody)?;
    if let Some(body) = body {
        match &body.event {
            Event::MasterKey { public_key, .. } => {
                lines.push(format!(
                    "adds master:  {} ({})",
                    public_key.to_hex(),
                    public_key.fingerprint()
                ));
                json["key"] = public_key.to_hex().into();
            }
            Event::SigningKey { public_key, .. } => {
                lines.push(format!(
                    "adds signing: {} ({})",
                    public_key.to_hex(),
                    public_key.fingerprint()
                ));
                json["key"] = public_key.to_hex().into();
            }
            Event::KeyRevocation { public_key, reason } => {
                lines.push(format!(
                    "revokes key: {} ({})",
                    public_key.to_hex(),
                    public_key.fingerprint()
                ));
                lines.push(format!("reason:      {}", reason.as_str()));
                json["key"] = public_key.to_hex().into();
                json["reason"] = reason.as_str().into();
            }
            Event::ReleaseRevocation {
                package,
                version,
                reason,
            } => {
                lines.push(format!("package:     {}", package.as_str()));
                lines.push(format!("version:     {} (revoked)", version.as_str()));
                lines.push(format!("reason:      {}", reason.as_str()));
                json["package"] = package.as_str().into();
                json["version"] = version.as_str().into();
                json["reason"] = reason.as_str().into();
            }
            Event::Rollout {
                package,
                version,
                replaces,
                waves,
                paused,
            } => {
                lines.push(format!("package:     {}", package.as_str()));
                lines.push(format!("version:     {} (rollout)", version.as_str()));
                lines.push(format!(
                    "replaces:    the schedule logged at index {replaces}"
                ));
                json["replaces"] = (*replaces).into();
                for w in waves {
                    lines.push(format!(
                        "wave:        {}% from {} (Unix seconds)",
                        w.percent, w.not_before
                    ));
                }
                lines.push(format!("paused:      {paused}"));
                json["package"] = package.as_str().into();
                json["version"] = version.as_str().into();
                json["waves"] = serde_json::to_value(waves).unwrap_or_default();
                json["paused"] = (*paused).into();
            }
            other => lines.push(format!("event:       {}", other.kind())),
        }
    }
    lines.push(format!(
        "signing key: {} ({})",
        r.signer.to_hex(),
        r.signer.fingerprint()
    ));
    lines.push(format!("fingerprint: {}", b.fingerprint()));
    json["fingerprint"] = b.fingerprint().into();
    Ok((lines, json))
}

/// Checks the archive against the request when it is present; Ok(false) when absent.
fn check_archive(bundle_path: &Path, b: &Bundle, explicit: Option<&Path>) -> Result<bool, Error> {
    let Some(rel) = &b.request().release else {
        return Ok(true);
    };
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => bundle_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&rel.archive),
    };
    let f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            return Ok(false);
        }
        Err(source) => return Err(Error::OpenArchive { path, source }),
    };
    // A release request always names its archive (checked above).
    let Some(expected) = b.request().expected_archive() else {
        return Ok(true);
    };
    match expected.check(f) {
        Ok(_) => {}
        Err(ArchiveMismatch::Io(source)) => return Err(Error::ReadArchive { path, source }),
        Err(source) => return Err(Error::ArchiveMismatch { path, source }),
    }
    Ok(true)
}

fn confirm() -> Result<bool, Error> {
    eprint!("sign? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(Error::ReadAnswer)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// Runs `hangar sign`.
pub fn run(dir: &Path, out: &Output, a: Args) -> Result<(), Error> {
    let b = read_bundle(&a.bundle)?;
    if b.is_signed() {
        return Err(Error::AlreadySigned { path: a.bundle });
    }
    let out_path = a.out.clone().unwrap_or_else(|| signed_path(&a.bundle));
    if out_path.exists() {
        return Err(Error::OutputExists { path: out_path });
    }
    let (kpath, kfile) = find_signer(dir, &b, a.key.as_deref())?;
    let archive_checked = check_archive(&a.bundle, &b, a.archive.as_deref())?;
    let (lines, mut json) = describe(&b)?;
    out.step(format!("Bundle {} asks to sign:", a.bundle.display()));
    for l in &lines {
        out.step(format!("  {l}"));
    }
    out.step(format!("  key file:    {}", kpath.display()));
    if b.request().release.is_some() {
        if archive_checked {
            out.step("  archive:     present, size and digests match the bundle");
        } else {
            warn_loudly(
                "the archive is not beside the bundle: hangar cannot check its digest, which is \
                 taken on trust from the online machine. Copy the archive next to the bundle (or \
                 pass --archive) to have it checked.",
            );
        }
    }
    if !a.yes {
        if !std::io::stdin().is_terminal() || a.passphrase_stdin {
            return Err(Error::NoTerminalToConfirm);
        }
        if !confirm()? {
            return Err(Error::Declined);
        }
    }
    let kp = crate::lock_keypair(unlock(&kfile, a.passphrase_stdin)?);
    let signed = b.sign(&kp).map_err(Error::Sign)?;
    drop(kp);
    write_new_file(&out_path, &signed)?;
    out.say(format!(
        "Signed. Carry {} to the online machine and run `barge publish {}`.\nfingerprint: {}",
        out_path.display(),
        out_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        b.fingerprint()
    ));
    json["signed_bundle"] = serde_json::json!(out_path);
    json["archive_checked"] = archive_checked.into();
    out.json(json);
    Ok(())
}
