/* SPDX-License-Identifier: MIT */
/*
 * picohttpparser, as libh2o-evloop (Debian's libh2o-evloop-dev, h2o 2.2.5) builds and exports it.
 * Debian ships h2o's headers without deps/picohttpparser/picohttpparser.h, so the four entry
 * points are declared here, exactly as picohttpparser declares them (its API has not changed
 * since 2015). The chunked decoder's struct grew fields in later picohttpparser releases; it is
 * only ever touched through the library, so it lives inside a padded union (gw.h): a library
 * built with a larger struct still writes inside our memory.
 */
#ifndef BPFCTL_GW_PICO_H
#define BPFCTL_GW_PICO_H

#include <stddef.h>
#include <sys/types.h>

struct phr_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* Returns the bytes of the request head, -2 when it is incomplete, -1 when it is malformed. */
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
		      size_t *path_len, int *minor_version, struct phr_header *headers, size_t *num_headers, size_t last_len);

struct phr_chunked_decoder {
	size_t bytes_left_in_chunk;
	char consume_trailer;
	char _hex_count;
	char _state;
};

/*
 * Decodes chunked data in place: on return buf[0..*bufsz) holds the decoded bytes. Returns -2 when
 * more is needed, -1 on malformed input, else the bytes after the end of the body, which follow
 * the decoded ones in buf.
 */
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

#endif
