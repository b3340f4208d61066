/* SPDX-License-Identifier: MIT */
/*
 * Packet rings (docs/packet-chains.md, "Rings"): bounded multi-producer single-consumer queues of
 * 16-byte descriptors in the shared pool file, Vyukov's per-slot sequence numbers.
 *
 *   slot i starts with seq = i
 *   producer: claims k slots at position t with one CAS tail t -> t+k, once the last of them is
 *             free (seq == t+k-1; the consumer frees in order, so the earlier ones are too),
 *             writes the descriptors, publishes each with seq = pos + 1 (release)
 *   consumer: takes slots while seq == head + 1, marks each seq = pos + slots, advances head
 *
 * One CAS per batch on the producers' line, one store per batch on the consumer's, and per frame
 * only the slot itself. Positions are u64 and never wrap.
 *
 * Sleeping (event mode): an empty consumer reads `wake`, sets `waiting`, fences, looks once more
 * and FUTEX_WAITs on `wake`; a producer fences after publishing and, if it sees `waiting`, clears
 * it, bumps `wake` and FUTEX_WAKEs: at most one syscall per batch, none while the consumer is busy.
 * The futex is not private: the word lives in a shared file mapping other processes map.
 *
 * Limit: a producer killed between its claim and its publish stalls the ring (the consumer takes
 * slots in order) until the ring's function is restarted; that window is a few stores long.
 */
#ifndef BPFCTL_PACKET_RING_H
#define BPFCTL_PACKET_RING_H

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>

#include "packet_layout.h"

/* Declared here too: <unistd.h> hides it unless _DEFAULT_SOURCE or _GNU_SOURCE came first. */
extern long syscall(long number, ...);

/* A ring as seen by one process: where its header and slots are in this mapping. */
struct bpfctl_ring {
	struct bpfctl_ring_hdr *hdr;
	struct bpfctl_ring_slot *slot;
	uint64_t size; /* slots, a power of two */
	uint64_t mask;
};

static inline void bpfctl_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* The ring whose header is at `mem` (ring_stride bytes: header, then `slots` slots). */
static inline struct bpfctl_ring bpfctl_ring_at(void *mem, uint32_t slots)
{
	struct bpfctl_ring r;

	r.hdr = (struct bpfctl_ring_hdr *)mem;
	r.slot = (struct bpfctl_ring_slot *)((uint8_t *)mem + sizeof(struct bpfctl_ring_hdr));
	r.size = slots;
	r.mask = (uint64_t)slots - 1;
	return r;
}

/* Lay out an empty ring (the supervisor does this for the plane; tests use it on their own memory). */
static inline void bpfctl_ring_init(void *mem, uint32_t slots)
{
	struct bpfctl_ring r = bpfctl_ring_at(mem, slots);

	atomic_store_explicit(&r.hdr->tail, 0, memory_order_relaxed);
	atomic_store_explicit(&r.hdr->head, 0, memory_order_relaxed);
	atomic_store_explicit(&r.hdr->waiting, 0, memory_order_relaxed);
	atomic_store_explicit(&r.hdr->wake, 0, memory_order_relaxed);
	atomic_store_explicit(&r.hdr->consumer_pid, 0, memory_order_relaxed);
	for (uint64_t i = 0; i < r.size; i++)
		atomic_store_explicit(&r.slot[i].seq, i, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

/*
 * Claim up to `n` consecutive slots; returns how many (0: full) and their first position in *pos.
 * The caller must bpfctl_ring_publish exactly that many, soon: the consumer waits on them in order.
 */
static inline uint32_t bpfctl_ring_claim(const struct bpfctl_ring *r, uint32_t n, uint64_t *pos)
{
	uint64_t t = atomic_load_explicit(&r->hdr->tail, memory_order_relaxed);

	for (;;) {
		/* head is only a hint of the room: the slot's own seq decides */
		uint64_t h = atomic_load_explicit(&r->hdr->head, memory_order_acquire);
		uint64_t room = h + r->size - t;
		uint64_t k = n < room ? n : room;

		if (room > r->size) {
			/* t is older than h: another producer moved tail; start over from the new one */
			t = atomic_load_explicit(&r->hdr->tail, memory_order_relaxed);
			continue;
		}
		if (k == 0) {
			uint64_t t2 = atomic_load_explicit(&r->hdr->tail, memory_order_relaxed);

			if (t2 == t)
				return 0;
			t = t2;
			continue;
		}
		uint64_t last = t + k - 1;

		if (atomic_load_explicit(&r->slot[last & r->mask].seq, memory_order_acquire) != last) {
			/* not free yet for position `last`: our t is stale (or the consumer is mid-batch) */
			uint64_t t2 = atomic_load_explicit(&r->hdr->tail, memory_order_relaxed);

			if (t2 == t) {
				/* tail is current, so the consumer has not freed `last` yet: fewer slots */
				n = (uint32_t)(k - 1);
				if (n == 0)
					return 0;
			}
			t = t2;
			continue;
		}
		if (atomic_compare_exchange_weak_explicit(&r->hdr->tail, &t, t + k, memory_order_relaxed, memory_order_relaxed)) {
			*pos = t;
			return (uint32_t)k;
		}
		/* t now holds the current tail */
	}
}

/* Fill the claimed slots pos..pos+n-1 with `d` and hand them to the consumer. */
static inline void bpfctl_ring_publish(const struct bpfctl_ring *r, uint64_t pos, const struct bpfctl_pkt_desc *d, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		struct bpfctl_ring_slot *s = &r->slot[(pos + i) & r->mask];

		s->desc = d[i];
		atomic_store_explicit(&s->seq, pos + i + 1, memory_order_release);
	}
}

static inline void bpfctl__futex(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
	syscall(SYS_futex, (uint32_t *)word, op, val, ts, (uint32_t *)0, 0);
}

/*
 * The producer's half of the sleep protocol, once after publishing a batch: wakes the consumer
 * if it is (about to be) asleep. Returns 1 when it made the syscall.
 */
static inline int bpfctl_ring_wake(const struct bpfctl_ring *r)
{
	/* orders our slot stores before the load of `waiting`; pairs with the consumer's fence */
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(&r->hdr->waiting, memory_order_relaxed))
		return 0;
	/* of several producers that saw it, one wakes */
	if (!atomic_exchange_explicit(&r->hdr->waiting, 0, memory_order_relaxed))
		return 0;
	atomic_fetch_add_explicit(&r->hdr->wake, 1, memory_order_release);
	bpfctl__futex(&r->hdr->wake, FUTEX_WAKE, 1, NULL);
	return 1;
}

/* Push up to `n` descriptors in one claim; returns how many went in (the rest: the ring is full). */
static inline uint32_t bpfctl_ring_push_nowake(const struct bpfctl_ring *r, const struct bpfctl_pkt_desc *d, uint32_t n)
{
	uint64_t pos;
	uint32_t k = n ? bpfctl_ring_claim(r, n, &pos) : 0;

	if (k)
		bpfctl_ring_publish(r, pos, d, k);
	return k;
}

/* Push, then wake the consumer if it sleeps. */
static inline uint32_t bpfctl_ring_push(const struct bpfctl_ring *r, const struct bpfctl_pkt_desc *d, uint32_t n)
{
	uint32_t k = bpfctl_ring_push_nowake(r, d, n);

	if (k)
		bpfctl_ring_wake(r);
	return k;
}

/* Consumer only: take up to `max` descriptors in order; returns how many. */
static inline uint32_t bpfctl_ring_pop(const struct bpfctl_ring *r, struct bpfctl_pkt_desc *out, uint32_t max)
{
	uint64_t h = atomic_load_explicit(&r->hdr->head, memory_order_relaxed);
	uint32_t k = 0;

	while (k < max) {
		struct bpfctl_ring_slot *s = &r->slot[(h + k) & r->mask];

		if (atomic_load_explicit(&s->seq, memory_order_acquire) != h + k + 1)
			break;
		out[k] = s->desc;
		k++;
	}
	/* free them for producers only after reading: a producer may write a slot the moment it is free */
	for (uint32_t i = 0; i < k; i++)
		atomic_store_explicit(&r->slot[(h + i) & r->mask].seq, h + i + r->size, memory_order_release);
	if (k)
		atomic_store_explicit(&r->hdr->head, h + k, memory_order_release);
	return k;
}

/* Consumer only: 1 when the next slot holds nothing published. */
static inline int bpfctl_ring_empty(const struct bpfctl_ring *r)
{
	uint64_t h = atomic_load_explicit(&r->hdr->head, memory_order_relaxed);

	return atomic_load_explicit(&r->slot[h & r->mask].seq, memory_order_acquire) != h + 1;
}

/* Anyone: descriptors claimed and not yet taken (published or about to be). */
static inline uint64_t bpfctl_ring_count(const struct bpfctl_ring *r)
{
	uint64_t h = atomic_load_explicit(&r->hdr->head, memory_order_acquire);
	uint64_t t = atomic_load_explicit(&r->hdr->tail, memory_order_acquire);

	return t > h ? t - h : 0;
}

/*
 * Consumer only: sleep until a producer publishes, up to timeout_ms (< 0: no limit). Returns 1
 * when it slept and was woken (or the word moved), 0 when the ring was not empty after all,
 * -ETIMEDOUT or -EINTR (a signal: the caller checks why).
 */
static inline int bpfctl_ring_wait(const struct bpfctl_ring *r, int timeout_ms)
{
	uint32_t w = atomic_load_explicit(&r->hdr->wake, memory_order_acquire);

	atomic_store_explicit(&r->hdr->waiting, 1, memory_order_relaxed);
	/* pairs with the producer's fence: either it sees waiting, or we see its slot */
	atomic_thread_fence(memory_order_seq_cst);
	if (!bpfctl_ring_empty(r)) {
		atomic_store_explicit(&r->hdr->waiting, 0, memory_order_relaxed);
		return 0;
	}
	struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };
	long rc = syscall(SYS_futex, (uint32_t *)&r->hdr->wake, FUTEX_WAIT, w, timeout_ms < 0 ? NULL : &ts, (uint32_t *)0, 0);
	int err = rc < 0 ? errno : 0;

	/* a producer that comes later sees no sleeper and makes no syscall */
	atomic_store_explicit(&r->hdr->waiting, 0, memory_order_relaxed);
	if (rc == 0 || err == EAGAIN)
		return 1;
	return err == ETIMEDOUT ? -ETIMEDOUT : -EINTR;
}

/*
 * Wake whoever sleeps on the ring without publishing anything (a stop request, from a signal
 * handler too: atomics and syscall(2) are async-signal-safe).
 */
static inline void bpfctl_ring_kick(const struct bpfctl_ring *r)
{
	atomic_fetch_add_explicit(&r->hdr->wake, 1, memory_order_release);
	bpfctl__futex(&r->hdr->wake, FUTEX_WAKE, 1, NULL);
}

#endif /* BPFCTL_PACKET_RING_H */
