//! A lab with agents for the datapath tests: `cluster-config/lab.yaml` (or another topology)
//! under a unique lab and node names, the local target's object files written like `ward
//! apply` writes them, `ward-agent` processes, real sockets inside pod namespaces, and a
//! teardown that runs also when the test panics.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use ward_datapath::lab::{Lab, Topology, in_netns, probe};
use ward_schema::{Limits, ResourceSet, assemble, load_file};

/// Whether privileged datapath tests can run here; else says why (a failure in must-run mode).
pub fn privileged(test: &str) -> bool {
    ward_testkit::can_run(test, ward_testkit::bpf_missing().as_deref())
}

/// A lab built from a topology text, with agents; everything goes away on drop.
pub struct AgentLab {
    /// The lab.
    pub lab: Lab,
    /// The topology file the agents read.
    pub topology_path: PathBuf,
    /// The local target's state directory.
    pub state: PathBuf,
    /// Running agents by node.
    pub agents: BTreeMap<String, Child>,
    /// What every node name of this lab starts with, nodes added later included.
    node_prefix: String,
    dir: tempfile::TempDir,
}

impl AgentLab {
    /// Builds `topology` (YAML) after renaming the lab after `tag` and the nodes to short
    /// unique names (pins under /sys/fs/bpf/ward/<node> must not collide between tests).
    pub fn up(tag: &str, topology: &str) -> AgentLab {
        let lab_name = format!("t{}{tag}", std::process::id() % 100_000);
        let mut text = topology.replacen("name: shop", &format!("name: {lab_name}"), 1);
        let parsed =
            Topology::parse("lab.yaml", text.as_bytes()).unwrap_or_else(|d| panic!("{d:?}"));
        // Node names end up in interface names (15 characters at most): short and unique.
        let short = format!("{}{:04}", &tag[..1], std::process::id() % 10_000);
        for (i, n) in parsed.nodes.iter().enumerate() {
            let new = format!("{short}n{i}");
            text = replace_word(&text, &format!("name: {}", n.name), &format!("name: {new}"));
            text = replace_word(&text, &format!("node: {}", n.name), &format!("node: {new}"));
        }
        let topo = Topology::parse("lab.yaml", text.as_bytes())
            .unwrap_or_else(|d| panic!("{d:?}\n{text}"));
        let dir = tempfile::tempdir().unwrap();
        let topology_path = dir.path().join("lab.yaml");
        std::fs::write(&topology_path, &text).unwrap();
        for n in &topo.nodes {
            let _ = std::fs::remove_dir_all(Path::new("/sys/fs/bpf/ward").join(&n.name));
        }
        let lab = Lab::up_replacing(&topo).unwrap();
        let state = dir.path().join(".ward");
        std::fs::create_dir_all(&state).unwrap();
        AgentLab {
            lab,
            topology_path,
            state,
            agents: BTreeMap::new(),
            node_prefix: format!("{short}n"),
            dir,
        }
    }

    /// The node names.
    pub fn nodes(&self) -> Vec<String> {
        self.lab
            .topology()
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect()
    }

    /// The node a pod runs on.
    pub fn node_of(&self, pod: &str) -> String {
        self.lab
            .pod(pod)
            .unwrap_or_else(|| panic!("no pod {pod}"))
            .node
            .clone()
    }

    /// Writes `set`'s policies and CiliumConfig as the local target does (one JSON file per
    /// object) and removes object files no longer in `set`.
    pub fn write_objects(&self, set: &ResourceSet) {
        let root = self.state.join("objects");
        let _ = std::fs::remove_dir_all(&root);
        for r in set.iter().filter(|r| r.key.kind.is_applied()) {
            let ns = r.key.namespace.as_deref().unwrap_or("_cluster");
            let dir = root.join(r.key.kind.as_str()).join(ns);
            std::fs::create_dir_all(&dir).unwrap();
            let tmp = dir.join(format!("{}.json.tmp-x", r.key.name));
            std::fs::write(&tmp, serde_json::to_vec(&r.object).unwrap()).unwrap();
            std::fs::rename(&tmp, dir.join(format!("{}.json", r.key.name))).unwrap();
        }
    }

    /// Starts `ward-agent run` for `node` and waits until it has synced once.
    pub fn start_agent(&mut self, node: &str) {
        self.start_agent_with(node, &[]);
    }

    /// The run directory the tests give `node`'s agent.
    pub fn run_dir(&self, node: &str) -> PathBuf {
        self.dir.path().join(format!("run-{node}"))
    }

    /// A scratch path in the test's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `node`'s WireGuard status (`wireguard.json`), `Null` when not written yet.
    pub fn wg_status(&self, node: &str) -> serde_json::Value {
        std::fs::read(self.run_dir(node).join("wireguard.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Starts `ward-agent run` for `node` with `extra` arguments and waits until it synced.
    pub fn start_agent_with(&mut self, node: &str, extra: &[&str]) {
        let run_dir = self.run_dir(node);
        let _ = std::fs::remove_file(run_dir.join("status.json"));
        let child = Command::new(env!("CARGO_BIN_EXE_ward-agent"))
            .args(["run", "--node", node, "--resync-seconds", "3600"])
            .arg("--topology")
            .arg(&self.topology_path)
            .arg("--state")
            .arg(&self.state)
            .arg("--run-dir")
            .arg(&run_dir)
            .args(extra)
            .env(
                "WARD_LOG",
                std::env::var("WARD_TEST_AGENT_LOG").unwrap_or_else(|_| "info".into()),
            )
            .spawn()
            .unwrap();
        self.agents.insert(node.to_owned(), child);
        wait_for(
            &format!("agent {node} to sync"),
            Duration::from_secs(20),
            || run_dir.join("status.json").exists(),
        );
    }

    /// Starts `ward-agent run --kube` for `node` against the API server of `kubeconfig`, in
    /// the node's namespace, and waits until it synced.
    pub fn start_kube_agent(&mut self, node: &str, kubeconfig: &Path) {
        let run_dir = self.run_dir(node);
        let _ = std::fs::remove_file(run_dir.join("status.json"));
        let child = Command::new(env!("CARGO_BIN_EXE_ward-agent"))
            .args(["run", "--kube", "--node", node, "--resync-seconds", "3600"])
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--netns")
            .arg(self.lab.node_netns(node))
            .arg("--run-dir")
            .arg(&run_dir)
            .env(
                "WARD_LOG",
                std::env::var("WARD_TEST_AGENT_LOG").unwrap_or_else(|_| "info".into()),
            )
            .spawn()
            .unwrap();
        self.agents.insert(node.to_owned(), child);
        wait_for(
            &format!("agent {node} to sync"),
            Duration::from_secs(60),
            || run_dir.join("status.json").exists(),
        );
    }

    /// The agent's last status document.
    pub fn agent_status(&self, node: &str) -> serde_json::Value {
        let p = self
            .dir
            .path()
            .join(format!("run-{node}"))
            .join("status.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    /// Stops `node`'s agent with SIGTERM and waits until it has exited (successfully).
    pub fn terminate_agent(&mut self, node: &str) {
        if let Some(mut c) = self.agents.remove(node) {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
            let status = c.wait().unwrap();
            assert!(status.success(), "agent {node} after SIGTERM: {status}");
        }
    }

    /// Kills `node`'s agent with SIGKILL.
    pub fn kill_agent(&mut self, node: &str) {
        if let Some(mut c) = self.agents.remove(node) {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// The namespace path of a pod (`ns/name`), a node (`node:<name>`) or `world`.
    pub fn netns(&self, who: &str) -> PathBuf {
        if who == "world" {
            self.lab.world_netns()
        } else if let Some(node) = who.strip_prefix("node:") {
            self.lab.node_netns(node)
        } else {
            self.lab.pod_netns(who)
        }
    }

    /// The IPv6 address of a pod, a node or `world` in a dual-stack lab (see [`AgentLab::ip`]).
    pub fn ip6(&self, who: &str) -> std::net::Ipv6Addr {
        let t = self.lab.topology();
        if who == "world" {
            t.world.ipv6[0]
        } else if let Some(node) = who.strip_prefix("node:") {
            t.node(node).unwrap().ipv6.unwrap()
        } else {
            self.lab.pod(who).unwrap().ipv6.unwrap()
        }
    }

    /// The IPv6 address of the world host's IPv4 address `v4` (one of its `addresses`) in a
    /// dual-stack lab.
    pub fn ip6_of(&self, v4: IpAddr) -> IpAddr {
        let w = &self.lab.topology().world;
        let i = w
            .all_addresses()
            .position(|a| IpAddr::V4(a) == v4)
            .unwrap_or_else(|| panic!("{v4} is not an address of world"));
        IpAddr::V6(w.ipv6[i])
    }

    /// The address of a pod, a node (`node:<name>`, its underlay address) or `world`.
    pub fn ip(&self, who: &str) -> Ipv4Addr {
        if who == "world" {
            self.lab.topology().world.ip
        } else if let Some(node) = who.strip_prefix("node:") {
            self.lab.topology().node(node).unwrap().ip
        } else {
            self.lab.pod(who).unwrap().ip
        }
    }
}

impl Drop for AgentLab {
    fn drop(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.agents) {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Err(e) = Lab::down(self.lab.name()) {
            eprintln!("lab cleanup failed: {e:#}");
        }
        // Pinned maps and the agents' run-dir pointers of every node this lab had, also
        // those a test added and removed again.
        for root in ["/sys/fs/bpf/ward", "/run/ward/agent"] {
            for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&self.node_prefix)
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }
}

/// Replaces `from` where it is not followed by a name character (so `node-1` leaves
/// `node-10` alone).
fn replace_word(text: &str, from: &str, to: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let after = rest[at + from.len()..].chars().next();
        out.push_str(&rest[..at]);
        out.push_str(
            if after.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '.') {
                from
            } else {
                to
            },
        );
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

/// Polls `cond` every 20 ms until it holds; panics after `limit` naming `what`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Loads every YAML file under `paths` (relative to the repository) through ward-schema.
pub fn repo_resources(paths: &[&str]) -> ResourceSet {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut reports = Vec::new();
    for p in paths {
        let mut files = Vec::new();
        collect_yaml(&root.join(p), &mut files);
        for f in files {
            reports.push(load_file(
                &f.display().to_string(),
                &std::fs::read(&f).unwrap(),
                &Limits::default(),
            ));
        }
    }
    let v = assemble(reports);
    assert!(v.is_valid(), "{:?}", v.diagnostics);
    v.resources
}

fn collect_yaml(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for e in entries {
            if e.file_name().is_some_and(|n| n != "tests") {
                collect_yaml(&e, out);
            }
        }
    } else if p.extension().is_some_and(|e| e == "yaml") {
        out.push(p.to_owned());
    }
}

/// Listens on TCP `port` in `netns` for the rest of the test; every connection gets the
/// probes' greeting and an echo of what it sends until it closes.
pub fn tcp_server(netns: &Path, ip: impl Into<IpAddr>, port: u16) {
    let ip = ip.into();
    let listener = in_netns(netns, move || TcpListener::bind((ip, port)))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || probe::greet_and_echo(s, None));
        }
    });
}

/// Echoes UDP datagrams on `port` in `netns` (answers DNS queries, as the lab's servers do).
pub fn udp_server(netns: &Path, ip: impl Into<IpAddr>, port: u16) {
    let ip = ip.into();
    let sock = in_netns(netns, move || UdpSocket::bind((ip, port)))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&ward_datapath::lab::dns::respond_or_echo(&buf[..n]), from);
        }
    });
}

/// A TCP connection from `netns` to `to:port` that carried the greeting, or `None` when it
/// could not be made within `timeout`.
pub fn tcp_connect(
    netns: &Path,
    to: impl Into<IpAddr>,
    port: u16,
    timeout: Duration,
) -> Option<TcpStream> {
    probe::connect(netns, None, to, port, timeout).unwrap()
}

/// Whether a UDP datagram from `netns` to `to:port` comes back within `timeout`.
pub fn udp_roundtrip(netns: &Path, to: impl Into<IpAddr>, port: u16, timeout: Duration) -> bool {
    probe::udp(netns, None, to, port, timeout).unwrap()
}

/// Whether an open connection still carries data both ways.
pub fn still_works(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4];
    s.write_all(b"ping").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"ping"
}

/// `tcpdump -r` of pcap bytes (written to `file`) with `filter`: one line per packet.
pub fn pcap_lines(pcap: &[u8], file: &Path, filter: &str) -> Vec<String> {
    std::fs::write(file, pcap).unwrap();
    ward_testkit::capture::pcap_lines(file, filter)
}

/// Sends `payload` by UDP from `netns` to `to:port`; whether the echo came back.
pub fn udp_send(netns: &Path, to: Ipv4Addr, port: u16, payload: &[u8], timeout: Duration) -> bool {
    let payload = payload.to_vec();
    in_netns(netns, move || {
        let Ok(s) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(timeout));
        if s.send_to(&payload, (to, port)).is_err() {
            return false;
        }
        let mut buf = [0u8; 1500];
        matches!(s.recv_from(&mut buf), Ok((n, _)) if buf[..n] == payload[..])
    })
    .unwrap()
}
