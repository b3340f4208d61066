// SPDX-License-Identifier: MIT
/*
 * HTTP/1.1 connections of the native gateway: request heads parsed by picohttpparser, bodies read
 * into pool buffers, answers written from them. Semantics are the Node gateway's
 * (src/runtime/gateway/gateway.ts, docs/live-control.md "HTTP"); docs/gateway-native.md says how.
 *
 * Edge-triggered epoll: a connection is registered once (in, out, rdhup) and remembers whether it
 * may read or write; it reads only in the states that want input, one read per loop turn, so a
 * client that sends fast cannot starve the others (those with more to read go on a ready list
 * served on the next turn). One request per connection at a time: pipelined requests wait in the
 * input buffer and are answered in order.
 *
 * Slow clients and the pool: a body still arriving holds a pool buffer only while fewer than
 * `recv_buffers` do (a small share of the pool); past that it is collected in private memory that
 * grows with what arrived, and copied into a pool buffer once complete (what the Node gateway
 * always does). An answer that the client's socket does not take at once is copied out and its
 * pool buffer freed: slow readers hold no pool buffers either.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gw.h"

static const char TEXT[] = "text/plain; charset=utf-8";
static const char *const METHODS[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS" }; /* ROUTE_METHODS */
#define NMETHODS (sizeof(METHODS) / sizeof(METHODS[0]))

/* ---- reason phrases: node:http's STATUS_CODES, so both engines say the same ---- */
static const char *reason(int s)
{
	switch (s) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 102: return "Processing";
	case 103: return "Early Hints";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 207: return "Multi-Status";
	case 208: return "Already Reported";
	case 226: return "IM Used";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 305: return "Use Proxy";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 418: return "I'm a Teapot";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Entity";
	case 423: return "Locked";
	case 424: return "Failed Dependency";
	case 425: return "Too Early";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 451: return "Unavailable For Legal Reasons";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 506: return "Variant Also Negotiates";
	case 507: return "Insufficient Storage";
	case 508: return "Loop Detected";
	case 509: return "Bandwidth Limit Exceeded";
	case 510: return "Not Extended";
	case 511: return "Network Authentication Required";
	default: return NULL;
	}
}

void gw_count_status(int status)
{
	if (status >= 0 && status < 600)
		G.stats.by_status[status]++;
	bpfctl_gw_stats_response(G.metrics, (unsigned)status);
}

/* ---- connections per client address ---- */
struct gw_addr_count {
	struct gw_addr_count *next;
	uint8_t addr[16];
	uint32_t n;
};
#define ADDR_BUCKETS 4096
static struct gw_addr_count *buckets[ADDR_BUCKETS];

static struct gw_addr_count **addr_slot(const uint8_t addr[16])
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 16; i++)
		h = (h ^ addr[i]) * 16777619u;
	struct gw_addr_count **pp = &buckets[h % ADDR_BUCKETS];

	while (*pp && memcmp((*pp)->addr, addr, 16))
		pp = &(*pp)->next;
	return pp;
}

static void addr_release(struct gw_addr_count *a)
{
	if (--a->n)
		return;
	struct gw_addr_count **pp = addr_slot(a->addr);

	*pp = a->next;
	free(a);
}

/* ---- head buffers, recycled: an idle keep-alive connection holds none ---- */
static char *spare_bufs[64];
static int nspare;

static char *take_buf(void)
{
	return nspare ? spare_bufs[--nspare] : malloc(GW_HEAD_MAX);
}

static void give_buf(char *b)
{
	if (nspare < (int)(sizeof(spare_bufs) / sizeof(spare_bufs[0])))
		spare_bufs[nspare++] = b;
	else
		free(b);
}

/* ---- the ready list (connections with more to read than one turn took) and closed ones ---- */
static struct gw_conn **ready;
static size_t nready, ready_cap;
static struct gw_conn **dead;
static size_t ndead, dead_cap;

static void push(struct gw_conn ***list, size_t *n, size_t *cap, struct gw_conn *c)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*list = realloc(*list, *cap * sizeof(**list));
		if (!*list) {
			gw_log("out of memory");
			exit(1);
		}
	}
	(*list)[(*n)++] = c;
}

/* ---- timers ---- */
static void set_timer(struct gw_conn *c, enum gw_timer t)
{
	if (c->on == t)
		return;
	gw_unlink(&c->timer);
	c->on = t;
	if (t == TIMER_NONE)
		return;
	c->since_ms = G.now_ms;
	gw_append(t == TIMER_IDLE ? &G.idle : t == TIMER_BODY ? &G.body : &G.linger, &c->timer);
}

static int writing;

/* ---- body sinks ---- */
static void drop_body(struct gw_conn *c)
{
	if (c->body_in_pool) {
		bpfctl_pool_free(G.pool, c->body_ref.offset, c->body_ref.gen, 0);
		G.recv_held--;
	} else {
		free(c->body);
	}
	c->body_in_pool = 0;
	c->body = NULL;
	c->body_len = c->body_cap = 0;
}

static void drop_output(struct gw_conn *c)
{
	if (c->out_pool)
		bpfctl_pool_free(G.pool, c->out_off, c->out_gen, 0);
	c->out_pool = 0;
	free(c->out_copy);
	c->out_copy = NULL;
	c->iovcnt = 0;
}

static void conn_close(struct gw_conn *c)
{
	if (c->fd < 0)
		return;
	set_timer(c, TIMER_NONE);
	if (c->iovcnt)
		writing--;
	if (c->pending)
		c->pending->conn = NULL; /* its reply will find no one to write to */
	c->pending = NULL;
	drop_body(c);
	drop_output(c);
	if (c->in)
		give_buf(c->in);
	c->in = NULL;
	addr_release(c->client);
	close(c->fd);
	c->fd = -1;
	/* freed after this loop turn: epoll may still hold an event naming it */
	push(&dead, &ndead, &dead_cap, c);
}

/* ---- output ---- */
static const char *http_date(void)
{
	static char buf[64];
	static time_t at = -1;
	time_t now = time(NULL);

	if (now != at) {
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		at = now;
	}
	return buf;
}

static void after_response(struct gw_conn *c);
static void process(struct gw_conn *c);

static void write_out(struct gw_conn *c)
{
	while (c->iovcnt) {
		ssize_t w = writev(c->fd, c->iov, c->iovcnt);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* the client reads slowly: its answer leaves the pool (copied out, buffer freed) */
			if (c->out_pool) {
				struct iovec *b = &c->iov[c->iovcnt - 1];

				c->out_copy = malloc(b->iov_len ? b->iov_len : 1);
				if (!c->out_copy) {
					conn_close(c);
					return;
				}
				memcpy(c->out_copy, b->iov_base, b->iov_len);
				b->iov_base = c->out_copy;
				bpfctl_pool_free(G.pool, c->out_off, c->out_gen, 0);
				c->out_pool = 0;
			}
			return; /* EPOLLOUT (edge-triggered) resumes it */
		}
		if (w < 0) {
			conn_close(c);
			return;
		}
		size_t n = (size_t)w;

		while (c->iovcnt && n >= c->iov[0].iov_len) {
			n -= c->iov[0].iov_len;
			c->iov[0] = c->iov[1];
			c->iovcnt--;
		}
		if (c->iovcnt) {
			c->iov[0].iov_base = (char *)c->iov[0].iov_base + n;
			c->iov[0].iov_len -= n;
		}
	}
	drop_output(c);
	writing--;
	after_response(c);
}

int gw_conns_writing(void) { return writing; }

/*
 * Queues and starts writing an answer. `pool`: the body is the pool buffer (off, gen), freed once
 * written. The status line and headers are node:http's, less what only Node sends.
 */
static void respond(struct gw_conn *c, int status, const char *type, const void *body, size_t len, const char *allow, int close_after, int pool,
		    uint32_t off, uint32_t gen)
{
	const char *why = reason(status);
	int n;

	gw_count_status(status);
	if (c->iovcnt) {
		/* an answer to this request is still going out (an early one, then bad input in the
		 * body it was dropping): that one stands, and the connection ends after it */
		c->close_after = 1;
		c->keep_alive = 0;
		if (pool)
			bpfctl_pool_free(G.pool, off, gen, 0);
		return;
	}
	if (close_after)
		c->close_after = 1;
	n = snprintf(c->head, sizeof(c->head), "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\ndate: %s\r\n%s%s%s%s\r\n", status,
		     why ? why : "unknown", type, len, http_date(), allow ? "allow: " : "", allow ? allow : "", allow ? "\r\n" : "",
		     c->close_after || !c->keep_alive ? "connection: close\r\n" : c->http10 ? "connection: keep-alive\r\n" : "");
	c->iov[0].iov_base = c->head;
	c->iov[0].iov_len = (size_t)n;
	c->iovcnt = 1;
	writing++;
	c->out_pool = pool;
	c->out_off = off;
	c->out_gen = gen;
	if (len && !c->head_only && !pool) {
		/* text answers are short: a copy the connection owns until written */
		if (!(c->out_copy = malloc(len))) {
			conn_close(c);
			return;
		}
		memcpy(c->out_copy, body, len);
		body = c->out_copy;
	}
	if (len && !c->head_only) {
		c->iov[1].iov_base = (void *)body;
		c->iov[1].iov_len = len;
		c->iovcnt = 2;
	} else if (pool) {
		/* HEAD: the GET answer's headers, no body; the buffer is done with now */
		bpfctl_pool_free(G.pool, off, gen, 0);
		c->out_pool = 0;
	}
	write_out(c);
}

void gw_respond_text(struct gw_conn *c, int status, const char *text)
{
	char tmp[64];

	if (!text) {
		const char *why = reason(status);

		snprintf(tmp, sizeof(tmp), "%s\n", why ? why : "error");
		text = tmp;
	}
	respond(c, status, TEXT, text, strlen(text), NULL, 0, 0, 0, 0);
}

void gw_respond_pool(struct gw_conn *c, int status, const char *type, uint32_t off, uint32_t gen, uint32_t len)
{
	respond(c, status, type, bpfctl_pool_ptr(G.pool, off), len, NULL, 0, 1, off, gen);
}

/* ---- input ---- */
static int header_is(const struct phr_header *h, const char *name)
{
	return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

static int value_has(const struct phr_header *h, const char *token)
{
	size_t tl = strlen(token);

	for (size_t i = 0; i + tl <= h->value_len; i++) {
		if (strncasecmp(h->value + i, token, tl) == 0 && (i == 0 || h->value[i - 1] == ' ' || h->value[i - 1] == ',') &&
		    (i + tl == h->value_len || h->value[i + tl] == ' ' || h->value[i + tl] == ','))
			return 1;
	}
	return 0;
}

/* A malformed request: 400 and close (Node: clientError). */
static void bad_request(struct gw_conn *c)
{
	c->keep_alive = 0;
	c->state = CONN_WAIT;
	set_timer(c, TIMER_NONE);
	respond(c, 400, TEXT, "", 0, NULL, 1, 0, 0, 0);
}

/* The request is complete and answered or dispatched: its body deadline no longer applies. */
static void request_done(struct gw_conn *c)
{
	set_timer(c, TIMER_NONE);
	c->state = CONN_WAIT;
}

/* Answer now, before the body: the body (if any) is read and dropped, the connection stays. */
static void answer_early(struct gw_conn *c, int status, const char *text, const char *allow, int expect_continue)
{
	int body = c->chunked || c->body_left > 0;

	if (body && expect_continue) {
		/* the client waits for 100 Continue before its body: it will not send it, so close */
		c->close_after = 1;
		body = 0;
	}
	c->state = body ? CONN_DISCARD : CONN_WAIT;
	if (!body)
		set_timer(c, TIMER_NONE);
	respond(c, status, TEXT, text, strlen(text), allow, 0, 0, 0, 0);
}

static void dispatch_body(struct gw_conn *c);

static void on_head(struct gw_conn *c, const char *method, size_t mlen, const char *path, size_t plen, int minor, struct phr_header *h,
		    size_t nh)
{
	int64_t cl = -1;
	int te = 0, expect = 0, conn_close_hdr = 0, conn_keep = 0;

	G.stats.requests++;
	c->http10 = minor == 0;
	c->chunked = 0;
	c->body_left = 0;
	c->close_after = 0;
	/* any answer to HEAD, early ones too, has no body (node:http drops it for HEAD itself) */
	c->head_only = mlen == 4 && memcmp(method, "HEAD", 4) == 0;
	for (size_t i = 0; i < nh; i++) {
		if (!h[i].name)
			continue;
		if (header_is(&h[i], "content-length")) {
			int64_t v = 0;

			if (h[i].value_len == 0 || h[i].value_len > 15)
				return bad_request(c);
			for (size_t k = 0; k < h[i].value_len; k++) {
				if (h[i].value[k] < '0' || h[i].value[k] > '9')
					return bad_request(c);
				v = v * 10 + (h[i].value[k] - '0');
			}
			if (cl >= 0 && cl != v)
				return bad_request(c);
			cl = v;
		} else if (header_is(&h[i], "transfer-encoding")) {
			/* llhttp accepts a request body only when chunked is the final coding */
			if (h[i].value_len < 7 || strncasecmp(h[i].value + h[i].value_len - 7, "chunked", 7))
				return bad_request(c);
			te = 1;
		} else if (header_is(&h[i], "connection")) {
			conn_close_hdr |= value_has(&h[i], "close");
			conn_keep |= value_has(&h[i], "keep-alive");
		} else if (header_is(&h[i], "expect")) {
			expect = value_has(&h[i], "100-continue");
		}
	}
	if (te && cl >= 0)
		return bad_request(c); /* request smuggling: llhttp refuses both */
	c->keep_alive = c->http10 ? conn_keep && !conn_close_hdr : !conn_close_hdr;
	c->chunked = te;
	c->body_left = cl > 0 ? (uint64_t)cl : 0;

	/* the query string is ignored and not passed on */
	const char *q = memchr(path, '?', plen);
	size_t pl = q ? (size_t)(q - path) : plen;
	const struct gw_route *r = gw_route_by_path(&G.maps, path, pl);
	char msg[256], tmp[32];

	if (!r)
		return answer_early(c, 404, "no such route\n", NULL, expect);
	uint32_t mbit = 0;

	for (size_t i = 0; i < NMETHODS; i++)
		if (strlen(METHODS[i]) == mlen && memcmp(METHODS[i], method, mlen) == 0)
			mbit = 1u << i;
	if (!(r->methods & mbit)) {
		char allow[96] = "";
		size_t at = 0;

		for (size_t i = 0; i < NMETHODS; i++)
			if (r->methods & (1u << i))
				at += (size_t)snprintf(allow + at, sizeof(allow) - at, "%s%s", at ? ", " : "", METHODS[i]);
		snprintf(msg, sizeof(msg), "%s accepts %s\n", r->name, allow);
		return answer_early(c, 405, msg, allow, expect);
	}
	if (cl > (int64_t)G.pool->buf_size) {
		snprintf(msg, sizeof(msg), "body larger than %u bytes\n", G.pool->buf_size);
		c->close_after = 1;
		c->body_left = 0;
		c->chunked = 0;
		return answer_early(c, 413, msg, NULL, 0);
	}
	if (G.closing || !gw_chain_up())
		return answer_early(c, 503, "chain not connected\n", NULL, expect);
	if (G.npending >= G.max_in_flight)
		return answer_early(c, 503, "too many requests in flight\n", NULL, expect);
	for (uint32_t i = 0; i < r->len; i++) {
		if (gw_live_count(&G.maps, r->hops[i]) == 0) {
			snprintf(msg, sizeof(msg), "function %s has no live instance\n", gw_fn_name(r->hops[i], tmp, sizeof(tmp)));
			return answer_early(c, 503, msg, NULL, expect);
		}
	}
	/* the route as it was when the request arrived (it may change while the body comes) */
	c->route = *r;
	c->state = CONN_BODY;
	c->body_len = 0;
	memset(&c->chunk, 0, sizeof(c->chunk));
	c->chunk.d.consume_trailer = 1;
	if (!c->chunked && c->body_left == 0)
		return dispatch_body(c);
	if (expect) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

		/* a few bytes into an idle socket: if even they do not fit, the client is not reading */
		if (write(c->fd, cont, sizeof(cont) - 1) != (ssize_t)(sizeof(cont) - 1)) {
			conn_close(c);
			return;
		}
	}
}

/* Room for `n` more body bytes; false (and 413) when the body would exceed a pool buffer. */
static int body_room(struct gw_conn *c, size_t n)
{
	size_t cap = G.pool->buf_size;

	if (c->body_len + n > cap) {
		char msg[96];

		drop_body(c);
		snprintf(msg, sizeof(msg), "body larger than %u bytes\n", G.pool->buf_size);
		c->close_after = 1;
		c->body_left = 0;
		c->chunked = 0;
		answer_early(c, 413, msg, NULL, 0);
		return 0;
	}
	if (c->body_in_pool || c->body_len + n <= c->body_cap)
		return 1;
	if (!c->body && c->body_len == 0 && G.recv_held < G.recv_buffers && bpfctl_pool_alloc(G.pool, G.pid, &c->body_ref) == 0) {
		/* read straight into a pool buffer: few bodies at once may do this */
		c->body = bpfctl_pool_ptr(G.pool, c->body_ref.offset);
		c->body_in_pool = 1;
		c->body_cap = cap;
		G.recv_held++;
		return 1;
	}
	/* collected privately, growing with what arrived */
	size_t want = c->body_cap ? c->body_cap : 1024;

	while (want < c->body_len + n)
		want *= 2;
	if (want > cap)
		want = cap;
	uint8_t *b = realloc(c->body, want);

	if (!b) {
		conn_close(c);
		return 0;
	}
	c->body = b;
	c->body_cap = want;
	return 1;
}

static void append_body(struct gw_conn *c, const void *data, size_t n)
{
	if (!n || !body_room(c, n))
		return;
	memcpy(c->body + c->body_len, data, n);
	c->body_len += n;
}

/* The body is complete: into a pool buffer (if it is not already in one) and into the chain. */
static void dispatch_body(struct gw_conn *c)
{
	struct bpfctl_buf_ref ref;
	size_t len = c->body_len;

	if (c->body_in_pool) {
		ref = c->body_ref;
		c->body_in_pool = 0;
		c->body = NULL;
		c->body_cap = c->body_len = 0;
		G.recv_held--;
	} else {
		if (bpfctl_pool_alloc(G.pool, G.pid, &ref)) {
			drop_body(c);
			request_done(c);
			return gw_respond_text(c, 503, "pool exhausted\n");
		}
		if (len)
			memcpy(bpfctl_pool_ptr(G.pool, ref.offset), c->body, len);
		drop_body(c);
	}
	request_done(c);
	gw_dispatch(c, &c->route, &ref, (uint32_t)len);
}

/* Consumes body bytes at in[start..len) (content-length or chunked); true when the body ended. */
static int eat_body(struct gw_conn *c, int keep)
{
	size_t avail = c->len - c->start;

	if (!c->chunked) {
		size_t take = avail < c->body_left ? avail : (size_t)c->body_left;

		if (keep)
			append_body(c, c->in + c->start, take);
		if (c->fd < 0)
			return 0;
		c->start += take;
		c->body_left -= take;
		return c->body_left == 0;
	}
	size_t sz = avail;
	ssize_t r = phr_decode_chunked(&c->chunk.d, c->in + c->start, &sz);

	if (r == -1) {
		c->chunked = 0;
		c->body_left = 0;
		drop_body(c);
		bad_request(c);
		return 0;
	}
	if (keep)
		append_body(c, c->in + c->start, sz);
	if (c->fd < 0 || (keep && c->state != CONN_BODY))
		return 0;
	if (r == -2) {
		c->start = c->len = 0;
		return 0;
	}
	/* the bytes after the body follow the decoded ones */
	memmove(c->in + c->start, c->in + c->start + sz, (size_t)r);
	c->len = c->start + (size_t)r;
	c->chunked = 0;
	return 1;
}

/* Handles what is in the input buffer for the current state; returns when it needs more input or waits. */
static void process_in(struct gw_conn *c);

static void process(struct gw_conn *c)
{
	int outer = !c->in_process;

	c->in_process = 1;
	process_in(c);
	if (outer)
		c->in_process = 0;
}

static void process_in(struct gw_conn *c)
{
	while (c->fd >= 0) {
		if (c->state == CONN_HEAD) {
			if (c->start == c->len) {
				c->start = c->len = 0;
				if (c->in) {
					give_buf(c->in);
					c->in = NULL;
				}
				if (c->peer_gone) {
					conn_close(c);
					return;
				}
				set_timer(c, TIMER_IDLE);
				return;
			}
			/* a request has begun: its deadline (head and body) runs from here */
			set_timer(c, TIMER_BODY);
			const char *method, *path;
			size_t mlen, plen, nh = GW_MAX_HEADERS;
			struct phr_header h[GW_MAX_HEADERS];
			int minor;
			int n = phr_parse_request(c->in + c->start, c->len - c->start, &method, &mlen, &path, &plen, &minor, h, &nh, 0);

			if (n == -2) {
				if (c->start) {
					memmove(c->in, c->in + c->start, c->len - c->start);
					c->len -= c->start;
					c->start = 0;
				}
				if (c->len >= GW_HEAD_MAX)
					bad_request(c); /* Node: header overflow -> 400 */
				return;
			}
			if (n < 0) {
				bad_request(c);
				return;
			}
			c->start += (size_t)n;
			on_head(c, method, mlen, path, plen, minor, h, nh);
			continue;
		}
		if (c->state == CONN_BODY || c->state == CONN_DISCARD) {
			int keep = c->state == CONN_BODY;

			if (keep && !c->chunked && c->body_len == 0 && c->len - c->start >= c->body_left) {
				/* the whole body came with the head (most requests): one copy into a pool buffer */
				struct bpfctl_buf_ref ref;
				size_t n = (size_t)c->body_left;
				const char *src = c->in + c->start;

				c->start += n;
				c->body_left = 0;
				request_done(c);
				if (bpfctl_pool_alloc(G.pool, G.pid, &ref)) {
					gw_respond_text(c, 503, "pool exhausted\n");
					continue;
				}
				memcpy(bpfctl_pool_ptr(G.pool, ref.offset), src, n);
				gw_dispatch(c, &c->route, &ref, (uint32_t)n);
				continue;
			}

			if (c->start == c->len && (c->chunked || c->body_left)) {
				/* waiting for more body: a slow client keeps no head buffer meanwhile */
				if (c->in) {
					give_buf(c->in);
					c->in = NULL;
				}
				c->start = c->len = 0;
				return;
			}
			if (!eat_body(c, keep)) {
				if (c->fd < 0 || c->state == CONN_WAIT || c->state == CONN_LINGER)
					continue;
				return;
			}
			if (keep) {
				dispatch_body(c);
			} else {
				set_timer(c, TIMER_NONE);
				c->state = CONN_WAIT;
				/* answered and drained: on to the next request */
				if (c->iovcnt == 0)
					after_response(c);
			}
			continue;
		}
		return; /* CONN_WAIT, CONN_LINGER: input waits */
	}
}

static void start_linger(struct gw_conn *c)
{
	c->state = CONN_LINGER;
	/* FIN now; reading on until the client's EOF keeps our answer from being reset away */
	shutdown(c->fd, SHUT_WR);
	c->start = c->len = 0;
	set_timer(c, TIMER_LINGER);
	if (c->peer_gone)
		conn_close(c);
}

static void read_some(struct gw_conn *c);

static void after_response(struct gw_conn *c)
{
	if (c->fd < 0)
		return;
	if (c->close_after || !c->keep_alive || G.closing || c->peer_gone) {
		start_linger(c);
		if (c->fd >= 0 && c->can_read)
			push(&ready, &nready, &ready_cap, c);
		return;
	}
	if (c->state != CONN_WAIT)
		return; /* CONN_DISCARD: the rest of the refused body is still to be dropped */
	c->state = CONN_HEAD;
	/* inside process() already (a pipelined request answered at once): its loop goes on */
	if (c->in_process)
		return;
	process(c);
	if (c->fd >= 0 && c->can_read && c->state != CONN_WAIT)
		push(&ready, &nready, &ready_cap, c);
}

/* One read for the state that wants input, then whatever it completes. */
static void read_some(struct gw_conn *c)
{
	char sink[4096];
	void *dst;
	size_t want;

	if (c->fd < 0 || !c->can_read)
		return;
	if (c->state == CONN_LINGER) {
		dst = sink;
		want = sizeof(sink);
	} else if (c->state == CONN_HEAD || c->chunked || c->state == CONN_DISCARD) {
		if (!c->in && !(c->in = take_buf())) {
			conn_close(c);
			return;
		}
		if (c->start == c->len)
			c->start = c->len = 0;
		if (c->len == GW_HEAD_MAX && c->start) {
			memmove(c->in, c->in + c->start, c->len - c->start);
			c->len -= c->start;
			c->start = 0;
		}
		dst = c->in + c->len;
		want = GW_HEAD_MAX - c->len;
		if (c->state == CONN_DISCARD && !c->chunked && c->body_left < want)
			want = (size_t)c->body_left;
	} else if (c->state == CONN_BODY) {
		/* content-length: straight into where the body goes (a pool buffer, mostly) */
		size_t n = c->body_left < 64 * 1024 ? (size_t)c->body_left : 64 * 1024;

		/* nothing buffered behind the head: a slow body keeps no head buffer meanwhile */
		if (c->in && c->start == c->len) {
			give_buf(c->in);
			c->in = NULL;
			c->start = c->len = 0;
		}

		if (!body_room(c, n))
			return;
		dst = c->body + c->body_len;
		want = n;
	} else {
		return; /* CONN_WAIT */
	}
	if (want == 0)
		return;
	ssize_t n = read(c->fd, dst, want);

	if (n < 0 && errno == EINTR)
		return push(&ready, &nready, &ready_cap, c);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		c->can_read = 0;
		return;
	}
	if (n <= 0) {
		/* the client is gone (EOF or reset); a request in the chain finds no one */
		conn_close(c);
		return;
	}
	/* a short read drained the socket: the next bytes bring a new edge */
	if ((size_t)n < want)
		c->can_read = 0;
	if (c->state == CONN_LINGER) {
		if (c->can_read)
			push(&ready, &nready, &ready_cap, c);
		return;
	}
	if (c->state == CONN_BODY && !c->chunked) {
		c->body_len += (size_t)n;
		c->body_left -= (size_t)n;
		if (c->body_left == 0)
			dispatch_body(c);
	} else {
		c->len += (size_t)n;
		process(c);
	}
	if (c->fd >= 0 && c->can_read && c->state != CONN_WAIT)
		push(&ready, &nready, &ready_cap, c);
}

void gw_conn_event(struct gw_conn *c, uint32_t events)
{
	if (c->fd < 0)
		return;
	if (events & (EPOLLERR | EPOLLHUP)) {
		conn_close(c);
		return;
	}
	if (events & EPOLLRDHUP)
		c->peer_gone = 1;
	if (events & (EPOLLIN | EPOLLRDHUP))
		c->can_read = 1;
	if ((events & EPOLLOUT) && c->iovcnt)
		write_out(c);
	/* a client that shut its side while its request is in the chain is gone (Node: httpAllowHalfOpen
	 * false): the reply will find no one; an answer being written is finished first */
	if (c->fd >= 0 && c->state == CONN_WAIT && c->peer_gone && c->iovcnt == 0)
		conn_close(c);
	else
		read_some(c);
}

void gw_run_ready(void)
{
	size_t n = nready;

	/* only those queued before this turn: a connection re-queued now waits for the next */
	for (size_t i = 0; i < n; i++) {
		struct gw_conn *c = ready[i];

		if (c->fd >= 0)
			read_some(c);
	}
	memmove(ready, ready + n, (nready - n) * sizeof(*ready));
	nready -= n;
	for (size_t i = 0; i < ndead; i++) {
		/* a closed connection may still sit on the ready list: drop those entries first */
		for (size_t j = 0; j < nready; j++)
			if (ready[j] == dead[i])
				ready[j--] = ready[--nready];
		free(dead[i]);
	}
	ndead = 0;
}

int gw_has_ready(void) { return nready > 0; }

void gw_accept(void)
{
	/* a bounded batch per turn: a connection flood cannot keep the loop from serving requests */
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(G.listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if ((errno == EMFILE || errno == ENFILE) && G.spare_fd >= 0) {
				/* out of fds: take the connection with the spare one and close it at once */
				close(G.spare_fd);
				fd = accept(G.listen_fd, NULL, NULL);
				if (fd >= 0)
					close(fd);
				G.stats.refused_connections++;
				G.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
				continue;
			}
			return;
		}
		uint8_t addr[16] = { 0 };

		if (ss.ss_family == AF_INET)
			memcpy(addr + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
		else if (ss.ss_family == AF_INET6)
			memcpy(addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
		struct gw_addr_count **pp = addr_slot(addr);

		if (*pp && (*pp)->n >= G.max_per_client) {
			/* one address holds at most max_per_client connections: more are closed at once */
			G.stats.refused_connections++;
			close(fd);
			continue;
		}
		struct gw_conn *c = calloc(1, sizeof(*c));

		if (!c) {
			close(fd);
			continue;
		}
		if (!*pp) {
			*pp = calloc(1, sizeof(**pp));
			if (!*pp) {
				free(c);
				close(fd);
				continue;
			}
			memcpy((*pp)->addr, addr, 16);
		}
		(*pp)->n++;
		c->client = *pp;
		c->fd = fd;
		c->state = CONN_HEAD;
		int one = 1;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c };

		if (epoll_ctl(G.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			addr_release(c->client);
			close(fd);
			free(c);
			continue;
		}
		set_timer(c, TIMER_IDLE);
	}
}

/* A request not received within the body deadline: 408 and close (Node: requestTimeout). */
static void body_timeout(struct gw_conn *c)
{
	static const char r408[] = "HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

	c->on = TIMER_NONE; /* expire() unlinked it */
	c->close_after = 1;
	c->keep_alive = 0;
	if (c->state == CONN_DISCARD) {
		/* already answered: only the rest of the body is late */
		c->state = CONN_WAIT;
		if (c->iovcnt == 0)
			start_linger(c);
		return;
	}
	gw_count_status(408);
	drop_body(c);
	c->state = CONN_WAIT;
	if (write(c->fd, r408, sizeof(r408) - 1) < 0) {
		conn_close(c);
		return;
	}
	start_linger(c);
}

static void expire(struct gw_link *list, uint64_t after, void (*fn)(struct gw_conn *))
{
	while (!gw_list_empty(list)) {
		struct gw_conn *c = GW_CONTAINER(list->next, struct gw_conn, timer);

		if (c->since_ms + after > G.now_ms)
			break;
		gw_unlink(&c->timer);
		c->on = TIMER_NONE;
		fn(c);
	}
}

void gw_expire_conns(void)
{
	expire(&G.idle, GW_IDLE_MS, conn_close);
	expire(&G.body, G.body_timeout_ms, body_timeout);
	expire(&G.linger, GW_LINGER_MS, conn_close);
}

/* Milliseconds until the next connection deadline (or -1). */
int64_t gw_conn_next_deadline(void)
{
	int64_t best = -1;
	const struct {
		struct gw_link *l;
		uint64_t after;
	} lists[] = { { &G.idle, GW_IDLE_MS }, { &G.body, 0 }, { &G.linger, GW_LINGER_MS } };

	for (size_t i = 0; i < 3; i++) {
		if (gw_list_empty(lists[i].l))
			continue;
		struct gw_conn *c = GW_CONTAINER(lists[i].l->next, struct gw_conn, timer);
		uint64_t at = c->since_ms + (i == 1 ? G.body_timeout_ms : lists[i].after);
		int64_t in = at > G.now_ms ? (int64_t)(at - G.now_ms) : 0;

		if (best < 0 || in < best)
			best = in;
	}
	return best;
}
