//! Tests of the supplier key state machine (`keyggdrasil::state::KeyState`), through the public
//! API only.
//!
//! - `refusals`: one negative test (or more) per `Refusal` variant reachable through
//!   `KeyState::apply`; each asserts the exact variant, its `rule()` string and that neither
//!   `check`, `apply` nor `apply_all` changed the state.
//! - `happy_paths`: key rotation, release and key revocation effects on `installable`,
//!   attestations, `apply_all` atomicity, `check` purity, `installable_versions` order.
//! - `properties`: random event sequences over a small fixed universe of suppliers, keys and
//!   releases, checked step by step against an independent model and against invariants derived
//!   from the history of accepted entries only.
//!
//! Entries are built with `Entry::sign`; forgeries are built by hand (canonical body bytes, a
//! newline, a hex signature) and parsed with `Entry::parse`, so they are well-formed entries
//! whose only defect is the signature.

use keyggdrasil::entry::{Claim, Digest512, Entry, EntryBody, Event, GitCommit, Reason};
use keyggdrasil::keys::{KeyPair, PublicKey, Signature};
use keyggdrasil::names::{PackageName, SupplierName, Version};
use keyggdrasil::protocol::{self, Context};
use keyggdrasil::state::{Applied, KeyState, Refusal, Role};

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// A deterministic key pair (fixed seed: fast and reproducible).
fn kp(seed: u8) -> KeyPair {
    KeyPair::from_seed(&[seed; 32]).expect("seed gives a valid key")
}

fn sup(name: &str) -> SupplierName {
    SupplierName::parse(name).unwrap()
}
fn pkg(name: &str) -> PackageName {
    PackageName::parse(name).unwrap()
}
fn ver(text: &str) -> Version {
    Version::parse(text).unwrap()
}
fn digest(n: u8) -> Digest512 {
    Digest512([n; 64])
}
fn commit() -> GitCommit {
    GitCommit::parse(&"c0ffee00".repeat(5)).unwrap()
}
fn archive_sig(n: u8) -> Signature {
    Signature::from_bytes([n; 64])
}

fn ev_master(k: &KeyPair) -> Event {
    Event::MasterKey {
        public_key: k.public(),
        derivation: None,
    }
}
fn ev_signing(k: &KeyPair) -> Event {
    Event::SigningKey {
        public_key: k.public(),
        derivation: None,
    }
}
fn ev_revoke(k: &KeyPair) -> Event {
    ev_revoke_pub(k.public())
}
fn ev_revoke_pub(k: PublicKey) -> Event {
    Event::KeyRevocation {
        public_key: k,
        reason: Reason::parse("rotated").unwrap(),
    }
}
fn ev_release(p: &PackageName, v: &Version, d: u8) -> Event {
    Event::Release {
        package: p.clone(),
        version: v.clone(),
        size: 1000 + u64::from(d),
        digest: digest(d),
        commit: commit(),
        signature: archive_sig(d),
        rollout: None,
    }
}
fn ev_revoke_release(p: &PackageName, v: &Version) -> Event {
    Event::ReleaseRevocation {
        package: p.clone(),
        version: v.clone(),
        reason: Reason::parse("broken build").unwrap(),
    }
}
fn ev_attest(subject: &SupplierName, p: &PackageName, v: &Version, d: u8) -> Event {
    Event::Attestation {
        subject: subject.clone(),
        package: p.clone(),
        version: v.clone(),
        digest: digest(d),
        claim: Claim::Reproduced,
    }
}

/// A correctly signed entry.
fn signed(supplier: &SupplierName, signer: &KeyPair, event: Event) -> Entry {
    Entry::sign(
        EntryBody::new(supplier.clone(), signer.public(), event),
        signer,
    )
    .unwrap()
}

/// An entry built by hand from `body` and an arbitrary signature.
fn with_signature(body: &EntryBody, signature: &Signature) -> Entry {
    let mut bytes = body.canonical_bytes();
    bytes.push(b'\n');
    bytes.extend_from_slice(signature.to_hex().as_bytes());
    Entry::parse(&bytes).expect("hand-built entry is well-formed")
}

/// An entry built by hand: `body` signed by `by` (whoever `body.signer` says) under `context`.
fn hand_signed(body: &EntryBody, by: &KeyPair, context: Context) -> Entry {
    with_signature(body, &protocol::sign(by, context, &body.canonical_bytes()))
}

/// Applies an entry that must be accepted, checking `check` agrees, the returned `Applied` and
/// the size bump. Returns the log index it took.
fn accept(state: &mut KeyState, entry: &Entry) -> u64 {
    let before = state.clone();
    assert_eq!(state.check(entry), Ok(()), "check refused {entry:?}");
    assert_eq!(*state, before, "check changed the state");
    let index = state.size();
    let applied = state
        .apply(entry)
        .unwrap_or_else(|r| panic!("refused ({r}): {entry:?}"));
    assert_eq!(
        applied,
        Applied {
            index,
            supplier: entry.body().supplier.clone(),
            kind: entry.body().event.kind(),
        }
    );
    assert_eq!(state.size(), index + 1);
    assert_ne!(*state, before);
    index
}

/// Asserts that `entry` is refused with exactly `expected` (whose rule name is `rule`) by
/// `check`, `apply` and `apply_all`, and that the state is unchanged afterwards.
#[track_caller]
fn assert_refused(state: &mut KeyState, entry: &Entry, expected: Refusal, rule: &str) {
    let before = state.clone();
    assert_eq!(expected.rule(), rule, "rule name of {expected:?}");
    assert!(!expected.to_string().is_empty());
    assert_eq!(state.check(entry), Err(expected.clone()), "check");
    assert_eq!(*state, before, "check changed the state");
    assert_eq!(state.apply(entry), Err(expected.clone()), "apply");
    assert_eq!(*state, before, "a refused entry changed the state");
    let index = state.size();
    assert_eq!(
        state.apply_all([entry]),
        Err((index, expected)),
        "apply_all"
    );
    assert_eq!(*state, before, "a refused batch changed the state");
}

/// A named cast of keys and names, and a base log:
///
/// | index | supplier | signer | event                        |
/// |-------|----------|--------|------------------------------|
/// | 0     | acme     | m1     | master key m1 (self-signed)  |
/// | 1     | acme     | m1     | signing key s1               |
/// | 2     | acme     | s1     | release hello 1.0.0 (d1)     |
/// | 3     | bolt     | bm     | master key bm (self-signed)  |
/// | 4     | bolt     | bm     | signing key bs               |
/// | 5     | bolt     | bs     | release tool 1.0.0 (d2)      |
///
/// m2, m3, s2 are spare keys for acme; x1, x2 are never registered by the base log.
struct Fx {
    acme: SupplierName,
    bolt: SupplierName,
    ghost: SupplierName,
    hello: PackageName,
    tool: PackageName,
    v1: Version,
    v2: Version,
    m1: KeyPair,
    m2: KeyPair,
    m3: KeyPair,
    s1: KeyPair,
    s2: KeyPair,
    bm: KeyPair,
    bs: KeyPair,
    x1: KeyPair,
    x2: KeyPair,
}

impl Fx {
    fn new() -> Self {
        Self {
            acme: sup("acme"),
            bolt: sup("bolt"),
            ghost: sup("ghost"),
            hello: pkg("hello"),
            tool: pkg("tool"),
            v1: ver("1.0.0"),
            v2: ver("2.0.0"),
            m1: kp(1),
            m2: kp(2),
            m3: kp(3),
            s1: kp(11),
            s2: kp(12),
            bm: kp(21),
            bs: kp(22),
            x1: kp(91),
            x2: kp(92),
        }
    }

    fn acme(&self, signer: &KeyPair, event: Event) -> Entry {
        signed(&self.acme, signer, event)
    }
    fn bolt(&self, signer: &KeyPair, event: Event) -> Entry {
        signed(&self.bolt, signer, event)
    }

    fn base_entries(&self) -> Vec<Entry> {
        vec![
            self.acme(&self.m1, ev_master(&self.m1)),
            self.acme(&self.m1, ev_signing(&self.s1)),
            self.acme(&self.s1, ev_release(&self.hello, &self.v1, 1)),
            self.bolt(&self.bm, ev_master(&self.bm)),
            self.bolt(&self.bm, ev_signing(&self.bs)),
            self.bolt(&self.bs, ev_release(&self.tool, &self.v1, 2)),
        ]
    }

    fn base(&self) -> KeyState {
        let mut state = KeyState::new();
        for e in self.base_entries() {
            accept(&mut state, &e);
        }
        assert_eq!(state.size(), 6);
        state
    }

    /// The base log plus: m1 adds m2 (6), m2 revokes m1 (7). m1 is a revoked master.
    fn rotated(&self) -> KeyState {
        let mut state = self.base();
        accept(&mut state, &self.acme(&self.m1, ev_master(&self.m2)));
        accept(&mut state, &self.acme(&self.m2, ev_revoke(&self.m1)));
        state
    }
}

// ---------------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------------

mod refusals {
    use super::*;

    #[test]
    fn every_rule_name_is_distinct_and_snake_case() {
        let k = kp(1).public();
        let (s, p, v) = (sup("acme"), pkg("hello"), ver("1.0.0"));
        let all = [
            Refusal::BadSignature(k),
            Refusal::UnknownSupplier(s.clone()),
            Refusal::FirstKeyNotSelfSigned(s.clone()),
            Refusal::NotCurrentMaster {
                supplier: s.clone(),
                signer: k,
            },
            Refusal::KeyAlreadyRegistered(k),
            Refusal::NotSupplierKey {
                supplier: s.clone(),
                key: k,
            },
            Refusal::KeyAlreadyRevoked(k),
            Refusal::SelfRevocation(k),
            Refusal::LastMasterKey(k),
            Refusal::NotCurrentSigningKey {
                supplier: s.clone(),
                signer: k,
            },
            Refusal::ReleaseExists {
                supplier: s.clone(),
                package: p.clone(),
                version: v.clone(),
            },
            Refusal::UnknownRelease {
                supplier: s.clone(),
                package: p.clone(),
                version: v.clone(),
            },
            Refusal::ReleaseAlreadyRevoked {
                supplier: s.clone(),
                package: p,
                version: v,
            },
            Refusal::NotCurrentKey {
                supplier: s.clone(),
                signer: k,
            },
            Refusal::AttestationDigestMismatch,
            Refusal::DuplicateAttestation(s.clone()),
            Refusal::SelfAttestation(s),
            Refusal::LogFull,
        ];
        let rules: std::collections::BTreeSet<&str> = all.iter().map(Refusal::rule).collect();
        assert_eq!(rules.len(), all.len(), "rule names must be distinct");
        for r in rules {
            assert!(
                r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{r:?} is not snake_case"
            );
        }
    }

    // --- BadSignature ------------------------------------------------------------------------

    #[test]
    fn bad_signature_body_resigned_by_another_key() {
        let f = Fx::new();
        let mut state = f.base();
        // A release naming s1 as signer, signed by m1 (a current master of the same supplier:
        // being a powerful key does not make someone else's signature valid).
        let body = EntryBody::new(
            f.acme.clone(),
            f.s1.public(),
            ev_release(&f.hello, &f.v2, 3),
        );
        let forged = hand_signed(&body, &f.m1, Context::Release);
        assert_refused(
            &mut state,
            &forged,
            Refusal::BadSignature(f.s1.public()),
            "bad_signature",
        );
        // Positive control: the same hand-built path with the right key is accepted.
        let genuine = hand_signed(&body, &f.s1, Context::Release);
        assert_eq!(genuine, f.acme(&f.s1, ev_release(&f.hello, &f.v2, 3)));
        accept(&mut state, &genuine);
    }

    #[test]
    fn bad_signature_forged_first_master_key() {
        // Someone claims x1 registers itself for a new supplier but signs with x2. The signature
        // is checked before anything else, so this is not FirstKeyNotSelfSigned or a success.
        let f = Fx::new();
        let mut state = f.base();
        let body = EntryBody::new(f.ghost.clone(), f.x1.public(), ev_master(&f.x1));
        let forged = hand_signed(&body, &f.x2, Context::KeyEvent);
        assert_refused(
            &mut state,
            &forged,
            Refusal::BadSignature(f.x1.public()),
            "bad_signature",
        );
        // Also on the empty log.
        let mut empty = KeyState::new();
        assert_refused(
            &mut empty,
            &forged,
            Refusal::BadSignature(f.x1.public()),
            "bad_signature",
        );
        assert!(empty.supplier(&f.ghost).is_none());
    }

    #[test]
    fn bad_signature_under_every_wrong_context() {
        // For each event kind: the body signed by the right key under every other context is
        // refused; under its own context (built the same way by hand) it is accepted.
        let f = Fx::new();
        let cases: Vec<(EntryBody, &KeyPair, Context)> = vec![
            (
                EntryBody::new(f.ghost.clone(), f.x1.public(), ev_master(&f.x1)),
                &f.x1,
                Context::KeyEvent,
            ),
            (
                EntryBody::new(f.acme.clone(), f.m1.public(), ev_signing(&f.s2)),
                &f.m1,
                Context::KeyEvent,
            ),
            (
                EntryBody::new(f.acme.clone(), f.m1.public(), ev_revoke(&f.s1)),
                &f.m1,
                Context::KeyEvent,
            ),
            (
                EntryBody::new(
                    f.acme.clone(),
                    f.s1.public(),
                    ev_release(&f.hello, &f.v2, 3),
                ),
                &f.s1,
                Context::Release,
            ),
            (
                EntryBody::new(
                    f.acme.clone(),
                    f.s1.public(),
                    ev_revoke_release(&f.hello, &f.v1),
                ),
                &f.s1,
                Context::ReleaseRevocation,
            ),
            (
                EntryBody::new(
                    f.bolt.clone(),
                    f.bs.public(),
                    ev_attest(&f.acme, &f.hello, &f.v1, 1),
                ),
                &f.bs,
                Context::Attestation,
            ),
        ];
        for (body, key, right) in &cases {
            let mut state = f.base();
            for ctx in Context::ALL.into_iter().filter(|c| c != right) {
                let forged = hand_signed(body, key, ctx);
                assert_refused(
                    &mut state,
                    &forged,
                    Refusal::BadSignature(key.public()),
                    "bad_signature",
                );
            }
            accept(&mut state, &hand_signed(body, key, *right));
        }
    }

    #[test]
    fn bad_signature_spliced_flipped_or_malleated() {
        let f = Fx::new();
        let mut state = f.base();
        let good = f.acme(&f.s1, ev_release(&f.hello, &f.v2, 3));
        let other = f.acme(&f.s1, ev_release(&f.hello, &ver("3.0.0"), 3));
        let s1 = f.s1.public();

        // The signature of another entry by the same key.
        let spliced = with_signature(good.body(), other.signature());
        assert_refused(
            &mut state,
            &spliced,
            Refusal::BadSignature(s1),
            "bad_signature",
        );

        // One flipped bit, in R and in s.
        for byte in [0, 40, 63] {
            let mut bytes = *good.signature().as_bytes();
            bytes[byte] ^= 0x01;
            let flipped = with_signature(good.body(), &Signature::from_bytes(bytes));
            assert_refused(
                &mut state,
                &flipped,
                Refusal::BadSignature(s1),
                "bad_signature",
            );
        }

        // The same signature with s + L (the group order): mathematically valid for lax
        // verifiers, refused by strict verification, so an entry has one signed encoding.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut bytes = *good.signature().as_bytes();
        let mut carry = 0u16;
        for (i, l) in L.iter().enumerate() {
            let v = u16::from(bytes[32 + i]) + u16::from(*l) + carry;
            bytes[32 + i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0);
        let malleated = with_signature(good.body(), &Signature::from_bytes(bytes));
        assert_refused(
            &mut state,
            &malleated,
            Refusal::BadSignature(s1),
            "bad_signature",
        );

        // An all-zero signature.
        let zero = with_signature(good.body(), &Signature::from_bytes([0; 64]));
        assert_refused(
            &mut state,
            &zero,
            Refusal::BadSignature(s1),
            "bad_signature",
        );

        accept(&mut state, &good);
    }

    // --- UnknownSupplier ---------------------------------------------------------------------

    #[test]
    fn unknown_supplier_for_every_non_master_event() {
        let f = Fx::new();
        let events = [
            ev_signing(&f.x2),
            ev_revoke(&f.x2),
            ev_release(&f.hello, &f.v1, 1),
            ev_revoke_release(&f.hello, &f.v1),
            // An unknown attester of an existing release.
            ev_attest(&f.acme, &f.hello, &f.v1, 1),
        ];
        for event in events {
            // Signed by an unregistered key, and by a key registered to another supplier.
            for signer in [&f.x1, &f.m1, &f.s1] {
                let mut state = f.base();
                let e = signed(&f.ghost, signer, event.clone());
                assert_refused(
                    &mut state,
                    &e,
                    Refusal::UnknownSupplier(f.ghost.clone()),
                    "unknown_supplier",
                );
                // Also as the very first entry of the log.
                let mut empty = KeyState::new();
                assert_refused(
                    &mut empty,
                    &e,
                    Refusal::UnknownSupplier(f.ghost.clone()),
                    "unknown_supplier",
                );
            }
        }
    }

    // --- FirstKeyNotSelfSigned ---------------------------------------------------------------

    #[test]
    fn first_key_not_self_signed() {
        let f = Fx::new();
        let mut state = f.base();
        let refusal = Refusal::FirstKeyNotSelfSigned(f.ghost.clone());
        let rule = "first_key_not_self_signed";
        // An unregistered key vouching for another.
        let e = signed(&f.ghost, &f.x1, ev_master(&f.x2));
        assert_refused(&mut state, &e, refusal.clone(), rule);
        // Another supplier's current master vouching for a fresh key.
        let e = signed(&f.ghost, &f.bm, ev_master(&f.x1));
        assert_refused(&mut state, &e, refusal.clone(), rule);
        // Naming an already registered key, signed by someone else: the proof-of-possession rule
        // is reported first.
        let e = signed(&f.ghost, &f.x1, ev_master(&f.bm));
        assert_refused(&mut state, &e, refusal.clone(), rule);
        // On the empty log too.
        let mut empty = KeyState::new();
        let e = signed(&f.acme, &f.x1, ev_master(&f.m1));
        assert_refused(
            &mut empty,
            &e,
            Refusal::FirstKeyNotSelfSigned(f.acme.clone()),
            rule,
        );
    }

    // --- NotCurrentMaster --------------------------------------------------------------------

    #[test]
    fn not_current_master_for_key_events() {
        let f = Fx::new();
        // Signers that are not current masters of acme: its signing key, its revoked master, the
        // other supplier's master and signing keys, and an unregistered key.
        let signers = [&f.s1, &f.m1, &f.bm, &f.bs, &f.x1];
        for signer in signers {
            let events = [
                ev_signing(&f.x2),
                ev_master(&f.x2),
                ev_revoke(&f.s1),
                ev_revoke(&f.m2),
                // The refusal is about authority, so it comes before any target check.
                ev_revoke(&f.x2),
                ev_signing(&f.s1),
            ];
            for event in events {
                let mut state = f.rotated();
                let e = f.acme(signer, event);
                assert_refused(
                    &mut state,
                    &e,
                    Refusal::NotCurrentMaster {
                        supplier: f.acme.clone(),
                        signer: signer.public(),
                    },
                    "not_current_master",
                );
            }
        }
        // Control: the current master m2 may do all of them.
        let mut state = f.rotated();
        accept(&mut state, &f.acme(&f.m2, ev_signing(&f.x2)));
        accept(&mut state, &f.acme(&f.m2, ev_master(&f.m3)));
        accept(&mut state, &f.acme(&f.m2, ev_revoke(&f.s1)));
    }

    #[test]
    fn not_current_master_revoked_master_cannot_revoke_its_revoker() {
        // m1 adds m2, m2 revokes m1: m1 can no longer strike back.
        let f = Fx::new();
        let mut state = f.rotated();
        let e = f.acme(&f.m1, ev_revoke(&f.m2));
        assert_refused(
            &mut state,
            &e,
            Refusal::NotCurrentMaster {
                supplier: f.acme.clone(),
                signer: f.m1.public(),
            },
            "not_current_master",
        );
    }

    #[test]
    fn not_current_master_self_signed_master_for_existing_supplier() {
        // Proof of possession founds a supplier only once: a fresh key cannot join (take over)
        // an existing supplier by signing its own master key entry, before or after rotation.
        let f = Fx::new();
        for mut state in [f.base(), f.rotated()] {
            for target in [&f.acme, &f.bolt] {
                let e = signed(target, &f.x1, ev_master(&f.x1));
                assert_refused(
                    &mut state,
                    &e,
                    Refusal::NotCurrentMaster {
                        supplier: target.clone(),
                        signer: f.x1.public(),
                    },
                    "not_current_master",
                );
            }
            assert!(state.key_owner(&f.x1.public()).is_none());
        }
    }

    // --- KeyAlreadyRegistered ----------------------------------------------------------------

    #[test]
    fn key_already_registered() {
        let f = Fx::new();
        let mut state = f.base();
        let rule = "key_already_registered";
        let cases = [
            // Same key, same supplier, same role.
            (ev_signing(&f.s1), f.s1.public()),
            // Same key, same supplier, other role.
            (ev_master(&f.s1), f.s1.public()),
            (ev_signing(&f.m1), f.m1.public()),
            // A master re-adding itself.
            (ev_master(&f.m1), f.m1.public()),
            // Keys of another supplier.
            (ev_signing(&f.bs), f.bs.public()),
            (ev_master(&f.bm), f.bm.public()),
            (ev_signing(&f.bm), f.bm.public()),
        ];
        for (event, key) in cases {
            let e = f.acme(&f.m1, event);
            assert_refused(&mut state, &e, Refusal::KeyAlreadyRegistered(key), rule);
        }
        // The exact same entry replayed.
        let replay = f.acme(&f.m1, ev_signing(&f.s1));
        assert_eq!(replay, f.base_entries()[1]);
        assert_refused(
            &mut state,
            &replay,
            Refusal::KeyAlreadyRegistered(f.s1.public()),
            rule,
        );
        // Another supplier's key as a new supplier's self-signed first master key.
        let e = signed(&f.ghost, &f.bm, ev_master(&f.bm));
        assert_refused(
            &mut state,
            &e,
            Refusal::KeyAlreadyRegistered(f.bm.public()),
            rule,
        );
        assert!(state.supplier(&f.ghost).is_none());
    }

    #[test]
    fn key_already_registered_after_revocation() {
        let f = Fx::new();
        let mut state = f.rotated();
        accept(&mut state, &f.acme(&f.m2, ev_revoke(&f.s1)));
        let rule = "key_already_registered";
        // Revoked signing key re-added, as signing or as master.
        for event in [ev_signing(&f.s1), ev_master(&f.s1)] {
            let e = f.acme(&f.m2, event);
            assert_refused(
                &mut state,
                &e,
                Refusal::KeyAlreadyRegistered(f.s1.public()),
                rule,
            );
        }
        // Revoked master re-added.
        for event in [ev_master(&f.m1), ev_signing(&f.m1)] {
            let e = f.acme(&f.m2, event);
            assert_refused(
                &mut state,
                &e,
                Refusal::KeyAlreadyRegistered(f.m1.public()),
                rule,
            );
        }
        // A revoked key cannot come back as another supplier's first key either.
        let e = signed(&f.ghost, &f.m1, ev_master(&f.m1));
        assert_refused(
            &mut state,
            &e,
            Refusal::KeyAlreadyRegistered(f.m1.public()),
            rule,
        );
        // Nor be added by another supplier.
        let e = f.bolt(&f.bm, ev_signing(&f.s1));
        assert_refused(
            &mut state,
            &e,
            Refusal::KeyAlreadyRegistered(f.s1.public()),
            rule,
        );
    }

    // --- NotSupplierKey ----------------------------------------------------------------------

    #[test]
    fn not_supplier_key() {
        let f = Fx::new();
        let mut state = f.base();
        for key in [f.bs.public(), f.bm.public(), f.x1.public()] {
            let e = f.acme(&f.m1, ev_revoke_pub(key));
            assert_refused(
                &mut state,
                &e,
                Refusal::NotSupplierKey {
                    supplier: f.acme.clone(),
                    key,
                },
                "not_supplier_key",
            );
        }
        // bolt's keys are untouched.
        assert_eq!(state.supplier(&f.bolt).unwrap().revoked_keys().len(), 0);
    }

    // --- KeyAlreadyRevoked -------------------------------------------------------------------

    #[test]
    fn key_already_revoked() {
        let f = Fx::new();
        let mut state = f.rotated();
        // A revoked master, revoked again by the current master.
        let e = f.acme(&f.m2, ev_revoke(&f.m1));
        assert_refused(
            &mut state,
            &e,
            Refusal::KeyAlreadyRevoked(f.m1.public()),
            "key_already_revoked",
        );
        // A signing key revoked twice (the second time by another master).
        accept(&mut state, &f.acme(&f.m2, ev_master(&f.m3)));
        accept(&mut state, &f.acme(&f.m2, ev_revoke(&f.s1)));
        let e = f.acme(&f.m3, ev_revoke(&f.s1));
        assert_refused(
            &mut state,
            &e,
            Refusal::KeyAlreadyRevoked(f.s1.public()),
            "key_already_revoked",
        );
        // The identical revocation entry replayed.
        let e = f.acme(&f.m2, ev_revoke(&f.s1));
        assert_refused(
            &mut state,
            &e,
            Refusal::KeyAlreadyRevoked(f.s1.public()),
            "key_already_revoked",
        );
    }

    // --- SelfRevocation ----------------------------------------------------------------------

    #[test]
    fn self_revocation() {
        let f = Fx::new();
        let mut state = f.base();
        // m1 is the only master.
        let e = f.acme(&f.m1, ev_revoke(&f.m1));
        assert_refused(
            &mut state,
            &e,
            Refusal::SelfRevocation(f.m1.public()),
            "self_revocation",
        );
        // Still refused when another master exists (then m2 must sign the revocation).
        accept(&mut state, &f.acme(&f.m1, ev_master(&f.m2)));
        assert_refused(
            &mut state,
            &e,
            Refusal::SelfRevocation(f.m1.public()),
            "self_revocation",
        );
        accept(&mut state, &f.acme(&f.m2, ev_revoke(&f.m1)));
    }

    // --- LastMasterKey -----------------------------------------------------------------------

    /// `LastMasterKey` is NOT reachable through `apply`, and this test documents why.
    ///
    /// To get as far as the last-master check, a key revocation must be signed by a current
    /// master of the supplier (else `NotCurrentMaster`) that is not the revoked key (else
    /// `SelfRevocation`). That signer stays a current master after the revocation, so the
    /// supplier always keeps at least one: the `LastMasterKey` check in `plan` is a defensive
    /// restatement of the invariant, never the first rule to fail. The closest attempts are
    /// tried below and each is refused by the earlier rule; revoking the last OTHER master is
    /// accepted. (`LogFull` is likewise unreachable in a test: it needs 2^64 - 1 entries.)
    /// The property tests check the invariant itself (never without a current master) over
    /// random sequences.
    #[test]
    fn last_master_key_is_guarded_by_earlier_rules() {
        let f = Fx::new();
        let mut state = f.base();
        accept(&mut state, &f.acme(&f.m1, ev_master(&f.m2)));
        // A master revoking the last OTHER master is fine.
        accept(&mut state, &f.acme(&f.m1, ev_revoke(&f.m2)));
        let masters: Vec<PublicKey> = state
            .supplier(&f.acme)
            .unwrap()
            .current_masters()
            .copied()
            .collect();
        assert_eq!(masters, vec![f.m1.public()]);

        // Now m1 is the last master. Every way of naming it in a revocation fails earlier:
        // by itself,
        let e = f.acme(&f.m1, ev_revoke(&f.m1));
        assert_refused(
            &mut state,
            &e,
            Refusal::SelfRevocation(f.m1.public()),
            "self_revocation",
        );
        // by the revoked master m2, by the signing key s1, by another supplier's master, by an
        // unregistered key.
        for signer in [&f.m2, &f.s1, &f.bm, &f.x1] {
            let e = f.acme(signer, ev_revoke(&f.m1));
            assert_refused(
                &mut state,
                &e,
                Refusal::NotCurrentMaster {
                    supplier: f.acme.clone(),
                    signer: signer.public(),
                },
                "not_current_master",
            );
        }
        let masters = state.supplier(&f.acme).unwrap().current_masters().count();
        assert_eq!(masters, 1);
        // The variant itself and its rule name, for the channel's API errors.
        assert_eq!(
            Refusal::LastMasterKey(f.m1.public()).rule(),
            "last_master_key"
        );
        assert_eq!(Refusal::LogFull.rule(), "log_full");
    }

    // --- NotCurrentSigningKey ----------------------------------------------------------------

    #[test]
    fn not_current_signing_key() {
        let f = Fx::new();
        let mut state = f.rotated();
        accept(&mut state, &f.acme(&f.m2, ev_signing(&f.s2)));
        accept(&mut state, &f.acme(&f.m2, ev_revoke(&f.s1)));
        // A current master, a revoked master, a revoked signing key, another supplier's
        // signing and master keys, an unregistered key.
        for signer in [&f.m2, &f.m1, &f.s1, &f.bs, &f.bm, &f.x1] {
            // A new version, and an existing one: authority is checked first.
            for v in [&f.v2, &f.v1] {
                let e = f.acme(signer, ev_release(&f.hello, v, 5));
                assert_refused(
                    &mut state,
                    &e,
                    Refusal::NotCurrentSigningKey {
                        supplier: f.acme.clone(),
                        signer: signer.public(),
                    },
                    "not_current_signing_key",
                );
            }
        }
        // Control: the current signing key s2 may release.
        accept(&mut state, &f.acme(&f.s2, ev_release(&f.hello, &f.v2, 5)));
    }

    // --- ReleaseExists -----------------------------------------------------------------------

    #[test]
    fn release_exists() {
        let f = Fx::new();
        let mut state = f.base();
        let exists = Refusal::ReleaseExists {
            supplier: f.acme.clone(),
            package: f.hello.clone(),
            version: f.v1.clone(),
        };
        let rule = "release_exists";
        // Same signer, same content (a replay) and different content.
        for d in [1, 9] {
            let e = f.acme(&f.s1, ev_release(&f.hello, &f.v1, d));
            assert_refused(&mut state, &e, exists.clone(), rule);
        }
        // Another signing key of the same supplier.
        accept(&mut state, &f.acme(&f.m1, ev_signing(&f.s2)));
        let e = f.acme(&f.s2, ev_release(&f.hello, &f.v1, 9));
        assert_refused(&mut state, &e, exists.clone(), rule);
        // After the release is revoked: versions are immutable, never re-released.
        accept(
            &mut state,
            &f.acme(&f.m1, ev_revoke_release(&f.hello, &f.v1)),
        );
        assert_refused(&mut state, &e, exists.clone(), rule);
        // After its signer is revoked too.
        accept(&mut state, &f.acme(&f.m1, ev_revoke(&f.s1)));
        assert_refused(&mut state, &e, exists.clone(), rule);
        // Control: the same package name and version under another supplier is a different
        // release.
        accept(&mut state, &f.bolt(&f.bs, ev_release(&f.hello, &f.v1, 1)));
    }

    // --- UnknownRelease ----------------------------------------------------------------------

    #[test]
    fn unknown_release() {
        let f = Fx::new();
        let mut state = f.base();
        let rule = "unknown_release";
        let unknown = |s: &SupplierName, p: &PackageName, v: &Version| Refusal::UnknownRelease {
            supplier: s.clone(),
            package: p.clone(),
            version: v.clone(),
        };
        // Revoking a version never released, a package never released, and another supplier's
        // release (releases are per supplier).
        for (p, v) in [(&f.hello, &f.v2), (&f.tool, &f.v2), (&f.tool, &f.v1)] {
            let e = f.acme(&f.m1, ev_revoke_release(p, v));
            assert_refused(&mut state, &e, unknown(&f.acme, p, v), rule);
        }
        // Attesting an unknown version, the right version under the wrong supplier, and a
        // release of an unknown supplier: the refusal names the subject.
        let e = f.bolt(&f.bs, ev_attest(&f.acme, &f.hello, &f.v2, 1));
        assert_refused(&mut state, &e, unknown(&f.acme, &f.hello, &f.v2), rule);
        let e = f.acme(&f.s1, ev_attest(&f.bolt, &f.hello, &f.v1, 1));
        assert_refused(&mut state, &e, unknown(&f.bolt, &f.hello, &f.v1), rule);
        let e = f.bolt(&f.bs, ev_attest(&f.ghost, &f.hello, &f.v1, 1));
        assert_refused(&mut state, &e, unknown(&f.ghost, &f.hello, &f.v1), rule);
    }

    // --- ReleaseAlreadyRevoked ---------------------------------------------------------------

    #[test]
    fn release_already_revoked() {
        let f = Fx::new();
        let mut state = f.base();
        accept(
            &mut state,
            &f.acme(&f.s1, ev_revoke_release(&f.hello, &f.v1)),
        );
        let refusal = Refusal::ReleaseAlreadyRevoked {
            supplier: f.acme.clone(),
            package: f.hello.clone(),
            version: f.v1.clone(),
        };
        // Replayed, and by another key (the master).
        for signer in [&f.s1, &f.m1] {
            let e = f.acme(signer, ev_revoke_release(&f.hello, &f.v1));
            assert_refused(&mut state, &e, refusal.clone(), "release_already_revoked");
        }
    }

    // --- NotCurrentKey -----------------------------------------------------------------------

    #[test]
    fn not_current_key() {
        let f = Fx::new();
        let mut state = f.rotated();
        accept(&mut state, &f.acme(&f.m2, ev_revoke(&f.s1)));
        // Revoked master, revoked signing key, another supplier's keys, an unregistered key.
        for signer in [&f.m1, &f.s1, &f.bm, &f.bs, &f.x1] {
            let events = [
                ev_revoke_release(&f.hello, &f.v1),
                // Authority first: even for an unknown release.
                ev_revoke_release(&f.hello, &f.v2),
                ev_attest(&f.bolt, &f.tool, &f.v1, 2),
                ev_attest(&f.acme, &f.hello, &f.v1, 1),
            ];
            for event in events {
                let e = f.acme(signer, event);
                assert_refused(
                    &mut state,
                    &e,
                    Refusal::NotCurrentKey {
                        supplier: f.acme.clone(),
                        signer: signer.public(),
                    },
                    "not_current_key",
                );
            }
        }
        // Control: the current master may.
        accept(
            &mut state,
            &f.acme(&f.m2, ev_attest(&f.bolt, &f.tool, &f.v1, 2)),
        );
        accept(
            &mut state,
            &f.acme(&f.m2, ev_revoke_release(&f.hello, &f.v1)),
        );
    }

    // --- AttestationDigestMismatch -----------------------------------------------------------

    #[test]
    fn attestation_digest_mismatch() {
        let f = Fx::new();
        let mut state = f.base();
        for d in [0, 2, 9] {
            let e = f.bolt(&f.bs, ev_attest(&f.acme, &f.hello, &f.v1, d));
            assert_refused(
                &mut state,
                &e,
                Refusal::AttestationDigestMismatch,
                "attestation_digest_mismatch",
            );
        }
        // The other direction too: acme attesting bolt's release with the wrong digest.
        let e = f.acme(&f.s1, ev_attest(&f.bolt, &f.tool, &f.v1, 1));
        assert_refused(
            &mut state,
            &e,
            Refusal::AttestationDigestMismatch,
            "attestation_digest_mismatch",
        );
        let rec = &state.supplier(&f.acme).unwrap().releases[&f.hello][&f.v1];
        assert!(rec.attestations.is_empty());
    }

    // --- SelfAttestation ---------------------------------------------------------------------

    #[test]
    fn self_attestation() {
        let f = Fx::new();
        let mut state = f.base();
        // By every current key of the subject, with the right digest, the wrong one, and for
        // a release that does not exist: whatever it names, a supplier never attests itself.
        for (signer, event) in [
            (&f.s1, ev_attest(&f.acme, &f.hello, &f.v1, 1)),
            (&f.m1, ev_attest(&f.acme, &f.hello, &f.v1, 1)),
            (&f.s1, ev_attest(&f.acme, &f.hello, &f.v1, 2)),
            (&f.s1, ev_attest(&f.acme, &f.tool, &f.v2, 1)),
        ] {
            let e = f.acme(signer, event);
            assert_refused(
                &mut state,
                &e,
                Refusal::SelfAttestation(f.acme.clone()),
                "self_attestation",
            );
        }
        let e = f.bolt(&f.bm, ev_attest(&f.bolt, &f.tool, &f.v1, 2));
        assert_refused(
            &mut state,
            &e,
            Refusal::SelfAttestation(f.bolt.clone()),
            "self_attestation",
        );
        // Authority first: a key that is not acme's is refused as such.
        let e = f.acme(&f.bs, ev_attest(&f.acme, &f.hello, &f.v1, 1));
        assert_refused(
            &mut state,
            &e,
            Refusal::NotCurrentKey {
                supplier: f.acme.clone(),
                signer: f.bs.public(),
            },
            "not_current_key",
        );
        let rec = &state.supplier(&f.acme).unwrap().releases[&f.hello][&f.v1];
        assert!(rec.attestations.is_empty());
    }

    // --- DuplicateAttestation ----------------------------------------------------------------

    #[test]
    fn duplicate_attestation() {
        let f = Fx::new();
        let mut state = f.base();
        accept(
            &mut state,
            &f.bolt(&f.bs, ev_attest(&f.acme, &f.hello, &f.v1, 1)),
        );
        // Replayed, and by another key of the same attesting supplier.
        for signer in [&f.bs, &f.bm] {
            let e = f.bolt(signer, ev_attest(&f.acme, &f.hello, &f.v1, 1));
            assert_refused(
                &mut state,
                &e,
                Refusal::DuplicateAttestation(f.bolt.clone()),
                "duplicate_attestation",
            );
        }
        // Control: bolt may attest acme's other release, and acme bolt's, once each.
        accept(
            &mut state,
            &f.acme(&f.s1, ev_attest(&f.bolt, &f.tool, &f.v1, 2)),
        );
        let e = f.acme(&f.m1, ev_attest(&f.bolt, &f.tool, &f.v1, 2));
        assert_refused(
            &mut state,
            &e,
            Refusal::DuplicateAttestation(f.acme.clone()),
            "duplicate_attestation",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Happy paths
// ---------------------------------------------------------------------------------------------

mod happy_paths {
    use super::*;

    fn masters(state: &KeyState, s: &SupplierName) -> Vec<PublicKey> {
        state
            .supplier(s)
            .unwrap()
            .current_masters()
            .copied()
            .collect()
    }
    fn signing_keys(state: &KeyState, s: &SupplierName) -> Vec<PublicKey> {
        state
            .supplier(s)
            .unwrap()
            .current_signing_keys()
            .copied()
            .collect()
    }

    #[test]
    fn empty_log() {
        let f = Fx::new();
        let state = KeyState::new();
        assert_eq!(state, KeyState::default());
        assert_eq!(state.size(), 0);
        assert_eq!(state.suppliers().count(), 0);
        assert!(state.supplier(&f.acme).is_none());
        assert!(state.key_owner(&f.m1.public()).is_none());
        assert!(state.installable(&f.acme, &f.hello, &f.v1).is_none());
        assert!(state.installable_versions(&f.acme, &f.hello).is_empty());
    }

    #[test]
    fn base_log_records() {
        let f = Fx::new();
        let state = f.base();
        let names: Vec<&SupplierName> = state.suppliers().map(|(n, _)| n).collect();
        assert_eq!(names, vec![&f.acme, &f.bolt]);
        for (k, owner) in [
            (&f.m1, &f.acme),
            (&f.s1, &f.acme),
            (&f.bm, &f.bolt),
            (&f.bs, &f.bolt),
        ] {
            assert_eq!(state.key_owner(&k.public()), Some(owner));
        }
        assert_eq!(state.key_owner(&f.x1.public()), None);
        let acme = state.supplier(&f.acme).unwrap();
        let m1 = &acme.keys[&f.m1.public()];
        assert_eq!(
            (m1.role, m1.added_at, m1.added_by, m1.revoked_at),
            (Role::Master, 0, f.m1.public(), None)
        );
        let s1 = &acme.keys[&f.s1.public()];
        assert_eq!(
            (s1.role, s1.added_at, s1.added_by, s1.revoked_at),
            (Role::Signing, 1, f.m1.public(), None)
        );
        let r = state.installable(&f.acme, &f.hello, &f.v1).unwrap();
        assert_eq!(r.supplier(), &f.acme);
        assert_eq!(r.package(), &f.hello);
        assert_eq!(r.version(), &f.v1);
        assert_eq!(r.index(), 2);
        assert_eq!(r.signer(), &f.s1.public());
        assert_eq!(r.size(), 1001);
        assert_eq!(r.digest(), &digest(1));
        assert_eq!(r.commit(), &commit());
        assert_eq!(r.archive_signature(), &archive_sig(1));
        assert!(r.attestations().is_empty());
        // Releases are per supplier.
        assert!(state.installable(&f.bolt, &f.hello, &f.v1).is_none());
        assert!(state.installable(&f.acme, &f.tool, &f.v1).is_none());
        assert_eq!(
            state.installable(&f.bolt, &f.tool, &f.v1).unwrap().signer(),
            &f.bs.public()
        );
    }

    #[test]
    fn key_rotation() {
        let f = Fx::new();
        let mut state = KeyState::new();
        assert_eq!(accept(&mut state, &f.acme(&f.m1, ev_master(&f.m1))), 0);
        // Add a second master, revoke the first with it.
        assert_eq!(accept(&mut state, &f.acme(&f.m1, ev_master(&f.m2))), 1);
        assert_eq!(masters(&state, &f.acme).len(), 2);
        assert_eq!(accept(&mut state, &f.acme(&f.m2, ev_revoke(&f.m1))), 2);
        assert_eq!(masters(&state, &f.acme), vec![f.m2.public()]);
        // The new master adds a signing key, which releases.
        assert_eq!(accept(&mut state, &f.acme(&f.m2, ev_signing(&f.s1))), 3);
        let release = f.acme(&f.s1, ev_release(&f.hello, &f.v1, 1));
        assert_eq!(accept(&mut state, &release), 4);

        let acme = state.supplier(&f.acme).unwrap();
        let rec = |k: &KeyPair| {
            let r = &acme.keys[&k.public()];
            (r.role, r.added_at, r.added_by, r.revoked_at)
        };
        assert_eq!(rec(&f.m1), (Role::Master, 0, f.m1.public(), Some(2)));
        assert_eq!(rec(&f.m2), (Role::Master, 1, f.m1.public(), None));
        assert_eq!(rec(&f.s1), (Role::Signing, 3, f.m2.public(), None));
        assert_eq!(signing_keys(&state, &f.acme), vec![f.s1.public()]);
        assert_eq!(
            acme.revoked_keys(),
            std::collections::BTreeSet::from([f.m1.public()])
        );
        let r = state.installable(&f.acme, &f.hello, &f.v1).unwrap();
        assert_eq!((r.index(), r.signer()), (4, &f.s1.public()));

        // The old master is powerless; it still belongs to acme.
        let e = f.acme(&f.m1, ev_signing(&f.s2));
        assert_refused(
            &mut state,
            &e,
            Refusal::NotCurrentMaster {
                supplier: f.acme.clone(),
                signer: f.m1.public(),
            },
            "not_current_master",
        );
        assert_eq!(state.key_owner(&f.m1.public()), Some(&f.acme));
    }

    #[test]
    fn revoking_a_master_keeps_the_keys_it_added() {
        // The documented rule: revoking a master does not cascade.
        let f = Fx::new();
        let state = f.rotated();
        assert_eq!(signing_keys(&state, &f.acme), vec![f.s1.public()]);
        assert!(state.installable(&f.acme, &f.hello, &f.v1).is_some());
        let mut state = state;
        accept(&mut state, &f.acme(&f.s1, ev_release(&f.hello, &f.v2, 3)));
        assert!(state.installable(&f.acme, &f.hello, &f.v2).is_some());
    }

    #[test]
    fn release_revocation_makes_it_not_installable() {
        let f = Fx::new();
        for revoker in [&f.m1, &f.s1] {
            let mut state = f.base();
            accept(&mut state, &f.acme(&f.s1, ev_release(&f.hello, &f.v2, 3)));
            assert_eq!(state.installable_versions(&f.acme, &f.hello).len(), 2);
            let i = accept(
                &mut state,
                &f.acme(revoker, ev_revoke_release(&f.hello, &f.v1)),
            );
            assert!(state.installable(&f.acme, &f.hello, &f.v1).is_none());
            let rec = &state.supplier(&f.acme).unwrap().releases[&f.hello][&f.v1];
            assert_eq!((rec.index, rec.revoked_at), (2, Some(i)));
            let left: Vec<Version> = state
                .installable_versions(&f.acme, &f.hello)
                .iter()
                .map(|r| r.version().clone())
                .collect();
            assert_eq!(left, vec![f.v2.clone()]);
            // The signing key and the other supplier are unaffected.
            assert_eq!(signing_keys(&state, &f.acme), vec![f.s1.public()]);
            assert!(state.installable(&f.bolt, &f.tool, &f.v1).is_some());
        }
    }

    #[test]
    fn revoking_a_signing_key_withdraws_its_earlier_releases() {
        let f = Fx::new();
        let mut state = f.base();
        accept(&mut state, &f.acme(&f.m1, ev_signing(&f.s2)));
        accept(&mut state, &f.acme(&f.s2, ev_release(&f.hello, &f.v2, 3)));
        accept(&mut state, &f.acme(&f.s2, ev_release(&f.tool, &f.v1, 4)));
        assert!(state.installable(&f.acme, &f.hello, &f.v1).is_some());

        let i = accept(&mut state, &f.acme(&f.m1, ev_revoke(&f.s1)));
        // s1's earlier release is no longer installable, although the release itself was never
        // revoked.
        assert!(state.installable(&f.acme, &f.hello, &f.v1).is_none());
        let acme = state.supplier(&f.acme).unwrap();
        assert_eq!(acme.releases[&f.hello][&f.v1].revoked_at, None);
        assert_eq!(acme.keys[&f.s1.public()].revoked_at, Some(i));
        // Releases by the other signing key stay installable, as do other suppliers'.
        assert_eq!(
            state
                .installable(&f.acme, &f.hello, &f.v2)
                .unwrap()
                .signer(),
            &f.s2.public()
        );
        assert!(state.installable(&f.acme, &f.tool, &f.v1).is_some());
        assert!(state.installable(&f.bolt, &f.tool, &f.v1).is_some());
        let versions: Vec<Version> = state
            .installable_versions(&f.acme, &f.hello)
            .iter()
            .map(|r| r.version().clone())
            .collect();
        assert_eq!(versions, vec![f.v2.clone()]);
        // And s1 cannot release any more.
        let e = f.acme(&f.s1, ev_release(&f.hello, &ver("3.0.0"), 5));
        assert_refused(
            &mut state,
            &e,
            Refusal::NotCurrentSigningKey {
                supplier: f.acme.clone(),
                signer: f.s1.public(),
            },
            "not_current_signing_key",
        );
    }

    #[test]
    fn attestations_are_recorded() {
        let f = Fx::new();
        let mut state = f.base();
        // By another supplier's signing key, by a third supplier's master key (a supplier
        // that exists only to attest), and of the other supplier's release. Never by the
        // subject itself (`self_attestation`).
        let i = accept(
            &mut state,
            &f.bolt(&f.bs, ev_attest(&f.acme, &f.hello, &f.v1, 1)),
        );
        accept(&mut state, &signed(&f.ghost, &f.x1, ev_master(&f.x1)));
        let j = accept(
            &mut state,
            &signed(&f.ghost, &f.x1, ev_attest(&f.acme, &f.hello, &f.v1, 1)),
        );
        let k = accept(
            &mut state,
            &f.acme(&f.s1, ev_attest(&f.bolt, &f.tool, &f.v1, 2)),
        );
        let expected = vec![
            (f.bolt.clone(), Claim::Reproduced, i),
            (f.ghost.clone(), Claim::Reproduced, j),
        ];
        let rec = &state.supplier(&f.acme).unwrap().releases[&f.hello][&f.v1];
        assert_eq!(rec.attestations, expected);
        let r = state.installable(&f.acme, &f.hello, &f.v1).unwrap();
        assert_eq!(r.attestations(), expected.as_slice());
        let r = state.installable(&f.bolt, &f.tool, &f.v1).unwrap();
        assert_eq!(r.attestations(), &[(f.acme.clone(), Claim::Reproduced, k)]);
        // An attestation does not change anything else about the release.
        assert_eq!(r.index(), 5);
    }

    #[test]
    fn apply_all_is_all_or_nothing() {
        let f = Fx::new();
        let mut state = f.base();
        let before = state.clone();
        let good = [
            // Later entries depend on earlier ones in the same batch.
            f.acme(&f.m1, ev_signing(&f.s2)),
            f.acme(&f.s2, ev_release(&f.hello, &f.v2, 3)),
            f.bolt(&f.bs, ev_attest(&f.acme, &f.hello, &f.v2, 3)),
            f.acme(&f.m1, ev_revoke(&f.s1)),
        ];
        // A bad entry in the middle (a replay of the release just made).
        let bad = f.acme(&f.s2, ev_release(&f.hello, &f.v2, 3));
        let batch = [&good[0], &good[1], &bad, &good[2], &good[3]];
        let err = state.apply_all(batch).unwrap_err();
        assert_eq!(
            err,
            (
                8,
                Refusal::ReleaseExists {
                    supplier: f.acme.clone(),
                    package: f.hello.clone(),
                    version: f.v2.clone(),
                }
            ),
            "the error names the log index of the refused entry"
        );
        assert_eq!(state, before, "nothing of a refused batch is applied");
        assert!(state.key_owner(&f.s2.public()).is_none());

        // A bad last entry, and a bad first entry.
        let err = state.apply_all(good.iter().chain([&bad])).unwrap_err();
        assert_eq!(err.0, 10);
        assert_eq!(state, before);
        let err = state
            .apply_all([&f.base_entries()[0]].into_iter().chain(&good))
            .unwrap_err();
        assert_eq!(err, (6, Refusal::KeyAlreadyRegistered(f.m1.public())));
        assert_eq!(state, before);

        // The good batch is applied whole, with the same result as one by one.
        let mut one_by_one = state.clone();
        for e in &good {
            accept(&mut one_by_one, e);
        }
        let applied = state.apply_all(&good).unwrap();
        let indices: Vec<u64> = applied.iter().map(|a| a.index).collect();
        assert_eq!(indices, vec![6, 7, 8, 9]);
        let kinds: Vec<&str> = applied.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            vec!["signing_key", "release", "attestation", "key_revocation"]
        );
        assert_eq!(applied[2].supplier, f.bolt);
        assert_eq!(state, one_by_one);

        // The empty batch is a no-op.
        let before = state.clone();
        assert_eq!(state.apply_all(std::iter::empty()), Ok(vec![]));
        assert_eq!(state, before);
    }

    #[test]
    fn apply_all_from_empty_equals_sequential_apply() {
        let f = Fx::new();
        let mut batch_state = KeyState::new();
        let applied = batch_state.apply_all(&f.base_entries()).unwrap();
        assert_eq!(applied.len(), 6);
        assert_eq!(batch_state, f.base());
    }

    #[test]
    fn check_never_mutates() {
        let f = Fx::new();
        let mut state = KeyState::new();
        let mut log = f.base_entries();
        log.extend([
            f.acme(&f.m1, ev_master(&f.m2)),
            f.acme(&f.m2, ev_revoke(&f.m1)),
            f.acme(&f.s1, ev_revoke_release(&f.hello, &f.v1)),
            f.bolt(&f.bm, ev_attest(&f.acme, &f.hello, &f.v1, 1)),
        ]);
        // Refused candidates tried at every step.
        let refused = [
            f.acme(&f.x1, ev_master(&f.x1)),
            f.acme(&f.m1, ev_revoke(&f.m1)),
            f.bolt(&f.bs, ev_release(&f.tool, &f.v1, 2)),
            signed(&f.ghost, &f.x1, ev_signing(&f.x2)),
        ];
        for entry in &log {
            for candidate in refused.iter().chain([entry]) {
                let before = state.clone();
                let first = state.check(candidate);
                assert_eq!(state, before);
                // Checking twice gives the same answer (nothing was reserved or consumed)...
                assert_eq!(state.check(candidate), first);
                assert_eq!(state, before);
                // ... and the same answer as applying a copy.
                let mut copy = state.clone();
                assert_eq!(copy.apply(candidate).map(|_| ()), first);
            }
            accept(&mut state, entry);
        }
        assert_eq!(state.size(), 10);
    }

    #[test]
    fn installable_versions_oldest_version_first() {
        let f = Fx::new();
        let mut state = f.base();
        // Released in an order unrelated to version precedence; "1.10.0" sorts after "1.9.0"
        // and a pre-release before its release, unlike string order.
        for (v, d) in [
            ("2.0.0", 3),
            ("1.0.0-rc.1", 4),
            ("1.10.0", 5),
            ("1.9.0", 6),
            ("0.9.0", 7),
        ] {
            accept(&mut state, &f.acme(&f.s1, ev_release(&f.hello, &ver(v), d)));
        }
        let list = |state: &KeyState| -> Vec<String> {
            state
                .installable_versions(&f.acme, &f.hello)
                .iter()
                .map(|r| r.version().as_str().to_owned())
                .collect()
        };
        assert_eq!(
            list(&state),
            ["0.9.0", "1.0.0-rc.1", "1.0.0", "1.9.0", "1.10.0", "2.0.0"]
        );
        // Each entry is what installable returns for that version.
        for r in state.installable_versions(&f.acme, &f.hello) {
            assert_eq!(
                state.installable(&f.acme, &f.hello, r.version()).as_ref(),
                Some(&r)
            );
        }
        accept(
            &mut state,
            &f.acme(&f.m1, ev_revoke_release(&f.hello, &ver("1.9.0"))),
        );
        assert_eq!(
            list(&state),
            ["0.9.0", "1.0.0-rc.1", "1.0.0", "1.10.0", "2.0.0"]
        );
        assert!(state.installable_versions(&f.acme, &f.tool).is_empty());
        assert!(state.installable_versions(&f.ghost, &f.hello).is_empty());
        accept(&mut state, &f.acme(&f.m1, ev_revoke(&f.s1)));
        assert!(list(&state).is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Properties over random event sequences
// ---------------------------------------------------------------------------------------------

mod properties {
    //! A small universe (3 suppliers, 8 keys, 2 packages, 3 versions, 2 digests), random
    //! sequences of 1..=60 events, each applied with `apply` and checked after every step:
    //!
    //! - against an independent model of the rules (accept/refuse decision, the exact refusal,
    //!   and every observable record of the state);
    //! - against invariants computed from the history of accepted entries alone (chains of
    //!   authority, revoked keys, last master, installability);
    //! - refusals change nothing; at the end, replaying the accepted entries (one by one and
    //!   with `apply_all`) reproduces every intermediate state and the final one.
    //!
    //! Events are drawn as raw choices and resolved against the model, biased towards plausible
    //! signers and targets (current keys, unregistered keys, existing releases) so that a good
    //! share is accepted; 15% of events pick any key, and ~5% carry a forged signature.

    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::LazyLock;

    const N_SUPPLIERS: usize = 3;
    const N_KEYS: usize = 8;
    const N_PACKAGES: usize = 2;
    const N_VERSIONS: usize = 3;

    struct Universe {
        keys: Vec<KeyPair>,
        pubs: Vec<PublicKey>,
        suppliers: Vec<SupplierName>,
        packages: Vec<PackageName>,
        /// In ascending version order.
        versions: Vec<Version>,
    }

    static U: LazyLock<Universe> = LazyLock::new(|| {
        let keys: Vec<KeyPair> = (0..N_KEYS as u8).map(|i| kp(100 + i)).collect();
        let pubs = keys.iter().map(KeyPair::public).collect();
        Universe {
            keys,
            pubs,
            suppliers: ["alpha", "beta", "gamma"].map(sup).to_vec(),
            packages: ["pa", "pb"].map(pkg).to_vec(),
            versions: ["1.0.0", "1.1.0", "2.0.0"].map(ver).to_vec(),
        }
    });

    /// The byte of digest number `d` (0 or 1) in the universe.
    fn digest_byte(d: usize) -> u8 {
        40 + d as u8
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Ev {
        Master(usize),
        Signing(usize),
        RevokeKey(usize),
        Release {
            pkg: usize,
            ver: usize,
            digest: usize,
        },
        RevokeRelease {
            pkg: usize,
            ver: usize,
        },
        Attest {
            subject: usize,
            pkg: usize,
            ver: usize,
            digest: usize,
        },
    }

    const KINDS: [&str; 6] = [
        "master_key",
        "signing_key",
        "key_revocation",
        "release",
        "release_revocation",
        "attestation",
    ];

    impl Ev {
        fn kind(&self) -> &'static str {
            match self {
                Ev::Master(_) => KINDS[0],
                Ev::Signing(_) => KINDS[1],
                Ev::RevokeKey(_) => KINDS[2],
                Ev::Release { .. } => KINDS[3],
                Ev::RevokeRelease { .. } => KINDS[4],
                Ev::Attest { .. } => KINDS[5],
            }
        }
        fn event(&self) -> Event {
            let u = &*U;
            match *self {
                Ev::Master(k) => Event::MasterKey {
                    public_key: u.pubs[k],
                    derivation: None,
                },
                Ev::Signing(k) => Event::SigningKey {
                    public_key: u.pubs[k],
                    derivation: None,
                },
                Ev::RevokeKey(k) => ev_revoke_pub(u.pubs[k]),
                Ev::Release { pkg, ver, digest } => {
                    ev_release(&u.packages[pkg], &u.versions[ver], digest_byte(digest))
                }
                Ev::RevokeRelease { pkg, ver } => {
                    ev_revoke_release(&u.packages[pkg], &u.versions[ver])
                }
                Ev::Attest {
                    subject,
                    pkg,
                    ver,
                    digest,
                } => ev_attest(
                    &u.suppliers[subject],
                    &u.packages[pkg],
                    &u.versions[ver],
                    digest_byte(digest),
                ),
            }
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Forge {
        No,
        /// Signed by the next key of the universe instead of the named signer.
        OtherKey,
        /// Signed by the named signer under a context of another event kind.
        WrongContext,
    }

    /// One concrete event, by indices into the universe.
    #[derive(Debug, Clone, Copy)]
    struct Step {
        supplier: usize,
        signer: usize,
        ev: Ev,
        forge: Forge,
    }

    impl Step {
        fn entry(&self) -> Entry {
            let u = &*U;
            let body = EntryBody::new(
                u.suppliers[self.supplier].clone(),
                u.pubs[self.signer],
                self.ev.event(),
            );
            let context = body.event.context();
            match self.forge {
                Forge::No => Entry::sign(body, &u.keys[self.signer]).unwrap(),
                Forge::OtherKey => hand_signed(&body, &u.keys[(self.signer + 1) % N_KEYS], context),
                Forge::WrongContext => {
                    let wrong = if context == Context::KeyEvent {
                        Context::Release
                    } else {
                        Context::KeyEvent
                    };
                    hand_signed(&body, &u.keys[self.signer], wrong)
                }
            }
        }
    }

    // --- The model ---------------------------------------------------------------------------

    #[derive(Debug, Clone)]
    struct MKey {
        owner: usize,
        role: Role,
        added_at: u64,
        added_by: usize,
        revoked_at: Option<u64>,
    }

    #[derive(Debug, Clone)]
    struct MRelease {
        index: u64,
        signer: usize,
        digest: usize,
        revoked_at: Option<u64>,
        attesters: Vec<(usize, u64)>,
    }

    /// An independent model of the rules in the design document, over universe indices.
    #[derive(Debug, Clone, Default)]
    struct Model {
        size: u64,
        known: BTreeSet<usize>,
        keys: BTreeMap<usize, MKey>,
        releases: BTreeMap<(usize, usize, usize), MRelease>,
    }

    fn pick<T: Copy>(items: &[T], n: u8) -> Option<T> {
        (!items.is_empty()).then(|| items[usize::from(n) % items.len()])
    }

    impl Model {
        /// `k` is an unrevoked key of supplier `s` (with `role`, if given).
        fn current(&self, s: usize, k: usize, role: Option<Role>) -> bool {
            self.keys.get(&k).is_some_and(|r| {
                r.owner == s && r.revoked_at.is_none() && role.is_none_or(|role| r.role == role)
            })
        }
        fn current_keys(&self, s: usize, role: Option<Role>) -> Vec<usize> {
            (0..N_KEYS).filter(|k| self.current(s, *k, role)).collect()
        }
        fn unregistered(&self) -> Vec<usize> {
            (0..N_KEYS).filter(|k| !self.keys.contains_key(k)).collect()
        }

        fn decide(&self, st: &Step) -> Result<(), Refusal> {
            let u = &*U;
            let s = st.supplier;
            let supplier = u.suppliers[s].clone();
            let signer = u.pubs[st.signer];
            if st.forge != Forge::No {
                return Err(Refusal::BadSignature(signer));
            }
            if !self.known.contains(&s) {
                return match st.ev {
                    Ev::Master(k) if k != st.signer => {
                        Err(Refusal::FirstKeyNotSelfSigned(supplier))
                    }
                    Ev::Master(k) if self.keys.contains_key(&k) => {
                        Err(Refusal::KeyAlreadyRegistered(u.pubs[k]))
                    }
                    Ev::Master(_) => Ok(()),
                    _ => Err(Refusal::UnknownSupplier(supplier)),
                };
            }
            let release_ref = |s: usize, pkg: usize, ver: usize| {
                (
                    u.suppliers[s].clone(),
                    u.packages[pkg].clone(),
                    u.versions[ver].clone(),
                )
            };
            match st.ev {
                Ev::Master(k) | Ev::Signing(k) => {
                    if !self.current(s, st.signer, Some(Role::Master)) {
                        return Err(Refusal::NotCurrentMaster { supplier, signer });
                    }
                    if self.keys.contains_key(&k) {
                        return Err(Refusal::KeyAlreadyRegistered(u.pubs[k]));
                    }
                    Ok(())
                }
                Ev::RevokeKey(k) => {
                    if !self.current(s, st.signer, Some(Role::Master)) {
                        return Err(Refusal::NotCurrentMaster { supplier, signer });
                    }
                    let Some(rec) = self.keys.get(&k).filter(|r| r.owner == s) else {
                        return Err(Refusal::NotSupplierKey {
                            supplier,
                            key: u.pubs[k],
                        });
                    };
                    if rec.revoked_at.is_some() {
                        return Err(Refusal::KeyAlreadyRevoked(u.pubs[k]));
                    }
                    if k == st.signer {
                        return Err(Refusal::SelfRevocation(u.pubs[k]));
                    }
                    let others = self
                        .current_keys(s, Some(Role::Master))
                        .into_iter()
                        .filter(|m| *m != k)
                        .count();
                    if rec.role == Role::Master && others == 0 {
                        return Err(Refusal::LastMasterKey(u.pubs[k]));
                    }
                    Ok(())
                }
                Ev::Release { pkg, ver, .. } => {
                    if !self.current(s, st.signer, Some(Role::Signing)) {
                        return Err(Refusal::NotCurrentSigningKey { supplier, signer });
                    }
                    if self.releases.contains_key(&(s, pkg, ver)) {
                        let (supplier, package, version) = release_ref(s, pkg, ver);
                        return Err(Refusal::ReleaseExists {
                            supplier,
                            package,
                            version,
                        });
                    }
                    Ok(())
                }
                Ev::RevokeRelease { pkg, ver } => {
                    if !self.current(s, st.signer, None) {
                        return Err(Refusal::NotCurrentKey { supplier, signer });
                    }
                    let (supplier, package, version) = release_ref(s, pkg, ver);
                    match self.releases.get(&(s, pkg, ver)) {
                        None => Err(Refusal::UnknownRelease {
                            supplier,
                            package,
                            version,
                        }),
                        Some(r) if r.revoked_at.is_some() => Err(Refusal::ReleaseAlreadyRevoked {
                            supplier,
                            package,
                            version,
                        }),
                        Some(_) => Ok(()),
                    }
                }
                Ev::Attest {
                    subject,
                    pkg,
                    ver,
                    digest,
                } => {
                    if !self.current(s, st.signer, None) {
                        return Err(Refusal::NotCurrentKey { supplier, signer });
                    }
                    if subject == s {
                        return Err(Refusal::SelfAttestation(supplier));
                    }
                    let Some(rec) = self.releases.get(&(subject, pkg, ver)) else {
                        let (supplier, package, version) = release_ref(subject, pkg, ver);
                        return Err(Refusal::UnknownRelease {
                            supplier,
                            package,
                            version,
                        });
                    };
                    if rec.digest != digest {
                        return Err(Refusal::AttestationDigestMismatch);
                    }
                    if rec.attesters.iter().any(|(a, _)| *a == s) {
                        return Err(Refusal::DuplicateAttestation(supplier));
                    }
                    Ok(())
                }
            }
        }

        fn commit(&mut self, st: &Step) {
            let i = self.size;
            let s = st.supplier;
            let mut add_key = |k: usize, role: Role| {
                self.known.insert(s);
                let previous = self.keys.insert(
                    k,
                    MKey {
                        owner: s,
                        role,
                        added_at: i,
                        added_by: st.signer,
                        revoked_at: None,
                    },
                );
                assert!(previous.is_none());
            };
            match st.ev {
                Ev::Master(k) => add_key(k, Role::Master),
                Ev::Signing(k) => add_key(k, Role::Signing),
                Ev::RevokeKey(k) => self.keys.get_mut(&k).unwrap().revoked_at = Some(i),
                Ev::Release { pkg, ver, digest } => {
                    self.releases.insert(
                        (s, pkg, ver),
                        MRelease {
                            index: i,
                            signer: st.signer,
                            digest,
                            revoked_at: None,
                            attesters: Vec::new(),
                        },
                    );
                }
                Ev::RevokeRelease { pkg, ver } => {
                    self.releases.get_mut(&(s, pkg, ver)).unwrap().revoked_at = Some(i);
                }
                Ev::Attest {
                    subject, pkg, ver, ..
                } => {
                    let r = self.releases.get_mut(&(subject, pkg, ver)).unwrap();
                    r.attesters.push((s, i));
                }
            }
            self.size += 1;
        }

        /// Turns raw random choices into a concrete event, biased towards plausible ones.
        fn resolve(&self, op: &Op) -> Step {
            let s = op.supplier;
            let forge = match op.forge {
                0 => Forge::OtherKey,
                1 => Forge::WrongContext,
                _ => Forge::No,
            };
            let step = |signer: usize, ev: Ev| Step {
                supplier: s,
                signer,
                ev,
                forge,
            };
            let any_a = usize::from(op.a) % N_KEYS;
            let any_b = usize::from(op.b) % N_KEYS;
            let digest = usize::from(!op.digest_ok);
            if !op.plausible {
                let ev = match op.kind {
                    0..14 => Ev::Master(any_b),
                    14..32 => Ev::Signing(any_b),
                    32..47 => Ev::RevokeKey(any_b),
                    47..75 => Ev::Release {
                        pkg: op.pkg,
                        ver: op.ver,
                        digest,
                    },
                    75..87 => Ev::RevokeRelease {
                        pkg: op.pkg,
                        ver: op.ver,
                    },
                    _ => Ev::Attest {
                        subject: op.subject,
                        pkg: op.pkg,
                        ver: op.ver,
                        digest,
                    },
                };
                return step(any_a, ev);
            }
            if !self.known.contains(&s) {
                // Found the supplier: a self-signed first master key.
                let k = pick(&self.unregistered(), op.a).unwrap_or(any_a);
                return step(k, Ev::Master(k));
            }
            let masters = self.current_keys(s, Some(Role::Master));
            let signers = self.current_keys(s, Some(Role::Signing));
            let current = self.current_keys(s, None);
            let master = pick(&masters, op.a).unwrap_or(any_a);
            let fresh = pick(&self.unregistered(), op.b).unwrap_or(any_b);
            let own: Vec<(usize, usize)> = self
                .releases
                .keys()
                .filter(|(rs, _, _)| *rs == s)
                .map(|(_, p, v)| (*p, *v))
                .collect();
            match op.kind {
                0..14 => step(master, Ev::Master(fresh)),
                14..32 => step(master, Ev::Signing(fresh)),
                32..47 => {
                    // Mostly current keys; sometimes any key of the supplier, revoked or not.
                    let own_keys: Vec<usize> = (0..N_KEYS)
                        .filter(|k| self.keys.get(k).is_some_and(|r| r.owner == s))
                        .collect();
                    let targets = if op.digest_ok { &current } else { &own_keys };
                    step(master, Ev::RevokeKey(pick(targets, op.b).unwrap_or(any_b)))
                }
                47..75 => {
                    // Mostly a version not released yet; sometimes any version.
                    let unreleased: Vec<(usize, usize)> = (0..N_PACKAGES)
                        .flat_map(|p| (0..N_VERSIONS).map(move |v| (p, v)))
                        .filter(|pv| !op.digest_ok || !own.contains(pv))
                        .collect();
                    let (pkg, ver) = pick(&unreleased, op.b).unwrap_or((op.pkg, op.ver));
                    let digest = usize::from(op.kind % 2);
                    step(
                        pick(&signers, op.a).unwrap_or(any_a),
                        Ev::Release { pkg, ver, digest },
                    )
                }
                75..87 => {
                    let unrevoked: Vec<(usize, usize)> = own
                        .iter()
                        .copied()
                        .filter(|(p, v)| self.releases[&(s, *p, *v)].revoked_at.is_none())
                        .collect();
                    let (pkg, ver) = pick(&unrevoked, op.b)
                        .or_else(|| pick(&own, op.b))
                        .unwrap_or((op.pkg, op.ver));
                    step(
                        pick(&current, op.a).unwrap_or(any_a),
                        Ev::RevokeRelease { pkg, ver },
                    )
                }
                _ => {
                    // Mostly another supplier's release; sometimes any (its own included).
                    let all: Vec<(usize, usize, usize)> = self
                        .releases
                        .keys()
                        .copied()
                        .filter(|(rs, _, _)| !op.digest_ok || *rs != s)
                        .collect();
                    let (subject, pkg, ver) =
                        pick(&all, op.b).unwrap_or((op.subject, op.pkg, op.ver));
                    let digest = match self.releases.get(&(subject, pkg, ver)) {
                        Some(r) if op.digest_ok => r.digest,
                        Some(r) => 1 - r.digest,
                        None => digest,
                    };
                    step(
                        pick(&current, op.a).unwrap_or(any_a),
                        Ev::Attest {
                            subject,
                            pkg,
                            ver,
                            digest,
                        },
                    )
                }
            }
        }
    }

    /// Every observable record of `state` equals the model's.
    fn assert_state_matches_model(state: &KeyState, m: &Model) {
        let u = &*U;
        assert_eq!(state.size(), m.size);
        let names: BTreeSet<&SupplierName> = state.suppliers().map(|(n, _)| n).collect();
        let known: BTreeSet<&SupplierName> = m.known.iter().map(|s| &u.suppliers[*s]).collect();
        assert_eq!(names, known);
        for k in 0..N_KEYS {
            assert_eq!(
                state.key_owner(&u.pubs[k]),
                m.keys.get(&k).map(|r| &u.suppliers[r.owner]),
                "owner of key {k}"
            );
        }
        for s in 0..N_SUPPLIERS {
            let Some(ss) = state.supplier(&u.suppliers[s]) else {
                assert!(!m.known.contains(&s));
                continue;
            };
            let model_keys: Vec<(usize, &MKey)> = m
                .keys
                .iter()
                .filter(|(_, r)| r.owner == s)
                .map(|(k, r)| (*k, r))
                .collect();
            assert_eq!(ss.keys.len(), model_keys.len(), "keys of supplier {s}");
            for (k, mk) in model_keys {
                let rec = &ss.keys[&u.pubs[k]];
                assert_eq!(
                    (rec.role, rec.added_at, rec.added_by, rec.revoked_at),
                    (mk.role, mk.added_at, u.pubs[mk.added_by], mk.revoked_at),
                    "record of key {k} of supplier {s}"
                );
            }
            let count: usize = ss.releases.values().map(BTreeMap::len).sum();
            let model_releases: Vec<(&(usize, usize, usize), &MRelease)> = m
                .releases
                .iter()
                .filter(|((rs, _, _), _)| *rs == s)
                .collect();
            assert_eq!(count, model_releases.len(), "releases of supplier {s}");
            for ((_, p, v), mr) in model_releases {
                let rec = &ss.releases[&u.packages[*p]][&u.versions[*v]];
                let attesters: Vec<(SupplierName, Claim, u64)> = mr
                    .attesters
                    .iter()
                    .map(|(a, i)| (u.suppliers[*a].clone(), Claim::Reproduced, *i))
                    .collect();
                let d = digest_byte(mr.digest);
                assert_eq!(
                    (rec.index, rec.signer, rec.revoked_at, &rec.attestations),
                    (mr.index, u.pubs[mr.signer], mr.revoked_at, &attesters)
                );
                assert_eq!(
                    (rec.size, rec.digest, &rec.commit, rec.archive_signature),
                    (1000 + u64::from(d), digest(d), &commit(), archive_sig(d))
                );
            }
        }
    }

    // --- Invariants from the history of accepted entries alone -------------------------------

    /// The accepted entries, in log order (position = log index).
    struct History<'a>(&'a [Step]);

    impl History<'_> {
        fn first_of(&self, s: usize) -> Option<usize> {
            self.0.iter().position(|st| st.supplier == s)
        }
        /// The accepted entry that added key `k` to supplier `s`: (index, role, signer).
        fn added(&self, s: usize, k: usize) -> Option<(usize, Role, usize)> {
            self.0.iter().enumerate().find_map(|(i, st)| match st.ev {
                Ev::Master(x) if x == k && st.supplier == s => Some((i, Role::Master, st.signer)),
                Ev::Signing(x) if x == k && st.supplier == s => Some((i, Role::Signing, st.signer)),
                _ => None,
            })
        }
        fn revoked(&self, s: usize, k: usize) -> Option<usize> {
            self.0
                .iter()
                .position(|st| st.supplier == s && st.ev == Ev::RevokeKey(k))
        }
        /// `k` is a `role` key of `s` current at index `at` (added before it, not revoked
        /// before it), reached by a chain of accepted key entries from the supplier's first,
        /// self-signed master key, each signed by a master key current at its own index.
        fn chain_ok(&self, s: usize, k: usize, role: Role, at: usize) -> bool {
            let Some((j, r, signer)) = self.added(s, k) else {
                return false;
            };
            if j >= at || r != role || self.revoked(s, k).is_some_and(|x| x < at) {
                return false;
            }
            if signer == k {
                return role == Role::Master && self.first_of(s) == Some(j);
            }
            self.chain_ok(s, signer, Role::Master, j)
        }
        fn release(&self, s: usize, pkg: usize, ver: usize) -> Option<(usize, usize, usize)> {
            self.0.iter().enumerate().find_map(|(i, st)| match st.ev {
                Ev::Release {
                    pkg: p,
                    ver: v,
                    digest,
                } if st.supplier == s && (p, v) == (pkg, ver) => Some((i, st.signer, digest)),
                _ => None,
            })
        }
        fn release_revoked(&self, s: usize, pkg: usize, ver: usize) -> bool {
            self.0
                .iter()
                .any(|st| st.supplier == s && st.ev == Ev::RevokeRelease { pkg, ver })
        }
    }

    /// Invariants about the newest accepted entry (earlier ones were checked when accepted,
    /// and nothing later changes what they depended on).
    fn check_newest_accepted(history: &History) {
        let i = history.0.len() - 1;
        let st = history.0[i];
        let s = st.supplier;
        assert_eq!(st.forge, Forge::No, "a forged entry was accepted: {st:?}");
        if history.first_of(s) == Some(i) {
            assert_eq!(
                st.ev,
                Ev::Master(st.signer),
                "a supplier's first entry must be its self-signed master key"
            );
        } else {
            let master = history.chain_ok(s, st.signer, Role::Master, i);
            let signing = history.chain_ok(s, st.signer, Role::Signing, i);
            let authorised = match st.ev {
                Ev::Master(_) | Ev::Signing(_) | Ev::RevokeKey(_) => master,
                Ev::Release { .. } => signing,
                Ev::RevokeRelease { .. } | Ev::Attest { .. } => master || signing,
            };
            assert!(authorised, "entry {i} has no chain of authority: {st:?}");
        }
        // A revoked key authorises nothing after its revocation.
        assert!(
            !history.0[..i]
                .iter()
                .any(|e| e.ev == Ev::RevokeKey(st.signer)),
            "entry {i} is signed by a key revoked earlier: {st:?}"
        );
        // A key is registered at most once, ever.
        if let Ev::Master(k) | Ev::Signing(k) = st.ev {
            let adds = history
                .0
                .iter()
                .filter(|e| matches!(e.ev, Ev::Master(x) | Ev::Signing(x) if x == k))
                .count();
            assert_eq!(adds, 1, "key {k} registered twice");
            if st.signer != k {
                assert!(history.first_of(s) < Some(i));
            }
        }
        if let Ev::RevokeKey(k) = st.ev {
            assert_ne!(k, st.signer, "self-revocation accepted");
        }
        // An attestation is always another supplier's word.
        if let Ev::Attest { subject, .. } = st.ev {
            assert_ne!(subject, s, "self-attestation accepted");
        }
    }

    /// Invariants of the current state against the history.
    fn check_state_invariants(state: &KeyState, history: &History, installable_seen: &mut usize) {
        let u = &*U;
        for s in 0..N_SUPPLIERS {
            let name = &u.suppliers[s];
            if history.first_of(s).is_none() {
                assert!(state.supplier(name).is_none());
                continue;
            }
            // Never without a current master key.
            let current_masters = (0..N_KEYS)
                .filter(|k| {
                    history
                        .added(s, *k)
                        .is_some_and(|(_, r, _)| r == Role::Master)
                        && history.revoked(s, *k).is_none()
                })
                .count();
            assert!(current_masters >= 1, "supplier {s} has no current master");
            assert_eq!(
                state.supplier(name).unwrap().current_masters().count(),
                current_masters
            );

            for p in 0..N_PACKAGES {
                let mut expected_versions = Vec::new();
                for v in 0..N_VERSIONS {
                    let got = state.installable(name, &u.packages[p], &u.versions[v]);
                    let rel = history.release(s, p, v);
                    let expected = rel.is_some_and(|(_, signer, _)| {
                        !history.release_revoked(s, p, v) && history.revoked(s, signer).is_none()
                    });
                    assert_eq!(got.is_some(), expected, "installable({s}, {p}, {v})");
                    let Some(r) = got else { continue };
                    *installable_seen += 1;
                    let (j, signer, d) = rel.unwrap();
                    assert!(
                        !history.release_revoked(s, p, v),
                        "revoked release installable"
                    );
                    assert!(
                        history.revoked(s, signer).is_none(),
                        "release of a revoked signer installable"
                    );
                    assert!(
                        history.chain_ok(s, signer, Role::Signing, j),
                        "installable release whose signer was not a current signing key"
                    );
                    assert_eq!(
                        (r.supplier(), r.package(), r.version()),
                        (name, &u.packages[p], &u.versions[v])
                    );
                    assert_eq!(r.index(), j as u64);
                    assert_eq!(r.signer(), &u.pubs[signer]);
                    assert_eq!(r.digest(), &digest(digest_byte(d)));
                    expected_versions.push(u.versions[v].clone());
                }
                let listed: Vec<Version> = state
                    .installable_versions(name, &u.packages[p])
                    .iter()
                    .map(|r| r.version().clone())
                    .collect();
                assert_eq!(listed, expected_versions, "installable_versions order");
            }
        }
    }

    // --- Driver ------------------------------------------------------------------------------

    /// Raw random choices for one event; see [`Model::resolve`].
    #[derive(Debug, Clone)]
    struct Op {
        kind: u8,
        supplier: usize,
        plausible: bool,
        a: u8,
        b: u8,
        pkg: usize,
        ver: usize,
        subject: usize,
        digest_ok: bool,
        forge: u8,
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        (
            (
                0u8..100,
                0..N_SUPPLIERS,
                proptest::bool::weighted(0.85),
                any::<u8>(),
                any::<u8>(),
            ),
            (
                0..N_PACKAGES,
                0..N_VERSIONS,
                0..N_SUPPLIERS,
                proptest::bool::weighted(0.8),
                0u8..40,
            ),
        )
            .prop_map(
                |((kind, supplier, plausible, a, b), (pkg, ver, subject, digest_ok, forge))| Op {
                    kind,
                    supplier,
                    plausible,
                    a,
                    b,
                    pkg,
                    ver,
                    subject,
                    digest_ok,
                    forge,
                },
            )
    }

    fn ops_strategy() -> impl Strategy<Value = Vec<Op>> {
        proptest::collection::vec(op_strategy(), 1..=60)
    }

    #[derive(Debug, Default)]
    struct Stats {
        events: usize,
        accepted: BTreeMap<&'static str, usize>,
        refused: BTreeMap<&'static str, usize>,
        installable_seen: usize,
    }

    impl Stats {
        fn merge(&mut self, other: Stats) {
            self.events += other.events;
            for (k, n) in other.accepted {
                *self.accepted.entry(k).or_default() += n;
            }
            for (k, n) in other.refused {
                *self.refused.entry(k).or_default() += n;
            }
            self.installable_seen += other.installable_seen;
        }
        fn accepted_total(&self) -> usize {
            self.accepted.values().sum()
        }
    }

    /// Applies the sequence step by step, checking everything; returns what happened.
    fn run_sequence(ops: &[Op]) -> Stats {
        let mut state = KeyState::new();
        let mut model = Model::default();
        let mut accepted: Vec<Step> = Vec::new();
        let mut entries: Vec<Entry> = Vec::new();
        let mut snapshots: Vec<KeyState> = Vec::new();
        let mut stats = Stats::default();
        // Every generated entry in order, and the first refusal with its log index.
        let mut generated: Vec<Entry> = Vec::new();
        let mut first_refusal: Option<(u64, Refusal)> = None;
        for (n, op) in ops.iter().enumerate() {
            let step = model.resolve(op);
            let entry = step.entry();
            generated.push(entry.clone());
            let expected = model.decide(&step);
            let before = state.clone();
            assert_eq!(state.check(&entry), expected, "check, event {n}: {step:?}");
            assert_eq!(state, before, "check changed the state");
            stats.events += 1;
            match state.apply(&entry) {
                Ok(applied) => {
                    assert_eq!(expected, Ok(()), "event {n} accepted: {step:?}");
                    assert_eq!(applied.index, model.size);
                    assert_eq!(applied.kind, step.ev.kind());
                    assert_eq!(applied.supplier, U.suppliers[step.supplier]);
                    model.commit(&step);
                    accepted.push(step);
                    entries.push(entry);
                    snapshots.push(state.clone());
                    *stats.accepted.entry(step.ev.kind()).or_default() += 1;
                    check_newest_accepted(&History(&accepted));
                }
                Err(refusal) => {
                    assert_eq!(Err(refusal.clone()), expected, "event {n}: {step:?}");
                    assert_eq!(state, before, "refused entry changed the state");
                    first_refusal.get_or_insert((state.size(), refusal.clone()));
                    *stats.refused.entry(refusal.rule()).or_default() += 1;
                }
            }
            assert_state_matches_model(&state, &model);
            check_state_invariants(&state, &History(&accepted), &mut stats.installable_seen);
        }

        // Determinism: replaying the accepted entries passes through the same states...
        let mut replay = KeyState::new();
        for (i, (entry, snapshot)) in entries.iter().zip(&snapshots).enumerate() {
            assert_eq!(replay.apply(entry).map(|a| a.index), Ok(i as u64));
            assert_eq!(&replay, snapshot, "replay diverged at index {i}");
        }
        assert_eq!(replay, state);
        // ... and so does applying them as one batch.
        let mut batch = KeyState::new();
        let applied = batch.apply_all(&entries).expect("accepted entries replay");
        let indices: Vec<u64> = applied.iter().map(|a| a.index).collect();
        assert_eq!(indices, (0..entries.len() as u64).collect::<Vec<_>>());
        assert_eq!(batch, state);
        // All or nothing: a batch of every generated entry fails at the first refused one,
        // with its log index and refusal, and applies nothing.
        let mut batch = KeyState::new();
        let result = batch.apply_all(&generated);
        match first_refusal {
            Some(first) => {
                assert_eq!(result, Err(first));
                assert_eq!(batch, KeyState::new(), "a refused batch changed the state");
            }
            None => {
                assert_eq!(result.map(|a| a.len()), Ok(generated.len()));
                assert_eq!(batch, state);
            }
        }
        stats
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            // The default (next to lib.rs) does not exist for an integration test binary.
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
            )),
            ..ProptestConfig::with_cases(256)
        })]

        #[test]
        fn random_sequences_keep_the_invariants(ops in ops_strategy()) {
            run_sequence(&ops);
        }
    }

    /// The generator is worth something only if it reaches accepted entries of every kind and
    /// a spread of refusals; checked on a fixed, deterministic sample.
    #[test]
    fn generator_reaches_acceptances_and_refusals() {
        let mut runner = TestRunner::deterministic();
        let strategy = ops_strategy();
        let mut total = Stats::default();
        for _ in 0..64 {
            let ops = strategy.new_tree(&mut runner).unwrap().current();
            total.merge(run_sequence(&ops));
        }
        eprintln!("{total:#?}");
        for kind in KINDS {
            let n = total.accepted.get(kind).copied().unwrap_or(0);
            assert!(n >= 10, "only {n} accepted {kind} entries");
        }
        assert!(
            total.accepted_total() * 4 >= total.events,
            "less than a quarter accepted"
        );
        assert!(total.installable_seen > 100);
        for rule in [
            "bad_signature",
            "unknown_supplier",
            "first_key_not_self_signed",
            "not_current_master",
            "key_already_registered",
            "not_supplier_key",
            "key_already_revoked",
            "self_revocation",
            "not_current_signing_key",
            "release_exists",
            "unknown_release",
            "release_already_revoked",
            "not_current_key",
            "attestation_digest_mismatch",
            "duplicate_attestation",
            "self_attestation",
        ] {
            assert!(
                total.refused.contains_key(rule),
                "never refused with {rule}"
            );
        }
    }
}

/// `entry::check_all` and `check_all_parallel` (batch verification across cores, issue 14):
/// the same decision as `Entry::into_checked` one by one, naming the first bad entry.
mod check_all {
    use super::*;
    use keyggdrasil::entry::{CHECK_BATCH, check_all, check_all_parallel};

    /// `n` valid entries by a few keys.
    fn entries(n: usize) -> Vec<Entry> {
        let keys = [kp(1), kp(2), kp(3)];
        (0..n)
            .map(|i| {
                let k = &keys[i % keys.len()];
                signed(
                    &sup("acme"),
                    k,
                    ev_release(&pkg("hello"), &ver(&format!("1.0.{i}")), i as u8),
                )
            })
            .collect()
    }

    fn both(list: &[Entry]) -> (Result<usize, usize>, Result<usize, usize>) {
        (
            check_all(list).map(|v| v.len()),
            check_all_parallel(list).map(|v| v.len()),
        )
    }

    #[test]
    fn valid_entries_pass_in_order() {
        for n in [
            0,
            1,
            CHECK_BATCH - 1,
            CHECK_BATCH,
            CHECK_BATCH + 1,
            5 * CHECK_BATCH + 7,
        ] {
            let list = entries(n);
            assert_eq!(both(&list), (Ok(n), Ok(n)), "{n}");
            let checked = check_all_parallel(&list).unwrap();
            assert!(checked.iter().map(|c| c.entry()).eq(list.iter()));
        }
    }

    #[test]
    fn a_forged_signature_anywhere_is_named() {
        let n = 3 * CHECK_BATCH + 5;
        for bad in [
            0,
            1,
            CHECK_BATCH - 1,
            CHECK_BATCH,
            2 * CHECK_BATCH + 3,
            n - 1,
        ] {
            let mut list = entries(n);
            let mut sig = *list[bad].signature().as_bytes();
            sig[40] ^= 1;
            list[bad] = with_signature(list[bad].body(), &Signature::from_bytes(sig));
            assert_eq!(both(&list), (Err(bad), Err(bad)), "forged at {bad}");
        }
    }

    #[test]
    fn wrong_key_wrong_context_and_small_order_r_are_refused() {
        let n = 2 * CHECK_BATCH;
        let mut list = entries(n);
        let body = list[70].body().clone();
        // Signed by another key than the one the body names.
        list[70] = hand_signed(&body, &kp(9), Context::Release);
        assert_eq!(both(&list), (Err(70), Err(70)));
        // Signed by the named key under another context.
        let mut list = entries(n);
        list[3] = hand_signed(&body, &kp((70 % 3 + 1) as u8), Context::KeyEvent);
        assert_eq!(both(&list), (Err(3), Err(3)));
        // R of small order (the identity), S zero: refused before batching, and strictly.
        let mut list = entries(n);
        let mut sig = [0u8; 64];
        sig[0] = 1;
        list[100] = with_signature(list[100].body(), &Signature::from_bytes(sig));
        assert_eq!(both(&list), (Err(100), Err(100)));
    }

    #[test]
    fn the_two_agree_with_one_by_one_strict_verification() {
        let mut list = entries(CHECK_BATCH * 4);
        for i in [5, 77, 200] {
            let mut sig = *list[i].signature().as_bytes();
            sig[63] ^= 0x10;
            list[i] = with_signature(list[i].body(), &Signature::from_bytes(sig));
        }
        let first_bad = list
            .iter()
            .position(|e| e.clone().into_checked().is_err())
            .unwrap();
        assert_eq!(both(&list), (Err(first_bad), Err(first_bad)));
    }
}
