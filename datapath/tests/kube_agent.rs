//! `ward-agent run --kube` against a real kube-apiserver + etcd (the harness of
//! `reconciler/tests/testcluster`) and the lab of `cluster-config/lab.yaml`: the lab's nodes
//! and pods are mirrored into the API server as Node and Pod objects (there is no kubelet, so
//! the test writes their status as a kubelet would), the repository's policies are applied
//! with kubectl (a Kubernetes NetworkPolicy and a CiliumCIDRGroup among them), and the CiliumConfig sits in the ConfigMap where `ward apply --kubeconfig`
//! puts it. The agents run with the token of the ServiceAccount of `reconciler/deploy/agent.yaml`
//! (so its RBAC is shown to be enough, and checked to be no more). Real packets between the
//! lab's pods then show what the agents enforce, Services (a selector, and EndpointSlices
//! for one without) included.
//!
//! Needs root, bpffs and the test-cluster binaries (`ci/kube/build.sh`); without them it
//! prints `SKIPPED: <test>: <reason>`, and fails in must-run mode (`ward_testkit::must_run`).

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod common;
#[path = "../../reconciler/tests/testcluster/mod.rs"]
mod testcluster;

use common::lab::{AgentLab, privileged, tcp_connect, tcp_server, wait_for};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use testcluster::TestCluster;
use ward_datapath::lab::Topology;

const LAB: &str = include_str!("../../cluster-config/lab.yaml");
const CONFIG: &str = include_str!("../../cluster-config/cilium-config.yaml");
const OPEN: Duration = Duration::from_secs(2);
const SHUT: Duration = Duration::from_millis(400);
/// How long a change in the API server may take to reach the kernel in this test (generous:
/// the machine runs other tests at the same time; the figures are printed).
const PROPAGATION: Duration = Duration::from_secs(10);

/// The lab's namespaces, nodes and pods as Kubernetes objects, each pod and node with the
/// status a kubelet would report.
fn mirror(cluster: &TestCluster, lab: &AgentLab, t: &Topology) {
    let mut namespaces: Vec<&str> = t.pods.iter().map(|p| p.namespace.as_str()).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    let mut docs = Vec::new();
    for ns in &namespaces {
        let labels = t.namespaces.get(*ns).cloned().unwrap_or_default();
        docs.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}));
        // No controller-manager here to create it; pod admission wants it.
        docs.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}}));
    }
    for n in &t.nodes {
        docs.push(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n.name, "labels": n.labels}, "spec": {"podCIDR": n.pod_cidr.to_string()}}));
    }
    for p in &t.pods {
        let ports: Vec<Value> =
            p.ports.iter().map(|pp| json!({"name": pp.name, "containerPort": pp.port, "protocol": pp.protocol.to_string()})).collect();
        docs.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": p.name, "namespace": p.namespace, "labels": p.labels},
            "spec": {"nodeName": p.node, "automountServiceAccountToken": false, "containers": [{"name": "main", "image": "registry.invalid/none", "ports": ports}]}
        }));
    }
    let file = lab.path("mirror.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "List", "items": docs})).unwrap(),
    )
    .unwrap();
    cluster.kubectl_ok(&["apply", "--server-side", "-f", file.to_str().unwrap()]);
    for n in &t.nodes {
        let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": n.ip.to_string()}, {"type": "Hostname", "address": n.name}]}});
        cluster.kubectl_ok(&[
            "patch",
            "node",
            &n.name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ]);
    }
    for p in &t.pods {
        let status = json!({"status": {"phase": "Running", "podIP": p.ip.to_string(), "podIPs": [{"ip": p.ip.to_string()}]}});
        cluster.kubectl_ok(&[
            "patch",
            "pod",
            "-n",
            &p.namespace,
            &p.name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ]);
    }
}

/// The CiliumConfig in its ConfigMap, as the kube target stores it.
fn put_config(cluster: &TestCluster, lab: &AgentLab, text: &str) {
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cilium-config", "namespace": "kube-system", "labels": {"app.kubernetes.io/managed-by": "ward"}},
        "data": {"cilium-config.yaml": text}
    });
    let file = lab.path("config.json");
    std::fs::write(&file, serde_json::to_vec(&cm).unwrap()).unwrap();
    cluster.kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        file.to_str().unwrap(),
    ]);
}

/// Applies `reconciler/deploy/{namespace,agent}.yaml` (RBAC and the DaemonSet) and returns a
/// kubeconfig holding nothing but the agent ServiceAccount's token: the agents of this test
/// run with exactly the rights the DaemonSet gets.
fn agent_kubeconfig(cluster: &TestCluster, lab: &AgentLab) -> std::path::PathBuf {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reconciler/deploy");
    let applied = cluster.kubectl_ok(&[
        "apply",
        "--server-side",
        "-f",
        deploy.join("namespace.yaml").to_str().unwrap(),
        "-f",
        deploy.join("agent.yaml").to_str().unwrap(),
    ]);
    assert!(
        applied.contains("daemonset.apps/ward-agent serverside-applied"),
        "{applied}"
    );
    let kc = cluster.service_account_kubeconfig(
        "ward-system",
        "ward-agent",
        &lab.path("agent-kubeconfig"),
    );
    // And no more than it needs.
    let denied = [
        ("delete", "pods", "shop"),
        ("get", "secrets", "kube-system"),
        ("patch", "ciliumnetworkpolicies", "shop"),
        ("patch", "configmaps", "kube-system"),
        ("delete", "nodes", ""),
    ];
    cluster.assert_cannot("ward-system", "ward-agent", &denied);
    kc
}

fn conn(lab: &AgentLab, from: &str, to: &str, port: u16, timeout: Duration) -> bool {
    tcp_connect(&lab.netns(from), lab.ip(to), port, timeout).is_some()
}

/// Waits until `from` -> `to`:`port` connects (`open`) or not, and says how long it took.
fn wait_conn(lab: &AgentLab, what: &str, from: &str, to: &str, port: u16, open: bool) -> Duration {
    let start = Instant::now();
    wait_for(what, PROPAGATION, || {
        conn(
            lab,
            from,
            to,
            port,
            if open {
                Duration::from_millis(300)
            } else {
                SHUT
            },
        ) == open
    });
    let took = start.elapsed();
    eprintln!("{what}: {took:?}");
    took
}

fn node_annotation(cluster: &TestCluster, node: &str, key: &str) -> Option<String> {
    let node: Value =
        serde_json::from_str(&cluster.kubectl_ok(&["get", "node", node, "-o", "json"])).unwrap();
    node["metadata"]["annotations"][key]
        .as_str()
        .map(str::to_owned)
}

fn wg(lab: &AgentLab, node: &str, pointer: &str) -> Value {
    lab.wg_status(node)
        .pointer(pointer)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn kube_mode_enforces_the_api_servers_policies_and_publishes_keys_on_nodes() {
    if !privileged("kube_agent") {
        return;
    }
    let Some(cluster) = TestCluster::start() else {
        return;
    };
    let mut lab = AgentLab::up("kube", LAB);
    let topology = lab.lab.topology().clone();
    mirror(&cluster, &lab, &topology);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["policies/clusterwide", "policies/namespaces"] {
        cluster.kubectl_ok(&[
            "apply",
            "--server-side",
            "-R",
            "-f",
            root.join(dir).to_str().unwrap(),
        ]);
    }
    put_config(&cluster, &lab, CONFIG);
    let (frontend, backend, admin, intruder) = (
        "shop/frontend",
        "shop/backend",
        "shop/admin",
        "other/intruder",
    );
    for port in [80, 81] {
        tcp_server(&lab.netns(backend), lab.ip(backend), port);
    }
    let kubeconfig = agent_kubeconfig(&cluster, &lab);
    for n in lab.nodes() {
        lab.start_kube_agent(&n, &kubeconfig);
    }

    // Every node publishes its key on its Node, and peers with the other's published key.
    let nodes = lab.nodes();
    wait_for(
        "keys on both Nodes and a tunnel each way",
        PROPAGATION,
        || {
            nodes.iter().all(|n| {
                let key = node_annotation(&cluster, n, "network.cilium.io/wg-pub-key");
                let peer = nodes.iter().find(|o| *o != n).unwrap();
                key.is_some()
                    && key.as_deref() == wg(&lab, n, "/interface/publicKey").as_str()
                    && wg(&lab, peer, "/peers/0/publicKey").as_str() == key.as_deref()
            })
        },
    );
    let record: Value =
        serde_json::from_str(&node_annotation(&cluster, &nodes[0], "ward.dev/wireguard").unwrap())
            .unwrap();
    assert_eq!(record["node"], json!(nodes[0]));
    assert_eq!(
        record["endpoint"],
        json!(format!("{}:51871", topology.nodes[0].ip))
    );
    for n in &nodes {
        let status = lab.agent_status(n);
        assert!(
            status["source"].as_str().unwrap().contains("API server"),
            "{status}"
        );
        let key_file = std::fs::read(lab.run_dir(n).join("cilium_wg0.key")).unwrap();
        let text = std::fs::read_to_string(lab.run_dir(n).join("wireguard.json")).unwrap()
            + &status.to_string();
        let annotations = cluster.kubectl_ok(&["get", "node", n, "-o", "json"]);
        let private =
            defguard_wireguard_rs::key::Key::new(key_file.try_into().unwrap()).to_string();
        assert!(
            !text.contains(&private) && !annotations.contains(&private),
            "the private key must never be published"
        );
    }

    // The seed's intent, from the API server's objects, across the tunnel.
    assert!(
        conn(&lab, frontend, backend, 80, OPEN),
        "frontend must reach backend:80"
    );
    assert!(
        !conn(&lab, admin, backend, 80, SHUT),
        "admin must not reach backend:80"
    );
    assert!(
        !conn(&lab, intruder, backend, 80, SHUT),
        "frontend's labels in another namespace must not reach backend"
    );
    assert!(
        !conn(&lab, frontend, backend, 81, SHUT),
        "frontend must not reach backend:81"
    );

    // FQDN policy through the kube-mode agent's DNS proxy: payments may ask kube-dns for the
    // card gateway's name only (REFUSED otherwise) and then reach what it resolved to.
    let world = lab.netns("world");
    let gateway = std::net::IpAddr::from(lab.ip("world"));
    tcp_server(&world, gateway, 443);
    let kube_dns = std::net::SocketAddr::from((lab.ip("kube-system/kube-dns"), 53));
    let names = ward_datapath::lab::dns::Names::from([(
        "api.gateway.example.com".to_owned(),
        ward_datapath::lab::dns::Zone {
            addresses: vec![gateway],
            ttl: 300,
        },
    )]);
    let _dns = ward_datapath::lab::dns::DnsServer::start(
        &lab.netns("kube-system/kube-dns"),
        kube_dns,
        names,
    )
    .unwrap();
    let worker = "payments/payments-worker";
    assert!(
        !conn(&lab, worker, "world", 443, SHUT),
        "payments reaches nothing outside before a DNS answer"
    );
    let ask = |name: &str| {
        ward_datapath::lab::dns::query(
            &lab.netns(worker),
            kube_dns,
            name,
            hickory_proto::rr::RecordType::A,
            OPEN,
        )
        .unwrap()
        .unwrap_or_else(|| panic!("no answer to {name}"))
    };
    assert_eq!(
        ask("tracker.example.net").code,
        hickory_proto::op::ResponseCode::Refused
    );
    assert_eq!(ask("api.gateway.example.com").addresses, [gateway]);
    assert!(
        conn(&lab, worker, "world", 443, OPEN),
        "payments reaches the address its allowed name resolved to"
    );

    // Services from the API server. kube-dns's Service (a selector): queries to its cluster IP
    // reach the kube-dns pod through the pod's program, and meet the same DNS rules there.
    // ledger-db (no selector, allowed by payments' toServices): nothing until its
    // EndpointSlice lists a backend, then that backend through the cluster IP.
    let services = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": "kube-system"},
         "spec": {"clusterIP": "10.0.0.10", "selector": {"k8s-app": "kube-dns"},
                  "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "ledger-db", "namespace": "payments"},
         "spec": {"clusterIP": "10.0.0.40", "ports": [{"port": 5432, "protocol": "TCP"}]}}
    ]});
    let file = lab.path("services.json");
    std::fs::write(&file, serde_json::to_vec(&services).unwrap()).unwrap();
    cluster.kubectl_ok(&["apply", "--server-side", "-f", file.to_str().unwrap()]);
    let dns_service = std::net::SocketAddr::from(([10, 0, 0, 10], 53));
    let ledger: std::net::IpAddr = [10, 0, 0, 40].into();
    tcp_server(&world, gateway, 5432);
    let answered = |name: &str| {
        ward_datapath::lab::dns::query(
            &lab.netns(worker),
            dns_service,
            name,
            hickory_proto::rr::RecordType::A,
            SHUT,
        )
        .unwrap()
    };
    wait_for(
        "kube-dns's Service in the kernel (a query to its cluster IP is answered)",
        PROPAGATION,
        || answered("api.gateway.example.com").is_some_and(|a| a.addresses == [gateway]),
    );
    assert_eq!(
        answered("tracker.example.net").map(|a| a.code),
        Some(hickory_proto::op::ResponseCode::Refused),
        "the DNS rules hold through the Service"
    );
    assert!(
        tcp_connect(&lab.netns(worker), ledger, 5432, SHUT).is_none(),
        "ledger-db has no backend yet"
    );
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "ledger-db-1", "namespace": "payments",
                     "labels": {"kubernetes.io/service-name": "ledger-db"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [gateway.to_string()], "conditions": {"ready": true}}],
        "ports": [{"port": 5432, "protocol": "TCP"}]});
    std::fs::write(&file, serde_json::to_vec(&slice).unwrap()).unwrap();
    cluster.kubectl_ok(&["apply", "--server-side", "-f", file.to_str().unwrap()]);
    wait_for(
        "ledger-db's EndpointSlice in the kernel (its cluster IP reaches the backend)",
        PROPAGATION,
        || tcp_connect(&lab.netns(worker), ledger, 5432, SHUT).is_some(),
    );

    // A pod relabelled: admin becomes a frontend and gets in; back, and it is out again.
    cluster.kubectl_ok(&[
        "label",
        "pod",
        "-n",
        "shop",
        "admin",
        "app=frontend",
        "--overwrite",
    ]);
    wait_conn(
        &lab,
        "a pod label change reaches the kernel (admin -> backend:80 opens)",
        admin,
        backend,
        80,
        true,
    );
    cluster.kubectl_ok(&[
        "label",
        "pod",
        "-n",
        "shop",
        "admin",
        "app=admin",
        "--overwrite",
    ]);
    wait_conn(
        &lab,
        "the label reverted (admin -> backend:80 closes)",
        admin,
        backend,
        80,
        false,
    );

    // A policy edited in the API server: admin added to backend's allowed peers.
    let patch = json!([{"op": "add", "path": "/spec/ingress/0/fromEndpoints/-", "value": {"matchLabels": {"app": "admin"}}}]);
    cluster.kubectl_ok(&[
        "patch",
        "cnp",
        "-n",
        "shop",
        "backend-ingress",
        "--type=json",
        "-p",
        &patch.to_string(),
    ]);
    wait_conn(
        &lab,
        "a CNP edit reaches the kernel (admin -> backend:80 opens)",
        admin,
        backend,
        80,
        true,
    );
    assert!(
        !conn(&lab, admin, backend, 81, SHUT),
        "the edit allowed port 80 only"
    );

    // A policy deleted: nothing selects backend's ingress any more, so it is open (Cilium's
    // default without a policy), and intruder gets in.
    cluster.kubectl_ok(&["delete", "cnp", "-n", "shop", "backend-ingress"]);
    wait_conn(
        &lab,
        "a CNP deletion reaches the kernel (intruder -> backend:80 opens)",
        intruder,
        backend,
        80,
        true,
    );

    // A Kubernetes NetworkPolicy (admin-ingress) is enforced in the kernel as well: it isolates
    // the admin pods, so intruder (no on-call pod of an ops namespace) is dropped on 8443;
    // once the NetworkPolicy admits every namespace's pods, intruder gets in.
    tcp_server(&lab.netns(admin), lab.ip(admin), 8443);
    assert!(
        !conn(&lab, intruder, admin, 8443, SHUT),
        "admin-ingress (a NetworkPolicy) must keep intruder out of admin:8443"
    );
    let patch = json!([{"op": "add", "path": "/spec/ingress/0/from/-", "value": {"namespaceSelector": {}}}]);
    cluster.kubectl_ok(&[
        "patch",
        "networkpolicy",
        "-n",
        "shop",
        "admin-ingress",
        "--type=json",
        "-p",
        &patch.to_string(),
    ]);
    wait_conn(
        &lab,
        "a NetworkPolicy edit reaches the kernel (intruder -> admin:8443 opens)",
        intruder,
        admin,
        8443,
        true,
    );

    // A CiliumCIDRGroup is enforced through the rules that name it: admin-from-office admits
    // the office networks on 8443, and the world host is not in them; once the group holds
    // its prefix, world gets in.
    assert!(
        !conn(&lab, "world", admin, 8443, SHUT),
        "world is not in office-networks: admin:8443 stays closed to it"
    );
    let patch = json!([{"op": "add", "path": "/spec/externalCIDRs/-", "value": "203.0.113.0/24"}]);
    cluster.kubectl_ok(&[
        "patch",
        "ciliumcidrgroup",
        "office-networks",
        "--type=json",
        "-p",
        &patch.to_string(),
    ]);
    wait_conn(
        &lab,
        "a CiliumCIDRGroup edit reaches the kernel (world -> admin:8443 opens)",
        "world",
        admin,
        8443,
        true,
    );

    // A ConfigMap that no longer holds a valid CiliumConfig: fail closed, say why, recover.
    put_config(
        &cluster,
        &lab,
        "apiVersion: cilium.io/v1.12\nkind: CiliumConfig\nmetadata: {name: cilium-config}\nspec:\n  enable-encryption: [\n",
    );
    wait_for(
        "both agents to report the broken ConfigMap",
        PROPAGATION,
        || {
            nodes.iter().all(|n| {
                wg(&lab, n, "/error")
                    .as_str()
                    .is_some_and(|e| e.contains("ConfigMap kube-system/cilium-config"))
            })
        },
    );
    assert!(
        !conn(&lab, frontend, backend, 80, SHUT),
        "with the config unreadable, cross-node traffic must be dropped, not sent in clear"
    );
    put_config(&cluster, &lab, CONFIG);
    wait_conn(
        &lab,
        "the fixed ConfigMap restores the tunnel",
        frontend,
        backend,
        80,
        true,
    );

    // Encryption turned off in the API server: the keys are withdrawn from the Nodes.
    put_config(
        &cluster,
        &lab,
        &CONFIG.replace("enable-encryption: true", "enable-encryption: false"),
    );
    wait_for("the keys withdrawn from the Nodes", PROPAGATION, || {
        nodes
            .iter()
            .all(|n| node_annotation(&cluster, n, "network.cilium.io/wg-pub-key").is_none())
    });
    assert!(
        conn(&lab, frontend, backend, 80, OPEN),
        "in clear, frontend still reaches backend"
    );
}
