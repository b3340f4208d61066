// SPDX-License-Identifier: MIT
/*
 * One point of the descriptor-transport bench (bench/descriptors.ts): sets up the shared memfd
 * and the chosen transport, forks the producer, the middle hop and the consumer, runs a warm-up
 * and a measured window, reads the three processes' CPU from /proc, prints one line
 * `result {json}` and kills the three. Nothing outlives it: the hops die with it
 * (PR_SET_PDEATHSIG), it dies with the bench, the memfd and the sockets go with the processes
 * (a socket leaves the sockhash when it closes).
 *
 *   descbench --transport ring-event|ring-poll|skmsg|unix --phase max|rate|idle [--rate N]
 *             [--warm-ms N] [--measure-ms N] [--settle-ms N] [--map-fd N] [--cpus P,M,C]
 *
 * max: flat out; rate: N descriptors/s; idle: N descriptors/s for the warm-up, then nothing at
 * all, and the window measures what the three cost doing nothing. skmsg needs --map-fd: the
 * bench's sockhash with its sk_msg program attached (bench/descriptors/skmsg.ts), inherited.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "roles.h"

static const char *const NAMES[] = { "ring-event", "ring-poll", "skmsg", "unix" };
static pid_t kids[DB_ROLES];

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void kill_kids(void)
{
	for (int i = 0; i < DB_ROLES; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGKILL);
	for (int i = 0; i < DB_ROLES; i++)
		if (kids[i] > 0)
			waitpid(kids[i], NULL, 0);
	memset(kids, 0, sizeof(kids));
}

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("descbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	kill_kids();
	exit(1);
}

static void on_signal(int sig)
{
	(void)sig;
	/* kill(2) is async-signal-safe; the hops would die with us anyway (PR_SET_PDEATHSIG) */
	for (int i = 0; i < DB_ROLES; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGKILL);
	_exit(130);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* What /proc says about one hop process. */
struct proc_snap {
	uint64_t exec_ns; /* schedstat: on-CPU time, what utime + stime are sampled from */
	uint64_t tick_ns; /* utime + stime (clock ticks) */
	uint64_t vcsw, ivcsw;
};

struct snap {
	uint64_t t_ns;
	uint64_t consumed;
	struct proc_snap p[DB_ROLES];
	struct db_role_stats r[DB_ROLES];
	/* /proc/stat, all CPUs, ns */
	uint64_t busy_ns, irq_ns, softirq_ns, steal_ns;
};

static long clk_tck;

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, len - 1);

	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return 0;
}

static void proc_snap(pid_t pid, struct proc_snap *s)
{
	char path[64], buf[4096];

	memset(s, 0, sizeof(*s));
	snprintf(path, sizeof(path), "/proc/%d/schedstat", pid);
	if (read_file(path, buf, sizeof(buf)) == 0)
		s->exec_ns = strtoull(buf, NULL, 10);
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_file(path, buf, sizeof(buf)) == 0) {
		/* fields after the last ')': state is field 3, utime 14, stime 15 */
		char *p = strrchr(buf, ')');
		unsigned long long ut = 0, stt = 0;

		if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) == 2)
			s->tick_ns = (ut + stt) * (1000000000ull / (uint64_t)clk_tck);
	}
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (read_file(path, buf, sizeof(buf)) == 0) {
		char *v = strstr(buf, "\nvoluntary_ctxt_switches:");
		char *nv = strstr(buf, "\nnonvoluntary_ctxt_switches:");

		if (v)
			s->vcsw = strtoull(v + strlen("\nvoluntary_ctxt_switches:"), NULL, 10);
		if (nv)
			s->ivcsw = strtoull(nv + strlen("\nnonvoluntary_ctxt_switches:"), NULL, 10);
	}
}

static void take(struct snap *s, struct db_ctl *c)
{
	char buf[512];

	s->t_ns = mono_ns();
	s->consumed = atomic_load(&c->consumed);
	for (int i = 0; i < DB_ROLES; i++) {
		proc_snap(kids[i], &s->p[i]);
		memcpy(&s->r[i], &c->role[i], sizeof(s->r[i]));
	}
	s->busy_ns = s->irq_ns = s->softirq_ns = s->steal_ns = 0;
	if (read_file("/proc/stat", buf, sizeof(buf)) == 0) {
		unsigned long long v[8] = { 0 };

		if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
			   &v[7]) == 8) {
			uint64_t k = 1000000000ull / (uint64_t)clk_tck;

			s->busy_ns = (v[0] + v[1] + v[2] + v[5] + v[6]) * k;
			s->irq_ns = v[5] * k;
			s->softirq_ns = v[6] * k;
			s->steal_ns = v[7] * k;
		}
	}
}

/* Everything a hop process needs, set up in the launcher before fork where it can be. */
struct setup {
	enum db_transport t;
	uint8_t *base;
	struct db_ctl *ctl;
	int map_fd;
	int listen_fd;
	struct sockaddr_in addr;
	int sp[2][2]; /* unix: socketpair of hop 1 (producer -> middle) and hop 2 (middle -> consumer) */
	uint64_t rate;
	int cpu[DB_ROLES]; /* -1: wherever the scheduler puts it */
};

static struct db_ep ep_ring(struct setup *s, int ring, enum db_role role)
{
	struct db_ep e;

	memset(&e, 0, sizeof(e));
	e.t = s->t;
	e.ring = bpfctl_ring_at(s->base + DB_RINGS_OFF + (size_t)ring * DB_RING_STRIDE, DB_RING_SLOTS);
	e.phase = &s->ctl->phase;
	e.st = &s->ctl->role[role];
	e.fd = -1;
	return e;
}

static struct db_ep ep_fd(struct setup *s, int fd, enum db_role role)
{
	struct db_ep e;

	memset(&e, 0, sizeof(e));
	e.t = s->t;
	e.fd = fd;
	e.phase = &s->ctl->phase;
	e.st = &s->ctl->role[role];
	return e;
}

/* A hop's TCP socket, connected to the launcher's listener and put into the sockhash under its role. */
static int skmsg_socket(struct setup *s, enum db_role role)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		db_fail(s->ctl, "socket: %s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&s->addr, sizeof(s->addr)) < 0)
		db_fail(s->ctl, "connect to 127.0.0.1:%u: %s", ntohs(s->addr.sin_port), strerror(errno));
	close(s->listen_fd);
	/* established now; the sk_msg program was attached before any socket went in (gotcha 2) */
	union bpf_attr a;
	uint32_t key = (uint32_t)role;
	uint64_t v = (uint64_t)fd;

	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)s->map_fd;
	a.key = (uint64_t)(uintptr_t)&key;
	a.value = (uint64_t)(uintptr_t)&v;
	a.flags = BPF_ANY;
	if (syscall(SYS_bpf, BPF_MAP_UPDATE_ELEM, &a, sizeof(a)) < 0)
		db_fail(s->ctl, "sockhash fd %d: cannot insert the socket of hop %u: %s", s->map_fd, key, strerror(errno));
	return fd;
}

static void hop_main(struct setup *s, enum db_role role)
{
	struct db_ep in, out;
	int ring = s->t == DB_RING_EVENT || s->t == DB_RING_POLL;

	if (ring) {
		/* ring 0 feeds the middle hop, ring 1 the consumer (the producer's in and the consumer's out go unused) */
		in = ep_ring(s, role == DB_PRODUCER ? 0 : (int)role - 1, role);
		out = ep_ring(s, role == DB_CONSUMER ? 1 : (int)role, role);
	} else if (s->t == DB_UNIX) {
		in = ep_fd(s, role == DB_PRODUCER ? -1 : s->sp[role - 1][1], role);
		out = ep_fd(s, role == DB_CONSUMER ? -1 : s->sp[role][0], role);
	} else {
		int fd = skmsg_socket(s, role);

		/* one socket per hop: it receives what is redirected to it, and its sends are redirected on */
		in = ep_fd(s, fd, role);
		out = ep_fd(s, fd, role);
	}
	if (s->cpu[role] >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(s->cpu[role], &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0)
			db_fail(s->ctl, "hop %d: cannot run on CPU %d: %s", role, s->cpu[role], strerror(errno));
	}
	atomic_fetch_add(&s->ctl->ready, 1);
	while (atomic_load(&s->ctl->phase) == DB_SETUP)
		syscall(SYS_futex, (uint32_t *)&s->ctl->phase, FUTEX_WAIT, DB_SETUP, NULL, NULL, 0);
	if (role == DB_PRODUCER) {
		prctl(PR_SET_TIMERSLACK, 1UL);
		db_producer(s->ctl, s->base, &out, s->rate);
	} else if (role == DB_MIDDLE) {
		db_middle(s->ctl, &in, &out);
	} else {
		db_consumer(s->ctl, s->base, &in);
	}
	_exit(0);
}

static uint64_t arg_u64(const char *name, const char *v)
{
	char *end;
	unsigned long long x = strtoull(v, &end, 10);

	if (!*v || *end)
		die("%s: '%s' is not a number", name, v);
	return x;
}

static uint64_t quantile(const struct db_ctl *c, uint64_t total, double q)
{
	uint64_t want = (uint64_t)(q * (double)total), seen = 0;

	if (!total)
		return 0;
	if (want < 1)
		want = 1;
	for (uint32_t b = 0; b < DB_HIST; b++) {
		seen += atomic_load(&c->hist[b]);
		if (seen >= want)
			return db_bucket_edge(b);
	}
	return db_bucket_edge(DB_HIST - 1);
}

static void print_u64s(const char *key, const uint64_t *v, int comma)
{
	printf("\"%s\":[%llu,%llu,%llu]%s", key, (unsigned long long)v[0], (unsigned long long)v[1], (unsigned long long)v[2],
	       comma ? "," : "");
}

int main(int argc, char **argv)
{
	struct setup s;
	const char *phase = "max";
	uint64_t warm_ms = 500, measure_ms = 2000, settle_ms = 300;
	int t = -1;

	memset(&s, 0, sizeof(s));
	s.map_fd = -1;
	s.listen_fd = -1;
	for (int i = 0; i < DB_ROLES; i++)
		s.cpu[i] = -1;
	clk_tck = sysconf(_SC_CLK_TCK);
	if (clk_tck <= 0)
		clk_tck = 100;
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];

		if (!strcmp(k, "--transport")) {
			for (int j = 0; j < 4; j++)
				if (!strcmp(v, NAMES[j]))
					t = j;
			if (t < 0)
				die("--transport: unknown '%s' (ring-event, ring-poll, skmsg, unix)", v);
		} else if (!strcmp(k, "--phase")) {
			if (strcmp(v, "max") && strcmp(v, "rate") && strcmp(v, "idle"))
				die("--phase: unknown '%s' (max, rate, idle)", v);
			phase = v;
		} else if (!strcmp(k, "--rate")) {
			s.rate = arg_u64(k, v);
		} else if (!strcmp(k, "--warm-ms")) {
			warm_ms = arg_u64(k, v);
		} else if (!strcmp(k, "--measure-ms")) {
			measure_ms = arg_u64(k, v);
		} else if (!strcmp(k, "--settle-ms")) {
			settle_ms = arg_u64(k, v);
		} else if (!strcmp(k, "--cpus")) {
			if (sscanf(v, "%d,%d,%d", &s.cpu[0], &s.cpu[1], &s.cpu[2]) != 3)
				die("--cpus: '%s' is not P,M,C (the producer's, the middle hop's and the consumer's CPU)", v);
		} else if (!strcmp(k, "--map-fd")) {
			s.map_fd = (int)arg_u64(k, v);
		} else {
			die("unknown option %s", k);
		}
	}
	if (t < 0)
		die("--transport is required");
	s.t = (enum db_transport)t;
	if (!strcmp(phase, "max"))
		s.rate = 0;
	else if (!s.rate)
		die("--phase %s needs --rate", phase);
	if (s.t == DB_SKMSG && (s.map_fd < 0 || fcntl(s.map_fd, F_GETFD) < 0))
		die("skmsg needs --map-fd: the sockhash with the sk_msg program attached, inherited");

	/* we go when the bench goes (its SIGKILL too); the hops go when we go */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	int mfd = (int)syscall(SYS_memfd_create, "bpfctl-bench-descriptors", MFD_CLOEXEC);

	if (mfd < 0 || ftruncate(mfd, (off_t)DB_MEM_SIZE) < 0)
		die("memfd of %llu bytes: %s", (unsigned long long)DB_MEM_SIZE, strerror(errno));
	s.base = mmap(NULL, DB_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, mfd, 0);
	if (s.base == MAP_FAILED)
		die("mmap of the memfd: %s", strerror(errno));
	close(mfd);
	s.ctl = (struct db_ctl *)s.base;
	for (int r = 0; r < 2; r++)
		bpfctl_ring_init(s.base + DB_RINGS_OFF + (size_t)r * DB_RING_STRIDE, DB_RING_SLOTS);

	if (s.t == DB_UNIX) {
		for (int h = 0; h < 2; h++)
			if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s.sp[h]) < 0)
				die("socketpair: %s", strerror(errno));
	} else if (s.t == DB_SKMSG) {
		socklen_t len = sizeof(s.addr);

		s.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		s.addr.sin_family = AF_INET;
		s.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (s.listen_fd < 0 || bind(s.listen_fd, (struct sockaddr *)&s.addr, sizeof(s.addr)) < 0 || listen(s.listen_fd, 8) < 0 ||
		    getsockname(s.listen_fd, (struct sockaddr *)&s.addr, &len) < 0)
			die("listener on 127.0.0.1: %s", strerror(errno));
	}

	pid_t me = getpid();

	for (int r = 0; r < DB_ROLES; r++) {
		pid_t p = fork();

		if (p < 0)
			die("fork: %s", strerror(errno));
		if (p == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != me)
				_exit(1);
			signal(SIGINT, SIG_DFL);
			signal(SIGTERM, SIG_DFL);
			hop_main(&s, (enum db_role)r);
		}
		kids[r] = p;
	}

	/* skmsg: the accepted ends stay open (a closed peer takes its socket out of the map) */
	int peers[DB_ROLES] = { -1, -1, -1 };
	uint64_t deadline = mono_ns() + 5000000000ull;

	if (s.t == DB_SKMSG) {
		for (int i = 0; i < DB_ROLES; i++) {
			struct pollfd pfd = { s.listen_fd, POLLIN, 0 };

			if (poll(&pfd, 1, 5000) != 1 || (peers[i] = accept4(s.listen_fd, NULL, NULL, SOCK_CLOEXEC)) < 0)
				die("the hops did not connect to the listener within 5 s%s%s", s.ctl->failed ? ": " : "", s.ctl->error);
		}
	}
	while (atomic_load(&s.ctl->ready) < DB_ROLES) {
		if (s.ctl->failed || mono_ns() > deadline)
			die("hop setup: %s", s.ctl->failed ? s.ctl->error : "not ready within 5 s");
		for (int i = 0; i < DB_ROLES; i++)
			if (waitpid(kids[i], NULL, WNOHANG) == kids[i]) {
				kids[i] = 0;
				die("hop %d exited during setup%s%s", i, s.ctl->failed ? ": " : "", s.ctl->error);
			}
		sleep_ms(1);
	}

	struct snap a, b;
	int idle = !strcmp(phase, "idle");

	atomic_store(&s.ctl->phase, DB_WARM);
	syscall(SYS_futex, (uint32_t *)&s.ctl->phase, FUTEX_WAKE, DB_ROLES, NULL, NULL, 0);
	sleep_ms(warm_ms);
	if (idle) {
		/* traffic stops; what is in flight drains; then nothing moves */
		atomic_store(&s.ctl->phase, DB_QUIET);
		sleep_ms(settle_ms);
		take(&a, s.ctl);
		sleep_ms(measure_ms);
		take(&b, s.ctl);
	} else {
		take(&a, s.ctl);
		atomic_store(&s.ctl->phase, DB_MEASURE);
		sleep_ms(measure_ms);
		take(&b, s.ctl);
	}
	/* a hop gone before the end (crashed, or failed) spoils the point; checked before the stop,
	 * after which the ring hops leave on their own */
	int dead = 0;

	for (int i = 0; i < DB_ROLES; i++)
		if (waitpid(kids[i], NULL, WNOHANG) == kids[i]) {
			kids[i] = 0;
			dead = 1;
		}
	atomic_store(&s.ctl->phase, DB_STOP);
	if (s.ctl->failed)
		die("%s", s.ctl->error);
	uint64_t errors = atomic_load(&s.ctl->errors), measured = atomic_load(&s.ctl->measured);
	uint64_t lat_sum = atomic_load(&s.ctl->lat_sum_ns);
	uint64_t p50 = quantile(s.ctl, measured, 0.50), p90 = quantile(s.ctl, measured, 0.90);
	uint64_t p99 = quantile(s.ctl, measured, 0.99), p999 = quantile(s.ctl, measured, 0.999);
	kill_kids();
	for (int i = 0; i < DB_ROLES; i++)
		if (peers[i] >= 0)
			close(peers[i]);
	if (dead)
		die("a hop exited during the measurement%s%s", s.ctl->failed ? ": " : "", s.ctl->error);

	uint64_t exec[DB_ROLES], tick[DB_ROLES], vcsw[DB_ROLES], ivcsw[DB_ROLES], sys[DB_ROLES], bat[DB_ROLES], gate[DB_ROLES],
		full[DB_ROLES], late[DB_ROLES], skipped[DB_ROLES];

	for (int i = 0; i < DB_ROLES; i++) {
		exec[i] = b.p[i].exec_ns - a.p[i].exec_ns;
		tick[i] = b.p[i].tick_ns - a.p[i].tick_ns;
		vcsw[i] = b.p[i].vcsw - a.p[i].vcsw;
		ivcsw[i] = b.p[i].ivcsw - a.p[i].ivcsw;
		sys[i] = b.r[i].syscalls - a.r[i].syscalls;
		bat[i] = b.r[i].batches - a.r[i].batches;
		gate[i] = b.r[i].gate - a.r[i].gate;
		full[i] = b.r[i].full - a.r[i].full;
		late[i] = b.r[i].late - a.r[i].late;
		skipped[i] = b.r[i].skipped - a.r[i].skipped;
	}
	double secs = (double)(b.t_ns - a.t_ns) / 1e9;
	uint64_t descs = b.consumed - a.consumed;

	printf("result {\"transport\":\"%s\",\"phase\":\"%s\",\"rate\":%llu,\"seconds\":%.6f,\"descs\":%llu,\"desc_per_s\":%.1f,",
	       NAMES[s.t], phase, (unsigned long long)s.rate, secs, (unsigned long long)descs, (double)descs / secs);
	print_u64s("cpu_ns", exec, 1);
	print_u64s("tick_cpu_ns", tick, 1);
	print_u64s("vcsw", vcsw, 1);
	print_u64s("ivcsw", ivcsw, 1);
	print_u64s("syscalls", sys, 1);
	print_u64s("batches", bat, 1);
	print_u64s("gate", gate, 1);
	print_u64s("ring_full", full, 1);
	printf("\"late_batches\":%llu,\"skipped_batches\":%llu,", (unsigned long long)late[DB_PRODUCER],
	       (unsigned long long)skipped[DB_PRODUCER]);
	printf("\"machine_busy_ns\":%llu,\"irq_ns\":%llu,\"softirq_ns\":%llu,\"steal_ns\":%llu,",
	       (unsigned long long)(b.busy_ns - a.busy_ns), (unsigned long long)(b.irq_ns - a.irq_ns),
	       (unsigned long long)(b.softirq_ns - a.softirq_ns), (unsigned long long)(b.steal_ns - a.steal_ns));
	printf("\"lat\":{\"n\":%llu,\"mean_ns\":%.1f,\"p50_ns\":%llu,\"p90_ns\":%llu,\"p99_ns\":%llu,\"p999_ns\":%llu},\"errors\":%llu}\n",
	       (unsigned long long)measured, measured ? (double)lat_sum / (double)measured : 0.0, (unsigned long long)p50,
	       (unsigned long long)p90, (unsigned long long)p99, (unsigned long long)p999, (unsigned long long)errors);
	fflush(stdout);
	return errors ? 3 : 0;
}
