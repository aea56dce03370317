//! Markdown for a pull-request comment: a verdict line, findings as a table, the plan
//! summary and one collapsible diff per object.

use super::{Report, rev_label};
use crate::plan::Action;
use std::fmt::Write;

/// Marker that lets CI find and update its own earlier comment.
pub const COMMENT_MARKER: &str = "<!-- ward-report -->";

fn cell(s: &str) -> String {
    super::printable(s, &['\n'])
        .replace('|', "\\|")
        .replace('\n', " ")
}

pub(super) fn render(report: &Report<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{COMMENT_MARKER}");
    let title = match &report.base {
        Some(_) => format!(
            "ward diff `{}` → `{}`",
            rev_label(&report.base),
            rev_label(&report.head)
        ),
        None => format!("ward {}", report.command),
    };
    let _ = writeln!(out, "### {title}\n");
    let (e, w) = (report.errors(), report.warnings());
    if e == 0 {
        let _ = writeln!(
            out,
            "✅ **Valid**: {} file(s), {} document(s), {w} warning(s){}.\n",
            report.files.len(),
            report.documents,
            super::skipped_note(report.skipped)
        );
    } else {
        let _ = writeln!(
            out,
            "❌ **Invalid**: {e} error(s), {w} warning(s). Nothing will be applied until they are fixed.\n"
        );
    }
    if !report.diagnostics.is_empty() {
        let _ = writeln!(
            out,
            "| | Location | Code | Problem | Hint |\n|---|---|---|---|---|"
        );
        for d in report.diagnostics {
            let icon = if d.is_error() { "❌" } else { "⚠️" };
            let _ = writeln!(
                out,
                "| {icon} | `{}` | {} | {} | {} |",
                cell(&d.location()),
                d.code,
                cell(&d.message),
                cell(d.hint.as_deref().unwrap_or(""))
            );
        }
        out.push('\n');
    }
    if let Some(plan) = report.plan {
        let _ = writeln!(out, "**Changes:** {}\n", plan.summary());
        for c in plan
            .creates
            .iter()
            .chain(&plan.updates)
            .chain(&plan.deletes)
        {
            let verb = match c.action {
                Action::Create => "➕ create",
                Action::Update if c.adopt => "🤝 adopt",
                Action::Update => "✏️ change",
                Action::Delete => "🗑️ prune",
            };
            let origin = c
                .origin
                .as_deref()
                .map(|o| format!(" — `{o}`"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "<details><summary>{verb} <code>{}</code>{origin}</summary>\n",
                c.key
            );
            let _ = writeln!(
                out,
                "```diff\n{}```\n</details>\n",
                c.diff
                    .lines()
                    .skip(2)
                    .map(|l| format!("{l}\n"))
                    .collect::<String>()
            );
        }
        if !plan.has_changes() && plan.deletes.is_empty() {
            let _ = writeln!(out, "No object changes.");
        }
        if !plan.unmanaged.is_empty() {
            let _ = writeln!(
                out,
                "\n**Exist, not managed by ward** (left alone; `--adopt` takes them over): {}\n",
                plan.unmanaged
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if let Some(c) = report.connectivity {
        let _ = writeln!(out, "\n#### Connectivity\n");
        if let Some(why) = &c.skipped {
            let _ = writeln!(out, "Not computed: {}.", cell(why));
            return out;
        }
        let _ = writeln!(out, "Verdicts between {}.\n", super::connectivity_scope(c));
        let lines = super::connectivity_lines(c);
        if lines.is_empty() {
            let _ = writeln!(out, "No connectivity change.");
        }
        for (allowed, line) in lines {
            let icon = if allowed { "🟢" } else { "🔴" };
            let _ = writeln!(out, "- {icon} {}", line.replace('`', "'"));
        }
    }
    out
}
