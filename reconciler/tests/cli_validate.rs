//! `ward validate`: the example repository is valid, the copy-pasted seed policy is not, every
//! problem of every file is reported in one run, and `--rev` reads a commit, not the
//! working tree.

mod util;

use util::{EXIT_ERROR, EXIT_OK, Env, fixture};

#[test]
fn the_example_policies_and_cluster_config_are_valid() {
    let env = Env::new();
    let repo = env.fixture_repo();
    let run = repo.ward(&["validate", "policies", "cluster-config"]);
    run.code(EXIT_OK)
        .stdout_has("valid: 19 file(s), 19 document(s), 0 error(s), 0 warning(s)")
        .stdout_lacks("error[");
    // With no paths, the default --include folders are the same files.
    repo.ward(&["validate"])
        .code(EXIT_OK)
        .stdout_has("valid: 19 file(s), 19 document(s), 0 error(s)");
}

#[test]
fn the_v1alpha1_seed_is_rejected_with_its_location_and_the_right_api_version() {
    let env = Env::new();
    let repo = env.repo("repo");
    let rel = "ci/testdata/seed-v1alpha1.yaml";
    let text = fixture(rel);
    repo.write(rel, &text);
    // Where the finding must point: the value of apiVersion.
    let (line_no, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.starts_with("apiVersion:"))
        .expect("the seed has an apiVersion");
    let column = line.find('"').expect("the seed quotes its apiVersion") + 1;
    let location = format!("{rel}:{}:{column}:", line_no + 1);

    let run = repo.ward(&["validate", rel]);
    run.code(EXIT_ERROR)
        .stdout_has(&location)
        .stdout_has("cilium.io/v1alpha1")
        .stdout_has("use cilium.io/v2")
        .stdout_has("invalid: 1 file(s), 1 document(s), 1 error(s)");
    let errors = run.lines_starting(&location);
    run.check(
        errors.len() == 1 && errors[0].contains("error["),
        "exactly one error line at the apiVersion",
    );

    // The same finding, machine-readable.
    let json = repo.ward(&["validate", rel, "--format", "json"]);
    json.code(EXIT_ERROR);
    let doc = json.json();
    let d = &doc["diagnostics"][0];
    json.check(
        d["file"] == rel && d["line"] == line_no as u64 + 1 && d["column"] == column as u64,
        "json finding location",
    )
    .check(
        d["hint"]
            .as_str()
            .is_some_and(|h| h.contains("use cilium.io/v2")),
        "json hint",
    )
    .check(doc["summary"]["errors"] == 1, "one error");
}

/// A CNP with an out-of-range port and an unknown protocol.
const BAD_PORTS: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: bad-ports
  namespace: shop
spec:
  endpointSelector:
    matchLabels:
      app: x
  ingress:
    - toPorts:
        - ports:
            - port: \"65536\"
              protocol: TCPX
";

/// A CNP with an invalid name and an unknown entity.
const BAD_NAME_AND_ENTITY: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: Bad_Name
  namespace: shop
spec:
  endpointSelector:
    matchLabels:
      app: y
  egress:
    - toPorts:
        - ports:
            - port: \"99999\"
              protocol: TCP
";

#[test]
fn every_problem_in_every_file_is_reported_in_one_run() {
    let env = Env::new();
    let repo = env.repo("repo");
    repo.write("policies/a.yaml", BAD_PORTS)
        .write("policies/b.yaml", BAD_NAME_AND_ENTITY);
    let run = repo.ward(&["validate"]);
    run.code(EXIT_ERROR)
        .stdout_has("invalid: 2 file(s), 2 document(s), 4 error(s), 0 warning(s)");
    let a = run.lines_starting("policies/a.yaml:");
    let b = run.lines_starting("policies/b.yaml:");
    run.check(a.len() == 2, "two errors in a.yaml")
        .check(b.len() == 2, "two errors in b.yaml");
    run.check(
        a.iter()
            .any(|l| l.starts_with("policies/a.yaml:13:21:") && l.contains("65536")),
        "a.yaml: the port, at its value",
    )
    .check(
        a.iter()
            .any(|l| l.starts_with("policies/a.yaml:14:25:") && l.contains("TCPX")),
        "a.yaml: the protocol, at its value",
    )
    .check(
        b.iter()
            .any(|l| l.starts_with("policies/b.yaml:4:9:") && l.contains("Bad_Name")),
        "b.yaml: the name",
    )
    .check(
        b.iter()
            .any(|l| l.starts_with("policies/b.yaml:13:21:") && l.contains("99999")),
        "b.yaml: the port",
    );

    // Every format carries all four.
    let json = repo.ward(&["validate", "--format", "json"]);
    json.code(EXIT_ERROR);
    let doc = json.json();
    let diags = doc["diagnostics"].as_array().expect("diagnostics");
    json.check(diags.len() == 4, "four diagnostics")
        .check(diags.iter().all(|d| d["severity"] == "error"), "all errors");
    let files: Vec<&str> = diags.iter().filter_map(|d| d["file"].as_str()).collect();
    json.check(
        files
            == [
                "policies/a.yaml",
                "policies/a.yaml",
                "policies/b.yaml",
                "policies/b.yaml",
            ],
        "sorted by file",
    );
}

#[test]
fn validate_rev_reads_the_commit_and_leaves_the_working_tree_alone() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    let good = repo.head();

    // Working tree invalid, commit valid.
    let path = "policies/namespaces/shop/backend-ingress.yaml";
    let committed = repo.read(path);
    let broken = committed.replace("port: \"80\"", "port: \"80000\"");
    assert_ne!(broken, committed, "the fixture has port 80");
    repo.write(path, &broken);
    repo.ward(&["validate"])
        .code(EXIT_ERROR)
        .stdout_has(&format!("{path}:"));
    repo.ward(&["validate", "--rev", "HEAD"])
        .code(EXIT_OK)
        .stdout_has("0 error(s)");
    repo.ward(&["validate", "--rev", &good]).code(EXIT_OK);
    repo.ward(&["validate", "--rev", "HEAD", "policies/namespaces"])
        .code(EXIT_OK)
        .stdout_has("valid: 8 file(s)");
    assert_eq!(
        repo.read(path),
        broken,
        "validate --rev must not touch the working tree"
    );
    assert!(repo.is_dirty(), "the edit is still uncommitted");

    // Commit invalid, working tree fixed.
    let bad = repo.commit("break the port");
    repo.write(path, &committed);
    repo.ward(&["validate"]).code(EXIT_OK);
    repo.ward(&["validate", "--rev", "HEAD"])
        .code(EXIT_ERROR)
        .stdout_has(&format!("{path}:"))
        .stdout_has("80000");
    repo.ward(&["validate", "--rev", &bad]).code(EXIT_ERROR);
    repo.ward(&["validate", "--rev", &good]).code(EXIT_OK);
    assert_eq!(
        repo.read(path),
        committed,
        "validate --rev must not touch the working tree"
    );

    // An unknown revision is a one-line error naming it.
    let run = repo.ward(&["validate", "--rev", "no-such-branch"]);
    run.code(EXIT_ERROR).stderr_has("no-such-branch");
    run.check(run.stderr.lines().count() == 1, "one line on stderr");
}

#[test]
fn the_example_content_is_what_these_tests_expect() {
    // The integration tests count files and objects of the example content; when it changes,
    // this test says so first (update `util::FIXTURE_OBJECTS` and the counts).
    let env = Env::new();
    let repo = env.fixture_repo();
    let run = repo.ward(&["plan", "--format", "json"]);
    run.code(EXIT_OK);
    let doc = run.json();
    let mut keys: Vec<String> = doc["plan"]["creates"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    let k = &c["key"];
                    match k["namespace"].as_str() {
                        Some(ns) => format!(
                            "{}/{ns}/{}",
                            k["kind"].as_str().unwrap_or("?"),
                            k["name"].as_str().unwrap_or("?")
                        ),
                        None => format!(
                            "{}/{}",
                            k["kind"].as_str().unwrap_or("?"),
                            k["name"].as_str().unwrap_or("?")
                        ),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    run.check(
        keys == util::FIXTURE_OBJECTS,
        format_args!("the example objects changed: {keys:?}"),
    )
    .check(
        doc["files"] == 19 && doc["documents"] == 19,
        "19 files, 19 documents (five PolicyTests, the lab topology)",
    );
}

/// The CiliumConfig's flags decide which findings apply in `ward validate` too (it keeps only
/// keys of the other objects, but the config whole).
#[test]
fn validate_honours_the_cilium_config_flags() {
    let env = Env::new();
    let repo = env.repo("repo");
    let policy = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: ping, namespace: shop}\nspec:\n  endpointSelector: {matchLabels: {app: backend}}\n  ingress:\n    - fromEndpoints: [{matchLabels: {app: frontend}}]\n      icmps: [{fields: [{type: 8, family: IPv4}]}]\n";
    repo.write("policies/ping.yaml", policy);
    repo.ward(&["validate"])
        .code(EXIT_OK)
        .stdout_has("0 error(s)");
    repo.write(
        "cluster-config/cilium-config.yaml",
        "apiVersion: cilium.io/v1.12\nkind: CiliumConfig\nmetadata: {name: cilium-config}\nspec:\n  enable-icmp-rules: false\n",
    );
    let run = repo.ward(&["validate"]);
    run.code(EXIT_ERROR)
        .stdout_has("policies/ping.yaml:8:")
        .stdout_has("1 error(s)");
}

/// Colour is anstream's decision: CLICOLOR_FORCE turns it on even into a pipe; NO_COLOR turns
/// it off only when it is not empty (no-color.org), and wins over CLICOLOR_FORCE.
#[test]
fn colour_follows_clicolor_force_and_a_non_empty_no_color() {
    let env = Env::new();
    let repo = env.repo("repo");
    let rel = "ci/testdata/seed-v1alpha1.yaml";
    repo.write(rel, fixture(rel));
    let run = |vars: &[(&str, &str)]| {
        let mut cmd = env.runner().command(&repo.path, &["validate", rel]);
        cmd.env_remove("NO_COLOR");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("ward runs");
        assert_eq!(
            out.status.code(),
            Some(EXIT_ERROR),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).contains('\x1b')
    };
    assert!(!run(&[]), "a pipe gets no colour");
    assert!(
        run(&[("CLICOLOR_FORCE", "1")]),
        "CLICOLOR_FORCE=1 forces colour"
    );
    assert!(
        run(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "")]),
        "an empty NO_COLOR does not turn colour off"
    );
    assert!(
        !run(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]),
        "NO_COLOR=1 turns colour off"
    );
}
