//! The config reference (`docs/config.md`) must name every key of every config file: a test
//! per config struct calls [`assert_documented`], which fails as soon as a struct gains a field
//! the reference lacks.
//!
//! The fields are read from serde itself: every config struct denies unknown fields, and
//! deserialising a table with one unknown key fails with "unknown field `…`, expected one of
//! `a`, `b`, …", which lists them all. So a new field needs no registration anywhere but the
//! reference.

use std::path::Path;

/// The field names of the config struct `T` (which must `deny_unknown_fields`).
pub fn fields_of<T: serde::de::DeserializeOwned>() -> Vec<String> {
    let err = match toml::from_str::<T>("zz_not_a_field = 1") {
        Ok(_) => panic!("the struct accepted an unknown field: it must deny_unknown_fields"),
        Err(e) => e.to_string(),
    };
    let expected = err
        .split("expected ")
        .nth(1)
        .unwrap_or_else(|| panic!("no field list in: {err}"));
    let fields: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!fields.is_empty(), "no field list in: {err}");
    fields
}

/// The reference's text.
pub fn reference() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Asserts that the section of `docs/config.md` headed `### <file> <section>` (for example
/// `### continuum.toml [site]`) has a table row `` | `key` | `` for every field of `T`.
pub fn assert_documented<T: serde::de::DeserializeOwned>(file: &str, section: &str) {
    let doc = reference();
    let heading = format!("### {file} {section}");
    let start = doc
        .find(&heading)
        .unwrap_or_else(|| panic!("docs/config.md has no heading {heading:?}"));
    let body = &doc[start + heading.len()..];
    let body = &body[..body.find("\n### ").unwrap_or(body.len())];
    let missing: Vec<String> = fields_of::<T>()
        .into_iter()
        .filter(|f| !body.contains(&format!("| `{f}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/config.md, {heading}: no row for {missing:?}; document every key with its default"
    );
}
