//! JUnit XML: one test suite, one test case per file read; a file with errors fails, with
//! each error in the failure text.

use super::Report;
use std::collections::BTreeMap;
use std::fmt::Write;
use ward_schema::Diagnostic;

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

pub(super) fn render(report: &Report<'_>) -> String {
    let mut by_file: BTreeMap<&str, Vec<&Diagnostic>> = report
        .files
        .iter()
        .map(|f| (f.as_str(), Vec::new()))
        .collect();
    for d in report.diagnostics {
        by_file.entry(d.file.as_str()).or_default().push(d);
    }
    let failures = by_file
        .values()
        .filter(|ds| ds.iter().any(|d| d.is_error()))
        .count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let name = format!("ward {}", report.command);
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{failures}\">",
        xml(&name),
        by_file.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">",
        xml(&name),
        by_file.len()
    );
    for (file, ds) in &by_file {
        let _ = write!(
            out,
            "    <testcase classname=\"ward.validate\" name=\"{}\"",
            xml(file)
        );
        let errors: Vec<&&Diagnostic> = ds.iter().filter(|d| d.is_error()).collect();
        let warnings: Vec<String> = ds
            .iter()
            .filter(|d| !d.is_error())
            .map(|d| d.to_string())
            .collect();
        if errors.is_empty() && warnings.is_empty() {
            out.push_str("/>\n");
            continue;
        }
        out.push_str(">\n");
        if let Some(first) = errors.first() {
            let body: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
            let _ = writeln!(
                out,
                "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                xml(&first.message),
                first.code,
                xml(&body.join("\n"))
            );
        }
        if !warnings.is_empty() {
            let _ = writeln!(
                out,
                "      <system-out>{}</system-out>",
                xml(&warnings.join("\n"))
            );
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
