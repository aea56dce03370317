//! Every name the lab gives to a network namespace or an interface, derived from the topology
//! alone so that a lab can be found and removed with no other state. The lab makes them; the
//! agent (files mode) and the WireGuard mesh find a lab node's namespace and underlay
//! interface by them, without depending on the lab.
//!
//! Network namespaces (under `/run/netns/`) carry the lab's name: `w-<lab>.` followed by
//! `underlay`, `world`, `node.<node>` or `pod.<namespace>.<pod>`. The separator is a dot
//! because lab, node, namespace and pod names are DNS labels, which never contain one: the
//! prefix `w-shop.` can only belong to lab `shop` (a `-` would make `w-shop-` a prefix of lab
//! `shop-2`'s namespaces too).
//!
//! Interfaces live inside those namespaces, so they need no lab name:
//! - underlay netns: bridge [`UNDERLAY_BRIDGE`], one port per node and one for world, named
//!   [`underlay_port`] (`v-<node>`);
//! - node netns: [`NODE_UNDERLAY_IF`] towards the bridge, one [`host_ifname`] (`lxc` + 12 hex
//!   digits, Cilium's shape) per pod;
//! - pod and world netns: [`POD_IF`].

use std::net::Ipv4Addr;

/// The directory `ip netns` keeps its namespaces in.
pub const NETNS_DIR: &str = crate::sys::netns::NETNS_DIR;
/// Where a lab's state file (`<lab>.json`) is kept.
pub const STATE_DIR: &str = "/run/ward/lab";
/// What every lab namespace name starts with (then the lab name and a dot).
pub const NETNS_PREFIX: &str = "w-";
/// The bridge in the underlay namespace.
pub const UNDERLAY_BRIDGE: &str = "br0";
/// A node's (and world's) interface on the underlay.
pub const NODE_UNDERLAY_IF: &str = "eth0";
/// A pod's interface.
pub const POD_IF: &str = "eth0";
/// The pods' default gateway: a link-local address every node holds on `lo` (scope link),
/// reached by an on-link route from the pod's `/32`; the node answers its ARP requests.
pub const POD_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The pods' IPv6 gateway in a dual-stack lab: a link-local address on the node's side of
/// every pod veth, the same on every node (link-local addresses are per link).
pub const POD_GATEWAY6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// `w-<lab>.`: the prefix of every namespace of lab `lab`.
pub fn netns_prefix(lab: &str) -> String {
    format!("{NETNS_PREFIX}{lab}.")
}

/// The underlay namespace (the bridge that joins nodes and world).
pub fn underlay_netns(lab: &str) -> String {
    format!("{}underlay", netns_prefix(lab))
}

/// The world namespace.
pub fn world_netns(lab: &str) -> String {
    format!("{}world", netns_prefix(lab))
}

/// A node's namespace.
pub fn node_netns(lab: &str, node: &str) -> String {
    format!("{}node.{node}", netns_prefix(lab))
}

/// A pod's namespace.
pub fn pod_netns(lab: &str, namespace: &str, pod: &str) -> String {
    format!("{}pod.{namespace}.{pod}", netns_prefix(lab))
}

/// The lab a namespace name belongs to, if it has the lab shape `w-<lab>.<rest>`.
pub fn lab_of_netns(netns: &str) -> Option<&str> {
    let rest = netns.strip_prefix(NETNS_PREFIX)?;
    let (lab, tail) = rest.split_once('.')?;
    (!lab.is_empty() && !tail.is_empty()).then_some(lab)
}

/// Interface names a topology implies are defined with the topology, which checks them.
pub use ward_schema::topology::names::{MAX_IFNAME, host_ifname, underlay_port};

/// The path of namespace `name`: `/run/netns/<name>`.
pub fn netns_path(name: &str) -> std::path::PathBuf {
    crate::sys::netns::path(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_parse_back() {
        let lxc = host_ifname("shop", "frontend");
        assert_eq!(lxc.len(), MAX_IFNAME);
        assert!(lxc.starts_with("lxc"));
        assert_eq!(lxc, host_ifname("shop", "frontend"));
        assert_ne!(lxc, host_ifname("shop", "backend"));
        assert_ne!(host_ifname("a", "b-c"), host_ifname("a-b", "c"));
        assert_eq!(
            lab_of_netns(&pod_netns("shop-2", "shop", "web")),
            Some("shop-2")
        );
        assert_eq!(lab_of_netns(&underlay_netns("x")), Some("x"));
        assert_eq!(lab_of_netns("w-nodot"), None);
        assert_eq!(lab_of_netns("other.ns"), None);
        assert!(!node_netns("shop-2", "n").starts_with(&netns_prefix("shop")));
    }
}
