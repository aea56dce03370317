//! The lab topology file: what to build, read with positions so every problem is reported as
//! a [`Diagnostic`] naming the file, line, column and field.
//!
//! ```yaml
//! apiVersion: ward.dev/v1alpha1
//! kind: LabTopology
//! metadata:
//!   name: shop                      # the lab name (a DNS label); namespaces are w-shop.*
//! spec:
//!   underlay: 172.30.0.0/24         # private (RFC 1918): the bridge joining nodes and world
//!   namespaces:                     # optional: namespace labels, as Kubernetes would set
//!     jobs: {ward.dev/allow-kube-dns: "true"}
//!   nodes:
//!     - {name: node-1, ip: 172.30.0.11, podCIDR: 10.200.1.0/24, labels: {zone: a}}
//!     # optional: agent: false (a node without an agent, Cilium's "node without Cilium")
//!   world: {name: world, ip: 203.0.113.10}   # a documentation address (RFC 5737)
//!   # optional: more addresses world answers on (outside the underlay and pod prefixes)
//!   #   world: {name: world, ip: 203.0.113.10, addresses: [198.51.100.7, 10.20.1.5]}
//!   pods:
//!     - name: backend
//!       namespace: shop
//!       labels: {app: backend}
//!       ip: 10.200.1.20              # inside its node's podCIDR
//!       node: node-1
//!       ports:                       # optional; name optional, protocol TCP (default), UDP, SCTP
//!         - {name: http, port: 80, protocol: TCP}
//!       serviceAccount: backend      # optional; `default` when absent
//!       # ipv6: fd00:10::20            # optional, dual stack: its own IPv6 address
//!   services:                        # optional: ClusterIP services
//!     - name: backend
//!       namespace: shop
//!       labels: {tier: api}          # optional; what k8sServiceSelector selects
//!       ip: 10.96.0.10               # the cluster IP: outside the underlay and the pod
//!                                    # prefixes, used by nothing else in the lab
//!       selector: {app: backend}     # backends: the pods of its namespace with these labels
//!       ports:                       # every port named when there are several; protocol
//!         - {name: web, port: 8080, targetPort: http}   # TCP (default) or UDP; a named
//!                                    # targetPort is a port of the selected pods
//!     - name: legacy                 # no selector: the backends are listed
//!       namespace: shop
//!       ip: 10.96.0.11
//!       backends: [10.200.1.20, 203.0.113.10]   # any IPv4 addresses, pods' or outside ones
//!       ports:
//!         - {port: 5432}             # targetPort: the same number when absent
//!   ipv6: {}                         # optional: dual stack (the defaults below)
//!   #   ipv6: {cluster: "fd00::/96", world: "2001:db8::/96"}
//! ```
//!
//! Without `ipv6` the lab is IPv4 only. With it every node, pod, service and world address
//! also has an IPv6 address: its IPv4 address in the last 32 bits of a /96, the `cluster`
//! prefix (a unique-local one, fc00::/7) for nodes, pods and cluster IPs (and the underlay
//! and pod prefixes), the `world` prefix (in the documentation range 2001:db8::/32) for
//! world; a service backend has the IPv6 address of the pod, node or world address it is, or
//! none. A pod may have its own IPv6 address instead (`ipv6`), and world further ones
//! (IPv6 entries of `addresses`, outside the cluster's /96); each is used once in the lab.
//! Names of the lab, nodes, world, namespaces, pods and services are DNS labels;
//! node and world names are at most 13 characters, because they name an underlay interface
//! (`v-<name>`, see [`names`]).

use crate::Diagnostic;
use crate::diagnostic::codes as schema_codes;
use crate::labels::{Label, SOURCE_K8S};
use crate::protocol::Protocol;
use crate::yaml::{self, Limits, Node as YNode, NodeValue, Seg};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::str::FromStr;

/// The diagnostic codes of topology files (`L` = lab).
pub mod codes {
    /// The document's shape: not a mapping, a missing, unknown or mistyped field, the wrong
    /// apiVersion or kind, more than one document.
    pub const SHAPE: &str = "WARD-L001";
    /// A name: invalid, declared twice, or making an interface name longer than 15 characters.
    pub const NAME: &str = "WARD-L002";
    /// An address or prefix: malformed, outside its range, or overlapping another.
    pub const ADDRESS: &str = "WARD-L003";
    /// A pod on a node the topology does not declare.
    pub const REFERENCE: &str = "WARD-L004";
    /// A pod's labels or ports.
    pub const POD: &str = "WARD-L005";
    /// A service: its ports (unnamed among several, repeated, SCTP), a named targetPort
    /// without a selector, both a selector and backends, a backend listed twice.
    pub const SERVICE: &str = "WARD-L006";
}

/// The interface names a topology implies. They are checked here, with the topology, because
/// Linux limits interface names to 15 characters; the lab creates interfaces by these names.
pub mod names {
    /// Linux's limit on interface names (`IFNAMSIZ` - 1).
    pub const MAX_IFNAME: usize = 15;

    /// A node's (or world's) port on the underlay bridge: `v-<name>`.
    pub fn underlay_port(name: &str) -> String {
        format!("v-{name}")
    }

    /// The host side of a pod's veth pair, in its node's namespace: `lxc` and the first 12
    /// hex digits of the FNV-1a hash of `namespace/pod`. Stable: the same pod always gets the
    /// same name, in every lab and on every run.
    pub fn host_ifname(namespace: &str, pod: &str) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in namespace
            .bytes()
            .chain(std::iter::once(b'/'))
            .chain(pod.bytes())
        {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("lxc{:012x}", hash >> 16)
    }
}
use names::MAX_IFNAME;

/// The apiVersion of a topology document.
pub const API_VERSION: &str = "ward.dev/v1alpha1";
/// The kind of a topology document.
pub const KIND: &str = "LabTopology";

/// An IPv4 prefix whose host bits are zero, such as `10.200.1.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    len: u8,
}

impl Ipv4Net {
    /// The prefix `addr/len`; `None` when `len` exceeds 32 or `addr` has host bits set.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Ipv4Net> {
        (len <= 32 && u32::from(addr) & !mask(len) == 0).then_some(Ipv4Net { addr, len })
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The last address of the prefix.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.len))
    }

    /// Whether `ip` lies inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.len) == u32::from(self.addr)
    }

    /// Whether the two prefixes share an address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// Whether `other` lies entirely inside.
    pub fn covers(&self, other: &Ipv4Net) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    /// Parses `a.b.c.d/len`; host bits must be zero.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR: expected a.b.c.d/len"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("{s:?} is not a CIDR: {a:?} is not an IPv4 address"))?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("{s:?} is not a CIDR: the prefix length must be 0 to 32"))?;
        Ipv4Net::new(addr, len).ok_or_else(|| {
            let net = Ipv4Addr::from(u32::from(addr) & mask(len));
            format!("{s:?} has host bits set; the prefix is {net}/{len}")
        })
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A lab: nodes on an underlay, pods on the nodes, one world host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Topology {
    /// The lab name (`metadata.name`), part of every namespace name.
    pub name: String,
    /// The file the topology was read from, as given.
    pub source: String,
    /// The underlay subnet: node addresses live here.
    pub underlay: Ipv4Net,
    /// Labels of Kubernetes namespaces (only those that have some).
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// The nodes, in declaration order.
    pub nodes: Vec<NodeSpec>,
    /// The world host.
    pub world: WorldSpec,
    /// The pods, in declaration order.
    pub pods: Vec<PodSpec>,
    /// Dual stack: how IPv4 addresses map to IPv6 ones (`None`: IPv4 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Plan>,
    /// ClusterIP services, in declaration order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceSpec>,
}

/// A ClusterIP service of the lab: a virtual address that the pods' programs translate to
/// one of its backends (as Cilium's per-packet load balancing does), and what `toServices`
/// rules select.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// The service name (a DNS label).
    pub name: String,
    /// Its Kubernetes namespace.
    pub namespace: String,
    /// Service labels (what `k8sServiceSelector` selects).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Its cluster IP: outside the underlay, the pod prefixes and world's addresses.
    pub ip: Ipv4Addr,
    /// Its IPv6 cluster IP in a dual-stack lab (derived, as every IPv6 address of the lab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// Its ports.
    pub ports: Vec<ServicePortSpec>,
    /// The pod selector (`spec.selector`): its backends are the pods of its namespace with
    /// these labels. `None` for a service without a selector, whose backends are listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<BTreeMap<String, String>>,
    /// The backend addresses of a service without a selector (what its EndpointSlices would
    /// list); any address, a pod's or one outside the cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<Ipv4Addr>,
    /// Their IPv6 addresses in a dual-stack lab (derived: a pod's or world's IPv6 address for
    /// each backend that has one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends6: Vec<Ipv6Addr>,
}

/// One port of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePortSpec {
    /// The port's name (required when the service has more than one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The port on the cluster IP.
    pub port: u16,
    /// The backends' port: a number, or the name of a container port of the selected pods.
    pub target_port: TargetPort,
    /// TCP or UDP.
    #[serde(serialize_with = "ser_proto", deserialize_with = "de_proto")]
    pub protocol: Protocol,
}

/// A service port's `targetPort`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetPort {
    /// A port number.
    Number(u16),
    /// A named container port of the backend pods.
    Name(String),
}

/// A dual-stack lab's IPv6 prefixes (`spec.ipv6`): each address is an IPv4 address of the
/// lab embedded in the last 32 bits of one of these /96 prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv6Plan {
    /// The /96 of nodes, pods, the underlay and the pod prefixes (unique-local).
    pub cluster: Ipv6Addr,
    /// The /96 of the world host's addresses (documentation range).
    pub world: Ipv6Addr,
}

impl Default for Ipv6Plan {
    /// `fd00::/96` for the cluster, `2001:db8::/96` for world.
    fn default() -> Ipv6Plan {
        Ipv6Plan {
            cluster: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0),
            world: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        }
    }
}

/// The length of [`Ipv6Plan`]'s prefixes: what is left holds an IPv4 address.
pub const IPV6_PLAN_PREFIX: u8 = 96;

impl Ipv6Plan {
    /// The IPv6 address of cluster address `v4` (a node's or a pod's).
    pub fn cluster_addr(&self, v4: Ipv4Addr) -> Ipv6Addr {
        embed(self.cluster, v4)
    }

    /// The IPv6 address of world address `v4`.
    pub fn world_addr(&self, v4: Ipv4Addr) -> Ipv6Addr {
        embed(self.world, v4)
    }

    /// The IPv6 prefix of cluster prefix `net` (the underlay, a pod prefix): its network
    /// address and length.
    pub fn cluster_net(&self, net: Ipv4Net) -> (Ipv6Addr, u8) {
        (
            embed(self.cluster, net.network()),
            IPV6_PLAN_PREFIX + net.prefix_len(),
        )
    }
}

fn embed(prefix: Ipv6Addr, v4: Ipv4Addr) -> Ipv6Addr {
    Ipv6Addr::from_bits(prefix.to_bits() | u128::from(v4.to_bits()))
}

/// A node of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    /// The node name.
    pub name: String,
    /// The node's address on the underlay.
    pub ip: Ipv4Addr,
    /// The prefix its pods' addresses come from.
    pub pod_cidr: Ipv4Net,
    /// Its IPv6 address (a dual-stack lab, a dual-stack Kubernetes node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// Node labels.
    pub labels: BTreeMap<String, String>,
    /// Whether an agent runs on it (`agent: false`: Cilium's "node without Cilium": nothing
    /// enforces policy there, and the other nodes know neither its address nor its pods').
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub agent: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// The world host: an address outside the cluster, reached through the underlay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorldSpec {
    /// Its name.
    pub name: String,
    /// Its address, from a documentation range.
    pub ip: Ipv4Addr,
    /// More addresses it answers on, outside the underlay and the pod prefixes (any IPv4
    /// unicast address: the lab has no route out, so none of them leaves it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Ipv4Addr>,
    /// The IPv6 addresses of `addresses` in a dual-stack lab (any unicast address outside
    /// the cluster's IPv6 prefix).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses6: Vec<Ipv6Addr>,
    /// Its IPv6 addresses in a dual-stack lab: one derived from each IPv4 one, in the same
    /// order, then `addresses6`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6: Vec<Ipv6Addr>,
}

impl WorldSpec {
    /// Every address of the world host, [`WorldSpec::ip`] first.
    pub fn all_addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        std::iter::once(self.ip).chain(self.addresses.iter().copied())
    }
}

/// A pod of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSpec {
    /// The pod name.
    pub name: String,
    /// Its Kubernetes namespace.
    pub namespace: String,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
    /// Its address (a `/32` on its `eth0`).
    pub ip: Ipv4Addr,
    /// Its IPv6 address (a `/128`; a dual-stack lab, or a Kubernetes pod's IPv6 `podIPs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// The node it runs on.
    pub node: String,
    /// Its declared container ports.
    pub ports: Vec<PortSpec>,
    /// Its ServiceAccount (`default` when absent).
    #[serde(
        default,
        rename = "serviceAccount",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_account: Option<String>,
}

/// A declared container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// The port's name (for named-port rules), if it has one.
    pub name: Option<String>,
    /// The port number.
    pub port: u16,
    /// TCP, UDP or SCTP.
    #[serde(serialize_with = "ser_proto", deserialize_with = "de_proto")]
    pub protocol: Protocol,
}

fn ser_proto<S: Serializer>(p: &Protocol, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(p)
}

fn de_proto<'de, D: Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
    let s = String::deserialize(d)?;
    Protocol::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown protocol {s:?}")))
}

impl PodSpec {
    /// `namespace/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The host side of its veth pair, in its node's namespace ([`names::host_ifname`]).
    pub fn host_ifname(&self) -> String {
        names::host_ifname(&self.namespace, &self.name)
    }
}

impl Topology {
    /// Reads and checks a topology file. Every problem is reported, each with the file, line,
    /// column and field path.
    pub fn load(path: impl AsRef<Path>) -> Result<Topology, Vec<Diagnostic>> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let limits = Limits::default();
        let meta = std::fs::metadata(path).map_err(|e| vec![unreadable(&file, &e)])?;
        if meta.len() > limits.max_file_bytes {
            return Err(vec![yaml::too_large(meta.len(), &limits).at(&file, 0, 0)]);
        }
        let bytes = std::fs::read(path).map_err(|e| vec![unreadable(&file, &e)])?;
        Topology::parse(&file, &bytes)
    }

    /// Checks the text of a topology file; `file` only labels the findings.
    pub fn parse(file: &str, bytes: &[u8]) -> Result<Topology, Vec<Diagnostic>> {
        let parsed = yaml::parse_bytes(file, bytes, &Limits::default());
        let mut diags: Vec<Diagnostic> = parsed.diagnostics;
        for d in &mut diags {
            if d.file.is_empty() {
                d.file = file.to_owned();
            }
        }
        if diags.iter().any(Diagnostic::is_error) {
            return Err(diags);
        }
        let doc = match parsed.docs.as_slice() {
            [doc] => doc,
            [] => {
                return Err(vec![
                    Diagnostic::error(codes::SHAPE, "the file holds no document")
                        .at(file, 0, 0)
                        .with_hint(format!("a topology is one `kind: {KIND}` document")),
                ]);
            }
            [_, second, ..] => {
                return Err(vec![
                    Diagnostic::error(codes::SHAPE, "a topology file holds exactly one document")
                        .at(file, second.root.pos.line, second.root.pos.column)
                        .with_hint("keep one lab per file"),
                ]);
            }
        };
        let mut cx = Ctx {
            file,
            root: &doc.root,
            diags,
            plan: Some(None),
            explicit6: Vec::new(),
        };
        let topology = cx.topology();
        crate::diagnostic::sort(&mut cx.diags);
        match topology {
            Some(t) if !cx.diags.iter().any(Diagnostic::is_error) => Ok(t),
            _ => Err(cx.diags),
        }
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The pod `namespace/name`, or the one pod called `name` when no namespace is given
    /// and the name is unique.
    pub fn pod(&self, pod: &str) -> Option<&PodSpec> {
        match pod.split_once('/') {
            Some((ns, name)) => self
                .pods
                .iter()
                .find(|p| p.namespace == ns && p.name == name),
            None => {
                let mut it = self.pods.iter().filter(|p| p.name == pod);
                match (it.next(), it.next()) {
                    (Some(p), None) => Some(p),
                    _ => None,
                }
            }
        }
    }

    /// The lab as the agents see it: without the nodes that run none (`agent: false`) and
    /// their pods, whose addresses are then `world` to the others, as a node without Cilium
    /// and its pods are to Cilium (no CiliumNode, no CiliumEndpoints).
    pub fn managed(&self) -> Topology {
        let mut t = self.clone();
        let unmanaged: BTreeSet<String> = t
            .nodes
            .iter()
            .filter(|n| !n.agent)
            .map(|n| n.name.clone())
            .collect();
        t.nodes.retain(|n| n.agent);
        t.pods.retain(|p| !unmanaged.contains(&p.node));
        t
    }

    /// In a dual-stack lab, the IPv6 destinations that lead to node `n`'s pods: its IPv6 pod
    /// prefix (derived from its podCIDR) and the `/128` of each of its pods whose own address
    /// lies outside it. Empty in an IPv4 lab.
    pub fn pod_routes6(&self, n: &NodeSpec) -> Vec<(Ipv6Addr, u8)> {
        let Some(plan) = self.ipv6 else {
            return Vec::new();
        };
        let (net, len) = plan.cluster_net(n.pod_cidr);
        let own = self
            .pods_on(&n.name)
            .filter_map(|p| p.ipv6)
            .filter(|ip| !within6(*ip, net, u32::from(len)))
            .map(|ip| (ip, 128));
        std::iter::once((net, len)).chain(own).collect()
    }

    /// The pods running on node `node`.
    pub fn pods_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a PodSpec> + 'a {
        self.pods.iter().filter(move |p| p.node == node)
    }
}

impl Topology {
    /// Gives every node, pod, service and world address its IPv6 counterpart when the lab is
    /// dual stack ([`Topology::ipv6`]); a pod that has its own (`ipv6`) keeps it. A service's backends get the IPv6 address of the pod,
    /// node or world address they are; a backend that is none of these has none.
    pub fn derive_ipv6(&mut self) {
        let Some(plan) = self.ipv6 else { return };
        for n in &mut self.nodes {
            n.ipv6 = Some(plan.cluster_addr(n.ip));
        }
        for p in &mut self.pods {
            p.ipv6.get_or_insert(plan.cluster_addr(p.ip));
        }
        self.world.ipv6 = self
            .world
            .all_addresses()
            .map(|a| plan.world_addr(a))
            .chain(self.world.addresses6.iter().copied())
            .collect();
        // Each address of the lab's hosts and its IPv6 counterpart.
        let v6_of: BTreeMap<Ipv4Addr, Option<Ipv6Addr>> = self
            .nodes
            .iter()
            .map(|n| (n.ip, n.ipv6))
            .chain(self.pods.iter().map(|p| (p.ip, p.ipv6)))
            .chain(
                self.world
                    .all_addresses()
                    .map(|a| (a, Some(plan.world_addr(a)))),
            )
            .collect();
        for s in &mut self.services {
            s.ipv6 = Some(plan.cluster_addr(s.ip));
            s.backends6 = s
                .backends
                .iter()
                .filter_map(|b| v6_of.get(b).copied().flatten())
                .collect();
        }
    }
}

/// `addr/96` with no host bits.
fn parse_plan_prefix(s: &str) -> Option<Ipv6Addr> {
    let (a, l) = s.split_once('/')?;
    let addr: Ipv6Addr = a.parse().ok()?;
    (l == "96" && addr.to_bits() & u128::from(u32::MAX) == 0).then_some(addr)
}

/// Whether `addr` lies in `range/len`.
fn within6(addr: Ipv6Addr, range: Ipv6Addr, len: u32) -> bool {
    let mask = u128::MAX << (128 - len);
    addr.to_bits() & mask == range.to_bits() & mask
}

fn unreadable(file: &str, e: &std::io::Error) -> Diagnostic {
    Diagnostic::error(
        schema_codes::FILE_UNREADABLE,
        format!("cannot read the topology: {e}"),
    )
    .at(file, 0, 0)
}

/// Whether `s` is a DNS-1123 label (what Kubernetes requires of namespace names).
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1918 ranges: the only ones underlay and pod prefixes may use.
const PRIVATE: [(Ipv4Addr, u8); 3] = [
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
];

/// RFC 5737 documentation ranges: the only ones the world address may use.
const DOCUMENTATION: [(Ipv4Addr, u8); 3] = [
    (Ipv4Addr::new(192, 0, 2, 0), 24),
    (Ipv4Addr::new(198, 51, 100, 0), 24),
    (Ipv4Addr::new(203, 0, 113, 0), 24),
];

fn inside(ranges: &[(Ipv4Addr, u8)], net: &Ipv4Net) -> bool {
    ranges
        .iter()
        .any(|(a, l)| Ipv4Net::new(*a, *l).is_some_and(|r| r.covers(net)))
}

/// The value under `key` of mapping `map`; `None` when the key is missing or its value is
/// null (`key:` with nothing after it).
fn field<'n>(map: &'n YNode, key: &str) -> Option<&'n YNode> {
    map.get(key)
        .filter(|node| !matches!(node.value, NodeValue::Null))
}

fn path(base: &[Seg], more: impl Into<Seg>) -> Vec<Seg> {
    let mut p = base.to_vec();
    p.push(more.into());
    p
}

/// The reader: walks the document, collecting findings with their positions.
struct Ctx<'a> {
    file: &'a str,
    root: &'a YNode,
    diags: Vec<Diagnostic>,
    /// `spec.ipv6`, once read (explicit IPv6 addresses need it): `Some(None)` when absent,
    /// `None` when invalid (reported already).
    plan: Option<Option<Ipv6Plan>>,
    /// IPv6 addresses written in the file (not derived), where, and whose: checked against
    /// every other address once all are known.
    explicit6: Vec<(Ipv6Addr, Vec<Seg>, String)>,
}

/// Who holds an address, for overlap findings.
struct Claim {
    owner: String,
    line: usize,
}

impl<'a> Ctx<'a> {
    fn report(
        &mut self,
        code: &'static str,
        at: &[Seg],
        at_key: bool,
        message: String,
        hint: Option<String>,
    ) {
        let pos = self.root.locate(at, at_key);
        let mut d = Diagnostic::error(code, message)
            .at(self.file, pos.line, pos.column)
            .with_path(yaml::path_string(at));
        if let Some(h) = hint {
            d = d.with_hint(h);
        }
        self.diags.push(d);
    }

    /// Reports a finding about the value at `at`.
    fn error(&mut self, code: &'static str, at: &[Seg], message: impl Into<String>) {
        self.report(code, at, false, message.into(), None);
    }

    /// Reports a finding about the value at `at`, with a hint.
    fn error_hint(
        &mut self,
        code: &'static str,
        at: &[Seg],
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.report(code, at, false, message.into(), Some(hint.into()));
    }

    fn line(&self, at: &[Seg]) -> usize {
        self.root.locate(at, false).line
    }

    /// `node` as a mapping whose keys are all in `known`; `None` (reported) otherwise.
    fn mapping(
        &mut self,
        node: &'a YNode,
        at: &[Seg],
        what: &str,
        known: &[&str],
    ) -> Option<&'a YNode> {
        let Some(entries) = node.as_map() else {
            self.error(codes::SHAPE, at, format!("{what} must be a mapping"));
            return None;
        };
        for e in entries {
            if !known.contains(&e.key.as_str()) {
                self.report(
                    codes::SHAPE,
                    &path(at, e.key.as_str()),
                    true,
                    format!("unknown field \"{}\" in {what}", e.key),
                    Some(format!("the fields are: {}", known.join(", "))),
                );
            }
        }
        Some(node)
    }

    /// The string under `key` of mapping `map` (at `at`); reported when missing (if
    /// `required`) or not a string.
    fn string(
        &mut self,
        map: &'a YNode,
        at: &[Seg],
        key: &str,
        what: &str,
        required: bool,
    ) -> Option<String> {
        let here = path(at, key);
        match field(map, key) {
            None => {
                if required {
                    self.error_hint(
                        codes::SHAPE,
                        &here,
                        format!("{what} has no \"{key}\""),
                        format!("add `{key}:`"),
                    );
                }
                None
            }
            Some(YNode {
                value: NodeValue::String(s),
                ..
            }) => Some(s.clone()),
            Some(_) => {
                self.error_hint(
                    codes::SHAPE,
                    &here,
                    format!("\"{key}\" of {what} must be a string"),
                    "quote the value",
                );
                None
            }
        }
    }

    /// A string that must be a DNS label.
    fn name(&mut self, map: &'a YNode, at: &[Seg], key: &str, what: &str) -> Option<String> {
        let s = self.string(map, at, key, what, true)?;
        if is_dns_label(&s) {
            Some(s)
        } else {
            self.error_hint(
                codes::NAME,
                &path(at, key),
                format!("{what}: {key} {s:?} is not a valid name"),
                "use lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters (a DNS-1123 label)",
            );
            None
        }
    }

    /// An IPv4 address under `key`.
    fn ip(&mut self, map: &'a YNode, at: &[Seg], key: &str, what: &str) -> Option<Ipv4Addr> {
        let s = self.string(map, at, key, what, true)?;
        match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => Some(ip),
            Ok(IpAddr::V6(_)) => {
                self.error(
                    codes::ADDRESS,
                    &path(at, key),
                    format!("{what}: {key} {s} is IPv6; the lab is IPv4 only"),
                );
                None
            }
            Err(_) => {
                self.error(
                    codes::ADDRESS,
                    &path(at, key),
                    format!("{what}: {key} {s:?} is not an IPv4 address"),
                );
                None
            }
        }
    }

    /// An IPv4 prefix under `key`, inside the RFC 1918 ranges.
    fn private_net(
        &mut self,
        map: &'a YNode,
        at: &[Seg],
        key: &str,
        what: &str,
    ) -> Option<Ipv4Net> {
        let s = self.string(map, at, key, what, true)?;
        let here = path(at, key);
        let net = match s.parse::<Ipv4Net>() {
            Ok(net) => net,
            Err(e) => {
                self.error(codes::ADDRESS, &here, format!("{what}: {key} {e}"));
                return None;
            }
        };
        if !inside(&PRIVATE, &net) {
            self.error_hint(
                codes::ADDRESS,
                &here,
                format!("{what}: {key} {net} is not a private prefix"),
                "use a prefix inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16",
            );
            return None;
        }
        if net.prefix_len() > 30 {
            self.error_hint(
                codes::ADDRESS,
                &here,
                format!("{what}: {key} {net} is too small"),
                "use a prefix of length 30 or less",
            );
            return None;
        }
        Some(net)
    }

    /// A `key: value` map of labels (values must be strings).
    fn labels(
        &mut self,
        map: &'a YNode,
        at: &[Seg],
        key: &str,
        what: &str,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let here = path(at, key);
        let Some(node) = field(map, key) else {
            return out;
        };
        let Some(entries) = node.as_map() else {
            self.error(
                codes::SHAPE,
                &here,
                format!("{key} of {what} must be a mapping of strings"),
            );
            return out;
        };
        for e in entries {
            let at_label = path(&here, e.key.as_str());
            let value = match &e.value.value {
                NodeValue::String(s) => s.clone(),
                NodeValue::Null => String::new(),
                _ => {
                    self.error_hint(
                        codes::POD,
                        &at_label,
                        format!("{what}: the value of label \"{}\" must be a string", e.key),
                        format!("quote it: {}: \"{}\"", e.key, scalar_text(&e.value)),
                    );
                    continue;
                }
            };
            if let Err(err) = Label::from_entry(&e.key, &value, SOURCE_K8S) {
                self.report(codes::POD, &at_label, true, format!("{what}: {err}"), None);
                continue;
            }
            out.insert(e.key.clone(), value);
        }
        out
    }

    fn list(&mut self, spec: &'a YNode, key: &str, required: bool) -> &'a [YNode] {
        let at = [Seg::from("spec"), Seg::from(key)];
        match field(spec, key) {
            Some(YNode {
                value: NodeValue::Seq(items),
                ..
            }) => items,
            None => {
                if required {
                    self.error_hint(
                        codes::SHAPE,
                        &at,
                        format!("the topology has no {key}"),
                        format!("add `{key}:` with at least one entry"),
                    );
                }
                &[]
            }
            Some(_) => {
                self.error(codes::SHAPE, &at, format!("{key} must be a list"));
                &[]
            }
        }
    }

    /// The string `key` of the topology must be `want`; `wrong` words the finding otherwise.
    fn fixed(&mut self, top: &'a YNode, key: &str, want: &str, wrong: impl FnOnce(&str) -> String) {
        let value = self.string(top, &[], key, "the topology", true);
        if let Some(v) = value.filter(|v| v != want) {
            self.error_hint(
                codes::SHAPE,
                &[Seg::from(key)],
                wrong(&v),
                format!("use {key}: {want}"),
            );
        }
    }

    fn topology(&mut self) -> Option<Topology> {
        let root = self.root;
        let top = self.mapping(
            root,
            &[],
            "the topology",
            &["apiVersion", "kind", "metadata", "spec"],
        )?;
        self.fixed(top, "apiVersion", API_VERSION, |v| {
            format!("apiVersion {v:?} does not serve kind {KIND}")
        });
        self.fixed(top, "kind", KIND, |k| {
            format!("kind {k:?} is not a lab topology")
        });
        let meta_at = [Seg::from("metadata")];
        let name = match top.get("metadata") {
            Some(meta) => self
                .mapping(meta, &meta_at, "metadata", &["name"])
                .and_then(|m| self.name(m, &meta_at, "name", "the lab")),
            None => {
                self.error_hint(
                    codes::SHAPE,
                    &meta_at,
                    "the topology has no metadata",
                    "add `metadata: {name: <lab name>}`",
                );
                None
            }
        };
        let spec_at = [Seg::from("spec")];
        let Some(spec) = top.get("spec") else {
            self.error_hint(
                codes::SHAPE,
                &spec_at,
                "the topology has no spec",
                "add `spec:` with underlay, nodes, world and pods",
            );
            return None;
        };
        let spec = self.mapping(
            spec,
            &spec_at,
            "spec",
            &[
                "underlay",
                "namespaces",
                "nodes",
                "world",
                "pods",
                "services",
                "ipv6",
            ],
        )?;
        let ipv6 = self.ipv6_plan(spec);
        self.plan = ipv6;
        let underlay = self.private_net(spec, &spec_at, "underlay", "spec");
        let namespaces = self.namespaces(spec);
        let mut claims: BTreeMap<Ipv4Addr, Claim> = BTreeMap::new();
        let nodes = self.nodes(spec, underlay, &mut claims);
        let world = self.world(spec, underlay, &nodes, &mut claims);
        let pods = self.pods(spec, &nodes, &mut claims);
        let services = self.services(spec, underlay, &nodes, &mut claims);
        let mut t = Topology {
            name: name?,
            source: self.file.to_owned(),
            underlay: underlay?,
            namespaces,
            nodes: nodes.into_iter().map(|(n, _)| n).collect(),
            world: world?,
            pods,
            ipv6: ipv6?,
            services,
        };
        t.derive_ipv6();
        self.unique6(&t);
        Some(t)
    }

    /// An IPv6 address written in the file (a pod's `ipv6`, one of world's `addresses`):
    /// the lab must be dual stack and the address a host's. Recorded for [`Ctx::unique6`].
    fn explicit_ip6(&mut self, ip: Ipv6Addr, at: &[Seg], what: &str) -> Option<Ipv6Addr> {
        match self.plan {
            Some(Some(_)) => {}
            // An invalid spec.ipv6 was reported; the address is not wrong for it.
            None => return None,
            Some(None) => {
                self.error_hint(
                    codes::ADDRESS,
                    at,
                    format!("{what}: {ip} is IPv6 and the lab is IPv4 only"),
                    "add `ipv6: {}` to spec to make the lab dual stack",
                );
                return None;
            }
        }
        let special = ip.is_loopback()
            || ip.is_unspecified()
            || ip.is_multicast()
            || within6(ip, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10);
        if special {
            self.error(
                codes::ADDRESS,
                at,
                format!("{what}: {ip} is no host's address (loopback, link-local or multicast)"),
            );
            return None;
        }
        self.explicit6.push((ip, at.to_vec(), what.to_owned()));
        Some(ip)
    }

    /// Every IPv6 address written in the file is used once in the dual-stack lab, derived
    /// addresses included.
    fn unique6(&mut self, t: &Topology) {
        let mut owners: BTreeMap<Ipv6Addr, Vec<String>> = BTreeMap::new();
        let mut own = |ip: Option<Ipv6Addr>, who: String| {
            if let Some(ip) = ip {
                owners.entry(ip).or_default().push(who);
            }
        };
        for n in &t.nodes {
            own(n.ipv6, format!("node {}", n.name));
        }
        for p in &t.pods {
            own(p.ipv6, format!("pod {}", p.full_name()));
        }
        for ip in &t.world.ipv6 {
            own(Some(*ip), "world".to_owned());
        }
        for s in &t.services {
            own(s.ipv6, format!("service {}/{}", s.namespace, s.name));
        }
        for (ip, at, what) in std::mem::take(&mut self.explicit6) {
            let all = owners.get(&ip).map(Vec::as_slice).unwrap_or_default();
            if all.len() > 1 {
                let others: Vec<&str> = all
                    .iter()
                    .map(String::as_str)
                    .filter(|o| **o != what)
                    .collect();
                let message = if others.is_empty() {
                    format!(
                        "{what}: address {ip} is given twice (or is derived from its IPv4 address)"
                    )
                } else {
                    format!("{what}: address {ip} is also that of {}", others.join(", "))
                };
                self.error_hint(
                    codes::ADDRESS,
                    &at,
                    message,
                    "every pod, node, service and the world host needs its own address (derived IPv6 addresses hold the IPv4 one in the last 32 bits of spec.ipv6's prefixes)",
                );
            }
        }
    }

    /// `spec.ipv6`: `Some(None)` when absent, `Some(Some(plan))` when valid, `None` (reported)
    /// otherwise.
    fn ipv6_plan(&mut self, spec: &'a YNode) -> Option<Option<Ipv6Plan>> {
        let at = vec![Seg::from("spec"), Seg::from("ipv6")];
        let Some(node) = spec.get("ipv6") else {
            return Some(None);
        };
        let mut plan = Ipv6Plan::default();
        if matches!(node.value, NodeValue::Null) {
            return Some(Some(plan));
        }
        let m = self.mapping(node, &at, "ipv6", &["cluster", "world"])?;
        let mut ok = true;
        for (key, slot, range, range_len, what) in [
            (
                "cluster",
                &mut plan.cluster,
                Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
                7,
                "a unique-local prefix in fc00::/7",
            ),
            (
                "world",
                &mut plan.world,
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
                32,
                "a documentation prefix in 2001:db8::/32 (RFC 3849)",
            ),
        ] {
            let Some(text) = self.string(m, &at, key, "ipv6", false) else {
                continue;
            };
            match parse_plan_prefix(&text) {
                Some(addr) if within6(addr, range, range_len) => *slot = addr,
                Some(_) => {
                    self.error_hint(
                        codes::ADDRESS,
                        &path(&at, key),
                        format!("ipv6.{key}: {text} is outside its range"),
                        format!("use {what}"),
                    );
                    ok = false;
                }
                None => {
                    self.error_hint(
                        codes::ADDRESS,
                        &path(&at, key),
                        format!("ipv6.{key}: {text:?} is not an IPv6 /96 prefix"),
                        "write a /96 without host bits, such as fd00::/96: the last 32 bits hold the IPv4 address",
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(Some(plan))
    }

    fn namespaces(&mut self, spec: &'a YNode) -> BTreeMap<String, BTreeMap<String, String>> {
        let at = [Seg::from("spec"), Seg::from("namespaces")];
        let mut out = BTreeMap::new();
        let Some(node) = field(spec, "namespaces") else {
            return out;
        };
        let Some(entries) = node.as_map() else {
            self.error(
                codes::SHAPE,
                &at,
                "namespaces must map namespace names to their labels",
            );
            return out;
        };
        for e in entries {
            if !is_dns_label(&e.key) {
                self.report(
                    codes::NAME,
                    &path(&at, e.key.as_str()),
                    true,
                    format!("namespace {:?} is not a valid name", e.key),
                    Some("namespace names are DNS-1123 labels".into()),
                );
                continue;
            }
            let labels = self.labels(node, &at, &e.key, &format!("namespace {}", e.key));
            out.insert(e.key.clone(), labels);
        }
        out
    }

    /// Records `name` as declared at `at`; a second declaration of it is reported (`what`
    /// names the declared thing, `hint` says what must be unique) and gives false.
    fn declare(
        &mut self,
        names: &mut BTreeMap<String, usize>,
        name: String,
        at: &[Seg],
        what: &str,
        hint: &str,
    ) -> bool {
        if let Some(first) = names.get(&name) {
            self.error_hint(
                codes::NAME,
                at,
                format!("{what} is declared more than once (first on line {first})"),
                hint,
            );
            false
        } else {
            names.insert(name, self.line(at));
            true
        }
    }

    /// Claims `ip` for `owner`; reports an overlap with an earlier owner.
    fn claim(
        &mut self,
        claims: &mut BTreeMap<Ipv4Addr, Claim>,
        ip: Ipv4Addr,
        owner: String,
        at: &[Seg],
    ) -> bool {
        if let Some(first) = claims.get(&ip) {
            let (first_owner, first_line) = (first.owner.clone(), first.line);
            self.error_hint(
                codes::ADDRESS,
                at,
                format!(
                    "{owner}: address {ip} is already used by {first_owner} (line {first_line})"
                ),
                "every pod, node, service and the world host needs its own address",
            );
            false
        } else {
            let line = self.line(at);
            claims.insert(ip, Claim { owner, line });
            true
        }
    }

    /// An interface name made from `name` must fit Linux's limit.
    fn ifname_fits(&mut self, ifname: &str, at: &[Seg], what: &str) -> bool {
        if ifname.len() <= MAX_IFNAME {
            return true;
        }
        let prefix = ifname.len() - ifname.strip_prefix("v-").map_or(ifname.len(), str::len);
        self.error_hint(
            codes::NAME,
            at,
            format!("{what}: the interface name {ifname:?} would be {} characters; Linux allows {MAX_IFNAME}", ifname.len()),
            format!("use a name of at most {} characters", MAX_IFNAME - prefix),
        );
        false
    }

    fn nodes(
        &mut self,
        spec: &'a YNode,
        underlay: Option<Ipv4Net>,
        claims: &mut BTreeMap<Ipv4Addr, Claim>,
    ) -> Vec<(NodeSpec, Vec<Seg>)> {
        let items = self.list(spec, "nodes", true);
        let mut out: Vec<(NodeSpec, Vec<Seg>)> = Vec::new();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let at = vec![Seg::from("spec"), Seg::from("nodes"), Seg::Index(i)];
            let Some(m) = self.mapping(
                item,
                &at,
                &format!("nodes[{i}]"),
                &["name", "ip", "podCIDR", "labels", "agent"],
            ) else {
                continue;
            };
            let name = self.name(m, &at, "name", &format!("nodes[{i}]"));
            let what = match &name {
                Some(n) => format!("node {n}"),
                None => format!("nodes[{i}]"),
            };
            let mut ok = name.is_some();
            if let Some(n) = &name {
                ok &= self.declare(
                    &mut names,
                    n.clone(),
                    &path(&at, "name"),
                    &what,
                    "node names must be unique",
                );
                ok &= self.ifname_fits(&names::underlay_port(n), &path(&at, "name"), &what);
            }
            let ip = self.ip(m, &at, "ip", &what);
            if let (Some(ip), Some(u)) = (ip, underlay) {
                if !u.contains(ip) {
                    self.error_hint(
                        codes::ADDRESS,
                        &path(&at, "ip"),
                        format!("{what}: ip {ip} is outside the underlay {u}"),
                        format!("pick an address inside {u}"),
                    );
                    ok = false;
                } else if ip == u.network() || ip == u.broadcast() {
                    self.error(
                        codes::ADDRESS,
                        &path(&at, "ip"),
                        format!("{what}: ip {ip} is the underlay's network or broadcast address"),
                    );
                    ok = false;
                }
            }
            if let Some(ip) = ip {
                ok &= self.claim(claims, ip, what.clone(), &path(&at, "ip"));
            }
            let pod_cidr = self.private_net(m, &at, "podCIDR", &what);
            if let Some(c) = pod_cidr {
                if let Some(u) = underlay.filter(|u| u.overlaps(&c)) {
                    self.error(
                        codes::ADDRESS,
                        &path(&at, "podCIDR"),
                        format!("{what}: podCIDR {c} overlaps the underlay {u}"),
                    );
                    ok = false;
                }
                for (other, other_at) in &out {
                    if other.pod_cidr.overlaps(&c) {
                        let line = self.line(&path(other_at, "podCIDR"));
                        self.error_hint(
                            codes::ADDRESS,
                            &path(&at, "podCIDR"),
                            format!(
                                "{what}: podCIDR {c} overlaps podCIDR {} of node {} (line {line})",
                                other.pod_cidr, other.name
                            ),
                            "every node needs its own pod prefix",
                        );
                        ok = false;
                    }
                }
            }
            let labels = self.labels(m, &at, "labels", &what);
            let agent = match field(m, "agent") {
                None => true,
                Some(YNode {
                    value: NodeValue::Bool(b),
                    ..
                }) => *b,
                Some(_) => {
                    self.error_hint(
                        codes::SHAPE,
                        &path(&at, "agent"),
                        format!("\"agent\" of {what} must be true or false"),
                        "write agent: false for a node without an agent (unquoted)",
                    );
                    ok = false;
                    true
                }
            };
            if let (true, Some(name), Some(ip), Some(pod_cidr)) = (ok, name, ip, pod_cidr) {
                out.push((
                    NodeSpec {
                        name,
                        ip,
                        pod_cidr,
                        ipv6: None,
                        labels,
                        agent,
                    },
                    at,
                ));
            }
        }
        out
    }

    fn world(
        &mut self,
        spec: &'a YNode,
        underlay: Option<Ipv4Net>,
        nodes: &[(NodeSpec, Vec<Seg>)],
        claims: &mut BTreeMap<Ipv4Addr, Claim>,
    ) -> Option<WorldSpec> {
        let at = vec![Seg::from("spec"), Seg::from("world")];
        let Some(node) = spec.get("world") else {
            self.error_hint(
                codes::SHAPE,
                &at,
                "the topology has no world",
                "add `world: {name: world, ip: 203.0.113.10}`",
            );
            return None;
        };
        let m = self.mapping(node, &at, "world", &["name", "ip", "addresses"])?;
        let name = self.name(m, &at, "name", "world");
        let mut ok = name.is_some();
        if let Some(n) = &name {
            if let Some((_, other_at)) = nodes.iter().find(|(nd, _)| &nd.name == n) {
                let line = self.line(other_at);
                self.error_hint(
                    codes::NAME,
                    &path(&at, "name"),
                    format!("world is named {n}, like the node on line {line}"),
                    "world and the nodes share the underlay; give world its own name",
                );
                ok = false;
            }
            ok &= self.ifname_fits(&names::underlay_port(n), &path(&at, "name"), "world");
        }
        let ip = self.ip(m, &at, "ip", "world");
        if let Some(ip) = ip {
            let here = path(&at, "ip");
            if !Ipv4Net::new(ip, 32).is_some_and(|h| inside(&DOCUMENTATION, &h)) {
                self.error_hint(
                    codes::ADDRESS,
                    &here,
                    format!("world: ip {ip} is not a documentation address"),
                    "use an address in 192.0.2.0/24, 198.51.100.0/24 or 203.0.113.0/24 (RFC 5737), which no real host has",
                );
                ok = false;
            }
            ok &= self.claim(claims, ip, "world".into(), &here);
            // Documentation ranges never overlap the private ones, so neither the underlay
            // nor a pod prefix can hold it; checked anyway in case the ranges ever change.
            if underlay.is_some_and(|u| u.contains(ip))
                || nodes.iter().any(|(n, _)| n.pod_cidr.contains(ip))
            {
                self.error(
                    codes::ADDRESS,
                    &here,
                    format!("world: ip {ip} lies inside the cluster's prefixes"),
                );
                ok = false;
            }
        }
        let addresses = self.world_addresses(m, &at, underlay, nodes, claims);
        match (ok, name, ip, addresses) {
            (true, Some(name), Some(ip), Some((addresses, addresses6))) => Some(WorldSpec {
                name,
                ip,
                addresses,
                addresses6,
                ipv6: Vec::new(),
            }),
            _ => None,
        }
    }

    /// `world.addresses`: unicast IPv4 addresses outside the underlay and the pod prefixes,
    /// each used once in the whole topology, and (in a dual-stack lab) IPv6 ones outside the
    /// cluster's IPv6 prefix.
    fn world_addresses(
        &mut self,
        m: &'a YNode,
        at: &[Seg],
        underlay: Option<Ipv4Net>,
        nodes: &[(NodeSpec, Vec<Seg>)],
        claims: &mut BTreeMap<Ipv4Addr, Claim>,
    ) -> Option<(Vec<Ipv4Addr>, Vec<Ipv6Addr>)> {
        let here = path(at, "addresses");
        let items = match field(m, "addresses") {
            None => return Some((Vec::new(), Vec::new())),
            Some(YNode {
                value: NodeValue::Seq(items),
                ..
            }) => items,
            Some(_) => {
                self.error(codes::SHAPE, &here, "world: addresses must be a list");
                return None;
            }
        };
        let mut out = Vec::new();
        let mut out6 = Vec::new();
        let mut ok = true;
        for (j, item) in items.iter().enumerate() {
            let pat = path(&here, j);
            let ip = match item.as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
                Some(IpAddr::V4(ip)) => ip,
                Some(IpAddr::V6(ip)) => {
                    match self.world_ip6(ip, &pat) {
                        Some(ip) => out6.push(ip),
                        None => ok = false,
                    }
                    continue;
                }
                None => {
                    self.error(
                        codes::ADDRESS,
                        &pat,
                        format!("world: addresses[{j}] is not an IP address"),
                    );
                    ok = false;
                    continue;
                }
            };
            let special = !is_unicast(ip);
            let inside = underlay.is_some_and(|u| u.contains(ip))
                || nodes.iter().any(|(n, _)| n.pod_cidr.contains(ip));
            if special || inside {
                self.error_hint(
                    codes::ADDRESS,
                    &pat,
                    if special {
                        format!("world: address {ip} is no host's address (loopback, link-local, multicast or broadcast)")
                    } else {
                        format!("world: address {ip} lies inside the cluster's prefixes")
                    },
                    "the world host stands for hosts outside the cluster: use an address outside the underlay and the pod prefixes",
                );
                ok = false;
                continue;
            }
            ok &= self.claim(claims, ip, "world".into(), &pat);
            out.push(ip);
        }
        ok.then_some((out, out6))
    }

    /// One of world's own IPv6 addresses: outside the cluster's IPv6 prefix.
    fn world_ip6(&mut self, ip: Ipv6Addr, at: &[Seg]) -> Option<Ipv6Addr> {
        let ip = self.explicit_ip6(ip, at, "world")?;
        let cluster = self.plan.flatten().map(|p| p.cluster)?;
        if within6(ip, cluster, u32::from(IPV6_PLAN_PREFIX)) {
            self.explicit6.pop();
            self.error_hint(
                codes::ADDRESS,
                at,
                format!("world: address {ip} lies inside the cluster's IPv6 prefix {cluster}/{IPV6_PLAN_PREFIX}"),
                "the world host stands for hosts outside the cluster: use an address outside spec.ipv6.cluster",
            );
            return None;
        }
        Some(ip)
    }

    fn pods(
        &mut self,
        spec: &'a YNode,
        nodes: &[(NodeSpec, Vec<Seg>)],
        claims: &mut BTreeMap<Ipv4Addr, Claim>,
    ) -> Vec<PodSpec> {
        let items = self.list(spec, "pods", false);
        let declared: BTreeSet<&str> = self.declared_nodes(spec);
        let mut out = Vec::new();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut ifnames: BTreeMap<(String, String), String> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let at = vec![Seg::from("spec"), Seg::from("pods"), Seg::Index(i)];
            let Some(m) = self.mapping(
                item,
                &at,
                &format!("pods[{i}]"),
                &[
                    "name",
                    "namespace",
                    "labels",
                    "ip",
                    "ipv6",
                    "node",
                    "ports",
                    "serviceAccount",
                ],
            ) else {
                continue;
            };
            let (name, namespace, what) = self.namespaced(m, &at, "pods", i, "pod");
            let mut ok = name.is_some() && namespace.is_some();
            let mut duplicate = false;
            if let (Some(ns), Some(n)) = (&namespace, &name) {
                duplicate = !self.declare(
                    &mut names,
                    format!("{ns}/{n}"),
                    &path(&at, "name"),
                    &what,
                    "pod names must be unique within their namespace",
                );
                ok &= !duplicate;
            }
            let node_name = self.string(m, &at, "node", &what, true);
            let node = match &node_name {
                Some(n) => match nodes.iter().find(|(nd, _)| &nd.name == n) {
                    Some((nd, _)) => Some(nd),
                    None => {
                        // A node that is declared but invalid was reported already.
                        if !declared.contains(n.as_str()) {
                            let known: Vec<&str> = declared.iter().copied().collect();
                            self.error_hint(
                                codes::REFERENCE,
                                &path(&at, "node"),
                                format!("{what}: node {n:?} is not declared"),
                                if known.is_empty() {
                                    "declare it under spec.nodes".into()
                                } else {
                                    format!("the nodes are: {}", known.join(", "))
                                },
                            );
                        }
                        ok = false;
                        None
                    }
                },
                None => {
                    ok = false;
                    None
                }
            };
            let ip = self.ip(m, &at, "ip", &what);
            if let (Some(ip), Some(nd)) = (ip, node) {
                let c = nd.pod_cidr;
                if !c.contains(ip) {
                    self.error_hint(
                        codes::ADDRESS,
                        &path(&at, "ip"),
                        format!("{what}: ip {ip} is outside podCIDR {c} of its node {}", nd.name),
                        format!("pick an address inside {c}, or move the pod to the node whose podCIDR holds {ip}"),
                    );
                    ok = false;
                } else if ip == c.network() || ip == c.broadcast() {
                    self.error(
                        codes::ADDRESS,
                        &path(&at, "ip"),
                        format!(
                            "{what}: ip {ip} is the network or broadcast address of podCIDR {c}"
                        ),
                    );
                    ok = false;
                }
            }
            if let Some(ip) = ip {
                ok &= self.claim(claims, ip, what.clone(), &path(&at, "ip"));
            } else {
                ok = false;
            }
            if let (false, Some(ns), Some(n), Some(nd)) = (duplicate, &namespace, &name, node) {
                let ifname = names::host_ifname(ns, n);
                let key = (nd.name.clone(), ifname.clone());
                if let Some(other) = ifnames.get(&key) {
                    self.error_hint(
                        codes::NAME,
                        &path(&at, "name"),
                        format!("{what}: its host interface name {ifname} collides with pod {other} on the same node"),
                        "rename one of the pods",
                    );
                    ok = false;
                } else {
                    ifnames.insert(key, format!("{ns}/{n}"));
                }
            }
            let ipv6 = self.pod_ip6(m, &at, &what);
            ok &= ipv6.is_some();
            let labels = self.labels(m, &at, "labels", &what);
            let ports = self.ports(m, &at, &what);
            let service_account = self.string(m, &at, "serviceAccount", &what, false);
            if let (true, Some(name), Some(namespace), Some(nd), Some(ip), Some(ports)) =
                (ok, name, namespace, node, ip, ports)
            {
                out.push(PodSpec {
                    name,
                    namespace,
                    labels,
                    ip,
                    ipv6: ipv6.flatten(),
                    node: nd.name.clone(),
                    ports,
                    service_account,
                });
            }
        }
        out
    }

    /// A pod's own IPv6 address (`ipv6`): `Some(None)` when absent, `None` (reported) when
    /// invalid.
    fn pod_ip6(&mut self, m: &'a YNode, at: &[Seg], what: &str) -> Option<Option<Ipv6Addr>> {
        let Some(text) = self.string(m, at, "ipv6", what, false) else {
            return Some(None);
        };
        let here = path(at, "ipv6");
        let Ok(ip) = text.parse::<Ipv6Addr>() else {
            self.error(
                codes::ADDRESS,
                &here,
                format!("{what}: ipv6 {text:?} is not an IPv6 address"),
            );
            return None;
        };
        self.explicit_ip6(ip, &here, what).map(Some)
    }

    /// Every node name written in the file, valid or not (so a pod on an invalid node is not
    /// also reported as being on an undeclared one).
    fn declared_nodes(&self, spec: &'a YNode) -> BTreeSet<&'a str> {
        match spec.get("nodes") {
            Some(YNode {
                value: NodeValue::Seq(items),
                ..
            }) => items
                .iter()
                .filter_map(|n| n.get("name")?.as_str())
                .collect(),
            _ => BTreeSet::new(),
        }
    }

    fn ports(&mut self, pod: &'a YNode, at: &[Seg], what: &str) -> Option<Vec<PortSpec>> {
        let here = path(at, "ports");
        let items = match field(pod, "ports") {
            None => return Some(Vec::new()),
            Some(YNode {
                value: NodeValue::Seq(items),
                ..
            }) => items,
            Some(_) => {
                self.error(codes::SHAPE, &here, format!("{what}: ports must be a list"));
                return None;
            }
        };
        let mut out = Vec::new();
        let mut ok = true;
        let mut seen_names: BTreeSet<String> = BTreeSet::new();
        let mut seen_ports: BTreeSet<(u16, Protocol)> = BTreeSet::new();
        for (j, item) in items.iter().enumerate() {
            let pat = path(&here, j);
            let Some(m) = self.mapping(
                item,
                &pat,
                &format!("{what}: ports[{j}]"),
                &["name", "port", "protocol"],
            ) else {
                ok = false;
                continue;
            };
            let name = self.string(m, &pat, "name", what, false);
            if let Some(n) = &name {
                if !is_port_name(n) {
                    self.error_hint(
                        codes::POD,
                        &path(&pat, "name"),
                        format!("{what}: port name {n:?} is not a valid port name"),
                        "an IANA service name: at most 15 lower-case letters, digits and '-', with at least one letter",
                    );
                    ok = false;
                } else if !seen_names.insert(n.clone()) {
                    self.error(
                        codes::POD,
                        &path(&pat, "name"),
                        format!("{what}: port name {n:?} is declared more than once"),
                    );
                    ok = false;
                }
            }
            let port = match m.get("port") {
                Some(YNode {
                    value: NodeValue::Number(n),
                    ..
                }) => {
                    match n
                        .as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p > 0)
                    {
                        Some(p) => Some(p),
                        None => {
                            self.error_hint(
                                codes::POD,
                                &path(&pat, "port"),
                                format!("{what}: port {n} is out of range"),
                                "use 1 to 65535",
                            );
                            None
                        }
                    }
                }
                Some(_) => {
                    self.error(
                        codes::POD,
                        &path(&pat, "port"),
                        format!("{what}: port must be a number"),
                    );
                    None
                }
                None => {
                    self.error(
                        codes::SHAPE,
                        &path(&pat, "port"),
                        format!("{what}: ports[{j}] has no \"port\""),
                    );
                    None
                }
            };
            let protocol = match self.string(m, &pat, "protocol", what, false).as_deref() {
                None => Some(Protocol::TCP),
                Some("TCP") => Some(Protocol::TCP),
                Some("UDP") => Some(Protocol::UDP),
                Some("SCTP") => Some(Protocol::SCTP),
                Some(other) => {
                    self.error(
                        codes::POD,
                        &path(&pat, "protocol"),
                        format!("{what}: protocol {other:?} is not TCP, UDP or SCTP"),
                    );
                    None
                }
            };
            match (port, protocol) {
                (Some(port), Some(protocol)) => {
                    if !seen_ports.insert((port, protocol)) {
                        self.error(
                            codes::POD,
                            &path(&pat, "port"),
                            format!("{what}: port {port}/{protocol} is declared more than once"),
                        );
                        ok = false;
                    }
                    out.push(PortSpec {
                        name,
                        port,
                        protocol,
                    });
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// The `name` and `namespace` of entry `i` of list `list` (a `kind`), and how findings
    /// name it (`pod shop/web`, or `pods[3]` when either is missing).
    fn namespaced(
        &mut self,
        m: &'a YNode,
        at: &[Seg],
        list: &str,
        i: usize,
        kind: &str,
    ) -> (Option<String>, Option<String>, String) {
        let name = self.name(m, at, "name", &format!("{list}[{i}]"));
        let namespace = self.name(m, at, "namespace", &format!("{list}[{i}]"));
        let what = match (&namespace, &name) {
            (Some(ns), Some(n)) => format!("{kind} {ns}/{n}"),
            _ => format!("{list}[{i}]"),
        };
        (name, namespace, what)
    }

    /// `spec.services`: ClusterIP services, each with its own cluster IP outside the
    /// cluster's prefixes and every other address of the lab.
    fn services(
        &mut self,
        spec: &'a YNode,
        underlay: Option<Ipv4Net>,
        nodes: &[(NodeSpec, Vec<Seg>)],
        claims: &mut BTreeMap<Ipv4Addr, Claim>,
    ) -> Vec<ServiceSpec> {
        let items = self.list(spec, "services", false);
        let mut out = Vec::new();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let at = vec![Seg::from("spec"), Seg::from("services"), Seg::Index(i)];
            let Some(m) = self.mapping(
                item,
                &at,
                &format!("services[{i}]"),
                &[
                    "name",
                    "namespace",
                    "labels",
                    "ip",
                    "ports",
                    "selector",
                    "backends",
                ],
            ) else {
                continue;
            };
            let (name, namespace, what) = self.namespaced(m, &at, "services", i, "service");
            let mut ok = name.is_some() && namespace.is_some();
            if let (Some(ns), Some(n)) = (&namespace, &name) {
                ok &= self.declare(
                    &mut names,
                    format!("{ns}/{n}"),
                    &path(&at, "name"),
                    &what,
                    "service names must be unique within their namespace",
                );
            }
            let labels = self.labels(m, &at, "labels", &what);
            let ip = self.ip(m, &at, "ip", &what);
            if let Some(ip) = ip {
                ok &= self.cluster_ip(ip, &path(&at, "ip"), &what, underlay, nodes, claims);
            } else {
                ok = false;
            }
            let selector = match field(m, "selector") {
                None => None,
                Some(node) => {
                    let here = path(&at, "selector");
                    match node.as_map() {
                        None => {
                            self.error(
                                codes::SHAPE,
                                &here,
                                format!("selector of {what} must be a mapping of labels"),
                            );
                            ok = false;
                            None
                        }
                        Some([]) => {
                            self.error_hint(
                                codes::SERVICE,
                                &here,
                                format!("{what}: the selector is empty"),
                                "Kubernetes treats an empty selector as none: give it labels, or drop it and list backends",
                            );
                            ok = false;
                            None
                        }
                        Some(_) => Some(self.labels(m, &at, "selector", &what)),
                    }
                }
            };
            let has_selector = field(m, "selector").is_some();
            let backends = self.backends(m, &at, &what);
            if has_selector && field(m, "backends").is_some() {
                self.error_hint(
                    codes::SERVICE,
                    &path(&at, "backends"),
                    format!("{what} has both a selector and backends"),
                    "a service with a selector gets its backends from the pods it selects; drop one",
                );
                ok = false;
            }
            let ports = self.service_ports(m, &at, &what, has_selector);
            if let (true, Some(name), Some(namespace), Some(ip), Some(ports), Some(backends)) =
                (ok, name, namespace, ip, ports, backends)
            {
                out.push(ServiceSpec {
                    name,
                    namespace,
                    labels,
                    ip,
                    ipv6: None,
                    ports,
                    selector,
                    backends,
                    backends6: Vec::new(),
                });
            }
        }
        out
    }

    /// Checks a service's cluster IP: a unicast address outside the underlay and the pod
    /// prefixes, used by nothing else in the lab (claimed for `what`).
    fn cluster_ip(
        &mut self,
        ip: Ipv4Addr,
        at: &[Seg],
        what: &str,
        underlay: Option<Ipv4Net>,
        nodes: &[(NodeSpec, Vec<Seg>)],
        claims: &mut BTreeMap<Ipv4Addr, Claim>,
    ) -> bool {
        let hint = "a cluster IP is virtual: pick an address outside the underlay and the pod prefixes, such as one in 10.96.0.0/12";
        let mut ok = true;
        if !is_unicast(ip) {
            self.error_hint(
                codes::ADDRESS,
                at,
                format!("{what}: ip {ip} is no host's address (loopback, link-local, multicast or broadcast)"),
                hint,
            );
            ok = false;
        } else if let Some(u) = underlay.filter(|u| u.contains(ip)) {
            self.error_hint(
                codes::ADDRESS,
                at,
                format!("{what}: ip {ip} lies inside the underlay {u}"),
                hint,
            );
            ok = false;
        } else if let Some((n, _)) = nodes.iter().find(|(n, _)| n.pod_cidr.contains(ip)) {
            self.error_hint(
                codes::ADDRESS,
                at,
                format!(
                    "{what}: ip {ip} lies inside podCIDR {} of node {}",
                    n.pod_cidr, n.name
                ),
                hint,
            );
            ok = false;
        }
        ok & self.claim(claims, ip, what.to_owned(), at)
    }

    /// A service's `backends`: unicast IPv4 addresses, each listed once. `Some(empty)` when
    /// absent, `None` (reported) when any is wrong.
    fn backends(&mut self, m: &'a YNode, at: &[Seg], what: &str) -> Option<Vec<Ipv4Addr>> {
        let here = path(at, "backends");
        let items = match field(m, "backends") {
            None => return Some(Vec::new()),
            Some(YNode {
                value: NodeValue::Seq(items),
                ..
            }) => items,
            Some(_) => {
                self.error_hint(
                    codes::SHAPE,
                    &here,
                    format!("{what}: backends must be a list"),
                    "list IPv4 addresses: backends: [10.200.1.20, 203.0.113.10]",
                );
                return None;
            }
        };
        let mut out: Vec<Ipv4Addr> = Vec::new();
        let mut seen: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
        let mut ok = true;
        for (j, item) in items.iter().enumerate() {
            let pat = path(&here, j);
            let Some(ip) = item.as_str().and_then(|s| s.parse::<Ipv4Addr>().ok()) else {
                self.error(
                    codes::ADDRESS,
                    &pat,
                    format!("{what}: backends[{j}] is not an IPv4 address"),
                );
                ok = false;
                continue;
            };
            if !is_unicast(ip) {
                self.error(
                    codes::ADDRESS,
                    &pat,
                    format!("{what}: backend {ip} is no host's address (loopback, link-local, multicast or broadcast)"),
                );
                ok = false;
                continue;
            }
            if let Some(first) = seen.get(&ip) {
                self.error_hint(
                    codes::SERVICE,
                    &pat,
                    format!(
                        "{what}: backend {ip} is listed more than once (first on line {first})"
                    ),
                    "list each backend once",
                );
                ok = false;
                continue;
            }
            seen.insert(ip, self.line(&pat));
            out.push(ip);
        }
        ok.then_some(out)
    }

    /// A service's `ports`: at least one; named when more than one, names and
    /// `port/protocol` unique; TCP or UDP. A named `targetPort` needs `has_selector`.
    fn service_ports(
        &mut self,
        svc: &'a YNode,
        at: &[Seg],
        what: &str,
        has_selector: bool,
    ) -> Option<Vec<ServicePortSpec>> {
        let here = path(at, "ports");
        let items = match field(svc, "ports") {
            None => {
                self.error_hint(
                    codes::SHAPE,
                    &here,
                    format!("{what} has no \"ports\""),
                    "add `ports:` with at least one port, such as `- {port: 80}`",
                );
                return None;
            }
            Some(YNode {
                value: NodeValue::Seq(items),
                ..
            }) => items,
            Some(_) => {
                self.error(codes::SHAPE, &here, format!("{what}: ports must be a list"));
                return None;
            }
        };
        if items.is_empty() {
            self.error_hint(
                codes::SERVICE,
                &here,
                format!("{what} has no ports"),
                "a service needs at least one port, such as `- {port: 80}`",
            );
            return None;
        }
        let several = items.len() > 1;
        let mut out = Vec::new();
        let mut ok = true;
        let mut seen_names: BTreeMap<String, usize> = BTreeMap::new();
        let mut seen_ports: BTreeMap<(u16, Protocol), usize> = BTreeMap::new();
        for (j, item) in items.iter().enumerate() {
            let pat = path(&here, j);
            let Some(m) = self.mapping(
                item,
                &pat,
                &format!("{what}: ports[{j}]"),
                &["name", "port", "targetPort", "protocol"],
            ) else {
                ok = false;
                continue;
            };
            let name = self.string(m, &pat, "name", what, false);
            match &name {
                Some(n) if !is_dns_label(n) => {
                    self.error_hint(
                        codes::NAME,
                        &path(&pat, "name"),
                        format!("{what}: port name {n:?} is not a valid name"),
                        "use lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters (a DNS-1123 label)",
                    );
                    ok = false;
                }
                Some(n) => {
                    if let Some(first) = seen_names.get(n) {
                        self.error_hint(
                            codes::NAME,
                            &path(&pat, "name"),
                            format!("{what}: port name {n:?} is declared more than once (first on line {first})"),
                            "port names must be unique within their service",
                        );
                        ok = false;
                    } else {
                        seen_names.insert(n.clone(), self.line(&path(&pat, "name")));
                    }
                }
                None if several && field(m, "name").is_none() => {
                    self.error_hint(
                        codes::SERVICE,
                        &path(&pat, "name"),
                        format!("{what}: ports[{j}] has no name; a service with more than one port must name every port, as Kubernetes requires"),
                        "add `name:` to each of its ports",
                    );
                    ok = false;
                }
                None => {}
            }
            let port = self.port_number(m, &pat, "port", what, true);
            let target_port = match field(m, "targetPort") {
                None => port.map(TargetPort::Number),
                Some(YNode {
                    value: NodeValue::Number(_),
                    ..
                }) => self
                    .port_number(m, &pat, "targetPort", what, false)
                    .map(TargetPort::Number),
                Some(YNode {
                    value: NodeValue::String(s),
                    ..
                }) => {
                    let tp = path(&pat, "targetPort");
                    if !is_port_name(s) {
                        self.error_hint(
                            codes::SERVICE,
                            &tp,
                            format!("{what}: targetPort {s:?} is neither a port number nor a valid port name"),
                            if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
                                "write a port number without quotes".to_owned()
                            } else {
                                "a port name is an IANA service name: at most 15 lower-case letters, digits and '-', with at least one letter".to_owned()
                            },
                        );
                        None
                    } else if !has_selector {
                        self.error_hint(
                            codes::SERVICE,
                            &tp,
                            format!("{what}: targetPort {s:?} is a port name, but the service has no selector"),
                            "a named port is looked up on the selected pods: give the service a selector, or use a port number",
                        );
                        None
                    } else {
                        Some(TargetPort::Name(s.clone()))
                    }
                }
                Some(_) => {
                    self.error_hint(
                        codes::SHAPE,
                        &path(&pat, "targetPort"),
                        format!("{what}: targetPort must be a port number or a port name"),
                        "write a number such as 8080, or the name of a container port such as http",
                    );
                    None
                }
            };
            let protocol = match self.string(m, &pat, "protocol", what, false).as_deref() {
                None | Some("TCP") => Some(Protocol::TCP),
                Some("UDP") => Some(Protocol::UDP),
                Some("SCTP") => {
                    self.error_hint(
                        codes::SERVICE,
                        &path(&pat, "protocol"),
                        format!("{what}: protocol SCTP is not supported: the lab's service translation handles TCP and UDP only"),
                        "use TCP or UDP",
                    );
                    None
                }
                Some(other) => {
                    self.error_hint(
                        codes::SERVICE,
                        &path(&pat, "protocol"),
                        format!("{what}: protocol {other:?} is not TCP or UDP"),
                        "use TCP (the default) or UDP",
                    );
                    None
                }
            };
            match (port, target_port, protocol) {
                (Some(port), Some(target_port), Some(protocol)) => {
                    if let Some(first) = seen_ports.get(&(port, protocol)) {
                        self.error_hint(
                            codes::SERVICE,
                            &path(&pat, "port"),
                            format!("{what}: port {port}/{protocol} is declared more than once (first on line {first})"),
                            "each port and protocol may appear once in a service",
                        );
                        ok = false;
                    } else {
                        seen_ports.insert((port, protocol), self.line(&path(&pat, "port")));
                    }
                    out.push(ServicePortSpec {
                        name,
                        port,
                        target_port,
                        protocol,
                    });
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A port number (1 to 65535) under `key` of a service port.
    fn port_number(
        &mut self,
        map: &'a YNode,
        at: &[Seg],
        key: &str,
        what: &str,
        required: bool,
    ) -> Option<u16> {
        let here = path(at, key);
        match field(map, key) {
            Some(YNode {
                value: NodeValue::Number(n),
                ..
            }) => {
                let p = n
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0);
                if p.is_none() {
                    self.error_hint(
                        codes::SERVICE,
                        &here,
                        format!("{what}: {key} {n} is out of range"),
                        "use 1 to 65535",
                    );
                }
                p
            }
            Some(_) => {
                self.error(
                    codes::SHAPE,
                    &here,
                    format!("{what}: {key} must be a number"),
                );
                None
            }
            None => {
                if required {
                    self.error_hint(
                        codes::SHAPE,
                        &here,
                        format!("{what}: a port has no \"{key}\""),
                        format!("add `{key}:`"),
                    );
                }
                None
            }
        }
    }
}

fn scalar_text(n: &YNode) -> String {
    match &n.value {
        NodeValue::Bool(b) => b.to_string(),
        NodeValue::Number(x) => x.to_string(),
        _ => "...".into(),
    }
}

/// Whether `ip` can be a host's address: not loopback, link-local, multicast, broadcast or
/// unspecified.
fn is_unicast(ip: Ipv4Addr) -> bool {
    !(ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_link_local())
}

/// Whether `s` is a container port name: an IANA service name (at most 15 lower-case
/// letters, digits and '-', with at least one letter, no '-' at either end or twice in a row).
fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && s.bytes().any(|c| c.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn prefixes() {
        let n: Ipv4Net = "10.200.1.0/24".parse().unwrap();
        assert!(n.contains(Ipv4Addr::new(10, 200, 1, 7)));
        assert!(!n.contains(Ipv4Addr::new(10, 200, 2, 7)));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 200, 1, 255));
        assert!(n.overlaps(&"10.0.0.0/8".parse().unwrap()));
        assert!(!n.overlaps(&"10.200.2.0/24".parse().unwrap()));
        assert!(
            "10.200.1.5/24"
                .parse::<Ipv4Net>()
                .unwrap_err()
                .contains("10.200.1.0/24")
        );
        assert!("10.200.1.0/33".parse::<Ipv4Net>().is_err());
        assert!("10.200.1.0".parse::<Ipv4Net>().is_err());
        assert_eq!(
            "0.0.0.0/0".parse::<Ipv4Net>().unwrap().broadcast(),
            Ipv4Addr::BROADCAST
        );
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("node-1"));
        assert!(!is_dns_label("Node"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label("a.b"));
        assert!(!is_dns_label(""));
    }

    const LAB: &str = "apiVersion: ward.dev/v1alpha1
kind: LabTopology
metadata: {name: six}
spec:
  underlay: 172.30.0.0/24
  nodes:
    - {name: node-1, ip: 172.30.0.11, podCIDR: 10.200.1.0/24}
  world: {name: world, ip: 203.0.113.10, addresses: [198.51.100.7]}
  pods:
    - {name: web, namespace: shop, ip: 10.200.1.20, node: node-1}
";

    /// `agent: false` marks a node without an agent: the managed view leaves it and its pods
    /// out; anything but a boolean is refused at its line.
    #[test]
    fn nodes_without_an_agent_are_left_out_of_the_managed_view() {
        let two = LAB.replace(
            "  world:",
            "    - {name: node-2, ip: 172.30.0.12, podCIDR: 10.200.2.0/24, agent: false}\n  world:",
        ) + "    - {name: db, namespace: shop, ip: 10.200.2.20, node: node-2}\n";
        let t = Topology::parse("lab.yaml", two.as_bytes()).unwrap();
        assert!(t.nodes[0].agent && !t.nodes[1].agent);
        let m = t.managed();
        assert_eq!(m.nodes.len(), 1);
        assert_eq!(m.pods.len(), 1);
        assert_eq!(m.pods[0].name, "web");
        let bad = two.replace("agent: false", "agent: \"no\"");
        let d = Topology::parse("lab.yaml", bad.as_bytes()).unwrap_err();
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].code, d[0].line), (codes::SHAPE, 8));
        assert!(
            d[0].message.contains("must be true or false"),
            "{}",
            d[0].message
        );
    }

    /// `ipv6: {}` makes the lab dual stack with the default prefixes: every address has its
    /// IPv4 one embedded in the last 32 bits.
    #[test]
    fn ipv6_derives_every_address_from_its_ipv4_one() {
        let t = Topology::parse("lab.yaml", format!("{LAB}  ipv6: {{}}\n").as_bytes()).unwrap();
        let ip = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        assert_eq!(t.ipv6, Some(Ipv6Plan::default()));
        assert_eq!(t.nodes[0].ipv6, Some(ip("fd00::ac1e:b")));
        assert_eq!(t.pods[0].ipv6, Some(ip("fd00::10.200.1.20")));
        assert_eq!(
            t.world.ipv6,
            vec![ip("2001:db8::203.0.113.10"), ip("2001:db8::198.51.100.7")]
        );
        let plan = t.ipv6.unwrap();
        assert_eq!(
            plan.cluster_net(t.nodes[0].pod_cidr),
            (ip("fd00::10.200.1.0"), 120)
        );
        // Without it: IPv4 only.
        let v4 = Topology::parse("lab.yaml", LAB.as_bytes()).unwrap();
        assert!(v4.ipv6.is_none() && v4.pods[0].ipv6.is_none() && v4.world.ipv6.is_empty());
        // Chosen prefixes.
        let custom =
            format!("{LAB}  ipv6: {{cluster: \"fd12:3456::/96\", world: \"2001:db8:77::/96\"}}\n");
        let t = Topology::parse("lab.yaml", custom.as_bytes()).unwrap();
        assert_eq!(t.pods[0].ipv6, Some(ip("fd12:3456::10.200.1.20")));
        assert_eq!(t.world.ipv6[0], ip("2001:db8:77::203.0.113.10"));
    }

    /// Prefixes that are not /96, have host bits, or lie outside their range are findings.
    #[test]
    fn ipv6_prefixes_are_checked() {
        for (plan, wanted) in [
            ("{cluster: \"fd00::/64\"}", "is not an IPv6 /96 prefix"),
            ("{cluster: \"fd00::1/96\"}", "is not an IPv6 /96 prefix"),
            (
                "{cluster: \"2001:db8::/96\"}",
                "ipv6.cluster: 2001:db8::/96 is outside its range",
            ),
            (
                "{world: \"fd00::/96\"}",
                "ipv6.world: fd00::/96 is outside its range",
            ),
            ("{site: \"fd00::/96\"}", "unknown field \"site\" in ipv6"),
        ] {
            let text = format!("{LAB}  ipv6: {plan}\n");
            let diags = Topology::parse("lab.yaml", text.as_bytes()).unwrap_err();
            assert!(
                diags
                    .iter()
                    .any(|d| d.message.contains(wanted) && d.line == 11),
                "{plan}: {diags:?}"
            );
        }
    }

    /// In a dual-stack lab a pod may have its own IPv6 address and world further IPv6 ones
    /// (as `ward test --datapath` keeps the tests' addresses); the lab routes a pod's own
    /// address outside its node's prefix as a `/128`.
    #[test]
    fn pods_and_world_may_have_their_own_ipv6_addresses() {
        let text = LAB
            .replace("node: node-1}", "node: node-1, ipv6: \"fd12::5\"}")
            .replace("[198.51.100.7]", "[198.51.100.7, \"2001:db8:1::7\"]")
            + "    - {name: db, namespace: shop, ip: 10.200.1.21, node: node-1}\n  ipv6: {}\n";
        let t = Topology::parse("lab.yaml", text.as_bytes()).unwrap();
        let ip = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        assert_eq!(t.pods[0].ipv6, Some(ip("fd12::5")));
        assert_eq!(t.pods[1].ipv6, Some(ip("fd00::10.200.1.21")), "derived");
        assert_eq!(t.world.addresses6, [ip("2001:db8:1::7")]);
        assert_eq!(
            t.world.ipv6,
            [
                ip("2001:db8::203.0.113.10"),
                ip("2001:db8::198.51.100.7"),
                ip("2001:db8:1::7")
            ]
        );
        assert_eq!(
            t.pod_routes6(&t.nodes[0]),
            [(ip("fd00::10.200.1.0"), 120), (ip("fd12::5"), 128)]
        );
        let v4 = Topology::parse("lab.yaml", LAB.as_bytes()).unwrap();
        assert!(v4.pod_routes6(&v4.nodes[0]).is_empty());
    }

    #[test]
    fn own_ipv6_addresses_are_checked() {
        let dual = |pod: &str, world: &str| {
            LAB.replace("node: node-1}", &format!("node: node-1{pod}}}"))
                .replace("[198.51.100.7]", &format!("[198.51.100.7{world}]"))
                + "  ipv6: {}\n"
        };
        // With an invalid spec.ipv6 only that is reported, not each address as well.
        let bad_plan = LAB.replace("node: node-1}", "node: node-1, ipv6: \"fd12::5\"}")
            + "  ipv6: {cluster: \"fd00::/64\"}\n";
        let diags = Topology::parse("lab.yaml", bad_plan.as_bytes()).unwrap_err();
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(
            diags[0].message.contains("not an IPv6 /96 prefix"),
            "{diags:?}"
        );
        for (text, line, wanted) in [
            (
                LAB.replace("node: node-1}", "node: node-1, ipv6: \"fd12::5\"}"),
                10,
                "pod shop/web: fd12::5 is IPv6 and the lab is IPv4 only",
            ),
            (
                dual(", ipv6: \"fd12::x\"", ""),
                10,
                "ipv6 \"fd12::x\" is not an IPv6 address",
            ),
            (
                dual(", ipv6: \"fe80::1\"", ""),
                10,
                "fe80::1 is no host's address",
            ),
            (
                dual("", ", \"fd00::9\""),
                8,
                "world: address fd00::9 lies inside the cluster's IPv6 prefix fd00::/96",
            ),
            (
                dual(", ipv6: \"2001:db8::7\"", ", \"2001:db8::7\""),
                10,
                "pod shop/web: address 2001:db8::7 is also that of world",
            ),
            (
                dual(", ipv6: \"fd00::ac1e:b\"", ""),
                10,
                "address fd00::ac1e:b is also that of node node-1",
            ),
            (
                dual("", ", \"2001:db8::cb00:710a\""),
                8,
                "world: address 2001:db8::cb00:710a is given twice",
            ),
        ] {
            let diags = Topology::parse("lab.yaml", text.as_bytes()).unwrap_err();
            assert!(
                diags
                    .iter()
                    .any(|d| d.message.contains(wanted) && d.line == line),
                "{wanted}: {diags:?}"
            );
        }
    }

    /// Two services appended to [`LAB`]: one selecting pods with a named targetPort, one
    /// without a selector listing a pod's, a node's, a world and an outside address.
    const SERVICES: &str = "  services:
    - name: web
      namespace: shop
      labels: {tier: front}
      ip: 10.96.0.10
      selector: {app: web}
      ports:
        - {name: http, port: 80, targetPort: web-http}
        - {name: dns, port: 53, targetPort: 5353, protocol: UDP}
    - name: ext
      namespace: shop
      ip: 10.96.0.11
      backends: [10.200.1.20, 172.30.0.11, 198.51.100.7, 192.0.2.99]
      ports:
        - {port: 443}
";

    #[test]
    fn services_parse() {
        let t = Topology::parse("lab.yaml", format!("{LAB}{SERVICES}").as_bytes()).unwrap();
        let v4 = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let map = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert_eq!(
            t.services,
            vec![
                ServiceSpec {
                    name: "web".into(),
                    namespace: "shop".into(),
                    labels: map("tier", "front"),
                    ip: v4("10.96.0.10"),
                    ipv6: None,
                    ports: vec![
                        ServicePortSpec {
                            name: Some("http".into()),
                            port: 80,
                            target_port: TargetPort::Name("web-http".into()),
                            protocol: Protocol::TCP,
                        },
                        ServicePortSpec {
                            name: Some("dns".into()),
                            port: 53,
                            target_port: TargetPort::Number(5353),
                            protocol: Protocol::UDP,
                        },
                    ],
                    selector: Some(map("app", "web")),
                    backends: Vec::new(),
                    backends6: Vec::new(),
                },
                ServiceSpec {
                    name: "ext".into(),
                    namespace: "shop".into(),
                    labels: BTreeMap::new(),
                    ip: v4("10.96.0.11"),
                    ipv6: None,
                    // The defaults: targetPort is the port, the protocol TCP.
                    ports: vec![ServicePortSpec {
                        name: None,
                        port: 443,
                        target_port: TargetPort::Number(443),
                        protocol: Protocol::TCP,
                    }],
                    selector: None,
                    backends: ["10.200.1.20", "172.30.0.11", "198.51.100.7", "192.0.2.99"]
                        .map(v4)
                        .to_vec(),
                    backends6: Vec::new(),
                },
            ]
        );
        // Without services: none.
        assert!(
            Topology::parse("lab.yaml", LAB.as_bytes())
                .unwrap()
                .services
                .is_empty()
        );
    }

    /// In a dual-stack lab a cluster IP is a cluster address; a backend has the IPv6 address
    /// of the pod, node or world address it is, and an unknown one has none.
    #[test]
    fn services_ipv6() {
        let text = format!("{LAB}{SERVICES}  ipv6: {{}}\n");
        let t = Topology::parse("lab.yaml", text.as_bytes()).unwrap();
        let ip = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        assert_eq!(t.services[0].ipv6, Some(ip("fd00::10.96.0.10")));
        assert!(t.services[0].backends6.is_empty());
        assert_eq!(t.services[1].ipv6, Some(ip("fd00::10.96.0.11")));
        assert_eq!(
            t.services[1].backends6,
            vec![
                ip("fd00::10.200.1.20"),
                ip("fd00::172.30.0.11"),
                ip("2001:db8::198.51.100.7"),
            ]
        );
        // IPv4 only: no IPv6 addresses.
        let t = Topology::parse("lab.yaml", format!("{LAB}{SERVICES}").as_bytes()).unwrap();
        assert!(
            t.services
                .iter()
                .all(|s| s.ipv6.is_none() && s.backends6.is_empty())
        );
    }

    /// Every wrong service is reported, each with its code and line.
    #[test]
    fn services_are_checked() {
        let bad = "  services:
    - {name: a, namespace: shop, ip: 10.200.1.30, ports: [{port: 80}]}
    - {name: b, namespace: shop, ip: 10.96.0.2, ports: [{port: 80}]}
    - {name: b, namespace: shop, ip: 10.96.0.3, ports: [{port: 80}]}
    - name: c
      namespace: shop
      ip: 10.96.0.4
      selector: {app: web}
      ports:
        - {port: 80}
        - {port: 81}
    - {name: d, namespace: shop, ip: 10.96.0.5, selector: {app: web}, ports: [{port: 80, protocol: SCTP}]}
    - {name: e, namespace: shop, ip: 10.96.0.6, selector: {app: web}, backends: [10.200.1.20], ports: [{port: 80}]}
    - {name: f, namespace: shop, ip: 10.96.0.7, backends: [10.200.1.20], ports: [{port: 80, targetPort: http}]}
    - {name: g, namespace: shop, ip: 10.96.0.8, selector: {app: web}, ports: [{port: 80, targetPort: HTTP}]}
    - {name: h, namespace: shop, ip: 198.51.100.7, ports: [{port: 80}]}
    - {name: i, namespace: shop, ip: 10.96.0.9, backends: [192.0.2.1, 192.0.2.1], ports: [{port: 80, targetPort: \"8080\"}]}
";
        let diags = Topology::parse("lab.yaml", format!("{LAB}{bad}").as_bytes()).unwrap_err();
        let got: Vec<(&str, usize)> = diags.iter().map(|d| (d.code, d.line)).collect();
        let wanted = [
            (
                codes::ADDRESS,
                12,
                "lies inside podCIDR 10.200.1.0/24 of node node-1",
            ),
            (
                codes::NAME,
                14,
                "service shop/b is declared more than once (first on line 13)",
            ),
            (
                codes::SERVICE,
                20,
                "ports[0] has no name; a service with more than one port must name every port",
            ),
            (codes::SERVICE, 21, "ports[1] has no name"),
            (codes::SERVICE, 22, "handles TCP and UDP only"),
            (codes::SERVICE, 23, "has both a selector and backends"),
            (
                codes::SERVICE,
                24,
                "targetPort \"http\" is a port name, but the service has no selector",
            ),
            (
                codes::SERVICE,
                25,
                "targetPort \"HTTP\" is neither a port number nor a valid port name",
            ),
            (
                codes::ADDRESS,
                26,
                "address 198.51.100.7 is already used by world (line 8)",
            ),
            (
                codes::SERVICE,
                27,
                "backend 192.0.2.1 is listed more than once",
            ),
            (codes::SERVICE, 27, "targetPort \"8080\" is neither"),
        ];
        assert_eq!(
            got,
            wanted.iter().map(|(c, l, _)| (*c, *l)).collect::<Vec<_>>(),
            "{diags:#?}"
        );
        for (d, (_, _, m)) in diags.iter().zip(wanted) {
            assert!(d.message.contains(m), "{m:?} in {d:?}");
            assert_eq!(d.file, "lab.yaml");
        }
        // The findings that need one carry a hint.
        let hint = |i: usize| diags[i].hint.as_deref().unwrap_or_default();
        assert!(hint(0).contains("outside the underlay and the pod prefixes"));
        assert!(hint(5).contains("gets its backends from the pods it selects; drop one"));
        assert!(hint(6).contains("a named port is looked up on the selected pods"));
    }

    /// `services` must be a list of mappings with known fields and at least one port.
    #[test]
    fn services_shape() {
        for (text, code, wanted) in [
            (
                "  services: {web: 1}\n",
                codes::SHAPE,
                "services must be a list",
            ),
            (
                "  services:\n    - {name: a, namespace: shop, ip: 10.96.0.1, ports: [], port: 1}\n",
                codes::SHAPE,
                "unknown field \"port\" in services[0]",
            ),
            (
                "  services:\n    - {name: a, namespace: shop, ip: 10.96.0.1, ports: []}\n",
                codes::SERVICE,
                "service shop/a has no ports",
            ),
            (
                "  services:\n    - {name: a, namespace: shop, ip: 10.96.0.1}\n",
                codes::SHAPE,
                "service shop/a has no \"ports\"",
            ),
            (
                "  services:\n    - {name: a, namespace: shop, ports: [{port: 80}]}\n",
                codes::SHAPE,
                "has no \"ip\"",
            ),
            (
                "  services:\n    - {name: a, namespace: shop, ip: 172.30.0.9, ports: [{port: 80}]}\n",
                codes::ADDRESS,
                "lies inside the underlay 172.30.0.0/24",
            ),
            (
                "  services:\n    - {name: a, namespace: shop, ip: 10.96.0.1, ports: [{port: 0}]}\n",
                codes::SERVICE,
                "port 0 is out of range",
            ),
            (
                "  services:\n    - {name: a, namespace: shop, ip: 10.96.0.1, selector: {app: a}, ports: [{name: x, port: 53}, {name: y, port: 53, protocol: UDP}, {name: x, port: 53, protocol: UDP}]}\n",
                codes::NAME,
                "port name \"x\" is declared more than once",
            ),
            (
                "  services:\n    - {name: a, namespace: shop, ip: 10.96.0.1, ports: [{name: x, port: 53}, {name: y, port: 53}]}\n",
                codes::SERVICE,
                "port 53/TCP is declared more than once",
            ),
        ] {
            let diags = Topology::parse("lab.yaml", format!("{LAB}{text}").as_bytes()).unwrap_err();
            assert!(
                diags
                    .iter()
                    .any(|d| d.code == code && d.message.contains(wanted) && d.line >= 11),
                "{text}: {diags:?}"
            );
        }
    }
}
