// SPDX-License-Identifier: MIT
/* Send and receive for each transport (transport.h). */
#define _GNU_SOURCE
#include "transport.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int ring_send(struct db_ep *e, const struct bpfctl_pkt_desc *d, uint32_t n)
{
	uint32_t k = 0;

	while (k < n) {
		uint32_t got = bpfctl_ring_push_nowake(&e->ring, d + k, n - k);

		if (!got) {
			/* cannot happen inside the window (DB_WINDOW <= DB_RING_SLOTS); counted if it does */
			atomic_fetch_add_explicit(&e->st->full, 1, memory_order_relaxed);
			sched_yield();
			continue;
		}
		k += got;
	}
	/* the sleep protocol's producer half, once per batch as packet.h's senders do */
	if (bpfctl_ring_wake(&e->ring))
		atomic_fetch_add_explicit(&e->st->syscalls, 1, memory_order_relaxed);
	return 0;
}

static int ring_recv(struct db_ep *e, struct bpfctl_pkt_desc *d, uint32_t max)
{
	for (;;) {
		uint32_t n = bpfctl_ring_pop(&e->ring, d, max);

		if (n)
			return (int)n;
		if (atomic_load_explicit(e->phase, memory_order_relaxed) == DB_STOP)
			return 0;
		if (e->t == DB_RING_POLL) {
			bpfctl_cpu_relax();
			continue;
		}
		/* as bpfctl_nf_recv: the timeout only bounds a lost wakeup (the launcher kicks at stop) */
		if (bpfctl_ring_wait(&e->ring, 1000) != 0)
			atomic_fetch_add_explicit(&e->st->syscalls, 1, memory_order_relaxed);
	}
}

static int sock_send(struct db_ep *e, const struct bpfctl_pkt_desc *d, uint32_t n)
{
	const uint8_t *p = (const uint8_t *)d;
	size_t left = (size_t)n * sizeof(*d);

	while (left) {
		ssize_t w = send(e->fd, p, left, MSG_NOSIGNAL);

		atomic_fetch_add_explicit(&e->st->syscalls, 1, memory_order_relaxed);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		left -= (size_t)w;
	}
	return 0;
}

static int sock_recv(struct db_ep *e, struct bpfctl_pkt_desc *d, uint32_t max)
{
	uint8_t *raw = (uint8_t *)d;

	for (;;) {
		if (e->npart)
			memcpy(raw, e->part, e->npart);
		ssize_t r = recv(e->fd, raw + e->npart, (size_t)max * sizeof(*d) - e->npart, 0);

		atomic_fetch_add_explicit(&e->st->syscalls, 1, memory_order_relaxed);
		if (atomic_load_explicit(e->phase, memory_order_relaxed) == DB_STOP)
			return 0;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EPIPE;
		size_t total = e->npart + (size_t)r;
		uint32_t n = (uint32_t)(total / sizeof(*d));

		e->npart = (uint32_t)(total % sizeof(*d));
		if (e->npart)
			memcpy(e->part, raw + (size_t)n * sizeof(*d), e->npart);
		if (n)
			return (int)n;
	}
}

int db_ep_send(struct db_ep *e, const struct bpfctl_pkt_desc *d, uint32_t n)
{
	return e->t == DB_RING_EVENT || e->t == DB_RING_POLL ? ring_send(e, d, n) : sock_send(e, d, n);
}

int db_ep_recv(struct db_ep *e, struct bpfctl_pkt_desc *d, uint32_t max)
{
	return e->t == DB_RING_EVENT || e->t == DB_RING_POLL ? ring_recv(e, d, max) : sock_recv(e, d, max);
}
