//! [`Manifest`]: what an archive says it contains, stored as its first entry.

use serde::{Deserialize, Serialize};

/// The `format` value of every manifest this version writes and accepts.
pub const MANIFEST_FORMAT: &str = "keyggdrasil-archive/v1";

const MAX_PACKAGE_LEN: usize = 128;
const MAX_VERSION_LEN: usize = 64;

/// What an archive says it is: package, version and the git commit it was built from.
///
/// Stored as the archive's first entry, [`MANIFEST_NAME`](super::MANIFEST_NAME), in canonical
/// JSON: one object with the keys `format`, `git_commit`, `package`, `version` in that (sorted)
/// order, no whitespace, e.g.
/// `{"format":"keyggdrasil-archive/v1","git_commit":"<40 hex>","package":"acme/hello","version":"1.0.0"}`.
/// Parsing accepts exactly these bytes and nothing else (no other spacing, key order or escape),
/// so one manifest has one encoding.
///
/// The manifest is a claim by the archive's builder. The caller compares it with the signed
/// release it installs; this module only checks that it is well formed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    package: String,
    version: String,
    git_commit: String,
}

/// Why a manifest is not acceptable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The bytes are not a JSON object of the expected shape.
    #[error("manifest is not valid JSON of the expected shape")]
    Json(#[source] serde_json::Error),
    /// The JSON is valid but not in canonical form (spacing, key order, escapes).
    #[error("manifest is not in canonical JSON form")]
    NotCanonical,
    /// The `format` value is not [`MANIFEST_FORMAT`].
    #[error("manifest format is not {MANIFEST_FORMAT}")]
    UnsupportedFormat,
    /// A field has a value outside its allowed form.
    #[error("manifest field {field} is invalid: {expected}")]
    InvalidField {
        /// The field name.
        field: &'static str,
        /// What the field must look like.
        expected: &'static str,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestJson<'a> {
    // Keys in sorted order: serde_json writes them in declaration order.
    #[serde(borrow)]
    format: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    git_commit: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    package: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    version: std::borrow::Cow<'a, str>,
}

impl Manifest {
    /// A manifest, after checking each field:
    ///
    /// - `package`: 1 to 128 ASCII characters from `A-Z a-z 0-9 . _ - /`, starting with a
    ///   letter or digit, not ending with `/`, without `//` (e.g. `acme/hello-plugin`);
    /// - `version`: 1 to 64 ASCII characters from `A-Z a-z 0-9 . _ - +`, starting with a letter
    ///   or digit (e.g. `1.2.3`, `2.0.0-rc.1+build.5`);
    /// - `git_commit`: a full commit id, 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
    pub fn new(
        package: impl Into<String>,
        version: impl Into<String>,
        git_commit: impl Into<String>,
    ) -> Result<Self, ManifestError> {
        let manifest = Self {
            package: package.into(),
            version: version.into(),
            git_commit: git_commit.into(),
        };
        manifest.check()?;
        Ok(manifest)
    }

    /// The package name.
    pub fn package(&self) -> &str {
        &self.package
    }

    /// The package version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The git commit the archive was built from (lowercase hex).
    pub fn git_commit(&self) -> &str {
        &self.git_commit
    }

    /// The canonical JSON bytes stored in the archive.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        let json = ManifestJson {
            format: MANIFEST_FORMAT.into(),
            git_commit: self.git_commit.as_str().into(),
            package: self.package.as_str().into(),
            version: self.version.as_str().into(),
        };
        // Serialising a struct of strings into a Vec cannot fail; fall back to an empty object
        // rather than panic, which `from_canonical_json` would then refuse.
        serde_json::to_vec(&json).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// Parses canonical JSON bytes, refusing anything that [`to_canonical_json`] would not
    /// produce byte for byte.
    ///
    /// [`to_canonical_json`]: Manifest::to_canonical_json
    pub fn from_canonical_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        let json: ManifestJson<'_> = serde_json::from_slice(bytes).map_err(ManifestError::Json)?;
        if json.format != MANIFEST_FORMAT {
            return Err(ManifestError::UnsupportedFormat);
        }
        let manifest = Self::new(json.package, json.version, json.git_commit)?;
        if manifest.to_canonical_json() != bytes {
            return Err(ManifestError::NotCanonical);
        }
        Ok(manifest)
    }

    fn check(&self) -> Result<(), ManifestError> {
        let package_ok = (1..=MAX_PACKAGE_LEN).contains(&self.package.len())
            && starts_alphanumeric(&self.package)
            && self
                .package
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
            && !self.package.ends_with('/')
            && !self.package.contains("//");
        if !package_ok {
            return Err(ManifestError::InvalidField {
                field: "package",
                expected: "1 to 128 characters from A-Z a-z 0-9 . _ - /, starting with a letter or digit",
            });
        }
        let version_ok = (1..=MAX_VERSION_LEN).contains(&self.version.len())
            && starts_alphanumeric(&self.version)
            && self
                .version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
        if !version_ok {
            return Err(ManifestError::InvalidField {
                field: "version",
                expected: "1 to 64 characters from A-Z a-z 0-9 . _ - +, starting with a letter or digit",
            });
        }
        let commit_ok = matches!(self.git_commit.len(), 40 | 64)
            && self
                .git_commit
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !commit_ok {
            return Err(ManifestError::InvalidField {
                field: "git_commit",
                expected: "40 or 64 lowercase hex digits",
            });
        }
        Ok(())
    }
}

fn starts_alphanumeric(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    fn sample() -> Manifest {
        Manifest::new("acme/hello-plugin", "1.2.3", COMMIT).expect("valid")
    }

    #[test]
    fn canonical_form_is_fixed() {
        assert_eq!(
            String::from_utf8(sample().to_canonical_json()).expect("utf-8"),
            format!(
                r#"{{"format":"keyggdrasil-archive/v1","git_commit":"{COMMIT}","package":"acme/hello-plugin","version":"1.2.3"}}"#
            )
        );
    }

    #[test]
    fn round_trip() {
        let bytes = sample().to_canonical_json();
        assert_eq!(
            Manifest::from_canonical_json(&bytes).expect("parses"),
            sample()
        );
    }

    #[test]
    fn refuses_non_canonical_and_unknown() {
        let canonical = String::from_utf8(sample().to_canonical_json()).expect("utf-8");
        let spaced = canonical.replace(",\"", ", \"");
        assert!(matches!(
            Manifest::from_canonical_json(spaced.as_bytes()),
            Err(ManifestError::NotCanonical)
        ));
        let trailing = format!("{canonical}\n");
        assert!(matches!(
            Manifest::from_canonical_json(trailing.as_bytes()),
            Err(ManifestError::NotCanonical)
        ));
        let reordered = format!(
            r#"{{"git_commit":"{COMMIT}","format":"keyggdrasil-archive/v1","package":"acme/hello-plugin","version":"1.2.3"}}"#
        );
        assert!(matches!(
            Manifest::from_canonical_json(reordered.as_bytes()),
            Err(ManifestError::NotCanonical)
        ));
        let escaped = canonical.replace("1.2.3", "1.2\\u002e3");
        assert!(matches!(
            Manifest::from_canonical_json(escaped.as_bytes()),
            Err(ManifestError::NotCanonical)
        ));
        let extra = canonical.replace('}', r#","extra":"x"}"#);
        assert!(matches!(
            Manifest::from_canonical_json(extra.as_bytes()),
            Err(ManifestError::Json(_))
        ));
        let duplicate = canonical.replace('}', r#","version":"9"}"#);
        assert!(matches!(
            Manifest::from_canonical_json(duplicate.as_bytes()),
            Err(ManifestError::Json(_))
        ));
        let other_format = canonical.replace("/v1", "/v2");
        assert!(matches!(
            Manifest::from_canonical_json(other_format.as_bytes()),
            Err(ManifestError::UnsupportedFormat)
        ));
        assert!(matches!(
            Manifest::from_canonical_json(b"not json"),
            Err(ManifestError::Json(_))
        ));
    }

    #[test]
    fn field_rules() {
        for (package, version, commit) in [
            ("", "1", COMMIT),
            ("/abs", "1", COMMIT),
            ("a//b", "1", COMMIT),
            ("a/", "1", COMMIT),
            ("a b", "1", COMMIT),
            ("a\"b", "1", COMMIT),
            ("a", "", COMMIT),
            ("a", "-1", COMMIT),
            ("a", "1/2", COMMIT),
            ("a", "1", "abc"),
            ("a", "1", &COMMIT.to_uppercase()),
        ] {
            assert!(
                matches!(
                    Manifest::new(package, version, commit),
                    Err(ManifestError::InvalidField { .. })
                ),
                "{package:?} {version:?} {commit:?}"
            );
        }
        assert!(Manifest::new("a", "1", "0".repeat(64)).is_ok());
    }
}
