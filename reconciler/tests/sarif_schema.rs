//! `--format sarif` conforms to the official SARIF 2.1.0 JSON Schema.
//!
//! The schema (`tests/data/sarif-schema-2.1.0.json`) is the OASIS SARIF 2.1.0 schema as
//! shipped in the `@microsoft/sarif-multitool-linux` 5.7.0 npm package (`sarif-2.1.0.json`).

use ward_reconciler::report::{Format, Report, render};
use ward_schema::{Diagnostic, Severity};

fn schema() -> jsonschema::Validator {
    let text = include_str!("data/sarif-schema-2.1.0.json");
    let schema: serde_json::Value = serde_json::from_str(text).expect("the schema is JSON");
    jsonschema::options()
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
    assert!(
        results[2]["locations"][0]["physicalLocation"]
            .get("region")
            .is_none(),
        "file-level findings have no region"
    );
    assert_eq!(diags[1].severity, Severity::Warning);
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
}
