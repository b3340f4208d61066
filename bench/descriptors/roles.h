/* SPDX-License-Identifier: MIT */
/* The three hop processes' loops: the same code for every transport. */
#ifndef DESCBENCH_ROLES_H
#define DESCBENCH_ROLES_H

#include "transport.h"

/*
 * Sends batches of DB_BATCH descriptors, each naming a frame buffer whose first 8 bytes it stamps
 * with the send time: flat out (rate 0) or `rate` descriptors/s, within the window (layout.h).
 */
void db_producer(struct db_ctl *c, uint8_t *base, struct db_ep *out, uint64_t rate);

/* Receives, moves each descriptor to the next hop (hop + 1, as packet.h's senders do), sends. */
void db_middle(struct db_ctl *c, struct db_ep *in, struct db_ep *out);

/* Receives, checks order and hop, histograms stamp-to-now while measuring, frees the window. */
void db_consumer(struct db_ctl *c, uint8_t *base, struct db_ep *in);

/* Records the first failure (one line) for the launcher and exits the process. */
void db_fail(struct db_ctl *c, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

#endif
