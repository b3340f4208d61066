// SPDX-License-Identifier: MIT
/* Hop 1 of the chain bench in C: ASCII upper case in place (the twin of upper() in ../work.ts). */
#include <stdint.h>

#include "bpfctl/fn.h"

static int upper(struct bpfctl_fn_req *req, void *ctx)
{
	(void)ctx;
	for (uint32_t i = 0; i < req->len; i++) {
		if (req->data[i] >= 'a' && req->data[i] <= 'z')
			req->data[i] = (uint8_t)(req->data[i] - 'a' + 'A');
	}
	return (int)req->len;
}

int main(void)
{
	return bpfctl_fn_run(upper, 0);
}
