/*
 * count: counts frames and bytes per IP protocol (UDP, TCP, ICMP, ...; "non-ip" for the rest)
 * and passes every frame on unchanged. The totals are printed on stderr, one line, when the
 * instance stops.
 */
#include <bpfctl/packet.h>

struct tally {
	uint64_t frames, bytes;
};

/* One process per instance and one thread per process: plain counters, no atomics. */
static struct tally by_proto[256], non_ip;

static int protocol(struct bpfctl_pkt *p)
{
	uint8_t proto;
	uint32_t room;
	struct bpfctl_iphdr *ip = bpfctl_pkt_ipv4(p);

	/* the L4 protocol past IPv6 extension headers; a later fragment counts as its IP protocol */
	if (bpfctl_l4_off(p->data, p->len, &proto, &room) >= 0)
		return proto;
	if (ip)
		return ip->protocol;
	return -1;
}

void bpfctl_nf_batch(struct bpfctl_nf *nf, struct bpfctl_pkt *pkts, unsigned n)
{
	(void)nf;
	for (unsigned i = 0; i < n; i++) {
		int proto = protocol(&pkts[i]);
		struct tally *t = proto < 0 ? &non_ip : &by_proto[proto];

		t->frames++;
		t->bytes += pkts[i].len;
		/* verdict stays BPFCTL_PKT_NEXT: on to the next function or the chain's egress */
	}
}

void bpfctl_nf_fini(struct bpfctl_nf *nf)
{
	char line[400];
	int n = 0;

	for (int p = 0; p < 256 && n < (int)sizeof(line) - 64; p++) {
		if (!by_proto[p].frames)
			continue;
		const char *name = p == BPFCTL_IPPROTO_UDP ? "udp" : p == BPFCTL_IPPROTO_TCP ? "tcp" : p == BPFCTL_IPPROTO_ICMP ? "icmp" : p == BPFCTL_IPPROTO_ICMPV6 ? "icmpv6" : NULL;

		if (name)
			n += snprintf(line + n, sizeof(line) - (size_t)n, "%s%s %llu frames %llu bytes", n ? ", " : "", name,
				      (unsigned long long)by_proto[p].frames, (unsigned long long)by_proto[p].bytes);
		else
			n += snprintf(line + n, sizeof(line) - (size_t)n, "%sproto %d %llu frames %llu bytes", n ? ", " : "", p,
				      (unsigned long long)by_proto[p].frames, (unsigned long long)by_proto[p].bytes);
	}
	if (non_ip.frames && n < (int)sizeof(line) - 64)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%snon-ip %llu frames %llu bytes", n ? ", " : "",
			      (unsigned long long)non_ip.frames, (unsigned long long)non_ip.bytes);
	bpfctl_nf_log(nf, "%s", n ? line : "no frames");
}
