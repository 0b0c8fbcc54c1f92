//! Signs one file with a fresh key and prints the signature (and the public key).
//!
//! Used by `benches/compare.sh` to check that peak memory does not grow with the file size:
//! `/usr/bin/time -v target/release/examples/sign_file FILE`.

use std::fs::File;
use std::process::ExitCode;

use keyggdrasil::filesig;
use keyggdrasil::keys::KeyPair;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: sign_file FILE");
        return ExitCode::from(2);
    };
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cannot open {}: {e}", path.to_string_lossy());
            return ExitCode::FAILURE;
        }
    };
    let kp = KeyPair::generate();
    match filesig::sign(&kp, file) {
        Ok(sig) => {
            println!("public key {}", kp.public());
            println!("signature  {}", sig.to_hex());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot read {}: {e}", path.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}
