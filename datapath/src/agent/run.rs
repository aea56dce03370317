//! The agent's life: attach the programs to the node's pods, read the kernel's entries back
//! (so a restart rewrites only what changed), then follow the state directory and keep the
//! maps equal to what the engine computes.
//!
//! With encryption on in the CiliumConfig, the agent also runs the node's WireGuard mesh
//! ([`crate::wireguard`]): other nodes' records are followed in the same state directory, and
//! a tick every [`TICK`] drives key rotation and rewrites `wireguard.json`.
//!
//! Failure handling: a revision that cannot be read or resolved is logged and skipped; the
//! maps keep the last good entries. The programs and maps are pinned and the TC filters
//! belong to the kernel, so enforcement continues while the agent is down (fail closed: an
//! endpoint with no entries drops everything).

use super::entries::{self, EndpointEntry, NodeEntries, PolicyKey, PolicyValue};
use super::sync::{self, MapStore, SyncStats};
use super::desired;
use crate::bpf::maps::{EndpointInfo, NodeMaps};
use crate::bpf::{self, NodeDatapath};
use crate::engine::{Direction, PolicyRepository};
use crate::lab::{Topology, names};
use crate::wireguard::{self, Mesh, Wanted};
use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where the agent runs and what it follows.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// This node's name (as in the topology).
    pub node: String,
    /// The lab topology: the endpoints.
    pub topology: PathBuf,
    /// The local target's state directory (`.ward`): the desired state.
    pub state_dir: PathBuf,
    /// Where the agent writes its status and rule names (`/run/ward/agent/<node>`).
    pub run_dir: PathBuf,
    /// Where the node's WireGuard private key is kept (default: the run directory).
    pub key_dir: Option<PathBuf>,
}

/// How often the agent's loop wakes up without events (rotation timers, WireGuard status).
pub const TICK: Duration = Duration::from_millis(100);
/// The longest the agent waits for a burst of file events to end before it acts on them.
const DEBOUNCE_MAX: Duration = Duration::from_millis(500);

impl AgentConfig {
    /// The default run directory of `node`.
    pub fn default_run_dir(node: &str) -> PathBuf {
        PathBuf::from("/run/ward/agent").join(node)
    }
}

/// A running agent.
pub struct Agent {
    cfg: AgentConfig,
    topology: Topology,
    datapath: NodeDatapath,
    /// Local pods' host interfaces.
    ifindex: BTreeMap<String, u32>,
    /// What the maps hold now.
    current: NodeEntries,
    revision: Option<String>,
    mesh: Mesh,
    wanted: Wanted,
    watched: Watched,
}

/// The followed folders, absolute (as file events name them).
#[derive(Debug, Default)]
struct Watched {
    state: PathBuf,
    registry: PathBuf,
}

impl Agent {
    /// Loads the topology, opens the node's datapath (reusing pinned maps), attaches the
    /// programs to every local pod and reads the maps back.
    pub fn start(cfg: AgentConfig) -> Result<Agent> {
        let topology = Topology::load(&cfg.topology).map_err(|ds| {
            anyhow!("{} is not a valid topology:\n{}", cfg.topology.display(), ds.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
        })?;
        if topology.node(&cfg.node).is_none() {
            let known: Vec<&str> = topology.nodes.iter().map(|n| n.name.as_str()).collect();
            bail!("node {:?} is not in {} (nodes: {})", cfg.node, cfg.topology.display(), known.join(", "));
        }
        let mut datapath = NodeDatapath::open(&cfg.node)?;
        let netns = names::netns_path(&names::node_netns(&topology.name, &cfg.node));
        let mut ifindex = BTreeMap::new();
        for pod in topology.pods_on(&cfg.node) {
            let i = datapath.attach(&netns, &pod.host_ifname()).with_context(|| format!("is the lab up? (`ward lab up {}`)", cfg.topology.display()))?;
            ifindex.insert(pod.full_name(), i);
        }
        let current = read_back(datapath.maps(), &ifindex)?;
        tracing::info!(node = %cfg.node, endpoints = ifindex.len(), policy_entries = current.policy.len(), "agent started; programs attached");
        let key_dir = cfg.key_dir.clone().unwrap_or_else(|| cfg.run_dir.clone());
        let mesh = Mesh::new(&cfg.node, netns, &key_dir, &cfg.run_dir, &cfg.state_dir);
        Ok(Agent { cfg, topology, datapath, ifindex, current, revision: None, mesh, wanted: Wanted::Off, watched: Watched::default() })
    }

    /// Reads the desired state and brings the maps to it. On an error the maps are left as
    /// they are (the last good revision).
    pub fn sync(&mut self) -> Result<SyncStats> {
        let d = desired::read(&self.cfg.state_dir)?;
        let repo = PolicyRepository::from_resources(self.topology.cluster(), &d.resources).map_err(|e| anyhow!("{e}"))?;
        let wanted = entries::compute(&repo, &self.cfg.node).map_err(|e| anyhow!(e))?;
        let mut store = KernelStore { maps: self.datapath.maps_mut(), ifindex: &self.ifindex };
        let stats = sync::apply(&mut store, &self.current, &wanted)?;
        self.current = wanted;
        self.revision = d.revision;
        self.wanted = wireguard::config::from_resources(&d.resources);
        self.mesh.reconcile(&self.wanted, &self.topology);
        self.write_status()?;
        self.write_mesh_status();
        tracing::info!(node = %self.cfg.node, revision = self.revision.as_deref().unwrap_or("-"), written = stats.written, removed = stats.removed, unchanged = stats.unchanged, "maps in sync");
        Ok(stats)
    }

    /// Syncs, then follows the state directory and the topology file until `stop` is set:
    /// each change is synced after a short quiet period (a change of WireGuard records only
    /// reconciles the mesh); a full resync runs every `resync` regardless.
    pub fn run(&mut self, stop: &AtomicBool, resync: Duration) -> Result<()> {
        let (tx, rx) = mpsc::channel::<Vec<PathBuf>>();
        std::fs::create_dir_all(&self.cfg.state_dir).with_context(|| format!("cannot create {}", self.cfg.state_dir.display()))?;
        // Events name absolute paths: compare them with absolute ones.
        let state = std::fs::canonicalize(&self.cfg.state_dir).with_context(|| format!("cannot resolve {}", self.cfg.state_dir.display()))?;
        self.watched = Watched { registry: state.join(wireguard::registry::DIR), state: state.clone() };
        // Reads (the agent's own, too) raise access events: only changes count. The topology's
        // folder is watched for the topology file alone: other files there (a capture being
        // written, say) must not wake the agent.
        let topology_name = self.cfg.topology.file_name().map(ToOwned::to_owned);
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(e) = ev
                && !e.kind.is_access()
            {
                let paths: Vec<PathBuf> = e.paths.into_iter().filter(|p| p.starts_with(&state) || p.file_name() == topology_name.as_deref()).collect();
                if !paths.is_empty() {
                    let _ = tx.send(paths);
                }
            }
        })
        .context("cannot watch the state directory")?;
        notify::Watcher::watch(&mut watcher, &self.watched.state, notify::RecursiveMode::Recursive)
            .with_context(|| format!("cannot watch {}", self.cfg.state_dir.display()))?;
        let topology_dir = self.cfg.topology.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let topology_dir = std::fs::canonicalize(topology_dir).with_context(|| format!("cannot resolve {}", topology_dir.display()))?;
        notify::Watcher::watch(&mut watcher, &topology_dir, notify::RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch {}", topology_dir.display()))?;
        self.sync_logged();
        let mut last = Instant::now();
        let mut status_written = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            match rx.recv_timeout(TICK) {
                Ok(paths) => {
                    // Let an apply finish writing: wait until 50 ms pass without events, but
                    // never longer than DEBOUNCE_MAX, so a steady stream of writes cannot
                    // starve the ticks (key rotation) and the sync.
                    let mut changed = paths;
                    let since = Instant::now();
                    while since.elapsed() < DEBOUNCE_MAX
                        && let Ok(more) = rx.recv_timeout(Duration::from_millis(if self.only_mesh(&changed) { 5 } else { 50 }))
                    {
                        changed.extend(more);
                    }
                    self.on_change(&changed);
                    last = Instant::now();
                }
                Err(mpsc::RecvTimeoutError::Timeout) if last.elapsed() >= resync => {
                    self.sync_logged();
                    last = Instant::now();
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the state directory watcher stopped"),
            }
            self.mesh.tick(&self.topology);
            if status_written.elapsed() >= Duration::from_secs(1) {
                self.write_mesh_status();
                status_written = Instant::now();
            }
        }
        Ok(())
    }

    /// Whether every changed path is a WireGuard record (or unrelated to the agent).
    fn only_mesh(&self, paths: &[PathBuf]) -> bool {
        let w = &self.watched;
        paths.iter().all(|p| p.starts_with(&w.registry) || (!p.starts_with(&w.state) && !self.is_topology(p)))
    }

    fn is_topology(&self, p: &Path) -> bool {
        p.file_name().is_some_and(|n| Some(n) == self.cfg.topology.file_name())
    }

    fn on_change(&mut self, paths: &[PathBuf]) {
        if paths.iter().any(|p| self.is_topology(p)) {
            match Topology::load(&self.cfg.topology) {
                Ok(t) if t.node(&self.cfg.node).is_some() => {
                    tracing::info!(node = %self.cfg.node, nodes = t.nodes.len(), "topology changed");
                    self.topology = t;
                }
                Ok(_) => tracing::warn!(node = %self.cfg.node, "the new topology does not have this node; keeping the old one"),
                Err(ds) => tracing::warn!(node = %self.cfg.node, problems = ds.len(), "the new topology is not valid; keeping the old one"),
            }
        }
        let mesh_only = self.only_mesh(paths);
        if mesh_only && paths.iter().any(|p| p.starts_with(&self.watched.registry)) {
            self.mesh.reconcile(&self.wanted, &self.topology);
            self.write_mesh_status();
        } else if !mesh_only {
            self.sync_logged();
        }
    }

    fn sync_logged(&mut self) {
        if let Err(e) = self.sync() {
            tracing::warn!(node = %self.cfg.node, "not synced, the maps keep the last good revision: {e:#}");
        }
    }

    /// `status.json` and `rules.json` in the run directory, for `ward-agent status` and
    /// `ward observe`.
    fn write_status(&self) -> Result<()> {
        std::fs::create_dir_all(&self.cfg.run_dir).with_context(|| format!("cannot create {}", self.cfg.run_dir.display()))?;
        let rules: BTreeMap<String, &String> = self.current.rules.iter().map(|(k, v)| (k.to_string(), v)).collect();
        let endpoints: Vec<serde_json::Value> = self
            .current
            .endpoints
            .iter()
            .map(|(name, e)| serde_json::json!({"name": name, "ep": e.ep, "identity": e.identity, "ip": e.ip.to_string(), "ifindex": self.ifindex.get(name)}))
            .collect();
        let status = serde_json::json!({
            "node": self.cfg.node,
            "topology": self.cfg.topology.display().to_string(),
            "stateDir": self.cfg.state_dir.display().to_string(),
            "revision": self.revision,
            "endpoints": endpoints,
            "ipcacheEntries": self.current.ipcache.len(),
            "policyEntries": self.current.policy.len(),
            "pid": std::process::id(),
        });
        write_json(&self.cfg.run_dir.join("rules.json"), &serde_json::to_value(rules)?)?;
        write_json(&self.cfg.run_dir.join("status.json"), &status)
    }
}

impl Agent {
    /// `wireguard.json` in the run directory: the mesh as `ward-agent status` shows it.
    fn write_mesh_status(&self) {
        let doc = self.mesh.status();
        if let Err(e) = std::fs::create_dir_all(&self.cfg.run_dir).map_err(anyhow::Error::from).and_then(|()| write_json(&self.cfg.run_dir.join("wireguard.json"), &doc)) {
            tracing::warn!(node = %self.cfg.node, "cannot write the WireGuard status: {e:#}");
        }
    }
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v)?).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The kernel's entries as [`NodeEntries`], so a restarted agent writes only differences.
fn read_back(maps: &NodeMaps, ifindex: &BTreeMap<String, u32>) -> Result<NodeEntries> {
    let mut out = NodeEntries::default();
    let by_index: BTreeMap<u32, &String> = ifindex.iter().map(|(n, i)| (*i, n)).collect();
    for (i, info) in maps.endpoints()? {
        if let Some(name) = by_index.get(&i) {
            let ip = Ipv4Addr::UNSPECIFIED;
            out.endpoints.insert((*name).clone(), EndpointEntry { ep: info.ep_id, identity: info.identity, ip });
        }
    }
    for e in maps.ipcache_entries()? {
        out.ipcache.insert((e.addr, e.prefix_len), e.identity);
    }
    for (k, v) in maps.policy_entries()? {
        let key = PolicyKey { ep: k.ep_id(), egress: k.direction() == Direction::Egress, identity: k.identity(), proto: k.protocol(), port: k.dport(), bits: k.bits() };
        out.policy.insert(key, PolicyValue { deny: v.is_deny(), l7: v.carries_l7(), rule: v.rule_id() });
    }
    Ok(out)
}

/// The pinned maps as a [`MapStore`].
struct KernelStore<'a> {
    maps: &'a mut NodeMaps,
    ifindex: &'a BTreeMap<String, u32>,
}

impl KernelStore<'_> {
    fn index(&self, name: &str) -> Result<u32> {
        self.ifindex.get(name).copied().ok_or_else(|| anyhow!("endpoint {name} has no interface on this node"))
    }
}

impl MapStore for KernelStore<'_> {
    fn set_endpoint(&mut self, name: &str, e: &EndpointEntry) -> Result<()> {
        let i = self.index(name)?;
        self.maps.set_endpoint(i, EndpointInfo { ep_id: e.ep, identity: e.identity, flags: bpf::maps::ENDPOINT_FLAGS_NONE })
    }
    fn remove_endpoint(&mut self, name: &str, _: &EndpointEntry) -> Result<()> {
        let i = self.index(name)?;
        self.maps.remove_endpoint(i).map(|_| ())
    }
    fn set_ipcache(&mut self, prefix: (Ipv4Addr, u8), identity: u32) -> Result<()> {
        self.maps.ipcache_set(prefix.0, prefix.1, identity)
    }
    fn remove_ipcache(&mut self, prefix: (Ipv4Addr, u8)) -> Result<()> {
        self.maps.ipcache_remove(prefix.0, prefix.1).map(|_| ())
    }
    fn set_policy(&mut self, k: &PolicyKey, v: &PolicyValue) -> Result<()> {
        self.maps.policy_set(kernel_key(k), bpf::maps::PolicyValue::new(v.deny, v.l7, v.rule))
    }
    fn remove_policy(&mut self, k: &PolicyKey) -> Result<()> {
        self.maps.policy_remove(&kernel_key(k)).map(|_| ())
    }
}

fn kernel_key(k: &PolicyKey) -> bpf::maps::PolicyKey {
    let dir = if k.egress { Direction::Egress } else { Direction::Ingress };
    bpf::maps::PolicyKey::new(k.ep, dir, k.identity, k.proto, k.port, k.bits)
}
