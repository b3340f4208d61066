// Externs resolved by libbpf at load (.kconfig: kernel config and version) and string literals
// in .rodata.str1.1 (what a printf-style helper with a "%s" argument puts there), as
// libbpf-tools programs have them.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern _Bool CONFIG_BPF_SYSCALL __kconfig __weak;

__u32 seen_version;
__u32 bpf_syscall_enabled;
__u64 runs;

SEC("xdp")
int xdp_kconfig(struct xdp_md *ctx)
{
	seen_version = LINUX_KERNEL_VERSION;
	bpf_syscall_enabled = CONFIG_BPF_SYSCALL;
	runs++;
	bpf_printk("%s %s", "kconfig", "strings");
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
