//! L4 (§3 rules 13–20): ports, protocols and ICMP.

use super::{Checker, non_empty};
use crate::diagnostic::codes;
use serde_json::Value;

/// Most entries in one `ports` list or one `icmps[].fields` list.
const MAX_PORTS: usize = 40;

/// One `toPorts[]` entry (allow or deny): the port list.
pub(crate) fn check_port_rule(c: &mut Checker, rule: &Value) {
    let Some(ports) = rule.get("ports").and_then(Value::as_array) else {
        return;
    };
    c.at("ports", |c| {
        if ports.len() > MAX_PORTS {
            c.error_at_key(codes::PORT, "too many ports, the max is 40")
                .hint("split the list across several toPorts entries, or use endPort ranges");
        }
        for (i, pp) in ports.iter().enumerate() {
            c.at(i, |c| check_port_protocol(c, pp));
        }
    });
}

fn check_port_protocol(c: &mut Checker, pp: &Value) {
    let protocol = pp
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_uppercase();
    // The protocols Cilium accepts in `ports[].protocol` (upper-cased by the agent).
    let protocols = c.cilium.port_protocols();
    if !protocol.is_empty() && !protocols.contains(&protocol.as_str()) {
        let original = pp
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let hint = if protocol.starts_with("ICMP") {
            "ICMP is not a port protocol; use an `icmps` block instead"
        } else {
            "leave protocol out (ANY) or use one of TCP, UDP, SCTP"
        };
        let choices = protocols.join(" | ").to_ascii_lowercase();
        c.at("protocol", |c| {
            c.error(
                codes::PORT,
                format!("invalid protocol \"{original}\", must be {{ {choices} }}"),
            )
            .hint(hint);
        });
    } else if let Some(original) = pp
        .get("protocol")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty() && *p != protocol)
    {
        // The agent upper-cases, but the CRD's enum is upper-case only: the API server
        // rejects "tcp" before the agent ever sees it.
        c.at("protocol", |c| {
            c.error(
                codes::PORT,
                format!(
                    "protocol \"{original}\" is not in the CRD's enum ({}); the API server rejects it",
                    protocols.join(", ")
                ),
            )
            .hint(format!("write \"{protocol}\""));
        });
    }
    let Some(port_value) = pp.get("port") else {
        c.error(codes::PORT, "port must be specified")
            .hint("add `port: \"80\"`; use port \"0\" for every port");
        return;
    };
    let Some(port) = port_value.as_str() else {
        return;
    };
    c.at("port", |c| {
        if port.is_empty() {
            c.error(codes::PORT, "port must be specified")
                .hint("use port \"0\" for every port");
        } else if is_svc_name(port) {
            // A named port, resolved against the endpoint's declared ports.
        } else if port != "0" && matches!(protocol.as_str(), "VRRP" | "IGMP") {
            c.error(codes::PORT, "port must be empty or 0");
        } else if let Err(e) = parse_go_uint16(port) {
            c.error(codes::PORT, format!("unable to parse port: {e}"))
                .hint("ports are numbers from 0 to 65535, or a named port such as \"http\"");
        }
    });
}

/// One `icmps[]` entry.
pub(crate) fn check_icmp_rule(c: &mut Checker, rule: &Value) {
    let Some(fields) = rule.get("fields").and_then(Value::as_array) else {
        return;
    };
    c.at("fields", |c| {
        if fields.len() > MAX_PORTS {
            c.error_at_key(codes::ICMP, "too many types, the max is 40");
        }
        for (i, field) in fields.iter().enumerate() {
            c.at(i, |c| check_icmp_field(c, field));
        }
    });
}

fn check_icmp_field(c: &mut Checker, field: &Value) {
    let family = field.get("family").and_then(Value::as_str).unwrap_or("");
    let v6 = match family {
        "" | "IPv4" => false,
        "IPv6" => true,
        other => {
            c.at("family", |c| {
                c.error(codes::ICMP, format!("wrong family: {other}"))
                    .hint("family is IPv4 or IPv6 (case-sensitive)");
            });
            return;
        }
    };
    let Some(ty) = field.get("type") else { return };
    let family_name = if v6 { "IPv6" } else { "IPv4" };
    c.at("type", |c| match ty {
        Value::Number(n) if n.as_u64().is_none_or(|v| v > 255) => {
            c.error(
                codes::ICMP,
                format!("ICMP type {n} is out of range; types are 0-255"),
            );
        }
        Value::String(name) => {
            if let Ok(n) = name.parse::<u64>() {
                if n > 255 {
                    c.error(
                        codes::ICMP,
                        format!("ICMP type {n} is out of range; types are 0-255"),
                    );
                }
            } else if icmp_type(name, v6).is_none() {
                let table: Vec<&str> = icmp_table(v6).iter().map(|(n, _)| *n).collect();
                c.error(
                    codes::ICMP,
                    format!("ICMP type {name} not found in {family_name}"),
                )
                .hint(format!("{family_name} type names: {}", table.join(", ")));
            }
        }
        _ => {}
    });
}

const ICMP4: [(&str, u8); 14] = [
    ("EchoReply", 0),
    ("DestinationUnreachable", 3),
    ("Redirect", 5),
    ("Echo", 8),
    ("EchoRequest", 8),
    ("RouterAdvertisement", 9),
    ("RouterSelection", 10),
    ("TimeExceeded", 11),
    ("ParameterProblem", 12),
    ("Timestamp", 13),
    ("TimestampReply", 14),
    ("Photuris", 40),
    ("ExtendedEchoRequest", 42),
    ("ExtendedEchoReply", 43),
];

const ICMP6: [(&str, u8); 39] = [
    ("DestinationUnreachable", 1),
    ("PacketTooBig", 2),
    ("TimeExceeded", 3),
    ("ParameterProblem", 4),
    ("EchoRequest", 128),
    ("EchoReply", 129),
    ("MulticastListenerQuery", 130),
    ("MulticastListenerReport", 131),
    ("MulticastListenerDone", 132),
    ("RouterSolicitation", 133),
    ("RouterAdvertisement", 134),
    ("NeighborSolicitation", 135),
    ("NeighborAdvertisement", 136),
    ("RedirectMessage", 137),
    ("RouterRenumbering", 138),
    ("ICMPNodeInformationQuery", 139),
    ("ICMPNodeInformationResponse", 140),
    ("InverseNeighborDiscoverySolicitation", 141),
    ("InverseNeighborDiscoveryAdvertisement", 142),
    ("Version2MulticastListenerReport", 143),
    ("HomeAgentAddressDiscoveryRequest", 144),
    ("HomeAgentAddressDiscoveryReply", 145),
    ("MobilePrefixSolicitation", 146),
    ("MobilePrefixAdvertisement", 147),
    ("CertificationPathSolicitation", 148),
    ("CertificationPathAdvertisement", 149),
    ("ExperimentalMobilityProtocols", 150),
    ("MulticastRouterAdvertisement", 151),
    ("MulticastRouterSolicitation", 152),
    ("MulticastRouterTermination", 153),
    ("FMIPv6", 154),
    ("RPLControlMessage", 155),
    ("ILNPv6LocatorUpdate", 156),
    ("DuplicateAddressRequest", 157),
    ("DuplicateAddressConfirmation", 158),
    ("MPLControlMessage", 159),
    ("ExtendedEchoRequest", 160),
    ("ExtendedEchoReply", 161),
    ("EchoRequestV6", 128),
];

fn icmp_table(v6: bool) -> &'static [(&'static str, u8)] {
    if v6 { &ICMP6[..38] } else { &ICMP4 }
}

/// The number of a named ICMP type in its family's table.
pub fn icmp_type(name: &str, v6: bool) -> Option<u8> {
    icmp_table(v6)
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
}

/// Is `s` an IANA service name as Cilium checks it: 1–15 characters of letters, digits and
/// single inner hyphens, with at least one letter.
pub fn is_svc_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b.iter().any(u8::is_ascii_alphabetic)
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
}

/// Go's `strconv.ParseUint(s, 0, 16)`, with its error text.
pub fn parse_go_uint16(s: &str) -> Result<u16, String> {
    let syntax = || format!("strconv.ParseUint: parsing \"{s}\": invalid syntax");
    let digits = s.replace('_', "");
    let (radix, body) = if let Some(r) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, r.to_owned())
    } else if let Some(r) = digits
        .strip_prefix("0o")
        .or_else(|| digits.strip_prefix("0O"))
    {
        (8, r.to_owned())
    } else if let Some(r) = digits
        .strip_prefix("0b")
        .or_else(|| digits.strip_prefix("0B"))
    {
        (2, r.to_owned())
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, digits[1..].to_owned())
    } else {
        (10, digits.clone())
    };
    if body.is_empty() || !body.chars().all(|ch| ch.is_digit(radix)) {
        return Err(syntax());
    }
    match u64::from_str_radix(&body, radix) {
        Ok(v) if v <= u64::from(u16::MAX) => Ok(v as u16),
        _ => Err(format!(
            "strconv.ParseUint: parsing \"{s}\": value out of range"
        )),
    }
}

/// Whether a port list has anything in it (used by the DNS rule check).
pub(crate) fn has_ports(rule: &Value) -> bool {
    non_empty(rule, "ports").is_some()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn go_uint16() {
        assert_eq!(parse_go_uint16("80"), Ok(80));
        assert_eq!(parse_go_uint16("0"), Ok(0));
        assert_eq!(parse_go_uint16("65535"), Ok(65535));
        assert!(
            parse_go_uint16("65536")
                .unwrap_err()
                .contains("value out of range")
        );
        assert!(
            parse_go_uint16("-1")
                .unwrap_err()
                .contains("invalid syntax")
        );
        assert_eq!(parse_go_uint16("0o120"), Ok(80));
    }

    #[test]
    fn service_names() {
        assert!(is_svc_name("http"));
        assert!(is_svc_name("0x50"));
        assert!(is_svc_name("dns-tcp"));
        assert!(!is_svc_name("80"));
        assert!(!is_svc_name("a--b"));
        assert!(!is_svc_name("80abc!"));
        assert!(!is_svc_name("averyveryverylongname"));
    }

    #[test]
    fn icmp_names() {
        assert_eq!(icmp_type("EchoRequest", false), Some(8));
        assert_eq!(icmp_type("EchoRequest", true), Some(128));
        assert_eq!(icmp_type("PacketTooBig", false), None);
    }
}
