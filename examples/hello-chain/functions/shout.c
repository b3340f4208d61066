// SPDX-License-Identifier: MIT
/*
 * A function in C: upper-cases the payload in place and adds "!" (the C twin of upper.ts, so a
 * chain can mix both). Built by src/runtime/c/build.ts; the supervisor runs the executable with
 * the environment described in bpf/include/bpfctl/fn.h.
 */
#include <stdint.h>

#include "bpfctl/fn.h"

static int shout(struct bpfctl_fn_req *req, void *ctx)
{
	(void)ctx;
	if (req->len >= req->cap)
		return bpfctl_fn_errorf(req, 413, "no room for the '!'");
	for (uint32_t i = 0; i < req->len; i++) {
		if (req->data[i] >= 'a' && req->data[i] <= 'z')
			req->data[i] = (uint8_t)(req->data[i] - 'a' + 'A');
	}
	req->data[req->len] = '!';
	return (int)req->len + 1;
}

int main(void)
{
	return bpfctl_fn_run(shout, 0);
}
