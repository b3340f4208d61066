// The packet builders the XDP kernel tests trust: layouts, chaining and checksums.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { checksum, eth, icmp, IPPROTO, ipv4, ipv6, TCP, tcp, udp } from '../helpers/packets.ts';

const test = suite('xdp packets');
const be16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;

test('Ethernet with two VLAN tags: 802.1ad outside, 802.1Q inside, then the EtherType', () => {
  const f = eth({ vlans: [100, 200] }, ipv4({}, udp({})));
  assert.equal([be16(f, 12), be16(f, 14) & 0xfff, be16(f, 16), be16(f, 18) & 0xfff, be16(f, 20)], [0x88a8, 100, 0x8100, 200, 0x0800]);
  assert.is(f[22]! >> 4, 4);
});

test('IPv4: header checksum, options, fragments, protocol from the payload', () => {
  const p = ipv4({ options: [1, 1, 1], fragOffset: 3, moreFragments: true }, tcp({ dport: 22 })).bytes;
  assert.is(p[0], 0x46);
  assert.is(checksum(p.subarray(0, 24)), 0);
  assert.is(be16(p, 6), (1 << 13) | 3);
  assert.is(p[9], IPPROTO.tcp);
});

test('TCP/UDP/ICMP checksums verify', () => {
  const f = ipv4({ src: '192.0.2.1', dst: '192.0.2.2' }, tcp({ dport: 80, flags: TCP.syn }, new Uint8Array([1, 2, 3]))).bytes;
  const seg = f.subarray(20);
  const pseudo = Uint8Array.from([...f.subarray(12, 20), 0, 6, 0, seg.length]);
  assert.is(checksum(pseudo, seg), 0);
  const u = ipv6({}, udp({ dport: 53 }, new Uint8Array([9, 9]))).bytes;
  const useg = u.subarray(40);
  assert.is(checksum(Uint8Array.from([...u.subarray(8, 40), 0, 0, 0, useg.length, 0, 0, 0, 17]), useg), 0);
  assert.is(checksum(icmp({ type: 8 }).bytes), 0);
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
