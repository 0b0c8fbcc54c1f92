//! Hostile inputs for the key rules, as data files (`fixtures/hostile/*.txt`), in the manner of
//! age's testkit: each file holds a description, the exact bytes of a short log, and the
//! verdict the key rules must reach on it (accepted, or refused at one entry by one rule). The
//! format is described in `fixtures/hostile/README.md`.
//!
//! This module holds the three things every driver shares, so that there is one of each:
//! the parser ([`Case::parse`], [`load`], [`load_all`]), the writer ([`Case::render`]) and the
//! generator ([`generate`]) that makes the committed files from fixed seeds. Three drivers read
//! the files: the state machine (`keyggdrasil/tests/hostile.rs`, which also fails when the
//! committed files differ from what [`generate`] makes, and rewrites them when
//! `HOSTILE_REGENERATE=1` is set), the channel (`channel-server/tests/hostile.rs`) and the
//! whole system (`tests/tests/key_attacks.rs`).
//!
//! It uses only `std` and `keyggdrasil`, because `keyggdrasil`'s own tests include this file by
//! path: a dev-dependency on this crate would build the network and SQLite stack into the core's
//! tests (and the core must not need it). The expected verdicts are written down by hand in
//! [`generate`] (the [`Refusal`] each case must meet is constructed here, not computed by the
//! state machine), so a driver that agrees with a file has agreed with the rule, not with itself.
//!
//! It does not decide anything: it only reads and writes the files. It is test code; the
//! parser returns errors rather than panicking, the generator panics if a fixed input is
//! invalid (a bug in this file).

use std::path::{Path, PathBuf};

use keyggdrasil::entry::{Claim, Digest512, Entry, EntryBody, Event, GitCommit, Reason};
use keyggdrasil::keys::KeyPair;
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::state::Refusal;

/// Calls the macro `$m` with the name of every case, in one list, so that each driver makes
/// one `#[test]` per case and a test can check that the list, the generator and the folder
/// agree (a case in the folder that no driver runs would be a silent gap).
#[macro_export]
macro_rules! for_each_hostile_case {
    ($m:ident) => {
        $m! {
            key_added_without_a_master_signature,
            second_self_signed_master_for_an_existing_supplier,
            revocation_of_the_last_master_by_a_revoked_master,
            self_revocation_of_the_only_master,
            self_revocation_with_another_master,
            release_by_a_revoked_signing_key,
            release_after_rotation_by_the_old_key,
            release_by_a_master_key,
            release_by_another_suppliers_signing_key,
            revoked_release_version_released_again,
            key_event_for_one_supplier_signed_by_another,
            release_revocation_signed_by_another_supplier,
            duplicate_key_in_another_role,
            key_of_another_supplier_registered_again,
            attestation_by_an_unknown_supplier,
            first_entry_is_not_a_master_key,
            first_master_key_signed_by_another_key,
            entry_signature_does_not_verify,
            accepted_signing_key_rotation,
            accepted_second_master_revokes_the_first,
            accepted_attestation_by_another_supplier,
            accepted_release_revocation_by_the_signing_key
        }
    };
}

/// The names in [`for_each_hostile_case`], in its order.
pub fn case_names() -> Vec<&'static str> {
    macro_rules! names {
        ($($n:ident),* $(,)?) => { vec![$(stringify!($n)),*] };
    }
    for_each_hostile_case!(names)
}

/// What the key rules must decide about a case's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry is accepted, in order.
    Accepted,
    /// Every entry before `index` is accepted; the entry at `index` (the last one) is refused.
    Refused {
        /// Log index (0-based, within the case) of the refused entry.
        index: usize,
        /// [`Refusal::rule`] of the refusal.
        rule: String,
        /// The refusal's `Display` text, which names the supplier and keys involved.
        message: String,
    },
}

/// One hostile input: a log and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The file stem, e.g. `release_by_a_master_key`.
    pub name: String,
    /// What the case does, for people.
    pub description: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Each entry: a note for people and the exact entry bytes (body, `\n`, hex signature).
    pub entries: Vec<(String, Vec<u8>)>,
}

/// The folder of the committed files (`fixtures/hostile/`). Every crate that uses this module
/// sits one folder below the workspace root, so one relative path serves them all.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/hostile")
}

/// Reads and parses `fixtures/hostile/<name>.txt`.
pub fn load(name: &str) -> Result<Case, String> {
    let path = dir().join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Case::parse(name, &text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The names of every `.txt` file in `fixtures/hostile/`, sorted.
pub fn committed_names() -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let d = dir();
    for e in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
        let e = e.map_err(|e| format!("{}: {e}", d.display()))?;
        let file = e.file_name();
        let Some(file) = file.to_str() else { continue };
        if let Some(stem) = file.strip_suffix(".txt") {
            names.push(stem.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Every committed case, sorted by name.
pub fn load_all() -> Result<Vec<Case>, String> {
    committed_names()?.iter().map(|n| load(n)).collect()
}

impl Case {
    /// Parses the text of one file (see `fixtures/hostile/README.md`). Checks the shape only:
    /// the headers, that each entry is a note line, a body line and a signature line, and that
    /// a refused index names the last entry. Does not parse the entries themselves (a driver
    /// does, with `Entry::parse`).
    pub fn parse(name: &str, text: &str) -> Result<Self, String> {
        let (head, body) = text
            .split_once("\n\n")
            .ok_or("no blank line between the headers and the entries")?;
        let mut description = None;
        let mut expect = None;
        let mut index = None;
        let mut rule = None;
        let mut message = None;
        for line in head.lines().filter(|l| !l.starts_with('#')) {
            let (k, v) = line
                .split_once(": ")
                .ok_or_else(|| format!("header line without `: `: {line:?}"))?;
            let slot = match k {
                "description" => &mut description,
                "expect" => &mut expect,
                "index" => &mut index,
                "rule" => &mut rule,
                "message" => &mut message,
                other => return Err(format!("unknown header {other:?}")),
            };
            if slot.replace(v.to_owned()).is_some() {
                return Err(format!("header {k:?} given twice"));
            }
        }
        let lines: Vec<&str> = body
            .strip_suffix('\n')
            .unwrap_or(body)
            .split('\n')
            .collect();
        if !lines.len().is_multiple_of(3) {
            return Err(format!(
                "{} entry lines: each entry is a note, a body and a signature line",
                lines.len()
            ));
        }
        let mut entries = Vec::new();
        for (i, chunk) in lines.chunks(3).enumerate() {
            let [note, entry_body, sig] = chunk else {
                return Err("entry lines come in threes".into());
            };
            let note = note
                .strip_prefix(&format!("entry {i}: "))
                .ok_or_else(|| format!("entry {i}: note line must start with `entry {i}: `"))?;
            let mut bytes = entry_body.as_bytes().to_vec();
            bytes.push(b'\n');
            bytes.extend_from_slice(sig.as_bytes());
            entries.push((note.to_owned(), bytes));
        }
        if entries.is_empty() {
            return Err("no entries".into());
        }
        let verdict = match expect.as_deref() {
            Some("accepted") => {
                if index.is_some() || rule.is_some() || message.is_some() {
                    return Err("an accepted case has no index, rule or message".into());
                }
                Verdict::Accepted
            }
            Some("refused") => {
                let index: usize = index
                    .ok_or("a refused case needs `index`")?
                    .parse()
                    .map_err(|e| format!("index: {e}"))?;
                if index + 1 != entries.len() {
                    return Err(format!(
                        "the refused entry {index} must be the last of the {} entries",
                        entries.len()
                    ));
                }
                Verdict::Refused {
                    index,
                    rule: rule.ok_or("a refused case needs `rule`")?,
                    message: message.ok_or("a refused case needs `message`")?,
                }
            }
            other => return Err(format!("expect must be accepted or refused, not {other:?}")),
        };
        Ok(Self {
            name: name.to_owned(),
            description: description.ok_or("no description")?,
            verdict,
            entries,
        })
    }

    /// The file text of this case; [`Case::parse`] reads it back to an equal case.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# Hostile key-rule input (fixtures/hostile/README.md). Generated by\n\
             # tests/src/hostile.rs; regenerate with HOSTILE_REGENERATE=1 cargo test -p keyggdrasil --test hostile\n",
        );
        out.push_str(&format!("description: {}\n", self.description));
        match &self.verdict {
            Verdict::Accepted => out.push_str("expect: accepted\n"),
            Verdict::Refused {
                index,
                rule,
                message,
            } => out.push_str(&format!(
                "expect: refused\nindex: {index}\nrule: {rule}\nmessage: {message}\n"
            )),
        }
        out.push('\n');
        for (i, (note, bytes)) in self.entries.iter().enumerate() {
            out.push_str(&format!("entry {i}: {note}\n"));
            out.push_str(&String::from_utf8_lossy(bytes));
            out.push('\n');
        }
        out
    }

    /// The entries as text (what a channel serves and a submission carries). Entries are ASCII
    /// by the format's rules; a byte that is not becomes U+FFFD, which `Entry::parse` refuses.
    pub fn entry_texts(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------

/// The fixed keys of the cases (seeds, so every run makes the same bytes; Ed25519 signatures
/// are deterministic).
struct Keys {
    alice: SupplierName,
    carol: SupplierName,
    /// alice's first master key.
    a_master: KeyPair,
    /// alice's signing key.
    a_signing: KeyPair,
    /// alice's second master key.
    a_master2: KeyPair,
    /// alice's second signing key (after a rotation).
    a_signing2: KeyPair,
    c_master: KeyPair,
    c_signing: KeyPair,
    /// A key no supplier registered.
    stranger: KeyPair,
}

fn key(seed: u8) -> KeyPair {
    KeyPair::from_seed(&[seed; 32]).expect("a fixed seed gives a key")
}

fn name(s: &str) -> SupplierName {
    SupplierName::parse(s).expect("fixed supplier name")
}

fn master(k: &KeyPair) -> Event {
    Event::MasterKey {
        public_key: k.public(),
        derivation: None,
    }
}

fn signing(k: &KeyPair) -> Event {
    Event::SigningKey {
        public_key: k.public(),
        derivation: None,
    }
}

fn revoke(k: &KeyPair) -> Event {
    Event::KeyRevocation {
        public_key: k.public(),
        reason: Reason::parse("hostile fixture").expect("reason"),
    }
}

/// The bytes of a release's archive: only its size and digests enter the log, and the key rules
/// never read an archive, so any fixed bytes do.
fn archive(version: &str, marker: &str) -> Vec<u8> {
    format!("hostile fixture archive alice/hello {version} {marker}\n").into_bytes()
}

fn digest(archive: &[u8]) -> (u64, Digest512) {
    let (size, d) = keyggdrasil::filesig::archive_digest(archive).expect("in-memory digest");
    (size, Digest512(d))
}

fn release(by: &KeyPair, version: &str, marker: &str) -> Event {
    let bytes = archive(version, marker);
    let (size, digest) = digest(&bytes);
    Event::Release {
        package: PackageName::parse("hello").expect("package"),
        version: Version::parse(version).expect("version"),
        size,
        digest,
        commit: GitCommit::parse(&"b".repeat(40)).expect("commit"),
        signature: keyggdrasil::filesig::sign(by, &bytes[..]).expect("in-memory signature"),
        rollout: None,
    }
}

fn revoke_release(version: &str) -> Event {
    Event::ReleaseRevocation {
        package: PackageName::parse("hello").expect("package"),
        version: Version::parse(version).expect("version"),
        reason: Reason::parse("hostile fixture").expect("reason"),
    }
}

fn attest(version: &str, marker: &str) -> Event {
    Event::Attestation {
        subject: name("alice"),
        package: PackageName::parse("hello").expect("package"),
        version: Version::parse(version).expect("version"),
        digest: digest(&archive(version, marker)).1,
        claim: Claim::Reproduced,
    }
}

/// A case being written: its entries so far.
struct Builder {
    entries: Vec<(String, Vec<u8>)>,
}

impl Builder {
    fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Appends `event` about `supplier`, signed by `by` (named as the signer).
    fn push(mut self, note: &str, supplier: &SupplierName, by: &KeyPair, event: Event) -> Self {
        let e = Entry::sign(EntryBody::new(supplier.clone(), by.public(), event), by)
            .expect("fixed entries are in range");
        self.entries.push((note.to_owned(), e.as_bytes().to_vec()));
        self
    }

    /// Appends entry bytes made by hand.
    fn push_bytes(mut self, note: &str, bytes: Vec<u8>) -> Self {
        self.entries.push((note.to_owned(), bytes));
        self
    }

    /// alice's self-signed master key and her signing key signed by it.
    fn alice(self, k: &Keys) -> Self {
        self.push(
            "alice's master key, signed by itself",
            &k.alice,
            &k.a_master,
            master(&k.a_master),
        )
        .push(
            "alice's signing key, signed by her master key",
            &k.alice,
            &k.a_master,
            signing(&k.a_signing),
        )
    }

    /// carol's self-signed master key and her signing key signed by it.
    fn carol(self, k: &Keys) -> Self {
        self.push(
            "carol's master key, signed by itself",
            &k.carol,
            &k.c_master,
            master(&k.c_master),
        )
        .push(
            "carol's signing key, signed by her master key",
            &k.carol,
            &k.c_master,
            signing(&k.c_signing),
        )
    }

    fn accepted(self, name: &str, description: &str) -> Case {
        Case {
            name: name.to_owned(),
            description: description.to_owned(),
            verdict: Verdict::Accepted,
            entries: self.entries,
        }
    }

    /// The last entry is refused with `refusal`.
    fn refused(self, name: &str, description: &str, refusal: Refusal) -> Case {
        Case {
            name: name.to_owned(),
            description: description.to_owned(),
            verdict: Verdict::Refused {
                index: self.entries.len() - 1,
                rule: refusal.rule().to_owned(),
                message: refusal.to_string(),
            },
            entries: self.entries,
        }
    }
}

/// Makes every case, in the order of [`for_each_hostile_case`]. Deterministic: the same bytes on
/// every run and machine. The expected refusals are stated here by hand.
pub fn generate() -> Vec<Case> {
    let k = Keys {
        alice: name("alice"),
        carol: name("carol"),
        a_master: key(1),
        a_signing: key(2),
        a_master2: key(3),
        a_signing2: key(4),
        c_master: key(11),
        c_signing: key(12),
        stranger: key(99),
    };
    let not_master = |s: &SupplierName, by: &KeyPair| Refusal::NotCurrentMaster {
        supplier: s.clone(),
        signer: by.public(),
    };
    let not_signing = |by: &KeyPair| Refusal::NotCurrentSigningKey {
        supplier: k.alice.clone(),
        signer: by.public(),
    };
    let b = Builder::new;
    let mut bad_sig = Entry::sign(
        EntryBody::new(k.alice.clone(), k.a_master.public(), signing(&k.stranger)),
        &k.a_master,
    )
    .expect("fixed entry")
    .as_bytes()
    .to_vec();
    // Flip one bit of the signature's first byte (its hex digit at the start of the second
    // line): a well-formed entry whose only defect is the signature.
    let sig_start = bad_sig.iter().position(|c| *c == b'\n').expect("two lines") + 1;
    let first: Vec<u8> = bad_sig[sig_start..sig_start + 2].to_vec();
    let flipped =
        u8::from_str_radix(std::str::from_utf8(&first).expect("hex"), 16).expect("hex") ^ 1;
    bad_sig.splice(
        sig_start..sig_start + 2,
        format!("{flipped:02x}").into_bytes(),
    );
    vec![
        b().alice(&k)
            .push("a signing key for alice, signed by her signing key", &k.alice, &k.a_signing, signing(&k.stranger))
            .refused(
                "key_added_without_a_master_signature",
                "a key added by the supplier's signing key: only a current master key may add keys",
                not_master(&k.alice, &k.a_signing),
            ),
        b().alice(&k)
            .push("a master key for alice, signed by itself", &k.alice, &k.stranger, master(&k.stranger))
            .refused(
                "second_self_signed_master_for_an_existing_supplier",
                "a stranger registers its own master key for an existing supplier, signed by itself (proof of possession is only enough for a new supplier)",
                not_master(&k.alice, &k.stranger),
            ),
        b().alice(&k)
            .push("alice's second master key, signed by the first", &k.alice, &k.a_master, master(&k.a_master2))
            .push("the second master key revoked by the first", &k.alice, &k.a_master, revoke(&k.a_master2))
            .push("the revoked second master revokes the first, the last current one", &k.alice, &k.a_master2, revoke(&k.a_master))
            .refused(
                "revocation_of_the_last_master_by_a_revoked_master",
                "the last current master key revoked by a revoked master key: a supplier must never lose its last master key",
                not_master(&k.alice, &k.a_master2),
            ),
        b().alice(&k)
            .push("alice's only master key revokes itself", &k.alice, &k.a_master, revoke(&k.a_master))
            .refused(
                "self_revocation_of_the_only_master",
                "the only master key revokes itself, which would leave the supplier without a master key",
                Refusal::SelfRevocation(k.a_master.public()),
            ),
        b().alice(&k)
            .push("alice's second master key, signed by the first", &k.alice, &k.a_master, master(&k.a_master2))
            .push("the second master key revokes itself", &k.alice, &k.a_master2, revoke(&k.a_master2))
            .refused(
                "self_revocation_with_another_master",
                "a master key revokes itself although another master exists: a revocation must be signed by another master key",
                Refusal::SelfRevocation(k.a_master2.public()),
            ),
        b().alice(&k)
            .push("alice's signing key revoked by her master key", &k.alice, &k.a_master, revoke(&k.a_signing))
            .push("a release signed by the revoked signing key", &k.alice, &k.a_signing, release(&k.a_signing, "6.6.6", "stolen key"))
            .refused(
                "release_by_a_revoked_signing_key",
                "a release signed by a signing key that was revoked (and not replaced)",
                not_signing(&k.a_signing),
            ),
        b().alice(&k)
            .push("a release signed by the signing key, accepted", &k.alice, &k.a_signing, release(&k.a_signing, "1.0.0", "before"))
            .push("a new signing key, signed by the master key", &k.alice, &k.a_master, signing(&k.a_signing2))
            .push("the old signing key revoked", &k.alice, &k.a_master, revoke(&k.a_signing))
            .push("a release signed by the old key after its revocation", &k.alice, &k.a_signing, release(&k.a_signing, "1.1.0", "after"))
            .refused(
                "release_after_rotation_by_the_old_key",
                "after a key rotation, a release signed by the old, revoked signing key",
                not_signing(&k.a_signing),
            ),
        b().alice(&k)
            .push("a release signed by alice's master key", &k.alice, &k.a_master, release(&k.a_master, "6.6.6", "master"))
            .refused(
                "release_by_a_master_key",
                "a release signed by the supplier's master key, which may sign keys, not releases",
                not_signing(&k.a_master),
            ),
        b().alice(&k)
            .carol(&k)
            .push("a release of alice/hello signed by carol's signing key", &k.alice, &k.c_signing, release(&k.c_signing, "6.6.6", "carol"))
            .refused(
                "release_by_another_suppliers_signing_key",
                "a release for one supplier signed by another supplier's current signing key",
                not_signing(&k.c_signing),
            ),
        b().alice(&k)
            .push("alice/hello 1.0.0", &k.alice, &k.a_signing, release(&k.a_signing, "1.0.0", "first"))
            .push("alice/hello 1.0.0 revoked by the master key", &k.alice, &k.a_master, revoke_release("1.0.0"))
            .push("alice/hello 1.0.0 released again, other bytes", &k.alice, &k.a_signing, release(&k.a_signing, "1.0.0", "second"))
            .refused(
                "revoked_release_version_released_again",
                "a revoked release's version released again with other bytes: versions are immutable, revoked or not",
                Refusal::ReleaseExists {
                    supplier: k.alice.clone(),
                    package: PackageName::parse("hello").expect("package"),
                    version: Version::parse("1.0.0").expect("version"),
                },
            ),
        b().alice(&k)
            .carol(&k)
            .push("a signing key for alice, signed by carol's master key", &k.alice, &k.c_master, signing(&k.stranger))
            .refused(
                "key_event_for_one_supplier_signed_by_another",
                "an entry naming alice signed by carol's master key",
                not_master(&k.alice, &k.c_master),
            ),
        b().alice(&k)
            .carol(&k)
            .push("alice/hello 1.0.0", &k.alice, &k.a_signing, release(&k.a_signing, "1.0.0", "good"))
            .push("alice/hello 1.0.0 revoked, signed by carol's signing key", &k.alice, &k.c_signing, revoke_release("1.0.0"))
            .refused(
                "release_revocation_signed_by_another_supplier",
                "a release revocation naming alice signed by carol's signing key",
                Refusal::NotCurrentKey {
                    supplier: k.alice.clone(),
                    signer: k.c_signing.public(),
                },
            ),
        b().alice(&k)
            .push("alice's signing key added again, as a master key", &k.alice, &k.a_master, master(&k.a_signing))
            .refused(
                "duplicate_key_in_another_role",
                "a registered key registered again (in another role; a byte-identical copy is a channel's idempotent duplicate, see README)",
                Refusal::KeyAlreadyRegistered(k.a_signing.public()),
            ),
        b().alice(&k)
            .carol(&k)
            .push("carol's master key added as a signing key of alice", &k.alice, &k.a_master, signing(&k.c_master))
            .refused(
                "key_of_another_supplier_registered_again",
                "another supplier's key registered for this supplier: a key belongs to one supplier, once",
                Refusal::KeyAlreadyRegistered(k.c_master.public()),
            ),
        b().alice(&k)
            .push("alice/hello 1.0.0", &k.alice, &k.a_signing, release(&k.a_signing, "1.0.0", "good"))
            .push("an attestation of it by carol, who never registered", &k.carol, &k.c_signing, attest("1.0.0", "good"))
            .refused(
                "attestation_by_an_unknown_supplier",
                "an attestation by a supplier that is not in the log",
                Refusal::UnknownSupplier(k.carol.clone()),
            ),
        b().push("a signing key as alice's first entry", &k.alice, &k.a_signing, signing(&k.a_signing))
            .refused(
                "first_entry_is_not_a_master_key",
                "an unknown supplier's first entry is a signing key, not a master key",
                Refusal::UnknownSupplier(k.alice.clone()),
            ),
        b().push("alice's first master key, signed by a stranger", &k.alice, &k.stranger, master(&k.a_master))
            .refused(
                "first_master_key_signed_by_another_key",
                "a new supplier's first master key signed by another key: no proof of possession",
                Refusal::FirstKeyNotSelfSigned(k.alice.clone()),
            ),
        b().alice(&k)
            .push_bytes("a signing key signed by alice's master key, one signature bit flipped", bad_sig)
            .refused(
                "entry_signature_does_not_verify",
                "a well-formed entry whose signature does not verify under its named signer",
                Refusal::BadSignature(k.a_master.public()),
            ),
        b().alice(&k)
            .push("alice/hello 1.0.0", &k.alice, &k.a_signing, release(&k.a_signing, "1.0.0", "old key"))
            .push("a new signing key, signed by the master key", &k.alice, &k.a_master, signing(&k.a_signing2))
            .push("the old signing key revoked", &k.alice, &k.a_master, revoke(&k.a_signing))
            .push("alice/hello 2.0.0 signed by the new key", &k.alice, &k.a_signing2, release(&k.a_signing2, "2.0.0", "new key"))
            .accepted(
                "accepted_signing_key_rotation",
                "control: a signing key rotated (new key added, old revoked) and a release by the new key",
            ),
        b().alice(&k)
            .push("alice's second master key, signed by the first", &k.alice, &k.a_master, master(&k.a_master2))
            .push("the second master revokes the first", &k.alice, &k.a_master2, revoke(&k.a_master))
            .push("the second master adds a signing key", &k.alice, &k.a_master2, signing(&k.a_signing2))
            .accepted(
                "accepted_second_master_revokes_the_first",
                "control: a second master key revokes the first and goes on adding keys",
            ),
        b().alice(&k)
            .carol(&k)
            .push("alice/hello 1.0.0", &k.alice, &k.a_signing, release(&k.a_signing, "1.0.0", "good"))
            .push("carol attests alice/hello 1.0.0 (same digest)", &k.carol, &k.c_signing, attest("1.0.0", "good"))
            .accepted(
                "accepted_attestation_by_another_supplier",
                "control: a registered supplier attests another's release with the logged digest",
            ),
        b().alice(&k)
            .push("alice/hello 1.0.0", &k.alice, &k.a_signing, release(&k.a_signing, "1.0.0", "broken"))
            .push("alice/hello 1.0.0 revoked by her signing key", &k.alice, &k.a_signing, revoke_release("1.0.0"))
            .push("alice/hello 1.0.1", &k.alice, &k.a_signing, release(&k.a_signing, "1.0.1", "fixed"))
            .accepted(
                "accepted_release_revocation_by_the_signing_key",
                "control: a release revoked by the signing key that made it, and a fixed version after it",
            ),
    ]
}

/// [`Verdict::Refused`]'s parts, or `None` for an accepted case.
pub fn refused(case: &Case) -> Option<(usize, &str, &str)> {
    match &case.verdict {
        Verdict::Accepted => None,
        Verdict::Refused {
            index,
            rule,
            message,
        } => Some((*index, rule.as_str(), message.as_str())),
    }
}
