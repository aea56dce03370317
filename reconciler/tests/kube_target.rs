//! `ward plan`, `apply`, `diff` (without --base) and `status` against a real kube-apiserver (with etcd) started by the
//! test harness: server-side apply as field manager `ward`, dry-run plans, the inventory in a
//! WardSync, drift, conflicts with another field manager, prune and its guards, missing
//! namespaces, health from `status.conditions[type=Valid]`, saved plans (`plan --out`,
//! `apply FILE`) and impersonation (`--as`, `--as-group`). Fails rather than skips in
//! must-run mode (`ward_testkit::must_run`) when the test cluster is missing.

#![allow(clippy::unwrap_used, reason = "tests")]

mod testcluster;
mod util;

use serde_json::Value;
use testcluster::TestCluster;
use util::{EXIT_CHANGES, EXIT_ERROR, EXIT_OK, Env, Repo};

/// Runs `ward` against the cluster.
fn ward(repo: &Repo, cluster: &TestCluster, args: &[&str]) -> util::Run {
    repo.ward_on(&cluster.kubeconfig, args)
}

/// A test cluster with the namespace `shop` the fixtures use; `None` when it cannot run.
fn cluster_with_shop() -> Option<TestCluster> {
    let cluster = TestCluster::start()?;
    cluster.create_fixture_namespaces();
    Some(cluster)
}

/// Cilium's own ConfigMap, as a cluster running Cilium has it.
fn cilium_own_config(cluster: &TestCluster) {
    cluster.kubectl_ok(&[
        "create",
        "configmap",
        "cilium-config",
        "-n",
        "kube-system",
        "--from-literal=enable-policy=default",
    ]);
}

/// Cilium's ConfigMap is as Cilium left it: ward never wrote, adopted or pruned it.
fn assert_cilium_own_config_untouched(cluster: &TestCluster) {
    let cm: Value = serde_json::from_str(&cluster.kubectl_ok(&[
        "get",
        "configmap",
        "-n",
        "kube-system",
        "cilium-config",
        "-o",
        "json",
        "--show-managed-fields",
    ]))
    .unwrap();
    assert_eq!(
        cm["data"],
        serde_json::json!({"enable-policy": "default"}),
        "{cm}"
    );
    let managers: Vec<&str> = cm["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["manager"].as_str())
        .collect();
    assert!(!managers.contains(&"ward"), "{managers:?}");
}

/// The ConfigMaps of the cluster, checked to hold no ConfigMap of ward's.
fn cluster_config_maps_besides_ward(cluster: &TestCluster) -> Vec<String> {
    let all = names(cluster, "configmap");
    assert!(
        !all.iter().any(|n| n.ends_with("/ward-cilium-config")),
        "ward's config pruned: {all:?}"
    );
    all
}

/// `kind` objects in the cluster as `namespace/name` (or `name`), sorted.
fn names(cluster: &TestCluster, kind: &str) -> Vec<String> {
    let out = cluster.kubectl_ok(&["get", kind, "-A", "-o", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let mut names: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| match i["metadata"]["namespace"].as_str() {
            Some(ns) => format!("{ns}/{}", i["metadata"]["name"].as_str().unwrap()),
            None => i["metadata"]["name"].as_str().unwrap().to_owned(),
        })
        .collect();
    names.sort();
    names
}

fn backend_port(cluster: &TestCluster) -> String {
    cluster.kubectl_ok(&[
        "get",
        "cnp",
        "-n",
        "shop",
        "backend-ingress",
        "-o",
        "jsonpath={.spec.ingress[0].toPorts[0].ports[0].port}",
    ])
}

#[test]
fn apply_converges_and_drift_conflicts_and_prune_behave() {
    let Some(cluster) = cluster_with_shop() else {
        return;
    };
    cilium_own_config(&cluster);
    let env = Env::new();
    let mut repo = env.fixture_repo();

    let plan = ward(&repo, &cluster, &["plan", "--detailed-exitcode"]);
    plan.code(EXIT_CHANGES)
        .stdout_has("13 to create, 0 to change, 0 to prune, 0 drifted, 0 unchanged")
        .stdout_has("+ CiliumNetworkPolicy/shop/backend-ingress create")
        .stdout_has("+ NetworkPolicy/shop/admin-ingress create")
        .stdout_has("+ CiliumCIDRGroup/office-networks create");
    assert_eq!(
        names(&cluster, "cnp"),
        Vec::<String>::new(),
        "a plan writes nothing"
    );

    let apply = ward(&repo, &cluster, &["apply", "--detailed-exitcode"]);
    apply.code(EXIT_CHANGES).stdout_has("13 to create");
    ward(&repo, &cluster, &["plan", "--detailed-exitcode"])
        .code(EXIT_OK)
        .stdout_has("0 to create, 0 to change, 0 to prune, 0 drifted, 13 unchanged");

    // Exactly the repository's objects, written by field manager ward.
    assert_eq!(
        names(&cluster, "cnp"),
        [
            "payments/api-ingress",
            "payments/egress",
            "shop/admin-from-office",
            "shop/backend-egress-deny-all",
            "shop/backend-ingress",
            "shop/frontend-egress"
        ]
    );
    // A NetworkPolicy (networking.k8s.io is built into the API server) and a CiliumCIDRGroup
    // (Cilium's CRD), applied as the Cilium policies are.
    assert_eq!(names(&cluster, "networkpolicies"), ["shop/admin-ingress"]);
    assert_eq!(names(&cluster, "ciliumcidrgroups"), ["office-networks"]);
    let knp = cluster.kubectl_ok(&[
        "get",
        "networkpolicy",
        "-n",
        "shop",
        "admin-ingress",
        "-o",
        "jsonpath={.spec.ingress[1].ports[0].endPort}",
    ]);
    assert_eq!(knp, "9102");
    assert_eq!(
        cluster
            .field_managers("networkpolicy", "shop", "admin-ingress")
            .trim(),
        "ward"
    );
    assert_eq!(
        names(&cluster, "ccnp"),
        ["allow-kube-dns", "deny-world-egress", "host-firewall"]
    );
    assert_eq!(names(&cluster, "cec"), ["shop/envoy-frontend-l7lb"]);
    let managers = cluster.field_managers("cnp", "shop", "backend-ingress");
    assert_eq!(managers.trim(), "ward");
    // The CiliumConfig is a ConfigMap the agents read, not Cilium's own.
    assert_cilium_own_config_untouched(&cluster);
    let config = cluster.kubectl_ok(&[
        "get",
        "configmap",
        "-n",
        "kube-system",
        "ward-cilium-config",
        "-o",
        "jsonpath={.data.cilium-config\\.yaml}",
    ]);
    assert!(config.contains("enable-encryption: true"), "{config}");
    let status = ward(&repo, &cluster, &["status", "--format", "json"]);
    status.code(EXIT_OK);
    let s = status.json();
    assert_eq!(s["appliedRevision"], Value::String(repo.head()));
    assert_eq!(s["inventory"], 13);
    // The group written at the deprecated v2alpha1 is the same object: nothing to change.
    repo.write(
        "policies/clusterwide/office-networks.yaml",
        repo.read("policies/clusterwide/office-networks.yaml")
            .replace(
                "apiVersion: cilium.io/v2\n",
                "apiVersion: cilium.io/v2alpha1\n",
            ),
    );
    repo.commit("the group at v2alpha1");
    ward(&repo, &cluster, &["plan", "--detailed-exitcode"])
        .code(EXIT_OK)
        .stdout_has("0 to create, 0 to change, 0 to prune, 0 drifted, 13 unchanged");

    // Drift: a change made with kubectl is reported and corrected.
    assert_eq!(backend_port(&cluster), "80");
    cluster.kubectl_ok(&[
        "patch",
        "cnp",
        "-n",
        "shop",
        "backend-ingress",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/ingress/0/toPorts/0/ports/0/port","value":"8080"}]"#,
    ]);
    ward(&repo, &cluster, &["status"])
        .code(EXIT_OK)
        .stdout_has("CiliumNetworkPolicy/shop/backend-ingress");
    ward(&repo, &cluster, &["status", "--detailed-exitcode"]).code(EXIT_CHANGES);
    let drift = ward(&repo, &cluster, &["plan", "--detailed-exitcode"]);
    drift
        .code(EXIT_CHANGES)
        .stdout_has("0 to create, 1 to change, 0 to prune, 1 drifted, 12 unchanged");
    drift
        .stdout_has("-            - port: \"8080\"")
        .stdout_has("+            - port: \"80\"");
    ward(&repo, &cluster, &["apply"]).code(EXIT_OK);
    assert_eq!(backend_port(&cluster), "80", "drift corrected");
    ward(&repo, &cluster, &["status"])
        .code(EXIT_OK)
        .stdout_has("drift:             none");

    // Conflict: another manager takes a field ward set; ward reports it and takes it back only
    // with --force-conflicts.
    let intruder = env.path().join("intruder.yaml");
    let text = repo
        .read("policies/namespaces/shop/backend-ingress.yaml")
        .replace("port: \"80\"", "port: \"9090\"");
    assert!(
        text.contains("9090"),
        "the fixture's port is written as \"80\""
    );
    std::fs::write(&intruder, text).unwrap();
    cluster.kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        "intruder",
        "-f",
        intruder.to_str().unwrap(),
    ]);
    let conflict = ward(&repo, &cluster, &["apply"]);
    conflict
        .code(EXIT_ERROR)
        .stderr_has("conflict")
        .stderr_has("intruder")
        .stderr_has(".spec.ingress")
        .stderr_has("--force-conflicts");
    assert_eq!(
        backend_port(&cluster),
        "9090",
        "nothing applied on a conflict"
    );
    ward(&repo, &cluster, &["apply", "--force-conflicts"]).code(EXIT_OK);
    assert_eq!(backend_port(&cluster), "80");

    // A namespace that does not exist: refused before anything is written.
    repo.write("policies/namespaces/ghost/p.yaml", "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p, namespace: ghost}\nspec:\n  endpointSelector: {}\n  ingress: [{}]\n");
    repo.write("policies/clusterwide/extra.yaml", "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: extra}\nspec:\n  endpointSelector: {}\n  ingress: [{}]\n");
    ward(&repo, &cluster, &["apply"])
        .code(EXIT_ERROR)
        .stderr_has("namespace(s) ghost do not exist");
    assert_eq!(
        names(&cluster, "ccnp"),
        ["allow-kube-dns", "deny-world-egress", "host-firewall"],
        "nothing applied"
    );
    repo.remove("policies/namespaces/ghost/p.yaml");
    repo.remove("policies/clusterwide/extra.yaml");

    // Prune: exactly the deleted file's object; an opted-out object stays.
    cluster.kubectl_ok(&[
        "annotate",
        "cnp",
        "-n",
        "shop",
        "frontend-egress",
        "ward.dev/prune=disabled",
    ]);
    repo.remove("policies/namespaces/shop/frontend-egress.yaml");
    repo.remove("policies/namespaces/shop/backend-egress-deny-all.yaml");
    repo.commit("drop two policies");
    // `ward diff` without --base compares the commit with the cluster (prunes shown; the
    // opted-out object is kept).
    let diff = ward(&repo, &cluster, &["diff", "--detailed-exitcode"]);
    diff.code(EXIT_CHANGES)
        .stdout_has("Diff live (cluster of ")
        .stdout_has("0 to create, 0 to change, 1 to prune");
    assert_eq!(names(&cluster, "cnp").len(), 6, "a diff writes nothing");
    ward(&repo, &cluster, &["apply", "--prune", "--max-prune", "0"])
        .code(EXIT_ERROR)
        .stderr_has("deletion budget");
    assert_eq!(
        names(&cluster, "cnp").len(),
        6,
        "over budget: nothing pruned"
    );
    let pruned = ward(&repo, &cluster, &["apply", "--prune"]);
    pruned
        .code(EXIT_OK)
        .stdout_has("1 to prune")
        .stderr_has("frontend-egress is no longer desired but annotated ward.dev/prune: disabled");
    assert_eq!(
        names(&cluster, "cnp"),
        [
            "payments/api-ingress",
            "payments/egress",
            "shop/admin-from-office",
            "shop/backend-ingress",
            "shop/frontend-egress"
        ]
    );
    let s = ward(&repo, &cluster, &["status", "--format", "json"]).json();
    assert_eq!(
        s["inventory"], 11,
        "the opted-out object left the inventory: {s}"
    );
    assert!(
        s["unmanaged"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == "CiliumNetworkPolicy/shop/frontend-egress"),
        "{s}"
    );

    // The NetworkPolicy and the CIDR group are pruned like the rest.
    repo.remove("policies/namespaces/shop/admin-ingress.yaml");
    repo.remove("policies/clusterwide/office-networks.yaml");
    repo.commit("drop the admin console's NetworkPolicy and the office group");
    ward(&repo, &cluster, &["apply", "--prune"])
        .code(EXIT_OK)
        .stdout_has("2 to prune");
    assert_eq!(names(&cluster, "networkpolicies"), Vec::<String>::new());
    assert_eq!(names(&cluster, "ciliumcidrgroups"), Vec::<String>::new());

    // Health: a policy the agent marked invalid shows in the status.
    cluster.kubectl_ok(&[
        "patch",
        "cnp",
        "-n",
        "shop",
        "backend-ingress",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Valid","status":"False","message":"policy cannot be imported"}]}}"#,
    ]);
    ward(&repo, &cluster, &["status", "--detailed-exitcode"])
        .code(EXIT_CHANGES)
        .stdout_has("invalid:           CiliumNetworkPolicy/shop/backend-ingress: policy cannot be imported");
    ward(&repo, &cluster, &["status"]).code(EXIT_OK);
}

#[test]
fn pruning_everything_is_refused_and_an_invalid_revision_changes_nothing() {
    let Some(cluster) = cluster_with_shop() else {
        return;
    };
    cilium_own_config(&cluster);
    let env = Env::new();
    let mut repo = env.fixture_repo();
    ward(&repo, &cluster, &["apply"]).code(EXIT_OK);
    let before = names(&cluster, "cnp");

    // An invalid commit: nothing applied, the message names the file and line.
    repo.write(
        "policies/namespaces/shop/backend-ingress.yaml",
        repo.read("policies/namespaces/shop/backend-ingress.yaml")
            .replace("apiVersion: cilium.io/v2", "apiVersion: cilium.io/v1alpha1"),
    );
    repo.write("policies/namespaces/shop/new.yaml", "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: new, namespace: shop}\nspec:\n  endpointSelector: {}\n  ingress: [{}]\n");
    repo.commit("broken");
    let bad = ward(&repo, &cluster, &["apply", "--prune"]);
    bad.code(EXIT_ERROR)
        .stdout_has("policies/namespaces/shop/backend-ingress.yaml:")
        .stdout_has("cilium.io/v2")
        .stderr_has("nothing applied");
    assert_eq!(names(&cluster, "cnp"), before);

    // A checkout with no policies at all would prune everything: refused unless asked for.
    for f in [
        "backend-ingress.yaml",
        "new.yaml",
        "backend-egress-deny-all.yaml",
        "frontend-egress.yaml",
        "envoy-frontend-l7lb.yaml",
        "admin-ingress.yaml",
        "admin-from-office.yaml",
    ] {
        repo.remove(&format!("policies/namespaces/shop/{f}"));
    }
    for f in [
        "allow-kube-dns.yaml",
        "deny-world-egress.yaml",
        "host-firewall.yaml",
        "office-networks.yaml",
    ] {
        repo.remove(&format!("policies/clusterwide/{f}"));
    }
    for f in ["api-ingress.yaml", "egress.yaml"] {
        repo.remove(&format!("policies/namespaces/payments/{f}"));
    }
    repo.remove("cluster-config/cilium-config.yaml");
    repo.commit("empty");
    ward(&repo, &cluster, &["apply", "--prune"])
        .code(EXIT_ERROR)
        .stderr_has("refusing to prune all 13 objects");
    assert_eq!(names(&cluster, "cnp"), before);
    ward(&repo, &cluster, &["apply", "--prune", "--allow-prune-all"]).code(EXIT_OK);
    assert_eq!(names(&cluster, "cnp"), Vec::<String>::new());
    assert_eq!(names(&cluster, "ccnp"), Vec::<String>::new());
    // ward's ConfigMap was pruned with the rest; Cilium's was never ward's to prune.
    assert_eq!(
        names(&cluster, "configmap"),
        cluster_config_maps_besides_ward(&cluster)
    );
    assert_cilium_own_config_untouched(&cluster);
}

#[test]
fn objects_ward_did_not_apply_are_left_alone_until_adopted() {
    let Some(cluster) = cluster_with_shop() else {
        return;
    };
    let env = Env::new();
    let mut repo = env.fixture_repo();
    // Applied earlier with kubectl, same content as the repository's.
    let file = repo
        .path
        .join("policies/namespaces/shop/backend-ingress.yaml");
    cluster.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    let managers = || cluster.field_managers("cnp", "shop", "backend-ingress");
    // What `ward status` lists as live but not applied by ward.
    let unmanaged = |repo: &Repo| -> Vec<Value> {
        ward(repo, &cluster, &["status", "--format", "json"]).json()["unmanaged"]
            .as_array()
            .unwrap()
            .clone()
    };

    let plan = ward(&repo, &cluster, &["plan"]);
    plan.code(EXIT_OK)
        .stdout_has("12 to create, 0 to change, 0 to prune, 0 drifted, 0 unchanged, 1 exist(s) not managed by ward (--adopt takes them over)")
        .stdout_has("Exist, not managed by ward (left alone; --adopt takes them over):\n  CiliumNetworkPolicy/shop/backend-ingress");
    ward(&repo, &cluster, &["apply"]).code(EXIT_OK);
    assert!(
        !managers().contains("ward"),
        "not taken over: {}",
        managers()
    );
    assert!(
        unmanaged(&repo).contains(&Value::from("CiliumNetworkPolicy/shop/backend-ingress")),
        "still unmanaged"
    );

    // --adopt takes it over: field manager ward, into the inventory.
    let adopt = ward(&repo, &cluster, &["apply", "--adopt"]);
    adopt
        .code(EXIT_OK)
        .stdout_has("0 to create, 1 to change, 0 to prune, 0 drifted, 12 unchanged")
        .stdout_has("~ CiliumNetworkPolicy/shop/backend-ingress adopt");
    assert!(managers().contains("ward"), "{}", managers());
    assert!(unmanaged(&repo).is_empty(), "everything is ward's now");
    ward(&repo, &cluster, &["plan", "--detailed-exitcode"])
        .code(EXIT_OK)
        .stdout_has("0 to create, 0 to change, 0 to prune, 0 drifted, 13 unchanged");

    // Once adopted, deleting its file prunes it.
    repo.remove("policies/namespaces/shop/backend-ingress.yaml");
    repo.commit("drop backend-ingress");
    ward(&repo, &cluster, &["apply", "--prune"])
        .code(EXIT_OK)
        .stdout_has("1 to prune");
    assert!(
        !names(&cluster, "cnp").contains(&"shop/backend-ingress".to_owned()),
        "pruned"
    );
}

#[test]
fn a_saved_plan_is_applied_as_made_or_refused_when_the_cluster_changed() {
    let Some(cluster) = cluster_with_shop() else {
        return;
    };
    let env = Env::new();
    let mut repo = env.fixture_repo();
    let head = repo.head();
    let file = env.path().join("plan.json").display().to_string();
    ward(&repo, &cluster, &["plan", "--out", &file]).code(EXIT_OK);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let id = &doc["target"]["identity"];
    assert_eq!(
        (
            id["type"].as_str(),
            id["server"].as_str().map(|s| s.trim_end_matches('/')),
            id["sync"].as_str()
        ),
        (Some("kube"), Some(cluster.server.as_str()), Some("ward")),
        "{id}"
    );
    assert!(doc["target"]["fingerprint"].as_str().unwrap().len() == 64);

    // The plan names its cluster: without one, it is not applied to the local state.
    repo.ward(&["apply", &file])
        .code(EXIT_ERROR)
        .stderr_has(&format!("the plan was made for cluster {}", cluster.server));
    assert_eq!(names(&cluster, "cnp"), Vec::<String>::new());
    ward(&repo, &cluster, &["apply", &file])
        .code(EXIT_OK)
        .stdout_has(&format!("Applied {head}: 13 to create"));
    assert_eq!(names(&cluster, "cnp").len(), 6);
    ward(&repo, &cluster, &["plan", "--detailed-exitcode"])
        .code(EXIT_OK)
        .stdout_has("13 unchanged");

    // Planned with a new policy; meanwhile another apply lands a different commit.
    repo.write(
        "policies/namespaces/shop/extra.yaml",
        util::cnp("shop", "extra", 80),
    );
    let with_extra = repo.commit("extra");
    ward(
        &repo,
        &cluster,
        &["plan", "--rev", &with_extra, "--out", &file],
    )
    .code(EXIT_OK);
    repo.remove("policies/namespaces/shop/extra.yaml");
    repo.write(
        "policies/namespaces/shop/other.yaml",
        util::cnp("shop", "other", 80),
    );
    let other = repo.commit("other instead");
    ward(&repo, &cluster, &["apply", "--rev", &other]).code(EXIT_OK);
    let before = names(&cluster, "cnp");
    ward(&repo, &cluster, &["apply", &file])
        .code(EXIT_ERROR)
        .stderr_has("changed since the plan was made; nothing was applied")
        .stderr_has(&format!("applied revision was {head}, is now {other}"))
        .stderr_has("object CiliumNetworkPolicy/shop/other added");
    assert_eq!(names(&cluster, "cnp"), before, "nothing was written");
    assert!(!before.contains(&"shop/extra".to_owned()));
}

#[test]
fn as_acts_with_the_rbac_of_the_user_it_names() {
    let Some(cluster) = cluster_with_shop() else {
        return;
    };
    // ward's own RBAC (the controller's ClusterRole and its kube-system Role), bound to the
    // user alice and to the group ward-operators; bob has no binding at all.
    let deploy = util::workspace().join("reconciler/deploy");
    for f in ["namespace.yaml", "rbac.yaml"] {
        cluster.kubectl_ok(&["apply", "-f", deploy.join(f).to_str().unwrap()]);
    }
    for (name, subject) in [
        ("alice", "--user=alice"),
        ("operators", "--group=ward-operators"),
    ] {
        let binding = format!("ward-{name}");
        cluster.kubectl_ok(&[
            "create",
            "clusterrolebinding",
            &binding,
            "--clusterrole=ward-reconciler",
            subject,
        ]);
        cluster.kubectl_ok(&[
            "create",
            "rolebinding",
            &binding,
            "-n",
            "kube-system",
            "--role=ward-reconciler",
            subject,
        ]);
    }
    let env = Env::new();
    let repo = env.fixture_repo();

    let bob = ward(&repo, &cluster, &["apply", "--as", "bob"]);
    bob.code(EXIT_ERROR)
        .stderr_has("forbidden")
        .stderr_has("User \"bob\" cannot list resource")
        .stderr_has("RBAC");
    assert_eq!(
        names(&cluster, "cnp"),
        Vec::<String>::new(),
        "bob wrote nothing"
    );
    ward(&repo, &cluster, &["plan", "--as-group", "ward-operators"])
        .code(EXIT_ERROR)
        .stderr_has("--as-group needs --as");

    ward(&repo, &cluster, &["apply", "--as", "alice"])
        .code(EXIT_OK)
        .stdout_has("13 to create");
    assert_eq!(names(&cluster, "cnp").len(), 6);
    assert_eq!(names(&cluster, "networkpolicies"), ["shop/admin-ingress"]);
    let managers = cluster.field_managers("cnp", "shop", "backend-ingress");
    assert!(managers.contains("ward"), "{managers}");
    ward(
        &repo,
        &cluster,
        &[
            "plan",
            "--detailed-exitcode",
            "--as",
            "carol",
            "--as-group",
            "ward-operators",
        ],
    )
    .code(EXIT_OK)
    .stdout_has("13 unchanged");
}

/// The controller keeps the WardSync it last read or wrote and reads it again in full only
/// when its resourceVersion moved: every change by another writer (status, spec, deletion)
/// is still what the next read returns.
#[test]
fn the_kept_wardsync_follows_every_other_writer() {
    use std::sync::Arc;
    use ward_reconciler::target::kube::{Cluster, KubeOptions, Recorder};
    let Some(cluster) = TestCluster::start() else {
        return;
    };
    let opts = KubeOptions {
        kubeconfig: Some(cluster.kubeconfig.clone()),
        ..KubeOptions::default()
    };
    let recorder = Recorder::new(Arc::new(Cluster::connect(&opts).unwrap()), "kept");
    let attempted = |r: &Recorder| r.record().unwrap().last_attempted_revision;
    assert_eq!(recorder.spec().unwrap(), (serde_json::json!({}), None));
    recorder.set_conditions(None, Some("a"), &[]).unwrap();
    assert_eq!(attempted(&recorder).as_deref(), Some("a"));
    assert_eq!(attempted(&recorder).as_deref(), Some("a"), "read again");

    let status = r#"{"status":{"lastAttemptedRevision":"b"}}"#;
    let patch = ["patch", "wardsync", "kept", "--type=merge"];
    cluster.kubectl_ok(&[&patch[..], &["--subresource=status", "-p", status]].concat());
    assert_eq!(
        attempted(&recorder).as_deref(),
        Some("b"),
        "another writer's status"
    );

    cluster.kubectl_ok(&[&patch[..], &["-p", r#"{"spec":{"suspend":true}}"#]].concat());
    let (spec, generation) = recorder.spec().unwrap();
    assert_eq!(spec["suspend"], serde_json::json!(true), "{spec}");
    assert_eq!(generation, Some(2), "the spec change is a new generation");

    cluster.kubectl_ok(&["delete", "wardsync", "kept"]);
    assert_eq!(
        attempted(&recorder),
        None,
        "a deleted WardSync records nothing"
    );
    assert_eq!(recorder.spec().unwrap(), (serde_json::json!({}), None));
}
