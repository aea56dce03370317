//! `ward test --datapath`: every expectation of a suite sent as real packets through ward's
//! eBPF programs, and compared with the engine.
//!
//! 1. [`placement`] turns the tests' endpoints into a lab topology (addresses, labels,
//!    namespaces, ports and nodes as declared); the lab comes up ([`ward_datapath::lab`]).
//! 2. A `ward-agent` per node (in this process) follows a local target in a temporary
//!    folder. First it holds no policy, and every flow is probed once: a flow the lab does
//!    not carry even then is not trusted as a verdict later. Then the revision's policies
//!    and CIDR groups are applied, the agents sync, conntrack is cleared and every flow is
//!    probed again: a TCP connection and its greeting, a UDP echo, an ICMP or ICMPv6 echo.
//!    Before that, the expectations that carry a DNS query are sent as that query, while the
//!    agents sync: where a pod's egress has `rules.dns`, its agent's DNS proxy answers it
//!    (REFUSED, or the answer of the lab's server, which knows the tests' declared `dns`
//!    answers) and learns the addresses `toFQDNs` rules then allow, as in a cluster.
//! 3. The kernel's answer is compared with the engine's verdict over the lab's cluster (the
//!    same objects the agents resolved, and the DNS answers their proxies learned). Where the
//!    lab's cluster gives a flow another verdict than the tests' cluster (toFQDNs answers a
//!    test declares that no expectation's query taught the proxy, say), the flow is not
//!    probed, and says why.
//!
//! The datapath enforces layer 3/4 and DNS rules: an expectation that carries a DNS query is
//! also compared on it (REFUSED by the agent's proxy, or answered); one that carries an HTTP
//! request is compared on its layer 3/4 verdict. A node (`node:<name>`, its address, or `host`
//! as the other end's node) is sent from or to its own namespace, where its host policy is
//! enforced. A service (`service:<namespace>/<name>`, or its cluster IP) is in the lab too:
//! the probe goes to its cluster IP, the source's program sends it to one backend, and the
//! kernel is compared with the engine's verdict at the backends (not probed when they differ,
//! since the kernel picks one at random). `remote-node` stands for every node but the other
//! end's: the flow is sent from (or to) each of them, and each must agree. Flows with an end
//! the lab cannot hold (`kube-apiserver`, an address inside the lab's ranges that nothing
//! has) are listed as not probed, with the reason.
//!
//! When the tests use IPv6, the lab is dual stack ([`placement`]) and each flow is sent in
//! every address family both ends have (an end's declared addresses decide; an end without
//! any has both; ICMP is IPv4 and ICMPv6 IPv6): each probe must agree, and a flow no family
//! fits is not probed.
//!
//! Unlike the rest of [`crate::testing`], this needs root and builds real namespaces; the lab,
//! the agents' pinned maps and run folders are removed when the run ends, also on an error.

pub mod placement;

use super::Suite;
use super::peer::{PeerRef, WORLD_IPV6};
use super::run::{Status, TestRun, l7_request, resolve_port};
use crate::target::local::LocalTarget;
use crate::target::{ApplyOptions, DesiredObjects, Target};
use anyhow::{Context, Result, anyhow};
use placement::Placement;
use serde::Serialize;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use ward_datapath::agent::run::{Agent, AgentConfig, Source};
use ward_datapath::bpf::NodeMaps;
use ward_datapath::hickory_proto::op::ResponseCode;
use ward_datapath::lab::dns::{Names, Zone};
use ward_datapath::lab::probe::Answered;
use ward_datapath::lab::{Lab, Topology, probe};
use ward_engine::{
    Cluster, DnsAnswer, Flow, Identity, L7Request, L7Verdict, Peer, PolicyRepository, Protocol,
    Verdict,
};
use ward_schema::policytest::TestExpectation;
use ward_schema::topology::PodSpec;
use ward_schema::{Kind, ResourceSet};

/// How long a probe waits for its answer before it counts as dropped.
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);
/// A dropped probe that the engine allows is tried once more with this much patience, so
/// that a slow machine is not reported as a disagreement.
const RETRY_TIMEOUT: Duration = Duration::from_secs(3);
/// How many probes run at once.
const PARALLEL: usize = 32;

/// What `ward test --datapath` found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatapathRun {
    /// The lab, in one line.
    pub lab: String,
    /// One per expectation, in the order of the test run.
    pub checks: Vec<Check>,
}

/// One expectation on the real datapath.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// The PolicyTest.
    pub test: String,
    /// `file:line` of the expectation.
    pub origin: String,
    /// The flow as the test run names it.
    pub flow: String,
    /// Agree, disagree or not probed.
    pub result: Agreement,
    /// The engine's layer 3/4 verdict over the lab's cluster: `allow` or `deny`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<&'static str>,
    /// What the kernel did: `passed` or `dropped`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<&'static str>,
    /// Why it was not probed, or what was compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How the kernel's answer compares with the engine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Agreement {
    /// The kernel did what the engine says.
    Agree,
    /// It did not.
    Disagree,
    /// The flow was not sent (see the note).
    NotProbed,
}

impl DatapathRun {
    /// How many checks have `result`.
    pub fn count(&self, result: Agreement) -> usize {
        self.checks.iter().filter(|c| c.result == result).count()
    }
}

/// The lab as the tests see it, for a caller that wants to act between the sync and the
/// probes (a test corrupting a map entry).
pub struct LabView<'a> {
    /// Where the endpoints run.
    pub placement: &'a Placement,
    /// The lab's topology.
    pub topology: &'a Topology,
}

impl LabView<'_> {
    /// The lab address and node of the endpoint a test names `name` (`name` or `ns/name`).
    pub fn endpoint(&self, name: &str) -> Option<(Ipv4Addr, String)> {
        self.pod(name).map(|pod| (pod.ip, pod.node.clone()))
    }

    /// The lab's pod of the endpoint a test names `name` (`name` or `ns/name`): its
    /// addresses (IPv6 too in a dual-stack lab) and node.
    pub fn pod(&self, name: &str) -> Option<&PodSpec> {
        let full = self
            .placement
            .pods
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .find(|(full, _)| {
                full == name || full.rsplit_once('/').is_some_and(|(_, n)| n == name)
            })?;
        self.topology.pod(&full.0)
    }
}

/// A flow end in the lab, at its address of the probe's family.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// A pod, by `namespace/name`.
    Pod(String, IpAddr),
    /// A node's host endpoint, by its name in the lab.
    Node(String, IpAddr),
    /// The world host.
    World(IpAddr),
    /// A service, by `namespace/name`, at its cluster IP: only a destination, whose packets
    /// the source's program sends to one of its backends.
    Service(String, IpAddr),
}

/// An address family a probe is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    V4,
    V6,
}

impl Family {
    const BOTH: [Family; 2] = [Family::V4, Family::V6];

    fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The address of this family of a host with `v4` and maybe `v6`.
    fn pick(self, v4: Ipv4Addr, v6: Option<Ipv6Addr>) -> Option<IpAddr> {
        match self {
            Family::V4 => Some(v4.into()),
            Family::V6 => v6.map(IpAddr::V6),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

impl Host {
    fn ip(&self) -> IpAddr {
        match self {
            Host::Pod(_, ip) | Host::Node(_, ip) | Host::World(ip) | Host::Service(_, ip) => *ip,
        }
    }

    /// Where the end's sockets live; a service has none of its own (its backends'
    /// addresses are where they listen: [`backend_hosts`]).
    fn netns(&self, lab: &Lab) -> PathBuf {
        match self {
            Host::Pod(name, _) => lab.pod_netns(name),
            Host::Node(name, _) => lab.node_netns(name),
            Host::World(_) | Host::Service(..) => lab.world_netns(),
        }
    }
}

/// Where a probe to `dst` on `protocol`/`port` is answered: the end itself, or for a
/// service every backend the lab's `cluster` gives it (its namespace, address and target
/// port).
fn backend_hosts(
    lab: &Lab,
    cluster: &Cluster,
    dst: &Host,
    protocol: Protocol,
    port: u16,
) -> Vec<(PathBuf, IpAddr, u16)> {
    let Host::Service(..) = dst else {
        return vec![(dst.netns(lab), dst.ip(), port)];
    };
    let topology = lab.topology();
    let Some((svc, i)) = cluster.service_at(dst.ip(), port, protocol) else {
        return Vec::new();
    };
    cluster
        .backends(svc, i, dst.ip())
        .into_iter()
        .map(|b| {
            let pod = topology
                .pods
                .iter()
                .find(|p| IpAddr::V4(p.ip) == b.ip || p.ipv6.map(IpAddr::V6) == Some(b.ip));
            let netns = match pod {
                Some(pod) => lab.pod_netns(&pod.full_name()),
                None => lab.world_netns(),
            };
            (netns, b.ip, b.port)
        })
        .collect()
}

/// A flow to send.
#[derive(Debug, Clone)]
struct Probe {
    /// Which of an expectation's probes this is, when it has several (`over IPv6`,
    /// `remote-node as node:b`).
    label: Option<String>,
    src: Host,
    dst: Host,
    protocol: Protocol,
    port: u16,
    /// The tests' engine verdict (layer 3/4).
    test_allows: bool,
    /// The DNS query the expectation carries (UDP or TCP): the probe asks it.
    dns: Option<String>,
}

/// Runs every expectation of `run` (the engine's results for `suite` over `set`) through the
/// kernel. `tamper` runs after the agents synced the revision and before the probes.
pub fn check(
    suite: &Suite,
    set: &ResourceSet,
    run: &TestRun,
    tamper: &mut dyn FnMut(&LabView<'_>) -> Result<()>,
) -> Result<DatapathRun> {
    ward_datapath::lab::require_root()?;
    let (lab_name, tag) = names();
    let placement = placement::place(
        &suite.cluster,
        &outside(suite),
        asks_icmpv6(suite),
        &lab_name,
        &tag,
    )
    .context("cannot build a lab for the tests' endpoints")?;
    let topology =
        Topology::parse("ward test --datapath", placement.topology.as_bytes()).map_err(|d| {
            let messages: Vec<String> = d.iter().map(|d| d.message.clone()).collect();
            anyhow!(
                "cannot build a lab for the tests' endpoints: {}",
                messages.join("; ")
            )
        })?;
    let view = LabView {
        placement: &placement,
        topology: &topology,
    };
    let planned = plan(suite, run, &view);
    let policies = policy_objects(set);
    // Resolved once before the lab is built, so that a revision it cannot take fails early.
    lab_repository(&topology, &policies, Vec::new())?;
    let probes: Vec<Probe> = planned
        .iter()
        .filter_map(|(_, p)| p.as_ref().ok().cloned())
        .flatten()
        .collect();
    let names = declared_names(&suite.cluster.cluster);
    let (answers, lab_repo) = send_through_the_kernel(&view, &policies, &probes, names, tamper)?;
    let mut answers = probes.iter().zip(answers);
    let checks = planned
        .into_iter()
        .map(|(mut c, p)| {
            match p {
                Err(reason) => {
                    c.result = Agreement::NotProbed;
                    c.note = Some(reason);
                }
                Ok(ps) => {
                    let judged: Vec<Check> = ps
                        .iter()
                        .map(|_| {
                            let (p, answer) = answers.next().unwrap_or_else(|| unreachable!());
                            let mut one = c.clone();
                            judge(&mut one, p, answer, &lab_repo, &suite.cluster.cluster);
                            (one, p)
                        })
                        .map(|(mut one, p)| {
                            if let Some(label) = &p.label {
                                let note = one
                                    .note
                                    .take()
                                    .map(|n| format!(": {n}"))
                                    .unwrap_or_default();
                                one.note = Some(format!("{label}{note}"));
                            }
                            one
                        })
                        .collect();
                    c = combine(c, judged);
                }
            }
            c
        })
        .collect();
    Ok(DatapathRun {
        lab: format!(
            "lab {lab_name}: {} node(s), {} pod(s), world {}{}",
            topology.nodes.len(),
            topology.pods.len(),
            topology.world.ip,
            if topology.ipv6.is_some() {
                ", dual stack"
            } else {
                ""
            }
        ),
        checks,
    })
}

/// What the kernel did with one probe.
#[derive(Debug, Clone, Copy)]
struct Answer {
    /// It got through with no policy loaded: the lab carries the flow.
    carried: bool,
    /// It got through with the revision loaded.
    passed: bool,
    /// The response code of its DNS query, when it was answered as one.
    dns: Option<ResponseCode>,
}

/// What one probe got.
#[derive(Debug, Clone, Copy)]
struct Sent {
    passed: bool,
    dns: Option<ResponseCode>,
}

/// The engine's repository over the lab's cluster with the DNS `answers` its proxies learned.
fn lab_repository(
    topology: &Topology,
    policies: &ResourceSet,
    answers: Vec<DnsAnswer>,
) -> Result<PolicyRepository> {
    let mut cluster = Cluster::from_topology(topology);
    cluster.dns = answers;
    PolicyRepository::from_resources(cluster, policies)
        .context("the engine cannot resolve the revision over the lab's cluster")
}

/// The tests' declared DNS answers, as the lab's UDP servers answer them.
fn declared_names(tests: &Cluster) -> Arc<Names> {
    let names = tests
        .dns
        .iter()
        .map(|a| {
            let zone = Zone {
                addresses: a.addresses.clone(),
                ttl: 3600,
            };
            (a.name.clone(), zone)
        })
        .collect();
    Arc::new(ward_datapath::lab::dns::normalize(names))
}

/// Brings the lab up, sends every probe with no policy and then with `policies` synced (the
/// expectations' DNS queries first, so that the agents' proxies learn their answers; `tamper`
/// before the rest), and takes the lab down again. Also the engine's repository over the
/// lab's cluster and the answers the proxies learned.
fn send_through_the_kernel(
    view: &LabView<'_>,
    policies: &ResourceSet,
    probes: &[Probe],
    names: Arc<Names>,
    tamper: &mut dyn FnMut(&LabView<'_>) -> Result<()>,
) -> Result<(Vec<Answer>, PolicyRepository)> {
    let mut session = Session::up(view.topology, &view.placement.topology)?;
    let probes: Vec<&Probe> = probes.iter().collect();
    let _servers = servers(&session.lab, &probes, names)?;
    let baseline = send_all(&session.lab, &probes, PROBE_TIMEOUT)?;
    session.apply(policies)?;
    session.sync()?;
    let queries: Vec<&Probe> = probes.iter().copied().filter(|p| p.dns.is_some()).collect();
    session.learn(&queries)?;
    let lab_repo = lab_repository(view.topology, policies, session.dns_answers())?;
    session.clear_conntrack()?;
    tamper(view)?;
    let mut passed = send_all(&session.lab, &probes, PROBE_TIMEOUT)?;
    for (i, p) in probes.iter().enumerate() {
        if !passed[i].passed && baseline[i].passed && lab_allows(&lab_repo, p) {
            passed[i] = send(&session.lab, p, RETRY_TIMEOUT)?;
        }
    }
    let answers = baseline
        .into_iter()
        .zip(passed)
        .map(|(carried, sent)| Answer {
            carried: carried.passed,
            passed: sent.passed,
            dns: sent.dns,
        })
        .collect();
    Ok((answers, lab_repo))
}

/// A lab name and a node-name prefix no other run uses at the same time: the process id and
/// a count of runs in this process (node names also name pinned maps, and are short).
fn names() -> (String, String) {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let id = format!("{}{}", base36(std::process::id()), base36(run));
    (format!("wt{id}"), format!("d{id}"))
}

fn base36(mut n: u32) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(char::from_digit(n % 36, 36).unwrap_or('0'));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
}

/// The addresses the expectations name that no endpoint or node has (`world-ipv6`'s too),
/// and the listed backends of services that none has (world answers for them).
fn outside(suite: &Suite) -> BTreeSet<IpAddr> {
    let cluster = &suite.cluster;
    let taken: BTreeSet<IpAddr> = cluster
        .cluster
        .endpoints
        .iter()
        .flat_map(|e| e.ips.iter().copied())
        .chain(
            cluster
                .cluster
                .services
                .iter()
                .flat_map(|s| s.ips.iter().copied()),
        )
        .chain(
            cluster
                .cluster
                .nodes
                .iter()
                .flat_map(|n| n.ips.iter().copied()),
        )
        .collect();
    suite
        .tests
        .iter()
        .flat_map(|t| &t.spec.expectations)
        .flat_map(|e| [&e.from, &e.to])
        .filter_map(|end| match PeerRef::parse(end, cluster) {
            Ok(PeerRef::Ip(ip)) => Some(ip),
            Ok(PeerRef::WorldIpv6) => Some(WORLD_IPV6),
            _ => None,
        })
        .chain(
            cluster
                .cluster
                .services
                .iter()
                .flat_map(|s| s.backends.iter().copied()),
        )
        .filter(|ip| !taken.contains(ip))
        .collect()
}

/// Whether an expectation is ICMPv6: the lab is then dual stack even if the tests declare
/// no IPv6 address ([`placement::place`] sees to the addresses).
fn asks_icmpv6(suite: &Suite) -> bool {
    suite
        .tests
        .iter()
        .flat_map(|t| &t.spec.expectations)
        .any(|e| {
            e.protocol
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case("icmpv6"))
        })
}

/// The objects the agents enforce: the revision's, with the CiliumConfig's encryption off (its
/// policy settings, such as the enforcement mode, stay; the mesh is not what is tested here).
fn policy_objects(set: &ResourceSet) -> ResourceSet {
    let mut out = ResourceSet::default();
    for r in set.iter() {
        let mut r = r.clone();
        if r.key.kind == Kind::CiliumConfig {
            r.object["spec"]["enable-encryption"] = serde_json::json!(false);
        }
        out.insert(r);
    }
    out
}

/// One check from the checks of its probes (several when `remote-node` stands for every
/// other node): a disagreement on any of them is the check's, else a probe not sent, else
/// agreement; the notes of the probes that decided it are kept.
fn combine(mut c: Check, judged: Vec<Check>) -> Check {
    let pick = [Agreement::Disagree, Agreement::NotProbed, Agreement::Agree]
        .into_iter()
        .find(|want| judged.iter().any(|j| j.result == *want));
    let Some(result) = pick else { return c };
    let decided: Vec<&Check> = judged.iter().filter(|j| j.result == result).collect();
    c.result = result;
    c.engine = decided[0].engine;
    c.kernel = decided[0].kernel;
    let notes: Vec<&str> = decided.iter().filter_map(|j| j.note.as_deref()).collect();
    c.note = (!notes.is_empty()).then(|| notes.join("; "));
    c
}

/// Every expectation with its probes (one per address family both ends have, for each
/// node `remote-node` stands for), or why it is not probed.
fn plan(
    suite: &Suite,
    run: &TestRun,
    lab: &LabView<'_>,
) -> Vec<(Check, Result<Vec<Probe>, String>)> {
    let mut out = Vec::new();
    for (test, result) in suite.tests.iter().zip(&run.tests) {
        for (e, r) in test.spec.expectations.iter().zip(&result.expectations) {
            let check = Check {
                test: test.name.clone(),
                origin: format!(
                    "{}:{}",
                    test.origin.file,
                    r.line.unwrap_or(test.origin.line)
                ),
                flow: r.flow.clone(),
                result: Agreement::NotProbed,
                engine: None,
                kernel: None,
                note: l7_request(e).filter(|_| e.dns.is_none()).map(|_| {
                    "layer 3/4 compared: the kernel does not enforce HTTP rules".to_owned()
                }),
            };
            let probe = match (r.status, &r.outcome) {
                (Status::Error, _) | (_, None) => Err(format!(
                    "the expectation could not be evaluated: {}",
                    r.message.as_deref().unwrap_or("no verdict")
                )),
                (_, Some(o)) => probe_of(e, o.allowed, suite, lab),
            };
            out.push((check, probe));
        }
    }
    out
}

/// The probes for an expectation, or why the lab cannot send it: one per address family
/// both ends have, for each pair of ends (one, or one per node that `remote-node` stands
/// for: every node but the other end's, as `ward test` evaluates it).
fn probe_of(
    e: &TestExpectation,
    test_allows: bool,
    suite: &Suite,
    lab: &LabView<'_>,
) -> Result<Vec<Probe>, String> {
    let cluster = &suite.cluster;
    let src = PeerRef::parse(&e.from, cluster)?;
    let dst = PeerRef::parse(&e.to, cluster)?;
    let remote = PeerRef::Reserved(Identity::REMOTE_NODE);
    let others = |other: PeerRef| -> Result<Vec<PeerRef>, String> {
        let home = other.node(cluster).ok_or(
            "remote-node stands for every node but the other end's, and the other end has no node here",
        )?;
        let nodes: Vec<PeerRef> = (0..cluster.cluster.nodes.len())
            .filter(|n| *n != home && cluster.cluster.nodes[*n].agent)
            .map(PeerRef::Node)
            .collect();
        if nodes.is_empty() {
            return Err("remote-node stands for no node here: no other node runs an agent".into());
        }
        Ok(nodes)
    };
    let pairs: Vec<(PeerRef, PeerRef)> = if src == remote {
        others(dst)?.into_iter().map(|s| (s, dst)).collect()
    } else if dst == remote {
        others(src)?.into_iter().map(|d| (src, d)).collect()
    } else {
        vec![(src, dst)]
    };
    let several = pairs.len() > 1;
    let mut probes = Vec::new();
    for (s, d) in pairs {
        let families = families(e, s, d, suite, lab)?;
        for &family in &families {
            let mut p = probe_between(e, test_allows, (s, d), family, suite, lab)?;
            let mut label = Vec::new();
            if several {
                let node = if src == remote { s } else { d };
                if let PeerRef::Node(n) = node {
                    label.push(format!(
                        "remote-node as node:{}",
                        cluster.cluster.nodes[n].name
                    ));
                }
            }
            if families.len() > 1 {
                label.push(format!("over {}", family.name()));
            }
            p.label = (!label.is_empty()).then(|| label.join(" "));
            probes.push(p);
        }
    }
    Ok(probes)
}

/// The address families a flow from `src` to `dst` is sent in: those of the lab (IPv6 only
/// when it is dual stack), of the protocol (ICMP or ICMPv6) and of both ends (the families of
/// their declared addresses; an end without any has both).
fn families(
    e: &TestExpectation,
    src: PeerRef,
    dst: PeerRef,
    suite: &Suite,
    lab: &LabView<'_>,
) -> Result<Vec<Family>, String> {
    let c = &suite.cluster.cluster;
    let world = IpAddr::V4(lab.placement.world);
    let declared = |end: PeerRef| -> Vec<IpAddr> {
        match end {
            PeerRef::Endpoint(i) => c.endpoints[i].ips.clone(),
            PeerRef::Node(n) => c.nodes[n].ips.clone(),
            PeerRef::Service(i) => c.services[i].ips.clone(),
            PeerRef::Ip(ip) => vec![ip],
            PeerRef::World => vec![world],
            PeerRef::WorldIpv6 => vec![WORLD_IPV6],
            PeerRef::Reserved(_) => Vec::new(),
        }
    };
    let mut limits: Vec<(String, Vec<Family>)> = Vec::new();
    if lab.topology.ipv6.is_none() {
        limits.push(("the lab".into(), vec![Family::V4]));
    }
    match e
        .protocol
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("icmp") => limits.push(("ICMP".into(), vec![Family::V4])),
        Some("icmpv6") => limits.push(("ICMPv6".into(), vec![Family::V6])),
        _ => {}
    }
    for end in [src, dst] {
        let ips = declared(end);
        if !ips.is_empty() {
            let mut fams: Vec<Family> = ips.iter().map(Family::of).collect();
            fams.sort();
            fams.dedup();
            limits.push((end.label(&suite.cluster), fams));
        }
    }
    let fit: Vec<Family> = Family::BOTH
        .into_iter()
        .filter(|f| limits.iter().all(|(_, fams)| fams.contains(f)))
        .collect();
    if fit.is_empty() {
        let why: Vec<String> = limits
            .iter()
            .map(|(who, fams)| {
                let names: Vec<&str> = fams.iter().map(|f| f.name()).collect();
                format!("{who}: {}", names.join(" and "))
            })
            .collect();
        return Err(format!(
            "no address family fits both ends and the protocol ({})",
            why.join("; ")
        ));
    }
    Ok(fit)
}

/// The probe from `src` to `dst` in `family` for an expectation, or why the lab cannot send
/// it.
fn probe_between(
    e: &TestExpectation,
    test_allows: bool,
    (src, dst): (PeerRef, PeerRef),
    family: Family,
    suite: &Suite,
    lab: &LabView<'_>,
) -> Result<Probe, String> {
    let cluster = &suite.cluster;
    let (protocol, port) = resolve_port(e.protocol.as_deref(), e.port.as_ref(), dst, cluster)?;
    if matches!(src, PeerRef::Service(_)) {
        return Err("a service is only a destination: its backends answer for it".into());
    }
    let (src, dst) = (
        host(src, dst, family, suite, lab)?,
        host(dst, src, family, suite, lab)?,
    );
    if src == dst {
        return Err("both ends are the same host: its traffic to itself never leaves it".into());
    }
    if matches!((&src, &dst), (Host::World(_), Host::World(_))) {
        return Err("both ends are outside the cluster".into());
    }
    let probed = matches!(protocol, Protocol::TCP | Protocol::UDP)
        || (protocol == Protocol::ICMP && port == 8)
        || (protocol == Protocol::ICMPV6 && port == 128);
    if !probed {
        return Err(format!(
            "the lab sends TCP, UDP and ICMP and ICMPv6 echo requests; {protocol}/{port} is not sent"
        ));
    }
    let dns = e
        .dns
        .as_ref()
        .filter(|_| matches!(protocol, Protocol::UDP | Protocol::TCP))
        .map(|d| d.query.clone());
    Ok(Probe {
        label: None,
        src,
        dst,
        protocol,
        port,
        test_allows,
        dns,
    })
}

/// Where a flow end is in the lab, at its `family` address; `other` is the other end (the
/// node `host` stands for).
fn host(
    end: PeerRef,
    other: PeerRef,
    family: Family,
    suite: &Suite,
    lab: &LabView<'_>,
) -> Result<Host, String> {
    let (cluster, placement, topology) = (&suite.cluster, lab.placement, lab.topology);
    // A service's cluster IP written as an address is that service.
    let end = match end {
        PeerRef::Ip(ip) => cluster
            .cluster
            .services
            .iter()
            .position(|s| s.ips.contains(&ip))
            .map_or(end, PeerRef::Service),
        other => other,
    };
    let missing = |what: String| format!("{what} has no {} address in the lab", family.name());
    if let Some(i) = end.endpoint(cluster) {
        let (name, _) = placement.pods[i].clone()?;
        let pod = topology
            .pod(&name)
            .ok_or_else(|| format!("{name} is not in the lab"))?;
        return family
            .pick(pod.ip, pod.ipv6)
            .map(|ip| Host::Pod(name.clone(), ip))
            .ok_or_else(|| missing(name));
    }
    let nodes = &cluster.cluster.nodes;
    let world = IpAddr::V4(placement.world);
    match end {
        PeerRef::World => Ok(Host::World(world)),
        PeerRef::Ip(ip) if ip == world || placement.world_addresses.contains(&ip) => {
            Ok(Host::World(ip))
        }
        PeerRef::Ip(ip) => match nodes.iter().find(|n| n.ips.contains(&ip)) {
            Some(n) => node_host(&n.name, family, lab),
            None if ip.is_ipv6() => Err(format!(
                "{ip} is no host's address (loopback, link-local or multicast)"
            )),
            None => Err(format!(
                "{ip} lies inside the lab's own ranges (a pod range or the underlay, without a pod or node there)"
            )),
        },
        PeerRef::WorldIpv6 if placement.world_addresses.contains(&WORLD_IPV6) => {
            Ok(Host::World(WORLD_IPV6))
        }
        PeerRef::WorldIpv6 => Err("world-ipv6: the lab has no IPv6 world address".into()),
        PeerRef::Node(n) => node_host(&nodes[n].name, family, lab),
        PeerRef::Reserved(Identity::HOST) => {
            let n = other
                .node(cluster)
                .or((nodes.len() == 1).then_some(0))
                .ok_or("host is tied to no node here (give the other end a node)")?;
            node_host(&nodes[n].name, family, lab)
        }
        PeerRef::Reserved(_) => Err(format!("{}: the lab has no such host", end.label(cluster))),
        PeerRef::Service(i) => {
            let svc = &cluster.cluster.services[i];
            placement.services[i].clone()?;
            let placed = topology
                .services
                .iter()
                .find(|s| s.namespace == svc.namespace && s.name == svc.name)
                .ok_or_else(|| format!("service {} is not in the lab", svc.full_name()))?;
            family
                .pick(placed.ip, placed.ipv6)
                .map(|ip| Host::Service(svc.full_name(), ip))
                .ok_or_else(|| missing(format!("service {}", svc.full_name())))
        }
        PeerRef::Endpoint(_) => unreachable!("endpoints are handled above"),
    }
}

/// The host endpoint of the tests' node `name` in the lab, at its `family` address.
fn node_host(name: &str, family: Family, lab: &LabView<'_>) -> Result<Host, String> {
    let placed = lab
        .placement
        .nodes
        .iter()
        .find(|n| n.test.as_deref() == Some(name))
        .ok_or_else(|| format!("node {name} is not in the lab"))?;
    let node = lab
        .topology
        .node(&placed.lab)
        .ok_or_else(|| format!("node {name} is not in the lab"))?;
    family
        .pick(node.ip, node.ipv6)
        .map(|ip| Host::Node(placed.lab.clone(), ip))
        .ok_or_else(|| format!("node {name} has no {} address in the lab", family.name()))
}

/// The engine's flows of `p` over the lab's cluster: the flow itself, or one per backend of
/// the service it goes to.
fn lab_flows(repo: &PolicyRepository, p: &Probe) -> Vec<Flow> {
    let flow = Flow {
        src: Peer::Ip(p.src.ip()),
        dst: Peer::Ip(p.dst.ip()),
        protocol: p.protocol,
        port: p.port,
    };
    match repo.service_flows(&flow) {
        Some((_, flows)) => flows,
        None => vec![flow],
    }
}

/// Whether the engine allows `p` over the lab's cluster (layer 3/4); `None` when it goes to
/// a service whose backends get different verdicts (the kernel picks one at random), or
/// that has none.
fn lab_verdict(repo: &PolicyRepository, p: &Probe) -> Option<bool> {
    let verdicts: BTreeSet<bool> = lab_flows(repo, p)
        .iter()
        .map(|f| repo.verdict(f).verdict == Verdict::Allow)
        .collect();
    let mut it = verdicts.into_iter();
    match (it.next(), it.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

/// Whether the engine allows `p` over the lab's cluster (layer 3/4).
fn lab_allows(repo: &PolicyRepository, p: &Probe) -> bool {
    lab_verdict(repo, p) == Some(true)
}

/// Fills in a probed check.
fn judge(c: &mut Check, p: &Probe, answer: Answer, repo: &PolicyRepository, tests: &Cluster) {
    let Answer {
        carried, passed, ..
    } = answer;
    let Some(engine) = lab_verdict(repo, p) else {
        c.result = Agreement::NotProbed;
        c.note = Some(
            "the service's backends get different verdicts (or it has none in the lab): the kernel sends each connection to one of them at random".into(),
        );
        return;
    };
    let word = |allow: bool| if allow { "allow" } else { "deny" };
    c.engine = Some(word(engine));
    c.kernel = Some(if passed { "passed" } else { "dropped" });
    if !carried {
        c.result = Agreement::NotProbed;
        c.note = Some("the lab does not carry this flow even without policies".into());
    } else if engine != p.test_allows {
        c.result = Agreement::NotProbed;
        let why = if tests.dns.is_empty() {
            ""
        } else {
            " (the tests declare DNS answers: the agents' proxies learn only those an expectation's DNS query asks for, through a rule with rules.dns)"
        };
        c.note = Some(format!(
            "the lab's cluster gives this flow another verdict ({}) than the tests' ({}){why}",
            word(engine),
            word(p.test_allows)
        ));
    } else {
        c.result = if engine == passed {
            Agreement::Agree
        } else {
            Agreement::Disagree
        };
        if c.result == Agreement::Agree && passed {
            judge_dns(c, p, answer.dns, repo);
        }
    }
}

/// Compares the answer of a DNS query that passed at layer 3/4 with the engine's DNS
/// verdict: REFUSED from the agent's proxy where the rules do not allow the name.
fn judge_dns(c: &mut Check, p: &Probe, code: Option<ResponseCode>, repo: &PolicyRepository) {
    let (Some(name), Some(code)) = (&p.dns, code) else {
        return;
    };
    let request = L7Request::Dns { name: name.clone() };
    // Through a service every backend must refuse (or answer) alike: the kernel picks one.
    let refusals: BTreeSet<bool> = lab_flows(repo, p)
        .iter()
        .map(|flow| {
            repo.l7_verdict(flow, &request)
                .iter()
                .any(|(_, d)| d.verdict == L7Verdict::Denied)
        })
        .collect();
    let engine_refuses = refusals.contains(&true);
    if refusals.len() > 1 {
        c.note = Some(format!(
            "DNS query {name} not compared: the service's backends refuse it differently"
        ));
        return;
    }
    let kernel_refused = code == ResponseCode::Refused;
    let word = |refused: bool| if refused { "REFUSED" } else { "answered" };
    if engine_refuses == kernel_refused {
        c.note = Some(format!(
            "DNS query {name} compared too: {} by the agent, as the engine says",
            word(kernel_refused)
        ));
    } else {
        c.result = Agreement::Disagree;
        c.note = Some(format!(
            "DISAGREE on DNS query {name}: the engine says {}, the query was {}",
            word(engine_refuses),
            word(kernel_refused)
        ));
    }
}

/// Echo servers for every TCP and UDP destination; the UDP ones answer DNS queries for the
/// tests' declared `names`.
fn servers(lab: &Lab, probes: &[&Probe], names: Arc<Names>) -> Result<probe::Servers> {
    let mut servers = probe::Servers::new();
    let mut seen = std::collections::BTreeSet::new();
    let cluster = Cluster::from_topology(lab.topology());
    for p in probes {
        for (netns, ip, port) in backend_hosts(lab, &cluster, &p.dst, p.protocol, p.port) {
            if !seen.insert((ip, p.protocol, port)) {
                continue;
            }
            match p.protocol {
                Protocol::TCP => servers.tcp_with_names(&netns, ip, port, names.clone())?,
                Protocol::UDP => servers.udp_with_names(&netns, ip, port, names.clone())?,
                _ => {}
            }
        }
    }
    Ok(servers)
}

/// Sends every probe, [`PARALLEL`] at a time; what each got.
fn send_all(lab: &Lab, probes: &[&Probe], timeout: Duration) -> Result<Vec<Sent>> {
    let mut out = Vec::with_capacity(probes.len());
    for chunk in probes.chunks(PARALLEL) {
        let results: Vec<Result<Sent>> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|p| s.spawn(move || send(lab, p, timeout)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        for r in results {
            out.push(r?);
        }
    }
    Ok(out)
}

fn send(lab: &Lab, p: &Probe, timeout: Duration) -> Result<Sent> {
    let netns = p.src.netns(lab);
    // The world host has several addresses: a probe from it leaves from the one it stands for.
    let from = match &p.src {
        Host::World(ip) => Some(*ip),
        Host::Pod(..) | Host::Node(..) | Host::Service(..) => None,
    };
    let to = p.dst.ip();
    let name = p.dns.as_deref().unwrap_or(probe::PROBE_NAME);
    let answered = match p.protocol {
        Protocol::TCP => probe::tcp_query(&netns, from, to, p.port, name, timeout)?,
        Protocol::UDP => probe::udp_query(&netns, from, to, p.port, name, timeout)?,
        _ if probe::icmp_echo(&netns, from, to, timeout)? => Answered::Plain,
        _ => Answered::None,
    };
    Ok(Sent {
        passed: answered != Answered::None,
        dns: match answered {
            Answered::Dns(code) => Some(code),
            Answered::None | Answered::Plain => None,
        },
    })
}

/// The lab, its agents and their local target; all of it removed on drop.
struct Session {
    lab: Lab,
    agents: Vec<Agent>,
    target: LocalTarget,
    nodes: Vec<String>,
    dir: tempfile::TempDir,
}

impl Session {
    /// Builds the lab and starts an agent per node on a target without policies.
    fn up(topology: &Topology, text: &str) -> Result<Session> {
        // An agent on every node that runs one (`agent: false`: a node without Cilium).
        let nodes: Vec<String> = topology
            .nodes
            .iter()
            .filter(|n| n.agent)
            .map(|n| n.name.clone())
            .collect();
        for n in &nodes {
            ward_datapath::bpf::remove_pins(n)?;
        }
        let dir = tempfile::tempdir().context("cannot make a temporary folder")?;
        let topology_path = dir.path().join("lab.yaml");
        std::fs::write(&topology_path, text)?;
        let lab = Lab::up(topology)?;
        let mut session = Session {
            lab,
            agents: Vec::new(),
            target: LocalTarget::new(dir.path().join("state")),
            nodes,
            dir,
        };
        session.apply(&ResourceSet::default())?;
        for node in session.nodes.clone() {
            let agent = Agent::start(AgentConfig {
                node: node.clone(),
                source: Source::Files {
                    topology: topology_path.clone(),
                    state_dir: session.target.dir().to_owned(),
                },
                run_dir: session.dir.path().join(format!("run-{node}")),
                key_dir: None,
                dns_ttl: Default::default(),
            })
            .with_context(|| format!("cannot start the agent of lab node {node}"))?;
            session.agents.push(agent);
        }
        session.sync()?;
        Ok(session)
    }

    /// Applies `set` to the agents' target, syncs every agent and clears conntrack, so
    /// that no earlier probe's connection answers for a later one.
    fn apply(&self, set: &ResourceSet) -> Result<()> {
        let mut target = LocalTarget::new(self.target.dir());
        let planned = target.plan(DesiredObjects::from(set), &Default::default())?;
        let options = ApplyOptions {
            prune: true,
            allow_prune_all: true,
            max_prune: usize::MAX,
            ..ApplyOptions::default()
        };
        target.apply(&planned.plan, &options)?;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        for a in &mut self.agents {
            a.sync()?;
        }
        self.clear_conntrack()
    }

    /// Forgets every tracked connection, so that no earlier probe's answers a later one.
    fn clear_conntrack(&self) -> Result<()> {
        for n in &self.nodes {
            NodeMaps::open_pinned(n)?.ct_clear()?;
        }
        Ok(())
    }

    /// Sends the DNS queries of `probes` while the agents sync whatever their proxies learn
    /// (each proxy holds its answer until then, as it would for a running agent).
    fn learn(&mut self, probes: &[&Probe]) -> Result<()> {
        let (lab, agents) = (&self.lab, &mut self.agents);
        for chunk in probes.chunks(PARALLEL) {
            std::thread::scope(|s| -> Result<()> {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|p| s.spawn(move || send(lab, p, PROBE_TIMEOUT)))
                    .collect();
                loop {
                    let done = handles.iter().all(|h| h.is_finished());
                    for a in agents.iter_mut() {
                        a.sync_dns()?;
                    }
                    if done {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                for h in handles {
                    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The DNS answers every agent's proxy learned, together.
    fn dns_answers(&self) -> Vec<DnsAnswer> {
        let mut by_name: std::collections::BTreeMap<String, BTreeSet<IpAddr>> =
            std::collections::BTreeMap::new();
        for a in &self.agents {
            for answer in a.dns_answers() {
                by_name
                    .entry(answer.name)
                    .or_default()
                    .extend(answer.addresses);
            }
        }
        by_name
            .into_iter()
            .map(|(name, addresses)| DnsAnswer {
                name,
                addresses: addresses.into_iter().collect(),
            })
            .collect()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.agents.clear();
        if let Err(e) = Lab::down(self.lab.name()) {
            eprintln!("ward: removing lab {}: {e:#}", self.lab.name());
        }
        for n in &self.nodes {
            let _ = ward_datapath::bpf::remove_pins(n);
            let _ = std::fs::remove_dir_all(AgentConfig::default_run_dir(n));
        }
    }
}

impl DatapathRun {
    /// The text report: every disagreement, every flow not probed with its reason, and a
    /// closing line with the counts.
    pub fn text(&self, color: bool) -> String {
        use crate::paint::{BOLD, DIM, GREEN, Paint, RED, YELLOW};
        use std::fmt::Write;
        let p = Paint(color);
        let mut out = format!(
            "\n{} {}\n",
            p.on(BOLD, "Datapath"),
            p.on(DIM, &format!("({})", self.lab))
        );
        for c in &self.checks {
            let (mark, what) = match c.result {
                Agreement::Agree => (
                    p.on(GREEN, "✓"),
                    format!(
                        "the kernel {} it, as the engine says ({})",
                        c.kernel.unwrap_or_default(),
                        c.engine.unwrap_or_default()
                    ),
                ),
                // Both passed at layer 3/4: the DNS answer differs (the note says how).
                Agreement::Disagree if c.engine == Some("allow") && c.kernel == Some("passed") => (
                    p.on(RED, "✗"),
                    "DISAGREE on the DNS answer: the kernel passed it at layer 3/4".to_owned(),
                ),
                Agreement::Disagree => (
                    p.on(RED, "✗"),
                    format!(
                        "DISAGREE: the engine says {}, the kernel {} it",
                        c.engine.unwrap_or_default(),
                        c.kernel.unwrap_or_default()
                    ),
                ),
                Agreement::NotProbed => (p.on(YELLOW, "-"), "not probed".to_owned()),
            };
            let _ = writeln!(
                out,
                "  {mark} {} {}: {what}",
                c.flow,
                p.on(DIM, &format!("({})", c.origin))
            );
            if let Some(note) = &c.note {
                let _ = writeln!(out, "      {}", p.on(DIM, note));
            }
        }
        let disagree = self.count(Agreement::Disagree);
        let verdict = if disagree == 0 {
            p.on(GREEN, "ok")
        } else {
            p.on(RED, "FAILED")
        };
        let _ = writeln!(
            out,
            "\n{verdict}: {} expectation(s) on the datapath: {} agree, {disagree} disagree, {} not probed",
            self.checks.len(),
            self.count(Agreement::Agree),
            self.count(Agreement::NotProbed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(result: Agreement, note: &str) -> Check {
        Check {
            test: "t".into(),
            origin: "t.yaml:1".into(),
            flow: "remote-node → node:a TCP/22".into(),
            result,
            engine: Some("allow"),
            kernel: Some(if result == Agreement::Disagree {
                "dropped"
            } else {
                "passed"
            }),
            note: Some(note.into()),
        }
    }

    /// The probes of one expectation (remote-node from each other node): one disagreement
    /// makes the check a disagreement, named by its node; all agreeing, it agrees.
    #[test]
    fn a_check_of_several_probes_disagrees_when_any_does() {
        let base = check(Agreement::NotProbed, "");
        let c = combine(
            base.clone(),
            vec![
                check(Agreement::Agree, "remote-node as node:b"),
                check(Agreement::Disagree, "remote-node as node:c"),
            ],
        );
        assert_eq!(c.result, Agreement::Disagree);
        assert_eq!(c.kernel, Some("dropped"));
        assert_eq!(c.note.as_deref(), Some("remote-node as node:c"));
        let c = combine(
            base,
            vec![
                check(Agreement::Agree, "remote-node as node:b"),
                check(Agreement::Agree, "remote-node as node:c"),
            ],
        );
        assert_eq!(c.result, Agreement::Agree);
        assert_eq!(
            c.note.as_deref(),
            Some("remote-node as node:b; remote-node as node:c")
        );
    }
}
