//! The datapath's map entries decide every flow exactly as the engine does: random policies
//! (IPv4 and IPv6 CIDRs among them) over the dual-stack connectivity-test cluster, random
//! flows, each over IPv4 and over IPv6, and for each the engine's verdict next to the lookups
//! `ward.c` performs on the maps `agent::entries` computes for each node.
//! (The kernel itself is compared with the engine in the lab tests; this one needs no root.)
//!
//! A failure prints the seed; replay it with `WARD_SEED=<seed> cargo test --test map_equivalence`.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod common;

use common::random::{self, Rng};
use common::{Suite, load};
use std::collections::BTreeMap;
use std::net::IpAddr;
use ward_datapath::agent::entries::{self, MapVerdict, NodeEntries};
use ward_engine::{Peer, PolicyRepository, Protocol, Verdict};

/// The address (of the flow's family) and node of a flow end (with its endpoint id), as the
/// datapath sees it.
fn place(s: &Suite, name: &str, v6: bool) -> (IpAddr, Option<(String, u32)>) {
    match s.peer(name) {
        Peer::Endpoint(id) => {
            let ep = s.repo.endpoint(id).unwrap();
            let ip = *ep.ips.iter().find(|ip| ip.is_ipv6() == v6).unwrap();
            (
                ip,
                Some((
                    ep.node.clone().unwrap(),
                    entries::endpoint_id(&ep.full_name()),
                )),
            )
        }
        // A node's address is its host endpoint (a host policy may select it).
        Peer::Ip(ip) => {
            let node = s.repo.cluster().nodes.iter().find(|n| n.ips.contains(&ip));
            let host = node.map(|n| (n.name.clone(), entries::endpoint_id(entries::HOST_ENDPOINT)));
            (ip, host)
        }
        other => panic!("unexpected peer {other:?}"),
    }
}

/// Allowed by the maps: egress at the source's node, ingress at the destination's; `v6`
/// sends the flow between the ends' IPv6 addresses.
fn maps_allow(
    s: &Suite,
    maps: &BTreeMap<String, NodeEntries>,
    from: &str,
    to: &str,
    l4: &str,
    v6: bool,
) -> (bool, Vec<MapVerdict>) {
    let (proto, port) = l4.split_once('/').unwrap();
    let (proto, port) = (Protocol::parse(proto).unwrap().0, port.parse().unwrap());
    let ((src_ip, src), (dst_ip, dst)) = (place(s, from, v6), place(s, to, v6));
    let mut verdicts = Vec::new();
    if let Some((node, ep)) = src {
        verdicts.push(maps[&node].verdict(ep, true, dst_ip, proto, port));
    }
    if let Some((node, ep)) = dst {
        verdicts.push(maps[&node].verdict(ep, false, src_ip, proto, port));
    }
    (
        verdicts.iter().all(|v| matches!(v, MapVerdict::Allow(_))),
        verdicts,
    )
}

fn node_maps(repo: &PolicyRepository) -> BTreeMap<String, NodeEntries> {
    repo.cluster()
        .nodes
        .iter()
        .map(|n| (n.name.clone(), entries::compute(repo, &n.name).unwrap()))
        .collect()
}

#[test]
fn map_lookups_agree_with_the_engine_on_random_policies_and_flows() {
    let base: u64 = std::env::var("WARD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let cases = if std::env::var("WARD_SEED").is_ok() {
        1
    } else {
        400
    };
    let (mut checked, mut allowed_flows) = (0, 0);
    for case in 0..cases {
        let seed = base + case;
        let mut rng = Rng::new(seed);
        let docs = random::policies(&mut rng);
        let set = load(&docs.concat());
        let s = Suite {
            repo: PolicyRepository::from_resources(common::cluster(), &set).unwrap(),
        };
        let maps = node_maps(&s.repo);
        for _ in 0..40 {
            let (from, to, l4) = random::flow(&mut rng);
            // Every flow twice: over IPv4, and over IPv6 (endpoints by their IPv6 address,
            // world and nodes by theirs).
            let v6_flow = (common::v6_peer(from), common::v6_peer(to));
            for (v6, (from, to)) in [(false, (from, to)), (true, v6_flow)] {
                let engine = s.decide(from, to, &l4);
                let (allowed, verdicts) = maps_allow(&s, &maps, from, to, &l4, v6);
                assert_eq!(
                    engine.verdict == Verdict::Allow,
                    allowed,
                    "seed {seed}: {from} -> {to} {l4}: engine says {engine}, maps say {verdicts:?}\npolicies:\n{}",
                    docs.concat()
                );
                checked += 1;
                allowed_flows += usize::from(allowed);
            }
        }
    }
    eprintln!("{checked} flows agreed, {allowed_flows} of them allowed");
    // Both outcomes must be well represented, or the comparison proves little.
    assert!(
        cases == 1 || (allowed_flows > checked / 5 && allowed_flows < checked * 4 / 5),
        "{allowed_flows} of {checked} allowed"
    );
}

#[test]
fn the_seed_scenario_maps_allow_frontend_to_backend_only() {
    let docs = [common::cnp(
        "echo-ingress",
        "cilium-test",
        r#"{"endpointSelector": {"matchLabels": {"kind": "echo"}}, "ingress": [{"fromEndpoints": [{"matchLabels": {"name": "client"}}], "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]}], "egress": [{}]}"#,
    )];
    let s = common::suite(&docs);
    let maps = node_maps(&s.repo);
    assert!(maps_allow(&s, &maps, "client", "echo", "TCP/8080", false).0);
    assert!(!maps_allow(&s, &maps, "client2", "echo", "TCP/8080", false).0);
    assert!(!maps_allow(&s, &maps, "client", "echo", "TCP/8081", false).0);
    assert!(!maps_allow(&s, &maps, "world", "echo", "TCP/8080", false).0);
    // Egress of echo: `egress: [{}]` selects nothing, so echo opens nothing outward.
    assert!(!maps_allow(&s, &maps, "echo", "world", "TCP/80", false).0);
    assert!(!maps_allow(&s, &maps, "echo", "client", "TCP/8080", false).0);
    // The deciding rule is named for the events.
    let echo = &maps["node-2"];
    assert!(
        echo.rules
            .values()
            .any(|r| r.contains("echo-ingress") && r.contains("ingress[0]")),
        "{:?}",
        echo.rules
    );
}
