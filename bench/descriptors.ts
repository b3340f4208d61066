/**
 * Descriptor transport bench (issue 11, item 3): the packet chains' choice, rings of 16-byte
 * descriptors in the shared pool, event-driven, batched (docs/packet-chains.md), against the
 * same descriptors over the sk_msg path bpfctl's request chains use. A chain of three processes,
 * producer -> middle hop -> consumer (a 2-NF packet chain's shape), four ways, side by side:
 *   ring-event  packet_ring.h rings in a MAP_SHARED memfd, consumers sleeping on the ring futex
 *   ring-poll   the same rings, consumers busy-polling
 *   skmsg       TCP sockets in a sockhash, an sk_msg program redirecting each batch (one
 *               sendmsg of 32 descriptors) into the next hop's receive queue
 *   unix        a SOCK_SEQPACKET socketpair per hop (baseline)
 * Per variant: max descriptors/s, p50/p99 one-way latency at 20% of the slowest max, CPU ns per
 * descriptor at both, idle CPU with nothing flowing for 3 s, syscalls and sleeps per batch.
 * Method: bench/descriptors/run.ts (METHOD) and BENCHMARKS.md, "Descriptor transport".
 *
 * Run: npm run bench -- descriptors [--quick]   (root; writes bench/results/descriptors.json,
 * ~2.5 min; --quick, ~30 s, one round, writes .cache/bench/descriptors-quick.json instead)
 * DESC_ROUNDS=n  rounds (default 7, quick 1);  DESC_VARIANTS=ring-event,unix  only these (skmsg,
 * the reference, is added);  DESC_RATE=n  the paced rate instead of 20% of the slowest max;
 * DESC_CPUS=P,M,C  pin producer, middle hop and consumer to these CPUs (default: unpinned);
 * DESC_REPORT_ONLY=1  no measuring: the tables again from the recorded points.
 * Every process is killed and the sk_msg object unloaded, on errors and Ctrl-C too; nothing is
 * pinned.
 */
import { fileURLToPath } from 'node:url';
import { run } from './descriptors/run.ts';

export { run };

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await run();
  process.exitCode = r.failures.length ? 1 : 0;
}
