//! Running PolicyTest expectations through the engine.

use super::cluster::TestCluster;
use super::outcome::{L7Outcome, Origins, Outcome};
use super::peer::{Ends, PeerRef, ends};
use serde::Serialize;
use ward_engine::{
    Decision, Direction, EndpointPolicy, EngineError, Flow, HttpRequest, L7Request, Note, Peer,
    PolicyRepository, Protocol, Reason, Verdict,
};
use ward_schema::policytest::{Expect, PolicyTest, PortSpec, TestExpectation};
use ward_schema::{Kind, ResourceSet};

/// Every test's results.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestRun {
    /// One per PolicyTest, in the order given.
    pub tests: Vec<TestResult>,
    /// How many endpoints the tests declare together.
    pub endpoints: usize,
    /// How many policies the tests ran against.
    pub policies: usize,
}

/// One PolicyTest's results.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    /// `metadata.name`.
    pub name: String,
    /// `file:line` of the document.
    pub origin: String,
    /// The file alone.
    pub file: String,
    /// `spec.description`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// One per expectation, in order.
    pub expectations: Vec<ExpectationResult>,
}

/// Whether an expectation held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The verdict (and the deciding policy, when given) are as expected.
    Pass,
    /// They are not.
    Fail,
    /// The flow could not be evaluated (an entity that is no flow end, a port that does not
    /// resolve); counts as a failure.
    Error,
}

/// One expectation's result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpectationResult {
    /// Its position in `spec.expectations`.
    pub index: usize,
    /// The 1-based line where it is written, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The flow in one line: `frontend → backend TCP/80`.
    pub flow: String,
    /// What was expected.
    pub expect: Expect,
    /// The policy expected to decide, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// The expectation's description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Pass, fail or error.
    pub status: Status,
    /// Why it did not pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What the engine decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// What the L7 proxies decide about the request the expectation carries (when it
    /// carries one and layer 3/4 allows the flow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l7: Option<L7Outcome>,
    /// Rules on the flow's path (the source's egress, the destination's ingress) that name
    /// something the revision does not define, such as a CiliumCIDRGroup, so that part of
    /// them matches nothing: `<rule>: <what>`. With `--strict` such an expectation fails.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unresolved: Vec<String>,
    /// Sides of the flow whose own policy is not part of the verdict (an entity tied to no
    /// node, an L7 rule ward cannot evaluate), and why. With `--strict` such an expectation
    /// fails.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_evaluated: Vec<String>,
}

impl TestResult {
    /// The line of the document (from [`TestResult::origin`]), 0 when unknown.
    pub fn origin_line(&self) -> usize {
        self.origin
            .rsplit_once(':')
            .and_then(|(_, l)| l.parse().ok())
            .unwrap_or(0)
    }
}

impl TestRun {
    /// Every expectation result with its test.
    pub fn results(&self) -> impl Iterator<Item = (&TestResult, &ExpectationResult)> {
        self.tests
            .iter()
            .flat_map(|t| t.expectations.iter().map(move |e| (t, e)))
    }

    /// How many expectations.
    pub fn total(&self) -> usize {
        self.results().count()
    }

    /// How many did not pass.
    pub fn failed(&self) -> usize {
        self.results()
            .filter(|(_, e)| e.status != Status::Pass)
            .count()
    }

    /// Whether every expectation passed.
    pub fn passed(&self) -> bool {
        self.failed() == 0
    }
}

/// How expectations are judged.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// An expectation whose flow meets an unresolved rule (see
    /// [`ExpectationResult::unresolved`]) fails, whatever the verdict.
    pub strict: bool,
}

/// Runs every expectation of `tests` against the policies, CIDR groups and CiliumConfig of
/// `set`, on the endpoints of `cluster`.
pub fn run(
    tests: &[PolicyTest],
    set: &ResourceSet,
    cluster: &TestCluster,
    options: RunOptions,
) -> Result<TestRun, EngineError> {
    let repo = PolicyRepository::from_resources(cluster.cluster.clone(), set)?;
    let unresolved = Unresolved::of(&repo);
    let origins = Origins::of(set);
    let tests = tests
        .iter()
        .map(|t| TestResult {
            name: t.name.clone(),
            origin: t.origin.to_string(),
            file: t.origin.file.clone(),
            description: t.spec.description.clone(),
            expectations: t
                .spec
                .expectations
                .iter()
                .enumerate()
                .map(|(i, e)| ExpectationResult {
                    line: t.origin.item_lines.get(i).copied(),
                    ..evaluate(i, e, (&repo, &unresolved), cluster, &origins, options)
                })
                .collect(),
        })
        .collect();
    Ok(TestRun {
        tests,
        endpoints: cluster.len(),
        policies: set.iter().filter(|r| r.key.kind.is_policy()).count(),
    })
}

fn evaluate(
    index: usize,
    e: &TestExpectation,
    (repo, unresolved): (&PolicyRepository, &Unresolved<'_>),
    cluster: &TestCluster,
    origins: &Origins,
    options: RunOptions,
) -> ExpectationResult {
    let request = l7_request(e);
    let mut result = ExpectationResult {
        index,
        line: None,
        flow: format!(
            "{} → {} {}{}",
            e.from,
            e.to,
            written_port(e),
            request
                .as_ref()
                .map(|r| format!(" {r}"))
                .unwrap_or_default()
        ),
        expect: e.expect,
        decided_by: e.decided_by.clone(),
        description: e.description.clone(),
        status: Status::Error,
        message: None,
        outcome: None,
        l7: None,
        unresolved: Vec::new(),
        not_evaluated: Vec::new(),
    };
    let flows = match flows_of(e, repo, cluster) {
        Ok(f) => f,
        Err(message) => {
            result.message = Some(message);
            return result;
        }
    };
    // A named port without a written protocol is shown with the protocol it resolved to.
    if let (None, Some(PortSpec::Name(_)), Some((flow, _))) = (&e.protocol, &e.port, flows.first())
    {
        let written = written_port(e);
        let resolved = format!(
            "{}/{}",
            flow.protocol,
            written.split_once('/').map_or("", |(_, p)| p)
        );
        result.flow = result.flow.replacen(&written, &resolved, 1);
    }
    // `remote-node` may stand for several nodes: every one must meet the expectation, and
    // the first that does not is the one reported.
    for (i, (flow, ends)) in flows.iter().enumerate() {
        let judged = judge(e, flow, request.as_ref(), repo, origins);
        let last = i + 1 == flows.len();
        if judged.status == Status::Pass && !last {
            continue;
        }
        result.status = judged.status;
        result.message = judged.message.map(|m| match &ends.via {
            Some(via) if flows.len() > 1 || judged.status != Status::Pass => {
                format!("with {via}: {m}")
            }
            _ => m,
        });
        result.outcome = Some(judged.outcome);
        result.not_evaluated = ends.not_evaluated.clone();
        result.not_evaluated.extend(judged.l7_not_evaluated);
        result.l7 = judged.l7;
        result.unresolved = unresolved.on_path(flow);
        break;
    }
    let silent = !result.unresolved.is_empty() || !result.not_evaluated.is_empty();
    if options.strict && silent && result.status == Status::Pass {
        result.status = Status::Fail;
        result.message = Some(if result.unresolved.is_empty() {
            "a side of this flow is not evaluated (--strict)".into()
        } else {
            "a rule on this flow's path matches nothing here: it names something this revision does not define, or that only the cluster knows (--strict)".into()
        });
    }
    result
}

/// One flow's verdict measured against the expectation.
struct Judged {
    status: Status,
    message: Option<String>,
    outcome: Outcome,
    l7: Option<L7Outcome>,
    l7_not_evaluated: Vec<String>,
}

fn judge(
    e: &TestExpectation,
    flow: &Flow,
    request: Option<&L7Request>,
    repo: &PolicyRepository,
    origins: &Origins,
) -> Judged {
    let decision = repo.verdict(flow);
    let outcome = Outcome::of(&decision, origins);
    let l7 = L7Outcome::decide(repo, flow, &outcome, request, origins);
    let l7_not_evaluated = l7
        .iter()
        .flat_map(|o| o.sides.iter())
        .filter(|s| s.verdict == "not-evaluated")
        .map(|s| format!("L7 of the {} not evaluated: {}", s.direction, s.explanation))
        .collect();
    let allowed = outcome.allowed && l7.as_ref().is_none_or(|o| o.allowed);
    let verdict_ok = (e.expect == Expect::Allow) == allowed;
    let decided_ok = e
        .decided_by
        .as_deref()
        .map_or(Ok(()), |want| check_decided_by(want, &decision));
    let status = if verdict_ok && decided_ok.is_ok() {
        Status::Pass
    } else {
        Status::Fail
    };
    let message = if !verdict_ok {
        Some(verdict_message(e.expect, &outcome, l7.as_ref()))
    } else {
        decided_ok.err()
    };
    Judged {
        status,
        message,
        outcome,
        l7,
        l7_not_evaluated,
    }
}

/// `expected allow, got default-deny, decided by …`, or the proxy's refusal.
fn verdict_message(expect: Expect, outcome: &Outcome, l7: Option<&L7Outcome>) -> String {
    if let Some(side) = l7.and_then(L7Outcome::denied_by) {
        return format!(
            "expected {expect}, got deny at L7 ({} of the {}): {}",
            l7.map(|o| o.request.as_str()).unwrap_or_default(),
            if side.direction == "egress" {
                "source"
            } else {
                "destination"
            },
            side.explanation
        );
    }
    let by = outcome
        .decided_by
        .as_ref()
        .map(|r| format!(", decided by {}", r.located()))
        .unwrap_or_else(|| ", no rule involved".to_owned());
    let l7 = l7
        .map(|o| format!(" (L7: {} passes)", o.request))
        .unwrap_or_default();
    format!("expected {expect}, got {}{by}{l7}", outcome.verdict)
}

/// The request an expectation carries, if any.
pub fn l7_request(e: &TestExpectation) -> Option<L7Request> {
    if let Some(h) = &e.http {
        return Some(L7Request::Http(HttpRequest {
            method: h.method.clone().unwrap_or_else(|| "GET".to_owned()),
            path: h.path.clone().unwrap_or_else(|| "/".to_owned()),
            host: h.host.clone(),
            headers: h.headers.clone(),
        }));
    }
    e.dns.as_ref().map(|d| L7Request::Dns {
        name: d.query.clone(),
    })
}

/// A repository's unresolved notes (see [`ward_engine::Note::unresolved`]), gathered once
/// for the many flows they are looked up for.
pub struct Unresolved<'r> {
    repo: &'r PolicyRepository,
    notes: Vec<&'r Note>,
}

impl<'r> Unresolved<'r> {
    /// The unresolved notes of `repo`.
    pub fn of(repo: &'r PolicyRepository) -> Self {
        Unresolved {
            repo,
            notes: repo.notes().filter(|n| n.unresolved).collect(),
        }
    }

    /// Whether the repository has none (then no flow has any).
    pub fn is_empty(&self) -> bool {
        self.notes.is_empty()
    }

    /// The notes of the rules that select the flow's source (its egress) or destination
    /// (its ingress): `<rule>: <what>`.
    pub fn on_path(&self, flow: &Flow) -> Vec<String> {
        let mut out = Vec::new();
        if self.notes.is_empty() {
            return out;
        }
        for (end, dir) in [
            (flow.src, Direction::Egress),
            (flow.dst, Direction::Ingress),
        ] {
            let Some(policy) = policy_of(self.repo, end) else {
                continue;
            };
            let on_path = |n: &&&Note| {
                n.rule.direction() == Some(dir)
                    && policy
                        .selected_by()
                        .iter()
                        .any(|r| r.policy == n.rule.policy && r.spec == n.rule.spec)
            };
            for n in self.notes.iter().filter(on_path) {
                out.push(format!("{}: {}", n.rule, n.message));
            }
        }
        out
    }
}

/// The resolved policy at one end of a flow: a declared endpoint's or a node's host
/// endpoint's, directly or by address.
fn policy_of(repo: &PolicyRepository, end: Peer) -> Option<&EndpointPolicy> {
    match end {
        Peer::Endpoint(id) => repo.endpoint_policy(id),
        Peer::Node(n) => repo.node_policy(n),
        Peer::Ip(ip) => match repo.endpoint_by_ip(ip) {
            Some(id) => repo.endpoint_policy(id),
            None => repo.node_by_ip(ip).and_then(|n| repo.node_policy(n)),
        },
        Peer::Reserved(_) => None,
    }
}

/// `TCP/80`, `TCP/http`, `ICMP/8` as the expectation wrote it.
fn written_port(e: &TestExpectation) -> String {
    let proto = e
        .protocol
        .as_deref()
        .unwrap_or("TCP")
        .to_ascii_uppercase()
        .replace("ICMPV6", "ICMPv6");
    match &e.port {
        Some(PortSpec::Number(n)) => format!("{proto}/{n}"),
        Some(PortSpec::Name(s)) => format!("{proto}/{s}"),
        None => proto,
    }
}

/// The engine flows of an expectation (one per node `remote-node` stands for), each with
/// its ends.
pub fn flows_of(
    e: &TestExpectation,
    repo: &PolicyRepository,
    cluster: &TestCluster,
) -> Result<Vec<(Flow, Ends)>, String> {
    let src = PeerRef::parse(&e.from, cluster)?;
    let dst = PeerRef::parse(&e.to, cluster)?;
    let (protocol, port) = resolve_port(e.protocol.as_deref(), e.port.as_ref(), dst, cluster)?;
    let mut out = Vec::new();
    for ends in ends(src, dst, repo, cluster) {
        let flow = Flow {
            src: ends.src,
            dst: ends.dst,
            protocol,
            port,
        };
        out.extend(through_service(flow, ends, repo)?);
    }
    Ok(out)
}

/// A flow to a service's address and port becomes one flow per backend (as the datapath
/// translates it before the policy), each saying which backend it reached; any other flow
/// stays as it is.
fn through_service(
    flow: Flow,
    ends: Ends,
    repo: &PolicyRepository,
) -> Result<Vec<(Flow, Ends)>, String> {
    let Some((service, flows)) = service_backends(&flow, repo)? else {
        return Ok(vec![(flow, ends)]);
    };
    Ok(flows
        .into_iter()
        .map(|f| {
            let via = format!("service {service} backend {}", backend_at(&f));
            let ends = Ends {
                dst: f.dst,
                via: Some(
                    ends.via
                        .as_ref()
                        .map_or(via.clone(), |v| format!("{v}, {via}")),
                ),
                ..ends.clone()
            };
            (f, ends)
        })
        .collect())
}

/// Where a flow to a service's address and port lands: the service (`namespace/name`) and
/// one flow per backend, with its target port; `None` for a flow to anything else. A service
/// port without backends is an error: its packets are dropped before any policy, so no
/// verdict applies.
pub(crate) fn service_backends(
    flow: &Flow,
    repo: &PolicyRepository,
) -> Result<Option<(String, Vec<Flow>)>, String> {
    let Some((svc, flows)) = repo.service_flows(flow) else {
        return Ok(None);
    };
    if flows.is_empty() {
        return Err(format!(
            "service {} has no backend for {}/{} (no declared endpoint with an address matches its selector and has the target port, or it lists none): the datapath drops its packets before any policy",
            svc.full_name(),
            flow.protocol,
            flow.port
        ));
    }
    Ok(Some((svc.full_name(), flows)))
}

/// `address:port` of a flow to a service's backend.
pub(crate) fn backend_at(f: &Flow) -> String {
    match f.dst {
        Peer::Ip(ip) => format!("{ip}:{}", f.port),
        _ => f.port.to_string(),
    }
}

/// The protocol and port number of a flow to `dst`: a named port is looked up in the
/// destination's declared ports (and gives the protocol when none is written); ICMP
/// without a port is an echo request (type 8, or 128 for ICMPv6).
pub fn resolve_port(
    protocol: Option<&str>,
    port: Option<&PortSpec>,
    dst: PeerRef,
    cluster: &TestCluster,
) -> Result<(Protocol, u16), String> {
    let written = match protocol {
        Some(p) => Some(Protocol::parse(p).ok_or_else(|| format!("unknown protocol \"{p}\""))?),
        None => None,
    };
    let icmp = matches!(written, Some(Protocol::ICMP | Protocol::ICMPV6));
    let max = if icmp { 255 } else { 65535 };
    let number = |n: i64| {
        u16::try_from(n)
            .ok()
            .filter(|p| i64::from(*p) <= max)
            .ok_or_else(|| format!("port {n} is impossible; use 0-{max}"))
    };
    match port {
        None if icmp => Ok((
            written.unwrap_or(Protocol::ICMP),
            if written == Some(Protocol::ICMPV6) {
                128
            } else {
                8
            },
        )),
        None => Err("an expectation needs a port".to_owned()),
        Some(PortSpec::Number(n)) => Ok((written.unwrap_or(Protocol::TCP), number(*n)?)),
        Some(PortSpec::Name(s)) => {
            if let Ok(n) = s.parse::<i64>() {
                return Ok((written.unwrap_or(Protocol::TCP), number(n)?));
            }
            if let PeerRef::Service(i) = dst {
                let svc = &cluster.cluster.services[i];
                return match svc
                    .ports
                    .iter()
                    .find(|p| p.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(s)))
                {
                    Some(p) => Ok((written.unwrap_or(p.protocol), p.port)),
                    None => Err(format!(
                        "service {} has no port named \"{s}\"",
                        svc.full_name()
                    )),
                };
            }
            let declared = dst.endpoint(cluster).and_then(|i| {
                cluster.cluster.endpoints[i]
                    .named_ports
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(s))
                    .map(|(_, v)| *v)
            });
            match declared {
                Some(np) => Ok((written.unwrap_or(np.protocol), np.port)),
                None => Err(format!(
                    "named port \"{s}\" is not declared by the destination"
                )),
            }
        }
    }
}

/// Checks `decidedBy`. For a dropped flow the rule that dropped it (or enabled the default
/// deny that did) must belong to the named policy; for an allowed flow, the allowing rule of
/// either direction (both must allow). `default-deny`: dropped because nothing allows it;
/// `no-policy`: allowed with no rule involved. A rule path may follow after a space.
pub fn check_decided_by(want: &str, d: &Decision<'_>) -> Result<(), String> {
    let actual = || match d.rule {
        Some(r) => format!("decided by {r}"),
        None => format!("{} with no rule involved", d.verdict),
    };
    let ok = match want.trim() {
        "default-deny" => d.verdict == Verdict::DefaultDeny,
        "no-policy" => d.verdict == Verdict::Allow && d.rule.is_none(),
        other => {
            let (policy, path) = match other.split_once(char::is_whitespace) {
                Some((p, rest)) => (p, Some(rest.trim())),
                None => (other, None),
            };
            let policy = canonical_policy(policy);
            let candidates: Vec<_> = if d.verdict == Verdict::Allow {
                [&d.egress, &d.ingress]
                    .into_iter()
                    .flatten()
                    .filter(|s| s.reason == Reason::Allowed)
                    .filter_map(|s| s.rule)
                    .collect()
            } else {
                d.rule.into_iter().collect()
            };
            candidates
                .iter()
                .any(|r| r.policy.to_string() == policy && path.is_none_or(|p| r.path() == p))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected decidedBy {want}, but {}", actual()))
    }
}

/// `cnp/shop/x` → `CiliumNetworkPolicy/shop/x`; full kind names are kept.
fn canonical_policy(s: &str) -> String {
    let (kind, rest) = s.split_once('/').unwrap_or((s, ""));
    let full = Kind::ALL
        .into_iter()
        .find(|k| k.as_str() == kind || k.short_name().eq_ignore_ascii_case(kind));
    match full {
        Some(k) => format!("{}/{rest}", k.as_str()),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::cluster::TestCluster;
    use serde_json::json;
    use ward_schema::{Origin, Resource, ResourceKey};

    fn policy(ns: &str, name: &str, spec: serde_json::Value) -> Resource {
        let object = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": name, "namespace": ns}, "spec": spec});
        Resource {
            key: ResourceKey::new(Kind::CiliumNetworkPolicy, Some(ns), name),
            object,
            origin: Origin {
                file: format!("{name}.yaml"),
                line: 7,
                document: 0,
                item_lines: Vec::new(),
            },
        }
    }

    fn setup(expectations: serde_json::Value) -> (Vec<PolicyTest>, ResourceSet, TestCluster) {
        let spec = json!({
            "endpoints": [
                {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
                {"name": "api", "namespace": "shop", "labels": {"app": "api"}, "ports": [{"name": "http", "port": 8080}]},
                {"name": "other", "namespace": "shop", "labels": {"app": "other"}}
            ],
            "expectations": expectations
        });
        let api_in = policy(
            "shop",
            "api-in",
            json!({
                "endpointSelector": {"matchLabels": {"app": "api"}},
                "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "web"}}], "toPorts": [{"ports": [{"port": "http", "protocol": "TCP"}]}]}]
            }),
        );
        suite(spec, vec![api_in])
    }

    /// A cidrGroupRef to a group the revision lacks matches nothing (Cilium reports no
    /// error): the expectation says so beside its verdict, and fails with --strict.
    #[test]
    fn an_unknown_cidr_group_is_reported_and_fails_with_strict() {
        let (tests, mut set, cluster) = setup(json!([
            {"from": "web", "to": "api", "port": 8080, "expect": "allow"},
            {"from": "other", "to": "api", "port": 8080, "expect": "deny"},
            {"from": "api", "to": "web", "port": 80, "expect": "allow"}
        ]));
        set.insert(policy(
            "shop",
            "api-from-partners",
            json!({
                "endpointSelector": {"matchLabels": {"app": "api"}},
                "ingress": [{"fromCIDRSet": [{"cidrGroupRef": "partners"}]}]
            }),
        ));
        let lenient = run(&tests, &set, &cluster, RunOptions::default()).unwrap();
        assert!(lenient.passed());
        let r = &lenient.tests[0].expectations;
        let note = "CiliumNetworkPolicy/shop/api-from-partners spec.ingress[0]: CiliumCIDRGroup \"partners\" is not in this revision: cidrGroupRef matches nothing";
        assert_eq!(r[0].unresolved, [note]);
        assert_eq!(r[1].unresolved, [note]);
        assert!(
            r[2].unresolved.is_empty(),
            "the api's egress is not on that path"
        );
        let strict = run(&tests, &set, &cluster, RunOptions { strict: true }).unwrap();
        let statuses: Vec<Status> = strict.results().map(|(_, e)| e.status).collect();
        assert_eq!(statuses, [Status::Fail, Status::Fail, Status::Pass]);
        assert_eq!(
            strict.tests[0].expectations[0].message.as_deref(),
            Some(
                "a rule on this flow's path matches nothing here: it names something this revision does not define, or that only the cluster knows (--strict)"
            )
        );
    }

    #[test]
    fn expectations_pass_and_fail_with_the_deciding_rule() {
        let (tests, set, cluster) = setup(json!([
            {"from": "web", "to": "api", "port": "http", "expect": "allow", "decidedBy": "CiliumNetworkPolicy/shop/api-in"},
            {"from": "web", "to": "api", "port": 8080, "expect": "allow", "decidedBy": "cnp/shop/api-in spec.ingress[0]"},
            {"from": "other", "to": "api", "port": 8080, "expect": "deny", "decidedBy": "default-deny"},
            {"from": "web", "to": "other", "port": 80, "expect": "allow", "decidedBy": "no-policy"},
            {"from": "other", "to": "api", "port": 8080, "expect": "allow"},
            {"from": "web", "to": "api", "port": 8080, "expect": "allow", "decidedBy": "CiliumNetworkPolicy/shop/elsewhere"},
            {"from": "cluster", "to": "api", "port": 80, "expect": "deny"},
            {"from": "web", "to": "other", "port": "http", "expect": "deny"}
        ]));
        let run = run(&tests, &set, &cluster, RunOptions::default()).unwrap();
        let statuses: Vec<Status> = run.results().map(|(_, e)| e.status).collect();
        use Status::*;
        assert_eq!(statuses, [Pass, Pass, Pass, Pass, Fail, Fail, Error, Error]);
        assert_eq!(
            (run.total(), run.failed(), run.endpoints, run.policies),
            (8, 4, 3, 1)
        );
        let r = &run.tests[0].expectations;
        assert_eq!(r[0].flow, "web → api TCP/http");
        assert_eq!(
            r[4].message.as_deref(),
            Some(
                "expected allow, got default-deny, decided by CiliumNetworkPolicy/shop/api-in spec (api-in.yaml:7)"
            )
        );
        assert_eq!(
            r[5].message.as_deref(),
            Some(
                "expected decidedBy CiliumNetworkPolicy/shop/elsewhere, but decided by CiliumNetworkPolicy/shop/api-in spec.ingress[0]"
            )
        );
        assert!(r[6].message.as_deref().unwrap().contains("many identities"));
        assert_eq!(
            r[7].message.as_deref(),
            Some("named port \"http\" is not declared by the destination")
        );
        let outcome = r[0].outcome.as_ref().unwrap();
        assert_eq!(
            outcome.decided_by.as_ref().unwrap().origin.as_deref(),
            Some("api-in.yaml:7")
        );
        assert_eq!(outcome.ingress.as_ref().unwrap().reason, "allowed");
        assert_eq!(outcome.egress.as_ref().unwrap().reason, "not-selected");
    }

    fn suite(
        spec: serde_json::Value,
        policies: Vec<Resource>,
    ) -> (Vec<PolicyTest>, ResourceSet, TestCluster) {
        let test = PolicyTest {
            name: "t".into(),
            origin: Origin {
                file: "t.yaml".into(),
                line: 4,
                document: 0,
                item_lines: Vec::new(),
            },
            spec: serde_json::from_value(spec).unwrap(),
        };
        let mut set = ResourceSet::new();
        for p in policies {
            set.insert(p);
        }
        let cluster = TestCluster::build([&test]).unwrap();
        (vec![test], set, cluster)
    }

    fn ccnp(name: &str, spec: serde_json::Value) -> Resource {
        let object = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": name}, "spec": spec});
        Resource {
            key: ResourceKey::new(Kind::CiliumClusterwideNetworkPolicy, None, name),
            object,
            origin: Origin::default(),
        }
    }

    /// An HTTP request is decided by the HTTP rules after layer 4 allowed the flow: a
    /// request no rule matches fails an `allow` expectation with the proxy's answer, and
    /// passes a `deny` one.
    #[test]
    fn http_expectations_are_decided_by_the_l7_rules() {
        let (tests, set, cluster) = suite(
            json!({
                "endpoints": [
                    {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
                    {"name": "api", "namespace": "shop", "labels": {"app": "api"}}
                ],
                "expectations": [
                    {"from": "web", "to": "api", "port": 80, "expect": "allow", "http": {"method": "GET", "path": "/items/7"}},
                    {"from": "web", "to": "api", "port": 80, "expect": "deny", "http": {"method": "DELETE", "path": "/items/7"}},
                    {"from": "web", "to": "api", "port": 80, "expect": "allow", "http": {"path": "/admin"}},
                    {"from": "web", "to": "api", "port": 80, "expect": "allow"}
                ]
            }),
            vec![policy(
                "shop",
                "api-http",
                json!({
                    "endpointSelector": {"matchLabels": {"app": "api"}},
                    "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "web"}}],
                                 "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}],
                                              "rules": {"http": [{"method": "GET", "path": "/items/[0-9]+"}]}}]}]
                }),
            )],
        );
        let run = run(&tests, &set, &cluster, RunOptions::default()).unwrap();
        let r = &run.tests[0].expectations;
        let statuses: Vec<Status> = r.iter().map(|e| e.status).collect();
        assert_eq!(
            statuses,
            [Status::Pass, Status::Pass, Status::Fail, Status::Pass]
        );
        assert_eq!(r[0].flow, "web → api TCP/80 HTTP GET /items/7");
        assert_eq!(
            r[2].message.as_deref(),
            Some(
                "expected allow, got deny at L7 (HTTP GET /admin of the destination): no HTTP rule of CiliumNetworkPolicy/shop/api-http spec.ingress[0] allows it: the proxy answers 403 Forbidden"
            )
        );
        assert!(r[3].l7.is_none(), "no request, no L7 verdict");
        assert!(r[1].l7.as_ref().is_some_and(|o| !o.allowed));
    }

    /// `host` is the node of the pod at the other end and `remote-node` every other node,
    /// each with its own host policy; an entity tied to no node is said to be not
    /// evaluated, and fails with --strict.
    #[test]
    fn host_entities_are_tied_to_nodes_and_untied_ones_are_said() {
        let (tests, set, cluster) = suite(
            json!({
                "nodes": [
                    {"name": "w1", "ip": "192.168.0.1", "labels": {"role": "worker"}},
                    {"name": "w2", "ip": "192.168.0.2", "labels": {"role": "worker"}},
                    {"name": "cp", "ip": "192.168.0.3", "labels": {"role": "control-plane"}}
                ],
                "endpoints": [
                    {"name": "job", "namespace": "jobs", "labels": {"app": "job"}, "node": "w1"},
                    {"name": "loose", "namespace": "jobs", "labels": {"app": "loose"}}
                ],
                "expectations": [
                    {"from": "job", "to": "host", "port": 10250, "expect": "deny"},
                    {"from": "job", "to": "node:cp", "port": 10250, "expect": "allow"},
                    {"from": "remote-node", "to": "node:w1", "port": 10250, "expect": "allow"},
                    {"from": "remote-node", "to": "job", "port": 8080, "expect": "allow"},
                    {"from": "loose", "to": "host", "port": 10250, "expect": "allow"}
                ]
            }),
            vec![
                ccnp(
                    "workers",
                    json!({
                        "nodeSelector": {"matchLabels": {"role": "worker"}},
                        "ingress": [{"fromEntities": ["remote-node"]}]
                    }),
                ),
                ccnp(
                    "control-plane-egress",
                    json!({
                        "nodeSelector": {"matchLabels": {"role": "control-plane"}},
                        "egress": [{"toEntities": ["world", "remote-node"]}]
                    }),
                ),
            ],
        );
        let lenient = run(&tests, &set, &cluster, RunOptions::default()).unwrap();
        let r = &lenient.tests[0].expectations;
        let statuses: Vec<Status> = r.iter().map(|e| e.status).collect();
        use Status::*;
        assert_eq!(statuses, [Pass, Pass, Pass, Fail, Pass]);
        // remote-node → job stands for w2 (allowed) and cp, whose own egress is in default
        // deny: the expectation fails there, and says so.
        assert_eq!(
            r[3].message.as_deref(),
            Some(
                "with remote-node as node:cp: expected allow, got default-deny, decided by CiliumClusterwideNetworkPolicy/control-plane-egress spec"
            )
        );
        assert_eq!(
            r[4].not_evaluated,
            [
                "ingress of the destination not evaluated: host is tied to no node here, so no host policy applies to it (give the other end a node, or write node:<name>)"
            ]
        );
        let strict = run(&tests, &set, &cluster, RunOptions { strict: true }).unwrap();
        assert_eq!(strict.tests[0].expectations[4].status, Fail);
        assert_eq!(strict.tests[0].expectations[0].status, Pass);
    }

    #[test]
    fn ports_resolve_like_the_datapath_sees_them() {
        let (_, _, cluster) = setup(json!([]));
        let api = PeerRef::Endpoint(1);
        let name = PortSpec::Name("HTTP".into());
        assert_eq!(
            resolve_port(None, Some(&name), api, &cluster),
            Ok((Protocol::TCP, 8080))
        );
        assert_eq!(
            resolve_port(
                Some("UDP"),
                Some(&PortSpec::Name("53".into())),
                api,
                &cluster
            ),
            Ok((Protocol::UDP, 53))
        );
        assert_eq!(
            resolve_port(Some("ICMP"), None, api, &cluster),
            Ok((Protocol::ICMP, 8))
        );
        assert_eq!(
            resolve_port(Some("ICMPv6"), None, api, &cluster),
            Ok((Protocol::ICMPV6, 128))
        );
        assert!(resolve_port(Some("ICMP"), Some(&PortSpec::Number(300)), api, &cluster).is_err());
        assert!(resolve_port(None, Some(&PortSpec::Number(70000)), api, &cluster).is_err());
        assert!(resolve_port(None, None, api, &cluster).is_err());
    }
}
