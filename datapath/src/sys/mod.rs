//! The kernel seam: the only module of this crate that enters network namespaces, changes
//! links, addresses, routes and sysctls, mounts file systems or drives a WireGuard device.
//! Everything above it (the lab, the agent, the WireGuard mesh, the BPF loader) goes through
//! it, so the logic up there can be tested with fakes of these traits and the real thing is
//! tested once, here and in the root tests under `datapath/tests/`.
//!
//! - [`netns`]: running code inside a network namespace ([`netns::in_netns`], `setns` on a
//!   dedicated thread), creating, listing and deleting named namespaces, interface indexes.
//! - [`net`]: the [`Net`] trait (links, addresses and routes of one namespace) and
//!   [`NetnsNet`], the kernel's, over rtnetlink.
//! - [`sysctl`]: the [`Sysctls`] trait and [`NetnsSysctls`], `/proc/sys` of one namespace.
//! - [`mount`]: the [`Mounts`] trait and [`HostMounts`]: is a directory on bpffs.
//! - [`wireguard`]: the [`WireGuard`] trait (makes interfaces in one namespace) and
//!   [`WgDevice`] (one interface: key, peers, counters), kernel WireGuard or ward's userspace
//!   device ([`wireguard::userspace`]: TUN, UDP, gotatun's protocol, in a process of its own
//!   that the agent configures over a Unix socket).
//! - [`iproute`]: the lab's topology operations, kept as `ip` commands (see below); `ip`
//!   (private) runs them.
//!
//! [`NodeSys`] bundles what a node's agent and mesh need, bound to the node's namespace;
//! [`NodeSys::kernel`] is the real one.
//!
//! # What still runs a command, and why
//! - `ip netns add`: a named namespace is an `unshare` plus a bind mount under `/run/netns`
//!   whose propagation iproute2 sets up (it makes `/run/netns` a shared mount of itself, so
//!   processes in other mount namespaces see namespaces made later); the lab's
//!   namespaces must be the ones `ip netns` and every person debugging a lab see.
//!   rtnetlink's `NetworkNamespace::add` does the same by forking, which is unsafe in a
//!   multi-threaded process. Listing and deleting are done here directly.
//! - The lab's topology (veth pairs whose peer goes into another namespace, the bridge and
//!   its ports, its addresses and routes), [`iproute::IpNetns`]: `ward lab` promises that a
//!   failed step names the `ip` command and carries its stderr, so a person can rerun it by
//!   hand (a test holds it to that); the lab is test and demo infrastructure. Production code
//!   (agent, mesh) uses [`Net`] only.
//!
//! tc (the `clsact` qdisc and the filters) is done by aya over netlink in [`crate::bpf`]; only
//! the namespace it runs in comes from here.

#[cfg(test)]
pub(crate) mod fake;
pub(crate) mod ip;
pub mod iproute;
pub mod mount;
pub mod net;
pub mod netns;
pub mod sysctl;
pub mod transparent;
pub mod wireguard;

pub use mount::{HostMounts, Mounts};
pub use net::{LocalDelivery, Net, NetnsNet, Route, RouteTarget};
pub use netns::in_netns;
pub use sysctl::{NetnsSysctls, Sysctls};
pub use wireguard::{KernelWireGuard, WgDevice, WireGuard};

use std::path::Path;
use std::sync::Arc;

/// What a node's agent and WireGuard mesh need from the kernel, bound to the node's network
/// namespace. Cheap to clone.
#[derive(Clone)]
pub struct NodeSys {
    /// Links, addresses and routes of the node's namespace.
    pub net: Arc<dyn Net>,
    /// WireGuard interfaces in the node's namespace.
    pub wireguard: Arc<dyn WireGuard>,
}

impl NodeSys {
    /// The kernel's, inside the network namespace at `netns`; a userspace WireGuard device is
    /// reached through a socket in `run_dir`.
    pub fn kernel(netns: &Path, run_dir: &Path) -> NodeSys {
        NodeSys {
            net: Arc::new(NetnsNet::new(netns)),
            wireguard: Arc::new(KernelWireGuard::new(netns, run_dir)),
        }
    }
}

impl std::fmt::Debug for NodeSys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSys").finish_non_exhaustive()
    }
}

/// Whether the process runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The process's effective capabilities (`CapEff` of `/proc/self/status`), one bit per
/// capability number.
pub fn effective_capabilities() -> anyhow::Result<u64> {
    use anyhow::Context;
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0))
}
