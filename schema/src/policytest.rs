//! The PolicyTest document, typed (`ward.dev/v1alpha1`, `$defs/PolicyTest` in
//! `schema/json/ward.schema.json`). Documents reach this module only after they were
//! validated against that schema, so a parse error here means the schema and these types
//! disagree.

use crate::{Kind, Origin, Resource, ResourceSet};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One PolicyTest document.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyTest {
    /// `metadata.name`.
    pub name: String,
    /// Where the document is (`file:line` of its first key).
    pub origin: Origin,
    /// What it declares and expects.
    pub spec: PolicyTestSpec,
}

/// `spec` of a PolicyTest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTestSpec {
    /// What the test is about.
    #[serde(default)]
    pub description: Option<String>,
    /// The nodes it declares (a name means the same node in every test); endpoints may also
    /// name nodes that are not declared.
    #[serde(default)]
    pub nodes: Vec<TestNode>,
    /// The workloads it declares. A name means the same endpoint in every test.
    #[serde(default)]
    pub endpoints: Vec<TestEndpoint>,
    /// DNS answers `toFQDNs` rules resolve against (a name means the same answer in every
    /// test).
    #[serde(default)]
    pub dns: Vec<TestDnsAnswer>,
    /// ClusterIP services (a name means the same service in every test).
    #[serde(default)]
    pub services: Vec<TestService>,
    /// The verdicts it expects.
    #[serde(default)]
    pub expectations: Vec<TestExpectation>,
}

/// A ClusterIP service of a test.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TestService {
    /// The service name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Service labels (what `k8sServiceSelector` selects).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its cluster IP (optional).
    #[serde(default)]
    pub ip: Option<String>,
    /// Its cluster IPs (after `ip` when both are given).
    #[serde(default)]
    pub ips: Vec<String>,
    /// Its pod selector; absent for a service whose backends are listed.
    #[serde(default)]
    pub selector: Option<BTreeMap<String, String>>,
    /// The backend addresses of a service without a selector.
    #[serde(default)]
    pub backends: Vec<String>,
    /// Its ports.
    pub ports: Vec<TestServicePort>,
}

/// A port of a test's service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestServicePort {
    /// The port name.
    #[serde(default)]
    pub name: Option<String>,
    /// The port on the cluster IP.
    pub port: i64,
    /// The backends' port: a number or a named container port (the same as `port` when
    /// absent).
    #[serde(default)]
    pub target_port: Option<PortSpec>,
    /// TCP (default) or UDP.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// A DNS name and its addresses, as a test declares them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TestDnsAnswer {
    /// The name.
    pub name: String,
    /// Its addresses (checked to parse).
    pub addresses: Vec<String>,
}

/// A node of a test: its host endpoint is `node:<name>` in expectations, and what the `host`
/// and `remote-node` entities stand for next to its pods.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TestNode {
    /// The node name.
    pub name: String,
    /// The node's address (optional).
    #[serde(default)]
    pub ip: Option<String>,
    /// The node's addresses (one per family for a dual-stack node; after `ip` when both are
    /// given).
    #[serde(default)]
    pub ips: Vec<String>,
    /// Node labels (`nodeSelector`, `fromNodes`/`toNodes`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `false`: no agent runs there (Cilium's "node without Cilium"): the node and its pods
    /// are `world` to the others, and nothing enforces policy on them.
    #[serde(default)]
    pub agent: Option<bool>,
}

/// An HTTP request an expectation carries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct TestHttpRequest {
    /// The method (`GET` when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// The path with its query (`/` when absent).
    #[serde(default)]
    pub path: Option<String>,
    /// The Host header.
    #[serde(default)]
    pub host: Option<String>,
    /// Other headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A DNS query an expectation carries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TestDnsQuery {
    /// The queried name.
    pub query: String,
}

/// A workload of a test.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestEndpoint {
    /// The name expectations use; also the pod name.
    pub name: String,
    /// The pod's namespace.
    pub namespace: String,
    /// Pod labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The pod's address (optional).
    #[serde(default)]
    pub ip: Option<String>,
    /// The pod's addresses, as Kubernetes' `podIPs` (one per family for a dual-stack pod;
    /// after `ip` when both are given).
    #[serde(default)]
    pub ips: Vec<String>,
    /// The node it runs on (optional; nodes are implied by the names used).
    #[serde(default)]
    pub node: Option<String>,
    /// Declared container ports; a named one can be used by named-port rules.
    #[serde(default)]
    pub ports: Vec<TestPort>,
    /// The pod's ServiceAccount (`default` when absent, as the API server sets it), which
    /// policies select as `io.cilium.k8s.policy.serviceaccount`.
    #[serde(default, rename = "serviceAccount")]
    pub service_account: Option<String>,
}

/// A declared container port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub struct TestPort {
    /// The port name (`containerPort` name).
    #[serde(default)]
    pub name: Option<String>,
    /// The number.
    pub port: i64,
    /// TCP (default), UDP or SCTP.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// One expected verdict.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestExpectation {
    /// The source: a declared endpoint, an entity (`world`, `host`, ...) or an address.
    pub from: String,
    /// The destination, written the same way.
    pub to: String,
    /// A port number, or a named port of the destination. Optional for ICMP (the type).
    #[serde(default)]
    pub port: Option<PortSpec>,
    /// TCP (default), UDP, SCTP, ICMP or ICMPv6.
    #[serde(default)]
    pub protocol: Option<String>,
    /// What should happen.
    pub expect: Expect,
    /// Which policy must decide: `Kind/namespace/name`, `Kind/name`, `default-deny` or
    /// `no-policy`; optionally followed by a space and the rule path (`spec.ingress[0]`).
    #[serde(default)]
    pub decided_by: Option<String>,
    /// Why this expectation exists.
    #[serde(default)]
    pub description: Option<String>,
    /// An HTTP request the flow carries: the verdict then includes the L7 rules' decision.
    #[serde(default)]
    pub http: Option<TestHttpRequest>,
    /// A DNS query the flow carries: the verdict then includes the DNS rules' decision.
    #[serde(default)]
    pub dns: Option<TestDnsQuery>,
}

/// A port as an expectation writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PortSpec {
    /// A number (the ICMP type for ICMP).
    Number(i64),
    /// A named port of the destination, or a number written as a string.
    Name(String),
}

/// The expected outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// The flow passes.
    Allow,
    /// The flow is dropped (by a deny rule or by default deny).
    Deny,
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Expect::Allow => "allow",
            Expect::Deny => "deny",
        })
    }
}

impl PolicyTest {
    /// The typed form of a PolicyTest resource; `None` for other kinds.
    pub fn from_resource(r: &Resource) -> Option<Result<PolicyTest, String>> {
        if r.key.kind != Kind::PolicyTest {
            return None;
        }
        let spec = serde_json::from_value::<PolicyTestSpec>(r.spec().clone()).map_err(|e| {
            format!(
                "{}: PolicyTest {} does not match its schema: {e}",
                r.origin, r.key.name
            )
        });
        Some(spec.map(|spec| PolicyTest {
            name: r.key.name.clone(),
            origin: r.origin.clone(),
            spec,
        }))
    }

    /// Every PolicyTest of a set, in file order, and the documents that did not convert.
    pub fn all_in(set: &ResourceSet) -> (Vec<PolicyTest>, Vec<String>) {
        let mut tests = Vec::new();
        let mut errors = Vec::new();
        for r in set.iter() {
            match PolicyTest::from_resource(r) {
                Some(Ok(t)) => tests.push(t),
                Some(Err(e)) => errors.push(e),
                None => {}
            }
        }
        tests.sort_by(|a, b| {
            (&a.origin.file, a.origin.document, &a.name).cmp(&(
                &b.origin.file,
                b.origin.document,
                &b.name,
            ))
        });
        (tests, errors)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ResourceKey;
    use serde_json::json;

    #[test]
    fn reads_a_policy_test_resource() {
        let object = json!({
            "apiVersion": "ward.dev/v1alpha1", "kind": "PolicyTest", "metadata": {"name": "t"},
            "spec": {
                "endpoints": [{"name": "a", "namespace": "ns", "labels": {"app": "a"}, "ports": [{"name": "http", "port": 80}]}],
                "expectations": [
                    {"from": "a", "to": "a", "port": "http", "expect": "allow", "decidedBy": "no-policy"},
                    {"from": "world", "to": "a", "port": 80, "protocol": "UDP", "expect": "deny"}
                ]
            }
        });
        let r = Resource {
            key: ResourceKey::new(Kind::PolicyTest, None, "t"),
            object,
            origin: Origin {
                file: "t.yaml".into(),
                line: 1,
                document: 0,
                item_lines: Vec::new(),
            },
        };
        let t = PolicyTest::from_resource(&r).unwrap().unwrap();
        assert_eq!(t.spec.endpoints[0].ports[0].port, 80);
        assert_eq!(
            t.spec.expectations[0].port,
            Some(PortSpec::Name("http".into()))
        );
        assert_eq!(t.spec.expectations[1].port, Some(PortSpec::Number(80)));
        assert_eq!(t.spec.expectations[1].expect, Expect::Deny);
        assert_eq!(
            t.spec.expectations[0].decided_by.as_deref(),
            Some("no-policy")
        );

        let cnp = Resource {
            key: ResourceKey::new(Kind::CiliumNetworkPolicy, Some("ns"), "p"),
            ..r
        };
        assert!(PolicyTest::from_resource(&cnp).is_none());
    }
}
