//! The connectivity diff: which flows between the endpoints the repository's PolicyTests
//! declare (plus `world` and `host`) become newly allowed or newly denied from one revision
//! to another, on the ports the tests mention plus each destination's declared ports.
//!
//! # How it stays fast
//! - It works on *workloads*, not endpoint pairs: endpoints with the same security identity
//!   and the same declared ports get the same verdicts in both directions (the engine
//!   resolves policy per identity), so one member stands for all.
//! - Both revisions are evaluated on one cluster (the head's test endpoints, plus endpoints
//!   only the base declares), so identities are the same on both sides.
//! - Only flows that can differ are evaluated: a flow's verdict depends on the egress policy
//!   of its source and the ingress policy of its destination, and one direction of a
//!   workload's resolved policy can only change when a changed policy contributes entries to
//!   it or enables its default deny (in either revision). With the same agent settings on
//!   both sides, only the rows of workloads whose egress may change and the columns of those
//!   whose ingress may change are evaluated; a reformatting-only commit evaluates nothing.
//!   When the CiliumConfig settings differ, every flow is evaluated.
//! - A flow the head drops in a direction that cannot have changed is dropped in the base
//!   too: the base is not asked.

use super::cluster::{OnConflict, TestCluster};
use super::outcome::{Origins, RuleSite};
use super::peer::{PeerRef, world_address};
use super::run::{Unresolved, resolve_port};
use crate::normalize::normalize;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use ward_engine::{
    Direction, EndpointId, EngineConfig, Flow, Identity, Peer, PolicyRepository, Protocol, Verdict,
};
use ward_schema::policytest::PolicyTest;
use ward_schema::{Kind, ResourceKey, ResourceSet};

/// What to compute besides the changes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Also every allowed flow of the head (for `--format dot`); this evaluates every flow.
    pub graph: bool,
}

/// The connectivity diff between two revisions.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Connectivity {
    /// Endpoints evaluated (declared by the PolicyTests of either revision).
    pub endpoints: usize,
    /// Workloads: endpoints grouped by identity and declared ports.
    pub workloads: usize,
    /// Host endpoints of the nodes the PolicyTests declare (`node:<name>`).
    pub nodes: usize,
    /// The ports every destination is evaluated on (each also on its declared ports).
    pub ports: Vec<String>,
    /// Policies whose content differs between the revisions.
    pub changed_policies: Vec<String>,
    /// Flows the head allows and the base does not, with the head's allowing rule.
    pub newly_allowed: Vec<FlowChange>,
    /// Flows the base allows and the head does not, with the head's dropping rule.
    pub newly_denied: Vec<FlowChange>,
    /// How many verdicts were computed (both revisions).
    pub verdicts: usize,
    /// Every allowed flow of the head, when asked for ([`Options::graph`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph: Option<Graph>,
    /// Why nothing was computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// Flows between two workloads on some ports, decided by one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowChange {
    /// The source workload (`shop/frontend`, `world`, `host`).
    pub from: String,
    /// The destination workload.
    pub to: String,
    /// `TCP/80`, in port order.
    pub ports: Vec<String>,
    /// The head's verdict: `allow`, `deny` or `default-deny`.
    pub verdict: String,
    /// The head's deciding rule: the allowing entry, the deny entry, or the rule that enabled
    /// the default deny (none: no rule involved).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleSite>,
    /// The head's rules on this path that name something the revision does not define (a
    /// CiliumCIDRGroup): `<rule>: <what>` (see [`super::run::Unresolved`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unresolved: Vec<String>,
    /// Sides of the flow whose own policy is not part of the verdict (`host`, whose host
    /// policy is not evaluated when the head has host policies), and why.
    #[serde(rename = "notEvaluated", skip_serializing_if = "Vec::is_empty")]
    pub not_evaluated: Vec<String>,
}

/// Why a change with `host` at one end leaves out a host policy.
pub const HOST_NOT_EVALUATED: &str = "host stands for each pod's own node here, so host policies (nodeSelector) are not part of this verdict; declare nodes in a PolicyTest (spec.nodes) to see node:<name>";

/// The head's allowed flows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Graph {
    /// Every workload, `world` and `host`.
    pub nodes: Vec<GraphNode>,
    /// Allowed flows per workload pair.
    pub allowed: Vec<FlowChange>,
}

/// A workload in the graph.
#[derive(Debug, Clone, Serialize)]
pub struct GraphNode {
    /// Its label.
    pub name: String,
    /// Its namespace (none for `world` and `host`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl Connectivity {
    /// Whether any flow changes.
    pub fn has_changes(&self) -> bool {
        !self.newly_allowed.is_empty() || !self.newly_denied.is_empty()
    }

    /// `2 newly allowed, 1 newly denied`.
    pub fn summary(&self) -> String {
        let flows = |v: &[FlowChange]| v.iter().map(|c| c.ports.len()).sum::<usize>();
        format!(
            "{} newly allowed, {} newly denied",
            flows(&self.newly_allowed),
            flows(&self.newly_denied)
        )
    }

    fn skipped(reason: impl Into<String>) -> Connectivity {
        Connectivity {
            skipped: Some(reason.into()),
            ..Connectivity::default()
        }
    }
}

/// One row or column of the matrix: a workload, `world` or `host`.
#[derive(Debug)]
struct Node {
    label: String,
    namespace: Option<String>,
    /// Endpoint members (engine positions); empty for world, host and nodes.
    members: Vec<usize>,
    /// A workload or a declared node's host endpoint: its own policy is evaluated.
    policed: bool,
    peer: Peer,
    /// Ports to evaluate with this node as the destination.
    ports: Vec<(Protocol, u16)>,
    /// Its resolved egress policy may differ between the revisions.
    egress_affected: bool,
    /// Its resolved ingress policy may differ between the revisions.
    ingress_affected: bool,
}

impl Node {
    fn is_endpoint(&self) -> bool {
        !self.members.is_empty()
    }
}

/// The connectivity diff from what a target holds (`live`, built only when needed) to `head`.
/// Targets never hold PolicyTests (they are not applied), so the endpoints come from `head`
/// alone, and with none declared there is nothing to compare: the live side is not read.
pub fn diff_from_live(
    live: impl FnOnce() -> ResourceSet,
    head: &ResourceSet,
    opts: Options,
) -> Connectivity {
    let (head_tests, _) = PolicyTest::all_in(head);
    if cluster_of(&head_tests, &[]).is_ok_and(|c| c.is_empty()) {
        return Connectivity::skipped("no PolicyTest declares endpoints");
    }
    diff(&live(), head, opts)
}

/// The connectivity diff from `base` to `head`.
pub fn diff(base: &ResourceSet, head: &ResourceSet, opts: Options) -> Connectivity {
    let (head_tests, _) = PolicyTest::all_in(head);
    let (base_tests, _) = PolicyTest::all_in(base);
    let cluster = match cluster_of(&head_tests, &base_tests) {
        Ok(c) => c,
        Err(reason) => return Connectivity::skipped(reason),
    };
    if cluster.is_empty() {
        return Connectivity::skipped("no PolicyTest declares endpoints");
    }
    let repos = PolicyRepository::from_resources(cluster.cluster.clone(), base).and_then(|b| {
        Ok((
            b,
            PolicyRepository::from_resources(cluster.cluster.clone(), head)?,
        ))
    });
    let (base_repo, head_repo) = match repos {
        Ok(r) => r,
        Err(e) => return Connectivity::skipped(e.to_string()),
    };
    let changed = changed_policies(base, head);
    // A changed CIDR group changes what every policy naming it matches.
    let everything = EngineConfig::from_resources(base) != EngineConfig::from_resources(head)
        || changed.iter().any(|k| k.kind == Kind::CiliumCIDRGroup);
    let mentioned = mentioned_ports(head_tests.iter().chain(&base_tests), &cluster);
    let mut nodes = workloads(&cluster, &head_repo, &mentioned);
    for n in &mut nodes {
        let affected = |dir: Direction| {
            everything
                || n.members.first().is_some_and(|m| {
                    [&base_repo, &head_repo]
                        .iter()
                        .any(|r| touches(r, endpoint_id(*m), dir, &changed))
                })
        };
        (n.egress_affected, n.ingress_affected) =
            (affected(Direction::Egress), affected(Direction::Ingress));
    }
    let world = Peer::Ip(world_address(&cluster));
    nodes.push(Node {
        label: "world".into(),
        namespace: None,
        members: Vec::new(),
        policed: false,
        peer: world,
        ports: mentioned.clone(),
        egress_affected: false,
        ingress_affected: false,
    });
    nodes.push(Node {
        label: "host".into(),
        namespace: None,
        members: Vec::new(),
        policed: false,
        peer: Peer::Reserved(Identity::HOST),
        ports: mentioned.clone(),
        egress_affected: false,
        ingress_affected: false,
    });
    // Declared nodes' host endpoints: only CCNPs (nodeSelector) select them.
    let hosts_affected = everything
        || changed
            .iter()
            .any(|k| k.kind == Kind::CiliumClusterwideNetworkPolicy);
    for name in cluster.declared_nodes() {
        let Some(id) = head_repo.node_id(name) else {
            continue;
        };
        nodes.push(Node {
            label: format!("node:{name}"),
            namespace: None,
            members: Vec::new(),
            policed: true,
            peer: Peer::Node(id),
            ports: mentioned.clone(),
            egress_affected: hosts_affected,
            ingress_affected: hosts_affected,
        });
    }

    let origins = Origins::of(head);
    let rows: Vec<(Vec<Cell>, usize)> = (0..nodes.len())
        .into_par_iter()
        .map(|s| {
            let mut cells = Vec::new();
            let verdicts = (0..nodes.len())
                .map(|d| {
                    evaluate(
                        &nodes,
                        s,
                        d,
                        (&base_repo, &head_repo),
                        &origins,
                        opts.graph,
                        &mut cells,
                    )
                })
                .sum();
            (cells, verdicts)
        })
        .collect();
    let verdicts = rows.iter().map(|r| r.1).sum();
    let cells = rows.iter().flat_map(|r| &r.0);
    let mut newly_allowed = group(&nodes, cells.clone().filter(|c| c.head && !c.base), true);
    let mut newly_denied = group(&nodes, cells.clone().filter(|c| c.base && !c.head), true);
    let unresolved = Unresolved::of(&head_repo);
    if !unresolved.is_empty() {
        let peers: BTreeMap<&str, Peer> =
            nodes.iter().map(|n| (n.label.as_str(), n.peer)).collect();
        for c in newly_allowed.iter_mut().chain(&mut newly_denied) {
            c.unresolved = unresolved_between(&peers, c, &unresolved);
        }
    }
    if head_repo.has_host_policies() {
        for c in newly_allowed.iter_mut().chain(&mut newly_denied) {
            if c.from == "host" || c.to == "host" {
                c.not_evaluated.push(HOST_NOT_EVALUATED.to_owned());
            }
        }
    }
    let graph = opts.graph.then(|| Graph {
        nodes: nodes
            .iter()
            .map(|n| GraphNode {
                name: n.label.clone(),
                namespace: n.namespace.clone(),
            })
            .collect(),
        allowed: group(&nodes, cells.filter(|c| c.head), false),
    });
    Connectivity {
        endpoints: cluster.len(),
        workloads: nodes.iter().filter(|n| n.is_endpoint()).count(),
        nodes: nodes
            .iter()
            .filter(|n| n.policed && !n.is_endpoint())
            .count(),
        ports: mentioned.iter().map(|(p, n)| format!("{p}/{n}")).collect(),
        changed_policies: changed.iter().map(ToString::to_string).collect(),
        newly_allowed,
        newly_denied,
        verdicts,
        graph,
        skipped: None,
    }
}

/// The head's unresolved rules on the path of a flow change (its workloads' representatives,
/// by label).
fn unresolved_between(
    peers: &BTreeMap<&str, Peer>,
    c: &FlowChange,
    unresolved: &Unresolved<'_>,
) -> Vec<String> {
    match (peers.get(c.from.as_str()), peers.get(c.to.as_str())) {
        (Some(src), Some(dst)) => unresolved.on_path(&Flow::tcp(*src, *dst, 0)),
        _ => Vec::new(),
    }
}

/// Whether a changed policy shapes one direction of an endpoint's resolved policy in `repo`:
/// it contributes entries, or it is the rule that enables the default deny.
fn touches(
    repo: &PolicyRepository,
    id: EndpointId,
    dir: Direction,
    changed: &BTreeSet<ResourceKey>,
) -> bool {
    let Some(p) = repo.endpoint_policy(id) else {
        return false;
    };
    p.default_deny_by(dir)
        .is_some_and(|r| changed.contains(&*r.policy))
        || p.entries(dir).any(|(r, ..)| changed.contains(&*r.policy))
}

/// The head's test endpoints, plus the base's that the head does not declare. Base
/// endpoints are dropped again if they clash with the head's (an address reused).
fn cluster_of(head: &[PolicyTest], base: &[PolicyTest]) -> Result<TestCluster, String> {
    let mut head_only = TestCluster::default();
    let mut problems = Vec::new();
    for t in head {
        problems.extend(head_only.add(t, OnConflict::Report));
    }
    problems.extend(head_only.check());
    if let Some(p) = problems.first() {
        return Err(format!(
            "the PolicyTests' endpoints are inconsistent: {}: {}",
            p.location(),
            p.message
        ));
    }
    let mut both = head_only.clone();
    for t in base {
        both.add(t, OnConflict::KeepFirst);
    }
    Ok(if both.check().is_empty() {
        both
    } else {
        head_only
    })
}

/// Policies (CNP, CCNP, NetworkPolicy) and CIDR groups added, removed or changed (after
/// normalisation: a reformatted document is unchanged).
fn changed_policies(base: &ResourceSet, head: &ResourceSet) -> BTreeSet<ResourceKey> {
    let policies = |s: &ResourceSet| -> BTreeMap<ResourceKey, serde_json::Value> {
        s.iter()
            .filter(|r| r.key.kind.is_engine_input())
            .map(|r| (r.key.clone(), normalize(&r.object)))
            .collect()
    };
    let (b, h) = (policies(base), policies(head));
    b.keys()
        .chain(h.keys())
        .filter(|k| b.get(*k) != h.get(*k))
        .cloned()
        .collect()
}

/// Every (protocol, port) an expectation uses, named ports resolved.
fn mentioned_ports<'a>(
    tests: impl Iterator<Item = &'a PolicyTest>,
    cluster: &TestCluster,
) -> Vec<(Protocol, u16)> {
    let mut out = BTreeSet::new();
    for e in tests.flat_map(|t| &t.spec.expectations) {
        let Ok(dst) = PeerRef::parse(&e.to, cluster) else {
            continue;
        };
        if let Ok(p) = resolve_port(e.protocol.as_deref(), e.port.as_ref(), dst, cluster) {
            out.insert(p);
        }
    }
    out.into_iter().collect()
}

/// Endpoints grouped by identity and declared ports, in label order.
fn workloads(
    cluster: &TestCluster,
    repo: &PolicyRepository,
    mentioned: &[(Protocol, u16)],
) -> Vec<Node> {
    // With declared nodes, a node's host endpoint is `host` to its own pods and
    // `remote-node` to the others: pods on different nodes are different workloads then.
    type Key = (
        Identity,
        Option<String>,
        Vec<(String, Protocol, u16)>,
        Vec<(Protocol, u16)>,
    );
    let by_node = cluster.declared_nodes().next().is_some();
    let mut groups: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
    for (i, ep) in cluster.cluster.endpoints.iter().enumerate() {
        let Some(id) = repo.endpoint_id(&ep.full_name()) else {
            continue;
        };
        let identity = repo.identity(id).unwrap_or(Identity::ANY);
        let named = ep
            .named_ports
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.protocol, v.port))
            .collect();
        groups
            .entry((
                identity,
                ep.node.clone().filter(|_| by_node),
                named,
                cluster.declarations[i].ports.clone(),
            ))
            .or_default()
            .push(i);
    }
    let mut nodes: Vec<Node> = groups
        .into_iter()
        .map(|((_, _, _, declared), members)| {
            let eps: Vec<_> = members
                .iter()
                .map(|m| &cluster.cluster.endpoints[*m])
                .collect();
            let namespace = eps[0].namespace.clone();
            let label = if eps.len() == 1 {
                eps[0].full_name()
            } else {
                format!(
                    "{namespace}/{{{}}}",
                    eps.iter()
                        .map(|e| e.name.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            };
            let id = endpoint_id(members[0]);
            let mut ports: Vec<(Protocol, u16)> =
                mentioned.iter().chain(&declared).copied().collect();
            ports.sort();
            ports.dedup();
            Node {
                label,
                namespace: Some(namespace),
                members,
                policed: true,
                peer: Peer::Endpoint(id),
                ports,
                egress_affected: false,
                ingress_affected: false,
            }
        })
        .collect();
    nodes.sort_by(|a, b| a.label.cmp(&b.label));
    nodes
}

/// One evaluated (source, destination, port) worth reporting.
#[derive(Debug)]
struct Cell {
    src: usize,
    dst: usize,
    port: (Protocol, u16),
    base: bool,
    head: bool,
    verdict: Verdict,
    rule: Option<RuleSite>,
}

/// Evaluates one pair on the destination's ports and keeps the cells that matter: changes,
/// and with `graph` every flow the head allows. A pair whose verdicts cannot differ is
/// evaluated only for the graph, and only in the head. Returns how many verdicts it took.
fn evaluate(
    nodes: &[Node],
    s: usize,
    d: usize,
    (base, head): (&PolicyRepository, &PolicyRepository),
    origins: &Origins,
    graph: bool,
    out: &mut Vec<Cell>,
) -> usize {
    let (src, dst) = (&nodes[s], &nodes[d]);
    let may_differ = src.egress_affected || dst.ingress_affected;
    if (!src.policed && !dst.policed) || (!may_differ && !graph) {
        return 0;
    }
    // A workload to itself: one member to another (an endpoint's flows to itself are not
    // policy's business).
    let dst_peer = match (s == d, dst.members.get(1)) {
        (false, _) => dst.peer,
        (true, Some(second)) => Peer::Endpoint(endpoint_id(*second)),
        (true, None) => return 0,
    };
    let mut verdicts = 0;
    for &(protocol, port) in &dst.ports {
        let flow = Flow {
            src: src.peer,
            dst: dst_peer,
            protocol,
            port,
        };
        let h = head.verdict(&flow);
        let head_allows = h.verdict == Verdict::Allow;
        // Dropped by a direction that is the same in the base: dropped there too.
        let settled = !may_differ
            || (!head_allows
                && (h
                    .egress
                    .is_some_and(|e| e.verdict != Verdict::Allow && !src.egress_affected)
                    || h.ingress
                        .is_some_and(|i| i.verdict != Verdict::Allow && !dst.ingress_affected)));
        let base_allows = if settled {
            head_allows
        } else {
            base.verdict(&flow).verdict == Verdict::Allow
        };
        verdicts += 1 + usize::from(!settled);
        if base_allows != head_allows || (graph && head_allows) {
            out.push(Cell {
                src: s,
                dst: d,
                port: (protocol, port),
                base: base_allows,
                head: head_allows,
                verdict: h.verdict,
                rule: h.rule.map(|r| RuleSite::of(r, origins)),
            });
        }
    }
    verdicts
}

fn endpoint_id(position: usize) -> EndpointId {
    EndpointId(u32::try_from(position).unwrap_or(u32::MAX))
}

/// Groups cells by (source, destination) and, `with_rule`, the head's verdict and deciding
/// rule; ports in order.
fn group<'a>(
    nodes: &[Node],
    cells: impl Iterator<Item = &'a Cell>,
    with_rule: bool,
) -> Vec<FlowChange> {
    type Key<'k> = (&'k str, &'k str, Option<(String, &'k str)>);
    type Group<'g> = (Option<&'g RuleSite>, Vec<(Protocol, u16)>);
    let mut groups: BTreeMap<Key<'_>, Group<'_>> = BTreeMap::new();
    for c in cells {
        let decided = with_rule.then(|| {
            (
                c.verdict.to_string(),
                c.rule.as_ref().map_or("", |r| r.rule.as_str()),
            )
        });
        let key = (
            nodes[c.src].label.as_str(),
            nodes[c.dst].label.as_str(),
            decided,
        );
        let entry = groups
            .entry(key)
            .or_insert((c.rule.as_ref().filter(|_| with_rule), Vec::new()));
        entry.1.push(c.port);
    }
    groups
        .into_iter()
        .map(|((from, to, decided), (rule, mut ports))| {
            ports.sort();
            ports.dedup();
            FlowChange {
                from: from.to_owned(),
                to: to.to_owned(),
                ports: ports.iter().map(|(p, n)| format!("{p}/{n}")).collect(),
                verdict: decided.map_or_else(|| Verdict::Allow.to_string(), |(v, _)| v),
                rule: rule.cloned(),
                unresolved: Vec::new(),
                not_evaluated: Vec::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ward_schema::{Limits, assemble, load_file};

    const TEST: &str = "apiVersion: ward.dev/v1alpha1
kind: PolicyTest
metadata: {name: t}
spec:
  endpoints:
    - {name: web, namespace: shop, labels: {app: web}}
    - {name: api-1, namespace: shop, labels: {app: api}, ports: [{name: http, port: 8080}]}
    - {name: api-2, namespace: shop, labels: {app: api}, ports: [{name: http, port: 8080}]}
    - {name: admin, namespace: shop, labels: {app: admin}}
  expectations:
    - {from: web, to: api-1, port: http, expect: allow}
";

    fn api_in(peers: &str, style: &str) -> String {
        if style == "flow" {
            return format!(
                "{{apiVersion: cilium.io/v2, kind: CiliumNetworkPolicy, metadata: {{namespace: shop, name: api-in}},\n spec: {{endpointSelector: {{matchLabels: {{app: api}}}}, ingress: [{{fromEndpoints: [{peers}], toPorts: [{{ports: [{{port: 'http', protocol: TCP}}]}}]}}]}}}}\n"
            );
        }
        format!(
            "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: api-in
  namespace: shop
spec:
  endpointSelector:
    matchLabels:
      app: api
  ingress:
    - fromEndpoints: [{peers}]
      toPorts:
        - ports:
            - port: http
              protocol: TCP
"
        )
    }

    fn set(files: &[(&str, String)]) -> ResourceSet {
        let reports = files
            .iter()
            .map(|(name, text)| load_file(name, text.as_bytes(), &Limits::default()))
            .collect();
        let v = assemble(reports);
        assert!(v.is_valid(), "{:?}", v.diagnostics);
        v.resources
    }

    fn revision(peers: &str, style: &str) -> ResourceSet {
        set(&[
            ("t.yaml", TEST.to_owned()),
            ("api-in.yaml", api_in(peers, style)),
        ])
    }

    #[test]
    fn a_widening_lists_exactly_the_newly_allowed_flows() {
        let base = revision("{matchLabels: {app: web}}", "block");
        let head = revision(
            "{matchLabels: {app: web}}, {matchLabels: {app: admin}}",
            "block",
        );
        let c = diff(&base, &head, Options::default());
        assert_eq!(c.skipped, None);
        assert_eq!((c.endpoints, c.workloads), (4, 3));
        assert_eq!(c.changed_policies, ["CiliumNetworkPolicy/shop/api-in"]);
        assert!(c.newly_denied.is_empty(), "{:?}", c.newly_denied);
        assert_eq!(c.newly_allowed.len(), 1, "{:?}", c.newly_allowed);
        let f = &c.newly_allowed[0];
        assert_eq!(
            (
                f.from.as_str(),
                f.to.as_str(),
                f.ports.as_slice(),
                f.verdict.as_str()
            ),
            (
                "shop/admin",
                "shop/{api-1,api-2}",
                &["TCP/8080".to_owned()][..],
                "allow"
            )
        );
        assert_eq!(
            f.rule.as_ref().unwrap().rule,
            "CiliumNetworkPolicy/shop/api-in spec.ingress[0]"
        );
        assert_eq!(
            f.rule.as_ref().unwrap().origin.as_deref(),
            Some("api-in.yaml:1")
        );
        assert_eq!(c.summary(), "1 newly allowed, 0 newly denied");

        // The way back is exactly the same flow, newly denied by default deny.
        let back = diff(&head, &base, Options::default());
        assert!(back.newly_allowed.is_empty());
        assert_eq!(back.newly_denied.len(), 1);
        assert_eq!(
            (
                back.newly_denied[0].from.as_str(),
                back.newly_denied[0].verdict.as_str()
            ),
            ("shop/admin", "default-deny")
        );
        assert_eq!(
            back.newly_denied[0].rule.as_ref().unwrap().rule,
            "CiliumNetworkPolicy/shop/api-in spec"
        );
    }

    #[test]
    fn reformatting_evaluates_nothing_and_changes_nothing() {
        let base = revision("{matchLabels: {app: web}}", "block");
        let head = revision("{matchLabels: {app: web}}", "flow");
        assert_ne!(base.iter().map(|r| r.origin.line).collect::<Vec<_>>(), [0]);
        let c = diff(&base, &head, Options::default());
        assert!(c.changed_policies.is_empty());
        assert!(!c.has_changes());
        assert_eq!(c.verdicts, 0);
    }

    #[test]
    fn the_graph_holds_every_allowed_flow_of_the_head() {
        let head = revision("{matchLabels: {app: web}}", "block");
        let c = diff(&head, &head, Options { graph: true });
        let g = c.graph.unwrap();
        assert_eq!(
            g.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            [
                "shop/admin",
                "shop/web",
                "shop/{api-1,api-2}",
                "world",
                "host"
            ]
        );
        let edge = |from: &str, to: &str| {
            g.allowed
                .iter()
                .find(|f| f.from == from && f.to == to)
                .map(|f| f.ports.clone())
        };
        assert_eq!(
            edge("shop/web", "shop/{api-1,api-2}"),
            Some(vec!["TCP/8080".to_owned()])
        );
        assert_eq!(edge("shop/admin", "shop/{api-1,api-2}"), None);
        assert_eq!(
            edge("shop/{api-1,api-2}", "shop/{api-1,api-2}"),
            None,
            "replicas are denied too: the peer is app=web only"
        );
        assert_eq!(
            edge("host", "shop/{api-1,api-2}"),
            Some(vec!["TCP/8080".to_owned()]),
            "allow-localhost"
        );
        assert_eq!(edge("world", "shop/web"), Some(vec!["TCP/8080".to_owned()]));
        assert!(g.allowed.iter().all(|f| f.rule.is_none()));
    }

    #[test]
    fn changed_settings_evaluate_everything() {
        let base = revision("{matchLabels: {app: web}}", "block");
        let config = "apiVersion: cilium.io/v1.12\nkind: CiliumConfig\nmetadata: {name: cilium-config}\nspec: {policy-enforcement-mode: always}\n";
        let head = set(&[
            ("t.yaml", TEST.to_owned()),
            ("api-in.yaml", api_in("{matchLabels: {app: web}}", "block")),
            ("c.yaml", config.to_owned()),
        ]);
        let c = diff(&base, &head, Options::default());
        assert!(c.changed_policies.is_empty());
        assert!(c.newly_allowed.is_empty());
        let denied: Vec<(&str, &str)> = c
            .newly_denied
            .iter()
            .map(|f| (f.from.as_str(), f.to.as_str()))
            .collect();
        assert!(
            denied.contains(&("shop/web", "shop/admin")) && denied.contains(&("world", "shop/web")),
            "{denied:?}"
        );
        // Allowed by api-in's ingress, but web's egress is now in default deny too.
        assert!(
            denied.contains(&("shop/web", "shop/{api-1,api-2}")),
            "{denied:?}"
        );
    }

    /// Every allowed (from, to, port) of a revision, from the graph (which evaluates every
    /// flow of the head).
    fn allowed(set: &ResourceSet) -> BTreeSet<(String, String, String)> {
        let g = diff(set, set, Options { graph: true }).graph.unwrap();
        g.allowed
            .iter()
            .flat_map(|f| {
                f.ports
                    .iter()
                    .map(move |p| (f.from.clone(), f.to.clone(), p.clone()))
            })
            .collect()
    }

    fn flows(v: &[FlowChange]) -> BTreeSet<(String, String, String)> {
        v.iter()
            .flat_map(|f| {
                f.ports
                    .iter()
                    .map(move |p| (f.from.clone(), f.to.clone(), p.clone()))
            })
            .collect()
    }

    #[test]
    fn evaluating_only_what_can_change_loses_nothing() {
        let egress = |peers: &str, deny: bool| {
            let list = if deny { "egressDeny" } else { "egress" };
            format!(
                "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: web-out, namespace: shop}}\nspec:\n  endpointSelector: {{matchLabels: {{app: web}}}}\n  {list}:\n    - toEndpoints: [{peers}]\n"
            )
        };
        let ccnp = "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: no-world}\nspec:\n  endpointSelector: {}\n  enableDefaultDeny: {egress: false, ingress: false}\n  egressDeny:\n    - toEntities: [world]\n";
        let revisions: Vec<ResourceSet> = vec![
            revision("{matchLabels: {app: web}}", "block"),
            revision(
                "{matchLabels: {app: web}}, {matchLabels: {app: admin}}",
                "block",
            ),
            revision("{}", "block"),
            set(&[
                ("t.yaml", TEST.to_owned()),
                ("api-in.yaml", api_in("{matchLabels: {app: web}}", "block")),
                ("web-out.yaml", egress("{matchLabels: {app: api}}", false)),
            ]),
            set(&[
                ("t.yaml", TEST.to_owned()),
                ("api-in.yaml", api_in("{matchLabels: {app: web}}", "block")),
                ("web-out.yaml", egress("{}", true)),
            ]),
            set(&[
                ("t.yaml", TEST.to_owned()),
                ("web-out.yaml", egress("{matchLabels: {app: admin}}", false)),
                ("ccnp.yaml", ccnp.to_owned()),
            ]),
            set(&[("t.yaml", TEST.to_owned())]),
        ];
        for (i, base) in revisions.iter().enumerate() {
            for (j, head) in revisions.iter().enumerate() {
                let c = diff(base, head, Options::default());
                let (before, after) = (allowed(base), allowed(head));
                let want_allowed: BTreeSet<_> = after.difference(&before).cloned().collect();
                let want_denied: BTreeSet<_> = before.difference(&after).cloned().collect();
                assert_eq!(
                    flows(&c.newly_allowed),
                    want_allowed,
                    "newly allowed, revision {i} -> {j}"
                );
                assert_eq!(
                    flows(&c.newly_denied),
                    want_denied,
                    "newly denied, revision {i} -> {j}"
                );
            }
        }
    }

    #[test]
    fn an_ingress_change_evaluates_only_its_column() {
        let base = revision("{matchLabels: {app: web}}", "block");
        let head = revision(
            "{matchLabels: {app: web}}, {matchLabels: {app: admin}}",
            "block",
        );
        let c = diff(&base, &head, Options::default());
        // Sources: admin, web, world, host, and the other api replica; one port (http) each;
        // head always, base only when the head's drop is not already settled.
        assert!(c.verdicts <= 2 * 5, "{} verdicts", c.verdicts);
    }

    #[test]
    fn without_tests_nothing_is_computed() {
        let only = set(&[("api-in.yaml", api_in("{matchLabels: {app: web}}", "block"))]);
        assert_eq!(
            diff(&only, &only, Options::default()).skipped.as_deref(),
            Some("no PolicyTest declares endpoints")
        );
    }
}
