//! The lab's topology operations, as `ip -n <netns> ...` commands: veth pairs whose peer goes
//! into another namespace, the bridge and its ports, addresses and routes. They stay
//! commands on purpose: `ward lab` promises that a failed step names the `ip` command (and
//! carries its stderr), so a person can rerun it by hand; the lab is test and demo
//! infrastructure, and nothing in production uses this module (the agent and the mesh use
//! [`super::Net`], over rtnetlink).

use super::ip::ip_in;
use super::net::{Route, RouteTarget};
use anyhow::Result;
use std::net::Ipv4Addr;
use ward_schema::topology::Ipv4Net;

/// `ip -n <name>`: one named network namespace (under `/run/netns`).
#[derive(Debug, Clone, Copy)]
pub struct IpNetns<'a> {
    name: &'a str,
}

impl<'a> IpNetns<'a> {
    /// The namespace named `name`.
    pub fn new(name: &'a str) -> IpNetns<'a> {
        IpNetns { name }
    }

    fn run(&self, command: &str) -> Result<()> {
        ip_in(self.name, command).map(drop)
    }

    /// `link set <ifname> up`.
    pub fn link_up(&self, ifname: &str) -> Result<()> {
        self.run(&format!("link set {ifname} up"))
    }

    /// `link add <name> type bridge`.
    pub fn add_bridge(&self, name: &str) -> Result<()> {
        self.run(&format!("link add {name} type bridge"))
    }

    /// `link add <name> type veth peer name <peer> netns <peer_netns>`: a veth pair with
    /// `peer` in namespace `peer_netns`.
    pub fn add_veth(&self, name: &str, peer: &str, peer_netns: &str) -> Result<()> {
        self.run(&format!(
            "link add {name} type veth peer name {peer} netns {peer_netns}"
        ))
    }

    /// `link set <port> master <bridge>`.
    pub fn set_master(&self, port: &str, bridge: &str) -> Result<()> {
        self.run(&format!("link set {port} master {bridge}"))
    }

    /// `link del <ifname>`.
    pub fn delete_link(&self, ifname: &str) -> Result<()> {
        self.run(&format!("link del {ifname}"))
    }

    /// `addr add <ip>/<len> dev <dev>` (with `scope link` when `scope_link`).
    pub fn add_address(&self, ip: Ipv4Addr, len: u8, dev: &str, scope_link: bool) -> Result<()> {
        let scope = if scope_link { " scope link" } else { "" };
        self.run(&format!("addr add {ip}/{len} dev {dev}{scope}"))
    }

    /// `route add <route>` (`src <src>` when given). [`is_exists`] tells a route already there
    /// from other errors.
    pub fn add_route(&self, route: &Route, src: Option<Ipv4Addr>) -> Result<()> {
        let dst = if route.dst.prefix_len() == 0 {
            "default".to_owned()
        } else {
            route.dst.to_string()
        };
        let mut command = match &route.target {
            RouteTarget::Dev(d) => format!("route add {dst} dev {d} scope link"),
            RouteTarget::Via(gw, d) => format!("route add {dst} via {gw} dev {d}"),
            RouteTarget::Unreachable => format!("route add unreachable {dst}"),
        };
        if let Some(src) = src {
            command.push_str(&format!(" src {src}"));
        }
        if route.metric != 0 {
            command.push_str(&format!(" metric {}", route.metric));
        }
        self.run(&command)
    }

    /// `route del <dst>`: one route to `dst`, whatever its kind or metric.
    pub fn delete_route(&self, dst: Ipv4Net) -> Result<()> {
        self.run(&format!("route del {dst}"))
    }
}

/// Whether `e` (from [`IpNetns`]) says the object was already there.
pub fn is_exists(e: &anyhow::Error) -> bool {
    format!("{e:#}").contains("File exists")
}
