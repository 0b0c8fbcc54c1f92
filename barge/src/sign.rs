//! `barge sign`: a Halite-compatible signature file beside the signed file.

use std::path::{Path, PathBuf};

use keyggdrasil::filesig;

use crate::build::write_file;
use crate::error::{Error, io_at};
use crate::key::{resolve, unlock};
use crate::output::Output;

/// Arguments of `barge sign`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file to sign.
    pub file: PathBuf,
    /// The key to sign with: a key file path, or a unique prefix of a key file name or
    /// fingerprint in `--dir`'s `local/` (see `barge key list`).
    #[arg(long)]
    pub key: String,
    /// Read the key's passphrase from standard input.
    #[arg(long)]
    pub passphrase_stdin: bool,
}

/// Runs `barge sign`.
pub fn run(dir: &Path, out: &Output, a: Args) -> Result<(), Error> {
    let named = resolve(dir, &a.key)?;
    let Some((_, kf)) = named.file else {
        return Err(Error::NoKeyFile {
            option: "--key",
            text: a.key,
            why: "signing needs the key's file (its derivation record)",
        });
    };
    let f = std::fs::File::open(&a.file).map_err(io_at("could not open", &a.file))?;
    let kp = unlock(&kf, a.passphrase_stdin)?;
    let sig = filesig::sign(&kp, f).map_err(io_at("could not read", &a.file))?;
    let mut sig_path = a.file.clone().into_os_string();
    sig_path.push(".sig");
    let sig_path = PathBuf::from(sig_path);
    write_file(&sig_path, filesig::signature_text(&sig).as_bytes())?;
    out.say(format!(
        "Signed {} with key {}\nsignature: {}",
        a.file.display(),
        kp.public().fingerprint(),
        sig_path.display()
    ));
    out.json(serde_json::json!({
        "file": a.file,
        "signature_file": sig_path,
        "signature": sig.to_hex(),
        "public_key": kp.public().to_hex(),
    }));
    Ok(())
}
