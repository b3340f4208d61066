// SPDX-License-Identifier: MIT
/*
 * The chain bench's C reference: the three C functions of ../c, their sources included unchanged,
 * called one after the other in one process on the bench payload, with no transport at all. What
 * is left is the work itself: CPU per round trip here is the floor under bpfctl-c and tcp-c, and
 * their CPU per round trip minus this is what their transport costs.
 *
 * Each source's main() is renamed by the preprocessor and calls bpfctl_fn_run(), which here only
 * records the handler.
 *
 * Usage: main --payload P --expected E [--warmup ms] [--measure ms]; prints `result <json>` in the
 * shape of ../driver/loop.ts's LoopResult (no latency percentiles: a call takes well under a
 * microsecond, and timing each one would measure the clock).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bpfctl/fn.h"

#define main chain_upper_main
#include "../c/upper.c"
#undef main
#define main chain_reverse_main
#include "../c/reverse.c"
#undef main
#define main chain_stamp_main
#include "../c/stamp.c"
#undef main

#define BUF_CAP 512u

static bpfctl_fn_handler g_hops[3];
static int g_nhops;

int bpfctl_fn_run(bpfctl_fn_handler handler, void *ctx)
{
	(void)ctx;
	if (g_nhops < 3)
		g_hops[g_nhops++] = handler;
	return 0;
}

uint8_t *bpfctl_fn_alloc(struct bpfctl_fn_req *req, uint32_t n)
{
	(void)req;
	(void)n;
	return NULL; /* the bench's functions answer in place */
}

int bpfctl_fn_errorf(struct bpfctl_fn_req *req, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(req->err, sizeof(req->err), fmt, ap);
	va_end(ap);
	return status > 0 ? -status : -500;
}

static double now(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One trip through the chain: 0 when the answer is the expected one. */
static int trip(uint8_t *buf, const char *payload, size_t plen, const char *want, size_t wlen)
{
	struct bpfctl_fn_req req = { 0 };
	int len = (int)plen;

	memcpy(buf, payload, plen);
	for (int i = 0; i < 3; i++) {
		req.data = buf;
		req.len = (uint32_t)len;
		req.cap = BUF_CAP;
		req.hop = (uint8_t)i;
		len = g_hops[i](&req, NULL);
		if (len < 0)
			return 1;
	}
	return (size_t)len != wlen || memcmp(buf, want, wlen) != 0;
}

int main(int argc, char **argv)
{
	static uint8_t buf[BUF_CAP];
	const char *payload = NULL, *want = NULL;
	double warm = 500, measure = 2000, t0, t1, c0, c1;
	unsigned long n = 0, errors = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--payload"))
			payload = argv[i + 1];
		else if (!strcmp(argv[i], "--expected"))
			want = argv[i + 1];
		else if (!strcmp(argv[i], "--warmup"))
			warm = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--measure"))
			measure = atof(argv[i + 1]);
	}
	if (!payload || !want || strlen(payload) + 11 > BUF_CAP) {
		fprintf(stderr, "usage: %s --payload P --expected E [--warmup ms] [--measure ms]\n", argv[0]);
		return 2;
	}
	chain_upper_main();
	chain_reverse_main();
	chain_stamp_main();
	size_t plen = strlen(payload), wlen = strlen(want);

	for (t0 = now(CLOCK_MONOTONIC); now(CLOCK_MONOTONIC) - t0 < warm / 1000;)
		for (int i = 0; i < 1000; i++)
			errors += (unsigned long)trip(buf, payload, plen, want, wlen);
	errors = 0;
	c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	t0 = now(CLOCK_MONOTONIC);
	do {
		for (int i = 0; i < 1000; i++)
			errors += (unsigned long)trip(buf, payload, plen, want, wlen);
		n += 1000;
		t1 = now(CLOCK_MONOTONIC);
	} while (t1 - t0 < measure / 1000);
	c1 = now(CLOCK_PROCESS_CPUTIME_ID);
	printf("result {\"roundTrips\":%lu,\"seconds\":%.6f,\"rt_per_s\":%.1f,\"p50_us\":null,\"p99_us\":null,\"cpu_chain_s\":%.6f,\"cpu_driver_s\":0,\"errors\":%lu}\n",
	       n, t1 - t0, (double)n / (t1 - t0), c1 - c0, errors);
	return 0;
}
