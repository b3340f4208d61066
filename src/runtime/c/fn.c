// SPDX-License-Identifier: MIT
/*
 * The C function runtime (API in bpf/include/bpfctl/fn.h). Mirrors src/runtime/sdk: framing of
 * 24-byte descriptors over the chain socket, validation of every descriptor before its buffer is
 * touched, error replies straight to the gateway, and recovery from a failed socket.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bpfctl/pool.h"
#include "bpfctl/fn.h"

#define READ_BUF (64 * 1024)
#define MAX_OUT (READ_BUF / BPFCTL_DESC_SIZE + 1)

struct fn_state {
	const char *name;
	uint32_t fn_id, inst, pid;
	struct bpfctl_pool *pool;
	int sock_fd, ready_fd;
	int fd;
	struct bpfctl_desc out[MAX_OUT];
	uint32_t out_key[MAX_OUT];
	uint32_t nout;
};

/* One instance per process: bpfctl_fn_alloc() finds the pool here. */
static struct fn_state *g_state;

static void logf_(const struct fn_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const struct fn_state *s, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "[%s#%u pid %u] ", s->name ? s->name : "fn", s->inst, s->pid);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int env_u32(const char *name, uint32_t *out, int required)
{
	const char *v = getenv(name);
	char *end;
	unsigned long n;

	if (!v || !*v) {
		if (required)
			fprintf(stderr, "bpfctl fn: %s is not set (the supervisor sets it)\n", name);
		return required ? -1 : 1;
	}
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || *end || n > UINT32_MAX) {
		fprintf(stderr, "bpfctl fn: %s must be a number, got '%s'\n", name, v);
		return -1;
	}
	*out = (uint32_t)n;
	return 0;
}

/* RST on close: nothing is left in TIME_WAIT. */
static void close_reset(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

/*
 * The chain socket is the one the supervisor connected, registered and handed down as an
 * inherited fd: nothing else can register for this instance. It is used once; when it fails the
 * process exits for a restart with a new one.
 */
static int establish(struct fn_state *s, int first)
{
	if (!first) {
		logf_(s, "chain socket failed; exiting %d for a restart", BPFCTL_FN_EXIT_RESTART);
		exit(BPFCTL_FN_EXIT_RESTART);
	}
	s->fd = s->sock_fd;
	/* Node (or any event-loop supervisor) made it non-blocking, and the flag lives on the
	 * shared file description: this loop blocks in read() instead. */
	int fl = fcntl(s->fd, F_GETFL);

	if (fl >= 0 && (fl & O_NONBLOCK))
		fcntl(s->fd, F_SETFL, fl & ~O_NONBLOCK);
	return 0;
}

uint8_t *bpfctl_fn_alloc(struct bpfctl_fn_req *req, uint32_t n)
{
	struct fn_state *s = g_state;
	struct bpfctl_buf_ref ref;

	if (n > req->cap || bpfctl_pool_alloc(s->pool, s->pid, &ref))
		return NULL;
	if (req->has_new)
		bpfctl_pool_free(s->pool, req->new_off, req->new_gen, 0);
	req->has_new = 1;
	req->new_off = ref.offset;
	req->new_gen = ref.gen;
	req->new_len_cap = n;
	return bpfctl_pool_ptr(s->pool, ref.offset);
}

int bpfctl_fn_errorf(struct bpfctl_fn_req *req, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(req->err, sizeof(req->err), fmt, ap);
	va_end(ap);
	return status > 0 ? -status : -500;
}

static void emit(struct fn_state *s, const struct bpfctl_desc *d)
{
	/* destination identity, for grouping: the gateway instance for errors, else route and hop
	 * (the kernel knows whether that hop is the last; descriptors that share both go one way) */
	s->out_key[s->nout] = d->flags & BPFCTL_DESC_FLAG_ERROR ? d->gw_inst : 0x10000u + ((uint32_t)d->route << 8) + d->hop;
	s->out[s->nout++] = *d;
}

static void to_gateway(struct fn_state *s, struct bpfctl_desc *d, int status, const char *msg)
{
	/* ERROR sends it straight back to the gateway (the kernel's rule): no route length needed */
	d->flags |= BPFCTL_DESC_FLAG_ERROR;
	d->status = (uint16_t)status;
	if (msg && *msg && bpfctl_pool_validate(s->pool, d->buf_off, d->buf_gen)) {
		char tmp[256];
		size_t n = (size_t)snprintf(tmp, sizeof(tmp), "%s: %s", s->name, msg);

		if (n >= sizeof(tmp))
			n = sizeof(tmp) - 1;
		if (n > s->pool->buf_size)
			n = s->pool->buf_size;
		memcpy(bpfctl_pool_ptr(s->pool, d->buf_off), tmp, n);
		d->buf_len = (uint32_t)n;
	}
	emit(s, d);
}

static void handle(struct fn_state *s, bpfctl_fn_handler h, void *ctx, struct bpfctl_desc d)
{
	if (d.flags & BPFCTL_DESC_FLAG_DROPPED) {
		/* refused by the kernel, delivered here inside someone's batch: bounce if sound (an
		 * error reply refused on its way back is not bounced again) */
		uint32_t reason = (d.flags & BPFCTL_DESC_DROP_REASON_MASK) >> BPFCTL_DESC_DROP_REASON_SHIFT;

		if (!(d.flags & BPFCTL_DESC_FLAG_ERROR) && (reason == BPFCTL_DROP_NO_INSTANCE || reason == BPFCTL_DROP_DEAD_SOCKET)) {
			d.flags &= (uint8_t) ~(BPFCTL_DESC_FLAG_DROPPED | BPFCTL_DESC_DROP_REASON_MASK);
			d.buf_len = 0; /* the request's payload is not an answer */
			to_gateway(s, &d, 503, NULL);
		}
		return;
	}
	/* the kernel delivered it by routes[d.route].fn[d.hop], the live table: it is ours */
	/* a buffer a previous hop allocated becomes ours (a reclaim of that process must spare it) */
	int live = d.flags & BPFCTL_DESC_FLAG_RESPONSE_NEW_BUF ? bpfctl_pool_transfer(s->pool, d.buf_off, d.buf_gen, s->pid) == 0
							       : bpfctl_pool_validate(s->pool, d.buf_off, d.buf_gen);
	if (!live || d.buf_len > s->pool->buf_size) {
		to_gateway(s, &d, 500, NULL); /* stale: its buffer may belong to another request now */
		return;
	}

	struct {
		struct bpfctl_fn_req req;
	} r = { 0 };
	r.req.req_id = d.req_id;
	r.req.route = d.route;
	r.req.hop = d.hop;
	r.req.data = bpfctl_pool_ptr(s->pool, d.buf_off);
	r.req.len = d.buf_len;
	r.req.cap = s->pool->buf_size;

	int ret = h(&r.req, ctx);

	if (ret < 0) {
		if (r.req.has_new)
			bpfctl_pool_free(s->pool, r.req.new_off, r.req.new_gen, 0);
		to_gateway(s, &d, -ret > 0xffff ? 500 : -ret, r.req.err[0] ? r.req.err : NULL);
		return;
	}
	if ((uint32_t)ret > (r.req.has_new ? r.req.new_len_cap : r.req.cap)) {
		if (r.req.has_new)
			bpfctl_pool_free(s->pool, r.req.new_off, r.req.new_gen, 0);
		to_gateway(s, &d, 500, "handler returned a length beyond its buffer");
		return;
	}
	if (r.req.has_new) {
		bpfctl_pool_free(s->pool, d.buf_off, d.buf_gen, 0);
		d.buf_off = r.req.new_off;
		d.buf_gen = r.req.new_gen;
		d.flags |= BPFCTL_DESC_FLAG_RESPONSE_NEW_BUF;
	}
	d.buf_len = (uint32_t)ret;
	d.hop++;
	emit(s, &d);
}

/* Writes every reply of this read in one send, descriptors for one destination next to each other. */
static int flush_out(struct fn_state *s)
{
	struct bpfctl_desc sorted[MAX_OUT];
	size_t n = 0, off = 0, total;
	uint8_t used[MAX_OUT] = { 0 };

	for (uint32_t i = 0; i < s->nout; i++) {
		if (used[i])
			continue;
		for (uint32_t j = i; j < s->nout; j++) {
			if (!used[j] && s->out_key[j] == s->out_key[i]) {
				sorted[n++] = s->out[j];
				used[j] = 1;
			}
		}
	}
	s->nout = 0;
	total = n * BPFCTL_DESC_SIZE;
	while (off < total) {
		ssize_t w = send(s->fd, (uint8_t *)sorted + off, total - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = { .fd = s->fd, .events = POLLOUT };

			poll(&p, 1, -1);
			continue;
		}
		if (w < 0)
			return -1; /* EACCES: the socket is poisoned (gotcha 4); the caller reconnects */
		off += (size_t)w;
	}
	return 0;
}

int bpfctl_fn_run(bpfctl_fn_handler handler, void *ctx)
{
	static struct fn_state st;
	static uint8_t buf[READ_BUF];
	struct fn_state *s = &st;
	const char *pool_path;
	uint32_t v;
	size_t have = 0;

	g_state = s;
	s->pid = (uint32_t)getpid();
	s->name = getenv("BPFCTL_FN");
	s->sock_fd = s->ready_fd = -1;
	if (!s->name || !*s->name) {
		fprintf(stderr, "bpfctl fn: BPFCTL_FN is not set (the supervisor sets it)\n");
		return 2;
	}
	if (env_u32("BPFCTL_FN_ID", &s->fn_id, 1) || env_u32("BPFCTL_INST", &s->inst, 1))
		return 2;
	if (env_u32("BPFCTL_SOCK_FD", &v, 0) == 0)
		s->sock_fd = (int)v;
	if (env_u32("BPFCTL_READY_FD", &v, 0) == 0)
		s->ready_fd = (int)v;
	if (s->sock_fd < 0) {
		logf_(s, "BPFCTL_SOCK_FD is not set: the supervisor hands each instance its registered socket");
		return 2;
	}
	pool_path = getenv("BPFCTL_POOL");
	if (!pool_path || !(s->pool = bpfctl_pool_open(pool_path))) {
		logf_(s, "cannot open pool %s: %s", pool_path ? pool_path : "(BPFCTL_POOL not set)", strerror(errno));
		return 2;
	}
	/* a dead peer must surface as an error return, not kill us */
	signal(SIGPIPE, SIG_IGN);
	establish(s, 1);
	if (s->ready_fd >= 0) {
		char line[128];
		int n = snprintf(line, sizeof(line), "ready %s %u %u\n", s->name, s->inst, s->pid);

		if (write(s->ready_fd, line, (size_t)n) < 0)
			logf_(s, "ready fd: %s", strerror(errno));
		close(s->ready_fd);
	}
	for (;;) {
		ssize_t n = read(s->fd, buf + have, sizeof(buf) - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* still non-blocking (someone set it again): wait without spinning */
			struct pollfd p = { .fd = s->fd, .events = POLLIN };

			poll(&p, 1, -1);
			continue;
		}
		if (n <= 0) {
			logf_(s, "chain socket %s; reconnecting", n == 0 ? "closed" : strerror(errno));
			close_reset(s->fd);
			have = 0;
			establish(s, 0);
			continue;
		}
		have += (size_t)n;
		size_t at = 0;

		for (; at + BPFCTL_DESC_SIZE <= have; at += BPFCTL_DESC_SIZE) {
			struct bpfctl_desc d;

			memcpy(&d, buf + at, sizeof(d));
			handle(s, handler, ctx, d);
		}
		/* a partial descriptor waits for the rest */
		if (at < have)
			memmove(buf, buf + at, have - at);
		have -= at;
		if (s->nout && flush_out(s)) {
			logf_(s, "send failed: %s; reconnecting", strerror(errno));
			close_reset(s->fd);
			have = 0;
			establish(s, 0);
		}
	}
}
