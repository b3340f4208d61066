// Pre-BTF map definitions in a "maps" section (iproute2/old samples): libbpf 1.x refuses them.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct bpf_map_def_legacy { unsigned int type, key_size, value_size, max_entries, map_flags; };
struct bpf_map_def_legacy SEC("maps") legacy = { .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4, .max_entries = 4 };
SEC("xdp") int legacy_prog(struct xdp_md *ctx) { __u32 k = 0; return bpf_map_lookup_elem(&legacy, &k) ? XDP_PASS : XDP_DROP; }
char _license[] SEC("license") = "GPL";
