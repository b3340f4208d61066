/**
 * The reference model (src/model) against the kernel: over a million generated frames (valid,
 * truncated, fragmented, VLAN/QinQ, IPv4 options, IPv6 extension headers, TCP options and flags,
 * ICMP, byte flips, random bytes) go through BPF_PROG_TEST_RUN of the generated program and
 * through the model, over several policies (the firewall example, the golden sections, generated
 * rule lists). The verdict must agree for every frame, and the counters for every batch (read
 * from the per-CPU maps before and after it); a batch whose counters disagree is replayed frame
 * by frame to name the frame. Frames are biased toward the rules' edges: addresses at prefix
 * boundaries, ports at range ends, the flag combinations the rules test.
 *
 * Then `bpfctl xdp explain` on a deployed policy: it reads the sets from the pins, changed live.
 *
 * XDP_MODEL_FRAMES=N changes the total (default 1,000,000), XDP_MODEL_SEED the seed.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import * as fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import firewall from '../../examples/firewall/policy.ts';
import { generateClassifier, HOOKS, setMapName, XDP_MAPS } from '../../src/codegen/xdp/index.ts';
import { compileBpf } from '../../src/compile/index.ts';
import { type Manifest, MANIFEST_VERSION, writeManifest } from '../../src/deploy/manifest.ts';
import { policyDir } from '../../src/deploy/paths.ts';
import { buildXdpObject, deployXdp, undeployXdp } from '../../src/deploy/xdp.ts';
import { encodeSetKey, SET_VALUE } from '../../src/deploy/xdp-sets.ts';
import { type Counter, readCounters } from '../../src/deploy/xdp-stats.ts';
import type { XdpMatch, XdpRuleSpec, XdpSectionSpec, XdpSetSpec } from '../../src/dsl/xdp.ts';
import { lowerPolicy } from '../../src/ir/policy.ts';
import { type ClassifierSectionIR, lowerTcSections, lowerXdpSections, parseIpv6, type XdpActionIR, type XdpSectionIR } from '../../src/ir/xdp.ts';
import { compileModel, type Hook, type Outcome, type SectionModel } from '../../src/model/index.ts';
import { BpfObject, BpfProgram, LoaderError, unpinAll } from '../../loader/index.ts';
import { TC_GOLDEN_SECTIONS } from '../golden/tc/sections.ts';
import { GOLDEN_SECTIONS } from '../golden/xdp/sections.ts';
import { runCli } from '../helpers/cli.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { createNetnsPair } from '../helpers/netns.ts';
import { eth, ipv4, padded, udp } from '../helpers/packets.ts';

const test = suite('xdp model vs kernel');
let before: Snapshot;

const TOTAL = Number(process.env.XDP_MODEL_FRAMES ?? 1_000_000);
const SEED = Number(process.env.XDP_MODEL_SEED ?? 0x5eed);
const BATCH = 2000;

// ---------------------------------------------------------------------------------------------
// What the frames aim at: every value a section's rules and sets name, and the values just
// beside them.

interface Prefix4 {
  net: number;
  len: number;
}
interface Prefix6 {
  net: number[];
  len: number;
}
interface Vocab {
  v4: number[];
  p4: Prefix4[];
  v6: number[][];
  p6: Prefix6[];
  ports: number[];
  vlans: number[];
  /** [outer, inner] of every rule that names both. */
  vlanPairs: [number, number][];
  dscp: number[];
  protos: number[];
  flags: { mask: number; value: number }[];
  icmp: number[];
  macs: number[][];
  ethTypes: number[];
}

const u32 = (b: readonly number[]) => b.reduce((a, x) => a * 256 + x, 0) >>> 0;
const mask4 = (len: number) => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);

function prefixOf(text: string): { family: 4 | 6; bytes: number[]; len: number } {
  const [a, l] = text.includes('/') ? (text.split('/') as [string, string]) : [text, undefined];
  if (a.includes(':')) return { family: 6, bytes: parseIpv6(a)!, len: l === undefined ? 128 : Number(l) };
  return { family: 4, bytes: a.split('.').map(Number), len: l === undefined ? 32 : Number(l) };
}

function edges6(p: Prefix6): number[][] {
  const hostBits = (i: number) => ~((0xff << (8 - Math.max(0, Math.min(8, p.len - i * 8)))) & 0xff) & 0xff;
  const first = p.net.map((b, i) => b & ~hostBits(i) & 0xff);
  const last = first.map((b, i) => b | hostBits(i));
  const out = [first, last];
  if (p.len > 0) {
    // Just outside: the last prefix bit flipped.
    const o = [...first];
    const bit = p.len - 1;
    o[bit >> 3]! ^= 0x80 >> (bit & 7);
    out.push(o);
  }
  return out;
}

function vocabOf(s: ClassifierSectionIR): Vocab {
  const v: Vocab = { v4: [], p4: [], v6: [], p6: [], ports: [0, 1, 22, 53, 80, 443, 1023, 1024, 65535], vlans: [0, 1, 4095], vlanPairs: [[0, 0]], dscp: [0, 46, 63], protos: [0, 1, 6, 17, 43, 44, 47, 50, 58, 59, 60, 255], flags: [], icmp: [0, 3, 4, 8, 128, 129, 135], macs: [], ethTypes: [0x0800, 0x86dd, 0x0806, 0x88cc, 0x8100, 0x88a8, 0x0600] };
  const addPrefix = (text: string) => {
    const p = prefixOf(text);
    if (p.family === 4) {
      const net = (u32(p.bytes) & mask4(p.len)) >>> 0;
      const last = (net | ~mask4(p.len)) >>> 0;
      v.p4.push({ net, len: p.len });
      v.v4.push(net, last, (net - 1) >>> 0, (last + 1) >>> 0);
    } else {
      const pr = { net: p.bytes, len: p.len };
      v.p6.push(pr);
      v.v6.push(...edges6(pr));
    }
  };
  const addPort = (n: number) => v.ports.push(...[n - 1, n, n + 1].filter((x) => x >= 0 && x <= 65535));
  for (const set of s.sets) {
    for (const e of set.elements) {
      if (set.kind === 'port') addPort(Number(e));
      else if (set.kind === 'mac') v.macs.push(e.split(':').map((h) => Number.parseInt(h, 16)));
      else addPrefix(e);
    }
  }
  for (const r of s.rules) {
    const m = r.match;
    for (const a of [m.src, m.dst]) if (a && 'prefix' in a) addPrefix(a.prefix.text);
    for (const p of [m.sport, m.dport]) if (p && 'lo' in p) [p.lo, p.hi].forEach(addPort);
    for (const mac of [m.srcMac, m.dstMac]) if (mac && 'mac' in mac) v.macs.push([...mac.mac]);
    if (m.vlan !== undefined) v.vlans.push(m.vlan, (m.vlan + 1) & 0xfff);
    if (m.innerVlan !== undefined) v.vlans.push(m.innerVlan, (m.innerVlan + 1) & 0xfff);
    if (m.innerVlan !== undefined) v.vlanPairs.push([m.vlan ?? 0, m.innerVlan]);
    if (m.dscp !== undefined) v.dscp.push(m.dscp, (m.dscp + 1) & 63);
    if (m.proto !== undefined) v.protos.push(m.proto);
    if (m.ethType !== undefined) v.ethTypes.push(m.ethType);
    if (m.tcpFlags) v.flags.push({ mask: m.tcpFlags.mask, value: m.tcpFlags.value });
    for (const n of [m.icmpType, m.icmpCode]) if (n !== undefined) v.icmp.push(n, (n + 1) & 0xff);
  }
  if (!v.flags.length) v.flags.push({ mask: 0x12, value: 0x02 });
  if (!v.macs.length) v.macs.push([2, 0, 0, 0, 0, 1]);
  if (!v.v4.length) v.v4.push(0xc0000201);
  if (!v.p4.length) v.p4.push({ net: 0x0a000000, len: 8 });
  if (!v.v6.length) v.v6.push(parseIpv6('fd00::1')!);
  if (!v.p6.length) v.p6.push({ net: parseIpv6('fd00::')!, len: 8 });
  return v;
}

// ---------------------------------------------------------------------------------------------
// Frames, drawn from fast-check's random source by a custom arbitrary (one value = one batch)
// and written straight into bytes: a million structured values through the combinators would
// take minutes. The draws are seeded and replayable like any fast-check value, and a failing
// batch shrinks by halves down to the one frame that disagrees.

/**
 * Weighted choices and picks. fast-check's Random seeds it (four draws per batch); the draws
 * themselves come from sfc32, whose one-line step is ten times cheaper than a bounded draw
 * through fast-check, and which makes the batch as replayable as the seed that made it.
 */
class Draw {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(r: fc.Random) {
    [this.a, this.b, this.c, this.d] = [0, 0, 0, 0].map(() => r.nextInt(-0x80000000, 0x7fffffff) | 0) as [number, number, number, number];
    for (let i = 0; i < 12; i++) this.next();
  }
  /** 32 random bits, unsigned. */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  int(min: number, max: number): number {
    return min + Math.floor((this.next() / 0x100000000) * (max - min + 1));
  }
  byte(): number {
    return this.next() & 0xff;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)]!;
  }
  /** Index of one of `weights`, each as likely as its weight. */
  choose(...weights: number[]): number {
    let n = this.int(0, weights.reduce((a, b) => a + b, 0) - 1);
    for (let i = 0; i < weights.length; i++) {
      n -= weights[i]!;
      if (n < 0) return i;
    }
    return weights.length - 1;
  }
}

const MAX_FRAME = 1600;

/** Bytes appended in order; `at` reads back what was written (for lengths patched later). */
class Writer {
  readonly b = new Uint8Array(4096);
  n = 0;
  u8(x: number): void {
    this.b[this.n++] = x & 0xff;
  }
  u16(x: number): void {
    this.u8(x >> 8);
    this.u8(x);
  }
  u32(x: number): void {
    this.u16(x >>> 16);
    this.u16(x & 0xffff);
  }
  bytes(xs: ArrayLike<number>): void {
    for (let i = 0; i < xs.length; i++) this.u8(xs[i]!);
  }
  fill(len: number, x: number): void {
    for (let i = 0; i < len; i++) this.u8(x);
  }
  set16(at: number, x: number): void {
    this.b[at] = (x >> 8) & 0xff;
    this.b[at + 1] = x & 0xff;
  }
}

type L4Kind = 'tcp' | 'udp' | 'icmp' | 'raw';

function drawPort(d: Draw, v: Vocab): number {
  return d.choose(3, 1) === 0 ? d.pick(v.ports) : d.int(0, 65535);
}

function drawAddr4(d: Draw, v: Vocab): number {
  switch (d.choose(3, 3, 1)) {
    case 0:
      return d.pick(v.v4);
    case 1: {
      const p = d.pick(v.p4);
      return ((p.net & mask4(p.len)) | (d.int(0, 0xffffffff) & ~mask4(p.len))) >>> 0;
    }
    default:
      return d.int(0, 0xffffffff) >>> 0;
  }
}

function writeAddr6(w: Writer, d: Draw, v: Vocab): void {
  switch (d.choose(3, 3, 1)) {
    case 0:
      w.bytes(d.pick(v.v6));
      return;
    case 1: {
      const p = d.pick(v.p6);
      for (let i = 0; i < 16; i++) {
        const m = (0xff << (8 - Math.max(0, Math.min(8, p.len - i * 8)))) & 0xff;
        w.u8((p.net[i]! & m) | (d.byte() & ~m));
      }
      return;
    }
    default:
      for (let i = 0; i < 16; i++) w.u8(d.byte());
  }
}

const MAC2 = [2, 0, 0, 0, 0, 2];

function writeMac(w: Writer, d: Draw, v: Vocab): void {
  switch (d.choose(1, 2, 1)) {
    case 0:
      w.bytes(d.pick(v.macs));
      return;
    case 1:
      w.bytes(MAC2);
      return;
    default:
      for (let i = 0; i < 6; i++) w.u8(d.byte());
  }
}

function drawIcmp(d: Draw, v: Vocab): number {
  return d.choose(3, 1) === 0 ? d.pick(v.icmp) : d.byte();
}

function drawVid(d: Draw, v: Vocab): number {
  return d.choose(3, 1) === 0 ? d.pick(v.vlans) : d.int(0, 0xffff);
}

const TPIDS = [0x8100, 0x88a8];
const EXT_TYPES = [0, 43, 44, 60];
const IP_TYPES = [0x0800, 0x86dd];

/** The flags a rule tests, the others at random; sometimes one tested flag flipped; sometimes anything. */
function drawFlags(d: Draw, v: Vocab): number {
  const f = d.pick(v.flags);
  switch (d.choose(3, 1, 1)) {
    case 0:
      return (f.value & f.mask) | (d.byte() & ~f.mask & 0xff);
    case 1:
      return f.value ^ (1 << d.int(0, 7));
    default:
      return d.byte();
  }
}

/** An L4 kind and the IP protocol number that announces it. */
function drawL4(d: Draw, v: Vocab, v6: boolean): { kind: L4Kind; proto: number } {
  switch (d.choose(5, 4, 2, 1)) {
    case 0:
      return { kind: 'tcp', proto: 6 };
    case 1:
      return { kind: 'udp', proto: 17 };
    case 2:
      // ICMP under IPv6 and ICMPv6 under IPv4 too: the program reads either wherever it is.
      return { kind: 'icmp', proto: d.choose(4, 1) === 0 ? (v6 ? 58 : 1) : v6 ? 1 : 58 };
    default:
      return { kind: 'raw', proto: d.choose(3, 1) === 0 ? d.pick(v.protos) : d.byte() };
  }
}

function writeL4(w: Writer, d: Draw, v: Vocab, kind: L4Kind): void {
  switch (kind) {
    case 'tcp': {
      w.u16(drawPort(d, v));
      w.u16(drawPort(d, v));
      w.u32(1);
      w.u32(0);
      const k = d.choose(8, 2, 1);
      const doff = k === 0 ? 5 : k === 1 ? d.int(6, 15) : d.int(0, 4);
      w.u8(doff << 4);
      w.u8(drawFlags(d, v));
      w.u16(0xffff);
      w.u32(0);
      // Options (NOPs, then an end of list) as long as the data offset says.
      for (let i = 20; i < doff * 4; i++) w.u8(i === doff * 4 - 1 ? 0 : 1);
      break;
    }
    case 'udp':
      w.u16(drawPort(d, v));
      w.u16(drawPort(d, v));
      w.u16(8);
      w.u16(0);
      break;
    case 'icmp':
      w.u8(drawIcmp(d, v));
      w.u8(drawIcmp(d, v));
      w.u16(0);
      w.u32(0x00010001);
      break;
    case 'raw':
      w.fill(d.int(0, 24), 0x5a);
  }
}

function writeIpv4(w: Writer, d: Draw, v: Vocab): void {
  const start = w.n;
  const optWords = d.choose(6, 2) === 0 ? 0 : d.int(1, 10);
  const hlen = 20 + optWords * 4;
  const ihl = d.choose(12, 1) === 0 ? hlen / 4 : d.int(0, 15);
  const version = d.choose(30, 1) === 0 ? 4 : d.int(0, 15);
  const fragOff = d.choose(6, 1) === 0 ? 0 : d.int(1, 0x1fff);
  const l4 = drawL4(d, v, false);
  w.u8((version << 4) | ihl);
  w.u8(d.choose(1, 1) === 0 ? d.pick(v.dscp) << 2 : d.byte());
  w.u16(0); // total length, below
  w.u16(0x1234);
  w.u16((d.int(0, 1) << 13) | fragOff);
  w.u8(64);
  w.u8(l4.proto);
  w.u16(0);
  w.u32(drawAddr4(d, v));
  w.u32(drawAddr4(d, v));
  for (let i = 0; i < optWords * 4; i++) w.u8(i === optWords * 4 - 1 ? 0 : 1);
  if (fragOff) w.fill(16, 0xab);
  else writeL4(w, d, v, l4.kind);
  w.set16(start + 2, d.choose(20, 1) === 0 ? w.n - start : d.int(0, 80));
}

function writeIpv6(w: Writer, d: Draw, v: Vocab): void {
  const start = w.n;
  const version = d.choose(30, 1) === 0 ? 6 : d.int(0, 15);
  const tc = d.choose(1, 1) === 0 ? d.pick(v.dscp) << 2 : d.byte();
  const k = d.choose(4, 3, 1);
  const nExt = k === 0 ? 0 : k === 1 ? d.int(1, 3) : d.int(4, 8);
  const exts: number[] = [];
  for (let i = 0; i < nExt; i++) exts.push(d.pick(EXT_TYPES));
  const l4 = drawL4(d, v, true);
  w.u8((version << 4) | (tc >> 4));
  w.u8((tc & 0xf) << 4);
  w.u16(0);
  w.u16(0); // payload length, below
  w.u8(exts[0] ?? l4.proto);
  w.u8(64);
  writeAddr6(w, d, v);
  writeAddr6(w, d, v);
  for (let i = 0; i < exts.length; i++) {
    const next = exts[i + 1] ?? l4.proto;
    if (exts[i] === 44) {
      const off = d.choose(2, 1) === 0 ? 0 : d.int(1, 0x1fff);
      w.u8(next);
      w.u8(0);
      w.u16((off << 3) | d.int(0, 1));
      w.u32(0xabcd);
    } else {
      // A long header is written only in part, so the frame ends inside it (malformed).
      const units = d.choose(8, 1) === 0 ? d.int(0, 2) : d.int(3, 255);
      w.u8(next);
      w.u8(units);
      w.fill(Math.min(6 + units * 8, 64), exts[i] === 43 ? 0 : 1);
    }
  }
  writeL4(w, d, v, l4.kind);
  w.set16(start + 4, w.n - start - 40);
}

/** One frame: Ethernet, VLAN tags, then IPv4, IPv6, another EtherType or garbage; then cut, flipped, extended or padded. */
function drawFrame(d: Draw, v: Vocab, w: Writer): Uint8Array {
  w.n = 0;
  writeMac(w, d, v);
  writeMac(w, d, v);
  switch (d.choose(14, 3, 2, 1, 1)) {
    case 1:
      w.u16(d.pick(TPIDS));
      w.u16(drawVid(d, v));
      break;
    case 2:
      for (let i = 0; i < 2; i++) {
        w.u16(d.pick(TPIDS));
        w.u16(drawVid(d, v));
      }
      break;
    case 3: {
      const [o, i] = d.pick(v.vlanPairs);
      w.u16(d.pick(TPIDS));
      w.u16(o);
      w.u16(0x8100);
      w.u16(i);
      break;
    }
    case 4:
      for (let i = 0; i < 3; i++) {
        w.u16(d.pick(TPIDS));
        w.u16(drawVid(d, v));
      }
  }
  switch (d.choose(10, 10, 2, 2)) {
    case 0:
      w.u16(0x0800);
      writeIpv4(w, d, v);
      break;
    case 1:
      w.u16(0x86dd);
      writeIpv6(w, d, v);
      break;
    case 2:
      w.u16(d.pick(v.ethTypes));
      w.fill(d.int(0, 46), 0x11);
      break;
    default: {
      w.u16(d.choose(1, 1) === 0 ? d.pick(IP_TYPES) : d.int(0, 0xffff));
      const n = d.int(0, 96);
      for (let i = 0; i < n; i++) w.u8(d.byte());
    }
  }
  let len = Math.min(w.n, MAX_FRAME);
  switch (d.choose(12, 3, 2, 1, 2)) {
    case 1: // cut short, never below the Ethernet header (the kernel refuses shorter test runs)
      len = 14 + d.int(0, len - 14);
      break;
    case 2:
      w.b[d.int(0, len - 1)] = d.byte();
      break;
    case 3: {
      const extra = d.int(1, 64);
      for (let i = 0; i < extra; i++) w.b[len + i] = d.byte();
      len += extra;
      break;
    }
    case 4:
      if (len < 60) {
        w.b.fill(0, len, 60);
        len = 60;
      }
  }
  return w.b.slice(0, len);
}

/** A batch of frames as one fast-check value; it shrinks to either half. */
class FrameBatch extends fc.Arbitrary<Uint8Array[]> {
  constructor(
    private readonly vocab: Vocab,
    private readonly size: number,
  ) {
    super();
  }
  generate(mrng: fc.Random): fc.Value<Uint8Array[]> {
    const d = new Draw(mrng);
    const w = new Writer();
    const out: Uint8Array[] = [];
    for (let i = 0; i < this.size; i++) out.push(drawFrame(d, this.vocab, w));
    return new fc.Value(out, undefined);
  }
  canShrinkWithoutContext(value: unknown): value is Uint8Array[] {
    return Array.isArray(value);
  }
  shrink(value: Uint8Array[]): fc.Stream<fc.Value<Uint8Array[]>> {
    if (value.length < 2) return fc.Stream.nil();
    const half = value.length >> 1;
    return fc.Stream.of(new fc.Value(value.slice(0, half), undefined), new fc.Value(value.slice(half), undefined));
  }
}

// ---------------------------------------------------------------------------------------------
// Generated rule lists: any valid rule the DSL can say, over a small pool of addresses, ports and
// ids so that frames meet them.

const POOL4 = ['10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24', '10.1.2.3', '192.0.2.0/24', '192.0.2.128/25', '198.51.100.7', '0.0.0.0/0', '203.0.113.0/28'];
const POOL6 = ['fd00::/8', 'fd00:1::/32', 'fd00:1:2:3::/64', 'fd00:1:2:3::7', '2001:db8::/32', '2001:db8:8000::/33', '::/0', 'fd00::/127'];
const PORTS = [0, 22, 53, 80, 443, 1023, 1024, 8080, 65535];

function ruleArb(sets: Record<string, XdpSetSpec>): fc.Arbitrary<XdpRuleSpec> {
  const setNames = (kinds: string[]) => Object.entries(sets).filter(([, s]) => kinds.includes(s.type)).map(([n]) => n);
  // Present one time in `1 + absent`: rules of a few fields each, as people write them.
  const opt = <T,>(a: fc.Arbitrary<T>, absent = 3) => fc.oneof({ weight: absent, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: a });
  const port = fc.oneof(
    fc.constantFrom(...PORTS),
    fc.tuple(fc.constantFrom(...PORTS), fc.constantFrom(...PORTS)).map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as [number, number]),
    ...(setNames(['port']).length ? [fc.constantFrom(...setNames(['port'])).map((set) => ({ set }))] : []),
  );
  const addr = (family: 4 | 6) => {
    const sn = setNames(family === 4 ? ['ipv4-prefix', 'ipv4'] : ['ipv6-prefix', 'ipv6']);
    return fc.oneof(fc.constantFrom(...(family === 4 ? POOL4 : POOL6)), ...(sn.length ? [fc.constantFrom(...sn).map((set) => ({ set }))] : []));
  };
  const macSets = setNames(['mac']);
  const mac = fc.oneof(fc.constantFrom('02:00:00:00:00:01', '02:00:00:00:00:02', '02:00:00:00:00:aa'), ...(macSets.length ? [fc.constantFrom(...macSets).map((set) => ({ set }))] : []));
  const action = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom('pass', 'drop', 'tx') },
    { weight: 1, arbitrary: fc.constantFrom('lo-a', 'lo-b').map((redirect) => ({ redirect })) },
    { weight: 1, arbitrary: fc.constant({ xsk: 'g' }) },
  );
  return fc
    .record({
      family: fc.constantFrom(undefined, 4, 6),
      l4: fc.constantFrom(undefined, 'tcp', 'udp', 'icmp', 'ports', 'other'),
      vlan: opt(fc.constantFrom(0, 10, 20, 4095), 6),
      innerVlan: opt(fc.constantFrom(20, 30), 2),
      ethType: opt(fc.constantFrom('ipv4', 'ipv6', 'arp', 0x88cc), 4),
      srcMac: opt(mac, 8),
      dstMac: opt(mac, 8),
      src4: opt(addr(4)),
      dst4: opt(addr(4)),
      src6: opt(addr(6)),
      dst6: opt(addr(6)),
      dscp: opt(fc.constantFrom(0, 10, 46), 6),
      sport: opt(port),
      dport: opt(port, 2),
      tcpFlags: opt(fc.constantFrom('syn', 'syn,!ack', 'ack', 'fin,syn', 'rst', '!ack,!rst', 'urg,psh,fin', 'ece,cwr'), 2),
      icmpType: opt(fc.constantFrom(0, 3, 8, 11, 128, 129, 135, 1, 2, 4, 136), 1),
      icmpCode: opt(fc.constantFrom(0, 1, 4), 3),
      proto: fc.constantFrom(47, 50, 0, 59),
      action,
      count: fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constant(false) }),
    })
    .map((r) => {
      const m: Record<string, unknown> = {};
      if (r.vlan !== undefined) m.vlan = r.vlan;
      if (r.innerVlan !== undefined && r.vlan !== undefined) m.innerVlan = r.innerVlan;
      if (r.srcMac !== undefined) m.srcMac = r.srcMac;
      if (r.dstMac !== undefined) m.dstMac = r.dstMac;
      if (r.family === undefined && r.ethType !== undefined && r.l4 === undefined) m.ethType = r.ethType;
      if (r.family === 4) {
        if (r.ethType === 'ipv4') m.ethType = 'ipv4';
        if (r.src4 !== undefined) m.src = r.src4;
        if (r.dst4 !== undefined) m.dst = r.dst4;
      } else if (r.family === 6) {
        if (r.ethType === 'ipv6') m.ethType = 'ipv6';
        if (r.src6 !== undefined) m.src = r.src6;
        if (r.dst6 !== undefined) m.dst = r.dst6;
      }
      if (r.l4 !== undefined && m.ethType === undefined && r.dscp !== undefined) m.dscp = r.dscp;
      if (r.l4 === 'tcp' || r.l4 === 'udp') {
        m.proto = r.l4;
        if (r.sport !== undefined) m.sport = r.sport;
        if (r.dport !== undefined) m.dport = r.dport;
        if (r.l4 === 'tcp' && r.tcpFlags !== undefined) m.tcpFlags = r.tcpFlags;
      } else if (r.l4 === 'ports') {
        if (r.sport !== undefined) m.sport = r.sport;
        m.dport = r.dport ?? 443;
      } else if (r.l4 === 'icmp') {
        m.proto = r.family === 6 ? 'icmpv6' : r.family === 4 ? 'icmp' : 'icmp';
        if (r.icmpType !== undefined) m.icmpType = r.icmpType;
        if (r.icmpCode !== undefined) m.icmpCode = r.icmpCode;
      } else if (r.l4 === 'other') m.proto = r.proto;
      else if (r.l4 === undefined && r.tcpFlags !== undefined && r.family !== undefined && r.dscp === undefined) m.tcpFlags = r.tcpFlags;
      return { match: m as XdpMatch, action: r.action as XdpRuleSpec['action'], ...(r.count === false ? { count: false } : {}) };
    });
}

const RANDOM_SETS: Record<string, XdpSetSpec> = {
  nets: { type: 'ipv4-prefix', elements: ['10.1.0.0/16', '10.1.2.0/24', '192.0.2.0/25', '203.0.113.8/29'] },
  nets6: { type: 'ipv6-prefix', elements: ['fd00:1::/32', 'fd00:1:2:3::/64', '2001:db8::/48'] },
  hosts: { type: 'ipv4', elements: ['10.1.2.3', '198.51.100.7'] },
  hosts6: { type: 'ipv6', elements: ['fd00:1:2:3::7', '2001:db8::1'] },
  ports: { type: 'port', elements: [22, 443, 8080] },
  macs: { type: 'mac', elements: ['02:00:00:00:00:aa'] },
};

/** A section of up to `n` generated rules; rules the IR refuses (impossible matches) are left out. */
function randomSection(seed: number, n: number): XdpSectionIR {
  const [specs] = fc.sample(fc.array(ruleArb(RANDOM_SETS), { minLength: n, maxLength: n }), { seed, numRuns: 1 });
  const sets = RANDOM_SETS;
  // Two fields at least: a rule of one broad field early in the list would take every packet.
  const ok = specs!.filter((r) => {
    if (Object.keys(r.match ?? {}).length < 2) return false;
    try {
      lowerXdpSections([{ interface: 'lo', sets, rules: [r] }], 'xdp');
      return true;
    } catch {
      return false;
    }
  });
  const [defaultAction, malformed] = fc.sample(fc.tuple(fc.constantFrom<XdpSectionSpec['default']>('pass', 'drop', 'tx', { redirect: 'lo-a' }), fc.constantFrom('drop' as const, 'pass' as const)), { seed, numRuns: 1 })[0]!;
  return lowerXdpSections([{ interface: 'lo', default: defaultAction, malformed, sets, rules: ok.map((r, i) => ({ ...r, name: `r${i}` })) }], 'xdp')[0]!;
}

/**
 * A section past DISPATCH_MAX_RULES (rules in functions, no protocol switch): an ACL of TCP/UDP
 * port rules with addresses and flags. Fully random rules of every field do not verify at this
 * length (the verifier gives up at a million instructions), so the long list is of this shape.
 */
function longSection(seed: number, n: number): XdpSectionIR {
  const rule = fc
    .record({
      proto: fc.constantFrom('tcp' as const, 'udp' as const),
      dport: fc.oneof(fc.constantFrom(...PORTS), fc.tuple(fc.constantFrom(...PORTS), fc.constantFrom(...PORTS)).map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as [number, number]), fc.constant({ set: 'ports' })),
      src: fc.oneof(fc.constant(undefined), fc.constantFrom(...POOL4), fc.constant({ set: 'nets' })),
      dst: fc.oneof(fc.constant(undefined), fc.constantFrom(...POOL6)),
      flags: fc.oneof(fc.constant(undefined), fc.constantFrom('syn', 'syn,!ack')),
      action: fc.constantFrom<XdpRuleSpec['action']>('pass', 'drop', 'tx', { redirect: 'lo-a' }),
    })
    .map((r): XdpRuleSpec => {
      const m: Record<string, unknown> = { proto: r.proto, dport: r.dport };
      if (r.src !== undefined) m.src = r.src;
      else if (r.dst !== undefined) m.dst = r.dst;
      if (r.proto === 'tcp' && r.flags) m.tcpFlags = r.flags;
      return { match: m as XdpMatch, action: r.action };
    });
  const [rules] = fc.sample(fc.array(rule, { minLength: n, maxLength: n }), { seed, numRuns: 1 });
  return lowerXdpSections([{ interface: 'lo', default: 'drop', sets: RANDOM_SETS, rules: rules! }], 'xdp')[0]!;
}

// ---------------------------------------------------------------------------------------------
// The kernel side.

interface Rig {
  name: string;
  section: ClassifierSectionIR;
  hook: Hook;
  obj: BpfObject;
  model: SectionModel;
}

/** Compiles and loads a section for a hook: sets filled, redirect slots pointing at lo except `empty`. */
function rig(name: string, section: ClassifierSectionIR, hook: Hook, emptySlots: readonly number[] = []): Rig {
  const s = { ...section, interface: 'lo', redirects: section.redirects.map(() => 'lo') };
  let obj: BpfObject;
  if (hook === 'xdp') obj = buildXdpObject({ name, xdp: [{ mode: 'auto', ...s }] }, 0);
  else {
    const gen = generateClassifier({ name, xdp: [] }, s, hook);
    obj = BpfObject.open(compileBpf({ source: gen.source, name: `${name}-${hook}` }).objectPath, { name: `${name}-${hook}` });
    try {
      obj.load();
      for (const set of s.sets) for (const e of set.elements) obj.map(setMapName(set.name)).update(encodeSetKey(set.name, set.kind, e), SET_VALUE);
      for (let i = 0; i < s.redirects.length; i++) obj.map(XDP_MAPS.txPorts).update(Uint8Array.of(i, 0, 0, 0), Uint8Array.of(1, 0, 0, 0));
    } catch (err) {
      obj.close();
      throw err;
    }
  }
  try {
    // An empty slot: no devmap entry at XDP; ifindex 0 in the tc array (array entries cannot be deleted).
    for (const slot of emptySlots) {
      if (hook === 'xdp') obj.map(XDP_MAPS.txPorts).delete(Uint8Array.of(slot, 0, 0, 0));
      else obj.map(XDP_MAPS.txPorts).update(Uint8Array.of(slot, 0, 0, 0), new Uint8Array(4));
    }
  } catch (err) {
    obj.close();
    throw err;
  }
  const model = compileModel(section, { hook, redirectReady: (slot) => !emptySlots.includes(slot) });
  return { name, section, hook, obj, model };
}

interface Counts {
  rules: Counter[];
  stats: Counter[];
}
const readAll = (o: BpfObject): Counts => ({ rules: readCounters(o.map(XDP_MAPS.ruleStats)), stats: readCounters(o.map(XDP_MAPS.xdpStats)) });

const hex = (f: Uint8Array) => Buffer.from(f).toString('hex');

function describe(o: Outcome): string {
  const hit = o.hit.kind === 'rule' ? `rule ${o.hit.rule.index} ${o.hit.rule.name}` : o.hit.kind;
  return `${hit} -> ${o.verdict.name} (${o.verdict.value}); counters ${o.counters.map((c) => `${c.map}[${c.slot}]`).join(' ') || 'none'}${o.parse.status === 'malformed' ? `; malformed: ${o.parse.reason}` : ''}`;
}

/** What one frame moved in the kernel's counters, as `map[slot]` +packets/+bytes. */
function moved(a: Counts, b: Counts): string[] {
  const out: string[] = [];
  const diff = (map: string, x: Counter[], y: Counter[]) =>
    x.forEach((c, i) => {
      const dp = y[i]!.packets - c.packets;
      const db = y[i]!.bytes - c.bytes;
      if (dp || db) out.push(`${map}[${i}] +${dp}/+${db}B`);
    });
  diff(XDP_MAPS.ruleStats, a.rules, b.rules);
  diff(XDP_MAPS.xdpStats, a.stats, b.stats);
  return out;
}

const expectMoved = (o: Outcome) => o.counters.map((c) => `${c.map}[${c.slot}] +1/+${c.bytes}B`);

interface Tally {
  frames: number;
  skipped: number;
  malformed: Map<string, number>;
  fragments: number;
  defaults: number;
  rules: Map<number, number>;
}

/** Runs frames through the kernel and the model; returns a problem, or null when they agree. */
function checkBatch(r: Rig, frames: readonly Uint8Array[], tally: Tally): string | null {
  const prog = r.obj.program(HOOKS[r.hook].progName);
  const before = readAll(r.obj);
  const want: Counts = { rules: before.rules.map((c) => ({ ...c })), stats: before.stats.map((c) => ({ ...c })) };
  const ran: Uint8Array[] = [];
  for (const f of frames) {
    let retval: number;
    try {
      retval = prog.testRun(f).retval;
    } catch (err) {
      // tc test runs refuse some frames the program would see (an IPv4 header cut short): EINVAL.
      if (r.hook !== 'xdp' && err instanceof LoaderError && err.errno === 22) {
        tally.skipped++;
        continue;
      }
      throw err;
    }
    const o = r.model.run(f);
    if (retval !== o.verdict.value) return `${r.name} (${r.hook}): frame ${hex(f)}: kernel returned ${retval}, the model says ${describe(o)}`;
    ran.push(f);
    for (const c of o.counters) {
      const slot = (c.map === XDP_MAPS.ruleStats ? want.rules : want.stats)[c.slot]!;
      slot.packets += 1n;
      slot.bytes += BigInt(c.bytes);
    }
    tally.frames++;
    if (o.parse.status === 'malformed') tally.malformed.set(category(o.parse.reason), (tally.malformed.get(category(o.parse.reason)) ?? 0) + 1);
    if (o.parse.status === 'fragment') tally.fragments++;
    if (o.hit.kind === 'rule') tally.rules.set(o.hit.rule.index, (tally.rules.get(o.hit.rule.index) ?? 0) + 1);
    if (o.hit.kind === 'default') tally.defaults++;
  }
  const after = readAll(r.obj);
  if (moved(want, after).length === 0) return null;
  // The batch's counters disagree: replay it frame by frame to name the frame.
  for (const f of ran) {
    const a = readAll(r.obj);
    prog.testRun(f);
    const got = moved(a, readAll(r.obj));
    const o = r.model.run(f);
    if (got.join(' ') !== expectMoved(o).join(' ')) return `${r.name} (${r.hook}): frame ${hex(f)}: kernel counters moved ${got.join(' ') || 'nothing'}, the model says ${describe(o)}`;
  }
  return `${r.name} (${r.hook}): the batch's counters disagree (${moved(want, after).join(' ')} off) but no single frame does on replay`;
}

/** Malformed reasons without their numbers: which check of the parser failed. */
const category = (reason: string) => reason.replace(/\b\d+\b/g, 'N').replace(/: N bytes needed.*$/, ': cut short');

/** Runs `frames` generated frames through a rig, in batches; returns the tally. Fails on the first disagreement. */
function differential(r: Rig, frames: number, seed: number): Tally {
  const tally: Tally = { frames: 0, skipped: 0, malformed: new Map(), fragments: 0, defaults: 0, rules: new Map() };
  let problem: string | null = null;
  const details = fc.check(
    fc.property(new FrameBatch(vocabOf(r.section), BATCH), (batch) => {
      // Shrinking reruns smaller batches: keep the message of the last one that failed.
      const p = checkBatch(r, batch, tally);
      if (p) problem = p;
      return p === null;
    }),
    { seed, numRuns: Math.ceil(frames / BATCH) },
  );
  if (details.failed) assert.unreachable(`${problem ?? details.errorInstance}\n(seed ${seed}, shrunk to ${details.counterexample?.[0]?.length} frame(s); bpfctl xdp explain POLICY --hex FRAME shows the model's reasoning)`);
  return tally;
}

// ---------------------------------------------------------------------------------------------

const rigs: Rig[] = [];

/** Rules no frame can reach: an earlier rule takes all their packets. */
const SHADOWED: Record<string, readonly string[]> = {
  // fd00::1 is inside rule4's fd00::/127.
  'golden-prefixes6': ['rule5'],
};

function policies(): { name: string; section: XdpSectionIR; emptySlots?: number[] }[] {
  const out: { name: string; section: XdpSectionIR; emptySlots?: number[] }[] = [];
  for (const s of lowerPolicy(firewall).xdp) out.push({ name: 'firewall', section: s });
  for (const [name, spec] of Object.entries(GOLDEN_SECTIONS)) out.push({ name: `golden-${name}`, section: lowerXdpSections([{ ...spec, interface: 'lo' } as XdpSectionSpec], 'xdp')[0]! });
  // Generated rule lists, two with an empty redirect slot, and one long enough for the codegen's
  // rule functions (no protocol switch).
  for (const [i, n] of [8, 24, 48, 64].entries()) out.push({ name: `random-${n}`, section: randomSection(SEED + i, n), ...(i % 2 ? { emptySlots: [0] } : {}) });
  out.push({ name: 'long-300', section: longSection(SEED + 9, 300) });
  return out;
}

test.before(() => {
  before = snapshot();
});

test.after(() => {
  for (const r of rigs) r.obj.close();
});

const withoutXsk = (s: ClassifierSectionIR): ClassifierSectionIR => {
  const fix = (a: XdpActionIR): XdpActionIR => (a.kind === 'xsk' ? { kind: 'pass' } : a);
  return { ...s, xskGroups: [], default: fix(s.default), rules: s.rules.map((r) => ({ ...r, action: fix(r.action) })) };
};

test(`${TOTAL} generated frames: the model and BPF_PROG_TEST_RUN agree on every verdict and counter`, () => {
  const all = policies();
  const per = Math.ceil(TOTAL / all.length / BATCH) * BATCH;
  const t0 = performance.now();
  let frames = 0;
  const lines: string[] = [];
  for (const [i, p] of all.entries()) {
    const r = rig(`model-${p.name}`, p.section, 'xdp', p.emptySlots);
    rigs.push(r);
    const t = differential(r, per, SEED + 100 + i);
    r.obj.close();
    rigs.pop();
    frames += t.frames;
    const hit = p.section.rules.filter((x) => t.rules.has(x.index)).length;
    lines.push(`${p.name}: ${t.frames} frames, ${[...t.malformed.values()].reduce((a, b) => a + b, 0)} malformed, ${t.fragments} fragments, ${t.defaults} default, ${hit}/${p.section.rules.length} rules hit`);
    // The frames must reach the rules and every check of the parser: a generator that missed
    // them would prove nothing. (Held at the full count; a short run only checks agreement.)
    if (per < 50_000) continue;
    if (!p.name.startsWith('random') && !p.name.startsWith('long')) {
      const missed = p.section.rules.filter((x) => !t.rules.has(x.index) && !SHADOWED[p.name]?.includes(x.name)).map((x) => x.name);
      assert.equal(missed, [], `${p.name}: no frame hit ${missed.join(', ')}`);
    } else {
      // Generated lists shadow some of their own rules (an early broad rule takes a later one's packets).
      const floor = p.name.startsWith('long') ? 0.1 : 0.5;
      assert.ok(hit >= p.section.rules.length * floor, `${p.name}: only ${hit} of ${p.section.rules.length} rules hit`);
    }
    assert.ok(t.fragments > 0 && t.defaults > 0, `${p.name}: fragments ${t.fragments}, default ${t.defaults}`);
    // (Frames shorter than the Ethernet header are not among them: the kernel refuses such test runs.)
    const kinds = [...t.malformed.keys()];
    for (const want of ['VLAN tag', 'IPv4 header cut', 'IPv4 header with version', 'IPv4 IHL', 'IPv4 total length', 'IPv4 header with options', 'IPv6 header cut', 'IPv6 header with version', 'IPv6 extension-header chain', 'IPv6 fragment header', 'IPv6 hop-by-hop', 'IPv6 routing', 'IPv6 dest-opts', 'TCP header', 'TCP data offset', 'UDP header', 'ICMP header', 'ICMPv6 header']) {
      assert.ok(kinds.some((k) => k.startsWith(want)), `${p.name}: no malformed frame of kind '${want}' (seen: ${kinds.join('; ')})`);
    }
  }
  const secs = (performance.now() - t0) / 1000;
  console.log(`  ${lines.join('\n  ')}\n  ${frames} frames in ${secs.toFixed(1)} s`);
  assert.ok(frames >= TOTAL, `${frames} frames`);
});

test('at tc too: the same model with tc verdicts agrees with the tc program', () => {
  const sections: [string, ClassifierSectionIR][] = [
    ...Object.entries(TC_GOLDEN_SECTIONS).map(([name, spec]): [string, ClassifierSectionIR] => [`tc-golden-${name}`, lowerTcSections([{ ...spec, interface: 'lo' }], 'tc')[0]!]),
    ['firewall', withoutXsk(lowerPolicy(firewall).xdp[0]!)],
    ['random-40', withoutXsk(randomSection(SEED + 7, 40))],
  ];
  for (const [i, [name, s]] of sections.entries()) {
    const r = rig(`model-${name}`, s, 'tc', name.startsWith('random') && s.redirects.length ? [0] : []);
    rigs.push(r);
    const t = differential(r, Math.min(TOTAL, 40_000), SEED + 200 + i);
    r.obj.close();
    rigs.pop();
    assert.ok(t.skipped < t.frames / 4, `${name}: ${t.skipped} of ${t.frames + t.skipped} frames refused by the tc test run`);
  }
});

test('explain on a loaded policy reads its live sets, and says what its pinned program does', async () => {
  const root = `/sys/fs/bpf/bpfctl-test-${process.pid}-model`;
  const saved = process.env.BPFCTL_BPFFS;
  process.env.BPFCTL_BPFFS = root;
  const net = createNetnsPair('m');
  const NAME = 'xdpmodel';
  try {
    const ir = lowerPolicy({
      name: NAME,
      xdp: [
        {
          interface: net.ifB,
          default: 'pass',
          sets: { blocked: { type: 'ipv4-prefix' }, open: { type: 'port', elements: [7001] } },
          rules: [
            { name: 'blocked', match: { src: { set: 'blocked' } }, action: 'drop' },
            { name: 'open', match: { proto: 'udp', dport: { set: 'open' } }, action: 'tx' },
          ],
        },
      ],
    });
    const dir = policyDir(NAME);
    const d = deployXdp(ir, 0, dir, { netns: net.nsB });
    writeManifest(dir, { manifestVersion: MANIFEST_VERSION, policy: NAME, schemaHash: ir.hash, layoutHash: 'xdp-only', createdAt: new Date().toISOString(), policyFile: null, cgroup: null, pins: { progs: [], maps: [], links: [] }, xdp: [{ interface: d.interface, mode: d.mode, dir: d.dir }], ir } as Manifest);
    const frame = padded(eth({}, ipv4({ src: '203.0.113.9' }, udp({ dport: 7001 }))));
    const explain = async () => {
      const r = await runCli('xdp', 'explain', NAME, '--hex', Buffer.from(frame).toString('hex'), '--json');
      assert.is(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { rule: { name: string } | null; verdict: { value: number } }[])[0]!;
    };
    const prog = BpfProgram.openPinned(join(d.dir, 'prog'));
    try {
      let e = await explain();
      assert.equal([e.rule?.name, e.verdict.value], ['open', prog.testRun(frame).retval]);
      // A set changed live: explain sees the pins, not the IR the manifest keeps.
      const add = await runCli('set', 'add', NAME, 'blocked', '203.0.113.0/24');
      assert.is(add.code, 0, add.stderr);
      e = await explain();
      assert.equal([e.rule?.name, e.verdict.value], ['blocked', prog.testRun(frame).retval]);
      assert.is(e.verdict.value, 1);
    } finally {
      prog.close();
    }
  } finally {
    try {
      undeployXdp(policyDir(NAME));
      unpinAll(root);
    } finally {
      net.destroy();
      rmSync(root, { recursive: true, force: true });
      if (saved === undefined) delete process.env.BPFCTL_BPFFS;
      else process.env.BPFCTL_BPFFS = saved;
    }
  }
});

test('leaves nothing behind', async () => {
  for (const r of rigs.splice(0)) r.obj.close();
  const leaks = await leaksSince(before);
  assert.equal(leaks, [], leaks.join('\n'));
});

test.run();
