//! IP protocols by number, with the names Cilium's documents use (`TCP`, `UDP`, `SCTP`,
//! `ICMP`, `ICMPv6`, `VRRP`, `IGMP`).

use std::fmt;

/// An IP protocol number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Protocol(pub u8);

impl Protocol {
    /// ICMP (1).
    pub const ICMP: Protocol = Protocol(1);
    /// IGMP (2).
    pub const IGMP: Protocol = Protocol(2);
    /// TCP (6).
    pub const TCP: Protocol = Protocol(6);
    /// UDP (17).
    pub const UDP: Protocol = Protocol(17);
    /// ICMPv6 (58).
    pub const ICMPV6: Protocol = Protocol(58);
    /// VRRP (112).
    pub const VRRP: Protocol = Protocol(112);
    /// SCTP (132).
    pub const SCTP: Protocol = Protocol(132);
    /// What `ANY` (or no protocol) expands to when ports are given.
    pub const ANY_EXPANSION: [Protocol; 3] = [Protocol::TCP, Protocol::UDP, Protocol::SCTP];

    const NAMES: [(Protocol, &'static str); 7] = [
        (Protocol::ICMP, "ICMP"),
        (Protocol::IGMP, "IGMP"),
        (Protocol::TCP, "TCP"),
        (Protocol::UDP, "UDP"),
        (Protocol::ICMPV6, "ICMPv6"),
        (Protocol::VRRP, "VRRP"),
        (Protocol::SCTP, "SCTP"),
    ];

    /// Parses a protocol name (case-insensitive) or number.
    pub fn parse(s: &str) -> Option<Protocol> {
        if let Ok(n) = s.parse::<u8>() {
            return Some(Protocol(n));
        }
        Protocol::NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(s))
            .map(|(p, _)| *p)
    }

    /// Whether the protocol carries ports (TCP, UDP, SCTP).
    pub fn has_ports(self) -> bool {
        Protocol::ANY_EXPANSION.contains(&self)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Protocol::NAMES.iter().find(|(p, _)| p == self) {
            Some((_, n)) => f.write_str(n),
            None => write!(f, "proto-{}", self.0),
        }
    }
}
