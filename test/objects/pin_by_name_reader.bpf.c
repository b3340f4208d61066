// A second object declaring the same LIBBPF_PIN_BY_NAME map (a tc program next to the XDP one,
// as xdp-tools and Cilium share maps between their programs).
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shared_counts SEC(".maps");

SEC("tc")
int tc_shared_count(struct __sk_buff *skb)
{
	__u32 k = skb->ifindex;
	__u64 one = 1, *n = bpf_map_lookup_elem(&shared_counts, &k);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&shared_counts, &k, &one, BPF_ANY);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
