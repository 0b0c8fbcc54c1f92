//! Plain words for people or JSON for scripts, and the one way barge and hangar end: a parse
//! of the command line that reports its own errors like every other error, and [`fail`], which
//! prints an error as a sentence on stderr and, with `--json`, as one object on stdout (the
//! shape channel-server and continuum use too).

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::ErrorKind;

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

    /// In JSON mode, queues `value` as the command's JSON line on stdout: printed when the
    /// program ends ([`finish`] or [`fail`]), so that a command that reports a result and then
    /// fails (a signature that does not verify, a build not reproduced) prints one object
    /// holding both the result and `"error"`. A second call prints the first value at once.
    pub fn json(&self, value: serde_json::Value) {
        if self.json {
            let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(previous) = pending.replace(value) {
                println!("{previous}");
            }
        }
    }
}

/// The JSON value a command reported last and that is not printed yet (see [`Output::json`]).
static PENDING: std::sync::Mutex<Option<serde_json::Value>> = std::sync::Mutex::new(None);

fn take_pending() -> Option<serde_json::Value> {
    PENDING.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// Ends a command that worked: prints the JSON value it reported, if any. Returns exit 0.
pub fn finish() -> ExitCode {
    if let Some(v) = take_pending() {
        println!("{v}");
    }
    ExitCode::SUCCESS
}

/// Prints a loud warning banner on stderr.
pub fn warn_loudly(text: &str) {
    eprintln!("************************************************************************");
    eprintln!("WARNING: {text}");
    eprintln!("************************************************************************");
}

/// Whether stderr may carry ANSI colour or cursor codes (a spinner, a redrawn progress line):
/// only on a terminal, and never when `NO_COLOR` is set to anything non-empty
/// (<https://no-color.org>). Logs, pipes and CI get plain text. The same rule as
/// channel-server's `colour_on_stderr`.
pub fn colour_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The `--json` error object: `{"error":{"kind":K,"message":M,"exit_code":N}}`.
pub fn error_object(kind: ErrorKind, message: &str) -> serde_json::Value {
    serde_json::json!({
        "error": {"kind": kind.as_str(), "message": message, "exit_code": kind.exit_code()}
    })
}

/// Reports a failed command and returns its exit code: `TOOL: error: MESSAGE` (the error and
/// all its causes, [`crate::report`]) on stderr, and with `json` also [`error_object`] as one
/// line on stdout, so a script reads one JSON value whether the command worked or not. When
/// the command had reported a JSON object (e.g. `{"valid":false,…}`), the `"error"` member is
/// added to that object instead of printing a second line.
pub fn fail(tool: &str, json: bool, kind: ErrorKind, e: &dyn std::error::Error) -> ExitCode {
    let message = crate::report(e);
    eprintln!("{tool}: error: {message}");
    if json {
        let mut error = error_object(kind, &message);
        match take_pending() {
            Some(serde_json::Value::Object(mut result)) => {
                result.insert("error".to_owned(), error["error"].take());
                println!("{}", serde_json::Value::Object(result));
            }
            Some(other) => {
                println!("{other}");
                println!("{error}");
            }
            None => println!("{error}"),
        }
    }
    ExitCode::from(kind.exit_code())
}

/// Gives `cmd` and every subcommand under it an `--help` that ends with an example and the
/// exit codes: `examples` maps a subcommand's path (`""` for the program itself, `"key new"`)
/// to one example command line. A subcommand without an example gets the exit codes only (a
/// test per binary walks the tree and fails on that).
pub fn document(
    cmd: clap::Command,
    examples: &[(&str, &str)],
    exit_codes: &'static str,
) -> clap::Command {
    document_at(cmd, "", examples, exit_codes)
}

fn document_at(
    mut cmd: clap::Command,
    path: &str,
    examples: &[(&str, &str)],
    exit_codes: &'static str,
) -> clap::Command {
    let help = match examples.iter().find(|(p, _)| *p == path) {
        Some((_, example)) => format!("Example:\n  {example}\n\n{exit_codes}"),
        None => exit_codes.to_owned(),
    };
    cmd = cmd.after_help(help);
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        let sub = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        cmd = cmd.mut_subcommand(&name, |c| document_at(c, &sub, examples, exit_codes));
    }
    cmd
}

/// Parses the command line with `cmd` (the program's definition, e.g. after [`document`])
/// into `C`. `--help` and `--version` print and exit 0 as usual; a malformed command line is a
/// usage error (exit 2): clap's message on stderr, and when `--json` is among the arguments,
/// also the error object on stdout.
pub fn parse_args<C: clap::FromArgMatches>(cmd: clap::Command) -> Result<C, ExitCode> {
    let tool = cmd.get_name().to_owned();
    let parsed = cmd.try_get_matches().and_then(|m| C::from_arg_matches(&m));
    match parsed {
        Ok(c) => Ok(c),
        Err(e) => {
            use clap::error::ErrorKind as Clap;
            if matches!(
                e.kind(),
                Clap::DisplayHelp
                    | Clap::DisplayVersion
                    | Clap::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            // clap's plain rendering (no escape codes), told like every other error:
            // `TOOL: error: WHAT`, then clap's tip and usage lines.
            let text = e.render().to_string();
            let mut lines = text.lines();
            let first = lines
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_owned();
            eprintln!("{tool}: error: {first}");
            for line in lines {
                eprintln!("{line}");
            }
            if std::env::args_os().any(|a| a == "--json") {
                println!("{}", error_object(ErrorKind::Usage, &first));
            }
            Err(ExitCode::from(ErrorKind::Usage.exit_code()))
        }
    }
}
