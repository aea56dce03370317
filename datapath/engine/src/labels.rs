//! Labels with sources (`k8s:app=web`, `reserved:host`) and sorted label sets.
//!
//! Cilium stores every label with a *source* (reference §2 EndpointSelector): `k8s` for pod,
//! namespace and node labels, `reserved` for the reserved identities (§4.5), `cidr`, `any`
//! (only in selectors: "this key from any source"), and a few others. A written label is
//! `source:key=value`; `$host` is shorthand for `reserved:host`.
//!
//! # Security-relevant labels
//! Identities are computed from the *security-relevant* labels only (Cilium's default
//! `labelsfilter`): every label is relevant except the noisy Kubernetes ones listed in
//! [`is_security_relevant`]. A selector on an irrelevant label (e.g. `io.kubernetes.pod.name`)
//! therefore matches nothing, exactly as in Cilium.

use std::fmt;

pub use ward_schema::labels::{
    CLUSTER_KEY, Label, LabelError, NAMESPACE_KEY, NAMESPACE_LABELS_PREFIX, SERVICE_ACCOUNT_KEY,
    SOURCE_ANY, SOURCE_K8S, SOURCE_RESERVED, split_source,
};

/// Whether a label takes part in identities, following Cilium's default label filter:
/// reserved labels, the namespace, the namespace's labels and `app.kubernetes.io/*` are kept;
/// other `io.kubernetes*`, `kubernetes.io*`, `*beta.kubernetes.io*` and `k8s.io*` keys, the
/// per-pod keys (`statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`,
/// `batch.kubernetes.io/job-completion-index`, `batch.kubernetes.io/controller-uid`,
/// `pod-template-generation`, `pod-template-hash`, `controller-revision-hash`) and
/// `annotation*` / `etcd_node` are dropped; everything else is kept.
pub fn is_security_relevant(label: &Label) -> bool {
    const KEEP: [&str; 4] = [
        NAMESPACE_KEY,
        NAMESPACE_LABELS_PREFIX,
        "app.kubernetes.io",
        "io.cilium.k8s.policy",
    ];
    const DROP: [&str; 12] = [
        "io.kubernetes",
        "kubernetes.io",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "batch.kubernetes.io/job-completion-index",
        "batch.kubernetes.io/controller-uid",
        "k8s.io",
        "pod-template-generation",
        "pod-template-hash",
        "controller-revision-hash",
        "annotation",
        "etcd_node",
    ];
    if label.is_reserved() || KEEP.iter().any(|p| label.key.starts_with(p)) {
        return true;
    }
    !(DROP.iter().any(|p| label.key.starts_with(p)) || label.key.contains("beta.kubernetes.io"))
}

/// A set of labels with at most one label per key (as in Cilium, where labels are a map by
/// key; a later label with the same key replaces the earlier one), sorted by key. Ordered and
/// hashable, so it can key identities.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelSet {
    labels: Vec<Label>,
}

impl LabelSet {
    /// The empty set.
    pub fn new() -> LabelSet {
        LabelSet::default()
    }

    /// A set from labels; for a repeated key the last one wins.
    pub fn from_labels(labels: impl IntoIterator<Item = Label>) -> LabelSet {
        let mut set = LabelSet::new();
        for l in labels {
            set.insert(l);
        }
        set
    }

    /// Parses labels written as `source:key=value` (see [`Label::parse`]).
    pub fn parse<'a>(
        texts: impl IntoIterator<Item = &'a str>,
        default_source: &str,
    ) -> Result<LabelSet, LabelError> {
        let labels: Result<Vec<Label>, LabelError> = texts
            .into_iter()
            .map(|t| Label::parse(t, default_source))
            .collect();
        Ok(LabelSet::from_labels(labels?))
    }

    /// Adds a label, replacing any label with the same key.
    pub fn insert(&mut self, label: Label) {
        match self
            .labels
            .binary_search_by(|l| l.key.as_str().cmp(&label.key))
        {
            Ok(i) => self.labels[i] = label,
            Err(i) => self.labels.insert(i, label),
        }
    }

    /// The label with this key, whatever its source.
    pub fn get(&self, key: &str) -> Option<&Label> {
        self.labels
            .binary_search_by(|l| l.key.as_str().cmp(key))
            .ok()
            .map(|i| &self.labels[i])
    }

    /// Whether a label with this source and key exists (`any` matches every source).
    pub fn has(&self, source: &str, key: &str) -> bool {
        self.get(key)
            .is_some_and(|l| source == SOURCE_ANY || l.source == source)
    }

    /// The labels, sorted by key.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.labels.iter()
    }

    /// How many labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Only the security-relevant labels ([`is_security_relevant`]).
    pub fn security_relevant(&self) -> LabelSet {
        LabelSet {
            labels: self
                .labels
                .iter()
                .filter(|l| is_security_relevant(l))
                .cloned()
                .collect(),
        }
    }
}

impl fmt::Display for LabelSet {
    /// `k8s:app=web,k8s:io.kubernetes.pod.namespace=shop`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, l) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{l}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_sources_keys_and_values() {
        assert_eq!(
            Label::parse("k8s:app=web", "k8s").unwrap(),
            Label::new("k8s", "app", "web")
        );
        assert_eq!(
            Label::parse("app=web", "k8s").unwrap(),
            Label::new("k8s", "app", "web")
        );
        assert_eq!(
            Label::parse("reserved:host", "k8s").unwrap(),
            Label::reserved("host")
        );
        assert_eq!(
            Label::parse("$host", "k8s").unwrap(),
            Label::reserved("host")
        );
        assert_eq!(
            Label::parse(
                "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
                "k8s"
            )
            .unwrap()
            .key,
            "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name"
        );
        assert_eq!(Label::parse("a=b=c", "k8s").unwrap().value, "b=c");
        assert!(Label::parse("=x", "k8s").is_err());
        assert!(Label::parse(":app=x", "k8s").is_err());
        assert!(Label::parse("app=has space", "k8s").is_err());
        assert_eq!(Label::new("k8s", "app", "web").to_string(), "k8s:app=web");
        assert_eq!(Label::reserved("world").to_string(), "reserved:world");
    }

    #[test]
    fn sets_are_sorted_and_keep_one_label_per_key() {
        let set = LabelSet::parse(["k8s:b=1", "k8s:a=2", "container:b=3"], "k8s").unwrap();
        assert_eq!(set.to_string(), "k8s:a=2,container:b=3");
        assert!(set.has("any", "b") && set.has("container", "b") && !set.has("k8s", "b"));
        let same = LabelSet::parse(["container:b=3", "k8s:a=2"], "k8s").unwrap();
        assert_eq!(set, same);
    }

    #[test]
    fn noisy_kubernetes_labels_are_not_security_relevant() {
        let set = LabelSet::parse(
            [
                "app=web",
                "pod-template-hash=abc",
                "io.kubernetes.pod.name=web-1",
                "io.kubernetes.pod.namespace=shop",
                "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
                "app.kubernetes.io/name=web",
                "statefulset.kubernetes.io/pod-name=web-0",
                "failure-domain.beta.kubernetes.io/zone=a",
                "reserved:host",
            ],
            "k8s",
        )
        .unwrap();
        let kept: Vec<String> = set
            .security_relevant()
            .iter()
            .map(|l| l.key.clone())
            .collect();
        assert_eq!(
            kept,
            [
                "app",
                "app.kubernetes.io/name",
                "host",
                "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name",
                "io.kubernetes.pod.namespace",
            ]
        );
    }
}
