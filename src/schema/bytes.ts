import type { BytesCodec, CStringCodec } from './codec.ts';
import { describeValue } from './ints.ts';
import { SchemaError } from './schema-error.ts';

function checkLength(n: number, what: string): void {
  if (!Number.isInteger(n) || n <= 0) throw new SchemaError(`${what}(n) needs a positive integer length, got ${n}`);
}

/** `n` raw bytes (`__u8 x[n]` in C): addresses, hashes, anything without a finer schema. */
export function bytes(n: number): BytesCodec {
  checkLength(n, 'bytes');
  return Object.freeze({
    kind: 'bytes' as const,
    size: n,
    align: 1,
    encode(value: Uint8Array, view: DataView, offset: number) {
      if (!(value instanceof Uint8Array)) throw new SchemaError(`expected ${n} bytes (Uint8Array), got ${describeValue(value)}`);
      if (value.length !== n) throw new SchemaError(`expected ${n} bytes, got ${value.length}`);
      new Uint8Array(view.buffer, view.byteOffset + offset, n).set(value);
    },
    decode(view: DataView, offset: number) {
      return new Uint8Array(view.buffer.slice(view.byteOffset + offset, view.byteOffset + offset + n));
    },
    cType: () => `__u8[${n}]`,
  });
}

const utf8Decoder = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

/**
 * A C `char[n]` holding text (a task comm, an interface name). Up to `n` bytes of UTF-8; shorter
 * strings are NUL-padded, so a NUL-terminated C string fits in n-1.
 */
export function cstring(n: number): CStringCodec {
  checkLength(n, 'cstring');
  return Object.freeze({
    kind: 'cstring' as const,
    size: n,
    align: 1,
    encode(value: string, view: DataView, offset: number) {
      if (typeof value !== 'string') throw new SchemaError(`expected a string of at most ${n} bytes, got ${describeValue(value)}`);
      const b = utf8Encoder.encode(value);
      if (b.length > n) throw new SchemaError(`expected a string of at most ${n} bytes, got ${b.length}`);
      const dst = new Uint8Array(view.buffer, view.byteOffset + offset, n);
      dst.fill(0);
      dst.set(b);
    },
    decode(view: DataView, offset: number) {
      const src = new Uint8Array(view.buffer, view.byteOffset + offset, n);
      const end = src.indexOf(0);
      return utf8Decoder.decode(end < 0 ? src : src.subarray(0, end));
    },
    cType: () => `char[${n}]`,
  });
}
