// SPDX-License-Identifier: GPL-2.0
/*
 * ward: network-policy enforcement for one node, IPv4 and IPv6.
 *
 * Two TC programs on the host side of every pod's veth (in the node's network namespace):
 *   from_pod  TC ingress of the host veth = the pod's EGRESS
 *   to_pod    TC egress of the host veth  = the pod's INGRESS
 *
 * Per IPv4 or IPv6 packet: replies of tracked connections pass (ward_ct, reversed tuple);
 * everything else is checked against ward_policy (identity-specific entry, then identity 0);
 * deny wins, then allow, else default deny. Unknown interfaces (no ward_endpoints entry)
 * fail closed. The remote identity comes from ward_ipcache (IPv4) or ward_ipcache6 (IPv6);
 * the policy itself is keyed by identity, so it is the same for both families.
 * ARP and ICMPv6 neighbour discovery (types 133-137) pass without policy, as in Cilium.
 * A pod's packets that an egress allow with DNS rules lets through go to the agent's DNS
 * proxy (to_dns_proxy), which answers or refuses each query.
 * Every other frame is dropped as unsupported: other ethertypes, IPv6 fragments, more than
 * WARD_IPV6_MAX_EXT extension headers, truncated headers (fail closed).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "ward.h"

#ifndef offsetof
#define offsetof(type, member) __builtin_offsetof(type, member)
#endif

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WARD_MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct endpoint_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ward_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WARD_MAX_IPCACHE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ward_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WARD_MAX_IPCACHE6);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipcache6_key);
	__type(value, struct ipcache_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ward_ipcache6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WARD_MAX_POLICY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ward_policy SEC(".maps");

/*
 * Port-exact entries (prefix 96) live here instead of in the trie: a hash lookup costs the
 * same whatever the number of rules, and an exact entry is the longest prefix anyway, so
 * "exact hit, else trie" is the trie's own answer. The key is policy_key without prefixlen.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WARD_MAX_POLICY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct policy_exact_key);
	__type(value, struct policy_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ward_policy_exact SEC(".maps");

/* The longest-prefix entry for a full (prefixlen 96) key: exact first, then the trie. */
static __always_inline struct policy_value *policy_lookup(struct policy_key *pk)
{
	struct policy_exact_key ek = {
		.ep_id = pk->ep_id,
		.direction = pk->direction,
		.identity = pk->identity,
		.proto = pk->proto,
		.dport = pk->dport,
	};
	struct policy_value *v = bpf_map_lookup_elem(&ward_policy_exact, &ek);

	if (v)
		return v;
	return bpf_map_lookup_elem(&ward_policy, pk);
}

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WARD_MAX_CT);
	__type(key, struct ct_key);
	__type(value, struct ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ward_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WARD_MAX_LB);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lb_key);
	__type(value, struct lb_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ward_lb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WARD_MAX_NAT);
	__type(key, struct ct_key);
	__type(value, struct nat_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ward_nat_fwd SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WARD_MAX_NAT);
	__type(key, struct ct_key);
	__type(value, struct nat_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ward_nat_rev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct node_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ward_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, WARD_EVENTS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ward_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WARD_MAX_COUNTERS);
	__type(key, struct counter_key);
	__type(value, struct counter_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ward_counters SEC(".maps");

/* Minimal header views (avoid pulling tcp.h/udp.h/icmp.h just for the ports). */
struct l4_ports {
	__u16 sport;
	__u16 dport;
};

struct icmp_head {
	__u8 type;
	__u8 code;
	__u16 csum;
	__u16 id;
	__u16 seq;
};

/* An IPv6 extension header's first two bytes. */
struct ipv6_ext_head {
	__u8 nexthdr;
	__u8 hdrlen; /* in 8-byte units, not counting the first 8 bytes */
};

#define ICMP_ECHOREPLY_T 0
#define ICMP_ECHO_T 8
#define ICMPV6_ECHO_REQUEST_T 128
#define ICMPV6_ECHO_REPLY_T 129
/* Neighbour discovery: router solicitation .. redirect (133-137). */
#define ICMPV6_NDP_FIRST_T 133
#define ICMPV6_NDP_LAST_T 137

/* What one packet looks like to the policy. */
struct flow {
	__u32 saddr[4];   /* network order; IPv4: the first word, the rest 0 */
	__u32 daddr[4];
	__u16 ct_sport;   /* conntrack ports (ICMP echo: the id on both sides) */
	__u16 ct_dport;
	__u16 ev_sport;   /* event ports */
	__u16 pol_dport;  /* policy port (ICMP/ICMPv6: the type), network order */
	__u8 proto;
	__u8 family;      /* WARD_FAMILY_* */
	__u8 tcp_flags;   /* TCP: the header's flags byte (FIN 0x01, RST 0x04) */
	__u8 service;     /* translated from a service's address (lb_translate) */
	__u16 l4_off;     /* TCP/UDP: where the upper-layer header starts */
};

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_RST 0x04

/* The identity of `addr` (a flow's address of `family`) by longest prefix; world if none. */
static __always_inline __u32 ipcache_identity(__u8 family, const __u32 *addr)
{
	struct ipcache_value *iv;

	if (family == WARD_FAMILY_IPV6) {
		struct ipcache6_key k = { .prefixlen = 128 };

		__builtin_memcpy(k.addr, addr, sizeof(k.addr));
		iv = bpf_map_lookup_elem(&ward_ipcache6, &k);
	} else {
		struct ipcache_key k = { .prefixlen = 32, .addr = addr[0] };

		iv = bpf_map_lookup_elem(&ward_ipcache, &k);
	}
	return iv ? iv->identity : WARD_IDENTITY_WORLD;
}

/* The conntrack key of a flow, as seen (reverse = 0) or of its reply (reverse = 1). */
static __always_inline void ct_tuple(const struct flow *f, int reverse, struct ct_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	if (reverse) {
		__builtin_memcpy(k->saddr, f->daddr, sizeof(k->saddr));
		__builtin_memcpy(k->daddr, f->saddr, sizeof(k->daddr));
		k->sport = f->ct_dport;
		k->dport = f->ct_sport;
	} else {
		__builtin_memcpy(k->saddr, f->saddr, sizeof(k->saddr));
		__builtin_memcpy(k->daddr, f->daddr, sizeof(k->daddr));
		k->sport = f->ct_sport;
		k->dport = f->ct_dport;
	}
	k->proto = f->proto;
	k->family = f->family;
}

static __always_inline void count(__u32 ep_id, __u8 direction, __u8 verdict, __u32 len)
{
	struct counter_key key = {
		.ep_id = ep_id,
		.direction = direction,
		.verdict = verdict,
	};
	struct counter_value *val = bpf_map_lookup_elem(&ward_counters, &key);

	if (!val) {
		struct counter_value zero = {};

		/* Another CPU may win the race; either way the entry exists afterwards. */
		bpf_map_update_elem(&ward_counters, &key, &zero, BPF_NOEXIST);
		val = bpf_map_lookup_elem(&ward_counters, &key);
		if (!val)
			return;
	}
	__sync_fetch_and_add(&val->packets, 1);
	__sync_fetch_and_add(&val->bytes, len);
}

static __always_inline void emit(const struct endpoint_info *ep, __u32 local_identity,
				 __u32 remote_identity, const struct flow *f, __u8 direction,
				 __u8 verdict, __u32 rule_id)
{
	struct verdict_event *e;

	e = bpf_ringbuf_reserve(&ward_events, sizeof(*e), 0);
	if (!e)
		return; /* ring full: the counters still see the packet */
	e->ts_ns = bpf_ktime_get_ns();
	e->ep_id = ep ? ep->ep_id : 0;
	if (direction == WARD_DIR_EGRESS) {
		e->src_identity = local_identity;
		e->dst_identity = remote_identity;
	} else {
		e->src_identity = remote_identity;
		e->dst_identity = local_identity;
	}
	__builtin_memcpy(e->saddr, f->saddr, sizeof(e->saddr));
	__builtin_memcpy(e->daddr, f->daddr, sizeof(e->daddr));
	e->sport = f->ev_sport;
	e->dport = f->pol_dport;
	e->proto = f->proto;
	e->direction = direction;
	e->verdict = verdict;
	e->family = f->family;
	e->rule_id = rule_id;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline __u64 ct_lifetime(__u8 proto)
{
	return proto == IPPROTO_TCP ? WARD_CT_TCP_LIFETIME_NS : WARD_CT_ANY_LIFETIME_NS;
}

static __always_inline int ct_closing(__u32 flags)
{
	return (flags & WARD_CT_F_RST) ||
	       ((flags & WARD_CT_F_FIN_FWD) && (flags & WARD_CT_F_FIN_REPLY));
}

static __always_inline int ct_live(const struct ct_value *v, __u64 now, __u8 proto)
{
	__u64 lifetime = ct_closing(v->flags) ? WARD_CT_CLOSE_LIFETIME_NS : ct_lifetime(proto);

	/* last_seen may be a hair in the future (another CPU wrote it after we read now). */
	return now < v->last_seen_ns || now - v->last_seen_ns <= lifetime;
}

/* Notes a TCP FIN or RST of a tracked connection (`reply`: from the tuple's destination). */
static __always_inline void ct_note_close(struct ct_value *v, const struct flow *f, int reply)
{
	__u32 add = 0;

	if (f->proto != IPPROTO_TCP)
		return;
	if (f->tcp_flags & TCP_FLAG_RST)
		add |= WARD_CT_F_RST;
	if (f->tcp_flags & TCP_FLAG_FIN)
		add |= reply ? WARD_CT_F_FIN_REPLY : WARD_CT_F_FIN_FWD;
	/* Not atomic (32-bit atomics need a newer BPF ISA): a lost race keeps the long lifetime. */
	if (add && (v->flags & add) != add)
		v->flags |= add;
}

/*
 * The ports (or ICMP/ICMPv6 type and echo id) of the upper-layer header at `l4_off`, for
 * f->proto. Other protocols keep ports 0. Returns 0, or -1 for a truncated header.
 */
static __always_inline int parse_l4(struct __sk_buff *skb, __u32 l4_off, struct flow *f)
{
	if (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP) {
		struct l4_ports ports;

		if (bpf_skb_load_bytes(skb, l4_off, &ports, sizeof(ports)) < 0)
			return -1;
		f->ct_sport = ports.sport;
		f->ct_dport = ports.dport;
		f->ev_sport = ports.sport;
		f->pol_dport = ports.dport;
		f->l4_off = (__u16)l4_off;
		if (f->proto == IPPROTO_TCP &&
		    bpf_skb_load_bytes(skb, l4_off + 13, &f->tcp_flags, 1) < 0)
			return -1;
	} else if (f->proto == IPPROTO_ICMP || f->proto == IPPROTO_ICMPV6) {
		struct icmp_head icmp;
		int echo;

		if (bpf_skb_load_bytes(skb, l4_off, &icmp, sizeof(icmp)) < 0)
			return -1;
		f->pol_dport = bpf_htons((__u16)icmp.type);
		if (f->proto == IPPROTO_ICMP)
			echo = icmp.type == ICMP_ECHO_T || icmp.type == ICMP_ECHOREPLY_T;
		else
			echo = icmp.type == ICMPV6_ECHO_REQUEST_T || icmp.type == ICMPV6_ECHO_REPLY_T;
		if (echo) {
			f->ct_sport = icmp.id;
			f->ct_dport = icmp.id;
			f->ev_sport = icmp.id;
		}
	}
	return 0;
}

/* Parse the IPv4 packet at the L3 offset. Returns 0 on success, -1 for malformed packets. */
static __always_inline int parse_ipv4(struct __sk_buff *skb, struct flow *f)
{
	struct iphdr iph;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &iph, sizeof(iph)) < 0)
		return -1;
	if (iph.version != 4 || iph.ihl < 5)
		return -1;

	f->family = WARD_FAMILY_IPV4;
	f->saddr[0] = iph.saddr;
	f->daddr[0] = iph.daddr;
	f->proto = iph.protocol;

	/* Non-first fragments carry no L4 header: they are seen with ports 0. */
	if (iph.frag_off & bpf_htons(0x1fff))
		return 0;
	return parse_l4(skb, ETH_HLEN + iph.ihl * 4, f);
}

static __always_inline int ipv6_skippable(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS;
}

/*
 * Parse the IPv6 packet at the L3 offset, skipping up to WARD_IPV6_MAX_EXT hop-by-hop,
 * routing and destination-options headers. Returns 0 on success, -1 for what the policy
 * cannot judge: a fragment (its ports may be in another packet), more extension headers,
 * a truncated header.
 */
static __always_inline int parse_ipv6(struct __sk_buff *skb, struct flow *f)
{
	struct ipv6hdr ip6;
	__u32 off = ETH_HLEN + sizeof(ip6);
	__u8 nexthdr;
	int i;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0)
		return -1;
	if (ip6.version != 6)
		return -1;

	f->family = WARD_FAMILY_IPV6;
	__builtin_memcpy(f->saddr, &ip6.saddr, sizeof(f->saddr));
	__builtin_memcpy(f->daddr, &ip6.daddr, sizeof(f->daddr));
	nexthdr = ip6.nexthdr;
#pragma unroll
	for (i = 0; i < WARD_IPV6_MAX_EXT; i++) {
		struct ipv6_ext_head ext;

		if (!ipv6_skippable(nexthdr))
			break;
		if (bpf_skb_load_bytes(skb, off, &ext, sizeof(ext)) < 0)
			return -1;
		nexthdr = ext.nexthdr;
		off += ((__u32)ext.hdrlen + 1) * 8;
	}
	if (ipv6_skippable(nexthdr) || nexthdr == IPPROTO_FRAGMENT)
		return -1;
	f->proto = nexthdr;
	return parse_l4(skb, off, f);
}

/* Parse an IPv4 or IPv6 frame; -1 for anything else or a packet the policy cannot judge. */
static __always_inline int parse(struct __sk_buff *skb, struct flow *f)
{
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return parse_ipv4(skb, f);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(skb, f);
	return -1;
}

/* ICMPv6 neighbour discovery, which passes without policy (IPv6's ARP). */
static __always_inline int is_ndp(const struct flow *f)
{
	__u16 type = bpf_ntohs(f->pol_dport);

	return f->family == WARD_FAMILY_IPV6 && f->proto == IPPROTO_ICMPV6 &&
	       type >= ICMPV6_NDP_FIRST_T && type <= ICMPV6_NDP_LAST_T;
}

/*
 * The policy verdict of endpoint `ep_id` for a packet in `direction` with the remote
 * `identity`: the identity-specific entry (A), then the any-identity entry (B); a deny of
 * either wins, then an allow of either; nothing is the default deny.
 */
static __always_inline __u8 decide(__u32 ep_id, __u8 direction, __u32 identity,
				   const struct flow *f, __u32 *rule_id, __u8 *flags)
{
	struct policy_key pk = {
		.prefixlen = 96,
		.ep_id = bpf_htonl(ep_id),
		.direction = direction,
		.identity = bpf_htonl(identity),
		.proto = f->proto,
		.dport = f->pol_dport,
	};
	struct policy_value *a = policy_lookup(&pk);
	__u8 a_deny = 0, b_deny = 0, have_a = 0, have_b = 0, a_flags = 0, b_flags = 0;
	__u32 a_rule = 0, b_rule = 0;

	if (a) {
		have_a = 1;
		a_deny = a->deny;
		a_rule = a->rule_id;
		a_flags = a->flags;
	}
	pk.identity = 0;
	{
		struct policy_value *b = policy_lookup(&pk);

		if (b) {
			have_b = 1;
			b_deny = b->deny;
			b_rule = b->rule_id;
			b_flags = b->flags;
		}
	}

	/* An allow's flags are those of every allowing entry (a DNS rule on either redirects). */
	*flags = (have_a ? a_flags : 0) | (have_b ? b_flags : 0);

	if (have_a && a_deny) {
		*rule_id = a_rule;
		return WARD_VERDICT_DENIED;
	}
	if (have_b && b_deny) {
		*rule_id = b_rule;
		return WARD_VERDICT_DENIED;
	}
	if (have_a) {
		*rule_id = a_rule;
		return WARD_VERDICT_ALLOWED;
	}
	if (have_b) {
		*rule_id = b_rule;
		return WARD_VERDICT_ALLOWED;
	}
	*rule_id = 0;
	return WARD_VERDICT_DEFAULT_DENY;
}

/* A frame the programs cannot read as IPv4 or IPv6: counted and dropped. */
static __always_inline int drop_unsupported(struct __sk_buff *skb, __u8 direction)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint_info *ep = bpf_map_lookup_elem(&ward_endpoints, &ifindex);

	count(ep ? ep->ep_id : 0, direction, WARD_VERDICT_UNSUPPORTED, skb->len);
	return TC_ACT_SHOT;
}

/* The socket tuple of a flow, with destination port `dport` (network order); its length. */
static __always_inline __u32 sock_tuple(const struct flow *f, __u16 dport,
					struct bpf_sock_tuple *t)
{
	if (f->family == WARD_FAMILY_IPV4) {
		t->ipv4.saddr = f->saddr[0];
		t->ipv4.daddr = f->daddr[0];
		t->ipv4.sport = f->ct_sport;
		t->ipv4.dport = dport;
		return sizeof(t->ipv4);
	}
	__builtin_memcpy(t->ipv6.saddr, f->saddr, 16);
	__builtin_memcpy(t->ipv6.daddr, f->daddr, 16);
	t->ipv6.sport = f->ct_sport;
	t->ipv6.dport = dport;
	return sizeof(t->ipv6);
}

/* Marks a packet assigned to a proxy socket, so that the node delivers it to itself. */
static __always_inline int to_proxy_marked(struct __sk_buff *skb)
{
	skb->mark = (skb->mark & ~WARD_MARK_MASK) | WARD_MARK_TO_PROXY;
	return TC_ACT_OK;
}

/*
 * A UDP query for the proxy: its socket (found by the port in ward_config, and accepted only
 * with the cookie recorded there, so that no other socket that took the port after the
 * proxy died gets the queries) becomes the packet's socket.
 */
static __always_inline int to_dns_proxy_udp(struct __sk_buff *skb, const struct flow *f,
					    const struct node_config *cfg)
{
	struct bpf_sock_tuple t = {};
	__u32 tlen = sock_tuple(f, bpf_htons(cfg->dns_proxy_port), &t);
	struct bpf_sock *sk = bpf_sk_lookup_udp(skb, &t, tlen, BPF_F_CURRENT_NETNS, 0);
	long err;

	if (!sk)
		return TC_ACT_SHOT;
	err = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	if (err || bpf_get_socket_cookie(skb) != cfg->dns_proxy_cookie)
		return TC_ACT_SHOT;
	return to_proxy_marked(skb);
}

/*
 * A TCP segment for the proxy (DNS over TCP): the connection's own socket when the proxy
 * has one (accepted or being accepted, its local address the server's, which only a
 * transparent socket can hold), else, for a new connection, the proxy's listener, accepted
 * only with its cookie (as Cilium assigns its proxies' sockets).
 */
static __always_inline int to_dns_proxy_tcp(struct __sk_buff *skb, const struct flow *f,
					    const struct node_config *cfg)
{
	struct bpf_sock_tuple t = {};
	__u32 tlen = sock_tuple(f, f->ct_dport, &t);
	struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, &t, tlen, BPF_F_CURRENT_NETNS, 0);
	long err;

	if (sk) {
		if (sk->state != BPF_TCP_LISTEN && sk->state != BPF_TCP_TIME_WAIT) {
			err = bpf_sk_assign(skb, sk, 0);
			bpf_sk_release(sk);
			return err ? TC_ACT_SHOT : to_proxy_marked(skb);
		}
		bpf_sk_release(sk);
	}
	if (!cfg->dns_proxy_tcp_cookie)
		return TC_ACT_SHOT;
	tlen = sock_tuple(f, bpf_htons(cfg->dns_proxy_port), &t);
	sk = bpf_skc_lookup_tcp(skb, &t, tlen, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return TC_ACT_SHOT;
	if (sk->state != BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		return TC_ACT_SHOT;
	}
	err = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	if (err || bpf_get_socket_cookie(skb) != cfg->dns_proxy_tcp_cookie)
		return TC_ACT_SHOT;
	return to_proxy_marked(skb);
}

/*
 * Hands an allowed packet to the agent's DNS proxy; the mark routes it to the node itself,
 * which delivers it to the assigned socket with its original addresses (the proxy reads the
 * destination as IP_ORIGDSTADDR, or as the accepted connection's local address). Without
 * the proxy the packet is dropped: `rules.dns` cannot be enforced, so nothing passes (fail
 * closed, as Cilium drops when its proxy is missing).
 */
static __always_inline int to_dns_proxy(struct __sk_buff *skb, const struct flow *f)
{
	__u32 zero = 0;
	struct node_config *cfg = bpf_map_lookup_elem(&ward_config, &zero);

	if (!cfg || !cfg->dns_proxy_cookie || !cfg->dns_proxy_port)
		return TC_ACT_SHOT;
	if (f->proto == IPPROTO_TCP)
		return to_dns_proxy_tcp(skb, f, cfg);
	return to_dns_proxy_udp(skb, f, cfg);
}

/* An allowed packet: to the DNS proxy when a pod's egress allow has DNS rules, else on. */
static __always_inline int to_dns_proxy_if(struct __sk_buff *skb, const struct flow *f,
					   __u8 direction, const struct endpoint_info *ep,
					   __u8 flags)
{
	if (direction == WARD_DIR_EGRESS &&
	    (f->proto == IPPROTO_UDP || f->proto == IPPROTO_TCP) &&
	    (flags & WARD_POLICY_F_DNS) && !(ep->flags & WARD_EP_F_HOST))
		return to_dns_proxy(skb, f);
	return TC_ACT_OK;
}

/*
 * The DNS proxy's upstream packet leaving the node (its socket's mark): tracked, so that the
 * server's answer passes as a reply, and passed without the host policy.
 */
static __always_inline int track_from_proxy(struct __sk_buff *skb, const struct flow *f)
{
	__u64 now = bpf_ktime_get_ns();
	struct ct_key fk;
	struct ct_value *fv;

	ct_tuple(f, 0, &fk);
	fv = bpf_map_lookup_elem(&ward_ct, &fk);
	if (fv && ct_live(fv, now, f->proto)) {
		fv->last_seen_ns = now;
		__sync_fetch_and_add(&fv->packets, 1);
		__sync_fetch_and_add(&fv->bytes, skb->len);
		ct_note_close(fv, f, 0);
	} else {
		struct ct_value nv = {
			.last_seen_ns = now,
			.packets = 1,
			.bytes = skb->len,
			.flags = WARD_CT_F_EGRESS_SEEN,
		};

		bpf_map_update_elem(&ward_ct, &fk, &nv, BPF_ANY);
	}
	return TC_ACT_OK;
}

/* The verdict on a parsed packet of the interface's endpoint. */
static __always_inline int enforce_flow(struct __sk_buff *skb, __u8 direction,
					const struct flow *parsed)
{
	struct endpoint_info *ep;
	struct flow f = *parsed;
	__u32 ifindex = skb->ifindex;
	__u32 len = skb->len;
	__u32 remote_identity;
	__u64 now;

	ep = bpf_map_lookup_elem(&ward_endpoints, &ifindex);
	remote_identity = ipcache_identity(f.family, direction == WARD_DIR_EGRESS ? f.daddr : f.saddr);

	if (!ep) {
		/* Fail closed: an interface we were attached to but know nothing about. */
		count(0, direction, WARD_VERDICT_DEFAULT_DENY, len);
		emit(0, 0, remote_identity, &f, direction, WARD_VERDICT_DEFAULT_DENY, 0);
		return TC_ACT_SHOT;
	}

	now = bpf_ktime_get_ns();

	/* A reply of a tracked connection passes without policy. */
	{
		struct ct_key rk;
		struct ct_value *rv;

		ct_tuple(&f, 1, &rk);
		rv = bpf_map_lookup_elem(&ward_ct, &rk);

		if (rv && ct_live(rv, now, f.proto)) {
			rv->last_seen_ns = now;
			ct_note_close(rv, &f, 1);
			__sync_fetch_and_add(&rv->packets, 1);
			__sync_fetch_and_add(&rv->bytes, len);
			count(ep->ep_id, direction, WARD_VERDICT_ALLOWED, len);
			return TC_ACT_OK;
		}
	}

	__u32 rule_id;
	__u8 flags;
	__u8 verdict = decide(ep->ep_id, direction, remote_identity, &f, &rule_id, &flags);

	/*
	 * Between a pod and its own node the packet never crosses the underlay interface, so the
	 * host endpoint's policy is checked here too: the host's ingress for a pod's packet to
	 * the node, its egress for the node's packet to the pod. Without a host endpoint (key 0:
	 * none attached on this node) there is no host policy to apply.
	 */
	if (verdict == WARD_VERDICT_ALLOWED && remote_identity == WARD_IDENTITY_HOST &&
	    !(ep->flags & WARD_EP_F_HOST)) {
		__u32 host_key = 0;
		struct endpoint_info *host = bpf_map_lookup_elem(&ward_endpoints, &host_key);

		if (host) {
			__u8 host_dir = direction == WARD_DIR_EGRESS ? WARD_DIR_INGRESS : WARD_DIR_EGRESS;
			__u32 host_rule;
			__u8 host_flags;
			__u8 host_verdict = decide(host->ep_id, host_dir, ep->identity, &f, &host_rule,
						   &host_flags);

			if (host_verdict != WARD_VERDICT_ALLOWED) {
				count(host->ep_id, host_dir, host_verdict, len);
				emit(host, host->identity, ep->identity, &f, host_dir, host_verdict,
				     host_rule);
				return TC_ACT_SHOT;
			}
		}
	}

	count(ep->ep_id, direction, verdict, len);
	if (verdict != WARD_VERDICT_ALLOWED) {
		emit(ep, ep->identity, remote_identity, &f, direction, verdict, rule_id);
		return TC_ACT_SHOT;
	}

	/* Allowed: create or refresh the forward tuple; one event per connection and direction. */
	{
		__u32 seen = direction == WARD_DIR_EGRESS ? WARD_CT_F_EGRESS_SEEN
							  : WARD_CT_F_INGRESS_SEEN;
		struct ct_key fk;
		struct ct_value *fv;

		ct_tuple(&f, 0, &fk);
		fv = bpf_map_lookup_elem(&ward_ct, &fk);

		if (fv && ct_live(fv, now, f.proto)) {
			fv->last_seen_ns = now;
			ct_note_close(fv, &f, 0);
			__sync_fetch_and_add(&fv->packets, 1);
			__sync_fetch_and_add(&fv->bytes, len);
			if (f.service && !(fv->flags & WARD_CT_F_SERVICE))
				fv->flags |= WARD_CT_F_SERVICE;
			if (fv->flags & seen)
				return to_dns_proxy_if(skb, &f, direction, ep, flags);
			/* The other end's direction created it (both pods on this node). */
			fv->flags |= seen; /* a lost race only repeats one event */
		} else {
			struct ct_value nv = {
				.last_seen_ns = now,
				.packets = 1,
				.bytes = len,
				.flags = seen | (f.service ? WARD_CT_F_SERVICE : 0),
			};

			bpf_map_update_elem(&ward_ct, &fk, &nv, BPF_ANY);
		}
	}
	emit(ep, ep->identity, remote_identity, &f, direction, WARD_VERDICT_ALLOWED, rule_id);
	return to_dns_proxy_if(skb, &f, direction, ep, flags);
}

/* Where the TCP or UDP checksum is, and the flags its updates need. */
static __always_inline __u32 l4_csum(const struct flow *f, __u64 *flags)
{
	if (f->proto == IPPROTO_TCP) {
		*flags = 0;
		return (__u32)f->l4_off + 16;
	}
	/* A UDP checksum of 0 (IPv4: none) stays 0. */
	*flags = BPF_F_MARK_MANGLED_0;
	return (__u32)f->l4_off + 6;
}

/*
 * Rewrites the destination (`dst`) or the source of a TCP or UDP packet to addr:port
 * (network order), with the IPv4 header checksum and the L4 checksum (its pseudo header
 * included) updated. Returns 0, or -1 when a helper failed.
 */
static __always_inline int rewrite(struct __sk_buff *skb, const struct flow *f, int dst,
				   const __u32 *addr, __u16 port)
{
	__u64 mflags;
	__u32 csum_off = l4_csum(f, &mflags);
	__u32 port_off = (__u32)f->l4_off + (dst ? 2 : 0);
	__u16 old_port = dst ? f->ct_dport : f->ct_sport;
	__u32 old[4];

	__builtin_memcpy(old, dst ? f->daddr : f->saddr, sizeof(old));
	if (f->family == WARD_FAMILY_IPV4) {
		__u32 addr_off = ETH_HLEN + (dst ? offsetof(struct iphdr, daddr)
						  : offsetof(struct iphdr, saddr));

		if (bpf_l4_csum_replace(skb, csum_off, old[0], addr[0],
					BPF_F_PSEUDO_HDR | mflags | sizeof(__u32)) < 0)
			return -1;
		if (bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old[0],
					addr[0], sizeof(__u32)) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, addr_off, addr, sizeof(__u32), 0) < 0)
			return -1;
	} else {
		__u32 addr_off = ETH_HLEN + (dst ? offsetof(struct ipv6hdr, daddr)
						  : offsetof(struct ipv6hdr, saddr));
		__u32 new[4];
		__s64 diff;

		__builtin_memcpy(new, addr, sizeof(new));
		diff = bpf_csum_diff(old, sizeof(old), new, sizeof(new), 0);
		if (diff < 0)
			return -1;
		if (bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR | mflags) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, addr_off, new, sizeof(new), 0) < 0)
			return -1;
	}
	if (port != old_port) {
		if (bpf_l4_csum_replace(skb, csum_off, old_port, port, mflags | sizeof(__u16)) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, port_off, &port, sizeof(port), 0) < 0)
			return -1;
	}
	return 0;
}

/* Whether two addresses (four words, either family) are the same. */
static __always_inline int addr_eq(const __u32 *a, const __u32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

/*
 * A pod's TCP or UDP packet to a service (ward_lb): its destination becomes one of the
 * service's backends before the policy sees it, as Cilium's load balancer does in the pod's
 * program, so the policy judges the backend (its address and target port) and never the
 * service's address. A connection keeps the backend it was given (ward_nat_fwd, with its
 * slot) while that slot still holds it; a backend that left, or moved, gets the connection a
 * new one, and a service that is gone translates nothing any more (as Cilium checks its
 * backends). The reply's way back is recorded (ward_nat_rev). Returns 0 (translated, or not a
 * service) or -1 (a service without backends, or a failed rewrite: the packet is dropped).
 */
static __always_inline int lb_translate(struct __sk_buff *skb, struct flow *f)
{
	struct lb_key k = {
		.port = f->ct_dport,
		.proto = f->proto,
		.family = f->family,
	};
	struct nat_value backend = {};
	struct nat_value service = {};
	struct nat_value *known, *rev;
	struct lb_value *svc, *be;
	struct ct_key fk, rk = {};
	__u16 count, slot = 0;
	int i;

	if (f->proto != IPPROTO_TCP && f->proto != IPPROTO_UDP)
		return 0;
	__builtin_memcpy(k.addr, f->daddr, sizeof(k.addr));
	svc = bpf_map_lookup_elem(&ward_lb, &k);
	if (!svc)
		return 0;
	count = svc->count;
	if (!count)
		return -1;
	ct_tuple(f, 0, &fk);
	known = bpf_map_lookup_elem(&ward_nat_fwd, &fk);
	if (known) {
		backend = *known;
		/* Its own slot first, then the others (the backends may have been renumbered). */
		for (i = 0; i <= WARD_LB_SCAN; i++) {
			k.slot = i == 0 ? backend.slot : (__u16)i;
			if (!k.slot || k.slot > count)
				continue;
			be = bpf_map_lookup_elem(&ward_lb, &k);
			if (be && be->port == backend.port && addr_eq(be->addr, backend.addr)) {
				slot = k.slot;
				break;
			}
		}
	}
	if (!slot) {
		/* New, or its backend left the service: one at random. */
		k.slot = (__u16)(bpf_get_prandom_u32() % count) + 1;
		be = bpf_map_lookup_elem(&ward_lb, &k);
		if (!be)
			return -1;
		__builtin_memcpy(backend.addr, be->addr, sizeof(backend.addr));
		backend.port = be->port;
		slot = k.slot;
	}
	__builtin_memcpy(service.addr, f->daddr, sizeof(service.addr));
	service.port = f->ct_dport;
	__builtin_memcpy(rk.saddr, backend.addr, sizeof(rk.saddr));
	__builtin_memcpy(rk.daddr, f->saddr, sizeof(rk.daddr));
	rk.sport = backend.port;
	rk.dport = f->ct_sport;
	rk.proto = f->proto;
	rk.family = f->family;
	/* The way back, written again whenever it is not (or no longer) this service's. */
	rev = bpf_map_lookup_elem(&ward_nat_rev, &rk);
	if (!rev || rev->port != service.port || !addr_eq(rev->addr, service.addr)) {
		if (bpf_map_update_elem(&ward_nat_rev, &rk, &service, BPF_ANY) < 0)
			return -1;
	}
	if (!known || known->slot != slot) {
		backend.slot = slot;
		if (bpf_map_update_elem(&ward_nat_fwd, &fk, &backend, BPF_ANY) < 0)
			return -1;
	}
	if (rewrite(skb, f, 1, backend.addr, backend.port) < 0)
		return -1;
	__builtin_memcpy(f->daddr, backend.addr, sizeof(f->daddr));
	f->ct_dport = backend.port;
	f->pol_dport = backend.port;
	f->service = 1;
	return 0;
}

/* A backend's reply on its way into the pod: its source becomes the service again. */
static __always_inline int lb_reverse(struct __sk_buff *skb, const struct flow *f)
{
	struct nat_value service;
	struct nat_value *nv;
	struct ct_value *conn;
	struct ct_key k;

	if (f->proto != IPPROTO_TCP && f->proto != IPPROTO_UDP)
		return TC_ACT_OK;
	/* Only a reply of a connection made to a service (its conntrack entry says so). */
	ct_tuple(f, 1, &k);
	conn = bpf_map_lookup_elem(&ward_ct, &k);
	if (!conn || !(conn->flags & WARD_CT_F_SERVICE))
		return TC_ACT_OK;
	ct_tuple(f, 0, &k);
	nv = bpf_map_lookup_elem(&ward_nat_rev, &k);
	if (!nv)
		return TC_ACT_OK;
	service = *nv;
	return rewrite(skb, f, 0, service.addr, service.port) < 0 ? TC_ACT_SHOT : TC_ACT_OK;
}

/* A pod's packet to a service without backends: counted and dropped. */
static __always_inline int drop_no_backend(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint_info *ep = bpf_map_lookup_elem(&ward_endpoints, &ifindex);

	count(ep ? ep->ep_id : 0, WARD_DIR_EGRESS, WARD_VERDICT_NO_BACKEND, skb->len);
	return TC_ACT_SHOT;
}

/*
 * Whether a packet on the node's underlay interface is the host's own: from or to one of the
 * node's addresses (identity host in the ipcache). Everything else crossing the interface is
 * forwarded pod traffic, which the pods' own programs decide; the mesh's WireGuard UDP is not
 * the host's either, so that a host policy never cuts the tunnels.
 */
static __always_inline int is_host_traffic(const struct flow *f, __u8 direction)
{
	if (ipcache_identity(f->family, direction == WARD_DIR_EGRESS ? f->saddr : f->daddr) !=
	    WARD_IDENTITY_HOST)
		return 0;
	return !(f->proto == IPPROTO_UDP &&
		 (direction == WARD_DIR_EGRESS ? f->ct_sport : f->ct_dport) ==
			 bpf_htons(WARD_WIREGUARD_PORT));
}

/*
 * An endpoint's packet: ARP and neighbour discovery pass, what cannot be parsed is dropped,
 * IPv4 and IPv6 meet the policy. On the node's underlay interface (`host`, a constant of each
 * program) only the host's own traffic does; it is then enforced like a pod's: replies
 * through conntrack, then the host endpoint's policy, and an interface without an endpoint
 * entry drops the host's traffic (fail closed).
 */
static __always_inline int enforce(struct __sk_buff *skb, __u8 direction, int host)
{
	struct flow f = {};

	if (skb->protocol == bpf_htons(ETH_P_ARP))
		return TC_ACT_OK;
	if (parse(skb, &f) < 0)
		return drop_unsupported(skb, direction);
	if (is_ndp(&f))
		return TC_ACT_OK;
	if (host && !is_host_traffic(&f, direction))
		return TC_ACT_OK;
	if (host && direction == WARD_DIR_EGRESS &&
	    (skb->mark & WARD_MARK_MASK) == WARD_MARK_FROM_PROXY)
		return track_from_proxy(skb, &f);
	if (host)
		return enforce_flow(skb, direction, &f);
	if (direction == WARD_DIR_EGRESS) {
		if (lb_translate(skb, &f) < 0)
			return drop_no_backend(skb);
		return enforce_flow(skb, direction, &f);
	}
	if (enforce_flow(skb, direction, &f) != TC_ACT_OK)
		return TC_ACT_SHOT;
	return lb_reverse(skb, &f);
}

SEC("classifier/to_host")
int to_host(struct __sk_buff *skb)
{
	return enforce(skb, WARD_DIR_INGRESS, 1);
}

SEC("classifier/from_host")
int from_host(struct __sk_buff *skb)
{
	return enforce(skb, WARD_DIR_EGRESS, 1);
}

SEC("classifier/from_pod")
int from_pod(struct __sk_buff *skb)
{
	return enforce(skb, WARD_DIR_EGRESS, 0);
}

SEC("classifier/to_pod")
int to_pod(struct __sk_buff *skb)
{
	return enforce(skb, WARD_DIR_INGRESS, 0);
}
