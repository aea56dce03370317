//! Markdown for a pull-request comment that fits one: a verdict line and a summary table
//! first (objects created, changed and pruned per kind; findings; connectivity changes),
//! then the findings, one collapsed `<details>` diff per object, the objects ward leaves
//! alone, and the connectivity diff grouped by workloads. Past the limit, whole rows and
//! blocks are left out ([`fit`]), with a line saying how much and where the rest is.

mod fit;
mod flows;

use super::{Report, printable, rev_label};
use crate::plan::{Action, Change, Plan};
use crate::testing::Connectivity;
use fit::Section;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Marker that lets CI find and update its own earlier comment.
pub const COMMENT_MARKER: &str = "<!-- ward-report -->";

/// Text for a table cell: no line breaks, no `|`.
fn cell(s: &str) -> String {
    printable(s, &['\n']).replace('|', "\\|").replace('\n', " ")
}

/// `s` as inline code, whatever backticks it holds.
fn code(s: &str) -> String {
    let s = cell(s);
    let fence = "`".repeat(longest_run(&s, '`') + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

fn longest_run(s: &str, c: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for x in s.chars() {
        run = if x == c { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// The comment for `report`, at most `limit` characters (0: no limit).
pub(super) fn render(report: &Report<'_>, limit: usize) -> String {
    let mut sections = vec![findings(report)];
    if let Some(plan) = report.plan {
        sections.push(objects(plan));
        sections.push(unmanaged(plan));
    }
    if let Some(c) = report.connectivity {
        sections.push(connectivity(c));
    }
    fit::fit(head(report), sections, limit, report.command)
}

/// The marker, the title, the verdict and the summary.
fn head(report: &Report<'_>) -> String {
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
            cell(&super::skipped_note(report.skipped))
        );
    } else {
        let _ = writeln!(
            out,
            "❌ **Invalid**: {e} error(s), {w} warning(s). Nothing will be applied until they are fixed.\n"
        );
    }
    if let Some(plan) = report.plan {
        out.push_str(&kinds_table(plan));
        let _ = writeln!(out, "**Changes:** {}\n", plan.summary());
    }
    match report.connectivity.filter(|c| c.skipped.is_none()) {
        Some(c) if c.has_changes() => {
            let _ = writeln!(
                out,
                "**Connectivity:** {} flow(s) between {} workload pair(s).\n",
                c.summary(),
                flows::rows(c)
                    .iter()
                    .map(|r| r.from.len() * r.to.len())
                    .sum::<usize>()
            );
        }
        Some(_) => out.push_str("**Connectivity:** no change.\n\n"),
        None => {}
    }
    out
}

/// Objects created, changed and pruned, per kind, with a total row.
fn kinds_table(plan: &Plan) -> String {
    if !plan.has_changes() && plan.deletes.is_empty() {
        return String::new();
    }
    let mut counts: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    for (column, changes) in [&plan.creates, &plan.updates, &plan.deletes]
        .into_iter()
        .enumerate()
    {
        for c in changes {
            counts.entry(c.key.kind.to_string()).or_default()[column] += 1;
        }
    }
    let prune = if plan.prune || plan.deletes.is_empty() {
        "🗑️ prune"
    } else {
        "🗑️ prune (with `--prune`)"
    };
    let mut out = format!("| kind | ➕ create | ✏️ change | {prune} |\n|---|--:|--:|--:|\n");
    for (kind, [c, u, d]) in &counts {
        let _ = writeln!(out, "| {kind} | {c} | {u} | {d} |");
    }
    let _ = writeln!(
        out,
        "| **all** | **{}** | **{}** | **{}** |\n",
        plan.creates.len(),
        plan.updates.len(),
        plan.deletes.len()
    );
    out
}

/// The findings as table rows.
fn findings(report: &Report<'_>) -> Section {
    let mut s = Section {
        what: "findings",
        priority: 0,
        thirds: 1,
        ..Section::default()
    };
    if report.diagnostics.is_empty() {
        return s;
    }
    s.intro = "| | Location | Code | Problem | Hint |\n|---|---|---|---|---|\n".into();
    s.items = report
        .diagnostics
        .iter()
        .map(|d| {
            let icon = if d.is_error() { "❌" } else { "⚠️" };
            format!(
                "| {icon} | {} | {} | {} | {} |\n",
                code(&d.location()),
                d.code,
                cell(&d.message),
                cell(d.hint.as_deref().unwrap_or(""))
            )
        })
        .collect();
    s.outro = "\n".into();
    s
}

/// One collapsed diff per object.
fn objects(plan: &Plan) -> Section {
    let changes: Vec<&Change> = plan
        .creates
        .iter()
        .chain(&plan.updates)
        .chain(&plan.deletes)
        .collect();
    Section {
        what: "object diffs",
        intro: if changes.is_empty() {
            "No object changes.\n\n".into()
        } else {
            String::new()
        },
        items: changes.into_iter().map(object).collect(),
        priority: 2,
        thirds: 3,
        ..Section::default()
    }
}

/// `<details>` with the object's diff in a fence that no line of the diff can close. The
/// summary line is HTML (markdown is not rendered there).
fn object(c: &Change) -> String {
    let verb = match c.action {
        Action::Create => "➕ create",
        Action::Update if c.adopt => "🤝 adopt",
        Action::Update => "✏️ change",
        Action::Delete => "🗑️ prune",
    };
    let origin = c
        .origin
        .as_deref()
        .map(|o| format!(" — <code>{}</code>", html(o)))
        .unwrap_or_default();
    let body: String = c.diff.lines().skip(2).map(|l| format!("{l}\n")).collect();
    let fence = "`".repeat(longest_run(&body, '`').max(2) + 1);
    format!(
        "<details><summary>{verb} <code>{}</code>{origin}</summary>\n\n{fence}diff\n{body}{fence}\n</details>\n\n",
        html(&c.key.to_string())
    )
}

/// Text for HTML.
fn html(s: &str) -> String {
    printable(s, &[])
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Desired objects that exist but ward did not apply.
fn unmanaged(plan: &Plan) -> Section {
    let mut s = Section {
        what: "unmanaged objects",
        priority: 3,
        thirds: 3,
        ..Section::default()
    };
    if plan.unmanaged.is_empty() {
        return s;
    }
    s.intro = "**Exist, not managed by ward** (left alone; `--adopt` takes them over):\n\n".into();
    s.items = plan
        .unmanaged
        .iter()
        .map(|k| format!("- {}\n", code(&k.to_string())))
        .collect();
    s.outro = "\n".into();
    s
}

/// The connectivity diff, one table row per group of flows.
fn connectivity(c: &Connectivity) -> Section {
    let mut s = Section {
        what: "connectivity rows",
        intro: "#### Connectivity\n\n".into(),
        priority: 1,
        thirds: 1,
        ..Section::default()
    };
    if let Some(why) = &c.skipped {
        let _ = writeln!(s.intro, "Not computed: {}.", cell(why));
        return s;
    }
    let _ = writeln!(
        s.intro,
        "Verdicts between {}.\n",
        cell(&super::connectivity_scope(c))
    );
    let rows = flows::rows(c);
    if rows.is_empty() {
        s.intro.push_str("No connectivity change.\n");
        return s;
    }
    s.intro
        .push_str("| | from | to | ports | why |\n|---|---|---|---|---|\n");
    s.items = rows
        .iter()
        .map(|r| {
            let what = if r.allowed {
                "🟢 newly allowed"
            } else {
                "🔴 newly denied"
            };
            format!(
                "| {what} | {} | {} | {} | {} |\n",
                cell(&r.from.join(", ")),
                cell(&r.to.join(", ")),
                r.ports,
                cell(&r.why)
            )
        })
        .collect();
    s.outro = "\n".into();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_code_holds_backticks() {
        assert_eq!(code("a.yaml:3"), "`a.yaml:3`");
        assert_eq!(code("a`b.yaml"), "``a`b.yaml``");
        assert_eq!(code("`x"), "`` `x ``");
        assert_eq!(code("a|b"), "`a\\|b`");
    }

    #[test]
    fn a_fence_is_longer_than_any_backtick_run_in_the_diff() {
        let key =
            ward_schema::ResourceKey::new(ward_schema::Kind::CiliumNetworkPolicy, Some("ns"), "p");
        let change = Change {
            key,
            action: Action::Create,
            before: None,
            after: None,
            after_fingerprint: None,
            diff: "--- a\n+++ b\n@@ -0,0 +1 @@\n+description: \"````\"\n".into(),
            origin: None,
            drifted: false,
            adopt: false,
        };
        let out = object(&change);
        assert!(
            out.contains("\n`````diff\n@@ -0,0 +1 @@\n+description: \"````\"\n`````\n</details>"),
            "{out}"
        );
    }
}
