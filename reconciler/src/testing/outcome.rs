//! Engine decisions in an owned, serialisable form, with each deciding rule mapped to the
//! file and line of its policy.

use serde::Serialize;
use std::collections::BTreeMap;
use ward_engine::{
    Decision, Direction, DirectionDecision, Flow, L7Decision, L7Request, L7Verdict,
    PolicyRepository, Reason, RuleRef, Verdict,
};
use ward_schema::{Origin, ResourceKey, ResourceSet};

/// Where each policy of a revision is defined.
#[derive(Debug, Clone, Default)]
pub struct Origins(BTreeMap<ResourceKey, Origin>);

impl Origins {
    /// The origins of every resource in `set`.
    pub fn of(set: &ResourceSet) -> Origins {
        Origins(
            set.iter()
                .map(|r| (r.key.clone(), r.origin.clone()))
                .collect(),
        )
    }

    /// `file:line` of a policy, when it came from a file.
    pub fn get(&self, key: &ResourceKey) -> Option<String> {
        self.0
            .get(key)
            .filter(|o| !o.file.is_empty())
            .map(ToString::to_string)
    }
}

/// A rule and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleSite {
    /// `CiliumNetworkPolicy/shop/backend-ingress spec.ingress[0]`.
    pub rule: String,
    /// `CiliumNetworkPolicy/shop/backend-ingress`.
    pub policy: String,
    /// `spec.ingress[0]`.
    pub path: String,
    /// `file:line` of the policy's document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl RuleSite {
    /// The site of `rule`.
    pub fn of(rule: &RuleRef, origins: &Origins) -> RuleSite {
        RuleSite {
            rule: rule.to_string(),
            policy: rule.policy.to_string(),
            path: rule.path(),
            origin: origins.get(&rule.policy),
        }
    }

    /// `rule (file:line)`.
    pub fn located(&self) -> String {
        match &self.origin {
            Some(o) => format!("{} ({o})", self.rule),
            None => self.rule.clone(),
        }
    }
}

/// One direction's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Side {
    /// `egress` (of the source) or `ingress` (of the destination).
    pub direction: &'static str,
    /// `allow`, `deny` or `default-deny`.
    pub verdict: String,
    /// Why, as a keyword: `allowed`, `denied`, `no-allow-matches`, `not-selected`, ...
    pub reason: &'static str,
    /// The engine's sentence for it.
    pub explanation: String,
    /// The deciding entry, or the rule that enabled default deny.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleSite>,
    /// The remote identity as this direction saw it.
    pub remote_identity: u32,
    /// The allowing entry carries L7 rules ward does not enforce (allowed at L4).
    pub l7_not_enforced: bool,
}

impl Side {
    fn of(d: &DirectionDecision<'_>, origins: &Origins) -> Side {
        Side {
            direction: direction_name(d.direction),
            verdict: d.verdict.to_string(),
            reason: reason_name(d.reason),
            explanation: d.to_string(),
            rule: d.rule.map(|r| RuleSite::of(r, origins)),
            remote_identity: d.remote.0,
            l7_not_enforced: d.l7_not_enforced,
        }
    }
}

/// A flow's verdict, the rule that decided and each direction's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// `allow`, `deny` or `default-deny`.
    pub verdict: String,
    /// Whether the flow passes.
    pub allowed: bool,
    /// The rule that dropped the flow (or enabled the default deny that did), or for an
    /// allowed flow the allowing rule (ingress first); none when no rule was involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<RuleSite>,
    /// Egress of the source, when it is a managed endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<Side>,
    /// Ingress of the destination, when it is a managed endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Side>,
}

impl Outcome {
    /// The owned form of a decision.
    pub fn of(d: &Decision<'_>, origins: &Origins) -> Outcome {
        Outcome {
            verdict: d.verdict.to_string(),
            allowed: d.verdict == Verdict::Allow,
            decided_by: d.rule.map(|r| RuleSite::of(r, origins)),
            egress: d.egress.as_ref().map(|s| Side::of(s, origins)),
            ingress: d.ingress.as_ref().map(|s| Side::of(s, origins)),
        }
    }

    /// Both directions, egress first.
    pub fn sides(&self) -> impl Iterator<Item = &Side> {
        self.egress.iter().chain(self.ingress.iter())
    }

    /// Whether any allowing entry carries unenforced L7 rules.
    pub fn l7_not_enforced(&self) -> bool {
        self.sides().any(|s| s.l7_not_enforced)
    }
}

/// What the L7 proxies decide about the request an expectation carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct L7Outcome {
    /// The request: `HTTP GET /api (Host shop)`, `DNS query api.example.com`.
    pub request: String,
    /// Whether no proxy refuses it (a side ward cannot evaluate does not refuse).
    pub allowed: bool,
    /// One per direction that sends the flow to a proxy (its layer 3/4 allows it).
    pub sides: Vec<L7Side>,
}

/// One direction's L7 decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct L7Side {
    /// `egress` (of the source) or `ingress` (of the destination).
    pub direction: &'static str,
    /// `allowed`, `denied`, `wildcard`, `not-enforced` or `not-evaluated`.
    pub verdict: &'static str,
    /// The engine's sentence for it.
    pub explanation: String,
    /// The allowing entry, or every entry whose L7 rules refused the request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleSite>,
}

impl L7Outcome {
    /// What the proxies decide about `request` on `flow`, whose layer 3/4 decision is
    /// `outcome`; `None` without a request, or when layer 3/4 drops the flow (no proxy sees
    /// it).
    pub fn decide(
        repo: &PolicyRepository,
        flow: &Flow,
        outcome: &Outcome,
        request: Option<&L7Request>,
        origins: &Origins,
    ) -> Option<L7Outcome> {
        let request = request.filter(|_| outcome.allowed)?;
        Some(L7Outcome::of(
            request.to_string(),
            &repo.l7_verdict(flow, request),
            origins,
        ))
    }

    /// The owned form of the per-direction decisions for `request`.
    pub fn of(request: String, sides: &[(Direction, L7Decision)], origins: &Origins) -> L7Outcome {
        let sides: Vec<L7Side> = sides
            .iter()
            .map(|(dir, d)| L7Side {
                direction: direction_name(*dir),
                verdict: l7_verdict_name(&d.verdict),
                explanation: d.explanation.clone(),
                rules: d.rules.iter().map(|r| RuleSite::of(r, origins)).collect(),
            })
            .collect();
        L7Outcome {
            request,
            allowed: sides.iter().all(|s| s.verdict != "denied"),
            sides,
        }
    }

    /// The side that refused the request, if one did.
    pub fn denied_by(&self) -> Option<&L7Side> {
        self.sides.iter().find(|s| s.verdict == "denied")
    }
}

fn l7_verdict_name(v: &L7Verdict) -> &'static str {
    match v {
        L7Verdict::Wildcard => "wildcard",
        L7Verdict::NotEnforced => "not-enforced",
        L7Verdict::Allowed => "allowed",
        L7Verdict::Denied => "denied",
        L7Verdict::NotEvaluated => "not-evaluated",
    }
}

/// `egress` or `ingress`.
pub fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Egress => "egress",
        Direction::Ingress => "ingress",
    }
}

/// A keyword for a reason.
pub fn reason_name(r: Reason) -> &'static str {
    match r {
        Reason::NotSelected => "not-selected",
        Reason::NotEnforced => "not-enforced",
        Reason::EnforcementDisabled => "enforcement-disabled",
        Reason::Allowed => "allowed",
        Reason::Denied => "denied",
        Reason::LocalHost => "local-host",
        Reason::NoAllowMatches => "no-allow-matches",
    }
}
