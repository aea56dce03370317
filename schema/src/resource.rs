//! What ward manages: the kinds, their identity ([`ResourceKey`]) and a loaded [`Resource`].

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The kinds ward manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// ward's component config (WireGuard encryption and agent flags). Applied first.
    CiliumConfig,
    /// A named set of external CIDRs (cilium.io/v2, also served as v2alpha1), referenced by
    /// `fromCIDRSet`/`toCIDRSet`; cluster-scoped and applied before the policies naming it.
    CiliumCIDRGroup,
    /// Cluster-wide network policy (cilium.io/v2).
    CiliumClusterwideNetworkPolicy,
    /// Cluster-wide Envoy config (cilium.io/v2).
    CiliumClusterwideEnvoyConfig,
    /// Namespaced network policy (cilium.io/v2).
    CiliumNetworkPolicy,
    /// Kubernetes NetworkPolicy (networking.k8s.io/v1), which Cilium enforces beside CNPs.
    NetworkPolicy,
    /// Namespaced Envoy config (cilium.io/v2).
    CiliumEnvoyConfig,
    /// ward's policy unit test: validated and run by `ward test`, never applied.
    PolicyTest,
    /// ward's lab topology (`ward lab up`): nodes, pods and a world host; never applied.
    LabTopology,
}

/// The apiVersion of every Cilium CRD kind ward manages.
pub const CILIUM_V2: &str = "cilium.io/v2";
/// The deprecated apiVersion CiliumCIDRGroup is still served at (Cilium 1.18, 1.19).
pub const CILIUM_V2ALPHA1: &str = "cilium.io/v2alpha1";
/// The apiVersion of Kubernetes NetworkPolicy.
pub const NETWORKING_V1: &str = "networking.k8s.io/v1";
/// The apiVersion of ward's CiliumConfig document.
pub const CILIUM_CONFIG_VERSION: &str = "cilium.io/v1.12";
/// The apiVersion of ward's own kinds (PolicyTest, LabTopology).
pub const WARD_V1ALPHA1: &str = "ward.dev/v1alpha1";

impl Kind {
    /// Every kind, in apply order: config and cluster-wide objects before namespaced ones.
    pub const ALL: [Kind; 9] = [
        Kind::CiliumConfig,
        Kind::CiliumCIDRGroup,
        Kind::CiliumClusterwideNetworkPolicy,
        Kind::CiliumClusterwideEnvoyConfig,
        Kind::CiliumNetworkPolicy,
        Kind::NetworkPolicy,
        Kind::CiliumEnvoyConfig,
        Kind::PolicyTest,
        Kind::LabTopology,
    ];

    /// The kind's name as written in `kind:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::CiliumConfig => "CiliumConfig",
            Kind::CiliumCIDRGroup => "CiliumCIDRGroup",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
            Kind::CiliumClusterwideEnvoyConfig => "CiliumClusterwideEnvoyConfig",
            Kind::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            Kind::CiliumEnvoyConfig => "CiliumEnvoyConfig",
            Kind::PolicyTest => "PolicyTest",
            Kind::LabTopology => "LabTopology",
        }
    }

    /// Parses a `kind:` value (exact, as Kubernetes does).
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The apiVersion ward writes for this kind (the storage version).
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::CiliumConfig => CILIUM_CONFIG_VERSION,
            Kind::PolicyTest | Kind::LabTopology => WARD_V1ALPHA1,
            Kind::NetworkPolicy => NETWORKING_V1,
            _ => CILIUM_V2,
        }
    }

    /// Whether `api` serves this kind: its [`Kind::api_version`], and for CiliumCIDRGroup also
    /// the deprecated `cilium.io/v2alpha1`.
    pub fn serves(self, api: &str) -> bool {
        api == self.api_version() || (self == Kind::CiliumCIDRGroup && api == CILIUM_V2ALPHA1)
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        matches!(
            self,
            Kind::CiliumNetworkPolicy | Kind::NetworkPolicy | Kind::CiliumEnvoyConfig
        )
    }

    /// Whether objects of this kind are applied to targets (everything but ward's own
    /// PolicyTest and LabTopology).
    pub fn is_applied(self) -> bool {
        !matches!(self, Kind::PolicyTest | Kind::LabTopology)
    }

    /// Whether this kind holds network-policy rules (CNP, CCNP, Kubernetes NetworkPolicy).
    pub fn is_policy(self) -> bool {
        matches!(
            self,
            Kind::CiliumNetworkPolicy | Kind::CiliumClusterwideNetworkPolicy | Kind::NetworkPolicy
        )
    }

    /// Whether the policy engine reads this kind: the policies and the CIDR groups they refer
    /// to.
    pub fn is_engine_input(self) -> bool {
        self.is_policy() || self == Kind::CiliumCIDRGroup
    }

    /// The short name kubectl knows (`cnp`, `ccnp`, …), used in compact output.
    pub fn short_name(self) -> &'static str {
        match self {
            Kind::CiliumConfig => "config",
            Kind::CiliumCIDRGroup => "ccg",
            Kind::NetworkPolicy => "netpol",
            Kind::CiliumClusterwideNetworkPolicy => "ccnp",
            Kind::CiliumClusterwideEnvoyConfig => "ccec",
            Kind::CiliumNetworkPolicy => "cnp",
            Kind::CiliumEnvoyConfig => "cec",
            Kind::PolicyTest => "policytest",
            Kind::LabTopology => "labtopology",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity of an object: kind, namespace (for namespaced kinds) and name. Ordered in
/// apply order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceKey {
    /// The kind.
    pub kind: Kind,
    /// The namespace; `None` for cluster-scoped kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl ResourceKey {
    /// A key; `namespace` is dropped for cluster-scoped kinds.
    pub fn new(kind: Kind, namespace: Option<&str>, name: &str) -> Self {
        ResourceKey {
            kind,
            namespace: namespace.filter(|_| kind.namespaced()).map(str::to_owned),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for ResourceKey {
    /// `CiliumNetworkPolicy/shop/backend` or `CiliumClusterwideNetworkPolicy/deny-world`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// Where a resource was defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Origin {
    /// File relative to the repository root.
    pub file: String,
    /// 1-based line of the document's first key.
    pub line: usize,
    /// 0-based index of the document in its file.
    pub document: usize,
    /// 1-based lines of the items of a PolicyTest's `spec.expectations`, so that a failed
    /// expectation can be pointed at; empty for other kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub item_lines: Vec<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One valid object of the desired state.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// Its identity.
    pub key: ResourceKey,
    /// The whole object as JSON, exactly as written (namespace filled in where defaulted).
    pub object: Value,
    /// Where it came from.
    pub origin: Origin,
}

impl Resource {
    /// The object's `spec`, or null.
    pub fn spec(&self) -> &Value {
        self.object.get("spec").unwrap_or(&Value::Null)
    }
}

/// Is `s` a DNS-1123 subdomain (object names): at most 253 characters of lower-case
/// alphanumerics, `-` and `.`, starting and ending alphanumeric.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label_unbounded)
}

/// Is `s` a DNS-1123 label (namespaces): at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && is_dns1123_label_unbounded(s)
}

fn is_dns1123_label_unbounded(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_config_and_clusterwide_first() {
        let mut keys = [
            ResourceKey::new(Kind::CiliumNetworkPolicy, Some("a"), "x"),
            ResourceKey::new(Kind::CiliumClusterwideNetworkPolicy, None, "y"),
            ResourceKey::new(Kind::CiliumConfig, None, "c"),
        ];
        keys.sort();
        assert_eq!(keys[0].kind, Kind::CiliumConfig);
        assert_eq!(keys[2].to_string(), "CiliumNetworkPolicy/a/x");
    }

    #[test]
    fn cluster_scoped_keys_drop_the_namespace() {
        let k = ResourceKey::new(Kind::CiliumClusterwideNetworkPolicy, Some("ns"), "n");
        assert_eq!(k.namespace, None);
    }

    #[test]
    fn dns_names() {
        assert!(is_dns1123_subdomain("allow-frontend.v2"));
        assert!(!is_dns1123_subdomain("Allow"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
    }
}
