//! Delta updates: a patch from one release's archive (the *base*) to another's (the *target*),
//! and the limits a site applies to it before a single byte of it is trusted.
//!
//! The format is one zstd frame made "patch-from" style (docs/deltas.md says why zstd and not
//! bsdiff): the target archive compressed with the base archive as a raw-content reference
//! prefix, with long-distance matching and a window that covers base and target: the kind of
//! frame `zstd --patch-from=BASE TARGET` makes. `zstd -d --patch-from=BASE --long=27` rebuilds
//! the target from it, so an operator can check a patch with the zstd command line.
//!
//! A patch needs no trust. Whoever made it (the channel, a mirror, an attacker), the site
//! checks the rebuilt bytes with the one archive check ([`crate::archive_check`], through
//! [`crate::state::VerifiedRelease::check_archive`]): logged size, BLAKE2b-512 digest and the
//! Halite archive signature, exactly as a full download. This module only bounds what a
//! hostile patch can cost before that check:
//!
//! - [`max_patch_bytes`]: a patch over half the target archive is not read at all (a failed
//!   patch then costs at most 1.5 times a full download), and archives under
//!   [`MIN_TARGET_BYTES`] (64 KiB) get no patch;
//! - [`window_log`] / [`MAX_WINDOW_LOG`]: base plus target must fit one window of at most
//!   128 MiB, and the decoder refuses a frame that asks for more, so the decoder's memory is
//!   bounded by the log's sizes (the base, which the caller holds, plus at most one window);
//! - [`apply_patch`] writes at most the logged size plus one byte and refuses any other
//!   length, and refuses bytes after the one frame.
//!
//! What it does not do: read files or the network, decide which archive is the base, or check
//! the rebuilt archive (the caller runs the one archive check on the bytes written). The zstd
//! codec is the reference C library through the `zstd` crate's safe interface; this crate's
//! own code stays `#![forbid(unsafe_code)]`.

use std::io::{self, Read, Write};

use thiserror::Error;
use zstd::stream::raw::{DParameter, Decoder, InBuffer, Operation, OutBuffer};

/// The largest window a patch may use: 2^27 bytes (128 MiB), zstd's default decoder limit.
/// Base and target together must fit in it.
pub const MAX_WINDOW_LOG: u32 = 27;

/// The smallest window zstd allows (1 KiB).
const MIN_WINDOW_LOG: u32 = 10;

/// The zstd level patches are made with. Part of what makes patches small, not part of the
/// format: any level decodes the same way.
pub const LEVEL: i32 = 19;

/// Patch bytes read (and rebuilt bytes written) per step.
const CHUNK: usize = 64 * 1024;

/// The smallest target archive worth a patch: 64 KiB. Below it the bytes a patch saves are
/// fewer than the cost of one more request (and of a second one when the patch fails), so no
/// patch is made or asked for and the archive is downloaded as before.
pub const MIN_TARGET_BYTES: u64 = 64 * 1024;

/// The largest patch a site reads for a target archive of `target_size` bytes: half of it, or
/// 0 (no patch at all) below [`MIN_TARGET_BYTES`]. A larger patch is refused unread (the full
/// archive is downloaded instead), so a delta that fails costs at most one and a half full
/// downloads, and one that works saves at least half.
pub fn max_patch_bytes(target_size: u64) -> u64 {
    if target_size < MIN_TARGET_BYTES {
        0
    } else {
        target_size / 2
    }
}

/// The window (log2 bytes) a patch from a base of `base_size` bytes to a target of
/// `target_size` bytes needs: the smallest power of two that covers both, at least 1 KiB.
/// `None` when that is over [`MAX_WINDOW_LOG`]: no patch is made or used for such a pair.
pub fn window_log(base_size: u64, target_size: u64) -> Option<u32> {
    let total = base_size.checked_add(target_size)?;
    let log = match total {
        0..=1024 => MIN_WINDOW_LOG,
        n => 64 - (n - 1).leading_zeros(),
    };
    (log <= MAX_WINDOW_LOG).then_some(log)
}

/// The path of the patch from archive `base` to archive `target` in a channel's static copy
/// (`patch/<base hex>/<target hex>`, beside `archive/<hex>`); the API serves the same bytes at
/// `/v1/patches/<base hex>/<target hex>`.
pub fn static_path(base: &[u8; 64], target: &[u8; 64]) -> String {
    format!(
        "patch/{}/{}",
        crate::encoding::to_hex(base),
        crate::encoding::to_hex(target)
    )
}

/// Why a patch could not be made or applied. Every case means "download the full archive".
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DeltaError {
    /// Base and target together are over the largest window ([`MAX_WINDOW_LOG`]).
    #[error(
        "base ({base} bytes) and target ({target} bytes) do not fit the largest patch window of {} bytes",
        1u64 << MAX_WINDOW_LOG
    )]
    TooLargeForWindow {
        /// The base archive's size.
        base: u64,
        /// The target archive's size.
        target: u64,
    },
    /// The patch is not a zstd frame that decodes against this base (garbage, another base,
    /// a window over the limit, a damaged frame).
    #[error("the patch does not decode: {0}")]
    Decode(#[source] io::Error),
    /// The patch rebuilds more bytes than the logged size (cut at the size plus one).
    #[error("the patch rebuilds more than the logged {expected} bytes")]
    TooLong {
        /// The logged size of the target archive.
        expected: u64,
    },
    /// The patch ended before its frame did, or its frame rebuilt fewer bytes than logged.
    #[error("the patch rebuilds {got} bytes, the log says {expected}")]
    Short {
        /// Bytes rebuilt.
        got: u64,
        /// The logged size of the target archive.
        expected: u64,
    },
    /// Bytes follow the patch's one frame.
    #[error("bytes follow the patch's frame")]
    Trailing,
    /// Reading the patch or writing the rebuilt bytes failed (the caller's I/O).
    #[error("patch input or output failed")]
    Io(#[source] io::Error),
}

/// Makes the patch from `base` to `target` (in memory; the channel runs it off the request
/// path). Refuses pairs over the window limit. Does not decide whether the patch is worth
/// storing: compare its length with [`max_patch_bytes`].
pub fn make_patch(base: &[u8], target: &[u8]) -> Result<Vec<u8>, DeltaError> {
    make_patch_at(base, target, LEVEL)
}

/// [`make_patch`] at another zstd level (for benchmarks).
pub fn make_patch_at(base: &[u8], target: &[u8], level: i32) -> Result<Vec<u8>, DeltaError> {
    let (b, t) = (len_u64(base.len()), len_u64(target.len()));
    let log = window_log(b, t).ok_or(DeltaError::TooLargeForWindow { base: b, target: t })?;
    let mut enc = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), level, base)
        .map_err(DeltaError::Io)?;
    enc.window_log(log).map_err(DeltaError::Io)?;
    enc.long_distance_matching(true).map_err(DeltaError::Io)?;
    enc.include_checksum(true).map_err(DeltaError::Io)?;
    enc.include_contentsize(true).map_err(DeltaError::Io)?;
    enc.set_pledged_src_size(Some(t)).map_err(DeltaError::Io)?;
    enc.write_all(target).map_err(DeltaError::Io)?;
    enc.finish().map_err(DeltaError::Io)
}

/// Rebuilds the target archive from `base` and the patch read from `patch`, writing it to
/// `out`, and returns the number of bytes written, which is then exactly `target_size`.
///
/// Bounded by the log, whatever the patch says: at most `target_size + 1` bytes are written
/// (then [`DeltaError::TooLong`]), the decoder refuses a window over [`window_log`] of the two
/// sizes, and bytes after the one frame are refused. The caller bounds the patch's own length
/// ([`max_patch_bytes`]) when downloading it. Memory: the decoder's window (at most the
/// window of base plus target) and two 64 KiB buffers; `base` is the caller's.
///
/// What it does not do: say whether the bytes written are the release's. A patch that decodes
/// cleanly may still rebuild other bytes; the caller must run the one archive check on them
/// before using them, and discard them on any error here.
pub fn apply_patch(
    base: &[u8],
    mut patch: impl Read,
    mut out: impl Write,
    target_size: u64,
) -> Result<u64, DeltaError> {
    let b = len_u64(base.len());
    let log = window_log(b, target_size).ok_or(DeltaError::TooLargeForWindow {
        base: b,
        target: target_size,
    })?;
    let mut dec = Decoder::with_ref_prefix(base).map_err(DeltaError::Decode)?;
    dec.set_parameter(DParameter::WindowLogMax(log))
        .map_err(DeltaError::Decode)?;
    let mut input = vec![0u8; CHUNK];
    let mut output = vec![0u8; CHUNK];
    let mut written: u64 = 0;
    let mut done = false;
    loop {
        let n = read_some(&mut patch, &mut input)?;
        if n == 0 {
            break;
        }
        if done {
            return Err(DeltaError::Trailing);
        }
        let mut inb = InBuffer::around(&input[..n]);
        // Drain the decoder: it may hold output even when the input is consumed.
        loop {
            let mut outb = OutBuffer::around(&mut output[..]);
            let hint = dec.run(&mut inb, &mut outb).map_err(DeltaError::Decode)?;
            let produced = outb.pos();
            if produced > 0 {
                let room = target_size.saturating_add(1).saturating_sub(written);
                let take = usize::try_from(room).unwrap_or(usize::MAX).min(produced);
                out.write_all(&output[..take]).map_err(DeltaError::Io)?;
                written = written.saturating_add(len_u64(take));
                if written > target_size {
                    return Err(DeltaError::TooLong {
                        expected: target_size,
                    });
                }
            }
            if hint == 0 {
                // The frame is complete: anything after it is refused.
                done = true;
                if inb.pos() < n {
                    return Err(DeltaError::Trailing);
                }
                break;
            }
            if inb.pos() == n && produced < output.len() {
                break;
            }
        }
    }
    if !done || written != target_size {
        return Err(DeltaError::Short {
            got: written,
            expected: target_size,
        });
    }
    out.flush().map_err(DeltaError::Io)?;
    Ok(written)
}

/// Reads up to `buf.len()` bytes, retrying on interruption; 0 at the end.
fn read_some(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, DeltaError> {
    loop {
        match r.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DeltaError::Io(e)),
        }
    }
}

fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Some bytes that compress, with a seed so two calls differ.
    fn text(seed: u8, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut x = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            out.extend_from_slice(format!("line {} of {seed}\n", x % 1000).as_bytes());
        }
        out.truncate(len);
        out
    }

    fn pair() -> (Vec<u8>, Vec<u8>) {
        let base = text(1, 300_000);
        let mut target = base.clone();
        target[150_000..150_100].copy_from_slice(&text(2, 100));
        target.extend_from_slice(b"one more line\n");
        (base, target)
    }

    fn apply(base: &[u8], patch: &[u8], size: u64) -> Result<Vec<u8>, DeltaError> {
        let mut out = Vec::new();
        apply_patch(base, patch, &mut out, size).map(|n| {
            assert_eq!(n, len_u64(out.len()));
            out
        })
    }

    #[test]
    fn patch_rebuilds_the_target_and_is_small() {
        let (base, target) = pair();
        let patch = make_patch(&base, &target).unwrap();
        assert!(patch.len() < 2_000, "patch of {} bytes", patch.len());
        assert!(len_u64(patch.len()) <= max_patch_bytes(len_u64(target.len())));
        assert!(len_u64(target.len()) >= MIN_TARGET_BYTES);
        assert_eq!(apply(&base, &patch, len_u64(target.len())).unwrap(), target);
    }

    #[test]
    fn a_longer_output_is_cut_at_size_plus_one_and_refused() {
        let (base, target) = pair();
        let patch = make_patch(&base, &target).unwrap();
        let logged = len_u64(target.len()) - 10;
        let mut out = Vec::new();
        let err = apply_patch(&base, &patch[..], &mut out, logged).unwrap_err();
        assert!(matches!(err, DeltaError::TooLong { expected } if expected == logged));
        assert_eq!(
            len_u64(out.len()),
            logged + 1,
            "cut at the logged size plus one"
        );
    }

    #[test]
    fn a_shorter_output_is_refused() {
        let (base, target) = pair();
        let patch = make_patch(&base, &target).unwrap();
        let err = apply(&base, &patch, len_u64(target.len()) + 1).unwrap_err();
        assert!(matches!(err, DeltaError::Short { .. }), "{err}");
    }

    #[test]
    fn a_truncated_patch_is_refused() {
        let (base, target) = pair();
        let patch = make_patch(&base, &target).unwrap();
        let err = apply(&base, &patch[..patch.len() - 3], len_u64(target.len())).unwrap_err();
        assert!(
            matches!(err, DeltaError::Short { .. } | DeltaError::Decode(_)),
            "{err}"
        );
    }

    #[test]
    fn bytes_after_the_frame_are_refused() {
        let (base, target) = pair();
        let mut patch = make_patch(&base, &target).unwrap();
        patch.extend_from_slice(&make_patch(&base, &target).unwrap());
        let err = apply(&base, &patch, len_u64(target.len())).unwrap_err();
        assert!(matches!(err, DeltaError::Trailing), "{err}");
    }

    #[test]
    fn garbage_is_refused() {
        let (base, target) = pair();
        let err = apply(&base, &[0x55; 4000], len_u64(target.len())).unwrap_err();
        assert!(matches!(err, DeltaError::Decode(_)), "{err}");
        let err = apply(&base, &[], len_u64(target.len())).unwrap_err();
        assert!(matches!(err, DeltaError::Short { got: 0, .. }), "{err}");
    }

    #[test]
    fn a_patch_for_another_base_does_not_rebuild_the_target() {
        let (base, target) = pair();
        let other = text(9, base.len());
        let patch = make_patch(&other, &target).unwrap();
        // The frame checksum (or the content) gives it away; either way not the target.
        match apply(&base, &patch, len_u64(target.len())) {
            Ok(out) => assert_ne!(out, target),
            Err(e) => assert!(matches!(e, DeltaError::Decode(_)), "{e}"),
        }
    }

    #[test]
    fn a_window_over_the_limit_is_refused() {
        // A patch made for a large pair asks for a window that a small pair's decoder refuses.
        let base = text(3, 4 << 20);
        let target = text(4, 8 << 20);
        let patch = make_patch(&base, &target).unwrap();
        let small = window_log(1000, 1000).unwrap();
        assert!(small < window_log(len_u64(base.len()), len_u64(target.len())).unwrap());
        let err = apply(&base[..1000], &patch, 1000).unwrap_err();
        assert!(matches!(err, DeltaError::Decode(_)), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        /// Whatever bytes a patch is changed into, applying it never panics, never writes more
        /// than the logged size plus one byte, and succeeds only with exactly the logged size.
        #[test]
        fn a_mutated_patch_is_bounded(
            flips in proptest::collection::vec((0usize..4096, 1u8..=255), 1..8),
            cut in 0usize..4096,
            logged in 0u64..400_000,
        ) {
            let (base, target) = pair();
            let mut patch = make_patch(&base, &target).unwrap();
            for (at, x) in flips {
                let i = at % patch.len();
                patch[i] ^= x;
            }
            patch.truncate(patch.len().saturating_sub(cut % 64));
            let mut out = Vec::new();
            let result = apply_patch(&base, &patch[..], &mut out, logged);
            proptest::prop_assert!(len_u64(out.len()) <= logged + 1);
            if let Ok(n) = result {
                proptest::prop_assert_eq!(n, logged);
                proptest::prop_assert_eq!(len_u64(out.len()), logged);
            }
        }
    }

    #[test]
    fn limits() {
        assert_eq!(max_patch_bytes(0), 0);
        assert_eq!(max_patch_bytes(MIN_TARGET_BYTES - 1), 0);
        assert_eq!(max_patch_bytes(MIN_TARGET_BYTES), MIN_TARGET_BYTES / 2);
        assert_eq!(max_patch_bytes(100_001), 50_000);
        assert_eq!(window_log(0, 0), Some(10));
        assert_eq!(window_log(1024, 0), Some(10));
        assert_eq!(window_log(1024, 1), Some(11));
        assert_eq!(window_log(1 << 26, 1 << 26), Some(27));
        assert_eq!(window_log(1 << 26, (1 << 26) + 1), None);
        assert_eq!(window_log(u64::MAX, 1), None);
        assert!(matches!(
            make_patch(&[], &[]).map(|p| apply(&[], &p, 0)),
            Ok(Ok(ref v)) if v.is_empty()
        ));
    }
}
