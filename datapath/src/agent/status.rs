//! `ward-agent status`: what a node's pinned maps hold (endpoints, identities, map sizes,
//! counters) and what the agent last synced (its run directory). Works while the agent is
//! down: the maps are pinned.

use super::run::AgentConfig;
use crate::bpf::maps::NodeMaps;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Prints the status of `node`, as text or JSON.
pub fn print(node: &str, json: bool) -> Result<()> {
    let doc = collect(node)?;
    let text = if json { serde_json::to_string_pretty(&doc)? + "\n" } else { render(&doc) };
    print!("{text}");
    Ok(())
}

/// The status document of `node`.
pub fn collect(node: &str) -> Result<serde_json::Value> {
    let maps = NodeMaps::open_pinned(node).with_context(|| format!("no datapath is pinned for node {node}; has `ward-agent run --node {node}` run?"))?;
    let agent: serde_json::Value = std::fs::read(AgentConfig::default_run_dir(node).join("status.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    let names: BTreeMap<u64, String> = agent
        .get("endpoints")
        .and_then(|e| e.as_array())
        .map(|a| a.iter().filter_map(|e| Some((e.get("ep")?.as_u64()?, e.get("name")?.as_str()?.to_owned()))).collect())
        .unwrap_or_default();
    let endpoints: Vec<serde_json::Value> = maps
        .endpoints()?
        .into_iter()
        .map(|(ifindex, info)| {
            serde_json::json!({
                "name": names.get(&u64::from(info.ep_id)),
                "ifindex": ifindex, "ep": info.ep_id, "identity": info.identity,
            })
        })
        .collect();
    let sizes: Vec<serde_json::Value> = maps.sizes()?.into_iter().map(|s| serde_json::json!({"map": s.name, "entries": s.entries, "max": s.max_entries})).collect();
    let counters: Vec<serde_json::Value> = maps
        .counters()?
        .into_iter()
        .map(|c| {
            serde_json::json!({
                "endpoint": names.get(&u64::from(c.ep_id)).cloned().unwrap_or_else(|| c.ep_id.to_string()),
                "direction": c.direction.to_string(),
                "verdict": c.verdict.map(|v| format!("{v:?}").to_lowercase()),
                "packets": c.packets, "bytes": c.bytes,
            })
        })
        .collect();
    let running = agent.get("pid").and_then(serde_json::Value::as_u64).is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
    Ok(serde_json::json!({
        "node": node,
        "agentRunning": running,
        "revision": agent.get("revision"),
        "endpoints": endpoints,
        "maps": sizes,
        "counters": counters,
    }))
}

fn render(doc: &serde_json::Value) -> String {
    let mut out = String::new();
    let s = |v: &serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
    let _ = writeln!(out, "node {}: agent {}, revision {}", s(&doc["node"]), if doc["agentRunning"].as_bool() == Some(true) { "running" } else { "not running (maps pinned, still enforcing)" }, s(&doc["revision"]));
    let _ = writeln!(out, "endpoints:");
    for e in doc["endpoints"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  {:<28} identity {:<8} ep {:<10} ifindex {}", s(&e["name"]), e["identity"], e["ep"], e["ifindex"]);
    }
    let _ = writeln!(out, "maps:");
    for m in doc["maps"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  {:<16} {:>6} / {}", s(&m["map"]), m["entries"], m["max"]);
    }
    let _ = writeln!(out, "counters:");
    for c in doc["counters"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  {:<28} {:<8} {:<14} {:>8} packets {:>10} bytes", s(&c["endpoint"]), s(&c["direction"]), s(&c["verdict"]), c["packets"], c["bytes"]);
    }
    out
}
