/*
 * The generator's two XDP programs (gen.c drives them; frame.h is the frame).
 *
 * bench_gen, flat out: run through BPF_PROG_RUN in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES),
 * the kernel runs it over copies of the template frame and transmits every frame it returns
 * XDP_TX for on the sender's veth (ndo_xdp_xmit, as a driver's XDP_TX would): the DUT's veth
 * receives xdp_frames as from a NIC's rx ring, for ~100-300 ns of generator CPU per frame. It
 * writes the headers afresh from `hdr` every time: a frame's page comes back to the run through
 * its page pool after the DUT is done with it, and a DUT that forwards in place (the kernel's IP
 * forwarding, an XDP program) has rewritten its MACs, addresses and TTL by then (the kernel
 * restores a recycled frame's pointers, not its bytes).
 *
 * bench_pace, paced: on the inner veth of the sender's namespace, where gen.c's AF_PACKET socket
 * sends one frame at a time on a schedule; it redirects each frame to the sender's veth, so the
 * DUT receives the same xdp_frames as flat out. Not live frames for paced traffic because the
 * kernel's live-frames loop only yields the CPU at a scheduler tick on this kernel (4 ms: it
 * delayed the DUT's threads by that much when it spun on a CPU they wanted), and short calls
 * instead pile up page pools whose deferred release eats both CPUs in kworkers.
 *
 * Both: a UDP source port out of `flows` (several flows, for NFs with several instances chosen by
 * flow hash), and the send time (bpf_ktime_get_ns: CLOCK_MONOTONIC, one clock for every
 * namespace) and a sequence number in the payload.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "frame.h"

/* Set by gen.c before load. `flows` is a power of two. */
const volatile __u32 flows = 1;
const volatile __u16 sport_base = 10000;
/* The sender's veth, where bench_pace redirects to. */
const volatile __u32 tx_ifindex = 0;

/* Frames stamped (one program runs at a time: plain increments are enough). */
__u64 seq = 0;
/* Ethernet + IPv4 + UDP headers of the template frame (gen.c writes them with the frame). */
__u8 hdr[BENCH_PAYLOAD_OFF] = {};

static __always_inline int stamp(struct xdp_md *ctx, int restore)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct udphdr *udp = data + sizeof(struct ethhdr) + sizeof(struct iphdr);
	struct bench_payload *p = data + BENCH_PAYLOAD_OFF;

	if ((void *)(p + 1) > end)
		return -1;
	__u64 n = seq++;
	if (restore)
		__builtin_memcpy(data, hdr, BENCH_PAYLOAD_OFF);
	/* UDP checksum 0 (none, allowed for IPv4): the port and stamps change without checksum work. */
	udp->source = bpf_htons(sport_base + (__u16)(n & (flows - 1)));
	p->sent_ns = bpf_ktime_get_ns();
	p->seq = n;
	return 0;
}

SEC("xdp")
int bench_gen(struct xdp_md *ctx)
{
	return stamp(ctx, 1) ? XDP_ABORTED : XDP_TX;
}

SEC("xdp")
int bench_pace(struct xdp_md *ctx)
{
	if (stamp(ctx, 0))
		return XDP_PASS;
	return bpf_redirect(tx_ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
