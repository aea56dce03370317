//! A connectivity-test suite for the policy engine, laid out like Cilium's: `client`,
//! `client2` and `echo` in `cilium-test`, `echo-other-ns` in `other-ns`, nodes `node-1`
//! (client, client2) and `node-2` (echo, echo-other-ns), world addresses 203.0.113.10 and
//! 198.51.100.5. Every semantic rule of reference §4 gets allowed AND dropped flows, with the
//! rule that decided. Policies are YAML validated by ward-schema like real input.

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use common::{ccnp, cnp, suite, suite_with};
use ward_engine::{Direction, Enforcement, EngineConfig, Reason, Verdict};

const NS: &str = "cilium-test";

// ---------------------------------------------------------------------------------------
// §4.1 default deny
// ---------------------------------------------------------------------------------------

#[test]
fn without_policy_everything_is_allowed_and_says_why() {
    let s = suite(&[]);
    s.check("client", "echo", "TCP/8080", "allow");
    s.check("world", "echo", "UDP/53", "allow");
    s.check("echo", "world", "ICMP/8", "allow");
    let d = s.decide("client", "echo", "TCP/80");
    assert_eq!(d.egress.unwrap().reason, Reason::NotSelected);
    assert_eq!(d.ingress.unwrap().reason, Reason::NotSelected);
    let outside = s.decide("world", "world2", "TCP/80");
    assert!(outside.egress.is_none() && outside.ingress.is_none());
    assert_eq!(
        outside.to_string(),
        "allow: neither end is a managed endpoint"
    );
}

#[test]
fn an_ingress_policy_puts_only_ingress_into_default_deny() {
    let s = suite(&[cnp(
        "echo-ingress",
        NS,
        r#"
endpointSelector: {matchLabels: {kind: echo}}
ingress:
- fromEndpoints: [{matchLabels: {name: client}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
"#,
    )]);
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "allow by echo-ingress spec.ingress[0]",
    );
    s.check(
        "client2",
        "echo",
        "TCP/8080",
        "default-deny ingress by echo-ingress spec",
    );
    s.check(
        "client",
        "echo",
        "TCP/8081",
        "default-deny ingress by echo-ingress spec",
    );
    s.check(
        "client",
        "echo",
        "UDP/8080",
        "default-deny ingress by echo-ingress spec",
    );
    s.check(
        "world",
        "echo",
        "TCP/8080",
        "default-deny ingress by echo-ingress spec",
    );
    // Egress of echo is untouched, and echo-other-ns (another namespace) is not selected.
    s.check("echo", "client", "TCP/8080", "allow");
    assert_eq!(
        s.direction("echo", "world", "TCP/80", Direction::Egress)
            .reason,
        Reason::NotEnforced
    );
    s.check("client", "echo-other-ns", "TCP/8080", "allow");
    assert_eq!(
        s.direction("client", "echo-other-ns", "TCP/80", Direction::Ingress)
            .reason,
        Reason::NotSelected
    );
}

#[test]
fn an_egress_policy_puts_only_egress_into_default_deny() {
    let s = suite(&[cnp(
        "client-egress",
        NS,
        r#"
endpointSelector: {matchLabels: {name: client}}
egress:
- toEndpoints: [{matchLabels: {kind: echo}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
"#,
    )]);
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "allow by client-egress spec.egress[0]",
    );
    s.check(
        "client",
        "echo",
        "TCP/9090",
        "default-deny egress by client-egress spec",
    );
    s.check(
        "client",
        "world",
        "TCP/8080",
        "default-deny egress by client-egress spec",
    );
    s.check("client2", "world", "TCP/8080", "allow");
    s.check("echo", "client", "TCP/8080", "allow");
}

#[test]
fn a_deny_only_policy_still_enables_default_deny() {
    let s = suite(&[cnp(
        "echo-deny",
        NS,
        r#"
endpointSelector: {matchLabels: {kind: echo}}
ingressDeny:
- fromEndpoints: [{matchLabels: {name: client2}}]
"#,
    )]);
    s.check(
        "client2",
        "echo",
        "TCP/8080",
        "deny by echo-deny spec.ingressDeny[0]",
    );
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "default-deny ingress by echo-deny spec",
    );
    s.check("echo", "client", "TCP/8080", "allow");
}

#[test]
fn enable_default_deny_false_only_adds_or_subtracts() {
    let deny = ccnp(
        "deny-client2",
        r#"
endpointSelector: {matchLabels: {kind: echo}}
enableDefaultDeny: {ingress: false}
ingressDeny:
- fromEndpoints: [{matchLabels: {name: client2}}]
"#,
    );
    let s = suite(std::slice::from_ref(&deny));
    s.check(
        "client2",
        "echo",
        "TCP/8080",
        "deny by deny-client2 spec.ingressDeny[0]",
    );
    s.check(
        "client2",
        "echo-other-ns",
        "TCP/8080",
        "deny by deny-client2 spec.ingressDeny[0]",
    );
    s.check("client", "echo", "TCP/8080", "allow");
    assert_eq!(
        s.direction("client", "echo", "TCP/8080", Direction::Ingress)
            .reason,
        Reason::NotEnforced
    );

    // An allow rule with enableDefaultDeny false adds to the union but never drops anything.
    let observe = cnp(
        "observe",
        NS,
        r#"
endpointSelector: {matchLabels: {kind: echo}}
enableDefaultDeny: {ingress: false}
ingress:
- fromEndpoints: [{matchLabels: {name: client}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
"#,
    );
    let s = suite(std::slice::from_ref(&observe));
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "allow by observe spec.ingress[0]",
    );
    s.check("client", "echo", "TCP/9999", "allow");
    let lock = cnp(
        "echo-80",
        NS,
        r#"
endpointSelector: {matchLabels: {kind: echo}}
ingress:
- fromEndpoints: [{matchLabels: {name: client2}}]
  toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#,
    );
    let s = suite(&[observe, lock]);
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "allow by observe spec.ingress[0]",
    );
    s.check(
        "client2",
        "echo",
        "TCP/80",
        "allow by echo-80 spec.ingress[0]",
    );
    s.check(
        "client",
        "echo",
        "TCP/9999",
        "default-deny ingress by echo-80 spec",
    );
}

#[test]
fn without_non_default_deny_policies_enable_default_deny_is_ignored() {
    let deny = ccnp(
        "deny-client2",
        r#"
endpointSelector: {matchLabels: {kind: echo}}
enableDefaultDeny: {ingress: false}
ingressDeny:
- fromEndpoints: [{matchLabels: {name: client2}}]
"#,
    );
    let config = EngineConfig {
        non_default_deny_policies: false,
        ..EngineConfig::default()
    };
    let s = suite_with(&[deny], config);
    s.check(
        "client2",
        "echo",
        "TCP/8080",
        "deny by deny-client2 spec.ingressDeny[0]",
    );
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "default-deny ingress by deny-client2 spec",
    );
    s.check("echo", "client", "TCP/8080", "allow");
}

#[test]
fn an_empty_rule_is_the_deny_all_idiom() {
    let s = suite(&[
        cnp(
            "echo-lockdown",
            NS,
            "endpointSelector: {matchLabels: {kind: echo}}\ningress: [{}]\n",
        ),
        cnp(
            "client-lockdown",
            NS,
            "endpointSelector: {matchLabels: {name: client}}\negress: [{}]\n",
        ),
    ]);
    s.check(
        "client2",
        "echo",
        "TCP/8080",
        "default-deny ingress by echo-lockdown spec",
    );
    s.check(
        "world",
        "echo",
        "ICMP/8",
        "default-deny ingress by echo-lockdown spec",
    );
    // The local host (echo runs on node-2) still reaches it (allow-localhost); node-1 does not.
    s.check("host2", "echo", "TCP/8080", "allow");
    assert_eq!(
        s.direction("host2", "echo", "TCP/8080", Direction::Ingress)
            .reason,
        Reason::LocalHost
    );
    s.check(
        "host1",
        "echo",
        "TCP/8080",
        "default-deny ingress by echo-lockdown spec",
    );
    s.check("echo", "world", "TCP/443", "allow");
    s.check(
        "client",
        "world",
        "TCP/443",
        "default-deny egress by client-lockdown spec",
    );
    s.check(
        "client",
        "client2",
        "TCP/443",
        "default-deny egress by client-lockdown spec",
    );
    s.check("client2", "client", "TCP/443", "allow");
}

#[test]
fn policy_enforcement_modes() {
    let always = EngineConfig {
        enforcement: Enforcement::Always,
        ..EngineConfig::default()
    };
    let s = suite_with(&[], always);
    s.check("client", "echo", "TCP/8080", "default-deny egress");
    s.check("world", "echo", "TCP/8080", "default-deny ingress");
    let deny = cnp(
        "echo-deny",
        NS,
        "endpointSelector: {}\ningressDeny: [{fromEntities: [world]}]\n",
    );
    let never = EngineConfig {
        enforcement: Enforcement::Never,
        ..EngineConfig::default()
    };
    let s = suite_with(&[deny], never);
    s.check("world", "echo", "TCP/8080", "allow");
    assert_eq!(
        s.direction("world", "echo", "TCP/8080", Direction::Ingress)
            .reason,
        Reason::EnforcementDisabled
    );
}

// ---------------------------------------------------------------------------------------
// §4.2 allow/deny combination
// ---------------------------------------------------------------------------------------

#[test]
fn allows_are_unioned_across_policies() {
    let s = suite(&[
        cnp(
            "a",
            NS,
            r#"
endpointSelector: {matchLabels: {kind: echo}}
ingress:
- fromEndpoints: [{matchLabels: {name: client}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
"#,
        ),
        ccnp(
            "b",
            r#"
endpointSelector: {matchLabels: {name: echo}}
ingress:
- fromEndpoints: [{matchLabels: {name: client2}}]
  toPorts: [{ports: [{port: "9090", protocol: TCP}]}]
"#,
        ),
        cnp(
            "c",
            NS,
            r#"
endpointSelector: {matchLabels: {name: echo}}
ingress:
- fromEntities: [world]
  toPorts: [{ports: [{port: "443", protocol: TCP}]}]
"#,
        ),
    ]);
    s.check("client", "echo", "TCP/8080", "allow by a spec.ingress[0]");
    s.check("client2", "echo", "TCP/9090", "allow by b spec.ingress[0]");
    s.check("world", "echo", "TCP/443", "allow by c spec.ingress[0]");
    // Cluster-wide policies sort first, so CCNP b is named as enabling default deny.
    s.check(
        "client",
        "echo",
        "TCP/9090",
        "default-deny ingress by b spec",
    );
    s.check(
        "client2",
        "echo",
        "TCP/8080",
        "default-deny ingress by b spec",
    );
    s.check(
        "world",
        "echo",
        "TCP/8080",
        "default-deny ingress by b spec",
    );
}

#[test]
fn deny_beats_allow_across_cnp_and_ccnp() {
    let s = suite(&[
        cnp(
            "allow-all-to-echo",
            NS,
            "endpointSelector: {matchLabels: {kind: echo}}\ningress: [{fromEndpoints: [{}]}]\n",
        ),
        ccnp(
            "deny-client-8080",
            r#"
endpointSelector: {matchLabels: {kind: echo}}
enableDefaultDeny: {ingress: false}
ingressDeny:
- fromEndpoints: [{matchLabels: {name: client}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
"#,
        ),
        cnp(
            "client-egress-deny",
            NS,
            r#"
endpointSelector: {matchLabels: {name: client}}
egressDeny:
- toEndpoints: [{matchLabels: {name: echo}}]
  toPorts: [{ports: [{port: "9000", endPort: 9100, protocol: TCP}]}]
"#,
        ),
        ccnp(
            "client-egress-allow",
            "endpointSelector: {matchLabels: {kind: client}}\negress: [{toEndpoints: [{}]}]\n",
        ),
    ]);
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "deny by deny-client-8080 spec.ingressDeny[0]",
    );
    s.check(
        "client",
        "echo",
        "TCP/8081",
        "allow by allow-all-to-echo spec.ingress[0]",
    );
    s.check(
        "client2",
        "echo",
        "TCP/8080",
        "allow by allow-all-to-echo spec.ingress[0]",
    );
    s.check(
        "client",
        "echo",
        "TCP/9050",
        "deny by client-egress-deny spec.egressDeny[0]",
    );
    s.check(
        "client",
        "echo",
        "TCP/9101",
        "allow by allow-all-to-echo spec.ingress[0]",
    );
    s.check(
        "client2",
        "echo",
        "TCP/9050",
        "allow by allow-all-to-echo spec.ingress[0]",
    );
    assert_eq!(
        s.decide("client", "echo", "TCP/9050").direction,
        Some(Direction::Egress)
    );
}

#[test]
fn both_directions_must_allow() {
    let s = suite(&[
        cnp(
            "client-egress",
            NS,
            r#"
endpointSelector: {matchLabels: {name: client}}
egress:
- toEndpoints: [{matchLabels: {name: echo}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
"#,
        ),
        cnp(
            "echo-ingress",
            NS,
            r#"
endpointSelector: {matchLabels: {name: echo}}
ingress:
- fromEndpoints: [{matchLabels: {name: client2}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
"#,
        ),
    ]);
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "default-deny ingress by echo-ingress spec",
    );
    let d = s.decide("client", "echo", "TCP/8080");
    assert_eq!(d.egress.unwrap().verdict, Verdict::Allow);
    s.check(
        "client2",
        "echo",
        "TCP/8080",
        "allow by echo-ingress spec.ingress[0]",
    );
    s.check(
        "client",
        "echo",
        "TCP/9090",
        "default-deny egress by client-egress spec",
    );
}

#[test]
fn absent_empty_and_wildcard_peer_lists() {
    let s = suite(&[cnp(
        "l4-only",
        NS,
        r#"
endpointSelector: {matchLabels: {name: echo}}
ingress:
- toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
- fromEndpoints: []
  toPorts: [{ports: [{port: "9090", protocol: TCP}]}]
"#,
    )]);
    // fromEndpoints absent + toPorts: any peer, the world and other namespaces included.
    for peer in [
        "client",
        "echo-other-ns",
        "world",
        "host1",
        "reserved:health",
    ] {
        s.check(peer, "echo", "TCP/8080", "allow by l4-only spec.ingress[0]");
    }
    // fromEndpoints: [] selects no peer at all.
    for peer in ["client", "echo-other-ns", "world"] {
        s.check(
            peer,
            "echo",
            "TCP/9090",
            "default-deny ingress by l4-only spec",
        );
    }
}

// ---------------------------------------------------------------------------------------
// §4.3 namespace and cluster scoping
// ---------------------------------------------------------------------------------------

#[test]
fn a_cnp_subject_is_confined_to_the_policy_namespace() {
    let s = suite(&[
        cnp(
            "echo-only",
            NS,
            r#"
endpointSelector: {matchLabels: {kind: echo, "k8s:io.kubernetes.pod.namespace": other-ns}}
ingress:
- fromEndpoints: [{matchLabels: {name: client}}]
"#,
        ),
        cnp(
            "nothing",
            NS,
            r#"
endpointSelector: {matchLabels: {"io.kubernetes.pod.namespace": other-ns}}
ingress: [{}]
"#,
        ),
    ]);
    // The k8s: namespace key was overwritten: echo in cilium-test is selected, other-ns is not.
    s.check(
        "client2",
        "echo",
        "TCP/8080",
        "default-deny ingress by echo-only spec",
    );
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "allow by echo-only spec.ingress[0]",
    );
    s.check("client2", "echo-other-ns", "TCP/8080", "allow");
    // A source-less namespace key is ANDed with the policy's namespace: it selects nothing.
    let other = s.repo.endpoint_id("other-ns/echo-other-ns").unwrap();
    assert!(
        s.repo
            .endpoint_policy(other)
            .unwrap()
            .selected_by()
            .is_empty()
    );
    let echo = s.repo.endpoint_id("cilium-test/echo").unwrap();
    let names: Vec<String> = s
        .repo
        .endpoint_policy(echo)
        .unwrap()
        .selected_by()
        .iter()
        .map(|r| r.policy.name.clone())
        .collect();
    assert_eq!(names, ["echo-only"]);
}

#[test]
fn cnp_peers_default_to_the_policy_namespace() {
    let s = suite(&[
        cnp(
            "echo-from-clients",
            NS,
            "endpointSelector: {matchLabels: {name: echo}}\ningress: [{fromEndpoints: [{matchLabels: {kind: client}}]}]\n",
        ),
        cnp(
            "other-from-clients",
            "other-ns",
            "endpointSelector: {matchLabels: {kind: echo}}\ningress: [{fromEndpoints: [{matchLabels: {kind: client}}]}]\n",
        ),
    ]);
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "allow by echo-from-clients spec.ingress[0]",
    );
    s.check(
        "client",
        "echo-other-ns",
        "TCP/8080",
        "default-deny ingress by other-from-clients spec",
    );
}

#[test]
fn a_wildcard_peer_is_the_namespace_in_a_cnp_and_every_pod_in_a_ccnp() {
    let s = suite(&[cnp(
        "same-ns",
        NS,
        "endpointSelector: {matchLabels: {name: echo}}\ningress: [{fromEndpoints: [{}]}]\n",
    )]);
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "allow by same-ns spec.ingress[0]",
    );
    for peer in ["echo-other-ns", "world", "host1", "reserved:health"] {
        s.check(
            peer,
            "echo",
            "TCP/8080",
            "default-deny ingress by same-ns spec",
        );
    }
    let s = suite(&[ccnp(
        "all-pods",
        "endpointSelector: {matchLabels: {name: echo}}\ningress: [{fromEndpoints: [{}]}]\n",
    )]);
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "allow by all-pods spec.ingress[0]",
    );
    s.check(
        "echo-other-ns",
        "echo",
        "TCP/8080",
        "allow by all-pods spec.ingress[0]",
    );
    for peer in [
        "world",
        "host1",
        "reserved:health",
        "reserved:kube-apiserver",
    ] {
        s.check(
            peer,
            "echo",
            "TCP/8080",
            "default-deny ingress by all-pods spec",
        );
    }
}

#[test]
fn peers_may_name_another_namespace() {
    let s = suite(&[cnp(
        "by-name",
        NS,
        r#"
endpointSelector: {matchLabels: {name: echo}}
ingress:
- fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": other-ns}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
- fromEndpoints: [{matchLabels: {"io.cilium.k8s.namespace.labels.team": other}}]
  toPorts: [{ports: [{port: "9090", protocol: TCP}]}]
"#,
    )]);
    s.check(
        "echo-other-ns",
        "echo",
        "TCP/8080",
        "allow by by-name spec.ingress[0]",
    );
    s.check(
        "echo-other-ns",
        "echo",
        "TCP/9090",
        "allow by by-name spec.ingress[1]",
    );
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "default-deny ingress by by-name spec",
    );
    s.check(
        "client",
        "echo",
        "TCP/9090",
        "default-deny ingress by by-name spec",
    );
}

#[test]
fn reserved_keys_are_exempt_from_namespace_scoping() {
    let s = suite(&[cnp(
        "reserved-peers",
        NS,
        r#"
endpointSelector: {matchLabels: {name: echo}}
ingress:
- fromEndpoints: [{matchLabels: {"reserved:remote-node": ""}}]
- fromEndpoints: [{matchLabels: {"reserved:world": ""}}]
  toPorts: [{ports: [{port: "443", protocol: TCP}]}]
"#,
    )]);
    // echo runs on node-2, so node-1's address is a remote node.
    s.check(
        "host1",
        "echo",
        "TCP/10250",
        "allow by reserved-peers spec.ingress[0]",
    );
    s.check(
        "world",
        "echo",
        "TCP/443",
        "allow by reserved-peers spec.ingress[1]",
    );
    s.check(
        "world",
        "echo",
        "TCP/80",
        "default-deny ingress by reserved-peers spec",
    );
    s.check(
        "client",
        "echo",
        "TCP/443",
        "default-deny ingress by reserved-peers spec",
    );
}

#[test]
fn a_ccnp_with_an_init_subject_keeps_its_peers_unscoped() {
    let s = suite(&[ccnp(
        "init-egress",
        r#"
endpointSelector: {matchLabels: {"reserved:init": ""}}
egress: [{toEndpoints: [{}]}]
"#,
    )]);
    s.check(
        "reserved:init",
        "world",
        "TCP/443",
        "allow by init-egress spec.egress[0]",
    );
    s.check(
        "reserved:init",
        "echo",
        "TCP/8080",
        "allow by init-egress spec.egress[0]",
    );
    s.check("client", "world", "TCP/443", "allow");
}

#[test]
fn node_selector_rules_select_only_hosts_and_endpoint_selector_rules_never_do() {
    let s = suite(&[
        ccnp(
            "host-ssh",
            r#"
nodeSelector: {matchLabels: {zone: b}}
ingress:
- fromEntities: [cluster]
  toPorts: [{ports: [{port: "22", protocol: TCP}]}]
"#,
        ),
        ccnp(
            "lock-all-endpoints",
            "endpointSelector: {}\ningress: [{}]\n",
        ),
    ]);
    s.check(
        "client",
        "host2",
        "TCP/22",
        "allow by host-ssh spec.ingress[0]",
    );
    s.check(
        "world",
        "host2",
        "TCP/22",
        "default-deny ingress by host-ssh spec",
    );
    s.check("world", "host1", "TCP/22", "allow");
    s.check(
        "world",
        "echo",
        "TCP/22",
        "default-deny ingress by lock-all-endpoints spec",
    );
}

// ---------------------------------------------------------------------------------------
// Entities (§2) and reserved identities (§4.5)
// ---------------------------------------------------------------------------------------

#[test]
fn entities_select_their_reserved_identities() {
    // client runs on node-1: host1 is its host, host2 a remote node.
    let all = [
        "echo",
        "echo-other-ns",
        "world",
        "world2",
        "host1",
        "host2",
        "reserved:health",
        "reserved:kube-apiserver",
        "reserved:ingress",
    ];
    let cases: [(&str, &[&str]); 8] = [
        ("world", &["world", "world2"]),
        (
            "cluster",
            &[
                "echo",
                "echo-other-ns",
                "host1",
                "host2",
                "reserved:health",
                "reserved:kube-apiserver",
                "reserved:ingress",
            ],
        ),
        ("host", &["host1"]),
        ("remote-node", &["host2"]),
        ("all", &all),
        ("none", &[]),
        ("kube-apiserver", &["reserved:kube-apiserver"]),
        ("health", &["reserved:health"]),
    ];
    for (entity, allowed) in cases {
        let s = suite(&[cnp(
            "client-egress",
            NS,
            &format!(
                "endpointSelector: {{matchLabels: {{name: client}}}}\negress: [{{toEntities: [{entity}]}}]\n"
            ),
        )]);
        for peer in all {
            let want = if allowed.contains(&peer) {
                "allow by client-egress spec.egress[0]"
            } else {
                "default-deny egress by client-egress spec"
            };
            s.check("client", peer, "TCP/443", want);
        }
    }
    let s = suite(&[cnp(
        "from-world",
        NS,
        "endpointSelector: {matchLabels: {name: echo}}\ningress: [{fromEntities: [world]}]\n",
    )]);
    s.check(
        "world2",
        "echo",
        "UDP/53",
        "allow by from-world spec.ingress[0]",
    );
    s.check(
        "client",
        "echo",
        "UDP/53",
        "default-deny ingress by from-world spec",
    );
    assert_eq!(
        s.direction("world2", "echo", "UDP/53", Direction::Ingress)
            .remote
            .0,
        2
    );
    assert_eq!(
        s.direction("host1", "echo", "UDP/53", Direction::Ingress)
            .remote
            .0,
        6
    );
    assert_eq!(
        s.direction("host2", "echo", "UDP/53", Direction::Ingress)
            .remote
            .0,
        1
    );
}

// ---------------------------------------------------------------------------------------
// CIDR peers
// ---------------------------------------------------------------------------------------

#[test]
fn cidr_peers_match_world_addresses_by_containment_but_never_pods() {
    let s = suite(&[cnp(
        "client-cidr",
        NS,
        r#"
endpointSelector: {matchLabels: {name: client}}
egress:
- toCIDR: [203.0.113.0/24]
- toCIDR: [10.1.0.0/16]
"#,
    )]);
    s.check(
        "client",
        "world",
        "TCP/443",
        "allow by client-cidr spec.egress[0]",
    );
    s.check(
        "client",
        "world2",
        "TCP/443",
        "default-deny egress by client-cidr spec",
    );
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "default-deny egress by client-cidr spec",
    );
    s.check(
        "client",
        "10.1.200.1",
        "TCP/8080",
        "allow by client-cidr spec.egress[1]",
    );
}

#[test]
fn cidr_sets_honour_except() {
    let s = suite(&[cnp(
        "client-cidrset",
        NS,
        r#"
endpointSelector: {matchLabels: {name: client}}
egress:
- toCIDRSet: [{cidr: 0.0.0.0/0, except: [203.0.113.0/24]}]
"#,
    )]);
    s.check(
        "client",
        "world2",
        "TCP/443",
        "allow by client-cidrset spec.egress[0]",
    );
    s.check(
        "client",
        "world",
        "TCP/443",
        "default-deny egress by client-cidrset spec",
    );
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "default-deny egress by client-cidrset spec",
    );
    s.check(
        "client",
        "host2",
        "TCP/8080",
        "default-deny egress by client-cidrset spec",
    );
    let s = suite(&[
        cnp(
            "echo-from-world",
            NS,
            "endpointSelector: {matchLabels: {name: echo}}\ningress: [{fromEntities: [world]}]\n",
        ),
        ccnp(
            "deny-range",
            r#"
endpointSelector: {matchLabels: {name: echo}}
enableDefaultDeny: {ingress: false}
ingressDeny:
- fromCIDRSet: [{cidr: 198.51.100.0/24}]
"#,
        ),
    ]);
    s.check(
        "world",
        "echo",
        "TCP/80",
        "allow by echo-from-world spec.ingress[0]",
    );
    s.check(
        "world2",
        "echo",
        "TCP/80",
        "deny by deny-range spec.ingressDeny[0]",
    );
}

// ---------------------------------------------------------------------------------------
// Layer 4
// ---------------------------------------------------------------------------------------

#[test]
fn port_ranges_with_end_port() {
    let s = suite(&[cnp(
        "range",
        NS,
        r#"
endpointSelector: {matchLabels: {name: echo}}
ingress:
- fromEndpoints: [{matchLabels: {name: client}}]
  toPorts: [{ports: [{port: "8000", endPort: 8100, protocol: TCP}]}]
ingressDeny:
- fromEndpoints: [{matchLabels: {name: client}}]
  toPorts: [{ports: [{port: "8050", endPort: 8060, protocol: TCP}]}]
"#,
    )]);
    for port in [8000, 8049, 8061, 8100] {
        s.check(
            "client",
            "echo",
            &format!("TCP/{port}"),
            "allow by range spec.ingress[0]",
        );
    }
    for port in [8050, 8055, 8060] {
        s.check(
            "client",
            "echo",
            &format!("TCP/{port}"),
            "deny by range spec.ingressDeny[0]",
        );
    }
    for l4 in ["TCP/7999", "TCP/8101", "UDP/8080"] {
        s.check("client", "echo", l4, "default-deny ingress by range spec");
    }
}

#[test]
fn port_zero_is_every_port_of_its_protocol() {
    let s = suite(&[cnp(
        "tcp-any",
        NS,
        r#"
endpointSelector: {matchLabels: {name: echo}}
ingress:
- fromEndpoints: [{matchLabels: {name: client}}]
  toPorts: [{ports: [{port: "0", protocol: TCP}]}]
"#,
    )]);
    s.check(
        "client",
        "echo",
        "TCP/1",
        "allow by tcp-any spec.ingress[0]",
    );
    s.check(
        "client",
        "echo",
        "TCP/65535",
        "allow by tcp-any spec.ingress[0]",
    );
    s.check(
        "client",
        "echo",
        "UDP/53",
        "default-deny ingress by tcp-any spec",
    );
    s.check(
        "client",
        "echo",
        "ICMP/8",
        "default-deny ingress by tcp-any spec",
    );
}

#[test]
fn any_expands_to_tcp_udp_and_sctp_but_not_icmp() {
    let s = suite(&[cnp(
        "dns",
        NS,
        r#"
endpointSelector: {matchLabels: {name: echo}}
ingress:
- fromEndpoints: [{matchLabels: {name: client}}]
  toPorts: [{ports: [{port: "53"}, {port: "5353", protocol: ANY}]}]
- fromEndpoints: [{matchLabels: {name: client2}}]
"#,
    )]);
    for l4 in ["TCP/53", "UDP/53", "SCTP/53", "UDP/5353", "SCTP/5353"] {
        s.check("client", "echo", l4, "allow by dns spec.ingress[0]");
    }
    for l4 in ["ICMP/53", "TCP/54", "VRRP/0"] {
        s.check("client", "echo", l4, "default-deny ingress by dns spec");
    }
    // An entry without toPorts allows every protocol, ICMP and VRRP included.
    for l4 in ["ICMP/8", "VRRP/0", "TCP/1"] {
        s.check("client2", "echo", l4, "allow by dns spec.ingress[1]");
    }
}

#[test]
fn icmp_types_are_matched_per_family() {
    let s = suite(&[cnp(
        "ping",
        NS,
        r#"
endpointSelector: {matchLabels: {name: echo}}
ingress:
- fromEndpoints: [{matchLabels: {name: client}}]
  icmps: [{fields: [{type: 8}, {family: IPv6, type: EchoRequest}]}]
- fromEndpoints: [{matchLabels: {name: client2}}]
ingressDeny:
- fromEndpoints: [{matchLabels: {name: client2}}]
  icmps: [{fields: [{type: EchoRequest}]}]
"#,
    )]);
    s.check("client", "echo", "ICMP/8", "allow by ping spec.ingress[0]");
    s.check(
        "client",
        "echo",
        "ICMPv6/128",
        "allow by ping spec.ingress[0]",
    );
    for l4 in ["ICMP/0", "ICMPv6/129", "TCP/8"] {
        s.check("client", "echo", l4, "default-deny ingress by ping spec");
    }
    s.check(
        "client2",
        "echo",
        "ICMP/8",
        "deny by ping spec.ingressDeny[0]",
    );
    s.check("client2", "echo", "TCP/80", "allow by ping spec.ingress[1]");
}

#[test]
fn named_ports_resolve_against_the_destination_endpoint() {
    // echo declares http=8080/TCP and dns=53/UDP; echo-other-ns declares http=9090/TCP.
    let s = suite(&[ccnp(
        "client-to-http",
        r#"
endpointSelector: {matchLabels: {name: client}}
egress:
- toEndpoints: [{matchLabels: {kind: echo}}]
  toPorts: [{ports: [{port: http, protocol: TCP}, {port: dns, protocol: UDP}]}]
"#,
    )]);
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "allow by client-to-http spec.egress[0]",
    );
    s.check(
        "client",
        "echo",
        "UDP/53",
        "allow by client-to-http spec.egress[0]",
    );
    s.check(
        "client",
        "echo-other-ns",
        "TCP/9090",
        "allow by client-to-http spec.egress[0]",
    );
    s.check(
        "client",
        "echo",
        "TCP/9090",
        "default-deny egress by client-to-http spec",
    );
    s.check(
        "client",
        "echo-other-ns",
        "TCP/8080",
        "default-deny egress by client-to-http spec",
    );
    s.check(
        "client",
        "echo",
        "TCP/53",
        "default-deny egress by client-to-http spec",
    );
    let s = suite(&[cnp(
        "echo-http",
        NS,
        r#"
endpointSelector: {matchLabels: {name: echo}}
ingress:
- fromEndpoints: [{matchLabels: {name: client}}]
  toPorts: [{ports: [{port: http}]}]
"#,
    )]);
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "allow by echo-http spec.ingress[0]",
    );
    s.check(
        "client",
        "echo",
        "TCP/80",
        "default-deny ingress by echo-http spec",
    );
}

#[test]
fn l7_rules_count_as_their_l4_allow_and_are_flagged() {
    let s = suite(&[cnp(
        "echo-http-get",
        NS,
        r#"
endpointSelector: {matchLabels: {name: echo}}
ingress:
- fromEndpoints: [{matchLabels: {name: client}}]
  toPorts:
  - ports: [{port: "8080", protocol: TCP}]
    rules:
      http: [{method: GET, path: "/public"}]
- fromEndpoints: [{matchLabels: {name: client2}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
"#,
    )]);
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "allow by echo-http-get spec.ingress[0]",
    );
    let ingress = s.direction("client", "echo", "TCP/8080", Direction::Ingress);
    assert!(ingress.l7_not_enforced);
    assert!(
        ingress.to_string().contains("L7 rules are not enforced"),
        "{ingress}"
    );
    assert!(
        !s.direction("client2", "echo", "TCP/8080", Direction::Ingress)
            .l7_not_enforced
    );
    s.check(
        "client",
        "echo",
        "TCP/8081",
        "default-deny ingress by echo-http-get spec",
    );
}

#[test]
fn peers_that_need_a_live_cluster_match_nothing_and_say_so() {
    let s = suite(&[cnp(
        "client-fqdn",
        NS,
        r#"
endpointSelector: {matchLabels: {name: client}}
egress:
- toFQDNs: [{matchName: example.com}]
  toPorts: [{ports: [{port: "443", protocol: TCP}]}]
- toServices: [{k8sService: {serviceName: echo, namespace: cilium-test}}]
"#,
    )]);
    s.check(
        "client",
        "world",
        "TCP/443",
        "default-deny egress by client-fqdn spec",
    );
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "default-deny egress by client-fqdn spec",
    );
    let notes: Vec<String> = s
        .repo
        .notes()
        .map(|n| format!("{}: {}", n.rule.path(), n.message))
        .collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].starts_with("spec.egress[0]: toFQDNs"), "{notes:?}");
    assert!(
        notes[1].starts_with("spec.egress[1]: toServices"),
        "{notes:?}"
    );
}

#[test]
fn the_decision_explains_itself() {
    let s = suite(&[cnp(
        "echo-deny",
        NS,
        "endpointSelector: {matchLabels: {name: echo}}\ningressDeny: [{fromEndpoints: [{matchLabels: {name: client}}]}]\n",
    )]);
    let d = s.decide("client", "echo", "TCP/8080");
    let text = d.to_string();
    assert!(text.starts_with("deny\n"), "{text}");
    assert!(text.contains("egress of the source"), "{text}");
    assert!(
        text.contains("denied by CiliumNetworkPolicy/cilium-test/echo-deny spec.ingressDeny[0]"),
        "{text}"
    );
    let d = s.decide("client2", "echo", "TCP/8080");
    assert!(
        d.to_string().contains(
            "CiliumNetworkPolicy/cilium-test/echo-deny spec enables ingress default deny"
        ),
        "{d}"
    );
}

#[test]
fn peers_are_scoped_to_the_local_cluster() {
    let docs = [ccnp(
        "echo-from-pods",
        r#"
endpointSelector: {matchLabels: {name: echo}}
ingress:
- fromEndpoints: [{}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
- fromEndpoints: [{matchLabels: {"io.cilium.k8s.policy.cluster": remote-cluster}}]
  toPorts: [{ports: [{port: "9090", protocol: TCP}]}]
- fromEntities: [cluster]
  toPorts: [{ports: [{port: "7070", protocol: TCP}]}]
"#,
    )];
    let config = EngineConfig {
        cluster_name: "eu-1".into(),
        ..EngineConfig::default()
    };
    let s = suite_with(&docs, config);
    s.check(
        "client",
        "echo",
        "TCP/8080",
        "allow by echo-from-pods spec.ingress[0]",
    );
    s.check(
        "client",
        "echo",
        "TCP/7070",
        "allow by echo-from-pods spec.ingress[2]",
    );
    // No pod of this cluster carries another cluster's label.
    s.check(
        "client",
        "echo",
        "TCP/9090",
        "default-deny ingress by echo-from-pods spec",
    );
    let echo = s.repo.endpoint_id("cilium-test/echo").unwrap();
    let labels = s.repo.endpoint_policy(echo).unwrap().labels().to_string();
    assert!(
        labels.contains("k8s:io.cilium.k8s.policy.cluster=eu-1"),
        "{labels}"
    );
}
