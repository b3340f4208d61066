/* SPDX-License-Identifier: MIT */
/*
 * bpfctl gateway statistics: what every gateway process (the Node gateway, the native C gateway)
 * counts about the HTTP responses it writes, kept where a separate process can read it with only
 * the policy's pins (`bpfctl metrics NAME`, `bpfctl run --metrics`; docs/metrics.md).
 *
 * Where: the policy's pinned map `maps/gw_stats`, created with the chain's other maps
 * (bpf/chain/chain.gen.h): a BPF_MAP_TYPE_ARRAY with BPF_F_MMAPABLE, key __u32 gw_inst (the
 * gateway instance id, 0..gateway.instances-1), BPFCTL_GW_STATS_SLOTS values of
 * struct bpfctl_gw_stats. Value i sits at byte i * sizeof(struct bpfctl_gw_stats) of an mmap of
 * the map's fd (sizeof is a multiple of 64, so slots never share a cache line). The mapping
 * stays valid after the fd is closed, until munmap.
 *
 * Who writes: only the gateway process running instance gw_inst, with plain 8-byte stores (one
 * writer per slot, so no atomics are needed; an aligned 8-byte store is not torn on x86-64 or
 * arm64). Readers sum the slots. A restarted gateway keeps its slot's counters (they stay
 * monotonic); a fresh load of the policy gives a fresh, zeroed map.
 *
 * Why every counter is a double: a JavaScript writer can store a double in one 8-byte write
 * without allocating (Float64Array), while a u64 needs a BigInt (an allocation per increment) or
 * two 4-byte writes (a torn value every 2^32). Doubles count exactly up to 2^53 (285 years at a
 * million responses a second), and Prometheus keeps float64 anyway.
 *
 * Layout (byte offsets in one slot; src/schema/gateway-stats.ts mirrors it and
 * test/unit/gateway-stats-layout.test.ts compiles this header to check every number):
 *
 *       0 magic (u32, BPFCTL_GW_STATS_MAGIC once a writer has set the slot up; written last)
 *       4 version (u32)      8 engine (u32: 1 node, 2 native)      12 pid (u32, the writer)
 *      16 started (unix seconds the writer set the slot up)
 *      24 latency_sum (seconds)
 *      64 latency[17]: request latency histogram, NOT cumulative: latency[i] counts observations
 *         in (bound[i-1], bound[i]] seconds, latency[16] those above the last bound (+Inf)
 *     256 status[600]: responses by HTTP status code; status[0] counts codes outside 100..599
 *    5056 route_replies[1024]: descriptors that came back from the chain to this gateway for a
 *         request it holds, by route slot (the descriptor's route; routes[slot] names it)
 *   13248 route_version[1024] (u32): the route version route_replies[slot] counts. Slots are
 *         reused by later versions of routes: a writer that sees another version in a slot
 *         zeroes the count and then stores the version; readers count route_replies[slot] only
 *         for the version routes[slot] holds now, so every (route, version) series is monotonic.
 *   17344 (size)
 *
 * What is observed (both engines the same way):
 *  - status: every response the gateway writes, once, with its status (404, 405, 413, 503, ...
 *    included; a response to a client already gone is still counted).
 *  - latency: requests sent into the chain, from the moment the descriptor is handed to the chain
 *    (the whole body is in a pool buffer) to the moment the answer is written, whatever it is
 *    (200, a function's error, 502, 503, 504 timeout). Requests answered without entering the
 *    chain (404, 405, 413, 503 before dispatch) are not in the histogram.
 *  - route_replies: each reply descriptor matched to a pending request, by its route slot and
 *    the version the request started on.
 */
#ifndef BPFCTL_GATEWAY_STATS_H
#define BPFCTL_GATEWAY_STATS_H

#include <linux/types.h>

#define BPFCTL_GW_STATS_MAGIC 0x53574742u /* "BGWS" in memory */
#define BPFCTL_GW_STATS_VERSION 1u
/* One slot per gateway instance: gateway.instances is at most MAX_INSTANCES (32). */
#define BPFCTL_GW_STATS_SLOTS 32
#define BPFCTL_GW_ENGINE_NODE 1u
#define BPFCTL_GW_ENGINE_NATIVE 2u
#define BPFCTL_GW_STATUS_CODES 600
#define BPFCTL_GW_LATENCY_BOUNDS 16
/* The bounds, then +Inf. */
#define BPFCTL_GW_LATENCY_BUCKETS 17
/* = MAX_ROUTE_SLOTS of the chain (entries of routes). */
#define BPFCTL_GW_ROUTE_SLOTS 1024
/* Upper bounds of the latency buckets, seconds (Prometheus `le`). Finer than Prometheus's
 * defaults at the bottom: a chain on one machine answers in 0.1-1 ms. */
#define BPFCTL_GW_LATENCY_BOUNDS_LIST \
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0

struct bpfctl_gw_stats {
	__u32 magic;
	__u32 version;
	__u32 engine;
	__u32 pid;
	double started;
	double latency_sum;
	double reserved0[4];
	double latency[BPFCTL_GW_LATENCY_BUCKETS];
	double reserved1[7];
	double status[BPFCTL_GW_STATUS_CODES];
	double route_replies[BPFCTL_GW_ROUTE_SLOTS];
	__u32 route_version[BPFCTL_GW_ROUTE_SLOTS];
};

_Static_assert(sizeof(struct bpfctl_gw_stats) == 17344, "struct bpfctl_gw_stats size");
_Static_assert(sizeof(struct bpfctl_gw_stats) % 64 == 0, "slots are whole cache lines");
_Static_assert(__builtin_offsetof(struct bpfctl_gw_stats, latency) == 64, "latency offset");
_Static_assert(__builtin_offsetof(struct bpfctl_gw_stats, status) == 256, "status offset");
_Static_assert(__builtin_offsetof(struct bpfctl_gw_stats, route_replies) == 5056, "route_replies offset");
_Static_assert(__builtin_offsetof(struct bpfctl_gw_stats, route_version) == 13248, "route_version offset");

#ifndef __bpf__
/*
 * Writer helpers for user-space C (the native gateway). The BPF side only needs the struct (the
 * map is declared in chain.gen.h); nothing in the kernel writes these counters.
 */
#include <stddef.h>
#include <string.h>

/* Slot `gw_inst` of a mapping of maps/gw_stats (NULL when out of range). */
static inline struct bpfctl_gw_stats *bpfctl_gw_stats_slot(void *mapping, __u32 gw_inst)
{
	if (!mapping || gw_inst >= BPFCTL_GW_STATS_SLOTS)
		return NULL;
	return (struct bpfctl_gw_stats *)((char *)mapping + (size_t)gw_inst * sizeof(struct bpfctl_gw_stats));
}

/* Bytes to mmap for the whole map (the kernel maps whole pages). */
static inline size_t bpfctl_gw_stats_map_size(void)
{
	size_t n = (size_t)BPFCTL_GW_STATS_SLOTS * sizeof(struct bpfctl_gw_stats);

	return (n + 4095) / 4096 * 4096;
}

/*
 * Take a slot over at process start. A slot a previous process of the same instance left keeps
 * its counters (so they stay monotonic); one never set up, or of another version, is zeroed.
 * magic is written last: a reader that sees it sees the rest.
 */
static inline void bpfctl_gw_stats_init(struct bpfctl_gw_stats *s, __u32 engine, __u32 pid, double now_unix_s)
{
	if (s->magic != BPFCTL_GW_STATS_MAGIC || s->version != BPFCTL_GW_STATS_VERSION) {
		s->magic = 0;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		memset((char *)s + 4, 0, sizeof(*s) - 4);
		s->version = BPFCTL_GW_STATS_VERSION;
	}
	s->engine = engine;
	s->pid = pid;
	s->started = now_unix_s;
	__atomic_store_n(&s->magic, BPFCTL_GW_STATS_MAGIC, __ATOMIC_RELEASE);
}

/* One response written, with its HTTP status. */
static inline void bpfctl_gw_stats_response(struct bpfctl_gw_stats *s, unsigned status)
{
	s->status[status >= 100 && status < BPFCTL_GW_STATUS_CODES ? status : 0] += 1;
}

/* A request that went into the chain was answered `seconds` after it was handed to the chain. */
static inline void bpfctl_gw_stats_latency(struct bpfctl_gw_stats *s, double seconds)
{
	static const double bounds[BPFCTL_GW_LATENCY_BOUNDS] = {BPFCTL_GW_LATENCY_BOUNDS_LIST};
	unsigned b = 0;

	while (b < BPFCTL_GW_LATENCY_BOUNDS && seconds > bounds[b])
		b++;
	s->latency[b] += 1;
	s->latency_sum += seconds;
}

/*
 * A reply descriptor on route slot `route` came back for a request this gateway holds, which
 * started on version `version` of the route (routes[route].version when the request was sent).
 */
static inline void bpfctl_gw_stats_reply(struct bpfctl_gw_stats *s, unsigned route, __u32 version)
{
	if (route >= BPFCTL_GW_ROUTE_SLOTS)
		return;
	if (s->route_version[route] != version) {
		/* count first: a reader that sees the new version never sees the old count */
		s->route_replies[route] = 0;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		__atomic_store_n(&s->route_version[route], version, __ATOMIC_RELEASE);
	}
	s->route_replies[route] += 1;
}
#endif /* !__bpf__ */

#endif /* BPFCTL_GATEWAY_STATS_H */
