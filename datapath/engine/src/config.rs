//! The agent settings that change policy semantics, read from ward's CiliumConfig.

use ward_schema::ResourceSet;
use ward_schema::model::CiliumConfigSpec;

/// `policy-enforcement-mode` (reference §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Enforcement {
    /// An endpoint is unrestricted until some rule selects it.
    #[default]
    Default,
    /// Every endpoint is in default deny in both directions.
    Always,
    /// Nothing is enforced.
    Never,
}

/// The agent settings that change policy semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// `cluster-name` (default `default`), used by cluster scoping and the `cluster` entity.
    pub cluster_name: String,
    /// `policy-enforcement-mode`.
    pub enforcement: Enforcement,
    /// `enable-non-default-deny-policies` (default true): honour `enableDefaultDeny`.
    pub non_default_deny_policies: bool,
    /// `enable-node-selector-labels` (default false): remote nodes get identities from their
    /// labels so `fromNodes`/`toNodes` can select them.
    pub node_selector_labels: bool,
    /// `allow-localhost` (Cilium's default `auto` is `always` in Kubernetes mode): the local
    /// host (identity 1) may always reach the workload endpoints on its node, unless a deny
    /// rule says otherwise. Kubelet probes rely on it.
    pub allow_localhost: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig::from_spec(&CiliumConfigSpec::default())
    }
}

impl EngineConfig {
    /// The settings of a CiliumConfig `spec` (an unknown enforcement mode reads as `default`).
    pub fn from_spec(spec: &CiliumConfigSpec) -> EngineConfig {
        let enforcement = match spec.policy_enforcement_mode.as_str() {
            "always" => Enforcement::Always,
            "never" => Enforcement::Never,
            _ => Enforcement::Default,
        };
        EngineConfig {
            cluster_name: spec.cluster_name.clone(),
            enforcement,
            non_default_deny_policies: spec.enable_non_default_deny_policies,
            node_selector_labels: spec.enable_node_selector_labels,
            allow_localhost: true,
        }
    }

    /// The settings of the set's CiliumConfig, or the defaults.
    pub fn from_resources(set: &ResourceSet) -> EngineConfig {
        let spec = set
            .config()
            .and_then(|r| serde::Deserialize::deserialize(r.spec()).ok());
        EngineConfig::from_spec(&spec.unwrap_or_default())
    }
}
