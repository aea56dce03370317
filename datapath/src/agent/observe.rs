//! `ward observe`: follow the verdict events of one or more nodes, a small Hubble. Each
//! event names both ends (pod names from the topology when given), the port, the verdict and
//! the rule that decided (from the agent's `rules.json`), or that no rule allowed the flow.

use super::run::AgentConfig;
use crate::bpf::PIN_ROOT;
use crate::bpf::events::{EventReader, VerdictEvent};
use crate::bpf::maps::Verdict;
use anyhow::{Result, bail};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use ward_schema::topology::Topology;

/// What to show and for how long.
#[derive(Debug, Clone, Default)]
pub struct ObserveOptions {
    /// Nodes to follow; all pinned nodes when empty.
    pub nodes: Vec<String>,
    /// Only events with this pod (`ns/name` or `name`) at either end.
    pub pod: Option<String>,
    /// Only `allowed`, `denied`, `default-deny`, or `dropped` (both drops).
    pub verdict: Option<String>,
    /// Only this destination port.
    pub port: Option<u16>,
    /// JSON lines instead of text.
    pub json: bool,
    /// Stop after this many events.
    pub count: Option<usize>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Names pods by address.
    pub topology: Option<Topology>,
    /// The agent's run directory, for rule names (default: where the node's agent recorded
    /// it, see [`AgentConfig::locate_run_dir`]); only with a single node.
    pub run_dir: Option<std::path::PathBuf>,
}

/// Follows events until the count or duration is reached (or forever), writing one line each.
pub fn run(opts: &ObserveOptions, out: &mut dyn Write) -> Result<usize> {
    let nodes = if opts.nodes.is_empty() {
        pinned_nodes()?
    } else {
        opts.nodes.clone()
    };
    if nodes.is_empty() {
        bail!("no node datapath is pinned under {PIN_ROOT}; start `ward-agent run` first");
    }
    if let Some(v) = &opts.verdict
        && !["allowed", "denied", "default-deny", "dropped"].contains(&v.as_str())
    {
        bail!("unknown verdict {v:?}: use allowed, denied, default-deny or dropped");
    }
    if opts.run_dir.is_some() && nodes.len() != 1 {
        bail!("--run-dir names one agent's run directory: follow a single node (--node)");
    }
    let mut readers: Vec<(String, EventReader, BTreeMap<u32, String>)> = Vec::new();
    for n in nodes {
        let reader = EventReader::open(&n)?;
        let run_dir = opts
            .run_dir
            .clone()
            .unwrap_or_else(|| AgentConfig::locate_run_dir(&n));
        readers.push((n.clone(), reader, read_rules(&run_dir.join("rules.json"))));
    }
    let names = pod_names(opts.topology.as_ref());
    let start = Instant::now();
    let done = |shown: usize| {
        opts.count.is_some_and(|c| shown >= c)
            || opts.duration.is_some_and(|d| start.elapsed() >= d)
    };
    let mut shown = 0;
    loop {
        if done(shown) {
            return Ok(shown);
        }
        let mut idle = true;
        for (node, reader, rules) in &mut readers {
            // Under a flood the ring never empties: the count and the duration are checked
            // after every event, not only when the ring runs dry.
            while let Some(e) = reader.try_next() {
                idle = false;
                shown += usize::from(emit(opts, &names, node, rules, &e, out)?);
                if done(shown) {
                    return Ok(shown);
                }
            }
        }
        if idle {
            // One reader waits; the others are polled again right after. (The loop's first
            // check stops at the count.)
            if let Some((node, r, rules)) = readers.first_mut()
                && let Some(e) = r.next(Duration::from_millis(100))?
            {
                shown += usize::from(emit(opts, &names, node, rules, &e, out)?);
            }
        }
    }
}

/// Writes `e` when it passes the filters; whether it did.
fn emit(
    opts: &ObserveOptions,
    names: &BTreeMap<IpAddr, String>,
    node: &str,
    rules: &BTreeMap<u32, String>,
    e: &VerdictEvent,
    out: &mut dyn Write,
) -> Result<bool> {
    if !matches(opts, names, e) {
        return Ok(false);
    }
    writeln!(out, "{}", render(opts.json, node, names, rules, e))?;
    out.flush()?;
    Ok(true)
}

/// Nodes with a pinned datapath.
fn pinned_nodes() -> Result<Vec<String>> {
    let Ok(dir) = std::fs::read_dir(PIN_ROOT) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<String> = dir
        .flatten()
        .filter(|e| e.path().join("ward_events").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    Ok(out)
}

fn read_rules(path: &Path) -> BTreeMap<u32, String> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<BTreeMap<String, String>>(&b).ok())
        .map(|m| {
            m.into_iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
                .collect()
        })
        .unwrap_or_default()
}

fn pod_names(t: Option<&Topology>) -> BTreeMap<IpAddr, String> {
    let mut m = BTreeMap::new();
    if let Some(t) = t {
        for p in &t.pods {
            for ip in std::iter::once(IpAddr::V4(p.ip)).chain(p.ipv6.map(IpAddr::V6)) {
                m.insert(ip, p.full_name());
            }
        }
        for ip in t.world.all_addresses() {
            m.insert(ip.into(), t.world.name.clone());
        }
        for ip in &t.world.ipv6 {
            m.insert((*ip).into(), t.world.name.clone());
        }
        for n in &t.nodes {
            for ip in std::iter::once(IpAddr::V4(n.ip)).chain(n.ipv6.map(IpAddr::V6)) {
                m.insert(ip, format!("node/{}", n.name));
            }
        }
    }
    m
}

fn verdict_name(e: &VerdictEvent) -> &'static str {
    match e.verdict() {
        Some(Verdict::Allowed) => "allowed",
        Some(Verdict::Denied) => "denied",
        Some(Verdict::DefaultDeny) => "default-deny",
        _ => "unknown",
    }
}

fn matches(opts: &ObserveOptions, names: &BTreeMap<IpAddr, String>, e: &VerdictEvent) -> bool {
    let v = verdict_name(e);
    let verdict_ok = match opts.verdict.as_deref() {
        None => true,
        Some("dropped") => v == "denied" || v == "default-deny",
        Some(want) => v == want,
    };
    let pod_ok = opts.pod.as_deref().is_none_or(|p| {
        [e.saddr(), e.daddr()].iter().any(|ip| {
            names
                .get(ip)
                .is_some_and(|n| n == p || n.rsplit('/').next() == Some(p))
        })
    });
    verdict_ok && pod_ok && opts.port.is_none_or(|p| e.dport() == p)
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        132 => "SCTP".into(),
        n => n.to_string(),
    }
}

fn render(
    json: bool,
    node: &str,
    names: &BTreeMap<IpAddr, String>,
    rules: &BTreeMap<u32, String>,
    e: &VerdictEvent,
) -> String {
    let name = |ip: IpAddr| names.get(&ip).cloned().unwrap_or_else(|| ip.to_string());
    // An unnamed IPv6 destination in brackets, so its port stays apart from the address.
    let dst_name = match (names.get(&e.daddr()), e.daddr()) {
        (None, IpAddr::V6(a)) => format!("[{a}]"),
        _ => name(e.daddr()),
    };
    let rule = match (e.rule_id(), e.verdict()) {
        (0, Some(Verdict::DefaultDeny)) => "no rule allows it (default deny)".to_owned(),
        (0, _) => "no policy selects the endpoint in this direction".to_owned(),
        (id, _) => rules
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("rule {id}")),
    };
    let direction = e.direction().to_string();
    if json {
        return serde_json::json!({
            "version": 1, "command": "observe",
            "node": node, "verdict": verdict_name(e), "direction": direction,
            "source": {"name": name(e.saddr()), "ip": e.saddr().to_string(), "port": e.sport(), "identity": e.src_identity()},
            "destination": {"name": name(e.daddr()), "ip": e.daddr().to_string(), "port": e.dport(), "identity": e.dst_identity()},
            "protocol": proto_name(e.proto()), "rule": rule, "ruleId": e.rule_id(),
        })
        .to_string();
    }
    format!(
        "{node:<10} {:<12} {} (id {}) -> {}:{}/{} (id {}) [{direction} of the {}] {rule}",
        verdict_name(e).to_uppercase(),
        name(e.saddr()),
        e.src_identity(),
        dst_name,
        e.dport(),
        proto_name(e.proto()),
        e.dst_identity(),
        if direction == "egress" {
            "source"
        } else {
            "destination"
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Each JSON line carries the output format's version and the command, as every other
    /// command's JSON does (`schema/json/output/v1.schema.json`, `$defs/observe`).
    #[test]
    fn json_lines_carry_the_format_version() {
        let mut raw = [0u8; VerdictEvent::SIZE];
        raw[12..16].copy_from_slice(&300u32.to_ne_bytes());
        raw[54..56].copy_from_slice(&80u16.to_be_bytes()); // ports in network order
        raw[56] = 6;
        raw[60..64].copy_from_slice(&7u32.to_ne_bytes());
        let e = VerdictEvent::from_bytes(&raw).unwrap();
        let rules = BTreeMap::from([(7, "CiliumNetworkPolicy/shop/x spec.ingress[0]".to_owned())]);
        let line = render(true, "node-a", &BTreeMap::new(), &rules, &e);
        let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["command"], "observe");
        assert_eq!(doc["node"], "node-a");
        assert_eq!(doc["source"]["identity"], 300);
        assert_eq!(doc["destination"]["port"], 80);
        assert_eq!(doc["protocol"], "TCP");
        assert_eq!(doc["rule"], "CiliumNetworkPolicy/shop/x spec.ingress[0]");
        assert!(!line.contains('\n'), "one event per line");
    }

    /// IPv6 addresses: a named one by its name, an unnamed destination in brackets so the
    /// port stays apart; JSON carries the address as written.
    #[test]
    fn ipv6_events_name_pods_and_bracket_unnamed_addresses() {
        let (pod, world): (IpAddr, IpAddr) = (
            "fd00:10::2".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        );
        let mut raw = [0u8; VerdictEvent::SIZE];
        let IpAddr::V6(p6) = pod else { unreachable!() };
        let IpAddr::V6(w6) = world else {
            unreachable!()
        };
        raw[20..36].copy_from_slice(&p6.octets());
        raw[36..52].copy_from_slice(&w6.octets());
        raw[54..56].copy_from_slice(&128u16.to_be_bytes());
        raw[56] = 58;
        raw[57] = 1; // egress
        raw[58] = 2; // default deny
        raw[59] = 6; // IPv6
        let e = VerdictEvent::from_bytes(&raw).unwrap();
        let names = BTreeMap::from([(pod, "shop/web".to_owned())]);
        let text = render(false, "node-a", &names, &BTreeMap::new(), &e);
        assert!(
            text.contains("shop/web (id 0) -> [2001:db8::1]:128/ICMPv6"),
            "{text}"
        );
        let doc: serde_json::Value =
            serde_json::from_str(&render(true, "node-a", &names, &BTreeMap::new(), &e)).unwrap();
        assert_eq!(doc["destination"]["ip"], "2001:db8::1");
        assert_eq!(doc["source"]["name"], "shop/web");
        assert_eq!(doc["protocol"], "ICMPv6");
    }
}
