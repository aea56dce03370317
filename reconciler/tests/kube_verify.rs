//! The controller with `--verify-signatures` against a real kube-apiserver and etcd: an
//! unsigned head is not applied and the WardSync says which commit and why; once the head is
//! signed by a listed SSH key, it is applied. The trust comes from the environment variables
//! a Deployment would set. Fails rather than skips in must-run mode when the test cluster is
//! missing.
#![allow(clippy::unwrap_used, reason = "tests")]

mod testcluster;
mod util;

use serde_json::Value;
use std::path::Path;
use testcluster::TestCluster;
use util::sign::{Keys, Signer};
use util::{EXIT_ERROR, EXIT_OK, Env};

fn reconcile_once(env: &Env, cluster: &TestCluster, repo: &Path, allowed: &Path) -> util::Run {
    let args = [
        "reconcile",
        "--once",
        "--rev",
        "main",
        "--identity",
        "verify-test",
        "--listen",
        "127.0.0.1:0",
        "--repo",
        repo.to_str().unwrap(),
        "--kubeconfig",
        cluster.kubeconfig.to_str().unwrap(),
    ];
    let vars = [
        ("WARD_VERIFY_SIGNATURES", Path::new("true")),
        ("WARD_ALLOWED_SIGNERS", allowed),
    ];
    env.runner().run_with(env.path(), &args, &vars)
}

/// The WardSync's condition of type `ty`, as JSON (null when absent).
fn condition(cluster: &TestCluster, ty: &str) -> Value {
    let path = format!("jsonpath={{.status.conditions[?(@.type==\"{ty}\")]}}");
    let out = cluster.kubectl_ok(&["get", "wardsync", "ward", "-o", &path]);
    serde_json::from_str(&out).unwrap_or(Value::Null)
}

fn cnps(cluster: &TestCluster) -> usize {
    cluster
        .kubectl_ok(&["get", "cnp", "-n", "shop", "-o", "name"])
        .lines()
        .count()
}

#[test]
fn an_unsigned_head_is_not_applied_and_the_wardsync_says_why() {
    let Some(cluster) = TestCluster::start() else {
        return;
    };
    cluster.create_fixture_namespaces();
    let env = Env::new();
    let keys = Keys::new(&env.path().join("keys"));
    let alice = keys.ssh("alice");
    let allowed = keys.allowed_signers("allowed_signers", &[("alice@ward.invalid", "", &alice)]);
    let repo = env.repo("repo");
    repo.copy_fixtures();
    let unsigned = keys.commit(&repo.path, &Signer::None, "unsigned policies");

    reconcile_once(&env, &cluster, &repo.path, &allowed)
        .code(EXIT_ERROR)
        .stderr_has(&format!("commit {unsigned} is not signed"));
    assert_eq!(cnps(&cluster), 0, "nothing may be applied");
    let ready = condition(&cluster, "Ready");
    assert_eq!(ready["status"], "False", "{ready}");
    assert_eq!(ready["reason"], "VerificationFailed", "{ready}");
    let msg = ready["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!("commit {unsigned} is not signed; nothing applied")),
        "{msg}"
    );
    assert_eq!(condition(&cluster, "Stalled")["status"], "True");

    let signed = keys.commit(&repo.path, &alice, "signed");
    reconcile_once(&env, &cluster, &repo.path, &allowed).code(EXIT_OK);
    assert_eq!(cnps(&cluster), 4);
    let ready = condition(&cluster, "Ready");
    assert_eq!(ready["status"], "True", "{ready}");
    assert_eq!(
        ready["message"],
        format!("Applied revision: main@sha1:{signed}")
    );
}
