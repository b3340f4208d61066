// SPDX-License-Identifier: MIT
/*
 * pktio's shared state and the functions its two files share: pktio.c sets up (arguments,
 * sockets, the xskmaps) and stops; pktio_rxtx.c moves frames (the RX and TX threads, fill rings,
 * completions). See pktio.c for what pktio is.
 */
#ifndef BPFCTL_PKTIO_H
#define BPFCTL_PKTIO_H

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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <xdp/xsk.h>

#include "bpfctl/packet.h"
#include "bpfctl/packet_coalesce.h"

#define MAX_QUEUES 64
#define RING_SIZE 2048 /* every AF_XDP ring: rx, tx, fill, completion */
#define BATCH 64
#define STATS_EVERY_NS 250000000ull
/* --coalesce bound: a longer hold is latency no NIC driver's moderation would add */
#define COALESCE_MAX_US 10000

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

struct pktio {
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
	/* frames the chains may hold at once (0: no limit); beyond it new frames are dropped at RX */
	uint64_t max_in_flight;
	uint32_t pid;
	uint32_t *gen_of; /* generation of each buffer while pktio holds it */
	_Atomic int stop;
	int stop_fd; /* eventfd: wakes the RX thread's poll() */
	/* --coalesce CHAIN:US: how long a chain's frames may wait to share a batch (0: not at all) */
	uint64_t coalesce_ns[BPFCTL_PKT_MAX_CHAINS];
	uint32_t ncoalesce;
	/*
	 * Frames of each coalescing chain waiting in pktio (RX thread only; the rule:
	 * packet_coalesce.h). They are pktio's buffers until handed on: a pktio that dies with them
	 * has them reclaimed with its other buffers, never counted as having entered the chain.
	 */
	struct bpfctl_hold hold[BPFCTL_PKT_MAX_CHAINS];
	struct port *port_by_id[BPFCTL_PKT_MAX_PORTS];
};

extern struct pktio g;

void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline struct bpfctl_ring ring0(void) { return bpfctl_plane_ring(&g.plane, 0); }

/* pktio_rxtx.c */
int refill(struct xq *x);
uint32_t free_mine(void);
void *rx_thread(void *arg);
void *tx_thread(void *arg);

#endif /* BPFCTL_PKTIO_H */
