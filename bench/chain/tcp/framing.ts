/**
 * Framing of the plain-TCP chain: TCP keeps no message boundaries, so every request travels as
 * `u32 length | u32 request id | payload` (little-endian). The payload itself rides along on
 * every hop: that copy through each hop's socket buffers is what the shared-memory pool avoids.
 */
import { Buffer } from 'node:buffer';

export const HEADER = 8;
/** Larger frames are a framing error (the bench's payloads are ~140 bytes). */
export const MAX_FRAME = 64 * 1024;

export type OnFrame = (buf: Buffer, off: number, len: number, reqId: number) => void;

/**
 * Cuts a byte stream into frames. `onFrame` gets each payload as a region of a buffer that is
 * only valid during the call (the read buffer, or the carry for a frame split across reads).
 */
export class FrameSplitter {
  private carry = Buffer.allocUnsafe(4096);
  private carried = 0;

  constructor(private readonly onFrame: OnFrame) {}

  push(chunk: Buffer, n: number): void {
    let at = 0;
    if (this.carried > 0) {
      // Complete the carried frame first: its header tells how much more it needs.
      while (this.carried < HEADER && at < n) this.carry[this.carried++] = chunk[at++]!;
      if (this.carried < HEADER) return;
      const total = HEADER + this.carry.readUInt32LE(0);
      if (total - HEADER > MAX_FRAME) throw new Error(`frame of ${total - HEADER} bytes`);
      if (this.carry.length < total) {
        const bigger = Buffer.allocUnsafe(total);
        this.carry.copy(bigger, 0, 0, this.carried);
        this.carry = bigger;
      }
      const take = Math.min(total - this.carried, n - at);
      chunk.copy(this.carry, this.carried, at, at + take);
      this.carried += take;
      at += take;
      if (this.carried < total) return;
      this.carried = 0;
      this.onFrame(this.carry, HEADER, total - HEADER, this.carry.readUInt32LE(4));
    }
    while (at + HEADER <= n) {
      const len = chunk.readUInt32LE(at);
      if (len > MAX_FRAME) throw new Error(`frame of ${len} bytes`);
      if (at + HEADER + len > n) break;
      this.onFrame(chunk, at + HEADER, len, chunk.readUInt32LE(at + 4));
      at += HEADER + len;
    }
    if (at < n) {
      if (this.carry.length < n - at) this.carry = Buffer.allocUnsafe(Math.max(n - at, 4096));
      chunk.copy(this.carry, 0, at, n);
      this.carried = n - at;
    }
  }
}

/**
 * Frames written during one read (or one turn of the event loop), sent as one write: the same
 * batching the bpfctl runtime does for descriptors, so neither variant pays a syscall per request.
 */
export class FrameBatch {
  private buf = Buffer.allocUnsafe(16 * 1024);
  private used = 0;

  get size(): number {
    return this.used;
  }

  /** Room for a frame of up to `cap` payload bytes; returns the payload's offset in `bytes`. */
  reserve(cap: number): number {
    if (this.used + HEADER + cap > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.used + HEADER + cap));
      this.buf.copy(bigger, 0, 0, this.used);
      this.buf = bigger;
    }
    return this.used + HEADER;
  }

  get bytes(): Buffer {
    return this.buf;
  }

  /** Completes the frame reserved at `payloadOff` with its final length. */
  commit(payloadOff: number, len: number, reqId: number): void {
    this.buf.writeUInt32LE(len, payloadOff - HEADER);
    this.buf.writeUInt32LE(reqId >>> 0, payloadOff - 4);
    this.used = payloadOff + len;
  }

  /** The batch as a buffer of its own (the socket may keep it after write() returns). */
  take(): Buffer | null {
    if (this.used === 0) return null;
    const out = Buffer.allocUnsafe(this.used);
    this.buf.copy(out, 0, 0, this.used);
    this.used = 0;
    return out;
  }
}
