/*
 * macswap: sends every frame back out of the port it came in on, with source and destination
 * MAC addresses swapped (the classic forwarding benchmark NF, like testpmd's macswap mode).
 * Frames too short for an Ethernet header are dropped.
 */
#include <bpfctl/packet.h>

void bpfctl_nf_batch(struct bpfctl_nf *nf, struct bpfctl_pkt *pkts, unsigned n)
{
	(void)nf;
	for (unsigned i = 0; i < n; i++) {
		struct bpfctl_ethhdr *eth = bpfctl_pkt_eth(&pkts[i]);
		uint8_t tmp[6];

		if (!eth) {
			pkts[i].verdict = BPFCTL_PKT_DROP;
			continue;
		}
		memcpy(tmp, eth->dst, 6);
		memcpy(eth->dst, eth->src, 6);
		memcpy(eth->src, tmp, 6);
		pkts[i].verdict = BPFCTL_PKT_REFLECT;
	}
}
