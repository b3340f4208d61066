/*
 * port-map: a TypeScript packet function (docs/packet-chains.md, "TypeScript packet functions").
 * Rewrites the UDP or TCP destination port of IPv4 frames by a table from the environment
 * (PORT_MAP="5000:6000,5001:6001"), decrements the TTL, and keeps both checksums right with
 * incremental updates (RFC 1624). Frames whose TTL runs out are dropped; everything else passes
 * on unchanged.
 *
 * A slow path by design: every batch crosses into Node and back. For line rate write the NF in C
 * (./snat.c does the same kind of work).
 */
import { csumReplace16, DROP, ETH_P_IP, IPPROTO_TCP, IPPROTO_UDP, type Packet, udpCsumReplace16 } from 'bpfctl/packet';

function parseMap(spec: string | undefined): Map<number, number> {
  const map = new Map<number, number>();
  for (const pair of (spec ?? '').split(',').filter(Boolean)) {
    const [from, to] = pair.split(':').map(Number);
    if (!Number.isInteger(from) || !Number.isInteger(to) || from! < 1 || from! > 65535 || to! < 1 || to! > 65535) {
      throw new Error(`PORT_MAP: '${pair}' is not from:to with ports 1..65535`);
    }
    map.set(from!, to!);
  }
  return map;
}

const ports = parseMap(process.env.PORT_MAP);

export default function portMap(packets: readonly Packet[]): void {
  for (const p of packets) {
    if (p.etherType !== ETH_P_IP) continue;
    const f = p.data;
    const ip = p.l3;
    // TTL and protocol share one 16-bit word of the header: that word changes, and with it the checksum.
    const ttl = f[ip + 8]!;
    if (ttl <= 1) {
      p.verdict = DROP;
      continue;
    }
    const oldWord = (ttl << 8) | f[ip + 9]!;
    f[ip + 8] = ttl - 1;
    csumReplace16(f, ip + 10, oldWord, oldWord - 0x100);

    const l4 = p.l4;
    if (l4 < 0 || (p.proto !== IPPROTO_UDP && p.proto !== IPPROTO_TCP)) continue;
    const dport = (f[l4 + 2]! << 8) | f[l4 + 3]!;
    const to = ports.get(dport);
    if (to === undefined) continue;
    f[l4 + 2] = to >>> 8;
    f[l4 + 3] = to & 0xff;
    if (p.proto === IPPROTO_UDP) udpCsumReplace16(f, l4 + 6, dport, to);
    else csumReplace16(f, l4 + 16, dport, to);
  }
}
