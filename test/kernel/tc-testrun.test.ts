/**
 * The classification codegen is hook-neutral: the same sections compiled for tc (sched_cls, the
 * program tcx attaches at ingress or egress) pass the verifier and decide the same frames as at
 * XDP, through BPF_PROG_TEST_RUN: every XDP verdict has its tc counterpart (pass TC_ACT_OK, drop
 * TC_ACT_SHOT, tx and redirect TC_ACT_REDIRECT) and the same rule counter moves.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import firewall from '../../examples/firewall/policy.ts';
import { generateClassifier, generateXdp, HOOKS, setMapName, XDP_MAPS } from '../../src/codegen/xdp/index.ts';
import { compileBpf } from '../../src/compile/index.ts';
import { encodeSetKey, SET_VALUE } from '../../src/deploy/xdp-sets.ts';
import { readCounter } from '../../src/deploy/xdp-stats.ts';
import type { XdpSectionSpec } from '../../src/dsl/xdp.ts';
import { lowerPolicy } from '../../src/ir/policy.ts';
import { lowerXdpSections, type XdpActionIR, type XdpSectionIR } from '../../src/ir/xdp.ts';
import { BpfObject } from '../../loader/index.ts';
import { GOLDEN_SECTIONS } from '../golden/xdp/sections.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { eth, icmp, icmpv6, ipv4, ipv6, padded, TCP, tcp, truncate, udp, XDP, type XdpVerdictName } from '../helpers/packets.ts';

const test = suite('tc test-run');
let before: Snapshot;

/** linux/pkt_cls.h */
const TC_ACT = { ok: 0, shot: 2, redirect: 7 } as const;
const TC_OF: Record<XdpVerdictName, number> = { aborted: TC_ACT.shot, drop: TC_ACT.shot, pass: TC_ACT.ok, tx: TC_ACT.redirect, redirect: TC_ACT.redirect };

const SECTION: XdpSectionSpec = {
  interface: 'lo',
  default: 'pass',
  sets: {
    bl4: { type: 'ipv4-prefix', elements: ['10.66.0.0/16'] },
    bl6: { type: 'ipv6-prefix', elements: ['2001:db8:66::/48'] },
    web: { type: 'port', elements: [80, 443] },
    macs: { type: 'mac', elements: ['02:00:00:00:00:bb'] },
    h4: { type: 'ipv4', elements: ['198.18.9.9'] },
  },
  rules: [
    { name: 'qinq', match: { vlan: 20, innerVlan: 30 }, action: 'tx' },
    { name: 'vlan10', match: { vlan: 10 }, action: 'drop' },
    { name: 'bad-mac', match: { srcMac: { set: 'macs' } }, action: 'drop' },
    { name: 'arp', match: { ethType: 'arp' }, action: 'pass' },
    { name: 'bl4', match: { src: { set: 'bl4' } }, action: 'drop' },
    { name: 'bl6', match: { src: { set: 'bl6' } }, action: 'drop' },
    { name: 'h4', match: { dst: { set: 'h4' } }, action: 'drop' },
    { name: 'syn-only', match: { proto: 'tcp', dport: 8080, tcpFlags: 'syn,!ack' }, action: 'drop' },
    { name: 'web', match: { proto: 'tcp', dport: { set: 'web' } }, action: 'pass' },
    { name: 'ssh', match: { proto: 'tcp', dport: 22 }, action: 'drop' },
    { name: 'udp-range', match: { proto: 'udp', dport: [5000, 5010] }, action: { redirect: 'lo' } },
    { name: 'ping4', match: { proto: 'icmp', icmpType: 'echo-request' }, action: 'drop' },
    { name: 'ping6', match: { proto: 'icmpv6', icmpType: 'echo-request' }, action: 'tx' },
    { name: 'dscp-ef', match: { dscp: 46 }, action: 'tx' },
  ],
};

const v4 = (o: Parameters<typeof ipv4>[0], l4?: Parameters<typeof ipv4>[1], e: Parameters<typeof eth>[0] = {}) => padded(eth(e, ipv4(o, l4)));
const v6 = (o: Parameters<typeof ipv6>[0], l4?: Parameters<typeof ipv6>[1], e: Parameters<typeof eth>[0] = {}) => padded(eth(e, ipv6(o, l4)));

const CASES: { name: string; frame: Uint8Array; verdict: XdpVerdictName; hit: string }[] = [
  { name: 'plain UDP', frame: v4({}, udp({ dport: 9999 })), verdict: 'pass', hit: 'default' },
  { name: 'VLAN 10', frame: v4({}, udp({}), { vlans: [10] }), verdict: 'drop', hit: 'vlan10' },
  { name: 'QinQ 20/30', frame: v4({}, udp({}), { vlans: [20, 30] }), verdict: 'tx', hit: 'qinq' },
  { name: 'src MAC in set', frame: v4({}, udp({}), { src: '02:00:00:00:00:bb' }), verdict: 'drop', hit: 'bad-mac' },
  { name: 'ARP', frame: padded(eth({ type: 0x0806 }, new Uint8Array(28))), verdict: 'pass', hit: 'arp' },
  { name: 'IPv4 src in LPM set', frame: v4({ src: '10.66.3.4' }, udp({})), verdict: 'drop', hit: 'bl4' },
  { name: 'IPv6 src in LPM set', frame: v6({ src: '2001:db8:66:1::5' }, udp({})), verdict: 'drop', hit: 'bl6' },
  { name: 'IPv4 dst in hash set', frame: v4({ dst: '198.18.9.9' }, udp({})), verdict: 'drop', hit: 'h4' },
  { name: 'TCP SYN to 8080', frame: v4({}, tcp({ dport: 8080, flags: TCP.syn })), verdict: 'drop', hit: 'syn-only' },
  { name: 'TCP SYN+ACK to 8080', frame: v4({}, tcp({ dport: 8080, flags: TCP.syn | TCP.ack })), verdict: 'pass', hit: 'default' },
  { name: 'TCP 80 over IPv6 (port set)', frame: v6({}, tcp({ dport: 80 })), verdict: 'pass', hit: 'web' },
  { name: 'ssh', frame: v4({}, tcp({ dport: 22 })), verdict: 'drop', hit: 'ssh' },
  { name: 'UDP range: redirect', frame: v4({}, udp({ dport: 5003 })), verdict: 'redirect', hit: 'udp-range' },
  { name: 'ICMP echo request', frame: v4({}, icmp({ type: 8 })), verdict: 'drop', hit: 'ping4' },
  { name: 'ICMPv6 echo request', frame: v6({}, icmpv6({ type: 128 })), verdict: 'tx', hit: 'ping6' },
  { name: 'DSCP EF', frame: v4({ dscp: 46 }, udp({ dport: 9999 })), verdict: 'tx', hit: 'dscp-ef' },
  { name: 'IPv6 later fragment: no ports', frame: v6({ ext: [{ type: 'fragment', offset: 10 }] }, udp({ dport: 5005 })), verdict: 'pass', hit: 'default' },
  // (An IPv4 header cut short cannot be test-run at tc: the kernel refuses such an skb, EINVAL.)
  { name: 'TCP header cut short', frame: truncate(eth({}, ipv4({}, tcp({ dport: 22 }))), 14 + 20 + 12), verdict: 'drop', hit: 'malformed' },
  { name: 'TCP data offset 4', frame: v4({}, tcp({ dport: 22, doff: 4 })), verdict: 'drop', hit: 'malformed' },
];

/** Compiles and loads a section for a hook, its sets filled and redirect slots pointing at lo (ifindex 1). */
function build(name: string, s: XdpSectionIR, hook: 'xdp' | 'tc'): BpfObject {
  const gen = hook === 'xdp' ? generateXdp({ name, xdp: [s] }, 0) : generateClassifier({ name, xdp: [s] }, 0, 'tc');
  const { objectPath } = compileBpf({ source: gen.source, name: `${name}-${gen.file.replace(/\.bpf\.c$/, '')}` });
  const obj = BpfObject.open(objectPath, { name: `${name}-${hook}` });
  try {
    obj.load();
    for (const set of s.sets) for (const e of set.elements) obj.map(setMapName(set.name)).update(encodeSetKey(set.name, set.kind, e), SET_VALUE);
    for (let i = 0; i < s.redirects.length; i++) obj.map(XDP_MAPS.txPorts).update(Uint8Array.of(i, 0, 0, 0), Uint8Array.of(1, 0, 0, 0));
    return obj;
  } catch (err) {
    obj.close();
    throw err;
  }
}

/** AF_XDP has no tc counterpart: for tc, those rules pass instead. */
const withoutXsk = (s: XdpSectionIR): XdpSectionIR => {
  const fix = (a: XdpActionIR): XdpActionIR => (a.kind === 'xsk' ? { kind: 'pass' } : a);
  return { ...s, xskGroups: [], default: fix(s.default), rules: s.rules.map((r) => ({ ...r, action: fix(r.action) })) };
};

test.before(() => {
  before = snapshot();
});

test('every golden section and the example pass the verifier as tc programs', () => {
  const sections = Object.entries(GOLDEN_SECTIONS).map(([name, spec]) => ({ name, s: lowerXdpSections([{ ...spec, interface: 'lo' } as XdpSectionSpec], 'xdp')[0]! }));
  for (const s of lowerPolicy(firewall).xdp) sections.push({ name: `firewall-${s.index}`, s: { ...s, interface: 'lo' } });
  for (const { name, s } of sections) {
    const o = build(`tc-golden-${name}`, withoutXsk({ ...s, redirects: s.redirects.map(() => 'lo') }), 'tc');
    try {
      const p = o.program(HOOKS.tc.progName);
      assert.is(p.type, 'sched_cls', name);
      assert.ok(p.id > 0, name);
    } finally {
      o.close();
    }
  }
});

test('AF_XDP actions are refused for tc, with the reason', () => {
  const [s] = lowerXdpSections([{ interface: 'lo', rules: [{ action: { xsk: 'ids' } }] }], 'xdp');
  assert.throws(() => generateClassifier({ name: 'x', xdp: [s!] }, 0, 'tc'), /AF_XDP sockets take frames at XDP only/);
});

test('the same frames get the same decisions at XDP and tc, and the same counters move', () => {
  const [s] = lowerXdpSections([SECTION], 'xdp');
  const slotOf = (hit: string) => (hit === 'default' ? s!.rules.length : s!.rules.find((r) => r.name === hit)!.index);
  const objs = { xdp: build('tc-vs-xdp', s!, 'xdp'), tc: build('tc-vs-xdp', s!, 'tc') };
  try {
    for (const c of CASES) {
      for (const hook of ['xdp', 'tc'] as const) {
        const o = objs[hook];
        const [map, slot] = c.hit === 'malformed' ? [XDP_MAPS.xdpStats, 0] : [XDP_MAPS.ruleStats, slotOf(c.hit)];
        const n0 = readCounter(o.map(map), slot).packets;
        let r: { retval: number };
        try {
          r = o.program(HOOKS[hook].progName).testRun(c.frame);
        } catch (err) {
          throw new Error(`${hook}: ${c.name} (${c.frame.length} bytes): ${(err as Error).message}`);
        }
        assert.is(r.retval, hook === 'xdp' ? XDP[c.verdict] : TC_OF[c.verdict], `${hook}: ${c.name}`);
        assert.is(readCounter(o.map(map), slot).packets, n0 + 1n, `${hook}: ${c.name} counted in ${map}[${slot}]`);
      }
    }
  } finally {
    objs.xdp.close();
    objs.tc.close();
  }
});

test('leaves nothing behind', async () => {
  const leaks = await leaksSince(before);
  assert.equal(leaks, [], leaks.join('\n'));
});

test.run();
