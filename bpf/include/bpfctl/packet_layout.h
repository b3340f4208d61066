/* SPDX-License-Identifier: MIT */
/*
 * The packet plane's layout (docs/packet-chains.md): the extension area of a pool that carries
 * packet chains. One contract with src/schema/packet-layout.ts; test/unit/packet-layout.test.ts
 * compiles this header and compares every offset, so change both sides together (and bump the
 * version). Offsets are bytes from the start of the plane (the pool header's ext_off),
 * little-endian. Every offset below is also a _Static_assert, so a struct edit that moves a field
 * does not compile.
 *
 * Fields another process writes while this one reads are _Atomic (same size and alignment as the
 * plain type on every target bpfctl supports): the supervisor's tables, the counters, the rings.
 */
#ifndef BPFCTL_PACKET_LAYOUT_H
#define BPFCTL_PACKET_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define BPFCTL_PLANE_MAGIC 0x544b5042u /* "BPKT" in memory */
#define BPFCTL_PLANE_VERSION 1u

#define BPFCTL_PKT_MAX_CHAINS 64u
#define BPFCTL_PKT_MAX_HOPS 8u
#define BPFCTL_PKT_MAX_FNS 32u
#define BPFCTL_PKT_MAX_INST 32u
#define BPFCTL_PKT_MAX_PORTS 16u
#define BPFCTL_PKT_NAME_LEN 32u
#define BPFCTL_PKT_IFNAME_LEN 16u

#define BPFCTL_PLANE_HEADER_SIZE 256u
#define BPFCTL_PLANE_CHAINS_OFF 256u
#define BPFCTL_PLANE_FNS_OFF 4352u
#define BPFCTL_PLANE_PORTS_OFF 20736u
#define BPFCTL_PLANE_INST_STATS_OFF 24832u
#define BPFCTL_PLANE_CHAIN_STATS_OFF 90368u
#define BPFCTL_PLANE_RINGS_OFF 98304u

/* The word the XDP classifier writes in front of a steered frame: tag | chain id. */
#define BPFCTL_PKT_META_TAG 0xbfc70000u
#define BPFCTL_PKT_META_MASK 0xffff0000u
/* A buffer sitting in ring r is owned by RING_OWNER | r (pids stay below 2^22). */
#define BPFCTL_PKT_RING_OWNER 0x80000000u
/* The kernel's XDP headroom: AF_XDP puts a frame this far into its buffer. */
#define BPFCTL_PKT_HEADROOM 256u

/* chain egress_kind */
#define BPFCTL_PKT_EGRESS_DROP 0u
#define BPFCTL_PKT_EGRESS_TX 1u
/* chain flags */
#define BPFCTL_PKT_CHAIN_POLL 1u
/* port flags */
#define BPFCTL_PKT_PORT_BOUND 1u
#define BPFCTL_PKT_PORT_ZEROCOPY 2u
/* function inst_state (written by the supervisor, shown by status) */
#define BPFCTL_PKT_INST_EMPTY 0u
#define BPFCTL_PKT_INST_STARTING 1u
#define BPFCTL_PKT_INST_LIVE 2u
#define BPFCTL_PKT_INST_DRAINING 3u
#define BPFCTL_PKT_INST_RESTARTING 4u

/* Ring of instance `inst` of function `fn`; ring 0 feeds pktio's transmit thread. */
#define BPFCTL_PKT_RING_OF(fn, inst) (1u + (uint32_t)(fn) * BPFCTL_PKT_MAX_INST + (uint32_t)(inst))

/* Descriptor flags: headed out (to ring 0); `port` is the port to transmit on. */
#define BPFCTL_PKT_DESC_TX 0x01u

/* What travels through the rings: a frame in a pool buffer, 16 bytes. */
struct bpfctl_pkt_desc {
	uint32_t addr;  /* pool offset of the frame's first byte (== UMEM address) */
	uint32_t gen;   /* pool generation of the buffer holding it */
	uint16_t len;   /* frame length in bytes */
	uint16_t hash;  /* symmetric flow hash, computed once by pktio on receive */
	uint8_t chain;  /* chain id */
	uint8_t hop;    /* index in the chain of the function that receives it */
	uint8_t port;   /* port it arrived on; on ring 0: the port to transmit on */
	uint8_t flags;  /* BPFCTL_PKT_DESC_* */
};

struct bpfctl_plane_hdr {
	_Atomic uint32_t magic; /* written last by the supervisor */
	uint32_t version;
	uint32_t ring_slots; /* a power of two */
	uint32_t ring_count;
	uint32_t ring_off;
	uint32_t ring_stride;
	uint32_t nchains;
	uint32_t nfns;
	uint32_t nports;
	_Atomic uint32_t pktio_pid;
	uint32_t flags;
	uint32_t reserved0;
	/*
	 * Frames the supervisor freed without knowing their chain (what a dead instance held): with
	 * the chain counters it gives the frames in flight, which pktio keeps under its budget.
	 */
	_Atomic uint64_t unattributed_lost;
	uint8_t reserved[200];
};

/* Written by the supervisor; hops before nhops, so a reader that loads nhops first sees them. */
struct bpfctl_chain_entry {
	_Atomic uint8_t nhops;
	_Atomic uint8_t egress_kind;
	_Atomic uint8_t egress_port;
	_Atomic uint8_t flags;
	_Atomic uint8_t hops[BPFCTL_PKT_MAX_HOPS]; /* function ids */
	uint8_t reserved0[4];
	char name[BPFCTL_PKT_NAME_LEN];
	uint8_t reserved1[16];
};

/* live_ring and nlive change under the seqlock `seq` (odd while the supervisor writes). */
struct bpfctl_fn_entry {
	_Atomic uint32_t seq;
	_Atomic uint32_t nlive;
	uint32_t flags;
	uint32_t reserved0;
	char name[BPFCTL_PKT_NAME_LEN];
	_Atomic uint16_t live_ring[BPFCTL_PKT_MAX_INST];
	_Atomic uint32_t inst_pid[BPFCTL_PKT_MAX_INST];
	_Atomic uint8_t inst_state[BPFCTL_PKT_MAX_INST];
	uint8_t reserved1[240];
};

struct bpfctl_port_entry {
	uint32_t ifindex;
	_Atomic uint32_t nqueues;
	_Atomic uint32_t flags;
	uint32_t reserved0;
	char ifname[BPFCTL_PKT_IFNAME_LEN];
	_Atomic uint64_t rx;
	_Atomic uint64_t tx;
	_Atomic uint64_t tx_fail;
	_Atomic uint64_t rx_dropped;    /* kernel: XDP_STATISTICS rx_dropped */
	_Atomic uint64_t rx_fill_empty; /* kernel: rx_fill_ring_empty_descs */
	_Atomic uint64_t posted;        /* gauge: buffers pktio holds in fill rings and transmissions */
	_Atomic uint64_t no_chain;      /* no valid chain word, or no running first function */
	_Atomic uint64_t rx_ring_full;  /* kernel: rx_ring_full */
	_Atomic uint64_t lost;          /* the first ring was full */
	uint8_t reserved1[152];
};

/* One instance's counters; only that instance writes them (reclaimed: the supervisor). */
struct bpfctl_inst_counters {
	_Atomic uint64_t rx;
	_Atomic uint64_t passed;
	_Atomic uint64_t dropped;
	_Atomic uint64_t lost;
	_Atomic uint64_t batches;
	_Atomic uint64_t wakeups;
	_Atomic uint64_t reclaimed;
	uint64_t reserved;
};

/* Every process on the chain adds to these (atomically, once per batch). */
struct bpfctl_chain_counters {
	_Atomic uint64_t in;
	_Atomic uint64_t out;
	_Atomic uint64_t dropped;
	_Atomic uint64_t lost;
	uint64_t reserved[4];
};

/* Ring header: producers' tail and the consumer's head on separate cache lines. */
struct bpfctl_ring_hdr {
	_Atomic uint64_t tail;
	uint8_t reserved0[56];
	_Atomic uint64_t head;
	uint8_t reserved1[56];
	_Atomic uint32_t waiting;
	_Atomic uint32_t wake; /* the futex word */
	_Atomic uint32_t consumer_pid;
	uint8_t reserved2[116];
};

struct bpfctl_ring_slot {
	_Atomic uint64_t seq;
	struct bpfctl_pkt_desc desc;
	uint8_t reserved[8];
};

_Static_assert(sizeof(struct bpfctl_pkt_desc) == 16, "descriptor size");
_Static_assert(offsetof(struct bpfctl_pkt_desc, gen) == 4 && offsetof(struct bpfctl_pkt_desc, len) == 8 &&
		       offsetof(struct bpfctl_pkt_desc, hash) == 10 && offsetof(struct bpfctl_pkt_desc, chain) == 12 &&
		       offsetof(struct bpfctl_pkt_desc, hop) == 13 && offsetof(struct bpfctl_pkt_desc, port) == 14 &&
		       offsetof(struct bpfctl_pkt_desc, flags) == 15,
	       "descriptor offsets");

_Static_assert(sizeof(struct bpfctl_plane_hdr) == BPFCTL_PLANE_HEADER_SIZE, "plane header size");
_Static_assert(offsetof(struct bpfctl_plane_hdr, version) == 4 && offsetof(struct bpfctl_plane_hdr, ring_slots) == 8 &&
		       offsetof(struct bpfctl_plane_hdr, ring_count) == 12 && offsetof(struct bpfctl_plane_hdr, ring_off) == 16 &&
		       offsetof(struct bpfctl_plane_hdr, ring_stride) == 20 && offsetof(struct bpfctl_plane_hdr, nchains) == 24 &&
		       offsetof(struct bpfctl_plane_hdr, nfns) == 28 && offsetof(struct bpfctl_plane_hdr, nports) == 32 &&
		       offsetof(struct bpfctl_plane_hdr, pktio_pid) == 36 && offsetof(struct bpfctl_plane_hdr, flags) == 40 &&
		       offsetof(struct bpfctl_plane_hdr, unattributed_lost) == 48,
	       "plane header offsets");

_Static_assert(sizeof(struct bpfctl_chain_entry) == 64, "chain entry size");
_Static_assert(offsetof(struct bpfctl_chain_entry, egress_kind) == 1 && offsetof(struct bpfctl_chain_entry, egress_port) == 2 &&
		       offsetof(struct bpfctl_chain_entry, flags) == 3 && offsetof(struct bpfctl_chain_entry, hops) == 4 &&
		       offsetof(struct bpfctl_chain_entry, name) == 16,
	       "chain entry offsets");

_Static_assert(sizeof(struct bpfctl_fn_entry) == 512, "function entry size");
_Static_assert(offsetof(struct bpfctl_fn_entry, nlive) == 4 && offsetof(struct bpfctl_fn_entry, flags) == 8 &&
		       offsetof(struct bpfctl_fn_entry, name) == 16 && offsetof(struct bpfctl_fn_entry, live_ring) == 48 &&
		       offsetof(struct bpfctl_fn_entry, inst_pid) == 112 && offsetof(struct bpfctl_fn_entry, inst_state) == 240,
	       "function entry offsets");
_Static_assert(sizeof(_Atomic uint16_t) == 2 && sizeof(_Atomic uint8_t) == 1, "small atomics are plain-sized");

_Static_assert(sizeof(struct bpfctl_port_entry) == 256, "port entry size");
_Static_assert(offsetof(struct bpfctl_port_entry, nqueues) == 4 && offsetof(struct bpfctl_port_entry, flags) == 8 &&
		       offsetof(struct bpfctl_port_entry, ifname) == 16 && offsetof(struct bpfctl_port_entry, rx) == 32 &&
		       offsetof(struct bpfctl_port_entry, tx) == 40 && offsetof(struct bpfctl_port_entry, tx_fail) == 48 &&
		       offsetof(struct bpfctl_port_entry, rx_dropped) == 56 && offsetof(struct bpfctl_port_entry, rx_fill_empty) == 64 &&
		       offsetof(struct bpfctl_port_entry, posted) == 72 && offsetof(struct bpfctl_port_entry, no_chain) == 80 &&
		       offsetof(struct bpfctl_port_entry, rx_ring_full) == 88 && offsetof(struct bpfctl_port_entry, lost) == 96,
	       "port entry offsets");

_Static_assert(sizeof(struct bpfctl_inst_counters) == 64, "instance counters size");
_Static_assert(offsetof(struct bpfctl_inst_counters, passed) == 8 && offsetof(struct bpfctl_inst_counters, dropped) == 16 &&
		       offsetof(struct bpfctl_inst_counters, lost) == 24 && offsetof(struct bpfctl_inst_counters, batches) == 32 &&
		       offsetof(struct bpfctl_inst_counters, wakeups) == 40 && offsetof(struct bpfctl_inst_counters, reclaimed) == 48,
	       "instance counters offsets");

_Static_assert(sizeof(struct bpfctl_chain_counters) == 64, "chain counters size");
_Static_assert(offsetof(struct bpfctl_chain_counters, out) == 8 && offsetof(struct bpfctl_chain_counters, dropped) == 16 &&
		       offsetof(struct bpfctl_chain_counters, lost) == 24,
	       "chain counters offsets");

_Static_assert(sizeof(struct bpfctl_ring_hdr) == 256, "ring header size");
_Static_assert(offsetof(struct bpfctl_ring_hdr, head) == 64 && offsetof(struct bpfctl_ring_hdr, waiting) == 128 &&
		       offsetof(struct bpfctl_ring_hdr, wake) == 132 && offsetof(struct bpfctl_ring_hdr, consumer_pid) == 136,
	       "ring header offsets");
_Static_assert(sizeof(struct bpfctl_ring_slot) == 32 && offsetof(struct bpfctl_ring_slot, desc) == 8, "ring slot layout");

/* The tables follow each other without gaps. */
_Static_assert(BPFCTL_PLANE_FNS_OFF == BPFCTL_PLANE_CHAINS_OFF + BPFCTL_PKT_MAX_CHAINS * sizeof(struct bpfctl_chain_entry), "functions table");
_Static_assert(BPFCTL_PLANE_PORTS_OFF == BPFCTL_PLANE_FNS_OFF + BPFCTL_PKT_MAX_FNS * sizeof(struct bpfctl_fn_entry), "ports table");
_Static_assert(BPFCTL_PLANE_INST_STATS_OFF == BPFCTL_PLANE_PORTS_OFF + BPFCTL_PKT_MAX_PORTS * sizeof(struct bpfctl_port_entry), "instance counters");
_Static_assert(BPFCTL_PLANE_CHAIN_STATS_OFF ==
		       BPFCTL_PLANE_INST_STATS_OFF + BPFCTL_PKT_MAX_FNS * BPFCTL_PKT_MAX_INST * sizeof(struct bpfctl_inst_counters),
	       "chain counters");
_Static_assert(BPFCTL_PLANE_RINGS_OFF >= BPFCTL_PLANE_CHAIN_STATS_OFF + BPFCTL_PKT_MAX_CHAINS * sizeof(struct bpfctl_chain_counters) &&
		       BPFCTL_PLANE_RINGS_OFF % 4096 == 0,
	       "rings after the tables, page aligned");

#endif /* BPFCTL_PACKET_LAYOUT_H */
