//! SARIF 2.1.0 for code scanning: one run, one rule per diagnostic code used, one result
//! per finding.
//!
//! - Artifact URIs are relative to the repository root (`uriBaseId` `%SRCROOT%`), also for
//!   files named by absolute paths or from another folder: the repository is the nearest
//!   folder above the file that holds `.git`. A file outside any repository keeps an
//!   absolute `file://` URI.
//! - A finding about a file as a whole (no line) points at line 1, since code scanning
//!   shows only results with a region.
//! - Each rule carries the code's description from the README's finding-codes table as
//!   help, and `helpUri` [`HELP_URI`]: `<repository>/blob/main/README.md#finding-codes`.
//! - Each result carries `partialFingerprints["wardFinding/v1"]`: a SHA-256 of the code,
//!   the artifact URI, the field path and which of the findings with those three it is, so
//!   a finding keeps its alert when lines move above it.

use super::Report;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use ward_schema::Diagnostic;

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// The base every relative artifact URI is resolved against: the repository root.
const SRCROOT: &str = "%SRCROOT%";

/// Where each rule's help points: the README's finding-codes table, on the default branch of
/// the repository named in Cargo.toml.
pub const HELP_URI: &str = concat!(
    env!("CARGO_PKG_REPOSITORY"),
    "/blob/main/README.md#finding-codes"
);

/// The README, whose finding-codes table describes each code.
const README: &str = include_str!("../../../README.md");

/// What a URI path may hold unescaped (RFC 3986 `pchar` and `/`).
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

pub(super) fn render(report: &Report<'_>) -> String {
    let (rules, index) = rules(report.diagnostics);
    let mut roots = Roots::default();
    let artifacts: Vec<Value> = report
        .diagnostics
        .iter()
        .map(|d| roots.artifact(&d.file))
        .collect();
    let fingerprints = fingerprints(report.diagnostics, &artifacts);
    let results: Vec<Value> = report
        .diagnostics
        .iter()
        .zip(artifacts)
        .zip(fingerprints)
        .map(|((d, artifact), fingerprint)| result(d, index[d.code], artifact, fingerprint))
        .collect();
    let doc = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "ward",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": env!("CARGO_PKG_REPOSITORY"),
                "rules": rules,
            }},
            "originalUriBaseIds": {SRCROOT: {
                "description": {"text": "The root of the repository: the folder that holds .git."}
            }},
            "results": results,
            "columnKind": "unicodeCodePoints",
        }],
    });
    serde_json::to_string_pretty(&doc).expect("SARIF serialises") + "\n"
}

/// One rule per code, in order of first use, and each code's index among them.
fn rules(diagnostics: &[Diagnostic]) -> (Vec<Value>, BTreeMap<&'static str, usize>) {
    let mut index = BTreeMap::new();
    let mut rules = Vec::new();
    for d in diagnostics {
        if index.contains_key(d.code) {
            continue;
        }
        index.insert(d.code, rules.len());
        let help = description(d.code)
            .map(str::to_owned)
            .or_else(|| d.hint.clone())
            .unwrap_or_else(|| rule_name(d.code).to_owned());
        rules.push(json!({
            "id": d.code,
            "name": rule_name(d.code),
            "shortDescription": {"text": help},
            "help": {"text": help, "markdown": format!("{help}\n\nSee [the finding codes]({HELP_URI}).")},
            "helpUri": HELP_URI,
        }));
    }
    (rules, index)
}

/// One result.
fn result(d: &Diagnostic, rule: usize, artifact: Value, fingerprint: String) -> Value {
    let (line, column) = if d.line == 0 {
        (1, 1)
    } else {
        (d.line, d.column.max(1))
    };
    let mut location = json!({"physicalLocation": {
        "artifactLocation": artifact,
        "region": {"startLine": line, "startColumn": column},
    }});
    if !d.path.is_empty() {
        location["logicalLocations"] = json!([{"fullyQualifiedName": d.path, "kind": "member"}]);
    }
    let mut text = d.message.clone();
    if let Some(h) = &d.hint {
        text.push_str(" Hint: ");
        text.push_str(h);
    }
    json!({
        "ruleId": d.code,
        "ruleIndex": rule,
        "level": if d.is_error() { "error" } else { "warning" },
        "message": {"text": text},
        "locations": [location],
        "partialFingerprints": {"wardFinding/v1": fingerprint},
    })
}

/// For each finding, a hash of its code, file (its artifact's URI, so the same however the
/// file was named) and field path, and how many findings with the same three came before
/// it: no line or column, so moving lines keeps it.
fn fingerprints(diagnostics: &[Diagnostic], artifacts: &[Value]) -> Vec<String> {
    let mut seen: HashMap<(&str, &str, &str), usize> = HashMap::new();
    diagnostics
        .iter()
        .zip(artifacts)
        .map(|(d, artifact)| {
            let uri = artifact["uri"].as_str().unwrap_or_default();
            let n = seen.entry((d.code, uri, &d.path)).or_default();
            *n += 1;
            let mut h = Sha256::new();
            for part in [d.code, uri, &d.path, &n.to_string()] {
                h.update(part.as_bytes());
                h.update([0]);
            }
            hex::encode(h.finalize())
        })
        .collect()
}

/// The description of `code` in the README's finding-codes table.
fn description(code: &str) -> Option<&'static str> {
    let table = &README[README.find("### Finding codes")?..];
    let row = format!("| `{code}` | ");
    let line = table.lines().find(|l| l.starts_with(&row))?;
    Some(
        line[row.len()..]
            .trim_end()
            .trim_end_matches('|')
            .trim_end(),
    )
}

/// Repository roots found so far, by folder.
#[derive(Default)]
struct Roots(HashMap<PathBuf, Option<PathBuf>>);

impl Roots {
    /// The artifact location of `file`: relative to the root of the repository that holds
    /// it. A relative name is first looked for from the current folder (a file named on the
    /// command line), and otherwise taken as relative to the root already (a file read from
    /// a Git revision).
    fn artifact(&mut self, file: &str) -> Value {
        let path = Path::new(file);
        let on_disk = if path.is_absolute() {
            Some(path.to_path_buf())
        } else {
            std::env::current_dir()
                .ok()
                .map(|cwd| cwd.join(path))
                .filter(|p| p.exists())
        };
        match on_disk.and_then(|p| self.relative(&p)) {
            Some(rel) => json!({"uri": encode(&rel), "uriBaseId": SRCROOT}),
            None if path.is_absolute() => json!({"uri": format!("file://{}", encode(file))}),
            None => json!({"uri": encode(file), "uriBaseId": SRCROOT}),
        }
    }

    /// `path` relative to the repository that holds it.
    fn relative(&mut self, path: &Path) -> Option<String> {
        let dir = path.parent()?;
        let root = self
            .0
            .entry(dir.to_path_buf())
            .or_insert_with(|| {
                dir.ancestors()
                    .find(|a| a.join(".git").exists())
                    .map(Path::to_path_buf)
            })
            .as_ref()?;
        let rel = path.strip_prefix(root).ok()?;
        Some(rel.to_string_lossy().replace('\\', "/"))
    }
}

/// A path as a URI reference: `/` kept, everything a path segment may not hold escaped.
fn encode(path: &str) -> String {
    utf8_percent_encode(path, PATH).to_string()
}

/// A short name for a diagnostic code, from its family.
fn rule_name(code: &str) -> &'static str {
    match code.get(5..6) {
        Some("Y") => "file-and-yaml",
        Some("K") => "document-envelope",
        Some("J") => "json-schema",
        Some("S") => "cilium-semantics",
        Some("D") => "repository-consistency",
        Some("L") => "lab-topology",
        _ => "ward",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code the schema crate defines, from its sources.
    fn defined_codes() -> Vec<String> {
        let sources = [
            include_str!("../../../schema/src/diagnostic.rs"),
            include_str!("../../../schema/src/topology.rs"),
        ];
        let mut codes: Vec<String> = sources
            .iter()
            .flat_map(|s| s.split("\"WARD-").skip(1))
            .map(|rest| format!("WARD-{}", &rest[..4]))
            .collect();
        codes.sort();
        codes.dedup();
        codes
    }

    #[test]
    fn every_code_has_a_description_in_the_readme() {
        let codes = defined_codes();
        assert!(codes.len() > 30, "{codes:?}");
        for code in codes {
            let d = description(&code);
            assert!(d.is_some_and(|d| d.len() > 10), "{code}: {d:?}");
        }
        assert_eq!(
            description("WARD-S009"),
            Some("Port and protocol problems.")
        );
        assert_eq!(description("WARD-X999"), None);
    }

    #[test]
    fn the_help_uri_points_at_the_readme_section() {
        assert!(HELP_URI.starts_with("https://"));
        assert!(HELP_URI.ends_with("/blob/main/README.md#finding-codes"));
        assert!(
            README.contains("\n### Finding codes\n"),
            "the anchor's heading"
        );
    }

    #[test]
    fn uris_escape_what_a_path_may_not_hold() {
        assert_eq!(encode("policies/a b#1.yaml"), "policies/a%20b%231.yaml");
        assert_eq!(encode("policies/ü.yaml"), "policies/%C3%BC.yaml");
        assert_eq!(
            encode("policies/shop/x-1_y.yaml"),
            "policies/shop/x-1_y.yaml"
        );
    }

    #[test]
    fn fingerprints_ignore_lines_and_count_repeats() {
        let d = |line| {
            Diagnostic::error("WARD-S009", "bad port")
                .at("policies/a.yaml", line, 3)
                .with_path("spec.ingress[0]")
        };
        let uri = json!({"uri": "policies/a.yaml"});
        let uris = [uri.clone(), uri.clone()];
        let before = fingerprints(&[d(4), d(20)], &uris);
        let after = fingerprints(&[d(9), d(31)], &uris);
        assert_eq!(before, after, "lines moved");
        assert_ne!(before[0], before[1], "two findings, two fingerprints");
        let other = fingerprints(&[d(4).with_path("spec.egress[0]")], &uris);
        assert_ne!(other[0], before[0], "another field");
        assert_eq!(before[0].len(), 64);
    }
}
