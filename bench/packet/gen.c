/*
 * Traffic generator of the packet bench (gen.bpf.c says how frames get onto the wire). Run inside
 * the sender's namespace. It stays up and takes commands on stdin, one a line, so one process
 * serves every point of a run (the bench reads its CPU time per point from /proc):
 *
 *   frame LEN SRCMAC DSTMAC SRCIP DSTIP DPORT   the template: LEN bytes from the Ethernet header
 *                                               on (no FCS), UDP checksum 0
 *   run RATE SECONDS                            RATE frames/s (0: as fast as possible), then
 *                                               prints "done STAMPED NS CALLS"
 *
 * and exits on EOF (the bench went away). STAMPED counts the frames gen.bpf.c stamped, i.e. that
 * reached the sender's veth. usage: gen TX_IF PACE_IN_IF PACE_OUT_IF FLOWS
 * (TX_IF the sender's veth; PACE_IN_IF/PACE_OUT_IF the two ends of the sender's inner veth pair:
 * paced frames are written to the first and redirected from the second to TX_IF.)
 *
 * Flat out: BPF_PROG_RUN calls of BLAST_CALL live frames each, an ordinary thread competing for
 * the CPUs. Paced: one frame per send(2) on an AF_PACKET socket (qdisc bypassed), sleeping until
 * the next one is due; a late wakeup sends what is due at once (sendmmsg), so the rate holds
 * while arrivals stay as smooth as the timer allows.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "gen.skel.h"

/* Live frames per call flat out: ~10-30 ms of kernel time. */
#define BLAST_CALL 65536
/* At most this many frames in one catch-up send. */
#define CATCHUP 64

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

static int blast(int prog_fd, int ifindex)
{
	struct xdp_md ctx = { .data = 0, .data_end = frame_len, .ingress_ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = frame_len, .ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
		    .repeat = BLAST_CALL, .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
	return bpf_prog_test_run_opts(prog_fd, &o);
}

/* `n` copies of the template on the AF_PACKET socket (gen.bpf.c sets the port and stamps). */
static int send_frames(int fd, unsigned n)
{
	struct mmsghdr m[CATCHUP];
	struct iovec iov = { .iov_base = frame, .iov_len = frame_len };

	if (n == 1)
		return send(fd, frame, frame_len, 0) == (ssize_t)frame_len ? 0 : -1;
	memset(m, 0, sizeof(m[0]) * n);
	for (unsigned i = 0; i < n; i++) {
		m[i].msg_hdr.msg_iov = &iov;
		m[i].msg_hdr.msg_iovlen = 1;
	}
	for (unsigned done = 0; done < n;) {
		int r = sendmmsg(fd, m + done, n - done, 0);
		if (r < 0)
			return -1;
		done += r;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct gen_bpf *skel;
	char line[512];
	int tx_if, pace_in, pace_out, prog_fd, pkt_fd, one = 1;
	unsigned flows;

	if (argc != 5) {
		fprintf(stderr, "usage: %s TX_IF PACE_IN_IF PACE_OUT_IF FLOWS\n", argv[0]);
		return 2;
	}
	tx_if = if_nametoindex(argv[1]);
	pace_in = if_nametoindex(argv[2]);
	pace_out = if_nametoindex(argv[3]);
	if (!tx_if || !pace_in || !pace_out) {
		fprintf(stderr, "gen: no interface %s in this namespace\n", !tx_if ? argv[1] : !pace_in ? argv[2] : argv[3]);
		return 1;
	}
	flows = atoi(argv[4]);
	if (!flows || (flows & (flows - 1))) {
		fprintf(stderr, "gen: FLOWS must be a power of two, not %s\n", argv[4]);
		return 2;
	}
	/* Timer slack 1 ns: the default 50 us would make every paced sleep 50 us late. */
	prctl(PR_SET_TIMERSLACK, 1UL);
	libbpf_set_print(NULL);
	skel = gen_bpf__open();
	if (!skel) {
		fprintf(stderr, "gen: cannot open the XDP programs: %s\n", strerror(errno));
		return 1;
	}
	skel->rodata->flows = flows;
	skel->rodata->tx_ifindex = tx_if;
	if (gen_bpf__load(skel)) {
		fprintf(stderr, "gen: cannot load the XDP programs: %s\n", strerror(errno));
		return 1;
	}
	prog_fd = bpf_program__fd(skel->progs.bench_gen);
	/*
	 * bench_gen also attached (generic mode, through a link that dies with this process) to the
	 * namespace's loopback, where nothing reaches it: a live-frames run adds its program to the
	 * kernel's XDP dispatcher and takes it out again, which rewrites kernel text (~15 ms a call
	 * on this VM); a program the dispatcher already holds only has its count changed.
	 */
	if (!bpf_program__attach_xdp(skel->progs.bench_gen, if_nametoindex("lo"))) {
		fprintf(stderr, "gen: cannot attach the XDP program to lo: %s\n", strerror(errno));
		return 1;
	}
	if (!bpf_program__attach_xdp(skel->progs.bench_pace, pace_out)) {
		fprintf(stderr, "gen: cannot attach the pacing XDP program to %s: %s\n", argv[3], strerror(errno));
		return 1;
	}
	pkt_fd = socket(AF_PACKET, SOCK_RAW, 0);
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = pace_in };
	if (pkt_fd < 0 || bind(pkt_fd, (struct sockaddr *)&sll, sizeof(sll)) ||
	    setsockopt(pkt_fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one))) {
		fprintf(stderr, "gen: AF_PACKET socket on %s: %s\n", argv[2], strerror(errno));
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
			memcpy(skel->bss->hdr, frame, sizeof(skel->bss->hdr));
			printf("ok\n");
		} else if (sscanf(line, "run %lf %lf", &rate, &secs) == 2) {
			uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9), seq0 = skel->bss->seq, calls = 0, sent = 0;
			int err = 0;

			if (!frame_len) {
				printf("error no frame\n");
				continue;
			}
			for (uint64_t t = t0; t < end && !err; t = now_ns()) {
				if (rate <= 0) {
					err = blast(prog_fd, tx_if) ? errno : 0;
					calls++;
					continue;
				}
				/* Frames due by now; none: sleep until the next one is. */
				uint64_t due = (uint64_t)((double)(t - t0) * rate / 1e9) + 1;
				if (due <= sent) {
					uint64_t at = t0 + (uint64_t)((double)sent * 1e9 / rate);
					struct timespec ts = { .tv_sec = at / 1000000000ULL, .tv_nsec = at % 1000000000ULL };
					clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
					continue;
				}
				uint64_t n = due - sent < CATCHUP ? due - sent : CATCHUP;
				err = send_frames(pkt_fd, (unsigned)n) ? errno : 0;
				sent += n;
				calls++;
			}
			if (err)
				printf("error %s: %s\n", rate > 0 ? "send" : "BPF_PROG_RUN", strerror(err));
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
