/*
 * The sink: XDP on the receiver's veth, counting and dropping the bench's UDP frames (dst port
 * `port`) and passing everything else (ARP). Per frame: packets, bytes, frames whose source
 * address is the NAT address (the DUT did its NAT), and the one-way latency from the stamp the
 * generator wrote (both sides read CLOCK_MONOTONIC in the kernel) into a histogram: 1000 buckets
 * of 100 ns up to 100 us, then 1000 of 10 us up to ~10 ms, then one overflow bucket. Per-CPU
 * arrays: no atomics, the bench sums the CPUs.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "frame.h"

const volatile __u16 port = 9;
/* Network byte order. */
const volatile __u32 nat_addr = 0;

/* One per-CPU record, one lookup per frame: the sink must stay cheaper than the DUTs it measures. */
struct sink_stats {
	__u64 pkts, bytes, natted, other;
};
#define FINE_BUCKETS 1000
#define FINE_NS 100
#define COARSE_BUCKETS 1000
#define COARSE_NS 10000
#define HIST_BUCKETS (FINE_BUCKETS + COARSE_BUCKETS + 1)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sink_stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HIST_BUCKETS);
	__type(key, __u32);
	__type(value, __u64);
} hist SEC(".maps");

SEC("xdp")
int bench_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct udphdr *udp = (void *)(ip + 1);
	struct bench_payload *p = data + BENCH_PAYLOAD_OFF;
	__u32 zero = 0;
	struct sink_stats *st = bpf_map_lookup_elem(&stats, &zero);

	if (!st)
		return XDP_PASS;
	if ((void *)(p + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP || ip->ihl != 5 ||
	    udp->dest != bpf_htons(port)) {
		if ((void *)(eth + 1) <= end && eth->h_proto == bpf_htons(ETH_P_IP))
			st->other++;
		return XDP_PASS;
	}
	st->pkts++;
	st->bytes += end - data;
	if (ip->saddr == nat_addr)
		st->natted++;
	__u64 now = bpf_ktime_get_ns();
	__u64 lat = now > p->sent_ns ? now - p->sent_ns : 0;
	__u32 b;
	if (lat < FINE_BUCKETS * FINE_NS)
		b = lat / FINE_NS;
	else if (lat < FINE_BUCKETS * FINE_NS + COARSE_BUCKETS * COARSE_NS)
		b = FINE_BUCKETS + (lat - FINE_BUCKETS * FINE_NS) / COARSE_NS;
	else
		b = HIST_BUCKETS - 1;
	__u64 *h = bpf_map_lookup_elem(&hist, &b);
	if (h)
		*h += 1;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
