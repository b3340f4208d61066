// SPDX-License-Identifier: MIT
/*
 * The native gateway process: configuration from the environment the supervisor sets
 * (src/runtime/gateway-native/launch.ts), then one epoll loop until SIGTERM, the supervisor's
 * end of the control pipe closing, or the chain socket failing.
 *
 * File descriptors it inherits, as a C function does (src/runtime/supervisor/launch.ts):
 *   3  BPFCTL_READY_FD    "ready gateway <inst> <pid> port=<port>\n" once it serves
 *   4  BPFCTL_SOCK_FD     its chain socket, connected and inserted into `socks` by the supervisor
 *   5  BPFCTL_CONTROL_FD  lines from the supervisor: "down <fn> <inst> <id,id,...>" when an
 *                         instance died (the function's live ids before it left); EOF: it is gone
 * A chain socket that fails cannot be registered again from here: the requests it carried get
 * 503 and the process exits 75 for a restart with a new one (as C functions do).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gw.h"

struct gw G;

#define EV_LISTEN 1
#define EV_CHAIN 2
#define EV_CONTROL 3
#define EV_SIGNAL 4
/* How long closing waits for answers still being written. */
#define CLOSE_GRACE_MS 1000

uint64_t gw_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t gw_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void gw_log(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "[gateway#%u pid %u] ", G.gw_inst, G.pid);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static const char *need(const char *name)
{
	const char *v = getenv(name);

	if (!v || !*v) {
		fprintf(stderr, "bpfctl gateway: %s is not set (the supervisor sets it; see src/runtime/gateway-native/launch.ts)\n", name);
		exit(2);
	}
	return v;
}

static uint32_t num(const char *name, int required, uint32_t fallback)
{
	const char *v = required ? need(name) : getenv(name);
	char *end;
	unsigned long n;

	if (!v || !*v)
		return fallback;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || *end || n > UINT32_MAX) {
		fprintf(stderr, "bpfctl gateway: %s must be a non-negative integer, got '%s'\n", name, v);
		exit(2);
	}
	return (uint32_t)n;
}

/* BPFCTL_GW_FN_NAMES="1=upper,2=reverse": function names for messages ("function X has no live instance"). */
static void parse_names(const char *v)
{
	char *s = strdup(v ? v : ""), *save = NULL;

	for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		unsigned long id;

		if (!eq)
			continue;
		*eq = 0;
		id = strtoul(tok, NULL, 10);
		if (id < GW_MAX_FUNCTIONS)
			G.fn_names[id] = eq + 1;
	}
}

static int listen_on(const char *host, uint32_t port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE };
	struct addrinfo *ai;
	char ports[16];
	int one = 1, fd, rc;

	snprintf(ports, sizeof(ports), "%u", port);
	if ((rc = getaddrinfo(host, ports, &hints, &ai)) != 0) {
		gw_log("HTTP address %s: %s", host, gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	/* every gateway process binds the same port: the kernel spreads connections among them */
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 4096)) {
		gw_log("cannot listen on %s:%u: %s", host, port, strerror(errno));
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static void add_fd(int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	if (epoll_ctl(G.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		gw_log("epoll_ctl: %s", strerror(errno));
		exit(1);
	}
}

/* Lines from the supervisor on the control pipe. */
static void control_readable(void)
{
	static char buf[8192];
	static size_t have;
	ssize_t n = read(G.control_fd, buf + have, sizeof(buf) - 1 - have);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* the supervisor is gone: nothing would restart or register us; stop serving */
		epoll_ctl(G.epfd, EPOLL_CTL_DEL, G.control_fd, NULL);
		close(G.control_fd);
		G.control_fd = -1;
		G.closing = 1;
		return;
	}
	have += (size_t)n;
	buf[have] = 0;
	char *line = buf, *nl;

	while ((nl = strchr(line, '\n'))) {
		unsigned fn, inst;
		int used = 0;

		*nl = 0;
		if (sscanf(line, "down %u %u %n", &fn, &inst, &used) == 2 && used > 0) {
			uint16_t before[GW_MAX_INSTANCES];
			uint32_t nb = 0;
			char *p = line + used;

			while (*p && nb < GW_MAX_INSTANCES) {
				before[nb++] = (uint16_t)strtoul(p, &p, 10);
				if (*p == ',')
					p++;
				else
					break;
			}
			gw_instance_down(fn, inst, before, nb);
		}
		line = nl + 1;
	}
	have = (size_t)(buf + have - line);
	memmove(buf, line, have);
	if (have == sizeof(buf) - 1)
		have = 0; /* a line this long is not ours */
}

static void print_stats(void)
{
	fprintf(stderr, "[gateway#%u pid %u] stats requests=%llu replies=%llu timeouts=%llu late=%llu misrouted=%llu client_gone=%llu refused_connections=%llu",
		G.gw_inst, G.pid, (unsigned long long)G.stats.requests, (unsigned long long)G.stats.replies, (unsigned long long)G.stats.timeouts,
		(unsigned long long)G.stats.late, (unsigned long long)G.stats.misrouted, (unsigned long long)G.stats.client_gone,
		(unsigned long long)G.stats.refused_connections);
	for (int s = 0; s < 600; s++)
		if (G.stats.by_status[s])
			fprintf(stderr, " %d=%llu", s, (unsigned long long)G.stats.by_status[s]);
	fputc('\n', stderr);
}

int main(void)
{
	char err[512];
	const char *pool_path, *pin_dir, *host;
	uint32_t port, ready_fd;
	sigset_t sigs;

	G.pid = (uint32_t)getpid();
	G.gw_inst = num("BPFCTL_GW_INST", 1, 0);
	pin_dir = need("BPFCTL_PIN_DIR");
	pool_path = need("BPFCTL_POOL");
	host = need("BPFCTL_HTTP_HOST");
	port = num("BPFCTL_HTTP_PORT", 1, 0);
	G.timeout_ms = num("BPFCTL_GW_TIMEOUT_MS", 0, 5000);
	G.body_timeout_ms = num("BPFCTL_GW_BODY_TIMEOUT_MS", 0, 10000);
	G.max_per_client = num("BPFCTL_GW_MAX_PER_CLIENT", 0, 1024);
	G.chain_fd = (int)num("BPFCTL_SOCK_FD", 1, 0);
	ready_fd = num("BPFCTL_READY_FD", 0, UINT32_MAX);
	G.control_fd = (int)num("BPFCTL_CONTROL_FD", 0, UINT32_MAX);
	parse_names(getenv("BPFCTL_GW_FN_NAMES"));

	if (!(G.pool = bpfctl_pool_open(pool_path))) {
		gw_log("cannot open pool %s: %s", pool_path, strerror(errno));
		return 2;
	}
	/* Requests in the chain at once before new ones get 503: default the pool's buffer count. */
	G.max_in_flight = num("BPFCTL_GW_MAX_IN_FLIGHT", 0, G.pool->buf_count);
	/* Pool buffers bodies still arriving may hold (the rest are collected privately): default 1/8 of the pool. */
	G.recv_buffers = num("BPFCTL_GW_RECV_BUFFERS", 0, G.pool->buf_count / 8);
	if (gw_maps_open(&G.maps, pin_dir, err, sizeof(err))) {
		gw_log("%s", err);
		return 2;
	}
	/* this instance's slot of maps/gw_stats: what `bpfctl metrics` reads about its responses */
	if (!(G.metrics = gw_stats_open(pin_dir, G.gw_inst, err, sizeof(err)))) {
		gw_log("%s", err);
		return 2;
	}
	bpfctl_gw_stats_init(G.metrics, BPFCTL_GW_ENGINE_NATIVE, G.pid, (double)time(NULL));
	gw_list_init(&G.idle);
	gw_list_init(&G.body);
	gw_list_init(&G.linger);
	gw_list_init(&G.pending_list);
	if (gw_chain_init()) {
		gw_log("out of memory");
		return 1;
	}

	/* as many connections as the system lets us have: the per-client limit is what bounds one client */
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGUSR1); /* prints the counters (tests read them) */
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	G.signal_fd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	G.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	G.epfd = epoll_create1(EPOLL_CLOEXEC);
	if ((G.listen_fd = listen_on(host, port)) < 0)
		return 1;
	int fl = fcntl(G.chain_fd, F_GETFL);

	if (fl < 0) {
		gw_log("BPFCTL_SOCK_FD %d is not open: the supervisor hands the gateway its registered socket", G.chain_fd);
		return 2;
	}
	fcntl(G.chain_fd, F_SETFL, fl | O_NONBLOCK);
	fcntl(G.chain_fd, F_SETFD, FD_CLOEXEC);
	add_fd(G.listen_fd, EPOLLIN | EPOLLEXCLUSIVE, EV_LISTEN);
	add_fd(G.chain_fd, EPOLLIN, EV_CHAIN);
	add_fd(G.signal_fd, EPOLLIN, EV_SIGNAL);
	if (G.control_fd >= 0) {
		fcntl(G.control_fd, F_SETFL, fcntl(G.control_fd, F_GETFL) | O_NONBLOCK);
		add_fd(G.control_fd, EPOLLIN, EV_CONTROL);
	}
	if (ready_fd != UINT32_MAX) {
		char line[128];
		int n = snprintf(line, sizeof(line), "ready gateway %u %u port=%u\n", G.gw_inst, G.pid, port);

		if (write((int)ready_fd, line, (size_t)n) < 0)
			gw_log("ready fd: %s", strerror(errno));
		close((int)ready_fd);
	}

	struct epoll_event evs[256];
	uint64_t closing_since = 0;

	G.now_ms = gw_now();
	for (;;) {
		int64_t wait = -1, next = gw_conn_next_deadline();

		if (!gw_list_empty(&G.pending_list)) {
			struct gw_pending *p = GW_CONTAINER(G.pending_list.next, struct gw_pending, by_deadline);
			int64_t in = p->deadline_ms > G.now_ms ? (int64_t)(p->deadline_ms - G.now_ms) : 0;

			wait = in;
		}
		if (next >= 0 && (wait < 0 || next < wait))
			wait = next;
		if (gw_has_ready())
			wait = 0;
		if (closing_since && (wait < 0 || wait > 50))
			wait = 50;
		int n = epoll_wait(G.epfd, evs, 256, wait > 0 ? (int)wait + 1 : (int)wait);

		G.now_ms = gw_now();
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;

			if (tag == EV_LISTEN) {
				if (!G.closing)
					gw_accept();
			} else if (tag == EV_CHAIN) {
				if (evs[i].events & EPOLLOUT)
					gw_chain_writable();
				if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
					gw_chain_readable();
			} else if (tag == EV_CONTROL) {
				control_readable();
			} else if (tag == EV_SIGNAL) {
				struct signalfd_siginfo si;

				while (read(G.signal_fd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGUSR1)
						print_stats();
					else
						G.closing = 1;
				}
			} else {
				gw_conn_event(evs[i].data.ptr, evs[i].events);
			}
		}
		gw_run_ready();
		gw_expire_pending();
		gw_expire_conns();
		gw_chain_flush();
		if (!gw_chain_up())
			G.closing = 1;
		if (G.closing && !closing_since) {
			/* no new connections; open requests get 503 rather than a reset connection */
			closing_since = G.now_ms ? G.now_ms : 1;
			epoll_ctl(G.epfd, EPOLL_CTL_DEL, G.listen_fd, NULL);
			close(G.listen_fd);
			gw_fail_all(503, "gateway closing\n");
			gw_chain_flush();
		}
		if (closing_since && (gw_conns_writing() == 0 || G.now_ms - closing_since > CLOSE_GRACE_MS))
			break;
	}
	print_stats();
	gw_maps_close(&G.maps);
	bpfctl_pool_close(G.pool);
	return gw_chain_exit_code();
}
