//! `--format sarif` conforms to the official SARIF 2.1.0 JSON Schema.
//!
//! The schema (`tests/data/sarif-schema-2.1.0.json`) is the OASIS SARIF 2.1.0 schema as
//! shipped, byte for byte, in the `@microsoft/sarif-multitool-linux` 5.7.0 npm package
//! (`package/sarif-2.1.0.json`; the package is MIT-licensed, the schema is OASIS's
//! published SARIF 2.1.0 schema).

mod util;

use util::{EXIT_ERROR, Env};

use ward_reconciler::report::{Format, Report, render};
use ward_schema::{Diagnostic, Severity};

fn schema() -> jsonschema::Validator {
    let text = include_str!("data/sarif-schema-2.1.0.json");
    let schema: serde_json::Value = serde_json::from_str(text).expect("the schema is JSON");
    // Formats too: URIs must be URIs, and relative ones URI references.
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the SARIF schema compiles")
}

fn diagnostics() -> Vec<Diagnostic> {
    vec![
        Diagnostic::error(
            "WARD-S009",
            "Invalid CiliumNetworkPolicy spec: unable to parse port: strconv.ParseUint: parsing \"65536\": value out of range",
        )
        .at("policies/shop/backend.yaml", 14, 21)
        .with_path("spec.ingress[0].toPorts[0].ports[0].port")
        .with_hint("ports are numbers from 0 to 65535"),
        Diagnostic::warning("WARD-K007", "no metadata.namespace; ward puts this CiliumNetworkPolicy in namespace \"default\"").at(
            "policies/x.yaml",
            3,
            1,
        ),
        Diagnostic::error("WARD-Y001", "file is 104857600 bytes, more than the limit of 4194304 bytes").at("policies/big.yaml", 0, 0),
    ]
}

#[test]
fn sarif_output_validates_against_the_sarif_2_1_0_schema() {
    let diags = diagnostics();
    let files = vec!["policies/shop/backend.yaml".to_owned()];
    let report = Report {
        command: "validate",
        files: &files,
        documents: 3,
        skipped: &Default::default(),
        deleted: &[],
        diagnostics: &diags,
        plan: None,
        base: None,
        head: None,
        connectivity: None,
    };
    let out = render(Format::Sarif, &report, false);
    let doc: serde_json::Value = serde_json::from_str(&out).expect("SARIF output is JSON");
    let validator = schema();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path().as_str()))
        .collect();
    assert!(
        errors.is_empty(),
        "SARIF output violates the schema:\n{}\n{out}",
        errors.join("\n")
    );
    let results = doc["runs"][0]["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        14
    );
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startColumn"],
        21
    );
    assert_eq!(results[1]["level"], "warning");
    assert_eq!(
        results[2]["locations"][0]["physicalLocation"]["region"],
        serde_json::json!({"startLine": 1, "startColumn": 1}),
        "a file-level finding points at the first line: code scanning shows only results with a region"
    );
    assert_eq!(diags[1].severity, Severity::Warning);
    for r in results {
        let fp = r["partialFingerprints"]["wardFinding/v1"]
            .as_str()
            .unwrap_or("");
        assert_eq!(fp.len(), 64, "a SHA-256 fingerprint: {r}");
        assert_eq!(
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"],
            "%SRCROOT%"
        );
    }
    let rules = doc["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules");
    assert_eq!(rules[0]["id"], "WARD-S009");
    assert_eq!(rules[0]["help"]["text"], "Port and protocol problems.");
    assert!(
        rules.iter().all(|r| r["helpUri"]
            .as_str()
            .is_some_and(|u| u.ends_with("/blob/main/README.md#finding-codes"))),
        "every rule links the finding codes"
    );
    assert!(doc["runs"][0]["originalUriBaseIds"]["%SRCROOT%"].is_object());
}

#[test]
fn an_empty_run_is_valid_sarif_too() {
    let files: Vec<String> = Vec::new();
    let report = Report {
        command: "validate",
        files: &files,
        documents: 0,
        skipped: &Default::default(),
        deleted: &[],
        diagnostics: &[],
        plan: None,
        base: None,
        head: None,
        connectivity: None,
    };
    let doc: serde_json::Value =
        serde_json::from_str(&render(Format::Sarif, &report, false)).expect("JSON");
    assert!(schema().is_valid(&doc));
    assert_eq!(doc["runs"][0]["results"].as_array().map(Vec::len), Some(0));
}

#[test]
fn the_schema_check_can_fail() {
    // Guard against a validator that accepts everything: a result without a message is invalid.
    let bad = serde_json::json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "ward"}}, "results": [{"ruleId": "X"}]}]});
    assert!(!schema().is_valid(&bad));
    // And formats are checked: a help URI that is no URI.
    let bad_uri = serde_json::json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "ward", "rules": [{"id": "X", "helpUri": "not a uri"}]}}}]});
    assert!(!schema().is_valid(&bad_uri));
}

/// An invalid CNP (port out of range, line 16) and a file that is not text (a file-level
/// finding).
fn bad_repo(env: &Env) -> util::Repo {
    let mut repo = env.fixture_repo();
    repo.write(
        "policies/namespaces/shop/bad.yaml",
        util::cnp("shop", "bad", 65536),
    );
    repo.write("policies/blob.yaml", b"\0\x01binary");
    repo.commit("bad files");
    repo
}

fn uris(doc: &serde_json::Value) -> Vec<(String, String, u64)> {
    doc["runs"][0]["results"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    let loc = &r["locations"][0]["physicalLocation"];
                    (
                        loc["artifactLocation"]["uri"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned(),
                        loc["artifactLocation"]["uriBaseId"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned(),
                        loc["region"]["startLine"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn uris_are_relative_to_the_repository_root_for_absolute_paths_too() {
    let env = Env::new();
    let repo = bad_repo(&env);
    let expected = vec![
        ("policies/blob.yaml".to_owned(), "%SRCROOT%".to_owned(), 1),
        (
            "policies/namespaces/shop/bad.yaml".to_owned(),
            "%SRCROOT%".to_owned(),
            16,
        ),
    ];
    let policies = repo.path.join("policies");
    let abs = policies.to_str().expect("a UTF-8 path");
    let elsewhere = env.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("a folder");
    // From the repository, from its parent folder and from an unrelated one, by absolute
    // and by relative paths: the same URIs.
    let runs = [
        repo.ward(&["validate", "-o", "sarif"]),
        repo.ward(&["validate", abs, "-o", "sarif"]),
        env.ward(env.path(), &["validate", abs, "-o", "sarif"]),
        env.ward(env.path(), &["validate", "repo/policies", "-o", "sarif"]),
        env.ward(&elsewhere, &["validate", abs, "-o", "sarif"]),
        repo.ward(&["validate", "--rev", "HEAD", "-o", "sarif"]),
    ];
    let validator = schema();
    for run in &runs {
        run.code(EXIT_ERROR);
        let doc = run.json();
        run.check(
            uris(&doc) == expected,
            format_args!("URIs {:?}", uris(&doc)),
        )
        .check(validator.is_valid(&doc), "valid SARIF");
    }
    let fingerprints: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| r.json()["runs"][0]["results"][1]["partialFingerprints"].clone())
        .collect();
    assert!(
        fingerprints.windows(2).all(|w| w[0] == w[1]),
        "{fingerprints:?}"
    );
}

#[test]
fn fingerprints_stay_when_lines_move() {
    let env = Env::new();
    let mut repo = bad_repo(&env);
    let before = repo.ward(&["validate", "-o", "sarif"]).json();
    let bad = repo.read("policies/namespaces/shop/bad.yaml");
    repo.write(
        "policies/namespaces/shop/bad.yaml",
        format!("# moved down\n# by two lines\n{bad}"),
    );
    repo.commit("comments on top");
    let after = repo.ward(&["validate", "-o", "sarif"]).json();
    let result = |doc: &serde_json::Value| doc["runs"][0]["results"][1].clone();
    assert_eq!(
        result(&after)["locations"][0]["physicalLocation"]["region"]["startLine"],
        18,
        "the finding moved"
    );
    assert_eq!(
        result(&before)["partialFingerprints"],
        result(&after)["partialFingerprints"],
        "its fingerprint did not"
    );
}
