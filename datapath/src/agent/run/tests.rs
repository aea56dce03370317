//! The agent's sync loop over fakes: a fake BPF datapath ([`FakeDatapath`]: attachments and
//! map entries in memory, every write logged) and the fake kernel seam
//! ([`crate::sys::fake`]); the desired state and the topology are real files in a temporary
//! directory, as `ward apply` and `ward lab` write them. No root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::sys::fake::{self, FakeNet, FakeWireGuard};
use crate::sys::{Route, RouteTarget};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use ward_schema::topology::Ipv4Net;
use ward_schema::{Limits, assemble, load_file};

/// Two nodes, three pods (the agent's and the kept repository's unit tests).
pub(crate) const TOPOLOGY: &str = "apiVersion: ward.dev/v1alpha1
kind: LabTopology
metadata: {name: unit}
spec:
  underlay: 172.30.0.0/24
  nodes:
    - {name: node-1, ip: 172.30.0.11, podCIDR: 10.200.1.0/24}
    - {name: node-2, ip: 172.30.0.12, podCIDR: 10.200.2.0/24}
  world: {name: world, ip: 203.0.113.10}
  pods:
    - {name: frontend, namespace: shop, labels: {app: frontend}, ip: 10.200.1.10, node: node-1}
    - {name: admin, namespace: shop, labels: {app: admin}, ip: 10.200.1.30, node: node-1}
    - {name: backend, namespace: shop, labels: {app: backend}, ip: 10.200.2.20, node: node-2}
";

/// frontend may reach backend on TCP 80.
const EGRESS_80: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: frontend-egress, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  egress:
    - toEndpoints: [{matchLabels: {app: backend}}]
      toPorts: [{ports: [{port: \"80\", protocol: TCP}]}]
";

/// The resources of `docs` (YAML documents, one file each), which must be valid.
pub(crate) fn valid_resources(docs: &[&str]) -> ward_schema::ResourceSet {
    let files = docs
        .iter()
        .enumerate()
        .map(|(i, d)| load_file(&format!("{i}.yaml"), d.as_bytes(), &Limits::default()))
        .collect();
    let v = assemble(files);
    assert!(v.is_valid(), "{:?}", v.diagnostics);
    v.resources
}

/// What the fake maps hold and what was done to them.
#[derive(Debug, Default)]
struct DpState {
    /// Interfaces the programs are attached to, with their index.
    attached: BTreeMap<String, u32>,
    /// Interfaces that do not exist (attach fails).
    missing: BTreeSet<String>,
    /// The maps.
    maps: NodeEntries,
    /// Every map write, in order.
    log: Vec<String>,
    /// How many of the next policy writes fail.
    failing_policy_writes: usize,
}

#[derive(Debug, Default, Clone)]
struct FakeDatapath(Arc<Mutex<DpState>>);

impl FakeDatapath {
    fn state(&self) -> MutexGuard<'_, DpState> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut self.state().log)
    }
}

impl Datapath for FakeDatapath {
    fn attach(&mut self, _netns: &Path, ifname: &str) -> Result<u32> {
        let mut s = self.state();
        if s.missing.contains(ifname) {
            bail!("no interface {ifname:?}");
        }
        let next = 100 + u32::try_from(s.attached.len()).unwrap();
        Ok(*s.attached.entry(ifname.to_owned()).or_insert(next))
    }
    fn attach_host(&mut self, netns: &Path, ifname: &str) -> Result<u32> {
        self.attach(netns, ifname)
    }
    fn read_back(&self, ifindex: &BTreeMap<String, u32>) -> Result<NodeEntries> {
        let mut e = self.state().maps.clone();
        e.endpoints.retain(|name, _| ifindex.contains_key(name));
        e.rules.clear();
        Ok(e)
    }
    fn store<'a>(&'a mut self, _ifindex: &'a BTreeMap<String, u32>) -> Box<dyn MapStore + 'a> {
        Box::new(self.clone())
    }
}

impl MapStore for FakeDatapath {
    fn set_endpoint(&mut self, name: &str, e: &EndpointEntry) -> Result<()> {
        let mut s = self.state();
        s.log.push(format!("+ep {name}"));
        s.maps.endpoints.insert(name.to_owned(), e.clone());
        Ok(())
    }
    fn remove_endpoint(&mut self, name: &str, _: &EndpointEntry) -> Result<()> {
        let mut s = self.state();
        s.log.push(format!("-ep {name}"));
        s.maps.endpoints.remove(name);
        Ok(())
    }
    fn set_ipcache(&mut self, prefix: entries::Prefix, identity: u32) -> Result<()> {
        let mut s = self.state();
        s.log.push(format!("+ip {}/{}", prefix.0, prefix.1));
        s.maps.ipcache.insert(prefix, identity);
        Ok(())
    }
    fn remove_ipcache(&mut self, prefix: entries::Prefix) -> Result<()> {
        let mut s = self.state();
        s.log.push(format!("-ip {}/{}", prefix.0, prefix.1));
        s.maps.ipcache.remove(&prefix);
        Ok(())
    }
    fn set_policy(&mut self, key: &PolicyKey, value: &PolicyValue) -> Result<()> {
        let mut s = self.state();
        if s.failing_policy_writes > 0 {
            s.failing_policy_writes -= 1;
            bail!("policy map is full");
        }
        s.log.push(format!("+pol {}", policy_text(key, value)));
        s.maps.policy.insert(*key, *value);
        Ok(())
    }
    fn remove_policy(&mut self, key: &PolicyKey) -> Result<()> {
        let mut s = self.state();
        s.log.push(format!(
            "-pol ep{} {} port {}",
            key.ep,
            if key.egress { "egress" } else { "ingress" },
            key.port
        ));
        s.maps.policy.remove(key);
        Ok(())
    }
    fn set_service(&mut self, slot: entries::ServiceSlot, value: entries::SlotValue) -> Result<()> {
        let mut s = self.state();
        s.log.push(format!("+svc {}:{} {}", slot.0, slot.1, slot.3));
        s.maps.services.insert(slot, value);
        Ok(())
    }
    fn remove_service(&mut self, slot: entries::ServiceSlot) -> Result<()> {
        let mut s = self.state();
        s.log.push(format!("-svc {}:{} {}", slot.0, slot.1, slot.3));
        s.maps.services.remove(&slot);
        Ok(())
    }
}

fn policy_text(k: &PolicyKey, v: &PolicyValue) -> String {
    format!(
        "ep{} {} port {} {}",
        k.ep,
        if k.egress { "egress" } else { "ingress" },
        k.port,
        if v.deny { "deny" } else { "allow" }
    )
}

struct Harness {
    dir: tempfile::TempDir,
    datapath: FakeDatapath,
    net: Arc<FakeNet>,
    wg: FakeWireGuard,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lab.yaml"), TOPOLOGY).unwrap();
        let (_, net, wg) = fake::node("eth0", Ipv4Addr::new(172, 30, 0, 11));
        Harness {
            dir,
            datapath: FakeDatapath::default(),
            net,
            wg,
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn config(&self) -> AgentConfig {
        AgentConfig {
            node: "node-1".to_owned(),
            source: Source::Files {
                topology: self.dir.path().join("lab.yaml"),
                state_dir: self.state_dir(),
            },
            run_dir: self.dir.path().join("run"),
            key_dir: None,
            dns_ttl: Default::default(),
        }
    }

    fn start(&self) -> Result<Agent> {
        let (datapath, net, wg) = (self.datapath.clone(), self.net.clone(), self.wg.clone());
        Agent::start_with(self.config(), move |node, netns| {
            assert_eq!(node, "node-1");
            assert_eq!(netns, Path::new("/run/netns/w-unit.node.node-1"));
            let sys = NodeSys {
                net,
                wireguard: Arc::new(wg),
            };
            Ok((Box::new(datapath) as Box<dyn Datapath + Send>, sys))
        })
    }

    /// Writes the objects of `docs` (YAML documents) as the local target holds them,
    /// replacing what was there.
    fn write_desired(&self, docs: &[&str]) {
        let resources = valid_resources(docs);
        let root = self.state_dir().join("objects");
        let _ = std::fs::remove_dir_all(&root);
        for r in resources.iter().filter(|r| r.key.kind.is_applied()) {
            let ns = r.key.namespace.as_deref().unwrap_or("_cluster");
            let dir = root.join(r.key.kind.as_str()).join(ns);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join(format!("{}.json", r.key.name)),
                serde_json::to_vec(&r.object).unwrap(),
            )
            .unwrap();
        }
    }

    fn write_config(&self, spec: serde_json::Value) {
        let dir = self.state_dir().join("objects/CiliumConfig/_cluster");
        std::fs::create_dir_all(&dir).unwrap();
        let object = serde_json::json!({"apiVersion": "cilium.io/v1.12", "kind": "CiliumConfig", "metadata": {"name": "cilium-config"}, "spec": spec});
        std::fs::write(
            dir.join("cilium-config.json"),
            serde_json::to_vec(&object).unwrap(),
        )
        .unwrap();
    }

    fn status(&self) -> serde_json::Value {
        let text = std::fs::read(self.dir.path().join("run/status.json")).unwrap();
        serde_json::from_slice(&text).unwrap()
    }
}

fn cidr(a: u8, b: u8, c: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(10, a, b, c), len).unwrap()
}

#[test]
fn start_attaches_the_nodes_pods_and_its_host_only() {
    let h = Harness::new();
    let agent = h.start().unwrap();
    let attached: Vec<String> = h.datapath.state().attached.keys().cloned().collect();
    let frontend = names::host_ifname("shop", "frontend");
    let admin = names::host_ifname("shop", "admin");
    let mut want = vec![frontend, admin, names::NODE_UNDERLAY_IF.to_owned()];
    want.sort();
    assert_eq!(attached, want);
    assert_eq!(agent.ifindex.len(), 3);
    assert!(agent.ifindex.contains_key(entries::HOST_ENDPOINT));
    assert!(
        h.datapath.take_log().is_empty(),
        "nothing is written before a sync"
    );
}

#[test]
fn a_missing_pod_interface_at_start_is_an_error_that_names_the_lab() {
    let h = Harness::new();
    h.datapath
        .state()
        .missing
        .insert(names::host_ifname("shop", "admin"));
    let e = format!("{:#}", h.start().err().expect("start fails"));
    assert!(e.contains("pod shop/admin: is the lab up?"), "{e}");
}

#[test]
fn sync_writes_the_desired_state_then_only_what_changed() {
    let h = Harness::new();
    h.write_desired(&[EGRESS_80]);
    let mut agent = h.start().unwrap();

    let first = agent.sync().unwrap();
    let log = h.datapath.take_log();
    assert!(log.contains(&"+ep shop/frontend".to_owned()), "{log:?}");
    assert!(log.contains(&"+ep shop/admin".to_owned()), "{log:?}");
    assert!(
        log.iter().any(|l| l.contains("egress port 80 allow")),
        "{log:?}"
    );
    // Endpoints go in before any policy entry, the ipcache after them all.
    let first_policy = log.iter().position(|l| l.starts_with("+pol")).unwrap();
    let first_ip = log.iter().position(|l| l.starts_with("+ip")).unwrap();
    assert!(
        log[..first_policy].iter().all(|l| l.starts_with("+ep")),
        "{log:?}"
    );
    assert!(
        log[first_policy..first_ip]
            .iter()
            .all(|l| l.starts_with("+pol"))
            && log[first_ip..].iter().all(|l| l.starts_with("+ip")),
        "{log:?}"
    );
    assert_eq!(first.removed, 0);
    assert_eq!(first.written, log.len());
    assert_eq!(h.status()["policyEntries"], agent.current.policy.len());

    // The same revision again: nothing to write.
    let again = agent.sync().unwrap();
    assert!(h.datapath.take_log().is_empty());
    assert_eq!((again.written, again.removed), (0, 0));
    assert_eq!(again.unchanged, first.written);

    // A changed port: the new entry written, the old one removed, after it.
    h.write_desired(&[&EGRESS_80.replace("\"80\"", "\"8080\"")]);
    agent.sync().unwrap();
    let log = h.datapath.take_log();
    let added = log
        .iter()
        .position(|l| l.contains("egress port 8080 allow"));
    let removed = log
        .iter()
        .position(|l| l.starts_with("-pol") && l.contains("port 80"));
    assert!(added.is_some() && removed.is_some(), "{log:?}");
    assert!(added < removed, "make before break: {log:?}");
    assert!(
        log.iter().all(|l| !l.contains("ep ")),
        "endpoints untouched: {log:?}"
    );
}

#[test]
fn a_restarted_agent_reads_the_maps_back_and_rewrites_nothing() {
    let h = Harness::new();
    h.write_desired(&[EGRESS_80]);
    let mut first = h.start().unwrap();
    first.sync().unwrap();
    drop(first);
    h.datapath.take_log();

    let mut second = h.start().unwrap();
    let stats = second.sync().unwrap();
    let log = h.datapath.take_log();
    // The endpoints' addresses are not in the maps; everything else is read back.
    assert!(log.iter().all(|l| l.starts_with("+ep")), "{log:?}");
    assert_eq!(stats.removed, 0);
}

#[test]
fn a_failed_write_keeps_the_last_good_state_and_the_next_sync_retries() {
    let h = Harness::new();
    h.write_desired(&[EGRESS_80]);
    let mut agent = h.start().unwrap();
    h.datapath.state().failing_policy_writes = 1;

    let e = agent.sync().expect_err("the map write fails");
    assert!(format!("{e:#}").contains("policy map is full"));
    assert!(agent.current.policy.is_empty(), "not recorded as written");
    assert!(!h.dir.path().join("run/status.json").exists());
    let before_failure = h.datapath.take_log();
    assert!(
        before_failure.iter().all(|l| !l.starts_with("+pol")),
        "{before_failure:?}"
    );

    // The retry (the next event or the periodic resync) starts again from the last good
    // state: what was written before the failure is written again (idempotent), then the
    // policy entries.
    let stats = agent.sync().unwrap();
    let wanted = agent.current.policy.len();
    assert!(wanted > 0);
    assert_eq!(h.datapath.state().maps.policy.len(), wanted);
    let log = h.datapath.take_log();
    assert_eq!(stats.written, log.len());
    assert_eq!(log[..before_failure.len()], before_failure[..]);
    assert!(h.dir.path().join("run/status.json").exists());
}

#[test]
fn an_apply_in_progress_changes_nothing_until_it_completes() {
    let h = Harness::new();
    h.write_desired(&[EGRESS_80]);
    let mut agent = h.start().unwrap();
    agent.sync().unwrap();
    h.datapath.take_log();

    h.write_desired(&[]);
    std::fs::write(h.state_dir().join("journal.json"), b"{}").unwrap();
    let e = agent.sync().expect_err("a revision in flight is not read");
    assert!(format!("{e:#}").contains("apply is in progress"), "{e:#}");
    assert!(h.datapath.take_log().is_empty());
    assert!(!h.datapath.state().maps.policy.is_empty());

    std::fs::remove_file(h.state_dir().join("journal.json")).unwrap();
    agent.sync().unwrap();
    let log = h.datapath.take_log();
    assert!(log.iter().any(|l| l.starts_with("-pol")), "{log:?}");
}

#[test]
fn a_change_event_syncs_and_a_mesh_event_only_reconciles_the_mesh() {
    let h = Harness::new();
    h.write_desired(&[EGRESS_80]);
    let mut agent = h.start().unwrap();
    agent.sync().unwrap();
    h.datapath.take_log();
    h.net.take_log();

    h.write_desired(&[&EGRESS_80.replace("\"80\"", "\"443\"")]);
    agent.on_change(Change {
        mesh: true,
        ..Change::default()
    });
    assert!(
        h.datapath.take_log().is_empty(),
        "a record change does not resync"
    );

    agent.on_change(Change {
        desired: true,
        ..Change::default()
    });
    let log = h.datapath.take_log();
    assert!(log.iter().any(|l| l.contains("port 443")), "{log:?}");
}

#[test]
fn encryption_in_the_config_brings_the_mesh_up_and_off_again() {
    let h = Harness::new();
    h.write_desired(&[EGRESS_80]);
    h.write_config(serde_json::json!({"enable-encryption": true, "encryption": {"type": "wireguard", "wireguard": {"enabled": true, "interface": "eth0"}}}));
    let mut agent = h.start().unwrap();
    agent.sync().unwrap();
    let dev = h.wg.device().expect("the interface is up");
    assert_eq!(dev.ifname, wireguard::IFNAME);
    // node-2 has published no key yet: its pods are unreachable, never sent in clear.
    assert_eq!(
        h.net.routes_to(cidr(200, 2, 0, 24)),
        [
            (0, RouteTarget::Unreachable),
            (4096, RouteTarget::Unreachable)
        ]
    );
    let wg_status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(h.dir.path().join("run/wireguard.json")).unwrap())
            .unwrap();
    assert_eq!(wg_status["wanted"], "on");

    h.write_config(serde_json::json!({"enable-encryption": false}));
    agent.sync().unwrap();
    assert!(h.wg.device().is_none());
    let clear = Route {
        dst: cidr(200, 2, 0, 24),
        target: RouteTarget::Via(Ipv4Addr::new(172, 30, 0, 12), "eth0".to_owned()),
        metric: 0,
    };
    assert_eq!(
        h.net.routes_to(clear.dst),
        [(clear.metric, clear.target.clone())]
    );
}
