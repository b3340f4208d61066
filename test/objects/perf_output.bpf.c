// bcc-style perf event output: a tracepoint pushes a struct per getsid() call into a
// BPF_MAP_TYPE_PERF_EVENT_ARRAY, one ring per CPU, read by user space with perf_buffer.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct sid_event {
	__u32 pid;
	__u32 cpu;
	__u64 ts;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

// Puts struct sid_event in the object's BTF (a type used only inside a function is not emitted):
// what lets `bpfctl map watch --type sid_event` (and bpf2go -type) decode the records.
struct sid_event *unused_sid_event __attribute__((unused));

const volatile __u32 only_pid = 0;

SEC("tracepoint/syscalls/sys_enter_getsid")
int on_getsid(void *ctx)
{
	struct sid_event e = {};
	e.pid = bpf_get_current_pid_tgid() >> 32;
	if (only_pid && e.pid != only_pid)
		return 0;
	e.cpu = bpf_get_smp_processor_id();
	e.ts = bpf_ktime_get_ns();
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &e, sizeof(e));
	return 0;
}

char _license[] SEC("license") = "GPL";
