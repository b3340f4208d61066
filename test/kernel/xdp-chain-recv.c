/*
 * Test helper: what pktio sees of a steered frame. Binds a copy-mode AF_XDP socket to <ifname>
 * queue <queue>, puts it in the pinned xskmap <map> (a classifier's xsk_chains) under that queue,
 * and reports each frame it receives with the 4-byte XDP metadata word in front of it, where the
 * classifier's chain action writes 0xBFC70000 | chain id. Built by test/kernel/xdp-chain.test.ts
 * (cc ... -lxdp -lbpf); run inside the interface's namespace (nsenter --net=...).
 *
 * The UMEM starts zeroed and every chunk is used once, so a word found there was written for
 * that frame (a recycled chunk could still hold the previous frame's word).
 *
 * Prints "ready" once the socket is in the map, then one line per frame:
 * "frame <len> <udp dport> <meta word, hex>", and exits after <count> frames or <timeout_ms>.
 *
 * usage: xdp-chain-recv IFNAME QUEUE MAP_PATH COUNT TIMEOUT_MS
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <bpf/bpf.h>
#include <xdp/xsk.h>

#define NUM_FRAMES 4096
#define FRAME_SIZE XSK_UMEM__DEFAULT_FRAME_SIZE

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp, rx;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_socket_config cfg = {
		.rx_size = XSK_RING_CONS__DEFAULT_NUM_DESCS,
		.tx_size = 0,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.xdp_flags = 0,
		.bind_flags = XDP_COPY,
	};
	void *area;
	__u32 idx, queue;
	int map_fd, xsk_fd, err, want, got = 0, timeout;
	long long deadline;

	if (argc != 6) {
		fprintf(stderr, "usage: %s IFNAME QUEUE MAP_PATH COUNT TIMEOUT_MS\n", argv[0]);
		return 2;
	}
	queue = atoi(argv[2]);
	want = atoi(argv[4]);
	timeout = atoi(argv[5]);
	if (want > XSK_RING_PROD__DEFAULT_NUM_DESCS) {
		fprintf(stderr, "at most %d frames: each chunk is used once\n", XSK_RING_PROD__DEFAULT_NUM_DESCS);
		return 2;
	}

	area = mmap(NULL, NUM_FRAMES * FRAME_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	err = xsk_umem__create(&umem, area, NUM_FRAMES * FRAME_SIZE, &fill, &comp, NULL);
	if (err) {
		fprintf(stderr, "xsk_umem__create: %s\n", strerror(-err));
		return 1;
	}
	err = xsk_socket__create(&xsk, argv[1], queue, umem, &rx, NULL, &cfg);
	if (err) {
		fprintf(stderr, "xsk_socket__create(%s, %u): %s\n", argv[1], queue, strerror(-err));
		return 1;
	}
	/* Every chunk once, and never back to the fill ring: no chunk holds an older frame's word. */
	if (xsk_ring_prod__reserve(&fill, XSK_RING_PROD__DEFAULT_NUM_DESCS, &idx) != XSK_RING_PROD__DEFAULT_NUM_DESCS) {
		fprintf(stderr, "fill ring reserve failed\n");
		return 1;
	}
	for (int i = 0; i < XSK_RING_PROD__DEFAULT_NUM_DESCS; i++)
		*xsk_ring_prod__fill_addr(&fill, idx++) = (__u64)i * FRAME_SIZE;
	xsk_ring_prod__submit(&fill, XSK_RING_PROD__DEFAULT_NUM_DESCS);

	map_fd = bpf_obj_get(argv[3]);
	if (map_fd < 0) {
		fprintf(stderr, "bpf_obj_get(%s): %s\n", argv[3], strerror(errno));
		return 1;
	}
	xsk_fd = xsk_socket__fd(xsk);
	if (bpf_map_update_elem(map_fd, &queue, &xsk_fd, 0)) {
		fprintf(stderr, "xskmap update: %s\n", strerror(errno));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);

	deadline = now_ms() + timeout;
	while (got < want && now_ms() < deadline) {
		struct pollfd pfd = { .fd = xsk_fd, .events = POLLIN };
		__u32 n, rx_idx;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		n = xsk_ring_cons__peek(&rx, 64, &rx_idx);
		for (__u32 i = 0; i < n; i++) {
			const struct xdp_desc *d = xsk_ring_cons__rx_desc(&rx, rx_idx + i);
			const unsigned char *pkt = xsk_umem__get_data(area, d->addr);
			/* Ethernet + IPv4 without options + UDP: the destination port sits at 36. */
			unsigned dport = d->len >= 38 ? (pkt[36] << 8 | pkt[37]) : 0;
			__u32 meta;

			memcpy(&meta, pkt - sizeof(meta), sizeof(meta));
			printf("frame %u %u %08x\n", d->len, dport, meta);
			got++;
		}
		xsk_ring_cons__release(&rx, n);
		fflush(stdout);
	}
	/* Leave the map as we found it: the socket's slot empties when the socket closes anyway. */
	bpf_map_delete_elem(map_fd, &queue);
	xsk_socket__delete(xsk);
	xsk_umem__delete(umem);
	printf("done %d\n", got);
	return got >= want ? 0 : 3;
}
