// Map-in-map (array of maps): the outer slot picks which inner table the program counts in.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { &inner_a },
};

__u32 use_slot = 0;

SEC("xdp")
int xdp_inner_count(struct xdp_md *ctx)
{
	__u32 z = 0, s = use_slot;
	void *in = bpf_map_lookup_elem(&outer, &s);
	if (!in)
		return XDP_PASS;
	__u64 *n = bpf_map_lookup_elem(in, &z);
	if (n)
		__sync_fetch_and_add(n, 1);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
