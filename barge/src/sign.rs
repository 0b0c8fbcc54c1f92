//! `barge sign`: a Halite-compatible signature file beside the signed file.

use std::path::PathBuf;

use keyggdrasil::filesig;

use crate::build::write_file;
use crate::error::{Error, io_at};
use crate::key::{read_key_file, unlock};
use crate::output::Output;

/// Arguments of `barge sign`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file to sign.
    pub file: PathBuf,
    /// The key file to sign with.
    #[arg(long)]
    pub key: PathBuf,
    /// Read the key's passphrase from standard input.
    #[arg(long)]
    pub passphrase_stdin: bool,
}

/// Runs `barge sign`.
pub fn run(out: &Output, a: Args) -> Result<(), Error> {
    let kf = read_key_file(&a.key)?;
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
