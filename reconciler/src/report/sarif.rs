//! SARIF 2.1.0: one run, one rule per diagnostic code used, one result per finding.

use super::Report;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

pub(super) fn render(report: &Report<'_>) -> String {
    let mut rules: BTreeMap<&str, usize> = BTreeMap::new();
    for d in report.diagnostics {
        let next = rules.len();
        rules.entry(d.code).or_insert(next);
    }
    let mut rule_list: Vec<(&str, usize)> = rules.iter().map(|(k, v)| (*k, *v)).collect();
    rule_list.sort_by_key(|(_, i)| *i);
    let rules_json: Vec<Value> = rule_list
        .iter()
        .map(|(code, _)| json!({"id": code, "name": rule_name(code), "shortDescription": {"text": rule_name(code)}}))
        .collect();
    let results: Vec<Value> = report
        .diagnostics
        .iter()
        .map(|d| {
            let mut location = json!({"physicalLocation": {"artifactLocation": {"uri": d.file}}});
            if d.line > 0 {
                location["physicalLocation"]["region"] =
                    json!({"startLine": d.line, "startColumn": d.column.max(1)});
            }
            if !d.path.is_empty() {
                location["logicalLocations"] =
                    json!([{"fullyQualifiedName": d.path, "kind": "member"}]);
            }
            let mut text = d.message.clone();
            if let Some(h) = &d.hint {
                text.push_str(" Hint: ");
                text.push_str(h);
            }
            json!({
                "ruleId": d.code,
                "ruleIndex": rules[d.code],
                "level": if d.is_error() { "error" } else { "warning" },
                "message": {"text": text},
                "locations": [location],
            })
        })
        .collect();
    let doc = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "ward",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/ward",
                "rules": rules_json,
            }},
            "results": results,
            "columnKind": "unicodeCodePoints",
        }],
    });
    serde_json::to_string_pretty(&doc).expect("SARIF serialises") + "\n"
}

/// A short name for a diagnostic code, from its family.
fn rule_name(code: &str) -> &'static str {
    match code.get(5..6) {
        Some("Y") => "file-and-yaml",
        Some("K") => "document-envelope",
        Some("J") => "json-schema",
        Some("S") => "cilium-semantics",
        Some("D") => "repository-consistency",
        _ => "ward",
    }
}
