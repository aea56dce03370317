//! Identities are deterministic and stable; incremental policy updates recompute only what
//! they can affect and always agree with a full rebuild (random add/replace/remove sequences
//! from a fixed seed).

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use ward_engine::{
    Cluster, Endpoint, EngineConfig, Flow, Identity, NamedPort, Node, Peer, PolicyRepository,
    Protocol,
};
use ward_schema::{Kind, Origin, Resource, ResourceKey, ResourceSet};

/// xorshift64*: a tiny deterministic PRNG for the random sequences.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const NAMESPACES: [&str; 3] = ["ns0", "ns1", "ns2"];
const APPS: [&str; 5] = ["a0", "a1", "a2", "a3", "a4"];
const TIERS: [&str; 2] = ["web", "db"];

fn random_cluster(rng: &mut Rng) -> Cluster {
    let mut c = Cluster::default();
    for (i, name) in ["n0", "n1"].iter().enumerate() {
        c.nodes.push(Node {
            name: (*name).into(),
            ips: vec![format!("10.0.0.{}", i + 1).parse().unwrap()],
            labels: BTreeMap::new(),
            agent: true,
        });
    }
    for i in 0..30 {
        let mut labels = BTreeMap::new();
        labels.insert("app".to_owned(), (*rng.pick(&APPS)).to_owned());
        labels.insert("tier".to_owned(), (*rng.pick(&TIERS)).to_owned());
        labels.insert("pod-template-hash".to_owned(), format!("h{i}"));
        let mut named_ports = BTreeMap::new();
        if rng.chance(50) {
            named_ports.insert(
                "http".to_owned(),
                NamedPort {
                    port: *rng.pick(&[80, 8080]),
                    protocol: Protocol::TCP,
                },
            );
        }
        c.endpoints.push(Endpoint {
            name: format!("pod{i}"),
            namespace: (*rng.pick(&NAMESPACES)).to_owned(),
            labels,
            ips: vec![format!("10.1.0.{}", i + 10).parse().unwrap()],
            named_ports,
            node: Some((*rng.pick(&["n0", "n1"])).to_owned()),
            service_account: None,
        });
    }
    c
}

fn random_selector(rng: &mut Rng) -> Value {
    match rng.below(6) {
        0 => json!({}),
        1 | 2 => json!({"matchLabels": {"app": rng.pick(&APPS)}}),
        3 => json!({"matchLabels": {"tier": rng.pick(&TIERS)}}),
        4 => {
            json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": [rng.pick(&APPS)]}]})
        }
        _ => {
            json!({"matchLabels": {"k8s:io.kubernetes.pod.namespace": rng.pick(&NAMESPACES), "tier": rng.pick(&TIERS)}})
        }
    }
}

fn random_ports(rng: &mut Rng) -> Option<Value> {
    match rng.below(7) {
        0 | 1 => None,
        2 => Some(
            json!({"toPorts": [{"ports": [{"port": rng.pick(&["80", "8080", "53"]), "protocol": rng.pick(&["TCP", "UDP", "ANY"])}]}]}),
        ),
        3 => Some(
            json!({"toPorts": [{"ports": [{"port": "8000", "endPort": 9000, "protocol": "TCP"}]}]}),
        ),
        4 => Some(json!({"toPorts": [{"ports": [{"port": "0", "protocol": "TCP"}]}]})),
        5 => Some(json!({"toPorts": [{"ports": [{"port": "http", "protocol": "TCP"}]}]})),
        _ => Some(json!({"icmps": [{"fields": [{"type": 8}]}]})),
    }
}

fn random_entry(rng: &mut Rng, ingress: bool) -> Value {
    let (eps, cidr, ents) = if ingress {
        ("fromEndpoints", "fromCIDR", "fromEntities")
    } else {
        ("toEndpoints", "toCIDR", "toEntities")
    };
    let mut entry = match rng.below(7) {
        0 => json!({}),
        1 => json!({ eps: [] }),
        2 | 3 => json!({ eps: [random_selector(rng)] }),
        4 => json!({ ents: [rng.pick(&["world", "cluster", "host", "all", "remote-node"])] }),
        5 => json!({ cidr: [rng.pick(&["203.0.113.0/24", "0.0.0.0/0", "10.1.0.0/16"])] }),
        _ => {
            json!({ eps: [{"matchLabels": {"io.kubernetes.pod.namespace": rng.pick(&NAMESPACES)}}] })
        }
    };
    if let (Some(ports), Some(obj)) = (random_ports(rng), entry.as_object_mut()) {
        obj.extend(ports.as_object().cloned().unwrap_or_default());
    }
    entry
}

fn random_policy(rng: &mut Rng, name: &str) -> Resource {
    let mut spec = serde_json::Map::new();
    spec.insert("endpointSelector".into(), random_selector(rng));
    for (list, ingress) in [
        ("ingress", true),
        ("ingressDeny", true),
        ("egress", false),
        ("egressDeny", false),
    ] {
        if rng.chance(40) {
            let n = rng.below(3);
            spec.insert(
                list.into(),
                Value::Array((0..n).map(|_| random_entry(rng, ingress)).collect()),
            );
        }
    }
    if rng.chance(20) {
        spec.insert(
            "enableDefaultDeny".into(),
            json!({"ingress": rng.chance(50), "egress": rng.chance(50)}),
        );
    }
    let (kind, ns) = if rng.chance(30) {
        (Kind::CiliumClusterwideNetworkPolicy, None)
    } else {
        (Kind::CiliumNetworkPolicy, Some(*rng.pick(&NAMESPACES)))
    };
    let key = ResourceKey::new(kind, ns, name);
    let object = json!({"apiVersion": "cilium.io/v2", "kind": kind.as_str(), "metadata": {"name": name, "namespace": ns}, "spec": spec});
    Resource {
        key,
        object,
        origin: Origin::default(),
    }
}

fn flows(repo: &PolicyRepository) -> Vec<Flow> {
    let mut peers: Vec<Peer> = repo
        .cluster()
        .endpoints
        .iter()
        .map(|e| Peer::Endpoint(repo.endpoint_id(&e.full_name()).unwrap()))
        .collect();
    for ip in ["203.0.113.10", "198.51.100.5", "10.0.0.1", "10.0.0.2"] {
        peers.push(Peer::Ip(ip.parse().unwrap()));
    }
    let l4 = [
        (Protocol::TCP, 80),
        (Protocol::TCP, 8080),
        (Protocol::UDP, 53),
        (Protocol::ICMP, 8),
        (Protocol::TCP, 8500),
    ];
    let mut out = Vec::new();
    for (i, src) in peers.iter().enumerate() {
        for (j, dst) in peers.iter().enumerate() {
            let (protocol, port) = l4[(i + j) % l4.len()];
            out.push(Flow {
                src: *src,
                dst: *dst,
                protocol,
                port,
            });
        }
    }
    out
}

/// Compares every flow; returns how many were allowed, denied and default-denied.
fn assert_same_verdicts(
    incremental: &PolicyRepository,
    rebuilt: &PolicyRepository,
    step: usize,
) -> [usize; 3] {
    let mut counts = [0; 3];
    for flow in flows(incremental) {
        let (a, b) = (incremental.verdict(&flow), rebuilt.verdict(&flow));
        assert_eq!(
            a, b,
            "step {step}: {flow:?}\nincremental: {a}\nrebuilt: {b}"
        );
        counts[a.verdict as usize] += 1;
    }
    counts
}

#[test]
fn incremental_updates_agree_with_a_full_rebuild() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let cluster = random_cluster(&mut rng);
    let mut repo = PolicyRepository::new(cluster.clone(), EngineConfig::default()).unwrap();
    let identities_before = identities_by_endpoint(&repo);
    let mut live: BTreeMap<String, Resource> = BTreeMap::new();
    let mut total_recomputed = 0;
    let mut seen = [0usize; 3];
    for step in 0..150 {
        let name = format!("p{}", rng.below(12));
        if live.contains_key(&name) && rng.chance(35) {
            let key = live.remove(&name).unwrap().key;
            total_recomputed += repo.remove(&key).recomputed;
        } else {
            // Replacing may change the kind or namespace: remove the old key first.
            if let Some(old) = live.remove(&name) {
                total_recomputed += repo.remove(&old.key).recomputed;
            }
            let res = random_policy(&mut rng, &name);
            total_recomputed += repo.upsert(&res).recomputed;
            live.insert(name, res);
        }
        let mut set = ResourceSet::new();
        for r in live.values() {
            set.insert(r.clone());
        }
        let rebuilt = PolicyRepository::from_resources(cluster.clone(), &set).unwrap();
        let counts = assert_same_verdicts(&repo, &rebuilt, step);
        seen.iter_mut().zip(counts).for_each(|(a, b)| *a += b);
    }
    assert_eq!(
        identities_by_endpoint(&repo),
        identities_before,
        "policy changes never renumber identities"
    );
    // The sequence must exercise every outcome, or agreeing would prove little.
    assert!(
        seen.iter().all(|n| *n > 1000),
        "allow/deny/default-deny counts: {seen:?}"
    );
    // Incrementality: far fewer recomputations than re-resolving every subject every time.
    let subjects = repo
        .identities()
        .filter(|(id, _)| !id.is_reserved())
        .count()
        + cluster.nodes.len()
        + 1;
    assert!(
        total_recomputed < 150 * subjects,
        "{total_recomputed} recomputations for {subjects} subjects"
    );
}

fn connectivity_policy(name: &str, selector: Value) -> Resource {
    let key = ResourceKey::new(Kind::CiliumNetworkPolicy, Some("cilium-test"), name);
    let object = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": name, "namespace": "cilium-test"},
        "spec": {"endpointSelector": selector, "ingress": [{}]}});
    Resource {
        key,
        object,
        origin: Origin::default(),
    }
}

#[test]
fn an_update_recomputes_only_the_subjects_it_selects() {
    let mut repo = PolicyRepository::new(common::cluster(), EngineConfig::default()).unwrap();
    let echo = connectivity_policy("p", json!({"matchLabels": {"name": "echo"}}));
    assert_eq!(repo.upsert(&echo).recomputed, 1);
    // Re-selecting the two clients: echo (before) and both clients (after).
    let clients = connectivity_policy("p", json!({"matchLabels": {"kind": "client"}}));
    assert_eq!(repo.upsert(&clients).recomputed, 3);
    assert_eq!(repo.remove(&clients.key).recomputed, 2);
    assert_eq!(repo.remove(&clients.key).recomputed, 0);
    let none = connectivity_policy("q", json!({"matchLabels": {"name": "nobody"}}));
    assert_eq!(repo.upsert(&none).recomputed, 0);
}

fn identities_by_endpoint(repo: &PolicyRepository) -> BTreeMap<String, Identity> {
    repo.cluster()
        .endpoints
        .iter()
        .map(|e| {
            (
                e.full_name(),
                repo.identity(repo.endpoint_id(&e.full_name()).unwrap())
                    .unwrap(),
            )
        })
        .collect()
}

#[test]
fn identities_are_deterministic_and_ignore_declaration_order() {
    let cluster = common::cluster();
    let mut reversed = cluster.clone();
    reversed.endpoints.reverse();
    reversed.nodes.reverse();
    let a = PolicyRepository::new(cluster, EngineConfig::default()).unwrap();
    let b = PolicyRepository::new(reversed, EngineConfig::default()).unwrap();
    let ids = identities_by_endpoint(&a);
    assert_eq!(ids, identities_by_endpoint(&b));
    let mut numbers: Vec<u32> = ids.values().map(|i| i.0).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [256, 257, 258, 259]);
}

#[test]
fn replicas_share_an_identity_and_noisy_labels_do_not_split_it() {
    let mut cluster = common::cluster();
    let mut replica = cluster.endpoints[0].clone();
    replica.name = "client-2".into();
    replica.ips = vec!["10.1.0.99".parse().unwrap()];
    replica
        .labels
        .insert("pod-template-hash".into(), "abcde".into());
    replica
        .labels
        .insert("io.kubernetes.pod.name".into(), "client-2".into());
    cluster.endpoints.push(replica);
    let repo = PolicyRepository::new(cluster, EngineConfig::default()).unwrap();
    let ids = identities_by_endpoint(&repo);
    assert_eq!(ids["cilium-test/client"], ids["cilium-test/client-2"]);
    assert_eq!(repo.allocated().count(), 4);
}

#[test]
fn identities_are_stable_when_endpoints_come_and_go() {
    let mut repo = PolicyRepository::new(common::cluster(), EngineConfig::default()).unwrap();
    let before = identities_by_endpoint(&repo);
    // A label set that sorts before every other one still gets the next number.
    let mut first = repo.cluster().endpoints[0].clone();
    first.name = "aaa".into();
    first.ips = vec!["10.1.0.98".parse().unwrap()];
    first.labels = [("a".to_owned(), "a".to_owned())].into();
    repo.upsert_endpoint(first.clone()).unwrap();
    let after = identities_by_endpoint(&repo);
    for (name, id) in &before {
        assert_eq!(after[name], *id, "{name} changed identity");
    }
    assert_eq!(after["cilium-test/aaa"], Identity(260));
    repo.remove_endpoint("cilium-test/aaa").unwrap();
    repo.remove_endpoint("cilium-test/client").unwrap();
    let removed = identities_by_endpoint(&repo);
    assert_eq!(removed["cilium-test/echo"], before["cilium-test/echo"]);
    repo.upsert_endpoint(first).unwrap();
    assert_eq!(
        identities_by_endpoint(&repo)["cilium-test/aaa"],
        Identity(260),
        "a label set keeps its number"
    );
    // A bad endpoint is refused and changes nothing.
    let mut bad = repo.cluster().endpoints[0].clone();
    bad.name = "bad".into();
    assert!(
        repo.upsert_endpoint(bad).is_err(),
        "duplicate address must be refused"
    );
    assert!(repo.endpoint_id("cilium-test/bad").is_none());
}
