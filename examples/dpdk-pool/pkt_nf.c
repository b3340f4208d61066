/*
 * dpdkfwd: a DPDK program as one hop of a bpfctl packet chain (docs/packet-chains.md), working on
 * the chain's pool buffers in place. The supervisor starts it like any packet function (a policy's
 * `command: ['./build/dpdk-pkt-nf', ...]`) with BPFCTL_POOL, BPFCTL_PKT_FN, BPFCTL_PKT_INST,
 * BPFCTL_PKT_POLL, BPFCTL_FN_NAME and BPFCTL_READY_FD in its environment. It
 *
 *   - attaches to its ring through the packet SDK (bpfctl_nf_open_env: maps the pool file),
 *   - starts EAL with arguments built from that environment (no huge pages unless the pool is on
 *     hugetlbfs, no devices, no shared config, one lcore, a file prefix of its own),
 *   - registers the pool mapping with DPDK as external memory (rte_extmem_register),
 *   - says ready, then per batch: wraps every frame in an mbuf without copying
 *     (rte_pktmbuf_attach_extbuf on the frame's pool buffer, data_off = the frame's offset in it),
 *     classifies it with rte_net_get_ptype and forwards it as a router does: drops an IPv4 header
 *     whose checksum is wrong and a TTL (hop limit) that would expire, decrements the TTL with an
 *     incremental checksum update (RFC 1624 through rte_raw_cksum), rewrites the MACs, and hands
 *     the frames on (bpfctl_nf_send) from the same buffers.
 *
 *   dpdk-pkt-nf [--dst-mac MAC] [--src-mac MAC] [--keep-ttl] [-- extra EAL options]
 *
 * Without --dst-mac the MACs are swapped; with it the destination becomes MAC and the source
 * --src-mac, or the frame's old destination. SIGTERM (or SIGINT): the ring is drained, a tally is
 * printed, EAL is cleaned up and its runtime directory removed, exit 0. Errors: one line on stderr,
 * exit 2.
 */
#define _GNU_SOURCE
#include <bpfctl/packet.h> /* first: it asks for POSIX */

#include <dirent.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_ptype.h>
#include <rte_memory.h>
#include <rte_net.h>
#include <rte_version.h>

#define HUGE_2M (2u << 20)
#define MAX_EAL_ARGS 48

struct config {
	int set_dst, set_src, keep_ttl;
	struct rte_ether_addr dst, src;
};

/* What this instance did, printed when it stops. One thread: plain counters. */
struct tally {
	uint64_t frames, forwarded, ttl_expired, bad_header, non_ip, not_in_place;
};

/* The pool owns the memory: an mbuf letting go of a frame must never free it. */
static void keep_in_pool(void *addr, void *opaque)
{
	(void)addr;
	(void)opaque;
}

static int parse_mac(const char *name, const char *what, const char *text, struct rte_ether_addr *out)
{
	if (rte_ether_unformat_addr(text, out) != 0) {
		fprintf(stderr, "%s: %s must be a MAC address (aa:bb:cc:dd:ee:ff), got '%s'\n", name, what, text);
		return -1;
	}
	return 0;
}

/* The program's own options, up to `--`; what follows `--` goes to EAL as extra options. */
static int parse_args(const char *name, int argc, char **argv, struct config *c, int *eal_extra)
{
	static const struct option opts[] = {
		{ "dst-mac", required_argument, NULL, 'd' },
		{ "src-mac", required_argument, NULL, 's' },
		{ "keep-ttl", no_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	memset(c, 0, sizeof(*c));
	opterr = 0;
	/* "+": stop at the first non-option (nothing is permuted); ":": a missing value is told apart */
	while ((ch = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			if (parse_mac(name, "--dst-mac", optarg, &c->dst))
				return -1;
			c->set_dst = 1;
			break;
		case 's':
			if (parse_mac(name, "--src-mac", optarg, &c->src))
				return -1;
			c->set_src = 1;
			break;
		case 'k': c->keep_ttl = 1; break;
		case ':':
			fprintf(stderr, "%s: option '%s' needs a value\n", name, argv[optind - 1]);
			return -1;
		default:
			fprintf(stderr, "%s: unknown option '%s' (usage: dpdk-pkt-nf [--dst-mac MAC] [--src-mac MAC] [--keep-ttl] [-- EAL options])\n", name,
				argv[optind - 1]);
			return -1;
		}
	}
	/* getopt stops at "--" and steps over it: what is left is EAL's */
	if (optind < argc && (optind == 0 || strcmp(argv[optind - 1], "--") != 0)) {
		fprintf(stderr, "%s: unexpected argument '%s' (EAL options go after --)\n", name, argv[optind]);
		return -1;
	}
	*eal_extra = optind;
	return 0;
}

/* The CPUs this process may run on, as an EAL cpuset ("0-3,6"); the first one in *first. */
static int allowed_cpus(char *out, size_t size, int *first, int *count)
{
	cpu_set_t set;
	size_t n = 0;

	*first = -1;
	*count = 0;
	out[0] = 0;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return -1;
	for (int c = 0; c < CPU_SETSIZE && n < size; c++) {
		if (!CPU_ISSET(c, &set))
			continue;
		int end = c;

		while (end + 1 < CPU_SETSIZE && CPU_ISSET(end + 1, &set))
			end++;
		n += (size_t)snprintf(out + n, size - n, end > c ? "%s%d-%d" : "%s%d", n ? "," : "", c, end);
		if (*first < 0)
			*first = c;
		*count += end - c + 1;
		c = end;
	}
	return *first < 0 || n >= size ? -1 : 0;
}

/* The n-th CPU (0-based) of this process's affinity mask. */
static int nth_cpu(unsigned n)
{
	cpu_set_t set;
	unsigned seen = 0;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 0;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set) && seen++ == n)
			return c;
	return 0;
}

/* Free 2 MiB huge pages nobody reserved: EAL on huge pages needs a few of them for its heap. */
static long free_hugepages(void)
{
	long free = 0, resv = 0;
	FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "r");

	if (!f || fscanf(f, "%ld", &free) != 1)
		free = 0;
	if (f)
		fclose(f);
	f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages", "r");
	if (!f || fscanf(f, "%ld", &resv) != 1)
		resv = 0;
	if (f)
		fclose(f);
	return free - resv;
}

/* EAL's runtime directory (/var/run/dpdk/<prefix>): empty or nearly so without shared config. */
static void remove_runtime_dir(const char *name, const char *dir)
{
	DIR *d;
	struct dirent *e;
	char path[PATH_MAX];

	if (!dir[0])
		return;
	d = opendir(dir);
	if (d) {
		while ((e = readdir(d)) != NULL) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	if (rmdir(dir) != 0 && errno != ENOENT)
		fprintf(stderr, "%s: cannot remove EAL runtime directory %s: %s\n", name, dir, strerror(errno));
}

struct eal_args {
	char *argv[MAX_EAL_ARGS + 1];
	int argc;
	char prefix[128], mem[16], lcores[300], desc[512];
	int huge;
};

static void eal_push(struct eal_args *a, char *arg)
{
	if (a->argc < MAX_EAL_ARGS)
		a->argv[a->argc++] = arg;
	a->argv[a->argc] = NULL;
}

/*
 * EAL's arguments from the instance: a file prefix of its own (pool, function, instance: a
 * restarted instance reuses its predecessor's, so a killed one leaves at most one directory), no
 * PCI scan, no telemetry socket, error-level logs, and one lcore. In event mode the lcore may run
 * on every CPU the process may use (it sleeps in a futex; pinning it would only stop the scheduler
 * from placing it); in poll mode it is pinned to one CPU, picked by instance, as a spinning DPDK
 * lcore wants. Huge pages only when the pool is on hugetlbfs and there are free ones to spare.
 */
static int eal_build(struct eal_args *a, struct bpfctl_nf *nf, char *argv0, int extra_argc, char **extra)
{
	const char *pool = getenv("BPFCTL_POOL");
	const char *base = strrchr(pool, '/') ? strrchr(pool, '/') + 1 : pool;
	char cpus[256];
	int first, count;

	if (!strncmp(base, "bpfctl-pool-", 12))
		base += 12;
	memset(a, 0, sizeof(*a));
	snprintf(a->prefix, sizeof(a->prefix), "--file-prefix=bpfctl-nf-%.60s-%u-%u", base, nf->fn, nf->inst);
	eal_push(a, argv0);
	eal_push(a, a->prefix);
	eal_push(a, "--no-pci");
	eal_push(a, "--no-telemetry");
	eal_push(a, "--log-level=error");
	a->huge = nf->pool->hdr->backing == BPFCTL_POOL_BACKING_HUGETLBFS && free_hugepages() >= 2;
	if (a->huge) {
		/* huge pages on demand, no files left: --in-memory implies --no-shconf */
		eal_push(a, "--in-memory");
	} else {
		/* --no-huge implies legacy memory (a fixed heap), which --in-memory refuses */
		eal_push(a, "--no-huge");
		eal_push(a, "--no-shconf");
		snprintf(a->mem, sizeof(a->mem), "%u", 16u);
		eal_push(a, "-m");
		eal_push(a, a->mem);
	}
	if (allowed_cpus(cpus, sizeof(cpus), &first, &count) != 0) {
		bpfctl_nf_log(nf, "cannot read this process's CPU affinity: %s", strerror(errno));
		return -1;
	}
	if (nf->poll)
		snprintf(a->lcores, sizeof(a->lcores), "--lcores=0@%d", nth_cpu(nf->inst % (unsigned)count));
	else
		snprintf(a->lcores, sizeof(a->lcores), "--lcores=0@(%s)", cpus);
	eal_push(a, a->lcores);
	if (extra_argc > MAX_EAL_ARGS - a->argc) {
		bpfctl_nf_log(nf, "too many EAL options after -- (%d; at most %d)", extra_argc, MAX_EAL_ARGS - a->argc);
		return -1;
	}
	for (int i = 0; i < extra_argc; i++)
		eal_push(a, extra[i]);
	size_t n = 0;

	for (int i = 1; i < a->argc && n < sizeof(a->desc); i++)
		n += (size_t)snprintf(a->desc + n, sizeof(a->desc) - n, "%s%s", i > 1 ? " " : "", a->argv[i]);
	return 0;
}

/*
 * rte_eal_init with stdout muted: EAL prints its whole usage (a hundred lines) there when an option
 * is wrong, which would bury the one line that says which. Its errors go to stderr and stay.
 */
static int eal_init_quiet(struct eal_args *a)
{
	int saved = dup(STDOUT_FILENO), null = open("/dev/null", O_WRONLY | O_CLOEXEC), rc;

	fflush(stdout);
	if (saved >= 0 && null >= 0)
		dup2(null, STDOUT_FILENO);
	rc = rte_eal_init(a->argc, a->argv);
	fflush(stdout);
	if (saved >= 0 && null >= 0)
		dup2(saved, STDOUT_FILENO);
	if (saved >= 0)
		close(saved);
	if (null >= 0)
		close(null);
	return rc;
}

/* Everything one batch needs, set up once. */
struct fwd {
	struct bpfctl_nf *nf;
	struct config cfg;
	struct tally t;
	struct rte_mempool *mp;
	struct rte_mbuf_ext_shared_info shinfo[BPFCTL_NF_BATCH];
	int iova_va;
};

/*
 * Wrap frame `p` in mbuf `m` without copying: the mbuf's buffer is the frame's pool buffer and
 * data_off the frame's offset in it, so rte_pktmbuf_mtod(m) is the frame itself. The shared info
 * lives outside the buffer (the helper that carves it from the buffer's tail would write into
 * pool memory), and its free callback does nothing.
 */
static void attach_frame(struct fwd *f, struct rte_mbuf *m, const struct bpfctl_pkt *p, struct rte_mbuf_ext_shared_info *si)
{
	/* no device reads these buffers: an IOVA only where it is the virtual address (see README) */
	rte_iova_t iova = f->iova_va ? (rte_iova_t)(uintptr_t)p->buf : RTE_BAD_IOVA;

	si->free_cb = keep_in_pool;
	si->fcb_opaque = NULL;
	rte_mbuf_ext_refcnt_set(si, 1);
	rte_pktmbuf_attach_extbuf(m, p->buf, iova, (uint16_t)p->buf_size, si);
	m->data_off = (uint16_t)(p->data - p->buf);
	m->data_len = p->len;
	m->pkt_len = p->len;
	m->port = p->port;
}

/* TTL - 1, and the header checksum updated for the one 16-bit word that changed: RFC 1624 eq. 3,
 * HC' = ~(~HC + ~m + m'), the sum done by DPDK's rte_raw_cksum. */
static void ipv4_dec_ttl(struct rte_ipv4_hdr *ip)
{
	uint16_t old_word, new_word, words[3];

	memcpy(&old_word, &ip->time_to_live, sizeof(old_word)); /* TTL and protocol */
	ip->time_to_live--;
	memcpy(&new_word, &ip->time_to_live, sizeof(new_word));
	words[0] = (uint16_t)~ip->hdr_checksum;
	words[1] = (uint16_t)~old_word;
	words[2] = new_word;
	ip->hdr_checksum = (uint16_t)~rte_raw_cksum(words, sizeof(words));
}

/* One frame, through its mbuf only. Returns the verdict. */
static uint8_t forward_one(struct fwd *f, struct rte_mbuf *m)
{
	struct rte_net_hdr_lens hl = { 0 }; /* left as is for a frame too short to parse */
	uint32_t ptype = rte_net_get_ptype(m, &hl, RTE_PTYPE_L2_MASK | RTE_PTYPE_L3_MASK);
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	uint32_t len = rte_pktmbuf_data_len(m);

	if (len < sizeof(*eh) || hl.l2_len < sizeof(*eh) || hl.l2_len > len) {
		f->t.bad_header++;
		return BPFCTL_PKT_DROP;
	}
	m->packet_type = ptype;
	m->l2_len = hl.l2_len;
	if (RTE_ETH_IS_IPV4_HDR(ptype)) {
		struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, hl.l2_len);
		uint32_t hlen = rte_ipv4_hdr_len(ip);

		if (hlen < sizeof(*ip) || hl.l2_len + hlen > len || rte_raw_cksum(ip, hlen) != 0xffff) {
			f->t.bad_header++;
			return BPFCTL_PKT_DROP;
		}
		if (!f->cfg.keep_ttl) {
			if (ip->time_to_live <= 1) {
				f->t.ttl_expired++;
				return BPFCTL_PKT_DROP;
			}
			ipv4_dec_ttl(ip);
		}
		m->l3_len = hlen;
	} else if (RTE_ETH_IS_IPV6_HDR(ptype)) {
		struct rte_ipv6_hdr *ip6 = rte_pktmbuf_mtod_offset(m, struct rte_ipv6_hdr *, hl.l2_len);

		if (hl.l2_len + sizeof(*ip6) > len) {
			f->t.bad_header++;
			return BPFCTL_PKT_DROP;
		}
		if (!f->cfg.keep_ttl) {
			if (ip6->hop_limits <= 1) {
				f->t.ttl_expired++;
				return BPFCTL_PKT_DROP;
			}
			ip6->hop_limits--;
		}
		m->l3_len = hl.l3_len;
	} else {
		/* rte_net_get_ptype gives no L3 type for an IP EtherType whose header is not one */
		uint16_t type;

		memcpy(&type, (uint8_t *)eh + hl.l2_len - 2, sizeof(type));
		if (type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) || type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6)) {
			f->t.bad_header++;
			return BPFCTL_PKT_DROP;
		}
		f->t.non_ip++;
	}
	struct rte_ether_addr old_dst;

	rte_ether_addr_copy(&eh->dst_addr, &old_dst);
	if (f->cfg.set_dst)
		rte_ether_addr_copy(&f->cfg.dst, &eh->dst_addr);
	else
		rte_ether_addr_copy(&eh->src_addr, &eh->dst_addr);
	rte_ether_addr_copy(f->cfg.set_src ? &f->cfg.src : &old_dst, &eh->src_addr);
	f->t.forwarded++;
	return BPFCTL_PKT_NEXT;
}

static void forward_batch(struct fwd *f, struct bpfctl_pkt *pkts, unsigned n)
{
	struct rte_mbuf *mbufs[BPFCTL_NF_BATCH];

	f->t.frames += n;
	if (rte_pktmbuf_alloc_bulk(f->mp, mbufs, n) != 0) {
		/* cannot happen (the mempool holds a batch and every batch gives its mbufs back): say so */
		bpfctl_nf_log(f->nf, "rte_pktmbuf_alloc_bulk failed for %u mbufs: batch dropped", n);
		for (unsigned i = 0; i < n; i++)
			pkts[i].verdict = BPFCTL_PKT_DROP;
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		attach_frame(f, mbufs[i], &pkts[i], &f->shinfo[i]);
		if (rte_pktmbuf_mtod(mbufs[i], uint8_t *) != pkts[i].data) {
			/* the arithmetic above is wrong if this ever happens: never forward a frame we did not work on */
			f->t.not_in_place++;
			pkts[i].verdict = BPFCTL_PKT_DROP;
			continue;
		}
		pkts[i].verdict = forward_one(f, mbufs[i]);
		/* the frame is where the mbuf says (an NF that adjusts headroom or length moves it) */
		pkts[i].data = rte_pktmbuf_mtod(mbufs[i], uint8_t *);
		pkts[i].len = rte_pktmbuf_data_len(mbufs[i]);
	}
	/* detach before the frames are handed on: after bpfctl_nf_send they are no longer ours */
	rte_pktmbuf_free_bulk(mbufs, n);
}

/* One JSON line once EAL is up: where the memory is and whether an mbuf's data is the pool frame. */
static void report_start(struct fwd *f, const struct eal_args *a, int extmem)
{
	struct bpfctl_nf *nf = f->nf;
	struct bpfctl_pool *pool = nf->pool;
	/* the first buffer's frame position, as pktio puts frames: attach only, nothing read or written */
	struct bpfctl_pkt probe = { .buf = pool->base + pool->data_off, .buf_size = pool->buf_size, .len = 0 };
	struct rte_mbuf_ext_shared_info si;
	struct rte_mbuf *m = rte_pktmbuf_alloc(f->mp);
	int zero_copy = 0;

	probe.data = probe.buf + BPFCTL_PKT_HEADROOM;
	if (m) {
		attach_frame(f, m, &probe, &si);
		zero_copy = rte_pktmbuf_mtod(m, uint8_t *) == probe.data;
		rte_pktmbuf_free(m);
	}
	bpfctl_nf_log(nf,
		      "{\"dpdk\":\"%s\",\"eal\":\"%s\",\"hugepages\":%s,\"iova\":\"%s\",\"lcore\":%u,\"extmem\":%s,\"zeroCopy\":%s,"
		      "\"mode\":\"%s\",\"pool\":\"%s\",\"macs\":\"%s\"}",
		      rte_version(), a->desc, a->huge ? "true" : "false", f->iova_va ? "va" : "pa", rte_lcore_id(), extmem ? "true" : "false",
		      zero_copy ? "true" : "false", nf->poll ? "poll" : "event", getenv("BPFCTL_POOL"), f->cfg.set_dst ? "set" : "swap");
}

int main(int argc, char **argv)
{
	static struct fwd f;
	struct bpfctl_pkt pkts[BPFCTL_NF_BATCH];
	struct eal_args eal;
	const char *name = getenv("BPFCTL_FN_NAME") && *getenv("BPFCTL_FN_NAME") ? getenv("BPFCTL_FN_NAME") : "dpdk-pkt-nf";
	char runtime_dir[PATH_MAX] = "";
	int extra, extmem = 0, rc = 2;
	unsigned n;

	if (parse_args(name, argc, argv, &f.cfg, &extra) != 0)
		return 2;
	/* the ring and the pool first: EAL's arguments depend on the pool's backing */
	f.nf = bpfctl_nf_open_env();
	if (!f.nf)
		return 2;
	if (eal_build(&eal, f.nf, argv[0], argc - extra, argv + extra) != 0)
		goto out_nf;
	if (eal_init_quiet(&eal) < 0) {
		bpfctl_nf_log(f.nf, "rte_eal_init (%s): %s", eal.desc, rte_strerror(rte_errno));
		/* a failed init may have made its directory already */
		snprintf(runtime_dir, sizeof(runtime_dir), "%s", rte_eal_get_runtime_dir());
		goto out_dir;
	}
	snprintf(runtime_dir, sizeof(runtime_dir), "%s", rte_eal_get_runtime_dir());
	f.iova_va = rte_eal_iova_mode() == RTE_IOVA_VA;

	/* Tell DPDK about the pool mapping: with a device this is what makes it DMA-able (with an
	 * IOVA table and rte_dev_dma_map); without one it makes rte_mem_virt2memseg() know it. */
	struct bpfctl_pool *pool = f.nf->pool;
	size_t page = pool->hdr->backing == BPFCTL_POOL_BACKING_HUGETLBFS ? HUGE_2M : (size_t)sysconf(_SC_PAGESIZE);

	extmem = rte_extmem_register(pool->base, pool->size, NULL, 0, page) == 0;
	if (!extmem)
		bpfctl_nf_log(f.nf, "rte_extmem_register: %s (continuing without it)", rte_strerror(rte_errno));
	/* mbufs without data room: their data is a pool frame. One batch's worth, plus the probe's. */
	f.mp = rte_pktmbuf_pool_create("bpfctl_pkt_nf", 2 * BPFCTL_NF_BATCH - 1, 0, 0, 0, (int)rte_socket_id());
	if (!f.mp) {
		bpfctl_nf_log(f.nf, "rte_pktmbuf_pool_create: %s", rte_strerror(rte_errno));
		goto out_extmem;
	}
	report_start(&f, &eal, extmem);
	bpfctl_nf_ready(f.nf);
	while ((n = bpfctl_nf_recv(f.nf, pkts, BPFCTL_NF_BATCH)) > 0) {
		forward_batch(&f, pkts, n);
		bpfctl_nf_send(f.nf, pkts, n);
	}
	bpfctl_nf_log(f.nf,
		      "{\"frames\":%llu,\"forwarded\":%llu,\"ttlExpired\":%llu,\"badHeader\":%llu,\"nonIp\":%llu,\"notInPlace\":%llu}",
		      (unsigned long long)f.t.frames, (unsigned long long)f.t.forwarded, (unsigned long long)f.t.ttl_expired,
		      (unsigned long long)f.t.bad_header, (unsigned long long)f.t.non_ip, (unsigned long long)f.t.not_in_place);
	rc = 0;
	rte_mempool_free(f.mp);
out_extmem:
	if (extmem)
		rte_extmem_unregister(pool->base, pool->size);
	rte_eal_cleanup();
out_dir:
	remove_runtime_dir(name, runtime_dir);
out_nf:
	bpfctl_nf_close(f.nf);
	return rc;
}
