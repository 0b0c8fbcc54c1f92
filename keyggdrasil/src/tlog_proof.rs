//! Offline proofs that a release is in the channel's log: the C2SP `tlog-proof@v1` text
//! format (`c2sp.org/tlog-proof`), checked with no network at all.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of the release entry's bytes>
//! index <the entry's index>
//! <base64 inclusion-proof hash>          (zero or more, leaf's sibling first)
//!
//! <the channel's checkpoint note, verbatim>
//! ```
//!
//! Our `extra` line carries the logged entry itself, so the file alone says what was logged;
//! the verifier hashes it (our leaf hash, BLAKE2b-256 of `0x00 ‖ entry`), checks the inclusion
//! proof up to the checkpoint's root, and the checkpoint's note signature with the pinned
//! channel key. Cosignature lines in the checkpoint are kept (a witness policy can check them).
//!
//! What a verified proof says: this exact release entry (supplier, package, version, digest,
//! size, archive signature) is at this index of the channel's log at the checkpoint's size.
//! What it does not say: that the signing key was valid then, or that no later entry revoked
//! the release (both need the log itself), nor is it fresh.

use base64ct::{Base64, Encoding};
use thiserror::Error;

use crate::entry::{Entry, Event};
use crate::keys::PublicKey;
use crate::log::LogView;
use crate::merkle::{self, Blake2b256, Hash, InclusionProof};
use crate::names::ChannelName;
use crate::tlog_checkpoint::{self, CheckpointError, NoteCheckpoint};

/// The first line.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";
/// Most bytes of a proof file we read.
pub const MAX_PROOF_BYTES: usize = 128 * 1024;

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProofError {
    /// Not a `tlog-proof@v1` text.
    #[error("not a c2sp.org/tlog-proof@v1 file: {0}")]
    Malformed(String),
    /// The checkpoint is not the channel's.
    #[error("the proof's checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The inclusion proof does not lead from the entry to the checkpoint's root.
    #[error("the inclusion proof of entry {index} does not match the checkpoint of size {size}")]
    Inclusion {
        /// The entry's index.
        index: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The entry is not a release (or not the one asked for).
    #[error("{0}")]
    NotTheRelease(String),
}

/// A parsed proof; nothing verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// The `extra` data (our release entry's bytes), if any.
    pub extra: Option<Vec<u8>>,
    /// The entry's index.
    pub index: u64,
    /// The inclusion proof hashes.
    pub proof: Vec<Hash>,
    /// The checkpoint note.
    pub checkpoint: String,
}

/// Writes a proof file.
pub fn format(extra: Option<&[u8]>, index: u64, proof: &[Hash], checkpoint_note: &str) -> String {
    let mut out = format!("{HEADER}\n");
    if let Some(e) = extra {
        out.push_str(&format!("extra {}\n", Base64::encode_string(e)));
    }
    out.push_str(&format!("index {index}\n"));
    for h in proof {
        out.push_str(&Base64::encode_string(h));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(checkpoint_note);
    out
}

/// Parses a proof file.
pub fn parse(text: &str) -> Result<TlogProof, ProofError> {
    let bad = |m: &str| ProofError::Malformed(m.to_owned());
    if text.len() > MAX_PROOF_BYTES {
        return Err(bad("larger than 128 KiB"));
    }
    let (head, checkpoint) = text
        .split_once("\n\n")
        .ok_or_else(|| bad("no blank line"))?;
    let mut lines = head.split('\n');
    if lines.next() != Some(HEADER) {
        return Err(bad("the first line is not c2sp.org/tlog-proof@v1"));
    }
    let mut line = lines.next().ok_or_else(|| bad("no index line"))?;
    let extra = match line.strip_prefix("extra ") {
        Some(b64) => {
            let e = Base64::decode_vec(b64).map_err(|_| bad("the extra line is not base64"))?;
            line = lines.next().ok_or_else(|| bad("no index line"))?;
            Some(e)
        }
        None => None,
    };
    let index = line
        .strip_prefix("index ")
        .and_then(tlog_checkpoint::decimal)
        .ok_or_else(|| bad("no `index <decimal>` line"))?;
    let mut proof = Vec::new();
    for l in lines {
        if proof.len() == merkle::MAX_PROOF_HASHES {
            return Err(bad("too many proof lines"));
        }
        let h: Hash = Base64::decode_vec(l)
            .ok()
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| bad("a proof line is not 32 bytes of base64"))?;
        proof.push(h);
    }
    Ok(TlogProof {
        extra,
        index,
        proof,
        checkpoint: checkpoint.to_owned(),
    })
}

/// A release proof that [`verify_release`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRelease {
    /// The logged release entry.
    pub entry: Entry,
    /// Its index.
    pub index: u64,
    /// The checkpoint it is proven against.
    pub checkpoint: NoteCheckpoint,
    archive: crate::archive_check::ExpectedArchive,
}

impl VerifiedRelease {
    /// `supplier/package version` of the proven release.
    pub fn release_name(&self) -> String {
        let body = self.entry.body();
        match &body.event {
            Event::Release {
                package, version, ..
            } => format!(
                "{}/{} {}",
                body.supplier.as_str(),
                package.as_str(),
                version
            ),
            // `verify_release` admits release entries only.
            _ => body.supplier.as_str().to_owned(),
        }
    }

    /// Checks archive bytes against the proven release with the one archive check
    /// ([`crate::archive_check`]): logged size, BLAKE2b-512, and the archive signature by the
    /// release's signing key, in one streamed pass.
    pub fn check_archive(
        &self,
        reader: impl std::io::Read,
    ) -> Result<crate::archive_check::CheckedArchive, crate::archive_check::ArchiveMismatch> {
        self.archive.check(reader)
    }
}

/// Verifies a release proof offline: the checkpoint is the channel's (`key`, `origin`), the
/// `extra` entry is a release entry, and the inclusion proof leads from its leaf hash at
/// `index` to the checkpoint's root.
pub fn verify_release(
    proof: &TlogProof,
    key: &PublicKey,
    origin: &ChannelName,
) -> Result<VerifiedRelease, ProofError> {
    let checkpoint = tlog_checkpoint::open(proof.checkpoint.as_bytes(), key, origin)?;
    let bytes = proof.extra.as_deref().ok_or_else(|| {
        ProofError::NotTheRelease("the proof has no extra line with the release entry".into())
    })?;
    let entry = Entry::parse(bytes).map_err(|e| {
        ProofError::NotTheRelease(format!("the extra line is not a log entry: {e}"))
    })?;
    let archive = entry
        .expected_archive()
        .ok_or_else(|| ProofError::NotTheRelease("the entry is not a release".into()))?;
    let inclusion =
        InclusionProof::new(proof.proof.clone()).map_err(|_| ProofError::Inclusion {
            index: proof.index,
            size: checkpoint.size(),
        })?;
    merkle::verify_inclusion(
        &Blake2b256,
        proof.index,
        checkpoint.size(),
        &LogView::leaf_hash(bytes),
        &inclusion,
        checkpoint.root(),
    )
    .map_err(|_| ProofError::Inclusion {
        index: proof.index,
        size: checkpoint.size(),
    })?;
    Ok(VerifiedRelease {
        entry,
        index: proof.index,
        checkpoint,
        archive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_file_round_trips_and_malformed_ones_are_refused() {
        let text = format(
            Some(b"entry"),
            7,
            &[[1; 32], [2; 32]],
            "origin\n1\nAAAA\n\n— origin x\n",
        );
        let p = parse(&text).unwrap();
        assert_eq!(
            (p.extra.as_deref(), p.index, p.proof.len()),
            (Some(&b"entry"[..]), 7, 2)
        );
        assert_eq!(p.checkpoint, "origin\n1\nAAAA\n\n— origin x\n");
        assert_eq!(
            format(p.extra.as_deref(), p.index, &p.proof, &p.checkpoint),
            text
        );
        // Without extra.
        assert_eq!(parse(&format(None, 0, &[], "c\n")).unwrap().extra, None);
        for bad in [
            text.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1),
            text.replacen("index 7", "index 07", 1),
            text.replacen("index 7", "index -7", 1),
            text.replacen("extra ", "extra !", 1),
            text.replacen("index 7\n", "index 7\nnot a hash\n", 1),
            "c2sp.org/tlog-proof@v1\nindex 1\n".to_owned(),
            "x".repeat(MAX_PROOF_BYTES + 1),
        ] {
            assert!(
                matches!(parse(&bad), Err(ProofError::Malformed(_))),
                "{bad:.60}"
            );
        }
    }
}
