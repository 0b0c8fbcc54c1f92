//! Stage 1 by a delta patch (docs/deltas.md): rebuild the new release's archive from the kept
//! archive of the installed version and a patch, into `staging/<digest>.zip`, checked by the
//! one archive check exactly as a download is. Any failure here is reported to the caller as
//! a reason, and the caller downloads the full archive in the same run.
//!
//! The patch is not trusted: it is downloaded with a limit of
//! [`keyggdrasil::delta::max_patch_bytes`] of the logged size, applied with the output cut at
//! the logged size plus one byte ([`keyggdrasil::delta::apply_patch`]), and the rebuilt bytes
//! pass the same size, BLAKE2b-512 and signature check as a full download
//! ([`super::fetch::verify_download`], [`keyggdrasil::state::VerifiedRelease::check_archive`])
//! before anything is extracted. The base is the site's own file, which may be damaged: its
//! size and digest are checked against the install record first.
//!
//! Memory: the base archive (at most the 128 MiB window of base plus target, else no delta)
//! and the zstd decoder's window; the patch is streamed from its file.

use std::fs;
use std::io::{self, BufReader, BufWriter, Read};
use std::path::Path;

use keyggdrasil::delta;
use keyggdrasil::state::VerifiedRelease;

use super::fetch::verify_download;
use super::random_suffix;
use crate::transport::{Http, TransportError};

/// The folder of kept archives in a package folder: `archives/<digest hex>.zip` of the current
/// and the previous version, the bases of delta patches.
pub const ARCHIVES: &str = "archives";

/// Why no delta update was made: for one log line, after which the full archive is downloaded.
#[derive(Debug, Clone)]
pub(super) struct NoDelta {
    /// True when nothing went wrong: no mirror has a patch (404) or there is nothing to try. An
    /// info line then, not a warning: a channel without patches is normal.
    pub(super) quiet: bool,
    /// What happened.
    pub(super) why: String,
}

impl NoDelta {
    fn loud(why: String) -> Self {
        Self { quiet: false, why }
    }
}

impl From<String> for NoDelta {
    fn from(why: String) -> Self {
        Self::loud(why)
    }
}

/// What a delta update downloaded.
#[derive(Debug)]
pub(super) struct PatchUsed {
    /// Bytes of the patch.
    pub(super) bytes: u64,
    /// Where it came from.
    pub(super) url: String,
    /// The rebuilt archive as it was checked, still open (now at `download`): the install
    /// extracts from this, not from whatever is at the path later.
    pub(super) verified: Option<fs::File>,
}

/// Rebuilds `release`'s archive into `download` from the kept archive `base` (the installed
/// version's, whose BLAKE2b-512 the install record says is `base_digest`) and the first patch
/// that one of `urls` delivers. On success `download` holds the checked archive; on failure it
/// does not exist, nothing else changed (the temporary patch and output are removed), and the
/// error says why, for a log line. A kept base that fails its check is deleted.
#[allow(clippy::too_many_arguments)]
pub(super) fn rebuild(
    http: &Http,
    staging: &Path,
    base: &Path,
    base_digest: &str,
    urls: &[String],
    release: &VerifiedRelease,
    download: &Path,
    name: &str,
) -> Result<PatchUsed, NoDelta> {
    let size = release.size();
    let limit = delta::max_patch_bytes(size);
    if limit == 0 || urls.is_empty() {
        return Err(NoDelta {
            quiet: true,
            why: "no patch to try".into(),
        });
    }
    let base_bytes = read_base(base, base_digest, size)?;
    let patch = staging.join(format!("patch-{}", random_suffix()));
    let rebuilt = staging.join(format!("rebuilt-{}", random_suffix()));
    let result = (|| -> Result<PatchUsed, NoDelta> {
        let url = fetch_patch(http, urls, &patch, limit)?;
        let bytes = fs::symlink_metadata(&patch).map(|m| m.len()).unwrap_or(0);
        apply(&base_bytes, &patch, &rebuilt, size)
            .map_err(|e| format!("the patch from {url} was refused: {e}"))?;
        // The one archive check, as for a download (it deletes the file on a mismatch).
        let verified = verify_download(&rebuilt, release, name).map_err(|e| {
            format!("the archive rebuilt from the patch from {url} was refused: {e}")
        })?;
        fs::rename(&rebuilt, download)
            .map_err(|e| format!("could not move {}: {e}", rebuilt.display()))?;
        Ok(PatchUsed {
            bytes,
            url,
            verified: Some(verified),
        })
    })();
    let _ = fs::remove_file(&patch);
    if result.is_err() {
        let _ = fs::remove_file(&rebuilt);
        let _ = fs::remove_file(download);
    }
    result
}

/// Reads the kept base archive, bounded: it must be a regular file whose size fits a patch
/// window with the target, and whose unkeyed BLAKE2b-512 is the install record's.
fn read_base(base: &Path, base_digest: &str, target_size: u64) -> Result<Vec<u8>, String> {
    let meta = match fs::symlink_metadata(base) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return Err(format!("{} is not a regular file", base.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err("no kept archive of the installed version".into());
        }
        Err(e) => return Err(format!("{}: {e}", base.display())),
    };
    let len = meta.len();
    if delta::window_log(len, target_size).is_none() {
        return Err(format!(
            "the installed archive ({len} bytes) and the new one ({target_size} bytes) are too large for a patch"
        ));
    }
    let mut bytes = Vec::new();
    fs::File::open(base)
        .and_then(|f| f.take(len.saturating_add(1)).read_to_end(&mut bytes))
        .map_err(|e| format!("{}: {e}", base.display()))?;
    let (n, digest) = keyggdrasil::filesig::archive_digest(&bytes[..])
        .map_err(|e| format!("{}: {e}", base.display()))?;
    if n != len || hex::encode(digest) != base_digest {
        // The site's own copy changed on disk: useless as a base, and not to be tried again.
        let _ = fs::remove_file(base);
        return Err(format!(
            "the kept archive {} does not match the installed version's digest; it was deleted",
            base.display()
        ));
    }
    Ok(bytes)
}

/// Downloads the patch into `dest` from the first URL that has one (404 and unreachable
/// mirrors are passed over), with at most `limit` bytes. Returns the URL. Quiet when every
/// mirror answered 404.
fn fetch_patch(http: &Http, urls: &[String], dest: &Path, limit: u64) -> Result<String, NoDelta> {
    let mut errors = Vec::new();
    let mut all_missing = true;
    for url in urls {
        let _ = fs::remove_file(dest);
        match http.download(url, dest, limit) {
            Ok((200, got)) if got > 0 => return Ok(url.clone()),
            Ok((404, _)) => errors.push(format!("{url}: HTTP status 404")),
            Ok((200, _)) => {
                all_missing = false;
                errors.push(format!("{url}: an empty patch"));
            }
            Ok((status, _)) => {
                all_missing = false;
                errors.push(format!("{url}: HTTP status {status}"));
            }
            Err(TransportError::TooLarge { .. }) => {
                let _ = fs::remove_file(dest);
                return Err(NoDelta::loud(format!(
                    "{url} sent a patch over {limit} bytes (half the archive); not used"
                )));
            }
            Err(e) => {
                all_missing = false;
                errors.push(e.to_string());
            }
        }
    }
    let _ = fs::remove_file(dest);
    Err(NoDelta {
        quiet: all_missing,
        why: format!("no patch: {}", errors.join("; ")),
    })
}

/// Applies the patch file to `base` into the new file `out` (synced), at most `size` + 1 bytes.
fn apply(base: &[u8], patch: &Path, out: &Path, size: u64) -> Result<(), String> {
    let input = fs::File::open(patch).map_err(|e| format!("{}: {e}", patch.display()))?;
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let mut writer = BufWriter::new(file);
    delta::apply_patch(base, BufReader::new(input), &mut writer, size).map_err(|e| {
        let mut text = e.to_string();
        if let Some(cause) = std::error::Error::source(&e) {
            text.push_str(&format!(": {cause}"));
        }
        text
    })?;
    let file = writer
        .into_inner()
        .map_err(|e| format!("{}: {}", out.display(), e.error()))?;
    file.sync_all()
        .map_err(|e| format!("{}: {e}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_hex(bytes: &[u8]) -> String {
        hex::encode(keyggdrasil::filesig::archive_digest(bytes).unwrap().1)
    }

    #[test]
    fn a_kept_base_is_read_only_if_it_matches_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.zip");
        let bytes = vec![7u8; 10_000];
        fs::write(&base, &bytes).unwrap();
        assert_eq!(
            read_base(&base, &digest_hex(&bytes), 100_000).unwrap(),
            bytes
        );

        // Damaged on disk: refused and deleted, so it is not tried again.
        let mut damaged = bytes.clone();
        damaged[5] ^= 1;
        fs::write(&base, &damaged).unwrap();
        let err = read_base(&base, &digest_hex(&bytes), 100_000).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        assert!(!base.exists());

        let err = read_base(&base, &digest_hex(&bytes), 100_000).unwrap_err();
        assert!(err.contains("no kept archive"), "{err}");
    }

    #[test]
    fn a_base_that_is_not_a_regular_file_or_too_large_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.zip");
        fs::write(&real, b"abc").unwrap();
        let link = dir.path().join("link.zip");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = read_base(&link, &digest_hex(b"abc"), 100_000).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        assert!(real.exists(), "the link's target is left alone");
        // Base plus target over the largest patch window: not read at all.
        let err = read_base(&real, &digest_hex(b"abc"), 1 << delta::MAX_WINDOW_LOG).unwrap_err();
        assert!(err.contains("too large for a patch"), "{err}");
    }
}
