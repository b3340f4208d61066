// A kprobe on a syscall entry point (bcc/libbpf-tools style), counting hits in a global.
// (fentry is the modern form; this VM's kernel refuses trampolines with EPERM, so it is not in
// the corpus.)
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 kprobe_hits;

SEC("kprobe/__x64_sys_getuid")
int kprobe_getuid(void *ctx)
{
	__sync_fetch_and_add(&kprobe_hits, 1);
	return 0;
}

char _license[] SEC("license") = "GPL";
