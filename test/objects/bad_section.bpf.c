// A section name libbpf does not know: load must say so, in one line.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("sk_skb1") int prog_parser(struct __sk_buff *skb) { return skb->len; }
char _license[] SEC("license") = "GPL";
