//! [`ArchivePath`]: the one validated form of a path inside an archive.

use std::fmt;
use std::path::{Path, PathBuf};

/// Longest single path component, in bytes (the `NAME_MAX` of common file systems).
pub const MAX_COMPONENT_LEN: usize = 255;

/// A relative path of an entry inside an archive, checked by the rules that both the builder and
/// the extractor apply.
///
/// Rules (the path-length and depth limits come on top, from
/// [`ArchiveLimits`](super::ArchiveLimits)):
///
/// - valid UTF-8, not empty, components separated by `/`;
/// - not absolute (no leading `/`), no backslash, no `:` (so no Windows drive prefix such as
///   `C:` and no NTFS alternate data stream such as `a:b`);
/// - no empty component (`a//b`, a trailing `/`), no `.` and no `..` component;
/// - no NUL and no other control character (Unicode category Cc);
/// - no component longer than [`MAX_COMPONENT_LEN`] bytes.
///
/// A directory is named without its trailing `/`; the zip entry of a directory adds it.
///
/// There is deliberately no `Deref<Target = str>`, `AsRef<str>` or `From<&str>`: the only ways
/// in are [`ArchivePath::new`] and [`ArchivePath::from_bytes`], and the only way out as a string
/// is [`ArchivePath::as_str`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArchivePath(String);

/// Why a string is not a valid [`ArchivePath`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The name is not valid UTF-8.
    #[error("name is not valid UTF-8")]
    NotUtf8,
    /// The name is empty.
    #[error("name is empty")]
    Empty,
    /// The name contains a NUL byte.
    #[error("name contains a NUL byte")]
    Nul,
    /// The name contains a control character other than NUL.
    #[error("name contains the control character U+{0:04X}")]
    ControlCharacter(u32),
    /// The name contains a backslash.
    #[error("name contains a backslash")]
    Backslash,
    /// The name starts with `/`.
    #[error("name is an absolute path")]
    Absolute,
    /// The name contains `:`, which Windows reads as a drive prefix or an alternate data stream.
    #[error("name contains ':' (a Windows drive prefix or alternate data stream)")]
    Colon,
    /// The name has an empty component (`a//b`, or a trailing `/` where none is allowed).
    #[error("name has an empty component")]
    EmptyComponent,
    /// The name has a `.` component.
    #[error("name has a '.' component")]
    CurrentDir,
    /// The name has a `..` component.
    #[error("name has a '..' component")]
    ParentDir,
    /// A component is longer than [`MAX_COMPONENT_LEN`] bytes.
    #[error("name has a component longer than {MAX_COMPONENT_LEN} bytes")]
    ComponentTooLong,
}

impl ArchivePath {
    /// Checks `name` by the rules above.
    pub fn new(name: &str) -> Result<Self, PathError> {
        validate(name)?;
        Ok(Self(name.to_owned()))
    }

    /// Checks raw bytes (as stored in a zip entry) by the rules above, starting with UTF-8.
    pub fn from_bytes(name: &[u8]) -> Result<Self, PathError> {
        let name = std::str::from_utf8(name).map_err(|_| PathError::NotUtf8)?;
        Self::new(name)
    }

    /// The path as a string, components separated by `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The number of components (at least 1).
    pub fn depth(&self) -> usize {
        self.components().count()
    }

    /// The length of the path in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: an archive path is never empty (present for API symmetry with `len`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The parent folder, or `None` for a top-level name.
    pub fn parent(&self) -> Option<ArchivePath> {
        self.0
            .rsplit_once('/')
            .map(|(parent, _)| ArchivePath(parent.to_owned()))
    }

    /// Every proper ancestor folder, outermost first (`a/b/c` gives `a`, `a/b`).
    pub fn ancestors(&self) -> impl Iterator<Item = ArchivePath> + '_ {
        self.0
            .match_indices('/')
            .map(|(at, _)| ArchivePath(self.0.get(..at).unwrap_or_default().to_owned()))
    }

    /// This path under `base`, built component by component (never parsed as a native path,
    /// so no component can be read as a prefix or root on any platform).
    pub fn to_path_under(&self, base: &Path) -> PathBuf {
        let mut path = base.to_path_buf();
        for component in self.components() {
            path.push(component);
        }
        path
    }

    /// The name this path is compared by for case-insensitive collisions (Unicode lowercase).
    pub(crate) fn folded(&self) -> String {
        self.0.to_lowercase()
    }

    /// `child` appended to this path as one more component, checked by the same rules.
    pub(crate) fn join(&self, child: &str) -> Result<ArchivePath, PathError> {
        Self::new(&format!("{}/{child}", self.0))
    }
}

impl fmt::Display for ArchivePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn validate(name: &str) -> Result<(), PathError> {
    if name.is_empty() {
        return Err(PathError::Empty);
    }
    for ch in name.chars() {
        match ch {
            '\0' => return Err(PathError::Nul),
            c if c.is_control() => return Err(PathError::ControlCharacter(u32::from(c))),
            '\\' => return Err(PathError::Backslash),
            _ => {}
        }
    }
    if name.starts_with('/') {
        return Err(PathError::Absolute);
    }
    if name.contains(':') {
        return Err(PathError::Colon);
    }
    for component in name.split('/') {
        match component {
            "" => return Err(PathError::EmptyComponent),
            "." => return Err(PathError::CurrentDir),
            ".." => return Err(PathError::ParentDir),
            c if c.len() > MAX_COMPONENT_LEN => return Err(PathError::ComponentTooLong),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(name: &str) -> PathError {
        ArchivePath::new(name).expect_err(name)
    }

    #[test]
    fn accepts_ordinary_relative_paths() {
        for name in [
            "a",
            "a/b",
            "src/lib.php",
            ".hidden",
            "a..b",
            "...",
            "ünïcode/文件",
        ] {
            let path = ArchivePath::new(name).expect(name);
            assert_eq!(path.as_str(), name);
        }
    }

    #[test]
    fn rejects_each_rule() {
        assert_eq!(err(""), PathError::Empty);
        assert_eq!(err("/etc/passwd"), PathError::Absolute);
        assert_eq!(err("//server/share"), PathError::Absolute);
        assert_eq!(err("a\\b"), PathError::Backslash);
        assert_eq!(err("..\\evil"), PathError::Backslash);
        assert_eq!(err("C:/evil"), PathError::Colon);
        assert_eq!(err("c:evil"), PathError::Colon);
        assert_eq!(err("file:stream"), PathError::Colon);
        assert_eq!(err("a//b"), PathError::EmptyComponent);
        assert_eq!(err("a/"), PathError::EmptyComponent);
        assert_eq!(err("."), PathError::CurrentDir);
        assert_eq!(err("a/./b"), PathError::CurrentDir);
        assert_eq!(err(".."), PathError::ParentDir);
        assert_eq!(err("a/../../b"), PathError::ParentDir);
        assert_eq!(err("a\0b"), PathError::Nul);
        assert_eq!(err("a\nb"), PathError::ControlCharacter(0x0a));
        assert_eq!(err("a\u{7f}"), PathError::ControlCharacter(0x7f));
        assert_eq!(err("a\u{85}"), PathError::ControlCharacter(0x85));
        assert_eq!(err(&"x".repeat(256)), PathError::ComponentTooLong);
        assert!(ArchivePath::new(&"x".repeat(255)).is_ok());
        assert_eq!(
            ArchivePath::from_bytes(b"caf\xe9").expect_err("latin-1"),
            PathError::NotUtf8
        );
    }

    #[test]
    fn structure_helpers() {
        let path = ArchivePath::new("a/b/c.txt").expect("valid");
        assert_eq!(path.depth(), 3);
        assert_eq!(path.parent().expect("parent").as_str(), "a/b");
        let ancestors: Vec<String> = path.ancestors().map(|a| a.as_str().to_owned()).collect();
        assert_eq!(ancestors, ["a", "a/b"]);
        assert_eq!(
            path.to_path_under(Path::new("/base")),
            Path::new("/base/a/b/c.txt")
        );
        assert!(ArchivePath::new("top").expect("valid").parent().is_none());
        assert_eq!(ArchivePath::new("Ä/B").expect("valid").folded(), "ä/b");
    }
}
