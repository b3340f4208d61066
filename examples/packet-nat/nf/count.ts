/*
 * count, in TypeScript: the twin of ./count.c (frames and bytes per IP protocol, every frame
 * passed on unchanged, the totals printed on stderr when the instance stops). A TypeScript packet
 * function is a slow path: fine for counting, sampling or a control-plane reaction, not for line
 * rate (docs/packet-chains.md, "TypeScript packet functions").
 */
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, type Packet } from 'bpfctl/packet';

const frames = new Float64Array(257);
const bytes = new Float64Array(257);
const NON_IP = 256;

export default function count(packets: readonly Packet[]): void {
  for (const p of packets) {
    // The L4 protocol past IPv6 extension headers; a later IPv4 fragment counts as its IP protocol.
    let proto = p.proto;
    if (proto < 0 && p.etherType === 0x0800 && p.length >= p.l3 + 20) proto = p.data[p.l3 + 9]!;
    const k = proto < 0 ? NON_IP : proto;
    frames[k]!++;
    bytes[k]! += p.length;
    // verdict stays NEXT: on to the next function or the chain's egress
  }
}

const NAMES: Record<number, string> = { [IPPROTO_UDP]: 'udp', [IPPROTO_TCP]: 'tcp', [IPPROTO_ICMP]: 'icmp', 58: 'icmpv6', [NON_IP]: 'non-ip' };

// The runtime exits after draining its ring on SIGTERM: 'exit' is the place for totals.
process.on('exit', () => {
  const parts: string[] = [];
  for (let k = 0; k <= NON_IP; k++) if (frames[k]) parts.push(`${NAMES[k] ?? `proto ${k}`} ${frames[k]} frames ${bytes[k]} bytes`);
  process.stderr.write(`${process.env.BPFCTL_FN_NAME ?? 'count'}: ${parts.length ? parts.join(', ') : 'no frames'}\n`);
});
