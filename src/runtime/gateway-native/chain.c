// SPDX-License-Identifier: MIT
/*
 * The gateway's side of the chain: requests in flight, the descriptors it sends (hop 0) and the
 * replies it reads back on its registered chain socket. The same rules as the Node gateway
 * (src/runtime/gateway/gateway.ts): a reply frees the buffer it names once the answer is written;
 * a reply after the deadline is late and harmless (a buffer a function allocated is freed); a
 * descriptor the kernel refused that rode along in a send for us is failed (ours) or bounced back
 * through the chain (another gateway's); generations make every free safe against late replies.
 *
 * Every request has the same reply deadline, so the pending list in arrival order is also in
 * deadline order: expiry walks from the front and stops at the first request still in time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw.h"

/* Exit status asking the supervisor for a restart with a fresh chain socket (as C functions do). */
#define EXIT_RESTART BPFCTL_FN_EXIT_RESTART

static int chain_ok = 1;

int gw_chain_init(void)
{
	uint32_t cap = 16;

	while (cap < 2 * G.max_in_flight)
		cap <<= 1;
	G.pend = calloc(cap, sizeof(*G.pend));
	G.pend_mask = cap - 1;
	G.out_cap = 256;
	G.out = malloc(G.out_cap * sizeof(*G.out));
	G.out_key = malloc(G.out_cap * sizeof(*G.out_key));
	G.next_req = 1;
	return G.pend && G.out && G.out_key ? 0 : -1;
}

int gw_chain_up(void) { return chain_ok; }

const char *gw_fn_name(uint32_t fn, char *tmp, size_t n)
{
	if (fn < GW_MAX_FUNCTIONS && G.fn_names[fn])
		return G.fn_names[fn];
	snprintf(tmp, n, "#%u", fn);
	return tmp;
}

static void free_quietly(uint32_t off, uint32_t gen)
{
	/* refused frees (stale, double) are the point of generations: nothing to do about them */
	bpfctl_pool_free(G.pool, off, gen, 0);
}

static void queue_desc(const struct bpfctl_desc *d, uint32_t key)
{
	if (G.nout == G.out_cap) {
		G.out_cap *= 2;
		G.out = realloc(G.out, G.out_cap * sizeof(*G.out));
		G.out_key = realloc(G.out_key, G.out_cap * sizeof(*G.out_key));
		if (!G.out || !G.out_key) {
			gw_log("out of memory");
			exit(1);
		}
	}
	G.out[G.nout] = *d;
	G.out_key[G.nout++] = key;
}

static void release(struct gw_pending *p)
{
	gw_unlink(&p->by_deadline);
	if (p->conn)
		p->conn->pending = NULL;
	p->used = 0;
	p->conn = NULL;
	G.npending--;
}

static void observe_latency(const struct gw_pending *p)
{
	bpfctl_gw_stats_latency(G.metrics, (double)(gw_now_ns() - p->t0_ns) / 1e9);
}

/* Fails one pending request: its buffer is freed, its client (if still there) answered. */
static void fail(struct gw_pending *p, int status, const char *msg)
{
	struct gw_conn *c = p->conn;

	observe_latency(p);
	free_quietly(p->off, p->gen);
	release(p);
	if (c)
		gw_respond_text(c, status, msg);
	else {
		gw_count_status(status);
		G.stats.client_gone++;
	}
}

struct gw_pending *gw_dispatch(struct gw_conn *c, const struct gw_route *r, const struct bpfctl_buf_ref *ref, uint32_t len)
{
	uint32_t id = G.next_req;

	/* u32 wrap; skip ids whose table entry is still taken */
	while (id == 0 || G.pend[id & G.pend_mask].used)
		id++;
	G.next_req = id + 1;
	struct gw_pending *p = &G.pend[id & G.pend_mask];

	memset(p, 0, sizeof(*p));
	p->used = 1;
	p->conn = c;
	p->req_id = id;
	p->off = ref->offset;
	p->gen = ref->gen;
	p->deadline_ms = G.now_ms + G.timeout_ms;
	p->t0_ns = gw_now_ns();
	p->route_slot = r->slot;
	p->route_version = r->version;
	p->nhops = (uint8_t)r->len;
	memcpy(p->hops, r->hops, sizeof(p->hops));
	gw_append(&G.pending_list, &p->by_deadline);
	G.npending++;
	c->pending = p;

	struct bpfctl_desc d = { .route = (uint16_t)r->slot, .hop = 0, .flags = 0, .gw_inst = (uint16_t)G.gw_inst, .status = 0,
				 .req_id = id, .buf_off = ref->offset, .buf_len = len, .buf_gen = ref->gen };

	queue_desc(&d, r->hops[0]);
	return p;
}

/* wire.ts canBounce(): refused only for its target (no live instance, dead socket), and not already on its way back. */
static int can_bounce(const struct bpfctl_desc *d, int len)
{
	uint32_t reason = (d->flags & BPFCTL_DESC_DROP_REASON_MASK) >> BPFCTL_DESC_DROP_REASON_SHIFT;

	if (!(d->flags & BPFCTL_DESC_FLAG_DROPPED) || len < 0 || d->hop >= len || (d->flags & BPFCTL_DESC_FLAG_ERROR))
		return 0;
	return reason == BPFCTL_DROP_NO_INSTANCE || reason == BPFCTL_DROP_DEAD_SOCKET;
}

static struct gw_pending *lookup(uint32_t req_id)
{
	struct gw_pending *p = &G.pend[req_id & G.pend_mask];

	return p->used && p->req_id == req_id ? p : NULL;
}

static void on_reply(struct bpfctl_desc *d)
{
	int fresh = (d->flags & BPFCTL_DESC_FLAG_RESPONSE_NEW_BUF) != 0;

	if ((d->flags & BPFCTL_DESC_FLAG_DROPPED) || d->gw_inst != G.gw_inst) {
		/* not a reply: a descriptor the kernel refused (it rode along in a send with one for
		 * us), or a reply for another gateway. Ours: fail it; others: back through the chain. */
		int len = gw_route_len(&G.maps, d->route);

		G.stats.misrouted++;
		if (d->gw_inst == G.gw_inst) {
			struct gw_pending *p = lookup(d->req_id);

			if (fresh)
				free_quietly(d->buf_off, d->buf_gen);
			if (p)
				fail(p, can_bounce(d, len) ? 503 : 502, "the chain refused the request\n");
		} else if (can_bounce(d, len) || !(d->flags & BPFCTL_DESC_FLAG_DROPPED)) {
			if (d->flags & BPFCTL_DESC_FLAG_DROPPED) {
				d->flags = (uint8_t)((d->flags & ~(BPFCTL_DESC_FLAG_DROPPED | BPFCTL_DESC_DROP_REASON_MASK)) | BPFCTL_DESC_FLAG_ERROR);
				d->status = 503;
				d->hop = (uint8_t)len;
				d->buf_len = 0;
			}
			queue_desc(d, 0x10000u + d->gw_inst);
		}
		return;
	}
	struct gw_pending *p = lookup(d->req_id);

	if (!p) {
		/* after a timeout: the original was freed then; a buffer a function allocated is ours to free */
		G.stats.late++;
		if (fresh && bpfctl_pool_validate(G.pool, d->buf_off, d->buf_gen))
			free_quietly(d->buf_off, d->buf_gen);
		return;
	}
	struct gw_conn *c = p->conn;
	uint32_t p_off = p->off, p_gen = p->gen;
	int error = (d->flags & BPFCTL_DESC_FLAG_ERROR) != 0;
	int status = error ? (d->status ? d->status : 500) : 200;

	bpfctl_gw_stats_reply(G.metrics, p->route_slot, p->route_version);
	observe_latency(p);
	release(p);
	G.stats.replies++;
	int sound = fresh ? bpfctl_pool_validate(G.pool, d->buf_off, d->buf_gen) : d->buf_off == p_off && d->buf_gen == p_gen;

	if (!sound) {
		/* the descriptor lost track of its buffer (a bug in a function, a stale hop): fail safe */
		if (!fresh)
			free_quietly(p_off, p_gen);
		if (c)
			gw_respond_text(c, 502, "chain returned an invalid buffer\n");
		else {
			gw_count_status(502);
			G.stats.client_gone++;
		}
		return;
	}
	uint32_t len = d->buf_len < G.pool->buf_size ? d->buf_len : G.pool->buf_size;

	if (!c) {
		gw_count_status(status);
		G.stats.client_gone++;
		free_quietly(d->buf_off, d->buf_gen);
		return;
	}
	if (len == 0 && error) {
		free_quietly(d->buf_off, d->buf_gen);
		gw_respond_text(c, status, NULL); /* the status's reason phrase */
		return;
	}
	/* the answer is written straight from the pool buffer, which is freed once written */
	gw_respond_pool(c, status, error ? "text/plain; charset=utf-8" : "application/octet-stream", d->buf_off, d->buf_gen, len);
}

static void chain_failed(const char *why)
{
	if (!chain_ok)
		return;
	chain_ok = 0;
	gw_log("chain socket %s; failing what it carried and exiting %d for a restart", why, EXIT_RESTART);
	gw_fail_all(503, "chain socket down\n");
}

int gw_chain_exit_code(void) { return chain_ok ? 0 : EXIT_RESTART; }

void gw_chain_readable(void)
{
	static uint8_t buf[64 * 1024];

	if (!chain_ok)
		return;
	for (int turns = 0; turns < 4; turns++) {
		ssize_t n = read(G.chain_fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			chain_failed(n == 0 ? "closed" : strerror(errno));
			return;
		}
		size_t at = 0, have = (size_t)n;

		/* TCP keeps no boundaries: a descriptor may be split across reads */
		if (G.ncarry) {
			size_t take = BPFCTL_DESC_SIZE - G.ncarry < have ? BPFCTL_DESC_SIZE - G.ncarry : have;

			memcpy(G.carry + G.ncarry, buf, take);
			G.ncarry += take;
			at = take;
			if (G.ncarry < BPFCTL_DESC_SIZE)
				continue;
			struct bpfctl_desc d;

			memcpy(&d, G.carry, sizeof(d));
			G.ncarry = 0;
			on_reply(&d);
		}
		for (; at + BPFCTL_DESC_SIZE <= have; at += BPFCTL_DESC_SIZE) {
			struct bpfctl_desc d;

			memcpy(&d, buf + at, sizeof(d));
			on_reply(&d);
		}
		if (at < have) {
			memcpy(G.carry, buf + at, have - at);
			G.ncarry = have - at;
		}
		if ((size_t)n < sizeof(buf))
			return;
	}
}

static void set_chain_out(int on)
{
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u64 = 2 };

	epoll_ctl(G.epfd, EPOLL_CTL_MOD, G.chain_fd, &ev);
}

static void send_queued(void)
{
	while (G.wq_len) {
		ssize_t w = send(G.chain_fd, G.wq, G.wq_len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			set_chain_out(1);
			return;
		}
		if (w < 0) {
			/* EACCES: the socket is poisoned (docs/design.md gotcha 4) */
			G.wq_len = 0;
			chain_failed(strerror(errno));
			return;
		}
		memmove(G.wq, G.wq + w, G.wq_len - (size_t)w);
		G.wq_len -= (size_t)w;
	}
	set_chain_out(0);
}

void gw_chain_writable(void) { send_queued(); }

/* Every descriptor of this loop turn in one send, those for one destination next to each other. */
void gw_chain_flush(void)
{
	if (!G.nout)
		return;
	if (!chain_ok) {
		for (uint32_t i = 0; i < G.nout; i++) {
			struct gw_pending *p = G.out[i].gw_inst == G.gw_inst && !(G.out[i].flags & BPFCTL_DESC_FLAG_ERROR) ? lookup(G.out[i].req_id) : NULL;

			if (p)
				fail(p, 503, "chain socket down\n");
		}
		G.nout = 0;
		return;
	}
	size_t need = G.wq_len + (size_t)G.nout * BPFCTL_DESC_SIZE;

	if (need > G.wq_cap) {
		G.wq_cap = need * 2;
		G.wq = realloc(G.wq, G.wq_cap);
		if (!G.wq) {
			gw_log("out of memory");
			exit(1);
		}
	}
	uint8_t *w = G.wq + G.wq_len;
	uint32_t n = G.nout;

	/* stable grouping by destination, in order of first appearance (a few destinations: a scan) */
	for (uint32_t i = 0; i < n; i++) {
		if (G.out_key[i] == 0xffffffffu)
			continue;
		uint32_t k = G.out_key[i];

		for (uint32_t j = i; j < n; j++) {
			if (G.out_key[j] != k)
				continue;
			memcpy(w, &G.out[j], BPFCTL_DESC_SIZE);
			w += BPFCTL_DESC_SIZE;
			G.out_key[j] = 0xffffffffu;
		}
	}
	G.wq_len = need;
	G.nout = 0;
	send_queued();
}

void gw_expire_pending(void)
{
	while (!gw_list_empty(&G.pending_list)) {
		struct gw_pending *p = GW_CONTAINER(G.pending_list.next, struct gw_pending, by_deadline);

		if (p->deadline_ms > G.now_ms)
			break;
		G.stats.timeouts++;
		fail(p, 504, "chain timed out\n");
	}
}

void gw_instance_down(uint32_t fn, uint32_t inst, const uint16_t *before, uint32_t nbefore)
{
	char tmp[32], msg[160];
	int failed = 0;

	if (nbefore == 0)
		return;
	int n = snprintf(msg, sizeof(msg), "instance %u of %s died\n", inst, gw_fn_name(fn, tmp, sizeof(tmp)));
	for (struct gw_link *l = G.pending_list.next, *next; l != &G.pending_list; l = next) {
		struct gw_pending *p = GW_CONTAINER(l, struct gw_pending, by_deadline);
		int on_route = 0;

		next = l->next;
		for (uint32_t i = 0; i < p->nhops; i++)
			on_route |= p->hops[i] == fn;
		/* the kernel sent it to before[req_id % count] at that function */
		if (!on_route || before[p->req_id % nbefore] != inst)
			continue;
		fail(p, 503, msg);
		failed++;
	}
	if (failed)
		gw_log("failed %d request%s: %.*s", failed, failed == 1 ? "" : "s", n - 1, msg);
}

void gw_fail_all(int status, const char *msg)
{
	while (!gw_list_empty(&G.pending_list))
		fail(GW_CONTAINER(G.pending_list.next, struct gw_pending, by_deadline), status, msg);
}
