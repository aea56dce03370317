//! `ward-agent` enforcing the repository's own policies on the lab of
//! `cluster-config/lab.yaml`, with real packets: the seed scenario, a policy change under an
//! established connection, SIGKILL of the agent, a restart, and the verdict events.
//!
//! Needs root and bpffs; without them it prints `SKIPPED: <test>: <reason>` (a failure in must-run mode (`ward_testkit::must_run`)).

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod common;

use common::lab::{
    AgentLab, privileged, repo_resources, still_works, tcp_connect, tcp_server, udp_roundtrip,
    udp_server, wait_for,
};
use std::net::IpAddr;
use std::time::Duration;
use ward_datapath::agent::observe::{self, ObserveOptions};
use ward_datapath::bpf::events::EventReader;
use ward_datapath::bpf::maps::Verdict as MapVerdict;
use ward_datapath::lab::probe;

const LAB: &str = include_str!("../../cluster-config/lab.yaml");
const OPEN: Duration = Duration::from_secs(2);
const SHUT: Duration = Duration::from_millis(400);

#[test]
fn the_seed_scenario_is_enforced_in_the_kernel_and_survives_changes_and_sigkill() {
    if !privileged("agent_lab") {
        return;
    }
    let mut lab = AgentLab::up("seed", LAB);
    // The repository's CiliumConfig with encryption off: this test is about the BPF
    // enforcement, which must outlive the agents; the userspace tunnel outlives them too (and
    // fails closed when its device dies), which wireguard_lab.rs tests.
    let mut policies = repo_resources(&["policies", "cluster-config/cilium-config.yaml"]);
    let mut config = policies
        .iter()
        .find(|r| r.key.kind == ward_schema::Kind::CiliumConfig)
        .expect("cluster-config has a CiliumConfig")
        .clone();
    config.object["spec"]["enable-encryption"] = serde_json::json!(false);
    policies.insert(config);
    lab.write_objects(&policies);
    for n in lab.nodes() {
        lab.start_agent(&n);
    }
    let (frontend, backend, admin, intruder) = (
        "shop/frontend",
        "shop/backend",
        "shop/admin",
        "other/intruder",
    );
    for port in [80, 81] {
        tcp_server(&lab.netns(backend), lab.ip(backend), port);
    }
    tcp_server(&lab.netns("world"), lab.ip("world"), 80);
    tcp_server(&lab.netns(frontend), lab.ip(frontend), 8080);
    udp_server(
        &lab.netns("kube-system/kube-dns"),
        lab.ip("kube-system/kube-dns"),
        53,
    );

    // The seed's intent, across nodes (frontend on node-1, backend on node-2).
    let mut established =
        conn(&lab, frontend, backend, 80, OPEN).expect("frontend must reach backend:80");
    assert!(
        still_works(&mut established),
        "replies of an allowed connection pass"
    );
    assert!(
        conn(&lab, admin, backend, 80, SHUT).is_none(),
        "admin must not reach backend:80"
    );
    assert!(
        conn(&lab, intruder, backend, 80, SHUT).is_none(),
        "frontend's labels in another namespace must not reach backend"
    );
    assert!(
        conn(&lab, frontend, backend, 81, SHUT).is_none(),
        "frontend must not reach backend:81"
    );
    assert!(
        conn(&lab, backend, "world", 80, SHUT).is_none(),
        "backend opens nothing outward (world)"
    );
    assert!(
        conn(&lab, backend, frontend, 8080, SHUT).is_none(),
        "backend opens nothing outward (pods)"
    );
    assert!(
        udp_roundtrip(
            &lab.netns(frontend),
            lab.ip("kube-system/kube-dns"),
            53,
            OPEN
        ),
        "frontend resolves names through kube-dns"
    );

    // The admin console (a Kubernetes NetworkPolicy) across nodes: the on-call pod of an ops
    // namespace gets in on 8443; another ops pod and an on-call pod elsewhere do not (the
    // namespace and pod selectors of one peer are ANDed).
    tcp_server(&lab.netns(admin), lab.ip(admin), 8443);
    assert!(
        conn(&lab, "ops/oncall", admin, 8443, OPEN).is_some(),
        "ops/oncall must reach admin:8443 (admin-ingress)"
    );
    for other in ["ops/ops-dashboard", "batch/stray-oncall"] {
        assert!(
            conn(&lab, other, admin, 8443, SHUT).is_none(),
            "{other} must not reach admin:8443"
        );
    }

    // The drop of admin -> backend:80 is an event on backend's node, default deny, with the
    // identities of both ends.
    let backend_node = lab.node_of(backend);
    // `ward-agent status` finds the agent, started with --run-dir, without being told where.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_ward-agent"))
        .args(["status", "--node", &backend_node, "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&status.stderr)));
    assert_eq!(
        doc["agentRunning"], true,
        "status without --run-dir: {doc:#}"
    );
    assert!(
        doc["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == backend),
        "endpoints named from the agent's run directory: {doc:#}"
    );
    let mut events = EventReader::open(&backend_node).unwrap();
    assert!(conn(&lab, admin, backend, 80, SHUT).is_none());
    let admin_ip = lab.ip(admin);
    let mut seen = None;
    wait_for(
        "the drop event of admin -> backend:80",
        Duration::from_secs(5),
        || {
            while let Ok(Some(e)) = events.next(Duration::from_millis(50)) {
                if e.saddr() == admin_ip && e.dport() == 80 {
                    seen = Some(e);
                    return true;
                }
            }
            false
        },
    );
    let e = seen.unwrap();
    assert_eq!(e.verdict(), Some(MapVerdict::DefaultDeny), "{e:?}");
    drop(events);

    // `ward observe` (its library half) names both pods, the port and why it was dropped.
    let opts = ObserveOptions {
        nodes: vec![backend_node.clone()],
        pod: Some(admin.to_owned()),
        verdict: Some("dropped".into()),
        count: Some(1),
        duration: Some(Duration::from_secs(10)),
        topology: Some(ward_datapath::lab::Topology::load(&lab.topology_path).unwrap()),
        ..ObserveOptions::default()
    };
    let watcher = std::thread::spawn(move || {
        let mut out = Vec::new();
        observe::run(&opts, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    });
    // The watcher is ready when it has opened the ring buffer, which it does not announce:
    // knock until it has seen a drop (it stops after one) or its own duration ends.
    while !watcher.is_finished() {
        assert!(conn(&lab, admin, backend, 80, SHUT).is_none());
    }
    let line = watcher.join().unwrap();
    for want in [
        "DEFAULT-DENY",
        "shop/admin",
        "shop/backend:80/TCP",
        "ingress of the destination",
        "default deny",
    ] {
        assert!(line.contains(want), "`{want}` missing from: {line}");
    }

    // A policy change: admin may now reach backend:80. The established connection stays.
    let widened = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: admin-to-backend, namespace: shop}\nspec:\n  endpointSelector: {matchLabels: {app: backend}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: admin}}]\n    toPorts: [{ports: [{port: \"80\", protocol: TCP}]}]\n";
    let mut wider = policies.clone();
    let extra = ward_schema::assemble(vec![ward_schema::load_file(
        "admin.yaml",
        widened.as_bytes(),
        &ward_schema::Limits::default(),
    )]);
    assert!(extra.is_valid(), "{:?}", extra.diagnostics);
    for r in extra.resources.iter() {
        wider.insert(r.clone());
    }
    lab.write_objects(&wider);
    wait_for(
        "admin -> backend:80 to be allowed",
        Duration::from_secs(10),
        || conn(&lab, admin, backend, 80, SHUT).is_some(),
    );
    assert!(
        still_works(&mut established),
        "an established allowed connection survives a policy change"
    );
    assert!(
        conn(&lab, intruder, backend, 80, SHUT).is_none(),
        "the change allows admin only"
    );

    // SIGKILL the agents: enforcement stays exactly as it was.
    for n in lab.nodes() {
        lab.kill_agent(&n);
    }
    lab.write_objects(&policies); // not seen by anyone while the agents are down
    assert!(
        conn(&lab, admin, backend, 80, OPEN).is_some(),
        "the last policy stays in force (admin allowed)"
    );
    assert!(
        conn(&lab, intruder, backend, 80, SHUT).is_none(),
        "the last policy stays in force (intruder denied)"
    );
    assert!(
        still_works(&mut established),
        "established flows continue while the agent is down"
    );

    // Restart: the agent re-reads the maps, writes only what changed (admin's allow goes),
    // and the established connection never notices.
    lab.start_agent(&backend_node);
    for n in lab.nodes().into_iter().filter(|n| *n != backend_node) {
        lab.start_agent(&n);
    }
    wait_for(
        "admin -> backend:80 to be denied again",
        Duration::from_secs(10),
        || conn(&lab, admin, backend, 80, SHUT).is_none(),
    );
    assert!(
        still_works(&mut established),
        "a restart loses no established flow"
    );
    assert!(
        conn(&lab, frontend, backend, 80, OPEN).is_some(),
        "frontend still reaches backend after the restart"
    );
    let status = lab.agent_status(&backend_node);
    assert!(status["policyEntries"].as_u64().unwrap() > 0, "{status}");
}

fn conn(
    lab: &AgentLab,
    from: &str,
    to: &str,
    port: u16,
    timeout: Duration,
) -> Option<std::net::TcpStream> {
    tcp_connect(&lab.netns(from), lab.ip(to), port, timeout)
}

/// A host policy (a CCNP with a `nodeSelector`) is enforced on the node's underlay interface:
/// only packets to or from the node's own address are the host's, so traffic forwarded to and
/// from its pods is untouched (between a pod and its own node, the pod's programs apply the
/// host's policy); replies of the host's own connections pass through conntrack;
/// a node no host policy selects stays open; and without its endpoint entry the host's
/// traffic is dropped (fail closed) while forwarded traffic still passes.
#[test]
fn a_host_policy_is_enforced_on_the_nodes_own_traffic_only() {
    if !privileged("agent_lab host firewall") {
        return;
    }
    let mut lab = AgentLab::up("host", LAB);
    let nodes = lab.nodes();
    let (n1, n2) = (format!("node:{}", nodes[0]), format!("node:{}", nodes[1]));
    // node-1 has zone a: world may reach its port 22 and nothing else.
    let policy = "apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: zone-a-ssh}
spec:
  nodeSelector: {matchLabels: {zone: a}}
  ingress:
    - fromEntities: [world]
      toPorts: [{ports: [{port: \"22\", protocol: TCP}]}]
";
    lab.write_objects(&common::load(policy));
    for n in lab.nodes() {
        lab.start_agent(&n);
    }
    for node in [&n1, &n2] {
        for port in [22, 23] {
            tcp_server(&lab.netns(node), lab.ip(node), port);
        }
    }
    tcp_server(&lab.netns("world"), lab.ip("world"), 80);
    tcp_server(&lab.netns("shop/backend"), lab.ip("shop/backend"), 80);
    assert!(
        conn(&lab, "world", &n1, 22, OPEN).is_some(),
        "world -> node-1:22 is allowed"
    );
    assert!(
        conn(&lab, "world", &n1, 23, SHUT).is_none(),
        "world -> node-1:23 is dropped"
    );
    assert!(
        conn(&lab, &n2, &n1, 22, SHUT).is_none(),
        "remote-node -> node-1:22 is dropped (only world is allowed)"
    );
    assert!(
        conn(&lab, "world", &n2, 23, OPEN).is_some(),
        "node-2 has no host policy"
    );
    assert!(
        conn(&lab, &n1, "world", 80, OPEN).is_some(),
        "node-1's own connection out: its egress is open and the replies pass through conntrack"
    );
    let mut forwarded = conn(&lab, "shop/frontend", "shop/backend", 80, OPEN)
        .expect("pod traffic forwarded across node-1's underlay is not the host's");
    // Between a pod and its own node (frontend runs on node-1) the pod's programs apply the
    // host's policy: the host's ingress from frontend is not allowed; its egress is open.
    assert!(
        conn(&lab, "shop/frontend", &n1, 22, SHUT).is_none(),
        "frontend -> its own node-1:22 is dropped by node-1's host policy"
    );
    assert!(
        conn(&lab, "shop/frontend", &n2, 22, OPEN).is_some(),
        "and node-2:22 is open"
    );
    tcp_server(&lab.netns("shop/frontend"), lab.ip("shop/frontend"), 8080);
    assert!(
        conn(&lab, &n1, "shop/frontend", 8080, OPEN).is_some(),
        "node-1 -> its own pod: the host's egress is open"
    );
    // Fail closed: without the host endpoint's entry the host's traffic is dropped, forwarded
    // pod traffic still passes.
    let mut maps = ward_datapath::bpf::NodeMaps::open_pinned(&nodes[0]).unwrap();
    let host: Vec<(u32, _)> = maps
        .endpoints()
        .unwrap()
        .into_iter()
        .filter(|(_, e)| e.flags == ward_datapath::bpf::maps::ENDPOINT_FLAG_HOST)
        .collect();
    // Under the underlay interface's index, and under key 0 for the pods' programs.
    assert_eq!(host.len(), 2, "{host:?}");
    assert!(
        host.iter()
            .all(|(_, e)| e.identity == ward_engine::Identity::HOST.0)
    );
    let ifindex = host
        .iter()
        .map(|(i, _)| *i)
        .find(|i| *i != ward_datapath::bpf::maps::HOST_ENDPOINT_KEY)
        .expect("the underlay interface's entry");
    lab.kill_agent(&nodes[0]);
    maps.remove_endpoint(ifindex).unwrap();
    maps.ct_clear().unwrap();
    assert!(conn(&lab, "world", &n1, 22, SHUT).is_none(), "fails closed");
    assert!(still_works(&mut forwarded), "forwarded traffic passes");
    assert!(conn(&lab, "shop/frontend", "shop/backend", 80, OPEN).is_some());
}

/// The connectivity-test cluster as a lab: the same namespaces, labels and named ports the
/// random policies of `common::random` select.
const CONN_LAB: &str = "apiVersion: ward.dev/v1alpha1
kind: LabTopology
metadata:
  name: shop
spec:
  underlay: 172.30.0.0/24
  namespaces:
    cilium-test: {team: conn}
    other-ns: {team: other}
  nodes:
    - {name: node-1, ip: 172.30.0.11, podCIDR: 10.1.0.0/24, labels: {zone: a}}
    - {name: node-2, ip: 172.30.0.12, podCIDR: 10.1.1.0/24, labels: {zone: b}}
  world: {name: world, ip: 203.0.113.10}
  pods:
    - {name: client, namespace: cilium-test, labels: {name: client, kind: client}, ip: 10.1.0.10, node: node-1}
    - {name: client2, namespace: cilium-test, labels: {name: client2, kind: client, other: client}, ip: 10.1.0.11, node: node-1}
    - {name: echo, namespace: cilium-test, labels: {name: echo, kind: echo}, ip: 10.1.1.20, node: node-2, ports: [{name: http, port: 8080, protocol: TCP}, {name: dns, port: 53, protocol: UDP}]}
    - {name: echo-other-ns, namespace: other-ns, labels: {name: echo-other-ns, kind: echo}, ip: 10.1.1.30, node: node-2, ports: [{name: http, port: 9090, protocol: TCP}]}
";

/// An agent per node of `lab`, in this process (files mode), each synced by the test.
fn in_process_agents(lab: &AgentLab) -> Vec<ward_datapath::agent::run::Agent> {
    use ward_datapath::agent::run::{Agent, AgentConfig, Source};
    lab.nodes()
        .into_iter()
        .map(|node| {
            let run_dir = lab.state.with_file_name(format!("run-{node}"));
            Agent::start(AgentConfig {
                node,
                source: Source::Files {
                    topology: lab.topology_path.clone(),
                    state_dir: lab.state.clone(),
                },
                run_dir,
                key_dir: None,
                dns_ttl: Default::default(),
            })
            .unwrap()
        })
        .collect()
}

/// Services of the property lab: one with a selector (echo, a named target port), one
/// without (world's address), as `toServices` rules and random flows use them.
const PROPERTY_SERVICES: &str = "  services:
    - name: echo-svc
      namespace: cilium-test
      ip: 10.96.0.10
      selector: {name: echo}
      ports:
        - {name: http, port: 80, targetPort: http}
        - {name: dns, port: 53, targetPort: dns, protocol: UDP}
    - name: world-svc
      namespace: cilium-test
      labels: {tier: external}
      ip: 10.96.0.20
      backends: [203.0.113.10]
      ports: [{port: 443}]
";

/// The kernel decides every random flow as the engine does: random policies (seeded: CNPs,
/// CCNPs, host policies, Kubernetes NetworkPolicies, a CIDR group, IPv4 and IPv6 CIDRs,
/// `toServices`, `toFQDNs`), the agent's map entries, real TCP, UDP and ICMP/ICMPv6 echo
/// packets over IPv4 or IPv6 between the pods, the nodes' host endpoints and the world host of
/// a dual-stack lab (so neighbour discovery has to pass for any IPv6 flow to pass), and from
/// the pods to the lab's services' cluster IPs (translated by the pods' programs). The
/// agents' DNS caches hold an answer for `api.example.com` (world's addresses), as if a pod
/// had asked, and the engine gets the same answer. A failure names the seed; replay with
/// `WARD_SEED=<seed>`.
#[test]
fn the_kernel_agrees_with_the_engine_on_random_policies_and_flows() {
    use common::random::{self, Rng};
    use ward_datapath::bpf::NodeMaps;
    use ward_engine::{Flow, Peer, PolicyRepository, Protocol, Verdict};

    if !privileged("agent_lab property") {
        return;
    }
    let lab = AgentLab::up(
        "prop",
        &format!("{CONN_LAB}{PROPERTY_SERVICES}  ipv6: {{}}\n"),
    );
    // Pods, world and the nodes' host endpoints (host policies, KNPs and CIDR groups are
    // among the random policies).
    let node_hosts: Vec<String> = lab.nodes().iter().map(|n| format!("node:{n}")).collect();
    let mut hosts = vec![
        "cilium-test/client",
        "cilium-test/client2",
        "cilium-test/echo",
        "other-ns/echo-other-ns",
        "world",
    ];
    hosts.extend(node_hosts.iter().map(String::as_str));
    for &h in &hosts {
        for port in random::PORTS {
            for ip in [IpAddr::from(lab.ip(h)), IpAddr::from(lab.ip6(h))] {
                tcp_server(&lab.netns(h), ip, port);
                udp_server(&lab.netns(h), ip, port);
            }
        }
    }
    let addr = |who: &str, v6: bool| -> IpAddr {
        if v6 {
            lab.ip6(who).into()
        } else {
            lab.ip(who).into()
        }
    };
    // What a pod's query for api.example.com would have taught every agent's DNS proxy.
    let world = [addr("world", false), addr("world", true)];
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let saved: Vec<serde_json::Value> = world
        .iter()
        .map(|a| serde_json::json!({"name": "api.example.com.", "address": a, "expires": expires}))
        .collect();
    for node in lab.nodes() {
        let run_dir = lab.state.with_file_name(format!("run-{node}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        std::fs::write(
            run_dir.join("dns-cache.json"),
            serde_json::to_vec(&saved).unwrap(),
        )
        .unwrap();
    }
    let mut agents = in_process_agents(&lab);
    let mut cluster = ward_engine::Cluster::from_topology(lab.lab.topology());
    cluster.dns = vec![ward_engine::DnsAnswer {
        name: "api.example.com.".into(),
        addresses: world.to_vec(),
    }];
    let services = [
        ("10.96.0.10", Protocol::TCP, 80),
        ("10.96.0.10", Protocol::UDP, 53),
        ("10.96.0.20", Protocol::TCP, 443),
    ];
    let topology = lab.lab.topology().clone();
    let service_ip = |ip: &str, v6: bool| -> IpAddr {
        let v4: std::net::Ipv4Addr = ip.parse().unwrap();
        let svc = topology.services.iter().find(|s| s.ip == v4).unwrap();
        if v6 {
            svc.ipv6.unwrap().into()
        } else {
            v4.into()
        }
    };
    let pods = &hosts[..4];
    let base: u64 = std::env::var("WARD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xbeef);
    let cases = if std::env::var("WARD_SEED").is_ok() {
        1
    } else {
        30
    };
    let (mut flows, mut allowed) = (0, 0);
    // Flows through a service, and how many of them passed.
    let (mut svc_flows, mut svc_allowed) = (0, 0);
    // Flows whose verdict the DNS answer decides (toFQDNs).
    let mut fqdn_decisive = 0;
    // IPv6 flows and how many of them passed; echo flows (ICMP, ICMPv6) that passed.
    let (mut v6_flows, mut v6_allowed, mut echo_allowed) = (0, 0, 0);
    for case in 0..cases {
        let seed = base + case;
        let mut rng = Rng::new(seed);
        let docs = random::policies(&mut rng).concat();
        let set = common::load(&docs);
        lab.write_objects(&set);
        for a in &mut agents {
            a.sync().unwrap();
        }
        for n in lab.nodes() {
            NodeMaps::open_pinned(&n).unwrap().ct_clear().unwrap();
        }
        let repo = PolicyRepository::from_resources(cluster.clone(), &set).unwrap();
        let repo_without_dns = PolicyRepository::from_resources(
            ward_engine::Cluster {
                dns: Vec::new(),
                ..cluster.clone()
            },
            &set,
        )
        .unwrap();
        // Twenty flows, and eight from a pod to world (which toFQDNs rules are about).
        let picks: Vec<(&str, &str, Protocol, u16, bool)> = (0..28)
            .map(|i| {
                loop {
                    if i >= 20 {
                        let port = *rng.pick(&random::PORTS);
                        let proto = *rng.pick(&[Protocol::TCP, Protocol::UDP]);
                        break (*rng.pick(pods), "world", proto, port, rng.chance(1, 2));
                    }
                    // A pod to a service (never the service's own backend: no hairpin).
                    if rng.chance(1, 5) {
                        let (a, &(svc, proto, port)) = (*rng.pick(pods), rng.pick(&services));
                        if !(a == "cilium-test/echo" && svc == "10.96.0.10") {
                            break (a, svc, proto, port, rng.chance(1, 2));
                        }
                        continue;
                    }
                    let (a, b) = (*rng.pick(&hosts), *rng.pick(&hosts));
                    if a != b {
                        let v6 = rng.chance(1, 2);
                        let (proto, port) = match rng.below(5) {
                            0 if v6 => (Protocol::ICMPV6, 128),
                            0 => (Protocol::ICMP, 8),
                            1 | 2 => (Protocol::TCP, *rng.pick(&random::PORTS)),
                            _ => (Protocol::UDP, *rng.pick(&random::PORTS)),
                        };
                        break (a, b, proto, port, v6);
                    }
                }
            })
            .collect();
        let results: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = picks
                .iter()
                .map(|(a, b, proto, port, v6)| {
                    let to = if b.starts_with("10.96.") {
                        service_ip(b, *v6)
                    } else {
                        addr(b, *v6)
                    };
                    let lab = &lab;
                    s.spawn(move || match *proto {
                        Protocol::TCP => tcp_connect(&lab.netns(a), to, *port, SHUT).is_some(),
                        Protocol::UDP => udp_roundtrip(&lab.netns(a), to, *port, SHUT),
                        _ => probe::icmp_echo(&lab.netns(a), None, to, SHUT).unwrap(),
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for ((a, b, proto, port, v6), kernel) in picks.iter().zip(results) {
            let to_service = b.starts_with("10.96.");
            let flow = Flow {
                src: Peer::Ip(addr(a, *v6)),
                dst: Peer::Ip(if to_service {
                    service_ip(b, *v6)
                } else {
                    addr(b, *v6)
                }),
                protocol: *proto,
                port: *port,
            };
            // Through a service: the flow to its one backend, as the pod's program sends it.
            let flow = match repo.service_flows(&flow) {
                Some((_, backends)) => {
                    assert_eq!(backends.len(), 1, "each lab service has one backend");
                    backends[0]
                }
                None => flow,
            };
            svc_flows += usize::from(to_service);
            svc_allowed += usize::from(to_service && kernel);
            let engine = repo.verdict(&flow);
            fqdn_decisive += usize::from(repo_without_dns.verdict(&flow).verdict != engine.verdict);
            assert_eq!(
                engine.verdict == Verdict::Allow,
                kernel,
                "seed {seed}: {a} -> {b} {proto}/{port} over {}: engine says {engine}, the kernel {}\npolicies:\n{docs}",
                if *v6 { "IPv6" } else { "IPv4" },
                if kernel { "passed it" } else { "dropped it" }
            );
            flows += 1;
            allowed += usize::from(kernel);
            v6_flows += usize::from(*v6);
            v6_allowed += usize::from(*v6 && kernel);
            echo_allowed += usize::from(
                kernel
                    && (*port == 8 || *port == 128)
                    && !matches!(*proto, Protocol::TCP | Protocol::UDP),
            );
        }
    }
    eprintln!(
        "{flows} flows over {cases} random policy sets: kernel and engine agree ({allowed} allowed; {v6_flows} over IPv6, {v6_allowed} of them allowed; {echo_allowed} echo replies; {svc_flows} through a service, {svc_allowed} of them allowed; {fqdn_decisive} decided by a DNS answer)"
    );
    assert!(
        cases == 1 || fqdn_decisive > 0,
        "no flow was decided by the DNS answer: toFQDNs is not exercised"
    );
    assert!(
        cases == 1 || (svc_allowed > 0 && svc_allowed < svc_flows),
        "{svc_allowed} of {svc_flows} flows through a service allowed: too one-sided to prove much"
    );
    assert!(
        cases == 1 || (allowed > flows / 10 && allowed < flows * 9 / 10),
        "{allowed} of {flows} allowed: too one-sided to prove much"
    );
    assert!(
        cases == 1
            || (v6_allowed > v6_flows / 10 && v6_allowed < v6_flows * 9 / 10 && echo_allowed > 0),
        "{v6_allowed} of {v6_flows} IPv6 flows allowed, {echo_allowed} echoes: too one-sided to prove much"
    );
}

/// A dual-stack lab: the same flows over IPv4 and IPv6 (TCP, UDP, ICMP and ICMPv6 echo, to
/// pods on both nodes, a node and world) get the same verdict from the kernel as from the
/// engine, and the policy's answer does not depend on the family except where a rule names
/// one (an ICMPv6 rule opens ICMPv6 echo only, an IPv6 CIDR IPv6 world only). Neighbour
/// discovery passes, or no IPv6 flow would.
#[test]
fn ipv6_flows_get_the_verdicts_of_ipv4_flows_in_the_kernel_and_the_engine() {
    use ward_engine::{Flow, Peer, PolicyRepository, Protocol, Verdict};

    if !privileged("agent_lab ipv6") {
        return;
    }
    let lab = AgentLab::up("six", &format!("{CONN_LAB}  ipv6: {{}}\n"));
    let policy = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: echo-in, namespace: cilium-test}
spec:
  endpointSelector: {matchLabels: {kind: echo}}
  ingress:
    - fromEndpoints: [{matchLabels: {kind: client}}]
      toPorts: [{ports: [{port: \"8080\", protocol: TCP}, {port: \"53\", protocol: UDP}]}]
    - fromEndpoints: [{matchLabels: {name: client}}]
      icmps: [{fields: [{type: EchoRequest, family: IPv6}]}]
    - fromEndpoints: [{matchLabels: {name: client2}}]
      icmps: [{fields: [{type: 8}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-out, namespace: cilium-test}
spec:
  endpointSelector: {matchLabels: {name: client}}
  egress:
    - toEndpoints: [{}]
    - toCIDR: [\"2001:db8::/32\"]
      toPorts: [{ports: [{port: \"80\", protocol: TCP}]}]
";
    let set = common::load(policy);
    let (echo, client) = ("cilium-test/echo", "cilium-test/client");
    let hosts = [echo, client, "other-ns/echo-other-ns", "world"];
    for h in hosts {
        for ip in [IpAddr::from(lab.ip(h)), IpAddr::from(lab.ip6(h))] {
            for port in [80, 8080, 8081] {
                tcp_server(&lab.netns(h), ip, port);
            }
            udp_server(&lab.netns(h), ip, 53);
        }
    }
    let mut agents = in_process_agents(&lab);
    // Written once the agents run, as the property test does: each sync sees the change.
    lab.write_objects(&set);
    for a in &mut agents {
        a.sync().unwrap();
    }
    let repo = PolicyRepository::from_resources(
        ward_engine::Cluster::from_topology(lab.lab.topology()),
        &set,
    )
    .unwrap();
    let flows = [
        (client, echo, Protocol::TCP, 8080, true),
        (client, echo, Protocol::TCP, 8081, false),
        ("cilium-test/client2", echo, Protocol::TCP, 8080, true),
        (client, echo, Protocol::UDP, 53, true),
        // `toEndpoints: [{}]` of a namespaced policy stays in its namespace.
        (client, "other-ns/echo-other-ns", Protocol::TCP, 8080, false),
        (echo, client, Protocol::TCP, 80, true),
    ];
    for (from, to, proto, port, both) in flows {
        let mut kernel = Vec::new();
        for v6 in [false, true] {
            let dst: IpAddr = if v6 {
                lab.ip6(to).into()
            } else {
                lab.ip(to).into()
            };
            let src: IpAddr = if v6 {
                lab.ip6(from).into()
            } else {
                lab.ip(from).into()
            };
            let passed = if proto == Protocol::TCP {
                tcp_connect(&lab.netns(from), dst, port, OPEN).is_some()
            } else {
                udp_roundtrip(&lab.netns(from), dst, port, OPEN)
            };
            let engine = repo.verdict(&Flow {
                src: Peer::Ip(src),
                dst: Peer::Ip(dst),
                protocol: proto,
                port,
            });
            assert_eq!(
                engine.verdict == Verdict::Allow,
                passed,
                "{from} -> {to} {proto}/{port} over {}: engine says {engine}",
                if v6 { "IPv6" } else { "IPv4" }
            );
            kernel.push(passed);
        }
        assert_eq!(
            kernel[0], kernel[1],
            "{from} -> {to} {proto}/{port}: the families differ"
        );
        assert_eq!(kernel[0], both, "{from} -> {to} {proto}/{port}");
    }
    // The IPv6 CIDR opens IPv6 world only.
    assert!(tcp_connect(&lab.netns(client), lab.ip6("world"), 80, OPEN).is_some());
    assert!(tcp_connect(&lab.netns(client), lab.ip("world"), 80, SHUT).is_none());
    // Echo: ICMPv6 for client (an IPv6 rule), ICMP for client2 (IPv4's); each the other not.
    let echo_ok = |from: &str, v6: bool| {
        let to: IpAddr = if v6 {
            lab.ip6(echo).into()
        } else {
            lab.ip(echo).into()
        };
        probe::icmp_echo(&lab.netns(from), None, to, OPEN).unwrap()
    };
    assert!(echo_ok(client, true), "client: ICMPv6 echo");
    assert!(!echo_ok(client, false), "client: no ICMP echo");
    assert!(echo_ok("cilium-test/client2", false), "client2: ICMP echo");
    assert!(
        !echo_ok("cilium-test/client2", true),
        "client2: no ICMPv6 echo"
    );
}

/// An agent started without privileges stops at once with an error that says what it needs.
#[test]
fn an_unprivileged_agent_says_what_it_needs() {
    use std::os::unix::fs::PermissionsExt;
    if !privileged("agent_lab unprivileged") {
        return;
    }
    // A copy of the binary and a topology where `nobody` can read them; setpriv drops root.
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("ward-agent");
    std::fs::copy(env!("CARGO_BIN_EXE_ward-agent"), &agent).unwrap();
    std::fs::write(dir.path().join("lab.yaml"), CONN_LAB).unwrap();
    for (p, mode) in [
        (dir.path(), 0o755),
        (agent.as_path(), 0o755),
        (dir.path().join("lab.yaml").as_path(), 0o644),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let run = || {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&agent)
            .args([
                "run",
                "--once",
                "--node",
                "node-1",
                "--topology",
                "lab.yaml",
                "--state",
                "state",
                "--run-dir",
                "run",
            ])
            .current_dir(dir.path())
            .output()
            .expect("setpriv (util-linux) runs")
    };
    // The copy was written by this process: a child another test forks at that moment holds
    // the written file open until it execs, and executing the copy then fails with ETXTBSY.
    // Wait for that child to let go.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut out = run();
    while String::from_utf8_lossy(&out.stderr).contains("Text file busy")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
        out = run();
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("root") && stderr.contains("CAP_BPF"),
        "the error names the privileges: {stderr}"
    );
}
