// SPDX-License-Identifier: MIT
/*
 * pktio: the AF_XDP process of a policy's packet chains (docs/packet-chains.md). It owns every
 * AF_XDP socket; the UMEM is the pool mapping itself (UMEM address == pool offset, chunk == pool
 * buffer), so a received frame is already in a pool buffer every chain process can see.
 *
 *   pktio --pool PATH --port ID:IFNAME[:XSKMAP_PIN] [--port ...] [--fill N]
 *
 *   --pool   the pool file (with a packet plane; the supervisor created both)
 *   --port   port ID (its index in the plane's port table) on interface IFNAME. With an xskmap pin
 *            path the port is an ingress port: one socket per RX queue, each put into that map
 *            under its queue id, where the classifier redirects steered frames. Without one it
 *            only transmits (one socket, queue 0).
 *   --fill   buffers to keep in each RX queue's fill ring (default: a quarter of the pool shared
 *            among the RX queues, at most 2048)
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
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/if_xdp.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <xdp/xsk.h>

#include "bpfctl/packet.h"

#define MAX_QUEUES 64
#define RING_SIZE 2048 /* every AF_XDP ring: rx, tx, fill, completion */
#define BATCH 64
#define STATS_EVERY_NS 250000000ull

struct xq {
	struct xsk_socket *xsk;
	struct xsk_ring_cons rx;
	struct xsk_ring_prod tx;
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp;
	struct port *port;
	uint32_t queue;
	int fd;
	int rx_on;             /* an RX socket: has fill buffers, sits in the xskmap */
	uint32_t in_kernel;    /* buffers in its fill ring or the kernel's hands on RX (RX thread) */
	uint32_t tx_pending;   /* submitted for transmission, not completed (TX thread) */
};

struct port {
	uint32_t id;
	char ifname[IF_NAMESIZE];
	const char *map_path;
	int ifindex;
	int map_fd;
	uint32_t nq;
	struct xq *q[MAX_QUEUES];
	struct bpfctl_port_entry *entry;
	/* the kernel's counters start at 0 with every socket: the port's go on from where they were */
	uint64_t base_dropped, base_full, base_empty;
};

static struct {
	struct bpfctl_pool *pool;
	struct bpfctl_plane plane;
	struct port ports[BPFCTL_PKT_MAX_PORTS];
	uint32_t nports;
	struct xq *xqs[BPFCTL_PKT_MAX_PORTS * MAX_QUEUES];
	uint32_t nxq;
	uint32_t nrx;
	struct xsk_umem *umem;
	struct xsk_ring_prod umem_fill; /* the first socket's rings (xsk_umem__create) */
	struct xsk_ring_cons umem_comp;
	int zerocopy;
	uint32_t fill_target;
	uint32_t pid;
	uint32_t *gen_of; /* generation of each buffer while pktio holds it */
	_Atomic int stop;
	int stop_fd; /* eventfd: wakes the RX thread's poll() */
} g;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "pktio: %s\n", line);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct bpfctl_ring ring0(void) { return bpfctl_plane_ring(&g.plane, 0); }

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
	fprintf(stderr, "usage: pktio --pool PATH --port ID:IFNAME[:XSKMAP_PIN] [--port ...] [--fill N]\n");
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

/* --- buffers --- */

/* Top up one RX socket's fill ring from the pool. Returns 0 when the pool ran dry. */
static int refill(struct xq *x)
{
	uint32_t idx[BATCH], gen[BATCH], at;
	int ok = 1;

	while (x->in_kernel < g.fill_target) {
		uint32_t want = g.fill_target - x->in_kernel;

		if (want > BATCH)
			want = BATCH;
		want = xsk_prod_nb_free(&x->fill, want) < want ? xsk_prod_nb_free(&x->fill, want) : want;
		if (!want)
			break;
		uint32_t got = bpfctl_pool_alloc_bulk(g.pool, g.pid, idx, gen, want);

		if (!got) {
			ok = 0;
			break;
		}
		if (xsk_ring_prod__reserve(&x->fill, got, &at) != got) {
			/* cannot happen (we checked the room); give them back rather than lose them */
			bpfctl_pool_free_bulk(g.pool, idx, gen, got);
			break;
		}
		for (uint32_t i = 0; i < got; i++) {
			uint32_t off = bpfctl_plane_buf_off(&g.plane, idx[i]);

			g.gen_of[idx[i]] = gen[i];
			/*
			 * No chain word where the classifier's would go: a frame that arrives untagged (a
			 * driver without room for metadata) must not find an old one from the buffer's
			 * last use and be taken for a chain's.
			 */
			memset(g.pool->base + off + BPFCTL_PKT_HEADROOM - 4, 0, 4);
			*xsk_ring_prod__fill_addr(&x->fill, at + i) = off;
		}
		xsk_ring_prod__submit(&x->fill, got);
		x->in_kernel += got;
		atomic_fetch_add_explicit(&x->port->entry->posted, got, memory_order_relaxed);
		if (got < want) {
			ok = 0;
			break;
		}
	}
	return ok;
}

/* Free every buffer this process owns (at exit: fill rings, unfinished transmissions). */
static uint32_t free_mine(void)
{
	uint32_t idx[BATCH], gen[BATCH], n = 0, total = 0;

	for (uint32_t i = 0; i < g.pool->buf_count; i++) {
		struct bpfctl_pool_meta *m = &g.pool->meta[i];
		uint64_t gs = atomic_load_explicit(&m->gen_state, memory_order_acquire);

		if (atomic_load_explicit(&m->owner, memory_order_relaxed) != g.pid || BPFCTL_POOL_STATE(gs) != BPFCTL_POOL_STATE_IN_USE)
			continue;
		idx[n] = i;
		gen[n] = BPFCTL_POOL_GEN(gs);
		if (++n == BATCH) {
			total += bpfctl_pool_free_bulk(g.pool, idx, gen, n);
			n = 0;
		}
	}
	if (n)
		total += bpfctl_pool_free_bulk(g.pool, idx, gen, n);
	return total;
}

/* --- RX --- */

static void rx_batch(struct xq *x, struct bpfctl_chain_delta *cd)
{
	struct bpfctl_pkt_desc d[BATCH];
	struct bpfctl_free_batch fb;
	struct bpfctl_route_result res;
	uint32_t at, n = xsk_ring_cons__peek(&x->rx, BATCH, &at), k = 0, no_chain = 0;
	struct port *p = x->port;

	if (!n)
		return;
	fb.n = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct xdp_desc *xd = xsk_ring_cons__rx_desc(&x->rx, at + i);
		uint32_t addr = (uint32_t)xd->addr;
		int64_t bi = bpfctl_plane_buf_index(&g.plane, addr);
		struct bpfctl_pkt_desc *o = &d[k];

		if (bi < 0)
			continue; /* not a pool buffer: the kernel would never; nothing to free */
		o->addr = addr;
		o->gen = g.gen_of[bi];
		o->len = (uint16_t)xd->len;
		o->hop = 0;
		o->port = (uint8_t)p->id;
		o->flags = 0;
		o->chain = 0;
		/* the classifier's word sits right in front of the frame (XDP metadata) */
		uint32_t word = 0, lead = addr - bpfctl_plane_buf_off(&g.plane, (uint32_t)bi);

		if (lead >= 4)
			memcpy(&word, g.pool->base + addr - 4, 4);
		uint32_t chain = word & 0xffffu;
		int ok = (word & BPFCTL_PKT_META_MASK) == BPFCTL_PKT_META_TAG && chain < g.plane.nchains;

		if (ok) {
			struct bpfctl_chain_entry *c = &g.plane.chains[chain];

			ok = atomic_load_explicit(&c->nhops, memory_order_acquire) > 0 ||
			     atomic_load_explicit(&c->egress_kind, memory_order_relaxed) == BPFCTL_PKT_EGRESS_TX;
		}
		if (!ok) {
			no_chain++;
			bpfctl_free_batch_add(&g.plane, &fb, o);
			continue;
		}
		o->chain = (uint8_t)chain;
		o->hash = bpfctl_flow_hash(g.pool->base + addr, o->len);
		BPFCTL_CHAIN_ADD(cd, in, chain, 1);
		k++;
	}
	xsk_ring_cons__release(&x->rx, n);
	x->in_kernel -= n;
	atomic_fetch_sub_explicit(&p->entry->posted, n, memory_order_relaxed);
	bpfctl_free_batch_flush(&g.plane, &fb);
	bpfctl_pkt_route(&g.plane, d, k, &res, cd);
	bpfctl_chain_delta_flush(&g.plane, cd);
	bpfctl_counter_add(&p->entry->rx, n);
	bpfctl_counter_add(&p->entry->no_chain, no_chain + res.no_instance + res.invalid + res.dropped);
	bpfctl_counter_add(&p->entry->lost, res.ring_full);
}

/* The kernel's own counters, summed over each port's sockets. */
static void copy_stats(void)
{
	for (uint32_t pi = 0; pi < g.nports; pi++) {
		struct port *p = &g.ports[pi];
		uint64_t dropped = 0, full = 0, empty = 0;

		for (uint32_t q = 0; q < p->nq; q++) {
			struct xdp_statistics st;
			socklen_t len = sizeof(st);

			if (getsockopt(p->q[q]->fd, SOL_XDP, XDP_STATISTICS, &st, &len) == 0) {
				dropped += st.rx_dropped;
				full += st.rx_ring_full;
				empty += st.rx_fill_ring_empty_descs;
			}
		}
		atomic_store_explicit(&p->entry->rx_dropped, p->base_dropped + dropped, memory_order_relaxed);
		atomic_store_explicit(&p->entry->rx_ring_full, p->base_full + full, memory_order_relaxed);
		atomic_store_explicit(&p->entry->rx_fill_empty, p->base_empty + empty, memory_order_relaxed);
	}
}

static void *rx_thread(void *arg)
{
	struct pollfd pfd[BPFCTL_PKT_MAX_PORTS * MAX_QUEUES + 1];
	struct xq *rxq[BPFCTL_PKT_MAX_PORTS * MAX_QUEUES];
	static struct bpfctl_chain_delta cd;
	uint32_t n = 0;
	uint64_t next_stats = 0;

	(void)arg;
	for (uint32_t i = 0; i < g.nxq; i++) {
		if (!g.xqs[i]->rx_on)
			continue;
		rxq[n] = g.xqs[i];
		pfd[n].fd = g.xqs[i]->fd;
		pfd[n].events = POLLIN;
		n++;
	}
	pfd[n].fd = g.stop_fd;
	pfd[n].events = POLLIN;
	while (!atomic_load_explicit(&g.stop, memory_order_relaxed)) {
		int starving = 0, busy = 0;

		for (uint32_t i = 0; i < n; i++) {
			struct xq *x = rxq[i];

			starving |= !refill(x);
			if (xsk_cons_nb_avail(&x->rx, 1)) {
				rx_batch(x, &cd);
				busy = 1;
			}
			/* zero-copy drivers may need a nudge to use new fill entries */
			if (g.zerocopy && xsk_ring_prod__needs_wakeup(&x->fill))
				recvfrom(x->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		}
		uint64_t t = now_ns();

		if (t >= next_stats) {
			copy_stats();
			next_stats = t + STATS_EVERY_NS;
		}
		/* drain while frames keep coming; block only when every RX ring is empty */
		if (!busy)
			poll(pfd, n + 1, starving ? 10 : 200);
	}
	copy_stats();
	return NULL;
}

/* --- TX --- */

static void reap(struct xq *x, struct bpfctl_free_batch *fb)
{
	uint32_t at, n;

	while ((n = xsk_ring_cons__peek(&x->comp, BATCH, &at)) > 0) {
		for (uint32_t i = 0; i < n; i++) {
			uint32_t addr = (uint32_t)*xsk_ring_cons__comp_addr(&x->comp, at + i);
			int64_t bi = bpfctl_plane_buf_index(&g.plane, addr);

			if (bi < 0)
				continue;
			if (fb->n == 64)
				bpfctl_free_batch_flush(&g.plane, fb);
			fb->idx[fb->n] = (uint32_t)bi;
			fb->gen[fb->n] = g.gen_of[bi];
			fb->n++;
		}
		xsk_ring_cons__release(&x->comp, n);
		x->tx_pending -= n;
		atomic_fetch_sub_explicit(&x->port->entry->posted, n, memory_order_relaxed);
	}
}

/*
 * Make the kernel transmit what is in the TX ring. Copy mode transmits inside sendto(), a bounded
 * number per call (EAGAIN: more to do, or the completion ring is full: reap and go on).
 */
static void kick(struct xq *x, struct bpfctl_free_batch *fb)
{
	if (g.zerocopy && !xsk_ring_prod__needs_wakeup(&x->tx))
		return;
	for (int i = 0; i < 128; i++) {
		int rc = (int)sendto(x->fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
		int e = rc < 0 ? errno : 0;

		reap(x, fb);
		/* zero-copy: the driver transmits on its own now; copy mode: done when the ring is taken */
		if ((g.zerocopy && rc >= 0) || __atomic_load_n(x->tx.consumer, __ATOMIC_ACQUIRE) == x->tx.cached_prod)
			return;
		/* ENETDOWN and the like: the frames wait in the TX ring for a later kick */
		if (rc < 0 && e != EAGAIN && e != EBUSY && e != ENOBUFS && e != EINTR)
			return;
	}
}

static int tx_sock_ok(const struct port *p) { return p && p->nq > 0; }

static void tx_batch(struct bpfctl_pkt_desc *d, uint32_t n, struct bpfctl_free_batch *fb, struct bpfctl_chain_delta *cd)
{
	struct port *byid[BPFCTL_PKT_MAX_PORTS] = { 0 };
	uint8_t done[BATCH] = { 0 };

	for (uint32_t i = 0; i < g.nports; i++)
		byid[g.ports[i].id] = &g.ports[i];
	for (uint32_t i = 0; i < n; i++) {
		if (!bpfctl_plane_desc_ok(&g.plane, &d[i])) {
			/* stale: its buffer is not ours to touch or free */
			done[i] = 1;
			if (d[i].chain < g.plane.nchains)
				BPFCTL_CHAIN_ADD(cd, lost, d[i].chain, 1);
			continue;
		}
		bpfctl_plane_set_owner(&g.plane, d[i].addr, g.pid);
		g.gen_of[bpfctl_plane_buf_index(&g.plane, d[i].addr)] = d[i].gen;
	}
	/* one reserve, one submit and one kick per port */
	for (uint32_t i = 0; i < n; i++) {
		if (done[i])
			continue;
		struct port *p = d[i].port < BPFCTL_PKT_MAX_PORTS ? byid[d[i].port] : NULL;
		uint32_t sel[BATCH], k = 0;

		for (uint32_t j = i; j < n; j++) {
			if (!done[j] && d[j].port == d[i].port) {
				done[j] = 1;
				if (d[j].len >= 14)
					sel[k++] = j;
				else { /* the kernel would drop it without a completion: never submit it */
					if (p)
						bpfctl_counter_add(&p->entry->tx_fail, 1);
					BPFCTL_CHAIN_ADD(cd, lost, d[j].chain, 1);
					bpfctl_free_batch_add(&g.plane, fb, &d[j]);
				}
			}
		}
		uint32_t sent = 0, at;

		if (tx_sock_ok(p) && k) {
			struct xq *x = p->q[0];
			uint32_t room;

			reap(x, fb);
			room = xsk_prod_nb_free(&x->tx, k);
			if (room < k) {
				kick(x, fb);
				room = xsk_prod_nb_free(&x->tx, k);
			}
			sent = room < k ? room : k;
			if (sent && xsk_ring_prod__reserve(&x->tx, sent, &at) == sent) {
				for (uint32_t j = 0; j < sent; j++) {
					struct xdp_desc *xd = xsk_ring_prod__tx_desc(&x->tx, at + j);

					xd->addr = d[sel[j]].addr;
					xd->len = d[sel[j]].len;
					xd->options = 0;
					BPFCTL_CHAIN_ADD(cd, out, d[sel[j]].chain, 1);
				}
				xsk_ring_prod__submit(&x->tx, sent);
				x->tx_pending += sent;
				atomic_fetch_add_explicit(&p->entry->posted, sent, memory_order_relaxed);
				bpfctl_counter_add(&p->entry->tx, sent);
				kick(x, fb);
			} else {
				sent = 0;
			}
		}
		for (uint32_t j = sent; j < k; j++) {
			if (p)
				bpfctl_counter_add(&p->entry->tx_fail, 1);
			BPFCTL_CHAIN_ADD(cd, lost, d[sel[j]].chain, 1);
			bpfctl_free_batch_add(&g.plane, fb, &d[sel[j]]);
		}
	}
}

static uint32_t tx_pending(void)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < g.nports; i++)
		if (g.ports[i].nq)
			n += g.ports[i].q[0]->tx_pending;
	return n;
}

static void *tx_thread(void *arg)
{
	struct bpfctl_ring r0 = ring0();
	struct bpfctl_pkt_desc d[BATCH];
	struct bpfctl_free_batch fb;
	static struct bpfctl_chain_delta cd;
	uint64_t deadline = 0;

	(void)arg;
	fb.n = 0;
	for (;;) {
		uint32_t n = bpfctl_ring_pop(&r0, d, BATCH);

		if (n) {
			tx_batch(d, n, &fb, &cd);
		} else {
			for (uint32_t i = 0; i < g.nports; i++)
				if (g.ports[i].nq)
					reap(g.ports[i].q[0], &fb);
		}
		bpfctl_free_batch_flush(&g.plane, &fb);
		bpfctl_chain_delta_flush(&g.plane, &cd);
		if (atomic_load_explicit(&g.stop, memory_order_relaxed)) {
			/* what is queued goes out, then its completions come back: briefly, then done */
			if (!deadline)
				deadline = now_ns() + 300000000ull;
			if ((n == 0 && tx_pending() == 0) || now_ns() > deadline)
				break;
		}
		if (n)
			continue;
		/* unfinished transmissions: look again soon for their completions */
		bpfctl_ring_wait(&r0, tx_pending() ? 1 : 250);
	}
	uint32_t me = g.pid;

	atomic_compare_exchange_strong(&r0.hdr->consumer_pid, &me, 0);
	return NULL;
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
