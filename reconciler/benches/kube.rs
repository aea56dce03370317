//! Kube target benchmark (issue 6: "first apply of 1,000 policies: under 30 s; a no-change
//! reconcile of 1,000 policies: under 1 s"; issue 16: "first apply of 10,000 policies under
//! 20 s; no-change reconcile of 10,000 under 2 s; controller peak memory under 100 MiB at
//! 10,000"), against the real kube-apiserver and etcd of the test harness. Std-only,
//! `harness = false`; needs the test cluster (`ci/kube/build.sh`, found through
//! WARD_KUBE_BIN or the cache).
//!
//! Run: `cargo bench -p ward-reconciler --bench kube`; at cluster size
//! `WARD_BENCH_POLICIES=10000 cargo bench -p ward-reconciler --bench kube`.
//! Other knobs: `WARD_BENCH_ROUNDS` (CLI rounds, default 3), `WARD_BENCH_ONLY=controller`
//! (skip the CLI rounds), `WARD_BENCH_BIN` (time another `ward` binary, e.g. an older
//! build, on the same machine), `WARD_CONCURRENCY` (ward's own `--concurrency`).
//!
//! Each round writes the policies (one file each, 10 namespaces) into a fresh Git repository,
//! then times the `ward` binary (release build) as a user runs it:
//! - `first apply`: `ward apply` of all of them into an empty cluster namespace set (its own
//!   WardSync, so every round starts from nothing);
//! - `no-change plan` and `no-change apply`: the same revision again (nothing to do);
//! - `one changed`: one policy edited, `ward apply`.
//!
//! Reported: the median of the rounds, and the peak memory (max RSS) of `ward`.
//!
//! Then the controller: `ward reconcile` follows a bare repository holding the same
//! policies. Timed: its first apply (start to the first successful reconcile) and its peak
//! memory then (VmHWM); 5 no-change reconciles (the webhook posted without a new commit);
//! then 20 times (5 at more than 2,000 policies) one policy changes, the commit is pushed
//! and the webhook posted. Push-to-applied: from before `git push` until the controller's
//! `/metrics` count one more successful reconcile (the apply finished). Reported: p50, p99
//! (the largest sample) and the controller's memory after them.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    missing_docs,
    reason = "benchmark"
)]

#[path = "../tests/testcluster/mod.rs"]
mod testcluster;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testcluster::TestCluster;

/// Policies per run (`WARD_BENCH_POLICIES` sets another number, e.g. 10000 for the
/// controller's memory; `WARD_BENCH_ONLY=controller` skips the CLI rounds).
static POLICIES: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
    std::env::var("WARD_BENCH_POLICIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
});
const NAMESPACES: usize = 10;
/// Rounds of the CLI part (`WARD_BENCH_ROUNDS` sets another number).
static ROUNDS: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
    std::env::var("WARD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
});

/// The `ward` binary timed: this build's, or `WARD_BENCH_BIN` (another build, for a before and
/// after on the same machine).
fn ward_bin() -> std::path::PathBuf {
    std::env::var_os("WARD_BENCH_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_ward").into())
}

fn policy(ns: usize, i: usize, port: u16) -> String {
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: p{i}\n  namespace: bench-{ns}\nspec:\n  endpointSelector:\n    matchLabels: {{app: a{i}}}\n  ingress:\n    - fromEndpoints:\n        - matchLabels: {{app: b{i}}}\n      toPorts:\n        - ports:\n            - port: \"{port}\"\n              protocol: TCP\n"
    )
}

fn write_repo(dir: &Path) {
    for i in 0..*POLICIES {
        let ns = i % NAMESPACES;
        let d = dir.join(format!("policies/bench-{ns}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("p{i}.yaml")), policy(ns, i, 80)).unwrap();
    }
    let git = |args: &[&str]| {
        assert!(
            Command::new("git")
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap()
                .status
                .success(),
            "git {args:?}"
        )
    };
    git(&["init", "-q", "-b", "main"]);
    git(&[
        "-c",
        "user.name=b",
        "-c",
        "user.email=b@b.invalid",
        "add",
        "-A",
    ]);
    git(&[
        "-c",
        "user.name=b",
        "-c",
        "user.email=b@b.invalid",
        "commit",
        "-q",
        "-m",
        "bench",
    ]);
}

/// Runs `ward args`; its wall time and peak memory in KiB (`VmHWM`, read while it runs).
fn ward(repo: &Path, cluster: &TestCluster, sync: &str, args: &[&str]) -> (Duration, u64) {
    let start = Instant::now();
    let mut child = Command::new(ward_bin())
        .args(args)
        .args([
            "--kubeconfig",
            cluster.kubeconfig.to_str().unwrap(),
            "--sync",
            sync,
            "--repo",
        ])
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
        let hwm = std::fs::read_to_string(&status).ok().and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:")
                    .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            })
        });
        peak = peak.max(hwm.unwrap_or(0));
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = start.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(code.success(), "ward {args:?}: {err}");
    (took, peak)
}

/// `(status, body)` of a plain HTTP/1.1 request.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default(),
    )
}

fn successes(port: u16) -> u64 {
    let (_, text) = http(port, "GET", "/metrics", &[], b"");
    text.lines()
        .find_map(|l| {
            l.strip_prefix("ward_reconcile_total{outcome=\"success\"}")
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A `/proc/PID/status` figure in KiB (`field` such as `VmRSS:`).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(field)
                    .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

const SECRET: &[u8] = b"bench-secret";

/// Posts a signed push webhook for `main`.
fn hook(port: u16) {
    let body = br#"{"ref":"refs/heads/main"}"#;
    let (status, _) = http(
        port,
        "POST",
        "/hook",
        &[(
            "X-Hub-Signature-256",
            ward_reconciler::controller::http::sign(SECRET, body),
        )],
        body,
    );
    assert_eq!(status, 202);
}

/// What the controller part measures.
struct ControllerRun {
    /// From start to the first revision applied (a first apply into an empty cluster).
    first: Duration,
    /// Peak memory (VmHWM) right after the first apply, KiB.
    first_peak: u64,
    /// Webhook to reconciled, same revision (nothing to do).
    unchanged: Vec<Duration>,
    /// Push-to-applied of one changed policy.
    pushes: Vec<Duration>,
    /// RSS after the pushes, KiB.
    rss: u64,
    /// Peak memory over the whole run, KiB.
    peak: u64,
}

/// The controller's first apply, no-change reconciles and push-to-applied latencies through
/// the webhook, with its memory.
fn controller(cluster: &TestCluster) -> ControllerRun {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    write_repo(&work);
    let bare = dir.path().join("server.git");
    assert!(
        Command::new("git")
            .args(["clone", "-q", "--bare"])
            .arg(&work)
            .arg(&bare)
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    /// Kills the controller also when the bench panics.
    struct Reaper(std::process::Child);
    impl Drop for Reaper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Command::new(ward_bin())
        .args([
            "reconcile",
            "--rev",
            "main",
            "--interval",
            "1h",
            "--identity",
            "bench",
            "--sync",
            "bench-ctl",
        ])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--webhook-secret-file",
        ])
        .arg(dir.path().join("secret"))
        .arg("--repo")
        .arg(&bare)
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .env("WARD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(std::env::temp_dir().join("ward-bench-controller.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let child = Reaper(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() || successes(port) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "the controller did not apply the first revision"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = start.elapsed();
    let first_peak = status_kib(child.0.id(), "VmHWM:");
    // No-change reconciles: the webhook without a new commit (the same revision planned
    // again, nothing written).
    let mut unchanged = Vec::new();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(200));
        let before = successes(port);
        let t0 = Instant::now();
        hook(port);
        while successes(port) <= before {
            assert!(t0.elapsed() < Duration::from_secs(120), "no reconcile");
            std::thread::sleep(Duration::from_millis(2));
        }
        unchanged.push(t0.elapsed());
    }
    let git = |args: &[&str]| {
        assert!(
            Command::new("git")
                .args(["-c", "user.name=b", "-c", "user.email=b@b.invalid"])
                .args(args)
                .current_dir(&work)
                .output()
                .unwrap()
                .status
                .success(),
            "git {args:?}"
        )
    };
    let mut lat = Vec::new();
    let pushes: u16 = if *POLICIES > 2000 { 5 } else { 20 };
    for i in 0..pushes {
        std::fs::write(
            work.join("policies/bench-5/p5.yaml"),
            policy(5, 5, 9000 + i),
        )
        .unwrap();
        git(&["commit", "-q", "-am", "change"]);
        let before = successes(port);
        let t0 = Instant::now();
        git(&["push", "-q", bare.to_str().unwrap(), "HEAD:main"]);
        hook(port);
        while successes(port) <= before {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "push {i} was not applied (controller log: {})",
                std::env::temp_dir()
                    .join("ward-bench-controller.log")
                    .display()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        lat.push(t0.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    let rss = status_kib(child.0.id(), "VmRSS:");
    let peak = status_kib(child.0.id(), "VmHWM:");
    drop(child);
    ControllerRun {
        first,
        first_peak,
        unchanged,
        pushes: lat,
        rss,
        peak,
    }
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
    let (mut first, mut plan, mut again, mut one) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut rss = 0;
    let only_controller = std::env::var("WARD_BENCH_ONLY").as_deref() == Ok("controller");
    for round in 0..if only_controller { 0 } else { *ROUNDS } {
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
        std::fs::write(
            dir.path().join("policies/bench-3/p3.yaml"),
            policy(3, 3, 8080),
        )
        .unwrap();
        one.push(ward(dir.path(), &cluster, &sync, &["apply"]).0);
        // Empty the cluster for the next round.
        for ns in 0..NAMESPACES {
            cluster.kubectl_ok(&[
                "delete",
                "cnp",
                "--all",
                "-n",
                &format!("bench-{ns}"),
                "--wait=false",
            ]);
        }
        cluster.kubectl_ok(&["delete", "wardsync", &sync]);
    }
    let policies = *POLICIES;
    if !only_controller {
        println!(
            "kube target, {policies} CiliumNetworkPolicies in {NAMESPACES} namespaces, {} rounds (median):",
            *ROUNDS
        );
        println!(
            "  first apply        {:>8.2} s   (runs: {:?})",
            median(first.clone()).as_secs_f64(),
            first
                .iter()
                .map(|d| format!("{:.2}", d.as_secs_f64()))
                .collect::<Vec<_>>()
        );
        println!("  no-change plan     {:>8.3} s", median(plan).as_secs_f64());
        println!(
            "  no-change apply    {:>8.3} s",
            median(again).as_secs_f64()
        );
        println!("  one policy changed {:>8.3} s", median(one).as_secs_f64());
        println!(
            "  ward peak memory   {:>8.1} MiB (max RSS)",
            rss as f64 / 1024.0
        );
    }
    let run = controller(&cluster);
    let mut lat = run.pushes;
    lat.sort();
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("controller (`ward reconcile`), {policies} policies:");
    println!(
        "  first apply        {:>8.2} s   (start to the first successful reconcile)",
        run.first.as_secs_f64()
    );
    println!(
        "  peak memory        {:>8.1} MiB (VmHWM after the first apply)",
        mib(run.first_peak)
    );
    println!(
        "  no-change reconcile {:>7.3} s   (webhook, same revision; median of {}, runs: {:?})",
        median(run.unchanged.clone()).as_secs_f64(),
        run.unchanged.len(),
        run.unchanged
            .iter()
            .map(|d| format!("{:.3}", d.as_secs_f64()))
            .collect::<Vec<_>>()
    );
    println!(
        "  push-to-applied p50 {:>7.3} s, p99 {:.3} s (max of {}), min {:.3} s",
        lat[lat.len() / 2].as_secs_f64(),
        lat[lat.len() - 1].as_secs_f64(),
        lat.len(),
        lat[0].as_secs_f64()
    );
    println!(
        "  memory after the pushes {:>5.1} MiB (RSS); peak over the run {:.1} MiB",
        mib(run.rss),
        mib(run.peak)
    );
}
