// SPDX-License-Identifier: MIT
/*
 * pktio: the AF_XDP process of a policy's packet chains (docs/packet-chains.md). It owns every
 * AF_XDP socket; the UMEM is the pool mapping itself (UMEM address == pool offset, chunk == pool
 * buffer), so a received frame is already in a pool buffer every chain process can see.
 *
 *   pktio --pool PATH --port ID:IFNAME[:XSKMAP_PIN] [--port ...] [--fill N] [--max-in-flight N]
 *         [--coalesce CHAIN:US ...]
 *
 *   --pool   the pool file (with a packet plane; the supervisor created both)
 *   --port   port ID (its index in the plane's port table) on interface IFNAME. With an xskmap pin
 *            path the port is an ingress port: one socket per RX queue, each put into that map
 *            under its queue id, where the classifier redirects steered frames. Without one it
 *            only transmits (one socket, queue 0).
 *   --fill   buffers to keep in each RX queue's fill ring (default: a quarter of the pool shared
 *            among the RX queues, at most 2048)
 *   --max-in-flight
 *            frames all chains may hold at once (in rings and in functions' hands); a frame that
 *            would go beyond is dropped on receive and counted `lost`. The pool is shared with
 *            request chains: this keeps a flood (or a slow function) from taking their buffers.
 *   --coalesce
 *            chain CHAIN's frames may wait up to US microseconds in pktio while traffic comes, so
 *            that several go down the chain as one batch and every process on it wakes once per
 *            batch, not once per frame (interrupt moderation; pktio_rxtx.c, "Coalescing")
 *
 * Run it in the interfaces' network namespace. Zero-copy is tried first and copy mode used when a
 * driver refuses it (veth); every socket shares the one UMEM, so all run in the same mode.
 * bpfctl's classifier is the XDP program: libxdp is told never to load its own.
 *
 * RX thread: poll() on the RX sockets, keeps the fill rings full from the pool, reads the chain
 * id the classifier wrote in front of each frame, hashes the flow and pushes the descriptors to
 * the chain's first function (or straight to ring 0 for a chain without functions).
 * TX thread: sleeps on ring 0, puts frames into the TX ring of their port's queue 0 socket, kicks
 * the kernel, reaps completions and frees transmitted buffers to the pool.
 *
 * Ready: "ready pktio 0 <pid> ports=IF:copy,..." on fd 3 (BPFCTL_READY_FD) once every socket is
 * bound and in its map. SIGTERM/SIGINT: stop receiving, transmit what ring 0 still holds (briefly),
 * close the sockets, free every buffer this process holds, exit 0. Errors: one line naming the
 * port and the kernel's reason, exit 1 (2: bad arguments).
 *
 * This file sets up and stops; the two threads are in pktio_rxtx.c, shared state in pktio.h.
 */
#include "pktio.h"

struct pktio g;

void die(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "pktio: %s\n", line);
	exit(1);
}

/* --- setup --- */

/*
 * RX queues usable for AF_XDP: the kernel binds queue ids below both the real RX and TX queue
 * counts. ETHTOOL_GCHANNELS answers for the current namespace (sysfs may describe another one
 * when we were moved with nsenter); without it, the sysfs rx-* directories, else 1.
 */
static uint32_t queue_count(const char *ifname)
{
	struct ethtool_channels ch = { .cmd = ETHTOOL_GCHANNELS };
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	uint32_t n = 0;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = (void *)&ch;
	if (fd >= 0 && ioctl(fd, SIOCETHTOOL, &ifr) == 0) {
		uint32_t rx = ch.combined_count + ch.rx_count, tx = ch.combined_count + ch.tx_count;

		n = tx && tx < rx ? tx : rx;
	}
	if (fd >= 0)
		close(fd);
	if (!n) {
		char path[128];
		DIR *d;

		snprintf(path, sizeof(path), "/sys/class/net/%s/queues", ifname);
		d = opendir(path);
		if (d) {
			struct dirent *e;

			while ((e = readdir(d)))
				n += strncmp(e->d_name, "rx-", 3) == 0;
			closedir(d);
		}
	}
	if (!n)
		n = 1;
	return n > MAX_QUEUES ? MAX_QUEUES : n;
}

static void usage(void)
{
	fprintf(stderr, "usage: pktio --pool PATH --port ID:IFNAME[:XSKMAP_PIN] [--port ...] [--fill N] [--max-in-flight N] [--coalesce CHAIN:US ...]\n");
	exit(2);
}

static void parse_args(int argc, char **argv, const char **pool_path, long *fill)
{
	*pool_path = NULL;
	*fill = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pool") && i + 1 < argc) {
			*pool_path = argv[++i];
		} else if (!strcmp(argv[i], "--fill") && i + 1 < argc) {
			char *end;

			*fill = strtol(argv[++i], &end, 10);
			if (*end || *fill < 1 || *fill > RING_SIZE) {
				fprintf(stderr, "pktio: --fill must be 1..%d, got '%s'\n", RING_SIZE, argv[i]);
				exit(2);
			}
		} else if (!strcmp(argv[i], "--max-in-flight") && i + 1 < argc) {
			char *end;
			long long v = strtoll(argv[++i], &end, 10);

			if (*end || v < 0) {
				fprintf(stderr, "pktio: --max-in-flight must be a number of frames >= 0, got '%s'\n", argv[i]);
				exit(2);
			}
			g.max_in_flight = (uint64_t)v;
		} else if (!strcmp(argv[i], "--coalesce") && i + 1 < argc) {
			char *spec = argv[++i], *end, *us_end = spec;
			unsigned long chain = strtoul(spec, &end, 10), us = *end == ':' ? strtoul(end + 1, &us_end, 10) : 0;

			if (end == spec || *end != ':' || end[1] == 0 || *us_end || chain >= BPFCTL_PKT_MAX_CHAINS || us < 1 || us > COALESCE_MAX_US) {
				fprintf(stderr, "pktio: --coalesce wants CHAIN:US with CHAIN < %u and US 1..%u, got '%s'\n", BPFCTL_PKT_MAX_CHAINS, COALESCE_MAX_US, spec);
				exit(2);
			}
			g.ncoalesce += g.coalesce_ns[chain] == 0;
			g.coalesce_ns[chain] = (uint64_t)us * 1000u;
		} else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
			char *spec = argv[++i], *end;
			unsigned long id = strtoul(spec, &end, 10);
			struct port *p = &g.ports[g.nports];

			if (end == spec || *end != ':' || id >= BPFCTL_PKT_MAX_PORTS || g.nports == BPFCTL_PKT_MAX_PORTS) {
				fprintf(stderr, "pktio: --port wants ID:IFNAME[:XSKMAP_PIN] with ID < %u, got '%s'\n", BPFCTL_PKT_MAX_PORTS, spec);
				exit(2);
			}
			char *name = end + 1, *colon = strchr(name, ':');
			size_t nlen = colon ? (size_t)(colon - name) : strlen(name);

			if (nlen == 0 || nlen >= IF_NAMESIZE) {
				fprintf(stderr, "pktio: --port %s: bad interface name\n", spec);
				exit(2);
			}
			for (uint32_t j = 0; j < g.nports; j++) {
				if (g.ports[j].id == id || (strlen(g.ports[j].ifname) == nlen && !strncmp(g.ports[j].ifname, name, nlen))) {
					fprintf(stderr, "pktio: --port %s: port id or interface given twice\n", spec);
					exit(2);
				}
			}
			p->id = (uint32_t)id;
			memcpy(p->ifname, name, nlen);
			p->ifname[nlen] = 0;
			p->map_path = colon && colon[1] ? colon + 1 : NULL;
			p->map_fd = -1;
			g.nports++;
		} else {
			usage();
		}
	}
	if (!*pool_path || !g.nports)
		usage();
}

/* Undo a first socket whose bind failed: libxdp keeps the UMEM's fill/completion rings mapped. */
static void drop_umem(void)
{
	struct xdp_mmap_offsets off;
	socklen_t ol = sizeof(off);
	int fd = xsk_umem__fd(g.umem);

	if (fd >= 0 && g.umem_fill.ring && getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &ol) == 0 && ol == sizeof(off)) {
		munmap((uint8_t *)g.umem_fill.ring - off.fr.desc, off.fr.desc + RING_SIZE * sizeof(__u64));
		munmap((uint8_t *)g.umem_comp.ring - off.cr.desc, off.cr.desc + RING_SIZE * sizeof(__u64));
	}
	xsk_umem__delete(g.umem);
	g.umem = NULL;
	memset(&g.umem_fill, 0, sizeof(g.umem_fill));
	memset(&g.umem_comp, 0, sizeof(g.umem_comp));
}

static void close_sockets(void)
{
	/* shared sockets first: the first one holds the UMEM */
	for (uint32_t i = g.nxq; i-- > 0;) {
		if (g.xqs[i]->xsk)
			xsk_socket__delete(g.xqs[i]->xsk);
		free(g.xqs[i]);
		g.xqs[i] = NULL;
	}
	for (uint32_t p = 0; p < g.nports; p++)
		g.ports[p].nq = 0;
	g.nxq = 0;
	g.nrx = 0;
	if (g.umem && xsk_umem__delete(g.umem) == 0)
		g.umem = NULL;
}

/*
 * Create every socket in one mode. Returns 0, or -errno with *why naming the step and port (the
 * caller retries in copy mode, or reports it).
 */
static int open_sockets(int zerocopy, char *why, size_t whylen)
{
	struct xsk_umem_config uc = {
		.fill_size = RING_SIZE,
		.comp_size = RING_SIZE,
		.frame_size = g.pool->buf_size,
		.frame_headroom = 0,
		.flags = 0,
	};
	int err = xsk_umem__create(&g.umem, g.pool->base, g.pool->size, &g.umem_fill, &g.umem_comp, &uc);

	if (err) {
		g.umem = NULL;
		snprintf(why, whylen, "registering the pool (%zu bytes, %u-byte chunks) as UMEM: %s", g.pool->size, g.pool->buf_size,
			 strerror(-err));
		return err;
	}
	for (uint32_t pi = 0; pi < g.nports; pi++) {
		struct port *p = &g.ports[pi];
		uint32_t nq = p->map_path ? queue_count(p->ifname) : 1;

		for (uint32_t q = 0; q < nq; q++) {
			struct xq *x = (struct xq *)calloc(1, sizeof(*x));
			struct xsk_socket_config sc = {
				.rx_size = RING_SIZE,
				.tx_size = RING_SIZE,
				.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
				.xdp_flags = 0,
				.bind_flags = (uint16_t)((zerocopy ? XDP_ZEROCOPY : XDP_COPY) | XDP_USE_NEED_WAKEUP),
			};
			int first = g.nxq == 0;

			if (!x) {
				snprintf(why, whylen, "out of memory");
				return -ENOMEM;
			}
			x->port = p;
			x->queue = q;
			x->rx_on = p->map_path != NULL;
			err = xsk_socket__create_shared(&x->xsk, p->ifname, q, g.umem, x->rx_on ? &x->rx : NULL, &x->tx,
							first ? &g.umem_fill : &x->fill, first ? &g.umem_comp : &x->comp, &sc);
			if (err) {
				x->xsk = NULL;
				free(x);
				snprintf(why, whylen, "%s queue %u: bind: %s", p->ifname, q, strerror(-err));
				if (first)
					drop_umem();
				return err;
			}
			if (first) {
				/* libxdp copied nothing for the first socket: its rings are the UMEM's */
				x->fill = g.umem_fill;
				x->comp = g.umem_comp;
			}
			x->fd = xsk_socket__fd(x->xsk);
			p->q[p->nq++] = x;
			g.xqs[g.nxq++] = x;
			g.nrx += (uint32_t)x->rx_on;
		}
	}
	return 0;
}
/* --- main --- */

static void say_ready(void)
{
	const char *v = getenv("BPFCTL_READY_FD");
	int fd = v && *v ? atoi(v) : 3;
	char line[1024];
	int n = snprintf(line, sizeof(line), "ready pktio 0 %u ports=", g.pid);

	for (uint32_t i = 0; i < g.nports && n < (int)sizeof(line) - 40; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%s%s:%s", i ? "," : "", g.ports[i].ifname, g.zerocopy ? "zerocopy" : "copy");
	n += snprintf(line + n, sizeof(line) - (size_t)n, " queues=%u\n", g.nrx);
	if (fd >= 0 && fcntl(fd, F_GETFD) >= 0) {
		if (write(fd, line, (size_t)n) < 0)
			fprintf(stderr, "pktio: ready fd %d: %s\n", fd, strerror(errno));
		close(fd);
	}
}

int main(int argc, char **argv)
{
	const char *pool_path;
	long fill;
	char why[256], why_zc[256];
	sigset_t sigs;

	parse_args(argc, argv, &pool_path, &fill);
	g.pid = (uint32_t)getpid();
	/* the threads never see SIGTERM: main waits for it and stops them in order */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	g.pool = bpfctl_pool_open(pool_path);
	if (!g.pool)
		die("cannot open pool %s: %s", pool_path, strerror(errno));
	int err = bpfctl_plane_open(&g.plane, g.pool);

	if (err)
		die("pool %s: %s", pool_path, err == -ENOENT ? "has no packet plane" : err == -EPROTO ? "no packet plane of this version" : "packet plane sizes disagree with the pool");
	struct bpfctl_ring r0 = ring0();
	uint32_t other = bpfctl_ring_take_consumer(&r0, g.pid);

	if (other)
		die("ring 0 (transmit) is consumed by pid %u, which is alive: another pktio on this pool", other);
	if (g.pool->buf_size != 2048 && g.pool->buf_size != 4096)
		die("pool %s: buffer size %u cannot be an AF_XDP chunk (2048 or 4096)", pool_path, g.pool->buf_size);
	g.gen_of = (uint32_t *)calloc(g.pool->buf_count, sizeof(uint32_t));
	g.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!g.gen_of || g.stop_fd < 0)
		die("out of memory");
	for (uint32_t i = 0; i < g.nports; i++) {
		struct port *p = &g.ports[i];

		if (p->id >= g.plane.nports)
			die("port %u (%s): the plane has %u ports", p->id, p->ifname, g.plane.nports);
		p->entry = &g.plane.ports[p->id];
		g.port_by_id[p->id] = p;
		p->base_dropped = atomic_load(&p->entry->rx_dropped);
		p->base_full = atomic_load(&p->entry->rx_ring_full);
		p->base_empty = atomic_load(&p->entry->rx_fill_empty);
		/* a pktio that died left its gauge behind; what it held was reclaimed with it */
		atomic_store(&p->entry->posted, 0);
		p->ifindex = (int)if_nametoindex(p->ifname);
		if (!p->ifindex)
			die("%s: no such interface in this network namespace", p->ifname);
		if (p->map_path) {
			p->map_fd = bpf_obj_get(p->map_path);
			if (p->map_fd < 0)
				die("%s: xskmap %s: %s", p->ifname, p->map_path, strerror(errno));
		}
	}

	/*
	 * Zero-copy first; a refusal anywhere (veth has no zero-copy) means copy mode for all. EBUSY
	 * is retried for a second: the kernel releases a closed socket's queue from a work item, so
	 * the queues of a pktio that just exited (a restart) are busy for a moment.
	 */
	for (uint64_t give_up = now_ns() + 1000000000ull;;) {
		err = open_sockets(1, why_zc, sizeof(why_zc));
		if (!err) {
			g.zerocopy = 1;
			break;
		}
		close_sockets();
		err = open_sockets(0, why, sizeof(why));
		if (!err)
			break;
		close_sockets();
		if (err != -EBUSY || now_ns() > give_up)
			die("%s", why);
		usleep(20000);
	}
	g.fill_target = fill ? (uint32_t)fill : g.pool->buf_count / 4 / (g.nrx ? g.nrx : 1);
	if (g.fill_target > RING_SIZE)
		g.fill_target = RING_SIZE;
	if (g.fill_target < 1)
		g.fill_target = 1;

	/* fill first, then publish the sockets: a steered frame finds a buffer */
	for (uint32_t i = 0; i < g.nxq; i++)
		if (g.xqs[i]->rx_on)
			refill(g.xqs[i]);
	for (uint32_t pi = 0; pi < g.nports; pi++) {
		struct port *p = &g.ports[pi];

		for (uint32_t q = 0; p->map_path && q < p->nq; q++) {
			if (bpf_map_update_elem(p->map_fd, &q, &p->q[q]->fd, 0)) {
				int e = errno;

				close_sockets();
				free_mine();
				die("%s queue %u: xskmap %s: %s", p->ifname, q, p->map_path, strerror(e));
			}
		}
		if (!p->entry->ifindex)
			p->entry->ifindex = (uint32_t)p->ifindex;
		atomic_store_explicit(&p->entry->nqueues, p->nq, memory_order_relaxed);
		atomic_store_explicit(&p->entry->flags, BPFCTL_PKT_PORT_BOUND | (g.zerocopy ? BPFCTL_PKT_PORT_ZEROCOPY : 0), memory_order_release);
	}

	pthread_t rx, tx;

	if (pthread_create(&rx, NULL, rx_thread, NULL) || pthread_create(&tx, NULL, tx_thread, NULL))
		die("cannot start threads");
	say_ready();

	int sig;

	sigwait(&sigs, &sig);
	atomic_store(&g.stop, 1);
	uint64_t one = 1;

	if (write(g.stop_fd, &one, sizeof(one)) < 0) {
		/* the RX thread's poll times out within 200 ms anyway */
	}
	bpfctl_ring_kick(&r0);
	pthread_join(rx, NULL);
	pthread_join(tx, NULL);

	for (uint32_t pi = 0; pi < g.nports; pi++) {
		atomic_store_explicit(&g.ports[pi].entry->flags, 0, memory_order_release);
		if (g.ports[pi].map_fd >= 0)
			close(g.ports[pi].map_fd);
	}
	/* closing the sockets takes them out of the xskmaps and makes the kernel let go of the UMEM */
	close_sockets();
	free_mine();
	for (uint32_t pi = 0; pi < g.nports; pi++)
		atomic_store_explicit(&g.ports[pi].entry->posted, 0, memory_order_relaxed);
	bpfctl_pool_close(g.pool);
	return 0;
}
