/* SPDX-License-Identifier: MIT */
/*
 * bpfctl packet functions in C (docs/packet-chains.md): whole Ethernet frames in pool buffers,
 * handed from function to function through rings in the pool file, rewritten in place.
 *
 * A handler file for the default runtime (src/runtime/packet/nf_main.c, built by
 * src/runtime/packet/build.ts) defines one function:
 *
 *   #include <bpfctl/packet.h>
 *
 *   void bpfctl_nf_batch(struct bpfctl_nf *nf, struct bpfctl_pkt *pkts, unsigned n)
 *   {
 *           for (unsigned i = 0; i < n; i++) {
 *                   struct bpfctl_ethhdr *eth = bpfctl_pkt_eth(&pkts[i]);
 *                   if (!eth)
 *                           pkts[i].verdict = BPFCTL_PKT_DROP;
 *           }
 *   }
 *
 * and optionally `int bpfctl_nf_init(struct bpfctl_nf *nf)` (non-zero: the instance does not
 * start; say why with bpfctl_nf_log) and `void bpfctl_nf_fini(struct bpfctl_nf *nf)` (after the
 * last batch, on SIGTERM). Every frame keeps verdict BPFCTL_PKT_NEXT unless the handler says
 * otherwise: NEXT goes on to the next function of its chain (or the chain's egress), DROP frees
 * it, REFLECT transmits it back out of the port it came in on (p->port: a handler that routes
 * may set another port).
 *
 * Other programs (a DPDK NF) use the loop below directly:
 *
 *   struct bpfctl_nf *nf = bpfctl_nf_open_env();         // NULL: the reason is on stderr
 *   bpfctl_nf_ready(nf);
 *   while ((n = bpfctl_nf_recv(nf, pkts, BPFCTL_NF_BATCH)) > 0) {
 *           ... set pkts[i].verdict, rewrite pkts[i].data ...
 *           bpfctl_nf_send(nf, pkts, n);
 *   }
 *   bpfctl_nf_close(nf);                                 // 0 from recv: SIGTERM, ring drained
 *
 * Environment (set by the supervisor): BPFCTL_POOL (the pool file), BPFCTL_PKT_FN (function id),
 * BPFCTL_PKT_INST (instance slot, 0..31), BPFCTL_PKT_POLL (1: spin instead of sleeping),
 * BPFCTL_FN_NAME (for messages), BPFCTL_READY_FD (where the ready line goes; default 3).
 *
 * Frame parsing and checksum helpers: packet_hdr.h. Rings: packet_ring.h. Routing and the plane:
 * packet_plane.h. Layout: packet_layout.h.
 */
#ifndef BPFCTL_PACKET_H
#define BPFCTL_PACKET_H

/* sigaction, kill, strtoul: POSIX. Asked for only when nothing was (works only if included first). */
#if !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _DEFAULT_SOURCE
#endif

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>

#ifndef SA_RESTART
#error "bpfctl/packet.h needs POSIX (sigaction): include it before other headers, or compile with -D_GNU_SOURCE"
#endif

#include "pool.h"
#include "packet_layout.h"
#include "packet_ring.h"
#include "packet_plane.h"
#include "packet_hdr.h"

/* Verdicts */
#define BPFCTL_PKT_NEXT 0u
#define BPFCTL_PKT_DROP 1u
#define BPFCTL_PKT_REFLECT 2u

/* Frames per batch the default runtime hands to a handler; the most bpfctl_nf_recv returns. */
#define BPFCTL_NF_BATCH 32u
#define BPFCTL_NF_BATCH_MAX 64u

/* One frame, as a handler sees it. */
struct bpfctl_pkt {
	uint8_t *data;   /* the frame's first byte (Ethernet header) */
	uint16_t len;    /* frame length */
	uint8_t port;    /* port it arrived on; REFLECT transmits out of this port */
	uint8_t chain;   /* chain id */
	uint8_t hop;     /* this function's index in the chain */
	uint8_t verdict; /* BPFCTL_PKT_NEXT unless the handler changes it */
	uint16_t hash;   /* symmetric flow hash: picks the next function's instance */
	/* where the frame lives (the runtime's; adjust_head/adjust_tail keep inside it) */
	uint8_t *buf;
	uint32_t buf_size;
	uint32_t gen;
};

/* One running instance of a packet function. */
struct bpfctl_nf {
	const char *name;
	uint32_t fn, inst, ring_idx, pid;
	int poll;
	struct bpfctl_pool *pool;
	struct bpfctl_plane plane;
	struct bpfctl_ring ring;
	struct bpfctl_inst_counters *stats;
	_Atomic int stop;
	void *user; /* the handler's own state (set it in bpfctl_nf_init) */
	char name_buf[BPFCTL_PKT_NAME_LEN];
};

/* Runtime hooks (nf_main.c): the handler defines batch, and init/fini if it needs them. */
void bpfctl_nf_batch(struct bpfctl_nf *nf, struct bpfctl_pkt *pkts, unsigned n);
int bpfctl_nf_init(struct bpfctl_nf *nf);
void bpfctl_nf_fini(struct bpfctl_nf *nf);

/* --- frame helpers --- */

static inline struct bpfctl_ethhdr *bpfctl_pkt_eth(struct bpfctl_pkt *p) { return bpfctl_eth(p->data, p->len); }
static inline struct bpfctl_vlanhdr *bpfctl_pkt_vlan(struct bpfctl_pkt *p) { return bpfctl_vlan(p->data, p->len); }
static inline struct bpfctl_iphdr *bpfctl_pkt_ipv4(struct bpfctl_pkt *p) { return bpfctl_ipv4(p->data, p->len); }
static inline struct bpfctl_ip6hdr *bpfctl_pkt_ipv6(struct bpfctl_pkt *p) { return bpfctl_ipv6(p->data, p->len); }
static inline struct bpfctl_udphdr *bpfctl_pkt_udp(struct bpfctl_pkt *p) { return bpfctl_udp(p->data, p->len); }
static inline struct bpfctl_tcphdr *bpfctl_pkt_tcp(struct bpfctl_pkt *p) { return bpfctl_tcp(p->data, p->len); }

/*
 * Move the frame's start by `delta` bytes, as bpf_xdp_adjust_head does: > 0 strips bytes off the
 * front (decapsulation), < 0 makes room in front (encapsulation; the new bytes are whatever the
 * buffer held: write them). Frames arrive 256 bytes into their buffer, so up to 256 bytes can be
 * pushed. Returns 0, or -EINVAL (and changes nothing) when the frame would leave its buffer or
 * become shorter than an Ethernet header.
 */
static inline int bpfctl_pkt_adjust_head(struct bpfctl_pkt *p, int delta)
{
	size_t head = (size_t)(p->data - p->buf);

	if (delta >= 0 ? (uint32_t)delta + 14u > p->len : (size_t)-(long)delta > head)
		return -EINVAL;
	if (delta < 0 && (uint32_t)p->len + (uint32_t)-delta > 0xffffu)
		return -EINVAL;
	p->data += delta;
	p->len = (uint16_t)((int)p->len - delta);
	return 0;
}

/*
 * Grow (> 0, new bytes zeroed) or shrink (< 0) the frame at its end. Returns 0, or -EINVAL when
 * it would pass the end of its buffer or become shorter than an Ethernet header.
 */
static inline int bpfctl_pkt_adjust_tail(struct bpfctl_pkt *p, int delta)
{
	long len = (long)p->len + delta;
	size_t room = p->buf_size - (size_t)(p->data - p->buf);

	if (len < 14 || (size_t)len > room || len > 0xffff)
		return -EINVAL;
	if (delta > 0)
		memset(p->data + p->len, 0, (size_t)delta);
	p->len = (uint16_t)len;
	return 0;
}

/* --- the instance loop --- */

/* One line on stderr, prefixed with the function's name. */
static inline void bpfctl_nf_log(const struct bpfctl_nf *nf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void bpfctl_nf_log(const struct bpfctl_nf *nf, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n = snprintf(line, sizeof(line), "%s: ", nf && nf->name ? nf->name : "nf");

	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* one write: lines of several instances do not interleave */
	fprintf(stderr, "%s\n", line);
}

static inline int bpfctl__nf_u32(const char *name, const char *what, const char *env, uint32_t max, uint32_t *out)
{
	const char *v = getenv(env);
	char *end;
	unsigned long n;

	if (!v || !*v) {
		fprintf(stderr, "%s: %s (%s) is not set: the supervisor sets it\n", name, env, what);
		return -1;
	}
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || *end || n > max) {
		fprintf(stderr, "%s: %s (%s) must be a number up to %u, got '%s'\n", name, env, what, max, v);
		return -1;
	}
	*out = (uint32_t)n;
	return 0;
}

/*
 * Become the consumer of ring `r` (its consumer_pid): one consumer per ring, a second one would
 * break the queue for both. Returns 0, or the pid of the live process that consumes it already.
 * A dead consumer's ring (a crashed instance, restarted) is taken over with what it queued.
 */
static inline uint32_t bpfctl_ring_take_consumer(const struct bpfctl_ring *r, uint32_t pid)
{
	uint32_t other = atomic_load_explicit(&r->hdr->consumer_pid, memory_order_acquire);

	for (;;) {
		if (other && other != pid && (kill((pid_t)other, 0) == 0 || errno == EPERM))
			return other;
		/* a CAS, not a store: of two instances starting on one ring, one wins */
		if (atomic_compare_exchange_weak_explicit(&r->hdr->consumer_pid, &other, pid, memory_order_acq_rel, memory_order_acquire))
			return 0;
	}
}

/*
 * Attach to instance `inst` of function `fn` in the pool at `pool_path`: the instance consumes
 * ring 1 + fn*32 + inst. Refuses (NULL, reason on stderr) a pool without a plane, a function the
 * plane does not have, or a ring another live process consumes.
 */
static inline struct bpfctl_nf *bpfctl_nf_open(const char *pool_path, const char *name, uint32_t fn, uint32_t inst, int poll)
{
	struct bpfctl_nf *nf = (struct bpfctl_nf *)calloc(1, sizeof(*nf));

	if (!nf) {
		fprintf(stderr, "%s: out of memory\n", name);
		return NULL;
	}
	snprintf(nf->name_buf, sizeof(nf->name_buf), "%s", name && *name ? name : "nf");
	nf->name = nf->name_buf;
	nf->fn = fn;
	nf->inst = inst;
	nf->poll = poll;
	nf->pid = (uint32_t)getpid();
	nf->pool = bpfctl_pool_open(pool_path);
	if (!nf->pool) {
		bpfctl_nf_log(nf, "cannot open pool %s: %s", pool_path, strerror(errno));
		free(nf);
		return NULL;
	}
	int err = bpfctl_plane_open(&nf->plane, nf->pool);

	if (err) {
		bpfctl_nf_log(nf, "pool %s: %s", pool_path,
			      err == -ENOENT  ? "has no packet plane (created without packet chains)"
			      : err == -EPROTO ? "no packet plane of this version in its extension area"
					       : "packet plane sizes disagree with the pool");
		goto fail;
	}
	if (fn >= nf->plane.nfns || inst >= BPFCTL_PKT_MAX_INST || BPFCTL_PKT_RING_OF(fn, inst) >= nf->plane.ring_count) {
		bpfctl_nf_log(nf, "function %u instance %u is not in the plane (%u functions)", fn, inst, nf->plane.nfns);
		goto fail;
	}
	nf->ring_idx = BPFCTL_PKT_RING_OF(fn, inst);
	nf->ring = bpfctl_plane_ring(&nf->plane, nf->ring_idx);
	nf->stats = bpfctl_plane_inst_stats(&nf->plane, fn, inst);
	uint32_t other = bpfctl_ring_take_consumer(&nf->ring, nf->pid);

	if (other) {
		bpfctl_nf_log(nf, "ring %u is consumed by pid %u, which is alive", nf->ring_idx, other);
		goto fail;
	}
	return nf;
fail:
	bpfctl_pool_close(nf->pool);
	free(nf);
	return NULL;
}

/* Ask the loop to stop: bpfctl_nf_recv returns 0 once the ring is empty. Async-signal-safe. */
static inline void bpfctl_nf_stop(struct bpfctl_nf *nf)
{
	atomic_store_explicit(&nf->stop, 1, memory_order_relaxed);
	bpfctl_ring_kick(&nf->ring);
}

static struct bpfctl_nf *bpfctl__nf_signalled;

static inline void bpfctl__nf_on_signal(int sig)
{
	(void)sig;
	if (bpfctl__nf_signalled)
		bpfctl_nf_stop(bpfctl__nf_signalled);
}

/* bpfctl_nf_open from the environment, with SIGTERM and SIGINT asking for a drained stop. */
static inline struct bpfctl_nf *bpfctl_nf_open_env(void)
{
	const char *name = getenv("BPFCTL_FN_NAME"), *pool = getenv("BPFCTL_POOL"), *poll = getenv("BPFCTL_PKT_POLL");
	uint32_t fn, inst;

	if (!name || !*name)
		name = "nf";
	if (!pool || !*pool) {
		fprintf(stderr, "%s: BPFCTL_POOL (the pool file) is not set: the supervisor sets it\n", name);
		return NULL;
	}
	if (bpfctl__nf_u32(name, "function id", "BPFCTL_PKT_FN", BPFCTL_PKT_MAX_FNS - 1, &fn) ||
	    bpfctl__nf_u32(name, "instance", "BPFCTL_PKT_INST", BPFCTL_PKT_MAX_INST - 1, &inst))
		return NULL;
	struct bpfctl_nf *nf = bpfctl_nf_open(pool, name, fn, inst, poll && poll[0] == '1');

	if (!nf)
		return NULL;
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = bpfctl__nf_on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: a sleeping futex wait returns */
	bpfctl__nf_signalled = nf;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	return nf;
}

/* Say "ready <name> <inst> <pid> ring=R mode=event|poll" to the supervisor (fd 3 or BPFCTL_READY_FD), once. */
static inline void bpfctl_nf_ready(struct bpfctl_nf *nf)
{
	const char *v = getenv("BPFCTL_READY_FD");
	int fd = v && *v ? atoi(v) : 3;
	char line[160];

	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return;
	int n = snprintf(line, sizeof(line), "ready %s %u %u ring=%u mode=%s\n", nf->name, nf->inst, nf->pid, nf->ring_idx,
			 nf->poll ? "poll" : "event");

	if (write(fd, line, (size_t)n) < 0)
		bpfctl_nf_log(nf, "ready fd %d: %s", fd, strerror(errno));
	close(fd);
}

/*
 * Take up to `max` (<= BPFCTL_NF_BATCH_MAX) frames that are in the ring now, without waiting:
 * they are this process's until bpfctl_nf_send. Returns how many (0: none ready). A descriptor
 * whose buffer is no longer in use with its generation is skipped and counted as lost: it is not
 * ours to touch. For runtimes with a loop of their own (the TypeScript one takes what is there on
 * its own thread and only waits on a worker thread); bpfctl_nf_recv is the usual call.
 */
static inline unsigned bpfctl_nf_try_recv(struct bpfctl_nf *nf, struct bpfctl_pkt *pkts, unsigned max)
{
	struct bpfctl_pkt_desc d[BPFCTL_NF_BATCH_MAX];
	struct bpfctl_plane *pl = &nf->plane;

	if (max > BPFCTL_NF_BATCH_MAX)
		max = BPFCTL_NF_BATCH_MAX;
	for (;;) {
		uint32_t n = bpfctl_ring_pop(&nf->ring, d, max);
		unsigned k = 0, bad = 0;

		if (!n)
			return 0;
		for (uint32_t i = 0; i < n; i++) {
			if (!bpfctl_plane_desc_ok(pl, &d[i])) {
				bad++;
				if (d[i].chain < pl->nchains)
					atomic_fetch_add_explicit(&pl->chain_stats[d[i].chain].lost, 1, memory_order_relaxed);
				continue;
			}
			int64_t idx = bpfctl_plane_buf_index(pl, d[i].addr);

			atomic_store_explicit(&nf->pool->meta[idx].owner, nf->pid, memory_order_relaxed);
			struct bpfctl_pkt *p = &pkts[k++];

			p->buf = nf->pool->base + bpfctl_plane_buf_off(pl, (uint32_t)idx);
			p->buf_size = nf->pool->buf_size;
			p->data = nf->pool->base + d[i].addr;
			p->len = d[i].len;
			p->port = d[i].port;
			p->chain = d[i].chain;
			p->hop = d[i].hop;
			p->verdict = BPFCTL_PKT_NEXT;
			p->hash = d[i].hash;
			p->gen = d[i].gen;
		}
		bpfctl_counter_add(&nf->stats->rx, k);
		bpfctl_counter_add(&nf->stats->lost, bad);
		bpfctl_counter_add(&nf->stats->batches, 1);
		/* a batch of stale descriptors only: look again, the ring may hold more */
		if (k)
			return k;
	}
}

/*
 * Wait for frames and take up to `max` (<= BPFCTL_NF_BATCH_MAX) of them (bpfctl_nf_try_recv).
 * Blocks on the ring's futex (event mode) or spins (poll mode). Returns how many, or 0 when a stop
 * was asked for and the ring is empty.
 */
static inline unsigned bpfctl_nf_recv(struct bpfctl_nf *nf, struct bpfctl_pkt *pkts, unsigned max)
{
	for (;;) {
		unsigned k = bpfctl_nf_try_recv(nf, pkts, max);

		if (k)
			return k;
		if (atomic_load_explicit(&nf->stop, memory_order_relaxed))
			return 0;
		if (nf->poll) {
			bpfctl_cpu_relax();
			continue;
		}
		/* the timeout only bounds a lost wake-up; a stop request kicks the futex */
		if (bpfctl_ring_wait(&nf->ring, 1000) == 1)
			bpfctl_counter_add(&nf->stats->wakeups, 1);
	}
}

/*
 * Apply the verdicts of `n` frames from bpfctl_nf_recv and hand each on: DROP frees it, REFLECT
 * queues it for transmission out of its arrival port, NEXT sends it to the next function of its
 * chain (an instance picked by p->hash) or to the chain's egress. A frame the handler moved out
 * of its buffer (data/len) is dropped. After this the frames are no longer this process's.
 */
static inline void bpfctl_nf_send(struct bpfctl_nf *nf, struct bpfctl_pkt *pkts, unsigned n)
{
	struct bpfctl_pkt_desc out[BPFCTL_NF_BATCH_MAX];
	struct bpfctl_plane *pl = &nf->plane;
	struct bpfctl_free_batch fb;
	struct bpfctl_chain_delta cd;
	struct bpfctl_route_result res;
	uint32_t k = 0, dropped = 0;

	fb.n = 0;
	cd.touched = 0;
	memset(cd.in, 0, sizeof(cd.in));
	memset(cd.out, 0, sizeof(cd.out));
	memset(cd.dropped, 0, sizeof(cd.dropped));
	memset(cd.lost, 0, sizeof(cd.lost));
	if (n > BPFCTL_NF_BATCH_MAX)
		n = BPFCTL_NF_BATCH_MAX;
	for (unsigned i = 0; i < n; i++) {
		struct bpfctl_pkt *p = &pkts[i];
		struct bpfctl_pkt_desc d;
		int inside = p->data >= p->buf && p->len <= p->buf_size && (size_t)(p->data - p->buf) <= p->buf_size - p->len;

		d.addr = (uint32_t)(p->buf - nf->pool->base) + (uint32_t)(inside ? p->data - p->buf : 0);
		d.gen = p->gen;
		d.len = p->len;
		d.hash = p->hash;
		d.chain = p->chain;
		d.hop = (uint8_t)(p->hop + 1);
		d.port = p->port;
		d.flags = 0;
		if (!inside || (p->verdict != BPFCTL_PKT_NEXT && p->verdict != BPFCTL_PKT_REFLECT)) {
			dropped++;
			BPFCTL_CHAIN_ADD(&cd, dropped, p->chain, 1);
			bpfctl_free_batch_add(pl, &fb, &d);
			continue;
		}
		if (p->verdict == BPFCTL_PKT_REFLECT)
			d.flags = BPFCTL_PKT_DESC_TX; /* port is still the arrival port */
		out[k++] = d;
	}
	bpfctl_free_batch_flush(pl, &fb);
	bpfctl_pkt_route(pl, out, k, &res, &cd);
	bpfctl_chain_delta_flush(pl, &cd);
	/* the chain's egress drop is the chain's doing: for this instance the frame passed */
	bpfctl_counter_add(&nf->stats->passed, res.passed + res.dropped);
	bpfctl_counter_add(&nf->stats->dropped, dropped);
	bpfctl_counter_add(&nf->stats->lost, res.no_instance + res.ring_full + res.invalid);
}

/* Stop consuming the ring (it stays as it is for the next instance on it) and unmap the pool. */
static inline void bpfctl_nf_close(struct bpfctl_nf *nf)
{
	if (!nf)
		return;
	uint32_t me = nf->pid;

	if (bpfctl__nf_signalled == nf)
		bpfctl__nf_signalled = NULL;
	atomic_compare_exchange_strong(&nf->ring.hdr->consumer_pid, &me, 0);
	bpfctl_pool_close(nf->pool);
	free(nf);
}

#endif /* BPFCTL_PACKET_H */
