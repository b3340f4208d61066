/**
 * XDP and tc benchmark. Run: node --import tsx bench/xdp.ts  (root; writes bench/results/xdp.json)
 *
 * 1. ns per packet through BPF_PROG_TEST_RUN: the program bpfctl generates for
 *    examples/firewall against a hand-written C classifier with the same rules
 *    (bench/xdp/handwritten.bpf.c), on the same mix of frames. Target: within 1.1x. Then the
 *    same at tc: the section as a tc section (its AF_XDP rule passing instead) against the
 *    hand-written classifier built as a tc program (-DHANDWRITTEN_TC).
 * 2. Cost as rules grow (10 .. 10000): the generated program holding the rules in a set (one LPM
 *    lookup) against what an operator would use for a block list in netfilter: an nftables set
 *    (`ip saddr @blocked drop`, prerouting at raw priority) and iptables with an ipset
 *    (`-m set --match-set blocked src`, raw PREROUTING); an iptables chain of as many rules,
 *    evaluated one by one, is kept as a labelled reference. A veth pair flooded with UDP from the
 *    other namespace; packets per second reaching the last rule. Target: XDP flat as rules grow.
 * 3. Egress policy as rules grow: a tc egress section on the sender's veth end (N destinations
 *    in a set, then a counting sink rule that passes) against nftables in the sender's output
 *    hook (`ip daddr @blocked drop`, then `udp dport 9 counter accept`). Both run in the sending
 *    syscall, so this is what the filter costs the sender; packets/s counted by the sink rule.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import firewall from '../examples/firewall/policy.ts';
import { TC_PROG_NAME, XDP_PROG_NAME } from '../src/codegen/xdp/index.ts';
import { compileBpf } from '../src/compile/index.ts';
import { buildTcObject, deployTc, undeployTc } from '../src/deploy/tc.ts';
import { buildXdpObject, deployXdp, undeployXdp } from '../src/deploy/xdp.ts';
import { encodeSetKey, SET_VALUE } from '../src/deploy/xdp-sets.ts';
import { readSectionCounters } from '../src/deploy/xdp-stats.ts';
import { lowerPolicy } from '../src/ir/policy.ts';
import { lowerTcSections, lowerXdpSections, type TcSectionIR, type XdpActionIR, type XdpSectionIR } from '../src/ir/xdp.ts';
import { BpfObject } from '../loader/index.ts';
import { createNetnsPair } from '../test/helpers/netns.ts';
import { eth, icmp, ipv4, ipv6, padded, TCP, tcp, udp } from '../test/helpers/packets.ts';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..');
const REPEAT = Number(process.env.BENCH_XDP_REPEAT ?? 200_000);
const ROUNDS = Number(process.env.BENCH_XDP_ROUNDS ?? 5);
const RULE_COUNTS = [10, 100, 1000, 10000];
const FLOOD_SECONDS = Number(process.env.BENCH_XDP_SECONDS ?? 2);
const SINK_PORT = 9;
/** Each measurement is repeated and the best kept: the VM's noise only ever slows a run down. */
const FLOOD_ROUNDS = Number(process.env.BENCH_XDP_FLOOD_ROUNDS ?? 3);

/** The frames both classifiers see: from the first rule to the default, IPv4 and IPv6. */
const FRAMES: { name: string; frame: Uint8Array }[] = [
  { name: 'blocklisted source (rule 0)', frame: padded(eth({}, ipv4({ src: '192.0.2.10' }, udp({ dport: 53 })))) },
  { name: 'https ACK (set lookup, rule 7)', frame: padded(eth({}, ipv4({ src: '198.18.7.7' }, tcp({ dport: 443, flags: TCP.ack })))) },
  { name: 'https over IPv6', frame: padded(eth({}, ipv6({ src: 'fd00::7' }, tcp({ dport: 443, flags: TCP.ack })))) },
  { name: 'VXLAN to AF_XDP (rule 9)', frame: padded(eth({}, ipv4({}, udp({ dport: 4789 }, new Uint8Array(50))))) },
  { name: 'ping (rule 12)', frame: padded(eth({}, ipv4({}, icmp({ type: 8 })))) },
  { name: 'TCP return traffic (rule 15)', frame: padded(eth({}, ipv4({}, tcp({ dport: 40000, flags: TCP.ack })))) },
  { name: 'unmatched UDP (default)', frame: padded(eth({}, ipv4({}, udp({ dport: 9999 })))) },
];

function fillSets(obj: BpfObject, s: XdpSectionIR): void {
  for (const set of s.sets) for (const e of set.elements) obj.map(`set_${set.name}`).update(encodeSetKey(set.name, set.kind, e), SET_VALUE);
}

/** The firewall's section as a tc ingress section: its AF_XDP rule passes (tc has no AF_XDP). */
function asTcSection(s: XdpSectionIR): TcSectionIR {
  const fix = (a: XdpActionIR): XdpActionIR => (a.kind === 'xsk' ? { kind: 'pass' } : a);
  const { mode: _mode, ...rest } = s;
  return { ...rest, direction: 'ingress', xskGroups: [], default: fix(s.default), rules: s.rules.map((r) => ({ ...r, action: fix(r.action) })) };
}

export function testRunBench(hook: 'xdp' | 'tc' = 'xdp'): { generated_ns: number; handwritten_ns: number; ratio: number; repeat: number; rounds: number; frames: { name: string; generated_ns: number; handwritten_ns: number; verdict: number }[] } {
  const ir = lowerPolicy(firewall);
  const section = { ...ir.xdp[0]!, interface: 'lo' };
  const gen = hook === 'xdp' ? buildXdpObject({ name: ir.name, xdp: [section] }, 0) : buildTcObject({ name: ir.name, xdp: [], tc: [asTcSection(section)] }, 0);
  const hw = BpfObject.open(compileBpf(join(here, 'xdp/handwritten.bpf.c'), hook === 'tc' ? { defines: { HANDWRITTEN_TC: 1 } } : {}).objectPath);
  try {
    hw.load();
    fillSets(hw, section);
    const g = gen.program(hook === 'xdp' ? XDP_PROG_NAME : TC_PROG_NAME);
    const h = hw.program(hook === 'xdp' ? 'xdp_handwritten' : 'tc_handwritten');
    const frames = FRAMES.map((f) => {
      const gv = g.testRun(f.frame).retval;
      const hv = h.testRun(f.frame).retval;
      if (gv !== hv) throw new Error(`${f.name}: generated says ${gv}, hand-written ${hv}: not the same rules`);
      // Alternate the two and keep each one's best round: VM noise exceeds the difference.
      let gBest = Infinity;
      let hBest = Infinity;
      for (let r = 0; r < ROUNDS; r++) {
        gBest = Math.min(gBest, g.testRun(f.frame, { repeat: REPEAT }).durationNs);
        hBest = Math.min(hBest, h.testRun(f.frame, { repeat: REPEAT }).durationNs);
      }
      return { name: f.name, generated_ns: gBest, handwritten_ns: hBest, verdict: gv };
    });
    const mean = (k: 'generated_ns' | 'handwritten_ns') => frames.reduce((a, f) => a + f[k], 0) / frames.length;
    const generated_ns = mean('generated_ns');
    const handwritten_ns = mean('handwritten_ns');
    return { generated_ns, handwritten_ns, ratio: generated_ns / handwritten_ns, repeat: REPEAT, rounds: ROUNDS, frames };
  } finally {
    gen.close();
    hw.close();
  }
}

function buildFlood(): string {
  const src = join(here, 'xdp/flood.c');
  const out = join(repo, '.cache/bench/xdp-flood');
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(dirname(out), { recursive: true });
    execFileSync('cc', ['-O2', '-o', out, src]);
  }
  return out;
}

/** N distinct /32 sources from 10.0.0.0/8: never the sender's address, so every rule is checked. */
function blockedSources(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}/32`);
}

function flood(bin: string, ns: string, dst: string, seconds = FLOOD_SECONDS): number {
  const r = spawnSync('ip', ['netns', 'exec', ns, bin, dst, String(SINK_PORT), String(seconds)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`flood: ${r.stderr}`);
  return Number(r.stdout.trim());
}

/** Packets the raw PREROUTING chain's last rule (the sink) counted, in namespace `ns`. */
function iptablesSinkPackets(ns: string): number {
  const listing = execFileSync('ip', ['netns', 'exec', ns, 'iptables', '-t', 'raw', '-L', 'PREROUTING', '-v', '-x', '-n'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return Number(listing.trim().split('\n').pop()!.trim().split(/\s+/)[0]);
}

/** Best of FLOOD_ROUNDS floods: packets that reached the sink rule, and what the sender sent. */
function bestFlood(bin: string, from: string, dst: string, reset: () => void, read: () => number): [number, number] {
  let best = 0;
  let sentBest = 0;
  for (let r = 0; r < FLOOD_ROUNDS; r++) {
    reset();
    const before = read();
    const sent = flood(bin, from, dst);
    const got = read() - before;
    if (got > best) [best, sentBest] = [got, sent];
  }
  return [best, sentBest];
}

export interface ScalingRow {
  rules: number;
  xdp_pps: number;
  nft_set_pps: number;
  iptables_ipset_pps: number;
  /** Reference only: N rules evaluated one by one (what nobody should use for a block list). */
  iptables_linear_pps: number;
  xdp_sent_pps: number;
  nft_set_sent_pps: number;
  iptables_ipset_sent_pps: number;
  iptables_linear_sent_pps: number;
}

export function scalingBench(): ScalingRow[] {
  const bin = buildFlood();
  const net = createNetnsPair('b');
  const pinDir = `/sys/fs/bpf/bpfctl-bench-${process.pid}`;
  const out: ScalingRow[] = [];
  const inB = (cmd: string, args: string[], input?: string) => execFileSync('ip', ['netns', 'exec', net.nsB, cmd, ...args], { input, encoding: 'utf8', maxBuffer: 64 << 20 });
  // iptables here is iptables-nft: flushing leaves its raw table hooked, so drop it between variants.
  const dropIptables = () => {
    inB('iptables', ['-t', 'raw', '-F']);
    spawnSync('ip', ['netns', 'exec', net.nsB, 'nft', 'delete', 'table', 'ip', 'raw']);
  };
  try {
    // Warm the path (neighbour entries, page cache of the binary, CPU frequency) before measuring.
    flood(bin, net.nsA, net.ipB, 0.5);
    for (const n of RULE_COUNTS) {
      const sources = blockedSources(n);
      // XDP: the N sources in one LPM set, then the sink rule the flood ends at.
      const xdp = lowerXdpSections(
        [
          {
            interface: net.ifB,
            default: 'pass',
            sets: { blocked: { type: 'ipv4-prefix', elements: sources, maxEntries: Math.max(n, 16) } },
            rules: [
              { name: 'blocked', match: { src: { set: 'blocked' } }, action: 'drop' },
              { name: 'sink', match: { proto: 'udp', dport: SINK_PORT }, action: 'drop' },
            ],
          },
        ],
        'xdp',
      );
      const d = deployXdp({ name: 'bench-xdp', xdp }, 0, pinDir, { netns: net.nsB });
      let xdpBest = 0;
      let xdpSent = 0;
      for (let r = 0; r < FLOOD_ROUNDS; r++) {
        const before = readSectionCounters(d.dir).rules[1]!.packets;
        const sent = flood(bin, net.nsA, net.ipB);
        const got = Number(readSectionCounters(d.dir).rules[1]!.packets - before);
        if (got > xdpBest) [xdpBest, xdpSent] = [got, sent];
      }
      undeployXdp(pinDir);

      const addrs = sources.map((x) => x.replace(/\/32$/, ''));

      // nftables: the N sources in a set, then the sink rule with a named counter.
      inB('nft', ['-f', '-'], [
        'table ip bpfctl_bench {',
        `  set blocked { type ipv4_addr; size ${Math.max(n, 16)}; elements = { ${addrs.join(', ')} } }`,
        '  counter sink { }',
        '  chain pre { type filter hook prerouting priority raw; policy accept;',
        '    ip saddr @blocked drop',
        `    udp dport ${SINK_PORT} counter name "sink" drop`,
        '  }',
        '}',
        '',
      ].join('\n'));
      const nftSink = () => {
        const j = JSON.parse(inB('nft', ['-j', 'list', 'counter', 'ip', 'bpfctl_bench', 'sink'])) as { nftables: { counter?: { packets: number } }[] };
        return j.nftables.find((x) => x.counter)!.counter!.packets;
      };
      const [nftBest, nftSent] = bestFlood(bin, net.nsA, net.ipB, () => {}, nftSink);
      inB('nft', ['delete', 'table', 'ip', 'bpfctl_bench']);

      // iptables + ipset: one set match, then the sink rule.
      inB('ipset', ['restore'], [`create bpfctl-bench hash:ip family inet maxelem ${Math.max(n, 65536)}`, ...addrs.map((a) => `add bpfctl-bench ${a}`), ''].join('\n'));
      inB('iptables-restore', [], ['*raw', ':PREROUTING ACCEPT [0:0]', '-A PREROUTING -m set --match-set bpfctl-bench src -j DROP', `-A PREROUTING -p udp --dport ${SINK_PORT} -j DROP`, 'COMMIT', ''].join('\n'));
      const [ipsetBest, ipsetSent] = bestFlood(bin, net.nsA, net.ipB, () => inB('iptables', ['-t', 'raw', '-Z']), () => iptablesSinkPackets(net.nsB));
      dropIptables();
      inB('ipset', ['destroy', 'bpfctl-bench']);

      // Reference: the same N sources as N iptables rules, then the sink rule.
      const rules = ['*raw', ':PREROUTING ACCEPT [0:0]', ...sources.map((x) => `-A PREROUTING -s ${x} -j DROP`), `-A PREROUTING -p udp --dport ${SINK_PORT} -j DROP`, 'COMMIT', ''];
      inB('iptables-restore', [], rules.join('\n'));
      const [linBest, linSent] = bestFlood(bin, net.nsA, net.ipB, () => inB('iptables', ['-t', 'raw', '-Z']), () => iptablesSinkPackets(net.nsB));
      dropIptables();

      const pps = (x: number) => Math.round(x / FLOOD_SECONDS);
      const row: ScalingRow = {
        rules: n,
        xdp_pps: pps(xdpBest),
        nft_set_pps: pps(nftBest),
        iptables_ipset_pps: pps(ipsetBest),
        iptables_linear_pps: pps(linBest),
        xdp_sent_pps: pps(xdpSent),
        nft_set_sent_pps: pps(nftSent),
        iptables_ipset_sent_pps: pps(ipsetSent),
        iptables_linear_sent_pps: pps(linSent),
      };
      process.stderr.write(`  ${n} rules: xdp ${row.xdp_pps}, nft set ${row.nft_set_pps}, iptables+ipset ${row.iptables_ipset_pps}, iptables linear (reference) ${row.iptables_linear_pps} pps\n`);
      out.push(row);
    }
  } finally {
    undeployXdp(pinDir);
    spawnSync('rm', ['-rf', pinDir]);
    // The sets and tables live in nsB and go with it.
    net.destroy();
  }
  return out;
}

export interface EgressRow {
  rules: number;
  tc_pps: number;
  nft_set_pps: number;
  tc_sent_pps: number;
  nft_set_sent_pps: number;
}

/** N distinct /32 destinations from 10.0.0.0/8: never the receiver's address, so every rule is checked. */
const blockedDestinations = blockedSources;

export function egressBench(): EgressRow[] {
  const bin = buildFlood();
  const net = createNetnsPair('e');
  const pinDir = `/sys/fs/bpf/bpfctl-bench-${process.pid}-tc`;
  const inA = (cmd: string, args: string[], input?: string) => execFileSync('ip', ['netns', 'exec', net.nsA, cmd, ...args], { input, encoding: 'utf8', maxBuffer: 64 << 20 });
  const out: EgressRow[] = [];
  try {
    flood(bin, net.nsA, net.ipB, 0.5);
    for (const n of RULE_COUNTS) {
      const dests = blockedDestinations(n);
      // tc egress on the sender's end: the N destinations in one LPM set, then the sink (passes).
      const tc = lowerTcSections(
        [
          {
            interface: net.ifA,
            direction: 'egress',
            default: 'pass',
            sets: { blocked: { type: 'ipv4-prefix', elements: dests, maxEntries: Math.max(n, 16) } },
            rules: [
              { name: 'blocked', match: { dst: { set: 'blocked' } }, action: 'drop' },
              { name: 'sink', match: { proto: 'udp', dport: SINK_PORT }, action: 'pass' },
            ],
          },
        ],
        'tc',
      );
      const d = deployTc({ name: 'bench-tc', xdp: [], tc }, 0, pinDir, { netns: net.nsA });
      let tcBest = 0;
      let tcSent = 0;
      for (let r = 0; r < FLOOD_ROUNDS; r++) {
        const before = readSectionCounters(d.dir).rules[1]!.packets;
        const sent = flood(bin, net.nsA, net.ipB);
        const got = Number(readSectionCounters(d.dir).rules[1]!.packets - before);
        if (got > tcBest) [tcBest, tcSent] = [got, sent];
      }
      undeployTc(pinDir);

      // nftables in the sender's output hook: the same set, then the counting sink that accepts.
      const addrs = dests.map((x) => x.replace(/\/32$/, ''));
      inA('nft', ['-f', '-'], [
        'table ip bpfctl_bench {',
        `  set blocked { type ipv4_addr; size ${Math.max(n, 16)}; elements = { ${addrs.join(', ')} } }`,
        '  counter sink { }',
        '  chain out { type filter hook output priority raw; policy accept;',
        '    ip daddr @blocked drop',
        `    udp dport ${SINK_PORT} counter name "sink" accept`,
        '  }',
        '}',
        '',
      ].join('\n'));
      const nftSink = () => {
        const j = JSON.parse(inA('nft', ['-j', 'list', 'counter', 'ip', 'bpfctl_bench', 'sink'])) as { nftables: { counter?: { packets: number } }[] };
        return j.nftables.find((x) => x.counter)!.counter!.packets;
      };
      const [nftBest, nftSent] = bestFlood(bin, net.nsA, net.ipB, () => {}, nftSink);
      inA('nft', ['delete', 'table', 'ip', 'bpfctl_bench']);

      const pps = (x: number) => Math.round(x / FLOOD_SECONDS);
      const row: EgressRow = { rules: n, tc_pps: pps(tcBest), nft_set_pps: pps(nftBest), tc_sent_pps: pps(tcSent), nft_set_sent_pps: pps(nftSent) };
      process.stderr.write(`  ${n} rules: tc egress ${row.tc_pps}, nft output set ${row.nft_set_pps} pps\n`);
      out.push(row);
    }
  } finally {
    undeployTc(pinDir);
    spawnSync('rm', ['-rf', pinDir]);
    net.destroy();
  }
  return out;
}

export async function run(): Promise<object> {
  process.stderr.write('xdp: BPF_PROG_TEST_RUN, generated vs hand-written\n');
  const test_run = testRunBench();
  process.stderr.write('tc: BPF_PROG_TEST_RUN, generated vs hand-written\n');
  const test_run_tc = testRunBench('tc');
  process.stderr.write('xdp: rule scaling on a veth pair: XDP set, nftables set, iptables + ipset, iptables linear chain (reference)\n');
  const scaling = scalingBench();
  process.stderr.write('tc: egress policy as rules grow, tc egress set vs nftables output set\n');
  const egress = egressBench();
  const first = scaling[0]!;
  const lastRow = scaling[scaling.length - 1]!;
  const result = {
    when: new Date().toISOString(),
    kernel: execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim(),
    test_run: { ...test_run, target: 'ratio <= 1.1' },
    test_run_tc: { ...test_run_tc, target: 'ratio <= 1.1' },
    scaling,
    scaling_summary: {
      xdp_10k_vs_10: lastRow.xdp_pps / first.xdp_pps,
      nft_set_10k_vs_10: lastRow.nft_set_pps / first.nft_set_pps,
      iptables_ipset_10k_vs_10: lastRow.iptables_ipset_pps / first.iptables_ipset_pps,
      iptables_linear_10k_vs_10: lastRow.iptables_linear_pps / first.iptables_linear_pps,
      flood_seconds: FLOOD_SECONDS,
      flood_rounds: FLOOD_ROUNDS,
      note: 'pps = packets that reached the last (sink) rule per second; *_sent_pps = what the sender managed (sender and receive path share the CPU on veth)',
      baselines: 'nft_set and iptables_ipset are what an operator would use for a block list; iptables_linear (N rules) is a reference only',
      target: 'XDP flat as rules grow',
    },
    egress,
    egress_summary: {
      tc_10k_vs_10: egress[egress.length - 1]!.tc_pps / egress[0]!.tc_pps,
      nft_set_10k_vs_10: egress[egress.length - 1]!.nft_set_pps / egress[0]!.nft_set_pps,
      note: 'pps = packets the sink rule counted per second on the sender (both filters run in the sending syscall); the sink passes, so the receiver works in both variants',
    },
  };
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results/xdp.json'), `${JSON.stringify(result, null, 2)}\n`);
  print(result);
  return result;
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  return `${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${rows.map(line).join('\n')}\n`;
}

function print(r: { test_run: ReturnType<typeof testRunBench>; test_run_tc: ReturnType<typeof testRunBench>; scaling: ReturnType<typeof scalingBench>; egress: EgressRow[] }): void {
  for (const [hook, t] of [
    ['XDP', r.test_run],
    ['tc', r.test_run_tc],
  ] as const) {
    const rows = t.frames.map((f) => [f.name, f.generated_ns.toFixed(1), f.handwritten_ns.toFixed(1), `${(f.generated_ns / f.handwritten_ns).toFixed(2)}x`]);
    rows.push(['mean', t.generated_ns.toFixed(1), t.handwritten_ns.toFixed(1), `${t.ratio.toFixed(2)}x (target <= 1.1x)`]);
    process.stdout.write(`${hook === 'tc' ? '\n' : ''}${hook}: BPF_PROG_TEST_RUN, ns per packet (best of ${t.rounds} x ${t.repeat})\n`);
    process.stdout.write(table(['frame', 'generated', 'hand-written', 'ratio'], rows));
  }
  process.stdout.write(`\nRule scaling on veth, packets/s reaching the last rule (best of ${FLOOD_ROUNDS} ${FLOOD_SECONDS} s UDP floods)\n`);
  const ratio = (a: number, b: number) => `${(a / Math.max(1, b)).toFixed(2)}x`;
  process.stdout.write(
    table(
      ['rules', 'XDP (set)', 'nft set', 'iptables+ipset', 'XDP / nft set', 'XDP / ipset', 'iptables linear (ref.)'],
      r.scaling.map((s) => [
        String(s.rules),
        String(s.xdp_pps),
        String(s.nft_set_pps),
        String(s.iptables_ipset_pps),
        ratio(s.xdp_pps, s.nft_set_pps),
        ratio(s.xdp_pps, s.iptables_ipset_pps),
        String(s.iptables_linear_pps),
      ]),
    ),
  );
  process.stdout.write(`\nEgress policy on the sender's veth end, packets/s counted by the sink rule (best of ${FLOOD_ROUNDS} ${FLOOD_SECONDS} s UDP floods)\n`);
  process.stdout.write(table(['rules', 'tc egress (set)', 'nft output set', 'tc / nft'], r.egress.map((e) => [String(e.rules), String(e.tc_pps), String(e.nft_set_pps), ratio(e.tc_pps, e.nft_set_pps)])));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await run();
}
