// SPDX-License-Identifier: MIT
/*
 * The default runtime of a C packet function (API: bpf/include/bpfctl/packet.h): the user's
 * handler file defines bpfctl_nf_batch (and optionally bpfctl_nf_init / bpfctl_nf_fini); this
 * main attaches to the instance's ring from the environment the supervisor set, says ready on
 * fd 3, and loops recv -> batch -> send. SIGTERM: the ring is drained (its frames handled and
 * passed on), then the process exits 0. Errors: one line on stderr naming the function, exit 2.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bpfctl/packet.h"

/* Optional hooks: a handler that does not define them gets none (weak, so the link resolves to 0). */
#pragma weak bpfctl_nf_init
#pragma weak bpfctl_nf_fini

int main(void)
{
	struct bpfctl_pkt pkts[BPFCTL_NF_BATCH];
	struct bpfctl_nf *nf = bpfctl_nf_open_env();
	unsigned n;

	if (!nf)
		return 2;
	if (bpfctl_nf_init && bpfctl_nf_init(nf) != 0) {
		/* the handler said why; a restart would fail the same way, but the supervisor decides */
		bpfctl_nf_close(nf);
		return 2;
	}
	bpfctl_nf_ready(nf);
	while ((n = bpfctl_nf_recv(nf, pkts, BPFCTL_NF_BATCH)) > 0) {
		bpfctl_nf_batch(nf, pkts, n);
		bpfctl_nf_send(nf, pkts, n);
	}
	if (bpfctl_nf_fini)
		bpfctl_nf_fini(nf);
	bpfctl_nf_close(nf);
	return 0;
}
