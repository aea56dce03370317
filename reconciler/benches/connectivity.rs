//! Connectivity diff benchmark (issue 3: "between two revisions with 1,000 endpoints: under
//! 1 s; work on identities, not endpoint pairs"). Std-only, `harness = false`.
//!
//! Run: `cargo bench -p ward-reconciler --bench connectivity`.
//!
//! The workload: 1,000 endpoints in one PolicyTest: 50 namespaces × 4 apps × 5 replicas,
//! every app declaring a named port; 8 expectations mention 6 ports. Policies: per namespace
//! one ingress CNP per app (from the previous app, on its named port, and from `world` on 443
//! for the first) and one egress CNP for all apps (to the namespace and kube-dns), plus a
//! cluster-wide deny of `world` egress: 251 policies. Every scenario is the whole
//! `connectivity::diff` (both revisions resolved, then compared):
//!
//! - `widen one CNP`: one ingress CNP gains a peer (200 workloads of 5 replicas);
//! - `widen one CNP, 1,000 identities`: the same with a distinct label per replica, so every
//!   endpoint is its own identity (no grouping possible);
//! - `change the CCNP selecting every pod`: every workload is affected (worst case for the
//!   "only what can change" rule);
//! - `no policy changed`: what a reformatting commit costs;
//! - `widen one CNP, with the dot graph`: plus every allowed flow of the head.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    missing_docs,
    reason = "benchmark"
)]

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use ward_reconciler::testing::connectivity::{Options, diff};
use ward_schema::{Kind, Origin, Resource, ResourceKey, ResourceSet};

const NAMESPACES: usize = 50;
const APPS: usize = 4;
const REPLICAS: usize = 5;

fn resource(kind: Kind, ns: Option<&str>, name: &str, object: Value) -> Resource {
    Resource {
        key: ResourceKey::new(kind, ns, name),
        object,
        origin: Origin {
            file: format!("{name}.yaml"),
            line: 1,
            document: 0,
            item_lines: Vec::new(),
        },
    }
}

fn test_doc(distinct: bool) -> Resource {
    let mut endpoints = Vec::new();
    for ns in 0..NAMESPACES {
        for app in 0..APPS {
            for r in 0..REPLICAS {
                let mut labels = json!({"app": format!("app-{app}"), "tier": if app == 0 { "web" } else { "api" }});
                if distinct {
                    labels["instance"] = json!(format!("i{r}"));
                }
                endpoints.push(json!({
                    "name": format!("ns{ns}-app{app}-{r}"), "namespace": format!("ns-{ns}"), "labels": labels,
                    "ip": format!("10.{}.{}.{}", ns / 200, ns % 200 + 1, app * 10 + r + 1),
                    "ports": [{"name": "http", "port": 8080 + app, "protocol": "TCP"}]
                }));
            }
        }
    }
    endpoints.push(json!({"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}, "ip": "10.255.0.10"}));
    let expectations = json!([
        {"from": "ns0-app0-0", "to": "ns0-app1-0", "port": "http", "expect": "allow"},
        {"from": "ns0-app1-0", "to": "ns0-app2-0", "port": 8082, "expect": "allow"},
        {"from": "ns0-app0-0", "to": "kube-dns", "port": 53, "protocol": "UDP", "expect": "allow"},
        {"from": "ns0-app0-0", "to": "kube-dns", "port": 53, "protocol": "TCP", "expect": "allow"},
        {"from": "world", "to": "ns0-app0-0", "port": 443, "expect": "allow"},
        {"from": "ns0-app0-0", "to": "world", "port": 443, "expect": "deny"},
        {"from": "ns1-app0-0", "to": "ns0-app1-0", "port": 80, "expect": "deny"},
        {"from": "ns0-app3-0", "to": "ns0-app0-0", "port": 9090, "expect": "deny"}
    ]);
    let object = json!({"apiVersion": "ward.dev/v1alpha1", "kind": "PolicyTest", "metadata": {"name": "bench"}, "spec": {"endpoints": endpoints, "expectations": expectations}});
    resource(Kind::PolicyTest, None, "bench", object)
}

fn cnp(ns: &str, name: &str, spec: Value) -> Resource {
    let object = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": name, "namespace": ns}, "spec": spec});
    resource(Kind::CiliumNetworkPolicy, Some(ns), name, object)
}

fn ccnp(name: &str, spec: Value) -> Resource {
    let object = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": name}, "spec": spec});
    resource(Kind::CiliumClusterwideNetworkPolicy, None, name, object)
}

fn ingress(app: usize, peers: Value) -> Value {
    let mut rules = vec![
        json!({"fromEndpoints": peers, "toPorts": [{"ports": [{"port": "http", "protocol": "TCP"}]}]}),
    ];
    if app == 0 {
        rules.push(json!({"fromEntities": ["world"], "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}));
    }
    json!({"endpointSelector": {"matchLabels": {"app": format!("app-{app}")}}, "ingress": rules})
}

fn revision(distinct: bool, widen: bool, ccnp_ports: &[&str]) -> ResourceSet {
    let mut set = ResourceSet::new();
    set.insert(test_doc(distinct));
    for n in 0..NAMESPACES {
        let ns = format!("ns-{n}");
        for app in 0..APPS {
            let mut peers =
                vec![json!({"matchLabels": {"app": format!("app-{}", (app + APPS - 1) % APPS)}})];
            if widen && n == 7 && app == 2 {
                peers.push(json!({"matchLabels": {"app": "app-3"}}));
            }
            set.insert(cnp(
                &ns,
                &format!("app-{app}-in"),
                ingress(app, json!(peers)),
            ));
        }
        let egress = json!({
            "endpointSelector": {},
            "egress": [
                {"toEndpoints": [{}]},
                {"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s-app": "kube-dns"}}],
                 "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}]}]}
            ]
        });
        set.insert(cnp(&ns, "egress", egress));
    }
    let ports: Vec<Value> = ccnp_ports
        .iter()
        .map(|p| json!({"port": p, "protocol": "TCP"}))
        .collect();
    let mut deny = json!({"toEntities": ["world"]});
    if !ports.is_empty() {
        deny["toPorts"] = json!([{"ports": ports}]);
    }
    set.insert(ccnp(
        "deny-world",
        json!({
            "endpointSelector": {"matchExpressions": [{"key": "k8s:io.kubernetes.pod.namespace", "operator": "Exists"}]},
            "enableDefaultDeny": {"egress": false, "ingress": false},
            "egressDeny": [deny]
        }),
    ));
    set
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn run(name: &str, base: &ResourceSet, head: &ResourceSet, opts: Options, runs: usize) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        let c = diff(base, head, opts);
        times.push(start.elapsed());
        last = Some(c);
    }
    let c = last.unwrap();
    assert!(c.skipped.is_none(), "{:?}", c.skipped);
    let flows = |v: &[ward_reconciler::testing::connectivity::FlowChange]| {
        v.iter().map(|f| f.ports.len()).sum::<usize>()
    };
    println!(
        "{name}: median {:.1?} over {runs} runs (slowest {:.1?}); {} endpoints, {} workloads, {} verdicts, {} newly allowed, {} newly denied{}",
        median(times.clone()),
        times.iter().max().unwrap(),
        c.endpoints,
        c.workloads,
        c.verdicts,
        flows(&c.newly_allowed),
        flows(&c.newly_denied),
        c.graph
            .as_ref()
            .map(|g| format!(", {} allowed groups in the graph", g.allowed.len()))
            .unwrap_or_default()
    );
}

fn main() {
    let target = Duration::from_secs(1);
    println!(
        "connectivity diff, 1,000 endpoints (+ kube-dns), target < {target:?} (threads: {})",
        rayon::current_num_threads()
    );
    let (base, head) = (revision(false, false, &[]), revision(false, true, &[]));
    run("widen one CNP", &base, &head, Options::default(), 11);
    let (base_d, head_d) = (revision(true, false, &[]), revision(true, true, &[]));
    run(
        "widen one CNP, 1,000 identities",
        &base_d,
        &head_d,
        Options::default(),
        11,
    );
    let narrowed = revision(false, false, &["443", "8080"]);
    run(
        "change the CCNP selecting every pod",
        &base,
        &narrowed,
        Options::default(),
        5,
    );
    let narrowed_d = revision(true, false, &["443", "8080"]);
    run(
        "change the CCNP selecting every pod, 1,000 identities",
        &base_d,
        &narrowed_d,
        Options::default(),
        3,
    );
    run(
        "no policy changed (a reformatting commit)",
        &base,
        &base.clone(),
        Options::default(),
        11,
    );
    run(
        "widen one CNP, with the dot graph",
        &base,
        &head,
        Options { graph: true },
        5,
    );
}
