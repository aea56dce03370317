//! kubectl against a test cluster's kubeconfig, shared by `testcluster` (the API server alone)
//! and `nodecluster` (the single-node cluster).

use std::path::Path;
use std::process::{Command, Output};

/// Runs kubectl with `kubeconfig`.
pub fn run(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl")
}

/// Runs kubectl with `kubeconfig` and panics unless it succeeds; its stdout.
pub fn ok(kubeconfig: &Path, args: &[&str]) -> String {
    let out = run(kubeconfig, args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
