/**
 * The sockops program: registration of function instances (docs/internals.md, trust model). Only
 * a socket of a process inside the policy's cgroup (where this program is attached) that
 * connects to the hub from a local port the supervisor reserved in reg_ports gets into socks.
 */
export function sockopsProgram(): string {
  return `SEC("sockops")
int chain_sockops(struct bpf_sock_ops *skops)
{
	struct bpfctl_config *cfg;
	__u32 zero = 0, port, key, *reserved;

	/* Only the connecting side registers: the hub's accepted end must stay out of socks. */
	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		return 1;
	if (skops->family != AF_INET && skops->family != AF_INET6)
		return 1;
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || cfg->hub_port == 0)
		return 1;
	/* remote_port holds the network-order port in its upper 16 bits; local_port is host order
	 * (gotcha 7). */
	if (bpf_ntohl(skops->remote_port) != cfg->hub_port)
		return 1;
	port = skops->local_port;
	reserved = bpf_map_lookup_elem(&reg_ports, &port);
	if (!reserved)
		return 1;
	key = *reserved;
	/* BPF_ANY: a restarted instance replaces its dead predecessor's entry */
	bpf_sock_hash_update(skops, &socks, &key, BPF_ANY);
	return 1;
}`;
}
