//! Validated names that later become file paths and URL segments: suppliers, packages, versions,
//! and the channel's name (its log's origin).
//!
//! Each type can only be built through its parser, which accepts a deliberately small alphabet so a
//! name can never climb out of a folder, smuggle a URL delimiter or differ from another name only by
//! case or Unicode normalisation. The types do not implement `Deref<Target = str>` or `AsRef<str>`:
//! use [`SupplierName::as_str`] and friends explicitly, so unvalidated strings never slip through
//! a generic `impl AsRef<str>` parameter.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Longest supplier or package name accepted.
pub const MAX_NAME_LEN: usize = 64;
/// Longest version string accepted.
pub const MAX_VERSION_LEN: usize = 64;

/// Why a name or version was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty or longer than allowed.
    #[error("{what} must be 1 to {max} characters long, got {len}")]
    Length {
        /// "supplier name", "package name" or "version".
        what: &'static str,
        /// The limit.
        max: usize,
        /// The length received.
        len: usize,
    },
    /// The name contains a character outside `a-z 0-9 - _`, or starts with `-`/`_`.
    #[error(
        "{what} {name:?} may only contain lowercase a-z, 0-9, '-' and '_', and must start with a letter or digit"
    )]
    Characters {
        /// What kind of name.
        what: &'static str,
        /// The refused name, escaped by `Debug`.
        name: String,
    },
    /// The channel name is empty, too long, or has a space or a non-printable character.
    #[error(
        "channel name {name:?} must be 1 to {MAX_CHANNEL_NAME_LEN} printable ASCII characters without spaces"
    )]
    Channel {
        /// The refused name, escaped by `Debug`.
        name: String,
    },
    /// The version is not a canonical semantic version without build metadata.
    #[error(
        "version {version:?} is not a canonical semantic version like 1.2.3 or 1.2.3-rc.1 (build metadata '+...' is not allowed): {reason}"
    )]
    Version {
        /// The refused version text.
        version: String,
        /// What the semver parser or the canonical check said.
        reason: String,
    },
}

/// Longest channel name.
pub const MAX_CHANNEL_NAME_LEN: usize = 128;

/// A channel's name (its log's origin): 1–128 printable ASCII characters without spaces, for
/// example `plugins.example.org`. Binds every signed statement to one log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelName(String);

impl ChannelName {
    /// Validates a channel name.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let ok = !text.is_empty()
            && text.len() <= MAX_CHANNEL_NAME_LEN
            && text.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(NameError::Channel {
                name: text.chars().take(MAX_CHANNEL_NAME_LEN + 8).collect(),
            })
        }
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl Serialize for ChannelName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de> Deserialize<'de> for ChannelName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&t).map_err(serde::de::Error::custom)
    }
}

fn check_name(what: &'static str, text: &str) -> Result<(), NameError> {
    if text.is_empty() || text.len() > MAX_NAME_LEN {
        return Err(NameError::Length {
            what,
            max: MAX_NAME_LEN,
            len: text.len(),
        });
    }
    let ok_start = text
        .as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok_rest = text
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok_start && ok_rest {
        Ok(())
    } else {
        Err(NameError::Characters {
            what,
            name: text.chars().take(MAX_NAME_LEN + 8).collect(),
        })
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates a name.
            pub fn parse(text: &str) -> Result<Self, NameError> {
                check_name($what, text)?;
                Ok(Self(text.to_owned()))
            }
            /// The validated name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A supplier (extension author or vendor) name: `a-z 0-9 - _`, 1–64 characters, starting
    /// with a letter or digit. Safe as one path component and one URL segment.
    SupplierName,
    "supplier name"
);
name_type!(
    /// A package (extension) name, with the same alphabet as [`SupplierName`].
    PackageName,
    "package name"
);

/// A release version: a canonical semantic version (`MAJOR.MINOR.PATCH[-PRERELEASE]`) without
/// build metadata, at most 64 characters. Ordered by semantic-version precedence.
///
/// Canonical means the text is exactly what the semver parser would print back (no leading zeros,
/// no `v` prefix), so two different strings never name the same version.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Version {
    text: String,
    parsed: semver::Version,
}

impl Version {
    /// Parses and validates a version.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        if text.is_empty() || text.len() > MAX_VERSION_LEN {
            return Err(NameError::Length {
                what: "version",
                max: MAX_VERSION_LEN,
                len: text.len(),
            });
        }
        let refuse = |reason: String| NameError::Version {
            version: text.to_owned(),
            reason,
        };
        let parsed = semver::Version::parse(text).map_err(|e| refuse(e.to_string()))?;
        if !parsed.build.is_empty() {
            return Err(refuse("build metadata is not allowed".into()));
        }
        if parsed.to_string() != text {
            return Err(refuse("not in canonical form".into()));
        }
        Ok(Self {
            text: text.to_owned(),
            parsed,
        })
    }
    /// The validated version text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
    /// The parsed semantic version, for update-policy decisions.
    pub fn semver(&self) -> &semver::Version {
        &self.parsed
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Version {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.parsed.cmp(&other.parsed)
    }
}
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({:?})", self.text)
    }
}
impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}
impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names() {
        for n in ["acme", "a", "0day", "my-plugin_2", &"a".repeat(64)] {
            assert_eq!(SupplierName::parse(n).unwrap().as_str(), n);
            assert_eq!(PackageName::parse(n).unwrap().as_str(), n);
        }
    }

    #[test]
    fn bad_names() {
        for n in [
            "",
            "..",
            ".",
            "a/b",
            "a\\b",
            "Acme",
            "-x",
            "_x",
            "a b",
            "a.b",
            "ä",
            "a\0",
            "a%2f",
            &"a".repeat(65),
        ] {
            assert!(SupplierName::parse(n).is_err(), "{n:?} accepted");
            assert!(PackageName::parse(n).is_err(), "{n:?} accepted");
        }
    }

    #[test]
    fn versions() {
        for v in ["0.0.1", "1.2.3", "10.20.30-rc.1", "1.0.0-alpha"] {
            assert_eq!(Version::parse(v).unwrap().as_str(), v);
        }
        for v in [
            "v1.2.3",
            "1.2",
            "01.2.3",
            "1.2.3+build",
            "1.2.3 ",
            "",
            "../1.2.3",
            "1.2.3/x",
        ] {
            assert!(Version::parse(v).is_err(), "{v:?} accepted");
        }
        assert!(Version::parse("1.10.0").unwrap() > Version::parse("1.9.0").unwrap());
        assert!(Version::parse("1.0.0").unwrap() > Version::parse("1.0.0-rc.1").unwrap());
    }

    #[test]
    fn serde_validates() {
        let r: Result<SupplierName, _> = serde_json::from_str("\"../etc\"");
        assert!(r.is_err());
        let v: Version = serde_json::from_str("\"1.2.3\"").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"1.2.3\"");
    }
}
