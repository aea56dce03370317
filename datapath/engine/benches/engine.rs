//! Policy engine benchmarks (issue 3's performance targets), std-only:
//!
//! - resolve policy for 10,000 endpoints against 5,000 rules (target < 2 s, < 500 MiB);
//! - replace one policy that selects 1% of the endpoints (target < 50 ms);
//! - `verdict(flow)` on the resolved policy (target < 1 µs median).
//!
//! Run: `cargo bench -p ward-engine --bench engine`. The workload: 100 namespaces of 20
//! apps × 5 replicas (2,000 identities), 50 nodes, 4,900 namespaced policies (49 per
//! namespace: a fifth of them Kubernetes NetworkPolicies with pod, namespace and combined
//! selectors, ipBlocks and port ranges; a tenth CNPs whose peers are CIDR groups, by name and
//! by label; the rest CNPs mixing ingress/egress allows, denies, CIDR sets, entities, DNS to
//! kube-system, namespace-wide allows), 100 CCNPs (monitoring, cluster-wide denies, `cluster`
//! entity allows) and 50 CiliumCIDRGroups of 4 prefixes each.

#![allow(clippy::unwrap_used, clippy::print_stdout, reason = "benchmark")]

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use ward_engine::{Cluster, Endpoint, Flow, NamedPort, Node, Peer, PolicyRepository, Protocol};
use ward_schema::{Kind, Origin, Resource, ResourceKey, ResourceSet};

const NAMESPACES: usize = 100;
const APPS: usize = 20;
const REPLICAS: usize = 5;
const NODES: usize = 50;
const TIERS: [&str; 4] = ["web", "api", "db", "cache"];

fn cluster() -> Cluster {
    let mut c = Cluster::default();
    for n in 0..NODES {
        c.nodes.push(Node {
            name: format!("node-{n}"),
            ips: vec![format!("10.0.{}.{}", n / 200, n % 200 + 1).parse().unwrap()],
            labels: BTreeMap::new(),
            agent: true,
        });
    }
    c.namespaces.insert("kube-system".into(), BTreeMap::new());
    let mut i = 0usize;
    for ns in 0..NAMESPACES {
        c.namespaces.insert(
            format!("ns-{ns}"),
            [("team".to_owned(), format!("t{}", ns % 10))].into(),
        );
        for app in 0..APPS {
            for r in 0..REPLICAS {
                let labels: BTreeMap<String, String> = [
                    ("app", format!("app-{app}")),
                    ("tier", TIERS[app % 4].to_owned()),
                    ("pod-template-hash", format!("h{app}x{r}")),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
                let named_ports = [(
                    "http".to_owned(),
                    NamedPort {
                        port: 8080,
                        protocol: Protocol::TCP,
                    },
                )]
                .into();
                c.endpoints.push(Endpoint {
                    name: format!("app-{app}-{r}"),
                    namespace: format!("ns-{ns}"),
                    labels,
                    ips: vec![
                        format!("10.{}.{}.{}", 100 + i / 65536, (i / 256) % 256, i % 256)
                            .parse()
                            .unwrap(),
                    ],
                    named_ports,
                    node: Some(format!("node-{}", i % NODES)),
                    service_account: None,
                });
                i += 1;
            }
        }
    }
    c
}

fn resource(kind: Kind, ns: Option<&str>, name: &str, spec: Value) -> Resource {
    let key = ResourceKey::new(kind, ns, name);
    let object = json!({"apiVersion": "cilium.io/v2", "kind": kind.as_str(), "metadata": {"name": name, "namespace": ns}, "spec": spec});
    Resource {
        key,
        object,
        origin: Origin::default(),
    }
}

fn port(p: &str, proto: &str) -> Value {
    json!([{"ports": [{"port": p, "protocol": proto}]}])
}

/// One of the 49 per-namespace policies.
fn cnp_spec(j: usize, salt: usize) -> Value {
    let app = |k: usize| json!({"matchLabels": {"app": format!("app-{}", k % APPS)}});
    match j % 7 {
        0 => json!({"endpointSelector": app(j), "ingress": [
            {"fromEndpoints": [app(j + 1)], "toPorts": port("8080", "TCP")},
            {"fromEndpoints": [{"matchLabels": {"tier": "web"}}], "toPorts": port("443", "TCP")}]}),
        1 => json!({"endpointSelector": app(j), "egress": [
            {"toEndpoints": [app(j + 2)], "toPorts": port("5432", "TCP")},
            {"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s-app": "kube-dns"}}], "toPorts": port("53", "ANY")}]}),
        2 => {
            json!({"endpointSelector": app(j), "ingressDeny": [{"fromEntities": ["world"], "toPorts": port("22", "TCP")}],
            "ingress": [{"fromEndpoints": [{}], "toPorts": port("http", "TCP")}]})
        }
        3 => json!({"endpointSelector": app(j), "egress": [
            {"toCIDRSet": [{"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", format!("192.0.2.{}/32", salt % 256)]}], "toPorts": port("443", "TCP")}]}),
        4 => json!({"endpointSelector": {"matchLabels": {"tier": TIERS[j % 4]}}, "ingress": [
            {"fromEndpoints": [{"matchLabels": {"io.cilium.k8s.namespace.labels.team": format!("t{}", salt % 10)}}], "toPorts": [{"ports": [{"port": "9000", "endPort": 9100, "protocol": "TCP"}]}]}]}),
        5 => {
            json!({"endpointSelector": app(j), "egressDeny": [{"toEndpoints": [app(j + 3)], "toPorts": port("6379", "TCP")}],
            "enableDefaultDeny": {"egress": false}})
        }
        _ => {
            json!({"endpointSelector": app(j), "ingress": [{"fromEntities": ["host", "remote-node"]}, {"icmps": [{"fields": [{"type": 8}]}]}]})
        }
    }
}

/// A Kubernetes NetworkPolicy (every fifth namespaced policy).
fn knp_spec(j: usize, salt: usize) -> Value {
    let app = |k: usize| json!({"matchLabels": {"app": format!("app-{}", k % APPS)}});
    match j % 3 {
        0 => json!({"podSelector": app(j), "ingress": [{"from": [
            {"podSelector": app(j + 1)},
            {"namespaceSelector": {"matchLabels": {"team": format!("t{}", salt % 10)}}}],
            "ports": [{"port": 8080}]}]}),
        1 => json!({"podSelector": app(j), "policyTypes": ["Egress"], "egress": [
            {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": 443}]},
            {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                     "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
             "ports": [{"port": 53, "protocol": "UDP"}]}]}),
        _ => json!({"podSelector": {"matchLabels": {"tier": TIERS[j % 4]}}, "ingress": [{"from": [
            {"namespaceSelector": {}, "podSelector": {"matchLabels": {"tier": "web"}}}],
            "ports": [{"port": 9000, "endPort": 9100}]}]}),
    }
}

/// A CNP whose peers are CIDR groups (every tenth namespaced policy).
fn group_spec(j: usize, salt: usize) -> Value {
    json!({"endpointSelector": {"matchLabels": {"app": format!("app-{}", j % APPS)}},
        "ingress": [{"fromCIDRSet": [{"cidrGroupRef": format!("g{}", salt % GROUPS)}], "toPorts": port("443", "TCP")}],
        "egress": [{"toCIDRSet": [{"cidrGroupSelector": {"matchLabels": {"site": format!("s{}", salt % 5)}},
            "except": [format!("198.51.{}.7/32", salt % 256)]}], "toPorts": port("443", "TCP")}]})
}

/// How many CiliumCIDRGroups.
const GROUPS: usize = 50;

fn cidr_group(k: usize) -> Resource {
    let name = format!("g{k}");
    let cidrs: Vec<String> = (0..4)
        .map(|i| format!("198.51.{}.0/24", (k * 4 + i) % 256))
        .collect();
    Resource {
        key: ResourceKey::new(Kind::CiliumCIDRGroup, None, &name),
        object: json!({"apiVersion": "cilium.io/v2", "kind": "CiliumCIDRGroup",
            "metadata": {"name": name, "labels": {"site": format!("s{}", k % 5)}},
            "spec": {"externalCIDRs": cidrs}}),
        origin: Origin::default(),
    }
}

fn ccnp_spec(k: usize) -> Value {
    match k % 4 {
        0 => {
            json!({"endpointSelector": {"matchLabels": {"tier": "db", "app": format!("app-{}", k % APPS)}}, "enableDefaultDeny": {"egress": false},
            "egressDeny": [{"toEntities": ["world"]}]})
        }
        1 => {
            json!({"endpointSelector": {"matchLabels": {"io.cilium.k8s.namespace.labels.team": format!("t{}", k % 10), "app": format!("app-{}", k % APPS)}},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": format!("ns-{}", k % NAMESPACES)}}], "toPorts": port("9090", "TCP")}]})
        }
        2 => {
            json!({"endpointSelector": {"matchLabels": {"tier": "api", "app": format!("app-{}", k % APPS)}},
            "ingress": [{"fromEntities": ["cluster"], "toPorts": port("8443", "TCP")}]})
        }
        _ => {
            json!({"endpointSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": [format!("app-{}", k % APPS)]}]},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"tier": "web"}}], "toPorts": port("8080", "TCP")}]})
        }
    }
}

fn policies() -> ResourceSet {
    let mut set = ResourceSet::new();
    for ns in 0..NAMESPACES {
        let nsn = format!("ns-{ns}");
        for j in 0..49 {
            let (kind, spec) = match (j % 5, j % 10) {
                (4, _) => (Kind::NetworkPolicy, knp_spec(j, ns)),
                (_, 3) => (Kind::CiliumNetworkPolicy, group_spec(j, ns)),
                _ => (Kind::CiliumNetworkPolicy, cnp_spec(j, ns)),
            };
            set.insert(resource(kind, Some(&nsn), &format!("p{j}"), spec));
        }
    }
    for k in 0..100 {
        set.insert(resource(
            Kind::CiliumClusterwideNetworkPolicy,
            None,
            &format!("cc{k}"),
            ccnp_spec(k),
        ));
    }
    for k in 0..GROUPS {
        set.insert(cidr_group(k));
    }
    set
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Xorshift(u64);

impl Xorshift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs the binary without it.
    let quick = !std::env::args().any(|a| a == "--bench");
    let cluster = cluster();
    let set = policies();
    let rules: usize = set.iter().filter(|r| r.key.kind.is_policy()).count();
    let count = |kind: Kind| set.iter().filter(|r| r.key.kind == kind).count();
    println!(
        "workload: {} endpoints, {} nodes, {rules} policies (1 rule each; {} NetworkPolicies), {} CIDR groups",
        cluster.endpoints.len(),
        cluster.nodes.len(),
        count(Kind::NetworkPolicy),
        count(Kind::CiliumCIDRGroup)
    );
    println!(
        "peak RSS after generating the input: {:.0} MiB",
        peak_rss_mib()
    );

    let start = Instant::now();
    let mut repo = PolicyRepository::from_resources(cluster, &set).unwrap();
    let resolve = start.elapsed();
    let keys: usize = repo
        .cluster()
        .endpoints
        .iter()
        .take(100)
        .map(|e| {
            let p = repo
                .endpoint_policy(repo.endpoint_id(&e.full_name()).unwrap())
                .unwrap();
            p.identity_keys(ward_engine::Direction::Ingress)
        })
        .sum();
    println!(
        "resolve 10,000 endpoints x 5,000 rules: {resolve:.2?} (target < 2 s); peak RSS {:.0} MiB (target < 500 MiB)",
        peak_rss_mib()
    );
    println!(
        "  identities: {}, mean ingress identity keys per endpoint (first 100): {}",
        repo.allocated().count(),
        keys / 100
    );

    // One policy change selecting 1% of the endpoints: ns-42's namespace-wide policy.
    let mut times = Vec::new();
    for round in 0..if quick { 2 } else { 20 } {
        let spec = json!({"endpointSelector": {}, "ingress": [{"fromEndpoints": [{}], "toPorts": port(&(8000 + round).to_string(), "TCP")}]});
        let change = resource(
            Kind::CiliumNetworkPolicy,
            Some("ns-42"),
            "namespace-wide",
            spec,
        );
        let start = Instant::now();
        let update = repo.upsert(&change);
        times.push(start.elapsed());
        assert_eq!(
            update.recomputed, APPS,
            "the change selects one namespace: {APPS} identities, 100 endpoints"
        );
    }
    println!(
        "policy change touching 1% of endpoints (100 endpoints, {APPS} identities): median {:.2?} (target < 50 ms)",
        median(times)
    );

    // verdict(flow): random endpoint pairs and ports, timed in batches of 1,000.
    let mut rng = Xorshift(0x2545_f491_4f6c_dd1d);
    let n = repo.cluster().endpoints.len();
    let ids: Vec<_> = repo
        .cluster()
        .endpoints
        .iter()
        .map(|e| repo.endpoint_id(&e.full_name()).unwrap())
        .collect();
    let ports = [80, 443, 8080, 5432, 9050, 53, 22];
    let flows: Vec<Flow> = (0..100_000)
        .map(|i| {
            let dst = if i % 10 == 0 {
                Peer::Ip("203.0.113.10".parse().unwrap())
            } else {
                Peer::Endpoint(ids[rng.below(n)])
            };
            Flow {
                src: Peer::Endpoint(ids[rng.below(n)]),
                dst,
                protocol: Protocol::TCP,
                port: ports[rng.below(ports.len())],
            }
        })
        .collect();
    let mut batches = Vec::new();
    let mut allowed = 0;
    for chunk in flows.chunks(1000) {
        let start = Instant::now();
        for f in chunk {
            allowed += usize::from(
                std::hint::black_box(repo.verdict(std::hint::black_box(f))).verdict
                    == ward_engine::Verdict::Allow,
            );
        }
        batches.push(start.elapsed() / 1000);
    }
    let med = median(batches.clone());
    let worst = batches.iter().max().copied().unwrap_or_default();
    println!(
        "verdict(flow), random flows over all 10,000 endpoints (cache-cold): median {med:.0?} per flow over 100 batches of 1,000 (slowest batch {worst:.0?}; target < 1 µs); {allowed} of 100,000 allowed"
    );
    // The same 1,000 flows again and again: the policy of their endpoints stays in cache.
    let hot = &flows[..1000];
    let mut batches = Vec::new();
    for _ in 0..100 {
        let start = Instant::now();
        for f in hot {
            std::hint::black_box(repo.verdict(std::hint::black_box(f)));
        }
        batches.push(start.elapsed() / 1000);
    }
    println!(
        "verdict(flow), 1,000 flows repeated (cache-warm): median {:.0?} per flow",
        median(batches)
    );
    println!("peak RSS at the end: {:.0} MiB", peak_rss_mib());
}
