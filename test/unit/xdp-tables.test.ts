/**
 * The XDP match table against the C it writes: every field's conditions read only the `struct
 * pkt` fields its entry declares, and PKT_FIELDS is exactly the parser's struct. With the types
 * (MATCH_CODEGEN and SAMPLES are keyed by the DSL's match), a match field added to the DSL but
 * not to the codegen, or a condition that reads a field the parser never fills, fails here or in
 * tsc instead of silently matching more packets.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MATCH_CODEGEN } from '../../src/codegen/xdp/rules.ts';
import { PARSER, PKT_FIELDS } from '../../src/codegen/xdp/parser.ts';
import type { XdpMatch } from '../../src/dsl/xdp.ts';
import { lowerXdpSections } from '../../src/ir/xdp.ts';

const test = suite('xdp tables');

const SETS = {
  nets: { type: 'ipv4-prefix' as const, elements: ['10.0.0.0/8'] },
  nets6: { type: 'ipv6-prefix' as const, elements: ['fd00::/8'] },
  hosts: { type: 'ipv4' as const, elements: ['192.0.2.1'] },
  hosts6: { type: 'ipv6' as const, elements: ['::1'] },
  ports: { type: 'port' as const, elements: [80] },
  macs: { type: 'mac' as const, elements: ['aa:bb:cc:dd:ee:ff'] },
};

/** Example values of every field (with what else the match needs for it to be valid). */
const SAMPLES: { readonly [K in keyof XdpMatch]-?: readonly XdpMatch[]} = {
  proto: [{ proto: 'tcp' }, { proto: 'icmpv6' }, { proto: 47 }],
  sport: [{ sport: 22 }, { sport: [1, 1024] }, { sport: { set: 'ports' } }, { sport: [0, 65535] }],
  dport: [{ dport: 22 }, { dport: '1-1024' }, { dport: { set: 'ports' } }],
  tcpFlags: [{ tcpFlags: 'syn,!ack' }],
  icmpType: [{ proto: 'icmp', icmpType: 'echo-request' }, { proto: 'icmpv6', icmpType: 128 }],
  icmpCode: [{ proto: 'icmp', icmpCode: 0 }],
  dscp: [{ dscp: 46 }],
  vlan: [{ vlan: 5 }],
  innerVlan: [{ vlan: 5, innerVlan: 6 }],
  ethType: [{ ethType: 0x88cc }, { ethType: 'ipv4' }, { ethType: 'ipv6', proto: 'tcp' }],
  src: [{ src: '10.0.0.0/8' }, { src: '192.0.2.1' }, { src: 'fd00::/8' }, { src: { set: 'nets' } }, { src: { set: 'nets6' } }, { src: { set: 'hosts' } }, { src: { set: 'hosts6' } }],
  dst: [{ dst: '10.1.0.0/16' }, { dst: '::1' }, { dst: { set: 'nets6' } }],
  srcMac: [{ srcMac: 'aa:bb:cc:dd:ee:ff' }, { srcMac: { set: 'macs' } }],
  dstMac: [{ dstMac: '01:00:5e:00:00:01' }, { dstMac: { set: 'macs' } }],
};

test("PKT_FIELDS is the parser's struct pkt, field for field", () => {
  const body = /struct pkt \{([\s\S]*?)\n\};/.exec(PARSER)?.[1];
  assert.ok(body, 'struct pkt in PARSER');
  const fields = [...body!.matchAll(/^\s*[^;/]*?[\s*](\w+);/gm)].map((m) => m[1]);
  assert.equal(fields, [...PKT_FIELDS]);
});

test('every field has samples and its conditions read only what its entry declares', () => {
  assert.equal(Object.keys(SAMPLES).sort(), Object.keys(MATCH_CODEGEN).sort());
  for (const key of Object.keys(MATCH_CODEGEN) as (keyof XdpMatch)[]) {
    const entry = MATCH_CODEGEN[key];
    for (const sample of SAMPLES[key]) {
      const [section] = lowerXdpSections([{ interface: 'eth0', sets: SETS, rules: [{ match: sample, action: 'drop' }] }], 'xdp');
      const m = section!.rules[0]!.match;
      const value = m[key];
      assert.ok(value !== undefined, `${key}: ${JSON.stringify(sample)} lowers to a value`);
      for (const known of [undefined, m.proto]) {
        const c = (entry as unknown as { cond: (v: unknown, m: unknown, k: number | undefined) => Record<string, readonly string[] | undefined> }).cond(value, m, known);
        const text = [...(c.selective ?? []), ...(c.inline ?? []), ...(c.lookups ?? [])].join(' ');
        const reads = new Set([...text.matchAll(/\bp\.(\w+)/g)].map((x) => x[1]));
        for (const r of reads) assert.ok((entry.reads as readonly string[]).includes(r!), `${key} reads p.${r} but declares ${entry.reads.join(', ')}`);
      }
    }
  }
});

test.run();
