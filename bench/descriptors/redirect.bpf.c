// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * The skmsg variant's sk_msg program: every sendmsg of a hop (a batch of 16-byte packet
 * descriptors, all bound for the same next hop) gets one verdict, a redirect of the whole message
 * into the receive queue of the socket registered under the first descriptor's `hop` (offset 13:
 * the index of the hop that receives it, as on the rings). The cheapest verdict there is: no
 * per-descriptor checks and no instance choice (bpf/chain/chain.bpf.c does both for request
 * chains), so this is sk_msg's best case. A key with no socket would fail the send and break the
 * sender's socket (docs/design.md gotcha 4): the bench registers every hop before traffic starts.
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#define DESC_SIZE 16
#define DESC_HOP_OFF 13

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} socks SEC(".maps");

SEC("sk_msg")
int desc_redirect(struct sk_msg_md *msg)
{
	__u32 key;

	/* data..data_end covers the first scatterlist element only (gotcha 6) */
	if (msg->data + DESC_SIZE > msg->data_end) {
		if (bpf_msg_pull_data(msg, 0, DESC_SIZE, 0))
			return SK_PASS;
		if (msg->data + DESC_SIZE > msg->data_end)
			return SK_PASS;
	}
	key = *((__u8 *)msg->data + DESC_HOP_OFF);
	return bpf_msg_redirect_hash(msg, &socks, &key, BPF_F_INGRESS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
