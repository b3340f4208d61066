// SPDX-License-Identifier: MIT
/*
 * The routes and instance counts as the kernel has them, read through read-only mappings of the
 * pinned `routes`, `config` and `instances` maps (BPF_F_MMAPABLE), exactly as
 * src/runtime/route-table.ts reads them: a request costs one load of `config.routes_gen`, and the
 * path table is rebuilt when that generation moves. A slot is current when
 * `version != 0 && version <= gen && (retired == 0 || retired > gen)`; a slot newer than the
 * generation is still being written. A scan that sees the generation move under it starts again.
 *
 * Struct offsets are bpf/chain/chain.gen.h's (struct bpfctl_route, bpfctl_instances,
 * bpfctl_config), checked against it at compile time below.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/types.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gw.h"

/* chain.gen.h also declares the maps, BPF-style: here they become unused weak symbols. */
#define SEC(x) __attribute__((weak, unused))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) __typeof__(val) *name
/* its descriptor is fn.h's (gw.h), under another name here */
#define bpfctl_desc bpfctl_desc_gen
#include "../../../bpf/chain/chain.gen.h"
#undef bpfctl_desc

_Static_assert(offsetof(struct bpfctl_route, len) == 0 && offsetof(struct bpfctl_route, fn) == 4, "route");
_Static_assert(offsetof(struct bpfctl_route, version) == 36 && offsetof(struct bpfctl_route, retired) == 40, "route");
_Static_assert(offsetof(struct bpfctl_route, methods) == 56 && offsetof(struct bpfctl_route, name_len) == 60, "route");
_Static_assert(offsetof(struct bpfctl_route, name) == 64 && sizeof(((struct bpfctl_route *)0)->name) == GW_ROUTE_NAME_MAX, "route");
_Static_assert(offsetof(struct bpfctl_config, routes_gen) == 20, "config");
_Static_assert(offsetof(struct bpfctl_instances, inst) == 4, "instances");
_Static_assert(MAX_ROUTE_SLOTS == GW_MAX_ROUTE_SLOTS && MAX_HOPS == GW_MAX_HOPS && MAX_FUNCTIONS == GW_MAX_FUNCTIONS, "limits");

/* Rescans that saw the generation move underneath them before this request gives up (route-table.ts). */
#define MAX_RESCANS 8

static int map_pinned_prot(const char *path, int prot, const uint8_t **mem, size_t *len, uint32_t *stride, uint32_t *entries, char *err, size_t errlen)
{
	union bpf_attr a;
	struct bpf_map_info info;
	int fd;

	memset(&a, 0, sizeof(a));
	a.pathname = (__u64)(uintptr_t)path;
	/* not BPF_F_RDONLY: mmap drops VM_SHARED for a read-only file, and the kernel refuses a
	 * map mapping without it; the mapping itself is PROT_READ */
	fd = (int)syscall(SYS_bpf, BPF_OBJ_GET, &a, sizeof(a));
	if (fd < 0) {
		snprintf(err, errlen, "cannot open pinned map %s: %s", path, strerror(errno));
		return -1;
	}
	memset(&info, 0, sizeof(info));
	memset(&a, 0, sizeof(a));
	a.info.bpf_fd = (__u32)fd;
	a.info.info_len = sizeof(info);
	a.info.info = (__u64)(uintptr_t)&info;
	if (syscall(SYS_bpf, BPF_OBJ_GET_INFO_BY_FD, &a, sizeof(a)) < 0) {
		snprintf(err, errlen, "cannot read map info of %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (info.type != BPF_MAP_TYPE_ARRAY || !(info.map_flags & BPF_F_MMAPABLE)) {
		snprintf(err, errlen, "map %s is not an mmapable array", path);
		close(fd);
		return -1;
	}
	*stride = (info.value_size + 7) / 8 * 8;
	*entries = info.max_entries;
	*len = ((size_t)*stride * info.max_entries + 4095) / 4096 * 4096;
	void *p = mmap(NULL, *len, prot, MAP_SHARED, fd, 0);
	int e = errno;

	close(fd); /* the mapping keeps the map */
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "mmap of map %s failed: %s", path, strerror(e));
		return -1;
	}
	*mem = p;
	return 0;
}

static int map_pinned(const char *path, const uint8_t **mem, size_t *len, uint32_t *stride, uint32_t *entries, char *err, size_t errlen)
{
	return map_pinned_prot(path, PROT_READ, mem, len, stride, entries, err, errlen);
}

struct bpfctl_gw_stats *gw_stats_open(const char *pin_dir, uint32_t gw_inst, char *err, size_t errlen)
{
	char path[4096];
	const uint8_t *mem;
	size_t len;
	uint32_t stride, entries;

	snprintf(path, sizeof(path), "%s/maps/gw_stats", pin_dir);
	if (map_pinned_prot(path, PROT_READ | PROT_WRITE, &mem, &len, &stride, &entries, err, errlen))
		return NULL;
	if (stride != sizeof(struct bpfctl_gw_stats) || entries != BPFCTL_GW_STATS_SLOTS || gw_inst >= entries) {
		snprintf(err, errlen, "%s: values of %u bytes x %u, this bpfctl writes %zu x %u (load the policy again)", path, stride, entries,
			 sizeof(struct bpfctl_gw_stats), BPFCTL_GW_STATS_SLOTS);
		munmap((void *)mem, len);
		return NULL;
	}
	/* mapped for the process's life: the kernel unmaps it at exit */
	return bpfctl_gw_stats_slot((void *)mem, gw_inst);
}

int gw_maps_open(struct gw_maps *m, const char *pin_dir, char *err, size_t errlen)
{
	char path[4096];
	uint32_t stride, entries;

	memset(m, 0, sizeof(*m));
	snprintf(path, sizeof(path), "%s/maps/routes", pin_dir);
	if (map_pinned(path, &m->routes, &m->routes_len, &m->routes_stride, &m->routes_entries, err, errlen))
		return -1;
	snprintf(path, sizeof(path), "%s/maps/config", pin_dir);
	if (map_pinned(path, &m->config, &m->config_len, &stride, &entries, err, errlen))
		return -1;
	snprintf(path, sizeof(path), "%s/maps/instances", pin_dir);
	if (map_pinned(path, &m->instances, &m->instances_len, &m->instances_stride, &m->instances_entries, err, errlen))
		return -1;
	if (m->routes_stride < sizeof(struct bpfctl_route) || m->instances_stride < sizeof(struct bpfctl_instances)) {
		snprintf(err, errlen, "maps under %s do not have bpfctl's chain layout", pin_dir);
		return -1;
	}
	return 0;
}

void gw_maps_close(struct gw_maps *m)
{
	if (m->routes)
		munmap((void *)m->routes, m->routes_len);
	if (m->config)
		munmap((void *)m->config, m->config_len);
	if (m->instances)
		munmap((void *)m->instances, m->instances_len);
	m->routes = m->config = m->instances = NULL;
}

/* Loads of words another process (the supervisor, through the kernel) writes: acquire, so the
 * fields written before a generation or version are seen with it. */
static inline uint32_t load32(const uint8_t *p)
{
	return atomic_load_explicit((_Atomic uint32_t *)(uintptr_t)p, memory_order_acquire);
}

static uint32_t generation(const struct gw_maps *m)
{
	return load32(m->config + offsetof(struct bpfctl_config, routes_gen));
}

static const struct bpfctl_route *slot_at(const struct gw_maps *m, uint32_t i)
{
	return (const struct bpfctl_route *)(const void *)(m->routes + (size_t)i * m->routes_stride);
}

static void add_route(struct gw_maps *m, uint32_t slot, const struct bpfctl_route *v, uint32_t version)
{
	struct gw_route *r = &m->current[m->ncurrent++];
	uint32_t nl = v->name_len < GW_ROUTE_NAME_MAX ? v->name_len : GW_ROUTE_NAME_MAX;

	r->slot = slot;
	r->version = version;
	r->len = v->len < GW_MAX_HOPS ? v->len : GW_MAX_HOPS;
	r->methods = v->methods;
	memcpy(r->hops, (const void *)v->fn, sizeof(r->hops));
	memcpy(r->name, (const void *)v->name, nl);
	r->name[nl] = 0;
	/* routePath(): names that are not paths are served at '/name' */
	if (nl && r->name[0] == '/') {
		memcpy(r->path, r->name, nl + 1);
		r->path_len = nl;
	} else {
		r->path[0] = '/';
		memcpy(r->path + 1, r->name, nl + 1);
		r->path_len = nl + 1;
	}
}

static void rescan(struct gw_maps *m)
{
	for (int attempt = 0; attempt < MAX_RESCANS; attempt++) {
		uint32_t gen = generation(m);

		m->ncurrent = 0;
		for (uint32_t i = 0; i < m->routes_entries && i < GW_MAX_ROUTE_SLOTS; i++) {
			const struct bpfctl_route *v = slot_at(m, i);
			uint32_t version = load32((const uint8_t *)&v->version);

			/* 0: free; newer than gen: being written (published by a later generation) */
			if (version == 0 || version > gen)
				continue;
			uint32_t retired = load32((const uint8_t *)&v->retired);

			if ((retired != 0 && retired <= gen) || v->len == 0)
				continue;
			add_route(m, i, v, version);
		}
		/* a change published while we scanned could have been read half-done: scan again */
		if (generation(m) != gen)
			continue;
		m->gen = gen;
		m->scanned = 1;
		return;
	}
}

const struct gw_route *gw_route_by_path(struct gw_maps *m, const char *path, size_t len)
{
	if (!m->scanned || generation(m) != m->gen)
		rescan(m);
	/* '/a' and '/a/' are one route */
	if (len > 1 && path[len - 1] == '/')
		len--;
	for (uint32_t i = 0; i < m->ncurrent; i++) {
		const struct gw_route *r = &m->current[i];
		size_t pl = r->path_len;

		if (pl > 1 && r->path[pl - 1] == '/')
			pl--;
		if (pl == len && memcmp(r->path, path, len) == 0)
			return r;
	}
	return NULL;
}

const struct gw_route *gw_route_by_name(struct gw_maps *m, const char *name, size_t len)
{
	if (!m->scanned || generation(m) != m->gen)
		rescan(m);
	for (uint32_t i = 0; i < m->ncurrent; i++) {
		const struct gw_route *r = &m->current[i];

		if (strlen(r->name) == len && memcmp(r->name, name, len) == 0)
			return r;
	}
	return NULL;
}

int gw_slot_name(const struct gw_maps *m, uint32_t slot, char *name)
{
	int len = gw_route_len(m, slot);

	if (len < 0)
		return -1;
	const struct bpfctl_route *v = slot_at(m, slot);
	uint32_t nl = v->name_len < GW_ROUTE_NAME_MAX ? v->name_len : GW_ROUTE_NAME_MAX;

	memcpy(name, (const void *)v->name, nl);
	name[nl] = 0;
	return (int)nl;
}

int gw_route_len(const struct gw_maps *m, uint32_t slot)
{
	if (slot >= m->routes_entries)
		return -1;
	const struct bpfctl_route *v = slot_at(m, slot);
	uint32_t version = load32((const uint8_t *)&v->version);

	if (version == 0 || version == 0xffffffffu || v->len == 0)
		return -1;
	return (int)(v->len < GW_MAX_HOPS ? v->len : GW_MAX_HOPS);
}

uint32_t gw_live_count(const struct gw_maps *m, uint32_t fn)
{
	if (fn >= m->instances_entries)
		return 0;
	return load32(m->instances + (size_t)fn * m->instances_stride);
}
