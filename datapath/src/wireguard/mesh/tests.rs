//! The mesh and its key rotation over fakes of the kernel seam ([`crate::sys::fake`]): no
//! root, no interface, no namespace. The registry is the real one, in a temporary directory
//! all nodes share, as agents on one host share the state directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::sys::fake::{self, FakeNet, FakeWireGuard};
use crate::wireguard::registry::Registry;
use std::sync::Arc;

const UNDERLAY: &str = "eth0";

/// A lab topology with `nodes` of node-1, node-2, node-3 (172.30.0.1N, pods 10.200.N.0/24).
fn topology(nodes: &[u8]) -> Topology {
    let mut yaml = String::from(
        "apiVersion: ward.dev/v1alpha1\nkind: LabTopology\nmetadata: {name: t}\nspec:\n  underlay: 172.30.0.0/24\n  nodes:\n",
    );
    for n in nodes {
        yaml.push_str(&format!(
            "    - {{name: node-{n}, ip: 172.30.0.1{n}, podCIDR: 10.200.{n}.0/24}}\n"
        ));
    }
    yaml.push_str("  world: {name: world, ip: 203.0.113.10}\n  pods: []\n");
    Topology::parse("t.yaml", yaml.as_bytes()).unwrap()
}

fn pod_cidr(n: u8) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(10, 200, n, 0), 24).unwrap()
}

fn on() -> Wanted {
    Wanted::On(MeshConfig {
        underlay: Some(UNDERLAY.to_owned()),
        ..MeshConfig::default()
    })
}

/// Several nodes' meshes sharing one registry.
struct Cluster {
    dir: tempfile::TempDir,
    topology: Topology,
    nodes: BTreeMap<u8, Node>,
}

struct Node {
    mesh: Mesh,
    net: Arc<FakeNet>,
    wg: FakeWireGuard,
    run_dir: PathBuf,
}

impl Cluster {
    fn new(nodes: &[u8]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let topology = topology(nodes);
        let mut out = BTreeMap::new();
        for &n in nodes {
            let (sys, net, wg) = fake::node(UNDERLAY, Ipv4Addr::new(172, 30, 0, 10 + n));
            let home = dir.path().join(format!("node-{n}"));
            let run_dir = home.join("run");
            std::fs::create_dir_all(&run_dir).unwrap();
            let mesh = Mesh::new(
                &format!("node-{n}"),
                sys,
                &home.join("keys"),
                &run_dir,
                Box::new(Registry::new(&dir.path().join("state"))),
            );
            out.insert(
                n,
                Node {
                    mesh,
                    net,
                    wg,
                    run_dir,
                },
            );
        }
        Cluster {
            dir,
            topology,
            nodes: out,
        }
    }

    fn node(&mut self, n: u8) -> &mut Node {
        self.nodes.get_mut(&n).unwrap()
    }

    /// What every agent does when a record changes: reconcile, in node order.
    fn reconcile_all(&mut self) {
        let t = self.topology.clone();
        for node in self.nodes.values_mut() {
            node.mesh.reconcile(&on(), &t);
        }
    }

    /// Everyone up and peered: two rounds, so every node has seen every record.
    fn up(nodes: &[u8]) -> Cluster {
        let mut c = Cluster::new(nodes);
        c.reconcile_all();
        c.reconcile_all();
        for node in c.nodes.values() {
            assert_eq!(node.mesh.error(), None);
        }
        c
    }

    fn registry(&self) -> Registry {
        Registry::new(&self.dir.path().join("state"))
    }

    fn record(&self, n: u8) -> Option<NodeRecord> {
        self.registry().read_all().remove(&format!("node-{n}"))
    }

    fn key(&self, n: u8) -> Key {
        self.record(n).unwrap().public_key.parse().unwrap()
    }

    fn next_key(&self, n: u8) -> Option<Key> {
        self.record(n)
            .unwrap()
            .next_public_key
            .map(|k| k.parse().unwrap())
    }

    fn tick(&mut self, n: u8) {
        let t = self.topology.clone();
        self.node(n).mesh.tick(&t);
    }

    /// Node `n`'s agent restarts: a new mesh on the same seam, where its device still runs.
    fn restart_agent(&mut self, n: u8) {
        let registry = Box::new(self.registry());
        let node = self.node(n);
        let sys = NodeSys {
            net: node.net.clone(),
            wireguard: Arc::new(node.wg.clone()),
        };
        let home = node.run_dir.parent().unwrap().to_path_buf();
        node.wg.state().log.clear();
        node.mesh = Mesh::new(
            &format!("node-{n}"),
            sys,
            &home.join("keys"),
            &node.run_dir,
            registry,
        );
    }

    fn request_rotation(&mut self, n: u8) {
        let node = self.node(n);
        std::fs::write(node.run_dir.join(ROTATE_REQUEST), b"").unwrap();
    }
}

impl Node {
    fn interface_key(&self) -> Key {
        self.wg.device().expect("an interface").public_key
    }

    fn switched(&self) -> bool {
        self.wg.state().log.iter().any(|l| l.starts_with("set key"))
    }

    fn last_rotation(&self) -> serde_json::Value {
        self.mesh.status()["lastRotation"].clone()
    }
}

#[test]
fn up_peers_every_node_and_tunnels_its_pods() {
    let c = Cluster::up(&[1, 2]);
    let n1 = &c.nodes[&1];
    assert_eq!(n1.wg.peer_keys(), [c.key(2)]);
    let dev = n1.wg.device().unwrap();
    assert_eq!(
        (dev.ifname.as_str(), dev.port, dev.mtu),
        (IFNAME, 51871, 1500 - 80)
    );
    assert_eq!(
        n1.net.routes_to(pod_cidr(2)),
        [
            (0, RouteTarget::Dev(IFNAME.to_owned())),
            (4096, RouteTarget::Unreachable)
        ]
    );
    // The peer's allowed IPs: its node address, then its pods.
    let peer = &dev.peers[0];
    assert_eq!(
        peer.allowed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["172.30.0.12/32", "10.200.2.0/24"]
    );
    assert_eq!(peer.endpoint, "172.30.0.12:51871".parse().unwrap());
}

#[test]
fn rotation_announces_waits_for_the_peer_switches_and_drops_the_old_key() {
    let mut c = Cluster::up(&[1, 2]);
    let old = c.key(1);

    // Announce: the next key is published; the interface keeps the old one.
    c.request_rotation(1);
    c.tick(1);
    let next = c.next_key(1).expect("the next key is announced");
    assert_ne!(next, old);
    assert_eq!(c.key(1), old);
    assert_eq!(c.nodes[&1].interface_key(), old);
    assert!(!c.nodes[&1].run_dir.join(ROTATE_REQUEST).exists());
    // No peer has confirmed: ticking does not switch.
    c.tick(1);
    assert!(!c.nodes[&1].switched());

    // Confirm: node-2 adds a second peer for node-1's next key, after the current one, and
    // says so in its record.
    c.reconcile_all();
    assert_eq!(c.nodes[&2].wg.peer_keys(), [old.clone(), next.clone()]);
    assert_eq!(
        c.record(2).unwrap().prepared.get("node-1"),
        Some(&next.to_string())
    );

    // Switch: node-1 takes the next key, publishes it, starts the handshakes at once.
    c.tick(1);
    let n1 = &c.nodes[&1];
    assert_eq!(n1.interface_key(), next);
    assert_eq!(c.key(1), next);
    assert_eq!(c.next_key(1), None);
    assert_eq!(c.record(1).unwrap().rotations, 1);
    assert_eq!(
        n1.wg.device().unwrap().handshakes,
        [vec![Ipv4Addr::new(10, 200, 2, 0)]]
    );
    assert_eq!(n1.last_rotation()["confirmedByAllPeers"], true);
    let key_file = std::fs::read(n1.mesh.keys.current_path()).unwrap();
    assert_eq!(key_file.len(), 32);

    // Drop: node-2 removes the peer for the old key and its confirmation.
    c.reconcile_all();
    assert_eq!(c.nodes[&2].wg.peer_keys(), [next]);
    assert!(c.record(2).unwrap().prepared.is_empty());
    // node-1's own peers were never touched by its rotation.
    assert_eq!(c.nodes[&1].wg.peer_keys(), [c.key(2)]);
}

#[test]
fn a_peer_that_never_confirms_holds_the_switch_until_the_wait_is_over() {
    let mut c = Cluster::up(&[1, 2]);
    let old = c.key(1);
    c.node(1).mesh.set_rotation_wait(Duration::from_secs(3600));
    c.request_rotation(1);
    c.tick(1);
    let next = c.next_key(1).unwrap();
    for _ in 0..3 {
        c.tick(1);
    }
    assert!(!c.nodes[&1].switched());
    assert_eq!(c.nodes[&1].interface_key(), old);
    assert_eq!(
        c.nodes[&1].mesh.status()["interface"]["rotationInProgress"],
        true
    );

    // The wait is over: node-1 switches anyway, and says the switch was not confirmed.
    c.node(1).mesh.set_rotation_wait(Duration::ZERO);
    c.tick(1);
    assert_eq!(c.nodes[&1].interface_key(), next);
    assert_eq!(c.key(1), next);
    assert_eq!(c.nodes[&1].last_rotation()["confirmedByAllPeers"], false);

    // When node-2 catches up it goes straight to the new key.
    let t = c.topology.clone();
    c.node(2).mesh.reconcile(&on(), &t);
    assert_eq!(c.nodes[&2].wg.peer_keys(), [next]);
}

#[test]
fn a_peer_that_vanishes_mid_rotation_does_not_hold_it_up() {
    let mut c = Cluster::up(&[1, 2, 3]);
    c.node(1).mesh.set_rotation_wait(Duration::from_secs(3600));
    c.request_rotation(1);
    c.tick(1);
    let next = c.next_key(1).unwrap();
    // node-2 confirms; node-3 never does.
    let t = c.topology.clone();
    c.node(2).mesh.reconcile(&on(), &t);
    c.tick(1);
    assert!(!c.nodes[&1].switched(), "node-3 has not confirmed yet");

    // node-3 goes away: out of the cluster, its record withdrawn.
    c.nodes.remove(&3);
    c.registry().unpublish("node-3").unwrap();
    c.topology = topology(&[1, 2]);
    c.tick(1);
    assert_eq!(c.nodes[&1].interface_key(), next);
    assert_eq!(c.nodes[&1].last_rotation()["confirmedByAllPeers"], true);

    // Its peer and its routes go with the next reconcile.
    c.reconcile_all();
    assert_eq!(c.nodes[&1].wg.peer_keys(), [c.key(2)]);
    assert!(c.nodes[&1].net.routes_to(pod_cidr(3)).is_empty());
    assert_eq!(c.nodes[&2].wg.peer_keys(), [next]);
}

#[test]
fn a_device_error_fails_closed_and_the_next_reconcile_recovers() {
    let mut c = Cluster::up(&[1, 2]);
    c.node(1).wg.state().fail_create = Some("no /dev/net/tun".to_owned());
    // A settings change recreates the interface, which now fails.
    let changed = Wanted::On(MeshConfig {
        underlay: Some(UNDERLAY.to_owned()),
        listen_port: 51999,
        ..MeshConfig::default()
    });
    let t = c.topology.clone();
    c.node(1).mesh.reconcile(&changed, &t);
    let n1 = &c.nodes[&1];
    assert!(n1.mesh.error().unwrap().contains("no /dev/net/tun"));
    assert!(n1.wg.device().is_none(), "the old interface is removed");
    assert!(c.record(1).is_none(), "the record is withdrawn");
    assert_eq!(
        n1.net.routes_to(pod_cidr(2)),
        [
            (0, RouteTarget::Unreachable),
            (4096, RouteTarget::Unreachable)
        ]
    );

    c.node(1).wg.state().fail_create = None;
    c.node(1).mesh.reconcile(&changed, &t);
    let n1 = &c.nodes[&1];
    assert_eq!(n1.mesh.error(), None);
    assert_eq!(n1.wg.device().unwrap().port, 51999);
    assert_eq!(
        n1.net.routes_to(pod_cidr(2))[0],
        (0, RouteTarget::Dev(IFNAME.to_owned()))
    );
}

#[test]
fn a_missing_underlay_is_an_error_that_blocks_cross_node_traffic() {
    let mut c = Cluster::new(&[1, 2]);
    let wanted = Wanted::On(MeshConfig {
        underlay: Some("bond0".to_owned()),
        ..MeshConfig::default()
    });
    let t = c.topology.clone();
    c.node(1).mesh.reconcile(&wanted, &t);
    let n1 = &c.nodes[&1];
    let error = n1.mesh.error().unwrap();
    assert!(error.contains("underlay interface bond0"), "{error}");
    assert!(error.contains("interfaces with addresses: eth0"), "{error}");
    assert_eq!(n1.wg.state().created, 0);
    assert_eq!(
        n1.net.routes_to(pod_cidr(2))[0],
        (0, RouteTarget::Unreachable)
    );
}

#[test]
fn turning_encryption_off_restores_clear_routes_and_withdraws_the_record() {
    let mut c = Cluster::up(&[1, 2]);
    let t = c.topology.clone();
    c.node(1).mesh.reconcile(&Wanted::Off, &t);
    let n1 = &c.nodes[&1];
    assert!(n1.wg.device().is_none());
    assert!(c.record(1).is_none());
    assert_eq!(
        n1.net.routes_to(pod_cidr(2)),
        [(
            0,
            RouteTarget::Via(Ipv4Addr::new(172, 30, 0, 12), NODE_UNDERLAY_IF.to_owned())
        )]
    );
    // Reconciling again changes nothing in the kernel.
    n1.net.take_log();
    c.node(1).mesh.reconcile(&Wanted::Off, &t);
    assert!(c.nodes[&1].net.take_log().is_empty());
}

/// In a cluster, with encryption off, pods of other nodes are reached through the node's
/// address on the underlay when it is reachable there (the lab's layout), else the cluster
/// routes them: the mesh then writes no route (it once blocked the CIDR instead) and removes
/// those it set, leaving the cluster's own in place.
#[test]
fn in_a_cluster_encryption_off_never_blocks_and_leaves_routing_to_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let mesh_on = |sys| {
        let registry = Box::new(Registry::new(&dir.path().join("state")));
        Mesh::new(
            "node-1",
            sys,
            &dir.path().join("keys"),
            dir.path(),
            registry,
        )
        .with_clear_routing(ClearRouting::Cluster)
    };
    let t = topology(&[1, 2]);
    let (sys, net, _wg) = fake::node(UNDERLAY, Ipv4Addr::new(172, 30, 0, 11));
    let mut mesh = mesh_on(sys);
    mesh.reconcile(&Wanted::Off, &t);
    assert_eq!(mesh.error(), None);
    let direct = RouteTarget::Via(Ipv4Addr::new(172, 30, 0, 12), NODE_UNDERLAY_IF.to_owned());
    assert_eq!(
        net.routes_to(pod_cidr(2)),
        [(0, direct)],
        "the lab's layout"
    );

    // A node whose underlay does not reach the other node's address directly.
    let (sys, net, _wg) = fake::node(UNDERLAY, Ipv4Addr::new(172, 30, 0, 11));
    let cni = SysRoute {
        dst: pod_cidr(2),
        target: RouteTarget::Via(Ipv4Addr::new(172, 30, 0, 12), "veth-cni".into()),
        metric: 100,
    };
    net.replace_route(&cni).unwrap();
    let unreachable = || net.state().fail_routes = Some("Network is unreachable".into());
    unreachable();
    let mut mesh = mesh_on(sys);
    mesh.reconcile(&Wanted::Off, &t);
    assert_eq!(mesh.error(), None, "not an error: the cluster routes them");
    assert_eq!(net.routes_to(pod_cidr(2)), [(100, cni.target.clone())]);

    // Encryption on (node-2 has no key yet: its pods are blocked) and off again: no block
    // stays behind.
    net.state().fail_routes = None;
    mesh.reconcile(&on(), &t);
    let blocked = |net: &FakeNet| {
        net.routes_to(pod_cidr(2))
            .iter()
            .any(|(_, r)| *r == RouteTarget::Unreachable)
    };
    assert!(blocked(&net), "blocked while on, without the peer's key");
    mesh.reconcile(&Wanted::Off, &t);
    assert_eq!(mesh.error(), None);
    assert!(!blocked(&net), "{:?}", net.routes_to(pod_cidr(2)));
}

#[test]
fn a_restarted_agent_attaches_to_the_running_device_and_keeps_its_sessions() {
    let mut c = Cluster::up(&[1, 2, 3]);
    let (key2, key3) = (c.key(2), c.key(3));
    assert_eq!(c.nodes[&1].wg.peer_keys(), [key2.clone(), key3]);
    // Node 1's agent stops (its device keeps running) and node 3 leaves meanwhile.
    c.topology = topology(&[1, 2]);
    c.restart_agent(1);
    let t = c.topology.clone();
    c.node(1).mesh.reconcile(&on(), &t);
    let n1 = &c.nodes[&1];
    assert_eq!(n1.mesh.error(), None);
    assert_eq!(n1.wg.state().created, 1, "no second interface");
    let log = n1.wg.state().log.clone();
    assert!(log[0].starts_with("attach cilium_wg0"), "{log:?}");
    // The peer still wanted is neither removed nor added again (its session goes on); the
    // one that left is removed.
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[1].starts_with("remove peer"), "{log:?}");
    assert_eq!(n1.wg.peer_keys(), [key2]);
    assert_eq!(
        n1.net.routes_to(pod_cidr(2))[0],
        (0, RouteTarget::Dev(IFNAME.to_owned()))
    );
}

#[test]
fn a_device_that_dies_is_started_again_with_its_peers_and_routes() {
    let mut c = Cluster::up(&[1, 2]);
    c.node(1).wg.kill_device();
    c.node(1).net.take_log();
    c.tick(1);
    let n1 = &c.nodes[&1];
    assert_eq!(n1.mesh.error(), None);
    assert_eq!(n1.wg.state().created, 2, "a new device");
    assert_eq!(n1.wg.peer_keys(), [c.key(2)]);
    // The kernel removed the routes into the dead interface: they are set again.
    let log = n1.net.take_log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("route replace 10.200.2.0/24") && l.contains(IFNAME)),
        "{log:?}"
    );
    // A tick with the device alive leaves everything alone.
    c.tick(1);
    assert_eq!(c.nodes[&1].wg.state().created, 2);
}

#[test]
fn a_restarted_agent_that_does_not_want_the_device_stops_it() {
    let mut c = Cluster::up(&[1, 2]);
    c.restart_agent(1);
    let t = c.topology.clone();
    c.node(1).mesh.reconcile(&Wanted::Off, &t);
    assert!(c.nodes[&1].wg.device().is_none(), "encryption off: stopped");
    assert_eq!(c.nodes[&1].wg.state().log, ["stop left"]);

    let mut c = Cluster::up(&[1, 2]);
    c.restart_agent(1);
    c.node(1)
        .mesh
        .reconcile(&Wanted::Invalid("bad".to_owned()), &t);
    assert!(c.nodes[&1].wg.device().is_none(), "failed closed: stopped");
}
