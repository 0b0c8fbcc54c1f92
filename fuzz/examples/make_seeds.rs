//! Writes the seed corpora under `fuzz/corpus/<target>/` with keyggdrasil's own encoders, so every
//! seed is a real, well-formed input (signed with the fixed keys the targets use).
//!
//! Run from the repository root: `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds`.
//! It overwrites the seeds it writes and leaves other files alone.

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use keyggdrasil::archive::{ArchiveLimits, Manifest};
use keyggdrasil::batch::{BatchHead, BatchTree, BatchedAnswer};
use keyggdrasil::bundle::{Bundle, Kind, ReleaseRequest, Request};
use keyggdrasil::entry::{Claim, Digest512, Entry, EntryBody, Event, GitCommit, Reason};
use keyggdrasil::kdf::Derivation;
use keyggdrasil::keyfile::{KeyFile, KeyRole};
use keyggdrasil::keys::{KeyPair, Signature};
use keyggdrasil::merkle::{self, Blake2b256, MemoryStore};
use keyggdrasil::names::ChannelName;
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::os::archive::build_archive;
use keyggdrasil::protocol::Context;
use keyggdrasil::wire::{
    Checkpoint, ConsistencyProofResponse, EntriesResponse, Envelope, InclusionProofResponse, Nonce,
    NotaryPayload, NotaryRequest, NotaryStatus, Signed, SubmitRequest, SubmitResponse, TreeHash,
    UpdatePayload,
};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

const NOW: u64 = 1_700_000_000;

fn key(b: u8) -> Res<KeyPair> {
    Ok(KeyPair::from_seed(&[b; 32])?)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Res {
    fs::create_dir_all(dir)?;
    fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn prefixed(selector: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![selector];
    v.extend_from_slice(rest);
    v
}

/// A small history: supplier `acme` registers two master keys and a signing key, releases,
/// revokes, and `beta` attests. Signed with the entry target's fixed keys 1, 2 and 3.
fn history() -> Res<Vec<Entry>> {
    let (m1, m2, s) = (key(1)?, key(2)?, key(3)?);
    let acme = SupplierName::parse("acme")?;
    let hello = PackageName::parse("hello")?;
    let v1 = Version::parse("1.0.0")?;
    let digest = Digest512([7; 64]);
    let body = |signer: &KeyPair, event| EntryBody::new(acme.clone(), signer.public(), event);
    Ok(vec![
        Entry::sign(
            body(
                &m1,
                Event::MasterKey {
                    public_key: m1.public(),
                    derivation: None,
                },
            ),
            &m1,
        )?,
        Entry::sign(
            body(
                &m1,
                Event::MasterKey {
                    public_key: m2.public(),
                    derivation: Some(Derivation::with_salt([5; 16], 3, 8192)),
                },
            ),
            &m1,
        )?,
        Entry::sign(
            body(
                &m1,
                Event::SigningKey {
                    public_key: s.public(),
                    derivation: None,
                },
            ),
            &m1,
        )?,
        Entry::sign(
            body(
                &s,
                Event::Release {
                    package: hello.clone(),
                    version: v1.clone(),
                    size: 1765,
                    digest,
                    commit: GitCommit::parse(&"a".repeat(40))?,
                    signature: Signature::from_bytes([3; 64]),
                    rollout: None,
                },
            ),
            &s,
        )?,
        Entry::sign(
            body(
                &s,
                Event::Attestation {
                    subject: acme.clone(),
                    package: hello.clone(),
                    version: v1.clone(),
                    digest,
                    claim: Claim::Reproduced,
                },
            ),
            &s,
        )?,
        Entry::sign(
            body(
                &s,
                Event::ReleaseRevocation {
                    package: hello,
                    version: v1,
                    reason: Reason::parse("broken build")?,
                },
            ),
            &s,
        )?,
        Entry::sign(
            body(
                &m2,
                Event::KeyRevocation {
                    public_key: m1.public(),
                    reason: Reason::parse("lost")?,
                },
            ),
            &m2,
        )?,
    ])
}

fn entry_seeds(dir: &Path, entries: &[Entry]) -> Res {
    let mut all = Vec::new();
    let mut all_signed_here = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        write(dir, &format!("{i}-{}", e.body().event.kind()), e.as_bytes())?;
        if i > 0 {
            all.push(0xFF);
            all_signed_here.push(0xFF);
        }
        all.extend_from_slice(e.as_bytes());
        all_signed_here.push(b'S');
        all_signed_here.extend_from_slice(e.body_bytes());
    }
    write(dir, "history-raw", &all)?;
    write(dir, "history-sign", &all_signed_here)?;
    Ok(())
}

fn json<T: serde::Serialize>(v: &T) -> Res<Vec<u8>> {
    Ok(serde_json::to_vec(v)?)
}

fn wire_seeds(dir: &Path, entries: &[Entry]) -> Res {
    let channel = key(9)?;
    let notary = key(10)?;
    let origin = ChannelName::parse("plugins.example.org")?;
    let nonce = Nonce([0; 32]);
    let h = Blake2b256;
    let mut log = MemoryStore::new();
    for e in entries {
        log.append(&h, e.as_bytes())?;
    }
    let n = entries.len() as u64;
    let root = TreeHash(merkle::root_at(&h, n, &log)?);
    let texts: Vec<String> = entries
        .iter()
        .map(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        .collect();

    let update = UpdatePayload {
        v: 1,
        origin: origin.clone(),
        nonce,
        time: NOW,
        since: 0,
        size: 2,
        root,
        tree_size: n,
        entries: texts[..2].to_vec(),
    };
    let signed_update = Signed::sign(&channel, Context::ChannelUpdate, &update);
    write(
        dir,
        "0-envelope-signed",
        &prefixed(
            0,
            &json(&Envelope::Ok {
                data: &signed_update,
            })?,
        ),
    )?;
    write(
        dir,
        "0-envelope-error",
        &prefixed(
            0,
            &json(&Envelope::<()>::Error {
                code: keyggdrasil::wire::ErrorCode::RateLimited,
                message: "slow".into(),
            })?,
        ),
    )?;
    let submit = SubmitResponse {
        index: 3,
        leaf_hash: TreeHash([1; 32]),
        size: 4,
        duplicate: false,
    };
    write(
        dir,
        "1-submit-response",
        &prefixed(1, &json(&Envelope::Ok { data: submit })?),
    )?;
    let incl = InclusionProofResponse::from_proof(2, n, &merkle::prove_inclusion(&h, 2, n, &log)?);
    write(
        dir,
        "2-inclusion",
        &prefixed(2, &json(&Envelope::Ok { data: incl })?),
    )?;
    let cons =
        ConsistencyProofResponse::from_proof(3, n, &merkle::prove_consistency(&h, 3, n, &log)?);
    write(
        dir,
        "3-consistency",
        &prefixed(3, &json(&Envelope::Ok { data: cons })?),
    )?;
    let page = EntriesResponse {
        start: 0,
        entries: texts[..2].to_vec(),
    };
    write(
        dir,
        "4-entries",
        &prefixed(4, &json(&Envelope::Ok { data: page })?),
    )?;
    let req = SubmitRequest {
        entry: texts[0].clone(),
        invite: Some("invite-token".into()),
    };
    write(dir, "5-submit-request", &prefixed(5, &json(&req)?))?;
    let nreq = NotaryRequest {
        channel: origin.clone(),
        size: 9,
        nonce,
    };
    write(dir, "6-notary-request", &prefixed(6, &json(&nreq)?))?;

    // Mode 7: since byte, then the update payload (the target signs it).
    let mut v = vec![7, 0];
    v.extend_from_slice(&json(&update)?);
    write(dir, "7-update", &v)?;
    let none = UpdatePayload {
        since: 5,
        size: 5,
        tree_size: 5,
        entries: Vec::new(),
        ..update.clone()
    };
    let mut v = vec![7, 5];
    v.extend_from_slice(&json(&none)?);
    write(dir, "7-update-none", &v)?;

    // Mode 8: size byte, then the notary payload.
    let checkpoint = Checkpoint {
        v: 1,
        origin: origin.clone(),
        size: 9,
        root,
        time: NOW,
    };
    let signed_checkpoint = Signed::sign(&channel, Context::Checkpoint, &checkpoint);
    for (name, status) in [
        ("ok", NotaryStatus::Ok { root }),
        ("behind", NotaryStatus::Behind { observed: 3 }),
        (
            "fork",
            NotaryStatus::ForkDetected {
                evidence: vec![signed_checkpoint.clone(), signed_update.clone()],
            },
        ),
    ] {
        let p = NotaryPayload {
            v: 1,
            channel: origin.clone(),
            size: 9,
            nonce,
            time: NOW,
            status,
        };
        let mut v = vec![8, 9];
        v.extend_from_slice(&json(&p)?);
        write(dir, &format!("8-notary-{name}"), &v)?;
        // The same answer in its envelope, as a site receives it.
        let signed = Signed::sign(&notary, Context::NotaryAnswer, &p);
        write(
            dir,
            &format!("0-envelope-notary-{name}"),
            &prefixed(0, &json(&Envelope::Ok { data: signed })?),
        )?;
    }
    write(dir, "9-checkpoint", &prefixed(9, &json(&checkpoint)?))?;
    write(dir, "10-signed", &prefixed(10, &json(&signed_checkpoint)?))?;
    // A batched freshness answer for the zero nonce, third of a batch of three.
    let batch = BatchTree::new(&[Nonce([1; 32]), Nonce([2; 32]), nonce])?;
    let head = BatchHead {
        v: 1,
        origin: origin.clone(),
        time: NOW,
        size: n,
        root,
        batch_size: 3,
        batch_root: TreeHash(batch.root()),
    };
    let answer = BatchedAnswer {
        head: Signed::sign(&channel, Context::ChannelBatch, &head),
        index: 2,
        path: batch.path(2)?,
    };
    write(
        dir,
        "11-batched",
        &prefixed(11, &json(&Envelope::Ok { data: answer })?),
    )?;
    write(
        dir,
        "12-nonce",
        &prefixed(12, Nonce([0xab; 32]).to_hex().as_bytes()),
    )?;
    write(dir, "12-channel", &prefixed(12, b"plugins.example.org"))?;
    write(
        dir,
        "12-content-type",
        &prefixed(12, b"application/json; charset=utf-8"),
    )?;
    Ok(())
}

fn keyfile_seeds(dir: &Path) -> Res {
    let kp = key(4)?;
    let acme = Some(SupplierName::parse("acme")?);
    let plain = KeyFile::plain(KeyRole::Channel, None, &kp);
    write(dir, "plain", &prefixed(0, &plain.to_bytes()))?;
    let cheap = Derivation::with_salt([6; 16], 3, 8192);
    let enc = KeyFile::encrypted(
        KeyRole::Signing,
        acme.clone(),
        &kp,
        b"correct horse",
        cheap.clone(),
    )?;
    write(dir, "encrypted", &prefixed(0, &enc.to_bytes()))?;
    let derived_kp = cheap.derive_keypair(b"correct horse")?;
    let derived = KeyFile::derived(KeyRole::Master, acme, derived_kp.public(), cheap);
    write(dir, "derived", &prefixed(0, &derived.to_bytes()))?;
    let sig = keyggdrasil::filesig::sign(&kp, &b"archive bytes"[..])?;
    write(
        dir,
        "signature",
        &prefixed(1, keyggdrasil::filesig::signature_text(&sig).as_bytes()),
    )?;
    Ok(())
}

fn archive_seeds(dir: &Path, root: &Path) -> Res {
    let fixture = fs::read(root.join("fixtures/archive/hello-plugin.zip"))?;
    write(dir, "hello-plugin.zip", &fixture)?;
    // A second one with an empty folder, an executable and a nested file.
    let src = std::env::temp_dir().join(format!("keyggdrasil-seed-src-{}", std::process::id()));
    let _ = fs::remove_dir_all(&src);
    fs::create_dir_all(src.join("bin"))?;
    fs::create_dir_all(src.join("empty"))?;
    fs::create_dir_all(src.join("a/b"))?;
    fs::write(src.join("bin/run"), "#!/bin/sh\necho hi\n")?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(src.join("bin/run"), fs::Permissions::from_mode(0o755))?;
    }
    fs::write(src.join("a/b/data.txt"), "x".repeat(300))?;
    let manifest = Manifest::new("acme/tools", "2.0.0-rc.1", "b".repeat(40))?;
    let mut out = Cursor::new(Vec::new());
    build_archive(&src, &manifest, &mut out, &ArchiveLimits::default())?;
    fs::remove_dir_all(&src)?;
    write(dir, "tools.zip", &out.into_inner())?;
    write(dir, "manifest.json", &manifest.to_canonical_json())?;
    write(dir, "path", b"a/b/data.txt")?;
    Ok(())
}

/// Request and signed bundles of every kind, signed with the bundle target's fixed keys 1, 2 and 3.
/// Each is written whole (selector 0) and without its checksum line (selector 1).
fn bundle_seeds(dir: &Path, entries: &[Entry]) -> Res {
    let (m1, m2, s) = (key(1)?, key(2)?, key(3)?);
    let origin = ChannelName::parse("plugins.example.org")?;
    let acme = SupplierName::parse("acme")?;
    let archive = b"zip bytes";
    let (size, digest, keyed) = keyggdrasil::filesig::digest_both(&s.public(), &archive[..])?;
    let body_of = |i: usize| String::from_utf8_lossy(entries[i].body_bytes()).into_owned();
    let requests = [
        (
            "key-add",
            Request::new(
                origin.clone(),
                acme.clone(),
                Kind::KeyAdd,
                m1.public(),
                Some(body_of(2)),
                None,
            ),
            &m1,
        ),
        (
            "key-revoke",
            Request::new(
                origin.clone(),
                acme.clone(),
                Kind::KeyRevoke,
                m2.public(),
                Some(body_of(6)),
                None,
            ),
            &m2,
        ),
        (
            "release-revoke",
            Request::new(
                origin.clone(),
                acme.clone(),
                Kind::ReleaseRevoke,
                s.public(),
                Some(body_of(5)),
                None,
            ),
            &s,
        ),
        (
            "release",
            Request::new(
                origin.clone(),
                acme.clone(),
                Kind::Release,
                s.public(),
                None,
                Some(ReleaseRequest {
                    package: PackageName::parse("hello")?,
                    version: Version::parse("1.0.0")?,
                    archive: "hello-1.0.0.zip".into(),
                    size,
                    digest: Digest512(digest),
                    keyed_digest: Digest512(keyed),
                    commit: GitCommit::parse(&"a".repeat(40))?,
                }),
            ),
            &s,
        ),
    ];
    for (name, req, kp) in requests {
        let file = match Bundle::request_file(&req) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("skipping bundle seed {name}: {e}");
                continue;
            }
        };
        let signed = Bundle::parse(&file)?.sign(kp)?;
        for (suffix, bytes) in [("request", &file), ("signed", &signed)] {
            write(dir, &format!("{name}-{suffix}"), &prefixed(0, bytes))?;
            let text = std::str::from_utf8(bytes)?;
            let cut = text.rfind("checksum ").unwrap_or(text.len());
            write(
                dir,
                &format!("{name}-{suffix}-nosum"),
                &prefixed(1, &bytes[..cut]),
            )?;
        }
    }
    Ok(())
}

fn main() -> Res {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let corpus = root.join("fuzz/corpus");
    let entries = history()?;
    entry_seeds(&corpus.join("entry"), &entries)?;
    wire_seeds(&corpus.join("wire"), &entries)?;
    keyfile_seeds(&corpus.join("keyfile"))?;
    archive_seeds(&corpus.join("archive"), &root)?;
    bundle_seeds(&corpus.join("bundle"), &entries)?;
    println!("seeds written under {}", corpus.display());
    Ok(())
}
