/**
 * One frame of a batch as a TypeScript packet function sees it: the TypeScript face of packet.h's
 * struct bpfctl_pkt. The frame is a view of the pool buffer it arrived in (rewrite it in place);
 * the verdict says where it goes after the handler returns. A record is reused for the same
 * batch position from batch to batch: a handler must not keep it (or its `data`) past its return.
 */
import type { ShimInstance } from './native.ts';

/** Verdicts, as packet.h numbers them. */
export const NEXT = 0;
export const DROP = 1;
export const REFLECT = 2;
export type Verdict = typeof NEXT | typeof DROP | typeof REFLECT;

export const ETH_P_IP = 0x0800;
export const ETH_P_IPV6 = 0x86dd;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMP = 1;

const NONE = 0xffffffff;
const ETH_HLEN = 14;
const MAX_FRAME = 0xffff;

export class Packet {
  private view: Uint8Array | null = null;
  private dv: DataView | null = null;

  constructor(
    private readonly shim: ShimInstance,
    /** Position in the batch. */
    readonly index: number,
  ) {}

  private get w(): number {
    return this.index * this.shim.words;
  }

  /** Called by the runtime when the record takes a new frame. */
  reset(): void {
    this.view = null;
    this.dv = null;
  }

  /** The frame, from its Ethernet header: a view of the pool buffer. */
  get data(): Uint8Array {
    let v = this.view;
    if (v === null) {
      const i = this.shim.info;
      v = this.shim.pool.subarray(i[this.w]!, i[this.w]! + i[this.w + 1]!);
      this.view = v;
    }
    return v;
  }

  /** A DataView of the frame (big-endian reads are `getUint16(at)`). */
  get dataView(): DataView {
    let d = this.dv;
    if (d === null) {
      const v = this.data;
      d = new DataView(v.buffer, v.byteOffset, v.byteLength);
      this.dv = d;
    }
    return d;
  }

  get length(): number {
    return this.shim.info[this.w + 1]!;
  }
  /** Port index the frame arrived on (REFLECT sends it out there; a router may set another). */
  get port(): number {
    return this.shim.info[this.w + 2]! & 0xff;
  }
  set port(p: number) {
    if (!Number.isInteger(p) || p < 0 || p > 255) throw new RangeError(`port must be 0..255, got ${p}`);
    const i = this.shim.info;
    i[this.w + 2] = (i[this.w + 2]! & ~0xff) | p;
  }
  get chain(): number {
    return (this.shim.info[this.w + 2]! >>> 8) & 0xff;
  }
  get hop(): number {
    return (this.shim.info[this.w + 2]! >>> 16) & 0xff;
  }
  /** Symmetric flow hash (both directions of a flow agree): picks the next function's instance. */
  get hash(): number {
    return this.shim.info[this.w + 3]!;
  }
  get verdict(): Verdict {
    return (this.shim.info[this.w + 2]! >>> 24) as Verdict;
  }
  set verdict(v: Verdict) {
    if (v !== NEXT && v !== DROP && v !== REFLECT) throw new RangeError(`verdict must be NEXT, DROP or REFLECT, got ${String(v)}`);
    const i = this.shim.info;
    i[this.w + 2] = ((i[this.w + 2]! & 0xffffff) | (v << 24)) >>> 0;
  }
  drop(): void {
    this.verdict = DROP;
  }
  reflect(): void {
    this.verdict = REFLECT;
  }

  /** Offset of the L3 header in the frame (14, or 18 behind a VLAN tag); -1 without Ethernet. */
  get l3(): number {
    const v = this.shim.info[this.w + 6]!;
    return v === NONE ? -1 : v & 0xffff;
  }
  /** The ethertype (behind a VLAN tag: the inner one); -1 without Ethernet. */
  get etherType(): number {
    const v = this.shim.info[this.w + 6]!;
    return v === NONE ? -1 : v >>> 16;
  }
  /** Offset of the UDP/TCP/... header in the frame; -1: not IP, malformed, or a later fragment. */
  get l4(): number {
    const v = this.shim.info[this.w + 7]!;
    return v === NONE ? -1 : v & 0xffff;
  }
  /** IP protocol of the L4 header; -1 when there is none. */
  get proto(): number {
    const v = this.shim.info[this.w + 7]!;
    return v === NONE ? -1 : v >>> 16;
  }

  /**
   * Moves the frame's start as bpf_xdp_adjust_head does: > 0 strips bytes off the front, < 0
   * makes room in front (up to the 256 bytes of headroom). False (nothing changed) when the frame
   * would leave its buffer or become shorter than an Ethernet header. The offsets are parsed again.
   */
  adjustHead(delta: number): boolean {
    if (!Number.isInteger(delta)) return false;
    const i = this.shim.info;
    const w = this.w;
    const start = i[w]!;
    const len = i[w + 1]!;
    const head = start - i[w + 4]!;
    if (delta >= 0 ? delta + ETH_HLEN > len : -delta > head || len - delta > MAX_FRAME) return false;
    i[w] = start + delta;
    i[w + 1] = len - delta;
    this.reparse();
    return true;
  }

  /** Grows (new bytes zeroed) or shrinks the frame at its end; false when it would not fit. */
  adjustTail(delta: number): boolean {
    if (!Number.isInteger(delta)) return false;
    const i = this.shim.info;
    const w = this.w;
    const len = i[w + 1]! + delta;
    const room = i[w + 5]! - (i[w]! - i[w + 4]!);
    if (len < ETH_HLEN || len > room || len > MAX_FRAME) return false;
    if (delta > 0) this.shim.pool.fill(0, i[w]! + i[w + 1]!, i[w]! + len);
    i[w + 1] = len;
    this.reparse();
    return true;
  }

  /** Parses the headers again (after the handler rewrote an ethertype, a header length...). */
  reparse(): void {
    this.reset();
    this.shim.reparse(this.index);
  }

  /**
   * Recomputes the IPv4 header checksum and the UDP/TCP checksum (over IPv4 or IPv6) in full; an
   * IPv4 UDP checksum of 0 ("none") stays 0. Returns a bit set: 1 IPv4 header, 2 L4.
   */
  fixChecksums(): number {
    return this.shim.fixChecksums(this.index);
  }
}

/** What a TypeScript packet function's module default-exports. */
export type PacketHandler = (packets: readonly Packet[], ctx: PacketContext) => void | Promise<void>;

export interface PacketContext {
  readonly functionName: string;
  readonly instance: number;
}
