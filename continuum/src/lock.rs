//! The site's update lock (`update.lock`): one update or rollback at a time per site.
//!
//! An advisory lock (`flock`) on a file in the site folder, held for the life of a
//! [`SiteLock`] and released by the OS if the process dies, so a crash never leaves a site
//! locked. It does not stop a person from editing the site by hand.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

use thiserror::Error;

use crate::config::SitePaths;
use crate::error::ErrorKind;

/// Why the lock could not be taken.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds it (an update or a rollback is running).
    #[error("another continuum update is running for this site")]
    Busy,
    /// The lock file could not be opened or created.
    #[error("cannot open lock file {path}")]
    Open {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Locking failed for another reason than someone else holding it.
    #[error("cannot lock {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl LockError {
    /// [`ErrorKind::AnotherRunInProgress`] for [`LockError::Busy`], otherwise local.
    pub fn kind(&self) -> ErrorKind {
        match self {
            LockError::Busy => ErrorKind::AnotherRunInProgress,
            LockError::Open { .. } | LockError::Lock { .. } => ErrorKind::Local,
        }
    }
}

/// The held lock of one site; dropping it releases the lock.
#[derive(Debug)]
pub struct SiteLock {
    // Held only for its lock; closing the file releases it.
    _file: File,
}

impl SiteLock {
    /// Takes the lock of the site at `paths` without waiting: [`LockError::Busy`] at once if
    /// another process holds it. Creates `update.lock` if it is missing (never truncates it).
    pub fn try_acquire(paths: &SitePaths) -> Result<Self, LockError> {
        // Mode 0600: anyone who can open the file can hold its lock and stall every run.
        let file = keyggdrasil::os::ownership::no_follow(
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600),
        )
        .open(&paths.lock)
        .map_err(|source| LockError::Open {
            path: paths.lock.clone(),
            source,
        })?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(LockError::Busy),
            Err(TryLockError::Error(source)) => Err(LockError::Lock {
                path: paths.lock.clone(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let paths = SitePaths::new(dir.path());
        let first = SiteLock::try_acquire(&paths).unwrap();
        // flock locks belong to the open file, so a second open in this process conflicts
        // just as another process would.
        let second = SiteLock::try_acquire(&paths).unwrap_err();
        assert!(matches!(second, LockError::Busy));
        assert_eq!(second.kind(), ErrorKind::AnotherRunInProgress);
        drop(first);
        SiteLock::try_acquire(&paths).unwrap();
    }

    #[test]
    fn missing_folder_is_a_local_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let paths = SitePaths::new(&dir.path().join("nope"));
        let e = SiteLock::try_acquire(&paths).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Local);
        assert!(e.to_string().contains("update.lock"), "{e}");
    }
}
