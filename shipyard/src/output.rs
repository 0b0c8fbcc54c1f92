//! Plain words for people or JSON for scripts.

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// True for `--json`.
    pub json: bool,
}

impl Output {
    /// Prints `text` unless in JSON mode.
    pub fn say(&self, text: impl AsRef<str>) {
        if !self.json {
            println!("{}", text.as_ref());
        }
    }

    /// Prints a step of a longer command (stderr in JSON mode, so stdout stays one JSON value).
    pub fn step(&self, text: impl AsRef<str>) {
        if self.json {
            eprintln!("{}", text.as_ref());
        } else {
            println!("{}", text.as_ref());
        }
    }

    /// Prints `value` as one JSON line if in JSON mode.
    pub fn json(&self, value: serde_json::Value) {
        if self.json {
            println!("{value}");
        }
    }
}

/// Prints a loud warning banner on stderr.
pub fn warn_loudly(text: &str) {
    eprintln!("************************************************************************");
    eprintln!("WARNING: {text}");
    eprintln!("************************************************************************");
}
