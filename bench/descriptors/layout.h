/* SPDX-License-Identifier: MIT */
/*
 * The memory the launcher and its three hop processes share (one MAP_SHARED memfd, mapped before
 * fork): a control block, the two rings of the ring variants (packet_ring.h, laid out as in a
 * pool's packet plane), and a pool of frame buffers the descriptors name. Every variant uses the
 * control block and the buffers the same way; only the rings are the ring variants' own.
 */
#ifndef DESCBENCH_LAYOUT_H
#define DESCBENCH_LAYOUT_H

#include <stdint.h>

#include "bpfctl/packet_ring.h"

/* Descriptors per send (the packet runtime's BPFCTL_NF_BATCH) and most per receive. */
#define DB_BATCH 32u
/* The plane's ring size (src/schema/packet-layout.ts RING_SLOTS). */
#define DB_RING_SLOTS 1024u
/*
 * Descriptors in flight end to end, at most. sk_msg's ingress redirect has no backpressure (it
 * ignores the receiver's SO_RCVBUF, docs/design.md gotcha 5), so the producer is held to this
 * window in every variant alike; at <= DB_RING_SLOTS no ring ever fills. The producer sleeps when
 * the window is full and is woken when half of it is free: one wakeup per DB_WINDOW / 2.
 */
#define DB_WINDOW 1024u
/* Frame buffers: more than the window, so none is reused while a descriptor names it. */
#define DB_NBUF 4096u
#define DB_BUF_SIZE 2048u
#define DB_FRAME_LEN 64u

/* Latency histogram: 25 ns buckets to 50 us, 1 us to 2.05 ms, 100 us to 102.05 ms, then overflow. */
#define DB_HIST 5001u

enum db_phase {
	DB_SETUP = 0,
	DB_WARM = 1,    /* traffic, not measured */
	DB_MEASURE = 2, /* traffic; the consumer histograms latency */
	DB_QUIET = 3,   /* the producer sends nothing (idle measurement) */
	DB_STOP = 4,
};

enum db_role { DB_PRODUCER = 0, DB_MIDDLE = 1, DB_CONSUMER = 2, DB_ROLES = 3 };

/* What one hop process counts (its own cache lines). */
struct db_role_stats {
	_Atomic uint64_t batches;  /* receives that returned descriptors (producer: sends) */
	_Atomic uint64_t descs;    /* descriptors received (producer: sent) */
	_Atomic uint64_t syscalls; /* made on the data path: send/recv, futex wait/wake */
	_Atomic uint64_t full;     /* sends that found the next ring full and retried */
	_Atomic uint64_t gate;     /* futex calls of the producer's window (the same in every variant) */
	_Atomic uint64_t late;     /* producer, paced: batches sent more than 1 ms after their time */
	_Atomic uint64_t skipped;  /* producer, paced: batches not sent at all (more than 20 ms behind) */
	uint8_t pad[8];
};

struct db_ctl {
	_Atomic uint32_t phase; /* enum db_phase; also the futex word a quiet producer sleeps on */
	_Atomic uint32_t ready; /* hop processes set up */
	_Atomic uint32_t failed;
	uint32_t pad0;
	char error[240]; /* the first failure, one line */

	/* The producer's window (own line): the consumer publishes what it took. */
	_Atomic uint64_t consumed __attribute__((aligned(64)));
	_Atomic uint64_t credit_want; /* the producer sleeps until consumed >= this */
	_Atomic uint32_t credit_waiting;
	_Atomic uint32_t credit_wake; /* futex word */

	/* The consumer's checks and latency (own line). */
	_Atomic uint64_t errors __attribute__((aligned(64))); /* out of order, wrong hop */
	_Atomic uint64_t measured;                            /* descriptors histogrammed */
	_Atomic uint64_t lat_sum_ns;

	struct db_role_stats role[DB_ROLES] __attribute__((aligned(64)));
	_Atomic uint64_t hist[DB_HIST] __attribute__((aligned(64)));
};

#define DB_ALIGN(x, a) (((x) + (a) - 1) / (a) * (a))
#define DB_RING_STRIDE (256u + DB_RING_SLOTS * 32u)
#define DB_RINGS_OFF DB_ALIGN(sizeof(struct db_ctl), 4096)
#define DB_BUFS_OFF DB_ALIGN(DB_RINGS_OFF + 2 * DB_RING_STRIDE, 4096)
#define DB_MEM_SIZE (DB_BUFS_OFF + (uint64_t)DB_NBUF * DB_BUF_SIZE)

static inline uint32_t db_bucket(uint64_t ns)
{
	if (ns < 50000)
		return (uint32_t)(ns / 25);
	if (ns < 2050000)
		return 2000 + (uint32_t)((ns - 50000) / 1000);
	if (ns < 102050000)
		return 4000 + (uint32_t)((ns - 2050000) / 100000);
	return DB_HIST - 1;
}

/* The upper edge of a bucket, in ns (the overflow bucket: its lower edge). */
static inline uint64_t db_bucket_edge(uint32_t b)
{
	if (b < 2000)
		return (uint64_t)(b + 1) * 25;
	if (b < 4000)
		return 50000 + (uint64_t)(b - 2000 + 1) * 1000;
	if (b < DB_HIST - 1)
		return 2050000 + (uint64_t)(b - 4000 + 1) * 100000;
	return 102050000;
}

#endif
