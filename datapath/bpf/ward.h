/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ward datapath: map layouts shared by ward.c and the Rust side
 * (datapath/src/bpf/maps.rs mirrors every struct here; keep them in sync).
 */
#ifndef WARD_H
#define WARD_H

#include <linux/types.h>

#define WARD_MAX_ENDPOINTS 4096
#define WARD_MAX_IPCACHE 65536
#define WARD_MAX_IPCACHE6 65536
#define WARD_MAX_POLICY 65536
#define WARD_MAX_CT 65536
#define WARD_MAX_COUNTERS 16384
#define WARD_MAX_LB 65536
#define WARD_MAX_NAT WARD_MAX_CT
/* How many of a service's slots a connection's backend is looked for in when its own slot no
 * longer holds it (the backends were renumbered); past that it gets a new backend. */
#define WARD_LB_SCAN 32
#define WARD_EVENTS_BYTES (256 * 1024)

/* Reserved identity of this node's own addresses (the ipcache maps them to it). */
#define WARD_IDENTITY_HOST 1
/* Reserved identity of addresses the ipcache does not know. */
#define WARD_IDENTITY_WORLD 2

/* The WireGuard mesh's UDP port: the host programs pass it before the host policy, so that a
 * host policy never cuts the tunnels between nodes (Cilium passes its own tunnel traffic
 * the same way). */
#define WARD_WIREGUARD_PORT 51871

#define WARD_DIR_INGRESS 0
#define WARD_DIR_EGRESS 1

/* Verdicts (events and counters). */
#define WARD_VERDICT_ALLOWED 0
#define WARD_VERDICT_DENIED 1
#define WARD_VERDICT_DEFAULT_DENY 2
/* Counters only: a frame that is neither ARP nor an IPv4/IPv6 packet the programs can read
 * (an IPv6 fragment, too many extension headers, a truncated header), dropped without an
 * event. */
#define WARD_VERDICT_UNSUPPORTED 3
/* Counters only: a pod's packet to a service port without backends (Cilium's "no service
 * backend"), dropped without an event. */
#define WARD_VERDICT_NO_BACKEND 4

/* Address families (flow, conntrack key, event). */
#define WARD_FAMILY_IPV4 4
#define WARD_FAMILY_IPV6 6

/* IPv6 extension headers skipped before the upper-layer header (hop-by-hop, routing,
 * destination options); a packet with more is dropped as unsupported. */
#define WARD_IPV6_MAX_EXT 4

/* Conntrack lifetimes since the last packet. */
#define WARD_CT_TCP_LIFETIME_NS (21600ULL * 1000000000ULL)
#define WARD_CT_ANY_LIFETIME_NS (60ULL * 1000000000ULL)

/* ct_value.flags: the directions whose policy allowed this tuple (one allowed event each). */
#define WARD_CT_F_INGRESS_SEEN (1U << 0)
#define WARD_CT_F_EGRESS_SEEN (1U << 1)
/* ct_value.flags: a TCP FIN seen in the tuple's direction, in the reply direction, a RST.
 * After a RST, or a FIN each way, the entry lives WARD_CT_CLOSE_LIFETIME_NS since the last
 * packet (Cilium's CT_CLOSE_TIMEOUT), so that the agent sees closed connections end (the
 * DNS proxy's expired addresses stay while a live connection uses them). */
#define WARD_CT_F_FIN_FWD (1U << 2)
#define WARD_CT_F_FIN_REPLY (1U << 3)
#define WARD_CT_F_RST (1U << 4)
/* ct_value.flags: the tuple is a connection to a service, translated by the pod's program
 * (Cilium's rev_nat_index): only its replies get the service's address back, not those of a
 * direct connection on the same tuple once this one has ended. */
#define WARD_CT_F_SERVICE (1U << 5)
#define WARD_CT_CLOSE_LIFETIME_NS (10ULL * 1000000000ULL)

/* policy_value.flags */
#define WARD_POLICY_F_L7 (1U << 0)
/* The allow carries `rules.dns`: the endpoint's UDP and TCP packets it allows go to the
 * agent's DNS proxy (egress only), which answers a query the rules refuse with REFUSED. */
#define WARD_POLICY_F_DNS (1U << 1)

/* skb->mark of a packet handed to the DNS proxy's socket: the node routes it to itself
 * (`ip rule fwmark WARD_MARK_TO_PROXY/WARD_MARK_MASK lookup WARD_PROXY_TABLE`, whose table
 * delivers everything locally), as Cilium does with its own mark for its proxies. */
#define WARD_MARK_TO_PROXY 0x0a00
#define WARD_MARK_MASK 0x0f00
/* skb->mark of the DNS proxy's own upstream packets (SO_MARK): each carries a pod's query
 * that the pod's policy allowed, so the host programs track them without the host policy
 * (Cilium's proxy traffic keeps the pod's identity and never meets the host firewall). */
#define WARD_MARK_FROM_PROXY 0x0b00

/* ward_config value (one entry, key 0): what the agent tells the programs. */
struct node_config {
	__u64 dns_proxy_cookie;     /* SO_COOKIE of the proxy's UDP socket; 0: no proxy */
	__u64 dns_proxy_tcp_cookie; /* SO_COOKIE of its TCP listener; 0: none */
	__u16 dns_proxy_port;       /* the port both are bound to, host order */
	__u16 pad[3];
};

/* endpoint_info.flags: the node's host endpoint, attached to its underlay interface. */
#define WARD_EP_F_HOST (1U << 0)

/* ward_endpoints value; key: __u32 ifindex of the host-side veth (for the host endpoint,
 * of the node's underlay interface; the host endpoint is also under key 0, where the pods'
 * programs find it for traffic between a pod and its own node). */
struct endpoint_info {
	__u32 ep_id;
	__u32 identity;
	__u32 flags;
};

/* ward_ipcache key (LPM): prefixlen 0..32, addr in network order. */
struct ipcache_key {
	__u32 prefixlen;
	__u32 addr;
};

/* ward_ipcache6 key (LPM): prefixlen 0..128, addr in network order. */
struct ipcache6_key {
	__u32 prefixlen;
	__u32 addr[4];
};

/* Value of both ipcaches. */
struct ipcache_value {
	__u32 identity;
};

/*
 * ward_policy key (LPM, 96 data bits):
 * 72 = ep + direction + identity (any proto/port), 80 = + proto, 80+k = + top k port bits.
 */
struct policy_key {
	__u32 prefixlen;
	__u32 ep_id;     /* big-endian */
	__u8 direction;  /* WARD_DIR_* */
	__u32 identity;  /* big-endian, 0 = any */
	__u8 proto;
	__u16 dport;     /* network order; ICMP: the type */
} __attribute__((packed));

/* ward_policy_exact key: a policy_key of prefix 96, without the prefix length. */
struct policy_exact_key {
	__u32 ep_id;     /* big-endian */
	__u8 direction;
	__u32 identity;  /* big-endian */
	__u8 proto;
	__u16 dport;     /* network order */
} __attribute__((packed));

struct policy_value {
	__u8 deny;
	__u8 flags;
	__u16 pad;
	__u32 rule_id;
};

/* ward_ct key: the tuple as seen on the wire (addresses and ports in network order), for
 * both families: an IPv4 address fills the first word, the other three are 0. */
struct ct_key {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;     /* WARD_FAMILY_* */
	__u8 pad[2];
};

struct ct_value {
	__u64 last_seen_ns;
	__u64 packets;
	__u64 bytes;
	__u32 flags;
	__u32 pad;
};

/*
 * ward_lb key: a service's address, port and protocol, and a slot: slot 0 is the service
 * itself (its value counts the backends), slots 1..count its backends (Cilium's lb4_services
 * layout). The agent writes a service's backends before its slot 0, and lowers the count
 * before it removes a backend, so a packet never picks a slot that is not there.
 */
struct lb_key {
	__u32 addr[4];   /* network order; IPv4: the first word */
	__u16 port;      /* network order */
	__u8 proto;
	__u8 family;     /* WARD_FAMILY_* */
	__u16 slot;
	__u16 pad;
};

struct lb_value {
	__u32 addr[4];   /* slot >= 1: the backend's address, network order */
	__u16 port;      /* slot >= 1: the backend's port, network order */
	__u16 count;     /* slot 0: how many backends */
};

/*
 * ward_nat_fwd and ward_nat_rev value, per translated connection: ward_nat_fwd maps the pod's
 * tuple to the service (as a ct_key) to the backend it was given, with the backend's slot
 * (the connection keeps it while that slot still holds it); ward_nat_rev maps the backend's
 * reply tuple (backend to pod) to the service's address and port, which the reply gets back
 * as its source before the pod sees it.
 */
struct nat_value {
	__u32 addr[4];   /* network order; IPv4: the first word */
	__u16 port;      /* network order */
	__u16 slot;      /* ward_nat_fwd: the backend's slot in ward_lb; ward_nat_rev: 0 */
};

/* ward_events record. */
struct verdict_event {
	__u64 ts_ns;
	__u32 ep_id;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 saddr[4];  /* network order; IPv4: the first word */
	__u32 daddr[4];  /* network order; IPv4: the first word */
	__u16 sport;     /* network order; ICMP/ICMPv6: echo id or 0 */
	__u16 dport;     /* network order; ICMP/ICMPv6: the type */
	__u8 proto;
	__u8 direction;
	__u8 verdict;
	__u8 family;     /* WARD_FAMILY_* */
	__u32 rule_id;
};

struct counter_key {
	__u32 ep_id;
	__u8 direction;
	__u8 verdict;
	__u16 pad;
};

struct counter_value {
	__u64 packets;
	__u64 bytes;
};

#endif /* WARD_H */
