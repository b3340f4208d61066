/* SPDX-License-Identifier: MIT */
/*
 * bpfctl shared-memory buffer pool: the C side (header-only, C11 atomics, no allocation on the
 * hot path). The same file a bpfctl process created with `Pool.create()` / `bpfctl pool create`
 * is mapped here, so C functions and DPDK programs work on buffers in place.
 *
 * Layout (little-endian, byte offsets from the start of the mapping; must match
 * src/runtime/pool/layout.ts, which test/unit/pool-layout.test.ts checks):
 *
 *   0          struct bpfctl_pool_hdr (256 bytes)
 *                0 magic "BPFP"      4 version          8 header_size     12 meta_size
 *               16 buf_size          20 buf_count       24 meta_off       28 data_off
 *               32 total_size (u64)  40 creator_pid     44 backing (1 hugetlbfs, 2 shm, 3 memfd)
 *               64 free_head (u64: index low 32 bits, ABA tag high 32 bits; index ~0 = empty)
 *              128 allocs  136 frees  144 alloc_fails  152 reclaimed  160 refused (u64 counters)
 *   meta_off   buf_count x struct bpfctl_pool_meta (16 bytes): next, owner, gen, state
 *   data_off   buf_count buffers of buf_size bytes (data_off page aligned, buf_size % 64 == 0)
 *
 * Buffers are named by their offset from the start of the mapping (descriptor buf_off) and the
 * generation they had when handed out (buf_gen): processes map the pool at different addresses.
 *
 * Concurrency: the free list is a Treiber stack; its head carries a tag bumped by every push and
 * pop so a stale head loses its CAS (ABA). gen (low half) and state (high half) of a buffer form
 * one 64-bit word: free is one CAS {gen, IN_USE} -> {gen + 1, FREE}, so of two racing frees one
 * wins and a descriptor with an older generation is refused.
 *
 * Limits: a process killed between winning the pop and recording itself as owner (a few
 * instructions) loses that buffer until the pool is recreated; pids are those of the pool
 * creator's pid namespace.
 */
#ifndef BPFCTL_POOL_H
#define BPFCTL_POOL_H

/* mmap/fstat are POSIX: ask for it when nothing else did (only works if included first). */
#if !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define BPFCTL_POOL_MAGIC 0x50465042u /* "BPFP" in memory */
#define BPFCTL_POOL_VERSION 1u
#define BPFCTL_POOL_HEADER_SIZE 256u
#define BPFCTL_POOL_META_SIZE 16u
#define BPFCTL_POOL_NONE 0xffffffffu
#define BPFCTL_POOL_STATE_FREE 0u
#define BPFCTL_POOL_STATE_IN_USE 1u
#define BPFCTL_POOL_BACKING_HUGETLBFS 1u
#define BPFCTL_POOL_BACKING_SHM 2u
#define BPFCTL_POOL_BACKING_MEMFD 3u

struct bpfctl_pool_hdr {
	_Atomic uint32_t magic; /* written last by the creator */
	uint32_t version;
	uint32_t header_size;
	uint32_t meta_size;
	uint32_t buf_size;
	uint32_t buf_count;
	uint32_t meta_off;
	uint32_t data_off;
	uint64_t total_size;
	uint32_t creator_pid;
	uint32_t backing;
	uint32_t ext_off;  /* extension area (the packet plane, packet.h); 0 when there is none */
	uint32_t ext_size; /* its bytes, page aligned start, ends before data_off */
	uint8_t reserved0[8];
	/* alone on its cache line: every alloc/free CASes it */
	_Atomic uint64_t free_head;
	uint8_t reserved1[56];
	_Atomic uint64_t allocs;
	_Atomic uint64_t frees;
	_Atomic uint64_t alloc_fails;
	_Atomic uint64_t reclaimed;
	_Atomic uint64_t refused;
	uint8_t reserved2[88];
};

struct bpfctl_pool_meta {
	_Atomic uint32_t next;  /* next free index while on the free list */
	_Atomic uint32_t owner; /* owning pid, 0 when free */
	/* gen (low 32 bits) | state (high 32 bits): one CAS frees and bumps the generation */
	_Atomic uint64_t gen_state;
};

_Static_assert(sizeof(struct bpfctl_pool_hdr) == BPFCTL_POOL_HEADER_SIZE, "header size");
_Static_assert(offsetof(struct bpfctl_pool_hdr, free_head) == 64, "free_head offset");
_Static_assert(offsetof(struct bpfctl_pool_hdr, ext_off) == 48 && offsetof(struct bpfctl_pool_hdr, ext_size) == 52, "ext offsets");
_Static_assert(offsetof(struct bpfctl_pool_hdr, allocs) == 128, "counters offset");
_Static_assert(sizeof(struct bpfctl_pool_meta) == BPFCTL_POOL_META_SIZE, "meta size");
_Static_assert(sizeof(_Atomic uint64_t) == 8 && _Alignof(_Atomic uint64_t) == 8, "u64 atomics");

#define BPFCTL_POOL_GEN(gs) ((uint32_t)(gs))
#define BPFCTL_POOL_STATE(gs) ((uint32_t)((gs) >> 32))
#define BPFCTL_POOL_GS(gen, state) (((uint64_t)(state) << 32) | (uint32_t)(gen))

/* A mapped pool (returned by bpfctl_pool_open, released by bpfctl_pool_close). */
struct bpfctl_pool {
	uint8_t *base;
	size_t size;
	struct bpfctl_pool_hdr *hdr;
	struct bpfctl_pool_meta *meta;
	uint32_t buf_size;
	uint32_t buf_count;
	uint32_t data_off;
	uint32_t ext_off; /* the extension area (packet plane), 0 when none */
	uint32_t ext_size;
};

/* What goes into a descriptor: buf_off = offset, buf_gen = gen. */
struct bpfctl_buf_ref {
	uint32_t index;
	uint32_t offset;
	uint32_t gen;
};

static inline uint32_t bpfctl__pool_align_up(uint32_t n, uint32_t a) { return (n + a - 1) / a * a; }

/* Where the buffers must start for this header: after the metadata, and after the extension area
 * when there is one (which itself starts right after the metadata). 0 when ext_off is misplaced. */
static inline uint32_t bpfctl__pool_data_off(const struct bpfctl_pool_hdr *h)
{
	uint32_t meta_end = bpfctl__pool_align_up(BPFCTL_POOL_HEADER_SIZE + h->buf_count * BPFCTL_POOL_META_SIZE, 4096);
	if (h->ext_size == 0)
		return h->ext_off == 0 ? meta_end : 0;
	if (h->ext_off != meta_end)
		return 0;
	return bpfctl__pool_align_up(meta_end + h->ext_size, 4096);
}

/*
 * Map the pool file at `path` (a hugetlbfs or /dev/shm file, or /proc/<pid>/fd/<n> of a memfd)
 * and check its header. Returns NULL with errno set: ENOENT, EPROTO (bad magic/version, or not yet
 * initialised), EINVAL (sizes disagree with the file), or what open/mmap said.
 */
static inline struct bpfctl_pool *bpfctl_pool_open(const char *path)
{
#ifdef O_CLOEXEC
	int fd = open(path, O_RDWR | O_CLOEXEC);
#else
	int fd = open(path, O_RDWR);
#endif
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	if ((size_t)st.st_size < 4096) {
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int e = errno;
	close(fd); /* the mapping keeps the file alive */
	if (base == MAP_FAILED) {
		errno = e;
		return NULL;
	}
	struct bpfctl_pool_hdr *h = (struct bpfctl_pool_hdr *)base;
	int err = 0;
	if (atomic_load_explicit(&h->magic, memory_order_acquire) != BPFCTL_POOL_MAGIC || h->version != BPFCTL_POOL_VERSION ||
	    h->header_size != BPFCTL_POOL_HEADER_SIZE || h->meta_size != BPFCTL_POOL_META_SIZE ||
	    h->meta_off != BPFCTL_POOL_HEADER_SIZE)
		err = EPROTO;
	else if (h->buf_count == 0 || h->buf_size == 0 || h->buf_size % 64 ||
		 h->data_off != bpfctl__pool_data_off(h) ||
		 (uint64_t)h->data_off + (uint64_t)h->buf_size * h->buf_count > h->total_size ||
		 h->total_size > (uint64_t)st.st_size)
		err = EINVAL;
	struct bpfctl_pool *p = err ? NULL : (struct bpfctl_pool *)calloc(1, sizeof(*p));
	if (!p) {
		munmap(base, (size_t)st.st_size);
		errno = err ? err : ENOMEM;
		return NULL;
	}
	p->base = (uint8_t *)base;
	p->size = (size_t)st.st_size;
	p->hdr = h;
	p->meta = (struct bpfctl_pool_meta *)(p->base + h->meta_off);
	p->buf_size = h->buf_size;
	p->buf_count = h->buf_count;
	p->data_off = h->data_off;
	p->ext_off = h->ext_off;
	p->ext_size = h->ext_size;
	return p;
}

static inline void bpfctl_pool_close(struct bpfctl_pool *p)
{
	if (!p)
		return;
	munmap(p->base, p->size);
	free(p);
}

/* Buffer index of `off`, or -1 when it does not start a buffer of this pool. */
static inline int64_t bpfctl_pool_index(const struct bpfctl_pool *p, uint32_t off)
{
	if (off < p->data_off)
		return -1;
	uint32_t rel = off - p->data_off;
	if (rel % p->buf_size || rel / p->buf_size >= p->buf_count)
		return -1;
	return rel / p->buf_size;
}

/* Address of the byte at `off` in this process, or NULL outside the buffers. */
static inline void *bpfctl_pool_ptr(const struct bpfctl_pool *p, uint32_t off)
{
	if (off < p->data_off || (uint64_t)off >= (uint64_t)p->data_off + (uint64_t)p->buf_size * p->buf_count)
		return NULL;
	return p->base + off;
}

static inline void bpfctl__pool_push(struct bpfctl_pool *p, uint32_t idx)
{
	struct bpfctl_pool_meta *m = &p->meta[idx];
	atomic_store_explicit(&m->owner, 0, memory_order_relaxed);
	uint64_t head = atomic_load_explicit(&p->hdr->free_head, memory_order_acquire);
	uint64_t want;
	do {
		atomic_store_explicit(&m->next, (uint32_t)head, memory_order_relaxed);
		want = ((head >> 32) + 1) << 32 | idx;
	} while (!atomic_compare_exchange_weak_explicit(&p->hdr->free_head, &head, want, memory_order_release,
							 memory_order_acquire));
}

/* Take a free buffer for `owner` (a pid). Returns 0, or -ENOBUFS when the pool is exhausted. */
static inline int bpfctl_pool_alloc(struct bpfctl_pool *p, uint32_t owner, struct bpfctl_buf_ref *ref)
{
	uint64_t head = atomic_load_explicit(&p->hdr->free_head, memory_order_acquire);
	uint32_t idx;
	for (;;) {
		idx = (uint32_t)head;
		if (idx == BPFCTL_POOL_NONE) {
			atomic_fetch_add_explicit(&p->hdr->alloc_fails, 1, memory_order_relaxed);
			return -ENOBUFS;
		}
		/* possibly stale if idx is popped meanwhile: the tag makes that CAS fail */
		uint32_t next = atomic_load_explicit(&p->meta[idx].next, memory_order_relaxed);
		uint64_t want = ((head >> 32) + 1) << 32 | next;
		if (atomic_compare_exchange_weak_explicit(&p->hdr->free_head, &head, want, memory_order_acquire,
							  memory_order_acquire))
			break;
	}
	struct bpfctl_pool_meta *m = &p->meta[idx];
	atomic_store_explicit(&m->owner, owner, memory_order_relaxed);
	uint64_t gs = atomic_load_explicit(&m->gen_state, memory_order_relaxed);
	atomic_store_explicit(&m->gen_state, BPFCTL_POOL_GS(BPFCTL_POOL_GEN(gs), BPFCTL_POOL_STATE_IN_USE),
			      memory_order_release);
	atomic_fetch_add_explicit(&p->hdr->allocs, 1, memory_order_relaxed);
	ref->index = idx;
	ref->offset = p->data_off + idx * p->buf_size;
	ref->gen = BPFCTL_POOL_GEN(gs);
	return 0;
}

/*
 * Give a buffer back. Returns 0, -EINVAL (offset is not a buffer), -EALREADY (double free),
 * -ESTALE (the buffer has another generation), -EPERM (owner != 0 and the buffer is not owner's).
 */
static inline int bpfctl_pool_free(struct bpfctl_pool *p, uint32_t off, uint32_t gen, uint32_t owner)
{
	int64_t idx = bpfctl_pool_index(p, off);
	int err = 0;
	if (idx < 0) {
		err = -EINVAL;
	} else if (owner && atomic_load_explicit(&p->meta[idx].owner, memory_order_relaxed) != owner) {
		err = -EPERM;
	} else {
		uint64_t expect = BPFCTL_POOL_GS(gen, BPFCTL_POOL_STATE_IN_USE);
		if (atomic_compare_exchange_strong_explicit(&p->meta[idx].gen_state, &expect,
							    BPFCTL_POOL_GS(gen + 1, BPFCTL_POOL_STATE_FREE),
							    memory_order_acq_rel, memory_order_relaxed)) {
			bpfctl__pool_push(p, (uint32_t)idx);
			atomic_fetch_add_explicit(&p->hdr->frees, 1, memory_order_relaxed);
			return 0;
		}
		err = BPFCTL_POOL_STATE(expect) == BPFCTL_POOL_STATE_FREE && BPFCTL_POOL_GEN(expect) == gen + 1 ? -EALREADY
														 : -ESTALE;
	}
	atomic_fetch_add_explicit(&p->hdr->refused, 1, memory_order_relaxed);
	return err;
}

/* 1 when `off` starts a buffer in use with generation `gen` (the stale-descriptor check). */
static inline int bpfctl_pool_validate(const struct bpfctl_pool *p, uint32_t off, uint32_t gen)
{
	int64_t idx = bpfctl_pool_index(p, off);
	if (idx < 0)
		return 0;
	return atomic_load_explicit(&p->meta[idx].gen_state, memory_order_acquire) ==
	       BPFCTL_POOL_GS(gen, BPFCTL_POOL_STATE_IN_USE);
}

/* Hand a buffer to the next owner of a chain. Returns 0 or -ESTALE. */
static inline int bpfctl_pool_transfer(struct bpfctl_pool *p, uint32_t off, uint32_t gen, uint32_t new_owner)
{
	if (!bpfctl_pool_validate(p, off, gen))
		return -ESTALE;
	atomic_store_explicit(&p->meta[bpfctl_pool_index(p, off)].owner, new_owner, memory_order_relaxed);
	return 0;
}

/* Free every buffer owned by `owner` (a dead pid). Returns how many. */
static inline uint32_t bpfctl_pool_reclaim(struct bpfctl_pool *p, uint32_t owner)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < p->buf_count; i++) {
		struct bpfctl_pool_meta *m = &p->meta[i];
		if (atomic_load_explicit(&m->owner, memory_order_relaxed) != owner)
			continue;
		uint64_t gs = atomic_load_explicit(&m->gen_state, memory_order_acquire);
		if (BPFCTL_POOL_STATE(gs) != BPFCTL_POOL_STATE_IN_USE)
			continue;
		if (!atomic_compare_exchange_strong(&m->gen_state, &gs,
						    BPFCTL_POOL_GS(BPFCTL_POOL_GEN(gs) + 1, BPFCTL_POOL_STATE_FREE)))
			continue;
		bpfctl__pool_push(p, i);
		n++;
	}
	atomic_fetch_add(&p->hdr->frees, n);
	atomic_fetch_add(&p->hdr->reclaimed, n);
	return n;
}

/* Buffers in use right now (a scan; exact only when nobody allocates or frees meanwhile). */
static inline uint32_t bpfctl_pool_in_use(const struct bpfctl_pool *p)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < p->buf_count; i++)
		n += BPFCTL_POOL_STATE(atomic_load_explicit(&p->meta[i].gen_state, memory_order_relaxed)) ==
		     BPFCTL_POOL_STATE_IN_USE;
	return n;
}

#endif /* BPFCTL_POOL_H */
