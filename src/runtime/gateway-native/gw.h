/* SPDX-License-Identifier: MIT */
/*
 * The native HTTP gateway (docs/gateway-native.md): what its files share. One process, one epoll
 * loop, no threads: HTTP connections (http.c), the chain socket and the requests in the chain
 * (chain.c), the live routes/instances mapped from the pinned maps (live-maps.c), the loop
 * (main.c). Semantics, statuses and limits are the Node gateway's (src/runtime/gateway/gateway.ts).
 */
#ifndef BPFCTL_GW_H
#define BPFCTL_GW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "bpfctl/fn.h" /* struct bpfctl_desc and its flags */
#include "bpfctl/gateway_stats.h"
#include "bpfctl/pool.h"
#include "pico.h"

#define GW_ID 0
#define GW_MAX_ROUTE_SLOTS 1024
#define GW_MAX_HOPS 16
#define GW_MAX_FUNCTIONS 64
#define GW_MAX_INSTANCES 32
#define GW_ROUTE_NAME_MAX 64
/* A request head larger than this is refused with 400 (Node's default max header size). */
#define GW_HEAD_MAX (16 * 1024)
#define GW_MAX_HEADERS 64
/* Keep-alive connections idle this long are closed (Node: server.keepAliveTimeout). */
#define GW_IDLE_MS 60000
/* After a response that closes the connection, unread input is drained this long before close. */
#define GW_LINGER_MS 2000

/* ---- intrusive FIFO lists: every timeout of one kind is the same, so FIFO = deadline order ---- */
struct gw_link {
	struct gw_link *prev, *next;
};
static inline void gw_list_init(struct gw_link *h) { h->prev = h->next = h; }
static inline int gw_list_empty(const struct gw_link *h) { return h->next == h; }
static inline int gw_linked(const struct gw_link *l) { return l->next != NULL; }
static inline void gw_unlink(struct gw_link *l)
{
	if (!l->next)
		return;
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->prev = l->next = NULL;
}
static inline void gw_append(struct gw_link *h, struct gw_link *l)
{
	gw_unlink(l);
	l->prev = h->prev;
	l->next = h;
	h->prev->next = l;
	h->prev = l;
}
#define GW_CONTAINER(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- live maps (live-maps.c) ---- */
struct gw_route {
	uint32_t slot, version, len, methods;
	uint16_t hops[GW_MAX_HOPS];
	char name[GW_ROUTE_NAME_MAX + 1];
	/* the request path it serves: '/' + name unless the name is a path */
	char path[GW_ROUTE_NAME_MAX + 2];
	uint32_t path_len;
};

struct gw_maps {
	const uint8_t *routes, *config, *instances;
	size_t routes_len, config_len, instances_len;
	uint32_t routes_stride, routes_entries, instances_stride, instances_entries;
	/* the path table as of generation `gen` */
	uint32_t gen;
	int scanned;
	struct gw_route current[GW_MAX_ROUTE_SLOTS];
	uint32_t ncurrent;
};

int gw_maps_open(struct gw_maps *m, const char *pin_dir, char *err, size_t errlen);
/* This instance's slot of the shared statistics block (maps/gw_stats, docs/metrics.md), mapped read-write. */
struct bpfctl_gw_stats *gw_stats_open(const char *pin_dir, uint32_t gw_inst, char *err, size_t errlen);
void gw_maps_close(struct gw_maps *m);
/* The current version of the route serving path[0..len) ('/a' and '/a/' are one route), or NULL. */
const struct gw_route *gw_route_by_path(struct gw_maps *m, const char *path, size_t len);
/* The current version of the route named name[0..len), or NULL (the node-link's lookup: names travel between nodes, slots do not). */
const struct gw_route *gw_route_by_name(struct gw_maps *m, const char *name, size_t len);
/* The name of whatever route version a slot holds, into name (GW_ROUTE_NAME_MAX + 1 bytes); its length, or -1 when the slot is free. */
int gw_slot_name(const struct gw_maps *m, uint32_t slot, char *name);
/* Length of whatever route version a slot holds (current or draining); -1 when the slot is free. */
int gw_route_len(const struct gw_maps *m, uint32_t slot);
uint32_t gw_live_count(const struct gw_maps *m, uint32_t fn);

/* ---- requests in the chain (chain.c) ---- */
struct gw_conn;

struct gw_pending {
	struct gw_link by_deadline;
	struct gw_conn *conn; /* NULL once the client is gone */
	uint64_t deadline_ms;
	uint64_t t0_ns; /* when it went into the chain (the latency histogram) */
	uint32_t req_id, off, gen;
	uint32_t route_slot, route_version;
	uint16_t hops[GW_MAX_HOPS];
	uint8_t nhops, used;
};

/* ---- HTTP connections (http.c) ---- */
enum gw_conn_state {
	CONN_HEAD,    /* waiting for (the rest of) a request head */
	CONN_BODY,    /* receiving an accepted request's body */
	CONN_DISCARD, /* reading and dropping the body of a request already answered */
	CONN_WAIT,    /* the request is complete: in the chain, or its answer being written */
	CONN_LINGER,  /* answered with close: draining input until EOF or GW_LINGER_MS */
};

/* Which deadline list a connection is on. */
enum gw_timer { TIMER_NONE, TIMER_IDLE, TIMER_BODY, TIMER_LINGER };

struct gw_addr_count;

struct gw_conn {
	int fd;
	enum gw_conn_state state;
	struct gw_link timer; /* on the idle, body or linger list */
	enum gw_timer on;
	uint64_t since_ms; /* when it entered that list */
	int can_read;      /* edge-triggered: input may be waiting */
	int peer_gone;     /* the client shut its side (EPOLLRDHUP) */
	int in_process;    /* process() is on the stack for it: answers do not recurse into it */
	struct gw_addr_count *client;
	/* input: a head buffer (recycled between connections), bytes [start, len) unparsed */
	char *in;
	size_t start, len;
	/* the request being received, on the route version it arrived on */
	struct gw_route route;
	int head_only, keep_alive, close_after, http10;
	int chunked;
	union {
		struct phr_chunked_decoder d;
		char pad[128];
	} chunk;
	uint64_t body_left; /* content-length bytes still to read */
	/* where the body goes: a pool buffer (direct) or private memory (collected, copied at the end) */
	int body_in_pool;
	struct bpfctl_buf_ref body_ref;
	uint8_t *body;
	size_t body_len, body_cap;
	/* the pending request, while in CONN_CHAIN */
	struct gw_pending *pending;
	/* output */
	char head[512];
	struct iovec iov[2];
	int iovcnt;
	/* a pool buffer the response body is written from (freed once written or copied out) */
	int out_pool;
	uint32_t out_off, out_gen;
	uint8_t *out_copy; /* the rest of a body that did not fit the socket at once */
	int want_out;      /* EPOLLOUT armed */
};

/* ---- the gateway ---- */
struct gw_stats {
	uint64_t requests, replies, timeouts, late, misrouted, client_gone, refused_connections;
	uint64_t by_status[600];
};

struct gw {
	/* configuration */
	uint32_t gw_inst, pid;
	uint32_t timeout_ms, body_timeout_ms, max_per_client, max_in_flight, recv_buffers;
	const char *fn_names[GW_MAX_FUNCTIONS];
	/* resources */
	struct bpfctl_pool *pool;
	struct gw_maps maps;
	int epfd, listen_fd, chain_fd, control_fd, signal_fd, spare_fd;
	int closing;
	uint64_t now_ms;
	/* timer lists */
	struct gw_link idle, body, linger, pending_list;
	/* requests in the chain: a table indexed by req_id & mask */
	struct gw_pending *pend;
	uint32_t pend_mask, npending, next_req;
	/* pool buffers held by bodies still arriving (at most recv_buffers) */
	uint32_t recv_held;
	/* descriptors to send on the chain socket (flushed once per loop turn) */
	struct bpfctl_desc *out;
	uint32_t *out_key;
	uint32_t nout, out_cap;
	uint8_t *wq; /* bytes of a send the socket did not take at once */
	size_t wq_len, wq_cap;
	/* chain socket input carry */
	uint8_t carry[BPFCTL_DESC_SIZE];
	size_t ncarry;
	struct gw_stats stats;
	/* the shared statistics block bpfctl metrics reads (bpf/include/bpfctl/gateway_stats.h) */
	struct bpfctl_gw_stats *metrics;
};

extern struct gw G;

uint64_t gw_now(void);
uint64_t gw_now_ns(void);
void gw_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* chain.c */
int gw_chain_init(void);
int gw_chain_up(void);
/* Puts a request into the chain (hop 0); its buffer is the pool buffer `ref`. Returns the pending record. */
struct gw_pending *gw_dispatch(struct gw_conn *c, const struct gw_route *r, const struct bpfctl_buf_ref *ref, uint32_t len);
void gw_chain_readable(void);
void gw_chain_writable(void);
void gw_chain_flush(void);
void gw_expire_pending(void);
void gw_instance_down(uint32_t fn, uint32_t inst, const uint16_t *before, uint32_t nbefore);
void gw_fail_all(int status, const char *msg);
const char *gw_fn_name(uint32_t fn, char *tmp, size_t n);

/* http.c */
void gw_accept(void);
void gw_conn_event(struct gw_conn *c, uint32_t events);
void gw_expire_conns(void);
/* The answer to `c`'s request: written straight from the pool buffer (off, gen), freed once written. */
void gw_respond_pool(struct gw_conn *c, int status, const char *type, uint32_t off, uint32_t gen, uint32_t len);
/* A text answer; NULL: the status's reason phrase. */
void gw_respond_text(struct gw_conn *c, int status, const char *text);
void gw_count_status(int status);
void gw_run_ready(void);
int gw_has_ready(void);
int64_t gw_conn_next_deadline(void);
/* Connections still writing an answer (closing waits for them). */
int gw_conns_writing(void);
int gw_chain_exit_code(void);

#endif
