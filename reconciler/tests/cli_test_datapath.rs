//! `ward test --datapath`: the PolicyTests' expectations as real packets through ward's eBPF
//! programs, in a lab built from the tests' endpoints, compared with the engine.
//!
//! - The repository's own policies/ agree in the kernel, flow for flow, host policies
//!   (`remote-node` from every other node) and services included; what the lab cannot send
//!   (DNS answers only the tests declare) is listed as not probed, with why.
//! - IPv6: a dual-stack lab keeps the tests' IPv6 addresses and sends each flow in every
//!   family both ends have; a corrupted IPv6 entry is a disagreement over IPv6 only.
//! - TCP, UDP and ICMP echo, pods without a declared address, a world address the test names,
//!   a ServiceAccount a policy selects.
//! - A map entry corrupted between the agents' sync and the probes is reported as a
//!   disagreement: the check would catch a datapath that does not do what the engine says.
//!
//! Root, bpffs and iproute2 are needed: without them each test prints `SKIPPED: <test>:
//! <reason>` and passes, except in must-run mode (`ward_testkit::must_run`), where it fails.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod util;

use std::path::{Path, PathBuf};
use util::{EXIT_ERROR, EXIT_OK, Env, check_json, output_schema};
use ward_reconciler::testing::Suite;
use ward_reconciler::testing::datapath::{self, Agreement, DatapathRun};
use ward_reconciler::testing::run::{RunOptions, run};
use ward_schema::{Limits, ResourceSet, assemble, load_file};

fn privileged(test: &str) -> bool {
    ward_testkit::can_run(test, ward_testkit::bpf_missing().as_deref())
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The check of the flow written `flow` (as the test run names it).
fn check<'a>(run: &'a DatapathRun, flow: &str) -> &'a datapath::Check {
    run.checks
        .iter()
        .find(|c| c.flow == flow)
        .unwrap_or_else(|| panic!("no check of {flow}: {:#?}", run.checks))
}

/// `flow` is a disagreement: the engine allows it and the kernel dropped it.
fn assert_dropped_against_the_engine(run: &DatapathRun, flow: &str) {
    let c = check(run, flow);
    assert_eq!(
        (c.result, c.engine, c.kernel),
        (Agreement::Disagree, Some("allow"), Some("dropped")),
        "{c:#?}"
    );
}

#[test]
fn the_repository_policies_agree_in_the_kernel() {
    if !privileged("test --datapath policies") {
        return;
    }
    let env = Env::new();
    let out = env.ward(&workspace(), &["test", "--datapath", "policies"]);
    out.code(EXIT_OK)
        .stdout_has("Datapath (lab ")
        .stdout_has(
            "✓ frontend → backend TCP/80 (policies/tests/shop-seed.yaml:34): the kernel passed it, as the engine says (allow)",
        )
        .stdout_has(
            "✓ admin → backend TCP/80 (policies/tests/shop-seed.yaml:39): the kernel dropped it, as the engine says (deny)",
        )
        .stdout_has("layer 3/4 compared: the kernel does not enforce HTTP rules")
        // DNS through the agents' proxies: a refused name, and an FQDN flow to an address the
        // proxy learned from an allowed query.
        .stdout_has(
            "DNS query tracker.example.net compared too: REFUSED by the agent, as the engine says",
        )
        .stdout_has(
            "DNS query api.gateway.example.com compared too: answered by the agent, as the engine says",
        )
        // DNS over TCP through the proxy too.
        .stdout_has(
            "✓ payments-worker → kube-dns TCP/53 DNS query tracker.example.net (policies/tests/payments.yaml:85): the kernel passed it, as the engine says (allow)",
        )
        .stdout_has(
            "✓ payments-worker → 203.0.113.40 TCP/443 (policies/tests/payments.yaml:99): the kernel passed it, as the engine says (allow)",
        )
        // Through Services: the pod's program sends the packets to a backend (kube-dns's
        // pod, where the DNS proxy answers; the ledger's address outside the cluster).
        .stdout_has(
            "✓ payments-worker → service:kube-system/kube-dns UDP/dns DNS query api.gateway.example.com (policies/tests/payments.yaml:89): the kernel passed it, as the engine says (allow)",
        )
        .stdout_has(
            "✓ payments-worker → service:payments/ledger-db TCP/5432 (policies/tests/payments.yaml:94): the kernel passed it, as the engine says (allow)",
        )
        // Host policies in the kernel: a node's own endpoint, from outside and from its pod.
        .stdout_has(
            "✓ world → node:worker-1 TCP/22 (policies/tests/host-firewall.yaml:34): the kernel dropped it, as the engine says (deny)",
        )
        .stdout_has(
            "✓ batch-runner → host TCP/10250 (policies/tests/host-firewall.yaml:42): the kernel dropped it, as the engine says (deny)",
        )
        // remote-node: sent from each other node, each agreeing.
        .stdout_has(
            "✓ remote-node → node:worker-1 TCP/10250 (policies/tests/host-firewall.yaml:38): the kernel passed it, as the engine says (allow)\n      remote-node as node:worker-2; remote-node as node:control-plane-1",
        )
        .stdout_has(" 0 disagree, ");
    let json = env.ward(
        &workspace(),
        &["test", "--datapath", "policies", "--format", "json"],
    );
    json.code(EXIT_OK);
    check_json(&output_schema(), &json, "test");
    let doc = json.json();
    let summary = &doc["datapath"]["summary"];
    assert_eq!(summary["disagree"], 0, "{summary}");
    let agree = summary["agree"].as_u64().unwrap();
    let total = doc["summary"]["expectations"].as_u64().unwrap();
    assert!(
        agree == total && agree + summary["notProbed"].as_u64().unwrap() == total,
        "most of the repository's {total} expectations are sent: {summary}"
    );
    // A flow from an address outside the cluster leaves from the world host's extra address.
    let checks = doc["datapath"]["checks"].as_array().unwrap();
    let from_outside = checks
        .iter()
        .find(|c| c["flow"] == "10.20.1.5 → admin TCP/9102")
        .unwrap();
    assert_eq!(from_outside["result"], "agree", "{from_outside}");
}

const SUITE: &str = "\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: b-ingress, namespace: demo}
spec:
  endpointSelector: {matchLabels: {app: b}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: a}}]
      toPorts: [{ports: [{port: \"53\", protocol: UDP}, {port: \"80\", protocol: TCP}]}]
    - fromEndpoints: [{matchLabels: {app: a}}]
      icmps: [{fields: [{type: 8, family: IPv4}]}]
    - fromCIDR: [198.51.100.0/24]
      toPorts: [{ports: [{port: \"443\", protocol: TCP}]}]
    - fromEndpoints: [{matchLabels: {io.cilium.k8s.policy.serviceaccount: deployer}}]
      toPorts: [{ports: [{port: \"8080\", protocol: TCP}]}]
---
apiVersion: ward.dev/v1alpha1
kind: PolicyTest
metadata: {name: demo}
spec:
  endpoints:
    - {name: a, namespace: demo, labels: {app: a}}
    - {name: b, namespace: demo, labels: {app: b}, ip: 10.9.0.20}
    - {name: c, namespace: demo, labels: {app: c}, serviceAccount: deployer}
  expectations:
    - {from: a, to: b, port: 80, expect: allow}
    - {from: a, to: b, port: 53, protocol: UDP, expect: allow}
    - {from: a, to: b, protocol: ICMP, expect: allow}
    - {from: c, to: b, protocol: ICMP, expect: deny}
    - {from: c, to: b, port: 53, protocol: UDP, expect: deny}
    - {from: 198.51.100.7, to: b, port: 443, expect: allow}
    - {from: 192.0.2.7, to: b, port: 443, expect: deny}
    - {from: b, to: a, port: 80, expect: allow}
    - {from: c, to: b, port: 8080, expect: allow}
    - {from: a, to: b, port: 8080, expect: deny}
";

/// Loads YAML documents as `ward test` does.
fn load(text: &str) -> ResourceSet {
    let v = assemble(vec![load_file(
        "suite.yaml",
        text.as_bytes(),
        &Limits::default(),
    )]);
    assert!(v.is_valid(), "{:?}", v.diagnostics);
    v.resources
}

/// Runs the suite of `set` on the datapath, with `tamper` between the sync and the probes.
fn on_datapath(
    set: &ResourceSet,
    tamper: &mut dyn FnMut(&datapath::LabView<'_>) -> anyhow::Result<()>,
) -> DatapathRun {
    let suite = Suite::of(set).unwrap();
    let engine = run(&suite.tests, set, &suite.cluster, RunOptions::default()).unwrap();
    assert!(engine.passed(), "{engine:#?}");
    datapath::check(&suite, set, &engine, tamper).unwrap()
}

#[test]
fn tcp_udp_icmp_and_outside_addresses_agree() {
    if !privileged("test --datapath protocols") {
        return;
    }
    let run = on_datapath(&load(SUITE), &mut |_| Ok(()));
    for c in &run.checks {
        assert_eq!(c.result, Agreement::Agree, "{c:#?}");
    }
    assert_eq!(check(&run, "a → b ICMP").kernel, Some("passed"));
    assert_eq!(check(&run, "c → b ICMP").kernel, Some("dropped"));
    assert_eq!(
        check(&run, "198.51.100.7 → b TCP/443").kernel,
        Some("passed")
    );
    assert_eq!(check(&run, "192.0.2.7 → b TCP/443").kernel, Some("dropped"));
    // A ServiceAccount selects: c runs as `deployer`, a as `default`.
    assert_eq!(check(&run, "c → b TCP/8080").kernel, Some("passed"));
    assert_eq!(check(&run, "a → b TCP/8080").kernel, Some("dropped"));
    assert!(run.lab.contains("3 pod(s)"), "{}", run.lab);
}

#[test]
fn a_corrupted_map_entry_is_reported_as_a_disagreement() {
    if !privileged("test --datapath corrupted") {
        return;
    }
    // a's address on b's node becomes the world's identity: b's ingress from a, which the
    // engine allows, is dropped by the kernel.
    let run = on_datapath(&load(SUITE), &mut |lab| {
        let (a_ip, _) = lab.endpoint("a").unwrap();
        let (_, b_node) = lab.endpoint("b").unwrap();
        let mut maps = ward_datapath::bpf::NodeMaps::open_pinned(&b_node)?;
        maps.ipcache_set(a_ip, 32, ward_engine::Identity::WORLD.0)?;
        Ok(())
    });
    assert_dropped_against_the_engine(&run, "a → b TCP/80");
    assert_eq!(check(&run, "a → b ICMP").result, Agreement::Disagree);
    // What the corruption does not touch still agrees.
    assert_eq!(check(&run, "c → b ICMP").result, Agreement::Agree);
    assert_eq!(
        check(&run, "198.51.100.7 → b TCP/443").result,
        Agreement::Agree
    );
    assert!(
        run.text(false).contains(
            "✗ a → b TCP/80 (suite.yaml:25): DISAGREE: the engine says allow, the kernel dropped it"
        ),
        "{}",
        run.text(false)
    );
    assert!(
        run.text(false)
            .contains("FAILED: 10 expectation(s) on the datapath")
    );
}

const DNS_SUITE: &str = "\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-egress, namespace: demo}
spec:
  endpointSelector: {matchLabels: {app: a}}
  egress:
    - toEndpoints: [{matchLabels: {app: dns}}]
      toPorts:
        - ports: [{port: \"53\", protocol: UDP}]
          rules: {dns: [{matchName: api.example.com}]}
    - toFQDNs: [{matchName: api.example.com}]
      toPorts: [{ports: [{port: \"443\", protocol: TCP}]}]
---
apiVersion: ward.dev/v1alpha1
kind: PolicyTest
metadata: {name: dns}
spec:
  endpoints:
    - {name: a, namespace: demo, labels: {app: a}}
    - {name: dns, namespace: demo, labels: {app: dns}}
  dns:
    - {name: api.example.com, addresses: [203.0.113.44]}
    - {name: ads.example.com, addresses: [203.0.113.45]}
  expectations:
    - {from: a, to: dns, port: 53, protocol: UDP, expect: allow, dns: {query: api.example.com}}
    - {from: a, to: dns, port: 53, protocol: UDP, expect: deny, dns: {query: ads.example.com}}
    - {from: a, to: 203.0.113.44, port: 443, expect: allow}
    - {from: a, to: 203.0.113.45, port: 443, expect: deny}
";

/// DNS through the agent's proxy: an allowed query teaches the address its FQDN rule then
/// allows, a refused one is REFUSED; and when the proxy is bypassed (the policy entry's DNS
/// flag cleared between the sync and the probes), the refused name is answered, which is
/// reported as a disagreement.
#[test]
fn dns_queries_go_through_the_agents_proxy_and_a_bypass_is_a_disagreement() {
    if !privileged("test --datapath dns") {
        return;
    }
    let set = load(DNS_SUITE);
    let run = on_datapath(&set, &mut |_| Ok(()));
    for c in &run.checks {
        assert_eq!(c.result, Agreement::Agree, "{c:#?}");
    }
    let refused = check(&run, "a → dns UDP/53 DNS query ads.example.com");
    assert_eq!(
        refused.note.as_deref(),
        Some("DNS query ads.example.com compared too: REFUSED by the agent, as the engine says")
    );
    assert_eq!(
        check(&run, "a → 203.0.113.44 TCP/443").kernel,
        Some("passed")
    );
    assert_eq!(
        check(&run, "a → 203.0.113.45 TCP/443").kernel,
        Some("dropped")
    );

    let bypassed = on_datapath(&set, &mut |lab| {
        let (_, node) = lab.endpoint("a").unwrap();
        let mut maps = ward_datapath::bpf::NodeMaps::open_pinned(&node)?;
        for (k, v) in maps.policy_entries()? {
            if v.redirects_dns() {
                maps.policy_set(k, v.with_dns(false))?;
            }
        }
        Ok(())
    });
    let c = check(&bypassed, "a → dns UDP/53 DNS query ads.example.com");
    assert_eq!(c.result, Agreement::Disagree, "{c:#?}");
    assert_eq!(
        c.note.as_deref(),
        Some(
            "DISAGREE on DNS query ads.example.com: the engine says REFUSED, the query was answered"
        )
    );
    assert!(
        bypassed
            .text(false)
            .contains("✗ a → dns UDP/53 DNS query ads.example.com (suite.yaml:"),
        "{}",
        bypassed.text(false)
    );
}

#[test]
fn without_root_it_says_what_it_needs() {
    // The check itself refuses to build anything without root; as root this is the
    // non-text format refusal, which needs no lab.
    let env = Env::new();
    let out = env.ward(
        &workspace(),
        &["test", "--datapath", "policies", "--format", "junit"],
    );
    out.code(EXIT_ERROR)
        .stderr_has("--datapath writes text or json");
}

/// A node without an agent in a PolicyTest (`agent: false`): its pod, whatever its labels, is
/// world to the others, and its own egress is not enforced; `ward test` and the kernel agree
/// on every flow (an agent runs on the other node only).
const UNMANAGED_POLICY: &str = include_str!("../../datapath/tests/data/unmanaged-policy.yaml");

const UNMANAGED_TEST: &str = "\
apiVersion: ward.dev/v1alpha1
kind: PolicyTest
metadata: {name: unmanaged}
spec:
  nodes:
    - {name: worker, ip: 172.31.0.11}
    - {name: edge, ip: 172.31.0.12, agent: false}
  endpoints:
    - {name: client, namespace: shop, labels: {app: client}, ip: 10.7.1.10, node: worker}
    - {name: echo, namespace: shop, labels: {app: echo}, ip: 10.7.1.20, node: worker}
    - {name: outsider, namespace: shop, labels: {app: client}, ip: 10.7.2.10, node: edge}
  expectations:
    - {from: client, to: echo, port: 80, expect: allow}
    - {from: outsider, to: echo, port: 80, expect: deny, description: its client label counts for nothing}
    - {from: outsider, to: echo, port: 9090, expect: allow, description: it is world}
    - {from: client, to: outsider, port: 80, expect: deny, description: not in the cluster}
    - {from: outsider, to: world, port: 81, expect: allow, description: no agent enforces its egress}
    - {from: remote-node, to: echo, port: 9090, expect: deny, description: the edge node is no remote-node}
";

#[test]
fn a_node_without_an_agent_is_world_in_ward_test_and_in_the_kernel() {
    if !privileged("test --datapath unmanaged") {
        return;
    }
    let run = on_datapath(
        &load(&format!("{UNMANAGED_POLICY}---\n{UNMANAGED_TEST}")),
        &mut |_| Ok(()),
    );
    for c in run
        .checks
        .iter()
        .filter(|c| !c.flow.starts_with("remote-node"))
    {
        assert_eq!(c.result, Agreement::Agree, "{c:#?}");
    }
    let remote = check(&run, "remote-node → echo TCP/9090");
    assert_eq!(remote.result, Agreement::NotProbed);
    assert_eq!(
        remote.note.as_deref(),
        Some("remote-node stands for no node here: no other node runs an agent")
    );
    assert_eq!(
        check(&run, "outsider → echo TCP/80").kernel,
        Some("dropped")
    );
    assert_eq!(
        check(&run, "outsider → echo TCP/9090").kernel,
        Some("passed")
    );
    assert_eq!(
        check(&run, "outsider → world TCP/81").kernel,
        Some("passed")
    );
}

/// A service in front of b: a reaches it, c does not (b's ingress admits a only).
const SERVICE_SUITE: &str = "\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: b-ingress, namespace: demo}
spec:
  endpointSelector: {matchLabels: {app: b}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: a}}]
      toPorts: [{ports: [{port: \"8080\", protocol: TCP}]}]
---
apiVersion: ward.dev/v1alpha1
kind: PolicyTest
metadata: {name: service}
spec:
  endpoints:
    - {name: a, namespace: demo, labels: {app: a}}
    - {name: b, namespace: demo, labels: {app: b}, ip: 10.9.0.20, ports: [{name: http, port: 8080}]}
    - {name: c, namespace: demo, labels: {app: c}}
  services:
    - {name: web, namespace: demo, ip: 10.96.7.7, selector: {app: b}, ports: [{port: 80, targetPort: http}]}
  expectations:
    - {from: a, to: \"service:demo/web\", port: 80, expect: allow}
    - {from: c, to: 10.96.7.7, port: 80, expect: deny}
    - {from: a, to: b, port: 8080, expect: allow}
";

/// A corrupted service entry (the backend's port) is a disagreement on the flow through the
/// service, and only there.
#[test]
fn a_corrupted_service_entry_is_reported_as_a_disagreement() {
    if !privileged("test --datapath corrupted service") {
        return;
    }
    let clean = on_datapath(&load(SERVICE_SUITE), &mut |_| Ok(()));
    for c in &clean.checks {
        assert_eq!(c.result, Agreement::Agree, "{c:#?}");
    }
    let run = on_datapath(&load(SERVICE_SUITE), &mut |lab| {
        let (b_ip, _) = lab.endpoint("b").unwrap();
        let (_, a_node) = lab.endpoint("a").unwrap();
        let mut maps = ward_datapath::bpf::NodeMaps::open_pinned(&a_node)?;
        let vip = std::net::IpAddr::from([10, 96, 7, 7]);
        maps.lb_set(
            ward_datapath::bpf::maps::LbKey::new(vip, 80, 6, 1),
            ward_datapath::bpf::maps::LbValue::backend(b_ip.into(), 9999),
        )?;
        Ok(())
    });
    assert_dropped_against_the_engine(&run, "a → service:demo/web TCP/80");
    assert_eq!(check(&run, "a → b TCP/8080").result, Agreement::Agree);
}

/// A dual-stack suite: a and b have both families, c only IPv6, d none (so both); b takes
/// what a sends, and HTTPS from an IPv6 prefix of the outside.
const DUAL_STACK_SUITE: &str = "\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: b-ingress, namespace: demo}
spec:
  endpointSelector: {matchLabels: {app: b}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: a}}]
    - fromCIDR: [\"2001:db8:5::/48\"]
      toPorts: [{ports: [{port: \"443\", protocol: TCP}]}]
---
apiVersion: ward.dev/v1alpha1
kind: PolicyTest
metadata: {name: dual-stack}
spec:
  endpoints:
    - {name: a, namespace: demo, labels: {app: a}, ips: [10.9.1.10, \"fd10:1::a\"], node: n1}
    - {name: c, namespace: demo, labels: {app: c}, ip: \"fd10:1::c\", node: n1}
    - {name: d, namespace: demo, labels: {app: d}, node: n1}
    - {name: b, namespace: demo, labels: {app: b}, ips: [10.9.2.20, \"fd10:2::b\"], node: n2, ports: [{name: http, port: 80}]}
  services:
    - {name: web, namespace: demo, ips: [10.96.7.7, \"fd96::7\"], selector: {app: b}, ports: [{port: 8080, targetPort: http}]}
  expectations:
    - {from: a, to: b, port: 80, expect: allow}
    - {from: c, to: b, port: 80, expect: deny}
    - {from: d, to: b, port: 80, expect: deny}
    - {from: a, to: b, protocol: ICMPv6, expect: allow}
    - {from: c, to: b, protocol: ICMPv6, expect: deny}
    - {from: a, to: b, protocol: ICMP, expect: allow}
    - {from: c, to: b, protocol: ICMP, expect: deny}
    - {from: \"2001:db8:5::7\", to: b, port: 443, expect: allow}
    - {from: \"2001:db8:6::7\", to: b, port: 443, expect: deny}
    - {from: world-ipv6, to: b, port: 443, expect: deny}
    - {from: a, to: \"service:demo/web\", port: 8080, expect: allow}
    - {from: c, to: \"fd96::7\", port: 8080, expect: deny}
";

/// Every probe of `flow` in order: (kernel, note).
fn probed<'a>(run: &'a DatapathRun, flow: &str) -> (Agreement, Option<&'a str>, &'a str) {
    let c = check(run, flow);
    (c.result, c.kernel, c.note.as_deref().unwrap_or_default())
}

/// IPv6 through `ward test --datapath`: the lab is dual stack, keeps the tests' own IPv6
/// addresses (pods on two nodes, an outside prefix, world-ipv6, a service's IPv6 cluster IP),
/// and sends each flow in every family both ends have: the kernel and the engine agree on
/// each, ICMPv6 included; a flow no family fits is not probed, and says why.
#[test]
fn ipv6_flows_are_sent_in_every_family_both_ends_have() {
    if !privileged("test --datapath ipv6") {
        return;
    }
    let run = on_datapath(&load(DUAL_STACK_SUITE), &mut |_| Ok(()));
    assert!(run.lab.ends_with(", dual stack"), "{}", run.lab);
    let unfit = check(&run, "c → b ICMP");
    assert_eq!(unfit.result, Agreement::NotProbed, "{unfit:#?}");
    assert!(
        unfit
            .note
            .as_deref()
            .unwrap()
            .contains("no address family fits both ends and the protocol"),
        "{unfit:#?}"
    );
    for c in run.checks.iter().filter(|c| c.flow != "c → b ICMP") {
        assert_eq!(c.result, Agreement::Agree, "{c:#?}");
    }
    // a and b have both families: one probe each, both reported.
    let (_, kernel, note) = probed(&run, "a → b TCP/80");
    assert_eq!(kernel, Some("passed"));
    assert!(
        note.contains("over IPv4") && note.contains("over IPv6"),
        "{note}"
    );
    assert_eq!(probed(&run, "c → b TCP/80").1, Some("dropped"));
    assert_eq!(probed(&run, "a → b ICMPv6").1, Some("passed"));
    assert_eq!(probed(&run, "c → b ICMPv6").1, Some("dropped"));
    assert_eq!(probed(&run, "2001:db8:5::7 → b TCP/443").1, Some("passed"));
    assert_eq!(probed(&run, "2001:db8:6::7 → b TCP/443").1, Some("dropped"));
    assert_eq!(probed(&run, "world-ipv6 → b TCP/443").1, Some("dropped"));
    let (_, kernel, note) = probed(&run, "a → service:demo/web TCP/8080");
    assert_eq!(kernel, Some("passed"));
    assert!(note.contains("over IPv6"), "{note}");
    assert_eq!(probed(&run, "c → fd96::7 TCP/8080").1, Some("dropped"));
}

/// a's IPv6 address on b's node made world's: b's ingress from a over IPv6 is dropped, a
/// disagreement the check names with its family, while IPv4 still agrees.
#[test]
fn a_corrupted_ipv6_entry_is_reported_as_a_disagreement() {
    if !privileged("test --datapath corrupted ipv6") {
        return;
    }
    let run = on_datapath(&load(DUAL_STACK_SUITE), &mut |lab| {
        let a = lab.pod("a").unwrap();
        let b = lab.pod("b").unwrap();
        let mut maps = ward_datapath::bpf::NodeMaps::open_pinned(&b.node)?;
        maps.ipcache_set(a.ipv6.unwrap(), 128, ward_engine::Identity::WORLD.0)?;
        Ok(())
    });
    assert_dropped_against_the_engine(&run, "a → b TCP/80");
    let (_, _, note) = probed(&run, "a → b TCP/80");
    assert!(note.starts_with("over IPv6"), "{note}");
    assert_eq!(check(&run, "a → b ICMPv6").result, Agreement::Disagree);
    assert_eq!(check(&run, "a → b ICMP").result, Agreement::Agree);
    assert_eq!(
        check(&run, "2001:db8:5::7 → b TCP/443").result,
        Agreement::Agree
    );
}
