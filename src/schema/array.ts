import type { ArrayCodec, Codec } from './codec.ts';
import { describeValue } from './ints.ts';
import { SchemaError } from './schema-error.ts';

/** `len` elements of `elem` back to back (C `T x[len]`), read and written as a JS array. */
export function array<T>(elem: Codec<T>, len: number): ArrayCodec<T> {
  if (!Number.isInteger(len) || len <= 0) throw new SchemaError(`array(codec, n) needs a positive integer length, got ${len}`);
  const stride = elem.size;
  return Object.freeze({
    kind: 'array' as const,
    size: stride * len,
    align: elem.align,
    elem,
    len,
    encode(value: T[], view: DataView, offset: number) {
      if (!Array.isArray(value)) throw new SchemaError(`expected an array of ${len}, got ${describeValue(value)}`);
      if (value.length !== len) throw new SchemaError(`expected an array of ${len}, got ${value.length} elements`);
      for (let i = 0; i < len; i++) {
        try {
          elem.encode(value[i] as T, view, offset + i * stride);
        } catch (err) {
          throw err instanceof SchemaError ? err.within(`[${i}]`) : err;
        }
      }
    },
    decode(view: DataView, offset: number) {
      const out = new Array<T>(len);
      for (let i = 0; i < len; i++) out[i] = elem.decode(view, offset + i * stride);
      return out;
    },
    cType: () => `${elem.cType()}[${len}]`,
  });
}
