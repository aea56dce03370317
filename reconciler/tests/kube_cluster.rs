//! The test cluster itself: a real kube-apiserver backed by a real etcd answers, serves
//! Cilium's CRDs, stores objects and enforces its own validation. (The kube target's tests
//! build on this harness.)

#![allow(clippy::unwrap_used, reason = "tests")]

mod testcluster;

use testcluster::TestCluster;

#[test]
fn a_real_api_server_serves_ciliums_crds() {
    let Some(cluster) = TestCluster::start() else {
        return;
    };
    let crds = cluster.kubectl_ok(&["get", "crd", "-o", "name"]);
    for crd in [
        "ciliumnetworkpolicies.cilium.io",
        "ciliumclusterwidenetworkpolicies.cilium.io",
        "ciliumenvoyconfigs.cilium.io",
        "ciliumclusterwideenvoyconfigs.cilium.io",
        "wardsyncs.ward.dev",
    ] {
        assert!(crds.contains(crd), "{crd} missing from:\n{crds}");
    }
    let ns = cluster.namespace("smoke");
    // The repository's backend policy, in the test's namespace.
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../policies/namespaces/shop/backend-ingress.yaml"),
    )
    .unwrap();
    let text: String = text
        .lines()
        .filter(|l| l.trim() != "namespace: shop")
        .map(|l| format!("{l}\n"))
        .collect();
    let policy = std::env::temp_dir().join(format!("ward-policy-{}.yaml", std::process::id()));
    std::fs::write(&policy, text).unwrap();
    let applied = cluster.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        "ward",
        "-n",
        &ns,
        "-f",
        policy.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&policy);
    assert!(applied.contains("serverside-applied"), "{applied}");
    let got = cluster.kubectl_ok(&[
        "get",
        "cnp",
        "-n",
        &ns,
        "-o",
        "jsonpath={.items[*].metadata.managedFields[*].manager}",
    ]);
    assert!(
        got.split_whitespace().any(|m| m == "ward"),
        "field manager ward: {got}"
    );
    // The CRD's own schema is enforced by the server: a port that is not a string is refused.
    let bad = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: bad}\nspec:\n  endpointSelector: {}\n  ingress: [{toPorts: [{ports: [{port: 80}]}]}]\n";
    let file = std::env::temp_dir().join(format!("ward-bad-{}.yaml", std::process::id()));
    std::fs::write(&file, bad).unwrap();
    let out = cluster.kubectl(&["apply", "-n", &ns, "-f", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    assert!(!out.status.success(), "the server accepted an integer port");
}
