//! `ward explain`: the verdict for one flow with the chain of reasons per direction, the
//! deciding rule with its file and line, on the repository's test endpoints plus the ones
//! named on the command line.

mod util;

use util::{EXIT_ERROR, EXIT_OK, Env};

const BACKEND_INGRESS: &str = "policies/namespaces/shop/backend-ingress.yaml:7";

#[test]
fn frontend_to_backend_is_allowed_by_backend_ingress() {
    let env = Env::new();
    let repo = env.fixture_repo();
    let run = repo.ward(&[
        "explain",
        "--from",
        "shop/app=frontend",
        "--to",
        "shop/app=backend",
        "--port",
        "80/TCP",
    ]);
    run.code(EXIT_OK)
        .stdout_has("shop/app=frontend → shop/app=backend TCP/80: allow\n")
        .stdout_has(&format!("decided by CiliumNetworkPolicy/shop/backend-ingress spec.ingress[0] ({BACKEND_INGRESS})\n"))
        .stdout_has("\negress of shop/app=frontend (identity ")
        .stdout_has("  default deny: on (CiliumNetworkPolicy/shop/frontend-egress spec enables egress default deny)\n")
        .stdout_has("  decision:     ✓ allowed by CiliumNetworkPolicy/shop/frontend-egress spec.egress[0] (policies/namespaces/shop/frontend-egress.yaml:13)\n")
        .stdout_has("\ningress of shop/app=backend (identity ")
        .stdout_has(&format!("  rules:        CiliumNetworkPolicy/shop/backend-ingress spec ({BACKEND_INGRESS})\n"))
        .stdout_has(&format!("  decision:     ✓ allowed by CiliumNetworkPolicy/shop/backend-ingress spec.ingress[0] ({BACKEND_INGRESS})\n"));
    // The egress chain comes before the ingress chain.
    let (e, i) = (
        run.stdout.find("\negress of"),
        run.stdout.find("\ningress of"),
    );
    run.check(
        e.is_some() && e < i,
        "egress of the source, then ingress of the destination",
    );

    // The endpoints the PolicyTests declare can be named directly, with the same verdict.
    repo.ward(&[
        "explain",
        "--from",
        "frontend",
        "--to",
        "shop/backend",
        "--port",
        "http/TCP",
    ])
    .code(EXIT_OK)
    .stdout_has("shop/frontend → shop/backend TCP/80: allow\n");
}

#[test]
fn admin_to_backend_is_dropped_by_default_deny() {
    let env = Env::new();
    let repo = env.fixture_repo();
    let run = repo.ward(&[
        "explain",
        "--from",
        "shop/app=admin",
        "--to",
        "shop/app=backend",
        "--port",
        "80/TCP",
    ]);
    run.code(EXIT_OK)
        .stdout_has("shop/app=admin → shop/app=backend TCP/80: default-deny\n")
        .stdout_has(&format!("decided by CiliumNetworkPolicy/shop/backend-ingress spec ({BACKEND_INGRESS})\n"))
        .stdout_has("  decision:     ✓ allowed: no rule selecting this endpoint enables egress default deny, and no deny rule matches\n")
        .stdout_has("  default deny: on (CiliumNetworkPolicy/shop/backend-ingress spec enables ingress default deny)\n")
        .stdout_has(&format!(
            "  decision:     ✗ default deny: no rule allows it (CiliumNetworkPolicy/shop/backend-ingress spec enables ingress default deny) ({BACKEND_INGRESS})\n"
        ));

    let json = repo.ward(&[
        "explain",
        "--from",
        "shop/app=admin",
        "--to",
        "shop/app=backend",
        "--port",
        "80/TCP",
        "--format",
        "json",
    ]);
    let doc = json.code(EXIT_OK).json();
    json.check(
        doc["verdict"] == "default-deny" && doc["allowed"] == false,
        "the verdict",
    )
    .check(
        doc["decidedBy"]["policy"] == "CiliumNetworkPolicy/shop/backend-ingress",
        "the deciding policy",
    )
    .check(
        doc["decidedBy"]["origin"] == BACKEND_INGRESS,
        "its file and line",
    )
    .check(
        doc["ingress"]["reason"] == "no-allow-matches" && doc["egress"]["reason"] == "not-enforced",
        "the reasons",
    )
    .check(
        doc["chain"].as_array().map(Vec::len) == Some(2),
        "both directions are explained",
    )
    .check(
        doc["from"]["kind"] == "endpoint" && doc["from"]["name"] == "shop/app=admin",
        "the source",
    );
}

#[test]
fn entities_cidrs_and_l7_notes() {
    let env = Env::new();
    let repo = env.fixture_repo();
    repo.ward(&["explain", "--from", "shop/app=frontend", "--to", "world", "--port", "443/TCP"])
        .code(EXIT_OK)
        .stdout_has("shop/app=frontend → world (203.0.113.10) TCP/443: deny\n")
        .stdout_has("decided by CiliumClusterwideNetworkPolicy/deny-world-egress specs[0].egressDeny[0] (policies/clusterwide/deny-world-egress.yaml:")
        .stdout_has("ingress of world: not evaluated (an entity is not a managed endpoint)");
    repo.ward(&[
        "explain",
        "--from",
        "shop/app=frontend",
        "--to",
        "8.8.8.0/24",
        "--port",
        "TCP/443",
    ])
    .code(EXIT_OK)
    .stdout_has("shop/app=frontend → 8.8.8.1 TCP/443: deny\n");
    repo.ward(&["explain", "--from", "shop/app=frontend", "--to", "kube-system/k8s-app=kube-dns", "--port", "53/UDP"])
        .code(EXIT_OK)
        .stdout_has("shop/app=frontend → kube-system/k8s-app=kube-dns UDP/53: allow\n")
        .stdout_has("notes:\n  - CiliumNetworkPolicy/shop/frontend-egress spec.egress[1]: its L7 rules are not enforced by ward; the flow is allowed at L4\n");
    repo.ward(&[
        "explain", "--from", "host", "--to", "backend", "--port", "80",
    ])
    .code(EXIT_OK)
    .stdout_has("host → shop/backend TCP/80: allow\n")
    .stdout_has("allowed: the local host may always reach its endpoints (allow-localhost)");
}

/// A flow to a Service (by name or cluster IP) is explained at its backend, as the datapath
/// sends it there before the policy sees it.
#[test]
fn a_flow_to_a_service_is_explained_at_its_backend() {
    let env = Env::new();
    let repo = env.fixture_repo();
    repo.ward(&["explain", "--from", "payments-worker", "--to", "service:payments/ledger-db", "--port", "5432"])
        .code(EXIT_OK)
        .stdout_has("payments/payments-worker → service:payments/ledger-db TCP/5432: allow
")
        .stdout_has("decided by CiliumNetworkPolicy/payments/egress spec.egress[3]")
        .stdout_has("ingress of service:payments/ledger-db: not evaluated (an address outside the declared endpoints is not a managed endpoint)")
        .stdout_has("  - service payments/ledger-db sends this flow to its backend at 198.51.100.20:5432\n");
    repo.ward(&[
        "explain",
        "--from",
        "payments-worker",
        "--to",
        "10.96.0.10",
        "--port",
        "53/UDP",
    ])
    .code(EXIT_OK)
    .stdout_has("payments/payments-worker → kube-system/kube-dns UDP/53: allow\n")
    .stdout_has("service kube-system/kube-dns sends this flow to its backend at 10.0.0.10:53");
}

#[test]
fn bad_flow_ends_are_errors_that_say_what_to_write() {
    let env = Env::new();
    let repo = env.fixture_repo();
    let run = repo.ward(&[
        "explain",
        "--from",
        "shop/nobody",
        "--to",
        "backend",
        "--port",
        "80/TCP",
    ]);
    run.code(EXIT_ERROR)
        .stderr_has("ward: error: --from: no PolicyTest declares an endpoint shop/nobody; give its labels instead (shop/app=nobody)");
    repo.ward(&[
        "explain", "--from", "frontend", "--to", "backend", "--port", "80/QUIC",
    ])
    .code(EXIT_ERROR)
    .stderr_has("--port: \"80/QUIC\" is not a port");
    repo.ward(&[
        "explain", "--from", "cluster", "--to", "backend", "--port", "80",
    ])
    .code(EXIT_ERROR)
    .stderr_has("stands for many identities");
    repo.ward(&[
        "explain", "--from", "frontend", "--to", "backend", "--port", "grpc",
    ])
    .code(EXIT_ERROR)
    .stderr_has("named port \"grpc\" is not declared by the destination");
    repo.ward(&[
        "explain", "--from", "frontend", "--to", "backend", "--port", "80", "--format", "markdown",
    ])
    .code(EXIT_ERROR)
    .stderr_has("[possible values: text, json]");
}

/// A request on the flow adds the L7 proxies' verdict: the payments API takes a POST to
/// /v1/charges with X-Request-Id (api-ingress's HTTP rules), refuses a DELETE with 403, and
/// the DNS proxy refuses names the namespace's egress does not list.
#[test]
fn a_request_gets_the_l7_verdict() {
    let env = Env::new();
    let repo = env.fixture_repo();
    let explain = |extra: &[&str]| {
        let mut args = vec![
            "explain",
            "--from",
            "payments-worker",
            "--to",
            "payments-api",
            "--port",
            "8080/TCP",
        ];
        args.extend_from_slice(extra);
        repo.ward(&args)
    };
    explain(&[
        "--http",
        "POST /v1/charges",
        "--header",
        "X-Request-Id: r-1",
    ])
    .code(EXIT_OK)
    .stdout_has("\nL7 HTTP POST /v1/charges: passes\n")
    .stdout_has(
        "  ingress proxy: allowed by CiliumNetworkPolicy/payments/api-ingress spec.ingress[0]\n",
    )
    .stdout_lacks("its L7 rules are not enforced by ward");
    let refused = explain(&[
        "--http",
        "DELETE /v1/charges/ch42",
        "--header",
        "X-Request-Id: r-1",
    ]);
    refused
        .code(EXIT_OK)
        .stdout_has("\nL7 HTTP DELETE /v1/charges/ch42: refused\n")
        .stdout_has("the proxy answers 403 Forbidden");
    let json = explain(&["--http", "DELETE /v1/charges/ch42", "-o", "json"]).json();
    assert_eq!(json["l7"]["allowed"], false, "{json}");
    assert_eq!(json["l7"]["sides"][0]["verdict"], "denied", "{json}");
    repo.ward(&[
        "explain",
        "--from",
        "payments-worker",
        "--to",
        "kube-dns",
        "--port",
        "53/UDP",
        "--dns",
        "tracker.example.net",
    ])
    .code(EXIT_OK)
    .stdout_has("\nL7 DNS query tracker.example.net: refused\n")
    .stdout_has("the proxy answers REFUSED");
    explain(&["--http", "POST"])
        .code(EXIT_ERROR)
        .stderr_has("--http: give the method and the path, \"GET /api/v1/items\"");
}

/// A node's host endpoint is a flow end; `host` next to a pod is the pod's own node.
#[test]
fn host_endpoints_are_explained_with_their_host_policy() {
    let env = Env::new();
    let repo = env.fixture_repo();
    repo.ward(&[
        "explain", "--from", "world", "--to", "node:worker-1", "--port", "22/TCP",
    ])
    .code(EXIT_OK)
    .stdout_has(" → node:worker-1 TCP/22: default-deny\n")
    .stdout_has("decided by CiliumClusterwideNetworkPolicy/host-firewall spec (policies/clusterwide/host-firewall.yaml:")
    .stdout_has("\ningress of node:worker-1 (identity 1):\n");
    repo.ward(&[
        "explain",
        "--from",
        "batch-runner",
        "--to",
        "host",
        "--port",
        "10250/TCP",
    ])
    .code(EXIT_OK)
    .stdout_has("batch/batch-runner → node:worker-1 TCP/10250: default-deny\n")
    .stdout_has("\ningress of node:worker-1 (identity 1):\n");
    // By its address, a node is the same host endpoint.
    repo.ward(&[
        "explain",
        "--from",
        "world",
        "--to",
        "192.168.10.11",
        "--port",
        "22/TCP",
    ])
    .code(EXIT_OK)
    .stdout_has(" → node:worker-1 TCP/22: default-deny\n")
    .stdout_has("\ningress of node:worker-1 (identity 1):\n");
}
