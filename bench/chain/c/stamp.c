// SPDX-License-Identifier: MIT
/*
 * Hop 3 of the chain bench in C: appends " #" + the payload's 32-bit FNV-1a in hex + "\n" (the
 * twin of stamp() in ../work.ts; the bench compares answers byte for byte).
 */
#include <stdint.h>

#include "bpfctl/fn.h"

#define STAMP_BYTES 11u

static int stamp(struct bpfctl_fn_req *req, void *ctx)
{
	static const char hex[] = "0123456789abcdef";
	uint32_t h = 0x811c9dc5u;
	uint8_t *e;

	(void)ctx;
	if (req->len + STAMP_BYTES > req->cap)
		return bpfctl_fn_errorf(req, 413, "no room for the stamp");
	for (uint32_t i = 0; i < req->len; i++)
		h = (h ^ req->data[i]) * 0x01000193u;
	e = req->data + req->len;
	e[0] = ' ';
	e[1] = '#';
	for (int i = 0; i < 8; i++)
		e[2 + i] = (uint8_t)hex[(h >> (28 - 4 * i)) & 15];
	e[10] = '\n';
	return (int)(req->len + STAMP_BYTES);
}

int main(void)
{
	return bpfctl_fn_run(stamp, 0);
}
