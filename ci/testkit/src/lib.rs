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

pub mod capture;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

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

/// Whether this process runs as root (the owner of `/proc/self` is the effective user).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Why the network-namespace lab cannot run here (`None`: it can): it needs root and
/// iproute2's `ip` and `tc`.
pub fn lab_missing() -> Option<String> {
    if !is_root() {
        return Some("not root: the lab needs CAP_NET_ADMIN and CAP_SYS_ADMIN".into());
    }
    for tool in ["ip", "tc"] {
        match Command::new(tool).arg("-V").output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return Some(format!(
                    "`{tool} -V` failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
            Err(e) => {
                return Some(format!(
                    "iproute2's `{tool}` cannot be run ({e}): apt-get install iproute2"
                ));
            }
        }
    }
    None
}

/// Why BPF programs cannot run in the lab here: [`lab_missing`], or no bpf filesystem mounted
/// at `/sys/fs/bpf`.
pub fn bpf_missing() -> Option<String> {
    lab_missing().or_else(|| {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let bpffs = mounts.lines().any(|l| {
            let mut f = l.split_whitespace().skip(1);
            f.next() == Some("/sys/fs/bpf") && f.next() == Some("bpf")
        });
        (!bpffs)
            .then(|| "bpffs is not mounted at /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)".into())
    })
}

/// The Cilium releases `ci/crds/releases` pins, oldest first: (minor version, release), such
/// as `("1.19", "v1.19.7")`.
pub fn cilium_releases() -> Vec<(String, String)> {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/releases");
    let text =
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    let releases: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut w = l.split_whitespace().map(str::to_owned);
            let minor = w.next().expect("a minor version");
            (minor, w.next().expect("a release after the minor version"))
        })
        .collect();
    assert!(!releases.is_empty(), "ci/crds/releases pins no release");
    releases
}

/// The newest Cilium minor version `ci/crds/releases` pins (its last line): ward's default
/// `--cilium-version`, whose CRDs the test cluster installs.
pub fn newest_cilium_minor() -> String {
    cilium_releases()
        .pop()
        .map(|(minor, _)| minor)
        .expect("a release")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing_runs() {
        assert!(can_run("t", None));
    }
}
