//! The hostile key-rule inputs (`fixtures/hostile/*.txt`, format in its README) replayed
//! through the state machine: every entry before the refused one is accepted, the refused one
//! is refused by the named rule with the named message, and neither `check`, `apply` nor
//! `apply_all` changed the state; an accepted case is accepted whole. Also checks that the
//! committed files are exactly what the generator makes (`HOSTILE_REGENERATE=1` rewrites them).
//!
//! The same files are driven over HTTP against a real channel (`channel-server/tests/hostile.rs`)
//! and against a site shown them by a malicious channel (`tests/tests/key_attacks.rs`).

// The parser and generator are shared with those drivers; included by path because a
// dev-dependency on `system-tests` would build its network and SQLite stack into the core's
// tests. It uses only `std` and `keyggdrasil`.
#[path = "../../tests/src/hostile.rs"]
#[macro_use]
#[allow(dead_code)] // The other drivers use the parts this one does not.
mod hostile;

use keyggdrasil::entry::Entry;
use keyggdrasil::state::KeyState;

/// Replays the case `name` through a fresh [`KeyState`] and checks its verdict.
fn replay(name: &str) {
    let case = hostile::load(name).unwrap_or_else(|e| panic!("{e}"));
    let entries: Vec<Entry> = case
        .entries
        .iter()
        .enumerate()
        .map(|(i, (_, b))| {
            Entry::parse(b).unwrap_or_else(|e| panic!("{name}: entry {i} does not parse: {e}"))
        })
        .collect();
    let mut state = KeyState::new();
    match hostile::refused(&case) {
        None => {
            let mut all = KeyState::new();
            let applied = all
                .apply_all(entries.iter())
                .unwrap_or_else(|(i, r)| panic!("{name}: entry {i} refused: {r}"));
            assert_eq!(applied.len(), entries.len(), "{name}");
            for (i, e) in entries.iter().enumerate() {
                let a = state
                    .apply(e)
                    .unwrap_or_else(|r| panic!("{name}: entry {i} refused: {r}"));
                assert_eq!(a.index, i as u64, "{name}");
            }
            assert_eq!(state.size(), entries.len() as u64, "{name}");
        }
        Some((index, rule, message)) => {
            for (i, e) in entries[..index].iter().enumerate() {
                state.apply(e).unwrap_or_else(|r| {
                    panic!("{name}: entry {i} (before the refused one) refused: {r}")
                });
            }
            let before = state.clone();
            let bad = &entries[index];
            let r = state
                .check(bad)
                .expect_err("check accepted the refused entry");
            assert_eq!(
                (r.rule(), r.to_string().as_str()),
                (rule, message),
                "{name}: check"
            );
            let r = state
                .apply(bad)
                .expect_err("apply accepted the refused entry");
            assert_eq!(
                (r.rule(), r.to_string().as_str()),
                (rule, message),
                "{name}: apply"
            );
            assert!(state == before, "{name}: a refused apply changed the state");
            let mut fresh = KeyState::new();
            let (at, r) = fresh
                .apply_all(entries.iter())
                .expect_err("apply_all accepted the whole log");
            assert_eq!((at, r.rule()), (index as u64, rule), "{name}: apply_all");
            assert_eq!(
                fresh.size(),
                0,
                "{name}: a refused apply_all changed the state"
            );
        }
    }
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*
    };
}

mod replay {
    use super::replay;
    for_each_hostile_case!(replay_tests);
}

/// The committed files are what the generator makes, one per listed case, and no other file
/// is there. With `HOSTILE_REGENERATE=1` it first writes them (and removes stale ones).
#[test]
fn committed_files_match_the_generator() {
    let generated = hostile::generate();
    let names: Vec<&str> = generated.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        hostile::case_names(),
        "generator and case list differ"
    );
    if std::env::var_os("HOSTILE_REGENERATE").is_some() {
        std::fs::create_dir_all(hostile::dir()).expect("mkdir fixtures/hostile");
        for old in hostile::committed_names().expect("list") {
            if !names.contains(&old.as_str()) {
                std::fs::remove_file(hostile::dir().join(format!("{old}.txt"))).expect("remove");
            }
        }
        for c in &generated {
            std::fs::write(hostile::dir().join(format!("{}.txt", c.name)), c.render())
                .expect("write fixture");
        }
    }
    let mut sorted: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    sorted.sort();
    assert_eq!(
        hostile::committed_names().expect("list"),
        sorted,
        "fixtures/hostile holds other files than the generator makes \
         (HOSTILE_REGENERATE=1 cargo test -p keyggdrasil --test hostile)"
    );
    for c in &generated {
        let committed = std::fs::read_to_string(hostile::dir().join(format!("{}.txt", c.name)))
            .expect("read fixture");
        assert!(
            committed == c.render(),
            "fixtures/hostile/{}.txt differs from what the generator makes \
             (HOSTILE_REGENERATE=1 cargo test -p keyggdrasil --test hostile)",
            c.name
        );
        assert_eq!(
            &hostile::Case::parse(&c.name, &committed).expect("parse"),
            c,
            "{}: the file does not read back to the generated case",
            c.name
        );
    }
}

/// The parser refuses malformed files with a message instead of guessing.
#[test]
fn parser_refuses_malformed_files() {
    let good = hostile::generate().remove(0).render();
    assert!(hostile::Case::parse("x", &good).is_ok());
    for (bad, says) in [
        (good.replace("\n\n", "\n"), "no blank line"),
        (
            good.replace("expect: refused", "expect: maybe"),
            "expect must be",
        ),
        (good.replace("index: 2", "index: 1"), "must be the last"),
        (
            good.replace("entry 1: ", "entry 7: "),
            "note line must start",
        ),
        (good.replace("description: ", "descr: "), "unknown header"),
        (format!("{good}extra line\n"), "entry lines"),
    ] {
        let e = hostile::Case::parse("x", &bad).expect_err(says);
        assert!(e.contains(says), "{e:?} does not say {says:?}");
    }
}
