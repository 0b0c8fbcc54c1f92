//! The notary as a C2SP `tlog-witness`: `POST /add-checkpoint` ([`keyggdrasil::witness`]),
//! for the channels this site trusts (origin and pinned key from `continuum.toml`), cosigned
//! with the notary key as `cosignature/v1`.
//!
//! State: `witness_latest` holds, per origin, the latest checkpoint cosigned; the check of the
//! old size and the write of the new checkpoint happen in one `BEGIN IMMEDIATE` transaction
//! under the notary's database lock, so of two requests from the same old size exactly one
//! wins and the other gets 409 (the spec's race). `witness_refused` keeps every checkpoint that
//! was validly signed but refused as inconsistent (422), as possible evidence of a misbehaving
//! log. A checkpoint of a size the notary has observed through its nonce API must have the
//! observed root: one that contradicts it is refused (422) and kept in `witness_refused` as a
//! fork. What it does not do yet: write such a contradiction into `fork_evidence` (whose
//! statements are our JSON signed answers, not notes), extend the observed log from cosigned
//! checkpoints, or cosign with ML-DSA.

use keyggdrasil::keys::{KeyPair, PublicKey};
use keyggdrasil::merkle::Blake2b256;
use keyggdrasil::names::ChannelName;
use keyggdrasil::witness::{self, WitnessError};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// The witness tables, created with the notary's.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS witness_latest (
    origin TEXT PRIMARY KEY,
    size   INTEGER NOT NULL,
    root   BLOB NOT NULL,
    note   TEXT NOT NULL,
    time   INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS witness_refused (
    origin TEXT NOT NULL,
    note   TEXT NOT NULL,
    reason TEXT NOT NULL,
    time   INTEGER NOT NULL
) STRICT;
";

/// The notary's witness key name: `keyggdrasil-notary/<fingerprint of its key>` (no spaces,
/// no `+`, one per key).
pub fn witness_name(key: &PublicKey) -> String {
    format!("keyggdrasil-notary/{}", key.fingerprint())
}

/// The notary's cosignature verifier key (`<name>+<key ID>+base64(0x04 ‖ key)`), what a site's
/// witness policy lists.
pub fn verifier_key(key: &PublicKey) -> String {
    keyggdrasil::note::VerifierKey::cosignature_v1(&witness_name(key), key)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// Why a request could not be answered at all (not a protocol refusal).
#[derive(Debug, thiserror::Error)]
pub enum WitnessDbError {
    /// The witness tables.
    #[error("witness database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The notary's observed log.
    #[error("the notary's observed log: {0}")]
    Observed(#[from] super::ObserveError),
}

/// Handles one `add-checkpoint` body: the cosignature line on success, the spec's refusal
/// otherwise. `trusted` gives the pinned key of a known origin.
pub fn add_checkpoint(
    conn: &mut Connection,
    key: &KeyPair,
    trusted: impl Fn(&ChannelName) -> Option<PublicKey>,
    body: &[u8],
    now: u64,
) -> Result<Result<String, WitnessError>, WitnessDbError> {
    let req = match witness::parse(body) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let signed = match witness::verify(&req, trusted) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let latest: Option<(i64, Vec<u8>)> = tx
        .query_row(
            "SELECT size, root FROM witness_latest WHERE origin = ?1",
            [signed.origin.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let latest = match latest {
        Some((size, root)) => {
            let root: [u8; 32] = root.try_into().map_err(|_| {
                rusqlite::Error::InvalidColumnType(1, "root".into(), rusqlite::types::Type::Blob)
            })?;
            Some((u64::try_from(size).unwrap_or(0), root))
        }
        None => None,
    };
    // What this notary saw the channel sign over its nonce API, the same observed log its
    // notary answers vouch for: a checkpoint of a size it has observed must have the observed
    // root, or the channel has shown two logs (kept as evidence, not cosigned).
    let contradiction = match super::observed_root_at(&tx, &signed.origin, signed.size)? {
        Some(root) if root != signed.root => Some(WitnessError::Unprocessable(format!(
            "the checkpoint of size {} contradicts the root this notary observed from the channel at that size (a fork)",
            signed.size
        ))),
        _ => None,
    };
    let decided = match contradiction {
        Some(e) => Err(e),
        None => witness::decide(&Blake2b256, &req, &signed, latest),
    };
    if let Err(e) = decided {
        if e.status() == 422 {
            tracing::warn!(origin = signed.origin.as_str(), error = %e, "witness: refused an inconsistent signed checkpoint; kept as evidence");
            tx.execute(
                "INSERT INTO witness_refused (origin, note, reason, time) VALUES (?1, ?2, ?3, ?4)",
                params![
                    signed.origin.as_str(),
                    signed.note,
                    e.to_string(),
                    now as i64
                ],
            )?;
            tx.commit()?;
        }
        return Ok(Err(e));
    }
    let line = match witness::cosign(&witness_name(&key.public()), key, &signed, now) {
        Ok(l) => l,
        Err(e) => return Ok(Err(WitnessError::BadRequest(e.to_string()))),
    };
    tx.execute(
        "INSERT INTO witness_latest (origin, size, root, note, time) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(origin) DO UPDATE SET size = ?2, root = ?3, note = ?4, time = ?5",
        params![
            signed.origin.as_str(),
            signed.size as i64,
            &signed.root[..],
            signed.note,
            now as i64
        ],
    )?;
    // Persisted before the answer, as the spec requires.
    tx.commit()?;
    Ok(Ok(line))
}
