/*
 * The generator's XDP program, run by gen.c through BPF_PROG_RUN in live-frames mode
 * (BPF_F_TEST_XDP_LIVE_FRAMES): the kernel runs it over copies of the template frame and
 * transmits every frame it returns XDP_TX for on the sender's veth (ndo_xdp_xmit, as a driver's
 * XDP_TX would), so the DUT's veth receives xdp_frames as from a NIC's rx ring, and a frame costs
 * the generator ~100 ns instead of a socket send.
 *
 * Pacing happens here, not in user space: a run call sets up a page pool that the kernel can only
 * free once every frame it sent is gone, and thousands of small paced calls a second pile up
 * pools whose deferred release then eats both CPUs in kworkers. So gen.c makes long calls, and
 * with `interval_ns` set this program sends a frame only when one is due (`next_ns`) and drops
 * the iteration otherwise (the kernel loop spins; gen.c runs as SCHED_IDLE then, so it yields
 * the CPU at once to anything else, the DUT included). A late wakeup is caught up by at most
 * CATCHUP_NS worth of frames.
 *
 * Per frame sent: the send time (bpf_ktime_get_ns: CLOCK_MONOTONIC, one clock for every
 * namespace) and a sequence number into the payload, and a UDP source port out of `flows`
 * (several flows, for NFs with several instances chosen by flow hash).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "frame.h"

#define CATCHUP_NS 50000

/* Set by gen.c before load. `flows` is a power of two. */
const volatile __u32 flows = 1;
const volatile __u16 sport_base = 10000;

/* Written by gen.c between calls (0: every iteration sends). One generator thread runs this at a
 * time: plain reads and writes are enough. */
__u64 interval_ns = 0;
__u64 next_ns = 0;
__u64 seq = 0;

SEC("xdp")
int bench_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct udphdr *udp = data + sizeof(struct ethhdr) + sizeof(struct iphdr);
	struct bench_payload *p = data + BENCH_PAYLOAD_OFF;
	__u64 now = bpf_ktime_get_ns();

	if ((void *)(p + 1) > end)
		return XDP_ABORTED;
	if (interval_ns) {
		if (now < next_ns)
			return XDP_DROP;
		next_ns = next_ns + CATCHUP_NS < now ? now - CATCHUP_NS + interval_ns : next_ns + interval_ns;
	}
	__u64 n = seq++;
	/* UDP checksum 0 (none, allowed for IPv4): the port and stamps change without checksum work. */
	udp->source = bpf_htons(sport_base + (__u16)(n & (flows - 1)));
	p->sent_ns = now;
	p->seq = n;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
