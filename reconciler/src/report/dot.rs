//! Graphviz: the head's allowed flows between workloads (grouped by namespace), newly
//! allowed flows green, newly denied ones red and dashed. Findings become comments, so the
//! output is always a valid digraph.

use super::Report;
use crate::testing::connectivity::FlowChange;
use std::collections::BTreeMap;
use std::fmt::Write;

fn quote(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', " ")
    )
}

/// `TCP/80` → (`TCP`, 80), so ports sort by number within a protocol.
fn port_key(p: &str) -> (String, u32) {
    let (proto, n) = p.split_once('/').unwrap_or((p, ""));
    (proto.to_owned(), n.parse().unwrap_or(0))
}

fn comment(s: &str) -> String {
    s.replace('\n', " ")
}

pub(super) fn render(report: &Report<'_>) -> String {
    let mut out = String::from(
        "digraph ward {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    let _ = writeln!(
        out,
        "  // ward {}: {} error(s), {} warning(s)",
        report.command,
        report.errors(),
        report.warnings()
    );
    for d in report.diagnostics {
        let _ = writeln!(
            out,
            "  // {}: {}: {}",
            d.location(),
            d.code,
            comment(&d.message)
        );
    }
    let graph = report
        .connectivity
        .and_then(|c| c.graph.as_ref().map(|g| (c, g)));
    let Some((c, g)) = graph else {
        let why = report
            .connectivity
            .and_then(|c| c.skipped.clone())
            .unwrap_or_else(|| "no connectivity diff (use ward diff or ward plan)".to_owned());
        let _ = writeln!(out, "  // connectivity not computed: {}", comment(&why));
        out.push_str("}\n");
        return out;
    };
    let _ = writeln!(out, "  // {}", c.summary());
    let mut by_ns: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for n in &g.nodes {
        match &n.namespace {
            Some(ns) => by_ns.entry(ns.as_str()).or_default().push(&n.name),
            None => {
                let _ = writeln!(out, "  {} [shape=ellipse];", quote(&n.name));
            }
        }
    }
    for (ns, names) in by_ns {
        let _ = writeln!(
            out,
            "  subgraph {} {{\n    label={};",
            quote(&format!("cluster_{ns}")),
            quote(ns)
        );
        for n in names {
            let _ = writeln!(out, "    {};", quote(n));
        }
        out.push_str("  }\n");
    }
    let ports = |flows: &[FlowChange]| -> BTreeMap<(String, String), Vec<String>> {
        let mut m: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for f in flows {
            let v = m.entry((f.from.clone(), f.to.clone())).or_default();
            v.extend(f.ports.iter().cloned());
            v.sort_by_key(|p| port_key(p));
            v.dedup();
        }
        m
    };
    let (allowed, new, gone) = (
        ports(&g.allowed),
        ports(&c.newly_allowed),
        ports(&c.newly_denied),
    );
    let label = |set: &Vec<String>| quote(&set.join(", "));
    for ((from, to), set) in &allowed {
        let fresh = new.get(&(from.clone(), to.clone()));
        let old: Vec<String> = set
            .iter()
            .filter(|p| fresh.is_none_or(|f| !f.contains(*p)))
            .cloned()
            .collect();
        if !old.is_empty() {
            let _ = writeln!(
                out,
                "  {} -> {} [label={}];",
                quote(from),
                quote(to),
                label(&old)
            );
        }
        if let Some(f) = fresh {
            let _ = writeln!(
                out,
                "  {} -> {} [label={}, color=green, fontcolor=green, penwidth=2];",
                quote(from),
                quote(to),
                label(f)
            );
        }
    }
    for ((from, to), set) in &gone {
        let _ = writeln!(
            out,
            "  {} -> {} [label={}, color=red, fontcolor=red, style=dashed];",
            quote(from),
            quote(to),
            label(set)
        );
    }
    out.push_str("}\n");
    out
}
