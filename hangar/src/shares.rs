//! The printable form of one backup share: 32 words from the BIP-39 English list.
//!
//! A share is 43 bytes, written as 11-bit word indexes (344 bits in 32 words; the 8 spare bits
//! must be zero):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format version, 1 |
//! | 4 | split id: random, the same for all shares of one split |
//! | 1 | threshold K |
//! | 1 | share id (the Shamir x coordinate, 1..=255) |
//! | 32 | share value (Shamir y, one byte per seed byte) |
//! | 4 | checksum: first 4 bytes of BLAKE2b-256 (personal `kg-backup-share`) of the 39 bytes above |
//!
//! The checksum catches a mistyped or misread word; it is not a secret and proves nothing about
//! who made the share. The expected public key, checked by `backup combine`, is what proves the
//! recovered seed right.

use zeroize::Zeroizing;

/// Current share format version.
pub const SHARE_VERSION: u8 = 1;
/// Length of the encoded share in bytes.
pub const SHARE_BYTES: usize = 43;
/// Words per share.
pub const SHARE_WORDS: usize = 32;

/// One decoded backup share. Its value is secret: no `Debug`, zeroized on drop.
pub struct Share {
    /// Random id common to all shares of one split.
    pub split_id: [u8; 4],
    /// How many shares recover the seed.
    pub threshold: u8,
    /// The Shamir x coordinate.
    pub id: u8,
    /// The Shamir y values.
    pub value: Zeroizing<[u8; 32]>,
}

fn checksum(bytes: &[u8]) -> [u8; 4] {
    let h = blake2b_simd::Params::new()
        .hash_length(32)
        .personal(b"kg-backup-share")
        .hash(bytes);
    let mut out = [0u8; 4];
    out.copy_from_slice(&h.as_bytes()[..4]);
    out
}

impl Share {
    /// The share as 32 space-separated words.
    pub fn to_words(&self) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new([0u8; SHARE_BYTES]);
        bytes[0] = SHARE_VERSION;
        bytes[1..5].copy_from_slice(&self.split_id);
        bytes[5] = self.threshold;
        bytes[6] = self.id;
        bytes[7..39].copy_from_slice(&self.value[..]);
        let sum = checksum(&bytes[..39]);
        bytes[39..43].copy_from_slice(&sum);
        let list = bip39::Language::English.word_list();
        let mut out = Zeroizing::new(String::with_capacity(SHARE_WORDS * 9));
        for w in 0..SHARE_WORDS {
            let mut idx = 0usize;
            for b in 0..11 {
                let bit = w * 11 + b;
                let v = if bit < SHARE_BYTES * 8 {
                    (bytes[bit / 8] >> (7 - bit % 8)) & 1
                } else {
                    0
                };
                idx = (idx << 1) | usize::from(v);
            }
            if w > 0 {
                out.push(' ');
            }
            // idx < 2048 because it has 11 bits.
            out.push_str(list[idx]);
        }
        out
    }

    /// Parses 32 words back into a share, checking the word list, the padding, the version and
    /// the checksum. Errors never contain the words.
    pub fn from_words(text: &str) -> Result<Self, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.len() != SHARE_WORDS {
            return Err(format!(
                "a share has {SHARE_WORDS} words, this one has {}",
                words.len()
            ));
        }
        let mut bytes = Zeroizing::new([0u8; SHARE_BYTES + 1]);
        for (w, word) in words.iter().enumerate() {
            let lower = word.to_ascii_lowercase();
            let idx = bip39::Language::English
                .find_word(&lower)
                .ok_or_else(|| format!("word {} is not in the BIP-39 English list", w + 1))?;
            for b in 0..11 {
                let bit = w * 11 + b;
                if (idx >> (10 - b)) & 1 == 1 {
                    bytes[bit / 8] |= 1 << (7 - bit % 8);
                }
            }
        }
        if bytes[SHARE_BYTES] != 0 {
            return Err("the last word's spare bits are not zero (mistyped word?)".into());
        }
        if checksum(&bytes[..39]) != bytes[39..43] {
            return Err("checksum mismatch (a word is mistyped or missing)".into());
        }
        if bytes[0] != SHARE_VERSION {
            return Err(format!(
                "share format version {} is not supported",
                bytes[0]
            ));
        }
        let mut split_id = [0u8; 4];
        split_id.copy_from_slice(&bytes[1..5]);
        let mut value = Zeroizing::new([0u8; 32]);
        value.copy_from_slice(&bytes[7..39]);
        Ok(Share {
            split_id,
            threshold: bytes[5],
            id: bytes[6],
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_detect_a_changed_word() {
        let s = Share {
            split_id: [1, 2, 3, 4],
            threshold: 3,
            id: 7,
            value: Zeroizing::new([0xa5; 32]),
        };
        let w = s.to_words();
        assert_eq!(w.split(' ').count(), SHARE_WORDS);
        let back = Share::from_words(&w).unwrap();
        assert_eq!(
            (back.split_id, back.threshold, back.id),
            ([1, 2, 3, 4], 3, 7)
        );
        assert_eq!(*back.value, [0xa5; 32]);
        let mut words: Vec<&str> = w.split(' ').collect();
        words[5] = if words[5] == "abandon" {
            "ability"
        } else {
            "abandon"
        };
        assert!(Share::from_words(&words.join(" ")).is_err());
        assert!(Share::from_words(&words[..31].join(" ")).is_err());
        assert!(Share::from_words("").is_err());
    }
}
