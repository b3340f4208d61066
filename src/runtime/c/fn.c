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
#include <arpa/inet.h>

#include "bpfctl/pool.h"
#include "bpfctl/fn.h"

#define MAX_ROUTES 64
#define MAX_HOPS 16
#define READ_BUF (64 * 1024)
#define MAX_OUT (READ_BUF / BPFCTL_DESC_SIZE + 1)

struct fn_state {
	const char *name;
	uint32_t fn_id, inst, pid;
	struct bpfctl_pool *pool;
	int hub_port, reg_port, sock_fd, ready_fd;
	const char *cgroup;
	int fd;
	uint32_t route_len[MAX_ROUTES];
	uint16_t route_hop[MAX_ROUTES][MAX_HOPS];
	int have_hops;
	uint32_t nroutes;
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

static int parse_routes(struct fn_state *s)
{
	const char *lens = getenv("BPFCTL_ROUTES"), *hops = getenv("BPFCTL_ROUTE_HOPS");
	char *end;

	if (!lens || !*lens) {
		fprintf(stderr, "bpfctl fn: BPFCTL_ROUTES is not set\n");
		return -1;
	}
	for (const char *p = lens; *p && s->nroutes < MAX_ROUTES;) {
		unsigned long n = strtoul(p, &end, 10);

		if (end == p || n == 0 || n > MAX_HOPS) {
			fprintf(stderr, "bpfctl fn: bad BPFCTL_ROUTES '%s'\n", lens);
			return -1;
		}
		s->route_len[s->nroutes++] = (uint32_t)n;
		p = *end == ',' ? end + 1 : end;
	}
	if (!hops || !*hops)
		return 0;
	uint32_t r = 0, h = 0;
	for (const char *p = hops; *p && r < MAX_ROUTES;) {
		unsigned long n = strtoul(p, &end, 10);

		if (end == p)
			break;
		if (h < MAX_HOPS)
			s->route_hop[r][h++] = (uint16_t)n;
		if (*end == ';') {
			r++;
			h = 0;
		}
		p = *end ? end + 1 : end;
	}
	s->have_hops = 1;
	return 0;
}

/* RST on close: a reserved registration port must not sit in TIME_WAIT. */
static void close_reset(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

static int join_cgroup(const struct fn_state *s)
{
	char path[4096], pid[32];
	int fd, n;

	snprintf(path, sizeof(path), "%s/cgroup.procs", s->cgroup);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = snprintf(pid, sizeof(pid), "%u\n", s->pid);
	n = (int)write(fd, pid, (size_t)n);
	close(fd);
	return n > 0 ? 0 : -1;
}

/* sockops registration: the program inserts the socket when it becomes established. */
static int connect_hub(struct fn_state *s)
{
	struct sockaddr_in local = { .sin_family = AF_INET }, hub = { .sin_family = AF_INET };
	int one = 1, fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	local.sin_port = htons((uint16_t)s->reg_port);
	hub.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	hub.sin_port = htons((uint16_t)s->hub_port);
	if (bind(fd, (struct sockaddr *)&local, sizeof(local)) || connect(fd, (struct sockaddr *)&hub, sizeof(hub))) {
		int e = errno;

		close_reset(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Gets a registered socket: the inherited one once, or a fresh sockops connection (with backoff). */
static int establish(struct fn_state *s, int first)
{
	unsigned delay_ms = 20;

	if (s->sock_fd >= 0) {
		if (!first) {
			logf_(s, "inherited socket failed; exiting %d for a restart", BPFCTL_FN_EXIT_RESTART);
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
	for (;;) {
		s->fd = connect_hub(s);
		if (s->fd >= 0)
			return 0;
		logf_(s, "connect from port %d to hub %d: %s; retrying", s->reg_port, s->hub_port, strerror(errno));
		struct timespec ts = { .tv_sec = delay_ms / 1000, .tv_nsec = (long)(delay_ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
		if (delay_ms < 2000)
			delay_ms *= 2;
	}
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
	uint32_t len = s->route_len[d->route];

	/* destination identity, for grouping: the gateway instance or the next function */
	s->out_key[s->nout] = d->hop >= len ? d->gw_inst : 0x10000u + ((uint32_t)d->route << 8) + d->hop;
	s->out[s->nout++] = *d;
}

static void to_gateway(struct fn_state *s, struct bpfctl_desc *d, int status, const char *msg)
{
	d->flags |= BPFCTL_DESC_FLAG_ERROR;
	d->status = (uint16_t)status;
	d->hop = (uint8_t)s->route_len[d->route];
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
	uint32_t len;

	if (d.route >= s->nroutes)
		return; /* cannot even find the way back: the kernel checks routes, so the policy changed */
	len = s->route_len[d.route];
	if (d.flags & BPFCTL_DESC_FLAG_DROPPED) {
		/* refused by the kernel, delivered here inside someone's batch: bounce if sound */
		uint32_t reason = (d.flags & BPFCTL_DESC_DROP_REASON_MASK) >> BPFCTL_DESC_DROP_REASON_SHIFT;

		if (d.hop < len && (reason == BPFCTL_DROP_NO_INSTANCE || reason == BPFCTL_DROP_DEAD_SOCKET)) {
			d.flags &= (uint8_t) ~(BPFCTL_DESC_FLAG_DROPPED | BPFCTL_DESC_DROP_REASON_MASK);
			d.buf_len = 0; /* the request's payload is not an answer */
			to_gateway(s, &d, 503, NULL);
		}
		return;
	}
	if (d.hop >= len || (s->have_hops && s->route_hop[d.route][d.hop] != s->fn_id)) {
		to_gateway(s, &d, 500, NULL);
		return;
	}
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
	if (env_u32("BPFCTL_FN_ID", &s->fn_id, 1) || env_u32("BPFCTL_INST", &s->inst, 1) || env_u32("BPFCTL_HUB_PORT", &v, 1))
		return 2;
	s->hub_port = (int)v;
	if (parse_routes(s))
		return 2;
	if (env_u32("BPFCTL_REG_PORT", &v, 0) == 0)
		s->reg_port = (int)v;
	if (env_u32("BPFCTL_SOCK_FD", &v, 0) == 0)
		s->sock_fd = (int)v;
	if (env_u32("BPFCTL_READY_FD", &v, 0) == 0)
		s->ready_fd = (int)v;
	s->cgroup = getenv("BPFCTL_CGROUP");
	if (s->sock_fd < 0 && !s->reg_port) {
		logf_(s, "neither BPFCTL_SOCK_FD nor BPFCTL_REG_PORT is set: no way to register");
		return 2;
	}
	pool_path = getenv("BPFCTL_POOL");
	if (!pool_path || !(s->pool = bpfctl_pool_open(pool_path))) {
		logf_(s, "cannot open pool %s: %s", pool_path ? pool_path : "(BPFCTL_POOL not set)", strerror(errno));
		return 2;
	}
	/* a dead peer must surface as an error return, not kill us */
	signal(SIGPIPE, SIG_IGN);
	if (s->cgroup && *s->cgroup && s->sock_fd < 0 && join_cgroup(s)) {
		logf_(s, "cannot join cgroup %s: %s", s->cgroup, strerror(errno));
		return 2;
	}
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
