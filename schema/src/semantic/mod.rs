//! Cilium's own semantic rules (reference §3), run on documents that may also be
//! schema-invalid: every check reads the JSON loosely and skips what has the wrong type, so
//! all problems in a file come out of one run.
//!
//! Messages are Cilium 1.19's own text, so users can search for them. Where Cilium stops at
//! the first error of a rule, ward reports each one.

mod goregex;
mod knp;
mod l4;
mod l7;
mod peers;
mod policytest;
mod selector;

use crate::diagnostic::{Severity, codes};
use crate::release::CiliumVersion;
use crate::resource::Kind;
use crate::yaml::Seg;
use serde_json::Value;
use std::borrow::Cow;

pub use l4::{icmp_type, is_svc_name, parse_go_uint16};
pub(crate) use selector::check_selector;
pub use selector::did_you_mean;

/// An agent flag a finding depends on: the finding stands only while the flag is off in the
/// repository's CiliumConfig (or its default is off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unless {
    /// `enable-node-selector-labels` (default off).
    NodeSelectorLabels,
    /// `enable-icmp-rules` (default on).
    IcmpRules,
    /// `enable-l7-proxy` (default on).
    L7Proxy,
}

/// One semantic finding, located by path; the loader turns it into a diagnostic.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code.
    pub code: &'static str,
    /// The message, already wrapped the way Cilium wraps it.
    pub message: String,
    /// Path to the offending field.
    pub path: Vec<Seg>,
    /// Point at the key rather than the value.
    pub at_key: bool,
    /// What to do.
    pub hint: Option<String>,
    /// The finding applies only while this flag is off.
    pub unless: Option<Unless>,
}

/// One step of the path the checker is at. Field names are static strings, so walking a
/// document allocates nothing; only map keys (labels) are owned. Converted to [`Seg`] only
/// when a finding is recorded.
pub(crate) enum PathSeg {
    /// A mapping key.
    Key(Cow<'static, str>),
    /// A sequence index.
    Index(usize),
}

impl From<&'static str> for PathSeg {
    fn from(s: &'static str) -> Self {
        PathSeg::Key(Cow::Borrowed(s))
    }
}

impl From<String> for PathSeg {
    fn from(s: String) -> Self {
        PathSeg::Key(Cow::Owned(s))
    }
}

impl From<usize> for PathSeg {
    fn from(i: usize) -> Self {
        PathSeg::Index(i)
    }
}

/// Walks one document, keeping the current path so findings can be located.
pub(crate) struct Checker {
    kind: Kind,
    /// "Invalid CiliumNetworkPolicy spec" or "... specs"; empty outside policies.
    prefix: String,
    path: Vec<PathSeg>,
    /// Whether the rule being checked selects nodes (a host policy).
    host_rule: bool,
    /// The Cilium release whose rules apply.
    cilium: CiliumVersion,
    out: Vec<Finding>,
}

impl Checker {
    fn new(kind: Kind, cilium: CiliumVersion) -> Self {
        Checker {
            kind,
            prefix: String::new(),
            path: Vec::new(),
            host_rule: false,
            cilium,
            out: Vec::new(),
        }
    }

    /// Runs `f` with `seg` pushed on the path.
    fn at<R>(&mut self, seg: impl Into<PathSeg>, f: impl FnOnce(&mut Self) -> R) -> R {
        self.path.push(seg.into());
        let r = f(self);
        self.path.pop();
        r
    }

    /// Runs `f` for each element of the array under `key` of `obj`, with the path set.
    fn each(&mut self, obj: &Value, key: &'static str, mut f: impl FnMut(&mut Self, &Value)) {
        if let Some(items) = obj.get(key).and_then(Value::as_array) {
            self.at(key, |c| {
                for (i, item) in items.iter().enumerate() {
                    c.at(i, |c| f(c, item));
                }
            });
        }
    }

    /// Records an error at the current path, wrapped with the policy prefix.
    fn error(&mut self, code: &'static str, message: impl Into<String>) -> &mut Finding {
        let message = message.into();
        let message = if self.prefix.is_empty() {
            message
        } else {
            format!("{}: {message}", self.prefix)
        };
        self.out.push(Finding {
            severity: Severity::Error,
            code,
            message,
            path: self
                .path
                .iter()
                .map(|s| match s {
                    PathSeg::Key(k) => Seg::Key(k.to_string()),
                    PathSeg::Index(i) => Seg::Index(*i),
                })
                .collect(),
            at_key: false,
            hint: None,
            unless: None,
        });
        self.out.last_mut().expect("just pushed")
    }

    /// Records an error at the key of the current path (for "this field must not be here").
    fn error_at_key(&mut self, code: &'static str, message: impl Into<String>) -> &mut Finding {
        let f = self.error(code, message);
        f.at_key = true;
        f
    }
}

impl Finding {
    /// Adds a hint.
    fn hint(&mut self, hint: impl Into<String>) -> &mut Self {
        self.hint = Some(hint.into());
        self
    }

    /// Makes the finding a warning (Cilium logs and ignores these instead of rejecting).
    fn downgrade(&mut self) -> &mut Self {
        self.severity = Severity::Warning;
        self
    }

    /// Makes the finding conditional on a flag being off.
    fn unless(&mut self, flag: Unless) -> &mut Self {
        self.unless = Some(flag);
        self
    }
}

/// Non-empty array under `key`.
fn non_empty<'v>(obj: &'v Value, key: &str) -> Option<&'v Vec<Value>> {
    obj.get(key)
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
}

/// Checks one document of a known kind with the default Cilium release's rules. `object` is
/// the whole document as JSON.
pub fn check(kind: Kind, object: &Value) -> Vec<Finding> {
    check_for(kind, object, CiliumVersion::default())
}

/// Checks one document of a known kind with `cilium`'s rules.
pub fn check_for(kind: Kind, object: &Value, cilium: CiliumVersion) -> Vec<Finding> {
    let mut c = Checker::new(kind, cilium);
    match kind {
        Kind::CiliumNetworkPolicy | Kind::CiliumClusterwideNetworkPolicy => {
            check_policy(&mut c, object)
        }
        Kind::CiliumEnvoyConfig | Kind::CiliumClusterwideEnvoyConfig => {
            check_envoy_config(&mut c, object)
        }
        Kind::CiliumConfig => check_config(&mut c, object),
        Kind::NetworkPolicy => knp::check(&mut c, object),
        Kind::CiliumCIDRGroup => knp::check_cidr_group(&mut c, object),
        Kind::PolicyTest => policytest::check(&mut c, object),
        // Checked in full by the lab's own loader (`ward lab up`, and `ward validate`).
        Kind::LabTopology => {}
    }
    c.out
}

fn check_policy(c: &mut Checker, object: &Value) {
    let spec = object.get("spec").filter(|v| !v.is_null());
    let specs = object.get("specs").filter(|v| !v.is_null());
    if spec.is_none() && specs.is_none() {
        c.error(
            codes::EMPTY_POLICY,
            format!("Invalid {} spec(s): empty policy", c.kind),
        )
        .hint("add a `spec:` (one rule) or `specs:` (a list of rules)");
        return;
    }
    if let Some(rule) = spec {
        c.prefix = format!("Invalid {} spec", c.kind);
        c.at("spec", |c| check_rule(c, rule));
    }
    if let Some(rules) = specs.and_then(Value::as_array) {
        c.prefix = format!("Invalid {} specs", c.kind);
        c.at("specs", |c| {
            for (i, rule) in rules.iter().enumerate() {
                c.at(i, |c| check_rule(c, rule));
            }
        });
    }
}

const DIRECTIONS: [&str; 4] = ["ingress", "ingressDeny", "egress", "egressDeny"];

fn check_rule(c: &mut Checker, rule: &Value) {
    if !rule.is_object() {
        return;
    }
    let has_endpoints = rule.get("endpointSelector").is_some_and(|v| !v.is_null());
    let has_nodes = rule.get("nodeSelector").is_some_and(|v| !v.is_null());
    c.host_rule = has_nodes && !has_endpoints;
    if c.kind == Kind::CiliumNetworkPolicy && has_nodes {
        // Cilium's CNP parser says this without the usual wrapping.
        let prefix = std::mem::take(&mut c.prefix);
        c.at("nodeSelector", |c| {
            c.error_at_key(codes::RULE, "Invalid CiliumNetworkPolicy spec: rule cannot have NodeSelector")
                .hint("nodeSelector (host policy) is only allowed in a CiliumClusterwideNetworkPolicy; use endpointSelector");
        });
        c.prefix = prefix;
    } else if has_nodes && has_endpoints {
        c.at("nodeSelector", |c| {
            c.error_at_key(
                codes::RULE,
                "rule cannot have both EndpointSelector and NodeSelector",
            )
            .hint("split it into two rules: one for pods, one for nodes");
        });
    }
    // A selector that is there with the wrong type (null included) is the schema's finding.
    if rule.get("endpointSelector").is_none() && rule.get("nodeSelector").is_none() {
        c.error(codes::RULE, "rule must have one of EndpointSelector or NodeSelector")
            .hint("add `endpointSelector: {}` to select every pod the policy may select, or narrow it with matchLabels");
    }
    // Likewise a direction that is not a list: only absent keys and empty lists count as none.
    if DIRECTIONS.iter().all(|d| {
        rule.get(d)
            .is_none_or(|v| v.as_array().is_some_and(Vec::is_empty))
    }) {
        c.error(
            codes::RULE,
            "rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny",
        )
        .hint("use `ingress: [{}]` or `egress: [{}]` to deny everything in that direction");
    }
    for key in ["endpointSelector", "nodeSelector"] {
        if let Some(sel) = rule.get(key).filter(|v| v.is_object()) {
            c.at(key, |c| check_selector(c, sel));
        }
    }
    if c.kind == Kind::CiliumNetworkPolicy
        && let Some(sel) = rule.get("endpointSelector")
        && selector::selects_reserved_init(sel)
    {
        c.at("endpointSelector", |c| {
            c.error(
                codes::RESERVED_INIT,
                "CiliumNetworkPolicy incorrectly matches reserved:init label",
            )
            .hint("policies for initializing endpoints must be CiliumClusterwideNetworkPolicies");
        });
    }
    for (key, ingress, deny) in [
        ("ingress", true, false),
        ("ingressDeny", true, true),
        ("egress", false, false),
        ("egressDeny", false, true),
    ] {
        c.each(rule, key, |c, item| {
            check_direction_rule(c, item, ingress, deny)
        });
    }
}

/// One entry of ingress/ingressDeny/egress/egressDeny.
fn check_direction_rule(c: &mut Checker, item: &Value, ingress: bool, deny: bool) {
    if !item.is_object() {
        return;
    }
    peers::check_peers(c, item, ingress, deny);
    let has_ports = non_empty(item, "toPorts").is_some();
    if let Some(icmps) = non_empty(item, "icmps") {
        c.at("icmps", |c| {
            if has_ports {
                c.error_at_key(codes::ICMP, "the ICMPs block may only be present without ToPorts. Define a separate rule to use ToPorts");
            }
            c.error_at_key(codes::ICMP, "ICMP rules can only be applied when the \"enable-icmp-rules\" flag is set")
                .unless(Unless::IcmpRules)
                .hint("set spec.enable-icmp-rules: true in the CiliumConfig");
            for (i, icmp) in icmps.iter().enumerate() {
                c.at(i, |c| l4::check_icmp_rule(c, icmp));
            }
        });
    }
    c.each(item, "toPorts", |c, port_rule| {
        l4::check_port_rule(c, port_rule);
        if !deny {
            l7::check_port_rule_l7(c, port_rule, ingress);
        }
    });
}

fn check_envoy_config(c: &mut Checker, object: &Value) {
    let Some(spec) = object.get("spec").filter(|v| v.is_object()) else {
        return;
    };
    c.at("spec", |c| {
        c.each(spec, "resources", |c, res| {
            let Some(obj) = res.as_object() else { return };
            match obj.get("@type").and_then(Value::as_str) {
                None => {
                    c.error(codes::SCHEMA, "resource has no \"@type\"")
                        .hint("each resource is an Envoy xDS object such as type.googleapis.com/envoy.config.listener.v3.Listener");
                }
                Some(t) if !KNOWN_XDS_TYPES.contains(&t) => {
                    c.at("@type", |c| {
                        c.error(codes::SCHEMA, format!("unsupported Envoy resource type \"{t}\""))
                            .downgrade()
                            .hint(format!("Cilium accepts {}", KNOWN_XDS_TYPES.join(", ")));
                    });
                }
                Some(_) => {}
            }
        });
        if let Some(sel) = spec.get("nodeSelector").filter(|v| v.is_object()) {
            c.at("nodeSelector", |c| check_selector(c, sel));
        }
    });
}

/// The Envoy resource types Cilium's CEC parser accepts.
const KNOWN_XDS_TYPES: [&str; 5] = [
    "type.googleapis.com/envoy.config.listener.v3.Listener",
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
];

/// Encryption types ward can set up.
const ENCRYPTION_TYPES: [&str; 1] = ["wireguard"];

fn check_config(c: &mut Checker, object: &Value) {
    let Some(spec) = object.get("spec").filter(|v| v.is_object()) else {
        return;
    };
    c.at("spec", |c| {
        let enabled = spec
            .get("enable-encryption")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let encryption = spec.get("encryption");
        if enabled && encryption.is_none() {
            c.at("enable-encryption", |c| {
                c.error_at_key(
                    codes::CONFIG,
                    "enable-encryption is true but no encryption block is given",
                )
                .hint("add `encryption: {type: wireguard, wireguard: {enabled: true}}`");
            });
        }
        let Some(enc) = encryption.filter(|v| v.is_object()) else {
            return;
        };
        c.at("encryption", |c| check_encryption(c, enc, enabled));
    });
}

fn check_encryption(c: &mut Checker, enc: &Value, enabled: bool) {
    if let Some(t) = enc.get("type").and_then(Value::as_str)
        && !ENCRYPTION_TYPES.contains(&t)
    {
        let hint = if t == "ipsec" {
            "ward's agents implement WireGuard only; use type: wireguard".to_owned()
        } else {
            "use type: wireguard".to_owned()
        };
        c.at("type", |c| {
            c.error(
                codes::CONFIG,
                format!("unknown encryption type \"{t}\"; ward supports: wireguard"),
            )
            .hint(hint);
        });
    }
    let Some(wg) = enc.get("wireguard").filter(|v| v.is_object()) else {
        return;
    };
    c.at("wireguard", |c| {
        if enabled && wg.get("enabled").and_then(Value::as_bool) == Some(false) {
            c.at("enabled", |c| {
                c.error(
                    codes::CONFIG,
                    "enable-encryption is true but wireguard.enabled is false",
                )
                .hint("set both to true to encrypt, or both to false to turn encryption off");
            });
        }
        if let Some(iface) = wg.get("interface").and_then(Value::as_str)
            && (iface.len() > 15 || iface.contains(['/', ' ']) || iface.is_empty())
        {
            c.at("interface", |c| {
                c.error(
                    codes::CONFIG,
                    format!("\"{iface}\" is not a valid interface name"),
                )
                .hint("Linux interface names are 1-15 characters without '/' or spaces");
            });
        }
        for key in ["key-rotation-interval", "persistent-keepalive"] {
            if let Some(s) = wg.get(key).and_then(Value::as_str) {
                c.at(key, |c| check_duration(c, key, s));
            }
        }
    });
}

/// Smallest rotation interval ward accepts: rotating faster than handshakes settle would
/// keep tunnels permanently in transition.
const MIN_ROTATION: std::time::Duration = std::time::Duration::from_secs(60);

fn check_duration(c: &mut Checker, key: &str, s: &str) {
    match crate::duration::parse(s) {
        Err(e) => {
            c.error(codes::CONFIG, e)
                .hint("write a Go duration such as 24h, 90m or 1h30m");
        }
        Ok(d) if key == "key-rotation-interval" && d < MIN_ROTATION => {
            c.error(
                codes::CONFIG,
                format!("key-rotation-interval {s} is shorter than the minimum of 1m"),
            )
            .hint("rotate at most once a minute; the default is 24h");
        }
        Ok(_) => {}
    }
}

#[cfg(test)]
mod tests;
