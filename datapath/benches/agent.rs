//! Agent benchmark (issue 16: "a policy change touching 1% of 10,000 endpoints reaches the
//! maps in under 100 ms p99 after the watch event"), against the real kube-apiserver and etcd
//! of the test harness (`reconciler/tests/testcluster`) and the real BPF maps of one node.
//!
//! The cluster: 100 Nodes and 10,000 Pods in 100 namespaces (100 pods per node, 20 apps per
//! namespace, each pod with the status a kubelet would report), 2,000 CiliumNetworkPolicies
//! (per namespace and app: ingress from the next app on TCP 80) and one
//! CiliumClusterwideNetworkPolicy selecting the 100 pods of the measured node (1% of the
//! endpoints): ingress from `world` on one TCP port. `ward-agent run --kube` (this build's
//! binary, as the DaemonSet runs it) follows the cluster for that node; the node is a network
//! namespace of its own holding one veth and /32 route per local pod, as CNI `ptp` leaves
//! them, so the agent attaches its programs to all 100.
//!
//! Each round changes the CCNP's port, and times from just before the PATCH is sent until the
//! node's policy map holds the entry of the new port for one of the pods (polled every
//! 0.2 ms). The figure is an upper bound of "after the watch event": it also counts the
//! API server's write and its watch delivery. Then, for comparison, a third as many rounds
//! move one of the node's pods out of the CCNP's group and back (the cluster changed, so the
//! agent builds its policy repository again from scratch) and time until that pod's entry
//! for the port is gone or back. Reported: p50 and p99 (the largest of the rounds) of each, and the
//! agent's peak memory.
//!
//! Run (root, bpffs, the test-cluster binaries of `ci/kube/build.sh`):
//! `cargo bench -p ward-datapath --bench agent`. `WARD_BENCH_PODS` (default 10000, a multiple
//! of 100) and `WARD_BENCH_ROUNDS` (default 30) set the size; `WARD_BENCH_AGENT_LOG=info`
//! shows the agent's log (each sync's phases: `took_ms`).

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::panic,
    missing_docs,
    reason = "benchmark"
)]

#[path = "../../reconciler/tests/testcluster/mod.rs"]
mod testcluster;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testcluster::TestCluster;
use ward_datapath::agent::entries::endpoint_id;
use ward_datapath::bpf::maps::{IDENTITY_WORLD, PolicyKey};
use ward_datapath::bpf::node_maps::NodeMaps;
use ward_engine::Direction;

const NODE: &str = "bench-agent-0";
const NETNS: &str = "ward-bench-agent";
const PODS_PER_NODE: usize = 100;
const NAMESPACES: usize = 100;
const APPS: usize = 20;
const TCP: u8 = 6;
/// Requests in flight while the cluster is written.
const CONCURRENCY: usize = 32;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn node_name(n: usize) -> String {
    if n == 0 {
        NODE.to_owned()
    } else {
        format!("bench-agent-{n}")
    }
}

/// Pod `i`: namespace `i % 100`, node `i / 100` (the measured node holds pods 0..100).
fn pod_ip(i: usize) -> String {
    format!("10.130.{}.{}", i / PODS_PER_NODE, i % PODS_PER_NODE + 10)
}

fn pod(i: usize) -> (String, Value) {
    let ns = format!("bench-{}", i % NAMESPACES);
    let body = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p{i}"), "namespace": ns, "labels": {
            "app": format!("a{}", (i / NAMESPACES) % APPS),
            "group": format!("g{}", i / PODS_PER_NODE),
        }},
        "spec": {"nodeName": node_name(i / PODS_PER_NODE), "automountServiceAccountToken": false,
                 "containers": [{"name": "main", "image": "registry.invalid/none",
                                 "ports": [{"name": "http", "containerPort": 80}]}]},
    });
    (ns, body)
}

fn policy_resource(cluster_wide: bool) -> ApiResource {
    let (kind, plural) = if cluster_wide {
        (
            "CiliumClusterwideNetworkPolicy",
            "ciliumclusterwidenetworkpolicies",
        )
    } else {
        ("CiliumNetworkPolicy", "ciliumnetworkpolicies")
    };
    ApiResource {
        group: "cilium.io".into(),
        version: "v2".into(),
        api_version: "cilium.io/v2".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn change_policy(port: u16) -> Value {
    json!({
        "apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": "bench-change"},
        "spec": {"endpointSelector": {"matchLabels": {"group": "g0"}},
                 "ingress": [{"fromEntities": ["world"],
                              "toPorts": [{"ports": [{"port": port.to_string(), "protocol": "TCP"}]}]}]},
    })
}

/// Runs `requests` with [`CONCURRENCY`] in flight; panics on the first failure.
async fn all<F: std::future::Future<Output = Result<(), kube::Error>>>(
    what: &str,
    requests: impl Iterator<Item = F>,
) {
    let started = Instant::now();
    let mut n = 0;
    let mut s = futures::stream::iter(requests).buffer_unordered(CONCURRENCY);
    while let Some(r) = s.next().await {
        r.unwrap_or_else(|e| panic!("{what}: {e}"));
        n += 1;
    }
    println!("  {n} {what} in {:.1} s", started.elapsed().as_secs_f64());
}

/// Writes the namespaces, nodes, pods (with their status) and policies.
async fn populate(client: &kube::Client, pods: usize) {
    let pp = PostParams::default();
    let ssa = PatchParams::apply("bench").force();
    let nss: Api<Namespace> = Api::all(client.clone());
    all(
        "namespaces",
        (0..NAMESPACES).map(|n| {
            let ns = serde_json::from_value(json!({"metadata": {"name": format!("bench-{n}")}}));
            let nss = nss.clone();
            let pp = pp.clone();
            async move { nss.create(&pp, &ns.unwrap()).await.map(drop) }
        }),
    )
    .await;
    all(
        "service accounts",
        (0..NAMESPACES).map(|n| {
            let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &format!("bench-{n}"));
            let sa = serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
            let pp = pp.clone();
            async move { sas.create(&pp, &sa).await.map(drop) }
        }),
    )
    .await;
    let nodes: Api<Node> = Api::all(client.clone());
    all(
        "nodes",
        (0..pods / PODS_PER_NODE).map(|n| {
            let body = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node_name(n)},
                              "spec": {"podCIDR": format!("10.130.{n}.0/24")}});
            let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": format!("172.30.{}.{}", n / 250, n % 250 + 1)}]}});
            let (nodes, ssa) = (nodes.clone(), ssa.clone());
            async move {
                nodes.patch(&node_name(n), &ssa, &Patch::Apply(&body)).await?;
                let merge = PatchParams::default();
                nodes.patch_status(&node_name(n), &merge, &Patch::Merge(&status)).await.map(drop)
            }
        }),
    )
    .await;
    all(
        "pods",
        (0..pods).map(|i| {
            let (ns, body) = pod(i);
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let status = json!({"status": {"phase": "Running", "podIP": pod_ip(i), "podIPs": [{"ip": pod_ip(i)}]}});
            let pp = pp.clone();
            async move {
                api.create(&pp, &serde_json::from_value(body).unwrap()).await?;
                let merge = PatchParams::default();
                api.patch_status(&format!("p{i}"), &merge, &Patch::Merge(&status)).await.map(drop)
            }
        }),
    )
    .await;
    let cnp = policy_resource(false);
    all(
        "CiliumNetworkPolicies",
        (0..NAMESPACES * APPS).map(|k| {
            let (ns, app) = (k % NAMESPACES, k / NAMESPACES);
            let body = json!({
                "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                "metadata": {"name": format!("a{app}"), "namespace": format!("bench-{ns}")},
                "spec": {"endpointSelector": {"matchLabels": {"app": format!("a{app}")}},
                         "ingress": [{"fromEndpoints": [{"matchLabels": {"app": format!("a{}", (app + 1) % APPS)}}],
                                      "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]},
            });
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &format!("bench-{ns}"), &cnp);
            let ssa = ssa.clone();
            async move { api.patch(&format!("a{app}"), &ssa, &Patch::Apply(&body)).await.map(drop) }
        }),
    )
    .await;
    set_port(client, 1000).await;
}

async fn set_port(client: &kube::Client, port: u16) {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &policy_resource(true));
    api.patch(
        "bench-change",
        &PatchParams::apply("bench").force(),
        &Patch::Apply(&change_policy(port)),
    )
    .await
    .unwrap_or_else(|e| panic!("the CCNP: {e}"));
}

/// The measured node: a network namespace with one veth (both ends up) and /32 route per
/// local pod, as CNI `ptp` leaves them.
fn node_netns() {
    let _ = Command::new("ip").args(["netns", "del", NETNS]).status();
    run("ip", &["netns", "add", NETNS]);
    let mut batch = String::from("link set lo up\n");
    for i in 0..PODS_PER_NODE {
        batch.push_str(&format!(
            "link add wb{i} type veth peer name wbp{i}\nlink set wb{i} up\nlink set wbp{i} up\nroute add {}/32 dev wb{i}\n",
            pod_ip(i)
        ));
    }
    let file = std::env::temp_dir().join("ward-bench-agent.ip");
    std::fs::write(&file, batch).unwrap();
    run("ip", &["-n", NETNS, "-batch", file.to_str().unwrap()]);
}

fn run(cmd: &str, args: &[&str]) {
    let ok = Command::new(cmd).args(args).status().unwrap().success();
    assert!(ok, "{cmd} {args:?} failed");
}

/// The agent process and the node it runs for; both go when it is dropped (also when the
/// bench panics).
struct RunningAgent(Child);

impl Drop for RunningAgent {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.0.wait();
        let _ = Command::new("ip").args(["netns", "del", NETNS]).status();
        let _ = std::fs::remove_dir_all(format!("/sys/fs/bpf/ward/{NODE}"));
    }
}

fn start_agent(cluster: &TestCluster, run_dir: &std::path::Path) -> RunningAgent {
    let child = Command::new(env!("CARGO_BIN_EXE_ward-agent"))
        .args(["run", "--kube", "--node", NODE, "--resync-seconds", "3600"])
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .arg("--netns")
        .arg(format!("/run/netns/{NETNS}"))
        .arg("--run-dir")
        .arg(run_dir)
        .env(
            "WARD_LOG",
            std::env::var("WARD_BENCH_AGENT_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    RunningAgent(child)
}

/// Waits until `f` holds, polling every 0.2 ms; the time it took.
fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_micros(200));
    }
    started.elapsed()
}

/// The endpoint id of one local pod, once the agent has attached all of them.
fn attached_endpoint(limit: Duration) -> u32 {
    let mut ep = 0;
    until(limit, "the agent attaches every local pod", || {
        let Ok(maps) = NodeMaps::open_pinned(NODE) else {
            return false;
        };
        let eps = maps.endpoints().unwrap_or_default();
        ep = eps.first().map_or(0, |(_, info)| info.ep_id);
        eps.len() >= PODS_PER_NODE
    });
    ep
}

/// Sets pod `i`'s `group` label.
async fn set_group(client: &kube::Client, i: usize, group: &str) {
    let (ns, _) = pod(i);
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let patch = json!({"metadata": {"labels": {"group": group}}});
    api.patch(
        &format!("p{i}"),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .unwrap_or_else(|e| panic!("relabel p{i}: {e}"));
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {what}, to the maps ({} rounds): p50 {:.1} ms, p99 (largest) {:.1} ms, min {:.1} ms",
        samples.len(),
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1]),
        ms(samples[0])
    );
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        println!("agent bench: SKIPPED: needs root (BPF, network namespaces)");
        return;
    }
    let pods = env_usize("WARD_BENCH_PODS", 10_000);
    let rounds = env_usize("WARD_BENCH_ROUNDS", 30);
    assert!(pods.is_multiple_of(PODS_PER_NODE) && pods >= PODS_PER_NODE);
    let Some(cluster) = TestCluster::start() else {
        println!("agent bench: SKIPPED: no test cluster (ci/kube/build.sh)");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(&cluster.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    });
    println!("agent bench: {pods} pods on {} nodes", pods / PODS_PER_NODE);
    rt.block_on(populate(&client, pods));
    node_netns();
    let run_dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let agent = start_agent(&cluster, run_dir.path());
    let ep = attached_endpoint(Duration::from_secs(120));
    let maps = NodeMaps::open_pinned(NODE).unwrap();
    let key = |port| PolicyKey::port(ep, Direction::Ingress, IDENTITY_WORLD, TCP, port);
    until(Duration::from_secs(60), "the first sync", || {
        maps.policy_get(&key(1000)).unwrap().is_some()
    });
    println!(
        "  agent started and synced in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let mut samples = Vec::new();
    for r in 0..rounds {
        let port = 1001 + u16::try_from(r).unwrap();
        let t0 = Instant::now();
        rt.block_on(set_port(&client, port));
        until(Duration::from_secs(10), "the changed port", || {
            maps.policy_get(&key(port)).unwrap().is_some()
        });
        samples.push(t0.elapsed());
        // Removals follow additions (agent/sync.rs): the old port goes right after.
        until(Duration::from_secs(10), "the old port's removal", || {
            maps.policy_get(&key(port - 1)).unwrap().is_none()
        });
        std::thread::sleep(Duration::from_millis(200));
    }
    report("policy change touching 1% of the endpoints", &mut samples);
    // Pod 0 leaves the CCNP's group and comes back: the cluster changed, so the repository
    // is built again; its entry for the port goes and comes back.
    let mut samples = Vec::new();
    let port = 1000 + u16::try_from(rounds).unwrap();
    let pod0 = PolicyKey::port(
        endpoint_id("bench-0/p0"),
        Direction::Ingress,
        IDENTITY_WORLD,
        TCP,
        port,
    );
    for r in 0..rounds.div_ceil(3) {
        let back = r % 2 == 1;
        let t0 = Instant::now();
        rt.block_on(set_group(&client, 0, if back { "g0" } else { "elsewhere" }));
        until(Duration::from_secs(10), "pod 0's entry", || {
            maps.policy_get(&pod0).unwrap().is_some() == back
        });
        samples.push(t0.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    report("pod relabelled (the repository built again)", &mut samples);
    println!(
        "  agent peak memory (VmHWM): {:.1} MiB",
        vm_hwm_kib(agent.0.id()) as f64 / 1024.0
    );
    drop(agent);
}
