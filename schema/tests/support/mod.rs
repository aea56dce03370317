//! Shared by the schema crate's integration tests: where Cilium's own CRDs are.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

/// The environment variable naming the directory `ci/crds/fetch.sh` prints.
pub const CRDS_ENV: &str = "WARD_CILIUM_CRDS";

/// Whether a test that cannot run must fail instead of skipping (`WARD_REQUIRE_ALL=1` or
/// `CI=true`).
pub fn must_run() -> bool {
    std::env::var("WARD_REQUIRE_ALL").as_deref() == Ok("1")
        || std::env::var("CI").as_deref() == Ok("true")
}

/// Skips `test` loudly, or panics when every test must run.
pub fn skip(test: &str, reason: &str) {
    if must_run() {
        panic!("{test}: {reason} (WARD_REQUIRE_ALL=1 or CI=true: this test must run, not skip)");
    }
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing tests.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {reason}");
}

/// The CRDs of the pinned Cilium release, as written by `ci/crds/fetch.sh` into the directory
/// named by `WARD_CILIUM_CRDS`. `None` (after [`skip`]) when that is not set; a panic when it
/// names no directory of CRDs, since that is a broken setup rather than a missing one.
pub fn cilium_crds(test: &str) -> Option<PathBuf> {
    let Some(dir) = std::env::var_os(CRDS_ENV).filter(|d| !d.is_empty()) else {
        skip(
            test,
            &format!(
                "{CRDS_ENV} is not set; run `export {CRDS_ENV}=$(ci/crds/fetch.sh)` (needs Go) and test again"
            ),
        );
        return None;
    };
    let dir = PathBuf::from(dir);
    let has_yaml = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        })
        .unwrap_or(false);
    assert!(
        has_yaml,
        "{CRDS_ENV}={} holds no *.yaml CRDs; run ci/crds/fetch.sh and export what it prints",
        dir.display()
    );
    Some(dir)
}
