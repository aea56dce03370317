//! Plain text: findings like a compiler prints them, then the plan with coloured diffs.

use super::{Report, printable, rev_label};
use crate::paint::{BOLD, CYAN, DIM, GREEN, Paint, RED, YELLOW};
use crate::plan::{Action, Change};
use crate::testing::Connectivity;
use std::fmt::Write;
use ward_schema::ResourceKey;

pub(super) fn render(report: &Report<'_>, color: bool) -> String {
    let p = Paint(color);
    let mut out = String::new();
    for d in report.diagnostics {
        let sev = if d.is_error() {
            p.on(RED, "error")
        } else {
            p.on(YELLOW, "warning")
        };
        let _ = write!(
            out,
            "{}: {sev}[{}]: {}",
            p.on(BOLD, &printable(&d.location(), &[])),
            d.code,
            printable(&d.message, &[])
        );
        if !d.path.is_empty() {
            let at = format!("(at {})", printable(&d.path, &[]));
            let _ = write!(out, " {}", p.on(DIM, &at));
        }
        out.push('\n');
        if let Some(h) = &d.hint {
            let _ = writeln!(out, "  {} {}", p.on(CYAN, "hint:"), printable(h, &[]));
        }
    }
    let (e, w) = (report.errors(), report.warnings());
    let verdict = if e == 0 {
        p.on(GREEN, "valid")
    } else {
        p.on(RED, "invalid")
    };
    let _ = writeln!(
        out,
        "{verdict}: {} file(s), {} document(s), {e} error(s), {w} warning(s){}{}",
        report.files.len(),
        report.documents,
        super::skipped_note(report.skipped),
        super::deleted_note(report.deleted)
    );
    if let Some(plan) = report.plan {
        out.push('\n');
        let heading = match (&report.base, report.command) {
            (Some(_), _) => format!(
                "Diff {} -> {}",
                rev_label(&report.base),
                rev_label(&report.head)
            ),
            (None, "apply") => format!("Applied {}", rev_label(&report.head)),
            _ => format!("Plan for {}", rev_label(&report.head)),
        };
        let _ = writeln!(out, "{}: {}", p.on(BOLD, &heading), plan.summary());
        let changes = plan
            .creates
            .iter()
            .chain(&plan.updates)
            .chain(&plan.deletes);
        for c in changes {
            render_change(&mut out, c, plan.prune, &p);
        }
        let drifted = "Drifted (changed outside ward since it was applied):";
        render_keys(&mut out, drifted, &plan.drifted, &p);
        let unmanaged = "Exist, not managed by ward (left alone; --adopt takes them over):";
        render_keys(&mut out, unmanaged, &plan.unmanaged, &p);
    }
    if let Some(c) = report.connectivity {
        render_connectivity(&mut out, c, &p);
    }
    out
}

/// A highlighted heading and one object per line under it; nothing when `keys` is empty.
fn render_keys(out: &mut String, heading: &str, keys: &[ResourceKey], p: &Paint) {
    if keys.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{}", p.on(YELLOW, heading));
    for k in keys {
        let _ = writeln!(out, "  {k}");
    }
}

fn render_connectivity(out: &mut String, c: &Connectivity, p: &Paint) {
    out.push('\n');
    if let Some(why) = &c.skipped {
        let _ = writeln!(out, "{}: not computed: {why}", p.on(BOLD, "Connectivity"));
        return;
    }
    let verdict = if c.has_changes() {
        c.summary()
    } else {
        "no change".to_owned()
    };
    let _ = writeln!(
        out,
        "{} ({}): {verdict}",
        p.on(BOLD, "Connectivity"),
        super::connectivity_scope(c)
    );
    for (allowed, line) in super::connectivity_lines(c) {
        let (mark, style) = if allowed { ("+", GREEN) } else { ("-", RED) };
        let _ = writeln!(out, "  {} {line}", p.on(style, mark));
    }
}

fn render_change(out: &mut String, c: &Change, prune: bool, p: &Paint) {
    let (mark, style, what) = match c.action {
        Action::Create => ("+", GREEN, "create"),
        Action::Update if c.adopt => ("~", YELLOW, "adopt"),
        Action::Update => ("~", YELLOW, "change"),
        Action::Delete if prune => ("-", RED, "prune"),
        Action::Delete => ("-", RED, "prune (with --prune)"),
    };
    let origin = c
        .origin
        .as_deref()
        .map(|o| format!(" ({o})"))
        .unwrap_or_default();
    let drift = if c.drifted { " [drifted]" } else { "" };
    let _ = writeln!(
        out,
        "\n{} {} {what}{origin}{drift}",
        p.on(style, mark),
        p.on(BOLD, &c.key.to_string())
    );
    for line in c.diff.lines().skip(2) {
        let styled = if line.starts_with('+') {
            p.on(GREEN, line)
        } else if line.starts_with('-') {
            p.on(RED, line)
        } else if line.starts_with("@@") {
            p.on(CYAN, line)
        } else {
            line.to_owned()
        };
        let _ = writeln!(out, "    {styled}");
    }
}
