//! The one canonical text encoding for binary values: lowercase hexadecimal.
//!
//! Airship mixed hex and base64url for the same values and broke interoperability; here every key,
//! signature, digest and nonce is lowercase hex of a fixed length, and anything else is refused with
//! an error that names the form that was expected. This module does not accept uppercase hex,
//! whitespace, `0x` prefixes or base64, on purpose.

use thiserror::Error;

/// Why a text value could not be decoded as canonical lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HexError {
    /// The text has the wrong length for the value it should encode.
    #[error(
        "expected {expected} lowercase hex characters ({bytes} bytes) for {what}, got {got} characters"
    )]
    Length {
        /// What was being decoded, e.g. "an Ed25519 public key".
        what: &'static str,
        /// Number of hex characters expected.
        expected: usize,
        /// Number of bytes those characters encode.
        bytes: usize,
        /// Number of characters received.
        got: usize,
    },
    /// The text contains a character that is not `0-9a-f`.
    #[error(
        "expected lowercase hex (0-9, a-f) for {what}; found {found:?} at position {position} (uppercase hex, base64 and prefixes are not accepted)"
    )]
    Character {
        /// What was being decoded.
        what: &'static str,
        /// The offending character.
        found: char,
        /// Its character position.
        position: usize,
    },
}

/// Encodes bytes as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Decodes exactly `N` bytes from canonical lowercase hex.
///
/// `what` names the value in the error message ("an Ed25519 signature").
pub fn from_hex_array<const N: usize>(text: &str, what: &'static str) -> Result<[u8; N], HexError> {
    // One pass for the common, valid case (entries carry several of these); anything else
    // takes the checks below, which say what is wrong.
    if text.len() == 2 * N {
        let mut out = [0u8; N];
        let ok = text
            .as_bytes()
            .chunks_exact(2)
            .zip(out.iter_mut())
            .all(
                |(pair, o)| match (lower_nibble(pair[0]), lower_nibble(pair[1])) {
                    (Some(h), Some(l)) => {
                        *o = h << 4 | l;
                        true
                    }
                    _ => false,
                },
            );
        if ok {
            return Ok(out);
        }
    }
    check_lower_hex(text, what)?;
    if text.len() != 2 * N {
        return Err(HexError::Length {
            what,
            expected: 2 * N,
            bytes: N,
            got: text.chars().count(),
        });
    }
    let mut out = [0u8; N];
    // Cannot fail: length and alphabet were checked above; map the error anyway instead of panicking.
    hex::decode_to_slice(text, &mut out).map_err(|_| HexError::Length {
        what,
        expected: 2 * N,
        bytes: N,
        got: text.len(),
    })?;
    Ok(out)
}

/// Decodes a variable-length canonical lowercase hex string (even length), at most `max_bytes`.
pub fn from_hex_vec(text: &str, what: &'static str, max_bytes: usize) -> Result<Vec<u8>, HexError> {
    check_lower_hex(text, what)?;
    if !text.len().is_multiple_of(2) || text.len() > 2 * max_bytes {
        return Err(HexError::Length {
            what,
            expected: (text.len().min(2 * max_bytes)) & !1,
            bytes: max_bytes,
            got: text.len(),
        });
    }
    hex::decode(text).map_err(|_| HexError::Length {
        what,
        expected: text.len() & !1,
        bytes: max_bytes,
        got: text.len(),
    })
}

/// The value of one canonical lowercase hex digit.
fn lower_nibble(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn check_lower_hex(text: &str, what: &'static str) -> Result<(), HexError> {
    match text
        .chars()
        .enumerate()
        .find(|(_, c)| !matches!(c, '0'..='9' | 'a'..='f'))
    {
        Some((position, found)) => Err(HexError::Character {
            what,
            found,
            position,
        }),
        None => Ok(()),
    }
}

/// Serde helpers that read and write fixed-size byte arrays as canonical lowercase hex.
pub(crate) mod serde_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_hex(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::from_hex_array::<N>(&text, "a hex value").map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v: [u8; 4] = [0, 1, 0xab, 0xff];
        assert_eq!(to_hex(&v), "0001abff");
        assert_eq!(from_hex_array::<4>("0001abff", "x").unwrap(), v);
    }

    #[test]
    fn rejects_uppercase_base64_prefix_and_wrong_length() {
        assert!(matches!(
            from_hex_array::<4>("0001ABFF", "x"),
            Err(HexError::Character { found: 'A', .. })
        ));
        assert!(matches!(
            from_hex_array::<3>("AAGr_w", "x"),
            Err(HexError::Character { .. })
        ));
        assert!(matches!(
            from_hex_array::<4>("0x0001ab", "x"),
            Err(HexError::Character { found: 'x', .. })
        ));
        assert!(matches!(
            from_hex_array::<4>("0001ab", "x"),
            Err(HexError::Length { expected: 8, .. })
        ));
        assert!(from_hex_vec("abc", "x", 10).is_err());
        assert!(from_hex_vec("abcd", "x", 1).is_err());
        assert_eq!(from_hex_vec("abcd", "x", 2).unwrap(), vec![0xab, 0xcd]);
    }

    #[test]
    fn error_names_expected_form() {
        let e = from_hex_array::<32>("zz", "an Ed25519 public key").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("lowercase hex"), "{msg}");
        assert!(msg.contains("an Ed25519 public key"), "{msg}");
    }
}
