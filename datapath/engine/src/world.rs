//! The cluster as the engine sees it: endpoints with identities, nodes, the *subjects* whose
//! policy is resolved, the peer identities selectors are evaluated on, and the address map
//! (Cilium's ipcache: an address is an endpoint, a node, or `world`).
//!
//! Subjects are distinct label sets of managed endpoints: one per workload identity (all
//! endpoints with the same security-relevant labels share one resolved policy, as in Cilium),
//! one per distinct node label set for host endpoints (`reserved:host` plus the node labels,
//! selected only by `nodeSelector` rules), and `reserved:init` (selectable by CCNPs).

use super::cluster::{Cluster, ClusterError, Node};
use super::config::EngineConfig;
use super::identity::{Identity, IdentityAllocator, RESERVED, reserved_labels};
use super::index::{FxMap, LabelIndex};
use super::labels::{CLUSTER_KEY, Label, LabelSet, SOURCE_K8S};
use super::resolve::NamedPorts;
use std::net::IpAddr;

/// Names an endpoint of a repository (its position in the cluster's endpoint list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointId(pub u32);

/// Names a node of a repository (its position in the cluster's node list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

/// What kind of endpoint a subject stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubjectKind {
    Workload,
    Host,
    Init,
}

#[derive(Debug)]
pub(crate) struct SubjectInfo {
    pub kind: SubjectKind,
    pub identity: Identity,
    pub labels: LabelSet,
}

#[derive(Debug)]
pub(crate) struct EndpointState {
    pub ip: Option<IpAddr>,
    pub identity: Identity,
    pub subject: u32,
    pub node: Option<u32>,
    pub named: NamedPorts,
    /// False on a node without an agent: the endpoint is an address outside (`world`).
    pub managed: bool,
}

#[derive(Debug)]
pub(crate) struct NodeState {
    pub ip: Option<IpAddr>,
    pub host_subject: u32,
    /// What this node is to pods on other nodes.
    pub remote_identity: Identity,
    /// False without an agent: the node is an address outside (`world`).
    pub managed: bool,
}

/// Who owns an address.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner {
    Endpoint(u32),
    Node(u32),
}

#[derive(Debug, Default)]
pub(crate) struct World {
    pub endpoints: Vec<EndpointState>,
    pub endpoint_names: FxMap<String, EndpointId>,
    pub nodes: Vec<NodeState>,
    pub node_names: FxMap<String, u32>,
    pub ips: FxMap<IpAddr, Owner>,
    pub subjects: Vec<SubjectInfo>,
    pub subject_index: LabelIndex,
    pub init_subject: u32,
    /// Every identity a remote end can have, with its labels.
    pub peers: Vec<(Identity, LabelSet)>,
}

/// Builds the world (endpoints are labelled with `config.cluster_name`); `ids` keeps numbers already given and gives new label sets the next ones
/// (in sorted order).
pub(crate) fn build(
    cluster: &Cluster,
    ids: &mut IdentityAllocator,
    config: &EngineConfig,
) -> Result<World, Vec<ClusterError>> {
    let (cluster_name, node_labels) = (config.cluster_name.as_str(), config.node_selector_labels);
    let errors = cluster.check();
    if !errors.is_empty() {
        return Err(errors);
    }
    let ep_labels: Vec<LabelSet> = cluster
        .endpoints
        .iter()
        .map(|e| e.identity_labels(cluster, cluster_name))
        .collect::<Result<_, _>>()
        .map_err(|e| vec![e])?;
    let node_sets: Vec<LabelSet> = cluster
        .nodes
        .iter()
        .map(Node::label_set)
        .collect::<Result<_, _>>()
        .map_err(|e| vec![e])?;
    let remote_sets: Vec<LabelSet> = node_sets
        .iter()
        .map(|l| remote_node_labels(l, cluster_name))
        .collect();
    let mut fresh: Vec<&LabelSet> = ep_labels.iter().collect();
    if node_labels {
        fresh.extend(remote_sets.iter());
    }
    ids.allocate_all(fresh);

    let mut w = World::default();
    let mut subject_ids: FxMap<LabelSet, u32> = FxMap::default();
    let mut sorted: Vec<(Identity, &LabelSet)> =
        ep_labels.iter().map(|l| (ids.allocate(l), l)).collect();
    sorted.sort();
    sorted.dedup();
    for (id, labels) in sorted {
        push_subject(
            &mut w,
            &mut subject_ids,
            SubjectKind::Workload,
            id,
            labels.clone(),
        );
        w.peers.push((id, labels.clone()));
    }
    for (i, (node, labels)) in cluster.nodes.iter().zip(&node_sets).enumerate() {
        let mut host = labels.clone();
        host.insert(Label::reserved("host"));
        let host_subject = push_subject(
            &mut w,
            &mut subject_ids,
            SubjectKind::Host,
            Identity::HOST,
            host,
        );
        let remote_identity = if node_labels {
            ids.allocate(&remote_sets[i])
        } else {
            Identity::REMOTE_NODE
        };
        if node_labels {
            w.peers.push((remote_identity, remote_sets[i].clone()));
        }
        w.node_names.insert(node.name.clone(), index(i));
        // A node without an agent is not in the ipcache: its addresses are world.
        for &ip in node.ips.iter().filter(|_| node.agent) {
            w.ips.insert(ip, Owner::Node(index(i)));
        }
        w.nodes.push(NodeState {
            ip: node.ip(),
            host_subject,
            remote_identity,
            managed: node.agent,
        });
    }
    let init = reserved_labels(Identity::INIT).unwrap_or_default();
    w.init_subject = push_subject(
        &mut w,
        &mut subject_ids,
        SubjectKind::Init,
        Identity::INIT,
        init,
    );
    for (id, _) in RESERVED {
        w.peers.push((id, reserved_labels(id).unwrap_or_default()));
    }
    for (i, (e, labels)) in cluster.endpoints.iter().zip(ep_labels).enumerate() {
        let identity = ids.allocate(&labels);
        let subject = subject_ids.get(&labels).copied().unwrap_or(0);
        let node = e.node.as_ref().and_then(|n| w.node_names.get(n)).copied();
        let managed = node.is_none_or(|n| w.nodes[n as usize].managed);
        let named = e
            .named_ports
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), *v))
            .collect();
        w.endpoint_names.insert(e.full_name(), EndpointId(index(i)));
        // Nor are the pods of a node without an agent (no CiliumEndpoints).
        for &ip in e.ips.iter().filter(|_| managed) {
            w.ips.insert(ip, Owner::Endpoint(index(i)));
        }
        w.endpoints.push(EndpointState {
            ip: e.ip(),
            identity,
            subject,
            node,
            named,
            managed,
        });
    }
    w.subject_index = LabelIndex::new(w.subjects.iter().map(|s| s.labels.clone()).collect());
    Ok(w)
}

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn push_subject(
    w: &mut World,
    seen: &mut FxMap<LabelSet, u32>,
    kind: SubjectKind,
    identity: Identity,
    labels: LabelSet,
) -> u32 {
    if let Some(s) = seen.get(&labels) {
        return *s;
    }
    let s = index(w.subjects.len());
    seen.insert(labels.clone(), s);
    w.subjects.push(SubjectInfo {
        kind,
        identity,
        labels,
    });
    s
}

/// A remote node's labels with `enable-node-selector-labels`: `reserved:remote-node`, the
/// cluster label and the node's own labels.
fn remote_node_labels(node: &LabelSet, cluster: &str) -> LabelSet {
    let mut l = node.clone();
    l.insert(Label::reserved("remote-node"));
    l.insert(Label::new(SOURCE_K8S, CLUSTER_KEY, cluster));
    l
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cluster::Endpoint;

    #[test]
    fn replicas_share_a_subject_and_nodes_get_host_subjects() {
        let pod = |name: &str, app: &str, ip: &str| Endpoint {
            name: name.into(),
            namespace: "ns".into(),
            labels: [("app".to_owned(), app.to_owned())].into(),
            ips: vec![ip.parse().unwrap()],
            node: Some("n1".into()),
            service_account: None,
            ..Endpoint::default()
        };
        let cluster = Cluster {
            dns: Vec::new(),
            services: Vec::new(),
            nodes: vec![Node {
                name: "n1".into(),
                ips: vec!["10.0.0.1".parse().unwrap()],
                ..Node::default()
            }],
            endpoints: vec![
                pod("a-1", "a", "10.1.0.1"),
                pod("a-2", "a", "10.1.0.2"),
                pod("b-1", "b", "10.1.0.3"),
            ],
            ..Cluster::default()
        };
        let mut ids = IdentityAllocator::new();
        let w = build(&cluster, &mut ids, &EngineConfig::default()).unwrap();
        let kinds: Vec<SubjectKind> = w.subjects.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                SubjectKind::Workload,
                SubjectKind::Workload,
                SubjectKind::Host,
                SubjectKind::Init
            ]
        );
        assert_eq!(w.endpoints[0].subject, w.endpoints[1].subject);
        assert_eq!(w.endpoints[0].identity, Identity(256));
        assert_eq!(w.endpoints[2].identity, Identity(257));
        assert_eq!(w.nodes[0].remote_identity, Identity::REMOTE_NODE);
        assert!(matches!(
            w.ips[&"10.0.0.1".parse::<IpAddr>().unwrap()],
            Owner::Node(0)
        ));
        // Peers: two workload identities and the ten reserved ones.
        assert_eq!(w.peers.len(), 12);
        let with_node_labels = EngineConfig {
            node_selector_labels: true,
            ..EngineConfig::default()
        };
        let w = build(&cluster, &mut ids, &with_node_labels).unwrap();
        assert_eq!(w.nodes[0].remote_identity, Identity(258));
    }

    /// A node without an agent and its pods are not in the ipcache: their addresses, and the
    /// endpoints and node themselves as flow ends, are world (no policy of theirs applies).
    #[test]
    fn a_node_without_an_agent_and_its_pods_are_world() {
        use crate::{Flow, Peer, PolicyRepository, Verdict};
        use ward_schema::{Kind, Origin, Resource, ResourceKey, ResourceSet};
        let cluster: Cluster = serde_json::from_value(serde_json::json!({
            "nodes": [{"name": "n1", "ip": "10.0.0.1"}, {"name": "edge", "ip": "10.0.0.2", "agent": false}],
            "endpoints": [
                {"name": "web", "namespace": "ns", "labels": {"app": "web"}, "ip": "10.1.0.1", "node": "n1"},
                {"name": "out", "namespace": "ns", "labels": {"app": "client"}, "ip": "10.2.0.1", "node": "edge"}
            ]
        }))
        .unwrap();
        let spec = serde_json::json!({"endpointSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}]}, {"fromEntities": ["world"], "toPorts": [{"ports": [{"port": "9090"}]}]}]});
        let mut set = ResourceSet::new();
        set.insert(Resource {
            key: ResourceKey::new(Kind::CiliumNetworkPolicy, Some("ns"), "web"),
            object: serde_json::json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                "metadata": {"name": "web", "namespace": "ns"}, "spec": spec}),
            origin: Origin::default(),
        });
        let repo = PolicyRepository::from_resources(cluster, &set).unwrap();
        let web = Peer::Endpoint(repo.endpoint_id("ns/web").unwrap());
        let out = Peer::Endpoint(repo.endpoint_id("ns/out").unwrap());
        let to_web = |from: Peer, port| repo.verdict(&Flow::tcp(from, web, port)).verdict;
        assert_eq!(
            to_web(out, 80),
            Verdict::DefaultDeny,
            "its client label is not seen"
        );
        assert_eq!(to_web(out, 9090), Verdict::Allow, "it is world");
        assert_eq!(
            to_web(Peer::Ip("10.2.0.1".parse().unwrap()), 9090),
            Verdict::Allow
        );
        assert_eq!(
            to_web(Peer::Ip("10.0.0.2".parse().unwrap()), 9090),
            Verdict::Allow
        );
        assert!(repo.endpoint_by_ip("10.2.0.1".parse().unwrap()).is_none());
        // Its own egress is not enforced: nothing selects it, whatever it is.
        let d = repo.verdict(&Flow::tcp(out, Peer::Ip("192.0.2.1".parse().unwrap()), 81));
        assert!(d.egress.is_none() && d.verdict == Verdict::Allow);
    }
}
