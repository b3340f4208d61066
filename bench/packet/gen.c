/*
 * Traffic generator of the packet bench: UDP frames onto a veth through BPF_PROG_RUN in
 * live-frames mode (gen.bpf.c says why), at a paced rate or as fast as it can. Run inside the
 * sender's namespace. It stays up and takes commands on stdin, one a line, so one process serves
 * every point of a run (and its CPU time is read per point from /proc by the bench):
 *
 *   frame LEN SRCMAC DSTMAC SRCIP DSTIP DPORT   the template: LEN bytes from the Ethernet header
 *                                               on (no FCS), UDP checksum 0
 *   run RATE SECONDS                            RATE frames/s (0: as fast as possible), then
 *                                               prints "done SENT NS CALLS"
 *
 * and exits on EOF (the bench went away). usage: gen IFNAME FLOWS
 *
 * Pacing is gen.bpf.c's (it says why); this side makes long calls and sets the rate. A paced
 * run spins in the kernel at SCHED_IDLE priority: it takes a core that nothing else wants, and
 * gives it up on the spot to anything that wakes, so it does not delay the DUT; a flat-out run
 * is an ordinary thread competing for the CPUs like any other.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sched.h>
#include <time.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "gen.skel.h"

/* Iterations per call: ~5-20 ms of kernel time flat out, a few ms spinning when paced. */
#define BLAST_CALL 65536
#define SPIN_CALL 262144
/* Frames per inner batch of the kernel's loop (it flushes transmissions after each): small, so
 * that a paced frame leaves within a few iterations of its stamp. */
#define INNER_BATCH 16

static uint8_t frame[4096];
static unsigned frame_len;

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + t.tv_nsec;
}

static int parse_mac(const char *s, uint8_t *mac)
{
	return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) == 6 ? 0 : -1;
}

static uint16_t ip_checksum(const void *hdr, size_t len)
{
	const uint16_t *p = hdr;
	uint32_t s = 0;
	for (size_t i = 0; i < len / 2; i++)
		s += p[i];
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static int build_frame(unsigned len, const char *smac, const char *dmac, const char *sip, const char *dip, unsigned dport)
{
	struct ethhdr *eth = (struct ethhdr *)frame;
	struct iphdr *ip = (struct iphdr *)(eth + 1);
	struct udphdr *udp = (struct udphdr *)(ip + 1);

	if (len < 64 || len > 3000)
		return -1;
	memset(frame, 0, sizeof(frame));
	if (parse_mac(smac, eth->h_source) || parse_mac(dmac, eth->h_dest))
		return -1;
	eth->h_proto = htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = htons(len - sizeof(*eth));
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	if (inet_pton(AF_INET, sip, &ip->saddr) != 1 || inet_pton(AF_INET, dip, &ip->daddr) != 1)
		return -1;
	ip->check = ip_checksum(ip, sizeof(*ip));
	udp->source = htons(10000);
	udp->dest = htons(dport);
	udp->len = htons(len - sizeof(*eth) - sizeof(*ip));
	frame_len = len;
	return 0;
}

static int send_batch(int prog_fd, int ifindex, unsigned n)
{
	struct xdp_md ctx = { .data = 0, .data_end = frame_len, .ingress_ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = frame_len, .ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
		    .repeat = n, .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = INNER_BATCH);
	return bpf_prog_test_run_opts(prog_fd, &o);
}

int main(int argc, char **argv)
{
	struct gen_bpf *skel;
	char line[512];
	int ifindex, prog_fd;
	unsigned flows;

	if (argc != 3) {
		fprintf(stderr, "usage: %s IFNAME FLOWS\n", argv[0]);
		return 2;
	}
	ifindex = if_nametoindex(argv[1]);
	if (!ifindex) {
		fprintf(stderr, "gen: no interface %s in this namespace\n", argv[1]);
		return 1;
	}
	flows = atoi(argv[2]);
	if (!flows || (flows & (flows - 1))) {
		fprintf(stderr, "gen: FLOWS must be a power of two, not %s\n", argv[2]);
		return 2;
	}
	/* Timer slack 1 ns: the default 50 us would make every paced sleep 50 us late. */
	prctl(PR_SET_TIMERSLACK, 1UL);
	libbpf_set_print(NULL);
	skel = gen_bpf__open();
	if (!skel) {
		fprintf(stderr, "gen: cannot open the XDP program: %s\n", strerror(errno));
		return 1;
	}
	skel->rodata->flows = flows;
	if (gen_bpf__load(skel)) {
		fprintf(stderr, "gen: cannot load the XDP program: %s\n", strerror(errno));
		return 1;
	}
	prog_fd = bpf_program__fd(skel->progs.bench_gen);
	/*
	 * The program also attached (generic mode, through a link that dies with this process) to
	 * the namespace's loopback, where nothing reaches it: a live-frames run adds its program to
	 * the kernel's XDP dispatcher and takes it out again, which rewrites kernel text (~15 ms a
	 * call on this VM); a program the dispatcher already holds only has its count changed.
	 */
	if (!bpf_program__attach_xdp(skel->progs.bench_gen, if_nametoindex("lo"))) {
		fprintf(stderr, "gen: cannot attach the XDP program to lo: %s\n", strerror(errno));
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");

	while (fgets(line, sizeof(line), stdin)) {
		char smac[32], dmac[32], sip[32], dip[32];
		unsigned len, dport;
		double rate, secs;

		if (sscanf(line, "frame %u %31s %31s %31s %31s %u", &len, smac, dmac, sip, dip, &dport) == 6) {
			if (build_frame(len, smac, dmac, sip, dip, dport)) {
				printf("error bad frame: %s", line);
				continue;
			}
			printf("ok\n");
		} else if (sscanf(line, "run %lf %lf", &rate, &secs) == 2) {
			uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9), seq0 = skel->bss->seq, calls = 0;
			int err = 0;

			if (!frame_len) {
				printf("error no frame\n");
				continue;
			}
			/* Paced: spin in the kernel at idle priority; flat out: an ordinary thread. */
			struct sched_param sp = { 0 };
			sched_setscheduler(0, rate > 0 ? SCHED_IDLE : SCHED_OTHER, &sp);
			skel->bss->interval_ns = rate > 0 ? (uint64_t)(1e9 / rate) : 0;
			skel->bss->next_ns = t0;
			while (now_ns() < end) {
				if (send_batch(prog_fd, ifindex, rate > 0 ? SPIN_CALL : BLAST_CALL)) {
					err = errno;
					break;
				}
				calls++;
			}
			sched_setscheduler(0, SCHED_OTHER, &sp);
			if (err)
				printf("error BPF_PROG_RUN: %s\n", strerror(err));
			else
				printf("done %llu %llu %llu\n", (unsigned long long)(skel->bss->seq - seq0), (unsigned long long)(now_ns() - t0),
				       (unsigned long long)calls);
		} else {
			printf("error unknown command: %s", line);
		}
	}
	gen_bpf__destroy(skel);
	return 0;
}
