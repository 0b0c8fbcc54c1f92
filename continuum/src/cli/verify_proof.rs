//! `continuum verify-proof FILE [--archive PATH]`: checks a release's offline proof
//! (`keyggdrasil::tlog_proof`, C2SP `tlog-proof@v1`) with no network: the checkpoint must be
//! signed by the pinned key of one of this site's channels (found by the checkpoint's origin),
//! the entry must be a release included at the proof's index; with `--archive`, the file must
//! pass the one archive check against it (logged size, BLAKE2b-512, archive signature by the
//! release's signing key). Exit 3 when anything fails.

use std::path::Path;

use keyggdrasil::names::ChannelName;
use keyggdrasil::tlog_proof;

use super::CliError;
use continuum::config::{Config, SitePaths};

/// Runs the command.
pub fn run(
    paths: &SitePaths,
    file: &Path,
    archive: Option<&Path>,
    json: bool,
) -> Result<(), CliError> {
    let cfg = Config::load(&paths.config)?;
    let io = |operation| move |source| CliError::Io { operation, source };
    let meta = std::fs::metadata(file).map_err(io("read the proof file"))?;
    if meta.len() > tlog_proof::MAX_PROOF_BYTES as u64 {
        return Err(CliError::Proof(format!(
            "{} is larger than a proof ({} bytes)",
            file.display(),
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(file).map_err(io("read the proof file"))?;
    let proof = tlog_proof::parse(&text).map_err(|e| CliError::Proof(e.to_string()))?;
    let origin = proof.checkpoint.lines().next().unwrap_or("");
    let channel = ChannelName::parse(origin)
        .ok()
        .and_then(|o| cfg.channels.iter().find(|c| c.name == o))
        .ok_or_else(|| {
            CliError::Proof(format!(
                "the proof's checkpoint is of {origin:?}, which is not a channel of this site"
            ))
        })?;
    let verified = tlog_proof::verify_release(&proof, &channel.key, &channel.name)
        .map_err(|e| CliError::Proof(e.to_string()))?;
    let name = verified.release_name();
    if let Some(path) = archive {
        let f = std::fs::File::open(path).map_err(io("open the archive"))?;
        verified.check_archive(f).map_err(|e| {
            CliError::Proof(format!(
                "{}: the archive is not {name}: {e}",
                path.display()
            ))
        })?;
    }
    if json {
        super::print_json(&serde_json::json!({
            "release": name,
            "index": verified.index,
            "checkpoint_size": verified.checkpoint.size(),
            "channel": channel.name.as_str(),
            "archive_checked": archive.is_some(),
        }))?;
    } else {
        println!(
            "{name} is entry {} of {}'s log at size {} (checkpoint signed by the pinned key){}",
            verified.index,
            channel.name.as_str(),
            verified.checkpoint.size(),
            if archive.is_some() {
                "; the archive matches its logged size, BLAKE2b-512 and signature"
            } else {
                ""
            }
        );
    }
    Ok(())
}
