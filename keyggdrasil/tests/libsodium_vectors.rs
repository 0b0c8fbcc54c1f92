//! Cross-checks keyggdrasil against vectors made by libsodium (through PyNaCl) and, for HKDF, by an
//! independent Python implementation. The vectors live in `fixtures/libsodium/` and are produced by
//! `fixtures/libsodium/generate.py`; these tests only read the JSON and never run Python.
//!
//! Every case is checked through keyggdrasil's public API. Valid cases must match byte for byte
//! (Ed25519 is deterministic, so our signature must equal libsodium's); invalid ones must be
//! refused. Each test checks all of its cases and then reports every failing case by name.

use std::io::{self, Read};
use std::path::PathBuf;

use keyggdrasil::encoding::{from_hex_array, from_hex_vec, to_hex};
use keyggdrasil::filesig::{
    FileSigError, archive_digest, digest_both, keyed_digest, sign, sign_digest, verify,
    verify_digest,
};
use keyggdrasil::kdf::{Derivation, KdfError, Purpose, SiteSecret, hkdf_blake2b512};
use keyggdrasil::keys::{KeyPair, PublicKey, Signature};
use serde::Deserialize;
use zeroize::Zeroizing;

// ---------------------------------------------------------------------------------------------
// Reading the fixtures
// ---------------------------------------------------------------------------------------------

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
        .join("libsodium")
        .join(name)
}

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = fixture_path(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("cannot parse fixture {}: {e}", path.display()))
}

/// The provenance every fixture file records at its top.
#[derive(Deserialize)]
struct Header {
    description: String,
    generator: String,
    pynacl_version: String,
    libsodium_version: String,
}

fn hex_vec(text: &str) -> Vec<u8> {
    from_hex_vec(text, "a fixture value", 1 << 20).expect("fixture hex")
}

fn hex32(text: &str) -> [u8; 32] {
    from_hex_array::<32>(text, "a 32-byte fixture value").expect("fixture hex")
}

fn hex64(text: &str) -> [u8; 64] {
    from_hex_array::<64>(text, "a 64-byte fixture value").expect("fixture hex")
}

/// Collects failures so that one run names every failing case, not just the first.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, case: &str, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(format!("{case}: {}", what()));
        }
    }
    fn eq_hex(&mut self, case: &str, what: &str, ours: &[u8], theirs: &[u8]) {
        self.check(case, ours == theirs, || {
            format!(
                "{what} differs\n    keyggdrasil: {}\n    vector:      {}",
                to_hex(ours),
                to_hex(theirs)
            )
        });
    }
    fn assert_none(self, file: &str) {
        assert!(
            self.0.is_empty(),
            "{} case(s) of {file} disagree:\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// argon2i.json
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Argon2File {
    #[serde(flatten)]
    header: Header,
    cases: Vec<Argon2Case>,
    refused: Vec<Argon2Refused>,
}

#[derive(Deserialize)]
struct Argon2Case {
    name: String,
    level: String,
    passphrase: String,
    passphrase_hex: String,
    salt: String,
    ops_limit: u32,
    mem_limit: u64,
    seed: String,
    public_key: String,
}

#[derive(Deserialize)]
struct Argon2Refused {
    name: String,
    expect: String,
    passphrase_hex: String,
    salt: String,
    ops_limit: u32,
    mem_limit: u64,
    why: String,
}

fn argon2_cases(level: &str) -> Vec<Argon2Case> {
    let file: Argon2File = load("argon2i.json");
    file.cases
        .into_iter()
        .filter(|c| c.level == level)
        .collect()
}

fn check_argon2_cases(cases: &[Argon2Case]) {
    let mut f = Failures::default();
    for c in cases {
        let n = c.name.as_str();
        let passphrase = hex_vec(&c.passphrase_hex);
        f.check(n, c.passphrase.as_bytes() == passphrase.as_slice(), || {
            "passphrase and passphrase_hex disagree in the fixture".into()
        });
        let salt = from_hex_array::<16>(&c.salt, "a salt").expect("fixture salt");
        let record = Derivation::with_salt(salt, c.ops_limit, c.mem_limit);
        // The same record, as it would be stored beside a key.
        let stored = format!(
            r#"{{"alg":"argon2i13","salt":"{}","ops_limit":{},"mem_limit":{}}}"#,
            c.salt, c.ops_limit, c.mem_limit
        );
        let parsed: Derivation = serde_json::from_str(&stored).expect("derivation record");
        f.check(n, parsed == record, || {
            "stored record parses differently".into()
        });

        let seed = match record.derive_seed(&passphrase) {
            Ok(seed) => seed,
            Err(e) => {
                f.check(n, false, || {
                    format!("derive_seed refused a libsodium case: {e}")
                });
                continue;
            }
        };
        f.eq_hex(n, "Argon2i seed", &*seed, &hex32(&c.seed));
        let from_seed = KeyPair::from_seed(&hex32(&c.seed)).expect("libsodium public key");
        f.eq_hex(
            n,
            "public key of KeyPair::from_seed(libsodium seed)",
            from_seed.public().as_bytes(),
            &hex32(&c.public_key),
        );
        match record.derive_keypair(&passphrase) {
            Ok(kp) => {
                f.eq_hex(
                    n,
                    "derive_keypair public key",
                    kp.public().as_bytes(),
                    &hex32(&c.public_key),
                );
                f.eq_hex(n, "derive_keypair seed", &*kp.seed(), &hex32(&c.seed));
            }
            Err(e) => f.check(n, false, || format!("derive_keypair failed: {e}")),
        }
        f.check(n, PublicKey::from_hex(&c.public_key).is_ok(), || {
            "libsodium's public key is refused by PublicKey::from_hex".into()
        });
    }
    f.assert_none("argon2i.json");
}

#[test]
fn argon2i_cheap_keys_equal_libsodium_crypto_pwhash_and_seed_keypair() {
    let cases = argon2_cases("cheap");
    assert!(
        cases.len() >= 8,
        "expected the cheap cases, found {}",
        cases.len()
    );
    assert!(
        cases.iter().any(|c| c.mem_limit == 8192) && cases.iter().any(|c| c.mem_limit == 65536)
    );
    check_argon2_cases(&cases);
}

#[test]
fn argon2i_interactive_keys_equal_libsodium() {
    let cases = argon2_cases("interactive");
    assert_eq!(cases.len(), 2);
    assert!(
        cases
            .iter()
            .all(|c| (c.ops_limit, c.mem_limit) == (4, 32 << 20))
    );
    check_argon2_cases(&cases);
}

/// The level keyggdrasil uses for signing keys (128 MiB; the dev profile optimises argon2).
#[test]
fn argon2i_moderate_key_equals_libsodium() {
    let cases = argon2_cases("moderate");
    assert_eq!(cases.len(), 1);
    assert!(
        cases
            .iter()
            .all(|c| (c.ops_limit, c.mem_limit) == (6, 128 << 20))
    );
    check_argon2_cases(&cases);
}

#[test]
fn passphrases_are_bytes_without_unicode_normalisation() {
    let cases = argon2_cases("cheap");
    let seed_of = |name: &str| {
        cases
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.seed.clone())
            .unwrap_or_else(|| panic!("case {name} missing"))
    };
    // NFC and NFD spell the same text with different bytes; like libsodium, we hash the bytes.
    assert_ne!(seed_of("min-unicode-nfc"), seed_of("min-unicode-nfd"));
}

#[test]
fn argon2i_out_of_range_records_are_refused() {
    let file: Argon2File = load("argon2i.json");
    assert!(file.refused.len() >= 4);
    let mut f = Failures::default();
    for c in &file.refused {
        let n = c.name.as_str();
        assert_eq!(c.expect, "refused");
        let salt = from_hex_array::<16>(&c.salt, "a salt").expect("fixture salt");
        let record = Derivation::with_salt(salt, c.ops_limit, c.mem_limit);
        let result = record.derive_seed(&hex_vec(&c.passphrase_hex));
        let expected_kind = match n {
            "ops-below-minimum" => matches!(result, Err(KdfError::OpsLimit(_))),
            "mem-below-minimum" | "mem-not-multiple-of-1024" => {
                matches!(result, Err(KdfError::MemLimit(_)))
            }
            "empty-passphrase" => matches!(result, Err(KdfError::Passphrase)),
            _ => result.is_err(),
        };
        f.check(n, expected_kind, || match &result {
            Ok(_) => format!("accepted, but must be refused: {}", c.why),
            Err(e) => format!("refused with an unexpected error: {e}"),
        });
    }
    f.assert_none("argon2i.json (refused)");
}

// ---------------------------------------------------------------------------------------------
// filesig.json
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct FileSigFile {
    #[serde(flatten)]
    header: Header,
    file_rule: FileRule,
    signers: Signers,
    cases: Vec<FileSigCase>,
}

#[derive(Deserialize)]
struct FileRule {
    name: String,
}

#[derive(Deserialize)]
struct Signers {
    #[serde(rename = "A")]
    a: Signer,
    #[serde(rename = "B")]
    b: Signer,
}

#[derive(Deserialize)]
struct Signer {
    seed: String,
    public_key: String,
}

#[derive(Deserialize)]
struct FileSigCase {
    name: String,
    expect: String,
    file: FileSpec,
    public_key: String,
    signature: String,
    // Valid cases only.
    first_bytes: Option<String>,
    seed: Option<String>,
    size: Option<u64>,
    unkeyed_digest: Option<String>,
    keyed_digest: Option<String>,
    // Invalid cases only.
    why: Option<String>,
}

#[derive(Deserialize)]
struct FileSpec {
    len: usize,
    mutation: Option<Mutation>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Mutation {
    FlipBit { byte: usize, bit: u8 },
    Truncate { new_len: usize },
    Append { bytes: String },
}

/// The fixture's file rule: `byte[i] = (i * 31 + 7) mod 251`.
fn pattern_byte(i: usize) -> u8 {
    // i mod 251 first, so the product cannot overflow; the result is below 251.
    ((i % 251 * 31 + 7) % 251) as u8
}

fn pattern_file(len: usize) -> Vec<u8> {
    (0..len).map(pattern_byte).collect()
}

/// Streams the same pattern without holding the file, in reads of at most `step` bytes, so the
/// digest is also checked over read sizes that do not line up with filesig's own chunks.
struct PatternReader {
    pos: usize,
    len: usize,
    step: usize,
}

impl Read for PatternReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.len - self.pos);
        for (slot, i) in buf.iter_mut().zip(self.pos..self.pos + n) {
            *slot = pattern_byte(i);
        }
        self.pos += n;
        Ok(n)
    }
}

fn mutated(spec: &FileSpec) -> Vec<u8> {
    let mut data = pattern_file(spec.len);
    match &spec.mutation {
        None => {}
        Some(Mutation::FlipBit { byte, bit }) => data[*byte] ^= 1 << bit,
        Some(Mutation::Truncate { new_len }) => data.truncate(*new_len),
        Some(Mutation::Append { bytes }) => data.extend_from_slice(&hex_vec(bytes)),
    }
    data
}

fn filesig_file() -> FileSigFile {
    let file: FileSigFile = load("filesig.json");
    assert_eq!(file.file_rule.name, "affine-mod-251", "unknown file rule");
    file
}

#[test]
fn file_signatures_equal_libsodium_halite_file_sign_byte_for_byte() {
    let file = filesig_file();
    let valid: Vec<&FileSigCase> = file.cases.iter().filter(|c| c.expect == "valid").collect();
    let mut sizes: Vec<usize> = valid.iter().map(|c| c.file.len).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [0, 1, 1000, 256 << 10, (256 << 10) + 1, 3 << 20]);

    let mut f = Failures::default();
    for c in valid {
        let n = c.name.as_str();
        let data = pattern_file(c.file.len);
        let first = c.first_bytes.as_deref().expect("first_bytes");
        f.check(n, to_hex(&data[..data.len().min(16)]) == first, || {
            "the file rule regenerates different bytes than the generator's".into()
        });
        let seed = hex32(c.seed.as_deref().expect("seed"));
        let kp = KeyPair::from_seed(&seed).expect("signer key");
        let pk = PublicKey::from_hex(&c.public_key).expect("public key");
        f.eq_hex(n, "public key", kp.public().as_bytes(), pk.as_bytes());
        let want_keyed = hex64(c.keyed_digest.as_deref().expect("keyed_digest"));
        let want_plain = hex64(c.unkeyed_digest.as_deref().expect("unkeyed_digest"));
        let want_size = c.size.expect("size");
        let want_sig = Signature::from_hex(&c.signature).expect("signature");

        let keyed = keyed_digest(&pk, &data[..]).expect("read");
        f.eq_hex(
            n,
            "keyed BLAKE2b-512 (key = public key)",
            &keyed,
            &want_keyed,
        );
        let streamed = keyed_digest(
            &pk,
            PatternReader {
                pos: 0,
                len: c.file.len,
                step: 65_537,
            },
        )
        .expect("read");
        f.eq_hex(
            n,
            "keyed digest streamed in odd reads",
            &streamed,
            &want_keyed,
        );
        let (size, plain) = archive_digest(&data[..]).expect("read");
        f.check(n, size == want_size, || {
            format!("archive size {size} != {want_size}")
        });
        f.eq_hex(n, "unkeyed BLAKE2b-512", &plain, &want_plain);
        let (size2, plain2, keyed2) = digest_both(&pk, &data[..]).expect("read");
        f.check(n, size2 == want_size, || {
            format!("digest_both size {size2} != {want_size}")
        });
        f.eq_hex(n, "digest_both unkeyed", &plain2, &want_plain);
        f.eq_hex(n, "digest_both keyed", &keyed2, &want_keyed);

        let ours = sign(&kp, &data[..]).expect("read");
        f.eq_hex(
            n,
            "filesig::sign signature",
            ours.as_bytes(),
            want_sig.as_bytes(),
        );
        let ours_digest = sign_digest(&kp, &want_keyed);
        f.eq_hex(
            n,
            "filesig::sign_digest signature",
            ours_digest.as_bytes(),
            want_sig.as_bytes(),
        );

        f.check(n, verify(&pk, &want_sig, &data[..]).is_ok(), || {
            "verify refuses libsodium's signature".into()
        });
        f.check(
            n,
            verify_digest(&pk, &want_sig, &want_keyed).is_ok(),
            || "verify_digest refuses libsodium's signature".into(),
        );
    }
    f.assert_none("filesig.json (valid)");
}

#[test]
fn file_signature_signers_are_the_recorded_libsodium_keys() {
    let file = filesig_file();
    for s in [&file.signers.a, &file.signers.b] {
        let kp = KeyPair::from_seed(&hex32(&s.seed)).expect("signer");
        assert_eq!(kp.public().to_hex(), s.public_key);
    }
    assert!(
        file.cases
            .iter()
            .filter(|c| c.expect == "valid")
            .all(|c| c.public_key == file.signers.a.public_key)
    );
}

#[test]
fn mutated_files_and_signatures_are_refused_like_libsodium_refuses_them() {
    let file = filesig_file();
    let invalid: Vec<&FileSigCase> = file
        .cases
        .iter()
        .filter(|c| c.expect == "invalid")
        .collect();
    // Every kind of negative the vectors promise is present.
    for needed in [
        "file-bit-flipped-middle",
        "signature-bit-flipped-in-r",
        "signature-bit-flipped-in-s",
        "signature-over-unkeyed-digest",
        "signature-over-empty-key-digest",
        "signature-over-raw-file-bytes",
        "signature-by-other-key",
        "file-truncated-by-one-byte",
    ] {
        assert!(
            invalid.iter().any(|c| c.name == needed),
            "negative {needed} missing"
        );
    }
    assert!(
        file.cases
            .iter()
            .all(|c| c.expect == "valid" || c.expect == "invalid"),
        "every case is either valid or invalid"
    );

    let mut f = Failures::default();
    for c in invalid {
        let n = c.name.as_str();
        let why = c.why.as_deref().unwrap_or("");
        let data = mutated(&c.file);
        let pk = PublicKey::from_hex(&c.public_key).expect("public key");
        let sig = Signature::from_hex(&c.signature).expect("signature encoding");
        match verify(&pk, &sig, &data[..]) {
            Err(FileSigError::Mismatch(_)) => {}
            Err(e) => f.check(n, false, || format!("refused for the wrong reason: {e}")),
            Ok(()) => f.check(n, false, || {
                format!("accepted, but must be refused ({why})")
            }),
        }
        let digest = keyed_digest(&pk, &data[..]).expect("read");
        f.check(n, verify_digest(&pk, &sig, &digest).is_err(), || {
            format!("verify_digest accepted, but must be refused ({why})")
        });
    }
    f.assert_none("filesig.json (invalid)");
}

#[test]
fn an_empty_blake2b_key_is_no_key_so_only_the_public_key_may_key_the_digest() {
    let file = filesig_file();
    let case = |name: &str| {
        file.cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("case {name} missing"))
    };
    // The generator asserted keyed-with-empty-key == unkeyed; Ed25519 is deterministic, so the two
    // negatives carry the same signature, and neither verifies.
    assert_eq!(
        case("signature-over-empty-key-digest").signature,
        case("signature-over-unkeyed-digest").signature
    );
    let valid = case("1000-bytes");
    let data = pattern_file(1000);
    let pk = PublicKey::from_hex(&valid.public_key).expect("public key");
    let (_, plain) = archive_digest(&data[..]).expect("read");
    assert_ne!(plain, keyed_digest(&pk, &data[..]).expect("read"));
    let over_plain = Signature::from_hex(&case("signature-over-unkeyed-digest").signature).unwrap();
    // The signature is a correct Ed25519 signature of the unkeyed digest, yet not a file signature.
    assert!(pk.verify_strict(&plain, &over_plain).is_ok());
    assert!(verify(&pk, &over_plain, &data[..]).is_err());
}

// ---------------------------------------------------------------------------------------------
// hkdf_blake2b.json
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct HkdfFile {
    #[serde(flatten)]
    header: Header,
    cases: Vec<HkdfCase>,
    site_secret: SiteSecretVectors,
}

#[derive(Deserialize)]
struct HkdfCase {
    name: String,
    expect: String,
    ikm: String,
    salt: Option<String>,
    info: String,
    length: usize,
    okm: Option<String>,
}

#[derive(Deserialize)]
struct SiteSecretVectors {
    secret: String,
    purposes: Vec<PurposeVector>,
}

#[derive(Deserialize)]
struct PurposeVector {
    purpose: String,
    info: String,
    key: String,
    public_key: Option<String>,
}

#[test]
fn hkdf_blake2b512_equals_an_independent_rfc5869_implementation() {
    let file: HkdfFile = load("hkdf_blake2b.json");
    let lengths: Vec<usize> = file.cases.iter().map(|c| c.length).collect();
    for needed in [32, 64, 65, 255 * 64] {
        assert!(lengths.contains(&needed), "no case of length {needed}");
    }
    let mut f = Failures::default();
    let mut valid = 0;
    for c in file.cases.iter().filter(|c| c.expect == "valid") {
        valid += 1;
        let n = c.name.as_str();
        let salt = c.salt.as_deref().map(hex_vec);
        let mut out = vec![0u8; c.length];
        match hkdf_blake2b512(
            &hex_vec(&c.ikm),
            salt.as_deref(),
            &hex_vec(&c.info),
            &mut out,
        ) {
            Ok(()) => f.eq_hex(
                n,
                "HKDF output",
                &out,
                &hex_vec(c.okm.as_deref().expect("okm")),
            ),
            Err(e) => f.check(n, false, || format!("refused a valid length: {e}")),
        }
    }
    assert!(valid >= 10);
    f.assert_none("hkdf_blake2b.json");
}

#[test]
fn hkdf_refuses_more_than_255_blocks_of_output() {
    let file: HkdfFile = load("hkdf_blake2b.json");
    let errors: Vec<&HkdfCase> = file.cases.iter().filter(|c| c.expect == "error").collect();
    assert!(!errors.is_empty());
    for c in errors {
        let salt = c.salt.as_deref().map(hex_vec);
        let mut out = vec![0u8; c.length];
        let result = hkdf_blake2b512(
            &hex_vec(&c.ikm),
            salt.as_deref(),
            &hex_vec(&c.info),
            &mut out,
        );
        assert_eq!(
            result,
            Err(KdfError::HkdfLength(c.length)),
            "case {}",
            c.name
        );
    }
}

#[test]
fn site_secret_purpose_keys_equal_the_hkdf_vectors_with_the_exact_info_strings() {
    let file: HkdfFile = load("hkdf_blake2b.json");
    let v = &file.site_secret;
    let secret = SiteSecret::from_bytes(Zeroizing::new(hex32(&v.secret)));
    let mut seen = Vec::new();
    for p in &v.purposes {
        let purpose = match p.purpose.as_str() {
            "notary_signing_seed" => Purpose::NotarySigningSeed,
            "internal_mac" => Purpose::InternalMac,
            other => panic!("fixture names an unknown purpose {other}"),
        };
        seen.push(purpose);
        // Changing an info string changes every site's keys: it must be deliberate, with new vectors.
        assert_eq!(
            purpose.info(),
            p.info.as_bytes(),
            "Purpose::{purpose:?}.info() differs from the vectors"
        );
        assert_eq!(
            to_hex(&*secret.derive(purpose)),
            p.key,
            "SiteSecret::derive({purpose:?})"
        );
        let mut out = [0u8; 32];
        hkdf_blake2b512(&hex32(&v.secret), None, p.info.as_bytes(), &mut out).unwrap();
        assert_eq!(to_hex(&out), p.key, "hkdf_blake2b512 for {purpose:?}");
        if let Some(pk) = &p.public_key {
            assert_eq!(purpose, Purpose::NotarySigningSeed);
            let notary = secret.notary_keypair().expect("notary key");
            assert_eq!(
                &notary.public().to_hex(),
                pk,
                "notary public key vs libsodium"
            );
        }
    }
    assert_eq!(seen, [Purpose::NotarySigningSeed, Purpose::InternalMac]);
}

// ---------------------------------------------------------------------------------------------
// Provenance
// ---------------------------------------------------------------------------------------------

#[test]
fn every_fixture_file_records_its_generator_and_library_versions() {
    let headers = [
        ("argon2i.json", load::<Argon2File>("argon2i.json").header),
        ("filesig.json", filesig_file().header),
        (
            "hkdf_blake2b.json",
            load::<HkdfFile>("hkdf_blake2b.json").header,
        ),
    ];
    for (name, h) in headers {
        assert!(!h.description.is_empty(), "{name}: description");
        assert_eq!(
            h.generator, "python3 fixtures/libsodium/generate.py",
            "{name}"
        );
        assert_eq!(h.pynacl_version, "1.6.2", "{name}");
        assert!(
            h.libsodium_version.contains("1.0.20"),
            "{name}: {}",
            h.libsodium_version
        );
    }
}
