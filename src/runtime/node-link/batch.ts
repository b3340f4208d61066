/**
 * A batch of bytes built in place for one socket write: records are written straight into it (no
 * buffer per record, no concatenation, no copy to add the frame header, for which `head` bytes
 * stay free at the front). After a write the same memory is used again when the socket handed
 * everything to the kernel at once (nothing left queued in Node: the usual case, the write being
 * small); otherwise the queued bytes keep it and the next batch gets a fresh buffer.
 */
import type net from 'node:net';

const INITIAL = 64 * 1024;

export class ByteBatch {
  private buf: Buffer;
  private len: number;
  /** Records in the batch (for counters). */
  count = 0;

  constructor(private readonly head = 0) {
    this.buf = Buffer.allocUnsafe(INITIAL);
    this.len = head;
  }

  /** Bytes in the batch after the head room. */
  get size(): number {
    return this.len - this.head;
  }

  /** The buffer, with at least `k` bytes free at `offset`; write there, then `commit(k)`. */
  room(k: number): Buffer {
    if (this.len + k > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + k));
      this.buf.copy(next, 0, 0, this.len);
      this.buf = next;
    }
    return this.buf;
  }

  get offset(): number {
    return this.len;
  }

  commit(k: number): void {
    this.len += k;
  }

  /** The whole batch, head room included, for the caller to fill the head of. */
  bytes(): Buffer {
    return this.buf.subarray(0, this.len);
  }

  /** Writes the batch (head included) to `sock` and empties it. */
  writeTo(sock: net.Socket): void {
    const out = this.buf.subarray(0, this.len);
    this.len = this.head;
    this.count = 0;
    if (sock.destroyed || !sock.writable) return;
    sock.write(out);
    // Still queued in Node: those bytes are the socket's now.
    if (sock.writableLength > 0) this.buf = Buffer.allocUnsafe(INITIAL);
  }

  /** Drops what is in the batch. */
  clear(): void {
    this.len = this.head;
    this.count = 0;
  }
}
