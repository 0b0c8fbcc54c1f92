//! The one place randomness comes from: the operating system's CSPRNG.
//!
//! Salts, seeds, site secrets and challenge nonces all come from here, so a review of where
//! randomness enters the system is a review of this file. Not for simulation or tests that want
//! reproducible values.

use rand::TryRng;
use zeroize::Zeroizing;

/// `N` random bytes from the OS CSPRNG, for public values (salts, nonces).
///
/// Panics only if the operating system cannot provide randomness at all, in which case no
/// security tool can safely continue.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}

/// `N` random bytes from the OS CSPRNG in a zeroizing buffer, for secrets.
pub fn secret_bytes<const N: usize>() -> Zeroizing<[u8; N]> {
    let mut out = Zeroizing::new([0u8; N]);
    fill(&mut *out);
    out
}

/// Fills `buf` from the OS CSPRNG.
pub fn fill(buf: &mut [u8]) {
    #[allow(clippy::expect_used)]
    rand::rngs::SysRng
        .try_fill_bytes(buf)
        .expect("the operating system's random number generator failed"); // ok: no safe fallback
}

/// A uniformly random index below `n` (n > 0), without modulo bias, from the OS CSPRNG.
pub fn index_below(n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let n = n as u64;
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let v = u64::from_le_bytes(bytes::<8>());
        if v < zone {
            return (v % n) as usize;
        }
    }
}

/// Shuffles a slice in place with Fisher–Yates driven by the OS CSPRNG (used for peer order).
pub fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = index_below(i + 1);
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_constant() {
        assert_ne!(bytes::<32>(), bytes::<32>());
    }

    #[test]
    fn index_in_range_and_shuffle_is_permutation() {
        for n in 1..50 {
            assert!(index_below(n) < n);
        }
        let mut v: Vec<u32> = (0..100).collect();
        shuffle(&mut v);
        let mut s = v.clone();
        s.sort();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
    }
}
