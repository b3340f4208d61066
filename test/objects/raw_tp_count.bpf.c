// A raw tracepoint (sys_enter) with a per-CPU counter of every syscall, and one of getsid().
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
} sys_counts SEC(".maps");

SEC("raw_tp/sys_enter")
int count_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 k = 0;
	__u64 *n = bpf_map_lookup_elem(&sys_counts, &k);
	if (n)
		(*n)++;
	if (ctx->args[1] == 124 /* __NR_getsid */) {
		k = 1;
		n = bpf_map_lookup_elem(&sys_counts, &k);
		if (n)
			(*n)++;
	}
	return 0;
}

char _license[] SEC("license") = "GPL";
