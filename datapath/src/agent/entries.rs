//! From the engine's resolved policy to the entries of one node's BPF maps. Pure: no kernel,
//! no I/O, so the translation is tested against the engine's own verdicts without root.
//!
//! The maps mirror the datapath of reference §6 (see `datapath/bpf/ward.c`):
//! - **ipcache** (LPM, IPv4 or IPv6 prefix → identity; no entry means `world`; the kernel
//!   keeps one trie per family): every address of every endpoint of the cluster (/32, /128),
//!   every node (`host` for this node, `remote-node` for the others), and every world prefix
//!   a CIDR rule of a local endpoint mentions (`toFQDNs` answers included), with a *CIDR
//!   identity* in Cilium's local identity scope ([`CIDR_IDENTITY_BASE`] on), derived from the
//!   prefix itself ([`cidr_identity`]): a prefix keeps its identity when others come and go
//!   (a DNS answer adds one without renumbering the rest), and a restarted agent computes the
//!   same ones.
//! - **policy** (LPM over endpoint, direction, remote identity, protocol, port): two lookups
//!   per packet, the remote identity and identity 0 (any). Within one lookup the longest
//!   prefix wins, so an allow nested inside a deny of the same lookup is stored as a deny:
//!   then "a deny wins" holds for every packet, as in the engine.
//!
//! World peers: a world address inside a policy prefix has that prefix's CIDR identity, so an
//! entry for `world` (identity 2) also gets every CIDR identity, and a CIDR peer gets the
//! identities of the prefixes inside it and outside its exceptions. A `/0` is a prefix like
//! any other (its ipcache entry catches every otherwise unknown address of its family), so
//! `0.0.0.0/0` and `::/0` stay apart although both families' world is identity 2.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use ward_engine::{
    Direction, Enforcement, ExportedEntry, ExportedPeer, Identity, L4, NamedPort, PolicyRepository,
    RuleRef,
};

/// First CIDR identity (Cilium's local scope, 1 << 24).
pub const CIDR_IDENTITY_BASE: u32 = 1 << 24;
/// How many CIDR identities there are (half of the local scope).
pub const CIDR_IDENTITY_SPACE: u32 = 1 << 23;

/// The CIDR identity a prefix asks for: [`CIDR_IDENTITY_BASE`] plus the FNV-1a hash of its
/// address bytes and length, within [`CIDR_IDENTITY_SPACE`]. Two prefixes asking for the
/// same one are told apart in `cidr_identities`.
pub fn cidr_identity(prefix: Prefix) -> u32 {
    let bytes: Vec<u8> = match prefix.0 {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes.into_iter().chain([prefix.1]) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    CIDR_IDENTITY_BASE + h % CIDR_IDENTITY_SPACE
}

/// One policy-map key. `bits` is how many leading bits of (protocol, port) count: 0 any
/// protocol and port, 8 the protocol only, 8 + k the protocol and the top k port bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyKey {
    /// The local endpoint ([`endpoint_id`]).
    pub ep: u32,
    /// Egress of the endpoint (else ingress).
    pub egress: bool,
    /// The remote identity; 0 is any.
    pub identity: u32,
    /// IP protocol (0 when `bits` is 0).
    pub proto: u8,
    /// Destination port, or ICMP type (masked to `bits`).
    pub port: u16,
    /// Significant bits of protocol and port, 0..=24.
    pub bits: u8,
}

impl PolicyKey {
    /// Whether this key's prefix contains `other`'s (same endpoint, direction, identity).
    fn covers(&self, other: &PolicyKey) -> bool {
        self.bits <= other.bits
            && masked(other.proto, other.port, self.bits) == (self.proto, self.port)
    }
}

/// What a policy-map entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyValue {
    /// Drop.
    pub deny: bool,
    /// An allow whose L7 rules are enforced here only at layer 4.
    pub l7: bool,
    /// An allow with `rules.dns`: the UDP packets it allows from a pod go to the DNS proxy.
    pub dns: bool,
    /// The deciding rule ([`rule_id`]; 0 for the agent's own entries).
    pub rule: u32,
}

/// One local endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointEntry {
    /// Its map id.
    pub ep: u32,
    /// Its security identity.
    pub identity: u32,
    /// Its first address (a dual-stack pod's other one is in the ipcache only).
    pub ip: IpAddr,
}

/// Everything one node's maps hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeEntries {
    /// Local endpoints by `namespace/name`.
    pub endpoints: BTreeMap<String, EndpointEntry>,
    /// Prefix (either family) → identity.
    pub ipcache: BTreeMap<Prefix, u32>,
    /// The policy entries.
    pub policy: BTreeMap<PolicyKey, PolicyValue>,
    /// Rule id → `Kind/ns/name spec.ingress[0]`, for events and status.
    pub rules: BTreeMap<u32, String>,
    /// The service map: every slot of every service address, port and protocol.
    pub services: BTreeMap<ServiceSlot, SlotValue>,
}

/// A service-map key: a service address, port, IP protocol and slot (0: the service itself,
/// 1..=n: its backends).
pub type ServiceSlot = (IpAddr, u16, u8, u16);

/// What a service-map slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotValue {
    /// Slot 0: how many backends the service has.
    Count(u16),
    /// A backend's address and port.
    Backend(IpAddr, u16),
}

/// The service map for `cluster`: per cluster IP and port, slot 0 with the backend count and
/// one slot per backend of the same family (none: packets to it are dropped, as Cilium drops
/// them without a backend). Backends past 65,535 are left out.
pub fn service_slots(cluster: &ward_engine::Cluster) -> BTreeMap<ServiceSlot, SlotValue> {
    let mut out = BTreeMap::new();
    for svc in &cluster.services {
        for &ip in &svc.ips {
            for (i, port) in svc.ports.iter().enumerate() {
                let backends = cluster.backends(svc, i, ip);
                let proto = port.protocol.0;
                let mut n: u16 = 0;
                for b in backends.iter().take(usize::from(u16::MAX)) {
                    n += 1;
                    out.insert((ip, port.port, proto, n), SlotValue::Backend(b.ip, b.port));
                }
                out.insert((ip, port.port, proto, 0), SlotValue::Count(n));
            }
        }
    }
    out
}

impl NodeEntries {
    /// Drops the endpoint `name` and its policy entries (the host endpoint, when its
    /// interface is not attached).
    pub fn remove_endpoint(&mut self, name: &str) {
        if let Some(e) = self.endpoints.remove(name) {
            self.policy.retain(|k, _| k.ep != e.ep);
        }
    }
}

/// An ipcache prefix: the network address (host bits clear) and its length.
pub type Prefix = (IpAddr, u8);

/// A stable 32-bit id for an endpoint (FNV-1a of `namespace/name`, never 0).
pub fn endpoint_id(full_name: &str) -> u32 {
    fnv1a(full_name).max(1)
}

/// A stable 32-bit id for a rule (FNV-1a of its text, never 0).
pub fn rule_id(rule: &RuleRef) -> u32 {
    fnv1a(&rule.to_string()).max(1)
}

fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// One endpoint of the node with its resolved policy's entries, exported once.
struct Local<'r> {
    name: String,
    ip: IpAddr,
    identity: Identity,
    named_ports: &'r BTreeMap<String, NamedPort>,
    enforced: [bool; 2],
    /// Ingress, egress.
    exports: [Vec<ExportedEntry<'r>>; 2],
}

const DIRECTIONS: [Direction; 2] = [Direction::Ingress, Direction::Egress];

/// The name of the node's own (host) endpoint among [`NodeEntries::endpoints`]; pods are
/// named `namespace/name`, so it never collides with one.
pub const HOST_ENDPOINT: &str = "host";

static NO_PORTS: BTreeMap<String, NamedPort> = BTreeMap::new();

/// The node's endpoints (with an address, known to the engine): its pods, and its host
/// endpoint when the node has an address (policed by host policies, CCNPs with a
/// `nodeSelector`).
fn locals<'r>(repo: &'r PolicyRepository, node: &str) -> Vec<Local<'r>> {
    let mut out = Vec::new();
    let host = repo.node_id(node).and_then(|id| {
        let n = repo.cluster().nodes.iter().find(|n| n.name == node)?;
        Some((n.ip()?, repo.node_policy(id)?))
    });
    if let Some((ip, policy)) = host {
        out.push(Local {
            name: HOST_ENDPOINT.to_owned(),
            ip,
            identity: Identity::HOST,
            named_ports: &NO_PORTS,
            enforced: DIRECTIONS.map(|d| policy.is_enforced(d)),
            exports: DIRECTIONS.map(|d| policy.export(d)),
        });
    }
    for ep in repo
        .cluster()
        .endpoints
        .iter()
        .filter(|e| e.node.as_deref() == Some(node))
    {
        let (Some(ip), Some(id)) = (ep.ip(), repo.endpoint_id(&ep.full_name())) else {
            continue;
        };
        let (Some(identity), Some(policy)) = (repo.identity(id), repo.endpoint_policy(id)) else {
            continue;
        };
        out.push(Local {
            name: ep.full_name(),
            ip,
            identity,
            named_ports: &ep.named_ports,
            enforced: DIRECTIONS.map(|d| policy.is_enforced(d)),
            exports: DIRECTIONS.map(|d| policy.export(d)),
        });
    }
    out
}

/// The maps of node `node` for the repository's endpoints and policies.
///
/// Errors name what cannot be represented: two local endpoints whose ids collide.
pub fn compute(repo: &PolicyRepository, node: &str) -> Result<NodeEntries, String> {
    let mut maps = NodeEntries::default();
    let locals = locals(repo, node);
    let cidrs = cidr_identities(&locals);
    ipcache(repo, node, &cidrs, &mut maps);
    maps.services = service_slots(repo.cluster());
    let allow_all = PolicyValue {
        deny: false,
        l7: false,
        dns: false,
        rule: 0,
    };
    for local in &locals {
        let e = endpoint_id(&local.name);
        if let Some((other, _)) = maps.endpoints.iter().find(|(_, x)| x.ep == e) {
            return Err(format!(
                "endpoints {other} and {} share map id {e}; rename one",
                local.name
            ));
        }
        maps.endpoints.insert(
            local.name.clone(),
            EndpointEntry {
                ep: e,
                identity: local.identity.0,
                ip: local.ip,
            },
        );
        for (d, dir) in DIRECTIONS.into_iter().enumerate() {
            let mut raw = Vec::new();
            if repo.config().enforcement == Enforcement::Never {
                raw.push((key(e, dir, 0, 0, 0, 0), allow_all));
            } else {
                for x in &local.exports[d] {
                    entry_keys(
                        repo,
                        x,
                        e,
                        dir,
                        local.named_ports,
                        &cidrs,
                        &mut maps.rules,
                        &mut raw,
                    );
                }
                if !local.enforced[d] {
                    raw.push((key(e, dir, 0, 0, 0, 0), allow_all));
                }
                if dir == Direction::Ingress
                    && repo.config().allow_localhost
                    && local.identity != Identity::HOST
                {
                    raw.push((key(e, dir, Identity::HOST.0, 0, 0, 0), allow_all));
                }
            }
            fold(raw, &mut maps.policy);
        }
    }
    Ok(maps)
}

fn key(ep: u32, dir: Direction, identity: u32, proto: u8, port: u16, bits: u8) -> PolicyKey {
    PolicyKey {
        ep,
        egress: dir == Direction::Egress,
        identity,
        proto,
        port,
        bits,
    }
}

/// World prefixes named by CIDR rules of the node's endpoints, each with its identity.
fn cidr_identities(locals: &[Local<'_>]) -> BTreeMap<Prefix, u32> {
    let mut prefixes = BTreeSet::new();
    for x in locals.iter().flat_map(|l| l.exports.iter().flatten()) {
        for p in &x.peers {
            if let ExportedPeer::Cidr(c) = p {
                prefixes.extend(std::iter::once(&c.prefix).chain(&c.except).map(prefix));
            }
        }
    }
    assign_cidr_identities(prefixes)
}

/// Each prefix's [`cidr_identity`]; in prefix order, one whose identity is taken takes the
/// next free one.
fn assign_cidr_identities(prefixes: BTreeSet<Prefix>) -> BTreeMap<Prefix, u32> {
    let mut taken = BTreeSet::new();
    prefixes
        .into_iter()
        .map(|p| {
            let mut id = cidr_identity(p);
            while !taken.insert(id) {
                id = CIDR_IDENTITY_BASE + (id - CIDR_IDENTITY_BASE + 1) % CIDR_IDENTITY_SPACE;
            }
            (p, id)
        })
        .collect()
}

fn prefix(p: &ward_engine::cidr::Prefix) -> Prefix {
    (p.addr(), p.prefix_len())
}

/// The host prefix of one address: /32 or /128.
fn host_prefix(ip: IpAddr) -> Prefix {
    (ip, width(ip))
}

/// The address family's width in bits.
fn width(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// Endpoints and nodes win over a CIDR prefix that happens to be the same /32.
fn ipcache(
    repo: &PolicyRepository,
    node: &str,
    cidrs: &BTreeMap<Prefix, u32>,
    maps: &mut NodeEntries,
) {
    maps.ipcache.extend(cidrs.iter().map(|(k, v)| (*k, *v)));
    for n in &repo.cluster().nodes {
        let id = if n.name == node {
            Identity::HOST
        } else {
            repo.remote_node_identity(&n.name)
                .unwrap_or(Identity::REMOTE_NODE)
        };
        for &ip in &n.ips {
            maps.ipcache.insert(host_prefix(ip), id.0);
        }
    }
    for ep in &repo.cluster().endpoints {
        let id = repo
            .endpoint_id(&ep.full_name())
            .and_then(|id| repo.identity(id));
        let Some(id) = id else { continue };
        for &ip in &ep.ips {
            maps.ipcache.insert(host_prefix(ip), id.0);
        }
    }
}

/// The raw keys of one exported entry.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site; the arguments are the context"
)]
fn entry_keys(
    repo: &PolicyRepository,
    x: &ExportedEntry<'_>,
    ep: u32,
    dir: Direction,
    own_ports: &BTreeMap<String, NamedPort>,
    cidrs: &BTreeMap<Prefix, u32>,
    rules: &mut BTreeMap<u32, String>,
    out: &mut Vec<(PolicyKey, PolicyValue)>,
) {
    let rule = rule_id(x.rule);
    rules.entry(rule).or_insert_with(|| x.rule.to_string());
    let value = PolicyValue {
        deny: x.deny,
        l7: x.l7,
        dns: false,
        rule,
    };
    let identities = peer_identities(&x.peers, cidrs);
    for l4 in x.l4 {
        // Only a pod's egress goes through the DNS proxy (Cilium's DNS rules are egress rules).
        let value = PolicyValue {
            dns: dir == Direction::Egress && x.dns_rules_on(l4),
            ..value
        };
        match l4 {
            L4::All => out.extend(
                identities
                    .iter()
                    .map(|id| (key(ep, dir, *id, 0, 0, 0), value)),
            ),
            L4::Ports { proto, lo, hi } => {
                for (port, bits) in port_prefixes(*lo, *hi) {
                    out.extend(
                        identities
                            .iter()
                            .map(|id| (key(ep, dir, *id, proto.0, port, bits), value)),
                    );
                }
            }
            L4::Named { proto, name } => {
                let resolved = |ports: &BTreeMap<String, NamedPort>| {
                    ports
                        .get(name)
                        .filter(|np| np.protocol == *proto)
                        .map(|np| np.port)
                };
                if dir == Direction::Ingress {
                    // The destination is the local endpoint: its own declared ports.
                    if let Some(port) = resolved(own_ports) {
                        out.extend(
                            identities
                                .iter()
                                .map(|id| (key(ep, dir, *id, proto.0, port, 24), value)),
                        );
                    }
                    continue;
                }
                // Egress: the destination's ports, so one key per remote endpoint's identity.
                for remote in &repo.cluster().endpoints {
                    let Some(rid) = repo
                        .endpoint_id(&remote.full_name())
                        .and_then(|i| repo.identity(i))
                    else {
                        continue;
                    };
                    let Some(port) = resolved(&remote.named_ports) else {
                        continue;
                    };
                    if identities.contains(&0) || identities.contains(&rid.0) {
                        out.push((key(ep, dir, rid.0, proto.0, port, 24), value));
                    }
                }
            }
        }
    }
}

/// The identities (0 = any) an entry's peers stand for in the datapath.
fn peer_identities(peers: &[ExportedPeer<'_>], cidrs: &BTreeMap<Prefix, u32>) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for p in peers {
        match p {
            ExportedPeer::Any => {
                out.insert(0);
            }
            ExportedPeer::Identities(ids) => {
                for id in ids.iter() {
                    out.insert(id.0);
                    if *id == Identity::WORLD {
                        out.extend(cidrs.values().copied());
                    }
                }
            }
            ExportedPeer::Cidr(c) => {
                let q = prefix(&c.prefix);
                let excepts: Vec<Prefix> = c.except.iter().map(prefix).collect();
                for (p, id) in cidrs {
                    if within(*p, q) && !excepts.iter().any(|x| within(*p, *x)) {
                        out.insert(*id);
                    }
                }
            }
        }
    }
    out
}

/// Whether prefix `inner` lies inside prefix `outer` (of the same family).
fn within(inner: Prefix, outer: Prefix) -> bool {
    inner.0.is_ipv4() == outer.0.is_ipv4()
        && inner.1 >= outer.1
        && mask_ip(inner.0, outer.1) == mask_ip(outer.0, outer.1)
}

/// `ip` with every bit after the first `len` cleared.
fn mask_ip(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            IpAddr::V4((a.to_bits() & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            IpAddr::V6((a.to_bits() & mask).into())
        }
    }
}

/// (port, bits) prefixes for `lo..=hi`: the protocol alone (bits 8) when the range is every
/// port, otherwise the fewest aligned blocks that cover the range exactly.
pub fn port_prefixes(lo: u16, hi: u16) -> Vec<(u16, u8)> {
    crate::bpf::maps::port_range_prefixes(lo, hi)
        .into_iter()
        .map(|(port, k)| (port, 8 + k))
        .collect()
}

fn masked(proto: u8, port: u16, bits: u8) -> (u8, u16) {
    match bits {
        0 => (0, 0),
        1..=8 => (proto, 0),
        _ => {
            let k = u32::from(bits - 8);
            (
                proto,
                if k >= 16 {
                    port
                } else {
                    port & !(u16::MAX >> k)
                },
            )
        }
    }
}

/// Keeps one value per key and turns every allow that a deny of the same lookup contains
/// into that deny, so the longest-prefix match gives the engine's "deny wins".
fn fold(raw: Vec<(PolicyKey, PolicyValue)>, out: &mut BTreeMap<PolicyKey, PolicyValue>) {
    let denies: Vec<(PolicyKey, u32)> = raw
        .iter()
        .filter(|(_, v)| v.deny)
        .map(|(k, v)| (*k, v.rule))
        .collect();
    let mut local: BTreeMap<PolicyKey, PolicyValue> = BTreeMap::new();
    for (k, v) in raw {
        let v = if v.deny {
            v
        } else {
            match denies
                .iter()
                .filter(|(d, _)| d.identity == k.identity && d.covers(&k))
                .max_by_key(|(d, _)| d.bits)
            {
                Some((_, rule)) => PolicyValue {
                    deny: true,
                    l7: false,
                    dns: false,
                    rule: *rule,
                },
                None => v,
            }
        };
        match local.get(&k) {
            // Two allows of one key: the traffic goes to the DNS proxy when either says so.
            Some(old) if !old.deny && !v.deny => {
                let merged = PolicyValue {
                    l7: old.l7 || v.l7,
                    dns: old.dns || v.dns,
                    ..*old
                };
                local.insert(k, merged);
            }
            Some(old) if old.deny || !v.deny => {}
            _ => {
                local.insert(k, v);
            }
        }
    }
    out.extend(local);
}

/// What the datapath decides for one direction of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapVerdict {
    /// An allow entry matched.
    Allow(u32),
    /// A deny entry matched.
    Deny(u32),
    /// Nothing matched.
    DefaultDeny,
}

impl NodeEntries {
    /// The identity of `ip` by longest prefix; `world` when nothing matches.
    pub fn identity_of(&self, ip: IpAddr) -> u32 {
        (0..=width(ip))
            .rev()
            .find_map(|len| self.ipcache.get(&(mask_ip(ip, len), len)).copied())
            .unwrap_or(Identity::WORLD.0)
    }

    /// The lookup `ward.c` does: the remote identity, then identity 0, each by longest prefix.
    pub fn verdict(
        &self,
        ep: u32,
        egress: bool,
        remote: IpAddr,
        proto: u8,
        port: u16,
    ) -> MapVerdict {
        let id = self.identity_of(remote);
        let hits: Vec<PolicyValue> = [id, 0]
            .into_iter()
            .filter_map(|identity| self.longest(ep, egress, identity, proto, port))
            .collect();
        if let Some(d) = hits.iter().find(|v| v.deny) {
            return MapVerdict::Deny(d.rule);
        }
        hits.first()
            .map_or(MapVerdict::DefaultDeny, |a| MapVerdict::Allow(a.rule))
    }

    fn longest(
        &self,
        ep: u32,
        egress: bool,
        identity: u32,
        proto: u8,
        port: u16,
    ) -> Option<PolicyValue> {
        (0..=24u8).rev().find_map(|bits| {
            let (p, port) = masked(proto, port, bits);
            self.policy
                .get(&PolicyKey {
                    ep,
                    egress,
                    identity,
                    proto: p,
                    port,
                    bits,
                })
                .copied()
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// A prefix keeps its CIDR identity when others come and go; two prefixes never share one.
    #[test]
    fn cidr_identities_are_stable_and_distinct() {
        let p = |s: &str, len| -> Prefix { (s.parse().unwrap(), len) };
        let a = p("192.0.2.7", 32);
        let id = cidr_identity(a);
        assert!((CIDR_IDENTITY_BASE..CIDR_IDENTITY_BASE + CIDR_IDENTITY_SPACE).contains(&id));
        assert_eq!(id, cidr_identity(a), "deterministic");
        assert_ne!(id, cidr_identity(p("192.0.2.7", 31)));
        assert_ne!(
            cidr_identity(p("10.0.0.0", 8)),
            cidr_identity(p("10.0.0.0", 16))
        );
        // Many prefixes: all distinct; one more changes no other's identity.
        let many: BTreeSet<Prefix> = (0..2000u32)
            .map(|i| {
                (
                    IpAddr::V4(std::net::Ipv4Addr::from(0xc612_0000 + 2 * i)),
                    32,
                )
            })
            .collect();
        let before = assign_cidr_identities(many.clone());
        let distinct: BTreeSet<u32> = before.values().copied().collect();
        assert_eq!(distinct.len(), many.len());
        let mut more = many;
        more.insert(p("198.18.0.1", 32));
        let after = assign_cidr_identities(more);
        let moved = before.iter().filter(|(k, v)| after[*k] != **v).count();
        assert_eq!(moved, 0);
    }
    use std::net::Ipv4Addr;

    fn ip4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    fn ip6(s: &str) -> IpAddr {
        s.parse().expect("an IPv6 address")
    }

    #[test]
    fn every_port_is_the_protocol_alone_and_ranges_are_blocks() {
        assert_eq!(port_prefixes(0, 65535), vec![(0, 8)]);
        assert_eq!(port_prefixes(80, 80), vec![(80, 24)]);
        assert_eq!(port_prefixes(7999, 8001), vec![(7999, 24), (8000, 23)]);
    }

    #[test]
    fn an_allow_inside_a_deny_of_the_same_lookup_becomes_that_deny() {
        let k = |bits, port| PolicyKey {
            ep: 1,
            egress: false,
            identity: 300,
            proto: 6,
            port,
            bits,
        };
        let raw = vec![
            (
                k(24, 80),
                PolicyValue {
                    deny: false,
                    l7: false,
                    dns: false,
                    rule: 7,
                },
            ),
            (
                k(8, 0),
                PolicyValue {
                    deny: true,
                    l7: false,
                    dns: false,
                    rule: 9,
                },
            ),
            (
                k(24, 81),
                PolicyValue {
                    deny: true,
                    l7: false,
                    dns: false,
                    rule: 10,
                },
            ),
        ];
        let mut maps = NodeEntries::default();
        fold(raw, &mut maps.policy);
        assert!(maps.policy[&k(24, 80)].deny);
        maps.ipcache.insert((ip4(10, 0, 0, 5), 32), 300);
        assert!(matches!(
            maps.verdict(1, false, ip4(10, 0, 0, 5), 6, 80),
            MapVerdict::Deny(_)
        ));
        assert_eq!(
            maps.verdict(1, false, ip4(10, 0, 0, 5), 17, 80),
            MapVerdict::DefaultDeny
        );
    }

    #[test]
    fn identities_come_from_the_longest_prefix_or_are_world() {
        let mut maps = NodeEntries::default();
        maps.ipcache
            .insert((ip4(10, 0, 0, 0), 8), CIDR_IDENTITY_BASE);
        maps.ipcache
            .insert((ip4(10, 1, 0, 0), 16), CIDR_IDENTITY_BASE + 1);
        maps.ipcache.insert((ip4(10, 1, 2, 3), 32), 400);
        assert_eq!(maps.identity_of(ip4(10, 1, 2, 3)), 400);
        assert_eq!(maps.identity_of(ip4(10, 1, 2, 4)), CIDR_IDENTITY_BASE + 1);
        assert_eq!(maps.identity_of(ip4(10, 2, 0, 1)), CIDR_IDENTITY_BASE);
        assert_eq!(maps.identity_of(ip4(192, 0, 2, 1)), Identity::WORLD.0);
    }

    #[test]
    fn ipv6_identities_come_from_the_longest_prefix_of_their_family() {
        let mut maps = NodeEntries::default();
        maps.ipcache
            .insert((ip6("2001:db8::"), 32), CIDR_IDENTITY_BASE);
        maps.ipcache.insert((ip6("fd00:10::5"), 128), 300);
        maps.ipcache
            .insert((ip4(0, 0, 0, 0), 0), CIDR_IDENTITY_BASE + 1);
        assert_eq!(maps.identity_of(ip6("fd00:10::5")), 300);
        assert_eq!(maps.identity_of(ip6("2001:db8:1::9")), CIDR_IDENTITY_BASE);
        assert_eq!(
            maps.identity_of(ip6("2001:db9::1")),
            Identity::WORLD.0,
            "an IPv4 /0 says nothing about IPv6"
        );
        assert_eq!(maps.identity_of(ip4(1, 2, 3, 4)), CIDR_IDENTITY_BASE + 1);
    }

    #[test]
    fn prefixes_contain_only_their_own_family() {
        assert!(within((ip6("2001:db8:1::"), 48), (ip6("2001:db8::"), 32)));
        assert!(!within((ip6("2001:db9::"), 32), (ip6("2001:db8::"), 32)));
        assert!(!within((ip6("::"), 0), (ip4(0, 0, 0, 0), 0)));
        assert!(!within((ip4(10, 0, 0, 0), 8), (ip6("::"), 0)));
        assert_eq!(mask_ip(ip6("fd00:1:2:3::4"), 48), ip6("fd00:1:2::"));
        assert_eq!(mask_ip(ip4(10, 1, 2, 3), 0), ip4(0, 0, 0, 0));
    }
}
