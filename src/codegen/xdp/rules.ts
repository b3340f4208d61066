/**
 * Rules -> C. Each rule becomes one `if` over the parsed packet (see matchConds for the order of
 * its conditions), so a packet leaves a non-matching rule at its first cheap test.
 */
import type { XdpMatch, XdpSetKind } from '../../dsl/xdp.ts';
import { CHAIN_XSK_GROUP, describeAction, type XdpActionIR, type XdpAddrIR, type XdpMacIR, type XdpMatchIR, type XdpPortIR, type XdpPrefixIR, type XdpRuleIR, type ClassifierSectionIR } from '../../ir/xdp.ts';
import { steersToChains } from '../../ir/packet.ts';
import { commentSafe } from '../c-text.ts';
import { setMapName, XDP_MAPS, xskMapName } from './maps.ts';
import type { PktField } from './parser.ts';

const PROTO_C: Readonly<Record<number, string>> = { 1: 'IPPROTO_ICMP', 6: 'IPPROTO_TCP', 17: 'IPPROTO_UDP', 58: 'IPPROTO_ICMPV6' };
const hex32 = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

/** Set lookup helpers, emitted only for the kinds a section uses (as key `kind`). */
const SET_HELPERS: Readonly<Record<XdpSetKind, string>> = {
  'ipv4-prefix': `static __always_inline int in_lpm4(void *set, __be32 addr)
{
	struct bpfctl_lpm4_key k = { .prefixlen = 32 };

	__builtin_memcpy(k.addr, &addr, 4);
	return bpf_map_lookup_elem(set, &k) != NULL;
}`,
  'ipv6-prefix': `static __always_inline int in_lpm6(void *set, const struct in6_addr *addr)
{
	struct bpfctl_lpm6_key k = { .prefixlen = 128 };

	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(set, &k) != NULL;
}`,
  ipv4: `static __always_inline int in_hash4(void *set, __be32 addr)
{
	return bpf_map_lookup_elem(set, &addr) != NULL;
}`,
  ipv6: `static __always_inline int in_hash6(void *set, const struct in6_addr *addr)
{
	struct in6_addr k;

	__builtin_memcpy(&k, addr, 16);
	return bpf_map_lookup_elem(set, &k) != NULL;
}`,
  port: `static __always_inline int in_ports(void *set, __u16 port)
{
	return bpf_map_lookup_elem(set, &port) != NULL;
}`,
  mac: `static __always_inline int in_macs(void *set, const __u8 *mac)
{
	struct bpfctl_mac k;

	__builtin_memcpy(k.addr, mac, 6);
	return bpf_map_lookup_elem(set, &k) != NULL;
}`,
};

const PORT_IN = `/*
 * lo <= port <= hi, tested on an opaque copy of the port: the verifier then learns nothing about
 * p.sport/p.dport from a failed range, so the states after every rule stay alike and its
 * pruning keeps verification linear in the number of rules (not exponential in the ranges).
 */
static __always_inline int port_in(__u16 port, __u32 lo, __u32 hi)
{
	__u32 v = port;

	asm volatile("%0 &= 0xffff" : "+r"(v));
	return v - lo <= hi - lo;
}`;

const MAC_EQ = `static __always_inline int mac_eq(const __u8 *m, const __u8 want[6])
{
	return m[0] == want[0] && m[1] == want[1] && m[2] == want[2] &&
	       m[3] == want[3] && m[4] == want[4] && m[5] == want[5];
}`;

/** What the classifier writes in front of a steered frame: `CHAIN_META_TAG | chain id` (docs/packet-chains.md). */
export const CHAIN_META_TAG = 0xbfc70000;

const TAG_CHAIN = `/*
 * Packet chains: the chain's id goes in front of the frame as a 4-byte XDP metadata word,
 * 0x${CHAIN_META_TAG.toString(16).toUpperCase()} | id (host byte order: pktio on this host reads it), which AF_XDP copies into
 * the socket's buffer with the frame; one socket per queue then serves every chain. When the
 * driver has no room for metadata the frame goes untagged and pktio counts it as no_chain.
 *
 * bpf_xdp_adjust_meta() moves data_meta, and the verifier then forgets every packet pointer taken
 * before it (p's too): only ctx is read after it, and the caller returns straight away.
 */
#define CHAIN_META_TAG 0x${CHAIN_META_TAG.toString(16)}u

static __always_inline void tag_chain(struct xdp_md *ctx, __u32 chain)
{
	void *data, *meta;

	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(__u32)))
		return;
	data = (void *)(long)ctx->data;
	meta = (void *)(long)ctx->data_meta;
	if (meta + sizeof(__u32) > data)
		return;
	*(__u32 *)meta = CHAIN_META_TAG | chain;
}`;

/** The helpers the section's rules call, in a fixed order. */
export function helperDecls(section: ClassifierSectionIR): string {
  const kinds = new Set<XdpSetKind>();
  let macEq = false;
  let portIn = false;
  for (const r of section.rules) {
    const m = r.match;
    for (const p of [m.sport, m.dport]) if (p && 'lo' in p && p.lo !== p.hi && !(p.lo === 0 && p.hi === 65535)) portIn = true;
    for (const a of [m.src, m.dst]) if (a && 'set' in a) kinds.add(a.kind);
    if ((m.sport && 'set' in m.sport) || (m.dport && 'set' in m.dport)) kinds.add('port');
    for (const mac of [m.srcMac, m.dstMac]) {
      if (mac && 'set' in mac) kinds.add('mac');
      else if (mac) macEq = true;
    }
  }
  const order: XdpSetKind[] = ['ipv4-prefix', 'ipv6-prefix', 'ipv4', 'ipv6', 'port', 'mac'];
  return [...(portIn ? [PORT_IN] : []), ...(macEq ? [MAC_EQ] : []), ...order.filter((k) => kinds.has(k)).map((k) => SET_HELPERS[k]), ...(steersToChains(section) ? [TAG_CHAIN] : [])].join('\n\n');
}

function prefix4(field: string, p: XdpPrefixIR): string[] {
  if (p.len === 0) return [];
  const addr = p.bytes.reduce((a, b) => a * 256 + b, 0);
  if (p.len === 32) return [`${field} == bpf_htonl(${hex32(addr)})`];
  const mask = p.len === 0 ? 0 : (0xffffffff << (32 - p.len)) >>> 0;
  return [`(${field} & bpf_htonl(${hex32(mask)})) == bpf_htonl(${hex32(addr)})`];
}

function prefix6(field: string, p: XdpPrefixIR): string[] {
  const out: string[] = [];
  for (let w = 0; w < 4; w++) {
    const bits = Math.max(0, Math.min(32, p.len - w * 32));
    if (bits === 0) break;
    const word = p.bytes.slice(w * 4, w * 4 + 4).reduce((a, b) => a * 256 + b, 0);
    const f = `${field}.in6_u.u6_addr32[${w}]`;
    if (bits === 32) out.push(`${f} == bpf_htonl(${hex32(word)})`);
    else out.push(`(${f} & bpf_htonl(${hex32((0xffffffff << (32 - bits)) >>> 0)})) == bpf_htonl(${hex32(word)})`);
  }
  return out;
}

function addrConds(dir: 'src' | 'dst', a: XdpAddrIR, l3: 4 | 6): { inline: string[]; lookups: string[] } {
  const f4 = `p.${dir === 'src' ? 'saddr4' : 'daddr4'}`;
  const f6 = `p.ip6->${dir === 'src' ? 'saddr' : 'daddr'}`;
  if ('prefix' in a) return { inline: l3 === 4 ? prefix4(f4, a.prefix) : prefix6(f6, a.prefix), lookups: [] };
  const map = `&${setMapName(a.set)}`;
  const call: Record<XdpSetKind, string> = {
    'ipv4-prefix': `in_lpm4(${map}, ${f4})`,
    'ipv6-prefix': `in_lpm6(${map}, &${f6})`,
    ipv4: `in_hash4(${map}, ${f4})`,
    ipv6: `in_hash6(${map}, &${f6})`,
    port: '',
    mac: '',
  };
  return { inline: [], lookups: [call[a.kind]] };
}

function portConds(field: 'sport' | 'dport', p: XdpPortIR): { inline: string[]; lookups: string[] } {
  if ('set' in p) return { inline: [], lookups: [`in_ports(&${setMapName(p.set)}, p.${field})`] };
  if (p.lo === p.hi) return { inline: [`p.${field} == ${p.lo}`], lookups: [] };
  if (p.lo === 0 && p.hi === 65535) return { inline: [], lookups: [] };
  return { inline: [`port_in(p.${field}, ${p.lo}, ${p.hi})`], lookups: [] };
}

const macBytes = (m: readonly number[]) => m.map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(', ');

/** Conditions one match field contributes, by how they are ordered in the rule's `if` (see matchConds). */
interface Conds {
  /** Byte compares that most packets fail: first. */
  readonly selective?: readonly string[];
  /** Address and MAC compares (they read headers through pointers the guards make safe). */
  readonly inline?: readonly string[];
  /** Map lookups: last, the dearest. */
  readonly lookups?: readonly string[];
}

/** How one match field becomes C. */
interface MatchFieldCodegen<K extends keyof XdpMatch> {
  /** The `struct pkt` fields its conditions read: the parser fills them (parser.ts PKT_FIELDS). */
  readonly reads: readonly PktField[];
  /** The field's conditions; `knownProto` when an enclosing switch already checked p.proto. */
  readonly cond: (value: NonNullable<XdpMatchIR[K]>, m: XdpMatchIR, knownProto: number | undefined) => Conds;
}

function macConds(field: 'h_source' | 'h_dest', mac: XdpMacIR): Conds {
  if ('set' in mac) return { lookups: [`in_macs(&${setMapName(mac.set)}, p.eth->${field})`] };
  return { inline: [`mac_eq(p.eth->${field}, (const __u8[6]){ ${macBytes(mac.mac)} })`] };
}

function portField(field: 'sport' | 'dport', p: XdpPortIR): Conds {
  const c = portConds(field, p);
  return { selective: c.inline, lookups: c.lookups };
}

/**
 * Every match field, one entry each: typed by the DSL's match, so a field the DSL gains and this
 * table lacks fails `tsc`, as does an entry that reads a `struct pkt` field the parser does not
 * declare. The entries' order is the order of their conditions within each group.
 */
export const MATCH_CODEGEN: { readonly [K in keyof XdpMatch]-?: MatchFieldCodegen<K> } = {
  proto: { reads: ['proto'], cond: (v, _m, known) => ({ selective: v !== known ? [`p.proto == ${PROTO_C[v] ?? v}`] : [] }) },
  sport: { reads: ['sport'], cond: (v) => portField('sport', v) },
  dport: { reads: ['dport'], cond: (v) => portField('dport', v) },
  tcpFlags: { reads: ['tcp_flags'], cond: (v) => ({ selective: [`(p.tcp_flags & 0x${v.mask.toString(16).padStart(2, '0')}) == 0x${v.value.toString(16).padStart(2, '0')}`] }) },
  icmpType: { reads: ['icmp_type'], cond: (v) => ({ selective: [`p.icmp_type == ${v}`] }) },
  icmpCode: { reads: ['icmp_code'], cond: (v) => ({ selective: [`p.icmp_code == ${v}`] }) },
  dscp: { reads: ['dscp'], cond: (v) => ({ selective: [`p.dscp == ${v}`] }) },
  vlan: { reads: ['vlan_outer'], cond: (v) => ({ selective: [`p.vlan_outer == ${v}`] }) },
  innerVlan: { reads: ['vlan_inner'], cond: (v) => ({ selective: [`p.vlan_inner == ${v}`] }) },
  // An IPv4/IPv6 EtherType is the family guard (matchGuards) instead.
  ethType: { reads: ['eth_proto'], cond: (v, m, known) => ({ selective: ethTypeIsGuard(m, known) ? [] : [`p.eth_proto == 0x${v.toString(16).padStart(4, '0')}`] }) },
  src: { reads: ['saddr4', 'ip6'], cond: (v, m) => addrConds('src', v, m.l3 === 6 ? 6 : 4) },
  dst: { reads: ['daddr4', 'ip6'], cond: (v, m) => addrConds('dst', v, m.l3 === 6 ? 6 : 4) },
  srcMac: { reads: ['eth'], cond: (v) => macConds('h_source', v) },
  dstMac: { reads: ['eth'], cond: (v) => macConds('h_dest', v) },
};
const MATCH_ORDER = Object.keys(MATCH_CODEGEN) as (keyof XdpMatch)[];

function ethTypeIsGuard(m: XdpMatchIR, knownProto: number | undefined): boolean {
  return m.l3 === 4 || m.l3 === 6 || (m.l3 === 'ip' && !knownProto);
}

/** The guards a match needs across its fields: VLAN count, family, L4 presence, the IPv6 header. */
function matchGuards(m: XdpMatchIR, knownProto: number | undefined): string[] {
  const guards: string[] = [];
  if (m.innerVlan !== undefined) guards.push('p.vlans == 2');
  else if (m.vlan !== undefined) guards.push('p.vlans >= 1');
  if (m.l3 === 4 || m.l3 === 6) guards.push(`p.l3 == ${m.l3}`);
  // p.proto is only ever set for IP packets, so a known non-zero protocol already implies IP.
  else if (m.l3 === 'ip' && !knownProto) guards.push('p.l3 != 0');
  const hasPorts = m.sport !== undefined || m.dport !== undefined;
  if (hasPorts && m.proto === undefined && knownProto !== 6 && knownProto !== 17) guards.push('(p.proto == IPPROTO_TCP || p.proto == IPPROTO_UDP)');
  if (hasPorts || m.tcpFlags || m.icmpType !== undefined || m.icmpCode !== undefined) guards.push('p.l4');
  // l3 == 6 implies ip6 is set, but in a rule function (long sections) the verifier only sees
  // the caller's stack, where that link is lost: the explicit test keeps the read provably safe.
  if (m.l3 === 6 && (m.src || m.dst)) guards.push('p.ip6');
  return guards;
}

/**
 * The conditions of one match; empty means "every packet". Order matters for speed, not for
 * correctness (every field of `p` is initialised): the most selective byte compares come first
 * so most packets leave a rule at its first test; the family/L4-presence guards come next (they
 * rarely fail on their own), and must precede the address compares (which read the IPv6 header
 * through p.ip6); map lookups come last.
 */
export function matchConds(m: XdpMatchIR, knownProto?: number): string[] {
  const selective: string[] = [];
  const inline: string[] = [];
  const lookups: string[] = [];
  for (const k of MATCH_ORDER) {
    const v = m[k];
    if (v === undefined) continue;
    const c = (MATCH_CODEGEN[k] as MatchFieldCodegen<typeof k>).cond(v as never, m, knownProto);
    selective.push(...(c.selective ?? []));
    inline.push(...(c.inline ?? []));
    lookups.push(...(c.lookups ?? []));
  }
  return [...selective, ...matchGuards(m, knownProto), ...inline, ...lookups];
}

/** The hooks a classification section compiles for. */
export type Hook = 'xdp' | 'tc';

/** How one hook says what the rules decide: a typed table, so an action a hook lacks is explicit. */
export interface HookCodegen {
  /** ELF section of the program. */
  readonly section: string;
  /** The program's function (and kernel program) name. */
  readonly progName: string;
  /** The context the program, the parser and the rule functions take. */
  readonly ctxType: string;
  /** Bytes of the packet, for the counters. */
  readonly bytes: string;
  /** Verdicts for malformed frames (by the section's `malformed`). */
  readonly malformed: { readonly drop: string; readonly pass: string };
  /** The statements of each action, or null when the hook cannot carry it out. */
  readonly actions: { readonly [K in XdpActionIR['kind']]: ((a: Extract<XdpActionIR, { kind: K }>) => readonly string[]) | null };
}

export const HOOKS: { readonly [H in Hook]: HookCodegen } = {
  xdp: {
    section: 'xdp',
    progName: 'xdp_classify',
    ctxType: 'struct xdp_md',
    bytes: 'data_end - data',
    malformed: { drop: 'XDP_DROP', pass: 'XDP_PASS' },
    actions: {
      pass: () => ['return XDP_PASS;'],
      drop: () => ['return XDP_DROP;'],
      tx: () => ['return XDP_TX;'],
      redirect: (a) => [`return bpf_redirect_map(&${XDP_MAPS.txPorts}, ${a.slot}, XDP_DROP); /* ${a.ifname}; drop if the slot is empty */`],
      xsk: (a) => [`return bpf_redirect_map(&${xskMapName(a.group)}, ctx->rx_queue_index, XDP_PASS); /* to the stack if no socket on this queue */`],
      // Fails closed: a steered frame never reaches the stack unprocessed (docs/packet-chains.md).
      chain: (a) => [
        `tag_chain(ctx, ${a.chain}); /* chain ${commentSafe(a.name)}: its id in front of the frame, for pktio */`,
        `return bpf_redirect_map(&${xskMapName(CHAIN_XSK_GROUP)}, ctx->rx_queue_index, XDP_DROP); /* to pktio; dropped if no socket on this queue */`,
      ],
    },
  },
  // tc (tcx) on ingress or egress: the same parser and rules over the skb's linear data.
  tc: {
    section: 'tc',
    progName: 'tc_classify',
    ctxType: 'struct __sk_buff',
    bytes: 'ctx->len',
    malformed: { drop: 'TC_ACT_SHOT', pass: 'TC_ACT_OK' },
    actions: {
      pass: () => ['return TC_ACT_OK;'],
      drop: () => ['return TC_ACT_SHOT;'],
      tx: () => ['return bpf_redirect(ctx->ifindex, 0); /* back out of the device it arrived on */'],
      // tc cannot redirect through a devmap: tx_ports holds the ifindex, bpf_redirect() sends.
      redirect: (a) => [`return redirect_slot(${a.slot}); /* ${a.ifname}; drop if the slot is empty */`],
      xsk: null,
      chain: null,
    },
  },
};

/** The statements that count (when asked) and carry out an action. */
export function actionStmts(a: XdpActionIR, slot: number, count: boolean, indent: string, hook: Hook = 'xdp'): string[] {
  const out = count ? [`${indent}count(&${XDP_MAPS.ruleStats}, ${slot}, bytes);`] : [];
  const emit = HOOKS[hook].actions[a.kind] as ((a: XdpActionIR) => readonly string[]) | null;
  if (!emit) throw new RangeError(`the ${hook} hook cannot ${describeAction(a)} (AF_XDP sockets take frames at XDP only)`);
  return [...out, ...emit(a).map((l) => `${indent}${l}`)];
}

/** One rule as an `if` at `indent`; `knownProto` when an enclosing switch already checked p.proto. */
export function ruleBlock(r: XdpRuleIR, indent = '\t', knownProto?: number, hook: Hook = 'xdp'): string {
  const conds = matchConds(r.match, knownProto);
  const head = `${indent}/* rule ${r.index} "${commentSafe(r.name)}": ${commentSafe(r.summary)}${r.count ? '' : ' (not counted)'} */`;
  if (!conds.length) return [head, ...actionStmts(r.action, r.index, r.count, indent, hook)].join('\n');
  const cond = conds.length === 1 ? conds[0] : conds.join(` &&\n${indent}    `);
  return [head, `${indent}if (${cond}) {`, ...actionStmts(r.action, r.index, r.count, `${indent}\t`, hook), `${indent}}`].join('\n');
}

/** Rules past this many are written out once, in order, without the protocol switch... */
export const DISPATCH_MAX_RULES = 256;
/**
 * ...and split into functions of this many rules each: a BPF jump reaches at most 32767
 * instructions (clang 14 has no long jumps), which one function of ~400 complex rules exceeds.
 */
export const RULES_PER_FUNCTION = 128;

/** Can a packet of IP protocol `proto` (undefined: any other) match rule `r`? */
function applies(r: XdpRuleIR, proto: number | undefined): boolean {
  const m = r.match;
  if (m.proto !== undefined) return m.proto === proto;
  // A non-IP EtherType: such frames have no protocol (p.proto stays 0).
  if (m.ethType !== undefined && m.l3 === undefined) return proto === undefined || proto === 0;
  // Ports are only ever parsed from TCP and UDP.
  if (m.sport !== undefined || m.dport !== undefined) return proto === 6 || proto === 17;
  return true;
}

/**
 * The rules and the default action. When rules name two or more protocols, a switch on the
 * protocol comes first and each case holds only the rules that can match it (those of its
 * protocol and those naming none), still in policy order: a packet no longer walks past every
 * other protocol's rules. Rules naming no protocol are written once per case.
 */
export function rulesBody(s: ClassifierSectionIR, hook: Hook = 'xdp'): string[] {
  const dflt = [`/* default: ${describeAction(s.default)} */`, ...actionStmts(s.default, s.rules.length, true, '', hook)];
  const protos = [...new Set(s.rules.map((r) => r.match.proto).filter((p): p is number => p !== undefined))];
  if (s.rules.length > DISPATCH_MAX_RULES) {
    const calls: string[] = ['\tint verdict;', ''];
    for (let i = 0; i < s.rules.length; i += RULES_PER_FUNCTION) {
      calls.push(`\tverdict = rules_${i}(ctx, &p, bytes);`, '\tif (verdict >= 0)', '\t\treturn verdict;');
    }
    return [...calls, '', ...dflt.map((l) => `\t${l}`)];
  }
  if (protos.length < 2) return [...s.rules.flatMap((r) => [ruleBlock(r, '\t', undefined, hook), '']), ...dflt.map((l) => `\t${l}`)];
  const out = [
    '\t/*',
    "\t * One case per protocol the rules name: each holds the rules that can match it, in policy",
    '\t * order (a rule naming no protocol appears in every case it can match in).',
    '\t */',
    '\tswitch (p.proto) {',
  ];
  for (const proto of [...protos, undefined]) {
    out.push(proto === undefined ? '\tdefault:' : `\tcase ${PROTO_C[proto] ?? proto}:`);
    for (const r of s.rules.filter((x) => applies(x, proto))) out.push(ruleBlock(r, '\t\t', proto, hook), '');
    out.push(...dflt.map((l) => `\t\t${l}`));
  }
  out.push('\t}');
  return out;
}

/**
 * For sections of more than DISPATCH_MAX_RULES rules: the rules in functions of
 * RULES_PER_FUNCTION each, returning the verdict of the first match or -1. Static and noinline,
 * so the verifier checks them in their caller's context (the packet pointers in `p` stay valid).
 */
export function ruleFunctions(s: ClassifierSectionIR, hook: Hook = 'xdp'): string[] {
  if (s.rules.length <= DISPATCH_MAX_RULES) return [];
  // `p` reads the caller's struct in place: a copy would split its packet pointers into
  // 4-byte loads, which the verifier no longer knows as pointers.
  const out: string[] = ['#define p (*pp)'];
  for (let i = 0; i < s.rules.length; i += RULES_PER_FUNCTION) {
    const chunk = s.rules.slice(i, i + RULES_PER_FUNCTION);
    const body = chunk.flatMap((r) => [ruleBlock(r, '\t', undefined, hook), '']);
    out.push(
      `/* rules ${i}..${i + chunk.length - 1} */\nstatic __noinline int rules_${i}(${HOOKS[hook].ctxType} *ctx, const struct pkt *pp, __u64 bytes)\n{\n${body.join('\n')}\treturn -1; /* none of these matched */\n}`,
    );
  }
  out.push('#undef p');
  return out;
}
