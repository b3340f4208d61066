/**
 * What a rule's match means, over the parsed packet: one entry per match field, typed by the
 * DSL's match as the codegen's table (MATCH_CODEGEN) is, so a field the DSL gains fails `tsc`
 * here until the model says what it means. Each field becomes checks a person can read (what the
 * rule wants, what the packet has); the guards the codegen adds across fields (VLAN count, L3
 * family, TCP-or-UDP, L4 header present) come first, so no field check reads a header the packet
 * does not have.
 *
 * The model is written from the IR's meaning, not from the generated C: the differential test
 * (test/kernel/xdp-model.test.ts) holds the two to the same answers.
 */
import type { XdpMatch } from '../dsl/xdp.ts';
import { PROTOS, type XdpAddrIR, type XdpMacIR, type XdpMatchIR, type XdpPortIR, type XdpRuleIR } from '../ir/xdp.ts';
import { ip4Text, ip6Text, macText, type Pkt } from './frame.ts';
import type { ModelSet } from './sets.ts';

export interface Check {
  /** The match field it comes from, or 'guard' for the checks across fields. */
  readonly field: keyof XdpMatch | 'guard';
  /** What the rule requires, e.g. `dport 22`, `src in @blocklist4`, `IPv4`. */
  readonly want: string;
  readonly test: (p: Pkt) => boolean;
  /** The packet's side, e.g. `443`, `10.1.2.3 (in 10.0.0.0/8)`. */
  readonly got: (p: Pkt) => string;
}

export type ModelSets = ReadonlyMap<string, ModelSet>;

type FieldModel<K extends keyof XdpMatch> = (value: NonNullable<XdpMatchIR[K]>, m: XdpMatchIR, sets: ModelSets) => readonly Check[];

const PROTO_NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(PROTOS).map(([k, v]) => [v, k]));
export const protoText = (n: number) => PROTO_NAMES[n] ?? String(n);
const hex4 = (n: number) => `0x${n.toString(16).padStart(4, '0')}`;

function eq<K extends keyof XdpMatch>(field: K, label: string, want: number, read: (p: Pkt) => number, show: (n: number) => string = String): Check {
  return { field, want: `${label} ${show(want)}`, test: (p) => read(p) === want, got: (p) => show(read(p)) };
}

/** A set the section declares but the contents left out is empty (as a fresh map is). */
function setOf(sets: ModelSets, name: string): ModelSet | undefined {
  return sets.get(name);
}

function macCheck(field: 'srcMac' | 'dstMac', v: XdpMacIR, sets: ModelSets): Check {
  const read = (p: Pkt) => (field === 'srcMac' ? p.eth.src : p.eth.dst);
  const label = field === 'srcMac' ? 'src-mac' : 'dst-mac';
  if ('set' in v) {
    const s = setOf(sets, v.set);
    return { field, want: `${label} in @${v.set}`, test: (p) => s?.lookupBytes(read(p)) != null, got: (p) => `${macText(read(p))}${s?.lookupBytes(read(p)) != null ? '' : ' (not in the set)'}` };
  }
  const want = Uint8Array.from(v.mac);
  return {
    field,
    want: `${label} ${macText(want)}`,
    test: (p) => {
      const m = read(p);
      for (let i = 0; i < 6; i++) if (m[i] !== want[i]) return false;
      return true;
    },
    got: (p) => macText(read(p)),
  };
}

function addrCheck(field: 'src' | 'dst', v: XdpAddrIR, m: XdpMatchIR, sets: ModelSets): Check {
  // The family the codegen compares in: the rule's (an address or set fixes it).
  const family = m.l3 === 6 ? 6 : 4;
  const read4 = field === 'src' ? (p: Pkt) => p.saddr4 : (p: Pkt) => p.daddr4;
  const read6 = field === 'src' ? (p: Pkt) => p.ip6?.saddr : (p: Pkt) => p.ip6?.daddr;
  const text = (p: Pkt) => (family === 4 ? ip4Text(read4(p)) : read6(p) ? ip6Text(read6(p)!) : '-');
  if ('set' in v) {
    const s = setOf(sets, v.set);
    const look = family === 4 ? (p: Pkt) => s?.lookup4(read4(p)) ?? null : (p: Pkt) => (read6(p) && s ? s.lookupBytes(read6(p)!) : null);
    return {
      field,
      want: `${field} in @${v.set}`,
      test: (p) => look(p) !== null,
      got: (p) => {
        const hit = look(p);
        return hit === null ? `${text(p)} (not in the set)` : s!.kind.endsWith('prefix') ? `${text(p)} (in ${hit})` : text(p);
      },
    };
  }
  const { bytes, len } = v.prefix;
  const want = `${field} ${v.prefix.text}`;
  if (family === 4) {
    const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    const net = bytes.reduce((a, b) => a * 256 + b, 0);
    return { field, want, test: (p) => ((read4(p) & mask) >>> 0) === net, got: text };
  }
  return {
    field,
    want,
    test: (p) => {
      const a = read6(p);
      if (!a) return false;
      for (let i = 0; i < 16; i++) {
        const bits = Math.max(0, Math.min(8, len - i * 8));
        if (bits === 0) break;
        const mk = (0xff << (8 - bits)) & 0xff;
        if ((a[i]! & mk) !== bytes[i]) return false;
      }
      return true;
    },
    got: text,
  };
}

function portCheck(field: 'sport' | 'dport', v: XdpPortIR, sets: ModelSets): Check {
  const read = field === 'sport' ? (p: Pkt) => p.sport : (p: Pkt) => p.dport;
  if ('set' in v) {
    const s = setOf(sets, v.set);
    return { field, want: `${field} in @${v.set}`, test: (p) => s?.lookupPort(read(p)) != null, got: (p) => `${read(p)}${s?.lookupPort(read(p)) != null ? '' : ' (not in the set)'}` };
  }
  const { lo, hi } = v;
  return { field, want: `${field} ${lo === hi ? lo : `${lo}-${hi}`}`, test: (p) => read(p) >= lo && read(p) <= hi, got: (p) => String(read(p)) };
}

const flagText = (n: number) => {
  const names = ['fin', 'syn', 'rst', 'psh', 'ack', 'urg', 'ece', 'cwr'].filter((_, i) => n & (1 << i));
  return names.length ? names.join(',') : 'none';
};

/**
 * Every match field, one entry each, in the order a frame's headers come (the order the
 * explanation lists them; the result does not depend on it).
 */
export const MATCH_MODEL: { readonly [K in keyof XdpMatch]-?: FieldModel<K> } = {
  vlan: (v) => [eq('vlan', 'vlan', v, (p) => p.vlan_outer)],
  innerVlan: (v) => [eq('innerVlan', 'inner-vlan', v, (p) => p.vlan_inner)],
  ethType: (v) => [eq('ethType', 'ethtype', v, (p) => p.eth_proto, hex4)],
  srcMac: (v, _m, sets) => [macCheck('srcMac', v, sets)],
  dstMac: (v, _m, sets) => [macCheck('dstMac', v, sets)],
  src: (v, m, sets) => [addrCheck('src', v, m, sets)],
  dst: (v, m, sets) => [addrCheck('dst', v, m, sets)],
  dscp: (v) => [eq('dscp', 'dscp', v, (p) => p.dscp)],
  proto: (v) => [eq('proto', 'proto', v, (p) => p.proto, protoText)],
  sport: (v, _m, sets) => [portCheck('sport', v, sets)],
  dport: (v, _m, sets) => [portCheck('dport', v, sets)],
  tcpFlags: (v) => [{ field: 'tcpFlags', want: `flags ${v.text}`, test: (p) => (p.tcp_flags & v.mask) === v.value, got: (p) => flagText(p.tcp_flags) }],
  icmpType: (v) => [eq('icmpType', 'icmp-type', v, (p) => p.icmp_type)],
  icmpCode: (v) => [eq('icmpCode', 'icmp-code', v, (p) => p.icmp_code)],
};
const MATCH_ORDER = Object.keys(MATCH_MODEL) as (keyof XdpMatch)[];

const l3Text = (p: Pkt) => (p.l3 === 4 ? 'IPv4' : p.l3 === 6 ? 'IPv6' : `not IP (ethtype ${hex4(p.eth_proto)})`);

/**
 * The checks the codegen adds across fields (matchGuards in src/codegen/xdp/rules.ts): the VLAN
 * tags an id needs, the family addresses need, TCP or UDP for ports without a protocol, and the
 * L4 header for ports, flags and ICMP fields (a later fragment has none).
 */
export function guardChecks(m: XdpMatchIR): Check[] {
  const out: Check[] = [];
  const guard = (want: string, test: (p: Pkt) => boolean, got: (p: Pkt) => string): void => void out.push({ field: 'guard', want, test, got });
  if (m.innerVlan !== undefined) guard('2 VLAN tags', (p) => p.vlans === 2, (p) => `${p.vlans} tag${p.vlans === 1 ? '' : 's'}`);
  else if (m.vlan !== undefined) guard('a VLAN tag', (p) => p.vlans >= 1, (p) => `${p.vlans} tag${p.vlans === 1 ? '' : 's'}`);
  if (m.l3 === 4 || m.l3 === 6) {
    const l3 = m.l3;
    guard(`IPv${l3}`, (p) => p.l3 === l3, l3Text);
  } else if (m.l3 === 'ip') guard('IP', (p) => p.l3 !== 0, l3Text);
  const ports = m.sport !== undefined || m.dport !== undefined;
  if (ports && m.proto === undefined) guard('TCP or UDP', (p) => p.proto === 6 || p.proto === 17, (p) => protoText(p.proto));
  if (ports || m.tcpFlags || m.icmpType !== undefined || m.icmpCode !== undefined) {
    guard('L4 header', (p) => p.l4 === 1, (p) => (p.l4 ? 'read' : p.frag ? 'none (a later fragment)' : `none (${protoText(p.proto)} is not parsed)`));
  }
  return out;
}

/** A rule ready to run: its checks in order, guards first. */
export interface ModelRule {
  readonly rule: XdpRuleIR;
  readonly checks: readonly Check[];
}

export function compileRule(rule: XdpRuleIR, sets: ModelSets): ModelRule {
  const checks = guardChecks(rule.match);
  for (const k of MATCH_ORDER) {
    const v = rule.match[k];
    if (v === undefined) continue;
    checks.push(...(MATCH_MODEL[k] as FieldModel<typeof k>)(v as never, rule.match, sets));
  }
  return { rule, checks };
}

export function ruleMatches(r: ModelRule, p: Pkt): boolean {
  for (const c of r.checks) if (!c.test(p)) return false;
  return true;
}
