//! JUnit XML: one test suite, one test case per file read; a file with errors fails, with
//! each error in the failure text.
//!
//! Written with `quick-junit`, which escapes the text and drops what XML 1.0 cannot carry
//! (control characters, ANSI escapes); `ward test`'s JUnit output (`testing::render`) is
//! written the same way.

use super::Report;
use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use std::collections::BTreeMap;
use ward_schema::Diagnostic;

pub(super) fn render(report: &Report<'_>) -> String {
    let mut by_file: BTreeMap<&str, Vec<&Diagnostic>> = report
        .files
        .iter()
        .map(|f| (f.as_str(), Vec::new()))
        .collect();
    for d in report.diagnostics {
        by_file.entry(d.file.as_str()).or_default().push(d);
    }
    let name = format!("ward {}", report.command);
    let mut suite = TestSuite::new(name.as_str());
    for (file, ds) in &by_file {
        let errors: Vec<&&Diagnostic> = ds.iter().filter(|d| d.is_error()).collect();
        let warnings: Vec<String> = ds
            .iter()
            .filter(|d| !d.is_error())
            .map(|d| d.to_string())
            .collect();
        let status = match errors.first() {
            Some(first) => {
                let body: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status
                    .set_message(first.message.as_str())
                    .set_type(first.code.to_string())
                    .set_description(body.join("\n"));
                status
            }
            None => TestCaseStatus::success(),
        };
        let mut case = TestCase::new(*file, status);
        case.set_classname("ward.validate");
        if !warnings.is_empty() {
            case.set_system_out(warnings.join("\n"));
        }
        suite.add_test_case(case);
    }
    let mut xml = quick_junit::Report::new(name);
    xml.add_test_suite(suite);
    to_xml(&xml)
}

/// The report as an XML document (declaration, four-space indentation, a final newline).
fn to_xml(report: &quick_junit::Report) -> String {
    report
        .to_string()
        .unwrap_or_else(|e| unreachable!("writing XML into memory cannot fail: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

    #[test]
    fn escapes_markup_and_drops_control_characters() {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        status
            .set_message("a \"quoted\" <tag> & 'apostrophe'")
            .set_type("WARD-S009")
            .set_description("line 1\x1b[31m red\x1b[0m\nline\x07 2 <b>");
        let mut suite = TestSuite::new("ward validate");
        suite.add_test_case(TestCase::new("bad\x01name.yaml", status));
        let mut report = Report::new("ward validate");
        report.add_test_suite(suite);
        let xml = super::to_xml(&report);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
        assert!(
            xml.contains(
                "message=\"a &quot;quoted&quot; &lt;tag&gt; &amp; &apos;apostrophe&apos;\""
            ),
            "{xml}"
        );
        assert!(xml.contains("name=\"badname.yaml\""), "{xml}");
        assert!(
            xml.contains(">line 1 red\nline 2 &lt;b&gt;</failure>"),
            "{xml}"
        );
        assert!(
            !xml.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r'),
            "no control characters: {xml:?}"
        );
        assert!(xml.ends_with("</testsuites>\n"), "{xml}");
    }
}
