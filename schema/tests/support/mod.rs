//! Shared by the schema crate's integration tests: where Cilium's own CRDs are.
#![allow(dead_code)]

use std::path::PathBuf;

/// The environment variable naming the directory `ci/crds/fetch.sh` prints.
pub const CRDS_ENV: &str = "WARD_CILIUM_CRDS";

/// Skips `test` loudly, or fails in must-run mode: the one rule of `ward_testkit`.
pub use ward_testkit::skip;

/// The directory `ci/crds/fetch.sh` writes, one folder of CRDs per pinned Cilium release,
/// named by `WARD_CILIUM_CRDS`. `None` (after [`skip`]) when that is not set; a panic when it
/// holds no folder of CRDs, since that is a broken setup rather than a missing one.
pub fn cilium_crd_root(test: &str) -> Option<PathBuf> {
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
    let newest = dir.join(newest_minor());
    let has_yaml = std::fs::read_dir(&newest)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        })
        .unwrap_or(false);
    assert!(
        has_yaml,
        "{} holds no *.yaml CRDs; run ci/crds/fetch.sh and export what it prints as {CRDS_ENV}",
        newest.display()
    );
    Some(dir)
}

/// The CRDs of the newest pinned Cilium release, as `ci/crds/fetch.sh` wrote them.
pub fn cilium_crds(test: &str) -> Option<PathBuf> {
    cilium_crd_root(test).map(|root| root.join(newest_minor()))
}

/// The newest minor version `ci/crds/releases` pins (its last line).
pub use ward_testkit::newest_cilium_minor as newest_minor;

pub mod invariants;
