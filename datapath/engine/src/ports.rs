//! Layer 4 of a rule: protocols, ports, port ranges, named ports and ICMP types
//! (reference §2 PortProtocol and ICMPRule).
//!
//! - `protocol` absent or `ANY` expands to TCP, UDP and SCTP (never ICMP).
//! - `port: "0"` (or empty) is every port; `endPort` greater than `port` makes an inclusive
//!   range, otherwise it is ignored.
//! - A port that is an IANA service name is a *named port*, lower-cased, resolved later
//!   against the destination endpoint's declared ports.
//! - VRRP and IGMP have no ports: the entry matches the protocol.
//! - `icmps` become protocol ICMP (family IPv4, the default) or ICMPv6 with the type in the
//!   port field, as the datapath stores them (§6).

use std::fmt;
use ward_schema::model;
/// IP protocol numbers and their names, as documents write them.
pub use ward_schema::protocol::Protocol;
/// The number of a named ICMP type (Cilium's names): the validator's own table, so every
/// name `ward validate` accepts resolves here.
pub use ward_schema::semantic::icmp_type;
use ward_schema::semantic::{is_svc_name, parse_go_uint16};

/// A compiled layer-4 match of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum L4 {
    /// Every protocol and port (an entry without `toPorts` and `icmps`).
    All,
    /// One protocol, ports `lo..=hi` (the ICMP type for ICMP).
    Ports {
        /// The protocol.
        proto: Protocol,
        /// First port.
        lo: u16,
        /// Last port (inclusive).
        hi: u16,
    },
    /// A named port of one protocol, resolved against the destination endpoint.
    Named {
        /// The protocol.
        proto: Protocol,
        /// The lower-cased port name.
        name: String,
    },
}

impl L4 {
    /// Whether a numeric (proto, port) falls in this match. Named ports never match here.
    pub fn matches(&self, proto: Protocol, port: u16) -> bool {
        match self {
            L4::All => true,
            L4::Ports { proto: p, lo, hi } => *p == proto && (*lo..=*hi).contains(&port),
            L4::Named { .. } => false,
        }
    }
}

impl fmt::Display for L4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            L4::All => f.write_str("any protocol, any port"),
            L4::Ports {
                proto,
                lo: 0,
                hi: 65535,
            } => write!(f, "{proto}/any"),
            L4::Ports { proto, lo, hi } if lo == hi => write!(f, "{proto}/{lo}"),
            L4::Ports { proto, lo, hi } => write!(f, "{proto}/{lo}-{hi}"),
            L4::Named { proto, name } => write!(f, "{proto}/{name}"),
        }
    }
}

/// Compiles one `ports[]` entry; `Err` says why it cannot match anything.
pub fn port_protocol(pp: &model::PortProtocol) -> Result<Vec<L4>, String> {
    let protos: Vec<Protocol> = match pp
        .protocol
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("") | Some("ANY") => Protocol::ANY_EXPANSION.to_vec(),
        Some("TCP") => vec![Protocol::TCP],
        Some("UDP") => vec![Protocol::UDP],
        Some("SCTP") => vec![Protocol::SCTP],
        Some("VRRP") => {
            return Ok(vec![L4::Ports {
                proto: Protocol::VRRP,
                lo: 0,
                hi: 65535,
            }]);
        }
        Some("IGMP") => {
            return Ok(vec![L4::Ports {
                proto: Protocol::IGMP,
                lo: 0,
                hi: 65535,
            }]);
        }
        Some(other) => return Err(format!("invalid protocol {other:?}")),
    };
    let port = pp.port.trim();
    if let Some(n) = parse_number(port) {
        let end = pp.end_port.and_then(|e| u16::try_from(e).ok()).unwrap_or(0);
        let (lo, hi) = match (n, end) {
            (0, 0) => (0, 65535),
            (n, e) if e > n => (n, e),
            (n, _) => (n, n),
        };
        return Ok(protos
            .into_iter()
            .map(|proto| L4::Ports { proto, lo, hi })
            .collect());
    }
    if is_svc_name(port) {
        let name = port.to_ascii_lowercase();
        return Ok(protos
            .into_iter()
            .map(|proto| L4::Named {
                proto,
                name: name.clone(),
            })
            .collect());
    }
    Err(format!("unable to parse port {port:?}"))
}

/// A port number as Cilium reads it: the validator's parser (Go's `ParseUint(s, 0, 16)`, base
/// prefixes and `_` allowed), so every port `ward validate` accepts means the same here; empty
/// is 0 (every port).
fn parse_number(s: &str) -> Option<u16> {
    if s.is_empty() {
        return Some(0);
    }
    parse_go_uint16(s).ok()
}

/// Compiles one `icmps[].fields[]` entry to ICMP or ICMPv6 with the type as the port.
pub fn icmp_field(field: &model::IcmpField) -> Result<L4, String> {
    let v6 = match field.family.as_deref() {
        None | Some("") | Some("IPv4") => false,
        Some("IPv6") => true,
        Some(other) => return Err(format!("wrong family: {other}")),
    };
    let family = if v6 { "IPv6" } else { "IPv4" };
    let ty = match &field.r#type {
        model::IcmpType::Number(n) => {
            u8::try_from(*n).map_err(|_| format!("ICMP type {n} is out of range"))?
        }
        model::IcmpType::Name(name) => match name.parse::<u8>() {
            Ok(n) => n,
            Err(_) => icmp_type(name, v6)
                .ok_or_else(|| format!("ICMP type {name} not found in {family}"))?,
        },
    };
    let proto = if v6 { Protocol::ICMPV6 } else { Protocol::ICMP };
    Ok(L4::Ports {
        proto,
        lo: u16::from(ty),
        hi: u16::from(ty),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn pp(v: serde_json::Value) -> Result<Vec<L4>, String> {
        port_protocol(&serde_json::from_value(v).unwrap())
    }

    fn show(v: serde_json::Value) -> Vec<String> {
        pp(v).unwrap().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn any_expands_to_tcp_udp_sctp() {
        assert_eq!(show(json!({"port": "53"})), ["TCP/53", "UDP/53", "SCTP/53"]);
        assert_eq!(
            show(json!({"port": "53", "protocol": "any"})),
            ["TCP/53", "UDP/53", "SCTP/53"]
        );
        assert_eq!(show(json!({"port": "53", "protocol": "udp"})), ["UDP/53"]);
    }

    #[test]
    fn ranges_zero_and_named_ports() {
        assert_eq!(
            show(json!({"port": "8000", "endPort": 8080, "protocol": "TCP"})),
            ["TCP/8000-8080"]
        );
        assert_eq!(
            show(json!({"port": "8000", "endPort": 80, "protocol": "TCP"})),
            ["TCP/8000"]
        );
        assert_eq!(show(json!({"port": "0", "protocol": "TCP"})), ["TCP/any"]);
        assert_eq!(
            show(json!({"port": "0", "endPort": 65535, "protocol": "TCP"})),
            ["TCP/any"]
        );
        assert_eq!(show(json!({"port": "0x50", "protocol": "TCP"})), ["TCP/80"]);
        assert_eq!(
            show(json!({"port": "HTTP-Alt", "protocol": "TCP"})),
            ["TCP/http-alt"]
        );
        assert_eq!(show(json!({"protocol": "VRRP"})), ["VRRP/any"]);
        assert!(pp(json!({"port": "99999"})).is_err());
        assert!(pp(json!({"port": "80", "protocol": "ICMP"})).is_err());
    }

    #[test]
    fn icmp_types_by_number_and_name() {
        let f = |v| icmp_field(&serde_json::from_value(v).unwrap());
        assert_eq!(f(json!({"type": 8})).unwrap().to_string(), "ICMP/8");
        assert_eq!(
            f(json!({"type": "EchoRequest", "family": "IPv6"}))
                .unwrap()
                .to_string(),
            "ICMPv6/128"
        );
        assert!(f(json!({"type": "PacketTooBig"})).is_err());
        assert!(f(json!({"type": 300})).is_err());
        assert_eq!(Protocol::parse("sctp"), Some(Protocol::SCTP));
        assert!(L4::All.matches(Protocol::ICMP, 8));
    }
}
