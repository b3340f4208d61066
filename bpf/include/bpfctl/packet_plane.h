/* SPDX-License-Identifier: MIT */
/*
 * The packet plane from C: find it in a mapped pool, move frames between processes (ownership,
 * batched pool frees, next-hop routing with per-batch counters). Used by pktio, the NF runtime
 * (packet.h) and any other program on a packet chain (a DPDK NF).
 *
 * Costs per batch, not per frame, on shared cache lines: one tail CAS per destination ring, one
 * seqlock read per next function, one atomic add per touched chain counter, one free-list CAS for
 * every frame freed in the batch. Per frame: the buffer's owner store (its metadata line) and the
 * slot itself.
 */
#ifndef BPFCTL_PACKET_PLANE_H
#define BPFCTL_PACKET_PLANE_H

#include <sched.h>
#include <string.h>

#include "pool.h"
#include "packet_layout.h"
#include "packet_ring.h"

/* The plane of one mapped pool. */
struct bpfctl_plane {
	struct bpfctl_pool *pool;
	uint8_t *base; /* the plane's first byte in this mapping */
	struct bpfctl_plane_hdr *hdr;
	struct bpfctl_chain_entry *chains;
	struct bpfctl_fn_entry *fns;
	struct bpfctl_port_entry *ports;
	struct bpfctl_inst_counters *inst_stats;
	struct bpfctl_chain_counters *chain_stats;
	uint8_t *rings;
	uint32_t ring_slots, ring_count, ring_stride;
	uint32_t nchains, nfns, nports;
	uint32_t buf_shift; /* log2(buf_size) when a power of two, else 0 */
};

/*
 * Find and check the plane of `pool`. Returns 0, or -ENOENT (the pool has no extension area),
 * -EPROTO (no plane there, or another version), -EINVAL (its sizes disagree with the area).
 */
static inline int bpfctl_plane_open(struct bpfctl_plane *pl, struct bpfctl_pool *pool)
{
	memset(pl, 0, sizeof(*pl));
	if (!pool->ext_off || pool->ext_size < BPFCTL_PLANE_RINGS_OFF)
		return -ENOENT;
	struct bpfctl_plane_hdr *h = (struct bpfctl_plane_hdr *)(pool->base + pool->ext_off);

	if (atomic_load_explicit(&h->magic, memory_order_acquire) != BPFCTL_PLANE_MAGIC || h->version != BPFCTL_PLANE_VERSION)
		return -EPROTO;
	if (h->ring_slots < 2 || (h->ring_slots & (h->ring_slots - 1)) || h->ring_stride != 256u + h->ring_slots * 32u ||
	    h->ring_off < BPFCTL_PLANE_RINGS_OFF || h->ring_count < 1 ||
	    (uint64_t)h->ring_off + (uint64_t)h->ring_count * h->ring_stride > pool->ext_size ||
	    h->nchains > BPFCTL_PKT_MAX_CHAINS || h->nfns > BPFCTL_PKT_MAX_FNS || h->nports > BPFCTL_PKT_MAX_PORTS)
		return -EINVAL;
	pl->pool = pool;
	pl->base = (uint8_t *)h;
	pl->hdr = h;
	pl->chains = (struct bpfctl_chain_entry *)(pl->base + BPFCTL_PLANE_CHAINS_OFF);
	pl->fns = (struct bpfctl_fn_entry *)(pl->base + BPFCTL_PLANE_FNS_OFF);
	pl->ports = (struct bpfctl_port_entry *)(pl->base + BPFCTL_PLANE_PORTS_OFF);
	pl->inst_stats = (struct bpfctl_inst_counters *)(pl->base + BPFCTL_PLANE_INST_STATS_OFF);
	pl->chain_stats = (struct bpfctl_chain_counters *)(pl->base + BPFCTL_PLANE_CHAIN_STATS_OFF);
	pl->rings = pl->base + h->ring_off;
	pl->ring_slots = h->ring_slots;
	pl->ring_count = h->ring_count;
	pl->ring_stride = h->ring_stride;
	pl->nchains = h->nchains;
	pl->nfns = h->nfns;
	pl->nports = h->nports;
	if ((pool->buf_size & (pool->buf_size - 1)) == 0)
		pl->buf_shift = (uint32_t)__builtin_ctz(pool->buf_size);
	return 0;
}

/* Ring `idx` (< ring_count). */
static inline struct bpfctl_ring bpfctl_plane_ring(const struct bpfctl_plane *pl, uint32_t idx)
{
	return bpfctl_ring_at(pl->rings + (size_t)idx * pl->ring_stride, pl->ring_slots);
}

static inline struct bpfctl_inst_counters *bpfctl_plane_inst_stats(const struct bpfctl_plane *pl, uint32_t fn, uint32_t inst)
{
	return &pl->inst_stats[fn * BPFCTL_PKT_MAX_INST + inst];
}

/* Index of the buffer holding pool offset `addr`, or -1 outside the buffers. */
static inline int64_t bpfctl_plane_buf_index(const struct bpfctl_plane *pl, uint32_t addr)
{
	const struct bpfctl_pool *p = pl->pool;

	if (addr < p->data_off)
		return -1;
	uint32_t rel = addr - p->data_off;
	uint32_t idx = pl->buf_shift ? rel >> pl->buf_shift : rel / p->buf_size;

	return idx < p->buf_count ? (int64_t)idx : -1;
}

/* Pool offset of buffer `idx`. */
static inline uint32_t bpfctl_plane_buf_off(const struct bpfctl_plane *pl, uint32_t idx)
{
	return pl->pool->data_off + idx * pl->pool->buf_size;
}

/*
 * 1 when `d` names a frame inside one buffer that is in use with generation d->gen. A descriptor
 * that fails this is never touched: its buffer may be someone else's by now.
 */
static inline int bpfctl_plane_desc_ok(const struct bpfctl_plane *pl, const struct bpfctl_pkt_desc *d)
{
	int64_t idx = bpfctl_plane_buf_index(pl, d->addr);

	if (idx < 0 || d->addr - bpfctl_plane_buf_off(pl, (uint32_t)idx) + (uint32_t)d->len > pl->pool->buf_size)
		return 0;
	return atomic_load_explicit(&pl->pool->meta[idx].gen_state, memory_order_acquire) ==
	       BPFCTL_POOL_GS(d->gen, BPFCTL_POOL_STATE_IN_USE);
}

/* Record `owner` for the buffer of a frame this process holds (the per-frame owner store). */
static inline void bpfctl_plane_set_owner(const struct bpfctl_plane *pl, uint32_t addr, uint32_t owner)
{
	int64_t idx = bpfctl_plane_buf_index(pl, addr);

	if (idx >= 0)
		atomic_store_explicit(&pl->pool->meta[idx].owner, owner, memory_order_relaxed);
}

/*
 * Free up to `n` buffers (by buffer index and generation) with one free-list CAS: each one's
 * gen_state CAS as in bpfctl_pool_free (of two racing frees one wins), the winners linked to each
 * other and pushed together. Returns how many were freed (the others were stale or free already,
 * counted as refused like bpfctl_pool_free does).
 */
static inline uint32_t bpfctl_pool_free_bulk(struct bpfctl_pool *p, const uint32_t *idx, const uint32_t *gen, uint32_t n)
{
	uint32_t first = BPFCTL_POOL_NONE, last = BPFCTL_POOL_NONE, freed = 0;

	for (uint32_t i = 0; i < n; i++) {
		if (idx[i] >= p->buf_count)
			continue;
		struct bpfctl_pool_meta *m = &p->meta[idx[i]];
		uint64_t expect = BPFCTL_POOL_GS(gen[i], BPFCTL_POOL_STATE_IN_USE);

		if (!atomic_compare_exchange_strong_explicit(&m->gen_state, &expect, BPFCTL_POOL_GS(gen[i] + 1, BPFCTL_POOL_STATE_FREE),
							     memory_order_acq_rel, memory_order_relaxed))
			continue;
		atomic_store_explicit(&m->owner, 0, memory_order_relaxed);
		if (last == BPFCTL_POOL_NONE)
			first = idx[i];
		else
			atomic_store_explicit(&p->meta[last].next, idx[i], memory_order_relaxed);
		last = idx[i];
		freed++;
	}
	if (freed) {
		uint64_t head = atomic_load_explicit(&p->hdr->free_head, memory_order_acquire);
		uint64_t want;

		do {
			atomic_store_explicit(&p->meta[last].next, (uint32_t)head, memory_order_relaxed);
			want = ((head >> 32) + 1) << 32 | first;
		} while (!atomic_compare_exchange_weak_explicit(&p->hdr->free_head, &head, want, memory_order_release,
								 memory_order_acquire));
		atomic_fetch_add_explicit(&p->hdr->frees, freed, memory_order_relaxed);
	}
	if (freed < n)
		atomic_fetch_add_explicit(&p->hdr->refused, n - freed, memory_order_relaxed);
	return freed;
}

/*
 * Take up to `n` free buffers for `owner` with one free-list CAS: walk n entries from the head
 * and swing the head past them. The walk may read entries another process is changing, but any
 * such change is a push or pop, which bumps the head's tag and fails our CAS. Returns how many
 * (0 when the pool is empty); idx/gen receive each buffer's index and generation.
 */
static inline uint32_t bpfctl_pool_alloc_bulk(struct bpfctl_pool *p, uint32_t owner, uint32_t *idx, uint32_t *gen, uint32_t n)
{
	uint64_t head = atomic_load_explicit(&p->hdr->free_head, memory_order_acquire);
	uint32_t k, next;

	if (n == 0)
		return 0;
	for (;;) {
		k = 0;
		next = (uint32_t)head;
		while (k < n && next != BPFCTL_POOL_NONE && next < p->buf_count) {
			idx[k++] = next;
			next = atomic_load_explicit(&p->meta[next].next, memory_order_relaxed);
		}
		if (k == 0) {
			if ((uint32_t)head == BPFCTL_POOL_NONE) {
				atomic_fetch_add_explicit(&p->hdr->alloc_fails, 1, memory_order_relaxed);
				return 0;
			}
			/* an index out of range can only be a torn read: look again */
			head = atomic_load_explicit(&p->hdr->free_head, memory_order_acquire);
			continue;
		}
		uint64_t want = ((head >> 32) + 1) << 32 | next;

		if (atomic_compare_exchange_weak_explicit(&p->hdr->free_head, &head, want, memory_order_acquire, memory_order_acquire))
			break;
	}
	for (uint32_t i = 0; i < k; i++) {
		struct bpfctl_pool_meta *m = &p->meta[idx[i]];
		uint64_t gs = atomic_load_explicit(&m->gen_state, memory_order_relaxed);

		atomic_store_explicit(&m->owner, owner, memory_order_relaxed);
		atomic_store_explicit(&m->gen_state, BPFCTL_POOL_GS(BPFCTL_POOL_GEN(gs), BPFCTL_POOL_STATE_IN_USE), memory_order_release);
		gen[i] = BPFCTL_POOL_GEN(gs);
	}
	atomic_fetch_add_explicit(&p->hdr->allocs, k, memory_order_relaxed);
	return k;
}

/* Frames to give back to the pool, collected over a batch and freed with one CAS. */
struct bpfctl_free_batch {
	uint32_t n;
	uint32_t idx[64];
	uint32_t gen[64];
};

static inline void bpfctl_free_batch_flush(struct bpfctl_plane *pl, struct bpfctl_free_batch *fb)
{
	if (fb->n)
		bpfctl_pool_free_bulk(pl->pool, fb->idx, fb->gen, fb->n);
	fb->n = 0;
}

static inline void bpfctl_free_batch_add(struct bpfctl_plane *pl, struct bpfctl_free_batch *fb, const struct bpfctl_pkt_desc *d)
{
	int64_t idx = bpfctl_plane_buf_index(pl, d->addr);

	if (idx < 0)
		return;
	if (fb->n == 64)
		bpfctl_free_batch_flush(pl, fb);
	fb->idx[fb->n] = (uint32_t)idx;
	fb->gen[fb->n] = d->gen;
	fb->n++;
}

/* Per-chain counter deltas of one batch, added to the shared counters once each. */
struct bpfctl_chain_delta {
	uint64_t touched; /* bit c: chain c has deltas */
	uint32_t in[BPFCTL_PKT_MAX_CHAINS], out[BPFCTL_PKT_MAX_CHAINS], dropped[BPFCTL_PKT_MAX_CHAINS], lost[BPFCTL_PKT_MAX_CHAINS];
};

static inline void bpfctl_chain_delta_flush(struct bpfctl_plane *pl, struct bpfctl_chain_delta *cd)
{
	while (cd->touched) {
		unsigned c = (unsigned)__builtin_ctzll(cd->touched);
		struct bpfctl_chain_counters *s = &pl->chain_stats[c];

		cd->touched &= cd->touched - 1;
		if (cd->in[c])
			atomic_fetch_add_explicit(&s->in, cd->in[c], memory_order_relaxed);
		if (cd->out[c])
			atomic_fetch_add_explicit(&s->out, cd->out[c], memory_order_relaxed);
		if (cd->dropped[c])
			atomic_fetch_add_explicit(&s->dropped, cd->dropped[c], memory_order_relaxed);
		if (cd->lost[c])
			atomic_fetch_add_explicit(&s->lost, cd->lost[c], memory_order_relaxed);
		cd->in[c] = cd->out[c] = cd->dropped[c] = cd->lost[c] = 0;
	}
}

#define BPFCTL_CHAIN_ADD(cd, field, c, k)                                   \
	do {                                                                \
		(cd)->field[(c) & (BPFCTL_PKT_MAX_CHAINS - 1)] += (k);      \
		(cd)->touched |= 1ull << ((c) & (BPFCTL_PKT_MAX_CHAINS - 1)); \
	} while (0)

/* A single-writer counter (an instance's own, a port's RX-thread-only ones): no RMW needed. */
static inline void bpfctl_counter_add(_Atomic uint64_t *c, uint64_t k)
{
	if (k)
		atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + k, memory_order_relaxed);
}

/*
 * Read function `fn`'s live ring list under its seqlock: retries while the supervisor writes it.
 * Returns nlive (0: no instance takes frames). A writer that never finishes (killed mid-write)
 * is given up on after a while: the batch sees no instance rather than hanging the data path.
 */
static inline uint32_t bpfctl_plane_live(const struct bpfctl_plane *pl, uint32_t fn, uint16_t *rings)
{
	const struct bpfctl_fn_entry *f = &pl->fns[fn];

	for (unsigned tries = 0; tries < 100000; tries++) {
		uint32_t s1 = atomic_load_explicit(&f->seq, memory_order_acquire);

		if (s1 & 1) {
			if (tries > 64)
				sched_yield();
			else
				bpfctl_cpu_relax();
			continue;
		}
		uint32_t n = atomic_load_explicit(&f->nlive, memory_order_relaxed);

		if (n > BPFCTL_PKT_MAX_INST)
			n = BPFCTL_PKT_MAX_INST;
		for (uint32_t i = 0; i < n; i++)
			rings[i] = atomic_load_explicit(&f->live_ring[i], memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&f->seq, memory_order_relaxed) == s1)
			return n;
	}
	return 0;
}

/* What one bpfctl_pkt_route call did, for the caller's own counters. */
struct bpfctl_route_result {
	uint32_t passed;      /* handed to a ring (a next hop, or ring 0 to transmit) */
	uint32_t no_instance; /* next function has no live instance: freed */
	uint32_t ring_full;   /* the chosen ring was full: freed */
	uint32_t dropped;     /* the chain's egress is drop: freed */
	uint32_t invalid;     /* bad chain, port or hop in the descriptor: freed */
	uint32_t wakeups;     /* futex wakes made */
};

#define BPFCTL_ROUTE_MAX 64u
#define BPFCTL__DEST_DROP 0xfffffffeu    /* egress drop */
#define BPFCTL__DEST_NOINST 0xfffffffdu  /* no live instance */
#define BPFCTL__DEST_INVALID 0xfffffffcu /* nonsense in the descriptor */

/*
 * Send `n` (<= BPFCTL_ROUTE_MAX) frames this process holds on to where their chain says next.
 * Each descriptor's `hop` is the index of the function that should receive it: < nhops goes to
 * an instance of chains[chain].hops[hop], picked as live_ring[hash % nlive] from a list read once
 * per batch; == nhops (or more) is the chain's egress: tx goes to ring 0 with port = the egress
 * port, drop frees it. A descriptor with flag BPFCTL_PKT_DESC_TX goes to ring 0 as it is (its
 * port already says where). Frames that cannot go on are freed and counted.
 *
 * Ownership moves to the ring before each slot is published. Chain counters (dropped, lost) are
 * added here; the caller counts `passed` and the losses in its own counters.
 */
static inline void bpfctl_pkt_route(struct bpfctl_plane *pl, struct bpfctl_pkt_desc *d, uint32_t n,
				    struct bpfctl_route_result *res, struct bpfctl_chain_delta *cd)
{
	uint32_t dest[BPFCTL_ROUTE_MAX];
	uint16_t live[BPFCTL_PKT_MAX_FNS][BPFCTL_PKT_MAX_INST];
	uint32_t nlive[BPFCTL_PKT_MAX_FNS];
	uint32_t loaded = 0; /* bit f: live[f] read in this batch */
	struct bpfctl_free_batch fb;

	fb.n = 0;
	memset(res, 0, sizeof(*res));
	if (n > BPFCTL_ROUTE_MAX)
		n = BPFCTL_ROUTE_MAX;
	for (uint32_t i = 0; i < n; i++) {
		struct bpfctl_pkt_desc *x = &d[i];

		if (x->flags & BPFCTL_PKT_DESC_TX) {
			dest[i] = x->port < pl->nports ? 0 : BPFCTL__DEST_INVALID;
			continue;
		}
		if (x->chain >= pl->nchains) {
			dest[i] = BPFCTL__DEST_INVALID;
			continue;
		}
		const struct bpfctl_chain_entry *c = &pl->chains[x->chain];
		uint32_t nhops = atomic_load_explicit(&c->nhops, memory_order_acquire);

		if (nhops > BPFCTL_PKT_MAX_HOPS)
			nhops = BPFCTL_PKT_MAX_HOPS;
		if (x->hop >= nhops) {
			if (atomic_load_explicit(&c->egress_kind, memory_order_relaxed) == BPFCTL_PKT_EGRESS_TX) {
				uint8_t port = atomic_load_explicit(&c->egress_port, memory_order_relaxed);

				x->port = port;
				x->flags |= BPFCTL_PKT_DESC_TX;
				dest[i] = port < pl->nports ? 0 : BPFCTL__DEST_INVALID;
			} else {
				dest[i] = BPFCTL__DEST_DROP;
			}
			continue;
		}
		uint32_t fn = atomic_load_explicit(&c->hops[x->hop], memory_order_relaxed);

		if (fn >= pl->nfns) {
			dest[i] = BPFCTL__DEST_INVALID;
			continue;
		}
		if (!(loaded & (1u << fn))) {
			nlive[fn] = bpfctl_plane_live(pl, fn, live[fn]);
			loaded |= 1u << fn;
		}
		if (!nlive[fn]) {
			dest[i] = BPFCTL__DEST_NOINST;
			continue;
		}
		uint32_t ring = live[fn][x->hash % nlive[fn]];

		dest[i] = ring < pl->ring_count ? ring : BPFCTL__DEST_NOINST;
	}

	/* One claim per destination ring, frames kept in their order (a flow never overtakes itself). */
	struct bpfctl_pkt_desc out[BPFCTL_ROUTE_MAX];
	uint8_t done[BPFCTL_ROUTE_MAX];

	memset(done, 0, n);
	for (uint32_t i = 0; i < n; i++) {
		if (done[i])
			continue;
		uint32_t to = dest[i], k = 0;

		for (uint32_t j = i; j < n; j++) {
			if (!done[j] && dest[j] == to) {
				out[k++] = d[j];
				done[j] = 1;
			}
		}
		uint32_t pushed = 0;

		if (to < pl->ring_count) {
			struct bpfctl_ring r = bpfctl_plane_ring(pl, to);
			uint64_t pos;

			pushed = bpfctl_ring_claim(&r, k, &pos);
			for (uint32_t j = 0; j < pushed; j++)
				bpfctl_plane_set_owner(pl, out[j].addr, BPFCTL_PKT_RING_OWNER | to);
			if (pushed) {
				bpfctl_ring_publish(&r, pos, out, pushed);
				res->wakeups += (uint32_t)bpfctl_ring_wake(&r);
			}
			res->passed += pushed;
			res->ring_full += k - pushed;
		} else if (to == BPFCTL__DEST_DROP) {
			res->dropped += k;
		} else if (to == BPFCTL__DEST_NOINST) {
			res->no_instance += k;
		} else {
			res->invalid += k;
		}
		for (uint32_t j = pushed; j < k; j++) {
			if (out[j].chain < BPFCTL_PKT_MAX_CHAINS) {
				if (to == BPFCTL__DEST_DROP)
					BPFCTL_CHAIN_ADD(cd, dropped, out[j].chain, 1);
				else
					BPFCTL_CHAIN_ADD(cd, lost, out[j].chain, 1);
			}
			bpfctl_free_batch_add(pl, &fb, &out[j]);
		}
	}
	bpfctl_free_batch_flush(pl, &fb);
}

#endif /* BPFCTL_PACKET_PLANE_H */
