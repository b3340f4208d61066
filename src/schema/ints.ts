/**
 * Integer codecs. Host order is little-endian (x86-64, arm64, and the BPF target bpfel), so the
 * plain kinds are written little-endian; `be*` are network order, as `__be16` is in C.
 */
import type { IntCodec, IntKind } from './codec.ts';
import { SchemaError } from './schema-error.ts';

function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (typeof v === 'bigint') return String(v);
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

export { describeValue };

function numberCodec(kind: IntKind, size: 1 | 2 | 4, signed: boolean, bigEndian: boolean, cType: string): IntCodec<number> {
  const bits = size * 8;
  const min = signed ? -(2 ** (bits - 1)) : 0;
  const max = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
  const le = !bigEndian;
  const range = `${kind} (${min}..${max})`;
  const check = (value: unknown): number => {
    if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
    if (typeof value === 'bigint' && value >= BigInt(min) && value <= BigInt(max)) return Number(value);
    throw new SchemaError(`expected ${range}, got ${describeValue(value)}`);
  };
  const put: (view: DataView, offset: number, v: number) => void =
    size === 1
      ? signed
        ? (view, o, v) => view.setInt8(o, v)
        : (view, o, v) => view.setUint8(o, v)
      : size === 2
        ? signed
          ? (view, o, v) => view.setInt16(o, v, le)
          : (view, o, v) => view.setUint16(o, v, le)
        : signed
          ? (view, o, v) => view.setInt32(o, v, le)
          : (view, o, v) => view.setUint32(o, v, le);
  const get: (view: DataView, offset: number) => number =
    size === 1
      ? signed
        ? (view, o) => view.getInt8(o)
        : (view, o) => view.getUint8(o)
      : size === 2
        ? signed
          ? (view, o) => view.getInt16(o, le)
          : (view, o) => view.getUint16(o, le)
        : signed
          ? (view, o) => view.getInt32(o, le)
          : (view, o) => view.getUint32(o, le);
  return Object.freeze({
    kind,
    size,
    align: size,
    signed,
    bigEndian,
    encode: (value: number, view: DataView, offset: number) => put(view, offset, check(value)),
    decode: get,
    cType: () => cType,
  });
}

function bigintCodec(kind: IntKind, signed: boolean, bigEndian: boolean, cType: string): IntCodec<bigint> {
  const min = signed ? -(2n ** 63n) : 0n;
  const max = signed ? 2n ** 63n - 1n : 2n ** 64n - 1n;
  const le = !bigEndian;
  const range = `${kind} (${min}..${max})`;
  const check = (value: unknown): bigint => {
    // Numbers are accepted when exact: callers often hold small counters as plain numbers.
    const v = typeof value === 'number' && Number.isSafeInteger(value) ? BigInt(value) : value;
    if (typeof v === 'bigint' && v >= min && v <= max) return v;
    throw new SchemaError(`expected ${range}, got ${describeValue(value)}`);
  };
  return Object.freeze({
    kind,
    size: 8,
    align: 8,
    signed,
    bigEndian,
    encode: signed
      ? (value: bigint, view: DataView, offset: number) => view.setBigInt64(offset, check(value), le)
      : (value: bigint, view: DataView, offset: number) => view.setBigUint64(offset, check(value), le),
    decode: signed ? (view: DataView, o: number) => view.getBigInt64(o, le) : (view: DataView, o: number) => view.getBigUint64(o, le),
    cType: () => cType,
  });
}

export const u8: IntCodec<number> = numberCodec('u8', 1, false, false, '__u8');
export const u16: IntCodec<number> = numberCodec('u16', 2, false, false, '__u16');
export const u32: IntCodec<number> = numberCodec('u32', 4, false, false, '__u32');
export const i8: IntCodec<number> = numberCodec('i8', 1, true, false, '__s8');
export const i16: IntCodec<number> = numberCodec('i16', 2, true, false, '__s16');
export const i32: IntCodec<number> = numberCodec('i32', 4, true, false, '__s32');
export const u64: IntCodec<bigint> = bigintCodec('u64', false, false, '__u64');
export const i64: IntCodec<bigint> = bigintCodec('i64', true, false, '__s64');
export const be16: IntCodec<number> = numberCodec('be16', 2, false, true, '__be16');
export const be32: IntCodec<number> = numberCodec('be32', 4, false, true, '__be32');
export const be64: IntCodec<bigint> = bigintCodec('be64', false, true, '__be64');

/** The integer codec for a C integer of `size` bytes, as BTF describes it. */
export function intCodec(size: number, signed: boolean): IntCodec<number> | IntCodec<bigint> | null {
  switch (size) {
    case 1:
      return signed ? i8 : u8;
    case 2:
      return signed ? i16 : u16;
    case 4:
      return signed ? i32 : u32;
    case 8:
      return signed ? i64 : u64;
    default:
      return null;
  }
}
