/**
 * Rules -> C. Each rule becomes one `if` over the parsed packet, conditions ordered cheapest
 * first (the family and protocol bytes, then ports and flags, then inline prefixes, then map
 * lookups) so a packet leaves a non-matching rule at its first cheap test.
 */
import type { XdpSetKind } from '../../dsl/xdp.ts';
import type { XdpActionIR, XdpAddrIR, XdpMatchIR, XdpPortIR, XdpPrefixIR, XdpRuleIR, XdpSectionIR } from '../../ir/xdp.ts';
import { setMapName, xskMapName } from './maps.ts';

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

const MAC_EQ = `static __always_inline int mac_eq(const __u8 *m, const __u8 want[6])
{
	return m[0] == want[0] && m[1] == want[1] && m[2] == want[2] &&
	       m[3] == want[3] && m[4] == want[4] && m[5] == want[5];
}`;

/** The helpers the section's rules call, in a fixed order. */
export function helperDecls(section: XdpSectionIR): string {
  const kinds = new Set<XdpSetKind>();
  let macEq = false;
  for (const r of section.rules) {
    const m = r.match;
    for (const a of [m.src, m.dst]) if (a && 'set' in a) kinds.add(a.kind);
    if ((m.sport && 'set' in m.sport) || (m.dport && 'set' in m.dport)) kinds.add('port');
    for (const mac of [m.srcMac, m.dstMac]) {
      if (mac && 'set' in mac) kinds.add('mac');
      else if (mac) macEq = true;
    }
  }
  const order: XdpSetKind[] = ['ipv4-prefix', 'ipv6-prefix', 'ipv4', 'ipv6', 'port', 'mac'];
  return [...(macEq ? [MAC_EQ] : []), ...order.filter((k) => kinds.has(k)).map((k) => SET_HELPERS[k])].join('\n\n');
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
  const c: string[] = [];
  if (p.lo > 0) c.push(`p.${field} >= ${p.lo}`);
  if (p.hi < 65535) c.push(`p.${field} <= ${p.hi}`);
  return { inline: c, lookups: [] };
}

const macBytes = (m: readonly number[]) => m.map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(', ');

/** The conditions of one match, cheapest first; empty means "every packet". */
export function matchConds(m: XdpMatchIR): string[] {
  const cheap: string[] = [];
  const inline: string[] = [];
  const lookups: string[] = [];
  if (m.vlan !== undefined) cheap.push(...(m.innerVlan === undefined ? ['p.vlans >= 1'] : []), `p.vlan_outer == ${m.vlan}`);
  if (m.innerVlan !== undefined) cheap.push('p.vlans == 2', `p.vlan_inner == ${m.innerVlan}`);
  if (m.l3 === 4 || m.l3 === 6) cheap.push(`p.l3 == ${m.l3}`);
  else if (m.l3 === 'ip') cheap.push('p.l3 != 0');
  else if (m.ethType !== undefined) cheap.push(`p.eth_proto == 0x${m.ethType.toString(16).padStart(4, '0')}`);
  if (m.proto !== undefined) cheap.push(`p.proto == ${PROTO_C[m.proto] ?? m.proto}`);
  if (m.dscp !== undefined) cheap.push(`p.dscp == ${m.dscp}`);
  const hasPorts = m.sport !== undefined || m.dport !== undefined;
  if (hasPorts && m.proto === undefined) cheap.push('(p.proto == IPPROTO_TCP || p.proto == IPPROTO_UDP)');
  if (hasPorts || m.tcpFlags || m.icmpType !== undefined || m.icmpCode !== undefined) cheap.push('p.l4');
  for (const f of ['sport', 'dport'] as const) {
    const p = m[f];
    if (!p) continue;
    const c = portConds(f, p);
    cheap.push(...c.inline);
    lookups.push(...c.lookups);
  }
  if (m.tcpFlags) cheap.push(`(p.tcp_flags & 0x${m.tcpFlags.mask.toString(16).padStart(2, '0')}) == 0x${m.tcpFlags.value.toString(16).padStart(2, '0')}`);
  if (m.icmpType !== undefined) cheap.push(`p.icmp_type == ${m.icmpType}`);
  if (m.icmpCode !== undefined) cheap.push(`p.icmp_code == ${m.icmpCode}`);
  for (const dir of ['src', 'dst'] as const) {
    const a = m[dir];
    if (!a) continue;
    const c = addrConds(dir, a, m.l3 === 6 ? 6 : 4);
    inline.push(...c.inline);
    lookups.push(...c.lookups);
  }
  for (const [dir, mac] of [
    ['h_source', m.srcMac],
    ['h_dest', m.dstMac],
  ] as const) {
    if (!mac) continue;
    if ('set' in mac) lookups.push(`in_macs(&${setMapName(mac.set)}, p.eth->${dir})`);
    else inline.push(`mac_eq(p.eth->${dir}, (const __u8[6]){ ${macBytes(mac.mac)} })`);
  }
  return [...cheap, ...inline, ...lookups];
}

/** The statements that count (when asked) and carry out an action. */
export function actionStmts(a: XdpActionIR, slot: number, count: boolean, indent: string): string[] {
  const out = count ? [`${indent}count(&rule_stats, ${slot}, bytes);`] : [];
  switch (a.kind) {
    case 'pass':
      return [...out, `${indent}return XDP_PASS;`];
    case 'drop':
      return [...out, `${indent}return XDP_DROP;`];
    case 'tx':
      return [...out, `${indent}return XDP_TX;`];
    case 'redirect':
      return [...out, `${indent}return bpf_redirect_map(&tx_ports, ${a.slot}, XDP_DROP); /* ${a.ifname}; drop if the slot is empty */`];
    case 'xsk':
      return [...out, `${indent}return bpf_redirect_map(&${xskMapName(a.group)}, ctx->rx_queue_index, XDP_PASS); /* to the stack if no socket on this queue */`];
  }
}

/** A C comment can't hold the sequence that ends it; names and summaries are user text. */
export const commentSafe = (s: string) => s.replace(/\*\//g, '* /');

export function ruleBlock(r: XdpRuleIR): string {
  const conds = matchConds(r.match);
  const head = `\t/* rule ${r.index} "${commentSafe(r.name)}": ${commentSafe(r.summary)}${r.count ? '' : ' (not counted)'} */`;
  if (!conds.length) return [head, ...actionStmts(r.action, r.index, r.count, '\t')].join('\n');
  const cond = conds.length === 1 ? conds[0] : conds.join(' &&\n\t    ');
  return [head, `\tif (${cond}) {`, ...actionStmts(r.action, r.index, r.count, '\t\t'), '\t}'].join('\n');
}
