/*
 * A DPDK network function that works on a bpfctl pool buffer in place: it maps the pool file a
 * TypeScript process created (bpf/include/bpfctl/pool.h), registers the mapping with DPDK as
 * external memory, wraps the buffer named by a descriptor (offset + generation) in an mbuf without
 * copying, uppercases the payload through the mbuf, and leaves the answer in the same buffer for
 * the TypeScript side to read.
 *
 *   dpdk-pool-nf [EAL options] -- --pool PATH --offset OFF --gen GEN --len LEN
 *
 * Prints one JSON line: {"ok":true,"len":N,"extmem":true,"answer":"..."}. Exit status 3 when the
 * descriptor is stale (the buffer was freed or reused since the descriptor was made).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <bpfctl/pool.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_memory.h>
#include <rte_mempool.h>

#define HUGE_2M (2u << 20)

/* The pool owns the memory: DPDK must never free it, so the callback does nothing. */
static void keep_in_pool(void *addr, void *opaque)
{
	(void)addr;
	(void)opaque;
}

static int usage(const char *prog)
{
	fprintf(stderr, "usage: %s [EAL options] -- --pool PATH --offset OFF --gen GEN --len LEN\n", prog);
	return 2;
}

int main(int argc, char **argv)
{
	const char *prog = argv[0];
	int n = rte_eal_init(argc, argv);
	if (n < 0) {
		fprintf(stderr, "rte_eal_init: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	argc -= n;
	argv += n;

	const char *path = NULL;
	long off = -1, gen = -1, len = -1;
	static const struct option opts[] = {
		{ "pool", required_argument, NULL, 'p' },
		{ "offset", required_argument, NULL, 'o' },
		{ "gen", required_argument, NULL, 'g' },
		{ "len", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': path = optarg; break;
		case 'o': off = strtol(optarg, NULL, 0); break;
		case 'g': gen = strtol(optarg, NULL, 0); break;
		case 'l': len = strtol(optarg, NULL, 0); break;
		default: return usage(prog);
		}
	}
	if (!path || off < 0 || gen < 0 || len < 0)
		return usage(prog);

	int rc = 1;
	struct bpfctl_pool *pool = bpfctl_pool_open(path);
	if (!pool) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		goto out_eal;
	}
	if (!bpfctl_pool_validate(pool, (uint32_t)off, (uint32_t)gen)) {
		fprintf(stderr, "stale or bad descriptor: offset %ld gen %ld\n", off, gen);
		rc = 3;
		goto out_pool;
	}
	if (len > pool->buf_size || len > UINT16_MAX) {
		fprintf(stderr, "len %ld does not fit a %u-byte buffer\n", len, pool->buf_size);
		goto out_pool;
	}

	/* Tell DPDK about the pool mapping: with a device this is what makes it DMA-able (IOVA
	 * mapping through VFIO); without one it still makes rte_mem_virt2memseg() know it. */
	size_t page = pool->hdr->backing == BPFCTL_POOL_BACKING_HUGETLBFS ? HUGE_2M : (size_t)sysconf(_SC_PAGESIZE);
	int extmem = rte_extmem_register(pool->base, pool->size, NULL, 0, page) == 0;
	if (!extmem)
		fprintf(stderr, "rte_extmem_register: %s (continuing without it)\n", rte_strerror(rte_errno));

	/* mbufs without data room: their data is the pool buffer, attached below. */
	struct rte_mempool *mp = rte_pktmbuf_pool_create("bpfctl_nf", 63, 0, 0, 0, (int)rte_socket_id());
	if (!mp) {
		fprintf(stderr, "rte_pktmbuf_pool_create: %s\n", rte_strerror(rte_errno));
		goto out_extmem;
	}
	struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
	if (!m) {
		fprintf(stderr, "rte_pktmbuf_alloc failed\n");
		goto out_mp;
	}
	/* Shared info kept outside the buffer: the helper that carves it from the buffer's tail
	 * would overwrite pool memory the descriptor's owner may use. */
	struct rte_mbuf_ext_shared_info shinfo = { .free_cb = keep_in_pool, .fcb_opaque = NULL };
	rte_mbuf_ext_refcnt_set(&shinfo, 1);
	void *buf = bpfctl_pool_ptr(pool, (uint32_t)off);
	uint16_t room = pool->buf_size > UINT16_MAX ? UINT16_MAX : (uint16_t)pool->buf_size;
	rte_pktmbuf_attach_extbuf(m, buf, rte_mem_virt2iova(buf), room, &shinfo);
	m->data_off = 0; /* the payload starts at the start of the pool buffer */
	m->data_len = (uint16_t)len;
	m->pkt_len = (uint32_t)len;

	char *p = rte_pktmbuf_mtod(m, char *);
	for (long i = 0; i < len; i++)
		p[i] = (char)toupper((unsigned char)p[i]);

	/* Still the buffer the descriptor named? (The owner could not have freed it meanwhile
	 * without this check failing: the generation would have moved on.) */
	if (!bpfctl_pool_validate(pool, (uint32_t)off, (uint32_t)gen)) {
		fprintf(stderr, "descriptor went stale while processing\n");
		rc = 3;
	} else {
		printf("{\"ok\":true,\"len\":%ld,\"extmem\":%s,\"zeroCopy\":%s,\"answer\":\"%.*s\"}\n", len,
		       extmem ? "true" : "false", p == (char *)buf ? "true" : "false", (int)len, p);
		rc = 0;
	}
	rte_pktmbuf_free(m); /* detaches: keep_in_pool runs, the pool buffer stays */
out_mp:
	rte_mempool_free(mp);
out_extmem:
	if (extmem)
		rte_extmem_unregister(pool->base, pool->size);
out_pool:
	bpfctl_pool_close(pool);
out_eal:
	rte_eal_cleanup();
	return rc;
}
