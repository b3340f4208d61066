// SPDX-License-Identifier: MIT
/*
 * The coalescing rule (bpf/include/bpfctl/packet_coalesce.h) against made-up arrival times, as
 * pktio's RX thread uses it: each frame is offered to the hold when it arrives; a frame not held
 * goes on at once; held frames go on when BPFCTL_HOLD_MAX gather or at the window's end. Time is
 * simulated, so nothing here depends on how fast the machine is.
 *
 *   packet_coalesce_test SCENARIO   prints one JSON line: what happened to every frame
 *
 * Scenarios (us = 200 us): sparse (a frame every 400 us), steady (every 30 us), burst (one frame,
 * then 100 at one instant), pause (steady, then 10 windows of silence, then one frame).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpfctl/packet_coalesce.h"

#define US 1000ull
#define WINDOW (200 * US)
#define MAXN 4096

static uint64_t arrive[MAXN], deliver[MAXN];
static int delivered[MAXN];
static uint32_t order[MAXN], norder, batches, immediate, max_batch;

static void go_on(const struct bpfctl_pkt_desc *d, uint32_t n, uint64_t now)
{
	for (uint32_t i = 0; i < n; i++) {
		uint32_t seq = d[i].addr;

		delivered[seq]++;
		deliver[seq] = now;
		order[norder++] = seq;
	}
	batches++;
	if (n > max_batch)
		max_batch = n;
}

/* Windows still opening long after the last frame: pktio would wake on a timer while idle. */
static int idle_windows;

static void run(uint32_t n)
{
	struct bpfctl_hold h;
	uint32_t i = 0;

	memset(&h, 0, sizeof(h));
	while (i < n || h.window_end) {
		if (i >= n && h.window_end > arrive[n - 1] + 100 * WINDOW) {
			idle_windows = 1;
			break;
		}
		/* the next thing to happen: a frame, or the window's end (pktio's timer), whichever first */
		if (h.window_end && (i >= n || h.window_end <= arrive[i])) {
			uint64_t now = h.window_end;

			if (bpfctl_hold_due(&h, WINDOW, now)) {
				if (h.n)
					go_on(h.d, h.n, now);
				h.n = 0;
			}
			continue;
		}
		struct bpfctl_pkt_desc d = { .addr = i };

		if (!bpfctl_hold_take(&h, WINDOW, &d, arrive[i])) {
			immediate++;
			go_on(&d, 1, arrive[i]);
		} else if (h.n == BPFCTL_HOLD_MAX) {
			go_on(h.d, h.n, arrive[i]);
			h.n = 0;
		}
		i++;
	}
}

int main(int argc, char **argv)
{
	const char *s = argc > 1 ? argv[1] : "";
	uint32_t n = 0;

	if (!strcmp(s, "sparse")) {
		for (n = 0; n < 100; n++)
			arrive[n] = 1000 * US + n * 400 * US;
	} else if (!strcmp(s, "steady")) {
		for (n = 0; n < 1000; n++)
			arrive[n] = 1000 * US + n * 30 * US;
	} else if (!strcmp(s, "burst")) {
		arrive[n++] = 1000 * US;
		while (n < 101)
			arrive[n++] = 1050 * US;
	} else if (!strcmp(s, "pause")) {
		for (n = 0; n < 50; n++)
			arrive[n] = 1000 * US + n * 30 * US;
		arrive[n] = arrive[n - 1] + 10 * WINDOW;
		n++;
	} else {
		fprintf(stderr, "usage: packet_coalesce_test sparse|steady|burst|pause\n");
		return 2;
	}
	run(n);

	uint32_t once = 1, in_order = norder == n;
	uint64_t max_wait = 0, last_wait = deliver[n - 1] - arrive[n - 1];

	for (uint32_t i = 0; i < n; i++) {
		once &= delivered[i] == 1;
		if (deliver[i] - arrive[i] > max_wait)
			max_wait = deliver[i] - arrive[i];
	}
	for (uint32_t i = 0; i < norder; i++)
		in_order &= order[i] == i;
	printf("{\"frames\":%u,\"delivered\":%u,\"once\":%s,\"inOrder\":%s,\"batches\":%u,\"immediate\":%u,\"maxBatch\":%u,"
	       "\"maxWaitUs\":%llu,\"firstWaitUs\":%llu,\"lastWaitUs\":%llu,\"windowUs\":%llu,\"idleWindows\":%s}\n",
	       n, norder, once ? "true" : "false", in_order ? "true" : "false", batches, immediate, max_batch,
	       (unsigned long long)(max_wait / US), (unsigned long long)((deliver[0] - arrive[0]) / US), (unsigned long long)(last_wait / US),
	       (unsigned long long)(WINDOW / US), idle_windows ? "true" : "false");
	return 0;
}
