//! [`ArchiveLimits`]: every bound on untrusted archive input, in one place.

use std::fmt;

const MIB: u64 = 1024 * 1024;

/// Bounds that the extractor enforces on an archive, and that the builder enforces on what it
/// builds (so that whatever is built with some limits can be extracted with the same limits).
///
/// Sizes are in bytes. Every count is checked against the bytes actually produced while
/// decompressing, not only against the sizes an archive declares (a zip bomb can lie).
///
/// Fields are public; start from [`ArchiveLimits::default`] and change what you need:
///
/// ```
/// let mut limits = keyggdrasil::archive::ArchiveLimits::default();
/// limits.max_entries = 500;
/// assert_eq!(limits.max_total_size, 512 * 1024 * 1024);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveLimits {
    /// Largest archive file accepted (default 512 MiB).
    ///
    /// Checked first, before anything is parsed. It also bounds the memory used to read the
    /// zip directory, which the `zip` reader parses whole before the entry count can be
    /// checked: an archive made of nothing but directory records costs several times its size
    /// in memory. Keep this limit in proportion to the largest release you expect.
    pub max_archive_size: u64,
    /// Most entries, counting the manifest and every folder, including folders that are only
    /// implied by the path of a file (default 10 000).
    pub max_entries: u64,
    /// Largest sum of the uncompressed sizes of all entries (default 512 MiB).
    pub max_total_size: u64,
    /// Largest uncompressed size of a single file (default 128 MiB).
    pub max_file_size: u64,
    /// Largest uncompressed:compressed ratio of one entry, as `N` in `N:1` (default 100).
    /// Applies once the entry has produced more than [`ratio_threshold`](Self::ratio_threshold)
    /// bytes, so that small, very compressible files (a few KiB of zeros) stay acceptable.
    pub max_entry_ratio: u64,
    /// Largest ratio of the total uncompressed size to the whole archive's size, as `N` in
    /// `N:1` (default 100). Applies once the total passes
    /// [`ratio_threshold`](Self::ratio_threshold).
    pub max_total_ratio: u64,
    /// Uncompressed size below which the ratio limits do not apply (default 1 MiB).
    pub ratio_threshold: u64,
    /// Longest entry path in bytes, without the trailing `/` of a directory (default 1024).
    /// The manifest's fixed name is exempt.
    pub max_path_len: u64,
    /// Most components in an entry path (default 32). The manifest's fixed name is exempt.
    pub max_path_depth: u64,
    /// Largest manifest entry (default 64 KiB).
    pub max_manifest_size: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self {
            max_archive_size: 512 * MIB,
            max_entries: 10_000,
            max_total_size: 512 * MIB,
            max_file_size: 128 * MIB,
            max_entry_ratio: 100,
            max_total_ratio: 100,
            ratio_threshold: MIB,
            max_path_len: 1024,
            max_path_depth: 32,
            max_manifest_size: 64 * 1024,
        }
    }
}

/// Which limit of [`ArchiveLimits`] was exceeded; displays as the field name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// [`ArchiveLimits::max_archive_size`].
    ArchiveSize,
    /// [`ArchiveLimits::max_entries`].
    Entries,
    /// [`ArchiveLimits::max_total_size`].
    TotalSize,
    /// [`ArchiveLimits::max_file_size`].
    FileSize,
    /// [`ArchiveLimits::max_entry_ratio`].
    EntryRatio,
    /// [`ArchiveLimits::max_total_ratio`].
    TotalRatio,
    /// [`ArchiveLimits::max_path_len`].
    PathLength,
    /// [`ArchiveLimits::max_path_depth`].
    PathDepth,
    /// [`ArchiveLimits::max_manifest_size`].
    ManifestSize,
}

impl Limit {
    /// The name of the [`ArchiveLimits`] field.
    pub fn field_name(self) -> &'static str {
        match self {
            Limit::ArchiveSize => "max_archive_size",
            Limit::Entries => "max_entries",
            Limit::TotalSize => "max_total_size",
            Limit::FileSize => "max_file_size",
            Limit::EntryRatio => "max_entry_ratio",
            Limit::TotalRatio => "max_total_ratio",
            Limit::PathLength => "max_path_len",
            Limit::PathDepth => "max_path_depth",
            Limit::ManifestSize => "max_manifest_size",
        }
    }

    /// The configured value of this limit in `limits`.
    pub fn value_in(self, limits: &ArchiveLimits) -> u64 {
        match self {
            Limit::ArchiveSize => limits.max_archive_size,
            Limit::Entries => limits.max_entries,
            Limit::TotalSize => limits.max_total_size,
            Limit::FileSize => limits.max_file_size,
            Limit::EntryRatio => limits.max_entry_ratio,
            Limit::TotalRatio => limits.max_total_ratio,
            Limit::PathLength => limits.max_path_len,
            Limit::PathDepth => limits.max_path_depth,
            Limit::ManifestSize => limits.max_manifest_size,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field_name())
    }
}

/// Whether `produced` bytes out of `compressed` bytes break a `max_ratio`:1 limit that applies
/// above `threshold` bytes. Saturating: a product too large for `u64` means "no limit reached".
pub(crate) fn ratio_exceeded(
    produced: u64,
    compressed: u64,
    max_ratio: u64,
    threshold: u64,
) -> bool {
    produced > threshold && produced > compressed.saturating_mul(max_ratio)
}

/// The ratio `produced`:`compressed`, rounded down, for messages (a zero-byte source counts as
/// one byte).
pub(crate) fn ratio_of(produced: u64, compressed: u64) -> u64 {
    produced.checked_div(compressed.max(1)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_rule() {
        // Below the threshold anything goes.
        assert!(!ratio_exceeded(1000, 1, 100, 1000));
        // Above it, produced must stay within compressed * ratio.
        assert!(!ratio_exceeded(100_000, 1000, 100, 1000));
        assert!(ratio_exceeded(100_001, 1000, 100, 1000));
        // No overflow.
        assert!(!ratio_exceeded(u64::MAX, u64::MAX, u64::MAX, 0));
    }

    #[test]
    fn limit_names_match_fields() {
        let limits = ArchiveLimits::default();
        assert_eq!(Limit::Entries.to_string(), "max_entries");
        assert_eq!(Limit::Entries.value_in(&limits), 10_000);
        assert_eq!(Limit::TotalRatio.value_in(&limits), 100);
    }
}
