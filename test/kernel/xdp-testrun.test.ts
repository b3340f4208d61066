/**
 * Generated XDP programs on the real kernel through BPF_PROG_TEST_RUN: a table of crafted frames
 * (every rule kind, VLANs, IPv4 options and fragments, IPv6 extension headers, truncated and
 * malformed headers), each with the verdict it must get and the counter that must move. Also:
 * every golden program passes the verifier, and set changes take effect without a reload.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import firewall from '../../examples/firewall/policy.ts';
import type { XdpSectionSpec } from '../../src/dsl/xdp.ts';
import { buildXdpObject } from '../../src/deploy/xdp.ts';
import { readCounter } from '../../src/deploy/xdp-stats.ts';
import { encodeSetKey, SET_VALUE } from '../../src/deploy/xdp-sets.ts';
import { XDP_PROG_NAME } from '../../src/codegen/xdp/index.ts';
import { lowerPolicy } from '../../src/ir/policy.ts';
import { lowerXdpSections } from '../../src/ir/xdp.ts';
import type { BpfObject } from '../../loader/index.ts';
import { GOLDEN_SECTIONS } from '../golden/xdp/sections.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { eth, icmp, icmpv6, ipv4, ipv6, padded, TCP, tcp, truncate, udp, XDP, type XdpVerdictName } from '../helpers/packets.ts';

const test = suite('xdp test-run');
// Taken when the suite starts, not at import: uvu imports every test file (and tsx starts its
// compiler service) before running any of them.
let before: Snapshot;

const SECTION: XdpSectionSpec = {
  interface: 'lo',
  default: 'pass',
  sets: {
    bl4: { type: 'ipv4-prefix', elements: ['10.66.0.0/16'] },
    bl6: { type: 'ipv6-prefix', elements: ['2001:db8:66::/48'] },
    web: { type: 'port', elements: [80, 443] },
    macs: { type: 'mac', elements: ['02:00:00:00:00:bb'] },
    h4: { type: 'ipv4', elements: ['198.18.9.9'] },
    h6: { type: 'ipv6', elements: ['fd00::99'] },
  },
  rules: [
    { name: 'qinq', match: { vlan: 20, innerVlan: 30 }, action: 'tx' },
    { name: 'vlan10', match: { vlan: 10 }, action: 'drop' },
    { name: 'bad-mac', match: { srcMac: { set: 'macs' } }, action: 'drop' },
    { name: 'router-mac', match: { dstMac: '02:00:00:00:00:cc' }, action: 'tx' },
    { name: 'arp', match: { ethType: 'arp' }, action: 'pass' },
    { name: 'bl4', match: { src: { set: 'bl4' } }, action: 'drop' },
    { name: 'bl6', match: { src: { set: 'bl6' } }, action: 'drop' },
    { name: 'h4', match: { dst: { set: 'h4' } }, action: 'drop' },
    { name: 'h6', match: { dst: { set: 'h6' } }, action: 'drop' },
    { name: 'frag-net', match: { src: '10.77.0.0/16' }, action: 'drop' },
    { name: 'syn-only', match: { proto: 'tcp', dport: 8080, tcpFlags: 'syn,!ack' }, action: 'drop' },
    { name: 'web', match: { proto: 'tcp', dport: { set: 'web' } }, action: 'pass' },
    { name: 'ssh-net', match: { src: '192.0.2.0/24', proto: 'tcp', dport: 22 }, action: 'pass' },
    { name: 'ssh', match: { proto: 'tcp', dport: 22 }, action: 'drop' },
    { name: 'udp-range', match: { proto: 'udp', dport: [5000, 5010] }, action: { redirect: 'lo' } },
    { name: 'dns6', match: { src: 'fd00:1::/32', proto: 'udp', sport: 53 }, action: 'pass' },
    { name: 'to-xsk', match: { proto: 'udp', dport: 4789 }, action: { xsk: 'ids' } },
    { name: 'ping4', match: { proto: 'icmp', icmpType: 'echo-request' }, action: 'drop' },
    { name: 'ping6', match: { proto: 'icmpv6', icmpType: 'echo-request' }, action: 'tx' },
    { name: 'dscp-ef', match: { dscp: 46 }, action: 'tx' },
    { name: 'low-sport', match: { sport: [1, 1023] }, action: 'drop', count: false },
  ],
};

const [section] = lowerXdpSections([SECTION], 'xdp');
const ir = { name: 'testrun', xdp: [section!] };
const ruleIndex = new Map(section!.rules.map((r) => [r.name, r.index]));

type Hit = string; // a rule name, 'default', 'malformed'
interface Case {
  name: string;
  frame: Uint8Array;
  verdict: XdpVerdictName;
  hit: Hit;
  /** Also a non-first fragment (xdp_stats[1]). */
  fragment?: boolean;
}

const v4 = (o: Parameters<typeof ipv4>[0], l4?: Parameters<typeof ipv4>[1], e: Parameters<typeof eth>[0] = {}) => padded(eth(e, ipv4(o, l4)));
const v6 = (o: Parameters<typeof ipv6>[0], l4?: Parameters<typeof ipv6>[1], e: Parameters<typeof eth>[0] = {}) => padded(eth(e, ipv6(o, l4)));
const dstOpts = (n: number) => Array.from({ length: n }, () => ({ type: 'dest' as const }));

const CASES: Case[] = [
  { name: 'plain UDP', frame: v4({}, udp({ dport: 9999 })), verdict: 'pass', hit: 'default' },
  { name: 'VLAN 10', frame: v4({}, udp({}), { vlans: [10] }), verdict: 'drop', hit: 'vlan10' },
  { name: 'QinQ 20/30', frame: v4({}, udp({}), { vlans: [20, 30] }), verdict: 'tx', hit: 'qinq' },
  { name: 'QinQ 20/31', frame: v4({}, udp({ dport: 9999 }), { vlans: [20, 31] }), verdict: 'pass', hit: 'default' },
  { name: 'QinQ outer 10 (rule vlan10)', frame: v4({}, udp({}), { vlans: [10, 30] }), verdict: 'drop', hit: 'vlan10' },
  { name: 'three tags: 3rd is not parsed, no IP', frame: padded(eth({ vlans: [99, 98, 97] }, ipv4({}, udp({})))), verdict: 'pass', hit: 'default' },
  { name: 'VLAN tag cut short', frame: truncate(eth({ vlans: [10] }), 16), verdict: 'drop', hit: 'malformed' },
  { name: 'src MAC in set', frame: v4({}, udp({}), { src: '02:00:00:00:00:bb' }), verdict: 'drop', hit: 'bad-mac' },
  { name: 'dst MAC inline', frame: v4({}, udp({}), { dst: '02:00:00:00:00:cc' }), verdict: 'tx', hit: 'router-mac' },
  { name: 'ARP', frame: padded(eth({ type: 0x0806 }, new Uint8Array(28))), verdict: 'pass', hit: 'arp' },
  { name: 'LLDP (other EtherType)', frame: padded(eth({ type: 0x88cc })), verdict: 'pass', hit: 'default' },
  { name: 'IPv4 src in LPM set', frame: v4({ src: '10.66.3.4' }, udp({})), verdict: 'drop', hit: 'bl4' },
  { name: 'IPv4 src just outside', frame: v4({ src: '10.67.0.1' }, udp({ dport: 9999 })), verdict: 'pass', hit: 'default' },
  { name: 'IPv6 src in LPM set', frame: v6({ src: '2001:db8:66:1::5' }, udp({})), verdict: 'drop', hit: 'bl6' },
  { name: 'IPv4 dst in hash set', frame: v4({ dst: '198.18.9.9' }, udp({})), verdict: 'drop', hit: 'h4' },
  { name: 'IPv6 dst in hash set', frame: v6({ dst: 'fd00::99' }, udp({})), verdict: 'drop', hit: 'h6' },
  { name: 'TCP SYN to 8080', frame: v4({}, tcp({ dport: 8080, flags: TCP.syn })), verdict: 'drop', hit: 'syn-only' },
  { name: 'TCP SYN+ACK to 8080', frame: v4({}, tcp({ dport: 8080, flags: TCP.syn | TCP.ack })), verdict: 'pass', hit: 'default' },
  { name: 'TCP 443 (port set)', frame: v4({}, tcp({ dport: 443 })), verdict: 'pass', hit: 'web' },
  { name: 'TCP 80 over IPv6 (port set)', frame: v6({}, tcp({ dport: 80 })), verdict: 'pass', hit: 'web' },
  { name: 'UDP 443 is not TCP', frame: v4({}, udp({ dport: 443 })), verdict: 'pass', hit: 'default' },
  { name: 'ssh from allowed net', frame: v4({ src: '192.0.2.7' }, tcp({ dport: 22 })), verdict: 'pass', hit: 'ssh-net' },
  { name: 'ssh from elsewhere', frame: v4({ src: '198.18.0.1' }, tcp({ dport: 22 })), verdict: 'drop', hit: 'ssh' },
  { name: 'ssh over IPv6', frame: v6({}, tcp({ dport: 22 })), verdict: 'drop', hit: 'ssh' },
  { name: 'UDP range low end', frame: v4({}, udp({ dport: 5000 })), verdict: 'redirect', hit: 'udp-range' },
  { name: 'UDP range high end', frame: v4({}, udp({ dport: 5010 })), verdict: 'redirect', hit: 'udp-range' },
  { name: 'UDP past the range', frame: v4({}, udp({ dport: 5011 })), verdict: 'pass', hit: 'default' },
  { name: 'IPv6 inline prefix + sport', frame: v6({ src: 'fd00:1:0:1::1' }, udp({ sport: 53, dport: 40000 })), verdict: 'pass', hit: 'dns6' },
  { name: 'IPv6 outside the prefix', frame: v6({ src: 'fd00:2::1' }, udp({ sport: 53, dport: 40000 })), verdict: 'drop', hit: 'low-sport' },
  { name: 'AF_XDP class, no socket bound: stack', frame: v4({}, udp({ dport: 4789 })), verdict: 'pass', hit: 'to-xsk' },
  { name: 'ICMP echo request', frame: v4({}, icmp({ type: 8 })), verdict: 'drop', hit: 'ping4' },
  { name: 'ICMP echo reply', frame: v4({}, icmp({ type: 0 })), verdict: 'pass', hit: 'default' },
  { name: 'ICMPv6 echo request', frame: v6({}, icmpv6({ type: 128 })), verdict: 'tx', hit: 'ping6' },
  { name: 'DSCP EF over IPv4', frame: v4({ dscp: 46 }, udp({ dport: 9999 })), verdict: 'tx', hit: 'dscp-ef' },
  { name: 'DSCP EF over IPv6', frame: v6({ dscp: 46 }, udp({ dport: 9999 })), verdict: 'tx', hit: 'dscp-ef' },
  { name: 'uncounted rule', frame: v4({}, udp({ sport: 123, dport: 9999 })), verdict: 'drop', hit: 'low-sport' },
  { name: 'GRE: no L4 fields', frame: v4({ proto: 47 }, new Uint8Array(8)), verdict: 'pass', hit: 'default' },
  // IPv4 header variants
  { name: 'IPv4 options are skipped', frame: v4({ src: '192.0.2.7', options: [1, 1, 1, 1, 1, 1, 1, 0] }, tcp({ dport: 22 })), verdict: 'pass', hit: 'ssh-net' },
  { name: 'IHL 4', frame: v4({ ihl: 4 }, udp({})), verdict: 'drop', hit: 'malformed' },
  { name: 'IHL 15 past the frame end', frame: eth({}, ipv4({ ihl: 15 }, udp({}))), verdict: 'drop', hit: 'malformed' },
  { name: 'IPv4 version 5', frame: v4({ version: 5 }, udp({})), verdict: 'drop', hit: 'malformed' },
  { name: 'IPv4 total length < header', frame: v4({ totalLength: 12 }, udp({})), verdict: 'drop', hit: 'malformed' },
  { name: 'IPv4 header cut short', frame: truncate(eth({}, ipv4({}, udp({}))), 14 + 10), verdict: 'drop', hit: 'malformed' },
  { name: 'EtherType IPv4, no header', frame: eth({ type: 0x0800 }), verdict: 'drop', hit: 'malformed' },
  { name: 'TCP header cut short', frame: truncate(eth({}, ipv4({}, tcp({ dport: 22 }))), 14 + 20 + 12), verdict: 'drop', hit: 'malformed' },
  { name: 'TCP data offset 4', frame: v4({}, tcp({ dport: 22, doff: 4 })), verdict: 'drop', hit: 'malformed' },
  { name: 'UDP header cut short', frame: truncate(eth({}, ipv4({}, udp({}))), 14 + 20 + 6), verdict: 'drop', hit: 'malformed' },
  { name: 'ICMP header cut short', frame: truncate(eth({}, ipv4({}, icmp({}))), 14 + 20 + 4), verdict: 'drop', hit: 'malformed' },
  // fragments
  { name: 'IPv4 first fragment has ports', frame: v4({ moreFragments: true }, tcp({ dport: 22 })), verdict: 'drop', hit: 'ssh' },
  { name: 'IPv4 later fragment: no ports', frame: v4({ fragOffset: 100, proto: 6 }, tcp({ dport: 22 })), verdict: 'pass', hit: 'default', fragment: true },
  { name: 'IPv4 later fragment, L3 rule', frame: v4({ src: '10.77.1.1', fragOffset: 100, proto: 6 }, tcp({})), verdict: 'drop', hit: 'frag-net', fragment: true },
  { name: 'IPv4 tiny first fragment', frame: truncate(eth({}, ipv4({ moreFragments: true }, tcp({ dport: 22 }))), 14 + 20 + 8), verdict: 'drop', hit: 'malformed' },
  // IPv6 extension headers
  { name: 'IPv6 hop-by-hop + dest-opts', frame: v6({ ext: [{ type: 'hop' }, { type: 'dest', units: 1 }] }, tcp({ dport: 22 })), verdict: 'drop', hit: 'ssh' },
  { name: 'IPv6 routing + first fragment', frame: v6({ ext: [{ type: 'routing', units: 2 }, { type: 'fragment', more: true }] }, udp({ dport: 5005 })), verdict: 'redirect', hit: 'udp-range' },
  { name: 'IPv6 later fragment: no ports', frame: v6({ ext: [{ type: 'fragment', offset: 10 }] }, udp({ dport: 5005 })), verdict: 'pass', hit: 'default', fragment: true },
  { name: 'IPv6 six extension headers', frame: v6({ ext: dstOpts(6) }, tcp({ dport: 22 })), verdict: 'drop', hit: 'ssh' },
  { name: 'IPv6 seven extension headers', frame: v6({ ext: dstOpts(7) }, tcp({ dport: 22 })), verdict: 'drop', hit: 'malformed' },
  { name: 'IPv6 extension header cut short', frame: truncate(eth({}, ipv6({ ext: [{ type: 'hop', units: 3 }] }, udp({}))), 14 + 40 + 16), verdict: 'drop', hit: 'malformed' },
  { name: 'IPv6 header cut short', frame: truncate(eth({}, ipv6({}, udp({}))), 14 + 30), verdict: 'drop', hit: 'malformed' },
  { name: 'IPv6 version 4', frame: v6({ version: 4 }, udp({})), verdict: 'drop', hit: 'malformed' },
  { name: 'IPv6 no next header', frame: v6({ nextHeader: 59 }), verdict: 'pass', hit: 'default' },
  { name: 'ICMPv6 cut short', frame: truncate(eth({}, ipv6({}, icmpv6({}))), 14 + 40 + 4), verdict: 'drop', hit: 'malformed' },
];

let obj: BpfObject | null = null;

test.before(() => {
  before = snapshot();
  obj = buildXdpObject(ir, 0);
});

// uvu swallows errors thrown by hooks: the leak check is the last test, the hook a safety net.
test.after(() => obj?.close());

function counterOf(hit: Hit): { map: string; slot: number } {
  if (hit === 'malformed') return { map: 'xdp_stats', slot: 0 };
  if (hit === 'default') return { map: 'rule_stats', slot: section!.rules.length };
  const slot = ruleIndex.get(hit);
  if (slot === undefined) throw new Error(`no rule ${hit}`);
  return { map: 'rule_stats', slot };
}

function run(c: Case): void {
  const o = obj!;
  const prog = o.program(XDP_PROG_NAME);
  const { map, slot } = counterOf(c.hit);
  const counted = c.hit === 'malformed' || c.hit === 'default' || section!.rules[slot]!.count;
  const before = readCounter(o.map(map), slot);
  const frag0 = readCounter(o.map('xdp_stats'), 1).packets;
  const r = prog.testRun(c.frame);
  const after = readCounter(o.map(map), slot);
  assert.is(r.retval, XDP[c.verdict], `${c.name}: verdict ${r.retval}, want ${XDP[c.verdict]} (${c.verdict})`);
  assert.is(after.packets - before.packets, counted ? 1n : 0n, `${c.name}: counter of ${c.hit}`);
  if (counted) assert.is(after.bytes - before.bytes, BigInt(c.frame.length), `${c.name}: bytes of ${c.hit}`);
  assert.is(readCounter(o.map('xdp_stats'), 1).packets - frag0, c.fragment ? 1n : 0n, `${c.name}: fragment counter`);
}

test('the packet table', () => {
  // A redirect target: the devmap slot of 'lo' is filled (else redirect falls back to drop).
  for (const c of CASES) run(c);
  // Every counted rule was exercised by some frame.
  const hits = new Set(CASES.map((c) => c.hit));
  for (const r of section!.rules) assert.ok(hits.has(r.name), `no case hits rule ${r.name}`);
});

test('counters add up per rule', () => {
  const o = obj!;
  const total = section!.rules.reduce((n, r) => n + readCounter(o.map('rule_stats'), r.index).packets, 0n);
  const expected = CASES.filter((c) => c.hit !== 'malformed' && c.hit !== 'default' && section!.rules[ruleIndex.get(c.hit)!]!.count).length;
  assert.is(total, BigInt(expected));
});

test('set changes take effect without a reload', () => {
  const o = obj!;
  const prog = o.program(XDP_PROG_NAME);
  const frame = v4({ src: '198.18.50.1' }, udp({ dport: 9999 }));
  const key = encodeSetKey('bl4', 'ipv4-prefix', '198.18.50.0/24');
  assert.is(prog.testRun(frame).retval, XDP.pass);
  o.map('set_bl4').update(key, SET_VALUE);
  assert.is(prog.testRun(frame).retval, XDP.drop);
  assert.ok(o.map('set_bl4').delete(key));
  assert.is(prog.testRun(frame).retval, XDP.pass);
  const port = encodeSetKey('web', 'port', 8443);
  const https = v4({}, tcp({ dport: 8443, flags: TCP.ack }));
  assert.is(readCounter(o.map('rule_stats'), ruleIndex.get('web')!).packets > 0n, true);
  const webBefore = readCounter(o.map('rule_stats'), ruleIndex.get('web')!).packets;
  o.map('set_web').update(port, SET_VALUE);
  assert.is(prog.testRun(https).retval, XDP.pass);
  assert.is(readCounter(o.map('rule_stats'), ruleIndex.get('web')!).packets, webBefore + 1n);
});

test('malformed: pass sends malformed frames to the stack (still counted)', () => {
  const [s] = lowerXdpSections([{ interface: 'lo', malformed: 'pass', default: 'drop' }], 'xdp');
  const o = buildXdpObject({ name: 'testrun-mp', xdp: [s!] }, 0);
  try {
    const r = o.program(XDP_PROG_NAME).testRun(v4({ ihl: 3 }, udp({})));
    assert.is(r.retval, XDP.pass);
    assert.is(readCounter(o.map('xdp_stats'), 0).packets, 1n);
    assert.is(o.program(XDP_PROG_NAME).testRun(v4({}, udp({}))).retval, XDP.drop);
  } finally {
    o.close();
  }
});

test('long sections: rules split into functions still verify and match in order', () => {
  const rules = Array.from({ length: 300 }, (_, i) =>
    i % 3 === 0
      ? { name: `v6-${i}`, match: { dst: `fd00::${i.toString(16)}`, proto: 'udp' as const, dport: [1000, 2000 + i] as [number, number] }, action: 'tx' as const }
      : { name: `udp-${i}`, match: { proto: 'udp' as const, dport: 10000 + i }, action: 'drop' as const },
  );
  const [s] = lowerXdpSections([{ interface: 'lo', rules }], 'xdp');
  const o = buildXdpObject({ name: 'testrun-long', xdp: [s!] }, 0);
  try {
    const prog = o.program(XDP_PROG_NAME);
    for (const [frame, verdict, slot] of [
      [v4({}, udp({ dport: 10299 })), XDP.drop, 299],
      [v4({}, udp({ dport: 10151 })), XDP.drop, 151],
      [v6({ dst: 'fd00::129' }, udp({ dport: 1500 })), XDP.tx, 297],
      [v6({ dst: 'fd00::96' }, udp({ dport: 2150 })), XDP.tx, 150],
      [v4({}, udp({ dport: 9 })), XDP.pass, 300],
    ] as const) {
      const before = readCounter(o.map('rule_stats'), slot).packets;
      assert.is(prog.testRun(frame).retval, verdict, `rule ${slot}`);
      assert.is(readCounter(o.map('rule_stats'), slot).packets, before + 1n, `counter of rule ${slot}`);
    }
  } finally {
    o.close();
  }
});

test('a 10000-element set: one lookup, matched at either end', () => {
  const elements = Array.from({ length: 10000 }, (_, i) => `10.${(i >> 8) & 0xff}.${i & 0xff}.0/24`);
  const [s] = lowerXdpSections([{ interface: 'lo', sets: { big: { type: 'ipv4-prefix', elements, maxEntries: 10000 } }, rules: [{ match: { src: { set: 'big' } }, action: 'drop' }] }], 'xdp');
  const o = buildXdpObject({ name: 'testrun-bigset', xdp: [s!] }, 0);
  try {
    const prog = o.program(XDP_PROG_NAME);
    assert.is(prog.testRun(v4({ src: '10.0.0.9' }, udp({}))).retval, XDP.drop);
    assert.is(prog.testRun(v4({ src: '10.39.15.200' }, udp({}))).retval, XDP.drop);
    assert.is(prog.testRun(v4({ src: '10.39.16.1' }, udp({}))).retval, XDP.pass);
  } finally {
    o.close();
  }
});

test('every golden program and the example pass the verifier', () => {
  const sections = Object.entries(GOLDEN_SECTIONS).map(([name, spec]) => ({ name, ir: { name: `golden-${name}`, xdp: lowerXdpSections([{ ...spec, interface: 'lo' } as XdpSectionSpec], 'xdp') } }));
  const fw = lowerPolicy(firewall);
  sections.push({ name: 'firewall', ir: { name: fw.name, xdp: fw.xdp.map((s) => ({ ...s, interface: 'lo' })) } });
  for (const { name, ir: policy } of sections) {
    // Redirect targets must exist to fill the devmap: point them at lo.
    const xdp = policy.xdp.map((s) => ({ ...s, redirects: s.redirects.map(() => 'lo') }));
    const o = buildXdpObject({ name: policy.name, xdp }, 0);
    try {
      assert.ok(o.program(XDP_PROG_NAME).id > 0, name);
    } finally {
      o.close();
    }
  }
});

test('leaves nothing behind', async () => {
  obj?.close();
  obj = null;
  const leaks = await leaksSince(before);
  assert.equal(leaks, [], leaks.join('\n'));
});

test.run();
