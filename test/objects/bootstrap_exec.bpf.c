// libbpf-bootstrap style: const volatile configuration, .bss/.data globals, .rodata strings,
// a ring buffer of events, a tracepoint.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct event {
	__u32 pid;
	__u32 seq;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} rb SEC(".maps");

const volatile __u32 target_pid = 0;
const volatile __u64 max_events = 1000;
const volatile char greeting[12] = "bootstrap";
__u64 events_seen;
__u64 events_dropped;
__u32 last_pid = 0;
__u32 seq = 1;

SEC("tp/syscalls/sys_enter_getppid")
int handle_getppid(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	if (target_pid && pid != target_pid)
		return 0;
	if (events_seen >= max_events)
		return 0;
	__sync_fetch_and_add(&events_seen, 1);
	last_pid = pid;
	struct event *e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
	if (!e) {
		events_dropped++;
		return 0;
	}
	e->pid = pid;
	e->seq = seq++;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	bpf_printk("%s: pid %d", greeting, pid);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
