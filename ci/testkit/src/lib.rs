//! Test support shared by ward's crates (a dev-dependency only).
//!
//! # Skipping
//! Some tests need root, bpffs, iproute2 or the test cluster's binaries. When one of those is
//! missing a test may skip, but never silently:
//!
//! - [`skip`] writes `SKIPPED: <test>: <reason>` straight to the standard-error descriptor
//!   (libtest captures `eprintln!` of passing tests, so that would be invisible) and appends
//!   the same line to the file named by `WARD_SKIP_LOG`, which `ci/test.sh` counts into its
//!   closing `N passed, N failed, N skipped` line.
//! - In must-run mode ([`must_run`]) a skip is a failure: the test panics with the reason.
//!   `ci/test.sh` sets that mode itself whenever it could install everything the tests need
//!   (as root), so the README's test command never passes on a test that did not run.

use std::io::Write;

/// The variable that turns on must-run mode (`1`); `CI=true` does too.
pub const MUST_RUN_VAR: &str = "WARD_TESTS_MUST_RUN";
/// The file [`skip`] appends its line to, when set.
pub const SKIP_LOG_VAR: &str = "WARD_SKIP_LOG";

/// Whether every test must run: `WARD_TESTS_MUST_RUN=1` or `CI=true`.
pub fn must_run() -> bool {
    std::env::var(MUST_RUN_VAR).is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Reports that `test` cannot run here because of `reason` (say what to install or do).
///
/// # Panics
/// In must-run mode, always: a test that was required to run could not.
pub fn skip(test: &str, reason: &str) {
    assert!(
        !must_run(),
        "{test}: {reason} (must-run mode, {MUST_RUN_VAR}=1 or CI=true: this test may not skip)"
    );
    let line = format!("SKIPPED: {test}: {reason}\n");
    // Straight to the descriptor, past libtest's capture of `eprint!`.
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(log) = std::env::var_os(SKIP_LOG_VAR) {
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            let _ = writeln!(
                std::io::stderr(),
                "(could not append to {SKIP_LOG_VAR} {}: {e})",
                log.to_string_lossy()
            );
        }
    }
}

/// Runs `test`'s prerequisite check: `None` (it can run) is `true`; a reason is reported by
/// [`skip`] and gives `false`.
pub fn can_run(test: &str, reason: Option<&str>) -> bool {
    match reason {
        None => true,
        Some(r) => {
            skip(test, r);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing_runs() {
        assert!(can_run("t", None));
    }
}
