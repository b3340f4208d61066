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
  // ERROR: it was already on its way back (an error reply), like hop == len.
  if (!(d.flags & DESC_FLAG_DROPPED) || routeLen === undefined || d.hop >= routeLen || d.flags & DESC_FLAG_ERROR) return false;
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

// Field offsets as literals (checked against the schema below): the readers and writers are the
// hottest code of every hop, and a literal offset is an immediate where an imported binding or a
// module-level constant is a load (under tsx imported bindings even compiled to getter calls).
const EXPECTED_OFFSETS = { route: 0, hop: 2, flags: 3, gw_inst: 4, status: 6, req_id: 8, buf_off: 12, buf_len: 16, buf_gen: 20 } as const;
for (const [k, v] of Object.entries(EXPECTED_OFFSETS)) {
  if (DESC_OFFSETS[k as keyof typeof EXPECTED_OFFSETS] !== v) throw new Error(`wire.ts: descriptor field ${k} is at ${DESC_OFFSETS[k as keyof typeof EXPECTED_OFFSETS]}, expected ${v}`);
}

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

/**
 * A reusable descriptor: every field set in the constructor, so all records share one hidden class
 * and the code that touches them stays monomorphic. For code that recycles records instead of
 * allocating one per descriptor (readDescInto).
 */
export class DescRecord implements Desc {
  route = 0;
  hop = 0;
  flags = 0;
  gwInst = 0;
  status = 0;
  reqId = 0;
  bufOff = 0;
  bufLen = 0;
  bufGen = 0;
}

// Byte by byte rather than Buffer#readUInt32LE and friends: those validate the offset and the
// value on every call, and here the caller has already checked that 24 bytes are there.
const u32At = (b: Uint8Array, at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;

function putU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v;
  b[at + 1] = v >>> 8;
  b[at + 2] = v >>> 16;
  b[at + 3] = v >>> 24;
}

/** A new object with the descriptor at `at` (24 bytes must be there). */
export function readDesc(b: Uint8Array, at: number): Desc {
  return {
    route: b[at]! | (b[at + 1]! << 8),
    hop: b[at + 2]!,
    flags: b[at + 3]!,
    gwInst: b[at + 4]! | (b[at + 5]! << 8),
    status: b[at + 6]! | (b[at + 7]! << 8),
    reqId: u32At(b, at + 8),
    bufOff: u32At(b, at + 12),
    bufLen: u32At(b, at + 16),
    bufGen: u32At(b, at + 20),
  };
}

/** readDesc into an existing record (no allocation). */
export function readDescInto(b: Uint8Array, at: number, d: Desc): void {
  d.route = b[at]! | (b[at + 1]! << 8);
  d.hop = b[at + 2]!;
  d.flags = b[at + 3]!;
  d.gwInst = b[at + 4]! | (b[at + 5]! << 8);
  d.status = b[at + 6]! | (b[at + 7]! << 8);
  d.reqId = u32At(b, at + 8);
  d.bufOff = u32At(b, at + 12);
  d.bufLen = u32At(b, at + 16);
  d.bufGen = u32At(b, at + 20);
}

/** Encodes `d` at `at` (24 bytes must be there); every field is taken modulo its width. */
export function writeDesc(b: Uint8Array, at: number, d: Desc): void {
  const route = d.route;
  const gw = d.gwInst;
  const status = d.status;
  // Typed-array stores keep the low 8 bits: the shifts pick each byte.
  b[at] = route;
  b[at + 1] = route >>> 8;
  b[at + 2] = d.hop;
  b[at + 3] = d.flags;
  b[at + 4] = gw;
  b[at + 5] = gw >>> 8;
  b[at + 6] = status;
  b[at + 7] = status >>> 8;
  putU32(b, at + 8, d.reqId);
  putU32(b, at + 12, d.bufOff);
  putU32(b, at + 16, d.bufLen);
  putU32(b, at + 20, d.bufGen);
}

/**
 * Cuts a TCP byte stream into 24-byte frames. TCP keeps no message boundaries and sk_msg
 * redirects whatever a sender wrote, so one read may hold several descriptors, or end inside one:
 * the tail is carried to the next read. `push` calls `onFrame(bytes, at)` synchronously for each
 * complete descriptor, which must read it before returning: the chunk may be a reused read buffer
 * (net `onread`), and the carry is reused too.
 */
export class FrameCutter {
  private readonly carry = Buffer.alloc(DESC_SIZE);
  private carried = 0;

  constructor(private readonly onFrame: (b: Buffer, at: number) => void) {}

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
      this.onFrame(this.carry, 0);
    }
    for (; at + DESC_SIZE <= len; at += DESC_SIZE) this.onFrame(chunk, at);
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
 * A FrameCutter that hands over each descriptor as a new object (`onDesc` may keep it). For
 * readers that keep descriptors around; the function runtime recycles records instead.
 */
export class FrameReader extends FrameCutter {
  constructor(onDesc: (d: Desc) => void) {
    super((b, at) => onDesc(readDesc(b, at)));
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
