/*
 * Exercises bpf/include/bpfctl/pool.h against a pool file a TypeScript process created. Built
 * and driven by test/kernel/pool-*.test.ts (cc -O2 -std=c11 -I bpf/include).
 *
 *   pool_test stress PATH MS HOLD      for MS milliseconds: alloc up to HOLD buffers, stamp each,
 *                                      check the stamp is intact before freeing (a buffer handed
 *                                      out twice gets overwritten by the other holder); prints
 *                                      JSON with ns/op
 *   pool_test errors PATH              double free, stale generation, bad offset are refused
 *   pool_test hold PATH N              allocate N buffers, print "ready", sleep until killed
 *   pool_test walk PATH                walk the free list: prints its length, fails on a cycle,
 *                                      a duplicate or an in-use buffer on the list
 */
#define _GNU_SOURCE
#include <bpfctl/pool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct stamp {
	uint32_t pid;
	uint32_t seq;
};

static int stress(struct bpfctl_pool *p, long ms, int hold)
{
	struct bpfctl_buf_ref *held = calloc((size_t)hold, sizeof(*held));
	uint32_t pid = (uint32_t)getpid(), seq = 0;
	long ops = 0, exhausted = 0;
	int n = 0;
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)ms * 1000000u;
	for (long i = 0; (i & 255) || now_ns() < end; i++) {
		/* Fill up to `hold`, then drain by half: buffers stay held while others run. */
		while (n < hold) {
			if (bpfctl_pool_alloc(p, pid, &held[n]) < 0) {
				exhausted++;
				break;
			}
			struct stamp s = { pid, ++seq };
			memcpy(bpfctl_pool_ptr(p, held[n].offset), &s, sizeof(s));
			memset((uint8_t *)bpfctl_pool_ptr(p, held[n].offset) + sizeof(s), (int)(seq & 0xff), 8);
			n++;
			ops++;
		}
		int keep = n / 2;
		while (n > keep) {
			n--;
			struct stamp s;
			memcpy(&s, bpfctl_pool_ptr(p, held[n].offset), sizeof(s));
			if (s.pid != pid) {
				fprintf(stderr, "buffer %u handed out twice: stamp pid %u, mine %u\n", held[n].index, s.pid, pid);
				return 1;
			}
			int err = bpfctl_pool_free(p, held[n].offset, held[n].gen, pid);
			if (err) {
				fprintf(stderr, "free of %u gen %u failed: %d\n", held[n].index, held[n].gen, err);
				return 1;
			}
			ops++;
		}
	}
	while (n > 0) {
		n--;
		if (bpfctl_pool_free(p, held[n].offset, held[n].gen, pid)) {
			fprintf(stderr, "final free failed\n");
			return 1;
		}
		ops++;
	}
	uint64_t dt = now_ns() - t0;
	printf("{\"pid\":%u,\"ops\":%ld,\"exhausted\":%ld,\"nsPerOp\":%.1f}\n", pid, ops, exhausted, (double)dt / (double)ops);
	free(held);
	return 0;
}

static int expect(const char *what, int got, int want)
{
	if (got == want)
		return 0;
	fprintf(stderr, "%s: got %d, want %d\n", what, got, want);
	return 1;
}

static int errors(struct bpfctl_pool *p)
{
	struct bpfctl_buf_ref a, b;
	int bad = 0;
	if (bpfctl_pool_alloc(p, 4242, &a))
		return fprintf(stderr, "alloc failed\n"), 1;
	bad |= expect("validate fresh", bpfctl_pool_validate(p, a.offset, a.gen), 1);
	bad |= expect("free by another owner", bpfctl_pool_free(p, a.offset, a.gen, 4243), -EPERM);
	bad |= expect("free misaligned", bpfctl_pool_free(p, a.offset + 1, a.gen, 0), -EINVAL);
	bad |= expect("free below data", bpfctl_pool_free(p, 0, a.gen, 0), -EINVAL);
	bad |= expect("transfer", bpfctl_pool_transfer(p, a.offset, a.gen, 4243), 0);
	bad |= expect("free", bpfctl_pool_free(p, a.offset, a.gen, 4243), 0);
	bad |= expect("validate after free", bpfctl_pool_validate(p, a.offset, a.gen), 0);
	bad |= expect("double free", bpfctl_pool_free(p, a.offset, a.gen, 0), -EALREADY);
	/* LIFO: the buffer just freed comes back, with the next generation */
	if (bpfctl_pool_alloc(p, 4242, &b))
		return fprintf(stderr, "alloc failed\n"), 1;
	bad |= expect("same buffer reused", (int)b.index, (int)a.index);
	bad |= expect("generation moved on", (int)(b.gen - a.gen), 1);
	bad |= expect("stale free", bpfctl_pool_free(p, a.offset, a.gen, 0), -ESTALE);
	bad |= expect("stale validate", bpfctl_pool_validate(p, a.offset, a.gen), 0);
	bad |= expect("ptr in range", bpfctl_pool_ptr(p, b.offset) == p->base + b.offset, 1);
	bad |= expect("ptr out of range", bpfctl_pool_ptr(p, 16) == NULL, 1);
	bad |= expect("reclaim", (int)bpfctl_pool_reclaim(p, 4242), 1);
	bad |= expect("in use after reclaim", (int)bpfctl_pool_in_use(p), 0);
	printf("{\"errors\":%s}\n", bad ? "false" : "true");
	return bad;
}

static int hold(struct bpfctl_pool *p, int n)
{
	struct bpfctl_buf_ref r;
	for (int i = 0; i < n; i++)
		if (bpfctl_pool_alloc(p, (uint32_t)getpid(), &r))
			return fprintf(stderr, "exhausted after %d\n", i), 1;
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}

static int walk(struct bpfctl_pool *p)
{
	uint8_t *seen = calloc(p->buf_count, 1);
	uint32_t len = 0;
	for (uint32_t i = (uint32_t)atomic_load(&p->hdr->free_head); i != BPFCTL_POOL_NONE;
	     i = atomic_load(&p->meta[i].next)) {
		if (i >= p->buf_count || seen[i]) {
			fprintf(stderr, "free list broken at %u (after %u entries)\n", i, len);
			return 1;
		}
		if (BPFCTL_POOL_STATE(atomic_load(&p->meta[i].gen_state)) != BPFCTL_POOL_STATE_FREE) {
			fprintf(stderr, "buffer %u on the free list is in use\n", i);
			return 1;
		}
		seen[i] = 1;
		len++;
	}
	printf("{\"freeList\":%u,\"inUse\":%u,\"count\":%u}\n", len, bpfctl_pool_in_use(p), p->buf_count);
	free(seen);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s stress|errors|hold|walk PATH [args]\n", argv[0]);
		return 2;
	}
	struct bpfctl_pool *p = bpfctl_pool_open(argv[2]);
	if (!p) {
		perror(argv[2]);
		return 1;
	}
	int rc = 2;
	if (!strcmp(argv[1], "stress") && argc == 5)
		rc = stress(p, atol(argv[3]), atoi(argv[4]));
	else if (!strcmp(argv[1], "errors"))
		rc = errors(p);
	else if (!strcmp(argv[1], "hold") && argc == 4)
		rc = hold(p, atoi(argv[3]));
	else if (!strcmp(argv[1], "walk"))
		rc = walk(p);
	bpfctl_pool_close(p);
	return rc;
}
