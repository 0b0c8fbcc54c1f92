//! Whole-system tests over loopback with the real binaries.
//!
//! Not built yet: the channel server, continuum and barge do not exist yet, so this crate only holds
//! the place in the workspace. The system tests arrive with the whole-system issue.
#![forbid(unsafe_code)]
