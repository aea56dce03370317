//! `ward explain`: one flow's verdict with the chain of reasons per direction (egress of the
//! source, ingress of the destination), on a one-off cluster: the repository's test
//! endpoints plus the endpoints named on the command line.
//!
//! Flow ends are written `namespace/key=value,...` (a pod with these labels),
//! `namespace/name` or `name` (an endpoint a PolicyTest declares), an entity (`world`,
//! `host`, ...), an address, or (destination only) a CIDR, which stands for its first host
//! address.

use super::cluster::TestCluster;
use super::outcome::{L7Outcome, Origins, Outcome, RuleSite, Side};
use super::peer::{PeerRef, ends};
use super::run::{backend_at, resolve_port, service_backends};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use ward_engine::{
    Direction, Endpoint, EndpointPolicy, Flow, L7Request, NodeId, Peer, PolicyRepository, Protocol,
};
use ward_schema::ResourceSet;
use ward_schema::policytest::PortSpec;

/// A flow end as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndSpec {
    /// `namespace/key=value,...`: a pod with these labels.
    Labels {
        /// The namespace.
        namespace: String,
        /// The labels.
        labels: BTreeMap<String, String>,
    },
    /// `namespace/name`: an endpoint a PolicyTest declares.
    Declared {
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
    },
    /// A declared endpoint's name, an entity or an address.
    Bare(String),
    /// A CIDR: its first host address.
    Cidr(IpAddr, u8),
}

impl EndSpec {
    /// Reads a flow end.
    pub fn parse(s: &str) -> Result<EndSpec, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("an empty flow end; write namespace/key=value, an endpoint name, an entity or an address".to_owned());
        }
        // A service (`service:namespace/name`) is read by the tests' own rules.
        if s.starts_with("service:") {
            return Ok(EndSpec::Bare(s.to_owned()));
        }
        let Some((left, right)) = s.split_once('/') else {
            return Ok(EndSpec::Bare(s.to_owned()));
        };
        if let Ok(ip) = left.parse::<IpAddr>() {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            return match right.parse::<u8>() {
                Ok(len) if len <= max => Ok(EndSpec::Cidr(ip, len)),
                _ => Err(format!(
                    "\"{s}\" is not a CIDR: the prefix length must be 0-{max}"
                )),
            };
        }
        if left.is_empty() {
            return Err(format!(
                "\"{s}\" has no namespace; write namespace/key=value,..."
            ));
        }
        if right.contains('=') || right.is_empty() {
            let mut labels = BTreeMap::new();
            for pair in right.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if k.is_empty() {
                    return Err(format!(
                        "\"{pair}\" in \"{s}\" is not a label; write key=value"
                    ));
                }
                labels.insert(k.to_owned(), v.to_owned());
            }
            return Ok(EndSpec::Labels {
                namespace: left.to_owned(),
                labels,
            });
        }
        Ok(EndSpec::Declared {
            namespace: left.to_owned(),
            name: right.to_owned(),
        })
    }
}

/// Reads `80/TCP`, `TCP/80`, `80` (TCP), `53/udp`, `http/TCP` (a named port of the
/// destination) or `ICMP/8`.
pub fn parse_port(s: &str) -> Result<(Option<String>, PortSpec), String> {
    let s = s.trim();
    let (a, b) = match s.split_once('/') {
        Some((a, b)) => (a.trim(), Some(b.trim())),
        None => (s, None),
    };
    let is_proto = |x: &str| x.parse::<u16>().is_err() && Protocol::parse(x).is_some();
    let (port, proto) = match b {
        None => (a, None),
        Some(b) if is_proto(b) => (a, Some(b)),
        Some(b) if is_proto(a) => (b, Some(a)),
        Some(_) => {
            return Err(format!(
                "\"{s}\" is not a port; write 80/TCP, 53/UDP or http/TCP"
            ));
        }
    };
    if port.is_empty() {
        return Err(format!("\"{s}\" has no port number"));
    }
    let spec = match port.parse::<i64>() {
        Ok(n) => PortSpec::Number(n),
        Err(_) => PortSpec::Name(port.to_owned()),
    };
    Ok((proto.map(str::to_owned), spec))
}

/// One end of the explained flow.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct End {
    /// How output names it.
    pub name: String,
    /// `endpoint`, `entity` or `address`.
    pub kind: &'static str,
    /// The security identity (endpoints).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<u32>,
    /// The security-relevant labels (endpoints).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// The address the flow uses, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// How one direction came to its decision.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Chain {
    /// `egress` or `ingress`.
    pub direction: &'static str,
    /// The endpoint whose policy decides (`shop/frontend`).
    pub endpoint: String,
    /// Its identity.
    pub identity: u32,
    /// The rules whose endpoint selector selects it.
    pub selected_by: Vec<RuleSite>,
    /// Those of them that have entries in this direction or enable its default deny.
    pub rules: Vec<RuleSite>,
    /// Whether the direction is in default deny.
    pub default_deny: bool,
    /// The rule that put it there (none with `policy-enforcement-mode: always`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_deny_by: Option<RuleSite>,
    /// The decision.
    pub decision: Side,
}

/// The explained flow.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The source.
    pub from: End,
    /// The destination.
    pub to: End,
    /// The protocol.
    pub protocol: String,
    /// The port (the ICMP type for ICMP).
    pub port: u16,
    /// The verdict and the deciding rule.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Egress of the source, then ingress of the destination (managed endpoints only).
    pub chain: Vec<Chain>,
    /// What the L7 proxies decide about the request given (`--http`, `--dns`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l7: Option<L7Outcome>,
    /// What the engine does not evaluate in the rules involved (L7, FQDNs, ...).
    pub notes: Vec<String>,
}

/// Explains the flow `from` → `to` on `port` (`80/TCP`) under the policies of `set`.
pub fn explain(
    set: &ResourceSet,
    tests: &TestCluster,
    from: &str,
    to: &str,
    port: &str,
    request: Option<&L7Request>,
) -> Result<Explanation, String> {
    let (from_spec, to_spec) = (
        EndSpec::parse(from).map_err(|e| format!("--from: {e}"))?,
        EndSpec::parse(to).map_err(|e| format!("--to: {e}"))?,
    );
    if matches!(from_spec, EndSpec::Cidr(..)) {
        return Err("--from: a CIDR is no source; give an address, an entity or labels".to_owned());
    }
    let (proto, port_spec) = parse_port(port).map_err(|e| format!("--port: {e}"))?;
    let mut cluster = tests.clone();
    let mut labels_of = BTreeMap::new();
    let src = place(&from_spec, "from", &mut cluster, &mut labels_of)
        .map_err(|e| format!("--from: {e}"))?;
    let dst =
        place(&to_spec, "to", &mut cluster, &mut labels_of).map_err(|e| format!("--to: {e}"))?;
    let repo = PolicyRepository::from_resources(cluster.cluster.clone(), set)
        .map_err(|e| e.to_string())?;
    let (protocol, port) = resolve_port(proto.as_deref(), Some(&port_spec), dst, &cluster)
        .map_err(|e| format!("--port: {e}"))?;
    let tied = ends(src, dst, &repo, &cluster);
    let first = tied.first().cloned().ok_or("no flow to explain")?;
    let flow = Flow {
        src: first.src,
        dst: first.dst,
        protocol,
        port,
    };
    // A flow to a service is judged at a backend, as the datapath sends it there first.
    let (flow, service_note) = match service_backends(&flow, &repo)? {
        None => (flow, None),
        Some((service, backends)) => {
            let at = backend_at(&backends[0]);
            let note = if backends.len() > 1 {
                format!(
                    "service {service} has {} backends; this explains the one at {at} (a PolicyTest expectation checks every one)",
                    backends.len()
                )
            } else {
                format!("service {service} sends this flow to its backend at {at}")
            };
            (backends[0], Some(note))
        }
    };
    let origins = Origins::of(set);
    let decision = repo.verdict(&flow);
    let outcome = Outcome::of(&decision, &origins);
    let l7 = L7Outcome::decide(&repo, &flow, &outcome, request, &origins);
    let end = |p: PeerRef, peer: Peer| describe(p, peer, &repo, &cluster, &labels_of);
    let mut chain = Vec::new();
    let mut involved = BTreeSet::new();
    for (side, peer, dir) in [
        (&outcome.egress, flow.src, Direction::Egress),
        (&outcome.ingress, flow.dst, Direction::Ingress),
    ] {
        let (Some(side), Some((name, policy))) = (side, managed(peer, &repo, &cluster, &labels_of))
        else {
            continue;
        };
        involved.extend(policy.selected_by().iter().map(|r| r.policy.clone()));
        chain.push(Chain {
            direction: side.direction,
            endpoint: name,
            identity: policy.identity().0,
            selected_by: policy
                .selected_by()
                .iter()
                .map(|r| RuleSite::of(r, &origins))
                .collect(),
            rules: policy
                .selected_by()
                .iter()
                .filter(|r| {
                    policy
                        .entries(dir)
                        .any(|(e, ..)| e.policy == r.policy && e.spec == r.spec)
                        || policy
                            .default_deny_by(dir)
                            .is_some_and(|d| d.policy == r.policy && d.spec == r.spec)
                })
                .map(|r| RuleSite::of(r, &origins))
                .collect(),
            default_deny: policy.is_enforced(dir),
            default_deny_by: policy
                .default_deny_by(dir)
                .map(|r| RuleSite::of(r, &origins)),
            decision: side.clone(),
        });
    }
    let mut notes: Vec<String> = repo
        .notes()
        .filter(|n| involved.contains(&n.rule.policy))
        .map(|n| format!("{}: {}", n.rule, n.message))
        .collect();
    if let Some(via) = first.via.as_ref().filter(|_| tied.len() > 1) {
        notes.push(format!(
            "remote-node stands for {} nodes here; this explains {via} (a PolicyTest expectation checks every one)",
            tied.len()
        ));
    }
    notes.extend(service_note);
    notes.extend(first.not_evaluated.iter().cloned());
    for c in chain
        .iter()
        .filter(|c| c.decision.l7_not_enforced && l7.is_none())
    {
        if let Some(r) = &c.decision.rule {
            notes.push(format!(
                "{}: its L7 rules are not enforced by ward; the flow is allowed at L4",
                r.rule
            ));
        }
    }
    Ok(Explanation {
        from: end(src, flow.src),
        to: end(dst, flow.dst),
        protocol: protocol.to_string(),
        port,
        outcome,
        chain,
        l7,
        notes,
    })
}

/// Adds a command-line endpoint to the one-off cluster, or finds the declared one.
fn place(
    spec: &EndSpec,
    role: &str,
    cluster: &mut TestCluster,
    labels_of: &mut BTreeMap<usize, String>,
) -> Result<PeerRef, String> {
    match spec {
        EndSpec::Bare(s) => PeerRef::parse(s, cluster),
        EndSpec::Declared { namespace, name } => cluster.find(namespace, name).map(PeerRef::Endpoint).ok_or_else(|| {
            format!("no PolicyTest declares an endpoint {namespace}/{name}; give its labels instead ({namespace}/app={name})")
        }),
        EndSpec::Cidr(ip, len) => Ok(PeerRef::Ip(first_host(*ip, *len))),
        EndSpec::Labels { namespace, labels } => {
            let shown = labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
            let endpoint = Endpoint {
                name: format!("ward-explain-{role}"),
                namespace: namespace.clone(),
                labels: labels.clone(),
                ..Endpoint::default()
            };
            let i = cluster.push_adhoc(endpoint);
            labels_of.insert(i, format!("{namespace}/{shown}"));
            Ok(PeerRef::Endpoint(i))
        }
    }
}

/// The first host address of a CIDR (the address itself for /31, /32, /127 and /128).
fn first_host(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            let net = u32::from(v4) & mask;
            IpAddr::from((if len < 31 { net + 1 } else { net }).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            let net = u128::from(v6) & mask;
            IpAddr::from((if len < 127 { net + 1 } else { net }).to_be_bytes())
        }
    }
}

/// The managed endpoint at a flow end (a workload, or a node's host endpoint, directly or by
/// address), with its resolved policy.
fn managed<'r>(
    peer: Peer,
    repo: &'r PolicyRepository,
    cluster: &TestCluster,
    labels_of: &BTreeMap<usize, String>,
) -> Option<(String, &'r EndpointPolicy)> {
    let host = |n: NodeId| {
        let name = format!("node:{}", cluster.cluster.nodes.get(n.0 as usize)?.name);
        Some((name, repo.node_policy(n)?))
    };
    let id = match peer {
        Peer::Endpoint(id) => id,
        Peer::Ip(ip) => match repo.endpoint_by_ip(ip) {
            Some(id) => id,
            None => return host(repo.node_by_ip(ip)?),
        },
        Peer::Node(n) => return host(n),
        Peer::Reserved(_) => return None,
    };
    let i = id.0 as usize;
    let name = labels_of
        .get(&i)
        .cloned()
        .unwrap_or_else(|| cluster.cluster.endpoints[i].full_name());
    Some((name, repo.endpoint_policy(id)?))
}

fn describe(
    p: PeerRef,
    peer: Peer,
    repo: &PolicyRepository,
    cluster: &TestCluster,
    labels_of: &BTreeMap<usize, String>,
) -> End {
    let address = match peer {
        Peer::Ip(ip) => Some(ip.to_string()),
        _ => None,
    };
    if let Some((name, policy)) = managed(peer, repo, cluster, labels_of) {
        return End {
            name,
            kind: "endpoint",
            identity: Some(policy.identity().0),
            labels: Some(policy.labels().to_string()),
            address,
        };
    }
    // A service here is its backend outside the declared endpoints: an address.
    let kind = match p {
        PeerRef::Ip(_) | PeerRef::Service(_) => "address",
        _ => "entity",
    };
    End {
        name: p.label(cluster),
        kind,
        identity: None,
        labels: None,
        address,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn flow_ends_and_ports_parse() {
        let labels = |ns: &str, kv: &[(&str, &str)]| EndSpec::Labels {
            namespace: ns.into(),
            labels: kv.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        };
        assert_eq!(
            EndSpec::parse("shop/app=frontend,tier=web"),
            Ok(labels("shop", &[("app", "frontend"), ("tier", "web")]))
        );
        assert_eq!(EndSpec::parse("shop/"), Ok(labels("shop", &[])));
        assert_eq!(
            EndSpec::parse("shop/frontend"),
            Ok(EndSpec::Declared {
                namespace: "shop".into(),
                name: "frontend".into()
            })
        );
        assert_eq!(
            EndSpec::parse("frontend"),
            Ok(EndSpec::Bare("frontend".into()))
        );
        assert_eq!(
            EndSpec::parse("10.0.0.0/8"),
            Ok(EndSpec::Cidr("10.0.0.0".parse().unwrap(), 8))
        );
        assert!(EndSpec::parse("10.0.0.0/33").is_err());
        assert!(EndSpec::parse("/app=x").is_err());
        assert!(EndSpec::parse("shop/=x").is_err());

        assert_eq!(
            parse_port("80/TCP"),
            Ok((Some("TCP".into()), PortSpec::Number(80)))
        );
        assert_eq!(
            parse_port("udp/53"),
            Ok((Some("udp".into()), PortSpec::Number(53)))
        );
        assert_eq!(parse_port("8080"), Ok((None, PortSpec::Number(8080))));
        assert_eq!(
            parse_port("http/TCP"),
            Ok((Some("TCP".into()), PortSpec::Name("http".into())))
        );
        assert!(parse_port("80/bogus").is_err());
        assert!(parse_port("/TCP").is_err());
    }

    #[test]
    fn a_cidr_stands_for_its_first_host() {
        let f = |s: &str, l| first_host(s.parse().unwrap(), l).to_string();
        assert_eq!(f("10.1.2.3", 8), "10.0.0.1");
        assert_eq!(f("10.1.2.3", 32), "10.1.2.3");
        assert_eq!(f("0.0.0.0", 0), "0.0.0.1");
        assert_eq!(f("2001:db8::5", 64), "2001:db8::1");
    }
}
