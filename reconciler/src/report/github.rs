//! GitHub Actions workflow commands: one `::error`/`::warning` line per finding, so the
//! finding shows on the pull request's changed line, and a `::notice` with the plan summary.

use super::Report;
use std::fmt::Write;
use ward_schema::Diagnostic;

/// Escapes a message (data) as the runner expects; other control characters are written
/// as `\u{…}`.
pub(crate) fn escape_data(s: &str) -> String {
    super::printable(s, &['\r', '\n'])
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value (also `:` and `,`).
pub(crate) fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// One `::error` or `::warning` line per finding, at its file, line and column.
pub(crate) fn annotations(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let level = if d.is_error() { "error" } else { "warning" };
        let mut props = format!("file={}", escape_property(&d.file));
        if d.line > 0 {
            let _ = write!(props, ",line={},col={}", d.line, d.column);
        }
        let _ = write!(
            props,
            ",title={}",
            escape_property(&format!("ward {}", d.code))
        );
        let mut msg = d.message.clone();
        if let Some(h) = &d.hint {
            msg.push_str("\nhint: ");
            msg.push_str(h);
        }
        let _ = writeln!(out, "::{level} {props}::{}", escape_data(&msg));
    }
    out
}

pub(super) fn render(report: &Report<'_>) -> String {
    let mut out = annotations(report.diagnostics);
    if let Some(plan) = report.plan {
        let _ = writeln!(
            out,
            "::notice title=ward {}::{}",
            report.command,
            escape_data(&plan.summary())
        );
    }
    if let Some(c) = report.connectivity.filter(|c| c.skipped.is_none()) {
        let mut msg = format!("connectivity: {}", c.summary());
        for (_, line) in super::connectivity_lines(c) {
            msg.push('\n');
            msg.push_str(&line);
        }
        let _ = writeln!(
            out,
            "::notice title=ward connectivity::{}",
            escape_data(&msg)
        );
    }
    let _ = writeln!(
        out,
        "ward: {} error(s), {} warning(s){}",
        report.errors(),
        report.warnings(),
        super::deleted_note(report.deleted)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_the_runner() {
        assert_eq!(escape_data("50%\nx"), "50%25%0Ax");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
    }
}
