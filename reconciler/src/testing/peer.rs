//! Flow ends as PolicyTests and `ward explain` write them: a declared endpoint, an entity or
//! an address.
//!
//! Entities become what the datapath would see: `world` an address outside the cluster (a
//! documentation address, [`world_address`], unless the test gives one), `host` the local
//! host's identity, and the other reserved entities their reserved identities. `all`,
//! `cluster` and `none` select many (or no) identities and are not flow ends.

use super::cluster::TestCluster;
use std::net::{IpAddr, Ipv6Addr};
use ward_engine::{Identity, Peer, PolicyRepository};

/// One end of a flow, resolved against the declared endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRef {
    /// A declared endpoint (its position in the [`TestCluster`]).
    Endpoint(usize),
    /// An address: an endpoint's or a node's if one has it, else outside the cluster.
    Ip(IpAddr),
    /// The `world` entity: a documentation address no endpoint uses.
    World,
    /// `world-ipv6`: an IPv6 documentation address.
    WorldIpv6,
    /// A reserved identity without an address (`host`, `remote-node`, `kube-apiserver`, ...).
    Reserved(Identity),
    /// A node's host endpoint, written `node:<name>` (its position in the cluster's nodes).
    Node(usize),
    /// A ClusterIP service, written `service:<namespace>/<name>` (its position in the
    /// cluster's services): the flow goes to its first cluster IP, and from there to each
    /// of its backends.
    Service(usize),
}

/// The engine's flow ends for two written ends, once `host` and `remote-node` are tied to
/// nodes, with what could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ends {
    /// The source.
    pub src: Peer,
    /// The destination.
    pub dst: Peer,
    /// The node an entity became (`remote-node as node:worker-2`), for messages.
    pub via: Option<String>,
    /// Sides of the flow whose own policy is not part of the verdict, and why.
    pub not_evaluated: Vec<String>,
}

/// The IPv6 address `world-ipv6` stands for.
pub const WORLD_IPV6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10));

impl PeerRef {
    /// Reads a flow end: a declared endpoint name first, then an entity, then an address.
    pub fn parse(s: &str, cluster: &TestCluster) -> Result<PeerRef, String> {
        if let Some(i) = cluster.index(s) {
            return Ok(PeerRef::Endpoint(i));
        }
        if let Some(e) = PeerRef::entity(s) {
            return e;
        }
        if let Some(node) = s.strip_prefix("node:") {
            return cluster
                .cluster
                .nodes
                .iter()
                .position(|n| n.name == node)
                .map(PeerRef::Node)
                .ok_or_else(|| format!("unknown node \"{node}\": declare it under spec.nodes (or give an endpoint that node)"));
        }
        if let Some(svc) = s.strip_prefix("service:") {
            return cluster.service(svc).map(PeerRef::Service).ok_or_else(|| {
                format!("unknown service \"{svc}\": declare it under spec.services, as <namespace>/<name>")
            });
        }
        s.parse::<IpAddr>().map(PeerRef::Ip).map_err(|_| {
            format!("unknown endpoint \"{s}\": declare it under spec.endpoints, or use an entity (world, host, ...) or an IP address")
        })
    }

    /// The flow end an entity stands for; `None` when `s` is no entity.
    pub fn entity(s: &str) -> Option<Result<PeerRef, String>> {
        let r = match s {
            "world" | "world-ipv4" => Ok(PeerRef::World),
            "world-ipv6" => Ok(PeerRef::WorldIpv6),
            "all" | "cluster" | "none" => Err(format!(
                "entity \"{s}\" stands for many identities (or none), not one flow end; name an endpoint, another entity or an address"
            )),
            _ => match Identity::reserved(s) {
                Some(id) => Ok(PeerRef::Reserved(id)),
                None => return None,
            },
        };
        Some(r)
    }

    /// The engine's flow end.
    pub fn to_peer(self, repo: &PolicyRepository, cluster: &TestCluster) -> Peer {
        match self {
            PeerRef::Endpoint(i) => {
                let full = cluster.cluster.endpoints[i].full_name();
                match repo.endpoint_id(&full) {
                    Some(id) => Peer::Endpoint(id),
                    None => Peer::Reserved(Identity::UNMANAGED),
                }
            }
            PeerRef::Ip(ip) => Peer::Ip(ip),
            PeerRef::World => Peer::Ip(world_address(cluster)),
            PeerRef::WorldIpv6 => Peer::Ip(WORLD_IPV6),
            PeerRef::Reserved(id) => Peer::Reserved(id),
            PeerRef::Node(n) => node_peer(&cluster.cluster.nodes[n].name, repo),
            PeerRef::Service(i) => match cluster.cluster.services[i].ips.first() {
                Some(ip) => Peer::Ip(*ip),
                None => Peer::Reserved(Identity::WORLD),
            },
        }
    }

    /// The node this end runs on: an endpoint's node, or the node itself.
    pub fn node(self, cluster: &TestCluster) -> Option<usize> {
        let name = match self {
            PeerRef::Node(n) => return Some(n),
            other => cluster.cluster.endpoints[other.endpoint(cluster)?]
                .node
                .as_deref()?,
        };
        cluster.cluster.nodes.iter().position(|n| n.name == name)
    }

    /// How output names it: `shop/frontend`, `world`, `host`, `10.0.0.1`.
    pub fn label(self, cluster: &TestCluster) -> String {
        match self {
            PeerRef::Endpoint(i) => cluster.cluster.endpoints[i].full_name(),
            PeerRef::Ip(ip) => match cluster
                .cluster
                .endpoints
                .iter()
                .find(|e| e.ips.contains(&ip))
            {
                Some(e) => format!("{ip} ({})", e.full_name()),
                None => ip.to_string(),
            },
            PeerRef::World => "world".to_owned(),
            PeerRef::WorldIpv6 => "world-ipv6".to_owned(),
            PeerRef::Reserved(id) => id.reserved_name().unwrap_or("reserved").to_owned(),
            PeerRef::Node(n) => format!("node:{}", cluster.cluster.nodes[n].name),
            PeerRef::Service(i) => format!("service:{}", cluster.cluster.services[i].full_name()),
        }
    }

    /// The declared endpoint this end is, directly or by address.
    pub fn endpoint(self, cluster: &TestCluster) -> Option<usize> {
        match self {
            PeerRef::Endpoint(i) => Some(i),
            PeerRef::Ip(ip) => cluster
                .cluster
                .endpoints
                .iter()
                .position(|e| e.ips.contains(&ip)),
            _ => None,
        }
    }
}

fn node_peer(name: &str, repo: &PolicyRepository) -> Peer {
    repo.node_id(name)
        .map_or(Peer::Reserved(Identity::REMOTE_NODE), Peer::Node)
}

/// The engine's flow ends for `src` → `dst`: one pair, or one per node when `remote-node`
/// stands for every node other than the other end's (Cilium gives them all the same
/// identity, but each has its own host policy). `host` is the other end's node (the only
/// declared node when the other end has none). An entity left without a node, and
/// `kube-apiserver`, keep their reserved identity, and their own side is said to be not
/// evaluated.
pub fn ends(
    src: PeerRef,
    dst: PeerRef,
    repo: &PolicyRepository,
    cluster: &TestCluster,
) -> Vec<Ends> {
    let srcs = tie(src, dst, repo, cluster);
    let dsts = tie(dst, src, repo, cluster);
    let mut out = Vec::new();
    for (s, s_via) in &srcs {
        for (d, d_via) in &dsts {
            let mut not_evaluated = Vec::new();
            not_evaluated.extend(untied(*s, "egress of the source"));
            not_evaluated.extend(untied(*d, "ingress of the destination"));
            out.push(Ends {
                src: *s,
                dst: *d,
                via: s_via.clone().or_else(|| d_via.clone()),
                not_evaluated,
            });
        }
    }
    out
}

/// What an entity end stands for next to `other`, with what it became (`remote-node as
/// node:cp`) when it became a node.
fn tie(
    end: PeerRef,
    other: PeerRef,
    repo: &PolicyRepository,
    cluster: &TestCluster,
) -> Vec<(Peer, Option<String>)> {
    let nodes = &cluster.cluster.nodes;
    let became = |i: usize| {
        let name = &nodes[i].name;
        let entity = end.label(cluster);
        (
            node_peer(name, repo),
            Some(format!("{entity} as node:{name}")),
        )
    };
    let tied: Vec<_> = match (end, other) {
        // A node's own host is itself: nothing to tie.
        (PeerRef::Reserved(Identity::HOST), PeerRef::Node(_)) => Vec::new(),
        (PeerRef::Reserved(Identity::HOST), _) => other
            .node(cluster)
            .or((nodes.len() == 1).then_some(0))
            .map(became)
            .into_iter()
            .collect(),
        // Every other node that runs an agent (one without is not a node to Cilium).
        (PeerRef::Reserved(Identity::REMOTE_NODE), _) => match other.node(cluster) {
            Some(home) => (0..nodes.len())
                .filter(|i| *i != home && nodes[*i].agent)
                .map(became)
                .collect(),
            None => Vec::new(),
        },
        _ => Vec::new(),
    };
    if tied.is_empty() {
        vec![(end.to_peer(repo, cluster), None)]
    } else {
        tied
    }
}

/// Why an end's own policy is not part of the verdict, when it is an entity that has one.
fn untied(peer: Peer, side: &str) -> Option<String> {
    let why = match peer {
        Peer::Reserved(Identity::HOST) => {
            "host is tied to no node here, so no host policy applies to it (give the other end a node, or write node:<name>)"
        }
        Peer::Reserved(Identity::REMOTE_NODE) => {
            "remote-node is tied to no node here, so no node's host policy applies to it (give the other end a node and declare another under spec.nodes, or write node:<name>)"
        }
        Peer::Reserved(Identity::KUBE_APISERVER) => {
            "kube-apiserver's own policy (a host policy of the node it runs on, or its pod's) is not part of this verdict"
        }
        _ => return None,
    };
    Some(format!("{side} not evaluated: {why}"))
}

/// The address `world` stands for: 203.0.113.10 (TEST-NET-3), or the next free address of
/// the documentation ranges when a declared endpoint uses it.
pub fn world_address(cluster: &TestCluster) -> IpAddr {
    let used = |ip: &IpAddr| {
        cluster.cluster.endpoints.iter().any(|e| e.ips.contains(ip))
            || cluster.cluster.nodes.iter().any(|n| n.ips.contains(ip))
    };
    let candidates = (10..=254u8)
        .map(|h| IpAddr::from([203, 0, 113, h]))
        .chain((10..=254u8).map(|h| IpAddr::from([198, 51, 100, h])));
    candidates
        .into_iter()
        .find(|ip| !used(ip))
        .unwrap_or(IpAddr::from([192, 0, 2, 10]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::cluster::TestCluster;

    fn cluster(ip: &str) -> TestCluster {
        let spec =
            serde_json::json!({"endpoints": [{"name": "web", "namespace": "shop", "ip": ip}]});
        let t = ward_schema::policytest::PolicyTest {
            name: "t".into(),
            origin: Default::default(),
            spec: serde_json::from_value(spec).unwrap(),
        };
        TestCluster::build([&t]).unwrap()
    }

    #[test]
    fn names_entities_and_addresses() {
        let c = cluster("10.0.0.1");
        assert_eq!(PeerRef::parse("web", &c), Ok(PeerRef::Endpoint(0)));
        assert_eq!(PeerRef::parse("world", &c), Ok(PeerRef::World));
        assert_eq!(
            PeerRef::parse("host", &c),
            Ok(PeerRef::Reserved(Identity::HOST))
        );
        assert_eq!(
            PeerRef::parse("kube-apiserver", &c),
            Ok(PeerRef::Reserved(Identity::KUBE_APISERVER))
        );
        assert_eq!(
            PeerRef::parse("10.0.0.1", &c),
            Ok(PeerRef::Ip("10.0.0.1".parse().unwrap()))
        );
        assert!(
            PeerRef::parse("cluster", &c)
                .unwrap_err()
                .contains("many identities")
        );
        assert!(
            PeerRef::parse("nope", &c)
                .unwrap_err()
                .contains("unknown endpoint \"nope\"")
        );
        assert_eq!(
            PeerRef::Ip("10.0.0.1".parse().unwrap()).endpoint(&c),
            Some(0)
        );
        assert_eq!(
            PeerRef::Ip("10.0.0.1".parse().unwrap()).label(&c),
            "10.0.0.1 (shop/web)"
        );
    }

    #[test]
    fn world_avoids_declared_addresses() {
        assert_eq!(
            world_address(&cluster("10.0.0.1")).to_string(),
            "203.0.113.10"
        );
        assert_eq!(
            world_address(&cluster("203.0.113.10")).to_string(),
            "203.0.113.11"
        );
    }
}
