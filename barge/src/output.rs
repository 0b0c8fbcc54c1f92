//! Plain words for people or JSON for scripts: the same printer hangar uses (`shipyard`).

pub use shipyard::output::{Output, warn_loudly};
