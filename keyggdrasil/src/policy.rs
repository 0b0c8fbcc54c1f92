//! Witness policies in the C2SP `tlog-policy` format, and the check of a checkpoint's
//! cosignatures against one, with a freshness bound on the cosignature times.
//!
//! ```text
//! log <vkey> [<url>]
//! witness <name> <vkey> [<url>]
//! group <name> all|any|<k> <member>...
//! quorum <name>|none
//! ```
//!
//! Parse → verify → decide, no I/O: [`Policy::parse`] reads the file (comments, blank lines,
//! spaces and tabs as the spec says; names defined before use; each member once; exactly one
//! quorum; no duplicate keys), [`Policy::check`] opens a checkpoint note with the witness keys,
//! keeps the cosignatures no older than `max_age` (and not from the future beyond `skew`), and
//! evaluates the quorum. A missing quorum is a [`PolicyError::Quorum`] that says which witnesses
//! cosigned in time and which did not.
//!
//! What it does not do: check the log's own signature (the caller pins the log key and opens
//! the checkpoint with it, e.g. [`crate::tlog_checkpoint::open`]); `log` lines are parsed and
//! kept for callers that want them. Limits: at most [`MAX_ITEMS`] logs, witnesses and groups
//! each, [`MAX_POLICY_BYTES`] of text.

use thiserror::Error;

use crate::note::{self, ALG_COSIGNATURE_V1, ALG_ED25519, VerifierKey};

/// Most logs, witnesses and groups (each) a policy may define (the spec recommends ≥ 32).
pub const MAX_ITEMS: usize = 256;
/// Most bytes of a policy file.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;

/// Why a policy or a check failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy text is not valid (with its line number, from 1).
    #[error("witness policy line {line}: {message}")]
    Syntax {
        /// The line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint does not carry cosignatures that meet the quorum.
    #[error(
        "the checkpoint does not meet the witness quorum: cosigned within {max_age} s by [{}]; missing or too old: [{}]",
        .cosigned.join(", "), .missing.join(", ")
    )]
    Quorum {
        /// Witnesses (policy names) with a valid, fresh cosignature.
        cosigned: Vec<String>,
        /// Witnesses without one.
        missing: Vec<String>,
        /// The freshness bound used.
        max_age: u64,
    },
    /// The note could not be opened (malformed, or a known key's bad signature).
    #[error("the checkpoint note: {0}")]
    Note(note::NoteError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Witness(usize),
    Group(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    name: String,
    k: usize,
    members: Vec<Node>,
}

/// A parsed witness policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The `log` lines: key and optional URL.
    pub logs: Vec<(VerifierKey, Option<String>)>,
    witnesses: Vec<(String, VerifierKey, Option<String>)>,
    groups: Vec<Group>,
    quorum: Option<Node>,
}

/// Splits on runs of spaces and tabs, the spec's only whitespace.
fn fields(line: &str) -> Vec<&str> {
    line.split([' ', '\t']).filter(|f| !f.is_empty()).collect()
}

impl Policy {
    /// Parses a policy file.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let err = |line: usize, m: &str| PolicyError::Syntax {
            line,
            message: m.to_owned(),
        };
        if text.len() > MAX_POLICY_BYTES {
            return Err(err(0, "the policy file is too large"));
        }
        let mut p = Policy {
            logs: Vec::new(),
            witnesses: Vec::new(),
            groups: Vec::new(),
            quorum: None,
        };
        let mut quorum_seen = false;
        for (i, raw) in text.split('\n').enumerate() {
            let n = i + 1;
            if raw.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
                return Err(err(n, "a control character other than tab"));
            }
            let f = fields(raw);
            if f.is_empty() || f[0].starts_with('#') {
                continue;
            }
            let lookup = |p: &Policy, name: &str| -> Option<Node> {
                p.witnesses
                    .iter()
                    .position(|w| w.0 == name)
                    .map(Node::Witness)
                    .or_else(|| {
                        p.groups
                            .iter()
                            .position(|g| g.name == name)
                            .map(Node::Group)
                    })
            };
            let key_in_use = |p: &Policy, k: &VerifierKey| {
                p.logs.iter().any(|l| l.0.public_key() == k.public_key())
                    || p.witnesses
                        .iter()
                        .any(|w| w.1.public_key() == k.public_key())
            };
            match f[0] {
                "log" => {
                    if !(2..=3).contains(&f.len()) {
                        return Err(err(n, "expected `log <vkey> [<url>]`"));
                    }
                    let k = VerifierKey::parse(f[1]).map_err(|e| err(n, &e.to_string()))?;
                    if k.alg() != ALG_ED25519 {
                        return Err(err(n, "a log key must be of signature type 0x01"));
                    }
                    if key_in_use(&p, &k) {
                        return Err(err(n, "a duplicate key"));
                    }
                    if p.logs.len() == MAX_ITEMS {
                        return Err(err(n, "too many logs"));
                    }
                    p.logs.push((k, f.get(2).map(|u| (*u).to_owned())));
                }
                "witness" => {
                    if !(3..=4).contains(&f.len()) {
                        return Err(err(n, "expected `witness <name> <vkey> [<url>]`"));
                    }
                    let name = f[1];
                    if name == "none" || lookup(&p, name).is_some() {
                        return Err(err(n, "the name is `none` or already defined"));
                    }
                    let k = VerifierKey::parse(f[2]).map_err(|e| err(n, &e.to_string()))?;
                    if k.alg() != ALG_COSIGNATURE_V1 {
                        return Err(err(
                            n,
                            "a witness key must be of signature type 0x04 (cosignature/v1)",
                        ));
                    }
                    if key_in_use(&p, &k) {
                        return Err(err(n, "a duplicate key"));
                    }
                    if p.witnesses.len() == MAX_ITEMS {
                        return Err(err(n, "too many witnesses"));
                    }
                    p.witnesses
                        .push((name.to_owned(), k, f.get(3).map(|u| (*u).to_owned())));
                }
                "group" => {
                    if f.len() < 4 {
                        return Err(err(n, "expected `group <name> all|any|<k> <member>...`"));
                    }
                    let name = f[1];
                    if name == "none" || lookup(&p, name).is_some() {
                        return Err(err(n, "the name is `none` or already defined"));
                    }
                    let mut members = Vec::new();
                    for m in &f[3..] {
                        let node = lookup(&p, m)
                            .ok_or_else(|| err(n, &format!("{m} is not defined above")))?;
                        if members.contains(&node) {
                            return Err(err(n, &format!("{m} is listed twice")));
                        }
                        members.push(node);
                    }
                    let k = match f[2] {
                        "all" => members.len(),
                        "any" => 1,
                        k => k
                            .parse::<usize>()
                            .ok()
                            .filter(|k| (1..=members.len()).contains(k) && !f[2].starts_with('0'))
                            .ok_or_else(|| {
                                err(n, "the threshold is not all, any or 1 <= k <= n")
                            })?,
                    };
                    if p.groups.len() == MAX_ITEMS {
                        return Err(err(n, "too many groups"));
                    }
                    p.groups.push(Group {
                        name: name.to_owned(),
                        k,
                        members,
                    });
                }
                "quorum" => {
                    if f.len() != 2 || quorum_seen {
                        return Err(err(n, "expected exactly one `quorum <name>|none`"));
                    }
                    quorum_seen = true;
                    p.quorum = match f[1] {
                        "none" => None,
                        name => Some(
                            lookup(&p, name)
                                .ok_or_else(|| err(n, &format!("{name} is not defined above")))?,
                        ),
                    };
                }
                other => return Err(err(n, &format!("unknown keyword {other:?}"))),
            }
        }
        if !quorum_seen {
            return Err(err(0, "no quorum line"));
        }
        Ok(p)
    }

    /// The witnesses' cosignature verifier keys, in policy order.
    pub fn witness_keys(&self) -> Vec<VerifierKey> {
        self.witnesses.iter().map(|w| w.1.clone()).collect()
    }

    /// The witnesses' names and URLs (for a log that pushes its checkpoints to them).
    pub fn witness_urls(&self) -> Vec<(&str, Option<&str>)> {
        self.witnesses
            .iter()
            .map(|w| (w.0.as_str(), w.2.as_deref()))
            .collect()
    }

    /// Whether the quorum holds, given which witnesses cosigned. Groups only name what was
    /// defined before them, so one pass in definition order settles every group: linear in the
    /// policy's size (a recursive walk would be exponential on groups that share members).
    fn quorum_holds(&self, cosigned: &[bool]) -> bool {
        let mut groups: Vec<bool> = Vec::with_capacity(self.groups.len());
        for g in &self.groups {
            let met = g
                .members
                .iter()
                .filter(|m| match m {
                    Node::Witness(i) => cosigned.get(*i).copied().unwrap_or(false),
                    Node::Group(j) => groups.get(*j).copied().unwrap_or(false),
                })
                .count();
            groups.push(met >= g.k);
        }
        match &self.quorum {
            None => true,
            Some(Node::Witness(i)) => cosigned.get(*i).copied().unwrap_or(false),
            Some(Node::Group(j)) => groups.get(*j).copied().unwrap_or(false),
        }
    }

    /// Checks a checkpoint note's cosignatures (the log's own signature is not checked here):
    /// each witness whose `cosignature/v1` verifies with a time in `[now - max_age, now + skew]`
    /// counts; the quorum must hold. Returns the names of the witnesses that counted.
    pub fn check(
        &self,
        note: &[u8],
        now: u64,
        max_age: u64,
        skew: u64,
    ) -> Result<Vec<String>, PolicyError> {
        let keys = self.witness_keys();
        let mut cosigned = vec![false; self.witnesses.len()];
        if !keys.is_empty() {
            match note::open(note, &keys) {
                Ok(opened) => {
                    for s in &opened.verified {
                        let fresh = s
                            .time
                            .is_some_and(|t| note::cosignature_time_ok(t, now, max_age, skew));
                        if let Some(i) = keys
                            .iter()
                            .position(|k| k.name() == s.name && k.id() == s.id)
                            && fresh
                        {
                            cosigned[i] = true;
                        }
                    }
                }
                Err(note::NoteError::Unverified) => {}
                Err(e) => return Err(PolicyError::Note(e)),
            }
        }
        let ok = self.quorum_holds(&cosigned);
        let names = |want: bool| -> Vec<String> {
            self.witnesses
                .iter()
                .zip(&cosigned)
                .filter(|(_, c)| **c == want)
                .map(|(w, _)| w.0.clone())
                .collect()
        };
        if ok {
            Ok(names(true))
        } else {
            Err(PolicyError::Quorum {
                cosigned: names(true),
                missing: names(false),
                max_age,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;

    const NOW: u64 = 1_800_000_000;

    struct W {
        key: KeyPair,
        vkey: VerifierKey,
    }

    fn witness(name: &str) -> W {
        let key = KeyPair::generate();
        let vkey = VerifierKey::cosignature_v1(name, &key.public()).unwrap();
        W { key, vkey }
    }

    fn cosigned(text: &str, log: &KeyPair, by: &[(&W, u64)]) -> String {
        let mut n = note::sign(text, "plugins.example.org", log).unwrap();
        for (w, t) in by {
            n.push_str(&note::cosign(text, w.vkey.name(), &w.key, *t).unwrap());
        }
        n
    }

    #[test]
    fn a_two_level_quorum_is_evaluated_as_the_spec_s_example() {
        let log = KeyPair::generate();
        let logv = VerifierKey::ed25519("plugins.example.org", &log.public()).unwrap();
        let xs: Vec<W> = ["x1.example", "x2.example", "x3.example"]
            .map(witness)
            .into();
        let ys: Vec<W> = ["y1.example", "y2.example"].map(witness).into();
        let text = format!(
            "# the spec's example, smaller\nlog {logv}\n\twitness X1 {}  https://x1.example/\nwitness X2 {}\nwitness X3 {}\ngroup X 2 X1 X2 X3\nwitness Y1 {}\nwitness Y2 {}\ngroup Y any Y1 Y2\ngroup XY all X Y\nquorum XY\n",
            xs[0].vkey, xs[1].vkey, xs[2].vkey, ys[0].vkey, ys[1].vkey
        );
        let p = Policy::parse(&text).unwrap();
        assert_eq!(p.logs.len(), 1);
        assert_eq!(p.witness_urls()[0], ("X1", Some("https://x1.example/")));
        let cp = "plugins.example.org\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let t = NOW - 60;
        // Two X and one Y: holds.
        let ok = cosigned(cp, &log, &[(&xs[0], t), (&xs[2], t), (&ys[1], t)]);
        assert_eq!(
            p.check(ok.as_bytes(), NOW, 7200, 60).unwrap(),
            ["X1", "X3", "Y2"]
        );
        // One X and one Y: the X group fails, so the quorum does.
        let one_x = cosigned(cp, &log, &[(&xs[0], t), (&ys[0], t)]);
        let e = p.check(one_x.as_bytes(), NOW, 7200, 60).unwrap_err();
        assert!(
            matches!(&e, PolicyError::Quorum { cosigned, .. } if cosigned == &["X1", "Y1"]),
            "{e}"
        );
        // Two X, no Y.
        let no_y = cosigned(cp, &log, &[(&xs[0], t), (&xs[1], t)]);
        assert!(p.check(no_y.as_bytes(), NOW, 7200, 60).is_err());
        // Too old: a cosignature beyond max_age does not count (freeze bound).
        let old = cosigned(cp, &log, &[(&xs[0], NOW - 7201), (&xs[2], t), (&ys[1], t)]);
        let e = p.check(old.as_bytes(), NOW, 7200, 60).unwrap_err();
        assert!(
            e.to_string().contains("missing or too old: [X1, X2, Y1]"),
            "{e}"
        );
        // From the future beyond the skew: does not count either.
        let future = cosigned(cp, &log, &[(&xs[0], NOW + 61), (&xs[2], t), (&ys[1], t)]);
        assert!(p.check(future.as_bytes(), NOW, 7200, 60).is_err());
        // A cosignature over another checkpoint moved onto this one: the known key's signature
        // fails, so the note is refused.
        let other = "plugins.example.org\n6\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let line = note::cosign(other, xs[0].vkey.name(), &xs[0].key, t).unwrap();
        let moved = format!("{}{line}", cosigned(cp, &log, &[(&xs[2], t), (&ys[1], t)]));
        assert!(matches!(
            p.check(moved.as_bytes(), NOW, 7200, 60),
            Err(PolicyError::Note(note::NoteError::InvalidSignature { .. }))
        ));
    }

    #[test]
    fn deeply_shared_groups_are_settled_in_one_pass() {
        // Each group needs any of the two before it: a recursive walk would visit 2^200 nodes.
        let w = witness("a.example");
        let mut text = format!("witness A {}\ngroup G0 any A\ngroup G1 any A G0\n", w.vkey);
        for i in 2..200 {
            text.push_str(&format!("group G{i} any G{} G{}\n", i - 1, i - 2));
        }
        text.push_str("quorum G199\n");
        let p = Policy::parse(&text).unwrap();
        let log = KeyPair::generate();
        let cp = "o\n1\nAAAA\n";
        let yes = cosigned(cp, &log, &[(&w, NOW)]);
        assert_eq!(p.check(yes.as_bytes(), NOW, 60, 0).unwrap(), ["A"]);
        let no = cosigned(cp, &log, &[]);
        assert!(p.check(no.as_bytes(), NOW, 60, 0).is_err());
    }

    #[test]
    fn quorum_none_needs_no_cosignature() {
        let p = Policy::parse("quorum none\n").unwrap();
        let log = KeyPair::generate();
        let n = cosigned("o\n1\nAAAA\n", &log, &[]);
        assert!(p.check(n.as_bytes(), NOW, 1, 0).unwrap().is_empty());
    }

    #[test]
    fn malformed_policies_are_refused_with_their_line() {
        let (a, b) = (witness("a.example"), witness("b.example"));
        let log = KeyPair::generate();
        let logv = VerifierKey::ed25519("l.example", &log.public()).unwrap();
        let a_as_log = VerifierKey::ed25519("a.example", &a.key.public()).unwrap();
        let bad = [
            format!("witness A {}\n", a.vkey),           // no quorum
            format!("witness A {}\nquorum B\n", a.vkey), // undefined
            format!("quorum A\nwitness A {}\n", a.vkey), // used before defined
            format!("witness A {}\nwitness A {}\nquorum A\n", a.vkey, b.vkey), // name twice
            format!("witness A {}\nwitness B {}\nquorum A\n", a.vkey, a.vkey), // key twice
            format!("witness A {}\ngroup G 2 A\nquorum G\n", a.vkey), // k > n
            format!("witness A {}\ngroup G 0 A\nquorum G\n", a.vkey), // k = 0
            format!("witness A {}\ngroup G any A A\nquorum G\n", a.vkey), // member twice
            format!("witness A {}\nquorum A\nquorum A\n", a.vkey), // two quorums
            format!("witness A {logv}\nquorum A\n"),     // log key as witness
            format!("log {}\nquorum none\n", a.vkey),    // witness key as log
            format!("log {a_as_log}\nwitness A {}\nquorum A\n", a.vkey), // duplicate key
            format!("witness none {}\nquorum none\n", a.vkey), // reserved name
            "quorum none\nfrobnicate\n".to_owned(),      // unknown keyword
            "quorum none\x0b\n".to_owned(),              // control character
        ];
        for text in bad {
            assert!(
                matches!(Policy::parse(&text), Err(PolicyError::Syntax { .. })),
                "{text:?}"
            );
        }
        let e = Policy::parse(&format!("# c\n\nwitness A {}\nquorum B\n", a.vkey)).unwrap_err();
        assert!(matches!(e, PolicyError::Syntax { line: 4, .. }), "{e}");
    }
}
