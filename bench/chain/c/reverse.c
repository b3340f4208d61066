// SPDX-License-Identifier: MIT
/* Hop 2 of the chain bench in C: the payload reversed in place (the twin of reverse() in ../work.ts). */
#include <stdint.h>

#include "bpfctl/fn.h"

static int reverse(struct bpfctl_fn_req *req, void *ctx)
{
	(void)ctx;
	if (req->len == 0)
		return 0;
	for (uint32_t i = 0, j = req->len - 1; i < j; i++, j--) {
		uint8_t t = req->data[i];

		req->data[i] = req->data[j];
		req->data[j] = t;
	}
	return (int)req->len;
}

int main(void)
{
	return bpfctl_fn_run(reverse, 0);
}
