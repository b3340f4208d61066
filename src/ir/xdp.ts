/**
 * Validation and lowering of a policy's classification sections, `xdp` and `tc`, into plain data
 * (the IR codegen, deploy and the CLI share). Both are one rule language checked by the same
 * code; a tc section adds its direction and refuses what tc cannot do (AF_XDP, `tx` at egress).
 * Every error names the offending node with a path such as `xdp[0].rules[3].match.dport`, so a
 * user can find it in a policy of thousands of lines.
 *
 * What the lowering decides (so codegen only translates):
 * - the L3 family each rule needs (from prefixes, ethType, icmp/icmpv6), and rejects rules that
 *   can never match (tcpFlags with proto udp, an IPv4 prefix with ethType ipv6, ...);
 * - names resolved to numbers (ethType, proto, ICMP types, TCP flags);
 * - devmap slots for redirect targets and one xskmap per AF_XDP group;
 * - packet chain names resolved to the chains' ids (src/ir/packet.ts), and the xskmap
 *   `xsk_chains` of a section that steers frames into chains.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { attempt, checkKeys, describe, type Issues, IssueList, isPlainObject, own, type Path, snapshotSpec, stop, stopQuietly } from './issues.ts';
import { type ChainNames, chainNamesOf, IFNAME } from './packet.ts';
import type { TcDirection, TcSectionSpec } from '../dsl/tc.ts';
import type { XdpAction, XdpIcmpTypeName, XdpMatch, XdpRuleSpec, XdpSectionSpec, XdpSetKind, XdpSetSpec, XdpTcpFlag } from '../dsl/xdp.ts';

export type XdpActionIR =
  | { readonly kind: 'pass' | 'drop' | 'tx' }
  | { readonly kind: 'redirect'; readonly ifname: string; readonly slot: number }
  | { readonly kind: 'xsk'; readonly group: string }
  /** Into packet chain `chain` (its id; `name` for people) through AF_XDP group CHAIN_XSK_GROUP. */
  | { readonly kind: 'chain'; readonly chain: number; readonly name: string };

/**
 * The AF_XDP group of every section that steers into packet chains: its xskmap `xsk_chains` is
 * where pktio puts its sockets (one per receive queue, for all chains: the chain id travels in
 * the frame's metadata). A user group of this name is refused.
 */
export const CHAIN_XSK_GROUP = 'chains';

export interface XdpPrefixIR {
  readonly family: 4 | 6;
  /** Canonical text, e.g. `10.0.0.0/8`. */
  readonly text: string;
  /** Network-order address bytes (4 or 16). */
  readonly bytes: readonly number[];
  readonly len: number;
}

export type XdpAddrIR = { readonly prefix: XdpPrefixIR } | { readonly set: string; readonly kind: XdpSetKind };
export type XdpPortIR = { readonly lo: number; readonly hi: number } | { readonly set: string };
export type XdpMacIR = { readonly mac: readonly number[] } | { readonly set: string };

export interface XdpMatchIR {
  /** The rule only matches this L3 family; `ip` means either. Absent: any frame. */
  readonly l3?: 4 | 6 | 'ip';
  readonly ethType?: number;
  readonly vlan?: number;
  readonly innerVlan?: number;
  readonly srcMac?: XdpMacIR;
  readonly dstMac?: XdpMacIR;
  readonly src?: XdpAddrIR;
  readonly dst?: XdpAddrIR;
  /** IP protocol number; ports without a protocol mean "TCP or UDP" (`l4: 'ports'`). */
  readonly proto?: number;
  readonly dscp?: number;
  readonly sport?: XdpPortIR;
  readonly dport?: XdpPortIR;
  /** `(flags & mask) == value` on the TCP flags byte. */
  readonly tcpFlags?: { readonly mask: number; readonly value: number; readonly text: string };
  readonly icmpType?: number;
  readonly icmpCode?: number;
}

export interface XdpRuleIR {
  /** Position in the section; also the rule's slot in the `rule_stats` map. */
  readonly index: number;
  readonly name: string;
  /** One line for people: `ip4 src 10.0.0.0/8 tcp dport 22 -> drop`. */
  readonly summary: string;
  readonly match: XdpMatchIR;
  readonly action: XdpActionIR;
  readonly count: boolean;
}

export interface XdpSetIR {
  readonly name: string;
  readonly kind: XdpSetKind;
  readonly maxEntries: number;
  /** Canonical element text, deduplicated, in policy order. */
  readonly elements: readonly string[];
}

/**
 * What every classification section has, whatever hook runs it (XDP, tc ingress, tc egress): the
 * parser, the rules and their counters, the sets. Codegen and the reference model read only this.
 */
export interface ClassifierSectionIR {
  /** Position in its list (`xdp[i]` or `tc[i]`). */
  readonly index: number;
  readonly interface: string;
  readonly default: XdpActionIR;
  readonly malformed: 'drop' | 'pass';
  readonly sets: readonly XdpSetIR[];
  readonly rules: readonly XdpRuleIR[];
  /** `tx_ports` (a devmap at XDP, an array at tc): slot i holds the ifindex of redirects[i]. */
  readonly redirects: readonly string[];
  /** One xskmap `xsk_<group>` per group, keyed by receive queue (always empty at tc); `chains` when a rule steers into packet chains. */
  readonly xskGroups: readonly string[];
}

export interface XdpSectionIR extends ClassifierSectionIR {
  readonly mode: 'auto' | 'native' | 'generic';
}

/** A `tc` section: the same rules at tcx ingress or egress (no AF_XDP; no `tx` at egress). */
export interface TcSectionIR extends ClassifierSectionIR {
  readonly direction: TcDirection;
}

/**
 * Rules written out one by one; more belong in a set (one map lookup, whatever its size). The
 * verifier walks every rule, so very long lists of many-field rules reach its limits sooner.
 */
export const MAX_INLINE_RULES = 1024;
export const MAX_SET_ENTRIES = 1 << 20;
export const DEFAULT_SET_ENTRIES = 4096;

export const ETH_TYPES: Readonly<Record<string, number>> = { ipv4: 0x0800, ipv6: 0x86dd, arp: 0x0806 };
export const PROTOS: Readonly<Record<string, number>> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58 };
export const TCP_FLAGS: Readonly<Record<XdpTcpFlag, number>> = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10, urg: 0x20, ece: 0x40, cwr: 0x80 };
const ICMP4_TYPES: Partial<Record<XdpIcmpTypeName, number>> = { 'echo-reply': 0, 'dest-unreachable': 3, 'echo-request': 8, 'time-exceeded': 11 };
const ICMP6_TYPES: Partial<Record<XdpIcmpTypeName, number>> = {
  'dest-unreachable': 1,
  'packet-too-big': 2,
  'time-exceeded': 3,
  'echo-request': 128,
  'echo-reply': 129,
  'router-solicitation': 133,
  'router-advertisement': 134,
  'neighbor-solicitation': 135,
  'neighbor-advertisement': 136,
};

const SET_KINDS: readonly XdpSetKind[] = ['ipv4-prefix', 'ipv6-prefix', 'ipv4', 'ipv6', 'port', 'mac'];
const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/;
const RULE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

// ---------------------------------------------------------------------------------------------
// Addresses, prefixes, MACs, ports: parsers shared with deploy and the `set` command.

/** Network-order bytes of a dotted IPv4 address, or null. */
export function parseIpv4(text: string): number[] | null {
  if (!isIPv4(text)) return null;
  return text.split('.').map(Number);
}

/** Network-order bytes (16) of an IPv6 address, or null. */
export function parseIpv6(text: string): number[] | null {
  if (!isIPv6(text) || text.includes('%')) return null;
  let s = text;
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    const v4 = parseIpv4(s.slice(lastColon + 1));
    if (!v4) return null;
    tail = v4;
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const [head, rest] = s.includes('::') ? s.split('::') : [s, undefined];
  const words = (part: string | undefined) => (part ? part.split(':').map((w) => Number.parseInt(w, 16)) : []);
  const h = words(head);
  const r = words(rest);
  const groups = rest === undefined ? h : [...h, ...new Array(8 - h.length - r.length).fill(0), ...r];
  if (groups.length !== 8) return null;
  const bytes = groups.flatMap((g) => [g >> 8, g & 0xff]);
  if (tail.length) bytes.splice(12, 4, ...tail);
  return bytes;
}

export function formatIpv6(bytes: readonly number[]): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

function formatAddr(family: 4 | 6, bytes: readonly number[]): string {
  return family === 4 ? bytes.join('.') : formatIpv6(bytes);
}

/**
 * An address or prefix (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.1` = /32). Returns an error
 * message instead of throwing so callers can attach their path.
 */
export function parsePrefix(text: string, want?: 4 | 6): XdpPrefixIR | string {
  if (typeof text !== 'string') return `expected an address or prefix string, got ${JSON.stringify(text)}`;
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const v4 = parseIpv4(addrText);
  const v6 = v4 ? null : parseIpv6(addrText);
  const bytes = v4 ?? v6;
  if (!bytes) return `bad prefix '${text}': not an IPv4 or IPv6 address`;
  const family: 4 | 6 = v4 ? 4 : 6;
  const max = family === 4 ? 32 : 128;
  let len = max;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) return `bad prefix '${text}': length must be 0..${max}`;
    len = Number(lenText);
  }
  if (want && want !== family) return `bad prefix '${text}': expected an IPv${want} ${slash < 0 ? 'address' : 'prefix'}`;
  const masked = bytes.map((b, i) => {
    const bits = Math.max(0, Math.min(8, len - i * 8));
    return b & ((0xff << (8 - bits)) & 0xff);
  });
  if (masked.some((b, i) => b !== bytes[i])) {
    return `bad prefix '${text}': host bits are set (did you mean ${formatAddr(family, masked)}/${len}?)`;
  }
  return { family, text: `${formatAddr(family, bytes)}/${len}`, bytes, len };
}

export function parseMac(text: string): number[] | null {
  if (typeof text !== 'string' || !/^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$/i.test(text)) return null;
  return text.split(/[:-]/).map((h) => Number.parseInt(h, 16));
}

export function formatMac(bytes: readonly number[]): string {
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

function isPort(n: unknown): n is number {
  return Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 65535;
}

/**
 * Validates one set element for a set of `kind`; returns its canonical text or an error message.
 * Canonical text is what `bpfctl set ls` prints and what deploy encodes into a map key.
 */
export function canonicalSetElement(kind: XdpSetKind, element: unknown): { text: string } | { error: string } {
  switch (kind) {
    case 'ipv4-prefix':
    case 'ipv6-prefix':
    case 'ipv4':
    case 'ipv6': {
      const family = kind.startsWith('ipv4') ? 4 : 6;
      const exact = !kind.endsWith('prefix');
      if (typeof element !== 'string') return { error: `expected an IPv${family} ${exact ? 'address' : 'prefix'} string, got ${JSON.stringify(element)}` };
      if (exact && element.includes('/')) return { error: `'${element}' is a prefix; a ${kind} set holds single addresses (use type '${kind}-prefix')` };
      const p = parsePrefix(element, family);
      if (typeof p === 'string') return { error: p };
      return { text: exact ? p.text.slice(0, p.text.indexOf('/')) : p.text };
    }
    case 'port': {
      const n = typeof element === 'string' && /^\d+$/.test(element) ? Number(element) : element;
      if (!isPort(n)) return { error: `bad port ${JSON.stringify(element)}: must be an integer 0..65535` };
      return { text: String(n) };
    }
    case 'mac': {
      const m = typeof element === 'string' ? parseMac(element) : null;
      if (!m) return { error: `bad MAC address ${JSON.stringify(element)} (want 'aa:bb:cc:dd:ee:ff')` };
      return { text: formatMac(m) };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Lowering.

/** Stops the check of the node at `path` (attempt() records it and goes on with its siblings). */
function fail(path: Path, message: string): never {
  return stop(path, message);
}

/** An XDP node's unknown keys, each reported; the node itself goes on being checked. */
function checkFields(obj: Record<string, unknown>, allowed: readonly string[], path: Path, issues: Issues): void {
  checkKeys(obj, allowed, path, issues, 'field');
}

function lowerSet(name: string, spec: unknown, path: Path, issues: Issues): XdpSetIR {
  if (!IDENT.test(name)) fail(path, `bad set name '${name}': letters, digits and '_', not starting with a digit, at most 32`);
  if (!isPlainObject(spec)) fail(path, 'a set is { type, elements?, maxEntries? }');
  checkFields(spec, ['type', 'elements', 'maxEntries'], path, issues);
  const s = spec as unknown as XdpSetSpec;
  if (!SET_KINDS.includes(s.type)) fail([...path, 'type'], `unknown set type ${JSON.stringify(s.type)} (expected one of: ${SET_KINDS.join(', ')})`);
  const maxEntries = s.maxEntries ?? DEFAULT_SET_ENTRIES;
  if (!Number.isInteger(maxEntries) || maxEntries < 1 || maxEntries > MAX_SET_ENTRIES) fail([...path, 'maxEntries'], `must be an integer 1..${MAX_SET_ENTRIES}`);
  if (s.elements !== undefined && !Array.isArray(s.elements)) fail([...path, 'elements'], 'must be an array');
  const seen = new Set<string>();
  let bad = false;
  const elements: readonly unknown[] = s.elements ?? [];
  for (let i = 0; i < elements.length; i++) {
    const c = canonicalSetElement(s.type, elements[i]);
    if ('error' in c) {
      issues.add([...path, 'elements', i], c.error);
      bad = true;
    } else seen.add(c.text);
  }
  if (seen.size > maxEntries) fail([...path, 'elements'], `${seen.size} elements do not fit maxEntries ${maxEntries}`);
  if (bad) stopQuietly(path);
  return { name, kind: s.type, maxEntries, elements: [...seen] };
}

/** The targets a section's actions collect: devmap slots, AF_XDP groups, and the chains they may name. */
interface ActionTargets {
  readonly redirects: string[];
  readonly xskGroups: string[];
  /** The policy's packet chains; undefined when lowering sections without a policy around them. */
  readonly chains: ChainNames | undefined;
}

function lowerAction(a: unknown, path: Path, targets: ActionTargets, issues: Issues): XdpActionIR {
  const { redirects, xskGroups } = targets;
  if (a === 'pass' || a === 'drop' || a === 'tx') return { kind: a };
  if (isPlainObject(a) && 'redirect' in a) {
    checkFields(a, ['redirect'], path, issues);
    const ifname = a.redirect;
    if (typeof ifname !== 'string' || !IFNAME.test(ifname)) fail([...path, 'redirect'], `bad interface name ${JSON.stringify(ifname)}`);
    if (!redirects.includes(ifname)) redirects.push(ifname);
    return { kind: 'redirect', ifname, slot: redirects.indexOf(ifname) };
  }
  if (isPlainObject(a) && 'xsk' in a) {
    checkFields(a, ['xsk'], path, issues);
    const group = a.xsk;
    if (typeof group !== 'string' || !IDENT.test(group)) fail([...path, 'xsk'], `bad AF_XDP group name ${JSON.stringify(group)}: letters, digits and '_'`);
    if (group === CHAIN_XSK_GROUP) fail([...path, 'xsk'], `AF_XDP group '${CHAIN_XSK_GROUP}' is reserved: its xskmap xsk_${CHAIN_XSK_GROUP} feeds the packet chains (toChain); pick another name`);
    if (!xskGroups.includes(group)) xskGroups.push(group);
    return { kind: 'xsk', group };
  }
  if (isPlainObject(a) && 'chain' in a) {
    checkFields(a, ['chain'], path, issues);
    const name = a.chain;
    if (typeof name !== 'string') fail([...path, 'chain'], `a packet chain's name, got ${describe(name)}`);
    const id = targets.chains?.ids.get(name);
    if (id === undefined) {
      // A chain that did not validate (or packetChains itself) has its own report.
      if (targets.chains?.broken.has(name) || targets.chains?.unknown) stopQuietly(path);
      const known = targets.chains?.declared ?? [];
      fail([...path, 'chain'], `unknown packet chain ${JSON.stringify(name)} (${known.length ? `packetChains: ${known.join(', ')}` : 'the policy declares no packetChains'})`);
    }
    if (!xskGroups.includes(CHAIN_XSK_GROUP)) xskGroups.push(CHAIN_XSK_GROUP);
    return { kind: 'chain', chain: id, name };
  }
  return fail(path, `unknown action ${JSON.stringify(a)} (expected 'pass', 'drop', 'tx', { redirect: ifname }, { xsk: group } or { chain: name })`);
}

function intIn(v: unknown, lo: number, hi: number, path: Path, what: string): number {
  if (!Number.isInteger(v) || (v as number) < lo || (v as number) > hi) fail(path, `${what} must be an integer ${lo}..${hi}, got ${JSON.stringify(v)}`);
  return v as number;
}

/** Tracks what a match has pinned down so far, to reject combinations no packet can satisfy. */
interface Constraints {
  l3?: 4 | 6 | 'ip' | 'other';
  l3Why?: string;
  proto?: number;
  protoWhy?: string;
}

const familyName = (f: 4 | 6 | 'ip' | 'other') => (f === 'other' ? 'non-IP' : f === 'ip' ? 'IP' : `IPv${f}`);

function needL3(c: Constraints, want: 4 | 6 | 'ip', why: string, path: Path): void {
  const have = c.l3;
  if (have === want || (want === 'ip' && (have === 4 || have === 6))) return;
  if (have === undefined || (have === 'ip' && want !== 'ip')) {
    c.l3 = want;
    c.l3Why = why;
    return;
  }
  fail(path, `impossible match: ${why} needs ${familyName(want)} but ${c.l3Why} only matches ${familyName(have)} packets`);
}

function needProto(c: Constraints, want: number[], why: string, path: Path): void {
  if (c.proto === undefined) return;
  if (!want.includes(c.proto)) {
    const names = want.map((p) => Object.keys(PROTOS).find((k) => PROTOS[k] === p) ?? String(p)).join(' or ');
    fail(path, `impossible match: ${why} needs proto ${names} but ${c.protoWhy}`);
  }
}

/** The sets of a section: the good ones by name, and the names of those that did not validate. */
interface SectionSets {
  readonly good: Map<string, XdpSetIR>;
  readonly broken: Set<string>;
}

function lowerAddr(v: unknown, path: Path, sets: SectionSets, c: Constraints, field: string, issues: Issues): XdpAddrIR {
  if (isPlainObject(v)) {
    const s = setRef(v, path, sets, ['ipv4-prefix', 'ipv6-prefix', 'ipv4', 'ipv6'], issues);
    needL3(c, s.kind.startsWith('ipv4') ? 4 : 6, `${field} set '${s.name}' (${s.kind})`, path);
    return { set: s.name, kind: s.kind };
  }
  const p = parsePrefix(v as string);
  if (typeof p === 'string') fail(path, p);
  needL3(c, p.family, `${field} ${p.text}`, path);
  return { prefix: p };
}

function setRef(v: Record<string, unknown>, path: Path, sets: SectionSets, kinds: readonly XdpSetKind[], issues: Issues): XdpSetIR {
  checkFields(v, ['set'], path, issues);
  const name = v.set;
  const s = typeof name === 'string' ? sets.good.get(name) : undefined;
  if (!s) {
    // A set that did not validate has its own report; naming it here would only repeat that.
    if (typeof name === 'string' && sets.broken.has(name)) stopQuietly(path);
    const known = [...sets.good.keys(), ...sets.broken];
    fail([...path, 'set'], `unknown set ${JSON.stringify(name)}${known.length ? ` (this section has: ${known.join(', ')})` : ' (this section declares no sets)'}`);
  }
  if (!kinds.includes(s.kind)) fail([...path, 'set'], `set '${s.name}' holds ${s.kind} elements; this field needs a ${kinds.join(' or ')} set`);
  return s;
}

function lowerPort(v: unknown, path: Path, sets: SectionSets, issues: Issues): XdpPortIR {
  if (isPlainObject(v)) return { set: setRef(v, path, sets, ['port'], issues).name };
  let lo: unknown;
  let hi: unknown;
  if (typeof v === 'number') lo = hi = v;
  else if (Array.isArray(v) && v.length === 2) [lo, hi] = v;
  else if (typeof v === 'string' && /^\d+(-\d+)?$/.test(v)) [lo, hi] = v.includes('-') ? v.split('-').map(Number) : [Number(v), Number(v)];
  else fail(path, `expected a port, [lo, hi], 'lo-hi' or { set }, got ${JSON.stringify(v)}`);
  if (!isPort(lo) || !isPort(hi)) fail(path, `ports must be integers 0..65535, got ${JSON.stringify(v)}`);
  if (lo > hi) fail(path, `port range reversed: ${lo} > ${hi} (write [${hi}, ${lo}])`);
  return { lo, hi };
}

function lowerMac(v: unknown, path: Path, sets: SectionSets, issues: Issues): XdpMacIR {
  if (isPlainObject(v)) return { set: setRef(v, path, sets, ['mac'], issues).name };
  const m = parseMac(v as string);
  if (!m) fail(path, `bad MAC address ${JSON.stringify(v)} (want 'aa:bb:cc:dd:ee:ff')`);
  return { mac: m };
}

function lowerTcpFlags(v: unknown, path: Path): { mask: number; value: number; text: string } {
  const want: [XdpTcpFlag, boolean][] = [];
  if (typeof v === 'string') {
    for (const raw of v.split(/[\s,|+]+/).filter(Boolean)) {
      const neg = raw.startsWith('!');
      const name = raw.slice(neg ? 1 : 0).toLowerCase() as XdpTcpFlag;
      if (own(TCP_FLAGS, name) === undefined) fail(path, `unknown TCP flag '${raw}' (flags: ${Object.keys(TCP_FLAGS).join(', ')}; prefix '!' for clear)`);
      want.push([name, !neg]);
    }
  } else if (isPlainObject(v)) {
    for (const [k, on] of Object.entries(v)) {
      if (own(TCP_FLAGS, k) === undefined) fail([...path, k], `unknown TCP flag '${k}' (flags: ${Object.keys(TCP_FLAGS).join(', ')})`);
      if (typeof on !== 'boolean') fail([...path, k], 'true (set) or false (clear)');
      want.push([k as XdpTcpFlag, on]);
    }
  } else fail(path, `expected { syn: true, ack: false } or 'syn,!ack', got ${JSON.stringify(v)}`);
  if (!want.length) fail(path, 'names no flag');
  let mask = 0;
  let value = 0;
  for (const [f, on] of want) {
    const bit = TCP_FLAGS[f];
    if (mask & bit && Boolean(value & bit) !== on) fail(path, `impossible match: flag '${f}' required both set and clear`);
    mask |= bit;
    if (on) value |= bit;
  }
  const text = (Object.keys(TCP_FLAGS) as XdpTcpFlag[])
    .filter((f) => mask & TCP_FLAGS[f])
    .map((f) => (value & TCP_FLAGS[f] ? f : `!${f}`))
    .join(',');
  return { mask, value, text };
}

/** Every field of the DSL's match, once: a field added to XdpMatch and not here fails tsc. */
const MATCH_FIELDS: { readonly [K in keyof XdpMatch]-?: true } = {
  ethType: true,
  vlan: true,
  innerVlan: true,
  srcMac: true,
  dstMac: true,
  src: true,
  dst: true,
  proto: true,
  dscp: true,
  sport: true,
  dport: true,
  tcpFlags: true,
  icmpType: true,
  icmpCode: true,
};
const MATCH_KEYS = Object.keys(MATCH_FIELDS);
/** The IR's match has the DSL's fields plus `l3` (derived): a field on one side only fails tsc here. */
type SameKeys<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _matchKeysAgree: SameKeys<Exclude<keyof XdpMatchIR, 'l3'>, keyof XdpMatch> = true;
void _matchKeysAgree;

/**
 * A rule's match. Each field is its own node: a bad field is reported and the others are still
 * checked. The fields that pin the family or protocol come first, so the checks after them see
 * what they allow; a field whose own value is bad constrains nothing.
 */
function lowerMatch(m: unknown, path: Path, sets: SectionSets, issues: Issues): XdpMatchIR {
  if (m === undefined) return {};
  if (!isPlainObject(m)) fail(path, 'a match is an object of fields that must all hold');
  checkFields(m, MATCH_KEYS, path, issues);
  const spec = m as XdpMatch;
  const c: Constraints = {};
  const out: { -readonly [K in keyof XdpMatchIR]: XdpMatchIR[K] } = {};
  let bad = false;
  const field = (check: () => void): void => {
    const ok = attempt(issues, () => {
      check();
      return true;
    });
    if (ok === undefined) bad = true;
  };
  const at = (k: string): Path => [...path, k];

  if (spec.ethType !== undefined) {
    field(() => {
      const t = typeof spec.ethType === 'string' ? own(ETH_TYPES, spec.ethType) : spec.ethType;
      if (t === undefined) fail(at('ethType'), `unknown ethType ${JSON.stringify(spec.ethType)} (names: ${Object.keys(ETH_TYPES).join(', ')}, or a number)`);
      out.ethType = intIn(t, 0x0600, 0xffff, at('ethType'), 'an EtherType');
      c.l3 = t === 0x0800 ? 4 : t === 0x86dd ? 6 : 'other';
      c.l3Why = `ethType 0x${t.toString(16).padStart(4, '0')}`;
    });
  }
  if (spec.vlan !== undefined) {
    field(() => {
      out.vlan = intIn(spec.vlan, 0, 4095, at('vlan'), 'a VLAN id');
    });
  }
  if (spec.innerVlan !== undefined) {
    field(() => {
      out.innerVlan = intIn(spec.innerVlan, 0, 4095, at('innerVlan'), 'a VLAN id');
    });
  }
  if (spec.srcMac !== undefined) {
    field(() => {
      out.srcMac = lowerMac(spec.srcMac, at('srcMac'), sets, issues);
    });
  }
  if (spec.dstMac !== undefined) {
    field(() => {
      out.dstMac = lowerMac(spec.dstMac, at('dstMac'), sets, issues);
    });
  }
  if (spec.src !== undefined) {
    field(() => {
      out.src = lowerAddr(spec.src, at('src'), sets, c, 'src', issues);
    });
  }
  if (spec.dst !== undefined) {
    field(() => {
      out.dst = lowerAddr(spec.dst, at('dst'), sets, c, 'dst', issues);
    });
  }
  if (spec.dscp !== undefined) {
    field(() => {
      out.dscp = intIn(spec.dscp, 0, 63, at('dscp'), 'a DSCP');
      needL3(c, 'ip', 'dscp', at('dscp'));
    });
  }
  let protoBad = false;
  if (spec.proto !== undefined) {
    field(() => {
      protoBad = true;
      const p = typeof spec.proto === 'string' ? own(PROTOS, spec.proto) : spec.proto;
      if (p === undefined) fail(at('proto'), `unknown proto ${JSON.stringify(spec.proto)} (names: ${Object.keys(PROTOS).join(', ')}, or a number)`);
      out.proto = intIn(p, 0, 255, at('proto'), 'an IP protocol');
      protoBad = false;
      needL3(c, p === 1 ? 4 : p === 58 ? 6 : 'ip', `proto ${spec.proto}`, at('proto'));
      c.proto = p;
      c.protoWhy = `proto is ${spec.proto}`;
    });
  }
  // What follows depends on the protocol: with a bad one, only the field's own value is checked.
  for (const f of ['sport', 'dport'] as const) {
    if (spec[f] === undefined) continue;
    field(() => {
      needProto(c, [6, 17], f, at(f));
      needL3(c, 'ip', f, at(f));
      out[f] = lowerPort(spec[f], at(f), sets, issues);
    });
  }
  if (spec.tcpFlags !== undefined) {
    field(() => {
      needProto(c, [6], 'tcpFlags', at('tcpFlags'));
      needL3(c, 'ip', 'tcpFlags', at('tcpFlags'));
      out.tcpFlags = lowerTcpFlags(spec.tcpFlags, at('tcpFlags'));
      if (c.proto === undefined && !protoBad) {
        c.proto = 6;
        c.protoWhy = 'tcpFlags implies tcp';
        out.proto = 6;
      }
    });
  }
  if ((spec.icmpType !== undefined || spec.icmpCode !== undefined) && !protoBad) {
    field(() => {
      const where = at(spec.icmpType !== undefined ? 'icmpType' : 'icmpCode');
      needProto(c, [1, 58], 'an ICMP match', where);
      if (spec.sport !== undefined || spec.dport !== undefined) fail(where, 'impossible match: ICMP has no ports (sport/dport)');
      if (c.proto === undefined) {
        // The family already known picks ICMP or ICMPv6; otherwise the type names are ambiguous.
        if (c.l3 === 4 || c.l3 === 6) out.proto = c.l3 === 4 ? 1 : 58;
        else fail(where, "needs proto 'icmp' or 'icmpv6' (or an address that says the family)");
        c.proto = out.proto;
        needL3(c, c.proto === 1 ? 4 : 6, 'icmp', where);
      }
      if (spec.icmpType !== undefined) {
        field(() => {
          if (typeof spec.icmpType === 'string') {
            const table = c.proto === 1 ? ICMP4_TYPES : ICMP6_TYPES;
            const t = own(table, spec.icmpType);
            if (t === undefined) fail(at('icmpType'), `unknown ${c.proto === 1 ? 'ICMP' : 'ICMPv6'} type '${spec.icmpType}' (names: ${Object.keys(table).join(', ')})`);
            out.icmpType = t;
          } else out.icmpType = intIn(spec.icmpType, 0, 255, at('icmpType'), 'an ICMP type');
        });
      }
      if (spec.icmpCode !== undefined) {
        field(() => {
          out.icmpCode = intIn(spec.icmpCode, 0, 255, at('icmpCode'), 'an ICMP code');
        });
      }
    });
  }
  if (bad || protoBad) stopQuietly(path);
  if (c.l3 !== undefined && c.l3 !== 'other') out.l3 = c.l3;
  return out;
}

function describePort(p: XdpPortIR): string {
  if ('set' in p) return `@${p.set}`;
  return p.lo === p.hi ? String(p.lo) : `${p.lo}-${p.hi}`;
}

function describeAddr(a: XdpAddrIR): string {
  return 'set' in a ? `@${a.set}` : a.prefix.text;
}

export function describeAction(a: XdpActionIR): string {
  if (a.kind === 'redirect') return `redirect ${a.ifname}`;
  if (a.kind === 'xsk') return `xsk ${a.group}`;
  if (a.kind === 'chain') return `chain ${a.name} (AF_XDP, xsk_${CHAIN_XSK_GROUP})`;
  return a.kind;
}

/** One line for people, e.g. `ip4 src 10.0.0.0/8 tcp dport 22 flags syn,!ack`. */
export function describeMatch(m: XdpMatchIR): string {
  const parts: string[] = [];
  if (m.ethType !== undefined && m.ethType !== 0x0800 && m.ethType !== 0x86dd) parts.push(`ethtype 0x${m.ethType.toString(16).padStart(4, '0')}`);
  if (m.vlan !== undefined) parts.push(`vlan ${m.vlan}`);
  if (m.innerVlan !== undefined) parts.push(`inner-vlan ${m.innerVlan}`);
  if (m.srcMac) parts.push(`src-mac ${'set' in m.srcMac ? `@${m.srcMac.set}` : formatMac(m.srcMac.mac)}`);
  if (m.dstMac) parts.push(`dst-mac ${'set' in m.dstMac ? `@${m.dstMac.set}` : formatMac(m.dstMac.mac)}`);
  if (m.l3 !== undefined) parts.push(m.l3 === 'ip' ? 'ip' : `ip${m.l3}`);
  if (m.src) parts.push(`src ${describeAddr(m.src)}`);
  if (m.dst) parts.push(`dst ${describeAddr(m.dst)}`);
  if (m.dscp !== undefined) parts.push(`dscp ${m.dscp}`);
  if (m.proto !== undefined) parts.push(Object.keys(PROTOS).find((k) => PROTOS[k] === m.proto) ?? `proto ${m.proto}`);
  else if (m.sport || m.dport) parts.push('tcp|udp');
  if (m.sport) parts.push(`sport ${describePort(m.sport)}`);
  if (m.dport) parts.push(`dport ${describePort(m.dport)}`);
  if (m.tcpFlags) parts.push(`flags ${m.tcpFlags.text}`);
  if (m.icmpType !== undefined) parts.push(`type ${m.icmpType}`);
  if (m.icmpCode !== undefined) parts.push(`code ${m.icmpCode}`);
  return parts.length ? parts.join(' ') : 'any';
}

/** Where a section runs, as far as validation cares: what its rules may do differs by hook. */
type SectionHook = { readonly kind: 'xdp' } | { readonly kind: 'tc'; readonly direction: TcDirection | undefined };

/** Why `hook` cannot carry out action `a`, or null when it can. */
function cannotDo(hook: SectionHook, a: XdpActionIR): string | null {
  if (hook.kind !== 'tc') return null;
  if (a.kind === 'xsk') return `a tc section cannot hand frames to AF_XDP sockets (xsk '${a.group}'): they take frames at XDP only, so put this rule in an xdp section`;
  if (a.kind === 'tx' && hook.direction === 'egress') return "'tx' bounces a received frame back out of its interface, and at egress the frame is already leaving: use 'pass', 'drop' or { redirect: ifname }";
  return null;
}

/** An action, checked against what the hook can do. */
function lowerHookAction(a: unknown, path: Path, hook: SectionHook, targets: ActionTargets, issues: Issues): XdpActionIR {
  // Said before the chain's name is looked up: at tc no chain name could be right.
  if (hook.kind === 'tc' && isPlainObject(a) && 'chain' in a) {
    fail(path, `a tc section cannot steer frames into a packet chain (chain ${describe(a.chain)}): chains take frames from AF_XDP sockets, at XDP only, so put this rule in an xdp section`);
  }
  const action = lowerAction(a, path, targets, issues);
  const why = cannotDo(hook, action);
  if (why) fail(path, why);
  return action;
}

function lowerRule(r: unknown, index: number, path: Path, hook: SectionHook, sets: SectionSets, targets: ActionTargets, issues: Issues): XdpRuleIR {
  if (!isPlainObject(r)) fail(path, 'a rule is { name?, match?, action, count? }');
  checkFields(r, ['name', 'match', 'action', 'count'], path, issues);
  const spec = r as unknown as XdpRuleSpec;
  const name = spec.name ?? `rule${index}`;
  const before = countOf(issues);
  if (typeof name !== 'string' || !RULE_NAME.test(name)) issues.add([...path, 'name'], `bad rule name ${JSON.stringify(name)}: letters, digits, '-', '_', '.', at most 64`);
  if (spec.count !== undefined && typeof spec.count !== 'boolean') issues.add([...path, 'count'], 'must be true or false');
  if (spec.action === undefined) issues.add([...path, 'action'], "missing (e.g. 'drop')");
  const match = attempt(issues, () => lowerMatch(spec.match, [...path, 'match'], sets, issues));
  const action = spec.action === undefined ? undefined : attempt(issues, () => lowerHookAction(spec.action as XdpAction, [...path, 'action'], hook, targets, issues));
  if (match === undefined || action === undefined || countOf(issues) !== before) stopQuietly(path);
  return { index, name: name as string, summary: `${describeMatch(match)} -> ${describeAction(action)}`, match, action, count: spec.count ?? true };
}

const XDP_SECTION_KEYS = ['interface', 'mode', 'default', 'malformed', 'sets', 'rules'];
const TC_SECTION_KEYS = ['interface', 'direction', 'default', 'malformed', 'sets', 'rules'];
const TC_DIRECTIONS: readonly TcDirection[] = ['ingress', 'egress'];

function lowerSection(spec: unknown, index: number, path: Path, issues: Issues, hook: 'xdp', chains?: ChainNames): XdpSectionIR;
function lowerSection(spec: unknown, index: number, path: Path, issues: Issues, hook: 'tc'): TcSectionIR;
function lowerSection(spec: unknown, index: number, path: Path, issues: Issues, hook: 'xdp' | 'tc', chains?: ChainNames): XdpSectionIR | TcSectionIR {
  const keys = hook === 'xdp' ? XDP_SECTION_KEYS : TC_SECTION_KEYS;
  if (!isPlainObject(spec)) fail(path, `${hook === 'xdp' ? 'an xdp' : 'a tc'} section is { ${keys.map((k) => (k === 'interface' || (hook === 'tc' && k === 'direction') ? k : `${k}?`)).join(', ')} }`);
  checkFields(spec, keys, path, issues);
  const s = spec as unknown as XdpSectionSpec & Partial<Pick<TcSectionSpec, 'direction'>>;
  const before = countOf(issues);
  const at = (k: string): Path => [...path, k];
  if (typeof s.interface !== 'string' || !IFNAME.test(s.interface)) issues.add(at('interface'), `bad interface name ${JSON.stringify(s.interface)} (1..15 characters, no '/', ':' or spaces)`);
  const mode = s.mode ?? 'auto';
  if (hook === 'xdp' && !['auto', 'native', 'generic'].includes(mode)) issues.add(at('mode'), `must be 'auto', 'native' or 'generic', got ${JSON.stringify(mode)}`);
  let direction: TcDirection | undefined;
  if (hook === 'tc') {
    if (s.direction === undefined) issues.add(at('direction'), "missing: 'ingress' (frames the interface receives) or 'egress' (frames it sends)");
    else if (!TC_DIRECTIONS.includes(s.direction)) issues.add(at('direction'), `must be 'ingress' or 'egress', got ${describe(s.direction)}`);
    else direction = s.direction;
  }
  const where: SectionHook = hook === 'xdp' ? { kind: 'xdp' } : { kind: 'tc', direction };
  const malformed = s.malformed ?? 'drop';
  if (malformed !== 'drop' && malformed !== 'pass') issues.add(at('malformed'), `must be 'drop' or 'pass', got ${JSON.stringify(malformed)}`);
  const sets: SectionSets = { good: new Map(), broken: new Set() };
  if (s.sets !== undefined && !isPlainObject(s.sets)) issues.add(at('sets'), 'must be an object of named sets');
  else {
    for (const [name, set] of Object.entries(s.sets ?? {})) {
      const lowered = attempt(issues, () => lowerSet(name, set, [...path, 'sets', name], issues));
      if (lowered) sets.good.set(name, lowered);
      else sets.broken.add(name);
    }
  }
  let rules: readonly unknown[] = [];
  if (s.rules !== undefined && !Array.isArray(s.rules)) issues.add(at('rules'), 'must be an array of rules');
  else if ((s.rules?.length ?? 0) > MAX_INLINE_RULES) issues.add(at('rules'), `${s.rules!.length} rules; at most ${MAX_INLINE_RULES} are written out one by one (put long lists in a set)`);
  else rules = s.rules ?? [];
  const redirects: string[] = [];
  const xskGroups: string[] = [];
  const targets: ActionTargets = { redirects, xskGroups, chains };
  const lowered: XdpRuleIR[] = [];
  // A plain loop: forEach and map skip the holes of a sparse array.
  for (let i = 0; i < rules.length; i++) {
    const r = attempt(issues, () => lowerRule(rules[i], i, [...path, 'rules', i], where, sets, targets, issues));
    if (r) lowered.push(r);
  }
  const names = new Map<string, number>();
  for (const r of lowered) {
    const prev = names.get(r.name);
    if (prev !== undefined) issues.add([...path, 'rules', r.index, 'name'], `duplicate rule name '${r.name}' (also rules[${prev}])`);
    else names.set(r.name, r.index);
  }
  const dflt = attempt(issues, () => lowerHookAction(s.default ?? 'pass', at('default'), where, targets, issues));
  if (dflt === undefined || countOf(issues) !== before) stopQuietly(path);
  const common = { default: dflt, malformed, sets: [...sets.good.values()], rules: lowered, redirects, xskGroups };
  if (hook === 'tc') return { index, interface: s.interface, direction: direction!, ...common };
  return { index, interface: s.interface, mode, ...common };
}

/** How many problems a sink has seen so far, when it can say (an IssueList can). */
function countOf(issues: Issues): number {
  return issues instanceof IssueList ? issues.found.length : (issues as Counted).count;
}
interface Counted extends Issues {
  count: number;
}

/** A sink that counts what it passes on (lowerSection asks how many problems a node added). */
function countedSink(issues: Issues): Counted {
  const counted: Counted = {
    count: 0,
    add(p, m) {
      counted.count++;
      issues.add(p, m);
    },
  };
  return counted;
}

/**
 * Validates the `xdp` sections of a policy at `path` (e.g. ['xdp']), reporting every problem to
 * `issues`; `{ chain }` actions resolve against `chains` (the policy's packet chains). The
 * sections it returns are complete only when it reported nothing.
 */
export function lowerXdp(specs: unknown, path: Path, issues: Issues, chains?: ChainNames): XdpSectionIR[] {
  if (specs === undefined) return [];
  if (!Array.isArray(specs)) {
    issues.add(path, 'must be an array of xdp sections');
    return [];
  }
  const counted = countedSink(issues);
  const out: XdpSectionIR[] = [];
  for (let i = 0; i < specs.length; i++) {
    const s = attempt(counted, () => lowerSection(specs[i], i, [...path, i], counted, 'xdp', chains));
    if (s) out.push(s);
  }
  const seen = new Map<string, number>();
  for (const s of out) {
    const prev = seen.get(s.interface);
    if (prev !== undefined) counted.add([...path, s.index, 'interface'], `interface '${s.interface}' already has xdp[${prev}]; one section per interface (an interface runs one XDP program)`);
    else seen.set(s.interface, s.index);
  }
  return out;
}

/**
 * Validates `xdp` sections and lowers them to plain data; `path` is the policy path prefix for
 * errors, e.g. "xdp". `{ chain }` actions may name `chains` (ids in list order), as if a policy
 * declared those packet chains.
 * @throws PolicyError (code E_POLICY) listing every problem; its `path` names the first.
 */
export function lowerXdpSections(specs: readonly XdpSectionSpec[] | undefined, path: string, chains?: readonly string[]): XdpSectionIR[] {
  const issues = new IssueList();
  const data = snapshotSpec(specs, issues);
  issues.throwIfAny();
  const out = lowerXdp(data, [path], issues, chains ? chainNamesOf(chains) : undefined);
  issues.throwIfAny();
  return out;
}

/**
 * Validates the `tc` sections of a policy at `path` (e.g. ['tc']), reporting every problem to
 * `issues`: the checks of an xdp section, the direction, and the actions the direction allows.
 * The sections it returns are complete only when it reported nothing.
 */
export function lowerTc(specs: unknown, path: Path, issues: Issues): TcSectionIR[] {
  if (specs === undefined) return [];
  if (!Array.isArray(specs)) {
    issues.add(path, 'must be an array of tc sections');
    return [];
  }
  const counted = countedSink(issues);
  const out: TcSectionIR[] = [];
  for (let i = 0; i < specs.length; i++) {
    const s = attempt(counted, () => lowerSection(specs[i], i, [...path, i], counted, 'tc'));
    if (s) out.push(s);
  }
  const seen = new Map<string, number>();
  for (const s of out) {
    const key = `${s.interface} ${s.direction}`;
    const prev = seen.get(key);
    if (prev !== undefined) {
      counted.add([...path, s.index, 'direction'], `interface '${s.interface}' already has tc[${prev}] at ${s.direction}; one section per interface and direction (put the rules in one section: the first match decides)`);
    } else seen.set(key, s.index);
  }
  return out;
}

/**
 * Validates `tc` sections and lowers them to plain data; `path` is the policy path prefix for
 * errors, e.g. "tc".
 * @throws PolicyError (code E_POLICY) listing every problem; its `path` names the first.
 */
export function lowerTcSections(specs: readonly TcSectionSpec[] | undefined, path: string): TcSectionIR[] {
  const issues = new IssueList();
  const data = snapshotSpec(specs, issues);
  issues.throwIfAny();
  const out = lowerTc(data, [path], issues);
  issues.throwIfAny();
  return out;
}
