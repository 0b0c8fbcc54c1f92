//! Derives one key pair with Argon2i at libsodium's "moderate" level (ops 6, 128 MiB) from a
//! fixed passphrase and salt, and prints the public key.
//!
//! Used by `benches/compare.sh` to compare the CPU time (user + system, from `/usr/bin/time`) of
//! one derivation with libsodium's, a figure that does not count time spent waiting for a CPU on a
//! busy machine.

use keyggdrasil::kdf::{Derivation, Level};

fn main() {
    let (ops, mem) = Level::Moderate.limits();
    let d = Derivation::with_salt([7u8; 16], ops, mem);
    match d.derive_keypair(b"correct horse battery staple") {
        Ok(kp) => println!("{}", kp.public()),
        Err(e) => {
            eprintln!("derivation failed: {e}");
            std::process::exit(1);
        }
    }
}
