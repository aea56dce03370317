//! The kube target at cluster sizes, against a real kube-apiserver and etcd: applies run kind
//! by kind with `--concurrency` requests in flight; every object the API server refuses is
//! reported, and no later kind is started; the API server killed halfway through a first
//! apply of 10,000 objects leaves an inventory that lists every object that reached the
//! cluster, and the next apply completes it. Fails rather than skips in must-run mode
//! (`ward_testkit::must_run`) when the test cluster is missing.

#![allow(clippy::unwrap_used, reason = "tests")]

mod testcluster;
mod util;

use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};
use testcluster::TestCluster;
use util::{EXIT_ERROR, EXIT_OK, Env, Repo, cnp};

/// Runs `ward` against the cluster.
fn ward(repo: &Repo, cluster: &TestCluster, args: &[&str]) -> util::Run {
    repo.ward_on(&cluster.kubeconfig, args)
}

/// The WardSync `ward`'s status.
fn sync_status(cluster: &TestCluster) -> Value {
    let out = cluster.kubectl_ok(&["get", "wardsync", "ward", "-o", "json"]);
    serde_json::from_str::<Value>(&out).unwrap()["status"].clone()
}

/// The inventory's ids, and whether every write in it is confirmed (has a marker).
fn inventory(cluster: &TestCluster) -> (BTreeSet<String>, bool) {
    let st = sync_status(cluster);
    let entries = st["inventory"].as_array().cloned().unwrap_or_default();
    let confirmed = entries
        .iter()
        .all(|e| !e["seen"].as_str().unwrap_or("").is_empty());
    let ids = entries
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    (ids, confirmed)
}

/// Every CiliumNetworkPolicy in the cluster, as inventory ids.
fn live_cnps(cluster: &TestCluster) -> BTreeSet<String> {
    let out = cluster.kubectl_ok(&[
        "get",
        "cnp",
        "-A",
        "--chunk-size=2000",
        "-o",
        "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}",
    ]);
    out.lines()
        .map(|l| format!("CiliumNetworkPolicy/{l}"))
        .collect()
}

/// How many CiliumNetworkPolicies exist, from one page of one item (cheap while an apply
/// runs).
fn cnp_count(cluster: &TestCluster) -> Option<u64> {
    let out = cluster.kubectl(&[
        "get",
        "--raw",
        "/apis/cilium.io/v2/ciliumnetworkpolicies?limit=1",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    let items = v["items"].as_array()?.len() as u64;
    Some(items + v["metadata"]["remainingItemCount"].as_u64().unwrap_or(0))
}

/// A ValidatingAdmissionPolicy that refuses, except in dry runs, every
/// CiliumClusterwideNetworkPolicy whose name starts with `refused-`: ward's plan (dry runs)
/// passes, its apply is refused object by object, as a webhook that checks something at write
/// time would.
const REFUSE_AT_WRITE: &str = r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: refuse-at-write}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [cilium.io]
      apiVersions: ["*"]
      operations: [CREATE, UPDATE]
      resources: [ciliumclusterwidenetworkpolicies]
  validations:
  - expression: "request.dryRun || !object.metadata.name.startsWith('refused-')"
    message: refused by the test's admission policy
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: refuse-at-write}
spec:
  policyName: refuse-at-write
  validationActions: [Deny]
"#;

fn ccnp(name: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata:\n  name: {name}\nspec:\n  endpointSelector:\n    matchLabels: {{app: {name}}}\n  ingress:\n  - {{}}\n"
    )
}

/// Waits until the admission policy is in force (policies take effect asynchronously): a
/// server-side create of a `refused-` object is refused.
fn wait_for_policy(cluster: &TestCluster, env: &Env) {
    let probe = env.path().join("probe.yaml");
    std::fs::write(&probe, ccnp("refused-probe")).unwrap();
    let start = Instant::now();
    loop {
        let out = cluster.kubectl(&["create", "-f", probe.to_str().unwrap()]);
        if !out.status.success() {
            return;
        }
        cluster.kubectl_ok(&["delete", "ccnp", "refused-probe"]);
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the admission policy did not take effect"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn refusals_are_reported_per_object_and_stop_before_the_next_kind() {
    let Some(cluster) = TestCluster::start() else {
        return;
    };
    let env = Env::new();
    let policy = env.path().join("policy.yaml");
    std::fs::write(&policy, REFUSE_AT_WRITE).unwrap();
    cluster.kubectl_ok(&["apply", "-f", policy.to_str().unwrap()]);
    wait_for_policy(&cluster, &env);
    cluster.kubectl_ok(&["create", "namespace", "scale"]);

    let mut repo = env.repo("repo");
    let cluster_wide: Vec<String> = (0..40)
        .map(|i| ccnp(&format!("ok-{i:02}")))
        .chain(["refused-a", "refused-b"].map(ccnp))
        .collect();
    repo.write("policies/cluster.yaml", cluster_wide.join("---\n"));
    let namespaced: Vec<String> = (0..20)
        .map(|i| cnp("scale", &format!("p{i:02}"), 80))
        .collect();
    repo.write("policies/scale.yaml", namespaced.join("---\n"));
    repo.commit("42 cluster-wide, 20 namespaced");

    let run = ward(&repo, &cluster, &["apply", "--concurrency", "4"]);
    run.code(EXIT_ERROR)
        .stderr_has("the API server refused 2 object(s)")
        .stderr_has("CiliumClusterwideNetworkPolicy/refused-a (policies/cluster.yaml:")
        .stderr_has("CiliumClusterwideNetworkPolicy/refused-b (policies/cluster.yaml:")
        .stderr_has("refused by the test's admission policy")
        .stderr_has("20 change(s) not sent or not answered")
        .stderr_has("the inventory lists every object it may have written; run it again");
    let ccnps = cluster.kubectl_ok(&["get", "ccnp", "-o", "name"]);
    assert_eq!(ccnps.lines().count(), 40, "the rest of the wave went on");
    assert!(
        live_cnps(&cluster).is_empty(),
        "no namespaced object was sent after a refusal"
    );
    let (ids, confirmed) = inventory(&cluster);
    assert_eq!(ids.len(), 62, "everything the apply might create is listed");
    assert!(!confirmed, "the unsent objects stay unconfirmed");
    assert_eq!(sync_status(&cluster)["lastAppliedRevision"], Value::Null);

    // The policy goes; the same revision applies whole.
    cluster.kubectl_ok(&["delete", "-f", policy.to_str().unwrap()]);
    let start = Instant::now();
    while ward(
        &repo,
        &cluster,
        &["apply", "--rev", "main", "--concurrency", "1"],
    )
    .code
        != Some(EXIT_OK)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the apply kept failing after the policy was removed"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(live_cnps(&cluster).len(), 20);
    let (ids, confirmed) = inventory(&cluster);
    assert_eq!(ids.len(), 62);
    assert!(confirmed);
    assert_eq!(
        sync_status(&cluster)["lastAppliedRevision"],
        Value::String(repo.head())
    );
}

/// Objects of the interrupted apply (10,000 unless `WARD_KUBE_SCALE_OBJECTS` says otherwise).
fn objects() -> usize {
    std::env::var("WARD_KUBE_SCALE_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

#[test]
fn the_api_server_killed_halfway_through_a_first_apply_orphans_nothing() {
    let Some(mut cluster) = TestCluster::start() else {
        return;
    };
    let env = Env::new();
    let mut repo = env.repo("repo");
    const NAMESPACES: usize = 10;
    let total = objects();
    for n in 0..NAMESPACES {
        cluster.kubectl_ok(&["create", "namespace", &format!("scale-{n}")]);
        let docs: Vec<String> = (n..total)
            .step_by(NAMESPACES)
            .map(|i| cnp(&format!("scale-{n}"), &format!("p{i:05}"), 80))
            .collect();
        repo.write(&format!("policies/scale-{n}.yaml"), docs.join("---\n"));
    }
    repo.commit("many policies");

    let kc = cluster.kubeconfig.display().to_string();
    let stderr = env.path().join("apply.stderr");
    let mut apply = env
        .runner()
        .command(&repo.path, &["apply", "--kubeconfig", &kc])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    // Halfway: a third of the objects written (the plan's dry runs come first).
    let start = Instant::now();
    loop {
        if cnp_count(&cluster).unwrap_or(0) >= (total / 3) as u64 {
            break;
        }
        assert!(
            apply.try_wait().unwrap().is_none(),
            "the apply ended before it was interrupted: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
        assert!(start.elapsed() < Duration::from_secs(300), "no progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.kill_apiserver();
    let status = apply.wait().unwrap();
    let err = std::fs::read_to_string(&stderr).unwrap();
    assert_eq!(status.code(), Some(EXIT_ERROR), "{err}");
    assert!(err.contains("the API server stopped answering"), "{err}");
    assert!(err.contains("run it again"), "{err}");

    cluster.restart_apiserver();
    let live = live_cnps(&cluster);
    let (ids, _) = inventory(&cluster);
    assert!(
        live.len() >= total / 3 && live.len() < total,
        "interrupted halfway: {} of {total} written",
        live.len()
    );
    let orphans: Vec<&String> = live.difference(&ids).take(5).collect();
    assert!(
        orphans.is_empty(),
        "objects written but not in the inventory: {orphans:?}"
    );
    assert_eq!(
        ids.len(),
        total,
        "the whole apply was listed before it began"
    );

    ward(&repo, &cluster, &["apply"]).code(EXIT_OK);
    let (ids, confirmed) = inventory(&cluster);
    assert_eq!(live_cnps(&cluster), ids);
    assert_eq!(ids.len(), total);
    assert!(confirmed, "every write confirmed");
    ward(&repo, &cluster, &["plan", "--detailed-exitcode"])
        .code(EXIT_OK)
        .stdout_has(&format!(
            "0 to create, 0 to change, 0 to prune, 0 drifted, {total} unchanged"
        ));
}
