// SPDX-License-Identifier: MIT
/*
 * The C function API of bpf/include/bpfctl/fn.h over plain TCP, for the chain bench's tcp-c
 * variant: the C functions of ../c (upper.c, reverse.c, stamp.c), unchanged, linked with this
 * file instead of src/runtime/c/fn.c. What differs from bpfctl-c is the transport only:
 *
 *   bpfctl-c  24-byte descriptors over a chain socket, sk_msg redirects them, the payload stays
 *             in the shared pool (the handler works on it in place)
 *   tcp-c     the framing of ../tcp/framing.ts (u32 length | u32 request id | payload, LE), the
 *             payload copied through every hop's socket buffers, one TCP connection per hop
 *
 * and the two runtimes are built alike: blocking read() while idle (no polling, no timers), every
 * request of a read handled, then everything that read produced in one write.
 *
 * The process does what ../tcp/function.ts does: it listens on 127.0.0.1 (for its downstream
 * hop), prints `listening <port>`, connects to the listener of its upstream hop
 * (TCP_C_UPSTREAM_PORT), accepts its downstream hop, then reads frames from upstream and writes
 * the answers downstream. It leaves when its stdin closes (the bench went away, even by SIGKILL)
 * or on SIGTERM.
 *
 * A handler error (a negative return) has no way back to the gateway in this framing: the frame
 * goes on empty, and the gateway or loop driver, which check every answer, count it as wrong.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bpfctl/fn.h"

#define HEADER 8u
/* ../tcp/framing.ts MAX_FRAME: larger frames are a framing error. */
#define MAX_FRAME (64u * 1024u)
/* The room a handler gets, as a bpfctl-c buffer has: the bench policy's pool.bufferSize. */
#define BUF_CAP 512u
#define READ_BUF (64u * 1024u + MAX_FRAME + HEADER)

static const char *g_name = "tcp-c";
/* The scratch buffer bpfctl_fn_alloc() hands out (one request at a time). */
static uint8_t g_alloc[MAX_FRAME];

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", g_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

uint8_t *bpfctl_fn_alloc(struct bpfctl_fn_req *req, uint32_t n)
{
	if (n > req->cap || n > sizeof(g_alloc))
		return NULL;
	req->has_new = 1;
	req->new_len_cap = n;
	return g_alloc;
}

int bpfctl_fn_errorf(struct bpfctl_fn_req *req, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(req->err, sizeof(req->err), fmt, ap);
	va_end(ap);
	return status > 0 ? -status : -500;
}

/* The bench closing our stdin means it is gone: leave with it. */
static void *watch_stdin(void *arg)
{
	char b[256];

	(void)arg;
	while (read(0, b, sizeof(b)) > 0 || errno == EINTR)
		errno = 0;
	_exit(0);
}

static void nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			die("downstream: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* Everything one read produced, written at once (grown as needed, never shrunk). */
static uint8_t *g_out;
static size_t g_out_cap, g_out_used;

static uint8_t *reserve(size_t n)
{
	if (g_out_used + n > g_out_cap) {
		size_t cap = g_out_cap ? g_out_cap : 64 * 1024;

		while (g_out_used + n > cap)
			cap *= 2;
		if (!(g_out = realloc(g_out, cap)))
			die("out of memory");
		g_out_cap = cap;
	}
	return g_out + g_out_used;
}

static int g_errors_logged;

static void handle(bpfctl_fn_handler h, void *ctx, const uint8_t *payload, uint32_t len, uint32_t req_id)
{
	uint32_t cap = len > BUF_CAP ? len : BUF_CAP;
	uint8_t *f = reserve(HEADER + cap);
	struct bpfctl_fn_req req = { 0 };
	int ret;

	memcpy(f + HEADER, payload, len);
	req.req_id = req_id;
	req.data = f + HEADER;
	req.len = len;
	req.cap = cap;
	ret = h(&req, ctx);
	if (ret >= 0 && req.has_new && (uint32_t)ret <= req.new_len_cap)
		memcpy(f + HEADER, g_alloc, (size_t)ret);
	else if (ret >= 0 && (uint32_t)ret > cap)
		ret = -500;
	if (ret < 0) {
		if (g_errors_logged++ < 10)
			fprintf(stderr, "%s: request %u failed with %d%s%s\n", g_name, req_id, -ret, req.err[0] ? ": " : "", req.err);
		ret = 0;
	}
	put_u32(f, (uint32_t)ret);
	put_u32(f + 4, req_id);
	g_out_used += HEADER + (size_t)ret;
}

int bpfctl_fn_run(bpfctl_fn_handler handler, void *ctx)
{
	static uint8_t buf[READ_BUF];
	const char *up_env = getenv("TCP_C_UPSTREAM_PORT");
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	pthread_t t;
	size_t have = 0;
	int lfd, up, down;
	long port;

	if (getenv("TCP_C_NAME"))
		g_name = getenv("TCP_C_NAME");
	port = up_env ? strtol(up_env, NULL, 10) : 0;
	if (port <= 0 || port > 65535)
		die("TCP_C_UPSTREAM_PORT must be the upstream hop's port, got '%s'", up_env ? up_env : "");
	signal(SIGPIPE, SIG_IGN);
	if (pthread_create(&t, NULL, watch_stdin, NULL))
		die("cannot start the stdin watcher");
	pthread_detach(t);

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 4) || getsockname(lfd, (struct sockaddr *)&a, &alen))
		die("cannot listen on 127.0.0.1: %s", strerror(errno));
	printf("listening %u\n", ntohs(a.sin_port));
	fflush(stdout);

	a.sin_port = htons((uint16_t)port);
	up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (up < 0 || connect(up, (struct sockaddr *)&a, sizeof(a)))
		die("cannot connect to upstream port %ld: %s", port, strerror(errno));
	nodelay(up);
	/* Upstream sends nothing before the whole chain is connected (the gateway or driver waits
	 * for the last hop), so accepting first cannot hold anything up. */
	down = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (down < 0)
		die("accept: %s", strerror(errno));
	nodelay(down);
	close(lfd);

	for (;;) {
		ssize_t n = read(up, buf + have, sizeof(buf) - have);
		size_t at = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			die("upstream closed");
		if (n < 0)
			die("upstream: %s", strerror(errno));
		have += (size_t)n;
		while (at + HEADER <= have) {
			uint32_t len = get_u32(buf + at);

			if (len > MAX_FRAME)
				die("frame of %u bytes", len);
			if (at + HEADER + len > have)
				break;
			handle(handler, ctx, buf + at + HEADER, len, get_u32(buf + at + 4));
			at += HEADER + len;
		}
		/* a partial frame waits for the rest */
		if (at < have)
			memmove(buf, buf + at, have - at);
		have -= at;
		if (g_out_used) {
			write_all(down, g_out, g_out_used);
			g_out_used = 0;
		}
	}
}
