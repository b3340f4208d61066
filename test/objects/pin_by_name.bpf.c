// LIBBPF_PIN_BY_NAME (xdp-tools/Cilium style): a map shared by every object that declares it.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shared_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} private_count SEC(".maps");

SEC("xdp")
int xdp_shared_count(struct xdp_md *ctx)
{
	__u32 k = ctx->ingress_ifindex, z = 0;
	__u64 one = 1, *n = bpf_map_lookup_elem(&shared_counts, &k);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&shared_counts, &k, &one, BPF_ANY);
	n = bpf_map_lookup_elem(&private_count, &z);
	if (n)
		__sync_fetch_and_add(n, 1);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
