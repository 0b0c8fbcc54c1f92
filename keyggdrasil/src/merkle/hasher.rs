//! Tree hashing: the leaf and node hash functions of RFC 6962, over a pluggable hash.

use super::Hash;

/// Domain-separation prefix of a leaf hash (RFC 6962 §2.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an inner node hash (RFC 6962 §2.1).
const NODE_PREFIX: u8 = 0x01;

/// The three hash functions that define a Merkle tree of the RFC 6962 shape.
///
/// An implementation must prefix leaves with `0x00` and inner nodes with `0x01` (so a leaf can never be
/// passed off as a node) and must be deterministic. Everything else in this module (layout, proofs,
/// verification) is independent of the hash chosen. The trait is object safe: `&dyn TreeHasher` works
/// wherever a hasher is taken.
pub trait TreeHasher {
    /// Hashes one log entry into a leaf hash: `H(0x00 ‖ entry)`.
    fn hash_leaf(&self, entry: &[u8]) -> Hash;

    /// Hashes two child hashes into their parent: `H(0x01 ‖ left ‖ right)`.
    fn hash_children(&self, left: &Hash, right: &Hash) -> Hash;

    /// The root of the tree with no leaves: `H("")`.
    fn empty_root(&self) -> Hash;
}

/// The production tree hash: BLAKE2b with a 32-byte output (RFC 7693), unkeyed, no salt or personal.
///
/// `leaf = BLAKE2b-256(0x00 ‖ entry)`, `node = BLAKE2b-256(0x01 ‖ left ‖ right)`, and the empty tree's
/// root is `BLAKE2b-256("")`. Note that BLAKE2b-256 is its own function (the output length is part of
/// the parameter block), not BLAKE2b-512 cut to 32 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Blake2b256;

impl Blake2b256 {
    fn state() -> blake2b_simd::State {
        blake2b_simd::Params::new().hash_length(32).to_state()
    }

    fn finish(state: &blake2b_simd::State) -> Hash {
        let mut out = [0u8; 32];
        // The state was made with hash_length(32), so this copies all 32 bytes; zip cannot panic.
        for (o, b) in out.iter_mut().zip(state.finalize().as_bytes()) {
            *o = *b;
        }
        out
    }
}

impl TreeHasher for Blake2b256 {
    fn hash_leaf(&self, entry: &[u8]) -> Hash {
        let mut state = Self::state();
        state.update(&[LEAF_PREFIX]);
        state.update(entry);
        Self::finish(&state)
    }

    fn hash_children(&self, left: &Hash, right: &Hash) -> Hash {
        let mut state = Self::state();
        state.update(&[NODE_PREFIX]);
        state.update(left);
        state.update(right);
        Self::finish(&state)
    }

    fn empty_root(&self) -> Hash {
        Self::finish(&Self::state())
    }
}

/// RFC 6962 with SHA-256 (leaf prefix `0x00`, node prefix `0x01`): **not our log's hash**. It is
/// here only so the generic tree, tile and witness code can be checked against other people's
/// SHA-256 data (transparency-dev, Tessera, Sigsum, torchwood vectors in `fixtures/`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sha256Interop;

impl TreeHasher for Sha256Interop {
    fn hash_leaf(&self, entry: &[u8]) -> Hash {
        use sha2::Digest;
        sha2::Sha256::new()
            .chain_update([LEAF_PREFIX])
            .chain_update(entry)
            .finalize()
            .into()
    }

    fn hash_children(&self, left: &Hash, right: &Hash) -> Hash {
        use sha2::Digest;
        sha2::Sha256::new()
            .chain_update([NODE_PREFIX])
            .chain_update(left)
            .chain_update(right)
            .finalize()
            .into()
    }

    fn empty_root(&self) -> Hash {
        use sha2::Digest;
        sha2::Sha256::new().finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    // Known answers from python3 hashlib.blake2b(..., digest_size=32); more in fixtures/merkle/.
    #[test]
    fn empty_root_is_blake2b256_of_nothing() {
        assert_eq!(
            hex(&Blake2b256.empty_root()),
            "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"
        );
    }

    #[test]
    fn leaf_of_empty_entry_is_blake2b256_of_zero_byte() {
        assert_eq!(
            hex(&Blake2b256.hash_leaf(b"")),
            "03170a2e7597b7b7e3d84c05391d139a62b157e78786d8c082f29dcf4c111314"
        );
    }

    #[test]
    fn leaf_and_node_are_domain_separated() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        let mut concat = Vec::new();
        concat.extend_from_slice(&a);
        concat.extend_from_slice(&b);
        assert_ne!(
            Blake2b256.hash_leaf(&concat),
            Blake2b256.hash_children(&a, &b)
        );
        assert_ne!(
            Blake2b256.hash_children(&a, &b),
            Blake2b256.hash_children(&b, &a)
        );
    }
}
