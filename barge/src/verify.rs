//! `barge verify`: checks a file signature; exit 0 valid, 1 invalid, 2 usage error, 5 when the
//! file or the signature file cannot be read (the path is named).

use std::path::PathBuf;

use keyggdrasil::filesig::{self, FileSigError};
use keyggdrasil::keys::PublicKey;

use crate::error::{Error, io_at};
use crate::output::Output;

/// Arguments of `barge verify`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("sig").required(true).args(["signature", "signature_file"])))]
pub struct Args {
    /// The signer's public key (64 hex).
    #[arg(long)]
    pub public_key: String,
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
