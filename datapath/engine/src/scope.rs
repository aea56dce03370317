//! Namespace and cluster scoping of policy selectors, as Cilium's `ParseToCiliumRule` does it
//! (reference §4.3).
//!
//! - CNP subject: `k8s:io.kubernetes.pod.namespace=<policy namespace>` is added, replacing a
//!   user-written `k8s:` namespace match; a source-less namespace key stays (and is ANDed).
//! - CNP peer (`fromEndpoints`/`toEndpoints`): the same namespace match is added unless the
//!   selector names the namespace key (`k8s:` or any source), a namespace-labels key
//!   (`io.cilium.k8s.namespace.labels.*`) or any `reserved:` key.
//! - CCNP peer: `k8s:io.kubernetes.pod.namespace Exists` is added unless it names the
//!   namespace key or a `reserved:` key, or the rule's subject names `reserved:init`.
//! - Cluster (1.19, `policy-default-local-cluster=true`): peers without a cluster key also get
//!   `k8s:io.cilium.k8s.policy.cluster=<cluster>`; the same exemptions as the namespace
//!   (reserved keys, init subjects) apply, because reserved identities carry no cluster label.
//! - `fromNodes`/`toNodes`: `reserved:remote-node Exists` plus the cluster match.
//!
//! CCNP subjects are not modified.

use super::labels::{
    CLUSTER_KEY, NAMESPACE_KEY, NAMESPACE_LABELS_PREFIX, SOURCE_ANY, SOURCE_K8S, SOURCE_RESERVED,
};
use super::selector::{Operator, Requirement, Selector};
use ward_schema::model;

/// The context that decides how a rule's selectors are scoped.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The policy's namespace for a CNP; `None` for a CCNP.
    pub namespace: Option<&'a str>,
    /// The local cluster's name (`cluster-name`, default `default`).
    pub cluster: &'a str,
    /// Whether the rule's subject selector names `reserved:init`.
    pub subject_is_init: bool,
}

impl<'a> Scope<'a> {
    /// The scope of one rule: `namespace` for CNPs, the rule's own (unscoped) subject.
    pub fn new(namespace: Option<&'a str>, cluster: &'a str, subject: &Selector) -> Scope<'a> {
        let subject_is_init = subject.has_key(SOURCE_RESERVED, "init");
        Scope {
            namespace,
            cluster,
            subject_is_init,
        }
    }

    /// The subject selector of an `endpointSelector` as Cilium applies it.
    pub fn subject(&self, sel: &model::EndpointSelector) -> Selector {
        let mut out = Selector::from_model(sel);
        if let Some(ns) = self.namespace {
            out.remove_in(SOURCE_K8S, NAMESPACE_KEY);
            out.push(namespace_is(ns));
        }
        out
    }

    /// A `fromEndpoints`/`toEndpoints` selector as Cilium applies it.
    pub fn peer(&self, sel: &model::EndpointSelector) -> Selector {
        let mut out = Selector::from_model(sel);
        if out.has_reserved_key() {
            return out;
        }
        if !out.has_key(SOURCE_K8S, NAMESPACE_KEY) {
            match self.namespace {
                Some(ns) if !out.has_key_prefix(SOURCE_ANY, NAMESPACE_LABELS_PREFIX) => {
                    out.push(namespace_is(ns))
                }
                Some(_) => {}
                None if !self.subject_is_init => {
                    out.push(Requirement::new(
                        SOURCE_K8S,
                        NAMESPACE_KEY,
                        Operator::Exists,
                    ));
                }
                None => {}
            }
        }
        self.add_cluster(&mut out);
        out
    }

    /// A `fromNodes`/`toNodes` selector as Cilium applies it.
    pub fn node_peer(&self, sel: &model::EndpointSelector) -> Selector {
        let mut out = Selector::from_model(sel);
        out.push(Requirement::new(
            SOURCE_RESERVED,
            "remote-node",
            Operator::Exists,
        ));
        if !out.has_key(SOURCE_K8S, CLUSTER_KEY) {
            out.push(cluster_is(self.cluster));
        }
        out
    }

    fn add_cluster(&self, out: &mut Selector) {
        if !self.subject_is_init && !out.has_key(SOURCE_K8S, CLUSTER_KEY) {
            out.push(cluster_is(self.cluster));
        }
    }
}

/// `k8s:io.kubernetes.pod.namespace=<ns>`.
pub fn namespace_is(ns: &str) -> Requirement {
    Requirement::new(SOURCE_K8S, NAMESPACE_KEY, Operator::In(vec![ns.to_owned()]))
}

/// `k8s:io.cilium.k8s.policy.cluster=<cluster>`.
pub fn cluster_is(cluster: &str) -> Requirement {
    Requirement::new(
        SOURCE_K8S,
        CLUSTER_KEY,
        Operator::In(vec![cluster.to_owned()]),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn model_sel(v: serde_json::Value) -> model::EndpointSelector {
        serde_json::from_value(v).unwrap()
    }

    fn cnp() -> Scope<'static> {
        Scope {
            namespace: Some("shop"),
            cluster: "default",
            subject_is_init: false,
        }
    }

    fn ccnp() -> Scope<'static> {
        Scope {
            namespace: None,
            cluster: "default",
            subject_is_init: false,
        }
    }

    #[test]
    fn cnp_subject_gets_the_policy_namespace_and_overrides_a_k8s_one() {
        let s = cnp().subject(&model_sel(
            json!({"matchLabels": {"k8s:io.kubernetes.pod.namespace": "other", "app": "x"}}),
        ));
        assert_eq!(
            s.to_string(),
            "any:app = x, k8s:io.kubernetes.pod.namespace = shop"
        );
        // A source-less namespace key is kept, so the subject can match nothing.
        let s = cnp().subject(&model_sel(
            json!({"matchLabels": {"io.kubernetes.pod.namespace": "other"}}),
        ));
        assert_eq!(s.requirements().len(), 2);
        assert!(ccnp().subject(&model_sel(json!({}))).is_wildcard());
    }

    #[test]
    fn cnp_peers_are_scoped_unless_they_name_a_namespace_or_reserved_key() {
        let scoped = cnp().peer(&model_sel(json!({})));
        assert_eq!(
            scoped.to_string(),
            "k8s:io.cilium.k8s.policy.cluster = default, k8s:io.kubernetes.pod.namespace = shop"
        );
        let named = cnp().peer(&model_sel(
            json!({"matchLabels": {"io.kubernetes.pod.namespace": "db"}}),
        ));
        assert_eq!(
            named.to_string(),
            "any:io.kubernetes.pod.namespace = db, k8s:io.cilium.k8s.policy.cluster = default"
        );
        let ns_labels = cnp().peer(&model_sel(
            json!({"matchLabels": {"io.cilium.k8s.namespace.labels.team": "a"}}),
        ));
        assert!(!ns_labels.has_key("k8s", NAMESPACE_KEY));
        let reserved = cnp().peer(&model_sel(json!({"matchLabels": {"reserved:host": ""}})));
        assert_eq!(reserved.requirements().len(), 1);
    }

    #[test]
    fn ccnp_peers_need_a_namespace_label_except_for_init_subjects() {
        let p = ccnp().peer(&model_sel(json!({})));
        assert_eq!(
            p.to_string(),
            "k8s:io.cilium.k8s.policy.cluster = default, k8s:io.kubernetes.pod.namespace exists"
        );
        let init = Scope {
            subject_is_init: true,
            ..ccnp()
        };
        assert!(init.peer(&model_sel(json!({}))).is_wildcard());
        let subject =
            Selector::from_model(&model_sel(json!({"matchLabels": {"reserved:init": ""}})));
        assert!(Scope::new(None, "default", &subject).subject_is_init);
    }

    #[test]
    fn node_peers_select_remote_nodes_of_the_cluster() {
        let n = ccnp().node_peer(&model_sel(json!({"matchLabels": {"role": "db"}})));
        assert_eq!(
            n.to_string(),
            "any:role = db, k8s:io.cilium.k8s.policy.cluster = default, reserved:remote-node exists"
        );
    }
}
