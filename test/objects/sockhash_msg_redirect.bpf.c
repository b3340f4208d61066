// Service-mesh style (Cilium/Merbridge "sockops acceleration"): sockops puts every established
// local TCP socket into a sockhash keyed by its 4-tuple; sk_msg redirects a send straight into
// the peer socket, bypassing the TCP/IP stack.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct sock_key {
	__u32 sip;
	__u32 dip;
	__u32 sport;
	__u32 dport;
};

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 64);
	__type(key, struct sock_key);
	__type(value, __u64);
} sock_ops_map SEC(".maps");

const volatile __u32 service_port = 0;
__u64 inserted;
__u64 redirected;

SEC("sockops")
int bpf_sockops_cb(struct bpf_sock_ops *skops)
{
	if (skops->family != 2 /* AF_INET */)
		return 0;
	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 0;
	__u32 lport = skops->local_port;
	__u32 rport = bpf_ntohl(skops->remote_port);
	if (service_port && lport != service_port && rport != service_port)
		return 0;
	struct sock_key key = { .sip = skops->local_ip4, .dip = skops->remote_ip4, .sport = lport, .dport = rport };
	if (bpf_sock_hash_update(skops, &sock_ops_map, &key, BPF_NOEXIST) == 0)
		__sync_fetch_and_add(&inserted, 1);
	return 0;
}

SEC("sk_msg")
int bpf_redir(struct sk_msg_md *msg)
{
	struct sock_key peer = { .sip = msg->remote_ip4, .dip = msg->local_ip4, .sport = bpf_ntohl(msg->remote_port), .dport = msg->local_port };
	if (bpf_msg_redirect_hash(msg, &sock_ops_map, &peer, BPF_F_INGRESS) == SK_PASS)
		__sync_fetch_and_add(&redirected, 1);
	return SK_PASS;
}

char _license[] SEC("license") = "GPL";
