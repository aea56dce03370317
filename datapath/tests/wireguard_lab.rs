//! The WireGuard mesh on the lab, as root with real tunnels (ward's userspace device over TUN here): pod
//! traffic between nodes only inside the tunnel, key rotation without loss, nodes joining
//! and leaving, restarts, and every bad input failing closed. Fails rather than skips in
//! must-run mode (`ward_testkit::must_run`) when it cannot run.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod common;

use common::lab::{AgentLab, pcap_lines, privileged, udp_send, udp_server, wait_for};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ward_datapath::lab::in_netns;
use ward_schema::{Limits, assemble, load_file};
use ward_testkit::capture::{Capture, contains_bytes};

const TOPOLOGY: &str = include_str!("../../cluster-config/lab.yaml");
const ECHO_PORT: u16 = 7;
const ON: &str = r#"{"enable-encryption": true, "encryption": {"type": "wireguard", "wireguard": {"enabled": true, "interface": "eth0"}}}"#;

/// Backend accepts UDP/7 from the whole cluster; frontend and the others have no egress rules.
const POLICY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: echo, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress:
    - fromEntities: [cluster]
      toPorts: [{ports: [{port: "7", protocol: UDP}]}]
"#;

/// Writes the echo policy and a CiliumConfig with `spec` (JSON, written as the target holds it,
/// so even specs validation would refuse reach the agents).
fn write_config(lab: &AgentLab, spec: &str) {
    write_policy_and_config(lab, POLICY, spec);
}

/// [`write_config`] with another policy.
fn write_policy_and_config(lab: &AgentLab, policy: &str, spec: &str) {
    let v = assemble(vec![load_file(
        "echo.yaml",
        policy.as_bytes(),
        &Limits::default(),
    )]);
    assert!(v.is_valid(), "{:?}", v.diagnostics);
    lab.write_objects(&v.resources);
    let dir = lab.state.join("objects/CiliumConfig/_cluster");
    std::fs::create_dir_all(&dir).unwrap();
    let object = json!({"apiVersion": "cilium.io/v1.12", "kind": "CiliumConfig", "metadata": {"name": "cilium-config"}, "spec": serde_json::from_str::<Value>(spec).unwrap()});
    std::fs::write(
        dir.join("cilium-config.json.tmp"),
        serde_json::to_vec(&object).unwrap(),
    )
    .unwrap();
    std::fs::rename(
        dir.join("cilium-config.json.tmp"),
        dir.join("cilium-config.json"),
    )
    .unwrap();
}

fn node_ns_name(lab: &AgentLab, node: &str) -> String {
    lab.lab
        .node_netns(node)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn has_interface(lab: &AgentLab, node: &str) -> bool {
    Command::new("ip")
        .args(["-n", &node_ns_name(lab, node), "link", "show", "cilium_wg0"])
        .output()
        .unwrap()
        .status
        .success()
}

fn routes(lab: &AgentLab, node: &str) -> String {
    String::from_utf8(
        Command::new("ip")
            .args(["-n", &node_ns_name(lab, node), "route"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
}

fn public_key(lab: &AgentLab, node: &str) -> Option<String> {
    lab.wg_status(node)
        .pointer("/interface/publicKey")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The public keys `node` has as peers, by peer node.
fn peer_keys(lab: &AgentLab, node: &str) -> BTreeSet<(String, String)> {
    let st = lab.wg_status(node);
    st["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["node"].as_str().unwrap_or("").to_owned(),
                p["publicKey"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Whether every node has exactly every other node's current key as its only peer.
fn meshed(lab: &AgentLab, nodes: &[String]) -> bool {
    nodes.iter().all(|n| {
        let want: Option<BTreeSet<(String, String)>> = nodes
            .iter()
            .filter(|o| *o != n)
            .map(|o| public_key(lab, o).map(|k| (o.clone(), k)))
            .collect();
        want.is_some_and(|w| peer_keys(lab, n) == w)
            && lab.wg_status(n)["interface"]["rotationInProgress"] == json!(false)
    })
}

/// The process of `node`'s userspace WireGuard device, from its agent's status.
fn device_pid(lab: &AgentLab, node: &str) -> u32 {
    let st = lab.wg_status(node);
    let pid = st["interface"]["devicePid"].as_u64();
    u32::try_from(pid.unwrap_or_else(|| panic!("no device pid in {st}"))).unwrap()
}

/// Kills node `a`'s device (process `pid`) with `signal`: its interface goes with it, and
/// nothing passes to node `b`, never in clear: the routes into the tunnel went with the
/// interface and the unreachable routes behind them remain. SIGTERM must end the device too
/// (the agent that started it blocks SIGTERM in its own threads).
fn kill_device_and_check_blocked(
    lab: &AgentLab,
    a: &str,
    b: &str,
    pid: u32,
    signal: nix::sys::signal::Signal,
) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
    wait_for(
        "the interface to go with the device",
        Duration::from_secs(5),
        || !has_interface(lab, a),
    );
    let (echoed, clear, _, _) = marker_probe(lab, a, b, "nodevice");
    assert!(
        !echoed && !clear,
        "without the device nothing may pass (echoed {echoed}, in clear {clear})"
    );
    let r = routes(lab, a);
    assert!(
        r.contains("unreachable") && !r.contains("cilium_wg0"),
        "{r}"
    );
}

/// Captures what node `a` sends or receives that matches `filter`, on its bridge port (the
/// bridge device itself sees only frames for itself), into the lab's `file`.
fn underlay_capture(lab: &AgentLab, a: &str, filter: &str, file: &str) -> Capture {
    let underlay = lab
        .lab
        .underlay_netns()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let port = ward_datapath::lab::names::underlay_port(a);
    Capture::start(Some(&underlay), &port, filter, lab.path(file))
}

fn echo_lab(tag: &str) -> (AgentLab, String, String) {
    echo_lab_with(tag, POLICY)
}

/// [`echo_lab`] with another policy.
fn echo_lab_with(tag: &str, policy: &str) -> (AgentLab, String, String) {
    let mut lab = AgentLab::up(tag, TOPOLOGY);
    write_policy_and_config(&lab, policy, ON);
    let (a, b) = (lab.node_of("shop/frontend"), lab.node_of("shop/backend"));
    lab.start_agent(&a);
    lab.start_agent(&b);
    wait_for("the two nodes to mesh", Duration::from_secs(20), || {
        meshed(&lab, &[a.clone(), b.clone()])
    });
    udp_server(
        &lab.netns("shop/backend"),
        lab.ip("shop/backend"),
        ECHO_PORT,
    );
    (lab, a, b)
}

fn echo(lab: &AgentLab, payload: &[u8]) -> bool {
    udp_send(
        &lab.netns("shop/frontend"),
        lab.ip("shop/backend"),
        ECHO_PORT,
        payload,
        Duration::from_millis(500),
    )
}

fn wait_error(lab: &AgentLab, node: &str, text: &str) {
    wait_for(
        &format!("{node} to report {text:?}"),
        Duration::from_secs(15),
        || {
            lab.wg_status(node)["error"]
                .as_str()
                .is_some_and(|e| e.contains(text))
        },
    );
}

/// Sends marker datagrams frontend → backend while capturing the underlay; (echoed, marker
/// seen in clear, capture lines that are not WireGuard between the two nodes, all lines).
fn marker_probe(lab: &AgentLab, a: &str, b: &str, name: &str) -> (bool, bool, Vec<String>, usize) {
    // Everything between the nodes is picked out when reading.
    let cap = underlay_capture(lab, a, "ip", &format!("{name}.pcap"));
    let marker = format!("WARD-MARKER-{name}-{}", std::process::id());
    let mut echoed = false;
    for _ in 0..5 {
        echoed |= echo(lab, marker.as_bytes());
    }
    let pcap = cap.stop();
    let file = lab.path(&format!("{name}.read.pcap"));
    let t = lab.lab.topology();
    let (ia, ib) = (t.node(a).unwrap().ip, t.node(b).unwrap().ip);
    // Pod traffic in clear would carry pod addresses; the tunnel carries only node addresses.
    // (Multicast group reports the kernel sends when an interface comes up are not between
    // the nodes.)
    let other = pcap_lines(
        &pcap,
        &file,
        &format!(
            "not ip multicast and not (host {ia} and host {ib} and udp src port 51871 and udp dst port 51871)"
        ),
    );
    let all = pcap_lines(&pcap, &file, "").len();
    (echoed, contains_bytes(&pcap, marker.as_bytes()), other, all)
}

#[test]
fn encryption_keeps_pod_traffic_off_the_wire_and_fails_closed() {
    if !privileged("wireguard encryption") {
        return;
    }
    let (mut lab, a, b) = echo_lab("e");

    // On: the datagrams arrive, and the underlay carries only WireGuard between the nodes.
    wait_for(
        "the first echo through the tunnel",
        Duration::from_secs(10),
        || echo(&lab, b"hello"),
    );
    let (echoed, clear, other, all) = marker_probe(&lab, &a, &b, "on");
    assert!(
        echoed,
        "frontend's datagrams must reach backend through the tunnel"
    );
    assert!(!clear, "the marker was seen in clear on the underlay");
    assert!(all > 0, "the capture saw nothing between the nodes");
    assert!(
        other.is_empty(),
        "only UDP 51871 <-> 51871 between nodes, found:\n{}",
        other.join("\n")
    );
    let st = lab.wg_status(&a);
    assert_eq!(st["interface"]["listenPort"], json!(51871));
    assert_eq!(st["interface"]["implementation"], json!("userspace"));
    wait_for(
        "the handshake in the status",
        Duration::from_secs(5),
        || lab.wg_status(&a)["peers"][0]["latestHandshake"].is_f64(),
    );
    let key_file = lab.run_dir(&a).join("cilium_wg0.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let private = std::fs::read(&key_file).unwrap();
    assert_eq!(private.len(), 32);
    let private_b64 =
        defguard_wireguard_rs::key::Key::new(private.clone().try_into().unwrap()).to_string();
    for f in ["wireguard.json", "status.json", "wireguard-device.log"] {
        let text = std::fs::read_to_string(lab.run_dir(&a).join(f)).unwrap();
        assert!(
            !text.contains(&private_b64),
            "the private key leaked into {f}"
        );
    }
    // The device got its key over its control socket (0600), not its command line or
    // environment.
    let socket = lab.run_dir(&a).join("wireguard.sock");
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let pid = device_pid(&lab, &a);
    for f in ["cmdline", "environ"] {
        let bytes = std::fs::read(format!("/proc/{pid}/{f}")).unwrap();
        assert!(
            !contains_bytes(&bytes, &private) && !contains_bytes(&bytes, private_b64.as_bytes()),
            "the private key is in the device's {f}"
        );
    }

    // An agent that dies leaves its device running: the tunnel carries on without it. When
    // the device dies too, its interface goes with it: traffic to the other node is
    // unreachable, never in clear. The restarted agent keeps its key, starts a new device and
    // the tunnel returns.
    let key_before = public_key(&lab, &a).unwrap();
    let device = device_pid(&lab, &a);
    lab.kill_agent(&a);
    assert!(has_interface(&lab, &a), "the device outlives its agent");
    let (echoed, clear, _, _) = marker_probe(&lab, &a, &b, "agentdown");
    assert!(
        echoed && !clear,
        "with the agent down the tunnel carries on (echoed {echoed}, in clear {clear})"
    );
    kill_device_and_check_blocked(&lab, &a, &b, device, nix::sys::signal::Signal::SIGKILL);
    lab.start_agent(&a);
    // The killed agent's status record is still there until the new one writes its own: wait
    // for the record of a new device, not merely for a key.
    wait_for(
        "the restarted agent's interface on a new device",
        Duration::from_secs(10),
        || {
            let st = lab.wg_status(&a);
            public_key(&lab, &a).is_some()
                && st["interface"]["devicePid"]
                    .as_u64()
                    .is_some_and(|p| p != u64::from(device))
        },
    );
    assert_eq!(
        public_key(&lab, &a).unwrap(),
        key_before,
        "a restart must not rotate the key"
    );
    assert_eq!(std::fs::read(&key_file).unwrap(), private);
    assert_eq!(lab.wg_status(&a)["interface"]["rotations"], json!(0));
    wait_for(
        "the tunnel after the restart",
        Duration::from_secs(10),
        || echo(&lab, b"again"),
    );

    // Off in Git: the interface and the records go, the routes are clear again, and the
    // marker crosses the underlay in clear (which is what encryption prevents).
    write_config(&lab, r#"{"enable-encryption": false}"#);
    wait_for(
        "encryption off on both nodes",
        Duration::from_secs(10),
        || {
            [&a, &b]
                .iter()
                .all(|n| lab.wg_status(n)["wanted"] == json!("off") && !has_interface(&lab, n))
        },
    );
    assert!(
        !lab.state
            .join("wireguard")
            .join(format!("{a}.json"))
            .exists()
    );
    let r = routes(&lab, &a);
    assert!(
        !r.contains("unreachable")
            && !r.contains("cilium_wg0")
            && r.contains("via 172.30.0.12 dev eth0"),
        "{r}"
    );
    wait_for("clear echo", Duration::from_secs(5), || {
        echo(&lab, b"clear")
    });
    let (echoed, clear, _, _) = marker_probe(&lab, &a, &b, "off");
    assert!(
        echoed && clear,
        "with encryption off the marker travels in clear (echoed {echoed}, seen {clear})"
    );

    // Asked for but impossible: an unknown type, a missing underlay interface. Nothing is
    // half-configured and nothing leaves in clear.
    for (spec, error) in [
        (
            r#"{"enable-encryption": true, "encryption": {"type": "ipsec"}}"#,
            "\"ipsec\" is not supported",
        ),
        (
            r#"{"enable-encryption": true, "encryption": {"type": "wireguard", "wireguard": {"enabled": true, "interface": "eth9"}}}"#,
            "underlay interface eth9",
        ),
    ] {
        write_config(&lab, spec);
        wait_error(&lab, &a, error);
        wait_error(&lab, &b, error);
        assert!(!has_interface(&lab, &a) && !has_interface(&lab, &b));
        let (echoed, clear, _, _) = marker_probe(&lab, &a, &b, "invalid");
        assert!(
            !echoed && !clear,
            "{error}: nothing may pass (echoed {echoed}, in clear {clear})"
        );
    }

    // Fixed in Git: the mesh comes back by itself.
    write_config(&lab, ON);
    wait_for("the mesh after the fix", Duration::from_secs(15), || {
        meshed(&lab, &[a.clone(), b.clone()])
    });
    wait_for("echo after the fix", Duration::from_secs(10), || {
        echo(&lab, b"fixed")
    });
}

/// One datagram a millisecond or two from frontend to backend and back, each with a sequence
/// number, across rotations of node a, node b, node a, … (10 by default; `WARD_TEST_ROTATIONS`
/// sets another number, `WARD_TEST_AGENT_LOG=info,ward_datapath::sys=debug` shows the
/// datagrams the device drops). A lost datagram is placed on the way there or back by a capture in the
/// backend pod.
#[test]
fn a_stream_loses_nothing_across_key_rotations() {
    if !privileged("wireguard rotation") {
        return;
    }
    let (lab, a, b) = echo_lab("r");
    wait_for("the first echo", Duration::from_secs(10), || {
        echo(&lab, b"warm")
    });
    let stop = Arc::new(AtomicBool::new(false));
    // Per datagram: when it was sent (since `start`), its round trip once echoed, its bytes.
    type Sent = (Duration, Option<Duration>, Vec<u8>);
    let rtts: Arc<Mutex<Vec<Sent>>> = Arc::default();
    // What reaches the backend pod, so a loss can be placed on the way there or back.
    let backend_ns = lab
        .netns("shop/backend")
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let at_backend = Capture::start(
        Some(&backend_ns),
        "eth0",
        "udp port 7",
        lab.path("stream-backend.pcap"),
    );
    let to = (lab.ip("shop/backend"), ECHO_PORT);
    let sock = in_netns(&lab.netns("shop/frontend"), || {
        UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
    })
    .unwrap()
    .unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let start_wall = std::time::SystemTime::now();
    let receiver = {
        let (sock, stop, rtts) = (
            sock.try_clone().unwrap(),
            Arc::clone(&stop),
            Arc::clone(&rtts),
        );
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut quiet_since = None;
            loop {
                match sock.recv(&mut buf) {
                    Ok(16) => {
                        let seq = u64::from_be_bytes(buf[..8].try_into().unwrap()) as usize;
                        let sent = Duration::from_nanos(u64::from_be_bytes(
                            buf[8..16].try_into().unwrap(),
                        ));
                        let mut r = rtts.lock().unwrap();
                        if seq < r.len() {
                            r[seq].1 = Some(start.elapsed().saturating_sub(sent));
                        }
                    }
                    _ if stop.load(Ordering::Relaxed) => {
                        let since = *quiet_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_millis(500) {
                            break;
                        }
                    }
                    _ => {}
                }
            }
        })
    };
    let sender = {
        let (stop, rtts) = (Arc::clone(&stop), Arc::clone(&rtts));
        std::thread::spawn(move || {
            let mut seq: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut msg = seq.to_be_bytes().to_vec();
                let sent = start.elapsed();
                msg.extend_from_slice(&(sent.as_nanos() as u64).to_be_bytes());
                rtts.lock().unwrap().push((sent, None, msg.clone()));
                sock.send_to(&msg, to).unwrap();
                seq += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    // Between rotations the stream runs on an established session: this many datagrams
    // sent after a rotation completed must have come back before the next one starts.
    const STEADY: usize = 300;
    let replies_since = |since: Duration| {
        rtts.lock()
            .unwrap()
            .iter()
            .filter(|r| r.0 >= since && r.1.is_some())
            .count()
    };
    wait_for("the stream to flow", Duration::from_secs(10), || {
        replies_since(Duration::ZERO) >= STEADY
    });
    let agent_bin = env!("CARGO_BIN_EXE_ward-agent");
    let mut rotated = Vec::new();
    let mut windows = Vec::new();
    let n: usize = std::env::var("WARD_TEST_ROTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let order: Vec<&String> = (0..n).map(|i| if i % 2 == 0 { &a } else { &b }).collect();
    for node in order {
        let before = public_key(&lab, node).unwrap();
        let began = start.elapsed();
        let out = Command::new(agent_bin)
            .args(["rotate-key", "--node", node, "--run-dir"])
            .arg(lab.run_dir(node))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rotate-key: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after = public_key(&lab, node).unwrap();
        assert_ne!(before, after, "the public key must change");
        wait_for(
            "every peer to know the new key",
            Duration::from_secs(5),
            || meshed(&lab, &[a.clone(), b.clone()]),
        );
        windows.push(format!("{node} {:?}..{:?}", began, start.elapsed()));
        rotated.push(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned(),
        );
        let meshed_at = start.elapsed();
        wait_for(
            "the stream to flow on the new key",
            Duration::from_secs(10),
            || replies_since(meshed_at) >= STEADY,
        );
    }
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    receiver.join().unwrap();
    let at_backend = at_backend.stop();
    let rtts = rtts.lock().unwrap();
    let lost: Vec<String> = rtts
        .iter()
        .enumerate()
        .filter(|(_, r)| r.1.is_none())
        .map(|(i, r)| {
            format!(
                "#{i} sent at {:?}, {}",
                r.0,
                if contains_bytes(&at_backend, &r.2) {
                    "lost on the way back"
                } else {
                    "never reached the backend"
                }
            )
        })
        .collect();
    let mut got: Vec<Duration> = rtts.iter().filter_map(|r| r.1).collect();
    got.sort();
    let pct = |p: f64| got[((got.len() - 1) as f64 * p) as usize];
    eprintln!(
        "stream: {} datagrams, {} lost, rtt median {:?} p99 {:?} max {:?}; {}",
        rtts.len(),
        lost.len(),
        pct(0.5),
        pct(0.99),
        got.last().unwrap(),
        rotated.join("; ")
    );
    assert!(rtts.len() > 1000, "the stream sent only {}", rtts.len());
    assert!(
        lost.is_empty(),
        "{} datagrams lost across the rotations ({:?}); rotations (node, from rotate-key to meshed): {windows:?}; the stream started at {start_wall:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    assert_eq!(
        lab.wg_status(&a)["interface"]["rotations"],
        json!(n.div_ceil(2))
    );
    assert_eq!(lab.wg_status(&b)["interface"]["rotations"], json!(n / 2));
}

/// Inserts a third node (and a pod on it) into the lab's topology text.
fn with_third_node(text: &str, prefix: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if line.contains(&format!("name: {prefix}n1,")) && line.contains("podCIDR") {
            out.push_str(&format!("    - {{name: {prefix}n2, ip: 172.30.0.13, podCIDR: 10.200.3.0/24, labels: {{zone: c}}}}\n"));
        }
    }
    out.push_str(&format!(
        "    - name: probe\n      namespace: shop\n      labels: {{app: probe}}\n      ip: 10.200.3.30\n      node: {prefix}n2\n"
    ));
    out
}

#[test]
fn nodes_joining_and_leaving_update_every_peer() {
    if !privileged("wireguard membership") {
        return;
    }
    let (mut lab, a, b) = echo_lab("j");
    let prefix = a.trim_end_matches("n0").to_owned();
    let original = std::fs::read_to_string(&lab.topology_path).unwrap();
    let grown = with_third_node(&original, &prefix);
    let topo = ward_datapath::lab::Topology::parse("lab.yaml", grown.as_bytes())
        .unwrap_or_else(|d| panic!("{d:?}\n{grown}"));
    let c = format!("{prefix}n2");
    lab.lab.add_node(&topo, &c).unwrap();
    std::fs::write(&lab.topology_path, &grown).unwrap();
    lab.start_agent(&c);
    let all = [a.clone(), b.clone(), c.clone()];
    wait_for(
        "the third node to mesh with both others",
        Duration::from_secs(10),
        || meshed(&lab, &all),
    );
    let probe = lab.netns("shop/probe");
    wait_for(
        "probe (new node) -> backend through the tunnel",
        Duration::from_secs(10),
        || {
            udp_send(
                &probe,
                lab.ip("shop/backend"),
                ECHO_PORT,
                b"from the new node",
                Duration::from_millis(300),
            )
        },
    );
    assert!(
        routes(&lab, &a).contains("10.200.3.0/24 dev cilium_wg0"),
        "{}",
        routes(&lab, &a)
    );

    // Leaving: the agent stops, the node leaves the topology; every peer drops it at once.
    lab.kill_agent(&c);
    let left = Instant::now();
    std::fs::write(&lab.topology_path, &original).unwrap();
    wait_for(
        "both peers to drop the third node",
        Duration::from_secs(1),
        || {
            [&a, &b].iter().all(|n| {
                !peer_keys(&lab, n).iter().any(|(node, _)| *node == c)
                    && !routes(&lab, n).contains("10.200.3.0/24")
            })
        },
    );
    eprintln!("leave: every peer updated in {:?}", left.elapsed());
    let shrunk = ward_datapath::lab::Topology::parse("lab.yaml", original.as_bytes()).unwrap();
    lab.lab.remove_node(&shrunk, &c).unwrap();
    assert!(meshed(&lab, &[a.clone(), b.clone()]));
    assert!(echo(&lab, b"still fine"));
}

#[test]
fn bad_key_files_fail_closed_and_duplicate_keys_are_refused() {
    if !privileged("wireguard key files") {
        return;
    }
    let mut lab = AgentLab::up("k", TOPOLOGY);
    write_config(&lab, ON);
    let (a, b) = (lab.node_of("shop/frontend"), lab.node_of("shop/backend"));
    udp_server(
        &lab.netns("shop/backend"),
        lab.ip("shop/backend"),
        ECHO_PORT,
    );

    // A corrupt key file: an error, no interface, no record, the other node has no peer, and
    // nothing crosses. The file is left for the operator.
    let run_a = lab.run_dir(&a);
    std::fs::create_dir_all(&run_a).unwrap();
    std::fs::write(run_a.join("cilium_wg0.key"), b"garbage").unwrap();
    lab.start_agent(&a);
    lab.start_agent(&b);
    wait_error(&lab, &a, "is corrupt (7 bytes, a WireGuard key is 32)");
    wait_for("node b's interface", Duration::from_secs(10), || {
        public_key(&lab, &b).is_some()
    });
    assert!(!has_interface(&lab, &a));
    assert!(
        !lab.state
            .join("wireguard")
            .join(format!("{a}.json"))
            .exists()
    );
    assert!(peer_keys(&lab, &b).is_empty());
    let (echoed, clear, _, _) = marker_probe(&lab, &a, &b, "corrupt");
    assert!(!echoed && !clear);
    assert_eq!(
        std::fs::read(run_a.join("cilium_wg0.key")).unwrap(),
        b"garbage"
    );

    // Removing the file fixes it without a restart: a new key, and the mesh forms.
    std::fs::remove_file(run_a.join("cilium_wg0.key")).unwrap();
    wait_for(
        "the mesh after the key file was removed",
        Duration::from_secs(10),
        || meshed(&lab, &[a.clone(), b.clone()]),
    );
    wait_for("echo", Duration::from_secs(10), || echo(&lab, b"ok"));

    // A key directory that cannot be written (a read-only mount: root ignores modes).
    lab.kill_agent(&a);
    let ro = lab.path("ro-keys");
    std::fs::create_dir_all(&ro).unwrap();
    let mount = |args: &[&str]| {
        assert!(
            Command::new("mount").args(args).status().unwrap().success(),
            "mount {args:?}"
        )
    };
    let ro_s = ro.to_str().unwrap();
    mount(&["--bind", ro_s, ro_s]);
    mount(&["-o", "remount,bind,ro", ro_s]);
    lab.start_agent_with(&a, &["--key-dir", ro_s]);
    wait_error(&lab, &a, "cannot write the WireGuard key file");
    assert!(!has_interface(&lab, &a));
    let (echoed, clear, _, _) = marker_probe(&lab, &a, &b, "readonly");
    assert!(!echoed && !clear);
    lab.kill_agent(&a);
    assert!(Command::new("umount").arg(&ro).status().unwrap().success());

    // The same key on two nodes (a copied state directory): refused by both, as Cilium does.
    std::fs::copy(
        lab.run_dir(&b).join("cilium_wg0.key"),
        run_a.join("cilium_wg0.key"),
    )
    .unwrap();
    lab.start_agent(&a);
    wait_error(&lab, &a, "detected duplicate public key");
    wait_error(&lab, &b, "detected duplicate public key");
    assert!(peer_keys(&lab, &a).is_empty() && peer_keys(&lab, &b).is_empty());
    let (echoed, clear, _, _) = marker_probe(&lab, &a, &b, "duplicate");
    assert!(!echoed && !clear);
}

/// The echo policy, and iperf3's TCP port on the backend.
fn iperf_policy() -> String {
    let udp = r#"{port: "7", protocol: UDP}"#;
    POLICY.replace(udp, &format!(r#"{udp}, {{port: "5201", protocol: TCP}}"#))
}

/// `iperf3` inside a pod's namespace.
fn iperf3(lab: &AgentLab, pod: &str) -> Command {
    let ns = lab.netns(pod);
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        &ns.file_name().unwrap().to_string_lossy(),
        "iperf3",
    ]);
    c
}

/// An iperf3 server on the backend pod for one connection, and its address.
fn iperf3_server(lab: &AgentLab) -> (String, std::process::Child) {
    let backend = lab.ip("shop/backend").to_string();
    let server = iperf3(lab, "shop/backend")
        .args(["-s", "-1", "-B", &backend])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 (apt-get install iperf3)");
    std::thread::sleep(Duration::from_millis(300));
    (backend, server)
}

/// One iperf3 TCP connection frontend → backend for 8 s, reported every 0.5 s, while node
/// a's agent is stopped with SIGTERM and started again, then node b's killed with SIGKILL and
/// started again. The devices run on: the connection is never reset and data flows in every
/// interval, the restart windows included.
#[test]
fn agent_restarts_under_an_iperf3_stream_keep_it_flowing() {
    if !privileged("wireguard agent restart") {
        return;
    }
    let (mut lab, a, b) = echo_lab_with("i", &iperf_policy());
    wait_for("the first echo", Duration::from_secs(10), || {
        echo(&lab, b"warm")
    });
    let devices = [device_pid(&lab, &a), device_pid(&lab, &b)];
    let (backend, mut server) = iperf3_server(&lab);
    let start = Instant::now();
    let client = iperf3(&lab, "shop/frontend")
        .args(["-c", &backend, "-t", "8", "-i", "0.5", "-J"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut windows = Vec::new();
    let began = start.elapsed();
    lab.terminate_agent(&a);
    lab.start_agent(&a);
    windows.push(format!("{a} SIGTERM {began:?}..{:?}", start.elapsed()));
    std::thread::sleep(Duration::from_millis(1000));
    let began = start.elapsed();
    lab.kill_agent(&b);
    lab.start_agent(&b);
    windows.push(format!("{b} SIGKILL {began:?}..{:?}", start.elapsed()));
    assert!(
        start.elapsed() < Duration::from_secs(7),
        "the restarts must fall inside the stream: {windows:?}"
    );
    let out = client.wait_with_output().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("iperf3: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "iperf3 failed: {}", doc["error"]);
    assert_eq!(
        doc["start"]["connected"].as_array().map(Vec::len),
        Some(1),
        "one connection"
    );
    let intervals: Vec<f64> = doc["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sum"]["bytes"].as_f64().unwrap())
        .collect();
    eprintln!(
        "restarts {windows:?}; bytes per 0.5 s: {intervals:?}; received {} Mbit/s",
        doc["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e6
    );
    assert!(intervals.len() >= 15, "{intervals:?}");
    assert!(
        intervals.iter().all(|b| *b > 0.0),
        "an interval without data: {intervals:?} (restarts {windows:?})"
    );
    assert_eq!(
        [device_pid(&lab, &a), device_pid(&lab, &b)],
        devices,
        "the restarted agents attach to the devices they left"
    );
}

/// A device killed under a running agent: its interface goes at once and nothing crosses in
/// clear; the agent notices, starts a new device, and the tunnel is back.
#[test]
fn a_killed_device_blocks_traffic_until_its_agent_restarts_it() {
    if !privileged("wireguard device restart") {
        return;
    }
    let (lab, a, b) = echo_lab("d");
    wait_for("the first echo", Duration::from_secs(10), || {
        echo(&lab, b"warm")
    });
    let device = device_pid(&lab, &a);
    // Freeze the agent, so the gap can be looked at before it restarts the device.
    let agent = nix::unistd::Pid::from_raw(lab.agents[&a].id() as i32);
    nix::sys::signal::kill(agent, nix::sys::signal::Signal::SIGSTOP).unwrap();
    kill_device_and_check_blocked(&lab, &a, &b, device, nix::sys::signal::Signal::SIGTERM);
    nix::sys::signal::kill(agent, nix::sys::signal::Signal::SIGCONT).unwrap();
    let back = Instant::now();
    wait_for(
        "the tunnel with a new device",
        Duration::from_secs(10),
        || echo(&lab, b"back"),
    );
    eprintln!("tunnel back {:?} after the agent resumed", back.elapsed());
    wait_for("the status of a new device", Duration::from_secs(5), || {
        device_pid(&lab, &a) != device
    });
    let (echoed, clear, other, _) = marker_probe(&lab, &a, &b, "newdevice");
    assert!(echoed && !clear && other.is_empty(), "{other:?}");
}

/// Bytes and packets the kernel took in on `node`'s tunnel interface: what the device wrote
/// into its TUN.
fn tunnel_rx(lab: &AgentLab, node: &str) -> (u64, u64) {
    let out = Command::new("ip")
        .args([
            "-n",
            &node_ns_name(lab, node),
            "-s",
            "-j",
            "link",
            "show",
            "cilium_wg0",
        ])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rx = &doc[0]["stats64"]["rx"];
    (
        rx["bytes"].as_u64().unwrap(),
        rx["packets"].as_u64().unwrap(),
    )
}

/// The echo lab with iperf3's port open, once an echo crossed the tunnel; `None` (the test
/// says so, and fails in must-run mode) where kernel WireGuard carries the tunnel: `what` is
/// about ward's own device.
fn userspace_stream_lab(tag: &str, what: &str) -> Option<(AgentLab, String, String)> {
    let (lab, a, b) = echo_lab_with(tag, &iperf_policy());
    wait_for("the first echo", Duration::from_secs(10), || {
        echo(&lab, b"warm")
    });
    let implementation = lab.wg_status(&b)["interface"]["implementation"].clone();
    ward_testkit::can_run(
        what,
        (implementation != "userspace")
            .then_some("kernel WireGuard carries the tunnel here, not ward's userspace device"),
    )
    .then_some((lab, a, b))
}

/// A bulk TCP transfer is written into the receiving node's TUN coalesced (TCP segments of one
/// flow as one write of up to 64 KB, as wireguard-go does), not a write per segment: the
/// kernel then handles a few large packets instead of a packet per 1.4 KB. The TUN's receive
/// counters tell: coalesced writes average several kilobytes, one per segment at most the
/// tunnel's MTU (a device that cannot coalesce, as ward's did while its write buffers had no
/// room to grow, fails here).
#[test]
fn a_bulk_stream_reaches_the_pod_through_coalesced_tun_writes() {
    if !privileged("wireguard coalesced writes") {
        return;
    }
    // Kernel WireGuard (where the module exists) counts every segment.
    let Some((lab, _a, b)) = userspace_stream_lab("g", "wireguard coalesced writes") else {
        return;
    };
    let (backend, mut server) = iperf3_server(&lab);
    let before = tunnel_rx(&lab, &b);
    let out = iperf3(&lab, "shop/frontend")
        .args(["-c", &backend, "-n", "64M", "-J"])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        out.status.success(),
        "iperf3: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let after = tunnel_rx(&lab, &b);
    let (bytes, packets) = (after.0 - before.0, after.1 - before.1);
    let average = bytes / packets.max(1);
    eprintln!("{b}'s tunnel took in {bytes} bytes in {packets} writes: {average} bytes each");
    let received =
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["end"]["sum_received"]["bytes"]
            .as_u64()
            .unwrap();
    eprintln!("iperf3 received {received} bytes");
    assert!(
        bytes >= received,
        "the transfer crossed the tunnel: {bytes} bytes for {received}"
    );
    assert!(
        average > 8 * 1420,
        "{average} bytes per TUN write: the device does not coalesce ({packets} writes for {bytes} bytes)"
    );
}

/// A sparse flow beside a bulk stream takes the device's fast lane: while iperf3 streams
/// frontend → backend, echo requests between the same pods leave node a's device marked with
/// DSCP EF, so the receiving device steers them to its fast socket (decrypted at once, not
/// behind the stream's socket buffer), and their answers come back the same way; the stream's
/// own datagrams stay unmarked, in the bulk lane. The underlay shows it: a device without the
/// lanes marks nothing, and one that let the stream into the fast lane would mark its
/// full-size datagrams.
#[test]
fn a_sparse_flow_beside_a_bulk_stream_takes_the_fast_lane() {
    if !privileged("wireguard fast lane") {
        return;
    }
    let Some((lab, a, b)) = userspace_stream_lab("f", "wireguard fast lane") else {
        return;
    };
    // Only what the check needs: short datagrams, and anything marked (a whole stream would
    // be gigabytes).
    let capture = underlay_capture(
        &lab,
        &a,
        "udp port 51871 and (less 200 or ip[1] & 0xfc != 0)",
        "lanes.pcap",
    );
    let (backend, mut server) = iperf3_server(&lab);
    let stream = iperf3(&lab, "shop/frontend")
        .args(["-c", &backend, "-t", "4", "-J"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut answered = 0;
    for i in 0..100u32 {
        // Ten bytes each, so every echo datagram on the underlay has one size: 98 bytes of IP
        // (20 + 8 of UDP, 16 of WireGuard header, 38 of inner packet, 16 of tag).
        answered += usize::from(echo(&lab, format!("sparse {i:03}").as_bytes()));
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = stream.wait_with_output().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let pcap = capture.stop();
    let received =
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["end"]["sum_received"]["bytes"]
            .as_u64()
            .unwrap_or(0);
    assert!(received > 10 << 20, "the stream ran: {received} bytes");
    assert!(
        answered >= 95,
        "{answered} of 100 echoes answered under the stream"
    );
    let t = lab.lab.topology();
    let (ia, ib) = (t.node(&a).unwrap().ip, t.node(&b).unwrap().ip);
    let file = lab.path("lanes-read.pcap");
    let count = |filter: &str| pcap_lines(&pcap, &file, filter).len();
    let marked = "ip[1] & 0xfc == 0xb8";
    let echoes = |from, to, mark: &str| {
        count(&format!(
            "src host {from} and dst host {to} and ip[2:2] == 98 and {mark}"
        ))
    };
    let (requests, answers) = (echoes(ia, ib, marked), echoes(ib, ia, marked));
    let unmarked = echoes(ia, ib, "ip[1] & 0xfc == 0") + echoes(ib, ia, "ip[1] & 0xfc == 0");
    let marked_bulk = count(&format!("{marked} and greater 1000"));
    eprintln!(
        "echo datagrams marked: {requests} a → b, {answers} b → a; unmarked: {unmarked}; full-size marked: {marked_bulk}"
    );
    // An echo's flow shares a bucket of the device's flow table with the stream now and then
    // (1 in 1024 each), which puts it in the bulk lane: a few may cross unmarked.
    assert!(
        requests + 3 >= answered && answers + 3 >= answered && unmarked <= 6,
        "the echoes crossed marked both ways: {requests} requests and {answers} answers marked, {unmarked} unmarked, for {answered} echoes"
    );
    // A retransmission after a timeout may start a quiet flow's next round in the fast lane;
    // a stream in the fast lane would be thousands.
    assert!(
        marked_bulk <= 20,
        "{marked_bulk} full-size datagrams in the fast lane: the stream is not kept out of it"
    );
}
