// AF_XDP and cpumap redirects (xdp-tutorial advanced03 / xdp-tools): queue 0 goes to an XSK
// when one is bound, everything else to CPU 0's cpumap entry.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct bpf_cpumap_val);
} cpu_map SEC(".maps");

SEC("xdp")
int xdp_sock_or_cpu(struct xdp_md *ctx)
{
	__u32 q = ctx->rx_queue_index;
	if (q == 0 && bpf_map_lookup_elem(&xsks_map, &q))
		return bpf_redirect_map(&xsks_map, 0, XDP_PASS);
	return bpf_redirect_map(&cpu_map, 0, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
