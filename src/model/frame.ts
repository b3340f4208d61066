/**
 * The parser of a generated classification program (PARSER in src/codegen/xdp/parser.ts), in
 * TypeScript: the same headers, the same bounds checks in the same order, the same fields. It
 * answers what the C answers, malformed or not, for any bytes, so a disagreement with the kernel
 * is a bug on one side (test/kernel/xdp-model.test.ts looks for them).
 *
 * `Pkt` is `struct pkt` field for field, typed by the parser's field list (PKT_FIELDS): a field
 * the parser gains fails `tsc` here until the model fills it too.
 */
import { MAX_EXT_HDRS, MAX_VLANS, type PktField } from '../codegen/xdp/parser.ts';
import { formatIpv6, formatMac } from '../ir/xdp.ts';

const ETH_HLEN = 14;
const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;
const ETH_P_8021Q = 0x8100;
const ETH_P_8021AD = 0x88a8;
export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_DSTOPTS = 60;
/** IPv4 fragment offset bits; IPv6 fragment offset bits (the C's IP_OFFSET_MASK, IP6_OFFSET_MASK). */
const IP_OFFSET_MASK = 0x1fff;
const IP6_OFFSET_MASK = 0xfff8;

/** Where `struct pkt` keeps a pointer into the frame, the model keeps views of the bytes. */
export interface EthView {
  readonly dst: Uint8Array;
  readonly src: Uint8Array;
}
export interface Ip6View {
  readonly saddr: Uint8Array;
  readonly daddr: Uint8Array;
}

/** `struct pkt`: what the rules read. Addresses as unsigned numbers of their network-order bytes. */
export interface Pkt {
  eth: EthView;
  ip6: Ip6View | null;
  saddr4: number;
  daddr4: number;
  eth_proto: number;
  vlan_outer: number;
  vlan_inner: number;
  sport: number;
  dport: number;
  vlans: number;
  l3: 0 | 4 | 6;
  proto: number;
  dscp: number;
  frag: 0 | 1;
  l4: 0 | 1;
  tcp_flags: number;
  icmp_type: number;
  icmp_code: number;
}
type SameKeys<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** A field of the C struct the model lacks, or one it invented, fails tsc here. */
const _pktAgrees: SameKeys<keyof Pkt, PktField> = true;
void _pktAgrees;

/** One header as the parser walked it, for people (`bpfctl xdp explain`). */
export interface Layer {
  readonly name: 'ethernet' | 'vlan' | 'ipv4' | 'ipv6' | 'hop-by-hop' | 'routing' | 'dest-opts' | 'fragment' | 'tcp' | 'udp' | 'icmp' | 'icmpv6';
  readonly offset: number;
  readonly length: number;
  readonly fields: Readonly<Record<string, string | number | boolean>>;
}

export type ParseResult =
  | {
      readonly status: 'malformed';
      /** What the C's check that failed tests, in words. */
      readonly reason: string;
      /** The offset of the header that failed. */
      readonly offset: number;
    }
  | {
      /** 'fragment': a later IP fragment (xdp_stats[1]); the rules see no L4 fields. */
      readonly status: 'ok' | 'fragment';
      readonly pkt: Pkt;
    };

const be16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;
const be32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
const hex4 = (n: number) => `0x${n.toString(16).padStart(4, '0')}`;
const ip4Text = (n: number) => `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;

function malformed(reason: string, offset: number): ParseResult {
  return { status: 'malformed', reason, offset };
}

/** "cut short" message: `need` bytes at `off`, of a frame of `len`. */
function short(what: string, off: number, need: number, len: number): ParseResult {
  return malformed(`${what} cut short: ${need} bytes needed at offset ${off}, ${Math.max(0, len - off)} left`, off);
}

function isExt(nexthdr: number): boolean {
  return nexthdr === IPPROTO_HOPOPTS || nexthdr === IPPROTO_ROUTING || nexthdr === IPPROTO_DSTOPTS || nexthdr === IPPROTO_FRAGMENT;
}

const EXT_NAMES: Readonly<Record<number, Layer['name']>> = { [IPPROTO_HOPOPTS]: 'hop-by-hop', [IPPROTO_ROUTING]: 'routing', [IPPROTO_DSTOPTS]: 'dest-opts', [IPPROTO_FRAGMENT]: 'fragment' };

/** parse_l4(): the L4 header of p.proto at `off`, if the program reads that protocol. */
function parseL4(b: Uint8Array, off: number, p: Pkt, layers: Layer[] | undefined): ParseResult | null {
  const end = b.length;
  switch (p.proto) {
    case IPPROTO_TCP: {
      if (off + 20 > end) return short('TCP header', off, 20, end);
      const doff = b[off + 12]! >> 4;
      if (doff < 5) return malformed(`TCP data offset ${doff} < 5`, off);
      p.sport = be16(b, off);
      p.dport = be16(b, off + 2);
      p.tcp_flags = b[off + 13]!;
      layers?.push({ name: 'tcp', offset: off, length: doff * 4, fields: { sport: p.sport, dport: p.dport, flags: p.tcp_flags, doff } });
      break;
    }
    case IPPROTO_UDP: {
      if (off + 8 > end) return short('UDP header', off, 8, end);
      p.sport = be16(b, off);
      p.dport = be16(b, off + 2);
      layers?.push({ name: 'udp', offset: off, length: 8, fields: { sport: p.sport, dport: p.dport, length: be16(b, off + 4) } });
      break;
    }
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6: {
      // The program reads ICMP and ICMPv6 alike, whichever IP version carries them.
      const name = p.proto === IPPROTO_ICMP ? 'ICMP' : 'ICMPv6';
      if (off + 8 > end) return short(`${name} header`, off, 8, end);
      p.icmp_type = b[off]!;
      p.icmp_code = b[off + 1]!;
      layers?.push({ name: p.proto === IPPROTO_ICMP ? 'icmp' : 'icmpv6', offset: off, length: 8, fields: { type: p.icmp_type, code: p.icmp_code } });
      break;
    }
    default:
      return null;
  }
  p.l4 = 1;
  return null;
}

/**
 * Parses a frame as the generated program does: Ethernet, up to MAX_VLANS VLAN tags, IPv4 (with
 * options) or IPv6 (past up to MAX_EXT_HDRS extension headers), then TCP/UDP/ICMP/ICMPv6. When
 * `layers` is given, each header read is described into it (in order; a malformed frame's list
 * ends before the header that failed).
 */
export function parseFrame(b: Uint8Array, layers?: Layer[]): ParseResult {
  const end = b.length;
  if (ETH_HLEN > end) return short('Ethernet header', 0, ETH_HLEN, end);
  const p: Pkt = {
    eth: { dst: b.subarray(0, 6), src: b.subarray(6, 12) },
    ip6: null,
    saddr4: 0,
    daddr4: 0,
    eth_proto: 0,
    vlan_outer: 0,
    vlan_inner: 0,
    sport: 0,
    dport: 0,
    vlans: 0,
    l3: 0,
    proto: 0,
    dscp: 0,
    frag: 0,
    l4: 0,
    tcp_flags: 0,
    icmp_type: 0,
    icmp_code: 0,
  };
  let proto = be16(b, 12);
  let cur = ETH_HLEN;
  layers?.push({ name: 'ethernet', offset: 0, length: ETH_HLEN, fields: { dst: macText(p.eth.dst), src: macText(p.eth.src), type: hex4(proto) } });

  for (let i = 0; i < MAX_VLANS; i++) {
    if (proto !== ETH_P_8021Q && proto !== ETH_P_8021AD) break;
    if (cur + 4 > end) return short('VLAN tag', cur, 4, end);
    const vid = be16(b, cur) & 0x0fff;
    if (i === 0) p.vlan_outer = vid;
    else p.vlan_inner = vid;
    p.vlans = i + 1;
    layers?.push({ name: 'vlan', offset: cur, length: 4, fields: { tpid: hex4(proto), id: vid, type: hex4(be16(b, cur + 2)) } });
    proto = be16(b, cur + 2);
    cur += 4;
  }
  p.eth_proto = proto;

  if (proto === ETH_P_IP) {
    if (cur + 20 > end) return short('IPv4 header', cur, 20, end);
    const version = b[cur]! >> 4;
    const hlen = (b[cur]! & 0x0f) * 4;
    const totLen = be16(b, cur + 2);
    if (version !== 4) return malformed(`IPv4 header with version ${version}`, cur);
    if (hlen < 20) return malformed(`IPv4 IHL ${hlen / 4} < 5`, cur);
    if (totLen < hlen) return malformed(`IPv4 total length ${totLen} < header length ${hlen}`, cur);
    if (cur + hlen > end) return short('IPv4 header with options', cur, hlen, end);
    p.l3 = 4;
    p.saddr4 = be32(b, cur + 12);
    p.daddr4 = be32(b, cur + 16);
    p.proto = b[cur + 9]!;
    p.dscp = b[cur + 1]! >> 2;
    const fragOff = be16(b, cur + 6);
    layers?.push({
      name: 'ipv4',
      offset: cur,
      length: hlen,
      fields: { src: ip4Text(p.saddr4), dst: ip4Text(p.daddr4), proto: p.proto, dscp: p.dscp, ihl: hlen / 4, length: totLen, ttl: b[cur + 8]!, fragOffset: (fragOff & IP_OFFSET_MASK) * 8, moreFragments: (fragOff & 0x2000) !== 0 },
    });
    if (fragOff & IP_OFFSET_MASK) {
      p.frag = 1;
      return { status: 'fragment', pkt: p };
    }
    return parseL4(b, cur + hlen, p, layers) ?? { status: 'ok', pkt: p };
  }

  if (proto === ETH_P_IPV6) {
    if (cur + 40 > end) return short('IPv6 header', cur, 40, end);
    const version = b[cur]! >> 4;
    if (version !== 6) return malformed(`IPv6 header with version ${version}`, cur);
    p.l3 = 6;
    p.ip6 = { saddr: b.subarray(cur + 8, cur + 24), daddr: b.subarray(cur + 24, cur + 40) };
    // Traffic class: the low 4 bits of byte 0 and the top 4 of byte 1; DSCP is its top 6.
    p.dscp = (((b[cur]! & 0x0f) << 4) | (b[cur + 1]! >> 4)) >> 2;
    let nexthdr = b[cur + 6]!;
    layers?.push({ name: 'ipv6', offset: cur, length: 40, fields: { src: ip6Text(p.ip6.saddr), dst: ip6Text(p.ip6.daddr), next: nexthdr, dscp: p.dscp, payloadLength: be16(b, cur + 4), hopLimit: b[cur + 7]! } });
    cur += 40;
    for (let i = 0; i < MAX_EXT_HDRS; i++) {
      if (!isExt(nexthdr)) break;
      const name = EXT_NAMES[nexthdr]!;
      if (nexthdr === IPPROTO_FRAGMENT) {
        if (cur + 8 > end) return short('IPv6 fragment header', cur, 8, end);
        nexthdr = b[cur]!;
        const fragOff = be16(b, cur + 2);
        layers?.push({ name, offset: cur, length: 8, fields: { next: nexthdr, fragOffset: fragOff & IP6_OFFSET_MASK, moreFragments: (fragOff & 1) !== 0 } });
        cur += 8;
        if (fragOff & IP6_OFFSET_MASK) {
          p.proto = nexthdr;
          p.frag = 1;
          return { status: 'fragment', pkt: p };
        }
      } else {
        if (cur + 2 > end) return short(`IPv6 ${name} header`, cur, 2, end);
        const len = (b[cur + 1]! + 1) * 8;
        nexthdr = b[cur]!;
        if (cur + len > end) return short(`IPv6 ${name} header`, cur, len, end);
        layers?.push({ name, offset: cur, length: len, fields: { next: nexthdr } });
        cur += len;
      }
    }
    if (isExt(nexthdr)) return malformed(`IPv6 extension-header chain longer than ${MAX_EXT_HDRS}`, cur);
    p.proto = nexthdr;
    return parseL4(b, cur, p, layers) ?? { status: 'ok', pkt: p };
  }

  return { status: 'ok', pkt: p };
}

export const macText = (m: Uint8Array): string => formatMac([...m]);
export const ip6Text = (a: Uint8Array): string => formatIpv6([...a]);
export { ip4Text };
