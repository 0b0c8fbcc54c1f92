//! `barge verify`: checks a file signature; exit 0 valid, 1 invalid, 2 usage error, 5 when the
//! file or the signature file cannot be read (the path is named).
//!
//! With `--proof FILE` it checks a release's offline proof instead (C2SP `tlog-proof@v1`, from
//! the channel's `GET /v1/proof/release`), with no network: `--public-key` is then the
//! channel's key; the checkpoint must be signed by it under the checkpoint's own origin, the
//! release entry included at its index, and the file the release's archive (logged size,
//! BLAKE2b-512, and the archive signature by the release's signing key).

use std::path::PathBuf;

use keyggdrasil::filesig::{self, FileSigError};
use keyggdrasil::keys::PublicKey;

use crate::error::{Error, io_at};
use crate::output::Output;

/// Arguments of `barge verify`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("sig").required(true).args(["signature", "signature_file", "proof"])))]
pub struct Args {
    /// The signer's public key (64 hex); with `--proof`, the channel's key.
    #[arg(long)]
    pub public_key: String,
    /// A release's offline proof (`c2sp.org/tlog-proof@v1`); FILE is then its archive.
    #[arg(long)]
    pub proof: Option<PathBuf>,
    /// The signature (128 hex).
    #[arg(long)]
    pub signature: Option<String>,
    /// A signature file as `barge sign` writes it.
    #[arg(long)]
    pub signature_file: Option<PathBuf>,
    /// The signed file.
    pub file: PathBuf,
}

/// Runs `barge verify`.
pub fn run(out: &Output, a: Args) -> Result<(), Error> {
    let key = PublicKey::from_hex(&a.public_key).map_err(|source| Error::BadPublicKey {
        what: "--public-key".to_owned(),
        source,
    })?;
    if let Some(proof) = &a.proof {
        return verify_proof(out, &key, proof, &a.file);
    }
    // clap's group makes one of the two required; the last arm is for a caller that bypasses it.
    let text = match (&a.signature, &a.signature_file) {
        (Some(s), _) => s.clone(),
        (None, Some(p)) => std::fs::read_to_string(p).map_err(io_at("could not read", p))?,
        (None, None) => return Err(Error::NoSignature),
    };
    let sig = filesig::parse_signature_text(&text).map_err(Error::BadSignatureText)?;
    let f = std::fs::File::open(&a.file).map_err(io_at("could not open", &a.file))?;
    match filesig::verify(&key, &sig, f) {
        Ok(()) => {
            out.say(format!(
                "Valid: {} is signed by {}.",
                a.file.display(),
                key.fingerprint()
            ));
            out.json(
                serde_json::json!({"valid": true, "file": a.file, "public_key": key.to_hex()}),
            );
            Ok(())
        }
        Err(FileSigError::Mismatch(_)) => {
            out.json(
                serde_json::json!({"valid": false, "file": a.file, "public_key": key.to_hex()}),
            );
            Err(Error::SignatureInvalid { path: a.file, key })
        }
        // Reading the file failed half way: local (it used to be called a usage error).
        Err(FileSigError::Io(source)) => Err(io_at("could not read", &a.file)(source)),
        Err(e) => Err(Error::SignatureCheck {
            path: a.file,
            source: e,
        }),
    }
}

/// `barge verify --proof`.
fn verify_proof(
    out: &Output,
    channel_key: &PublicKey,
    proof: &std::path::Path,
    archive: &std::path::Path,
) -> Result<(), Error> {
    use keyggdrasil::tlog_proof;
    let size = std::fs::metadata(proof)
        .map_err(io_at("could not read", proof))?
        .len();
    if size > tlog_proof::MAX_PROOF_BYTES as u64 {
        return Err(Error::ProofInvalid(format!(
            "{} is larger than a proof",
            proof.display()
        )));
    }
    let text = std::fs::read_to_string(proof).map_err(io_at("could not read", proof))?;
    let invalid = |e: String| Error::ProofInvalid(format!("{}: {e}", proof.display()));
    let parsed = tlog_proof::parse(&text).map_err(|e| invalid(e.to_string()))?;
    let origin =
        keyggdrasil::names::ChannelName::parse(parsed.checkpoint.lines().next().unwrap_or(""))
            .map_err(|e| invalid(e.to_string()))?;
    let verified = tlog_proof::verify_release(&parsed, channel_key, &origin)
        .map_err(|e| invalid(e.to_string()))?;
    let name = verified.release_name();
    let f = std::fs::File::open(archive).map_err(io_at("could not open", archive))?;
    verified.check_archive(f).map_err(|e| {
        Error::ProofInvalid(format!(
            "{} is not the archive of {name}: {e}",
            archive.display()
        ))
    })?;
    out.say(format!(
        "Valid: {} is {name}, entry {} of {}'s log at size {} (checkpoint signed by {}).",
        archive.display(),
        verified.index,
        origin.as_str(),
        verified.checkpoint.size(),
        channel_key.fingerprint()
    ));
    out.json(serde_json::json!({
        "valid": true,
        "release": name,
        "index": verified.index,
        "checkpoint_size": verified.checkpoint.size(),
        "origin": origin.as_str(),
    }));
    Ok(())
}
