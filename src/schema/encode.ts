import type { Codec } from './codec.ts';
import { SchemaError } from './schema-error.ts';

/**
 * `value` as a fresh, zero-filled buffer of `codec.size` bytes: padding is always zero, which
 * matters for hash-map keys (the kernel hashes the padding too). Throws SchemaError naming the
 * field that does not fit.
 */
export function encode<T>(codec: Codec<T>, value: T): Uint8Array {
  // Encoding into one scratch buffer and copying out costs a third of allocating an
  // ArrayBuffer and a DataView per value (the backing store is the expensive part).
  if (codec.size > scratch.u8.length) scratch = makeScratch(codec.size * 2);
  const { u8, view } = scratch;
  u8.fill(0, 0, codec.size);
  codec.encode(value, view, 0);
  return u8.slice(0, codec.size);
}

function makeScratch(n: number): { u8: Uint8Array; view: DataView } {
  const ab = new ArrayBuffer(n);
  return { u8: new Uint8Array(ab), view: new DataView(ab) };
}

let scratch = makeScratch(4096);

/** Encodes into `out` at `offset` (zeroing the padding first), for callers filling one big buffer. */
export function encodeInto<T>(codec: Codec<T>, value: T, out: Uint8Array, offset = 0): void {
  if (offset < 0 || offset + codec.size > out.length)
    throw new SchemaError(`no room for ${codec.size} bytes at offset ${offset} of a ${out.length}-byte buffer`);
  out.fill(0, offset, offset + codec.size);
  codec.encode(value, new DataView(out.buffer, out.byteOffset, out.byteLength), offset);
}

/** Reads a value from exactly `codec.size` bytes; SchemaError for any other length. */
export function decode<T>(codec: Codec<T>, bytes: Uint8Array): T {
  if (bytes.length !== codec.size)
    throw new SchemaError(`expected ${codec.size} bytes for ${codec.cType()}, got ${bytes.length}`);
  return codec.decode(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0);
}

export function sizeOf(codec: Codec<unknown>): number {
  return codec.size;
}

export function alignOf(codec: Codec<unknown>): number {
  return codec.align;
}
