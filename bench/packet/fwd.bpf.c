/*
 * The xdp-redirect variant: the whole 2-NF chain's work as one XDP program on the DUT's ingress
 * veth, the limit of what eBPF alone does for a stateless NF. Per UDP frame: source NAT without
 * state (the source address becomes `nat_addr`, the IPv4 checksum is updated incrementally; the
 * bench's frames carry no UDP checksum), a per-CPU counter, the MAC rewrite for the next hop
 * (source: the egress veth's MAC, destination: the receiver's), and a devmap redirect to the
 * egress veth. Everything else (ARP, ...) goes to the kernel.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Network byte order. */
const volatile __u32 nat_addr = 0;
const volatile __u8 src_mac[6] = {};
const volatile __u8 dst_mac[6] = {};

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} egress SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline __u16 csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

SEC("xdp")
int bench_fwd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct udphdr *udp = (void *)(ip + 1);

	if ((void *)(udp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP || ip->ihl != 5)
		return XDP_PASS;
	/* RFC 1624: HC' = ~(~HC + ~m + m'), over the two 16-bit halves of the address. */
	__u32 old = ip->saddr;
	__u32 s = (__u16)~ip->check;
	s += (__u16)~(old & 0xffff) + (__u16)~(old >> 16);
	s += (nat_addr & 0xffff) + (nat_addr >> 16);
	ip->saddr = nat_addr;
	ip->check = csum_fold(s);
	if (udp->check) {
		__u32 u = (__u16)~udp->check;
		u += (__u16)~(old & 0xffff) + (__u16)~(old >> 16);
		u += (nat_addr & 0xffff) + (nat_addr >> 16);
		udp->check = csum_fold(u) ?: 0xffff;
	}
	__builtin_memcpy(eth->h_source, (const void *)src_mac, 6);
	__builtin_memcpy(eth->h_dest, (const void *)dst_mac, 6);
	__u32 k = 0;
	__u64 *c = bpf_map_lookup_elem(&counters, &k);
	if (c)
		*c += 1;
	return bpf_redirect_map(&egress, 0, XDP_DROP);
}

char LICENSE[] SEC("license") = "GPL";
