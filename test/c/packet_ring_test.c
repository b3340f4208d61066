/*
 * Exercises the packet rings of bpf/include/bpfctl/packet_ring.h. Built and driven by
 * test/unit/packet-ring.test.ts (cc -O2 -std=c11 -I bpf/include ... -lpthread).
 *
 *   packet_ring_test semantics               single-process behaviour: FIFO order, full ring and
 *                                            partial batch claims, wrap-around, claims published
 *                                            out of order, the sleep/wake protocol and timeouts
 *   packet_ring_test stress P N SLOTS        P forked producers push N descriptors each (random
 *                                            batches, pauses so the consumer sleeps) into one ring
 *                                            on a MAP_SHARED memfd; the parent consumes, checks
 *                                            every descriptor arrives exactly once, intact and in
 *                                            its producer's order, and prints JSON
 *   packet_ring_test bench                   ns per descriptor: push+pop in one thread, and
 *                                            producer -> consumer across two processes
 *
 * Exit 0 on success; a failure prints one line on stderr naming what broke.
 */
#define _GNU_SOURCE
#include <bpfctl/packet_ring.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Forked children: killed when a check fails (a producer on a ring nobody drains spins forever). */
static pid_t children[64];
static unsigned nchildren;

#define FAIL(...)                                                     \
	do {                                                          \
		fprintf(stderr, "packet_ring_test:%d: ", __LINE__);   \
		fprintf(stderr, __VA_ARGS__);                         \
		fputc('\n', stderr);                                  \
		for (unsigned c_ = 0; c_ < nchildren; c_++)           \
			kill(children[c_], SIGKILL);                  \
		exit(1);                                              \
	} while (0)
#define CHECK(cond, ...)                  \
	do {                              \
		if (!(cond))              \
			FAIL(__VA_ARGS__); \
	} while (0)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *shared(size_t size)
{
	int fd = memfd_create("packet-ring-test", MFD_CLOEXEC);

	CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
	CHECK(ftruncate(fd, (off_t)size) == 0, "ftruncate: %s", strerror(errno));
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
	close(fd);
	return m;
}

/* A descriptor whose every field is derived from (producer, seq): a torn or mixed slot shows. */
static struct bpfctl_pkt_desc mk(uint32_t producer, uint32_t seq)
{
	struct bpfctl_pkt_desc d;

	d.addr = producer;
	d.gen = seq;
	d.len = (uint16_t)(seq * 31u + producer);
	d.hash = (uint16_t)~d.len;
	d.chain = (uint8_t)(seq >> 3);
	d.hop = (uint8_t)producer;
	d.port = (uint8_t)(seq ^ producer);
	d.flags = 0x5a;
	return d;
}

static int intact(const struct bpfctl_pkt_desc *d)
{
	struct bpfctl_pkt_desc e = mk(d->addr, d->gen);

	return memcmp(d, &e, sizeof(e)) == 0;
}

/* --- semantics --- */

struct waiter {
	struct bpfctl_ring *r;
	int rc;
	uint64_t slept_ns;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = (struct waiter *)arg;
	uint64_t t = now_ns();

	w->rc = bpfctl_ring_wait(w->r, 5000);
	w->slept_ns = now_ns() - t;
	return NULL;
}

static int semantics(void)
{
	const uint32_t N = 8;
	void *mem = shared(256 + N * 32);
	struct bpfctl_pkt_desc in[64], out[64];
	uint64_t pos, pos2;

	bpfctl_ring_init(mem, N);
	struct bpfctl_ring r = bpfctl_ring_at(mem, N);

	for (uint32_t i = 0; i < 64; i++)
		in[i] = mk(1, i);

	/* empty */
	CHECK(bpfctl_ring_empty(&r), "a new ring is empty");
	CHECK(bpfctl_ring_pop(&r, out, 8) == 0, "pop from an empty ring");
	CHECK(bpfctl_ring_count(&r) == 0, "count of an empty ring");

	/* FIFO, partial pops */
	CHECK(bpfctl_ring_push(&r, in, 3) == 3, "push 3");
	CHECK(bpfctl_ring_count(&r) == 3 && !bpfctl_ring_empty(&r), "count after push");
	CHECK(bpfctl_ring_pop(&r, out, 2) == 2 && out[0].gen == 0 && out[1].gen == 1, "pop 2 in order");
	CHECK(bpfctl_ring_pop(&r, out, 8) == 1 && out[0].gen == 2 && intact(&out[0]), "pop the third, intact");
	CHECK(bpfctl_ring_empty(&r), "empty again");

	/* full ring: a batch claim takes what fits, then nothing */
	CHECK(bpfctl_ring_push(&r, in, 10) == N, "push 10 into 8 slots takes 8");
	CHECK(bpfctl_ring_push(&r, in + 10, 1) == 0, "push into a full ring");
	CHECK(bpfctl_ring_count(&r) == N, "full count");
	CHECK(bpfctl_ring_pop(&r, out, 3) == 3 && out[0].gen == 0 && out[2].gen == 2, "pop 3 of a full ring");
	CHECK(bpfctl_ring_push(&r, in + 8, 5) == 3, "push 5 with 3 free takes 3");
	CHECK(bpfctl_ring_pop(&r, out, 64) == N, "pop everything");
	for (uint32_t i = 0; i < N; i++)
		CHECK(out[i].gen == i + 3 && intact(&out[i]), "order across the wrap: slot %u has %u", i, out[i].gen);

	/* wrap-around, many times, random batch sizes: a strict FIFO of sequence numbers */
	uint32_t next_in = 0, next_out = 0;

	srand(7);
	for (int round = 0; round < 20000; round++) {
		uint32_t k = 1 + (uint32_t)rand() % N, room = N - (next_in - next_out);
		struct bpfctl_pkt_desc b[8];

		for (uint32_t i = 0; i < k; i++)
			b[i] = mk(2, next_in + i);
		uint32_t got = bpfctl_ring_push(&r, b, k);

		CHECK(got == (k < room ? k : room), "round %d: pushed %u of %u with %u free", round, got, k, room);
		next_in += got;
		uint32_t m = bpfctl_ring_pop(&r, out, 1 + (uint32_t)rand() % N);

		for (uint32_t i = 0; i < m; i++, next_out++)
			CHECK(out[i].gen == next_out && out[i].addr == 2 && intact(&out[i]), "round %d: got %u, want %u", round, out[i].gen,
			      next_out);
	}
	next_out += bpfctl_ring_pop(&r, out, 64);
	CHECK(next_out == next_in && bpfctl_ring_empty(&r), "drained after the wrap rounds");
	CHECK(atomic_load(&r.hdr->tail) == next_in + 3 + N + 3, "tail counts every position (%llu)", (unsigned long long)atomic_load(&r.hdr->tail));

	/* claims published out of order: the consumer waits for the earlier one */
	CHECK(bpfctl_ring_claim(&r, 2, &pos) == 2, "claim A");
	CHECK(bpfctl_ring_claim(&r, 2, &pos2) == 2 && pos2 == pos + 2, "claim B follows A");
	bpfctl_ring_publish(&r, pos2, in + 2, 2);
	CHECK(bpfctl_ring_pop(&r, out, 8) == 0, "B published before A: nothing to take yet");
	bpfctl_ring_publish(&r, pos, in, 2);
	CHECK(bpfctl_ring_pop(&r, out, 8) == 4 && out[0].gen == 0 && out[1].gen == 1 && out[2].gen == 2 && out[3].gen == 3,
	      "A then B once both are published");

	/* sleep protocol */
	CHECK(bpfctl_ring_push(&r, in, 1) == 1, "push one");
	CHECK(bpfctl_ring_wait(&r, 1000) == 0 && atomic_load(&r.hdr->waiting) == 0, "wait on a non-empty ring returns at once");
	bpfctl_ring_pop(&r, out, 8);
	uint64_t t = now_ns();

	CHECK(bpfctl_ring_wait(&r, 50) == -ETIMEDOUT, "wait times out on an empty ring");
	CHECK(now_ns() - t >= 40000000u, "the timeout was slept");
	CHECK(atomic_load(&r.hdr->waiting) == 0, "waiting is cleared after a timeout");
	uint32_t w0 = atomic_load(&r.hdr->wake);

	CHECK(bpfctl_ring_push(&r, in, 1) == 1 && atomic_load(&r.hdr->wake) == w0, "no sleeper: no wake");
	bpfctl_ring_pop(&r, out, 8);

	struct waiter w = { &r, 99, 0 };
	pthread_t th;

	CHECK(pthread_create(&th, NULL, wait_thread, &w) == 0, "pthread_create");
	usleep(100000);
	CHECK(atomic_load(&r.hdr->waiting) == 1, "the consumer announced it sleeps");
	CHECK(bpfctl_ring_push(&r, in, 1) == 1, "push to a sleeper");
	pthread_join(th, NULL);
	CHECK(w.rc == 1, "the sleeper was woken (rc %d)", w.rc);
	CHECK(w.slept_ns >= 90000000u && w.slept_ns < 2000000000u, "woken by the push, not a timeout (%llu ns)", (unsigned long long)w.slept_ns);
	CHECK(atomic_load(&r.hdr->wake) == w0 + 1 && atomic_load(&r.hdr->waiting) == 0, "one wake, flag cleared");
	CHECK(bpfctl_ring_pop(&r, out, 8) == 1, "the woken consumer finds the frame");

	/* a kick wakes a sleeper without a frame (a stop request) */
	w.rc = 99;
	CHECK(pthread_create(&th, NULL, wait_thread, &w) == 0, "pthread_create");
	usleep(50000);
	bpfctl_ring_kick(&r);
	pthread_join(th, NULL);
	CHECK(w.rc == 1 && w.slept_ns < 2000000000u, "kick wakes the sleeper (rc %d)", w.rc);
	CHECK(bpfctl_ring_empty(&r), "and the ring is still empty");
	printf("{\"ok\":true}\n");
	return 0;
}

/* --- stress --- */

struct stress_stats {
	_Atomic uint64_t wakes;  /* futex wakes producers made */
	_Atomic uint64_t full;   /* pushes that found the ring full */
	_Atomic uint64_t partial; /* pushes that took part of a batch */
};

static void producer(struct bpfctl_ring *r, struct stress_stats *st, uint32_t id, uint32_t n)
{
	struct bpfctl_pkt_desc b[32];
	uint32_t seq = 0;
	unsigned seed = id * 7919u + 1;

	while (seq < n) {
		uint32_t k = 1 + (uint32_t)rand_r(&seed) % 32;

		if (k > n - seq)
			k = n - seq;
		for (uint32_t i = 0; i < k; i++)
			b[i] = mk(id, seq + i);
		uint32_t done = 0;

		while (done < k) {
			uint32_t got = bpfctl_ring_push_nowake(r, b + done, k - done);

			if (got) {
				if (bpfctl_ring_wake(r))
					atomic_fetch_add(&st->wakes, 1);
				if (got < k - done)
					atomic_fetch_add(&st->partial, 1);
			} else {
				atomic_fetch_add(&st->full, 1);
				sched_yield();
			}
			done += got;
		}
		seq += k;
		/* now and then let the consumer run dry and sleep */
		if (rand_r(&seed) % 64 == 0)
			usleep(200);
	}
	exit(0);
}

static int stress(uint32_t np, uint32_t n, uint32_t slots)
{
	void *mem = shared(256 + (size_t)slots * 32 + 4096);
	struct stress_stats *st = (struct stress_stats *)((uint8_t *)mem + 256 + (size_t)slots * 32);
	struct bpfctl_pkt_desc out[64];
	uint32_t *next = calloc(np, sizeof(*next));
	uint64_t got = 0, sleeps = 0, timeouts = 0, want = (uint64_t)np * n;
	pid_t *pids = calloc(np, sizeof(*pids));

	CHECK(np >= 1 && np <= 64 && slots >= 2 && !(slots & (slots - 1)), "1..64 producers, a power-of-two ring");

	bpfctl_ring_init(mem, slots);
	struct bpfctl_ring r = bpfctl_ring_at(mem, slots);
	uint64_t t0 = now_ns();

	for (uint32_t i = 0; i < np; i++) {
		pids[i] = fork();
		CHECK(pids[i] >= 0, "fork: %s", strerror(errno));
		if (pids[i] == 0) {
			/* and if the parent is killed from outside (a test timeout) */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() == 1)
				exit(1);
			nchildren = 0;
			producer(&r, st, i, n);
		}
		children[nchildren++] = pids[i];
	}
	while (got < want) {
		uint32_t k = bpfctl_ring_pop(&r, out, 64);

		if (!k) {
			int w = bpfctl_ring_wait(&r, 3000);

			if (w == 1)
				sleeps++;
			if (w == -ETIMEDOUT) {
				/* producers never pause this long: a timeout is a lost wake-up or a stall */
				timeouts++;
				CHECK(timeouts < 2, "consumer slept 3 s with %llu of %llu received: lost wake-up or stalled ring",
				      (unsigned long long)got, (unsigned long long)want);
			}
			continue;
		}
		for (uint32_t i = 0; i < k; i++) {
			uint32_t p = out[i].addr;

			CHECK(p < np && intact(&out[i]), "descriptor %llu is torn or foreign (addr %u gen %u len %u)",
			      (unsigned long long)(got + i), out[i].addr, out[i].gen, out[i].len);
			CHECK(out[i].gen == next[p], "producer %u: got seq %u, want %u (lost, duplicated or reordered)", p, out[i].gen, next[p]);
			next[p]++;
		}
		got += k;
	}
	double ns = (double)(now_ns() - t0) / (double)want;

	for (uint32_t i = 0; i < np; i++) {
		int status;

		CHECK(waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0, "producer %u failed", i);
	}
	CHECK(bpfctl_ring_pop(&r, out, 64) == 0 && bpfctl_ring_count(&r) == 0, "%u descriptors more than were pushed", bpfctl_ring_pop(&r, out, 64));
	printf("{\"received\":%llu,\"sleeps\":%llu,\"wakes\":%llu,\"full\":%llu,\"partial\":%llu,\"nsPerDesc\":%.1f}\n",
	       (unsigned long long)got, (unsigned long long)sleeps, (unsigned long long)atomic_load(&st->wakes),
	       (unsigned long long)atomic_load(&st->full), (unsigned long long)atomic_load(&st->partial), ns);
	return 0;
}

/* --- bench --- */

static int bench(void)
{
	const uint32_t N = 1024, B = 32, ROUNDS = 200000;
	void *mem = shared(256 + N * 32);
	struct bpfctl_pkt_desc in[32], out[32];

	bpfctl_ring_init(mem, N);
	struct bpfctl_ring r = bpfctl_ring_at(mem, N);

	for (uint32_t i = 0; i < B; i++)
		in[i] = mk(0, i);
	uint64_t t = now_ns();

	for (uint32_t i = 0; i < ROUNDS; i++) {
		bpfctl_ring_push(&r, in, B);
		bpfctl_ring_pop(&r, out, B);
	}
	double one = (double)(now_ns() - t) / ((double)ROUNDS * B);

	/* two processes: one pushes batches of 32 as fast as the ring takes them, the other pops */
	const uint64_t total = 2000000;
	pid_t pid = fork();

	if (pid == 0) {
		uint64_t sent = 0;

		prctl(PR_SET_PDEATHSIG, SIGKILL);

		while (sent < total) {
			uint32_t k = bpfctl_ring_push(&r, in, B);

			if (!k)
				bpfctl_cpu_relax();
			sent += k;
		}
		exit(0);
	}
	uint64_t got = 0, sleeps = 0;

	children[nchildren++] = pid;
	t = now_ns();
	while (got < total) {
		uint32_t k = bpfctl_ring_pop(&r, out, B);

		if (!k && bpfctl_ring_wait(&r, 1000) == 1)
			sleeps++;
		got += k;
	}
	double two = (double)(now_ns() - t) / (double)total;

	waitpid(pid, NULL, 0);
	printf("{\"pushPopNs\":%.2f,\"crossProcessNs\":%.2f,\"consumerSleeps\":%llu}\n", one, two, (unsigned long long)sleeps);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "semantics"))
		return semantics();
	if (argc == 5 && !strcmp(argv[1], "stress"))
		return stress((uint32_t)atoi(argv[2]), (uint32_t)atoi(argv[3]), (uint32_t)atoi(argv[4]));
	if (argc >= 2 && !strcmp(argv[1], "bench"))
		return bench();
	fprintf(stderr, "usage: %s semantics | stress PRODUCERS N SLOTS | bench\n", argv[0]);
	return 2;
}
