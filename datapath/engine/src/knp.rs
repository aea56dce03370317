//! Kubernetes NetworkPolicy (networking.k8s.io/v1) as Cilium translates it
//! (cilium/cilium pkg/k8s/network_policy.go `ParseNetworkPolicy`; reference:
//! knp-and-cidrgroup-semantics §1) into the same compiled rules as a CNP, so resolution,
//! verdicts and the datapath's map entries need nothing of their own.
//!
//! - Subject: `podSelector` plus `k8s:io.kubernetes.pod.namespace=<policy namespace>`.
//! - policyTypes default as the API server sets them (`[Ingress]`, plus `Egress` when `egress`
//!   is non-empty). Every `ingress` and `egress` rule is converted whatever policyTypes says
//!   (Cilium's behaviour, #48703); ingress is in default deny when it has rules, when
//!   policyTypes has Ingress or when it lacks Egress; egress when it has rules or policyTypes
//!   has Egress. A KNP's default deny cannot be undone by a CNP's `enableDefaultDeny: false`.
//! - A rule's `from`/`to` absent or empty: every peer (the wildcard, world and host included);
//!   `ports` absent or empty: every port of every protocol.
//! - Peers: `podSelector` alone is pinned to the policy's namespace; `namespaceSelector` keys
//!   become `io.cilium.k8s.namespace.labels.<key>` (an empty one: every pod of every
//!   namespace); both in one peer are ANDed without the namespace pin; every pod peer is
//!   pinned to the local cluster (1.19's `policy-default-local-cluster`). `ipBlock` is a CIDR
//!   peer with its `except` carved out; it matches world addresses only, never pods.
//! - Ports: protocol defaults to TCP; no port is every port of the protocol; `endPort` makes a
//!   range; a named port resolves as a CNP's does.

use super::cidr::{CidrPeer, Prefix};
use super::compile::{CompiledPolicy, CompiledRule, Ctx, Entry, PeerMatch, RuleCompiler, Subject};
use super::labels::{CLUSTER_KEY, NAMESPACE_KEY, NAMESPACE_LABELS_PREFIX, SOURCE_K8S};
use super::ports::L4;
use super::rule::{Note, RuleList, RuleRef, SpecRef};
use super::scope::{cluster_is, namespace_is};
use super::selector::{Operator, Requirement, Selector};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use ward_schema::Resource;
use ward_schema::model::{LabelSelector, PortProtocol};

#[derive(Deserialize, Default)]
#[serde(default)]
struct NetworkPolicy {
    spec: Spec,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Spec {
    pod_selector: LabelSelector,
    policy_types: Vec<String>,
    ingress: Vec<IngressRule>,
    egress: Vec<EgressRule>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IngressRule {
    from: Vec<Peer>,
    ports: Vec<Port>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EgressRule {
    to: Vec<Peer>,
    ports: Vec<Port>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Peer {
    pod_selector: Option<LabelSelector>,
    namespace_selector: Option<LabelSelector>,
    ip_block: Option<IpBlock>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IpBlock {
    cidr: String,
    except: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Port {
    protocol: Option<String>,
    port: Option<Value>,
    end_port: Option<i32>,
}

/// Compiles a NetworkPolicy into one rule (its `spec`).
pub(crate) fn compile(res: &Resource, ctx: &mut Ctx<'_>) -> CompiledPolicy {
    let origin = RuleRef {
        policy: Arc::new(res.key.clone()),
        spec: SpecRef::Spec,
        entry: None,
    };
    let mut notes = Vec::new();
    let policy = match NetworkPolicy::deserialize(&res.object) {
        Ok(p) => p,
        Err(e) => {
            notes.push(Note {
                rule: origin,
                message: format!("the policy does not parse ({e}); it is ignored"),
                unresolved: false,
            });
            return CompiledPolicy {
                rules: Vec::new(),
                notes,
            };
        }
    };
    let namespace = res
        .key
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut c = RuleCompiler::new(ctx, &mut notes, origin.clone(), Some(&namespace));
    let rule = c.knp_rule(&policy.spec, &namespace, origin);
    CompiledPolicy {
        rules: vec![rule],
        notes,
    }
}

impl RuleCompiler<'_, '_> {
    fn knp_rule(&mut self, spec: &Spec, namespace: &str, origin: RuleRef) -> CompiledRule {
        let mut subject = k8s_selector(&spec.pod_selector, "");
        subject.remove_in(SOURCE_K8S, NAMESPACE_KEY);
        subject.push(namespace_is(namespace));
        let mut ingress = Vec::new();
        for (i, r) in spec.ingress.iter().enumerate() {
            let at = self.entry_ref(RuleList::Ingress, i);
            ingress.push(self.knp_entry(at, &r.from, &r.ports, namespace));
        }
        let mut egress = Vec::new();
        for (i, r) in spec.egress.iter().enumerate() {
            let at = self.entry_ref(RuleList::Egress, i);
            egress.push(self.knp_entry(at, &r.to, &r.ports, namespace));
        }
        let default_deny = default_deny(spec);
        CompiledRule {
            origin,
            subject: Subject::Endpoints(subject),
            default_deny,
            entries: [ingress, egress],
            subjects: Vec::new(),
            requires: Default::default(),
        }
    }

    fn knp_entry(&mut self, at: RuleRef, peers: &[Peer], ports: &[Port], ns: &str) -> Arc<Entry> {
        let l4 = self.knp_ports(&at, ports);
        let peers = if peers.is_empty() {
            vec![PeerMatch::Any]
        } else {
            peers
                .iter()
                .filter_map(|p| self.knp_peer(&at, p, ns))
                .collect()
        };
        Arc::new(Entry {
            rule: at,
            deny: false,
            peers,
            l4,
            l7: false,
            l7_ports: Vec::new(),
        })
    }

    fn knp_peer(&mut self, at: &RuleRef, peer: &Peer, ns: &str) -> Option<PeerMatch> {
        if let Some(block) = &peer.ip_block {
            return match Prefix::parse(&block.cidr)
                .ok()
                .filter(|_| block.cidr.contains('/'))
            {
                Some(prefix) => {
                    let except = self.excepts(at, Some(&block.except));
                    Some(PeerMatch::Cidr(CidrPeer { prefix, except }))
                }
                None => {
                    let cidr = &block.cidr;
                    self.note(
                        at,
                        format!("ipBlock cidr {cidr:?} is not a prefix: this peer matches nothing"),
                    );
                    None
                }
            };
        }
        let mut sel = match (&peer.pod_selector, &peer.namespace_selector) {
            (None, None) => {
                self.note(
                    at,
                    "a peer without podSelector, namespaceSelector or ipBlock matches nothing",
                );
                return None;
            }
            (Some(pods), None) => {
                let mut s = k8s_selector(pods, "");
                s.remove_in(SOURCE_K8S, NAMESPACE_KEY);
                s.push(namespace_is(ns));
                s
            }
            (pods, Some(namespaces)) => {
                let mut s = pods
                    .as_ref()
                    .map(|p| k8s_selector(p, ""))
                    .unwrap_or_default();
                for r in k8s_selector(namespaces, NAMESPACE_LABELS_PREFIX).requirements() {
                    s.push(r.clone());
                }
                if namespaces.is_wildcard() {
                    s.push(Requirement::new(
                        SOURCE_K8S,
                        NAMESPACE_KEY,
                        Operator::Exists,
                    ));
                }
                s
            }
        };
        if !sel.has_key(SOURCE_K8S, CLUSTER_KEY) {
            sel.push(cluster_is(self.ctx.cluster));
        }
        // Cilium translates these peers into fromEndpoints/toEndpoints selectors: a CNP's
        // fromRequires/toRequires (before 1.19) narrows them like any other.
        Some(self.endpoints(sel))
    }

    fn knp_ports(&mut self, at: &RuleRef, ports: &[Port]) -> Vec<L4> {
        if ports.is_empty() {
            return vec![L4::All];
        }
        let converted: Vec<PortProtocol> = ports
            .iter()
            .map(|p| PortProtocol {
                port: match &p.port {
                    Some(Value::Number(n)) => n.to_string(),
                    Some(Value::String(s)) => s.clone(),
                    _ => String::new(),
                },
                end_port: p.end_port,
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
            })
            .collect();
        self.l4(at, vec![&converted[..]], None).0
    }
}

/// A Kubernetes label selector as a selector on `k8s:` labels, every key prefixed with
/// `prefix` (namespace selectors match the pod's `io.cilium.k8s.namespace.labels.*`).
fn k8s_selector(sel: &LabelSelector, prefix: &str) -> Selector {
    let rename = |k: &str| format!("{SOURCE_K8S}:{prefix}{k}");
    let model = LabelSelector {
        match_labels: sel
            .match_labels
            .iter()
            .map(|(k, v)| (rename(k), v.clone()))
            .collect(),
        match_expressions: sel
            .match_expressions
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.key = rename(&e.key);
                e
            })
            .collect(),
    };
    Selector::from_model(&model)
}

/// Which directions the policy isolates, per [`super::rule::Direction::index`].
fn default_deny(spec: &Spec) -> [bool; 2] {
    let has = |t: &str| spec.policy_types.iter().any(|p| p == t);
    let (ingress_type, egress_type) = if spec.policy_types.is_empty() {
        (true, !spec.egress.is_empty())
    } else {
        (has("Ingress"), has("Egress"))
    };
    [
        !spec.ingress.is_empty() || ingress_type || !egress_type,
        !spec.egress.is_empty() || egress_type,
    ]
}

#[cfg(test)]
mod tests;
