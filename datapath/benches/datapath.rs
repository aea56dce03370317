//! Datapath throughput (issue 4's target): TCP between two lab pods on different nodes with
//! iperf3, without ward's programs, and with them attached holding 10 and 10,000 policy
//! entries. Target: at least 90% of the bare throughput, and 10 vs 10,000 entries within 5%
//! (the LPM lookup must not grow with the number of rules). The lab is dual stack, and the
//! same flow over IPv6 through ward's programs (10 entries) must be within 10% of IPv4's.
//! The same flow to a ClusterIP service in front of the server (translated by the client's
//! program, and back for the replies) is measured too.
//!
//! Run (root, iperf3 installed): `cargo bench -p ward-datapath --bench datapath`.
//! `WARD_BENCH_SECONDS` (default 5) and `WARD_BENCH_RUNS` (default 5) set each measurement.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::panic,
    reason = "benchmark"
)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;
use ward_datapath::bpf::maps::{EndpointInfo, LbKey, LbValue, PolicyKey, PolicyValue};
use ward_datapath::bpf::{self, NodeDatapath};
use ward_datapath::lab::{Lab, Topology};
use ward_engine::Direction;

const TOPOLOGY: &str = "apiVersion: ward.dev/v1alpha1
kind: LabTopology
metadata: {name: bench}
spec:
  underlay: 172.29.0.0/24
  nodes:
    - {name: bench-n1, ip: 172.29.0.1, podCIDR: 10.210.1.0/24}
    - {name: bench-n2, ip: 172.29.0.2, podCIDR: 10.210.2.0/24}
  world: {name: world, ip: 198.51.100.99}
  pods:
    - {name: client, namespace: b, labels: {app: client}, ip: 10.210.1.10, node: bench-n1}
    - {name: server, namespace: b, labels: {app: server}, ip: 10.210.2.10, node: bench-n2, ports: [{port: 5201}]}
  ipv6: {}
";

/// The pods' IPv6 addresses (the lab's default cluster /96 around their IPv4 ones).
const CLIENT_V6: &str = "fd00::10.210.1.10";
const SERVER_V6: &str = "fd00::10.210.2.10";

const CLIENT_ID: u32 = 1000;
const SERVER_ID: u32 = 1001;
const CLIENT_EP: u32 = 1;
const SERVER_EP: u32 = 2;

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("datapath bench: needs root (lab and BPF); skipped");
        return;
    }
    let seconds: u32 = std::env::var("WARD_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let runs: usize = std::env::var("WARD_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let topo =
        Topology::parse("bench.yaml", TOPOLOGY.as_bytes()).unwrap_or_else(|d| panic!("{d:?}"));
    let lab = Lab::up_replacing(&topo).unwrap();
    let server_ns = lab.pod_netns("b/server");
    let client_ns = lab.pod_netns("b/client");
    let mut server = Command::new("ip")
        .arg("netns")
        .arg("exec")
        .arg(netns_name(&server_ns))
        // Unbound: the server listens on both families.
        .args(["iperf3", "-s"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 (apt-get install iperf3)");
    wait_listening(&server_ns, 5201);
    println!(
        "machine: {} cores; TCP client -> server across two lab nodes (veth + bridge), iperf3",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    for n in ["bench-n1", "bench-n2"] {
        let _ = bpf::remove_pins(n);
    }
    let places = [
        ("bench-n1", "b/client", CLIENT_EP, CLIENT_ID),
        ("bench-n2", "b/server", SERVER_EP, SERVER_ID),
    ];
    let mut dps: Vec<NodeDatapath> = places
        .iter()
        .map(|(node, ..)| NodeDatapath::open(node).unwrap())
        .collect();
    let attach = |dps: &mut Vec<NodeDatapath>| {
        for (dp, (node, pod, ep, id)) in dps.iter_mut().zip(places) {
            let ifindex = dp
                .attach(&lab.node_netns(node), &lab.host_ifname(pod))
                .unwrap();
            let maps = dp.maps_mut();
            maps.set_endpoint(
                ifindex,
                EndpointInfo {
                    ep_id: ep,
                    identity: id,
                    flags: 0,
                },
            )
            .unwrap();
            maps.ipcache_set(Ipv4Addr::new(10, 210, 1, 10), 32, CLIENT_ID)
                .unwrap();
            maps.ipcache_set(Ipv4Addr::new(10, 210, 2, 10), 32, SERVER_ID)
                .unwrap();
            maps.ipcache_set(CLIENT_V6.parse::<Ipv6Addr>().unwrap(), 128, CLIENT_ID)
                .unwrap();
            maps.ipcache_set(SERVER_V6.parse::<Ipv6Addr>().unwrap(), 128, SERVER_ID)
                .unwrap();
        }
        // A service 10.96.0.10:80 in front of the server (client's node translates).
        let vip = std::net::IpAddr::from([10, 96, 0, 10]);
        let maps = dps[0].maps_mut();
        maps.lb_set(
            LbKey::new(vip, 80, 6, 1),
            LbValue::backend([10, 210, 2, 10].into(), 5201),
        )
        .unwrap();
        maps.lb_set(LbKey::new(vip, 80, 6, 0), LbValue::service(1))
            .unwrap();
        // The flow's own entries: client egress to server:5201, server ingress from client.
        dps[0]
            .maps_mut()
            .policy_set(
                PolicyKey::port(CLIENT_EP, Direction::Egress, SERVER_ID, 6, 5201),
                PolicyValue::allow(1),
            )
            .unwrap();
        dps[1]
            .maps_mut()
            .policy_set(
                PolicyKey::port(SERVER_EP, Direction::Ingress, CLIENT_ID, 6, 5201),
                PolicyValue::allow(2),
            )
            .unwrap();
    };
    // The three configurations take turns in every round, so the VM's drift hits all alike.
    let (mut bare, mut ten, mut ten6, mut many) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut service = Vec::new();
    for round in 0..runs {
        // Nothing is attached before the first round; later rounds remove ward's filters.
        for (node, pod, ..) in places.iter().filter(|_| round > 0) {
            NodeDatapath::detach(&lab.node_netns(node), &lab.host_ifname(pod)).unwrap();
        }
        bare.push(iperf(&client_ns, "10.210.2.10", seconds));
        attach(&mut dps);
        set_filler(&mut dps, 8);
        ten.push(iperf(&client_ns, "10.210.2.10", seconds));
        ten6.push(iperf(&client_ns, SERVER_V6, seconds));
        service.push(iperf_port(&client_ns, "10.96.0.10", 80, seconds));
        set_filler(&mut dps, 9_998);
        many.push(iperf(&client_ns, "10.210.2.10", seconds));
    }
    let count: usize = dps
        .iter()
        .map(|d| d.maps().policy_entries().unwrap().len())
        .sum::<usize>()
        / 2;
    let bare = report("no ward programs", &mut bare, seconds);
    let ten = report("ward, 10 policy entries per node", &mut ten, seconds);
    let ten6 = report("ward, 10 entries, IPv6", &mut ten6, seconds);
    let service = report("ward, 10 entries, through a service", &mut service, seconds);
    let many = report(
        &format!("ward, {count} policy entries per node"),
        &mut many,
        seconds,
    );
    println!(
        "ratio with ward (10 entries) / bare: {:.1}% (target >= 90%)",
        100.0 * ten / bare
    );
    println!(
        "10,000 vs 10 entries: {:+.1}% (target within 5%)",
        100.0 * (many - ten) / ten
    );
    println!(
        "IPv6 / IPv4 through ward (10 entries): {:.1}% (target >= 90%)",
        100.0 * ten6 / ten
    );
    println!(
        "through a service / direct (10 entries): {:.1}%",
        100.0 * service / ten
    );

    let _ = server.kill();
    let _ = server.wait();
    drop(dps);
    let _ = Lab::down(lab.name());
    for n in ["bench-n1", "bench-n2"] {
        let _ = bpf::remove_pins(n);
    }
}

/// Prints and returns the median of one configuration's runs.
fn report(label: &str, gbps: &mut [f64], seconds: u32) -> f64 {
    gbps.sort_by(f64::total_cmp);
    let median = gbps[gbps.len() / 2];
    println!(
        "{label:<36} median {median:6.2} Gbit/s over {} runs of {seconds} s (min {:.2}, max {:.2})",
        gbps.len(),
        gbps[0],
        gbps[gbps.len() - 1]
    );
    median
}

/// Makes the filler exactly the first `n` of 9,998 entries per node: other identities and
/// ports of both endpoints, allows and denies, exact ports (the exact-match map) and port
/// blocks (the trie). None of them matches the measured flow.
fn set_filler(dps: &mut [NodeDatapath], n: usize) {
    for (dp, ep) in dps.iter_mut().zip([CLIENT_EP, SERVER_EP]) {
        for i in 0..9_998u32 {
            let dir = if i % 2 == 0 {
                Direction::Ingress
            } else {
                Direction::Egress
            };
            let identity = 2000 + i % 5000;
            let port = 1024 + u16::try_from(i % 4000).unwrap();
            let key = if i % 10 == 0 {
                PolicyKey::new(ep, dir, identity, 6, port & !15, 20)
            } else {
                PolicyKey::port(ep, dir, identity, 6, port)
            };
            if (i as usize) < n {
                let value = if i % 7 == 0 {
                    PolicyValue::deny(3)
                } else {
                    PolicyValue::allow(4)
                };
                dp.maps_mut().policy_set(key, value).unwrap();
            } else {
                dp.maps_mut().policy_remove(&key).unwrap();
            }
        }
    }
}

fn netns_name(path: &std::path::Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Waits until a TCP socket listens on `port` in namespace `ns` (iperf3 gives no other
/// readiness signal). `/proc/thread-self/net/tcp` is the calling thread's namespace's table.
fn wait_listening(ns: &std::path::Path, port: u16) {
    let want = format!(":{port:04X} ");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let table = ward_datapath::lab::in_netns(ns, || {
            ["tcp", "tcp6"]
                .map(|t| {
                    std::fs::read_to_string(format!("/proc/thread-self/net/{t}"))
                        .unwrap_or_default()
                })
                .concat()
        })
        .unwrap();
        // Columns: sl, local_address, rem_address, st (0A: LISTEN).
        let listening = table.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && format!("{} ", f[1]).ends_with(&want) && f[3] == "0A"
        });
        if listening {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on port {port} in {} after 10 s",
            ns.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// One iperf3 run from the client namespace to `server`: the receiver's Gbit/s.
fn iperf(client_ns: &std::path::Path, server: &str, seconds: u32) -> f64 {
    iperf_port(client_ns, server, 5201, seconds)
}

/// iperf3 from `client_ns` to `server`:`port` for `seconds`; Gbit/s received.
fn iperf_port(client_ns: &std::path::Path, server: &str, port: u16, seconds: u32) -> f64 {
    let out = Command::new("ip")
        .arg("netns")
        .arg("exec")
        .arg(netns_name(client_ns))
        .args(["iperf3", "-c", server, "-p", &port.to_string(), "-J", "-t"])
        .arg(seconds.to_string())
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("iperf3: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    doc["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 gave no result: {doc}"))
        / 1e9
}
