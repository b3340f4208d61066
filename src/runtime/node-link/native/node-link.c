// SPDX-License-Identifier: MIT
/*
 * The node-link's data path in C (docs/multi-node.md, "The native data path"): one process, one
 * epoll loop, no threads, started by the agent. It moves descriptors between this node's chain and
 * the other nodes; the agent (src/runtime/node-link/node-link.ts) keeps everything else: the
 * peers' handshakes, pings and state, which sockets exist and what `instances` lists, spilling.
 *
 * Why a process of its own: every crossing passes two node-links (the sender's and the
 * receiver's), each woken for it. In the agent's event loop a pass cost tens of microseconds;
 * here it is a read and a write.
 *
 * What it holds, all handed over by the agent on the control socket (fd 3; text lines, socket
 * descriptors attached with SCM_RIGHTS):
 *   - chain sockets, registered by the agent in `socks` (a remote function's instance
 *     0xF000 + node index, another node's gateway id, and the inject socket);
 *   - per peer, the authenticated data connection it dialled (DATA frames out) and the ones the
 *     peer dialled (DATA frames in).
 * The logic is NodeLink's JavaScript data path, the same records on the wire (protocol.ts): a
 * descriptor read from a chain socket goes with its payload to the peer; a record from a peer
 * lands in a pool buffer and is written into the chain; answers go back into the origin's buffer;
 * a token per forward tells a late answer from the answer to a newer request that reuses the id;
 * a peer that goes down fails what waits on it at once (503).
 *
 * Control lines (agent -> here):  C fn inst (+fd) | X fn inst | O peer (+fd) | I peer (+fd) |
 *   D peer | G gw=peer,... | S | W | Q.   Here -> agent:  S {json} | L text | E peer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../../gateway-native/gw.h"

#define CTL_FD 3
#define MAX_PEERS 64
#define MAX_CHAIN_SOCKS 4096
#define MAX_IN_SOCKS 256
#define REMOTE_INST_BASE 0xf000u
#define INJECT_INST 0xfff0u
#define T_DATA 5
#define MAX_FRAME (16u << 20)
/* Entries older than this are long answered (504) or lost: forgotten on the agent's sweep. */
#define FORGET_MS 60000
#define REC_HEAD (BPFCTL_DESC_SIZE + 1 + 4 + 1)

/* ---- growable byte buffers ---- */
struct bytes {
	uint8_t *b;
	size_t len, cap;
};

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q) {
		fprintf(stderr, "node-link: out of memory\n");
		exit(1);
	}
	return q;
}

static uint8_t *room(struct bytes *x, size_t n)
{
	if (x->len + n > x->cap) {
		size_t cap = x->cap ? x->cap : 4096;
		while (cap < x->len + n)
			cap *= 2;
		x->b = xrealloc(x->b, cap);
		x->cap = cap;
	}
	return x->b + x->len;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* ---- what epoll reports ---- */
enum kind { K_CTL, K_CHAIN, K_OUT, K_IN };

struct ev {
	enum kind kind;
	int fd;
};

/* An outgoing byte stream: bytes [sent, len) not written yet; a frame being built at frame_at. */
struct outq {
	struct bytes q;
	size_t sent;
	long frame_at; /* -1: no frame open */
	uint32_t count;
	int want_out, dirty;
};

struct chain_sock {
	struct ev ev;
	uint16_t fn, inst;
	uint8_t carry[BPFCTL_DESC_SIZE];
	int ncarry;
};

struct peer {
	struct ev out; /* fd -1: not linked */
	struct outq oq;
};

struct in_sock {
	struct ev ev;
	int peer;
	struct bytes buf;
};

/* ---- requests that crossed: (gateway id, request id) -> what the answer needs ---- */
enum { E_EMPTY, E_USED, E_TOMB };
struct entry {
	uint64_t key;
	uint8_t state;
	int16_t peer;
	uint32_t token;
	uint16_t route;
	uint8_t flags;
	uint32_t off, gen;
	uint64_t at;
};

struct table {
	struct entry *e;
	size_t cap, used, tombs;
};

static uint64_t hash64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return k;
}

static struct entry *t_find(struct table *t, uint64_t key)
{
	if (!t->cap)
		return NULL;
	for (size_t i = hash64(key) & (t->cap - 1), n = 0; n < t->cap; i = (i + 1) & (t->cap - 1), n++) {
		struct entry *e = &t->e[i];
		if (e->state == E_EMPTY)
			return NULL;
		if (e->state == E_USED && e->key == key)
			return e;
	}
	return NULL;
}

static void t_del(struct table *t, struct entry *e)
{
	e->state = E_TOMB;
	t->used--;
	t->tombs++;
}

static struct entry *t_put(struct table *t, uint64_t key);

static void t_grow(struct table *t)
{
	struct table old = *t;
	size_t cap = t->cap ? t->cap : 1024;
	if ((t->used + 1) * 2 > cap)
		cap *= 2;
	t->e = calloc(cap, sizeof(struct entry));
	if (!t->e) {
		fprintf(stderr, "node-link: out of memory\n");
		exit(1);
	}
	t->cap = cap;
	t->used = t->tombs = 0;
	for (size_t i = 0; i < old.cap; i++)
		if (old.e[i].state == E_USED)
			*t_put(t, old.e[i].key) = old.e[i];
	free(old.e);
}

/* The entry for key, new (state E_USED, key set, the rest zero) or the existing one. */
static struct entry *t_put(struct table *t, uint64_t key)
{
	struct entry *e = t_find(t, key);
	if (e)
		return e;
	if ((t->used + t->tombs + 1) * 2 > t->cap)
		t_grow(t);
	for (size_t i = hash64(key) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
		e = &t->e[i];
		if (e->state != E_USED) {
			if (e->state == E_TOMB)
				t->tombs--;
			memset(e, 0, sizeof(*e));
			e->state = E_USED;
			e->key = key;
			t->used++;
			return e;
		}
	}
}

/* ---- state ---- */
static int ep;
static struct bpfctl_pool *pool;
static struct gw_maps maps;
static uint32_t owner;
static int npeers;
static char *peer_names[MAX_PEERS];
static struct peer peers[MAX_PEERS];
static int16_t gw_owner[65536]; /* gateway id -> peer index, -1: none (or local) */
static uint8_t gw_local[65536];
static struct chain_sock *chain[MAX_CHAIN_SOCKS];
static int nchain;
static struct chain_sock *inject_sock;
static struct outq inject_q;
static struct in_sock *ins[MAX_IN_SOCKS];
static int nins;
/* pending: requests of a local gateway that left; transit: other nodes' requests sent on from
 * here; arrivals: other nodes' requests that came in (their token, for when they leave again). */
static struct table pending, transit, arrivals;
static uint32_t next_token = 1;
static struct {
	uint64_t sent, received, failed_fast, after_down, stale, no_buffer, unknown_route, malformed;
} ctr;
static struct ev ctl_ev = { K_CTL, CTL_FD };
static struct bytes ctl_in;
static int fdq[64], nfdq;
/* outqs written to at this loop turn: flushed once at its end */
static struct outq *dirty[MAX_PEERS + 1];
static int ndirty;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A line to the agent. The control socket is non-blocking (it is read in the loop): when the
 * agent is slow to read, wait for room rather than lose the line; only a closed socket ends this
 * process (the agent is gone, and with it everything it handed over). */
static void ctl_write(const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(CTL_FD, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = { .fd = CTL_FD, .events = POLLOUT };
			poll(&pfd, 1, 1000);
			continue;
		}
		if (w <= 0)
			exit(0);
		s += w;
		n -= (size_t)w;
	}
}

#include <stdarg.h>
static void logf_(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line + 2, sizeof(line) - 3, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 4)
		n = (int)sizeof(line) - 4;
	line[0] = 'L';
	line[1] = ' ';
	line[n + 2] = '\n';
	ctl_write(line, (size_t)n + 3);
}

static uint64_t key_of(const struct bpfctl_desc *d) { return (uint64_t)d->gw_inst << 32 | d->req_id; }

static void mark_dirty(struct outq *q)
{
	if (!q->dirty) {
		q->dirty = 1;
		dirty[ndirty++] = q;
	}
}

static void ep_mod(struct ev *e, uint32_t events)
{
	struct epoll_event x = { .events = events, .data.ptr = e };
	epoll_ctl(ep, EPOLL_CTL_MOD, e->fd, &x);
}

static void ep_add(struct ev *e, uint32_t events)
{
	struct epoll_event x = { .events = events, .data.ptr = e };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, e->fd, &x) < 0)
		logf_("epoll_ctl: %s", strerror(errno));
}

static void free_buffer(uint32_t off, uint32_t gen)
{
	if (bpfctl_pool_free(pool, off, gen, 0) < 0)
		ctr.stale++;
}

/* ---- writing ---- */
static void inject_desc(const struct bpfctl_desc *d)
{
	memcpy(room(&inject_q.q, BPFCTL_DESC_SIZE), d, BPFCTL_DESC_SIZE);
	inject_q.q.len += BPFCTL_DESC_SIZE;
	mark_dirty(&inject_q);
}

/* One record for a peer, into the DATA frame this loop turn builds for it. */
static void queue_record(int p, const struct bpfctl_desc *d, int to_gw, uint32_t token, const char *route, size_t rlen,
			 const uint8_t *payload, uint32_t plen)
{
	struct outq *q = &peers[p].oq;
	if (rlen > 255)
		rlen = 255;
	if (q->frame_at < 0) {
		q->frame_at = (long)q->q.len;
		room(&q->q, 5);
		q->q.len += 5;
	}
	uint8_t *b = room(&q->q, REC_HEAD + rlen + 4 + plen);
	memcpy(b, d, BPFCTL_DESC_SIZE);
	b += BPFCTL_DESC_SIZE;
	*b++ = to_gw ? 1 : 0;
	put32(b, token);
	b += 4;
	*b++ = (uint8_t)rlen;
	memcpy(b, route, rlen);
	b += rlen;
	put32(b, plen);
	b += 4;
	if (plen)
		memcpy(b, payload, plen);
	q->q.len += REC_HEAD + rlen + 4 + plen;
	q->count++;
	mark_dirty(q);
}

static void fail_waiting_on(int p);

/* Closes the data connection to a peer and drops what was queued for it. */
static void drop_out(int p)
{
	struct peer *x = &peers[p];
	if (x->out.fd >= 0) {
		epoll_ctl(ep, EPOLL_CTL_DEL, x->out.fd, NULL);
		close(x->out.fd);
		x->out.fd = -1;
	}
	x->oq.q.len = x->oq.sent = 0;
	x->oq.frame_at = -1;
	x->oq.count = 0;
	x->oq.want_out = 0;
}

static void peer_lost(int p, const char *why)
{
	if (peers[p].out.fd < 0)
		return;
	logf_("data connection to %s lost: %s", peer_names[p], why);
	drop_out(p);
	char line[32];
	int n = snprintf(line, sizeof(line), "E %d\n", p);
	ctl_write(line, (size_t)n);
	fail_waiting_on(p);
}

/* Writes what a queue holds, up to the frame still being built (its head is not filled yet); 0,
 * or -1 when the socket failed. */
static int write_q(struct outq *q, int fd, struct ev *e)
{
	size_t end = q->frame_at >= 0 ? (size_t)q->frame_at : q->q.len;
	while (q->sent < end) {
		ssize_t w = write(fd, q->q.b + q->sent, q->q.len - q->sent);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!q->want_out) {
				q->want_out = 1;
				ep_mod(e, EPOLLIN | EPOLLOUT);
			}
			return 0;
		}
		if (w <= 0)
			return -1;
		q->sent += (size_t)w;
	}
	if (q->frame_at >= 0) {
		/* what was written goes; the open frame moves to the front */
		memmove(q->q.b, q->q.b + q->sent, q->q.len - q->sent);
		q->q.len -= q->sent;
		q->frame_at -= (long)q->sent;
	} else
		q->q.len = 0;
	q->sent = 0;
	if (q->want_out) {
		q->want_out = 0;
		ep_mod(e, EPOLLIN);
	}
	return 0;
}

static void flush(void)
{
	for (int i = 0; i < ndirty; i++) {
		struct outq *q = dirty[i];
		q->dirty = 0;
		if (q == &inject_q) {
			if (!inject_sock) {
				q->q.len = q->sent = 0;
				continue;
			}
			if (write_q(q, inject_sock->ev.fd, &inject_sock->ev) < 0) {
				logf_("inject socket: %s", strerror(errno));
				q->q.len = q->sent = 0;
			}
			continue;
		}
		int p = (int)(((struct peer *)((char *)q - offsetof(struct peer, oq))) - peers);
		if (q->frame_at >= 0) {
			uint8_t *h = q->q.b + q->frame_at;
			put32(h, (uint32_t)(q->q.len - (size_t)q->frame_at - 4));
			h[4] = T_DATA;
			ctr.sent += q->count;
			q->frame_at = -1;
			q->count = 0;
		}
		if (peers[p].out.fd >= 0 && write_q(q, peers[p].out.fd, &peers[p].out) < 0)
			peer_lost(p, strerror(errno));
	}
	ndirty = 0;
}

/* ---- failing fast ---- */
static int fail_desc(const struct entry *p, struct bpfctl_desc *d)
{
	int len = gw_route_len(&maps, p->route);
	if (len < 0 || !bpfctl_pool_validate(pool, p->off, p->gen))
		return 0;
	ctr.failed_fast++;
	memset(d, 0, sizeof(*d));
	d->route = p->route;
	d->hop = (uint8_t)len;
	d->flags = (p->flags & BPFCTL_DESC_FLAG_RESPONSE_NEW_BUF) | BPFCTL_DESC_FLAG_ERROR;
	d->status = 503;
	d->gw_inst = (uint16_t)(p->key >> 32);
	d->req_id = (uint32_t)p->key;
	d->buf_off = p->off;
	d->buf_gen = p->gen;
	d->buf_len = 0;
	return 1;
}

/* A 503 for a request of another node's gateway, sent to that node. */
static void answer_error(const struct bpfctl_desc *in, uint32_t token)
{
	int o = gw_owner[in->gw_inst];
	if (o < 0 || peers[o].out.fd < 0)
		return;
	struct bpfctl_desc e = *in;
	e.flags = BPFCTL_DESC_FLAG_ERROR;
	e.status = 503;
	e.buf_len = 0;
	queue_record(o, &e, 1, token, "", 0, NULL, 0);
}

static void fail_waiting_on(int p)
{
	for (size_t i = 0; i < pending.cap; i++) {
		struct entry *e = &pending.e[i];
		if (e->state != E_USED || e->peer != p)
			continue;
		struct bpfctl_desc d;
		if (fail_desc(e, &d))
			inject_desc(&d);
		t_del(&pending, e);
	}
	for (size_t i = 0; i < transit.cap; i++) {
		struct entry *e = &transit.e[i];
		if (e->state != E_USED || e->peer != p)
			continue;
		struct bpfctl_desc d;
		memset(&d, 0, sizeof(d));
		d.gw_inst = (uint16_t)(e->key >> 32);
		d.req_id = (uint32_t)e->key;
		uint32_t token = e->token;
		t_del(&transit, e);
		answer_error(&d, token);
	}
}

/* ---- from the chain ---- */
static void from_chain(struct chain_sock *cs, struct bpfctl_desc *d)
{
	if (d->flags & BPFCTL_DESC_FLAG_DROPPED)
		return;
	int to_gw = cs->fn == 0;
	int p = to_gw ? gw_owner[cs->inst] : (int)cs->inst - (int)REMOTE_INST_BASE;
	if (p >= npeers)
		p = -1;
	char name[GW_ROUTE_NAME_MAX + 1];
	int nl = gw_slot_name(&maps, d->route, name);
	uint64_t k = key_of(d);
	if (!bpfctl_pool_validate(pool, d->buf_off, d->buf_gen)) {
		ctr.stale++;
		return;
	}
	uint32_t plen = d->buf_len < pool->buf_size ? d->buf_len : pool->buf_size;
	const uint8_t *payload = bpfctl_pool_ptr(pool, d->buf_off);
	int local_gw = gw_local[d->gw_inst];
	if (p < 0 || nl < 0 || peers[p].out.fd < 0) {
		/* The peer went down between the kernel's pick and this read, or the route is gone:
		 * fail the request now rather than let its gateway wait for the deadline. */
		if (p >= 0)
			ctr.after_down++;
		if (local_gw) {
			struct entry e = { .key = k, .route = d->route, .flags = d->flags, .off = d->buf_off, .gen = d->buf_gen };
			struct bpfctl_desc f;
			if (fail_desc(&e, &f))
				inject_desc(&f);
			return;
		}
		/* another node's request, in a buffer of ours: free it, and tell its gateway's node */
		struct entry *a = t_find(&arrivals, k);
		uint32_t token = a ? a->token : 0;
		if (a)
			t_del(&arrivals, a);
		if (!to_gw)
			answer_error(d, token);
		free_buffer(d->buf_off, d->buf_gen);
		return;
	}
	uint32_t token = 0;
	if (local_gw) {
		token = next_token = next_token + 1 ? next_token + 1 : 1;
		struct entry *e = t_put(&pending, k);
		e->peer = (int16_t)p;
		e->token = token;
		e->route = d->route;
		e->flags = d->flags;
		e->off = d->buf_off;
		e->gen = d->buf_gen;
		e->at = now_ms();
	} else {
		struct entry *a = t_find(&arrivals, k);
		if (a) {
			token = a->token;
			t_del(&arrivals, a);
		}
		if (!to_gw) {
			struct entry *e = t_put(&transit, k);
			e->peer = (int16_t)p;
			e->token = token;
			e->at = now_ms();
		}
	}
	queue_record(p, d, to_gw, token, name, (size_t)nl, payload, plen);
	/* the payload is copied into the batch: a buffer of ours (another node's request) is free now */
	if (!local_gw)
		free_buffer(d->buf_off, d->buf_gen);
}

static void close_chain(struct chain_sock *cs)
{
	for (int i = 0; i < nchain; i++)
		if (chain[i] == cs) {
			chain[i] = chain[--nchain];
			break;
		}
	if (cs == inject_sock) {
		inject_sock = NULL;
		logf_("inject socket closed");
	}
	epoll_ctl(ep, EPOLL_CTL_DEL, cs->ev.fd, NULL);
	close(cs->ev.fd);
	free(cs);
}

static void chain_readable(struct chain_sock *cs)
{
	uint8_t buf[64 * 1024];
	for (int round = 0; round < 8; round++) {
		memcpy(buf, cs->carry, (size_t)cs->ncarry);
		ssize_t n = read(cs->ev.fd, buf + cs->ncarry, sizeof(buf) - (size_t)cs->ncarry);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			close_chain(cs);
			return;
		}
		size_t have = (size_t)n + (size_t)cs->ncarry, at = 0;
		for (; have - at >= BPFCTL_DESC_SIZE; at += BPFCTL_DESC_SIZE) {
			struct bpfctl_desc d;
			memcpy(&d, buf + at, sizeof(d));
			if (cs != inject_sock)
				from_chain(cs, &d);
		}
		cs->ncarry = (int)(have - at);
		memcpy(cs->carry, buf + at, (size_t)cs->ncarry);
		if ((size_t)n < sizeof(buf) - BPFCTL_DESC_SIZE)
			return;
	}
}

/* ---- from the peers ---- */
/* 1 when the body is a well-formed run of records (a batch is taken whole or not at all). */
static int well_formed(const uint8_t *b, size_t len)
{
	size_t at = 0;
	while (at < len) {
		if (len - at < REC_HEAD)
			return 0;
		size_t rl = b[at + BPFCTL_DESC_SIZE + 5];
		at += REC_HEAD;
		if (len - at < rl + 4)
			return 0;
		at += rl;
		uint32_t pl = get32(b + at);
		at += 4;
		if (len - at < pl)
			return 0;
		at += pl;
	}
	return 1;
}

static void on_data(int p, const uint8_t *b, size_t len)
{
	if (!well_formed(b, len)) {
		ctr.malformed++;
		logf_("malformed batch from %s", peer_names[p]);
		return;
	}
	size_t at = 0;
	while (at < len) {
		struct bpfctl_desc d;
		memcpy(&d, b + at, sizeof(d));
		int to_gw = b[at + BPFCTL_DESC_SIZE] == 1;
		uint32_t token = get32(b + at + BPFCTL_DESC_SIZE + 1);
		size_t rl = b[at + BPFCTL_DESC_SIZE + 5];
		const char *rname = (const char *)b + at + REC_HEAD;
		uint32_t plen = get32(b + at + REC_HEAD + rl);
		const uint8_t *payload = b + at + REC_HEAD + rl + 4;
		at += REC_HEAD + rl + 4 + plen;
		ctr.received++;
		uint64_t k = key_of(&d);
		if (gw_local[d.gw_inst]) {
			struct entry *e = t_find(&pending, k);
			/* failed already (peer down, 504) or an answer to an older request that reused the id */
			if (!e || e->token != token)
				continue;
			struct entry pe = *e;
			t_del(&pending, e);
			if (!bpfctl_pool_validate(pool, pe.off, pe.gen) || plen > pool->buf_size) {
				ctr.stale++;
				continue;
			}
			memcpy(bpfctl_pool_ptr(pool, pe.off), payload, plen);
			d.route = pe.route;
			d.buf_off = pe.off;
			d.buf_gen = pe.gen;
			d.buf_len = plen;
			d.flags = (pe.flags & BPFCTL_DESC_FLAG_RESPONSE_NEW_BUF) | (d.flags & BPFCTL_DESC_FLAG_ERROR);
			if (to_gw) {
				int rlen = gw_route_len(&maps, pe.route);
				if (rlen >= 0)
					d.hop = (uint8_t)rlen;
			}
			inject_desc(&d);
			continue;
		}
		if (to_gw)
			continue;
		const struct gw_route *r = gw_route_by_name(&maps, rname, rl);
		struct bpfctl_buf_ref ref;
		if (!r || plen > pool->buf_size || bpfctl_pool_alloc(pool, owner, &ref) < 0) {
			if (!r)
				ctr.unknown_route++;
			else
				ctr.no_buffer++;
			answer_error(&d, token);
			continue;
		}
		if (plen)
			memcpy(bpfctl_pool_ptr(pool, ref.offset), payload, plen);
		d.route = (uint16_t)r->slot;
		d.buf_off = ref.offset;
		d.buf_gen = ref.gen;
		d.buf_len = plen;
		d.flags = BPFCTL_DESC_FLAG_RESPONSE_NEW_BUF;
		struct entry *a = t_put(&arrivals, k);
		a->token = token;
		a->at = now_ms();
		inject_desc(&d);
	}
}

static void close_in(struct in_sock *s)
{
	for (int i = 0; i < nins; i++)
		if (ins[i] == s) {
			ins[i] = ins[--nins];
			break;
		}
	epoll_ctl(ep, EPOLL_CTL_DEL, s->ev.fd, NULL);
	close(s->ev.fd);
	free(s->buf.b);
	free(s);
}

static void in_readable(struct in_sock *s)
{
	for (int round = 0; round < 8; round++) {
		uint8_t *b = room(&s->buf, 64 * 1024);
		ssize_t n = read(s->ev.fd, b, 64 * 1024);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			close_in(s);
			return;
		}
		s->buf.len += (size_t)n;
		size_t at = 0;
		while (s->buf.len - at >= 4) {
			uint32_t flen = get32(s->buf.b + at);
			if (flen < 1 || flen > MAX_FRAME) {
				logf_("bad frame from %s: closed", peer_names[s->peer]);
				close_in(s);
				return;
			}
			if (s->buf.len - at - 4 < flen)
				break;
			uint8_t type = s->buf.b[at + 4];
			if (type != T_DATA) {
				logf_("frame of type %u on the data connection from %s: closed", type, peer_names[s->peer]);
				close_in(s);
				return;
			}
			on_data(s->peer, s->buf.b + at + 5, flen - 1);
			at += 4 + flen;
		}
		memmove(s->buf.b, s->buf.b + at, s->buf.len - at);
		s->buf.len -= at;
		if ((size_t)n < 64 * 1024)
			return;
	}
}

/* ---- control ---- */
static void status(void)
{
	char line[512];
	int n = snprintf(line, sizeof(line),
			 "S {\"sent\":%llu,\"received\":%llu,\"failedFast\":%llu,\"afterDown\":%llu,\"stale\":%llu,"
			 "\"noBuffer\":%llu,\"unknownRoute\":%llu,\"malformed\":%llu,\"pending\":%zu}\n",
			 (unsigned long long)ctr.sent, (unsigned long long)ctr.received, (unsigned long long)ctr.failed_fast,
			 (unsigned long long)ctr.after_down, (unsigned long long)ctr.stale, (unsigned long long)ctr.no_buffer,
			 (unsigned long long)ctr.unknown_route, (unsigned long long)ctr.malformed, pending.used);
	ctl_write(line, (size_t)n);
}

static void sweep(void)
{
	uint64_t old = now_ms() - FORGET_MS;
	struct table *ts[] = { &pending, &transit, &arrivals };
	for (int t = 0; t < 3; t++)
		for (size_t i = 0; i < ts[t]->cap; i++)
			if (ts[t]->e[i].state == E_USED && ts[t]->e[i].at < old)
				t_del(ts[t], &ts[t]->e[i]);
}

static int take_fd(void)
{
	if (!nfdq)
		return -1;
	int fd = fdq[0];
	memmove(fdq, fdq + 1, (size_t)--nfdq * sizeof(int));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static void peer_close(int p)
{
	drop_out(p);
	for (int i = nins - 1; i >= 0; i--)
		if (ins[i]->peer == p)
			close_in(ins[i]);
}

static void command(char *line)
{
	unsigned a = 0, b = 0;
	switch (line[0]) {
	case 'C': {
		int fd = take_fd();
		if (fd < 0 || sscanf(line + 1, "%u %u", &a, &b) != 2) {
			logf_("bad control line: %s", line);
			if (fd >= 0)
				close(fd);
			return;
		}
		if (nchain >= MAX_CHAIN_SOCKS) {
			logf_("too many chain sockets");
			close(fd);
			return;
		}
		struct chain_sock *cs = calloc(1, sizeof(*cs));
		cs->ev.kind = K_CHAIN;
		cs->ev.fd = fd;
		cs->fn = (uint16_t)a;
		cs->inst = (uint16_t)b;
		chain[nchain++] = cs;
		if (a == 0 && b == INJECT_INST)
			inject_sock = cs;
		ep_add(&cs->ev, EPOLLIN);
		return;
	}
	case 'X':
		if (sscanf(line + 1, "%u %u", &a, &b) != 2)
			return;
		for (int pass = 0; pass < 2; pass++)
			for (int i = 0; i < nchain; i++)
				if (chain[i]->fn == a && chain[i]->inst == b && chain[i] != inject_sock) {
					/* first what the kernel redirected into it before `instances` changed is read */
					if (pass == 0)
						chain_readable(chain[i]);
					else
						close_chain(chain[i]);
					break;
				}
		return;
	case 'O':
	case 'I': {
		int fd = take_fd();
		if (fd < 0 || sscanf(line + 1, "%u", &a) != 1 || (int)a >= npeers) {
			logf_("bad control line: %s", line);
			if (fd >= 0)
				close(fd);
			return;
		}
		if (line[0] == 'O') {
			drop_out((int)a);
			peers[a].out.fd = fd;
			ep_add(&peers[a].out, EPOLLIN);
		} else {
			if (nins >= MAX_IN_SOCKS) {
				close(fd);
				return;
			}
			struct in_sock *s = calloc(1, sizeof(*s));
			s->ev.kind = K_IN;
			s->ev.fd = fd;
			s->peer = (int)a;
			ins[nins++] = s;
			ep_add(&s->ev, EPOLLIN);
		}
		return;
	}
	case 'D':
		if (sscanf(line + 1, "%u", &a) != 1 || (int)a >= npeers)
			return;
		peer_close((int)a);
		fail_waiting_on((int)a);
		return;
	case 'G': {
		for (int i = 0; i < 65536; i++)
			gw_owner[i] = -1;
		char *s = line + 1;
		while (*s) {
			while (*s == ' ' || *s == ',')
				s++;
			if (!*s)
				break;
			char *end;
			unsigned long g = strtoul(s, &end, 10);
			if (*end != '=')
				break;
			unsigned long p = strtoul(end + 1, &s, 10);
			if (g < 65536 && p < (unsigned long)npeers)
				gw_owner[g] = (int16_t)p;
		}
		return;
	}
	case 'S':
		status();
		return;
	case 'W':
		sweep();
		return;
	case 'Q':
		exit(0);
	default:
		logf_("bad control line: %s", line);
	}
}

static void ctl_readable(void)
{
	char data[4096];
	char cbuf[CMSG_SPACE(sizeof(int) * 16)];
	struct iovec iov = { data, sizeof(data) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(CTL_FD, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0)
		exit(0); /* the agent is gone: so is everything it handed over */
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int nf = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < nf; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (nfdq < (int)(sizeof(fdq) / sizeof(fdq[0])))
				fdq[nfdq++] = fd;
			else
				close(fd);
		}
	}
	memcpy(room(&ctl_in, (size_t)n), data, (size_t)n);
	ctl_in.len += (size_t)n;
	size_t at = 0;
	for (;;) {
		uint8_t *nlp = memchr(ctl_in.b + at, '\n', ctl_in.len - at);
		if (!nlp)
			break;
		*nlp = 0;
		command((char *)ctl_in.b + at);
		at = (size_t)(nlp - ctl_in.b) + 1;
	}
	memmove(ctl_in.b, ctl_in.b + at, ctl_in.len - at);
	ctl_in.len -= at;
}

/* argv: pool path, pin dir, nodes (comma-separated, sorted; index = place), local gateway ids (comma-separated) */
int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s POOL_PATH PIN_DIR NODES LOCAL_GATEWAYS\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	owner = (uint32_t)getpid();
	pool = bpfctl_pool_open(argv[1]);
	if (!pool) {
		fprintf(stderr, "node-link: cannot open the pool %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	char err[512];
	if (gw_maps_open(&maps, argv[2], err, sizeof(err))) {
		fprintf(stderr, "node-link: %s\n", err);
		return 1;
	}
	for (char *s = strtok(argv[3], ","); s && npeers < MAX_PEERS; s = strtok(NULL, ","))
		peer_names[npeers++] = s;
	for (int i = 0; i < MAX_PEERS; i++) {
		peers[i].out.fd = -1;
		peers[i].out.kind = K_OUT;
		peers[i].oq.frame_at = -1;
	}
	for (int i = 0; i < 65536; i++)
		gw_owner[i] = -1;
	inject_q.frame_at = -1;
	for (char *s = strtok(argv[4], ","); s; s = strtok(NULL, ","))
		gw_local[strtoul(s, NULL, 10) & 0xffff] = 1;
	ep = epoll_create1(EPOLL_CLOEXEC);
	fcntl(CTL_FD, F_SETFL, fcntl(CTL_FD, F_GETFL) | O_NONBLOCK);
	ep_add(&ctl_ev, EPOLLIN);
	/* ready: the agent waits for this before handing anything over */
	ctl_write("R\n", 2);
	struct epoll_event evs[64];
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);
		if (n < 0 && errno == EINTR)
			continue;
		for (int i = 0; i < n; i++) {
			struct ev *e = evs[i].data.ptr;
			switch (e->kind) {
			case K_CTL:
				ctl_readable();
				break;
			case K_CHAIN: {
				struct chain_sock *cs = (struct chain_sock *)e;
				if (evs[i].events & EPOLLOUT && cs == inject_sock && write_q(&inject_q, e->fd, e) < 0)
					inject_q.q.len = inject_q.sent = 0;
				if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
					chain_readable(cs);
				break;
			}
			case K_OUT: {
				int p = (int)((struct peer *)e - peers);
				if (evs[i].events & (EPOLLHUP | EPOLLERR)) {
					peer_lost(p, "closed");
					break;
				}
				if (evs[i].events & EPOLLIN) {
					/* nothing is sent this way: a read of 0 is the peer closing */
					char junk[256];
					ssize_t r = read(e->fd, junk, sizeof(junk));
					if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
						peer_lost(p, r == 0 ? "closed by the peer" : strerror(errno));
						break;
					}
				}
				if (evs[i].events & EPOLLOUT && write_q(&peers[p].oq, e->fd, e) < 0)
					peer_lost(p, strerror(errno));
				break;
			}
			case K_IN:
				in_readable((struct in_sock *)e);
				break;
			}
		}
		flush();
	}
}
