//! `ward diff --base --head`: the pull-request preview in every format, and exit codes that
//! follow `terraform plan -detailed-exitcode` (a reformatting-only commit is no change).

mod util;

use util::{EXIT_CHANGES, EXIT_ERROR, EXIT_OK, Env, Repo};

const BACKEND: &str = "policies/namespaces/shop/backend-ingress.yaml";

/// The example repository plus a second commit that moves the backend to port 8080.
fn two_commits(env: &Env) -> Repo {
    let mut repo = env.fixture_repo();
    repo.write(
        BACKEND,
        repo.read(BACKEND).replace("port: \"80\"", "port: \"8080\""),
    );
    repo.commit("backend on 8080");
    repo
}

/// The same policy as the fixture's backend-ingress, written differently: keys reordered,
/// other quoting, flow style, other comments.
const BACKEND_REFORMATTED: &str = r#"# Reformatted: same object, different YAML.
kind: 'CiliumNetworkPolicy'
apiVersion: "cilium.io/v2"
spec:
  ingress:
  - toPorts: [{ports: [{protocol: "TCP", port: '80'}]}]
    fromEndpoints:
    - matchLabels: {app: "frontend"}
  endpointSelector: {matchLabels: {app: backend}}   # the backend pods
  description: 'backend: ingress default-deny; allow shop/frontend on 80/TCP only'
metadata: {namespace: "shop", name: backend-ingress}
"#;

/// An invalid CNP: the port is out of range (line 13, column 21).
const BAD: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: bad
  namespace: shop
spec:
  endpointSelector:
    matchLabels:
      app: x
  ingress:
    - toPorts:
        - ports:
            - port: \"65536\"
              protocol: TCP
";

#[test]
fn markdown_is_a_readable_pull_request_comment() {
    let env = Env::new();
    let repo = two_commits(&env);
    let run = repo.ward(&[
        "diff", "--base", "HEAD~1", "--head", "HEAD", "--format", "markdown",
    ]);
    run.code(EXIT_OK);
    let md = &run.stdout;
    run.check(
        md.starts_with("<!-- ward-report -->\n"),
        "starts with the marker CI uses to find its comment",
    )
    .stdout_has("### ward diff `")
    .stdout_has("✅ **Valid**")
    .stdout_lacks("left out")
    .stdout_has("**Changes:** 0 to create, 1 to change, 0 to prune, 0 drifted, 12 unchanged")
    .stdout_has(
        "<details><summary>✏️ change <code>CiliumNetworkPolicy/shop/backend-ingress</code>",
    );
    let details = md.matches("<details>").count();
    run.check(
        details == 1 && md.matches("</details>").count() == 1,
        "one collapsible block: only the changed object",
    );
    let block = &md[md.find("<details>").unwrap_or(0)..];
    let fence = block
        .find("```diff\n")
        .map(|i| &block[i + 8..])
        .unwrap_or("");
    let body = &fence[..fence.find("```").unwrap_or(0)];
    run.check(
        body.lines()
            .any(|l| l.starts_with("-") && l.contains("port: \"80\"")),
        "the old line in the diff fence",
    )
    .check(
        body.lines()
            .any(|l| l.starts_with("+") && l.contains("port: \"8080\"")),
        "the new line in the diff fence",
    )
    .check(
        body.lines()
            .filter(|l| l.starts_with('+') || l.starts_with('-'))
            .count()
            == 2,
        "nothing else changes",
    )
    .check(
        !body.contains("+++") && !body.contains("---"),
        "no file headers in the fence",
    );

    // The default head is HEAD.
    repo.ward(&["diff", "--base", "HEAD~1", "--format", "markdown"])
        .code(EXIT_OK)
        .stdout_has("1 to change");
}

#[test]
fn github_annotations_point_at_the_bad_line() {
    let env = Env::new();
    let mut repo = two_commits(&env);
    repo.write("policies/namespaces/shop/bad.yaml", BAD);
    repo.commit("add a bad policy");
    let run = repo.ward(&[
        "diff", "--base", "HEAD~1", "--head", "HEAD", "--format", "github",
    ]);
    run.code(EXIT_ERROR);
    let errors = run.lines_starting("::error ");
    run.check(errors.len() == 1, "one annotation")
        .check(
            errors[0].starts_with("::error file=policies/namespaces/shop/bad.yaml,line=13,col=21,"),
            "file, line and column",
        )
        .check(
            errors[0].contains("::Invalid CiliumNetworkPolicy spec") && errors[0].contains("65536"),
            "the message",
        )
        .stdout_has("ward: 1 error(s), 0 warning(s)");
}

#[test]
fn sarif_regions_match_the_findings() {
    let env = Env::new();
    let mut repo = two_commits(&env);
    repo.write("policies/namespaces/shop/bad.yaml", BAD);
    repo.commit("add a bad policy");
    let json = repo.ward(&["diff", "--base", "HEAD~1", "--format", "json"]);
    json.code(EXIT_ERROR);
    let finding = json.json()["diagnostics"][0].clone();
    let run = repo.ward(&["diff", "--base", "HEAD~1", "--format", "sarif"]);
    run.code(EXIT_ERROR);
    let doc = run.json();
    let results = doc["runs"][0]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    run.check(doc["version"] == "2.1.0", "SARIF 2.1.0")
        .check(results.len() == 1, "one result");
    let loc = &results[0]["locations"][0]["physicalLocation"];
    run.check(
        loc["artifactLocation"]["uri"] == finding["file"],
        "same file",
    )
    .check(
        loc["region"]["startLine"] == finding["line"] && finding["line"] == 13,
        "startLine is the finding's line",
    )
    .check(
        loc["region"]["startColumn"] == finding["column"] && finding["column"] == 21,
        "startColumn is the finding's column",
    )
    .check(
        results[0]["ruleId"] == finding["code"] && results[0]["level"] == "error",
        "rule and level",
    );
}

#[test]
fn junit_fails_the_bad_file_only() {
    let env = Env::new();
    let mut repo = two_commits(&env);
    repo.write("policies/namespaces/shop/bad.yaml", BAD);
    repo.commit("add a bad policy");
    let run = repo.ward(&["diff", "--base", "HEAD~1", "--format", "junit"]);
    run.code(EXIT_ERROR);
    let xml = &run.stdout;
    run.check(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "),
        "an XML document of test suites",
    )
    .check(xml.trim_end().ends_with("</testsuites>"), "closed")
    .stdout_has("tests=\"20\" skipped=\"0\" failures=\"1\"");
    let start = xml
        .find("<testcase name=\"policies/namespaces/shop/bad.yaml\" classname=\"ward.validate\">");
    run.check(start.is_some(), "a test case for the bad file");
    let case = &xml[start.unwrap_or(0)..];
    let case = &case[..case.find("</testcase>").unwrap_or(case.len())];
    run.check(
        case.contains("<failure message=\"Invalid CiliumNetworkPolicy spec")
            && case.contains("type=\"WARD-S009\""),
        "it fails with the finding",
    )
    .check(
        xml.matches("<failure").count() == 1,
        "no other test case fails",
    )
    .check(
        xml.matches("<testcase ").count() == 20,
        "one test case per file",
    )
    .check(
        xml.matches("<testcase").count() == xml.matches("/>\n").count() + 1,
        "the others pass (empty elements)",
    );
}

#[test]
fn detailed_exitcode_is_2_for_changes_and_0_for_reformatting() {
    let env = Env::new();
    let repo = two_commits(&env);
    repo.ward(&["diff", "--base", "HEAD~1", "--detailed-exitcode"])
        .code(EXIT_CHANGES)
        .stdout_has("1 to change");
    repo.ward(&["diff", "--base", "HEAD~1"]).code(EXIT_OK);
    // Same revision on both sides.
    repo.ward(&["diff", "--base", "HEAD", "--detailed-exitcode"])
        .code(EXIT_OK)
        .stdout_has("0 to create, 0 to change, 0 to prune");

    // Back to the fixture's content, written differently.
    let mut base = env.repo("reformat");
    base.copy_fixtures();
    base.commit("example policies");
    base.write(BACKEND, BACKEND_REFORMATTED);
    let shop = "policies/namespaces/shop/frontend-egress.yaml";
    let text = base.read(shop);
    let stripped: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    base.write(
        shop,
        format!(
            "# all comments replaced\n{}",
            stripped.replace("port: \"80\"", "port: '80'")
        ),
    );
    base.commit("reformat only");
    assert_ne!(
        base.read(BACKEND),
        util::fixture(BACKEND),
        "the commit really changes the file"
    );

    let run = base.ward(&["diff", "--base", "HEAD~1", "--detailed-exitcode"]);
    run.code(EXIT_OK)
        .stdout_has("0 to create, 0 to change, 0 to prune, 0 drifted, 13 unchanged")
        .stdout_lacks("~ ");
    let json = base.ward(&["diff", "--base", "HEAD~1", "--format", "json"]);
    let doc = json.code(EXIT_OK).json();
    for list in ["creates", "updates", "deletes"] {
        json.check(
            doc["plan"][list].as_array().is_some_and(Vec::is_empty),
            format_args!("no {list}"),
        );
    }
    base.ward(&["diff", "--base", "HEAD~1", "--format", "markdown"])
        .code(EXIT_OK)
        .stdout_has("No object changes.")
        .stdout_lacks("<details>");
}

#[test]
fn diff_reports_creates_and_prunes_between_commits() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    repo.remove("policies/namespaces/shop/frontend-egress.yaml");
    repo.write(
        "policies/namespaces/shop/extra.yaml",
        util::cnp("shop", "extra", 9090),
    );
    repo.commit("swap a policy");
    let run = repo.ward(&["diff", "--base", "HEAD~1", "--detailed-exitcode"]);
    run.code(EXIT_CHANGES)
        .stdout_has("1 to create, 0 to change, 1 to prune, 0 drifted, 12 unchanged")
        .stdout_has(
            "+ CiliumNetworkPolicy/shop/extra create (policies/namespaces/shop/extra.yaml:1)",
        )
        .stdout_has("- CiliumNetworkPolicy/shop/frontend-egress prune");
    // A diff reads Git only: no state directory appears.
    assert!(!repo.state().exists());
}

/// Without `--base`, the base is what the target holds (here the local state directory), as
/// `kubectl diff` compares with the cluster: what applying `--head` would change, prunes
/// included, and what it newly allows or denies.
#[test]
fn without_base_the_head_is_compared_with_the_target() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    repo.ward(&["apply"]).code(EXIT_OK);
    repo.ward(&["diff", "--detailed-exitcode"])
        .code(EXIT_OK)
        .stdout_has("Diff live (")
        .stdout_has("0 to create, 0 to change, 0 to prune");
    repo.write(
        BACKEND,
        repo.read(BACKEND).replace("port: \"80\"", "port: \"8080\""),
    );
    repo.remove("policies/namespaces/shop/frontend-egress.yaml");
    repo.commit("backend on 8080, no frontend egress policy");
    let d = repo.ward(&["diff", "--detailed-exitcode"]);
    d.code(EXIT_CHANGES)
        .stdout_has("0 to create, 1 to change, 1 to prune")
        .stdout_has("CiliumNetworkPolicy/shop/frontend-egress");
    d.stdout_has("+            - port: \"8080\"");
    repo.ward(&["plan", "--detailed-exitcode"])
        .code(EXIT_CHANGES);
    // Only a preview: nothing was applied.
    repo.ward(&["status"]).code(EXIT_OK);
}

/// A PolicyTest declaring `client` and the first `n` of the bulk workloads in namespace
/// `bulk`, so that the bulk policies change connectivity.
fn bulk_policy_test(n: usize) -> String {
    let mut s = String::from(
        "apiVersion: ward.dev/v1alpha1
kind: PolicyTest
metadata: {name: bulk}
spec:
  endpoints:
    - {name: client, namespace: bulk, labels: {app: client}, ip: 10.9.0.1}
",
    );
    for i in 0..n {
        s.push_str(&format!(
            "    - {{name: p-{i:03}, namespace: bulk, labels: {{app: p-{i:03}}}, ip: 10.9.1.{}, ports: [{{port: {}, protocol: TCP}}]}}\n",
            i + 1,
            8000 + i
        ));
    }
    s.push_str("  expectations:\n    - {from: client, to: p-000, port: 8000, protocol: TCP, expect: allow}\n");
    s
}

/// Every code fence and `<details>` block of `md` is closed, and no `<details>` is open
/// across a fence or the other way round.
fn balanced(md: &str) -> Result<(), String> {
    let (mut fence, mut details) = (None::<usize>, 0i32);
    for (n, line) in md.lines().enumerate() {
        let ticks = line.chars().take_while(|c| *c == '`').count();
        match fence {
            Some(open) if ticks >= open && line.trim_end().len() == ticks => fence = None,
            Some(_) => {}
            None if ticks >= 3 => fence = Some(ticks),
            None => {
                details += line.matches("<details>").count() as i32;
                details -= line.matches("</details>").count() as i32;
                if !(0..=1).contains(&details) {
                    return Err(format!("line {}: <details> nesting {details}", n + 1));
                }
            }
        }
    }
    match (fence, details) {
        (None, 0) => Ok(()),
        _ => Err(format!(
            "unclosed at the end: fence {fence:?}, details {details}"
        )),
    }
}

#[test]
fn markdown_for_400_new_policies_fits_a_pull_request_comment() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    for i in 0..400 {
        repo.write(
            &format!("policies/bulk/p-{i:03}.yaml"),
            util::cnp("bulk", &format!("p-{i:03}"), 8000 + i),
        );
    }
    repo.write("policies/tests/bulk.yaml", bulk_policy_test(20));
    repo.commit("400 new policies");

    let limited = |limit: &str| {
        repo.ward(&[
            "diff",
            "--base",
            "HEAD~1",
            "-o",
            "markdown",
            "--markdown-limit",
            limit,
        ])
    };
    let full = limited("0");
    full.code(EXIT_OK);
    full.check(
        full.stdout.chars().count() > 150_000,
        "the whole report is large",
    )
    .check(
        full.stdout.matches("<details>").count() == 400,
        "every object diff",
    )
    .stdout_lacks("left out");

    let run = repo.ward(&["diff", "--base", "HEAD~1", "-o", "markdown"]);
    run.code(EXIT_OK);
    let md = &run.stdout;
    let chars = md.chars().count();
    run.check(chars <= 60_000, format_args!("{chars} characters"))
        .check(chars > 50_000, format_args!("the room is used: {chars} characters"))
        .check(md.starts_with("<!-- ward-report -->\n"), "the marker first")
        .stdout_has("| kind | ➕ create | ✏️ change | 🗑️ prune |")
        .stdout_has("| CiliumNetworkPolicy | 400 | 0 | 0 |")
        .stdout_has("| **all** | **400** | **0** | **0** |")
        .stdout_has("**Changes:** 400 to create, 0 to change, 0 to prune")
        .stdout_has("**Connectivity:** 0 newly allowed,")
        .stdout_has(
            "<details><summary>➕ create <code>CiliumNetworkPolicy/bulk/p-000</code> — <code>policies/bulk/p-000.yaml:1</code></summary>",
        )
        .check(
            md.find("| kind |") < md.find("<details>"),
            "the summary before the first diff",
        );
    if let Err(e) = balanced(md) {
        run.check(false, e);
    }
    let kept = md.matches("<details>").count();
    run.check((50..400).contains(&kept), format_args!("{kept} diffs kept"))
        .check(md.matches("</details>").count() == kept, "each closed")
        .stdout_has(&format!(
            "> ✂️ **{} object diffs left out** (",
            400 - kept
        ))
        .stdout_has("to keep this under 60,000 characters. The whole report: the CI job log, or `ward diff` again with `--markdown-limit 0`.");
    // The connectivity diff is grouped: per bulk workload, one row for the client (allowed
    // on the workload's own port) and one for every other source.
    let rows: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("| 🔴 newly denied |"))
        .collect();
    // As many rows as the room left by the object diffs holds (each row lists ~40 sources).
    run.check(
        (30..=40).contains(&rows.len()),
        format_args!("{} connectivity rows", rows.len()),
    );
    let others = rows
        .iter()
        .find(|r| {
            r.contains(
                "| bulk/p-000 | TCP/22, TCP/53, TCP/80, TCP/443, TCP/5432, TCP/6443, TCP/8000, TCP/8080,",
            )
        })
        .copied()
        .unwrap_or("");
    run.check(
        others.starts_with("| 🔴 newly denied | batch/batch-job, batch/batch-runner, batch/fake-dns, batch/stray-oncall, bulk/p-001, bulk/p-002, ")
            && others.contains(", shop/admin, world | bulk/p-000 |"),
        format_args!("every source in one cell: {others}"),
    )
    .check(
        rows.iter().any(|r| r.starts_with(
            "| 🔴 newly denied | bulk/client | bulk/p-001 | TCP/22, TCP/53, TCP/80, TCP/443, TCP/5432, TCP/6443, TCP/8000, TCP/8080, TCP/8443, TCP/9090, TCP/9100, TCP/9102-9103, TCP/10250, UDP/53, UDP/80, UDP/9100 |"
        )),
        "the client, allowed on TCP/8001, on a row of its own",
    );

    // A smaller limit.
    let small = limited("10000");
    small
        .check(
            small.stdout.chars().count() <= 10_000,
            "--markdown-limit 10000",
        )
        .stdout_has("| CiliumNetworkPolicy | 400 | 0 | 0 |")
        .stdout_has("to keep this under 10,000 characters");
    if let Err(e) = balanced(&small.stdout) {
        small.check(false, e);
    }

    // WARD_MARKDOWN_LIMIT sets it too.
    let out = env
        .runner()
        .command(&repo.path, &["diff", "--base", "HEAD~1", "-o", "markdown"])
        .env("WARD_MARKDOWN_LIMIT", "0")
        .output()
        .expect("ward runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        full.stdout,
        "WARD_MARKDOWN_LIMIT=0 gives the whole report"
    );
}

#[test]
fn the_balance_check_can_fail() {
    assert!(balanced("```diff\n+a\n").is_err());
    assert!(balanced("<details>\n\n```diff\n</details>\n```\n").is_err());
    assert!(balanced("<details>\n\n````diff\n```\n````\n</details>\n").is_ok());
}

#[test]
fn markdown_with_400_findings_is_cut_between_table_rows() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    for i in 0..400 {
        // No namespace: a WARD-K007 warning each.
        let policy = util::cnp("x", &format!("p-{i:03}"), 80).replace("  namespace: x\n", "");
        repo.write(&format!("policies/bulk/p-{i:03}.yaml"), policy);
    }
    repo.commit("400 policies without a namespace");
    let run = repo.ward(&["validate", "-o", "markdown"]);
    run.code(EXIT_OK);
    let md = &run.stdout;
    let rows = md.lines().filter(|l| l.starts_with("| ⚠️ |")).count();
    run.check(
        md.chars().count() <= 60_000,
        format_args!("{} characters", md.chars().count()),
    )
    .stdout_has("✅ **Valid**: 419 file(s), 419 document(s), 400 warning(s).")
    .stdout_has("| ⚠️ | `policies/bulk/p-000.yaml:3:1` | WARD-K007 |")
    .check(
        (150..400).contains(&rows),
        format_args!("{rows} rows: more than a third of the room, not all"),
    )
    .stdout_has(&format!("\n\n> ✂️ **{} findings left out** (", 400 - rows))
    .stdout_has("`ward validate` again with `--markdown-limit 0`");
}
