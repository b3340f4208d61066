/*
 * The bench's UDP frames, shared by the generator's and the sink's XDP programs: Ethernet, IPv4
 * without options, UDP, then the payload the sink reads latency from. The generator writes the
 * send time (bpf_ktime_get_ns: CLOCK_MONOTONIC, one clock for every namespace) and a sequence
 * number into the first 16 bytes of the payload; nothing on the way (NAT, MAC rewrite) touches
 * them.
 */
#ifndef BENCH_PACKET_FRAME_H
#define BENCH_PACKET_FRAME_H

#include <linux/types.h>

struct bench_payload {
	__u64 sent_ns;
	__u64 seq;
};

/* Ethernet 14 + IPv4 20 + UDP 8: where the payload starts. */
#define BENCH_PAYLOAD_OFF 42

#endif
