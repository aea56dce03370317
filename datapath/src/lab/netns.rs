//! Building and removing a lab: namespaces, veth pairs, the underlay bridge, addresses and
//! routes, with `ip` commands run through [`crate::sys`]. See the
//! [module documentation](super) for the layout.

use crate::names::{self, NODE_UNDERLAY_IF, POD_GATEWAY, POD_GATEWAY6, POD_IF, UNDERLAY_BRIDGE};
use crate::sys::iproute::{IpNetns, is_exists};
use crate::sys::netns::{self as sysns, list as netns_list};
use crate::sys::{NetnsSysctls, Sysctls};
use crate::sys::{Route, RouteTarget};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use ward_schema::topology::{Ipv4Net, NodeSpec, PodSpec, Topology};

/// A lab that is up. Dropping it leaves the lab in place (the CLI builds a lab and exits);
/// [`Lab::down`] removes it, with or without this value.
#[derive(Debug)]
pub struct Lab {
    topology: Topology,
}

/// What a lab's state file (`/run/ward/lab/<name>.json`) records: the topology and every
/// namespace the lab makes. It is written before the first namespace is created, so a lab
/// that crashed half-way up can still be found and removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// The lab name.
    pub name: String,
    /// Every namespace the lab makes (names, not paths).
    pub netns: Vec<String>,
    /// Seconds since the Unix epoch when `up` started.
    pub created_unix: u64,
    /// The topology it was built from.
    pub topology: Topology,
}

/// A lab found by [`Lab::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabStatus {
    /// The lab name.
    pub name: String,
    /// Its state file, when there is one and it parses.
    pub state: Option<LabState>,
    /// Its namespaces that exist.
    pub present: Vec<String>,
    /// Namespaces the state file lists that do not exist (a lab that failed or was partly
    /// removed by hand).
    pub missing: Vec<String>,
}

/// What [`Lab::down`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Teardown {
    /// The lab name.
    pub name: String,
    /// The namespaces deleted.
    pub removed: Vec<String>,
    /// Whether a state file was deleted.
    pub state_file: bool,
}

impl Teardown {
    /// Whether there was anything to remove.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && !self.state_file
    }
}

impl fmt::Display for Teardown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return write!(f, "lab {}: nothing to remove", self.name);
        }
        write!(
            f,
            "lab {}: removed {} network namespace(s)",
            self.name,
            self.removed.len()
        )?;
        if self.state_file {
            write!(f, " and its state file")?;
        }
        Ok(())
    }
}

/// Fails unless the process runs as root: namespaces, veths and routes need CAP_NET_ADMIN and
/// CAP_SYS_ADMIN.
pub fn require_root() -> Result<()> {
    if crate::sys::is_root() {
        Ok(())
    } else {
        bail!(
            "the lab needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to create network namespaces; run it as root (e.g. with sudo)"
        )
    }
}

/// The state file of lab `name`.
pub fn state_file(name: &str) -> PathBuf {
    Path::new(names::STATE_DIR).join(format!("{name}.json"))
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        bail!("{name:?} is not a lab name (a DNS-1123 label: lower-case letters, digits and '-')")
    }
}

/// Every namespace `topology` makes, in creation order.
fn planned_netns(t: &Topology) -> Vec<String> {
    let mut out = vec![names::underlay_netns(&t.name)];
    out.extend(t.nodes.iter().map(|n| names::node_netns(&t.name, &n.name)));
    out.push(names::world_netns(&t.name));
    out.extend(
        t.pods
            .iter()
            .map(|p| names::pod_netns(&t.name, &p.namespace, &p.name)),
    );
    out
}

fn read_state(name: &str) -> Option<LabState> {
    let path = state_file(name);
    let bytes = std::fs::read(&path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "lab state file does not parse; ignoring it");
            None
        }
    }
}

fn write_state(state: &LabState) -> Result<()> {
    let dir = Path::new(names::STATE_DIR);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = state_file(&state.name);
    let tmp = dir.join(format!(".{}.json.tmp", state.name));
    let text = serde_json::to_vec_pretty(state)?;
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The namespaces of lab `name` that exist.
fn present_netns(name: &str) -> Result<Vec<String>> {
    let prefix = names::netns_prefix(name);
    Ok(netns_list()?
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect())
}

impl Lab {
    /// Builds `topology`. Refuses when a lab of the same name exists (a state file or any of
    /// its namespaces); see [`Lab::up_replacing`]. When a step fails, whatever was built is
    /// removed again and the error names the `ip` command and its stderr.
    pub fn up(topology: &Topology) -> Result<Lab> {
        require_root()?;
        check_name(&topology.name)?;
        let present = present_netns(&topology.name)?;
        let has_state = state_file(&topology.name).exists();
        if !present.is_empty() || has_state {
            bail!(
                "lab {} already exists ({} network namespace(s){}); remove it first (`ward lab down --name {}`) or replace it (`ward lab up --replace`)",
                topology.name,
                present.len(),
                if has_state {
                    format!(", state file {}", state_file(&topology.name).display())
                } else {
                    String::new()
                },
                topology.name
            );
        }
        let state = LabState {
            name: topology.name.clone(),
            netns: planned_netns(topology),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            topology: topology.clone(),
        };
        write_state(&state)?;
        if let Err(e) = build(topology) {
            return Err(match Lab::down(&topology.name) {
                Ok(_) => e.context(format!("cannot build lab {}; what was built has been removed", topology.name)),
                Err(cleanup) => e.context(format!(
                    "cannot build lab {}, and removing what was built failed too ({cleanup:#}); run `ward lab down --name {}`",
                    topology.name, topology.name
                )),
            });
        }
        Ok(Lab {
            topology: topology.clone(),
        })
    }

    /// Like [`Lab::up`], but first removes a lab of the same name if there is one.
    pub fn up_replacing(topology: &Topology) -> Result<Lab> {
        require_root()?;
        Lab::down(&topology.name)?;
        Lab::up(topology)
    }

    /// Removes lab `name`: every namespace its state file lists and every namespace whose name
    /// starts with its prefix (`w-<name>.`, found with `ip netns list`), then the state file.
    /// Works after a crash (no in-memory state needed) and is idempotent: removing a lab that
    /// does not exist succeeds and reports nothing removed. Veths, the bridge, addresses and
    /// routes all live inside the namespaces and go with them.
    pub fn down(name: &str) -> Result<Teardown> {
        check_name(name)?;
        require_root()?;
        let prefix = names::netns_prefix(name);
        let listed: BTreeSet<String> = netns_list()?.into_iter().collect();
        let mut all: BTreeSet<String> = listed
            .iter()
            .filter(|n| n.starts_with(&prefix))
            .cloned()
            .collect();
        if let Some(state) = read_state(name) {
            // The prefix scan finds these too; the state file is the record of what `up` meant
            // to make, so it is honoured even if the naming scheme changes.
            all.extend(
                state
                    .netns
                    .into_iter()
                    .filter(|n| n.starts_with(&prefix) && listed.contains(n)),
            );
        }
        let mut removed = Vec::new();
        let mut errors = Vec::new();
        // Pods first, the underlay last: the order a reader of `ip netns` expects.
        let mut ordered: Vec<String> = all.into_iter().collect();
        ordered.sort_by_key(|n| (!n.contains(".pod."), n.ends_with(".underlay"), n.clone()));
        for ns in ordered {
            match sysns::delete(&ns) {
                Ok(()) => removed.push(ns),
                Err(e) if !names::netns_path(&ns).exists() => {
                    tracing::debug!(netns = %ns, error = %e, "already gone");
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        let path = state_file(name);
        let state_file = match std::fs::remove_file(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => {
                errors.push(format!("cannot remove {}: {e}", path.display()));
                false
            }
        };
        if !errors.is_empty() {
            bail!(
                "lab {name} was not removed completely: {}",
                errors.join("; ")
            );
        }
        Ok(Teardown {
            name: name.to_owned(),
            removed,
            state_file,
        })
    }

    /// Removes this lab ([`Lab::down`] by its name).
    pub fn teardown(self) -> Result<Teardown> {
        Lab::down(&self.topology.name)
    }

    /// Every lab found: by its state file or by namespaces with the lab prefix. Needs no root.
    pub fn status() -> Result<Vec<LabStatus>> {
        let mut labs: BTreeSet<String> = BTreeSet::new();
        if let Ok(dir) = std::fs::read_dir(names::STATE_DIR) {
            for entry in dir.flatten() {
                let file = entry.file_name();
                let file = file.to_string_lossy();
                if let Some(name) = file.strip_suffix(".json").filter(|n| !n.starts_with('.')) {
                    labs.insert(name.to_owned());
                }
            }
        }
        let all = netns_list()?;
        labs.extend(
            all.iter()
                .filter_map(|n| names::lab_of_netns(n))
                .map(str::to_owned),
        );
        Ok(labs
            .into_iter()
            .map(|name| {
                let prefix = names::netns_prefix(&name);
                let present: Vec<String> = all
                    .iter()
                    .filter(|n| n.starts_with(&prefix))
                    .cloned()
                    .collect();
                let state = read_state(&name);
                let missing = state
                    .iter()
                    .flat_map(|s| s.netns.iter())
                    .filter(|n| !present.contains(n))
                    .cloned()
                    .collect();
                LabStatus {
                    name,
                    state,
                    present,
                    missing,
                }
            })
            .collect())
    }

    /// The lab name.
    pub fn name(&self) -> &str {
        &self.topology.name
    }

    /// The topology the lab was built from.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Every namespace of the lab (names), underlay first, pods last.
    pub fn netns_names(&self) -> Vec<String> {
        planned_netns(&self.topology)
    }

    /// `/run/netns/w-<lab>.node.<node>`. For a node the topology does not declare this is
    /// the path it would have, which does not exist.
    pub fn node_netns(&self, node: &str) -> PathBuf {
        names::netns_path(&names::node_netns(&self.topology.name, node))
    }

    /// `/run/netns/w-<lab>.pod.<namespace>.<pod>` for `pod` written `namespace/name`, or as a
    /// bare name when that name is unique in the lab. For a pod the topology does not declare
    /// this is a path that does not exist.
    pub fn pod_netns(&self, pod: &str) -> PathBuf {
        let (ns, name) = self.pod_parts(pod);
        names::netns_path(&names::pod_netns(&self.topology.name, &ns, &name))
    }

    /// `/run/netns/w-<lab>.world`.
    pub fn world_netns(&self) -> PathBuf {
        names::netns_path(&names::world_netns(&self.topology.name))
    }

    /// `/run/netns/w-<lab>.underlay` (the bridge).
    pub fn underlay_netns(&self) -> PathBuf {
        names::netns_path(&names::underlay_netns(&self.topology.name))
    }

    /// The host side of `pod`'s veth pair, in its node's namespace (`lxc…`,
    /// [`names::host_ifname`]); `pod` as in [`Lab::pod_netns`].
    pub fn host_ifname(&self, pod: &str) -> String {
        let (ns, name) = self.pod_parts(pod);
        names::host_ifname(&ns, &name)
    }

    /// The pod's declaration, `pod` as in [`Lab::pod_netns`].
    pub fn pod(&self, pod: &str) -> Option<&PodSpec> {
        self.topology.pod(pod)
    }

    fn pod_parts(&self, pod: &str) -> (String, String) {
        if let Some(p) = self.topology.pod(pod) {
            return (p.namespace.clone(), p.name.clone());
        }
        match pod.split_once('/') {
            Some((ns, name)) => (ns.to_owned(), name.to_owned()),
            None => ("default".to_owned(), pod.to_owned()),
        }
    }
}

impl fmt::Display for Lab {
    /// What was built: underlay, nodes with their pods, world.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.topology;
        writeln!(
            f,
            "lab {} is up: {} node(s), {} pod(s), world {} (from {})",
            t.name,
            t.nodes.len(),
            t.pods.len(),
            t.world.ip,
            t.source
        )?;
        writeln!(
            f,
            "  underlay {}  bridge {UNDERLAY_BRIDGE}  netns {}",
            t.underlay,
            names::underlay_netns(&t.name)
        )?;
        let width = t
            .pods
            .iter()
            .map(|p| p.full_name().len())
            .max()
            .unwrap_or(0);
        for n in &t.nodes {
            writeln!(
                f,
                "  node {}  {}  podCIDR {}  netns {}",
                n.name,
                dual(n.ip, n.ipv6),
                n.pod_cidr,
                names::node_netns(&t.name, &n.name)
            )?;
            for p in t.pods_on(&n.name) {
                writeln!(
                    f,
                    "    pod {:width$}  {:15}  {POD_IF} <-> {}  netns {}",
                    p.full_name(),
                    dual(p.ip, p.ipv6),
                    p.host_ifname(),
                    names::pod_netns(&t.name, &p.namespace, &p.name)
                )?;
            }
        }
        let more: Vec<String> = t.world.addresses.iter().map(|a| a.to_string()).collect();
        writeln!(
            f,
            "  world {}  {}{}  netns {}",
            t.world.name,
            t.world.ip,
            if more.is_empty() {
                String::new()
            } else {
                format!(" (also {})", more.join(", "))
            },
            names::world_netns(&t.name)
        )?;
        write!(
            f,
            "  pods route via {POD_GATEWAY} (their node); state {}",
            state_file(&t.name).display()
        )
    }
}

/// An address, and its IPv6 counterpart in a dual-stack lab.
fn dual(ip: Ipv4Addr, ipv6: Option<Ipv6Addr>) -> String {
    match ipv6 {
        Some(v6) => format!("{ip} {v6}"),
        None => ip.to_string(),
    }
}

/// Creates namespace `name` with the lab's sysctls: IPv6 off unless the lab is dual stack
/// (`ipv6`: then forwarding like IPv4, and no duplicate address detection, whose wait only
/// delays the lab's unique addresses), no reverse path filter, forwarding only on nodes,
/// ICMP echo ("ping") sockets for every group (both families), so probes need no raw
/// sockets; loopback up.
fn add_netns(name: &str, forwarding: bool, ipv6: bool) -> Result<()> {
    sysns::add(name)?;
    let path = names::netns_path(name);
    let sysctls = NetnsSysctls::new(&path);
    let fwd = if forwarding { "1" } else { "0" };
    if ipv6 {
        sysctls.set(&[
            ("net.ipv6.conf.all.forwarding", fwd),
            ("net.ipv6.conf.default.forwarding", fwd),
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_ra", "0"),
        ])?;
    } else {
        sysctls.set(&[
            ("net.ipv6.conf.all.disable_ipv6", "1"),
            ("net.ipv6.conf.default.disable_ipv6", "1"),
            ("net.ipv6.conf.lo.disable_ipv6", "1"),
        ])?;
    }
    sysctls.set(&[
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
        ("net.ipv4.conf.all.arp_ignore", "0"),
        ("net.ipv4.conf.default.arp_ignore", "0"),
        ("net.ipv4.ip_forward", fwd),
        ("net.ipv4.ping_group_range", "0 2147483647"),
    ])?;
    IpNetns::new(name).link_up("lo")?;
    Ok(())
}

/// Builds everything; the caller removes the lab when this fails.
fn build(t: &Topology) -> Result<()> {
    let lab = &t.name;
    let underlay = names::underlay_netns(lab);
    let world = names::world_netns(lab);
    let br = UNDERLAY_BRIDGE;

    let v6 = t.ipv6.is_some();
    add_netns(&underlay, false, v6)?;
    for n in &t.nodes {
        add_netns(&names::node_netns(lab, &n.name), true, v6)?;
    }
    add_netns(&world, false, v6)?;
    for p in &t.pods {
        add_netns(&names::pod_netns(lab, &p.namespace, &p.name), false, v6)?;
    }

    // The underlay: a bridge, one port per node and one for world.
    IpNetns::new(&underlay).add_bridge(br)?;
    IpNetns::new(&underlay).link_up(br)?;

    for n in &t.nodes {
        build_node(t, n)?;
    }

    // World: its documentation address on eth0, the underlay on-link, each node's pods via
    // that node.
    attach_underlay(t, &world, &t.world.name)?;
    let eth0 = NODE_UNDERLAY_IF;
    let w = IpNetns::new(&world);
    for ip in t.world.all_addresses() {
        w.add_address(ip, 32, eth0, false)?;
    }
    w.link_up(eth0)?;
    w.add_route(&route(t.underlay, RouteTarget::Dev(eth0.to_owned())), None)?;
    for n in &t.nodes {
        w.add_route(
            &route(n.pod_cidr, RouteTarget::Via(n.ip, eth0.to_owned())),
            None,
        )?;
    }
    if let Some(plan) = t.ipv6 {
        for ip in &t.world.ipv6 {
            w.add_address6(*ip, 128, eth0)?;
        }
        w.add_route6(plan.cluster_net(t.underlay), None, eth0)?;
        for n in &t.nodes {
            pod_route6(&world, t, n)?;
        }
    }
    for p in &t.pods {
        build_pod(t, p)?;
    }
    Ok(())
}

/// In a dual-stack lab, namespace `netns`'s routes to node `n`'s pods through that node:
/// its IPv6 pod prefix, and the pods with their own address outside it
/// ([`Topology::pod_routes6`]); a route already there is kept.
fn pod_route6(netns: &str, t: &Topology, n: &NodeSpec) -> Result<()> {
    let Some(via) = n.ipv6 else {
        return Ok(());
    };
    for dst in t.pod_routes6(n) {
        match IpNetns::new(netns).add_route6(dst, Some(via), NODE_UNDERLAY_IF) {
            Err(e) if is_exists(&e) => {}
            r => r?,
        }
    }
    Ok(())
}

/// A veth from `netns` into the underlay bridge, named after `name` on the bridge side.
fn attach_underlay(t: &Topology, netns: &str, name: &str) -> Result<()> {
    let underlay = names::underlay_netns(&t.name);
    let (eth0, br) = (NODE_UNDERLAY_IF, UNDERLAY_BRIDGE);
    let port = names::underlay_port(name);
    IpNetns::new(netns).add_veth(eth0, &port, &underlay)?;
    IpNetns::new(&underlay).set_master(&port, br)?;
    IpNetns::new(&underlay).link_up(&port)?;
    Ok(())
}

/// A node (its namespace exists): the underlay address, the pods' gateway on lo, routes to
/// the other nodes' pods and to world.
fn build_node(t: &Topology, n: &NodeSpec) -> Result<()> {
    let ns = names::node_netns(&t.name, &n.name);
    let (gw, eth0, len) = (POD_GATEWAY, NODE_UNDERLAY_IF, t.underlay.prefix_len());
    attach_underlay(t, &ns, &n.name)?;
    let node = IpNetns::new(&ns);
    node.add_address(n.ip, len, eth0, false)?;
    node.link_up(eth0)?;
    node.add_address(gw, 32, "lo", true)?;
    for other in t.nodes.iter().filter(|o| o.name != n.name) {
        add_route(
            &ns,
            &route(other.pod_cidr, RouteTarget::Via(other.ip, eth0.to_owned())),
        )?;
    }
    for ip in t.world.all_addresses() {
        node.add_route(&route(host(ip), RouteTarget::Dev(eth0.to_owned())), None)?;
    }
    if let (Some(plan), Some(ip6)) = (t.ipv6, n.ipv6) {
        node.add_address6(ip6, plan.cluster_net(t.underlay).1, eth0)?;
        for other in t.nodes.iter().filter(|o| o.name != n.name) {
            pod_route6(&ns, t, other)?;
        }
        for ip in &t.world.ipv6 {
            node.add_route6((*ip, 128), None, eth0)?;
        }
    }
    Ok(())
}

/// `ip route add`, where a route already there (an agent's, e.g. into a WireGuard tunnel) is
/// left as it is.
fn add_route(netns: &str, r: &Route) -> Result<()> {
    match IpNetns::new(netns).add_route(r, None) {
        Err(e) if is_exists(&e) => Ok(()),
        r => r,
    }
}

/// A route of metric 0.
fn route(dst: Ipv4Net, target: RouteTarget) -> Route {
    Route {
        dst,
        target,
        metric: 0,
    }
}

/// `ip`/32.
fn host(ip: Ipv4Addr) -> Ipv4Net {
    Ipv4Net::new(ip, 32).unwrap_or_else(|| unreachable!("a /32 is always a network"))
}

/// A pod (its namespace exists): a veth into the node, a /32 on eth0, the default route via
/// the link-local gateway; on the node, a /32 route to the pod through its lxc interface.
fn build_pod(t: &Topology, p: &PodSpec) -> Result<()> {
    let gw = POD_GATEWAY;
    let pod_ns = names::pod_netns(&t.name, &p.namespace, &p.name);
    let node_ns = names::node_netns(&t.name, &p.node);
    let node_ip = t
        .node(&p.node)
        .map(|n| n.ip)
        .with_context(|| format!("pod {} is on undeclared node {}", p.full_name(), p.node))?;
    let lxc = p.host_ifname();
    let (node, pod) = (IpNetns::new(&node_ns), IpNetns::new(&pod_ns));
    node.add_veth(&lxc, POD_IF, &pod_ns)?;
    pod.add_address(p.ip, 32, POD_IF, false)?;
    pod.link_up(POD_IF)?;
    pod.add_route(&route(host(gw), RouteTarget::Dev(POD_IF.to_owned())), None)?;
    let default = Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0)
        .unwrap_or_else(|| unreachable!("0.0.0.0/0 is a network"));
    pod.add_route(
        &route(default, RouteTarget::Via(gw, POD_IF.to_owned())),
        None,
    )?;
    node.link_up(&lxc)?;
    node.add_route(
        &route(host(p.ip), RouteTarget::Dev(lxc.clone())),
        Some(node_ip),
    )?;
    if let Some(ip6) = p.ipv6 {
        pod.add_address6(ip6, 128, POD_IF)?;
        node.add_address6(POD_GATEWAY6, 64, &lxc)?;
        pod.add_route6((Ipv6Addr::UNSPECIFIED, 0), Some(POD_GATEWAY6), POD_IF)?;
        node.add_route6((ip6, 128), None, &lxc)?;
    }
    Ok(())
}

impl Lab {
    /// Adds node `node` of `topology` (this lab's topology plus that node and its pods) to the
    /// running lab: its namespace, underlay port, pods and routes, and a route to its pods on
    /// every other node and on world (a route an agent already set is kept). The state file
    /// is rewritten first, so `ward lab down` removes the new namespaces too.
    pub fn add_node(&mut self, topology: &Topology, node: &str) -> Result<()> {
        require_root()?;
        let n = self.check_change(topology, node)?;
        if self.topology.node(node).is_some() {
            bail!("node {node} is already in lab {}", self.topology.name);
        }
        let lab = &topology.name;
        let mut state = read_state(lab).with_context(|| format!("lab {lab} has no state file"))?;
        state.topology = topology.clone();
        state.netns = planned_netns(topology);
        write_state(&state)?;
        let v6 = topology.ipv6.is_some();
        add_netns(&names::node_netns(lab, node), true, v6)?;
        for p in topology.pods_on(node) {
            add_netns(&names::pod_netns(lab, &p.namespace, &p.name), false, v6)?;
        }
        build_node(topology, &n)?;
        for other in topology.nodes.iter().filter(|o| o.name != node) {
            add_route(
                &names::node_netns(lab, &other.name),
                &route(
                    n.pod_cidr,
                    RouteTarget::Via(n.ip, NODE_UNDERLAY_IF.to_owned()),
                ),
            )?;
        }
        add_route(
            &names::world_netns(lab),
            &route(
                n.pod_cidr,
                RouteTarget::Via(n.ip, NODE_UNDERLAY_IF.to_owned()),
            ),
        )?;
        for ns in topology
            .nodes
            .iter()
            .filter(|o| o.name != node)
            .map(|o| names::node_netns(lab, &o.name))
            .chain([names::world_netns(lab)])
        {
            pod_route6(&ns, topology, &n)?;
        }
        for p in topology.pods_on(node) {
            build_pod(topology, p)?;
        }
        self.topology = topology.clone();
        Ok(())
    }

    /// Removes node `node` and its pods from the running lab; `topology` is the lab without
    /// them. Routes to its pods are deleted on the other nodes and on world.
    pub fn remove_node(&mut self, topology: &Topology, node: &str) -> Result<()> {
        require_root()?;
        if topology.name != self.topology.name {
            bail!(
                "topology {} is not lab {}",
                topology.name,
                self.topology.name
            );
        }
        let n = self
            .topology
            .node(node)
            .with_context(|| format!("node {node} is not in lab {}", self.topology.name))?
            .clone();
        if topology.node(node).is_some() {
            bail!("the new topology still has node {node}");
        }
        let lab = &topology.name;
        for p in self.topology.pods_on(node) {
            sysns::delete(&names::pod_netns(lab, &p.namespace, &p.name))?;
        }
        sysns::delete(&names::node_netns(lab, node))?;
        let _ = IpNetns::new(&names::underlay_netns(lab)).delete_link(&names::underlay_port(node));
        for ns in topology
            .nodes
            .iter()
            .map(|o| names::node_netns(lab, &o.name))
            .chain([names::world_netns(lab)])
        {
            // Every route to its pods, whatever its type or metric (an agent's tunnel and
            // unreachable routes too).
            while IpNetns::new(&ns).delete_route(n.pod_cidr).is_ok() {}
            for dst in self.topology.pod_routes6(&n) {
                while IpNetns::new(&ns).delete_route6(dst).is_ok() {}
            }
        }
        let mut state = read_state(lab).with_context(|| format!("lab {lab} has no state file"))?;
        state.topology = topology.clone();
        state.netns = planned_netns(topology);
        write_state(&state)?;
        self.topology = topology.clone();
        Ok(())
    }

    fn check_change(&self, topology: &Topology, node: &str) -> Result<NodeSpec> {
        if topology.name != self.topology.name {
            bail!(
                "topology {} is not lab {}",
                topology.name,
                self.topology.name
            );
        }
        let n = topology
            .node(node)
            .with_context(|| format!("node {node} is not in the new topology"))?
            .clone();
        for old in &self.topology.nodes {
            if topology.node(&old.name) != Some(old) {
                bail!(
                    "the new topology changes or removes node {}; only adding {node} is supported",
                    old.name
                );
            }
        }
        Ok(n)
    }
}
