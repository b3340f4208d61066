// cgroup_skb egress/ingress accounting (like systemd's IP accounting): bytes per direction.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
} bytes_by_dir SEC(".maps");

static __always_inline void account(__u32 dir, __u32 len)
{
	__u64 *b = bpf_map_lookup_elem(&bytes_by_dir, &dir);
	if (b)
		__sync_fetch_and_add(b, len);
}

SEC("cgroup_skb/egress")
int count_egress(struct __sk_buff *skb)
{
	account(1, skb->len);
	return 1;
}

SEC("cgroup_skb/ingress")
int count_ingress(struct __sk_buff *skb)
{
	account(0, skb->len);
	return 1;
}

char _license[] SEC("license") = "GPL";
