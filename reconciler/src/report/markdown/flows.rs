//! The connectivity diff grouped for reading: one row per source → destination and reason
//! with the ports merged (`TCP/8080-8082`), then rows that differ only in the destination
//! merged, then rows that differ only in the source.

use crate::report::flow_reason;
use crate::testing::Connectivity;
use std::collections::BTreeMap;

/// One row: newly allowed (or denied) from these workloads to those, on these ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FlowRow {
    /// Newly allowed (else newly denied).
    pub allowed: bool,
    /// Source workloads.
    pub from: Vec<String>,
    /// Destination workloads.
    pub to: Vec<String>,
    /// `TCP/80, TCP/8080-8082`.
    pub ports: String,
    /// The head's reason (`allowed by …`).
    pub why: String,
}

/// The rows of `c`, newly allowed first.
pub(super) fn rows(c: &Connectivity) -> Vec<FlowRow> {
    // (newly denied?, from, to, why) → ports; `false` sorts the newly allowed first.
    let mut pairs: BTreeMap<(bool, &str, &str, String), Vec<&str>> = BTreeMap::new();
    let changes = c.newly_allowed.iter().map(|f| (true, f));
    for (allowed, f) in changes.chain(c.newly_denied.iter().map(|f| (false, f))) {
        pairs
            .entry((!allowed, &f.from, &f.to, flow_reason(f)))
            .or_default()
            .extend(f.ports.iter().map(String::as_str));
    }
    // Same source, ports and reason: one row for all destinations.
    let mut by_source: BTreeMap<(bool, &str, String, String), Vec<String>> = BTreeMap::new();
    for ((denied, from, to, why), ports) in pairs {
        by_source
            .entry((denied, from, merge_ports(&ports), why))
            .or_default()
            .push(to.to_owned());
    }
    // Same destinations, ports and reason: one row for all sources.
    let mut by_target: BTreeMap<(bool, Vec<String>, String, String), Vec<String>> = BTreeMap::new();
    for ((denied, from, ports, why), to) in by_source {
        by_target
            .entry((denied, to, ports, why))
            .or_default()
            .push(from.to_owned());
    }
    let mut rows: Vec<FlowRow> = by_target
        .into_iter()
        .map(|((denied, to, ports, why), from)| FlowRow {
            allowed: !denied,
            from,
            to,
            ports,
            why,
        })
        .collect();
    // Newly allowed first, then by the first source and the first destination.
    rows.sort_by(|a, b| {
        let key = |r: &FlowRow| (!r.allowed, r.from.first().cloned(), r.to.first().cloned());
        key(a)
            .cmp(&key(b))
            .then_with(|| (&a.from, &a.to).cmp(&(&b.from, &b.to)))
    });
    rows
}

/// `TCP/80, TCP/8080-8082, UDP/53` from the ports of one pair: sorted by protocol and
/// number, runs of consecutive numbers as ranges; what does not parse as `PROTO/N` is kept.
pub(super) fn merge_ports(ports: &[&str]) -> String {
    let mut numbered: Vec<(&str, u32)> = Vec::new();
    let mut other: Vec<&str> = Vec::new();
    for p in ports {
        match p
            .split_once('/')
            .and_then(|(proto, n)| Some((proto, n.parse::<u32>().ok()?)))
        {
            Some(pn) => numbered.push(pn),
            None => other.push(p),
        }
    }
    numbered.sort_unstable();
    numbered.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < numbered.len() {
        let (proto, first) = numbered[i];
        let mut last = first;
        while numbered.get(i + 1) == Some(&(proto, last + 1)) {
            last += 1;
            i += 1;
        }
        parts.push(if last == first {
            format!("{proto}/{first}")
        } else {
            format!("{proto}/{first}-{last}")
        });
        i += 1;
    }
    other.sort_unstable();
    other.dedup();
    parts.extend(other.into_iter().map(str::to_owned));
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::connectivity::FlowChange;

    fn flow(from: &str, to: &str, ports: &[&str], verdict: &str) -> FlowChange {
        FlowChange {
            from: from.into(),
            to: to.into(),
            ports: ports.iter().map(|p| (*p).to_owned()).collect(),
            verdict: verdict.into(),
            rule: None,
            unresolved: Vec::new(),
            not_evaluated: Vec::new(),
        }
    }

    #[test]
    fn ports_merge_into_ranges() {
        assert_eq!(
            merge_ports(&[
                "TCP/8081", "UDP/53", "TCP/80", "TCP/8080", "TCP/8082", "TCP/80"
            ]),
            "TCP/80, TCP/8080-8082, UDP/53"
        );
        assert_eq!(merge_ports(&["ICMP/8", "any"]), "ICMP/8, any");
        assert_eq!(merge_ports(&[]), "");
    }

    #[test]
    fn one_source_to_many_and_many_to_one_become_one_row_each() {
        let ports = ["TCP/53", "TCP/80"];
        let c = Connectivity {
            newly_allowed: vec![
                flow("shop/backend", "batch/job", &ports, "allow"),
                flow("shop/backend", "host", &ports, "allow"),
                flow("shop/admin", "shop/backend", &["TCP/8080"], "allow"),
                flow("shop/admin", "shop/backend", &["TCP/8081"], "allow"),
            ],
            newly_denied: vec![
                flow("world", "shop/admin", &ports, "default-deny"),
                flow("batch/job", "shop/admin", &ports, "default-deny"),
            ],
            ..Connectivity::default()
        };
        let rows = rows(&c);
        let show: Vec<String> = rows
            .iter()
            .map(|r| format!("{} {:?} → {:?} {}", r.allowed, r.from, r.to, r.ports))
            .collect();
        assert_eq!(
            show,
            [
                r#"true ["shop/admin"] → ["shop/backend"] TCP/8080-8081"#,
                r#"true ["shop/backend"] → ["batch/job", "host"] TCP/53, TCP/80"#,
                r#"false ["batch/job", "world"] → ["shop/admin"] TCP/53, TCP/80"#,
            ]
        );
        assert_eq!(rows[0].why, "no rule restricts it");
        assert_eq!(
            rows[2].why,
            "default deny (policy-enforcement-mode: always)"
        );
    }
}
