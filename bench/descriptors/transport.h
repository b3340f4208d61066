/* SPDX-License-Identifier: MIT */
/*
 * The four ways a hop hands a batch of descriptors to the next one, behind one send/receive pair
 * so that the hop loops (roles.c) are the same code for every variant:
 *   ring-event  packet_ring.h ring, the consumer sleeps on the ring's futex when it is empty
 *   ring-poll   the same ring, the consumer spins
 *   skmsg       a TCP socket in a sockhash; the sender's sendmsg runs an sk_msg program that
 *               redirects the batch into the next hop's socket's receive queue (BPF_F_INGRESS)
 *   unix        a SOCK_SEQPACKET socketpair per hop
 */
#ifndef DESCBENCH_TRANSPORT_H
#define DESCBENCH_TRANSPORT_H

#include "layout.h"

enum db_transport { DB_RING_EVENT, DB_RING_POLL, DB_SKMSG, DB_UNIX };

struct db_ep {
	enum db_transport t;
	struct bpfctl_ring ring; /* ring variants */
	int fd;                  /* socket variants */
	_Atomic uint32_t *phase;
	struct db_role_stats *st;
	/* TCP has no message boundaries: the bytes of a descriptor a read cut short */
	uint8_t part[16];
	uint32_t npart;
};

/* Hand `n` descriptors on. 0, or -errno (the socket failed). */
int db_ep_send(struct db_ep *e, const struct bpfctl_pkt_desc *d, uint32_t n);

/* Take up to `max` descriptors, waiting as the transport waits. How many; 0 once the phase is DB_STOP; -errno. */
int db_ep_recv(struct db_ep *e, struct bpfctl_pkt_desc *d, uint32_t max);

#endif
