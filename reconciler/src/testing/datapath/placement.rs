//! The lab a suite's endpoints make: every declared endpoint becomes a pod with its
//! namespace, labels, ports, ServiceAccount and address, on its node; the world host takes the address
//! `world` stands for in the tests.
//!
//! Addresses are kept as declared, because policies (CIDR rules, ipBlocks) see them. A node's
//! pod range is the smallest private prefix that holds its pods' declared addresses strictly
//! inside (not as its network or broadcast address), widened until the pods without an
//! address fit too; a node whose pods declare none gets a free /24 of 10.250.0.0/15.
//! Endpoints without a node run on a node of their own (`pods`), which no PolicyTest names.
//! Declared node addresses become the underlay when they share a private /24, else the
//! nodes are numbered in 172.30.0.0/24.
//!
//! Services keep their first IPv4 cluster IP (unless the lab's own ranges hold it; a
//! service with only IPv6 ones gets a free one), their ports and selector; a service without
//! a selector keeps the listed backends the lab holds (a pod's address, or one of world's
//! IPv4 addresses: the world host answers for the others).
//!
//! The lab is dual stack when the tests use IPv6 anywhere (an address, `world-ipv6`,
//! ICMPv6). Every host then has an IPv6 address too: a pod keeps its declared one (a pod
//! with only an IPv6 address gets an IPv4 one of its node's range, which the tests never
//! use), world answers on the IPv6 addresses the expectations use, and nodes, services and
//! the other pods take theirs from a cluster /96 that holds none of the tests' addresses.
//!
//! What the lab cannot hold is left out with the reason (a public IPv4 pod address: pod
//! ranges are private), and flows to or from it are not probed.

use crate::testing::TestCluster;
use crate::testing::peer::world_address;
use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use ward_schema::topology::{API_VERSION, Ipv4Net, KIND};

/// Where each endpoint of a suite runs in the generated lab.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The topology document (JSON, which is YAML) for [`ward_datapath::lab::Topology::parse`].
    pub topology: String,
    /// Per endpoint of the cluster, in order: its pod in the lab (`namespace/name`) and
    /// address, or why it is not in the lab.
    pub pods: Vec<Result<(String, Ipv4Addr), String>>,
    /// The world host's address.
    pub world: Ipv4Addr,
    /// The further addresses the world host answers on: those the expectations use outside
    /// the cluster (IPv6 ones in a dual-stack lab).
    pub world_addresses: Vec<IpAddr>,
    /// The lab's nodes.
    pub nodes: Vec<PlacedNode>,
    /// Per service of the cluster, in order: its cluster IP in the lab, or why it is not in
    /// the lab.
    pub services: Vec<Result<Ipv4Addr, String>>,
}

/// A node of the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedNode {
    /// Its name in the lab.
    pub lab: String,
    /// The tests' node it stands for (`None` for the node of endpoints that name none).
    pub test: Option<String>,
    /// Its underlay address.
    pub ip: Ipv4Addr,
}

/// One node being planned.
struct Planned {
    lab_name: String,
    test_name: Option<String>,
    ip: Option<Ipv4Addr>,
    labels: BTreeMap<String, String>,
    /// Endpoint indexes.
    pods: Vec<usize>,
    range: Option<Ipv4Net>,
    /// Whether an agent runs there.
    agent: bool,
}

/// Plans the lab `lab` for `cluster`'s endpoints, its world host answering on `outside` too
/// (addresses the flows use that no endpoint or node has; those the lab's own ranges hold are
/// left out); dual stack when `ipv6` or the tests have an IPv6 address; node names start
/// with `tag` (short: they name interfaces and pinned maps).
pub fn place(
    cluster: &TestCluster,
    outside: &BTreeSet<IpAddr>,
    ipv6: bool,
    lab: &str,
    tag: &str,
) -> Result<Placement> {
    let IpAddr::V4(world) = world_address(cluster) else {
        bail!("the world address is not IPv4");
    };
    let endpoints = &cluster.cluster.endpoints;
    let mut pods: Vec<Result<(String, Ipv4Addr), String>> = endpoints
        .iter()
        .map(|e| {
            let special = e
                .ips
                .iter()
                .find(|ip| matches!(ip, IpAddr::V6(v6) if special6(*v6)));
            if let Some(ip) = special {
                return Err(format!(
                    "{} has the IPv6 address {ip}, which is no host's (loopback, link-local or multicast)",
                    e.full_name()
                ));
            }
            match e.ips.iter().find_map(v4) {
                Some(ip) if !private(ip) => Err(format!(
                    "{} has the public address {ip}; the lab's pod ranges are private (RFC 1918)",
                    e.full_name()
                )),
                Some(ip) => Ok((e.full_name(), ip)),
                None => Ok((e.full_name(), Ipv4Addr::UNSPECIFIED)),
            }
        })
        .collect();
    let declared6 = declared_ipv6(cluster, outside);
    let dual = ipv6 || !declared6.is_empty();
    let mut nodes = plan_nodes(cluster, tag, &pods);
    let declared: BTreeSet<Ipv4Addr> = pods
        .iter()
        .filter_map(|p| p.as_ref().ok().map(|(_, ip)| *ip))
        .filter(|ip| !ip.is_unspecified())
        .collect();
    size_ranges(&mut nodes, &pods)?;
    free_ranges(&mut nodes, &declared, world)?;
    check_overlaps(&nodes)?;
    for n in &nodes {
        allocate(n, &mut pods, &declared);
    }
    let underlay = underlay(&mut nodes, world);
    // World's own address, the underlay and the pod ranges.
    let in_lab = |ip: Ipv4Addr| {
        ip == world
            || underlay.contains(ip)
            || nodes
                .iter()
                .any(|n| n.range.is_some_and(|r| r.contains(ip)))
    };
    let world_addresses: Vec<IpAddr> = outside
        .iter()
        .copied()
        .filter(|ip| match ip {
            IpAddr::V4(v4) => !in_lab(*v4) && !special4(*v4),
            IpAddr::V6(v6) => dual && !special6(*v6),
        })
        .collect();
    let services = place_services(cluster, |ip| {
        in_lab(ip) || world_addresses.contains(&IpAddr::V4(ip))
    });
    let mut doc = document(
        lab,
        cluster,
        &nodes,
        &pods,
        underlay,
        (world, &world_addresses),
    );
    if dual {
        doc["spec"]["ipv6"] = ipv6_plan(&declared6);
    }
    let world_all: Vec<Ipv4Addr> = std::iter::once(world)
        .chain(world_addresses.iter().filter_map(v4))
        .collect();
    doc["spec"]["services"] = service_docs(cluster, &services, &pods, &world_all);
    Ok(Placement {
        topology: doc.to_string(),
        pods,
        world,
        world_addresses,
        services,
        nodes: nodes
            .into_iter()
            .map(|n| PlacedNode {
                lab: n.lab_name,
                test: n.test_name,
                ip: n.ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            })
            .collect(),
    })
}

/// The test's nodes (declared or implied), then the node of endpoints without one.
fn plan_nodes(
    cluster: &TestCluster,
    tag: &str,
    pods: &[Result<(String, Ipv4Addr), String>],
) -> Vec<Planned> {
    let endpoints = &cluster.cluster.endpoints;
    let mut nodes: Vec<Planned> = cluster
        .cluster
        .nodes
        .iter()
        .map(|n| Planned {
            lab_name: String::new(),
            test_name: Some(n.name.clone()),
            ip: match n.ip() {
                Some(IpAddr::V4(ip)) => Some(ip),
                _ => None,
            },
            labels: n.labels.clone(),
            pods: Vec::new(),
            range: None,
            agent: n.agent,
        })
        .collect();
    let mut homeless = Vec::new();
    for (i, e) in endpoints.iter().enumerate() {
        if pods[i].is_err() {
            continue;
        }
        match nodes
            .iter_mut()
            .find(|n| n.test_name.is_some() && n.test_name == e.node)
        {
            Some(n) => n.pods.push(i),
            None => homeless.push(i),
        }
    }
    if !homeless.is_empty() {
        nodes.push(Planned {
            lab_name: String::new(),
            test_name: None,
            ip: None,
            labels: BTreeMap::new(),
            pods: homeless,
            range: None,
            agent: true,
        });
    }
    for (i, n) in nodes.iter_mut().enumerate() {
        n.lab_name = format!("{tag}n{i}");
    }
    nodes
}

/// The pod range of every node whose pods declare addresses.
fn size_ranges(nodes: &mut [Planned], pods: &[Result<(String, Ipv4Addr), String>]) -> Result<()> {
    for n in nodes.iter_mut() {
        let ips: Vec<Ipv4Addr> = n
            .pods
            .iter()
            .filter_map(|&i| pods[i].as_ref().ok().map(|(_, ip)| *ip))
            .filter(|ip| !ip.is_unspecified())
            .collect();
        let (Some(lo), Some(hi)) = (ips.iter().min(), ips.iter().max()) else {
            continue;
        };
        let wanted = n.pods.len() - ips.len();
        let mut len = (u32::from(*lo) ^ u32::from(*hi)).leading_zeros().min(32) as u8;
        loop {
            let net = prefix(*lo, len);
            let strictly_inside = ips
                .iter()
                .all(|ip| *ip != net.network() && *ip != net.broadcast());
            let room = (1u64 << (32 - len)).saturating_sub(2) >= (ips.len() + wanted) as u64;
            if strictly_inside && room && private_net(&net) {
                n.range = Some(net);
                break;
            }
            if len <= 8 {
                bail!(
                    "the pods of {} ({}) fit in no private prefix",
                    node_label(n),
                    ips.iter()
                        .map(Ipv4Addr::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            len -= 1;
        }
    }
    Ok(())
}

/// A free /24 for every node whose pods declare no address.
fn free_ranges(
    nodes: &mut [Planned],
    declared: &BTreeSet<Ipv4Addr>,
    world: Ipv4Addr,
) -> Result<()> {
    let mut taken: Vec<Ipv4Net> = nodes.iter().filter_map(|n| n.range).collect();
    let mut candidates = (0..512u32).map(|i| prefix(Ipv4Addr::from(0x0afa_0000 + (i << 8)), 24));
    for n in nodes.iter_mut().filter(|n| n.range.is_none()) {
        let free = candidates.find(|c| {
            !taken.iter().any(|t| t.overlaps(c))
                && !declared.iter().any(|ip| c.contains(*ip))
                && !c.contains(world)
                && n.ip.is_none_or(|ip| !c.contains(ip))
        });
        let Some(free) = free else {
            bail!(
                "no free /24 in 10.250.0.0/15 for the pods of {}",
                node_label(n)
            );
        };
        taken.push(free);
        n.range = Some(free);
    }
    Ok(())
}

fn check_overlaps(nodes: &[Planned]) -> Result<()> {
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            if let (Some(ra), Some(rb)) = (a.range, b.range)
                && ra.overlaps(&rb)
            {
                bail!(
                    "the pods of {} need {ra} and those of {} need {rb}, which overlap: the lab routes each node's pod range to that node; give the pods of different nodes addresses in separate ranges",
                    node_label(a),
                    node_label(b)
                );
            }
        }
    }
    Ok(())
}

/// Addresses for the node's pods that declare none: the first free hosts of its range.
fn allocate(
    n: &Planned,
    pods: &mut [Result<(String, Ipv4Addr), String>],
    declared: &BTreeSet<Ipv4Addr>,
) {
    let Some(range) = n.range else { return };
    let mut next = u32::from(range.network()) + 1;
    for &i in &n.pods {
        if let Ok((_, ip)) = &mut pods[i]
            && ip.is_unspecified()
        {
            while declared.contains(&Ipv4Addr::from(next)) {
                next += 1;
            }
            *ip = Ipv4Addr::from(next);
            next += 1;
        }
    }
}

/// The underlay: the declared node addresses' /24 when they share a private one outside
/// every pod range (the other nodes take free hosts of it), else 172.30.0.0/24.
fn underlay(nodes: &mut [Planned], world: Ipv4Addr) -> Ipv4Net {
    let ranges: Vec<Ipv4Net> = nodes.iter().filter_map(|n| n.range).collect();
    let declared: Vec<Ipv4Addr> = nodes.iter().filter_map(|n| n.ip).collect();
    let shared = declared.first().map(|ip| prefix(*ip, 24)).filter(|net| {
        private_net(net)
            && declared
                .iter()
                .all(|ip| net.contains(*ip) && *ip != net.network() && *ip != net.broadcast())
            && !ranges.iter().any(|r| r.overlaps(net))
            && !net.contains(world)
    });
    let net = shared.unwrap_or_else(|| prefix(Ipv4Addr::new(172, 30, 0, 0), 24));
    if shared.is_none() {
        for n in nodes.iter_mut() {
            n.ip = None;
        }
    }
    let mut used: BTreeSet<Ipv4Addr> = nodes.iter().filter_map(|n| n.ip).collect();
    let mut host = u32::from(net.network()) + 11;
    for n in nodes.iter_mut().filter(|n| n.ip.is_none()) {
        while used.contains(&Ipv4Addr::from(host)) {
            host += 1;
        }
        n.ip = Some(Ipv4Addr::from(host));
        used.insert(Ipv4Addr::from(host));
    }
    net
}

fn document(
    lab: &str,
    cluster: &TestCluster,
    nodes: &[Planned],
    pods: &[Result<(String, Ipv4Addr), String>],
    underlay: Ipv4Net,
    (world, more): (Ipv4Addr, &[IpAddr]),
) -> Value {
    let endpoints = &cluster.cluster.endpoints;
    let pod_docs: Vec<Value> = nodes
        .iter()
        .flat_map(|n| n.pods.iter().map(move |&i| (n, i)))
        .filter_map(|(n, i)| {
            let (_, ip) = pods[i].as_ref().ok()?;
            let e = &endpoints[i];
            let ports: Vec<Value> = cluster.declarations[i]
                .ports
                .iter()
                .map(|(proto, port)| {
                    let name = e
                        .named_ports
                        .iter()
                        .find(|(_, np)| np.port == *port && np.protocol == *proto)
                        .map(|(name, _)| name.clone());
                    json!({"name": name, "port": port, "protocol": proto.to_string()})
                })
                .map(|mut p| {
                    if p["name"].is_null() {
                        p.as_object_mut().map(|o| o.remove("name"));
                    }
                    p
                })
                .collect();
            let mut pod = json!({
                "name": e.name, "namespace": e.namespace, "labels": e.labels,
                "ip": ip.to_string(), "node": n.lab_name, "ports": ports,
            });
            if let Some(sa) = &e.service_account {
                pod["serviceAccount"] = json!(sa);
            }
            // Its declared IPv6 address, kept (a declared one makes the lab dual stack).
            if let Some(ip6) = e.ips.iter().find(|ip| ip.is_ipv6()) {
                pod["ipv6"] = json!(ip6.to_string());
            }
            Some(pod)
        })
        .collect();
    let node_docs: Vec<Value> = nodes
        .iter()
        .map(|n| {
            let mut doc = json!({
                "name": n.lab_name,
                "ip": n.ip.map(|ip| ip.to_string()),
                "podCIDR": n.range.map(|r| r.to_string()),
                "labels": n.labels,
            });
            if !n.agent {
                doc["agent"] = json!(false);
            }
            doc
        })
        .collect();
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": lab},
        "spec": {
            "underlay": underlay.to_string(),
            "namespaces": cluster.cluster.namespaces,
            "nodes": node_docs,
            "world": {"name": "world", "ip": world.to_string(), "addresses": more},
            "pods": pod_docs,
        },
    })
}

/// Each service's cluster IP in the lab: its first IPv4 one, unless the lab's own ranges
/// hold it; a service with only IPv6 cluster IPs gets a free one of 10.96.0.0/16 (its IPv6
/// one in the lab is derived from it: policy never sees a cluster IP).
fn place_services(
    cluster: &TestCluster,
    in_lab: impl Fn(Ipv4Addr) -> bool,
) -> Vec<Result<Ipv4Addr, String>> {
    let services = &cluster.cluster.services;
    let declared: BTreeSet<Ipv4Addr> = services
        .iter()
        .flat_map(|s| s.ips.iter().filter_map(v4))
        .collect();
    let mut free = (1..u32::from(u16::MAX))
        .map(|i| Ipv4Addr::from(0x0a60_0000 + i))
        .filter(|ip| !declared.contains(ip) && !in_lab(*ip));
    services
        .iter()
        .map(|svc| {
            let ip = match svc.ips.iter().find_map(v4) {
                Some(ip) => ip,
                None if !svc.ips.is_empty() => free.next().ok_or_else(|| {
                    format!(
                        "no free IPv4 cluster IP in 10.96.0.0/16 for service {}",
                        svc.full_name()
                    )
                })?,
                None => {
                    return Err(format!("service {} has no cluster IP", svc.full_name()));
                }
            };
            if in_lab(ip) {
                return Err(format!(
                    "service {}'s cluster IP {ip} lies inside the lab's own ranges",
                    svc.full_name()
                ));
            }
            Ok(ip)
        })
        .collect()
}

/// The placed services as the topology declares them: a selector as written, or the
/// listed backends the lab holds (a pod's address or one of world's).
fn service_docs(
    cluster: &TestCluster,
    placed: &[Result<Ipv4Addr, String>],
    pods: &[Result<(String, Ipv4Addr), String>],
    world_addresses: &[Ipv4Addr],
) -> Value {
    // A listed backend as the lab lists it: an IPv4 address of world or a pod (a pod's
    // IPv6 address becomes its IPv4 one: the lab derives the way back).
    let held = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => (world_addresses.contains(v4)
            || pods
                .iter()
                .any(|p| p.as_ref().is_ok_and(|(_, pod)| pod == v4)))
        .then_some(*v4),
        IpAddr::V6(_) => cluster
            .cluster
            .endpoints
            .iter()
            .zip(pods)
            .find(|(e, _)| e.ips.contains(ip))
            .and_then(|(_, p)| p.as_ref().ok().map(|(_, v4)| *v4)),
    };
    let docs: Vec<Value> = cluster
        .cluster
        .services
        .iter()
        .zip(placed)
        .filter_map(|(svc, ip)| {
            let ip = ip.as_ref().ok()?;
            let several = svc.ports.len() > 1;
            let ports: Vec<Value> = svc
                .ports
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut port = json!({"port": p.port, "protocol": p.protocol.to_string()});
                    // The lab wants every port of a service with several named (Kubernetes'
                    // rule); the name only matters to the tests, which resolved it already.
                    match (&p.name, several) {
                        (Some(n), _) => port["name"] = json!(n),
                        (None, true) => port["name"] = json!(format!("port-{i}")),
                        (None, false) => {}
                    }
                    match &p.target_port {
                        Some(ward_engine::TargetPort::Number(n)) => port["targetPort"] = json!(n),
                        Some(ward_engine::TargetPort::Name(n)) => port["targetPort"] = json!(n),
                        None => {}
                    }
                    port
                })
                .collect();
            let mut doc = json!({
                "name": svc.name, "namespace": svc.namespace, "labels": svc.labels,
                "ip": ip.to_string(), "ports": ports,
            });
            if svc.has_selector() {
                doc["selector"] = json!(svc.selector);
            } else {
                let mut backends: Vec<String> = Vec::new();
                for b in svc.backends.iter().filter_map(held) {
                    if !backends.contains(&b.to_string()) {
                        backends.push(b.to_string());
                    }
                }
                doc["backends"] = json!(backends);
            }
            Some(doc)
        })
        .collect();
    json!(docs)
}

/// Every IPv6 address the tests use: their endpoints', nodes' and services' (cluster IPs and
/// backends), and the `outside` ones the flows name.
fn declared_ipv6(cluster: &TestCluster, outside: &BTreeSet<IpAddr>) -> BTreeSet<Ipv6Addr> {
    let c = &cluster.cluster;
    c.endpoints
        .iter()
        .flat_map(|e| &e.ips)
        .chain(c.nodes.iter().flat_map(|n| &n.ips))
        .chain(
            c.services
                .iter()
                .flat_map(|s| s.ips.iter().chain(&s.backends)),
        )
        .chain(outside)
        .filter_map(|ip| match ip {
            IpAddr::V6(v6) => Some(*v6),
            IpAddr::V4(_) => None,
        })
        .collect()
}

/// The dual-stack lab's prefixes: the first cluster and world /96s that hold none of the
/// tests' IPv6 addresses (so that no derived address is one of them).
fn ipv6_plan(declared: &BTreeSet<Ipv6Addr>) -> Value {
    let free = |base: u128| {
        (0..=u128::from(u16::MAX))
            .map(|i| Ipv6Addr::from_bits(base | (i << 64)))
            .find(|net| {
                !declared
                    .iter()
                    .any(|ip| ip.to_bits() >> 32 == net.to_bits() >> 32)
            })
            .unwrap_or_else(|| unreachable!("the tests hold fewer addresses than /96s"))
    };
    // fd77:ad00:0:<n>::/96 and 2001:db8:ad00:<n>::/96.
    let cluster = free(0xfd77_ad00_u128 << 96);
    let world = free(0x2001_0db8_ad00_u128 << 80);
    json!({"cluster": format!("{cluster}/96"), "world": format!("{world}/96")})
}

fn v4(ip: &IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    }
}

/// No host's address: loopback, multicast, link-local, unspecified or broadcast.
fn special4(ip: Ipv4Addr) -> bool {
    ip.is_loopback()
        || ip.is_multicast()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
}

/// No host's address: loopback, multicast, link-local or unspecified.
fn special6(ip: Ipv6Addr) -> bool {
    ip.is_loopback() || ip.is_multicast() || ip.is_unspecified() || ip.is_unicast_link_local()
}

fn node_label(n: &Planned) -> String {
    match &n.test_name {
        Some(name) => format!("node {name}"),
        None => "the endpoints without a node".to_owned(),
    }
}

fn prefix(ip: Ipv4Addr, len: u8) -> Ipv4Net {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    Ipv4Net::new(Ipv4Addr::from(u32::from(ip) & mask), len)
        .unwrap_or_else(|| unreachable!("a masked address has no host bits"))
}

fn private(ip: Ipv4Addr) -> bool {
    ip.is_private()
}

fn private_net(net: &Ipv4Net) -> bool {
    private(net.network()) && private(net.broadcast()) && net.prefix_len() >= 8
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::cluster::tests::test;
    use serde_json::json;

    fn cluster(spec: Value) -> TestCluster {
        TestCluster::build([&test("t", "t.yaml", spec)]).unwrap()
    }

    fn topology(p: &Placement) -> ward_schema::topology::Topology {
        ward_schema::topology::Topology::parse("generated", p.topology.as_bytes())
            .unwrap_or_else(|d| panic!("{d:?}\n{}", p.topology))
    }

    #[test]
    fn declared_addresses_are_kept_and_the_others_allocated_inside_the_range() {
        let c = cluster(json!({"endpoints": [
            {"name": "a", "namespace": "shop", "labels": {"app": "a"}, "ip": "10.0.1.10", "ports": [{"name": "http", "port": 80}]},
            {"name": "b", "namespace": "shop", "ip": "10.0.2.20"},
            {"name": "c", "namespace": "shop"},
            {"name": "pub", "namespace": "shop", "ip": "192.0.2.1"},
        ]}));
        let p = place(&c, &BTreeSet::new(), false, "wtd1", "d1").unwrap();
        let t = topology(&p);
        assert_eq!(t.nodes.len(), 1);
        assert_eq!(t.nodes[0].pod_cidr.to_string(), "10.0.0.0/22");
        assert_eq!(p.pods[0].as_ref().unwrap().1.to_string(), "10.0.1.10");
        assert_eq!(p.pods[2].as_ref().unwrap().1.to_string(), "10.0.0.1");
        assert!(p.pods[3].as_ref().unwrap_err().contains("public address"));
        assert_eq!(t.pods.len(), 3);
        assert!(t.ipv6.is_none(), "IPv4 tests make an IPv4 lab");
        assert_eq!(t.pods[0].ports[0].name.as_deref(), Some("http"));
        assert_eq!(t.world.ip.to_string(), "203.0.113.10");
    }

    #[test]
    fn declared_nodes_keep_their_labels_and_addresses() {
        let c = cluster(json!({
            "nodes": [
                {"name": "worker-1", "ip": "192.168.10.11", "labels": {"role": "worker"}},
                {"name": "cp", "ip": "192.168.10.2"},
            ],
            "endpoints": [
                {"name": "a", "namespace": "shop", "ip": "10.0.8.10", "node": "worker-1"},
                {"name": "b", "namespace": "shop", "ip": "10.0.1.10"},
            ]
        }));
        let outside = ["10.20.1.5", "10.0.8.9", "192.168.10.12"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let p = place(&c, &outside, false, "wtd2", "d2").unwrap();
        let t = topology(&p);
        assert_eq!(t.underlay.to_string(), "192.168.10.0/24");
        assert_eq!(t.nodes[0].ip.to_string(), "192.168.10.11");
        assert_eq!(t.nodes[0].labels["role"], "worker");
        assert_eq!(t.nodes.len(), 3, "the node of endpoints without one");
        assert_eq!(t.pods[0].node, "d2n0");
        assert_eq!(
            p.nodes[0],
            PlacedNode {
                lab: "d2n0".to_owned(),
                test: Some("worker-1".to_owned()),
                ip: "192.168.10.11".parse().unwrap()
            }
        );
        assert_eq!((p.nodes[2].lab.as_str(), &p.nodes[2].test), ("d2n2", &None));
        let pod_nodes: Vec<&str> = t.pods.iter().map(|p| p.node.as_str()).collect();
        assert_eq!(pod_nodes, ["d2n0", "d2n2"]);
        // Outside addresses inside a pod range or the underlay stay out of the world host.
        assert_eq!(
            t.world.addresses,
            ["10.20.1.5".parse::<Ipv4Addr>().unwrap()]
        );
    }

    /// Services keep their cluster IP, ports and selector; a listed backend outside the
    /// cluster is answered by world; a cluster IP inside the lab's ranges is left out.
    #[test]
    fn services_are_placed_with_their_backends() {
        let c = cluster(json!({
            "endpoints": [{"name": "web", "namespace": "shop", "labels": {"app": "web"}, "ip": "10.0.1.10",
                           "ports": [{"name": "http", "port": 8080}]}],
            "services": [
                {"name": "web", "namespace": "shop", "ip": "10.96.0.10", "selector": {"app": "web"},
                 "ports": [{"port": 80, "targetPort": "http"}, {"port": 81, "protocol": "UDP"}]},
                {"name": "db", "namespace": "shop", "ip": "10.96.0.20", "backends": ["198.51.100.20"],
                 "ports": [{"port": 5432}]},
                {"name": "inside", "namespace": "shop", "ip": "10.0.1.9", "selector": {"app": "web"},
                 "ports": [{"port": 80}]}
            ]
        }));
        let outside: BTreeSet<IpAddr> = ["198.51.100.20".parse().unwrap()].into();
        let p = place(&c, &outside, false, "wtd4", "d4").unwrap();
        let t = topology(&p);
        assert_eq!(t.services.len(), 2, "{}", p.topology);
        let web = &t.services[0];
        assert_eq!(web.ip.to_string(), "10.96.0.10");
        assert_eq!(web.ports.len(), 2);
        assert!(
            web.ports.iter().all(|p| p.name.is_some()),
            "several ports are all named"
        );
        assert_eq!(
            web.ports[0].target_port,
            ward_schema::topology::TargetPort::Name("http".into())
        );
        assert_eq!(
            t.services[1].backends,
            ["198.51.100.20".parse::<Ipv4Addr>().unwrap()]
        );
        assert!(
            p.world_addresses
                .contains(&"198.51.100.20".parse().unwrap())
        );
        let inside = p.services[2].as_ref().unwrap_err();
        assert!(inside.contains("inside the lab's own ranges"), "{inside}");
    }

    /// IPv6 anywhere makes the lab dual stack: pods keep their declared IPv6 addresses (one
    /// with only an IPv6 address gets an IPv4 one too), world answers on the IPv6 addresses
    /// the flows use, the derived addresses come from /96s that hold none of the tests', and
    /// a service with only an IPv6 cluster IP gets an IPv4 one.
    #[test]
    fn ipv6_addresses_make_a_dual_stack_lab() {
        let c = cluster(json!({
            "endpoints": [
                {"name": "a", "namespace": "shop", "ips": ["10.0.1.10", "fd77:ad00::10"]},
                {"name": "b", "namespace": "shop", "ip": "fd00:1::20", "labels": {"app": "b"}},
                {"name": "c", "namespace": "shop"},
                {"name": "d", "namespace": "shop", "ip": "fe80::1"},
            ],
            "services": [{"name": "b", "namespace": "shop", "ip": "fd00:96::1",
                          "selector": {"app": "b"}, "ports": [{"port": 80}]}],
        }));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let outside: BTreeSet<IpAddr> = [ip("2001:db8:5::7"), ip("fe80::1")].into();
        let p = place(&c, &outside, false, "wtd5", "d5").unwrap();
        let t = topology(&p);
        let plan = t.ipv6.unwrap();
        assert_eq!(
            plan.cluster.to_string(),
            "fd77:ad00:0:1::",
            "fd77:ad00::/96 holds a's"
        );
        assert_eq!(plan.world.to_string(), "2001:db8:ad00::");
        assert_eq!(t.pods[0].ipv6, Some("fd77:ad00::10".parse().unwrap()));
        assert_eq!(t.pods[1].ipv6, Some("fd00:1::20".parse().unwrap()));
        assert!(
            t.nodes[0].pod_cidr.contains(t.pods[1].ip) && t.pods[1].ip != t.pods[0].ip,
            "b gets an IPv4 address too"
        );
        assert_eq!(t.pods[2].ipv6, Some(plan.cluster_addr(t.pods[2].ip)));
        assert_eq!(
            p.world_addresses,
            [ip("2001:db8:5::7")],
            "not a link-local one"
        );
        let d = p.pods[3].as_ref().unwrap_err();
        assert!(d.contains("fe80::1, which is no host's"), "{d}");
        assert_eq!(t.pods.len(), 3, "d is not in the lab");
        assert_eq!(
            t.world.addresses6,
            ["2001:db8:5::7".parse::<std::net::Ipv6Addr>().unwrap()]
        );
        assert_eq!(p.services[0].as_ref().unwrap().to_string(), "10.96.0.1");
        assert_eq!(
            t.services[0].ipv6,
            Some(plan.cluster_addr(t.services[0].ip))
        );
        // ICMPv6 alone (no address) asks for a dual-stack lab too.
        let v4 = cluster(json!({"endpoints": [{"name": "a", "namespace": "shop"}]}));
        assert!(
            topology(&place(&v4, &BTreeSet::new(), true, "wtd6", "d6").unwrap())
                .ipv6
                .is_some()
        );
    }

    #[test]
    fn overlapping_ranges_are_an_error_that_says_what_to_do() {
        let c = cluster(json!({"endpoints": [
            {"name": "a", "namespace": "shop", "ip": "10.0.1.10", "node": "n1"},
            {"name": "b", "namespace": "shop", "ip": "10.0.1.200", "node": "n2"},
            {"name": "c", "namespace": "shop", "ip": "10.0.1.20", "node": "n1"},
            {"name": "d", "namespace": "shop", "ip": "10.0.1.100", "node": "n2"},
        ]}));
        let e = place(&c, &BTreeSet::new(), false, "wtd3", "d3")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("overlap") && e.contains("separate ranges"),
            "{e}"
        );
    }
}
