//! The agent's life: attach the programs to the node's pods, read the kernel's entries back
//! (so a restart rewrites only what changed), then follow the desired state and keep the
//! maps equal to what the engine computes.
//!
//! Two sources ([`Source`]): the lab's topology file and the local target's state directory
//! (files mode), or the API server (kube mode, [`super::kube`]): pods, nodes, namespaces and
//! policies from watches, the WireGuard records on the Node objects. In kube mode a pod's
//! interface is the one its `/32` route points at in the node's namespace (as CNI plugins set
//! it up); a pod whose interface is not there yet is left out until it is.
//!
//! With encryption on in the CiliumConfig, the agent also runs the node's WireGuard mesh
//! ([`crate::wireguard`]): other nodes' records are followed in the same state directory, and
//! a tick every [`TICK`] drives key rotation and rewrites `wireguard.json`.
//!
//! Failure handling: a revision that cannot be read or resolved is logged and skipped; the
//! maps keep the last good entries. The programs and maps are pinned and the TC filters
//! belong to the kernel, so enforcement continues while the agent is down (fail closed: an
//! endpoint with no entries drops everything).

use super::desired;
use super::dns::DnsState;
use super::dns::cache::TtlBounds;
use super::dns::proxy::DnsProxy;
use super::entries::{
    self, EndpointEntry, NodeEntries, PolicyKey, PolicyValue, ServiceSlot, SlotValue,
};
use super::kube::{KubeOptions, KubeSource, Watched as KubeWatched};
use super::repository::{ClusterVersion, KeptRepository, Rebuild};
use super::sync::{self, Datapath, MapStore, SyncStats};
use crate::bpf::NodeMaps;
use crate::bpf::maps::EndpointInfo;
use crate::bpf::{self, NodeDatapath};
use crate::names;
use crate::sys::NodeSys;
use crate::wireguard::registry::Registry;
use crate::wireguard::{self, ClearRouting, Mesh, Wanted};
use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, mpsc};
use std::time::{Duration, Instant};
use ward_engine::Direction;
use ward_schema::topology::Topology;

/// Where the agent runs and what it follows.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// This node's name (as in the topology, or the Node's name).
    pub node: String,
    /// Where the cluster and the desired state come from.
    pub source: Source,
    /// Where the agent writes its status and rule names (`/run/ward/agent/<node>`).
    pub run_dir: PathBuf,
    /// Where the node's WireGuard private key is kept (default: the run directory).
    pub key_dir: Option<PathBuf>,
    /// How long the DNS proxy's answers are kept for `toFQDNs` rules.
    pub dns_ttl: TtlBounds,
}

/// Where the agent learns the cluster and the desired state.
#[derive(Debug, Clone)]
pub enum Source {
    /// The lab topology file (the endpoints) and the local target's state directory (`.ward`).
    Files {
        /// The topology file.
        topology: PathBuf,
        /// The state directory.
        state_dir: PathBuf,
    },
    /// The API server.
    Kube {
        /// How to reach it.
        options: KubeOptions,
        /// The node's network namespace (default: the agent's own, as in a DaemonSet pod with
        /// `hostNetwork: true`).
        netns: Option<PathBuf>,
    },
}

/// The file in the run directory with the DNS proxy's counters and learned names.
pub const DNS_STATUS_FILE: &str = "dns.json";
/// The most learned names `dns.json` lists (all of them are in [`DNS_CACHE_FILE`]).
const DNS_STATUS_NAMES: usize = 100;

/// The file in the run directory holding the DNS proxy's learned answers.
pub const DNS_CACHE_FILE: &str = "dns-cache.json";

/// The routing table that delivers the packets handed to the DNS proxy locally.
pub const PROXY_TABLE: u32 = 2005;
/// The priority of the rule that sends them there (Cilium's proxy rules use 9 and 10).
pub const PROXY_RULE_PRIORITY: u32 = 11;

/// How often the agent's loop wakes up without events (rotation timers, WireGuard status).
pub const TICK: Duration = Duration::from_millis(100);
/// The longest the agent waits for a burst of file events to end before it acts on them.
const DEBOUNCE_MAX: Duration = Duration::from_millis(500);

impl AgentConfig {
    /// The default run directory of `node`.
    pub fn default_run_dir(node: &str) -> PathBuf {
        PathBuf::from("/run/ward/agent").join(node)
    }

    /// Where `node`'s agent keeps its status: the run directory it was started with, which an
    /// agent started with another `--run-dir` records in the default one (the file
    /// [`RUN_DIR_POINTER`]), so that `ward-agent status` and `ward observe` find it without
    /// being told.
    pub fn locate_run_dir(node: &str) -> PathBuf {
        let default = AgentConfig::default_run_dir(node);
        std::fs::read_to_string(default.join(RUN_DIR_POINTER))
            .ok()
            .map(|p| PathBuf::from(p.trim_end()))
            .filter(|p| p.is_absolute())
            .unwrap_or(default)
    }

    /// Records the run directory in the default one when it is elsewhere (and clears an old
    /// record when it is not).
    fn record_run_dir(&self) -> Result<()> {
        let default = AgentConfig::default_run_dir(&self.node);
        let pointer = default.join(RUN_DIR_POINTER);
        let run_dir = std::path::absolute(&self.run_dir)?;
        if run_dir == default {
            return match std::fs::remove_file(&pointer) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            };
        }
        std::fs::create_dir_all(&default)
            .with_context(|| format!("cannot create {}", default.display()))?;
        std::fs::write(&pointer, format!("{}\n", run_dir.display()))
            .with_context(|| format!("cannot write {}", pointer.display()))
    }
}

/// The file in a node's default run directory that names the run directory its agent uses.
pub const RUN_DIR_POINTER: &str = "run-dir";

/// A running agent.
pub struct Agent {
    cfg: AgentConfig,
    /// The cluster as last read (every pod, every node).
    topology: Topology,
    /// The API server's caches, in kube mode.
    kube: Option<KubeSource>,
    /// The node's network namespace.
    netns: PathBuf,
    /// The BPF programs and maps (the kernel's, or a fake).
    datapath: Box<dyn Datapath + Send>,
    /// Links, routes and WireGuard in the node's namespace.
    sys: NodeSys,
    /// Local pods' host interfaces.
    ifindex: BTreeMap<String, u32>,
    /// What the maps hold now.
    current: NodeEntries,
    /// The engine's repository of the last sync (the DNS proxy reads it too).
    repository: Arc<RwLock<KeptRepository>>,
    /// What the agent shares with its DNS proxy.
    dns: Arc<DnsState>,
    /// The DNS proxy (the kernel's datapath only).
    dns_proxy: Option<DnsProxy>,
    /// The generation of the DNS answers last saved to the run directory.
    dns_saved: u64,
    /// How many times `topology` changed (the repository's [`ClusterVersion`]).
    topology_changes: u64,
    revision: Option<String>,
    mesh: Mesh,
    wanted: Wanted,
    /// Changes reported by the watches (file events or the API server's).
    changes: mpsc::Receiver<Change>,
    changes_tx: mpsc::Sender<Change>,
}

/// What a batch of events touched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Change {
    /// Policies or the CiliumConfig.
    desired: bool,
    /// Pods, nodes or namespaces (the topology file).
    topology: bool,
    /// WireGuard records.
    mesh: bool,
    /// Addresses the DNS proxy learned or forgot.
    dns: bool,
}

impl Change {
    fn merge(self, o: Change) -> Change {
        Change {
            desired: self.desired || o.desired,
            topology: self.topology || o.topology,
            mesh: self.mesh || o.mesh,
            dns: self.dns || o.dns,
        }
    }

    fn is_empty(self) -> bool {
        self == Change::default()
    }

    fn from_kube(w: KubeWatched) -> Change {
        match w {
            // A Node carries both its addresses and its WireGuard record.
            KubeWatched::Nodes => Change {
                topology: true,
                mesh: true,
                ..Change::default()
            },
            KubeWatched::Pods | KubeWatched::Namespaces | KubeWatched::Services => Change {
                topology: true,
                ..Change::default()
            },
            KubeWatched::Policies | KubeWatched::Config => Change {
                desired: true,
                ..Change::default()
            },
        }
    }
}

/// The followed paths of files mode, absolute (as file events name them).
#[derive(Debug, Clone)]
struct FilePaths {
    state: PathBuf,
    registry: PathBuf,
    topology_name: Option<std::ffi::OsString>,
}

impl FilePaths {
    fn classify(&self, paths: &[PathBuf]) -> Change {
        let mut c = Change::default();
        for p in paths {
            if p.starts_with(&self.registry) {
                c.mesh = true;
            } else if p.starts_with(&self.state) {
                c.desired = true;
            } else if p
                .file_name()
                .is_some_and(|n| Some(n) == self.topology_name.as_deref())
            {
                c.topology = true;
            }
        }
        c
    }
}

impl Agent {
    /// Reads the cluster (the topology file, or the API server's first listing), opens the
    /// node's datapath (reusing pinned maps), attaches the programs to every local pod and
    /// reads the maps back.
    pub fn start(cfg: AgentConfig) -> Result<Agent> {
        let run_dir = cfg.run_dir.clone();
        Agent::start_with(cfg, move |node, netns| {
            let datapath: Box<dyn Datapath + Send> = Box::new(NodeDatapath::open(node)?);
            Ok((datapath, NodeSys::kernel(netns, &run_dir)))
        })
        .map(Agent::with_dns_proxy)
    }

    /// Starts the DNS proxy in the node's namespace and tells the programs its socket; the
    /// node then routes the packets handed to it to itself. Without it (an error is logged),
    /// the traffic of egress rules with `rules.dns` is dropped: fail closed.
    fn with_dns_proxy(mut self) -> Agent {
        let started = DnsProxy::start(&self.netns, self.dns.clone()).and_then(|proxy| {
            self.sys
                .net
                .ensure_local_delivery(&crate::sys::LocalDelivery {
                    mark: bpf::maps::MARK_TO_PROXY,
                    mask: bpf::maps::MARK_MASK,
                    table: PROXY_TABLE,
                    priority: PROXY_RULE_PRIORITY,
                })?;
            self.datapath
                .set_config(bpf::maps::NodeConfig::with_dns_proxy(
                    proxy.port(),
                    proxy.cookie(),
                    proxy.tcp_cookie(),
                ))?;
            Ok(proxy)
        });
        match started {
            Ok(proxy) => self.dns_proxy = Some(proxy),
            Err(e) => {
                tracing::error!(node = %self.cfg.node, "no DNS proxy: queries under rules.dns are dropped: {e:#}")
            }
        }
        self
    }

    /// Forgets the DNS answers whose time ran out, except the addresses a live connection
    /// still uses (Cilium keeps those as "zombies" until the connection ends); whether any
    /// went (the maps then need a sync).
    fn expire_dns_answers(&self) -> bool {
        let now = Instant::now();
        if !self.dns.expiry_due(now) {
            return false;
        }
        let live = match self.datapath.live_destinations() {
            Ok(l) => l,
            Err(e) => {
                // Without conntrack's view, keep everything (never cut a connection).
                tracing::warn!(node = %self.cfg.node, "cannot read conntrack: DNS answers kept: {e:#}");
                return false;
            }
        };
        self.dns.expire(now, |ip| live.contains(&ip))
    }

    /// Syncs when the DNS proxy learned or forgot addresses since the last sync; whether it
    /// did. For a caller that syncs the agent itself instead of running its loop (`ward test
    /// --datapath`): the proxy holds an answer until then.
    pub fn sync_dns(&mut self) -> Result<bool> {
        if !self.dns.pending() {
            return Ok(false);
        }
        self.sync()?;
        Ok(true)
    }

    /// The DNS answers the agent's `toFQDNs` rules resolve against now.
    pub fn dns_answers(&self) -> Vec<ward_engine::DnsAnswer> {
        self.dns.answers().0
    }

    /// The DNS proxy's counters, when it runs.
    pub fn dns_proxy(&self) -> Option<&DnsProxy> {
        self.dns_proxy.as_ref()
    }

    /// [`Agent::start`] on the datapath and kernel seam `open` returns for the node's name
    /// and network namespace (the kernel's in [`Agent::start`], fakes in unit tests).
    pub fn start_with(
        cfg: AgentConfig,
        open: impl FnOnce(&str, &Path) -> Result<(Box<dyn Datapath + Send>, NodeSys)>,
    ) -> Result<Agent> {
        let (changes_tx, changes) = mpsc::channel();
        let repository = Arc::new(RwLock::new(KeptRepository::default()));
        let wake = std::sync::Mutex::new(changes_tx.clone());
        let dns = Arc::new(DnsState::new(repository.clone(), cfg.dns_ttl, move || {
            let _ = wake
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .send(Change {
                    dns: true,
                    ..Change::default()
                });
        }));
        let key_dir = cfg.key_dir.clone().unwrap_or_else(|| cfg.run_dir.clone());
        let (topology, kube, netns, registry): (
            Topology,
            Option<KubeSource>,
            PathBuf,
            Box<dyn wireguard::registry::Records>,
        ) = match &cfg.source {
            Source::Files {
                topology,
                state_dir,
            } => {
                let full = load_topology(topology)?;
                if full.node(&cfg.node).is_some_and(|n| !n.agent) {
                    bail!(
                        "node {} has `agent: false` in {}: no agent runs there (remove the line to run one)",
                        cfg.node,
                        topology.display()
                    );
                }
                // Nodes without an agent, and their pods, are addresses outside to this one.
                let t = full.managed();
                let netns = names::netns_path(&names::node_netns(&t.name, &cfg.node));
                (t, None, netns, Box::new(Registry::new(state_dir)))
            }
            Source::Kube { options, netns } => {
                let tx = changes_tx.clone();
                let source = KubeSource::connect(options, move |w| {
                    let _ = tx.send(Change::from_kube(w));
                })?;
                let netns = netns
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("/proc/self/ns/net"));
                let records = Box::new(source.records());
                (source.topology(), Some(source), netns, records)
            }
        };
        if topology.node(&cfg.node).is_none() {
            let known: Vec<&str> = topology.nodes.iter().map(|n| n.name.as_str()).collect();
            bail!(
                "node {:?} is not among the nodes of {} ({}); in kube mode a node needs an IPv4 InternalIP and a pod CIDR",
                cfg.node,
                cfg.source.describe(),
                known.join(", ")
            );
        }
        let (datapath, sys) = open(&cfg.node, &netns)?;
        let clear = if kube.is_some() {
            ClearRouting::Cluster
        } else {
            ClearRouting::LabUnderlay
        };
        let mesh = Mesh::new(&cfg.node, sys.clone(), &key_dir, &cfg.run_dir, registry)
            .with_clear_routing(clear);
        let mut agent = Agent {
            cfg,
            topology,
            kube,
            netns,
            datapath,
            sys,
            ifindex: BTreeMap::new(),
            current: NodeEntries::default(),
            repository,
            dns,
            dns_proxy: None,
            dns_saved: 0,
            topology_changes: 0,
            revision: None,
            mesh,
            wanted: Wanted::Off,
            changes,
            changes_tx,
        };
        agent.attach_pods(agent.kube.is_none())?;
        agent.current = agent.datapath.read_back(&agent.ifindex)?;
        // The answers an earlier agent learned, so that its FQDN entries stay in the maps.
        match agent.dns.load(&agent.dns_cache_path()) {
            Ok(0) => {}
            Ok(names) => tracing::info!(node = %agent.cfg.node, names, "DNS answers restored"),
            Err(e) => tracing::warn!(node = %agent.cfg.node, "DNS answers not restored: {e:#}"),
        }
        agent.dns_saved = agent.dns.generation();
        tracing::info!(node = %agent.cfg.node, source = %agent.cfg.source.describe(), endpoints = agent.ifindex.len(), policy_entries = agent.current.policy.len(), "agent started; programs attached");
        Ok(agent)
    }

    /// Attaches the programs to local pods not attached yet and forgets pods that are gone.
    /// With `strict`, a pod whose interface cannot be found is an error (files mode at start:
    /// the lab is not up); otherwise it is left out until its interface appears.
    fn attach_pods(&mut self, strict: bool) -> Result<()> {
        self.attach_host(strict)?;
        let local: Vec<(String, std::net::Ipv4Addr, String)> = self
            .topology
            .pods_on(&self.cfg.node)
            .map(|p| (p.full_name(), p.ip, p.host_ifname()))
            .collect();
        self.ifindex.retain(|name, _| {
            name == entries::HOST_ENDPOINT || local.iter().any(|(n, ..)| n == name)
        });
        for (name, ip, lab_ifname) in local {
            if self.ifindex.contains_key(&name) {
                continue;
            }
            let ifname = if self.kube.is_some() {
                // The interface the node routes the pod's /32 to (its host-side interface).
                self.sys.net.route_interface(ip).ok().flatten()
            } else {
                Some(lab_ifname)
            };
            let attached = ifname
                .ok_or_else(|| anyhow!("no /32 route to {ip} in the node's namespace"))
                .and_then(|i| self.datapath.attach(&self.netns, &i));
            match attached {
                Ok(i) => {
                    self.ifindex.insert(name, i);
                }
                Err(e) if strict => {
                    return Err(e).with_context(|| {
                        format!(
                            "pod {name}: is the lab up? (`ward lab up {}`)",
                            self.topology.source
                        )
                    });
                }
                Err(e) => {
                    tracing::debug!(node = %self.cfg.node, pod = %name, "pod not attached yet: {e:#}")
                }
            }
        }
        Ok(())
    }

    /// Attaches the host programs to the node's underlay interface (files mode: the lab's
    /// [`names::NODE_UNDERLAY_IF`]), once. In kube mode the host endpoint is not enforced
    /// yet: which of a real node's interfaces carry its traffic is not known here.
    fn attach_host(&mut self, strict: bool) -> Result<()> {
        if self.kube.is_some() || self.ifindex.contains_key(entries::HOST_ENDPOINT) {
            return Ok(());
        }
        match self
            .datapath
            .attach_host(&self.netns, names::NODE_UNDERLAY_IF)
        {
            Ok(i) => {
                self.ifindex.insert(entries::HOST_ENDPOINT.to_owned(), i);
                Ok(())
            }
            Err(e) if strict => Err(e).context("the node's underlay interface (is the lab up?)"),
            Err(e) => {
                tracing::debug!(node = %self.cfg.node, "host endpoint not attached yet: {e:#}");
                Ok(())
            }
        }
    }

    /// Attaches pods whose interface appeared since, reads the desired state and brings the
    /// maps to it. On an error the maps are left as they are (the last good revision).
    pub fn sync(&mut self) -> Result<SyncStats> {
        self.sync_with(Rebuild::IfNeeded)
    }

    /// [`Agent::sync`], with the policy repository built from scratch when `rebuild` says
    /// so (the periodic resync) or when more than policies changed.
    fn sync_with(&mut self, rebuild: Rebuild) -> Result<SyncStats> {
        let (answers, generation) = self.dns.answers();
        let synced = self.sync_answers(rebuild, answers, generation);
        // Answers waiting for these addresses go out either way (on an error the maps keep
        // the last good revision, which a retry will not change).
        self.dns.synced(generation);
        if generation != self.dns_saved {
            match self.dns.save(&self.dns_cache_path()) {
                Ok(()) => self.dns_saved = generation,
                Err(e) => tracing::warn!(node = %self.cfg.node, "DNS answers not saved: {e:#}"),
            }
        }
        synced
    }

    /// Where the learned DNS answers are kept across restarts.
    fn dns_cache_path(&self) -> PathBuf {
        self.cfg.run_dir.join(DNS_CACHE_FILE)
    }

    /// [`Agent::sync_with`] with the DNS proxy's `answers` (at `generation`).
    fn sync_answers(
        &mut self,
        rebuild: Rebuild,
        answers: Vec<ward_engine::DnsAnswer>,
        generation: u64,
    ) -> Result<SyncStats> {
        let started = Instant::now();
        self.attach_pods(false)?;
        let (resources, revision, config_problem) = match (&self.cfg.source, &self.kube) {
            (_, Some(k)) => {
                let d = k.desired();
                (d.resources, None, d.config_problem)
            }
            (Source::Files { state_dir, .. }, None) => {
                let d = desired::read(state_dir)?;
                (d.resources, d.revision, None)
            }
            (Source::Kube { .. }, None) => bail!("kube mode without a connection"),
        };
        let version = ClusterVersion {
            changes: self.topology_changes,
            attached: self.ifindex.clone(),
            dns: generation,
        };
        let mesh_wanted = match config_problem {
            Some(p) => Wanted::Invalid(p),
            None => wireguard::config::from_resources(&resources),
        };
        let read = started.elapsed();
        self.dns.set_selectors(&resources);
        let cluster = || {
            let topology = effective_topology(&self.topology, &self.cfg.node, &self.ifindex);
            let mut cluster = ward_engine::Cluster::from_topology(&topology);
            cluster.dns = answers;
            cluster
        };
        let mut kept = self
            .repository
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let repo = kept.update(&version, cluster, resources, rebuild)?;
        let engine = started.elapsed();
        let wanted = entries::compute(repo, &self.cfg.node).map_err(|e| anyhow!(e));
        drop(kept);
        let mut wanted = wanted?;
        let computed = started.elapsed();
        if !self.ifindex.contains_key(entries::HOST_ENDPOINT) {
            wanted.remove_endpoint(entries::HOST_ENDPOINT);
        }
        let stats = {
            let mut store = self.datapath.store(&self.ifindex);
            sync::apply(&mut *store, &self.current, &wanted)?
        };
        let written = started.elapsed();
        self.current = wanted;
        self.revision = revision;
        self.wanted = mesh_wanted;
        self.mesh.reconcile(&self.wanted, &self.topology);
        self.write_status()?;
        self.write_mesh_status();
        let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
        let took = format!(
            "read {} engine {} entries {} maps {} total {}",
            ms(read),
            ms(engine - read),
            ms(computed - engine),
            ms(written - computed),
            ms(started.elapsed())
        );
        tracing::info!(node = %self.cfg.node, revision = self.revision.as_deref().unwrap_or("-"), written = stats.written, removed = stats.removed, unchanged = stats.unchanged, took_ms = %took, "maps in sync");
        Ok(stats)
    }

    /// Syncs, then follows the desired state and the cluster until `stop` is set: each change
    /// is synced after a short quiet period (a change of WireGuard records only reconciles the
    /// mesh); a full resync runs every `resync` regardless.
    pub fn run(&mut self, stop: &AtomicBool, resync: Duration) -> Result<()> {
        let _watcher = match self.cfg.source.clone() {
            Source::Files {
                topology,
                state_dir,
            } => Some(self.watch_files(&topology, &state_dir)?),
            Source::Kube { .. } => None,
        };
        self.sync_logged();
        let mut last = Instant::now();
        let mut status_written = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            match self.changes.recv_timeout(TICK) {
                Ok(first) => {
                    // Let an apply finish writing: wait until a quiet period passes without
                    // events, but never longer than DEBOUNCE_MAX, so a steady stream of writes
                    // cannot starve the ticks (key rotation) and the sync.
                    let mut change = first;
                    let since = Instant::now();
                    while since.elapsed() < DEBOUNCE_MAX
                        && let Ok(more) = self.changes.recv_timeout(self.quiet(change))
                    {
                        change = change.merge(more);
                    }
                    self.on_change(change);
                    last = Instant::now();
                }
                Err(mpsc::RecvTimeoutError::Timeout) if last.elapsed() >= resync => {
                    self.sync_logged_with(Rebuild::Always);
                    last = Instant::now();
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the watches stopped"),
            }
            if self.expire_dns_answers() {
                self.sync_logged();
            }
            self.mesh.tick(&self.topology);
            if status_written.elapsed() >= Duration::from_secs(1) {
                self.write_mesh_status();
                self.write_dns_status();
                status_written = Instant::now();
            }
        }
        Ok(())
    }

    /// How long the loop waits for more events after `change` before it acts. Files mode:
    /// 50 ms, as `ward apply` writes a revision file by file. Kube mode: 10 ms, since each
    /// watch event is a whole object and the API server delivers a burst of writes within
    /// milliseconds of each other (a policy change reaches the maps within 100 ms of its
    /// event). WireGuard records alone: 5 ms.
    fn quiet(&self, change: Change) -> Duration {
        match (change.desired || change.topology, self.kube.is_some()) {
            // The DNS proxy holds an answer until its addresses are in the maps.
            (false, _) if change.dns => Duration::ZERO,
            (false, _) => Duration::from_millis(5),
            (true, true) => Duration::from_millis(10),
            (true, false) => Duration::from_millis(50),
        }
    }

    /// Files mode: follows the state directory and the topology file. Reads (the agent's own,
    /// too) raise access events: only changes count. The topology's folder is watched for the
    /// topology file alone: other files there (a capture being written, say) must not wake
    /// the agent.
    fn watch_files(&self, topology: &Path, state_dir: &Path) -> Result<notify::RecommendedWatcher> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("cannot create {}", state_dir.display()))?;
        // Events name absolute paths: compare them with absolute ones.
        let state = std::fs::canonicalize(state_dir)
            .with_context(|| format!("cannot resolve {}", state_dir.display()))?;
        let paths = FilePaths {
            registry: state.join(wireguard::registry::DIR),
            state: state.clone(),
            topology_name: topology.file_name().map(ToOwned::to_owned),
        };
        let tx = self.changes_tx.clone();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(e) = ev
                && !e.kind.is_access()
            {
                let change = paths.classify(&e.paths);
                if !change.is_empty() {
                    let _ = tx.send(change);
                }
            }
        })
        .context("cannot watch the state directory")?;
        notify::Watcher::watch(&mut watcher, &state, notify::RecursiveMode::Recursive)
            .with_context(|| format!("cannot watch {}", state_dir.display()))?;
        let topology_dir = topology
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let topology_dir = std::fs::canonicalize(topology_dir)
            .with_context(|| format!("cannot resolve {}", topology_dir.display()))?;
        notify::Watcher::watch(
            &mut watcher,
            &topology_dir,
            notify::RecursiveMode::NonRecursive,
        )
        .with_context(|| format!("cannot watch {}", topology_dir.display()))?;
        Ok(watcher)
    }

    fn on_change(&mut self, change: Change) {
        let topology_changed = change.topology && self.reload_topology();
        if change.desired || topology_changed || change.dns {
            self.sync_logged();
        } else if change.mesh {
            self.mesh.reconcile(&self.wanted, &self.topology);
            self.write_mesh_status();
        }
    }

    /// Reads the cluster again; whether it changed (the caller then syncs). A topology
    /// without this node (or, in files mode, one that does not parse) is refused and the old
    /// one kept.
    fn reload_topology(&mut self) -> bool {
        let next = match (&self.cfg.source, &self.kube) {
            (_, Some(k)) => k.topology(),
            (Source::Files { topology, .. }, None) => match Topology::load(topology) {
                Ok(t) => t.managed(),
                Err(ds) => {
                    tracing::warn!(node = %self.cfg.node, problems = ds.len(), "the new topology is not valid; keeping the old one");
                    return false;
                }
            },
            (Source::Kube { .. }, None) => return false,
        };
        if next == self.topology {
            return false;
        }
        if next.node(&self.cfg.node).is_none() {
            tracing::warn!(node = %self.cfg.node, "the cluster no longer has this node (or its address or pod CIDR); keeping the old view");
            return false;
        }
        tracing::info!(node = %self.cfg.node, nodes = next.nodes.len(), pods = next.pods.len(), "cluster changed");
        // New pods are attached by the sync that follows.
        self.topology = next;
        self.topology_changes += 1;
        true
    }

    fn sync_logged(&mut self) {
        self.sync_logged_with(Rebuild::IfNeeded);
    }

    fn sync_logged_with(&mut self, rebuild: Rebuild) {
        if let Err(e) = self.sync_with(rebuild) {
            tracing::warn!(node = %self.cfg.node, "not synced, the maps keep the last good revision: {e:#}");
        }
    }

    /// `status.json` and `rules.json` in the run directory, for `ward-agent status` and
    /// `ward observe`.
    fn write_status(&self) -> Result<()> {
        std::fs::create_dir_all(&self.cfg.run_dir)
            .with_context(|| format!("cannot create {}", self.cfg.run_dir.display()))?;
        if let Err(e) = self.cfg.record_run_dir() {
            // Only a convenience for `ward-agent status` and `ward observe` without --run-dir.
            tracing::warn!(node = %self.cfg.node, "cannot record the run directory: {e:#}");
        }
        let rules: BTreeMap<String, &String> = self
            .current
            .rules
            .iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let endpoints: Vec<serde_json::Value> = self
            .current
            .endpoints
            .iter()
            .map(|(name, e)| serde_json::json!({"name": name, "ep": e.ep, "identity": e.identity, "ip": e.ip.to_string(), "ifindex": self.ifindex.get(name)}))
            .collect();
        let status = serde_json::json!({
            "node": self.cfg.node,
            "source": self.cfg.source.describe(),
            "revision": self.revision,
            "endpoints": endpoints,
            "ipcacheEntries": self.current.ipcache.len(),
            "policyEntries": self.current.policy.len(),
            "pid": std::process::id(),
        });
        write_json(
            &self.cfg.run_dir.join("rules.json"),
            &serde_json::to_value(rules)?,
        )?;
        write_json(&self.cfg.run_dir.join("status.json"), &status)
    }
}

impl Agent {
    /// `wireguard.json` in the run directory: the mesh as `ward-agent status` shows it.
    /// `dns.json` in the run directory: the DNS proxy's counters and the answers it learned,
    /// for `ward-agent status`.
    fn write_dns_status(&self) {
        let (learned, names) = self.dns.summary(DNS_STATUS_NAMES);
        let proxy = self.dns_proxy.as_ref().map(|p| {
            let c = p.counters();
            let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            serde_json::json!({
                "port": p.port(),
                "queries": n(&c.queries),
                "refused": n(&c.refused),
                "forwarded": n(&c.forwarded),
                "dropped": n(&c.dropped),
            })
        });
        let doc = serde_json::json!({"proxy": proxy, "learnedNames": learned, "names": names});
        if let Err(e) = write_json(&self.cfg.run_dir.join(DNS_STATUS_FILE), &doc) {
            tracing::warn!(node = %self.cfg.node, "cannot write the DNS status: {e:#}");
        }
    }

    fn write_mesh_status(&self) {
        let doc = self.mesh.status();
        if let Err(e) = std::fs::create_dir_all(&self.cfg.run_dir)
            .map_err(anyhow::Error::from)
            .and_then(|()| write_json(&self.cfg.run_dir.join("wireguard.json"), &doc))
        {
            tracing::warn!(node = %self.cfg.node, "cannot write the WireGuard status: {e:#}");
        }
    }
}

impl Source {
    /// What the agent follows, for logs and status.
    pub fn describe(&self) -> String {
        match self {
            Source::Files {
                topology,
                state_dir,
            } => format!(
                "topology {} and state {}",
                topology.display(),
                state_dir.display()
            ),
            Source::Kube { options, .. } => format!(
                "the API server ({})",
                options.kubeconfig.as_ref().map_or_else(
                    || "in-cluster or default kubeconfig".to_owned(),
                    |p| format!("kubeconfig {}", p.display())
                )
            ),
        }
    }
}

/// The cluster as the engine sees it on `node`: every pod, but of the node's pods only those
/// whose interface is attached (in `ifindex`).
fn effective_topology(
    topology: &Topology,
    node: &str,
    ifindex: &BTreeMap<String, u32>,
) -> Topology {
    let mut t = topology.clone();
    t.pods
        .retain(|p| p.node != node || ifindex.contains_key(&p.full_name()));
    t
}

fn load_topology(path: &Path) -> Result<Topology> {
    Topology::load(path).map_err(|ds| {
        anyhow!(
            "{} is not a valid topology:\n{}",
            path.display(),
            ds.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

impl Datapath for NodeDatapath {
    fn set_config(&mut self, config: bpf::maps::NodeConfig) -> Result<()> {
        self.maps_mut().set_config(config)
    }
    fn live_destinations(&self) -> Result<std::collections::BTreeSet<std::net::IpAddr>> {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let now_ns = u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000
            + u64::try_from(now.tv_nsec).unwrap_or(0);
        Ok(self
            .maps()
            .ct_entries()?
            .into_iter()
            .filter(|(k, v)| v.is_live(k.proto(), now_ns))
            .flat_map(|(k, _)| [k.daddr(), k.saddr()])
            .collect())
    }
    fn attach(&mut self, netns: &Path, ifname: &str) -> Result<u32> {
        NodeDatapath::attach(self, netns, ifname)
    }
    fn attach_host(&mut self, netns: &Path, ifname: &str) -> Result<u32> {
        NodeDatapath::attach_host(self, netns, ifname)
    }
    fn read_back(&self, ifindex: &BTreeMap<String, u32>) -> Result<NodeEntries> {
        read_back(self.maps(), ifindex)
    }
    fn store<'a>(&'a mut self, ifindex: &'a BTreeMap<String, u32>) -> Box<dyn MapStore + 'a> {
        Box::new(KernelStore {
            maps: self.maps_mut(),
            ifindex,
        })
    }
}

/// The kernel's entries as [`NodeEntries`], so a restarted agent writes only differences.
fn read_back(maps: &NodeMaps, ifindex: &BTreeMap<String, u32>) -> Result<NodeEntries> {
    let mut out = NodeEntries::default();
    let by_index: BTreeMap<u32, &String> = ifindex.iter().map(|(n, i)| (*i, n)).collect();
    for (i, info) in maps.endpoints()? {
        if let Some(name) = by_index.get(&i) {
            let ip = Ipv4Addr::UNSPECIFIED.into();
            out.endpoints.insert(
                (*name).clone(),
                EndpointEntry {
                    ep: info.ep_id,
                    identity: info.identity,
                    ip,
                },
            );
        }
    }
    for e in maps.ipcache_entries()? {
        out.ipcache.insert((e.addr, e.prefix_len), e.identity);
    }
    for (k, v) in maps.policy_entries()? {
        let key = PolicyKey {
            ep: k.ep_id(),
            egress: k.direction() == Direction::Egress,
            identity: k.identity(),
            proto: k.protocol(),
            port: k.dport(),
            bits: k.bits(),
        };
        out.policy.insert(
            key,
            PolicyValue {
                deny: v.is_deny(),
                l7: v.carries_l7(),
                dns: v.redirects_dns(),
                rule: v.rule_id(),
            },
        );
    }
    for (k, v) in maps.lb_entries()? {
        let value = if k.slot() == 0 {
            SlotValue::Count(v.count())
        } else {
            SlotValue::Backend(v.addr(k.addr()), v.port())
        };
        out.services
            .insert((k.addr(), k.port(), k.proto(), k.slot()), value);
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
        self.ifindex
            .get(name)
            .copied()
            .ok_or_else(|| anyhow!("endpoint {name} has no interface on this node"))
    }
}

impl MapStore for KernelStore<'_> {
    /// The host endpoint goes under its interface's index and under
    /// [`bpf::maps::HOST_ENDPOINT_KEY`], where the pods' programs find it.
    fn set_endpoint(&mut self, name: &str, e: &EndpointEntry) -> Result<()> {
        let i = self.index(name)?;
        let host = name == entries::HOST_ENDPOINT;
        let info = EndpointInfo {
            ep_id: e.ep,
            identity: e.identity,
            flags: if host {
                bpf::maps::ENDPOINT_FLAG_HOST
            } else {
                bpf::maps::ENDPOINT_FLAGS_NONE
            },
        };
        self.maps.set_endpoint(i, info)?;
        if host {
            self.maps.set_endpoint(bpf::maps::HOST_ENDPOINT_KEY, info)?;
        }
        Ok(())
    }
    fn remove_endpoint(&mut self, name: &str, _: &EndpointEntry) -> Result<()> {
        if name == entries::HOST_ENDPOINT {
            self.maps.remove_endpoint(bpf::maps::HOST_ENDPOINT_KEY)?;
        }
        let i = self.index(name)?;
        self.maps.remove_endpoint(i).map(|_| ())
    }
    fn set_ipcache(&mut self, prefix: entries::Prefix, identity: u32) -> Result<()> {
        self.maps.ipcache_set(prefix.0, prefix.1, identity)
    }
    fn remove_ipcache(&mut self, prefix: entries::Prefix) -> Result<()> {
        self.maps.ipcache_remove(prefix.0, prefix.1).map(|_| ())
    }
    fn set_policy(&mut self, k: &PolicyKey, v: &PolicyValue) -> Result<()> {
        self.maps.policy_set(
            kernel_key(k),
            bpf::maps::PolicyValue::new(v.deny, v.l7, v.rule).with_dns(v.dns),
        )
    }
    fn remove_policy(&mut self, k: &PolicyKey) -> Result<()> {
        self.maps.policy_remove(&kernel_key(k)).map(|_| ())
    }
    fn set_service(&mut self, k: ServiceSlot, v: SlotValue) -> Result<()> {
        let value = match v {
            SlotValue::Count(n) => bpf::maps::LbValue::service(n),
            SlotValue::Backend(ip, port) => bpf::maps::LbValue::backend(ip, port),
        };
        self.maps
            .lb_set(bpf::maps::LbKey::new(k.0, k.1, k.2, k.3), value)
    }
    fn remove_service(&mut self, k: ServiceSlot) -> Result<()> {
        self.maps
            .lb_remove(&bpf::maps::LbKey::new(k.0, k.1, k.2, k.3))
            .map(|_| ())
    }
}

fn kernel_key(k: &PolicyKey) -> bpf::maps::PolicyKey {
    let dir = if k.egress {
        Direction::Egress
    } else {
        Direction::Ingress
    };
    bpf::maps::PolicyKey::new(k.ep, dir, k.identity, k.proto, k.port, k.bits)
}

#[cfg(test)]
pub(crate) mod tests;
