//! The map layouts shared with `datapath/bpf/ward.h`: `#[repr(C)]` mirrors implementing
//! [`aya::Pod`], the map names and capacities, and the policy-key helpers. The handles that
//! read and write the maps are in [`super::node_maps`].
//!
//! Byte order: addresses, ports and the endpoint/identity fields of the policy key are in
//! network order inside the maps (the trie compares bytes from the first one); every other
//! integer is in host order. The constructors and accessors here do the conversions.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::maps::lpm_trie::Key;

use ward_engine::Direction;

/// Name of the endpoint map (host-veth ifindex → [`EndpointInfo`]).
pub const ENDPOINTS_MAP: &str = "ward_endpoints";
/// Name of the ipcache map (IPv4 prefix → identity).
pub const IPCACHE_MAP: &str = "ward_ipcache";
/// Name of the IPv6 ipcache map (IPv6 prefix → identity).
pub const IPCACHE6_MAP: &str = "ward_ipcache6";
/// Name of the policy map ([`PolicyKey`] → [`PolicyValue`]).
pub const POLICY_MAP: &str = "ward_policy";
/// Port-exact policy entries (prefix 96), looked up before the trie.
pub const POLICY_EXACT_MAP: &str = "ward_policy_exact";
/// Name of the conntrack map ([`CtKey`] → [`CtValue`]).
pub const CT_MAP: &str = "ward_ct";
/// Name of the verdict-event ring buffer.
pub const EVENTS_MAP: &str = "ward_events";
/// Name of the counter map ([`CounterKey`] → [`CounterValue`]).
pub const COUNTERS_MAP: &str = "ward_counters";
/// Name of the node's configuration map (one [`NodeConfig`], key 0).
pub const CONFIG_MAP: &str = "ward_config";
/// Name of the service map ([`LbKey`] → [`LbValue`]).
pub const LB_MAP: &str = "ward_lb";
/// Translated connections: the pod's tuple to a service → its backend ([`NatValue`]).
pub const NAT_FWD_MAP: &str = "ward_nat_fwd";
/// Translated connections: the backend's reply tuple → the service ([`NatValue`]).
pub const NAT_REV_MAP: &str = "ward_nat_rev";

/// Capacity of `ward_endpoints`.
pub const MAX_ENDPOINTS: u32 = 4096;
/// Capacity of `ward_ipcache`.
pub const MAX_IPCACHE: u32 = 65536;
/// Capacity of `ward_ipcache6`.
pub const MAX_IPCACHE6: u32 = 65536;
/// Capacity of `ward_policy`.
pub const MAX_POLICY: u32 = 65536;
/// Capacity of `ward_ct`.
pub const MAX_CT: u32 = 65536;
/// Capacity of `ward_counters`.
pub const MAX_COUNTERS: u32 = 16384;
/// Capacity of `ward_lb` (services' slots and backends).
pub const MAX_LB: u32 = 65536;
/// Capacity of `ward_nat_fwd` and `ward_nat_rev` (each).
pub const MAX_NAT: u32 = MAX_CT;
/// Size of the `ward_events` ring buffer in bytes.
pub const EVENTS_BYTES: u32 = 256 * 1024;

/// Identity of addresses without an ipcache entry (reserved `world`).
pub const IDENTITY_WORLD: u32 = 2;

/// Policy-key prefix length covering endpoint, direction and identity (any protocol/port).
pub const POLICY_PREFIX_ANY: u32 = 72;
/// Policy-key prefix length of a full key (protocol and the whole port).
pub const POLICY_PREFIX_FULL: u32 = 96;

/// `EndpointInfo::flags`: a pod's endpoint.
pub const ENDPOINT_FLAGS_NONE: u32 = 0;
/// `EndpointInfo::flags` bit 0 (`WARD_EP_F_HOST`): the node's host endpoint, on its underlay
/// interface.
pub const ENDPOINT_FLAG_HOST: u32 = 1;
/// The endpoint-map key (no interface has index 0) under which the host endpoint is also
/// kept, for the pods' programs: traffic between a pod and its own node never crosses the
/// underlay interface, so they check the host's policy themselves.
pub const HOST_ENDPOINT_KEY: u32 = 0;
/// `PolicyValue` flag bit 0: the allow carries L7 rules that are only enforced at L4 here.
pub const POLICY_FLAG_L7: u8 = 1;
/// `PolicyValue` flag bit 1 (`WARD_POLICY_F_DNS`): the allow carries `rules.dns`, so the UDP
/// packets it allows from a pod go to the agent's DNS proxy.
pub const POLICY_FLAG_DNS: u8 = 1 << 1;
/// The `skb->mark` bits of a packet handed to the DNS proxy (`WARD_MARK_TO_PROXY`), and the
/// mask they sit under (`WARD_MARK_MASK`): the node's routing delivers such packets locally.
pub const MARK_TO_PROXY: u32 = 0x0a00;
/// See [`MARK_TO_PROXY`].
pub const MARK_MASK: u32 = 0x0f00;
/// The mark of the DNS proxy's upstream sockets (`WARD_MARK_FROM_PROXY`): the host programs
/// track their packets and pass them without the host policy, as Cilium's proxy traffic
/// never meets the host firewall (it carries a pod's query the pod's policy allowed).
pub const MARK_FROM_PROXY: u32 = 0x0b00;
/// `CtValue::flags` bit: the ingress policy of the destination allowed this tuple.
pub const CT_FLAG_INGRESS_SEEN: u32 = 1 << 0;
/// `CtValue::flags` bit: the egress policy of the source allowed this tuple.
pub const CT_FLAG_EGRESS_SEEN: u32 = 1 << 1;
/// `CtValue::flags` bit: a TCP FIN in the tuple's direction.
pub const CT_FLAG_FIN_FWD: u32 = 1 << 2;
/// `CtValue::flags` bit: a TCP FIN in the reply direction.
pub const CT_FLAG_FIN_REPLY: u32 = 1 << 3;
/// `CtValue::flags` bit: a TCP RST.
pub const CT_FLAG_RST: u32 = 1 << 4;
/// `CtValue::flags` bit (`WARD_CT_F_SERVICE`): a connection to a service, translated by the
/// pod's program; only its replies get the service's address back.
pub const CT_FLAG_SERVICE: u32 = 1 << 5;
/// Lifetime of a TCP entry since its last packet (`WARD_CT_TCP_LIFETIME_NS`).
pub const CT_TCP_LIFETIME: std::time::Duration = std::time::Duration::from_secs(21_600);
/// Lifetime of any other entry (`WARD_CT_ANY_LIFETIME_NS`).
pub const CT_ANY_LIFETIME: std::time::Duration = std::time::Duration::from_secs(60);
/// Lifetime of a closed TCP entry: a RST, or a FIN each way (`WARD_CT_CLOSE_LIFETIME_NS`).
pub const CT_CLOSE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(10);

/// The direction byte used in the maps (0 ingress, 1 egress).
pub fn direction_byte(direction: Direction) -> u8 {
    match direction {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

/// The direction of a map's direction byte (anything but 1 is ingress).
pub fn direction_from_byte(byte: u8) -> Direction {
    if byte == 1 {
        Direction::Egress
    } else {
        Direction::Ingress
    }
}

/// An IPv4 address as the maps hold it: a `u32` whose memory is the address in network order.
pub(crate) fn addr_to_wire(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

/// The address of a map's `u32` (the inverse of [`addr_to_wire`]).
pub(crate) fn addr_from_wire(raw: u32) -> Ipv4Addr {
    Ipv4Addr::from(raw.to_ne_bytes())
}

/// `WARD_FAMILY_IPV4`: the family byte of conntrack keys and events.
pub const FAMILY_IPV4: u8 = 4;
/// `WARD_FAMILY_IPV6`.
pub const FAMILY_IPV6: u8 = 6;

/// An address as conntrack keys and events hold it: 16 bytes in network order (an IPv4
/// address in the first four, the rest 0) and the family byte.
pub(crate) fn addr16_to_wire(addr: IpAddr) -> ([u8; 16], u8) {
    match addr {
        IpAddr::V4(a) => {
            let mut raw = [0u8; 16];
            raw[..4].copy_from_slice(&a.octets());
            (raw, FAMILY_IPV4)
        }
        IpAddr::V6(a) => (a.octets(), FAMILY_IPV6),
    }
}

/// The address of 16 wire bytes and a family byte (the inverse of [`addr16_to_wire`]);
/// anything but [`FAMILY_IPV6`] reads the first four bytes as IPv4.
pub(crate) fn addr16_from_wire(raw: [u8; 16], family: u8) -> IpAddr {
    if family == FAMILY_IPV6 {
        IpAddr::V6(Ipv6Addr::from(raw))
    } else {
        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
    }
}

/// A host-order port as the maps hold it (network order).
pub(crate) fn port_to_wire(port: u16) -> u16 {
    port.to_be()
}

/// The host-order port of a map's network-order `u16`.
pub(crate) fn port_from_wire(raw: u16) -> u16 {
    u16::from_be(raw)
}

/// What the datapath did with a packet (events and counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Passed: a new connection allowed by policy (events), or any passed packet (counters:
    /// allowed, established and reply packets).
    Allowed,
    /// Dropped by a deny entry.
    Denied,
    /// Dropped because no entry allowed it (or the interface has no endpoint).
    DefaultDeny,
    /// Counters only: a frame that is neither ARP nor an IPv4 or IPv6 packet the programs
    /// can read (an IPv6 fragment, too many IPv6 extension headers, a truncated header),
    /// dropped without an event.
    Unsupported,
    /// Counters only: a pod's packet to a service port without backends, dropped without
    /// an event.
    NoBackend,
}

impl Verdict {
    /// The byte the datapath uses.
    pub fn as_u8(self) -> u8 {
        match self {
            Verdict::Allowed => 0,
            Verdict::Denied => 1,
            Verdict::DefaultDeny => 2,
            Verdict::Unsupported => 3,
            Verdict::NoBackend => 4,
        }
    }

    /// The verdict of a datapath byte; `None` for unknown values.
    pub fn from_u8(byte: u8) -> Option<Verdict> {
        Some(match byte {
            0 => Verdict::Allowed,
            1 => Verdict::Denied,
            2 => Verdict::DefaultDeny,
            3 => Verdict::Unsupported,
            4 => Verdict::NoBackend,
            _ => return None,
        })
    }

    /// Whether the packet was dropped.
    pub fn is_drop(self) -> bool {
        self != Verdict::Allowed
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Allowed => "allowed",
            Verdict::Denied => "denied",
            Verdict::DefaultDeny => "default-deny",
            Verdict::Unsupported => "unsupported",
            Verdict::NoBackend => "no-backend",
        })
    }
}

/// `ward_endpoints` value: which endpoint a host veth belongs to.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct EndpointInfo {
    /// Endpoint id, the one used in policy keys.
    pub ep_id: u32,
    /// The endpoint's own security identity.
    pub identity: u32,
    /// [`ENDPOINT_FLAGS_NONE`] for a pod, [`ENDPOINT_FLAG_HOST`] for the host endpoint.
    pub flags: u32,
}

#[allow(unsafe_code)]
// SAFETY: `repr(C)`, three `u32`s, no padding; every bit pattern is a valid value.
unsafe impl aya::Pod for EndpointInfo {}

/// `ward_ipcache` and `ward_ipcache6` value.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct IpcacheValue {
    /// Security identity of the prefix.
    pub identity: u32,
}

#[allow(unsafe_code)]
// SAFETY: `repr(C)`, one `u32`; every bit pattern is a valid value.
unsafe impl aya::Pod for IpcacheValue {}

/// The 12 data bytes of a policy key (after the prefix length), as the trie sees them.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PolicyKeyData {
    /// Endpoint id, big-endian.
    ep_id_be: u32,
    /// 0 ingress, 1 egress.
    direction: u8,
    /// Remote identity, big-endian; 0 = any.
    identity_be: u32,
    /// IP protocol.
    proto: u8,
    /// Destination port (ICMP: the type), network order.
    dport_be: u16,
}

#[allow(unsafe_code)]
// SAFETY: `repr(C, packed)` of integers: 12 bytes, no padding; every bit pattern is valid.
unsafe impl aya::Pod for PolicyKeyData {}

/// A `ward_policy` key: endpoint, direction, remote identity (0 = any), protocol and port,
/// with how many leading bits of (protocol, port) are significant.
///
/// `bits`: 0 = any protocol and port (prefix length 72), 8 = this protocol, any port (80),
/// 8 + k = the protocol and the top k bits of the port (80 + k). The constructor masks the
/// insignificant bits so equal prefixes have equal keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyKey {
    prefix_len: u32,
    data: PolicyKeyData,
}

impl PolicyKey {
    /// A key for `ep_id` in `direction` against the remote `identity` (0 = any), protocol
    /// `proto` (ICMP: 1) and destination `port` (ICMP: the type), of which the first `bits`
    /// bits of (protocol, port) count (0..=24; larger values are clamped to 24).
    pub fn new(
        ep_id: u32,
        direction: Direction,
        identity: u32,
        proto: u8,
        port: u16,
        bits: u8,
    ) -> PolicyKey {
        let bits = bits.min(24);
        let proto = if bits >= 8 { proto } else { 0 };
        let port_bits = bits.saturating_sub(8);
        let port = port & port_mask(port_bits);
        PolicyKey {
            prefix_len: POLICY_PREFIX_ANY + u32::from(bits),
            data: PolicyKeyData {
                ep_id_be: ep_id.to_be(),
                direction: direction_byte(direction),
                identity_be: identity.to_be(),
                proto,
                dport_be: port.to_be(),
            },
        }
    }

    /// Any protocol and port.
    pub fn any(ep_id: u32, direction: Direction, identity: u32) -> PolicyKey {
        PolicyKey::new(ep_id, direction, identity, 0, 0, 0)
    }

    /// One protocol, any port.
    pub fn proto(ep_id: u32, direction: Direction, identity: u32, proto: u8) -> PolicyKey {
        PolicyKey::new(ep_id, direction, identity, proto, 0, 8)
    }

    /// One protocol and one port (ICMP: one type).
    pub fn port(
        ep_id: u32,
        direction: Direction,
        identity: u32,
        proto: u8,
        port: u16,
    ) -> PolicyKey {
        PolicyKey::new(ep_id, direction, identity, proto, port, 24)
    }

    /// The keys covering the port range `lo..=hi` of one protocol (see
    /// [`port_range_prefixes`]); empty when `lo > hi`.
    pub fn port_range(
        ep_id: u32,
        direction: Direction,
        identity: u32,
        proto: u8,
        lo: u16,
        hi: u16,
    ) -> Vec<PolicyKey> {
        port_range_prefixes(lo, hi)
            .into_iter()
            .map(|(port, port_bits)| {
                PolicyKey::new(ep_id, direction, identity, proto, port, 8 + port_bits)
            })
            .collect()
    }

    pub(crate) fn from_trie_key(key: &Key<PolicyKeyData>) -> PolicyKey {
        PolicyKey {
            prefix_len: key.prefix_len(),
            data: key.data(),
        }
    }

    pub(crate) fn trie_key(&self) -> Key<PolicyKeyData> {
        Key::new(self.prefix_len, self.data)
    }

    /// A port-exact key (prefix 96), which lives in the exact-match map: its data there.
    pub(crate) fn exact_key(&self) -> Option<PolicyKeyData> {
        (self.prefix_len == POLICY_PREFIX_FULL).then_some(self.data)
    }

    pub(crate) fn from_exact_key(data: PolicyKeyData) -> PolicyKey {
        PolicyKey {
            prefix_len: POLICY_PREFIX_FULL,
            data,
        }
    }

    /// The trie prefix length (72..=96).
    pub fn prefix_len(&self) -> u32 {
        self.prefix_len
    }

    /// Significant bits of (protocol, port), 0..=24.
    pub fn bits(&self) -> u8 {
        u8::try_from(self.prefix_len.saturating_sub(POLICY_PREFIX_ANY).min(24)).unwrap_or(24)
    }

    /// The endpoint id.
    pub fn ep_id(&self) -> u32 {
        u32::from_be(self.data.ep_id_be)
    }

    /// The direction.
    pub fn direction(&self) -> Direction {
        direction_from_byte(self.data.direction)
    }

    /// The remote identity (0 = any).
    pub fn identity(&self) -> u32 {
        u32::from_be(self.data.identity_be)
    }

    /// The IP protocol (0 when any).
    pub fn protocol(&self) -> u8 {
        self.data.proto
    }

    /// The (masked) destination port or ICMP type, host order.
    pub fn dport(&self) -> u16 {
        u16::from_be(self.data.dport_be)
    }

    /// The inclusive port range this key covers (`0..=65535` when the port is any).
    pub fn port_span(&self) -> (u16, u16) {
        let port_bits = self.bits().saturating_sub(8);
        let lo = self.dport();
        (lo, lo | !port_mask(port_bits))
    }
}

fn port_mask(bits: u8) -> u16 {
    match bits {
        0 => 0,
        b if b >= 16 => u16::MAX,
        b => u16::MAX << (16 - b),
    }
}

/// The masked prefixes covering the port range `lo..=hi`: `(port, bits)` pairs where the top
/// `bits` bits of `port` are significant (16 = exactly this port, 0 = every port). Minimal
/// and in ascending order; empty when `lo > hi`.
pub fn port_range_prefixes(lo: u16, hi: u16) -> Vec<(u16, u8)> {
    let mut out = Vec::new();
    let (mut start, end) = (u32::from(lo), u32::from(hi));
    while start <= end {
        // The largest aligned block starting at `start` that stays inside the range.
        let mut size_bits = if start == 0 {
            16
        } else {
            start.trailing_zeros().min(16)
        };
        while start + (1u32 << size_bits) - 1 > end {
            size_bits -= 1;
        }
        // `start` < 65536 and size_bits <= 16 here.
        out.push((start as u16, (16 - size_bits) as u8));
        start += 1u32 << size_bits;
    }
    out
}

/// The `ward_config` value: what the agent tells the programs.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NodeConfig {
    /// `SO_COOKIE` of the DNS proxy's UDP socket (0: no proxy; its packets are dropped).
    pub dns_proxy_cookie: u64,
    /// `SO_COOKIE` of the DNS proxy's TCP listener (0: none; DNS over TCP is dropped).
    pub dns_proxy_tcp_cookie: u64,
    /// The port the DNS proxy's sockets are bound to (host order).
    pub dns_proxy_port: u16,
    pad: [u16; 3],
}

#[allow(unsafe_code)]
// SAFETY: `repr(C)`: u64, u64, u16, [u16; 3] — 24 bytes without padding; every bit pattern
// is valid.
unsafe impl aya::Pod for NodeConfig {}

impl NodeConfig {
    /// The configuration naming the DNS proxy's sockets: both on `port`, the UDP one with
    /// cookie `udp`, the TCP listener with cookie `tcp`.
    pub fn with_dns_proxy(port: u16, udp: u64, tcp: u64) -> NodeConfig {
        NodeConfig {
            dns_proxy_cookie: udp,
            dns_proxy_tcp_cookie: tcp,
            dns_proxy_port: port,
            pad: [0; 3],
        }
    }
}

/// A `ward_policy` value.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PolicyValue {
    deny: u8,
    flags: u8,
    pad: u16,
    rule_id: u32,
}

#[allow(unsafe_code)]
// SAFETY: `repr(C)`: u8, u8, u16, u32 — 8 bytes without padding; every bit pattern is valid.
unsafe impl aya::Pod for PolicyValue {}

impl PolicyValue {
    /// An entry: `deny` drops, else allows; `l7` marks an allow whose L7 rules are enforced
    /// only at layer 4 here; `rule_id` names the deciding rule in events.
    pub fn new(deny: bool, l7: bool, rule_id: u32) -> PolicyValue {
        PolicyValue {
            deny: u8::from(deny),
            flags: if l7 { POLICY_FLAG_L7 } else { 0 },
            pad: 0,
            rule_id,
        }
    }

    /// The same entry, with `rules.dns` on it (`dns`): its UDP packets go to the DNS proxy.
    pub fn with_dns(mut self, dns: bool) -> PolicyValue {
        if dns {
            self.flags |= POLICY_FLAG_DNS;
        } else {
            self.flags &= !POLICY_FLAG_DNS;
        }
        self
    }

    /// Whether the allow sends the UDP packets it allows to the DNS proxy.
    pub fn redirects_dns(&self) -> bool {
        self.flags & POLICY_FLAG_DNS != 0
    }

    /// An allow entry.
    pub fn allow(rule_id: u32) -> PolicyValue {
        PolicyValue::new(false, false, rule_id)
    }

    /// A deny entry.
    pub fn deny(rule_id: u32) -> PolicyValue {
        PolicyValue::new(true, false, rule_id)
    }

    /// Whether the entry drops.
    pub fn is_deny(&self) -> bool {
        self.deny != 0
    }

    /// Whether the allow carries L7 rules not enforced by this datapath.
    pub fn carries_l7(&self) -> bool {
        self.flags & POLICY_FLAG_L7 != 0
    }

    /// The rule id reported in events.
    pub fn rule_id(&self) -> u32 {
        self.rule_id
    }
}

/// A `ward_lb` key: a service's address, port and protocol, and a slot (0: the service,
/// whose value counts its backends; 1..=count: its backends).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LbKey {
    addr: [u8; 16],
    port: u16,
    proto: u8,
    family: u8,
    slot: u16,
    pad: u16,
}

#[allow(unsafe_code)]
// SAFETY: `repr(C)`: 16+2+1+1+2+2 = 24 bytes, explicit padding; every bit pattern is valid.
unsafe impl aya::Pod for LbKey {}

impl LbKey {
    /// The key of slot `slot` of service `addr`:`port` (host order) over `proto`.
    pub fn new(addr: IpAddr, port: u16, proto: u8, slot: u16) -> LbKey {
        let (addr, family) = addr16_to_wire(addr);
        LbKey {
            addr,
            port: port_to_wire(port),
            proto,
            family,
            slot,
            pad: 0,
        }
    }

    /// The service's address.
    pub fn addr(&self) -> IpAddr {
        addr16_from_wire(self.addr, self.family)
    }

    /// The service's port (host order).
    pub fn port(&self) -> u16 {
        port_from_wire(self.port)
    }

    /// IP protocol.
    pub fn proto(&self) -> u8 {
        self.proto
    }

    /// The slot: 0 for the service itself.
    pub fn slot(&self) -> u16 {
        self.slot
    }
}

/// A `ward_lb` value: a backend (slot ≥ 1), or the backend count (slot 0).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LbValue {
    addr: [u8; 16],
    port: u16,
    count: u16,
}

#[allow(unsafe_code)]
// SAFETY: `repr(C)`: 16+2+2 = 20 bytes, no padding; every bit pattern is valid.
unsafe impl aya::Pod for LbValue {}

impl LbValue {
    /// Slot 0: the service has `count` backends.
    pub fn service(count: u16) -> LbValue {
        LbValue {
            count,
            ..LbValue::default()
        }
    }

    /// A backend at `addr`:`port` (host order).
    pub fn backend(addr: IpAddr, port: u16) -> LbValue {
        LbValue {
            addr: addr16_to_wire(addr).0,
            port: port_to_wire(port),
            count: 0,
        }
    }

    /// The backend's address (of `family_of`'s family).
    pub fn addr(&self, family_of: IpAddr) -> IpAddr {
        addr16_from_wire(self.addr, family_byte(family_of))
    }

    /// The backend's port (host order).
    pub fn port(&self) -> u16 {
        port_from_wire(self.port)
    }

    /// Slot 0: how many backends.
    pub fn count(&self) -> u16 {
        self.count
    }
}

/// A `ward_nat_fwd` / `ward_nat_rev` value: an address and port (network order).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NatValue {
    addr: [u8; 16],
    port: u16,
    /// `ward_nat_fwd`: the backend's slot in `ward_lb`; `ward_nat_rev`: 0.
    slot: u16,
}

#[allow(unsafe_code)]
// SAFETY: `repr(C)`: 16+2+2 = 20 bytes, no padding; every bit pattern is valid.
unsafe impl aya::Pod for NatValue {}

impl NatValue {
    /// The backend's slot in `ward_lb` (`ward_nat_fwd`; 0 in `ward_nat_rev`).
    pub fn slot(&self) -> u16 {
        self.slot
    }

    /// The port (host order).
    pub fn port(&self) -> u16 {
        port_from_wire(self.port)
    }

    /// The address, of `family_of`'s family.
    pub fn addr(&self, family_of: IpAddr) -> IpAddr {
        addr16_from_wire(self.addr, family_byte(family_of))
    }
}

/// The family byte of `addr`'s family.
fn family_byte(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        FAMILY_IPV4
    } else {
        FAMILY_IPV6
    }
}

/// A `ward_ct` key: the tuple as it was seen on the wire (network order), of either family.
/// ICMP and ICMPv6 echo use the echo identifier as both ports; other ICMP and
/// non-TCP/UDP protocols use 0.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CtKey {
    saddr: [u8; 16],
    daddr: [u8; 16],
    sport: u16,
    dport: u16,
    proto: u8,
    family: u8,
    pad: [u8; 2],
}

#[allow(unsafe_code)]
// SAFETY: `repr(C)`: 16+16+2+2+1+1+2 = 40 bytes, explicit padding; every bit pattern is valid.
unsafe impl aya::Pod for CtKey {}

impl CtKey {
    /// A tuple (ports in host order). Both addresses should be of one family; the source's
    /// decides the key's family.
    pub fn new(saddr: IpAddr, daddr: IpAddr, sport: u16, dport: u16, proto: u8) -> CtKey {
        let (saddr, family) = addr16_to_wire(saddr);
        let (daddr, _) = addr16_to_wire(daddr);
        CtKey {
            saddr,
            daddr,
            sport: port_to_wire(sport),
            dport: port_to_wire(dport),
            proto,
            family,
            pad: [0; 2],
        }
    }

    /// Source address.
    pub fn saddr(&self) -> IpAddr {
        addr16_from_wire(self.saddr, self.family)
    }

    /// Destination address.
    pub fn daddr(&self) -> IpAddr {
        addr16_from_wire(self.daddr, self.family)
    }

    /// Source port (host order).
    pub fn sport(&self) -> u16 {
        port_from_wire(self.sport)
    }

    /// Destination port (host order).
    pub fn dport(&self) -> u16 {
        port_from_wire(self.dport)
    }

    /// IP protocol.
    pub fn proto(&self) -> u8 {
        self.proto
    }
}

/// A `ward_ct` value.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CtValue {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) of the last packet.
    pub last_seen_ns: u64,
    /// Packets seen (both directions).
    pub packets: u64,
    /// Bytes seen (both directions).
    pub bytes: u64,
    /// [`CT_FLAG_INGRESS_SEEN`], [`CT_FLAG_EGRESS_SEEN`].
    pub flags: u32,
    /// Padding.
    pub pad: u32,
}

#[allow(unsafe_code)]
// SAFETY: `repr(C)`: three u64 and two u32, 32 bytes without padding; all bit patterns valid.
unsafe impl aya::Pod for CtValue {}

impl CtValue {
    /// Whether the entry still tracks its connection at `now_ns` (CLOCK_MONOTONIC, as
    /// `bpf_ktime_get_ns`), as the programs' `ct_live` decides for protocol `proto`.
    pub fn is_live(&self, proto: u8, now_ns: u64) -> bool {
        let closing = self.flags & CT_FLAG_RST != 0
            || self.flags & (CT_FLAG_FIN_FWD | CT_FLAG_FIN_REPLY)
                == (CT_FLAG_FIN_FWD | CT_FLAG_FIN_REPLY);
        let lifetime = if closing {
            CT_CLOSE_LIFETIME
        } else if proto == 6 {
            CT_TCP_LIFETIME
        } else {
            CT_ANY_LIFETIME
        };
        now_ns < self.last_seen_ns || now_ns - self.last_seen_ns <= lifetime.as_nanos() as u64
    }
}

/// A `ward_counters` key.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CounterKey {
    /// Endpoint id (0: a packet on an interface without endpoint entry).
    pub ep_id: u32,
    /// 0 ingress, 1 egress.
    pub direction: u8,
    /// [`Verdict::as_u8`].
    pub verdict: u8,
    /// Padding.
    pub pad: u16,
}

#[allow(unsafe_code)]
// SAFETY: `repr(C)`: u32, u8, u8, u16 — 8 bytes without padding; every bit pattern is valid.
unsafe impl aya::Pod for CounterKey {}

/// A `ward_counters` value.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CounterValue {
    /// Packets.
    pub packets: u64,
    /// Bytes (`skb->len`).
    pub bytes: u64,
}

#[allow(unsafe_code)]
// SAFETY: `repr(C)`: two u64, no padding; every bit pattern is valid.
unsafe impl aya::Pod for CounterValue {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expands prefixes back to the ports they cover.
    fn covered(prefixes: &[(u16, u8)]) -> Vec<u32> {
        let mut ports = Vec::new();
        for &(port, bits) in prefixes {
            let size = 1u32 << (16 - u32::from(bits));
            let start = u32::from(port);
            assert_eq!(start % size, 0, "prefix {port}/{bits} is not aligned");
            ports.extend(start..start + size);
        }
        ports
    }

    #[test]
    fn port_range_single_port() {
        assert_eq!(port_range_prefixes(80, 80), vec![(80, 16)]);
        assert_eq!(port_range_prefixes(0, 0), vec![(0, 16)]);
        assert_eq!(port_range_prefixes(65535, 65535), vec![(65535, 16)]);
    }

    #[test]
    fn port_range_everything_is_one_prefix() {
        assert_eq!(port_range_prefixes(0, 65535), vec![(0, 0)]);
        assert_eq!(port_range_prefixes(32768, 65535), vec![(32768, 1)]);
    }

    #[test]
    fn port_range_empty_when_reversed() {
        assert!(port_range_prefixes(10, 9).is_empty());
    }

    #[test]
    fn port_range_8000_8100() {
        let p = port_range_prefixes(8000, 8100);
        assert_eq!(
            p,
            vec![(8000, 10), (8064, 11), (8096, 14), (8100, 16)],
            "minimal cover of 8000-8100"
        );
        assert_eq!(covered(&p), (8000..=8100).collect::<Vec<_>>());
    }

    #[test]
    fn port_range_covers_exactly() {
        let cases = [
            (1, 1023),
            (1024, 65535),
            (0, 1),
            (7, 9),
            (443, 8443),
            (1, 65534),
            (65534, 65535),
        ];
        for (lo, hi) in cases {
            let p = port_range_prefixes(lo, hi);
            assert_eq!(
                covered(&p),
                (u32::from(lo)..=u32::from(hi)).collect::<Vec<_>>(),
                "{lo}-{hi}"
            );
            // Minimal: at most 2 prefixes per bit level.
            assert!(p.len() <= 30, "{lo}-{hi}: {p:?}");
        }
    }

    #[test]
    fn layouts_match_the_c_structs() {
        assert_eq!(size_of::<EndpointInfo>(), 12);
        assert_eq!(size_of::<IpcacheValue>(), 4);
        assert_eq!(size_of::<Key<u32>>(), 8);
        assert_eq!(size_of::<PolicyKeyData>(), 12);
        assert_eq!(size_of::<Key<PolicyKeyData>>(), 16);
        assert_eq!(size_of::<PolicyValue>(), 8);
        assert_eq!(size_of::<Key<[u8; 16]>>(), 20, "struct ipcache6_key");
        assert_eq!(size_of::<CtKey>(), 40);
        assert_eq!(size_of::<CtValue>(), 32);
        assert_eq!(size_of::<CounterKey>(), 8);
        assert_eq!(size_of::<CounterValue>(), 16);
    }

    #[test]
    fn policy_key_bytes() {
        let key = PolicyKey::port(0x0102_0304, Direction::Egress, 0x0a0b_0c0d, 6, 8080);
        assert_eq!(key.prefix_len(), 96);
        let tk = key.trie_key();
        let bytes: [u8; 16] = {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&tk.prefix_len().to_ne_bytes());
            let d = tk.data();
            b[4..8].copy_from_slice(&{ d.ep_id_be }.to_ne_bytes());
            b[8] = d.direction;
            b[9..13].copy_from_slice(&{ d.identity_be }.to_ne_bytes());
            b[13] = d.proto;
            b[14..16].copy_from_slice(&{ d.dport_be }.to_ne_bytes());
            b
        };
        assert_eq!(
            &bytes[4..],
            &[1, 2, 3, 4, 1, 0x0a, 0x0b, 0x0c, 0x0d, 6, 0x1f, 0x90],
            "ep, direction, identity, proto, port in network order"
        );
        assert_eq!(key.ep_id(), 0x0102_0304);
        assert_eq!(key.identity(), 0x0a0b_0c0d);
        assert_eq!(key.direction(), Direction::Egress);
        assert_eq!(key.protocol(), 6);
        assert_eq!(key.dport(), 8080);
        assert_eq!(key.bits(), 24);
        assert_eq!(key.port_span(), (8080, 8080));
    }

    #[test]
    fn policy_key_masks_insignificant_bits() {
        let any = PolicyKey::new(7, Direction::Ingress, 0, 17, 53, 0);
        assert_eq!(any, PolicyKey::any(7, Direction::Ingress, 0));
        assert_eq!((any.prefix_len(), any.protocol(), any.dport()), (72, 0, 0));
        assert_eq!(any.port_span(), (0, 65535));
        let proto = PolicyKey::new(7, Direction::Ingress, 0, 17, 53, 8);
        assert_eq!(
            (proto.prefix_len(), proto.protocol(), proto.dport()),
            (80, 17, 0)
        );
        let range = PolicyKey::new(7, Direction::Ingress, 0, 6, 8100, 8 + 10);
        assert_eq!(range.prefix_len(), 90);
        assert_eq!(range.port_span(), (8064, 8127));
        assert_eq!(
            PolicyKey::new(1, Direction::Egress, 1, 6, 80, 200).bits(),
            24
        );
    }

    #[test]
    fn policy_key_port_range() {
        let keys = PolicyKey::port_range(3, Direction::Egress, 0, 6, 8000, 8100);
        let spans: Vec<_> = keys.iter().map(PolicyKey::port_span).collect();
        assert_eq!(
            spans,
            vec![(8000, 8063), (8064, 8095), (8096, 8099), (8100, 8100)]
        );
    }

    #[test]
    fn policy_value_flags() {
        let v = PolicyValue::new(false, true, 42);
        assert!(!v.is_deny() && v.carries_l7() && !v.redirects_dns());
        let v = v.with_dns(true);
        assert!(v.carries_l7() && v.redirects_dns());
        assert!(!v.with_dns(false).redirects_dns());
        assert_eq!(v.rule_id(), 42);
        assert!(PolicyValue::deny(1).is_deny());
        assert!(!PolicyValue::allow(1).is_deny());
    }

    #[test]
    fn ct_key_round_trip() {
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let k = CtKey::new(a.into(), b.into(), 40000, 80, 6);
        assert_eq!(k.saddr(), IpAddr::V4(a));
        assert_eq!(k.daddr(), IpAddr::V4(b));
        assert_eq!((k.sport(), k.dport(), k.proto()), (40000, 80, 6));
        let (a6, b6): (Ipv6Addr, Ipv6Addr) = (
            "fd00::1".parse().expect("an address"),
            "fd00::2".parse().expect("an address"),
        );
        let k6 = CtKey::new(a6.into(), b6.into(), 1, 2, 58);
        assert_eq!((k6.saddr(), k6.daddr()), (IpAddr::V6(a6), IpAddr::V6(b6)));
        assert_ne!(
            CtKey::new(
                Ipv6Addr::from_bits(0x0a00_0001 << 96).into(),
                b6.into(),
                1,
                2,
                6
            ),
            CtKey::new(a.into(), b6.into(), 1, 2, 6),
            "the family keeps 10.0.0.1 and 0a00:0001:: apart"
        );
    }

    /// The bytes of a key as `struct ct_key` lays them out (ward.h).
    #[test]
    fn ct_key_bytes() {
        let k = CtKey::new(
            "2001:db8::1".parse().expect("an address"),
            "2001:db8::2".parse().expect("an address"),
            0x1234,
            80,
            6,
        );
        // The fields in declaration order are the C layout (repr(C), no implicit padding).
        let mut b = Vec::new();
        b.extend_from_slice(&k.saddr);
        b.extend_from_slice(&k.daddr);
        b.extend_from_slice(&k.sport.to_ne_bytes());
        b.extend_from_slice(&k.dport.to_ne_bytes());
        b.extend_from_slice(&[k.proto, k.family, 0, 0]);
        assert_eq!(b.len(), size_of::<CtKey>());
        assert_eq!(&b[..4], &[0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(b[31], 2);
        assert_eq!(&b[32..36], &[0x12, 0x34, 0, 80], "ports in network order");
        assert_eq!(&b[36..38], &[6, FAMILY_IPV6]);
        let v4 = CtKey::new(
            Ipv4Addr::new(10, 0, 0, 1).into(),
            Ipv4Addr::new(10, 0, 0, 2).into(),
            1,
            2,
            17,
        );
        assert_eq!(
            &v4.saddr[..5],
            &[10, 0, 0, 1, 0],
            "IPv4 fills the first word"
        );
        assert_eq!(v4.family, FAMILY_IPV4);
    }

    #[test]
    fn verdict_bytes() {
        for v in [
            Verdict::Allowed,
            Verdict::Denied,
            Verdict::DefaultDeny,
            Verdict::Unsupported,
            Verdict::NoBackend,
        ] {
            assert_eq!(Verdict::from_u8(v.as_u8()), Some(v));
        }
        assert_eq!(Verdict::from_u8(9), None);
    }
}
