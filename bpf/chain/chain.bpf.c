// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * The function-chain dataplane (SPRIGHT): one sk_msg program, the same for every policy. Every
 * descriptor a function writes to its socket is judged on its own (gotcha 9), checked against
 * the maps before it is trusted, counted, and redirected straight into the receive queue of the
 * next function's socket.
 *
 * Nothing here depends on a policy: routes, instances and sockets are map data (src/deploy), so
 * this file is compiled once per bpfctl version and one object serves every policy; a route
 * change or a scale never rebuilds it. The constants, structs and maps it shares with TypeScript
 * are in chain.gen.h, generated from src/schema (a unit test fails when the two drift:
 * `UPDATE_GOLDEN=1` regenerates it).
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#include "chain.gen.h"

static __always_inline void count(void *map, __u32 id, __u32 msgs, __u64 bytes, int dropped)
{
	struct bpfctl_counters *c = bpf_map_lookup_elem(map, &id);

	if (!c)
		return;
	/* per-CPU values: plain increments are race free */
	if (dropped) {
		c->drops += 1;
	} else {
		c->msgs += msgs;
		c->bytes += bytes;
	}
}

/* Counts a refused descriptor (the reason always, route and function when known) and
 * disposes of it without breaking the sender's socket. */
static __always_inline int drop(struct sk_msg_md *msg, __u32 reason, __u32 route, __u32 fn)
{
	__u64 *n = bpf_map_lookup_elem(&drop_reasons, &reason);

	if (n)
		*n += 1;
	if (route != NO_ID)
		count(&route_stats, route, 0, 0, 1);
	if (fn != NO_ID)
		count(&fn_stats, fn, 0, 0, 1);
#ifdef BPFCTL_SK_DROP
	/* Built with -DBPFCTL_SK_DROP (kernel tests only): the send fails with EACCES and the socket
	 * stays broken. */
	return SK_DROP;
#else
	/* Mark the descriptor so whoever reads it knows it was refused and why. */
	if (msg->data + DESC_SIZE <= msg->data_end) {
		struct bpfctl_desc *p = msg->data;

		p->flags |= DESC_FLAG_DROPPED | (reason << DESC_DROP_REASON_SHIFT);
	}
	/*
	 * Never SK_DROP: that fails this send with EACCES and the socket keeps the DROP verdict,
	 * so every later send on it fails too (gotcha 4, measured on 6.18). SK_PASS instead, to
	 * the dead-letter socket when the supervisor registered one (it can then fail the request
	 * back to the gateway). Without one, the bytes go to the sender's TCP peer (the hub) --
	 * or, inside a batch, after the previous descriptor of the same send: the kernel keeps a
	 * send's last redirect target across verdicts. The DROPPED flag makes that safe.
	 */
	__u32 dead_letter = DEAD_LETTER_KEY;

	bpf_msg_redirect_hash(msg, &socks, &dead_letter, BPF_F_INGRESS);
	return SK_PASS;
#endif
}

/*
 * The buffer must be one of the pool's: inside it, on a buffer boundary, its length within one
 * buffer. A process can only name buffers of the pool it shares, never other memory, and a bad
 * offset is caught here instead of in the receiver.
 */
static __always_inline int buffer_ok(const struct bpfctl_config *cfg, const struct bpfctl_desc *d)
{
	__u32 size = cfg->buf_size;
	__u32 rel;

	if (size == 0 || d->buf_off < cfg->data_off)
		return 0;
	rel = d->buf_off - cfg->data_off;
	if (rel % size != 0 || rel / size >= cfg->buf_count)
		return 0;
	if (d->buf_len > size)
		return 0;
	/* 64-bit sum: buf_off + size can wrap in 32 bits */
	if ((__u64)d->buf_off + size > cfg->pool_size)
		return 0;
	return 1;
}

/*
 * A descriptor goes back to its gateway when it has visited every function of its route, or when
 * a function failed it (ERROR): the function need not know the route's length, which may have
 * changed while the request was under way (the request keeps the route version it started on).
 */
static __always_inline int to_gateway(const struct bpfctl_desc *d, __u32 len)
{
	return (d->flags & DESC_FLAG_ERROR) || d->hop == len;
}

/* Longest run of descriptors one verdict may cover (the scan below is bounded by it). */
#define MAX_RUN 64

/*
 * How many descriptors, starting with the one just judged, go to the same socket: same route
 * and hop, the same instance (same gw_inst on the way back, same req_id % count on the way out),
 * and each one's buffer valid. One verdict then moves the whole run in one redirect, as TCP moves
 * a batch in one segment: per-descriptor verdicts cost a redirect and a wakeup each, which made
 * batched chains slower than plain TCP. The SDK writes same-destination descriptors adjacent to
 * make runs long. Only the linear head of the message is scanned (data..data_end); a run ends
 * early rather than pull data.
 */
static __always_inline __u32 same_target_run(struct sk_msg_md *msg, const struct bpfctl_config *cfg,
					     const struct bpfctl_desc *first, __u32 len, __u32 ninst, __u32 idx,
					     __u64 *bytes)
{
	__u32 n = 1;
	int back = to_gateway(first, len);

	for (__u32 i = 1; i < MAX_RUN; i++) {
		struct bpfctl_desc *q = msg->data + i * DESC_SIZE;

		if ((void *)(q + 1) > msg->data_end)
			break;
		if (q->route != first->route || q->hop != first->hop || (q->flags & DESC_FLAG_DROPPED))
			break;
		if (to_gateway(q, len) != back)
			break;
		if (back ? q->gw_inst != first->gw_inst : q->req_id % ninst != idx)
			break;
		if (!buffer_ok(cfg, q))
			break;
		*bytes += q->buf_len;
		n++;
	}
	return n;
}

SEC("sk_msg")
int chain_msg(struct sk_msg_md *msg)
{
	struct bpfctl_desc d;
	struct bpfctl_route *r;
	struct bpfctl_instances *in;
	struct bpfctl_config *cfg;
	/* idx and ninst are passed to same_target_run() on the way back to the gateway too: left
	 * indeterminate there, clang treats that path as undefined and folds it away (seen). ninst is
	 * never 0 on the way out (checked below), so the modulo in same_target_run is safe. */
	__u32 zero = 0, route, len, fn, inst, idx = 0, key, ninst = 0, run;
	__u64 bytes;

	/*
	 * Less than a descriptor: TCP has no message boundaries, and the kernel may cut a large
	 * write between scatterlists, so wait for the rest (cork) instead of judging a fragment.
	 * Dropping it would also be wrong twice over: apply_bytes(24) on a short message carries
	 * the verdict over to the first bytes of the *next* send (measured).
	 */
	if (msg->size < DESC_SIZE) {
		bpf_msg_cork_bytes(msg, DESC_SIZE);
		return SK_PASS;
	}
	/* One verdict per descriptor unless a run of them shares the target (same_target_run): a
	 * batched write (Node coalesces) would otherwise all go where its first descriptor points.
	 * The rest of the message gets the program again. */
	bpf_msg_apply_bytes(msg, DESC_SIZE);
	/* data..data_end covers only the first scatterlist element: a descriptor split across two
	 * needs pulling into one (gotcha 6). */
	if (msg->data + DESC_SIZE > msg->data_end) {
		if (bpf_msg_pull_data(msg, 0, DESC_SIZE, 0))
			return drop(msg, DROP_MALFORMED, NO_ID, NO_ID);
		if (msg->data + DESC_SIZE > msg->data_end)
			return drop(msg, DROP_MALFORMED, NO_ID, NO_ID);
	}
	/* Copied out: packet pointers do not survive helper calls. */
	d = *(struct bpfctl_desc *)msg->data;

	route = d.route;
	r = bpf_map_lookup_elem(&routes, &route);
	if (!r || r->len == 0 || r->len > MAX_HOPS)
		return drop(msg, DROP_UNKNOWN_ROUTE, NO_ID, NO_ID);
	len = r->len;
	/* hop == len is the way back to the gateway; beyond that the sender is confused */
	if (d.hop > len && !(d.flags & DESC_FLAG_ERROR))
		return drop(msg, DROP_BAD_HOP, route, NO_ID);

	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !buffer_ok(cfg, &d))
		return drop(msg, DROP_BAD_BUFFER, route, NO_ID);

	if (to_gateway(&d, len)) {
		/* the reply goes to the gateway instance that took the request */
		fn = GATEWAY_ID;
		inst = d.gw_inst;
	} else {
		/* The masks below look redundant (hop < len <= MAX_HOPS, idx < count <= MAX_INSTANCES)
		 * and clang would drop them, but the verifier needs them to bound the array index:
		 * barrier_var() keeps them. */
		idx = d.hop;
		barrier_var(idx);
		fn = r->fn[idx & (MAX_HOPS - 1)];
		if (fn >= MAX_FUNCTIONS)
			return drop(msg, DROP_UNKNOWN_ROUTE, route, NO_ID);
		in = bpf_map_lookup_elem(&instances, &fn);
		if (!in || in->count == 0 || in->count > MAX_INSTANCES)
			return drop(msg, DROP_NO_INSTANCE, route, fn);
		/* spreads requests over instances, and keeps a request on one instance per hop */
		ninst = in->count;
		idx = d.req_id % ninst;
		barrier_var(idx);
		inst = in->inst[idx & (MAX_INSTANCES - 1)];
	}
	key = fn << 16 | inst;

	bytes = d.buf_len;
	run = same_target_run(msg, cfg, &d, len, ninst, idx, &bytes);
	if (run > 1)
		bpf_msg_apply_bytes(msg, run * DESC_SIZE);

	/*
	 * bpf_msg_redirect_hash() is the existence check: it returns SK_DROP (and sets no target)
	 * when the key is missing or the socket is not established. Returning that SK_DROP as the
	 * verdict is what fails the sender (gotcha 4), so it is turned into a counted drop instead.
	 * (A bpf_map_lookup_elem() on socks verifies but its reference cannot be dropped: sk_msg
	 * programs may not call bpf_sk_release(), measured on 6.18.)
	 */
	if (bpf_msg_redirect_hash(msg, &socks, &key, BPF_F_INGRESS) != SK_PASS) {
		/* Refuse this descriptor alone: the rest of the run is judged (and marked) one by one. */
		bpf_msg_apply_bytes(msg, DESC_SIZE);
		return drop(msg, DROP_DEAD_SOCKET, route, fn);
	}

	count(&fn_stats, fn, run, bytes, 0);
	count(&route_stats, route, run, bytes, 0);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
