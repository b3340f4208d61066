/**
 * The fixed part of every generated XDP program: headers, the parsed-packet struct and the
 * bounds-checked parser. It does not depend on the rules, so it is one constant text; what a
 * section needs beyond it is emitted by maps.ts and rules.ts.
 */

/** How many VLAN tags the parser steps over (802.1Q and 802.1ad, outer then inner). */
export const MAX_VLANS = 2;
/** IPv6 extension headers skipped before the parser gives up and calls the frame malformed. */
export const MAX_EXT_HDRS = 6;

export const INCLUDES = `#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>`;

/**
 * The fields of `struct pkt` in PARSER below, which match conditions read (rules.ts
 * MATCH_CODEGEN names them by this type; a unit test keeps the list and the C struct equal).
 */
export const PKT_FIELDS = [
  'eth',
  'ip6',
  'saddr4',
  'daddr4',
  'eth_proto',
  'vlan_outer',
  'vlan_inner',
  'sport',
  'dport',
  'vlans',
  'l3',
  'proto',
  'dscp',
  'frag',
  'l4',
  'tcp_flags',
  'icmp_type',
  'icmp_code',
] as const;
export type PktField = (typeof PKT_FIELDS)[number];

export const PARSER = `#define MAX_VLANS ${MAX_VLANS}
#define MAX_EXT_HDRS ${MAX_EXT_HDRS}
#define IP_OFFSET_MASK 0x1fff  /* IPv4 fragment offset bits */
#define IP6_OFFSET_MASK 0xfff8 /* IPv6 fragment offset bits */

/*
 * Declared here rather than included: an 802.1Q/802.1ad tag and the IPv6 fragment header are not
 * in the UAPI headers, and <linux/icmp.h> pulls in libc headers that do not build for BPF.
 */
struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

struct icmp_common {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest;
};

struct ip6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 id;
};

/*
 * What the parser learned about a frame. Ports, VLAN ids and the EtherType are in host order so
 * rules compare them with plain constants; addresses stay in network order (rules compare them
 * with bpf_htonl() constants, folded at compile time).
 */
struct pkt {
	const struct ethhdr *eth;
	const struct ipv6hdr *ip6; /* set when l3 == 6 */
	__be32 saddr4;             /* set when l3 == 4 */
	__be32 daddr4;
	__u16 eth_proto;           /* EtherType after the VLAN tags */
	__u16 vlan_outer;
	__u16 vlan_inner;
	__u16 sport;
	__u16 dport;
	__u8 vlans;                /* VLAN tags seen: 0..MAX_VLANS */
	__u8 l3;                   /* 4, 6, or 0 when not IP */
	__u8 proto;                /* IP protocol; IPv6: the header after the extension headers */
	__u8 dscp;
	__u8 frag;                 /* a non-first fragment: no L4 header follows */
	__u8 l4;                   /* the L4 header of proto was read (ports/flags/type below are valid) */
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
};

/* Returns 0, or -1 when the L4 header is cut short or invalid (a malformed frame). */
static __always_inline int parse_l4(void *l4, void *data_end, struct pkt *p)
{
	switch (p->proto) {
	case IPPROTO_TCP: {
		const struct tcphdr *th = l4;

		if ((void *)(th + 1) > data_end || th->doff < 5)
			return -1;
		p->sport = bpf_ntohs(th->source);
		p->dport = bpf_ntohs(th->dest);
		p->tcp_flags = ((const __u8 *)th)[13];
		break;
	}
	case IPPROTO_UDP: {
		const struct udphdr *uh = l4;

		if ((void *)(uh + 1) > data_end)
			return -1;
		p->sport = bpf_ntohs(uh->source);
		p->dport = bpf_ntohs(uh->dest);
		break;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		/* ICMP and ICMPv6 share this 8-byte start: type, code, checksum, 4 more bytes. */
		const struct icmp_common *ih = l4;

		if ((void *)(ih + 1) > data_end)
			return -1;
		p->icmp_type = ih->type;
		p->icmp_code = ih->code;
		break;
	}
	default:
		return 0; /* other protocols: rules see their L3 fields only */
	}
	p->l4 = 1;
	return 0;
}

static __always_inline int ipv6_is_ext(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_FRAGMENT;
}

/*
 * Parses Ethernet, up to MAX_VLANS VLAN tags, IPv4 (options included) or IPv6 (skipping up to
 * MAX_EXT_HDRS extension headers) and TCP/UDP/ICMP/ICMPv6. Every read is bounds-checked first.
 * Returns 0, or -1 for a malformed frame: a truncated header, IPv4 with version != 4, IHL < 5,
 * options past the end of the frame or a total length shorter than the header, IPv6 with
 * version != 6 or a longer extension-header chain than MAX_EXT_HDRS, a TCP data offset < 5.
 */
static __always_inline int parse(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	const struct ethhdr *eth = data;
	void *cur = (void *)(eth + 1);
	__u16 proto;

	if (cur > data_end)
		return -1;
	p->eth = eth;
	proto = bpf_ntohs(eth->h_proto);

#pragma unroll
	for (int i = 0; i < MAX_VLANS; i++) {
		const struct vlan_tag *tag = cur;

		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		if ((void *)(tag + 1) > data_end)
			return -1;
		if (i == 0)
			p->vlan_outer = bpf_ntohs(tag->tci) & 0x0fff;
		else
			p->vlan_inner = bpf_ntohs(tag->tci) & 0x0fff;
		p->vlans = i + 1;
		proto = bpf_ntohs(tag->proto);
		cur = (void *)(tag + 1);
	}
	p->eth_proto = proto;

	if (proto == ETH_P_IP) {
		const struct iphdr *iph = cur;
		__u32 hlen;

		if ((void *)(iph + 1) > data_end)
			return -1;
		hlen = iph->ihl * 4;
		if (iph->version != 4 || hlen < sizeof(*iph) || bpf_ntohs(iph->tot_len) < hlen)
			return -1;
		if (cur + hlen > data_end)
			return -1;
		p->l3 = 4;
		p->saddr4 = iph->saddr;
		p->daddr4 = iph->daddr;
		p->proto = iph->protocol;
		p->dscp = iph->tos >> 2;
		if (iph->frag_off & bpf_htons(IP_OFFSET_MASK)) {
			p->frag = 1;
			return 0;
		}
		return parse_l4(cur + hlen, data_end, p);
	}

	if (proto == ETH_P_IPV6) {
		const struct ipv6hdr *ip6 = cur;
		__u8 nexthdr;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		if (ip6->version != 6)
			return -1;
		p->l3 = 6;
		p->ip6 = ip6;
		/* Traffic class: 4 bits in priority, 4 in the top of flow_lbl[0]; DSCP is its top 6. */
		p->dscp = ((ip6->priority << 4) | (ip6->flow_lbl[0] >> 4)) >> 2;
		nexthdr = ip6->nexthdr;
		cur = (void *)(ip6 + 1);

#pragma unroll
		for (int i = 0; i < MAX_EXT_HDRS; i++) {
			if (!ipv6_is_ext(nexthdr))
				break;
			if (nexthdr == IPPROTO_FRAGMENT) {
				const struct ip6_frag *fh = cur;

				if ((void *)(fh + 1) > data_end)
					return -1;
				nexthdr = fh->nexthdr;
				cur = (void *)(fh + 1);
				if (fh->frag_off & bpf_htons(IP6_OFFSET_MASK)) {
					p->proto = nexthdr;
					p->frag = 1;
					return 0;
				}
			} else {
				const struct ipv6_opt_hdr *oh = cur;

				if ((void *)(oh + 1) > data_end)
					return -1;
				nexthdr = oh->nexthdr;
				cur += (oh->hdrlen + 1) * 8;
				if (cur > data_end)
					return -1;
			}
		}
		if (ipv6_is_ext(nexthdr))
			return -1; /* deeper than MAX_EXT_HDRS: the L4 header is out of reach */
		p->proto = nexthdr;
		return parse_l4(cur, data_end, p);
	}

	return 0; /* not IP: rules see the L2 fields only */
}`;
