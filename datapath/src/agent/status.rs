//! `ward-agent status`: what a node's pinned maps hold (endpoints, identities, map sizes,
//! counters), what the agent last synced (its run directory) and its WireGuard mesh. Works
//! while the agent is down: the maps are pinned. Also `ward-agent rotate-key`.

use crate::bpf::NodeMaps;
use crate::wireguard::ROTATE_REQUEST;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// Prints the status of `node` (agent run directory `run_dir`), as text or JSON.
pub fn print(node: &str, run_dir: &Path, json: bool) -> Result<()> {
    let doc = collect(node, run_dir)?;
    let text = if json {
        serde_json::to_string_pretty(&doc)? + "\n"
    } else {
        render(&doc)
    };
    print!("{text}");
    Ok(())
}

fn read_json(path: &Path) -> serde_json::Value {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The status document of `node`.
pub fn collect(node: &str, run_dir: &Path) -> Result<serde_json::Value> {
    let maps = NodeMaps::open_pinned(node).with_context(|| {
        format!("no datapath is pinned for node {node}; has `ward-agent run --node {node}` run?")
    })?;
    let agent = read_json(&run_dir.join("status.json"));
    let wireguard = read_json(&run_dir.join("wireguard.json"));
    let dns = read_json(&run_dir.join(crate::agent::run::DNS_STATUS_FILE));
    let names: BTreeMap<u64, String> = agent
        .get("endpoints")
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|e| Some((e.get("ep")?.as_u64()?, e.get("name")?.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    // The host endpoint is also kept under key 0, for the pods' programs: listed once.
    let endpoints: Vec<serde_json::Value> = maps
        .endpoints()?
        .into_iter()
        .filter(|(ifindex, _)| *ifindex != crate::bpf::maps::HOST_ENDPOINT_KEY)
        .map(|(ifindex, info)| {
            serde_json::json!({
                "name": names.get(&u64::from(info.ep_id)),
                "ifindex": ifindex, "ep": info.ep_id, "identity": info.identity,
            })
        })
        .collect();
    let sizes: Vec<serde_json::Value> = maps
        .sizes()?
        .into_iter()
        .map(|s| serde_json::json!({"map": s.name, "entries": s.entries, "max": s.max_entries}))
        .collect();
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
    let running = agent
        .get("pid")
        .and_then(serde_json::Value::as_u64)
        .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
    Ok(serde_json::json!({
        "node": node,
        "agentRunning": running,
        "revision": agent.get("revision"),
        "endpoints": endpoints,
        "maps": sizes,
        "counters": counters,
        "wireguard": wireguard,
        "dns": dns,
    }))
}

/// Asks the agent of `node` to rotate its WireGuard key, waits until its public key changed
/// and prints the old and new public keys.
pub fn rotate_key(node: &str, run_dir: &Path, timeout: Duration) -> Result<()> {
    let before = read_json(&run_dir.join("wireguard.json"));
    let Some(old) = before
        .pointer("/interface/publicKey")
        .and_then(|k| k.as_str())
        .map(str::to_owned)
    else {
        bail!(
            "node {node} has no WireGuard interface (is `ward-agent run --node {node}` running with encryption on? see `ward-agent status --node {node}`)"
        );
    };
    std::fs::write(run_dir.join(ROTATE_REQUEST), b"")
        .with_context(|| format!("cannot ask for a rotation in {}", run_dir.display()))?;
    let start = Instant::now();
    while start.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(50));
        let now = read_json(&run_dir.join("wireguard.json"));
        let key = now.pointer("/interface/publicKey").and_then(|k| k.as_str());
        if key.is_some_and(|k| k != old)
            && now.pointer("/interface/rotationInProgress") == Some(&serde_json::Value::Bool(false))
        {
            println!(
                "node {node}: key rotated in {:.0} ms\n  old public key {old}\n  new public key {}",
                start.elapsed().as_secs_f64() * 1000.0,
                key.unwrap_or_default()
            );
            return Ok(());
        }
    }
    bail!(
        "node {node} did not finish the rotation within {timeout:?}; see `ward-agent status --node {node}`"
    )
}

fn render(doc: &serde_json::Value) -> String {
    let mut out = String::new();
    let s = |v: &serde_json::Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    };
    let _ = writeln!(
        out,
        "node {}: agent {}, revision {}",
        s(&doc["node"]),
        if doc["agentRunning"].as_bool() == Some(true) {
            "running"
        } else {
            "not running (maps pinned, still enforcing)"
        },
        s(&doc["revision"])
    );
    let _ = writeln!(out, "endpoints:");
    for e in doc["endpoints"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<28} identity {:<8} ep {:<10} ifindex {}",
            s(&e["name"]),
            e["identity"],
            e["ep"],
            e["ifindex"]
        );
    }
    let _ = writeln!(out, "maps:");
    for m in doc["maps"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<16} {:>6} / {}",
            s(&m["map"]),
            m["entries"],
            m["max"]
        );
    }
    render_wireguard(&mut out, &doc["wireguard"]);
    render_dns(&mut out, &doc["dns"]);
    let _ = writeln!(out, "counters:");
    for c in doc["counters"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<28} {:<8} {:<14} {:>8} packets {:>10} bytes",
            s(&c["endpoint"]),
            s(&c["direction"]),
            s(&c["verdict"]),
            c["packets"],
            c["bytes"]
        );
    }
    out
}

fn render_dns(out: &mut String, dns: &serde_json::Value) {
    let p = &dns["proxy"];
    if p.is_null() {
        let _ = writeln!(
            out,
            "dns proxy: not running (queries under rules.dns are dropped)"
        );
        return;
    }
    let _ = writeln!(
        out,
        "dns proxy: port {}, {} queries: {} refused, {} forwarded, {} dropped; {} names learned",
        p["port"], p["queries"], p["refused"], p["forwarded"], p["dropped"], dns["learnedNames"]
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for n in dns["names"].as_array().into_iter().flatten() {
        let addresses: Vec<&str> = n["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str())
            .collect();
        let left = n["expires"].as_u64().map_or(0, |e| e.saturating_sub(now));
        let _ = writeln!(
            out,
            "  {:<40} {}  (expires in {left}s)",
            n["name"].as_str().unwrap_or_default(),
            addresses.join(", ")
        );
    }
}

fn render_wireguard(out: &mut String, wg: &serde_json::Value) {
    let s = |v: &serde_json::Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    };
    let ago = |v: &serde_json::Value| match v.as_f64() {
        Some(t) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            format!("{:.0}s ago", (now - t).max(0.0))
        }
        None => "never".to_owned(),
    };
    if wg.is_null() {
        let _ = writeln!(
            out,
            "wireguard: no status (agent not run with this run directory)"
        );
        return;
    }
    let _ = writeln!(out, "wireguard: encryption {}", s(&wg["wanted"]));
    if let Some(e) = wg["error"].as_str() {
        let _ = writeln!(out, "  error: {e}");
    }
    let i = &wg["interface"];
    if !i.is_null() {
        let _ = writeln!(
            out,
            "  interface {} ({}), listening on {}",
            s(&i["name"]),
            s(&i["implementation"]),
            s(&i["endpoint"])
        );
        let _ = writeln!(out, "  public key {}", s(&i["publicKey"]));
        if let Some(n) = i["nextPublicKey"].as_str() {
            let _ = writeln!(out, "  rotating to {n}");
        }
        let next = i["nextRotation"].as_f64().map_or_else(
            || "-".to_owned(),
            |t| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                format!("in {:.0}s", (t - now).max(0.0))
            },
        );
        let _ = writeln!(
            out,
            "  rotations {}, every {}s, next {next}",
            i["rotations"], i["rotationIntervalSeconds"]
        );
    }
    for p in wg["peers"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  peer {:<10} {}  endpoint {}  allowed {}  handshake {}  rx {} tx {}",
            s(&p["node"]),
            s(&p["publicKey"]),
            s(&p["endpoint"]),
            p["allowedIPs"]
                .as_array()
                .map(|a| a.iter().map(s).collect::<Vec<_>>().join(","))
                .unwrap_or_default(),
            ago(&p["latestHandshake"]),
            p["rxBytes"],
            p["txBytes"]
        );
    }
    for r in wg["routes"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  route {:<18} {}", s(&r["cidr"]), s(&r["route"]));
    }
}
