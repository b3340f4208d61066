// SPDX-License-Identifier: MIT
/* The hop loops (roles.h). */
#define _GNU_SOURCE
#include "roles.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void relaxed_add(_Atomic uint64_t *p, uint64_t v)
{
	/* one writer per counter: a plain load and store, no locked instruction */
	atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + v, memory_order_relaxed);
}

void db_fail(struct db_ctl *c, const char *fmt, ...)
{
	va_list ap;

	if (!atomic_exchange(&c->failed, 1)) {
		va_start(ap, fmt);
		vsnprintf(c->error, sizeof(c->error), fmt, ap);
		va_end(ap);
	}
	_exit(1);
}

/* Sleeps until at most half the window is in flight. Same in every variant (not the transport's cost). */
static void window_wait(struct db_ctl *c, struct db_role_stats *st, uint64_t seq)
{
	const uint64_t resume = seq - DB_WINDOW / 2;

	while (seq + DB_BATCH - atomic_load_explicit(&c->consumed, memory_order_acquire) > DB_WINDOW) {
		uint32_t w = atomic_load_explicit(&c->credit_wake, memory_order_acquire);

		atomic_store_explicit(&c->credit_want, resume, memory_order_relaxed);
		atomic_store_explicit(&c->credit_waiting, 1, memory_order_relaxed);
		/* pairs with the consumer's fence: it sees us waiting, or we see what it consumed */
		atomic_thread_fence(memory_order_seq_cst);
		if (atomic_load_explicit(&c->consumed, memory_order_acquire) >= resume ||
		    atomic_load_explicit(&c->phase, memory_order_relaxed) == DB_STOP) {
			atomic_store_explicit(&c->credit_waiting, 0, memory_order_relaxed);
			return;
		}
		struct timespec ts = { 0, 100 * 1000000L };

		syscall(SYS_futex, (uint32_t *)&c->credit_wake, FUTEX_WAIT, w, &ts, NULL, 0);
		relaxed_add(&st->gate, 1);
		atomic_store_explicit(&c->credit_waiting, 0, memory_order_relaxed);
	}
}

static void window_release(struct db_ctl *c, struct db_role_stats *st, uint64_t consumed)
{
	atomic_store_explicit(&c->consumed, consumed, memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&c->credit_waiting, memory_order_relaxed) &&
	    consumed >= atomic_load_explicit(&c->credit_want, memory_order_relaxed) &&
	    atomic_exchange_explicit(&c->credit_waiting, 0, memory_order_relaxed)) {
		atomic_fetch_add_explicit(&c->credit_wake, 1, memory_order_release);
		syscall(SYS_futex, (uint32_t *)&c->credit_wake, FUTEX_WAKE, 1, NULL, NULL, 0);
		relaxed_add(&st->gate, 1);
	}
}

static void ts_add(struct timespec *t, uint64_t ns)
{
	uint64_t v = (uint64_t)t->tv_nsec + ns;

	t->tv_sec += (time_t)(v / 1000000000ull);
	t->tv_nsec = (long)(v % 1000000000ull);
}

void db_producer(struct db_ctl *c, uint8_t *base, struct db_ep *out, uint64_t rate)
{
	struct db_role_stats *st = &c->role[DB_PRODUCER];
	struct bpfctl_pkt_desc d[DB_BATCH];
	const uint64_t interval = rate ? (uint64_t)DB_BATCH * 1000000000ull / rate : 0;
	struct timespec next;
	uint64_t seq = 0;

	memset(d, 0, sizeof(d));
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		uint32_t ph = atomic_load_explicit(&c->phase, memory_order_acquire);

		if (ph == DB_STOP)
			return;
		if (ph == DB_SETUP || ph == DB_QUIET) {
			/* nothing to send: asleep until the launcher moves the phase on */
			struct timespec ts = { 1, 0 };

			syscall(SYS_futex, (uint32_t *)&c->phase, FUTEX_WAIT, ph, &ts, NULL, 0);
			clock_gettime(CLOCK_MONOTONIC, &next);
			continue;
		}
		if (interval) {
			/*
			 * Paced: batch k is due at start + k * interval. A late producer (descheduled, or held
			 * by the window while the chain stalled) sends what is due at once, as a NIC's queue
			 * delivers what piled up, so the offered rate stays the same for every variant; only
			 * more than 20 ms behind does it give up on the missed batches.
			 */
			struct timespec now;

			ts_add(&next, interval);
			clock_gettime(CLOCK_MONOTONIC, &now);
			int64_t late = (int64_t)(now.tv_sec - next.tv_sec) * 1000000000ll + (now.tv_nsec - next.tv_nsec);

			if (late > 20000000) {
				relaxed_add(&st->skipped, (uint64_t)late / interval);
				next = now;
			} else if (late > 1000000) {
				relaxed_add(&st->late, 1);
			} else if (late < 0) {
				clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
			}
		}
		window_wait(c, st, seq);
		uint64_t t = now_ns();

		for (uint32_t i = 0; i < DB_BATCH; i++) {
			uint64_t s = seq + i;
			uint32_t off = (uint32_t)DB_BUFS_OFF + (uint32_t)(s & (DB_NBUF - 1)) * DB_BUF_SIZE + BPFCTL_PKT_HEADROOM;

			memcpy(base + off, &t, sizeof(t));
			d[i].addr = off;
			d[i].gen = (uint32_t)s;
			d[i].len = DB_FRAME_LEN;
			d[i].hash = (uint16_t)(s * 2654435761u >> 16);
			d[i].hop = 1;
		}
		int rc = db_ep_send(out, d, DB_BATCH);

		if (rc < 0)
			db_fail(c, "producer: send: %s", strerror(-rc));
		seq += DB_BATCH;
		relaxed_add(&st->batches, 1);
		relaxed_add(&st->descs, DB_BATCH);
	}
}

void db_middle(struct db_ctl *c, struct db_ep *in, struct db_ep *out)
{
	struct db_role_stats *st = &c->role[DB_MIDDLE];
	struct bpfctl_pkt_desc d[DB_BATCH];

	for (;;) {
		int n = db_ep_recv(in, d, DB_BATCH);

		if (n == 0)
			return;
		if (n < 0)
			db_fail(c, "middle hop: receive: %s", strerror(-n));
		for (int i = 0; i < n; i++)
			d[i].hop++;
		int rc = db_ep_send(out, d, (uint32_t)n);

		if (rc < 0)
			db_fail(c, "middle hop: send: %s", strerror(-rc));
		relaxed_add(&st->batches, 1);
		relaxed_add(&st->descs, (uint64_t)n);
	}
}

void db_consumer(struct db_ctl *c, uint8_t *base, struct db_ep *in)
{
	struct db_role_stats *st = &c->role[DB_CONSUMER];
	struct bpfctl_pkt_desc d[DB_BATCH];
	uint32_t expect = 0;
	uint64_t consumed = 0;

	for (;;) {
		int n = db_ep_recv(in, d, DB_BATCH);

		if (n == 0)
			return;
		if (n < 0)
			db_fail(c, "consumer: receive: %s", strerror(-n));
		uint64_t t = now_ns();
		int measuring = atomic_load_explicit(&c->phase, memory_order_relaxed) == DB_MEASURE;
		uint64_t errors = 0, sum = 0;

		for (int i = 0; i < n; i++) {
			const struct bpfctl_pkt_desc *p = &d[i];

			if (p->gen != expect || p->hop != 2 || p->len != DB_FRAME_LEN || p->addr < DB_BUFS_OFF ||
			    p->addr > DB_MEM_SIZE - sizeof(uint64_t)) {
				errors++;
				expect = p->gen + 1;
				continue;
			}
			expect++;
			if (!measuring)
				continue;
			uint64_t stamp;

			memcpy(&stamp, base + p->addr, sizeof(stamp));
			uint64_t lat = t > stamp ? t - stamp : 0;

			relaxed_add(&c->hist[db_bucket(lat)], 1);
			sum += lat;
		}
		if (errors)
			relaxed_add(&c->errors, errors);
		if (measuring) {
			relaxed_add(&c->measured, (uint64_t)n - errors);
			relaxed_add(&c->lat_sum_ns, sum);
		}
		consumed += (uint64_t)n;
		relaxed_add(&st->batches, 1);
		relaxed_add(&st->descs, (uint64_t)n);
		window_release(c, st, consumed);
	}
}
