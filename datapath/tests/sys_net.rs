//! The kernel seam's real implementations (`ward_datapath::sys`) against the kernel, in a
//! network namespace of their own: links, addresses and routes over rtnetlink must leave the
//! kernel exactly as the `ip` commands they replaced did (checked with `ip route show`),
//! and sysctls land in the namespace they were set in.
//!
//! Needs root and iproute2; without them it prints `SKIPPED: <test>: <reason>` (a failure in
//! must-run mode).

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use ward_datapath::sys::netns::{self, in_netns};
use ward_datapath::sys::{Net, NetnsNet, NetnsSysctls, Route, RouteTarget, Sysctls};
use ward_schema::topology::Ipv4Net;

/// A namespace of its own, deleted on drop (also when the test panics).
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("wsys-{}-{tag}", std::process::id());
        netns::add(&name).unwrap();
        Netns { name }
    }
    fn path(&self) -> PathBuf {
        netns::path(&self.name)
    }
    /// `ip -n <ns> <args>`, its stdout; panics with its stderr when it fails.
    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = netns::delete(&self.name);
    }
}

fn can_run(test: &str) -> bool {
    ward_testkit::can_run(test, ward_testkit::lab_missing().as_deref())
}

fn net(a: [u8; 4], len: u8) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::from(a), len).unwrap()
}

/// A namespace with interface `d0` holding 10.9.0.1/24 (one end of a veth pair, whose other
/// end `d1` is up: the kernel may have no dummy interfaces).
fn with_dummy(tag: &str) -> (Netns, NetnsNet) {
    let ns = Netns::new(tag);
    ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    ns.ip(&["link", "set", "d1", "up"]);
    ns.ip(&["addr", "add", "10.9.0.1/24", "dev", "d0"]);
    let n = NetnsNet::new(&ns.path());
    (ns, n)
}

#[test]
fn links_and_addresses() {
    if !can_run("sys_net links_and_addresses") {
        return;
    }
    let (ns, n) = with_dummy("links");
    assert!(n.link_exists("d0").unwrap());
    assert!(!n.link_exists("nope").unwrap());
    let addrs = n.ipv4_addresses().unwrap();
    assert!(
        addrs.contains(&("d0".to_owned(), Ipv4Addr::new(10, 9, 0, 1))),
        "{addrs:?}"
    );
    n.set_link_up("d0", Some(1400)).unwrap();
    assert_eq!(n.link_mtu("d0").unwrap(), 1400);
    let shown = ns.ip(&["-o", "link", "show", "dev", "d0"]);
    assert!(
        shown.contains("mtu 1400") && shown.contains(",UP"),
        "{shown}"
    );
    // Entering the namespace sees the same interface.
    let index = in_netns(&ns.path(), || netns::ifindex("d0"))
        .unwrap()
        .unwrap();
    assert!(index > 0);
    n.delete_link("d0").unwrap();
    assert!(!n.link_exists("d0").unwrap());
    assert!(n.link_mtu("d0").is_err());
    assert!(n.set_link_up("d0", None).is_err());
}

#[test]
fn routes_match_what_ip_route_replace_made() {
    if !can_run("sys_net routes") {
        return;
    }
    let (ns, n) = with_dummy("routes");
    n.set_link_up("d0", None).unwrap();
    let dst = net([10, 50, 0, 0], 24);
    let show = || ns.ip(&["route", "show", "10.50.0.0/24"]);
    let route = |target, metric| Route {
        dst,
        target,
        metric,
    };

    // Tunnel: the unreachable fallback behind a route out of the interface.
    n.replace_route(&route(RouteTarget::Unreachable, 4096))
        .unwrap();
    n.replace_route(&route(RouteTarget::Dev("d0".into()), 0))
        .unwrap();
    assert_eq!(
        show(),
        "10.50.0.0/24 dev d0 scope link \nunreachable 10.50.0.0/24 metric 4096"
    );
    // Blocked: the main route replaced in place.
    n.replace_route(&route(RouteTarget::Unreachable, 0))
        .unwrap();
    assert_eq!(
        show(),
        "unreachable 10.50.0.0/24 \nunreachable 10.50.0.0/24 metric 4096"
    );
    // Clear: via a gateway; then the fallback is deleted by kind and metric.
    n.replace_route(&route(
        RouteTarget::Via(Ipv4Addr::new(10, 9, 0, 2), "d0".into()),
        0,
    ))
    .unwrap();
    n.delete_route(dst, Some((&RouteTarget::Unreachable, 4096)))
        .unwrap();
    assert_eq!(show(), "10.50.0.0/24 via 10.9.0.2 dev d0");
    // Deleting without a kind takes whatever is there; then there is nothing.
    n.delete_route(dst, None).unwrap();
    assert_eq!(show(), "");
    assert!(n.delete_route(dst, None).is_err());
    assert!(
        n.replace_route(&route(RouteTarget::Dev("nope".into()), 0))
            .is_err()
    );
}

#[test]
fn a_pods_interface_is_found_by_its_host_route() {
    if !can_run("sys_net route_interface") {
        return;
    }
    let (ns, n) = with_dummy("podroute");
    n.set_link_up("d0", None).unwrap();
    ns.ip(&["route", "add", "10.9.0.7/32", "dev", "d0", "scope", "link"]);
    assert_eq!(
        n.route_interface(Ipv4Addr::new(10, 9, 0, 7)).unwrap(),
        Some("d0".to_owned())
    );
    // 10.9.0.8 is only covered by the /24: not a pod's host route.
    assert_eq!(n.route_interface(Ipv4Addr::new(10, 9, 0, 8)).unwrap(), None);
}

#[test]
fn sysctls_are_set_inside_the_namespace_only() {
    if !can_run("sys_net sysctls") {
        return;
    }
    let ns = Netns::new("sysctl");
    let read = |path: &str| {
        let p = PathBuf::from(path);
        in_netns(&ns.path(), move || std::fs::read_to_string(p).unwrap())
            .unwrap()
            .trim()
            .to_owned()
    };
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/rp_filter").unwrap();
    NetnsSysctls::new(&ns.path())
        .set(&[
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.rp_filter", "2"),
        ])
        .unwrap();
    assert_eq!(read("/proc/sys/net/ipv4/ip_forward"), "1");
    assert_eq!(read("/proc/sys/net/ipv4/conf/all/rp_filter"), "2");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/rp_filter").unwrap(),
        host_before
    );
    let e = NetnsSysctls::new(&ns.path())
        .set(&[("net.ipv4.no_such_key", "1")])
        .unwrap_err();
    assert!(format!("{e:#}").contains("net.ipv4.no_such_key"), "{e:#}");
}
