/**
 * `bpfctl xdp explain POLICY (--hex HEX | --pcap FILE)`: what a classification section does with
 * a frame, from the reference model (src/model, docs/xdp-model.md): the headers the program
 * parses, the rule that decides and each of its checks against the frame, the verdict the hook
 * returns and the counters that move. POLICY is a policy file (sets as written) or a loaded
 * policy (sets as they are now in its pins, `bpfctl set` changes included; redirect slots as
 * filled). Nothing is loaded or sent: the model computes what the kernel would do.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { XDP_MAPS } from '../../codegen/xdp/index.ts';
import { pathExists } from '../../deploy/access.ts';
import { policyDir } from '../../deploy/paths.ts';
import { loadedManifest } from '../../deploy/policy.ts';
import { tcDir } from '../../deploy/tc.ts';
import { xdpDir } from '../../deploy/xdp.ts';
import { readSet, setMapPath } from '../../deploy/xdp-sets.ts';
import type { TcDirection } from '../../dsl/tc.ts';
import { BpfctlError } from '../../errors.ts';
import type { PolicyIR } from '../../ir/policy.ts';
import { type ClassifierSectionIR, describeAction } from '../../ir/xdp.ts';
import { loadPolicyFile } from '../../load/index.ts';
import { compileModel, type Hook, type Layer, type ModelEnv, type Outcome, type Pkt, ip4Text, ip6Text, macText, protoText, readPcap, type SetContents } from '../../model/index.ts';
import { BpfMap } from '../../../loader/index.ts';
import { UsageError } from '../errors.ts';
import type { Output } from '../output.ts';
import { type Args, defineCommand } from './types.ts';

/** A policy, section or frame explain cannot work on. */
export class ExplainError extends BpfctlError {
  constructor(message: string) {
    super('E_EXPLAIN', message);
  }
}

interface ExplainArgs {
  policy: string;
  frame?: string;
  hex?: string[];
  pcap?: string;
  section?: string;
  hook?: 'xdp' | 'tc-ingress' | 'tc-egress';
  trace?: boolean;
}

interface Section {
  readonly section: ClassifierSectionIR;
  readonly hook: Hook;
  readonly direction?: TcDirection;
  /** `eth0`, `eth0 tc ingress`. */
  readonly label: string;
}

interface Frame {
  /** 1-based: the argument's position, or the pcap record number. */
  readonly number: number;
  readonly data: Uint8Array;
  /** Bytes on the wire when the capture kept fewer. */
  readonly origLen?: number;
}

const isPolicyFile = (arg: string) => /\.(ts|mts|js|mjs)$/.test(arg);

/** Frame bytes from hex text: spaces, colons, dashes and a leading 0x are allowed between bytes. */
export function parseHexFrame(text: string, what: string): Uint8Array {
  const clean = text.trim().replace(/^0x/i, '').replace(/[\s:.-]/g, '');
  const bad = /[^0-9a-f]/i.exec(clean);
  if (bad) throw new UsageError(`${what}: '${bad[0]}' is not a hex digit (at character ${bad.index + 1} of the digits)`);
  if (clean.length % 2) throw new UsageError(`${what}: an odd number of hex digits (${clean.length}): each byte is two`);
  if (!clean.length) throw new UsageError(`${what}: no bytes`);
  return Uint8Array.from(Buffer.from(clean, 'hex'));
}

function sectionsOf(ir: PolicyIR): Section[] {
  return [
    ...ir.xdp.map((s) => ({ section: s, hook: 'xdp' as const, label: s.interface })),
    ...(ir.tc ?? []).map((s) => ({ section: s, hook: 'tc' as const, direction: s.direction, label: `${s.interface} tc ${s.direction}` })),
  ];
}

/** The section `--section`/`--hook` name, or the only one. @throws ExplainError */
export function pickSection(policy: string, all: readonly Section[], iface?: string, hook?: string): Section {
  if (!all.length) throw new ExplainError(`policy ${policy} has no xdp or tc sections`);
  const fits = all.filter((s) => (!iface || s.section.interface === iface) && (!hook || hook === (s.hook === 'xdp' ? 'xdp' : `tc-${s.direction}`)));
  const labels = all.map((s) => s.label).join(', ');
  if (!fits.length) throw new ExplainError(`policy ${policy} has no ${hook ? `${hook} ` : ''}section${iface ? ` on ${iface}` : ''} (sections: ${labels})`);
  if (fits.length > 1) {
    const onOne = new Set(fits.map((s) => s.section.interface)).size === 1;
    throw new ExplainError(`policy ${policy} has ${fits.length} sections${iface ? ` on ${iface}` : ''} (${fits.map((s) => s.label).join(', ')}): pick one with ${onOne ? '--hook xdp|tc-ingress|tc-egress' : '--section IFACE'}`);
  }
  return fits[0]!;
}

/** Set contents and fd-map state of a loaded section, from its pins. */
function liveState(policy: string, s: Section): { sets: SetContents; env: ModelEnv } {
  const dir = s.hook === 'xdp' ? xdpDir(policyDir(policy), s.section.interface) : tcDir(policyDir(policy), s.section.interface, s.direction!);
  if (!pathExists(dir)) throw new ExplainError(`policy ${policy}: ${s.label} is in its manifest but not pinned at ${dir}`);
  const sets: Record<string, string[]> = {};
  for (const set of s.section.sets) if (pathExists(setMapPath(dir, set.name))) sets[set.name] = readSet(dir, set.name).elements;
  const ready = new Set<number>();
  const txPath = join(dir, 'maps', XDP_MAPS.txPorts);
  if (s.section.redirects.length && pathExists(txPath)) {
    const m = BpfMap.openPinned(txPath);
    try {
      s.section.redirects.forEach((_, slot) => {
        const v = m.lookup(Uint8Array.of(slot, 0, 0, 0));
        // A devmap slot exists only when filled; the tc array holds ifindex 0 when empty.
        if (v?.some((b) => b !== 0)) ready.add(slot);
      });
    } finally {
      m.close();
    }
  }
  return { sets, env: { redirectReady: (slot) => ready.has(slot) } };
}

function framesOf(argv: ExplainArgs): { frames: Frame[]; source: string } {
  const given = [argv.frame !== undefined, !!argv.hex?.length, argv.pcap !== undefined].filter(Boolean).length;
  if (given === 0) throw new UsageError('xdp explain: give a frame: --hex HEX (or HEX after the policy) or --pcap FILE');
  if (given > 1) throw new UsageError('xdp explain: give frames one way: a HEX argument, --hex or --pcap');
  if (argv.pcap !== undefined) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(argv.pcap);
    } catch (err) {
      throw new ExplainError(`cannot read ${argv.pcap}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const frames = readPcap(bytes, argv.pcap).map((f) => ({ number: f.number, data: f.data, ...(f.origLen > f.data.length ? { origLen: f.origLen } : {}) }));
    if (!frames.length) throw new ExplainError(`${argv.pcap}: no packets`);
    return { frames, source: argv.pcap };
  }
  const texts = argv.frame !== undefined ? [argv.frame] : argv.hex!;
  return { frames: texts.map((t, i) => ({ number: i + 1, data: parseHexFrame(String(t), texts.length > 1 ? `--hex #${i + 1}` : 'frame') })), source: 'hex' };
}

/** `struct pkt` as JSON: addresses and MACs as text, the rest as the C has them. */
function pktJson(p: Pkt): Record<string, unknown> {
  return {
    ...p,
    eth: { dst: macText(p.eth.dst), src: macText(p.eth.src) },
    ip6: p.ip6 ? { saddr: ip6Text(p.ip6.saddr), daddr: ip6Text(p.ip6.daddr) } : null,
    saddr4: ip4Text(p.saddr4),
    daddr4: ip4Text(p.daddr4),
  };
}

function outcomeJson(o: Outcome, f: Frame, s: Section, source: string): Record<string, unknown> {
  const decided = o.tried?.at(-1);
  return {
    frame: f.number,
    source,
    bytes: f.data.length,
    ...(f.origLen ? { origLen: f.origLen } : {}),
    interface: s.section.interface,
    hook: s.hook === 'xdp' ? 'xdp' : `tc-${s.direction}`,
    parse: o.parse.status === 'malformed' ? { status: 'malformed', reason: o.parse.reason, offset: o.parse.offset } : { status: o.parse.status, fields: pktJson(o.parse.pkt) },
    layers: o.layers,
    decision: o.hit.kind,
    rule: o.hit.kind === 'rule' ? { index: o.hit.rule.index, name: o.hit.rule.name, summary: o.hit.rule.summary, counted: o.hit.rule.count } : null,
    checks: o.hit.kind === 'rule' ? (decided?.checks ?? []) : [],
    tried: o.tried,
    action: o.action ? describeAction(o.action) : null,
    verdict: o.verdict,
    counters: o.counters,
  };
}

/** IPv6 next-header values that are not protocols rules name. */
const NEXT_NAMES: Readonly<Record<number, string>> = { 0: 'hop-by-hop', 43: 'routing', 44: 'fragment', 59: 'none', 60: 'dest-opts' };
const nextText = (n: unknown) => NEXT_NAMES[Number(n)] ?? protoText(Number(n));

/** One header as people read it, e.g. `ipv4  10.0.0.1 > 10.0.0.2  proto tcp  dscp 0  ttl 64`. */
function layerLine(l: Layer): string {
  const f = l.fields;
  switch (l.name) {
    case 'ethernet':
      return `${f.src} > ${f.dst}  type ${f.type}`;
    case 'vlan':
      return `id ${f.id} (tpid ${f.tpid})  type ${f.type}`;
    case 'ipv4':
      return `${f.src} > ${f.dst}  proto ${protoText(Number(f.proto))}  dscp ${f.dscp}  ttl ${f.ttl}  ihl ${f.ihl}  length ${f.length}${f.fragOffset || f.moreFragments ? `  fragment offset ${f.fragOffset}${f.moreFragments ? ' +MF' : ''}` : ''}`;
    case 'ipv6':
      return `${f.src} > ${f.dst}  next ${nextText(f.next)}  dscp ${f.dscp}  hop limit ${f.hopLimit}  payload ${f.payloadLength}`;
    case 'fragment':
      return `next ${nextText(f.next)}  offset ${f.fragOffset}${f.moreFragments ? ' +MF' : ''}`;
    case 'tcp':
      return `${f.sport} > ${f.dport}  flags ${flagNames(Number(f.flags))}  doff ${f.doff}`;
    case 'udp':
      return `${f.sport} > ${f.dport}  length ${f.length}`;
    case 'icmp':
    case 'icmpv6':
      return `type ${f.type}  code ${f.code}`;
    default:
      return `next ${nextText(f.next)}  length ${l.length}`;
  }
}

function flagNames(n: number): string {
  const names = ['fin', 'syn', 'rst', 'psh', 'ack', 'urg', 'ece', 'cwr'].filter((_, i) => n & (1 << i));
  return names.length ? names.join(',') : 'none';
}

const pad = (s: string, n: number) => (s.length >= n ? `${s} ` : s.padEnd(n));

function renderChecks(out: Output, checks: readonly { want: string; got: string; ok: boolean }[], indent: string): void {
  const w = Math.max(...checks.map((c) => c.want.length)) + 2;
  for (const c of checks) out.line(`${indent}${c.ok ? 'yes' : 'no '}  ${pad(c.want, w)}${c.got}`);
}

function render(out: Output, o: Outcome, f: Frame, s: Section, trace: boolean): void {
  out.line(`frame ${f.number}: ${f.data.length} bytes${f.origLen ? ` (of ${f.origLen} on the wire: the capture cut it)` : ''}, ${s.hook === 'xdp' ? `${s.label} (xdp)` : s.label}`);
  for (const l of o.layers ?? []) out.line(`  ${pad(l.name, 11)} ${layerLine(l)}`);
  if (o.parse.status === 'malformed') {
    out.line(`  ${pad('malformed', 11)} ${o.parse.reason}: no rule sees it (malformed: '${s.section.malformed}')`);
  } else {
    if (o.parse.status === 'fragment') out.line(`  ${pad('fragment', 11)} a later fragment: no L4 header, so rules with ports, flags or ICMP fields cannot match`);
    const tried = o.tried ?? [];
    const before = o.hit.kind === 'rule' ? tried.slice(0, -1) : tried;
    if (trace) {
      for (const t of before) {
        const miss = t.checks.at(-1)!;
        out.line(`  ${pad(`rule ${t.index}`, 11)} ${t.name}: no, ${miss.want} (frame: ${miss.got})`);
      }
    }
    if (o.hit.kind === 'rule') {
      const r = o.hit.rule;
      out.line(`  ${pad(`rule ${r.index}`, 11)} ${r.name}: ${r.summary}${before.length && !trace ? `  (${before.length} rule${before.length === 1 ? '' : 's'} before it did not match; --trace shows why)` : ''}`);
      const checks = tried.at(-1)?.checks ?? [];
      if (checks.length) renderChecks(out, checks, '      ');
      else out.line('      (it matches every frame)');
    } else out.line(`  ${pad('default', 11)} no rule matched (${tried.length} tried${trace || !tried.length ? '' : '; --trace shows why'}): ${describeAction(s.section.default)}`);
  }
  out.line(`  ${pad('verdict', 11)} ${o.verdict.name} (${o.verdict.value})${o.action ? `: ${describeAction(o.action)}` : ''}${o.verdict.note ? `; ${o.verdict.note}` : ''}`);
  const moves = o.counters.map((c) => `${c.map}[${c.slot}] (${c.name}) +1 packet +${c.bytes} bytes`);
  if (o.hit.kind === 'rule' && !o.hit.rule.count) moves.push(`rule ${o.hit.rule.name} is not counted (count: false)`);
  out.line(`  ${pad('counters', 11)} ${moves.join('; ')}`);
}

export const explainCommand = defineCommand({
  command: 'explain <policy> [frame]',
  describe: 'What a section does with a frame (hex or pcap): the headers parsed, the rule that hits and why, the verdict and counters',
  builder: (y) =>
    y
      .positional('policy', { type: 'string', demandOption: true, describe: 'policy.ts (sets as written), or a loaded policy (sets as its pins hold them now)' })
      .positional('frame', { type: 'string', describe: 'the frame as hex bytes (the same as --hex)' })
      .option('hex', { type: 'string', array: true, describe: 'a frame as hex bytes, from the Ethernet header on (repeatable)' })
      .option('pcap', { type: 'string', describe: 'a classic pcap file (tcpdump -w) of Ethernet frames: every packet in it' })
      .option('section', { alias: ['interface', 'i'], type: 'string', describe: 'the interface whose section decides, when the policy has several' })
      .option('hook', { choices: ['xdp', 'tc-ingress', 'tc-egress'] as const, describe: 'the xdp section or a tc section, when the interface has several' })
      .option('trace', { type: 'boolean', describe: 'also every rule tried before the decision, with the check it failed' }),
  handler: async (argv: Args<ExplainArgs>) => {
    const { out } = argv;
    const { frames, source } = framesOf(argv);
    const loaded = !isPolicyFile(argv.policy);
    const ir = loaded ? loadedManifest(argv.policy).ir : await loadPolicyFile(argv.policy);
    const s = pickSection(ir.name, sectionsOf(ir), argv.section, argv.hook);
    const live = loaded ? liveState(ir.name, s) : { sets: undefined, env: {} };
    const model = compileModel(s.section, { hook: s.hook, ...live.env, ...(live.sets ? { sets: live.sets } : {}) });
    const results = frames.map((f) => ({ f, o: model.run(f.data, true) }));
    if (out.json) return void out.printJson(results.map(({ f, o }) => outcomeJson(o, f, s, source)));
    results.forEach(({ f, o }, i) => {
      if (i) out.line('');
      render(out, o, f, s, argv.trace ?? false);
    });
  },
});
