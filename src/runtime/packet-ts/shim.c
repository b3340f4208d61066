// SPDX-License-Identifier: MIT
/*
 * The C half of TypeScript packet functions (docs/packet-chains.md, "TypeScript packet
 * functions"): a shared library the Node process loads through koffi, so that a TS function
 * takes part in a packet chain through the same code as a C one. Ring protocol, buffer ownership,
 * generation checks, routing to the next hop and the counters all stay in bpfctl/packet.h; none
 * of it is written a second time in TypeScript, where a subtle difference would corrupt another
 * process's frames.
 *
 * One instance per process (the runtime's model: one ring, one consumer), so the batch lives in
 * static arrays: `pkts` as packet.h sees it, and `info`, the same frames as u32 words that the
 * JavaScript side reads and writes through one view made at start (no marshalling per call):
 *
 *   info[i*8 + 0]  frame start, as an offset in the pool          (JS may move it: adjustHead)
 *   info[i*8 + 1]  frame length                                  (JS may change it: adjustTail)
 *   info[i*8 + 2]  port | chain << 8 | hop << 16 | verdict << 24 (JS sets verdict, may set port)
 *   info[i*8 + 3]  symmetric flow hash
 *   info[i*8 + 4]  offset of the frame's buffer in the pool
 *   info[i*8 + 5]  the buffer's size
 *   info[i*8 + 6]  L3 offset in the frame | ethertype << 16, or 0xffffffff (no Ethernet header)
 *   info[i*8 + 7]  L4 offset in the frame | IP protocol << 16, or 0xffffffff (no L4 header)
 *
 * The parse in words 6 and 7 is the one packet_hdr.h does (bounds-checked, fuzzed), made once at
 * receive time. bpfctl_nf_send drops any frame the JavaScript side moved out of its buffer.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bpfctl/packet.h"

#define TS_WORDS 8u
#define TS_NONE 0xffffffffu

static struct bpfctl_pkt pkts[BPFCTL_NF_BATCH_MAX];
static uint32_t info[BPFCTL_NF_BATCH_MAX * TS_WORDS];

struct bpfctl_nf *bpfctl_ts_open(const char *pool, const char *name, uint32_t fn, uint32_t inst, int poll)
{
	return bpfctl_nf_open(pool, name, fn, inst, poll);
}

uint8_t *bpfctl_ts_base(const struct bpfctl_nf *nf) { return nf->pool->base; }
uint64_t bpfctl_ts_size(const struct bpfctl_nf *nf) { return nf->pool->size; }
uint32_t *bpfctl_ts_info(void) { return info; }
uint32_t bpfctl_ts_words(void) { return TS_WORDS; }
uint32_t bpfctl_ts_batch_max(void) { return BPFCTL_NF_BATCH_MAX; }
void bpfctl_ts_ready(struct bpfctl_nf *nf) { bpfctl_nf_ready(nf); }
void bpfctl_ts_stop(struct bpfctl_nf *nf) { bpfctl_nf_stop(nf); }
void bpfctl_ts_close(struct bpfctl_nf *nf) { bpfctl_nf_close(nf); }

static void parse(uint32_t *w, const struct bpfctl_pkt *p)
{
	uint16_t type;
	uint8_t proto;
	uint32_t room;
	int l3 = bpfctl_l3_off(p->data, p->len, &type);
	int l4 = l3 < 0 ? -1 : bpfctl_l4_off(p->data, p->len, &proto, &room);

	w[6] = l3 < 0 ? TS_NONE : (uint32_t)l3 | (uint32_t)type << 16;
	w[7] = l4 < 0 ? TS_NONE : (uint32_t)l4 | (uint32_t)proto << 16;
}

/* The frames of the last receive as `info` words. */
static unsigned publish(const struct bpfctl_nf *nf, unsigned n)
{
	const uint8_t *base = nf->pool->base;

	for (unsigned i = 0; i < n; i++) {
		const struct bpfctl_pkt *p = &pkts[i];
		uint32_t *w = &info[i * TS_WORDS];

		w[0] = (uint32_t)(p->data - base);
		w[1] = p->len;
		w[2] = (uint32_t)p->port | (uint32_t)p->chain << 8 | (uint32_t)p->hop << 16 | (uint32_t)p->verdict << 24;
		w[3] = p->hash;
		w[4] = (uint32_t)(p->buf - base);
		w[5] = p->buf_size;
		parse(w, p);
	}
	return n;
}

/*
 * Takes up to `max` frames that are in the ring now (0: none; never waits), into `info`. Called
 * on the JavaScript thread: under load the next batch is usually there already, and this costs a
 * plain call where a wait costs a trip through the thread pool.
 */
unsigned bpfctl_ts_try_recv(struct bpfctl_nf *nf, unsigned max)
{
	return publish(nf, bpfctl_nf_try_recv(nf, pkts, max > BPFCTL_NF_BATCH_MAX ? BPFCTL_NF_BATCH_MAX : max));
}

/*
 * Waits for frames (the ring's futex, or spinning in poll mode) and takes up to `max`, into
 * `info`. Returns how many, 0 once a stop was asked for and the ring is drained. Called on a
 * worker thread (koffi's async call) so that the Node event loop stays free while it sleeps.
 */
unsigned bpfctl_ts_recv(struct bpfctl_nf *nf, unsigned max)
{
	return publish(nf, bpfctl_nf_recv(nf, pkts, max > BPFCTL_NF_BATCH_MAX ? BPFCTL_NF_BATCH_MAX : max));
}

/* Takes back what the JavaScript side changed of frame `i` (start, length, port, verdict). */
static struct bpfctl_pkt *sync_back(const struct bpfctl_nf *nf, unsigned i)
{
	struct bpfctl_pkt *p = &pkts[i];
	const uint32_t *w = &info[i * TS_WORDS];

	p->data = nf->pool->base + w[0];
	p->len = (uint16_t)(w[1] > 0xffffu ? 0xffffu : w[1]);
	p->port = (uint8_t)w[2];
	p->verdict = (uint8_t)(w[2] >> 24);
	return p;
}

/* 1 when frame `p` lies inside its own buffer (what bpfctl_nf_send checks too). */
static int inside(const struct bpfctl_pkt *p)
{
	return p->data >= p->buf && p->len <= p->buf_size && (size_t)(p->data - p->buf) <= p->buf_size - p->len;
}

/* Hands the `n` frames of the last receive on, with the verdicts and changes from `info`. */
void bpfctl_ts_send(struct bpfctl_nf *nf, unsigned n)
{
	if (n > BPFCTL_NF_BATCH_MAX)
		n = BPFCTL_NF_BATCH_MAX;
	for (unsigned i = 0; i < n; i++)
		sync_back(nf, i);
	bpfctl_nf_send(nf, pkts, n);
}

/* Parses frame `i` again after the JavaScript side moved or rewrote its headers. */
void bpfctl_ts_reparse(const struct bpfctl_nf *nf, unsigned i)
{
	if (i >= BPFCTL_NF_BATCH_MAX)
		return;
	struct bpfctl_pkt *p = sync_back(nf, i);
	uint32_t *w = &info[i * TS_WORDS];

	if (!inside(p)) {
		w[6] = w[7] = TS_NONE;
		return;
	}
	parse(w, p);
}

/*
 * Recomputes the checksums of frame `i` in full: the IPv4 header's, and the UDP or TCP one over
 * IPv4 or IPv6 (a UDP checksum of 0 over IPv4, "none", stays 0). Returns a bit set: 1 the IPv4
 * header, 2 the L4 checksum; 0 when the frame has neither (or left its buffer).
 */
unsigned bpfctl_ts_fix_checksums(const struct bpfctl_nf *nf, unsigned i)
{
	if (i >= BPFCTL_NF_BATCH_MAX)
		return 0;
	struct bpfctl_pkt *p = sync_back(nf, i);
	unsigned done = 0;

	if (!inside(p))
		return 0;
	struct bpfctl_iphdr *ip = bpfctl_ipv4(p->data, p->len);
	struct bpfctl_ip6hdr *ip6 = ip ? NULL : bpfctl_ipv6(p->data, p->len);

	if (ip) {
		bpfctl_ipv4_csum_set(ip);
		done |= 1;
	}
	uint8_t proto;
	uint32_t room;
	int off = (ip || ip6) ? bpfctl_l4_off(p->data, p->len, &proto, &room) : -1;

	if (off < 0)
		return done;
	uint8_t *l4 = p->data + off;
	uint8_t *check;

	if (proto == BPFCTL_IPPROTO_UDP && room >= sizeof(struct bpfctl_udphdr)) {
		struct bpfctl_udphdr *uh = (struct bpfctl_udphdr *)l4;

		if (ip && !uh->check)
			return done;
		check = (uint8_t *)&uh->check;
	} else if (proto == BPFCTL_IPPROTO_TCP && room >= sizeof(struct bpfctl_tcphdr)) {
		check = (uint8_t *)&((struct bpfctl_tcphdr *)l4)->check;
	} else {
		return done;
	}
	memset(check, 0, 2);
	uint16_t c = ip ? bpfctl_ipv4_l4_csum(ip, l4, room) : bpfctl_ipv6_l4_csum(ip6, proto, l4, room);

	/* a computed UDP checksum of 0 is sent as 0xffff (0 means "none") */
	if (!c && proto == BPFCTL_IPPROTO_UDP)
		c = 0xffff;
	memcpy(check, &c, 2);
	return done | 2;
}
