//! Each point of Cilium's NetworkPolicy translation, checked through the repository's
//! verdicts against the verdicts Cilium gives (reference: knp-and-cidrgroup-semantics §1, §3 and
//! the tricky cases of §4, numbered as there). Upstream sources: cilium/cilium
//! pkg/k8s/network_policy.go (`ParseNetworkPolicy`, `parseNetworkPolicyPeer`, `parsePorts`),
//! pkg/policy/types/selector.go (CIDR and CIDR-group selectors), pkg/policy/api/cidr.go,
//! pkg/policy/k8s/cilium_cidr_group.go, and kubernetes/kubernetes
//! pkg/apis/networking/v1/defaults.go (policyTypes and protocol defaults).
#![allow(clippy::unwrap_used)]

use crate::cluster::{Cluster, Endpoint, NamedPort, Node};
use crate::ports::Protocol;
use crate::{Flow, Peer, PolicyRepository, Verdict};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use ward_schema::{Kind, Origin, Resource, ResourceKey, ResourceSet};

const WORLD_IP: &str = "203.0.113.10";
const NODE_IP: &str = "10.0.0.1";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Namespaces shop (team=shop) and db (team=data); pods shop/web, shop/api (named port
/// http=8080), shop/batch, db/pg (named port sql=5432), all on node n1.
fn cluster() -> Cluster {
    let ep = |ns: &str, name: &str, app: &str, ip: &str, ports: &[(&str, u16)]| Endpoint {
        name: name.into(),
        namespace: ns.into(),
        labels: labels(&[("app", app)]),
        ips: vec![ip.parse().unwrap()],
        named_ports: ports
            .iter()
            .map(|(n, p)| {
                (
                    (*n).to_owned(),
                    NamedPort {
                        port: *p,
                        protocol: Protocol::TCP,
                    },
                )
            })
            .collect(),
        node: Some("n1".into()),
        service_account: None,
    };
    Cluster {
        dns: Vec::new(),
        services: Vec::new(),
        namespaces: [
            ("shop".to_owned(), labels(&[("team", "shop")])),
            ("db".to_owned(), labels(&[("team", "data")])),
        ]
        .into(),
        nodes: vec![Node {
            name: "n1".into(),
            ips: vec![NODE_IP.parse().unwrap()],
            labels: BTreeMap::new(),
            agent: true,
        }],
        endpoints: vec![
            ep("shop", "web", "web", "10.1.0.1", &[]),
            ep("shop", "api", "api", "10.1.0.2", &[("http", 8080)]),
            ep("shop", "batch", "batch", "10.1.0.3", &[]),
            ep("db", "pg", "pg", "10.1.0.4", &[("sql", 5432)]),
        ],
    }
}

fn resource(kind: Kind, ns: Option<&str>, name: &str, object: Value) -> Resource {
    Resource {
        key: ResourceKey::new(kind, ns, name),
        object,
        origin: Origin::default(),
    }
}

fn knp(ns: &str, name: &str, spec: Value) -> Resource {
    resource(
        Kind::NetworkPolicy,
        Some(ns),
        name,
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": name, "namespace": ns}, "spec": spec}),
    )
}

fn cnp(ns: &str, name: &str, spec: Value) -> Resource {
    resource(
        Kind::CiliumNetworkPolicy,
        Some(ns),
        name,
        json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
               "metadata": {"name": name, "namespace": ns}, "spec": spec}),
    )
}

fn group(name: &str, role: &str, cidrs: &[&str]) -> Resource {
    resource(
        Kind::CiliumCIDRGroup,
        None,
        name,
        json!({"apiVersion": "cilium.io/v2", "kind": "CiliumCIDRGroup",
               "metadata": {"name": name, "labels": {"role": role}}, "spec": {"externalCIDRs": cidrs}}),
    )
}

fn repo(resources: Vec<Resource>) -> PolicyRepository {
    let mut set = ResourceSet::new();
    for r in resources {
        set.insert(r);
    }
    PolicyRepository::from_resources(cluster(), &set).unwrap()
}

/// A peer by name: `shop/web` (a pod), `world` (an outside address), `node` (the node's host).
fn peer(r: &PolicyRepository, name: &str) -> Peer {
    match name {
        "world" => Peer::Ip(WORLD_IP.parse().unwrap()),
        "node" => Peer::Ip(NODE_IP.parse().unwrap()),
        ip if ip.parse::<std::net::IpAddr>().is_ok() => Peer::Ip(ip.parse().unwrap()),
        pod => Peer::Endpoint(r.endpoint_id(pod).unwrap()),
    }
}

fn verdict(r: &PolicyRepository, from: &str, to: &str, proto: Protocol, port: u16) -> Verdict {
    let flow = Flow {
        src: peer(r, from),
        dst: peer(r, to),
        protocol: proto,
        port,
    };
    r.verdict(&flow).verdict
}

fn tcp(r: &PolicyRepository, from: &str, to: &str, port: u16) -> Verdict {
    verdict(r, from, to, Protocol::TCP, port)
}

use Verdict::{Allow, DefaultDeny};

/// Case 1: no policyTypes and no rules defaults to [Ingress] (`SetDefaults_NetworkPolicy`);
/// Cilium adds one ingress entry with no peer: ingress isolated, egress open.
#[test]
fn no_policy_types_and_no_rules_isolates_ingress_only() {
    let r = repo(vec![knp(
        "shop",
        "deny-in",
        json!({"podSelector": {"matchLabels": {"app": "api"}}}),
    )]);
    assert_eq!(tcp(&r, "shop/web", "shop/api", 80), DefaultDeny);
    assert_eq!(
        tcp(&r, "shop/api", "shop/web", 80),
        Allow,
        "egress is untouched"
    );
    assert_eq!(
        tcp(&r, "shop/web", "shop/batch", 80),
        Allow,
        "other pods are not selected"
    );
}

/// Case 2: policyTypes [Egress] with no egress rules denies all egress; ingress untouched.
#[test]
fn egress_type_without_rules_isolates_egress_only() {
    let r = repo(vec![knp(
        "shop",
        "deny-out",
        json!({"podSelector": {}, "policyTypes": ["Egress"]}),
    )]);
    assert_eq!(tcp(&r, "shop/web", "db/pg", 5432), DefaultDeny);
    assert_eq!(tcp(&r, "db/pg", "shop/web", 80), Allow);
}

/// Case 3: `ingress: [{}]` allows everything, world and host included: the wildcard peer has
/// no requirement (`WildcardSelector`).
#[test]
fn an_empty_ingress_rule_allows_every_peer() {
    let r = repo(vec![knp(
        "shop",
        "all",
        json!({"podSelector": {}, "ingress": [{}]}),
    )]);
    for from in ["db/pg", "world", "node"] {
        assert_eq!(tcp(&r, from, "shop/api", 80), Allow, "{from}");
    }
}

/// Case 4: `from: [{podSelector: {}}]` admits the policy's own namespace only.
#[test]
fn a_pod_selector_peer_is_pinned_to_the_policy_namespace() {
    let r = repo(vec![knp(
        "shop",
        "same-ns",
        json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
    )]);
    assert_eq!(tcp(&r, "shop/web", "shop/api", 80), Allow);
    assert_eq!(tcp(&r, "db/pg", "shop/api", 80), DefaultDeny);
    assert_eq!(tcp(&r, "world", "shop/api", 80), DefaultDeny);
}

/// Case 5: `from: [{namespaceSelector: {}}]` admits every pod of every namespace, but not
/// the world (the node's own host is always allowed to its pods: allow-localhost).
#[test]
fn an_empty_namespace_selector_admits_all_pods_only() {
    let r = repo(vec![knp(
        "shop",
        "all-pods",
        json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}),
    )]);
    assert_eq!(tcp(&r, "db/pg", "shop/api", 80), Allow);
    assert_eq!(tcp(&r, "world", "shop/api", 80), DefaultDeny);
}

/// Case 6: namespace and pod selector in one peer are ANDed; in two peers they are ORed.
#[test]
fn selectors_in_one_peer_and_vs_two_peers_or() {
    let and = repo(vec![knp(
        "db",
        "and",
        json!({"podSelector": {}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"team": "shop"}}, "podSelector": {"matchLabels": {"app": "api"}}}
        ]}]}),
    )]);
    assert_eq!(tcp(&and, "shop/api", "db/pg", 5432), Allow);
    assert_eq!(tcp(&and, "shop/web", "db/pg", 5432), DefaultDeny);
    let or = repo(vec![knp(
        "db",
        "or",
        json!({"podSelector": {}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"team": "shop"}}},
            {"podSelector": {"matchLabels": {"app": "api"}}}
        ]}]}),
    )]);
    assert_eq!(
        tcp(&or, "shop/web", "db/pg", 5432),
        Allow,
        "any pod of team=shop"
    );
}

/// Cases 7 and 8: an ipBlock never admits pods, even one covering the pod CIDR (cilium/cilium
/// #9209), nor the policy namespace's pods (the regression fixed by #46305); `except` carves
/// out a prefix (`cidr:<except> DoesNotExist`).
#[test]
fn ip_blocks_match_world_addresses_with_exceptions() {
    let r = repo(vec![knp(
        "shop",
        "blocks",
        json!({"podSelector": {"matchLabels": {"app": "api"}}, "ingress": [{"from": [
            {"ipBlock": {"cidr": "10.1.0.0/16"}},
            {"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.128/25"]}}
        ]}]}),
    )]);
    assert_eq!(
        tcp(&r, "shop/web", "shop/api", 80),
        DefaultDeny,
        "pods are not CIDR peers"
    );
    assert_eq!(tcp(&r, "world", "shop/api", 80), Allow);
    assert_eq!(
        tcp(&r, "203.0.113.200", "shop/api", 80),
        DefaultDeny,
        "except"
    );
}

/// Case 13 and ports: no port is every port of the protocol (TCP when absent); endPort is an
/// inclusive range; a named port is the selected pod's own on ingress.
#[test]
fn ports_protocols_ranges_and_named_ports() {
    let r = repo(vec![
        knp(
            "shop",
            "udp",
            json!({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [{"protocol": "UDP"}]}]}),
        ),
        knp(
            "shop",
            "range",
            json!({"podSelector": {"matchLabels": {"app": "batch"}}, "ingress": [{"ports": [{"port": 8000, "endPort": 8010}]}]}),
        ),
        knp(
            "shop",
            "named",
            json!({"podSelector": {"matchLabels": {"app": "api"}}, "ingress": [{"ports": [{"port": "http"}]}]}),
        ),
    ]);
    assert_eq!(verdict(&r, "db/pg", "shop/web", Protocol::UDP, 53), Allow);
    assert_eq!(tcp(&r, "db/pg", "shop/web", 53), DefaultDeny);
    assert_eq!(tcp(&r, "db/pg", "shop/batch", 8010), Allow);
    assert_eq!(tcp(&r, "db/pg", "shop/batch", 8011), DefaultDeny);
    assert_eq!(
        verdict(&r, "db/pg", "shop/batch", Protocol::UDP, 8005),
        DefaultDeny,
        "TCP by default"
    );
    assert_eq!(tcp(&r, "db/pg", "shop/api", 8080), Allow);
    assert_eq!(tcp(&r, "db/pg", "shop/api", 80), DefaultDeny);
}

/// Egress named ports resolve against the destination pod's ports.
#[test]
fn egress_named_ports_use_the_destination() {
    let r = repo(vec![knp(
        "shop",
        "to-db",
        json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"team": "data"}}}], "ports": [{"port": "sql"}]}]}),
    )]);
    assert_eq!(tcp(&r, "shop/web", "db/pg", 5432), Allow);
    assert_eq!(tcp(&r, "shop/web", "db/pg", 5433), DefaultDeny);
    assert_eq!(tcp(&r, "shop/web", "shop/api", 8080), DefaultDeny);
}

/// Case 14: policyTypes [Egress] with ingress rules: Cilium still isolates ingress and
/// applies those allows (upstream Kubernetes would leave ingress open; cilium/cilium#48703).
#[test]
fn rules_are_converted_whatever_policy_types_say() {
    let r = repo(vec![knp(
        "shop",
        "mixed",
        json!({"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Egress"],
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}),
    )]);
    assert_eq!(tcp(&r, "shop/web", "shop/api", 80), Allow);
    assert_eq!(tcp(&r, "shop/batch", "shop/api", 80), DefaultDeny);
    assert_eq!(
        tcp(&r, "shop/api", "db/pg", 5432),
        DefaultDeny,
        "egress isolated too"
    );
}

/// Cases 15 and 16: KNP allows are unioned with CNP rules; a CNP deny still wins, and a CNP
/// with `enableDefaultDeny: {ingress: false}` does not undo the KNP's isolation.
#[test]
fn network_policies_combine_with_cilium_policies() {
    let allow_web = json!({"podSelector": {"matchLabels": {"app": "api"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]});
    let r = repo(vec![
        knp("shop", "allow-web", allow_web.clone()),
        cnp(
            "shop",
            "deny-web",
            json!({"endpointSelector": {"matchLabels": {"app": "api"}},
            "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"app": "web"}}], "toPorts": [{"ports": [{"port": "81", "protocol": "TCP"}]}]}]}),
        ),
        cnp(
            "shop",
            "allow-batch",
            json!({"endpointSelector": {"matchLabels": {"app": "api"}},
            "enableDefaultDeny": {"ingress": false},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "batch"}}]}]}),
        ),
    ]);
    assert_eq!(tcp(&r, "shop/web", "shop/api", 80), Allow);
    assert_eq!(
        tcp(&r, "shop/web", "shop/api", 81),
        Verdict::Deny,
        "the CNP deny wins"
    );
    assert_eq!(
        tcp(&r, "shop/batch", "shop/api", 80),
        Allow,
        "the CNP allow is unioned"
    );
    assert_eq!(
        tcp(&r, "db/pg", "shop/api", 80),
        DefaultDeny,
        "still isolated"
    );
}

/// Case 17: egress to 0.0.0.0/0 reaches the world but not pods or nodes.
#[test]
fn egress_to_everything_outside_is_world_only() {
    let r = repo(vec![knp(
        "shop",
        "out",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}),
    )]);
    assert_eq!(tcp(&r, "shop/web", "world", 443), Allow);
    assert_eq!(tcp(&r, "shop/web", "db/pg", 5432), DefaultDeny);
    assert_eq!(tcp(&r, "shop/web", "node", 10250), DefaultDeny);
}

/// CIDR groups (§3, cases 18 and 19): a reference resolves to the group's prefixes
/// (`cidrgroup:io.cilium.policy.cidrgroupname/<name>`), a selector to every group with those
/// labels, `except` applies to every member (selector_test.go "cidr group with exception");
/// a missing group matches nothing, with toPorts too (#33396), and is an unresolved note;
/// adding the group later resolves it.
#[test]
fn cidr_groups_resolve_in_the_same_revision() {
    let policy = cnp(
        "shop",
        "vpn",
        json!({"endpointSelector": {"matchLabels": {"app": "api"}}, "ingress": [
            {"fromCIDRSet": [{"cidrGroupSelector": {"matchLabels": {"role": "vpn"}}, "except": ["192.0.2.9/32"]}]},
            {"fromCIDRSet": [{"cidrGroupRef": "partners"}], "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}
        ]}),
    );
    let mut r = repo(vec![policy, group("office", "vpn", &["192.0.2.0/24"])]);
    assert_eq!(tcp(&r, "192.0.2.1", "shop/api", 80), Allow);
    assert_eq!(tcp(&r, "192.0.2.9", "shop/api", 80), DefaultDeny, "except");
    assert_eq!(
        tcp(&r, "198.51.100.1", "shop/api", 443),
        DefaultDeny,
        "the group is missing"
    );
    let notes: Vec<_> = r.notes().filter(|n| n.unresolved).collect();
    assert_eq!(notes.len(), 1);
    assert_eq!(
        notes[0].message,
        "CiliumCIDRGroup \"partners\" is not in this revision: cidrGroupRef matches nothing"
    );
    assert_eq!(notes[0].rule.path(), "spec.ingress[1]");
    r.upsert(&group("partners", "partner", &["198.51.100.0/24"]));
    assert_eq!(tcp(&r, "198.51.100.1", "shop/api", 443), Allow);
    assert_eq!(r.notes().filter(|n| n.unresolved).count(), 0);
    r.remove(&ResourceKey::new(Kind::CiliumCIDRGroup, None, "office"));
    assert_eq!(tcp(&r, "192.0.2.1", "shop/api", 80), DefaultDeny);
}

/// Host endpoints are never NetworkPolicy subjects.
#[test]
fn network_policies_never_select_hosts() {
    let r = repo(vec![knp(
        "shop",
        "all",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    )]);
    assert_eq!(
        tcp(&r, "shop/web", "node", 22),
        DefaultDeny,
        "the pod's egress"
    );
    assert!(
        r.host_policy("n1")
            .is_some_and(|p| !p.is_enforced(crate::Direction::Ingress))
    );
}

/// The common way to name one namespace: the `kubernetes.io/metadata.name` label Kubernetes
/// sets on every namespace, which Cilium gives its pods as a namespace label.
#[test]
fn a_namespace_is_selected_by_its_metadata_name_label() {
    let r = repo(vec![knp(
        "shop",
        "to-db",
        json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "db"}}}]}]}),
    )]);
    assert_eq!(tcp(&r, "shop/web", "db/pg", 5432), Allow);
    assert_eq!(tcp(&r, "shop/web", "shop/api", 8080), DefaultDeny);
}
