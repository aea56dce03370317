//! The endpoints of every PolicyTest of a repository, as one engine [`Cluster`].
//!
//! A name means the same endpoint in every test: tests may repeat a declaration, but two
//! declarations of one name that differ (namespace, labels, address, node or ports) are an
//! error naming both files. Nodes are declared (`spec.nodes`, with addresses and labels) or
//! implied by the names endpoints use; the same rule holds for declared nodes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use ward_engine::{Cluster, ClusterError, Endpoint, NamedPort, Node, Protocol};
use ward_schema::diagnostic::codes;
use ward_schema::policytest::{PolicyTest, PortSpec, TestEndpoint, TestNode, TestService};
use ward_schema::{Diagnostic, Origin};

/// Where an endpoint was first declared, and the ports it declares.
#[derive(Debug, Clone, PartialEq)]
pub struct Declaration {
    /// The test that declared it first.
    pub test: String,
    /// That test's document.
    pub origin: Origin,
    /// Its position in the test's `spec.endpoints`.
    pub index: usize,
    /// Every declared port (named or not), sorted.
    pub ports: Vec<(Protocol, u16)>,
}

/// The declared endpoints as an engine cluster. `cluster.endpoints[i]` is declared by
/// `declarations[i]`; its engine name is the name tests use.
#[derive(Debug, Clone, Default)]
pub struct TestCluster {
    /// The engine's view.
    pub cluster: Cluster,
    /// One per endpoint, in the same order.
    pub declarations: Vec<Declaration>,
    by_name: BTreeMap<String, usize>,
    raw: Vec<TestEndpoint>,
    /// Where each declared (not only implied) node was first declared.
    node_origins: BTreeMap<String, String>,
    /// Each service's declaration as first written, and where (`file:line (PolicyTest t)`).
    service_decls: BTreeMap<String, (TestService, String)>,
}

/// What to do when a name is declared again, differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Report it (an error naming both files).
    Report,
    /// Keep the first declaration silently (used to add a base revision's endpoints to the
    /// head's).
    KeepFirst,
}

impl TestCluster {
    /// The endpoints of `tests`; every conflict and every cluster problem is reported.
    pub fn build<'a>(
        tests: impl IntoIterator<Item = &'a PolicyTest>,
    ) -> Result<TestCluster, Vec<Diagnostic>> {
        let mut c = TestCluster::default();
        let mut problems = Vec::new();
        for t in tests {
            problems.extend(c.add(t, OnConflict::Report));
        }
        problems.extend(c.check());
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(problems)
        }
    }

    /// Adds a test's endpoints; returns the conflicts found (always empty with
    /// [`OnConflict::KeepFirst`]).
    pub fn add(&mut self, test: &PolicyTest, on_conflict: OnConflict) -> Vec<Diagnostic> {
        let mut problems = Vec::new();
        self.add_dns(test);
        for (index, node) in test.spec.nodes.iter().enumerate() {
            if let Err(message) = self.add_node(test, node)
                && on_conflict == OnConflict::Report
            {
                problems.push(at_item(&test.origin, "nodes", index, message));
            }
        }
        for (index, svc) in test.spec.services.iter().enumerate() {
            if let Err(message) = self.add_service(test, svc)
                && on_conflict == OnConflict::Report
            {
                problems.push(at_item(&test.origin, "services", index, message));
            }
        }
        for (index, ep) in test.spec.endpoints.iter().enumerate() {
            if let Some(&at) = self.by_name.get(&ep.name) {
                let differences = differences(&self.raw[at], ep);
                if on_conflict == OnConflict::Report && !differences.is_empty() {
                    problems.push(self.conflict(at, test, index, &differences));
                }
                continue;
            }
            match engine_endpoint(ep) {
                Ok((endpoint, ports)) => {
                    self.by_name
                        .insert(ep.name.clone(), self.cluster.endpoints.len());
                    if let Some(node) = endpoint
                        .node
                        .as_ref()
                        .filter(|n| !self.cluster.nodes.iter().any(|known| &known.name == *n))
                    {
                        self.cluster.nodes.push(Node {
                            name: node.clone(),
                            ..Node::default()
                        });
                    }
                    self.cluster.endpoints.push(endpoint);
                    self.declarations.push(Declaration {
                        test: test.name.clone(),
                        origin: test.origin.clone(),
                        index,
                        ports,
                    });
                    self.raw.push(ep.clone());
                }
                Err(message) => problems.push(at_endpoint(&test.origin, index, message)),
            }
        }
        problems
    }

    /// Adds a declared node (`spec.nodes[index]`); a node only implied by an endpoint so far
    /// takes the declaration. Two declarations of one name that differ are an error.
    fn add_node(&mut self, test: &PolicyTest, node: &TestNode) -> Result<(), String> {
        let declared = Node {
            name: node.name.clone(),
            ips: addresses(node.ip.as_ref(), &node.ips)?,
            labels: node.labels.clone(),
            agent: node.agent.unwrap_or(true),
        };
        let at = format!("{} (PolicyTest {})", test.origin, test.name);
        match self.cluster.nodes.iter().position(|n| n.name == node.name) {
            None => self.cluster.nodes.push(declared),
            Some(i) => match self.node_origins.get(&node.name) {
                None => self.cluster.nodes[i] = declared,
                Some(first) if self.cluster.nodes[i] != declared => {
                    return Err(format!(
                        "node \"{}\" is declared differently in {at} and in {first}: a name means the same node in every PolicyTest",
                        node.name
                    ));
                }
                Some(_) => return Ok(()),
            },
        }
        self.node_origins.insert(node.name.clone(), at);
        Ok(())
    }

    /// Adds a declared service (`spec.services[index]`). A name means the same service in
    /// every test: two declarations that differ are an error. A service without an address
    /// gets the next free one of 10.96.0.0/16 (as Kubernetes would give it one).
    fn add_service(&mut self, test: &PolicyTest, svc: &TestService) -> Result<(), String> {
        let full = format!("{}/{}", svc.namespace, svc.name);
        let at = format!("{} (PolicyTest {})", test.origin, test.name);
        if let Some((first, first_at)) = self.service_decls.get(&full) {
            return if first == svc {
                Ok(())
            } else {
                Err(format!(
                    "service \"{full}\" is declared differently in {at} and in {first_at}: a name means the same service in every PolicyTest"
                ))
            };
        }
        let mut service = engine_service(svc)?;
        if service.ips.is_empty() {
            let used = |ip: &IpAddr| {
                self.cluster.services.iter().any(|s| s.ips.contains(ip))
                    || self.cluster.endpoints.iter().any(|e| e.ips.contains(ip))
            };
            let free = (10..=u16::MAX)
                .map(|n| IpAddr::from([10, 96, (n >> 8) as u8, (n & 0xff) as u8]))
                .find(|ip| !used(ip));
            service.ips.extend(free);
        }
        self.cluster.services.push(service);
        self.service_decls.insert(full, (svc.clone(), at));
        Ok(())
    }

    /// The service tests call `namespace/name`, by its position in `cluster.services`.
    pub fn service(&self, full_name: &str) -> Option<usize> {
        self.cluster
            .services
            .iter()
            .position(|s| s.full_name() == full_name)
    }

    /// Adds a test's DNS answers (`spec.dns`; the checks made sure the addresses parse); a
    /// name another test answered already gets the union of the addresses.
    fn add_dns(&mut self, test: &PolicyTest) {
        for answer in &test.spec.dns {
            let addresses = answer.addresses.iter().filter_map(|a| a.parse().ok());
            let name = answer.name.trim_end_matches('.').to_ascii_lowercase();
            match self.cluster.dns.iter_mut().find(|d| d.name == name) {
                Some(known) => {
                    for a in addresses {
                        if !known.addresses.contains(&a) {
                            known.addresses.push(a);
                        }
                    }
                }
                None => self.cluster.dns.push(ward_engine::DnsAnswer {
                    name,
                    addresses: addresses.collect(),
                }),
            }
        }
    }

    /// Adds an endpoint no test declares (one named on the command line); it is found by
    /// position only, never by name. Returns its position.
    pub fn push_adhoc(&mut self, endpoint: Endpoint) -> usize {
        let raw = TestEndpoint {
            name: endpoint.name.clone(),
            namespace: endpoint.namespace.clone(),
            labels: endpoint.labels.clone(),
            ip: None,
            ips: endpoint.ips.iter().map(ToString::to_string).collect(),
            node: endpoint.node.clone(),
            ports: Vec::new(),
            service_account: endpoint.service_account.clone(),
        };
        let origin = Origin {
            file: "(command line)".to_owned(),
            line: 0,
            document: 0,
            item_lines: Vec::new(),
        };
        self.declarations.push(Declaration {
            test: "(command line)".to_owned(),
            origin,
            index: 0,
            ports: Vec::new(),
        });
        self.raw.push(raw);
        self.cluster.endpoints.push(endpoint);
        self.cluster.endpoints.len() - 1
    }

    /// The cluster's own checks (addresses used twice, labels the engine cannot parse), as
    /// diagnostics on the declaring documents.
    pub fn check(&self) -> Vec<Diagnostic> {
        self.cluster
            .check()
            .into_iter()
            .map(|e| self.locate(&e))
            .collect()
    }

    /// The position in `cluster.endpoints` of the endpoint tests call `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The endpoint called `name` in `namespace` (the engine's `namespace/name`).
    pub fn find(&self, namespace: &str, name: &str) -> Option<usize> {
        self.index(name)
            .filter(|i| self.cluster.endpoints[*i].namespace == namespace)
    }

    /// The nodes PolicyTests declare (`spec.nodes`), not those only implied by endpoints.
    pub fn declared_nodes(&self) -> impl Iterator<Item = &str> {
        self.node_origins.keys().map(String::as_str)
    }

    /// How many endpoints.
    pub fn len(&self) -> usize {
        self.cluster.endpoints.len()
    }

    /// Whether no test declares an endpoint.
    pub fn is_empty(&self) -> bool {
        self.cluster.endpoints.is_empty()
    }

    fn conflict(
        &self,
        first: usize,
        test: &PolicyTest,
        index: usize,
        differences: &[&str],
    ) -> Diagnostic {
        let d = &self.declarations[first];
        let name = &self.raw[first].name;
        let message = format!(
            "endpoint \"{name}\" is declared differently in {} (PolicyTest {}) and in {} (PolicyTest {}): {} differ",
            test.origin,
            test.name,
            d.origin,
            d.test,
            differences.join(", ")
        );
        at_endpoint(&test.origin, index, message)
            .with_hint("a name means the same endpoint in every PolicyTest: make the declarations the same, or rename one")
    }

    /// A cluster problem on the document that declares the endpoint it names (both, for an
    /// address used twice).
    fn locate(&self, e: &ClusterError) -> Diagnostic {
        let owner = |full: &str| {
            self.cluster
                .endpoints
                .iter()
                .position(|ep| ep.full_name() == full)
        };
        let (at, message) = match e {
            ClusterError::DuplicateIp { ip, first, second } => {
                let origin = |full: &str| {
                    owner(full)
                        .map(|i| self.declarations[i].origin.to_string())
                        .unwrap_or_default()
                };
                (
                    owner(second),
                    format!(
                        "address {ip} is used by both {first} ({}) and {second} ({})",
                        origin(first),
                        origin(second)
                    ),
                )
            }
            ClusterError::Label { owner: o, .. } => (owner(o), e.to_string()),
            other => (None, other.to_string()),
        };
        let at = at.or_else(|| (!self.declarations.is_empty()).then_some(0));
        match at {
            Some(i) => {
                let d = &self.declarations[i];
                at_endpoint(&d.origin, d.index, message)
            }
            None => Diagnostic::error(codes::POLICY_TEST, message),
        }
    }
}

fn at_endpoint(origin: &Origin, index: usize, message: String) -> Diagnostic {
    at_item(origin, "endpoints", index, message)
}

fn at_item(origin: &Origin, list: &str, index: usize, message: String) -> Diagnostic {
    Diagnostic::error(codes::POLICY_TEST, message)
        .at(origin.file.clone(), origin.line, 1)
        .with_path(format!("spec.{list}[{index}]"))
}

/// Which fields of two declarations of one name differ.
fn differences(a: &TestEndpoint, b: &TestEndpoint) -> Vec<&'static str> {
    let mut out = Vec::new();
    let ports = |e: &TestEndpoint| {
        let mut p: Vec<(Option<String>, i64, String)> = e
            .ports
            .iter()
            .map(|p| {
                (
                    p.name.as_ref().map(|n| n.to_ascii_lowercase()),
                    p.port,
                    p.protocol.as_deref().unwrap_or("TCP").to_ascii_uppercase(),
                )
            })
            .collect();
        p.sort();
        p
    };
    let ip = |e: &TestEndpoint| addresses(e.ip.as_ref(), &e.ips);
    for (field, same) in [
        ("namespaces", a.namespace == b.namespace),
        ("labels", a.labels == b.labels),
        ("addresses", ip(a) == ip(b)),
        ("nodes", a.node == b.node),
        ("ports", ports(a) == ports(b)),
        ("service accounts", a.service_account == b.service_account),
    ] {
        if !same {
            out.push(field);
        }
    }
    out
}

/// A declaration's addresses: `ip` first, then those of `ips` it does not repeat.
fn addresses(ip: Option<&String>, ips: &[String]) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for s in ip.into_iter().chain(ips) {
        let addr = s
            .parse::<IpAddr>()
            .map_err(|_| format!("\"{s}\" is not an IP address"))?;
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    Ok(out)
}

/// A declared port number, 1-65535.
fn port_number(n: i64) -> Result<u16, String> {
    u16::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("port {n} is impossible; ports are 1-65535"))
}

/// The engine service for a declaration.
fn engine_service(svc: &TestService) -> Result<ward_engine::Service, String> {
    let mut ports = Vec::new();
    for p in &svc.ports {
        let written = p.protocol.as_deref().unwrap_or("TCP");
        let protocol = Protocol::parse(written)
            .filter(|p| *p == Protocol::TCP || *p == Protocol::UDP)
            .ok_or_else(|| format!("protocol \"{written}\": a service port here is TCP or UDP"))?;
        let target_port = match &p.target_port {
            None => None,
            Some(PortSpec::Number(n)) => Some(ward_engine::TargetPort::Number(port_number(*n)?)),
            Some(PortSpec::Name(s)) => Some(match s.parse::<i64>() {
                Ok(n) => ward_engine::TargetPort::Number(port_number(n)?),
                Err(_) => ward_engine::TargetPort::Name(s.clone()),
            }),
        };
        ports.push(ward_engine::ServicePort {
            name: p.name.clone(),
            port: port_number(p.port)?,
            target_port,
            protocol,
        });
    }
    let has_selector = svc.selector.as_ref().is_some_and(|s| !s.is_empty());
    if has_selector && !svc.backends.is_empty() {
        return Err(format!(
            "service {}/{} has both a selector and backends: a service with a selector gets its backends from the pods it selects; drop one",
            svc.namespace, svc.name
        ));
    }
    Ok(ward_engine::Service {
        name: svc.name.clone(),
        namespace: svc.namespace.clone(),
        labels: svc.labels.clone(),
        ips: addresses(svc.ip.as_ref(), &svc.ips)?,
        ports,
        selector: svc.selector.clone(),
        backends: addresses(None, &svc.backends)?,
    })
}

/// The engine endpoint for a declaration, and its declared ports.
fn engine_endpoint(ep: &TestEndpoint) -> Result<(Endpoint, Vec<(Protocol, u16)>), String> {
    let ips = addresses(ep.ip.as_ref(), &ep.ips)?;
    let mut named_ports = BTreeMap::new();
    let mut ports = Vec::new();
    for p in &ep.ports {
        let number = port_number(p.port)?;
        let written = p.protocol.as_deref().unwrap_or("TCP");
        let protocol = Protocol::parse(written)
            .filter(|p| p.has_ports())
            .ok_or_else(|| format!("unknown protocol \"{written}\""))?;
        if let Some(name) = &p.name {
            named_ports.insert(
                name.clone(),
                NamedPort {
                    port: number,
                    protocol,
                },
            );
        }
        ports.push((protocol, number));
    }
    ports.sort();
    ports.dedup();
    let endpoint = Endpoint {
        name: ep.name.clone(),
        namespace: ep.namespace.clone(),
        labels: ep.labels.clone(),
        ips,
        named_ports,
        node: ep.node.clone(),
        service_account: ep.service_account.clone(),
    };
    Ok((endpoint, ports))
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;
    use ward_schema::policytest::PolicyTestSpec;

    pub(crate) fn test(name: &str, file: &str, spec: serde_json::Value) -> PolicyTest {
        let spec: PolicyTestSpec = serde_json::from_value(spec).unwrap();
        PolicyTest {
            name: name.into(),
            origin: Origin {
                file: file.into(),
                line: 4,
                document: 0,
                item_lines: Vec::new(),
            },
            spec,
        }
    }

    #[test]
    fn same_name_same_endpoint_across_tests() {
        let a = test(
            "a",
            "a.yaml",
            json!({"endpoints": [
                {"name": "web", "namespace": "shop", "labels": {"app": "web"}, "node": "n1", "ports": [{"name": "http", "port": 80}, {"port": 9090, "protocol": "udp"}]},
                {"name": "db", "namespace": "shop", "labels": {"app": "db"}, "ip": "10.0.0.2"}
            ]}),
        );
        let b = test(
            "b",
            "b.yaml",
            json!({"endpoints": [
                {"name": "web", "namespace": "shop", "labels": {"app": "web"}, "node": "n1", "ports": [{"port": 9090, "protocol": "UDP"}, {"name": "http", "port": 80, "protocol": "TCP"}]}
            ]}),
        );
        let c = TestCluster::build([&a, &b]).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.cluster.nodes.len(), 1);
        assert_eq!(
            c.declarations[0].ports,
            [(Protocol::TCP, 80), (Protocol::UDP, 9090)]
        );
        assert_eq!(c.cluster.endpoints[0].named_ports["http"].port, 80);
        assert_eq!(c.find("shop", "db"), Some(1));
        assert_eq!(c.find("other", "db"), None);
    }

    #[test]
    fn conflicting_declarations_name_both_files() {
        let a = test(
            "a",
            "policies/tests/a.yaml",
            json!({"endpoints": [{"name": "web", "namespace": "shop", "labels": {"app": "web"}}]}),
        );
        let b = test(
            "b",
            "policies/tests/b.yaml",
            json!({"endpoints": [
                {"name": "x", "namespace": "shop"},
                {"name": "web", "namespace": "other", "labels": {"app": "web2"}}
            ]}),
        );
        let errors = TestCluster::build([&a, &b]).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let d = &errors[0];
        assert_eq!(
            (d.file.as_str(), d.line, d.path.as_str()),
            ("policies/tests/b.yaml", 4, "spec.endpoints[1]")
        );
        assert!(
            d.message.contains("policies/tests/a.yaml:4")
                && d.message.contains("policies/tests/b.yaml:4"),
            "{}",
            d.message
        );
        assert!(
            d.message.ends_with("namespaces, labels differ"),
            "{}",
            d.message
        );

        let mut c = TestCluster::default();
        assert!(c.add(&a, OnConflict::KeepFirst).is_empty());
        assert!(c.add(&b, OnConflict::KeepFirst).is_empty());
        assert_eq!(c.cluster.endpoints[0].namespace, "shop");
    }

    #[test]
    fn an_address_used_twice_names_both_declarations() {
        let a = test(
            "a",
            "a.yaml",
            json!({"endpoints": [{"name": "x", "namespace": "ns", "ip": "10.0.0.1"}]}),
        );
        let b = test(
            "b",
            "b.yaml",
            json!({"endpoints": [{"name": "y", "namespace": "ns", "ip": "10.0.0.1"}]}),
        );
        let errors = TestCluster::build([&a, &b]).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].file, "b.yaml");
        assert!(
            errors[0]
                .message
                .contains("ns/x (a.yaml:4) and ns/y (b.yaml:4)"),
            "{}",
            errors[0].message
        );
    }
}
