//! `ward test`: the repository's own PolicyTests pass; a flipped expectation fails with exit
//! 1 and shows the rule that decided; bad tests get diagnostics with file:line; text, json
//! and junit output.

mod util;

use util::{EXIT_ERROR, EXIT_OK, Env, SEED, flip_first_expectation};

#[test]
fn the_repositorys_own_tests_pass() {
    let env = Env::new();
    let repo = env.fixture_repo();
    let run = repo.ward(&["test", "policies"]);
    run.code(EXIT_OK)
        .stdout_has("PolicyTest shop-seed (policies/tests/shop-seed.yaml:4)")
        .stdout_has("PolicyTest clusterwide (policies/tests/clusterwide.yaml:")
        .stdout_has("  ✓ frontend → backend TCP/80: allow, decided by CiliumNetworkPolicy/shop/backend-ingress\n")
        .stdout_has("  ✓ admin → backend TCP/80: deny (default-deny)\n")
        .stdout_has("ok: 67 expectation(s) in 5 test(s): 67 passed, 0 failed")
        .stdout_lacks("✗");
    // With no paths: the --include folders (the CiliumConfig too).
    repo.ward(&["test"])
        .code(EXIT_OK)
        .stdout_has("67 passed, 0 failed");
    // A Git revision, without a checkout.
    flip_first_expectation(&repo);
    repo.ward(&["test", "--rev", "HEAD"])
        .code(EXIT_OK)
        .stdout_has("67 passed, 0 failed");
}

#[test]
fn a_flipped_expectation_fails_with_the_deciding_rule() {
    let env = Env::new();
    let repo = env.fixture_repo();
    flip_first_expectation(&repo);
    let run = repo.ward(&["test", "policies"]);
    run.code(EXIT_ERROR)
        .stdout_has("  ✗ frontend → backend TCP/80: expect deny, decidedBy CiliumNetworkPolicy/shop/backend-ingress  (spec.expectations[0])\n")
        .stdout_has(
            "      expected deny, got allow, decided by CiliumNetworkPolicy/shop/backend-ingress spec.ingress[0] (policies/namespaces/shop/backend-ingress.yaml:7)\n",
        )
        .stdout_has("egress of the source (remote identity ")
        .stdout_has("allowed by CiliumNetworkPolicy/shop/frontend-egress spec.egress[0] (policies/namespaces/shop/frontend-egress.yaml:13)")
        .stdout_has("FAILED: 67 expectation(s) in 5 test(s): 66 passed, 1 failed");
    let failed = run
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('✗'))
        .count();
    run.check(failed == 1, "exactly the flipped expectation fails");

    let json = repo.ward(&["test", "policies", "--format", "json"]);
    let doc = json.code(EXIT_ERROR).json();
    json.check(
        doc["summary"]["failed"] == 1
            && doc["summary"]["passed"] == 66
            && doc["summary"]["ok"] == false,
        "the summary",
    );
    let first = &doc["tests"][4]["expectations"][0];
    json.check(
        doc["tests"][4]["name"] == "shop-seed" && first["status"] == "fail",
        "the seed's first expectation failed",
    )
    .check(
        first["outcome"]["decidedBy"]["rule"]
            == "CiliumNetworkPolicy/shop/backend-ingress spec.ingress[0]",
        "the deciding rule",
    )
    .check(
        first["outcome"]["decidedBy"]["origin"]
            == "policies/namespaces/shop/backend-ingress.yaml:7",
        "its file and line",
    )
    .check(
        first["outcome"]["egress"]["reason"] == "allowed"
            && first["outcome"]["ingress"]["reason"] == "allowed",
        "both directions allow",
    );

    let junit = repo.ward(&["test", "policies", "--format", "junit"]);
    junit.code(EXIT_ERROR).stdout_has(
        "<testsuites name=\"ward test\" tests=\"67\" skipped=\"0\" failures=\"1\" errors=\"0\">",
    );
    let xml = &junit.stdout;
    junit
        .check(xml.matches("<testcase ").count() == 67, "one test case per expectation")
        .check(xml.matches("<failure ").count() == 1, "one failure")
        .check(xml.contains("name=\"frontend → backend TCP/80: deny\""), "the case is named after the flow")
        .check(
            xml.contains("<failure message=\"expected deny, got allow, decided by CiliumNetworkPolicy/shop/backend-ingress spec.ingress[0] (policies/namespaces/shop/backend-ingress.yaml:7)\" type=\"verdict\">"),
            "the failure message has the verdict and the deciding rule",
        )
        .check(xml.trim_end().ends_with("</testsuites>"), "closed");
}

#[test]
fn a_wrong_decided_by_fails_even_when_the_verdict_is_right() {
    let env = Env::new();
    let repo = env.fixture_repo();
    let seed = repo.read(SEED);
    let with = |decided_by: &str| {
        let text = seed.replace(
            "decidedBy: CiliumNetworkPolicy/shop/backend-ingress}",
            &format!("decidedBy: \"{decided_by}\"}}"),
        );
        assert_ne!(text, seed);
        text
    };
    // An allowed flow needs both directions: either allowing rule may be named.
    repo.write(
        SEED,
        with("CiliumNetworkPolicy/shop/frontend-egress spec.egress[0]"),
    );
    repo.ward(&["test"])
        .code(EXIT_OK)
        .stdout_has("67 passed, 0 failed");
    repo.write(SEED, with("cnp/shop/backend-ingress spec.ingress[0]"));
    repo.ward(&["test"])
        .code(EXIT_OK)
        .stdout_has("67 passed, 0 failed");
    // The DNS rule does not decide this flow.
    repo.write(
        SEED,
        with("CiliumNetworkPolicy/shop/frontend-egress spec.egress[1]"),
    );
    repo.ward(&["test"])
        .code(EXIT_ERROR)
        .stdout_has("expected decidedBy CiliumNetworkPolicy/shop/frontend-egress spec.egress[1], but decided by CiliumNetworkPolicy/shop/backend-ingress spec.ingress[0]")
        .stdout_has("1 failed");
}

const BAD_TEST: &str = "apiVersion: ward.dev/v1alpha1
kind: PolicyTest
metadata:
  name: typo
spec:
  endpoints:
    - name: web
      namespace: shop
      labels: {app: web, \"bad key\": x}
  expectations:
    - {from: web, to: backnd, port: 80, expect: allow}
    - {from: web, to: world, port: 70000, protocol: TCP, expect: deny}
    - {from: web, to: world, port: 80, protocol: QUIC, expect: deny}
";

#[test]
fn bad_tests_get_diagnostics_with_file_and_line() {
    let env = Env::new();
    let repo = env.fixture_repo();
    repo.write("policies/tests/typo.yaml", BAD_TEST);
    let run = repo.ward(&["test", "policies"]);
    run.code(EXIT_ERROR)
        .stdout_has("policies/tests/typo.yaml:11:23: error[WARD-S014]: unknown endpoint \"backnd\" (at spec.expectations[0].to)")
        .stdout_has("policies/tests/typo.yaml:9:26: error[WARD-S014]: invalid label key \"bad key\"")
        .stdout_has("policies/tests/typo.yaml:12:36: error[WARD-S014]: port 70000 is impossible")
        .stdout_has("policies/tests/typo.yaml:13:50: error[WARD-S014]: unknown protocol \"QUIC\"")
        .stdout_lacks("✓")
        .stdout_lacks("panicked");
    run.check(run.stderr.is_empty(), "nothing on stderr");
}

#[test]
fn an_endpoint_declared_differently_in_two_tests_names_both_files() {
    let env = Env::new();
    let repo = env.fixture_repo();
    let other = "apiVersion: ward.dev/v1alpha1
kind: PolicyTest
metadata:
  name: zz-other
spec:
  endpoints:
    - {name: frontend, namespace: shop, labels: {app: frontend, tier: web}, ip: 10.0.1.10}
  expectations:
    - {from: frontend, to: world, port: 443, expect: deny}
";
    repo.write("policies/tests/zz-other.yaml", other);
    let run = repo.ward(&["test"]);
    run.code(EXIT_ERROR)
        .stdout_has("policies/tests/zz-other.yaml:1:1: error[WARD-S014]: endpoint \"frontend\" is declared differently in policies/tests/zz-other.yaml:1 (PolicyTest zz-other) and in policies/tests/shop-admin.yaml:6 (PolicyTest shop-admin): labels differ (at spec.endpoints[0])")
        .stdout_has("hint: a name means the same endpoint in every PolicyTest");
    // The same declaration repeated is fine.
    repo.write(
        "policies/tests/zz-other.yaml",
        other.replace(", tier: web", ""),
    );
    repo.ward(&["test"])
        .code(EXIT_OK)
        .stdout_has("68 passed, 0 failed");
}

#[test]
fn no_tests_is_not_a_failure_and_unsupported_formats_are_refused() {
    let env = Env::new();
    let mut repo = env.repo("repo");
    repo.write("policies/p.yaml", util::cnp("shop", "api", 80));
    repo.commit("a policy, no tests");
    let run = repo.ward(&["test"]);
    run.code(EXIT_OK)
        .stderr_has("no PolicyTest documents in 1 file(s)");
    let run = repo.ward(&["test", "--format", "sarif"]);
    run.code(EXIT_ERROR)
        .stderr_has("[possible values: text, json, github, junit]");
}

#[test]
fn tests_without_policies_warn() {
    let env = Env::new();
    let repo = env.fixture_repo();
    let run = repo.ward(&["test", SEED]);
    run.code(EXIT_ERROR)
        .stderr_has("warning: no CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy or NetworkPolicy was loaded");
}

/// The PolicyTests of the NetworkPolicy and the CIDR group (`shop-admin.yaml`), the FQDN,
/// DNS and HTTP rules (`payments.yaml`) and the host firewall (`host-firewall.yaml`) test
/// something: flipping any one of their expectations makes exactly that one fail.
#[test]
fn each_flipped_expectation_of_the_newer_tests_fails() {
    let env = Env::new();
    let repo = env.fixture_repo();
    for (file, count) in [
        ("policies/tests/shop-admin.yaml", 13),
        ("policies/tests/payments.yaml", 22),
        ("policies/tests/host-firewall.yaml", 9),
    ] {
        let text = repo.read(file);
        let items: Vec<usize> = text
            .match_indices("expect: ")
            .map(|(i, _)| i + "expect: ".len())
            .collect();
        assert_eq!(items.len(), count, "the expectations of {file}");
        for (n, at) in items.into_iter().enumerate() {
            let (word, flipped) = if text[at..].starts_with("allow") {
                ("allow", "deny")
            } else {
                ("deny", "allow")
            };
            let changed = format!("{}{flipped}{}", &text[..at], &text[at + word.len()..]);
            repo.write(file, &changed);
            let run = repo.ward(&["test", "policies"]);
            run.code(EXIT_ERROR)
                .stdout_has("66 passed, 1 failed")
                .stdout_has(&format!("(spec.expectations[{n}])"));
        }
        repo.write(file, &text);
    }
}

/// A cidrGroupRef to a group the revision lacks matches nothing, as in Cilium; `ward test`
/// says so beside each verdict on that rule's path, and `--strict` fails those expectations.
#[test]
fn a_missing_cidr_group_is_reported_beside_the_verdict_and_fails_with_strict() {
    let env = Env::new();
    let repo = env.fixture_repo();
    std::fs::remove_file(repo.path.join("policies/clusterwide/office-networks.yaml"))
        .expect("remove the group");
    let note = "unresolved: CiliumNetworkPolicy/shop/admin-from-office spec.ingress[0]: CiliumCIDRGroup \"office-networks\" is not in this revision: cidrGroupRef matches nothing";
    let run = repo.ward(&["test", "policies"]);
    run.code(EXIT_ERROR)
        .stdout_has("  ✓ oncall → admin TCP/8443: allow, decided by NetworkPolicy/shop/admin-ingress spec.ingress[0]\n")
        .stdout_has(&format!("      {note}\n"))
        .stdout_has("expected allow, got default-deny")
        .stdout_has("66 passed, 1 failed");
    let strict = repo.ward(&["test", "policies", "--strict"]);
    strict.code(EXIT_ERROR).stdout_has(
        "a rule on this flow's path matches nothing here: it names something this revision does not define, or that only the cluster knows (--strict)",
    );
    let failed = strict
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('✗'))
        .count();
    strict.check(
        failed == 12,
        "every expectation into the admin pods fails, not the one out",
    );
    let json = repo.ward(&["test", "policies", "--format", "json"]);
    let doc = json.code(EXIT_ERROR).json();
    json.check(
        doc["tests"][3]["expectations"][0]["unresolved"][0]
            == note.trim_start_matches("unresolved: "),
        "JSON lists it",
    );
    // The CI formats carry it with each failure.
    repo.ward(&["test", "policies", "--strict", "--format", "github"])
        .code(EXIT_ERROR)
        .stdout_has("%0Aunresolved: CiliumNetworkPolicy/shop/admin-from-office spec.ingress[0]: CiliumCIDRGroup \"office-networks\"");
    repo.ward(&["test", "policies", "--strict", "--format", "junit"])
        .code(EXIT_ERROR)
        .stdout_has("unresolved: CiliumNetworkPolicy/shop/admin-from-office spec.ingress[0]: CiliumCIDRGroup &quot;office-networks&quot;");
}

/// toFQDNs needs DNS answers and toServices a declared service: here they match nothing,
/// which `ward test` says beside every verdict on the rule's path, and `--strict` fails.
#[test]
fn rules_only_the_cluster_can_resolve_are_shown_and_fail_with_strict() {
    let env = Env::new();
    let repo = env.fixture_repo();
    repo.write(
        "policies/namespaces/shop/backend-to-api.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: backend-to-api, namespace: shop}\nspec:\n  endpointSelector: {matchLabels: {app: backend}}\n  egress:\n    - toFQDNs: [{matchName: api.example.com}]\n      toPorts: [{ports: [{port: \"443\", protocol: TCP}]}]\n    - toServices: [{k8sService: {serviceName: api, namespace: shop}}]\n",
    );
    let run = repo.ward(&["test", "policies"]);
    run.code(EXIT_OK)
        .stdout_has("      unresolved: CiliumNetworkPolicy/shop/backend-to-api spec.egress[0]: toFQDNs (api.example.com) has no DNS answer here (declare them under a PolicyTest's spec.dns): it matches no destination\n")
        .stdout_has("      unresolved: CiliumNetworkPolicy/shop/backend-to-api spec.egress[1]: toServices (k8sService shop/api) selects no service here (declare services under a PolicyTest's spec.services or the lab's): it matches no destination\n");
    let strict = repo.ward(&["test", "policies", "--strict"]);
    strict
        .code(EXIT_ERROR)
        .stdout_has("  ✗ backend → 203.0.113.10 TCP/443: expect deny")
        .stdout_has("matches nothing here: it names something this revision does not define, or that only the cluster knows (--strict)");
}

/// toFQDNs resolves against the DNS answers a PolicyTest declares: the answered addresses,
/// and only those, are allowed; a pattern matches as Cilium's does.
#[test]
fn to_fqdns_allows_exactly_the_declared_answers() {
    let env = Env::new();
    let repo = env.fixture_repo();
    repo.write(
        "policies/namespaces/shop/backend-to-api.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: backend-to-api, namespace: shop}\nspec:\n  endpointSelector: {matchLabels: {app: backend}}\n  egress:\n    - toFQDNs: [{matchName: api.example.com}, {matchPattern: \"*.cdn.example.net\"}]\n      toPorts: [{ports: [{port: \"443\", protocol: TCP}]}]\n",
    );
    repo.write(
        "policies/tests/fqdn.yaml",
        "apiVersion: ward.dev/v1alpha1\nkind: PolicyTest\nmetadata: {name: fqdn}\nspec:\n  dns:\n    - {name: api.example.com, addresses: [192.0.2.10]}\n    - {name: eu.cdn.example.net, addresses: [192.0.2.20, \"2001:db8::20\"]}\n    - {name: cdn.example.net, addresses: [192.0.2.30]}\n  endpoints:\n    - {name: backend, namespace: shop, labels: {app: backend}, ip: 10.0.1.20}\n  expectations:\n    - {from: backend, to: 192.0.2.10, port: 443, protocol: TCP, expect: allow, decidedBy: CiliumNetworkPolicy/shop/backend-to-api}\n    - {from: backend, to: 192.0.2.20, port: 443, protocol: TCP, expect: allow}\n    - {from: backend, to: \"2001:db8::20\", port: 443, protocol: TCP, expect: allow}\n    - {from: backend, to: 192.0.2.30, port: 443, protocol: TCP, expect: deny, description: \"*. needs a label before cdn.example.net\"}\n    - {from: backend, to: 192.0.2.10, port: 80, protocol: TCP, expect: deny}\n    - {from: backend, to: 192.0.2.99, port: 443, protocol: TCP, expect: deny}\n",
    );
    let run = repo.ward(&[
        "test",
        "policies/tests/fqdn.yaml",
        "policies/namespaces",
        "--strict",
    ]);
    run.code(EXIT_OK)
        .stdout_has("  ✓ backend → 192.0.2.10 TCP/443: allow, decided by CiliumNetworkPolicy/shop/backend-to-api\n")
        .stdout_has("6 passed, 0 failed")
        .stdout_lacks("unresolved");
    // A bad answer is a finding with its place.
    repo.write(
        "policies/tests/fqdn.yaml",
        "apiVersion: ward.dev/v1alpha1\nkind: PolicyTest\nmetadata: {name: fqdn}\nspec:\n  dns:\n    - {name: api.example.com, addresses: [192.0.2.300]}\n  endpoints:\n    - {name: backend, namespace: shop, labels: {app: backend}}\n  expectations:\n    - {from: backend, to: 192.0.2.10, port: 443, protocol: TCP, expect: allow}\n",
    );
    repo.ward(&["validate", "policies/tests/fqdn.yaml"])
        .code(EXIT_ERROR)
        .stdout_has(
            "policies/tests/fqdn.yaml:6:43: error[WARD-S014]: \"192.0.2.300\" is not an IP address",
        );
}

/// A dual-stack endpoint (`ips`, as Kubernetes' podIPs): its IPv6 address is the endpoint
/// too, an IPv6 CIDR rule opens IPv6 world only, and a second address of one family is a
/// finding.
#[test]
fn dual_stack_endpoints_meet_ipv6_cidr_rules() {
    let env = Env::new();
    let repo = env.fixture_repo();
    repo.write(
        "policies/namespaces/shop/backend-to-v6.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: backend-to-v6, namespace: shop}\nspec:\n  endpointSelector: {matchLabels: {app: backend}}\n  egress:\n    - toCIDR: [\"2001:db8::/32\"]\n      toPorts: [{ports: [{port: \"443\", protocol: TCP}]}]\n",
    );
    repo.write(
        "policies/tests/dual-stack.yaml",
        "apiVersion: ward.dev/v1alpha1\nkind: PolicyTest\nmetadata: {name: dual-stack}\nspec:\n  endpoints:\n    - {name: backend, namespace: shop, labels: {app: backend}, ips: [10.0.1.20, \"fd00::1:20\"]}\n  expectations:\n    - {from: backend, to: \"2001:db8::5\", port: 443, protocol: TCP, expect: allow, decidedBy: CiliumNetworkPolicy/shop/backend-to-v6}\n    - {from: \"fd00::1:20\", to: \"2001:db8::5\", port: 443, protocol: TCP, expect: allow}\n    - {from: backend, to: 192.0.2.5, port: 443, protocol: TCP, expect: deny}\n    - {from: backend, to: \"2001:db9::5\", port: 443, protocol: TCP, expect: deny}\n",
    );
    repo.ward(&[
        "test",
        "policies/tests/dual-stack.yaml",
        "policies/namespaces",
    ])
    .code(EXIT_OK)
    .stdout_has("  ✓ backend → 2001:db8::5 TCP/443: allow, decided by CiliumNetworkPolicy/shop/backend-to-v6\n")
    .stdout_has("4 passed, 0 failed");
    repo.write(
        "policies/tests/dual-stack.yaml",
        "apiVersion: ward.dev/v1alpha1\nkind: PolicyTest\nmetadata: {name: dual-stack}\nspec:\n  endpoints:\n    - {name: backend, namespace: shop, ips: [\"fd00::1\", \"fd00::2\"]}\n  expectations:\n    - {from: backend, to: world, port: 443, expect: deny}\n",
    );
    repo.ward(&["validate", "policies/tests/dual-stack.yaml"])
        .code(EXIT_ERROR)
        .stdout_has("error[WARD-S014]: \"fd00::2\" is a second address of its family");
}

/// `host` next to a pod on no node stands for no node, so no host policy is evaluated: the
/// verdict says so, and `--strict` fails the expectation.
#[test]
fn a_side_not_evaluated_is_said_and_fails_with_strict() {
    let env = Env::new();
    let repo = env.fixture_repo();
    repo.write(
        "policies/tests/zz-loose.yaml",
        "apiVersion: ward.dev/v1alpha1\nkind: PolicyTest\nmetadata: {name: zz-loose}\nspec:\n  endpoints:\n    - {name: loose, namespace: batch, labels: {app: loose}, ip: 10.0.9.10}\n  expectations:\n    - {from: loose, to: host, port: 10250, expect: allow}\n",
    );
    let note = "not evaluated: ingress of the destination not evaluated: host is tied to no node here, so no host policy applies to it (give the other end a node, or write node:<name>)";
    repo.ward(&["test", "policies"])
        .code(EXIT_OK)
        .stdout_has("  ✓ loose → host TCP/10250: allow\n")
        .stdout_has(&format!("      {note}\n"));
    repo.ward(&["test", "policies", "--strict"])
        .code(EXIT_ERROR)
        .stdout_has("  ✗ loose → host TCP/10250: expect allow")
        .stdout_has("a side of this flow is not evaluated (--strict)");
}

/// Nodes and requests are checked like endpoints and ports: each problem with its place.
#[test]
fn bad_nodes_and_requests_get_diagnostics() {
    let env = Env::new();
    let repo = env.fixture_repo();
    repo.write(
        "policies/tests/zz-bad.yaml",
        "apiVersion: ward.dev/v1alpha1
kind: PolicyTest
metadata: {name: zz-bad}
spec:
  nodes:
    - {name: n1, ip: 10.300.0.1}
    - {name: n1}
  endpoints:
    - {name: web, namespace: shop, node: n2}
  expectations:
    - {from: web, to: \"node:n3\", port: 22, expect: deny}
    - {from: web, to: \"node:n2\", port: 53, protocol: UDP, expect: deny, http: {path: /x}}
    - {from: web, to: world, port: 80, expect: deny, http: {path: x}}
    - {from: web, to: world, port: 53, protocol: UDP, expect: deny, dns: {query: \"bad name\"}}
    - {from: web, to: world, port: 80, expect: deny, http: {}, dns: {query: a.example}}
",
    );
    let f = "policies/tests/zz-bad.yaml";
    repo.ward(&["validate", f])
        .code(EXIT_ERROR)
        .stdout_has(&format!(
            "{f}:6:22: error[WARD-S014]: \"10.300.0.1\" is not an IP address"
        ))
        .stdout_has(&format!(
            "{f}:7:14: error[WARD-S014]: node \"n1\" is declared twice"
        ))
        .stdout_has(&format!("{f}:11:23: error[WARD-S014]: unknown node \"n3\""))
        .stdout_has("hint: nodes of this test: n1, n2; or declare it under spec.nodes")
        .stdout_has("error[WARD-S014]: an HTTP request needs TCP, not UDP")
        .stdout_has("error[WARD-S014]: \"x\" is not a request path")
        .stdout_has("error[WARD-S014]: \"bad name\" is not a DNS name")
        .stdout_has("error[WARD-S014]: an expectation carries one request: http or dns, not both")
        .stdout_lacks("unknown node \"n2\"");
}
