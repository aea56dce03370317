//! The WireGuard mesh (issue 5's figures), on the lab with real `ward-agent` processes:
//! 1. TCP throughput between two pods on different nodes (iperf3), through the tunnel
//!    (ward's userspace device here: the kernel has no WireGuard) and in clear, in alternating rounds, with
//!    the CPU the whole machine and the agents with their device processes used during each run;
//! 2. latency under load, in the same rounds: a UDP ping-pong between the same two pods (one
//!    request outstanding, 1 ms apart) while an iperf3 stream runs between them; p50, p99,
//!    max and the requests without an answer (100 ms);
//! 3. the time from the start of a key rotation (the new key file written) until every peer
//!    has switched to the new key, with 2, 5 and 10 nodes.
//!
//! Run (root, iperf3 installed): `cargo bench -p ward-datapath --bench wireguard`.
//! `WARD_BENCH_SECONDS` (default 5) and `WARD_BENCH_RUNS` (default 5) set the iperf3 runs
//! and the ping-pongs; `WARD_BENCH_ROTATIONS` (default 7) the rotations per cluster size
//! (0 skips that part).

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::panic,
    reason = "benchmark"
)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use ward_datapath::lab::{Lab, Topology, in_netns};

const ON: &str = r#"{"apiVersion":"cilium.io/v1.12","kind":"CiliumConfig","metadata":{"name":"cilium-config"},"spec":{"enable-encryption":true,"encryption":{"type":"wireguard","wireguard":{"enabled":true,"interface":"eth0"}}}}"#;
const OFF: &str = r#"{"apiVersion":"cilium.io/v1.12","kind":"CiliumConfig","metadata":{"name":"cilium-config"},"spec":{"enable-encryption":false}}"#;

fn topology(nodes: usize, pods: bool) -> String {
    let mut t = String::from(
        "apiVersion: ward.dev/v1alpha1\nkind: LabTopology\nmetadata: {name: wgbench}\nspec:\n  underlay: 172.28.0.0/24\n  nodes:\n",
    );
    for i in 1..=nodes {
        t.push_str(&format!(
            "    - {{name: wgb-n{i}, ip: 172.28.0.{i}, podCIDR: 10.220.{i}.0/24}}\n"
        ));
    }
    t.push_str("  world: {name: world, ip: 198.51.100.98}\n  pods:\n");
    if pods {
        t.push_str("    - {name: client, namespace: b, labels: {app: client}, ip: 10.220.1.10, node: wgb-n1}\n");
        t.push_str("    - {name: server, namespace: b, labels: {app: server}, ip: 10.220.2.10, node: wgb-n2, ports: [{port: 5201}]}\n");
    } else {
        t.push_str("    - {name: idle, namespace: b, labels: {app: idle}, ip: 10.220.1.10, node: wgb-n1}\n");
    }
    t
}

/// A lab with one agent per node, all following one state directory.
struct Cluster {
    lab: Lab,
    dir: tempfile::TempDir,
    agents: BTreeMap<String, Child>,
}

impl Cluster {
    fn up(nodes: usize, pods: bool) -> Cluster {
        let text = topology(nodes, pods);
        let topo =
            Topology::parse("wgbench.yaml", text.as_bytes()).unwrap_or_else(|d| panic!("{d:?}"));
        for n in &topo.nodes {
            let _ = ward_datapath::bpf::remove_pins(&n.name);
        }
        let lab = Lab::up_replacing(&topo).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lab.yaml"), text).unwrap();
        let mut c = Cluster {
            lab,
            dir,
            agents: BTreeMap::new(),
        };
        c.set_config(ON);
        for n in topo.nodes.iter().map(|n| n.name.clone()) {
            let child = Command::new(env!("CARGO_BIN_EXE_ward-agent"))
                .args([
                    "run",
                    "--node",
                    &n,
                    "--resync-seconds",
                    "3600",
                    "--topology",
                ])
                .arg(c.dir.path().join("lab.yaml"))
                .arg("--state")
                .arg(c.dir.path().join("state"))
                .arg("--run-dir")
                .arg(c.run_dir(&n))
                .env("WARD_LOG", "warn")
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            c.agents.insert(n, child);
        }
        c
    }

    fn nodes(&self) -> Vec<String> {
        self.lab
            .topology()
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect()
    }

    fn run_dir(&self, node: &str) -> PathBuf {
        self.dir.path().join(format!("run-{node}"))
    }

    fn set_config(&self, object: &str) {
        let dir = self.dir.path().join("state/objects/CiliumConfig/_cluster");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("c.json.tmp"), object).unwrap();
        std::fs::rename(dir.join("c.json.tmp"), dir.join("cilium-config.json")).unwrap();
    }

    fn status(&self, node: &str) -> Value {
        std::fs::read(self.run_dir(node).join("wireguard.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }

    fn key(&self, node: &str) -> Option<String> {
        self.status(node)
            .pointer("/interface/publicKey")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// Whether every node has exactly the current keys of all others as peers.
    fn meshed(&self) -> bool {
        let nodes = self.nodes();
        let keys: Option<BTreeMap<String, String>> = nodes
            .iter()
            .map(|n| self.key(n).map(|k| (n.clone(), k)))
            .collect();
        let Some(keys) = keys else { return false };
        nodes.iter().all(|n| {
            let st = self.status(n);
            let peers: Vec<(String, String)> = st["peers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    (
                        p["node"].as_str().unwrap_or("").to_owned(),
                        p["publicKey"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect();
            peers.len() == nodes.len() - 1 && peers.iter().all(|(pn, pk)| keys.get(pn) == Some(pk))
        })
    }

    fn wait(&self, what: &str, limit: Duration, cond: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while !cond(self) {
            assert!(start.elapsed() < limit, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// CPU seconds of the agents and their userspace WireGuard devices (their own processes).
    fn agent_cpu(&self) -> f64 {
        let devices: f64 = self
            .nodes()
            .iter()
            .filter_map(|n| self.status(n)["interface"]["devicePid"].as_u64())
            .map(|pid| process_cpu(pid as u32))
            .sum();
        devices
            + self
                .agents
                .values()
                .map(|c| process_cpu(c.id()))
                .sum::<f64>()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.agents.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let nodes = self.nodes();
        let _ = Lab::down(self.lab.name());
        for n in nodes {
            let _ = ward_datapath::bpf::remove_pins(&n);
        }
    }
}

/// CPU seconds a process has used (user + system).
fn process_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().map(|v| v.parse::<f64>().unwrap_or(0.0)).sum()
    });
    ticks / 100.0
}

/// (busy, total) jiffies of the whole machine.
fn machine_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let v: Vec<f64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let idle = v[3] + v[4];
    let total: f64 = v.iter().take(8).sum();
    (total - idle, total)
}

fn netns_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// iperf3 from the client pod to the server pod for `seconds`, JSON output.
fn iperf_client(c: &Cluster, seconds: u32) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &netns_name(&c.lab.pod_netns("b/client"))])
        .args([
            "iperf3",
            "-c",
            &SERVER.to_string(),
            "-J",
            "-t",
            &seconds.to_string(),
        ]);
    cmd
}

/// The server pod's address.
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 220, 2, 10);
/// The ping-pong's UDP port on the server pod.
const ECHO_PORT: u16 = 7;

/// One iperf3 run: (Gbit/s received, machine CPU % of all cores, agents' and devices' CPU %
/// of one core).
fn iperf(c: &Cluster, seconds: u32) -> (f64, f64, f64) {
    let (b0, t0) = machine_cpu();
    let a0 = c.agent_cpu();
    let start = Instant::now();
    let out = iperf_client(c, seconds).output().unwrap();
    let wall = start.elapsed().as_secs_f64();
    let (b1, t1) = machine_cpu();
    let a1 = c.agent_cpu();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("iperf3: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    let gbps = doc["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 gave no result: {doc}"))
        / 1e9;
    (
        gbps,
        100.0 * (b1 - b0) / (t1 - t0),
        100.0 * (a1 - a0) / wall,
    )
}

/// A UDP echo server in the server pod, answering every datagram (a thread, for the bench's
/// life).
fn echo_server(c: &Cluster) {
    let sock = in_netns(&c.lab.pod_netns("b/server"), || {
        UdpSocket::bind((SERVER, ECHO_PORT))
    })
    .unwrap()
    .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], from);
        }
    });
}

/// Round trips of a ping-pong from the client pod to the echo server for `seconds`, with an
/// iperf3 stream running between the same pods: (round trips, requests without an answer).
fn ping_pong_under_load(c: &Cluster, seconds: u32) -> (Vec<Duration>, usize) {
    let sock = in_netns(&c.lab.pod_netns("b/client"), || {
        UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
    })
    .unwrap()
    .unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let to = SocketAddr::from((SERVER, ECHO_PORT));
    let mut load = iperf_client(c, seconds + 1)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (mut rtts, mut lost) = (Vec::new(), 0);
    let start = Instant::now();
    let mut buf = [0u8; 64];
    for seq in 0u64.. {
        if start.elapsed() >= Duration::from_secs(u64::from(seconds)) {
            break;
        }
        let sent = Instant::now();
        sock.send_to(&seq.to_be_bytes(), to).unwrap();
        loop {
            match sock.recv(&mut buf) {
                Ok(8) if buf[..8] == seq.to_be_bytes() => {
                    rtts.push(sent.elapsed());
                    break;
                }
                Ok(_) => {} // a late answer to an earlier request
                Err(_) => {
                    lost += 1;
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = load.wait();
    (rtts, lost)
}

/// p50, p99 and max of `rtts` in milliseconds.
fn percentiles(rtts: &mut [Duration]) -> (f64, f64, f64) {
    rtts.sort();
    let at = |p: f64| rtts[((rtts.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    (at(0.5), at(0.99), at(1.0))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn throughput(seconds: u32, runs: usize) {
    let c = Cluster::up(2, true);
    let mut server = Command::new("ip")
        .args(["netns", "exec", &netns_name(&c.lab.pod_netns("b/server"))])
        .args(["iperf3", "-s", "-B", "10.220.2.10"])
        .stdout(Stdio::null())
        .spawn()
        .expect("iperf3 (apt-get install iperf3)");
    c.wait("the mesh", Duration::from_secs(30), Cluster::meshed);
    echo_server(&c);
    let (mut wg, mut clear) = (Vec::new(), Vec::new());
    let (mut wg_rtt, mut clear_rtt) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        c.set_config(ON);
        c.wait("the mesh", Duration::from_secs(30), Cluster::meshed);
        std::thread::sleep(Duration::from_millis(300));
        wg.push(iperf(&c, seconds));
        wg_rtt.push(ping_pong_under_load(&c, seconds));
        c.set_config(OFF);
        c.wait("encryption off", Duration::from_secs(30), |c| {
            c.nodes()
                .iter()
                .all(|n| c.status(n)["wanted"] == "off" && c.status(n)["interface"].is_null())
        });
        std::thread::sleep(Duration::from_millis(300));
        clear.push(iperf(&c, seconds));
        clear_rtt.push(ping_pong_under_load(&c, seconds));
    }
    let show = |label: &str, runs: &[(f64, f64, f64)]| -> f64 {
        let mut g: Vec<f64> = runs.iter().map(|r| r.0).collect();
        let mut m: Vec<f64> = runs.iter().map(|r| r.1).collect();
        let mut a: Vec<f64> = runs.iter().map(|r| r.2).collect();
        let gm = median(&mut g);
        println!(
            "{label:<28} median {gm:6.3} Gbit/s (min {:.3}, max {:.3}) over {} runs of {seconds} s; machine CPU {:.0}% of all cores, agents {:.0}% of one core",
            g[0],
            g[g.len() - 1],
            g.len(),
            median(&mut m),
            median(&mut a)
        );
        gm
    };
    let w = show("through WireGuard (userspace)", &wg);
    let p = show("in clear (same pods, agents)", &clear);
    println!("ratio WireGuard / clear: {:.1}%", 100.0 * w / p);
    let show_rtt = |label: &str, runs: &[(Vec<Duration>, usize)]| -> f64 {
        let mut p50s = Vec::new();
        let mut p99s = Vec::new();
        let mut maxs = Vec::new();
        for (rtts, _) in runs {
            let (a, b, m) = percentiles(&mut rtts.clone());
            p50s.push(a);
            p99s.push(b);
            maxs.push(m);
        }
        let p99 = median(&mut p99s);
        println!(
            "{label:<28} ping-pong under iperf3 load: p50 {:.3} ms, p99 {p99:.3} ms (runs {:.3}..{:.3}), max {:.3} ms; {} round trips, {} unanswered",
            median(&mut p50s),
            p99s[0],
            p99s[p99s.len() - 1],
            median(&mut maxs),
            runs.iter().map(|r| r.0.len()).sum::<usize>(),
            runs.iter().map(|r| r.1).sum::<usize>()
        );
        p99
    };
    let wp = show_rtt("through WireGuard (userspace)", &wg_rtt);
    let cp = show_rtt("in clear (same pods, agents)", &clear_rtt);
    println!("p99 added by the tunnel under load: {:.3} ms", wp - cp);
    let _ = server.kill();
    let _ = server.wait();
}

fn rotation(nodes: usize, rotations: usize) {
    let c = Cluster::up(nodes, false);
    c.wait("the mesh", Duration::from_secs(60), Cluster::meshed);
    let names = c.nodes();
    let rotating = &names[0];
    let key_file = c.run_dir(rotating).join("cilium_wg0.key");
    let mut took = Vec::new();
    let mut pickup = Vec::new();
    for _ in 0..rotations {
        let old = c.key(rotating).unwrap();
        let asked = SystemTime::now();
        std::fs::write(c.run_dir(rotating).join("rotate-key"), b"").unwrap();
        c.wait(
            "every peer to use the new key",
            Duration::from_secs(30),
            |c| {
                let Some(new) = c.key(rotating).filter(|k| *k != old) else {
                    return false;
                };
                names[1..].iter().all(|n| {
                    let st = c.status(n);
                    let keys: Vec<&str> = st["peers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|p| p["node"] == rotating.as_str())
                        .filter_map(|p| p["publicKey"].as_str())
                        .collect();
                    keys == [new.as_str()]
                })
            },
        );
        let done = SystemTime::now();
        // The rotation starts when the agent writes the new key (the file keeps that time).
        let started = std::fs::metadata(&key_file).unwrap().modified().unwrap();
        took.push(
            done.duration_since(started)
                .unwrap_or_default()
                .as_secs_f64()
                * 1000.0,
        );
        pickup.push(
            started
                .duration_since(asked)
                .unwrap_or_default()
                .as_secs_f64()
                * 1000.0,
        );
        c.wait("the mesh", Duration::from_secs(30), Cluster::meshed);
        std::thread::sleep(Duration::from_millis(200));
    }
    let m = median(&mut took);
    println!(
        "{nodes:>2} nodes: rotation start -> every peer on the new key: median {m:6.1} ms (min {:.1}, max {:.1}) over {} rotations; request picked up after {:.0} ms (median)",
        took[0],
        took[took.len() - 1],
        took.len(),
        median(&mut pickup)
    );
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("wireguard bench: needs root (lab, BPF, TUN); skipped");
        return;
    }
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let seconds = env("WARD_BENCH_SECONDS", 5) as u32;
    let runs = env("WARD_BENCH_RUNS", 5);
    let rotations = env("WARD_BENCH_ROTATIONS", 7);
    println!(
        "machine: {} cores; lab nodes joined by a veth bridge; WireGuard in userspace (ward's device, gotatun's protocol) since the kernel has no module",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    if runs > 0 {
        throughput(seconds, runs);
    }
    for n in [2, 5, 10].into_iter().filter(|_| rotations > 0) {
        rotation(n, rotations);
    }
}
