//! `barge verify`: checks a file signature; exit 0 valid, 1 invalid, 2 usage error.

use std::path::PathBuf;

use keyggdrasil::filesig::{self, FileSigError};
use keyggdrasil::keys::PublicKey;

use crate::error::Error;
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
    let key = PublicKey::from_hex(&a.public_key)
        .map_err(|e| Error::Usage(format!("--public-key is not a valid public key: {e}")))?;
    let text = match (&a.signature, &a.signature_file) {
        (Some(s), _) => s.clone(),
        (None, Some(p)) => std::fs::read_to_string(p)
            .map_err(|e| Error::Usage(format!("could not read {}: {e}", p.display())))?,
        (None, None) => return Err(Error::Usage("no signature given".to_owned())),
    };
    let sig = filesig::parse_signature_text(&text)
        .map_err(|e| Error::Usage(format!("the signature is malformed: {e}")))?;
    let f = std::fs::File::open(&a.file)
        .map_err(|e| Error::Usage(format!("could not open {}: {e}", a.file.display())))?;
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
            Err(Error::Invalid(format!(
                "INVALID: the signature of {} does not verify with key {}",
                a.file.display(),
                key.fingerprint()
            )))
        }
        Err(e) => Err(Error::Usage(format!(
            "could not read {}: {e}",
            a.file.display()
        ))),
    }
}
