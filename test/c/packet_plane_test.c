/*
 * Plays pktio's two halves on a pool with a packet plane (made by TypeScript's PacketPlane), so
 * the packet function runtime (nf_main.c + a handler) can be tested without AF_XDP. Driven by
 * test/unit/packet-nf.test.ts.
 *
 *   packet_plane_test inject POOL CHAIN N FLOWS
 *       N frames (IPv4/UDP, FLOWS flows by source port, payload = flow and per-flow sequence
 *       number) in fresh pool buffers, routed to the chain's first function like pktio does
 *       (bpfctl_pkt_route: live ring list, flow hash); prints JSON with what the route did
 *   packet_plane_test drain POOL N TIMEOUT_MS
 *       consumes ring 0 like pktio's TX thread until N frames or the timeout; checks every frame
 *       is a live buffer of ours, that each flow's frames come in order, and frees them; prints
 *       JSON: counts by port, how many came with swapped MACs, order violations
 *   packet_plane_test bench POOL ROUNDS
 *       the software path of one frame in one thread, batches of 32: pool alloc, route to the
 *       first function's ring (chain 0, whose function 0 must have instance 0 live and no
 *       process), take it as that instance would (validate, owner), route to the egress (ring 0),
 *       take it as pktio's TX thread would, free; prints ns per frame
 */
#define _GNU_SOURCE
#include <bpfctl/packet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const uint8_t MAC_SRC[6] = { 2, 0, 0, 0, 0, 1 }, MAC_DST[6] = { 2, 0, 0, 0, 0, 2 };

static struct bpfctl_pool *open_plane(const char *path, struct bpfctl_plane *pl)
{
	struct bpfctl_pool *p = bpfctl_pool_open(path);

	if (!p || bpfctl_plane_open(pl, p)) {
		fprintf(stderr, "packet_plane_test: %s: no pool with a plane\n", path);
		exit(1);
	}
	return p;
}

static uint16_t frame(uint8_t *f, uint32_t flow, uint32_t seq)
{
	uint8_t *ip = f + 14, *uh = ip + 20, *pl = uh + 8;
	uint16_t plen = 16, ulen = (uint16_t)(8 + plen), tot = (uint16_t)(20 + ulen);

	memcpy(f, MAC_DST, 6);
	memcpy(f + 6, MAC_SRC, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)(tot >> 8);
	ip[3] = (uint8_t)tot;
	ip[8] = 64;
	ip[9] = 17;
	memcpy(ip + 12, "\xc6\x12\x00\x01\xc6\x12\x00\x02", 8);
	bpfctl_ipv4_csum_set((struct bpfctl_iphdr *)ip);
	uh[0] = (uint8_t)((10000 + flow) >> 8);
	uh[1] = (uint8_t)(10000 + flow);
	uh[2] = 0x1b;
	uh[3] = 0x58;
	uh[4] = (uint8_t)(ulen >> 8);
	uh[5] = (uint8_t)ulen;
	uh[6] = uh[7] = 0;
	memcpy(pl, "bpfctl", 6);
	memcpy(pl + 6, &flow, 4);
	memcpy(pl + 10, &seq, 4);
	pl[14] = pl[15] = 0;
	return (uint16_t)(14 + tot);
}

static int inject(const char *path, uint32_t chain, uint32_t n, uint32_t flows)
{
	struct bpfctl_plane pl;
	struct bpfctl_pool *p = open_plane(path, &pl);
	static struct bpfctl_chain_delta cd;
	uint32_t *seq = calloc(flows, sizeof(uint32_t)), pid = (uint32_t)getpid();
	uint64_t passed = 0, no_instance = 0, ring_full = 0, other = 0;

	for (uint32_t done = 0; done < n;) {
		struct bpfctl_pkt_desc d[32];
		uint32_t idx[32], gen[32], k = n - done < 32 ? n - done : 32;

		k = bpfctl_pool_alloc_bulk(p, pid, idx, gen, k);
		if (!k) {
			fprintf(stderr, "packet_plane_test: pool empty after %u frames\n", done);
			return 1;
		}
		for (uint32_t i = 0; i < k; i++) {
			/* flow ids differ per chain: each inject run numbers its flows from 0 */
			uint32_t flow = chain * 1000 + (done + i) % flows, off = bpfctl_plane_buf_off(&pl, idx[i]) + BPFCTL_PKT_HEADROOM;
			uint8_t *f = p->base + off;

			d[i].addr = off;
			d[i].gen = gen[i];
			d[i].len = frame(f, flow, seq[flow % flows]++);
			d[i].hash = bpfctl_flow_hash(f, d[i].len);
			d[i].chain = (uint8_t)chain;
			d[i].hop = 0;
			d[i].port = 0;
			d[i].flags = 0;
			BPFCTL_CHAIN_ADD(&cd, in, chain, 1);
		}
		struct bpfctl_route_result res;

		bpfctl_pkt_route(&pl, d, k, &res, &cd);
		bpfctl_chain_delta_flush(&pl, &cd);
		passed += res.passed;
		no_instance += res.no_instance;
		ring_full += res.ring_full;
		other += res.invalid + res.dropped;
		done += k;
		/* a little slower than the functions: this tests delivery, not ring overflow */
		if (done % 256 == 0)
			usleep(2000);
	}
	printf("{\"passed\":%llu,\"noInstance\":%llu,\"ringFull\":%llu,\"other\":%llu}\n", (unsigned long long)passed,
	       (unsigned long long)no_instance, (unsigned long long)ring_full, (unsigned long long)other);
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int drain(const char *path, uint32_t n, uint32_t timeout_ms)
{
	struct bpfctl_plane pl;
	struct bpfctl_pool *p = open_plane(path, &pl);
	struct bpfctl_ring r0 = bpfctl_plane_ring(&pl, 0);
	struct bpfctl_free_batch fb;
	uint32_t got = 0, by_port[BPFCTL_PKT_MAX_PORTS] = { 0 }, swapped = 0, disorder = 0, stale = 0, tx_flag = 0;
	uint32_t next_seq[4096] = { 0 }, pid = (uint32_t)getpid();
	uint64_t end = now_ms() + timeout_ms;

	fb.n = 0;
	atomic_store(&r0.hdr->consumer_pid, pid);
	while (got < n && now_ms() < end) {
		struct bpfctl_pkt_desc d[64];
		uint32_t k = bpfctl_ring_pop(&r0, d, 64);

		if (!k) {
			bpfctl_ring_wait(&r0, 20);
			continue;
		}
		for (uint32_t i = 0; i < k; i++) {
			if (!bpfctl_plane_desc_ok(&pl, &d[i])) {
				stale++;
				continue;
			}
			bpfctl_plane_set_owner(&pl, d[i].addr, pid);
			const uint8_t *f = p->base + d[i].addr;
			uint32_t flow, seq;

			memcpy(&flow, f + 14 + 20 + 8 + 6, 4);
			memcpy(&seq, f + 14 + 20 + 8 + 10, 4);
			if (flow < 4096) {
				disorder += seq != next_seq[flow];
				next_seq[flow] = seq + 1;
			}
			swapped += memcmp(f, MAC_SRC, 6) == 0 && memcmp(f + 6, MAC_DST, 6) == 0;
			tx_flag += (d[i].flags & BPFCTL_PKT_DESC_TX) != 0;
			if (d[i].port < BPFCTL_PKT_MAX_PORTS)
				by_port[d[i].port]++;
			bpfctl_free_batch_add(&pl, &fb, &d[i]);
			got++;
		}
		bpfctl_free_batch_flush(&pl, &fb);
	}
	atomic_store(&r0.hdr->consumer_pid, 0);
	printf("{\"got\":%u,\"port0\":%u,\"port1\":%u,\"swapped\":%u,\"disorder\":%u,\"stale\":%u,\"txFlag\":%u}\n", got, by_port[0],
	       by_port[1], swapped, disorder, stale, tx_flag);
	return 0;
}

static int bench(const char *path, uint32_t rounds)
{
	struct bpfctl_plane pl;
	struct bpfctl_pool *p = open_plane(path, &pl);
	static struct bpfctl_chain_delta cd;
	struct bpfctl_ring r1 = bpfctl_plane_ring(&pl, BPFCTL_PKT_RING_OF(0, 0)), r0 = bpfctl_plane_ring(&pl, 0);
	uint32_t pid = (uint32_t)getpid(), idx[32], gen[32], moved = 0;
	struct bpfctl_pkt_desc d[32];
	struct bpfctl_route_result res;
	struct bpfctl_free_batch fb;
	struct timespec t0, t1;

	fb.n = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint32_t r = 0; r < rounds; r++) {
		uint32_t k = bpfctl_pool_alloc_bulk(p, pid, idx, gen, 32);

		for (uint32_t i = 0; i < k; i++)
			d[i] = (struct bpfctl_pkt_desc){ .addr = bpfctl_plane_buf_off(&pl, idx[i]) + 256, .gen = gen[i], .len = 60, .hash = (uint16_t)(i * 2654435761u >> 16) };
		bpfctl_pkt_route(&pl, d, k, &res, &cd); /* pktio RX -> function 0 */
		uint32_t n = bpfctl_ring_pop(&r1, d, 32);

		for (uint32_t i = 0; i < n; i++) { /* the instance takes them */
			if (bpfctl_plane_desc_ok(&pl, &d[i]))
				bpfctl_plane_set_owner(&pl, d[i].addr, pid);
			d[i].hop++;
		}
		bpfctl_pkt_route(&pl, d, n, &res, &cd); /* the instance -> egress (ring 0) */
		n = bpfctl_ring_pop(&r0, d, 32);
		for (uint32_t i = 0; i < n; i++) { /* pktio TX takes and, after the completion, frees */
			if (bpfctl_plane_desc_ok(&pl, &d[i]))
				bpfctl_plane_set_owner(&pl, d[i].addr, pid);
			bpfctl_free_batch_add(&pl, &fb, &d[i]);
		}
		bpfctl_free_batch_flush(&pl, &fb);
		bpfctl_chain_delta_flush(&pl, &cd);
		moved += n;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / (double)(moved ? moved : 1);

	printf("{\"frames\":%u,\"nsPerFrame\":%.1f}\n", moved, ns);
	return moved == rounds * 32 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "bench"))
		return bench(argv[2], (uint32_t)atoi(argv[3]));
	if (argc == 6 && !strcmp(argv[1], "inject"))
		return inject(argv[2], (uint32_t)atoi(argv[3]), (uint32_t)atoi(argv[4]), (uint32_t)atoi(argv[5]));
	if (argc == 5 && !strcmp(argv[1], "drain"))
		return drain(argv[2], (uint32_t)atoi(argv[3]), (uint32_t)atoi(argv[4]));
	fprintf(stderr, "usage: %s inject POOL CHAIN N FLOWS | drain POOL N TIMEOUT_MS | bench POOL ROUNDS\n", argv[0]);
	return 2;
}
