//! The envelope of a document: `apiVersion`, `kind` and `metadata`, checked before anything
//! else so that a wrong apiVersion (the common `cilium.io/v1alpha1`) gets a precise hint.

use crate::diagnostic::Severity;
use crate::diagnostic::codes;
use crate::release::CiliumVersion;
use crate::resource::{Kind, ResourceKey, is_dns1123_label, is_dns1123_subdomain};
use crate::semantic::Finding;
use crate::yaml::Seg;
use serde_json::Value;

/// The namespace a namespaced object without `metadata.namespace` lands in.
pub const DEFAULT_NAMESPACE: &str = "default";

/// What the envelope says: the kind and key if they could be determined, and findings.
pub struct Envelope {
    /// Kind and key, when both are known.
    pub key: Option<ResourceKey>,
    /// Problems found.
    pub findings: Vec<Finding>,
    /// The kind of an object of another API that ward does not manage (a Deployment, a
    /// Service, a Kustomization): skipped and counted, or an error in strict mode. Kinds of
    /// Cilium's and ward's own groups, and near misses of ward's kinds, are never foreign:
    /// they are typos, reported as [`codes::UNKNOWN_KIND`].
    pub foreign: Option<String>,
}

fn finding(
    code: &'static str,
    path: &[&str],
    at_key: bool,
    message: String,
    hint: Option<String>,
) -> Finding {
    Finding {
        severity: Severity::Error,
        code,
        message,
        path: path.iter().map(|s| Seg::from(*s)).collect(),
        at_key,
        hint,
        unless: None,
    }
}

/// Reads kind, apiVersion and metadata of one document.
pub fn check(doc: &Value) -> Envelope {
    let mut findings = Vec::new();
    let Some(obj) = doc.as_object() else {
        findings.push(finding(
            codes::NOT_AN_OBJECT,
            &[],
            false,
            "a document must be a mapping with apiVersion, kind and metadata".into(),
            None,
        ));
        return Envelope {
            key: None,
            findings,
            foreign: None,
        };
    };
    let kind_str = obj.get("kind").and_then(Value::as_str);
    let api = obj.get("apiVersion").and_then(Value::as_str);
    let kind = match kind_str {
        None => {
            findings.push(finding(
                codes::MISSING_TYPE,
                &[],
                false,
                "missing field \"kind\"".into(),
                Some(known_kinds_hint()),
            ));
            None
        }
        Some(k) => match Kind::parse(k) {
            Some(Kind::NetworkPolicy) if is_other_network_policy(api) => {
                return Envelope {
                    key: None,
                    findings,
                    foreign: Some(k.to_owned()),
                };
            }
            Some(kind) => Some(kind),
            None if is_foreign(k, api) => {
                return Envelope {
                    key: None,
                    findings,
                    foreign: Some(k.to_owned()),
                };
            }
            None => {
                findings.push(unknown_kind(k));
                None
            }
        },
    };
    match (kind, api) {
        (_, None) => {
            let hint = kind.map(|k| format!("add `apiVersion: {}`", k.api_version()));
            findings.push(finding(
                codes::MISSING_TYPE,
                &[],
                false,
                "missing field \"apiVersion\"".into(),
                hint,
            ));
        }
        (Some(kind), Some(api)) if !kind.serves(api) => {
            let server = if kind == Kind::NetworkPolicy {
                "Kubernetes"
            } else {
                "Cilium"
            };
            findings.push(finding(
                codes::WRONG_API_VERSION,
                &["apiVersion"],
                false,
                format!("no matches for kind \"{kind}\" in version \"{api}\""),
                Some(format!(
                    "use {}: {server} serves {kind} only at {}",
                    kind.api_version(),
                    kind.api_version()
                )),
            ));
        }
        _ => {}
    }
    let key = kind.and_then(|kind| check_metadata(kind, obj.get("metadata"), &mut findings));
    Envelope {
        key,
        findings,
        foreign: None,
    }
}

/// Whether `kind` at `api` belongs to an API ward does not manage: it has an apiVersion
/// outside Cilium's and ward's groups, and is not a near miss of one of ward's kinds.
fn is_foreign(kind: &str, api: Option<&str>) -> bool {
    let Some(api) = api else {
        return false;
    };
    let group = api.split_once('/').map_or("", |(g, _)| g);
    let ours = group == "cilium.io" || group == "ward.dev";
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    !ours && crate::semantic::did_you_mean(kind, &names).is_none()
}

/// Whether a `NetworkPolicy` at `api` is another project's kind of that name (Calico's
/// `crd.projectcalico.org`, the admin network policy group): Kubernetes' own is served by
/// `networking.k8s.io` (`extensions/v1beta1` before 1.16, reported as a wrong apiVersion).
fn is_other_network_policy(api: Option<&str>) -> bool {
    let group = api.and_then(|a| a.split_once('/')).map_or("", |(g, _)| g);
    !matches!(group, "" | "networking.k8s.io" | "extensions")
}

/// Release-dependent envelope rules: Cilium 1.17 serves CiliumCIDRGroup at
/// `cilium.io/v2alpha1` only (`cilium.io/v2` came with 1.18).
pub fn check_release(kind: Kind, object: &Value, cilium: CiliumVersion) -> Option<Finding> {
    let api = object.get("apiVersion").and_then(Value::as_str)?;
    (kind == Kind::CiliumCIDRGroup && api == crate::resource::CILIUM_V2 && cilium < CiliumVersion::V1_18)
        .then(|| {
            finding(
                codes::WRONG_API_VERSION,
                &["apiVersion"],
                false,
                format!("Cilium {cilium} does not serve CiliumCIDRGroup at {api}"),
                Some(format!(
                    "use {} (cilium.io/v2 came with Cilium 1.18), or pass --cilium-version 1.18 if the cluster runs it",
                    crate::resource::CILIUM_V2ALPHA1
                )),
            )
        })
}

/// The finding for a foreign kind when `--strict-kinds` asks for one.
pub fn strict_kind(kind: &str) -> Finding {
    finding(
        codes::UNKNOWN_KIND,
        &["kind"],
        false,
        format!("kind \"{kind}\" is not one ward manages (--strict-kinds)"),
        Some(format!(
            "{}; move other objects out of the policy folders, list them in .wardignore, or drop --strict-kinds to skip them",
            known_kinds_hint()
        )),
    )
}

fn known_kinds_hint() -> String {
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    format!("ward manages {}", names.join(", "))
}

fn unknown_kind(k: &str) -> Finding {
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    let hint = match crate::semantic::did_you_mean(k, &names) {
        Some(s) => format!("did you mean \"{s}\"?"),
        None => format!(
            "{}; move other objects out of the policy folders or list them in .wardignore",
            known_kinds_hint()
        ),
    };
    finding(
        codes::UNKNOWN_KIND,
        &["kind"],
        false,
        format!("unknown kind \"{k}\""),
        Some(hint),
    )
}

fn check_metadata(
    kind: Kind,
    meta: Option<&Value>,
    findings: &mut Vec<Finding>,
) -> Option<ResourceKey> {
    let Some(meta) = meta.and_then(Value::as_object) else {
        // metadata of the wrong type (null included) is the JSON Schema's finding.
        if meta.is_none() {
            findings.push(finding(
                codes::BAD_NAME,
                &[],
                false,
                format!("{kind} must have name"),
                Some("add `metadata: {name: ...}`".into()),
            ));
        }
        return None;
    };
    let raw_name = meta.get("name");
    let name = match raw_name.and_then(Value::as_str) {
        // A name of the wrong type (null included) is the JSON Schema's finding.
        None if raw_name.is_some() => None,
        None | Some("") => {
            findings.push(finding(
                codes::BAD_NAME,
                &["metadata"],
                true,
                format!("{kind} must have name"),
                Some("add `name:` under metadata".into()),
            ));
            None
        }
        Some(n) if !is_dns1123_subdomain(n) => {
            findings.push(finding(
                codes::BAD_NAME,
                &["metadata", "name"],
                false,
                format!("metadata.name: Invalid value: \"{n}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
                Some(format!("try \"{}\"", suggest_name(n))),
            ));
            None
        }
        Some(n) => Some(n),
    };
    let namespace = meta.get("namespace").and_then(Value::as_str);
    match namespace {
        Some(ns) if !kind.namespaced() => {
            findings.push(finding(
                codes::BAD_NAMESPACE,
                &["metadata", "namespace"],
                true,
                format!("{kind} is cluster-scoped and cannot have a namespace (\"{ns}\")"),
                Some("remove metadata.namespace, or use the namespaced kind".into()),
            ));
        }
        Some(ns) if !is_dns1123_label(ns) => {
            findings.push(finding(
                codes::BAD_NAMESPACE,
                &["metadata", "namespace"],
                false,
                format!("metadata.namespace: Invalid value: \"{ns}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"),
                None,
            ));
        }
        None if kind.namespaced() => {
            let mut f = finding(
                codes::NO_NAMESPACE,
                &["metadata"],
                true,
                format!(
                    "no metadata.namespace; ward puts this {kind} in namespace \"{DEFAULT_NAMESPACE}\""
                ),
                Some(
                    "set metadata.namespace so the policy cannot land in the wrong namespace"
                        .into(),
                ),
            );
            f.severity = Severity::Warning;
            findings.push(f);
        }
        _ => {}
    }
    let ns = if kind.namespaced() {
        Some(namespace.unwrap_or(DEFAULT_NAMESPACE))
    } else {
        None
    };
    name.map(|n| ResourceKey::new(kind, ns, n))
}

fn suggest_name(n: &str) -> String {
    let s: String = n
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches(|c| c == '-' || c == '.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v1alpha1_gets_a_hint_naming_v2() {
        let e = check(
            &json!({"apiVersion": "cilium.io/v1alpha1", "kind": "CiliumNetworkPolicy", "metadata": {"name": "a", "namespace": "b"}}),
        );
        assert_eq!(e.findings.len(), 1);
        assert_eq!(e.findings[0].code, codes::WRONG_API_VERSION);
        assert!(
            e.findings[0]
                .hint
                .as_deref()
                .unwrap_or("")
                .starts_with("use cilium.io/v2")
        );
        assert!(e.key.is_some());
    }

    #[test]
    fn unknown_kind_suggests_the_closest() {
        let e = check(
            &json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicies", "metadata": {"name": "a"}}),
        );
        assert_eq!(e.findings[0].code, codes::UNKNOWN_KIND);
        assert_eq!(
            e.findings[0].hint.as_deref(),
            Some("did you mean \"CiliumNetworkPolicy\"?")
        );
    }

    #[test]
    fn other_apis_are_foreign_and_typos_of_ours_are_not() {
        for (api, kind) in [
            ("apps/v1", "Deployment"),
            ("v1", "Service"),
            ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
            ("crd.projectcalico.org/v1", "NetworkPolicy"),
        ] {
            let e = check(&json!({"apiVersion": api, "kind": kind, "metadata": {"name": "a"}}));
            assert_eq!(e.foreign.as_deref(), Some(kind), "{api} {kind}");
            assert!(e.findings.is_empty());
        }
        for (api, kind) in [
            ("cilium.io/v2", "CiliumNetworkPolicies"),
            ("cilium.io/v2alpha1", "CiliumCIDRGroups"),
            ("ward.dev/v1alpha1", "WardThing"),
            ("apps/v1", "CiliumNetworkPolicys"),
        ] {
            let e = check(&json!({"apiVersion": api, "kind": kind, "metadata": {"name": "a"}}));
            assert_eq!(e.foreign, None, "{api} {kind}");
            assert_eq!(e.findings[0].code, codes::UNKNOWN_KIND, "{api} {kind}");
        }
    }

    /// Kubernetes NetworkPolicy and CiliumCIDRGroup (at both versions Cilium 1.19 serves) are
    /// managed kinds now, not skipped ones.
    #[test]
    fn network_policies_and_cidr_groups_are_managed() {
        for (api, kind, ns) in [
            ("networking.k8s.io/v1", "NetworkPolicy", Some("shop")),
            ("cilium.io/v2", "CiliumCIDRGroup", None),
            ("cilium.io/v2alpha1", "CiliumCIDRGroup", None),
        ] {
            let e = check(
                &json!({"apiVersion": api, "kind": kind, "metadata": {"name": "a", "namespace": ns}}),
            );
            assert_eq!(e.foreign, None, "{api} {kind}");
            assert!(e.findings.is_empty(), "{api} {kind}: {:?}", e.findings);
            assert_eq!(e.key.map(|k| k.kind.as_str()), Some(kind));
        }
        let e = check(
            &json!({"apiVersion": "extensions/v1beta1", "kind": "NetworkPolicy", "metadata": {"name": "a", "namespace": "x"}}),
        );
        assert_eq!(e.findings[0].code, codes::WRONG_API_VERSION);
        assert_eq!(
            e.findings[0].hint.as_deref(),
            Some(
                "use networking.k8s.io/v1: Kubernetes serves NetworkPolicy only at networking.k8s.io/v1"
            )
        );
    }

    #[test]
    fn cluster_scoped_kinds_refuse_a_namespace() {
        let e = check(
            &json!({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": "a", "namespace": "x"}}),
        );
        assert_eq!(e.findings[0].code, codes::BAD_NAMESPACE);
    }

    #[test]
    fn missing_namespace_defaults_with_a_warning() {
        let e = check(
            &json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "a"}}),
        );
        assert_eq!(e.findings[0].severity, Severity::Warning);
        assert_eq!(e.findings[0].code, codes::NO_NAMESPACE, "its own code");
        assert_eq!(e.key.and_then(|k| k.namespace).as_deref(), Some("default"));
    }

    #[test]
    fn bad_names() {
        let e = check(
            &json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "Allow_All", "namespace": "x"}}),
        );
        assert_eq!(e.findings[0].code, codes::BAD_NAME);
        assert_eq!(e.findings[0].hint.as_deref(), Some("try \"allow-all\""));
        assert!(e.key.is_none());
    }
}
