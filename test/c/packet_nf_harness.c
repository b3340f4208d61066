/*
 * A stand-in for nf_main.c that runs a packet function's handler on frames read from stdin, with
 * no pool or rings: test/unit/packet-nf.test.ts links each example NF with it (build.ts's
 * `runtime` option) to check what the handler does to crafted frames.
 *
 *   stdin:  "F <port> <hex>"  a frame for the next batch (it arrived on <port>)
 *           "B"               run the handler on the batch; prints "<verdict> <hex>" per frame
 *                             (the frame as the handler left it), then "."
 *   EOF:    bpfctl_nf_fini (if the handler has one), exit 0. bpfctl_nf_init failing: exit 2.
 *
 * Each frame sits 256 bytes into its own 2048-byte buffer, as pktio delivers them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <bpfctl/packet.h>

#pragma weak bpfctl_nf_init
#pragma weak bpfctl_nf_fini

#define BUF 2048

static uint8_t bufs[BPFCTL_NF_BATCH_MAX][BUF];

static int unhex(const char *s, uint8_t *out, size_t max)
{
	size_t n = 0;

	while (s[0] && s[1] && s[0] != '\n' && n < max) {
		unsigned v;

		if (sscanf(s, "%2x", &v) != 1)
			return -1;
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return (int)n;
}

int main(void)
{
	static char line[8192];
	struct bpfctl_pkt pkts[BPFCTL_NF_BATCH_MAX];
	struct bpfctl_nf nf;
	unsigned n = 0;

	memset(&nf, 0, sizeof(nf));
	nf.name = getenv("BPFCTL_FN_NAME") ? getenv("BPFCTL_FN_NAME") : "nf";
	if (bpfctl_nf_init && bpfctl_nf_init(&nf) != 0)
		return 2;
	while (fgets(line, sizeof(line), stdin)) {
		if (line[0] == 'F' && n < BPFCTL_NF_BATCH_MAX) {
			unsigned port;
			char *sp;

			if (sscanf(line + 2, "%u", &port) != 1 || !(sp = strchr(line + 2, ' ')))
				return 3;
			memset(bufs[n], 0, BUF);
			int len = unhex(sp + 1, bufs[n] + 256, BUF - 256);

			if (len < 0)
				return 3;
			pkts[n] = (struct bpfctl_pkt){ .data = bufs[n] + 256, .len = (uint16_t)len, .port = (uint8_t)port, .verdict = BPFCTL_PKT_NEXT,
						       .buf = bufs[n], .buf_size = BUF };
			n++;
		} else if (line[0] == 'B') {
			bpfctl_nf_batch(&nf, pkts, n);
			for (unsigned i = 0; i < n; i++) {
				printf("%u ", pkts[i].verdict);
				for (unsigned j = 0; j < pkts[i].len; j++)
					printf("%02x", pkts[i].data[j]);
				printf("\n");
			}
			printf(".\n");
			fflush(stdout);
			n = 0;
		}
	}
	if (bpfctl_nf_fini)
		bpfctl_nf_fini(&nf);
	return 0;
}
