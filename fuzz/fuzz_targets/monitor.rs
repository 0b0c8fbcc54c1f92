//! `barge monitor`'s files: the author's journal (`monitor::Journal::parse`) and the monitor's
//! state (`monitor::MonitorState::parse`), both read from `local/` where a damaged or edited
//! file must be a clear error, never a panic.
//!
//! An even first byte selects the journal, an odd one the state; the rest is the file.
//!
//! Properties, besides never panicking:
//! - a parsed journal never holds more records than the input has newlines;
//! - a parsed state's view (`view()`) has the state's size and root, and the state written back
//!   (`to_bytes`) parses to an equal value.
#![no_main]

use keyggdrasil::monitor::{Journal, MonitorState};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        if let Ok(journal) = Journal::parse(rest) {
            let lines = rest.iter().filter(|&&b| b == b'\n').count();
            assert!(journal.len() <= lines, "more records than lines");
        }
    } else if let Ok(state) = MonitorState::parse(rest) {
        let view = state.view().expect("a parsed state has a view");
        assert_eq!(view.size(), state.size);
        assert_eq!(view.root(), state.root.0);
        let again = MonitorState::parse(&state.to_bytes()).expect("written state parses");
        assert_eq!(again, state, "state round trip changed the value");
    }
});
