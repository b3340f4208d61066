// Tail calls through a program array (selftests style): the entry program jumps to a slot
// chosen by a global; each slot counts and decides.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} jmp_table SEC(".maps");

__u32 slot = 0;
__u64 hits[4];
__u64 fallthrough;

SEC("xdp")
int xdp_entry(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &jmp_table, slot);
	fallthrough++;
	return XDP_PASS;
}

SEC("xdp")
int xdp_slot_pass(struct xdp_md *ctx)
{
	hits[0]++;
	return XDP_PASS;
}

SEC("xdp")
int xdp_slot_drop(struct xdp_md *ctx)
{
	hits[1]++;
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
