/**
 * Packet crafting for BPF_PROG_TEST_RUN tables: Ethernet (+ up to N VLAN tags), IPv4 (options,
 * fragments, deliberately broken IHL/length), IPv6 (+ hop-by-hop, routing, destination-options
 * and fragment headers), TCP, UDP, ICMP, ICMPv6. Each builder takes its payload (the next layer's
 * bytes) and returns bytes, so a frame reads outside in:
 *
 *   eth({ vlans: [100] }, ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }, udp({ sport: 1, dport: 53 })))
 *
 * Checksums are correct unless a test overrides the field, so the same frames also work on a
 * real interface.
 */
import { parseIpv4, parseIpv6, parseMac } from '../../src/ir/xdp.ts';

export const IPPROTO = { hop: 0, icmp: 1, tcp: 6, udp: 17, routing: 43, fragment: 44, icmpv6: 58, none: 59, dest: 60 } as const;
export const TCP = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10, urg: 0x20, ece: 0x40, cwr: 0x80 } as const;
export const XDP = { aborted: 0, drop: 1, pass: 2, tx: 3, redirect: 4 } as const;
export type XdpVerdictName = keyof typeof XDP;

/** A layer plus the facts an outer layer needs (IPv4/IPv6 pseudo-headers for L4 checksums). */
export interface Layer {
  bytes: Uint8Array;
  /** IP protocol number of this layer when it is an L4 (or extension) header. */
  proto?: number;
  /** Fills in the L4 checksum once the IP addresses are known. */
  finish?: (pseudo: Uint8Array) => void;
}

const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const be16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];
const be32 = (n: number) => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];

function mac(text: string): number[] {
  const m = parseMac(text);
  if (!m) throw new Error(`bad MAC ${text}`);
  return m;
}

function ip4(text: string): number[] {
  const a = parseIpv4(text);
  if (!a) throw new Error(`bad IPv4 ${text}`);
  return a;
}

function ip6(text: string): number[] {
  const a = parseIpv6(text);
  if (!a) throw new Error(`bad IPv6 ${text}`);
  return a;
}

/** RFC 1071 ones' complement sum. */
export function checksum(...parts: Uint8Array[]): number {
  let sum = 0;
  for (const p of parts) {
    for (let i = 0; i < p.length; i += 2) sum += ((p[i] ?? 0) << 8) | (p[i + 1] ?? 0);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const asBytes = (p: Layer | Uint8Array | undefined): Layer => (p === undefined ? { bytes: new Uint8Array(0) } : p instanceof Uint8Array ? { bytes: p } : p);

export interface EthOpts {
  src?: string;
  dst?: string;
  /** EtherType of the payload; defaults from the payload (IPv4/IPv6) or 0x0800. */
  type?: number;
  /** VLAN ids, outer first. The outer tag of two uses 802.1ad (0x88a8), others 802.1Q. */
  vlans?: number[];
}

export function eth(o: EthOpts, payload?: Layer | Uint8Array): Uint8Array {
  const p = asBytes(payload);
  const type = o.type ?? (p.bytes.length && p.bytes[0]! >> 4 === 6 ? 0x86dd : 0x0800);
  // On the wire each tag is TPID + TCI, and the payload's EtherType follows the last tag.
  const tags = (o.vlans ?? []).flatMap((vid, i, all) => [...be16(all.length > 1 && i === 0 ? 0x88a8 : 0x8100), ...be16(vid & 0x0fff)]);
  const head = [...mac(o.dst ?? '02:00:00:00:00:02'), ...mac(o.src ?? '02:00:00:00:00:01'), ...tags, ...be16(type)];
  return concat(Uint8Array.from(head), p.bytes);
}

export interface Ipv4Opts {
  src?: string;
  dst?: string;
  /** Protocol; defaults from the payload. */
  proto?: number;
  tos?: number;
  dscp?: number;
  ttl?: number;
  /** IPv4 options (padded to 4 bytes). */
  options?: number[];
  /** Fragment offset in 8-byte units, and the More Fragments bit. */
  fragOffset?: number;
  moreFragments?: boolean;
  /** Overrides for malformed packets. */
  ihl?: number;
  version?: number;
  totalLength?: number;
}

export function ipv4(o: Ipv4Opts, payload?: Layer | Uint8Array): Layer {
  const p = asBytes(payload);
  const opts = [...(o.options ?? [])];
  while (opts.length % 4) opts.push(0);
  const hlen = 20 + opts.length;
  const src = ip4(o.src ?? '198.18.0.1');
  const dst = ip4(o.dst ?? '198.18.0.2');
  const proto = o.proto ?? p.proto ?? 253;
  const flags = ((o.moreFragments ? 1 : 0) << 13) | (o.fragOffset ?? 0);
  const tos = o.tos ?? (o.dscp ?? 0) << 2;
  const h = Uint8Array.from([
    ((o.version ?? 4) << 4) | (o.ihl ?? hlen / 4),
    tos,
    ...be16(o.totalLength ?? hlen + p.bytes.length),
    ...be16(0x1234),
    ...be16(flags),
    o.ttl ?? 64,
    proto,
    0,
    0,
    ...src,
    ...dst,
    ...opts,
  ]);
  const c = checksum(h);
  h[10] = c >> 8;
  h[11] = c & 0xff;
  if (p.finish && !o.fragOffset) p.finish(Uint8Array.from([...src, ...dst, 0, proto, ...be16(p.bytes.length)]));
  return { bytes: concat(h, p.bytes) };
}

export type Ipv6Ext =
  | { type: 'hop' | 'dest' | 'routing'; /** extra 8-byte units beyond the first */ units?: number }
  | { type: 'fragment'; offset?: number; more?: boolean };

export interface Ipv6Opts {
  src?: string;
  dst?: string;
  nextHeader?: number;
  trafficClass?: number;
  dscp?: number;
  ext?: Ipv6Ext[];
  version?: number;
  payloadLength?: number;
}

export function ipv6(o: Ipv6Opts, payload?: Layer | Uint8Array): Layer {
  const p = asBytes(payload);
  const src = ip6(o.src ?? 'fd00::1');
  const dst = ip6(o.dst ?? 'fd00::2');
  const l4proto = o.nextHeader ?? p.proto ?? IPPROTO.none;
  // Build extension headers back to front so each one names the header after it.
  let next = l4proto;
  let exts: number[] = [];
  for (const e of [...(o.ext ?? [])].reverse()) {
    if (e.type === 'fragment') {
      exts = [next, 0, ...be16(((e.offset ?? 0) << 3) | (e.more ? 1 : 0)), ...be32(0xabcd), ...exts];
      next = IPPROTO.fragment;
    } else {
      const units = e.units ?? 0;
      const body = new Array(6 + units * 8).fill(0);
      if (e.type === 'routing') body[0] = 4; // segment routing type, segments left 0: harmless
      exts = [next, units, ...body, ...exts];
      next = e.type === 'hop' ? IPPROTO.hop : e.type === 'dest' ? IPPROTO.dest : IPPROTO.routing;
    }
  }
  const tc = o.trafficClass ?? (o.dscp ?? 0) << 2;
  const plen = o.payloadLength ?? exts.length + p.bytes.length;
  const h = Uint8Array.from([((o.version ?? 6) << 4) | (tc >> 4), (tc & 0xf) << 4, 0, 0, ...be16(plen), next, 64, ...src, ...dst]);
  const firstFragment = !(o.ext ?? []).some((e) => e.type === 'fragment' && (e.offset ?? 0) > 0);
  if (p.finish && firstFragment) p.finish(Uint8Array.from([...src, ...dst, ...be32(p.bytes.length), 0, 0, 0, l4proto]));
  return { bytes: concat(h, Uint8Array.from(exts), p.bytes) };
}

export interface TcpOpts {
  sport?: number;
  dport?: number;
  flags?: number;
  seq?: number;
  /** Data offset override (in 32-bit words) for malformed headers. */
  doff?: number;
}

export function tcp(o: TcpOpts, payload: Uint8Array = new Uint8Array(0)): Layer {
  const h = Uint8Array.from([
    ...be16(o.sport ?? 40000),
    ...be16(o.dport ?? 80),
    ...be32(o.seq ?? 1),
    ...be32(0),
    (o.doff ?? 5) << 4,
    o.flags ?? TCP.syn,
    ...be16(65535),
    0,
    0,
    0,
    0,
  ]);
  const bytes = concat(h, payload);
  return {
    bytes,
    proto: IPPROTO.tcp,
    finish: (pseudo) => {
      const c = checksum(pseudo, bytes);
      bytes[16] = c >> 8;
      bytes[17] = c & 0xff;
    },
  };
}

export function udp(o: { sport?: number; dport?: number }, payload: Uint8Array = new Uint8Array(0)): Layer {
  const bytes = concat(Uint8Array.from([...be16(o.sport ?? 40000), ...be16(o.dport ?? 53), ...be16(8 + payload.length), 0, 0]), payload);
  return {
    bytes,
    proto: IPPROTO.udp,
    finish: (pseudo) => {
      const c = checksum(pseudo, bytes) || 0xffff;
      bytes[6] = c >> 8;
      bytes[7] = c & 0xff;
    },
  };
}

export function icmp(o: { type?: number; code?: number }, payload: Uint8Array = new Uint8Array(0)): Layer {
  const bytes = concat(Uint8Array.from([o.type ?? 8, o.code ?? 0, 0, 0, 0, 1, 0, 1]), payload);
  const c = checksum(bytes);
  bytes[2] = c >> 8;
  bytes[3] = c & 0xff;
  return { bytes, proto: IPPROTO.icmp };
}

export function icmpv6(o: { type?: number; code?: number }, payload: Uint8Array = new Uint8Array(0)): Layer {
  const bytes = concat(Uint8Array.from([o.type ?? 128, o.code ?? 0, 0, 0, 0, 1, 0, 1]), payload);
  return {
    bytes,
    proto: IPPROTO.icmpv6,
    finish: (pseudo) => {
      const c = checksum(pseudo, bytes);
      bytes[2] = c >> 8;
      bytes[3] = c & 0xff;
    },
  };
}

/** The first `n` bytes of a frame: a header cut short. */
export function truncate(frame: Uint8Array, n: number): Uint8Array {
  return frame.slice(0, n);
}

/** Ethernet frames are at least 60 bytes on the wire (before the FCS); pad like a NIC would. */
export function padded(frame: Uint8Array, min = 60): Uint8Array {
  return frame.length >= min ? frame : concat(frame, new Uint8Array(min - frame.length));
}
