//! The world the engine evaluates policy in: nodes and workload endpoints, as a PolicyTest
//! document or the lab topology declares them.
//!
//! Every endpoint gets the labels Cilium adds to a pod: `k8s:io.kubernetes.pod.namespace`,
//! `k8s:io.cilium.k8s.policy.cluster`, `k8s:io.cilium.k8s.policy.serviceaccount` (its
//! ServiceAccount, `default` when it names none, as the API server sets it) and its
//! namespace's labels as
//! `k8s:io.cilium.k8s.namespace.labels.<key>` (including
//! `kubernetes.io/metadata.name=<namespace>`, which Kubernetes sets on every namespace).
//! Addresses that belong to no endpoint and no node are `world`.

use super::labels::{
    CLUSTER_KEY, Label, LabelError, LabelSet, NAMESPACE_KEY, NAMESPACE_LABELS_PREFIX,
    SERVICE_ACCOUNT_KEY, SOURCE_K8S,
};
use super::ports::Protocol;
use super::service::{Service, ServicePort};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use ward_schema::topology::Topology;

/// Nodes, namespaces and workload endpoints. The cluster's name is an agent setting
/// ([`super::EngineConfig::cluster_name`]), not part of this declaration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Cluster {
    /// Namespace labels by namespace (optional; `kubernetes.io/metadata.name` is implied).
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// The nodes.
    pub nodes: Vec<Node>,
    /// The workload endpoints (pods).
    pub endpoints: Vec<Endpoint>,
    /// DNS answers `toFQDNs` rules resolve against (a PolicyTest's `spec.dns`): where Cilium
    /// learns them from its DNS proxy, ward takes them as declared.
    pub dns: Vec<DnsAnswer>,
    /// ClusterIP services: what `toServices` selects, and where flows to a cluster IP land.
    pub services: Vec<Service>,
}

/// One DNS name and the addresses it resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DnsAnswer {
    /// The name (`api.example.com`).
    pub name: String,
    /// Its addresses (A and AAAA records).
    pub addresses: Vec<IpAddr>,
}

/// A node: its host endpoint is `reserved:host` to pods on it and `reserved:remote-node` to
/// pods elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Node {
    /// The node name.
    pub name: String,
    /// The node's addresses the flows use (at most one per family, as a Kubernetes node's
    /// `InternalIP`s; none when unknown). Read from `ips` or a single `ip`.
    #[serde(alias = "ip", deserialize_with = "one_or_many")]
    pub ips: Vec<IpAddr>,
    /// Node labels (source `k8s`), used by `nodeSelector` and `fromNodes`/`toNodes`.
    pub labels: BTreeMap<String, String>,
    /// Whether an agent runs on it. A node without one (Cilium's "node without Cilium") is
    /// not in the ipcache, nor are its pods: to the other nodes their addresses are `world`,
    /// and nothing enforces policy on them.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub agent: bool,
}

impl Default for Node {
    /// A node with an agent, no address and no labels.
    fn default() -> Node {
        Node {
            name: String::new(),
            ips: Vec::new(),
            labels: BTreeMap::new(),
            agent: true,
        }
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A workload endpoint (a pod).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Endpoint {
    /// The pod name, unique within its namespace.
    pub name: String,
    /// The pod's namespace.
    pub namespace: String,
    /// Pod labels; a key may carry a `source:` prefix, otherwise the source is `k8s`.
    pub labels: BTreeMap<String, String>,
    /// The pod's addresses (Kubernetes' `podIPs`: a dual-stack pod has one per family, the
    /// first is its `podIP`). Read from `ips` or a single `ip`.
    #[serde(alias = "ip", deserialize_with = "one_or_many")]
    pub ips: Vec<IpAddr>,
    /// Declared container ports by name (`containerPort` names), for named-port rules.
    pub named_ports: BTreeMap<String, NamedPort>,
    /// The node the pod runs on.
    pub node: Option<String>,
    /// Its ServiceAccount (`None`: `default`, which the API server gives a pod that names
    /// none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

impl Node {
    /// The node's first address (its primary), if any.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ips.first().copied()
    }
}

impl Endpoint {
    /// The pod's first address (Kubernetes' `podIP`), if any.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ips.first().copied()
    }
}

/// One address (`"10.0.0.1"`) or a list of them, as a list; `null` is none.
pub(crate) fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(IpAddr),
        Many(Vec<IpAddr>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(ip)) => vec![ip],
        Some(OneOrMany::Many(ips)) => ips,
    })
}

/// A declared container port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedPort {
    /// The port number.
    pub port: u16,
    /// The protocol (TCP when absent).
    #[serde(
        default = "tcp",
        serialize_with = "ser_proto",
        deserialize_with = "de_proto"
    )]
    pub protocol: Protocol,
}

pub(crate) fn tcp() -> Protocol {
    Protocol::TCP
}

pub(crate) fn ser_proto<S: Serializer>(p: &Protocol, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(p)
}

pub(crate) fn de_proto<'de, D: Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
    let s = String::deserialize(d)?;
    Protocol::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown protocol {s:?}")))
}

/// Something wrong with a [`Cluster`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// A label of an endpoint, a node or a namespace does not parse.
    #[error("{owner}: {source}")]
    Label {
        /// `namespace/name` of the endpoint, `node/<name>` or `namespace/<name>`.
        owner: String,
        /// The label problem.
        source: LabelError,
    },
    /// Two endpoints with the same namespace and name.
    #[error("endpoint {0} is declared more than once")]
    DuplicateEndpoint(String),
    /// Two nodes with the same name.
    #[error("node {0} is declared more than once")]
    DuplicateNode(String),
    /// Two endpoints or nodes with the same address.
    #[error("address {ip} is used by both {first} and {second}")]
    DuplicateIp {
        /// The address.
        ip: IpAddr,
        /// Its first owner.
        first: String,
        /// Its second owner.
        second: String,
    },
    /// An endpoint on a node the cluster does not declare.
    #[error("endpoint {endpoint} runs on node {node}, which is not declared")]
    UnknownNode {
        /// The endpoint.
        endpoint: String,
        /// The node it names.
        node: String,
    },
    /// Two services with the same namespace and name.
    #[error("service {0} is declared more than once")]
    DuplicateService(String),
    /// An endpoint without a name or namespace.
    #[error("an endpoint needs a name and a namespace (got {0:?})")]
    Unnamed(String),
}

impl Endpoint {
    /// `namespace/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// All labels Cilium gives this pod in `cluster` named `cluster_name` (before filtering
    /// to the security-relevant ones).
    pub fn all_labels(
        &self,
        cluster: &Cluster,
        cluster_name: &str,
    ) -> Result<LabelSet, ClusterError> {
        let owner = || self.full_name();
        let mut set = LabelSet::new();
        let ns_labels = cluster.namespaces.get(&self.namespace);
        let implied = (
            "kubernetes.io/metadata.name".to_owned(),
            self.namespace.clone(),
        );
        for (k, v) in ns_labels
            .into_iter()
            .flatten()
            .chain(std::iter::once((&implied.0, &implied.1)))
        {
            let key = format!("{NAMESPACE_LABELS_PREFIX}{k}");
            let l =
                Label::from_entry(&key, v, SOURCE_K8S).map_err(|source| ClusterError::Label {
                    owner: format!("namespace/{}", self.namespace),
                    source,
                })?;
            set.insert(l);
        }
        for (k, v) in &self.labels {
            set.insert(Label::from_entry(k, v, SOURCE_K8S).map_err(|source| {
                ClusterError::Label {
                    owner: owner(),
                    source,
                }
            })?);
        }
        set.insert(Label::new(SOURCE_K8S, NAMESPACE_KEY, &self.namespace));
        set.insert(Label::new(SOURCE_K8S, CLUSTER_KEY, cluster_name));
        set.insert(Label::new(
            SOURCE_K8S,
            SERVICE_ACCOUNT_KEY,
            self.service_account.as_deref().unwrap_or("default"),
        ));
        Ok(set)
    }

    /// The security-relevant labels: what the endpoint's identity is made of.
    pub fn identity_labels(
        &self,
        cluster: &Cluster,
        cluster_name: &str,
    ) -> Result<LabelSet, ClusterError> {
        Ok(self.all_labels(cluster, cluster_name)?.security_relevant())
    }
}

impl Node {
    /// The node's labels with source `k8s`.
    pub fn label_set(&self) -> Result<LabelSet, ClusterError> {
        let mut set = LabelSet::new();
        for (k, v) in &self.labels {
            set.insert(Label::from_entry(k, v, SOURCE_K8S).map_err(|source| {
                ClusterError::Label {
                    owner: format!("node/{}", self.name),
                    source,
                }
            })?);
        }
        Ok(set)
    }
}

impl Cluster {
    /// The engine's view of a lab topology: nodes (with their underlay addresses) and the pods
    /// as endpoints (labels, namespace, addresses of both families, named ports, node). World is not part of it: every
    /// address outside the cluster is `world` to the engine. Nodes without an agent and their
    /// pods are left out too ([`Topology::managed`]): their addresses are `world`.
    pub fn from_topology(topology: &Topology) -> Cluster {
        let topology = &topology.managed();
        Cluster {
            dns: Vec::new(),
            services: topology
                .services
                .iter()
                .map(|s| Service {
                    name: s.name.clone(),
                    namespace: s.namespace.clone(),
                    labels: s.labels.clone(),
                    ips: std::iter::once(IpAddr::V4(s.ip))
                        .chain(s.ipv6.map(IpAddr::V6))
                        .collect(),
                    ports: s
                        .ports
                        .iter()
                        .map(|p| ServicePort {
                            name: p.name.clone(),
                            port: p.port,
                            target_port: Some(p.target_port.clone()),
                            protocol: p.protocol,
                        })
                        .collect(),
                    selector: s.selector.clone(),
                    backends: s
                        .backends
                        .iter()
                        .map(|b| IpAddr::V4(*b))
                        .chain(s.backends6.iter().map(|b| IpAddr::V6(*b)))
                        .collect(),
                })
                .collect(),
            namespaces: topology.namespaces.clone(),
            nodes: topology
                .nodes
                .iter()
                .map(|n| Node {
                    name: n.name.clone(),
                    ips: std::iter::once(IpAddr::V4(n.ip))
                        .chain(n.ipv6.map(IpAddr::V6))
                        .collect(),
                    labels: n.labels.clone(),
                    agent: true,
                })
                .collect(),
            endpoints: topology
                .pods
                .iter()
                .map(|p| Endpoint {
                    name: p.name.clone(),
                    namespace: p.namespace.clone(),
                    labels: p.labels.clone(),
                    ips: std::iter::once(IpAddr::V4(p.ip))
                        .chain(p.ipv6.map(IpAddr::V6))
                        .collect(),
                    named_ports: p
                        .ports
                        .iter()
                        .filter_map(|port| {
                            let np = NamedPort {
                                port: port.port,
                                protocol: port.protocol,
                            };
                            port.name.clone().map(|name| (name, np))
                        })
                        .collect(),
                    node: Some(p.node.clone()),
                    service_account: p.service_account.clone(),
                })
                .collect(),
        }
    }

    /// Checks names, addresses and labels; every problem is reported, in declaration order.
    pub fn check(&self) -> Vec<ClusterError> {
        let mut errors = Vec::new();
        let mut names = BTreeSet::new();
        let mut ips: BTreeMap<IpAddr, String> = BTreeMap::new();
        let mut claim = |addrs: &[IpAddr], who: String, errors: &mut Vec<ClusterError>| {
            for &ip in addrs {
                if let Some(first) = ips.get(&ip) {
                    errors.push(ClusterError::DuplicateIp {
                        ip,
                        first: first.clone(),
                        second: who.clone(),
                    });
                } else {
                    ips.insert(ip, who.clone());
                }
            }
        };
        let mut nodes = BTreeSet::new();
        for n in &self.nodes {
            if !nodes.insert(n.name.as_str()) {
                errors.push(ClusterError::DuplicateNode(n.name.clone()));
            }
            claim(&n.ips, format!("node/{}", n.name), &mut errors);
            errors.extend(n.label_set().err());
        }
        for e in &self.endpoints {
            let full = e.full_name();
            if e.name.is_empty() || e.namespace.is_empty() {
                errors.push(ClusterError::Unnamed(full.clone()));
            }
            if !names.insert(full.clone()) {
                errors.push(ClusterError::DuplicateEndpoint(full.clone()));
            }
            if let Some(node) = e.node.as_ref().filter(|n| !nodes.contains(n.as_str())) {
                errors.push(ClusterError::UnknownNode {
                    endpoint: full.clone(),
                    node: node.clone(),
                });
            }
            claim(&e.ips, full, &mut errors);
            errors.extend(e.all_labels(self, "default").err());
        }
        let mut services = BTreeSet::new();
        for s in &self.services {
            let full = s.full_name();
            if s.name.is_empty() || s.namespace.is_empty() {
                errors.push(ClusterError::Unnamed(full.clone()));
            }
            if !services.insert(full.clone()) {
                errors.push(ClusterError::DuplicateService(full.clone()));
            }
            claim(&s.ips, format!("service/{full}"), &mut errors);
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn cluster() -> Cluster {
        serde_json::from_value(json!({
            "namespaces": {"shop": {"team": "payments"}},
            "nodes": [{"name": "n1", "ip": "10.0.0.1", "labels": {"zone": "a"}}],
            "endpoints": [{
                "name": "web-1", "namespace": "shop", "ip": "10.1.0.1", "node": "n1",
                "labels": {"app": "web", "pod-template-hash": "abc"},
                "namedPorts": {"http": {"port": 8080}, "dns": {"port": 53, "protocol": "UDP"}}
            }]
        }))
        .unwrap()
    }

    #[test]
    fn endpoints_get_cilium_labels_and_lose_noisy_ones() {
        let c = cluster();
        let labels = c.endpoints[0].identity_labels(&c, "default").unwrap();
        assert_eq!(
            labels.to_string(),
            "k8s:app=web,k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop,\
             k8s:io.cilium.k8s.namespace.labels.team=payments,k8s:io.cilium.k8s.policy.cluster=default,\
             k8s:io.cilium.k8s.policy.serviceaccount=default,k8s:io.kubernetes.pod.namespace=shop"
        );
        // A pod's ServiceAccount is part of its identity (`default` when it names none).
        let mut with_sa = c.clone();
        with_sa.endpoints[0].service_account = Some("web-sa".into());
        let labels = with_sa.endpoints[0].identity_labels(&c, "default").unwrap();
        assert!(
            labels
                .to_string()
                .contains("k8s:io.cilium.k8s.policy.serviceaccount=web-sa,"),
            "{labels}"
        );
        assert_eq!(c.endpoints[0].named_ports["dns"].protocol, Protocol::UDP);
        assert_eq!(c.endpoints[0].named_ports["http"].protocol, Protocol::TCP);
        assert!(c.check().is_empty());
    }

    #[test]
    fn check_reports_every_problem() {
        let mut c = cluster();
        let mut dup = c.endpoints[0].clone();
        dup.node = Some("n9".into());
        dup.labels.insert("bad key".into(), "x".into());
        c.endpoints.push(dup);
        let errors: Vec<String> = c.check().iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].contains("declared more than once"));
        assert!(errors[1].contains("n9"));
        assert!(errors[2].contains("10.1.0.1"));
        assert!(errors[3].contains("bad key"));
    }

    /// `ips` holds a dual-stack pod's addresses; a single `ip` is read as one; each address
    /// is claimed once, whichever family.
    #[test]
    fn dual_stack_addresses_are_read_and_claimed() {
        let c: Cluster = serde_json::from_value(json!({
            "nodes": [{"name": "n1", "ips": ["10.0.0.1", "fd00::1"]}],
            "endpoints": [
                {"name": "a", "namespace": "shop", "ips": ["10.1.0.1", "fd00:1::1"], "node": "n1"},
                {"name": "b", "namespace": "shop", "ip": "fd00:1::2", "node": "n1"},
                {"name": "c", "namespace": "shop", "ips": ["fd00:1::1"]},
                {"name": "d", "namespace": "shop", "ip": null}
            ]
        }))
        .unwrap();
        assert_eq!(c.nodes[0].ips.len(), 2);
        assert_eq!(c.endpoints[0].ip(), Some("10.1.0.1".parse().unwrap()));
        assert_eq!(
            c.endpoints[1].ips,
            vec!["fd00:1::2".parse::<IpAddr>().unwrap()]
        );
        assert!(c.endpoints[3].ips.is_empty() && c.endpoints[3].ip().is_none());
        let errors: Vec<String> = c.check().iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            ["address fd00:1::1 is used by both shop/a and shop/c"],
            "the IPv6 address is claimed like the IPv4 one"
        );
    }
}
