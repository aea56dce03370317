//! The connectivity diff in `ward diff` and `ward plan`: a commit that widens a policy lists
//! exactly the newly allowed flows, one that narrows it exactly the newly denied ones, one
//! that only reformats YAML lists none; text, markdown, json and a Graphviz digraph.

mod util;

use util::{EXIT_CHANGES, EXIT_OK, Env, Repo};

const BACKEND: &str = "policies/namespaces/shop/backend-ingress.yaml";

/// The fixture repository plus a commit that also lets shop/admin reach the backend on 80.
fn widened(env: &Env) -> Repo {
    let mut repo = env.fixture_repo();
    let text = repo.read(BACKEND);
    let wider = text.replace(
        "            app: frontend\n",
        "            app: frontend\n        - matchLabels:\n            app: admin\n",
    );
    assert_ne!(text, wider, "backend-ingress has the peer this test widens");
    repo.write(BACKEND, wider);
    repo.commit("let admin reach the backend");
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
        .stdout_has("7 unchanged")
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
