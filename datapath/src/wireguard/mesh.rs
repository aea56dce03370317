//! The mesh of one node: its interface, its peers (every other node that published a key), the
//! routes that send other nodes' pod traffic into the tunnel, and its key rotations. See the
//! [module documentation](super) for the design.

use super::config::{MeshConfig, Wanted};
use super::keys::{KeyStore, PrivateKey};
use super::registry::{NodeRecord, Records};
use super::{IFNAME, MTU_OVERHEAD, ROTATION_WAIT};
use crate::names::NODE_UNDERLAY_IF;
use crate::sys::wireguard::PeerSpec;
use crate::sys::{Net, NodeSys, Route as SysRoute, RouteTarget, WgDevice};
use anyhow::{Context, Result, anyhow, bail};
use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::net::IpAddrMask;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use ward_schema::topology::{Ipv4Net, Topology};

/// The file `ward-agent rotate-key` creates in the run directory to ask for a rotation.
pub const ROTATE_REQUEST: &str = "rotate-key";

/// How traffic to another node's pods is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Into the tunnel (an unreachable route behind it, for when the interface goes away).
    Tunnel,
    /// Dropped: encryption is required but there is no tunnel to that node (yet).
    Blocked,
    /// In clear over the underlay (encryption off).
    Clear,
}

impl Route {
    fn as_str(self) -> &'static str {
        match self {
            Route::Tunnel => "tunnel",
            Route::Blocked => "blocked",
            Route::Clear => "clear",
        }
    }
}

/// How another node's pods are reached in clear, while encryption is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClearRouting {
    /// Through the node's address on the lab's underlay interface ([`NODE_UNDERLAY_IF`]):
    /// ward's lab has no routing but the mesh's.
    #[default]
    LabUnderlay,
    /// In a cluster (kube mode): through the node's address on the underlay where that
    /// address is reachable there directly (native routing between nodes on one link, as
    /// Cilium's auto-direct-node-routes), else as the cluster routes them (its CNI, its cloud
    /// routes): the mesh then only removes the routes it set. Never blocked: while encryption
    /// is off nothing requires it, and a blocked pod CIDR cuts that node's pods off from the
    /// API server, which is where the setting that turns encryption on comes from.
    Cluster,
}

/// A configured peer: which node's key it is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Configured {
    node: String,
    spec: PeerSpec,
}

struct Active {
    cfg: MeshConfig,
    device: Box<dyn WgDevice>,
    endpoint: SocketAddr,
    key: PrivateKey,
    next: Option<PrivateKey>,
    rotation_started: Option<(Instant, SystemTime)>,
    rotations: u64,
    /// By public key (base64).
    peers: BTreeMap<String, Configured>,
    /// Peers a running device had when this agent attached to it, not yet matched with the
    /// wanted ones: kept as they are when wanted unchanged, else removed.
    inherited: Vec<PeerSpec>,
}

/// The last completed rotation, for status and benchmarks.
#[derive(Debug, Clone)]
struct Completed {
    at: SystemTime,
    took: Duration,
    confirmed: bool,
}

/// One node's WireGuard mesh.
pub struct Mesh {
    node: String,
    sys: NodeSys,
    run_dir: PathBuf,
    keys: KeyStore,
    registry: Box<dyn Records>,
    wanted: Wanted,
    active: Option<Active>,
    error: Option<String>,
    routes: BTreeMap<Ipv4Net, (Ipv4Addr, Route)>,
    clear: ClearRouting,
    last_rotation: Option<Completed>,
    last_attempt: Instant,
    /// How long a rotation waits for its peers ([`ROTATION_WAIT`]).
    rotation_wait: Duration,
}

/// How often a mesh that could not be set up tries again (a key file fixed, an interface
/// that appeared).
const RETRY: Duration = Duration::from_secs(2);

impl Mesh {
    /// The mesh of `node`, whose namespace `sys` is bound to; keys in `key_dir`, status and
    /// rotation requests in `run_dir`, records published in `registry`. Nothing is created
    /// yet.
    pub fn new(
        node: &str,
        sys: NodeSys,
        key_dir: &Path,
        run_dir: &Path,
        registry: Box<dyn Records>,
    ) -> Mesh {
        Mesh {
            node: node.to_owned(),
            sys,
            run_dir: run_dir.to_path_buf(),
            keys: KeyStore::new(key_dir),
            registry,
            wanted: Wanted::Off,
            active: None,
            error: None,
            routes: BTreeMap::new(),
            clear: ClearRouting::default(),
            last_rotation: None,
            last_attempt: Instant::now(),
            rotation_wait: ROTATION_WAIT,
        }
    }

    /// The mesh with `clear` as its routing while encryption is off (the lab's underlay by
    /// default).
    #[must_use]
    pub fn with_clear_routing(mut self, clear: ClearRouting) -> Mesh {
        self.clear = clear;
        self
    }

    /// Sets how long a rotation waits for its peers to prepare (default [`ROTATION_WAIT`]).
    pub fn set_rotation_wait(&mut self, wait: Duration) {
        self.rotation_wait = wait;
    }

    /// The last error, when the mesh is not as wanted.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Brings the interface, peers and routes to what `wanted` and the published records say.
    /// Errors never leave half a configuration: when encryption is required and cannot be
    /// set up, the interface is removed and every other node's pods are unreachable.
    pub fn reconcile(&mut self, wanted: &Wanted, topology: &Topology) {
        if &self.wanted != wanted {
            tracing::info!(node = %self.node, wanted = ?wanted, "encryption settings changed");
        }
        self.wanted = wanted.clone();
        self.last_attempt = Instant::now();
        let result = match wanted {
            Wanted::Off => self.turn_off(topology),
            Wanted::Invalid(msg) => Err(anyhow!("{msg}")),
            Wanted::On(cfg) => self.converge(cfg, topology),
        };
        match result {
            Ok(warning) => self.error = warning,
            Err(e) => self.fail_closed(topology, &format!("{e:#}")),
        }
    }

    /// Time-driven work: starts a rotation when the key is due or one was asked for, and
    /// finishes one when every peer is ready (or [`ROTATION_WAIT`] has passed).
    /// A mesh that failed is tried again every `RETRY`.
    pub fn tick(&mut self, topology: &Topology) {
        let Wanted::On(cfg) = self.wanted.clone() else {
            return;
        };
        self.restart_dead_device(topology);
        if self.active.is_none() {
            if self.error.is_some() && self.last_attempt.elapsed() >= RETRY {
                let wanted = self.wanted.clone();
                self.reconcile(&wanted, topology);
            }
            return;
        }
        if let Err(e) = self.maybe_start_rotation(&cfg) {
            tracing::warn!(node = %self.node, "cannot start a key rotation: {e:#}");
        }
        let rotating = self.active.as_ref().is_some_and(|a| a.next.is_some());
        if let Err(e) = if rotating {
            self.maybe_finish_rotation(topology, &self.registry.read_all())
        } else {
            Ok(())
        } {
            tracing::warn!(node = %self.node, "cannot finish the key rotation: {e:#}");
        }
    }

    /// Removes the interface (a userspace device's process ends): this agent's, else one an
    /// earlier agent left running. Whether this agent had one.
    fn remove_device(&mut self) -> bool {
        let had = self.active.is_some();
        let result = match self.active.take() {
            Some(a) => a.device.remove(),
            None => self.sys.wireguard.stop_left(),
        };
        if let Err(e) = result {
            tracing::warn!(node = %self.node, "removing the WireGuard interface: {e:#}");
        }
        had
    }

    /// A device whose process ended took its interface, and the kernel the routes into it,
    /// with it: the unreachable routes behind them block cross-node pod traffic. Starts a
    /// new device at once; its routes are set again.
    fn restart_dead_device(&mut self, topology: &Topology) {
        if self.active.as_ref().is_none_or(|a| a.device.alive()) {
            return;
        }
        tracing::error!(node = %self.node, "the WireGuard device stopped; cross-node pod traffic is blocked until it is back; starting it again");
        self.active = None;
        self.routes.clear();
        let wanted = self.wanted.clone();
        self.reconcile(&wanted, topology);
    }

    fn turn_off(&mut self, topology: &Topology) -> Result<Option<String>> {
        if self.remove_device() {
            tracing::info!(node = %self.node, "encryption turned off: WireGuard interface removed");
        }
        self.registry.unpublish(&self.node)?;
        self.set_routes(topology, |_| Route::Clear)?;
        Ok(None)
    }

    fn fail_closed(&mut self, topology: &Topology, msg: &str) {
        if self.error.as_deref() == Some(msg) {
            tracing::debug!(node = %self.node, "still failing: {msg}");
        } else {
            tracing::error!(node = %self.node, "encryption required but not established; cross-node pod traffic is blocked: {msg}");
        }
        self.remove_device();
        if let Err(e) = self.registry.unpublish(&self.node) {
            tracing::warn!(node = %self.node, "{e:#}");
        }
        if let Err(e) = self.set_routes(topology, |_| Route::Blocked) {
            tracing::error!(node = %self.node, "cannot block cross-node routes: {e:#}");
        }
        self.error = Some(msg.to_owned());
    }

    /// Sets up or updates everything; returns a warning (e.g. a duplicate key) that leaves the
    /// rest working.
    fn converge(&mut self, cfg: &MeshConfig, topology: &Topology) -> Result<Option<String>> {
        let me = topology
            .node(&self.node)
            .with_context(|| format!("node {} is not in the topology", self.node))?
            .clone();
        if self.active.as_ref().is_some_and(|a| &a.cfg != cfg) {
            tracing::info!(node = %self.node, "WireGuard settings changed; recreating the interface");
            self.remove_device();
        }
        if self.active.is_none() {
            self.active = Some(self.create(cfg, me.ip)?);
        }
        let records = self.registry.read_all();
        let (wanted_peers, warning) = self.wanted_peers(topology, &records)?;
        let active = self.active.as_mut().context("no interface")?;
        apply_peers(active, &wanted_peers)?;
        let prepared = prepared_for(&records, &active.peers);
        self.publish(prepared)?;
        let tunneled: BTreeSet<String> = self
            .active
            .iter()
            .flat_map(|a| a.peers.values().map(|c| c.node.clone()))
            .collect();
        self.set_routes(topology, |n| {
            if tunneled.contains(n) {
                Route::Tunnel
            } else {
                Route::Blocked
            }
        })?;
        self.maybe_finish_rotation(topology, &records)?;
        Ok(warning)
    }

    fn create(&self, cfg: &MeshConfig, node_ip: Ipv4Addr) -> Result<Active> {
        let (underlay, ip, mtu) = underlay(&*self.sys.net, cfg.underlay.as_deref(), node_ip)?;
        let (key, created) = self.keys.load_or_create()?;
        let next = self.keys.load_next()?;
        let device = self.sys.wireguard.create(
            IFNAME,
            &key,
            cfg.listen_port,
            mtu.saturating_sub(MTU_OVERHEAD),
        )?;
        let rotations = self
            .registry
            .read_all()
            .get(&self.node)
            .map_or(0, |r| r.rotations);
        let inherited = inherited_peers(&*device)?;
        tracing::info!(
            node = %self.node, interface = IFNAME, implementation = device.implementation().as_str(), underlay = %underlay,
            endpoint = %SocketAddr::new(IpAddr::V4(ip), cfg.listen_port), public_key = %key.public(), new_key = created,
            "WireGuard interface up"
        );
        Ok(Active {
            cfg: cfg.clone(),
            device,
            endpoint: SocketAddr::new(IpAddr::V4(ip), cfg.listen_port),
            key,
            rotation_started: next.as_ref().map(|_| (Instant::now(), SystemTime::now())),
            next,
            rotations,
            peers: BTreeMap::new(),
            inherited,
        })
    }

    /// Every other node's keys as peers, current key before next key (the later-added peer
    /// takes the node's addresses for outgoing traffic; see the module docs).
    fn wanted_peers(
        &self,
        topology: &Topology,
        records: &BTreeMap<String, NodeRecord>,
    ) -> Result<(Vec<Configured>, Option<String>)> {
        let active = self.active.as_ref().context("no interface")?;
        let mut owners: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mine = [
            Some(active.key.public().to_string()),
            active.next.as_ref().map(|k| k.public().to_string()),
        ];
        for k in mine.into_iter().flatten() {
            owners.entry(k).or_default().insert(self.node.clone());
        }
        for n in topology.nodes.iter().filter(|n| n.name != self.node) {
            if let Some(r) = records.get(&n.name) {
                for k in std::iter::once(&r.public_key).chain(r.next_public_key.iter()) {
                    owners.entry(k.clone()).or_default().insert(n.name.clone());
                }
            }
        }
        let duplicated: BTreeMap<&String, &BTreeSet<String>> =
            owners.iter().filter(|(_, nodes)| nodes.len() > 1).collect();
        let mut warnings = Vec::new();
        for (k, nodes) in &duplicated {
            warnings.push(format!(
                "detected duplicate public key {k} on nodes {}; those nodes are not peers until one of them removes its WireGuard key file and restarts",
                nodes.iter().cloned().collect::<Vec<_>>().join(" and ")
            ));
        }
        let refused: BTreeSet<&String> = duplicated.values().flat_map(|n| n.iter()).collect();
        let mut out = Vec::new();
        for n in topology
            .nodes
            .iter()
            .filter(|n| n.name != self.node && !refused.contains(&n.name))
        {
            let Some(r) = records.get(&n.name) else {
                continue;
            };
            let allowed = vec![
                IpAddrMask::new(IpAddr::V4(n.ip), 32),
                IpAddrMask::new(IpAddr::V4(n.pod_cidr.network()), n.pod_cidr.prefix_len()),
            ];
            let keys = std::iter::once(&r.public_key)
                .chain(r.next_public_key.iter().filter(|k| **k != r.public_key));
            for k in keys {
                match k.parse::<Key>() {
                    Ok(key) => out.push(Configured {
                        node: n.name.clone(),
                        spec: PeerSpec {
                            key,
                            endpoint: r.endpoint,
                            allowed: allowed.clone(),
                            keepalive: active.cfg.keepalive,
                        },
                    }),
                    Err(e) => warnings.push(format!(
                        "node {} published an unreadable public key {k:?}: {e}",
                        n.name
                    )),
                }
            }
        }
        Ok((
            out,
            if warnings.is_empty() {
                None
            } else {
                Some(warnings.join("; "))
            },
        ))
    }

    fn publish(&self, prepared: BTreeMap<String, String>) -> Result<()> {
        let a = self.active.as_ref().context("no interface")?;
        let record = NodeRecord {
            node: self.node.clone(),
            public_key: a.key.public().to_string(),
            next_public_key: a.next.as_ref().map(|k| k.public().to_string()),
            endpoint: a.endpoint,
            prepared,
            rotations: a.rotations,
        };
        if self.registry.publish(&record)? {
            tracing::debug!(node = %self.node, "published WireGuard record");
        }
        Ok(())
    }

    fn republish(&self, records: &BTreeMap<String, NodeRecord>) -> Result<()> {
        let a = self.active.as_ref().context("no interface")?;
        self.publish(prepared_for(records, &a.peers))
    }

    /// Starts a rotation when one was asked for (`rotate-key`) or the key is as old as the
    /// interval: the next key is written and announced.
    fn maybe_start_rotation(&mut self, cfg: &MeshConfig) -> Result<()> {
        let request = self.run_dir.join(ROTATE_REQUEST);
        let requested = request.exists();
        let a = self.active.as_mut().context("no interface")?;
        if a.next.is_some() {
            return Ok(());
        }
        let age = self
            .keys
            .current_since()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default();
        if !requested && age < cfg.rotation_interval {
            return Ok(());
        }
        let next = PrivateKey::generate();
        self.keys.write_next(&next)?;
        tracing::info!(node = %self.node, reason = if requested { "requested" } else { "interval" }, next_public_key = %next.public(), "key rotation started");
        a.next = Some(next);
        a.rotation_started = Some((Instant::now(), SystemTime::now()));
        let _ = std::fs::remove_file(&request);
        self.republish(&self.registry.read_all())
    }

    /// Switches to the next key once every peer node has configured it (make before break),
    /// as `records` (the registry, read by the caller) say.
    fn maybe_finish_rotation(
        &mut self,
        topology: &Topology,
        records: &BTreeMap<String, NodeRecord>,
    ) -> Result<()> {
        let Some(a) = self.active.as_ref() else {
            return Ok(());
        };
        let Some(next) = a.next.as_ref() else {
            return Ok(());
        };
        let next_pub = next.public().to_string();
        let waiting: Vec<&str> = topology
            .nodes
            .iter()
            .filter(|n| n.name != self.node)
            .filter_map(|n| records.get(&n.name))
            .filter(|r| r.prepared.get(&self.node) != Some(&next_pub))
            .map(|r| r.node.as_str())
            .collect();
        let (started, _) = a
            .rotation_started
            .unwrap_or((Instant::now(), SystemTime::now()));
        let timed_out = started.elapsed() >= self.rotation_wait;
        if !waiting.is_empty() && !timed_out {
            return Ok(());
        }
        if !waiting.is_empty() {
            tracing::warn!(node = %self.node, waiting = ?waiting, "switching to the new key although these peers have not confirmed it; they reach this node again once they do");
        }
        let a = self.active.as_mut().context("no interface")?;
        let next = a.next.take().context("no next key")?;
        a.device.set_private_key(&next)?;
        self.keys.promote_next()?;
        a.key = next;
        a.rotations += 1;
        a.rotation_started = None;
        let took = started.elapsed();
        self.last_rotation = Some(Completed {
            at: SystemTime::now(),
            took,
            confirmed: waiting.is_empty(),
        });
        tracing::info!(node = %self.node, public_key = %a.key.public(), took_ms = took.as_millis() as u64, "key rotation: switched to the new key");
        // Start the new handshakes now, rather than with the next packet, so peers' queued
        // packets go out at once.
        let targets: Vec<Ipv4Addr> = a
            .peers
            .values()
            .filter_map(|c| c.spec.allowed.get(1))
            .filter_map(|m| match m.address {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        a.device.start_handshakes(&targets);
        self.republish(records)
    }

    fn set_routes(&mut self, topology: &Topology, want: impl Fn(&str) -> Route) -> Result<()> {
        let mut errors = Vec::new();
        let mut seen = BTreeSet::new();
        for n in topology.nodes.iter().filter(|n| n.name != self.node) {
            seen.insert(n.pod_cidr);
            let route = want(&n.name);
            if self.routes.get(&n.pod_cidr) == Some(&(n.ip, route)) {
                continue;
            }
            match set_route(&*self.sys.net, n.pod_cidr, n.ip, route, self.clear) {
                Ok(()) => {
                    tracing::info!(node = %self.node, peer = %n.name, cidr = %n.pod_cidr, route = route.as_str(), "route set");
                    self.routes.insert(n.pod_cidr, (n.ip, route));
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        let gone: Vec<Ipv4Net> = self
            .routes
            .keys()
            .filter(|c| !seen.contains(*c))
            .copied()
            .collect();
        for cidr in gone {
            let _ = self.sys.net.delete_route(cidr, None);
            let _ = self
                .sys
                .net
                .delete_route(cidr, Some((&RouteTarget::Unreachable, FALLBACK_METRIC)));
            self.routes.remove(&cidr);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("{}", errors.join("; "))
        }
    }

    /// The mesh as `ward-agent status` shows it (never a private key).
    pub fn status(&self) -> serde_json::Value {
        let routes: Vec<serde_json::Value> = self
            .routes
            .iter()
            .map(|(c, (_, r))| json!({"cidr": c.to_string(), "route": r.as_str()}))
            .collect();
        let last = self
            .last_rotation
            .as_ref()
            .map(|c| json!({"at": unix(c.at), "tookMs": c.took.as_secs_f64() * 1000.0, "confirmedByAllPeers": c.confirmed}));
        let mut out = json!({
            "wanted": match &self.wanted { Wanted::Off => "off", Wanted::On(_) => "on", Wanted::Invalid(_) => "invalid" },
            "error": self.error,
            "routes": routes,
            "lastRotation": last,
        });
        let Some(a) = &self.active else { return out };
        let interval = a.cfg.rotation_interval;
        let since = self.keys.current_since();
        let next_rotation = since.map(|t| unix(t + interval));
        let mut peers = Vec::new();
        let host = a.device.read();
        for (key, c) in &a.peers {
            let live = host.as_ref().ok().and_then(|h| h.peers.get(&c.spec.key));
            peers.push(json!({
                "node": c.node,
                "publicKey": key,
                "endpoint": c.spec.endpoint.to_string(),
                "allowedIPs": c.spec.allowed.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "latestHandshake": live.and_then(|p| p.last_handshake).map(unix),
                "rxBytes": live.map(|p| p.rx_bytes),
                "txBytes": live.map(|p| p.tx_bytes),
            }));
        }
        out["interface"] = json!({
            "name": a.device.ifname(),
            "implementation": a.device.implementation().as_str(),
            "listenPort": a.device.port(),
            "endpoint": a.endpoint.to_string(),
            "publicKey": a.key.public().to_string(),
            "nextPublicKey": a.next.as_ref().map(|k| k.public().to_string()),
            "keyFile": self.keys.current_path().display().to_string(),
            "rotations": a.rotations,
            "rotationIntervalSeconds": interval.as_secs(),
            "nextRotation": next_rotation,
            "rotationInProgress": a.next.is_some(),
            "devicePid": a.device.pid(),
        });
        out["peers"] = json!(peers);
        if let Err(e) = host {
            out["interface"]["readError"] = json!(format!("{e:#}"));
        }
        out
    }
}

/// The metric of the unreachable route behind each tunnel route.
const FALLBACK_METRIC: u32 = 4096;

fn set_route(
    net: &dyn Net,
    cidr: Ipv4Net,
    node_ip: Ipv4Addr,
    route: Route,
    clear: ClearRouting,
) -> Result<()> {
    let fallback = SysRoute {
        dst: cidr,
        target: RouteTarget::Unreachable,
        metric: FALLBACK_METRIC,
    };
    let main = |target| SysRoute {
        dst: cidr,
        target,
        metric: 0,
    };
    match route {
        Route::Tunnel => {
            net.replace_route(&fallback)?;
            net.replace_route(&main(RouteTarget::Dev(IFNAME.to_owned())))
        }
        Route::Blocked => {
            net.replace_route(&fallback)?;
            net.replace_route(&main(RouteTarget::Unreachable))
        }
        Route::Clear => {
            match clear {
                ClearRouting::LabUnderlay => net.replace_route(&main(RouteTarget::Via(
                    node_ip,
                    NODE_UNDERLAY_IF.to_owned(),
                )))?,
                ClearRouting::Cluster => {
                    let direct = RouteTarget::Via(node_ip, NODE_UNDERLAY_IF.to_owned());
                    if net.replace_route(&main(direct)).is_err() {
                        for ours in [
                            RouteTarget::Dev(IFNAME.to_owned()),
                            RouteTarget::Unreachable,
                        ] {
                            let _ = net.delete_route(cidr, Some((&ours, 0)));
                        }
                    }
                }
            }
            let _ = net.delete_route(cidr, Some((&RouteTarget::Unreachable, FALLBACK_METRIC)));
            Ok(())
        }
    }
}

/// The peers a device has already (one this agent attached to), as ward configured them.
fn inherited_peers(device: &dyn WgDevice) -> Result<Vec<PeerSpec>> {
    let host = device.read()?;
    Ok(host
        .peers
        .into_values()
        .filter_map(|p| {
            Some(PeerSpec {
                endpoint: p.endpoint?,
                key: p.public_key,
                allowed: p.allowed_ips,
                keepalive: p.persistent_keepalive_interval,
            })
        })
        .collect())
}

/// Takes over the peers a running device had: those wanted as they are join the configured
/// peers untouched (their sessions go on), the others are removed.
fn adopt_inherited(a: &mut Active, wanted: &[Configured]) -> Result<()> {
    for spec in std::mem::take(&mut a.inherited) {
        match wanted.iter().find(|w| w.spec == spec) {
            Some(w) => {
                a.peers.insert(spec.key.to_string(), w.clone());
            }
            None => {
                a.device.remove_peer(&spec.key)?;
                tracing::info!(public_key = %spec.key, "WireGuard peer left from before removed");
            }
        }
    }
    Ok(())
}

/// Adds and removes peers so the interface has exactly `wanted`, in its order. A peer whose
/// settings changed is removed and added again (its session restarts).
fn apply_peers(a: &mut Active, wanted: &[Configured]) -> Result<()> {
    adopt_inherited(a, wanted)?;
    let wanted_keys: BTreeSet<String> = wanted.iter().map(|c| c.spec.key.to_string()).collect();
    let stale: Vec<String> = a
        .peers
        .iter()
        .filter(|(k, c)| {
            !wanted_keys.contains(*k)
                || !wanted
                    .iter()
                    .any(|w| &w.spec.key.to_string() == *k && w == *c)
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in stale {
        if let Some(c) = a.peers.remove(&k) {
            a.device.remove_peer(&c.spec.key)?;
            tracing::info!(peer = %c.node, public_key = %k, "WireGuard peer removed");
        }
    }
    for c in wanted {
        let k = c.spec.key.to_string();
        if a.peers.contains_key(&k) {
            continue;
        }
        a.device.add_peer(&c.spec)?;
        tracing::info!(peer = %c.node, public_key = %k, endpoint = %c.spec.endpoint, "WireGuard peer added");
        a.peers.insert(k, c.clone());
    }
    Ok(())
}

/// For every rotating node whose next key is configured here: node → that key.
fn prepared_for(
    records: &BTreeMap<String, NodeRecord>,
    peers: &BTreeMap<String, Configured>,
) -> BTreeMap<String, String> {
    records
        .values()
        .filter_map(|r| r.next_public_key.as_ref().map(|k| (r, k)))
        .filter(|(r, k)| peers.get(*k).is_some_and(|c| c.node == r.node))
        .map(|(r, k)| (r.node.clone(), k.clone()))
        .collect()
}

/// The underlay interface, its address and MTU. With no interface named, the one that holds
/// the node's address.
fn underlay(
    net: &dyn Net,
    name: Option<&str>,
    node_ip: Ipv4Addr,
) -> Result<(String, Ipv4Addr, u32)> {
    let addresses = net.ipv4_addresses()?;
    let found = addresses
        .iter()
        .find(|(dev, ip)| match name {
            Some(n) => dev == n,
            None => *ip == node_ip,
        })
        .cloned();
    let Some((dev, ip)) = found else {
        let names: BTreeSet<&str> = addresses.iter().map(|(d, _)| d.as_str()).collect();
        match name {
            Some(n) if !names.contains(n) => bail!(
                "underlay interface {n} (encryption.wireguard.interface) has no IPv4 address on this node or does not exist; interfaces with addresses: {}",
                names.into_iter().collect::<Vec<_>>().join(", ")
            ),
            Some(n) => bail!("underlay interface {n} has no IPv4 address"),
            None => bail!(
                "no interface holds the node address {node_ip}; set encryption.wireguard.interface"
            ),
        }
    };
    let mtu = net.link_mtu(&dev)?;
    Ok((dev, ip, mtu))
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests;
