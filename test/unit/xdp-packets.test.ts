// The packet builders the XDP kernel tests trust: layouts, chaining and checksums.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { eth, icmp, IPPROTO, ipv4, ipv6, TCP, tcp, udp } from '../helpers/packets.ts';

const test = suite('xdp packets');
const be16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;

test('Ethernet with two VLAN tags: 802.1ad outside, 802.1Q inside, then the EtherType', () => {
  const f = eth({ vlans: [100, 200] }, ipv4({}, udp({})));
  assert.equal([be16(f, 12), be16(f, 14) & 0xfff, be16(f, 16), be16(f, 18) & 0xfff, be16(f, 20)], [0x88a8, 100, 0x8100, 200, 0x0800]);
  assert.is(f[22]! >> 4, 4);
});

/**
 * RFC 1071 written here, independently of packets.ts (whose checksum() built the packets): sum
 * the 16-bit big-endian words, fold the carries, complement. Checked against a published vector.
 */
function rfc1071(...parts: Uint8Array[]): number {
  const b = parts.flatMap((p) => [...p]);
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) | (b[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
/** The checksum field at `off` as the builder wrote it, and the reference over the bytes with it zeroed. */
function written(bytes: Uint8Array, off: number, pseudo: Uint8Array = new Uint8Array(0)): [number, number] {
  const z = Uint8Array.from(bytes);
  z[off] = 0;
  z[off + 1] = 0;
  return [be16(bytes, off), rfc1071(pseudo, z)];
}

test('the reference checksum gives the published answer (IPv4 header example: 0xb861)', () => {
  const h = Uint8Array.from([0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0, 0xc7]);
  assert.is(rfc1071(h), 0xb861);
});

test('IPv4: header checksum, options, fragments, protocol from the payload', () => {
  const p = ipv4({ options: [1, 1, 1], fragOffset: 3, moreFragments: true }, tcp({ dport: 22 })).bytes;
  assert.is(p[0], 0x46);
  const [got, want] = written(p.subarray(0, 24), 10);
  assert.is(got, want, 'IPv4 header checksum');
  assert.is(be16(p, 6), (1 << 13) | 3);
  assert.is(p[9], IPPROTO.tcp);
});

test('TCP/UDP/ICMP checksums match the reference', () => {
  const f = ipv4({ src: '192.0.2.1', dst: '192.0.2.2' }, tcp({ dport: 80, flags: TCP.syn }, new Uint8Array([1, 2, 3]))).bytes;
  const seg = f.subarray(20);
  const pseudo4 = Uint8Array.from([...f.subarray(12, 20), 0, IPPROTO.tcp, seg.length >> 8, seg.length & 255]);
  const [tcpGot, tcpWant] = written(seg, 16, pseudo4);
  assert.is(tcpGot, tcpWant, 'TCP checksum');
  const u = ipv6({}, udp({ dport: 53 }, new Uint8Array([9, 9]))).bytes;
  const useg = u.subarray(40);
  const pseudo6 = Uint8Array.from([...u.subarray(8, 40), 0, 0, useg.length >> 8, useg.length & 255, 0, 0, 0, IPPROTO.udp]);
  const [udpGot, udpWant] = written(useg, 6, pseudo6);
  assert.is(udpGot, udpWant || 0xffff, 'UDP checksum (0 is sent as 0xffff)');
  const ic = icmp({ type: 8 }, new Uint8Array([1, 2, 3, 4, 5])).bytes;
  const [icGot, icWant] = written(ic, 2);
  assert.is(icGot, icWant, 'ICMP checksum');
});

test('IPv6 extension headers chain to the L4 header', () => {
  const p = ipv6({ ext: [{ type: 'hop' }, { type: 'routing', units: 1 }, { type: 'fragment', offset: 5, more: true }] }, udp({})).bytes;
  assert.is(p[6], IPPROTO.hop);
  assert.is(p[40], IPPROTO.routing);
  assert.is(p[48], IPPROTO.fragment); // routing header is 16 bytes (units 1)
  assert.is(p[64], IPPROTO.udp);
  assert.is(be16(p, 66), (5 << 3) | 1);
  assert.is(be16(p, 4), p.length - 40);
});

test.run();
