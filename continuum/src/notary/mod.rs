//! The peer notary: a witness of what the channel has shown this site.
//!
//! # Observed versus accepted
//!
//! A site keeps two logs of each channel, apart on purpose (see [`crate::db`]):
//!
//! - the **accepted** log is what `continuum update` has peer-verified and applied to the key
//!   state; installs are decided from it alone.
//! - the **observed** log ([`observe`]) is everything the channel has *shown* this site with a
//!   valid channel signature, whose root recomputes from the entries, and which is append-only
//!   consistent with everything observed before. It holds leaf hashes (not entries) and the
//!   channel-signed statements that committed to them.
//!
//! The notary endpoint ([`serve_notary`]) answers from the observed log, never from the
//! accepted one. If it answered from the accepted log, no site could ever advance: a fresh
//! entry would have no peer that had already accepted it. A notary therefore vouches for
//! exactly one thing: **"the channel, signing with its pinned key, showed me this root at this
//! size, and everything it showed me before is a prefix of it."** It does not vouch that the
//! entries are valid under the key rules, that any release is safe, or that it installed
//! anything. Its answer is bound to the asker's nonce and signed with the site's notary key
//! (derived from `local/site-secret`) under its own signature context, so it cannot be replayed
//! or passed off as any other message.
//!
//! # Forks
//!
//! If the channel ever shows the observed log two views that cannot both be prefixes of one
//! append-only log (same size with another root, another entry at an index already observed,
//! or a root that does not extend the observed leaves), [`observe`] keeps the channel-signed
//! statements that contradict each other in `fork_evidence` and from then on refuses
//! everything from that channel; the endpoint answers `fork_detected` with that evidence to
//! every later question about the channel, and the site's own updater must stop updating from
//! it (see [`fork_record`]). Evidence that a third party can check on its own (two statements
//! with the same size and different roots, two different entries at one index, or a root that
//! does not match entries the statements carry from index 0) is preferred; [`check_evidence`]
//! is the check a peer runs before it believes a `fork_detected` answer.
//!
//! # Storage
//!
//! Besides the `observed_entries` (leaf hashes), `observed_statements` and `fork_evidence`
//! tables of [`crate::db`], this module keeps `observed_tree`: every leaf hash and every
//! complete-subtree hash of the observed tree in the layout of
//! [`keyggdrasil::merkle::StoredIndex`], so roots at any observed size are O(log n) reads and an
//! append is O(log n) hashes. It is derived data, rebuilt from `observed_entries` if it is ever
//! missing or short.

mod observed;
mod server;
pub mod witness;

pub use keyggdrasil::evidence::{
    Contradiction, EvidenceError, Statement, StatementKind, check_evidence, find_contradiction,
    parse_statement,
};
pub use observed::{
    ForkRecord, Observation, ObserveError, fork_record, observe, observe_after_leaf_hashes,
    observed_leaf, observed_root_at, observed_size, observed_view,
};
pub use server::{
    NOTARY_PATH, NotaryError, NotaryOptions, WITNESS_PATH, load_notary_keypair, serve_notary,
    serve_notary_with,
};
