//! From a CNP/CCNP resource to compiled rules: scoped selectors, peers, layer-4 matches and the
//! per-direction default-deny switch (reference §4.1–§4.3).
//!
//! # Peers of one entry (§4.2)
//! - Every peer field absent: with `toPorts`/`icmps` the entry matches any peer (an L4-only
//!   rule); without them it matches nothing (`ingress: [{}]`, the deny-all idiom).
//! - A peer field present but empty (`fromEndpoints: []`) matches nothing.
//! - `toServices`, `toFQDNs`, `fromGroups`/`toGroups` and CIDR groups need a live cluster or
//!   DNS: they match nothing here and the rule gets a [`Note`] saying so.
//!
//! # Ports of one entry
//! `toPorts` and `icmps` both absent or empty: every protocol and port (ICMP included).
//! Otherwise the union of the listed ports (see [`super::ports`]). A `toPorts` entry with
//! L7 rules (or an Envoy listener, SNI or TLS settings) counts as its L4 allow and the entry
//! is flagged: the datapath does not enforce anything above L4.

use super::cidr::CidrPeer;
use super::groups::CidrGroups;
use super::l7::PortL7;
use super::ports::{L4, icmp_field, port_protocol};
use super::rule::{Note, RuleList, RuleRef, SpecRef};
use super::scope::Scope;
use super::select::{CachedSelector, SelectorCache};
use super::selector::Selector;
use serde::Deserialize;
use std::sync::Arc;
use ward_schema::Kind;
use ward_schema::Resource;
use ward_schema::model::{self, NetworkPolicy};

/// A peer of an entry.
#[derive(Debug, Clone)]
pub(crate) enum PeerMatch {
    /// Every identity (the datapath's identity 0).
    Any,
    /// The identities a selector matches.
    Selector(Arc<CachedSelector>),
    /// The identities a `fromEndpoints`/`toEndpoints` selector matches: the `fromRequires` /
    /// `toRequires` of the rules selecting a subject narrow these (Cilium before 1.19).
    Endpoints(Arc<CachedSelector>),
    /// World addresses inside a prefix.
    Cidr(CidrPeer),
}

/// One entry of `ingress`, `ingressDeny`, `egress` or `egressDeny`.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub rule: RuleRef,
    pub deny: bool,
    pub peers: Vec<PeerMatch>,
    pub l4: Vec<L4>,
    /// The entry carries L7 rules (or a listener, SNI or TLS) that are not enforced.
    pub l7: bool,
    /// With `l7`, each `toPorts` item's ports and L7 rules (empty otherwise: every port of
    /// the entry is an L7 wildcard).
    pub l7_ports: Vec<PortL7>,
}

/// What a rule applies to.
#[derive(Debug, Clone)]
pub(crate) enum Subject {
    /// Workload endpoints (`endpointSelector`).
    Endpoints(Selector),
    /// Host endpoints of nodes (`nodeSelector`, CCNP only).
    Nodes(Selector),
    /// Nothing (no valid selector).
    Nothing,
}

/// One compiled rule (`spec` or `specs[i]`).
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub origin: RuleRef,
    pub subject: Subject,
    /// Whether the rule puts its subjects into default deny, per [`Direction::index`].
    pub default_deny: [bool; 2],
    /// Entries per direction, allow and deny, in document order.
    pub entries: [Vec<Arc<Entry>>; 2],
    /// Positions of the subjects the rule selects (filled in by the repository).
    pub subjects: Vec<u32>,
    /// `fromRequires` / `toRequires` selectors, scoped, per [`Direction::index`], for allow
    /// (`[0]`) and deny (`[1]`) entries: every endpoint peer of every rule selecting the same
    /// subject must match them all (reference §2; Cilium before 1.19).
    pub requires: [[Vec<Arc<CachedSelector>>; 2]; 2],
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub(crate) struct CompiledPolicy {
    pub rules: Vec<CompiledRule>,
    pub notes: Vec<Note>,
}

/// What compiling needs besides the resource.
pub(crate) struct Ctx<'a> {
    pub cluster: &'a str,
    pub non_default_deny_policies: bool,
    pub selectors: &'a mut SelectorCache,
    /// The revision's CiliumCIDRGroups, which `cidrGroupRef`/`cidrGroupSelector` resolve against.
    pub groups: &'a CidrGroups,
    /// The DNS answers `toFQDNs` resolves against.
    pub dns: &'a [crate::cluster::DnsAnswer],
    /// The services `toServices` resolves against.
    pub services: &'a [crate::service::Service],
}

/// Compiles a CNP, CCNP or Kubernetes NetworkPolicy; `None` for other kinds.
pub(crate) fn compile(res: &Resource, ctx: &mut Ctx<'_>) -> Option<CompiledPolicy> {
    let namespace = match res.key.kind {
        Kind::CiliumNetworkPolicy => Some(res.key.namespace.clone().unwrap_or_default()),
        Kind::CiliumClusterwideNetworkPolicy => None,
        Kind::NetworkPolicy => return Some(super::knp::compile(res, ctx)),
        _ => return None,
    };
    let key = Arc::new(res.key.clone());
    let mut out = CompiledPolicy {
        rules: Vec::new(),
        notes: Vec::new(),
    };
    let policy = match NetworkPolicy::deserialize(&res.object) {
        Ok(p) => p,
        Err(e) => {
            let rule = RuleRef {
                policy: key,
                spec: SpecRef::Spec,
                entry: None,
            };
            out.notes.push(Note {
                rule,
                message: format!("the policy does not parse ({e}); it is ignored"),
                unresolved: false,
            });
            return Some(out);
        }
    };
    for (spec, rule) in policy.rules() {
        let origin = RuleRef {
            policy: key.clone(),
            spec,
            entry: None,
        };
        let mut c = RuleCompiler::new(ctx, &mut out.notes, origin, namespace.as_deref());
        let compiled = c.rule(rule);
        out.rules.push(compiled);
    }
    Some(out)
}

pub(crate) struct RuleCompiler<'a, 'b> {
    pub(crate) ctx: &'a mut Ctx<'b>,
    notes: &'a mut Vec<Note>,
    origin: RuleRef,
    namespace: Option<&'a str>,
}

impl<'a, 'b> RuleCompiler<'a, 'b> {
    /// A compiler for the rule at `origin` of a policy in `namespace` (`None`: cluster-wide).
    pub(crate) fn new(
        ctx: &'a mut Ctx<'b>,
        notes: &'a mut Vec<Note>,
        origin: RuleRef,
        namespace: Option<&'a str>,
    ) -> Self {
        RuleCompiler {
            ctx,
            notes,
            origin,
            namespace,
        }
    }
}

fn len<T>(v: &Option<Vec<T>>) -> usize {
    v.as_ref().map_or(0, Vec::len)
}

impl RuleCompiler<'_, '_> {
    pub(crate) fn note(&mut self, rule: &RuleRef, message: impl Into<String>) {
        self.notes.push(Note {
            rule: rule.clone(),
            message: message.into(),
            unresolved: false,
        });
    }

    /// A note that the rule names something the revision lacks (see [`Note::unresolved`]).
    pub(crate) fn unresolved(&mut self, rule: &RuleRef, message: impl Into<String>) {
        self.notes.push(Note {
            rule: rule.clone(),
            message: message.into(),
            unresolved: true,
        });
    }

    fn rule(&mut self, rule: &model::Rule) -> CompiledRule {
        let raw = rule
            .endpoint_selector
            .as_ref()
            .or(rule.node_selector.as_ref());
        let raw = raw.map(Selector::from_model).unwrap_or_default();
        let scope = Scope::new(self.namespace, self.ctx.cluster, &raw);
        let subject = self.subject(rule, &scope);
        let mut ingress = Vec::new();
        for (i, r) in rule.ingress.iter().flatten().enumerate() {
            let at = self.entry_ref(RuleList::Ingress, i);
            let (l4, l7, has_l4) = self.allow_l4(&at, r.to_ports.as_ref(), r.icmps.as_ref());
            let peers = self.ingress_peers(&at, &r.common, has_l4, &scope);
            ingress.push(Arc::new(Entry {
                rule: at,
                deny: false,
                peers,
                l4,
                l7,
                l7_ports: l7_items(l7, r.to_ports.as_deref()),
            }));
        }
        for (i, r) in rule.ingress_deny.iter().flatten().enumerate() {
            let at = self.entry_ref(RuleList::IngressDeny, i);
            let (l4, has_l4) = self.deny_l4(&at, r.to_ports.as_ref(), r.icmps.as_ref());
            let peers = self.ingress_peers(&at, &r.common, has_l4, &scope);
            ingress.push(Arc::new(Entry {
                rule: at,
                deny: true,
                peers,
                l4,
                l7: false,
                l7_ports: Vec::new(),
            }));
        }
        let mut egress = Vec::new();
        for (i, r) in rule.egress.iter().flatten().enumerate() {
            let at = self.entry_ref(RuleList::Egress, i);
            let (l4, l7, has_l4) = self.allow_l4(&at, r.to_ports.as_ref(), r.icmps.as_ref());
            let mut peers = self.egress_peers(&at, &r.common, has_l4, r.to_fqdns.is_some(), &scope);
            peers.extend(self.fqdn_peers(&at, r.to_fqdns.as_deref()));
            egress.push(Arc::new(Entry {
                rule: at,
                deny: false,
                peers,
                l4,
                l7,
                l7_ports: l7_items(l7, r.to_ports.as_deref()),
            }));
        }
        for (i, r) in rule.egress_deny.iter().flatten().enumerate() {
            let at = self.entry_ref(RuleList::EgressDeny, i);
            let (l4, has_l4) = self.deny_l4(&at, r.to_ports.as_ref(), r.icmps.as_ref());
            let peers = self.egress_peers(&at, &r.common, has_l4, false, &scope);
            egress.push(Arc::new(Entry {
                rule: at,
                deny: true,
                peers,
                l4,
                l7: false,
                l7_ports: Vec::new(),
            }));
        }
        let origin = self.origin.clone();
        let default_deny = self.default_deny(rule);
        let requires = self.requires(rule, &scope);
        CompiledRule {
            origin,
            subject,
            default_deny,
            entries: [ingress, egress],
            subjects: Vec::new(),
            requires,
        }
    }

    /// The rule's `fromRequires` / `toRequires`, scoped like endpoint peers and evaluated.
    fn requires(
        &mut self,
        rule: &model::Rule,
        scope: &Scope<'_>,
    ) -> [[Vec<Arc<CachedSelector>>; 2]; 2] {
        type Sels = Option<Vec<model::EndpointSelector>>;
        /// Every selector `field` holds across the entries of `list`.
        fn all<T>(list: &Option<Vec<T>>, field: fn(&T) -> &Sels) -> Vec<&model::EndpointSelector> {
            list.iter()
                .flatten()
                .flat_map(|r| field(r).iter().flatten())
                .collect()
        }
        let lists = [
            [
                all(&rule.ingress, |r| &r.common.from_requires),
                all(&rule.ingress_deny, |r| &r.common.from_requires),
            ],
            [
                all(&rule.egress, |r| &r.common.to_requires),
                all(&rule.egress_deny, |r| &r.common.to_requires),
            ],
        ];
        lists.map(|dir| {
            dir.map(|sels| {
                sels.into_iter()
                    .map(|s| self.ctx.selectors.intern(scope.peer(s)))
                    .collect()
            })
        })
    }

    /// The subject: `endpointSelector` (scoped for CNPs) or, in a CCNP, `nodeSelector`.
    fn subject(&mut self, rule: &model::Rule, scope: &Scope<'_>) -> Subject {
        let origin = self.origin.clone();
        match (&rule.endpoint_selector, &rule.node_selector) {
            (Some(es), None) => Subject::Endpoints(scope.subject(es)),
            (None, Some(ns)) if self.namespace.is_none() => {
                Subject::Nodes(Selector::from_model(ns))
            }
            (None, Some(_)) => {
                self.note(&origin, "a CiliumNetworkPolicy rule cannot have a nodeSelector; the rule selects nothing");
                Subject::Nothing
            }
            _ => {
                self.note(&origin, "the rule needs exactly one of endpointSelector or nodeSelector; it selects nothing");
                Subject::Nothing
            }
        }
    }

    /// §4.1: with `enable-non-default-deny-policies` an unset `enableDefaultDeny` direction
    /// is true iff the rule has allow or deny entries for it; without the flag the setting
    /// is ignored and every direction the rule has entries for is in default deny.
    fn default_deny(&self, rule: &model::Rule) -> [bool; 2] {
        let has_ingress = len(&rule.ingress) + len(&rule.ingress_deny) > 0;
        let has_egress = len(&rule.egress) + len(&rule.egress_deny) > 0;
        let config = rule.enable_default_deny.unwrap_or_default();
        if self.ctx.non_default_deny_policies {
            [
                config.ingress.unwrap_or(has_ingress),
                config.egress.unwrap_or(has_egress),
            ]
        } else {
            [has_ingress, has_egress]
        }
    }

    pub(crate) fn entry_ref(&self, list: RuleList, i: usize) -> RuleRef {
        RuleRef {
            entry: Some((list, i)),
            ..self.origin.clone()
        }
    }

    /// Ports of an allow entry: (matches, has L7, whether any L4 field was given).
    fn allow_l4(
        &mut self,
        at: &RuleRef,
        ports: Option<&Vec<model::PortRule>>,
        icmps: Option<&Vec<model::IcmpRule>>,
    ) -> (Vec<L4>, bool, bool) {
        let ports = ports.map_or(&[][..], Vec::as_slice);
        let mut l7 = false;
        for p in ports {
            l7 |= p
                .rules
                .as_ref()
                .is_some_and(|r| *r != model::L7Rules::default())
                || p.listener.is_some()
                || p.server_names.is_some()
                || p.terminating_tls.is_some()
                || p.originating_tls.is_some();
        }
        let lists = ports.iter().map(|p| p.ports.as_deref().unwrap_or_default());
        let (l4, has_l4) = self.l4(at, lists.collect(), icmps);
        (l4, l7, has_l4)
    }

    fn deny_l4(
        &mut self,
        at: &RuleRef,
        ports: Option<&Vec<model::PortDenyRule>>,
        icmps: Option<&Vec<model::IcmpRule>>,
    ) -> (Vec<L4>, bool) {
        let lists = ports
            .into_iter()
            .flatten()
            .map(|p| p.ports.as_deref().unwrap_or_default());
        self.l4(at, lists.collect(), icmps)
    }

    pub(crate) fn l4(
        &mut self,
        at: &RuleRef,
        port_lists: Vec<&[model::PortProtocol]>,
        icmps: Option<&Vec<model::IcmpRule>>,
    ) -> (Vec<L4>, bool) {
        let icmps = icmps.map_or(&[][..], Vec::as_slice);
        if port_lists.is_empty() && icmps.is_empty() {
            return (vec![L4::All], false);
        }
        let mut out = Vec::new();
        for pp in port_lists.into_iter().flatten() {
            match port_protocol(pp) {
                Ok(v) => out.extend(v),
                Err(e) => self.note(at, format!("{e}: this port matches nothing")),
            }
        }
        for field in icmps.iter().flat_map(|r| r.fields.iter().flatten()) {
            match icmp_field(field) {
                Ok(v) => out.push(v),
                Err(e) => self.note(at, format!("{e}: this ICMP type matches nothing")),
            }
        }
        (out, true)
    }
}

/// The `toPorts` items of an allow entry with L7 rules (none without).
fn l7_items(l7: bool, ports: Option<&[model::PortRule]>) -> Vec<PortL7> {
    match ports {
        Some(p) if l7 => PortL7::of(p),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;
    use ward_schema::{Origin, ResourceKey};

    fn compile_spec(spec: serde_json::Value) -> CompiledPolicy {
        let key = ResourceKey::new(Kind::CiliumNetworkPolicy, Some("ns"), "p");
        let object = json!({"kind": "CiliumNetworkPolicy", "metadata": {"name": "p", "namespace": "ns"}, "spec": spec});
        let res = Resource {
            key,
            object,
            origin: Origin::default(),
        };
        let mut selectors = SelectorCache::default();
        let groups = CidrGroups::default();
        let mut ctx = Ctx {
            cluster: "default",
            non_default_deny_policies: true,
            selectors: &mut selectors,
            groups: &groups,
            dns: &[],
            services: &[],
        };
        compile(&res, &mut ctx).unwrap()
    }

    fn summary(e: &Entry) -> (usize, Vec<String>) {
        (
            e.peers.len(),
            e.l4.iter().map(ToString::to_string).collect(),
        )
    }

    #[test]
    fn absent_empty_and_listed_ports_and_peers() {
        let p = compile_spec(json!({
            "endpointSelector": {},
            "ingress": [
                {},
                {"toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]},
                {"toPorts": [{}]},
                {"fromEndpoints": [], "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]},
                {"fromEndpoints": [{}], "toPorts": []},
                {"fromEntities": ["all", "bogus"]}
            ]
        }));
        let ingress = &p.rules[0].entries[0];
        // {}: no peer, every port (so it selects nothing, but enables default deny).
        assert_eq!(
            summary(&ingress[0]),
            (0, vec!["any protocol, any port".into()])
        );
        // L4-only: any peer on the listed ports.
        assert!(matches!(ingress[1].peers[..], [PeerMatch::Any]));
        // toPorts: [{}] lists no port: nothing, but it is an L4 section so the peer is "any".
        assert_eq!(summary(&ingress[2]), (1, vec![]));
        assert_eq!(summary(&ingress[3]), (0, vec!["TCP/80".into()]));
        // [{}] in a CNP is scoped to the namespace, so it is a selector, not "any".
        assert!(matches!(ingress[4].peers[..], [PeerMatch::Endpoints(_)]));
        assert_eq!(ingress[4].l4, vec![L4::All]);
        assert!(matches!(ingress[5].peers[..], [PeerMatch::Any]));
        assert_eq!(p.rules[0].default_deny, [true, false]);
        let notes: Vec<&str> = p.notes.iter().map(|n| n.message.as_str()).collect();
        assert_eq!(notes, ["unsupported entity: bogus; it matches nothing"]);
        assert_eq!(p.notes[0].rule.path(), "spec.ingress[5]");
    }

    #[test]
    fn default_deny_follows_entries_and_enable_default_deny() {
        let p = compile_spec(
            json!({"endpointSelector": {}, "egressDeny": [{}], "enableDefaultDeny": {"ingress": true}}),
        );
        assert_eq!(p.rules[0].default_deny, [true, true]);
        let p = compile_spec(
            json!({"endpointSelector": {}, "ingress": [{}], "enableDefaultDeny": {"ingress": false}}),
        );
        assert_eq!(p.rules[0].default_deny, [false, false]);
        let p = compile_spec(json!({"nodeSelector": {}, "ingress": [{}]}));
        assert!(
            matches!(p.rules[0].subject, Subject::Nothing),
            "a CNP cannot select nodes"
        );
        assert_eq!(p.notes.len(), 1);
    }
}
