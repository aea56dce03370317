//! ClusterIP services: what `toServices` selects, and where a flow to a cluster IP goes.
//!
//! As Cilium 1.18+ (`pkg/policy/k8s/service.go`, `processRule`) translates `toServices`:
//! - a service **without a selector** (its backends listed by hand, an "external" service)
//!   becomes its backends' addresses as host prefixes (generated `toCIDRSet` entries);
//! - a service **with a selector** becomes a `toEndpoints` selector: the service's selector
//!   plus `k8s:io.kubernetes.pod.namespace=<its namespace>` (generated, so not scoped again
//!   to the policy's namespace).
//!
//! `k8sService` matches by name, `k8sServiceSelector` by the service's labels (the label
//! source is ignored), and an empty `namespace` in either matches every namespace.
//!
//! Policy never sees a cluster IP: the datapath translates it to one backend (address and
//! target port) before the policy lookup, so a flow to a service is judged as the flow to the
//! backend it reaches ([`Cluster::backends`]).

use super::cluster::{Cluster, Endpoint};
use super::labels::{Label, LabelSet, SOURCE_K8S, split_source};
use super::ports::Protocol;
use super::selector::Selector;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use ward_schema::model;
pub use ward_schema::topology::TargetPort;

/// A ClusterIP service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Service {
    /// The service name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Service labels (what `k8sServiceSelector` selects).
    pub labels: BTreeMap<String, String>,
    /// Its cluster IPs (one per family). Read from `ips` or a single `ip`.
    #[serde(alias = "ip", deserialize_with = "super::cluster::one_or_many")]
    pub ips: Vec<IpAddr>,
    /// Its ports.
    pub ports: Vec<ServicePort>,
    /// Its pod selector; `None` (or empty) for a service without one, whose backends are
    /// [`Service::backends`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<BTreeMap<String, String>>,
    /// The backend addresses of a service without a selector (its EndpointSlices').
    #[serde(deserialize_with = "super::cluster::one_or_many")]
    pub backends: Vec<IpAddr>,
}

/// One port of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// The port's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The port on the cluster IP.
    pub port: u16,
    /// The backends' port (`None`: the same number as `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<TargetPort>,
    /// TCP (default) or UDP.
    #[serde(
        default = "super::cluster::tcp",
        serialize_with = "super::cluster::ser_proto",
        deserialize_with = "super::cluster::de_proto"
    )]
    pub protocol: Protocol,
}

/// One backend of a service port: where a connection to the cluster IP lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Backend {
    /// Its address.
    pub ip: IpAddr,
    /// Its port (the resolved target port).
    pub port: u16,
}

impl Service {
    /// `namespace/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether it has a pod selector (else its backends are listed: Cilium's "external"
    /// service).
    pub fn has_selector(&self) -> bool {
        self.selector.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// Whether a `toServices` entry selects it.
    pub fn selected_by(&self, entry: &model::Service) -> bool {
        let ns_ok = |ns: &Option<String>| {
            ns.as_deref()
                .is_none_or(|n| n.is_empty() || n == self.namespace)
        };
        if let Some(sel) = &entry.k8s_service_selector {
            if !ns_ok(&sel.namespace) {
                return false;
            }
            // The label source is ignored: every service label is matched as `k8s`, and the
            // selector's keys lose any source they name.
            let labels = LabelSet::from_labels(
                self.labels
                    .iter()
                    .map(|(k, v)| Label::new(SOURCE_K8S, k, v)),
            );
            let mut plain = sel.selector.clone();
            plain.match_labels = plain
                .match_labels
                .into_iter()
                .map(|(k, v)| (strip_source(&k).to_owned(), v))
                .collect();
            for e in &mut plain.match_expressions {
                e.key = strip_source(&e.key).to_owned();
            }
            return Selector::from_model(&plain).matches(&labels);
        }
        if let Some(r) = &entry.k8s_service {
            return ns_ok(&r.namespace) && r.service_name.as_deref() == Some(self.name.as_str());
        }
        false
    }

    /// The `toEndpoints` selector a service with a selector stands for in `toServices`.
    pub fn endpoint_selector(&self) -> model::EndpointSelector {
        let mut match_labels = self.selector.clone().unwrap_or_default();
        match_labels.insert(
            "k8s:io.kubernetes.pod.namespace".to_owned(),
            self.namespace.clone(),
        );
        model::EndpointSelector {
            match_labels,
            match_expressions: Vec::new(),
        }
    }

    /// Whether pod `e` is one of its backends by selector (same namespace, every selector
    /// label on the pod).
    pub fn selects(&self, e: &Endpoint) -> bool {
        let Some(sel) = self.selector.as_ref().filter(|s| !s.is_empty()) else {
            return false;
        };
        e.namespace == self.namespace
            && sel.iter().all(|(k, v)| {
                e.labels
                    .iter()
                    .any(|(ek, ev)| strip_source(ek) == k && ev == v)
            })
    }
}

/// `k8s:app` → `app`; a key without a source stays.
fn strip_source(key: &str) -> &str {
    split_source(key, SOURCE_K8S).1
}

impl Cluster {
    /// The services at cluster IP `ip` with a port `port`/`protocol`: (service, port index).
    pub fn service_at(
        &self,
        ip: IpAddr,
        port: u16,
        protocol: Protocol,
    ) -> Option<(&Service, usize)> {
        self.services.iter().find_map(|s| {
            if !s.ips.contains(&ip) {
                return None;
            }
            let i = s
                .ports
                .iter()
                .position(|p| p.port == port && p.protocol == protocol)?;
            Some((s, i))
        })
    }

    /// Where a connection to port `port` (an index into its ports) of service `svc` lands:
    /// every backend of that address family (`family_of`'s), with its target port. A
    /// selected pod without the named target port is no backend (as Kubernetes lists it in
    /// no EndpointSlice for that port).
    pub fn backends(&self, svc: &Service, port: usize, family_of: IpAddr) -> Vec<Backend> {
        let Some(p) = svc.ports.get(port) else {
            return Vec::new();
        };
        let same_family = |ip: &IpAddr| ip.is_ipv4() == family_of.is_ipv4();
        let mut out = Vec::new();
        if svc.has_selector() {
            for e in self.endpoints.iter().filter(|e| svc.selects(e)) {
                let target = match &p.target_port {
                    None => Some(p.port),
                    Some(TargetPort::Number(n)) => Some(*n),
                    Some(TargetPort::Name(name)) => e
                        .named_ports
                        .get(name)
                        .filter(|np| np.protocol == p.protocol)
                        .map(|np| np.port),
                };
                let Some(port) = target else { continue };
                out.extend(
                    e.ips
                        .iter()
                        .filter(|ip| same_family(ip))
                        .map(|&ip| Backend { ip, port }),
                );
            }
        } else {
            let port = match &p.target_port {
                None => p.port,
                Some(TargetPort::Number(n)) => *n,
                Some(TargetPort::Name(_)) => return Vec::new(),
            };
            out.extend(
                svc.backends
                    .iter()
                    .filter(|ip| same_family(ip))
                    .map(|&ip| Backend { ip, port }),
            );
        }
        out.sort();
        out.dedup();
        out
    }
}

impl crate::PolicyRepository {
    /// The flows a flow to a cluster IP becomes: one per backend (its address and target
    /// port), as the datapath translates a pod's packet before the policy sees it. `None`
    /// when the destination is no service address, port and protocol; an empty list for a
    /// service port without backends (its packets are dropped).
    pub fn service_flows(&self, flow: &crate::Flow) -> Option<(&Service, Vec<crate::Flow>)> {
        let crate::Peer::Ip(ip) = flow.dst else {
            return None;
        };
        let cluster = self.cluster();
        let (svc, port) = cluster.service_at(ip, flow.port, flow.protocol)?;
        let flows = cluster
            .backends(svc, port, ip)
            .into_iter()
            .map(|b| crate::Flow {
                dst: crate::Peer::Ip(b.ip),
                port: b.port,
                ..*flow
            })
            .collect();
        Some((svc, flows))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn cluster() -> Cluster {
        serde_json::from_value(json!({
            "endpoints": [
                {"name": "db-1", "namespace": "data", "labels": {"app": "db"}, "ips": ["10.1.0.1", "fd00::1"],
                 "namedPorts": {"pg": {"port": 5432}}},
                {"name": "db-2", "namespace": "data", "labels": {"app": "db"}, "ip": "10.1.0.2"},
                {"name": "db-x", "namespace": "other", "labels": {"app": "db"}, "ip": "10.1.0.3",
                 "namedPorts": {"pg": {"port": 5432}}}
            ],
            "services": [
                {"name": "db", "namespace": "data", "labels": {"tier": "storage"}, "ips": ["10.96.0.5", "fd00:96::5"],
                 "selector": {"app": "db"}, "ports": [{"name": "pg", "port": 5432, "targetPort": "pg"}]},
                {"name": "legacy", "namespace": "data", "ip": "10.96.0.6",
                 "backends": ["192.0.2.7", "192.0.2.8"], "ports": [{"port": 53, "targetPort": 5353, "protocol": "UDP"}]}
            ]
        }))
        .unwrap()
    }

    /// `toServices` as Cilium resolves it (`pkg/policy/k8s/service.go`, `processRule`): a
    /// service with a selector allows the pods it selects (generated `toEndpoints` of its
    /// selector in its namespace, every port), one without allows its listed backends
    /// (generated `toCIDRSet`); a flow to the cluster IP is judged at each backend.
    #[test]
    fn to_services_allow_the_selected_pods_or_the_listed_backends() {
        use crate::{Flow, Peer, PolicyRepository, Verdict};
        use ward_schema::{Kind, Origin, Resource, ResourceKey, ResourceSet};
        let mut c = cluster();
        c.endpoints.push(
            serde_json::from_value(json!({"name": "app", "namespace": "data", "ip": "10.1.0.9", "labels": {"app": "client"}}))
                .unwrap(),
        );
        let spec = json!({
            "endpointSelector": {"matchLabels": {"app": "client"}},
            "egress": [
                {"toServices": [{"k8sService": {"serviceName": "db"}}]},
                {"toServices": [{"k8sServiceSelector": {"selector": {"matchLabels": {}}, "namespace": "data"}}]},
                {"toServices": [{"k8sService": {"serviceName": "gone", "namespace": "data"}}]}
            ]
        });
        let mut set = ResourceSet::new();
        set.insert(Resource {
            key: ResourceKey::new(Kind::CiliumNetworkPolicy, Some("data"), "to-db"),
            object: json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                           "metadata": {"name": "to-db", "namespace": "data"}, "spec": spec}),
            origin: Origin::default(),
        });
        let repo = PolicyRepository::from_resources(c, &set).unwrap();
        let from = Peer::Endpoint(repo.endpoint_id("data/app").unwrap());
        let tcp = |to: &str, port| {
            repo.verdict(&Flow::tcp(from, Peer::Ip(to.parse().unwrap()), port))
                .verdict
        };
        // db's selector: both db pods of its namespace, on any port; not db-x elsewhere.
        assert_eq!(tcp("10.1.0.1", 5432), Verdict::Allow);
        assert_eq!(tcp("10.1.0.2", 22), Verdict::Allow);
        assert_eq!(tcp("10.1.0.3", 5432), Verdict::DefaultDeny);
        // legacy (no selector, selected by the empty label selector in data): its backends.
        assert_eq!(tcp("192.0.2.7", 5353), Verdict::Allow);
        assert_eq!(tcp("192.0.2.9", 5353), Verdict::DefaultDeny);
        // Through the cluster IP: one flow per backend, each judged there.
        let flow = Flow::tcp(from, Peer::Ip("10.96.0.5".parse().unwrap()), 5432);
        let (svc, flows) = repo.service_flows(&flow).unwrap();
        assert_eq!(svc.name, "db");
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].port, 5432);
        assert_eq!(repo.verdict(&flows[0]).verdict, Verdict::Allow);
        // A service this cluster lacks matches nothing, and says so.
        let notes: Vec<_> = repo.notes().collect();
        assert!(
            notes
                .iter()
                .any(|n| n.unresolved && n.message.contains("k8sService data/gone")),
            "{notes:?}"
        );
    }

    fn entry(v: serde_json::Value) -> model::Service {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn backends_follow_the_selector_named_ports_and_the_family() {
        let c = cluster();
        let (db, port) = c
            .service_at("10.96.0.5".parse().unwrap(), 5432, Protocol::TCP)
            .unwrap();
        let v4 = c.backends(db, port, "10.96.0.5".parse().unwrap());
        // db-2 has no `pg` port and db-x is in another namespace: neither is a backend.
        assert_eq!(
            v4,
            [Backend {
                ip: "10.1.0.1".parse().unwrap(),
                port: 5432
            }]
        );
        let v6 = c.backends(db, port, "fd00:96::5".parse().unwrap());
        assert_eq!(v6[0].ip, "fd00::1".parse::<IpAddr>().unwrap());
        let (legacy, port) = c
            .service_at("10.96.0.6".parse().unwrap(), 53, Protocol::UDP)
            .unwrap();
        let b = c.backends(legacy, port, "10.96.0.6".parse().unwrap());
        assert_eq!(b.len(), 2);
        assert!(b.iter().all(|b| b.port == 5353));
        assert!(
            c.service_at("10.96.0.6".parse().unwrap(), 53, Protocol::TCP)
                .is_none()
        );
    }

    /// Cilium's `serviceRefMatches` / `serviceSelectorMatches`: an empty namespace matches
    /// every namespace; a selector matches the service's labels whatever source it names.
    #[test]
    fn to_services_entries_select_by_name_or_labels() {
        let c = cluster();
        let db = &c.services[0];
        assert!(db.selected_by(&entry(
            json!({"k8sService": {"serviceName": "db", "namespace": "data"}})
        )));
        assert!(db.selected_by(&entry(json!({"k8sService": {"serviceName": "db"}}))));
        assert!(!db.selected_by(&entry(
            json!({"k8sService": {"serviceName": "db", "namespace": "x"}})
        )));
        assert!(db.selected_by(&entry(
            json!({"k8sServiceSelector": {"selector": {"matchLabels": {"tier": "storage"}}}})
        )));
        assert!(db.selected_by(&entry(json!({"k8sServiceSelector": {"selector": {"matchLabels": {"k8s:tier": "storage"}}, "namespace": "data"}}))));
        assert!(!db.selected_by(&entry(
            json!({"k8sServiceSelector": {"selector": {"matchLabels": {"tier": "web"}}}})
        )));
        assert_eq!(
            db.endpoint_selector().match_labels,
            BTreeMap::from([
                ("app".to_owned(), "db".to_owned()),
                (
                    "k8s:io.kubernetes.pod.namespace".to_owned(),
                    "data".to_owned()
                )
            ])
        );
        assert!(!c.services[1].has_selector());
    }
}
