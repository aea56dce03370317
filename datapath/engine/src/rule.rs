//! References to policy rules and entries, used in decisions and notes.

use std::fmt;
use std::sync::Arc;
use ward_schema::ResourceKey;

pub use ward_schema::model::RuleRef as SpecRef;

/// Traffic direction, as seen from the endpoint whose policy is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Traffic into the endpoint.
    Ingress,
    /// Traffic out of the endpoint.
    Egress,
}

impl Direction {
    /// Both directions, ingress first.
    pub const BOTH: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// Which list of a rule an entry sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleList {
    /// `ingress`.
    Ingress,
    /// `ingressDeny`.
    IngressDeny,
    /// `egress`.
    Egress,
    /// `egressDeny`.
    EgressDeny,
}

impl RuleList {
    /// The direction of the list.
    pub fn direction(self) -> Direction {
        match self {
            RuleList::Ingress | RuleList::IngressDeny => Direction::Ingress,
            RuleList::Egress | RuleList::EgressDeny => Direction::Egress,
        }
    }

    /// Whether it is a deny list.
    pub fn is_deny(self) -> bool {
        matches!(self, RuleList::IngressDeny | RuleList::EgressDeny)
    }

    /// The field name.
    pub fn field(self) -> &'static str {
        match self {
            RuleList::Ingress => "ingress",
            RuleList::IngressDeny => "ingressDeny",
            RuleList::Egress => "egress",
            RuleList::EgressDeny => "egressDeny",
        }
    }
}

/// Points at a policy rule, or at one entry of one of its lists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleRef {
    /// The policy.
    pub policy: Arc<ResourceKey>,
    /// The rule: `spec` or `specs[i]`.
    pub spec: SpecRef,
    /// The list and the entry's index in it; `None` for the rule as a whole.
    pub entry: Option<(RuleList, usize)>,
}

impl RuleRef {
    /// The direction of the entry, if this points at one.
    pub fn direction(&self) -> Option<Direction> {
        self.entry.map(|(l, _)| l.direction())
    }

    /// The field path inside the policy: `specs[0].ingress[1]` or `spec`.
    pub fn path(&self) -> String {
        match self.entry {
            Some((list, i)) => format!("{}.{}[{i}]", self.spec, list.field()),
            None => self.spec.to_string(),
        }
    }
}

impl fmt::Display for RuleRef {
    /// `CiliumNetworkPolicy/shop/backend specs[0].ingress[1]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.policy, self.path())
    }
}

/// Something in a policy the engine cannot evaluate fully, and what it did instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Where.
    pub rule: RuleRef,
    /// What, in one sentence.
    pub message: String,
    /// The rule names something the revision does not define (a CiliumCIDRGroup), or that
    /// only the cluster knows (the backends of `toServices`, the answers for `toFQDNs`, a
    /// cloud provider's groups), so that part matches nothing here: `ward test` and the
    /// connectivity diff show it beside the verdict, and `--strict` makes it an error.
    pub unresolved: bool,
}
