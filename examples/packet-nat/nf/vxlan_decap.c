/*
 * vxlan_decap: strips the outer Ethernet, IPv4, UDP (port 4789) and VXLAN headers and passes the
 * inner Ethernet frame on. Anything else (not IPv4/UDP/4789, no VXLAN "I" flag, no room for an
 * inner Ethernet header) is dropped. The inner frame stays where it is in the buffer: only the
 * frame's start moves (adjust_head), nothing is copied.
 */
#include <bpfctl/packet.h>

#define VXLAN_PORT 4789
#define VXLAN_HLEN 8
#define VXLAN_FLAG_VNI 0x08 /* the "I" flag: the VNI field is valid */

void bpfctl_nf_batch(struct bpfctl_nf *nf, struct bpfctl_pkt *pkts, unsigned n)
{
	(void)nf;
	for (unsigned i = 0; i < n; i++) {
		struct bpfctl_pkt *p = &pkts[i];
		struct bpfctl_iphdr *ip = bpfctl_pkt_ipv4(p);
		struct bpfctl_udphdr *uh = ip ? bpfctl_pkt_udp(p) : NULL;

		if (!uh || bpfctl_ntohs(uh->dest) != VXLAN_PORT) {
			p->verdict = BPFCTL_PKT_DROP;
			continue;
		}
		uint8_t *vx = (uint8_t *)(uh + 1);
		/* the IP packet's end, not the frame's: trailing Ethernet padding is not inner frame */
		uint8_t *end = (uint8_t *)ip + bpfctl_ntohs(ip->tot_len);

		if (end - vx < VXLAN_HLEN + 14 || !(vx[0] & VXLAN_FLAG_VNI)) {
			p->verdict = BPFCTL_PKT_DROP;
			continue;
		}
		uint8_t *inner = vx + VXLAN_HLEN;

		/* first trim anything after the IP packet, then move the start to the inner frame */
		if (bpfctl_pkt_adjust_tail(p, -(int)(p->data + p->len - end)) || bpfctl_pkt_adjust_head(p, (int)(inner - p->data)))
			p->verdict = BPFCTL_PKT_DROP;
	}
}
