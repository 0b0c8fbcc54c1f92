//! Hooks for a CMS: programs continuum runs after an install (`post_install`), after
//! `continuum rollback` (`post_rollback`) and after a failed `update` (`on_failure`), configured
//! under `[hooks]` (site-wide) or in a `[[package]]` (that package only).
//!
//! A hook is an argv array, never a shell string: the first element is the program's absolute
//! path (checked when the config is loaded), the rest its arguments, passed as they are. It
//! runs with a cleared environment, so nothing of continuum's own environment (a proxy
//! password, `RUST_LOG`, …) reaches it, plus `PATH=/usr/local/bin:/usr/bin:/bin` and:
//!
//! | variable | value |
//! |---|---|
//! | `CONTINUUM_EVENT` | `post_install`, `post_rollback` or `on_failure` |
//! | `CONTINUUM_SITE` | the site folder (absolute) |
//! | `CONTINUUM_PACKAGE` | `supplier/package` (empty for a failure of the whole run) |
//! | `CONTINUUM_VERSION` | the version now installed (`on_failure`: the one that failed) |
//! | `CONTINUUM_PREVIOUS_VERSION` | the version before (empty if none) |
//! | `CONTINUUM_INSTALL_DIR` | where the CMS finds the package: its `install_dir`, else `<site>/packages/<supplier>/<package>/current` |
//! | `CONTINUUM_ERROR` | `on_failure` only: the failure, one line (at most 4000 characters) |
//! | `CONTINUUM_EXIT_CODE` | `on_failure` only: the run's exit code (3, 4 or 5) |
//!
//! Its working folder is the site folder, its standard input is empty, and its standard output
//! and error go to continuum's standard error (so they reach `cron.out` or the journal, never
//! the `--json` object on standard output, nor the status file). A hook that runs longer than
//! `hook_timeout_secs` (default 60) is killed (`SIGKILL`; only the hook process itself: a hook
//! that starts its own children should `exec` the last one).
//!
//! What a hook does not do: it never changes what continuum did. A failing hook (non-zero
//! exit, killed, not startable) is reported in the run's notes, on standard error, in
//! `continuum.log` and in the status file (`hook_failed`), and the verified install or the
//! rollback stays. It does not change the exit code either (decision 56 in docs/decisions.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{Config, DEFAULT_HOOK_TIMEOUT_SECS, PackageConfig};

/// Longest `CONTINUUM_ERROR` passed to a hook, in characters.
const MAX_ERROR_CHARS: usize = 4000;

/// The `PATH` a hook gets: enough for the programs a hook script calls, nothing of the caller's.
const HOOK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookEvent {
    /// After a package was installed (the new version is current).
    PostInstall,
    /// After `continuum rollback` (the previous version is current).
    PostRollback,
    /// After an `update` that failed with exit 3, 4 or 5.
    OnFailure,
}

impl HookEvent {
    /// The name used in the config, in `CONTINUUM_EVENT` and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::PostInstall => "post_install",
            HookEvent::PostRollback => "post_rollback",
            HookEvent::OnFailure => "on_failure",
        }
    }

    /// The hook configured for this event: `package`'s own if it has one, else the site's.
    pub fn argv<'a>(
        self,
        config: &'a Config,
        package: Option<&'a PackageConfig>,
    ) -> Option<&'a [String]> {
        let own = package.and_then(|p| match self {
            HookEvent::PostInstall => p.post_install.as_deref(),
            HookEvent::PostRollback => p.post_rollback.as_deref(),
            HookEvent::OnFailure => p.on_failure.as_deref(),
        });
        own.or(match self {
            HookEvent::PostInstall => config.hooks.post_install.as_deref(),
            HookEvent::PostRollback => config.hooks.post_rollback.as_deref(),
            HookEvent::OnFailure => config.hooks.on_failure.as_deref(),
        })
    }
}

/// What a hook is told about the event (its `CONTINUUM_*` environment).
#[derive(Debug, Clone, Default)]
pub struct HookContext {
    /// The site folder.
    pub site: PathBuf,
    /// `supplier/package`, if the event is about one package.
    pub package: Option<String>,
    /// The version installed now (or, for `on_failure`, the one that failed).
    pub version: Option<String>,
    /// The version before.
    pub previous: Option<String>,
    /// Where the CMS finds the package.
    pub install_dir: Option<PathBuf>,
    /// `on_failure`: the failure.
    pub error: Option<String>,
    /// `on_failure`: the run's exit code.
    pub exit_code: Option<u8>,
}

/// How a hook ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookOutcome {
    /// It exited with status 0.
    Ok,
    /// It exited with another status, or was killed by a signal it did not get from us.
    Failed,
    /// It ran longer than `hook_timeout_secs` and was killed.
    TimedOut,
    /// It could not be started (missing, not executable).
    NotStarted,
}

/// One hook run, as the run report and the status file show it. Names only the program (the
/// first argv element): arguments may carry tokens, and the status file is world-readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookReport {
    /// `post_install`, `post_rollback` or `on_failure`.
    pub event: HookEvent,
    /// `supplier/package`, if the event is about one package.
    pub package: Option<String>,
    /// The program run.
    pub program: String,
    /// How it ended.
    pub outcome: HookOutcome,
    /// Its exit status, if it exited.
    pub exit_code: Option<i32>,
    /// One line for people.
    pub detail: String,
}

impl HookReport {
    /// True unless the hook exited with status 0.
    pub fn failed(&self) -> bool {
        self.outcome != HookOutcome::Ok
    }

    /// The note for the run report: `hook post_install for acme/hello: …`.
    pub fn note(&self) -> String {
        let about = self
            .package
            .as_deref()
            .map(|p| format!(" for {p}"))
            .unwrap_or_default();
        if self.failed() {
            format!(
                "HOOK FAILED: {}{about} ({}): {}; what continuum did stays done",
                self.event.as_str(),
                self.program,
                self.detail
            )
        } else {
            format!(
                "hook {}{about} ({}): {}",
                self.event.as_str(),
                self.program,
                self.detail
            )
        }
    }
}

/// The timeout of every hook of `config`.
pub fn timeout(config: &Config) -> Duration {
    Duration::from_secs(
        config
            .hooks
            .hook_timeout_secs
            .unwrap_or(DEFAULT_HOOK_TIMEOUT_SECS),
    )
}

/// Runs the hook `argv` for `event` with `ctx` in its environment, waits at most `timeout`
/// (then kills it), and says how it ended. Never panics and never fails: a hook that cannot
/// even start is a [`HookOutcome::NotStarted`] report. Logs a failure on standard error.
pub fn run(argv: &[String], event: HookEvent, ctx: &HookContext, timeout: Duration) -> HookReport {
    let program = argv.first().cloned().unwrap_or_default();
    let mut report = HookReport {
        event,
        package: ctx.package.clone(),
        program: program.clone(),
        outcome: HookOutcome::NotStarted,
        exit_code: None,
        detail: String::new(),
    };
    let mut cmd = Command::new(&program);
    cmd.args(argv.iter().skip(1))
        .env_clear()
        .env("PATH", HOOK_PATH)
        .env("CONTINUUM_EVENT", event.as_str())
        .env("CONTINUUM_SITE", &ctx.site)
        .env("CONTINUUM_PACKAGE", ctx.package.as_deref().unwrap_or(""))
        .env("CONTINUUM_VERSION", ctx.version.as_deref().unwrap_or(""))
        .env(
            "CONTINUUM_PREVIOUS_VERSION",
            ctx.previous.as_deref().unwrap_or(""),
        )
        .env(
            "CONTINUUM_INSTALL_DIR",
            ctx.install_dir.as_deref().unwrap_or(Path::new("")),
        )
        .current_dir(&ctx.site)
        .stdin(Stdio::null());
    if let Some(e) = &ctx.error {
        // NUL cannot be passed in the environment; a line break would split log lines.
        let one_line: String = e
            .chars()
            .filter(|c| *c != '\0')
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_ERROR_CHARS)
            .collect();
        cmd.env("CONTINUUM_ERROR", one_line);
    }
    if let Some(code) = ctx.exit_code {
        cmd.env("CONTINUUM_EXIT_CODE", code.to_string());
    }
    // The hook's output goes to our stderr: never into the `--json` object on stdout.
    cmd.stdout(stderr_for_child()).stderr(Stdio::inherit());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            report.detail = format!("could not start {program}: {e}");
            tracing::error!("{}", report.note());
            return report;
        }
    };
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= timeout => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                report.outcome = HookOutcome::Failed;
                report.detail = format!("could not wait for it: {e}");
                let _ = child.kill();
                let _ = child.wait();
                tracing::error!("{}", report.note());
                return report;
            }
        }
    };
    match status {
        None => {
            let _ = child.kill();
            let _ = child.wait();
            report.outcome = HookOutcome::TimedOut;
            report.detail = format!(
                "still running after {} s (hook_timeout_secs), killed",
                timeout.as_secs()
            );
        }
        Some(status) if status.success() => {
            report.outcome = HookOutcome::Ok;
            report.exit_code = Some(0);
            report.detail = "exited with status 0".into();
        }
        Some(status) => {
            report.outcome = HookOutcome::Failed;
            report.exit_code = status.code();
            report.detail = match status.code() {
                Some(c) => format!("exited with status {c}"),
                None => format!("ended by a signal ({status})"),
            };
        }
    }
    if report.failed() {
        tracing::error!("{}", report.note());
    }
    report
}

/// A handle on our standard error for the child's standard output; `null` if it cannot be
/// duplicated (then the hook's output is lost, not mixed into standard output).
fn stderr_for_child() -> Stdio {
    use std::os::fd::AsFd;
    match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => Stdio::from(fd),
        Err(_) => Stdio::null(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> HookContext {
        HookContext {
            site: std::env::temp_dir(),
            package: Some("acme/hello".into()),
            ..Default::default()
        }
    }

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn outcomes() {
        let t = Duration::from_secs(30);
        let ok = run(&argv(&["/bin/true"]), HookEvent::PostInstall, &ctx(), t);
        assert_eq!(ok.outcome, HookOutcome::Ok, "{ok:?}");
        let failed = run(&argv(&["/bin/false"]), HookEvent::PostInstall, &ctx(), t);
        assert_eq!(
            (failed.outcome, failed.exit_code),
            (HookOutcome::Failed, Some(1))
        );
        assert!(
            failed
                .note()
                .starts_with("HOOK FAILED: post_install for acme/hello")
        );
        let missing = run(
            &argv(&["/nonexistent/hook"]),
            HookEvent::OnFailure,
            &ctx(),
            t,
        );
        assert_eq!(missing.outcome, HookOutcome::NotStarted);
        assert!(missing.detail.contains("/nonexistent/hook"), "{missing:?}");
    }

    #[test]
    fn a_hung_hook_is_killed_after_its_timeout() {
        let started = Instant::now();
        let r = run(
            &argv(&["/bin/sleep", "600"]),
            HookEvent::PostInstall,
            &ctx(),
            Duration::from_secs(1),
        );
        assert_eq!(r.outcome, HookOutcome::TimedOut);
        // Far below the 600 s the hook wanted.
        assert!(started.elapsed() < Duration::from_secs(60));
    }
}
