/*
 * Exercises the frame helpers of bpf/include/bpfctl/packet_hdr.h and packet.h's adjust_head/tail.
 * Built by test/unit/packet-sdk.test.ts with -fsanitize=address,undefined: every frame handed to
 * a parser sits at the very end of its own allocation, so one byte read past the frame aborts.
 *
 *   packet_sdk_test parsers     crafted frames: every truncation of valid ones, non-IP, VLAN,
 *                               fragments, bad IHL/version/lengths, TCP data offsets, IPv6
 *                               extension headers; then random frames and mutations of valid ones
 *   packet_sdk_test checksums   full IPv4 header checksum vs a reference; RFC 1624 updates of 16-
 *                               and 32-bit fields (IP header, UDP/TCP pseudo-header and ports) vs
 *                               a full recomputation on random inputs; UDP 0 stays 0
 *   packet_sdk_test adjust      adjust_head/adjust_tail bounds
 *   packet_sdk_test hash        the flow hash is symmetric and spreads flows
 *
 * Exit 0 and a JSON line on success; a failure names the check on stderr.
 */
#define _GNU_SOURCE
#include <bpfctl/packet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "packet_sdk_test:%d: ", __LINE__); \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
			exit(1);                                           \
		}                                                          \
	} while (0)

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	/* xorshift64*: reproducible runs */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545f4914f6cdd1dull) >> 32);
}

/* --- building frames --- */

struct frame {
	uint8_t b[2048];
	uint32_t len;
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Reference RFC 1071 checksum, byte by byte in network order (independent of the header's code). */
static uint16_t ref_csum(const uint8_t *p, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

enum { L4_NONE, L4_UDP, L4_TCP };

/*
 * Ethernet [+ VLAN] + IPv4 (ihl words) or IPv6 [+ ext headers] + UDP/TCP + payload, checksums
 * right. frag: IPv4 frag_off field as given; for IPv6, non-zero adds a fragment header with that
 * offset field.
 */
static void build(struct frame *f, int vlan, int v6, int ihl, int l4, uint32_t payload, uint16_t frag, int v6ext)
{
	uint8_t *p = f->b;
	uint32_t off = 12;

	memset(f->b, 0, sizeof(f->b));
	for (int i = 0; i < 12; i++)
		p[i] = (uint8_t)(0x10 + i);
	if (vlan) {
		put16(p + off, 0x8100);
		put16(p + off + 2, 100);
		off += 4;
	}
	put16(p + off, v6 ? 0x86dd : 0x0800);
	off += 2;
	uint32_t l3 = off, l4len = (l4 == L4_UDP ? 8 : l4 == L4_TCP ? 20 : 0) + payload;
	uint8_t proto = l4 == L4_UDP ? 17 : l4 == L4_TCP ? 6 : 59;
	uint32_t l4off;

	if (!v6) {
		uint32_t hl = (uint32_t)ihl * 4;

		p[l3] = (uint8_t)(0x40 | ihl);
		put16(p + l3 + 2, (uint16_t)(hl + l4len));
		put16(p + l3 + 4, 0x1234);
		put16(p + l3 + 6, frag);
		p[l3 + 8] = 64;
		p[l3 + 9] = l4 ? proto : 1;
		for (int i = 0; i < 8; i++)
			p[l3 + 12 + i] = (uint8_t)rnd();
		for (uint32_t i = 20; i < hl; i++)
			p[l3 + i] = 1; /* NOP options */
		l4off = l3 + hl;
	} else {
		uint32_t ext = 0;

		p[l3] = 0x60;
		p[l3 + 7] = 64;
		for (int i = 0; i < 32; i++)
			p[l3 + 8 + i] = (uint8_t)rnd();
		uint8_t *nh = &p[l3 + 6];

		if (v6ext) { /* hop-by-hop, 8 bytes */
			*nh = 0;
			nh = &p[l3 + 40 + ext];
			p[l3 + 40 + ext + 1] = 0;
			ext += 8;
		}
		if (frag) { /* fragment header */
			*nh = 44;
			nh = &p[l3 + 40 + ext];
			put16(p + l3 + 40 + ext + 2, frag);
			ext += 8;
		}
		*nh = proto;
		put16(p + l3 + 4, (uint16_t)(ext + l4len));
		l4off = l3 + 40 + ext;
	}
	for (uint32_t i = 0; i < payload; i++)
		p[l4off + (l4len - payload) + i] = (uint8_t)rnd();
	if (l4 == L4_UDP) {
		put16(p + l4off, (uint16_t)rnd());
		put16(p + l4off + 2, (uint16_t)rnd());
		put16(p + l4off + 4, (uint16_t)l4len);
	} else if (l4 == L4_TCP) {
		put16(p + l4off, (uint16_t)rnd());
		put16(p + l4off + 2, (uint16_t)rnd());
		p[l4off + 12] = 5 << 4;
		p[l4off + 13] = 0x10;
	}
	f->len = l4off + l4len;
	/* checksums */
	if (!v6) {
		uint32_t hl = (uint32_t)ihl * 4;

		put16(p + l3 + 10, 0);
		put16(p + l3 + 10, ref_csum(p + l3, hl, 0));
		if (l4) {
			uint8_t ph[12];

			memcpy(ph, p + l3 + 12, 8);
			ph[8] = 0;
			ph[9] = proto;
			put16(ph + 10, (uint16_t)l4len);
			uint32_t s = 0;

			for (int i = 0; i < 12; i += 2)
				s += (uint32_t)ph[i] << 8 | ph[i + 1];
			uint8_t *ck = p + l4off + (l4 == L4_UDP ? 6 : 16);
			uint16_t c = ref_csum(p + l4off, l4len, s);

			put16(ck, l4 == L4_UDP && c == 0 ? 0xffff : c);
		}
	}
}

/* The frame copied to the end of an exact-size allocation (ASan catches any read past it). */
static uint8_t *tight(const uint8_t *src, uint32_t len)
{
	uint8_t *m = (uint8_t *)malloc(len ? len : 1);

	memcpy(m, src, len);
	return m;
}

#define INSIDE(ptr, size, data, len) ((ptr) == NULL || ((uint8_t *)(ptr) >= (data) && (uint8_t *)(ptr) + (size) <= (data) + (len)))

/* Every parser on one frame: nothing returned points outside it. Returns a bitmask of what was found. */
static unsigned parse_all(const uint8_t *src, uint32_t len)
{
	uint8_t *d = tight(src, len);
	unsigned found = 0;
	struct bpfctl_ethhdr *eth = bpfctl_eth(d, len);
	struct bpfctl_vlanhdr *vl = bpfctl_vlan(d, len);
	struct bpfctl_iphdr *ip = bpfctl_ipv4(d, len);
	struct bpfctl_ip6hdr *ip6 = bpfctl_ipv6(d, len);
	struct bpfctl_udphdr *uh = bpfctl_udp(d, len);
	struct bpfctl_tcphdr *th = bpfctl_tcp(d, len);

	CHECK(INSIDE(eth, 14, d, len) && INSIDE(vl, 4, d, len) && INSIDE(ip, 20, d, len) && INSIDE(ip6, 40, d, len) &&
		      INSIDE(uh, 8, d, len) && INSIDE(th, 20, d, len),
	      "a parser returned a header past the end of a %u-byte frame", len);
	if (ip)
		CHECK((uint8_t *)ip + bpfctl_ipv4_hlen(ip) <= d + len, "IPv4 options past the frame");
	if (th)
		CHECK((uint8_t *)th + (th->doff_res >> 4) * 4 <= d + len, "TCP options past the frame");
	(void)bpfctl_flow_hash(d, len);
	found |= eth ? 1 : 0;
	found |= vl ? 2 : 0;
	found |= ip ? 4 : 0;
	found |= ip6 ? 8 : 0;
	found |= uh ? 16 : 0;
	found |= th ? 32 : 0;
	free(d);
	return found;
}

static int parsers(void)
{
	struct frame f;
	unsigned cases = 0;

	/* every truncation of valid frames of each kind: found at full length, never outside */
	struct {
		int vlan, v6, ihl, l4, ext;
		unsigned want;
	} kinds[] = {
		{ 0, 0, 5, L4_UDP, 0, 1 | 4 | 16 }, { 0, 0, 15, L4_TCP, 0, 1 | 4 | 32 }, { 1, 0, 5, L4_UDP, 0, 1 | 2 | 4 | 16 },
		{ 0, 1, 5, L4_UDP, 0, 1 | 8 | 16 }, { 0, 1, 5, L4_TCP, 1, 1 | 8 | 32 }, { 1, 1, 5, L4_TCP, 1, 1 | 2 | 8 | 32 },
	};
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		build(&f, kinds[k].vlan, kinds[k].v6, kinds[k].ihl, kinds[k].l4, 40, 0, kinds[k].ext);
		CHECK(parse_all(f.b, f.len) == kinds[k].want, "kind %zu: found 0x%x, want 0x%x", k, parse_all(f.b, f.len), kinds[k].want);
		for (uint32_t n = 0; n < f.len; n++, cases++) {
			unsigned got = parse_all(f.b, n);

			/* a truncated IP packet is not IP: the length field says more than is there */
			CHECK(!(got & (4 | 8 | 16 | 32)), "kind %zu truncated to %u bytes still parses as IP (0x%x)", k, n, got);
		}
		/* Ethernet padding after the IP packet is not payload, and does not hide it */
		CHECK(parse_all(f.b, f.len + 20) == kinds[k].want, "kind %zu with trailing padding", k);
	}

	/* VLAN: the L3 header is after the tag */
	build(&f, 1, 0, 5, L4_UDP, 8, 0, 0);
	CHECK((uint8_t *)bpfctl_ipv4(f.b, f.len) == f.b + 18 && (uint8_t *)bpfctl_udp(f.b, f.len) == f.b + 38, "VLAN offsets");
	CHECK(bpfctl_ntohs(bpfctl_vlan(f.b, f.len)->tci) == 100, "VLAN tci");

	/* non-IP: ARP */
	build(&f, 0, 0, 5, L4_UDP, 8, 0, 0);
	put16(f.b + 12, 0x0806);
	CHECK(parse_all(f.b, f.len) == 1, "ARP is Ethernet only");
	CHECK(bpfctl_flow_hash(f.b, f.len) == 0, "non-IP hashes to 0");
	/* an 802.1Q frame too short for its tag */
	build(&f, 1, 0, 5, L4_UDP, 8, 0, 0);
	CHECK(parse_all(f.b, 16) == 1 && bpfctl_vlan(f.b, 16) == NULL, "tag cut short");

	/* fragments: first has ports, later ones do not; all hash alike */
	build(&f, 0, 0, 5, L4_UDP, 16, 0x2000 /* MF */, 0);
	CHECK(bpfctl_udp(f.b, f.len) != NULL, "first IPv4 fragment has its UDP header");
	uint16_t h1 = bpfctl_flow_hash(f.b, f.len);

	put16(f.b + 14 + 6, 0x0003); /* offset 24 bytes, last fragment */
	bpfctl_ipv4_csum_set(bpfctl_ipv4(f.b, f.len));
	CHECK(bpfctl_udp(f.b, f.len) == NULL && bpfctl_tcp(f.b, f.len) == NULL && bpfctl_ipv4(f.b, f.len), "later fragment: IP, no L4");
	CHECK(bpfctl_flow_hash(f.b, f.len) == h1, "fragments of one packet hash alike");
	build(&f, 0, 1, 5, L4_UDP, 16, 0x0001 /* M, offset 0 */, 1);
	CHECK(bpfctl_udp(f.b, f.len) != NULL, "first IPv6 fragment (behind hop-by-hop) has its UDP header");
	build(&f, 0, 1, 5, L4_UDP, 16, 0x0008 /* offset 8 */, 0);
	CHECK(bpfctl_udp(f.b, f.len) == NULL && bpfctl_ipv6(f.b, f.len), "later IPv6 fragment: IP, no L4");

	/* broken IPv4 headers */
	build(&f, 0, 0, 5, L4_UDP, 8, 0, 0);
	f.b[14] = 0x44; /* IHL 4 */
	CHECK(parse_all(f.b, f.len) == 1, "IHL < 5 is not IPv4");
	f.b[14] = 0x55; /* version 5 */
	CHECK(parse_all(f.b, f.len) == 1, "version 5 is not IPv4");
	f.b[14] = 0x4f; /* IHL 15: 60 bytes of header, more than there is */
	CHECK(parse_all(f.b, 14 + 40) == 1, "IHL past the frame");
	f.b[14] = 0x45;
	put16(f.b + 16, 19); /* total length shorter than the header */
	CHECK(parse_all(f.b, f.len) == 1, "total length < header");
	put16(f.b + 16, (uint16_t)(f.len - 14 + 1)); /* one byte more than the frame */
	CHECK(parse_all(f.b, f.len) == 1, "total length > frame");
	put16(f.b + 16, 20 + 4); /* UDP header cut by the IP length */
	CHECK(parse_all(f.b, f.len) == (1 | 4), "UDP header past the IP packet's end");

	/* TCP data offsets */
	build(&f, 0, 0, 5, L4_TCP, 0, 0, 0);
	f.b[14 + 20 + 12] = 4 << 4;
	CHECK(bpfctl_tcp(f.b, f.len) == NULL, "TCP doff 4");
	f.b[14 + 20 + 12] = 6 << 4;
	CHECK(bpfctl_tcp(f.b, f.len) == NULL, "TCP doff past the packet");
	f.b[14 + 20 + 12] = 5 << 4;
	CHECK(bpfctl_tcp(f.b, f.len) != NULL, "TCP doff 5");

	/* IPv6: payload length past the frame, version */
	build(&f, 0, 1, 5, L4_UDP, 8, 0, 0);
	CHECK(parse_all(f.b, f.len - 1) == 1, "IPv6 payload past the frame");
	f.b[14] = 0x40;
	CHECK(parse_all(f.b, f.len) == 1, "version 4 in an IPv6 ethertype");

	/* random bytes, and random mutations of valid frames */
	for (int i = 0; i < 200000; i++, cases++) {
		int kind = (int)(rnd() % 6);

		build(&f, kind & 1, kind >= 3, 5 + (int)(rnd() % 3), rnd() % 2 ? L4_UDP : L4_TCP, rnd() % 64, (rnd() % 4) ? 0 : (uint16_t)rnd(),
		      (int)(rnd() % 2));
		uint32_t len = f.len;

		if (i % 4 == 0) {
			len = rnd() % 160;
			for (uint32_t j = 0; j < len; j++)
				f.b[j] = (uint8_t)rnd();
			if (rnd() % 2)
				put16(f.b + 12, rnd() % 2 ? 0x0800 : 0x86dd);
		} else {
			for (int m = 0, nm = 1 + (int)(rnd() % 4); m < nm; m++)
				f.b[rnd() % (len + 8)] = (uint8_t)rnd();
			if (rnd() % 3 == 0)
				len = rnd() % (len + 1);
		}
		parse_all(f.b, len);
	}
	printf("{\"parserCases\":%u}\n", cases);
	return 0;
}

/* --- checksums --- */

static int checksums(void)
{
	struct frame f;
	unsigned n = 0;

	for (int i = 0; i < 100000; i++, n++) {
		int ihl = 5 + (int)(rnd() % 11);

		build(&f, 0, 0, ihl, L4_NONE, 0, 0, 0);
		struct bpfctl_iphdr *ip = bpfctl_ipv4(f.b, f.len);

		CHECK(ip, "IPv4 frame");
		for (int j = 0; j < ihl * 4; j++)
			if (j != 10 && j != 11 && j != 0 && j != 2 && j != 3)
				((uint8_t *)ip)[j] = (uint8_t)rnd();
		bpfctl_ipv4_csum_set(ip);
		{
			uint8_t copy[60];

			memcpy(copy, ip, (size_t)ihl * 4);
			copy[10] = copy[11] = 0;
			uint16_t r = ref_csum(copy, (size_t)ihl * 4, 0);

			CHECK(bpfctl_ntohs(ip->check) == r, "full IPv4 checksum 0x%04x, reference 0x%04x", bpfctl_ntohs(ip->check), r);
		}
		CHECK(bpfctl_ipv4_csum_ok(ip), "a header with its checksum set verifies");

		/* incremental: a random 16-bit word (not the checksum) and a 32-bit address */
		int w = (int)(rnd() % ((unsigned)ihl * 2));

		if (w == 0 || w == 5)
			w = 4; /* not the header length (it says how much to sum) nor the checksum itself */
		uint16_t from, to = (uint16_t)rnd();

		memcpy(&from, (uint8_t *)ip + w * 2, 2);
		if (rnd() % 8 == 0)
			to = from; /* no change */
		if (rnd() % 8 == 0)
			to = (uint16_t)~from;
		memcpy((uint8_t *)ip + w * 2, &to, 2);
		bpfctl_csum_replace2(&ip->check, from, to);
		uint16_t inc = ip->check;

		bpfctl_ipv4_csum_set(ip);
		CHECK(inc == ip->check, "replace2 at word %d: 0x%04x, full 0x%04x", w, inc, ip->check);
		uint32_t a_from = ip->saddr, a_to = rnd();

		ip->saddr = a_to;
		bpfctl_csum_replace4(&ip->check, a_from, a_to);
		inc = ip->check;
		bpfctl_ipv4_csum_set(ip);
		CHECK(inc == ip->check, "replace4 of saddr: 0x%04x, full 0x%04x", inc, ip->check);
		uint8_t ttl = ip->ttl;

		if (ttl) {
			bpfctl_ipv4_dec_ttl(ip);
			inc = ip->check;
			bpfctl_ipv4_csum_set(ip);
			CHECK(ip->ttl == ttl - 1 && inc == ip->check, "TTL decrement keeps the checksum");
		}
	}

	/* L4: NAT-style rewrites of the source address (pseudo-header) and port, vs recomputation */
	unsigned udp_zero = 0;

	for (int i = 0; i < 100000; i++, n++) {
		int tcp = (int)(rnd() % 2);

		build(&f, (int)(rnd() % 2), 0, 5, tcp ? L4_TCP : L4_UDP, rnd() % 200, 0, 0);
		struct bpfctl_iphdr *ip = bpfctl_ipv4(f.b, f.len);
		uint32_t l4len = bpfctl_ntohs(ip->tot_len) - 20;
		uint8_t *l4 = (uint8_t *)ip + 20;
		struct bpfctl_udphdr *uh = tcp ? NULL : bpfctl_udp(f.b, f.len);
		struct bpfctl_tcphdr *th = tcp ? bpfctl_tcp(f.b, f.len) : NULL;

		CHECK(uh || th, "L4 header");
		CHECK(bpfctl_ipv4_l4_csum(ip, l4, l4len) == 0 || (uh && uh->check == 0), "a built packet verifies");
		int none = uh && rnd() % 10 == 0;

		if (none)
			uh->check = 0;
		uint32_t a_from = ip->saddr, a_to = rnd();
		uint16_t p_from = uh ? uh->source : th->source, p_to = (uint16_t)rnd();

		ip->saddr = a_to;
		bpfctl_csum_replace4(&ip->check, a_from, a_to);
		if (uh) {
			uh->source = p_to;
			bpfctl_udp_csum_replace4(uh, a_from, a_to);
			bpfctl_udp_csum_replace2(uh, p_from, p_to);
		} else {
			th->source = p_to;
			bpfctl_csum_replace4(&th->check, a_from, a_to);
			bpfctl_csum_replace2(&th->check, p_from, p_to);
		}
		CHECK(bpfctl_ipv4_csum_ok(ip), "IP checksum after the rewrite");
		if (none) {
			CHECK(uh->check == 0, "UDP checksum 0 (none) stays 0");
			udp_zero++;
			continue;
		}
		uint16_t inc = uh ? uh->check : th->check;

		if (uh)
			uh->check = 0;
		else
			th->check = 0;
		uint16_t full = bpfctl_ipv4_l4_csum(ip, l4, l4len);

		if (uh && full == 0)
			full = 0xffff;
		CHECK(inc == full, "%s incremental 0x%04x, full 0x%04x", uh ? "UDP" : "TCP", inc, full);
		CHECK(!uh || inc != 0, "UDP never ends with a computed 0");
	}

	/* IPv6 L4 checksum against the reference over the pseudo-header */
	for (int i = 0; i < 10000; i++, n++) {
		build(&f, 0, 1, 5, L4_UDP, rnd() % 100, 0, 0);
		struct bpfctl_ip6hdr *ip6 = bpfctl_ipv6(f.b, f.len);
		struct bpfctl_udphdr *uh = bpfctl_udp(f.b, f.len);
		uint32_t l4len = bpfctl_ntohs(ip6->payload_len);
		uint8_t ph[40 + 2048];

		memcpy(ph, ip6->saddr, 32);
		memset(ph + 32, 0, 8);
		put16(ph + 34, (uint16_t)l4len);
		ph[39] = 17;
		memcpy(ph + 40, uh, l4len);
		CHECK(bpfctl_ntohs(bpfctl_ipv6_l4_csum(ip6, 17, uh, l4len)) == ref_csum(ph, 40 + l4len, 0), "IPv6 L4 checksum");
	}
	printf("{\"checksumCases\":%u,\"udpNone\":%u}\n", n, udp_zero);
	return 0;
}

/* --- adjust_head / adjust_tail --- */

static int adjust(void)
{
	static uint8_t buf[2048];
	struct bpfctl_pkt p;

	memset(&p, 0, sizeof(p));
	p.buf = buf;
	p.buf_size = sizeof(buf);
	p.data = buf + 256;
	p.len = 100;
	memset(p.data, 0xab, p.len);

	CHECK(bpfctl_pkt_adjust_head(&p, -257) == -EINVAL && p.data == buf + 256 && p.len == 100, "cannot push past the buffer start");
	CHECK(bpfctl_pkt_adjust_head(&p, -256) == 0 && p.data == buf && p.len == 356, "push the whole headroom");
	CHECK(bpfctl_pkt_adjust_head(&p, 256) == 0 && p.data == buf + 256 && p.len == 100, "and strip it again");
	CHECK(bpfctl_pkt_adjust_head(&p, 87) == -EINVAL && p.len == 100, "cannot strip below an Ethernet header");
	CHECK(bpfctl_pkt_adjust_head(&p, 86) == 0 && p.len == 14 && p.data == buf + 342, "strip down to 14 bytes");
	CHECK(bpfctl_pkt_adjust_head(&p, 1) == -EINVAL, "13 bytes is too short");
	CHECK(bpfctl_pkt_adjust_head(&p, -86) == 0 && p.len == 100, "back");
	CHECK(bpfctl_pkt_adjust_head(&p, 0) == 0 && p.len == 100, "0 is a no-op");

	CHECK(bpfctl_pkt_adjust_tail(&p, -87) == -EINVAL && p.len == 100, "tail: not below 14");
	CHECK(bpfctl_pkt_adjust_tail(&p, -86) == 0 && p.len == 14, "tail: shrink to 14");
	CHECK(bpfctl_pkt_adjust_tail(&p, 2048 - 256 - 14 + 1) == -EINVAL && p.len == 14, "tail: not past the buffer end");
	CHECK(bpfctl_pkt_adjust_tail(&p, 2048 - 256 - 14) == 0 && p.len == 2048 - 256, "tail: grow to the buffer end");
	for (uint32_t i = 14; i < p.len; i++)
		CHECK(p.data[i] == 0, "grown bytes are zeroed (byte %u)", i);
	printf("{\"ok\":true}\n");
	return 0;
}

/* --- flow hash --- */

static int hash(void)
{
	struct frame f, g;
	unsigned buckets[16] = { 0 }, same = 0;
	const int N = 20000;

	for (int i = 0; i < N; i++) {
		int v6 = i % 2, tcp = (i / 2) % 2;

		build(&f, i % 3 == 0, v6, 5, tcp ? L4_TCP : L4_UDP, 8, 0, 0);
		/* the reverse direction: addresses and ports swapped */
		g = f;
		uint32_t l3 = i % 3 == 0 ? 18 : 14, l4 = l3 + (v6 ? 40 : 20), as = v6 ? 16 : 4, ao = l3 + (v6 ? 8 : 12);

		memcpy(g.b + ao, f.b + ao + as, as);
		memcpy(g.b + ao + as, f.b + ao, as);
		memcpy(g.b + l4, f.b + l4 + 2, 2);
		memcpy(g.b + l4 + 2, f.b + l4, 2);
		uint16_t a = bpfctl_flow_hash(f.b, f.len), b = bpfctl_flow_hash(g.b, g.len);

		CHECK(a == b, "flow %d: hash 0x%04x one way, 0x%04x the other", i, a, b);
		buckets[a % 16]++;
		/* swapping only the ports is another flow */
		memcpy(g.b, f.b, f.len);
		memcpy(g.b + l4, f.b + l4 + 2, 2);
		memcpy(g.b + l4 + 2, f.b + l4, 2);
		same += bpfctl_flow_hash(g.b, g.len) == a && memcmp(f.b + l4, f.b + l4 + 2, 2) != 0;
	}
	for (int i = 0; i < 16; i++)
		CHECK(buckets[i] > N / 16 * 8 / 10 && buckets[i] < N / 16 * 12 / 10, "bucket %d has %u of %d flows", i, buckets[i], N);
	CHECK(same < N / 100, "%u flows hash like their port-swapped twin", same);
	printf("{\"flows\":%d,\"minBucket\":%u}\n", N, buckets[0]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "parsers"))
		return parsers();
	if (argc == 2 && !strcmp(argv[1], "checksums"))
		return checksums();
	if (argc == 2 && !strcmp(argv[1], "adjust"))
		return adjust();
	if (argc == 2 && !strcmp(argv[1], "hash"))
		return hash();
	fprintf(stderr, "usage: %s parsers | checksums | adjust | hash\n", argv[0]);
	return 2;
}
