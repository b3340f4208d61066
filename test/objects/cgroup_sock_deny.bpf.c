// cgroup socket hooks: refuse new sockets of one type, and count connect() calls (connect4).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 deny_type = 0; // SOCK_DGRAM = 2 to refuse UDP sockets; 0 = allow all
__u64 created;
__u64 refused;
__u64 connects;

SEC("cgroup/sock_create")
int sock_create_filter(struct bpf_sock *sk)
{
	if (deny_type && sk->type == deny_type) {
		__sync_fetch_and_add(&refused, 1);
		return 0;
	}
	__sync_fetch_and_add(&created, 1);
	return 1;
}

SEC("cgroup/connect4")
int connect4_count(struct bpf_sock_addr *ctx)
{
	__sync_fetch_and_add(&connects, 1);
	return 1;
}

char _license[] SEC("license") = "GPL";
