//! PolicyTest documents: endpoint declarations and expectations must make sense on their own
//! (known endpoint names, valid labels, addresses, ports and protocols), so `ward test` only
//! ever runs well-formed tests.

use super::Checker;
use super::l4::{is_svc_name, parse_go_uint16};
use super::peers::{AGENT_ONLY_ENTITIES, CRD_ENTITIES};
use super::selector::{did_you_mean, validate_key, validate_value};
use crate::diagnostic::codes;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Protocols a test flow may use.
pub const FLOW_PROTOCOLS: [&str; 5] = ["TCP", "UDP", "SCTP", "ICMP", "ICMPv6"];

pub(super) fn check(c: &mut Checker, object: &Value) {
    let Some(spec) = object.get("spec").filter(|v| v.is_object()) else {
        return;
    };
    c.at("spec", |c| {
        c.each(spec, "dns", check_dns_answer);
        let mut known = Known {
            endpoints: check_endpoints(c, spec),
            nodes: check_nodes(c, spec),
            services: check_services(c, spec),
        };
        for node in spec
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|ep| ep.get("node").and_then(Value::as_str))
        {
            known.nodes.insert(node.to_owned());
        }
        c.each(spec, "expectations", |c, e| check_expectation(c, e, &known));
    });
}

/// A `spec.dns` answer: a DNS name and addresses that parse.
fn check_dns_answer(c: &mut Checker, answer: &Value) {
    check_dns_name(c, answer, "name");
    c.each(answer, "addresses", |c, a| {
        if let Some(a) = a.as_str()
            && a.parse::<std::net::IpAddr>().is_err()
        {
            c.error(codes::POLICY_TEST, format!("\"{a}\" is not an IP address"))
                .hint("an IPv4 or IPv6 address such as 192.0.2.10");
        }
    });
}

/// `field` of `v`, when it is a string, must be a DNS name.
fn check_dns_name(c: &mut Checker, v: &Value, field: &'static str) {
    let Some(name) = v.get(field).and_then(Value::as_str) else {
        return;
    };
    let ok = name.trim_end_matches('.').split('.').all(|l| {
        !l.is_empty()
            && l.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
    });
    if !ok {
        c.at(field, |c| {
            c.error(codes::POLICY_TEST, format!("\"{name}\" is not a DNS name"))
                .hint("a name such as api.example.com (letters, digits, - and _, labels separated by dots)");
        });
    }
}

/// Declared endpoints by name, with their named ports.
type Declared = BTreeMap<String, BTreeSet<String>>;

/// What a test's expectations may name: its endpoints and its nodes (declared or named by
/// an endpoint).
struct Known {
    endpoints: Declared,
    nodes: BTreeSet<String>,
    /// Services by `namespace/name`, with their named ports.
    services: Declared,
}

/// `spec.services`: unique names, addresses that parse, valid labels and selector, ports
/// with a TCP or UDP protocol and a possible target port, a selector or listed backends.
fn check_services(c: &mut Checker, spec: &Value) -> Declared {
    let mut declared = Declared::new();
    c.each(spec, "services", |c, svc| {
        let text = |k: &str| svc.get(k).and_then(Value::as_str).unwrap_or_default();
        let full = format!("{}/{}", text("namespace"), text("name"));
        if declared.contains_key(&full) {
            c.at("name", |c| {
                c.error(
                    codes::POLICY_TEST,
                    format!("service \"{full}\" is declared twice"),
                )
                .hint("service names must be unique within a namespace");
            });
        }
        check_labels(c, svc);
        if let Some(sel) = svc.get("selector") {
            let as_labels = serde_json::json!({ "labels": sel });
            c.at("selector", |c| check_labels(c, &as_labels));
        }
        check_ip(c, svc);
        c.each(svc, "backends", |c, b| {
            if let Some(b) = b.as_str() {
                check_address(c, b);
            }
        });
        let has_selector = svc
            .get("selector")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty());
        if has_selector && svc.get("backends").and_then(Value::as_array).is_some_and(|b| !b.is_empty()) {
            c.at("backends", |c| {
                c.error(
                    codes::POLICY_TEST,
                    format!("service \"{full}\" has both a selector and backends"),
                )
                .hint("a service with a selector gets its backends from the pods it selects; drop one");
            });
        }
        let mut named = BTreeSet::new();
        c.each(svc, "ports", |c, port| {
            check_declared_port(c, port, &["TCP", "UDP"]);
            if let Some(n) = port.get("name").and_then(Value::as_str) {
                named.insert(n.to_ascii_lowercase());
            }
            match port.get("targetPort") {
                Some(Value::Number(_)) => check_port_number(c, port, "targetPort"),
                Some(Value::String(name)) if !is_svc_name(name) => {
                    c.at("targetPort", |c| {
                        c.error(
                            codes::POLICY_TEST,
                            format!("\"{name}\" is not a valid port name"),
                        )
                        .hint("a named targetPort is a container port name of the selected pods");
                    });
                }
                Some(Value::String(_)) if !has_selector => {
                    c.at("targetPort", |c| {
                        c.error(
                            codes::POLICY_TEST,
                            "a named targetPort needs a selector",
                        )
                        .hint("a named port is looked up on the selected pods; give the backends' port number");
                    });
                }
                _ => {}
            }
        });
        declared.insert(full, named);
    });
    declared
}

/// `spec.nodes`: unique names, addresses that parse, valid labels.
fn check_nodes(c: &mut Checker, spec: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    c.each(spec, "nodes", |c, node| {
        if let Some(name) = node.get("name").and_then(Value::as_str)
            && !names.insert(name.to_owned())
        {
            c.at("name", |c| {
                c.error(
                    codes::POLICY_TEST,
                    format!("node \"{name}\" is declared twice"),
                )
                .hint("node names must be unique within a test");
            });
        }
        check_labels(c, node);
        check_ip(c, node);
    });
    names
}

/// `ip` and every address of `ips` parse; `ips` holds at most one address per family (a
/// dual-stack pod or node, as Kubernetes' `podIPs`).
fn check_ip(c: &mut Checker, v: &Value) {
    if let Some(ip) = v.get("ip").and_then(Value::as_str) {
        c.at("ip", |c| check_address(c, ip));
    }
    let mut families = BTreeSet::new();
    c.each(v, "ips", |c, ip| {
        let Some(ip) = ip.as_str() else { return };
        check_address(c, ip);
        if let Ok(addr) = ip.parse::<IpAddr>()
            && !families.insert(addr.is_ipv6())
        {
            c.error(
                codes::POLICY_TEST,
                format!("\"{ip}\" is a second address of its family"),
            )
            .hint("ips holds one IPv4 and one IPv6 address at most, as Kubernetes' podIPs");
        }
    });
}

fn check_address(c: &mut Checker, ip: &str) {
    if ip.parse::<IpAddr>().is_err() {
        c.error(codes::POLICY_TEST, format!("\"{ip}\" is not an IP address"))
            .hint("write an address such as 10.0.1.10 or fd00::10");
    }
}

fn check_labels(c: &mut Checker, v: &Value) {
    let Some(labels) = v.get("labels").and_then(Value::as_object) else {
        return;
    };
    c.at("labels", |c| {
        for (k, v) in labels {
            c.at(k.clone(), |c| {
                if let Err(e) = validate_key(k) {
                    c.error_at_key(
                        codes::POLICY_TEST,
                        format!("invalid label key \"{k}\": {e}"),
                    );
                }
                if let Some(Err(e)) = v.as_str().map(validate_value) {
                    c.error(
                        codes::POLICY_TEST,
                        format!(
                            "invalid label value \"{}\": {e}",
                            v.as_str().unwrap_or_default()
                        ),
                    );
                }
            });
        }
    });
}

fn check_endpoints(c: &mut Checker, spec: &Value) -> Declared {
    let mut declared = Declared::new();
    c.each(spec, "endpoints", |c, ep| {
        let name = ep
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !name.is_empty() && declared.contains_key(&name) {
            c.at("name", |c| {
                c.error(
                    codes::POLICY_TEST,
                    format!("endpoint \"{name}\" is declared twice"),
                )
                .hint("endpoint names must be unique within a test");
            });
        }
        check_labels(c, ep);
        check_ip(c, ep);
        let mut named = BTreeSet::new();
        c.each(ep, "ports", |c, port| {
            check_declared_port(c, port, &["TCP", "UDP", "SCTP"]);
            if let Some(n) = port.get("name").and_then(Value::as_str) {
                named.insert(n.to_ascii_lowercase());
            }
        });
        declared.insert(name, named);
    });
    declared
}

/// A declared port (of an endpoint or a service): a possible number, a valid name and one
/// of `protocols`.
fn check_declared_port(c: &mut Checker, port: &Value, protocols: &[&str]) {
    check_port_number(c, port, "port");
    if let Some(name) = port.get("name").and_then(Value::as_str)
        && !is_svc_name(name)
    {
        c.at("name", |c| {
            c.error(
                codes::POLICY_TEST,
                format!("\"{name}\" is not a valid port name"),
            )
            .hint(
                "a port name has 1-15 letters, digits and inner hyphens, with at least one letter",
            );
        });
    }
    check_protocol(c, port.get("protocol"), protocols);
}

/// The number under `field` of `port`, when it is one, is 1-65535.
fn check_port_number(c: &mut Checker, port: &Value, field: &'static str) {
    let Some(n) = port.get(field).and_then(Value::as_number) else {
        return;
    };
    if n.as_i64().is_none_or(|p| !(1..=65535).contains(&p)) {
        c.at(field, |c| {
            c.error(
                codes::POLICY_TEST,
                format!("{field} {n} is impossible; ports are 1-65535"),
            );
        });
    }
}

fn check_protocol(c: &mut Checker, protocol: Option<&Value>, allowed: &[&str]) {
    let Some(p) = protocol.and_then(Value::as_str) else {
        return;
    };
    if !allowed.iter().any(|a| a.eq_ignore_ascii_case(p)) {
        c.at("protocol", |c| {
            c.error(codes::POLICY_TEST, format!("unknown protocol \"{p}\""))
                .hint(format!("use one of {}", allowed.join(", ")));
        });
    }
}

/// A peer of an expectation: a declared endpoint, an entity (`world-ipv4` and `world-ipv6`
/// too), a node's host endpoint (`node:<name>`) or an address.
fn check_peer(c: &mut Checker, field: &'static str, peer: &str, known: &Known) {
    let declared = &known.endpoints;
    if declared.contains_key(peer)
        || CRD_ENTITIES.contains(&peer)
        || AGENT_ONLY_ENTITIES.contains(&peer)
        || peer.parse::<IpAddr>().is_ok()
    {
        return;
    }
    if let Some(svc) = peer.strip_prefix("service:") {
        if field == "from" {
            c.at(field, |c| {
                c.error(codes::POLICY_TEST, "a service is only a destination")
                    .hint("send from one of its backends, or from the endpoint that calls it");
            });
        } else if !known.services.contains_key(svc) {
            let names: Vec<&str> = known.services.keys().map(String::as_str).collect();
            c.at(field, |c| {
                c.error(codes::POLICY_TEST, format!("unknown service \"{svc}\""))
                    .hint(if names.is_empty() {
                        "declare it under spec.services (name, namespace, ports, a selector or backends); write service:<namespace>/<name>".to_owned()
                    } else {
                        format!("services of this test: {}", names.join(", "))
                    });
            });
        }
        return;
    }
    if let Some(node) = peer.strip_prefix("node:") {
        if !known.nodes.contains(node) {
            let nodes: Vec<&str> = known.nodes.iter().map(String::as_str).collect();
            c.at(field, |c| {
                c.error(codes::POLICY_TEST, format!("unknown node \"{node}\""))
                    .hint(if nodes.is_empty() {
                        "declare it under spec.nodes (name, ip, labels)".to_owned()
                    } else {
                        format!(
                            "nodes of this test: {}; or declare it under spec.nodes",
                            nodes.join(", ")
                        )
                    });
            });
        }
        return;
    }
    let names: Vec<&str> = declared.keys().map(String::as_str).collect();
    let hint = match did_you_mean(peer, &names) {
        Some(s) => format!("did you mean \"{s}\"?"),
        None if names.is_empty() => {
            "declare it under spec.endpoints, or use an entity (world, host, …) or an IP address"
                .to_owned()
        }
        None => format!(
            "declared endpoints: {}; or use an entity (world, host, …) or an IP address",
            names.join(", ")
        ),
    };
    c.at(field, |c| {
        c.error(codes::POLICY_TEST, format!("unknown endpoint \"{peer}\""))
            .hint(hint);
    });
}

fn check_expectation(c: &mut Checker, e: &Value, known: &Known) {
    let declared = &known.endpoints;
    for field in ["from", "to"] {
        if let Some(peer) = e.get(field).and_then(Value::as_str) {
            check_peer(c, field, peer, known);
        }
    }
    check_l7_request(c, e);
    check_protocol(c, e.get("protocol"), &FLOW_PROTOCOLS);
    let protocol = e
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("TCP")
        .to_ascii_uppercase();
    let icmp = protocol.starts_with("ICMP");
    match e.get("port") {
        None if !icmp => {
            c.error(codes::POLICY_TEST, "an expectation needs a port")
                .hint("add `port: 80` (or a named port of the destination)");
        }
        Some(Value::Number(n)) => {
            let max = if icmp { 255 } else { 65535 };
            if n.as_i64().is_none_or(|p| !(0..=max).contains(&p)) {
                c.at("port", |c| {
                    c.error(
                        codes::POLICY_TEST,
                        format!("port {n} is impossible for {protocol}; use 0-{max}"),
                    );
                });
            }
        }
        Some(Value::String(s)) => {
            let to = e.get("to").and_then(Value::as_str);
            match to.and_then(|t| t.strip_prefix("service:")) {
                Some(svc) => check_named_port(c, s, Some(svc), &known.services),
                None => check_named_port(c, s, to, declared),
            }
        }
        _ => {}
    }
    if let Some(d) = e.get("decidedBy").and_then(Value::as_str) {
        let ok = d == "default-deny" || d == "no-policy" || d.split('/').count() >= 2;
        if !ok {
            c.at("decidedBy", |c| {
                c.error(codes::POLICY_TEST, format!("\"{d}\" does not name a policy"))
                    .hint("write Kind/namespace/name (CiliumNetworkPolicy/shop/backend-ingress), Kind/name for cluster-wide kinds, or default-deny");
            });
        }
    }
}

/// `http` needs TCP and a path that starts with `/`; `dns` needs UDP or TCP and a name.
fn check_l7_request(c: &mut Checker, e: &Value) {
    let protocol = e
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("TCP")
        .to_ascii_uppercase();
    if e.get("http").is_some() && e.get("dns").is_some() {
        c.at("dns", |c| {
            c.error(
                codes::POLICY_TEST,
                "an expectation carries one request: http or dns, not both",
            )
            .hint("split it into two expectations");
        });
    }
    if let Some(http) = e.get("http") {
        c.at("http", |c| {
            if protocol != "TCP" {
                c.error(
                    codes::POLICY_TEST,
                    format!("an HTTP request needs TCP, not {protocol}"),
                )
                .hint("drop `protocol`, or write protocol: TCP");
            }
            if let Some(path) = http.get("path").and_then(Value::as_str)
                && !path.starts_with('/')
            {
                c.at("path", |c| {
                    c.error(
                        codes::POLICY_TEST,
                        format!("\"{path}\" is not a request path"),
                    )
                    .hint("a path starts with /, as in /api/v1/items?limit=5");
                });
            }
        });
    }
    if let Some(dns) = e.get("dns") {
        c.at("dns", |c| {
            if protocol != "UDP" && protocol != "TCP" {
                c.error(
                    codes::POLICY_TEST,
                    format!("a DNS query needs UDP or TCP, not {protocol}"),
                )
                .hint("write protocol: UDP (and port: 53)");
            }
            check_dns_name(c, dns, "query");
        });
    }
}

fn check_named_port(c: &mut Checker, s: &str, to: Option<&str>, declared: &Declared) {
    if parse_go_uint16(s).is_ok() {
        return;
    }
    let lower = s.to_ascii_lowercase();
    let declared_by_dst = to
        .and_then(|t| declared.get(t))
        .is_some_and(|ports| ports.contains(&lower));
    if !declared_by_dst {
        c.at("port", |c| {
            c.error(
                codes::POLICY_TEST,
                format!("named port \"{s}\" is not declared by the destination"),
            )
            .hint("declare it in the destination's ports (name, port, protocol), or use a number");
        });
    }
}
