/**
 * The descriptor on the wire, read and written field by field in place. The schema codec
 * (src/schema/descriptor.ts) is the contract; this is its hot-path twin: the runtime touches every
 * descriptor of every hop, and decoding into a fresh object through DataView costs more than the
 * sk_msg redirect itself. `test/unit/runtime-wire.test.ts` checks both agree.
 */
import { DESC_DROP_REASON_MASK, DESC_DROP_REASON_SHIFT, DESC_FLAG_DROPPED, DROP_REASON_KEYS } from '../../ir/chain-limits.ts';
import { DESC_FLAG_ERROR, DESC_FLAG_RESPONSE_NEW_BUF, DESC_OFFSETS, DESC_SIZE } from '../../schema/descriptor.ts';

export { DESC_FLAG_DROPPED, DESC_FLAG_ERROR, DESC_FLAG_RESPONSE_NEW_BUF, DESC_SIZE };

/**
 * A descriptor the sk_msg program refused arrives marked DROPPED (with the reason); it was meant
 * for someone else. When the refusal was only about the target (no live instance, dead socket),
 * route and buffer are sound and the request can be failed back to the gateway; a descriptor that
 * was already on its way back (hop == len), or whose route/buffer was refused, must just be
 * discarded: sending it again would be refused again, and could bounce forever.
 */
export function canBounce(d: Desc, routeLen: number | undefined): boolean {
  if (!(d.flags & DESC_FLAG_DROPPED) || routeLen === undefined || d.hop >= routeLen) return false;
  const reason = DROP_REASON_KEYS[(d.flags & DESC_DROP_REASON_MASK) >> DESC_DROP_REASON_SHIFT];
  return reason === 'no_instance' || reason === 'dead_socket';
}

/** Turns a refused descriptor into an error reply to its gateway (status 503, hop = len). */
export function bounce(d: Desc, routeLen: number): void {
  d.flags = (d.flags & ~(DESC_FLAG_DROPPED | DESC_DROP_REASON_MASK)) | DESC_FLAG_ERROR;
  d.status = 503;
  d.hop = routeLen;
  // The request's payload is not an answer: the gateway says why instead.
  d.bufLen = 0;
}

const O_ROUTE = DESC_OFFSETS.route;
const O_HOP = DESC_OFFSETS.hop;
const O_FLAGS = DESC_OFFSETS.flags;
const O_GW = DESC_OFFSETS.gw_inst;
const O_STATUS = DESC_OFFSETS.status;
const O_REQ = DESC_OFFSETS.req_id;
const O_OFF = DESC_OFFSETS.buf_off;
const O_LEN = DESC_OFFSETS.buf_len;
const O_GEN = DESC_OFFSETS.buf_gen;

/** A descriptor as plain numbers (mutable: a hop rewrites hop/flags/status/buffer and sends it on). */
export interface Desc {
  route: number;
  hop: number;
  flags: number;
  gwInst: number;
  status: number;
  reqId: number;
  bufOff: number;
  bufLen: number;
  bufGen: number;
}

export function readDesc(b: Buffer, at: number): Desc {
  return {
    route: b.readUInt16LE(at + O_ROUTE),
    hop: b[at + O_HOP]!,
    flags: b[at + O_FLAGS]!,
    gwInst: b.readUInt16LE(at + O_GW),
    status: b.readUInt16LE(at + O_STATUS),
    reqId: b.readUInt32LE(at + O_REQ),
    bufOff: b.readUInt32LE(at + O_OFF),
    bufLen: b.readUInt32LE(at + O_LEN),
    bufGen: b.readUInt32LE(at + O_GEN),
  };
}

export function writeDesc(b: Buffer, at: number, d: Desc): void {
  b.writeUInt16LE(d.route, at + O_ROUTE);
  b[at + O_HOP] = d.hop;
  b[at + O_FLAGS] = d.flags;
  b.writeUInt16LE(d.gwInst, at + O_GW);
  b.writeUInt16LE(d.status, at + O_STATUS);
  b.writeUInt32LE(d.reqId >>> 0, at + O_REQ);
  b.writeUInt32LE(d.bufOff >>> 0, at + O_OFF);
  b.writeUInt32LE(d.bufLen >>> 0, at + O_LEN);
  b.writeUInt32LE(d.bufGen >>> 0, at + O_GEN);
}

/**
 * Cuts a TCP byte stream into descriptors. TCP keeps no message boundaries and sk_msg redirects
 * whatever a sender wrote, so one read may hold several descriptors, or end inside one: the tail
 * is carried to the next read. `push` calls `onDesc` synchronously for each complete descriptor;
 * the chunk may be a reused read buffer (net `onread`), so nothing keeps a reference to it.
 */
export class FrameReader {
  private readonly carry = Buffer.alloc(DESC_SIZE);
  private carried = 0;

  constructor(private readonly onDesc: (d: Desc) => void) {}

  /** Bytes of a partial descriptor waiting for the rest. */
  get pending(): number {
    return this.carried;
  }

  push(chunk: Buffer, len = chunk.length): void {
    let at = 0;
    if (this.carried > 0) {
      const need = DESC_SIZE - this.carried;
      const take = Math.min(need, len);
      chunk.copy(this.carry, this.carried, 0, take);
      this.carried += take;
      at = take;
      if (this.carried < DESC_SIZE) return;
      this.carried = 0;
      this.onDesc(readDesc(this.carry, 0));
    }
    for (; at + DESC_SIZE <= len; at += DESC_SIZE) this.onDesc(readDesc(chunk, at));
    if (at < len) {
      chunk.copy(this.carry, 0, at, len);
      this.carried = len - at;
    }
  }

  reset(): void {
    this.carried = 0;
  }
}

/**
 * Outgoing descriptors collected during one turn of the event loop and written together: one
 * send() carries many descriptors (the chain program judges each on its own, gotcha 9), and those
 * going to the same destination are kept next to each other so the kernel sees runs of them.
 */
export class Batcher {
  private items: Desc[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.items.length;
  }

  /** `dest` is the destination's identity (e.g. `fn << 16 | route-hop`); only equality matters. */
  add(d: Desc, dest: number): void {
    this.items.push(d);
    this.keys.push(dest);
  }

  /** Encodes and empties the batch; null when there is nothing to send. */
  take(): { bytes: Buffer; descs: Desc[] } | null {
    const n = this.items.length;
    if (n === 0) return null;
    let items = this.items;
    const keys = this.keys;
    this.items = [];
    this.keys = [];
    let mixed = false;
    for (let i = 1; i < n; i++) {
      if (keys[i] !== keys[0]) {
        mixed = true;
        break;
      }
    }
    if (mixed) {
      // Stable grouping by destination, in order of first appearance.
      const order = new Map<number, Desc[]>();
      for (let i = 0; i < n; i++) {
        const k = keys[i]!;
        let g = order.get(k);
        if (!g) {
          g = [];
          order.set(k, g);
        }
        g.push(items[i]!);
      }
      items = [];
      for (const g of order.values()) for (const d of g) items.push(d);
    }
    // Its own allocation: socket.write may hold on to it after returning.
    const bytes = Buffer.allocUnsafe(n * DESC_SIZE);
    for (let i = 0; i < n; i++) writeDesc(bytes, i * DESC_SIZE, items[i]!);
    return { bytes, descs: items };
  }
}
