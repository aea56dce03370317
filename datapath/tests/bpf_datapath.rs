//! ward's BPF datapath with real programs and real packets (needs root).
//!
//! Each test builds its own lab: a "node" network namespace holding the host sides of two
//! veths, whose other ends are `eth0` in pod namespaces "a" (10.77.0.2) and "b" (10.77.1.2);
//! the node routes between them. The programs are attached to the two host veths, with
//! maps pinned under `/sys/fs/bpf/ward/<unique test node>/`, and traffic is made with std
//! sockets from threads that entered the pod namespaces. The fixture removes namespaces and
//! pins on drop, panics included.
//!
//! Without root (or `ip`, or bpffs) the tests print `SKIPPED: <test>: <reason>`, or fail in must-run
//! mode (`ward_testkit::must_run`).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use std::{env, fs};

use nix::sched::{CloneFlags, setns};
use ward_datapath::bpf::{
    EndpointInfo, EventReader, NodeDatapath, NodeMaps, PIN_ROOT, PolicyKey, PolicyValue, Verdict,
    VerdictEvent,
};
use ward_engine::Direction::{Egress, Ingress};

const A_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const B_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);
/// The pods' IPv6 addresses, once [`v6_addresses`] gave them.
const A_IP6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 2);
const B_IP6: Ipv6Addr = Ipv6Addr::new(0xfd77, 1, 0, 0, 0, 0, 0, 2);
const ICMPV6: u8 = 58;
const EP_A: u32 = 1;
const EP_B: u32 = 2;
const ID_A: u32 = 1001;
const ID_B: u32 = 1002;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

const CHILD_NODE_ENV: &str = "WARD_TEST_CHILD_NODE";
const CHILD_NETNS_ENV: &str = "WARD_TEST_CHILD_NETNS";
const CHILD_READY: &str = "WARD-CHILD-READY";

/// `ip netns add` of several tests at once can race on the first mount of /run/netns.
static NETNS_LOCK: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------------------
// Fixture

/// The lab, or `None` after printing why the test is skipped (a panic in must-run mode, see `ward_testkit`).
fn lab_or_skip(tag: &str) -> Option<Lab> {
    if let Some(reason) = ward_testkit::bpf_missing() {
        ward_testkit::skip(&format!("bpf_datapath {tag}"), &reason);
        return None;
    }
    Some(Lab::new(tag))
}

fn run(args: &[&str]) {
    output(args);
}

/// The standard output of a command that must succeed.
fn output(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Lab {
    /// Node name of the pins: `/sys/fs/bpf/ward/<node>`.
    node: String,
    ns_node: String,
    ns_a: String,
    ns_b: String,
    child: Option<Child>,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let base = format!("wbt{}-{tag}", std::process::id());
        let lab = Lab {
            node: base.clone(),
            ns_node: format!("{base}-n"),
            ns_a: format!("{base}-a"),
            ns_b: format!("{base}-b"),
            child: None,
        };
        let _ = fs::remove_dir_all(lab.pin_dir());
        {
            let _guard = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            for ns in [&lab.ns_node, &lab.ns_a, &lab.ns_b] {
                let _ = Command::new("ip").args(["netns", "del", ns]).output();
                run(&["ip", "netns", "add", ns]);
            }
        }
        let (n, a, b) = (lab.ns_node.as_str(), lab.ns_a.as_str(), lab.ns_b.as_str());
        for ns in [n, a, b] {
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        for (host, pod, host_ip, pod_ip) in [
            ("ha", a, "10.77.0.1/24", "10.77.0.2/24"),
            ("hb", b, "10.77.1.1/24", "10.77.1.2/24"),
        ] {
            let gw = &host_ip[..host_ip.len() - 3];
            run(&[
                "ip", "-n", n, "link", "add", host, "type", "veth", "peer", "name", "eth0",
                "netns", pod,
            ]);
            run(&["ip", "-n", n, "addr", "add", host_ip, "dev", host]);
            run(&["ip", "-n", n, "link", "set", host, "up"]);
            run(&["ip", "-n", pod, "addr", "add", pod_ip, "dev", "eth0"]);
            run(&["ip", "-n", pod, "link", "set", "eth0", "up"]);
            run(&["ip", "-n", pod, "route", "add", "default", "via", gw]);
        }
        run(&[
            "ip",
            "netns",
            "exec",
            n,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        for pod in [a, b] {
            // Lets unprivileged-style ICMP echo ("ping") sockets be used in the pods.
            run(&[
                "ip",
                "netns",
                "exec",
                pod,
                "sysctl",
                "-qw",
                "net.ipv4.ping_group_range=0 2147483647",
            ]);
        }
        lab
    }

    fn pin_dir(&self) -> PathBuf {
        Path::new(PIN_ROOT).join(&self.node)
    }

    fn node_netns(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.ns_node)
    }

    /// Loads the datapath and attaches it to both host veths: (datapath, ifindex a, ifindex b).
    fn datapath(&self) -> (NodeDatapath, u32, u32) {
        open_and_attach(&self.node, &self.node_netns())
    }

    /// Starts this test binary as a separate "agent" process that loads, attaches and fills
    /// the maps with [`standard_policy`], then waits to be killed.
    fn spawn_agent(&mut self) {
        let exe = env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
        let mut child = Command::new(exe)
            .args([
                "child_agent_helper",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_NODE_ENV, &self.node)
            .env(CHILD_NETNS_ENV, self.node_netns())
            // The child waits for this pipe to close: when the parent dies, so does it.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning the child agent: {e}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("child stdout"));
        self.child = Some(child);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains(CHILD_READY) {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("the child agent did not get ready (see its stderr above)"));
    }

    /// SIGKILLs the child agent and reaps it.
    fn kill_agent(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn filters(&self, dev: &str, hook: &str) -> Vec<String> {
        output(&[
            "tc",
            "-n",
            &self.ns_node,
            "filter",
            "show",
            "dev",
            dev,
            hook,
        ])
        .lines()
        .filter(|l| l.contains("handle"))
        .map(str::to_owned)
        .collect()
    }

    /// [`Lab::filters`] of both host veths: ha ingress, ha egress, hb ingress, hb egress.
    fn all_filters(&self) -> Vec<Vec<String>> {
        ["ha", "hb"]
            .iter()
            .flat_map(|d| [self.filters(d, "ingress"), self.filters(d, "egress")])
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.kill_agent();
        let _guard = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for ns in [&self.ns_a, &self.ns_b, &self.ns_node] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = ward_datapath::bpf::remove_pins(&self.node);
    }
}

/// Loads the datapath of `node` and attaches it to both host veths in `netns`:
/// (datapath, ifindex a, ifindex b).
fn open_and_attach(node: &str, netns: &Path) -> (NodeDatapath, u32, u32) {
    let mut dp = NodeDatapath::open(node).unwrap_or_else(|e| panic!("open {node}: {e:#}"));
    let ifa = dp
        .attach(netns, "ha")
        .unwrap_or_else(|e| panic!("attach ha: {e:#}"));
    let ifb = dp
        .attach(netns, "hb")
        .unwrap_or_else(|e| panic!("attach hb: {e:#}"));
    (dp, ifa, ifb)
}

/// Runs `f` on a thread inside network namespace `ns`.
fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|s| {
        s.spawn(|| {
            let file = fs::File::open(Path::new("/run/netns").join(ns))
                .unwrap_or_else(|e| panic!("opening netns {ns}: {e}"));
            setns(&file, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {ns}: {e}"));
            f()
        })
        .join()
        .unwrap_or_else(|_| panic!("thread in {ns} panicked"))
    })
}

/// Endpoints and identities of both pods.
fn endpoints(maps: &mut NodeMaps, ifa: u32, ifb: u32) {
    maps.set_endpoint(
        ifa,
        EndpointInfo {
            ep_id: EP_A,
            identity: ID_A,
            flags: 0,
        },
    )
    .expect("endpoint a");
    maps.set_endpoint(
        ifb,
        EndpointInfo {
            ep_id: EP_B,
            identity: ID_B,
            flags: 0,
        },
    )
    .expect("endpoint b");
    maps.ipcache_set(A_IP, 32, ID_A).expect("ipcache a");
    maps.ipcache_set(B_IP, 32, ID_B).expect("ipcache b");
}

/// Sets an allow entry with rule id `rule`.
fn allow(maps: &mut NodeMaps, key: PolicyKey, rule: u32) {
    maps.policy_set(key, PolicyValue::allow(rule))
        .unwrap_or_else(|e| panic!("allowing {key:?}: {e:#}"));
}

/// Sets a deny entry with rule id `rule`.
fn deny(maps: &mut NodeMaps, key: PolicyKey, rule: u32) {
    maps.policy_set(key, PolicyValue::deny(rule))
        .unwrap_or_else(|e| panic!("denying {key:?}: {e:#}"));
}

/// Endpoints, a's egress open (allow-all, rule 11), b's ingress TCP/80 from a (rule 21);
/// a's ingress and b's egress default deny.
fn standard_policy(maps: &mut NodeMaps, ifa: u32, ifb: u32) {
    endpoints(maps, ifa, ifb);
    allow(maps, PolicyKey::any(EP_A, Egress, 0), 11);
    allow(maps, PolicyKey::port(EP_B, Ingress, ID_A, TCP, 80), 21);
}

// ---------------------------------------------------------------------------------------
// Traffic

/// Echo servers; stopped and joined on drop.
struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Binds one socket per port inside `ns` and runs `serve` for each on its own thread until
/// the [`Servers`] are dropped.
fn serve<S: Send + 'static>(
    ns: &str,
    ports: &[u16],
    bind: impl Fn(u16) -> std::io::Result<S> + Sync,
    serve: fn(S, &AtomicBool),
) -> Servers {
    let sockets: Vec<S> = in_ns(ns, || {
        ports
            .iter()
            .map(|&p| bind(p).unwrap_or_else(|e| panic!("bind {p}: {e}")))
            .collect()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let threads = sockets
        .into_iter()
        .map(|sock| {
            let stop = stop.clone();
            thread::spawn(move || serve(sock, &stop))
        })
        .collect();
    Servers { stop, threads }
}

fn tcp_echo(ns: &str, ports: &[u16]) -> Servers {
    serve(
        ns,
        ports,
        |p| TcpListener::bind(("::", p)),
        |listener, stop| {
            listener.set_nonblocking(true).expect("nonblocking");
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                            let mut buf = [0u8; 16384];
                            while let Ok(n) = s.read(&mut buf) {
                                if n == 0 || s.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        },
    )
}

fn udp_echo(ns: &str, ports: &[u16]) -> Servers {
    serve(
        ns,
        ports,
        |p| UdpSocket::bind(("::", p)),
        |sock, stop| {
            sock.set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::SeqCst) {
                if let Ok((n, peer)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&buf[..n], peer);
                }
            }
        },
    )
}

/// Connects from `ns` and echoes `len` bytes: true when the connection works both ways.
fn tcp_exchange(ns: &str, dst: impl Into<IpAddr>, port: u16, len: usize) -> bool {
    let addr = SocketAddr::new(dst.into(), port);
    in_ns(ns, || {
        let Ok(mut s) = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(PROBE_TIMEOUT));
        let _ = s.set_write_timeout(Some(PROBE_TIMEOUT));
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let writer = {
            let Ok(mut w) = s.try_clone() else {
                return false;
            };
            let data = data.clone();
            thread::spawn(move || w.write_all(&data).is_ok())
        };
        let mut back = vec![0u8; len];
        let read_ok = s.read_exact(&mut back).is_ok();
        writer.join().unwrap_or(false) && read_ok && back == data
    })
}

fn tcp_probe(ns: &str, dst: impl Into<IpAddr>, port: u16) -> bool {
    tcp_exchange(ns, dst, port, 16)
}

fn udp_probe(ns: &str, dst: impl Into<IpAddr>, port: u16) -> bool {
    let netns = Path::new("/run/netns").join(ns);
    ward_datapath::lab::probe::udp(&netns, None, dst, port, PROBE_TIMEOUT)
        .expect("entering the namespace")
}

/// An ICMP (ICMPv6 to an IPv6 address) echo from `ns` (a kernel "ping" socket: it sets the
/// identifier and checksum).
fn icmp_probe(ns: &str, dst: impl Into<IpAddr>) -> bool {
    let netns = Path::new("/run/netns").join(ns);
    ward_datapath::lab::probe::icmp_echo(&netns, None, dst, PROBE_TIMEOUT)
        .expect("entering the namespace")
}

/// Events read within `wait` until `done` says enough.
fn collect_events(
    reader: &mut EventReader,
    wait: Duration,
    mut done: impl FnMut(&[VerdictEvent]) -> bool,
) -> Vec<VerdictEvent> {
    let deadline = Instant::now() + wait;
    let mut events = Vec::new();
    while !done(&events) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match reader.next(left) {
            Ok(Some(e)) => events.push(e),
            Ok(None) => break,
            Err(e) => panic!("reading events: {e:#}"),
        }
    }
    events
}

/// The first event with `verdict` read within a second.
fn first_event(reader: &mut EventReader, verdict: Verdict) -> VerdictEvent {
    let events = collect_events(reader, Duration::from_secs(1), |ev| {
        ev.iter().any(|e| e.verdict() == Some(verdict))
    });
    events
        .iter()
        .find(|e| e.verdict() == Some(verdict))
        .copied()
        .unwrap_or_else(|| panic!("no {verdict} event in {events:#?}"))
}

fn counter(maps: &NodeMaps, ep: u32, dir: ward_engine::Direction, v: Verdict) -> u64 {
    maps.counters()
        .expect("counters")
        .iter()
        .filter(|c| c.ep_id == ep && c.direction == dir && c.verdict == Some(v))
        .map(|c| c.packets)
        .sum()
}

/// The program id in a `tc filter show` line (`... id 42 ...`).
fn prog_id(line: &str) -> Option<u32> {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "id" {
            return words.next().and_then(|id| id.parse().ok());
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Tests

/// (a) Attached with empty maps, nothing passes; endpoints without policy drop both ways;
/// IPv6 is dropped (and counted as unsupported).
#[test]
fn fails_closed_without_entries() {
    let Some(lab) = lab_or_skip("closed") else {
        return;
    };
    let _servers = tcp_echo(&lab.ns_b, &[80]);
    let (mut dp, ifa, ifb) = lab.datapath();

    assert!(
        !tcp_probe(&lab.ns_a, B_IP, 80),
        "no endpoint entries: must drop"
    );
    assert!(
        counter(&dp, 0, Egress, Verdict::DefaultDeny) > 0,
        "drops on an unknown interface are counted under endpoint 0: {:?}",
        dp.counters()
    );

    endpoints(&mut dp, ifa, ifb);
    assert!(
        !tcp_probe(&lab.ns_a, B_IP, 80),
        "endpoints without policy: must drop"
    );
    assert!(counter(&dp, EP_A, Egress, Verdict::DefaultDeny) > 0);

    // IPv6 without policy: neighbour discovery passes (the datagram leaves the pod at all
    // only once its neighbour solicitation was answered), the datagram is default-denied.
    v6_addresses(&lab);
    let before = counter(&dp, EP_A, Egress, Verdict::DefaultDeny);
    in_ns(&lab.ns_a, || {
        let s = UdpSocket::bind("[::]:0").expect("bind v6");
        let _ = s.send_to(b"v6", "[fd77::1]:9");
    });
    wait_for_counter(&dp, EP_A, Egress, Verdict::DefaultDeny, before);

    // A fragment cannot be judged (its ports may be in another packet): unsupported.
    let before = counter(&dp, EP_A, Egress, Verdict::Unsupported);
    in_ns(&lab.ns_a, || {
        let s = UdpSocket::bind("[::]:0").expect("bind v6");
        let _ = s.send_to(&[0u8; 3000], "[fd77::1]:9");
    });
    wait_for_counter(&dp, EP_A, Egress, Verdict::Unsupported, before);
}

/// Waits until the counter of `ep`, `dir`, `v` is above `before` (it is bumped as the packet
/// passes the program: wait for it, not for a fixed time), failing after 5 s.
fn wait_for_counter(dp: &NodeMaps, ep: u32, dir: ward_engine::Direction, v: Verdict, before: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while counter(dp, ep, dir, v) <= before && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    assert!(
        counter(dp, ep, dir, v) > before,
        "no {v} packet of endpoint {ep} {dir}: {:?}",
        dp.counters()
    );
}

/// IPv6 addresses on the node's and pods' veths (fd77::/64 towards a, fd77:1::/64 towards
/// b), the pods' default routes over them, and IPv6 forwarding on the node.
fn v6_addresses(lab: &Lab) {
    // Before the addresses: switching forwarding on restarts the interfaces' IPv6 setup.
    run(&[
        "ip",
        "netns",
        "exec",
        &lab.ns_node,
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.forwarding=1",
    ]);
    for (ns, dev, addr) in [
        (&lab.ns_node, "ha", "fd77::1/64"),
        (&lab.ns_node, "hb", "fd77:1::1/64"),
        (&lab.ns_a, "eth0", "fd77::2/64"),
        (&lab.ns_b, "eth0", "fd77:1::2/64"),
    ] {
        run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev, "nodad"]);
    }
    for (ns, gw) in [(&lab.ns_a, "fd77::1"), (&lab.ns_b, "fd77:1::1")] {
        run(&["ip", "-n", ns, "-6", "route", "add", "default", "via", gw]);
    }
    // The link-local addresses' duplicate address detection: until it ends, the node
    // cannot resolve its neighbours and the first packets are lost.
    let deadline = Instant::now() + Duration::from_secs(5);
    for ns in [&lab.ns_node, &lab.ns_a, &lab.ns_b] {
        while !output(&["ip", "-n", ns, "-6", "addr", "show", "tentative"]).is_empty()
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// (b6) IPv6 meets the same policy as IPv4: the identities come from the IPv6 ipcache, the
/// policy entries are the family-free ones, replies pass through conntrack (IPv6 tuples),
/// ICMPv6 echo needs an ICMPv6 entry (an ICMP one is IPv4's), and events carry the IPv6
/// addresses.
#[test]
fn ipv6_flows_meet_the_same_policy() {
    let Some(lab) = lab_or_skip("v6") else {
        return;
    };
    v6_addresses(&lab);
    let _tcp = tcp_echo(&lab.ns_b, &[80, 81]);
    let _udp = udp_echo(&lab.ns_b, &[53, 54]);
    let _a = tcp_echo(&lab.ns_a, &[80]);
    let (mut dp, ifa, ifb) = lab.datapath();
    endpoints(&mut dp, ifa, ifb);
    dp.ipcache_set(A_IP6, 128, ID_A).expect("ipcache a6");
    dp.ipcache_set(B_IP6, 128, ID_B).expect("ipcache b6");
    let mut reader = EventReader::open(&lab.node).unwrap_or_else(|e| panic!("{e:#}"));
    allow(&mut dp, PolicyKey::any(EP_A, Egress, 0), 11);
    allow(&mut dp, PolicyKey::port(EP_B, Ingress, ID_A, TCP, 80), 21);
    allow(&mut dp, PolicyKey::port(EP_B, Ingress, ID_A, UDP, 53), 22);
    allow(&mut dp, PolicyKey::port(EP_B, Ingress, ID_A, ICMP, 8), 23);
    let echo6 = PolicyKey::port(EP_B, Ingress, ID_A, ICMPV6, 128);
    allow(&mut dp, echo6, 24);

    assert!(
        tcp_exchange(&lab.ns_a, B_IP6, 80, 64 * 1024),
        "TCP/80 carries data both ways"
    );
    assert!(!tcp_probe(&lab.ns_a, B_IP6, 81), "TCP/81 is not allowed");
    assert!(!tcp_probe(&lab.ns_b, A_IP6, 80), "b -> a is not allowed");
    assert!(udp_probe(&lab.ns_a, B_IP6, 53), "UDP/53 and its reply");
    assert!(!udp_probe(&lab.ns_a, B_IP6, 54), "UDP/54 is not allowed");
    assert!(icmp_probe(&lab.ns_a, B_IP6), "ICMPv6 echo and its reply");
    assert!(icmp_probe(&lab.ns_a, B_IP), "ICMP echo over IPv4");
    let ct = dp.ct_entries().expect("ct");
    assert!(
        ct.iter().any(|(k, _)| k.saddr() == A_IP6
            && k.daddr() == B_IP6
            && k.dport() == 53
            && k.proto() == UDP),
        "an IPv6 conntrack tuple: {ct:?}"
    );
    assert!(dp.policy_remove(&echo6).expect("remove"));
    dp.ct_clear().expect("ct clear");
    assert!(
        !icmp_probe(&lab.ns_a, B_IP6),
        "an ICMP rule does not open ICMPv6"
    );
    assert!(icmp_probe(&lab.ns_a, B_IP), "ICMP still open");

    let events = collect_events(&mut reader, Duration::from_millis(500), |_| false);
    let drop = events
        .iter()
        .find(|e| e.dport() == 81 && e.verdict() == Some(Verdict::DefaultDeny))
        .unwrap_or_else(|| panic!("no drop of TCP/81 in {events:#?}"));
    assert_eq!(
        (
            drop.saddr(),
            drop.daddr(),
            drop.ep_id(),
            drop.src_identity()
        ),
        (A_IP6.into(), B_IP6.into(), EP_B, ID_A)
    );
    assert!(
        events
            .iter()
            .any(|e| e.proto() == ICMPV6 && e.dport() == 128 && e.rule_id() == 24),
        "the allowed ICMPv6 echo's event: {events:#?}"
    );
}

/// (b) An allowed TCP port carries data both ways (replies through conntrack); other ports
/// and the reverse direction stay closed.
#[test]
fn allowed_tcp_flows_both_ways_and_nothing_else() {
    let Some(lab) = lab_or_skip("tcp") else {
        return;
    };
    let _b = tcp_echo(&lab.ns_b, &[80, 81]);
    let _a = tcp_echo(&lab.ns_a, &[80]);
    let (mut dp, ifa, ifb) = lab.datapath();
    endpoints(&mut dp, ifa, ifb);
    allow(&mut dp, PolicyKey::port(EP_A, Egress, ID_B, TCP, 80), 1);
    allow(&mut dp, PolicyKey::port(EP_B, Ingress, ID_A, TCP, 80), 2);

    assert!(
        tcp_exchange(&lab.ns_a, B_IP, 80, 256 * 1024),
        "a -> b TCP/80 must carry data both ways"
    );
    assert!(!tcp_probe(&lab.ns_a, B_IP, 81), "TCP/81 is not allowed");
    assert!(
        !tcp_probe(&lab.ns_b, A_IP, 80),
        "b -> a is not allowed (only replies are)"
    );

    let ct = dp.ct_entries().expect("ct");
    let conn = ct
        .iter()
        .find(|(k, _)| {
            k.saddr() == A_IP && k.daddr() == B_IP && k.dport() == 80 && k.proto() == TCP
        })
        .unwrap_or_else(|| panic!("no conntrack entry for a -> b:80 in {ct:?}"));
    use ward_datapath::bpf::maps::{
        CT_FLAG_EGRESS_SEEN, CT_FLAG_FIN_FWD, CT_FLAG_FIN_REPLY, CT_FLAG_INGRESS_SEEN, CT_FLAG_RST,
    };
    assert_eq!(
        conn.1.flags & (CT_FLAG_INGRESS_SEEN | CT_FLAG_EGRESS_SEEN),
        CT_FLAG_INGRESS_SEEN | CT_FLAG_EGRESS_SEEN,
        "both directions' policies saw the connection"
    );
    // The exchange ended with a FIN each way: the entry now lives only the close lifetime.
    assert_eq!(
        conn.1.flags & (CT_FLAG_FIN_FWD | CT_FLAG_FIN_REPLY | CT_FLAG_RST),
        CT_FLAG_FIN_FWD | CT_FLAG_FIN_REPLY,
        "the close was seen both ways: {conn:?}"
    );
    assert!(
        conn.1.packets > 10,
        "established and reply packets are counted: {conn:?}"
    );
    assert!(
        counter(&dp, EP_B, Egress, Verdict::Allowed) > 10,
        "b's replies passed"
    );
}

/// (c) A deny wins over an allow: a deny in the any-identity lookup beats an
/// identity-specific allow, and an identity-specific deny beats an any-identity allow.
#[test]
fn deny_wins_over_allow() {
    let Some(lab) = lab_or_skip("deny") else {
        return;
    };
    let _b = tcp_echo(&lab.ns_b, &[80, 81, 82]);
    let (mut dp, ifa, ifb) = lab.datapath();
    endpoints(&mut dp, ifa, ifb);
    allow(&mut dp, PolicyKey::any(EP_A, Egress, 0), 11);
    allow(&mut dp, PolicyKey::port(EP_B, Ingress, ID_A, TCP, 80), 21);
    assert!(tcp_probe(&lab.ns_a, B_IP, 80), "allowed before the deny");

    let deny_any = PolicyKey::proto(EP_B, Ingress, 0, TCP);
    deny(&mut dp, deny_any, 31);
    assert!(
        !tcp_probe(&lab.ns_a, B_IP, 80),
        "identity-0 deny beats the identity-specific allow"
    );
    assert!(counter(&dp, EP_B, Ingress, Verdict::Denied) > 0);
    let exact = PolicyKey::port(EP_B, Ingress, ID_A, TCP, 80);
    assert_eq!(
        dp.policy_get(&exact).expect("read"),
        Some(PolicyValue::allow(21))
    );
    assert_eq!(
        dp.policy_get(&deny_any).expect("read"),
        Some(PolicyValue::deny(31))
    );

    assert!(
        dp.policy_remove(&deny_any).expect("remove"),
        "the deny was there"
    );
    assert!(
        !dp.policy_remove(&deny_any).expect("remove"),
        "removing twice reports absence"
    );
    assert_eq!(
        dp.policy_get(&deny_any).expect("read"),
        None,
        "read after removal"
    );
    allow(&mut dp, PolicyKey::any(EP_B, Ingress, 0), 41);
    deny(&mut dp, PolicyKey::port(EP_B, Ingress, ID_A, TCP, 81), 51);
    assert!(tcp_probe(&lab.ns_a, B_IP, 80), "identity-specific allow");
    assert!(
        !tcp_probe(&lab.ns_a, B_IP, 81),
        "identity-specific deny beats the allow-all"
    );
    assert!(tcp_probe(&lab.ns_a, B_IP, 82), "allow-all for the rest");
}

/// (d) A port range stored as masked prefixes: 8000-8100 allowed, 7999 and 8101 not.
#[test]
fn port_range_prefixes_enforce_the_range() {
    let Some(lab) = lab_or_skip("range") else {
        return;
    };
    let _b = tcp_echo(&lab.ns_b, &[7999, 8000, 8063, 8064, 8100, 8101]);
    let (mut dp, ifa, ifb) = lab.datapath();
    endpoints(&mut dp, ifa, ifb);
    allow(&mut dp, PolicyKey::any(EP_A, Egress, 0), 11);
    let keys = PolicyKey::port_range(EP_B, Ingress, ID_A, TCP, 8000, 8100);
    assert_eq!(keys.len(), 4);
    for key in keys {
        allow(&mut dp, key, 61);
    }
    for port in [8000, 8063, 8064, 8100] {
        assert!(
            tcp_probe(&lab.ns_a, B_IP, port),
            "port {port} is inside 8000-8100"
        );
    }
    for port in [7999, 8101] {
        assert!(
            !tcp_probe(&lab.ns_a, B_IP, port),
            "port {port} is outside 8000-8100"
        );
    }
}

/// (e) UDP and ICMP echo: requests allowed by policy get their replies through conntrack.
#[test]
fn udp_and_icmp_requests_get_replies() {
    let Some(lab) = lab_or_skip("udp") else {
        return;
    };
    let _b = udp_echo(&lab.ns_b, &[5353, 5354]);
    let (mut dp, ifa, ifb) = lab.datapath();
    endpoints(&mut dp, ifa, ifb);
    allow(&mut dp, PolicyKey::port(EP_A, Egress, ID_B, UDP, 5353), 1);
    allow(&mut dp, PolicyKey::port(EP_B, Ingress, 0, UDP, 5353), 2);
    allow(&mut dp, PolicyKey::port(EP_B, Ingress, 0, UDP, 5354), 3);
    allow(&mut dp, PolicyKey::port(EP_A, Egress, 0, ICMP, 8), 4);

    assert!(udp_probe(&lab.ns_a, B_IP, 5353), "UDP request and reply");
    assert!(
        !udp_probe(&lab.ns_a, B_IP, 5354),
        "a's egress does not allow UDP/5354"
    );
    assert!(
        !icmp_probe(&lab.ns_a, B_IP),
        "b's ingress has no ICMP entry yet"
    );
    allow(&mut dp, PolicyKey::port(EP_B, Ingress, ID_A, ICMP, 8), 5);
    assert!(
        icmp_probe(&lab.ns_a, B_IP),
        "echo request allowed, echo reply through conntrack"
    );
}

/// (f) Verdict events, read from the pinned ring buffer by this process while another
/// process (a child "agent") loaded the programs and owns the maps.
#[test]
fn events_are_read_from_the_pinned_ring_buffer() {
    let Some(mut lab) = lab_or_skip("events") else {
        return;
    };
    let _b = tcp_echo(&lab.ns_b, &[80, 81, 82]);
    lab.spawn_agent();
    let mut reader = EventReader::open(&lab.node).unwrap_or_else(|e| panic!("{e:#}"));
    let _ = reader.drain();

    // An allowed connection: one event per direction, none for established or reply packets.
    assert!(tcp_exchange(&lab.ns_a, B_IP, 80, 64 * 1024));
    let events = collect_events(&mut reader, Duration::from_millis(500), |_| false);
    let allowed: Vec<_> = events
        .iter()
        .filter(|e| e.dport() == 80 || e.sport() == 80)
        .collect();
    assert_eq!(
        allowed.len(),
        2,
        "exactly the two new-connection events: {allowed:#?}"
    );
    for e in &allowed {
        assert_eq!(e.verdict(), Some(Verdict::Allowed));
        assert_eq!(
            (e.saddr(), e.daddr(), e.dport(), e.proto()),
            (A_IP.into(), B_IP.into(), 80, TCP)
        );
        assert_eq!((e.src_identity(), e.dst_identity()), (ID_A, ID_B));
    }
    assert!(
        allowed
            .iter()
            .any(|e| e.ep_id() == EP_A && e.direction() == Egress && e.rule_id() == 11)
    );
    assert!(
        allowed
            .iter()
            .any(|e| e.ep_id() == EP_B && e.direction() == Ingress && e.rule_id() == 21)
    );

    // Default deny at b's ingress.
    assert!(!tcp_probe(&lab.ns_a, B_IP, 81));
    let drop = first_event(&mut reader, Verdict::DefaultDeny);
    assert_eq!(
        (drop.ep_id(), drop.direction(), drop.rule_id()),
        (EP_B, Ingress, 0)
    );
    assert_eq!(
        (
            drop.src_identity(),
            drop.dst_identity(),
            drop.remote_identity()
        ),
        (ID_A, ID_B, ID_A)
    );
    assert_eq!(
        (drop.saddr(), drop.daddr(), drop.dport(), drop.proto()),
        (A_IP.into(), B_IP.into(), 81, TCP)
    );

    // A deny added through the pinned maps (a third handle, no programs loaded).
    let mut maps = NodeMaps::open_pinned(&lab.node).unwrap_or_else(|e| panic!("{e:#}"));
    deny(&mut maps, PolicyKey::port(EP_B, Ingress, ID_A, TCP, 82), 42);
    assert!(!tcp_probe(&lab.ns_a, B_IP, 82));
    let denied = first_event(&mut reader, Verdict::Denied);
    assert_eq!(
        (denied.ep_id(), denied.direction(), denied.rule_id()),
        (EP_B, Ingress, 42)
    );
    assert_eq!(
        (denied.src_identity(), denied.dst_identity(), denied.dport()),
        (ID_A, ID_B, 82)
    );
    assert!(denied.to_string().contains("denied rule 42"), "{denied}");
}

/// Datagrams from pod a to `ports` of pod b (default deny there), without waiting for replies.
fn udp_burst(ns: &str, ports: std::ops::Range<u16>) {
    in_ns(ns, || {
        let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
        for p in ports {
            sock.send_to(b"x", (B_IP, p)).expect("send");
        }
    });
}

/// The UDP events whose destination port is in `range`, by port.
fn udp_ports(events: &[VerdictEvent], range: std::ops::Range<u16>) -> Vec<u16> {
    let mut ports: Vec<u16> = events
        .iter()
        .filter(|e| e.proto() == UDP && range.contains(&e.dport()))
        .map(VerdictEvent::dport)
        .collect();
    ports.sort_unstable();
    ports
}

/// `ward observe` twice on one node: each observer sees exactly the events that happened
/// while it was open, nothing an earlier observer left unread or that happened while nobody
/// read (aya 0.13's ring reader replayed stale records forever once an earlier reader had
/// consumed some), and `--seconds` holds under a flood that never lets the ring run dry.
#[test]
fn observers_one_after_another_see_only_their_own_events() {
    let Some(mut lab) = lab_or_skip("observers") else {
        return;
    };
    lab.spawn_agent();
    let all = 7000..7300;

    let mut first = EventReader::open(&lab.node).unwrap_or_else(|e| panic!("{e:#}"));
    udp_burst(&lab.ns_a, 7000..7005);
    let seen = collect_events(&mut first, Duration::from_millis(700), |_| false);
    let mine = udp_ports(&seen, all.clone());
    assert!(!mine.is_empty(), "the first observer sees its events");
    let per_datagram = mine.len() / 5;
    let expected = |ports: std::ops::Range<u16>| -> Vec<u16> {
        ports
            .flat_map(|p| std::iter::repeat_n(p, per_datagram))
            .collect()
    };
    assert_eq!(mine, expected(7000..7005), "first observer: {seen:#?}");
    // Left unread by the first observer, then sent while nobody reads.
    udp_burst(&lab.ns_a, 7100..7105);
    thread::sleep(Duration::from_millis(100));
    drop(first);
    udp_burst(&lab.ns_a, 7150..7155);
    thread::sleep(Duration::from_millis(100));

    let mut second = EventReader::open(&lab.node).unwrap_or_else(|e| panic!("{e:#}"));
    udp_burst(&lab.ns_a, 7200..7205);
    let seen = collect_events(&mut second, Duration::from_millis(700), |_| false);
    assert_eq!(
        udp_ports(&seen, all.clone()),
        expected(7200..7205),
        "the second observer sees its own events, each once, and nothing older: {seen:#?}"
    );
    drop(second);

    // A flood from a thread in pod a while `ward observe --seconds 1` runs.
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let (stop, ns) = (stop.clone(), lab.ns_a.clone());
        thread::spawn(move || {
            in_ns(&ns, || {
                let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
                let mut sent = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    for p in 9000..9100 {
                        let _ = sock.send_to(b"x", (B_IP, p));
                        sent += 1;
                    }
                }
                sent
            })
        })
    };
    thread::sleep(Duration::from_millis(200));
    let opts = ward_datapath::agent::observe::ObserveOptions {
        nodes: vec![lab.node.clone()],
        duration: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    let started = Instant::now();
    let mut out = Vec::new();
    let shown =
        ward_datapath::agent::observe::run(&opts, &mut out).unwrap_or_else(|e| panic!("{e:#}"));
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let sent = flood.join().expect("flood thread");
    assert!(
        took < Duration::from_secs(3),
        "--seconds 1 took {took:?} under a flood ({sent} datagrams sent, {shown} events shown)"
    );
    assert!(
        shown > 50,
        "the flood was observed: {shown} events of {sent} datagrams"
    );
    let text = String::from_utf8(out).expect("UTF-8");
    // The destination port of a UDP event line (`... -> 10.0.0.2:7001/UDP ...`); an IPv6
    // source address may hold ":70" too, so the port is read, not searched for.
    let udp_port = |l: &str| -> Option<u16> {
        l.split_whitespace()
            .find_map(|w| w.strip_suffix("/UDP"))
            .and_then(|w| w.rsplit(':').next())
            .and_then(|p| p.parse().ok())
    };
    let stale = text
        .lines()
        .find(|l| udp_port(l).is_some_and(|p| all.contains(&p)));
    assert!(
        stale.is_none(),
        "events from before the observer started: {}",
        stale.unwrap_or_default()
    );
    assert!(
        text.lines()
            .filter_map(udp_port)
            .any(|p| (9000..9100).contains(&p)),
        "the flood's own events are read as UDP ports: {}",
        text.lines().next().unwrap_or_default()
    );
}

/// (g) Enforcement outlives the agent: after the loading process is SIGKILLed the filters
/// and pinned maps keep enforcing; a restarted agent finds its maps filled, re-attaches
/// with exactly one filter per hook, and dropping its handles changes nothing.
#[test]
fn enforcement_survives_agent_kill_and_restart() {
    let Some(mut lab) = lab_or_skip("restart") else {
        return;
    };
    let _b = tcp_echo(&lab.ns_b, &[80, 81]);
    lab.spawn_agent();
    assert!(
        tcp_probe(&lab.ns_a, B_IP, 80),
        "allowed while the agent runs"
    );
    lab.kill_agent();

    assert!(
        tcp_probe(&lab.ns_a, B_IP, 80),
        "still allowed after SIGKILL"
    );
    assert!(
        !tcp_probe(&lab.ns_a, B_IP, 81),
        "still enforcing after SIGKILL"
    );

    let before = lab.all_filters();

    // Restart: the maps come back with their contents.
    let mut dp = NodeDatapath::open(&lab.node).unwrap_or_else(|e| panic!("reopen: {e:#}"));
    let policy = dp.policy_entries().expect("policy");
    assert!(
        policy
            .iter()
            .any(|(k, v)| *k == PolicyKey::port(EP_B, Ingress, ID_A, TCP, 80) && v.rule_id() == 21),
        "pinned policy survived: {policy:?}"
    );
    let eps = dp.endpoints().expect("endpoints");
    assert_eq!(eps.len(), 2);
    let ifa = dp
        .attach(&lab.node_netns(), "ha")
        .unwrap_or_else(|e| panic!("{e:#}"));
    let ifb = dp
        .attach(&lab.node_netns(), "hb")
        .unwrap_or_else(|e| panic!("{e:#}"));
    let mut keys: Vec<u32> = eps.iter().map(|(k, _)| *k).collect();
    keys.sort_unstable();
    let mut attached = vec![ifa, ifb];
    attached.sort_unstable();
    assert_eq!(
        keys, attached,
        "attach reports the ifindexes the endpoints are keyed by"
    );
    for dev in ["ha", "hb"] {
        let ingress = lab.filters(dev, "ingress");
        let egress = lab.filters(dev, "egress");
        assert!(
            ingress.len() == 1 && ingress[0].contains("from_pod"),
            "{dev} ingress: {ingress:?}"
        );
        assert!(
            egress.len() == 1 && egress[0].contains("to_pod"),
            "{dev} egress: {egress:?}"
        );
    }
    let after = lab.all_filters();
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(
            old.len(),
            1,
            "one ward filter per hook before the restart: {old:?}"
        );
        assert_ne!(
            prog_id(&old[0]),
            prog_id(&new[0]),
            "the restarted agent's program replaced the old one in the same filter"
        );
    }
    assert!(tcp_probe(&lab.ns_a, B_IP, 80), "allowed after re-attach");
    let sizes = dp.sizes().expect("sizes");
    let policy_entries: u64 = sizes
        .iter()
        .filter(|s| s.name == "ward_policy" || s.name == "ward_policy_exact")
        .map(|s| s.entries)
        .sum();
    assert_eq!(
        policy_entries, 2,
        "both policy entries survive (trie + exact map): {sizes:?}"
    );

    drop(dp);
    assert!(
        tcp_probe(&lab.ns_a, B_IP, 80),
        "allowed after dropping the handles"
    );
    assert!(
        !tcp_probe(&lab.ns_a, B_IP, 81),
        "enforcing after dropping the handles"
    );
}

/// The verifier abandons a load with EAGAIN when a signal is pending for the loading thread
/// (a test binary's load failed so in CI): `open` holds the thread's signals while it loads
/// and tries again on EAGAIN, instead of failing the agent's start. Here a signal reaches
/// the loading thread every 200 µs, more often than one program's verification takes, and
/// twenty opens must all succeed (before the fix, the first one failed).
#[test]
fn loads_while_signals_arrive() {
    use nix::sys::pthread::{pthread_kill, pthread_self};
    use nix::sys::signal::Signal;

    if let Some(reason) = ward_testkit::bpf_missing() {
        ward_testkit::skip("bpf_datapath signals", &reason);
        return;
    }
    // A handler, so the signal is pending (an ignored one is discarded when sent).
    let arrived = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&arrived))
        .unwrap_or_else(|e| panic!("SIGUSR1 handler: {e}"));

    struct Pins(String);
    impl Drop for Pins {
        fn drop(&mut self) {
            let _ = ward_datapath::bpf::remove_pins(&self.0);
        }
    }
    let pins = Pins(format!("wbt{}-signals", std::process::id()));
    let loader = pthread_self();
    let stop = Arc::new(AtomicBool::new(false));
    let storm = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                pthread_kill(loader, Signal::SIGUSR1).unwrap_or_else(|e| panic!("kill: {e}"));
                sent += 1;
                thread::sleep(Duration::from_micros(200));
            }
            sent
        })
    };
    let opened = (0..20)
        .map(|i| NodeDatapath::open(&pins.0).map_err(|e| format!("open {i}: {e:#}")))
        .collect::<Result<Vec<_>, _>>();
    stop.store(true, Ordering::Relaxed);
    let sent = storm
        .join()
        .unwrap_or_else(|_| panic!("the signal thread panicked"));
    assert!(sent > 20, "the loading thread got only {sent} signals");
    assert!(arrived.load(Ordering::Relaxed), "no signal was delivered");
    let opened = opened.unwrap_or_else(|e| panic!("a load failed under signals: {e}"));
    assert_eq!(opened.len(), 20);
}

/// Not a test of its own: the child "agent" process of the tests above (runs only when they
/// start this binary with its environment variables set).
#[test]
fn child_agent_helper() {
    let (Ok(node), Ok(netns)) = (env::var(CHILD_NODE_ENV), env::var(CHILD_NETNS_ENV)) else {
        return;
    };
    let (mut dp, ifa, ifb) = open_and_attach(&node, Path::new(&netns));
    standard_policy(&mut dp, ifa, ifb);
    println!("{CHILD_READY}");
    let _ = std::io::stdout().flush();
    // Killed by the parent; exits on its own when the parent dies first (its end of stdin
    // closes).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
