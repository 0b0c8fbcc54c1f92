//! Passphrases: prompted on the terminal without echo, read from standard input for scripts,
//! or generated as BIP-39 words; key derivation with a progress indicator; and the
//! key-derivation costs, with a test-only cheap override.
//!
//! Passphrases are held in zeroizing memory. The terminal prompt goes through `rpassword`,
//! which reads `/dev/tty` with echo off; its returned `String` is moved straight into a
//! `Zeroizing` wrapper (the crate's own intermediate buffers are outside our control).

use std::io::{BufRead, IsTerminal, Read, Write};
use std::time::{Duration, Instant};

use keyggdrasil::kdf::{
    Derivation, Level, MAX_PASSPHRASE_LEN, SALT_LEN, WordCount, generate_passphrase,
};
use keyggdrasil::keys::KeyPair;
use zeroize::Zeroizing;

use crate::Tool;
use crate::error::Error;
use crate::output::warn_loudly;

/// Reads one line from standard input (the trailing `\n` or `\r\n` removed) into zeroizing
/// memory. The buffer is allocated up front so it never moves (no stray copies).
pub fn read_stdin_line() -> Result<Zeroizing<Vec<u8>>, Error> {
    let cap = MAX_PASSPHRASE_LEN + 2;
    let mut buf = Zeroizing::new(Vec::with_capacity(cap));
    std::io::stdin()
        .lock()
        .take(cap as u64)
        .read_until(b'\n', &mut buf)
        .map_err(|source| Error::ReadPassphrase {
            from: "stdin",
            source,
        })?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    check_length(buf, "read from stdin")
}

/// `from` says where an empty passphrase came from, for the message.
fn check_length(buf: Zeroizing<Vec<u8>>, from: &'static str) -> Result<Zeroizing<Vec<u8>>, Error> {
    if buf.is_empty() {
        return Err(Error::EmptyPassphrase { from });
    }
    if buf.len() > MAX_PASSPHRASE_LEN {
        return Err(Error::PassphraseTooLong {
            limit: MAX_PASSPHRASE_LEN,
        });
    }
    Ok(buf)
}

/// True if standard input is a terminal we may prompt on.
pub fn can_prompt() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks for a passphrase on the terminal without echo.
pub fn prompt(text: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    let s = Zeroizing::new(rpassword::prompt_password(text).map_err(|source| {
        Error::ReadPassphrase {
            from: "the terminal",
            source,
        }
    })?);
    check_length(Zeroizing::new(s.as_bytes().to_vec()), "typed")
}

/// The passphrase to unlock an existing key: standard input with `--passphrase-stdin`, else a
/// prompt on the terminal, else a usage error.
pub fn for_unlock(stdin: bool) -> Result<Zeroizing<Vec<u8>>, Error> {
    if stdin {
        read_stdin_line()
    } else if can_prompt() {
        prompt("Passphrase: ")
    } else {
        Err(Error::NoTerminalToUnlock)
    }
}

/// The passphrase for a new key and whether it was generated: generated words (`Some(12|24)`),
/// standard input, or asked twice on the terminal.
pub fn for_new(
    stdin: bool,
    generate_words: Option<&str>,
) -> Result<(Zeroizing<Vec<u8>>, bool), Error> {
    if let Some(n) = generate_words {
        let words = match n {
            "12" => WordCount::Twelve,
            "24" => WordCount::TwentyFour,
            other => {
                return Err(Error::WordCount(other.to_owned()));
            }
        };
        let phrase = generate_passphrase(words).map_err(Error::GeneratePassphrase)?;
        return Ok((Zeroizing::new(phrase.as_bytes().to_vec()), true));
    }
    if stdin {
        return Ok((read_stdin_line()?, false));
    }
    if !can_prompt() {
        return Err(Error::NoTerminalForNew);
    }
    let first = prompt("New passphrase: ")?;
    let second = prompt("Repeat the passphrase: ")?;
    if first.as_slice() != second.as_slice() {
        return Err(Error::PassphrasesDiffer);
    }
    Ok((first, false))
}

/// The strength floor of a new key's passphrase: zxcvbn score 3 of 4 ("safely unguessable",
/// an estimated 10^10 guesses or more). A key's salt and Argon2i costs are public in the log,
/// so the passphrase is all that stands against an offline guesser; the costs multiply each
/// guess, they do not replace a strong passphrase. Generated 12- and 24-word passphrases pass.
pub const MIN_SCORE: u8 = 3;

/// Refuses a new key's passphrase below [`MIN_SCORE`] ([`Error::WeakPassphrase`], naming
/// `--generate-words`), unless `allow_weak`, which prints a loud warning instead. `context`
/// are words the passphrase should not be built from (the supplier name, the tool's name):
/// zxcvbn counts them as easy to guess.
///
/// zxcvbn looks at the first 100 characters only, and it copies the text into its own buffers,
/// which are not zeroized (the passphrase itself stays in zeroizing memory here). This does not
/// check that the passphrase is unused elsewhere or not leaked: only how guessable it looks.
pub fn check_strength(pass: &[u8], allow_weak: bool, context: &[&str]) -> Result<(), Error> {
    let text = Zeroizing::new(String::from_utf8_lossy(pass).into_owned());
    let estimate = zxcvbn::zxcvbn(&text, context);
    let score = u8::from(estimate.score());
    if score >= MIN_SCORE {
        return Ok(());
    }
    if allow_weak {
        warn_loudly(&format!(
            "--allow-weak-passphrase: this passphrase is WEAK (strength {score} of 4, at least \
             {MIN_SCORE} recommended). The key's salt and costs are public in the channel's log; \
             anyone can guess this passphrase offline and sign as you. Replace the key soon."
        ));
        return Ok(());
    }
    let advice = estimate
        .feedback()
        .map(|f| f.to_string().trim().trim_end_matches('.').to_owned())
        .unwrap_or_default();
    Err(Error::WeakPassphrase { score, advice })
}

/// Shows a generated passphrase once, on stderr only, so `--json` output and logs of stdout
/// never carry it.
pub fn show_generated_once(pass: &[u8]) {
    eprintln!();
    warn_loudly(
        "this is your new passphrase. It is shown ONCE and stored NOWHERE. \
         Write it down on paper now; without it this key is lost.",
    );
    eprintln!("\n    {}\n", String::from_utf8_lossy(pass));
}

/// A fresh derivation record at `level`, or at the smallest costs when `tool.test_kdf_env` is
/// `cheap` (with a loud warning).
pub fn new_derivation(tool: &Tool, level: Level) -> Derivation {
    if std::env::var(tool.test_kdf_env).as_deref() == Ok("cheap") {
        warn_loudly(&format!(
            "{}=cheap: deriving with the smallest Argon2i costs (ops 3, 8 KiB). \
             FOR TESTS ONLY: such a key is easy to brute-force.",
            tool.test_kdf_env
        ));
        let fresh = Derivation::new(level);
        return Derivation::with_salt(fresh.salt, 3, 8192);
    }
    Derivation::new(level)
}

/// Parses a salt given in hex.
pub fn parse_salt(text: &str) -> Result<[u8; SALT_LEN], Error> {
    let bytes = hex::decode(text).map_err(Error::SaltNotHex)?;
    bytes
        .try_into()
        .map_err(|_| Error::SaltLength { len: SALT_LEN })
}

/// Derivations at least this large get a progress indicator on a terminal.
const PROGRESS_FROM_BYTES: u64 = 64 * 1024 * 1024;

/// Derives the key pair, showing a spinner with elapsed seconds on stderr while a slow
/// derivation runs, if stderr is a terminal and `NO_COLOR` is unset
/// ([`crate::output::colour_on_stderr`]). Otherwise nothing extra is printed, so logs stay
/// clean.
pub fn derive_with_progress(d: &Derivation, pass: &[u8]) -> Result<KeyPair, Error> {
    // A redrawn line is decoration: only on a terminal, and not with NO_COLOR.
    let show = d.mem_limit >= PROGRESS_FROM_BYTES && crate::output::colour_on_stderr();
    if !show {
        return d.derive_keypair(pass).map_err(Error::Derive);
    }
    let start = Instant::now();
    let result = std::thread::scope(|s| {
        let worker = s.spawn(|| d.derive_keypair(pass));
        let frames = ['|', '/', '-', '\\'];
        let mut i = 0usize;
        while !worker.is_finished() {
            eprint!(
                "\r  deriving {} {:>4.1}s",
                frames[i % frames.len()],
                start.elapsed().as_secs_f64()
            );
            let _ = std::io::stderr().flush();
            i += 1;
            std::thread::sleep(Duration::from_millis(150));
        }
        worker.join()
    });
    eprintln!(
        "\r  derived in {:.1}s          ",
        start.elapsed().as_secs_f64()
    );
    match result {
        Ok(r) => r.map_err(Error::Derive),
        Err(_) => Err(Error::DeriveThread),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ErrorKind;

    #[test]
    fn salts_must_be_16_bytes_of_hex() {
        assert_eq!(parse_salt(&"ab".repeat(16)).unwrap(), [0xab; 16]);
        assert_eq!(parse_salt("abc").unwrap_err().kind(), ErrorKind::Usage);
        let e = parse_salt(&"ab".repeat(15)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert_eq!(e.to_string(), "salt must be 16 bytes (32 hex digits)");
        assert!(parse_salt(&"zz".repeat(16)).is_err());
    }

    #[test]
    fn generated_passphrases_have_the_asked_number_of_words() {
        let (p, generated) = for_new(false, Some("12")).unwrap();
        assert!(generated);
        assert_eq!(String::from_utf8_lossy(&p).split(' ').count(), 12);
        let (p, _) = for_new(false, Some("24")).unwrap();
        assert_eq!(String::from_utf8_lossy(&p).split(' ').count(), 24);
        assert!(for_new(false, Some("13")).is_err());
    }

    #[test]
    fn weak_passphrases_are_refused_unless_allowed_and_generated_ones_pass() {
        for weak in ["x", "letmein", "acme2024", "qwertyuiop", "Password1"] {
            let e = check_strength(weak.as_bytes(), false, &["acme"]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage, "{weak}");
            let text = e.to_string();
            assert!(text.contains("--generate-words"), "{text}");
            if weak.len() > 4 {
                assert!(
                    !text.contains(weak),
                    "the message must not repeat it: {text}"
                );
            }
            check_strength(weak.as_bytes(), true, &[]).unwrap();
        }
        // The supplier's own name is no strength.
        assert!(check_strength(b"acmeacme", false, &["acme"]).is_err());
        // Strong enough: the test and demo passphrases of this workspace among them.
        for strong in [
            "tarnish velvet orbit canyon mistral 7 quill",
            "correct horse battery staple",
            "demo master passphrase, not a secret",
            "demo signing passphrase, not a secret",
            "a brand new passphrase for the recovered key",
        ] {
            check_strength(strong.as_bytes(), false, &["acme", "barge"]).unwrap();
        }
        for n in ["12", "24"] {
            for _ in 0..20 {
                let (p, _) = for_new(false, Some(n)).unwrap();
                check_strength(&p, false, &["acme"]).unwrap();
            }
        }
    }

    #[test]
    fn cheap_test_derivation_only_with_the_variable() {
        let tool = Tool {
            name: "t",
            test_kdf_env: "SHIPYARD_TEST_KDF_NEVER_SET",
        };
        let d = new_derivation(&tool, Level::Moderate);
        assert_eq!((d.ops_limit, d.mem_limit), Level::Moderate.limits());
    }

    #[test]
    fn slow_derivations_without_a_terminal_still_derive() {
        let d = Derivation::with_salt([3; 16], 3, 8192);
        let a = derive_with_progress(&d, b"pw").unwrap();
        let b = d.derive_keypair(b"pw").unwrap();
        assert_eq!(a.public(), b.public());
    }
}
