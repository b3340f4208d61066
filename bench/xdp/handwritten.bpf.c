/*
 * A hand-written XDP classifier implementing the same rules as examples/firewall/policy.ts, as an
 * engineer would write it without bpfctl: one pass over the headers with early exits, the rules
 * as a switch on the L4 protocol. The benchmark runs it and the generated program on the same
 * frames through BPF_PROG_TEST_RUN. It keeps the same behaviour (malformed frames dropped and
 * counted, later fragments seen without ports, per-rule per-CPU counters) and the same map names
 * and key layouts, so both are filled by the same code.
 *
 * Built with -DHANDWRITTEN_TC it is the same classifier as a tc program (what an engineer would
 * attach at tcx): the skb's headers pulled into its linear part first, TC verdicts, `tx` through
 * bpf_redirect(), and the AF_XDP rule passing (tc has no AF_XDP, and the generated tc program of
 * the benchmark passes that flow too).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifdef HANDWRITTEN_TC
#include <linux/pkt_cls.h>
#define CTX struct __sk_buff
#define V_PASS TC_ACT_OK
#define V_DROP TC_ACT_SHOT
#define V_TX bpf_redirect(ctx->ifindex, 0)
#else
#define CTX struct xdp_md
#define V_PASS XDP_PASS
#define V_DROP XDP_DROP
#define V_TX XDP_TX
#endif

struct counter { __u64 packets, bytes; };
struct lpm4 { __u32 prefixlen; __u8 addr[4]; };
struct lpm6 { __u32 prefixlen; __u8 addr[16]; };
struct vlan_tag { __be16 tci, proto; };
struct frag6 { __u8 nexthdr, reserved; __be16 frag_off; __be32 id; };

#define N_RULES 16

struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, N_RULES + 1); __type(key, __u32); __type(value, struct counter); } rule_stats SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 2); __type(key, __u32); __type(value, struct counter); } xdp_stats SEC(".maps");
#ifndef HANDWRITTEN_TC
struct { __uint(type, BPF_MAP_TYPE_XSKMAP); __uint(max_entries, 64); __type(key, __u32); __type(value, __u32); } xsk_dpi SEC(".maps");
#endif
struct { __uint(type, BPF_MAP_TYPE_LPM_TRIE); __uint(map_flags, BPF_F_NO_PREALLOC); __uint(max_entries, 65536); __type(key, struct lpm4); __type(value, __u8); } set_blocklist4 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LPM_TRIE); __uint(map_flags, BPF_F_NO_PREALLOC); __uint(max_entries, 65536); __type(key, struct lpm6); __type(value, __u8); } set_blocklist6 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LPM_TRIE); __uint(map_flags, BPF_F_NO_PREALLOC); __uint(max_entries, 4096); __type(key, struct lpm4); __type(value, __u8); } set_admins SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4096); __type(key, __u16); __type(value, __u8); } set_web SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4096); __type(key, __be32); __type(value, __u8); } set_probes SEC(".maps");

static __always_inline int hit(__u32 rule, __u64 bytes, int verdict)
{
	struct counter *c = bpf_map_lookup_elem(&rule_stats, &rule);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
	return verdict;
}

static __always_inline int stat(__u32 slot, __u64 bytes, int verdict)
{
	struct counter *c = bpf_map_lookup_elem(&xdp_stats, &slot);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
	return verdict;
}

#ifdef HANDWRITTEN_TC
SEC("tc")
int tc_handwritten(CTX *ctx)
{
	__u64 bytes = ctx->len;

	bpf_skb_pull_data(ctx, ctx->len < 256 ? ctx->len : 256);
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
#else
SEC("xdp")
int xdp_handwritten(CTX *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = data_end - data;
#endif
	struct ethhdr *eth = data;
	void *l4 = 0;
	__be32 saddr4 = 0;
	__u16 proto;
	__u8 l4proto, l3 = 0, frag = 0;

	if ((void *)(eth + 1) > data_end)
		return stat(0, bytes, V_DROP);
	proto = eth->h_proto;
	void *cur = eth + 1;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlan_tag *t = cur;
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(t + 1) > data_end)
			return stat(0, bytes, V_DROP);
		proto = t->proto;
		cur = t + 1;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cur;
		if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5 || bpf_ntohs(ip->tot_len) < ip->ihl * 4 || cur + ip->ihl * 4 > data_end)
			return stat(0, bytes, V_DROP);
		l3 = 4;
		saddr4 = ip->saddr;
		l4proto = ip->protocol;
		if (ip->frag_off & bpf_htons(0x1fff)) {
			frag = 1;
			stat(1, bytes, 0);
		} else {
			l4 = cur + ip->ihl * 4;
		}
		struct lpm4 k = { .prefixlen = 32 };
		__builtin_memcpy(k.addr, &saddr4, 4);
		if (bpf_map_lookup_elem(&set_blocklist4, &k))
			return hit(0, bytes, V_DROP);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cur;
		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return stat(0, bytes, V_DROP);
		l3 = 6;
		l4proto = ip6->nexthdr;
		cur = ip6 + 1;
#pragma unroll
		for (int i = 0; i < 6; i++) {
			if (l4proto == IPPROTO_FRAGMENT) {
				struct frag6 *f = cur;
				if ((void *)(f + 1) > data_end)
					return stat(0, bytes, V_DROP);
				l4proto = f->nexthdr;
				cur = f + 1;
				if (f->frag_off & bpf_htons(0xfff8)) {
					frag = 1;
					break;
				}
			} else if (l4proto == IPPROTO_HOPOPTS || l4proto == IPPROTO_ROUTING || l4proto == IPPROTO_DSTOPTS) {
				struct ipv6_opt_hdr *o = cur;
				if ((void *)(o + 1) > data_end)
					return stat(0, bytes, V_DROP);
				l4proto = o->nexthdr;
				cur += (o->hdrlen + 1) * 8;
				if (cur > data_end)
					return stat(0, bytes, V_DROP);
			} else {
				break;
			}
		}
		if (frag)
			stat(1, bytes, 0);
		else if (l4proto == IPPROTO_HOPOPTS || l4proto == IPPROTO_ROUTING || l4proto == IPPROTO_DSTOPTS || l4proto == IPPROTO_FRAGMENT)
			return stat(0, bytes, V_DROP);
		else
			l4 = cur;
		struct lpm6 k = { .prefixlen = 128 };
		__builtin_memcpy(k.addr, &ip6->saddr, 16);
		if (bpf_map_lookup_elem(&set_blocklist6, &k))
			return hit(1, bytes, V_DROP);
	} else if (proto == bpf_htons(ETH_P_ARP)) {
		return hit(10, bytes, V_PASS);
	} else {
		return hit(N_RULES, bytes, V_DROP);
	}

	if (!l4)
		return hit(N_RULES, bytes, V_DROP); /* later fragments: no rule below can match */

	switch (l4proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > data_end || th->doff < 5)
			return stat(0, bytes, V_DROP);
		__u8 flags = ((__u8 *)th)[13];
		__u16 dport = bpf_ntohs(th->dest);
		if ((flags & 0x03) == 0x03)
			return hit(2, bytes, V_DROP);
		if ((flags & 0x06) == 0x06)
			return hit(3, bytes, V_DROP);
		if (dport == 22) {
			if (l3 == 4) {
				struct lpm4 k = { .prefixlen = 32 };
				__builtin_memcpy(k.addr, &saddr4, 4);
				if (bpf_map_lookup_elem(&set_admins, &k))
					return hit(5, bytes, V_PASS);
			}
			return hit(6, bytes, V_DROP);
		}
		if (bpf_map_lookup_elem(&set_web, &dport))
			return hit(7, bytes, V_PASS);
		if (dport >= 32768 && dport <= 60999 && (flags & 0x10))
			return hit(15, bytes, V_PASS);
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > data_end)
			return stat(0, bytes, V_DROP);
		__u16 dport = bpf_ntohs(uh->dest);
		if (dport == 7 && l3 == 4 && bpf_map_lookup_elem(&set_probes, &saddr4))
			return hit(4, bytes, V_TX);
		if (dport == 443)
			return hit(8, bytes, V_PASS);
		if (dport == 4789) {
#ifdef HANDWRITTEN_TC
			return hit(9, bytes, V_PASS);
#else
			hit(9, bytes, 0);
			return bpf_redirect_map(&xsk_dpi, ctx->rx_queue_index, XDP_PASS);
#endif
		}
		if (uh->source == bpf_htons(53))
			return hit(14, bytes, V_PASS);
		break;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		__u8 *ih = l4;
		if ((void *)(ih + 8) > data_end)
			return stat(0, bytes, V_DROP);
		if (l3 == 6 && l4proto == IPPROTO_ICMPV6)
			return hit(11, bytes, V_PASS);
		if (l3 == 4 && l4proto == IPPROTO_ICMP) {
			if (ih[0] == 8)
				return hit(12, bytes, V_PASS);
			if (ih[0] == 3 && ih[1] == 4)
				return hit(13, bytes, V_PASS);
		}
		break;
	}
	}
	if (l3 == 6 && l4proto == IPPROTO_ICMPV6)
		return hit(11, bytes, V_PASS);
	return hit(N_RULES, bytes, V_DROP);
}

char _license[] SEC("license") = "GPL";
