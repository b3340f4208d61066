/*
 * snat: source NAT for UDP and TCP over IPv4.
 *
 *   env SNAT_ADDR   the address flows leave with (e.g. 198.18.9.1)
 *       SNAT_PORTS  the source ports they get, a range like 20000-29999
 *       SNAT_SRC_MAC, SNAT_DST_MAC
 *                   optional: outbound frames leave with these MACs (the egress port's own,
 *                   the next hop's), as a router sends them on
 *
 * Outbound: a frame's (protocol, source, destination) 5-tuple is looked up in a connection
 * table; a new flow gets the next free port of the range. Its source address and port are
 * rewritten to SNAT_ADDR and the mapped port. Inbound: a frame arriving on another port than its
 * flow's first frame, addressed to SNAT_ADDR and a mapped port, from the flow's remote end, is
 * translated back. Checksums are updated incrementally (RFC 1624): the IPv4 header's for the
 * address, the UDP/TCP one for the address (pseudo-header) and the port; a UDP checksum of 0
 * (none) stays 0. TTL is decremented; frames with TTL <= 1 are dropped, as are frames that are
 * not UDP/TCP over IPv4 (ICMP, fragments after the first, IPv6) and inbound frames without a
 * mapping.
 *
 * A mapping unused for IDLE_SECS may be given to a new flow. The table lives in this instance:
 * run the function with one instance (both directions of a flow must meet the same table, and
 * after translation the two directions no longer share a flow hash).
 */
#include <arpa/inet.h>
#include <bpfctl/packet.h>
#include <time.h>

#define BUCKETS 65536u /* connection table hash buckets (power of two) */
#define IDLE_SECS 120

struct flow { /* original 5-tuple, network byte order */
	uint32_t saddr, daddr;
	uint16_t sport, dport;
	uint8_t proto;
};

/* Outbound MAC rewrite (SNAT_SRC_MAC / SNAT_DST_MAC); has_* is 0 when not configured. */
static uint8_t out_src_mac[6], out_dst_mac[6];
static int has_src_mac, has_dst_mac;

struct mapping {
	struct flow orig;
	uint32_t next; /* next mapping in the bucket, +1 (0: none) */
	time_t last;
	uint8_t inside; /* port the flow's first frame arrived on */
	uint8_t used;
};

static uint32_t snat_addr; /* network byte order */
static uint32_t port_lo, nports, next_free;
static struct mapping *by_port; /* by_port[i] is translated port port_lo + i */
static uint32_t *bucket;        /* mapping index + 1 (0: empty) */
static time_t now;

static uint32_t flow_bucket(const struct flow *f)
{
	uint32_t h = f->saddr * 0x9e3779b1u ^ f->daddr * 0x85ebca6bu ^ ((uint32_t)f->sport << 16 | f->dport) * 0xc2b2ae35u ^ f->proto;

	return (h ^ h >> 15) & (BUCKETS - 1);
}

static int same_flow(const struct flow *a, const struct flow *b)
{
	return a->saddr == b->saddr && a->daddr == b->daddr && a->sport == b->sport && a->dport == b->dport && a->proto == b->proto;
}

static void unlink_mapping(uint32_t idx)
{
	uint32_t *at = &bucket[flow_bucket(&by_port[idx].orig)];

	while (*at && *at != idx + 1)
		at = &by_port[*at - 1].next;
	if (*at)
		*at = by_port[idx].next;
	by_port[idx].used = 0;
}

/* The mapping of an outbound flow, made on its first frame; NULL when every port is busy. */
static struct mapping *outbound(const struct flow *f, uint8_t port, uint32_t *idx)
{
	uint32_t b = flow_bucket(f);

	for (uint32_t i = bucket[b]; i; i = by_port[i - 1].next) {
		if (same_flow(&by_port[i - 1].orig, f)) {
			*idx = i - 1;
			return &by_port[i - 1];
		}
	}
	/* next-fit over the range: a free port, or one idle long enough to take over */
	for (uint32_t tries = 0; tries < nports; tries++) {
		uint32_t i = next_free;

		next_free = (next_free + 1) % nports;
		if (by_port[i].used && now - by_port[i].last < IDLE_SECS)
			continue;
		if (by_port[i].used)
			unlink_mapping(i);
		struct mapping *m = &by_port[i];

		m->orig = *f;
		m->inside = port;
		m->used = 1;
		m->next = bucket[b];
		bucket[b] = i + 1;
		*idx = i;
		return m;
	}
	return NULL;
}

/* Fields are passed as void *: header fields in a frame may be unaligned. */
static void rewrite_addr(struct bpfctl_iphdr *ip, struct bpfctl_udphdr *uh, struct bpfctl_tcphdr *th, void *field, uint32_t to)
{
	uint32_t from;

	memcpy(&from, field, 4);
	memcpy(field, &to, 4);
	bpfctl_csum_replace4(&ip->check, from, to);
	if (uh)
		bpfctl_udp_csum_replace4(uh, from, to);
	else
		bpfctl_csum_replace4(&th->check, from, to);
}

static void rewrite_port(struct bpfctl_udphdr *uh, struct bpfctl_tcphdr *th, void *field, uint16_t to)
{
	uint16_t from;

	memcpy(&from, field, 2);
	memcpy(field, &to, 2);
	if (uh)
		bpfctl_udp_csum_replace2(uh, from, to);
	else
		bpfctl_csum_replace2(&th->check, from, to);
}

/* Translate one frame; returns its verdict. */
static uint8_t translate(struct bpfctl_pkt *p)
{
	struct bpfctl_iphdr *ip = bpfctl_pkt_ipv4(p);
	struct bpfctl_udphdr *uh = ip ? bpfctl_pkt_udp(p) : NULL;
	struct bpfctl_tcphdr *th = ip && !uh ? bpfctl_pkt_tcp(p) : NULL;

	if (!uh && !th)
		return BPFCTL_PKT_DROP; /* only UDP and TCP over IPv4 have ports to translate */
	if (ip->ttl <= 1)
		return BPFCTL_PKT_DROP;
	/* the port fields sit at the same offsets in both headers; copied out: the headers are packed */
	uint16_t sport = uh ? uh->source : th->source, dport = uh ? uh->dest : th->dest;

	if (ip->daddr == snat_addr) {
		/* inbound: to one of our ports, from the remote end of that flow, from outside */
		uint32_t port = bpfctl_ntohs(dport);

		if (port < port_lo || port - port_lo >= nports)
			return BPFCTL_PKT_DROP;
		struct mapping *m = &by_port[port - port_lo];

		if (!m->used || m->inside == p->port || m->orig.proto != ip->protocol || m->orig.daddr != ip->saddr ||
		    m->orig.dport != sport)
			return BPFCTL_PKT_DROP;
		m->last = now;
		rewrite_addr(ip, uh, th, &ip->daddr, m->orig.saddr);
		rewrite_port(uh, th, uh ? (void *)&uh->dest : (void *)&th->dest, m->orig.sport);
	} else {
		struct flow f = { ip->saddr, ip->daddr, sport, dport, ip->protocol };
		uint32_t idx;
		struct mapping *m = outbound(&f, p->port, &idx);

		if (!m)
			return BPFCTL_PKT_DROP; /* every port of the range is in use */
		m->last = now;
		rewrite_addr(ip, uh, th, &ip->saddr, snat_addr);
		rewrite_port(uh, th, uh ? (void *)&uh->source : (void *)&th->source, bpfctl_htons((uint16_t)(port_lo + idx)));
		struct bpfctl_ethhdr *eth = bpfctl_pkt_eth(p);

		if (has_dst_mac)
			memcpy(eth->dst, out_dst_mac, 6);
		if (has_src_mac)
			memcpy(eth->src, out_src_mac, 6);
	}
	bpfctl_ipv4_dec_ttl(ip);
	return BPFCTL_PKT_NEXT;
}

void bpfctl_nf_batch(struct bpfctl_nf *nf, struct bpfctl_pkt *pkts, unsigned n)
{
	(void)nf;
	now = time(NULL); /* once per batch: idle times need seconds, not nanoseconds */
	for (unsigned i = 0; i < n; i++)
		pkts[i].verdict = translate(&pkts[i]);
}

/* "02:00:00:00:00:01" -> 6 bytes; 1 on success, 0 when unset, -1 when malformed. */
static int parse_mac(const char *text, uint8_t out[6])
{
	unsigned b[6];
	char extra;

	if (!text)
		return 0;
	if (sscanf(text, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &extra) != 6)
		return -1;
	for (int i = 0; i < 6; i++) {
		if (b[i] > 0xff)
			return -1;
		out[i] = (uint8_t)b[i];
	}
	return 1;
}

int bpfctl_nf_init(struct bpfctl_nf *nf)
{
	has_src_mac = parse_mac(getenv("SNAT_SRC_MAC"), out_src_mac);
	has_dst_mac = parse_mac(getenv("SNAT_DST_MAC"), out_dst_mac);
	if (has_src_mac < 0 || has_dst_mac < 0) {
		bpfctl_nf_log(nf, "SNAT_SRC_MAC and SNAT_DST_MAC must be MAC addresses like 02:00:00:00:00:01");
		return -1;
	}
	has_src_mac = has_src_mac > 0;
	has_dst_mac = has_dst_mac > 0;
	const char *addr = getenv("SNAT_ADDR"), *ports = getenv("SNAT_PORTS");
	struct in_addr a;
	unsigned lo, hi;
	char extra;

	if (!addr || inet_pton(AF_INET, addr, &a) != 1) {
		bpfctl_nf_log(nf, "SNAT_ADDR must be an IPv4 address, got '%s'", addr ? addr : "(not set)");
		return -1;
	}
	if (!ports || sscanf(ports, "%u-%u%c", &lo, &hi, &extra) != 2 || lo < 1 || hi > 65535 || lo > hi) {
		bpfctl_nf_log(nf, "SNAT_PORTS must be a port range like 20000-29999, got '%s'", ports ? ports : "(not set)");
		return -1;
	}
	snat_addr = a.s_addr;
	port_lo = lo;
	nports = hi - lo + 1;
	by_port = calloc(nports, sizeof(*by_port));
	bucket = calloc(BUCKETS, sizeof(*bucket));
	if (!by_port || !bucket) {
		bpfctl_nf_log(nf, "out of memory for %u mappings", nports);
		return -1;
	}
	return 0;
}

void bpfctl_nf_fini(struct bpfctl_nf *nf)
{
	uint32_t used = 0;

	for (uint32_t i = 0; i < nports; i++)
		used += by_port[i].used;
	bpfctl_nf_log(nf, "%u of %u ports mapped", used, nports);
}
