//! What kind of failure an error is, and the one mapping from that kind to an exit code.
//!
//! Every error type of this crate has a `kind()` returning one [`ErrorKind`]; the binary turns
//! the kind into its exit code with [`ErrorKind::exit_code`], and the run record of
//! `continuum update` stores the same code, so what `status` shows and what cron saw agree.
//! This module decides no trust question: it only sorts outcomes by what the operator can do.

/// What happened, sorted by what an operator can do about it. Each kind has one exit code
/// (see `docs/site-operator.md`, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `status` found something that needs a person's attention (stale, failing, fork): exit 1.
    NeedsAttention,
    /// The command line is wrong (a malformed argument, a refused edit of the config): exit 2.
    Usage,
    /// The channel or the peers misbehaved (bad signature, rewritten log, peers disagree,
    /// fork, tampered archive, release breaking key rules); the site is unchanged: exit 3.
    Verification,
    /// The channel or enough peers could not be reached; the site is unchanged: exit 4.
    Unreachable,
    /// Something on this machine failed (config, disk, database, permissions): exit 5.
    Local,
    /// Another update (or rollback) holds the site's lock: exit 6.
    AnotherRunInProgress,
}

impl ErrorKind {
    /// The process exit code of this kind. Success (exit 0) is not a kind.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::NeedsAttention => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Verification => 3,
            ErrorKind::Unreachable => 4,
            ErrorKind::Local => 5,
            ErrorKind::AnotherRunInProgress => 6,
        }
    }

    /// The outcome's name in the `runs` table, `continuum.log` and `update --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NeedsAttention => "needs_attention",
            ErrorKind::Usage => "usage",
            ErrorKind::Verification => "verification_failed",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Local => "local_error",
            ErrorKind::AnotherRunInProgress => "busy",
        }
    }
}

/// What to do about a local file that could not be used, as a clause to put after the path:
/// a missing file usually means the wrong `--dir`, a refused one the wrong user. Empty for
/// other failures, whose own text says enough.
pub fn io_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            " (no site here: pass --dir with the folder `continuum init` created, or create one \
             with `continuum --dir FOLDER init --channel URL --channel-key KEY`)"
        }
        std::io::ErrorKind::PermissionDenied => {
            " (permission denied: run continuum as the user that owns the site folder, for \
             example `sudo -u continuum`, or fix the owner with chown -R)"
        }
        _ => "",
    }
}

/// An error and its sources, joined with ": ", each cause told once: a source whose text the
/// message already contains (a `#[error(transparent)]` wrapper, or a cause a message names
/// mid-sentence) is not repeated.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_hints_say_what_to_do() {
        use std::io::{Error, ErrorKind as Io};
        // Root ignores file modes, so the tests of the binary cannot make a real
        // permission error; the clause is checked here.
        assert!(io_hint(&Error::from(Io::PermissionDenied)).contains("run continuum as the user"));
        assert!(io_hint(&Error::from(Io::NotFound)).contains("continuum --dir FOLDER init"));
        assert_eq!(io_hint(&Error::other("disk on fire")), "");
    }

    #[test]
    fn exit_codes_are_the_documented_ones() {
        let all = [
            (ErrorKind::NeedsAttention, 1),
            (ErrorKind::Usage, 2),
            (ErrorKind::Verification, 3),
            (ErrorKind::Unreachable, 4),
            (ErrorKind::Local, 5),
            (ErrorKind::AnotherRunInProgress, 6),
        ];
        for (kind, code) in all {
            assert_eq!(kind.exit_code(), code, "{kind:?}");
        }
        assert_eq!(ErrorKind::Verification.as_str(), "verification_failed");
        assert_eq!(ErrorKind::AnotherRunInProgress.as_str(), "busy");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer names inner")]
    struct Outer(#[source] Inner);
    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Plain(#[source] Inner);

    #[test]
    fn chain_tells_each_cause_once() {
        assert_eq!(chain(&Plain(Inner)), "outer: inner");
        assert_eq!(chain(&Outer(Inner)), "outer names inner");
    }
}
