//! Kube target benchmark (issue 6: "first apply of 1,000 policies: under 30 s; a no-change
//! reconcile of 1,000 policies: under 1 s"), against the real kube-apiserver and etcd of the
//! test harness. Std-only, `harness = false`; needs the test cluster (`ci/kube/build.sh`,
//! found through WARD_KUBE_BIN or the cache).
//!
//! Run: `cargo bench -p ward-reconciler --bench kube`.
//!
//! Each round writes 1,000 CiliumNetworkPolicies (one file each, 10 namespaces) into a fresh
//! Git repository, then times the `ward` binary (release build) as a user runs it:
//! - `first apply`: `ward apply` of all 1,000 into an empty cluster namespace set (its own
//!   WardSync, so every round starts from nothing);
//! - `no-change plan` and `no-change apply`: the same revision again (nothing to do);
//! - `one changed`: one policy edited, `ward apply`.
//!
//! Reported: the median of the rounds, and the peak memory (max RSS) of `ward`.

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs, reason = "benchmark")]

#[path = "../tests/testcluster/mod.rs"]
mod testcluster;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testcluster::TestCluster;

const POLICIES: usize = 1000;
const NAMESPACES: usize = 10;
const ROUNDS: usize = 3;

fn policy(ns: usize, i: usize, port: u16) -> String {
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: p{i}\n  namespace: bench-{ns}\nspec:\n  endpointSelector:\n    matchLabels: {{app: a{i}}}\n  ingress:\n    - fromEndpoints:\n        - matchLabels: {{app: b{i}}}\n      toPorts:\n        - ports:\n            - port: \"{port}\"\n              protocol: TCP\n"
    )
}

fn write_repo(dir: &Path) {
    for i in 0..POLICIES {
        let ns = i % NAMESPACES;
        let d = dir.join(format!("policies/bench-{ns}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("p{i}.yaml")), policy(ns, i, 80)).unwrap();
    }
    let git = |args: &[&str]| assert!(Command::new("git").args(args).current_dir(dir).output().unwrap().status.success(), "git {args:?}");
    git(&["init", "-q", "-b", "main"]);
    git(&["-c", "user.name=b", "-c", "user.email=b@b.invalid", "add", "-A"]);
    git(&["-c", "user.name=b", "-c", "user.email=b@b.invalid", "commit", "-q", "-m", "bench"]);
}

/// Runs `ward args`; its wall time and peak memory in KiB (`VmHWM`, read while it runs).
fn ward(repo: &Path, cluster: &TestCluster, sync: &str, args: &[&str]) -> (Duration, u64) {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(args)
        .args(["--kubeconfig", cluster.kubeconfig.to_str().unwrap(), "--sync", sync, "--repo"])
        .arg(repo)
        .args(["--format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let code = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        let hwm = std::fs::read_to_string(&status).ok().and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())));
        peak = peak.max(hwm.unwrap_or(0));
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = start.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(code.success(), "ward {args:?}: {err}");
    (took, peak)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let cluster = TestCluster::start().expect("the test cluster (ci/kube/build.sh; WARD_KUBE_BIN)");
    for ns in 0..NAMESPACES {
        cluster.kubectl_ok(&["create", "namespace", &format!("bench-{ns}")]);
    }
    let (mut first, mut plan, mut again, mut one) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut rss = 0;
    for round in 0..ROUNDS {
        // Every round starts from an empty cluster (the previous round deletes its objects).
        let dir = tempfile::tempdir().unwrap();
        write_repo(dir.path());
        let sync = format!("bench-{round}");
        let (t, m) = ward(dir.path(), &cluster, &sync, &["apply"]);
        first.push(t);
        rss = rss.max(m);
        for _ in 0..3 {
            plan.push(ward(dir.path(), &cluster, &sync, &["plan"]).0);
            again.push(ward(dir.path(), &cluster, &sync, &["apply"]).0);
        }
        std::fs::write(dir.path().join("policies/bench-3/p3.yaml"), policy(3, 3, 8080)).unwrap();
        one.push(ward(dir.path(), &cluster, &sync, &["apply"]).0);
        // Empty the cluster for the next round.
        for ns in 0..NAMESPACES {
            cluster.kubectl_ok(&["delete", "cnp", "--all", "-n", &format!("bench-{ns}"), "--wait=false"]);
        }
        cluster.kubectl_ok(&["delete", "wardsync", &sync]);
    }
    println!("kube target, {POLICIES} CiliumNetworkPolicies in {NAMESPACES} namespaces, {ROUNDS} rounds (median):");
    println!("  first apply        {:>8.2} s   (runs: {:?})", median(first.clone()).as_secs_f64(), first.iter().map(|d| format!("{:.2}", d.as_secs_f64())).collect::<Vec<_>>());
    println!("  no-change plan     {:>8.3} s", median(plan).as_secs_f64());
    println!("  no-change apply    {:>8.3} s", median(again).as_secs_f64());
    println!("  one policy changed {:>8.3} s", median(one).as_secs_f64());
    println!("  ward peak memory   {:>8.1} MiB (max RSS)", rss as f64 / 1024.0);
}
