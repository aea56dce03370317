//! ClusterIP services in the kernel: a pod's packets to a service address are translated to
//! one of its backends by the pod's program, before the policy sees them, with real packets
//! in a two-node lab (data/services-lab.yaml, policies in data/services-policy.yaml).
//!
//! Checked, over IPv4 and IPv6: TCP and UDP through a service reach its backends on both
//! nodes at their target ports (a named one included), and the answers come back from the
//! service's address (the reply is translated back); the backend sees the client's own
//! address; `toServices` allows a service by name and a service without a selector by its
//! labels (its backend outside the cluster is then allowed, also directly); a backend's own
//! ingress policy still decides (other may go to web's pods but web admits client only); a
//! service without backends drops the packet and counts it; the engine, told the same
//! services, decides every one of these flows as the kernel did.
//!
//! Needs root and bpffs; without them it prints `SKIPPED: <test>: <reason>` (a failure in
//! must-run mode).

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod common;

use common::lab::{AgentLab, privileged, tcp_connect, tcp_server};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;
use ward_datapath::bpf::NodeMaps;
use ward_datapath::bpf::maps::Verdict;
use ward_datapath::lab::in_netns;
use ward_engine::{Flow, Peer, PolicyRepository, Protocol};

const LAB: &str = include_str!("data/services-lab.yaml");
const POLICY: &str = include_str!("data/services-policy.yaml");

const OPEN: Duration = Duration::from_secs(2);
const SHUT: Duration = Duration::from_millis(400);

/// A TCP server on `ip:port` in `netns` that writes `name` and what the connection came
/// from (`<name> <peer ip>`) and closes.
fn named_tcp_server(netns: &Path, ip: IpAddr, port: u16, name: &'static str) {
    let listener = in_netns(netns, move || TcpListener::bind((ip, port)))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let peer = s
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let _ = s.write_all(format!("{name} {peer}").as_bytes());
        }
    });
}

/// A UDP server on `ip:port` in `netns` that answers every datagram with `name`.
fn named_udp_server(netns: &Path, ip: IpAddr, port: u16, name: &'static str) {
    let sock = in_netns(netns, move || UdpSocket::bind((ip, port)))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(name.as_bytes(), from);
        }
    });
}

/// What a TCP connection from `netns` to `to` was told (`None`: no connection in `timeout`),
/// and the address the client's socket saw as its peer.
fn tcp_ask(netns: &Path, to: SocketAddr, timeout: Duration) -> Option<(String, SocketAddr)> {
    in_netns(netns, move || {
        let mut s = TcpStream::connect_timeout(&to, timeout).ok()?;
        s.set_read_timeout(Some(timeout)).ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        Some((text, s.peer_addr().ok()?))
    })
    .unwrap()
}

/// What a UDP datagram from `netns` to `to` was answered with, on a socket connected to
/// `to` (the kernel delivers only datagrams from `to` itself).
fn udp_ask(netns: &Path, to: SocketAddr, timeout: Duration) -> Option<String> {
    udp_ask_from(netns, 0, to, timeout)
}

/// [`udp_ask`] from source port `sport` (the same 5-tuple every time it is called with the
/// same port; 0: any).
fn udp_ask_from(netns: &Path, sport: u16, to: SocketAddr, timeout: Duration) -> Option<String> {
    in_netns(netns, move || {
        let any: IpAddr = if to.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let s = UdpSocket::bind((any, sport)).ok()?;
        s.connect(to).ok()?;
        s.set_read_timeout(Some(timeout)).ok()?;
        s.send(b"hi").ok()?;
        let mut buf = [0u8; 64];
        let n = s.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .unwrap()
}

/// The number of `ward_lb` slots of cluster IP `vip` in `node`'s maps.
fn lb_slots(node: &str, vip: IpAddr) -> usize {
    NodeMaps::open_pinned(node)
        .unwrap()
        .lb_entries()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.addr() == vip)
        .count()
}

#[test]
fn pods_reach_services_through_their_backends_and_policy_judges_the_backend() {
    if !privileged("services_lab") {
        return;
    }
    let mut lab = AgentLab::up("svc", LAB);
    let web1 = lab.netns("shop/web-1");
    let web2 = lab.netns("shop/web-2");
    let web3 = lab.netns("shop/web-3");
    let world = lab.netns("world");
    let db: IpAddr = "203.0.113.50".parse().unwrap();
    for v6 in [false, true] {
        let at = |pod: &str| -> IpAddr {
            if v6 {
                lab.ip6(pod).into()
            } else {
                lab.ip(pod).into()
            }
        };
        named_tcp_server(&web1, at("shop/web-1"), 8080, "web-1");
        named_tcp_server(&web2, at("shop/web-2"), 8080, "web-2");
        named_udp_server(&web1, at("shop/web-1"), 7007, "web-1");
        named_udp_server(&web2, at("shop/web-2"), 7007, "web-2");
        named_tcp_server(&web3, at("shop/web-3"), 8080, "web-3");
        named_udp_server(&web3, at("shop/web-3"), 7007, "web-3");
        tcp_server(&world, if v6 { lab.ip6_of(db) } else { db }, 5432);
    }
    let set = common::load(POLICY);
    lab.write_objects(&set);
    for node in lab.nodes() {
        lab.start_agent(&node);
    }
    let client = lab.netns("shop/client");
    let other = lab.netns("shop/other");
    let topology = lab.lab.topology().clone();
    let svc = |name: &str, v6: bool| -> IpAddr {
        let s = topology.services.iter().find(|s| s.name == name).unwrap();
        if v6 {
            s.ipv6.unwrap().into()
        } else {
            s.ip.into()
        }
    };

    let cluster = ward_engine::Cluster::from_topology(&topology);
    let repo = PolicyRepository::from_resources(cluster, &set).unwrap();
    // What the engine says of `from` → `to`:`port`: every backend's verdict (a service), or
    // the flow's own.
    let engine_allows = |from: &str, to: IpAddr, port: u16, protocol: Protocol| -> Vec<bool> {
        let flow = Flow {
            src: Peer::Ip(lab.ip(from).into()),
            dst: Peer::Ip(to),
            protocol,
            port,
        };
        let flow = if to.is_ipv6() {
            Flow {
                src: Peer::Ip(lab.ip6(from).into()),
                ..flow
            }
        } else {
            flow
        };
        let flows = match repo.service_flows(&flow) {
            Some((_, flows)) => flows,
            None => vec![flow],
        };
        flows
            .iter()
            .map(|f| repo.verdict(f).verdict == ward_engine::Verdict::Allow)
            .collect()
    };

    for v6 in [false, true] {
        let family = if v6 { "IPv6" } else { "IPv4" };
        let web = svc("web", v6);
        let client_ip: IpAddr = if v6 {
            lab.ip6("shop/client").into()
        } else {
            lab.ip("shop/client").into()
        };

        // TCP to web:80 lands on every backend (port 8080, named `http`), from the
        // service's own address as the client sees it, and the backend sees the client.
        let mut seen = BTreeSet::new();
        for _ in 0..40 {
            let (text, peer) = tcp_ask(&client, (web, 80).into(), OPEN)
                .unwrap_or_else(|| panic!("{family}: client -> web:80 must connect"));
            assert_eq!(
                peer,
                (web, 80).into(),
                "{family}: the client's peer is the service"
            );
            let (backend, from) = text.split_once(' ').unwrap();
            assert_eq!(
                from,
                client_ip.to_string(),
                "{family}: the backend sees the client"
            );
            seen.insert(backend.to_owned());
            if seen.len() == 3 {
                break;
            }
        }
        assert_eq!(seen.len(), 3, "{family}: every backend answers: {seen:?}");
        assert_eq!(
            engine_allows("shop/client", web, 80, Protocol::TCP),
            [true, true, true]
        );

        // UDP to web:7 (target 7007): the answer comes back from web:7 (a connected socket
        // takes nothing else).
        let mut seen = BTreeSet::new();
        for _ in 0..40 {
            let name = udp_ask(&client, (web, 7).into(), OPEN)
                .unwrap_or_else(|| panic!("{family}: client -> web:7/UDP must be answered"));
            seen.insert(name);
            if seen.len() == 3 {
                break;
            }
        }
        assert_eq!(
            seen.len(),
            3,
            "{family}: every backend answers UDP: {seen:?}"
        );
        assert_eq!(
            engine_allows("shop/client", web, 7, Protocol::UDP),
            [true, true, true]
        );

        // other may go to web's pods, but their ingress admits client only: the policy
        // judges the backend.
        assert!(
            tcp_ask(&other, (web, 80).into(), SHUT).is_none(),
            "{family}: other -> web:80 is refused by web's ingress"
        );
        assert_eq!(
            engine_allows("shop/other", web, 80, Protocol::TCP),
            [false, false, false]
        );

        // db has no selector: toServices by its labels allows its backend, outside the
        // cluster, through the service and directly.
        let db_svc = svc("db", v6);
        let db_addr = if v6 { lab.ip6_of(db) } else { db };
        assert!(
            tcp_connect(&client, db_svc, 5432, OPEN).is_some(),
            "{family}: client -> db:5432"
        );
        assert!(
            tcp_connect(&client, db_addr, 5432, OPEN).is_some(),
            "{family}: client -> db's backend directly"
        );
        assert_eq!(
            engine_allows("shop/client", db_svc, 5432, Protocol::TCP),
            [true]
        );
        assert_eq!(
            engine_allows("shop/client", db_addr, 5432, Protocol::TCP),
            [true]
        );
        assert!(
            tcp_connect(&other, db_svc, 5432, SHUT).is_none(),
            "{family}: other -> db:5432 (its egress allows web's pods only)"
        );
        assert_eq!(
            engine_allows("shop/other", db_svc, 5432, Protocol::TCP),
            [false]
        );

        // toServices of a service with a selector is that selector's pods (Cilium's
        // generated toEndpoints): web's pods directly, too.
        let web1_ip = if v6 {
            lab.ip6("shop/web-1").into()
        } else {
            IpAddr::from(lab.ip("shop/web-1"))
        };
        assert!(
            tcp_ask(&client, (web1_ip, 8080).into(), OPEN).is_some(),
            "{family}: client -> web-1:8080 directly"
        );
        assert_eq!(
            engine_allows("shop/client", web1_ip, 8080, Protocol::TCP),
            [true]
        );
    }

    // A service without backends: the packet is dropped and counted as such.
    let node = lab.node_of("shop/client");
    let no_backend = || -> u64 {
        NodeMaps::open_pinned(&node)
            .unwrap()
            .counters()
            .unwrap()
            .iter()
            .filter(|c| c.verdict == Some(Verdict::NoBackend))
            .map(|c| c.packets)
            .sum()
    };
    let before = no_backend();
    assert!(tcp_ask(&client, (svc("empty", false), 80).into(), SHUT).is_none());
    assert!(no_backend() > before, "the drop is counted as no-backend");
    assert_eq!(
        engine_allows("shop/client", svc("empty", false), 80, Protocol::TCP),
        Vec::<bool>::new(),
        "the engine knows the service has no backend"
    );

    // The status lists the service map: per family 2 ports of web (slot 0 and 2 backends
    // each), db (slot 0 and 1 backend) and empty (slot 0 alone).
    let lb = NodeMaps::open_pinned(&node)
        .unwrap()
        .sizes()
        .unwrap()
        .into_iter()
        .find(|m| m.name == "ward_lb")
        .unwrap();
    assert_eq!(lb.entries, 2 * (2 * 4 + 2 + 1));

    // A connection keeps its backend while the backend is the service's, also when the
    // backends are renumbered: UDP flows (one 5-tuple each) that web-3 answers stay with
    // web-3 when web-2 leaves the service (its label changed in the topology the agents
    // follow; web-3 moves from slot 3 to slot 2), a flow web-2 had moves to a backend that
    // is left, and once the service is gone its address translates nothing any more.
    let web = svc("web", false);
    let to = SocketAddr::from((web, 7));
    let landing = |backend: &str, n: usize| -> Vec<u16> {
        (40_000..40_400)
            .filter(|p| udp_ask_from(&client, *p, to, OPEN).as_deref() == Some(backend))
            .take(n)
            .collect()
    };
    let sport = landing("web-2", 1)[0];
    let on_web3 = landing("web-3", 4);
    assert_eq!(on_web3.len(), 4, "flows land on web-3");
    // The way back belongs to the connection to the service, not to the tuple: once that
    // connection is forgotten (conntrack cleared), the same source port straight to the
    // backend gets the backend's own answer, from the backend's address.
    let other_port = sport + 1000;
    let first = udp_ask_from(&client, other_port, to, OPEN).expect("answered through web");
    NodeMaps::open_pinned(&node).unwrap().ct_clear().unwrap();
    let direct = SocketAddr::from((IpAddr::from(lab.ip(&format!("shop/{first}"))), 7007));
    assert_eq!(
        udp_ask_from(&client, other_port, direct, OPEN).as_deref(),
        Some(first.as_str()),
        "a direct flow on the tuple a service flow used is not translated back"
    );

    // Edits the topology the agents follow (`from` → `to`) and waits until the client's
    // node holds `slots` slots of web's address.
    let edit = |from: &str, to: &str, slots: usize, what: &str| {
        let text = std::fs::read_to_string(&lab.topology_path).unwrap();
        let edited = text.replacen(from, to, 1);
        assert_ne!(edited, text, "{what}: {from:?} is in the topology");
        std::fs::write(&lab.topology_path, &edited).unwrap();
        common::lab::wait_for(what, Duration::from_secs(10), || {
            lb_slots(&node, web) == slots
        });
    };
    edit(
        "name: web-2\n      namespace: shop\n      labels: {app: web}",
        "name: web-2\n      namespace: shop\n      labels: {app: web-retired}",
        2 * 3,
        "web-2 out of the service on the client's node",
    );
    for p in &on_web3 {
        assert_eq!(
            udp_ask_from(&client, *p, to, OPEN).as_deref(),
            Some("web-3"),
            "a flow stays with its backend when the backends are renumbered"
        );
    }
    let moved = udp_ask_from(&client, sport, to, OPEN);
    assert!(
        matches!(moved.as_deref(), Some("web-1" | "web-3")),
        "the flow web-2 had moves to a backend that is left: {moved:?}"
    );
    edit(
        "    - name: web\n      namespace: shop\n      ip: 10.96.0.10\n",
        "    - name: web-gone\n      namespace: shop\n      ip: 10.96.0.11\n",
        0,
        "the web service gone from the client's node",
    );
    assert_eq!(
        udp_ask_from(&client, sport, to, SHUT),
        None,
        "a service that is gone translates nothing, also for a flow it had"
    );
}
