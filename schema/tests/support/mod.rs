//! Shared by the schema crate's integration tests: where Cilium's own CRDs are.
#![allow(dead_code)]

use std::path::PathBuf;

/// The environment variable naming the directory `ci/crds/fetch.sh` prints.
pub const CRDS_ENV: &str = "WARD_CILIUM_CRDS";

/// Skips `test` loudly, or fails in must-run mode: the one rule of `ward_testkit`.
pub use ward_testkit::skip;

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

pub mod invariants;
