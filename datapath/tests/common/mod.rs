//! Shared helpers for the engine's integration tests: the connectivity-test cluster, policy
//! loading through ward-schema (so test policies are validated like real input), and compact
//! expectations.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(clippy::unwrap_used, clippy::panic, reason = "test helpers")]

pub mod lab;
pub mod random;

use std::net::IpAddr;
use ward_engine::{
    Cluster, Decision, Direction, Endpoint, EngineConfig, Flow, Identity, NamedPort, Node, Peer,
    PolicyRepository, Protocol, Verdict,
};
use ward_schema::{Limits, ResourceSet, assemble, load_file};

/// The world address used by the tests (documentation range).
pub const WORLD: &str = "203.0.113.10";
/// A second world address, in another documentation range.
pub const WORLD2: &str = "198.51.100.5";
/// The world addresses of IPv6 flows (documentation range 2001:db8::/32).
pub const WORLD6: &str = "2001:db8::10";
/// A second IPv6 world address.
pub const WORLD2_6: &str = "2001:db8:1::5";

/// The IPv6 address the dual-stack test cluster gives the owner of IPv4 address `v4`: the
/// IPv4 address embedded in the ULA prefix fd00::/96.
pub fn v6_of(v4: &str) -> IpAddr {
    format!("fd00::{v4}").parse().unwrap()
}

/// The IPv6 counterpart of a flow end `Suite::peer` knows: world and node addresses have
/// their own names, endpoints are both families already.
pub fn v6_peer(name: &str) -> &str {
    match name {
        "world" => "world6",
        "world2" => "world2-6",
        "host1" => "host1-6",
        "host2" => "host2-6",
        other => other,
    }
}

fn endpoint(
    ns: &str,
    name: &str,
    labels: &[(&str, &str)],
    ip: &str,
    node: &str,
    ports: &[(&str, u16, Protocol)],
) -> Endpoint {
    Endpoint {
        name: name.into(),
        namespace: ns.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ips: vec![ip.parse().unwrap(), v6_of(ip)],
        named_ports: ports
            .iter()
            .map(|(n, port, protocol)| {
                (
                    (*n).to_owned(),
                    NamedPort {
                        port: *port,
                        protocol: *protocol,
                    },
                )
            })
            .collect(),
        node: Some(node.into()),
        service_account: None,
    }
}

/// Cilium's connectivity-test layout: `client`, `client2` and `echo` in `cilium-test`,
/// `echo-other-ns` in `other-ns`, two nodes, and world addresses outside the cluster. Pods
/// and nodes are dual-stack: each IPv4 address has its [`v6_of`].
pub fn cluster() -> Cluster {
    let mut c = Cluster::default();
    c.namespaces.insert(
        "cilium-test".into(),
        [("team".to_owned(), "conn".to_owned())].into(),
    );
    c.namespaces.insert(
        "other-ns".into(),
        [("team".to_owned(), "other".to_owned())].into(),
    );
    for (name, ip, zone) in [("node-1", "10.0.0.1", "a"), ("node-2", "10.0.0.2", "b")] {
        c.nodes.push(Node {
            name: name.into(),
            ips: vec![ip.parse().unwrap(), v6_of(ip)],
            labels: [("zone".to_owned(), zone.to_owned())].into(),
            agent: true,
        });
    }
    c.endpoints = vec![
        endpoint(
            "cilium-test",
            "client",
            &[("name", "client"), ("kind", "client")],
            "10.1.0.10",
            "node-1",
            &[],
        ),
        endpoint(
            "cilium-test",
            "client2",
            &[("name", "client2"), ("kind", "client"), ("other", "client")],
            "10.1.0.11",
            "node-1",
            &[],
        ),
        endpoint(
            "cilium-test",
            "echo",
            &[("name", "echo"), ("kind", "echo")],
            "10.1.1.20",
            "node-2",
            &[("http", 8080, Protocol::TCP), ("dns", 53, Protocol::UDP)],
        ),
        endpoint(
            "other-ns",
            "echo-other-ns",
            &[("name", "echo-other-ns"), ("kind", "echo")],
            "10.1.2.30",
            "node-2",
            &[("http", 9090, Protocol::TCP)],
        ),
    ];
    c
}

/// Loads YAML documents through ward-schema's validation; panics with the diagnostics if
/// anything is an error.
pub fn load(yaml: &str) -> ResourceSet {
    let report = load_file("test-policies.yaml", yaml.as_bytes(), &Limits::default());
    let v = assemble(vec![report]);
    let errors: Vec<String> = v
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{d:?}"))
        .collect();
    assert!(
        errors.is_empty(),
        "test policies are invalid:\n{}\n---\n{yaml}",
        errors.join("\n")
    );
    v.resources
}

/// A CiliumNetworkPolicy document with `spec` given as YAML at column 0.
pub fn cnp(name: &str, ns: &str, spec: &str) -> String {
    doc("CiliumNetworkPolicy", name, Some(ns), "spec", spec)
}

/// A CiliumClusterwideNetworkPolicy document with `spec` given as YAML at column 0.
pub fn ccnp(name: &str, spec: &str) -> String {
    doc("CiliumClusterwideNetworkPolicy", name, None, "spec", spec)
}

fn doc(kind: &str, name: &str, ns: Option<&str>, field: &str, body: &str) -> String {
    let ns = ns
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    let body: String = body
        .trim_matches('\n')
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect();
    format!(
        "---\napiVersion: cilium.io/v2\nkind: {kind}\nmetadata:\n  name: {name}\n{ns}{field}:\n{body}"
    )
}

/// A repository over [`cluster`] with these policy documents.
pub fn suite(docs: &[String]) -> Suite {
    let set = load(&docs.concat());
    Suite {
        repo: PolicyRepository::from_resources(cluster(), &set).unwrap(),
    }
}

/// Like [`suite`] with explicit engine settings.
pub fn suite_with(docs: &[String], config: EngineConfig) -> Suite {
    let set = load(&docs.concat());
    let mut repo = PolicyRepository::new(cluster(), config).unwrap();
    for r in set.iter() {
        repo.upsert(r);
    }
    Suite { repo }
}

/// A repository and expectation helpers.
pub struct Suite {
    /// The repository under test.
    pub repo: PolicyRepository,
}

impl Suite {
    /// `client`, `echo`, ... (endpoints), `world`/`world2`, `host1`/`host2` (node addresses),
    /// their IPv6 counterparts ([`v6_peer`]), `reserved:<name>`, or an address.
    pub fn peer(&self, name: &str) -> Peer {
        let ip = |s: &str| Peer::Ip(s.parse::<IpAddr>().unwrap());
        match name {
            "client" | "client2" | "echo" => Peer::Endpoint(
                self.repo
                    .endpoint_id(&format!("cilium-test/{name}"))
                    .unwrap(),
            ),
            "echo-other-ns" => {
                Peer::Endpoint(self.repo.endpoint_id("other-ns/echo-other-ns").unwrap())
            }
            "world" => ip(WORLD),
            "world2" => ip(WORLD2),
            "world6" => ip(WORLD6),
            "world2-6" => ip(WORLD2_6),
            "host1" => ip("10.0.0.1"),
            "host2" => ip("10.0.0.2"),
            "host1-6" => Peer::Ip(v6_of("10.0.0.1")),
            "host2-6" => Peer::Ip(v6_of("10.0.0.2")),
            other => match other.strip_prefix("reserved:") {
                Some(r) => Peer::Reserved(Identity::reserved(r).unwrap()),
                None => ip(other),
            },
        }
    }

    /// The decision for a flow written `TCP/8080`, `ICMP/8`, `ICMPv6/128`, `VRRP/0`.
    pub fn decide(&self, from: &str, to: &str, l4: &str) -> Decision<'_> {
        let (proto, port) = l4.split_once('/').unwrap();
        let flow = Flow {
            src: self.peer(from),
            dst: self.peer(to),
            protocol: Protocol::parse(proto).unwrap(),
            port: port.parse().unwrap(),
        };
        self.repo.verdict(&flow)
    }

    /// Checks one flow against an expectation:
    /// `allow`, `allow by <policy> <path>`, `deny by <policy> <path>`,
    /// `default-deny <ingress|egress>` or `default-deny <ingress|egress> by <policy> <rule>`.
    pub fn check(&self, from: &str, to: &str, l4: &str, expect: &str) {
        let d = self.decide(from, to, l4);
        let rule = d
            .rule
            .as_ref()
            .map(|r| format!("{} {}", r.policy.name, r.path()));
        let dir = d.direction.map(|x| x.to_string()).unwrap_or_default();
        let ok = match expect.split_once(" by ") {
            None if expect == "allow" => d.verdict == Verdict::Allow,
            None => match expect.strip_prefix("default-deny ") {
                Some(want_dir) => {
                    d.verdict == Verdict::DefaultDeny && dir == want_dir && rule.is_none()
                }
                None => panic!("bad expectation {expect:?}"),
            },
            Some((head, want_rule)) => {
                let verdict_ok = match head {
                    "allow" => d.verdict == Verdict::Allow,
                    "deny" => d.verdict == Verdict::Deny,
                    h => match h.strip_prefix("default-deny ") {
                        Some(want_dir) => d.verdict == Verdict::DefaultDeny && dir == want_dir,
                        None => panic!("bad expectation {expect:?}"),
                    },
                };
                verdict_ok && rule.as_deref() == Some(want_rule)
            }
        };
        assert!(
            ok,
            "{from} -> {to} {l4}: expected `{expect}`, got {} by {rule:?} ({dir})\n{d}",
            d.verdict
        );
    }

    /// Checks several flows from one source with one expectation.
    pub fn check_all(&self, from: &str, tos: &[&str], l4: &str, expect: &str) {
        for to in tos {
            self.check(from, to, l4, expect);
        }
    }

    /// The decision of one direction (panics if that end is not managed).
    pub fn direction(
        &self,
        from: &str,
        to: &str,
        l4: &str,
        dir: Direction,
    ) -> ward_engine::DirectionDecision<'_> {
        let d = self.decide(from, to, l4);
        match dir {
            Direction::Egress => d.egress.unwrap(),
            Direction::Ingress => d.ingress.unwrap(),
        }
    }
}
