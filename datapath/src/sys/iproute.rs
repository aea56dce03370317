//! The lab's topology operations, as `ip -n <netns> ...` commands: veth pairs whose peer goes
//! into another namespace, the bridge and its ports, addresses and routes. They stay
//! commands on purpose: `ward lab` promises that a failed step names the `ip` command (and
//! carries its stderr), so a person can rerun it by hand; the lab is test and demo
//! infrastructure, and nothing in production uses this module (the agent and the mesh use
//! [`super::Net`], over rtnetlink).

use super::ip::ip_in;
use super::net::{Route, RouteTarget};
use anyhow::Result;
use std::net::{Ipv4Addr, Ipv6Addr};
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

    /// `addr add <ip>/<len> dev <dev> nodad`: an IPv6 address, usable at once (the lab's
    /// addresses are unique by construction, so duplicate address detection only delays).
    pub fn add_address6(&self, ip: Ipv6Addr, len: u8, dev: &str) -> Result<()> {
        self.run(&format!("addr add {ip}/{len} dev {dev} nodad"))
    }

    /// `-6 route add <dst>/<len> [via <gw>] dev <dev>`: an IPv6 route, through a gateway or
    /// on-link.
    pub fn add_route6(&self, dst: (Ipv6Addr, u8), via: Option<Ipv6Addr>, dev: &str) -> Result<()> {
        let via = via.map(|gw| format!(" via {gw}")).unwrap_or_default();
        self.run(&format!("-6 route add {}/{}{via} dev {dev}", dst.0, dst.1))
    }

    /// `route add <route>` (`src <src>` when given). [`is_exists`] tells a route already there
    /// from other errors.
    pub fn add_route(&self, route: &Route, src: Option<Ipv4Addr>) -> Result<()> {
        self.run(&route_add(route, src))
    }

    /// `-6 route del <dst>/<len>`: one IPv6 route to that prefix.
    pub fn delete_route6(&self, dst: (Ipv6Addr, u8)) -> Result<()> {
        self.run(&format!("-6 route del {}/{}", dst.0, dst.1))
    }

    /// `route del <dst>`: one route to `dst`, whatever its kind or metric.
    pub fn delete_route(&self, dst: Ipv4Net) -> Result<()> {
        self.run(&format!("route del {dst}"))
    }
}

/// `route add ...` as the lab has always written it: `default` for 0.0.0.0/0, `scope link`
/// spelled out on a route out of an interface.
fn route_add(route: &Route, src: Option<Ipv4Addr>) -> String {
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
    command
}

/// Whether `e` (from [`IpNetns`]) says the object was already there.
pub fn is_exists(e: &anyhow::Error) -> bool {
    format!("{e:#}").contains("File exists")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn routes_are_written_as_the_lab_always_wrote_them() {
        let r = |dst: &str, target| Route {
            dst: net(dst),
            target,
            metric: 0,
        };
        let gw = Ipv4Addr::new(169, 254, 1, 1);
        assert_eq!(
            route_add(
                &r("10.200.1.10/32", RouteTarget::Dev("lxc1".into())),
                Some(Ipv4Addr::new(172, 30, 0, 11))
            ),
            "route add 10.200.1.10/32 dev lxc1 scope link src 172.30.0.11"
        );
        assert_eq!(
            route_add(&r("0.0.0.0/0", RouteTarget::Via(gw, "eth0".into())), None),
            "route add default via 169.254.1.1 dev eth0"
        );
        assert_eq!(
            route_add(
                &r(
                    "10.200.2.0/24",
                    RouteTarget::Via(Ipv4Addr::new(172, 30, 0, 12), "eth0".into())
                ),
                None
            ),
            "route add 10.200.2.0/24 via 172.30.0.12 dev eth0"
        );
        let mut u = r("10.200.2.0/24", RouteTarget::Unreachable);
        u.metric = 4096;
        assert_eq!(
            route_add(&u, None),
            "route add unreachable 10.200.2.0/24 metric 4096"
        );
    }
}
