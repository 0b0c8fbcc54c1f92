//! The hostile key-rule inputs (`fixtures/hostile/*.txt`) submitted over HTTP, one case per
//! fresh channel (the real `channel-server` binary, through the shared harness): every entry
//! before the refused one is accepted and logged at its index; the refused one gets HTTP 403
//! with the rule as its error code, and the signed checkpoint (size and root) is the same
//! before and after it, equal to the root over the accepted entries. An accepted case is
//! logged whole. The state-machine and whole-system drivers of the same files are
//! `keyggdrasil/tests/hostile.rs` and `tests/tests/key_attacks.rs`.

use keyggdrasil::limits::Limits;
use keyggdrasil::merkle::{Blake2b256, MemoryStore};
use keyggdrasil::wire::{TreeHash, verify_checkpoint};
use system_tests::{Channel, hostile};

/// The channel's signed checkpoint, verified with its key: (size, root).
fn checkpoint(ch: &Channel) -> (u64, TreeHash) {
    let signed = ch.get_signed("/v1/checkpoint");
    let c = verify_checkpoint(&signed, &ch.key, Some(&ch.origin()), &Limits::default())
        .expect("the channel's checkpoint verifies");
    (c.size(), *c.root())
}

/// The root over `entries`, computed here.
fn root_over(entries: &[String]) -> TreeHash {
    let mut tree = MemoryStore::new();
    for e in entries {
        tree.append(&Blake2b256, e.as_bytes()).expect("append");
    }
    TreeHash(tree.root(&Blake2b256).expect("root"))
}

fn submit_case(name: &str) {
    let case = hostile::load(name).unwrap_or_else(|e| panic!("{e}"));
    let texts = case.entry_texts();
    let ch = Channel::start();
    let accepted = match hostile::refused(&case) {
        Some((index, _, _)) => index,
        None => texts.len(),
    };
    for (i, text) in texts[..accepted].iter().enumerate() {
        let r = ch
            .try_submit_text(text, None)
            .unwrap_or_else(|(s, code)| panic!("{name}: entry {i} refused ({s}): {code}"));
        assert_eq!(r.index, i as u64, "{name}: entry {i} logged elsewhere");
        assert!(!r.duplicate, "{name}: entry {i} taken for a duplicate");
    }
    let before = checkpoint(&ch);
    assert_eq!(
        before,
        (accepted as u64, root_over(&texts[..accepted])),
        "{name}: the channel's log is not the accepted entries"
    );
    if let Some((index, rule, _)) = hostile::refused(&case) {
        let err = ch
            .try_submit_text(&texts[index], None)
            .expect_err("the channel logged the refused entry");
        assert_eq!(err, (403, rule.to_owned()), "{name}");
        assert_eq!(
            checkpoint(&ch),
            before,
            "{name}: the log changed after a refused submission"
        );
    }
}

macro_rules! submit_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                submit_case(stringify!($name));
            }
        )*
    };
}

mod submit {
    use super::submit_case;
    system_tests::for_each_hostile_case!(submit_tests);
}

/// Every committed file is submitted by a test above (a file no driver ran would be a gap).
#[test]
fn every_committed_case_is_driven() {
    let mut listed = hostile::case_names();
    listed.sort_unstable();
    assert_eq!(hostile::committed_names().expect("list"), listed);
}
