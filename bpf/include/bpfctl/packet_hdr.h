/* SPDX-License-Identifier: MIT */
/*
 * Frame parsing and checksums for packet functions (header-only, no allocation, no syscalls).
 *
 * Parsers take the frame (data, len) and return a pointer to the header, or NULL when the frame
 * is not that protocol or too short for it: a pointer returned here always has its whole header
 * inside the frame (and, for L4, inside the IP packet's own length: Ethernet padding is not
 * payload). Ethernet may carry one VLAN tag (802.1Q or 802.1ad). UDP and TCP are found only in
 * unfragmented packets or first fragments; later fragments have no L4 header.
 *
 * Header structs are packed: frames sit at any alignment in their buffer (14-byte Ethernet
 * header, adjust_head), and fields are in network byte order as on the wire.
 *
 * Checksums work on 16-bit words as they are in memory: the ones' complement sum is the same in
 * either byte order (RFC 1071), so old and new field values are passed as stored (network order)
 * and the result is stored as is. Incremental updates follow RFC 1624 (eqn. 3), which agrees
 * exactly with a full recomputation.
 */
#ifndef BPFCTL_PACKET_HDR_H
#define BPFCTL_PACKET_HDR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BPFCTL_ETH_P_IP 0x0800u
#define BPFCTL_ETH_P_IPV6 0x86ddu
#define BPFCTL_ETH_P_ARP 0x0806u
#define BPFCTL_ETH_P_8021Q 0x8100u
#define BPFCTL_ETH_P_8021AD 0x88a8u
#define BPFCTL_IPPROTO_ICMP 1u
#define BPFCTL_IPPROTO_TCP 6u
#define BPFCTL_IPPROTO_UDP 17u
#define BPFCTL_IPPROTO_ICMPV6 58u

struct __attribute__((packed)) bpfctl_ethhdr {
	uint8_t dst[6];
	uint8_t src[6];
	uint16_t type;
};

struct __attribute__((packed)) bpfctl_vlanhdr {
	uint16_t tci;
	uint16_t type; /* the encapsulated ethertype */
};

struct __attribute__((packed)) bpfctl_iphdr {
	uint8_t ver_ihl; /* version << 4 | header length in 32-bit words */
	uint8_t tos;
	uint16_t tot_len;
	uint16_t id;
	uint16_t frag_off; /* flags (3 bits) | offset in 8-byte units */
	uint8_t ttl;
	uint8_t protocol;
	uint16_t check;
	uint32_t saddr;
	uint32_t daddr;
};

struct __attribute__((packed)) bpfctl_ip6hdr {
	uint32_t ver_tc_flow;
	uint16_t payload_len;
	uint8_t nexthdr;
	uint8_t hop_limit;
	uint8_t saddr[16];
	uint8_t daddr[16];
};

struct __attribute__((packed)) bpfctl_udphdr {
	uint16_t source;
	uint16_t dest;
	uint16_t len;
	uint16_t check;
};

struct __attribute__((packed)) bpfctl_tcphdr {
	uint16_t source;
	uint16_t dest;
	uint32_t seq;
	uint32_t ack_seq;
	uint8_t doff_res; /* data offset in 32-bit words << 4 */
	uint8_t flags;
	uint16_t window;
	uint16_t check;
	uint16_t urg_ptr;
};

_Static_assert(sizeof(struct bpfctl_ethhdr) == 14 && sizeof(struct bpfctl_vlanhdr) == 4 && sizeof(struct bpfctl_iphdr) == 20 &&
		       sizeof(struct bpfctl_ip6hdr) == 40 && sizeof(struct bpfctl_udphdr) == 8 && sizeof(struct bpfctl_tcphdr) == 20,
	       "wire header sizes");

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
static inline uint16_t bpfctl_ntohs(uint16_t v) { return __builtin_bswap16(v); }
static inline uint32_t bpfctl_ntohl(uint32_t v) { return __builtin_bswap32(v); }
#else
static inline uint16_t bpfctl_ntohs(uint16_t v) { return v; }
static inline uint32_t bpfctl_ntohl(uint32_t v) { return v; }
#endif
#define bpfctl_htons bpfctl_ntohs
#define bpfctl_htonl bpfctl_ntohl

static inline uint16_t bpfctl__rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static inline uint32_t bpfctl__rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static inline void bpfctl__wr16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

/* The Ethernet header, or NULL when the frame is shorter. */
static inline struct bpfctl_ethhdr *bpfctl_eth(uint8_t *data, uint32_t len)
{
	return len >= sizeof(struct bpfctl_ethhdr) ? (struct bpfctl_ethhdr *)data : NULL;
}

/* The one VLAN tag after the MAC addresses, or NULL when the frame has none. */
static inline struct bpfctl_vlanhdr *bpfctl_vlan(uint8_t *data, uint32_t len)
{
	if (len < sizeof(struct bpfctl_ethhdr) + sizeof(struct bpfctl_vlanhdr))
		return NULL;
	uint16_t t = bpfctl_ntohs(bpfctl__rd16(data + 12));

	return t == BPFCTL_ETH_P_8021Q || t == BPFCTL_ETH_P_8021AD ? (struct bpfctl_vlanhdr *)(data + 14) : NULL;
}

/*
 * Offset of the L3 header (14, or 18 behind a VLAN tag) and its ethertype in host order in
 * *type; -1 when the frame is too short for its Ethernet (and tag) header.
 */
static inline int bpfctl_l3_off(const uint8_t *data, uint32_t len, uint16_t *type)
{
	if (len < 14)
		return -1;
	uint16_t t = bpfctl_ntohs(bpfctl__rd16(data + 12));

	if (t == BPFCTL_ETH_P_8021Q || t == BPFCTL_ETH_P_8021AD) {
		if (len < 18)
			return -1;
		*type = bpfctl_ntohs(bpfctl__rd16(data + 16));
		return 18;
	}
	*type = t;
	return 14;
}

/*
 * The IPv4 header, or NULL: not IPv4, version != 4, header length < 20 or past the frame, total
 * length shorter than the header or longer than the frame (truncated).
 */
static inline struct bpfctl_iphdr *bpfctl_ipv4(uint8_t *data, uint32_t len)
{
	uint16_t type;
	int off = bpfctl_l3_off(data, len, &type);

	if (off < 0 || type != BPFCTL_ETH_P_IP || len - (uint32_t)off < sizeof(struct bpfctl_iphdr))
		return NULL;
	struct bpfctl_iphdr *ip = (struct bpfctl_iphdr *)(data + off);
	uint32_t hl = (uint32_t)(ip->ver_ihl & 0x0f) * 4, tot = bpfctl_ntohs(ip->tot_len);

	if ((ip->ver_ihl >> 4) != 4 || hl < 20 || tot < hl || tot > len - (uint32_t)off)
		return NULL;
	return ip;
}

/* Header length of a valid IPv4 header in bytes. */
static inline uint32_t bpfctl_ipv4_hlen(const struct bpfctl_iphdr *ip) { return (uint32_t)(ip->ver_ihl & 0x0f) * 4; }

/* 1 for a fragment other than the first (no L4 header in it). */
static inline int bpfctl_ipv4_later_fragment(const struct bpfctl_iphdr *ip) { return (bpfctl_ntohs(ip->frag_off) & 0x1fff) != 0; }

/* 1 for any fragment (more fragments set, or an offset). */
static inline int bpfctl_ipv4_is_fragment(const struct bpfctl_iphdr *ip) { return (bpfctl_ntohs(ip->frag_off) & 0x3fff) != 0; }

/* The IPv6 header, or NULL: not IPv6, version != 6, shorter than 40 bytes, payload past the frame. */
static inline struct bpfctl_ip6hdr *bpfctl_ipv6(uint8_t *data, uint32_t len)
{
	uint16_t type;
	int off = bpfctl_l3_off(data, len, &type);

	if (off < 0 || type != BPFCTL_ETH_P_IPV6 || len - (uint32_t)off < sizeof(struct bpfctl_ip6hdr))
		return NULL;
	struct bpfctl_ip6hdr *ip6 = (struct bpfctl_ip6hdr *)(data + off);

	if ((data[off] >> 4) != 6 || (uint32_t)bpfctl_ntohs(ip6->payload_len) > len - (uint32_t)off - 40)
		return NULL;
	return ip6;
}

/*
 * Walks to the L4 header: its offset, protocol and the bytes from there to the end of the IP
 * packet; *frag = 1 when the packet is a fragment (IPv4 MF or offset, an IPv6 fragment header).
 * -1 when there is no L4 header to find: not IP, malformed, or a fragment other than the first.
 */
static inline int bpfctl__l4_walk(uint8_t *data, uint32_t len, uint8_t *proto, uint32_t *room, int *frag)
{
	struct bpfctl_iphdr *ip = bpfctl_ipv4(data, len);

	*frag = 0;
	if (ip) {
		*frag = bpfctl_ipv4_is_fragment(ip);
		if (bpfctl_ipv4_later_fragment(ip))
			return -1;
		uint32_t off = (uint32_t)((uint8_t *)ip - data), hl = bpfctl_ipv4_hlen(ip);

		*proto = ip->protocol;
		*room = bpfctl_ntohs(ip->tot_len) - hl;
		return (int)(off + hl);
	}
	struct bpfctl_ip6hdr *ip6 = bpfctl_ipv6(data, len);

	if (!ip6)
		return -1;
	uint32_t off = (uint32_t)((uint8_t *)ip6 - data) + 40;
	uint32_t end = off + bpfctl_ntohs(ip6->payload_len);
	uint8_t nh = ip6->nexthdr;

	for (int i = 0; i < 8; i++) {
		uint32_t hl;

		switch (nh) {
		case 0:  /* hop-by-hop */
		case 43: /* routing */
		case 60: /* destination options */
			if (end - off < 8)
				return -1;
			hl = ((uint32_t)data[off + 1] + 1) * 8;
			break;
		case 44: /* fragment */
			if (end - off < 8)
				return -1;
			*frag = 1;
			if (bpfctl_ntohs(bpfctl__rd16(data + off + 2)) & 0xfff8)
				return -1;
			hl = 8;
			break;
		case 51: /* AH */
			if (end - off < 8)
				return -1;
			hl = ((uint32_t)data[off + 1] + 2) * 4;
			break;
		default:
			*proto = nh;
			*room = end - off;
			return (int)off;
		}
		if (hl > end - off)
			return -1;
		nh = data[off];
		off += hl;
	}
	return -1;
}

/*
 * Where the L4 header starts: its offset in the frame, its protocol in *proto and the bytes from
 * there to the end of the IP packet in *room. Walks IPv6 extension headers (hop-by-hop, routing,
 * destination options, fragment, AH; at most 8). Returns -1 when there is no L4 header to find:
 * not IP, malformed, or a fragment other than the first.
 */
static inline int bpfctl_l4_off(uint8_t *data, uint32_t len, uint8_t *proto, uint32_t *room)
{
	int frag;

	return bpfctl__l4_walk(data, len, proto, room, &frag);
}

/* The UDP header, or NULL (not UDP, no L4 header, fewer than 8 bytes of it in the packet). */
static inline struct bpfctl_udphdr *bpfctl_udp(uint8_t *data, uint32_t len)
{
	uint8_t proto;
	uint32_t room;
	int off = bpfctl_l4_off(data, len, &proto, &room);

	if (off < 0 || proto != BPFCTL_IPPROTO_UDP || room < sizeof(struct bpfctl_udphdr))
		return NULL;
	return (struct bpfctl_udphdr *)(data + off);
}

/* The TCP header, or NULL (not TCP, no L4 header, data offset < 5 or past the packet). */
static inline struct bpfctl_tcphdr *bpfctl_tcp(uint8_t *data, uint32_t len)
{
	uint8_t proto;
	uint32_t room;
	int off = bpfctl_l4_off(data, len, &proto, &room);

	if (off < 0 || proto != BPFCTL_IPPROTO_TCP || room < sizeof(struct bpfctl_tcphdr))
		return NULL;
	struct bpfctl_tcphdr *th = (struct bpfctl_tcphdr *)(data + off);
	uint32_t hl = (uint32_t)(th->doff_res >> 4) * 4;

	return hl >= 20 && hl <= room ? th : NULL;
}

/* --- checksums --- */

/* Ones' complement sum of `len` bytes added to `sum` (not folded; an odd last byte is padded). */
static inline uint32_t bpfctl_csum_add(const void *buf, size_t len, uint32_t sum)
{
	const uint8_t *p = (const uint8_t *)buf;
	uint64_t s = sum;

	for (; len >= 2; p += 2, len -= 2)
		s += bpfctl__rd16(p);
	if (len) {
		uint8_t pad[2] = { p[0], 0 };

		s += bpfctl__rd16(pad);
	}
	while (s >> 32)
		s = (s & 0xffffffffu) + (s >> 32);
	return (uint32_t)s;
}

/* Fold a 32-bit sum to 16 bits and complement it: the value to store. */
static inline uint16_t bpfctl_csum_fold(uint32_t sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Recompute an IPv4 header's checksum in place (the header must be valid: see bpfctl_ipv4). */
static inline void bpfctl_ipv4_csum_set(struct bpfctl_iphdr *ip)
{
	ip->check = 0;
	ip->check = bpfctl_csum_fold(bpfctl_csum_add(ip, bpfctl_ipv4_hlen(ip), 0));
}

/* 1 when an IPv4 header's checksum is right. */
static inline int bpfctl_ipv4_csum_ok(const struct bpfctl_iphdr *ip)
{
	return bpfctl_csum_fold(bpfctl_csum_add(ip, bpfctl_ipv4_hlen(ip), 0)) == 0;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for the checksum stored at `check`. */
static inline void bpfctl_csum_replace2(void *check, uint16_t from, uint16_t to)
{
	uint8_t *c = (uint8_t *)check;
	uint32_t s = (uint16_t)~bpfctl__rd16(c);

	s += (uint16_t)~from;
	s += to;
	bpfctl__wr16(c, bpfctl_csum_fold(s));
}

static inline void bpfctl_csum_replace4(void *check, uint32_t from, uint32_t to)
{
	uint8_t *c = (uint8_t *)check;
	uint32_t s = (uint16_t)~bpfctl__rd16(c);

	/* a 32-bit field is two 16-bit words; which half is which does not change the sum */
	s += (uint16_t)~(uint16_t)from + (uint16_t)~(uint16_t)(from >> 16);
	s += (uint16_t)to + (uint16_t)(to >> 16);
	bpfctl__wr16(c, bpfctl_csum_fold(s));
}

/*
 * UDP: the same updates, except that a checksum of 0 means "none" and stays 0, and a computed 0
 * is sent as 0xffff (RFC 768).
 */
static inline void bpfctl_udp_csum_replace2(struct bpfctl_udphdr *uh, uint16_t from, uint16_t to)
{
	if (!uh->check)
		return;
	bpfctl_csum_replace2(&uh->check, from, to);
	if (!uh->check)
		uh->check = 0xffff;
}

static inline void bpfctl_udp_csum_replace4(struct bpfctl_udphdr *uh, uint32_t from, uint32_t to)
{
	if (!uh->check)
		return;
	bpfctl_csum_replace4(&uh->check, from, to);
	if (!uh->check)
		uh->check = 0xffff;
}

/* L4 (UDP/TCP) checksum over the IPv4 pseudo-header and `l4len` bytes at `l4`, check field included. */
static inline uint16_t bpfctl_ipv4_l4_csum(const struct bpfctl_iphdr *ip, const void *l4, uint32_t l4len)
{
	uint8_t ph[4] = { 0, ip->protocol, (uint8_t)(l4len >> 8), (uint8_t)l4len };
	uint32_t s = bpfctl_csum_add(&ip->saddr, 8, 0);

	s = bpfctl_csum_add(ph, 4, s);
	return bpfctl_csum_fold(bpfctl_csum_add(l4, l4len, s));
}

/* The same over the IPv6 pseudo-header. */
static inline uint16_t bpfctl_ipv6_l4_csum(const struct bpfctl_ip6hdr *ip6, uint8_t proto, const void *l4, uint32_t l4len)
{
	uint8_t ph[8] = { (uint8_t)(l4len >> 24), (uint8_t)(l4len >> 16), (uint8_t)(l4len >> 8), (uint8_t)l4len, 0, 0, 0, proto };
	uint32_t s = bpfctl_csum_add(ip6->saddr, 32, 0);

	s = bpfctl_csum_add(ph, 8, s);
	return bpfctl_csum_fold(bpfctl_csum_add(l4, l4len, s));
}

/* Decrement the TTL, checksum kept right. Returns the new TTL. */
static inline uint8_t bpfctl_ipv4_dec_ttl(struct bpfctl_iphdr *ip)
{
	/* TTL is the high byte of the 16-bit word it shares with the protocol */
	uint8_t w[2] = { ip->ttl, ip->protocol };
	uint16_t from = bpfctl__rd16(w);

	w[0]--;
	bpfctl_csum_replace2(&ip->check, from, bpfctl__rd16(w));
	ip->ttl = w[0];
	return ip->ttl;
}

/* --- flow hash --- */

static inline uint32_t bpfctl__mix32(uint32_t h)
{
	/* murmur3's finaliser: every input bit reaches every output bit */
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/*
 * Symmetric flow hash of a frame: the same for both directions of a flow (addresses and ports
 * are put in a canonical order first), so both directions meet the same function instance.
 * IPv4/IPv6 addresses, protocol, and the TCP/UDP/SCTP ports. Fragments hash on addresses alone:
 * later fragments have no ports, and every fragment of a packet must go the same way. 0 for
 * frames that are not IP.
 */
static inline uint16_t bpfctl_flow_hash(uint8_t *data, uint32_t len)
{
	uint32_t a[4] = { 0 }, b[4] = { 0 }, h, room = 0;
	uint16_t sp = 0, dp = 0;
	uint8_t proto = 0;
	int words, frag;
	struct bpfctl_iphdr *ip = bpfctl_ipv4(data, len);
	struct bpfctl_ip6hdr *ip6 = ip ? NULL : bpfctl_ipv6(data, len);

	if (ip) {
		a[0] = ip->saddr;
		b[0] = ip->daddr;
		words = 1;
	} else if (ip6) {
		memcpy(a, ip6->saddr, 16);
		memcpy(b, ip6->daddr, 16);
		words = 4;
	} else {
		return 0;
	}
	int off = bpfctl__l4_walk(data, len, &proto, &room, &frag);

	if (frag)
		proto = 44; /* one value for every fragment, first or not */
	else if (off >= 0 && (proto == BPFCTL_IPPROTO_TCP || proto == BPFCTL_IPPROTO_UDP || proto == 132 /* SCTP */) && room >= 4) {
		sp = bpfctl__rd16(data + off);
		dp = bpfctl__rd16(data + off + 2);
	}
	int order = memcmp(a, b, (size_t)words * 4);

	if (order > 0 || (order == 0 && sp > dp)) {
		uint32_t t[4];
		uint16_t tp = sp;

		memcpy(t, a, sizeof(t));
		memcpy(a, b, sizeof(a));
		memcpy(b, t, sizeof(b));
		sp = dp;
		dp = tp;
	}
	h = 0x9e3779b9u ^ proto;
	for (int i = 0; i < words; i++) {
		h = bpfctl__mix32(h ^ a[i]);
		h = bpfctl__mix32(h ^ b[i]);
	}
	h = bpfctl__mix32(h ^ ((uint32_t)sp << 16 | dp));
	return (uint16_t)(h ^ (h >> 16));
}

#endif /* BPFCTL_PACKET_HDR_H */
