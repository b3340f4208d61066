// SPDX-License-Identifier: MIT
/*
 * pktio's data path (see pktio.c): the RX thread keeps the fill rings stocked from the pool and
 * hands received frames to their chain; the TX thread transmits what ring 0 holds and frees
 * transmitted buffers as their completions come back.
 */
#include "pktio.h"

/* --- buffers --- */

/* Top up one RX socket's fill ring from the pool. Returns 0 when the pool ran dry. */
int refill(struct xq *x)
{
	uint32_t idx[BATCH], gen[BATCH], at;
	int ok = 1;

	while (x->in_kernel < g.fill_target) {
		uint32_t want = g.fill_target - x->in_kernel;

		if (want > BATCH)
			want = BATCH;
		want = xsk_prod_nb_free(&x->fill, want) < want ? xsk_prod_nb_free(&x->fill, want) : want;
		if (!want)
			break;
		uint32_t got = bpfctl_pool_alloc_bulk(g.pool, g.pid, idx, gen, want);

		if (!got) {
			ok = 0;
			break;
		}
		if (xsk_ring_prod__reserve(&x->fill, got, &at) != got) {
			/* cannot happen (we checked the room); give them back rather than lose them */
			bpfctl_pool_free_bulk(g.pool, idx, gen, got);
			break;
		}
		for (uint32_t i = 0; i < got; i++) {
			uint32_t off = bpfctl_plane_buf_off(&g.plane, idx[i]);

			g.gen_of[idx[i]] = gen[i];
			/*
			 * No chain word where the classifier's would go: a frame that arrives untagged (a
			 * driver without room for metadata) must not find an old one from the buffer's
			 * last use and be taken for a chain's.
			 */
			memset(g.pool->base + off + BPFCTL_PKT_HEADROOM - 4, 0, 4);
			*xsk_ring_prod__fill_addr(&x->fill, at + i) = off;
		}
		xsk_ring_prod__submit(&x->fill, got);
		x->in_kernel += got;
		atomic_fetch_add_explicit(&x->port->entry->posted, got, memory_order_relaxed);
		if (got < want) {
			ok = 0;
			break;
		}
	}
	return ok;
}

/* Free every buffer this process owns (at exit: fill rings, unfinished transmissions). */
uint32_t free_mine(void)
{
	uint32_t idx[BATCH], gen[BATCH], n = 0, total = 0;

	for (uint32_t i = 0; i < g.pool->buf_count; i++) {
		struct bpfctl_pool_meta *m = &g.pool->meta[i];
		uint64_t gs = atomic_load_explicit(&m->gen_state, memory_order_acquire);

		if (atomic_load_explicit(&m->owner, memory_order_relaxed) != g.pid || BPFCTL_POOL_STATE(gs) != BPFCTL_POOL_STATE_IN_USE)
			continue;
		idx[n] = i;
		gen[n] = BPFCTL_POOL_GEN(gs);
		if (++n == BATCH) {
			total += bpfctl_pool_free_bulk(g.pool, idx, gen, n);
			n = 0;
		}
	}
	if (n)
		total += bpfctl_pool_free_bulk(g.pool, idx, gen, n);
	return total;
}

/* --- RX --- */

/*
 * Frames the chains hold now: what entered minus what left them, per the chain counters (every
 * process adds to them once per batch, so this lags by at most a batch per process).
 */
static uint64_t in_flight(void)
{
	uint64_t in = 0, left = atomic_load_explicit(&g.plane.hdr->unattributed_lost, memory_order_relaxed);

	for (uint32_t c = 0; c < g.plane.nchains; c++) {
		struct bpfctl_chain_counters *s = &g.plane.chain_stats[c];

		in += atomic_load_explicit(&s->in, memory_order_relaxed);
		left += atomic_load_explicit(&s->out, memory_order_relaxed) + atomic_load_explicit(&s->dropped, memory_order_relaxed) +
			atomic_load_explicit(&s->lost, memory_order_relaxed);
	}
	return in > left ? in - left : 0;
}

/*
 * Hand `k` received frames of port `p` on to their chains' first functions (or ring 0): the
 * budget check, the chain's `in` and the port's counters. A frame counts as entering its chain
 * here, not when received, so frames a coalescing chain holds are not in flight yet.
 */
static void hand_on(struct bpfctl_pkt_desc *d, uint32_t k, struct port *p, struct bpfctl_chain_delta *cd)
{
	struct bpfctl_free_batch fb;
	struct bpfctl_route_result res;
	uint32_t over = 0;

	if (!k)
		return;
	fb.n = 0;
	for (uint32_t i = 0; i < k; i++)
		BPFCTL_CHAIN_ADD(cd, in, d[i].chain, 1);
	/* over budget: these frames count as entered and lost, and go back to the pool now */
	if (g.max_in_flight) {
		uint64_t now = in_flight();

		over = now >= g.max_in_flight ? k : (now + k > g.max_in_flight ? (uint32_t)(now + k - g.max_in_flight) : 0);
		for (uint32_t i = k - over; i < k; i++) {
			BPFCTL_CHAIN_ADD(cd, lost, d[i].chain, 1);
			bpfctl_free_batch_add(&g.plane, &fb, &d[i]);
		}
		k -= over;
	}
	bpfctl_free_batch_flush(&g.plane, &fb);
	bpfctl_pkt_route(&g.plane, d, k, &res, cd);
	/* now: the next hand_on's budget check reads what this one put in flight */
	bpfctl_chain_delta_flush(&g.plane, cd);
	bpfctl_counter_add(&p->entry->no_chain, res.no_instance + res.invalid + res.dropped);
	bpfctl_counter_add(&p->entry->lost, res.ring_full + over);
}

/*
 * Coalescing (--coalesce CHAIN:US), the RX side of a NIC's interrupt moderation. At a moderate
 * rate every frame finds each process of its chain asleep, and each hop pays a wakeup (several us
 * on a VM) per frame. A coalescing chain's frames therefore wait here, in a window of up to US:
 * whatever arrived by its end goes down the chain as one batch (sooner when a full NF batch is
 * held), so nat, count and the TX thread each wake once per window. When every chain coalesces,
 * the RX thread sleeps on a timer through the window rather than in poll() (frames wait in the
 * kernel's RX ring, and no thread is woken for them), so it too wakes once per window; with a
 * chain that does not coalesce it must keep watching the sockets for that chain's frames.
 *
 * Adaptive, so that a lone frame never waits (the rule: bpf/include/bpfctl/packet_coalesce.h): a
 * window opens only for a frame that came less than US after the chain's previous one (traffic
 * is present), and one that ends with frames held opens the next; one that ends empty closes, and
 * the next frame goes on at once. Idle to first frame, and any rate below one frame per US, is
 * what it was without coalescing.
 */
static void hold_flush(struct bpfctl_hold *h, struct bpfctl_chain_delta *cd)
{
	struct bpfctl_pkt_desc part[BPFCTL_HOLD_MAX];
	uint8_t done[BPFCTL_HOLD_MAX] = { 0 };

	/* per arrival port (whose counters the losses go to), each port's frames in their order */
	for (uint32_t i = 0; i < h->n; i++) {
		uint32_t k = 0;

		if (done[i])
			continue;
		for (uint32_t j = i; j < h->n; j++) {
			if (!done[j] && h->d[j].port == h->d[i].port) {
				part[k++] = h->d[j];
				done[j] = 1;
			}
		}
		hand_on(part, k, g.port_by_id[h->d[i].port], cd);
	}
	h->n = 0;
}

/* Frame `d` of chain `c` received at `now`: held (1), or to go on now (0). */
static int hold_take(uint32_t c, const struct bpfctl_pkt_desc *d, uint64_t now, struct bpfctl_chain_delta *cd)
{
	struct bpfctl_hold *h = &g.hold[c];

	if (!bpfctl_hold_take(h, g.coalesce_ns[c], d, now))
		return 0;
	if (h->n == BPFCTL_HOLD_MAX)
		hold_flush(h, cd);
	return 1;
}

/* Windows that ended: their frames go on. Returns the earliest end still open (0: none). */
static uint64_t holds_due(uint64_t now, struct bpfctl_chain_delta *cd)
{
	uint64_t next = 0;

	for (uint32_t c = 0; g.ncoalesce && c < g.plane.nchains; c++) {
		struct bpfctl_hold *h = &g.hold[c];

		if (bpfctl_hold_due(h, g.coalesce_ns[c], now))
			hold_flush(h, cd);
		if (h->window_end && (!next || h->window_end < next))
			next = h->window_end;
	}
	return next;
}

static void rx_batch(struct xq *x, struct bpfctl_chain_delta *cd, uint64_t now)
{
	struct bpfctl_pkt_desc d[BATCH];
	struct bpfctl_free_batch fb;
	uint32_t at, n = xsk_ring_cons__peek(&x->rx, BATCH, &at), k = 0, no_chain = 0;
	struct port *p = x->port;

	if (!n)
		return;
	fb.n = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct xdp_desc *xd = xsk_ring_cons__rx_desc(&x->rx, at + i);
		uint32_t addr = (uint32_t)xd->addr;
		int64_t bi = bpfctl_plane_buf_index(&g.plane, addr);
		struct bpfctl_pkt_desc *o = &d[k];

		if (bi < 0)
			continue; /* not a pool buffer: the kernel would never; nothing to free */
		o->addr = addr;
		o->gen = g.gen_of[bi];
		o->len = (uint16_t)xd->len;
		o->hop = 0;
		o->port = (uint8_t)p->id;
		o->flags = 0;
		o->chain = 0;
		/* the classifier's word sits right in front of the frame (XDP metadata) */
		uint32_t word = 0, lead = addr - bpfctl_plane_buf_off(&g.plane, (uint32_t)bi);

		if (lead >= 4)
			memcpy(&word, g.pool->base + addr - 4, 4);
		uint32_t chain = word & 0xffffu;
		int ok = (word & BPFCTL_PKT_META_MASK) == BPFCTL_PKT_META_TAG && chain < g.plane.nchains;

		if (ok) {
			struct bpfctl_chain_entry *c = &g.plane.chains[chain];

			ok = atomic_load_explicit(&c->nhops, memory_order_acquire) > 0 ||
			     atomic_load_explicit(&c->egress_kind, memory_order_relaxed) == BPFCTL_PKT_EGRESS_TX;
		}
		if (!ok) {
			no_chain++;
			bpfctl_free_batch_add(&g.plane, &fb, o);
			continue;
		}
		o->chain = (uint8_t)chain;
		o->hash = bpfctl_flow_hash(g.pool->base + addr, o->len);
		if (g.coalesce_ns[chain] && hold_take(chain, o, now, cd))
			continue;
		k++;
	}
	xsk_ring_cons__release(&x->rx, n);
	x->in_kernel -= n;
	atomic_fetch_sub_explicit(&p->entry->posted, n, memory_order_relaxed);
	bpfctl_free_batch_flush(&g.plane, &fb);
	hand_on(d, k, p, cd);
	bpfctl_counter_add(&p->entry->rx, n);
	bpfctl_counter_add(&p->entry->no_chain, no_chain);
}

/* The kernel's own counters, summed over each port's sockets. */
static void copy_stats(void)
{
	for (uint32_t pi = 0; pi < g.nports; pi++) {
		struct port *p = &g.ports[pi];
		uint64_t dropped = 0, full = 0, empty = 0;

		for (uint32_t q = 0; q < p->nq; q++) {
			struct xdp_statistics st;
			socklen_t len = sizeof(st);

			if (getsockopt(p->q[q]->fd, SOL_XDP, XDP_STATISTICS, &st, &len) == 0) {
				dropped += st.rx_dropped;
				full += st.rx_ring_full;
				empty += st.rx_fill_ring_empty_descs;
			}
		}
		atomic_store_explicit(&p->entry->rx_dropped, p->base_dropped + dropped, memory_order_relaxed);
		atomic_store_explicit(&p->entry->rx_ring_full, p->base_full + full, memory_order_relaxed);
		atomic_store_explicit(&p->entry->rx_fill_empty, p->base_empty + empty, memory_order_relaxed);
	}
}

void *rx_thread(void *arg)
{
	struct pollfd pfd[BPFCTL_PKT_MAX_PORTS * MAX_QUEUES + 1];
	struct xq *rxq[BPFCTL_PKT_MAX_PORTS * MAX_QUEUES];
	static struct bpfctl_chain_delta cd;
	uint32_t n = 0;
	uint64_t next_stats = 0;

	(void)arg;
	for (uint32_t i = 0; i < g.nxq; i++) {
		if (!g.xqs[i]->rx_on)
			continue;
		rxq[n] = g.xqs[i];
		pfd[n].fd = g.xqs[i]->fd;
		pfd[n].events = POLLIN;
		n++;
	}
	pfd[n].fd = g.stop_fd;
	pfd[n].events = POLLIN;
	/* every chain coalesces: no frame needs the RX thread before its window ends */
	int timer_only = g.ncoalesce > 0;

	/*
	 * A window's end is a timer: the default 50 us of slack would be added to every held frame's
	 * wait (a window of 200 us became ~250); 1 us keeps the wait what the policy asked for.
	 */
	if (g.ncoalesce)
		prctl(PR_SET_TIMERSLACK, 1000ul, 0, 0, 0);

	for (uint32_t c = 0; c < g.plane.nchains; c++)
		timer_only &= g.coalesce_ns[c] != 0;
	while (!atomic_load_explicit(&g.stop, memory_order_relaxed)) {
		int starving = 0, busy = 0;
		uint64_t t = now_ns();

		for (uint32_t i = 0; i < n; i++) {
			struct xq *x = rxq[i];

			starving |= !refill(x);
			if (xsk_cons_nb_avail(&x->rx, 1)) {
				rx_batch(x, &cd, t);
				busy = 1;
			}
			/* zero-copy drivers may need a nudge to use new fill entries */
			if (g.zerocopy && xsk_ring_prod__needs_wakeup(&x->fill))
				recvfrom(x->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		}
		uint64_t due = g.ncoalesce ? holds_due(t, &cd) : 0;

		if (t >= next_stats) {
			copy_stats();
			next_stats = t + STATS_EVERY_NS;
		}
		/* drain while frames keep coming; block only when every RX ring is empty */
		if (busy)
			continue;
		if (!due) {
			poll(pfd, n + 1, starving ? 10 : 200);
			continue;
		}
		/* a window is open: sleep until it ends (on a timer alone when every chain coalesces) */
		uint64_t left = due > t ? due - t : 0;
		struct timespec ts = { (time_t)(left / 1000000000u), (long)(left % 1000000000u) };

		if (timer_only) {
			struct timespec until = { (time_t)(due / 1000000000u), (long)(due % 1000000000u) };

			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL);
		} else {
			ppoll(pfd, n + 1, &ts, NULL);
		}
	}
	/* held frames go on: the functions drain their rings before they stop */
	for (uint32_t c = 0; c < g.plane.nchains; c++)
		hold_flush(&g.hold[c], &cd);
	copy_stats();
	return NULL;
}

/* --- TX --- */

static void reap(struct xq *x, struct bpfctl_free_batch *fb)
{
	uint32_t at, n;

	while ((n = xsk_ring_cons__peek(&x->comp, BATCH, &at)) > 0) {
		for (uint32_t i = 0; i < n; i++) {
			uint32_t addr = (uint32_t)*xsk_ring_cons__comp_addr(&x->comp, at + i);
			int64_t bi = bpfctl_plane_buf_index(&g.plane, addr);

			if (bi < 0)
				continue;
			if (fb->n == 64)
				bpfctl_free_batch_flush(&g.plane, fb);
			fb->idx[fb->n] = (uint32_t)bi;
			fb->gen[fb->n] = g.gen_of[bi];
			fb->n++;
		}
		xsk_ring_cons__release(&x->comp, n);
		x->tx_pending -= n;
		atomic_fetch_sub_explicit(&x->port->entry->posted, n, memory_order_relaxed);
	}
}

/*
 * Make the kernel transmit what is in the TX ring. Copy mode transmits inside sendto(), a bounded
 * number per call (EAGAIN: more to do, or the completion ring is full: reap and go on).
 */
static void kick(struct xq *x, struct bpfctl_free_batch *fb)
{
	if (g.zerocopy && !xsk_ring_prod__needs_wakeup(&x->tx))
		return;
	for (int i = 0; i < 128; i++) {
		int rc = (int)sendto(x->fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
		int e = rc < 0 ? errno : 0;

		reap(x, fb);
		/* zero-copy: the driver transmits on its own now; copy mode: done when the ring is taken */
		if ((g.zerocopy && rc >= 0) || __atomic_load_n(x->tx.consumer, __ATOMIC_ACQUIRE) == x->tx.cached_prod)
			return;
		/* ENETDOWN and the like: the frames wait in the TX ring for a later kick */
		if (rc < 0 && e != EAGAIN && e != EBUSY && e != ENOBUFS && e != EINTR)
			return;
	}
}

static int tx_sock_ok(const struct port *p) { return p && p->nq > 0; }

static void tx_batch(struct bpfctl_pkt_desc *d, uint32_t n, struct bpfctl_free_batch *fb, struct bpfctl_chain_delta *cd)
{
	struct port *byid[BPFCTL_PKT_MAX_PORTS] = { 0 };
	uint8_t done[BATCH] = { 0 };

	for (uint32_t i = 0; i < g.nports; i++)
		byid[g.ports[i].id] = &g.ports[i];
	for (uint32_t i = 0; i < n; i++) {
		if (!bpfctl_plane_desc_ok(&g.plane, &d[i])) {
			/* stale: its buffer is not ours to touch or free */
			done[i] = 1;
			if (d[i].chain < g.plane.nchains)
				BPFCTL_CHAIN_ADD(cd, lost, d[i].chain, 1);
			continue;
		}
		bpfctl_plane_set_owner(&g.plane, d[i].addr, g.pid);
		g.gen_of[bpfctl_plane_buf_index(&g.plane, d[i].addr)] = d[i].gen;
	}
	/* one reserve, one submit and one kick per port */
	for (uint32_t i = 0; i < n; i++) {
		if (done[i])
			continue;
		struct port *p = d[i].port < BPFCTL_PKT_MAX_PORTS ? byid[d[i].port] : NULL;
		uint32_t sel[BATCH], k = 0;

		for (uint32_t j = i; j < n; j++) {
			if (!done[j] && d[j].port == d[i].port) {
				done[j] = 1;
				if (d[j].len >= 14)
					sel[k++] = j;
				else { /* the kernel would drop it without a completion: never submit it */
					if (p)
						bpfctl_counter_add(&p->entry->tx_fail, 1);
					BPFCTL_CHAIN_ADD(cd, lost, d[j].chain, 1);
					bpfctl_free_batch_add(&g.plane, fb, &d[j]);
				}
			}
		}
		uint32_t sent = 0, at;

		if (tx_sock_ok(p) && k) {
			struct xq *x = p->q[0];
			uint32_t room;

			reap(x, fb);
			room = xsk_prod_nb_free(&x->tx, k);
			if (room < k) {
				kick(x, fb);
				room = xsk_prod_nb_free(&x->tx, k);
			}
			sent = room < k ? room : k;
			if (sent && xsk_ring_prod__reserve(&x->tx, sent, &at) == sent) {
				for (uint32_t j = 0; j < sent; j++) {
					struct xdp_desc *xd = xsk_ring_prod__tx_desc(&x->tx, at + j);

					xd->addr = d[sel[j]].addr;
					xd->len = d[sel[j]].len;
					xd->options = 0;
					BPFCTL_CHAIN_ADD(cd, out, d[sel[j]].chain, 1);
				}
				xsk_ring_prod__submit(&x->tx, sent);
				x->tx_pending += sent;
				atomic_fetch_add_explicit(&p->entry->posted, sent, memory_order_relaxed);
				bpfctl_counter_add(&p->entry->tx, sent);
				kick(x, fb);
			} else {
				sent = 0;
			}
		}
		for (uint32_t j = sent; j < k; j++) {
			if (p)
				bpfctl_counter_add(&p->entry->tx_fail, 1);
			BPFCTL_CHAIN_ADD(cd, lost, d[sel[j]].chain, 1);
			bpfctl_free_batch_add(&g.plane, fb, &d[sel[j]]);
		}
	}
}

static uint32_t tx_pending(void)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < g.nports; i++)
		if (g.ports[i].nq)
			n += g.ports[i].q[0]->tx_pending;
	return n;
}

void *tx_thread(void *arg)
{
	struct bpfctl_ring r0 = ring0();
	struct bpfctl_pkt_desc d[BATCH];
	struct bpfctl_free_batch fb;
	static struct bpfctl_chain_delta cd;
	uint64_t deadline = 0;

	(void)arg;
	fb.n = 0;
	for (;;) {
		uint32_t n = bpfctl_ring_pop(&r0, d, BATCH);

		if (n) {
			tx_batch(d, n, &fb, &cd);
		} else {
			for (uint32_t i = 0; i < g.nports; i++)
				if (g.ports[i].nq)
					reap(g.ports[i].q[0], &fb);
		}
		bpfctl_free_batch_flush(&g.plane, &fb);
		bpfctl_chain_delta_flush(&g.plane, &cd);
		if (atomic_load_explicit(&g.stop, memory_order_relaxed)) {
			/* what is queued goes out, then its completions come back: briefly, then done */
			if (!deadline)
				deadline = now_ns() + 300000000ull;
			if ((n == 0 && tx_pending() == 0) || now_ns() > deadline)
				break;
		}
		if (n)
			continue;
		/* unfinished transmissions: look again soon for their completions */
		bpfctl_ring_wait(&r0, tx_pending() ? 1 : 250);
	}
	uint32_t me = g.pid;

	atomic_compare_exchange_strong(&r0.hdr->consumer_pid, &me, 0);
	return NULL;
}
