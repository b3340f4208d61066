// kernel selftests style (test_sockmap_kern): sk_skb stream parser + verdict on a sockmap,
// redirecting what arrives on one socket into another socket's receive queue.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} sock_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} redir_to SEC(".maps");

__u64 verdicts;

SEC("sk_skb/stream_parser")
int prog_stream_parser(struct __sk_buff *skb)
{
	return skb->len;
}

SEC("sk_skb/stream_verdict")
int prog_stream_verdict(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u32 *to = bpf_map_lookup_elem(&redir_to, &zero);
	__sync_fetch_and_add(&verdicts, 1);
	if (!to)
		return SK_PASS;
	return bpf_sk_redirect_map(skb, &sock_map, *to, BPF_F_INGRESS);
}

char _license[] SEC("license") = "GPL";
