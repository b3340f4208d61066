/* SPDX-License-Identifier: MIT */
/*
 * bpfctl function SDK for C: the same protocol as the TypeScript SDK (src/runtime/sdk), for
 * functions written in C. Link with src/runtime/c/fn.c (`src/runtime/c/build.ts` does both).
 *
 *   static int shout(struct bpfctl_fn_req *req, void *ctx)
 *   {
 *           for (uint32_t i = 0; i < req->len; i++)
 *                   req->data[i] = toupper(req->data[i]);
 *           return req->len;                    // response written in place, this many bytes
 *   }
 *   int main(void) { return bpfctl_fn_run(shout, NULL); }
 *
 * The process is configured by the supervisor through the environment (src/runtime/sdk/env.ts):
 *   BPFCTL_FN, BPFCTL_FN_ID, BPFCTL_INST     who this instance is
 *   BPFCTL_POOL                              path of the pool file
 *   BPFCTL_SOCK_FD                           the inherited chain socket the supervisor connected
 *                                            and registered (only it puts sockets into socks)
 *   BPFCTL_READY_FD                          (optional) pipe to write "ready <fn> <inst> <pid>\n" to
 *
 * Nothing describes routes: they change while the chain runs. A C function forwards a descriptor
 * with hop + 1 and fails one with the ERROR flag; the kernel knows where either goes.
 *
 * One request at a time, blocking in read() while idle (no polling). Every descriptor of a read
 * is handled, then all replies go out in one write, grouped by destination.
 */
#ifndef BPFCTL_FN_H
#define BPFCTL_FN_H

#include <stdint.h>

#ifndef BPFCTL_DESC_DEFINED
#define BPFCTL_DESC_DEFINED
/* The descriptor (docs/internals.md): 24 bytes, little-endian, no padding. */
struct bpfctl_desc {
	uint16_t route;
	uint8_t hop;
	uint8_t flags;
	uint16_t gw_inst;
	uint16_t status;
	uint32_t req_id;
	uint32_t buf_off;
	uint32_t buf_len;
	uint32_t buf_gen;
};
_Static_assert(sizeof(struct bpfctl_desc) == 24, "descriptor is 24 bytes");
#endif

#define BPFCTL_DESC_SIZE 24u
#define BPFCTL_DESC_FLAG_ERROR 0x01u
#define BPFCTL_DESC_FLAG_RESPONSE_NEW_BUF 0x02u
/* Set by the sk_msg program on a descriptor it refused; bits 4-6 hold the reason. */
#define BPFCTL_DESC_FLAG_DROPPED 0x80u
#define BPFCTL_DESC_DROP_REASON_SHIFT 4
#define BPFCTL_DESC_DROP_REASON_MASK 0x70u
#define BPFCTL_DROP_NO_INSTANCE 4u
#define BPFCTL_DROP_DEAD_SOCKET 5u

/* Exit status asking the supervisor for a restart with a fresh socket (EX_TEMPFAIL). */
#define BPFCTL_FN_EXIT_RESTART 75

/* One request at one hop. `data` points into the shared pool: valid until the handler returns. */
struct bpfctl_fn_req {
	uint32_t req_id;
	uint16_t route;
	uint8_t hop;
	/* payload: `len` bytes at `data`; the buffer holds `cap` bytes (write a response in place) */
	uint8_t *data;
	uint32_t len;
	uint32_t cap;
	/* private to the SDK */
	uint32_t new_off, new_gen;
	uint32_t new_len_cap;
	int has_new;
	char err[160];
};

/*
 * A handler returns the response length (>= 0, <= cap; written in place into data, or into the
 * buffer bpfctl_fn_alloc() returned), or a negative HTTP status (-500, -418, ...) to fail the
 * request: the rest of the route is skipped and the gateway answers with that status and the
 * message set by bpfctl_fn_errorf() (default: none).
 */
typedef int (*bpfctl_fn_handler)(struct bpfctl_fn_req *req, void *ctx);

/*
 * Runs the instance: reads the environment, opens the pool, connects and registers, then serves
 * until killed. Returns only on a configuration error (non-zero, message on stderr), or exits with
 * BPFCTL_FN_EXIT_RESTART when an inherited socket fails (it cannot be re-registered from here).
 */
int bpfctl_fn_run(bpfctl_fn_handler handler, void *ctx);

/*
 * A new pool buffer of `n` bytes for the response (instead of writing in place); the request's
 * buffer is freed when the response goes out. NULL when n > cap or the pool is exhausted. Calling
 * it again replaces (and frees) the previous one.
 */
uint8_t *bpfctl_fn_alloc(struct bpfctl_fn_req *req, uint32_t n);

/* Sets the error message and returns -status, so handlers can `return bpfctl_fn_errorf(...)`. */
int bpfctl_fn_errorf(struct bpfctl_fn_req *req, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* BPFCTL_FN_H */
