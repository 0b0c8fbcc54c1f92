//! A verified view of a channel's log: its size and root, extended only by checked statements.
//!
//! Four parties hold a log they have verified and must decide whether the channel's next
//! statement extends it: a site (its accepted log), a notary (its observed log), barge (the log
//! it replays to a checkpoint) and the channel itself (its stored tree against its head). They
//! all ask this type, which answers in one way: the leaf hashes of the new entries, pushed onto
//! the compact range of the log already verified, must give the signed root at the signed size.
//!
//! [`LogView`] keeps O(log n) hashes (a [`CompactRange`]), so loading it costs O(log n) reads from
//! a stored tree and extending it costs O(new entries). A failed extension changes nothing.
//!
//! What it does not do: verify signatures (an update must already be a
//! [`VerifiedUpdate`](crate::wire::VerifiedUpdate), a checkpoint a
//! [`VerifiedCheckpoint`](crate::wire::VerifiedCheckpoint)), apply the key rules
//! ([`crate::state`]), store anything, or keep fork evidence ([`crate::evidence`]).

use thiserror::Error;

use crate::merkle::{Blake2b256, CompactRange, Hash, HashStore, MerkleError, TreeHasher};
use crate::wire::{VerifiedCheckpoint, VerifiedUpdate};

/// Why a statement does not extend the verified log.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LogError {
    /// The statement starts elsewhere than at the end of the verified log.
    #[error("the statement starts at size {since}, but the verified log has {size} entries")]
    NotAtEnd {
        /// The verified log's size.
        size: u64,
        /// Where the statement starts.
        since: u64,
    },
    /// The statement is about another size than the log reached.
    #[error("the statement is about size {signed}, but the verified log has {size} entries")]
    SizeMismatch {
        /// The verified log's size.
        size: u64,
        /// The signed size.
        signed: u64,
    },
    /// The entries hash to another root than the one signed: history was rewritten, entries
    /// were altered, or the channel shows another log.
    #[error(
        "the channel signed root {} for size {size}, but the verified log plus its entries gives {}",
        crate::encoding::to_hex(signed),
        crate::encoding::to_hex(computed)
    )]
    RootMismatch {
        /// The size.
        size: u64,
        /// The signed root.
        signed: Hash,
        /// The root computed over the verified log and the new entries.
        computed: Hash,
    },
    /// The tree cannot grow (more than [`crate::merkle::MAX_TREE_SIZE`] leaves) or a stored
    /// tree could not be read.
    #[error(transparent)]
    Merkle(#[from] MerkleError),
}

/// The size and root of a verified log (BLAKE2b-256, RFC 6962 shape), extendable by statements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogView {
    range: CompactRange,
}

impl LogView {
    /// The empty log.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The view of the first `size` leaves of a stored tree (O(log n) reads). The caller vouches
    /// that the store holds its own verified log.
    pub fn from_store<S: HashStore + ?Sized>(size: u64, store: &S) -> Result<Self, MerkleError> {
        Ok(Self {
            range: CompactRange::from_store(size, store)?,
        })
    }

    /// A view from a size, the subtree hashes [`Self::subtrees`] gave, and the root they must
    /// fold to: for a caller that keeps its verified view in a file (`barge monitor`). The root
    /// check catches a damaged file; it is no check against the channel.
    pub fn from_subtrees(size: u64, subtrees: Vec<Hash>, root: &Hash) -> Result<Self, LogError> {
        let view = Self {
            range: CompactRange::from_subtrees(size, subtrees)?,
        };
        view.check_root(size, root)?;
        Ok(view)
    }

    /// The subtree hashes of the compact range (`popcount(size)` of them), for
    /// [`Self::from_subtrees`].
    pub fn subtrees(&self) -> &[Hash] {
        self.range.subtrees()
    }

    /// The number of entries.
    pub fn size(&self) -> u64 {
        self.range.size()
    }

    /// The root at [`Self::size`].
    pub fn root(&self) -> Hash {
        self.range.root(&Blake2b256)
    }

    /// The root the log would have after `entries` (exact bytes), without changing the view:
    /// what a site compares with its peers when it considers only a prefix of what the channel
    /// offered.
    pub fn root_with<'a>(
        &self,
        entries: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Hash, MerkleError> {
        let mut range = self.range.clone();
        for e in entries {
            range.push_entry(&Blake2b256, e)?;
        }
        Ok(range.root(&Blake2b256))
    }

    /// The root after appending leaves already hashed ([`LogView::leaf_hash`]), without changing
    /// the view: for a notary that keeps leaf hashes, not entries.
    pub fn root_with_leaf_hashes(&self, leaves: &[Hash]) -> Result<Hash, MerkleError> {
        let mut range = self.range.clone();
        for leaf in leaves {
            range.push(&Blake2b256, *leaf)?;
        }
        Ok(range.root(&Blake2b256))
    }

    /// The roots after each prefix of `entries`: element `i` is the root at size
    /// `self.size() + i + 1`. O(log n) per entry, for a site that drops the newest entries one by
    /// one until its peers confirm a root.
    pub fn prefix_roots<'a>(
        &self,
        entries: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Vec<Hash>, MerkleError> {
        let mut range = self.range.clone();
        let mut roots = Vec::new();
        for e in entries {
            range.push_entry(&Blake2b256, e)?;
            roots.push(range.root(&Blake2b256));
        }
        Ok(roots)
    }

    /// Extends the view by a verified update answer: it must start at [`Self::size`], and the
    /// verified log plus its entries must hash to its signed root. On any failure the view is
    /// unchanged.
    pub fn extend(&mut self, update: &VerifiedUpdate) -> Result<(), LogError> {
        if update.since() != self.size() {
            return Err(LogError::NotAtEnd {
                size: self.size(),
                since: update.since(),
            });
        }
        self.extend_to(
            update.entries().iter().map(|e| e.as_bytes()),
            update.size(),
            &update.root().0,
        )
    }

    /// Extends the view by raw entry bytes (for example a page of the entries endpoint) without
    /// a statement; check the result with [`Self::check_checkpoint`] before trusting it.
    pub fn push_entries<'a>(
        &mut self,
        entries: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), MerkleError> {
        for e in entries {
            self.range.push_entry(&Blake2b256, e)?;
        }
        Ok(())
    }

    /// Extends the view by leaf hashes already computed with [`LogView::leaf_hash`] (for a
    /// caller that needs the hashes too); check the result against a signed root before
    /// trusting it.
    pub fn push_leaf_hashes(&mut self, leaves: &[Hash]) -> Result<(), MerkleError> {
        for leaf in leaves {
            self.range.push(&Blake2b256, *leaf)?;
        }
        Ok(())
    }

    /// Checks that a verified checkpoint is a statement about exactly this log: same size, same
    /// root.
    pub fn check_checkpoint(&self, checkpoint: &VerifiedCheckpoint) -> Result<(), LogError> {
        self.check_root(checkpoint.size(), &checkpoint.root().0)
    }

    /// Checks that `root` is this log's root at `size`, which must be this log's size.
    pub fn check_root(&self, size: u64, root: &Hash) -> Result<(), LogError> {
        if size != self.size() {
            return Err(LogError::SizeMismatch {
                size: self.size(),
                signed: size,
            });
        }
        let computed = self.root();
        if &computed != root {
            return Err(LogError::RootMismatch {
                size,
                signed: *root,
                computed,
            });
        }
        Ok(())
    }

    fn extend_to<'a>(
        &mut self,
        entries: impl IntoIterator<Item = &'a [u8]>,
        size: u64,
        root: &Hash,
    ) -> Result<(), LogError> {
        let mut next = self.clone();
        next.push_entries(entries)?;
        next.check_root(size, root)?;
        *self = next;
        Ok(())
    }

    /// The leaf hash of an entry, as the log hashes it.
    pub fn leaf_hash(entry: &[u8]) -> Hash {
        Blake2b256.hash_leaf(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;
    use crate::limits::Limits;
    use crate::names::ChannelName;
    use crate::protocol::Context;
    use crate::wire::{
        Checkpoint, Nonce, Signed, TreeHash, UpdatePayload, UpdateRequest, verify_checkpoint,
        verify_update,
    };

    fn entry(n: u8) -> String {
        // Real entries, so verify_update's strict parser accepts them.
        use crate::entry::{Entry, EntryBody, Event};
        let kp = KeyPair::from_seed(&[n; 32]).unwrap();
        let e = Entry::sign(
            EntryBody::new(
                crate::names::SupplierName::parse("acme").unwrap(),
                kp.public(),
                Event::MasterKey {
                    public_key: kp.public(),
                    derivation: None,
                },
            ),
            &kp,
        )
        .unwrap();
        String::from_utf8(e.as_bytes().to_vec()).unwrap()
    }

    fn root_of(entries: &[String]) -> Hash {
        let mut v = LogView::empty();
        v.push_entries(entries.iter().map(|e| e.as_bytes()))
            .unwrap();
        v.root()
    }

    fn update(kp: &KeyPair, since: u64, new: &[String], root: Hash) -> (VerifiedUpdate, u64) {
        let nonce = Nonce::generate();
        let size = since + new.len() as u64;
        let signed = Signed::sign(
            kp,
            Context::ChannelUpdate,
            &UpdatePayload {
                v: 1,
                origin: ChannelName::parse("c").unwrap(),
                nonce,
                time: 100,
                since,
                size,
                root: TreeHash(root),
                tree_size: size,
                entries: new.to_vec(),
            },
        );
        let req = UpdateRequest { since, nonce };
        let u = verify_update(
            &signed,
            &kp.public(),
            &ChannelName::parse("c").unwrap(),
            &req,
            100,
            &Limits::default(),
        )
        .unwrap();
        (u, size)
    }

    #[test]
    fn honest_updates_extend_and_lies_change_nothing() {
        let kp = KeyPair::generate();
        let log: Vec<String> = (1..=5).map(entry).collect();
        let mut view = LogView::empty();
        let (u, _) = update(&kp, 0, &log[..3], root_of(&log[..3]));
        view.extend(&u).unwrap();
        assert_eq!((view.size(), view.root()), (3, root_of(&log[..3])));
        assert_eq!(
            view.root_with(log[3..].iter().map(|e| e.as_bytes()))
                .unwrap(),
            root_of(&log)
        );
        let leaves: Vec<Hash> = log[3..]
            .iter()
            .map(|e| LogView::leaf_hash(e.as_bytes()))
            .collect();
        assert_eq!(view.root_with_leaf_hashes(&leaves).unwrap(), root_of(&log));
        assert_eq!(
            view.prefix_roots(log[3..].iter().map(|e| e.as_bytes()))
                .unwrap(),
            vec![root_of(&log[..4]), root_of(&log)]
        );

        // Altered history: the right new entries under a root over other old ones.
        let mut other = log.clone();
        other[0] = entry(9);
        let before = view.clone();
        let (lie, _) = update(&kp, 3, &log[3..], root_of(&other));
        assert!(matches!(
            view.extend(&lie),
            Err(LogError::RootMismatch { size: 5, .. })
        ));
        assert_eq!(view, before);
        // An update that does not start at the end.
        let (gap, _) = update(&kp, 4, &log[4..], root_of(&log));
        assert!(matches!(
            view.extend(&gap),
            Err(LogError::NotAtEnd { size: 3, since: 4 })
        ));
        let (ok, _) = update(&kp, 3, &log[3..], root_of(&log));
        view.extend(&ok).unwrap();
        assert_eq!(view.size(), 5);
    }

    #[test]
    fn checkpoints_must_name_this_log() {
        let kp = KeyPair::generate();
        let log: Vec<String> = (1..=3).map(entry).collect();
        let mut view = LogView::empty();
        view.push_entries(log.iter().map(|e| e.as_bytes())).unwrap();
        let cp = |size: u64, root: Hash| {
            let signed = Signed::sign(
                &kp,
                Context::Checkpoint,
                &Checkpoint {
                    v: 1,
                    origin: ChannelName::parse("c").unwrap(),
                    size,
                    root: TreeHash(root),
                    time: 1,
                },
            );
            verify_checkpoint(&signed, &kp.public(), None, &Limits::default()).unwrap()
        };
        view.check_checkpoint(&cp(3, root_of(&log))).unwrap();
        assert!(matches!(
            view.check_checkpoint(&cp(3, root_of(&log[..2]))),
            Err(LogError::RootMismatch { .. })
        ));
        assert!(matches!(
            view.check_checkpoint(&cp(2, root_of(&log[..2]))),
            Err(LogError::SizeMismatch { size: 3, signed: 2 })
        ));
    }
}
