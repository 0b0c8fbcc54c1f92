//! Limits on everything read from outside, in one place, with documented defaults.
//!
//! Every size a channel, a peer, an archive or a file could inflate is bounded by a field here
//! (or by a constant it names), so a review of "what can a hostile server make us allocate?"
//! starts and ends in this file. Binaries may lower limits through their configuration;
//! raising them past the hard constants of the parsers (e.g. [`crate::entry::MAX_ENTRY_BYTES`])
//! has no effect.

/// Limits for the channel and notary protocols. `Limits::default()` is the recommended setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest single log entry (default and hard maximum: 8 KiB).
    pub max_entry_bytes: usize,
    /// Most entries in one update answer or entries page (default 500).
    pub max_entries_per_page: usize,
    /// Largest update answer body a site reads (default 8 MiB; 500 × 8 KiB entries as JSON
    /// strings fit with room for escaping).
    pub max_update_response_bytes: u64,
    /// Largest checkpoint, proof or notary answer body (default 64 KiB).
    pub max_small_response_bytes: u64,
    /// Largest request body the channel accepts for a submission (default 64 KiB).
    pub max_submission_bytes: u64,
    /// Most hashes in an inclusion or consistency proof (default 64: enough for 2^63 leaves).
    pub max_proof_hashes: usize,
    /// Largest archive a site downloads, whatever the log says (default 256 MiB).
    pub max_archive_bytes: u64,
    /// Oldest signed timestamp accepted, in seconds (default 86 400: one day).
    pub max_response_age_secs: u64,
    /// How far in the future a signed timestamp may be, in seconds (default 300).
    pub max_clock_skew_secs: u64,
    /// Most evidence statements in a fork report (default 2).
    pub max_fork_evidence: usize,
    /// Limits for extracting archives (entry count, sizes, ratios, path length and depth);
    /// see [`crate::archive::ArchiveLimits`] for its defaults.
    pub archive: crate::archive::ArchiveLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entry_bytes: crate::entry::MAX_ENTRY_BYTES,
            max_entries_per_page: 500,
            max_update_response_bytes: 8 << 20,
            max_small_response_bytes: 64 << 10,
            max_submission_bytes: 64 << 10,
            max_proof_hashes: crate::merkle::MAX_PROOF_HASHES,
            max_archive_bytes: 256 << 20,
            max_response_age_secs: 86_400,
            max_clock_skew_secs: 300,
            max_fork_evidence: 2,
            archive: crate::archive::ArchiveLimits::default(),
        }
    }
}
