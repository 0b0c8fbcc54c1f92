//! `barge publish BUNDLE`: submit a bundle signed by `hangar sign`.
//!
//! Refuses, before anything reaches the channel: a damaged or edited bundle (checksum,
//! canonical form), an unsigned one, one whose request is not byte for byte a request prepared
//! here (`local/prepared/`), one whose signatures do not verify (entry, bundle, and for releases
//! the archive signature), one for another supplier or channel origin, and for releases an
//! archive whose size or digests differ from the request. Then it submits the entry, uploads
//! the archive (releases) and checks inclusion under a signed checkpoint with the same client
//! calls as `barge release` (`Client::submit`, `upload`, `confirm_inclusion`).

use std::io::Read;
use std::path::{Path, PathBuf};

use keyggdrasil::os::secretfile::read_secret_file;
use shipyard::bundlefile::read_bundle;

use crate::config::{self, local_dir};
use crate::error::{Error, Misbehaved, io_at};
use crate::http::{Client, show_progress};
use crate::output::Output;
use crate::prepare::PREPARED_DIR;

/// Arguments of `barge publish`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The signed bundle (`hangar sign` writes BUNDLE.signed).
    pub bundle: PathBuf,
    /// The release archive (default: the file named in the bundle, beside the bundle, else in dist/).
    #[arg(long)]
    pub archive: Option<PathBuf>,
    /// Invite token, where the channel's policy needs one for a new supplier.
    #[arg(long)]
    pub invite: Option<String>,
}

fn read_archive(path: &Path, size: u64) -> Result<Vec<u8>, Error> {
    let f = std::fs::File::open(path).map_err(io_at("could not open the archive", path))?;
    let mut bytes = Vec::new();
    // One byte more than the bundle names, so that a longer archive is seen to be longer.
    f.take(size.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_at("could not read", path))?;
    Ok(bytes)
}

/// Runs `barge publish`.
pub fn run(dir: &Path, out: &Output, a: Args) -> Result<(), Error> {
    let cfg = config::load(dir)?;
    let bundle = read_bundle(&a.bundle)?;
    if !bundle.is_signed() {
        return Err(Error::NotSigned { path: a.bundle });
    }
    let fp = bundle.fingerprint();
    let record = local_dir(dir)
        .join(PREPARED_DIR)
        .join(format!("{fp}.request"));
    let prepared = match read_secret_file(&record, keyggdrasil::bundle::MAX_BUNDLE_BYTES as u64) {
        Ok(b) => b,
        Err(source) => {
            return Err(Error::NotPrepared {
                path: a.bundle,
                fingerprint: fp,
                source,
            });
        }
    };
    if prepared.as_slice() != bundle.request_bytes() {
        return Err(Error::RequestDiffers { path: a.bundle });
    }
    let entry = bundle
        .verify_signed()
        .map_err(|source| Error::BundleSignature {
            path: a.bundle.clone(),
            source,
        })?;
    let req = bundle.request();
    if req.supplier != cfg.supplier {
        return Err(Error::OtherSupplier {
            bundle: req.supplier.as_str().to_owned(),
            folder: cfg.supplier.as_str().to_owned(),
        });
    }
    let archive = match &req.release {
        None => None,
        Some(rel) => {
            let path = match &a.archive {
                Some(p) => p.clone(),
                None => {
                    let beside = a
                        .bundle
                        .parent()
                        .unwrap_or(Path::new("."))
                        .join(&rel.archive);
                    if beside.exists() {
                        beside
                    } else {
                        dir.join("dist").join(&rel.archive)
                    }
                }
            };
            let bytes = read_archive(&path, rel.size)?;
            if let Some(expected) = req.expected_archive()
                && let Err(e) = expected.check(&bytes[..])
            {
                return Err(Error::ArchiveMismatch { path, source: e });
            }
            Some((path, bytes))
        }
    };

    // Pin first: the checkpoint and a fresh challenge verify with the pinned key before the
    // bundle's entry is sent.
    let client = Client::pinned(&cfg, out)?;
    let checkpoint = client.check_pin()?;
    if checkpoint.origin() != &req.origin {
        return Err(Error::OtherChannel {
            bundle: req.origin.as_str().to_owned(),
            url: cfg.channel.clone(),
            channel: checkpoint.origin().as_str().to_owned(),
        });
    }
    out.step(format!(
        "1. Submitting the signed {} entry (bundle {fp}) to {}...",
        req.kind.as_str(),
        cfg.channel
    ));
    let resp = client.submit(entry, a.invite)?;
    // A rollout entry is valid once: an old copy of it is no change of the schedule now.
    if req.kind == keyggdrasil::bundle::Kind::Rollout && resp.duplicate {
        return Err(Error::RolloutDuplicate {
            what: format!("bundle {fp}"),
            index: resp.index,
        });
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
    if let (Some((path, bytes)), Some(rel)) = (&archive, &req.release) {
        out.step(format!(
            "2. Uploading the archive {} ({} bytes)...",
            path.display(),
            rel.size
        ));
        let up = client.upload(
            req.supplier.as_str(),
            rel.package.as_str(),
            rel.version.as_str(),
            bytes,
            show_progress(out.json),
        )?;
        if up.size != rel.size || up.digest != rel.digest.to_hex() {
            return Err(Misbehaved::StoredOther.into());
        }
    }
    out.step("3. Checking that the entry is in the log...");
    let checkpoint = client.confirm_inclusion(entry, &resp)?;
    out.step(format!(
        "   Included: entry {} is in the log of size {} under root {} signed by the channel key {}.",
        resp.index,
        checkpoint.size(),
        hex::encode(checkpoint.root().0),
        cfg.channel_key.fingerprint()
    ));
    out.say(format!(
        "Published the {} bundle {fp} at index {}.",
        req.kind.as_str(),
        resp.index
    ));
    let mut json = serde_json::json!({
        "kind": req.kind.as_str(),
        "fingerprint": fp,
        "supplier": req.supplier.as_str(),
        "index": resp.index,
        "duplicate": resp.duplicate,
        "checkpoint_size": checkpoint.size(),
        "root": hex::encode(checkpoint.root().0),
        "included": true,
    });
    if let Some(rel) = &req.release {
        json["package"] = rel.package.as_str().into();
        json["version"] = rel.version.as_str().into();
        json["digest"] = rel.digest.to_hex().into();
    }
    out.json(json);
    Ok(())
}
