/**
 * The reference model without a kernel: hand-written frames with known answers (the table the
 * kernel suite checks the generated program against, plus the parser's edges), the tables it
 * shares with the codegen (hooks, match fields, struct pkt), live set contents, the pcap reader,
 * and `bpfctl xdp explain`'s output. test/kernel/xdp-model.test.ts holds the model to the kernel.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { generateClassifier, HOOKS } from '../../src/codegen/xdp/index.ts';
import { MATCH_CODEGEN } from '../../src/codegen/xdp/rules.ts';
import { pickSection } from '../../src/cli/commands/xdp-explain.ts';
import type { XdpMatch, XdpSectionSpec } from '../../src/dsl/xdp.ts';
import { lowerXdpSections, type XdpActionIR, type XdpSectionIR } from '../../src/ir/xdp.ts';
import { compileModel, compileSets, HOOK_MODELS, MATCH_MODEL, MODEL_HOOKS, ModelHookError, ModelSetError, type Outcome, PcapError, parseFrame, type Pkt, readPcap, writePcap } from '../../src/model/index.ts';
import { runCli } from '../helpers/cli.ts';
import { eth, icmp, icmpv6, ipv4, ipv6, padded, TCP, tcp, truncate, udp } from '../helpers/packets.ts';

const test = suite('xdp model');

const SECTION: XdpSectionSpec = {
  interface: 'lo',
  default: 'pass',
  sets: {
    bl4: { type: 'ipv4-prefix', elements: ['10.66.0.0/16', '10.0.0.0/8'] },
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
    { name: 'frag-net', match: { src: '11.77.0.0/16' }, action: 'drop' },
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
const section = lowerXdpSections([SECTION], 'xdp')[0]!;
const model = compileModel(section);

const v4 = (o: Parameters<typeof ipv4>[0], l4?: Parameters<typeof ipv4>[1], e: Parameters<typeof eth>[0] = {}) => padded(eth(e, ipv4(o, l4)));
const v6 = (o: Parameters<typeof ipv6>[0], l4?: Parameters<typeof ipv6>[1], e: Parameters<typeof eth>[0] = {}) => padded(eth(e, ipv6(o, l4)));
const dstOpts = (n: number) => Array.from({ length: n }, () => ({ type: 'dest' as const }));

/** What decided: a rule's name, 'default' or 'malformed'. */
const hitOf = (o: Outcome) => (o.hit.kind === 'rule' ? o.hit.rule.name : o.hit.kind);

type Case = [name: string, frame: Uint8Array, verdict: string, hit: string, fragment?: boolean];
const CASES: Case[] = [
  ['plain UDP', v4({}, udp({ dport: 9999 })), 'XDP_PASS', 'default'],
  ['VLAN 10', v4({}, udp({}), { vlans: [10] }), 'XDP_DROP', 'vlan10'],
  ['QinQ 20/30', v4({}, udp({}), { vlans: [20, 30] }), 'XDP_TX', 'qinq'],
  ['QinQ 20/31', v4({}, udp({ dport: 9999 }), { vlans: [20, 31] }), 'XDP_PASS', 'default'],
  ['three tags: the third is not parsed, so no IP', padded(eth({ vlans: [99, 98, 97] }, ipv4({}, udp({})))), 'XDP_PASS', 'default'],
  ['VLAN tag cut short', truncate(eth({ vlans: [10] }), 16), 'XDP_DROP', 'malformed'],
  ['src MAC in set', v4({}, udp({}), { src: '02:00:00:00:00:bb' }), 'XDP_DROP', 'bad-mac'],
  ['dst MAC inline', v4({}, udp({}), { dst: '02:00:00:00:00:cc' }), 'XDP_TX', 'router-mac'],
  ['ARP', padded(eth({ type: 0x0806 }, new Uint8Array(28))), 'XDP_PASS', 'arp'],
  ['IPv4 src in LPM set', v4({ src: '10.66.3.4' }, udp({})), 'XDP_DROP', 'bl4'],
  ['IPv4 src just outside 10/8', v4({ src: '11.0.0.1' }, udp({ dport: 9999 })), 'XDP_PASS', 'default'],
  ['IPv6 src in LPM set', v6({ src: '2001:db8:66:1::5' }, udp({})), 'XDP_DROP', 'bl6'],
  ['IPv4 dst in hash set', v4({ dst: '198.18.9.9' }, udp({})), 'XDP_DROP', 'h4'],
  ['IPv6 dst in hash set', v6({ dst: 'fd00::99' }, udp({})), 'XDP_DROP', 'h6'],
  ['TCP SYN to 8080', v4({}, tcp({ dport: 8080, flags: TCP.syn })), 'XDP_DROP', 'syn-only'],
  ['TCP SYN+ACK to 8080', v4({}, tcp({ dport: 8080, flags: TCP.syn | TCP.ack })), 'XDP_PASS', 'default'],
  ['TCP 443 (port set)', v4({}, tcp({ dport: 443 })), 'XDP_PASS', 'web'],
  ['UDP 443 is not TCP', v4({}, udp({ dport: 443 })), 'XDP_PASS', 'default'],
  ['ssh from the allowed net', v4({ src: '192.0.2.7' }, tcp({ dport: 22 })), 'XDP_PASS', 'ssh-net'],
  ['ssh from elsewhere', v4({ src: '198.18.0.1' }, tcp({ dport: 22 })), 'XDP_DROP', 'ssh'],
  ['UDP range low end', v4({}, udp({ dport: 5000 })), 'XDP_REDIRECT', 'udp-range'],
  ['UDP range high end', v4({}, udp({ dport: 5010 })), 'XDP_REDIRECT', 'udp-range'],
  ['UDP past the range', v4({}, udp({ dport: 5011 })), 'XDP_PASS', 'default'],
  ['IPv6 inline prefix + sport', v6({ src: 'fd00:1:0:1::1' }, udp({ sport: 53, dport: 40000 })), 'XDP_PASS', 'dns6'],
  ['AF_XDP class, no socket bound: the stack', v4({}, udp({ dport: 4789 })), 'XDP_PASS', 'to-xsk'],
  ['ICMP echo request', v4({}, icmp({ type: 8 })), 'XDP_DROP', 'ping4'],
  ['ICMPv6 echo request', v6({}, icmpv6({ type: 128 })), 'XDP_TX', 'ping6'],
  ['DSCP EF over IPv6 (traffic class split across two bytes)', v6({ dscp: 46 }, udp({ dport: 9999 })), 'XDP_TX', 'dscp-ef'],
  ['uncounted rule', v4({}, udp({ sport: 123, dport: 9999 })), 'XDP_DROP', 'low-sport'],
  ['IPv4 options are skipped', v4({ src: '192.0.2.7', options: [1, 1, 1, 1, 1, 1, 1, 0] }, tcp({ dport: 22 })), 'XDP_PASS', 'ssh-net'],
  ['IHL 4', v4({ ihl: 4 }, udp({})), 'XDP_DROP', 'malformed'],
  ['IHL 15 past the frame end', eth({}, ipv4({ ihl: 15 }, udp({}))), 'XDP_DROP', 'malformed'],
  ['IPv4 version 5', v4({ version: 5 }, udp({})), 'XDP_DROP', 'malformed'],
  ['IPv4 total length < header', v4({ totalLength: 12 }, udp({})), 'XDP_DROP', 'malformed'],
  ['IPv4 total length past the frame is fine', v4({ totalLength: 1500 }, udp({ dport: 9999 })), 'XDP_PASS', 'default'],
  ['TCP data offset 4', v4({}, tcp({ dport: 22, doff: 4 })), 'XDP_DROP', 'malformed'],
  ['TCP data offset 15 without the options: only 20 bytes are read', v4({}, tcp({ dport: 22, doff: 15 })), 'XDP_DROP', 'ssh'],
  ['UDP header cut short', truncate(eth({}, ipv4({}, udp({}))), 14 + 20 + 6), 'XDP_DROP', 'malformed'],
  ['IPv4 first fragment has ports', v4({ moreFragments: true }, tcp({ dport: 22 })), 'XDP_DROP', 'ssh'],
  ['IPv4 later fragment: no ports', v4({ fragOffset: 100, proto: 6 }, tcp({ dport: 22 })), 'XDP_PASS', 'default', true],
  ['IPv4 later fragment, L3 rule', v4({ src: '11.77.1.1', fragOffset: 100, proto: 6 }, tcp({})), 'XDP_DROP', 'frag-net', true],
  ['IPv6 hop-by-hop + dest-opts', v6({ ext: [{ type: 'hop' }, { type: 'dest', units: 1 }] }, tcp({ dport: 22 })), 'XDP_DROP', 'ssh'],
  ['IPv6 later fragment: no ports', v6({ ext: [{ type: 'fragment', offset: 10 }] }, udp({ dport: 5005 })), 'XDP_PASS', 'default', true],
  ['IPv6 six extension headers', v6({ ext: dstOpts(6) }, tcp({ dport: 22 })), 'XDP_DROP', 'ssh'],
  ['IPv6 seven extension headers', v6({ ext: dstOpts(7) }, tcp({ dport: 22 })), 'XDP_DROP', 'malformed'],
  ['IPv6 version 4', v6({ version: 4 }, udp({})), 'XDP_DROP', 'malformed'],
  ['ICMPv6 cut short', truncate(eth({}, ipv6({}, icmpv6({}))), 14 + 40 + 4), 'XDP_DROP', 'malformed'],
  ['ICMP type read under IPv6 too (nexthdr 1): no rule asks for it', v6({ nextHeader: 1 }, icmp({ type: 8 })), 'XDP_PASS', 'default'],
  ['13 bytes: no Ethernet header', new Uint8Array(13), 'XDP_DROP', 'malformed'],
];

test('hand-written frames: verdicts, the rule that hits, and the counters that move', () => {
  for (const [name, frame, verdict, hit, fragment] of CASES) {
    const o = model.run(frame);
    assert.is(`${hitOf(o)} ${o.verdict.name}`, `${hit} ${verdict}`, name);
    assert.is(o.verdict.value, HOOK_MODELS.xdp.verdicts[verdict], name);
    const want: string[] = [];
    if (hit === 'malformed') want.push('xdp_stats[0]');
    if (fragment) want.push('xdp_stats[1]');
    if (hit === 'default') want.push(`rule_stats[${section.rules.length}]`);
    else if (hit !== 'malformed' && section.rules.find((r) => r.name === hit)!.count) want.push(`rule_stats[${section.rules.find((r) => r.name === hit)!.index}]`);
    assert.equal(
      o.counters.map((c) => `${c.map}[${c.slot}]`),
      want,
      `${name}: counters`,
    );
    for (const c of o.counters) assert.is(c.bytes, frame.length, `${name}: bytes`);
  }
  // Every rule decides some frame of the table.
  const hits = new Set(CASES.map((c) => c[3]));
  for (const r of section.rules) assert.ok(hits.has(r.name), `no case hits rule ${r.name}`);
});

test('the parser: struct pkt field for field', () => {
  const f = eth({ vlans: [100, 200], src: '02:00:00:00:00:0a' }, ipv6({ src: 'fd00::1', dst: 'fd00::2', dscp: 46, ext: [{ type: 'hop' }, { type: 'routing', units: 1 }, { type: 'fragment', more: true }] }, tcp({ sport: 1234, dport: 443, flags: TCP.syn | TCP.ece })));
  const r = parseFrame(f);
  assert.is(r.status, 'ok');
  const p = (r as { pkt: Pkt }).pkt;
  assert.equal(
    { vlans: p.vlans, outer: p.vlan_outer, inner: p.vlan_inner, ethProto: p.eth_proto, l3: p.l3, proto: p.proto, dscp: p.dscp, frag: p.frag, l4: p.l4, sport: p.sport, dport: p.dport, flags: p.tcp_flags },
    { vlans: 2, outer: 100, inner: 200, ethProto: 0x86dd, l3: 6, proto: 6, dscp: 46, frag: 0, l4: 1, sport: 1234, dport: 443, flags: TCP.syn | TCP.ece },
  );
  assert.equal([...p.eth.src], [2, 0, 0, 0, 0, 0x0a]);
  assert.equal([...p.ip6!.daddr].slice(-2), [0, 2]);
  const layers: Parameters<typeof parseFrame>[1] = [];
  parseFrame(f, layers);
  assert.equal(
    layers.map((l) => `${l.name}@${l.offset}+${l.length}`),
    ['ethernet@0+14', 'vlan@14+4', 'vlan@18+4', 'ipv6@22+40', 'hop-by-hop@62+8', 'routing@70+16', 'fragment@86+8', 'tcp@94+20'],
  );
  const m = parseFrame(truncate(f, 80));
  assert.equal(m, { status: 'malformed', reason: 'IPv6 routing header cut short: 16 bytes needed at offset 70, 10 left', offset: 70 });
  assert.equal(parseFrame(new Uint8Array(10)), { status: 'malformed', reason: 'Ethernet header cut short: 14 bytes needed at offset 0, 10 left', offset: 0 });
});

test('prefix sets answer with the longest prefix, and explain says which one', () => {
  const o = model.run(v4({ src: '10.66.3.4' }, udp({})), true);
  const c = o.tried!.at(-1)!.checks.find((x) => x.field === 'src')!;
  assert.is(c.got, '10.66.3.4 (in 10.66.0.0/16)');
  const c2 = model.run(v4({ src: '10.1.2.3' }, udp({})), true).tried!.at(-1)!.checks.find((x) => x.field === 'src')!;
  assert.is(c2.got, '10.1.2.3 (in 10.0.0.0/8)');
});

test('set contents given (a loaded policy, after bpfctl set add/del) replace the policy file elements', () => {
  const frame = v4({ src: '198.18.50.1' }, udp({ dport: 9999 }));
  assert.is(hitOf(model.run(frame)), 'default');
  const live = compileModel(section, { sets: { bl4: ['198.18.50.0/24'] } });
  assert.is(hitOf(live.run(frame)), 'bl4');
  assert.is(hitOf(live.run(v4({ src: '10.66.3.4' }, udp({ dport: 9999 })))), 'default', 'the file elements are gone');
  assert.throws(() => compileModel(section, { sets: { web: ['70000'] } }), (e: unknown) => e instanceof ModelSetError && /set web: bad port/.test((e as Error).message));
});

test('fd map state: an empty redirect slot drops, a bound AF_XDP socket redirects', () => {
  const red = v4({}, udp({ dport: 5003 }));
  const xsk = v4({}, udp({ dport: 4789 }));
  assert.is(compileModel(section, { redirectReady: () => false }).run(red).verdict.name, 'XDP_DROP');
  const bound = compileModel(section, { xskBound: (g, q) => g === 'ids' && q === 3, rxQueue: 3 });
  assert.is(bound.run(xsk).verdict.name, 'XDP_REDIRECT');
  assert.is(model.run(xsk).verdict.name, 'XDP_PASS');
  assert.match(model.run(xsk).verdict.note ?? '', /no AF_XDP socket of group ids/);
});

test('at tc: tc verdicts, malformed: pass, an offloaded VLAN tag, and no AF_XDP', () => {
  assert.throws(() => compileModel(section, { hook: 'tc' }), (e: unknown) => e instanceof ModelHookError && /tc hook cannot xsk ids/.test((e as Error).message));
  const noXsk: XdpSectionIR = { ...section, xskGroups: [], rules: section.rules.filter((r) => r.action.kind !== 'xsk').map((r, index) => ({ ...r, index })), malformed: 'pass' };
  const tc = compileModel(noXsk, { hook: 'tc' });
  assert.is(tc.run(v4({}, tcp({ dport: 22 }))).verdict.name, 'TC_ACT_SHOT');
  assert.is(tc.run(v4({}, udp({ dport: 9999 }))).verdict.name, 'TC_ACT_OK');
  assert.is(tc.run(v4({}, udp({ dport: 5003 }))).verdict.value, 7);
  const bad = tc.run(v4({ ihl: 3 }, udp({})));
  assert.equal([bad.hit.kind, bad.verdict.name, bad.counters[0]!.map], ['malformed', 'TC_ACT_OK', 'xdp_stats']);
  // The stack took tag 20 off before tc; the frame's own tag 30 is then the inner one.
  const tagged = compileModel(noXsk, { hook: 'tc', vlanTci: 0x2000 | 20 });
  assert.is(hitOf(tagged.run(v4({}, udp({}), { vlans: [30] }))), 'qinq');
  assert.is(hitOf(tc.run(v4({}, udp({}), { vlans: [30] }))), 'default');
});

test("the hook tables agree with the codegen's: the same hooks, actions, malformed verdicts, verdict names in the C", () => {
  assert.equal(MODEL_HOOKS, Object.keys(HOOKS));
  const samples: XdpActionIR[] = [{ kind: 'pass' }, { kind: 'drop' }, { kind: 'tx' }, { kind: 'redirect', ifname: 'eth1', slot: 0 }, { kind: 'xsk', group: 'g' }, { kind: 'chain', chain: 0, name: 'c' }];
  for (const hook of MODEL_HOOKS) {
    const m = HOOK_MODELS[hook];
    const c = HOOKS[hook];
    for (const v of Object.values(c.malformed)) assert.ok(v in m.verdicts, `${hook}: malformed verdict ${v}`);
    for (const a of samples) {
      const emit = c.actions[a.kind] as ((a: XdpActionIR) => readonly string[]) | null;
      const model = m.actions[a.kind] as ((a: XdpActionIR, env: object) => { verdict: string }) | null;
      assert.is(model === null, emit === null, `${hook} ${a.kind}: the model and the codegen disagree on whether the hook can`);
      if (!emit || !model) continue;
      // The verdict the action's statements return; the fallback of an empty slot is in them
      // (XDP: bpf_redirect_map's flags) or in the helper they call (tc: redirect_slot).
      const text = emit(a).join('\n');
      const [one] = lowerXdpSections([{ interface: 'lo', rules: [{ action: a.kind === 'redirect' ? { redirect: 'eth1' } : a.kind === 'xsk' ? { xsk: 'g' } : a.kind === 'chain' ? { chain: 'c' } : a.kind }] }], 'xdp', ['c']);
      const program = generateClassifier({ name: 'hooks', xdp: [one!] }, 0, hook).source;
      for (const env of [{}, { redirectReady: () => false }]) {
        const v = model(a, env).verdict;
        if (v === 'XDP_REDIRECT' || v === 'TC_ACT_REDIRECT') assert.match(text, /bpf_redirect|redirect_slot/, `${hook} ${a.kind}`);
        else assert.ok(text.includes(v) || (a.kind === 'redirect' && program.includes(`: ${v};`)), `${hook} ${a.kind}: ${v} is not what ${text} returns`);
      }
    }
  }
});

test("each match field's checks read only the struct pkt fields the codegen's table says it reads", () => {
  const SAMPLES: { readonly [K in keyof XdpMatch]-?: XdpMatch } = {
    proto: { proto: 'tcp' },
    sport: { sport: [1, 1024] },
    dport: { dport: { set: 'web' } },
    tcpFlags: { tcpFlags: 'syn,!ack' },
    icmpType: { proto: 'icmp', icmpType: 8 },
    icmpCode: { proto: 'icmp', icmpCode: 0 },
    dscp: { dscp: 46 },
    vlan: { vlan: 5 },
    innerVlan: { vlan: 5, innerVlan: 6 },
    ethType: { ethType: 0x88cc },
    src: { src: { set: 'bl6' } },
    dst: { dst: '10.1.0.0/16' },
    srcMac: { srcMac: { set: 'macs' } },
    dstMac: { dstMac: '01:00:5e:00:00:01' },
  };
  const frame = parseFrame(v6({ src: '2001:db8:66::1' }, tcp({})));
  const pkt = (frame as { pkt: Pkt }).pkt;
  for (const key of Object.keys(MATCH_MODEL) as (keyof XdpMatch)[]) {
    const [s] = lowerXdpSections([{ ...SECTION, rules: [{ match: SAMPLES[key], action: 'drop' }] }], 'xdp');
    const m = s!.rules[0]!.match;
    const seen = new Set<string>();
    const spy = new Proxy(pkt, {
      get(t, k) {
        seen.add(String(k));
        return t[k as keyof Pkt];
      },
    });
    const checks = (MATCH_MODEL[key] as unknown as (v: unknown, m: unknown, sets: unknown) => readonly { test(p: Pkt): boolean; got(p: Pkt): string }[])(m[key], m, compileSets(s!));
    for (const c of checks) {
      c.test(spy);
      c.got(spy);
    }
    const declared = MATCH_CODEGEN[key].reads as readonly string[];
    assert.ok(seen.size > 0, `${key}: its checks read nothing`);
    for (const f of seen) assert.ok(declared.includes(f), `${key} reads p.${f}, the codegen's entry declares ${declared.join(', ')}`);
  }
});

test('pcap: either byte order, micro- or nanoseconds; pcapng, other link types and cut records are named errors', () => {
  const frames = [v4({}, udp({})), v6({}, tcp({}))];
  const le = writePcap(frames);
  assert.equal(readPcap(le, 'a.pcap').map((f) => [f.number, f.data.length, f.origLen]), [
    [1, frames[0]!.length, frames[0]!.length],
    [2, frames[1]!.length, frames[1]!.length],
  ]);
  // The same file big-endian with nanosecond stamps, written by hand.
  const be = Uint8Array.from(le);
  const v = new DataView(be.buffer);
  v.setUint32(0, 0xa1b23c4d, false);
  v.setUint16(4, 2, false);
  v.setUint16(6, 4, false);
  v.setUint32(16, 65535, false);
  v.setUint32(20, 1, false);
  for (let off = 24, i = 0; off < be.length; i++) {
    const len = frames[i]!.length;
    v.setUint32(off, 1_700_000_000, false);
    v.setUint32(off + 4, 500_000_000, false);
    v.setUint32(off + 8, len, false);
    v.setUint32(off + 12, len + 100, false);
    off += 16 + len;
  }
  const got = readPcap(be, 'b.pcap');
  assert.equal([got[0]!.time, got[1]!.origLen, [...got[1]!.data]], [1_700_000_000.5, frames[1]!.length + 100, [...frames[1]!]]);
  const err = (bytes: Uint8Array, re: RegExp) => assert.throws(() => readPcap(bytes, 'x.pcap'), (e: unknown) => e instanceof PcapError && re.test((e as Error).message));
  err(Uint8Array.of(0x0a, 0x0d, 0x0d, 0x0a, ...new Array(24).fill(0)), /^x\.pcap: is pcapng/);
  const sll = Uint8Array.from(le);
  new DataView(sll.buffer).setUint32(20, 113, true);
  err(sll, /link type 113 \(Linux cooked \(SLL\)\) is not Ethernet/);
  err(le.slice(0, le.length - 3), /record 2 cut short: \d+ bytes captured, \d+ left/);
  err(new Uint8Array(10), /not a pcap file: 10 bytes/);
});

test('the section to explain: the only one, or the one --section/--hook name', () => {
  const [a, b] = lowerXdpSections([{ interface: 'eth0' }, { interface: 'eth1' }], 'xdp');
  const all = [
    { section: a!, hook: 'xdp' as const, label: 'eth0' },
    { section: b!, hook: 'xdp' as const, label: 'eth1' },
    { section: { ...b!, direction: 'ingress' as const }, hook: 'tc' as const, direction: 'ingress' as const, label: 'eth1 tc ingress' },
  ];
  assert.is(pickSection('p', all, 'eth0').label, 'eth0');
  assert.is(pickSection('p', all, 'eth1', 'tc-ingress').label, 'eth1 tc ingress');
  assert.throws(() => pickSection('p', all), /policy p has 3 sections \(eth0, eth1, eth1 tc ingress\): pick one with --section IFACE/);
  assert.throws(() => pickSection('p', all, 'eth1'), /2 sections on eth1 .*: pick one with --hook xdp\|tc-ingress\|tc-egress/);
  assert.throws(() => pickSection('p', all, 'eth9'), /policy p has no section on eth9 \(sections: eth0, eth1, eth1 tc ingress\)/);
  assert.throws(() => pickSection('p', []), /policy p has no xdp or tc sections/);
});

const FIREWALL = 'examples/firewall/policy.ts';
const SSH = padded(eth({}, ipv4({ src: '10.20.1.1', dst: '203.0.113.5' }, tcp({ dport: 22 }))));
const hex = (f: Uint8Array) => Buffer.from(f).toString('hex');

test('bpfctl xdp explain: the headers, the rule and its checks, the verdict, the counters', async () => {
  const r = await runCli('xdp', 'explain', FIREWALL, hex(SSH));
  assert.is(r.code, 0, r.stderr);
  assert.fixture(
    r.stdout,
    `frame 1: 60 bytes, uplink0 (xdp)
  ethernet    02:00:00:00:00:01 > 02:00:00:00:00:02  type 0x0800
  ipv4        10.20.1.1 > 203.0.113.5  proto tcp  dscp 0  ttl 64  ihl 5  length 40
  tcp         40000 > 22  flags syn  doff 5
  rule 5      ssh-admins: ip4 src @admins tcp dport 22 -> pass  (5 rules before it did not match; --trace shows why)
      yes  IPv4            IPv4
      yes  L4 header       read
      yes  src in @admins  10.20.1.1 (in 10.20.0.0/16)
      yes  proto tcp       tcp
      yes  dport 22        22
  verdict     XDP_PASS (2): pass
  counters    rule_stats[5] (ssh-admins) +1 packet +60 bytes
`,
  );
  const t = await runCli('xdp', 'explain', FIREWALL, '--hex', hex(SSH), '--trace', '--hex', '02:00:00:00:00:02 02:00:00:00:00:01 08 00 45');
  assert.is(t.code, 0, t.stderr);
  assert.match(t.stdout, /\n {2}rule 1 {6}blocklist-v6: no, IPv6 \(frame: IPv4\)\n/);
  assert.match(t.stdout, /\nframe 2: 15 bytes, uplink0 \(xdp\)\n.*\n {2}malformed {3}IPv4 header cut short: 20 bytes needed at offset 14, 1 left: no rule sees it \(malformed: 'drop'\)\n {2}verdict {5}XDP_DROP \(1\)\n {2}counters {4}xdp_stats\[0\] \(malformed\) \+1 packet \+15 bytes\n$/);
});

test('bpfctl xdp explain --pcap --json: every packet, the decision as data', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bpfctl-model-test-'));
  try {
    const file = join(dir, 'two.pcap');
    const arp = padded(eth({ type: 0x0806 }, new Uint8Array(28)));
    const frag = padded(eth({}, ipv4({ src: '198.18.0.1', fragOffset: 100, proto: 17 }, udp({}))));
    writeFileSync(file, writePcap([arp, frag]));
    const out = JSON.parse((await runCli('xdp', 'explain', FIREWALL, '--pcap', file, '--json')).stdout) as Record<string, unknown>[];
    assert.equal(
      out.map((o) => [o.frame, o.decision, (o.rule as { name: string } | null)?.name ?? null, (o.verdict as { name: string }).name, (o.parse as { status: string }).status, (o.counters as { map: string; slot: number }[]).map((c) => `${c.map}[${c.slot}]`)]),
      [
        [1, 'rule', 'arp', 'XDP_PASS', 'ok', ['rule_stats[10]']],
        [2, 'default', null, 'XDP_DROP', 'fragment', ['xdp_stats[1]', 'rule_stats[16]']],
      ],
    );
    assert.equal((out[0]!.checks as { want: string; got: string; ok: boolean }[]).map((c) => [c.want, c.got, c.ok]), [['ethtype 0x0806', '0x0806', true]]);
    assert.is(((out[1]!.parse as { fields: { saddr4: string } }).fields).saddr4, '198.18.0.1');
    assert.is((out[1]!.tried as unknown[]).length, 16);
    const missing = await runCli('xdp', 'explain', FIREWALL, '--pcap', join(dir, 'none.pcap'));
    assert.is(missing.code, 1);
    assert.match(missing.stderr, /cannot read .*none\.pcap: ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bpfctl xdp explain of a tc section: --hook picks it, tc verdicts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bpfctl-model-test-'));
  try {
    const file = join(dir, 'two.ts');
    writeFileSync(
      file,
      `export default {
  name: 'two-hooks',
  xdp: [{ interface: 'eth0', default: 'drop', rules: [{ name: 'web', match: { proto: 'tcp', dport: 443 }, action: 'pass' }] }],
  tc: [{ interface: 'eth0', direction: 'egress', rules: [{ name: 'no-smtp', match: { proto: 'tcp', dport: 25 }, action: 'drop' }] }],
};
`,
    );
    const smtp = hex(padded(eth({}, ipv4({}, tcp({ dport: 25 })))));
    const both = await runCli('xdp', 'explain', file, smtp);
    assert.is(both.code, 1);
    assert.match(both.stderr, /policy two-hooks has 2 sections \(eth0, eth0 tc egress\): pick one with --hook/);
    const tc = await runCli('xdp', 'explain', file, smtp, '--hook', 'tc-egress');
    assert.is(tc.code, 0, tc.stderr);
    assert.match(tc.stdout, /^frame 1: 60 bytes, eth0 tc egress\n/);
    assert.match(tc.stdout, /\n {2}verdict {5}TC_ACT_SHOT \(2\): drop\n/);
    const xdp = JSON.parse((await runCli('xdp', 'explain', file, smtp, '--section', 'eth0', '--hook', 'xdp', '--json')).stdout) as { hook: string; decision: string; verdict: { name: string } }[];
    assert.equal([xdp[0]!.hook, xdp[0]!.decision, xdp[0]!.verdict.name], ['xdp', 'default', 'XDP_DROP']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bpfctl xdp explain: bad input is one line naming what is wrong', async () => {
  const cases: [string[], number, RegExp][] = [
    [['xdp', 'explain', FIREWALL], 2, /give a frame: --hex HEX/],
    [['xdp', 'explain', FIREWALL, '--hex', '0011zz'], 2, /'z' is not a hex digit \(at character 5/],
    [['xdp', 'explain', FIREWALL, '--hex', '001'], 2, /an odd number of hex digits \(3\)/],
    [['xdp', 'explain', FIREWALL, '00', '--hex', '00'], 2, /give frames one way/],
    [['xdp', 'explain', FIREWALL, '--section', 'eth9', '--hex', '00'], 1, /policy edge-firewall has no section on eth9 \(sections: uplink0\)/],
  ];
  for (const [args, code, re] of cases) {
    const r = await runCli(...args);
    assert.is(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test.run();
