//! Verdicts for flows, with the rule that decided (reference §4.1, §4.2).
//!
//! A flow passes only if the egress policy of its source (when the source is a managed
//! endpoint) AND the ingress policy of its destination (when managed) both allow it. In each
//! direction: a matching deny entry wins; else a matching allow entry allows; else the
//! direction drops the flow if it is in default deny, and lets it pass if not.
//!
//! The remote identity depends on where the policy is evaluated: a node's address is
//! `reserved:host` (1) to endpoints on that node and `reserved:remote-node` (6, or the node's
//! label identity with `enable-node-selector-labels`) to endpoints elsewhere. An address that
//! is no endpoint and no node is `world` (2), where CIDR peers apply by containment.
//! Ingress from the local host to a workload endpoint passes unless denied (`allow-localhost`,
//! see [`super::EngineConfig::allow_localhost`]).
//! Replies of allowed connections are not flows here: conntrack lets them pass (§6).

use super::config::Enforcement;
use super::identity::Identity;
use super::l7::{Applicable, L7Decision, L7Request};
use super::policy::PolicyRepository;
use super::ports::Protocol;
use super::resolve::{EndpointPolicy, NamedPorts, Remote};
use super::rule::{Direction, RuleRef};
use super::world::{EndpointId, NodeId, Owner};
use std::fmt;
use std::net::IpAddr;

/// One end of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A workload endpoint of the repository's cluster.
    Endpoint(EndpointId),
    /// An address: an endpoint's, a node's (its host endpoint), or else `world`.
    Ip(IpAddr),
    /// A node's host endpoint (addressed by name, for nodes without an address).
    Node(NodeId),
    /// A reserved identity without an address (`health`, `init`, `kube-apiserver`, ...).
    /// `init` is a managed endpoint (CCNPs can select `reserved:init`); `host` is the local
    /// host of whichever endpoint evaluates the flow (address a node's host endpoint by its
    /// IP to get host-versus-remote-node right); `world` matches only `/0` CIDR peers.
    Reserved(Identity),
}

/// A new connection (or datagram) from `src` to `dst`; for ICMP the port is the ICMP type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// The source.
    pub src: Peer,
    /// The destination.
    pub dst: Peer,
    /// The IP protocol.
    pub protocol: Protocol,
    /// The destination port (the ICMP type for ICMP/ICMPv6, 0 for port-less protocols).
    pub port: u16,
}

impl Flow {
    /// A TCP flow to `port`.
    pub fn tcp(src: Peer, dst: Peer, port: u16) -> Flow {
        Flow {
            src,
            dst,
            protocol: Protocol::TCP,
            port,
        }
    }
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The flow passes.
    Allow,
    /// A deny rule drops it (Cilium drop reason 181, "Policy denied by denylist").
    Deny,
    /// No rule allows it in a direction that is in default deny (drop reason 133).
    DefaultDeny,
}

/// Why one direction decided as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No rule selects the endpoint: it is unrestricted.
    NotSelected,
    /// Rules select the endpoint, but none enables default deny in this direction, and no
    /// deny rule matches.
    NotEnforced,
    /// `policy-enforcement-mode: never`.
    EnforcementDisabled,
    /// An allow entry matches (the rule is given).
    Allowed,
    /// A deny entry matches (the rule is given).
    Denied,
    /// Ingress from the local host to a workload endpoint: `allow-localhost` lets it pass
    /// unless a deny rule matches.
    LocalHost,
    /// Nothing matches and the direction is in default deny (the rule that enabled it is
    /// given, or none with `policy-enforcement-mode: always`).
    NoAllowMatches,
}

/// The decision of one direction; borrows the deciding rule from the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectionDecision<'a> {
    /// Egress of the source or ingress of the destination.
    pub direction: Direction,
    /// What this direction does with the flow.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// The deciding entry (allow/deny), or the rule that enabled default deny.
    pub rule: Option<&'a RuleRef>,
    /// The remote identity as this direction saw it.
    pub remote: Identity,
    /// The allowing entry has L7 rules that ward does not enforce (it allows at L4).
    pub l7_not_enforced: bool,
}

/// The verdict for a flow and how it came about; borrows rules from the repository (clone a
/// [`RuleRef`] to keep it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    /// The outcome.
    pub verdict: Verdict,
    /// The direction that dropped the flow; for an allowed flow, the direction whose allow
    /// rule is reported (ingress first); `None` when no rule was involved.
    pub direction: Option<Direction>,
    /// The deciding rule of that direction.
    pub rule: Option<&'a RuleRef>,
    /// Egress of the source; `None` when the source is not a managed endpoint.
    pub egress: Option<DirectionDecision<'a>>,
    /// Ingress of the destination; `None` when the destination is not a managed endpoint.
    pub ingress: Option<DirectionDecision<'a>>,
}

/// A flow end resolved against the cluster.
#[derive(Debug, Clone, Copy)]
enum Place {
    Endpoint(u32),
    Node(u32),
    World(Option<IpAddr>),
    Reserved(Identity),
}

impl PolicyRepository {
    /// The verdict for `flow` under the resolved policy.
    pub fn verdict(&self, flow: &Flow) -> Decision<'_> {
        let (src, dst) = (self.place(flow.src), self.place(flow.dst));
        let named = self.named_ports(dst);
        let egress = self
            .side(src, dst)
            .map(|(policy, remote)| self.decide(policy, Direction::Egress, remote, flow, named));
        let ingress = self
            .side(dst, src)
            .map(|(policy, remote)| self.decide(policy, Direction::Ingress, remote, flow, named));
        let dropped = [&egress, &ingress]
            .into_iter()
            .flatten()
            .find(|d| d.verdict != Verdict::Allow);
        let reported = dropped.or_else(|| {
            [&ingress, &egress]
                .into_iter()
                .flatten()
                .find(|d| d.reason == Reason::Allowed)
        });
        Decision {
            verdict: dropped.map_or(Verdict::Allow, |d| d.verdict),
            direction: reported.map(|d| d.direction),
            rule: reported.and_then(|d| d.rule),
            egress,
            ingress,
        }
    }

    /// Where a flow end is. An endpoint or node without an agent is an address outside the
    /// cluster (`world`), as Cilium sees a node without Cilium and its pods.
    fn place(&self, peer: Peer) -> Place {
        let w = &self.world;
        match peer {
            Peer::Endpoint(id) => match w.endpoints.get(id.0 as usize) {
                Some(e) if !e.managed => Place::World(e.ip),
                _ => Place::Endpoint(id.0),
            },
            Peer::Reserved(id) => Place::Reserved(id),
            Peer::Node(n) => match w.nodes.get(n.0 as usize) {
                Some(node) if !node.managed => Place::World(node.ip),
                _ => Place::Node(n.0),
            },
            Peer::Ip(ip) => match self.world.ips.get(&ip) {
                Some(Owner::Endpoint(e)) => Place::Endpoint(*e),
                Some(Owner::Node(n)) => Place::Node(*n),
                None => Place::World(Some(ip)),
            },
        }
    }

    /// The resolved policy at `end` (when it is managed) and the remote end `other` as that
    /// policy sees it.
    fn side(&self, end: Place, other: Place) -> Option<(&EndpointPolicy, Remote)> {
        let (policy, node) = self.subject_of(end)?;
        Some((policy, self.remote(other, node)))
    }

    /// The resolved policy of a managed place, with the node it runs on.
    fn subject_of(&self, place: Place) -> Option<(&EndpointPolicy, Option<u32>)> {
        let w = &self.world;
        let (subject, node) = match place {
            Place::Endpoint(e) => w.endpoints.get(e as usize).map(|e| (e.subject, e.node))?,
            Place::Node(n) => (w.nodes.get(n as usize)?.host_subject, Some(n)),
            Place::Reserved(Identity::INIT) => (w.init_subject, None),
            Place::World(_) | Place::Reserved(_) => return None,
        };
        Some((&self.resolved[subject as usize], node))
    }

    /// The remote end as seen by an endpoint on `perspective`.
    fn remote(&self, place: Place, perspective: Option<u32>) -> Remote {
        let w = &self.world;
        match place {
            Place::Endpoint(e) => match w.endpoints.get(e as usize) {
                Some(ep) => Remote {
                    id: ep.identity,
                    ip: ep.ip,
                    world: false,
                },
                None => Remote {
                    id: Identity::ANY,
                    ip: None,
                    world: false,
                },
            },
            Place::Node(n) => {
                let node = &w.nodes[n as usize];
                let id = if perspective == Some(n) {
                    Identity::HOST
                } else {
                    node.remote_identity
                };
                Remote {
                    id,
                    ip: node.ip,
                    world: false,
                }
            }
            Place::World(ip) => Remote {
                id: Identity::WORLD,
                ip,
                world: true,
            },
            Place::Reserved(id) => {
                let world = matches!(
                    id,
                    Identity::WORLD | Identity::WORLD_IPV4 | Identity::WORLD_IPV6
                );
                Remote {
                    id,
                    ip: None,
                    world,
                }
            }
        }
    }

    fn named_ports(&self, place: Place) -> Option<&NamedPorts> {
        match place {
            Place::Endpoint(e) => self.world.endpoints.get(e as usize).map(|e| &e.named),
            _ => None,
        }
    }

    fn decide<'a>(
        &self,
        policy: &'a EndpointPolicy,
        dir: Direction,
        remote: Remote,
        flow: &Flow,
        named: Option<&NamedPorts>,
    ) -> DirectionDecision<'a> {
        let mut d = DirectionDecision {
            direction: dir,
            verdict: Verdict::Allow,
            reason: Reason::EnforcementDisabled,
            rule: None,
            remote: remote.id,
            l7_not_enforced: false,
        };
        if self.config.enforcement == Enforcement::Never {
            return d;
        }
        let dp = policy.direction(dir);
        let hit = dp.lookup(&remote, flow.protocol, flow.port, named);
        if let Some(e) = hit.deny {
            (d.verdict, d.reason, d.rule) =
                (Verdict::Deny, Reason::Denied, dp.rules.get(e as usize));
        } else if let Some(e) = hit.allow {
            (d.reason, d.rule, d.l7_not_enforced) =
                (Reason::Allowed, dp.rules.get(e as usize), hit.l7);
        } else if dir == Direction::Ingress
            && remote.id == Identity::HOST
            && self.localhost_allowed(policy)
        {
            d.reason = Reason::LocalHost;
        } else if dp.enforced {
            (d.verdict, d.reason, d.rule) = (
                Verdict::DefaultDeny,
                Reason::NoAllowMatches,
                dp.default_deny_by.as_ref(),
            );
        } else {
            d.reason = if policy.selected_by.is_empty() {
                Reason::NotSelected
            } else {
                Reason::NotEnforced
            };
        }
        d
    }
}

impl PolicyRepository {
    /// What the L7 proxies decide about `request` carried by `flow`, per direction whose
    /// layer-3/4 policy allows the flow through allow rules with L7 rules on its port (a
    /// direction that drops the flow, or whose allowing rules have none, sends nothing to a
    /// proxy and is left out). See the `l7` module.
    pub fn l7_verdict(&self, flow: &Flow, request: &L7Request) -> Vec<(Direction, L7Decision)> {
        if self.config.enforcement == Enforcement::Never {
            return Vec::new();
        }
        let (src, dst) = (self.place(flow.src), self.place(flow.dst));
        let named = self.named_ports(dst);
        let mut out = Vec::new();
        for (end, other, dir) in [
            (src, dst, Direction::Egress),
            (dst, src, Direction::Ingress),
        ] {
            let Some((policy, remote)) = self.side(end, other) else {
                continue;
            };
            let dp = policy.direction(dir);
            let hit = dp.lookup(&remote, flow.protocol, flow.port, named);
            if hit.deny.is_some() || hit.allow.is_none() {
                continue;
            }
            let mut applicable = Applicable::default();
            for e in dp.allows(&remote, flow.protocol, flow.port, named) {
                let entry = &dp.entries[e as usize];
                applicable.add(
                    &entry.rule,
                    &entry.l7_ports,
                    (flow.protocol, flow.port, named),
                );
            }
            if let Some(d) = applicable.decide(request, dp.enforced) {
                out.push((dir, d));
            }
        }
        out
    }

    fn localhost_allowed(&self, policy: &EndpointPolicy) -> bool {
        self.config.allow_localhost && policy.identity != Identity::HOST
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::DefaultDeny => "default-deny",
        })
    }
}

impl fmt::Display for DirectionDecision<'_> {
    /// `ingress of the destination: denied by CiliumNetworkPolicy/ns/p spec.ingressDeny[0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.direction {
            Direction::Egress => "egress of the source",
            Direction::Ingress => "ingress of the destination",
        };
        write!(f, "{side} (remote identity {}): ", self.remote)?;
        let rule = self
            .rule
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        match self.reason {
            Reason::NotSelected => f.write_str("allowed: no policy selects this endpoint"),
            Reason::NotEnforced => {
                write!(
                    f,
                    "allowed: no rule selecting this endpoint enables {} default deny, and no deny rule matches",
                    self.direction
                )
            }
            Reason::EnforcementDisabled => f.write_str("allowed: policy-enforcement-mode is never"),
            Reason::LocalHost => f.write_str(
                "allowed: the local host may always reach its endpoints (allow-localhost)",
            ),
            Reason::Allowed if self.l7_not_enforced => write!(
                f,
                "allowed by {rule} (its L7 rules are not enforced: allowed at L4)"
            ),
            Reason::Allowed => write!(f, "allowed by {rule}"),
            Reason::Denied => write!(f, "denied by {rule}"),
            Reason::NoAllowMatches if self.rule.is_some() => {
                write!(
                    f,
                    "default deny: no rule allows it ({rule} enables {} default deny)",
                    self.direction
                )
            }
            Reason::NoAllowMatches => {
                f.write_str("default deny: no rule allows it (policy-enforcement-mode is always)")
            }
        }
    }
}

impl fmt::Display for Decision<'_> {
    /// The verdict, then each evaluated direction on its own line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.verdict)?;
        if self.egress.is_none() && self.ingress.is_none() {
            return f.write_str(": neither end is a managed endpoint");
        }
        for d in [&self.egress, &self.ingress].into_iter().flatten() {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}
