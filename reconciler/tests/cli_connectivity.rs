//! The connectivity diff in `ward diff` and `ward plan`: a commit that widens a policy lists
//! exactly the newly allowed flows, one that narrows it exactly the newly denied ones, one
//! that only reformats YAML lists none; text, markdown, json and a Graphviz digraph.

mod util;

use util::{EXIT_CHANGES, EXIT_ERROR, EXIT_OK, Env, Repo};

const BACKEND: &str = "policies/namespaces/shop/backend-ingress.yaml";

/// Replaces `from` with `to` in the file at `path` (which must hold it) and commits.
fn edit_and_commit(repo: &mut Repo, path: &str, from: &str, to: &str, message: &str) {
    let text = repo.read(path);
    let edited = text.replace(from, to);
    assert_ne!(text, edited, "{path} holds {from:?}");
    repo.write(path, edited);
    repo.commit(message);
}

/// The fixture repository plus a commit that also lets shop/admin reach the backend on 80.
fn widened(env: &Env) -> Repo {
    let mut repo = env.fixture_repo();
    edit_and_commit(
        &mut repo,
        BACKEND,
        "            app: frontend\n",
        "            app: frontend\n        - matchLabels:\n            app: admin\n",
        "let admin reach the backend",
    );
    repo
}

const WIDENED_LINE: &str = "newly allowed: shop/admin → shop/backend TCP/80 — allowed by CiliumNetworkPolicy/shop/backend-ingress spec.ingress[0] (policies/namespaces/shop/backend-ingress.yaml:7)";

#[test]
fn a_widening_commit_lists_exactly_the_newly_allowed_flows() {
    let env = Env::new();
    let repo = widened(&env);
    let run = repo.ward(&["diff", "--base", "HEAD~1"]);
    run.code(EXIT_OK)
        .stdout_has(&format!("  + {WIDENED_LINE}\n"))
        .stdout_has("): 1 newly allowed, 0 newly denied\n");
    let changes: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("  + newly") || l.starts_with("  - newly"))
        .collect();
    run.check(
        changes.len() == 1,
        format_args!("exactly one change: {changes:?}"),
    );

    let md = repo.ward(&["diff", "--base", "HEAD~1", "--format", "markdown"]);
    md.code(EXIT_OK)
        .stdout_has("**Connectivity:** 1 newly allowed, 0 newly denied flow(s) between 1 workload pair(s).\n")
        .stdout_has("\n#### Connectivity\n\n")
        .stdout_has("\n| 🟢 newly allowed | shop/admin | shop/backend | TCP/80 | allowed by CiliumNetworkPolicy/shop/backend-ingress spec.ingress[0] (policies/namespaces/shop/backend-ingress.yaml:7) |\n")
        .stdout_lacks("| 🔴");

    let json = repo.ward(&["diff", "--base", "HEAD~1", "--format", "json"]);
    let doc = json.code(EXIT_OK).json();
    let c = &doc["connectivity"];
    json.check(
        c["newlyAllowed"].as_array().map(Vec::len) == Some(1),
        "one group newly allowed",
    )
    .check(
        c["newlyAllowed"][0]["from"] == "shop/admin"
            && c["newlyAllowed"][0]["to"] == "shop/backend",
        "admin → backend",
    )
    .check(
        c["newlyAllowed"][0]["ports"] == serde_json::json!(["TCP/80"]),
        "on TCP/80",
    )
    .check(
        c["newlyAllowed"][0]["rule"]["rule"]
            == "CiliumNetworkPolicy/shop/backend-ingress spec.ingress[0]",
        "with the allowing rule",
    )
    .check(
        c["newlyDenied"].as_array().is_some_and(Vec::is_empty),
        "nothing newly denied",
    )
    .check(
        c["changedPolicies"] == serde_json::json!(["CiliumNetworkPolicy/shop/backend-ingress"]),
        "the changed policy",
    )
    .check(
        doc["summary"]["connectivityChanges"] == true,
        "the summary says so",
    );

    // Back again: exactly the same flow, newly denied.
    let back = repo.ward(&["diff", "--base", "HEAD", "--head", "HEAD~1"]);
    back.code(EXIT_OK)
        .stdout_has(
            "  - newly denied: shop/admin → shop/backend TCP/80 — default deny enabled by CiliumNetworkPolicy/shop/backend-ingress spec (",
        )
        .stdout_has("): 0 newly allowed, 1 newly denied\n");
}

#[test]
fn a_reformatting_commit_lists_no_connectivity_change() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    let text = repo.read(BACKEND);
    let stripped: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let reformatted = format!(
        "# comments replaced, quoting changed\n{}",
        stripped
            .replace("port: \"80\"", "port: '80'")
            .replace("protocol: TCP", "protocol: \"TCP\"")
    );
    repo.write(BACKEND, &reformatted);
    repo.commit("reformat only");
    let run = repo.ward(&["diff", "--base", "HEAD~1", "--detailed-exitcode"]);
    run.code(EXIT_OK)
        .stdout_has("13 unchanged")
        .stdout_has("Connectivity (")
        .stdout_has("): no change\n")
        .stdout_lacks("newly");
    repo.ward(&["diff", "--base", "HEAD~1", "--format", "markdown"])
        .code(EXIT_OK)
        .stdout_has("**Connectivity:** no change.")
        .stdout_has("No connectivity change.")
        .stdout_lacks("newly");
    let json = repo.ward(&["diff", "--base", "HEAD~1", "--format", "json"]);
    let doc = json.code(EXIT_OK).json();
    json.check(
        doc["connectivity"]["newlyAllowed"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "nothing newly allowed",
    )
    .check(
        doc["connectivity"]["newlyDenied"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "nothing newly denied",
    )
    .check(
        doc["connectivity"]["verdicts"] == 0,
        "no verdict needed: no policy changed",
    );
}

#[test]
fn dot_is_a_digraph_of_the_heads_allowed_flows() {
    let env = Env::new();
    let repo = widened(&env);
    let run = repo.ward(&["diff", "--base", "HEAD~1", "--format", "dot"]);
    run.code(EXIT_OK);
    let dot = &run.stdout;
    run.check(dot.starts_with("digraph "), "starts with digraph")
        .check(dot.trim_end().ends_with('}'), "ends with a closing brace")
        .check(dot.matches('{').count() == dot.matches('}').count(), "balanced braces")
        .stdout_has("  subgraph \"cluster_shop\" {\n    label=\"shop\";\n")
        .stdout_has("  \"shop/frontend\" -> \"shop/backend\" [label=\"TCP/80\"];\n")
        .stdout_has("  \"shop/admin\" -> \"shop/backend\" [label=\"TCP/80\", color=green, fontcolor=green, penwidth=2];\n")
        .stdout_lacks("\"shop/backend\" -> \"shop/frontend\"")
        .stdout_lacks("style=dashed");
    // Narrowing: the lost flow is red and dashed, and not drawn as allowed.
    let back = repo.ward(&[
        "diff", "--base", "HEAD", "--head", "HEAD~1", "--format", "dot",
    ]);
    back.code(EXIT_OK)
        .stdout_has("  \"shop/admin\" -> \"shop/backend\" [label=\"TCP/80\", color=red, fontcolor=red, style=dashed];\n")
        .stdout_lacks("color=green");
    // validate computes no connectivity, so it does not offer dot.
    let v = repo.ward(&["validate", "--format", "dot"]);
    v.code(util::EXIT_ERROR)
        .stderr_has("invalid value 'dot' for '--format <FORMAT>'");
}

#[test]
fn plan_shows_the_connectivity_change_of_desired_against_live() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    // Nothing live yet: applying the policies denies what is open today.
    let first = repo.ward(&["plan"]);
    first.code(EXIT_OK).stdout_lacks("+ newly allowed");
    let admin = first.lines_starting("  - newly denied: shop/admin → shop/backend ");
    first
        .check(admin.len() == 1, "admin loses the backend")
        .check(admin[0].contains(" TCP/80, ") && admin[0].ends_with(" — default deny enabled by CiliumNetworkPolicy/shop/backend-ingress spec (policies/namespaces/shop/backend-ingress.yaml:7)"), "on 80 too, by default deny")
        .check(first.lines_starting("  - newly denied: shop/frontend → shop/backend ").iter().all(|l| !l.contains(" TCP/80,")), "frontend keeps 80");
    repo.ward(&["apply"]).code(EXIT_OK);
    repo.ward(&["plan"])
        .code(EXIT_OK)
        .stdout_has("): no change\n");

    let text = repo.read(BACKEND);
    repo.write(
        BACKEND,
        text.replace(
            "            app: frontend\n",
            "            app: frontend\n        - matchLabels:\n            app: admin\n",
        ),
    );
    repo.commit("let admin reach the backend");
    let plan = repo.ward(&["plan", "--detailed-exitcode"]);
    plan.code(EXIT_CHANGES)
        .stdout_has(&format!("  + {WIDENED_LINE}\n"))
        .stdout_has("): 1 newly allowed, 0 newly denied\n");
}

const GROUP: &str = "policies/clusterwide/office-networks.yaml";
const ADMIN_INGRESS: &str = "policies/namespaces/shop/admin-ingress.yaml";

/// A CiliumCIDRGroup is part of the policy: a commit that only adds the world address to the
/// office group (which admin-from-office names) newly allows world → admin on 8443.
#[test]
fn a_changed_cidr_group_changes_connectivity() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    edit_and_commit(
        &mut repo,
        GROUP,
        "    - 198.51.100.0/24\n",
        "    - 198.51.100.0/24\n    - 203.0.113.0/24\n",
        "the new office",
    );
    let run = repo.ward(&["diff", "--base", "HEAD~1"]);
    run.code(EXIT_OK)
        .stdout_has("  + newly allowed: world → shop/admin TCP/8443 — allowed by CiliumNetworkPolicy/shop/admin-from-office spec.ingress[0] (policies/namespaces/shop/admin-from-office.yaml:9)\n")
        .stdout_has("): 1 newly allowed, 0 newly denied\n");
}

/// A group that is not in the revision matches nothing, as in Cilium; the connectivity diff
/// says so beside each changed verdict on that rule's path.
#[test]
fn a_missing_cidr_group_is_reported_beside_the_changed_verdicts() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    std::fs::remove_file(repo.path.join(GROUP)).expect("remove the group");
    edit_and_commit(
        &mut repo,
        ADMIN_INGRESS,
        "              app: oncall\n",
        "              app: oncall\n        - namespaceSelector:\n            matchLabels:\n              team: ops\n",
        "every ops pod reaches the admin console; the office group is gone",
    );
    let unresolved = "unresolved: CiliumNetworkPolicy/shop/admin-from-office spec.ingress[0]: CiliumCIDRGroup \"office-networks\" is not in this revision: cidrGroupRef matches nothing";
    let run = repo.ward(&["diff", "--base", "HEAD~1"]);
    run.code(EXIT_OK).stdout_has(&format!(
        "  + newly allowed: ops/ops-dashboard → shop/admin TCP/8443 — allowed by NetworkPolicy/shop/admin-ingress spec.ingress[0] (policies/namespaces/shop/admin-ingress.yaml:14); {unresolved}\n"
    ));
    let json = repo.ward(&["diff", "--base", "HEAD~1", "--format", "json"]);
    let doc = json.code(EXIT_OK).json();
    json.check(
        doc["connectivity"]["newlyAllowed"][0]["unresolved"][0]
            == unresolved.trim_start_matches("unresolved: "),
        "JSON lists it",
    );
    // --strict makes it an error, against the base revision and against the live state.
    repo.ward(&["diff", "--base", "HEAD~1", "--strict"])
        .code(EXIT_ERROR)
        .stderr_has("ward: --strict: 1 changed flow(s) pass a rule that matches nothing here");
    repo.ward(&["diff", "--strict"])
        .code(EXIT_ERROR)
        .stderr_has("--strict: ");
    repo.ward(&["diff", "--base", "HEAD~1", "--head", "HEAD~1", "--strict"])
        .code(EXIT_OK);
}

/// With host policies in the head, a change with `host` at one end says that they are not
/// part of its verdict (`host` stands for each pod's own node), while the declared nodes'
/// host endpoints are evaluated with theirs; `--strict` makes the former an error.
#[test]
fn host_flows_say_host_policies_are_not_evaluated_and_nodes_are() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    edit_and_commit(
        &mut repo,
        "policies/namespaces/shop/frontend-egress.yaml",
        "  egress:\n",
        "  egress:\n    - toEntities: [host, remote-node]\n      toPorts: [{ports: [{port: \"10250\", protocol: TCP}]}]\n",
        "let the frontend reach the kubelets",
    );
    let run = repo.ward(&["diff", "--base", "HEAD~1"]);
    run.code(EXIT_OK)
        .stdout_has("newly allowed: shop/frontend → host TCP/10250 — allowed by CiliumNetworkPolicy/shop/frontend-egress spec.egress[0]")
        .stdout_has("not evaluated: host stands for each pod's own node here, so host policies (nodeSelector) are not part of this verdict")
        .stdout_has("newly allowed: shop/frontend → node:control-plane-1 TCP/10250")
        .stdout_lacks("shop/frontend → node:worker-1 TCP/10250");
    repo.ward(&["diff", "--base", "HEAD~1", "--strict"])
        .code(EXIT_ERROR)
        .stderr_has("or have a side ward cannot evaluate (the \"not evaluated\" notes)");
}
