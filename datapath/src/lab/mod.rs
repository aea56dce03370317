//! The network-namespace lab: nodes, pods and a world host built from a topology file.
//!
//! [`Topology::load`] reads a topology file (format in [`ward_schema::topology`]) and checks it, reporting
//! every problem as a [`ward_schema::Diagnostic`] with file, line and column;
//! `ward_engine::Cluster::from_topology` gives the engine the same nodes and pods. [`Lab::up`] builds it with
//! `ip` commands run through [`crate::sys`], [`Lab::down`] removes it (also after a crash), [`Lab::status`] lists labs.
//!
//! # Layout
//! ```text
//!                        netns w-<lab>.underlay: bridge br0
//!            v-node-1 ─────────┬──────── v-node-2 ─────────┬──────── v-world
//!               │              │            │              │            │
//!   netns w-<lab>.node.node-1  │  netns w-<lab>.node.node-2│   netns w-<lab>.world
//!     eth0 172.30.0.11/24      │    eth0 172.30.0.12/24    │     eth0 203.0.113.10/32
//!     lo   169.254.1.1/32      │    lo   169.254.1.1/32    │
//!     lxc… ──┐                        lxc… ──┐
//!   netns w-<lab>.pod.shop.frontend   netns w-<lab>.pod.shop.backend
//!     eth0 10.200.1.10/32               eth0 10.200.2.20/32
//! ```
//! Nothing is created in the host's own namespace except the `/run/netns/*` entries of the
//! lab's namespaces, and no lab namespace has a link to the host: no packet can leave.
//!
//! # Addressing and routing
//! - **Pods**: the pod address as a `/32` on `eth0`; `169.254.1.1 dev eth0 scope link` and
//!   `default via 169.254.1.1` ([`names::POD_GATEWAY`], link-local, the same on every node,
//!   so no address of the pod CIDR is reserved for a gateway).
//! - **Nodes**: the underlay address on `eth0`; `169.254.1.1/32` on `lo` (scope link), so the
//!   node answers the pods' ARP requests for their gateway on every `lxc…` interface;
//!   `ip_forward=1`; per local pod `<pod>/32 dev lxc… src <node ip>`; per other node
//!   `<its podCIDR> via <its underlay ip>`; `<world>/32 dev eth0` (on-link) for each of
//!   world's addresses.
//! - **World**: its documentation address (and its further `addresses`) as `/32`s on `eth0`; the underlay on-link; per node
//!   `<podCIDR> via <node ip>`. World has no underlay address of its own: it answers ARP for
//!   its `/32` on the bridge.
//! - Every lab namespace: IPv6 disabled (`disable_ipv6=1` before any interface exists, so no
//!   link-local addresses, ND or RA) unless the topology is dual stack, `rp_filter=0`, ICMP
//!   echo sockets for every group (`ping_group_range`, used by [`probe`]), loopback up.
//! - **Dual stack** (`spec.ipv6`): every address also has its IPv6 one (the IPv4 address in
//!   the last 32 bits of the cluster or world /96, [`ward_schema::topology::Ipv6Plan`]),
//!   added without duplicate address detection (`accept_dad=0`: the addresses are unique by
//!   construction); nodes forward IPv6 too. Pods: the address as a `/128` and
//!   `default via fe80::1 dev eth0` ([`names::POD_GATEWAY6`], on the node side of every
//!   `lxc…`); nodes: the underlay /96+n on `eth0`, `<pod>/128 dev lxc…`, the other nodes'
//!   pod prefixes via their IPv6 address, world's addresses on-link; world: its `/128`s, the
//!   underlay on-link, each node's pod prefix via that node.
//!
//! # Names and state
//! Namespaces are named by [`names`] (`w-<lab>.node.<node>`, ...); the state file
//! `/run/ward/lab/<lab>.json` ([`LabState`]) is written before the first namespace is made.
//! [`Lab::down`] deletes the namespaces the state file lists and every namespace `ip netns
//! list` shows with the lab's prefix, so it needs no in-memory state and is idempotent.
//! [`Lab::up`] refuses to build over an existing lab of the same name;
//! [`Lab::up_replacing`] removes it first.

pub mod dns;
mod netns;
pub mod probe;

pub use crate::names;
pub use crate::sys::netns::in_netns;
pub use netns::{Lab, LabState, LabStatus, Teardown, require_root, state_file};
pub use ward_schema::topology::{Ipv4Net, NodeSpec, PodSpec, PortSpec, Topology, WorldSpec};
