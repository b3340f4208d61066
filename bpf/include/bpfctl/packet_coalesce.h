/* SPDX-License-Identifier: MIT */
/*
 * Wakeup coalescing of a packet chain (docs/packet-chains.md, "Coalescing"): the rule that decides
 * whether a frame pktio received goes on down its chain now or waits for others to share one
 * batch with. Plain data and a caller-supplied clock, so that tests drive it with made-up times;
 * pktio (src/runtime/packet/pktio_rxtx.c) owns the holds and does the handing on.
 *
 *   a frame, no window open:   its chain's previous frame came less than `us` ago -> open a
 *                              window ending `us` from now and hold it; else -> go on now
 *   a frame, window open:      hold it; when BPFCTL_HOLD_MAX are held they go on at once
 *   the window's end:          held frames go on; if there were any, the next window opens
 *                              (traffic is present), else none does (the next frame goes on now)
 *
 * So idle to first frame, and any rate below one frame per `us`, is as without coalescing; a frame
 * waits at most `us` (less when a full batch gathers first).
 */
#ifndef BPFCTL_PACKET_COALESCE_H
#define BPFCTL_PACKET_COALESCE_H

#include <stdint.h>

#include "packet_layout.h"

/* A full batch for a packet function (BPFCTL_NF_BATCH in packet.h): no reason to hold more. */
#define BPFCTL_HOLD_MAX 32u

/* One coalescing chain's held frames (the owner's alone: no atomics). */
struct bpfctl_hold {
	struct bpfctl_pkt_desc d[BPFCTL_HOLD_MAX];
	uint32_t n;
	uint64_t window_end; /* 0: no window open; else when the frames held go on */
	uint64_t last_ns;    /* when its last frame was received (0: never) */
};

/*
 * Frame `d` received at `now` for a chain whose frames may wait `us_ns`: 1 when it is held (then,
 * if h->n == BPFCTL_HOLD_MAX, the caller hands the held frames on and sets h->n = 0), 0 when it
 * goes on now.
 */
static inline int bpfctl_hold_take(struct bpfctl_hold *h, uint64_t us_ns, const struct bpfctl_pkt_desc *d, uint64_t now)
{
	int recent = h->last_ns && now - h->last_ns < us_ns;

	h->last_ns = now;
	if (!h->window_end && !recent)
		return 0;
	if (!h->window_end)
		h->window_end = now + us_ns;
	h->d[h->n++] = *d;
	return 1;
}

/*
 * At `now`: 1 when the window has ended and its frames (h->d[0..h->n), maybe none) are to go on
 * now; the caller hands them on and sets h->n = 0. The next window is already decided: open
 * (ending `us_ns` from now) when there were frames, else closed.
 */
static inline int bpfctl_hold_due(struct bpfctl_hold *h, uint64_t us_ns, uint64_t now)
{
	if (!h->window_end || now < h->window_end)
		return 0;
	h->window_end = h->n ? now + us_ns : 0;
	return 1;
}

#endif /* BPFCTL_PACKET_COALESCE_H */
