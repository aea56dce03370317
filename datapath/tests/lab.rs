//! The network-namespace lab: topology files are checked with file, line and field; a lab
//! comes up with real connectivity (TCP round trips pod -> pod on one node and across nodes,
//! pod <-> world, nodes -> pods), nothing routes out of it, and `down` removes every namespace
//! and the state file, also after a crash.
//!
//! Tests that build labs need root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2. Without them
//! they print `SKIPPED: <test>: <reason>` to stderr and pass, except in must-run mode (`ward_testkit::must_run`), where they fail.
//! Every test uses its own lab name, so they run in parallel.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use ward_datapath::lab::{Lab, Topology, in_netns, names, state_file};
use ward_engine::{Flow, Peer, PolicyRepository, Verdict};
use ward_schema::{Diagnostic, Limits, assemble, load_file};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Whether lab tests can run here; otherwise says why (and fails in must-run mode).
fn privileged(test: &str) -> bool {
    ward_testkit::can_run(test, ward_testkit::lab_missing().as_deref())
}

/// A lab name unique to this test run.
fn lab_name(tag: &str) -> String {
    format!("t{}-{tag}", std::process::id())
}

/// Removes the lab when the test ends, also when it panics.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Err(e) = Lab::down(&self.0) {
            eprintln!("cleanup of lab {} failed: {e:#}", self.0);
        }
    }
}

/// Two nodes, three pods (two on n1, one on n2), world in a documentation range.
fn small(lab: &str) -> String {
    format!(
        "apiVersion: ward.dev/v1alpha1
kind: LabTopology
metadata: {{name: {lab}}}
spec:
  underlay: 172.31.0.0/24
  nodes:
    - {{name: n1, ip: 172.31.0.1, podCIDR: 10.201.1.0/24}}
    - {{name: n2, ip: 172.31.0.2, podCIDR: 10.201.2.0/24}}
  world: {{name: world, ip: 198.51.100.10}}
  pods:
    - {{name: client, namespace: demo, labels: {{app: client}}, ip: 10.201.1.10, node: n1}}
    - {{name: local, namespace: demo, labels: {{app: server}}, ip: 10.201.1.20, node: n1, ports: [{{name: http, port: 8080}}]}}
    - {{name: remote, namespace: demo, labels: {{app: server}}, ip: 10.201.2.20, node: n2, ports: [{{port: 8080}}]}}
"
    )
}

fn topology(text: &str) -> Topology {
    Topology::parse("small.yaml", text.as_bytes()).unwrap_or_else(|d| panic!("{}", show(&d)))
}

fn show(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("{d}\n")).collect()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A TCP connection from namespace `from` to a listener on `to`'s `addr`, with one message
/// each way. Returns the source address the server saw.
fn round_trip(from: &Path, to: &Path, addr: SocketAddrV4) -> IpAddr {
    let listener = in_netns(to, move || TcpListener::bind(addr))
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot listen on {addr} in {}: {e}", to.display()));
    let target = SocketAddr::V4(addr);
    let mut client = in_netns(from, move || TcpStream::connect_timeout(&target, TIMEOUT))
        .unwrap()
        .unwrap_or_else(|e| panic!("{} -> {addr}: connect failed: {e}", from.display()));
    // The handshake is complete, so the connection is waiting in the accept queue.
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let (mut server, peer) = loop {
        match listener.accept() {
            Ok(c) => break c,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{} -> {addr}: accept failed: {e}", from.display()),
        }
    };
    server.set_nonblocking(false).unwrap();
    for s in [&client, &server] {
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
    }
    let mut buf = [0u8; 4];
    client.write_all(b"ping").unwrap();
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    server.write_all(b"pong").unwrap();
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong", "{} -> {addr}: no reply", from.display());
    peer.ip()
}

fn ip_in(netns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .arg("-n")
        .arg(netns)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip -n {netns} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sysctl(netns: &Path, key: &str) -> String {
    let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    in_netns(netns, move || std::fs::read_to_string(path))
        .unwrap()
        .unwrap()
        .trim()
        .to_owned()
}

fn existing(netns: &[String]) -> Vec<String> {
    netns
        .iter()
        .filter(|n| names::netns_path(n).exists())
        .cloned()
        .collect()
}

#[test]
fn packets_flow_between_pods_across_nodes_and_to_world_and_down_removes_everything() {
    if !privileged("packets_flow") {
        return;
    }
    let name = lab_name("flow");
    let _cleanup = Cleanup(name.clone());
    let t = topology(&small(&name));
    let lab = Lab::up(&t).unwrap_or_else(|e| panic!("{e:#}"));
    let all = lab.netns_names();
    assert_eq!(all.len(), 7, "underlay, 2 nodes, world, 3 pods: {all:?}");
    assert_eq!(existing(&all), all, "every namespace exists");
    assert!(state_file(&name).exists());
    let summary = lab.to_string();
    for needle in [
        "node n1",
        "demo/client",
        "10.201.2.20",
        "198.51.100.10",
        &lab.host_ifname("demo/remote"),
    ] {
        assert!(
            summary.contains(needle),
            "{needle:?} missing from:\n{summary}"
        );
    }

    let client = lab.pod_netns("demo/client");
    let local = lab.pod_netns("local");
    let remote = lab.pod_netns("demo/remote");
    let world = lab.world_netns();

    // pod -> pod on the same node, and across nodes: no NAT, the server sees the pod.
    assert_eq!(
        round_trip(&client, &local, SocketAddrV4::new(v4("10.201.1.20"), 8080)),
        v4("10.201.1.10")
    );
    assert_eq!(
        round_trip(&client, &remote, SocketAddrV4::new(v4("10.201.2.20"), 8080)),
        v4("10.201.1.10")
    );
    assert_eq!(
        round_trip(&remote, &local, SocketAddrV4::new(v4("10.201.1.20"), 8081)),
        v4("10.201.2.20")
    );
    // pod -> world and world -> pod (replies come back through the right node).
    assert_eq!(
        round_trip(&client, &world, SocketAddrV4::new(v4("198.51.100.10"), 80)),
        v4("10.201.1.10")
    );
    assert_eq!(
        round_trip(&remote, &world, SocketAddrV4::new(v4("198.51.100.10"), 443)),
        v4("10.201.2.20")
    );
    assert_eq!(
        round_trip(&world, &local, SocketAddrV4::new(v4("10.201.1.20"), 9000)),
        v4("198.51.100.10")
    );
    // A node reaches its own pods from its underlay address, and other nodes' pods.
    assert_eq!(
        round_trip(
            &lab.node_netns("n1"),
            &local,
            SocketAddrV4::new(v4("10.201.1.20"), 9001)
        ),
        v4("172.31.0.1")
    );
    assert_eq!(
        round_trip(
            &lab.node_netns("n2"),
            &client,
            SocketAddrV4::new(v4("10.201.1.10"), 9002)
        ),
        v4("172.31.0.2")
    );

    // Nothing is routed out of the lab: an address that is not in it is unreachable at once.
    let outside = SocketAddr::V4(SocketAddrV4::new(v4("192.0.2.99"), 80));
    let started = Instant::now();
    let err = in_netns(&client, move || {
        TcpStream::connect_timeout(&outside, TIMEOUT)
    })
    .unwrap()
    .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::NetworkUnreachable | ErrorKind::HostUnreachable
        ),
        "connect to an outside address: {err} ({:?})",
        err.kind()
    );
    assert!(
        started.elapsed() < TIMEOUT,
        "the node answers with ICMP unreachable, no timeout"
    );

    // Names, sysctls and addresses as documented.
    let n1 = names::node_netns(&name, "n1");
    let links = ip_in(&n1, &["-o", "link", "show"]);
    assert!(
        links.contains(&lab.host_ifname("demo/client"))
            && links.contains(&lab.host_ifname("demo/local")),
        "{links}"
    );
    assert!(
        !links.contains(&lab.host_ifname("demo/remote")),
        "remote runs on n2: {links}"
    );
    assert!(
        lab.host_ifname("demo/client").starts_with("lxc")
            && lab.host_ifname("demo/client").len() <= 15
    );
    assert_eq!(sysctl(&lab.node_netns("n1"), "net.ipv4.ip_forward"), "1");
    assert_eq!(sysctl(&client, "net.ipv4.ip_forward"), "0");
    for ns in [
        &client,
        &world,
        &lab.node_netns("n2"),
        &lab.underlay_netns(),
    ] {
        assert_eq!(sysctl(ns, "net.ipv6.conf.all.disable_ipv6"), "1");
    }
    let pod_ns = names::pod_netns(&name, "demo", "client");
    assert_eq!(
        ip_in(&pod_ns, &["-6", "addr", "show"]).trim(),
        "",
        "no IPv6 addresses in a pod"
    );
    assert!(ip_in(&pod_ns, &["-4", "addr", "show", "dev", "eth0"]).contains("10.201.1.10/32"));
    assert!(ip_in(&pod_ns, &["route", "show"]).contains("default via 169.254.1.1 dev eth0"));
    let bridge = ip_in(
        &names::underlay_netns(&name),
        &["-o", "link", "show", "master", "br0"],
    );
    for port in ["v-n1", "v-n2", "v-world"] {
        assert!(bridge.contains(port), "{port} on the bridge: {bridge}");
    }

    // down removes every namespace and the state file, and is idempotent.
    let gone = Lab::down(&name).unwrap();
    assert_eq!(gone.removed.len(), 7, "{gone:?}");
    assert!(gone.state_file);
    assert_eq!(existing(&all), Vec::<String>::new());
    assert!(!state_file(&name).exists());
    let again = Lab::down(&name).unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert!(Lab::status().unwrap().iter().all(|l| l.name != name));
}

#[test]
fn down_by_name_cleans_up_after_a_crash() {
    if !privileged("down_after_crash") {
        return;
    }
    let name = lab_name("crash");
    let _cleanup = Cleanup(name.clone());
    let lab = Lab::up(&topology(&small(&name))).unwrap_or_else(|e| panic!("{e:#}"));
    let all = lab.netns_names();
    std::mem::forget(lab); // a crash: no in-memory state survives
    let status = Lab::status().unwrap();
    let found = status
        .iter()
        .find(|l| l.name == name)
        .expect("status lists the lab");
    assert_eq!(found.present.len(), all.len());
    assert!(
        found.missing.is_empty() && found.state.is_some(),
        "{found:?}"
    );

    // Lose the state file too: the prefix scan still finds every namespace.
    std::fs::remove_file(state_file(&name)).unwrap();
    let gone = Lab::down(&name).unwrap();
    assert_eq!(gone.removed.len(), all.len(), "{gone:?}");
    assert_eq!(existing(&all), Vec::<String>::new());
    assert!(Lab::status().unwrap().iter().all(|l| l.name != name));
}

#[test]
fn up_refuses_an_existing_lab_and_up_replacing_rebuilds_it() {
    if !privileged("up_twice") {
        return;
    }
    let name = lab_name("twice");
    let _cleanup = Cleanup(name.clone());
    let t = topology(&small(&name));
    let lab = Lab::up(&t).unwrap_or_else(|e| panic!("{e:#}"));
    let err = format!("{:#}", Lab::up(&t).unwrap_err());
    assert!(
        err.contains("already exists") && err.contains("ward lab down"),
        "{err}"
    );
    // The refused attempt touched nothing: the lab still works.
    let client = lab.pod_netns("demo/client");
    assert_eq!(
        round_trip(
            &client,
            &lab.pod_netns("demo/remote"),
            SocketAddrV4::new(v4("10.201.2.20"), 7000)
        ),
        v4("10.201.1.10")
    );
    let lab = Lab::up_replacing(&t).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        round_trip(
            &client,
            &lab.world_netns(),
            SocketAddrV4::new(v4("198.51.100.10"), 7001)
        ),
        v4("10.201.1.10")
    );
    lab.teardown().unwrap();
    assert!(!state_file(&name).exists());
}

#[test]
fn a_failed_up_names_the_command_and_removes_what_it_built() {
    if !privileged("failed_up") {
        return;
    }
    let name = lab_name("fail");
    let _cleanup = Cleanup(name.clone());
    // Bypass the checks: two pods on n1 with one address make the second pod's route fail.
    let mut t = topology(&small(&name));
    t.pods[1].ip = t.pods[0].ip;
    let err = format!("{:#}", Lab::up(&t).unwrap_err());
    assert!(err.contains("what was built has been removed"), "{err}");
    assert!(
        err.contains("`ip -n ") && err.contains("route add 10.201.1.10/32"),
        "names the command: {err}"
    );
    assert!(err.contains("File exists"), "carries ip's stderr: {err}");
    let t_ok = topology(&small(&name));
    assert_eq!(
        existing(
            &t_ok
                .pods
                .iter()
                .map(|p| names::pod_netns(&name, &p.namespace, &p.name))
                .collect::<Vec<_>>()
        ),
        Vec::<String>::new()
    );
    assert!(!names::netns_path(&names::underlay_netns(&name)).exists());
    assert!(!state_file(&name).exists());
}

#[test]
fn in_netns_reports_a_missing_namespace() {
    let err = in_netns(Path::new("/run/netns/w-no-such-lab.pod.x.y"), || ()).unwrap_err();
    assert!(
        format!("{err:#}").contains("/run/netns/w-no-such-lab.pod.x.y"),
        "{err:#}"
    );
}

// ---- topology files ----

/// A valid topology whose lines are known: line 9 is pods[0], line 10 is pods[1].
const BASE: &str = "apiVersion: ward.dev/v1alpha1
kind: LabTopology
metadata: {name: diag}
spec:
  underlay: 172.31.0.0/24
  nodes:
    - {name: n1, ip: 172.31.0.1, podCIDR: 10.201.1.0/24}
    - {name: n2, ip: 172.31.0.2, podCIDR: 10.201.2.0/24}
  world: {name: world, ip: 198.51.100.10}
  pods:
    - {name: a, namespace: demo, ip: 10.201.1.10, node: n1}
    - {name: b, namespace: demo, ip: 10.201.2.10, node: n2}
";

fn errors_of(text: &str) -> Vec<Diagnostic> {
    match Topology::parse("lab.yaml", text.as_bytes()) {
        Ok(t) => panic!("accepted: {t:?}"),
        Err(d) => d,
    }
}

/// The one error at `path`, which must be on `line`.
fn the_error<'a>(diags: &'a [Diagnostic], path: &str, line: usize) -> &'a Diagnostic {
    let found: Vec<&Diagnostic> = diags.iter().filter(|d| d.path == path).collect();
    assert_eq!(found.len(), 1, "one finding at {path}:\n{}", show(diags));
    let d = found[0];
    assert_eq!((d.file.as_str(), d.line), ("lab.yaml", line), "{d}");
    assert!(d.column > 0 && d.is_error(), "{d}");
    d
}

#[test]
fn the_base_topology_is_valid() {
    let t = topology(BASE);
    assert_eq!(t.pods.len(), 2);
    assert_eq!(ward_engine::Cluster::from_topology(&t).check(), vec![]);
}

#[test]
fn a_pod_on_an_undeclared_node_names_the_line_and_the_nodes() {
    let d = errors_of(&BASE.replace("node: n2}", "node: n3}"));
    let e = the_error(&d, "spec.pods[1].node", 12);
    assert!(e.message.contains("node \"n3\" is not declared"), "{e}");
    assert_eq!(e.code, "WARD-L004");
    assert!(e.hint.as_deref().unwrap_or("").contains("n1, n2"), "{e}");
    assert!(e.to_string().starts_with("lab.yaml:12:"), "{e}");

    let d = errors_of(&BASE.replace(", node: n2}", "}"));
    let e = the_error(&d, "spec.pods[1].node", 12);
    assert!(e.message.contains("has no \"node\""), "{e}");
}

#[test]
fn an_address_used_twice_points_at_the_second_use_and_names_the_first() {
    let d = errors_of(
        &BASE
            .replace("ip: 10.201.2.10", "ip: 10.201.1.10")
            .replace("node: n2}", "node: n1}"),
    );
    let e = the_error(&d, "spec.pods[1].ip", 12);
    assert!(
        e.message
            .contains("10.201.1.10 is already used by pod demo/a (line 11)"),
        "{e}"
    );
    assert_eq!(e.code, "WARD-L003");

    // The world host on a node's address: every problem with it is reported.
    let d = errors_of(&BASE.replace("ip: 198.51.100.10", "ip: 172.31.0.2"));
    let at_world: Vec<&str> = d
        .iter()
        .filter(|x| x.path == "spec.world.ip")
        .map(|x| x.message.as_str())
        .collect();
    assert!(
        at_world
            .iter()
            .any(|m| m.contains("not a documentation address")),
        "{}",
        show(&d)
    );
    assert!(
        at_world
            .iter()
            .any(|m| m.contains("already used by node n2 (line 8)")),
        "{}",
        show(&d)
    );
    assert!(d.iter().all(|x| x.line == 9), "{}", show(&d));
}

#[test]
fn a_pod_address_outside_its_node_cidr_is_reported() {
    let d = errors_of(&BASE.replace("ip: 10.201.2.10", "ip: 10.201.1.77"));
    let e = the_error(&d, "spec.pods[1].ip", 12);
    assert!(
        e.message
            .contains("10.201.1.77 is outside podCIDR 10.201.2.0/24 of its node n2"),
        "{e}"
    );
}

#[test]
fn names_prefixes_and_fields_are_checked() {
    let cases: &[(&str, &str, &str, usize, &str)] = &[
        (
            "{name: b, namespace: demo",
            "{name: a, namespace: demo",
            "spec.pods[1].name",
            12,
            "pod demo/a is declared more than once (first on line 11)",
        ),
        (
            "{name: n2, ip",
            "{name: n1, ip",
            "spec.nodes[1].name",
            8,
            "node n1 is declared more than once (first on line 7)",
        ),
        (
            "podCIDR: 10.201.2.0/24",
            "podCIDR: 10.201.0.0/16",
            "spec.nodes[1].podCIDR",
            8,
            "overlaps podCIDR 10.201.1.0/24 of node n1 (line 7)",
        ),
        (
            "podCIDR: 10.201.2.0/24",
            "podCIDR: 10.201.2.0/33",
            "spec.nodes[1].podCIDR",
            8,
            "the prefix length must be 0 to 32",
        ),
        (
            "podCIDR: 10.201.2.0/24",
            "podCIDR: 10.201.2.5/24",
            "spec.nodes[1].podCIDR",
            8,
            "host bits set; the prefix is 10.201.2.0/24",
        ),
        (
            "podCIDR: 10.201.2.0/24",
            "podCIDR: 8.8.0.0/16",
            "spec.nodes[1].podCIDR",
            8,
            "is not a private prefix",
        ),
        (
            "ip: 172.31.0.2,",
            "ip: 172.31.0.300,",
            "spec.nodes[1].ip",
            8,
            "is not an IPv4 address",
        ),
        (
            "ip: 172.31.0.2,",
            "ip: 172.31.1.2,",
            "spec.nodes[1].ip",
            8,
            "outside the underlay 172.31.0.0/24",
        ),
        (
            "underlay: 172.31.0.0/24",
            "underlay: 172.31.0.0/244",
            "spec.underlay",
            5,
            "not a CIDR",
        ),
        (
            "{name: n2, ip",
            "{name: node-with-a-long-name, ip",
            "spec.nodes[1].name",
            8,
            "\"v-node-with-a-long-name\" would be 23 characters; Linux allows 15",
        ),
        (
            "{name: a, namespace: demo",
            "{name: A, namespace: demo",
            "spec.pods[0].name",
            11,
            "is not a valid name",
        ),
        (
            "node: n1}",
            "node: n1, port: 80}",
            "spec.pods[0].port",
            11,
            "unknown field \"port\"",
        ),
        (
            "kind: LabTopology",
            "kind: PolicyTest",
            "kind",
            2,
            "is not a lab topology",
        ),
    ];
    for (from, to, path, line, message) in cases {
        assert!(BASE.contains(from), "{from}");
        let d = errors_of(&BASE.replacen(from, to, 1));
        let e = the_error(&d, path, *line);
        assert!(e.message.contains(message), "{to}: {e}");
    }
    let d = errors_of(&BASE.replace(
        ", ip: 10.201.1.10, node: n1}",
        ", ip: 10.201.1.10, node: n1, ports: [{port: 80, protocol: ICMP}]}",
    ));
    assert!(
        the_error(&d, "spec.pods[0].ports[0].protocol", 11)
            .message
            .contains("not TCP, UDP or SCTP")
    );
    let d = errors_of("a: [\n");
    assert!(
        d[0].code.starts_with("WARD-Y") && d[0].file == "lab.yaml",
        "{}",
        show(&d)
    );
}

#[test]
fn every_problem_is_reported_in_one_pass() {
    let text = BASE
        .replace("node: n2}", "node: n9}")
        .replace("ip: 10.201.1.10", "ip: 10.201.2.99")
        .replace("podCIDR: 10.201.2.0/24", "podCIDR: 10.201.1.128/25");
    let d = errors_of(&text);
    let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.nodes[1].podCIDR",
            "spec.pods[0].ip",
            "spec.pods[1].node"
        ],
        "{}",
        show(&d)
    );
}

/// The world host's further addresses: any unicast IPv4 outside the cluster's prefixes, each
/// used once in the topology.
#[test]
fn world_addresses_are_checked() {
    let with = |addresses: &str| {
        BASE.replace(
            "world: {name: world, ip: 198.51.100.10}",
            &format!("world: {{name: world, ip: 198.51.100.10, addresses: [{addresses}]}}"),
        )
    };
    let t = topology(&with("10.20.1.5, 192.0.2.7"));
    assert_eq!(
        t.world
            .all_addresses()
            .map(|a| a.to_string())
            .collect::<Vec<_>>(),
        ["198.51.100.10", "10.20.1.5", "192.0.2.7"]
    );
    let d = errors_of(&with(
        "10.201.1.99, 127.0.0.1, nope, 198.51.100.10, 10.201.1.10",
    ));
    let messages: Vec<(&str, &str)> = d
        .iter()
        .map(|d| (d.path.as_str(), d.message.as_str()))
        .collect();
    assert_eq!(
        messages,
        [
            (
                "spec.world.addresses[0]",
                "world: address 10.201.1.99 lies inside the cluster's prefixes"
            ),
            (
                "spec.world.addresses[1]",
                "world: address 127.0.0.1 is no host's address (loopback, link-local, multicast or broadcast)"
            ),
            (
                "spec.world.addresses[2]",
                "world: addresses[2] is not an IP address"
            ),
            (
                "spec.world.addresses[3]",
                "world: address 198.51.100.10 is already used by world (line 9)"
            ),
            (
                "spec.world.addresses[4]",
                "world: address 10.201.1.10 lies inside the cluster's prefixes"
            ),
        ],
        "{}",
        show(&d)
    );
}

#[test]
fn load_reads_a_file_and_names_it() {
    let dir = std::env::temp_dir().join(format!("ward-lab-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(&file, BASE.replace("node: n2}", "node: n3}")).unwrap();
    let d = Topology::load(&file).unwrap_err();
    assert_eq!(d[0].file, file.display().to_string());
    assert_eq!(d[0].line, 12);
    let missing = Topology::load(dir.join("missing.yaml")).unwrap_err();
    assert!(
        missing[0].message.contains("cannot read"),
        "{}",
        show(&missing)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- the repository's lab ----

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn repository_lab() -> Topology {
    Topology::load(workspace().join("cluster-config/lab.yaml"))
        .unwrap_or_else(|d| panic!("{}", show(&d)))
}

/// Every endpoint the repository's PolicyTests declare exists in the lab with the same
/// identity labels (namespace labels included), and the engine over the lab's cluster and the
/// repository's policies gives the seed scenario's verdicts.
#[test]
fn the_repository_lab_carries_the_policy_tests_workloads_and_the_engine_agrees() {
    let t = repository_lab();
    assert_eq!(t.name, "shop");
    assert_eq!(t.nodes.len(), 2);
    let cluster = ward_engine::Cluster::from_topology(&t);
    assert_eq!(cluster.check(), vec![]);
    let backend = t.pod("shop/backend").unwrap();
    assert!(
        backend
            .ports
            .iter()
            .any(|p| p.port == 80 && p.name.as_deref() == Some("http"))
    );
    assert_ne!(
        t.pod("shop/frontend").unwrap().node,
        backend.node,
        "frontend -> backend crosses nodes"
    );

    // The PolicyTests' endpoints, compared by identity labels.
    let mut test_files: Vec<PathBuf> = std::fs::read_dir(workspace().join("policies/tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    test_files.sort();
    assert!(!test_files.is_empty());
    let mut compared = 0;
    for file in &test_files {
        let parsed =
            ward_schema::yaml::parse_bytes("t", &std::fs::read(file).unwrap(), &Limits::default());
        for doc in parsed.docs {
            let json = doc.root.to_json();
            let endpoints = json["spec"]["endpoints"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for ep in endpoints {
                let declared: ward_engine::Endpoint = serde_json::from_value(serde_json::json!({
                    "name": ep["name"], "namespace": ep["namespace"], "labels": ep["labels"],
                }))
                .unwrap();
                let full = declared.full_name();
                let pod = t.pod(&full).unwrap_or_else(|| {
                    panic!("{}: endpoint {full} is not in the lab", file.display())
                });
                let lab_ep = cluster
                    .endpoints
                    .iter()
                    .find(|e| e.full_name() == full)
                    .unwrap();
                let solo = ward_engine::Cluster::default();
                assert_eq!(
                    lab_ep.identity_labels(&cluster, "default").unwrap(),
                    declared.identity_labels(&solo, "default").unwrap(),
                    "{}: {full} has other labels in the lab ({:?})",
                    file.display(),
                    pod.labels
                );
                compared += 1;
            }
        }
    }
    assert!(compared >= 9, "compared {compared} endpoints");

    // The engine on the lab's cluster with the repository's policies.
    let mut reports = Vec::new();
    for dir in ["policies/namespaces", "policies/clusterwide"] {
        let mut stack = vec![workspace().join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "yaml") {
                    reports.push(load_file(
                        &p.display().to_string(),
                        &std::fs::read(&p).unwrap(),
                        &Limits::default(),
                    ));
                }
            }
        }
    }
    let v = assemble(reports);
    assert!(v.is_valid(), "{}", show(&v.diagnostics));
    let repo = PolicyRepository::from_resources(cluster.clone(), &v.resources).unwrap();
    let ep = |n: &str| Peer::Endpoint(repo.endpoint_id(n).unwrap());
    let world = Peer::Ip(IpAddr::V4(t.world.ip));
    let allowed = |src: Peer, dst: Peer, port: u16| {
        repo.verdict(&Flow::tcp(src, dst, port)).verdict == Verdict::Allow
    };
    assert!(allowed(ep("shop/frontend"), ep("shop/backend"), 80));
    assert!(!allowed(ep("shop/frontend"), ep("shop/backend"), 8080));
    assert!(!allowed(ep("shop/admin"), ep("shop/backend"), 80));
    assert!(!allowed(ep("other/intruder"), ep("shop/backend"), 80));
    assert!(!allowed(ep("shop/backend"), ep("shop/frontend"), 80));
    assert!(!allowed(ep("shop/frontend"), world, 443));
    assert!(allowed(ep("kube-system/kube-dns"), world, 53));
    let udp53 = |src: &str| {
        let mut f = Flow::tcp(ep(src), ep("kube-system/kube-dns"), 53);
        f.protocol = ward_engine::Protocol::UDP;
        repo.verdict(&f).verdict == Verdict::Allow
    };
    assert!(
        udp53("jobs/opt-in"),
        "the namespace label opts jobs in to allow-kube-dns"
    );
    assert!(!udp53("shop/backend"));
}

#[test]
fn the_repository_lab_builds_and_the_seed_flows_connect() {
    if !privileged("repository_lab") {
        return;
    }
    // The repository's topology under a test-only name, so a developer's own `shop` lab is
    // left alone.
    let mut t = repository_lab();
    t.name = lab_name("repo");
    let _cleanup = Cleanup(t.name.clone());
    let lab = Lab::up(&t).unwrap_or_else(|e| panic!("{e:#}"));
    let backend = SocketAddrV4::new(t.pod("shop/backend").unwrap().ip, 80);
    let frontend_ip = t.pod("shop/frontend").unwrap().ip;
    assert_eq!(
        round_trip(
            &lab.pod_netns("shop/frontend"),
            &lab.pod_netns("shop/backend"),
            backend
        ),
        frontend_ip
    );
    let world = SocketAddrV4::new(t.world.ip, 53);
    let dns = t.pod("kube-system/kube-dns").unwrap().ip;
    assert_eq!(
        round_trip(
            &lab.pod_netns("kube-system/kube-dns"),
            &lab.world_netns(),
            world
        ),
        dns
    );
    let n = lab.netns_names().len();
    assert_eq!(lab.teardown().unwrap().removed.len(), n);
}
