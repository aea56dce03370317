//! Kubernetes NetworkPolicy (networking.k8s.io/v1) as the API server validates it
//! (kubernetes/kubernetes pkg/apis/networking/validation/validation.go: `ValidateNetworkPolicy`,
//! `ValidateNetworkPolicyPort`, `ValidateNetworkPolicyPeer`, `ValidateIPBlock`), and
//! CiliumCIDRGroup's CIDR list as Cilium reads it.
//!
//! Messages are the API server's field errors (`<field>: <type>: <value>: <detail>`), so a user
//! sees what `kubectl apply` would print. The StrictIPCIDRValidation gate (alpha, off by
//! default) is not applied: `10.0.0.1/24` passes, as it does on a default cluster.

use super::Checker;
use super::peers::Prefix;
use super::selector::check_selector;
use crate::diagnostic::codes;
use serde_json::Value;

/// The protocols a NetworkPolicyPort may name (case-sensitive).
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

/// Checks a NetworkPolicy's spec.
pub(crate) fn check(c: &mut Checker, object: &Value) {
    let Some(spec) = object.get("spec").filter(|v| v.is_object()) else {
        return;
    };
    c.at("spec", |c| {
        if let Some(sel) = spec.get("podSelector").filter(|v| v.is_object()) {
            c.at("podSelector", |c| check_selector(c, sel));
        }
        for (key, peers) in [("ingress", "from"), ("egress", "to")] {
            c.each(spec, key, |c, rule| {
                c.each(rule, "ports", check_port);
                c.each(rule, peers, check_peer);
            });
        }
        check_policy_types(c, spec);
    });
}

/// The field path the checker is at, as the API server writes it (`spec.ingress[0].ports[1]`).
fn field(c: &Checker) -> String {
    let mut out = String::new();
    for seg in &c.path {
        match seg {
            super::PathSeg::Key(k) if out.is_empty() => out.push_str(k),
            super::PathSeg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            super::PathSeg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Records `<field>: <detail>` with `code`.
fn field_error<'a>(
    c: &'a mut Checker,
    code: &'static str,
    detail: String,
) -> &'a mut super::Finding {
    let at = field(c);
    c.error(code, format!("{at}: {detail}"))
}

fn check_port(c: &mut Checker, port: &Value) {
    if let Some(p) = port.get("protocol").and_then(Value::as_str)
        && !PROTOCOLS.contains(&p)
    {
        c.at("protocol", |c| {
            let hint = match PROTOCOLS.iter().find(|k| k.eq_ignore_ascii_case(p)) {
                Some(k) => format!("protocols are upper case: {k}"),
                None => "use TCP, UDP or SCTP (leave it out for TCP)".to_owned(),
            };
            field_error(
                c,
                codes::PORT,
                format!("Unsupported value: \"{p}\": supported values: \"SCTP\", \"TCP\", \"UDP\""),
            )
            .hint(hint);
        });
    }
    let end = port.get("endPort").and_then(Value::as_i64);
    match port.get("port") {
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(-1);
            if !(1..=65535).contains(&n) {
                c.at("port", |c| {
                    field_error(
                        c,
                        codes::PORT,
                        format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
                    );
                });
            }
            if let Some(e) = end {
                check_end_port(c, n, e);
            }
        }
        Some(Value::String(name)) => {
            c.at("port", |c| check_port_name(c, name));
            if let Some(e) = end {
                end_port_error(
                    c,
                    e,
                    "is non-numeric",
                    "a range needs a numeric port; give the first port as a number",
                );
            }
        }
        None | Some(Value::Null) => {
            if let Some(e) = end {
                end_port_error(
                    c,
                    e,
                    "is not specified",
                    "add `port:` with the first port of the range",
                );
            }
        }
        // Another type is the schema's finding.
        Some(_) => {}
    }
}

/// An endPort without a numeric port: "may not be specified when `port` <why>".
fn end_port_error(c: &mut Checker, end: i64, why: &str, hint: &str) {
    c.at("endPort", |c| {
        field_error(
            c,
            codes::PORT,
            format!("Invalid value: {end}: may not be specified when `port` {why}"),
        )
        .hint(hint);
    });
}

fn check_end_port(c: &mut Checker, port: i64, end: i64) {
    c.at("endPort", |c| {
        if end < port {
            field_error(
                c,
                codes::PORT,
                format!("Invalid value: {end}: must be greater than or equal to `port`"),
            )
            .hint(format!(
                "the range is port..endPort, inclusive: use an endPort of {port} or more"
            ));
        } else if !(1..=65535).contains(&end) {
            field_error(
                c,
                codes::PORT,
                format!("Invalid value: {end}: must be between 1 and 65535, inclusive"),
            );
        }
    });
}

/// `IsValidPortName`: an IANA service name.
fn check_port_name(c: &mut Checker, name: &str) {
    let mut problems = Vec::new();
    if name.len() > 15 {
        problems.push("must be no more than 15 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        problems.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if name.contains("--") {
        problems.push("must not contain consecutive hyphens");
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        problems.push("must contain at least one letter (a-z)");
    }
    if name.starts_with('-') || name.ends_with('-') {
        problems.push("must not begin or end with a hyphen");
    }
    for p in problems {
        let f = field_error(c, codes::PORT, format!("Invalid value: \"{name}\": {p}"));
        if name.parse::<u16>().is_ok() {
            f.hint(format!(
                "a port number is written without quotes: port: {name}"
            ));
        }
    }
}

fn check_peer(c: &mut Checker, peer: &Value) {
    let Some(obj) = peer.as_object() else { return };
    let given = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
    let selectors = given("podSelector") || given("namespaceSelector");
    if !selectors && !given("ipBlock") {
        field_error(c, codes::KNP_PEER, "Required value: must specify a peer".into())
            .hint("give podSelector, namespaceSelector or ipBlock; to allow every peer leave out the whole from/to list");
    } else if selectors && given("ipBlock") {
        field_error(
            c,
            codes::KNP_PEER,
            "Forbidden: may not specify both ipBlock and another peer".into(),
        )
        .hint("make the ipBlock a list item of its own (items of from/to are ORed)");
    }
    for key in ["podSelector", "namespaceSelector"] {
        if let Some(sel) = peer.get(key).filter(|v| v.is_object()) {
            c.at(key, |c| check_selector(c, sel));
        }
    }
    if let Some(block) = peer.get("ipBlock").filter(|v| v.is_object()) {
        c.at("ipBlock", |c| check_ip_block(c, block));
    }
}

/// Go's `net.ParseCIDR`: `addr/len`, no leading zeros in the length.
fn parse_cidr(s: &str) -> Option<Prefix> {
    Prefix::parse(s).ok()
}

const CIDR_EXAMPLE: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

fn check_ip_block(c: &mut Checker, block: &Value) {
    let cidr = match block.get("cidr") {
        Some(Value::String(s)) if s.is_empty() => {
            c.at("cidr", |c| {
                field_error(c, codes::CIDR, "Required value".into())
                    .hint("give the prefix, e.g. cidr: 10.0.0.0/8");
            });
            None
        }
        Some(Value::String(s)) => match parse_cidr(s) {
            Some(p) => Some(p),
            None => {
                c.at("cidr", |c| {
                    field_error(
                        c,
                        codes::CIDR,
                        format!("Invalid value: \"{s}\": {CIDR_EXAMPLE}"),
                    )
                    .hint("an ipBlock needs a prefix length: write 192.0.2.10/32 for one address");
                });
                None
            }
        },
        // Absent or of another type: the schema's finding.
        _ => None,
    };
    c.each(block, "except", |c, v| {
        let Some(ex) = v.as_str() else { return };
        match parse_cidr(ex) {
            None => {
                field_error(
                    c,
                    codes::CIDR,
                    format!("Invalid value: \"{ex}\": {CIDR_EXAMPLE}"),
                );
            }
            Some(e) => {
                if let Some(p) = cidr
                    && !(p.contains(&e) && e.prefix_len() > p.prefix_len())
                {
                    field_error(
                        c,
                        codes::CIDR,
                        format!("Invalid value: \"{ex}\": must be a strict subset of `cidr`"),
                    )
                    .hint("each except must lie inside cidr and be longer (narrower) than it");
                }
            }
        }
    });
}

fn check_policy_types(c: &mut Checker, spec: &Value) {
    let Some(types) = spec.get("policyTypes").and_then(Value::as_array) else {
        return;
    };
    if types.len() > 2 {
        c.at("policyTypes", |c| {
            let list: Vec<String> = types.iter().map(Value::to_string).collect();
            field_error(
                c,
                codes::KNP_POLICY_TYPES,
                format!(
                    "Invalid value: [{}]: may not specify more than two policyTypes",
                    list.join(",")
                ),
            )
            .hint("list Ingress, Egress or both, once each");
        });
        return;
    }
    c.each(spec, "policyTypes", |c, t| {
        if let Some(s) = t.as_str()
            && s != "Ingress"
            && s != "Egress"
        {
            field_error(
                c,
                codes::KNP_POLICY_TYPES,
                format!("Unsupported value: \"{s}\": supported values: \"Egress\", \"Ingress\""),
            );
        }
    });
    rules_outside_policy_types(c, spec, types);
}

/// Rules of a direction policyTypes leaves out: Kubernetes ignores them, Cilium enforces them
/// (cilium/cilium#48703), so the policy means different things on different CNIs; a warning.
fn rules_outside_policy_types(c: &mut Checker, spec: &Value, types: &[Value]) {
    for (key, kind) in [("ingress", "Ingress"), ("egress", "Egress")] {
        let has_rules = spec
            .get(key)
            .and_then(Value::as_array)
            .is_some_and(|r| !r.is_empty());
        if has_rules && !types.iter().any(|t| t.as_str() == Some(kind)) {
            c.at(key, |c| {
                c.error_at_key(
                    codes::KNP_POLICY_TYPES,
                    format!("spec.{key} has rules but spec.policyTypes does not list {kind}: Kubernetes ignores them, Cilium enforces them and isolates {key} (cilium/cilium#48703)"),
                )
                .downgrade()
                .hint(format!("add {kind} to policyTypes, or remove the {key} rules"));
            });
        }
    }
}

/// Checks a CiliumCIDRGroup: Cilium skips an entry of `externalCIDRs` that does not parse
/// ("CIDRGroup has invalid CIDR"), so it is a warning, not a rejection.
pub(crate) fn check_cidr_group(c: &mut Checker, object: &Value) {
    let Some(spec) = object.get("spec").filter(|v| v.is_object()) else {
        return;
    };
    c.at("spec", |c| {
        c.each(spec, "externalCIDRs", |c, v| {
            let Some(s) = v.as_str() else { return };
            if parse_cidr(s).is_none() {
                c.error(
                    codes::CIDR,
                    format!("CIDRGroup has invalid CIDR \"{s}\"; Cilium skips it"),
                )
                .downgrade()
                .hint("write a prefix such as 192.0.2.0/24 (192.0.2.10/32 for one address)");
            }
        });
    });
}
