//! The typed model of ward's kinds: Cilium policy rules (CNP/CCNP, `pkg/policy/api`), Envoy
//! configs (CEC/CCEC) and ward's own CiliumConfig component config.
//!
//! JSON names follow the Cilium 1.19 CRDs exactly (`schema/crds/`).
//!
//! # Absent versus empty
//! Cilium gives a nil list and an empty list different meanings: `fromEndpoints` absent allows
//! any peer, `fromEndpoints: []` allows none, and `ingress: [{}]` puts the endpoint into
//! default deny. Every list that may be absent is therefore an `Option<Vec<_>>` that is left
//! out when `None`, so deserializing and serializing again gives back the same JSON.
//! Optional scalars are `Option<_>` for the same reason. The only normalisations are inside
//! label selectors (an empty `matchLabels`, `matchExpressions` or `values` is written as
//! absent, which Kubernetes treats identically) and an empty `port` (see [`PortProtocol`]).
//!
//! # Leniency
//! The model never rejects unknown fields: the JSON Schema reports them with a location, and
//! the semantic checks report bad values in Cilium's words. Fields the CRD marks required but
//! that have a natural empty value (names, keys) default to empty instead of failing.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Policies (CNP / CCNP)
// ---------------------------------------------------------------------------------------------

/// A CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy: one rule in `spec` and/or a list
/// in `specs`; both may be present and each entry is a separate rule. Other top-level fields
/// (`apiVersion`, `kind`, `metadata`, `status`) are ignored when deserializing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicy {
    /// `spec`: a single rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Rule>,
    /// `specs`: a list of rules; both absent is "empty policy".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specs: Option<Vec<Rule>>,
}

/// Where a rule of a [`NetworkPolicy`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleRef {
    /// The rule is `spec`.
    Spec,
    /// The rule is `specs[i]`.
    Specs(usize),
}

impl RuleRef {
    /// `None` for `spec`, `Some(i)` for `specs[i]`.
    pub fn index(self) -> Option<usize> {
        match self {
            RuleRef::Spec => None,
            RuleRef::Specs(i) => Some(i),
        }
    }

    /// The dotted field path of the rule: `spec` or `specs[i]`.
    pub fn path(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleRef::Spec => f.write_str("spec"),
            RuleRef::Specs(i) => write!(f, "specs[{i}]"),
        }
    }
}

impl NetworkPolicy {
    /// Every rule of the policy, `spec` first, then `specs` in order, each with its origin.
    pub fn rules(&self) -> impl Iterator<Item = (RuleRef, &Rule)> {
        let spec = self.spec.iter().map(|r| (RuleRef::Spec, r));
        let specs = self
            .specs
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, r)| (RuleRef::Specs(i), r));
        spec.chain(specs)
    }

    /// The rule at `at`, if it exists.
    pub fn rule(&self, at: RuleRef) -> Option<&Rule> {
        match at {
            RuleRef::Spec => self.spec.as_ref(),
            RuleRef::Specs(i) => self.specs.as_ref().and_then(|s| s.get(i)),
        }
    }

    /// True when neither `spec` nor `specs` is present (Cilium: "empty policy").
    pub fn is_empty_policy(&self) -> bool {
        self.spec.is_none() && self.specs.is_none()
    }
}

/// One policy rule (`spec` or a `specs[]` item): a subject selector plus allow/deny entries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// `endpointSelector`: the pods the rule applies to; exclusive with `nodeSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_selector: Option<EndpointSelector>,
    /// `nodeSelector`: the nodes the rule applies to (host firewall, CCNP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<EndpointSelector>,
    /// `ingress`: allow entries at ingress; `[{}]` allows nothing but enables default deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<IngressRule>>,
    /// `ingressDeny`: deny entries at ingress; they win over every allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_deny: Option<Vec<IngressDenyRule>>,
    /// `egress`: allow entries at egress; `[{}]` allows nothing but enables default deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<EgressRule>>,
    /// `egressDeny`: deny entries at egress; they win over every allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_deny: Option<Vec<EgressDenyRule>>,
    /// `labels`: free metadata identifying the rule (source defaults to `unspec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<Label>>,
    /// `enableDefaultDeny`: per-direction override of whether the rule enables default deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_default_deny: Option<DefaultDenyConfig>,
    /// `description`: free text about the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `log`: a string stamped into Hubble flows matched by this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogConfig>,
}

/// A rule label (`labels[]`): `key` (required), `value`, `source`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Label {
    /// `key`: the label key (required).
    #[serde(default)]
    pub key: String,
    /// `value`: the label value; absent means empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `source`: the label source; absent means `unspec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// `enableDefaultDeny`: absent directions default to "true if the rule has entries for it".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefaultDenyConfig {
    /// `ingress`: whether selecting endpoints enter ingress default deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<bool>,
    /// `egress`: whether selecting endpoints enter egress default deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<bool>,
}

/// `log`: policy-specific Hubble logging.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogConfig {
    /// `value`: up to 32 printable characters included in matching Hubble flows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The peer fields shared by [`IngressRule`] and [`IngressDenyRule`]; at most one family may be
/// set per entry. Every list: absent allows any peer of that family, `[]` allows none.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressCommon {
    /// `fromEndpoints`: peers selected by label; `[]` selects none, absent allows any, `[{}]`
    /// is every endpoint in scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_endpoints: Option<Vec<EndpointSelector>>,
    /// `fromCIDR`: peer prefixes (a bare IP is accepted as a host prefix).
    #[serde(default, rename = "fromCIDR", skip_serializing_if = "Option::is_none")]
    pub from_cidr: Option<Vec<String>>,
    /// `fromCIDRSet`: peer prefixes or CIDR groups, with exceptions.
    #[serde(
        default,
        rename = "fromCIDRSet",
        skip_serializing_if = "Option::is_none"
    )]
    pub from_cidr_set: Option<Vec<CidrRule>>,
    /// `fromEntities`: named peer classes (`world`, `cluster`, `host`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_entities: Option<Vec<String>>,
    /// `fromGroups`: cloud-provider groups (AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_groups: Option<Vec<Groups>>,
    /// `fromNodes`: peer nodes by label (needs `enable-node-selector-labels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_nodes: Option<Vec<EndpointSelector>>,
    /// `fromRequires` (Cilium before 1.19): label requirements every `fromEndpoints` peer of
    /// every rule selecting the same endpoint must also meet; grants nothing by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_requires: Option<Vec<EndpointSelector>>,
}

/// An `ingress[]` allow entry: (any listed peer) AND (any listed port or ICMP type).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    /// The peer fields (`fromEndpoints`, `fromCIDR`, ...).
    #[serde(flatten)]
    pub common: IngressCommon,
    /// `toPorts`: allowed ports, with optional L7 rules; absent allows all ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortRule>>,
    /// `icmps`: allowed ICMP types; cannot be combined with `toPorts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmps: Option<Vec<IcmpRule>>,
    /// `authentication`: mutual authentication required of the peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
}

/// An `ingressDeny[]` entry: like an allow entry but L3/L4/ICMP only.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressDenyRule {
    /// The peer fields (`fromEndpoints`, `fromCIDR`, ...).
    #[serde(flatten)]
    pub common: IngressCommon,
    /// `toPorts`: denied ports (ports only, no L7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortDenyRule>>,
    /// `icmps`: denied ICMP types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmps: Option<Vec<IcmpRule>>,
}

/// The destination fields shared by [`EgressRule`] and [`EgressDenyRule`]; at most one family
/// may be set per entry. Every list: absent allows any peer of that family, `[]` allows none.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressCommon {
    /// `toEndpoints`: destinations selected by label; `[]` selects none, absent allows any,
    /// `[{}]` is every endpoint in scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_endpoints: Option<Vec<EndpointSelector>>,
    /// `toCIDR`: destination prefixes (a bare IP is accepted as a host prefix).
    #[serde(default, rename = "toCIDR", skip_serializing_if = "Option::is_none")]
    pub to_cidr: Option<Vec<String>>,
    /// `toCIDRSet`: destination prefixes or CIDR groups, with exceptions.
    #[serde(default, rename = "toCIDRSet", skip_serializing_if = "Option::is_none")]
    pub to_cidr_set: Option<Vec<CidrRule>>,
    /// `toEntities`: named destination classes (`world`, `cluster`, `kube-apiserver`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_entities: Option<Vec<String>>,
    /// `toServices`: Kubernetes services, by name or by label selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_services: Option<Vec<Service>>,
    /// `toGroups`: cloud-provider groups (AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_groups: Option<Vec<Groups>>,
    /// `toNodes`: destination nodes by label (needs `enable-node-selector-labels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_nodes: Option<Vec<EndpointSelector>>,
    /// `toRequires` (Cilium before 1.19): label requirements every `toEndpoints` peer of every
    /// rule selecting the same endpoint must also meet; grants nothing by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_requires: Option<Vec<EndpointSelector>>,
}

/// An `egress[]` allow entry: (any listed destination) AND (any listed port or ICMP type).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    /// The destination fields (`toEndpoints`, `toCIDR`, ...).
    #[serde(flatten)]
    pub common: EgressCommon,
    /// `toFQDNs`: destinations by DNS name or pattern (allow only).
    #[serde(default, rename = "toFQDNs", skip_serializing_if = "Option::is_none")]
    pub to_fqdns: Option<Vec<FqdnSelector>>,
    /// `toPorts`: allowed ports, with optional L7 rules; absent allows all ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortRule>>,
    /// `icmps`: allowed ICMP types; cannot be combined with `toPorts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmps: Option<Vec<IcmpRule>>,
    /// `authentication`: mutual authentication required of the destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
}

/// An `egressDeny[]` entry: like an allow entry but L3/L4/ICMP only (no `toFQDNs`, no L7).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressDenyRule {
    /// The destination fields (`toEndpoints`, `toCIDR`, ...).
    #[serde(flatten)]
    pub common: EgressCommon,
    /// `toPorts`: denied ports (ports only, no L7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortDenyRule>>,
    /// `icmps`: denied ICMP types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmps: Option<Vec<IcmpRule>>,
}

/// `authentication`: mutual authentication of the peers of an allow entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    /// `mode`: `disabled`, `required` or `test-always-fail` (required).
    #[serde(default)]
    pub mode: String,
}

/// A Cilium label selector (`endpointSelector`, `fromEndpoints[]`, ...): `{}` selects every
/// endpoint in scope. Keys may carry a source prefix (`k8s:app`, `reserved:host`); a key
/// without one matches any source. An empty `matchLabels`/`matchExpressions` is the same as an
/// absent one and is written as absent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSelector {
    /// `matchLabels`: each key must have exactly this value (ANDed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// `matchExpressions`: set-based requirements (ANDed with `matchLabels`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

impl EndpointSelector {
    /// True for `{}`: no requirement, so the selector selects everything in scope.
    pub fn is_wildcard(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

/// A plain Kubernetes label selector (`cidrGroupSelector`, `k8sServiceSelector.selector`, a
/// CEC `nodeSelector`); same JSON shape as [`EndpointSelector`], keys carry no source prefix.
pub type LabelSelector = EndpointSelector;

/// One `matchExpressions[]` entry: `key`, `operator` and `values`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// `key`: the label key the requirement applies to (required).
    #[serde(default)]
    pub key: String,
    /// `operator`: `In`, `NotIn`, `Exists` or `DoesNotExist` (required; checked elsewhere).
    #[serde(default)]
    pub operator: String,
    /// `values`: required non-empty for In/NotIn, must be empty for Exists/DoesNotExist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A `fromCIDRSet[]`/`toCIDRSet[]` entry: exactly one of `cidr`, `cidrGroupRef`,
/// `cidrGroupSelector`, minus the `except` prefixes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CidrRule {
    /// `cidr`: a prefix `addr/len`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// `cidrGroupRef`: the name of a CiliumCIDRGroup.
    #[serde(
        default,
        rename = "cidrGroupRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub cidr_group_ref: Option<String>,
    /// `cidrGroupSelector`: CiliumCIDRGroups selected by label.
    #[serde(
        default,
        rename = "cidrGroupSelector",
        skip_serializing_if = "Option::is_none"
    )]
    pub cidr_group_selector: Option<LabelSelector>,
    /// `except`: sub-prefixes of `cidr` that are excluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except: Option<Vec<String>>,
}

/// A `fromGroups[]`/`toGroups[]` entry: a cloud-provider group peer (only AWS exists).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Groups {
    /// `aws`: AWS instances selected by tags, security groups and region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsGroup>,
}

/// `aws`: AWS instances selected by tags, security group ids or names, and region.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsGroup {
    /// `labels`: EC2 tags that must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `securityGroupsIds`: security group ids.
    #[serde(
        default,
        rename = "securityGroupsIds",
        skip_serializing_if = "Option::is_none"
    )]
    pub security_groups_ids: Option<Vec<String>>,
    /// `securityGroupsNames`: security group names.
    #[serde(
        default,
        rename = "securityGroupsNames",
        skip_serializing_if = "Option::is_none"
    )]
    pub security_groups_names: Option<Vec<String>>,
    /// `region`: the AWS region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// A `toServices[]` entry: a Kubernetes service by name (`k8sService`) or by label selector
/// (`k8sServiceSelector`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// `k8sService`: a service named by `serviceName` and `namespace`.
    #[serde(
        default,
        rename = "k8sService",
        skip_serializing_if = "Option::is_none"
    )]
    pub k8s_service: Option<K8sServiceNamespace>,
    /// `k8sServiceSelector`: services chosen by label, optionally in one namespace.
    #[serde(
        default,
        rename = "k8sServiceSelector",
        skip_serializing_if = "Option::is_none"
    )]
    pub k8s_service_selector: Option<ServiceSelector>,
}

/// `k8sService`: a Kubernetes service by name and namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct K8sServiceNamespace {
    /// `serviceName`: the service name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// `namespace`: the service namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `k8sServiceSelector`: Kubernetes services chosen by label selector.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSelector {
    /// `selector`: label selector over services (required).
    #[serde(default)]
    pub selector: LabelSelector,
    /// `namespace`: restricts the selection to one namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A `toFQDNs[]` or `rules.dns[]` entry: exactly one of `matchName` or `matchPattern`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FqdnSelector {
    /// `matchName`: a literal DNS name (a trailing dot is implied).
    #[serde(default, rename = "matchName", skip_serializing_if = "Option::is_none")]
    pub match_name: Option<String>,
    /// `matchPattern`: a name with `*` (within one label) or a `**.` prefix (one or more labels).
    #[serde(
        default,
        rename = "matchPattern",
        skip_serializing_if = "Option::is_none"
    )]
    pub match_pattern: Option<String>,
}

/// An allow `toPorts[]` entry: ports plus optional TLS handling, SNI list, Envoy listener
/// redirect and L7 rules.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortRule {
    /// `ports`: up to 40 port/protocol entries; absent means all ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortProtocol>>,
    /// `terminatingTLS`: TLS the proxy terminates for this port.
    #[serde(
        default,
        rename = "terminatingTLS",
        skip_serializing_if = "Option::is_none"
    )]
    pub terminating_tls: Option<TlsContext>,
    /// `originatingTLS`: TLS the proxy originates towards the destination.
    #[serde(
        default,
        rename = "originatingTLS",
        skip_serializing_if = "Option::is_none"
    )]
    pub originating_tls: Option<TlsContext>,
    /// `serverNames`: SNI allow list (optional `*.`/`**.` prefix).
    #[serde(
        default,
        rename = "serverNames",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_names: Option<Vec<String>>,
    /// `listener`: redirect to a named Envoy listener of a CEC/CCEC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<Listener>,
    /// `rules`: L7 rules (exactly one family).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<L7Rules>,
}

/// A deny `toPorts[]` entry: ports only.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortDenyRule {
    /// `ports`: up to 40 port/protocol entries; absent means all ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortProtocol>>,
}

/// A `ports[]` entry: a port (number or IANA name), optional range end, and protocol.
///
/// `port` absent and `port: ""` are the same to Cilium ("port must be specified") and are
/// both read as `""`, which is written as absent. A YAML integer (`port: 80`, which the CRD
/// rejects as not a string) is read as its decimal text so the checks can still run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortProtocol {
    /// `port`: number 0–65535 or a named port; `0` means all ports.
    #[serde(
        default,
        deserialize_with = "de_port",
        skip_serializing_if = "String::is_empty"
    )]
    pub port: String,
    /// `endPort`: inclusive end of a port range when greater than `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i32>,
    /// `protocol`: TCP, UDP, SCTP, VRRP, IGMP or ANY; absent means ANY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// Reads a port given as a string or (leniently) as an integer.
fn de_port<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct PortVisitor;
    impl Visitor<'_> for PortVisitor {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a port number or name")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_unit<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
    }
    d.deserialize_any(PortVisitor)
}

/// `terminatingTLS`/`originatingTLS`: TLS material from a Kubernetes secret.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsContext {
    /// `secret`: the secret holding the material (required).
    #[serde(default)]
    pub secret: Secret,
    /// `trustedCA`: key of the CA bundle in the secret (default `ca.crt`).
    #[serde(default, rename = "trustedCA", skip_serializing_if = "Option::is_none")]
    pub trusted_ca: Option<String>,
    /// `certificate`: key of the certificate in the secret (default `tls.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// `privateKey`: key of the private key in the secret (default `tls.key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
}

/// `secret`: a Kubernetes secret by name and optional namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// `namespace`: the secret's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `name`: the secret's name (required).
    #[serde(default)]
    pub name: String,
}

/// `listener`: redirect this port's traffic to a named Envoy listener.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// `envoyConfig`: the CEC/CCEC defining the listener (required).
    #[serde(default)]
    pub envoy_config: EnvoyConfigRef,
    /// `name`: the listener's name in that config (required).
    #[serde(default)]
    pub name: String,
    /// `priority`: 1 (highest) to 100, used when merging listeners on one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// `envoyConfig`: which CEC/CCEC holds a listener.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyConfigRef {
    /// `kind`: `CiliumEnvoyConfig` or `CiliumClusterwideEnvoyConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `name`: the config's name (required).
    #[serde(default)]
    pub name: String,
}

/// `rules`: the L7 rules of an allow port entry; only one family may be set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct L7Rules {
    /// `http`: HTTP allow rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Vec<PortRuleHttp>>,
    /// `kafka`: Kafka allow rules (deprecated in 1.19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<Vec<PortRuleKafka>>,
    /// `dns`: DNS names the endpoint may look up (egress only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Vec<FqdnSelector>>,
    /// `l7proto`: name of a generic proxylib parser.
    #[serde(default, rename = "l7proto", skip_serializing_if = "Option::is_none")]
    pub l7proto: Option<String>,
    /// `l7`: key/value rules for the `l7proto` parser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l7: Option<Vec<BTreeMap<String, String>>>,
}

/// An `http[]` rule: all set fields must match (regexes on path, method, host).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortRuleHttp {
    /// `path`: extended POSIX regex on the URL path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `method`: extended POSIX regex on the method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `host`: extended POSIX regex on the Host header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `headers`: headers that must be present (`Name` or `Name: value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<String>>,
    /// `headerMatches`: headers matched against a value or secret, with a mismatch action.
    #[serde(
        default,
        rename = "headerMatches",
        skip_serializing_if = "Option::is_none"
    )]
    pub header_matches: Option<Vec<HeaderMatch>>,
}

/// A `headerMatches[]` entry: a header that must match a literal value or a secret.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    /// `name`: the header name (required, non-empty).
    #[serde(default)]
    pub name: String,
    /// `value`: the literal value to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `secret`: a secret whose value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// `mismatch`: `LOG`, `ADD`, `DELETE` or `REPLACE`; absent drops the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<String>,
}

/// A `kafka[]` rule (deprecated in 1.19): `role` or `apiKey`, plus version, client and topic.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortRuleKafka {
    /// `role`: `produce` or `consume` (exclusive with `apiKey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `apiKey`: a Kafka API key name such as `fetch`.
    #[serde(default, rename = "apiKey", skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// `apiVersion`: the Kafka API version.
    #[serde(
        default,
        rename = "apiVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<String>,
    /// `clientID`: the Kafka client id.
    #[serde(default, rename = "clientID", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `topic`: the Kafka topic (max 255 chars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// An `icmps[]` entry: a list of ICMP family/type pairs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IcmpRule {
    /// `fields`: up to 40 ICMP types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<IcmpField>>,
}

/// A `fields[]` entry: one ICMP type in a family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IcmpField {
    /// `family`: `IPv4` (default when absent) or `IPv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// `type`: the ICMP type, a number 0–255 or a CamelCase name (required).
    pub r#type: IcmpType,
}

/// An ICMP type as written: a number or a CamelCase name (`EchoRequest`). The number is kept
/// as written (even out of range) so the checks can report it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IcmpType {
    /// A numeric type, expected 0–255.
    Number(i64),
    /// A name from the family's table, e.g. `EchoRequest`.
    Name(String),
}

impl IcmpType {
    /// The number, if this is a number within 0–255.
    pub fn as_u8(&self) -> Option<u8> {
        match self {
            IcmpType::Number(n) => u8::try_from(*n).ok(),
            IcmpType::Name(_) => None,
        }
    }
}

impl fmt::Display for IcmpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IcmpType::Number(n) => write!(f, "{n}"),
            IcmpType::Name(s) => f.write_str(s),
        }
    }
}

impl Serialize for IcmpType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IcmpType::Number(n) => s.serialize_i64(*n),
            IcmpType::Name(name) => s.serialize_str(name),
        }
    }
}

impl<'de> Deserialize<'de> for IcmpType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IcmpTypeVisitor;
        impl Visitor<'_> for IcmpTypeVisitor {
            type Value = IcmpType;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ICMP type number (0-255) or CamelCase name")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IcmpType, E> {
                Ok(IcmpType::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IcmpType, E> {
                i64::try_from(v)
                    .map(IcmpType::Number)
                    .map_err(|_| E::custom(format!("ICMP type {v} is out of range")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IcmpType, E> {
                Ok(IcmpType::Name(v.to_owned()))
            }
        }
        d.deserialize_any(IcmpTypeVisitor)
    }
}

// ---------------------------------------------------------------------------------------------
// Envoy configs (CEC / CCEC)
// ---------------------------------------------------------------------------------------------

/// The `spec` of a CiliumEnvoyConfig or CiliumClusterwideEnvoyConfig.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyConfigSpec {
    /// `resources`: Envoy xDS resources (protobuf JSON with `@type`), kept as-is (required).
    #[serde(default)]
    pub resources: Vec<Value>,
    /// `services`: services whose traffic is redirected to a listener of this config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<ServiceListener>>,
    /// `backendServices`: services whose backends are synced to Envoy (EDS), not redirected.
    #[serde(
        default,
        rename = "backendServices",
        skip_serializing_if = "Option::is_none"
    )]
    pub backend_services: Option<Vec<BackendService>>,
    /// `nodeSelector`: nodes that get this config; absent means all nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
}

/// A `services[]` entry: a service redirected to a listener.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceListener {
    /// `name`: the service name (required).
    #[serde(default)]
    pub name: String,
    /// `namespace`: forced to the CEC's namespace; defaults to `default` in a CCEC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `ports`: frontend ports to redirect; absent redirects all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
    /// `listener`: listener name in `resources`; absent uses the first listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<String>,
}

/// A `backendServices[]` entry: a service whose backends Envoy load-balances to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendService {
    /// `name`: the service name (required).
    #[serde(default)]
    pub name: String,
    /// `namespace`: defaults to the CEC's namespace, or `default` in a CCEC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `number` (sic): the port numbers to sync; absent means all.
    #[serde(default, rename = "number", skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<String>>,
}

// ---------------------------------------------------------------------------------------------
// ward's CiliumConfig
// ---------------------------------------------------------------------------------------------

/// The `spec` of ward's CiliumConfig (ward's component config, not a Cilium CRD); every field
/// defaults to Cilium's own default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct CiliumConfigSpec {
    /// `enable-encryption`: transparent encryption between nodes (default false).
    pub enable_encryption: bool,
    /// `encryption`: encryption type and its settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// `policy-enforcement-mode`: `default`, `always` or `never` (default `default`).
    pub policy_enforcement_mode: String,
    /// `enable-node-selector-labels`: allow `fromNodes`/`toNodes` (default false).
    pub enable_node_selector_labels: bool,
    /// `enable-icmp-rules`: allow `icmps` rules (default true).
    pub enable_icmp_rules: bool,
    /// `enable-l7-proxy`: allow L7 rules (default true).
    pub enable_l7_proxy: bool,
    /// `enable-non-default-deny-policies`: honour `enableDefaultDeny` (default true).
    pub enable_non_default_deny_policies: bool,
    /// `cluster-name`: the local cluster name used by cluster scoping (default `default`).
    pub cluster_name: String,
}

impl Default for CiliumConfigSpec {
    fn default() -> Self {
        CiliumConfigSpec {
            enable_encryption: false,
            encryption: None,
            policy_enforcement_mode: "default".to_owned(),
            enable_node_selector_labels: false,
            enable_icmp_rules: true,
            enable_l7_proxy: true,
            enable_non_default_deny_policies: true,
            cluster_name: "default".to_owned(),
        }
    }
}

/// `encryption`: which transparent encryption to use and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct Encryption {
    /// `type`: `wireguard` (also `ipsec`, `ztunnel` in Cilium); empty when absent.
    pub r#type: String,
    /// `wireguard`: WireGuard settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wireguard: Option<WireguardConfig>,
}

/// `encryption.wireguard`: WireGuard mesh settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct WireguardConfig {
    /// `enabled`: whether the WireGuard mesh is on (default false).
    pub enabled: bool,
    /// `interface`: the interface named in the config (ward's own field; see the module docs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// `listen-port`: UDP listen port (default 51871, Cilium's port).
    pub listen_port: u16,
    /// `key-rotation-interval`: Go duration between key rotations (default `24h`).
    pub key_rotation_interval: String,
    /// `persistent-keepalive`: Go duration between keepalives; `0s` disables (default).
    pub persistent_keepalive: String,
}

/// Cilium's WireGuard UDP port.
pub const WIREGUARD_DEFAULT_PORT: u16 = 51871;

impl Default for WireguardConfig {
    fn default() -> Self {
        WireguardConfig {
            enabled: false,
            interface: None,
            listen_port: WIREGUARD_DEFAULT_PORT,
            key_rotation_interval: "24h".to_owned(),
            persistent_keepalive: "0s".to_owned(),
        }
    }
}

impl WireguardConfig {
    /// `key-rotation-interval` parsed as a Go duration.
    pub fn rotation_interval(&self) -> Result<Duration, String> {
        parse_duration(&self.key_rotation_interval)
            .map_err(|e| format!("key-rotation-interval: {e}"))
    }

    /// `persistent-keepalive` parsed as a Go duration (zero means off).
    pub fn keepalive_interval(&self) -> Result<Duration, String> {
        parse_duration(&self.persistent_keepalive).map_err(|e| format!("persistent-keepalive: {e}"))
    }
}

pub use crate::duration::parse as parse_duration;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    /// A CNP-shaped `spec` + `specs` using every field family, with absent and empty lists.
    fn full_policy() -> Value {
        json!({
            "spec": {
                "description": "frontend may call backend; backend egress is locked down",
                "endpointSelector": {
                    "matchLabels": {"app": "backend", "k8s:io.kubernetes.pod.namespace": "shop"},
                    "matchExpressions": [
                        {"key": "tier", "operator": "In", "values": ["api", "worker"]},
                        {"key": "canary", "operator": "DoesNotExist"}
                    ]
                },
                "labels": [
                    {"key": "team", "value": "payments", "source": "unspec"},
                    {"key": "audited"}
                ],
                "enableDefaultDeny": {"ingress": true, "egress": false},
                "log": {"value": "backend-policy"},
                "ingress": [
                    {
                        "fromEndpoints": [{"matchLabels": {"app": "frontend"}}, {}],
                        "toPorts": [{
                            "ports": [
                                {"port": "8080", "protocol": "TCP"},
                                {"port": "9000", "endPort": 9100, "protocol": "TCP"},
                                {"port": "http-alt"}
                            ],
                            "rules": {"http": [
                                {"method": "GET", "path": "/api/v1/.*", "host": "backend.shop.svc"},
                                {
                                    "method": "POST",
                                    "path": "/orders",
                                    "headers": ["X-Request-Id"],
                                    "headerMatches": [
                                        {"name": "X-Token", "secret": {"namespace": "shop", "name": "api-token"}, "mismatch": "DELETE"},
                                        {"name": "X-Env", "value": "prod"}
                                    ]
                                }
                            ]}
                        }],
                        "authentication": {"mode": "required"}
                    },
                    {
                        "fromCIDR": ["10.0.0.0/8", "192.0.2.7"],
                        "icmps": [{"fields": [
                            {"type": 8},
                            {"family": "IPv6", "type": "EchoRequest"}
                        ]}]
                    },
                    {
                        "fromCIDRSet": [
                            {"cidr": "172.16.0.0/12", "except": ["172.16.5.0/24"]},
                            {"cidrGroupRef": "office-ranges"},
                            {"cidrGroupSelector": {"matchLabels": {"env": "prod"}}}
                        ],
                        "toPorts": [{
                            "ports": [{"port": "443", "protocol": "TCP"}],
                            "terminatingTLS": {"secret": {"namespace": "shop", "name": "backend-tls"}},
                            "originatingTLS": {
                                "secret": {"name": "ca-bundle"},
                                "trustedCA": "ca.crt",
                                "certificate": "tls.crt",
                                "privateKey": "tls.key"
                            },
                            "serverNames": ["backend.example.com", "*.shop.example.com"],
                            "rules": {"kafka": [
                                {"role": "consume", "topic": "orders"},
                                {"apiKey": "produce", "apiVersion": "2", "clientID": "billing", "topic": "invoices"}
                            ]}
                        }]
                    },
                    {"fromEntities": ["cluster", "host"]},
                    {"fromGroups": [{"aws": {
                        "labels": {"group": "bastion"},
                        "securityGroupsIds": ["sg-0123"],
                        "securityGroupsNames": ["bastion"],
                        "region": "eu-west-1"
                    }}]},
                    {"fromNodes": [{"matchLabels": {"node-role.kubernetes.io/worker": ""}}]},
                    {"fromEndpoints": []},
                    {}
                ],
                "ingressDeny": [
                    {
                        "fromEntities": ["world"],
                        "toPorts": [{"ports": [{"port": "22", "protocol": "TCP"}]}]
                    },
                    {
                        "fromCIDRSet": [{"cidr": "198.51.100.0/24"}],
                        "icmps": [{"fields": [{"family": "IPv4", "type": "Timestamp"}]}]
                    }
                ],
                "egress": [
                    {
                        "toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s-app": "kube-dns"}}],
                        "toPorts": [{
                            "ports": [{"port": "53", "protocol": "ANY"}],
                            "rules": {"dns": [{"matchPattern": "*.shop.example.com"}, {"matchName": "api.stripe.com"}]}
                        }]
                    },
                    {
                        "toFQDNs": [{"matchName": "api.stripe.com"}, {"matchPattern": "**.amazonaws.com"}],
                        "toPorts": [{"ports": [{"port": "443"}]}]
                    },
                    {"toCIDR": ["203.0.113.0/24"]},
                    {"toCIDRSet": [{"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "169.254.169.254/32"]}]},
                    {"toEntities": ["kube-apiserver"], "authentication": {"mode": "disabled"}},
                    {"toServices": [
                        {"k8sService": {"serviceName": "postgres", "namespace": "db"}},
                        {"k8sServiceSelector": {"selector": {"matchLabels": {"tier": "cache"}}, "namespace": "db"}}
                    ]},
                    {"toGroups": [{"aws": {"securityGroupsIds": ["sg-0456"]}}]},
                    {"toNodes": [{}]},
                    {
                        "toEndpoints": [{"matchLabels": {"app": "proxy"}}],
                        "toPorts": [{
                            "ports": [{"port": "8443", "protocol": "TCP"}],
                            "listener": {"envoyConfig": {"kind": "CiliumEnvoyConfig", "name": "egress-proxy"}, "name": "l7-listener", "priority": 10}
                        }]
                    },
                    {
                        "toEndpoints": [{"matchLabels": {"app": "legacy"}}],
                        "toPorts": [{
                            "ports": [{"port": "7000", "protocol": "TCP"}],
                            "rules": {"l7proto": "r2d2", "l7": [{"cmd": "READ", "file": "/public/.*"}]}
                        }]
                    },
                    {"icmps": [{"fields": [{"type": "EchoRequest"}]}], "toEntities": ["world"]}
                ],
                "egressDeny": [
                    {"toCIDR": ["169.254.169.254"], "toPorts": [{"ports": [{"port": "80"}]}]},
                    {"toEndpoints": [], "icmps": [{"fields": [{"type": 0}]}]},
                    {"toServices": [{"k8sService": {"serviceName": "admin"}}]}
                ]
            },
            "specs": [
                {
                    "nodeSelector": {"matchLabels": {"node-role.kubernetes.io/control-plane": ""}},
                    "ingress": [{"fromEntities": ["remote-node"], "toPorts": [{"ports": [{"port": "6443", "protocol": "TCP"}]}]}]
                },
                {
                    "endpointSelector": {},
                    "egress": []
                }
            ]
        })
    }

    #[test]
    fn policy_round_trip_preserves_every_field_and_absent_versus_empty() {
        let input = full_policy();
        let policy: NetworkPolicy = serde_json::from_value(input.clone()).unwrap();
        let output = serde_json::to_value(&policy).unwrap();
        assert_eq!(output, input);
        // And a second pass is stable.
        let again: NetworkPolicy = serde_json::from_value(output).unwrap();
        assert_eq!(again, policy);
    }

    #[test]
    fn absent_and_empty_lists_are_distinct() {
        let policy: NetworkPolicy = serde_json::from_value(full_policy()).unwrap();
        let spec = policy.spec.as_ref().unwrap();
        let ingress = spec.ingress.as_ref().unwrap();
        // fromEndpoints: [] -> Some(empty): no peer.
        assert_eq!(ingress[6].common.from_endpoints, Some(vec![]));
        // {} -> every list absent: the "deny all" idiom.
        assert_eq!(ingress[7], IngressRule::default());
        // [{}] inside fromEndpoints -> a wildcard selector.
        let peers = ingress[0].common.from_endpoints.as_ref().unwrap();
        assert!(peers[1].is_wildcard());
        assert!(!peers[0].is_wildcard());
        // egress: [] on specs[1] is Some(empty), ingress there is None.
        let s1 = &policy.specs.as_ref().unwrap()[1];
        assert_eq!(s1.egress, Some(vec![]));
        assert_eq!(s1.ingress, None);
        assert!(s1.endpoint_selector.as_ref().unwrap().is_wildcard());
    }

    #[test]
    fn typed_fields_read_back() {
        let policy: NetworkPolicy = serde_json::from_value(full_policy()).unwrap();
        let spec = policy.spec.as_ref().unwrap();
        let ingress = spec.ingress.as_ref().unwrap();
        let ports = ingress[0].to_ports.as_ref().unwrap()[0]
            .ports
            .as_ref()
            .unwrap();
        assert_eq!(ports[1].port, "9000");
        assert_eq!(ports[1].end_port, Some(9100));
        assert_eq!(ports[2].protocol, None);
        let fields = ingress[1].icmps.as_ref().unwrap()[0]
            .fields
            .as_ref()
            .unwrap();
        assert_eq!(fields[0].r#type, IcmpType::Number(8));
        assert_eq!(fields[0].r#type.as_u8(), Some(8));
        assert_eq!(fields[1].r#type, IcmpType::Name("EchoRequest".into()));
        assert_eq!(fields[1].family.as_deref(), Some("IPv6"));
        let set = ingress[2].common.from_cidr_set.as_ref().unwrap();
        assert_eq!(set[1].cidr_group_ref.as_deref(), Some("office-ranges"));
        let tls = ingress[2].to_ports.as_ref().unwrap()[0]
            .terminating_tls
            .as_ref()
            .unwrap();
        assert_eq!(tls.secret.name, "backend-tls");
        let kafka = ingress[2].to_ports.as_ref().unwrap()[0]
            .rules
            .as_ref()
            .unwrap()
            .kafka
            .as_ref()
            .unwrap();
        assert_eq!(kafka[1].client_id.as_deref(), Some("billing"));
        let egress = spec.egress.as_ref().unwrap();
        assert_eq!(
            egress[1].to_fqdns.as_ref().unwrap()[1]
                .match_pattern
                .as_deref(),
            Some("**.amazonaws.com")
        );
        let svc = &egress[5].common.to_services.as_ref().unwrap()[1];
        assert_eq!(
            svc.k8s_service_selector
                .as_ref()
                .unwrap()
                .selector
                .match_labels["tier"],
            "cache"
        );
        let listener = egress[8].to_ports.as_ref().unwrap()[0]
            .listener
            .as_ref()
            .unwrap();
        assert_eq!(listener.envoy_config.name, "egress-proxy");
        assert_eq!(listener.priority, Some(10));
        let l7 = egress[9].to_ports.as_ref().unwrap()[0]
            .rules
            .as_ref()
            .unwrap();
        assert_eq!(l7.l7proto.as_deref(), Some("r2d2"));
        assert_eq!(spec.enable_default_deny.unwrap().egress, Some(false));
    }

    #[test]
    fn rules_name_their_origin() {
        let policy: NetworkPolicy = serde_json::from_value(full_policy()).unwrap();
        let origins: Vec<RuleRef> = policy.rules().map(|(at, _)| at).collect();
        assert_eq!(
            origins,
            vec![RuleRef::Spec, RuleRef::Specs(0), RuleRef::Specs(1)]
        );
        assert_eq!(
            origins.iter().map(|r| r.index()).collect::<Vec<_>>(),
            vec![None, Some(0), Some(1)]
        );
        assert_eq!(RuleRef::Specs(1).path(), "specs[1]");
        assert_eq!(RuleRef::Spec.path(), "spec");
        let (_, host_rule) = policy.rules().nth(1).unwrap();
        assert!(host_rule.node_selector.is_some());
        assert_eq!(policy.rule(RuleRef::Specs(1)).unwrap().egress, Some(vec![]));
        assert!(policy.rule(RuleRef::Specs(2)).is_none());

        let only_specs: NetworkPolicy = serde_json::from_value(json!({"specs": []})).unwrap();
        assert_eq!(only_specs.rules().count(), 0);
        assert!(!only_specs.is_empty_policy());
        assert!(NetworkPolicy::default().is_empty_policy());
    }

    #[test]
    fn whole_object_and_unknown_fields_are_accepted() {
        let doc = json!({
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "p", "namespace": "shop"},
            "spec": {
                "endpointSelector": {"matchLabels": {"app": "x"}},
                "ingress": [{"fromEndpoints": [{}], "fromRequires": [{}], "bogus": 1}],
                "notAField": true
            },
            "status": {"conditions": []}
        });
        let policy: NetworkPolicy = serde_json::from_value(doc).unwrap();
        assert_eq!(
            serde_json::to_value(&policy).unwrap(),
            json!({"spec": {"endpointSelector": {"matchLabels": {"app": "x"}}, "ingress": [{"fromEndpoints": [{}], "fromRequires": [{}]}]}})
        );
    }

    #[test]
    fn lenient_scalars() {
        // An unquoted YAML port is read as text; an out-of-range ICMP number is kept.
        let pp: PortProtocol = serde_json::from_value(json!({"port": 80})).unwrap();
        assert_eq!(pp.port, "80");
        let pp: PortProtocol = serde_json::from_value(json!({"protocol": "UDP"})).unwrap();
        assert_eq!(pp.port, "");
        assert_eq!(
            serde_json::to_value(&pp).unwrap(),
            json!({"protocol": "UDP"})
        );
        let f: IcmpField = serde_json::from_value(json!({"type": 300})).unwrap();
        assert_eq!(f.r#type, IcmpType::Number(300));
        assert_eq!(f.r#type.as_u8(), None);
        let err = serde_json::from_value::<IcmpField>(json!({"type": true})).unwrap_err();
        assert!(err.to_string().contains("ICMP type number"), "{err}");
    }

    #[test]
    fn envoy_config_round_trip() {
        let input = json!({
            "services": [{"name": "web", "namespace": "shop", "ports": [80, 443], "listener": "web-listener"}],
            "backendServices": [{"name": "api", "number": ["8080"]}, {"name": "db"}],
            "resources": [{
                "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
                "name": "web-listener",
                "filterChains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager"}]}]
            }],
            "nodeSelector": {"matchLabels": {"ingress": "yes"}}
        });
        let spec: EnvoyConfigSpec = serde_json::from_value(input.clone()).unwrap();
        let backends = spec.backend_services.as_ref().unwrap();
        assert_eq!(backends[0].ports, Some(vec!["8080".to_owned()]));
        assert_eq!(backends[1].ports, None);
        assert_eq!(
            spec.services.as_ref().unwrap()[0].ports,
            Some(vec![80, 443])
        );
        assert_eq!(spec.resources.len(), 1);
        assert_eq!(serde_json::to_value(&spec).unwrap(), input);
    }

    #[test]
    fn cilium_config_defaults_from_the_design_example() {
        let doc = json!({
            "enable-encryption": true,
            "encryption": {"type": "wireguard", "wireguard": {"enabled": true, "interface": "eth0"}}
        });
        let cfg: CiliumConfigSpec = serde_json::from_value(doc).unwrap();
        assert!(cfg.enable_encryption);
        let enc = cfg.encryption.as_ref().unwrap();
        assert_eq!(enc.r#type, "wireguard");
        let wg = enc.wireguard.as_ref().unwrap();
        assert!(wg.enabled);
        assert_eq!(wg.interface.as_deref(), Some("eth0"));
        assert_eq!(wg.listen_port, 51871);
        assert_eq!(wg.rotation_interval(), Ok(Duration::from_secs(24 * 3600)));
        assert_eq!(wg.keepalive_interval(), Ok(Duration::ZERO));
        // Untouched fields take Cilium's defaults.
        assert_eq!(cfg.policy_enforcement_mode, "default");
        assert!(!cfg.enable_node_selector_labels);
        assert!(
            cfg.enable_icmp_rules && cfg.enable_l7_proxy && cfg.enable_non_default_deny_policies
        );
        assert_eq!(cfg.cluster_name, "default");
    }

    #[test]
    fn cilium_config_default_and_overrides() {
        let empty: CiliumConfigSpec = serde_json::from_value(json!({})).unwrap();
        assert_eq!(empty, CiliumConfigSpec::default());
        let cfg: CiliumConfigSpec = serde_json::from_value(json!({
            "policy-enforcement-mode": "always",
            "enable-node-selector-labels": true,
            "enable-icmp-rules": false,
            "enable-l7-proxy": false,
            "enable-non-default-deny-policies": false,
            "cluster-name": "prod-eu",
            "encryption": {"wireguard": {"listen-port": 51000, "key-rotation-interval": "1h30m", "persistent-keepalive": "25s"}}
        }))
        .unwrap();
        assert_eq!(cfg.policy_enforcement_mode, "always");
        assert!(cfg.enable_node_selector_labels);
        assert!(
            !cfg.enable_icmp_rules && !cfg.enable_l7_proxy && !cfg.enable_non_default_deny_policies
        );
        assert_eq!(cfg.cluster_name, "prod-eu");
        let enc = cfg.encryption.as_ref().unwrap();
        assert_eq!(enc.r#type, "");
        let wg = enc.wireguard.as_ref().unwrap();
        assert!(!wg.enabled);
        assert_eq!(wg.listen_port, 51000);
        assert_eq!(wg.rotation_interval(), Ok(Duration::from_secs(5400)));
        assert_eq!(wg.keepalive_interval(), Ok(Duration::from_secs(25)));
        // Serializes with kebab-case names and round-trips.
        let out = serde_json::to_value(&cfg).unwrap();
        assert_eq!(
            out["encryption"]["wireguard"]["key-rotation-interval"],
            "1h30m"
        );
        assert_eq!(
            serde_json::from_value::<CiliumConfigSpec>(out).unwrap(),
            cfg
        );
        let bad = WireguardConfig {
            key_rotation_interval: "1d".into(),
            ..Default::default()
        };
        let err = bad.rotation_interval().unwrap_err();
        assert!(err.starts_with("key-rotation-interval: "), "{err}");
    }
}
