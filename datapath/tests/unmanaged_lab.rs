//! A node without an agent (`agent: false` in the topology, Cilium's "node without Cilium"),
//! with real packets: nothing enforces policy on it, and to the nodes that run one its
//! address and its pods' are `world` (Cilium learns pods from CiliumEndpoints and nodes from
//! CiliumNodes, which such a node never gets), whatever labels its pods carry.
//!
//! Checked: a pod there with a client's labels is not a client (dropped where clients are
//! allowed) but is `world` (allowed where world is); a managed pod whose egress allows the
//! cluster only cannot reach it; its own traffic to world passes where a policy stops the
//! managed pods' (no agent there); the engine, over the cluster the agents see, decides
//! every one of these flows as the kernel did; and an agent asked to run on that node
//! refuses, saying why.
//!
//! Needs root and bpffs; without them it prints `SKIPPED: <test>: <reason>` (a failure in
//! must-run mode).

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod common;

use common::lab::{AgentLab, privileged, tcp_connect, tcp_server};
use std::net::IpAddr;
use std::time::Duration;
use ward_engine::{Flow, Peer, PolicyRepository, Verdict};

const LAB: &str = "apiVersion: ward.dev/v1alpha1
kind: LabTopology
metadata:
  name: shop
spec:
  underlay: 172.30.0.0/24
  nodes:
    - {name: node-1, ip: 172.30.0.11, podCIDR: 10.1.0.0/24}
    - {name: node-2, ip: 172.30.0.12, podCIDR: 10.1.1.0/24, agent: false}
  world: {name: world, ip: 203.0.113.10}
  pods:
    - {name: client, namespace: shop, labels: {app: client}, ip: 10.1.0.10, node: node-1}
    - {name: echo, namespace: shop, labels: {app: echo}, ip: 10.1.0.20, node: node-1}
    - {name: outsider, namespace: shop, labels: {app: client}, ip: 10.1.1.10, node: node-2}
";

const POLICY: &str = include_str!("data/unmanaged-policy.yaml");

const OPEN: Duration = Duration::from_secs(2);
const SHUT: Duration = Duration::from_millis(400);

#[test]
fn a_node_without_an_agent_is_world_and_enforces_nothing() {
    if !privileged("unmanaged_lab") {
        return;
    }
    let mut lab = AgentLab::up("unm", LAB);
    let (client, echo, outsider) = ("shop/client", "shop/echo", "shop/outsider");
    for port in [80, 9090] {
        tcp_server(&lab.netns(echo), lab.ip(echo), port);
    }
    tcp_server(&lab.netns(outsider), lab.ip(outsider), 80);
    let world = IpAddr::from(lab.ip("world"));
    tcp_server(&lab.netns("world"), world, 81);
    lab.write_objects(&common::load(POLICY));
    let nodes = lab.nodes();
    let (managed, unmanaged) = (&nodes[0], &nodes[1]);
    lab.start_agent(managed);

    // An agent on the node without one refuses, and says why.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ward-agent"))
        .args(["run", "--once", "--node", unmanaged, "--topology"])
        .arg(&lab.topology_path)
        .arg("--state")
        .arg(&lab.state)
        .arg("--run-dir")
        .arg(lab.path("run-unmanaged"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("`agent: false`"),
        "{stderr}"
    );

    let at = |who: &str| -> IpAddr { lab.ip(who).into() };
    let cases = [
        (client, at(echo), 80, true, "a client reaches echo:80"),
        (
            outsider,
            at(echo),
            80,
            false,
            "the unmanaged pod's client label counts for nothing: it is world",
        ),
        (
            outsider,
            at(echo),
            9090,
            true,
            "it is world, which echo admits on 9090",
        ),
        (
            client,
            at(outsider),
            80,
            false,
            "client's egress allows the cluster: the unmanaged pod is not in it",
        ),
        (
            outsider,
            world,
            81,
            true,
            "nothing enforces the unmanaged pod's own egress",
        ),
        (
            client,
            world,
            81,
            false,
            "client's egress allows world on 443 only",
        ),
    ];
    let cluster = ward_engine::Cluster::from_topology(lab.lab.topology());
    assert!(
        cluster.nodes.iter().all(|n| n.name == *managed)
            && cluster.endpoints.iter().all(|e| e.name != "outsider"),
        "the agents' cluster leaves the node without an agent and its pods out"
    );
    let repo = PolicyRepository::from_resources(cluster, &common::load(POLICY)).unwrap();
    for (from, to, port, open, what) in cases {
        let passed =
            tcp_connect(&lab.netns(from), to, port, if open { OPEN } else { SHUT }).is_some();
        assert_eq!(passed, open, "{what}: {from} -> {to}:{port}");
        let engine = repo
            .verdict(&Flow::tcp(Peer::Ip(at(from)), Peer::Ip(to), port))
            .verdict;
        assert_eq!(
            engine == Verdict::Allow,
            passed,
            "the engine and the kernel on {from} -> {to}:{port} ({what})"
        );
    }
}
