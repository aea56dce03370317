//! Output formats per command: each command offers exactly the formats it writes (clap
//! refuses the others with a usage error listing the possible values, and `--help` lists
//! them); `ward test --format github` annotates failed expectations at their line; `ward
//! status` obeys `--format` and exits 2 on drift only with `--detailed-exitcode`; every
//! command's JSON carries `"version": 1` and validates against
//! `schema/json/output/v1.schema.json`.

mod util;

use serde_json::Value;
use util::{
    EXIT_CHANGES, EXIT_ERROR, EXIT_OK, Env, Repo, Run, SEED, check_json, flip_first_expectation,
    output_schema,
};

/// Every format and the commands that write it.
const MATRIX: [(&str, &[&str]); 6] = [
    (
        "validate",
        &["text", "json", "markdown", "github", "sarif", "junit"],
    ),
    (
        "plan",
        &[
            "text", "json", "markdown", "github", "sarif", "junit", "dot",
        ],
    ),
    (
        "diff",
        &[
            "text", "json", "markdown", "github", "sarif", "junit", "dot",
        ],
    ),
    ("test", &["text", "json", "github", "junit"]),
    ("explain", &["text", "json"]),
    ("status", &["text", "json"]),
];

const ALL: [&str; 7] = [
    "text", "json", "markdown", "github", "sarif", "junit", "dot",
];

/// The possible values clap lists in a usage error: `[possible values: a, b]`.
fn possible_values(run: &Run) -> Vec<String> {
    let line = run
        .stderr
        .lines()
        .find_map(|l| l.split_once("[possible values: "))
        .map(|(_, rest)| rest.trim_end_matches(']').to_owned());
    let Some(line) = line else {
        run.check(false, "stderr lists the possible values");
        unreachable!()
    };
    line.split(", ").map(str::to_owned).collect()
}

#[test]
fn each_command_offers_exactly_the_formats_it_writes() {
    let env = Env::new();
    for (command, formats) in MATRIX {
        let help = env.ward(env.path(), &[command, "--help"]);
        help.code(EXIT_OK);
        for f in ALL {
            let offered = help
                .stdout
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("- {f}:")));
            let wanted = formats.contains(&f);
            help.check(
                offered == wanted,
                format_args!("`ward {command} --help` lists {f}: {wanted}"),
            );
        }
        for f in ALL.iter().filter(|f| !formats.contains(f)) {
            let run = env.ward(env.path(), &[command, "--format", f]);
            run.code(EXIT_ERROR)
                .check(run.stdout.is_empty(), "nothing on stdout")
                .stderr_has(&format!("invalid value '{f}' for '--format <FORMAT>'"));
            assert_eq!(
                possible_values(&run),
                formats.to_vec(),
                "`ward {command} --format {f}` lists what {command} writes"
            );
        }
    }
    // apply takes what plan takes; -o is --format.
    let run = env.ward(env.path(), &["apply", "-o", "yaml"]);
    run.code(EXIT_ERROR);
    assert_eq!(possible_values(&run), MATRIX[1].1.to_vec());
    let run = env.ward(env.path(), &["status", "-o", "sarif"]);
    run.code(EXIT_ERROR)
        .stderr_has("invalid value 'sarif' for '--format <FORMAT>'");
    assert_eq!(possible_values(&run), ["text", "json"]);
    // The controller writes logs, not reports: no --format at all.
    env.ward(env.path(), &["reconcile", "--format", "json"])
        .code(EXIT_ERROR)
        .stderr_has("unexpected argument '--format'");
}

/// A repository with the example policies, its seed's first expectation flipped.
fn failing_tests(env: &Env) -> Repo {
    let repo = env.fixture_repo();
    flip_first_expectation(&repo);
    repo
}

/// The 1-based line of the first line of `file` that contains `needle`.
fn line_of(repo: &Repo, file: &str, needle: &str) -> usize {
    repo.read(file)
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{file} contains {needle:?}"))
        + 1
}

#[test]
fn test_github_annotates_failed_expectations_at_their_line() {
    let env = Env::new();
    let repo = failing_tests(&env);
    let line = line_of(&repo, SEED, "port: 80, protocol: TCP, expect: deny,");
    let run = repo.ward(&["test", "--format", "github"]);
    run.code(EXIT_ERROR);
    let errors = run.lines_starting("::error ");
    run.check(errors.len() == 1, "one failed expectation, one annotation");
    run.check(
        errors[0].starts_with(&format!(
            "::error file={SEED},line={line},title=ward test shop-seed::frontend → backend TCP/80: expected deny, got allow"
        )),
        "the annotation is at the expectation's line",
    )
    .stdout_has("ward test: 67 expectation(s) in 5 test(s): 66 passed, 1 failed");
    // The JSON gives the same line.
    let json = repo.ward(&["test", "--format", "json"]).json();
    let first = &json["tests"][4]["expectations"][0];
    assert_eq!(first["status"], "fail", "{first}");
    assert_eq!(first["line"], line, "{first}");
    // Passing tests: no annotation, exit 0.
    let env = Env::new();
    let repo = env.fixture_repo();
    let run = repo.ward(&["test", "-o", "github"]);
    run.code(EXIT_OK)
        .stdout_lacks("::error")
        .stdout_has("67 passed, 0 failed");
}

#[test]
fn status_obeys_format_and_exits_2_only_when_asked() {
    let env = Env::new();
    let repo = env.fixture_repo();
    repo.ward(&["apply"]).code(EXIT_OK);
    repo.ward(&["status"])
        .code(EXIT_OK)
        .stdout_has("drift:             none");
    repo.ward(&["status", "--detailed-exitcode"]).code(EXIT_OK);
    let json = repo.ward(&["status", "-o", "json"]).code(EXIT_OK).json();
    assert_eq!(json["drifted"], Value::Array(vec![]), "{json}");
    // Drift: an applied object edited by hand.
    let dns = repo
        .state()
        .join("objects/CiliumClusterwideNetworkPolicy/_cluster/allow-kube-dns.json");
    let text = std::fs::read_to_string(&dns).expect("the applied object");
    std::fs::write(&dns, text.replacen("\"53\"", "\"5353\"", 1)).expect("edit it");
    repo.ward(&["status"])
        .code(EXIT_OK)
        .stdout_has("drift:             1 object(s) changed outside ward");
    repo.ward(&["status", "--detailed-exitcode"])
        .code(EXIT_CHANGES);
    let run = repo.ward(&["status", "--format", "json", "--detailed-exitcode"]);
    run.code(EXIT_CHANGES);
    assert_eq!(
        run.json()["drifted"][0],
        "CiliumClusterwideNetworkPolicy/allow-kube-dns"
    );
    // The help says so.
    env.ward(env.path(), &["status", "--help"])
        .code(EXIT_OK)
        .stdout_has("--detailed-exitcode");
}

#[test]
fn every_commands_json_has_a_version_and_matches_the_schema() {
    let schema = output_schema();
    let env = Env::new();
    let mut repo = env.fixture_repo();
    let json = |repo: &Repo, args: &[&str]| {
        let mut full = args.to_vec();
        full.extend(["--format", "json"]);
        repo.ward(&full)
    };
    check_json(&schema, &json(&repo, &["validate"]), "validate");
    check_json(&schema, &json(&repo, &["status"]), "status");
    check_json(&schema, &json(&repo, &["plan"]), "plan");
    check_json(&schema, &json(&repo, &["apply"]), "apply");
    check_json(&schema, &json(&repo, &["status"]), "status");
    check_json(&schema, &json(&repo, &["test"]), "test");
    for to in ["shop/app=backend", "world"] {
        let args = [
            "explain",
            "--from",
            "shop/app=frontend",
            "--to",
            to,
            "--port",
            "80/TCP",
        ];
        check_json(&schema, &json(&repo, &args), "explain");
    }
    // Changes, drift, findings, deletions, a failed test.
    let dns = repo
        .state()
        .join("objects/CiliumClusterwideNetworkPolicy/_cluster/allow-kube-dns.json");
    let text = std::fs::read_to_string(&dns).expect("the applied object");
    std::fs::write(&dns, text.replacen("\"53\"", "\"5353\"", 1)).expect("edit it");
    repo.remove("policies/namespaces/shop/backend-egress-deny-all.yaml");
    repo.write(
        "policies/no-namespace.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: nn}\nspec:\n  endpointSelector: {}\n  ingress: [{fromEntities: [cluster]}]\n",
    );
    repo.write(
        "policies/app.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app, namespace: shop}\nspec: {}\n",
    );
    let deleted = json(
        &repo,
        &[
            "validate",
            "policies/namespaces/shop/backend-egress-deny-all.yaml",
            "policies/nope.yaml",
            "policies/no-namespace.yaml",
        ],
    );
    deleted.code(EXIT_ERROR);
    check_json(&schema, &deleted, "validate");
    assert_eq!(deleted.json()["deleted"].as_array().map(Vec::len), Some(1));
    repo.commit("a change");
    let skipped = json(&repo, &["validate"]);
    check_json(&schema, &skipped, "validate");
    assert_eq!(skipped.json()["skipped"]["Deployment"], 1);
    check_json(&schema, &json(&repo, &["status"]), "status");
    check_json(&schema, &json(&repo, &["plan", "--prune"]), "plan");
    check_json(&schema, &json(&repo, &["diff"]), "diff");
    check_json(&schema, &json(&repo, &["diff", "--base", "HEAD~1"]), "diff");
    repo.write(
        "policies/bad.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: bad}\n",
    );
    check_json(&schema, &json(&repo, &["validate"]), "validate");
    check_json(&schema, &json(&repo, &["plan"]), "plan");
    repo.remove("policies/bad.yaml");
    flip_first_expectation(&repo);
    let failed = json(&repo, &["test"]);
    failed.code(EXIT_ERROR);
    check_json(&schema, &failed, "test");
    // test and explain stopped by findings write them as validate does.
    repo.write(
        "policies/bad.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: bad}\n",
    );
    let stopped = json(&repo, &["test"]);
    stopped.code(EXIT_ERROR);
    check_json(&schema, &stopped, "test");
    let stopped = json(
        &repo,
        &[
            "explain", "--from", "frontend", "--to", "backend", "--port", "80",
        ],
    );
    stopped.code(EXIT_ERROR);
    check_json(&schema, &stopped, "explain");
    // No PolicyTest at all: an empty result, still a document.
    let env2 = Env::new();
    let mut bare = env2.repo("bare");
    bare.write("policies/p.yaml", util::cnp("shop", "api", 80));
    bare.commit("a policy, no tests");
    let empty = bare.ward(&["test", "--format", "json"]);
    empty.code(EXIT_OK);
    check_json(&schema, &empty, "test");
    assert_eq!(empty.json()["tests"], Value::Array(vec![]));
    // The schema is not vacuous: a document without its version, or with a field of the
    // wrong type, fails it.
    let mut doc = json(&repo, &["validate"]).json();
    doc.as_object_mut().expect("an object").remove("version");
    assert!(!schema.is_valid(&doc), "a document without version fails");
    let mut doc = json(&repo, &["status"]).json();
    doc["inventory"] = Value::String("seven".into());
    assert!(!schema.is_valid(&doc), "a mistyped field fails");
    let mut doc = json(&repo, &["validate"]).json();
    doc["surprise"] = Value::Bool(true);
    assert!(!schema.is_valid(&doc), "an unknown top-level field fails");
}
