//! The deployment manifests (`reconciler/deploy/`) on a real API server: the namespace and
//! RBAC apply, the controller's Deployment and Service pass a server-side dry run, and the
//! controller runs with nothing but its ServiceAccount's token (least privilege that is still
//! enough), while that account cannot do what it does not need. Fails rather than skips in
//! must-run mode (`ward_testkit::must_run`) when the test cluster is missing.

#![allow(clippy::unwrap_used, reason = "tests")]

mod testcluster;
mod util;

use std::path::Path;
use testcluster::TestCluster;
use util::{EXIT_OK, Env};

fn deploy(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
        .display()
        .to_string()
}

#[test]
fn manifests_apply_and_the_service_account_is_enough_and_no_more() {
    let Some(cluster) = TestCluster::start() else {
        return;
    };
    cluster.kubectl_ok(&[
        "apply",
        "--server-side",
        "-f",
        &deploy("namespace.yaml"),
        "-f",
        &deploy("rbac.yaml"),
    ]);
    let dry = cluster.kubectl_ok(&[
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        &deploy("reconciler.yaml"),
    ]);
    assert!(
        dry.contains("deployment.apps/ward-reconciler serverside-applied (server dry run)"),
        "{dry}"
    );
    assert!(
        dry.contains("service/ward-reconciler serverside-applied (server dry run)"),
        "{dry}"
    );

    // A kubeconfig with the ServiceAccount's token only.
    let env = Env::new();
    let kc = cluster.service_account_kubeconfig(
        "ward-system",
        "ward-reconciler",
        &env.path().join("sa-kubeconfig"),
    );

    cluster.create_fixture_namespaces();
    let repo = env.fixture_repo();
    let run = env.ward(
        &repo.path,
        &[
            "reconcile",
            "--once",
            "--prune",
            "--identity",
            "sa-test",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig",
            kc.to_str().unwrap(),
        ],
    );
    run.code(EXIT_OK).stderr_lacks("WARN");
    let cnps = cluster.kubectl_ok(&["get", "cnp", "-n", "shop", "-o", "name"]);
    assert_eq!(cnps.lines().count(), 4, "{cnps}");
    let knps = cluster.kubectl_ok(&["get", "networkpolicy", "-n", "shop", "-o", "name"]);
    assert_eq!(knps.trim(), "networkpolicy.networking.k8s.io/admin-ingress");
    let groups = cluster.kubectl_ok(&["get", "ciliumcidrgroups", "-o", "name"]);
    assert_eq!(groups.trim(), "ciliumcidrgroup.cilium.io/office-networks");
    let ready = cluster.kubectl_ok(&[
        "get",
        "wardsync",
        "ward",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    assert_eq!(ready, "True");

    // And nothing more than that.
    let denied = [
        ("delete", "pods", "shop"),
        ("create", "namespaces", ""),
        ("get", "secrets", "kube-system"),
        ("create", "clusterroles", ""),
        ("patch", "deployments", "ward-system"),
    ];
    cluster.assert_cannot("ward-system", "ward-reconciler", &denied);
}
