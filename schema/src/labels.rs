//! Labels with sources (`k8s:app=web`, `reserved:host`): their syntax, as Cilium writes them.
//!
//! Cilium stores every label with a *source* (reference §2 EndpointSelector): `k8s` for pod,
//! namespace and node labels, `reserved` for the reserved identities (§4.5), `cidr`, `any`
//! (only in selectors: "this key from any source"), and a few others. A written label is
//! `source:key=value`; `$host` is shorthand for `reserved:host`.
//!
//! Documents that carry labels (lab topologies, policy tests) are checked with these types;
//! the engine builds label sets and identities from them.
use std::fmt;

/// The `k8s` source: pod, namespace and node labels.
pub const SOURCE_K8S: &str = "k8s";
/// The `reserved` source: labels of the reserved identities.
pub const SOURCE_RESERVED: &str = "reserved";
/// The `any` source: in a selector, matches the key from every source.
pub const SOURCE_ANY: &str = "any";

/// `io.kubernetes.pod.namespace`: the namespace of a pod.
pub const NAMESPACE_KEY: &str = "io.kubernetes.pod.namespace";
/// `io.cilium.k8s.policy.serviceaccount`: the pod's ServiceAccount (`spec.serviceAccountName`,
/// which the API server sets to `default` when a pod names none).
pub const SERVICE_ACCOUNT_KEY: &str = "io.cilium.k8s.policy.serviceaccount";
/// `io.cilium.k8s.policy.cluster`: the cluster a pod belongs to.
pub const CLUSTER_KEY: &str = "io.cilium.k8s.policy.cluster";
/// `io.cilium.k8s.namespace.labels.`: prefix of the namespace's labels copied onto its pods.
pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";

/// One label: source, key and value (empty for reserved labels).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// Where the label comes from (`k8s`, `reserved`, ...).
    pub source: String,
    /// The key, without the source.
    pub key: String,
    /// The value; empty when absent.
    pub value: String,
}

/// A label that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label {text:?}: {why}")]
pub struct LabelError {
    /// The text as written.
    pub text: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl Label {
    /// A label from its parts.
    pub fn new(source: &str, key: &str, value: &str) -> Label {
        Label {
            source: source.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
        }
    }

    /// A reserved label such as `reserved:host`.
    pub fn reserved(name: &str) -> Label {
        Label::new(SOURCE_RESERVED, name, "")
    }

    /// Parses `source:key=value`, `key=value`, `key` or `$host`; a key without a source gets
    /// `default_source`. The value may be empty; the key may not.
    pub fn parse(text: &str, default_source: &str) -> Result<Label, LabelError> {
        let (key_part, value) = match text.split_once('=') {
            Some((k, v)) => (k, v),
            None => (text, ""),
        };
        let (source, key) = split_source(key_part, default_source);
        Label::checked(text, source, key, value)
    }

    /// A label from a `key: value` map entry, where the key may carry a `source:` prefix.
    pub fn from_entry(key: &str, value: &str, default_source: &str) -> Result<Label, LabelError> {
        let (source, bare) = split_source(key, default_source);
        Label::checked(key, source, bare, value)
    }

    fn checked(text: &str, source: &str, key: &str, value: &str) -> Result<Label, LabelError> {
        let err = |why| {
            Err(LabelError {
                text: text.to_owned(),
                why,
            })
        };
        if key.is_empty() {
            return err("the key is empty");
        }
        if source.is_empty() {
            return err("the source before ':' is empty");
        }
        if key
            .chars()
            .chain(value.chars())
            .any(|c| c.is_whitespace() || c == ',')
        {
            return err("keys and values may not contain spaces or commas");
        }
        if value.len() > 63 {
            return err("the value is longer than 63 characters");
        }
        Ok(Label::new(source, key, value))
    }

    /// Whether this is a `reserved:` label.
    pub fn is_reserved(&self) -> bool {
        self.source == SOURCE_RESERVED
    }
}

/// Splits a written key into (source, key): `source:key` → (`source`, `key`), `$name` →
/// (`reserved`, `name`), a key without a colon → (`default_source`, key). A colon after a
/// `/` belongs to the key (Kubernetes keys cannot hold one, so this only guards odd input).
pub fn split_source<'a>(written: &'a str, default_source: &'a str) -> (&'a str, &'a str) {
    if let Some(name) = written.strip_prefix('$') {
        return (SOURCE_RESERVED, name);
    }
    match written.split_once(':') {
        Some((source, key)) if !source.contains('/') => (source, key),
        _ => (default_source, written),
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{}", self.source, self.key)
        } else {
            write!(f, "{}:{}={}", self.source, self.key, self.value)
        }
    }
}
